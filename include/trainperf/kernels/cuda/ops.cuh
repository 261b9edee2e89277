// trainperf — CUDA kernels for the parts of a Llama training step other than matmul and
// attention: RMSNorm, RoPE, SwiGLU, embedding, fused softmax cross-entropy with its mean, AdamW,
// global gradient norm and clipping, residual add and dtype casts. They mirror the fp32 CPU
// kernels of <trainperf/kernels/cpu/kernels.hpp>: same layouts, same formulas, same
// accumulate-vs-overwrite conventions, in mixed precision:
//   - activations and their gradients are T = __nv_bfloat16 or __half (row-major, contiguous);
//     every result is computed in fp32 and rounded to T once;
//   - every reduction (sums of squares, dot products, softmax sums, norms, means) is fp32
//     (the CPU kernels accumulate some of them in double: expect fp32-level differences);
//   - small parameters (RMSNorm weights), parameter gradients, AdamW master parameters and state
//     are fp32.
// Accumulate (+=) like the CPU kernels: every parameter gradient (rmsnorm dweight, embedding
// dtable) and the input gradients of rmsnorm_backward (dinp) and swiglu_backward (dgate, dup),
// read as T, added in fp32 and rounded once; a trainer zeroes its gradient buffers once per step.
// Overwrite: forward outputs, rope (in place), cross_entropy's losses and dlogits, casts, norms.
//
// Determinism: no floating-point atomics. Every reduction runs in a fixed order that depends only
// on the shape and on whether the pointers allow 16-byte vectors (cudaMalloc's do), so two runs
// with the same inputs on the same GPU are bit-identical.
// Arguments are checked on the host before any launch: a bad one throws
// trainperf::cuda::cuda_error naming the function, the argument, its value and the fix. Device
// contents (token ids, targets) cannot be checked on the host: an id outside [0, vocab) gives a
// NaN row, loss or no gradient contribution, never an out-of-bounds access.
// Every function is asynchronous on its cudaStream_t. Workspace arguments may be null: the
// function then allocates and frees its scratch on the stream (cudaMallocAsync/cudaFreeAsync).
// Compiled only under nvcc; never included by trainperf.hpp.
#pragma once

#if !defined(__CUDACC__)
#error "trainperf/kernels/cuda/ops.cuh defines CUDA kernels: include it from a .cu file compiled by nvcc"
#endif

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math_constants.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "check.cuh"
#include "ptx.cuh"

namespace trainperf::cuda {

using i64 = std::int64_t;

// AdamW hyper-parameters: the same fields, defaults and meaning as
// trainperf::kernels::cpu::adamw_config (that header needs Eigen, so it is not included here).
struct adamw_config {
  float lr = 3e-4f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.1f;
};

// Rows per block of rmsnorm_backward: each block sums its rows' dweight contributions in shared
// memory, then the per-block partial sums are added in block order.
inline constexpr i64 rmsnorm_backward_rows_per_block = 32;
// Partial sums of grad_norm's first pass (at most).
inline constexpr i64 grad_norm_max_blocks = 1024;

namespace detail_ops {

template <class T>
inline constexpr bool is_half_precision = std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>;
template <class T>
inline constexpr bool is_storage = is_half_precision<T> || std::is_same_v<T, float>;

// ---- device helpers -----------------------------------------------------------------------

using ptx::from_float;
using ptx::to_float;

// N consecutive elements moved with one (or, for 32 bytes, two) vector loads/stores; the address
// must be aligned to the pack's size, which the host checks before choosing N > 1.
template <class T, int N>
struct alignas(sizeof(T) * N) pack {
  T v[N];
};
template <int N, class T>
__device__ __forceinline__ pack<T, N> load(const T* p) {
  return *reinterpret_cast<const pack<T, N>*>(p);
}
template <int N, class T>
__device__ __forceinline__ void store(T* p, const pack<T, N>& x) {
  *reinterpret_cast<pack<T, N>*>(p) = x;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;  // a butterfly of commutative adds: every lane holds the same bits
}
// The sum over the block, returned to every thread (bit-identical in all of them); blockDim.x is a
// multiple of 32; red is a __shared__ float[32] of the caller, reusable right after the call.
__device__ __forceinline__ float block_sum(float v, float* red) {
  v = warp_sum(v);
  __syncthreads();  // a previous call's readers of red are done
  if ((threadIdx.x & 31u) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  const unsigned lane = threadIdx.x & 31u;
  return warp_sum(lane < (blockDim.x >> 5) ? red[lane] : 0.0f);
}

// Online softmax statistics (Milakov & Gimelshein 2018): m the running max, s = sum exp(z - m).
__device__ __forceinline__ void online_add(float& m, float& s, float z) {
  if (z > m) {
    s = s * expf(m - z) + 1.0f;  // rescale to the new max; m = -inf gives s = 1
    m = z;
  } else {
    s += z == -CUDART_INF_F ? 0.0f : expf(z - m);  // NaN z makes s NaN
  }
}
// Merges (m2, s2) into (m, s). Exactly commutative (no contraction into FMAs), so both lanes of a
// butterfly step get the same bits.
__device__ __forceinline__ void online_merge(float& m, float& s, float m2, float s2) {
  const float mx = fmaxf(m, m2);
  const float e1 = m == mx ? 1.0f : expf(m - mx), e2 = m2 == mx ? 1.0f : expf(m2 - mx);
  s = __fadd_rn(__fmul_rn(s, e1), __fmul_rn(s2, e2));
  m = mx;
}
__device__ __forceinline__ void block_online_merge(float& m, float& s, float* red_m, float* red_s) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, offset), s2 = __shfl_xor_sync(0xffffffffu, s, offset);
    online_merge(m, s, m2, s2);
  }
  __syncthreads();
  const unsigned lane = threadIdx.x & 31u;
  if (lane == 0) red_m[threadIdx.x >> 5] = m, red_s[threadIdx.x >> 5] = s;
  __syncthreads();
  const bool live = lane < (blockDim.x >> 5);
  m = live ? red_m[lane] : -CUDART_INF_F;
  s = live ? red_s[lane] : 0.0f;
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, offset), s2 = __shfl_xor_sync(0xffffffffu, s, offset);
    online_merge(m, s, m2, s2);
  }
}

__device__ __forceinline__ i64 global_thread() { return static_cast<i64>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ i64 grid_threads() { return static_cast<i64>(gridDim.x) * blockDim.x; }

// ---- element-wise kernels: Op::apply<N>(i) handles elements [i, i + N) ------------------------

template <int N, class Op>
__global__ void elementwise_kernel(Op op, i64 n) {
  const i64 nvec = n / N;
  for (i64 v = global_thread(); v < nvec; v += grid_threads()) op.template apply<N>(v * N);
  for (i64 i = nvec * N + global_thread(); i < n; i += grid_threads()) op.template apply<1>(i);
}

template <class T>
struct swiglu_forward_op {
  static constexpr int width = 16 / sizeof(T);
  T* out;
  const T* gate;
  const T* up;
  template <int N>
  __device__ void apply(i64 i) const {
    const pack<T, N> g = load<N>(gate + i), u = load<N>(up + i);
    pack<T, N> o;
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const float x = to_float(g.v[k]), sig = 1.0f / (1.0f + expf(-x));
      o.v[k] = from_float<T>(x * sig * to_float(u.v[k]));  // silu(gate) x up (Shazeer 2020, SwiGLU)
    }
    store<N>(out + i, o);
  }
};

