// Calibration: the GEMM model fitted back from times it generated, and a profile from
// measurements worked by hand.
#include <doctest/doctest.h>

#include <vector>

#include <trainperf/trainperf.hpp>

using namespace trainperf;

namespace {
// Times from step_time's own GEMM model (gemm_time) at a known rate and saturation point: the
// fit must give them back. Shapes as `trainperf calibrate` measures, 64 to 1024 each way.
std::vector<gemm_sample> generated(double rate, double half_outputs, double bytes, double bandwidth) {
  device_profile p;
  p.gemm_efficiency = 1, p.gemm_half_outputs = half_outputs, p.memory_efficiency = 1;
  std::vector<gemm_sample> s;
  for (double m : {64, 256, 1024})
    for (double n : {64, 256, 1024})
      for (double k : {64, 256, 1024}) s.push_back({m, n, k, detail::gemm_time(m, n, k, rate, bytes, bandwidth, p)});
  return s;
}
}  // namespace

TEST_CASE("fit_gemm gives back the rate and saturation point the GEMM model generated") {
  // 10^(4 + 2/16) = 13,335 outputs is a grid point: recovered exactly, and the rate with it.
  const double h = 13335.214321633242, rate = 150e9;
  const auto s = generated(rate, h, 4, 1e15);  // bandwidth too high to bind: every sample compute-bound
  const gemm_fit f = fit_gemm(s, 4, 1e15);
  CHECK(f.rate == doctest::Approx(rate).epsilon(1e-9));
  CHECK(f.half_outputs == doctest::Approx(h).epsilon(1e-9));
  CHECK(f.rms_log_error < 1e-9);
  // No saturation: the first grid point, 0.
  const gemm_fit flat = fit_gemm(generated(rate, 0, 4, 1e15), 4, 1e15);
  CHECK(flat.half_outputs == 0);
  CHECK(flat.rate == doctest::Approx(rate));
}

TEST_CASE("fit_gemm between its grid points: the nearest point, the rate adjusted") {
  // 20,000 outputs lies between grid points 10^(4 + 4/16) = 17,783 and 10^(4 + 5/16) = 20,535;
  // the grid is 15% apart, so the fit lands within 8% of it, and its times within a few percent.
  const double h = 20000, rate = 150e9;
  const gemm_fit f = fit_gemm(generated(rate, h, 4, 1e15), 4, 1e15);
  CHECK(f.half_outputs == doctest::Approx(h).epsilon(0.08));
  CHECK(f.rate == doctest::Approx(rate).epsilon(0.05));
  CHECK(f.max_error < 0.05);
  CHECK(f.rms_log_error > 0);  // not exact: the test means something
}

TEST_CASE("fit_gemm leaves the memory-bound samples to the roofline") {
  // 20 GB/s: a 64 x 64 x 64 GEMM moves 3 x 64^2 x 4 bytes = 49,152 in 2.46 us, its 524,288 FLOPs
  // take 3.5 us at 150 GFLOP/s: near the floor; with k = 64 and n = 1024 the operands bind.
  const double h = 13335.214321633242, rate = 150e9, bw = 20e9;
  const auto s = generated(rate, h, 4, bw);
  int bound = 0;
  device_profile p;
  p.gemm_efficiency = 1, p.gemm_half_outputs = h, p.memory_efficiency = 1;
  for (const gemm_sample& x : s) bound += x.seconds > 2 * x.m * x.n * x.k * (x.m * x.n + h) / (x.m * x.n) / rate;
  CHECK(bound > 0);  // some samples are memory-bound, so the test means something
  const gemm_fit f = fit_gemm(s, 4, bw);
  CHECK(f.rate == doctest::Approx(rate).epsilon(1e-6));
  CHECK(f.half_outputs == doctest::Approx(h).epsilon(1e-6));
}

TEST_CASE("fit_gemm refuses what is not a measurement") {
  CHECK_THROWS_WITH_AS(fit_gemm({}, 4, 1e10), doctest::Contains("at least one measured shape"), config_error);
  const std::vector<gemm_sample> bad = {{64, 64, 64, -1}};
  CHECK_THROWS_WITH_AS(fit_gemm(bad, 4, 1e10), doctest::Contains("positive whole m, n, k and positive seconds"),
                       config_error);
  const std::vector<gemm_sample> ok = {{64, 64, 64, 1e-5}};
  CHECK_THROWS_WITH_AS(fit_gemm(ok, 4, 0), doctest::Contains("achieved memory bandwidth"), config_error);
}

