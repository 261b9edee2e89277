// trainperf — training FLOPs under named conventions, and the recomputation that turns
// model FLOPs (MFU) into hardware FLOPs (HFU).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "error.hpp"
#include "model.hpp"

namespace trainperf {

// Which formula. Each is someone's published convention; none is "the" FLOPs.
//   nominal  — k x N_nominal per token (benchmark suites: FlagPerf's "6 x 70e9"; k = 2 when
//              only a part at the input trains and the rest is frozen, or for inference).
//   palm     — 6N + 12·L·H·Q·T per token, N all parameters, full (non-causal) attention
//              (Chowdhery et al. 2022, arXiv:2204.02311, appendix B).
//   megatron — per-GEMM count: Q/K/V/O with GQA, attention core with query heads, SwiGLU or
//              GELU MLP, routed and shared experts, logits over the padded vocabulary; x3 for
//              forward + both backward GEMMs (Megatron-LM megatron/training/training.py,
//              num_floating_point_operations); causal halving of the core is an option.
//   kaplan   — 6N + 6·L·C·T per token, N non-embedding parameters, C = heads x head_dim
//              (Kaplan et al. 2020, arXiv:2001.08361, table 1; llm.c uses it with N = all).
enum class flops_convention { nominal, palm, megatron, kaplan };

// Activation recomputation, which HFU counts and MFU does not.
//   selective — the attention core is recomputed; charged as Korthikanti et al. 2022
//               (arXiv:2205.05198) equation 8 does: the core's term is counted twice.
//   full      — every transformer layer runs its forward again (Narayanan et al. 2021,
//               arXiv:2104.04473, equation 3: 4 forwards of the layers, 3 of the logits).
enum class recompute { none, selective, full };
// The names users give them (the CLI's --convention and --recompute; the Python module's keywords).
inline constexpr named<flops_convention> flops_convention_names[] = {{"nominal", flops_convention::nominal},
                                                                     {"palm", flops_convention::palm},
                                                                     {"megatron", flops_convention::megatron},
                                                                     {"kaplan", flops_convention::kaplan}};
inline constexpr named<recompute> recompute_names[] = {
    {"none", recompute::none}, {"selective", recompute::selective}, {"full", recompute::full}};

constexpr std::string_view to_string(flops_convention c) {
  switch (c) {
    case flops_convention::nominal:
      return "nominal";
    case flops_convention::palm:
      return "palm";
    case flops_convention::megatron:
      return "megatron";
    case flops_convention::kaplan:
      return "kaplan";
  }
  return "?";
}
constexpr std::string_view to_string(recompute r) {
  switch (r) {
    case recompute::none:
      return "none";
    case recompute::selective:
      return "selective";
    case recompute::full:
      return "full";
  }
  return "?";
}

struct flops_options {
  flops_convention convention = flops_convention::megatron;
  std::int64_t seq = 0;  // tokens per sequence (for a multimodal model: image tokens included)
  bool causal = false;   // megatron only: count half of the s x s attention core
  recompute recomputation = recompute::none;
  // N for nominal, palm and kaplan; 0 takes the convention's default (nominal: the preset's
  // nominal size, which the caller passes here, else the exact total; palm: exact total;
  // kaplan: exact non-embedding count).
  double params = 0;
  // nominal's multiplier; 0 takes 6, or 2 when the language model is frozen (the
  // benchmark-suite shortcut for LLaVA pretraining, where only the projector trains).
  double k = 0;
  std::int64_t tp = 1;                    // vocabulary padding of the logits (megatron)
  std::int64_t images_per_sequence = -1;  // -1: one per sequence when the model has a vision tower
};

// FLOPs of one sequence of `seq` tokens.
//   forward  — one forward pass of everything that runs.
//   model    — training: what MFU counts (trained parts forward + both backward GEMMs;
//              frozen parts forward, plus the activation-gradient GEMM when a trained part
//              lies upstream of them).
//   hardware — model plus recomputation: what HFU counts.
struct flops_count {
  std::int64_t seq = 0;
  double forward = 0;
  double model = 0;
  double hardware = 0;