template <class T>
struct swiglu_backward_op {
  static constexpr int width = 16 / sizeof(T);
  T* dgate;
  T* dup;
  const T* dout;
  const T* gate;
  const T* up;
  template <int N>
  __device__ void apply(i64 i) const {
    const pack<T, N> d = load<N>(dout + i), g = load<N>(gate + i), u = load<N>(up + i);
    pack<T, N> dg = load<N>(dgate + i), du = load<N>(dup + i);
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const float x = to_float(g.v[k]), sig = 1.0f / (1.0f + expf(-x)), dy = to_float(d.v[k]);
      // d silu(x)/dx = sig (1 + x (1 - sig)), as kernels/cpu swiglu_backward
      dg.v[k] = from_float<T>(to_float(dg.v[k]) + dy * to_float(u.v[k]) * sig * (1.0f + x * (1.0f - sig)));
      du.v[k] = from_float<T>(to_float(du.v[k]) + dy * x * sig);
    }
    store<N>(dgate + i, dg);
    store<N>(dup + i, du);
  }
};

template <class T>
struct add_op {
  static constexpr int width = 16 / sizeof(T);
  T* y;
  const T* x;
  template <int N>
  __device__ void apply(i64 i) const {
    pack<T, N> a = load<N>(y + i);
    const pack<T, N> b = load<N>(x + i);
#pragma unroll
    for (int k = 0; k < N; ++k) a.v[k] = from_float<T>(to_float(a.v[k]) + to_float(b.v[k]));
    store<N>(y + i, a);
  }
};

template <class Out, class In>
struct cast_op {
  static constexpr int width = 16 / (sizeof(Out) > sizeof(In) ? sizeof(Out) : sizeof(In));
  Out* out;
  const In* in;
  template <int N>
  __device__ void apply(i64 i) const {
    const pack<In, N> a = load<N>(in + i);
    pack<Out, N> b;
#pragma unroll
    for (int k = 0; k < N; ++k) b.v[k] = from_float<Out>(to_float(a.v[k]));
    store<N>(out + i, b);
  }
};

// out[t, c] = table[tokens[t], c]; vectors never cross a row (the host requires C % N == 0).
template <class T>
struct embedding_forward_op {
  static constexpr int width = 16 / sizeof(T);
  T* out;
  const std::int32_t* tokens;
  const T* table;
  i64 C, V;
  i64 first = 0;       // the vocabulary id of table's row 0
  bool shard = false;  // table is one shard of the vocabulary: another shard's id gives a zero row
  template <int N>
  __device__ void apply(i64 i) const {
    const i64 t = i / C, c = i % C;
    const i64 row = static_cast<i64>(tokens[t]) - first;
    pack<T, N> o;
    if (row >= 0 && row < V) {
      o = load<N>(table + row * C + c);
    } else {
#pragma unroll
      for (int k = 0; k < N; ++k) o.v[k] = from_float<T>(shard ? 0.0f : CUDART_NAN_F);  // NaN: out of vocabulary
    }
    store<N>(out + i, o);
  }
};

struct scale_op {
  static constexpr int width = 4;
  float* x;
  const float* scale;
  template <int N>
  __device__ void apply(i64 i) const {
    const float k = *scale;
    pack<float, N> a = load<N>(x + i);
#pragma unroll
    for (int j = 0; j < N; ++j) a.v[j] *= k;
    store<N>(x + i, a);
  }
};

template <class T>
struct adamw_op {
  static constexpr int width = 4;
  float* params;
  T* copy;  // may be null
  const float* grads;
  float* m;
  float* v;
  const float* grad_scale;  // may be null
  float lr, beta1, beta2, eps, weight_decay, bc1, bc2;
  template <int N>
  __device__ void apply(i64 i) const {
    const float gs = grad_scale != nullptr ? *grad_scale : 1.0f;
    pack<float, N> p = load<N>(params + i), mm = load<N>(m + i), vv = load<N>(v + i);
    const pack<float, N> g = load<N>(grads + i);
    pack<T, N> c;
#pragma unroll
    for (int k = 0; k < N; ++k) {
      // AdamW (Loshchilov & Hutter 2019, algorithm 2), as kernels/cpu adamw
      const float gk = g.v[k] * gs;
      mm.v[k] = beta1 * mm.v[k] + (1.0f - beta1) * gk;
      vv.v[k] = beta2 * vv.v[k] + (1.0f - beta2) * gk * gk;
      const float mhat = mm.v[k] / bc1, vhat = vv.v[k] / bc2;
      p.v[k] -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * p.v[k]);
      c.v[k] = from_float<T>(p.v[k]);
    }
    store<N>(params + i, p);
    store<N>(m + i, mm);
    store<N>(v + i, vv);
    if (copy != nullptr) store<N>(copy + i, c);
  }
};

// ---- row kernels ------------------------------------------------------------------------------

template <class T, int N>
__global__ void rmsnorm_forward_kernel(T* __restrict__ out, float* __restrict__ rstd, const T* __restrict__ inp,
                                       const float* __restrict__ weight, i64 C, float eps) {
  __shared__ float red[32];
  const i64 row = blockIdx.x;
  const T* x = inp + row * C;
  const i64 step = static_cast<i64>(blockDim.x) * N;
  float ss = 0.0f;
  for (i64 c = static_cast<i64>(threadIdx.x) * N; c < C; c += step) {
    const pack<T, N> a = load<N>(x + c);
#pragma unroll
    for (int k = 0; k < N; ++k) ss += to_float(a.v[k]) * to_float(a.v[k]);
  }
  ss = block_sum(ss, red);
  const float r = 1.0f / sqrtf(ss / static_cast<float>(C) + eps);  // 1 / rms(x) (Zhang & Sennrich 2019, RMSNorm)
  if (threadIdx.x == 0) rstd[row] = r;
  T* o = out + row * C;
  for (i64 c = static_cast<i64>(threadIdx.x) * N; c < C; c += step) {
    const pack<T, N> a = load<N>(x + c);
    const pack<float, N> w = load<N>(weight + c);
    pack<T, N> y;
#pragma unroll
    for (int k = 0; k < N; ++k) y.v[k] = from_float<T>(to_float(a.v[k]) * r * w.v[k]);
    store<N>(o + c, y);
  }
}

