// trainperf flops: training FLOPs per token / sequence / step under a named convention
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <trainperf/trainperf.hpp>

#include "cli.hpp"
#include "flops_args.hpp"

namespace trainperf::cli {
namespace {
namespace tp = trainperf;

int run_flops(const args& a, output& out) {
  const flops_setup f = flops_from_args(a);
  const tp::flops_count c = tp::count_flops(f.model.spec, f.options);
  const auto gbs = a.get_int("gbs");
  if (a.has("json")) {
    json j{{"model", f.model.name},
           {"convention", tp::to_string(f.options.convention)},
           {"seq", c.seq},
           {"causal", f.options.causal},
           {"recompute", tp::to_string(f.options.recomputation)}};
    if (f.params_used > 0) j["params"] = f.params_used;
    j["flops_per_token"] = c.model_per_token();
    j["flops_per_sequence"] = c.model;
    j["forward_flops_per_token"] = c.forward_per_token();
    j["hardware_flops_per_token"] = c.hardware_per_token();
    if (gbs) j["flops_per_step"] = c.model_per_step(*gbs);
    out.print_json(j);
    return 0;
  }
  out.print("model {}, convention {}, seq {}{}, recompute {}\n", f.model.name, tp::to_string(f.options.convention),
            c.seq, f.options.causal ? " (causal)" : "", tp::to_string(f.options.recomputation));
  // One label column, as wide as its longest label.
  const auto row = [&out](std::string_view label, double v, std::string_view note = {}) {
    out.print("  {:<28}{:.6g}{}{}\n", label, v, note.empty() ? "" : "   ", note);
  };
  if (f.params_used > 0) row("N", f.params_used);
  row("training FLOPs per token", c.model_per_token(), "(MFU counts these)");
  row("forward FLOPs per token", c.forward_per_token());
  row("hardware FLOPs per token", c.hardware_per_token(),
      f.options.recomputation == tp::recompute::none ? "(HFU: no recomputation, = training)"
                                                     : "(HFU: with recomputation)");
  row("training FLOPs per sequence", c.model);
  if (gbs) row("training FLOPs per step", c.model_per_step(*gbs), fmt::format("({} sequences)", *gbs));
  return 0;
}

std::vector<flag> flops_flags() {
  auto f = flops_flag_list();
  f.push_back({"gbs", "N", "sequences per step, for FLOPs per step"});
  return with_common(f);
}

}  // namespace

command flops_command() {
  return {"flops", "training FLOPs per token / sequence / step under a named convention", flops_flags, run_flops};
}

}  // namespace trainperf::cli
