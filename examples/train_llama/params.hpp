// The example trainer's parameters: a Llama-architecture decoder (RMSNorm, RoPE, SwiGLU, GQA,
// tied or untied embeddings) as flat fp32 host buffers (weights, gradients, AdamW m and v), so
// the optimizer and checkpoints see one array each. Under tensor parallelism each rank holds its
// shard (trainperf::tensor_parallel_slice_of: its heads, MLP columns and vocabulary rows) and the
// dimensions below are the shard's. Shared by the CPU model (model.hpp) and the CUDA engine
// (engine_cuda.cu); needs no kernels.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include <trainperf/model.hpp>
#include <trainperf/partition.hpp>

namespace train_llama {

using i64 = std::int64_t;

// What one rank holds of the model: its tensor-parallel shard and its pipeline stage's chunks
// (trainperf::partition_layers; none: every layer, the embedding and the output, in one chunk).
struct model_part {
  i64 tp = 1, tp_rank = 0;
  std::vector<trainperf::stage_layers> chunks;
  bool optimizer_states = true;  // false: AdamW's m and v are left empty (ZeRO-1 keeps a part of them)
};

struct llama_params {
  trainperf::transformer_spec spec;
  i64 tp = 1, tp_rank = 0;
  trainperf::tensor_parallel_slice slice;  // what this rank holds of each layer
  i64 kv_replicas = 1;                     // tensor ranks holding this rank's key/value heads
  i64 stage = 0;                           // the pipeline stage of this rank's chunks
  // This rank's dimensions: hidden, query and KV heads, head size, query and KV widths, MLP
  // columns, vocabulary rows whose logits it computes (V, beginning at row vocab_begin of the
  // full vocabulary) and stores (V_rows: V plus the padding rows of the last shard), and the
  // model's layer count L (this rank's layers are `layers`, a subset under pipeline parallelism).
  i64 C, Hq, Hkv, D, Q, KV, F, V, V_rows, vocab_begin, L;
  float rope_theta = 10000.0f, norm_eps = 1e-5f;
  // Tests only (TRAIN_LLAMA_TEST_MISPLACE_SHARD): the MLP down projection takes the next rank's
  // columns, so that the loss-equivalence test can show it catches a misplaced shard.
  bool misplace_down_projection = false;

  // The pipeline chunks this rank runs, in chunk order: its layers [first, first + count) of
  // `layers` (global layers global_layer[first ..]), and whether it starts with the embedding or
  // ends with the final norm, the output layer and the loss.
  struct chunk {
    i64 first = 0, count = 0;
    bool embedding = false, output = false;
  };
  std::vector<chunk> chunks;
  bool has_embedding = false, has_output = false;

  // Offsets into the flat parameter buffer (-1: not held here).
  struct layer_offsets {
    i64 attn_norm, wq, wk, wv, wo, mlp_norm, wgate, wup, wdown;
  };
  i64 emb = -1, final_norm = -1, head = -1, total = 0;
  std::vector<layer_offsets> layers;
  std::vector<i64> global_layer;  // the model's index of each of `layers`
  std::vector<float> params, grads, adam_m, adam_v;

  // The whole model, or one rank's part of it. `allocate` false: the offsets only (the whole
  // model's layout, to slice from).
  explicit llama_params(const trainperf::transformer_spec& s, const model_part& part = {}, bool allocate = true)
      : spec(s),
        tp(part.tp),
        tp_rank(part.tp_rank),
        // Replicated key/value heads exactly where kv_heads < tp (main.cpp's check_parallel has
        // accepted them only with --replicate-kv-heads); Megatron-LM's split otherwise.
        slice(trainperf::tensor_parallel_slice_of(s, part.tp, part.tp_rank, /*replicate_kv_heads=*/true)),
        kv_replicas(trainperf::kv_head_replicas(s, part.tp, /*replicate_kv_heads=*/true)),
        C(s.hidden),
        Hq(slice.q_heads.size()),
        Hkv(slice.kv_heads.size()),
        D(s.resolved_head_dim()),
        Q(Hq * D),
        KV(Hkv * D),
        F(slice.ffn.size()),
        V(slice.vocab.end - slice.vocab.begin - slice.vocab.padding),
        V_rows(slice.vocab.end - slice.vocab.begin),
        vocab_begin(slice.vocab.begin),
        L(s.layers) {
    std::vector<trainperf::stage_layers> mine = part.chunks;
    if (mine.empty()) mine.push_back({0, 0, 0, L, true, true});
    stage = mine.front().stage;
    for (const auto& c : mine) {
      chunks.push_back({static_cast<i64>(global_layer.size()), c.layers, c.embedding, c.output});
      for (i64 l = 0; l < c.layers; ++l) global_layer.push_back(c.first_layer + l);
      has_embedding = has_embedding || c.embedding;
      has_output = has_output || c.output;
    }
    i64 at = 0;
    const auto take = [&](i64 n) {
      const i64 o = at;
      at += n;
      return o;
    };
    // A tied output layer is the embedding: the last stage holds its own copy (Megatron-LM).
    if (has_embedding || (has_output && s.tied_embeddings)) emb = take(V_rows * C);
    for (std::size_t l = 0; l < global_layer.size(); ++l)
      layers.push_back({take(C), take(Q * C), take(KV * C), take(KV * C), take(C * Q), take(C), take(F * C),
                        take(F * C), take(C * F)});
    if (has_output) {
      final_norm = take(C);
      head = s.tied_embeddings ? emb : take(V_rows * C);
    }
    total = at;
    if (!allocate) return;
    params.assign(static_cast<std::size_t>(total), 0.0f);
    grads.assign(params.size(), 0.0f);
    if (!part.optimizer_states) return;
    adam_m.assign(params.size(), 0.0f);
    adam_v.assign(params.size(), 0.0f);
  }