// Block b handles rows [b R, (b + 1) R) and writes its dweight contribution to partial[b, :];
// dyn holds C floats of this block's running dweight sums, each owned by one thread.
template <class T, int N>
__global__ void rmsnorm_backward_kernel(T* __restrict__ dinp, float* __restrict__ partial, const T* __restrict__ dout,
                                        const T* __restrict__ inp, const float* __restrict__ weight,
                                        const float* __restrict__ rstd, i64 rows, i64 C) {
  extern __shared__ float dyn[];
  __shared__ float red[32];
  const i64 step = static_cast<i64>(blockDim.x) * N, first = static_cast<i64>(threadIdx.x) * N;
  for (i64 c = first; c < C; c += step)
#pragma unroll
    for (int k = 0; k < N; ++k) dyn[c + k] = 0.0f;
  const i64 r0 = static_cast<i64>(blockIdx.x) * rmsnorm_backward_rows_per_block;
  const i64 r1 = r0 + rmsnorm_backward_rows_per_block < rows ? r0 + rmsnorm_backward_rows_per_block : rows;
  for (i64 t = r0; t < r1; ++t) {
    const T* x = inp + t * C;
    const T* g = dout + t * C;
    T* dx = dinp + t * C;
    float dot = 0.0f;  // sum_c g_c w_c x_c
    for (i64 c = first; c < C; c += step) {
      const pack<T, N> a = load<N>(x + c), b = load<N>(g + c);
      const pack<float, N> w = load<N>(weight + c);
#pragma unroll
      for (int k = 0; k < N; ++k) dot += to_float(b.v[k]) * w.v[k] * to_float(a.v[k]);
    }
    dot = block_sum(dot, red);
    const float r = rstd[t];
    // d(x r w)/dx with r = (mean(x^2) + eps)^(-1/2): g w r - x r^3 mean(g w x), as kernels/cpu
    const float kx = dot / static_cast<float>(C) * r * r * r;
    for (i64 c = first; c < C; c += step) {
      const pack<T, N> a = load<N>(x + c), b = load<N>(g + c);
      const pack<float, N> w = load<N>(weight + c);
      pack<T, N> d = load<N>(dx + c);
#pragma unroll
      for (int k = 0; k < N; ++k) {
        const float xv = to_float(a.v[k]), gv = to_float(b.v[k]);
        d.v[k] = from_float<T>(to_float(d.v[k]) + (gv * w.v[k] * r - kx * xv));
        dyn[c + k] += gv * xv * r;  // d(x r w)/dw = x r
      }
      store<N>(dx + c, d);
    }
  }
  float* out = partial + static_cast<i64>(blockIdx.x) * C;
  for (i64 c = first; c < C; c += step)
#pragma unroll
    for (int k = 0; k < N; ++k) out[c + k] = dyn[c + k];
}

// dst[c] += partial[0, c] + partial[1, c] + ... in block order (one thread per column).
template <int Unused = 0>
__global__ void add_column_sums_kernel(float* __restrict__ dst, const float* __restrict__ partial, i64 blocks, i64 C) {
  const i64 c = global_thread();
  if (c >= C) return;
  float acc = dst[c];
  for (i64 b = 0; b < blocks; ++b) acc += partial[b * C + c];
  dst[c] = acc;
}

template <class T, int N>
__global__ void rope_kernel(T* __restrict__ x, i64 rows, i64 H, i64 D, float theta, i64 pos0, bool inverse) {
  const i64 half = D / 2, groups = half / N, total = rows * groups;
  for (i64 idx = global_thread(); idx < total; idx += grid_threads()) {
    const i64 t = idx / groups, i0 = (idx % groups) * N;
    float cs[N], sn[N];
#pragma unroll
    for (int k = 0; k < N; ++k) {
      // angle = pos x theta^(-2i/D) (Su et al. 2021, RoFormer), in double exactly as kernels/cpu rope_rotate
      const double freq = pow(static_cast<double>(theta), -2.0 * static_cast<double>(i0 + k) / static_cast<double>(D));
      const double angle = static_cast<double>(pos0 + t) * freq;
      cs[k] = static_cast<float>(cos(angle));
      sn[k] = static_cast<float>(inverse ? -sin(angle) : sin(angle));
    }
    for (i64 h = 0; h < H; ++h) {
      T* p = x + (t * H + h) * D + i0;
      pack<T, N> a = load<N>(p), b = load<N>(p + half);
#pragma unroll
      for (int k = 0; k < N; ++k) {
        const float u = to_float(a.v[k]), w = to_float(b.v[k]);
        // the same fp32 operations as the CPU kernel (no FMA contraction)
        a.v[k] = from_float<T>(__fsub_rn(__fmul_rn(u, cs[k]), __fmul_rn(w, sn[k])));
        b.v[k] = from_float<T>(__fadd_rn(__fmul_rn(u, sn[k]), __fmul_rn(w, cs[k])));
      }
      store<N>(p, a);
      store<N>(p + half, b);
    }
  }
}

// Thread (x, part) owns channels [c, c + N) of every vocabulary row with id % parts == part and
// adds dout rows into them in token order: no two threads write the same element, and each
// element's sum runs in the CPU kernel's order (t ascending).
inline constexpr int embedding_tile = 1024;
template <class T, int N>
__global__ void embedding_backward_kernel(float* __restrict__ dtable, const T* __restrict__ dout,
                                          const std::int32_t* __restrict__ tokens, i64 n_tokens, i64 C, i64 V,
                                          int parts, i64 first) {
  __shared__ std::int32_t tile[embedding_tile];
  const i64 c = global_thread() * N;
  const int part = static_cast<int>(blockIdx.y);
  for (i64 t0 = 0; t0 < n_tokens; t0 += embedding_tile) {
    const i64 count = n_tokens - t0 < embedding_tile ? n_tokens - t0 : embedding_tile;
    __syncthreads();  // the previous tile is consumed
    for (i64 j = threadIdx.x; j < count; j += blockDim.x) tile[j] = tokens[t0 + j];
    __syncthreads();
    if (c >= C) continue;
    for (i64 j = 0; j < count; ++j) {
      const i64 tok = static_cast<i64>(tile[j]) - first;  // the row of this table (a vocabulary shard's)
      if (tok < 0 || tok >= V || tok % parts != part) continue;
      float* row = dtable + tok * C + c;
      pack<float, N> acc = load<N>(row);
      const pack<T, N> g = load<N>(dout + (t0 + j) * C + c);
#pragma unroll
      for (int k = 0; k < N; ++k) acc.v[k] += to_float(g.v[k]);
      store<N>(row, acc);
    }
  }
}

// A row's online softmax statistics over its V logits (this thread's elements, then the block's):
// m the max, s = sum exp(z - m), in every thread.
template <class T, int N>
__device__ __forceinline__ void row_online_stats(const T* z, i64 V, float& m, float& s, float* red_m, float* red_s) {
  const i64 step = static_cast<i64>(blockDim.x) * N;
  m = -CUDART_INF_F, s = 0.0f;
  for (i64 j = static_cast<i64>(threadIdx.x) * N; j < V; j += step) {
    const pack<T, N> a = load<N>(z + j);
#pragma unroll
    for (int k = 0; k < N; ++k) online_add(m, s, to_float(a.v[k]));
  }
  block_online_merge(m, s, red_m, red_s);
}
// A row's gradient g_j = dloss x exp(z_j - shift) / divisor - dloss [j == target] (softmax
// cross-entropy: softmax_j - onehot_j), each element read and written by the same thread.
template <class T, int N>
__device__ __forceinline__ void row_softmax_gradient(T* g, const T* z, i64 V, float shift, float divisor, i64 target,
                                                     float dloss) {
  const i64 step = static_cast<i64>(blockDim.x) * N;
  for (i64 j = static_cast<i64>(threadIdx.x) * N; j < V; j += step) {
    const pack<T, N> a = load<N>(z + j);
    pack<T, N> d;
#pragma unroll
    for (int k = 0; k < N; ++k) {
      float v = dloss * expf(to_float(a.v[k]) - shift) / divisor;
      if (j + k == target) v -= dloss;
      d.v[k] = from_float<T>(v);
    }
    store<N>(g + j, d);
  }
}

