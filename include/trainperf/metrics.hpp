// trainperf — the meter: a trainer reports each step's tokens and wall time; the meter
// skips warm-up, keeps running and windowed averages, and turns them into token/p/s,
// samples/s, TFLOP/s per device, MFU and HFU.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <string>

#include "error.hpp"
#include "units.hpp"

namespace trainperf {

namespace reason {
inline void measurement_must_be_positive_and_finite() {}
inline void utilization_exceeds_100_percent() {}
}  // namespace reason

namespace detail {
// Positive, finite and normal: a denormal (below 2.2e-308) is no measurement, it is an
// underflow, and MFUs computed from it print as 0.00%.
constexpr void require_measurement(double v, std::string_view field, std::string_view unit) {
  require(is_finite(v) && v >= std::numeric_limits<double>::min(), reason::measurement_must_be_positive_and_finite,
          field, [&] {
            return std::string(field) + " must be a positive, finite number of " + std::string(unit) + ", got " +
                   format_double(v);
          });
}
}  // namespace detail

// Achieved model FLOP/s per device over its dense peak: MFU as the PaLM paper defines it
// (Chowdhery et al. 2022, appendix B) when flops_per_token counts model FLOPs, HFU when it
// counts hardware FLOPs (recomputation included). No device computes above its peak, so a
// utilization above 100% is refused: one of the three inputs is wrong.
constexpr double utilization(double flops_per_token, double tokens_per_device_per_s, double peak_flops) {
  detail::require_measurement(flops_per_token, "flops_per_token", "FLOPs");
  detail::require_measurement(tokens_per_device_per_s, "tokens_per_device_per_s", "tokens per second");
  detail::require_measurement(peak_flops, "peak_flops", "FLOP/s");
  const double achieved = flops_per_token * tokens_per_device_per_s;
  detail::require(detail::is_finite(achieved) && achieved <= peak_flops, reason::utilization_exceeds_100_percent,
                  "tokens_per_device_per_s", [&] {
                    return "utilization " + format_double(achieved / peak_flops * 100) +
                           "% exceeds 100%: " + format_double(flops_per_token) + " FLOPs per token x " +
                           format_double(tokens_per_device_per_s) +
                           " tokens/s per device = " + format_double(achieved) + " FLOP/s, above the peak of " +
                           format_double(peak_flops) +
                           " FLOP/s; give the throughput per device (not per node or job), the dense peak of the "
                           "dtype that computes, and FLOPs per token of this model";
                  });
  return achieved / peak_flops;
}

// Token/p/s from the usual ways a throughput is reported.
constexpr double tokens_per_device_per_s_from_samples(double samples_per_s, std::int64_t seq, std::int64_t devices) {
  detail::require_measurement(samples_per_s, "samples_per_s", "samples per second");
  detail::require_positive(seq, "seq");
  detail::require_positive(devices, "devices");
  return samples_per_s * static_cast<double>(seq) / static_cast<double>(devices);
}
constexpr double tokens_per_device_per_s_from_step(double step_seconds, std::int64_t gbs, std::int64_t seq,
                                                   std::int64_t devices) {
  detail::require_measurement(step_seconds, "step_time", "seconds");
  detail::require_positive(gbs, "gbs");
  return tokens_per_device_per_s_from_samples(static_cast<double>(gbs) / step_seconds, seq, devices);
}

class meter {
 public:
  struct config {
    double model_flops_per_token = 0;     // count_flops(...).model_per_token()
    double hardware_flops_per_token = 0;  // count_flops(...).hardware_per_token(); 0: = model
    double peak_flops = 0;                // dense peak per device; 0: unknown, MFU/HFU absent
    std::int64_t devices = 1;             // devices sharing each step
    std::int64_t warmup_steps = 1;        // first steps left out (compilation, allocator warm-up)
    std::int64_t window = 20;             // steps in the windowed average
  };

  struct stats {
    std::int64_t steps = 0;
    double seconds = 0;
    double tokens = 0;
    double tokens_per_device_per_s = 0;
    std::optional<double> samples_per_s;  // when every step in the span reported sequences
    double tflops_per_device = 0;         // model TFLOP/s per device
    std::optional<double> mfu;            // fractions (0.336 = 33.6%); absent when the peak is unknown
    std::optional<double> hfu;
    std::string utilization_refused;  // why mfu/hfu are absent although the peak is known (above 100%)
    std::optional<std::int64_t> peak_memory_bytes;
  };

