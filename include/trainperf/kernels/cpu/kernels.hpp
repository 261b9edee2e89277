// trainperf — CPU kernels (fp32, Eigen) for the Llama-style training step of the example
// trainer: linear layers, causal attention (flash-attention style, GQA), RMSNorm, RoPE,
// SwiGLU, embedding, softmax cross-entropy, AdamW and gradient-norm clipping.
//
// Conventions: every buffer is caller-owned, row-major, contiguous fp32 (token ids int32).
// Results are deterministic: independent of the thread count (reductions in fixed order).
// Backward kernels ACCUMULATE (+=) into parameter gradients and into input gradients, so a
// trainer zeroes its gradient buffers once per step; attention_backward overwrites dq, dk, dv.
// Threading: OpenMP over the outer loops; Eigen's own threading is never used inside them.
// Not part of trainperf.hpp: include <trainperf/kernels/cpu/kernels.hpp> and link Eigen3.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <Eigen/Core>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace trainperf::kernels::cpu {

using i64 = std::int64_t;
using matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using map = Eigen::Map<matrix>;
using cmap = Eigen::Map<const matrix>;
using vmap = Eigen::Map<Eigen::VectorXf>;
using cvmap = Eigen::Map<const Eigen::VectorXf>;

// Rows per OpenMP task in the row-blocked GEMMs.
inline constexpr i64 row_block = 64;

namespace detail {
// Reductions are summed over fixed chunks and then in chunk order, so results do not depend
// on the thread count or on scheduling: a run and its resumption from a checkpoint compute
// bit-identical numbers.
inline constexpr i64 sum_chunk = 4096;
template <class F>
double ordered_sum(i64 n, F&& term) {
  const i64 chunks = (n + sum_chunk - 1) / sum_chunk;
  std::vector<double> partial(static_cast<std::size_t>(chunks), 0.0);
#pragma omp parallel for schedule(static)
  for (i64 c = 0; c < chunks; ++c) {
    double acc = 0;
    for (i64 i = c * sum_chunk; i < std::min(n, (c + 1) * sum_chunk); ++i) acc += term(i);
    partial[static_cast<std::size_t>(c)] = acc;
  }
  double total = 0;
  for (double p : partial) total += p;
  return total;
}
}  // namespace detail

// ---- linear: out[T, O] = inp[T, I] · weight[O, I]^T (+ bias[O]) ---------------------------

inline void linear_forward(float* out, const float* inp, const float* weight, const float* bias, i64 T, i64 I, i64 O) {
  const cmap w(weight, O, I);
#pragma omp parallel for schedule(static)
  for (i64 r0 = 0; r0 < T; r0 += row_block) {
    const i64 rows = std::min(row_block, T - r0);
    map o(out + r0 * O, rows, O);
    o.noalias() = cmap(inp + r0 * I, rows, I) * w.transpose();
    if (bias != nullptr) o.rowwise() += cvmap(bias, O).transpose();
  }
}

// dinp[T, I] += dout · weight; dweight[O, I] += dout^T · inp; dbias[O] += column sums of dout.
// dinp and dbias may be null (the first layer needs no input gradient; no bias).
inline void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                            const float* weight, i64 T, i64 I, i64 O) {
  if (dinp != nullptr) {
    const cmap w(weight, O, I);
#pragma omp parallel for schedule(static)
    for (i64 r0 = 0; r0 < T; r0 += row_block) {
      const i64 rows = std::min(row_block, T - r0);
      map(dinp + r0 * I, rows, I).noalias() += cmap(dout + r0 * O, rows, O) * w;
    }
  }
  const cmap d(dout, T, O), x(inp, T, I);
  // Split the weight gradient by output rows so every thread owns its rows of dweight.
#pragma omp parallel for schedule(static)
  for (i64 o0 = 0; o0 < O; o0 += row_block) {
    const i64 rows = std::min(row_block, O - o0);
    map(dweight + o0 * I, rows, I).noalias() += d.middleCols(o0, rows).transpose() * x;
    // Column sums in a fixed order (row after row) whatever the instruction set and the buffer's
    // address: Eigen's colwise().sum() picks its summation order from the packet alignment of
    // the data, so with AVX-512 (64-byte packets, which malloc does not align to) two runs of the
    // same step differed in the last bit (the 1/2/3/8-thread test caught it).
    if (dbias != nullptr) {
      std::vector<float> sum(static_cast<std::size_t>(rows), 0.0f);
      for (i64 t = 0; t < T; ++t) {
        const float* row = dout + t * O + o0;
        for (i64 k = 0; k < rows; ++k) sum[static_cast<std::size_t>(k)] += row[k];
      }
      vmap(dbias + o0, rows) += cvmap(sum.data(), rows);
    }
  }
}

