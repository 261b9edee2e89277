// trainperf check-config: validate model, batch and parallel settings together: valid, or every broken rule (exit 1)
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <trainperf/trainperf.hpp>

#include "cli.hpp"
#include "model_flags.hpp"

namespace trainperf::cli {
namespace {
namespace tp = trainperf;

std::vector<flag> check_config_flags() {
  auto f = tp::cli::model_flags();
  for (auto& x : f)
    if (x.name == "seq") x.help = "training sequence length";
  for (auto& x : parallel_size_flags()) f.push_back(x);
  f.push_back({"dp", "N", "data parallel (default: world / (tp x cp x pp))"});
  f.push_back({"vpp", "N", "virtual pipeline stages"});
  for (auto& x : uneven_stage_flags()) f.push_back(x);
  f.push_back({"sp", "", "sequence parallel"});
  f.push_back({"zero", "0..3", "ZeRO stage"});
  f.push_back({"distributed-optimizer", "", "Megatron-LM's distributed optimizer"});
  f.push_back({"recompute", choices_of(tp::recompute_names), "activation recomputation"});
  f.push_back({"gbs", "N", "global batch (sequences)"});
  f.push_back({"lbs", "N", "micro batch (sequences)"});
  f.push_back({"gas", "N", "gradient-accumulation steps"});
  return with_common(f);
}

int run_check_config(const args& a, output& out) {
  std::vector<tp::violation> found;
  const tp::parallel_config c = parallel_from_args(a);
  const std::int64_t world = require_world(a);
  std::optional<tp::cli::model_choice> model;
  try {
    model = tp::cli::model_from_args(a, /*seq_sets_max_seq=*/false);
  } catch (const tp::config_error& e) {
    // A --model that names nothing readable is bad input (exit 2); a model that reads but breaks
    // a rule is a finding like any other (exit 1).
    if (e.field() == "model") throw;
    found.push_back({e.field(), e.what()});
  }
  tp::parallel_context ctx{.world = world, .seq = a.get_int("seq").value_or(0)};
  if (model) ctx.model = model->spec;
  const auto gbs = a.get_int("gbs"), lbs = a.get_int("lbs"), gas = a.get_int("gas");
  if (lbs) ctx.lbs = *lbs;
  if (gbs) ctx.gbs = *gbs;
  std::vector<tp::violation> rules = tp::check_parallel(c, ctx);
  // Degrees over 2^20 are among the rules already; below it tp x cp x pp cannot overflow.
  const bool degrees_ok = std::max({c.tp, c.cp, c.pp}) <= tp::max_parallel_degree;
  if (gas && lbs && degrees_ok) {  // with a known dp, the global batch follows (or is checked)
    const std::int64_t mp = c.tp * c.cp * c.pp;
    const std::int64_t dp = c.dp != 0 ? c.dp : (world % mp == 0 ? world / mp : 0);
    if (dp > 0) {
      try {
        const tp::batch_config b = tp::solve_batch({.gbs = gbs, .lbs = *lbs, .gas = *gas, .dp = dp});
        if (!gbs) {
          ctx.gbs = b.gbs;
          rules = tp::check_parallel(c, ctx);
        }
      } catch (const tp::config_error& e) {
        rules.push_back({e.field(), e.what()});
      }
    }
  }
  found.insert(found.end(), rules.begin(), rules.end());
  if (a.has("json")) {
    json v = json::array();
    for (const auto& x : found) v.push_back({{"field", x.field}, {"message", x.message}});
    out.print_json(json{{"valid", found.empty()}, {"violations", v}});
    return found.empty() ? 0 : 1;
  }
  if (found.empty()) {
    out.print("valid\n");
    return 0;
  }
  out.print("invalid: {} rule{} broken\n", found.size(), found.size() == 1 ? "" : "s");
  for (const auto& x : found) out.print("  {}: {}\n", x.field, x.message);
  return 1;
}

}  // namespace

command check_config_command() {
  return {"check-config", "validate model, batch and parallel settings together: valid, or every broken rule (exit 1)",
          check_config_flags, run_check_config};
}

}  // namespace trainperf::cli
