// trainperf — CPU kernels (fp32, Eigen) for the Llama-style training step of the example
// trainer: linear layers, causal attention (flash-attention style, GQA), RMSNorm, RoPE,
// SwiGLU, embedding, softmax cross-entropy, AdamW and gradient-norm clipping.
//
// Conventions: every buffer is caller-owned, row-major, contiguous fp32 (token ids int32).
// Results are deterministic: independent of the thread count (reductions in fixed order).
// Backward kernels ACCUMULATE (+=) into parameter gradients and into input gradients, so a
// trainer zeroes its gradient buffers once per step; attention_backward overwrites dq, dk, dv.
// Threading: OpenMP over the outer loops; the linear layers' products run on gemm.hpp's kernel
// (all threads share its packed blocks); attention's tile products are single-threaded Eigen
// products inside its per-head tasks, never Eigen's own threading.
// Not part of trainperf.hpp: include <trainperf/kernels/cpu/kernels.hpp> and link Eigen3.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <Eigen/Core>

#include <trainperf/kernels/cpu/gemm.hpp>

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

// Rows per block in the row-blocked reductions (RMSNorm's weight gradient, the bias gradient).
inline constexpr i64 row_block = 64;

namespace detail {
// Reductions are summed over fixed chunks and then in chunk order, so results do not depend
// on the thread count or on scheduling: a run and its resumption from a checkpoint compute
// bit-identical numbers. Inside a chunk, term i goes to accumulator i mod sum_lanes: the lanes
// are independent, so the loop compiles to vector code without reordering any sum, and the
// lanes are added in lane order at the end.
inline constexpr i64 sum_chunk = 4096, sum_lanes = 8;
template <class F>
double ordered_sum(i64 n, F&& term) {
  const i64 chunks = (n + sum_chunk - 1) / sum_chunk;
  std::vector<double> partial(static_cast<std::size_t>(chunks), 0.0);
#pragma omp parallel for schedule(static)
  for (i64 c = 0; c < chunks; ++c) {
    const i64 begin = c * sum_chunk, end = std::min(n, begin + sum_chunk);
    double lane[sum_lanes] = {};
    i64 i = begin;
    for (; i + sum_lanes <= end; i += sum_lanes)
      for (i64 l = 0; l < sum_lanes; ++l) lane[l] += term(i + l);
    for (; i < end; ++i) lane[(i - begin) % sum_lanes] += term(i);
    double acc = 0;
    for (double x : lane) acc += x;
    partial[static_cast<std::size_t>(c)] = acc;
  }
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

// exp(x) in fp32 for the softmax and sigmoid loops: the Cephes expf reduction and polynomial
// (S. Moshier, Cephes Mathematical Library, expf.c): x = n ln2 + r with |r| <= ln2/2, exp(r) by a
// degree-7 polynomial, 2^n put into the exponent bits. Branch-free, so a loop of it compiles to
// vector code and every element is computed the same way on the vector and the scalar path
// (within 1.5 ulp of exp over [-87, 88]; x is clamped to that range: exp(-87) = 1.6e-38).
inline float exp_fast(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln2): 1.5 x 2^23 trick
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;              // x - n ln2, ln2 in two parts
  float e = 1.9875691500e-4f;
  e = e * r + 1.3981999507e-3f;
  e = e * r + 8.3334519073e-3f;
  e = e * r + 4.1665795894e-2f;
  e = e * r + 1.6666665459e-1f;
  e = e * r + 5.0000001201e-1f;
  e = e * (r * r) + r + 1.0f;
  return e * std::bit_cast<float>((static_cast<std::int32_t>(n) + 127) << 23);
}
}  // namespace detail

// ---- linear: out[T, O] = inp[T, I] · weight[O, I]^T (+ bias[O]) ---------------------------
// The products run on gemm.hpp's kernel over all threads.

inline void linear_forward(float* out, const float* inp, const float* weight, const float* bias, i64 T, i64 I, i64 O) {
  gemm::multiply(out, O, {inp, I, 1}, {weight, 1, I}, T, O, I, false);  // weight^T: (i, o) at weight[o I + i]
  if (bias != nullptr) {
#pragma omp parallel for schedule(static)
    for (i64 t = 0; t < T; ++t)
      for (i64 o = 0; o < O; ++o) out[t * O + o] += bias[o];
  }
}