// One block per row: an online max / sum pass, then (when dlogits is given) a second pass that
// writes dloss x (softmax - onehot). Each element is read and then written by the same thread,
// and the target logit is read before the first barrier, so dlogits may alias logits.
template <class T, int N>
__global__ void cross_entropy_kernel(float* __restrict__ losses, T* dlogits, const T* logits,
                                     const std::int32_t* __restrict__ targets, i64 V, float dloss) {
  __shared__ float red_m[32], red_s[32];
  const i64 row = blockIdx.x;
  const T* z = logits + row * V;
  const std::int32_t target = targets[row];
  const bool valid = target >= 0 && target < V;
  const float z_target = valid && threadIdx.x == 0 ? to_float(z[target]) : CUDART_NAN_F;
  float m = 0, s = 0;
  row_online_stats<T, N>(z, V, m, s, red_m, red_s);
  const float lse = m + logf(s);
  if (threadIdx.x == 0) losses[row] = lse - z_target;  // -log softmax(z)[target] = lse - z_target
  // d loss / d z_j = softmax_j - [j == target] (softmax cross-entropy), as kernels/cpu cross_entropy
  // (dividing by 1 is exact)
  if (dlogits != nullptr) row_softmax_gradient<T, N>(dlogits + row * V, z, V, lse, 1.0f, target, dloss);
}

// Vocabulary-parallel cross-entropy (Megatron-LM's), per row of this rank's shard of V logits
// beginning at vocabulary id first: the shard's online max and sum of exp, and the target's logit
// when the target is in the shard (0 otherwise: the group's sum finds it on its shard).
template <class T, int N>
__global__ void vp_cross_entropy_stats_kernel(float* __restrict__ local_max, float* __restrict__ group_max,
                                              float* __restrict__ sums, const T* __restrict__ logits,
                                              const std::int32_t* __restrict__ targets, i64 rows, i64 V, i64 first) {
  __shared__ float red_m[32], red_s[32];
  const i64 row = blockIdx.x;
  const T* z = logits + row * V;
  float m = 0, s = 0;
  row_online_stats<T, N>(z, V, m, s, red_m, red_s);
  if (threadIdx.x != 0) return;
  const i64 j = static_cast<i64>(targets[row]) - first;
  local_max[row] = group_max[row] = m;
  sums[row] = s;
  sums[rows + row] = j >= 0 && j < V ? to_float(z[j]) : 0.0f;
}
// After the group's max: each shard's sum of exp rescaled to it, ready to be summed over the group.
template <int Unused = 0>
__global__ void vp_cross_entropy_rescale_kernel(float* __restrict__ sums, const float* __restrict__ local_max,
                                                const float* __restrict__ group_max, i64 rows) {
  for (i64 row = global_thread(); row < rows; row += grid_threads()) {
    const float m = local_max[row], M = group_max[row];
    sums[row] = m == -CUDART_INF_F ? 0.0f : sums[row] * expf(m - M);
  }
}
// After the group's sums: the loss (every shard writes the same) and this shard's dlogits.
template <class T, int N>
__global__ void vp_cross_entropy_finish_kernel(float* __restrict__ losses, T* dlogits, const T* logits,
                                               const std::int32_t* __restrict__ targets,
                                               const float* __restrict__ group_max, const float* __restrict__ sums,
                                               i64 rows, i64 V, i64 first, float dloss) {
  const i64 row = blockIdx.x;
  const float M = group_max[row], S = sums[row];
  // -log softmax(z)[target] = max + log(sum exp(z - max)) - z_target, over the whole vocabulary
  if (threadIdx.x == 0) losses[row] = M + logf(S) - sums[rows + row];
  if (dlogits == nullptr) return;
  // d loss / d z_j = softmax_j - [j == target], softmax over the group's vocabulary
  row_softmax_gradient<T, N>(dlogits + row * V, logits + row * V, V, M, S, static_cast<i64>(targets[row]) - first,
                             dloss);
}

template <int Threads>
__global__ void __launch_bounds__(Threads) mean_kernel(float* __restrict__ out, const float* __restrict__ x, i64 n) {
  __shared__ float red[32];
  float acc = 0.0f;
  for (i64 i = threadIdx.x; i < n; i += Threads) acc += x[i];
  acc = block_sum(acc, red);
  if (threadIdx.x == 0) *out = acc / static_cast<float>(n);
}

// Partial sums of squares, one per block, each over a fixed grid-stride slice.
template <int N>
__global__ void sum_squares_kernel(float* __restrict__ partial, const float* __restrict__ x, i64 n) {
  __shared__ float red[32];
  float acc = 0.0f;
  const i64 nvec = n / N;
  for (i64 v = global_thread(); v < nvec; v += grid_threads()) {
    const pack<float, N> a = load<N>(x + v * N);
#pragma unroll
    for (int k = 0; k < N; ++k) acc += a.v[k] * a.v[k];
  }
  for (i64 i = nvec * N + global_thread(); i < n; i += grid_threads()) acc += x[i] * x[i];
  acc = block_sum(acc, red);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

template <int Threads>
__global__ void __launch_bounds__(Threads)
    norm_from_partials_kernel(float* __restrict__ norm, const float* __restrict__ partial, i64 blocks) {
  __shared__ float red[32];
  float acc = 0.0f;
  for (i64 i = threadIdx.x; i < blocks; i += Threads) acc += partial[i];
  acc = block_sum(acc, red);
  if (threadIdx.x == 0) *norm = sqrtf(acc);  // L2 norm = sqrt(sum g^2)
}

template <int Unused = 0>
__global__ void clip_scale_kernel(float* __restrict__ scale, const float* __restrict__ norm, float max_norm) {
  const float n = *norm;
  // max_norm / norm when the norm exceeds it (Pascanu et al. 2013, algorithm 1), as kernels/cpu
  *scale = max_norm > 0.0f && n > max_norm ? max_norm / (n + 1e-6f) : 1.0f;
}

// ---- host helpers -------------------------------------------------------------------------------

inline std::string fn_name(const char* fn) { return std::string("trainperf::cuda::") + fn; }

inline void require_size(const char* fn, const char* arg, i64 value, i64 min, const char* meaning) {
  require(value >= min, fn_name(fn) + ": " + arg + " = " + std::to_string(value) + " must be at least " +
                            std::to_string(min) + "; pass " + meaning);
}
inline void require_at_most(const char* fn, const char* arg, i64 value, i64 max, const char* why) {
  require(value <= max, fn_name(fn) + ": " + arg + " = " + std::to_string(value) + " exceeds " + std::to_string(max) +
                            " (" + why + "); split the call into smaller ones");
}
inline void require_pointer(const char* fn, const char* arg, const void* p, i64 elements) {
  require(p != nullptr,
          fn_name(fn) + ": " + arg + " is null; pass a device buffer of " + std::to_string(elements) + " elements");
}
inline bool aligned(const void* p, std::size_t bytes) {
  return p == nullptr || reinterpret_cast<std::uintptr_t>(p) % bytes == 0;
}

inline int threads_for(i64 items, int max_threads) {
  const i64 t = (items + 31) / 32 * 32;
  return static_cast<int>(std::clamp<i64>(t, 32, max_threads));
}

// Grid-stride launches use at most this many blocks (enough to fill any current GPU).
inline constexpr i64 max_grid = i64{1} << 16;
inline int blocks_for(i64 items, int threads) {
  return static_cast<int>(std::clamp<i64>((items + threads - 1) / threads, 1, max_grid));
}

template <class Op>
void launch_elementwise(const Op& op, i64 n, bool vectorizable, cudaStream_t stream) {
  if (n == 0) return;
  constexpr int threads = 256;
  if (vectorizable) {
    elementwise_kernel<Op::width><<<blocks_for((n + Op::width - 1) / Op::width, threads), threads, 0, stream>>>(op, n);
  } else {
    elementwise_kernel<1><<<blocks_for(n, threads), threads, 0, stream>>>(op, n);
  }
  TRAINPERF_CUDA_CHECK_LAUNCH();
}

// Scratch memory: the caller's, or a stream-ordered allocation freed when it goes out of scope
// (the free is ordered after the launches that use it).
class scratch {
 public:
  scratch(float* given, std::size_t floats, cudaStream_t stream) : p_(given), stream_(stream) {
    if (p_ == nullptr && floats > 0) {
      TRAINPERF_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&p_), floats * sizeof(float), stream));
      owned_ = true;
    }
  }
  scratch(const scratch&) = delete;
  scratch& operator=(const scratch&) = delete;
  ~scratch() {
    if (owned_) (void)cudaFreeAsync(p_, stream_);
  }
  [[nodiscard]] float* get() const { return p_; }

 private:
  float* p_;
  cudaStream_t stream_;
  bool owned_ = false;
};

