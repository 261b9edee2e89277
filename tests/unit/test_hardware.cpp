// The device table: dense peaks, explicit unknowns, custom devices.
#include <doctest/doctest.h>

#include <limits>

#include <trainperf/trainperf.hpp>

using namespace trainperf;

TEST_CASE("dense peaks are half the datasheets' sparse Tensor Core figures") {
  // NVIDIA H100 SXM5 datasheet: BF16 1,979 TFLOPS and FP8 3,958 TFLOPS "with sparsity".
  CHECK(require_peak(get_device("H100"), dtype::bf16) == doctest::Approx(1979e12 / 2).epsilon(1e-3));
  CHECK(require_peak(get_device("H100"), dtype::fp8) == doctest::Approx(3958e12 / 2).epsilon(1e-3));
  // A100/A800: 312 TFLOPS dense BF16 (FlagPerf's theoryflops for the A800 too).
  CHECK(require_peak(get_device("A800"), dtype::bf16) == 312e12);
  CHECK(require_peak(get_device("A100-40GB"), dtype::fp16) == 312e12);
  // The seed reports' non-NVIDIA devices, as their benchmark configs used them.
  CHECK(require_peak(get_device("R300"), dtype::fp16) == 128e12);
  CHECK(require_peak(get_device("S4000"), dtype::bf16) == 98e12);
  CHECK(get_device("H200").memory_bytes == 141 * GiB);
  CHECK(get_device("MI300X").memory_bytes == 192 * GiB);
  // Names as users type them: case does not matter, anything else does.
  CHECK(get_device("h100").name == "H100");
  CHECK(get_device("a100-80gb").name == "A100-80GB");
  CHECK(find_device("A100 80GB") == nullptr);
  CHECK(find_device("H10") == nullptr);
  for (const device_spec& d : devices) {
    CAPTURE(d.name);
    CHECK(!d.source.empty());
    CHECK(d.memory_bytes > 0);
  }
}

TEST_CASE("an unknown peak is an error naming what is known, never a silent zero") {
  CHECK_THROWS_WITH_AS(require_peak(get_device("A100-80GB"), dtype::fp8),
                       "A100-80GB has no published dense fp8 peak; known: fp32, tf32, bf16, fp16; pick one of those or "
                       "pass the peak explicitly (--peak-flops)",
                       config_error);
  CHECK_THROWS_WITH_AS(require_peak(get_device("R300"), dtype::bf16), doctest::Contains("known: fp16"), config_error);
  CHECK_FALSE(get_device("R300").peak(dtype::fp32).has_value());
  CHECK_THROWS_WITH_AS(get_device("H900"), doctest::Contains("unknown device 'H900'; known devices: H100, H800"),
                       config_error);
  // An abbreviation is answered with the names it abbreviates; a longer name is not cut to a
  // listed prefix (an H100 PCIe has other peaks than the H100 SXM the table lists).
  CHECK_THROWS_WITH_AS(get_device("a100"),
                       doctest::Contains("unknown device 'a100'; did you mean A100-80GB or A100-40GB?; known"),
                       config_error);
  CHECK_THROWS_WITH_AS(get_device("a100-80g"), doctest::Contains("did you mean A100-80GB?"), config_error);
  CHECK_THROWS_WITH_AS(get_device("H100-PCIe"),
                       "unknown device 'H100-PCIe'; known devices: H100, H800, H200, "
                       "A100-80GB, A100-40GB, A800, MI300X, R300, S4000, 910B2, 910B3, 910B4-32G, 910B4-64G, BI-V100, "
                       "BI-V150, C500, MLU370-X8 (or describe one with custom_device / pass "
                       "--peak-flops)",
                       config_error);
  CHECK_THROWS_WITH_AS(get_device(""), doctest::Contains("unknown device ''; known devices:"), config_error);
}

TEST_CASE("custom devices") {
  constexpr device_spec mine = custom_device("my-npu", dtype::bf16, 400e12, 64 * GiB);
  static_assert(mine.peak(dtype::bf16).value() == 400e12);
  static_assert(!mine.peak(dtype::fp32).has_value());
  CHECK_THROWS_AS(custom_device("bad", dtype::bf16, -1, 0), config_error);
  CHECK_THROWS_AS(custom_device("bad", dtype::bf16, std::numeric_limits<double>::quiet_NaN(), 0), config_error);
}

