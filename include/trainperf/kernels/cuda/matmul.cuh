// trainperf — tensor-core GEMM (bf16 / fp16 inputs, fp32 accumulation) with fused epilogues, and
// the same operation through cuBLASLt as the baseline it is measured against.
//
// Semantics (row-major everywhere; "ld" is the distance in elements between consecutive rows):
//
//   pre[m, n] = alpha * sum_k op(A)[m, k] * op(B)[k, n]  +  beta * D_old[m, n]
//
//   op(A) is [M, K]: stored as A[M, K] (trans_a = false, lda >= K) or as A[K, M] (trans_a = true,
//   lda >= M). op(B) is [K, N]: stored as B[K, N] (trans_b = false, ldb >= N) or as B[N, K]
//   (trans_b = true, ldb >= K). D_old is what D holds before the call; it is read only when
//   beta != 0 (so D may hold anything, NaN included, when beta == 0, as in BLAS).
//
//   epilogue::none       D[m, n] = pre[m, n]                                  D is [M, N], ldd >= N
//   epilogue::bias       D[m, n] = pre[m, n] + bias[n]                        bias: N values of T
//   epilogue::bias_gelu  D[m, n] = gelu_tanh(pre[m, n] + bias[n])             (Hendrycks & Gimpel 2016)
//   epilogue::residual   D[m, n] = pre[m, n] + residual[m, n]                 residual: Tout, read
//                        with ldd; it may alias D (then every read of D_old, for the residual
//                        and for beta, comes before the thread's write)
//   epilogue::silu_gate  D[m, j] = silu(pre[m, 2j]) * pre[m, 2j + 1]          D is [M, N/2], ldd >= N/2
//                        SwiGLU (Shazeer 2020) in one GEMM: the caller's weight interleaves the
//                        gate and up projections row by row, so output column 2j of the product is
//                        gate_j and column 2j + 1 is up_j. N must be even and beta must be 0.
//
// Types: T (A, B, bias) is __nv_bfloat16 or __half; Tout (D, residual) is T or float. Other
// combinations do not compile. fp32 output with beta = 1 accumulates in fp32, which is how a
// trainer sums weight gradients over micro-batches: dW[O, I] += dout^T · inp is
//   gemm<T, float>(backend, /*trans_a=*/true, /*trans_b=*/false, O, I, T_tokens, 1.f,
//                  dout, O, inp, I, /*beta=*/1.f, dW, I);
// and the forward linear out[T, O] = inp[T, I] · W[O, I]^T is trans_a = false, trans_b = true.
//
// Backends:
//   backend::trainperf  this file's kernels; each call takes one of three paths (gemm_path_for()
//                       says which):
//     wgmma     Hopper (compute capability 9.0, code built for sm_90a), trans_a = false and
//               trans_b = true (a linear layer's forward, out = inp · W^T), aligned operands
//               (below): 128 x 256 x 64 tiles, a producer warpgroup issuing TMA bulk tensor
//               copies into a 4-stage mbarrier ring and two consumer warpgroups issuing
//               wgmma.m64n256k16 from 128-byte-swizzled shared memory.
//     mma_sync  every transpose combination, any positive M, N, K, sm_80 and newer:
//               mma.sync.m16n8k16 tiles of 128 x 128 x 32 with 8 warps, a 4-stage cp.async
//               pipeline, ldmatrix (.trans for M- or N-contiguous operands) from padded,
//               bank-conflict-free tiles. Ragged edges are zero-filled through cp.async's
//               src-size operand and the stores are predicated, so K need not be a multiple of 8.
//     simple    any leading dimension or alignment: shared-memory tiles and fp32 FMA, ~10x slower.
//   Both tensor-core paths need lda and ldb to be multiples of 8 elements and A, B 16-byte
//   aligned (then every 16-byte chunk of a row starts aligned); otherwise `simple` runs.
//   backend::trainperf_mma_sync  the same, but never the wgmma kernel (to test and time mma.sync
//                       on Hopper).
//   backend::cublaslt   cuBLASLt (column-major) with the row-major operation mapped onto it by
//                       swapping operands: D^T[N, M] = op(B)^T op(A)^T. Bias and bias + GELU use
//                       CUBLASLT_EPILOGUE_BIAS / GELU_BIAS when Tout == T (cuBLASLt's bias has
//                       D's type); residual uses C when it can; everything else (fp32-output
//                       bias, SiLU gate) runs a small elementwise kernel after the GEMM. Its GELU
//                       is cuBLASLt's own, which may differ from tanh GELU by ~1e-3.
//
// Every argument is checked on the host before any launch: a bad call throws
// trainperf::cuda::cuda_error naming the argument, its value and the fix. Calls are asynchronous
// on `stream`. D must not overlap A, B or bias. The first backend::trainperf call on a compute
// capability 9.0 device runs a one-time synchronous probe for sm_90a code (keep that first call
// out of CUDA graph capture). Compiled only under nvcc (sm_80 and newer).
#pragma once

#include <cublasLt.h>
#include <cuda.h>  // CUtensorMap and its enums (types only: the driver call goes through the runtime)
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include <trainperf/kernels/cuda/check.cuh>
#include <trainperf/kernels/cuda/ptx.cuh>

