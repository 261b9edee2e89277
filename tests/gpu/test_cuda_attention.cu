// trainperf — the CUDA attention kernels (kernels/cuda/attention.cuh) against the CPU kernels
// (kernels/cpu/kernels.hpp). Inputs are drawn fresh for every shape, rounded to bf16 / fp16,
// and the CPU kernels run in fp32 on the rounded values. Every output is poisoned with NaN
// before each launch, so an element the GPU never wrote fails the comparison. The seed is
// fresh per run and printed with any failure; TRAINPERF_TEST_SEED=<n> replays one.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <trainperf/kernels/cpu/kernels.hpp>
#include <trainperf/kernels/cuda/attention.cuh>

#include "gpu_test.cuh"

namespace {

using namespace trainperf_gpu_test;
namespace tc = trainperf::cuda;
namespace cpu = trainperf::kernels::cpu;

// Tolerances, |gpu - ref| <= atol + rtol * |ref| per element (llm.c style):
// - out, dq, dk, dv: the GPU rounds P (and dS) to bf16 / fp16 before the P V, dS K and dS^T Q
//   products (relative error 2^-9 for bf16, 2^-12 for fp16 per term) and rounds the result to
//   bf16 / fp16 (another 2^-9); with N(0, 1) inputs the outputs and gradients are O(1), so the
//   expected error is a few 1e-3. atol = rtol = 2e-2 leaves margin for sums of hundreds of
//   rounded terms while any indexing, masking or race error (O(1)) still fails.
// - lse: fp32 scores from exact bf16 x bf16 products and an fp32 online softmax on both sides;
//   only summation order and ex2.approx (2^-22 relative) differ, so 1e-3 is generous.
constexpr tolerance tol_values{2e-2, 2e-2};
constexpr tolerance tol_lse{1e-3, 1e-3};

struct comparison {
  std::size_t bad = 0, nonfinite = 0, worst = 0;
  double worst_excess = 0, max_abs = 0, rel_l2 = 0;
};

comparison compare(const std::vector<float>& got, const std::vector<float>& ref, tolerance t) {
  comparison c;
  double num = 0, den = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double g = got[i], r = ref[i], err = std::fabs(g - r);
    if (!std::isfinite(g)) ++c.nonfinite;
    if (!(err <= t.atol + t.rtol * std::fabs(r))) {  // NaN fails here too
      ++c.bad;
      const double excess = std::isfinite(err) ? err - t.atol - t.rtol * std::fabs(r) : INFINITY;
      if (c.bad == 1 || excess > c.worst_excess) c.worst_excess = excess, c.worst = i;
    }
    if (std::isfinite(err)) c.max_abs = std::max(c.max_abs, err);
    num += std::isfinite(err) ? err * err : 0.0;
    den += r * r;
  }
  c.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return c;
}

std::string describe(const char* what, const comparison& c, const std::vector<float>& got,
                     const std::vector<float>& ref) {
  std::ostringstream os;
  os << what << ": " << c.bad << " of " << ref.size() << " elements out of tolerance (" << c.nonfinite
     << " non-finite), max |err| " << c.max_abs << ", ||err||/||ref|| " << c.rel_l2;
  if (c.bad) os << "; worst at flat index " << c.worst << ": got " << got[c.worst] << ", want " << ref[c.worst];
  return os.str();
}

// Fills with N(0, 1) rounded to T; returns the rounded values as fp32 for the CPU kernels.
template <class T>
std::vector<float> random_input(std::vector<T>& h, std::size_t n, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  h.resize(n);
  std::vector<float> f(n);
  for (std::size_t i = 0; i < n; ++i) {
    h[i] = from_float<T>(dist(rng));
    f[i] = to_float(h[i]);
  }
  return f;
}