// ---- residual add: y += x ------------------------------------------------------------------

inline void add_inplace(float* y, const float* x, i64 n) {
#pragma omp parallel for schedule(static)
  for (i64 i = 0; i < n; ++i) y[i] += x[i];
}

// ---- RMSNorm: out = inp / rms(inp) * weight, rms over C (Zhang & Sennrich 2019) -----------

inline void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, i64 T, i64 C, float eps) {
#pragma omp parallel for schedule(static)
  for (i64 t = 0; t < T; ++t) {
    const float* x = inp + t * C;
    double ss = 0;
    for (i64 c = 0; c < C; ++c) ss += static_cast<double>(x[c]) * x[c];
    const float r = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(C)) + eps);
    rstd[t] = r;
    for (i64 c = 0; c < C; ++c) out[t * C + c] = x[c] * r * weight[c];
  }
}

// dinp += d/dinp, dweight += d/dweight (per block of rows, then summed in block order).
inline void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                             const float* rstd, i64 T, i64 C) {
  const i64 blocks = (T + row_block - 1) / row_block;
  std::vector<float> dw(static_cast<std::size_t>(blocks * C), 0.0f);
#pragma omp parallel for schedule(static)
  for (i64 blk = 0; blk < blocks; ++blk) {
    float* dwb = dw.data() + blk * C;
    for (i64 t = blk * row_block; t < std::min(T, (blk + 1) * row_block); ++t) {
      const float* x = inp + t * C;
      const float* g = dout + t * C;
      const float r = rstd[t];
      double dot = 0;  // sum_c g_c w_c x_c
      for (i64 c = 0; c < C; ++c) dot += static_cast<double>(g[c]) * weight[c] * x[c];
      const float k = static_cast<float>(dot / static_cast<double>(C)) * r * r * r;
      for (i64 c = 0; c < C; ++c) {
        dinp[t * C + c] += g[c] * weight[c] * r - k * x[c];
        dwb[c] += g[c] * x[c] * r;
      }
    }
  }
  for (i64 blk = 0; blk < blocks; ++blk)
    for (i64 c = 0; c < C; ++c) dweight[c] += dw[static_cast<std::size_t>(blk * C + c)];
}

// ---- RoPE (Su et al. 2021), half-split pairs (GPT-NeoX / Hugging Face Llama layout): -------
// within each head of D, element i pairs with i + D/2 and both rotate by angle
// pos x theta^(-2i/D). x is [T, H, D] and rotated in place; positions start at pos0.

inline void rope_rotate(float* x, i64 T, i64 H, i64 D, float theta, i64 pos0, bool inverse) {
  const i64 half = D / 2;
#pragma omp parallel for schedule(static)
  for (i64 t = 0; t < T; ++t) {
    for (i64 i = 0; i < half; ++i) {
      const double freq = std::pow(static_cast<double>(theta), -2.0 * static_cast<double>(i) / static_cast<double>(D));
      const double angle = static_cast<double>(pos0 + t) * freq;
      const float c = static_cast<float>(std::cos(angle)),
                  s = static_cast<float>(inverse ? -std::sin(angle) : std::sin(angle));
      for (i64 h = 0; h < H; ++h) {
        float* p = x + (t * H + h) * D;
        const float a = p[i], b = p[i + half];
        p[i] = a * c - b * s;
        p[i + half] = a * s + b * c;
      }
    }
  }
}
inline void rope_forward(float* x, i64 T, i64 H, i64 D, float theta, i64 pos0 = 0) {
  rope_rotate(x, T, H, D, theta, pos0, false);
}
// The rotation is orthogonal: the gradient rotates back (dx in place).
inline void rope_backward(float* dx, i64 T, i64 H, i64 D, float theta, i64 pos0 = 0) {
  rope_rotate(dx, T, H, D, theta, pos0, true);
}

// ---- SwiGLU (Shazeer 2020): out = silu(gate) * up, elementwise over n ----------------------

inline void swiglu_forward(float* out, const float* gate, const float* up, i64 n) {
#pragma omp parallel for schedule(static)
  for (i64 i = 0; i < n; ++i) {
    const float g = gate[i], sig = 1.0f / (1.0f + std::exp(-g));
    out[i] = g * sig * up[i];
  }
}
inline void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, i64 n) {
#pragma omp parallel for schedule(static)
  for (i64 i = 0; i < n; ++i) {
    const float g = gate[i], sig = 1.0f / (1.0f + std::exp(-g));
    dgate[i] += dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
    dup[i] += dout[i] * g * sig;
  }
}