TEST_CASE("calibrate_profile: fractions of the probe's peak and the triad's bandwidth, by hand") {
  calibration_measurements m;
  m.gemm_peak = 100e9;
  m.gemms = generated(80e9, 0, 4, 1e15);                                // GEMMs at 80 GFLOP/s whatever their size
  m.copy_bandwidth = 1e15;                                              // (so that no GEMM is memory-bound)
  m.streaming_bytes = 0.5e15, m.streaming_seconds = 1;                  // half the triad's rate
  m.attention_forward_flops = 30e9, m.attention_forward_seconds = 1;    // 30 of 100 GFLOP/s
  m.attention_backward_flops = 75e9, m.attention_backward_seconds = 1;  // 75 of 100
  const calibration_result r = calibrate_profile(m, "box", "by hand");
  CHECK(r.peak_flops == 100e9);  // the probe's, above the GEMMs' 80
  CHECK(r.profile.gemm_efficiency == doctest::Approx(0.8));
  CHECK(r.profile.gemm_half_outputs == 0);
  CHECK(r.memory_bandwidth == 1e15);
  CHECK(r.profile.memory_efficiency == doctest::Approx(0.5));
  CHECK(r.profile.attention_forward_efficiency == doctest::Approx(0.3));
  CHECK(r.profile.attention_backward_efficiency == doctest::Approx(0.75));
  CHECK(r.profile.cudnn_attention_forward_efficiency == r.profile.attention_forward_efficiency);
  CHECK(r.profile.latency_s == 0);
  CHECK(r.capped.empty());
  CHECK(r.profile.name == "box");

  // GEMMs faster than the probe: the peak is their rate (no efficiency above 1); streaming
  // kernels faster than the triad (in cache) are capped at 1 and named.
  m.gemms = generated(120e9, 0, 4, 1e15);
  m.streaming_bytes = 2e15;
  const calibration_result fast = calibrate_profile(m, "box", "by hand");
  CHECK(fast.peak_flops == doctest::Approx(120e9));
  CHECK(fast.profile.gemm_efficiency == doctest::Approx(1.0));
  CHECK(fast.profile.attention_forward_efficiency == doctest::Approx(30.0 / 120));
  CHECK(fast.profile.memory_efficiency == 1);
  REQUIRE(fast.capped.size() == 1);
  CHECK(fast.capped[0] == "memory_efficiency 2");

  m.copy_bandwidth = 0;
  CHECK_THROWS_WITH_AS(calibrate_profile(m, "box", "x"), doctest::Contains("copy bandwidth"), config_error);
}

TEST_CASE("linear_shapes: a layer's GEMMs under fused and separate projections, each once") {
  // train_llama's tiny model at 8 x 128 tokens: hidden 128, 4 heads and 2 KV heads of 32, ffn 384,
  // vocabulary 256. By hand: QKV fused 128 + 2 x 64 = 256 outputs, Q 128, K and V 64 each, the
  // output projection 128 from 128 (Q's shape again), gate and up fused 768, each 384, down 128
  // from 384, the output layer 256 from 128 (fused QKV's shape again).
  measured_layer l{.batch = 8, .seq = 128, .hidden = 128, .ffn = 384, .heads = 4, .kv_heads = 2, .head_dim = 32};
  l.vocab = 256;
  // Each shape's (n, k), all at m = 1024 tokens.
  const auto check = [](const std::vector<gemm_sample>& shapes, const std::vector<std::pair<double, double>>& nk) {
    REQUIRE(shapes.size() == nk.size());
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      CHECK(shapes[i].m == 1024);
      CHECK(shapes[i].n == nk[i].first);
      CHECK(shapes[i].k == nk[i].second);
    }
  };
  const std::vector<gemm_sample> s = linear_shapes(l);
  check(s, {{256, 128}, {128, 128}, {64, 128}, {768, 128}, {384, 128}, {128, 384}});
  // As one of two tensor-parallel ranks runs them: Q 64, K and V one head of 32 each (two KV heads
  // split), QKV fused 128, the output projection 128 from 64, gate and up 192 each (384 fused),
  // down 128 from 192, the output layer 128 from 128 (the vocabulary split; Q's shape before).
  l.tp = 2;
  check(linear_shapes(l), {{128, 128}, {64, 128}, {32, 128}, {128, 64}, {384, 128}, {192, 128}, {128, 192}});
  // Measured, they become the profile's, on the device named.
  calibration_measurements m;
  m.gemm_peak = 100e9, m.gemms = generated(80e9, 0, 4, 1e15), m.copy_bandwidth = 1e15;
  m.streaming_bytes = 1e14, m.streaming_seconds = 1;
  m.attention_forward_flops = m.attention_backward_flops = 1e9, m.attention_forward_seconds = 1;
  m.attention_backward_seconds = 1;
  m.model_gemms = {"box", dtype::fp32, s};
  for (gemm_sample& g : m.model_gemms.shapes) g.seconds = 1e-4;
  const calibration_result r = calibrate_profile(m, "box", "by hand");
  REQUIRE(r.profile.measured.shapes.size() == s.size());
  CHECK(r.profile.measured.device == "box");
  CHECK(r.profile.measured.shapes[2].n == 64);
  CHECK(r.profile.measured.shapes[2].seconds == 1e-4);
  m.model_gemms.shapes[0].seconds = 0;  // not a measurement
  CHECK_THROWS_WITH_AS(calibrate_profile(m, "box", "by hand"), doctest::Contains("measured GEMM"), config_error);
}