template <class T>
void check_shape(int B, int T_, int Hq, int Hkv, int D, std::mt19937& rng, cudaStream_t s) {
  INFO(type_name<T>() << " B=" << B << " T=" << T_ << " Hq=" << Hq << " Hkv=" << Hkv << " D=" << D
                      << " seed=" << test_seed());
  const std::size_t nq = static_cast<std::size_t>(B) * T_ * Hq * D, nkv = static_cast<std::size_t>(B) * T_ * Hkv * D;
  const std::size_t rows = static_cast<std::size_t>(B) * Hq * T_;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));

  std::vector<T> hq, hk, hv, hdo;
  const std::vector<float> fq = random_input(hq, nq, rng), fk = random_input(hk, nkv, rng),
                           fv = random_input(hv, nkv, rng), fdo = random_input(hdo, nq, rng);
  device_buffer<T> q(nq), k(nkv), v(nkv), dout(nq), out(nq), dq(nq), dk(nkv), dv(nkv);
  device_buffer<float> lse(rows);
  q.upload(hq);
  k.upload(hk);
  v.upload(hv);
  dout.upload(hdo);

  // ---- forward
  out.poison(s);
  lse.poison(s);
  tc::attention_forward<T>(out.get(), lse.get(), q.get(), k.get(), v.get(), B, T_, Hq, Hkv, D, s);
  TRAINPERF_CUDA_CHECK(cudaStreamSynchronize(s));
  const std::vector<T> out_h = out.download();
  const std::vector<float> out_gpu = to_floats(out_h), lse_gpu = lse.download();

  std::vector<float> out_ref(nq), lse_ref(rows);
  cpu::attention_forward(out_ref.data(), lse_ref.data(), fq.data(), fk.data(), fv.data(), B, T_, Hq, Hkv, D, scale);
  const comparison co = compare(out_gpu, out_ref, tol_values), cl = compare(lse_gpu, lse_ref, tol_lse);
  CHECK_MESSAGE(co.bad == 0, describe("out", co, out_gpu, out_ref));
  CHECK_MESSAGE(cl.bad == 0, describe("lse", cl, lse_gpu, lse_ref));
  CHECK_MESSAGE(co.rel_l2 < 1e-2, describe("out", co, out_gpu, out_ref));

  // The forward has no atomics: a second run is bit-identical.
  out.poison(s);
  tc::attention_forward<T>(out.get(), lse.get(), q.get(), k.get(), v.get(), B, T_, Hq, Hkv, D, s);
  TRAINPERF_CUDA_CHECK(cudaStreamSynchronize(s));
  CHECK_MESSAGE(std::memcmp(out.download().data(), out_h.data(), nq * sizeof(T)) == 0,
                "attention_forward is not bit-reproducible");

  // ---- backward, as a function of (q, k, v, dout, out, lse): the CPU gets the GPU's out and
  // lse, so this checks the backward alone (the forward is checked above).
  const std::size_t ws_bytes = tc::attention_workspace_bytes(B, T_, Hq, Hkv, D);
  device_buffer<unsigned char> ws(ws_bytes);
  dq.poison(s);
  dk.poison(s);
  dv.poison(s);
  ws.poison(s);  // the backward must initialise its own scratch
  tc::attention_backward<T>(dq.get(), dk.get(), dv.get(), dout.get(), q.get(), k.get(), v.get(), out.get(), lse.get(),
                            B, T_, Hq, Hkv, D, ws.get(), ws_bytes, s);
  TRAINPERF_CUDA_CHECK(cudaStreamSynchronize(s));
  const std::vector<T> dq_h = dq.download(), dk_h = dk.download(), dv_h = dv.download();
  const std::vector<float> dq_gpu = to_floats(dq_h), dk_gpu = to_floats(dk_h), dv_gpu = to_floats(dv_h);

  std::vector<float> dq_ref(nq), dk_ref(nkv), dv_ref(nkv);
  cpu::attention_backward(dq_ref.data(), dk_ref.data(), dv_ref.data(), fdo.data(), fq.data(), fk.data(), fv.data(),
                          out_gpu.data(), lse_gpu.data(), B, T_, Hq, Hkv, D, scale);
  const comparison cq = compare(dq_gpu, dq_ref, tol_values), ck = compare(dk_gpu, dk_ref, tol_values),
                   cv = compare(dv_gpu, dv_ref, tol_values);
  CHECK_MESSAGE(cq.bad == 0, describe("dq", cq, dq_gpu, dq_ref));
  CHECK_MESSAGE(ck.bad == 0, describe("dk", ck, dk_gpu, dk_ref));
  CHECK_MESSAGE(cv.bad == 0, describe("dv", cv, dv_gpu, dv_ref));
  CHECK_MESSAGE(cq.rel_l2 < 1e-2, describe("dq", cq, dq_gpu, dq_ref));
  CHECK_MESSAGE(ck.rel_l2 < 1e-2, describe("dk", ck, dk_gpu, dk_ref));
  CHECK_MESSAGE(cv.rel_l2 < 1e-2, describe("dv", cv, dv_gpu, dv_ref));

  // dk and dv are owned by one CTA each: bit-identical on a rerun. dq uses fp32 atomics and
  // may differ in the last bits, which the comparison above already bounds.
  dk.poison(s);
  dv.poison(s);
  tc::attention_backward<T>(dq.get(), dk.get(), dv.get(), dout.get(), q.get(), k.get(), v.get(), out.get(), lse.get(),
                            B, T_, Hq, Hkv, D, ws.get(), ws_bytes, s);
  TRAINPERF_CUDA_CHECK(cudaStreamSynchronize(s));
  CHECK_MESSAGE(std::memcmp(dk.download().data(), dk_h.data(), nkv * sizeof(T)) == 0,
                "attention_backward: dk is not bit-reproducible");
  CHECK_MESSAGE(std::memcmp(dv.download().data(), dv_h.data(), nkv * sizeof(T)) == 0,
                "attention_backward: dv is not bit-reproducible");
}

struct heads {
  int q, kv;
};

