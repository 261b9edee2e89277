// trainperf — a device profile (profile.hpp) from measurements of this machine: the GEMM
// model's rate and saturation point fitted to measured GEMM shapes, the streaming kernels' and
// flash attention's achieved fractions, each counted in the units step_time.hpp charges
// (step_time.hpp, namespace costs), so that predict_step divides by what was measured.
// `trainperf calibrate` takes the measurements (kernels/cpu/measure.hpp) and writes the result.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "error.hpp"
#include "profile.hpp"
#include "step_time.hpp"
#include "units.hpp"

namespace trainperf {

struct gemm_fit {
  double rate = 0;           // FLOP/s of a GEMM with unbounded output (the saturation curve's asymptote)
  double half_outputs = 0;   // output elements at which a GEMM reaches half that rate
  double element_bytes = 0;  // the operands' bytes per element and
  double bandwidth = 0;      // the achieved memory bandwidth (bytes/s) of the roofline's floor
  double rms_log_error = 0;  // of the fitted times against the measured ones, natural log, time-weighted
  double max_error = 0;      // the largest |fitted / measured - 1|

  // Seconds step_time's gemm_time gives shape s at this fit's rate, saturation point and floor.
  [[nodiscard]] double seconds(const gemm_sample& s) const {
    device_profile p;
    p.gemm_efficiency = 1;
    p.gemm_half_outputs = half_outputs;
    p.memory_efficiency = 1;
    return detail::gemm_time(s.m, s.n, s.k, rate, element_bytes, bandwidth, p);
  }
};

namespace reason {
inline void calibration_needs_measurements() {}
}  // namespace reason

// Least squares in log time of step_time's GEMM model over the samples, each sample's error
// weighted by its measured time (a step's time is the sum of its GEMMs': a shape that takes
// twice as long matters twice as much): the saturation point on a grid (0, then 10 to 10^9
// outputs at 16 points a decade), and for each the rate that fits the compute-bound samples best
// (closed form: the weighted mean log ratio), the roofline's floor re-deciding which samples are
// compute-bound until it settles.
inline gemm_fit fit_gemm(std::span<const gemm_sample> samples, double element_bytes, double bandwidth) {
  detail::require(!samples.empty(), reason::calibration_needs_measurements, "gemm_samples",
                  [] { return std::string("fitting the GEMM model needs at least one measured shape"); });
  for (const gemm_sample& s : samples) validate(s, "gemm_samples", "fitting the GEMM model");
  detail::require(element_bytes > 0 && detail::is_finite(element_bytes), reason::calibration_needs_measurements,
                  "element_bytes", [&] {
                    return "fitting the GEMM model needs the operands' bytes per element, got " +
                           format_double(element_bytes);
                  });
  detail::require(bandwidth > 0 && detail::is_finite(bandwidth), reason::calibration_needs_measurements, "bandwidth",
                  [&] {
                    return "fitting the GEMM model needs the achieved memory bandwidth, got " +
                           format_double(bandwidth) + " bytes/s";
                  });
  const auto model = [&](double rate, double h, double floor_bandwidth) {
    return gemm_fit{.rate = rate, .half_outputs = h, .element_bytes = element_bytes, .bandwidth = floor_bandwidth};
  };
  const double no_floor = std::numeric_limits<double>::infinity();  // compute time alone
  const auto evaluate = [&](double rate, double h) {
    gemm_fit f = model(rate, h, bandwidth);
    double weights = 0;
    for (const gemm_sample& s : samples) {
      const double fitted = f.seconds(s);
      const double log_error = std::log(fitted / s.seconds);
      f.rms_log_error += s.seconds * log_error * log_error;
      weights += s.seconds;
      f.max_error = std::max(f.max_error, std::abs(fitted / s.seconds - 1));
    }
    f.rms_log_error = std::sqrt(f.rms_log_error / weights);
    return f;
  };
  const auto rate_for = [&](double h) {
    // Start from every sample compute-bound; then keep those the roofline leaves compute-bound.
    double rate = 0;
    std::vector<bool> compute(samples.size(), true);
    for (int pass = 0; pass < 8; ++pass) {
      // Compute time is proportional to 1 / rate: its log at rate 1 less the measured one's.
      double sum = 0, weights = 0;
      for (std::size_t i = 0; i < samples.size(); ++i) {
        if (!compute[i]) continue;
        const gemm_sample& s = samples[i];
        sum += s.seconds * std::log(model(1, h, no_floor).seconds(s) / s.seconds);
        weights += s.seconds;
      }
      if (weights == 0) break;  // all memory-bound at this rate: keep the last one
      rate = std::exp(sum / weights);
      bool changed = false;
      for (std::size_t i = 0; i < samples.size(); ++i) {
        const gemm_sample& s = samples[i];
        const bool c = model(rate, h, no_floor).seconds(s) >= model(rate, h, bandwidth).seconds(s);
        changed |= c != compute[i];
        compute[i] = c;
      }
      if (!changed) break;
    }
    return rate;
  };
  gemm_fit best;
  best.rms_log_error = std::numeric_limits<double>::infinity();
  for (int i = -1; i <= 8 * 16; ++i) {
    const double h = i < 0 ? 0 : std::pow(10.0, 1 + i / 16.0);
    const double rate = rate_for(h);
    if (!(rate > 0)) continue;
    const gemm_fit f = evaluate(rate, h);
    if (f.rms_log_error < best.rms_log_error) best = f;
  }
  return best;
}

// One transformer layer's shapes, for the kernels measured at them (kernels/cpu/measure.hpp,
// kernels/cuda/measure.cuh).
struct measured_layer {
  std::int64_t batch = 1, seq = 1024;      // sequences and their length
  std::int64_t hidden = 1024, ffn = 2816;  // SwiGLU's width
  std::int64_t heads = 16, kv_heads = 16, head_dim = 64;
  std::int64_t params = 1 << 24;  // parameters the optimizer steps
  std::int64_t vocab = 0;         // the output layer's width, padded to a multiple of tp; 0: no model given
  std::int64_t tp = 1;            // the tensor-parallel ranks the linear layers are split over
};

// A model's linear layers at t tokens as one of `tp` tensor-parallel ranks runs them (Megatron-LM's
// split: Q, K, V, gate and up by their outputs, the output projection and down by their inputs,
// the output layer by the vocabulary; key/value heads fewer than tp replicated, one a rank), as
// GEMM shapes (m = tokens, n = outputs, k = inputs), each once: the attention's projections fused
// (Q, K, V as one) and separate, the output projection, the MLP's gate and up fused and separate,
// its down projection, and the output layer (with a vocabulary, padded as the model pads it):
// every shape step_time asks of a dense layer under either fused_projections, without context
// parallelism.
inline std::vector<gemm_sample> linear_shapes(const measured_layer& l) {
  const double tp = static_cast<double>(l.tp);
  const double t = static_cast<double>(l.batch * l.seq), h = static_cast<double>(l.hidden),
               q = static_cast<double>(l.heads * l.head_dim) / tp,
               kv = static_cast<double>(std::max<std::int64_t>(l.kv_heads / l.tp, 1) * l.head_dim),
               f = static_cast<double>(l.ffn) / tp;
  std::vector<gemm_sample> shapes;
  const auto add = [&](double n, double k) {
    if (n <= 0) return;
    for (const gemm_sample& s : shapes)
      if (s.n == n && s.k == k) return;
    shapes.push_back({t, n, k, 0});
  };
  add(q + 2 * kv, h), add(q, h), add(kv, h), add(h, q), add(2 * f, h), add(f, h), add(h, f);
  add(static_cast<double>(l.vocab) / tp, h);
  return shapes;
}

// What `trainperf calibrate` measures, each figure the best of its repetitions.
struct calibration_measurements {
  double gemm_peak = 0;            // FLOP/s of the GEMM probe (the trainer's peak for MFU)
  std::vector<gemm_sample> gemms;  // GEMM shapes, seconds per product
  // The model's own linear shapes (linear_shapes, calibrate with a model), seconds per product,
  // with the device's name and the dtype: the profile's measured GEMMs.
  measured_gemms model_gemms;
  double element_bytes = 4;      // the dtype measured (fp32 on the CPU)
  double copy_bandwidth = 0;     // bytes/s, STREAM's triad
  double streaming_bytes = 0;    // memory-bound kernels, bytes as step_time charges them
  double streaming_seconds = 0;  // and the seconds they took
  double attention_forward_flops = 0, attention_forward_seconds = 0;  // flash attention, as charged
  double attention_backward_flops = 0, attention_backward_seconds = 0;
  // The device's datasheet figures the profile's fractions are of (a GPU of hardware.hpp's
  // table: its dense peak of the dtype measured, its memory bandwidth); 0 where the device has
  // none (a CPU): then the GEMM probe and the copy bandwidth measured here are the reference.
  double datasheet_peak = 0, datasheet_bandwidth = 0;
};

struct calibration_result {
  device_profile profile;
  double peak_flops = 0;        // the device's dense peak the profile's fractions are of
  double memory_bandwidth = 0;  // bytes/s, the profile's memory_efficiency is of
  gemm_fit gemm;
  // Achieved fractions above 1 of the figure they are of, capped at 1 (named for the report).
  std::vector<std::string> capped;
};

// The profile the measurements give. The peak is the datasheet's, or without one the GEMM
// probe's rate or the fitted asymptote, whichever is higher; the memory bandwidth is the
// datasheet's, or the copy bandwidth measured. Fractions above 1 are capped and named. A single
// process measures no links: the bus efficiencies are 1 and the latency 0 (a cluster of these
// devices needs its link bandwidths given, or the caller takes them from a built-in profile).
inline calibration_result calibrate_profile(const calibration_measurements& mm, std::string name, std::string source) {
  const auto positive = [](double v, const char* field, const char* what) {
    detail::require(detail::is_finite(v) && v > 0, reason::calibration_needs_measurements, field,
                    [&] { return std::string("calibration needs ") + what + ", got " + format_double(v); });
  };
  positive(mm.gemm_peak, "gemm_peak", "the GEMM probe's FLOP/s");
  positive(mm.copy_bandwidth, "copy_bandwidth", "the copy bandwidth (bytes/s)");
  positive(mm.streaming_bytes, "streaming_bytes", "the streaming kernels' bytes");
  positive(mm.streaming_seconds, "streaming_seconds", "the streaming kernels' seconds");
  positive(mm.attention_forward_flops, "attention_forward_flops", "attention's forward FLOPs");
  positive(mm.attention_forward_seconds, "attention_forward_seconds", "attention's forward seconds");
  positive(mm.attention_backward_flops, "attention_backward_flops", "attention's backward FLOPs");
  positive(mm.attention_backward_seconds, "attention_backward_seconds", "attention's backward seconds");

  calibration_result r;
  r.memory_bandwidth = mm.datasheet_bandwidth > 0 ? mm.datasheet_bandwidth : mm.copy_bandwidth;
  const auto fraction = [&](double achieved, double of, const char* what) {
    const double f = achieved / of;
    if (f > 1) r.capped.push_back(std::string(what) + " " + format_double(f));
    return std::min(1.0, f);
  };
  device_profile& p = r.profile;
  p.name = std::move(name);
  p.source = std::move(source);
  p.memory_efficiency = fraction(mm.streaming_bytes / mm.streaming_seconds, r.memory_bandwidth, "memory_efficiency");
  r.gemm = fit_gemm(mm.gemms, mm.element_bytes, r.memory_bandwidth * p.memory_efficiency);
  r.peak_flops = mm.datasheet_peak > 0 ? mm.datasheet_peak : std::max(mm.gemm_peak, r.gemm.rate);
  p.gemm_efficiency = fraction(r.gemm.rate, r.peak_flops, "gemm_efficiency");
  p.gemm_half_outputs = r.gemm.half_outputs;
  p.measured = mm.model_gemms;
  p.attention_forward_efficiency =
      fraction(mm.attention_forward_flops / mm.attention_forward_seconds, r.peak_flops, "attention_forward_efficiency");
  p.attention_backward_efficiency = fraction(mm.attention_backward_flops / mm.attention_backward_seconds, r.peak_flops,
                                             "attention_backward_efficiency");
  // No fused cuDNN path here: the same kernel.
  p.cudnn_attention_forward_efficiency = p.attention_forward_efficiency;
  p.cudnn_attention_backward_efficiency = p.attention_backward_efficiency;
  p.intra_node_bus_efficiency = p.inter_node_bus_efficiency = 1;
  p.latency_s = 0;
  validate(p);
  return r;
}

}  // namespace trainperf