TEST_CASE("calibrate_profile: fractions of a GPU's datasheet figures, by hand") {
  // A GPU whose table entry says 989 TFLOP/s dense bf16 and 3.35 TB/s (the H100 SXM's): GEMMs
  // measured at 600 TFLOP/s, streaming kernels at 2.68 TB/s, attention at 400 and 330 TFLOP/s.
  calibration_measurements m;
  m.element_bytes = 2;
  m.gemm_peak = 700e12;  // a probe above the fitted GEMMs: not the reference here
  m.gemms = generated(600e12, 0, 2, 1e18);
  m.copy_bandwidth = 3.0e12;
  m.streaming_bytes = 2.68e12, m.streaming_seconds = 1;
  m.attention_forward_flops = 400e12, m.attention_forward_seconds = 1;
  m.attention_backward_flops = 330e12, m.attention_backward_seconds = 1;
  m.datasheet_peak = 989e12, m.datasheet_bandwidth = 3.35e12;
  const calibration_result r = calibrate_profile(m, "h100-here", "by hand");
  CHECK(r.peak_flops == 989e12);
  CHECK(r.memory_bandwidth == 3.35e12);
  CHECK(r.profile.gemm_efficiency == doctest::Approx(600.0 / 989));
  CHECK(r.profile.memory_efficiency == doctest::Approx(0.8));  // 2.68 / 3.35
  CHECK(r.profile.attention_forward_efficiency == doctest::Approx(400.0 / 989));
  CHECK(r.profile.attention_backward_efficiency == doctest::Approx(330.0 / 989));
  CHECK(r.capped.empty());
  // GEMMs measured above the datasheet (a wrong table entry or clock): capped at 1 and named.
  m.gemms = generated(1000e12, 0, 2, 1e18);
  const calibration_result over = calibrate_profile(m, "h100-here", "by hand");
  CHECK(over.profile.gemm_efficiency == 1);
  REQUIRE(over.capped.size() == 1);
  CHECK(over.capped[0].rfind("gemm_efficiency 1.01", 0) == 0);
}

TEST_CASE("the costs step_time charges, by hand") {
  // 1024 queries x 1024 keys x 16 heads x 64: 4 x 1024^2 x 1024 / 2 = 2^31 FLOPs, causal.
  CHECK(costs::flash_attention_forward_flops(1024, 1024, 16, 64) == 2147483648.0);
  CHECK(costs::norm_bytes(1024, 512, 2) == 2 * 1024 * 512 * 2);
  CHECK(costs::residual_bytes(1024, 512, 2) == 3 * 1024 * 512 * 2);
  CHECK(costs::rotary_bytes(10, 128, 32, 4) == 2 * 10 * 160 * 4);
  CHECK(costs::activation_bytes(10, 100, 2, 2) == 10 * 100 * 3 * 2);  // SwiGLU: gate, up in; one out
  // fp32 AdamW without a master copy: 3 x 4 (grad) + 2 x 8 (m, v) + 4 (weight) = 32 bytes.
  CHECK(costs::optimizer_bytes_per_param(4, 8, 4, false) == 32);
  // Mixed precision (bf16 grads, 12 bytes of fp32 master, m, v): 6 + 24 + 2 = 32; FSDP2's fp32 shard read too.
  CHECK(costs::optimizer_bytes_per_param(2, 12, 2, false) == 32);
  CHECK(costs::optimizer_bytes_per_param(2, 12, 4, true) == 38);
}
