// train_llama — a small Llama-architecture trainer on trainperf's CPU kernels that measures
// itself with trainperf: the configuration is validated by trainperf before the first step,
// FLOPs, MFU and the memory prediction come from trainperf, and the run ends with the seed
// reports' result row. Also the example of how a third-party trainer embeds trainperf.
//
//   train_llama [--model tiny|PRESET|config.json] [--seq 128] [--lbs 8] [--gas 1] [--steps 150]
//               [--data tokens.npy|tokens.u16 [--data-dtype u16|u32|i32]] [--checkpoint FILE]
//               [--resume FILE] [--peak-flops X] [--log FILE] [--device cpu|cuda] ...
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <trainperf/kernels/cpu/kernels.hpp>
#include <trainperf/trainperf.hpp>

#ifdef TRAINPERF_WITH_MPI
#include <trainperf/comm/mpi.hpp>
#endif

#include "../trainperf/args.hpp"
#include "../trainperf/model_flags.hpp"
#include "data.hpp"
#include "engine.hpp"
#include "model.hpp"

namespace tp = trainperf;
using tp::cli::args;
using tp::cli::flag;
using tp::cli::usage_error;
using train_llama::i64;
using clk = std::chrono::steady_clock;

namespace {

std::vector<flag> trainer_flags() {
  auto f = tp::cli::model_flags();
  for (auto& x : f)
    if (x.name == "model") x.help = "a preset or config.json (default tiny)";
  for (const auto& x : std::vector<flag>{
           {"lbs", "N", "micro batch, sequences (default 8)"},
           {"gas", "N", "gradient-accumulation steps (default 1)"},
           {"steps", "N", "optimizer steps (default 300)"},
           {"lr", "X", "peak learning rate (default 3e-3)"},
           {"warmup", "N", "warm-up steps (default 10)"},
           {"clip", "X", "gradient-norm clip (default 1.0)"},
           {"seed", "N", "seed of the initialization and the data order (default 1)"},
           {"data", "FILE", "pre-tokenized tokens (.npy int32/uint16, or raw with --data-dtype)"},
           {"data-dtype", "u16|u32|i32", "raw token file dtype (default u16)"},
           {"corpus-bytes", "N", "size of the embedded generated corpus (default 2000000)"},
           {"eval-every", "N", "evaluate on held-out data every N steps (default 50)"},
           {"log-every", "N", "progress line every N steps (default 10)"},
           {"checkpoint", "FILE", "write a checkpoint (atomically) at the end and every --checkpoint-every steps"},
           {"checkpoint-every", "N", "steps between checkpoints"},
           {"resume", "FILE", "resume from a checkpoint"},
           {"device", "cpu|cuda", "where to train (default cpu); cuda: bf16 compute, fp32 master weights"},
           {"gemm", "trainperf|mma_sync|cublaslt",
            "cuda: the matmul backend (default trainperf: wgmma on sm_90a where it applies, else mma.sync)"},
           {"peak-flops", "X",
            "device peak for MFU (default: the GPU's dense bf16 peak from trainperf's device "
            "table; on the CPU, measured by a GEMM probe)"},
           {"log", "FILE", "write every step's loss (exact, hex) to FILE"},
           {"threads", "N", "OpenMP threads (default: all cores)"},
           {"profile", "", "time every kernel family and print the breakdown"},
           {"help", "", "show this help"},
       })
    f.push_back(x);
  return f;
}

// Deterministic sample offsets: a function of (seed, step, micro-step, row) only, so a resumed
// run reads exactly what an uninterrupted one would.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Rows of a micro-batch are the consecutive global samples [first, first + lbs) (for data
// parallelism: tp::data_shard's range for this rank); sample i of the run starts at a
// position drawn from (key, i), so any split of a global batch over ranks reads the same data.
void fill_batch(std::vector<std::int32_t>& in, std::vector<std::int32_t>& out, const std::vector<std::int32_t>& data,
                std::uint64_t key, i64 first, i64 lbs, i64 T) {
  const auto span = static_cast<std::uint64_t>(data.size()) - static_cast<std::uint64_t>(T) - 1;
  for (i64 b = 0; b < lbs; ++b) {
    const auto at = static_cast<std::size_t>(mix(key * 1315423911ULL + static_cast<std::uint64_t>(first + b)) % span);
    std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(at), T, in.begin() + b * T);
    std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(at) + 1, T, out.begin() + b * T);
  }
}

