// Tests for the tensor-core GEMM in <trainperf/kernels/cuda/matmul.cuh>, both backends.
//
// Expected values come from the CPU kernels (kernels::cpu::linear_forward / linear_backward) for
// the linear layer's three GEMMs, and from a double-precision host loop for everything else
// (every transpose combination, epilogue, output type, beta). Inputs are fresh random numbers on
// every run (the seed is printed; TRAINPERF_TEST_SEED=<n> replays a run), rounded through
// bf16 / fp16 first so the reference sees exactly what the GPU sees. Outputs are poisoned with
// NaN before every run (so an unwritten element fails), and the padding columns between rows
// must come back untouched.
// Checks: |got - ref| <= atol + rtol * |ref|, NaN never passes.

#include <doctest/doctest.h>

#include <trainperf/kernels/cpu/kernels.hpp>
#include <trainperf/kernels/cuda/matmul.cuh>

#include "gpu_test.cuh"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using namespace trainperf_gpu_test;
namespace tc = trainperf::cuda;
namespace kc = trainperf::kernels::cpu;
using bf16 = __nv_bfloat16;

std::mt19937& rng() {
  static std::mt19937 gen = [] {
    const std::uint64_t seed = test_seed();
    MESSAGE("test_cuda_matmul random seed: " << seed << " (TRAINPERF_TEST_SEED=" << seed << " replays it)");
    return std::mt19937(static_cast<std::uint32_t>(seed));
  }();
  return gen;
}

// Random values in [-1, 1] stored as X; `exact` receives the stored values as double.
template <class X>
std::vector<X> random_values(std::size_t n, std::vector<double>& exact) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<X> v(n);
  exact.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = from_float<X>(dist(rng()));
    exact[i] = to_double(v[i]);
  }
  return v;
}

// fp32 output: only the fp32 accumulation order differs (~1e-6 relative here).
// bf16 output: one rounding to 8 significant bits (2^-8 relative) plus, in cuBLASLt's
// unfused epilogues, one more before the epilogue; fp16: 11 bits (2^-11).
template <class Tout>
tolerance tolerance_for() {
  if constexpr (std::is_same_v<Tout, float>)
    return {1e-3, 1e-3};
  else if constexpr (std::is_same_v<Tout, bf16>)
    return {2e-2, 1.6e-2};
  else
    return {4e-3, 2e-3};
}

// GELU tanh approximation (Hendrycks & Gimpel 2016, section 2) and SiLU (Elfwing et al. 2018).
double gelu_ref(double x) {
  const double sqrt_2_over_pi = 0.79788456080286535588;  // sqrt(2 / pi)
  return 0.5 * x * (1.0 + std::tanh(sqrt_2_over_pi * (x + 0.044715 * x * x * x)));
}
double silu_ref(double x) { return x / (1.0 + std::exp(-x)); }

// ---- one problem: inputs, reference product and every run on it --------------------------------

struct shape {
  i64 m, n, k;
};

template <class T>
struct problem {
  shape s;
  bool trans_a, trans_b;
  i64 lda, ldb;
  std::vector<double> a, b, bias;  // stored values
  std::vector<double> product;     // sum_k op(A)[m, k] op(B)[k, n], [m, n], double
  device_buffer<T> da, db, dbias;

  problem(shape s_, bool ta, bool tb, bool padded)
      : s(s_),
        trans_a(ta),
        trans_b(tb),
        lda(ld_for(ta ? s_.m : s_.k, padded)),
        ldb(ld_for(tb ? s_.k : s_.n, padded)),
        da(sz((ta ? s_.k : s_.m) * lda)),
        db(sz((tb ? s_.n : s_.k) * ldb)),
        dbias(sz(s_.n)) {
    da.upload(random_values<T>(sz((ta ? s.k : s.m) * lda), a));
    db.upload(random_values<T>(sz((tb ? s.n : s.k) * ldb), b));
    dbias.upload(random_values<T>(sz(s.n), bias));
    product.assign(sz(s.m * s.n), 0.0);
    for (i64 m = 0; m < s.m; ++m)
      for (i64 kk = 0; kk < s.k; ++kk) {
        const double av = ta ? a[sz(kk * lda + m)] : a[sz(m * lda + kk)];
        for (i64 n = 0; n < s.n; ++n) product[sz(m * s.n + n)] += av * (tb ? b[sz(n * ldb + kk)] : b[sz(kk * ldb + n)]);
      }
  }

