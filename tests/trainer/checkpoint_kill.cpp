// A checkpoint survives its writer being killed at any moment: a child process writes
// checkpoints of distinct, reproducible contents in a loop and is SIGKILLed after a random
// short delay, many times (seeded: the same delays every run). After each kill the file at
// the path must load and verify, and hold exactly one of the versions the child wrote in
// full (never a mix of two, never a truncated one).
//
//   trainer_checkpoint_kill DIR [KILLS (default 60)] [SEED (default 1)]
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include "../../examples/train_llama/checkpoint.hpp"

namespace {

trainperf::transformer_spec spec() {
  // 106,816 parameters: a 1.3 MB file, long enough to be killed in the middle of a write.
  return {.layers = 2, .hidden = 64, .heads = 4, .kv_heads = 2, .ffn = 128, .vocab = 256, .max_seq = 16};
}

// Version v's contents, a function of v alone; a file that mixed two versions fails this.
void fill(train_llama::llama_params& m, std::int64_t v) {
  for (std::size_t i = 0; i < m.params.size(); ++i) {
    const auto x = static_cast<float>((static_cast<std::uint64_t>(v) * 2654435761ULL + i) % 1000003);
    m.params[i] = x, m.adam_m[i] = -x, m.adam_v[i] = x + 0.5f;
  }
}

bool holds_version(const train_llama::llama_params& m, std::int64_t v) {
  train_llama::llama_params want(spec());
  fill(want, v);
  return m.params == want.params && m.adam_m == want.adam_m && m.adam_v == want.adam_v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: trainer_checkpoint_kill DIR [KILLS] [SEED]\n");
    return 2;
  }
  namespace fs = std::filesystem;
  const fs::path dir = argv[1];
  const int kills = argc > 2 ? std::atoi(argv[2]) : 60;
  const unsigned seed = argc > 3 ? static_cast<unsigned>(std::atoi(argv[3])) : 1u;
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "ck.bin").string();
  const std::uint64_t data_seed = 11;

  train_llama::llama_params m(spec());
  fill(m, 0);
  train_llama::save_checkpoint(path, m, 0, data_seed);  // version 0: there is always a complete one

  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_us(0, 40000);
  int mid_write = 0, failures = 0;
  std::int64_t last_seen = 0;
  for (int k = 0; k < kills; ++k) {
    const std::int64_t first = (k + 1) * std::int64_t{1000000};  // the versions this child writes
    const pid_t child = fork();
    if (child < 0) {
      std::perror("fork");
      return 1;
    }
    if (child == 0) {
      train_llama::llama_params c(spec());
      for (std::int64_t v = first;; ++v) {
        fill(c, v);
        train_llama::save_checkpoint(path, c, v, data_seed);
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(rng)));
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    if (fs::exists(path + ".tmp")) ++mid_write;
    train_llama::llama_params got(spec());
    try {
      const std::int64_t v = train_llama::load_checkpoint(path, got, data_seed);
      const bool from_before = v == last_seen, from_child = v >= first && v < first + 1000000;
      if (!(from_before || from_child) || !holds_version(got, v)) {
        std::fprintf(stderr, "kill %d: the checkpoint holds version %lld, not one written in full\n", k,
                     static_cast<long long>(v));
        ++failures;
      }
      last_seen = v;
    } catch (const trainperf::config_error& e) {
      std::fprintf(stderr, "kill %d: the checkpoint does not load: %s\n", k, e.what());
      ++failures;
    }
  }
  std::printf("%d kills, %d of them with a temporary file left (killed mid-write), %d failures\n", kills, mid_write,
              failures);
  fs::remove_all(dir);
  return failures == 0 ? 0 : 1;
}
