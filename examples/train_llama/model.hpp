// The example trainer's CPU model: the Llama decoder of params.hpp in fp32 on trainperf's CPU
// kernels; under tensor parallelism, this rank's shard, reducing over its tensor group where
// Megatron-LM does (after the row-parallel projections, before the column-parallel ones'
// input gradients reach a norm, in the embedding and in the cross-entropy).
#pragma once

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <vector>

#include <trainperf/kernels/cpu/kernels.hpp>

#include "collectives.hpp"
#include "params.hpp"

namespace train_llama {

namespace k = trainperf::kernels::cpu;

struct llama : llama_params {
  using llama_params::llama_params;

  const tensor_group* group = nullptr;  // the tensor-parallel group; nullptr with tp 1
  // Megatron-LM's sequence parallelism: the residual stream, the norms and the residual adds
  // hold this rank's 1/tp of the token rows; all-gathered before the column-parallel layers,
  // reduce-scattered after the row-parallel ones (instead of one all-reduce).
  bool sequence_parallel = false;

  // The token rows of the residual stream here: all n, or this rank's part with sequence parallelism.
  [[nodiscard]] i64 stream_rows(i64 n) const { return sequence_parallel ? n / tp : n; }
  // After a row-parallel layer (or the vocabulary-parallel embedding): `partial` holds this rank's
  // share of n x C outputs; `out` receives the group's sum, all rows (out == partial, in place) or
  // this rank's part with sequence parallelism.
  void leave(float* partial, float* out, i64 n) const {
    if (group == nullptr) return;
    if (sequence_parallel)
      group->reduce_scatter(partial, out, stream_rows(n) * C);
    else
      group->sum(partial, n * C);
  }
  // Before a column-parallel layer: the n x C rows it reads, put together from the parts when
  // the stream is sequence-parallel (into `whole`); else the stream itself.
  const float* enter(const float* stream, float* whole, i64 n) const {
    if (!sequence_parallel) return stream;
    group->allgather(stream, whole, stream_rows(n) * C);
    return whole;
  }
  // The norms' weight gradients: each rank summed its own rows' share under sequence parallelism.
  void reduce_norm_grads() {
    if (sequence_parallel) for_each_replicated([&](i64 o, i64 n) { group->sum(g(o), n); });
  }