template <class T>
void require_half_precision() {
  static_assert(is_half_precision<T>, "trainperf::cuda ops: T must be __nv_bfloat16 or __half");
}

// The checks both cross-entropies make on their arguments; false when there are no rows.
template <class T>
bool cross_entropy_args(const char* fn, const float* losses, const T* logits, const std::int32_t* targets, i64 rows,
                        i64 V, float dloss) {
  require_half_precision<T>();
  require_size(fn, "rows", rows, 0, "the number of rows (tokens) of logits, 0 or more");
  require_size(fn, "V", V, 1, "the vocabulary size (columns of logits), 1 or more");
  require_at_most(fn, "rows", rows, INT_MAX, "one CUDA block per row");
  require(std::isfinite(dloss),
          fn_name(fn) + ": dloss = " + std::to_string(dloss) + " is not finite; pass 1/rows for the mean loss");
  if (rows == 0) return false;
  require_pointer(fn, "losses", losses, rows);
  require_pointer(fn, "logits", logits, rows * V);
  require_pointer(fn, "targets", targets, rows);
  return true;
}
// launch(std::integral_constant<int, N>, threads) for a kernel of one block per row of V: 16-byte
// vectors where V and the pointers allow them, else one element at a time.
template <class T, class Launch>
void launch_per_row(i64 V, const T* logits, const T* dlogits, Launch&& launch) {
  constexpr int N = 16 / sizeof(T);
  const bool vec = V % N == 0 && aligned(logits, 16) && aligned(dlogits, 16);
  const int threads = threads_for(vec ? V / N : V, 512);
  if (vec)
    launch(std::integral_constant<int, N>{}, threads);
  else
    launch(std::integral_constant<int, 1>{}, threads);
  TRAINPERF_CUDA_CHECK_LAUNCH();
}

template <class T>
void embedding_forward(T* out, const std::int32_t* tokens, const T* table, i64 n_tokens, i64 C, i64 first, i64 V,
                       bool shard, cudaStream_t stream) {
  require_half_precision<T>();
  const char* fn = "embedding_forward";
  require_size(fn, "n_tokens", n_tokens, 0, "the number of tokens, 0 or more");
  require_size(fn, "C", C, 1, "the embedding width, 1 or more");
  require_size(fn, "first", first, 0, "the vocabulary id of the table's first row, 0 or more");
  require_size(fn, "V", V, 1, "the number of rows of table (vocabulary size), 1 or more");
  if (n_tokens == 0) return;
  require_pointer(fn, "out", out, n_tokens * C);
  require_pointer(fn, "tokens", tokens, n_tokens);
  require_pointer(fn, "table", table, V * C);
  constexpr int N = 16 / sizeof(T);
  launch_elementwise(embedding_forward_op<T>{out, tokens, table, C, V, first, shard}, n_tokens * C,
                     C % N == 0 && aligned(out, 16) && aligned(table, 16), stream);
}

template <class T>
void embedding_backward(float* dtable, const T* dout, const std::int32_t* tokens, i64 n_tokens, i64 C, i64 first, i64 V,
                        cudaStream_t stream) {
  require_half_precision<T>();
  const char* fn = "embedding_backward";
  require_size(fn, "n_tokens", n_tokens, 0, "the number of tokens, 0 or more");
  require_size(fn, "C", C, 1, "the embedding width, 1 or more");
  require_size(fn, "first", first, 0, "the vocabulary id of dtable's first row, 0 or more");
  require_size(fn, "V", V, 1, "the number of rows of dtable (vocabulary size), 1 or more");
  if (n_tokens == 0) return;
  require_pointer(fn, "dtable", dtable, V * C);
  require_pointer(fn, "dout", dout, n_tokens * C);
  require_pointer(fn, "tokens", tokens, n_tokens);
  constexpr int N = 16 / sizeof(T);
  const bool vec = C % N == 0 && aligned(dtable, 32) && aligned(dout, 16);
  const i64 columns = vec ? C / N : C;
  const int threads = threads_for(columns, 256);
  const i64 xblocks = (columns + threads - 1) / threads;
  // Enough vocabulary partitions for ~64k threads; a partition count never changes the result.
  const int parts = static_cast<int>(std::clamp<i64>((i64{1} << 16) / (xblocks * threads), 1, std::min<i64>(V, 1024)));
  const dim3 grid(static_cast<unsigned>(xblocks), static_cast<unsigned>(parts));
  if (vec)
    embedding_backward_kernel<T, N><<<grid, threads, 0, stream>>>(dtable, dout, tokens, n_tokens, C, V, parts, first);
  else
    embedding_backward_kernel<T, 1><<<grid, threads, 0, stream>>>(dtable, dout, tokens, n_tokens, C, V, parts, first);
  TRAINPERF_CUDA_CHECK_LAUNCH();
}

}  // namespace detail_ops

// ---- RMSNorm (Zhang & Sennrich 2019): out = inp / rms(inp) * weight, rms over C ---------------
// out, inp: T [rows, C]; weight: fp32 [C]; rstd: fp32 [rows], 1 / rms, saved for the backward.

template <class T>
void rmsnorm_forward(T* out, float* rstd, const T* inp, const float* weight, i64 rows, i64 C, float eps,
                     cudaStream_t stream) {
  using namespace detail_ops;
  require_half_precision<T>();
  const char* fn = "rmsnorm_forward";
  require_size(fn, "rows", rows, 0, "the number of rows (tokens) of inp, 0 or more");
  require_size(fn, "C", C, 1, "the number of channels per row of inp, 1 or more");
  require_at_most(fn, "rows", rows, INT_MAX, "one CUDA block per row");
  require(eps >= 0.0f && std::isfinite(eps),
          fn_name(fn) + ": eps = " + std::to_string(eps) + " must be finite and non-negative; pass e.g. 1e-5");
  if (rows == 0) return;
  require_pointer(fn, "out", out, rows * C);
  require_pointer(fn, "rstd", rstd, rows);
  require_pointer(fn, "inp", inp, rows * C);
  require_pointer(fn, "weight", weight, C);
  constexpr int N = 16 / sizeof(T);
  const bool vec = C % N == 0 && aligned(out, 16) && aligned(inp, 16) && aligned(weight, 32);
  const int threads = threads_for(vec ? C / N : C, 512);
  if (vec)
    rmsnorm_forward_kernel<T, N><<<static_cast<int>(rows), threads, 0, stream>>>(out, rstd, inp, weight, C, eps);
  else
    rmsnorm_forward_kernel<T, 1><<<static_cast<int>(rows), threads, 0, stream>>>(out, rstd, inp, weight, C, eps);
  TRAINPERF_CUDA_CHECK_LAUNCH();
}

