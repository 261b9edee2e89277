// trainperf — read a whole input file, bounded, and write an output file whole, each with
// one-line errors. Every reader of user-named files (config.json, token files, checkpoints,
// reports) goes through here, so a directory, a FIFO, /dev/zero, an empty file or one that
// changes while read is refused with the field to fix instead of hanging, aborting on a stream
// exception or reading forever.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

#include "../error.hpp"

namespace trainperf::io {

namespace detail {
// "<path> <why>; give <what>", under `field`: every refusal of an input file reads the same.
[[noreturn]] inline void input_file_error(const std::filesystem::path& path, std::string_view field,
                                          std::string_view what, const std::string& why) {
  throw config_error(std::string(field), path.string() + " " + why + "; give " + std::string(what));
}
}  // namespace detail

// The size of the regular, non-empty file `path` if it is at most `max_bytes`; refuses anything
// else without opening it (a caller can check an input before any work and read it later).
// `field` is the flag or field that named the file; `what` says what it should be ("a config.json").
inline std::uintmax_t check_input_file(const std::filesystem::path& path, std::uintmax_t max_bytes,
                                       std::string_view field, std::string_view what) {
  namespace fs = std::filesystem;
  const auto fail = [&](const std::string& why) { detail::input_file_error(path, field, what, why); };
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
  return size;
}

// The bytes of the regular file `path`, at most `max_bytes` of them (see check_input_file).
inline std::string read_file(const std::filesystem::path& path, std::uintmax_t max_bytes, std::string_view field,
                             std::string_view what) {
  const std::uintmax_t size = check_input_file(path, max_bytes, field, what);
  const auto fail = [&](const std::string& why) { detail::input_file_error(path, field, what, why); };
  // Opened without blocking and checked again on the descriptor: a FIFO put in the file's place
  // after check_input_file looked cannot make the open or the read wait.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) fail("cannot be opened (" + std::string(std::strerror(errno)) + ")");
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } const close_at_exit{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) fail("is not a regular file (a FIFO, device or socket)");
  // One byte more than the size: reading it means the file grew.
  std::string bytes(static_cast<std::size_t>(size) + 1, '\0');
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ::ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("cannot be read (" + std::string(std::strerror(errno)) + ")");
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got != size) fail("changed size while it was read; read it again once it is complete");
  bytes.resize(static_cast<std::size_t>(size));
  return bytes;
}

// Refuses, before any work is done, an output file `path` (named by `field`) that cannot be
// written: a directory, something that is not a regular file (for checkpoints, which are
// renamed into place), a folder that does not exist or where no file can be created, an
// existing file that is not writable (for appended logs). The check creates and removes a
// temporary file in the folder.
inline void check_output_path(const std::string& path, const std::string& field, bool renamed_into_place) {
  namespace fs = std::filesystem;
  const auto fail = [&](const std::string& why) { throw config_error(field, path + " " + why); };
  if (path.empty()) throw config_error(field, "--" + field + " needs a file path, got ''");
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  // Missing, or under something that is not a folder: said below; anything else (a name too long
  // for a path) here.
  if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory)
    fail("cannot be used as a path (" + ec.message() + "); give another");
  if (fs::is_directory(st))
    fail("is a directory; give a file path, e.g. " + (fs::path(path) / ("out." + field)).string());
  if (fs::exists(st) && !fs::is_regular_file(st)) {
    if (renamed_into_place || !fs::is_character_file(st))
      fail("exists and is not a regular file (a FIFO, device or socket); give a path to a regular file");
    if (::access(path.c_str(), W_OK) != 0)  // a log may go to a device such as /dev/null
      fail("is not writable (" + std::string(std::strerror(errno)) + "); choose another path");
    return;
  }
  const fs::path dir = fs::path(path).parent_path().empty() ? fs::path(".") : fs::path(path).parent_path();
  const fs::file_status ds = fs::status(dir, ec);
  if (!fs::exists(ds)) fail("is in folder " + dir.string() + ", which does not exist; create it first");
  if (!fs::is_directory(ds)) fail("is in " + dir.string() + ", which is not a folder; give a path inside a folder");
  if (renamed_into_place) {
    const fs::file_status ts = fs::status(path + ".tmp", ec);
    if (fs::exists(ts) && !fs::is_regular_file(ts))
      fail("cannot be written: " + path + ".tmp is in the way (not a regular file); remove it");
  }
  std::string probe = (dir / ".trainperf-write-test-XXXXXX").string();
  const int fd = ::mkstemp(probe.data());
  if (fd < 0)
    fail("cannot be written: no file can be created in " + dir.string() + " (" + std::string(std::strerror(errno)) +
         "); choose a writable folder");
  ::close(fd);
  ::unlink(probe.c_str());
  if (!renamed_into_place && fs::is_regular_file(st) && ::access(path.c_str(), W_OK) != 0)
    fail("exists and is not writable (" + std::string(std::strerror(errno)) +
         "); make it writable or choose another path");
}

// Writes `text` to the file `path` whole or not at all: into path + ".tmp", then renamed over
// `path`, after check_output_path (opening a FIFO for writing would wait for a reader forever).
inline void write_file(const std::filesystem::path& path, std::string_view text, std::string_view field) {
  namespace fs = std::filesystem;
  const std::string p = path.string(), tmp = p + ".tmp";
  const auto fail = [&](const std::string& why) {
    throw config_error(std::string(field), p + " " + why + "; give a path to a regular file in a writable folder");
  };
  check_output_path(p, std::string(field), /*renamed_into_place=*/true);
  std::error_code ec;
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
