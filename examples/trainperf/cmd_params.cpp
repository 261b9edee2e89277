// trainperf params: parameter counts: total, embedding, non-embedding, per component and layer
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

std::vector<flag> params_flags() {
  auto f = tp::cli::model_flags();
  f.push_back({"tp", "N", "tensor-parallel degree for vocabulary padding (when the model pads)"});
  return with_common(f);
}

int run_params(const args& a, output& out) {
  const auto m = tp::cli::model_from_args(a);
  const std::int64_t tpd = a.get_int("tp").value_or(1);
  const tp::param_counts c = tp::count_params(m.spec, tpd);
  // Layers come in at most two shapes: MoE (is_moe_layer) and dense; each
  // once with its count, never a loop over the layers (2^31 of them are allowed).
  const tp::transformer_spec& sp = m.spec;
  std::vector<std::pair<std::int64_t, tp::layer_params>> shapes;  // (count, params): the MoE shape first
  const std::int64_t moe = sp.moe_layers();
  if (moe > 0) shapes.push_back({moe, tp::count_layer_params(sp, sp.layer_of_shape(true))});
  if (sp.layers > moe) shapes.push_back({sp.layers - moe, tp::count_layer_params(sp, sp.layer_of_shape(false))});
  const std::int64_t active = tp::count_active_params(m.spec, tpd);
  if (a.has("json")) {
    json j;
    j["model"] = m.name;
    j["total"] = c.total();
    j["embedding"] = c.embedding();
    j["non_embedding"] = c.non_embedding();
    j["active"] = active;
    j["components"] = {{"token_embedding", c.token_embedding},
                       {"position_embedding", c.position_embedding},
                       {"output", c.output},
                       {"attention", c.attention},
                       {"mlp", c.mlp},
                       {"router", c.router},
                       {"routed_experts", c.routed_experts},
                       {"shared_experts", c.shared_experts},
                       {"norms", c.norms},
                       {"vision", c.vision},
                       {"projector", c.projector}};
    // Every layer's count, while the list is short; the shapes always.
    if (sp.layers <= 4096) {
      json per_layer = json::array();
      for (std::int64_t i = 0; i < sp.layers; ++i)
        per_layer.push_back(shapes[sp.is_moe_layer(i) || shapes.size() == 1 ? 0 : 1].second.total());
      j["per_layer"] = per_layer;
    }
    json layer_shapes = json::array();
    for (const auto& [n, l] : shapes)
      layer_shapes.push_back({{"layers", n}, {"kind", l.routed_experts ? "moe" : "dense"}, {"params", l.total()}});
    j["layer_shapes"] = layer_shapes;
    if (m.nominal_params > 0) j["nominal"] = m.nominal_params;
    out.print_json(j);
    return 0;
  }
  const auto row = [&out](std::string_view what, std::int64_t n) {
    out.print("  {:<28}{:>22}\n", what, tp::format_count(n));
  };
  out.print("model {}{}\n", m.name,
            m.nominal_params > 0 ? fmt::format(" (nominal {})", short_count(m.nominal_params)) : "");
  row("total", c.total());
  row("embedding", c.embedding());
  row("non-embedding", c.non_embedding());
  if (m.spec.is_moe()) row("active per token", active);
  out.print("components\n");
  row("token embedding", c.token_embedding);
  if (c.position_embedding) row("position embedding", c.position_embedding);
  if (c.output) row("output layer (untied)", c.output);
  row("attention", c.attention);
  if (c.mlp) row("mlp", c.mlp);
  if (c.router) row("router", c.router);
  if (c.routed_experts) row("routed experts", c.routed_experts);
  if (c.shared_experts) row("shared experts", c.shared_experts);
  row("norms", c.norms);
  if (c.vision) row("vision tower", c.vision);
  if (c.projector) row("projector", c.projector);
  out.print("per layer\n");
  for (const auto& [n, l] : shapes) row(fmt::format("{} x {} layer", n, l.routed_experts ? "MoE" : "dense"), l.total());
  return 0;
}

}  // namespace

command params_command() {
  return {"params", "parameter counts: total, embedding, non-embedding, per component and layer", params_flags,
          run_params};
}

}  // namespace trainperf::cli