namespace trainperf::cuda {

enum class epilogue { none, bias, bias_gelu, residual, silu_gate };
// trainperf: this file's kernels (wgmma where it applies, else mma.sync, else the simple kernel);
// trainperf_mma_sync: the same but never wgmma (to test and time the mma.sync kernel on Hopper);
// cublaslt: cuBLASLt with the same semantics.
enum class backend { trainperf, trainperf_mma_sync, cublaslt };
// Which kernel a call runs.
enum class gemm_path { wgmma, mma_sync, simple, cublaslt };

inline const char* to_string(epilogue e) {
  switch (e) {
    case epilogue::none:
      return "none";
    case epilogue::bias:
      return "bias";
    case epilogue::bias_gelu:
      return "bias_gelu";
    case epilogue::residual:
      return "residual";
    case epilogue::silu_gate:
      return "silu_gate";
  }
  return "?";
}
inline const char* to_string(backend b) {
  switch (b) {
    case backend::trainperf:
      return "trainperf";
    case backend::trainperf_mma_sync:
      return "trainperf_mma_sync";
    case backend::cublaslt:
      return "cublaslt";
  }
  return "?";
}
inline const char* to_string(gemm_path p) {
  switch (p) {
    case gemm_path::wgmma:
      return "wgmma";
    case gemm_path::mma_sync:
      return "mma_sync";
    case gemm_path::simple:
      return "simple";
    case gemm_path::cublaslt:
      return "cublaslt";
  }
  return "?";
}

namespace detail {

using i64 = std::int64_t;

template <class T>
inline constexpr bool is_gemm_input_v = std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>;
template <class T, class Tout>
inline constexpr bool is_gemm_output_v = std::is_same_v<Tout, T> || std::is_same_v<Tout, float>;

// ---- device helpers ----------------------------------------------------------------------------

using ptx::from_float;
using ptx::to_float;

// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (Hendrycks & Gimpel
// 2016, "Gaussian Error Linear Units", section 2).
// Below -10 the value is below 1e-20 in magnitude and the formula would give -inf * 0 = NaN
// at x = -inf, so it returns 0 there (the limit).
__device__ __forceinline__ float gelu_tanh(float x) {
  constexpr float sqrt_2_over_pi = 0.7978845608028654f;  // sqrt(2 / pi)
  if (x < -10.0f) return 0.0f;
  return 0.5f * x * (1.0f + tanhf(sqrt_2_over_pi * (x + 0.044715f * x * x * x)));
}

// SiLU(x) = x * sigmoid(x) (Elfwing, Uchibe & Doya 2018); exp(-x) overflowing to inf gives -0.
__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

// What every kernel needs to know; passed by value.
template <class T, class Tout>
struct gemm_params {
  const T* a;
  const T* b;
  Tout* d;
  const T* bias;
  const Tout* residual;
  i64 lda, ldb, ldd;
  int m, n, k;
  float alpha, beta;
  epilogue ep;
  bool pair_store;  // ldd even and D aligned to two elements: store column pairs as one vector
};

// Applies the epilogue to the results of columns col and col + 1 of row `row` (col is even);
// v0 and v1 are the raw dot products. Out-of-range elements are skipped.
template <class T, class Tout>
__device__ __forceinline__ void store_pair(const gemm_params<T, Tout>& p, int row, int col, float v0, float v1) {
  if (row >= p.m || col >= p.n) return;
  const i64 r = static_cast<i64>(row) * p.ldd;
  if (p.ep == epilogue::silu_gate) {  // n is even, so col + 1 < n; beta is 0 (checked on the host)
    p.d[r + col / 2] = from_float<Tout>(silu(p.alpha * v0) * (p.alpha * v1));
    return;
  }
  const bool both = col + 1 < p.n;
  float x[2] = {p.alpha * v0, p.alpha * v1};
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    if (j == 1 && !both) break;
    const int c = col + j;
    if (p.beta != 0.0f) x[j] += p.beta * to_float(p.d[r + c]);
    switch (p.ep) {
      case epilogue::bias:
        x[j] += to_float(p.bias[c]);
        break;
      case epilogue::bias_gelu:
        x[j] = gelu_tanh(x[j] + to_float(p.bias[c]));
        break;
      case epilogue::residual:
        x[j] += to_float(p.residual[r + c]);
        break;
      default:
        break;
    }
  }
  if (both && p.pair_store) {
    if constexpr (std::is_same_v<Tout, float>) {
      *reinterpret_cast<float2*>(p.d + r + col) = make_float2(x[0], x[1]);
    } else if constexpr (std::is_same_v<Tout, __nv_bfloat16>) {
      *reinterpret_cast<__nv_bfloat162*>(p.d + r + col) = __floats2bfloat162_rn(x[0], x[1]);
    } else {
      *reinterpret_cast<__half2*>(p.d + r + col) = __floats2half2_rn(x[0], x[1]);
    }
  } else {
    p.d[r + col] = from_float<Tout>(x[0]);
    if (both) p.d[r + col + 1] = from_float<Tout>(x[1]);
  }
}

// Block index -> (tile row, tile column), walking `group` tile rows at a time so that blocks
// running together share A rows and B columns in L2 ("grouped ordering"; the Triton matmul
// tutorial describes the same idea).
__device__ __forceinline__ void tile_coords(int pid, int tiles_m, int tiles_n, int& tm, int& tn) {
  constexpr int group = 8;
  const int width = group * tiles_n;
  const int first_m = (pid / width) * group;
  const int rows = min(tiles_m - first_m, group);
  const int in_group = pid % width;
  tm = first_m + in_group % rows;
  tn = in_group / rows;
}

// ---- PTX wrappers (PTX ISA 8.x: cp.async, ldmatrix, mma) ----------------------------------------

using ptx::cp_async_16;
using ptx::cp_async_commit;
using ptx::cp_async_wait;
using ptx::ldmatrix_x4;
using ptx::ldmatrix_x4_trans;
using ptx::smem_u32;

// ---- fast path: mma.sync kernel ---------------------------------------------------------------

struct mma_config {
  static constexpr int bm = 128, bn = 128, bk = 32;  // block tile
  static constexpr int stages = 4;                   // cp.async pipeline depth
  static constexpr int warps_m = 2, warps_n = 4;     // 8 warps
  static constexpr int threads = 32 * warps_m * warps_n;
  static constexpr int wm = bm / warps_m, wn = bn / warps_n;  // warp tile 64 x 32
  static constexpr int mt = wm / 16, nt = wn / 8;             // m16 x n8 mma tiles per warp: 4 x 4
  // Each smem row is padded by 8 elements (16 bytes): rows 80 or 272 bytes apart put the 8 rows
  // an ldmatrix phase reads into 8 distinct 16-byte bank groups (32 banks x 4 bytes = 128 bytes;
  // CUDA C++ Programming Guide, "Shared Memory" of compute capability 8.x / 9.0).
  static constexpr int pad = 8;
};

// Copies one operand tile into shared memory with 16-byte cp.async. The tile covers MN rows of
// op(A) (or columns of op(B)) by BK steps of k. KMajor: the operand's contiguous dimension is k
// (A[M,K], B[N,K]); smem holds [MN][BK + pad]. Otherwise it is M or N (A[K,M], B[K,N]); smem
// holds [BK][MN + pad]. Chunks past the matrix edge are partly or wholly zero-filled.
template <class T, bool KMajor, int MN, int BK, int Threads>
struct tile_loader {
  static constexpr int rows = KMajor ? MN : BK;
  static constexpr int cols = KMajor ? BK : MN;
  static constexpr int ld = cols + mma_config::pad;  // smem row stride in elements
  static constexpr int stage_elems = rows * ld;
  static constexpr int chunks_per_row = cols / 8;
  static constexpr int per_thread = rows * chunks_per_row / Threads;
  static_assert(cols % 8 == 0 && (rows * chunks_per_row) % Threads == 0, "tile must split into 16-byte chunks");
  static_assert((stage_elems * sizeof(T)) % 16 == 0, "stages must stay 16-byte aligned");

  const T* base;
  const T* src[per_thread];        // chunk address at k = 0 (base when the chunk's row is out of range)
  int kpos[per_thread];            // KMajor: k offset of the chunk in the tile; else its tile row (= k)
  int fixed[per_thread];           // KMajor: 16 if the row is in range else 0; else valid bytes along MN
  std::uint32_t soff[per_thread];  // byte offset of the chunk within a stage
  i64 kstride;                     // elements between consecutive k in global memory

  __device__ __forceinline__ void init(const T* g, i64 ldg, int mn0, int mn_extent, int tid) {
    base = g;
    kstride = KMajor ? 1 : ldg;
#pragma unroll
    for (int i = 0; i < per_thread; ++i) {
      const int c = tid + i * Threads;
      const int r = c / chunks_per_row, cc = c % chunks_per_row;
      soff[i] = static_cast<std::uint32_t>((r * ld + cc * 8) * sizeof(T));
      if constexpr (KMajor) {
        const int mn = mn0 + r;
        const bool ok = mn < mn_extent;
        src[i] = ok ? g + static_cast<i64>(mn) * ldg + cc * 8 : g;
        kpos[i] = cc * 8;
        fixed[i] = ok ? 16 : 0;
      } else {
        const int mn = mn0 + cc * 8;
        const int left = mn_extent - mn;  // elements left along the contiguous dimension
        src[i] = left > 0 ? g + static_cast<i64>(r) * ldg + mn : g;
        kpos[i] = r;
        fixed[i] = left <= 0 ? 0 : (left >= 8 ? 16 : left * static_cast<int>(sizeof(T)));
      }
    }
  }

