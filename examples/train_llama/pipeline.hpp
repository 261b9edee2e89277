// train_llama's pipeline executor: one optimizer step of this rank's pipeline stage, running the
// action list trainperf::make_schedule gives the stage (GPipe, 1F1B or interleaved, as Megatron-LM
// orders them) literally: the forward or backward of micro-batch i on model chunk c, receiving
// its input from the previous virtual stage and sending its output to the next one. Activations
// live in a pool per chunk, as many as the schedule keeps in flight on it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <trainperf/schedule.hpp>

#include "engine.hpp"
#include "model.hpp"
#include "parallel.hpp"

namespace train_llama {

class pipeline {
 public:
  pipeline(llama& m, i64 B, i64 T, const parallel_runtime& rt, trainperf::pipeline_schedule kind, i64 micro_batches)
      : m_(m),
        rt_(rt),
        tokens_(B * T),
        stage_(rt.coords().pp),
        plan_(trainperf::make_schedule(kind, rt.pp(), micro_batches, rt.vpp())) {
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
        if (!c.output) recv(s.act.dx, a.micro_batch, a.chunk, gradient);
        m_.backward(s.act, c, s.tokens.data());
        if (!c.embedding) send(s.act.dx, a.micro_batch, a.chunk, gradient);  // send copies dx
        lend_scratch(s, a.chunk);                                            // back to its owner
        s.owner = {-1, -1};
      }
    }
    rt_.wait_stage_sends();
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
    rt_.wait_stage_sends();
    return static_cast<float>(rt_.pp_sum(static_cast<double>(loss)));
  }

 private:
  struct slot {
    slot(llama::activations a, i64 tokens) : act(std::move(a)), tokens(tokens), targets(tokens) {}
    llama::activations act;
    std::vector<std::int32_t> tokens, targets;
    std::pair<i64, i64> owner{-1, -1};  // (micro-batch, chunk) whose activations it holds
  };
  enum direction { activation = 0, gradient = 1 };

  // Swaps the gradient scratch between slot s and its chunk's first slot (a no-op for that one).
  void lend_scratch(slot& s, i64 chunk) {
    slot& owner = pools_[static_cast<std::size_t>(chunk)].front();
    if (&owner == &s) return;
    const auto mine = s.act.gradient_scratch(), theirs = owner.act.gradient_scratch();
    for (std::size_t i = 0; i < mine.size(); ++i) mine[i]->swap(*theirs[i]);
  }

  // The receiving side of a hand-off runs the schedule's pass of the same micro-batch and chunk
  // (or the next/previous chunk across the last/first stage): a tag names the hand-off, so that
  // messages cannot be taken for one another. MPI guarantees tags up to 32767.
  [[nodiscard]] int tag(i64 micro, i64 chunk, direction d) const {
    return static_cast<int>(((micro * rt_.vpp() + chunk) % 16000) * 2 + d);
  }
  // The neighbouring virtual stage: the next one for activations, the previous one for gradients
  // (Megatron-LM's interleaving: stage pp - 1's chunk c feeds stage 0's chunk c + 1).
  [[nodiscard]] std::pair<i64, i64> next(i64 chunk) const {
    return stage_ + 1 < rt_.pp() ? std::pair{stage_ + 1, chunk} : std::pair{i64{0}, chunk + 1};
  }
  [[nodiscard]] std::pair<i64, i64> previous(i64 chunk) const {
    return stage_ > 0 ? std::pair{stage_ - 1, chunk} : std::pair{rt_.pp() - 1, chunk - 1};
  }
  void send(const std::vector<float>& x, i64 micro, i64 chunk, direction d) {
    const auto [to, their_chunk] = d == activation ? next(chunk) : previous(chunk);
    rt_.send_stage(x.data(), static_cast<i64>(x.size()), to, tag(micro, their_chunk, d));
  }
  void recv(std::vector<float>& x, i64 micro, i64 chunk, direction d) {
    const i64 from = (d == activation ? previous(chunk) : next(chunk)).first;  // the tag names this chunk
    rt_.recv_stage(x.data(), static_cast<i64>(x.size()), from, tag(micro, chunk, d));
  }

  float forward(slot& s, i64 micro, i64 chunk, bool backward, float loss_scale) {
    const auto& c = m_.chunks[static_cast<std::size_t>(chunk)];
    if (!c.embedding) recv(s.act.x.front(), micro, chunk, activation);
    const float loss = m_.forward(s.act, c, s.tokens.data(), s.targets.data(), backward, loss_scale);
    if (!c.output) send(s.act.x.back(), micro, chunk, activation);
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

  llama& m_;
  const parallel_runtime& rt_;
  i64 tokens_, stage_;
  trainperf::schedule plan_;
  std::vector<std::vector<slot>> pools_;
};

}  // namespace train_llama