// ---- checkpoints: temporary file, fsync, rename -----------------------------------------------
struct ckpt_header {
  char magic[8] = {'T', 'P', 'L', 'L', 'A', 'M', 'A', '1'};
  std::int64_t step = 0, total = 0, layers = 0, hidden = 0, heads = 0, kv_heads = 0, ffn = 0, vocab = 0, seed = 0;
};

void save_checkpoint(const std::string& path, const train_llama::llama& m, i64 step, std::uint64_t seed) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) throw tp::config_error("checkpoint", "cannot write " + tmp);
  ckpt_header h;
  h.step = step, h.total = m.total, h.layers = m.L, h.hidden = m.C, h.heads = m.Hq, h.kv_heads = m.Hkv, h.ffn = m.F;
  h.vocab = m.V, h.seed = static_cast<std::int64_t>(seed);
  bool ok = std::fwrite(&h, sizeof h, 1, f) == 1;
  for (const auto* v : {&m.params, &m.adam_m, &m.adam_v})
    ok = ok && std::fwrite(v->data(), sizeof(float), v->size(), f) == v->size();
  ok = ok && std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw tp::config_error("checkpoint", "writing " + path + " failed; the previous checkpoint is untouched");
  }
}

i64 load_checkpoint(const std::string& path, train_llama::llama& m, std::uint64_t seed) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw tp::config_error("resume", "cannot open checkpoint " + path);
  ckpt_header h, want;
  bool ok = std::fread(&h, sizeof h, 1, f) == 1 && std::equal(h.magic, h.magic + 8, want.magic);
  if (!ok) {
    std::fclose(f);
    throw tp::config_error("resume", path + " is not a train_llama checkpoint");
  }
  if (h.total != m.total || h.layers != m.L || h.hidden != m.C || h.heads != m.Hq || h.kv_heads != m.Hkv ||
      h.ffn != m.F || h.vocab != m.V || h.seed != static_cast<std::int64_t>(seed)) {
    std::fclose(f);
    throw tp::config_error("resume", path + " was written for another model or seed (layers " +
                                         std::to_string(h.layers) + ", hidden " + std::to_string(h.hidden) + ", seed " +
                                         std::to_string(h.seed) + "); resume with the same flags");
  }
  for (auto* v : {&m.params, &m.adam_m, &m.adam_v})
    ok = ok && std::fread(v->data(), sizeof(float), v->size(), f) == v->size();
  std::fclose(f);
  if (!ok) throw tp::config_error("resume", path + " is truncated");
  return h.step;
}

// Dense fp32 GEMM throughput of this machine, with the trainer's own kernel and threads.
double gemm_probe() {
  const i64 n = 512;
  std::vector<float> a(static_cast<std::size_t>(n * n), 0.5f), b(a.size(), 0.25f), c(a.size());
  tp::kernels::cpu::linear_forward(c.data(), a.data(), b.data(), nullptr, n, n, n);  // warm-up
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = clk::now();
    for (int i = 0; i < 4; ++i) tp::kernels::cpu::linear_forward(c.data(), a.data(), b.data(), nullptr, n, n, n);
    const double s = std::chrono::duration<double>(clk::now() - t0).count();
    best = std::max(best, 4 * 2.0 * n * n * n / s);
  }
  return best;
}

std::int64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<std::int64_t>(u.ru_maxrss) * 1024;  // Linux reports KiB
}

