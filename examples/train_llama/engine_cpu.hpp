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

// Dense fp32 GEMM throughput of this machine, with the trainer's own kernel and threads.
inline double gemm_probe() {
  const i64 n = 512;
  std::vector<float> a(static_cast<std::size_t>(n * n), 0.5f), b(a.size(), 0.25f), c(a.size());
  tp::kernels::cpu::linear_forward(c.data(), a.data(), b.data(), nullptr, n, n, n);  // warm-up
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 4; ++i) tp::kernels::cpu::linear_forward(c.data(), a.data(), b.data(), nullptr, n, n, n);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 4 * 2.0 * n * n * n / s);
  }
  return best;
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
  void zero_grads() override { std::fill(m_.grads.begin(), m_.grads.end(), 0.0f); }
  float step(const std::int32_t* tokens, const std::int32_t* targets, bool backward, float loss_scale) override {
    return m_.step(act_, tokens, targets, backward, loss_scale);
  }
  void allreduce_grads() override {
#ifdef TRAINPERF_WITH_MPI
    if (dp_) dp_->allreduce_sum(m_.grads.data(), m_.total);  // layout.hpp's "dp" groups
#endif
  }
  float clip_and_update(float clip, const adamw_step& c, i64 step) override {
    const float norm = tp::kernels::cpu::clip_grad_norm(m_.grads.data(), m_.total, clip);
    tp::kernels::cpu::adamw(
        m_.params.data(), m_.grads.data(), m_.adam_m.data(), m_.adam_v.data(), m_.total,
        {.lr = c.lr, .beta1 = c.beta1, .beta2 = c.beta2, .eps = c.eps, .weight_decay = c.weight_decay}, step);
    return norm;
  }
  void to_host(llama_params&) override {}  // the host model is the model
  memory_reading memory() const override {
    return {peak_rss_bytes(), static_cast<std::int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE), "peak RSS"};
  }
  std::pair<double, std::string> default_peak() const override {
    return {gemm_probe(), "this machine's fp32 GEMM, measured now (512^3)"};
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
