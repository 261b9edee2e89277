// parse_tokens / read_tokens (examples/train_llama/data.hpp): valid .npy and raw files parse to
// the ids they hold; every malformed header, size or id is one config_error naming the file,
// what is wrong and the fix.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../../examples/train_llama/data.hpp"

namespace {

using train_llama::parse_tokens;

std::string npy(const std::string& dict, const std::string& data, int major = 1) {
  std::string header = dict;
  const std::size_t pre = major == 1 ? 10 : 12;
  while ((pre + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY", 6);
  out += static_cast<char>(major);
  out += '\0';
  const std::size_t n = header.size();
  out += static_cast<char>(n & 0xff);
  out += static_cast<char>((n >> 8) & 0xff);
  if (major != 1) out += std::string("\0\0", 2);
  return out + header + data;
}

std::string u16s(std::initializer_list<int> v) {
  std::string s;
  for (int x : v) s += static_cast<char>(x & 0xff), s += static_cast<char>((x >> 8) & 0xff);
  return s;
}
std::string u32s(std::initializer_list<long long> v) {
  std::string s;
  for (long long x : v)
    for (int i = 0; i < 4; ++i) s += static_cast<char>((x >> (8 * i)) & 0xff);
  return s;
}

std::string error_of(const std::string& bytes, const std::string& name, const std::string& dtype = "u16",
                     std::int64_t vocab = 256) {
  try {
    (void)parse_tokens(bytes, name, dtype, vocab);
  } catch (const trainperf::config_error& e) {
    CHECK(e.field() == "data");
    const std::string w = e.what();
    CHECK(w.find('\n') == std::string::npos);
    return w;
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("valid .npy files in formats 1, 2 and 3 and raw files parse to their ids") {
  const std::vector<std::int32_t> want{1, 2, 255};
  CHECK(parse_tokens(npy("{'descr': '<u2', 'fortran_order': False, 'shape': (3,), }", u16s({1, 2, 255})), "a.npy",
                     "u16", 256) == want);
  CHECK(parse_tokens(npy("{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", u32s({1, 2, 255}), 2), "a.npy",
                     "u16", 256) == want);
  CHECK(parse_tokens(npy("{\"descr\": \"<u4\", \"fortran_order\": False, \"shape\": (3,)}", u32s({1, 2, 255}), 3),
                     "a.npy", "u16", 256) == want);
  CHECK(parse_tokens(u16s({1, 2, 255}), "a.u16", "u16", 256) == want);
  CHECK(parse_tokens(u32s({1, 2, 255}), "a.bin", "u32", 256) == want);
  CHECK(parse_tokens(u32s({1, 2, 255}), "a.bin", "i32", 256) == want);
}

TEST_CASE("malformed .npy headers are refused with what is wrong") {
  const std::string d3 = u16s({1, 2, 3});
  CHECK(error_of("PK\x03\x04 not numpy", "x.npy").find("is not a .npy file") != std::string::npos);
  CHECK(error_of(std::string("\x93NUMPY\x09\x00\x10\x00", 10) + "0123456789abcdef", "x.npy")
            .find("format version 9.0") != std::string::npos);
  // The header length points past the end of the file.
  std::string cut = npy("{'descr': '<u2', 'fortran_order': False, 'shape': (3,), }", d3);
  cut[8] = '\xff', cut[9] = '\x7f';
  CHECK(error_of(cut, "x.npy").find("the .npy header says it is 32767 bytes") != std::string::npos);
  CHECK(error_of(npy("{'descr': '<u2', 'fortran_order': False, 'shape': (3, 1), }", d3), "x.npy")
            .find("shape (3, 1) is 2-D; save a 1-D array") != std::string::npos);
  CHECK(error_of(npy("{'descr': '<u2', 'fortran_order': False, 'shape': (), }", u16s({1})), "x.npy")
            .find("is 0-D") != std::string::npos);
  CHECK(error_of(npy("{'descr': '<u2', 'fortran_order': True, 'shape': (3,), }", d3), "x.npy")
            .find("'fortran_order': True") != std::string::npos);
  CHECK(error_of(npy("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", u32s({1, 0, 2, 0, 3, 0})), "x.npy")
            .find("dtype '<i8' is not <i4, <u2 or <u4; save the ids with .astype(numpy.int32)") != std::string::npos);
  CHECK(error_of(npy("{'descr': '>u2', 'fortran_order': False, 'shape': (3,), }", d3), "x.npy")
            .find("dtype '>u2'") != std::string::npos);
  CHECK(error_of(npy("{'descr': '<u2', 'shape': (3,), }", d3), "x.npy").find("missing key 'fortran_order'") !=
        std::string::npos);
  CHECK(error_of(npy("{'descr': '<u2', 'fortran_order': False, 'shape': (3,), 'extra': 1}", d3), "x.npy")
            .find("unexpected or repeated key 'extra'") != std::string::npos);
  CHECK(error_of(npy("{'descr': '<u2', 'fortran_order': False, 'shape': (3,), } junk", d3), "x.npy")
            .find("unexpected bytes after the closing '}'") != std::string::npos);
  CHECK(error_of(npy("{'descr': '<u2', 'fortran_order': Maybe, 'shape': (3,), }", d3), "x.npy")
            .find("expected True or False") != std::string::npos);
  CHECK(error_of(npy("garbage", d3), "x.npy").find("the .npy header is not one NumPy writes") != std::string::npos);
  // Old behaviour: the header was searched for "'<u2'" only, so this garbage header was accepted.
  CHECK(error_of(npy("'<u2' garbage", d3), "x.npy").find("the .npy header is not one NumPy writes") !=
        std::string::npos);
}

TEST_CASE("the header's shape must match the data that follows it") {
  const std::string h = "{'descr': '<u2', 'fortran_order': False, 'shape': (4,), }";
  CHECK(error_of(npy(h, u16s({1, 2, 3})), "x.npy").find("the header's shape (4,) is 4 ids but 6 bytes") !=
        std::string::npos);
  CHECK(error_of(npy(h, u16s({1, 2, 3, 4}) + "z"), "x.npy").find("9 bytes of data are not a whole number") !=
        std::string::npos);
  CHECK(error_of(npy("{'descr': '<u2', 'fortran_order': False, 'shape': (99999999999999999999,), }", ""), "x.npy")
            .find("dimension too large") != std::string::npos);
  CHECK(error_of(npy("{'descr': '<u2', 'fortran_order': False, 'shape': (0,), }", ""), "x.npy")
            .find("holds no token ids") != std::string::npos);
}

TEST_CASE("raw files: whole ids of the dtype, inside the vocabulary") {
  CHECK(error_of("abc", "x.u16").find("3 bytes of data are not a whole number of u16 ids; give --data-dtype") !=
        std::string::npos);
  CHECK(error_of(u32s({-1}), "x.bin", "i32").find("token -1 at position 0 is outside the vocabulary of 256") !=
        std::string::npos);
  CHECK(error_of(u32s({4000000000LL}), "x.bin", "u32").find("token 4000000000 at position 0") != std::string::npos);
  CHECK(error_of(u16s({1, 300}), "x.u16").find("token 300 at position 1") != std::string::npos);
  CHECK(error_of(u16s({1}), "x.u16", "u8").find("token dtype must be u16, u32 or i32, got 'u8'") !=
        std::string::npos);
}

TEST_CASE("read_tokens refuses what is not a readable regular file, via io::read_file") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("trainer_tokens_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto err = [](const std::string& path) {
    try {
      (void)train_llama::read_tokens(path, "u16", 256);
    } catch (const trainperf::config_error& e) {
      CHECK(e.field() == "data");
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  CHECK(err(dir.string()).find("is a directory") != std::string::npos);
  std::ofstream((dir / "empty.u16").string()).close();
  CHECK(err((dir / "empty.u16").string()).find("is empty") != std::string::npos);
  REQUIRE(::mkfifo((dir / "fifo.u16").c_str(), 0600) == 0);
  CHECK(err((dir / "fifo.u16").string()).find("is not a regular file") != std::string::npos);  // did not block
  CHECK(err("/dev/zero").find("is not a regular file") != std::string::npos);
  CHECK(err((dir / "missing.npy").string()).find("does not exist") != std::string::npos);
  std::ofstream((dir / "ok.u16").string(), std::ios::binary) << u16s({7, 8});
  CHECK(train_llama::read_tokens((dir / "ok.u16").string(), "u16", 256) == std::vector<std::int32_t>{7, 8});
  fs::remove_all(dir);
}