// ---- embedding: out[T, C] = table[tokens[t], :] -------------------------------------------

inline void embedding_forward(float* out, const std::int32_t* tokens, const float* table, i64 T, i64 C) {
#pragma omp parallel for schedule(static)
  for (i64 t = 0; t < T; ++t) std::copy_n(table + static_cast<i64>(tokens[t]) * C, C, out + t * C);
}
// dtable[tokens[t], :] += dout[t, :], serial over t (tokens repeat).
inline void embedding_backward(float* dtable, const float* dout, const std::int32_t* tokens, i64 T, i64 C) {
  for (i64 t = 0; t < T; ++t) vmap(dtable + static_cast<i64>(tokens[t]) * C, C) += cvmap(dout + t * C, C);
}

// ---- causal attention, flash-attention style (Dao 2023) -----------------------------------
// q: [B, T, Hq, D]; k, v: [B, T, Hkv, D] with Hq a multiple of Hkv (query head h reads KV
// head h / (Hq / Hkv)); out: [B, T, Hq, D]; lse: [B, Hq, T], the log-sum-exp of each query's
// scaled scores, saved for the backward. Keys are visited in blocks of kv_block with an
// online softmax, so no T x T score matrix is ever stored: O(T) extra memory per head.

inline constexpr i64 kv_block = 64;

inline void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, i64 B, i64 T,
                              i64 Hq, i64 Hkv, i64 D, float scale) {
  const i64 group = Hq / Hkv;
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (i64 b = 0; b < B; ++b)
    for (i64 h = 0; h < Hq; ++h) {
      const i64 hk = h / group;
      std::vector<float> acc(static_cast<std::size_t>(D)), s(static_cast<std::size_t>(kv_block));
      for (i64 i = 0; i < T; ++i) {
        const float* qi = q + ((b * T + i) * Hq + h) * D;
        float m = -std::numeric_limits<float>::infinity(), l = 0;
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (i64 j0 = 0; j0 <= i; j0 += kv_block) {
          const i64 j1 = std::min(i + 1, j0 + kv_block);
          float block_max = -std::numeric_limits<float>::infinity();
          for (i64 j = j0; j < j1; ++j) {
            const float* kj = k + ((b * T + j) * Hkv + hk) * D;
            float dot = 0;
            for (i64 d = 0; d < D; ++d) dot += qi[d] * kj[d];
            s[static_cast<std::size_t>(j - j0)] = dot * scale;
            block_max = std::max(block_max, dot * scale);
          }
          const float m_new = std::max(m, block_max);
          const float correction = std::exp(m - m_new);
          l *= correction;
          for (auto& a : acc) a *= correction;
          for (i64 j = j0; j < j1; ++j) {
            const float p = std::exp(s[static_cast<std::size_t>(j - j0)] - m_new);
            l += p;
            const float* vj = v + ((b * T + j) * Hkv + hk) * D;
            for (i64 d = 0; d < D; ++d) acc[static_cast<std::size_t>(d)] += p * vj[d];
          }
          m = m_new;
        }
        float* oi = out + ((b * T + i) * Hq + h) * D;
        for (i64 d = 0; d < D; ++d) oi[d] = acc[static_cast<std::size_t>(d)] / l;
        lse[(b * Hq + h) * T + i] = m + std::log(l);
      }
    }
}