  // Issues the copies of the tile starting at k0 into the stage at shared address `stage`.
  __device__ __forceinline__ void load(std::uint32_t stage, int k0, int k_extent) const {
#pragma unroll
    for (int i = 0; i < per_thread; ++i) {
      int bytes;
      if constexpr (KMajor) {
        const int left = k_extent - (k0 + kpos[i]);
        bytes = left <= 0 ? 0 : (left >= 8 ? fixed[i] : min(fixed[i], left * static_cast<int>(sizeof(T))));
      } else {
        bytes = k0 + kpos[i] < k_extent ? fixed[i] : 0;
      }
      const T* s = bytes > 0 ? src[i] + static_cast<i64>(k0) * kstride : base;
      cp_async_16(stage + soff[i], s, bytes);
    }
  }
};

// Fragment addresses for ldmatrix, per lane, relative to a stage (bytes), for k16 step 0.
// mma.m16n8k16 fragments (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"),
// g = lane / 4, t = lane % 4:  A regs 0..3 = A[g][2t..], A[g+8][2t..], A[g][2t+8..], A[g+8][2t+8..];
// B regs 0..1 = B[2t..][g], B[2t+8..][g];  C = C[g][2t..], C[g+8][2t..].
// A, k contiguous, non-trans: matrix i = (rows 0-7 | 8-15) x (k 0-7 | 8-15) -> row = lane % 16,
//   k = (lane / 16) * 8.  A, m contiguous, .trans: smem rows are k: k = lane % 8 + (lane / 16) * 8,
//   m = ((lane / 8) % 2) * 8.  B, k contiguous, non-trans (x4 = two n8 tiles): n = lane % 8 +
//   (lane / 16) * 8, k = ((lane / 8) % 2) * 8.  B, n contiguous, .trans: k = lane % 8 +
//   ((lane / 8) % 2) * 8, n = (lane / 16) * 8.
template <class T, bool KMajor, int LD>
__device__ __forceinline__ std::uint32_t frag_a_offset(int lane, int m_base) {
  if constexpr (KMajor) {
    return static_cast<std::uint32_t>(((m_base + (lane & 15)) * LD + (lane >> 4) * 8) * sizeof(T));
  } else {
    return static_cast<std::uint32_t>((((lane & 7) + (lane >> 4) * 8) * LD + m_base + ((lane >> 3) & 1) * 8) *
                                      sizeof(T));
  }
}
template <class T, bool KMajor, int LD>
__device__ __forceinline__ std::uint32_t frag_b_offset(int lane, int n_base) {
  if constexpr (KMajor) {
    return static_cast<std::uint32_t>(((n_base + (lane & 7) + (lane >> 4) * 8) * LD + ((lane >> 3) & 1) * 8) *
                                      sizeof(T));
  } else {
    return static_cast<std::uint32_t>((((lane & 7) + ((lane >> 3) & 1) * 8) * LD + n_base + (lane >> 4) * 8) *
                                      sizeof(T));
  }
}

// One block computes a 128 x 128 tile of D. AK / BK: A / B is k-contiguous (trans_a == false /
// trans_b == true). 2 blocks per SM: 2 x 80 KiB of shared memory fits the 164 KiB of sm_80 and the
// 228 KiB of sm_90 per SM (CUDA C++ Programming Guide, "Technical Specifications per Compute
// Capability"); 2 x 256 threads x 128 registers fill the 64 K registers.
template <class T, class Tout, bool AK, bool BKc>
__global__ void __launch_bounds__(mma_config::threads, 2) gemm_mma_kernel(gemm_params<T, Tout> p) {
  using cfg = mma_config;
  using load_a = tile_loader<T, AK, cfg::bm, cfg::bk, cfg::threads>;
  using load_b = tile_loader<T, BKc, cfg::bn, cfg::bk, cfg::threads>;
  constexpr std::uint32_t stage_bytes_a = load_a::stage_elems * sizeof(T);
  constexpr std::uint32_t stage_bytes_b = load_b::stage_elems * sizeof(T);
  extern __shared__ __align__(128) unsigned char smem_mma[];
  const std::uint32_t sa = smem_u32(smem_mma);
  const std::uint32_t sb = sa + cfg::stages * stage_bytes_a;

  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp % cfg::warps_m, warp_n = warp / cfg::warps_m;
  const int tiles_m = (p.m + cfg::bm - 1) / cfg::bm, tiles_n = (p.n + cfg::bn - 1) / cfg::bn;
  int tm, tn;
  tile_coords(static_cast<int>(blockIdx.x), tiles_m, tiles_n, tm, tn);
  const int m0 = tm * cfg::bm, n0 = tn * cfg::bn;

  load_a la;
  load_b lb;
  la.init(p.a, p.lda, m0, p.m, tid);
  lb.init(p.b, p.ldb, n0, p.n, tid);
  const int ktiles = (p.k + cfg::bk - 1) / cfg::bk;

  // Prologue: stages - 1 tiles in flight. Every iteration commits one group (possibly empty)
  // so that wait_group<stages - 2> below always means "tile kt has landed".
#pragma unroll
  for (int s = 0; s < cfg::stages - 1; ++s) {
    if (s < ktiles) {
      la.load(sa + s * stage_bytes_a, s * cfg::bk, p.k);
      lb.load(sb + s * stage_bytes_b, s * cfg::bk, p.k);
    }
    cp_async_commit();
  }

  std::uint32_t a_off[cfg::mt], b_off[cfg::nt / 2];
#pragma unroll
  for (int i = 0; i < cfg::mt; ++i) a_off[i] = frag_a_offset<T, AK, load_a::ld>(lane, warp_m * cfg::wm + i * 16);
#pragma unroll
  for (int j = 0; j < cfg::nt / 2; ++j) b_off[j] = frag_b_offset<T, BKc, load_b::ld>(lane, warp_n * cfg::wn + j * 16);
  // Advancing one k16 step: 16 elements along a k-contiguous row, or 16 rows otherwise.
  constexpr std::uint32_t a_k16 = (AK ? 16 : 16 * load_a::ld) * sizeof(T);
  constexpr std::uint32_t b_k16 = (BKc ? 16 : 16 * load_b::ld) * sizeof(T);

  float acc[cfg::mt][cfg::nt][4];
#pragma unroll
  for (int i = 0; i < cfg::mt; ++i)
#pragma unroll
    for (int j = 0; j < cfg::nt; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.0f;

  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<cfg::stages - 2>();  // this thread's copies of tile kt are done
    __syncthreads();                   // ... and everyone's; everyone also finished tile kt - 1
    {
      const int next = kt + cfg::stages - 1;  // refills the stage tile kt - 1 used
      if (next < ktiles) {
        const int s = next % cfg::stages;
        la.load(sa + s * stage_bytes_a, next * cfg::bk, p.k);
        lb.load(sb + s * stage_bytes_b, next * cfg::bk, p.k);
      }
      cp_async_commit();
    }
    const int s = kt % cfg::stages;
    const std::uint32_t stage_a = sa + s * stage_bytes_a, stage_b = sb + s * stage_bytes_b;
#pragma unroll
    for (int ks = 0; ks < cfg::bk / 16; ++ks) {
      std::uint32_t af[cfg::mt][4], bf[cfg::nt][2];
#pragma unroll
      for (int i = 0; i < cfg::mt; ++i) {
        const std::uint32_t addr = stage_a + a_off[i] + ks * a_k16;
        if constexpr (AK)
          ldmatrix_x4(af[i], addr);
        else
          ldmatrix_x4_trans(af[i], addr);
      }
#pragma unroll
      for (int j = 0; j < cfg::nt / 2; ++j) {
        std::uint32_t r[4];
        const std::uint32_t addr = stage_b + b_off[j] + ks * b_k16;
        if constexpr (BKc)
          ldmatrix_x4(r, addr);
        else
          ldmatrix_x4_trans(r, addr);
        // Matrices 0, 1 are n8 tile 2j (k 0-7, k 8-15); 2, 3 are n8 tile 2j + 1 (see above).
        bf[2 * j][0] = r[0];
        bf[2 * j][1] = r[1];
        bf[2 * j + 1][0] = r[2];
        bf[2 * j + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < cfg::mt; ++i)
#pragma unroll
        for (int j = 0; j < cfg::nt; ++j) ptx::mma_m16n8k16<T>(acc[i][j], af[i], bf[j][0], bf[j][1]);
    }
  }
  cp_async_wait<0>();  // only empty groups can be left; leave nothing in flight at exit

  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int i = 0; i < cfg::mt; ++i) {
    const int row = m0 + warp_m * cfg::wm + i * 16 + g;
#pragma unroll
    for (int j = 0; j < cfg::nt; ++j) {
      const int col = n0 + warp_n * cfg::wn + j * 8 + 2 * t;
      store_pair(p, row, col, acc[i][j][0], acc[i][j][1]);
      store_pair(p, row + 8, col, acc[i][j][2], acc[i][j][3]);
    }
  }
}

template <class T, bool AK, bool BKc>
constexpr int mma_smem_bytes() {
  using cfg = mma_config;
  return cfg::stages *
         (tile_loader<T, AK, cfg::bm, cfg::bk, cfg::threads>::stage_elems +
          tile_loader<T, BKc, cfg::bn, cfg::bk, cfg::threads>::stage_elems) *
         static_cast<int>(sizeof(T));
}

// ---- Hopper path: wgmma kernel (sm_90a) for A[M, K] and B[N, K] (trans_a = false, trans_b = true) --

// 128 x 256 x 64 tiles, three warpgroups with separate jobs (warp specialization): warpgroup 0
// produces, one thread of it issuing the Tensor Memory Accelerator's bulk tensor copies
// (cp.async.bulk.tensor) of A's and B's tiles into a 4-stage ring; warpgroups 1 and 2 consume,
// each issuing wgmma.m64n256k16 on its 64 rows of the tile. Each stage has two mbarriers: `full`
// (the copies landed: the producer arms it with the stage's byte count, the copy engine completes
// it) and `empty` (both consumers' wgmmas that read it have finished). The copies write the
// canonical K-major 128-byte-swizzled layout: a tile row of 64 k values is 128 bytes, and its
// 16-byte chunk c sits at chunk c ^ (row % 8) (PTX ISA, "Shared Memory Matrix Layout", 128B
// swizzle; CUDA's CU_TENSOR_MAP_SWIZZLE_128B), tiles 1024-byte aligned; rows and k values past
// the matrix edge arrive as zeros. The producer gives its registers to the consumers (setmaxnreg).
struct wgmma_config {
  static constexpr int bm = 128, bn = 256, bk = 64;
  static constexpr int stages = 4;
  static constexpr int threads = 384;  // warpgroup 0 produces; consumer w = 1, 2 owns tile rows 64(w-1)..
  static constexpr int a_stage_bytes = bm * bk * 2, b_stage_bytes = bn * bk * 2;
  // + the 2 x stages mbarriers, + slack to align the tiles to 1024 bytes
  static constexpr int smem_bytes = stages * (a_stage_bytes + b_stage_bytes) + 2 * stages * 8 + 1024;
};

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
// Shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format" for wgmma): bits 0-13 start
// address >> 4; 16-29 leading-dimension byte offset >> 4 (unused by K-major swizzled layouts, 1 by
// convention); 32-45 stride-dimension byte offset >> 4 (1024 bytes between 8-row groups); 49-51
// base offset (0: tiles are 1024-byte aligned); 62-63 swizzle mode (1 = 128-byte).
__device__ __forceinline__ std::uint64_t wgmma_desc(std::uint32_t smem_addr) {
  return static_cast<std::uint64_t>((smem_addr & 0x3FFFFu) >> 4) | (std::uint64_t{1} << 16) |
         (std::uint64_t{1024 >> 4} << 32) | (std::uint64_t{1} << 62);
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// mbarrier and bulk tensor copy wrappers (PTX ISA, "Parallel Synchronization and Communication
// Instructions: mbarrier" and "cp.async.bulk.tensor"). Addresses are shared-memory (cvta) ones.
__device__ __forceinline__ void mbar_init(std::uint32_t bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// Makes the initialized barriers visible to the copy engine (the async proxy) before first use.
__device__ __forceinline__ void mbar_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void mbar_arrive(std::uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Arrives and expects `bytes` of copies to complete on the barrier in this phase.
__device__ __forceinline__ void mbar_arrive_expect(std::uint32_t bar, int bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// Waits until the barrier's phase with this parity has completed.
__device__ __forceinline__ void mbar_wait(std::uint32_t bar, int parity) {
  std::uint32_t done = 0;
  do {
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done)
                 : "r"(bar), "r"(parity)
                 : "memory");
  } while (done == 0);
}
// Copies the box at (x = k, y = row) of a 2-D tensor map into shared memory; completes on `bar`.
__device__ __forceinline__ void tma_load_2d(std::uint32_t dst, const CUtensorMap* map, std::uint32_t bar, int x,
                                            int y) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];\n" ::"r"(
          dst),
      "l"(reinterpret_cast<std::uint64_t>(map)), "r"(bar), "r"(x), "r"(y)
      : "memory");
}
// Keeps the compiler from moving accumulator reads or writes across a wgmma wait.
__device__ __forceinline__ void pin_accumulators(float (&d)[128]) {
#pragma unroll
  for (int i = 0; i < 128; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// D(64 x 256, fp32) += A(64 x 16, smem) B(16 x 256, smem), both K-major (imm-trans 0) (PTX ISA,
// wgmma.mma_async). Register d[4j + i] holds row 16 (warp % 4) + lane / 4 + 8 (i / 2), column
// 8j + 2 (lane % 4) + i % 2 (PTX ISA, "wgmma .m64nNk16 register fragment layout for D").
#define TRAINPERF_WGMMA_M64N256K16(TYPE)                                                                             \
  asm volatile(                                                                                                      \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"                                                                  \
      "wgmma.mma_async.sync.aligned.m64n256k16.f32." TYPE "." TYPE                                                   \
      " {"                                                                                                           \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                       \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                             \
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                             \
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "                             \
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "                             \
      "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "                             \
      "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "                 \
      "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"               \
      "}, %128, %129, p, 1, 1, 0, 0;\n}\n"                                                                           \
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),  \
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),       \
        "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),      \
        "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]),      \
        "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),      \
        "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),      \
        "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),      \
        "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]),      \
        "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]),      \
        "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]),      \
        "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]),      \
        "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]),      \
        "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), \
        "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),            \
        "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]),            \
        "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]),            \
        "+f"(d[126]), "+f"(d[127])                                                                                   \
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));

