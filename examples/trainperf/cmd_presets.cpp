// trainperf presets: list the preset models with their sources
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <trainperf/trainperf.hpp>

#include "cli.hpp"

namespace trainperf::cli {
namespace {
namespace tp = trainperf;

int run_presets(const args& a, output& out) {
  if (a.has("json")) {
    json j = json::array();
    for (const auto& p : tp::presets)
      j.push_back({{"name", p.name},
                   {"params", tp::count_params(p.spec).total()},
                   {"nominal", p.nominal_params > 0 ? json(p.nominal_params) : json(nullptr)},
                   {"source", p.source}});
    out.print_json(j);
    return 0;
  }
  table t({"preset", "parameters", "nominal", "source"}, {true, false, false, true});
  for (const auto& p : tp::presets)
    t.row({std::string(p.name), tp::format_count(tp::count_params(p.spec).total()),
           p.nominal_params > 0 ? short_count(p.nominal_params) : "-", std::string(p.source)});
  out.print("{}", t.render());
  return 0;
}

}  // namespace

command presets_command() {
  return {"presets", "list the preset models with their sources", [] { return with_common({}); }, run_presets};
}

}  // namespace trainperf::cli
