// The example trainer's parameters: a Llama-architecture decoder (RMSNorm, RoPE, SwiGLU, GQA,
// tied or untied embeddings) as flat fp32 host buffers (weights, gradients, AdamW m and v), so
// the optimizer and checkpoints see one array each. Shared by the CPU model (model.hpp) and
// the CUDA engine (engine_cuda.cu); needs no kernels.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <trainperf/model.hpp>

namespace train_llama {

using i64 = std::int64_t;

struct llama_params {
  trainperf::transformer_spec spec;
  i64 C, Hq, Hkv, D, Q, KV, F, V, L;
  float rope_theta = 10000.0f, norm_eps = 1e-5f;

  // Offsets into the flat parameter buffer.
  struct layer_offsets {
    i64 attn_norm, wq, wk, wv, wo, mlp_norm, wgate, wup, wdown;
  };
  i64 emb = 0, final_norm = 0, head = 0, total = 0;
  std::vector<layer_offsets> layers;
  std::vector<float> params, grads, adam_m, adam_v;

  explicit llama_params(const trainperf::transformer_spec& s)
      : spec(s),
        C(s.hidden),
        Hq(s.heads),
        Hkv(s.resolved_kv_heads()),
        D(s.resolved_head_dim()),
        Q(s.q_dim()),
        KV(s.kv_dim()),
        F(s.ffn),
        V(s.vocab),
        L(s.layers) {
    i64 at = 0;
    const auto take = [&](i64 n) {
      const i64 o = at;
      at += n;
      return o;
    };
    emb = take(V * C);
    for (i64 l = 0; l < L; ++l)
      layers.push_back({take(C), take(Q * C), take(KV * C), take(KV * C), take(C * Q), take(C), take(F * C),
                        take(F * C), take(C * F)});
    final_norm = take(C);
    head = s.tied_embeddings ? emb : take(V * C);
    total = at;
    params.assign(static_cast<std::size_t>(total), 0.0f);
    grads.assign(params.size(), 0.0f);
    adam_m.assign(params.size(), 0.0f);
    adam_v.assign(params.size(), 0.0f);
  }

  float* p(i64 o) { return params.data() + o; }
  float* g(i64 o) { return grads.data() + o; }

  // N(0, 0.02) weights, output projections scaled by 1/sqrt(2L) (GPT-2), norms at 1.
  void init(std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    for (auto& x : params) x = normal(rng);
    const float residual = 1.0f / std::sqrt(2.0f * static_cast<float>(L));
    for (const auto& l : layers) {
      std::fill_n(p(l.attn_norm), C, 1.0f);
      std::fill_n(p(l.mlp_norm), C, 1.0f);
      for (i64 i = 0; i < C * Q; ++i) p(l.wo)[i] *= residual;
      for (i64 i = 0; i < C * F; ++i) p(l.wdown)[i] *= residual;
    }
    std::fill_n(p(final_norm), C, 1.0f);
  }
};

}  // namespace train_llama