  // padded: a multiple of 8 plus 8 spare elements per row (the fast path, and padding to check
  // for stray writes); tight: exactly the row length (the fast path only when it is a multiple of 8).
  static i64 ld_for(i64 cols, bool padded) { return padded ? (cols + 7) / 8 * 8 + 8 : cols; }
};

struct run_config {
  tc::backend be;
  tc::epilogue ep;
  float alpha, beta;
  bool residual_is_d;  // epilogue residual reading D itself
  bool padded;
};

std::string describe(const shape& s, bool ta, bool tb, const run_config& rc, const char* t, const char* tout) {
  std::ostringstream os;
  os << "m=" << s.m << " n=" << s.n << " k=" << s.k << " trans_a=" << ta << " trans_b=" << tb
     << " ld=" << (rc.padded ? "padded" : "tight") << " T=" << t << " Tout=" << tout
     << " backend=" << tc::to_string(rc.be) << " epilogue=" << tc::to_string(rc.ep) << " alpha=" << rc.alpha
     << " beta=" << rc.beta << (rc.residual_is_d ? " residual=D" : "");
  return os.str();
}

template <class T, class Tout>
void run_and_check(problem<T>& pr, const run_config& rc) {
  const shape s = pr.s;
  const bool silu = rc.ep == tc::epilogue::silu_gate;
  const i64 dcols = silu ? s.n / 2 : s.n;
  const i64 ldd = problem<T>::ld_for(dcols, rc.padded);
  const std::size_t dsize = sz(s.m * ldd);
  device_buffer<Tout> dd(dsize), dres(dsize);

  // D starts as NaN; where beta != 0 (or the residual is D) the rows get real old values but the
  // padding stays NaN, so a stray write into it shows up as a changed bit pattern.
  dd.poison();
  std::vector<double> d_old, res;
  const bool need_old = rc.beta != 0.0f || rc.residual_is_d;
  std::vector<Tout> before = dd.download();
  if (need_old) {
    std::vector<Tout> rows = random_values<Tout>(dsize, d_old);
    for (i64 m = 0; m < s.m; ++m)
      for (i64 c = 0; c < ldd; ++c)
        if (c < dcols) before[sz(m * ldd + c)] = rows[sz(m * ldd + c)];
    dd.upload(before);
    for (std::size_t i = 0; i < dsize; ++i) d_old[i] = to_double(before[i]);
  }
  const Tout* residual = nullptr;
  if (rc.ep == tc::epilogue::residual) {
    if (rc.residual_is_d) {
      residual = dd.get();
      res = d_old;
    } else {
      dres.upload(random_values<Tout>(dsize, res));
      residual = dres.get();
    }
  }

  const std::string what = describe(s, pr.trans_a, pr.trans_b, rc, type_name<T>(), type_name<Tout>());
  INFO(what);
  tc::gemm<T, Tout>(rc.be, pr.trans_a, pr.trans_b, s.m, s.n, s.k, rc.alpha, pr.da.get(), pr.lda, pr.db.get(), pr.ldb,
                    rc.beta, dd.get(), ldd, rc.ep, pr.dbias.get(), residual);
  TRAINPERF_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<Tout> got = dd.download();

  const tolerance tol = tolerance_for<Tout>();
  std::size_t bad = 0, stray = 0, first = 0;
  double first_got = 0, first_ref = 0;
  for (i64 m = 0; m < s.m; ++m) {
    for (i64 c = 0; c < ldd; ++c) {
      const std::size_t at = sz(m * ldd + c);
      if (c >= dcols) {  // padding: must be bit-identical to what was there
        if (std::memcmp(&got[at], &before[at], sizeof(Tout)) != 0) ++stray;
        continue;
      }
      double ref;
      if (silu) {
        ref = silu_ref(rc.alpha * pr.product[sz(m * s.n + 2 * c)]) * (rc.alpha * pr.product[sz(m * s.n + 2 * c + 1)]);
      } else {
        ref = rc.alpha * pr.product[sz(m * s.n + c)];
        if (rc.beta != 0.0f) ref += rc.beta * d_old[at];
        switch (rc.ep) {
          case tc::epilogue::bias:
            ref += pr.bias[sz(c)];
            break;
          case tc::epilogue::bias_gelu:
            ref = gelu_ref(ref + pr.bias[sz(c)]);
            break;
          case tc::epilogue::residual:
            ref += res[at];
            break;
          default:
            break;
        }
      }
      const double g = to_double(got[at]);
      if (!(std::abs(g - ref) <= tol.atol + tol.rtol * std::abs(ref))) {  // NaN fails
        if (bad++ == 0) {
          first = at;
          first_got = g;
          first_ref = ref;
        }
      }
    }
  }
  if (bad != 0)
    FAIL_CHECK(what << ": " << bad << " of " << s.m * dcols << " elements out of tolerance; first at row "
                    << first / sz(ldd) << " col " << first % sz(ldd) << ": got " << first_got << ", expected "
                    << first_ref);
  if (stray != 0) FAIL_CHECK(what << ": " << stray << " padding elements between rows of D were overwritten");
}

