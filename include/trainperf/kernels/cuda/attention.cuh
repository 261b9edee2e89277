// trainperf — causal attention on tensor cores, FlashAttention-2 style (Dao 2023,
// arXiv:2307.08691, algorithms 1 and 2): forward and backward, bf16 or fp16 inputs, fp32
// accumulation (mma.sync m16n8k16, runs on sm_80 and sm_90), head dim 64 or 128, GQA, any
// sequence length. No T x T matrix is ever stored: O(T) extra memory per head.
//
// Layouts mirror trainperf::kernels::cpu::attention_forward / attention_backward exactly:
//   q, out, dout, dq: [B, T, Hq, D]; k, v, dk, dv: [B, T, Hkv, D]; lse: [B, Hq, T] fp32, the
//   natural log-sum-exp of each query's scaled scores; query head h reads KV head h / (Hq / Hkv);
//   causal; scale 1 / sqrt(D). All buffers are device memory, contiguous, 16-byte aligned
//   (lse 4-byte).
//
// Forward: one CTA per (block of 128 queries, query head, batch); each warp owns 32 query rows;
// K/V tiles stream through shared memory with cp.async double buffering; KV blocks entirely
// above the diagonal are never visited; online softmax in base 2 with the scale prescaled by
// log2(e). Heavy (late) query blocks are launched first so the causal tail is short.
//
// Backward: (1) delta_i = rowsum(dO_i * O_i) in fp32 and the fp32 dQ workspace zeroed; (2) one
// CTA per (block of 128 keys, KV head, batch) loops over the group's query heads and the query
// blocks at or below the diagonal, recomputes P from the saved LSE, keeps dK and dV in fp32
// registers and adds each step's dQ contribution into the fp32 workspace with atomicAdd;
// (3) dq = workspace x scale, rounded to T.
// Limits: the backward's shared memory (91 KiB at D = 64, 112.5 KiB at D = 128) fits the
// 163/227 KiB opt-in of A100/H100-class parts; GPUs with about 99 KiB (sm_86, sm_89, sm_120)
// run D = 128 forward but get a clear error for the D = 128 backward. fp16: P and dS are
// rounded to fp16 before the scale is applied, as in FlashAttention-2, so the fp16 backward
// expects loss scaling (tiny unscaled gradients underflow to zero); bf16 is unaffected.
// Determinism: out, lse, dk and dv are bit-reproducible (the forward has no atomics; each dk,
// dv row is owned by one CTA, which sums the group's query heads and the query blocks in a
// fixed order, so GQA needs no cross-CTA reduction). dq is NOT bit-reproducible: the fp32
// atomics from different KV blocks land in a run-dependent order, so dq can differ between runs
// in the last bits (the values stay within rounding of each other).
//
// Compiled only under nvcc; never included by trainperf.hpp.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include "check.cuh"
#include "ptx.cuh"

namespace trainperf::cuda {

namespace detail {

// ---- tile shapes ------------------------------------------------------------------------
// Forward: BM queries per CTA, BN keys per shared-memory tile, NW warps (BM / NW rows each),
// MINB CTAs per SM for __launch_bounds__. Chosen from ptxas's report (nvcc 13.0): D = 128 with
// BN = 64 spills (~90 bytes) at the 255-register cap; BN = 32 does not on sm_80 (250 registers)
// and spills 8 bytes on sm_90a (255).
template <int D>
struct attention_fwd_tiles {
  static constexpr int BM = 128, BN = D == 64 ? 64 : 32, NW = 4, MINB = 2;
};
// Backward: BN keys per CTA (16 per warp), BM queries per inner step, NW warps, one CTA per
// SM (~245 registers per thread). D = 128 with BM = 64 spills (~50 bytes); BM = 32 does not.
template <int D>
struct attention_bwd_tiles {
  static constexpr int BN = 128, BM = D == 64 ? 64 : 32, NW = 8, MINB = 1;
};

inline constexpr float attention_log2e = 1.4426950408889634f;  // log2(e): exp(x) = exp2(x * log2(e))

// Shared-memory rows are padded by 8 elements (16 bytes): with the row pitch an odd number of
// 16-byte chunks, the 8 rows an ldmatrix phase reads fall in 8 distinct bank groups.
__host__ __device__ constexpr int attention_pitch(int cols) { return cols + 8; }

template <class T, int D>
constexpr std::size_t attention_fwd_smem_bytes() {
  using C = attention_fwd_tiles<D>;
  return sizeof(T) * static_cast<std::size_t>(C::BM + 4 * C::BN) * attention_pitch(D);  // Q + 2 x (K, V)
}

template <class T, int D>
constexpr std::size_t attention_bwd_smem_bytes() {
  using C = attention_bwd_tiles<D>;
  return sizeof(T) * (static_cast<std::size_t>(2 * C::BN + 4 * C::BM) * attention_pitch(D) +  // K, V, 2 x (Q, dO)
                      static_cast<std::size_t>(C::BN) * attention_pitch(C::BM)) +             // dS^T
         sizeof(float) * 4 * C::BM;                                                           // 2 x (lse, delta)
}

// ---- device helpers ---------------------------------------------------------------------
using ptx::cp_async_commit;
using ptx::cp_async_wait;
using ptx::smem_u32;

// Row/column (in elements) whose address this lane gives to ldmatrix.x4, for a 16x16 tile at
// (r0, c0) of a row-major shared array. PTX ISA, "Matrix fragments for mma.m16n8k16":
//  pattern X: lanes 0-15 rows r0+0..15 at c0, lanes 16-31 rows r0+0..15 at c0+8. Gives
//    - A [m][k] (non-trans): a0..a3 = (m 0-7,k 0-7), (m 8-15,k 0-7), (m 0-7,k 8-15), (m 8-15,k 8-15);
//    - B stored [k][n] (trans): b0,b1 of n-tile n0 then b0,b1 of n-tile n0+8.
//  pattern Y: lanes 0-7 rows r0+0..7 at c0, 8-15 rows r0+0..7 at c0+8, 16-23 rows r0+8..15 at c0,
//    24-31 rows r0+8..15 at c0+8. Gives
//    - B stored [n][k] (non-trans): b0,b1 of n-tile r0 then b0,b1 of n-tile r0+8;
//    - A stored [k][m] (trans): a0..a3 of the transposed tile.
__device__ __forceinline__ int ldsm_row_x(int lane) { return lane & 15; }
__device__ __forceinline__ int ldsm_col_x(int lane) { return (lane >> 4) * 8; }
__device__ __forceinline__ int ldsm_row_y(int lane) { return (lane & 7) + ((lane >> 4) << 3); }
__device__ __forceinline__ int ldsm_col_y(int lane) { return ((lane >> 3) & 1) * 8; }

// Two floats -> one 32-bit register of two T; lo is the lower column (lower 16 bits).
template <class T>
__device__ __forceinline__ std::uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const std::uint32_t*>(&v);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const std::uint32_t*>(&v);
  }
}
template <class T>
__device__ __forceinline__ float2 unpack2(std::uint32_t u) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u));
  } else {
    return __half22float2(*reinterpret_cast<const __half2*>(&u));
  }
}

