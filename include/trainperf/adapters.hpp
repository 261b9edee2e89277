// trainperf — parameter-efficient fine-tuning: low-rank adapters (LoRA) on a frozen base, and
// frozen base weights stored quantized (QLoRA's NF4, GPTQ's int4/int8).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "error.hpp"
#include "model.hpp"
#include "units.hpp"

namespace trainperf {

// The projections of a layer a LoRA adapter can sit beside. qkv is one adapter on a fused
// query-key-value projection (Qwen's c_attn, Baichuan's W_pack, ChatGLM's query_key_value),
// which has one A for the shared input where separate q, k, v adapters have three.
namespace lora_target {
inline constexpr unsigned q = 1, k = 2, v = 4, qkv = 8, o = 16, gate = 32, up = 64, down = 128;
inline constexpr unsigned attention = q | k | v | o, mlp = gate | up | down, all_linear = attention | mlp;
}  // namespace lora_target

// LLaMA-Adapter as Lit-GPT implements it. v1 (Zhang et al. 2023, arXiv:2303.16199;
// lit_gpt/adapter.py): from layer adapter_start_layer on, each attention layer gains a trainable
// prompt of adapter_prompt_length x hidden (adapter_wte) and a zero-initialized gate per head
// (gating_factor); the frozen QKV projection turns the prompt into keys and values, and every
// token attends to them a second time, gated: y + gating_factor x attention(q, prompt k, v). v2
// (Gao et al. 2023, arXiv:2304.15010; lit_gpt/adapter_v2.py) also gives every linear layer of the
// blocks and the output layer a trainable bias and scale per output feature, scale x (W x + bias),
// and trains the norms.
enum class prompt_adapter { none, v1, v2 };
inline constexpr named<prompt_adapter> prompt_adapter_names[] = {{"v1", prompt_adapter::v1},
                                                                 {"v2", prompt_adapter::v2}};

// LoRA (Hu et al. 2021, arXiv:2106.09685, section 4.1): each targeted projection W (out x in)
// stays frozen and gains a trainable pair A (r x in) and B (out x r). With rank > 0 every base
// weight of the language model is frozen; the embedding and output layer gain trainable copies
// when train_embeddings is set (PEFT's modules_to_save keeps the original beside the copy).
struct adapter_options {
  std::int64_t lora_rank = 0;  // 0: no adapters
  unsigned lora_targets = 0;   // lora_target bits
  // Dropout on each adapter's input (PEFT's lora_dropout > 0): autograd keeps the dropped-out
  // copy of the input (for A's gradient) and its 1-byte mask, per target.
  bool lora_dropout = false;
  bool train_embeddings = false;
  // Bits per frozen layer weight (the linear layers of the transformer blocks; embeddings, norms
  // and the output layer stay in the compute dtype, as bitsandbytes and GPTQ leave them);
  // 0: the weights' dtype. See quantized_weight_bits for the formats' figures.
  double frozen_weight_bits = 0;
  // The quantized projections keep their inputs for a weight gradient they never compute:
  // bitsandbytes 0.41's MatMul4Bit (autograd/_functions.py: ctx.tensors = (A, B) whenever A or B
  // needs a gradient; the weight's gradient line is commented out), where a frozen 16-bit
  // nn.Linear keeps nothing. Each 4-bit projection whose input needs a gradient keeps it. Set it
  // for bitsandbytes' 4-bit formats (nf4, nf4-dq) of that version; it needs frozen_weight_bits.
  bool quantized_inputs_kept = false;
  // The adapters' weights in fp32 whatever the base's dtype (their gradients and optimizer states
  // too): PEFT before 0.6.0 builds them in torch's default dtype and only moves them to the base
  // layer's device (v0.5.0 src/peft/tuners/lora.py, update_layer: self.to(self.weight.device));
  // from 0.6.0 they take the base weight's dtype (lora/layer.py: self.to(weight.device,
  // dtype=weight.dtype)). DeepSpeed casts the whole module, adapters included, so it has none.
  bool fp32_adapters = false;
  // LLaMA-Adapter (prompt_adapter) with Lit-GPT's defaults (lit_gpt/config.py).
  prompt_adapter llama_adapter = prompt_adapter::none;
  std::int64_t adapter_prompt_length = 10;
  std::int64_t adapter_start_layer = 2;

