// train_llama — a small Llama-architecture trainer on trainperf's CPU kernels that measures
// itself with trainperf: the configuration is validated by trainperf before the first step,
// FLOPs, MFU and the memory prediction come from trainperf, and the run ends with the seed
// reports' result row. Also the example of how a third-party trainer embeds trainperf.
//
//   train_llama [--model tiny|PRESET|config.json] [--seq 128] [--lbs 8] [--gas 1] [--steps 150]
//               [--data tokens.npy|tokens.u16 [--data-dtype u16|u32|i32]] [--checkpoint FILE]
//               [--resume FILE] [--peak-flops X] [--log FILE] [--device cpu|cuda] ...
//   mpirun -np 8 train_llama --tp 2 --pp 2 --dp 2 ...   (tensor x pipeline x data parallel over MPI)
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <trainperf/kernels/cpu/kernels.hpp>
#include <trainperf/trainperf.hpp>

#ifdef TRAINPERF_WITH_MPI
#include <mpi.h>
#endif

#include "../trainperf/args.hpp"
#include "../trainperf/model_flags.hpp"
#include "checkpoint.hpp"
#include "data.hpp"
#include "engine.hpp"
#include "engine_cpu.hpp"
#include "host.hpp"
#include "metrics_file.hpp"
#include "model.hpp"
#include "parallel.hpp"
#include "progress.hpp"
#include "sharded_checkpoint.hpp"

namespace tp = trainperf;
using tp::cli::args;
using tp::cli::flag;
using tp::cli::usage_error;
using train_llama::i64;
using clk = std::chrono::steady_clock;
using train_llama::cpu_engine;
using train_llama::current_rss_bytes;
using train_llama::fill_batch;
using train_llama::format_duration;
using train_llama::peak_rss_bytes;
using train_llama::progress;

namespace {

std::vector<flag> trainer_flags() {
  auto f = tp::cli::model_flags();
  for (auto& x : f)
    if (x.name == "model") x.help = "a preset or config.json (default tiny)";
  for (const auto& x : std::vector<flag>{
           {"lbs", "N", "micro batch, sequences (default 8)"},
           {"gas", "N", "gradient-accumulation steps (default 1)"},
           {"tp", "N", "tensor-parallel ranks (MPI processes; default 1): Megatron-LM's column/row/vocabulary split"},
           {"pp", "N", "pipeline stages (MPI processes; default 1): layers per stage from trainperf's partitioner"},
           {"vpp", "N", "model chunks per pipeline stage (default 1; > 1: the interleaved schedule)"},
           {"schedule", tp::cli::choices_of(tp::pipeline_schedule_names),
            "pipeline schedule (default 1f1b, interleaved with --vpp > 1); --gas is the micro-batch count"},
           {"sp", "", "sequence parallelism with --tp (Megatron-LM's): norms and residuals on 1/tp of the tokens"},
           {"replicate-kv-heads", "",
            "with fewer key/value heads than --tp: each on tp / kv-heads tensor ranks, their gradients summed "
            "(vLLM's rule; Megatron-LM needs kv-heads divisible by tp)"},
           {"dp", "N", "data-parallel replicas (default: the MPI world / (tp x pp))"},
           {"zero", "0|1",
            "1: the distributed optimizer (ZeRO stage 1): AdamW states sharded over the data-parallel ranks, "
            "gradients reduce-scattered, weights all-gathered (default 0)"},
           {"steps", "N", "optimizer steps (default 300)"},
           {"lr", "X", "peak learning rate (default 3e-3)"},
           {"warmup", "N", "warm-up steps (default 10)"},
           {"clip", "X", "gradient-norm clip (default 1.0)"},
           {"seed", "N", "seed of the initialization and the data order (default 1)"},
           {"data", "FILE",
            "pre-tokenized tokens (.npy int32/uint16/uint32, or raw with --data-dtype); read whole, at most 8 GiB "
            "and a sixth of the available memory"},
           {"data-dtype", "u16|u32|i32", "raw token file dtype (default u16)"},
           {"corpus-bytes", "N", "size of the embedded generated corpus (default 2000000)"},
           {"eval-every", "N", "evaluate on held-out data every N steps (default 50)"},
           {"log-every", "N", "progress line every N steps (default 10)"},
           {"progress-every", "S", "say what the run is doing at least every S seconds of wall time (default 10)"},
           {"checkpoint", "FILE", "write a checkpoint (atomically) at the end and every --checkpoint-every steps"},
           {"checkpoint-every", "N", "steps between checkpoints"},
           {"resume", "FILE", "resume from a checkpoint"},
           {"device", "cpu|cuda", "where to train (default cpu); cuda: bf16 compute, fp32 master weights"},
           {"gemm", "trainperf|mma_sync|cublaslt",
            "cuda: the matmul backend (default trainperf: wgmma on sm_90a where it applies, else mma.sync)"},
           {"peak-flops", "X",
            "device peak for MFU (default: the GPU's dense bf16 peak from trainperf's device "
            "table; on the CPU, measured by a GEMM probe)"},
           {"log", "FILE", "write every step's loss and gradient norm before clipping (exact, hex) to FILE"},
           {"metrics", "FILE",
            "write one JSON object per progress line (token/p/s, MFU, loss, memory, the run's settings) to FILE, "
            "for `trainperf report --metrics FILE`"},
           {"threads", "N", "OpenMP threads (default: all cores)"},
           {"profile", "", "time every kernel family and print the breakdown"},
           {"help", "", "show this help"},
       })
    f.push_back(x);
  return f;
}

}  // namespace

