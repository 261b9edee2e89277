// trainperf — fp32 GEMM for the CPU kernels: C[m, n] (+)= A[m, k] · B[k, n] over the OpenMP
// threads, any strides (so A or B may be a transposed view), in the Goto/BLIS structure (Goto & van de Geijn
// 2008, "Anatomy of high-performance matrix multiplication"; Van Zee & van de Geijn 2015, BLIS):
// B is packed in kc x nr micro-panels, A in mr x kc micro-panels, and a register-blocked
// micro-kernel of mr x nr accumulators runs over them. Written with GCC/Clang vector extensions,
// so the same source compiles to AVX-512 (12 x 32 block: 24 accumulator registers of 32), AVX
// (6 x 16) or SSE (6 x 8) for whatever -march the build uses (TRAINPERF_NATIVE).
//
// Deterministic: every element of C is the sum over k in increasing order, blocked in kc-long
// runs added to C in order, whatever the shape of the call or the position of the element
// (edge blocks run the same micro-kernel on zero-padded panels).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

namespace trainperf::kernels::cpu::gemm {

using i64 = std::int64_t;

#if defined(__AVX512F__)
inline constexpr int vector_floats = 16, mr = 12;  // 12 rows x 2 vectors: 24 of the 32 zmm registers
#elif defined(__AVX__)
inline constexpr int vector_floats = 8, mr = 6;  // 6 rows x 2 vectors: 12 of the 16 ymm registers
#else
inline constexpr int vector_floats = 4, mr = 6;  // SSE: 12 of the 16 xmm registers
#endif
inline constexpr int nr = 2 * vector_floats;
// kc x nr floats of B (32 KiB with AVX-512) are reused by every A micro-panel of a work item.
inline constexpr i64 kc = 256;

namespace detail {
using vec = float __attribute__((vector_size(vector_floats * sizeof(float))));

inline vec load(const float* p) {
  vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, vec v) { std::memcpy(p, &v, sizeof v); }

// acc[mr x nr] = sum over p < k of a[p][0..mr) x b[p][0..nr); a, b packed (see pack_a/pack_b).
// Then c[i][j] = acc (overwrite) or c[i][j] += acc, for i < rows, j < cols.
inline void micro_kernel(const float* a, const float* b, i64 k, float* c, i64 ldc, i64 rows, i64 cols,
                         bool overwrite) {
  vec acc[mr][2] = {};
  for (i64 p = 0; p < k; ++p) {
    const vec b0 = load(b + p * nr), b1 = load(b + p * nr + vector_floats);
#pragma GCC unroll 16
    for (int i = 0; i < mr; ++i) {
      const float ai = a[p * mr + i];
      acc[i][0] += ai * b0;
      acc[i][1] += ai * b1;
    }
  }
  if (rows == mr && cols == nr) {
    for (int i = 0; i < mr; ++i) {
      float* ci = c + i * ldc;
      if (overwrite) {
        store(ci, acc[i][0]);
        store(ci + vector_floats, acc[i][1]);
      } else {
        store(ci, load(ci) + acc[i][0]);
        store(ci + vector_floats, load(ci + vector_floats) + acc[i][1]);
      }
    }
    return;
  }
  alignas(64) float tile[mr][nr];
  for (int i = 0; i < mr; ++i) {
    store(tile[i], acc[i][0]);
    store(tile[i] + vector_floats, acc[i][1]);
  }
  for (i64 i = 0; i < rows; ++i)
    for (i64 j = 0; j < cols; ++j) c[i * ldc + j] = overwrite ? tile[i][j] : c[i * ldc + j] + tile[i][j];
}

// A[m, k] block (element (i, p) at a[i * rs + p * cs]) into mr-row micro-panels: panel r holds
// rows [r mr, r mr + mr) as k columns of mr values, zero past m. The loops run along whichever
// stride is 1, so the source is read in order.
inline void pack_a(float* dst, const float* a, i64 rs, i64 cs, i64 m, i64 k) {
  for (i64 r0 = 0; r0 < m; r0 += mr) {
    const i64 rows = std::min<i64>(mr, m - r0);
    float* d = dst + (r0 / mr) * mr * k;
    if (rows < mr) std::fill_n(d, mr * k, 0.0f);
    if (cs == 1) {
      for (i64 i = 0; i < rows; ++i)
        for (i64 p = 0; p < k; ++p) d[p * mr + i] = a[(r0 + i) * rs + p];
    } else {
      for (i64 p = 0; p < k; ++p)
        for (i64 i = 0; i < rows; ++i) d[p * mr + i] = a[(r0 + i) * rs + p * cs];
    }
  }
}
// B[k, n] block (element (p, j) at b[p * rs + j * cs]) into nr-column micro-panels, zero past n.
inline void pack_b(float* dst, const float* b, i64 rs, i64 cs, i64 k, i64 n) {
  for (i64 c0 = 0; c0 < n; c0 += nr) {
    const i64 cols = std::min<i64>(nr, n - c0);
    float* d = dst + (c0 / nr) * nr * k;
    if (cols < nr) std::fill_n(d, nr * k, 0.0f);
    if (cs == 1) {
      for (i64 p = 0; p < k; ++p) std::copy_n(b + p * rs + c0, cols, d + p * nr);
    } else {
      for (i64 j = 0; j < cols; ++j)
        for (i64 p = 0; p < k; ++p) d[p * nr + j] = b[p * rs + (c0 + j) * cs];
    }
  }
}

struct aligned_free {
  void operator()(float* p) const { ::operator delete[](p, std::align_val_t{64}); }
};
using buffer = std::unique_ptr<float[], aligned_free>;
inline buffer allocate(i64 n) {
  return buffer(static_cast<float*>(::operator new[](static_cast<std::size_t>(n) * sizeof(float),
                                                     std::align_val_t{64})));
}
}  // namespace detail

// A strided view: element (i, j) at data[i * rs + j * cs].
struct view {
  const float* data;
  i64 rs, cs;
};

// C[m, n] = A · B (accumulate = false) or C += A · B, C row-major with leading dimension ldc, on
// every OpenMP thread (called inside a parallel region, on the calling thread alone: OpenMP does
// not nest by default).
// Blocks of mc x kc of A and kc x nc of B are packed once, by all threads together, into shared
// buffers (an element packed is then used by every row or column of the block, so packing is
// a small part of the work); the block product is split into work items of a few micro-panels
// each, taken dynamically. Which thread computes an element never changes its value.
inline constexpr i64 mc = 1024, nc = 1024;
inline constexpr i64 item_rows = 4 * mr, item_cols = 8 * nr;  // one work item of the block product

inline void multiply(float* c, i64 ldc, view a, view b, i64 m, i64 n, i64 k, bool accumulate) {
  if (k == 0) {
    if (!accumulate)
      for (i64 i = 0; i < m; ++i) std::fill_n(c + i * ldc, n, 0.0f);
    return;
  }
  const i64 mb = std::min(m, mc), nb = std::min(n, nc), kb = std::min(k, kc);
  const detail::buffer pa = detail::allocate((mb + mr - 1) / mr * mr * kb),
                       pb = detail::allocate((nb + nr - 1) / nr * nr * kb);
#pragma omp parallel
  for (i64 j0 = 0; j0 < n; j0 += nc)
    for (i64 i0 = 0; i0 < m; i0 += mc)
      for (i64 p0 = 0; p0 < k; p0 += kc) {
        const i64 nn = std::min(nc, n - j0), mm = std::min(mc, m - i0), kk = std::min(kc, k - p0);
        const i64 a_panels = (mm + mr - 1) / mr, b_panels = (nn + nr - 1) / nr;
#pragma omp for schedule(static)
        for (i64 q = 0; q < a_panels + b_panels; ++q) {
          if (q < a_panels) {
            const i64 r = q * mr;
            detail::pack_a(pa.get() + q * mr * kk, a.data + (i0 + r) * a.rs + p0 * a.cs, a.rs, a.cs,
                           std::min<i64>(mr, mm - r), kk);
          } else {
            const i64 col = (q - a_panels) * nr;
            detail::pack_b(pb.get() + (q - a_panels) * nr * kk, b.data + p0 * b.rs + (j0 + col) * b.cs, b.rs, b.cs,
                           kk, std::min<i64>(nr, nn - col));
          }
        }  // (barrier: the panels are complete)
        const bool overwrite = p0 == 0 && !accumulate;
        const i64 item_r = (mm + item_rows - 1) / item_rows, item_c = (nn + item_cols - 1) / item_cols;
#pragma omp for schedule(dynamic)
        for (i64 it = 0; it < item_r * item_c; ++it) {
          const i64 r_begin = it / item_c * item_rows, c_begin = it % item_c * item_cols;
          for (i64 cc = c_begin; cc < std::min(nn, c_begin + item_cols); cc += nr)
            for (i64 rr = r_begin; rr < std::min(mm, r_begin + item_rows); rr += mr)
              detail::micro_kernel(pa.get() + rr / mr * mr * kk, pb.get() + cc / nr * nr * kk, kk,
                                   c + (i0 + rr) * ldc + j0 + cc, ldc, std::min<i64>(mr, mm - rr),
                                   std::min<i64>(nr, nn - cc), overwrite);
        }  // (barrier: the buffers may be packed again)
      }
}
}  // namespace trainperf::kernels::cpu::gemm
