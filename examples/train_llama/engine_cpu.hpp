// The CPU engine: trainperf's Eigen/OpenMP kernels on the host model (fp32), tensor, pipeline
// (pipeline.hpp) and data parallel over MPI when built with it (parallel.hpp), and the GEMM probe
// that gives its peak.
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

// trainperf's CPU kernels on the host model (fp32; this rank's part under model parallelism).
class cpu_engine final : public engine {
 public:
  // pp > 1: the stage runs `schedule` over gas micro-batches (pipeline.hpp). zero1 with dp > 1:
  // the distributed optimizer (ZeRO stage 1): this rank keeps the AdamW states of its part of
  // the flat buffer only (trainperf::zero_shard), updates that part and gathers the others.
  cpu_engine(llama& m, i64 B, i64 T, const parallel_runtime& rt, trainperf::pipeline_schedule schedule, i64 gas,
             bool zero1)
      : m_(m), rt_(rt), link_(rt) {
    m_.group = rt.tensor();
    if (rt.pp() > 1)
      pipe_ = std::make_unique<pipeline<llama, mpi_stage_link>>(m, link_, B, T, rt.coords().pp, rt.pp(), rt.vpp(),
                                                                schedule, gas);
    else
      act_ = m.make_activations(B, T);
    if (zero1 && rt.dp() > 1) {
      for (i64 r = 0; r < rt.dp(); ++r) bounds_.push_back(std::min(tp::zero_shard(m.total, rt.dp(), r).begin, m.total));
      bounds_.push_back(m.total);
      mine_ = {bounds_[static_cast<std::size_t>(rt.coords().dp)],
               bounds_[static_cast<std::size_t>(rt.coords().dp) + 1]};
      keep_my_part(m);  // the states of this part only
    } else {
      mine_ = {0, m.total};
    }
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
  // The norms' weight gradients summed over the tensor group under sequence parallelism; a
  // replicated key/value head's projections summed over its kv group (each rank has the
  // gradient through its own query heads); a tied embedding's two copies (first and last stage)
  // summed over the embedding group, as Megatron-LM keeps them equal; then the gradients summed
  // over the data-parallel group (under ZeRO-1, reduce-scattered: this rank's part only).
  void allreduce_grads() override {
    m_.reduce_norm_grads();  // sequence parallelism: each tensor rank's rows' share
    m_.for_each_replicated_kv([&](i64 o, i64 n) { rt_.kv_sum(m_.g(o), n); });
    if (m_.emb >= 0 && m_.spec.tied_embeddings) rt_.embedding_sum(m_.g(m_.emb), m_.V_rows * m_.C);
    if (zero1())
      rt_.dp_reduce_scatter(m_.grads.data(), bounds_);
    else
      rt_.dp_sum(m_.grads.data(), m_.total);
  }
  float clip_and_update(float clip, const adamw_step& c, i64 step) override {
    namespace k = tp::kernels::cpu;
    const k::adamw_config cfg{
        .lr = c.lr, .beta1 = c.beta1, .beta2 = c.beta2, .eps = c.eps, .weight_decay = c.weight_decay};
    if (rt_.tp() * rt_.pp() == 1 && !zero1())
      return k::clip_and_adamw(m_.params.data(), m_.grads.data(), m_.adam_m.data(), m_.adam_v.data(), m_.total, clip,
                               cfg, step);
    // The global norm over every rank that holds a part of the gradients (this rank's part of
    // the buffer under ZeRO-1, all of it otherwise), each element once (params.hpp).
    const i64 b = mine_.begin, e = mine_.end;
    double squares = 0;
    m_.for_each_counted(b, e, [&](i64 o, i64 n) { squares += k::sum_of_squares(m_.g(o), n); });
    squares = zero1() ? rt_.world_sum(squares) : rt_.mp_sum(squares);
    const float norm = static_cast<float>(std::sqrt(squares));
    k::clipped_adamw(m_.p(b), m_.g(b), m_.adam_m.data(), m_.adam_v.data(), e - b, norm, clip, cfg, step);
    if (zero1()) rt_.dp_allgather(m_.params.data(), bounds_);
    return norm;
  }
  // The host model is the model; under ZeRO-1 its AdamW states are gathered whole over the
  // data-parallel group for the checkpoint (twice the parameters' bytes, for the time of the
  // write), then cut back to this rank's part.
  void to_host(llama_params& m) override {
    if (!zero1()) return;
    for (auto* s : {&m.adam_m, &m.adam_v}) {
      std::vector<float> whole(static_cast<std::size_t>(m.total));
      std::copy(s->begin(), s->end(), whole.begin() + mine_.begin);
      rt_.dp_allgather(whole.data(), bounds_);
      s->swap(whole);
    }
  }
  void checkpoint_written(llama_params& m) override {
    if (zero1()) keep_my_part(m);
  }
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
  llama::activations act_;                                 // one stage: the whole model's
  mpi_stage_link link_;                                    // the hand-offs between pipeline stages
  std::unique_ptr<pipeline<llama, mpi_stage_link>> pipe_;  // pipeline stages
  // ZeRO-1: dp rank r's part of the flat buffer is [bounds_[r], bounds_[r + 1]); this rank's
  // part (all of it without ZeRO-1).
  std::vector<i64> bounds_;
  tp::index_range mine_;
  [[nodiscard]] bool zero1() const { return !bounds_.empty(); }
  // m's AdamW states cut to this rank's part: from whole ones (a resumed checkpoint's, or
  // to_host's), or zeros where the model was built without them.
  void keep_my_part(llama_params& m) const {
    for (auto* s : {&m.adam_m, &m.adam_v}) {
      if (static_cast<i64>(s->size()) == m.total)
        *s = std::vector<float>(s->begin() + mine_.begin, s->begin() + mine_.end);
      else
        s->assign(static_cast<std::size_t>(mine_.size()), 0.0f);
    }
  }
};

}  // namespace train_llama