// dinp[T, I] += dout · weight; dweight[O, I] += dout^T · inp; dbias[O] += column sums of dout.
// dinp and dbias may be null (the first layer needs no input gradient; no bias).
inline void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                            const float* weight, i64 T, i64 I, i64 O) {
  if (dinp != nullptr) gemm::multiply(dinp, I, {dout, O, 1}, {weight, I, 1}, T, I, O, true);
  gemm::multiply(dweight, I, {dout, 1, O}, {inp, I, 1}, O, I, T, true);  // dout^T: (o, t) at dout[t O + o]
  // Column sums in a fixed order (row after row) whatever the instruction set and the buffer's
  // address: Eigen's colwise().sum() picks its summation order from the packet alignment of the
  // data, so with AVX-512 (64-byte packets, which malloc does not align to) two runs of the same
  // step differed in the last bit (the 1/2/3/8-thread test caught it).
  if (dbias != nullptr) {
#pragma omp parallel for schedule(static)
    for (i64 o0 = 0; o0 < O; o0 += row_block) {
      const i64 cols = std::min(row_block, O - o0);
      std::vector<float> sum(static_cast<std::size_t>(cols), 0.0f);
      for (i64 t = 0; t < T; ++t) {
        const float* row = dout + t * O + o0;
        for (i64 k = 0; k < cols; ++k) sum[static_cast<std::size_t>(k)] += row[k];
      }
      vmap(dbias + o0, cols) += cvmap(sum.data(), cols);
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
    const float g = gate[i], sig = 1.0f / (1.0f + detail::exp_fast(-g));
    out[i] = g * sig * up[i];
  }
}
inline void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, i64 n) {
#pragma omp parallel for schedule(static)
  for (i64 i = 0; i < n; ++i) {
    const float g = gate[i], sig = 1.0f / (1.0f + detail::exp_fast(-g));
    dgate[i] += dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
    dup[i] += dout[i] * g * sig;
  }
}

// ---- embedding: out[T, C] = table[tokens[t], :] -------------------------------------------
// The table holds vocabulary rows [first, first + rows) (a vocabulary-parallel shard,
// Megatron-LM's VocabParallelEmbedding; the whole table by default): a token outside them gives a
// zero row here (another shard holds it) and no gradient.

inline void embedding_forward(float* out, const std::int32_t* tokens, const float* table, i64 T, i64 C, i64 first = 0,
                              i64 rows = std::numeric_limits<i64>::max()) {
#pragma omp parallel for schedule(static)
  for (i64 t = 0; t < T; ++t) {
    const i64 r = static_cast<i64>(tokens[t]) - first;
    if (r >= 0 && r < rows)
      std::copy_n(table + r * C, C, out + t * C);
    else
      std::fill_n(out + t * C, C, 0.0f);
  }
}
// dtable[tokens[t], :] += dout[t, :], serial over t (tokens repeat).
inline void embedding_backward(float* dtable, const float* dout, const std::int32_t* tokens, i64 T, i64 C,
                               i64 first = 0, i64 rows = std::numeric_limits<i64>::max()) {
  for (i64 t = 0; t < T; ++t) {
    const i64 r = static_cast<i64>(tokens[t]) - first;
    if (r >= 0 && r < rows) vmap(dtable + r * C, C) += cvmap(dout + t * C, C);
  }
}

// ---- causal attention, flash-attention style (Dao 2023) -----------------------------------
// q: [B, T, Hq, D]; k, v: [B, T, Hkv, D] with Hq a multiple of Hkv (query head h reads KV
// head h / (Hq / Hkv)); out: [B, T, Hq, D]; lse: [B, Hq, T], the log-sum-exp of each query's
// scaled scores, saved for the backward. Queries are taken in tiles of q_block rows and keys
// in tiles of kv_block with an online softmax (FlashAttention-2, Dao 2023, algorithm 1), so
// no T x T score matrix is ever stored: O(T) extra memory per head. Each tile product is a
// small GEMM (Eigen, one thread); one OpenMP task per (sequence, head).

inline constexpr i64 q_block = 64, kv_block = 64;

