// trainperf — what a device achieves, as against its datasheet: the fractions of dense peak a
// GEMM and a flash-attention kernel reach, of memory bandwidth a streaming kernel reaches, and
// of the links a collective reaches. The step-time model (step_time.hpp) reads a device through
// its profile; `trainperf calibrate` measures one, and the built-in ones cite their sources.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "error.hpp"
#include "hardware.hpp"
#include "units.hpp"

namespace trainperf {

// One GEMM shape measured: C[m, n] = A[m, k] · B[k, n], seconds per product.
struct gemm_sample {
  double m = 0, n = 0, k = 0, seconds = 0;
};

namespace reason {
inline void gemm_sample_is_not_a_measurement() {}
}  // namespace reason

// Refuses what is not a measured GEMM (`what` names the set in the message): m, n, k positive
// integers, seconds positive and finite.
inline void validate(const gemm_sample& g, std::string_view field, std::string_view what) {
  const auto whole = [](double x) {
    return x > 0 && detail::is_finite(x) && x == static_cast<double>(static_cast<std::int64_t>(x));
  };
  detail::require(whole(g.m) && whole(g.n) && whole(g.k) && g.seconds > 0 && detail::is_finite(g.seconds),
                  reason::gemm_sample_is_not_a_measurement, field, [&] {
                    return std::string(what) +
                           ": a measured GEMM needs positive whole m, n, k and positive seconds, got " +
                           format_double(g.m) + " x " + format_double(g.n) + " x " + format_double(g.k) + " in " +
                           format_double(g.seconds) + " s";
                  });
}

// GEMM shapes measured on one device in one dtype (`trainperf calibrate` with a model: its linear
// layers at the run's tokens, as one tensor-parallel rank runs them): predict takes a measured
// shape's seconds before the curve, on that device and dtype only.
struct measured_gemms {
  std::string device;  // the device (its name in the device table or a --devices-file) they were measured on
  dtype type = dtype::fp32;
  std::vector<gemm_sample> shapes;
  [[nodiscard]] bool empty() const { return shapes.empty(); }
};

struct device_profile {
  std::string name = "generic";
  // A GEMM (or a batch of them) with C = m x n (x batch) output elements runs at
  // peak x gemm_efficiency x C / (C + gemm_half_outputs): a GEMM whose output tiles do not fill
  // the device's SMs a few times over runs below the large-GEMM rate (wave quantization), and
  // the roofline over memory bandwidth bounds those with a short reduction k or a skinny side
  // (step_time.hpp, gemm_time).
  double gemm_efficiency = 0;
  double gemm_half_outputs = 0;
  double memory_efficiency = 0;              // streaming kernels (norms, activations, optimizer)
  double attention_forward_efficiency = 0;   // flash attention (FlashAttention-2) forward, of the dense peak
  double attention_backward_efficiency = 0;  // and backward (2.5 x the forward's FLOPs)
  // The same through cuDNN's fused attention (Transformer Engine's FusedAttention backend,
  // memory_options::cudnn_attention), which on Hopper runs at FlashAttention-3's rate.
  double cudnn_attention_forward_efficiency = 0;
  double cudnn_attention_backward_efficiency = 0;
  // nccl-tests' bus bandwidth over the link's unidirectional rate, inside a node and across
  // nodes, and the latency of one algorithm step: what a cluster built from the device table
  // gets by default (collectives.hpp, default_cluster).
  double intra_node_bus_efficiency = 0;
  double inter_node_bus_efficiency = 0;
  double latency_s = 0;
  std::string source;
  // The device's own GEMM shapes, each taking its measured seconds; the curve above the rest.
  // Empty in the built-in profiles.
  measured_gemms measured;
};

namespace reason {
inline void profile_efficiency_out_of_range() {}
}  // namespace reason

inline void validate(const device_profile& p) {
  const auto fraction = [&](double v, std::string_view field) {
    detail::require(detail::is_finite(v) && v > 0 && v <= 1, reason::profile_efficiency_out_of_range, field, [&] {
      return "profile " + p.name + ": " + std::string(field) + " must be a fraction in (0, 1], got " +
             format_double(v) + "; a profile states what a device achieves of its datasheet figure";
    });
  };
  fraction(p.gemm_efficiency, "gemm_efficiency");
  fraction(p.memory_efficiency, "memory_efficiency");
  fraction(p.attention_forward_efficiency, "attention_forward_efficiency");
  fraction(p.attention_backward_efficiency, "attention_backward_efficiency");
  fraction(p.cudnn_attention_forward_efficiency, "cudnn_attention_forward_efficiency");
  fraction(p.cudnn_attention_backward_efficiency, "cudnn_attention_backward_efficiency");
  fraction(p.intra_node_bus_efficiency, "intra_node_bus_efficiency");
  fraction(p.inter_node_bus_efficiency, "inter_node_bus_efficiency");
  detail::require(detail::is_finite(p.latency_s) && p.latency_s >= 0, reason::profile_efficiency_out_of_range,
                  "latency_s",
                  [&] { return "profile " + p.name + ": latency_s must be >= 0, got " + format_double(p.latency_s); });
  const std::vector<gemm_sample>& shapes = p.measured.shapes;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    validate(shapes[i], "measured_gemms", "profile " + p.name);
    for (std::size_t j = 0; j < i; ++j)
      detail::require(shapes[j].m != shapes[i].m || shapes[j].n != shapes[i].n || shapes[j].k != shapes[i].k,
                      reason::gemm_sample_is_not_a_measurement, "measured_gemms", [&] {
                        return "profile " + p.name + ": GEMM " + format_double(shapes[i].m) + " x " +
                               format_double(shapes[i].n) + " x " + format_double(shapes[i].k) +
                               " is measured twice; keep one";
                      });
  }
  detail::require(shapes.empty() || !p.measured.device.empty(), reason::gemm_sample_is_not_a_measurement,
                  "measured_gemms",
                  [&] { return "profile " + p.name + ": measured GEMMs need the device they were measured on"; });
  detail::require(detail::is_finite(p.gemm_half_outputs) && p.gemm_half_outputs >= 0,
                  reason::profile_efficiency_out_of_range, "gemm_half_outputs", [&] {
                    return "profile " + p.name + ": gemm_half_outputs must be >= 0, got " +
                           format_double(p.gemm_half_outputs);
                  });
}

