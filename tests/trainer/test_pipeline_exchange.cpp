// The pipeline executor's hand-offs as the CUDA engine sends them over NCCL, checked on the CPU
// for every schedule: each stage's executor (pipeline.hpp) runs with a model that computes
// nothing and a link that records its sends and receives in order; a simulation then runs all
// stages' records together with the CUDA link's semantics: a send never waits for its receiver
// (the link copies the buffer and sends on a stream of its own, as MPI's Isend), a receive waits
// for its message, and a channel (sender stage to receiver stage: one NCCL communicator each,
// activations and gradients alike) matches its sends and receives in the order they were posted,
// NCCL having no tags. Every stage must finish (no deadlock), and every received message must carry the
// tag and size the receiver expected (so that in-order matching hands over the right micro-batch).
#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <trainperf/error.hpp>
#include <trainperf/schedule.hpp>

#include "../../examples/train_llama/pipeline.hpp"

namespace {

using train_llama::handoff;
using train_llama::i64;

// A stage that computes nothing; its activations and gradients are of different sizes, so that a
// gradient received as an activation shows.
struct idle_stage {
  struct activations {
    std::vector<float> in, out, dx;
    std::array<std::vector<float>*, 1> gradient_scratch() { return {&dx}; }
  };
  std::vector<train_llama::llama_params::chunk> chunks;
  activations make_activations(i64, i64, const train_llama::llama_params::chunk&, bool scratch) const {
    return {std::vector<float>(2), std::vector<float>(2), std::vector<float>(scratch ? 3 : 0)};
  }
  float forward(activations&, const train_llama::llama_params::chunk&, const std::int32_t*, const std::int32_t*, bool,
                float) {
    return 0;
  }
  void backward(activations&, const train_llama::llama_params::chunk&, const std::int32_t*) {}
  static std::vector<float>& input(activations& a) { return a.in; }
  static std::vector<float>& output(activations& a) { return a.out; }
  static std::vector<float>& gradient(activations& a) { return a.dx; }
};

// Stage s's chunks under interleaving: chunk c is virtual stage c x pp + s.
idle_stage stage_of(i64 s, i64 pp, i64 vpp) {
  idle_stage st;
  for (i64 c = 0; c < vpp; ++c) st.chunks.push_back({c, 1, s == 0 && c == 0, s == pp - 1 && c == vpp - 1});
  return st;
}

struct op {
  bool send = false;
  i64 peer = 0;
  int tag = 0;
  i64 count = 0;
  handoff what = handoff::activation;
};

struct recording_link {
  std::vector<op>* ops;
  void send(std::vector<float>& x, i64 to, int tag, handoff h) {
    ops->push_back({true, to, tag, static_cast<i64>(x.size()), h});
  }
  void recv(std::vector<float>& x, i64 from, int tag, handoff h) {
    ops->push_back({false, from, tag, static_cast<i64>(x.size()), h});
  }
  void finish() {}
  double sum(double x) const { return x; }
};

std::vector<std::vector<op>> record(trainperf::pipeline_schedule kind, i64 pp, i64 vpp, i64 m, bool train) {
  std::vector<std::vector<op>> stages(static_cast<std::size_t>(pp));
  for (i64 s = 0; s < pp; ++s) {
    idle_stage st = stage_of(s, pp, vpp);
    recording_link link{&stages[static_cast<std::size_t>(s)]};
    train_llama::pipeline<idle_stage, recording_link> p(st, link, 1, 1, s, pp, vpp, kind, m);
    if (train)
      (void)p.train([](i64, std::vector<std::int32_t>&, std::vector<std::int32_t>&) {}, 1.0f);
    else
      (void)p.forward_only({0}, {0});
  }
  return stages;
}

struct semantics {
  bool sends_wait = false;  // a send holds its stage until received (a lone ncclSend on the model's stream)
};

// All stages' records together: "" when every stage finishes and every message matches.
std::string simulate(const std::vector<std::vector<op>>& stages, semantics sem) {
  const std::size_t R = stages.size();
  std::vector<std::size_t> at(R, 0);
  std::vector<std::vector<bool>> received(R);
  for (std::size_t r = 0; r < R; ++r) received[r].assign(stages[r].size(), false);
  std::vector<bool> posted(R, false);                                       // the current op, a send, is in its channel
  using channel = std::pair<i64, i64>;                                      // (sender, receiver)
  std::map<channel, std::deque<std::pair<std::size_t, std::size_t>>> sent;  // (stage, op), not yet received
  for (bool progress = true; progress;) {
    progress = false;
    for (std::size_t r = 0; r < R; ++r) {
      while (at[r] < stages[r].size()) {
        const op& o = stages[r][at[r]];
        const auto me = static_cast<i64>(r);
        if (o.send) {
          if (!posted[r]) sent[{me, o.peer}].push_back({r, at[r]}), posted[r] = true;
          if (sem.sends_wait && !received[r][at[r]]) break;
        } else {
          auto& q = sent[{o.peer, me}];
          if (q.empty()) break;
          const auto [sr, si] = q.front();
          const op& s = stages[sr][si];
          if (s.tag != o.tag || s.count != o.count)
            return "mismatch: stage " + std::to_string(sr) + " sent tag " + std::to_string(s.tag) + " (" +
                   std::to_string(s.count) + " elements) where stage " + std::to_string(r) + " expected tag " +
                   std::to_string(o.tag) + " (" + std::to_string(o.count) + ")";
          received[sr][si] = true;
          q.pop_front();
        }
        ++at[r], posted[r] = false, progress = true;
      }
    }
  }
  for (std::size_t r = 0; r < R; ++r)
    if (at[r] < stages[r].size())
      return "deadlock: stage " + std::to_string(r) + " waits at hand-off " + std::to_string(at[r]) + " of " +
             std::to_string(stages[r].size());
  return "";
}

struct case_ {
  trainperf::pipeline_schedule kind;
  i64 pp, vpp, m;
};

// Every schedule the trainer accepts over 2-8 stages and 1-24 micro-batches.
std::vector<case_> all_cases() {
  std::vector<case_> cases;
  for (const i64 pp : {2, 3, 4, 8})
    for (const i64 m : {1, 2, 3, 4, 6, 8, 12, 16, 24}) {
      const std::vector<case_> candidates = {{trainperf::pipeline_schedule::gpipe, pp, 1, m},
                                             {trainperf::pipeline_schedule::one_f_one_b, pp, 1, m},
                                             {trainperf::pipeline_schedule::interleaved, pp, 2, m},
                                             {trainperf::pipeline_schedule::interleaved, pp, 3, m}};
      for (const auto& c : candidates) try {
          (void)trainperf::make_schedule(c.kind, c.pp, c.m, c.vpp);
          cases.push_back(c);
        } catch (const trainperf::config_error&) {  // refused by the schedule (and by the trainer)
        }
    }
  return cases;
}

}  // namespace

