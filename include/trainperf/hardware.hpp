// trainperf — accelerators: dense peak FLOP/s per dtype, memory, bandwidths, each with a
// source. Peaks are dense (never 2:4-sparse). An unknown peak is explicit (0 here) and
// asking for it is a config_error, never a silent or negative MFU.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "error.hpp"
#include "names.hpp"
#include "units.hpp"

namespace trainperf {

enum class dtype { fp32, tf32, bf16, fp16, fp8 };
inline constexpr int dtype_count = 5;

constexpr std::string_view to_string(dtype d) {
  switch (d) {
    case dtype::fp32:
      return "fp32";
    case dtype::tf32:
      return "tf32";
    case dtype::bf16:
      return "bf16";
    case dtype::fp16:
      return "fp16";
    case dtype::fp8:
      return "fp8";
  }
  return "?";
}

constexpr std::optional<dtype> parse_dtype(std::string_view s) {
  for (dtype d : {dtype::fp32, dtype::tf32, dtype::bf16, dtype::fp16, dtype::fp8})
    if (to_string(d) == s) return d;
  return std::nullopt;
}

struct device_spec {
  std::string_view name;
  // Dense peak FLOP/s, indexed by dtype (fp32, tf32, bf16, fp16, fp8); 0 = not published or
  // not supported.
  double peak_flops[dtype_count] = {};
  std::int64_t memory_bytes = 0;    // device memory capacity
  double memory_bandwidth = 0;      // bytes/s; 0 = unknown
  double intra_node_bandwidth = 0;  // bytes/s per device, aggregate over its links; 0 = unknown
  double inter_node_bandwidth = 0;  // bytes/s per device in the vendor's reference system; 0 = unknown
  std::string_view source;