template <class T, class Tout>
void run_all_epilogues(problem<T>& pr, tc::backend be, bool padded) {
  const tc::epilogue eps[] = {tc::epilogue::none, tc::epilogue::bias, tc::epilogue::bias_gelu, tc::epilogue::residual,
                              tc::epilogue::silu_gate};
  for (const tc::epilogue ep : eps) {
    if (ep == tc::epilogue::silu_gate && pr.s.n % 2 != 0) continue;
    run_and_check<T, Tout>(pr, {be, ep, 0.75f, 0.0f, false, padded});
  }
  // Accumulation into D (a trainer's gradient sum), and the residual read from D itself.
  run_and_check<T, Tout>(pr, {be, tc::epilogue::none, 1.0f, 1.0f, false, padded});
  run_and_check<T, Tout>(pr, {be, tc::epilogue::residual, 0.5f, 0.0f, true, padded});
  run_and_check<T, Tout>(pr, {be, tc::epilogue::residual, 1.0f, 0.5f, true, padded});
  run_and_check<T, Tout>(pr, {be, tc::epilogue::bias, 1.0f, 1.0f, false, padded});
}

std::set<std::string>& paths_seen() {
  static std::set<std::string> seen;
  return seen;
}

template <class T>
void run_suite() {
  const shape shapes[] = {{1, 1, 1},      {9, 6, 13},      {17, 33, 65},   {127, 255, 64},
                          {200, 136, 72}, {256, 384, 512}, {1100, 260, 96}};
  for (const shape& s : shapes)
    for (int t = 0; t < 4; ++t)
      for (const bool padded : {true, false}) {
        problem<T> pr(s, (t & 1) != 0, (t & 2) != 0, padded);
        const auto path = [&](tc::backend be) {
          return tc::gemm_path_for(be, pr.trans_a, pr.trans_b, pr.da.get(), pr.lda, pr.db.get(), pr.ldb);
        };
        const bool fast_expected = pr.lda % 8 == 0 && pr.ldb % 8 == 0;
        const bool tn = !pr.trans_a && pr.trans_b;
        const tc::gemm_path p_auto = path(tc::backend::trainperf), p_mma = path(tc::backend::trainperf_mma_sync);
        CHECK_MESSAGE(p_mma == (fast_expected ? tc::gemm_path::mma_sync : tc::gemm_path::simple),
                      "lda=" << pr.lda << " ldb=" << pr.ldb << " took path " << tc::to_string(p_mma));
        CHECK_MESSAGE((p_auto == p_mma || (tn && fast_expected && p_auto == tc::gemm_path::wgmma)),
                      "trans_a=" << pr.trans_a << " trans_b=" << pr.trans_b << " took path " << tc::to_string(p_auto));
        paths_seen().insert(tc::to_string(p_auto));
        paths_seen().insert(tc::to_string(p_mma));
        for (const tc::backend be : {tc::backend::trainperf, tc::backend::trainperf_mma_sync, tc::backend::cublaslt}) {
          if (be == tc::backend::trainperf_mma_sync && p_mma == p_auto) continue;  // same kernel as trainperf
          run_all_epilogues<T, T>(pr, be, padded);
          run_all_epilogues<T, float>(pr, be, padded);
        }
      }
}