TEST_CASE("GPUs as the CUDA runtime names them map to the table's SXM parts only") {
  // "NVIDIA H100 80GB HBM3" is what nvidia-smi and cudaDeviceProp::name report for the H100
  // SXM5 (seen on the lent H100, /work/.library/device/KINDS.md); A100 SXM4 parts report
  // "NVIDIA A100-SXM4-80GB" / "-40GB".
  REQUIRE(trainperf::find_device_by_product_name("NVIDIA H100 80GB HBM3") != nullptr);
  CHECK(trainperf::find_device_by_product_name("NVIDIA H100 80GB HBM3")->name == "H100");
  CHECK(trainperf::find_device_by_product_name("NVIDIA A100-SXM4-40GB")->name == "A100-40GB");
  CHECK(trainperf::find_device_by_product_name("NVIDIA H200")->name == "H200");
  // The PCIe H100 has a lower dense bf16 peak (756 TFLOP/s): never mistaken for the SXM part.
  CHECK(trainperf::find_device_by_product_name("NVIDIA H100 PCIe") == nullptr);
  CHECK(trainperf::find_device_by_product_name("") == nullptr);
}

TEST_CASE("MetaX C500 and Cambricon MLU370-X8 as their sources print them") {
  // C500, Gitee AI's listing "according to official data": FP32 36 (matrix), TF32 140, FP16 and BF16
  // 280 TFLOP/s, no FP8; 64 GB; no memory or link bandwidth published.
  const device_spec c500 = get_device("C500");
  CHECK(require_peak(c500, dtype::bf16) == doctest::Approx(280e12));
  CHECK(require_peak(c500, dtype::tf32) == doctest::Approx(140e12));
  CHECK(require_peak(c500, dtype::fp32) == doctest::Approx(36e12));
  CHECK(c500.memory_bytes == 64 * GiB);
  CHECK(c500.memory_bandwidth == 0);
  CHECK_THROWS_WITH_AS(require_peak(c500, dtype::fp8), doctest::Contains("no published dense fp8 peak"), config_error);
  // MLU370-X8 at its 2022-03-21 launch: FP32 32, FP16/BF16 96 TFLOP/s per card, 48 GB LPDDR5 at
  // 614.4 GB/s, MLU-Link 200 GB/s; no TF32.
  const device_spec mlu = get_device("MLU370-X8");
  CHECK(require_peak(mlu, dtype::fp16) == doctest::Approx(96e12));
  CHECK(require_peak(mlu, dtype::fp32) == doctest::Approx(32e12));
  CHECK(mlu.memory_bytes == 48 * GiB);
  CHECK(mlu.memory_bandwidth == doctest::Approx(614.4e9));
  CHECK(mlu.intra_node_bandwidth == doctest::Approx(200e9));
  CHECK_THROWS_WITH_AS(require_peak(mlu, dtype::tf32), doctest::Contains("no published dense tf32 peak"), config_error);
}

TEST_CASE("Ascend 910B: per-chip peaks add up to the servers' published totals") {
  // Huawei's Atlas 800T A2 page prints the whole server (8 chips) beside each chip option:
  // 3.008 PFLOPS FP16 / 0.792 FP32 with 910B2, 2.504 / 0.656 with 910B3; Atlas 800I A2 with
  // 910B4: 2.24 PFLOPS FP16, 0.60 FP32.
  CHECK(8 * require_peak(get_device("910B2"), dtype::fp16) == doctest::Approx(3.008e15));
  CHECK(8 * require_peak(get_device("910B2"), dtype::fp32) == doctest::Approx(0.792e15));
  CHECK(8 * require_peak(get_device("910B3"), dtype::fp16) == doctest::Approx(2.504e15));
  CHECK(8 * require_peak(get_device("910B3"), dtype::fp32) == doctest::Approx(0.656e15));
  CHECK(8 * require_peak(get_device("910B4-64G"), dtype::fp16) == doctest::Approx(2.24e15));
  CHECK(8 * require_peak(get_device("910B4-32G"), dtype::fp32) == doctest::Approx(0.60e15));
  // What no vendor prints stays unknown and is refused with the fix, never a zero peak.
  CHECK_THROWS_WITH_AS(require_peak(get_device("910B3"), dtype::bf16),
                       doctest::Contains("910B3 has no published dense bf16 peak; known: fp32, fp16"), config_error);
  CHECK_THROWS_WITH_AS(require_peak(get_device("BI-V150"), dtype::fp16), doctest::Contains("known: none"),
                       config_error);
  CHECK(get_device("BI-V150").memory_bytes == 64 * GiB);
  // Named devices without published figures say so instead of "unknown device", with the fix.
  CHECK_THROWS_WITH_AS(get_device("p800"), doctest::Contains("Kunlunxin P800 publishes no peak FLOP/s"), config_error);
  CHECK_THROWS_WITH_AS(get_device("MLU590"), doctest::Contains("describe it with custom_device"), config_error);
  for (const unpublished_device& u : unpublished_devices) CHECK(find_device(u.name) == nullptr);
}