// 2^x; ex2.approx maps -inf to +0, which is how masked scores vanish.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Copies ROWS token rows of one head (D elements each, row stride `stride` elements in global
// memory, starting at token t0) into a padded shared tile; rows at or past T are zero-filled.
template <int ROWS, int D, int NT, class T>
__device__ __forceinline__ void load_rows(T* tile, const T* head, long long stride, int t0, int T_, int tid) {
  constexpr int chunks = D / 8;  // 16-byte chunks per row
  static_assert((ROWS * chunks) % NT == 0, "tile copy must divide evenly among the threads");
#pragma unroll
  for (int it = 0; it < ROWS * chunks / NT; ++it) {
    const int c = tid + it * NT;
    const int r = c / chunks, ch = c % chunks;
    const bool valid = t0 + r < T_;
    const T* src = valid ? head + static_cast<long long>(t0 + r) * stride + ch * 8 : head;
    ptx::cp_async_16(smem_u32(tile + r * attention_pitch(D) + ch * 8), src, valid ? 16 : 0);
  }
}

// ---- forward ----------------------------------------------------------------------------
template <class T, int D>
__global__ void __launch_bounds__(attention_fwd_tiles<D>::NW * 32, attention_fwd_tiles<D>::MINB)
    attention_fwd_kernel(T* __restrict__ out, float* __restrict__ lse, const T* __restrict__ q, const T* __restrict__ k,
                         const T* __restrict__ v, int T_, int Hq, int Hkv, float scale, float scale_log2) {
  using C = attention_fwd_tiles<D>;
  constexpr int BM = C::BM, BN = C::BN, NW = C::NW, NT = NW * 32;
  constexpr int MT = BM / (16 * NW);  // 16-row m-tiles per warp
  constexpr int SN = BN / 8;          // n-tiles of S = Q K^T per m-tile
  constexpr int ON = D / 8;           // n-tiles of O per m-tile
  constexpr int LD = attention_pitch(D);
  constexpr bool q_in_regs = MT * (D / 16) * 4 <= 32;  // Q fragments kept in registers when cheap
  static_assert(BM % (16 * NW) == 0 && BN % 16 == 0 && D % 16 == 0, "tile shapes");

  extern __shared__ __align__(16) unsigned char attention_smem[];
  T* sQ = reinterpret_cast<T*>(attention_smem);
  T* sK = sQ + BM * LD;      // 2 stages of BN x LD
  T* sV = sK + 2 * BN * LD;  // 2 stages of BN x LD

  // Grid (query blocks, Hq, B), dispatched x fastest: the CTAs of one head run side by side and
  // share its K/V in L2; within a head the longest (last) query block starts first.
  const int mb = static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x);
  const int h = blockIdx.y, b = blockIdx.z;
  const int hk = h / (Hq / Hkv);  // GQA: query head h reads KV head h / (Hq / Hkv)
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, tq = lane % 4;  // mma fragment row group and thread-in-group
  const int q0 = mb * BM;
  const int wrow = warp * MT * 16;  // first row of this warp inside the block

  // Token strides and head bases: q[b, t, h, :] = q + ((b * T + t) * Hq + h) * D (likewise k, v with Hkv).
  const long long qs = static_cast<long long>(Hq) * D, ks = static_cast<long long>(Hkv) * D;
  const T* qh = q + (static_cast<long long>(b) * T_ * Hq + h) * D;
  const T* kh = k + (static_cast<long long>(b) * T_ * Hkv + hk) * D;
  const T* vh = v + (static_cast<long long>(b) * T_ * Hkv + hk) * D;

  // Causal: keys past the block's last query (or past T) are never visited.
  const int kv_end = min(T_, q0 + BM);
  const int nblocks = (kv_end + BN - 1) / BN;

  load_rows<BM, D, NT>(sQ, qh, qs, q0, T_, tid);
  load_rows<BN, D, NT>(sK, kh, ks, 0, T_, tid);
  cp_async_commit();
  load_rows<BN, D, NT>(sV, vh, ks, 0, T_, tid);
  cp_async_commit();

  float o[MT][ON][4];
  float row_max[MT][2], row_sum[MT][2];  // raw-score max; this thread's partial sum of p
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int j = 0; j < ON; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[mt][j][e] = 0.0f;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      row_max[mt][r] = -INFINITY;
      row_sum[mt][r] = 0.0f;
    }
  }
  std::uint32_t qf[q_in_regs ? MT : 1][q_in_regs ? D / 16 : 1][4];

  const std::uint32_t sQa = smem_u32(sQ), sKa = smem_u32(sK), sVa = smem_u32(sV);
  const int xr = ldsm_row_x(lane), xc = ldsm_col_x(lane), yr = ldsm_row_y(lane), yc = ldsm_col_y(lane);

  for (int n = 0; n < nblocks; ++n) {
    const int stage = n & 1;
    const int kv0 = n * BN;
    cp_async_wait<1>();  // K[n] (and Q) landed; V[n] may still be in flight
    __syncthreads();     // ... for every thread; and every warp is done with stage !stage
    if (n + 1 < nblocks) load_rows<BN, D, NT>(sK + (stage ^ 1) * BN * LD, kh, ks, kv0 + BN, T_, tid);
    cp_async_commit();  // possibly empty: keeps the group count uniform

    if constexpr (q_in_regs) {
      if (n == 0) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int kd = 0; kd < D / 16; ++kd)
            ptx::ldmatrix_x4(qf[mt][kd], sQa + 2 * ((wrow + mt * 16 + xr) * LD + kd * 16 + xc));
      }
    }

    // A warp whose rows all precede this KV block's first key has nothing to add.
    const bool active = kv0 <= q0 + wrow + MT * 16 - 1;
    float s[MT][SN][4];
    if (active) {
      // S = Q K^T (Algorithm 1, line 8), raw (unscaled) scores in fp32.
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int j = 0; j < SN; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) s[mt][j][e] = 0.0f;
      const std::uint32_t kst = sKa + 2 * stage * BN * LD;