namespace detail {
// Head `h` of a [T, H, D] buffer as a contiguous [T, D] matrix, and back.
inline void gather_head(matrix& dst, const float* src, i64 T, i64 H, i64 h, i64 D) {
  dst.resize(T, D);
  for (i64 t = 0; t < T; ++t) std::copy_n(src + (t * H + h) * D, D, dst.data() + t * D);
}
inline void scatter_head(float* dst, const matrix& src, i64 T, i64 H, i64 h, i64 D) {
  for (i64 t = 0; t < T; ++t) std::copy_n(src.data() + t * D, D, dst + (t * H + h) * D);
}

// Does the score tile of queries from i0 and keys [j0, j0 + cols) hold a key past its first
// query (j > i0), so that the causal mask applies inside it?
inline bool tile_needs_mask(i64 i0, i64 j0, i64 cols) { return j0 + cols - 1 > i0; }
}  // namespace detail

inline void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, i64 B, i64 T,
                              i64 Hq, i64 Hkv, i64 D, float scale) {
  const i64 group = Hq / Hkv;
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (i64 b = 0; b < B; ++b)
    for (i64 h = 0; h < Hq; ++h) {
      const i64 hk = h / group;
      matrix qh, kh, vh, acc(T, D);
      detail::gather_head(qh, q + b * T * Hq * D, T, Hq, h, D);
      detail::gather_head(kh, k + b * T * Hkv * D, T, Hkv, hk, D);
      detail::gather_head(vh, v + b * T * Hkv * D, T, Hkv, hk, D);
      qh *= scale;
      matrix s;
      std::vector<float> m(static_cast<std::size_t>(q_block)), l(m.size());
      for (i64 i0 = 0; i0 < T; i0 += q_block) {
        const i64 rows = std::min(q_block, T - i0);
        std::fill(m.begin(), m.end(), -std::numeric_limits<float>::infinity());
        std::fill(l.begin(), l.end(), 0.0f);
        auto a = acc.middleRows(i0, rows);
        a.setZero();
        for (i64 j0 = 0; j0 < i0 + rows; j0 += kv_block) {
          const i64 cols = std::min(kv_block, i0 + rows - j0);
          s.resize(rows, cols);
          s.noalias() = qh.middleRows(i0, rows) * kh.middleRows(j0, cols).transpose();
          const bool masked = detail::tile_needs_mask(i0, j0, cols);
          for (i64 r = 0; r < rows; ++r) {
            float* sr = s.data() + r * cols;
            const i64 visible = masked ? std::clamp<i64>(i0 + r - j0 + 1, 0, cols) : cols;  // keys j <= i
            float mx = m[static_cast<std::size_t>(r)];
            for (i64 c = 0; c < visible; ++c) mx = std::max(mx, sr[c]);
            const float correction = std::exp(m[static_cast<std::size_t>(r)] - mx);  // 0 on the first tile
            float sum = 0;
            for (i64 c = 0; c < visible; ++c) {
              sr[c] = detail::exp_fast(sr[c] - mx);
              sum += sr[c];
            }
            for (i64 c = visible; c < cols; ++c) sr[c] = 0.0f;
            l[static_cast<std::size_t>(r)] = l[static_cast<std::size_t>(r)] * correction + sum;
            m[static_cast<std::size_t>(r)] = mx;
            a.row(r) *= correction;
          }
          a.noalias() += s * vh.middleRows(j0, cols);
        }
        for (i64 r = 0; r < rows; ++r) {
          a.row(r) /= l[static_cast<std::size_t>(r)];
          lse[(b * Hq + h) * T + i0 + r] = m[static_cast<std::size_t>(r)] + std::log(l[static_cast<std::size_t>(r)]);
        }
      }
      detail::scatter_head(out + b * T * Hq * D, acc, T, Hq, h, D);
    }
}