// ---- the linear layer against the CPU kernels ----------------------------------------------------

std::vector<float> as_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

void expect_close(const std::vector<float>& got, const std::vector<float>& ref, tolerance tol,
                  const std::string& what) {
  REQUIRE(got.size() == ref.size());
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], r = ref[i];
    if (!(std::abs(g - r) <= tol.atol + tol.rtol * std::abs(r)))
      if (bad++ == 0) first = i;
  }
  if (bad != 0)
    FAIL_CHECK(what << ": " << bad << " of " << got.size() << " elements out of tolerance; first at [" << first
                    << "] got " << got[first] << ", expected " << ref[first]);
}

template <class T>
void check_linear(tc::backend be) {
  const i64 tokens = 130, in = 72, out = 200;  // ragged against the 128 x 128 tiles
  std::vector<double> inp_d, w_d, bias_d, dout_d, inp2_d, dout2_d;
  device_buffer<T> inp(sz(tokens * in)), w(sz(out * in)), bias(sz(out)), dout(sz(tokens * out)), inp2(sz(tokens * in)),
      dout2(sz(tokens * out));
  inp.upload(random_values<T>(sz(tokens * in), inp_d));
  w.upload(random_values<T>(sz(out * in), w_d));
  bias.upload(random_values<T>(sz(out), bias_d));
  dout.upload(random_values<T>(sz(tokens * out), dout_d));
  inp2.upload(random_values<T>(sz(tokens * in), inp2_d));
  dout2.upload(random_values<T>(sz(tokens * out), dout2_d));
  const std::vector<float> inp_f = as_float(inp_d), w_f = as_float(w_d), bias_f = as_float(bias_d),
                           dout_f = as_float(dout_d), inp2_f = as_float(inp2_d), dout2_f = as_float(dout2_d);
  const std::string tag = std::string(type_name<T>()) + " backend=" + tc::to_string(be);
  const tolerance tol_f32 = tolerance_for<float>();

  // forward: out[T, O] = inp[T, I] · W[O, I]^T + bias
  std::vector<float> out_ref(sz(tokens * out));
  kc::linear_forward(out_ref.data(), inp_f.data(), w_f.data(), bias_f.data(), tokens, in, out);
  {
    device_buffer<float> y(sz(tokens * out));
    y.poison();
    tc::gemm<T, float>(be, false, true, tokens, out, in, 1.0f, inp.get(), in, w.get(), in, 0.0f, y.get(), out,
                       tc::epilogue::bias, bias.get());
    TRAINPERF_CUDA_CHECK(cudaDeviceSynchronize());
    expect_close(to_floats(y.download()), out_ref, tol_f32, "linear forward fp32 out, " + tag);
  }
  {
    device_buffer<T> y(sz(tokens * out));
    y.poison();
    tc::gemm<T, T>(be, false, true, tokens, out, in, 1.0f, inp.get(), in, w.get(), in, 0.0f, y.get(), out,
                   tc::epilogue::bias, bias.get());
    TRAINPERF_CUDA_CHECK(cudaDeviceSynchronize());
    expect_close(to_floats(y.download()), out_ref, tolerance_for<T>(),
                 std::string("linear forward ") + type_name<T>() + " out, " + tag);
  }

  // backward over two micro-batches: dinp[T, I] = dout · W; dW[O, I] += dout^T · inp (fp32,
  // beta = 1, starting from nonzero values as after earlier micro-batches).
  std::vector<float> dinp_ref(sz(tokens * in), 0.0f), dinp2_ref(sz(tokens * in), 0.0f);
  std::vector<double> dw_start_d;
  random_values<float>(sz(out * in), dw_start_d);
  const std::vector<float> dw_start = as_float(dw_start_d);
  std::vector<float> dw_ref = dw_start;
  kc::linear_backward(dinp_ref.data(), dw_ref.data(), nullptr, dout_f.data(), inp_f.data(), w_f.data(), tokens, in,
                      out);
  kc::linear_backward(dinp2_ref.data(), dw_ref.data(), nullptr, dout2_f.data(), inp2_f.data(), w_f.data(), tokens, in,
                      out);

  device_buffer<float> dinp(sz(tokens * in)), dw(sz(out * in));
  dinp.poison();
  tc::gemm<T, float>(be, false, false, tokens, in, out, 1.0f, dout.get(), out, w.get(), in, 0.0f, dinp.get(), in);
  TRAINPERF_CUDA_CHECK(cudaDeviceSynchronize());
  expect_close(to_floats(dinp.download()), dinp_ref, tol_f32, "linear backward dinp, " + tag);

  dw.upload(dw_start);
  tc::gemm<T, float>(be, true, false, out, in, tokens, 1.0f, dout.get(), out, inp.get(), in, 1.0f, dw.get(), in);
  tc::gemm<T, float>(be, true, false, out, in, tokens, 1.0f, dout2.get(), out, inp2.get(), in, 1.0f, dw.get(), in);
  TRAINPERF_CUDA_CHECK(cudaDeviceSynchronize());
  expect_close(to_floats(dw.download()), dw_ref, tol_f32, "linear backward dW (2 micro-batches), " + tag);
}

