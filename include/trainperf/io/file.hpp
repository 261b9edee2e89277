// trainperf — read a whole input file, bounded, and write an output file whole, with one-line errors: every reader of
// user-named files (config.json, token files, checkpoints, reports) goes through here, so a
// directory, a FIFO, /dev/zero, an empty file or one that changes while read is refused with
// the field to fix instead of hanging, aborting on a stream exception or reading forever.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

#include "../error.hpp"

namespace trainperf::io {

// The bytes of the regular file `path`, at most `max_bytes` of them. `field` is the flag or
// field that named the file; `what` says what the file should be ("a config.json").
inline std::string read_file(const std::filesystem::path& path, std::uintmax_t max_bytes, std::string_view field,
                             std::string_view what) {
  namespace fs = std::filesystem;
  const std::string p = path.string();
  const auto fail = [&](const std::string& why) {
    throw config_error(std::string(field), p + " " + why + "; give " + std::string(what));
  };
  std::error_code ec;
  // status() follows symbolic links and never opens the file, so a FIFO cannot block here.
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st))
    fail(ec && ec != std::errc::no_such_file_or_directory ? "cannot be read (" + ec.message() + ")" : "does not exist");
  if (fs::is_directory(st)) fail("is a directory");
  if (!fs::is_regular_file(st)) fail("is not a regular file (a FIFO, device or socket)");
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec) fail("cannot be read (" + ec.message() + ")");
  if (size == 0) fail("is empty");
  if (size > max_bytes)
    fail("is " + std::to_string(size) + " bytes, more than the " + std::to_string(max_bytes) + " this reader accepts");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot be opened (" + std::string(std::strerror(errno)) + ")");
  std::string bytes(static_cast<std::size_t>(size), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  const bool short_read = static_cast<std::uintmax_t>(in.gcount()) != size;
  const bool grew = !short_read && in.peek() != std::ifstream::traits_type::eof();
  if (short_read || grew) fail("changed size while it was read; read it again once it is complete");
  return bytes;
}

// Writes `text` to the file `path` whole or not at all: into path + ".tmp", then renamed over
// `path`. A directory, FIFO or device at either name is refused up front (opening a FIFO for
// writing would wait for a reader forever); `field` names the flag in every error.
inline void write_file(const std::filesystem::path& path, std::string_view text, std::string_view field) {
  namespace fs = std::filesystem;
  const std::string p = path.string(), tmp = p + ".tmp";
  const auto fail = [&](const std::string& why) {
    throw config_error(std::string(field), p + " " + why + "; give a path to a regular file in a writable folder");
  };
  std::error_code ec;
  for (const std::string& name : {p, tmp}) {
    const fs::file_status st = fs::status(name, ec);
    if (fs::is_directory(st)) fail(name == p ? "is a directory" : "cannot be written: " + tmp + " is a directory");
    if (fs::exists(st) && !fs::is_regular_file(st))
      fail(name == p ? "is not a regular file (a FIFO, device or socket)"
                     : "cannot be written: " + tmp + " is in the way (not a regular file)");
  }
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("cannot be written (" + std::string(std::strerror(errno)) + ")");
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) {
      fs::remove(tmp, ec);
      fail("could not be written in full (" + std::string(std::strerror(errno)) + ")");
    }
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    fail("could not be put in place (" + ec.message() + ")");
  }
}

}  // namespace trainperf::io