#ifndef TRAINPERF_WITH_CUDA
std::unique_ptr<train_llama::engine> train_llama::make_cuda_engine(llama_params&, i64, i64, const parallel_runtime&,
                                                                   const cuda_options&) {
  throw tp::config_error("device",
                         "this train_llama was built without CUDA (CMake found no nvcc); rebuild where nvcc is "
                         "(/usr/local/cuda/bin or CUDACXX), or train with --device cpu");
}
#endif

namespace {

int run(const args& a) {
  // ---- every flag, read and checked before any work: a mistake costs no set-up time
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
  const std::uint64_t seed = static_cast<std::uint64_t>(a.get_int("seed").value_or(1));
  const auto threads = a.get_int("threads");
  if (threads && *threads > 4096)
    throw usage_error(fmt::format("--threads {} is more than 4096; give at most the cores", *threads));
  const float lr_max = static_cast<float>(a.get_double("lr").value_or(3e-3));
  const i64 warmup = a.get_int("warmup").value_or(10);
  const float clip = static_cast<float>(a.get_double("clip").value_or(1.0));
  const i64 eval_every = a.get_int("eval-every").value_or(50), log_every = a.get_int("log-every").value_or(10);
  const double progress_every = a.get_double("progress-every").value_or(10.0);
  const i64 ckpt_every = a.get_int("checkpoint-every").value_or(0);
  const auto ckpt = a.get("checkpoint"), resume = a.get("resume"), log_path = a.get("log"), data_path = a.get("data");
  const auto metrics_path = a.get("metrics");
  if (ckpt_every > 0 && !ckpt)
    throw usage_error(
        fmt::format("--checkpoint-every {} writes nothing without --checkpoint FILE; give both", ckpt_every));
  static constexpr std::string_view dtypes[] = {"u16", "u32", "i32"}, devices[] = {"cpu", "cuda"},
                                    gemms[] = {"trainperf", "mma_sync", "cublaslt"};
  const std::string data_dtype = a.get_choice("data-dtype", dtypes).value_or("u16");
  const std::string device = a.get_choice("device", devices).value_or("cpu");
  const std::string gemm = a.get_choice("gemm", gemms).value_or("trainperf");
  const std::optional<double> peak_flag = a.get_double("peak-flops");
  const i64 corpus_bytes = a.get_int("corpus-bytes").value_or(2'000'000);
  if (!data_path && spec.vocab < 256)
    throw tp::config_error("vocab", fmt::format("the embedded byte-level corpus needs --vocab >= 256, got {}; give "
                                                "--data with your own tokens or a larger vocabulary",
                                                spec.vocab));
  const bool cpu = device == "cpu";

  // The processes (mpirun -np N) laid out by trainperf: tp x pp x dp = the world, checked with the
  // model before anything is built.
  int world = 1, rank = 0;
#ifdef TRAINPERF_WITH_MPI
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
#endif
  const i64 vpp = a.get_int("vpp").value_or(1);
  const tp::pipeline_schedule kind =
      a.get_named("schedule", tp::pipeline_schedule_names)
          .value_or(vpp > 1 ? tp::pipeline_schedule::interleaved : tp::pipeline_schedule::one_f_one_b);
  static constexpr std::string_view zero_stages[] = {"0", "1"};
  const bool zero1 = a.get_choice("zero", zero_stages).value_or("0") == "1";
  const tp::parallel_config pc{.tp = a.get_int("tp").value_or(1),
                               .pp = a.get_int("pp").value_or(1),
                               .dp = a.get_int("dp").value_or(0),
                               .vpp = vpp,
                               .sequence_parallel = a.has("sp"),
                               .replicate_kv_heads = a.has("replicate-kv-heads"),
                               .zero_stage = zero1 ? 1 : 0};
  if (pc.tp < 1 || pc.pp < 1 || pc.vpp < 1 || pc.dp < 0)
    throw usage_error(
        fmt::format("--tp {} / --pp {} / --vpp {} / --dp {}: give positive counts", pc.tp, pc.pp, pc.vpp, pc.dp));
  const i64 model_parallel = pc.tp * pc.pp, needed = model_parallel * std::max<i64>(pc.dp, 1);
  if (model_parallel > world || (pc.dp > 0 && needed != world))  // before the batch algebra divides by them
    throw tp::config_error(model_parallel > world ? "tp" : "dp",
                           fmt::format("--tp {}{}{} needs {} processes, and this run has {}; start it with mpirun -np "
                                       "{}{}",
                                       pc.tp, pc.pp > 1 ? fmt::format(" x --pp {}", pc.pp) : "",
                                       pc.dp > 0 ? fmt::format(" x --dp {}", pc.dp) : "", needed, world, needed,
                                       world == 1 ? " (a train_llama built with MPI)" : ""));
  const i64 dp = pc.dp_for(world);
  const tp::batch_config batch = tp::solve_batch({.lbs = lbs, .gas = gas, .dp = std::max<i64>(dp, 1), .seq = T});
  const auto violations =
      tp::check_parallel(pc, {.world = world, .model = spec, .seq = T, .gbs = batch.gbs, .lbs = lbs});
  if (!violations.empty()) throw tp::config_error(violations.front().field, violations.front().message);
  if (pc.pp > 1 && (kind == tp::pipeline_schedule::interleaved) != (pc.vpp > 1))
    throw tp::config_error("schedule", fmt::format("--schedule {} with --vpp {}: the interleaved schedule runs "
                                                   "--vpp > 1 model chunks per stage, the others one; change either",
                                                   tp::to_string(kind), pc.vpp));
  if (pc.pp > 1) (void)tp::make_schedule(kind, pc.pp, gas, pc.vpp);  // its own rules on --gas
  if (a.has("schedule") && pc.pp == 1)
    throw tp::config_error("schedule", fmt::format("--schedule {} orders a pipeline's micro-batches, and --pp 1 has no "
                                                   "pipeline; give --pp > 1 or drop --schedule",
                                                   tp::to_string(kind)));

  // Outputs: a run that cannot write its checkpoint or log says so now, not after training.
  if (ckpt) trainperf::io::check_output_path(*ckpt, "checkpoint", /*renamed_into_place=*/true);
  if (log_path) trainperf::io::check_output_path(*log_path, "log", /*renamed_into_place=*/false);
  if (metrics_path) trainperf::io::check_output_path(*metrics_path, "metrics", /*renamed_into_place=*/false);
  // The checkpoint to resume from is read once the model exists (its size is the model's); that
  // it is a readable file is checked now, before the data is read and the model built.
  if (resume)
    trainperf::io::check_input_file(*resume, std::numeric_limits<std::uintmax_t>::max(), "resume",
                                    "a checkpoint written by train_llama --checkpoint");

  // ---- FLOPs and the memory prediction, from the configuration alone (nothing is allocated yet).
  // The engine's own accounting: fp32 everything on the CPU; on the GPU bf16 weights for
  // compute beside fp32 master weights, fp32 gradients and AdamW states (18 bytes per
  // parameter), bf16 activations. No runtime overhead: the prediction is what the trainer
  // allocates; the measured figure adds the CUDA context and the allocator.
  const tp::flops_count fl =
      tp::count_flops(spec, {.convention = tp::flops_convention::megatron, .seq = T, .causal = true});
  const tp::memory_estimate mem = tp::estimate_memory(spec, pc, world,
                                                      {.lbs = lbs,
                                                       .seq = T,
                                                       .micro_batches = gas,
                                                       .param_dtype = cpu ? tp::dtype::fp32 : tp::dtype::bf16,
                                                       .fp32_grads = !cpu,
                                                       // AdamW updates the flat buffers element by
                                                       // element (kernels' clip_and_adamw): no
                                                       // foreach temporary.
                                                       .adam_implementation = tp::adam_step::fused,
                                                       .runtime_overhead_bytes = 0,
                                                       .activation_overhead = 0});
  const i64 n_params = tp::count_params(spec).total();
  // What this process allocates on the host: all of it on the CPU; with CUDA the host model's
  // fp32 weights, gradients and AdamW moments (params.hpp), the rest lives on the GPU.
  const double host_need = cpu ? mem.max_total() : 16.0 * static_cast<double>(n_params);
  const std::uint64_t avail = train_llama::available_memory_bytes();  // one reading of /proc/meminfo
  if (avail != 0 && host_need > static_cast<double>(avail)) {
    const double act = mem.stages.empty() ? 0.0 : mem.stages.front().activations;
    throw tp::config_error(
        "seq",
        fmt::format("trainperf predicts {} for this run ({} of them activations of --lbs {} x --seq {}), more than "
                    "the {} this machine has available (MemAvailable); lower --seq or --lbs{}",
                    tp::format_bytes(static_cast<std::int64_t>(host_need)),
                    tp::format_bytes(static_cast<std::int64_t>(act)), lbs, T,
                    tp::format_bytes(static_cast<std::int64_t>(avail)),
                    cpu ? ", or train a smaller --model"
                        : " (host memory holds the fp32 model and AdamW states: "
                          "train a smaller --model)"));
  }
  if (!data_path && avail != 0 && static_cast<double>(corpus_bytes) * 9 > static_cast<double>(avail))
    throw usage_error(
        fmt::format("--corpus-bytes {} needs about 9 bytes of memory per corpus byte, more than this "
                    "machine has available; give a smaller size",
                    corpus_bytes));

  const bool lead = rank == 0;                                               // rank 0 prints, logs and checkpoints
  if (!lead && std::freopen("/dev/null", "w", stdout) == nullptr) return 2;  // one voice: rank 0's
  if (threads) omp_set_num_threads(static_cast<int>(*threads));
  progress say(lead, progress_every);
  say.line(fmt::format(
      "train_llama: {} ({} parameters), seq {}, LBS {} x GAS {} x DP {} = GBS {} ({} tokens/step), {} steps", mc.name,
      tp::format_count(n_params), T, lbs, gas, dp, batch.gbs, batch.tokens_per_step(), steps));
  say.line(
      fmt::format("trainperf: config valid, {:.3g} training FLOPs/token (megatron, causal), memory predicted {} "
                  "({} available)",
                  fl.model_per_token(), tp::format_bytes(static_cast<std::int64_t>(mem.max_total())),
                  tp::format_bytes(static_cast<std::int64_t>(avail))));

  // ---- data
  std::vector<std::int32_t> tokens;
  std::string data_name;
  if (data_path) {
    say.phase("reading " + *data_path);
    tokens = train_llama::read_tokens(*data_path, data_dtype, spec.vocab);
    data_name = *data_path;
  } else {
    say.phase(fmt::format("generating the embedded corpus ({} bytes)", corpus_bytes), false);
    tokens =
        train_llama::bytes_to_tokens(train_llama::generate_corpus(static_cast<std::size_t>(corpus_bytes), 20261123));
    data_name = "embedded generated corpus (byte-level)";
  }
  const std::size_t split = tokens.size() * 9 / 10;
  const std::vector<std::int32_t> heldout(tokens.begin() + static_cast<std::ptrdiff_t>(split), tokens.end());
  tokens.resize(split);
  const std::vector<std::int32_t> train = std::move(tokens);
  if (static_cast<i64>(heldout.size()) <= T + 1)
    throw tp::config_error("data",
                           fmt::format("{} tokens are too few for sequences of {} (10% are held out); give more "
                                       "data or a shorter --seq",
                                       train.size() + heldout.size(), T));
  say.line(fmt::format("data: {} ({} tokens, {} held out)", data_name, train.size() + heldout.size(), heldout.size()));

  // The process before the model exists: libraries, the OpenMP runtime's threads, the data.
  // The report compares what training adds to it with trainperf's prediction.
#pragma omp parallel
  { (void)omp_get_thread_num(); }
  const std::int64_t baseline_rss = current_rss_bytes(), baseline_peak = peak_rss_bytes();

  // ---- model, engine, peak
  say.phase(fmt::format("building the model and its activations (predicted {})",
                        tp::format_bytes(static_cast<std::int64_t>(mem.max_total()))));
  const train_llama::parallel_runtime rt(world, rank, pc, spec.tied_embeddings,
                                         tp::kv_head_replicas(spec, pc.tp, pc.replicate_kv_heads));
  std::vector<tp::stage_layers> chunks;  // this rank's stage's, from trainperf's partitioner
  for (const auto& c : tp::partition_layers(spec.layers, pc.split()))
    if (c.stage == rt.coords().pp) chunks.push_back(c);
  train_llama::llama m(spec, {.tp = pc.tp,
                              .tp_rank = rt.coords().tp,
                              .chunks = chunks,
                              // ZeRO-1: the engine keeps a part (of the checkpoint's, when resuming)
                              .optimizer_states = !(zero1 && dp > 1) || resume.has_value()});
  m.sequence_parallel = pc.sequence_parallel;
  m.misplace_down_projection = std::getenv("TRAIN_LLAMA_TEST_MISPLACE_SHARD") != nullptr;
  m.init(seed);
  m.profile = a.has("profile");
  double optimizer_seconds = 0;
  std::vector<double> step_seconds;
  i64 start = 0;
  if (resume) {
    say.phase("reading and verifying checkpoint " + *resume, false);
    start = train_llama::load_any_checkpoint(*resume, m, seed);
    if (start >= steps)  // no step would run, and the checkpoint written at the end would go back in time
      throw tp::config_error("steps", fmt::format("--resume {} is at step {}, and --steps {} asks for no more; give "
                                                  "--steps above {} to continue",
                                                  *resume, start, steps, start));
  }
  std::unique_ptr<train_llama::engine> eng;
  if (cpu)
    eng = std::make_unique<cpu_engine>(m, lbs, T, rt, kind, gas, zero1);
  else
    eng = train_llama::make_cuda_engine(
        m, lbs, T, rt,
        {.schedule = kind, .gas = gas, .zero1 = zero1, .sequence_parallel = pc.sequence_parallel, .gemm = gemm});
  if (!peak_flag && cpu) say.phase("measuring this machine's fp32 GEMM peak for MFU");
  auto [peak, peak_source] =
      peak_flag ? std::pair<double, std::string>{*peak_flag, "--peak-flops"} : eng->default_peak();
  // One step's model FLOPs per device at the full peak: a floor on the step time.
  const double min_step_s =
      fl.model_per_token() * static_cast<double>(lbs * gas * T) / static_cast<double>(model_parallel) / peak;
  say.line(fmt::format(
      "peak for MFU: {:.3g} FLOP/s ({}){}", peak, peak_source,
      min_step_s >= 1 ? "; one step takes at least " + format_duration(min_step_s) + " at that peak" : std::string()));
  if (start > 0) say.line(fmt::format("resumed from {} after step {}", *resume, start));

  // ---- training
  std::FILE* log = nullptr;
  if (log_path && lead) {
    log = std::fopen(log_path->c_str(), start > 0 ? "a" : "w");
    if (log == nullptr)
      throw tp::config_error("log", fmt::format("{} cannot be written ({})", *log_path, std::strerror(errno)));
  }
  std::optional<train_llama::metrics_file> metrics;
  if (metrics_path && lead)
    metrics.emplace(
        *metrics_path, start > 0,
        nlohmann::ordered_json{{"run", fmt::format("{}-{}", static_cast<long long>(::getpid()),
                                                   std::chrono::system_clock::now().time_since_epoch().count())},
                               {"model", mc.name},
                               {"params", n_params},
                               {"device", cpu ? "CPU" : "GPU"},
                               {"engine", eng->name()},
                               {"precision", tp::to_string(eng->compute_dtype())},
                               {"tp", pc.tp},
                               {"pp", pc.pp},
                               {"dp", dp},
                               {"devices", world},
                               {"lbs", lbs},
                               {"gas", gas},
                               {"seq", T},
                               {"gbs", batch.gbs},
                               {"flops_per_token", fl.model_per_token()},
                               {"flops_convention", "megatron convention, causal attention halved"},
                               {"peak_flops", peak},
                               {"peak_source", peak_source},
                               {"memory_note", cpu ? "the process's peak RSS / the host's memory"
                                                   : "device memory in use / the device's"}});
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
  constexpr i64 timing_warmup = 2;  // steps left out of the throughput figures and the step-time statistics
  tp::meter meter({.model_flops_per_token = fl.model_per_token(),
                   .peak_flops = peak,
                   .devices = world,
                   .warmup_steps = timing_warmup});
  // One file from rank 0 (a data-parallel run's replicas are equal), or each tensor rank and
  // stage its shard and rank 0 the manifest (sharded_checkpoint.hpp).
  const auto write_checkpoint = [&](i64 step) {
    say.phase("writing checkpoint " + *ckpt, false);
    eng->to_host(m);
    if (model_parallel > 1)
      train_llama::save_sharded_checkpoint(*ckpt, m, rt, step, seed);
    else if (lead)
      train_llama::save_checkpoint(*ckpt, m, step, seed);
    eng->checkpoint_written(m);
  };
  float loss = 0, first_loss = -1;
  const auto t_start = clk::now();
  say.start_training(start, steps, min_step_s);
  // Tests only: TRAIN_LLAMA_TEST_KILL="rank:step" kills that rank (SIGKILL) in the middle of
  // that step, after its forward and backward and before the gradient reduction.
  i64 kill_rank = -1, kill_step = -1;
  if (const char* k = std::getenv("TRAIN_LLAMA_TEST_KILL"))
    if (std::sscanf(k, "%" SCNd64 ":%" SCNd64, &kill_rank, &kill_step) != 2) kill_rank = -1;
  for (i64 s = start; s < steps; ++s) {
    say.phase(fmt::format("step {}/{}", s + 1, steps), false);
    const auto t0 = clk::now();
    eng->zero_grads();
    const float share = 1.0f / static_cast<float>(gas * dp);  // of the global batch's mean loss, per micro-batch
    loss = share * eng->train_step(
                       [&](i64 micro, std::vector<std::int32_t>& tokens, std::vector<std::int32_t>& targets) {
                         const tp::sample_range r = tp::data_shard(batch.gbs, lbs, dp, s, micro, rt.coords().dp);
                         fill_batch(tokens, targets, train, seed, r.first, lbs, T);
                       },
                       gas, share, lbs * T);
    if (rank == kill_rank && s + 1 == kill_step) std::raise(SIGKILL);
    eng->allreduce_grads();
    if (dp > 1) loss = static_cast<float>(rt.dp_sum(static_cast<double>(loss)));
    const auto t_opt = clk::now();
    const float lr = s < warmup
                         ? lr_max * static_cast<float>(s + 1) / static_cast<float>(warmup)
                         : 0.1f * lr_max + 0.45f * lr_max *
                                               (1.0f + std::cos(3.14159265f * static_cast<float>(s - warmup) /
                                                                static_cast<float>(std::max<i64>(1, steps - warmup))));
    const float norm = eng->clip_and_update(clip, {.lr = lr, .weight_decay = 0.1f}, s + 1);
    optimizer_seconds += std::chrono::duration<double>(clk::now() - t_opt).count();
    const double step_s = std::chrono::duration<double>(clk::now() - t0).count();
    meter.step_sequences(batch.gbs, T, step_s);
    if (s - start >= timing_warmup) step_seconds.push_back(step_s);
    meter.report_memory(eng->memory().used);
    say.step_done(s + 1);
    if (first_loss < 0) first_loss = loss;
    if (log != nullptr)
      std::fprintf(log, "step %lld loss %a norm %a\n", static_cast<long long>(s + 1), static_cast<double>(loss),
                   static_cast<double>(norm));
    if ((s + 1) % log_every == 0 || s + 1 == steps) {
      const int width = 30, done = static_cast<int>(width * (s + 1) / steps);
      const auto w = meter.windowed();
      const double elapsed = std::chrono::duration<double>(clk::now() - t_start).count();
      const double eta = elapsed / static_cast<double>(s + 1 - start) * static_cast<double>(steps - s - 1);
      say.line(fmt::format("step {:>5}/{} [{}{}] loss {:.4f} | grad norm {:.3f} | {:.0f} tok/s | ETA {}", s + 1, steps,
                           std::string(done, '='), std::string(width - done, ' '), loss, norm,
                           w ? w->tokens_per_device_per_s : 0.0, format_duration(eta)));
      if (metrics && w) {
        const train_llama::memory_reading used = eng->memory();
        metrics->write(static_cast<long long>(s + 1), *w, static_cast<double>(loss),
                       w->peak_memory_bytes.value_or(used.used), used.capacity);
      }
    }
    if (eval_every > 0 && (s + 1) % eval_every == 0) {
      say.phase("evaluating the held-out loss", false);
      say.line(fmt::format("  held-out loss {:.4f}", evaluate()));
    }
    if (ckpt && ckpt_every > 0 && (s + 1) % ckpt_every == 0) write_checkpoint(s + 1);
  }
  if (log != nullptr) std::fclose(log);
  if (ckpt) write_checkpoint(steps);
  say.phase("evaluating the held-out loss", false);
  const double eval_loss = evaluate();
  const double wall = std::chrono::duration<double>(clk::now() - t_start).count();

  // ---- the report row, computed by trainperf
  auto st = meter.running();
  // On a shared machine the probe can run through a slow spell and read low; the steps then
  // outrun it. The peak is the best rate the kernel sustains, so measure it once more and keep
  // the better reading; should the steps still outrun it, the MFU stays refused below.
  if (st && !st->utilization_refused.empty() && !peak_flag) {
    say.phase("the steps ran faster than the GEMM probe's peak: measuring it again");
    const auto [again, again_source] = eng->default_peak();
    if (again > peak) {
      peak = again;
      peak_source = again_source + ", the better of two probes: the first read lower";
      meter.set_peak_flops(peak);
      st = meter.running();
    }
  }
  if (!st) {
    say.line("too few steps after warm-up for a throughput figure (run more than 2 steps)");
    return 0;
  }
  if (metrics) {  // the whole run after warm-up, against the final peak: the record a report takes
    metrics->set("peak_flops", peak);
    metrics->set("peak_source", peak_source);
    const train_llama::memory_reading now = eng->memory();
    metrics->write(static_cast<long long>(steps), *st, static_cast<double>(loss),
                   st->peak_memory_bytes.value_or(now.used), now.capacity);
  }
  say.line(fmt::format("\ntrained {} steps in {:.1f} s; loss {:.4f} -> {:.4f}, held-out {:.4f}", steps - start, wall,
                       first_loss, loss, eval_loss));
  if (!step_seconds.empty()) {  // what `trainperf predict` compares with (the undisturbed step: the fastest)
    std::sort(step_seconds.begin(), step_seconds.end());
    say.line(fmt::format(
        "step time over the {} steps after warm-up: median {:.6f} s, fastest {:.6f} s, slowest {:.6f} s",
        step_seconds.size(), step_seconds[step_seconds.size() / 2], step_seconds.front(), step_seconds.back()));
  }
  const train_llama::memory_reading used = eng->memory();
  const std::string accounting = cpu ? "fp32 weights, grads, AdamW states, activations"
                                     : "bf16 weights + fp32 master, fp32 grads, AdamW states, bf16 activations, logits";
  if (cpu) {
    // Peak RSS counts the whole process; trainperf predicts what training allocates. Say both
    // parts, so that the figures compared are what training added and the prediction.
    const std::int64_t added = std::max<std::int64_t>(0, used.used - baseline_rss);
    say.line(fmt::format(
        "memory: peak RSS {} = {} before the model was built (libraries, OpenMP runtime, data{}) + {} "
        "for training; trainperf's model of the training part {} ({}); capacity {}",
        tp::format_bytes(used.used), tp::format_bytes(baseline_rss),
        baseline_peak >= used.used ? "; the peak was reached while reading them" : "", tp::format_bytes(added),
        tp::format_bytes(static_cast<std::int64_t>(mem.max_total())), accounting, tp::format_bytes(used.capacity)));
    // Every rank's share: what training added to its peak RSS beside the model's figure for its
    // pipeline stage (one tensor shard's weights and states and its in-flight activations).
    const std::vector<double> per_rank = rt.gather(static_cast<double>(added));
    if (world > 1) {
      std::string ranks;
      for (std::size_t r = 0; r < per_rank.size(); ++r) {
        const tp::rank_coords c = rt.layout().coords(static_cast<i64>(r));
        ranks += fmt::format("{}rank {} (tp {} pp {} dp {}) {:.1f} / {:.1f} MiB", r ? ", " : "", r, c.tp, c.pp, c.dp,
                             per_rank[r] / tp::MiB, mem.stages[static_cast<std::size_t>(c.pp)].total() / tp::MiB);
      }
      say.line(fmt::format("memory added by training per rank, measured / trainperf's model of its stage: {}", ranks));
    }
  } else {
    say.line(fmt::format("memory: {} {} vs trainperf's model of this run {} ({}); capacity {}", used.what,
                         tp::format_bytes(used.used), tp::format_bytes(static_cast<std::int64_t>(mem.max_total())),
                         accounting, tp::format_bytes(used.capacity)));
  }
  say.line(tp::markdown_header());  // mem: measured / capacity, GiB
  const tp::report_row row{eng->name(),
                           std::string(tp::to_string(eng->compute_dtype())),
                           fmt::format("TP{}PP{}DP{}", pc.tp, pc.pp, dp),
                           fmt::format("LBS={} GAS={} MPE={}", lbs, gas, T),
                           st->tokens_per_device_per_s,
                           static_cast<double>(loss),
                           static_cast<double>(used.used) / static_cast<double>(tp::GiB),
                           static_cast<double>(used.capacity) / static_cast<double>(tp::GiB),
                           st->mfu};
  say.line(tp::to_markdown(
      row,
      {.loss = {4, tp::rounding::nearest}, .memory = {2, tp::rounding::nearest}, .mfu = {1, tp::rounding::nearest}}));
  say.line(fmt::format("TFLOP/s per device {:.3f} (model FLOPs, megatron convention, causal); MFU against {}",
                       st->tflops_per_device, peak_source));
  if (!st->utilization_refused.empty())  // the MFU cell stays empty rather than show more than 100%
    say.line(fmt::format("MFU left out: {}; the peak ({}) is too low for this run: give --peak-flops",
                         st->utilization_refused, peak_source));
  if (m.profile && cpu) {
    double kernels = optimizer_seconds;
    for (double x : m.seconds) kernels += x;
    say.line(fmt::format(
        "time per kernel family (all steps, evaluation forwards included; {:.1f} s of {:.1f} s wall):", kernels, wall));
    for (std::size_t i = 0; i < m.seconds.size(); ++i)
      say.line(fmt::format("  {:<16}{:>9.2f} s {:>6.1f}%", train_llama::llama::kernel_names[i], m.seconds[i],
                           100 * m.seconds[i] / wall));
    say.line(
        fmt::format("  {:<16}{:>9.2f} s {:>6.1f}%", "clip + AdamW", optimizer_seconds, 100 * optimizer_seconds / wall));
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
  std::optional<args> parsed;
  try {
    const args& a = parsed.emplace(all, trainer_flags());
    if (a.has("help")) {
      fmt::print("usage: train_llama [flags]\n{}", tp::cli::flags_help(a.known()));
      return 0;
    }
    return run(a);
  } catch (const usage_error& e) {
    fmt::print(stderr, "train_llama: {}\n", tp::detail::one_line(e.what()));
  } catch (const tp::config_error& e) {
    fmt::print(stderr, "train_llama: {}\n", tp::cli::error_line(parsed ? &*parsed : nullptr, e));
  } catch (const std::exception& e) {  // a device, NCCL or MPI failure: say it, and stop every rank
    fmt::print(stderr, "train_llama: {}\n", tp::detail::one_line(e.what()));
#ifdef TRAINPERF_WITH_MPI
    int world = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (world > 1) MPI_Abort(MPI_COMM_WORLD, 1);  // the other ranks may wait in a collective
#endif
    return 1;
  }
#ifdef TRAINPERF_WITH_MPI
  // Bad input found on one rank only (a path another rank never checks) must not leave the
  // others waiting in a collective: stop them all.
  int world = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (world > 1) MPI_Abort(MPI_COMM_WORLD, 2);
#endif
  return 2;
}
