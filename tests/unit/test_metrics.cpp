// The meter: warm-up, running and windowed averages, and refusal of bad measurements.
#include <doctest/doctest.h>

#include <limits>

#include <trainperf/trainperf.hpp>

using namespace trainperf;

TEST_CASE("the meter skips warm-up and averages the rest") {
  // 8 devices, 1000 tokens per step; FLOPs per token 1e9; peak 1e12 per device.
  meter m({.model_flops_per_token = 1e9,
           .hardware_flops_per_token = 1.5e9,
           .peak_flops = 1e12,
           .devices = 8,
           .warmup_steps = 2,
           .window = 2});
  m.step(1000, 100.0);  // warm-up: ignored however slow
  CHECK_FALSE(m.running().has_value());
  m.step(1000, 50.0);
  CHECK_FALSE(m.running().has_value());
  m.step(1000, 1.0);
  m.step(1000, 1.0);
  m.step(1000, 2.0);
  const auto run = m.running().value();
  CHECK(run.steps == 3);
  CHECK(run.tokens_per_device_per_s == doctest::Approx(3000.0 / 4.0 / 8));
  CHECK(run.tflops_per_device == doctest::Approx(3000.0 / 4.0 / 8 * 1e9 / 1e12));
  CHECK(run.mfu.value() == doctest::Approx(3000.0 / 4.0 / 8 * 1e9 / 1e12));
  CHECK(run.hfu.value() == doctest::Approx(1.5 * run.mfu.value()));
  CHECK_FALSE(run.samples_per_s.has_value());  // steps gave tokens, not sequences
  const auto win = m.windowed().value();       // the last two steps
  CHECK(win.steps == 2);
  CHECK(win.tokens_per_device_per_s == doctest::Approx(2000.0 / 3.0 / 8));
  CHECK(m.steps_seen() == 5);
}

TEST_CASE("sequences give samples/s; peak memory is the maximum reported; unknown peak leaves MFU absent") {
  meter m({.model_flops_per_token = 6 * 7e9, .devices = 8, .warmup_steps = 0});
  m.step_sequences(128, 2048, 2.0);
  m.report_memory(70 * GiB);
  m.report_memory(60 * GiB);
  const auto s = m.running().value();
  CHECK(s.samples_per_s.value() == doctest::Approx(64.0));
  CHECK(s.tokens_per_device_per_s == doctest::Approx(128.0 * 2048 / 2 / 8));
  CHECK_FALSE(s.mfu.has_value());
  CHECK(s.peak_memory_bytes.value() == 70 * GiB);
}

TEST_CASE("zero, negative or non-finite measurements are refused with a message") {
  meter m({.model_flops_per_token = 1e9, .peak_flops = 1e12});
  CHECK_THROWS_WITH_AS(m.step(1000, 0.0), "step_time must be a positive, finite number of seconds, got 0",
                       config_error);
  CHECK_THROWS_AS(m.step(1000, -1.0), config_error);
  CHECK_THROWS_AS(m.step(1000, std::numeric_limits<double>::infinity()), config_error);
  CHECK_THROWS_AS(m.step(1000, std::numeric_limits<double>::quiet_NaN()), config_error);
  CHECK_THROWS_WITH_AS(m.step(0, 1.0), "tokens must be a positive integer, got 0", config_error);
  CHECK_THROWS_AS(m.step_sequences(-1, 2048, 1.0), config_error);
  CHECK_THROWS_AS(m.report_memory(-5), config_error);
  CHECK(m.steps_seen() == 0);  // nothing refused was counted
  CHECK_THROWS_AS(meter({.model_flops_per_token = 0}), config_error);
  CHECK_THROWS_AS(meter({.model_flops_per_token = 1e9, .peak_flops = -1}), config_error);
  CHECK_THROWS_AS(utilization(1e9, 0, 1e12), config_error);
}

TEST_CASE("throughput conversions") {
  // Seed 004: "17.23 * 2048 / 8 = 4410 tokens/s" per device from the node's samples/s.
  CHECK(tokens_per_device_per_s_from_samples(17.23, 2048, 8) == doctest::Approx(4410.88));
  // A 1024 x 2048-token step in 10 s on 8 devices.
  CHECK(tokens_per_device_per_s_from_step(10.0, 1024, 2048, 8) == doctest::Approx(1024.0 * 2048 / 10 / 8));
  CHECK_THROWS_AS(tokens_per_device_per_s_from_step(0.0, 1024, 2048, 8), config_error);
}

TEST_CASE("a utilization above 100% or from a denormal throughput is refused") {
  // 1e9 FLOPs per token x 2000 tokens/s = 2e12 FLOP/s on a 1e12 FLOP/s device: 200%.
  CHECK_THROWS_WITH_AS(utilization(1e9, 2000, 1e12),
                       doctest::Contains("utilization 200% exceeds 100%: 1e+09 FLOPs per token x 2000 tokens/s"),
                       config_error);
  CHECK(utilization(1e9, 1000, 1e12) == 1.0);  // exactly the peak is possible, if unlikely
  // 1e308 x 1e9 overflows to infinity: no "MFU inf%".
  CHECK_THROWS_AS(utilization(1e9, 1e308, 1e12), config_error);
  // Below DBL_MIN (2.2e-308) a double is denormal: an underflow, not a measurement.
  CHECK_THROWS_WITH_AS(utilization(1e9, 1e-310, 1e12), doctest::Contains("tokens_per_device_per_s must be a positive"),
                       config_error);
  CHECK(utilization(1e9, std::numeric_limits<double>::min(), 1e12) > 0);
  // The meter reports instead of throwing from a trainer's loop: MFU and HFU absent, the reason kept.
  meter m({.model_flops_per_token = 1e9, .peak_flops = 1e12, .devices = 1, .warmup_steps = 0});
  m.step(4000, 1.0);  // 4000 tokens/s: 400%
  const auto s = m.running().value();
  CHECK(s.tokens_per_device_per_s == 4000);
  CHECK_FALSE(s.mfu.has_value());
  CHECK_FALSE(s.hfu.has_value());
  CHECK(s.utilization_refused.find("utilization 400% exceeds 100%") != std::string::npos);
  // A peak measured again applies from then on: 1e9 FLOPs x 4000 tokens/s over 8e12 = 50%.
  m.set_peak_flops(8e12);
  const auto again = m.running().value();
  CHECK(again.mfu.value() == doctest::Approx(0.5));
  CHECK(again.utilization_refused.empty());
  CHECK_THROWS_AS(m.set_peak_flops(0), config_error);
  CHECK_THROWS_AS(m.set_peak_flops(std::numeric_limits<double>::infinity()), config_error);
}
