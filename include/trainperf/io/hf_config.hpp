// trainperf — read a Hugging Face config.json into a transformer_spec.
// Optional: needs nlohmann_json (Debian: nlohmann-json3-dev); link trainperf::io.
#pragma once

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "../model.hpp"

namespace trainperf::io {

namespace detail {

using nlohmann::json;

// Reads fields of one JSON object, naming `prefix + key` (e.g. "text_config.hidden_size")
// and the file in every error.
class fields {
 public:
  using defaults_map = std::map<std::string, std::int64_t, std::less<>>;
  // `defaults`: values transformers fills in for absent keys (a nested config's class
  // defaults); absent keys without one are errors.
  fields(const json& obj, std::string origin, std::string prefix = "", defaults_map defaults = {})
      : obj_(obj), origin_(std::move(origin)), prefix_(std::move(prefix)), defaults_(std::move(defaults)) {}

  [[nodiscard]] std::string name(std::string_view key) const { return prefix_ + std::string(key); }

  [[nodiscard]] bool has(std::string_view key) const {
    auto it = obj_.find(std::string(key));
    return it != obj_.end() && !it->is_null();
  }

  [[noreturn]] void fail(std::string_view key, const std::string& what) const {
    throw config_error(name(key), origin_ + ": " + what);
  }

  [[nodiscard]] std::optional<std::int64_t> opt_int(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    const json& v = obj_.at(std::string(key));
    if (v.is_number_integer()) return v.get<std::int64_t>();
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return static_cast<std::int64_t>(d);
    }
    fail(key, "field \"" + name(key) + "\" must be an integer, got " + v.dump());
  }

  [[nodiscard]] std::int64_t req_int(std::string_view key) const {
    if (auto v = opt_int(key)) return *v;
    if (auto d = defaults_.find(key); d != defaults_.end()) return d->second;
    fail(key, "missing required field \"" + name(key) + "\"");
  }

  // The integer under either of two spellings (HF attribute aliases such as n_embd /
  // hidden_size); both present with different values is a contradiction.
  [[nodiscard]] std::int64_t req_int_alias(std::string_view key, std::string_view alias) const {
    const auto a = opt_int(key), b = opt_int(alias);
    if (a && b && *a != *b)
      fail(key, "contradictory fields: \"" + name(key) + "\" = " + std::to_string(*a) + " but \"" + name(alias) +
                    "\" = " + std::to_string(*b) + "; remove one");
    if (a) return *a;
    if (b) return *b;
    fail(key, "missing required field \"" + name(key) + "\" (or \"" + name(alias) + "\")");
  }

  [[nodiscard]] std::optional<bool> opt_bool(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    const json& v = obj_.at(std::string(key));
    if (!v.is_boolean()) fail(key, "field \"" + name(key) + "\" must be true or false, got " + v.dump());
    return v.get<bool>();
  }

  [[nodiscard]] std::optional<std::string> opt_string(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    const json& v = obj_.at(std::string(key));
    if (!v.is_string()) fail(key, "field \"" + name(key) + "\" must be a string, got " + v.dump());
    return v.get<std::string>();
  }

  [[nodiscard]] const json& object(std::string_view key) const {
    if (!has(key) || !obj_.at(std::string(key)).is_object()) fail(key, "missing required object \"" + name(key) + "\"");
    return obj_.at(std::string(key));
  }

  [[nodiscard]] const std::string& origin() const { return origin_; }

