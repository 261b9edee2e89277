// The GPU measurements trainperf-measure-gpu hands to `trainperf calibrate --device cuda` as JSON
// (examples/trainperf/gpu_measurements.hpp): every field survives the round trip, and output
// that is not the measurements is refused rather than read as zeros.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "../../examples/trainperf/gpu_measurements.hpp"

using trainperf::cli::gpu_measurements;

TEST_CASE("GPU measurements round-trip through the helper's JSON, field by field") {
  gpu_measurements g;
  g.gpu = "NVIDIA H100 80GB HBM3", g.table_device = "H100", g.memory_bytes = 85520809984, g.probe_n = 8192;
  auto& m = g.mm;
  m.gemm_peak = 7.1e14, m.element_bytes = 2, m.copy_bandwidth = 2.9e12;
  m.gemms = {{512, 1024, 4096, 1.25e-5}, {8192, 8192, 8192, 1.71e-3}};
  m.streaming_bytes = 1.4e11, m.streaming_seconds = 0.061;
  m.attention_forward_flops = 3.3e12, m.attention_forward_seconds = 0.0081;
  m.attention_backward_flops = 8.2e12, m.attention_backward_seconds = 0.0275;
  m.datasheet_peak = 989.4e12, m.datasheet_bandwidth = 3.35e12;
  const gpu_measurements back = trainperf::cli::gpu_measurements_from_json(nlohmann::json::parse(to_json(g).dump()));
  CHECK(back.gpu == g.gpu);
  CHECK(back.table_device == g.table_device);
  CHECK(back.memory_bytes == g.memory_bytes);
  CHECK(back.probe_n == g.probe_n);
  const auto& b = back.mm;
  CHECK(b.gemm_peak == m.gemm_peak);
  CHECK(b.element_bytes == m.element_bytes);
  CHECK(b.copy_bandwidth == m.copy_bandwidth);
  REQUIRE(b.gemms.size() == 2);
  CHECK(b.gemms[1].m == 8192);
  CHECK(b.gemms[0].n == 1024);
  CHECK(b.gemms[0].k == 4096);
  CHECK(b.gemms[1].seconds == m.gemms[1].seconds);
  CHECK(b.streaming_bytes == m.streaming_bytes);
  CHECK(b.streaming_seconds == m.streaming_seconds);
  CHECK(b.attention_forward_flops == m.attention_forward_flops);
  CHECK(b.attention_forward_seconds == m.attention_forward_seconds);
  CHECK(b.attention_backward_flops == m.attention_backward_flops);
  CHECK(b.attention_backward_seconds == m.attention_backward_seconds);
  CHECK(b.datasheet_peak == m.datasheet_peak);
  CHECK(b.datasheet_bandwidth == m.datasheet_bandwidth);
}

TEST_CASE("output that is not the measurements is refused") {
  nlohmann::json j = to_json(gpu_measurements{});
  j.erase("copy_bandwidth");
  CHECK_THROWS_AS(trainperf::cli::gpu_measurements_from_json(j), nlohmann::json::exception);
  j = to_json(gpu_measurements{});
  j["gemm_peak"] = nullptr;  // what a non-finite figure becomes
  CHECK_THROWS_AS(trainperf::cli::gpu_measurements_from_json(j), nlohmann::json::exception);
}
