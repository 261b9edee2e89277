// The pipeline executor's hand-offs as the CUDA engine issues them over NCCL (pipeline.hpp's
// grouped_p2p), checked on the CPU for every schedule: each stage's executor runs with a model
// that computes nothing and a link that records the groups it would issue; a simulation of
// NCCL's point-to-point semantics then runs all stages' groups together. NCCL matches a pair's
// sends and receives in the order they were posted (it has no tags), and a group returns only
// when all its operations have completed; within a group they progress independently. The
// simulation must complete every group (no deadlock) and every matched send must carry the tag
// and size the receiver expected (so that in-order matching hands over the right micro-batch).
#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <trainperf/error.hpp>
#include <trainperf/schedule.hpp>

#include "../../examples/train_llama/pipeline.hpp"

namespace {

using train_llama::i64;
using train_llama::p2p_op;
using group = std::vector<p2p_op>;

// A stage that computes nothing: one float per hand-off buffer.
struct idle_stage {
  struct activations {
    std::vector<float> in, out, dx;
    std::array<std::vector<float>*, 1> gradient_scratch() { return {&dx}; }
  };
  std::vector<train_llama::llama_params::chunk> chunks;
  activations make_activations(i64, i64, const train_llama::llama_params::chunk&, bool scratch) const {
    return {std::vector<float>(1), std::vector<float>(1), std::vector<float>(scratch ? 1 : 0)};
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

using issue_fn = std::function<void(const group&)>;

// The CUDA engine's link with the groups recorded instead of issued.
struct recording_link {
  std::vector<group>* groups;
  train_llama::grouped_p2p<issue_fn> p2p{[this](const group& g) { groups->push_back(g); }};
  void send(std::vector<float>& x, i64 to, int tag) { p2p.send(x.data(), static_cast<i64>(x.size()), to, tag); }
  void recv(std::vector<float>& x, i64 from, int tag) { p2p.recv(x.data(), static_cast<i64>(x.size()), from, tag); }
  void flush() { p2p.flush(); }
  void finish() { p2p.flush(); }
  double sum(double x) const { return x; }
};

// Every operation issued alone at once, as a naive port of the MPI link would: the counter-example.
struct lone_link {
  std::vector<group>* groups;
  void send(std::vector<float>& x, i64 to, int tag) {
    groups->push_back({{true, to, tag, x.data(), static_cast<i64>(x.size())}});
  }
  void recv(std::vector<float>& x, i64 from, int tag) {
    groups->push_back({{false, from, tag, x.data(), static_cast<i64>(x.size())}});
  }
  void flush() {}
  void finish() {}
  double sum(double x) const { return x; }
};

template <class Link>
std::vector<std::vector<group>> record(trainperf::pipeline_schedule kind, i64 pp, i64 vpp, i64 m, bool train) {
  std::vector<std::vector<group>> stages(static_cast<std::size_t>(pp));
  for (i64 s = 0; s < pp; ++s) {
    idle_stage st = stage_of(s, pp, vpp);
    Link link{&stages[static_cast<std::size_t>(s)]};
    train_llama::pipeline<idle_stage, Link> p(st, link, 1, 1, s, pp, vpp, kind, m);
    if (train)
      (void)p.train([](i64, std::vector<std::int32_t>&, std::vector<std::int32_t>&) {}, 1.0f);
    else
      (void)p.forward_only({0}, {0});
  }
  return stages;
}

// NCCL's semantics over the stages' groups: "" when every group completes and every match agrees.
std::string simulate(const std::vector<std::vector<group>>& stages) {
  const std::size_t R = stages.size();
  std::vector<std::size_t> at(R, 0);
  std::vector<std::vector<bool>> done(R);
  using channel = std::pair<i64, i64>;  // (sender, receiver): one communicator for both directions
  std::map<channel, std::deque<std::pair<std::size_t, std::size_t>>> sends, recvs;  // (stage, op) posted, unmatched
  const auto issue = [&](std::size_t r) {
    if (at[r] >= stages[r].size()) return;
    const group& g = stages[r][at[r]];
    done[r].assign(g.size(), false);
    for (std::size_t i = 0; i < g.size(); ++i) {
      const auto me = static_cast<i64>(r);
      if (g[i].send)
        sends[{me, g[i].peer}].push_back({r, i});
      else
        recvs[{g[i].peer, me}].push_back({r, i});
    }
  };
  for (std::size_t r = 0; r < R; ++r) issue(r);
  for (bool progress = true; progress;) {
    progress = false;
    for (auto& [ch, sq] : sends) {
      auto& rq = recvs[ch];
      while (!sq.empty() && !rq.empty()) {
        const auto [sr, si] = sq.front();
        const auto [rr, ri] = rq.front();
        const p2p_op &s = stages[sr][at[sr]][si], &r = stages[rr][at[rr]][ri];
        if (s.tag != r.tag || s.count != r.count)
          return "stage " + std::to_string(sr) + " sent tag " + std::to_string(s.tag) + " where stage " +
                 std::to_string(rr) + " received tag " + std::to_string(r.tag);
        done[sr][si] = done[rr][ri] = true;
        sq.pop_front(), rq.pop_front();
        progress = true;
      }
    }
    for (std::size_t r = 0; r < R; ++r) {
      if (at[r] >= stages[r].size()) continue;
      bool all = true;
      for (const bool d : done[r]) all = all && d;
      if (!all) continue;
      ++at[r];
      issue(r);
      progress = true;
    }
  }
  for (std::size_t r = 0; r < R; ++r)
    if (at[r] < stages[r].size())
      return "deadlock: stage " + std::to_string(r) + " waits in group " + std::to_string(at[r]) + " of " +
             std::to_string(stages[r].size());
  return "";
}

struct case_ {
  trainperf::pipeline_schedule kind;
  i64 pp, vpp, m;
};

std::vector<case_> all_cases() {
  std::vector<case_> cases;
  for (const i64 pp : {2, 3, 4, 8})
    for (const i64 m : {1, 2, 3, 4, 6, 8, 12, 16, 24}) {
      cases.push_back({trainperf::pipeline_schedule::gpipe, pp, 1, m});
      cases.push_back({trainperf::pipeline_schedule::one_f_one_b, pp, 1, m});
      for (const i64 vpp : {2, 3}) cases.push_back({trainperf::pipeline_schedule::interleaved, pp, vpp, m});
    }
  return cases;
}

}  // namespace

TEST_CASE("grouped hand-offs complete under NCCL's in-order matching for GPipe and 1F1B, with agreeing tags") {
  int checked = 0, interleaved_deadlocks = 0;
  for (const auto& c : all_cases()) {
    try {
      (void)trainperf::make_schedule(c.kind, c.pp, c.m, c.vpp);
    } catch (const trainperf::config_error&) {
      continue;  // a combination the schedule refuses (the trainer refuses it too)
    }
    const bool interleaved = c.kind == trainperf::pipeline_schedule::interleaved;
    for (const bool train : {true, false}) {
      const int kind = static_cast<int>(c.kind);
      CAPTURE(c.pp);
      CAPTURE(c.vpp);
      CAPTURE(c.m);
      CAPTURE(train);
      CAPTURE(kind);
      const std::string outcome = simulate(record<recording_link>(c.kind, c.pp, c.vpp, c.m, train));
      if (interleaved && train) {
        // Interleaved 1F1B needs sends that do not wait for the receiver (MPI's): with grouped
        // NCCL hand-offs a stage's lone send and its neighbour's send can wait on each other
        // (pp 2, vpp 2, 4 micro-batches: stage 0's activation of micro-batch 3 and stage 1's of
        // micro-batch 2), which is why the CUDA engine refuses --schedule interleaved.
        const bool deadlock = outcome.rfind("deadlock", 0) == 0;
        CHECK((outcome.empty() || deadlock));
        interleaved_deadlocks += deadlock;
      } else {
        CHECK(outcome == "");
      }
      ++checked;
    }
  }
  CHECK(checked > 100);
  CHECK(interleaved_deadlocks > 0);
}

TEST_CASE("the simulation catches a deadlock: 1F1B over three stages with every send issued alone") {
  // Stage 2 sends micro-batch 0's gradient while stage 1, its forward of micro-batch 1 done,
  // sends that activation: each send waits for a receive its peer posts only after its own send.
  const auto stages = record<lone_link>(trainperf::pipeline_schedule::one_f_one_b, 3, 1, 6, true);
  CHECK(simulate(stages).rfind("deadlock", 0) == 0);
  CHECK(simulate(record<recording_link>(trainperf::pipeline_schedule::one_f_one_b, 3, 1, 6, true)) == "");
}