// trainperf's CPU kernels on the host model (fp32), data parallel over MPI when built with it.
class cpu_engine final : public train_llama::engine {
 public:
  cpu_engine(train_llama::llama& m, i64 B, i64 T, int world) : m_(m), act_(m.make_activations(B, T)), world_(world) {
#ifdef TRAINPERF_WITH_MPI
    if (world > 1) dp_ = std::make_unique<tp::comm::mpi_group>(tp::layout(world, {}), "dp");
#endif
  }
  std::string name() const override {
    return fmt::format("CPU {} process{} x {} threads", world_, world_ > 1 ? "es" : "", omp_get_max_threads());
  }
  tp::dtype compute_dtype() const override { return tp::dtype::fp32; }
  void zero_grads() override { std::fill(m_.grads.begin(), m_.grads.end(), 0.0f); }
  float step(const std::int32_t* tokens, const std::int32_t* targets, bool backward, float loss_scale) override {
    return m_.step(act_, tokens, targets, backward, loss_scale);
  }
  void allreduce_grads() override {
#ifdef TRAINPERF_WITH_MPI
    if (dp_) dp_->allreduce_sum(m_.grads.data(), m_.total);  // layout.hpp's "dp" groups
#endif
  }
  float clip_and_update(float clip, const train_llama::adamw_step& c, i64 step) override {
    const float norm = tp::kernels::cpu::clip_grad_norm(m_.grads.data(), m_.total, clip);
    tp::kernels::cpu::adamw(
        m_.params.data(), m_.grads.data(), m_.adam_m.data(), m_.adam_v.data(), m_.total,
        {.lr = c.lr, .beta1 = c.beta1, .beta2 = c.beta2, .eps = c.eps, .weight_decay = c.weight_decay}, step);
    return norm;
  }
  void to_host(train_llama::llama_params&) override {}  // the host model is the model
  train_llama::memory_reading memory() const override {
    return {peak_rss_bytes(), static_cast<std::int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE), "peak RSS"};
  }
  std::pair<double, std::string> default_peak() const override {
    return {gemm_probe(), "this machine's fp32 GEMM, measured now (512^3)"};
  }

 private:
  train_llama::llama& m_;
  train_llama::llama::activations act_;
  int world_;
#ifdef TRAINPERF_WITH_MPI
  std::unique_ptr<tp::comm::mpi_group> dp_;
#endif
};

}  // namespace

#ifndef TRAINPERF_WITH_CUDA
std::unique_ptr<train_llama::engine> train_llama::make_cuda_engine(const llama_params&, i64, i64, int,
                                                                   const std::string&) {
  throw tp::config_error("device",
                         "this train_llama was built without CUDA (CMake found no nvcc); rebuild where nvcc is "
                         "(/usr/local/cuda/bin or CUDACXX), or train with --device cpu");
}
#endif