// Built-in profiles from published measurements, one rule for every figure: the best
// achieved value published, over the datasheet's.
//   gemm_efficiency: the maximum achievable matmul FLOP/s (MAMF) over the dense peak, Stas
//     Bekman's ml-engineering, compute/accelerator/README.md (commit 744d01e): A100 SXM bf16
//     271.2 of 312, H100 SXM bf16 794.5 of 989 (H200 and H800: the same silicon).
//   gemm_half_outputs: one value for every device, from the only published shape curve found:
//     cuBLAS square fp16 GEMMs on an A100 (same source, its matmul plot: 28, 88, 195, 258 and 290
//     TFLOP/s at n = 512, 1024, 2048, 4096 and 8192). Each smaller size's ratio to the 8192 one
//     gives the half point C / (C + h) needs: 2.56, 2.54, 2.25 and 2.89 million outputs; their
//     mean, 2.56 million, about 1.4 waves of 128 x 128 output tiles over the A100's 108 SMs.
//     A second A100 curve agrees (A100-SXM4-40GB, bf16, cuBLAS via PyTorch 2.10: 155.3, 246.3 and
//     261.8 TFLOP/s at 2048, 4096 and 8192; gau-nernst/learn-cuda 8c4d1b8, 02_matmul_sm80/
//     README.md): 3.22 and 1.44 million, mean 2.33. The H100's published curves do not take this
//     form, so no Hopper value follows from them by the same rule: within each source the half
//     point falls 3-16x from the smallest size to the largest (XLA's sm_90 bf16 table, 6.7 to
//     780.2 TFLOP/s at 256 to 4096, tensorflow/tensorflow 3ddd179 third_party/xla/xla/service/
//     gpu/model/default_matmul_perf_table.txtpb: 13.9, 6.2, 2.7, 1.3 million; torch.mm bf16 on
//     H100 SXM, zzc0721/torch-performance-test-data#79: 4.0, 0.8, 0.25; cublasGemmEx fp16,
//     waynehacking8/blackwell-tensorcore-kernels fd74d2a results/bench_sm90a.csv: 1.8, 0.7).
//     Hopper keeps the shared value; bench/RESULTS.md (planner) shows what each source's mean
//     would change.
//   memory_efficiency: best published copy bandwidth over the datasheet: A100 80GB 1536 of 2039
//     GB/s (AnjaliSandip/FastIceFlo, output/EffectiveMemoryThroughput.md; a 1616 GB/s vector
//     multiply ran on a 16 MiB array that may sit in L2, not taken), H100 3050 of 3350 and H200
//     4110 of 4800 (yencal/gpu-bandwidth-benchmark, bandwidth plot, read off the figure).
//   attention: FlashAttention-2 forward + backward, causal, head dim 128, seq 4k, one efficiency
//     for both passes: A100 173 of 312 TFLOP/s, H100 294 of 989 (Dao-AILab/flash-attention
//     assets/flash2_{a100,h100}_fwd_bwd_benchmark.png). cuDNN's fused attention: on the A100 taken
//     as FlashAttention-2's; on Hopper FlashAttention-3's fp16 causal head dim 128 seq 4k:
//     forward 579 (assets/flash3_fp16_fwd.png), backward 542 (FA3 paper, arXiv:2407.08608,
//     backward figure as transcribed by a third party; causality not stated) of 989.
//   intra_node_bus_efficiency: nccl-tests ring bus bandwidth over the unidirectional NVLink
//     rate: A100 235 of 300 GB/s (ml-engineering network/README.md), H100 370 of 450 (NVIDIA's
//     sjeaugey, NVIDIA/nccl-tests#212; NVLink SHARP all-reduce reaches 480, not assumed).
//   inter_node_bus_efficiency: 47 of 50 GB/s per 400 Gb/s NIC (NVIDIA/nccl-tests#290, the
//     expected busbw per NDR NIC), taken for HDR as well.
//   MI300X (the same rules, AMD's software): MAMF 668.4 of 1307.4 (ml-engineering at 7bc7c30,
//     compute/accelerator/README.md line 361: torch 2.5.1, ROCm 6.3, PYTORCH_TUNABLEOP_ENABLED=1);
//     BabelStream copy 4269 of 5300 GB/s (ROCm/system-acceptance-docs at 0360974,
//     docs/mi300x/performance-bench.rst line 684); FlashAttention-2 (ROCm/flash-attention) forward +
//     backward 231.6 TFLOP/s at head dim 128, sequence 16k, not causal: the only published MI300X
//     figure with a backward (ROCm/flash-attention#142), for both passes and for the fused attention
//     as on the A100; RCCL all_reduce_perf bus bandwidth 319 GB/s on 8 GPUs (16 GiB, RCCL 2.22.3:
//     ROCm/rocm-blogs at c263176, blogs/software-tools-optimization/mi300x-rccl-xgmi) over the 7 x 64
//     GB/s unidirectional xGMI links. Latency and the NICs: the values below, measured on NVIDIA
//     clusters only.
//   latency_s: 46.3 us for a small all-reduce over 2 nodes x 8 GPUs (NCCL 2.21.5, NVLSTree, an
//     H20 cluster: NVIDIA/nccl#1244) over its 2 x log2(16) = 8 tree steps: 5.8 us a step.
//   sustained: the share of those best published kernel rates a training run keeps (clocks under a
//     sustained load, gaps between kernels, launches, framework code: what no microbenchmark
//     shows), one global constant for the GEMMs, attention and streaming kernels of every device.
//     Fitted by bench/planner_accuracy (least squares of the relative throughput error over its
//     corpus; leave-one-source-out beside it in bench/RESULTS.md). Not applied to calibrated
//     profiles: on the CPU those predict train_llama's own steps within 15% as measured
//     (trainer_step_time_predicted_*); a GPU calibration has not been checked against a GPU
//     training run yet (issue 23), and may need it.
inline constexpr double builtin_sustained_fraction = 0.74;
inline constexpr double builtin_gemm_half_outputs = 2.56e6;
inline constexpr double builtin_inter_node_bus_efficiency = 47.0 / 50;
inline constexpr double builtin_latency_s = 46.3e-6 / 8;

