// trainperf-measure-gpu: this GPU measured for `trainperf calibrate --device cuda`
// (gpu_measurements.hpp): GEMM shapes (m tokens 512..8192, n and k 1024..8192) and an 8192^3
// probe through --gemm (cublaslt or trainperf), the device copy, train_llama's memory-bound kernels
// and optimizer and flash attention at the layer given, each the best of --repetitions
// interleaved rounds of at least --min-seconds; JSON on stdout, or one line on stderr and exit 2.
// Run by the tool, which checks its arguments first.
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "gpu_measurements.hpp"

#include <trainperf/error.hpp>
#include <trainperf/kernels/cuda/check.cuh>
#include <trainperf/kernels/cuda/measure.cuh>
#include <trainperf/units.hpp>

namespace trainperf::cli {

namespace {

gpu_measurements measure_this_gpu(const measured_layer& l, const std::string& gemm, int repetitions,
                                  double min_seconds) {
  namespace m = cuda::measure;
  const cuda::backend be = gemm == "cublaslt" ? cuda::backend::cublaslt
                           : gemm == "trainperf"
                               ? cuda::backend::trainperf
                               : throw config_error("gemm", "--gemm is cublaslt or trainperf, got '" + gemm + "'");
  std::string why;
  if (cuda::device_count(&why) == 0)
    throw config_error("device", "--device cuda needs a CUDA GPU, and none is usable here (" + why +
                                     "); calibrate this machine's CPU without --device");
  int device = 0;
  TRAINPERF_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  TRAINPERF_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  gpu_measurements g;
  g.gpu = prop.name;
  const device_spec* table = find_device_by_product_name(prop.name);
  if (table != nullptr) g.table_device = table->name;
  g.memory_bytes = static_cast<std::int64_t>(prop.totalGlobalMem);
  g.probe_n = 8192;
  calibration_measurements& mm = g.mm;
  mm.element_bytes = 2;
  if (table != nullptr) {
    mm.datasheet_peak = require_peak(*table, dtype::bf16);
    mm.datasheet_bandwidth = table->memory_bandwidth;
  }

  // The largest allocations, all held at once: the linear layers' operands (bf16 x, W, dy, y,
  // dx and an fp32 dW each), the copy's two 1 GiB buffers and the probe's three n^2 matrices.
  double need = 2.0 * 1024 * 1024 * 1024 + 3.0 * 2 * static_cast<double>(g.probe_n * g.probe_n);
  for (double t : {512, 2048, 8192})
    for (double i : {1024, 4096, 8192})
      for (double o : {1024, 4096, 8192}) need += 2 * (2 * t * i + o * i + 2 * t * o) + 4 * o * i;
  std::size_t free_bytes = 0, total_bytes = 0;
  TRAINPERF_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  if (need * 1.1 > static_cast<double>(free_bytes))
    throw config_error("device", "the GPU measurements need about " + format_bytes(static_cast<std::int64_t>(need)) +
                                     " of GPU memory and " + prop.name + " has " +
                                     format_bytes(static_cast<std::int64_t>(free_bytes)) +
                                     " free; free the GPU (other processes) or measure on a larger one");
  cudaStream_t s = nullptr;
  TRAINPERF_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  std::vector<m::task> tasks;
  const auto add = [&](m::task t) {
    tasks.push_back(std::move(t));
    return tasks.size() - 1;
  };
  const std::size_t probe = add(m::gemm_probe(be, g.probe_n));
  std::vector<gemm_sample> shapes;  // tasks 1 .. 27: tokens x inputs x outputs
  for (std::int64_t t : {512, 2048, 8192})
    for (std::int64_t i : {1024, 4096, 8192})
      for (std::int64_t o : {1024, 4096, 8192}) {
        add(m::linear_layer(be, t, i, o));
        shapes.push_back({static_cast<double>(t), static_cast<double>(o), static_cast<double>(i), 0});
      }
  const std::size_t copy = add(m::copy(std::int64_t{1} << 30));  // 1 GiB: past every cache
  const std::size_t layer = add(m::layer_streaming(l)), optimizer = add(m::optimizer(l.params));
  auto [forward_task, backward_task] = m::attention(l);
  const std::size_t forward = add(std::move(forward_task)), backward = add(std::move(backward_task));
  const std::vector<double> seconds = m::best_seconds_interleaved(tasks, repetitions, min_seconds, s);
  TRAINPERF_CUDA_CHECK(cudaStreamSynchronize(s));
  cudaStreamDestroy(s);

  mm.gemm_peak = tasks[probe].work / seconds[probe];
  for (std::size_t i = 0; i < shapes.size(); ++i) shapes[i].seconds = seconds[probe + 1 + i] / 3;  // three GEMMs
  mm.gemms = shapes;
  mm.copy_bandwidth = tasks[copy].work / seconds[copy];
  mm.streaming_bytes = tasks[layer].work + tasks[optimizer].work;
  mm.streaming_seconds = seconds[layer] + seconds[optimizer];
  mm.attention_forward_flops = tasks[forward].work, mm.attention_forward_seconds = seconds[forward];
  mm.attention_backward_flops = tasks[backward].work, mm.attention_backward_seconds = seconds[backward];
  return g;
}

}  // namespace
}  // namespace trainperf::cli

// trainperf-measure-gpu --gemm G --repetitions N --min-seconds S --layer B,T,H,F,Hq,Hkv,D,P
int main(int argc, char** argv) {
  try {
    std::string gemm = "cublaslt";
    int repetitions = 5;
    double min_seconds = 0.03;
    trainperf::measured_layer l;
    for (int i = 1; i + 1 < argc; i += 2) {
      const std::string flag = argv[i], value = argv[i + 1];
      if (flag == "--gemm")
        gemm = value;
      else if (flag == "--repetitions")
        repetitions = std::stoi(value);
      else if (flag == "--min-seconds")
        min_seconds = std::stod(value);
      else if (flag == "--layer" &&
               std::sscanf(value.c_str(),
                           "%" SCNd64 ",%" SCNd64 ",%" SCNd64 ",%" SCNd64 ",%" SCNd64 ",%" SCNd64 ",%" SCNd64
                           ",%" SCNd64,
                           &l.batch, &l.seq, &l.hidden, &l.ffn, &l.heads, &l.kv_heads, &l.head_dim, &l.params) == 8)
        continue;
      else
        throw std::invalid_argument("trainperf-measure-gpu: unknown argument " + flag + " " + value);
    }
    const trainperf::cli::gpu_measurements g = trainperf::cli::measure_this_gpu(l, gemm, repetitions, min_seconds);
    const trainperf::calibration_measurements& m = g.mm;
    for (const double x : {m.gemm_peak, m.copy_bandwidth, m.streaming_seconds, m.attention_forward_seconds,
                           m.attention_backward_seconds})
      if (!(std::isfinite(x) && x > 0))
        throw std::runtime_error("trainperf-measure-gpu: a measurement came out as " + std::to_string(x) +
                                 " (not a positive time or rate); measure again with a larger --min-seconds");
    std::puts(to_json(g).dump().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
}
