// trainperf layout: rank coordinates and Megatron-LM process groups for a world and its parallel degrees
#include <algorithm>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <trainperf/trainperf.hpp>

#include "cli.hpp"

namespace trainperf::cli {
namespace {
namespace tp = trainperf;

// Groups sorted as the JSON promises: ranks ascending within a group, groups by first rank.
std::vector<std::vector<std::int64_t>> sorted_groups(std::vector<std::vector<std::int64_t>> g) {
  for (auto& x : g) std::sort(x.begin(), x.end());
  std::sort(g.begin(), g.end());
  return g;
}

std::vector<flag> layout_flags() {
  auto f = parallel_size_flags();
  f.push_back({"order", "O", "axis order, first fastest (default tp-cp-ep-dp-pp)"});
  f.push_back({"all", "", "list every group and rank however large the world (default: the first 1024 ranks of each)"});
  return with_common(f);
}

// Megatron-LM's group names (parallel_state.py's RankGenerator tokens; etp / edp are the
// expert mesh's tp and dp), as layout::groups takes them and the README lists them.
constexpr std::string_view group_kinds[] = {"tp",    "cp", "dp",  "pp",  "tp-pp",    "dp-cp",
                                            "tp-cp", "ep", "etp", "edp", "embedding"};

// Without --all each kind shows its groups until this many ranks are listed, and the
// coordinates this many ranks: the answer for a world of 2^20 stays a few pages.
constexpr std::int64_t shown_ranks = 1024;

int run_layout(const args& a, output& out) {
  const std::int64_t world = require_world(a);
  const tp::parallel_config c = parallel_from_args(a);
  const std::string order = a.get("order").value_or(std::string(tp::default_order));
  const tp::layout l(world, c, order);
  const bool all = a.has("all");
  struct listing {
    std::string_view kind;
    std::int64_t count = 0, size = 0;  // groups of this kind, ranks per group
    std::vector<std::vector<std::int64_t>> shown;
  };
  std::vector<listing> kinds;
  for (std::string_view kind : group_kinds) {
    const auto first = l.groups(kind, 1);
    const std::int64_t size = static_cast<std::int64_t>(first.front().size());
    const std::int64_t count = kind == "embedding" ? world / l.decoder().size(tp::axis::pp) : world / size;
    const std::int64_t budget = all ? count : std::max<std::int64_t>(1, shown_ranks / size);
    // Megatron-LM's order lists groups by their lowest rank already (the remaining axes, fastest
    // first, have growing strides), so the first `budget` groups are the lowest ones.
    kinds.push_back({kind, count, size, sorted_groups(l.groups(kind, budget))});
  }
  const std::int64_t coords_shown = all ? world : std::min(world, shown_ranks);
  if (a.has("json")) {
    json groups = json::object(), counts = json::object();
    bool truncated = false;
    for (const auto& k : kinds) {
      json list = json::array();
      for (const auto& g : k.shown)
        if (all || k.size <= shown_ranks) list.push_back(g);
      truncated |= static_cast<std::int64_t>(list.size()) < k.count;
      groups[std::string(k.kind)] = list;
      counts[std::string(k.kind)] = {{"groups", k.count}, {"ranks_per_group", k.size}};
    }
    json coords = json::array();
    for (std::int64_t r = 0; r < coords_shown; ++r) {
      const tp::rank_coords k = l.coords(r);
      coords.push_back({{"rank", r},
                        {"tp", k.tp},
                        {"cp", k.cp},
                        {"dp", k.dp},
                        {"pp", k.pp},
                        {"ep", k.ep},
                        {"etp", k.etp},
                        {"edp", k.edp}});
    }
    json j{{"world", world},
           {"order", l.decoder().order_string()},
           {"groups", groups},
           {"group_counts", counts},
           {"coords", coords}};
    // A consumer must not mistake a summary for the whole: say what was cut and how to get all.
    if (truncated || coords_shown < world)
      j["truncated"] = fmt::format("groups past {} ranks per kind and coords past rank {} left out; --all lists them",
                                   shown_ranks, coords_shown - 1);
    out.print_json(j);
    return 0;
  }
  const auto& m = l.decoder();
  // Degree-1 axes say nothing: left out of the shape and stride lines.
  std::vector<std::string> shape, strides;
  for (tp::axis x : {tp::axis::tp, tp::axis::cp, tp::axis::dp, tp::axis::pp})
    if (m.size(x) > 1) {
      shape.push_back(fmt::format("{} {}", tp::axis_names[static_cast<int>(x)], m.size(x)));
      strides.push_back(fmt::format("{} {}", tp::axis_names[static_cast<int>(x)], m.stride(x)));
    }
  std::string used_order;  // the order string without its degree-1 axes
  for (tp::axis x : m.order())
    if (m.size(x) > 1) used_order += (used_order.empty() ? "" : "-") + std::string(tp::axis_names[static_cast<int>(x)]);
  out.print("world {}{}{}; order {} (first axis fastest)\n", world, shape.empty() ? "" : " = ", fmt::join(shape, " x "),
            used_order.empty() ? m.order_string() : used_order);
  if (!strides.empty()) out.print("strides: {}\n", fmt::join(strides, ", "));
  if (c.ep > 1 || c.resolved_etp() != c.tp) {
    const auto& e = l.expert();
    out.print("experts: etp {} x ep {} x edp {} x pp {}\n", e.size(tp::axis::tp), e.size(tp::axis::ep),
              e.size(tp::axis::dp), e.size(tp::axis::pp));
  }
  const auto show = [&](const std::vector<std::int64_t>& g) {
    if (all || static_cast<std::int64_t>(g.size()) <= shown_ranks) return fmt::format("[{}]", fmt::join(g, ","));
    return fmt::format("[{},...,{}] ({} ranks)", fmt::join(g.begin(), g.begin() + 8, ","), g.back(), g.size());
  };
  for (const auto& k : kinds) {
    if (k.size == 1 && k.kind != "dp") continue;  // trivial axis
    std::string line;
    for (const auto& g : k.shown) line += (line.empty() ? "" : " ") + show(g);
    if (static_cast<std::int64_t>(k.shown.size()) < k.count)
      line += fmt::format(" ... and {} more groups of {} (--all lists them)", k.count - k.shown.size(), k.size);
    out.print("{:<10}{}\n", k.kind, line);
  }
  return 0;
}

}  // namespace

command layout_command() {
  return {"layout", "rank coordinates and Megatron-LM process groups for a world and its parallel degrees",
          layout_flags, run_layout};
}

}  // namespace trainperf::cli
