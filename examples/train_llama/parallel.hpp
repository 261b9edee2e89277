// train_llama's parallel runtime: the layout of the world's ranks (trainperf::layout, Megatron-LM's
// rank order), this rank's place in it, and the MPI groups it works over: its tensor-parallel
// group (the model's reductions) and within it the kv group (a replicated key/value head's
// ranks), its pipeline group (hand-offs between stages), its model-
// parallel group (the global gradient norm), the embedding group (a tied embedding's copies on
// the first and last stage) and its data-parallel group (gradients and the loss). Without MPI
// the world is one process and every group is that process alone.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <trainperf/layout.hpp>
#include <trainperf/parallel.hpp>

#ifdef TRAINPERF_WITH_MPI
#include <trainperf/comm/mpi.hpp>
#endif

#include "collectives.hpp"

namespace train_llama {

class parallel_runtime final : public tensor_group {
 public:
  // config: tp, pp, vpp (and dp, derived from the world when 0), already validated against the
  // world and the model; tied: the model's output layer is its embedding (an embedding group);
  // kv_replicas: consecutive tensor ranks sharing a replicated key/value head (a kv group).
  parallel_runtime(std::int64_t world, std::int64_t rank, const trainperf::parallel_config& config, bool tied,
                   std::int64_t kv_replicas = 1)
      : layout_(world, config), coords_(layout_.coords(rank)), vpp_(config.vpp), kv_replicas_(kv_replicas) {
#ifdef TRAINPERF_WITH_MPI
    using trainperf::comm::mpi_group;
    if (tp() > 1) tp_ = std::make_unique<mpi_group>(layout_, "tp");
    if (kv_replicas > 1) kv_ = std::make_unique<mpi_group>(kv_groups(), "kv");
    if (pp() > 1) pp_ = std::make_unique<mpi_group>(layout_, "pp");
    if (tp() * pp() > 1) mp_ = std::make_unique<mpi_group>(layout_, "mp");
    if (pp() > 1 && tied)
      embedding_ = std::make_unique<mpi_group>(layout_, "embedding", MPI_COMM_WORLD, /*optional=*/true);
    if (dp() > 1) dp_ = std::make_unique<mpi_group>(layout_, "dp");
#else
    (void)tied;  // one process: no groups
#endif
  }

  [[nodiscard]] const trainperf::layout& layout() const { return layout_; }
  [[nodiscard]] const trainperf::rank_coords& coords() const { return coords_; }
  [[nodiscard]] std::int64_t world() const { return layout_.world(); }
  [[nodiscard]] std::int64_t tp() const { return layout_.decoder().size(trainperf::axis::tp); }
  [[nodiscard]] std::int64_t pp() const { return layout_.decoder().size(trainperf::axis::pp); }
  [[nodiscard]] std::int64_t vpp() const { return vpp_; }
  [[nodiscard]] std::int64_t dp() const { return layout_.decoder().size(trainperf::axis::dp); }
  // The kv groups: each tensor group cut into runs of kv_replicas ranks, in tensor-rank order (the
  // ranks holding the same replicated key/value head); none without replication.
  [[nodiscard]] std::vector<std::vector<std::int64_t>> kv_groups() const {
    std::vector<std::vector<std::int64_t>> kv;
    if (kv_replicas_ == 1) return kv;
    const auto n = static_cast<std::size_t>(kv_replicas_);
    for (const auto& g : layout_.groups("tp"))
      for (std::size_t i = 0; i < g.size(); i += n)
        kv.emplace_back(g.begin() + static_cast<std::ptrdiff_t>(i), g.begin() + static_cast<std::ptrdiff_t>(i + n));
    return kv;
  }
  // The model's tensor group, or nullptr when it is this process alone.
  [[nodiscard]] const tensor_group* tensor() const { return tp() > 1 ? this : nullptr; }

  // tensor_group: over this rank's tensor-parallel group.
  void sum(float* x, std::int64_t n) const override {
    with(tp_, [&](auto& g) { g.allreduce_sum(x, n); });
  }
  void sum(double* x, std::int64_t n) const override {
    with(tp_, [&](auto& g) { g.allreduce_sum(x, n); });
  }
  void max(float* x, std::int64_t n) const override {
    with(tp_, [&](auto& g) { g.allreduce_max(x, n); });
  }
  void reduce_scatter(const float* whole, float* part, std::int64_t n) const override {
    with(tp_, [&](auto& g) { g.reduce_scatter_block_sum(whole, part, n); });
  }
  void allgather(const float* part, float* whole, std::int64_t n) const override {
    with(tp_, [&](auto& g) { g.allgather_block(part, whole, n); });
  }

