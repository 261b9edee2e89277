// The CPU engine: trainperf's Eigen/OpenMP kernels on the host model (fp32), data parallel over
// MPI when built with it, and the GEMM probe that gives its peak.
#pragma once

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <trainperf/kernels/cpu/kernels.hpp>
#include <trainperf/trainperf.hpp>

#ifdef TRAINPERF_WITH_MPI
#include <trainperf/comm/mpi.hpp>
#endif

#include "engine.hpp"
#include "host.hpp"
#include "model.hpp"

namespace train_llama {

namespace tp = trainperf;

// The fp32 GEMM rate of trainperf's linear kernel on this machine, with the trainer's threads.
struct gemm_peak {
  double best = 0, median = 0, worst = 0;  // FLOP/s over the timed repetitions
  i64 n = 0;
  int repetitions = 0;
  double seconds = 0;  // the probe's whole time, warm-up included
};

// n x n x n products (n = 1024: 12 MiB of operands, past the private caches, so the rate is the
// sustained one, not a cache burst), one warm-up, then `repetitions` timed runs of at least
// `min_seconds` each. The best run is the peak, what this kernel can sustain here; the spread
// says how steady the machine was while it was measured. (A 512^3 probe of 4 products, as
// before, read anywhere from 34 to 246 GFLOP/s on a shared 2-core machine: MFUs above 100%.)
inline gemm_peak measure_gemm_peak(i64 n = 1024, int repetitions = 5, double min_seconds = 0.2) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  std::vector<float> a(static_cast<std::size_t>(n * n)), b(a.size()), c(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {  // varied operands: no shortcut on constant data
    a[i] = static_cast<float>(i % 13) * 0.01f - 0.06f;
    b[i] = static_cast<float>(i % 7) * 0.02f - 0.06f;
  }
  const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  tp::kernels::cpu::linear_forward(c.data(), a.data(), b.data(), nullptr, n, n, n);  // warm-up: pages, threads
  std::vector<double> rates;
  for (int rep = 0; rep < repetitions; ++rep) {
    const auto t0 = clock::now();
    int calls = 0;
    double s = 0;
    do {
      tp::kernels::cpu::linear_forward(c.data(), a.data(), b.data(), nullptr, n, n, n);
      ++calls;
      s = std::chrono::duration<double>(clock::now() - t0).count();
    } while (s < min_seconds);
    rates.push_back(calls * flops / s);
  }
  std::sort(rates.begin(), rates.end());
  return {rates.back(), rates[rates.size() / 2], rates.front(), n, repetitions,
          std::chrono::duration<double>(clock::now() - start).count()};
}

// trainperf's CPU kernels on the host model (fp32), data parallel over MPI when built with it.
class cpu_engine final : public engine {
 public:
  cpu_engine(llama& m, i64 B, i64 T, int world) : m_(m), act_(m.make_activations(B, T)), world_(world) {
#ifdef TRAINPERF_WITH_MPI
    if (world > 1) dp_ = std::make_unique<tp::comm::mpi_group>(tp::layout(world, {}), "dp");
#endif
  }
  std::string name() const override {
    return fmt::format("CPU {} process{} x {} threads", world_, world_ > 1 ? "es" : "", omp_get_max_threads());
  }
  tp::dtype compute_dtype() const override { return tp::dtype::fp32; }
  void zero_grads() override {  // 0.65 GB at 162M parameters: on every thread, like the update
    float* g = m_.grads.data();
#pragma omp parallel for schedule(static)
    for (i64 i = 0; i < m_.total; ++i) g[i] = 0.0f;
  }
  float step(const std::int32_t* tokens, const std::int32_t* targets, bool backward, float loss_scale) override {
    return m_.step(act_, tokens, targets, backward, loss_scale);
  }
  void allreduce_grads() override {
#ifdef TRAINPERF_WITH_MPI
    if (dp_) dp_->allreduce_sum(m_.grads.data(), m_.total);  // layout.hpp's "dp" groups
#endif
  }
  float clip_and_update(float clip, const adamw_step& c, i64 step) override {
    return tp::kernels::cpu::clip_and_adamw(
        m_.params.data(), m_.grads.data(), m_.adam_m.data(), m_.adam_v.data(), m_.total, clip,
        {.lr = c.lr, .beta1 = c.beta1, .beta2 = c.beta2, .eps = c.eps, .weight_decay = c.weight_decay}, step);
  }
  void to_host(llama_params&) override {}  // the host model is the model
  memory_reading memory() const override {
    return {peak_rss_bytes(), static_cast<std::int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE), "peak RSS"};
  }
  std::pair<double, std::string> default_peak() const override {
    const gemm_peak p = measure_gemm_peak();
    return {p.best, fmt::format("this machine's fp32 GEMM through trainperf's linear kernel with {} threads: best of "
                                "{} runs of {}^3 products, measured now in {:.1f} s (median {:.3g}, slowest {:.3g} "
                                "FLOP/s)",
                                omp_get_max_threads(), p.repetitions, p.n, p.seconds, p.median, p.worst)};
  }

 private:
  llama& m_;
  llama::activations act_;
  int world_;
#ifdef TRAINPERF_WITH_MPI
  std::unique_ptr<tp::comm::mpi_group> dp_;
#endif
};

}  // namespace train_llama
