// trainperf — transformer model specifications and exact parameter counts.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <string>
#include <string_view>

#include "error.hpp"
#include "names.hpp"

namespace trainperf {

// gelu: two matrices per MLP (up h->f, down f->h), as GPT-2/GPT-3.
// swiglu: three matrices (gate and up h->f, down f->h), as Llama (Shazeer 2020).
enum class mlp_kind { gelu, swiglu };
// layernorm: weight and bias (2h parameters); rmsnorm: weight only (h parameters).
enum class norm_kind { layernorm, rmsnorm };
// learned: a max_seq x hidden table (GPT-2); rotary: no parameters (RoFormer, Llama).
enum class position_kind { learned, rotary };
// The names users give them (the CLI's --mlp, --norm, --positions; the Python module's keywords).
inline constexpr named<mlp_kind> mlp_kind_names[] = {{"gelu", mlp_kind::gelu}, {"swiglu", mlp_kind::swiglu}};
inline constexpr named<norm_kind> norm_kind_names[] = {{"layernorm", norm_kind::layernorm},
                                                       {"rmsnorm", norm_kind::rmsnorm}};
inline constexpr named<position_kind> position_kind_names[] = {{"learned", position_kind::learned},
                                                               {"rotary", position_kind::rotary}};
// none: the vocabulary as published (Hugging Face checkpoints).
// megatron: padded to a multiple of pad_multiple x TP (Megatron-LM
// megatron/training/tokenizer/tokenizer.py::_vocab_size_with_padding, default 128).
enum class vocab_padding { none, megatron };
// Whether a part's weights are updated in training (LLaVA pretraining freezes the vision
// tower and the LLM and trains only the projector).
enum class train_mode { trained, frozen };
// LLaVA projector: one linear (LLaVA 1.0) or linear-GELU-linear ("mlp2x_gelu", LLaVA 1.5).
enum class projector_kind { linear, mlp2x_gelu };

// A set of layer indices below layer_set::capacity, for the layers a model lists by name
// (Qwen2-MoE's mlp_only_layers, the zeros of Megatron-LM's --moe-layer-freq list).
struct layer_set {
  static constexpr std::int64_t capacity = 256;  // the deepest published LLMs: 126 (Llama 3.1 405B), 128 (GPT 1T)
  std::array<std::uint64_t, capacity / 64> words{};

