// train_llama's checkpoints: the host model's fp32 parameters and AdamW moments after a step,
// with a format version and a checksum, so that a truncated, corrupted, padded or foreign file
// is refused with a message before any of the model's state is touched, and written so that
// a crash at any moment leaves either the previous checkpoint or the new one, never a mix
// (temporary file, fsync, rename, fsync of the folder).
//
// Format 3, little-endian:
//   offset  0  char[8]   "TPLLCKPT"
//           8  u32       format version (3)
//          12  u32       header bytes (120)
//          16  i64 x 9   step, parameters (total), layers, hidden, heads, kv heads, ffn, vocab, seed
//          88  i64 x 4   the part of the model: tensor-parallel size, tensor rank, pipeline stage,
//                        model chunks (1, 0, 0, 1 for a whole model), so that a shard read in
//                        another part's place is refused even where the two have the same shape
//         120  f32 x 3 x total   parameters, AdamW m, AdamW v (the flat layout of params.hpp)
//   120 + 12 x total  u64  FNV-1a (64-bit) of every byte before it
// Format 2 is format 3 without the part (header 88 bytes): still read, its part unchecked.
// Format 1 (magic "TPLLAMA1", a raw struct and the payload, no checksum) is recognized and refused.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <trainperf/error.hpp>
#include <trainperf/io/file.hpp>

#include "params.hpp"

