// trainperf — preset models: the seed reports' models and the common public ones, each
// with the source of its configuration and, where benchmark suites use one, its nominal size.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "error.hpp"
#include "model.hpp"
#include "names.hpp"

namespace trainperf {

struct preset {
  std::string_view name;
  transformer_spec spec;
  // The round size a benchmark suite multiplies by (70e9 for llama2-70b); 0 when none is
  // customary, and then the exact count stands in.
  double nominal_params = 0;
  std::string_view source;
};

namespace detail {

// Llama 2 (Touvron et al. 2023, arXiv:2307.09288): RMSNorm, SwiGLU, RoPE, no biases, untied,
// vocabulary 32000, context 4096.
constexpr transformer_spec llama2(std::int64_t layers, std::int64_t hidden, std::int64_t heads, std::int64_t kv_heads,
                                  std::int64_t ffn) {
  return {.layers = layers,
          .hidden = hidden,
          .heads = heads,
          .kv_heads = kv_heads,
          .ffn = ffn,
          .vocab = 32000,
          .max_seq = 4096};
}

// Llama 3 / 3.1 (Grattafiori et al. 2024, arXiv:2407.21783, table 3): GQA with 8 KV heads,
// vocabulary 128256.
constexpr transformer_spec llama3(std::int64_t layers, std::int64_t hidden, std::int64_t heads, std::int64_t ffn,
                                  std::int64_t max_seq) {
  return {.layers = layers,
          .hidden = hidden,
          .heads = heads,
          .kv_heads = 8,
          .ffn = ffn,
          .vocab = 128256,
          .max_seq = max_seq};
}

// GPT-2/GPT-3 family (Radford et al. 2019; Brown et al. 2020, arXiv:2005.14165): LayerNorm,
// GELU MLP of 4 x hidden, biases everywhere, learned positions, tied embeddings; the GPT-2
// tokenizer's 50257 tokens, or 50304 where the training framework pads them.
constexpr transformer_spec gpt(std::int64_t layers, std::int64_t hidden, std::int64_t heads, std::int64_t max_seq,
                               std::int64_t vocab) {
  return {.layers = layers,
          .hidden = hidden,
          .heads = heads,
          .ffn = 4 * hidden,
          .vocab = vocab,
          .max_seq = max_seq,
          .mlp = mlp_kind::gelu,
          .norm = norm_kind::layernorm,
          .linear_bias = true,
          .tied_embeddings = true,
          .positions = position_kind::learned};
}

constexpr transformer_spec with_vision(transformer_spec s, vision_spec v) {
  s.vision = v;
  return s;
}

constexpr transformer_spec with_moe(transformer_spec s, moe_spec m) {
  s.moe = m;
  return s;
}

}  // namespace detail

inline constexpr preset presets[] = {
    {"llama2-7b", detail::llama2(32, 4096, 32, 0, 11008), 7e9,
     "Touvron et al. 2023 (arXiv:2307.09288) table 1; meta-llama/Llama-2-7b-hf config.json"},
    {"llama2-13b", detail::llama2(40, 5120, 40, 0, 13824), 13e9,
     "Touvron et al. 2023 (arXiv:2307.09288) table 1; meta-llama/Llama-2-13b-hf config.json"},
    {"llama2-70b", detail::llama2(80, 8192, 64, 8, 28672), 70e9,
     "Touvron et al. 2023 (arXiv:2307.09288) table 1; meta-llama/Llama-2-70b-hf config.json"},
    {"llama3-8b", detail::llama3(32, 4096, 32, 14336, 8192), 8e9,
     "Grattafiori et al. 2024 (arXiv:2407.21783) table 3; meta-llama/Meta-Llama-3-8B config.json"},
    {"llama3-70b", detail::llama3(80, 8192, 64, 28672, 8192), 70e9,
     "Grattafiori et al. 2024 (arXiv:2407.21783) table 3; meta-llama/Meta-Llama-3-70B config.json"},
    {"llama3-405b", detail::llama3(126, 16384, 128, 53248, 131072), 405e9,
     "Grattafiori et al. 2024 (arXiv:2407.21783) table 3; meta-llama/Llama-3.1-405B config.json"},
    // LLaVA 1.5 (Liu et al. 2023, arXiv:2310.03744): Vicuna-7B v1.5 (Llama 2 7B shape), CLIP
    // ViT-L/14 at 336 px (features of the penultimate layer), two-layer GELU projector.
    // Trainable parts as in the finetune stage; pretraining also freezes the LLM.
    {"llava1.5-7b",
     detail::with_vision(detail::llama2(32, 4096, 32, 0, 11008), {.layers = 24,
                                                                  .hidden = 1024,
                                                                  .heads = 16,
                                                                  .ffn = 4096,
                                                                  .image_size = 336,
                                                                  .patch_size = 14,
                                                                  .feature_layer = -2}),
     7e9,
     "Liu et al. 2023 (arXiv:2310.03744); llava-hf/llava-1.5-7b-hf config.json; "
     "openai/clip-vit-large-patch14-336 config.json"},
    // GPT-3 shapes (Brown et al. 2020, arXiv:2005.14165, table 2.1) as the seed-004 runs built
    // them: PaddleNLP's gpt3-6.7B-en / gpt3-13B-en configs used by FlagPerf (vocabulary padded
    // to 50304, context 2048). Table 2.1 prints d_model 5140 for 13B, but 40 heads x d_head 128
    // = 5120, which is what PaddleNLP and Megatron-LM use.
    {"gpt3-6.7b", detail::gpt(32, 4096, 32, 2048, 50304), 6.7e9,
     "Brown et al. 2020 (arXiv:2005.14165) table 2.1; PaddleNLP gpt3-6.7B-en via FlagPerf "
     "training/benchmarks/gpt3_6.7B/paddle"},
    {"gpt3-13b", detail::gpt(40, 5120, 40, 2048, 50304), 13e9,
     "Brown et al. 2020 (arXiv:2005.14165) table 2.1; PaddleNLP gpt3-13B-en via FlagPerf "
     "training/benchmarks/gpt3_13B/paddle"},
    {"gpt3-175b", detail::gpt(96, 12288, 96, 2048, 50304), 175e9,
     "Brown et al. 2020 (arXiv:2005.14165) table 2.1; vocabulary padded as Megatron-LM does at TP 1"},
    {"gpt2-124m", detail::gpt(12, 768, 12, 1024, 50257), 124e6,
     "Radford et al. 2019; openai-community/gpt2 config.json"},
    // Mixtral 8x7B (Jiang et al. 2024, arXiv:2401.04088, table 1): 8 SwiGLU experts, top-2.
    {"mixtral-8x7b",
     detail::with_moe(
         {.layers = 32, .hidden = 4096, .heads = 32, .kv_heads = 8, .ffn = 14336, .vocab = 32000, .max_seq = 32768},
         {.experts = 8, .top_k = 2}),
     0, "Jiang et al. 2024 (arXiv:2401.04088) table 1; mistralai/Mixtral-8x7B-v0.1 config.json"},
    // Qwen1.5-MoE-A2.7B (Qwen/Qwen1.5-MoE-A2.7B config.json, transformers' Qwen2MoeConfig
    // defaults): 24 layers of 60 SwiGLU experts of 1408, top-4, and one shared expert of 5632
    // behind a sigmoid gate; QKV biases; untied embeddings.
    {"qwen1.5-moe-a2.7b",
     detail::with_moe(
         {.layers = 24, .hidden = 2048, .heads = 16, .ffn = 5632, .vocab = 151936, .max_seq = 8192, .qkv_bias = true},
         {.experts = 60,
          .top_k = 4,
          .expert_ffn = 1408,
          .shared_experts = 1,
          .shared_expert_ffn = 5632,
          .shared_expert_gate = true}),
     0, "Qwen/Qwen1.5-MoE-A2.7B config.json and model card (14.3B parameters, 2.7B activated)"},
    {"mistral-7b",
     {.layers = 32, .hidden = 4096, .heads = 32, .kv_heads = 8, .ffn = 14336, .vocab = 32000, .max_seq = 32768},
     7e9,
     "Jiang et al. 2023 (arXiv:2310.06825) table 1; mistralai/Mistral-7B-v0.1 config.json"},
    // Pythia (Biderman et al. 2023, arXiv:2304.01373): GPT-NeoX layout, LayerNorm, biased
    // linears, GELU, rotary, untied. (Parallel residual and partial rotary change no count.)
    {"pythia-1.4b",
     {.layers = 24,
      .hidden = 2048,
      .heads = 16,
      .ffn = 8192,
      .vocab = 50304,
      .max_seq = 2048,
      .mlp = mlp_kind::gelu,
      .norm = norm_kind::layernorm,
      .linear_bias = true},
     1.4e9,
     "Biderman et al. 2023 (arXiv:2304.01373) table 1; EleutherAI/pythia models/1.4B/pythia-1.4b.yml"},
    // The example trainer's model: Llama shape, byte-level vocabulary, small enough to learn
    // visibly on two CPU cores in a minute.
    {"tiny",
     {.layers = 4, .hidden = 128, .heads = 4, .kv_heads = 2, .ffn = 384, .vocab = 256, .max_seq = 128},
     0,
     "trainperf's own example model (examples/train_llama)"},
};

// The preset called `name` (as listed, ignoring ASCII case: "Llama2-7B" finds llama2-7b), or nullptr.
constexpr const preset* find_preset(std::string_view name) {
  for (const preset& p : presets)
    if (detail::same_name_ignoring_case(p.name, name)) return &p;
  return nullptr;
}

namespace reason {
inline void unknown_model_preset() {}
}  // namespace reason

// The preset called `name` (see find_preset); an unknown name is a config_error listing the known ones.
// (No pointer comparison here: GCC cannot constant-evaluate one under -fsanitize=address.)
constexpr const preset& get_preset(std::string_view name) {
  for (const preset& p : presets)
    if (detail::same_name_ignoring_case(p.name, name)) return p;
  detail::require(false, reason::unknown_model_preset, "model", [&] {
    return detail::unknown_name_message("model", name, presets, "known presets") +
           " (or give a path to a Hugging Face config.json)";
  });
  return presets[0];  // not reached: require threw
}

}  // namespace trainperf