  [[nodiscard]] constexpr bool empty() const {
    for (const std::uint64_t w : words)
      if (w != 0) return false;
    return true;
  }
  [[nodiscard]] constexpr bool contains(std::int64_t i) const {
    return i >= 0 && i < capacity && (words[static_cast<std::size_t>(i / 64)] >> (i % 64) & 1U) != 0;
  }
  // Adds layer i; false (and no change) when i is outside [0, capacity).
  constexpr bool insert(std::int64_t i) {
    if (i < 0 || i >= capacity) return false;
    words[static_cast<std::size_t>(i / 64)] |= std::uint64_t{1} << (i % 64);
    return true;
  }
  // The largest member, -1 when empty.
  [[nodiscard]] constexpr std::int64_t last() const {
    for (std::size_t w = words.size(); w-- > 0;)
      if (words[w] != 0) return static_cast<std::int64_t>(w * 64 + 63) - std::countl_zero(words[w]);
    return -1;
  }
  [[nodiscard]] constexpr std::int64_t size() const {
    std::int64_t n = 0;
    for (const std::uint64_t w : words) n += std::popcount(w);
    return n;
  }
  constexpr bool operator==(const layer_set&) const = default;
};

// Mixture of experts. experts == 0 means a dense model.
struct moe_spec {
  std::int64_t experts = 0;
  std::int64_t top_k = 0;
  std::int64_t expert_ffn = 0;         // 0: the model's ffn
  std::int64_t shared_experts = 0;     // always-active experts (DeepSeekMoE, Qwen-MoE)
  std::int64_t shared_expert_ffn = 0;  // 0: expert_ffn
  std::int64_t layer_freq = 1;         // layer i is MoE iff i % layer_freq == layer_offset (Megatron moe_layer_freq)
  // Where in each period of layer_freq layers the MoE layer sits, in [0, layer_freq): 0 for
  // Megatron-LM's moe_layer_freq (layers 0, N, 2N, ...); layer_freq - 1 for transformers'
  // Qwen2-MoE decoder_sparse_step and Llama 4's interleave_moe_layer_step ((i + 1) % N == 0);
  // Jamba's expert_layer_offset.
  std::int64_t layer_offset = 0;
  // The first layers dense whatever layer_freq says (DeepSeek's and GLM-4.5's first_k_dense_replace,
  // Megatron-LM's moe_layer_freq list [0]*k + [1]*...): layer i is MoE iff i >= first_dense_layers
  // and i % layer_freq == layer_offset (transformers' DeepseekV3DecoderLayer, offset 0).
  std::int64_t first_dense_layers = 0;
  // Layers dense by name whatever the rules above say (transformers' Qwen2-MoE mlp_only_layers;
  // Megatron-LM's --moe-layer-freq given as a list, whose zeros these are).
  layer_set dense_layers{};
  // A sigmoid gate on the shared experts' output, a linear h -> 1 (Qwen-MoE: modeling_qwen2_moe.py
  // shared_expert_gate; Megatron-LM's --moe-shared-expert-gate).
  bool shared_expert_gate = false;
};

// A ViT vision tower (CLIP-style: conv patch embedding without bias, class token, learned
// positions, pre- and post-LayerNorm, GELU MLP, biased linears) plus the projector into
// the language model. layers == 0 means no vision tower.
struct vision_spec {
  std::int64_t layers = 0;
  std::int64_t hidden = 0;
  std::int64_t heads = 0;
  std::int64_t ffn = 0;
  std::int64_t image_size = 0;
  std::int64_t patch_size = 0;
  std::int64_t channels = 3;
  // Index of the layer whose output feeds the projector, counted like Python (-1 the last,
  // -2 the penultimate as in LLaVA 1.5); later layers are stored but never run.
  std::int64_t feature_layer = -1;
  projector_kind projector = projector_kind::mlp2x_gelu;
  train_mode tower_mode = train_mode::frozen;
  train_mode projector_mode = train_mode::trained;

  [[nodiscard]] constexpr bool present() const { return layers > 0; }
  [[nodiscard]] constexpr std::int64_t patches() const {
    return present() && patch_size > 0 ? (image_size / patch_size) * (image_size / patch_size) : 0;
  }
  // Tokens the tower runs on (patches + class token) and image tokens handed to the LLM
  // (patches only: LLaVA drops the class token).
  [[nodiscard]] constexpr std::int64_t tower_tokens() const { return patches() + 1; }
  [[nodiscard]] constexpr std::int64_t image_tokens() const { return patches(); }
  [[nodiscard]] constexpr std::int64_t layers_run() const {
    return feature_layer < 0 ? layers + 1 + feature_layer : feature_layer;
  }
};

struct transformer_spec {
  std::int64_t layers = 0;
  std::int64_t hidden = 0;
  std::int64_t heads = 0;
  std::int64_t kv_heads = 0;  // 0: = heads (multi-head); 1: multi-query; otherwise grouped-query
  std::int64_t head_dim = 0;  // 0: hidden / heads
  std::int64_t ffn = 0;
  std::int64_t vocab = 0;
  std::int64_t max_seq = 0;
  mlp_kind mlp = mlp_kind::swiglu;
  norm_kind norm = norm_kind::rmsnorm;
  bool linear_bias = false;      // biases on every linear (GPT-2/3) or none (Llama)
  bool qkv_bias = false;         // biases on the query, key and value projections only (Qwen, Qwen2, ChatGLM)
  bool tied_embeddings = false;  // output projection shares the token-embedding matrix
  position_kind positions = position_kind::rotary;
  vocab_padding padding = vocab_padding::none;
  std::int64_t pad_multiple = 128;
  moe_spec moe{};
  vision_spec vision{};
  train_mode llm_mode = train_mode::trained;