// Floats of workspace rmsnorm_backward needs: one row of C partial sums per block of
// rmsnorm_backward_rows_per_block rows.
inline std::size_t rmsnorm_backward_workspace_floats(i64 rows, i64 C) {
  if (rows <= 0 || C <= 0) return 0;
  return static_cast<std::size_t>((rows + rmsnorm_backward_rows_per_block - 1) / rmsnorm_backward_rows_per_block) *
         static_cast<std::size_t>(C);
}

// dinp (T) += d/dinp; dweight (fp32) += d/dweight, deterministic: per-block partial sums in
// shared memory, then added in block order (no atomics). rstd comes from rmsnorm_forward.
// C fp32 values of shared memory per block: C up to ~12k everywhere, ~56k on H100 (opt-in).
template <class T>
void rmsnorm_backward(T* dinp, float* dweight, const T* dout, const T* inp, const float* weight, const float* rstd,
                      i64 rows, i64 C, float* workspace, cudaStream_t stream) {
  using namespace detail_ops;
  require_half_precision<T>();
  const char* fn = "rmsnorm_backward";
  require_size(fn, "rows", rows, 0, "the number of rows (tokens) of inp, 0 or more");
  require_size(fn, "C", C, 1, "the number of channels per row of inp, 1 or more");
  if (rows == 0) return;
  require_pointer(fn, "dinp", dinp, rows * C);
  require_pointer(fn, "dweight", dweight, C);
  require_pointer(fn, "dout", dout, rows * C);
  require_pointer(fn, "inp", inp, rows * C);
  require_pointer(fn, "weight", weight, C);
  require_pointer(fn, "rstd", rstd, rows);
  const i64 blocks = (rows + rmsnorm_backward_rows_per_block - 1) / rmsnorm_backward_rows_per_block;
  const std::size_t shared = static_cast<std::size_t>(C) * sizeof(float);
  int device = 0, optin = 0;
  TRAINPERF_CUDA_CHECK(cudaGetDevice(&device));
  TRAINPERF_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  const std::size_t room = static_cast<std::size_t>(optin) - 32 * sizeof(float);  // minus the static red[32]
  require(shared <= room, fn_name(fn) + ": C = " + std::to_string(C) + " needs " + std::to_string(shared) +
                              " bytes of shared memory per block, more than this device's " + std::to_string(room) +
                              "; C must be at most " + std::to_string(room / sizeof(float)));
  constexpr int N = 16 / sizeof(T);
  const bool vec = C % N == 0 && aligned(dinp, 16) && aligned(dout, 16) && aligned(inp, 16) && aligned(weight, 32);
  const int threads = threads_for(vec ? C / N : C, 512);
  const scratch ws(workspace, rmsnorm_backward_workspace_floats(rows, C), stream);
  const auto launch = [&](auto kernel) {
    if (shared > 48 * 1024)
      TRAINPERF_CUDA_CHECK(
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)));
    kernel<<<static_cast<int>(blocks), threads, shared, stream>>>(dinp, ws.get(), dout, inp, weight, rstd, rows, C);
    TRAINPERF_CUDA_CHECK_LAUNCH();
  };
  if (vec)
    launch(rmsnorm_backward_kernel<T, N>);
  else
    launch(rmsnorm_backward_kernel<T, 1>);
  add_column_sums_kernel<0><<<blocks_for(C, 256), 256, 0, stream>>>(dweight, ws.get(), blocks, C);
  TRAINPERF_CUDA_CHECK_LAUNCH();
}

// ---- RoPE (Su et al. 2021), half-split pairs, in place on x: T [rows, H, D] --------------------
// Element i of each head pairs with i + D/2; both rotate by pos x theta^(-2i/D), pos = pos0 + row.
// The angles are computed in double, as the CPU kernel does.

namespace detail_ops {
template <class T>
void rope(const char* fn, T* x, i64 rows, i64 H, i64 D, float theta, i64 pos0, bool inverse, cudaStream_t stream) {
  require_half_precision<T>();
  require_size(fn, "rows", rows, 0, "the number of tokens, 0 or more");
  require_size(fn, "H", H, 1, "the number of heads, 1 or more");
  require_size(fn, "D", D, 2, "the head dimension, an even number");
  require(D % 2 == 0, fn_name(fn) + ": D = " + std::to_string(D) +
                          " is odd; rotary pairs need an even head dimension (element i pairs with i + D/2)");
  require(theta > 0.0f && std::isfinite(theta),
          fn_name(fn) + ": theta = " + std::to_string(theta) + " must be positive and finite; pass e.g. 10000");
  require_size(fn, "pos0", pos0, 0, "the position of the first row, 0 or more");
  if (rows == 0) return;
  require_pointer(fn, "x", x, rows * H * D);
  constexpr int N = 16 / sizeof(T);
  const i64 half = D / 2;
  const bool vec = half % N == 0 && aligned(x, 16);
  constexpr int threads = 256;
  if (vec)
    rope_kernel<T, N>
        <<<blocks_for(rows * (half / N), threads), threads, 0, stream>>>(x, rows, H, D, theta, pos0, inverse);
  else
    rope_kernel<T, 1><<<blocks_for(rows * half, threads), threads, 0, stream>>>(x, rows, H, D, theta, pos0, inverse);
  TRAINPERF_CUDA_CHECK_LAUNCH();
}
}  // namespace detail_ops

template <class T>
void rope_forward(T* x, i64 rows, i64 H, i64 D, float theta, i64 pos0, cudaStream_t stream) {
  detail_ops::rope("rope_forward", x, rows, H, D, theta, pos0, false, stream);
}
// The rotation is orthogonal: the gradient rotates back by the same angle (dx in place).
template <class T>
void rope_backward(T* dx, i64 rows, i64 H, i64 D, float theta, i64 pos0, cudaStream_t stream) {
  detail_ops::rope("rope_backward", dx, rows, H, D, theta, pos0, true, stream);
}

// ---- SwiGLU (Shazeer 2020): out = silu(gate) * up, element-wise over n -------------------------

template <class T>
void swiglu_forward(T* out, const T* gate, const T* up, i64 n, cudaStream_t stream) {
  using namespace detail_ops;
  require_half_precision<T>();
  const char* fn = "swiglu_forward";
  require_size(fn, "n", n, 0, "the number of elements, 0 or more");
  if (n == 0) return;
  require_pointer(fn, "out", out, n);
  require_pointer(fn, "gate", gate, n);
  require_pointer(fn, "up", up, n);
  launch_elementwise(swiglu_forward_op<T>{out, gate, up}, n, aligned(out, 16) && aligned(gate, 16) && aligned(up, 16),
                     stream);
}
// dgate += dout * up * silu'(gate), dup += dout * silu(gate) (T, accumulated).
template <class T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, i64 n, cudaStream_t stream) {
  using namespace detail_ops;
  require_half_precision<T>();
  const char* fn = "swiglu_backward";
  require_size(fn, "n", n, 0, "the number of elements, 0 or more");
  if (n == 0) return;
  require_pointer(fn, "dgate", dgate, n);
  require_pointer(fn, "dup", dup, n);
  require_pointer(fn, "dout", dout, n);
  require_pointer(fn, "gate", gate, n);
  require_pointer(fn, "up", up, n);
  const bool vec = aligned(dgate, 16) && aligned(dup, 16) && aligned(dout, 16) && aligned(gate, 16) && aligned(up, 16);
  launch_elementwise(swiglu_backward_op<T>{dgate, dup, dout, gate, up}, n, vec, stream);
}

