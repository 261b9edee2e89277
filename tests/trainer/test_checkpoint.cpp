// train_llama's checkpoints (examples/train_llama/checkpoint.hpp): a round trip is exact; a
// truncated, padded, bit-flipped, foreign or format-1 file is refused with a message naming it,
// and the model it was to be loaded into is left exactly as it was; a failed write leaves the
// previous checkpoint; output paths that cannot be written are refused up front.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "../../examples/train_llama/checkpoint.hpp"

namespace {

namespace fs = std::filesystem;
using train_llama::llama_params;

trainperf::transformer_spec small_spec(std::int64_t layers = 1, std::int64_t vocab = 16) {
  return {.layers = layers, .hidden = 8, .heads = 2, .kv_heads = 1, .ffn = 16, .vocab = vocab, .max_seq = 16};
}

void fill(llama_params& m, float base) {
  for (std::size_t i = 0; i < m.params.size(); ++i) {
    m.params[i] = base + static_cast<float>(i);
    m.adam_m[i] = base - static_cast<float>(i);
    m.adam_v[i] = base * 0.5f + static_cast<float>(i);
  }
}

bool same_state(const llama_params& a, const llama_params& b) {
  return a.params == b.params && a.adam_m == b.adam_m && a.adam_v == b.adam_v;
}

struct temp_dir {
  fs::path path = fs::temp_directory_path() / ("trainer_ckpt_" + std::to_string(::getpid()));
  temp_dir() { fs::create_directories(path); }
  ~temp_dir() { fs::remove_all(path); }
};

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_all(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// The message load_checkpoint refuses `path` with, and that m was not touched.
std::string refusal(const fs::path& path, llama_params& m, std::uint64_t seed = 7) {
  const llama_params before = m;
  std::string what = "(loaded)";
  try {
    (void)train_llama::load_checkpoint(path.string(), m, seed);
  } catch (const trainperf::config_error& e) {
    CHECK(e.field() == "resume");
    what = e.what();
    CHECK(what.find(path.string()) != std::string::npos);
    CHECK(what.find('\n') == std::string::npos);
  }
  CHECK(same_state(before, m));
  return what;
}

}  // namespace

TEST_CASE("a checkpoint round-trips exactly, with its step") {
  temp_dir d;
  llama_params a(small_spec()), b(small_spec());
  fill(a, 1.25f);
  fill(b, -3.0f);
  const std::string path = (d.path / "ck.bin").string();
  train_llama::save_checkpoint(path, a, 42, 7);
  CHECK(fs::file_size(path) == train_llama::checkpoint_file_bytes(a.total));
  CHECK(!fs::exists(path + ".tmp"));
  CHECK(train_llama::load_checkpoint(path, b, 7) == 42);
  CHECK(same_state(a, b));
}

TEST_CASE("truncated, padded and bit-flipped checkpoints are refused before the model is touched") {
  temp_dir d;
  llama_params a(small_spec()), m(small_spec());
  fill(a, 2.0f);
  fill(m, -1.0f);
  const fs::path good = d.path / "good.bin", bad = d.path / "bad.bin";
  train_llama::save_checkpoint(good.string(), a, 5, 7);
  const std::string bytes = read_all(good);
  const std::size_t n = bytes.size();

  for (std::size_t len :
       {std::size_t{1}, std::size_t{7}, std::size_t{20}, std::size_t{95}, std::size_t{96}, n / 2, n - 8, n - 1}) {
    CAPTURE(len);
    write_all(bad, bytes.substr(0, len));
    const std::string w = refusal(bad, m);
    CHECK((w.find("truncated") != std::string::npos || w.find("not a train_llama checkpoint") != std::string::npos));
  }
  write_all(bad, bytes + "x");
  CHECK(refusal(bad, m).find("more than the " + std::to_string(n) + " this reader accepts") != std::string::npos);

  // Every bit of the header and the checksum, and bits across the payload.
  std::vector<std::size_t> positions;
  for (std::size_t i = 0; i < 96; ++i) positions.push_back(i);
  for (std::size_t i = 96; i < n - 8; i += 97) positions.push_back(i);
  for (std::size_t i = n - 8; i < n; ++i) positions.push_back(i);
  for (std::size_t at : positions)
    for (int bit : {0, 3, 7}) {
      CAPTURE(at);
      CAPTURE(bit);
      std::string flipped = bytes;
      flipped[at] = static_cast<char>(flipped[at] ^ (1 << bit));
      write_all(bad, flipped);
      const std::string w = refusal(bad, m);
      CHECK(w != "(loaded)");
    }
  // A payload flip is caught by the checksum (format 1 loaded it silently).
  std::string flipped = bytes;
  flipped[200] = static_cast<char>(flipped[200] ^ 0x10);
  write_all(bad, flipped);
  CHECK(refusal(bad, m).find("fails its checksum") != std::string::npos);
}

TEST_CASE("a checkpoint of another model or seed, or of format 1, is refused with what it is") {
  temp_dir d;
  llama_params two_layers(small_spec(2)), m(small_spec()), big_vocab(small_spec(1, 64));
  fill(two_layers, 1.0f);
  fill(m, 3.0f);
  fill(big_vocab, 4.0f);
  const fs::path p = d.path / "other.bin";
  train_llama::save_checkpoint(p.string(), m, 3, 7);
  CHECK(refusal(p, m, 8).find("was written for another model or seed") != std::string::npos);
  CHECK(refusal(p, big_vocab).find("was written for another model or seed (layers 1, hidden 8") != std::string::npos);
  train_llama::save_checkpoint(p.string(), two_layers, 3, 7);
  CHECK(refusal(p, m).find("this reader accepts; give a train_llama checkpoint of this model") != std::string::npos);

  std::string v1("TPLLAMA1", 8);
  v1.resize(80 + 12 * static_cast<std::size_t>(m.total), '\0');
  write_all(p, v1);
  CHECK(refusal(p, m).find("format-1 train_llama checkpoint") != std::string::npos);
  write_all(p, std::string(100, 'z'));
  CHECK(refusal(p, m).find("is not a train_llama checkpoint") != std::string::npos);
  CHECK(refusal(d.path, m).find("is a directory") != std::string::npos);
}

// A checkpoint file made here from its documented layout (checkpoint.hpp's comment), format 2
// or 3, with the part `info` says.
std::string handmade(const llama_params& m, train_llama::checkpoint_info info, std::uint32_t version) {
  const auto header = train_llama::detail::encode_header(info, version);
  std::string body(reinterpret_cast<const char*>(header.data()), header.size());
  for (const auto* v : {&m.params, &m.adam_m, &m.adam_v})
    body.append(reinterpret_cast<const char*>(v->data()), v->size() * sizeof(float));
  unsigned char trailer[8];
  train_llama::detail::put_le(trailer, train_llama::fnv1a64(body.data(), body.size()), 8);
  return body + std::string(reinterpret_cast<const char*>(trailer), 8);
}

TEST_CASE("format 2 still loads; a shard read in another part's place is refused") {
  temp_dir d;
  llama_params a(small_spec()), b(small_spec());
  fill(a, 2.5f);
  const fs::path p = d.path / "v2.bin";
  write_all(p, handmade(a, train_llama::checkpoint_info_of(a, 5, 7), 2));
  CHECK(train_llama::load_checkpoint(p.string(), b, 7) == 5);
  CHECK(same_state(a, b));
  // The same bytes under format 3 but recorded as tensor rank 1 of 2 (a shard of the same shape
  // as this model's whole: the per-rank dimensions are not compared for the part).
  train_llama::checkpoint_info other = train_llama::checkpoint_info_of(a, 5, 7);
  other.tp = 2, other.tp_rank = 1;
  write_all(p, handmade(a, other, 3));
  CHECK(refusal(p, b).find("holds tensor rank 1 of 2, pipeline stage 0 (1 model chunk), read as tensor rank 0 of 1") !=
        std::string::npos);
  other = train_llama::checkpoint_info_of(a, 5, 7);
  other.stage = 1;
  write_all(p, handmade(a, other, 3));
  CHECK(refusal(p, b).find("pipeline stage 1") != std::string::npos);
}

TEST_CASE("verify_checkpoint never allocates from a corrupted size field") {
  llama_params m(small_spec());
  std::string bytes(128, '\0');
  const auto header = train_llama::detail::encode_header({0, std::int64_t{1} << 62, 1, 8, 2, 1, 16, 16, 7});
  bytes.replace(0, header.size(), reinterpret_cast<const char*>(header.data()), header.size());
  CHECK_THROWS_WITH_AS(train_llama::verify_checkpoint(bytes, "x"), doctest::Contains("corrupted header"),
                       trainperf::config_error);
}

TEST_CASE("a failed write leaves the previous checkpoint, and says whether there was one") {
  temp_dir d;
  llama_params a(small_spec()), b(small_spec());
  fill(a, 1.0f);
  fill(b, 9.0f);
  const std::string path = (d.path / "ck.bin").string();
  train_llama::save_checkpoint(path, a, 1, 7);
  const std::string before = read_all(path);
  fs::create_directory(path + ".tmp");  // the temporary file cannot be created
  CHECK_THROWS_WITH_AS(train_llama::save_checkpoint(path, b, 2, 7),
                       doctest::Contains("the previous checkpoint there is untouched"), trainperf::config_error);
  CHECK(read_all(path) == before);
  const std::string fresh = (d.path / "fresh.bin").string();
  fs::create_directory(fresh + ".tmp");
  CHECK_THROWS_WITH_AS(train_llama::save_checkpoint(fresh, b, 2, 7), doctest::Contains("no checkpoint was written"),
                       trainperf::config_error);
}

TEST_CASE("output paths that cannot be written are refused before any work") {
  temp_dir d;
  const auto err = [](const std::string& path, bool renamed) {
    try {
      trainperf::io::check_output_path(path, "checkpoint", renamed);
    } catch (const trainperf::config_error& e) {
      CHECK(e.field() == "checkpoint");
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  CHECK(err(d.path.string(), true).find("is a directory") != std::string::npos);
  CHECK(err((d.path / "no" / "ck.bin").string(), true).find("which does not exist; create it first") !=
        std::string::npos);
  CHECK(err("/proc/ck.bin", true).find("no file can be created in /proc") != std::string::npos);
  write_all(d.path / "file", "x");
  CHECK(err((d.path / "file" / "ck.bin").string(), true).find("which is not a folder") != std::string::npos);
  REQUIRE(::mkfifo((d.path / "fifo").c_str(), 0600) == 0);
  CHECK(err((d.path / "fifo").string(), true).find("is not a regular file") != std::string::npos);
  CHECK(err((d.path / "ok.bin").string(), true) == "(accepted)");
  CHECK(err("/dev/null", false) == "(accepted)");  // a log may go to a device
  CHECK(err((d.path / "fifo").string(), false).find("is not a regular file") != std::string::npos);
  std::size_t left = 0;
  for (const auto& e : fs::directory_iterator(d.path)) left += e.path().filename().string().starts_with(".train_llama");
  CHECK(left == 0);  // the probe file was removed
}
