// The planner: counts that add up, deterministic ranking, fixed dimensions, framework limits.
#include <doctest/doctest.h>

#include <trainperf/planner.hpp>
#include <trainperf/trainperf.hpp>

using namespace trainperf;

namespace {
plan_request llama7b_on(std::int64_t devices, framework f) {
  plan_request q;
  q.model = get_preset("llama2-7b").spec;
  q.profile = builtin_profile("A100-80GB");
  q.cluster = default_cluster(get_device("A100-80GB"), devices, 8, q.profile);
  q.step.memory.seq = 4096;
  q.step.memory.accounting = f;
  q.step.gbs = 256;
  q.top = 5;
  return q;
}
}  // namespace

TEST_CASE("plan: every enumerated layout is invalid, pruned or evaluated; the best come first") {
  const plan_request q = llama7b_on(16, framework::megatron_core);
  const plan_result r = plan(q);
  CHECK(r.enumerated > 0);
  CHECK(r.enumerated == r.invalid + r.pruned_memory + r.evaluated);
  REQUIRE(r.candidates.size() == 5);
  for (std::size_t i = 1; i < r.candidates.size(); ++i)
    CHECK(r.candidates[i - 1].prediction.step_time <= r.candidates[i].prediction.step_time);
  for (const plan_candidate& c : r.candidates) {
    CHECK(c.config.model_parallel() * c.config.dp == 16);
    CHECK(c.lbs * c.gas * c.config.dp == 256);
    CHECK(c.prediction.memory_max() <= 0.95 * static_cast<double>(80 * GiB));
    // The figures reported are the simulated ones: predict_step gives the same.
    step_options o = q.step;
    o.memory.lbs = c.lbs;
    CHECK(predict_step(q.model, c.config, q.cluster, q.profile, o).step_time ==
          doctest::Approx(c.prediction.step_time));
  }
}

TEST_CASE("plan: the same answer with one thread or several") {
  plan_request q = llama7b_on(16, framework::megatron_core);
  q.threads = 1;
  const plan_result one = plan(q);
  q.threads = 3;
  const plan_result three = plan(q);
  REQUIRE(one.candidates.size() == three.candidates.size());
  for (std::size_t i = 0; i < one.candidates.size(); ++i) {
    CHECK(one.candidates[i].config.tp == three.candidates[i].config.tp);
    CHECK(one.candidates[i].config.pp == three.candidates[i].config.pp);
    CHECK(one.candidates[i].lbs == three.candidates[i].lbs);
    CHECK(one.candidates[i].prediction.step_time == three.candidates[i].prediction.step_time);
  }
  CHECK(one.evaluated == three.evaluated);
}

TEST_CASE("plan: fixed dimensions and what each framework offers") {
  plan_request q = llama7b_on(16, framework::megatron_core);
  q.space.tp = {2};
  q.space.recomputation = {recompute::full};
  for (const plan_candidate& c : plan(q).candidates) {
    CHECK(c.config.tp == 2);
    CHECK(c.config.recomputation == recompute::full);
  }
  // DeepSpeed on its own: no tensor or pipeline parallelism, ZeRO stages instead.
  const plan_result ds = plan(llama7b_on(16, framework::deepspeed));
  REQUIRE_FALSE(ds.candidates.empty());
  for (const plan_candidate& c : ds.candidates) {
    CHECK(c.config.tp == 1);
    CHECK(c.config.pp == 1);
  }
  // Megatron-LM: no ZeRO stages.
  for (const plan_candidate& c : plan(llama7b_on(16, framework::megatron)).candidates) CHECK(c.config.zero_stage == 0);
}

TEST_CASE("plan: layers that do not split evenly get uneven first and last stages") {
  // Llama 3 405B's 126 layers over 16 stages: 8 on each middle stage, 7 on the first and last.
  CHECK(detail::edge_stage_layers(126, 16) == std::pair<std::int64_t, std::int64_t>{7, 7});
  CHECK(detail::edge_stage_layers(32, 4) == std::pair<std::int64_t, std::int64_t>{0, 0});
  CHECK(detail::edge_stage_layers(30, 8) == std::pair<std::int64_t, std::int64_t>{3, 3});  // 6 middle x 4, 6 left
  CHECK(detail::edge_stage_layers(7, 2).first < 0);
}

TEST_CASE("plan: nothing fits, and bad requests") {
  plan_request q = llama7b_on(1, framework::megatron_core);
  q.model = get_preset("llama2-70b").spec;
  const plan_result r = plan(q);
  CHECK(r.candidates.empty());
  CHECK(r.pruned_memory > 0);
  q.memory_margin = 1.5;
  CHECK_THROWS_WITH_AS(plan(q), doctest::Contains("memory margin"), config_error);
}