// dq, dk, dv are overwritten. Recomputes the probabilities block by block from lse:
// p_ij = exp(s_ij - lse_i); dP_ij = dout_i · v_j; dS_ij = p_ij (dP_ij - delta_i) with
// delta_i = dout_i · out_i (FlashAttention-2, Dao 2023, algorithm 2).
inline void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                               const float* v, const float* out, const float* lse, i64 B, i64 T, i64 Hq, i64 Hkv, i64 D,
                               float scale) {
  const i64 group = Hq / Hkv;
  std::fill_n(dq, B * T * Hq * D, 0.0f);
  std::fill_n(dk, B * T * Hkv * D, 0.0f);
  std::fill_n(dv, B * T * Hkv * D, 0.0f);
  // One task per (batch, KV head): it owns that head's dk and dv and its query heads' dq.
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (i64 b = 0; b < B; ++b)
    for (i64 hk = 0; hk < Hkv; ++hk)
      for (i64 h = hk * group; h < (hk + 1) * group; ++h)
        for (i64 i = 0; i < T; ++i) {
          const float* qi = q + ((b * T + i) * Hq + h) * D;
          const float* gi = dout + ((b * T + i) * Hq + h) * D;
          const float* oi = out + ((b * T + i) * Hq + h) * D;
          float* dqi = dq + ((b * T + i) * Hq + h) * D;
          float delta = 0;
          for (i64 d = 0; d < D; ++d) delta += gi[d] * oi[d];
          const float li = lse[(b * Hq + h) * T + i];
          for (i64 j = 0; j <= i; ++j) {
            const float* kj = k + ((b * T + j) * Hkv + hk) * D;
            const float* vj = v + ((b * T + j) * Hkv + hk) * D;
            float dot = 0, dp = 0;
            for (i64 d = 0; d < D; ++d) {
              dot += qi[d] * kj[d];
              dp += gi[d] * vj[d];
            }
            const float p = std::exp(dot * scale - li);
            const float ds = p * (dp - delta) * scale;
            float* dkj = dk + ((b * T + j) * Hkv + hk) * D;
            float* dvj = dv + ((b * T + j) * Hkv + hk) * D;
            for (i64 d = 0; d < D; ++d) {
              dqi[d] += ds * kj[d];
              dkj[d] += ds * qi[d];
              dvj[d] += p * gi[d];
            }
          }
        }
}

// ---- softmax cross-entropy -----------------------------------------------------------------
// losses[t] = logsumexp(logits[t]) - logits[t][targets[t]]. When dlogits is given it receives
// dloss x (softmax - onehot), the gradient of dloss x sum_t losses[t] (pass dloss = 1/T for
// the mean). Returns the mean loss.

inline float cross_entropy(float* losses, float* dlogits, const float* logits, const std::int32_t* targets, i64 T,
                           i64 V, float dloss) {
  std::vector<float> own;
  if (losses == nullptr) {
    own.resize(static_cast<std::size_t>(T));
    losses = own.data();
  }
#pragma omp parallel for schedule(static)
  for (i64 t = 0; t < T; ++t) {
    const float* z = logits + t * V;
    const float mx = *std::max_element(z, z + V);
    double sum = 0;
    for (i64 j = 0; j < V; ++j) sum += std::exp(static_cast<double>(z[j] - mx));
    const double lse = static_cast<double>(mx) + std::log(sum);
    losses[t] = static_cast<float>(lse - z[targets[t]]);
    if (dlogits != nullptr) {
      float* g = dlogits + t * V;
      for (i64 j = 0; j < V; ++j) g[j] = dloss * static_cast<float>(std::exp(static_cast<double>(z[j]) - lse));
      g[targets[t]] -= dloss;
    }
  }
  return static_cast<float>(detail::ordered_sum(T, [&](i64 t) { return static_cast<double>(losses[t]); }) /
                            static_cast<double>(T));
}

// ---- optimizer ------------------------------------------------------------------------------

struct adamw_config {
  float lr = 3e-4f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.1f;
};

// One AdamW step (Loshchilov & Hutter 2019, decoupled weight decay) on n parameters; step
// counts from 1 (bias correction).
inline void adamw(float* params, const float* grads, float* m, float* v, i64 n, const adamw_config& c, i64 step) {
  const float bc1 = 1.0f - std::pow(c.beta1, static_cast<float>(step));
  const float bc2 = 1.0f - std::pow(c.beta2, static_cast<float>(step));
#pragma omp parallel for schedule(static)
  for (i64 i = 0; i < n; ++i) {
    const float g = grads[i];
    m[i] = c.beta1 * m[i] + (1.0f - c.beta1) * g;
    v[i] = c.beta2 * v[i] + (1.0f - c.beta2) * g * g;
    const float mhat = m[i] / bc1, vhat = v[i] / bc2;
    params[i] -= c.lr * (mhat / (std::sqrt(vhat) + c.eps) + c.weight_decay * params[i]);
  }
}

// The global L2 norm of n gradients; when it exceeds max_norm, scales them by
// max_norm / norm (Pascanu et al. 2013). Returns the norm before clipping.
inline float clip_grad_norm(float* grads, i64 n, float max_norm) {
  const double ss = detail::ordered_sum(n, [&](i64 i) { return static_cast<double>(grads[i]) * grads[i]; });
  const float norm = static_cast<float>(std::sqrt(ss));
  if (max_norm > 0 && norm > max_norm) {
    const float k = max_norm / (norm + 1e-6f);
#pragma omp parallel for schedule(static)
    for (i64 i = 0; i < n; ++i) grads[i] *= k;
  }
  return norm;
}

}  // namespace trainperf::kernels::cpu