#pragma unroll
      for (int kd = 0; kd < D / 16; ++kd) {
        std::uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          if constexpr (q_in_regs) {
#pragma unroll
            for (int e = 0; e < 4; ++e) a[mt][e] = qf[mt][kd][e];
          } else {
            ptx::ldmatrix_x4(a[mt], sQa + 2 * ((wrow + mt * 16 + xr) * LD + kd * 16 + xc));
          }
        }
#pragma unroll
        for (int np = 0; np < SN / 2; ++np) {
          std::uint32_t bk[4];
          ptx::ldmatrix_x4(bk, kst + 2 * ((np * 16 + yr) * LD + kd * 16 + yc));
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            ptx::mma_m16n8k16<T>(s[mt][2 * np], a[mt], bk[0], bk[1]);
            ptx::mma_m16n8k16<T>(s[mt][2 * np + 1], a[mt], bk[2], bk[3]);
          }
        }
      }
      // Causal mask: key j > query i scores -inf. Only blocks reaching past the warp's first
      // row need it; keys at or past T always lie past every valid query, so this covers them.
      if (kv0 + BN - 1 > q0 + wrow) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int j = 0; j < SN; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int i = q0 + wrow + mt * 16 + g + (e >> 1) * 8;  // C fragment: c0,c1 row g; c2,c3 row g+8
              const int key = kv0 + j * 8 + 2 * tq + (e & 1);        // columns 2*tq, 2*tq+1
              if (key > i) s[mt][j][e] = -INFINITY;
            }
      }
      // Online softmax in base 2 (Algorithm 1, lines 9-10): m' = max(m, rowmax S),
      // p = 2^((s - m') * scale * log2 e), l' = 2^((m - m') * scale * log2 e) l + rowsum p.
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          float mx = row_max[mt][r];
#pragma unroll
          for (int j = 0; j < SN; ++j) mx = fmaxf(mx, fmaxf(s[mt][j][2 * r], s[mt][j][2 * r + 1]));
          // A row's 8 columns of each n-tile live in the 4 lanes of a quad (2 per lane).
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
          // mx is finite: key 0 is visible to every row and block 0 is always visited first.
          const float corr = fast_exp2((row_max[mt][r] - mx) * scale_log2);  // 0 when the old max was -inf
          row_max[mt][r] = mx;
          const float mscaled = mx * scale_log2;
          float sum = 0.0f;
#pragma unroll
          for (int j = 0; j < SN; ++j)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const float p = fast_exp2(fmaf(s[mt][j][2 * r + e], scale_log2, -mscaled));
              s[mt][j][2 * r + e] = p;
              sum += p;
            }
          row_sum[mt][r] = row_sum[mt][r] * corr + sum;