  [[nodiscard]] constexpr std::optional<double> peak(dtype d) const {
    const double p = peak_flops[static_cast<int>(d)];
    return p > 0 ? std::optional<double>(p) : std::nullopt;
  }
};

namespace reason {
inline void peak_flops_unknown_for_this_device_and_dtype() {}
inline void unknown_device() {}
inline void device_fields_must_be_positive() {}
}  // namespace reason

// The dense peak for `d`; a device without a published one is a config_error naming the fix.
constexpr double require_peak(const device_spec& dev, dtype d) {
  const auto p = dev.peak(d);
  detail::require(p.has_value(), reason::peak_flops_unknown_for_this_device_and_dtype, "dtype", [&] {
    std::string known;
    for (dtype x : {dtype::fp32, dtype::tf32, dtype::bf16, dtype::fp16, dtype::fp8})
      if (dev.peak(x)) known += (known.empty() ? "" : ", ") + std::string(to_string(x));
    return std::string(dev.name) + " has no published dense " + std::string(to_string(d)) +
           " peak; known: " + (known.empty() ? std::string("none") : known) +
           "; pick one of those or pass the peak explicitly (--peak-flops)";
  });
  return *p;
}

namespace detail {
constexpr double T = 1e12;  // TFLOP/s
constexpr double GBps = 1e9;
}  // namespace detail

// Values and sources. NVIDIA datasheets print Tensor Core TF32/BF16/FP16/FP8 "with sparsity";
// the dense peak is half of that.
inline constexpr device_spec devices[] = {
    {"H100",  // H100 SXM5 80GB
     {66.9 * detail::T, 494.7 * detail::T, 989.4 * detail::T, 989.4 * detail::T, 1978.9 * detail::T},
     80 * GiB,
     3350 * detail::GBps,
     900 * detail::GBps,
     50 * detail::GBps,
     "NVIDIA H100 Tensor Core GPU datasheet (SXM5; sparse figures halved); DGX H100: 8 x 400 Gb/s ConnectX-7"},
    {"H800",  // H800 SXM5 80GB: H100 compute, NVLink cut to 400 GB/s
     {66.9 * detail::T, 494.7 * detail::T, 989.4 * detail::T, 989.4 * detail::T, 1978.9 * detail::T},
     80 * GiB,
     3350 * detail::GBps,
     400 * detail::GBps,
     50 * detail::GBps,
     "NVIDIA H800 SXM5 datasheet (sparse figures halved); FlagPerf configs use theoryflops 989e12"},
    {"H200",  // H200 SXM 141GB
     {66.9 * detail::T, 494.7 * detail::T, 989.4 * detail::T, 989.4 * detail::T, 1978.9 * detail::T},
     141 * GiB,
     4800 * detail::GBps,
     900 * detail::GBps,
     50 * detail::GBps,
     "NVIDIA H200 Tensor Core GPU datasheet (SXM; sparse figures halved)"},
    {"A100-80GB",  // A100 SXM4 80GB
     {19.5 * detail::T, 156 * detail::T, 312 * detail::T, 312 * detail::T, 0},
     80 * GiB,
     2039 * detail::GBps,
     600 * detail::GBps,
     25 * detail::GBps,
     "NVIDIA A100 Tensor Core GPU datasheet (SXM4 80GB); DGX A100: 8 x 200 Gb/s HDR"},
    {"A100-40GB",  // A100 SXM4 40GB
     {19.5 * detail::T, 156 * detail::T, 312 * detail::T, 312 * detail::T, 0},
     40 * GiB,
     1555 * detail::GBps,
     600 * detail::GBps,
     25 * detail::GBps,
     "NVIDIA A100 Tensor Core GPU datasheet (SXM4 40GB)"},
    {"A800",  // A800 SXM4 80GB: A100 compute, NVLink cut to 400 GB/s
     {19.5 * detail::T, 156 * detail::T, 312 * detail::T, 312 * detail::T, 0},
     80 * GiB,
     2039 * detail::GBps,
     400 * detail::GBps,
     25 * detail::GBps,
     "NVIDIA A800 SXM4 80GB product brief; FlagPerf configs use theoryflops 312e12"},
    {"MI300X",
     {163.4 * detail::T, 653.7 * detail::T, 1307.4 * detail::T, 1307.4 * detail::T, 2614.9 * detail::T},
     192 * GiB,
     5300 * detail::GBps,
     896 * detail::GBps,
     50 * detail::GBps,
     "AMD Instinct MI300X data sheet and ROCm docs (conceptual/gpu-arch/mi300.md): 7 Infinity Fabric links"},
    // Kunlunxin R300: 8 per R480-X8 board with "1 Peta Ops @FP16" and 256 GB (FlagPerf kunlunxin
    // README), i.e. 128 TFLOP/s FP16 and 32 GB each; FlagPerf's llama2_7b config for the R300
    // (branch kunlunxin_llama2, config_R300x1x8.py) uses theoryflops 128e12. No FP32/BF16 figure.
    {"R300",
     {0, 0, 0, 128 * detail::T, 0},
     32 * GiB,
     0,
     200 * detail::GBps,
     0,
     "FlagPerf training/kunlunxin README (R480-X8: 8 x R300, 1 PetaOps FP16, 256 GB); "
     "training/kunlunxin/llama2_7b-deepspeed/config/config_R300x1x8.py theoryflops 128e12"},
    // Moore Threads MTT S4000: 48 GB GDDR6; FlagPerf's llama2_7b config (branch mthreads_llama2,
    // config_S4000x1x8.py) uses theoryflops 98e12 for its 16-bit peak.
    {"S4000",
     {25 * detail::T, 49 * detail::T, 98 * detail::T, 98 * detail::T, 0},
     48 * GiB,
     768 * detail::GBps,
     240 * detail::GBps,
     0,
     "Moore Threads MTT S4000 launch specifications (FP32 25, TF32 49, FP16/BF16 98 TFLOP/s, 768 GB/s, MTLink "
     "240 GB/s); training/mthreads/llama2_7b-deepspeed/config/config_S4000x1x8.py theoryflops 98e12"},
};

// The device called `name` (as listed, ignoring ASCII case: "h100" finds H100), or nullptr.
constexpr const device_spec* find_device(std::string_view name) {
  for (const device_spec& d : devices)
    if (detail::same_name_ignoring_case(d.name, name)) return &d;
  return nullptr;
}

// The table's entry for a GPU as the CUDA runtime names it (cudaDeviceProp::name, the name
// nvidia-smi prints), or nullptr. Only the SXM parts the table describes match: PCIe and NVL
// variants have other peaks and are not guessed (a trainer then asks for --peak-flops).
constexpr const device_spec* find_device_by_product_name(std::string_view product) {
  constexpr std::pair<std::string_view, std::string_view> names[] = {
      {"NVIDIA H100 80GB HBM3", "H100"},
      {"NVIDIA H800", "H800"},
      {"NVIDIA H200", "H200"},
      {"NVIDIA A100-SXM4-80GB", "A100-80GB"},
      {"NVIDIA A100-SXM4-40GB", "A100-40GB"},
      {"NVIDIA A800-SXM4-80GB", "A800"},
  };
  for (const auto& [full, table_name] : names)
    if (product == full) return find_device(table_name);
  return nullptr;
}

// The device called `name` (see find_device); an unknown name is an error listing the known ones.
constexpr const device_spec& get_device(std::string_view name) {
  if (const device_spec* d = find_device(name)) return *d;
  detail::require(false, reason::unknown_device, "device", [&] {
    return detail::unknown_name_message("device", name, devices, "known devices") +
           " (or describe one with custom_device / pass --peak-flops)";
  });
  return devices[0];  // not reached: require threw
}

// A device of your own: a name, one dense peak for one dtype and the memory capacity;
// fill in the rest of device_spec as you know it.
constexpr device_spec custom_device(std::string_view name, dtype d, double peak_flops, std::int64_t memory_bytes,
                                    std::string_view source = "user-supplied") {
  detail::require(detail::is_finite(peak_flops) && peak_flops > 0 && memory_bytes >= 0,
                  reason::device_fields_must_be_positive, "peak_flops", [&] {
                    return "custom device " + std::string(name) + ": peak FLOP/s must be positive and finite, got " +
                           std::to_string(peak_flops);
                  });
  device_spec dev{name, {}, memory_bytes, 0, 0, 0, source};
  dev.peak_flops[static_cast<int>(d)] = peak_flops;
  return dev;
}

}  // namespace trainperf