  [[nodiscard]] constexpr std::int64_t resolved_kv_heads() const { return kv_heads == 0 ? heads : kv_heads; }
  [[nodiscard]] constexpr std::int64_t resolved_head_dim() const {
    return head_dim == 0 ? (heads > 0 ? hidden / heads : 0) : head_dim;
  }
  [[nodiscard]] constexpr std::int64_t q_dim() const { return heads * resolved_head_dim(); }
  [[nodiscard]] constexpr std::int64_t kv_dim() const { return resolved_kv_heads() * resolved_head_dim(); }
  [[nodiscard]] constexpr bool is_moe() const { return moe.experts > 0; }
  // Layer i is MoE iff it is at layer_offset in its period, from first_dense_layers on, and not
  // listed dense.
  [[nodiscard]] constexpr bool is_moe_layer(std::int64_t i) const {
    return is_moe() && on_moe_period(i) && !moe.dense_layers.contains(i);
  }
  // MoE layers among layers [0, n): those the period rule makes MoE (a closed form), less the
  // listed dense layers among them.
  [[nodiscard]] constexpr std::int64_t moe_layers_below(std::int64_t n) const {
    if (!is_moe()) return 0;
    // Layers i < x with i % layer_freq == layer_offset.
    const auto at_offset = [&](std::int64_t x) {
      return x > moe.layer_offset ? detail::ceil_div(x - moe.layer_offset, moe.layer_freq) : std::int64_t{0};
    };
    std::int64_t listed = 0;
    for (std::int64_t i = 0, end = std::min(n, moe.dense_layers.last() + 1); i < end; ++i)
      listed += moe.dense_layers.contains(i) && on_moe_period(i);
    return at_offset(n) - at_offset(n < moe.first_dense_layers ? n : moe.first_dense_layers) - listed;
  }
  [[nodiscard]] constexpr std::int64_t moe_layers() const { return moe_layers_below(layers); }
  // A layer of each shape, so that per-layer figures are computed once per shape: the first MoE
  // layer and a dense one (0 when there is none; callers weigh a shape by its count). No loop over
  // the layers: at most one step per listed dense layer.
  [[nodiscard]] constexpr std::int64_t layer_of_shape(bool moe_layer) const {
    if (!is_moe()) return 0;
    const std::int64_t f = moe.layer_freq, first = moe.first_dense_layers;
    if (moe_layer) {
      // The first layer at the offset from first_dense_layers on, past the listed ones.
      std::int64_t i = first + ((moe.layer_offset - first % f) % f + f) % f;
      while (i < layers && moe.dense_layers.contains(i)) i += f;
      return i < layers ? i : 0;
    }
    // The first of: layer 0 when the first layers are dense, the first layer off the offset, the
    // first listed layer.
    std::int64_t dense = first > 0 ? 0 : f > 1 ? (moe.layer_offset != 0 ? 0 : 1) : layers;
    for (std::int64_t i = 0; i < dense && i <= moe.dense_layers.last(); ++i)
      if (moe.dense_layers.contains(i)) dense = i;
    return dense < layers ? dense : 0;
  }
  [[nodiscard]] constexpr std::int64_t resolved_expert_ffn() const {
    return moe.expert_ffn == 0 ? ffn : moe.expert_ffn;
  }
  [[nodiscard]] constexpr std::int64_t resolved_shared_expert_ffn() const {
    return moe.shared_expert_ffn == 0 ? resolved_expert_ffn() : moe.shared_expert_ffn;
  }
  // The embedding rows actually stored for tensor-parallel degree tp.
  [[nodiscard]] constexpr std::int64_t padded_vocab(std::int64_t tp = 1) const {
    return padding == vocab_padding::none
               ? vocab
               : detail::round_up(vocab, detail::checked_mul(pad_multiple, tp, "vocabulary padding"));
  }

