// train_llama's pipeline executor: one optimizer step of this rank's pipeline stage, running the
// action list trainperf::make_schedule gives the stage (GPipe, 1F1B or interleaved, as Megatron-LM
// orders them) literally: the forward or backward of micro-batch i on model chunk c, receiving
// its input from the previous virtual stage and sending its output to the next one. Activations
// live in a pool per chunk, as many as the schedule keeps in flight on it. The same executor runs
// the CPU model over MPI (model.hpp, parallel.hpp) and the CUDA model over NCCL (model_cuda.cuh).
//
// Stage, the model part this rank runs:
//   Stage::activations, with gradient_scratch(): pointers to the buffers a chunk's slots share
//   stage.chunks: params.hpp's chunk list
//   stage.make_activations(B, T, chunk, bool gradient_scratch)
//   stage.forward(act, chunk, tokens, targets, bool backward, float loss_scale) -> mean loss (0
//     unless the chunk ends with the output layer); stage.backward(act, chunk, tokens)
//   Stage::input(act), Stage::output(act), Stage::gradient(act): the hand-off buffers (the chunk's
//     input, its output, and the gradient received for the output / sent for the input)
// Link, the hand-offs over this rank's pipeline group, with MPI's semantics: a send never waits for
// its receiver (it copies the buffer), a receive waits for its message:
//   link.send(buffer, to_stage, tag, handoff), link.recv(buffer, from_stage, tag, handoff)
//   link.finish() after the last action (every send complete), link.sum(double) over the group
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <trainperf/schedule.hpp>

#include "engine.hpp"

namespace train_llama {

// What a hand-off carries: a chunk's output activations (to the next virtual stage) or the
// gradient of its input (to the previous one). NCCL has no tags: the CUDA link sends both over one
// communicator per ordered pair of stages, where the order of sends and receives must agree (the
// trainer's tests check it does for every schedule).
enum class handoff { activation = 0, gradient = 1 };

template <class Stage, class Link>
class pipeline {
 public:
  // stage: this rank's stage number in a pipeline of pp stages with vpp chunks each.
  pipeline(Stage& m, Link& link, i64 B, i64 T, i64 stage, i64 pp, i64 vpp, trainperf::pipeline_schedule kind,
           i64 micro_batches)
      : m_(m),
        link_(link),
        tokens_(B * T),
        stage_(stage),
        pp_(pp),
        vpp_(vpp),
        plan_(trainperf::make_schedule(kind, pp, micro_batches, vpp)) {
    // Each chunk's pool: the most micro-batches its forward has started and its backward not ended.
    const auto& actions = plan_.stages[static_cast<std::size_t>(stage_)];
    std::vector<i64> live(m.chunks.size(), 0), peak(m.chunks.size(), 1);
    for (const auto& a : actions) {
      auto& n = live[static_cast<std::size_t>(a.chunk)];
      n += a.kind == trainperf::pass::forward ? 1 : -1;
      peak[static_cast<std::size_t>(a.chunk)] = std::max(peak[static_cast<std::size_t>(a.chunk)], n);
    }
    // A chunk's slots share the first one's gradient scratch (lent for each backward pass).
    for (std::size_t c = 0; c < m.chunks.size(); ++c) {
      pools_.emplace_back();
      for (i64 i = 0; i < peak[c]; ++i)
        pools_.back().push_back(slot(m.make_activations(B, T, m.chunks[c], /*gradient_scratch=*/i == 0), B * T));
    }
  }

  [[nodiscard]] i64 tokens_per_micro_batch() const { return tokens_; }

  // How many hand-offs this stage sends to each stage in one call of train or forward_only,
  // whichever sends more (a link that stages its sends can hold them all from the start).
  [[nodiscard]] std::map<i64, i64> sends_per_call() const {
    std::map<i64, i64> train, eval;
    for (const auto& a : plan_.stages[static_cast<std::size_t>(stage_)]) {
      const auto& c = m_.chunks[static_cast<std::size_t>(a.chunk)];
      if (a.kind == trainperf::pass::forward && !c.output) ++train[next(a.chunk).first];
      if (a.kind == trainperf::pass::backward && !c.embedding) ++train[previous(a.chunk).first];
    }
    for (std::size_t c = 0; c < m_.chunks.size(); ++c)
      if (!m_.chunks[c].output) ++eval[next(static_cast<i64>(c)).first];
    for (const auto& [to, n] : eval) train[to] = std::max(train[to], n);
    return train;
  }

  // Forward and backward of every micro-batch of the step; gradients of loss_scale x each
  // micro-batch's mean loss accumulate into the model's. Returns the sum of the micro-batches'
  // mean losses on the last stage (0 elsewhere).
  float train(const batch_source& batches, float loss_scale) {
    float loss = 0;
    for (const auto& a : plan_.stages[static_cast<std::size_t>(stage_)]) {
      const auto& c = m_.chunks[static_cast<std::size_t>(a.chunk)];
      if (a.kind == trainperf::pass::forward) {
        slot& s = take(a.micro_batch, a.chunk);
        if (c.embedding || c.output) batches(a.micro_batch, s.tokens, s.targets);
        loss += forward(s, a.micro_batch, a.chunk, true, loss_scale);
      } else {
        slot& s = find(a.micro_batch, a.chunk);
        lend_scratch(s, a.chunk);
        if (!c.output) recv(Stage::gradient(s.act), a.micro_batch, a.chunk, gradient);
        m_.backward(s.act, c, s.tokens.data());
        if (!c.embedding) send(Stage::gradient(s.act), a.micro_batch, a.chunk, gradient);
        lend_scratch(s, a.chunk);  // back to its owner
        s.owner = {-1, -1};
      }
    }
    link_.finish();
    return loss;
  }