// dq, dk, dv are overwritten. Recomputes the probabilities tile by tile from lse:
// p_ij = exp(s_ij - lse_i); dP_ij = dout_i · v_j; dS_ij = p_ij (dP_ij - delta_i) with
// delta_i = dout_i · out_i (FlashAttention-2, Dao 2023, algorithm 2). One OpenMP task per
// (sequence, KV head): it owns that head's dk and dv and its query heads' dq.
inline void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                               const float* v, const float* out, const float* lse, i64 B, i64 T, i64 Hq, i64 Hkv, i64 D,
                               float scale) {
  const i64 group = Hq / Hkv;
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (i64 b = 0; b < B; ++b)
    for (i64 hk = 0; hk < Hkv; ++hk) {
      matrix kh, vh, qh, gh, oh, dqh(T, D), dkh(T, D), dvh(T, D);
      detail::gather_head(kh, k + b * T * Hkv * D, T, Hkv, hk, D);
      detail::gather_head(vh, v + b * T * Hkv * D, T, Hkv, hk, D);
      dkh.setZero();
      dvh.setZero();
      matrix p, dp;
      std::vector<float> delta(static_cast<std::size_t>(T));
      for (i64 h = hk * group; h < (hk + 1) * group; ++h) {
        detail::gather_head(qh, q + b * T * Hq * D, T, Hq, h, D);
        detail::gather_head(gh, dout + b * T * Hq * D, T, Hq, h, D);
        detail::gather_head(oh, out + b * T * Hq * D, T, Hq, h, D);
        for (i64 i = 0; i < T; ++i) {  // fixed order, whatever the instruction set
          float acc = 0;
          for (i64 d = 0; d < D; ++d) acc += gh(i, d) * oh(i, d);
          delta[static_cast<std::size_t>(i)] = acc;
        }
        const float* lh = lse + (b * Hq + h) * T;
        dqh.setZero();
        for (i64 i0 = 0; i0 < T; i0 += q_block) {
          const i64 rows = std::min(q_block, T - i0);
          for (i64 j0 = 0; j0 < i0 + rows; j0 += kv_block) {
            const i64 cols = std::min(kv_block, i0 + rows - j0);
            p.resize(rows, cols);
            dp.resize(rows, cols);
            p.noalias() = qh.middleRows(i0, rows) * kh.middleRows(j0, cols).transpose();
            dp.noalias() = gh.middleRows(i0, rows) * vh.middleRows(j0, cols).transpose();
            const bool masked = detail::tile_needs_mask(i0, j0, cols);
            for (i64 r = 0; r < rows; ++r) {
              float* pr = p.data() + r * cols;
              float* dr = dp.data() + r * cols;  // becomes dS
              const i64 visible = masked ? std::clamp<i64>(i0 + r - j0 + 1, 0, cols) : cols;
              const float li = lh[i0 + r], di = delta[static_cast<std::size_t>(i0 + r)];
              for (i64 c = 0; c < visible; ++c) {
                pr[c] = detail::exp_fast(pr[c] * scale - li);
                dr[c] = pr[c] * (dr[c] - di) * scale;
              }
              for (i64 c = visible; c < cols; ++c) pr[c] = dr[c] = 0.0f;
            }
            dvh.middleRows(j0, cols).noalias() += p.transpose() * gh.middleRows(i0, rows);
            dkh.middleRows(j0, cols).noalias() += dp.transpose() * qh.middleRows(i0, rows);
            dqh.middleRows(i0, rows).noalias() += dp * kh.middleRows(j0, cols);
          }
        }
        detail::scatter_head(dq + b * T * Hq * D, dqh, T, Hq, h, D);
      }
      detail::scatter_head(dk + b * T * Hkv * D, dkh, T, Hkv, hk, D);
      detail::scatter_head(dv + b * T * Hkv * D, dvh, T, Hkv, hk, D);
    }
}

// ---- softmax cross-entropy -----------------------------------------------------------------
// losses[t] = logsumexp(logits[t]) - logits[t][targets[t]]. When dlogits is given it receives
// dloss x (softmax - onehot), the gradient of dloss x sum_t losses[t] (pass dloss = 1/T for
// the mean). Returns the mean loss. Each row of V logits is read from memory once: its maximum,
// then exp(z - max) written to dlogits (the row is still in cache) and summed, then scaled by
// dloss / sum; one exp per logit.

