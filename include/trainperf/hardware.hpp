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
inline constexpr dtype all_dtypes[dtype_count] = {dtype::fp32, dtype::tf32, dtype::bf16, dtype::fp16, dtype::fp8};

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
  for (dtype d : all_dtypes)
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
    for (dtype x : all_dtypes)
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
    // Huawei Ascend 910B, as the Atlas 800T A2 training server (8 per server, HCCS full mesh)
    // offers it: the product page gives per-chip dense peaks ("峰值稠密算力") for the two
    // options, 910B3 313 TFLOP/s FP16 and 82 FP32, 910B2 376 FP16 and 99 FP32, 64 GB at
    // 1600 GB/s, 7 HCCS links of 392 GB/s in all. Huawei's CANN migration guide (hicann/ops-nn,
    // docs/zh/develop/cross_platform_migration_guide.md, Atlas A2 column) gives "353T/376T
    // @BF16,FP16", 64 GB, 1.6 TB/s: BF16 equal to FP16; 353.9 is the Cube unit alone (24 cores x
    // 16^3 MACs x 2 x 1.8 GHz), 376 adds the Vector unit. For the 910B3 no BF16 figure is printed.
    {"910B2",
     {99 * detail::T, 0, 376 * detail::T, 376 * detail::T, 0},
     64 * GiB,
     1600 * detail::GBps,
     392 * detail::GBps,
     0,
     "Huawei Atlas 800T A2 product page (910B2 option: 376 TFLOPS @FP16, 99 @FP32, dense; 64 GB, 1600 GB/s; HCCS "
     "392 GB/s) and CANN migration guide (353T Cube / 376T @BF16,FP16); TF32 and FP8 not published"},
    {"910B3",
     {82 * detail::T, 0, 0, 313 * detail::T, 0},
     64 * GiB,
     1600 * detail::GBps,
     392 * detail::GBps,
     0,
     "Huawei Atlas 800T A2 product page (910B3 option: 313 TFLOPS @FP16, 82 @FP32, dense; 64 GB, 1600 GB/s; HCCS "
     "392 GB/s); BF16, TF32 and FP8 not published"},
    // Ascend 910B4 (Atlas 800I A2 / 300I A2): 280 TFLOP/s FP16, 75 FP32 per chip, 32 GB at
    // 800 GB/s or 64 GB at 1.6 TB/s (Huawei's product pages); BF16 280 from Gitee AI's cluster
    // documentation (a cloud provider's listing, not Huawei's).
    {"910B4-32G",
     {75 * detail::T, 0, 280 * detail::T, 280 * detail::T, 0},
     32 * GiB,
     800 * detail::GBps,
     392 * detail::GBps,
     0,
     "Huawei Atlas 800I A2 product page (910B4: 280 TFLOPS FP16, 75 FP32; 32 GB HBM, 800 GB/s; HCCS 392 GB/s); BF16 "
     "280 from Gitee AI's Ascend cluster docs (provider listing); TF32 and FP8 not published"},
    {"910B4-64G",
     {75 * detail::T, 0, 280 * detail::T, 280 * detail::T, 0},
     64 * GiB,
     1600 * detail::GBps,
     392 * detail::GBps,
     0,
     "Huawei Atlas 800I A2 product page (910B4: 280 TFLOPS FP16, 75 FP32; 64 GB HBM, 1600 GB/s; HCCS 392 GB/s); BF16 "
     "280 from Gitee AI's Ascend cluster docs (provider listing); TF32 and FP8 not published"},
    // Iluvatar CoreX BI-V100 at its 2021 launch (as reported by TechPowerUp): 37 TFLOP/s FP32,
    // 147 FP16 and BF16, 32 GB HBM2 at 1.2 TB/s, PCIe 4.0 x16.
    {"BI-V100",
     {37 * detail::T, 0, 147 * detail::T, 147 * detail::T, 0},
     32 * GiB,
     1200 * detail::GBps,
     0,
     0,
     "Iluvatar CoreX BI-V100 launch figures as reported (TechPowerUp, 2021-04): 37 TFLOPS FP32, 147 FP16/BF16, 32 GB "
     "HBM2, 1.2 TB/s; no chip-to-chip link figure"},
    // Iluvatar BI-V150: 64 GB HBM2e, 350 W, PCIe 4.0 x16 (Iluvatar's product page and Gitee AI's
    // listing). Iluvatar publishes no FLOP/s figure; 192 TFLOP/s FP16 appears only in a broker's
    // comparison table (CMB International) quoted by third parties, so the table leaves it out.
    {"BI-V150",
     {0, 0, 0, 0, 0},
     64 * GiB,
     0,
     0,
     0,
     "Iluvatar CoreX BI-V150 product page (64 GB HBM2e, PCIe 4.0 x16); no peak FLOP/s published by the vendor (a "
     "broker report's 192 TFLOPS FP16 is not used); pass your own peak with --peak-flops"},
    // MetaX C500 (OAM): Gitee AI's listing "according to official data": FP32 18 (vector) and 36
    // (matrix), TF32 140, FP16 and BF16 280 TFLOP/s, no FP8; 64 GB (mx-smi reads 65536 MiB). Its
    // memory bandwidth (1.8 TB/s) appears only in third-party compilations: left unknown.
    {"C500",
     {36 * detail::T, 140 * detail::T, 280 * detail::T, 280 * detail::T, 0},
     64 * GiB,
     0,
     0,
     0,
     "MetaX C500 figures as Gitee AI's docs quote the vendor (FP32 matrix 36, TF32 140, FP16/BF16 280 TFLOPS; no "
     "FP8); 64 GB; memory and MetaXLink bandwidths not published"},
    // Cambricon MLU370-X8 (one card, two chips) at its 2022-03 launch: 32 TFLOP/s FP32, 96 FP16
    // and BF16, 48 GB LPDDR5 at 614.4 GB/s, MLU-Link 200 GB/s per card.
    {"MLU370-X8",
     {32 * detail::T, 0, 96 * detail::T, 96 * detail::T, 0},
     48 * GiB,
     614.4 * detail::GBps,
     200 * detail::GBps,
     0,
     "Cambricon MLU370-X8 launch figures as reported (2022-03-21): FP32 32, FP16/BF16 96 TFLOPS per card, 48 GB "
     "LPDDR5, 614.4 GB/s, MLU-Link 200 GB/s; TF32 and FP8 not published"},
};

// Accelerators people ask for whose vendors publish neither peaks nor capacities a source would
// carry: the table says so by name, so a lookup of one explains itself instead of "unknown".
struct unpublished_device {
  std::string_view name;
  std::string_view what;  // vendor and product
};
inline constexpr unpublished_device unpublished_devices[] = {
    {"R300+", "Kunlunxin R300+"}, {"P800", "Kunlunxin P800"}, {"MLU590", "Cambricon MLU590"},
    {"K100", "Hygon DCU K100"},   {"Z100", "Hygon DCU Z100"},
};

// "Kunlunxin P800 publishes no peak FLOP/s or memory capacity ..." for a name in
// unpublished_devices (ignoring ASCII case), or "" for any other name; the caller adds its fix.
inline std::string unpublished_device_message(std::string_view name) {
  for (const unpublished_device& u : unpublished_devices)
    if (detail::same_name_ignoring_case(u.name, name))
      return std::string(u.what) +
             " publishes no peak FLOP/s or memory capacity a public source carries, so the device table has no "
             "figures for it";
  return "";
}

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
    if (std::string why = unpublished_device_message(name); !why.empty())
      return why + "; describe it with custom_device and your vendor's figures";
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
