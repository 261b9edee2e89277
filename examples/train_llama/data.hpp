// Token data for the example trainer: an embedded procedurally generated corpus (byte-level),
// and pre-tokenized files (raw uint16/uint32/int32, NumPy .npy int32/uint16/uint32), ids
// checked against the vocabulary. parse_tokens works on bytes (the fuzz target drives it);
// read_tokens takes them from trainperf::io::read_file, bounded.
#pragma once

#include <cstdint>
#include <fstream>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <trainperf/error.hpp>
#include <trainperf/io/file.hpp>

#include <trainperf/io/file.hpp>
#include "host.hpp"

namespace train_llama {

// A small artificial language with learnable structure, generated from a fixed seed (nothing
// copied from anywhere): agreement between subjects and verbs, adjectives before nouns,
// counting sequences and sums of small numbers. A byte-level model learns its spelling, then
// its grammar, then (partly) its arithmetic.
inline std::string generate_corpus(std::size_t bytes, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const char* singular[] = {"the fox", "a robot", "my cat", "the river", "a baker", "the moon", "this lamp", "an owl"};
  const char* plural[] = {"the foxes",   "two robots", "our cats",   "the rivers",
                          "some bakers", "the stars",  "these lamps"};
  const char* verbs_s[] = {"sees", "likes", "follows", "paints", "finds", "carries", "hears"};
  const char* verbs_p[] = {"see", "like", "follow", "paint", "find", "carry", "hear"};
  const char* adjectives[] = {"red", "quiet", "tiny", "golden", "old", "bright", "lazy"};
  const char* objects[] = {"apple", "boat", "song", "stone", "map", "kite", "cloud"};
  const auto pick = [&](auto& list) { return list[rng() % (sizeof(list) / sizeof(list[0]))]; };
  std::string out;
  while (out.size() < bytes) {
    switch (rng() % 4) {
      case 0:
      case 1: {
        const bool many = rng() % 2;
        out += many ? pick(plural) : pick(singular);
        out += ' ';
        out += many ? pick(verbs_p) : pick(verbs_s);
        out += " the ";
        out += pick(adjectives);
        out += ' ';
        out += pick(objects);
        out += ".\n";
        break;
      }
      case 2: {
        const int start = static_cast<int>(rng() % 50), step = 1 + static_cast<int>(rng() % 5);
        for (int i = 0; i < 5; ++i) out += std::to_string(start + i * step) + (i < 4 ? ", " : ".\n");
        break;
      }
      default: {
        const int a = static_cast<int>(rng() % 50), b = static_cast<int>(rng() % 50);
        out += std::to_string(a) + " plus " + std::to_string(b) + " is " + std::to_string(a + b) + ".\n";
      }
    }
  }
  out.resize(bytes);
  return out;
}

inline std::vector<std::int32_t> bytes_to_tokens(const std::string& s) {
  std::vector<std::int32_t> t(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) t[i] = static_cast<unsigned char>(s[i]);
  return t;
}

[[noreturn]] inline void data_error(const std::string& msg) { throw trainperf::config_error("data", msg); }

// Token files are read whole: at most this many bytes, and at most a sixth of the memory the
// machine has available (the file's bytes and the int32 ids are alive together while parsing,
// then the ids once more as training and held-out splits). Documented in --help.
inline constexpr std::uint64_t max_token_file_bytes = std::uint64_t{8} << 30;  // 8 GiB

namespace detail {

// The Python literal dict of a .npy header, e.g. "{'descr': '<u2', 'fortran_order': False,
// 'shape': (3000,), }", parsed strictly: exactly the three keys NumPy writes, string / bool /
// tuple-of-integers values, nothing after the closing brace but the space padding and "\n".
struct npy_header {
  std::string descr;
  bool fortran_order = false;
  std::vector<std::uint64_t> shape;
};

class npy_header_parser {
 public:
  npy_header_parser(std::string_view text, const std::string& name) : s_(text), name_(name) {}

  npy_header parse() {
    npy_header h;
    bool seen_descr = false, seen_order = false, seen_shape = false;
    skip_space();
    expect('{');
    for (;;) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = string_literal();
      skip_space();
      expect(':');
      skip_space();
      if (key == "descr" && !seen_descr) {
        h.descr = string_literal(), seen_descr = true;
      } else if (key == "fortran_order" && !seen_order) {
        h.fortran_order = boolean(), seen_order = true;
      } else if (key == "shape" && !seen_shape) {
        h.shape = int_tuple(), seen_shape = true;
      } else {
        fail("unexpected or repeated key '" + printable(key) + "'");
      }
      skip_space();
      if (peek() == ',') {
        ++at_;
        continue;
      }
      skip_space();
      if (peek() != '}') fail("expected ',' or '}' after the value of '" + key + "'");
    }
    expect('}');
    while (at_ < s_.size() && (s_[at_] == ' ' || s_[at_] == '\n' || s_[at_] == '\t' || s_[at_] == '\r')) ++at_;
    if (at_ != s_.size()) fail("unexpected bytes after the closing '}'");
    if (!seen_descr || !seen_order || !seen_shape)
      fail(std::string("missing key '") + (!seen_descr ? "descr" : !seen_order ? "fortran_order" : "shape") + "'");
    return h;
  }