 private:
  const json& obj_;
  std::string origin_;
  std::string prefix_;
  defaults_map defaults_;
};

// transformers' LlamaConfig defaults (src/transformers/models/llama/configuration_llama.py),
// which LLaVA checkpoints rely on for their text_config (the Llama 2 7B shape).
inline const fields::defaults_map llama_config_defaults = {
    {"vocab_size", 32000},     {"hidden_size", 4096},       {"intermediate_size", 11008},
    {"num_hidden_layers", 32}, {"num_attention_heads", 32}, {"max_position_embeddings", 2048}};

// Llama-family decoders: llama, mistral, mixtral (transformers' LlamaConfig & co.).
inline transformer_spec llama_family(const fields& f, const std::string& type) {
  transformer_spec s;
  s.layers = f.req_int("num_hidden_layers");
  s.hidden = f.req_int("hidden_size");
  s.heads = f.req_int("num_attention_heads");
  s.kv_heads = f.opt_int("num_key_value_heads").value_or(0);  // HF default: = heads
  s.head_dim = f.opt_int("head_dim").value_or(0);
  s.ffn = f.req_int("intermediate_size");
  s.vocab = f.req_int("vocab_size");
  s.max_seq = f.req_int("max_position_embeddings");
  s.tied_embeddings = f.opt_bool("tie_word_embeddings").value_or(false);  // LlamaConfig default
  const auto act = f.opt_string("hidden_act").value_or("silu");
  if (act != "silu" && act != "swish")
    f.fail("hidden_act", "hidden_act \"" + act + "\" is not supported for model_type \"" + type +
                             "\"; trainperf models the gated SiLU (SwiGLU) MLP of this family");
  const bool attention_bias = f.opt_bool("attention_bias").value_or(false);
  const bool mlp_bias = f.opt_bool("mlp_bias").value_or(false);
  if (attention_bias != mlp_bias)
    f.fail("attention_bias", "attention_bias and mlp_bias differ; trainperf models biases on every linear or on none");
  s.linear_bias = attention_bias;
  if (type == "mixtral" || f.has("num_local_experts")) {
    s.moe.experts = f.req_int("num_local_experts");
    s.moe.top_k = f.req_int("num_experts_per_tok");
  }
  return s;
}

// GPT-2 (transformers' GPT2Config): n_inner null means 4 x n_embd.
inline transformer_spec gpt2(const fields& f) {
  transformer_spec s;
  s.layers = f.req_int_alias("n_layer", "num_hidden_layers");
  s.hidden = f.req_int_alias("n_embd", "hidden_size");
  s.heads = f.req_int_alias("n_head", "num_attention_heads");
  s.ffn = f.opt_int("n_inner").value_or(4 * s.hidden);
  s.vocab = f.req_int("vocab_size");
  s.max_seq = f.req_int_alias("n_positions", "max_position_embeddings");
  s.mlp = mlp_kind::gelu;
  s.norm = norm_kind::layernorm;
  s.linear_bias = true;
  s.tied_embeddings = f.opt_bool("tie_word_embeddings").value_or(true);  // PretrainedConfig default
  s.positions = position_kind::learned;
  return s;
}

inline transformer_spec decoder(const fields& f, const std::string& type) {
  if (type == "llama" || type == "mistral" || type == "mixtral") return llama_family(f, type);
  if (type == "gpt2") return gpt2(f);
  f.fail("model_type", "model_type \"" + type +
                           "\" is not supported; supported: llama, mistral, mixtral, gpt2, llava "
                           "(or describe the model with --layers/--hidden/... overrides)");
}

// Maps a validation failure back to the file's own field names.
inline void validate_as_file(const transformer_spec& s, const std::string& origin, const std::string& prefix) {
  try {
    validate(s);
  } catch (const config_error& e) {
    throw config_error(prefix + e.field(), origin + ": " + e.what());
  }
}

}  // namespace detail

// Parses an already-loaded config.json object; `origin` names it in errors.
inline transformer_spec spec_from_hf_config(const nlohmann::json& j, const std::string& origin = "config.json") {
  if (!j.is_object()) throw config_error("config.json", origin + ": the top level is not a JSON object");
  const detail::fields f(j, origin);
  const auto type = f.opt_string("model_type");
  if (!type) f.fail("model_type", "missing required field \"model_type\"");
  if (*type != "llava") {
    transformer_spec s = detail::decoder(f, *type);
    detail::validate_as_file(s, origin, "");
    return s;
  }
  // LLaVA (transformers' LlavaConfig): a text_config decoder, a CLIP vision_config and the
  // projector between them.
  const nlohmann::json& text_obj = f.object("text_config");
  const auto text_type = detail::fields(text_obj, origin, "text_config.").opt_string("model_type").value_or("llama");
  const detail::fields text(text_obj, origin, "text_config.",
                            text_type == "llama" ? detail::llama_config_defaults : detail::fields::defaults_map{});
  transformer_spec s = detail::decoder(text, text_type);
  const detail::fields vis(f.object("vision_config"), origin, "vision_config.");
  s.vision.layers = vis.req_int("num_hidden_layers");
  s.vision.hidden = vis.req_int("hidden_size");
  s.vision.heads = vis.req_int("num_attention_heads");
  s.vision.ffn = vis.req_int("intermediate_size");
  s.vision.image_size = vis.req_int("image_size");
  s.vision.patch_size = vis.req_int("patch_size");
  s.vision.channels = vis.opt_int("num_channels").value_or(3);
  s.vision.feature_layer = f.opt_int("vision_feature_layer").value_or(-2);  // LlavaConfig default
  const auto act = f.opt_string("projector_hidden_act").value_or("gelu");
  if (act != "gelu")
    f.fail("projector_hidden_act", "projector_hidden_act \"" + act +
                                       "\" is not supported; LLaVA's projector is "
                                       "linear-GELU-linear");
  s.vision.projector = projector_kind::mlp2x_gelu;
  detail::validate_as_file(s, origin, "");
  return s;
}

// Reads and parses a config.json file.
inline transformer_spec read_hf_config(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in)
    throw config_error("model", "cannot open " + path.string() + "; give a preset name or a readable config.json");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw config_error("model", path.string() + " is not valid JSON: " + e.what());
  }
  return spec_from_hf_config(j, path.string());
}

}  // namespace trainperf::io
