// trainperf — partitioners: which layers each pipeline stage (and virtual chunk) owns, the
// tensor-parallel shard shapes, ZeRO flat-buffer shards, the samples each data-parallel rank
// reads, and context-parallel sequence chunks.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"
#include "model.hpp"

namespace trainperf {

namespace reason {
inline void layers_do_not_split_over_the_stages() {}
inline void uneven_stages_with_virtual_pipeline() {}
inline void index_out_of_range() {}
inline void batch_does_not_split_over_data_parallel_ranks() {}
inline void embedding_as_layer_with_uneven_stages() {}
}  // namespace reason

// ---- layers -> pipeline stages ------------------------------------------------------------

// The layers one (stage, chunk) owns: [first_layer, first_layer + layers).
struct stage_layers {
  std::int64_t stage = 0;
  std::int64_t chunk = 0;  // virtual pipeline chunk (model chunk) on that stage
  std::int64_t first_layer = 0;
  std::int64_t layers = 0;
  bool embedding = false;  // the input embedding lives here (first stage, first chunk)
  bool output = false;     // the output layer and the loss live here (last stage, last chunk)
};

// Every stage's own layer count, listed (Megatron-LM's --pipeline-model-parallel-layout with one
// entry per stage, DeepSpeed's PipelineModule partition, PaddleNLP's segments): at most
// max_listed_stages stages; count 0 means no list.
inline constexpr std::size_t max_listed_stages = 128;
struct stage_layer_list {
  std::array<std::int32_t, max_listed_stages> layers{};
  std::int32_t count = 0;
  [[nodiscard]] constexpr bool given() const { return count > 0; }
  [[nodiscard]] constexpr std::int64_t sum() const {
    std::int64_t total = 0;
    for (std::int32_t i = 0; i < count; ++i) total += layers[static_cast<std::size_t>(i)];
    return total;
  }
};

struct layer_split {
  std::int64_t pp = 1;
  std::int64_t vpp = 1;
  // Megatron-LM's decoder_first_pipeline_num_layers / decoder_last_pipeline_num_layers: the
  // first or last stage's own count (0: even split); the rest share the other layers evenly.
  std::int64_t first_stage_layers = 0;
  std::int64_t last_stage_layers = 0;
  stage_layer_list listed{};  // every stage's count, instead of the above
  // Megatron-LM's account_for_embedding_in_pipeline_split / account_for_loss_in_pipeline_split
  // (NeMo 2's large-model recipes): the embedding, or the output layer with the loss, counts as
  // one more layer in the even split, so the first (last) chunk builds one layer fewer
  // (megatron/core/transformer/transformer_block.py, get_num_layers_to_build).
  bool embedding_as_layer = false;
  bool loss_as_layer = false;
  // Layers the even split divides: the model's plus the embedding and loss where they count.
  [[nodiscard]] constexpr std::int64_t split_layers(std::int64_t layers) const {
    return layers + (embedding_as_layer ? 1 : 0) + (loss_as_layer ? 1 : 0);
  }
  [[nodiscard]] constexpr bool counts_embedding_or_loss() const { return embedding_as_layer || loss_as_layer; }
};

// Why `layers` do not split evenly over the pp x vpp chunks, and what would (partition_layers
// and validate(parallel_config) refuse with it).
inline std::string describe_uneven_split(std::int64_t layers, const layer_split& s) {
  using detail::str;
  const std::int64_t chunks = s.pp * s.vpp, total = s.split_layers(layers);
  std::string m =
      "layers " + str(layers) +
      (s.counts_embedding_or_loss() ? " (" + str(total) + " counting the embedding or loss as layers)" : "") +
      " are not divisible by pp " + str(s.pp) + " x vpp " + str(s.vpp) + " = " + str(chunks) +
      "; pick pp x vpp dividing " + str(total);
  if (s.counts_embedding_or_loss()) return m;
  if (s.vpp == 1) m += ", give the first/last stages their own layer counts (first_stage_layers, last_stage_layers)";
  if ((layers + 1) % chunks == 0)
    m += ", or count the embedding as a layer (" + str(layers + 1) +
         ": embedding_as_layer, --account-for-embedding-in-pipeline-split)";
  else if ((layers + 2) % chunks == 0)
    m += ", or count the embedding and the loss as layers (" + str(layers + 2) +
         ": embedding_as_layer and loss_as_layer, --account-for-embedding-in-pipeline-split "
         "--account-for-loss-in-pipeline-split)";
  return m;
}

// The field and message refusing the embedding or loss counted as a layer beside first/last or
// listed stage counts.
constexpr std::string_view counted_split_field(const layer_split& s) {
  return s.embedding_as_layer ? "embedding_as_layer" : "loss_as_layer";
}
inline std::string describe_counted_with_uneven_stages(const layer_split& s) {
  return std::string(counted_split_field(s)) + " with " +
         (s.listed.given() ? std::string("listed stage layers")
                           : "first/last stage layers " + detail::str(s.first_stage_layers) + "/" +
                                 detail::str(s.last_stage_layers)) +
         ": Megatron-LM counts the embedding and loss in an even split only; drop the stage counts or "
         "--account-for-embedding/loss-in-pipeline-split";
}

// Whether a listed split is usable for `layers` layers: one count per stage, none negative,
// adding up to the layers, no first/last counts beside it, no virtual stages.
constexpr bool listed_stages_split(std::int64_t layers, const layer_split& s) {
  if (!s.listed.given()) return true;
  for (std::int32_t i = 0; i < s.listed.count; ++i)
    if (s.listed.layers[static_cast<std::size_t>(i)] < 0) return false;
  return s.listed.count == s.pp && s.listed.sum() == layers && s.first_stage_layers == 0 && s.last_stage_layers == 0 &&
         s.vpp == 1;
}
inline std::string describe_listed_stages(std::int64_t layers, const layer_split& s) {
  std::string list;
  for (std::int32_t i = 0; i < s.listed.count; ++i)
    list += (i ? "," : "") + detail::str(s.listed.layers[static_cast<std::size_t>(i)]);
  return "stage layers " + list + " (" + detail::str(s.listed.count) + " stages, " + detail::str(s.listed.sum()) +
         " layers) for pp " + detail::str(s.pp) + " and " + detail::str(layers) +
         " layers: give one non-negative count per stage adding up to the layers, without first/last stage "
         "counts or virtual stages";
}

// Whether uneven first/last stages leave the other stages an even share: the layers left after
// the first and last stages' own counts split evenly over the other stages (checked by
// partition_layers and by validate(parallel_config)).
constexpr bool uneven_stages_split(std::int64_t layers, const layer_split& s) {
  const std::int64_t first = s.first_stage_layers, last = s.pp > 1 ? s.last_stage_layers : 0;
  const std::int64_t middle_stages = s.pp - (first > 0 ? 1 : 0) - (last > 0 ? 1 : 0);
  const std::int64_t middle_layers = layers - first - last;
  return first >= 0 && last >= 0 && middle_layers >= 0 &&
         (middle_stages == 0 ? middle_layers == 0 : middle_layers % middle_stages == 0);
}

// Every (stage, chunk) with its layers, ordered by stage then chunk. With virtual stages,
// chunk c of stage s holds the (c x pp + s)-th block of layers / (pp x vpp) consecutive
// layers (Megatron-LM's interleaved assignment), so a micro-batch visits stage 0..pp-1 for
// chunk 0, then again for chunk 1, and so on.
constexpr std::vector<stage_layers> partition_layers(std::int64_t layers, const layer_split& s) {
  using detail::str;
  detail::require_positive(layers, "layers");
  detail::require_positive(s.pp, "pp");
  detail::require_positive(s.vpp, "vpp");
  const bool uneven = s.first_stage_layers > 0 || s.last_stage_layers > 0;
  detail::require(!s.counts_embedding_or_loss() || (!uneven && !s.listed.given()),
                  reason::embedding_as_layer_with_uneven_stages, counted_split_field(s),
                  [&] { return describe_counted_with_uneven_stages(s); });
  std::vector<stage_layers> out;
  if (!uneven && !s.listed.given()) {
    const std::int64_t blocks = s.pp * s.vpp, total = s.split_layers(layers);
    detail::require(total % blocks == 0, reason::layers_do_not_split_over_the_stages, "pp",
                    [&] { return describe_uneven_split(layers, s); });
    const std::int64_t per = total / blocks, skip = s.embedding_as_layer ? 1 : 0;
    for (std::int64_t st = 0; st < s.pp; ++st)
      for (std::int64_t c = 0; c < s.vpp; ++c) {
        const std::int64_t k = c * s.pp + st;  // the chunk's place in the model
        const bool first = k == 0, last = k == blocks - 1;
        const std::int64_t n = per - (first ? skip : 0) - (last && s.loss_as_layer ? 1 : 0);
        out.push_back({st, c, first ? 0 : k * per - skip, n, first, last});
      }
    return out;
  }
  // Stages of their own sizes, one chunk each: listed, or the first/last counts with the other
  // stages sharing the rest evenly.
  const std::int64_t first = s.first_stage_layers, last = s.pp > 1 ? s.last_stage_layers : 0;
  const std::int64_t middle_stages = s.pp - (first > 0 ? 1 : 0) - (last > 0 ? 1 : 0);
  const std::int64_t middle_layers = layers - first - last;
  if (s.listed.given()) {
    detail::require(listed_stages_split(layers, s), reason::layers_do_not_split_over_the_stages, "stage_layers",
                    [&] { return describe_listed_stages(layers, s); });
  } else {
    detail::require(s.vpp == 1, reason::uneven_stages_with_virtual_pipeline, "vpp", [&] {
      return std::string("uneven first/last stages are supported without virtual stages only; set vpp 1");
    });
    detail::require(uneven_stages_split(layers, s), reason::layers_do_not_split_over_the_stages, "pp", [&] {
      return "after " + str(first) + " layers on the first stage and " + str(last) + " on the last, " +
             str(middle_layers) + " layers do not split evenly over the " + str(middle_stages) +
             " other stages; adjust the first/last counts or pp";
    });
  }
  std::int64_t next = 0;
  for (std::int64_t st = 0; st < s.pp; ++st) {
    const std::int64_t n = s.listed.given()               ? s.listed.layers[static_cast<std::size_t>(st)]
                           : (st == 0 && first > 0)       ? first
                           : (st == s.pp - 1 && last > 0) ? last
                                                          : middle_layers / middle_stages;
    out.push_back({st, 0, next, n, st == 0, st == s.pp - 1});
    next += n;
  }
  return out;
}

// ---- tensor-parallel shards ----------------------------------------------------------------

// column: the output dimension is split (Q/K/V, MLP up and gate, the output layer);
// row: the input dimension is split (attention output, MLP down);
// vocab: the embedding's rows are split over the padded vocabulary.
enum class shard_kind { column, row, vocab };

struct tensor_shard {
  std::string_view name;
  shard_kind kind;
  std::int64_t rows = 0, cols = 0;              // the full weight, [in, out] (embedding: [vocab, hidden])
  std::int64_t shard_rows = 0, shard_cols = 0;  // what each tensor-parallel rank stores
};

// How many tensor-parallel ranks hold each key/value head: 1 where tp divides kv_heads
// (Megatron-LM), tp / kv_heads where fewer key/value heads than ranks are replicated
// (parallel_config::replicate_kv_heads; tp a multiple of kv_heads).
constexpr std::int64_t kv_head_replicas(const transformer_spec& m, std::int64_t tp, bool replicate_kv_heads) {
  const std::int64_t kv = m.resolved_kv_heads();
  return replicate_kv_heads && kv < tp && tp % kv == 0 ? tp / kv : 1;
}

// What each rank of a layer holds beyond 1/tp of the layer's weights when key/value heads are
// replicated: its key/value head whole, where the even split would give it 1/replicas of it
// (key and value weights, and their biases).
constexpr double replicated_kv_weights_per_rank(const transformer_spec& m, std::int64_t tp, bool replicate_kv_heads) {
  const auto extra_copies = static_cast<double>(kv_head_replicas(m, tp, replicate_kv_heads) - 1);
  const auto width = static_cast<double>(m.hidden + (m.qkv_bias || m.linear_bias ? 1 : 0));
  return extra_copies * 2.0 * static_cast<double>(m.kv_dim()) * width / static_cast<double>(tp);
}

// The weight matrices of one layer and the embeddings as Megatron-LM shards them over tp ranks
// (with replicated key/value heads, the QKV shard holds its ranks' key/value head whole).
constexpr std::vector<tensor_shard> tensor_shards(const transformer_spec& m, std::int64_t tp,
                                                  bool replicate_kv_heads = false) {
  validate(m);
  detail::require_positive(tp, "tp");
  const std::int64_t h = m.hidden, q = m.q_dim(), kv = m.kv_dim(), f = m.ffn, v = m.padded_vocab(tp);
  const std::int64_t kv_replicas = kv_head_replicas(m, tp, replicate_kv_heads);
  std::vector<tensor_shard> s;
  const auto column = [&](std::string_view n, std::int64_t in, std::int64_t out) {
    s.push_back({n, shard_kind::column, in, out, in, out / tp});
  };
  const auto row = [&](std::string_view n, std::int64_t in, std::int64_t out) {
    s.push_back({n, shard_kind::row, in, out, in / tp, out});
  };
  s.push_back({"embedding", shard_kind::vocab, v, h, v / tp, h});
  s.push_back({"attention.qkv", shard_kind::column, h, q + 2 * kv, h, (q + 2 * kv * kv_replicas) / tp});
  row("attention.out", q, h);
  column(m.mlp == mlp_kind::swiglu ? "mlp.gate_up" : "mlp.up", h, (m.mlp == mlp_kind::swiglu ? 2 : 1) * f);
  row("mlp.down", f, h);
  if (!m.tied_embeddings) column("output", h, v);
  return s;
}

// The vocabulary rows tensor-parallel rank `rank` owns, [begin, end), and how many of them
// are padding beyond the real vocabulary.
struct vocab_range {
  std::int64_t begin = 0, end = 0, padding = 0;
};
constexpr vocab_range vocab_shard(const transformer_spec& m, std::int64_t tp, std::int64_t rank) {
  detail::require(rank >= 0 && rank < tp, reason::index_out_of_range, "rank", [&] {
    return "tensor-parallel rank " + detail::str(rank) + " is outside 0.." + detail::str(tp - 1);
  });
  const std::int64_t per = m.padded_vocab(tp) / tp, begin = rank * per, end = begin + per;
  const std::int64_t real_end = end < m.vocab ? end : m.vocab;
  return {begin, end, end - (real_end > begin ? real_end : begin)};
}

// What tensor-parallel rank `rank` of `tp` computes, in the model's own units: its query heads,
// key/value heads, MLP columns and vocabulary rows, each a consecutive range of the full
// dimension (Megatron-LM: ColumnParallelLinear splits the output dimension, RowParallelLinear
// the input one, VocabParallelEmbedding the padded vocabulary, all in rank order). A trainer
// slices its weights by these ranges and takes nothing else from its own arithmetic.
struct index_range {
  std::int64_t begin = 0, end = 0;
  [[nodiscard]] constexpr std::int64_t size() const { return end - begin; }
};
struct tensor_parallel_slice {
  index_range q_heads, kv_heads, ffn;
  vocab_range vocab;
};
// With replicate_kv_heads and fewer key/value heads than ranks, rank r holds key/value head
// r / (tp / kv_heads), the one its query heads attend with.
constexpr tensor_parallel_slice tensor_parallel_slice_of(const transformer_spec& m, std::int64_t tp, std::int64_t rank,
                                                         bool replicate_kv_heads = false) {
  using detail::str;
  validate(m);
  detail::require_positive(tp, "tp");
  const std::int64_t kv = m.resolved_kv_heads(), replicas = kv_head_replicas(m, tp, replicate_kv_heads);
  detail::require(m.heads % tp == 0 && (kv % tp == 0 || replicas > 1) && m.ffn % tp == 0, reason::index_out_of_range,
                  "tp", [&] {
                    return "heads " + str(m.heads) + ", kv_heads " + str(kv) + " and ffn " + str(m.ffn) +
                           " do not all split over tp " + str(tp) + "; pick a tp that divides each of them" +
                           (tp % kv == 0 ? " (or replicate the key/value heads)" : "");
                  });
  const vocab_range v = vocab_shard(m, tp, rank);  // checks the rank
  const auto part = [&](std::int64_t n) { return index_range{rank * (n / tp), (rank + 1) * (n / tp)}; };
  const index_range kv_heads = replicas > 1 ? index_range{rank / replicas, rank / replicas + 1} : part(kv);
  return {part(m.heads), kv_heads, part(m.ffn), v};
}

// ---- ZeRO flat-buffer shards -----------------------------------------------------------------

// The part of a flat buffer of `numel` elements that data-parallel rank `rank` of `dp` owns
// under ZeRO (optimizer states, gradients or parameters, by stage): the buffer is padded to
// a multiple of dp x alignment and cut into dp equal shards.
struct flat_shard {
  std::int64_t begin = 0, end = 0;  // [begin, end) in the padded buffer
  std::int64_t padding = 0;         // elements of the shard beyond numel
  std::int64_t padded_numel = 0;
};
constexpr flat_shard zero_shard(std::int64_t numel, std::int64_t dp, std::int64_t rank, std::int64_t alignment = 1) {
  detail::require_positive(numel, "numel");
  detail::require_positive(dp, "dp");
  detail::require_positive(alignment, "alignment");
  detail::require(rank >= 0 && rank < dp, reason::index_out_of_range, "rank",
                  [&] { return "data-parallel rank " + detail::str(rank) + " is outside 0.." + detail::str(dp - 1); });
  const std::int64_t padded = detail::round_up(numel, detail::checked_mul(dp, alignment, "dp x alignment"));
  const std::int64_t per = padded / dp, begin = rank * per, end = begin + per;
  const std::int64_t real = numel > begin ? (numel < end ? numel : end) - begin : 0;
  return {begin, end, per - real, padded};
}

// ---- data shards ---------------------------------------------------------------------------

// The consecutive sample indices [first, first + count) that data-parallel rank `rank` reads in
// micro-step `micro_step` of optimizer step `step`. Each step reads samples
// [step x gbs, (step + 1) x gbs) once; each micro-step reads lbs x dp consecutive samples, and
// rank r takes the r-th lbs of them (Megatron-LM's MegatronPretrainingSampler).
struct sample_range {
  std::int64_t first = 0, count = 0;
};
constexpr sample_range data_shard(std::int64_t gbs, std::int64_t lbs, std::int64_t dp, std::int64_t step,
                                  std::int64_t micro_step, std::int64_t rank) {
  using detail::str;
  detail::require_positive(gbs, "gbs");
  detail::require_positive(lbs, "lbs");
  detail::require_positive(dp, "dp");
  const std::int64_t per_step = detail::checked_mul(lbs, dp, "lbs x dp");
  detail::require(gbs % per_step == 0, reason::batch_does_not_split_over_data_parallel_ranks, "gbs", [&] {
    return "global batch " + str(gbs) + " is not a multiple of micro batch " + str(lbs) + " x data parallel " +
           str(dp) + "; " + detail::nearest_multiples(gbs, per_step);
  });
  const std::int64_t gas = gbs / per_step;
  detail::require(step >= 0 && micro_step >= 0 && micro_step < gas && rank >= 0 && rank < dp,
                  reason::index_out_of_range, "micro_step", [&] {
                    return "step " + str(step) + ", micro-step " + str(micro_step) + " (of " + str(gas) + "), rank " +
                           str(rank) + " (of " + str(dp) + ") is out of range";
                  });
  return {detail::checked_mul(step, gbs, "sample index") + micro_step * lbs * dp + rank * lbs, lbs};
}

// ---- context-parallel chunks -----------------------------------------------------------------

// The token ranges context-parallel rank `rank` of `cp` holds: the sequence is cut into 2 x cp
// equal chunks and rank r takes chunks r and 2cp - 1 - r, so every rank gets the same share of
// causal-attention work (Megatron-LM / Transformer Engine load balancing).
struct token_range {
  std::int64_t begin = 0, end = 0;
};
constexpr std::array<token_range, 2> cp_chunks(std::int64_t seq, std::int64_t cp, std::int64_t rank) {
  detail::require_positive(seq, "seq");
  detail::require_positive(cp, "cp");
  detail::require(seq % (2 * cp) == 0, reason::index_out_of_range, "seq", [&] {
    return "sequence " + detail::str(seq) + " is not divisible by 2 x cp = " + detail::str(2 * cp) + "; " +
           detail::nearest_multiples(seq, 2 * cp);
  });
  detail::require(rank >= 0 && rank < cp, reason::index_out_of_range, "rank", [&] {
    return "context-parallel rank " + detail::str(rank) + " is outside 0.." + detail::str(cp - 1);
  });
  const std::int64_t c = seq / (2 * cp);
  return {token_range{rank * c, (rank + 1) * c}, token_range{(2 * cp - 1 - rank) * c, (2 * cp - rank) * c}};
}

}  // namespace trainperf