#pragma unroll
          for (int j = 0; j < ON; ++j) {
            o[mt][j][2 * r] *= corr;
            o[mt][j][2 * r + 1] *= corr;
          }
        }
    }

    cp_async_wait<1>();  // V[n] landed; K[n+1] may still be in flight
    __syncthreads();
    if (n + 1 < nblocks) load_rows<BN, D, NT>(sV + (stage ^ 1) * BN * LD, vh, ks, kv0 + BN, T_, tid);
    cp_async_commit();

    if (active) {
      // O += P V (Algorithm 1, line 10). The S accumulator of n-tiles 2kk, 2kk+1 is laid out
      // exactly as the A fragment of k-step kk, so P never leaves registers.
      const std::uint32_t vst = sVa + 2 * stage * BN * LD;
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        std::uint32_t pa[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          pa[mt][0] = pack2<T>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
          pa[mt][1] = pack2<T>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
          pa[mt][2] = pack2<T>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
          pa[mt][3] = pack2<T>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
        }
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
          std::uint32_t bv[4];
          ptx::ldmatrix_x4_trans(bv, vst + 2 * ((kk * 16 + xr) * LD + dp * 16 + xc));
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            ptx::mma_m16n8k16<T>(o[mt][2 * dp], pa[mt], bv[0], bv[1]);
            ptx::mma_m16n8k16<T>(o[mt][2 * dp + 1], pa[mt], bv[2], bv[3]);
          }
        }
      }
    }
  }
  cp_async_wait<0>();  // no copy may still target shared memory when the CTA exits

  // O = O / l (Algorithm 1, line 12); lse = m * scale + ln l (line 13, natural log).
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float l = row_sum[mt][r];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const int i = q0 + wrow + mt * 16 + g + 8 * r;
      if (i < T_) {
        const float inv = 1.0f / l;
        T* orow = out + ((static_cast<long long>(b) * T_ + i) * Hq + h) * D;  // out[b, i, h, :]
#pragma unroll
        for (int j = 0; j < ON; ++j)
          *reinterpret_cast<std::uint32_t*>(orow + j * 8 + 2 * tq) =
              pack2<T>(o[mt][j][2 * r] * inv, o[mt][j][2 * r + 1] * inv);
        if (tq == 0) lse[(static_cast<long long>(b) * Hq + h) * T_ + i] = row_max[mt][r] * scale + logf(l);
      }
    }
}