 private:
  // Layer i is where the period rule puts a MoE layer: at layer_offset in its period, from
  // first_dense_layers on (the listed dense layers apart).
  [[nodiscard]] constexpr bool on_moe_period(std::int64_t i) const {
    return i >= moe.first_dense_layers && i % moe.layer_freq == moe.layer_offset;
  }
};

namespace reason {
inline void hidden_is_not_divisible_by_heads() {}
inline void heads_are_not_divisible_by_kv_heads() {}
inline void kv_heads_exceed_heads() {}
inline void moe_top_k_is_out_of_range() {}
inline void moe_first_dense_layers_out_of_range() {}
inline void moe_layer_offset_out_of_range() {}
inline void moe_dense_layers_out_of_range() {}
inline void moe_fields_set_on_a_dense_model() {}
inline void vision_image_size_is_not_divisible_by_patch_size() {}
inline void vision_hidden_is_not_divisible_by_heads() {}
inline void vision_feature_layer_is_out_of_range() {}
}  // namespace reason

// Checks a spec; throws config_error at run time, fails to compile in constant evaluation.
constexpr void validate(const transformer_spec& m) {
  using detail::require;
  using detail::require_dimension;
  using detail::str;
  require_dimension(m.layers, "layers");
  require_dimension(m.hidden, "hidden");
  require_dimension(m.heads, "heads");
  require_dimension(m.ffn, "ffn");
  require_dimension(m.vocab, "vocab");
  require_dimension(m.max_seq, "max_seq");
  require_dimension(m.pad_multiple, "pad_multiple");
  if (m.head_dim != 0) require_dimension(m.head_dim, "head_dim");
  require(m.head_dim != 0 || m.hidden % m.heads == 0, reason::hidden_is_not_divisible_by_heads, "heads", [&] {
    return "hidden " + str(m.hidden) + " is not divisible by heads " + str(m.heads) +
           "; change heads, or set head_dim explicitly (then q/k/v project to heads x head_dim)";
  });
  require_dimension(detail::checked_mul(m.heads, m.resolved_head_dim(), "heads x head_dim"), "heads x head_dim");
  if (m.kv_heads != 0) require_dimension(m.kv_heads, "kv_heads");
  require(m.resolved_kv_heads() <= m.heads, reason::kv_heads_exceed_heads, "kv_heads", [&] {
    return "kv_heads " + str(m.resolved_kv_heads()) + " exceeds heads " + str(m.heads) +
           "; kv_heads must be at most heads (heads for multi-head, 1 for multi-query)";
  });
  require(m.heads % m.resolved_kv_heads() == 0, reason::heads_are_not_divisible_by_kv_heads, "kv_heads", [&] {
    return "heads " + str(m.heads) + " are not divisible by kv_heads " + str(m.resolved_kv_heads()) +
           "; grouped-query attention needs heads = kv_heads x group size";
  });
  if (m.moe.experts != 0 || m.moe.top_k != 0) {
    require(m.moe.experts != 0, reason::moe_fields_set_on_a_dense_model, "experts", [&] {
      return "top_k " + str(m.moe.top_k) +
             " is set but experts is 0; set experts for a mixture-of-experts model, or clear top_k";
    });
    require_dimension(m.moe.experts, "experts");
    require(m.moe.top_k >= 1 && m.moe.top_k <= m.moe.experts, reason::moe_top_k_is_out_of_range, "top_k",
            [&] { return "top_k " + str(m.moe.top_k) + " must be between 1 and experts " + str(m.moe.experts); });
    require_dimension(m.moe.layer_freq, "moe_layer_freq");
    require(m.moe.layer_offset >= 0 && m.moe.layer_offset < m.moe.layer_freq, reason::moe_layer_offset_out_of_range,
            "moe_layer_offset", [&] {
              return "moe_layer_offset " + str(m.moe.layer_offset) + " must be in [0, layer frequency " +
                     str(m.moe.layer_freq) + "): the MoE layer's place in each period of layers; give a layer " +
                     "frequency above " + str(m.moe.layer_offset) + " or a smaller offset";
            });
    // No MoE layer at all: from the dense first layers, or from a period or offset past the last layer.
    require(m.moe.first_dense_layers >= 0, reason::moe_first_dense_layers_out_of_range, "first_dense_layers",
            [&] { return "first_dense_layers " + str(m.moe.first_dense_layers) + " must be >= 0 (0 for none)"; });
    // The period rule alone first, so that an error blames the field that leaves no MoE layer.
    transformer_spec unlisted = m;
    unlisted.moe.dense_layers = {};
    require(unlisted.moe_layers() > 0 || m.moe.first_dense_layers > 0, reason::moe_layer_offset_out_of_range,
            "moe_layer_offset", [&] {
              return "moe_layer_offset " + str(m.moe.layer_offset) + " at layer frequency " + str(m.moe.layer_freq) +
                     " leaves no MoE layer among " + str(m.layers) + " layers; give an offset below " + str(m.layers);
            });
    require(unlisted.moe_layers() > 0, reason::moe_first_dense_layers_out_of_range, "first_dense_layers", [&] {
      return "first_dense_layers " + str(m.moe.first_dense_layers) + " leaves no MoE layer among " + str(m.layers) +
             " layers at layer frequency " + str(m.moe.layer_freq) + ", offset " + str(m.moe.layer_offset) +
             "; give fewer dense layers (0 for none)";
    });
    require(m.moe.dense_layers.last() < m.layers, reason::moe_dense_layers_out_of_range, "moe_dense_layers", [&] {
      return "moe_dense_layers lists layer " + str(m.moe.dense_layers.last()) + " but the model has " + str(m.layers) +
             " layers (0 to " + str(m.layers - 1) + "); list layers below " + str(m.layers);
    });
    require(m.moe_layers() > 0, reason::moe_dense_layers_out_of_range, "moe_dense_layers", [&] {
      return "moe_dense_layers (" + str(m.moe.dense_layers.size()) + " layers) lists every MoE layer of the " +
             str(m.layers) + " layers; leave at least one layer MoE, or set experts to 0 for a dense model";
    });
    if (m.moe.expert_ffn != 0) require_dimension(m.moe.expert_ffn, "expert_ffn");
    if (m.moe.shared_experts != 0) require_dimension(m.moe.shared_experts, "shared_experts");
    if (m.moe.shared_expert_ffn != 0) require_dimension(m.moe.shared_expert_ffn, "shared_expert_ffn");
    require(m.moe.shared_expert_ffn == 0 || m.moe.shared_experts > 0, reason::moe_fields_set_on_a_dense_model,
            "shared_expert_ffn", [&] {
              return "shared_expert_ffn " + str(m.moe.shared_expert_ffn) +
                     " without shared experts (shared_experts 0); set shared_experts or clear shared_expert_ffn";
            });
  } else {
    require(m.moe.shared_experts == 0 && m.moe.expert_ffn == 0 && m.moe.shared_expert_ffn == 0 &&
                m.moe.layer_freq == 1 && m.moe.layer_offset == 0 && m.moe.first_dense_layers == 0 &&
                m.moe.dense_layers.empty(),
            reason::moe_fields_set_on_a_dense_model, "experts", [&] {
              std::string set;
              for (const auto& [name, value] :
                   {std::pair{"expert_ffn", m.moe.expert_ffn}, std::pair{"shared_experts", m.moe.shared_experts},
                    std::pair{"shared_expert_ffn", m.moe.shared_expert_ffn},
                    std::pair{"moe_layer_freq", m.moe.layer_freq == 1 ? 0 : m.moe.layer_freq},
                    std::pair{"moe_layer_offset", m.moe.layer_offset},
                    std::pair{"first_dense_layers", m.moe.first_dense_layers},
                    std::pair{"moe_dense_layers (count)", m.moe.dense_layers.size()}})
                if (value != 0) set += (set.empty() ? "" : ", ") + std::string(name) + " " + str(value);
              return set +
                     " set but experts is 0; set experts and top_k for a mixture-of-experts model, or clear "
                     "the expert fields";
            });
  }
  if (m.vision.present()) {
    const auto& v = m.vision;
    require_dimension(v.hidden, "vision.hidden");
    require_dimension(v.heads, "vision.heads");
    require_dimension(v.ffn, "vision.ffn");
    require_dimension(v.image_size, "vision.image_size");
    require_dimension(v.patch_size, "vision.patch_size");
    require_dimension(v.channels, "vision.channels");
    require(v.image_size % v.patch_size == 0, reason::vision_image_size_is_not_divisible_by_patch_size,
            "vision.patch_size", [&] {
              return "vision image_size " + str(v.image_size) + " is not divisible by patch_size " + str(v.patch_size);
            });
    require(v.hidden % v.heads == 0, reason::vision_hidden_is_not_divisible_by_heads, "vision.heads",
            [&] { return "vision hidden " + str(v.hidden) + " is not divisible by vision heads " + str(v.heads); });
    require(v.feature_layer != 0 && v.feature_layer >= -v.layers && v.feature_layer <= v.layers,
            reason::vision_feature_layer_is_out_of_range, "vision.feature_layer", [&] {
              return "vision feature_layer " + str(v.feature_layer) + " is out of range for " + str(v.layers) +
                     " layers; use 1.." + str(v.layers) + " or -" + str(v.layers) + "..-1";
            });
  }
}

// Parameters of one transformer layer, by component.
struct layer_params {
  std::int64_t attention = 0;       // q, k, v, o (and their biases)
  std::int64_t mlp = 0;             // dense MLP (0 in an MoE layer)
  std::int64_t router = 0;          // MoE gate (and the shared experts' gate)
  std::int64_t routed_experts = 0;  // all routed experts of the layer
  std::int64_t shared_experts = 0;
  std::int64_t norms = 0;  // the two pre-norms
  [[nodiscard]] constexpr std::int64_t total() const {
    return detail::checked_sum("layer parameters", attention, mlp, router, routed_experts, shared_experts, norms);
  }
};

// Parameters of a whole model, by component. "embedding" follows Kaplan et al. 2020
// (arXiv:2001.08361, section 2.1: N excludes "all vocabulary and positional embeddings"):
// token embedding, learned positions and an untied output projection.
struct param_counts {
  std::int64_t token_embedding = 0;
  std::int64_t position_embedding = 0;
  std::int64_t output = 0;  // untied output projection (0 when tied)
  std::int64_t attention = 0;
  std::int64_t mlp = 0;
  std::int64_t router = 0;
  std::int64_t routed_experts = 0;
  std::int64_t shared_experts = 0;
  std::int64_t norms = 0;  // every layer's norms and the final norm
  std::int64_t vision = 0;
  std::int64_t projector = 0;