  // Pipeline hand-offs to the stage `to` / from the stage `from` of this rank's pipeline group.
  void send_stage(const float* x, std::int64_t n, std::int64_t to, int tag) const {
    with(pp_, [&](auto& g) { g.send(x, n, static_cast<int>(to), tag); });
  }
  void recv_stage(float* x, std::int64_t n, std::int64_t from, int tag) const {
    with(pp_, [&](auto& g) { g.recv(x, n, static_cast<int>(from), tag); });
  }
  void wait_stage_sends() const {
    with(pp_, [&](auto& g) { g.wait_sends(); });
  }
  // Over the pipeline group: a figure only one stage has (the loss, on the last).
  [[nodiscard]] double pp_sum(double x) const { return sum_over(pp_, x); }
  // Over the model-parallel group (tp x pp): the parts of the global gradient norm.
  [[nodiscard]] double mp_sum(double x) const { return sum_over(mp_, x); }
  // Over the kv group (the tensor ranks holding the same replicated key/value head).
  void kv_sum(float* x, std::int64_t n) const {
    with(kv_, [&](auto& g) { g.allreduce_sum(x, n); });
  }
  // Over the embedding group (the first and last stage, where a tied embedding has its copies).
  void embedding_sum(float* x, std::int64_t n) const {
    with(embedding_, [&](auto& g) {
      if (g.member() && g.size() > 1) g.allreduce_sum(x, n);
    });
  }

  // Over this rank's data-parallel group: the gradients, and a figure each replica measured.
  void dp_sum(float* x, std::int64_t n) const {
    with(dp_, [&](auto& g) { g.allreduce_sum(x, n); });
  }
  [[nodiscard]] double dp_sum(double x) const { return sum_over(dp_, x); }

  // ZeRO-1 over this rank's data-parallel group: part r of the flat buffer, [bounds[r],
  // bounds[r + 1]), belongs to dp rank r; reduce_scatter leaves the group's sum of this rank's
  // part, allgather hands every rank every part.
  void dp_reduce_scatter(float* x, const std::vector<std::int64_t>& bounds) const {
    with(dp_, [&](auto& g) { g.reduce_scatter_sum(x, bounds); });
  }
  void dp_allgather(float* x, const std::vector<std::int64_t>& bounds) const {
    with(dp_, [&](auto& g) { g.allgather(x, bounds); });
  }
  // Over the model-parallel and the data-parallel group, i.e. the world (no context parallelism).
  [[nodiscard]] double world_sum(double x) const { return dp_sum(mp_sum(x)); }

  // Every rank of the world waits until all have come here.
  void barrier() const {
#ifdef TRAINPERF_WITH_MPI
    if (world() > 1 && MPI_Barrier(MPI_COMM_WORLD) != MPI_SUCCESS)
      throw std::runtime_error("train_llama: MPI_Barrier over the world failed on rank " +
                               std::to_string(coords_.rank));
#endif
  }

  // A figure from every rank of the world, in rank order (every rank gets them all).
  [[nodiscard]] std::vector<double> gather(double x) const {
    std::vector<double> all(static_cast<std::size_t>(world()), x);
#ifdef TRAINPERF_WITH_MPI
    if (world() > 1 && MPI_Allgather(&x, 1, MPI_DOUBLE, all.data(), 1, MPI_DOUBLE, MPI_COMM_WORLD) != MPI_SUCCESS)
      throw std::runtime_error("train_llama: MPI_Allgather over the world failed on rank " +
                               std::to_string(coords_.rank));
#endif
    return all;
  }

 private:
#ifdef TRAINPERF_WITH_MPI
  using group_ptr = std::unique_ptr<trainperf::comm::mpi_group>;
#else
  struct no_group {};
  using group_ptr = std::unique_ptr<no_group>;  // always empty
#endif
  // f(group) when this process has the group (a world of one has none).
  template <class F>
  static void with(const group_ptr& g, F&& f) {
#ifdef TRAINPERF_WITH_MPI
    if (g) f(*g);
#else
    (void)g, (void)f;
#endif
  }

  [[nodiscard]] static double sum_over(const group_ptr& g, double x) {
    with(g, [&](auto& group) { group.allreduce_sum(&x, 1); });
    return x;
  }
  trainperf::layout layout_;
  trainperf::rank_coords coords_;
  std::int64_t vpp_ = 1, kv_replicas_ = 1;
  group_ptr tp_, kv_, pp_, mp_, embedding_, dp_;
};

// pipeline.hpp's Link over MPI: sends that copy and do not block (wait_stage_sends completes
// them), receives matched by tag.
class mpi_stage_link {
 public:
  explicit mpi_stage_link(const parallel_runtime& rt) : rt_(rt) {}
  template <class Handoff>
  void send(const std::vector<float>& x, std::int64_t to, int tag, Handoff) {
    rt_.send_stage(x.data(), static_cast<std::int64_t>(x.size()), to, tag);
  }
  template <class Handoff>
  void recv(std::vector<float>& x, std::int64_t from, int tag, Handoff) {
    rt_.recv_stage(x.data(), static_cast<std::int64_t>(x.size()), from, tag);
  }
  void finish() { rt_.wait_stage_sends(); }
  [[nodiscard]] double sum(double x) const { return rt_.pp_sum(x); }

 private:
  const parallel_runtime& rt_;
};

}  // namespace train_llama