namespace detail {
// max_j z[j] over sum_lanes lanes (max is exact, so the lanes change nothing but the speed).
inline float row_max(const float* z, i64 V) {
  float lane[sum_lanes];
  std::fill_n(lane, sum_lanes, -std::numeric_limits<float>::infinity());
  i64 j = 0;
  for (; j + sum_lanes <= V; j += sum_lanes)
    for (i64 l = 0; l < sum_lanes; ++l) lane[l] = std::max(lane[l], z[j + l]);
  for (; j < V; ++j) lane[0] = std::max(lane[0], z[j]);
  return *std::max_element(lane, lane + sum_lanes);
}
// sum_j exp(z[j] - mx), in double lanes added in lane order; stores each exp in e when given.
inline double row_exp_sum(float* e, const float* z, i64 V, float mx) {
  double lane[sum_lanes] = {};
  i64 j = 0;
  for (; j + sum_lanes <= V; j += sum_lanes)
    for (i64 l = 0; l < sum_lanes; ++l) {
      const float x = exp_fast(z[j + l] - mx);
      if (e != nullptr) e[j + l] = x;
      lane[l] += static_cast<double>(x);
    }
  for (; j < V; ++j) {
    const float x = exp_fast(z[j] - mx);
    if (e != nullptr) e[j] = x;
    lane[j % sum_lanes] += static_cast<double>(x);
  }
  double sum = 0;
  for (double x : lane) sum += x;
  return sum;
}
}  // namespace detail

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
    float* g = dlogits != nullptr ? dlogits + t * V : nullptr;
    const float mx = detail::row_max(z, V);
    const double sum = detail::row_exp_sum(g, z, V, mx);
    losses[t] = static_cast<float>(static_cast<double>(mx) + std::log(sum) - static_cast<double>(z[targets[t]]));
    if (g != nullptr) {
      const float k = static_cast<float>(static_cast<double>(dloss) / sum);
      for (i64 j = 0; j < V; ++j) g[j] *= k;
      g[targets[t]] -= dloss;
    }
  }
  return static_cast<float>(detail::ordered_sum(T, [&](i64 t) { return static_cast<double>(losses[t]); }) /
                            static_cast<double>(T));
}

// Vocabulary-parallel softmax cross-entropy (Megatron-LM's vocab_parallel_cross_entropy): this
// rank holds the logits of vocabulary rows [first, first + V) and the group holds them all.
// Three reductions over the group: each row's maximum (max_all(float*, n)), then its sum of
// exponentials and its target's logit (sum_all(double*, n), the target's logit from the one rank
// that holds it). losses, dlogits and the returned mean are those of cross_entropy over the whole
// row, the same on every rank; dlogits covers this rank's V columns. With one rank (reductions
// that do nothing) the results are cross_entropy's, bit for bit.
template <class MaxAll, class SumAll>
float cross_entropy_vocab_parallel(float* losses, float* dlogits, const float* logits, const std::int32_t* targets,
                                   i64 T, i64 V, i64 first, float dloss, MaxAll&& max_all, SumAll&& sum_all) {
  std::vector<float> mx(static_cast<std::size_t>(T)), own;
  std::vector<double> sums(static_cast<std::size_t>(2 * T));  // [sum of exp | target logit] per row
  if (losses == nullptr) {
    own.resize(static_cast<std::size_t>(T));
    losses = own.data();
  }
#pragma omp parallel for schedule(static)
  for (i64 t = 0; t < T; ++t) mx[t] = detail::row_max(logits + t * V, V);
  max_all(mx.data(), T);
#pragma omp parallel for schedule(static)
  for (i64 t = 0; t < T; ++t) {
    const i64 j = static_cast<i64>(targets[t]) - first;
    sums[t] = detail::row_exp_sum(dlogits != nullptr ? dlogits + t * V : nullptr, logits + t * V, V, mx[t]);
    sums[T + t] = j >= 0 && j < V ? static_cast<double>(logits[t * V + j]) : 0.0;
  }
  sum_all(sums.data(), 2 * T);
#pragma omp parallel for schedule(static)
  for (i64 t = 0; t < T; ++t) {
    losses[t] = static_cast<float>(static_cast<double>(mx[t]) + std::log(sums[t]) - sums[T + t]);
    if (dlogits == nullptr) continue;
    float* g = dlogits + t * V;
    const float k = static_cast<float>(static_cast<double>(dloss) / sums[t]);
    for (i64 j = 0; j < V; ++j) g[j] *= k;
    const i64 j = static_cast<i64>(targets[t]) - first;
    if (j >= 0 && j < V) g[j] -= dloss;
  }
  return static_cast<float>(detail::ordered_sum(T, [&](i64 t) { return static_cast<double>(losses[t]); }) /
                            static_cast<double>(T));
}