// ---- backward ---------------------------------------------------------------------------
// delta[b, h, i] = sum_d dout[b, i, h, d] * out[b, i, h, d] (Algorithm 2, line 4); one warp
// per (b, i, h) row.
template <class T, int D>
__global__ void attention_bwd_delta_kernel(float* __restrict__ delta, const T* __restrict__ dout,
                                           const T* __restrict__ out, int T_, int Hq, long long rows) {
  const long long row = static_cast<long long>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;  // warp-uniform
  const std::uint32_t* g2 = reinterpret_cast<const std::uint32_t*>(dout + row * D);
  const std::uint32_t* o2 = reinterpret_cast<const std::uint32_t*>(out + row * D);
  float acc = 0.0f;
#pragma unroll
  for (int p = lane; p < D / 2; p += 32) {
    const float2 a = unpack2<T>(g2[p]), c = unpack2<T>(o2[p]);
    acc = fmaf(a.x, c.x, fmaf(a.y, c.y, acc));
  }
#pragma unroll
  for (int off = 16; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (lane == 0) {
    const long long h = row % Hq, bt = row / Hq;  // row = (b * T + i) * Hq + h
    delta[(bt / T_ * Hq + h) * T_ + bt % T_] = acc;
  }
}

template <class T, int D>
__global__ void __launch_bounds__(attention_bwd_tiles<D>::NW * 32, attention_bwd_tiles<D>::MINB)
    attention_bwd_kernel(float* __restrict__ dq_acc, T* __restrict__ dk, T* __restrict__ dv, const T* __restrict__ dout,
                         const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                         const float* __restrict__ lse, const float* __restrict__ delta, int T_, int Hq, int Hkv,
                         float scale, float scale_log2) {
  using C = attention_bwd_tiles<D>;
  constexpr int BN = C::BN, BM = C::BM, NW = C::NW, NT = NW * 32;
  constexpr int LD = attention_pitch(D), LDS = attention_pitch(BM);
  constexpr int SN = BM / 8;   // n-tiles (queries) of S^T and dP^T per warp
  constexpr int ON = D / 8;    // n-tiles of dK, dV per warp
  constexpr int WM = BM / 16;  // dQ: warps along queries
  constexpr int WN = NW / WM;  // dQ: warps along the head dim
  constexpr int QN = D / WN;   // dQ: columns per warp
  static_assert(BN == 16 * NW, "each warp owns 16 keys");
  static_assert(NW % WM == 0 && QN % 16 == 0, "dQ warp grid");
  static_assert(2 * BM <= NT, "one thread per lse / delta element");

  extern __shared__ __align__(16) unsigned char attention_smem[];
  T* sK = reinterpret_cast<T*>(attention_smem);
  T* sV = sK + BN * LD;
  T* sQ = sV + BN * LD;                                  // 2 stages of BM x LD
  T* sdO = sQ + 2 * BM * LD;                             // 2 stages of BM x LD
  T* sdS = sdO + 2 * BM * LD;                            // BN x LDS: dS^T, keys x queries
  float* sL = reinterpret_cast<float*>(sdS + BN * LDS);  // 2 stages of BM
  float* sDl = sL + 2 * BM;                              // 2 stages of BM

  // Grid (key blocks, Hkv, B): the CTAs of one head share its Q, dO in L2; the first key blocks
  // see the most queries and start first.
  const int kv0 = blockIdx.x * BN;
  const int hk = blockIdx.y, b = blockIdx.z;
  const int group = Hq / Hkv;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, tq = lane % 4;
  const int krow = warp * 16;  // this warp's first key inside the block

  const long long qs = static_cast<long long>(Hq) * D, ks = static_cast<long long>(Hkv) * D;
  const T* kh = k + (static_cast<long long>(b) * T_ * Hkv + hk) * D;
  const T* vh = v + (static_cast<long long>(b) * T_ * Hkv + hk) * D;

  // Causal: queries before kv0 see none of these keys (Algorithm 2 skips those blocks).
  const int qb_first = kv0 / BM;
  const int qblocks = (T_ + BM - 1) / BM - qb_first;
  const int steps = group * qblocks;  // the group's query heads, each over its query blocks

  auto issue_step = [&](int step, int buf) {
    const int h = hk * group + step / qblocks;
    const int q0 = (qb_first + step % qblocks) * BM;
    const long long head = (static_cast<long long>(b) * T_ * Hq + h) * D;  // [b, 0, h, 0]
    load_rows<BM, D, NT>(sQ + buf * BM * LD, q + head, qs, q0, T_, tid);
    load_rows<BM, D, NT>(sdO + buf * BM * LD, dout + head, qs, q0, T_, tid);
    const long long lrow = (static_cast<long long>(b) * Hq + h) * T_;  // lse[b, h, 0]
    if (tid < 2 * BM) {
      const int r = tid % BM;
      const bool valid = q0 + r < T_;  // rows past T read as 0 and are masked below
      const float* src = (tid < BM ? lse : delta) + lrow + (valid ? q0 + r : 0);
      ptx::cp_async_4(smem_u32((tid < BM ? sL : sDl) + buf * BM + r), src, valid ? 4 : 0);
    }
  };

  load_rows<BN, D, NT>(sK, kh, ks, kv0, T_, tid);
  load_rows<BN, D, NT>(sV, vh, ks, kv0, T_, tid);
  cp_async_commit();
  issue_step(0, 0);
  cp_async_commit();

  float dk_acc[ON][4], dv_acc[ON][4];
#pragma unroll
  for (int j = 0; j < ON; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk_acc[j][e] = dv_acc[j][e] = 0.0f;

  const std::uint32_t sKa = smem_u32(sK), sVa = smem_u32(sV), sQa = smem_u32(sQ), sdOa = smem_u32(sdO),
                      sdSa = smem_u32(sdS);
  const int xr = ldsm_row_x(lane), xc = ldsm_col_x(lane), yr = ldsm_row_y(lane), yc = ldsm_col_y(lane);
  const int wm = warp / WN, wn = warp % WN;

  for (int step = 0; step < steps; ++step) {
    const int buf = step & 1;
    const int h = hk * group + step / qblocks;
    const int q0 = (qb_first + step % qblocks) * BM;
    cp_async_wait<0>();  // this step's Q, dO, lse, delta (and K, V) landed
    __syncthreads();     // ... for all threads; and all warps are done with the other stage and dS^T
    if (step + 1 < steps) issue_step(step + 1, buf ^ 1);
    cp_async_commit();

    const std::uint32_t qst = sQa + 2 * buf * BM * LD, dost = sdOa + 2 * buf * BM * LD;
    const float* lst = sL + buf * BM;
    const float* dst = sDl + buf * BM;

    // S^T = K Q^T for this warp's 16 keys x BM queries (Algorithm 2, line 11, transposed).
    float s[SN][4];
#pragma unroll
    for (int j = 0; j < SN; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[j][e] = 0.0f;
#pragma unroll
    for (int kd = 0; kd < D / 16; ++kd) {
      std::uint32_t a[4];
      ptx::ldmatrix_x4(a, sKa + 2 * ((krow + xr) * LD + kd * 16 + xc));
#pragma unroll
      for (int np = 0; np < SN / 2; ++np) {
        std::uint32_t bq[4];
        ptx::ldmatrix_x4(bq, qst + 2 * ((np * 16 + yr) * LD + kd * 16 + yc));
        ptx::mma_m16n8k16<T>(s[2 * np], a, bq[0], bq[1]);
        ptx::mma_m16n8k16<T>(s[2 * np + 1], a, bq[2], bq[3]);
      }
    }
    // P^T = exp(scale * S^T - lse) (line 12) as 2^(s * scale * log2 e - lse * log2 e), zero
    // where the key follows the query (causal) or the query is past T.
    const bool need_mask = kv0 + krow + 15 > q0 || q0 + BM > T_;
#pragma unroll
    for (int j = 0; j < SN; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = j * 8 + 2 * tq + (e & 1);  // query inside the block
        float p = fast_exp2(fmaf(s[j][e], scale_log2, -lst[col] * attention_log2e));
        if (need_mask) {
          const int key = kv0 + krow + g + (e >> 1) * 8, i = q0 + col;
          if (key > i || i >= T_) p = 0.0f;
        }
        s[j][e] = p;
      }
      // dV += P^T dO (line 13): P^T's accumulator is already the A fragment.
#pragma unroll
    for (int kk = 0; kk < BM / 16; ++kk) {
      const std::uint32_t pa[4] = {pack2<T>(s[2 * kk][0], s[2 * kk][1]), pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                                   pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                   pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        std::uint32_t bo[4];
        ptx::ldmatrix_x4_trans(bo, dost + 2 * ((kk * 16 + xr) * LD + dp * 16 + xc));
        ptx::mma_m16n8k16<T>(dv_acc[2 * dp], pa, bo[0], bo[1]);
        ptx::mma_m16n8k16<T>(dv_acc[2 * dp + 1], pa, bo[2], bo[3]);
      }
    }
    // dP^T = V dO^T (line 14, transposed).
    float ds[SN][4];
#pragma unroll
    for (int j = 0; j < SN; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) ds[j][e] = 0.0f;
#pragma unroll
    for (int kd = 0; kd < D / 16; ++kd) {
      std::uint32_t a[4];
      ptx::ldmatrix_x4(a, sVa + 2 * ((krow + xr) * LD + kd * 16 + xc));
#pragma unroll
      for (int np = 0; np < SN / 2; ++np) {
        std::uint32_t bo[4];
        ptx::ldmatrix_x4(bo, dost + 2 * ((np * 16 + yr) * LD + kd * 16 + yc));
        ptx::mma_m16n8k16<T>(ds[2 * np], a, bo[0], bo[1]);
        ptx::mma_m16n8k16<T>(ds[2 * np + 1], a, bo[2], bo[3]);
      }
    }
    // dS^T = P^T o (dP^T - delta) (line 15); the factor `scale` is applied to dK and dQ at the end.
#pragma unroll
    for (int j = 0; j < SN; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) ds[j][e] = s[j][e] * (ds[j][e] - dst[j * 8 + 2 * tq + (e & 1)]);
        // dK += dS^T Q (line 17).
#pragma unroll
    for (int kk = 0; kk < BM / 16; ++kk) {
      const std::uint32_t pa[4] = {pack2<T>(ds[2 * kk][0], ds[2 * kk][1]), pack2<T>(ds[2 * kk][2], ds[2 * kk][3]),
                                   pack2<T>(ds[2 * kk + 1][0], ds[2 * kk + 1][1]),
                                   pack2<T>(ds[2 * kk + 1][2], ds[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        std::uint32_t bq[4];
        ptx::ldmatrix_x4_trans(bq, qst + 2 * ((kk * 16 + xr) * LD + dp * 16 + xc));
        ptx::mma_m16n8k16<T>(dk_acc[2 * dp], pa, bq[0], bq[1]);
        ptx::mma_m16n8k16<T>(dk_acc[2 * dp + 1], pa, bq[2], bq[3]);
      }
      // dS^T to shared memory for dQ, which needs all keys of the block.
      *reinterpret_cast<std::uint32_t*>(sdS + (krow + g) * LDS + kk * 16 + 2 * tq) = pa[0];
      *reinterpret_cast<std::uint32_t*>(sdS + (krow + g + 8) * LDS + kk * 16 + 2 * tq) = pa[1];
      *reinterpret_cast<std::uint32_t*>(sdS + (krow + g) * LDS + kk * 16 + 8 + 2 * tq) = pa[2];
      *reinterpret_cast<std::uint32_t*>(sdS + (krow + g + 8) * LDS + kk * 16 + 8 + 2 * tq) = pa[3];
    }
    __syncthreads();
    // dQ_i += dS K (line 16): warp (wm, wn) computes queries wm*16.. x columns wn*QN.., reading
    // dS = (dS^T)^T through ldmatrix.trans, and adds it to the fp32 workspace.
    float dqa[QN / 8][4];
#pragma unroll
    for (int j = 0; j < QN / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) dqa[j][e] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      std::uint32_t a[4];
      ptx::ldmatrix_x4_trans(a, sdSa + 2 * ((kk * 16 + yr) * LDS + wm * 16 + yc));
#pragma unroll
      for (int dp = 0; dp < QN / 16; ++dp) {
        std::uint32_t bk[4];
        ptx::ldmatrix_x4_trans(bk, sKa + 2 * ((kk * 16 + xr) * LD + wn * QN + dp * 16 + xc));
        ptx::mma_m16n8k16<T>(dqa[2 * dp], a, bk[0], bk[1]);
        ptx::mma_m16n8k16<T>(dqa[2 * dp + 1], a, bk[2], bk[3]);
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int i = q0 + wm * 16 + g + 8 * r;
      if (i < T_) {
        float* row = dq_acc + ((static_cast<long long>(b) * T_ + i) * Hq + h) * D + wn * QN;  // [b, i, h, :]
#pragma unroll
        for (int j = 0; j < QN / 8; ++j) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
          atomicAdd(reinterpret_cast<float2*>(row + j * 8 + 2 * tq), make_float2(dqa[j][2 * r], dqa[j][2 * r + 1]));
#else
          atomicAdd(row + j * 8 + 2 * tq, dqa[j][2 * r]);
          atomicAdd(row + j * 8 + 2 * tq + 1, dqa[j][2 * r + 1]);
#endif
        }
      }
    }
  }
  cp_async_wait<0>();

  // dK = scale * sum dS^T Q (the deferred factor), dV as accumulated; rows past T are dropped.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = kv0 + krow + g + 8 * r;
    if (key < T_) {
      const long long off = ((static_cast<long long>(b) * T_ + key) * Hkv + hk) * D;  // [b, key, hk, :]
#pragma unroll
      for (int j = 0; j < ON; ++j) {
        *reinterpret_cast<std::uint32_t*>(dk + off + j * 8 + 2 * tq) =
            pack2<T>(dk_acc[j][2 * r] * scale, dk_acc[j][2 * r + 1] * scale);
        *reinterpret_cast<std::uint32_t*>(dv + off + j * 8 + 2 * tq) = pack2<T>(dv_acc[j][2 * r], dv_acc[j][2 * r + 1]);
      }
    }
  }
}

// dq = scale * dq_acc (dS carried no scale), rounded to T; four elements per thread.
template <class T>
__global__ void attention_bwd_dq_kernel(T* __restrict__ dq, const float* __restrict__ dq_acc, long long quads,
                                        float scale) {
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < quads;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const float4 a = reinterpret_cast<const float4*>(dq_acc)[i];
    uint2 o;
    o.x = pack2<T>(a.x * scale, a.y * scale);
    o.y = pack2<T>(a.z * scale, a.w * scale);
    reinterpret_cast<uint2*>(dq)[i] = o;
  }
}

// ---- host-side checks -------------------------------------------------------------------
inline std::string attention_divisors(int n) {
  std::string s;
  int shown = 0;
  for (int d = 1; d <= n && shown < 6; ++d)
    if (n % d == 0) {
      s += (shown ? ", " : "") + std::to_string(d);
      ++shown;
    }
  return s;
}

// Throws cuda_error naming the argument, its value and the fix; returns B*T*Hq*D.
inline std::size_t attention_check_shape(const char* fn, int B, int T_, int Hq, int Hkv, int D) {
  const std::string f = std::string(fn) + ": ";
  require(B > 0, f + "batch B = " + std::to_string(B) + " must be positive");
  require(T_ > 0, f + "sequence length T = " + std::to_string(T_) + " must be positive");
  require(Hq > 0, f + "query heads Hq = " + std::to_string(Hq) + " must be positive");
  require(Hkv > 0, f + "KV heads Hkv = " + std::to_string(Hkv) + " must be positive");
  require(D == 64 || D == 128, f + "head dim D = " + std::to_string(D) +
                                   " is not supported; use 64 or 128 (pad the head dim up to one of them)");
  require(Hq % Hkv == 0,
          f + "query heads Hq = " + std::to_string(Hq) + " is not a multiple of KV heads Hkv = " + std::to_string(Hkv) +
              "; Hkv must divide Hq (divisors of " + std::to_string(Hq) + ": " + attention_divisors(Hq) + ")");
  require(T_ <= std::numeric_limits<int>::max() - 256,
          f + "sequence length T = " + std::to_string(T_) +
              " leaves no headroom for the kernels' int tile arithmetic; " +
              "split the sequence (context parallelism)");
  require(B <= 65535, f + "batch B = " + std::to_string(B) + " exceeds the grid limit 65535; split the batch");
  require(Hq <= 65535, f + "query heads Hq = " + std::to_string(Hq) + " exceeds the grid limit 65535; split the heads");
  // Each factor is below 2^31, so check the product in double before forming it in 64 bits.
  const double elems = static_cast<double>(B) * T_ * Hq * D;
  require(elems < 4.0e18, f + "B * T * Hq * D = " + std::to_string(elems) +
                              " elements overflow 64-bit indexing; split the batch or the sequence");
  const std::size_t n = static_cast<std::size_t>(B) * static_cast<std::size_t>(T_) * static_cast<std::size_t>(Hq) *
                        static_cast<std::size_t>(D);
  return n;
}

inline void attention_check_ptr(const char* fn, const char* name, const void* p, std::size_t elems, const char* shape,
                                std::size_t align = 16) {
  const std::string f = std::string(fn) + ": ";
  require(p != nullptr,
          f + name + " is null; pass a device buffer of " + shape + " = " + std::to_string(elems) + " elements");
  require(reinterpret_cast<std::uintptr_t>(p) % align == 0,
          f + name + " is not " + std::to_string(align) +
              "-byte aligned; the kernels copy aligned chunks, so pass a cudaMalloc'd buffer or one offset by a "
              "multiple of " +
              std::to_string(align) + " bytes");
}

// Checks the device can run the kernel (sm_80+, enough opt-in shared memory) and raises the
// kernel's dynamic shared-memory limit to `bytes`.
template <class Kernel>
inline void attention_prepare(const char* fn, Kernel kernel, std::size_t bytes) {
  int dev = 0, major = 0, optin = 0;
  TRAINPERF_CUDA_CHECK(cudaGetDevice(&dev));
  TRAINPERF_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  TRAINPERF_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  const std::string f = std::string(fn) + ": ";
  require(major >= 8, f + "device " + std::to_string(dev) + " has compute capability " + std::to_string(major) +
                          ".x; the mma.sync bf16/fp16 kernels need sm_80 or newer");
  require(bytes <= static_cast<std::size_t>(optin),
          f + "needs " + std::to_string(bytes) + " bytes of shared memory per block; device " + std::to_string(dev) +
              " allows " + std::to_string(optin) + " (use an A100/H100-class GPU)");
  TRAINPERF_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

template <class T>
constexpr void attention_check_type() {
  static_assert(std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>,
                "trainperf::cuda attention supports __nv_bfloat16 and __half");
}

inline std::size_t attention_align(std::size_t n) { return (n + 255) / 256 * 256; }

}  // namespace detail

// Bytes of fp32 scratch attention_backward needs: the dQ accumulator [B, T, Hq, D] and
// delta [B, Hq, T], each 256-byte aligned. Hkv is checked but does not change the size.
inline std::size_t attention_workspace_bytes(int B, int T_, int Hq, int Hkv, int D) {
  const std::size_t n = detail::attention_check_shape("attention_workspace_bytes", B, T_, Hq, Hkv, D);
  const std::size_t rows = static_cast<std::size_t>(B) * static_cast<std::size_t>(Hq) * static_cast<std::size_t>(T_);
  return detail::attention_align(n * sizeof(float)) + detail::attention_align(rows * sizeof(float));
}

// out[B, T, Hq, D] = softmax(q k^T / sqrt(D) + causal mask) v; lse[B, Hq, T] (fp32, natural log)
// for the backward. Asynchronous on stream s; throws cuda_error on bad arguments before launching.
template <class T>
void attention_forward(T* out, float* lse, const T* q, const T* k, const T* v, int B, int T_, int Hq, int Hkv, int D,
                       cudaStream_t s) {
  detail::attention_check_type<T>();
  const char* fn = "attention_forward";
  const std::size_t nq = detail::attention_check_shape(fn, B, T_, Hq, Hkv, D);
  const std::size_t nkv = nq / static_cast<std::size_t>(Hq) * static_cast<std::size_t>(Hkv);
  detail::attention_check_ptr(fn, "out", out, nq, "B*T*Hq*D");
  detail::attention_check_ptr(fn, "lse", lse, nq / static_cast<std::size_t>(D), "B*Hq*T", 4);
  detail::attention_check_ptr(fn, "q", q, nq, "B*T*Hq*D");
  detail::attention_check_ptr(fn, "k", k, nkv, "B*T*Hkv*D");
  detail::attention_check_ptr(fn, "v", v, nkv, "B*T*Hkv*D");
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));  // 1/sqrt(D), as the CPU reference
  const float scale_log2 = scale * detail::attention_log2e;     // exp(x*scale) = 2^(x*scale*log2 e)
  auto launch = [&](auto dim) {
    constexpr int Dc = decltype(dim)::value;
    using C = detail::attention_fwd_tiles<Dc>;
    constexpr std::size_t smem = detail::attention_fwd_smem_bytes<T, Dc>();
    detail::attention_prepare(fn, detail::attention_fwd_kernel<T, Dc>, smem);
    const dim3 grid((T_ + C::BM - 1) / C::BM, Hq, B);
    detail::attention_fwd_kernel<T, Dc>
        <<<grid, C::NW * 32, smem, s>>>(out, lse, q, k, v, T_, Hq, Hkv, scale, scale_log2);
    TRAINPERF_CUDA_CHECK_LAUNCH();
  };
  if (D == 64)
    launch(std::integral_constant<int, 64>{});
  else
    launch(std::integral_constant<int, 128>{});
}