// The built-in profile for a device of the table (hardware.hpp), or the A100's fractions named
// "generic" for a device without published measurements (say so where it is printed); its kernel
// rates at `sustained` of the published best (1: the microbenchmarks' own figures).
inline device_profile builtin_profile(std::string_view device, double sustained = builtin_sustained_fraction) {
  detail::require(detail::is_finite(sustained) && sustained > 0 && sustained <= 1,
                  reason::profile_efficiency_out_of_range, "sustained", [&] {
                    return "the sustained share of the published kernel rates must be in (0, 1], got " +
                           format_double(sustained);
                  });
  // Named fields: the figures and their sources are in the comment above.
  const auto make = [sustained](std::string name, double gemm, double memory, double fa2, double cudnn_f,
                                double cudnn_b, double nvlink, std::string source) {
    device_profile p;
    p.name = std::move(name);
    p.gemm_efficiency = sustained * gemm;
    p.gemm_half_outputs = builtin_gemm_half_outputs;
    p.memory_efficiency = sustained * memory;
    p.attention_forward_efficiency = p.attention_backward_efficiency = sustained * fa2;
    p.cudnn_attention_forward_efficiency = sustained * cudnn_f;
    p.cudnn_attention_backward_efficiency = sustained * cudnn_b;
    p.intra_node_bus_efficiency = nvlink;
    p.inter_node_bus_efficiency = builtin_inter_node_bus_efficiency;
    p.latency_s = builtin_latency_s;
    p.source = std::move(source);
    return p;
  };
  const auto hopper = [&](std::string name, double memory_efficiency) {
    return make(std::move(name), 794.5 / 989.4, memory_efficiency, 294 / 989.4, 579 / 989.4, 542 / 989.4, 370.0 / 450,
                "published H100 SXM measurements (profile.hpp)");
  };
  const auto ampere = [&](std::string name, std::string source) {
    return make(std::move(name), 271.2 / 312, 1536.0 / 2039, 173.0 / 312, 173.0 / 312, 173.0 / 312, 235.0 / 300,
                std::move(source));
  };
  if (device == "MI300X")
    return make("MI300X", 668.4 / 1307.4, 4269.0 / 5300, 231.6 / 1307.4, 231.6 / 1307.4, 231.6 / 1307.4, 319.0 / 448,
                "published MI300X measurements (profile.hpp)");
  if (device == "H100") return hopper("H100", 3050.0 / 3350);
  if (device == "H800") return hopper("H800", 3050.0 / 3350);
  if (device == "H200") return hopper("H200", 4110.0 / 4800);
  for (std::string_view a : {"A100-80GB", "A100-40GB", "A800"})
    if (device == a) return ampere(std::string(a), "published A100 SXM measurements (profile.hpp)");
  return ampere("generic", "no published measurements for " + std::string(device) +
                               "; the A100's fractions assumed (profile.hpp); calibrate or pass --profile");
}

}  // namespace trainperf
