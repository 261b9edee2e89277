// --model, the FLOPs convention and its options, shared by `trainperf flops` and `trainperf mfu`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <trainperf/trainperf.hpp>

#include "cli.hpp"
#include "model_flags.hpp"

namespace trainperf::cli {

inline std::vector<flag> flops_flag_list() {
  auto f = model_flags();
  for (auto& x : f)
    if (x.name == "seq") x.help = "training sequence length (default: the model's max_seq)";
  f.push_back({"convention", choices_of(flops_convention_names), "FLOPs convention (default palm)"});
  f.push_back({"causal", "", "megatron: count half of the attention core"});
  f.push_back({"recompute", choices_of(recompute_names), "activation recomputation, for HFU (default none)"});
  f.push_back({"params", "N", "parameter count for nominal/palm/kaplan (nominal default: the preset's nominal size)"});
  f.push_back({"k", "K", "nominal's multiplier (default 6; 2 when the language model is frozen)"});
  f.push_back({"tp", "N", "tensor-parallel degree for vocabulary padding"});
  f.push_back({"train", "PARTS", "comma list of the parts that train: vision,projector,llm (multimodal)"});
  f.push_back({"images", "N", "images per sequence (multimodal; default 1)"});
  return f;
}

// --convention nominal|palm|megatron|kaplan, `fallback` when not given.
inline flops_convention convention_from_args(const args& a, flops_convention fallback) {
  return a.get_named("convention", flops_convention_names).value_or(fallback);
}

struct flops_setup {
  model_choice model;
  flops_options options;
  double params_used = 0;  // N the convention multiplies (0 for megatron)
};

inline flops_setup flops_from_args(const args& a) {
  flops_setup f{model_from_args(a, /*seq_sets_max_seq=*/false), {}, 0};
  const transformer_spec& s = f.model.spec;
  train_parts_from_args(a, f.model);
  flops_options& o = f.options;
  o.convention = convention_from_args(a, flops_convention::palm);
  o.recomputation = recompute_from_args(a);
  o.seq = a.get_int("seq").value_or(s.max_seq);
  o.causal = a.has("causal");
  o.tp = a.get_int("tp").value_or(1);
  o.k = a.get_double("k").value_or(0);
  if (a.has("images")) o.images_per_sequence = *a.get_int("images");
  if (a.has("params") && o.convention == flops_convention::megatron)
    throw usage_error("--params applies to nominal, palm and kaplan; megatron counts every GEMM from the shapes");
  if (a.has("k") && o.convention != flops_convention::nominal)
    throw usage_error("--k applies to the nominal convention only");
  o.params = a.get_double("params").value_or(0);
  if (o.params == 0 && o.convention == flops_convention::nominal && f.model.nominal_params > 0)
    o.params = f.model.nominal_params;
  f.params_used = convention_params(s, o);
  return f;
}

}  // namespace trainperf::cli