template <class T>
__device__ __forceinline__ void wgmma_m64n256k16(float (&d)[128], std::uint64_t desc_a, std::uint64_t desc_b,
                                                 int accumulate) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    TRAINPERF_WGMMA_M64N256K16("bf16");
  } else {
    TRAINPERF_WGMMA_M64N256K16("f16");
  }
}
#undef TRAINPERF_WGMMA_M64N256K16
#endif  // sm_90a

// Reports whether the code this device runs was compiled with the sm_90a features (wgmma).
template <int = 0>
__global__ void wgmma_probe_kernel(int* out) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  *out = 1;
#else
  *out = 0;
#endif
}

template <class T, class Tout>
__global__ void __launch_bounds__(wgmma_config::threads, 1)
    gemm_wgmma_kernel(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                      gemm_params<T, Tout> p) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using cfg = wgmma_config;
  extern __shared__ __align__(1024) unsigned char smem_wgmma[];
  const std::uint32_t sa = (smem_u32(smem_wgmma) + 1023u) & ~1023u;  // the swizzle needs 1024-byte tiles
  const std::uint32_t sb = sa + cfg::stages * cfg::a_stage_bytes;
  const std::uint32_t full = sb + cfg::stages * cfg::b_stage_bytes, empty = full + cfg::stages * 8;

  const int tid = static_cast<int>(threadIdx.x);
  const int wg = tid / 128;
  const int tiles_m = (p.m + cfg::bm - 1) / cfg::bm, tiles_n = (p.n + cfg::bn - 1) / cfg::bn;
  int tm, tn;
  tile_coords(static_cast<int>(blockIdx.x), tiles_m, tiles_n, tm, tn);
  const int m0 = tm * cfg::bm, n0 = tn * cfg::bn;
  const int ktiles = (p.k + cfg::bk - 1) / cfg::bk;

  if (tid == 0) {
#pragma unroll
    for (int s = 0; s < cfg::stages; ++s) {
      mbar_init(full + 8 * s, 1);   // the producer's arrive (with the byte count)
      mbar_init(empty + 8 * s, 2);  // one arrive per consumer warpgroup
    }
    mbar_init_fence();
  }
  __syncthreads();

  if (wg == 0) {  // producer
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
    if (tid == 0) {
      for (int kt = 0; kt < ktiles; ++kt) {
        const int s = kt % cfg::stages, round = kt / cfg::stages;
        if (round > 0) mbar_wait(empty + 8 * s, (round - 1) & 1);  // both consumers are done with it
        const std::uint32_t bar = full + 8 * s;
        mbar_arrive_expect(bar, cfg::a_stage_bytes + cfg::b_stage_bytes);
        tma_load_2d(sa + s * cfg::a_stage_bytes, &map_a, bar, kt * cfg::bk, m0);
        tma_load_2d(sb + s * cfg::b_stage_bytes, &map_b, bar, kt * cfg::bk, n0);
      }
    }
    return;
  }

  asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
  const int cw = wg - 1;  // consumer 0 or 1: tile rows 64 cw .. 64 cw + 63
  float acc[128];