// ---- embedding: out[t, :] = table[tokens[t], :] ------------------------------------------------
// table: T [V, C]; out: T [n_tokens, C]; tokens: int32 on the device. An id outside [0, V) gives
// a NaN row (the ids cannot be checked on the host; a trainer checks its data when loading it).

template <class T>
void embedding_forward(T* out, const std::int32_t* tokens, const T* table, i64 n_tokens, i64 C, i64 V,
                       cudaStream_t stream) {
  detail_ops::embedding_forward(out, tokens, table, n_tokens, C, 0, V, false, stream);
}
// A vocabulary shard (Megatron-LM's vocabulary-parallel embedding): table holds the rows of ids
// [first, first + V); a token outside them gives a zero row (the group's sum brings it from its
// shard).
template <class T>
void embedding_forward(T* out, const std::int32_t* tokens, const T* table, i64 n_tokens, i64 C, i64 first, i64 V,
                       cudaStream_t stream) {
  detail_ops::embedding_forward(out, tokens, table, n_tokens, C, first, V, true, stream);
}

// dtable (fp32 [V, C]) [tokens[t], :] += dout[t, :], deterministic and in the CPU kernel's order
// (t ascending for every row) without atomics; ids outside [0, V) contribute nothing.
template <class T>
void embedding_backward(float* dtable, const T* dout, const std::int32_t* tokens, i64 n_tokens, i64 C, i64 V,
                        cudaStream_t stream) {
  detail_ops::embedding_backward(dtable, dout, tokens, n_tokens, C, 0, V, stream);
}
// A vocabulary shard: dtable's row r is id first + r; other ids contribute nothing.
template <class T>
void embedding_backward(float* dtable, const T* dout, const std::int32_t* tokens, i64 n_tokens, i64 C, i64 first, i64 V,
                        cudaStream_t stream) {
  detail_ops::embedding_backward(dtable, dout, tokens, n_tokens, C, first, V, stream);
}

// ---- softmax cross-entropy, forward and backward fused ----------------------------------------
// logits: T [rows, V]; targets: int32 [rows] on the device; losses: fp32 [rows] (overwritten),
// losses[r] = logsumexp(logits[r]) - logits[r][targets[r]]. When dlogits (T [rows, V]) is not null
// it is overwritten with dloss x (softmax - onehot), the gradient of dloss x sum_r losses[r]
// (dloss = 1/rows for the mean); dlogits may alias logits. One block per row, fp32 online
// softmax. A target outside [0, V) gives a NaN loss and no onehot term. Unlike the CPU kernel,
// the mean is not returned: mean_loss reduces losses on the device without a host sync.

template <class T>
void cross_entropy(float* losses, T* dlogits, const T* logits, const std::int32_t* targets, i64 rows, i64 V,
                   float dloss, cudaStream_t stream) {
  using namespace detail_ops;
  if (!cross_entropy_args("cross_entropy", losses, logits, targets, rows, V, dloss)) return;
  launch_per_row(V, logits, dlogits, [&](auto n, int threads) {
    cross_entropy_kernel<T, decltype(n)::value>
        <<<static_cast<int>(rows), threads, 0, stream>>>(losses, dlogits, logits, targets, V, dloss);
  });
}

// *mean = (x[0] + ... + x[n-1]) / n (fp32, one block, fixed order): the mean of the losses.
inline void mean_loss(float* mean, const float* x, i64 n, cudaStream_t stream) {
  using namespace detail_ops;
  const char* fn = "mean_loss";
  require_size(fn, "n", n, 1, "the number of losses, 1 or more");
  require_pointer(fn, "mean", mean, 1);
  require_pointer(fn, "x", x, n);
  mean_kernel<1024><<<1, 1024, 0, stream>>>(mean, x, n);
  TRAINPERF_CUDA_CHECK_LAUNCH();
}

// Megatron-LM's vocabulary-parallel cross-entropy: this rank's logits are the shard T [rows, V] of
// vocabulary ids [first, first + V); max_all(float* x, n) and sum_all(float* x, n) reduce device
// buffers in place over the tensor-parallel group (an NCCL all-reduce on this stream). losses
// (fp32 [rows]) get the whole vocabulary's loss on every rank; dlogits (may alias logits, or
// null) this shard's dloss x (softmax - onehot). workspace: vp_cross_entropy_workspace_floats.
inline std::size_t vp_cross_entropy_workspace_floats(i64 rows) { return static_cast<std::size_t>(4 * rows); }
template <class T, class MaxAll, class SumAll>
void cross_entropy_vocab_parallel(float* losses, T* dlogits, const T* logits, const std::int32_t* targets, i64 rows,
                                  i64 V, i64 first, float dloss, MaxAll&& max_all, SumAll&& sum_all, float* workspace,
                                  cudaStream_t stream) {
  using namespace detail_ops;
  const char* fn = "cross_entropy_vocab_parallel";
  require_size(fn, "first", first, 0, "the vocabulary id of this shard's first column, 0 or more");
  if (!cross_entropy_args(fn, losses, logits, targets, rows, V, dloss)) return;
  require_pointer(fn, "workspace", workspace, 4 * rows);
  float *local_max = workspace, *group_max = workspace + rows, *sums = workspace + 2 * rows;  // sums: 2 x rows
  launch_per_row(V, logits, dlogits, [&](auto n, int threads) {
    vp_cross_entropy_stats_kernel<T, decltype(n)::value>
        <<<static_cast<int>(rows), threads, 0, stream>>>(local_max, group_max, sums, logits, targets, rows, V, first);
  });
  max_all(group_max, rows);
  vp_cross_entropy_rescale_kernel<0><<<blocks_for(rows, 256), 256, 0, stream>>>(sums, local_max, group_max, rows);
  TRAINPERF_CUDA_CHECK_LAUNCH();
  sum_all(sums, 2 * rows);  // [sum of exp | target logit] per row
  launch_per_row(V, logits, dlogits, [&](auto n, int threads) {
    vp_cross_entropy_finish_kernel<T, decltype(n)::value><<<static_cast<int>(rows), threads, 0, stream>>>(
        losses, dlogits, logits, targets, group_max, sums, rows, V, first, dloss);
  });
}

// ---- optimizer --------------------------------------------------------------------------------
// One AdamW step (Loshchilov & Hutter 2019, decoupled weight decay) on n fp32 master parameters,
// gradients and moments, exactly the CPU kernel's update; step counts from 1 (bias correction).
// params_copy (T [n], may be null) receives the updated parameters rounded to T (the weights the
// next forward reads). grad_scale (a device float, may be null) multiplies every gradient first:
// pass clip_scale's output to clip without a separate pass over the gradients.

