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
#include <trainperf/kernels/cpu/measure.hpp>
#include <trainperf/trainperf.hpp>

#ifdef TRAINPERF_WITH_MPI
#include <trainperf/comm/mpi.hpp>
#endif

#include "engine.hpp"
#include "host.hpp"
#include "model.hpp"

namespace train_llama {

namespace tp = trainperf;

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
    const auto p = tp::kernels::cpu::measure::measure_gemm_peak();
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