#pragma unroll
  for (int i = 0; i < 128; ++i) acc[i] = 0.0f;
  // Tile kt's wgmmas stay in flight while tile kt + 1's are issued; the stage of tile kt - 1 is
  // released once wait_group 1 says its wgmmas (all but the newest group) have completed.
  for (int kt = 0; kt < ktiles; ++kt) {
    const int s = kt % cfg::stages;
    mbar_wait(full + 8 * s, (kt / cfg::stages) & 1);
    const std::uint32_t a_tile = sa + s * cfg::a_stage_bytes + cw * 64 * 128;  // this warpgroup's 64 rows
    const std::uint32_t b_tile = sb + s * cfg::b_stage_bytes;
    wgmma_fence();
#pragma unroll
    for (int j = 0; j < cfg::bk / 16; ++j)  // k16 step j starts 32 bytes further into the 128-byte rows
      wgmma_m64n256k16<T>(acc, wgmma_desc(a_tile + 32 * j), wgmma_desc(b_tile + 32 * j), 1);
    wgmma_commit();
    wgmma_wait<1>();
    if (kt > 0 && tid % 128 == 0) mbar_arrive(empty + 8 * ((kt - 1) % cfg::stages));
  }
  wgmma_wait<0>();
  pin_accumulators(acc);

  const int warp = (tid / 32) & 3, lane = tid & 31;
  const int row = m0 + cw * 64 + warp * 16 + (lane >> 2);
#pragma unroll
  for (int j = 0; j < cfg::bn / 8; ++j) {
    const int col = n0 + 8 * j + 2 * (lane & 3);
    store_pair(p, row, col, acc[4 * j], acc[4 * j + 1]);
    store_pair(p, row + 8, col, acc[4 * j + 2], acc[4 * j + 3]);
  }
#else
  (void)map_a;
  (void)map_b;
  (void)p;
  __trap();  // never launched: the host runs this kernel only where wgmma_probe_kernel reported sm_90a code
#endif
}

// ---- fallback: any leading dimension and alignment ---------------------------------------------

// 16 rows x 32 columns per block of 16 x 16 threads; each thread owns one row and one column pair,
// so silu_gate finds gate and up in the same thread. fp32 FMA over 16-wide k tiles.
template <class T, class Tout>
__global__ void __launch_bounds__(256) gemm_simple_kernel(gemm_params<T, Tout> p, bool trans_a, bool trans_b) {
  constexpr int tr = 16, tc = 32, tk = 16;
  __shared__ float as[tr][tk + 1];
  __shared__ float bs[tk][tc + 1];
  const int tx = static_cast<int>(threadIdx.x) % 16, ty = static_cast<int>(threadIdx.x) / 16;
  const int tiles_m = (p.m + tr - 1) / tr, tiles_n = (p.n + tc - 1) / tc;
  int tm, tn;
  tile_coords(static_cast<int>(blockIdx.x), tiles_m, tiles_n, tm, tn);
  const int row = tm * tr + ty, col = tn * tc + 2 * tx;
  float acc0 = 0.0f, acc1 = 0.0f;
  for (int k0 = 0; k0 < p.k; k0 += tk) {
    {
      const int m = tm * tr + ty, k = k0 + tx;
      float v = 0.0f;
      if (m < p.m && k < p.k)
        v = to_float(trans_a ? p.a[static_cast<i64>(k) * p.lda + m] : p.a[static_cast<i64>(m) * p.lda + k]);
      as[ty][tx] = v;
    }
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int k = k0 + ty, n = tn * tc + 2 * tx + j;
      float v = 0.0f;
      if (k < p.k && n < p.n)
        v = to_float(trans_b ? p.b[static_cast<i64>(n) * p.ldb + k] : p.b[static_cast<i64>(k) * p.ldb + n]);
      bs[ty][2 * tx + j] = v;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < tk; ++kk) {
      acc0 = fmaf(as[ty][kk], bs[kk][2 * tx], acc0);
      acc1 = fmaf(as[ty][kk], bs[kk][2 * tx + 1], acc1);
    }
    __syncthreads();
  }
  store_pair(p, row, col, acc0, acc1);
}

// ---- elementwise epilogues after cuBLASLt ------------------------------------------------------

enum class post_op { add_bias, bias_gelu, add_residual };

template <class T, class Tout>
__global__ void __launch_bounds__(256)
    post_epilogue_kernel(Tout* d, i64 ldd, const T* bias, const Tout* residual, i64 m, i64 n, post_op op) {
  const i64 total = m * n;
  for (i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<i64>(gridDim.x) * blockDim.x) {
    const i64 r = i / n, c = i % n;
    const i64 at = r * ldd + c;
    float x = to_float(d[at]);
    if (op == post_op::add_bias)
      x += to_float(bias[c]);
    else if (op == post_op::bias_gelu)
      x = gelu_tanh(x + to_float(bias[c]));
    else
      x += to_float(residual[at]);
    d[at] = from_float<Tout>(x);
  }
}

// d[r, j] = silu(s[r, 2j]) * s[r, 2j + 1] from the fp32 scratch product s[m, 2 * n_half].
template <class Tout>
__global__ void __launch_bounds__(256) silu_gate_kernel(Tout* d, i64 ldd, const float* s, i64 m, i64 n_half) {
  const i64 total = m * n_half;
  for (i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<i64>(gridDim.x) * blockDim.x) {
    const i64 r = i / n_half, j = i % n_half;
    const float2 gu = *reinterpret_cast<const float2*>(s + r * 2 * n_half + 2 * j);
    d[r * ldd + j] = from_float<Tout>(silu(gu.x) * gu.y);
  }
}

inline int elementwise_blocks(i64 total) { return static_cast<int>(std::clamp<i64>((total + 255) / 256, 1, 65535)); }

// ---- host side -----------------------------------------------------------------------------------

inline int current_device() {
  int dev = 0;
  TRAINPERF_CUDA_CHECK(cudaGetDevice(&dev));
  return dev;
}

inline int compute_capability_major(int dev) {
  int major = 0;
  TRAINPERF_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  return major;
}

inline bool aligned(const void* p, std::size_t bytes) { return reinterpret_cast<std::uintptr_t>(p) % bytes == 0; }

// Largest power of two (<= 256) dividing the address: cuBLASLt's alignment preference.
inline std::uint32_t alignment_of(const void* p) {
  const auto v = reinterpret_cast<std::uintptr_t>(p);
  std::uint32_t a = 256;
  while (a > 1 && v % a != 0) a /= 2;
  return a;
}

