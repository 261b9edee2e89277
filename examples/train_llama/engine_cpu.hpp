// The CPU engine: trainperf's Eigen/OpenMP kernels on the host model (fp32), tensor and data
// parallel over MPI when built with it (parallel.hpp), and the GEMM probe that gives its peak.
#pragma once

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <trainperf/kernels/cpu/kernels.hpp>
#include <trainperf/kernels/cpu/measure.hpp>
#include <trainperf/trainperf.hpp>

#include "engine.hpp"
#include "host.hpp"
#include "model.hpp"
#include "parallel.hpp"
#include "pipeline.hpp"

namespace train_llama {

namespace tp = trainperf;

// trainperf's CPU kernels on the host model (fp32; this rank's shard under tensor parallelism).
class cpu_engine final : public engine {
 public:
  // pp > 1: the stage runs `schedule` over gas micro-batches (pipeline.hpp).
  cpu_engine(llama& m, i64 B, i64 T, const parallel_runtime& rt, trainperf::pipeline_schedule schedule, i64 gas)
      : m_(m), rt_(rt) {
    m_.group = rt.tensor();
    if (rt.pp() > 1)
      pipe_ = std::make_unique<pipeline>(m, B, T, rt, schedule, gas);
    else
      act_ = m.make_activations(B, T);
  }
  std::string name() const override {
    return fmt::format("CPU {} process{} x {} threads", rt_.world(), rt_.world() > 1 ? "es" : "",
                       omp_get_max_threads());
  }
  tp::dtype compute_dtype() const override { return tp::dtype::fp32; }
  void zero_grads() override {  // 0.65 GB at 162M parameters: on every thread, like the update
    float* g = m_.grads.data();
#pragma omp parallel for schedule(static)
    for (i64 i = 0; i < m_.total; ++i) g[i] = 0.0f;
  }
  float step(const std::int32_t* tokens, const std::int32_t* targets, bool backward, float loss_scale) override {
    if (!pipe_) return m_.step(act_, tokens, targets, backward, loss_scale);
    if (backward) throw std::logic_error("train_llama: a pipeline trains through train_step");
    const std::size_t n = static_cast<std::size_t>(pipe_->tokens_per_micro_batch());
    return pipe_->forward_only(std::vector<std::int32_t>(tokens, tokens + n),
                               std::vector<std::int32_t>(targets, targets + n));
  }
  float train_step(const batch_source& batches, i64 micro_batches, float loss_scale,
                   i64 tokens_per_micro_batch) override {
    if (!pipe_) return engine::train_step(batches, micro_batches, loss_scale, tokens_per_micro_batch);
    return static_cast<float>(rt_.pp_sum(pipe_->train(batches, loss_scale)));  // the loss is the last stage's
  }
  // Gradients summed over the data-parallel group, and a tied embedding's two copies (first and
  // last stage) over the embedding group, as Megatron-LM keeps them equal.
  void allreduce_grads() override {
    rt_.dp_sum(m_.grads.data(), m_.total);
    if (m_.emb >= 0 && m_.spec.tied_embeddings) rt_.embedding_sum(m_.g(m_.emb), m_.V_rows * m_.C);
  }
  float clip_and_update(float clip, const adamw_step& c, i64 step) override {
    namespace k = tp::kernels::cpu;
    const k::adamw_config cfg{
        .lr = c.lr, .beta1 = c.beta1, .beta2 = c.beta2, .eps = c.eps, .weight_decay = c.weight_decay};
    if (rt_.tp() * rt_.pp() == 1)
      return k::clip_and_adamw(m_.params.data(), m_.grads.data(), m_.adam_m.data(), m_.adam_v.data(), m_.total, clip,
                               cfg, step);
    // The global norm over the model-parallel group: every part's squares once. The norm weights
    // every tensor rank holds count on tensor rank 0 only; a tied embedding's copy on the last
    // stage does not count (the first stage's does).
    double squares = k::sum_of_squares(m_.grads.data(), m_.total);
    const auto uncount = [&](i64 o, i64 n) { squares -= k::sum_of_squares(m_.g(o), n); };
    if (m_.tp_rank != 0) m_.for_each_replicated(uncount);
    m_.for_each_pipeline_copy(uncount);
    const float norm = static_cast<float>(std::sqrt(std::max(0.0, rt_.mp_sum(squares))));
    k::clipped_adamw(m_.params.data(), m_.grads.data(), m_.adam_m.data(), m_.adam_v.data(), m_.total, norm, clip, cfg,
                     step);
    return norm;
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
  const parallel_runtime& rt_;
  llama::activations act_;          // one stage: the whole model's
  std::unique_ptr<pipeline> pipe_;  // pipeline stages
};

}  // namespace train_llama