  [[nodiscard]] constexpr std::int64_t embedding() const {
    return detail::checked_sum("embedding parameters", token_embedding, position_embedding, output);
  }
  [[nodiscard]] constexpr std::int64_t layers() const {
    return detail::checked_sum("layer parameters", attention, mlp, router, routed_experts, shared_experts, norms);
  }
  [[nodiscard]] constexpr std::int64_t language_model() const {
    return detail::checked_sum("parameters", embedding(), layers());
  }
  [[nodiscard]] constexpr std::int64_t total() const {
    return detail::checked_sum("parameters", language_model(), vision, projector);
  }
  [[nodiscard]] constexpr std::int64_t non_embedding() const { return total() - embedding(); }
};

namespace detail {
using i64 = std::int64_t;
constexpr i64 norm_params(norm_kind k, i64 h) { return k == norm_kind::layernorm ? 2 * h : h; }
constexpr i64 mlp_params(mlp_kind k, i64 h, i64 f, bool bias) {
  const i64 mats = k == mlp_kind::swiglu ? 3 : 2;
  const i64 in_bias = k == mlp_kind::swiglu ? 2 * f : f;
  return checked_sum("mlp parameters", checked_mul(mats * h, f, "mlp parameters"), bias ? in_bias + h : 0);
}
}  // namespace detail

// Parameters of layer i (0-based); MoE layers differ from dense ones.
constexpr layer_params count_layer_params(const transformer_spec& m, std::int64_t i) {
  using namespace detail;
  const i64 h = m.hidden, q = m.q_dim(), kv = m.kv_dim();
  layer_params p;
  // Every size is below 2^31 (validate), so q + 2 kv + h and 2 x norms cannot overflow; products and
  // sums of products are checked.
  p.attention = checked_sum("attention parameters", checked_mul(h, q + 2 * kv, "attention parameters"),
                            checked_mul(q, h, "attention parameters"),
                            m.linear_bias ? q + 2 * kv + h
                            : m.qkv_bias  ? q + 2 * kv
                                          : 0);
  p.norms = 2 * norm_params(m.norm, h);
  if (m.is_moe_layer(i)) {
    p.router = checked_mul(h, m.moe.experts + (m.moe.shared_expert_gate ? 1 : 0), "router parameters");
    p.routed_experts =
        checked_mul(m.moe.experts, mlp_params(m.mlp, h, m.resolved_expert_ffn(), m.linear_bias), "expert parameters");
    p.shared_experts = checked_mul(
        m.moe.shared_experts, mlp_params(m.mlp, h, m.resolved_shared_expert_ffn(), m.linear_bias), "expert parameters");
  } else {
    p.mlp = mlp_params(m.mlp, h, m.ffn, m.linear_bias);
  }
  return p;
}

// The parameters of layer params p that every tensor-parallel rank keeps whole: the two norms, the
// router and the row-parallel projections' biases (attention output, MLP down), which Megatron-LM's
// RowParallelLinear adds after its all-reduce (megatron/core/tensor_parallel/layers.py); routed
// experts are left out (they split over ep x etp), the rest splits over tp.
constexpr std::int64_t tp_replicated_params(const transformer_spec& m, const layer_params& p) {
  // One on the attention output, one per MLP: the dense one, or each shared expert (routed apart).
  const std::int64_t row_biases = 1 + (p.mlp > 0 ? 1 : p.shared_experts > 0 ? m.moe.shared_experts : 0);
  return p.norms + p.router + (m.linear_bias ? m.hidden * row_biases : 0);
}

// One tensor-parallel rank's share of layer params p, routed experts apart.
constexpr double layer_params_per_tp_rank(const transformer_spec& m, const layer_params& p, std::int64_t tp) {
  const auto whole = static_cast<double>(tp_replicated_params(m, p));
  return (static_cast<double>(p.total() - p.routed_experts) - whole) / static_cast<double>(tp) + whole;
}

// One tensor-parallel rank's share of the embeddings: the token embedding split over tp
// (VocabParallelEmbedding), learned positions whole.
constexpr double embedding_params_per_tp_rank(const param_counts& c, std::int64_t tp) {
  return static_cast<double>(c.token_embedding) / static_cast<double>(tp) + static_cast<double>(c.position_embedding);
}

// Vision tower parameters (CLIP ViT layout, see vision_spec).
constexpr std::int64_t count_vision_tower_params(const vision_spec& v) {
  using namespace detail;
  if (!v.present()) return 0;
  const i64 h = v.hidden;
  const i64 patch_embed =
      checked_mul(checked_mul(checked_mul(v.channels, v.patch_size, "vision"), v.patch_size, "vision"), h,
                  "vision parameters");  // conv, no bias
  const i64 class_and_positions = checked_sum("vision parameters", h, checked_mul(v.tower_tokens(), h, "vision"));
  const i64 pre_post_norms = 2 * 2 * h;
  const i64 layer = checked_sum("vision parameters", checked_mul(4, checked_mul(h, h, "vision") + h, "vision"),
                                2 * 2 * h, mlp_params(mlp_kind::gelu, h, v.ffn, true));
  return checked_sum("vision parameters", patch_embed, class_and_positions, pre_post_norms,
                     checked_mul(v.layers, layer, "vision parameters"));
}

constexpr std::int64_t count_projector_params(const transformer_spec& m) {
  if (!m.vision.present()) return 0;
  const std::int64_t vh = m.vision.hidden, h = m.hidden;
  const std::int64_t first = detail::checked_mul(vh, h, "projector parameters") + h;  // < 2^62 + 2^31
  return m.vision.projector == projector_kind::linear
             ? first
             : detail::checked_sum("projector parameters", first, detail::checked_mul(h, h, "projector parameters"), h);
}

// Exact parameter count of the model as stored (vocabulary padded for tensor-parallel
// degree tp when the spec's padding rule says so).
constexpr param_counts count_params(const transformer_spec& m, std::int64_t tp = 1) {
  using namespace detail;
  validate(m);
  require_positive(tp, "tp");
  param_counts c;
  const i64 v = m.padded_vocab(tp);
  c.token_embedding = checked_mul(v, m.hidden, "embedding parameters");
  c.position_embedding =
      m.positions == position_kind::learned ? checked_mul(m.max_seq, m.hidden, "position parameters") : 0;
  c.output = m.tied_embeddings ? 0 : c.token_embedding;
  // Layers come in two shapes at most: MoE layers (i % layer_freq == layer_offset) and dense ones.
  const i64 moe_layers = m.moe_layers(), dense_layers = m.layers - moe_layers;
  const auto add = [&](const layer_params& l, i64 n) {
    c.attention = checked_add(c.attention, checked_mul(l.attention, n, "attention parameters"), "attention parameters");
    c.mlp = checked_add(c.mlp, checked_mul(l.mlp, n, "mlp parameters"), "mlp parameters");
    c.router = checked_add(c.router, checked_mul(l.router, n, "router parameters"), "router parameters");
    c.routed_experts =
        checked_add(c.routed_experts, checked_mul(l.routed_experts, n, "expert parameters"), "expert parameters");
    c.shared_experts =
        checked_add(c.shared_experts, checked_mul(l.shared_experts, n, "expert parameters"), "expert parameters");
    c.norms = checked_add(c.norms, checked_mul(l.norms, n, "norm parameters"), "norm parameters");
  };
  if (moe_layers > 0) add(count_layer_params(m, m.layer_of_shape(true)), moe_layers);
  if (dense_layers > 0) add(count_layer_params(m, m.layer_of_shape(false)), dense_layers);
  c.norms += norm_params(m.norm, m.hidden);  // final norm
  c.vision = count_vision_tower_params(m.vision);
  c.projector = count_projector_params(m);
  return c;
}

// Parameters that touch one token in a forward pass: with MoE, only top_k routed experts
// per MoE layer (Mixtral's "active parameters").
constexpr std::int64_t count_active_params(const transformer_spec& m, std::int64_t tp = 1) {
  const param_counts c = count_params(m, tp);
  if (!m.is_moe()) return c.total();
  return c.total() - c.routed_experts / m.moe.experts * (m.moe.experts - m.moe.top_k);
}

}  // namespace trainperf
