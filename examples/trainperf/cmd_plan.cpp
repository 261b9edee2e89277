// trainperf plan: every layout the framework supports, checked, pruned by memory, predicted, ranked
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <trainperf/io/file.hpp>
#include <trainperf/planner.hpp>
#include <trainperf/trainperf.hpp>

#include "cli.hpp"
#include "cluster_flags.hpp"
#include "memory_args.hpp"
#include "step_report.hpp"

namespace trainperf::cli {
namespace {

std::vector<flag> plan_flags() {
  std::vector<flag> f;
  for (const flag& x : memory_flags()) {
    if (decided_by_the_cluster(x.name)) continue;
    // The planner splits the layers itself (uneven first/last stages where they do not divide,
    // the embedding and loss counted as layers under megatron-core): no split flags.
    if (x.name == "first-stage-layers" || x.name == "last-stage-layers" || x.name == "stage-layers" ||
        x.name == "account-for-embedding-in-pipeline-split" || x.name == "account-for-loss-in-pipeline-split")
      continue;
    // A layout flag given fixes that dimension of the search.
    if (x.name == "tp" || x.name == "pp" || x.name == "cp" || x.name == "ep" || x.name == "vpp" || x.name == "lbs" ||
        x.name == "zero" || x.name == "recompute" || x.name == "sp" || x.name == "distributed-optimizer")
      f.push_back({x.name, x.value, "fix this dimension of the search (default: every value the framework supports)"});
    else
      f.push_back(x);
  }
  for (const flag& x : cluster_flags()) f.push_back(x);
  f.push_back({"dp", "N", "fix the data-parallel degree (default: what the devices leave for each tp x cp x pp)"});
  f.push_back({"no-sp", "", "fix sequence parallelism off"});
  f.push_back({"no-distributed-optimizer", "", "fix the distributed optimizer off"});
  f.push_back({"top", "K", "how many candidates to show (default 5)"});
  f.push_back({"memory-margin", "F",
               "share of the capacity a layout must leave free beside what it needs, max reserved (default 0.05)"});
  f.push_back({"threads", "N", "search threads (default: the machine's)"});
  f.push_back({"explain", "K", "the K-th candidate's breakdown beside the best one's"});
  f.push_back({"svg", "FILE", "write the candidates' step times, stacked by the breakdown, with memory beside"});
  return with_common(f);
}

json candidate_json(const plan_candidate& c, const cluster_setup& cs) {
  const parallel_config& p = c.config;
  json j = prediction_json(c.prediction, cs);
  json settings{{"tp", p.tp},
                {"pp", p.pp},
                {"dp", p.dp},
                {"cp", p.cp},
                {"ep", p.ep},
                {"vpp", p.vpp},
                {"lbs", c.lbs},
                {"gas", c.gas},
                {"zero", p.zero_stage},
                {"recompute", std::string(to_string(p.recomputation))},
                {"sp", p.sequence_parallel},
                {"distributed_optimizer", p.distributed_optimizer},
                {"first_stage_layers", p.first_stage_layers},
                {"last_stage_layers", p.last_stage_layers},
                {"embedding_as_layer", p.embedding_as_layer},
                {"loss_as_layer", p.loss_as_layer}};
  settings.update(j);
  return settings;
}

int run_plan(const args& a, output& out) {
  detail::exclusive(a, "sp", "no-sp");
  detail::exclusive(a, "distributed-optimizer", "no-distributed-optimizer");
  const memory_setup m = memory_from_args(a, /*one_layout=*/false);
  const cluster_setup cs = cluster_from_args(a);
  plan_request q;
  q.model = m.model.spec;
  q.cluster = cs.cluster;
  q.profile = cs.profile;
  q.step.memory = m.options;
  step_from_args(a, q.step);
  const parallel_config& c = m.parallel;  // what the flags fixed
  if (a.get("tp")) q.space.tp = {c.tp};
  if (a.get("pp")) q.space.pp = {c.pp};
  if (a.get("cp")) q.space.cp = {c.cp};
  if (a.get("ep")) q.space.ep = {c.ep};
  if (a.get("vpp")) q.space.vpp = {c.vpp};
  if (a.get("lbs")) q.space.lbs = {m.options.lbs};
  if (a.get("zero")) q.space.zero_stage = {c.zero_stage};
  if (a.get("recompute")) q.space.recomputation = {c.recomputation};
  if (a.has("sp") || a.has("no-sp")) q.space.sequence_parallel = {a.has("sp") ? 1 : 0};
  if (a.has("distributed-optimizer") || a.has("no-distributed-optimizer"))
    q.space.distributed_optimizer = {a.has("distributed-optimizer") ? 1 : 0};
  if (const auto dp = a.get_int("dp")) q.space.dp = {*dp};
  q.space.etp = c.etp;
  q.space.shard_dp = c.shard_dp;
  const auto top = a.get_int("top").value_or(5);
  if (top <= 0 || top > 1000) throw config_error("top", fmt::format("--top {} must be in 1..1000", top));
  q.top = static_cast<std::size_t>(top);
  if (a.get("memory-margin")) q.memory_margin = *a.get_double("memory-margin", /*zero_allowed=*/true);
  if (const auto t = a.get_int("threads")) {
    if (*t <= 0 || *t > 1024) throw config_error("threads", fmt::format("--threads {} must be in 1..1024", *t));
    q.threads = static_cast<unsigned>(*t);
  }
  const auto explain = a.get_int("explain");
  const plan_result r = plan(q);
  // Nothing enumerated: the fixed dimensions admit no layout of these devices at all.
  if (r.enumerated == 0) {
    std::string fixed;
    for (const char* d : {"tp", "pp", "cp", "dp", "ep", "vpp", "zero", "sp", "no-sp", "distributed-optimizer",
                          "no-distributed-optimizer"})
      if (a.has(d))
        fixed +=
            fmt::format("{}--{}{}", fixed.empty() ? "" : " ", d, a.get(d) && !a.get(d)->empty() ? " " + *a.get(d) : "");
    throw config_error("devices", fmt::format("no layout of {} devices has the fixed dimensions {}: tp x cp x pp x dp "
                                              "must equal the devices, sequence parallelism needs tp > 1, ZeRO and "
                                              "the distributed optimizer need dp > 1; change or drop one of them",
                                              cs.cluster.devices, fixed.empty() ? "(none)" : fixed));
  }
  if (explain && !r.candidates.empty() && (*explain < 1 || static_cast<std::size_t>(*explain) > r.candidates.size()))
    throw config_error("explain", fmt::format("--explain {}: there are {} candidates; give 1..{} (or raise --top)",
                                              *explain, r.candidates.size(), r.candidates.size()));
  if (auto path = a.get("svg"))
    io::write_file(*path,
                   render_plan_svg(r, static_cast<double>(cs.cluster.device.memory_bytes),
                                   fmt::format("{}: predicted step time per layout", m.model.name)),
                   "svg");
  if (a.has("json")) {
    json cands = json::array();
    for (const auto& x : r.candidates) cands.push_back(candidate_json(x, cs));
    json j = {{"model", m.model.name},
              {"gbs", q.step.gbs},
              {"seq", q.step.memory.seq},
              {"candidates", cands},
              {"enumerated", r.enumerated},
              {"invalid", r.invalid},
              {"pruned_memory", r.pruned_memory},
              {"evaluated", r.evaluated},
              {"search_ms", r.search_ms},
              {"memory_margin", q.memory_margin}};
    // The K-th candidate's breakdown less the best one's, part by part, in seconds.
    if (explain) {
      const step_prediction &best = r.candidates.front().prediction,
                            &x = r.candidates[static_cast<std::size_t>(*explain - 1)].prediction;
      json difference = breakdown_json(x.breakdown);
      const json best_parts = breakdown_json(best.breakdown);
      for (const auto& [part, seconds] : best_parts.items())
        difference[part] = difference[part].get<double>() - seconds.get<double>();
      difference["step_time_s"] = x.step_time - best.step_time;
      j["explain"] = {{"candidate", *explain}, {"minus_best_s", difference}};
    }
    out.print_json(j);
    return 0;
  }
  out.print("{} on {}\n", m.model.name, describe_cluster(cs));
  out.print(
      "global batch {} x {} tokens; {} layouts enumerated, {} invalid, {} needing over {:.0f}% of the capacity, {} "
      "predicted in {:.1f} ms\n",
      q.step.gbs, q.step.memory.seq, r.enumerated, r.invalid, r.pruned_memory, 100 * (1 - q.memory_margin), r.evaluated,
      r.search_ms);
  if (r.candidates.empty()) {
    out.print("no layout fits: try more devices, a smaller micro batch or --recompute full\n");
    return 1;
  }
  table t({"#", "layout", "mbs", "gas", "step s", "tok/dev/s", "MFU", "mem GiB"}, {false, true});
  for (std::size_t k = 0; k < r.candidates.size(); ++k) {
    const plan_candidate& x = r.candidates[k];
    t.row({fmt::format("{}", k + 1), describe_layout(x.config, cs.cluster.devices), fmt::format("{}", x.lbs),
           fmt::format("{}", x.gas), fmt::format("{:.3f}", x.prediction.step_time),
           fmt::format("{:.0f}", x.prediction.tokens_per_device_per_s), fmt::format("{:.1f}%", 100 * x.prediction.mfu),
           fmt::format("{:.1f}", x.prediction.memory_max() / static_cast<double>(GiB))});
  }
  out.print("{}{}\n", t.render(), mfu_convention_note);
  if (explain) {
    const plan_candidate& best = r.candidates.front();
    const plan_candidate& x = r.candidates[static_cast<std::size_t>(*explain - 1)];
    table e({"part (s)", "#1", fmt::format("#{}", *explain), "difference"}, {true});
    const auto row = [&](std::string_view name, double b, double v) {
      e.row({std::string(name), fmt::format("{:.4f}", b), fmt::format("{:.4f}", v), fmt::format("{:+.4f}", v - b)});
    };
    const step_breakdown &b = best.prediction.breakdown, &v = x.prediction.breakdown;
    for (const breakdown_part& part : breakdown_parts) row(part.label, b.*part.seconds, v.*part.seconds);
    row("step", best.prediction.step_time, x.prediction.step_time);
    out.print("\n#{} against #1:\n{}", *explain, e.render());
  }
  return 0;
}

}  // namespace

command plan_command() {
  return {"plan", "search every layout for the fastest that fits: ranked step time, token/p/s, MFU and memory",
          plan_flags, run_plan};
}

}  // namespace trainperf::cli
