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
  return with_common(f);
}

int run_layout(const args& a, output& out) {
  const std::int64_t world = require_world(a);
  const tp::parallel_config c = parallel_from_args(a);
  const std::string order = a.get("order").value_or(std::string(tp::default_order));
  const tp::layout l(world, c, order);
  const std::pair<const char*, const char*> kinds[] = {
      {"tp", "tp"},    {"cp", "cp"},       {"dp", "dp"},   {"pp", "pp"},   {"ep", "ep"},
      {"mp", "tp-pp"}, {"dp_cp", "dp-cp"}, {"etp", "etp"}, {"edp", "edp"}, {"embedding", "embedding"}};
  if (a.has("json")) {
    json groups = json::object();
    for (auto [key, name] : kinds) groups[key] = sorted_groups(l.groups(name));
    json coords = json::array();
    for (std::int64_t r = 0; r < world; ++r) {
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
    out.print_json(json{{"world", world}, {"order", l.decoder().order_string()}, {"groups", groups}, {"coords", coords}});
    return 0;
  }
  const auto& m = l.decoder();
  out.print("world {} = tp {} x cp {} x dp {} x pp {}; order {} (first axis fastest)\n", world, m.size(tp::axis::tp),
             m.size(tp::axis::cp), m.size(tp::axis::dp), m.size(tp::axis::pp), m.order_string());
  out.print("strides: tp {}, cp {}, dp {}, pp {}\n", m.stride(tp::axis::tp), m.stride(tp::axis::cp),
             m.stride(tp::axis::dp), m.stride(tp::axis::pp));
  if (c.ep > 1 || c.resolved_etp() != c.tp) {
    const auto& e = l.expert();
    out.print("experts: etp {} x ep {} x edp {} x pp {}\n", e.size(tp::axis::tp), e.size(tp::axis::ep),
               e.size(tp::axis::dp), e.size(tp::axis::pp));
  }
  for (auto [key, name] : kinds) {
    const auto g = sorted_groups(l.groups(name));
    if (g.front().size() == 1 && std::string_view(key) != "dp") continue;  // trivial axis
    std::string line;
    for (const auto& grp : g) line += fmt::format("{}[{}]", line.empty() ? "" : " ", fmt::join(grp, ","));
    out.print("{:<10}{}\n", key, line);
  }
  return 0;
}


}  // namespace

command layout_command() {
  return {"layout", "rank coordinates and Megatron-LM process groups for a world and its parallel degrees", layout_flags, run_layout};
}

}  // namespace trainperf::cli