namespace train_llama {

static_assert(std::endian::native == std::endian::little, "checkpoints store the host's fp32 bytes little-endian");

inline constexpr char checkpoint_magic[8] = {'T', 'P', 'L', 'L', 'C', 'K', 'P', 'T'};
inline constexpr std::uint32_t checkpoint_version = 3;
inline constexpr std::uint64_t checkpoint_header_bytes = 120, checkpoint_trailer_bytes = 8;
inline constexpr std::uint64_t checkpoint_v2_header_bytes = 88;  // format 2, still read

// What a checkpoint says about itself; all but step must match the model it is loaded into
// (the part, tp .. chunks, only where the file records it: format 3).
struct checkpoint_info {
  std::int64_t step = 0, total = 0, layers = 0, hidden = 0, heads = 0, kv_heads = 0, ffn = 0, vocab = 0;
  std::uint64_t seed = 0;
  std::int64_t tp = 1, tp_rank = 0, stage = 0, chunks = 1;
  bool has_part = true;  // false: a format-2 file
};

inline checkpoint_info checkpoint_info_of(const llama_params& m, std::int64_t step, std::uint64_t seed) {
  return {step,
          m.total,
          m.L,
          m.C,
          m.Hq,
          m.Hkv,
          m.F,
          m.V,
          seed,
          m.tp,
          m.tp_rank,
          m.stage,
          static_cast<std::int64_t>(m.chunks.size())};
}

// The file size for `total` parameters after a header of `header` bytes; 0 when total is not a
// size any file can have.
constexpr std::uint64_t checkpoint_file_bytes(std::int64_t total, std::uint64_t header = checkpoint_header_bytes) {
  if (total <= 0 || static_cast<std::uint64_t>(total) > (std::uint64_t{1} << 56)) return 0;
  return header + 12 * static_cast<std::uint64_t>(total) + checkpoint_trailer_bytes;
}

// FNV-1a, 64-bit (Fowler, Noll, Vo): offset basis 14695981039346656037, prime 1099511628211.
inline constexpr std::uint64_t fnv1a64_basis = 14695981039346656037ULL;
inline std::uint64_t fnv1a64(const void* data, std::size_t n, std::uint64_t h = fnv1a64_basis) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

namespace detail {

inline void put_le(unsigned char* p, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
inline std::uint64_t get_le(const unsigned char* p, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// The header of format 3 (or, for tests of the older files, format 2: the same less the part).
inline std::vector<unsigned char> encode_header(const checkpoint_info& c, std::uint32_t version = checkpoint_version) {
  const std::uint64_t bytes = version == 2 ? checkpoint_v2_header_bytes : checkpoint_header_bytes;
  std::vector<unsigned char> h(bytes);
  std::memcpy(h.data(), checkpoint_magic, 8);
  put_le(h.data() + 8, version, 4);
  put_le(h.data() + 12, bytes, 4);
  const std::int64_t fields[13] = {
      c.step, c.total,   c.layers, c.hidden, c.heads, c.kv_heads, c.ffn, c.vocab, static_cast<std::int64_t>(c.seed),
      c.tp,   c.tp_rank, c.stage,  c.chunks};
  for (std::uint64_t i = 0; 16 + 8 * i < bytes; ++i)
    put_le(h.data() + 16 + 8 * i, static_cast<std::uint64_t>(fields[i]), 8);
  return h;
}
inline std::string describe_part(const checkpoint_info& c) {
  return "tensor rank " + std::to_string(c.tp_rank) + " of " + std::to_string(c.tp) + ", pipeline stage " +
         std::to_string(c.stage) + " (" + std::to_string(c.chunks) + " model chunk" + (c.chunks == 1 ? "" : "s") + ")";
}

inline std::string describe(const checkpoint_info& c) {
  return "layers " + std::to_string(c.layers) + ", hidden " + std::to_string(c.hidden) + ", heads " +
         std::to_string(c.heads) + ", kv heads " + std::to_string(c.kv_heads) + ", ffn " + std::to_string(c.ffn) +
         ", vocab " + std::to_string(c.vocab) + ", " + std::to_string(c.total) + " parameters, seed " +
         std::to_string(c.seed);
}

}  // namespace detail

// Checks a whole checkpoint's bytes: magic, version, header, size, checksum and, when `want`
// is given, that it was written for that model and seed (step is not compared). Returns what
// the checkpoint says about itself. Anything wrong is a config_error(field, message starting
// with `name`); nothing else is thrown, nothing is allocated.
inline checkpoint_info verify_checkpoint(std::string_view bytes, const std::string& name,
                                         const checkpoint_info* want = nullptr, const std::string& field = "resume") {
  const auto fail = [&](const std::string& why) { throw trainperf::config_error(field, name + " " + why); };
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() >= 8 && bytes.substr(0, 8) == std::string_view("TPLLAMA1", 8))
    fail(
        "is a format-1 train_llama checkpoint (no checksum), which this train_llama no longer reads; train "
        "again from the start, or resume it with the train_llama that wrote it");
  if (bytes.size() < 8 || bytes.substr(0, 8) != std::string_view(checkpoint_magic, 8))
    fail("is not a train_llama checkpoint (no TPLLCKPT magic); give a file written by train_llama --checkpoint");
  const auto truncated = [&] {
    fail("is truncated (" + std::to_string(bytes.size()) +
         " bytes, shorter than a checkpoint's header); the write was interrupted, use an earlier checkpoint");
  };
  if (bytes.size() < checkpoint_v2_header_bytes + checkpoint_trailer_bytes) truncated();
  const std::uint64_t version = detail::get_le(u + 8, 4), header = detail::get_le(u + 12, 4);
  if (version != checkpoint_version && version != 2)
    fail("is checkpoint format " + std::to_string(version) + "; this train_llama reads formats 2 and " +
         std::to_string(checkpoint_version) + " (the file is corrupted, or from another train_llama version)");
  const std::uint64_t want_header = version == 2 ? checkpoint_v2_header_bytes : checkpoint_header_bytes;
  if (header != want_header)
    fail("has a header of " + std::to_string(header) + " bytes, not " + std::to_string(want_header) +
         "; the file is corrupted, use an earlier checkpoint");
  if (bytes.size() < header + checkpoint_trailer_bytes) truncated();
  std::int64_t f[13] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1};  // format 2: no part
  for (std::uint64_t i = 0; 16 + 8 * i < header; ++i)
    f[i] = static_cast<std::int64_t>(detail::get_le(u + 16 + 8 * i, 8));
  const checkpoint_info got{f[0], f[1],  f[2],  f[3],  f[4],        f[5], f[6], f[7], static_cast<std::uint64_t>(f[8]),
                            f[9], f[10], f[11], f[12], version != 2};
  const std::uint64_t expect = checkpoint_file_bytes(got.total, header);
  if (expect == 0)
    fail("has a corrupted header (" + std::to_string(got.total) + " parameters); use an earlier checkpoint");
  if (bytes.size() != expect)
    fail("is " + std::to_string(bytes.size()) + " bytes but its header says " + std::to_string(expect) + " (" +
         std::to_string(got.total) + " parameters): it is " + (bytes.size() < expect ? "truncated" : "padded") +
         " or corrupted; use an earlier checkpoint");
  const std::uint64_t stored = detail::get_le(u + expect - checkpoint_trailer_bytes, 8);
  const std::uint64_t computed = fnv1a64(bytes.data(), expect - checkpoint_trailer_bytes);
  if (stored != computed)
    fail("fails its checksum (FNV-1a stored " + std::to_string(stored) + ", computed " + std::to_string(computed) +
         "): the file is corrupted; use an earlier checkpoint");
  if (got.step < 0) fail("has a corrupted header (step " + std::to_string(got.step) + "); use an earlier checkpoint");
  if (want != nullptr && (got.total != want->total || got.layers != want->layers || got.hidden != want->hidden ||
                          got.heads != want->heads || got.kv_heads != want->kv_heads || got.ffn != want->ffn ||
                          got.vocab != want->vocab || got.seed != want->seed))
    fail("was written for another model or seed (" + detail::describe(got) + "; this run: " + detail::describe(*want) +
         "); resume with the flags that wrote it");
  if (want != nullptr && got.has_part &&
      (got.tp != want->tp || got.tp_rank != want->tp_rank || got.stage != want->stage || got.chunks != want->chunks))
    fail("holds " + detail::describe_part(got) + ", read as " + detail::describe_part(*want) +
         ": the checkpoint's files were moved or renamed; restore them, or use another checkpoint");
  return got;
}

// Verifies a whole checkpoint's bytes against m and seed, then copies them into m and returns
// its step; m is written only once everything checked out.
inline std::int64_t restore_checkpoint(std::string_view bytes, const std::string& name, llama_params& m,
                                       std::uint64_t seed, const std::string& field = "resume") {
  const checkpoint_info want = checkpoint_info_of(m, 0, seed);
  const checkpoint_info got = verify_checkpoint(bytes, name, &want, field);
  const char* at = bytes.data() + (got.has_part ? checkpoint_header_bytes : checkpoint_v2_header_bytes);
  for (auto* v : {&m.params, &m.adam_m, &m.adam_v}) {
    std::memcpy(v->data(), at, v->size() * sizeof(float));
    at += v->size() * sizeof(float);
  }
  return got.step;
}

// Loads the checkpoint at `path` into m and returns its step: the file is read whole (through
// io::read_file, at most the size this model's checkpoint has), verified, then committed.
inline std::int64_t load_checkpoint(const std::string& path, llama_params& m, std::uint64_t seed,
                                    const std::string& field = "resume") {
  const std::uint64_t size = checkpoint_file_bytes(m.total);
  const std::string bytes = trainperf::io::read_file(path, size, field,
                                                     "a train_llama checkpoint of this model (" + std::to_string(size) +
                                                         " bytes: " + detail::describe(checkpoint_info_of(m, 0, seed)) +
                                                         "), written with the same flags");
  return restore_checkpoint(bytes, path, m, seed, field);
}

namespace detail {

inline std::string errno_text(int e) { return std::strerror(e); }

// Makes a rename in `dir` durable (POSIX leaves it in the page cache until the folder is synced).
inline bool fsync_dir(const std::filesystem::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  return (::close(fd) == 0) && ok;
}

inline bool write_all(int fd, const void* data, std::size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w, n -= static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace detail

// Writes `path` so that a crash leaves either the old file or the whole new one: write(fd)
// fills a temporary file beside it (returning false on a failed write), which is synced,
// renamed over `path`, and the folder synced. Errors name `path`, what failed and `field`'s flag.
template <class Writer>
void write_atomically(const std::string& path, const std::string& field, Writer&& write) {
  namespace fs = std::filesystem;
  const std::string tmp = path + ".tmp";
  std::error_code exists_ec;  // the error_code overload: never a filesystem_error after a whole run
  const bool had = fs::is_regular_file(path, exists_ec);
  const auto fail = [&](const std::string& what, int e) {
    throw trainperf::config_error(
        field, path + ": " + what + " failed (" + detail::errno_text(e) + "); " +
                   (had ? "the previous checkpoint there is untouched" : "no checkpoint was written") +
                   "; free space or choose another --" + field + " path");
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("creating " + tmp, errno);
  bool ok = write(fd) && ::fsync(fd) == 0;
  const int write_errno = errno;
  ok = (::close(fd) == 0) && ok;
  if (!ok) {
    ::unlink(tmp.c_str());
    fail("writing " + tmp, write_errno);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    fail("renaming " + tmp + " to it", e);
  }
  if (!detail::fsync_dir(fs::path(path).parent_path()) && errno != EINVAL)  // EINVAL: the file system cannot
    throw trainperf::config_error(field, path + " was written, but syncing its folder failed (" +
                                             detail::errno_text(errno) +
                                             "); it may not survive a power loss, check the file system");
}

// Writes m's parameters and AdamW moments after `step` to `path`: atomically
// (write_atomically). On failure path is as it was.
inline void save_checkpoint(const std::string& path, const llama_params& m, std::int64_t step, std::uint64_t seed,
                            const std::string& field = "checkpoint") {
  write_atomically(path, field, [&](int fd) {
    const auto header = detail::encode_header(checkpoint_info_of(m, step, seed));
    std::uint64_t sum = fnv1a64(header.data(), header.size());
    bool ok = detail::write_all(fd, header.data(), header.size());
    for (const auto* v : {&m.params, &m.adam_m, &m.adam_v}) {
      if (!ok) break;
      sum = fnv1a64(v->data(), v->size() * sizeof(float), sum);
      ok = detail::write_all(fd, v->data(), v->size() * sizeof(float));
    }
    unsigned char trailer[checkpoint_trailer_bytes];
    detail::put_le(trailer, sum, 8);
    return ok && detail::write_all(fd, trailer, sizeof trailer);
  });
}

}  // namespace train_llama
