// Token data for the example trainer: an embedded procedurally generated corpus (byte-level),
// and pre-tokenized files (raw uint16/uint32, NumPy .npy int32/uint16), ids checked against
// the vocabulary.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <trainperf/error.hpp>

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

// Reads token ids: "path.npy" (NumPy format 1.0/2.0, little-endian <i4, <u2, <u4, C order, 1-D)
// or raw little-endian "path.u16" / "path.u32" / "path.bin" (with dtype u16/u32).
inline std::vector<std::int32_t> read_tokens(const std::string& path, const std::string& raw_dtype,
                                             std::int64_t vocab) {
  std::ifstream in(path, std::ios::binary);
  if (!in) data_error("cannot open token file " + path);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t offset = 0;
  std::string dtype = raw_dtype;
  if (path.size() >= 4 && path.substr(path.size() - 4) == ".npy") {
    if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0) data_error(path + " is not a .npy file");
    const int major = static_cast<unsigned char>(bytes[6]);
    std::size_t header_len = 0;
    if (major == 1) {
      header_len =
          static_cast<unsigned char>(bytes[8]) | (static_cast<std::size_t>(static_cast<unsigned char>(bytes[9])) << 8);
      offset = 10;
    } else {
      if (bytes.size() < 12) data_error(path + ": truncated .npy header");
      for (int i = 0; i < 4; ++i)
        header_len |= static_cast<std::size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
      offset = 12;
    }
    if (offset + header_len > bytes.size()) data_error(path + ": truncated .npy header");
    const std::string header(bytes.data() + offset, header_len);
    offset += header_len;
    if (header.find("'fortran_order': True") != std::string::npos)
      data_error(path + ": Fortran-ordered arrays are not supported");
    if (header.find("'<i4'") != std::string::npos)
      dtype = "i32";
    else if (header.find("'<u2'") != std::string::npos)
      dtype = "u16";
    else if (header.find("'<u4'") != std::string::npos)
      dtype = "u32";
    else
      data_error(path + ": dtype must be <i4, <u2 or <u4 (header: " + header + ")");
  }
  const std::size_t width = dtype == "u16" ? 2 : 4;
  if (dtype != "u16" && dtype != "u32" && dtype != "i32")
    data_error("token dtype must be u16, u32 or i32, got '" + dtype + "'");
  if ((bytes.size() - offset) % width != 0)
    data_error(path + ": " + std::to_string(bytes.size() - offset) + " bytes of data are not a whole number of " +
               dtype);
  std::vector<std::int32_t> tokens((bytes.size() - offset) / width);
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(bytes.data() + offset + i * width);
    std::int64_t v =
        width == 2
            ? (p[0] | (p[1] << 8))
            : static_cast<std::int64_t>(p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<std::uint32_t>(p[3]) << 24));
    if (dtype == "i32") v = static_cast<std::int32_t>(static_cast<std::uint32_t>(v));
    if (v < 0 || v >= vocab)
      data_error(path + ": token " + std::to_string(v) + " at position " + std::to_string(i) +
                 " is outside the vocabulary of " + std::to_string(vocab) + "; set --vocab to cover it or re-tokenize");
    tokens[i] = static_cast<std::int32_t>(v);
  }
  return tokens;
}

}  // namespace train_llama