template <class T, class Tout>
void validate(bool trans_a, bool trans_b, i64 m, i64 n, i64 k, const T* a, i64 lda, const T* b, i64 ldb, float beta,
              Tout* d, i64 ldd, epilogue ep, const T* bias, const Tout* residual) {
  const auto s = [](i64 v) { return std::to_string(v); };
  const std::string fn = "trainperf::cuda::gemm: ";
  // Tile arithmetic runs in int (row + 8, m + tile - 1): keep a tile's worth of headroom.
  constexpr i64 int_max = std::numeric_limits<int>::max() - 256;
  require(m > 0, fn + "m = " + s(m) + " must be positive; pass the number of rows of op(A) and of D");
  require(n > 0, fn + "n = " + s(n) + " must be positive; pass the number of columns of op(B) and of D");
  require(k > 0, fn + "k = " + s(k) + " must be positive; pass the shared dimension of op(A) and op(B)");
  require(m <= int_max && n <= int_max && k <= int_max, fn + "m, n, k = " + s(m) + ", " + s(n) + ", " + s(k) +
                                                            " must each be at most " + s(int_max) +
                                                            "; split the product into smaller GEMMs");
  require(a != nullptr, fn + "A is null; pass a device pointer to op(A) [" + s(m) + ", " + s(k) + "]");
  require(b != nullptr, fn + "B is null; pass a device pointer to op(B) [" + s(k) + ", " + s(n) + "]");
  require(d != nullptr, fn + "D is null; pass a device pointer to the output");
  const i64 a_min = trans_a ? m : k;
  require(lda >= a_min, fn + "lda = " + s(lda) + " is smaller than " + (trans_a ? "m" : "k") + " = " + s(a_min) +
                            " for A stored as " + (trans_a ? "A[K, M] (trans_a = true)" : "A[M, K] (trans_a = false)") +
                            "; pass lda >= " + s(a_min));
  const i64 b_min = trans_b ? k : n;
  require(ldb >= b_min, fn + "ldb = " + s(ldb) + " is smaller than " + (trans_b ? "k" : "n") + " = " + s(b_min) +
                            " for B stored as " + (trans_b ? "B[N, K] (trans_b = true)" : "B[K, N] (trans_b = false)") +
                            "; pass ldb >= " + s(b_min));
  const i64 d_cols = ep == epilogue::silu_gate ? n / 2 : n;
  require(ldd >= d_cols, fn + "ldd = " + s(ldd) + " is smaller than the " + s(d_cols) + " columns of D" +
                             (ep == epilogue::silu_gate ? " (n / 2 with epilogue silu_gate)" : "") +
                             "; pass ldd >= " + s(d_cols));
  if (ep == epilogue::bias || ep == epilogue::bias_gelu)
    require(bias != nullptr, fn + "bias is null but epilogue " + to_string(ep) +
                                 " reads bias[n]; pass a device pointer to " + s(n) + " values or use epilogue::none");
  if (ep == epilogue::residual)
    require(residual != nullptr, fn + "residual is null but epilogue residual reads residual[m, n] (with ldd); pass "
                                      "a device pointer (it may be D itself) or use epilogue::none");
  if (ep == epilogue::silu_gate) {
    require(n % 2 == 0, fn + "n = " + s(n) +
                            " is odd but epilogue silu_gate pairs columns 2j (gate) and 2j + 1 (up); interleave the "
                            "gate and up weight rows so that n is even");
    require(beta == 0.0f, fn + "beta = " + std::to_string(beta) +
                              " with epilogue silu_gate: D has n / 2 columns and cannot be accumulated into; pass "
                              "beta = 0");
  }
  const int major = compute_capability_major(current_device());
  require(major >= 8, fn + "the current device has compute capability " + s(major) +
                          ".x; bf16/fp16 tensor-core GEMMs need 8.0 or newer; select an sm_80+ device");
}

// True where the current device runs sm_90a code of this translation unit (an H100 / H200 with the
// default CMAKE_CUDA_ARCHITECTURES "80;90a"). Asked once per device with a one-thread probe kernel
// (a synchronous cudaMalloc / cudaMemcpy: make the first call outside any CUDA graph capture).
inline bool wgmma_available(int dev) {
  static std::atomic<int> known[64] = {};  // 0 not asked yet, 1 no, 2 yes
  if (dev < 0 || dev >= 64) return false;
  const int k = known[dev].load(std::memory_order_relaxed);
  if (k != 0) return k == 2;
  int major = 0, minor = 0;
  TRAINPERF_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  TRAINPERF_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  int yes = 0;
  if (major == 9 && minor == 0) {  // sm_90a code runs on compute capability 9.0 only
    int* flag = nullptr;
    TRAINPERF_CUDA_CHECK(cudaMalloc(&flag, sizeof(int)));
    wgmma_probe_kernel<<<1, 1>>>(flag);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaMemcpy(&yes, flag, sizeof(int), cudaMemcpyDeviceToHost);
    cudaFree(flag);
    TRAINPERF_CUDA_CHECK(e);
  }
  known[dev].store(yes == 1 ? 2 : 1, std::memory_order_relaxed);
  return yes == 1;
}

inline gemm_path trainperf_path(backend be, bool trans_a, bool trans_b, const void* a, i64 lda, const void* b,
                                i64 ldb) {
  // Every 16-byte chunk the cp.async loaders read starts at a row start plus a multiple of 8
  // elements, so it is 16-byte aligned exactly when these hold; ragged m, n, k are zero-filled.
  const bool fast = lda % 8 == 0 && ldb % 8 == 0 && aligned(a, 16) && aligned(b, 16);
  if (!fast) return gemm_path::simple;
  if (be == backend::trainperf && !trans_a && trans_b && wgmma_available(current_device())) return gemm_path::wgmma;
  return gemm_path::mma_sync;
}

// One CTA of cfg::threads per cfg::bm x cfg::bn output tile, with smem bytes of dynamic shared
// memory. More than 48 KiB needs an opt-in, per kernel and device (CUDA C++ Programming Guide,
// "Shared Memory"). It is set on every launch: a host-side call without device work, and a
// remembered setting would be wrong after cudaDeviceReset(). `before` are the kernel's arguments
// ahead of p.
template <class cfg, auto Kernel, class T, class Tout, class... Before>
void launch_tiles(int smem, const gemm_params<T, Tout>& p, cudaStream_t stream, const Before&... before) {
  TRAINPERF_CUDA_CHECK(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const i64 tiles = static_cast<i64>((p.m + cfg::bm - 1) / cfg::bm) * ((p.n + cfg::bn - 1) / cfg::bn);
  require(tiles <= std::numeric_limits<int>::max(),
          "trainperf::cuda::gemm: " + std::to_string(tiles) + " output tiles exceed the grid limit; split the GEMM");
  Kernel<<<static_cast<unsigned>(tiles), cfg::threads, smem, stream>>>(before..., p);
  TRAINPERF_CUDA_CHECK_LAUNCH();
}

template <class T, class Tout, bool AK, bool BKc>
void launch_mma(const gemm_params<T, Tout>& p, cudaStream_t stream) {
  launch_tiles<mma_config, gemm_mma_kernel<T, Tout, AK, BKc>>(mma_smem_bytes<T, AK, BKc>(), p, stream);
}

// The driver's cuTensorMapEncodeTiled, found through the runtime (no link against libcuda).
inline PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult found{};
#if CUDART_VERSION >= 12050
    const cudaError_t e =
        cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &found);
#else
    const cudaError_t e = cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &f, cudaEnableDefault, &found);
#endif
    require(e == cudaSuccess && found == cudaDriverEntryPointSuccess && f != nullptr,
            "trainperf::cuda::gemm: the CUDA driver has no cuTensorMapEncodeTiled (needs a CUDA 12 driver or newer); "
            "update the driver or use backend::trainperf_mma_sync");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

// A 2-D tensor map over rows x k (k contiguous, ld elements between rows) copied in boxes of
// box_rows x 64 k values with the 128-byte swizzle; out-of-range elements read as zeros.
template <class T>
CUtensorMap k_major_tensor_map(const T* base, i64 rows, i64 k, i64 ld, int box_rows) {
  CUtensorMap map;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(k), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(ld) * sizeof(T)};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(wgmma_config::bk), static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  const CUresult r = tensor_map_encoder()(
      &map, std::is_same_v<T, __nv_bfloat16> ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2,
      const_cast<T*>(base), dims, strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
      CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  require(r == CUDA_SUCCESS, "trainperf::cuda::gemm: cuTensorMapEncodeTiled failed (CUresult " + std::to_string(r) +
                                 ") for a " + std::to_string(rows) + " x " + std::to_string(k) + " operand with ld " +
                                 std::to_string(ld) + "; use backend::trainperf_mma_sync for it");
  return map;
}

template <class T, class Tout>
void launch_wgmma(const gemm_params<T, Tout>& p, cudaStream_t stream) {
  using cfg = wgmma_config;
  launch_tiles<cfg, gemm_wgmma_kernel<T, Tout>>(cfg::smem_bytes, p, stream,
                                                k_major_tensor_map(p.a, p.m, p.k, p.lda, cfg::bm),
                                                k_major_tensor_map(p.b, p.n, p.k, p.ldb, cfg::bn));
}