  explicit meter(const config& c) : cfg_(c) {
    detail::require_measurement(c.model_flops_per_token, "model_flops_per_token", "FLOPs");
    if (c.hardware_flops_per_token != 0)
      detail::require_measurement(c.hardware_flops_per_token, "hardware_flops_per_token", "FLOPs");
    if (c.peak_flops != 0) detail::require_measurement(c.peak_flops, "peak_flops", "FLOP/s");
    detail::require_positive(c.devices, "devices");
    detail::require_positive(c.window, "window");
    detail::require(c.warmup_steps >= 0, reason::value_must_be_positive, "warmup_steps",
                    [&] { return "warmup_steps must be 0 or more, got " + detail::str(c.warmup_steps); });
    if (cfg_.hardware_flops_per_token == 0) cfg_.hardware_flops_per_token = cfg_.model_flops_per_token;
  }

  // A peak measured again (a trainer's GEMM probe, re-run when its first reading proved low):
  // the summaries from now on use it.
  void set_peak_flops(double peak) {
    detail::require_measurement(peak, "peak_flops", "FLOP/s");
    cfg_.peak_flops = peak;
  }

  // One step: the tokens all devices processed together, and its wall time.
  void step(std::int64_t tokens, double seconds) { add(tokens, 0, seconds); }
  // One step given as sequences of seq tokens (samples/s becomes available).
  void step_sequences(std::int64_t sequences, std::int64_t seq, double seconds) {
    detail::require_positive(sequences, "sequences");
    detail::require_positive(seq, "seq");
    add(detail::checked_mul(sequences, seq, "tokens"), sequences, seconds);
  }
  // The trainer's own peak-memory reading (bytes); the meter keeps the maximum.
  void report_memory(std::int64_t bytes) {
    detail::require(bytes >= 0, reason::value_must_be_positive, "memory",
                    [&] { return "memory must be 0 or more bytes, got " + detail::str(bytes); });
    peak_memory_ = peak_memory_ ? std::max(*peak_memory_, bytes) : bytes;
  }

  [[nodiscard]] std::int64_t steps_seen() const { return seen_; }
  // Averages over every step after warm-up, and over the last `window` of them; empty while
  // still warming up.
  [[nodiscard]] std::optional<stats> running() const { return summarize(total_); }
  [[nodiscard]] std::optional<stats> windowed() const {
    span w;
    for (const auto& s : window_) w.add(s);
    return summarize(w);
  }

 private:
  struct span {
    std::int64_t steps = 0;
    double seconds = 0;
    double tokens = 0;
    double samples = 0;
    bool all_have_samples = true;
    void add(const span& o) {
      steps += o.steps;
      seconds += o.seconds;
      tokens += o.tokens;
      samples += o.samples;
      all_have_samples = all_have_samples && o.all_have_samples;
    }
  };

  void add(std::int64_t tokens, std::int64_t samples, double seconds) {
    detail::require_positive(tokens, "tokens");
    detail::require_measurement(seconds, "step_time", "seconds");
    ++seen_;
    if (seen_ <= cfg_.warmup_steps) return;
    const span s{1, seconds, static_cast<double>(tokens), static_cast<double>(samples), samples > 0};
    total_.add(s);
    window_.push_back(s);
    if (static_cast<std::int64_t>(window_.size()) > cfg_.window) window_.pop_front();
  }

  std::optional<stats> summarize(const span& s) const {
    if (s.steps == 0) return std::nullopt;
    stats r;
    r.steps = s.steps;
    r.seconds = s.seconds;
    r.tokens = s.tokens;
    r.tokens_per_device_per_s = s.tokens / s.seconds / static_cast<double>(cfg_.devices);
    if (s.all_have_samples) r.samples_per_s = s.samples / s.seconds;
    r.tflops_per_device = r.tokens_per_device_per_s * cfg_.model_flops_per_token / 1e12;
    if (cfg_.peak_flops > 0) {  // a trainer's loop asks often: an impossible MFU is reported, not thrown
      try {
        r.mfu = utilization(cfg_.model_flops_per_token, r.tokens_per_device_per_s, cfg_.peak_flops);
        r.hfu = utilization(cfg_.hardware_flops_per_token, r.tokens_per_device_per_s, cfg_.peak_flops);
      } catch (const config_error& e) {
        r.mfu.reset();
        r.hfu.reset();
        r.utilization_refused = e.what();
      }
    }
    r.peak_memory_bytes = peak_memory_;
    return r;
  }

  config cfg_;
  std::int64_t seen_ = 0;
  span total_;
  std::deque<span> window_;
  std::optional<std::int64_t> peak_memory_;
};

}  // namespace trainperf