  // Wall time per kernel family, accumulated when profiling is on (bench/: the breakdown).
  enum kernel_kind { k_matmul, k_attention, k_norm, k_rope, k_swiglu, k_embedding, k_loss, k_residual, kinds };
  static constexpr const char* kernel_names[kinds] = {"matmul", "attention", "rmsnorm",       "rope",
                                                      "swiglu", "embedding", "cross-entropy", "residual add"};
  bool profile = false;
  std::array<double, kinds> seconds{};
  template <class F>
  void timed(kernel_kind kind, F&& f) {
    if (!profile) return f();
    const auto t0 = std::chrono::steady_clock::now();
    f();
    seconds[kind] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  // Activations of one micro-batch of B sequences of T tokens through one chunk of layers
  // (the whole model when it is one chunk). The residual stream (x, xmid), the norms' inputs and
  // their statistics have stream_rows(B x T) rows; the rest all B x T.
  struct activations {
    i64 B = 0, T = 0;
    std::vector<std::vector<float>> x;  // residual stream entering each layer, and after the last
    std::vector<std::vector<float>> n1, rstd1, q, k, v, att, lse, xmid, n2, rstd2, gate, up, act;
    std::vector<float> nf, rstdf, logits, losses;  // the output chunk's
    // Gradient scratch; dx also carries the gradient of the chunk's output in and of its input out.
    std::vector<float> dx, dx2, dn, dq, dk, dv, datt, dgate, dup, dact, dlogits;
    // Sequence parallelism: the norms' outputs on this rank's rows (n1s, n2s, nfs), a row-parallel
    // layer's partial output over all rows (partial), a stream gradient over all rows (whole), and
    // the norms' input gradients on this rank's rows (dns).
    std::vector<float> n1s, n2s, nfs, partial, whole, dns;
    // The gradient scratch (dlogits aside, which the forward fills): nothing in it outlives a
    // backward pass, so activations of the same chunk can take turns with one set.
    std::array<std::vector<float>*, 10> gradient_scratch() {
      return {&dx, &dx2, &dn, &dq, &dk, &dv, &datt, &dgate, &dup, &dact};
    }
  };

  // gradient_scratch false: without it (a pipeline slot that borrows another's).
  activations make_activations(i64 B, i64 T, const chunk& c, bool gradient_scratch = true) const {
    activations a;
    a.B = B, a.T = T;
    const i64 N = B * T, S = stream_rows(N);
    const auto n = [&](i64 w) { return std::vector<float>(static_cast<std::size_t>(N * w)); };
    const auto s = [&](i64 w) { return std::vector<float>(static_cast<std::size_t>(S * w)); };
    for (i64 l = 0; l <= c.count; ++l) a.x.push_back(s(C));
    for (i64 l = 0; l < c.count; ++l) {
      a.n1.push_back(n(C)), a.rstd1.push_back(s(1)), a.q.push_back(n(Q)), a.k.push_back(n(KV)), a.v.push_back(n(KV));
      a.att.push_back(n(Q)), a.lse.push_back(n(Hq)), a.xmid.push_back(s(C)), a.n2.push_back(n(C));
      a.rstd2.push_back(s(1)), a.gate.push_back(n(F)), a.up.push_back(n(F)), a.act.push_back(n(F));
    }
    if (c.output) a.nf = n(C), a.rstdf = s(1), a.logits = n(V), a.losses = n(1), a.dlogits = n(V);
    if (gradient_scratch) {
      a.dx = s(C), a.dx2 = s(C), a.dn = n(C), a.dq = n(Q), a.dk = n(KV), a.dv = n(KV), a.datt = n(Q);
      a.dgate = n(F), a.dup = n(F), a.dact = n(F);
    }
    if (sequence_parallel) a.n1s = s(C), a.n2s = s(C), a.nfs = s(C), a.partial = n(C), a.whole = n(C), a.dns = s(C);
    return a;
  }
  activations make_activations(i64 B, i64 T) const { return make_activations(B, T, chunks.front()); }
  // pipeline.hpp's hand-off buffers: a chunk's input and output, and the gradient of either.
  static std::vector<float>& input(activations& a) { return a.x.front(); }
  static std::vector<float>& output(activations& a) { return a.x.back(); }
  static std::vector<float>& gradient(activations& a) { return a.dx; }

  void rope(float* x, i64 B, i64 T, i64 H, bool backward) const {
    for (i64 b = 0; b < B; ++b) {
      float* xb = x + b * T * H * D;
      if (backward)
        k::rope_backward(xb, T, H, D, rope_theta);
      else
        k::rope_forward(xb, T, H, D, rope_theta);
    }
  }

  // The whole model (one chunk) over tokens [B, T] with targets [B, T]; returns the mean loss.
  // With backward, accumulates the gradient of loss_scale x mean loss into grads.
  float step(activations& a, const std::int32_t* tokens, const std::int32_t* targets, bool backward, float loss_scale) {
    const float loss = forward(a, chunks.front(), tokens, targets, backward, loss_scale);
    if (backward) this->backward(a, chunks.front(), tokens);
    return loss;
  }

  // Forward of chunk c from a.x[0]: the embedding of tokens when c starts with it, else the
  // previous stage's output, received there. When c ends with the output layer, returns the mean
  // loss against targets and, with backward, leaves its gradient (x loss_scale) in a.dlogits;
  // else returns 0 and a.x[c.count] is this chunk's output.
  float forward(activations& a, const chunk& c, const std::int32_t* tokens, const std::int32_t* targets, bool backward,
                float loss_scale) {
    const i64 N = a.B * a.T, S = stream_rows(N);
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    const bool sp = sequence_parallel;
    if (c.embedding)
      timed(k_embedding, [&] {
        float* part = sp ? a.partial.data() : a.x[0].data();
        k::embedding_forward(part, tokens, p(emb), N, C, vocab_begin, V);
        leave(part, a.x[0].data(), N);  // vocabulary-parallel: each rank's rows' share
      });
    for (i64 l = 0; l < c.count; ++l) {
      const auto& o = layers[static_cast<std::size_t>(c.first + l)];
      float* n1 = sp ? a.n1s.data() : a.n1[l].data();
      timed(k_norm, [&] { k::rmsnorm_forward(n1, a.rstd1[l].data(), a.x[l].data(), p(o.attn_norm), S, C, norm_eps); });
      const float* in1 = enter(n1, a.n1[l].data(), N);
      timed(k_matmul, [&] { k::linear_forward(a.q[l].data(), in1, p(o.wq), nullptr, N, C, Q); });
      timed(k_matmul, [&] { k::linear_forward(a.k[l].data(), in1, p(o.wk), nullptr, N, C, KV); });
      timed(k_matmul, [&] { k::linear_forward(a.v[l].data(), in1, p(o.wv), nullptr, N, C, KV); });
      timed(k_rope, [&] { rope(a.q[l].data(), a.B, a.T, Hq, false); });
      timed(k_rope, [&] { rope(a.k[l].data(), a.B, a.T, Hkv, false); });
      timed(k_attention, [&] {
        k::attention_forward(a.att[l].data(), a.lse[l].data(), a.q[l].data(), a.k[l].data(), a.v[l].data(), a.B, a.T,
                             Hq, Hkv, D, scale);
      });
      timed(k_matmul, [&] {
        float* part = sp ? a.partial.data() : a.xmid[l].data();
        k::linear_forward(part, a.att[l].data(), p(o.wo), nullptr, N, Q, C);
        leave(part, a.xmid[l].data(), N);  // row-parallel: each rank's heads' share
      });
      timed(k_residual, [&] { k::add_inplace(a.xmid[l].data(), a.x[l].data(), S * C); });
      float* n2 = sp ? a.n2s.data() : a.n2[l].data();
      timed(k_norm,
            [&] { k::rmsnorm_forward(n2, a.rstd2[l].data(), a.xmid[l].data(), p(o.mlp_norm), S, C, norm_eps); });
      const float* in2 = enter(n2, a.n2[l].data(), N);
      timed(k_matmul, [&] { k::linear_forward(a.gate[l].data(), in2, p(o.wgate), nullptr, N, C, F); });
      timed(k_matmul, [&] { k::linear_forward(a.up[l].data(), in2, p(o.wup), nullptr, N, C, F); });
      timed(k_swiglu, [&] { k::swiglu_forward(a.act[l].data(), a.gate[l].data(), a.up[l].data(), N * F); });
      timed(k_matmul, [&] {
        float* part = sp ? a.partial.data() : a.x[l + 1].data();
        k::linear_forward(part, a.act[l].data(), p(o.wdown), nullptr, N, F, C);
        leave(part, a.x[l + 1].data(), N);  // row-parallel: each rank's MLP columns' share
      });
      timed(k_residual, [&] { k::add_inplace(a.x[l + 1].data(), a.xmid[l].data(), S * C); });
    }
    if (!c.output) return 0;
    float* nf = sp ? a.nfs.data() : a.nf.data();
    timed(k_norm, [&] { k::rmsnorm_forward(nf, a.rstdf.data(), a.x[c.count].data(), p(final_norm), S, C, norm_eps); });
    const float* in = enter(nf, a.nf.data(), N);
    timed(k_matmul, [&] { k::linear_forward(a.logits.data(), in, p(head), nullptr, N, C, V); });
    float loss = 0;
    timed(k_loss, [&] {
      float* dlogits = backward ? a.dlogits.data() : nullptr;
      const float dloss = loss_scale / static_cast<float>(N);
      if (group == nullptr)
        loss = k::cross_entropy(a.losses.data(), dlogits, a.logits.data(), targets, N, V, dloss);
      else
        loss = k::cross_entropy_vocab_parallel(
            a.losses.data(), dlogits, a.logits.data(), targets, N, V, vocab_begin, dloss,
            [&](float* x, i64 n) { group->max(x, n); }, [&](double* x, i64 n) { group->sum(x, n); });
    });
    return loss;
  }

  // Backward of chunk c after its forward: from a.dlogits (c ends with the output layer) or from
  // a.dx, the gradient of its output the next stage sent. Accumulates into grads; leaves the
  // gradient of its input in a.dx (for the previous stage) unless c starts with the embedding.
  // The gradient of a layer's all rows entering (enter) is summed and, with sequence
  // parallelism, scattered back to this rank's rows (leave); that of leaving is gathered (enter).
  void backward(activations& a, const chunk& c, const std::int32_t* tokens) {
    const i64 N = a.B * a.T, S = stream_rows(N);
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    float* dn = sequence_parallel ? a.dns.data() : a.dn.data();  // a norm's output gradient, its rows
    if (c.output) {
      std::fill(a.dn.begin(), a.dn.end(), 0.0f);
      timed(k_matmul, [&] {
        k::linear_backward(a.dn.data(), g(head), nullptr, a.dlogits.data(), a.nf.data(), p(head), N, C, V);
        leave(a.dn.data(), dn, N);  // column-parallel (vocabulary): each rank's rows' share
      });
      std::fill(a.dx.begin(), a.dx.end(), 0.0f);
      timed(k_norm, [&] {
        k::rmsnorm_backward(a.dx.data(), g(final_norm), dn, a.x[c.count].data(), p(final_norm), a.rstdf.data(), S, C);
      });
    }
    for (i64 l = c.count - 1; l >= 0; --l) {
      const auto& o = layers[static_cast<std::size_t>(c.first + l)];
      // x[l+1] = xmid + act · Wdown^T
      const float* dy = enter(a.dx.data(), a.whole.data(), N);
      std::fill(a.dact.begin(), a.dact.end(), 0.0f);
      timed(k_matmul,
            [&] { k::linear_backward(a.dact.data(), g(o.wdown), nullptr, dy, a.act[l].data(), p(o.wdown), N, F, C); });
      std::fill(a.dgate.begin(), a.dgate.end(), 0.0f);
      std::fill(a.dup.begin(), a.dup.end(), 0.0f);
      timed(k_swiglu, [&] {
        k::swiglu_backward(a.dgate.data(), a.dup.data(), a.dact.data(), a.gate[l].data(), a.up[l].data(), N * F);
      });
      std::fill(a.dn.begin(), a.dn.end(), 0.0f);
      timed(k_matmul, [&] {
        k::linear_backward(a.dn.data(), g(o.wgate), nullptr, a.dgate.data(), a.n2[l].data(), p(o.wgate), N, C, F);
      });
      timed(k_matmul, [&] {
        k::linear_backward(a.dn.data(), g(o.wup), nullptr, a.dup.data(), a.n2[l].data(), p(o.wup), N, C, F);
        leave(a.dn.data(), dn, N);  // column-parallel gate and up: each rank's columns' share
      });
      a.dx2 = a.dx;  // the residual path
      timed(k_norm, [&] {
        k::rmsnorm_backward(a.dx2.data(), g(o.mlp_norm), dn, a.xmid[l].data(), p(o.mlp_norm), a.rstd2[l].data(), S, C);
      });
      // xmid = x[l] + att · Wo^T
      const float* dy2 = enter(a.dx2.data(), a.whole.data(), N);
      std::fill(a.datt.begin(), a.datt.end(), 0.0f);
      timed(k_matmul,
            [&] { k::linear_backward(a.datt.data(), g(o.wo), nullptr, dy2, a.att[l].data(), p(o.wo), N, Q, C); });
      timed(k_attention, [&] {
        k::attention_backward(a.dq.data(), a.dk.data(), a.dv.data(), a.datt.data(), a.q[l].data(), a.k[l].data(),
                              a.v[l].data(), a.att[l].data(), a.lse[l].data(), a.B, a.T, Hq, Hkv, D, scale);
      });
      timed(k_rope, [&] { rope(a.dq.data(), a.B, a.T, Hq, true); });
      timed(k_rope, [&] { rope(a.dk.data(), a.B, a.T, Hkv, true); });
      std::fill(a.dn.begin(), a.dn.end(), 0.0f);
      timed(k_matmul,
            [&] { k::linear_backward(a.dn.data(), g(o.wq), nullptr, a.dq.data(), a.n1[l].data(), p(o.wq), N, C, Q); });
      timed(k_matmul,
            [&] { k::linear_backward(a.dn.data(), g(o.wk), nullptr, a.dk.data(), a.n1[l].data(), p(o.wk), N, C, KV); });
      timed(k_matmul, [&] {
        k::linear_backward(a.dn.data(), g(o.wv), nullptr, a.dv.data(), a.n1[l].data(), p(o.wv), N, C, KV);
        leave(a.dn.data(), dn, N);  // column-parallel Q, K, V: each rank's heads' share
      });
      a.dx = a.dx2;
      timed(k_norm, [&] {
        k::rmsnorm_backward(a.dx.data(), g(o.attn_norm), dn, a.x[l].data(), p(o.attn_norm), a.rstd1[l].data(), S, C);
      });
    }
    if (c.embedding)
      timed(k_embedding, [&] {
        const float* dy = enter(a.dx.data(), a.whole.data(), N);
        k::embedding_backward(g(emb), dy, tokens, N, C, vocab_begin, V);
      });
  }
};

}  // namespace train_llama