template <class T>
void adamw(float* params, T* params_copy, const float* grads, float* m, float* v, i64 n, const adamw_config& c,
           i64 step, const float* grad_scale, cudaStream_t stream) {
  using namespace detail_ops;
  require_half_precision<T>();
  const char* fn = "adamw";
  require_size(fn, "n", n, 0, "the number of parameters, 0 or more");
  require_size(fn, "step", step, 1, "the 1-based step number (bias correction)");
  const auto in01 = [](float b) { return b >= 0.0f && b < 1.0f; };
  require(in01(c.beta1), fn_name(fn) + ": beta1 = " + std::to_string(c.beta1) + " must be in [0, 1); e.g. 0.9");
  require(in01(c.beta2), fn_name(fn) + ": beta2 = " + std::to_string(c.beta2) + " must be in [0, 1); e.g. 0.95");
  require(c.eps > 0.0f && std::isfinite(c.eps),
          fn_name(fn) + ": eps = " + std::to_string(c.eps) + " must be positive and finite; e.g. 1e-8");
  require(std::isfinite(c.lr) && c.lr >= 0.0f,
          fn_name(fn) + ": lr = " + std::to_string(c.lr) + " must be finite and non-negative");
  require(std::isfinite(c.weight_decay),
          fn_name(fn) + ": weight_decay = " + std::to_string(c.weight_decay) + " must be finite; e.g. 0.1");
  if (n == 0) return;
  require_pointer(fn, "params", params, n);
  require_pointer(fn, "grads", grads, n);
  require_pointer(fn, "m", m, n);
  require_pointer(fn, "v", v, n);
  // bias corrections 1 - beta^step (Kingma & Ba 2015, algorithm 1), in float as the CPU kernel
  const float bc1 = 1.0f - std::pow(c.beta1, static_cast<float>(step));
  const float bc2 = 1.0f - std::pow(c.beta2, static_cast<float>(step));
  const bool vec = aligned(params, 16) && aligned(grads, 16) && aligned(m, 16) && aligned(v, 16) &&
                   aligned(params_copy, 4 * sizeof(T));
  launch_elementwise(adamw_op<T>{params, params_copy, grads, m, v, grad_scale, c.lr, c.beta1, c.beta2, c.eps,
                                 c.weight_decay, bc1, bc2},
                     n, vec, stream);
}
// Without a T copy of the parameters and without a gradient scale.
inline void adamw(float* params, const float* grads, float* m, float* v, i64 n, const adamw_config& c, i64 step,
                  cudaStream_t stream) {
  adamw(params, static_cast<__nv_bfloat16*>(nullptr), grads, m, v, n, c, step, nullptr, stream);
}

// ---- global gradient norm and clipping (Pascanu et al. 2013) ----------------------------------
// Two passes, both in a fixed order: per-block fp32 partial sums of squares (at most
// grad_norm_max_blocks, a number that depends only on n), then one block adds them in order.

// Floats of workspace for grad_norm and clip_grad_norm.
inline std::size_t grad_norm_workspace_floats(i64 n) {
  return static_cast<std::size_t>(std::clamp<i64>((n + 1023) / 1024, 1, grad_norm_max_blocks)) + 1;
}

// *norm (device) = sqrt(sum_i grads[i]^2).
inline void grad_norm(float* norm, const float* grads, i64 n, float* workspace, cudaStream_t stream) {
  using namespace detail_ops;
  const char* fn = "grad_norm";
  require_size(fn, "n", n, 0, "the number of gradients, 0 or more");
  require_pointer(fn, "norm", norm, 1);
  if (n > 0) require_pointer(fn, "grads", grads, n);
  if (n == 0) {
    TRAINPERF_CUDA_CHECK(cudaMemsetAsync(norm, 0, sizeof(float), stream));
    return;
  }
  const i64 blocks = static_cast<i64>(grad_norm_workspace_floats(n)) - 1;
  const scratch ws(workspace, grad_norm_workspace_floats(n), stream);
  if (aligned(grads, 16))
    sum_squares_kernel<4><<<static_cast<int>(blocks), 256, 0, stream>>>(ws.get(), grads, n);
  else
    sum_squares_kernel<1><<<static_cast<int>(blocks), 256, 0, stream>>>(ws.get(), grads, n);
  TRAINPERF_CUDA_CHECK_LAUNCH();
  norm_from_partials_kernel<1024><<<1, 1024, 0, stream>>>(norm, ws.get(), blocks);
  TRAINPERF_CUDA_CHECK_LAUNCH();
}

// *scale (device) = max_norm / (norm + 1e-6) when *norm > max_norm > 0, else 1 (the CPU rule).
inline void clip_scale(float* scale, const float* norm, float max_norm, cudaStream_t stream) {
  using namespace detail_ops;
  require_pointer("clip_scale", "scale", scale, 1);
  require_pointer("clip_scale", "norm", norm, 1);
  require(!std::isnan(max_norm), fn_name("clip_scale") + ": max_norm is NaN; pass e.g. 1.0 (0 disables clipping)");
  clip_scale_kernel<0><<<1, 1, 0, stream>>>(scale, norm, max_norm);
  TRAINPERF_CUDA_CHECK_LAUNCH();
}

// x[i] *= *scale (scale on the device).
inline void scale_inplace(float* x, i64 n, const float* scale, cudaStream_t stream) {
  using namespace detail_ops;
  require_size("scale_inplace", "n", n, 0, "the number of elements, 0 or more");
  if (n == 0) return;
  require_pointer("scale_inplace", "x", x, n);
  require_pointer("scale_inplace", "scale", scale, 1);
  launch_elementwise(scale_op{x, scale}, n, aligned(x, 16), stream);
}

// The CPU clip_grad_norm on the device: *norm = the norm before clipping; grads scaled by
// max_norm / (norm + 1e-6) when norm > max_norm > 0. Nothing is copied to the host.
inline void clip_grad_norm(float* grads, i64 n, float max_norm, float* norm, float* workspace, cudaStream_t stream) {
  const detail_ops::scratch ws(workspace, grad_norm_workspace_floats(n), stream);
  grad_norm(norm, grads, n, ws.get(), stream);
  float* scale = ws.get() + grad_norm_workspace_floats(n) - 1;
  clip_scale(scale, norm, max_norm, stream);
  scale_inplace(grads, n, scale, stream);
}

// ---- residual add and casts -------------------------------------------------------------------

// y += x (T, added in fp32, rounded once).
template <class T>
void add_inplace(T* y, const T* x, i64 n, cudaStream_t stream) {
  using namespace detail_ops;
  require_half_precision<T>();
  require_size("add_inplace", "n", n, 0, "the number of elements, 0 or more");
  if (n == 0) return;
  require_pointer("add_inplace", "y", y, n);
  require_pointer("add_inplace", "x", x, n);
  launch_elementwise(add_op<T>{y, x}, n, aligned(y, 16) && aligned(x, 16), stream);
}

// out[i] = in[i] converted (round to nearest even); Out and In are float, __nv_bfloat16 or __half.
template <class Out, class In>
void cast(Out* out, const In* in, i64 n, cudaStream_t stream) {
  using namespace detail_ops;
  static_assert(is_storage<Out> && is_storage<In>, "trainperf::cuda::cast: types are float, __nv_bfloat16 or __half");
  require_size("cast", "n", n, 0, "the number of elements, 0 or more");
  if (n == 0) return;
  require_pointer("cast", "out", out, n);
  require_pointer("cast", "in", in, n);
  using op = cast_op<Out, In>;
  launch_elementwise(op{out, in}, n, aligned(out, op::width * sizeof(Out)) && aligned(in, op::width * sizeof(In)),
                     stream);
}

}  // namespace trainperf::cuda
