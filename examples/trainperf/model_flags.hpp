// --model and the model-override flags shared by every subcommand that needs a model.
#pragma once

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <trainperf/io/hf_config.hpp>
#include <trainperf/io/megatron_layer_pattern.hpp>
#include <trainperf/trainperf.hpp>

#include "args.hpp"

namespace trainperf::cli {

inline std::vector<flag> model_flags() {
  return {
      {"model", "NAME|config.json", "a preset (see `trainperf presets`) or a Hugging Face config.json"},
      {"layers", "N", "transformer layers"},
      {"hidden", "N", "hidden size"},
      {"heads", "N", "attention heads"},
      {"kv-heads", "N", "key/value heads (GQA; 1 = MQA)"},
      {"head-dim", "N", "head dimension (default hidden/heads)"},
      {"ffn", "N", "MLP hidden size"},
      {"vocab", "N", "vocabulary size"},
      {"seq", "N", "sequence length"},
      {"mlp", choices_of(mlp_kind_names), "MLP kind"},
      {"norm", choices_of(norm_kind_names), "norm kind"},
      {"positions", choices_of(position_kind_names), "position embedding kind"},
      {"bias", "", "biases on every linear"},
      {"qkv-bias", "", "biases on the query, key and value projections only (Qwen, ChatGLM)"},
      {"no-bias", "", "no linear biases"},
      {"tied", "", "output layer tied to the token embedding"},
      {"untied", "", "separate output layer"},
      {"experts", "N", "MoE experts"},
      {"top-k", "N", "MoE experts per token"},
      {"expert-ffn", "N", "each routed expert's MLP hidden size (default: --ffn)"},
      {"shared-experts", "N", "always-active shared experts per MoE layer (DeepSeekMoE, Qwen-MoE)"},
      {"shared-expert-ffn", "N", "a shared expert's MLP hidden size (default: the routed experts')"},
      {"moe-layer-freq", "N|LIST",
       "every N-th layer is MoE (layer i when i % N == the offset, 0 by default), the others dense; or a list "
       "with one entry per layer, 1 MoE and 0 dense, such as \"([0]*1+[1]*3)*8\" (Megatron-LM's --moe-layer-freq)"},
      {"moe-layer-offset", "K",
       "with --moe-layer-freq N: layer i is MoE when i % N == K (default 0; N - 1 for Qwen2-MoE's "
       "decoder_sparse_step and Llama 4's interleave_moe_layer_step, Jamba's expert_layer_offset)"},
      {"moe-first-dense-layers", "K",
       "the first K layers dense whatever the frequency (DeepSeek's and GLM-4.5's first_k_dense_replace)"},
      {"make-vocab-size-divisible-by", "N",
       "pad the vocabulary to a multiple of N x tp, as Megatron-LM's flag of that name (default: 128 under "
       "--framework megatron and megatron-core, none otherwise)"},
  };
}

struct model_choice {
  std::string name;  // preset name, file path, or "custom"
  transformer_spec spec;
  double nominal_params = 0;
};

namespace detail {
template <class T>
void set_if(const args& a, std::string_view name, T& field) {
  if (auto v = a.get_int(name)) field = *v;
}
inline void exclusive(const args& a, std::string_view x, std::string_view y) {
  if (a.has(x) && a.has(y))
    throw usage_error("--" + std::string(x) + " and --" + std::string(y) + " contradict each other");
}
}  // namespace detail

// The model named by --model (if any) with every override applied, validated.
// seq_sets_max_seq: --seq overrides the model's max_seq (its learned-position table); when
// false (flops, mfu) --seq is the training sequence length and only fills max_seq for a
// model described by flags alone.
inline model_choice model_from_args(const args& a, bool seq_sets_max_seq = true) {
  model_choice m{"custom", {}, 0};
  if (auto name = a.get("model")) {
    if (const preset* p = find_preset(*name)) {
      m = {std::string(p->name), p->spec, p->nominal_params};
    } else if (std::error_code ec; name->ends_with(".json") || std::filesystem::exists(*name, ec)) {
      // (the error_code overload: a name too long for a path is an unknown model, not an exception)
      m = {*name, io::read_hf_config(*name), 0};
    } else {
      (void)get_preset(*name);  // throws the "unknown model; known presets: ..." error
    }
  } else {
    std::string missing;
    for (const char* f : {"layers", "hidden", "heads", "ffn", "vocab", "seq"})
      if (!a.has(f)) missing += std::string(missing.empty() ? "" : ", ") + "--" + f;
    if (!missing.empty())
      throw usage_error("give --model NAME|config.json, or describe the model fully; missing: " + missing);
  }
  transformer_spec& s = m.spec;
  detail::set_if(a, "layers", s.layers);
  detail::set_if(a, "hidden", s.hidden);
  detail::set_if(a, "heads", s.heads);
  detail::set_if(a, "kv-heads", s.kv_heads);
  detail::set_if(a, "head-dim", s.head_dim);
  detail::set_if(a, "ffn", s.ffn);
  detail::set_if(a, "vocab", s.vocab);
  if (seq_sets_max_seq || !a.has("model")) detail::set_if(a, "seq", s.max_seq);
  detail::set_if(a, "experts", s.moe.experts);
  detail::set_if(a, "top-k", s.moe.top_k);
  detail::set_if(a, "expert-ffn", s.moe.expert_ffn);
  if (const auto n = a.get_count("shared-experts", "a count (0 for none)", 1e6)) {
    s.moe.shared_experts = *n;
    if (*n == 0) s.moe.shared_expert_ffn = 0, s.moe.shared_expert_gate = false;
  }
  detail::set_if(a, "shared-expert-ffn", s.moe.shared_expert_ffn);
  if (const auto freq = a.get("moe-layer-freq"); freq && io::is_layer_pattern(*freq)) {
    for (const char* rule : {"moe-layer-offset", "moe-first-dense-layers"})
      if (a.has(rule))
        throw usage_error("--" + std::string(rule) + " applies to a frequency; --moe-layer-freq " +
                          trainperf::detail::abbreviated(*freq) + " lists every layer already: drop --" + rule +
                          " (mark those layers 0 in the list)");
    io::apply_moe_layer_pattern(s, *freq, "--moe-layer-freq");
  } else {
    detail::set_if(a, "moe-layer-freq", s.moe.layer_freq);
  }
  if (const auto k = a.get_count("moe-layer-offset", "a layer index within the period (0 to freq - 1)", 1e9))
    s.moe.layer_offset = *k;
  if (const auto k = a.get_count("moe-first-dense-layers", "a layer count (0 for none)", 1e9))
    s.moe.first_dense_layers = *k;
  if (auto n = a.get_int("make-vocab-size-divisible-by")) {
    s.padding = vocab_padding::megatron;
    s.pad_multiple = *n;
  }
  if (auto v = a.get_named("mlp", mlp_kind_names)) s.mlp = *v;
  if (auto v = a.get_named("norm", norm_kind_names)) s.norm = *v;
  if (auto v = a.get_named("positions", position_kind_names)) s.positions = *v;
  detail::exclusive(a, "bias", "no-bias");
  detail::exclusive(a, "tied", "untied");
  if (a.has("bias")) s.linear_bias = true;
  if (a.has("qkv-bias")) s.qkv_bias = true;
  if (a.has("no-bias")) s.linear_bias = false;
  if (a.has("tied")) s.tied_embeddings = true;
  if (a.has("untied")) s.tied_embeddings = false;
  // Overridden shapes are no longer the preset's nominal size.
  bool overridden = false;
  for (const auto& f : model_flags())
    if (f.name != "model" && f.name != "seq" && a.has(f.name)) overridden = true;
  if (overridden && a.has("model")) {
    m.nominal_params = 0;
    m.name += " (with overrides)";
  }
  validate(s);
  return m;
}

// --train PARTS: which of a model's parts train (the others are frozen): a comma list of
// vision, projector, llm; absent: the model's own modes.
inline void train_parts_from_args(const args& a, model_choice& m) {
  const auto parts = a.get("train");
  if (!parts) return;
  bool vision = false, projector = false, llm = false;
  std::string_view rest = *parts;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const auto part = rest.substr(0, comma);
    if (part == "vision")
      vision = true;
    else if (part == "projector")
      projector = true;
    else if (part == "llm")
      llm = true;
    else
      throw usage_error("--train expects a comma list of vision, projector, llm; got '" + std::string(part) + "'");
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
  }
  transformer_spec& s = m.spec;
  if ((vision || projector) && !s.vision.present())
    throw usage_error("--train names vision/projector parts, but " + m.name + " has no vision tower");
  const auto mode = [](bool on) { return on ? train_mode::trained : train_mode::frozen; };
  s.vision.tower_mode = mode(vision);
  s.vision.projector_mode = mode(projector);
  s.llm_mode = mode(llm);
}

}  // namespace trainperf::cli