template <class T>
void check_all_shapes(int D) {
  std::mt19937 rng(static_cast<std::uint32_t>(test_seed()) + static_cast<std::uint32_t>(D) +
                   (std::is_same_v<T, __half> ? 7u : 0u));
  cudaStream_t s;
  TRAINPERF_CUDA_CHECK(cudaStreamCreate(&s));
  // MHA, and GQA with groups of 4 (8 query heads on 2 KV heads) and 4 (4 on 1, MQA).
  for (const heads h : {heads{4, 4}, heads{8, 2}, heads{4, 1}})
    for (const int T_ : {1, 17, 64, 100, 257, 512})  // ragged: not multiples of the 64/128 tiles
      for (const int B : {1, 2}) check_shape<T>(B, T_, h.q, h.kv, D, rng, s);
  TRAINPERF_CUDA_CHECK(cudaStreamDestroy(s));
}

}  // namespace

TEST_CASE_TEMPLATE("attention forward and backward match the CPU kernels, head dim 64", T, __nv_bfloat16, __half) {
  check_all_shapes<T>(64);
}

TEST_CASE_TEMPLATE("attention forward and backward match the CPU kernels, head dim 128", T, __nv_bfloat16, __half) {
  check_all_shapes<T>(128);
}

TEST_CASE("attention rejects bad arguments on the host, naming the argument and the fix") {
  using bf = __nv_bfloat16;
  const int B = 1, T_ = 8, Hq = 4, Hkv = 2, D = 64;
  device_buffer<bf> q(B * T_ * Hq * D), k(B * T_ * Hkv * D), v(B * T_ * Hkv * D), out(B * T_ * Hq * D);
  device_buffer<bf> dq(B * T_ * Hq * D), dk(B * T_ * Hkv * D), dv(B * T_ * Hkv * D), dout(B * T_ * Hq * D);
  device_buffer<float> lse(B * Hq * T_);
  const std::size_t ws_bytes = tc::attention_workspace_bytes(B, T_, Hq, Hkv, D);
  device_buffer<unsigned char> ws(ws_bytes);
  auto fwd = [&](int b, int t, int hq, int hkv, int d, const bf* qp = nullptr) {
    tc::attention_forward<bf>(out.get(), lse.get(), qp ? qp : q.get(), k.get(), v.get(), b, t, hq, hkv, d, nullptr);
  };
  CHECK_THROWS_WITH_AS(fwd(B, T_, Hq, Hkv, 96), doctest::Contains("head dim D = 96"), tc::cuda_error);
  CHECK_THROWS_WITH_AS(fwd(B, T_, 6, 4, D), doctest::Contains("Hq = 6 is not a multiple of KV heads Hkv = 4"),
                       tc::cuda_error);
  CHECK_THROWS_WITH_AS(fwd(0, T_, Hq, Hkv, D), doctest::Contains("batch B = 0"), tc::cuda_error);
  CHECK_THROWS_WITH_AS(fwd(B, -3, Hq, Hkv, D), doctest::Contains("sequence length T = -3"), tc::cuda_error);
  CHECK_THROWS_WITH_AS(fwd(B, T_, Hq, 0, D), doctest::Contains("KV heads Hkv = 0"), tc::cuda_error);
  CHECK_THROWS_WITH_AS(fwd(B, T_, Hq, Hkv, D, q.get() + 1), doctest::Contains("q is not 16-byte aligned"),
                       tc::cuda_error);
  CHECK_THROWS_WITH_AS(
      tc::attention_forward<bf>(out.get(), lse.get(), nullptr, k.get(), v.get(), B, T_, Hq, Hkv, D, nullptr),
      doctest::Contains("q is null"), tc::cuda_error);
  CHECK_THROWS_WITH_AS(
      tc::attention_backward<bf>(dq.get(), dk.get(), dv.get(), dout.get(), q.get(), k.get(), v.get(), out.get(),
                                 lse.get(), B, T_, Hq, Hkv, D, ws.get(), ws_bytes - 1, nullptr),
      doctest::Contains("workspace_bytes"), tc::cuda_error);
  CHECK_THROWS_WITH_AS(tc::attention_backward<bf>(dq.get(), dk.get(), dv.get(), dout.get(), q.get(), k.get(), v.get(),
                                                  out.get(), lse.get(), B, T_, Hq, Hkv, D, nullptr, ws_bytes, nullptr),
                       doctest::Contains("workspace is null"), tc::cuda_error);
  CHECK_THROWS_WITH_AS(tc::attention_backward<bf>(dq.get(), nullptr, dv.get(), dout.get(), q.get(), k.get(), v.get(),
                                                  out.get(), lse.get(), B, T_, Hq, Hkv, D, ws.get(), ws_bytes, nullptr),
                       doctest::Contains("dk is null"), tc::cuda_error);
  CHECK_THROWS_WITH_AS(tc::attention_workspace_bytes(B, T_, Hq, Hkv, 80), doctest::Contains("head dim D = 80"),
                       tc::cuda_error);
  TRAINPERF_CUDA_CHECK(cudaDeviceSynchronize());  // nothing was launched, nothing failed
}