  [[nodiscard]] constexpr double forward_per_token() const { return forward / static_cast<double>(seq); }
  [[nodiscard]] constexpr double model_per_token() const { return model / static_cast<double>(seq); }
  [[nodiscard]] constexpr double hardware_per_token() const { return hardware / static_cast<double>(seq); }
  // Training (model) FLOPs of a step of `sequences` sequences (a batch_config's gbs).
  [[nodiscard]] constexpr double model_per_step(std::int64_t sequences) const {
    return model * static_cast<double>(sequences);
  }
};

// Forward FLOPs of one sequence by GEMM group (megatron convention).
struct forward_breakdown {
  double attention_projections = 0;  // Q, K, V, O over all layers
  double attention_core = 0;         // Q·K^T and P·V over all layers (halved when causal)
  double mlp = 0;                    // dense MLPs, routed experts (top-k) and shared experts
  double logits = 0;                 // output layer over the padded vocabulary
  double vision = 0;                 // vision tower, layers that run (LLaVA reads layer -2)
  double vision_core = 0;            // of which the tower's attention core
  double projector = 0;
  [[nodiscard]] constexpr double language_model() const {
    return attention_projections + attention_core + mlp + logits;
  }
  [[nodiscard]] constexpr double total() const { return language_model() + vision + projector; }
};

namespace reason {
inline void causal_halving_applies_to_the_megatron_convention_only() {}
inline void flops_parameter_override_must_be_positive() {}
inline void vision_tokens_exceed_the_sequence() {}
inline void sequence_exceeds_the_learned_position_table() {}
}  // namespace reason

namespace detail {

constexpr double mlp_matrices(mlp_kind k) { return k == mlp_kind::swiglu ? 3.0 : 2.0; }

constexpr std::int64_t images_per_sequence(const transformer_spec& m, const flops_options& o) {
  if (!m.vision.present()) return 0;
  return o.images_per_sequence < 0 ? 1 : o.images_per_sequence;
}

}  // namespace detail

// The parameter count N that nominal, palm and kaplan multiply: the override when given,
// else all parameters (nominal, palm) or the non-embedding ones (kaplan); 0 for megatron,
// which counts GEMMs from the shapes.
constexpr double convention_params(const transformer_spec& m, const flops_options& o) {
  if (o.convention == flops_convention::megatron) return 0;
  if (o.params > 0) return o.params;
  const param_counts pc = count_params(m, o.tp);
  return static_cast<double>(o.convention == flops_convention::kaplan ? pc.non_embedding() : pc.total());
}

// Megatron-style per-GEMM forward FLOPs of one sequence (2 FLOPs per multiply-add).
constexpr forward_breakdown megatron_forward(const transformer_spec& m, std::int64_t seq, bool causal = false,
                                             std::int64_t tp = 1, std::int64_t images = 0) {
  validate(m);
  detail::require_positive(seq, "seq");
  const double s = static_cast<double>(seq), h = static_cast<double>(m.hidden);
  const double q = static_cast<double>(m.q_dim()), kv = static_cast<double>(m.kv_dim());
  const double mats = detail::mlp_matrices(m.mlp);
  forward_breakdown f;
  const double layers = static_cast<double>(m.layers), moe_layers = static_cast<double>(m.moe_layers());
  f.attention_projections = layers * (2 * s * h * (q + 2 * kv) + 2 * s * q * h);
  f.attention_core = layers * (causal ? 0.5 : 1.0) * 4 * s * s * q;  // Q·K^T and P·V, query heads
  // Only top_k routed experts touch a token; the router GEMM (2·h·experts per token) is left
  // out, as Megatron-LM does (under 0.01% of a layer).
  const double moe_width =
      static_cast<double>(m.moe.top_k) * static_cast<double>(m.resolved_expert_ffn()) +
      static_cast<double>(m.moe.shared_experts) * static_cast<double>(m.resolved_shared_expert_ffn());
  f.mlp = 2 * s * h * mats * (moe_layers * moe_width + (layers - moe_layers) * static_cast<double>(m.ffn));
  f.logits = 2 * s * h * static_cast<double>(m.padded_vocab(tp));
  if (images > 0) {
    const vision_spec& v = m.vision;
    const double n = static_cast<double>(images);
    const double t = static_cast<double>(v.tower_tokens()), vh = static_cast<double>(v.hidden);
    const double layers = static_cast<double>(v.layers_run());
    const double patch =
        2 * static_cast<double>(v.patches()) * static_cast<double>(v.channels * v.patch_size * v.patch_size) * vh;
    const double per_layer_gemms = 2 * t * vh * 4 * vh + 2 * t * vh * static_cast<double>(v.ffn) * 2;
    f.vision_core = n * layers * 4 * t * t * vh;  // the tower attends bidirectionally
    f.vision = n * (patch + layers * per_layer_gemms) + f.vision_core;
    const double it = static_cast<double>(v.image_tokens());
    f.projector = n * 2 * it * (vh * h + (v.projector == projector_kind::mlp2x_gelu ? h * h : 0));
  }
  return f;
}

// The FLOPs of one training sequence under the chosen convention.
constexpr flops_count count_flops(const transformer_spec& m, const flops_options& o) {
  using detail::require;
  validate(m);
  detail::require_positive(o.seq, "seq");
  require(!o.causal || o.convention == flops_convention::megatron,
          reason::causal_halving_applies_to_the_megatron_convention_only, "causal", [&] {
            return "causal halving applies to the megatron convention only; " + std::string(to_string(o.convention)) +
                   "'s attention term is defined without it (drop --causal or use --convention megatron)";
          });
  require(o.params >= 0 && detail::is_finite(o.params) && o.k >= 0 && detail::is_finite(o.k),
          reason::flops_parameter_override_must_be_positive, "params", [&] {
            return "params and k must be positive finite numbers (0 takes the default), got params " +
                   std::to_string(o.params) + ", k " + std::to_string(o.k);
          });
  require(m.positions != position_kind::learned || o.seq <= m.max_seq,
          reason::sequence_exceeds_the_learned_position_table, "seq", [&] {
            return "seq " + detail::str(o.seq) + " exceeds the model's learned position table of " +
                   detail::str(m.max_seq) + " (max_seq); use a sequence of at most " + detail::str(m.max_seq);
          });
  const std::int64_t images = detail::images_per_sequence(m, o);
  require(images * m.vision.image_tokens() <= o.seq, reason::vision_tokens_exceed_the_sequence, "seq", [&] {
    return "seq " + detail::str(o.seq) + " is shorter than the " + detail::str(images * m.vision.image_tokens()) +
           " image tokens per sequence; the sequence length counts image tokens too";
  });
  const double s = static_cast<double>(o.seq);
  const bool llm_trained = m.llm_mode == train_mode::trained;
  flops_count c{o.seq, 0, 0, 0};

  if (o.convention == flops_convention::megatron) {
    const forward_breakdown f = megatron_forward(m, o.seq, o.causal, o.tp, images);
    // Parts in data-flow order: vision tower -> projector -> language model. A part pays
    // forward; plus the activation-gradient GEMMs when it or anything upstream trains; plus
    // the weight-gradient GEMMs when it trains itself.
    struct part {
      double forward, core, recompute_full;
      bool trained;
    };
    const part parts[] = {
        {f.vision, f.vision_core, f.vision, m.vision.tower_mode == train_mode::trained},
        {f.projector, 0, 0, m.vision.projector_mode == train_mode::trained},
        {f.language_model(), f.attention_core, f.language_model() - f.logits, llm_trained},
    };
    bool upstream_trained = false;
    for (const part& p : parts) {
      const bool backward = p.trained || upstream_trained;
      const double mult = 1.0 + (backward ? 1.0 : 0.0) + (p.trained ? 1.0 : 0.0);
      c.forward += p.forward;
      c.model += mult * p.forward;
      if (backward) {
        // Korthikanti eq. 8: selective recomputation counts the core's model term twice.
        const double redo = o.recomputation == recompute::full        ? p.recompute_full
                            : o.recomputation == recompute::selective ? (mult * p.core)
                                                                      : 0.0;
        c.hardware += redo;
      }
      upstream_trained = upstream_trained || p.trained;
    }
    c.hardware += c.model;
    return c;
  }

  const double n = convention_params(m, o);
  const double layers = static_cast<double>(m.layers), heads = static_cast<double>(m.heads);
  const double head_dim = static_cast<double>(m.resolved_head_dim());
  if (o.convention == flops_convention::nominal) {
    const double k = o.k > 0 ? o.k : (llm_trained ? 6.0 : 2.0);
    c.forward = 2 * n * s;
    c.model = k * n * s;
    c.hardware = c.model + (o.recomputation == recompute::full ? k / 3 * n * s : 0.0);
    return c;
  }
  if (o.convention == flops_convention::palm) {
    const double attn = layers * heads * head_dim * s;  // L·H·Q·T
    c.forward = (2 * n + 4 * attn) * s;
    c.model = (6 * n + 12 * attn) * s;
    c.hardware = c.model + (o.recomputation == recompute::full        ? c.forward
                            : o.recomputation == recompute::selective ? 12 * attn * s
                                                                      : 0.0);
    return c;
  }
  // kaplan
  const double attn = layers * heads * head_dim * s;  // L·C·T with C = d_attn
  c.forward = (2 * n + 2 * attn) * s;
  c.model = (6 * n + 6 * attn) * s;
  c.hardware = c.model + (o.recomputation == recompute::full        ? c.forward
                          : o.recomputation == recompute::selective ? 6 * attn * s
                                                                    : 0.0);
  return c;
}

}  // namespace trainperf