  [[nodiscard]] constexpr bool lora() const { return lora_rank > 0; }
  [[nodiscard]] constexpr bool prompt() const { return llama_adapter != prompt_adapter::none; }
};

// Bits per weight of a quantized format, its scales included:
//   nf4:    4-bit NormalFloat with an fp32 absmax per block of 64: 4 + 32/64 = 4.5
//           (Dettmers et al. 2023, QLoRA, arXiv:2305.14314, section 3);
//   nf4-dq: the same with double quantization: 8-bit absmaxes plus an fp32 constant per 256 of
//           them: 4 + 8/64 + 32/(64 x 256) = 4.127 (same section: "0.127 bits per parameter");
//   int8:   LLM.int8()'s 8-bit weights with an fp32 scale per output row (Dettmers et al. 2022,
//           arXiv:2208.07339, section 3.2): 8 bits, the row scales below 0.01 bit at h >= 1024;
//   int4, int8-gptq: GPTQ (Frantar et al. 2022, arXiv:2210.17323) as AutoGPTQ stores it with
//           group size 128: per group an fp16 scale and a packed zero point of the same width,
//           4 + (16 + 4)/128 = 4.156 and 8 + (16 + 8)/128 = 8.1875.
constexpr std::optional<double> quantized_weight_bits(std::string_view name) {
  if (name == "nf4") return 4.5;
  if (name == "nf4-dq") return 4.0 + 8.0 / 64 + 32.0 / (64 * 256);
  if (name == "int8") return 8.0;
  if (name == "int4") return 4.0 + 20.0 / 128;
  if (name == "int8-gptq") return 8.0 + 24.0 / 128;
  return std::nullopt;
}

// The lora_target bits of a comma list of q, k, v, qkv, o, gate, up, down, attention, mlp,
// all-linear; nullopt (and the offending name in *bad) on an unknown name.
inline std::optional<unsigned> parse_lora_targets(std::string_view list, std::string* bad = nullptr) {
  unsigned bits = 0;
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    const std::string_view name = list.substr(0, comma);
    using namespace lora_target;
    const unsigned b = name == "q"            ? q
                       : name == "k"          ? k
                       : name == "v"          ? v
                       : name == "qkv"        ? qkv
                       : name == "o"          ? o
                       : name == "gate"       ? gate
                       : name == "up"         ? up
                       : name == "down"       ? down
                       : name == "attention"  ? attention
                       : name == "mlp"        ? mlp
                       : name == "all-linear" ? all_linear
                                              : 0u;
    if (b == 0) {
      if (bad) *bad = std::string(name);
      return std::nullopt;
    }
    bits |= b;
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
  }
  return bits;
}

namespace reason {
inline void lora_needs_targets() {}
inline void lora_rank_is_negative() {}
inline void lora_targets_q_k_v_and_fused_qkv() {}
inline void lora_on_moe_layers_is_not_modeled() {}
inline void frozen_weight_bits_out_of_range() {}
inline void quantized_inputs_need_quantized_weights() {}
inline void fp32_adapters_without_lora() {}
inline void two_kinds_of_adapters() {}
inline void adapter_prompt_out_of_range() {}
}  // namespace reason

constexpr void validate(const adapter_options& a, const transformer_spec& m) {
  using detail::str;
  detail::require(a.lora_rank >= 0, reason::lora_rank_is_negative, "lora_rank",
                  [&] { return "lora_rank " + str(a.lora_rank) + " is negative; give 0 (no adapters) or a rank"; });
  detail::require(!a.lora() || a.lora_targets != 0, reason::lora_needs_targets, "lora_targets", [&] {
    return "lora_rank " + str(a.lora_rank) + " with no targets; name the projections (q, v, qkv, all-linear, ...)";
  });
  detail::require((a.lora_targets & lora_target::qkv) == 0 ||
                      (a.lora_targets & (lora_target::q | lora_target::k | lora_target::v)) == 0,
                  reason::lora_targets_q_k_v_and_fused_qkv, "lora_targets", [&] {
                    return std::string(
                        "lora_targets has both the fused qkv projection and separate q/k/v ones; a "
                        "model has one or the other");
                  });
  detail::require(!(a.lora() || a.prompt()) || !m.is_moe(), reason::lora_on_moe_layers_is_not_modeled,
                  a.lora() ? "lora_rank" : "llama_adapter", [&] {
                    return "adapters on a mixture-of-experts model (" + str(m.moe.experts) +
                           " experts) are not modeled yet; drop them or give a dense model";
                  });
  detail::require(!(a.lora() && a.prompt()), reason::two_kinds_of_adapters, "llama_adapter",
                  [&] { return std::string("LoRA and LLaMA-Adapter together: give one kind of adapter"); });
  detail::require(!a.prompt() || (a.adapter_prompt_length > 0 && a.adapter_prompt_length <= (1 << 20) &&
                                  a.adapter_start_layer >= 0 && a.adapter_start_layer < m.layers),
                  reason::adapter_prompt_out_of_range, "adapter_prompt_length", [&] {
                    return "LLaMA-Adapter prompt length " + str(a.adapter_prompt_length) + " from layer " +
                           str(a.adapter_start_layer) + " of " + str(m.layers) +
                           ": give a positive length (Lit-GPT's default 10) and a start layer below the layers";
                  });
  detail::require(a.frozen_weight_bits >= 0 && a.frozen_weight_bits <= 32, reason::frozen_weight_bits_out_of_range,
                  "frozen_weight_bits", [&] {
                    return "frozen_weight_bits " + format_double(a.frozen_weight_bits) +
                           " is outside 0..32; give 0 (the weights' dtype) or a format's bits (nf4 4.5)";
                  });
  detail::require(!a.fp32_adapters || a.lora(), reason::fp32_adapters_without_lora, "fp32_adapters", [&] {
    return std::string(
        "fp32_adapters without LoRA (lora_rank 0): only PEFT's LoRA adapters are built in fp32 "
        "(before 0.6.0); give a LoRA rank and targets or drop it");
  });
  detail::require(!a.quantized_inputs_kept || a.frozen_weight_bits > 0, reason::quantized_inputs_need_quantized_weights,
                  "quantized_inputs_kept", [&] {
                    return std::string(
                        "quantized_inputs_kept without quantized weights (frozen_weight_bits 0): only quantized "
                        "projections keep inputs their frozen weights do not need; set frozen_weight_bits "
                        "(--base-weights nf4) or drop it");
                  });
}