TEST_CASE("every schedule's hand-offs complete over one NCCL channel per neighbour, the tags agreeing in order") {
  int checked = 0;
  for (const auto& c : all_cases())
    for (const bool train : {true, false}) {
      const int kind = static_cast<int>(c.kind);
      CAPTURE(kind);
      CAPTURE(c.pp);
      CAPTURE(c.vpp);
      CAPTURE(c.m);
      CAPTURE(train);
      CHECK(simulate(record(c.kind, c.pp, c.vpp, c.m, train), {}) == "");
      ++checked;
    }
  CHECK(checked > 150);
}

TEST_CASE("sends_per_call counts every send of a step, per destination (what the CUDA link stages)") {
  for (const auto& c : all_cases())
    for (i64 s = 0; s < c.pp; ++s) {
      CAPTURE(c.pp);
      CAPTURE(c.vpp);
      CAPTURE(c.m);
      CAPTURE(s);
      idle_stage st = stage_of(s, c.pp, c.vpp);
      std::vector<op> train_ops, eval_ops;
      recording_link a{&train_ops}, b{&eval_ops};
      train_llama::pipeline<idle_stage, recording_link> p(st, a, 1, 1, s, c.pp, c.vpp, c.kind, c.m);
      train_llama::pipeline<idle_stage, recording_link> q(st, b, 1, 1, s, c.pp, c.vpp, c.kind, c.m);
      (void)p.train([](i64, std::vector<std::int32_t>&, std::vector<std::int32_t>&) {}, 1.0f);
      (void)q.forward_only({0}, {0});
      std::map<i64, i64> want, eval;
      for (const op& o : train_ops) want[o.peer] += o.send;
      for (const op& o : eval_ops) eval[o.peer] += o.send;
      for (const auto& [to, n] : eval) want[to] = std::max(want[to], n);
      std::erase_if(want, [](const auto& kv) { return kv.second == 0; });
      CHECK(p.sends_per_call() == want);
    }
}

TEST_CASE("the simulation catches a deadlock and a message taken for another") {
  // 1F1B over three stages with each send holding its stage until received (a lone ncclSend on
  // the model's stream, what the CUDA link avoids): stage 2 sends micro-batch 0's gradient while
  // stage 1, its forward of micro-batch 1 done, sends that activation; each waits for a receive
  // the other posts later.
  CHECK(simulate(record(trainperf::pipeline_schedule::one_f_one_b, 3, 1, 6, true), {.sends_wait = true})
            .rfind("deadlock", 0) == 0);
  // Stage 1 receiving two activations in the other order: in-order matching hands it the wrong
  // micro-batch, which the tags show; a gradient in an activation's place, which the sizes show.
  auto stages = record(trainperf::pipeline_schedule::gpipe, 2, 1, 4, true);
  std::vector<std::size_t> receives;
  for (std::size_t i = 0; i < stages[1].size(); ++i)
    if (!stages[1][i].send && stages[1][i].what == handoff::activation) receives.push_back(i);
  REQUIRE(receives.size() == 4);
  auto swapped = stages;
  std::swap(swapped[1][receives[0]], swapped[1][receives[1]]);
  CHECK(simulate(swapped, {}).rfind("mismatch", 0) == 0);
  stages[0].back().count = 2;  // stage 0's last gradient received with an activation's size
  REQUIRE(!stages[0].back().send);
  CHECK(simulate(stages, {}).rfind("mismatch", 0) == 0);
}
