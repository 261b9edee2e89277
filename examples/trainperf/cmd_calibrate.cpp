// trainperf calibrate: this machine measured through trainperf's CPU kernels (the ones
// train_llama runs), or with --device cuda this GPU through its CUDA kernels or cuBLASLt, written
// as a device (--devices-file) and a device profile (--profile) that predict and plan take.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <trainperf/calibration.hpp>
#include <trainperf/io/devices.hpp>
#include <trainperf/io/profile.hpp>
#include <trainperf/trainperf.hpp>

#include "cli.hpp"
#include "model_flags.hpp"

#include <sys/wait.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef TRAINPERF_CLI_WITH_CPU_KERNELS
#include <trainperf/kernels/cpu/measure.hpp>
#endif
#include "gpu_measurements.hpp"

namespace trainperf::cli {
namespace {

std::vector<flag> calibrate_flags() {
  std::vector<flag> f = {
      {"device", "cpu|cuda", "what to measure: this machine's CPU (default) or its first CUDA GPU"},
      {"gemm", "cublaslt|trainperf", "with --device cuda: the GEMMs measured (default cublaslt, what frameworks run)"},
      {"name", "NAME", "the device's name in the files written (default this-cpu; a GPU: its table name)"},
      {"devices-out", "FILE", "write the device (peak, memory, bandwidth) as a --devices-file"},
      {"profile-out", "FILE", "write the device profile, for --profile"},
      {"threads", "N", "threads to measure with (default: OpenMP's, all cores); give what the trainer runs with"},
      {"repetitions", "N", "rounds of timed runs, each round every measurement in turn; the best counts (default 5)"},
      {"min-seconds", "S", "shortest timed run (default 0.03)"},
  };
  // The layer whose attention and memory-bound kernels are measured: a model's, or by default
  // hidden 1024, 16 heads of 64, ffn 2816, one sequence of 1024.
  for (flag x : model_flags()) {
    if (x.name == "model")
      x.help =
          "measure attention, the memory-bound kernels and the model's own linear layers (kept in the profile) at "
          "this model's shapes";
    f.push_back(x);
  }
  f.push_back({"lbs", "N", "sequences per micro-batch for those kernels (default 1)"});
  f.push_back(
      {"tp", "N", "with a model: its linear layers measured as one of N tensor-parallel ranks runs them (default 1)"});
  return with_common(f);
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

// What one device's measurements say beside the profile: the probe, and where they came from.
struct measured {
  calibration_measurements mm;
  std::string probe_line;  // the GEMM probe, as printed
  std::string source;      // the profile's and device's source
  device_spec device;      // the device written with --devices-out (peak and bandwidth set after the fit)
  dtype peak_dtype = dtype::fp32;
  const device_spec* in_table = nullptr;  // a GPU of the table: its profile keeps the built-in link figures
  std::string triad_line;
};

#ifdef TRAINPERF_CLI_WITH_CPU_KERNELS
measured measure_cpu(const measured_layer& l, const std::string& workload, int repetitions, double min_seconds) {
  namespace measure = kernels::cpu::measure;
  measured r;
  calibration_measurements& mm = r.mm;
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
  // The model's own linear layers (when one is given), each within a time budget: a shape of at
  // most 3 x 10^11 FLOPs forward and backward (2-4 s on a 2-core CPU, in every round); larger
  // ones take the curve fitted to the grid above.
  std::vector<gemm_sample> model_shapes;
  std::vector<std::size_t> model_tasks;
  if (l.vocab > 0)
    for (const gemm_sample& g : linear_shapes(l))
      if (6 * g.m * g.n * g.k <= 3e11) {
        model_shapes.push_back(g);
        model_tasks.push_back(add(measure::linear_layer(static_cast<std::int64_t>(g.m), static_cast<std::int64_t>(g.k),
                                                        static_cast<std::int64_t>(g.n))));
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
  for (std::size_t i = 0; i < model_shapes.size(); ++i) model_shapes[i].seconds = seconds[model_tasks[i]] / 3;
  mm.model_gemms = {.device = {}, .type = dtype::fp32, .shapes = model_shapes};  // the device named by the caller
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
  r.source = fmt::format(
      "trainperf calibrate on {}, {}, {} thread{}, fp32, trainperf's CPU kernels; attention and "
      "memory-bound kernels at {}, {} x {} tokens; links not measured (one process)",
      host, utc_now(), threads, threads == 1 ? "" : "s", workload, l.batch, l.seq);
  r.probe_line = fmt::format(
      "GEMM probe (1024^3, the trainer's peak for MFU): {:.1f} GFLOP/s best of {} (median {:.1f}, slowest {:.1f})",
      peak.best / 1e9, peak.repetitions, peak.median / 1e9, peak.worst / 1e9);
  r.triad_line =
      fmt::format("STREAM triad {:.1f} GB/s ({} MiB vectors)", mm.copy_bandwidth / 1e9, triad_floats * 4 >> 20);
  r.device.memory_bytes = static_cast<std::int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
  return r;
}
#endif

// The GPU through trainperf-measure-gpu, the program beside this one built where nvcc is (so that
// this tool needs no CUDA library to start): its JSON on stdout, or its one-line error.
gpu_measurements run_gpu_helper(const measured_layer& l, const std::string& gemm, int repetitions, double min_seconds) {
  char self[4096] = {};
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  std::string dir = n > 0 ? std::string(self, static_cast<std::size_t>(n)) : std::string();
  dir = dir.substr(0, dir.find_last_of('/') + 1);
  const std::string helper = dir + "trainperf-measure-gpu";
  if (dir.empty() || access(helper.c_str(), X_OK) != 0)
    throw config_error("device", "--device cuda runs trainperf-measure-gpu, and there is none beside this trainperf (" +
                                     helper +
                                     "): it is built where nvcc is (/usr/local/cuda/bin or CUDACXX); "
                                     "rebuild there, or calibrate the CPU without --device");
  const char* tmp = std::getenv("TMPDIR");
  std::string errors_path =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/trainperf-measure-gpu-XXXXXX";
  std::vector<char> errors(errors_path.begin(), errors_path.end());
  errors.push_back('\0');
  const int fd = mkstemp(errors.data());
  if (fd < 0)
    throw config_error("device", "no temporary file for trainperf-measure-gpu's errors (" + errors_path + ")");
  close(fd);
  const auto quote = [](const std::string& x) {
    std::string q = "'";
    for (const char c : x) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
  };
  const std::string command =
      fmt::format("{} --gemm {} --repetitions {} --min-seconds {} --layer {},{},{},{},{},{},{},{} 2>{}", quote(helper),
                  gemm, repetitions, min_seconds, l.batch, l.seq, l.hidden, l.ffn, l.heads, l.kv_heads, l.head_dim,
                  l.params, quote(errors.data()));
  std::string output;
  int status = -1;
  if (FILE* p = popen(command.c_str(), "r")) {
    char buf[4096];
    for (std::size_t got; (got = fread(buf, 1, sizeof buf, p)) > 0;) output.append(buf, got);
    status = pclose(p);
  }
  std::ifstream in(errors.data());
  std::string error((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::remove(errors.data());
  if (status != 0) {
    while (!error.empty() && error.back() == '\n') error.pop_back();
    const std::string how = status == -1          ? "could not be started"
                            : WIFEXITED(status)   ? "exited with " + std::to_string(WEXITSTATUS(status))
                            : WIFSIGNALED(status) ? "was killed by signal " + std::to_string(WTERMSIG(status))
                                                  : "failed";
    throw config_error("device",
                       error.empty() ? "trainperf-measure-gpu " + how : error.substr(error.find_last_of('\n') + 1));
  }
  try {
    return gpu_measurements_from_json(json::parse(output));
  } catch (const json::exception& e) {
    throw config_error("device", std::string("trainperf-measure-gpu's output is not its measurements: ") + e.what());
  }
}

measured measure_gpu(const measured_layer& l, const std::string& workload, const std::string& gemm, int repetitions,
                     double min_seconds) {
  const gpu_measurements g = run_gpu_helper(l, gemm, repetitions, min_seconds);
  measured r;
  r.mm = g.mm;
  r.peak_dtype = dtype::bf16;
  r.in_table = g.table_device.empty() ? nullptr : find_device(g.table_device);
  r.device.memory_bytes = g.memory_bytes;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  r.source = fmt::format(
      "trainperf calibrate --device cuda on {} ({}), {}, bf16, GEMMs through {}; attention (trainperf's "
      "FlashAttention-2-style kernel) and memory-bound kernels at {}, {} x {} tokens; {}",
      g.gpu, host, utc_now(), gemm == "cublaslt" ? "cuBLASLt" : "trainperf's kernels", workload, l.batch, l.seq,
      r.in_table != nullptr
          ? "fractions of " + std::string(r.in_table->name) +
                "'s datasheet figures; links and cuDNN attention from its built-in profile"
          : "not in the device table: fractions of the probe and the copy measured; links not measured");
  r.probe_line =
      fmt::format("GEMM probe ({}^3 bf16 through {}): {:.1f} TFLOP/s{}", g.probe_n, gemm, r.mm.gemm_peak / 1e12,
                  r.in_table != nullptr ? fmt::format(", {:.1f}% of {}'s dense bf16 peak",
                                                      100 * r.mm.gemm_peak / r.mm.datasheet_peak, r.in_table->name)
                                        : std::string());
  r.triad_line = fmt::format("device-to-device copy {:.1f} GB/s (1 GiB)", r.mm.copy_bandwidth / 1e9);
  return r;
}

int run_calibrate(const args& a, output& out) {
  static constexpr std::string_view devices[] = {"cpu", "cuda"}, gemms[] = {"cublaslt", "trainperf"};
  const bool gpu = a.get_choice("device", devices).value_or("cpu") == "cuda";
  const std::string gemm(a.get_choice("gemm", gemms).value_or("cublaslt"));
  if (a.has("gemm") && !gpu)
    throw usage_error(
        "--gemm picks the GPU's GEMMs; the CPU is measured through trainperf's kernels: give --device cuda");
  const std::optional<std::string> name_flag = a.get("name");
  if (name_flag && name_flag->empty()) throw usage_error("--name is empty; give the device a name");
  if (name_flag && find_device(*name_flag))
    throw config_error("name",
                       "device " + *name_flag + " is in the built-in table; give the calibrated device another name");
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

  measured_layer l;
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
    l.tp = a.get_int("tp").value_or(1);
    if (l.tp < 1 || s.heads % l.tp != 0 || s.ffn % l.tp != 0)
      throw config_error("tp", fmt::format("--tp {} must divide the heads ({}) and the ffn ({}) of {}", l.tp, s.heads,
                                           s.ffn, mc.name));
    l.vocab = s.padded_vocab(l.tp);
    // The optimizer over at most 64M parameters (1 GiB of states): past every cache, a streaming rate.
    l.params = std::min<std::int64_t>(count_params(s).total(), std::int64_t{1} << 26);
  }
  if (gpu && !model_given) {  // a GPU's default: Llama 2 7B's layer, past every cache and filling the SMs
    l.hidden = 4096, l.ffn = 11008, l.heads = l.kv_heads = 32, l.head_dim = 128, l.params = std::int64_t{1} << 26;
  }
  l.seq = a.get_int("seq").value_or(gpu ? 4096 : 1024);
  l.batch = a.get_int("lbs").value_or(gpu ? 2 : 1);
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
  if (attention_flops > 1e11 && !gpu)
    throw usage_error(
        fmt::format("--seq {} x --lbs {}: attention's forward alone is {:.3g} FLOPs, minutes to "
                    "measure; give a shorter --seq or a smaller --lbs (its efficiency changes little "
                    "past a few thousand tokens)",
                    l.seq, l.batch, attention_flops));
  if (gpu && l.head_dim != 64 && l.head_dim != 128)
    throw config_error("head_dim", fmt::format("the CUDA attention kernels take head dimension 64 or 128, got {}; "
                                               "measure a model whose hidden / heads is 64 or 128",
                                               l.head_dim));
  const std::string workload =
      fmt::format("hidden {}, {} heads ({} KV) of {}, ffn {}", l.hidden, l.heads, l.kv_heads, l.head_dim, l.ffn);

  measured m;
  if (gpu) {
    m = measure_gpu(l, workload, gemm, repetitions, min_seconds);
  } else {
#ifdef TRAINPERF_CLI_WITH_CPU_KERNELS
    m = measure_cpu(l, workload, repetitions, min_seconds);
#else
    throw config_error("calibrate",
                       "this trainperf was built without the CPU kernels (CMake found no Eigen3); install it "
                       "(apt-get install libeigen3-dev) and rebuild");
#endif
  }
  const std::string name = name_flag.value_or(m.in_table != nullptr ? std::string(m.in_table->name) + "-measured"
                                              : gpu                 ? "this-gpu"
                                                                    : "this-cpu");
  m.mm.model_gemms.device = name;
  const calibration_measurements& mm = m.mm;
  calibration_result r = calibrate_profile(mm, name, m.source);
  if (m.in_table != nullptr) {  // what one GPU cannot measure: its links, and cuDNN's attention
    const device_profile table = builtin_profile(m.in_table->name, 1.0);  // the published figures themselves
    r.profile.intra_node_bus_efficiency = table.intra_node_bus_efficiency;
    r.profile.inter_node_bus_efficiency = table.inter_node_bus_efficiency;
    r.profile.latency_s = table.latency_s;
    r.profile.cudnn_attention_forward_efficiency = table.cudnn_attention_forward_efficiency;
    r.profile.cudnn_attention_backward_efficiency = table.cudnn_attention_backward_efficiency;
  }

  device_spec dev = m.device;
  dev.name = name;
  dev.source = m.source;
  dev.peak_flops[static_cast<int>(m.peak_dtype)] = r.peak_flops;
  dev.memory_bandwidth = r.memory_bandwidth;
  if (devices_out) io::write_file(*devices_out, json::array({io::device_to_json(dev)}).dump(2) + "\n", "devices-out");
  if (profile_out) io::write_file(*profile_out, io::profile_to_json(r.profile).dump(2) + "\n", "profile-out");

  if (a.has("json")) {
    json gemms_json = json::array();
    for (const gemm_sample& x : mm.gemms) gemms_json.push_back(json(io::gemm_sample_to_json(x)));
    out.print_json({{"device", io::device_to_json(dev)},
                    {"profile", io::profile_to_json(r.profile)},
                    {"gemm_probe_flops", mm.gemm_peak},
                    {"gemm_fit",
                     {{"rate", r.gemm.rate},
                      {"half_outputs", r.gemm.half_outputs},
                      {"rms_log_error", r.gemm.rms_log_error},
                      {"max_error", r.gemm.max_error}}},
                    {"gemms", gemms_json},
                    {gpu ? "copy_bytes_per_s" : "triad_bytes_per_s", mm.copy_bandwidth},
                    {"streaming_bytes_per_s", mm.streaming_bytes / mm.streaming_seconds},
                    {"capped", r.capped}});
    return 0;
  }
  const double unit = gpu ? 1e12 : 1e9;
  const char* units = gpu ? "TFLOP/s" : "GFLOP/s";
  out.print("{}\n{}\n", m.source, m.probe_line);
  out.print("linear layers, forward + backward, per GEMM (m = tokens, n = outputs, k = inputs):\n");
  out.print("  {:>6} {:>6} {:>6} {:>14} {:>14}\n", "m", "n", "k", units, "fitted");
  const auto print_gemms = [&](const std::vector<gemm_sample>& gemms) {
    for (const gemm_sample& x : gemms) {
      const double flops = 2 * x.m * x.n * x.k;
      out.print("  {:>6} {:>6} {:>6} {:>14.1f} {:>14.1f}\n", x.m, x.n, x.k, flops / x.seconds / unit,
                flops / r.gemm.seconds(x) / unit);
    }
  };
  print_gemms(mm.gemms);
  if (!mm.model_gemms.empty()) {
    out.print("the model's linear layers{}, measured (predict takes these on {}, the curve the rest):\n",
              l.tp > 1 ? fmt::format(" as one of {} tensor-parallel ranks runs them", l.tp) : std::string(), name);
    print_gemms(mm.model_gemms.shapes);
  }
  out.print("GEMM model fit: {:.1f} {} asymptote, half of it at {:.3g} outputs; rms log error {:.3f}, worst {:.0f}%\n",
            r.gemm.rate / unit, units, r.gemm.half_outputs, r.gemm.rms_log_error, 100 * r.gemm.max_error);
  out.print("memory: {}; the trainer's memory-bound kernels {:.1f} GB/s as step_time counts their bytes\n",
            m.triad_line, mm.streaming_bytes / mm.streaming_seconds / 1e9);
  out.print("attention (flash, causal): forward {:.1f}, backward {:.1f} {} as step_time counts their FLOPs\n",
            mm.attention_forward_flops / mm.attention_forward_seconds / unit,
            mm.attention_backward_flops / mm.attention_backward_seconds / unit, units);
  const device_profile& p = r.profile;
  out.print("device {}: {} peak {:.1f} {}, memory bandwidth {:.1f} GB/s{}\n", name, to_string(m.peak_dtype),
            r.peak_flops / unit, units, r.memory_bandwidth / 1e9,
            m.in_table != nullptr ? " (the table's " + std::string(m.in_table->name) + ")" : std::string());
  out.print(
      "profile: gemm_efficiency {:.3f}, gemm_half_outputs {:.3g}, memory_efficiency {:.3f}, attention "
      "forward {:.3f}, backward {:.3f}\n",
      p.gemm_efficiency, p.gemm_half_outputs, p.memory_efficiency, p.attention_forward_efficiency,
      p.attention_backward_efficiency);
  for (const std::string& c : r.capped) out.print("capped at 1: {} (faster than the figure it is a fraction of)\n", c);
  if (devices_out || profile_out) {
    const std::string device_arg =
        m.in_table != nullptr ? std::string(m.in_table->name) : devices_out.value_or("FILE") + " --device " + name;
    out.print("written:{}{}; predict with {}{} --profile {} --dtype {} --attention flash\n",
              devices_out ? " " + *devices_out : "", profile_out ? " " + *profile_out : "",
              m.in_table != nullptr ? "--device " : "--devices-file ", device_arg, profile_out.value_or("FILE"),
              to_string(m.peak_dtype));
  }
  return 0;
}

}  // namespace

command calibrate_command() {
  return {"calibrate",
          "measure this machine through trainperf's CPU kernels (takes ~20 s), or its GPU with --device cuda, and "
          "write a device and a profile for predict and plan",
          calibrate_flags, run_calibrate};
}

}  // namespace trainperf::cli
