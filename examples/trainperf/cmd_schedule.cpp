// trainperf schedule: pipeline schedule: action lists, bubble, in-flight micro-batches, simulated timeline
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <trainperf/trainperf.hpp>

#include <trainperf/io/file.hpp>

#include "cli.hpp"
#include "model_flags.hpp"

namespace trainperf::cli {
namespace {
namespace tp = trainperf;

std::vector<flag> schedule_flags() {
  return with_common({
      {"pp", "P", "pipeline stages"},
      {"microbatches", "M", "micro-batches per step"},
      {"gas", "M", "the same: gradient-accumulation steps (as memory and batch call it)"},
      {"vpp", "V", "model chunks per stage (interleaved)"},
      {"kind", choices_of(tp::pipeline_schedule_names), "schedule (default: 1f1b, interleaved when --vpp > 1)"},
      {"forward-time", "T", "simulated forward time of a stage per micro-batch (default 1)"},
      {"backward-time", "T", "simulated backward time (default 2)"},
      {"p2p-latency", "T", "simulated hand-off latency between stages (default 0)"},
      {"svg", "FILE", "write the simulated timeline as SVG"},
  });
}

constexpr std::int64_t max_stages = 65536;
constexpr std::size_t max_listed_actions = 65536;

int run_schedule(const args& a, output& out) {
  tp::cli::detail::exclusive(a, "microbatches", "gas");
  const auto pp = a.get_int("pp"), m = a.has("gas") ? a.get_int("gas") : a.get_int("microbatches");
  if (!pp || !m) throw usage_error("--pp P and --microbatches M (or --gas M) are required");
  // Per-stage figures are listed for every stage: bounded so that an answer stays readable.
  if (*pp > max_stages)
    throw usage_error(
        fmt::format("--pp {} is more than the {} pipeline stages this tool lists; give fewer", *pp, max_stages));
  const std::int64_t vpp = a.get_int("vpp").value_or(1);
  const tp::pipeline_schedule kind =
      a.get_named("kind", tp::pipeline_schedule_names)
          .value_or(vpp > 1 ? tp::pipeline_schedule::interleaved : tp::pipeline_schedule::one_f_one_b);
  const std::string_view k = tp::to_string(kind);
  // The micro-batch rules check-config applies to Megatron-LM's 1F1B and interleaved
  // schedules, from the same place (check_parallel): one verdict in every subcommand. GPipe
  // runs any number of micro-batches (its bubble is simply (p - 1) / m of the useful time).
  if (kind != tp::pipeline_schedule::gpipe) {
    const auto broken = tp::check_parallel({.pp = *pp, .vpp = vpp}, {.world = *pp, .gbs = *m, .lbs = 1});
    if (!broken.empty()) throw tp::config_error(broken.front().field, broken.front().message);
  }
  const tp::schedule s = tp::make_schedule(kind, *pp, *m, vpp);
  const double tf = a.get_double("forward-time").value_or(1), tb = a.get_double("backward-time").value_or(2);
  double latency = 0;
  if (a.has("p2p-latency")) latency = *a.get_double("p2p-latency", /*zero_allowed=*/true);
  const tp::simulation sim = tp::simulate(s, std::vector<double>(*pp, tf), std::vector<double>(*pp, tb), latency);
  // Written once the answer is complete, so a refused request leaves no file behind.
  const auto write_svg = [&] {
    if (auto path = a.get("svg"))
      tp::io::write_file(*path,
                         tp::render_svg(sim, vpp,
                                        fmt::format("{} schedule, pp {}, {} micro-batches{}", k, *pp, *m,
                                                    vpp > 1 ? fmt::format(", vpp {}", vpp) : "")),
                         "svg");
  };
  if (a.has("json")) {
    // Every stage's action list, up to max_listed_actions in all (the schedule itself may hold
    // 2^22 slots: a JSON of them would be hundreds of megabytes); past it, null and why.
    std::size_t total = 0;
    for (const auto& st : s.stages) total += st.size();
    json actions = total <= max_listed_actions ? json::array() : json(nullptr);
    for (const auto& st : s.stages) {
      if (actions.is_null()) break;
      json row = json::array();
      for (const auto& x : st) {
        row.push_back(vpp > 1 ? fmt::format("{}{}.{}", x.kind == tp::pass::forward ? 'F' : 'B', x.micro_batch, x.chunk)
                              : fmt::format("{}{}", x.kind == tp::pass::forward ? 'F' : 'B', x.micro_batch));
      }
      actions.push_back(row);
    }
    json j{{"kind", k},
           {"pp", *pp},
           {"microbatches", *m},
           {"vpp", vpp},
           {"bubble_fraction", s.bubble_fraction()},
           {"inflight_per_stage", s.inflight_peak()},
           {"warmup_per_stage", s.warmup},
           {"simulated",
            {{"step_time", sim.step_time}, {"bubble_fraction", sim.bubble_fraction()}, {"idle_per_stage", sim.idle}}},
           {"actions", actions}};
    if (actions.is_null())
      j["actions_left_out"] = fmt::format("{} actions, more than the {} listed at most", total, max_listed_actions);
    out.print_json(j);
    write_svg();
    return 0;
  }
  out.print("{} schedule, pp {}, {} micro-batches{}\n", k, *pp, *m, vpp > 1 ? fmt::format(", vpp {}", vpp) : "");
  out.print(
      "  bubble fraction       {:.4f} (closed form), {:.4f} (simulated: forward {:g}, backward {:g}, latency {:g})\n",
      s.bubble_fraction(), sim.bubble_fraction(), tf, tb, latency);
  out.print("  in-flight peak        {} micro-batches per stage\n", fmt::join(s.inflight_peak(), ", "));
  out.print("  warm-up micro-batches {} per stage{}\n", fmt::join(s.warmup, ", "),
            vpp > 1 ? " (virtual: one chunk each)" : "");
  out.print("  step time (simulated) {:g}\n\n{}", sim.step_time, tp::render_ascii(sim, vpp));
  write_svg();
  return 0;
}

}  // namespace

command schedule_command() {
  return {"schedule", "pipeline schedule: action lists, bubble, in-flight micro-batches, simulated timeline",
          schedule_flags, run_schedule};
}

}  // namespace trainperf::cli