  // Keeps messages one printable line whatever the file holds.
  static std::string printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 40)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (s.size() > 40) out += "...";
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    data_error(name_ + ": the .npy header is not one NumPy writes (" + why + " at byte " + std::to_string(at_) +
               " of the header); save the array with numpy.save");
  }
  char peek() const { return at_ < s_.size() ? s_[at_] : '\0'; }
  void skip_space() {
    while (at_ < s_.size() && (s_[at_] == ' ' || s_[at_] == '\t')) ++at_;
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++at_;
  }
  std::string string_literal() {
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    const std::size_t begin = ++at_;
    while (at_ < s_.size() && s_[at_] != q) {
      if (s_[at_] == '\\' || s_[at_] == '\n') fail("unsupported character in a string");
      ++at_;
    }
    if (at_ >= s_.size()) fail("unterminated string");
    return std::string(s_.substr(begin, at_++ - begin));
  }
  bool boolean() {
    for (const bool value : {true, false}) {
      const std::string_view word = value ? "True" : "False";
      if (s_.substr(at_, word.size()) == word) {
        at_ += word.size();
        return value;
      }
    }
    fail("expected True or False");
  }
  std::vector<std::uint64_t> int_tuple() {
    expect('(');
    std::vector<std::uint64_t> dims;
    for (;;) {
      skip_space();
      if (peek() == ')') break;
      if (peek() < '0' || peek() > '9') fail("expected a dimension");
      std::uint64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (v > (std::uint64_t{1} << 60)) fail("dimension too large");
        v = v * 10 + static_cast<std::uint64_t>(peek() - '0');
        ++at_;
      }
      if (peek() == 'L') ++at_;  // Python 2 longs
      dims.push_back(v);
      if (dims.size() > 32) fail("more than 32 dimensions");
      skip_space();
      if (peek() == ',') {
        ++at_;
        continue;
      }
      skip_space();
      if (peek() != ')') fail("expected ',' or ')' in the shape");
    }
    expect(')');
    return dims;
  }

  std::string_view s_;
  const std::string& name_;
  std::size_t at_ = 0;
};

