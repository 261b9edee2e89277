// trainperf — read a Hugging Face config.json into a transformer_spec.
// Optional: needs nlohmann_json (Debian: nlohmann-json3-dev); link trainperf::io.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../model.hpp"
#include "file.hpp"
#include "json.hpp"

namespace trainperf::io {

namespace detail {

using nlohmann::json;

// transformers' LlamaConfig defaults (src/transformers/models/llama/configuration_llama.py),
// which LLaVA checkpoints rely on for their text_config (the Llama 2 7B shape).
inline const fields::defaults_map llama_config_defaults = {
    {"vocab_size", 32000},     {"hidden_size", 4096},       {"intermediate_size", 11008},
    {"num_hidden_layers", 32}, {"num_attention_heads", 32}, {"max_position_embeddings", 2048}};

// Names of transformer_spec fields (as validate() reports them) in the file, so that a
// failed check names what the user wrote ("num_key_value_heads", not "kv_heads").
using field_names = std::map<std::string, std::string, std::less<>>;
inline const field_names llama_field_names = {{"layers", "num_hidden_layers"},
                                              {"hidden", "hidden_size"},
                                              {"heads", "num_attention_heads"},
                                              {"kv_heads", "num_key_value_heads"},
                                              {"head_dim", "head_dim"},
                                              {"heads x head_dim", "head_dim"},
                                              {"ffn", "intermediate_size"},
                                              {"vocab", "vocab_size"},
                                              {"max_seq", "max_position_embeddings"},
                                              {"experts", "num_local_experts"},
                                              {"top_k", "num_experts_per_tok"},
                                              // Qwen2-MoE's names for where its MoE layers are.
                                              {"moe_layer_offset", "decoder_sparse_step"},
                                              {"moe_dense_layers", "mlp_only_layers"}};
inline const field_names gpt2_field_names = {
    {"layers", "n_layer"}, {"hidden", "n_embd"},    {"heads", "n_head"},       {"heads x head_dim", "n_embd"},
    {"ffn", "n_inner"},    {"vocab", "vocab_size"}, {"max_seq", "n_positions"}};
inline const field_names llava_vision_field_names = {
    {"vision.layers", "vision_config.num_hidden_layers"},  {"vision.hidden", "vision_config.hidden_size"},
    {"vision.heads", "vision_config.num_attention_heads"}, {"vision.ffn", "vision_config.intermediate_size"},
    {"vision.image_size", "vision_config.image_size"},     {"vision.patch_size", "vision_config.patch_size"},
    {"vision.channels", "vision_config.num_channels"},     {"vision.feature_layer", "vision_feature_layer"}};

// Llama-family decoders: llama, mistral, mixtral, qwen2 (transformers' LlamaConfig & co.).
inline transformer_spec llama_family(const fields& f, const std::string& type) {
  transformer_spec s;
  s.layers = f.req_size("num_hidden_layers");
  s.hidden = f.req_size("hidden_size");
  s.heads = f.req_size("num_attention_heads");
  // Absent or null: LlamaConfig sets num_key_value_heads = num_attention_heads. 0 is not that
  // default (transformers would divide by it): it is refused like any other size <= 0.
  s.kv_heads = f.opt_size("num_key_value_heads",
                          "remove it (or set it to num_attention_heads) for multi-head attention, 1 for multi-query")
                   .value_or(0);
  // An explicit head_dim may differ from hidden_size / num_attention_heads: LlamaAttention
  // takes getattr(config, "head_dim", hidden_size // num_attention_heads) and projects q to
  // num_attention_heads x head_dim (transformers src/transformers/models/llama/modeling_llama.py;
  // mistral likewise). mistralai/Mistral-Nemo-Base-2407 ships hidden_size 5120, 32 heads and
  // head_dim 128. Only when head_dim is absent must hidden_size divide by the heads (validate).
  s.head_dim = f.opt_size("head_dim", "remove it to use hidden_size / num_attention_heads").value_or(0);
  s.ffn = f.req_size("intermediate_size");
  s.vocab = f.req_size("vocab_size");
  s.max_seq = f.req_size("max_position_embeddings");
  s.tied_embeddings = f.opt_bool("tie_word_embeddings").value_or(false);  // LlamaConfig default
  const auto act = f.opt_string("hidden_act").value_or("silu");
  if (act != "silu" && act != "swish")
    f.fail("hidden_act", "hidden_act " + json_quoted(act) + " is not supported for model_type " + json_quoted(type) +
                             "; trainperf models the gated SiLU (SwiGLU) MLP of this family");
  const bool attention_bias = f.opt_bool("attention_bias").value_or(false);
  const bool mlp_bias = f.opt_bool("mlp_bias").value_or(false);
  if (attention_bias != mlp_bias)
    f.fail("attention_bias", "attention_bias and mlp_bias differ; trainperf models biases on every linear or on none");
  s.linear_bias = attention_bias;
  // Qwen2 (transformers' Qwen2Attention): q_proj, k_proj and v_proj carry biases, o_proj and the
  // MLP none (modeling_qwen2.py: bias=True on the three, bias=False on o_proj).
  if (type == "qwen2") s.qkv_bias = true;
  if (type == "mixtral" || f.has("num_local_experts")) {
    s.moe.experts = f.req_size("num_local_experts");
    s.moe.top_k = f.req_size("num_experts_per_tok");
  }
  // Qwen-MoE (transformers' Qwen2MoeConfig, modeling_qwen2_moe.py Qwen2MoeSparseMoeBlock): QKV
  // biases, num_experts experts of moe_intermediate_size, one shared expert of
  // shared_expert_intermediate_size behind a sigmoid gate; a layer is sparse when (i + 1) %
  // decoder_sparse_step == 0 and it is not in mlp_only_layers.
  if (type == "qwen2_moe") {
    s.qkv_bias = true;
    s.moe.experts = f.req_size("num_experts");
    s.moe.top_k = f.req_size("num_experts_per_tok");
    s.moe.expert_ffn = f.req_size("moe_intermediate_size");
    s.moe.shared_experts = 1;
    s.moe.shared_expert_ffn = f.req_size("shared_expert_intermediate_size");
    s.moe.shared_expert_gate = true;
    // (i + 1) % step == 0: layer_freq step at offset step - 1.
    s.moe.layer_freq = f.opt_size("decoder_sparse_step", "give the step, 1 for every layer").value_or(1);
    s.moe.layer_offset = s.moe.layer_freq - 1;
    for (const std::int64_t i : f.int_list("mlp_only_layers")) {
      if (i < 0 || i >= s.layers)
        f.fail("mlp_only_layers", "mlp_only_layers lists layer " + std::to_string(i) +
                                      " but the model's layers are 0 to " + std::to_string(s.layers - 1) +
                                      "; list layers of the model");
      if (!s.moe.dense_layers.insert(i))
        f.fail("mlp_only_layers", "mlp_only_layers lists layer " + std::to_string(i) +
                                      ": trainperf lists layers 0 to " + std::to_string(layer_set::capacity - 1) +
                                      " only; describe the model with --moe-layer-freq instead");
    }
  }
  return s;
}

// GPT-2 (transformers' GPT2Config): n_inner null means 4 x n_embd. GPT-2 has no head_dim:
// GPT2Attention splits n_embd into n_head heads and raises "embed_dim must be divisible by
// num_heads" otherwise (transformers src/transformers/models/gpt2/modeling_gpt2.py), so a
// head_dim key is ignored as transformers ignores it, and validate() requires the division.
inline transformer_spec gpt2(const fields& f) {
  transformer_spec s;
  s.layers = f.req_size_alias("n_layer", "num_hidden_layers");
  s.hidden = f.req_size_alias("n_embd", "hidden_size");
  s.heads = f.req_size_alias("n_head", "num_attention_heads");
  s.ffn = f.opt_size("n_inner", "set it to null (or remove it) for 4 x n_embd").value_or(4 * s.hidden);
  s.vocab = f.req_size("vocab_size");
  s.max_seq = f.req_size_alias("n_positions", "max_position_embeddings");
  s.mlp = mlp_kind::gelu;
  s.norm = norm_kind::layernorm;
  s.linear_bias = true;
  s.tied_embeddings = f.opt_bool("tie_word_embeddings").value_or(true);  // PretrainedConfig default
  s.positions = position_kind::learned;
  return s;
}

inline transformer_spec decoder(const fields& f, const std::string& type, field_names& names) {
  if (type == "llama" || type == "mistral" || type == "mixtral" || type == "qwen2" || type == "qwen2_moe") {
    names = llama_field_names;
    return llama_family(f, type);
  }
  if (type == "gpt2") {
    names = gpt2_field_names;
    return gpt2(f);
  }
  f.fail("model_type", "model_type " + json_quoted(type) +
                           " is not supported; supported: llama, mistral, mixtral, qwen2, qwen2_moe, gpt2, llava "
                           "(or describe the model with --layers/--hidden/... overrides)");
}

// Runs validate() and maps a failure back to the file's own field names (`names`, then
// `prefix` for the decoder's fields of a nested text_config).
inline void validate_as_file(const transformer_spec& s, const std::string& origin, const std::string& prefix,
                             const field_names& names, const field_names& vision_names = {}) {
  try {
    validate(s);
  } catch (const config_error& e) {
    std::string field = e.field();
    if (auto v = vision_names.find(field); v != vision_names.end()) {
      field = v->second;
    } else {
      if (auto n = names.find(field); n != names.end()) field = n->second;
      field = prefix + field;
    }
    throw config_error(field, origin + ": \"" + field + "\": " + e.what());
  }
}

}  // namespace detail

// Parses an already-loaded config.json object; `origin` names it in errors.
inline transformer_spec spec_from_hf_config(const nlohmann::json& j, const std::string& origin = "config.json") {
  if (!j.is_object())
    throw config_error("config.json", origin + ": the top level must be a JSON object, got " + detail::describe(j));
  const detail::fields f(j, origin);
  const auto type = f.opt_string("model_type");
  if (!type) f.fail("model_type", "missing required field \"model_type\"");
  detail::field_names names;
  if (*type != "llava") {
    transformer_spec s = detail::decoder(f, *type, names);
    detail::validate_as_file(s, origin, "", names);
    return s;
  }
  // LLaVA (transformers' LlavaConfig): a text_config decoder, a CLIP vision_config and the
  // projector between them.
  const nlohmann::json& text_obj = f.object("text_config");
  const auto text_type = detail::fields(text_obj, origin, "text_config.").opt_string("model_type").value_or("llama");
  const detail::fields text(text_obj, origin, "text_config.",
                            text_type == "llama" ? detail::llama_config_defaults : detail::fields::defaults_map{});
  transformer_spec s = detail::decoder(text, text_type, names);
  const detail::fields vis(f.object("vision_config"), origin, "vision_config.");
  s.vision.layers = vis.req_size("num_hidden_layers");
  s.vision.hidden = vis.req_size("hidden_size");
  s.vision.heads = vis.req_size("num_attention_heads");
  s.vision.ffn = vis.req_size("intermediate_size");
  s.vision.image_size = vis.req_size("image_size");
  s.vision.patch_size = vis.req_size("patch_size");
  s.vision.channels = vis.opt_size("num_channels", "remove it for 3 (RGB)").value_or(3);
  s.vision.feature_layer = f.opt_int("vision_feature_layer").value_or(-2);  // LlavaConfig default
  const auto act = f.opt_string("projector_hidden_act").value_or("gelu");
  if (act != "gelu")
    f.fail("projector_hidden_act", "projector_hidden_act " + detail::json_quoted(act) +
                                       " is not supported; LLaVA's projector is "
                                       "linear-GELU-linear");
  s.vision.projector = projector_kind::mlp2x_gelu;
  detail::validate_as_file(s, origin, "text_config.", names, detail::llava_vision_field_names);
  return s;
}

// Parses config.json text: refuses invalid JSON, a key given twice in one object and deep
// nesting, then reads it as spec_from_hf_config does. Every error is a one-line config_error.
inline transformer_spec spec_from_hf_config_text(std::string_view text, const std::string& origin = "config.json") {
  return spec_from_hf_config(detail::parse_json(text, origin, "model"), origin);
}

// The largest config.json read: published ones are a few KiB.
inline constexpr std::uintmax_t max_hf_config_bytes = std::uintmax_t{16} << 20;  // 16 MiB

// Reads and parses a config.json file (a regular file of at most max_hf_config_bytes; a
// directory, FIFO, device or empty file is a config_error for "model", not a stream exception).
inline transformer_spec read_hf_config(const std::filesystem::path& path) {
  const std::string bytes = read_file(path, max_hf_config_bytes, "model", "a Hugging Face config.json");
  return spec_from_hf_config_text(bytes, path.string());
}

}  // namespace trainperf::io