template <class T, class Tout>
void gemm_trainperf(backend be, bool trans_a, bool trans_b, const gemm_params<T, Tout>& p, cudaStream_t stream) {
  const gemm_path path = trainperf_path(be, trans_a, trans_b, p.a, p.lda, p.b, p.ldb);
  if (path == gemm_path::wgmma) {
    launch_wgmma(p, stream);
    return;
  }
  if (path == gemm_path::mma_sync) {
    // AK: A is k-contiguous (A[M, K]); BKc: B is k-contiguous (B[N, K]).
    if (!trans_a && trans_b)
      launch_mma<T, Tout, true, true>(p, stream);
    else if (!trans_a && !trans_b)
      launch_mma<T, Tout, true, false>(p, stream);
    else if (trans_a && trans_b)
      launch_mma<T, Tout, false, true>(p, stream);
    else
      launch_mma<T, Tout, false, false>(p, stream);
    return;
  }
  const i64 tiles = static_cast<i64>((p.m + 15) / 16) * ((p.n + 31) / 32);
  require(tiles <= std::numeric_limits<int>::max(),
          "trainperf::cuda::gemm: " + std::to_string(tiles) + " output tiles exceed the grid limit; split the GEMM");
  gemm_simple_kernel<T, Tout><<<static_cast<unsigned>(tiles), 256, 0, stream>>>(p, trans_a, trans_b);
  TRAINPERF_CUDA_CHECK_LAUNCH();
}

// ---- cuBLASLt ----------------------------------------------------------------------------------

template <class T>
constexpr cudaDataType_t cuda_type() {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return CUDA_R_16BF;
  else if constexpr (std::is_same_v<T, __half>)
    return CUDA_R_16F;
  else
    return CUDA_R_32F;
}

// A matmul descriptor, its four layouts and the algorithm the heuristic picked, built once per
// distinct problem and reused (the heuristic query costs far more than a small GEMM).
struct lt_plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  lt_plan() = default;
  lt_plan(const lt_plan&) = delete;
  lt_plan& operator=(const lt_plan&) = delete;
  ~lt_plan() {
    // Destruction may run at exit after the runtime is gone: errors are ignored on purpose.
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

// (trans_a, trans_b, m, n, k, lda, ldb, ldc, ldd, input type, C type, D type, cuBLASLt epilogue,
//  alignments of A, B, C, D, bias)
using lt_key = std::tuple<bool, bool, i64, i64, i64, i64, i64, i64, i64, int, int, int, int, std::uint32_t,
                          std::uint32_t, std::uint32_t, std::uint32_t, std::uint32_t>;

}  // namespace detail

// The cuBLASLt handle, its 32 MiB workspace (the cuBLAS documentation recommends 32 MiB on Hopper,
// "cublasSetWorkspace"), an fp32 scratch buffer for the SiLU-gate product and the cached plans.
// One per thread and device (default_cublaslt_context()); calls that share one must not run
// concurrently on different streams, since they share the workspace.
class cublaslt_context {
 public:
  explicit cublaslt_context(int device) : device_(device) {
    TRAINPERF_CUDA_CHECK(cublasLtCreate(&handle_));
    TRAINPERF_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes));
  }
  cublaslt_context(const cublaslt_context&) = delete;
  cublaslt_context& operator=(const cublaslt_context&) = delete;
  ~cublaslt_context() {
    plans_.clear();
    if (scratch_) cudaFree(scratch_);  // errors ignored: may run after the runtime shut down
    if (workspace_) cudaFree(workspace_);
    if (handle_) cublasLtDestroy(handle_);
  }

  static constexpr std::size_t workspace_bytes = std::size_t{32} << 20;
  cublasLtHandle_t handle() const { return handle_; }
  void* workspace() const { return workspace_; }
  int device() const { return device_; }

  // An fp32 buffer of at least `count` floats; growing it frees the old one (cudaFree waits for
  // the device, so earlier work that used it has finished).
  float* scratch(std::size_t count) {
    if (count > scratch_count_) {
      if (scratch_) TRAINPERF_CUDA_CHECK(cudaFree(scratch_));
      scratch_ = nullptr;
      scratch_count_ = 0;
      TRAINPERF_CUDA_CHECK(cudaMalloc(&scratch_, count * sizeof(float)));
      scratch_count_ = count;
    }
    return static_cast<float*>(scratch_);
  }

  detail::lt_plan* find(const detail::lt_key& key) {
    const auto it = plans_.find(key);
    return it == plans_.end() ? nullptr : it->second.get();
  }
  detail::lt_plan* insert(const detail::lt_key& key, std::unique_ptr<detail::lt_plan> plan) {
    return plans_.emplace(key, std::move(plan)).first->second.get();
  }

 private:
  int device_;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  void* scratch_ = nullptr;
  std::size_t scratch_count_ = 0;
  std::map<detail::lt_key, std::unique_ptr<detail::lt_plan>> plans_;
};

// This thread's context for the current device, created on first use.
inline cublaslt_context& default_cublaslt_context() {
  thread_local std::map<int, std::unique_ptr<cublaslt_context>> contexts;
  const int dev = detail::current_device();
  auto& slot = contexts[dev];
  if (!slot) slot = std::make_unique<cublaslt_context>(dev);
  return *slot;
}