// Overwrites dq [B, T, Hq, D], dk and dv [B, T, Hkv, D] with the gradients of the causal
// attention whose forward produced out and lse, given dout = dL/dout. workspace: device
// memory of at least attention_workspace_bytes(B, T_, Hq, Hkv, D) bytes, 16-byte aligned.
// dk, dv are deterministic; dq is not bit-reproducible (fp32 atomics).
template <class T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,
                        const float* lse, int B, int T_, int Hq, int Hkv, int D, void* workspace,
                        std::size_t workspace_bytes, cudaStream_t s) {
  detail::attention_check_type<T>();
  const char* fn = "attention_backward";
  const std::size_t nq = detail::attention_check_shape(fn, B, T_, Hq, Hkv, D);
  const std::size_t nkv = nq / static_cast<std::size_t>(Hq) * static_cast<std::size_t>(Hkv);
  const std::size_t rows = nq / static_cast<std::size_t>(D);  // B*T*Hq
  detail::attention_check_ptr(fn, "dq", dq, nq, "B*T*Hq*D");
  detail::attention_check_ptr(fn, "dk", dk, nkv, "B*T*Hkv*D");
  detail::attention_check_ptr(fn, "dv", dv, nkv, "B*T*Hkv*D");
  detail::attention_check_ptr(fn, "dout", dout, nq, "B*T*Hq*D");
  detail::attention_check_ptr(fn, "q", q, nq, "B*T*Hq*D");
  detail::attention_check_ptr(fn, "k", k, nkv, "B*T*Hkv*D");
  detail::attention_check_ptr(fn, "v", v, nkv, "B*T*Hkv*D");
  detail::attention_check_ptr(fn, "out", out, nq, "B*T*Hq*D");
  detail::attention_check_ptr(fn, "lse", lse, rows, "B*Hq*T", 4);
  const std::size_t need = attention_workspace_bytes(B, T_, Hq, Hkv, D);
  detail::attention_check_ptr(fn, "workspace", workspace, need / sizeof(float), "attention_workspace_bytes / 4 fp32");
  require(workspace_bytes >= need, std::string(fn) + ": workspace_bytes = " + std::to_string(workspace_bytes) +
                                       " is too small; allocate attention_workspace_bytes(B, T, Hq, Hkv, D) = " +
                                       std::to_string(need) + " bytes");
  float* dq_acc = static_cast<float*>(workspace);
  float* delta =
      reinterpret_cast<float*>(static_cast<unsigned char*>(workspace) + detail::attention_align(nq * sizeof(float)));
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));  // 1/sqrt(D), as the CPU reference
  const float scale_log2 = scale * detail::attention_log2e;     // exp(x*scale) = 2^(x*scale*log2 e)

  auto launch = [&](auto dim) {
    constexpr int Dc = decltype(dim)::value;
    using C = detail::attention_bwd_tiles<Dc>;
    // The device and shared-memory checks come before anything is queued: a refusal leaves the
    // workspace and the outputs as they were.
    constexpr std::size_t smem = detail::attention_bwd_smem_bytes<T, Dc>();
    detail::attention_prepare(fn, detail::attention_bwd_kernel<T, Dc>, smem);
    TRAINPERF_CUDA_CHECK(cudaMemsetAsync(dq_acc, 0, nq * sizeof(float), s));
    constexpr int warps_per_block = 8;
    const long long r = static_cast<long long>(rows);
    detail::attention_bwd_delta_kernel<T, Dc>
        <<<static_cast<unsigned>((r + warps_per_block - 1) / warps_per_block), warps_per_block * 32, 0, s>>>(
            delta, dout, out, T_, Hq, r);
    TRAINPERF_CUDA_CHECK_LAUNCH();
    const dim3 grid((T_ + C::BN - 1) / C::BN, Hkv, B);
    detail::attention_bwd_kernel<T, Dc>
        <<<grid, C::NW * 32, smem, s>>>(dq_acc, dk, dv, dout, q, k, v, lse, delta, T_, Hq, Hkv, scale, scale_log2);
    TRAINPERF_CUDA_CHECK_LAUNCH();
  };
  if (D == 64)
    launch(std::integral_constant<int, 64>{});
  else
    launch(std::integral_constant<int, 128>{});
  const long long quads = static_cast<long long>(nq / 4);
  const long long blocks = std::min<long long>((quads + 255) / 256, 65535LL * 8);
  detail::attention_bwd_dq_kernel<T><<<static_cast<unsigned>(blocks), 256, 0, s>>>(dq, dq_acc, quads, scale);
  TRAINPERF_CUDA_CHECK_LAUNCH();
}

}  // namespace trainperf::cuda