inline std::uint32_t le(const unsigned char* p, int n) {
  std::uint32_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace detail

// Token ids from a file's bytes. `name` is the file's name: "*.npy" is NumPy format 1.0, 2.0 or
// 3.0 (one dimension, C order, little-endian <i4, <u2 or <u4, the header's shape equal to the
// data that follows); any other name is raw little-endian ids of `raw_dtype` (u16, u32, i32).
// Every id must lie in [0, vocab). Any other input is a config_error("data", ...) that says
// what is wrong and how to fix it, never another exception, a crash or a huge allocation.
inline std::vector<std::int32_t> parse_tokens(std::string_view bytes, const std::string& name,
                                              const std::string& raw_dtype, std::int64_t vocab) {
  std::size_t offset = 0;
  std::string dtype = raw_dtype;
  std::optional<std::uint64_t> declared;  // the .npy header's element count
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  if (name.ends_with(".npy")) {
    if (bytes.size() < 10 || bytes.substr(0, 6) != std::string_view("\x93NUMPY", 6))
      data_error(name +
                 " is not a .npy file (it does not start with \\x93NUMPY); save the array with numpy.save "
                 "or give a raw file with --data-dtype");
    const int major = u[6], minor = u[7];
    if (major < 1 || major > 3 || minor != 0)
      data_error(name + ": .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                 " is not 1.0, 2.0 or 3.0; save the array with numpy.save");
    std::uint64_t header_len = 0;
    if (major == 1) {
      header_len = detail::le(u + 8, 2);
      offset = 10;
    } else {
      if (bytes.size() < 12)
        data_error(name + ": the .npy header is truncated (" + std::to_string(bytes.size()) +
                   " bytes); the file is incomplete, write it again");
      header_len = detail::le(u + 8, 4);
      offset = 12;
    }
    if (header_len > bytes.size() - offset)
      data_error(name + ": the .npy header says it is " + std::to_string(header_len) + " bytes but the file holds " +
                 std::to_string(bytes.size() - offset) + " after the preamble; the file is truncated or not a .npy");
    const detail::npy_header h = detail::npy_header_parser(bytes.substr(offset, header_len), name).parse();
    offset += header_len;
    if (h.fortran_order)
      data_error(name + ": 'fortran_order': True; save a C-ordered 1-D array (numpy.ascontiguousarray)");
    if (h.descr == "<i4")
      dtype = "i32";
    else if (h.descr == "<u2")
      dtype = "u16";
    else if (h.descr == "<u4")
      dtype = "u32";
    else
      data_error(name + ": dtype '" + detail::npy_header_parser::printable(h.descr) +
                 "' is not <i4, <u2 or <u4; save the ids with .astype(numpy.int32) or .astype(numpy.uint16)");
    if (h.shape.size() != 1) {
      std::string shape = "(";
      for (std::size_t i = 0; i < h.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(h.shape[i]);
      data_error(name + ": shape " + shape + ") is " + std::to_string(h.shape.size()) +
                 "-D; save a 1-D array of ids (a.reshape(-1))");
    }
    declared = h.shape[0];
  } else if (dtype != "u16" && dtype != "u32" && dtype != "i32") {
    data_error("token dtype must be u16, u32 or i32, got '" + detail::npy_header_parser::printable(dtype) + "'");
  }
  const std::size_t width = dtype == "u16" ? 2 : 4;
  const std::size_t data_bytes = bytes.size() - offset;
  if (declared && *declared != data_bytes / width)
    data_error(name + ": the header's shape (" + std::to_string(*declared) + ",) is " + std::to_string(*declared) +
               " ids but " + std::to_string(data_bytes) + " bytes of " + dtype +
               " data follow it; the file is truncated or was not written by numpy.save");
  if (data_bytes % width != 0)
    data_error(name + ": " + std::to_string(data_bytes) + " bytes of data are not a whole number of " + dtype +
               (declared ? " ids" : " ids; give --data-dtype to match the file"));
  if (data_bytes == 0) data_error(name + " holds no token ids; give a file with at least one sequence of tokens");
  std::vector<std::int32_t> tokens(data_bytes / width);
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const std::uint32_t raw = detail::le(u + offset + i * width, static_cast<int>(width));
    const std::int64_t v = dtype == "i32" ? static_cast<std::int64_t>(static_cast<std::int32_t>(raw)) : raw;
    if (v < 0 || v >= vocab)
      data_error(name + ": token " + std::to_string(v) + " at position " + std::to_string(i) +
                 " is outside the vocabulary of " + std::to_string(vocab) + "; set --vocab to cover it or re-tokenize");
    tokens[i] = static_cast<std::int32_t>(v);
  }
  return tokens;
}

// The largest token file read_tokens accepts on this machine now, and why.
inline std::pair<std::uint64_t, std::string> token_file_limit() {
  const std::uint64_t avail = available_memory_bytes();
  // The file's bytes and the int32 ids read from them (twice the bytes for u16) stay within half
  // of what is available, leaving the rest to the model: a sixth for the file.
  if (avail != 0 && avail / 6 < max_token_file_bytes)
    return {avail / 6, "a sixth of the memory available now, " + std::to_string(avail >> 20) + " MiB"};
  return {max_token_file_bytes, "train_llama's limit for token files, 8 GiB"};
}

// Reads token ids from the file `path` (see parse_tokens), bounded by token_file_limit().
inline std::vector<std::int32_t> read_tokens(const std::string& path, const std::string& raw_dtype,
                                             std::int64_t vocab) {
  const auto [limit, why] = token_file_limit();
  const std::string bytes =
      trainperf::io::read_file(path, limit, "data",
                               "a token file (.npy or raw ids) of at most " + std::to_string(limit) + " bytes (" + why +
                                   "), e.g. a shard of the data");
  return parse_tokens(bytes, path, raw_dtype, vocab);
}

// Deterministic sample offsets: a function of (seed, step, micro-step, row) only, so a resumed
// run reads exactly what an uninterrupted one would.
inline std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Rows of a micro-batch are the consecutive global samples [first, first + lbs) (for data
// parallelism: tp::data_shard's range for this rank); sample i of the run starts at a
// position drawn from (key, i), so any split of a global batch over ranks reads the same data.
inline void fill_batch(std::vector<std::int32_t>& in, std::vector<std::int32_t>& out,
                       const std::vector<std::int32_t>& data, std::uint64_t key, std::int64_t first, std::int64_t lbs,
                       std::int64_t T) {
  const auto span = static_cast<std::uint64_t>(data.size()) - static_cast<std::uint64_t>(T) - 1;
  for (std::int64_t b = 0; b < lbs; ++b) {
    const auto at = static_cast<std::size_t>(mix(key * 1315423911ULL + static_cast<std::uint64_t>(first + b)) % span);
    std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(at), T, in.begin() + b * T);
    std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(at) + 1, T, out.begin() + b * T);
  }
}

}  // namespace train_llama
