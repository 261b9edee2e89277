// trainperf calibrate: this machine measured through trainperf's CPU kernels (the ones
// train_llama runs), written as a device (--devices-file) and a device profile (--profile) that
// predict and plan take.
#include <ctime>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <trainperf/calibration.hpp>
#include <trainperf/io/devices.hpp>
#include <trainperf/io/profile.hpp>
#include <trainperf/trainperf.hpp>

#include "cli.hpp"
#include "model_flags.hpp"

#ifdef TRAINPERF_CLI_WITH_CPU_KERNELS
#include <unistd.h>

#include <trainperf/kernels/cpu/measure.hpp>
#endif

namespace trainperf::cli {
namespace {

std::vector<flag> calibrate_flags() {
  std::vector<flag> f = {
      {"name", "NAME", "the device's name in the files written (default this-cpu)"},
      {"devices-out", "FILE", "write the device (peak, memory, bandwidth) as a --devices-file"},
      {"profile-out", "FILE", "write the device profile, for --profile"},
      {"threads", "N", "threads to measure with (default: OpenMP's, all cores); give what the trainer runs with"},
      {"repetitions", "N", "rounds of timed runs, each round every measurement in turn; the best counts (default 5)"},
      {"min-seconds", "S", "shortest timed run (default 0.03)"},
  };
  // The layer whose attention and memory-bound kernels are measured: a model's, or by default
  // hidden 1024, 16 heads of 64, ffn 2816, one sequence of 1024.
  for (flag x : model_flags()) {
    if (x.name == "model") x.help = "measure attention and the memory-bound kernels at this model's shapes";
    f.push_back(x);
  }
  f.push_back({"lbs", "N", "sequences per micro-batch for those kernels (default 1)"});
  return with_common(f);
}

#ifdef TRAINPERF_CLI_WITH_CPU_KERNELS
namespace measure = kernels::cpu::measure;

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

int run_calibrate(const args& a, output& out) {
  const std::string name = a.get("name").value_or("this-cpu");
  if (name.empty()) throw usage_error("--name is empty; give the device a name");
  if (find_device(name))
    throw config_error("name", "device " + name + " is in the built-in table; give the calibrated device another name");
  const std::int64_t rounds = a.get_int("repetitions").value_or(5);
  if (rounds > 100) throw usage_error(fmt::format("--repetitions {} is more than 100", rounds));
  const int repetitions = static_cast<int>(rounds);
  const double min_seconds = a.get_double("min-seconds").value_or(0.03);
  if (min_seconds > 10) throw usage_error(fmt::format("--min-seconds {} is more than 10", min_seconds));
  if (const auto n = a.get_int("threads")) {
    if (*n > 4096) throw usage_error(fmt::format("--threads {} is more than 4096; give at most the cores", *n));
#ifdef _OPENMP
    omp_set_num_threads(static_cast<int>(*n));
#endif
  }
  const auto profile_out = a.get("profile-out"), devices_out = a.get("devices-out");
  if (profile_out) io::check_output_path(*profile_out, "profile-out", true);
  if (devices_out) io::check_output_path(*devices_out, "devices-out", true);

  measure::layer_shape l;
  bool model_given = false;
  for (const flag& x : model_flags()) model_given |= x.name != "seq" && a.has(x.name);
  if (model_given) {
    const model_choice mc = model_from_args(a, /*seq_sets_max_seq=*/false);
    const transformer_spec& s = mc.spec;
    validate(s);
    if (s.mlp != mlp_kind::swiglu || s.is_moe() || s.positions != position_kind::rotary)
      throw config_error("model", "calibrate measures the trainer's kernels (SwiGLU, dense, rotary positions); " +
                                      mc.name + " is not one");
    l.hidden = s.hidden, l.ffn = s.ffn, l.heads = s.heads, l.kv_heads = s.resolved_kv_heads();
    l.head_dim = s.resolved_head_dim();
    // The optimizer over at most 64M parameters (1 GiB of states): past every cache, a streaming rate.
    l.params = std::min<std::int64_t>(count_params(s).total(), std::int64_t{1} << 26);
  }
  l.seq = a.get_int("seq").value_or(1024);
  l.batch = a.get_int("lbs").value_or(1);
  // About eight activations of the widest kind are allocated at once.
  const double bytes = static_cast<double>(l.batch) * static_cast<double>(l.seq) *
                       static_cast<double>(std::max({l.hidden, l.ffn, l.heads * l.head_dim})) * 4 * 8;
  if (bytes > 8.0 * static_cast<double>(GiB))
    throw usage_error(
        fmt::format("--seq {} x --lbs {} is too large to measure here ({:.0f} GiB of activations); "
                    "give a few thousand tokens",
                    l.seq, l.batch, bytes / static_cast<double>(GiB)));
  // Attention grows with seq^2: above 10^11 FLOPs a forward (a second or more on a small CPU,
  // measured in 6 rounds, its backward 2.5 x) the calibration would run for minutes.
  const double attention_flops =
      costs::flash_attention_forward_flops(static_cast<double>(l.batch * l.seq), static_cast<double>(l.seq),
                                           static_cast<double>(l.heads), static_cast<double>(l.head_dim));
  if (attention_flops > 1e11)
    throw usage_error(
        fmt::format("--seq {} x --lbs {}: attention's forward alone is {:.3g} FLOPs, minutes to "
                    "measure; give a shorter --seq or a smaller --lbs (its efficiency changes little "
                    "past a few thousand tokens)",
                    l.seq, l.batch, attention_flops));
  const std::string workload =
      fmt::format("hidden {}, {} heads ({} KV) of {}, ffn {}", l.hidden, l.heads, l.kv_heads, l.head_dim, l.ffn);

  // ---- the measurements: the GEMM probe, then every other one interleaved (best of the rounds)
  calibration_measurements mm;
  const measure::gemm_peak peak = measure::measure_gemm_peak();
  mm.gemm_peak = peak.best;
  std::vector<measure::task> tasks;
  const auto add = [&](measure::task t) {  // its index in the results
    tasks.push_back(std::move(t));
    return tasks.size() - 1;
  };
  std::vector<gemm_sample> shapes;  // tasks 0 .. 26
  for (std::int64_t t : {64, 256, 1024})
    for (std::int64_t i : {64, 256, 1024})
      for (std::int64_t o : {64, 256, 1024}) {
        add(measure::linear_layer(t, i, o));
        shapes.push_back({static_cast<double>(t), static_cast<double>(o), static_cast<double>(i), 0});
      }
#ifdef _SC_LEVEL3_CACHE_SIZE
  const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
#else
  const long l3 = 0;
#endif
  // Past the last-level cache (STREAM's rule: each vector at least 4 x the caches): 4 x the L3
  // glibc reports, at least 64 MiB and at most 256 MiB a vector.
  const std::int64_t triad_floats =
      std::clamp<std::int64_t>(l3 > 0 ? l3 : 0, std::int64_t{16} << 20, std::int64_t{64} << 20);
  const std::size_t triad = add(measure::triad(triad_floats));
  const std::size_t layer = add(measure::layer_streaming(l)), optimizer = add(measure::optimizer(l.params));
  auto [forward_task, backward_task] = measure::attention(l);
  const std::size_t forward = add(std::move(forward_task)), backward = add(std::move(backward_task));
  const std::vector<double> seconds = measure::best_seconds_interleaved(tasks, repetitions, min_seconds);
  for (std::size_t i = 0; i < shapes.size(); ++i) shapes[i].seconds = seconds[i] / 3;  // three GEMMs of its shape
  mm.gemms = shapes;
  mm.copy_bandwidth = tasks[triad].work / seconds[triad];
  mm.streaming_bytes = tasks[layer].work + tasks[optimizer].work;
  mm.streaming_seconds = seconds[layer] + seconds[optimizer];
  mm.attention_forward_flops = tasks[forward].work, mm.attention_forward_seconds = seconds[forward];
  mm.attention_backward_flops = tasks[backward].work, mm.attention_backward_seconds = seconds[backward];

#ifdef _OPENMP
  const int threads = omp_get_max_threads();
#else
  const int threads = 1;
#endif
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  const std::string source = fmt::format(
      "trainperf calibrate on {}, {}, {} thread{}, fp32, trainperf's CPU kernels; attention and "
      "memory-bound kernels at {}, {} x {} tokens; links not measured (one process)",
      host, utc_now(), threads, threads == 1 ? "" : "s", workload, l.batch, l.seq);
  const calibration_result r = calibrate_profile(mm, name, source);

  device_spec dev;
  dev.name = name;
  dev.source = source;
  dev.peak_flops[static_cast<int>(dtype::fp32)] = r.peak_flops;
  dev.memory_bandwidth = r.memory_bandwidth;
  dev.memory_bytes = static_cast<std::int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
  if (devices_out) io::write_file(*devices_out, json::array({io::device_to_json(dev)}).dump(2) + "\n", "devices-out");
  if (profile_out) io::write_file(*profile_out, io::profile_to_json(r.profile).dump(2) + "\n", "profile-out");

  if (a.has("json")) {
    json gemms = json::array();
    for (const gemm_sample& s : mm.gemms) gemms.push_back({{"m", s.m}, {"n", s.n}, {"k", s.k}, {"seconds", s.seconds}});
    out.print_json({{"device", io::device_to_json(dev)},
                    {"profile", io::profile_to_json(r.profile)},
                    {"gemm_probe_flops", peak.best},
                    {"gemm_fit",
                     {{"rate", r.gemm.rate},
                      {"half_outputs", r.gemm.half_outputs},
                      {"rms_log_error", r.gemm.rms_log_error},
                      {"max_error", r.gemm.max_error}}},
                    {"gemms", gemms},
                    {"triad_bytes_per_s", mm.copy_bandwidth},
                    {"streaming_bytes_per_s", mm.streaming_bytes / mm.streaming_seconds},
                    {"capped", r.capped}});
    return 0;
  }
  out.print("{}\n", source);
  out.print(
      "GEMM probe (1024^3, the trainer's peak for MFU): {:.1f} GFLOP/s best of {} (median {:.1f}, slowest {:.1f})\n",
      peak.best / 1e9, peak.repetitions, peak.median / 1e9, peak.worst / 1e9);
  out.print("linear layers, forward + backward, per GEMM (m = tokens, n = outputs, k = inputs):\n");
  out.print("  {:>6} {:>6} {:>6} {:>14} {:>14}\n", "m", "n", "k", "GFLOP/s", "fitted");
  for (const gemm_sample& s : mm.gemms) {
    const double flops = 2 * s.m * s.n * s.k;
    const double fitted = r.gemm.seconds(s);
    out.print("  {:>6} {:>6} {:>6} {:>14.1f} {:>14.1f}\n", s.m, s.n, s.k, flops / s.seconds / 1e9,
              flops / fitted / 1e9);
  }
  out.print(
      "GEMM model fit: {:.1f} GFLOP/s asymptote, half of it at {:.3g} outputs; rms log error {:.3f}, worst "
      "{:.0f}%\n",
      r.gemm.rate / 1e9, r.gemm.half_outputs, r.gemm.rms_log_error, 100 * r.gemm.max_error);
  out.print(
      "memory: STREAM triad {:.1f} GB/s ({} MiB vectors); the trainer's memory-bound kernels {:.1f} GB/s as "
      "step_time counts their bytes\n",
      mm.copy_bandwidth / 1e9, triad_floats * 4 >> 20, mm.streaming_bytes / mm.streaming_seconds / 1e9);
  out.print("attention (flash, causal): forward {:.1f}, backward {:.1f} GFLOP/s as step_time counts their FLOPs\n",
            mm.attention_forward_flops / mm.attention_forward_seconds / 1e9,
            mm.attention_backward_flops / mm.attention_backward_seconds / 1e9);
  const device_profile& p = r.profile;
  out.print("device {}: fp32 peak {:.1f} GFLOP/s, memory bandwidth {:.1f} GB/s\n", name, r.peak_flops / 1e9,
            r.memory_bandwidth / 1e9);
  out.print(
      "profile: gemm_efficiency {:.3f}, gemm_half_outputs {:.3g}, memory_efficiency {:.3f}, attention "
      "forward {:.3f}, backward {:.3f}\n",
      p.gemm_efficiency, p.gemm_half_outputs, p.memory_efficiency, p.attention_forward_efficiency,
      p.attention_backward_efficiency);
  for (const std::string& c : r.capped) out.print("capped at 1: {} (faster than the figure it is a fraction of)\n", c);
  if (devices_out || profile_out)
    out.print("written:{}{}; predict with --devices-file {} --device {} --profile {} --dtype fp32 --attention flash\n",
              devices_out ? " " + *devices_out : "", profile_out ? " " + *profile_out : "",
              devices_out.value_or("FILE"), name, profile_out.value_or("FILE"));
  return 0;
}
#else
int run_calibrate(const args&, output&) {
  throw config_error("calibrate",
                     "this trainperf was built without the CPU kernels (CMake found no Eigen3); install it "
                     "(apt-get install libeigen3-dev) and rebuild");
}
#endif

}  // namespace

command calibrate_command() {
  return {"calibrate",
          "measure this machine through trainperf's CPU kernels (takes ~20 s) and write a device and a profile for "
          "predict and plan",
          calibrate_flags, run_calibrate};
}

}  // namespace trainperf::cli