namespace {

int run(const args& a) {
  // ---- configuration, validated by trainperf before anything runs
  tp::cli::model_choice mc = tp::cli::model_from_args(a, /*seq_sets_max_seq=*/false);
  tp::transformer_spec& spec = mc.spec;
  if (spec.mlp != tp::mlp_kind::swiglu || spec.norm != tp::norm_kind::rmsnorm ||
      spec.positions != tp::position_kind::rotary || spec.linear_bias || spec.is_moe() || spec.vision.present())
    throw tp::config_error("model",
                           "train_llama trains Llama-architecture models (RMSNorm, SwiGLU, rotary, no biases, "
                           "dense, text only); " +
                               mc.name + " is not one");
  const i64 T = a.get_int("seq").value_or(spec.max_seq), lbs = a.get_int("lbs").value_or(8),
            gas = a.get_int("gas").value_or(1);
  const i64 steps = a.get_int("steps").value_or(300);
  spec.max_seq = std::max(spec.max_seq, T);  // rotary positions: no table bounds the sequence
  // Data parallelism over processes (mpirun -np N): one replica per rank, TP = PP = 1.
  int world = 1, rank = 0;
#ifdef TRAINPERF_WITH_MPI
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
#endif
  const i64 dp = world;
  const tp::batch_config batch = tp::solve_batch({.lbs = lbs, .gas = gas, .dp = dp, .seq = T});
  const auto violations =
      tp::check_parallel({}, {.world = world, .model = spec, .seq = T, .gbs = batch.gbs, .lbs = lbs});
  if (!violations.empty()) throw tp::config_error(violations.front().field, violations.front().message);

  const std::uint64_t seed = static_cast<std::uint64_t>(a.get_int("seed").value_or(1));
  if (auto t = a.get_int("threads")) omp_set_num_threads(static_cast<int>(*t));

  // ---- data
  std::vector<std::int32_t> tokens;
  std::string data_name;
  if (auto path = a.get("data")) {
    tokens = train_llama::read_tokens(*path, a.get("data-dtype").value_or("u16"), spec.vocab);
    data_name = *path;
  } else {
    if (spec.vocab < 256) throw tp::config_error("vocab", "the embedded byte-level corpus needs vocab >= 256");
    tokens = train_llama::bytes_to_tokens(train_llama::generate_corpus(
        static_cast<std::size_t>(a.get_int("corpus-bytes").value_or(2'000'000)), 20261123));
    data_name = "embedded generated corpus (byte-level)";
  }
  const std::size_t split = tokens.size() * 9 / 10;
  const std::vector<std::int32_t> train(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(split));
  const std::vector<std::int32_t> heldout(tokens.begin() + static_cast<std::ptrdiff_t>(split), tokens.end());
  if (static_cast<i64>(heldout.size()) <= T + 1)
    throw tp::config_error(
        "data", fmt::format("{} tokens are too few for sequences of {} (10% are held out)", tokens.size(), T));

  // ---- model, engine, FLOPs, memory prediction
  const bool lead = rank == 0;  // rank 0 prints, logs and checkpoints
  train_llama::llama m(spec);
  m.init(seed);
  m.profile = a.has("profile");
  double optimizer_seconds = 0;
  i64 start = 0;
  if (auto r = a.get("resume")) start = load_checkpoint(*r, m, seed);
  const std::string device = a.get("device").value_or("cpu");
  std::unique_ptr<train_llama::engine> eng;
  if (device == "cpu")
    eng = std::make_unique<cpu_engine>(m, lbs, T, world);
  else if (device == "cuda")
    eng = train_llama::make_cuda_engine(m, lbs, T, world, a.get("gemm").value_or("trainperf"));
  else
    throw usage_error("--device is cpu or cuda, got '" + device + "'");
  const bool cpu = device == "cpu";
  const tp::flops_count fl =
      tp::count_flops(spec, {.convention = tp::flops_convention::megatron, .seq = T, .causal = true});
  const auto [peak, peak_source] = a.has("peak-flops")
                                       ? std::pair<double, std::string>{*a.get_double("peak-flops"), "--peak-flops"}
                                       : eng->default_peak();
  // The engine's own accounting: fp32 everything on the CPU; on the GPU bf16 weights for
  // compute beside fp32 master weights, fp32 gradients and AdamW states (18 bytes per
  // parameter), bf16 activations. No runtime overhead: the prediction is what the trainer
  // allocates; the measured figure adds the CUDA context and the allocator.
  const tp::memory_estimate mem = tp::estimate_memory(spec, {}, 1,
                                                      {.lbs = lbs,
                                                       .seq = T,
                                                       .micro_batches = gas,
                                                       .param_dtype = cpu ? tp::dtype::fp32 : tp::dtype::bf16,
                                                       .fp32_grads = !cpu,
                                                       .runtime_overhead_bytes = 0,
                                                       .activation_overhead = 0});
  if (!lead && std::freopen("/dev/null", "w", stdout) == nullptr) return 2;  // one voice: rank 0's
  fmt::print("train_llama: {} ({} parameters), seq {}, LBS {} x GAS {} x DP {} = GBS {} ({} tokens/step), {} steps\n",
             mc.name, tp::format_count(m.total), T, lbs, gas, dp, batch.gbs, batch.tokens_per_step(), steps);
  fmt::print(
      "data: {} ({} tokens, {} held out); trainperf: config valid, {:.3g} training FLOPs/token (megatron, causal)\n",
      data_name, tokens.size(), heldout.size(), fl.model_per_token());
  fmt::print("peak for MFU: {:.3g} FLOP/s ({})\n", peak, peak_source);

  // ---- training
  const float lr_max = static_cast<float>(a.get_double("lr").value_or(3e-3));
  const i64 warmup = a.get_int("warmup").value_or(10);
  const float clip = static_cast<float>(a.get_double("clip").value_or(1.0));
  const i64 eval_every = a.get_int("eval-every").value_or(50), log_every = a.get_int("log-every").value_or(10);
  const i64 ckpt_every = a.get_int("checkpoint-every").value_or(0);
  const auto ckpt = a.get("checkpoint");
  std::FILE* log = nullptr;
  if (auto path = a.get("log"); path && lead) {
    log = std::fopen(path->c_str(), start > 0 ? "a" : "w");
    if (log == nullptr) throw tp::config_error("log", "cannot write " + *path);
  }
  std::vector<std::int32_t> in(static_cast<std::size_t>(lbs * T)), out(in.size());
  const auto evaluate = [&] {
    double total = 0;
    const i64 batches = 4;
    for (i64 i = 0; i < batches; ++i) {
      fill_batch(in, out, heldout, 0xe7a1ULL, i * lbs, lbs, T);
      total += eng->step(in.data(), out.data(), false, 1.0f);
    }
    return total / batches;
  };
  tp::meter meter(
      {.model_flops_per_token = fl.model_per_token(), .peak_flops = peak, .devices = dp, .warmup_steps = 2});
  float loss = 0, first_loss = -1;
  const auto t_start = clk::now();
  for (i64 s = start; s < steps; ++s) {
    const auto t0 = clk::now();
    eng->zero_grads();
    loss = 0;
    for (i64 micro = 0; micro < gas; ++micro) {
      const tp::sample_range r = tp::data_shard(batch.gbs, lbs, dp, s, micro, rank);
      fill_batch(in, out, train, seed, r.first, lbs, T);
      loss +=
          eng->step(in.data(), out.data(), true, 1.0f / static_cast<float>(gas * dp)) / static_cast<float>(gas * dp);
    }
    eng->allreduce_grads();
#ifdef TRAINPERF_WITH_MPI
    if (dp > 1) {
      double sum = loss;
      MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
      loss = static_cast<float>(sum);
    }
#endif
    const auto t_opt = clk::now();
    const float lr = s < warmup
                         ? lr_max * static_cast<float>(s + 1) / static_cast<float>(warmup)
                         : 0.1f * lr_max + 0.45f * lr_max *
                                               (1.0f + std::cos(3.14159265f * static_cast<float>(s - warmup) /
                                                                static_cast<float>(std::max<i64>(1, steps - warmup))));
    const float norm = eng->clip_and_update(clip, {.lr = lr, .weight_decay = 0.1f}, s + 1);
    optimizer_seconds += std::chrono::duration<double>(clk::now() - t_opt).count();
    meter.step_sequences(batch.gbs, T, std::chrono::duration<double>(clk::now() - t0).count());
    meter.report_memory(eng->memory().used);
    if (first_loss < 0) first_loss = loss;
    if (log != nullptr)
      std::fprintf(log, "step %lld loss %a\n", static_cast<long long>(s + 1), static_cast<double>(loss));
    if ((s + 1) % log_every == 0 || s + 1 == steps) {
      const int width = 30, done = static_cast<int>(width * (s + 1) / steps);
      const auto w = meter.windowed();
      fmt::print("step {:>5}/{} [{}{}] loss {:.4f} | grad norm {:.3f} | {:.0f} tok/s\n", s + 1, steps,
                 std::string(done, '='), std::string(width - done, ' '), loss, norm,
                 w ? w->tokens_per_device_per_s : 0.0);
      std::fflush(stdout);
    }
    if (eval_every > 0 && (s + 1) % eval_every == 0) fmt::print("  held-out loss {:.4f}\n", evaluate());
    if (lead && ckpt && ckpt_every > 0 && (s + 1) % ckpt_every == 0) {
      eng->to_host(m);
      save_checkpoint(*ckpt, m, s + 1, seed);
    }
  }
  if (log != nullptr) std::fclose(log);
  if (lead && ckpt) {
    eng->to_host(m);
    save_checkpoint(*ckpt, m, steps, seed);
  }
  const double eval_loss = evaluate();
  const double wall = std::chrono::duration<double>(clk::now() - t_start).count();

  // ---- the report row, computed by trainperf
  const auto st = meter.running();
  if (!st) {
    fmt::print("too few steps after warm-up for a throughput figure (run more than 2 steps)\n");
    return 0;
  }
  fmt::print("\ntrained {} steps in {:.1f} s; loss {:.4f} -> {:.4f}, held-out {:.4f}\n", steps - start, wall,
             first_loss, loss, eval_loss);
  const train_llama::memory_reading used = eng->memory();
  fmt::print("memory: {} {} vs trainperf's model of this run {} ({}); capacity {}\n", used.what,
             tp::format_bytes(used.used), tp::format_bytes(static_cast<std::int64_t>(mem.max_total())),
             cpu ? "fp32 weights, grads, AdamW states, activations"
                 : "bf16 weights + fp32 master, fp32 grads, AdamW states, bf16 activations, logits",
             tp::format_bytes(used.capacity));
  fmt::print("{}\n", tp::markdown_header());  // mem: measured / capacity, GiB
  const tp::report_row row{eng->name(),
                           std::string(tp::to_string(eng->compute_dtype())),
                           fmt::format("TP1PP1DP{}", dp),
                           fmt::format("LBS={} GAS={} MPE={}", lbs, gas, T),
                           st->tokens_per_device_per_s,
                           static_cast<double>(loss),
                           static_cast<double>(used.used) / static_cast<double>(tp::GiB),
                           static_cast<double>(used.capacity) / static_cast<double>(tp::GiB),
                           st->mfu};
  fmt::print("{}\n", tp::to_markdown(row, {.loss = {4, tp::rounding::nearest},
                                           .memory = {2, tp::rounding::nearest},
                                           .mfu = {1, tp::rounding::nearest}}));
  fmt::print("TFLOP/s per device {:.3f} (model FLOPs, megatron convention, causal); MFU against {}\n",
             st->tflops_per_device, peak_source);
  if (m.profile && cpu) {
    double kernels = optimizer_seconds;
    for (double x : m.seconds) kernels += x;
    fmt::print("time per kernel family (all steps, evaluation forwards included; {:.1f} s of {:.1f} s wall):\n",
               kernels, wall);
    for (std::size_t i = 0; i < m.seconds.size(); ++i)
      fmt::print("  {:<16}{:>9.2f} s {:>6.1f}%\n", train_llama::llama::kernel_names[i], m.seconds[i],
                 100 * m.seconds[i] / wall);
    fmt::print("  {:<16}{:>9.2f} s {:>6.1f}%\n", "clip + AdamW", optimizer_seconds, 100 * optimizer_seconds / wall);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> all(argv + 1, argv + argc);
  // The default model is the tiny preset; overrides (--layers, --heads, ...) apply to it.
  if (std::find(all.begin(), all.end(), "--model") == all.end() &&
      std::find_if(all.begin(), all.end(), [](const std::string& x) { return x.rfind("--model=", 0) == 0; }) ==
          all.end())
    all.insert(all.begin(), {"--model", "tiny"});
#ifdef TRAINPERF_WITH_MPI
  MPI_Init(&argc, &argv);
  struct finalize {
    ~finalize() { MPI_Finalize(); }
  } finalize_at_exit;
#endif
  try {
    const args a(all, trainer_flags());
    if (a.has("help")) {
      fmt::print("usage: train_llama [flags]\n");
      for (const auto& f : a.known())
        fmt::print("  {:<28}{}\n",
                   f.value.empty() ? fmt::format("--{}", f.name) : fmt::format("--{} {}", f.name, f.value), f.help);
      return 0;
    }
    return run(a);
  } catch (const usage_error& e) {
    fmt::print(stderr, "train_llama: {}\n", e.what());
  } catch (const tp::config_error& e) {
    fmt::print(stderr, "train_llama: {}\n", e.what());
  } catch (const std::exception& e) {  // a device, NCCL or MPI failure: say it, and stop every rank
    fmt::print(stderr, "train_llama: {}\n", e.what());
#ifdef TRAINPERF_WITH_MPI
    int world = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (world > 1) MPI_Abort(MPI_COMM_WORLD, 1);  // the other ranks may wait in a collective
#endif
    return 1;
  }
  return 2;
}