  float* p(i64 o) { return params.data() + o; }
  float* g(i64 o) { return grads.data() + o; }

  // N(0, 0.02) weights, output projections scaled by 1/sqrt(2L) (GPT-2), norms at 1; drawn for
  // the whole model in one order (the whole model's flat layout), of which each rank keeps the
  // draws of its own elements: every shard holds its slice of the single-process run's weights,
  // and no rank materializes the whole model.
  void init(std::uint64_t seed) {
    const llama_params whole(spec, {}, /*allocate=*/false);
    std::vector<std::array<i64, 3>> runs;  // (offset in whole, offset here, count), in whole order
    for_each_run(whole, [&](i64 mine, i64 theirs, i64 n) { runs.push_back({theirs, mine, n}); });
    std::sort(runs.begin(), runs.end());
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    i64 at = 0;
    for (const auto& [theirs, mine, n] : runs) {
      for (; at < theirs; ++at) (void)normal(rng);  // another rank's element
      for (i64 i = 0; i < n; ++i, ++at) params[static_cast<std::size_t>(mine + i)] = normal(rng);
    }
    const float residual = 1.0f / std::sqrt(2.0f * static_cast<float>(L));
    for (const auto& l : layers) {
      std::fill_n(p(l.attn_norm), C, 1.0f);
      std::fill_n(p(l.mlp_norm), C, 1.0f);
      for (i64 i = 0; i < C * Q; ++i) p(l.wo)[i] *= residual;
      for (i64 i = 0; i < C * F; ++i) p(l.wdown)[i] *= residual;
    }
    if (has_output) std::fill_n(p(final_norm), C, 1.0f);
  }

  // Every run of consecutive elements this shard shares with the whole model, laid out as
  // `whole` (llama_params(spec)) lays it: f(offset here, offset in whole, count). Column-parallel
  // weights ([out, in], rows split) are one run each; row-parallel ones (columns split) a run per row.
  template <class Fn>
  void for_each_run(const llama_params& whole, Fn&& f) const {
    const i64 q0 = slice.q_heads.begin * D, kv0 = slice.kv_heads.begin * D, f0 = slice.ffn.begin;
    if (emb >= 0) f(emb, whole.emb + vocab_begin * C, V * C);
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const layer_offsets &o = layers[l], &w = whole.layers[static_cast<std::size_t>(global_layer[l])];
      f(o.attn_norm, w.attn_norm, C);
      f(o.wq, w.wq + q0 * C, Q * C);
      f(o.wk, w.wk + kv0 * C, KV * C);
      f(o.wv, w.wv + kv0 * C, KV * C);
      for (i64 r = 0; r < C; ++r) f(o.wo + r * Q, w.wo + r * whole.Q + q0, Q);
      f(o.mlp_norm, w.mlp_norm, C);
      f(o.wgate, w.wgate + f0 * C, F * C);
      f(o.wup, w.wup + f0 * C, F * C);
      const i64 down0 = misplace_down_projection ? (tp_rank + 1) % tp * F : f0;
      for (i64 r = 0; r < C; ++r) f(o.wdown + r * F, w.wdown + r * whole.F + down0, F);
    }
    if (!has_output) return;
    f(final_norm, whole.final_norm, C);
    if (!spec.tied_embeddings) f(head, whole.head + vocab_begin * C, V * C);
  }

  // The parameters every tensor-parallel rank holds whole (the norms' weights): f(offset, count).
  template <class Fn>
  void for_each_replicated(Fn&& f) const {
    for (const auto& o : layers) f(o.attn_norm, C), f(o.mlp_norm, C);
    if (has_output) f(final_norm, C);
  }
  // The key and value projections of a key/value head replicated on kv_replicas tensor ranks
  // (their gradients are summed over those ranks): f(offset, count), or nothing.
  template <class Fn>
  void for_each_replicated_kv(Fn&& f) const {
    if (kv_replicas == 1) return;
    for (const auto& o : layers) f(o.wk, KV * C), f(o.wv, KV * C);
  }
  // The pieces of [begin, end) of the flat buffer that this rank counts in the global gradient
  // norm, so that the model-parallel group counts each element once: not the norm weights every
  // tensor rank holds (tensor rank 0 counts them), not a replicated key/value head's projections
  // (the first of its ranks does), not a tied embedding's copy on the last stage (the first
  // stage's counts): f(offset, count).
  template <class Fn>
  void for_each_counted(i64 begin, i64 end, Fn&& f) const {
    std::vector<std::pair<i64, i64>> elsewhere;  // [begin, end) of the ranges another rank counts
    const auto uncount = [&](i64 o, i64 n) { elsewhere.emplace_back(o, o + n); };
    if (tp_rank != 0) for_each_replicated(uncount);
    if (tp_rank % kv_replicas != 0) for_each_replicated_kv(uncount);
    for_each_pipeline_copy(uncount);
    std::sort(elsewhere.begin(), elsewhere.end());
    i64 at = begin;
    for (const auto& [lo, hi] : elsewhere) {
      if (std::min(lo, end) > at) f(at, std::min(lo, end) - at);
      at = std::max(at, hi);
    }
    if (end > at) f(at, end - at);
  }
  // The tied embedding's copy on a last stage without the embedding (the first stage holds the
  // original; their gradients are summed over the embedding group): f(offset, count), or nothing.
  template <class Fn>
  void for_each_pipeline_copy(Fn&& f) const {
    if (emb >= 0 && !has_embedding) f(emb, V_rows * C);
  }
};

}  // namespace train_llama