// A call's message must name the argument, and nothing may be launched.
template <class F>
void expect_error(F&& f, const std::string& needle) {
  bool thrown = false;
  try {
    f();
  } catch (const tc::cuda_error& e) {
    thrown = true;
    const std::string msg = e.what();
    CHECK_MESSAGE(msg.find(needle) != std::string::npos, "message '" << msg << "' lacks '" << needle << "'");
  }
  CHECK_MESSAGE(thrown, "no cuda_error for " << needle);
}

}  // namespace

TEST_CASE("gemm bf16: every shape, transpose, epilogue, output type and backend against a double reference") {
  run_suite<bf16>();
  std::string seen;
  for (const std::string& p : paths_seen()) seen += " " + p;
  MESSAGE("trainperf kernels exercised on this device:" << seen);
}

TEST_CASE("gemm fp16: every shape, transpose, epilogue, output type and backend against a double reference") {
  run_suite<__half>();
}

TEST_CASE("gemm reproduces kernels::cpu::linear_forward and linear_backward") {
  for (const tc::backend be : {tc::backend::trainperf, tc::backend::trainperf_mma_sync, tc::backend::cublaslt}) {
    check_linear<bf16>(be);
    check_linear<__half>(be);
  }
}

TEST_CASE("gemm is deterministic run to run (a moving result would mean a race)") {
  problem<bf16> pr({640, 520, 1000}, false, true, true);
  for (const tc::backend be : {tc::backend::trainperf, tc::backend::trainperf_mma_sync}) {
    device_buffer<float> d1(sz(640 * 520)), d2(sz(640 * 520));
    d1.poison();
    d2.poison();
    for (device_buffer<float>* d : {&d1, &d2})
      tc::gemm<bf16, float>(be, false, true, 640, 520, 1000, 1.0f, pr.da.get(), pr.lda, pr.db.get(), pr.ldb, 0.0f,
                            d->get(), 520);
    TRAINPERF_CUDA_CHECK(cudaDeviceSynchronize());
    const std::vector<float> a = d1.download(), b = d2.download();
    CHECK_MESSAGE(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0, "backend " << tc::to_string(be));
  }
}