// Whether the language model's own weights train: as the model says (llm_mode), unless adapters
// (LoRA, LLaMA-Adapter) freeze them.
constexpr bool base_weights_train(const transformer_spec& m, const adapter_options& a) {
  return m.llm_mode == train_mode::trained && !a.lora() && !a.prompt();
}

// LLaMA-Adapter's trainable parameters of one dense layer (prompt_adapter): in a layer from
// adapter_start_layer on, the prompt (length x hidden) and one gate per head; with v2, in every
// layer, a bias and a scale per output feature of the QKV, output, MLP and down projections, and
// the two norms' weights (and biases).
constexpr std::int64_t count_prompt_adapter_layer_params(const transformer_spec& m, const adapter_options& a,
                                                         bool prompt_layer) {
  if (!a.prompt()) return 0;
  const std::int64_t h = m.hidden, q = m.q_dim(), kv = m.kv_dim(), f = m.ffn;
  std::int64_t sum = prompt_layer ? detail::checked_mul(a.adapter_prompt_length, h, "adapter parameters") + m.heads : 0;
  if (a.llama_adapter == prompt_adapter::v2) {
    const std::int64_t outputs = q + 2 * kv + h + (m.mlp == mlp_kind::swiglu ? 2 : 1) * f + h;
    sum += 2 * outputs + 2 * detail::norm_params(m.norm, h);
  }
  return sum;
}

// v2's parameters outside the layers: the output layer's bias and scale per (padded) vocabulary
// entry and the final norm.
constexpr std::int64_t count_prompt_adapter_head_params(const transformer_spec& m, const adapter_options& a,
                                                        std::int64_t tp = 1) {
  if (a.llama_adapter != prompt_adapter::v2) return 0;
  return 2 * m.padded_vocab(tp) + detail::norm_params(m.norm, m.hidden);
}

// All of LLaMA-Adapter's trainable parameters in the model.
constexpr std::int64_t count_prompt_adapter_params(const transformer_spec& m, const adapter_options& a) {
  if (!a.prompt()) return 0;
  const std::int64_t start = std::min(a.adapter_start_layer, m.layers);
  return detail::checked_sum(
      "adapter parameters",
      detail::checked_mul(m.layers - start, count_prompt_adapter_layer_params(m, a, true), "adapter parameters"),
      detail::checked_mul(start, count_prompt_adapter_layer_params(m, a, false), "adapter parameters"),
      count_prompt_adapter_head_params(m, a));
}

// The targets a layer of `m` has: a GELU MLP has no gate projection to target.
constexpr unsigned lora_targets_present(const transformer_spec& m, const adapter_options& a) {
  return m.mlp == mlp_kind::swiglu ? a.lora_targets : a.lora_targets & ~lora_target::gate;
}

// Trainable LoRA parameters of one dense layer: r (in + out) per targeted projection (Hu et al.
// 2021, section 4.1), in/out as the layer's shapes give them (an MLP without a gate, GELU, has
// no gate projection to target).
constexpr std::int64_t count_lora_params(const transformer_spec& m, const adapter_options& a) {
  if (!a.lora()) return 0;
  namespace lt = lora_target;
  const std::int64_t h = m.hidden, q = m.q_dim(), kv = m.kv_dim(), f = m.ffn, r = a.lora_rank;
  const unsigned targets = lora_targets_present(m, a);
  std::int64_t sum = 0;
  const auto add = [&](unsigned bit, std::int64_t in, std::int64_t out) {
    if (targets & bit)
      sum = detail::checked_add(sum, detail::checked_mul(r, in + out, "LoRA parameters"), "LoRA parameters");
  };
  add(lt::q, h, q), add(lt::k, h, kv), add(lt::v, h, kv), add(lt::qkv, h, q + 2 * kv), add(lt::o, q, h);
  add(lt::gate, h, f), add(lt::up, h, f), add(lt::down, f, h);
  return sum;
}

}  // namespace trainperf