// ---- optimizer ------------------------------------------------------------------------------

struct adamw_config {
  float lr = 3e-4f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.1f;
};

namespace detail {
// AdamW (Loshchilov & Hutter 2019, decoupled weight decay) on n parameters with each gradient
// taken as grads[i] x grad_scale; step counts from 1 (bias correction).
inline void adamw_pass(float* params, const float* grads, float* m, float* v, i64 n, const adamw_config& c, i64 step,
                       float grad_scale) {
  const float bc1 = 1.0f - std::pow(c.beta1, static_cast<float>(step));
  const float bc2 = 1.0f - std::pow(c.beta2, static_cast<float>(step));
#pragma omp parallel for schedule(static)
  for (i64 i = 0; i < n; ++i) {
    const float g = grads[i] * grad_scale;
    m[i] = c.beta1 * m[i] + (1.0f - c.beta1) * g;
    v[i] = c.beta2 * v[i] + (1.0f - c.beta2) * g * g;
    const float mhat = m[i] / bc1, vhat = v[i] / bc2;
    params[i] -= c.lr * (mhat / (std::sqrt(vhat) + c.eps) + c.weight_decay * params[i]);
  }
}
// The factor that brings a gradient of L2 norm `norm` down to max_norm (Pascanu et al. 2013),
// or 1 when it is within it or clipping is off (max_norm <= 0).
inline float clip_factor(float norm, float max_norm) {
  return max_norm > 0 && norm > max_norm ? max_norm / (norm + 1e-6f) : 1.0f;
}
}  // namespace detail

// One AdamW step on n parameters; step counts from 1 (bias correction).
inline void adamw(float* params, const float* grads, float* m, float* v, i64 n, const adamw_config& c, i64 step) {
  detail::adamw_pass(params, grads, m, v, n, c, step, 1.0f);
}

// sum_i x[i]^2 in double, in a fixed order (a part of a norm the caller adds up over ranks).
inline double sum_of_squares(const float* x, i64 n) {
  return detail::ordered_sum(n, [&](i64 i) { return static_cast<double>(x[i]) * x[i]; });
}

// The global L2 norm of n gradients (fixed-order sum in double).
inline float grad_norm(const float* grads, i64 n) { return static_cast<float>(std::sqrt(sum_of_squares(grads, n))); }

// The global L2 norm of n gradients; when it exceeds max_norm, scales them by
// max_norm / norm (Pascanu et al. 2013). Returns the norm before clipping.
inline float clip_grad_norm(float* grads, i64 n, float max_norm) {
  const float norm = grad_norm(grads, n);
  const float k = detail::clip_factor(norm, max_norm);
  if (k != 1.0f) {
#pragma omp parallel for schedule(static)
    for (i64 i = 0; i < n; ++i) grads[i] *= k;
  }
  return norm;
}

// One AdamW step with the gradients scaled as clipping to max_norm asks, given their global
// norm (computed by the caller over every rank that holds a part of the model).
inline void clipped_adamw(float* params, const float* grads, float* m, float* v, i64 n, float norm, float max_norm,
                          const adamw_config& c, i64 step) {
  detail::adamw_pass(params, grads, m, v, n, c, step, detail::clip_factor(norm, max_norm));
}

// clip_grad_norm then adamw, bit for bit, in two passes instead of three: the norm, then the
// update with each gradient scaled on the fly (the gradients are left as they were, unscaled).
// Returns the norm before clipping.
inline float clip_and_adamw(float* params, const float* grads, float* m, float* v, i64 n, float max_norm,
                            const adamw_config& c, i64 step) {
  const float norm = grad_norm(grads, n);
  clipped_adamw(params, grads, m, v, n, norm, max_norm, c, step);
  return norm;
}

}  // namespace trainperf::kernels::cpu