TEST_CASE("gemm picks the simple path for misaligned operands and still computes the right thing") {
  problem<bf16> pr({70, 48, 40}, false, false, true);
  // A one element past its start: no row starts on 16 bytes any more. The padded rows (lda = 48
  // for k = 40) leave room, so op(A)[m, k] = a[m * lda + k + 1] stays inside the allocation.
  const tc::backend be = tc::backend::trainperf;
  CHECK(tc::gemm_path_for(be, false, false, pr.da.get() + 1, pr.lda, pr.db.get(), pr.ldb) == tc::gemm_path::simple);
  CHECK(tc::gemm_path_for(be, false, false, pr.da.get(), pr.lda, pr.db.get(), pr.ldb) == tc::gemm_path::mma_sync);
  device_buffer<float> d(sz(70 * 48));
  d.poison();
  tc::gemm<bf16, float>(tc::backend::trainperf, false, false, 70, 48, 40, 1.0f, pr.da.get() + 1, pr.lda, pr.db.get(),
                        pr.ldb, 0.0f, d.get(), 48);
  TRAINPERF_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<float> got = d.download();
  std::size_t bad = 0;
  for (i64 m = 0; m < 70; ++m)
    for (i64 n = 0; n < 48; ++n) {
      double ref = 0;
      for (i64 k = 0; k < 40; ++k) ref += pr.a[sz(m * pr.lda + k + 1)] * pr.b[sz(k * pr.ldb + n)];
      if (!(std::abs(got[sz(m * 48 + n)] - ref) <= 1e-3 + 1e-3 * std::abs(ref))) ++bad;
    }
  CHECK(bad == 0);
}

TEST_CASE("gemm rejects bad arguments on the host with a message naming them") {
  device_buffer<bf16> a(64 * 64), b(64 * 64), bias(64);
  device_buffer<float> d(64 * 64);
  const auto call = [&](i64 m, i64 n, i64 k, const bf16* pa, i64 lda, i64 ldb, float beta, float* pd, i64 ldd,
                        tc::epilogue ep, const bf16* pbias, const float* res) {
    tc::gemm<bf16, float>(tc::backend::trainperf, false, false, m, n, k, 1.0f, pa, lda, b.get(), ldb, beta, pd, ldd, ep,
                          pbias, res);
  };
  const tc::epilogue none = tc::epilogue::none;
  expect_error([&] { call(0, 8, 8, a.get(), 8, 8, 0, d.get(), 8, none, nullptr, nullptr); }, "m = 0");
  expect_error([&] { call(8, -3, 8, a.get(), 8, 8, 0, d.get(), 8, none, nullptr, nullptr); }, "n = -3");
  expect_error([&] { call(8, 8, 0, a.get(), 8, 8, 0, d.get(), 8, none, nullptr, nullptr); }, "k = 0");
  expect_error([&] { call(8, 8, 8, nullptr, 8, 8, 0, d.get(), 8, none, nullptr, nullptr); }, "A is null");
  expect_error([&] { call(8, 8, 8, a.get(), 8, 8, 0, nullptr, 8, none, nullptr, nullptr); }, "D is null");
  expect_error([&] { call(8, 8, 16, a.get(), 8, 8, 0, d.get(), 8, none, nullptr, nullptr); }, "lda = 8");
  expect_error([&] { call(8, 16, 8, a.get(), 8, 8, 0, d.get(), 16, none, nullptr, nullptr); }, "ldb = 8");
  expect_error([&] { call(8, 16, 8, a.get(), 8, 16, 0, d.get(), 8, none, nullptr, nullptr); }, "ldd = 8");
  expect_error([&] { call(8, 8, 8, a.get(), 8, 8, 0, d.get(), 8, tc::epilogue::bias, nullptr, nullptr); },
               "bias is null");
  expect_error([&] { call(8, 8, 8, a.get(), 8, 8, 0, d.get(), 8, tc::epilogue::residual, nullptr, nullptr); },
               "residual is null");
  expect_error([&] { call(8, 7, 8, a.get(), 8, 7, 0, d.get(), 8, tc::epilogue::silu_gate, nullptr, nullptr); },
               "n = 7 is odd");
  expect_error([&] { call(8, 8, 8, a.get(), 8, 8, 1.0f, d.get(), 8, tc::epilogue::silu_gate, nullptr, nullptr); },
               "beta = 1");
  // silu_gate's D has n / 2 columns, so ldd = n / 2 is enough.
  CHECK_NOTHROW(call(8, 16, 8, a.get(), 8, 16, 0, d.get(), 8, tc::epilogue::silu_gate, nullptr, nullptr));
  TRAINPERF_CUDA_CHECK(cudaDeviceSynchronize());
}
