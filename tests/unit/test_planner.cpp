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

TEST_CASE("plan: a layout is kept on what it needs, not on the device's reading") {
  // The runtime overhead (the seeds' nvidia-smi share beyond max reserved) is no part of the fit:
  // with 1 TiB of it every layout still needs what it did, so the same layouts are kept.
  plan_request q = llama7b_on(16, framework::megatron_core);
  const plan_result plain = plan(q);
  q.step.memory.runtime_overhead_bytes = static_cast<double>(1024 * GiB);
  const plan_result heavy = plan(q);
  CHECK(heavy.pruned_memory == plain.pruned_memory);
  REQUIRE(heavy.candidates.size() == plain.candidates.size());
  // What a candidate reports is its need: the estimate's reserved counter, the runtime left out.
  const plan_candidate& best = heavy.candidates.front();
  memory_options o = q.step.memory;
  o.lbs = best.lbs;
  o.micro_batches = best.gas;
  const memory_estimate e = estimate_memory(q.model, best.config, 16, o);
  CHECK(best.prediction.memory_max() == doctest::Approx(e.max_need()));
  CHECK(e.max_total() - e.max_need() == doctest::Approx(1024.0 * GiB));
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

TEST_CASE("plan and predict refuse a fixed dimension the framework cannot run, naming it") {
  const auto refused = [](plan_request q, std::string_view field) {
    INFO(field);
    try {
      (void)plan(q);
      FAIL("accepted");
    } catch (const config_error& e) {
      CHECK(e.field() == field);
    }
  };
  plan_request megatron = llama7b_on(16, framework::megatron);
  megatron.space.zero_stage = {2};  // Megatron-LM: no ZeRO stage (issue 19, section 3)
  refused(megatron, "zero_stage");
  plan_request deepspeed = llama7b_on(16, framework::deepspeed);
  deepspeed.space.tp = {2};  // DeepSpeed alone: no tensor or pipeline parallelism
  refused(deepspeed, "tp");
  deepspeed.space.tp = {};
  deepspeed.space.pp = {2};
  refused(deepspeed, "pp");
  plan_request fsdp = llama7b_on(16, framework::fsdp);
  fsdp.space.distributed_optimizer = {1};  // Megatron-LM's own
  refused(fsdp, "distributed_optimizer");
  // One layout through predict_step: the same rule.
  const plan_request q = llama7b_on(16, framework::megatron_core);
  step_options o = q.step;
  CHECK_THROWS_AS(predict_step(q.model, {.tp = 2, .zero_stage = 3}, q.cluster, q.profile, o), config_error);
  o.memory.accounting = framework::generic;  // generic runs any layout
  CHECK_NOTHROW(predict_step(q.model, {.tp = 2, .zero_stage = 3}, q.cluster, q.profile, o));
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

TEST_CASE("plan's SVG: each candidate's bar stacked by its breakdown, memory beside, by hand") {
  // Two candidates: #1 a 1 s step (0.6 compute, 0.4 bubble) in 40 GiB; #2 a 2 s step (1.0 compute,
  // 0.5 TP, 0.5 DP) over the 80 GiB capacity. The longest step fills the 520-wide bar area from
  // x 240: #1's compute 0.6 / 2 x 520 = 156 wide, its bubble 104 from x 396; #2's parts 260, 130
  // and 130. Memory: a 160-wide frame from x 840 (80 past the bars' 760, room for the step time), filled 40 / 80 (80)
  // and, over capacity, all 160.
  plan_result r;
  plan_candidate a, b;
  a.prediction.step_time = 1.0;
  a.prediction.breakdown.compute = 0.6;
  a.prediction.breakdown.bubble = 0.4;
  a.prediction.stage_memory = {40.0 * GiB};
  b.prediction.step_time = 2.0;
  b.prediction.breakdown.compute = 1.0;
  b.prediction.breakdown.tp_comm = 0.5;
  b.prediction.breakdown.dp_comm = 0.5;
  b.prediction.stage_memory = {90.0 * GiB};
  b.config.tp = 2;
  b.config.sequence_parallel = b.config.distributed_optimizer = true;
  r.candidates = {a, b};
  const std::string svg = render_plan_svg(r, 80.0 * GiB, "a <b>");
  CHECK(svg.find("a &lt;b&gt;") != std::string::npos);
  const auto has = [&](const std::string& element) {
    INFO(element);
    CHECK(svg.find(element) != std::string::npos);
  };
  has(R"(<rect x="240" y="70" width="156" height="18" fill="#4e79a7"/>)");  // #1 compute
  has(R"(<rect x="396" y="70" width="104" height="18" fill="#bab0ac"/>)");  // #1 bubble
  has(R"(<rect x="240" y="96" width="260" height="18" fill="#4e79a7"/>)");  // #2 compute
  has(R"(<rect x="500" y="96" width="130" height="18" fill="#f28e2b"/>)");  // #2 TP
  has(R"(<rect x="630" y="96" width="130" height="18" fill="#59a14f"/>)");  // #2 DP
  has(R"(<rect x="840" y="70" width="80" height="18" fill="#9c755f"/>)");   // #1 memory
  has(R"(<rect x="840" y="96" width="160" height="18" fill="#9c755f"/>)");  // #2 memory, clamped
  has("#2 tp2 cp1 pp1 dp0 mbs0 none sp dist-opt");                          // the settings that tell layouts apart
  // No bar for a part that is zero: #1 draws 2 parts, #2 three, plus 8 legend swatches and 4 memory rects.
  std::size_t rects = 0;
  for (std::size_t at = svg.find("<rect "); at != std::string::npos; at = svg.find("<rect ", at + 1)) ++rects;
  CHECK(rects == 2 + 3 + 8 + 4);
}