  // The forward of one micro-batch through every chunk (evaluation): the mean loss, on every
  // stage (the last stage's, summed over the pipeline group).
  float forward_only(const std::vector<std::int32_t>& tokens, const std::vector<std::int32_t>& targets) {
    float loss = 0;
    for (std::size_t c = 0; c < m_.chunks.size(); ++c) {
      slot& s = pools_[c].front();
      s.tokens = tokens, s.targets = targets;
      loss += forward(s, 0, static_cast<i64>(c), false, 1.0f);
    }
    link_.finish();
    return static_cast<float>(link_.sum(static_cast<double>(loss)));
  }

 private:
  using activations = typename Stage::activations;
  struct slot {
    slot(activations a, i64 tokens) : act(std::move(a)), tokens(tokens), targets(tokens) {}
    activations act;
    std::vector<std::int32_t> tokens, targets;
    std::pair<i64, i64> owner{-1, -1};  // (micro-batch, chunk) whose activations it holds
  };
  using direction = handoff;
  static constexpr handoff activation = handoff::activation, gradient = handoff::gradient;

  // Swaps the gradient scratch between slot s and its chunk's first slot (a no-op for that one).
  void lend_scratch(slot& s, i64 chunk) {
    slot& owner = pools_[static_cast<std::size_t>(chunk)].front();
    if (&owner == &s) return;
    const auto mine = s.act.gradient_scratch(), theirs = owner.act.gradient_scratch();
    for (std::size_t i = 0; i < mine.size(); ++i) std::swap(*mine[i], *theirs[i]);
  }

  // The receiving side of a hand-off runs the schedule's pass of the same micro-batch and chunk
  // (or the next/previous chunk across the last/first stage): a tag names the hand-off, so that
  // messages cannot be taken for one another (MPI matches tags; NCCL matches in order, which the
  // trainer's tests check the tags would agree with). MPI guarantees tags up to 32767.
  [[nodiscard]] int tag(i64 micro, i64 chunk, direction d) const {
    return static_cast<int>(((micro * vpp_ + chunk) % 16000) * 2 + static_cast<int>(d));
  }
  // The neighbouring virtual stage: the next one for activations, the previous one for gradients
  // (Megatron-LM's interleaving: stage pp - 1's chunk c feeds stage 0's chunk c + 1).
  [[nodiscard]] std::pair<i64, i64> next(i64 chunk) const {
    return stage_ + 1 < pp_ ? std::pair{stage_ + 1, chunk} : std::pair{i64{0}, chunk + 1};
  }
  [[nodiscard]] std::pair<i64, i64> previous(i64 chunk) const {
    return stage_ > 0 ? std::pair{stage_ - 1, chunk} : std::pair{pp_ - 1, chunk - 1};
  }
  template <class Buffer>
  void send(Buffer& x, i64 micro, i64 chunk, direction d) {
    const auto [to, their_chunk] = d == activation ? next(chunk) : previous(chunk);
    link_.send(x, to, tag(micro, their_chunk, d), d);
  }
  template <class Buffer>
  void recv(Buffer& x, i64 micro, i64 chunk, direction d) {
    const i64 from = (d == activation ? previous(chunk) : next(chunk)).first;  // the tag names this chunk
    link_.recv(x, from, tag(micro, chunk, d), d);
  }

  float forward(slot& s, i64 micro, i64 chunk, bool backward, float loss_scale) {
    const auto& c = m_.chunks[static_cast<std::size_t>(chunk)];
    if (!c.embedding) recv(Stage::input(s.act), micro, chunk, activation);
    const float loss = m_.forward(s.act, c, s.tokens.data(), s.targets.data(), backward, loss_scale);
    if (!c.output) send(Stage::output(s.act), micro, chunk, activation);
    return loss;
  }

  slot& take(i64 micro, i64 chunk) {
    for (slot& s : pools_[static_cast<std::size_t>(chunk)])
      if (s.owner.first < 0) {
        s.owner = {micro, chunk};
        return s;
      }
    throw std::logic_error("train_llama: pipeline chunk " + std::to_string(chunk) +
                           " has more micro-batches in flight than its schedule said");
  }
  slot& find(i64 micro, i64 chunk) {
    for (slot& s : pools_[static_cast<std::size_t>(chunk)])
      if (s.owner == std::pair{micro, chunk}) return s;
    throw std::logic_error("train_llama: the backward of micro-batch " + std::to_string(micro) + " on chunk " +
                           std::to_string(chunk) + " comes before its forward");
  }

  Stage& m_;
  Link& link_;
  i64 tokens_, stage_, pp_, vpp_;
  trainperf::schedule plan_;
  std::vector<std::vector<slot>> pools_;
};

}  // namespace train_llama