namespace detail {

// Runs D' = alpha * op(A) op(B) + beta * C' through cuBLASLt, where D' is [m, n] row-major with
// ldd_ and type Dt, and C' (type Dt, ld ldc) may be D' itself or another matrix.
template <class T, class Dt>
void lt_matmul(cublaslt_context& ctx, bool trans_a, bool trans_b, i64 m, i64 n, i64 k, float alpha, const T* a, i64 lda,
               const T* b, i64 ldb, float beta, const Dt* c, i64 ldc, Dt* d, i64 ldd_, cublasLtEpilogue_t lt_ep,
               const T* bias, cudaStream_t stream) {
  const lt_key key{trans_a,
                   trans_b,
                   m,
                   n,
                   k,
                   lda,
                   ldb,
                   ldc,
                   ldd_,
                   cuda_type<T>(),
                   cuda_type<Dt>(),
                   cuda_type<Dt>(),
                   static_cast<int>(lt_ep),
                   alignment_of(a),
                   alignment_of(b),
                   alignment_of(c),
                   alignment_of(d),
                   bias ? alignment_of(bias) : 256u};
  lt_plan* plan = ctx.find(key);
  if (plan == nullptr) {
    auto fresh = std::make_unique<lt_plan>();
    TRAINPERF_CUDA_CHECK(cublasLtMatmulDescCreate(&fresh->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    // Row-major X[r, c] with ld is column-major X^T[c, r] with the same ld, so the row-major
    // D[m, n] = op(A) op(B) is the column-major D^T[n, m] = op(B)^T op(A)^T: cuBLASLt's A is our
    // B and its B is our A (cuBLAS documentation, "cublasLtMatmul"; column-major storage).
    const cublasOperation_t op_lt_a = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_lt_b = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    TRAINPERF_CUDA_CHECK(
        cublasLtMatmulDescSetAttribute(fresh->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_lt_a, sizeof(op_lt_a)));
    TRAINPERF_CUDA_CHECK(
        cublasLtMatmulDescSetAttribute(fresh->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_lt_b, sizeof(op_lt_b)));
    TRAINPERF_CUDA_CHECK(
        cublasLtMatmulDescSetAttribute(fresh->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &lt_ep, sizeof(lt_ep)));
    if (bias != nullptr)  // the heuristic reads the pointer's alignment
      TRAINPERF_CUDA_CHECK(
          cublasLtMatmulDescSetAttribute(fresh->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    // Stored column-major shapes: our B[K, N] is [n x k] (ld ldb), B[N, K] is [k x n]; our
    // A[M, K] is [k x m] (ld lda), A[K, M] is [m x k]; D and C are [n x m].
    TRAINPERF_CUDA_CHECK(cublasLtMatrixLayoutCreate(&fresh->a, cuda_type<T>(),
                                                    static_cast<std::uint64_t>(trans_b ? k : n),
                                                    static_cast<std::uint64_t>(trans_b ? n : k), ldb));
    TRAINPERF_CUDA_CHECK(cublasLtMatrixLayoutCreate(&fresh->b, cuda_type<T>(),
                                                    static_cast<std::uint64_t>(trans_a ? m : k),
                                                    static_cast<std::uint64_t>(trans_a ? k : m), lda));
    TRAINPERF_CUDA_CHECK(cublasLtMatrixLayoutCreate(&fresh->c, cuda_type<Dt>(), static_cast<std::uint64_t>(n),
                                                    static_cast<std::uint64_t>(m), ldc));
    TRAINPERF_CUDA_CHECK(cublasLtMatrixLayoutCreate(&fresh->d, cuda_type<Dt>(), static_cast<std::uint64_t>(n),
                                                    static_cast<std::uint64_t>(m), ldd_));
    cublasLtMatmulPreference_t pref = nullptr;
    TRAINPERF_CUDA_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const std::unique_ptr<std::remove_pointer_t<cublasLtMatmulPreference_t>, decltype(&cublasLtMatmulPreferenceDestroy)>
        pref_guard(pref, &cublasLtMatmulPreferenceDestroy);
    const std::uint64_t ws = cublaslt_context::workspace_bytes;
    TRAINPERF_CUDA_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    const std::uint32_t align[4] = {alignment_of(b), alignment_of(a), alignment_of(c), alignment_of(d)};
    const cublasLtMatmulPreferenceAttributes_t which[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; ++i)
      TRAINPERF_CUDA_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, which[i], &align[i], sizeof(align[i])));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    TRAINPERF_CUDA_CHECK(cublasLtMatmulAlgoGetHeuristic(ctx.handle(), fresh->desc, fresh->a, fresh->b, fresh->c,
                                                        fresh->d, pref, 1, &result, &found));
    require(found > 0, "trainperf::cuda::gemm (cublaslt): cuBLASLt has no algorithm for m = " + std::to_string(m) +
                           ", n = " + std::to_string(n) + ", k = " + std::to_string(k) + " with " +
                           ptx::type_name<T>() + " inputs and " + ptx::type_name<Dt>() +
                           " output at these alignments; use backend::trainperf or align the buffers to 16 bytes");
    fresh->algo = result.algo;
    plan = ctx.insert(key, std::move(fresh));
  }
  if (bias != nullptr)
    TRAINPERF_CUDA_CHECK(
        cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  TRAINPERF_CUDA_CHECK(cublasLtMatmul(ctx.handle(), plan->desc, &alpha, b, plan->a, a, plan->b, &beta, c, plan->c, d,
                                      plan->d, &plan->algo, ctx.workspace(), cublaslt_context::workspace_bytes,
                                      stream));
}

template <class T, class Tout>
void gemm_cublaslt(bool trans_a, bool trans_b, i64 m, i64 n, i64 k, float alpha, const T* a, i64 lda, const T* b,
                   i64 ldb, float beta, Tout* d, i64 ldd, epilogue ep, const T* bias, const Tout* residual,
                   cudaStream_t stream) {
  cublaslt_context& ctx = default_cublaslt_context();
  const auto post = [&](post_op op) {
    post_epilogue_kernel<T, Tout><<<elementwise_blocks(m * n), 256, 0, stream>>>(d, ldd, bias, residual, m, n, op);
    TRAINPERF_CUDA_CHECK_LAUNCH();
  };
  // cuBLASLt's bias has D's type (cublasLt.h, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE), so the fused
  // bias epilogues apply only when Tout == T.
  constexpr bool fused_bias = std::is_same_v<T, Tout>;
  switch (ep) {
    case epilogue::none:
      lt_matmul<T, Tout>(ctx, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, d, ldd, d, ldd,
                         CUBLASLT_EPILOGUE_DEFAULT, nullptr, stream);
      return;
    case epilogue::bias:
    case epilogue::bias_gelu:
      if constexpr (fused_bias) {
        lt_matmul<T, Tout>(ctx, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, d, ldd, d, ldd,
                           ep == epilogue::bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_GELU_BIAS, bias, stream);
      } else {
        lt_matmul<T, Tout>(ctx, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, d, ldd, d, ldd,
                           CUBLASLT_EPILOGUE_DEFAULT, nullptr, stream);
        post(ep == epilogue::bias ? post_op::add_bias : post_op::bias_gelu);
      }
      return;
    case epilogue::residual:
      if (beta == 0.0f) {  // D = alpha AB + 1 * residual: residual is cuBLASLt's C
        lt_matmul<T, Tout>(ctx, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, 1.0f, residual, ldd, d, ldd,
                           CUBLASLT_EPILOGUE_DEFAULT, nullptr, stream);
      } else if (residual == d) {  // D = alpha AB + beta D + D
        lt_matmul<T, Tout>(ctx, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta + 1.0f, d, ldd, d, ldd,
                           CUBLASLT_EPILOGUE_DEFAULT, nullptr, stream);
      } else {
        lt_matmul<T, Tout>(ctx, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, d, ldd, d, ldd,
                           CUBLASLT_EPILOGUE_DEFAULT, nullptr, stream);
        post(post_op::add_residual);
      }
      return;
    case epilogue::silu_gate: {
      // The full [m, n] product goes to fp32 scratch (beta is 0), then one kernel gates it.
      float* s = ctx.scratch(static_cast<std::size_t>(m) * static_cast<std::size_t>(n));
      lt_matmul<T, float>(ctx, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, 0.0f, s, n, s, n,
                          CUBLASLT_EPILOGUE_DEFAULT, nullptr, stream);
      silu_gate_kernel<Tout><<<elementwise_blocks(m * (n / 2)), 256, 0, stream>>>(d, ldd, s, m, n / 2);
      TRAINPERF_CUDA_CHECK_LAUNCH();
      return;
    }
  }
}

}  // namespace detail

// Which kernel gemm(be, trans_a, trans_b, ..., a, lda, b, ldb, ...) runs on the current device
// (see the file comment).
template <class T>
gemm_path gemm_path_for(backend be, bool trans_a, bool trans_b, const T* a, std::int64_t lda, const T* b,
                        std::int64_t ldb) {
  static_assert(detail::is_gemm_input_v<T>, "trainperf::cuda::gemm: T must be __nv_bfloat16 or __half");
  if (be == backend::cublaslt) return gemm_path::cublaslt;
  return detail::trainperf_path(be, trans_a, trans_b, a, lda, b, ldb);
}

// D = epilogue(alpha * op(A) op(B) + beta * D) on `stream`; see the file comment for the exact
// semantics of every argument. Throws cuda_error on invalid arguments (before any launch) and on
// CUDA / cuBLASLt failures.
template <class T, class Tout>
void gemm(backend be, bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          const T* a, std::int64_t lda, const T* b, std::int64_t ldb, float beta, Tout* d, std::int64_t ldd,
          epilogue ep = epilogue::none, const T* bias = nullptr, const Tout* residual = nullptr,
          cudaStream_t stream = nullptr) {
  static_assert(detail::is_gemm_input_v<T>, "trainperf::cuda::gemm: T must be __nv_bfloat16 or __half");
  static_assert(detail::is_gemm_output_v<T, Tout>, "trainperf::cuda::gemm: Tout must be T or float");
  detail::validate(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, d, ldd, ep, bias, residual);
  if (be == backend::cublaslt) {
    detail::gemm_cublaslt(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, d, ldd, ep, bias, residual, stream);
    return;
  }
  detail::gemm_params<T, Tout> p{};
  p.a = a;
  p.b = b;
  p.d = d;
  p.bias = bias;
  p.residual = residual;
  p.lda = lda;
  p.ldb = ldb;
  p.ldd = ldd;
  p.m = static_cast<int>(m);
  p.n = static_cast<int>(n);
  p.k = static_cast<int>(k);
  p.alpha = alpha;
  p.beta = beta;
  p.ep = ep;
  p.pair_store = ldd % 2 == 0 && detail::aligned(d, 2 * sizeof(Tout));
  detail::gemm_trainperf(be, trans_a, trans_b, p, stream);
}

}  // namespace trainperf::cuda
