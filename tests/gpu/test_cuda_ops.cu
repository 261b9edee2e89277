// GPU tests for <trainperf/kernels/cuda/ops.cuh>: every kernel against the fp32 CPU kernel of
// <trainperf/kernels/cpu/kernels.hpp>, in bf16 and fp16.
//
// Inputs are drawn fresh for every case (std::mt19937_64; the base seed is random and printed on
// failure; TRAINPERF_TEST_SEED=<n> reproduces a run) and rounded through T, so the CPU and the GPU
// read the same values. Outputs of type T are compared with the CPU result rounded through T:
// |got - ref| <= atol + rtol |ref| with rtol one unit in the last place of T (a value that lands
// near a rounding boundary may round either way), plus the kernel's fp32 slack; fp32 outputs use
// fp32 tolerances. Overwritten outputs are poisoned with NaN first, so a value left unwritten fails.
// Shapes are ragged (odd sizes, V = 50257, rows that are not a multiple of any block, pointers
// offset by one element to force the scalar paths). The reductions are run twice and must agree
// bit for bit.

#include <doctest/doctest.h>

#include <trainperf/kernels/cpu/kernels.hpp>
#include <trainperf/kernels/cuda/ops.cuh>

#include "gpu_test.cuh"

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

namespace {

using namespace trainperf_gpu_test;
namespace kc = trainperf::kernels::cpu;
namespace tc = trainperf::cuda;
using vecf = std::vector<float>;
using veci = std::vector<std::int32_t>;

// ---- random inputs ---------------------------------------------------------------------------

// A fresh generator for every call: independent inputs for every case.
std::mt19937_64 fresh_rng() {
  static std::uint64_t calls = 0;
  return std::mt19937_64(test_seed() + 0x9E3779B97F4A7C15ull * ++calls);
}
#define SEED_INFO() INFO("TRAINPERF_TEST_SEED=" << test_seed())

// The reference rounded through T, as the GPU rounds its fp32 result once.
template <class T>
vecf round_through(const vecf& v) {
  return to_floats(from_floats<T>(v));
}

vecf normal(std::mt19937_64& rng, i64 n, float mean, float stddev) {
  std::normal_distribution<float> d(mean, stddev);
  vecf v(sz(n));
  for (auto& x : v) x = d(rng);
  return v;
}
template <class T>
std::vector<T> normal_t(std::mt19937_64& rng, i64 n, float mean, float stddev) {
  return from_floats<T>(normal(rng, n, mean, stddev));
}
veci uniform_ids(std::mt19937_64& rng, i64 n, i64 hi) {
  std::uniform_int_distribution<std::int32_t> d(0, static_cast<std::int32_t>(hi - 1));
  veci v(sz(n));
  for (auto& x : v) x = d(rng);
  return v;
}

class stream {
 public:
  stream() { TRAINPERF_CUDA_CHECK(cudaStreamCreate(&s_)); }
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;
  ~stream() { (void)cudaStreamDestroy(s_); }
  operator cudaStream_t() const { return s_; }
  void sync() const { TRAINPERF_CUDA_CHECK(cudaStreamSynchronize(s_)); }

 private:
  cudaStream_t s_ = nullptr;
};

// ---- comparisons -------------------------------------------------------------------------------

// One unit in the last place of T, relative to the value (upper bound).
template <class T>
constexpr double ulp_rel = std::is_same_v<T, __half> ? 0x1p-10 : 0x1p-7;
template <class T>
tolerance tol_t(double atol, double extra_rtol = 1e-5) {
  return {atol, ulp_rel<T> + extra_rtol};
}

// Every element within tolerance; NaN never passes.
template <class Got>
void check_close(const std::string& what, const std::vector<Got>& got_in, const vecf& ref, tolerance tol) {
  const vecf got = to_floats(got_in);
  REQUIRE_MESSAGE(got.size() == ref.size(), what << ": size mismatch");
  std::size_t bad = 0, first = 0;
  double worst = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - static_cast<double>(ref[i]));
    const double limit = tol.atol + tol.rtol * std::fabs(static_cast<double>(ref[i]));
    const bool ok = err <= limit;  // false for NaN
    if (!ok && bad++ == 0) first = i;
    worst = std::max(worst, ok ? err / limit : std::numeric_limits<double>::infinity());
  }
  std::ostringstream os;
  os.precision(9);
  if (bad > 0)
    os << what << ": " << bad << " of " << ref.size() << " elements out of tolerance; first at [" << first << "] got "
       << got[first] << " expected " << ref[first] << "; worst |err|/limit = " << worst;
  CHECK_MESSAGE(bad == 0, os.str());
}

template <class T>
void check_same_bits(const std::string& what, const std::vector<T>& a, const std::vector<T>& b) {
  REQUIRE(a.size() == b.size());
  CHECK_MESSAGE(std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0, what << ": two runs differ");
}

template <class T>
T* offset(T* p, bool misalign) {
  return misalign ? p + 1 : p;
}

#define DTYPES __nv_bfloat16, __half

// ---- RMSNorm -----------------------------------------------------------------------------------

struct rows_cols {
  i64 rows, C;
  bool misalign;
};
const rows_cols norm_shapes[] = {{1, 8, false},     {7, 768, false}, {67, 1000, false}, {129, 333, false},
                                 {300, 256, false}, {5, 64, true},   {3, 16384, false}};

TEST_CASE_TEMPLATE("rmsnorm_forward matches the CPU kernel", T, DTYPES) {
  SEED_INFO();
  stream s;
  for (const auto& [rows, C, misalign] : norm_shapes) {
    CAPTURE(rows);
    CAPTURE(C);
    CAPTURE(misalign);
    auto rng = fresh_rng();
    const i64 o = misalign ? 1 : 0;
    const auto x = normal_t<T>(rng, rows * C + o, 0.0f, 1.0f);
    const vecf w = normal(rng, C + o, 1.0f, 0.1f);
    const float eps = 1e-5f;
    vecf ref_out(sz(rows * C)), ref_rstd(sz(rows));
    const vecf xf = to_floats(x);
    kc::rmsnorm_forward(ref_out.data(), ref_rstd.data(), xf.data() + o, w.data() + o, rows, C, eps);

    device_buffer<T> dx(x), dout(sz(rows * C + o));
    device_buffer<float> dw(w), drstd(sz(rows));
    dout.poison();
    drstd.poison();
    tc::rmsnorm_forward(offset(dout.get(), misalign), drstd.get(), offset(dx.get(), misalign),
                        offset(dw.get(), misalign), rows, C, eps, s);
    s.sync();
    auto out = dout.download();
    out.erase(out.begin(), out.begin() + o);
    check_close("rmsnorm out", out, round_through<T>(ref_out), tol_t<T>(1e-6));
    check_close("rmsnorm rstd", drstd.download(), ref_rstd, {1e-6, 1e-5});
  }
}

TEST_CASE_TEMPLATE("rmsnorm_backward matches the CPU kernel and is deterministic", T, DTYPES) {
  SEED_INFO();
  stream s;
  for (const auto& [rows, C, misalign] : norm_shapes) {
    CAPTURE(rows);
    CAPTURE(C);
    CAPTURE(misalign);
    auto rng = fresh_rng();
    const i64 o = misalign ? 1 : 0;
    const auto x = normal_t<T>(rng, rows * C + o, 0.0f, 1.0f);
    const auto g = normal_t<T>(rng, rows * C + o, 0.0f, 1.0f);
    const auto dinp0 = normal_t<T>(rng, rows * C + o, 0.0f, 0.5f);  // accumulated into
    const vecf w = normal(rng, C + o, 1.0f, 0.1f);
    const vecf dw0 = normal(rng, C, 0.0f, 1.0f);
    const vecf xf = to_floats(x), gf = to_floats(g);
    vecf scratch_out(sz(rows * C)), rstd(sz(rows));
    kc::rmsnorm_forward(scratch_out.data(), rstd.data(), xf.data() + o, w.data() + o, rows, C, 1e-5f);
    vecf ref_dinp = to_floats(dinp0), ref_dw = dw0;
    kc::rmsnorm_backward(ref_dinp.data() + o, ref_dw.data(), gf.data() + o, xf.data() + o, w.data() + o, rstd.data(),
                         rows, C);
    ref_dinp.erase(ref_dinp.begin(), ref_dinp.begin() + o);

    device_buffer<T> dx(x), dg(g), ddinp(dinp0);
    device_buffer<float> dwt(w), drstd(rstd), ddw(dw0);
    device_buffer<float> ws(tc::rmsnorm_backward_workspace_floats(rows, C));
    const auto run = [&](float* workspace) {
      ddinp.upload(dinp0);
      ddw.upload(dw0);
      tc::rmsnorm_backward(offset(ddinp.get(), misalign), ddw.get(), offset(dg.get(), misalign),
                           offset(dx.get(), misalign), offset(dwt.get(), misalign), drstd.get(), rows, C, workspace, s);
      s.sync();
      auto d = ddinp.download();
      d.erase(d.begin(), d.begin() + o);
      return std::make_pair(d, ddw.download());
    };
    const auto [dinp, dw] = run(ws.get());
    const double sum_scale = std::sqrt(static_cast<double>(rows)) + 1;
    check_close("rmsnorm dinp", dinp, round_through<T>(ref_dinp), tol_t<T>(2e-5));
    check_close("rmsnorm dweight", dw, ref_dw, {2e-5 * sum_scale, 2e-5});
    const auto [dinp2, dw2] = run(nullptr);  // stream-ordered scratch: the same numbers
    check_same_bits("rmsnorm dinp", dinp, dinp2);
    check_same_bits("rmsnorm dweight", dw, dw2);
  }
}

// ---- RoPE --------------------------------------------------------------------------------------

struct rope_shape {
  i64 rows, H, D, pos0;
  float theta;
  bool misalign;
};
const rope_shape rope_shapes[] = {{5, 3, 64, 0, 10000.0f, false},   {9, 2, 6, 3, 10000.0f, false},
                                  {33, 4, 128, 17, 5e5f, false},    {7, 5, 18, 1000, 10000.0f, false},
                                  {6, 2, 64, 4095, 10000.0f, true}, {1, 1, 2, 0, 10000.0f, false}};

TEST_CASE_TEMPLATE("rope_forward and rope_backward match the CPU kernels", T, DTYPES) {
  SEED_INFO();
  stream s;
  for (const auto& [rows, H, D, pos0, theta, misalign] : rope_shapes) {
    CAPTURE(rows);
    CAPTURE(H);
    CAPTURE(D);
    CAPTURE(pos0);
    CAPTURE(misalign);
    for (const bool backward : {false, true}) {
      CAPTURE(backward);
      auto rng = fresh_rng();
      const i64 n = rows * H * D, o = misalign ? 1 : 0;
      const auto x = normal_t<T>(rng, n + o, 0.0f, 1.0f);
      vecf ref = to_floats(x);
      if (backward)
        kc::rope_backward(ref.data() + o, rows, H, D, theta, pos0);
      else
        kc::rope_forward(ref.data() + o, rows, H, D, theta, pos0);
      device_buffer<T> dx(x);
      if (backward)
        tc::rope_backward(offset(dx.get(), misalign), rows, H, D, theta, pos0, s);
      else
        tc::rope_forward(offset(dx.get(), misalign), rows, H, D, theta, pos0, s);
      s.sync();
      check_close("rope", dx.download(), round_through<T>(ref), tol_t<T>(1e-6));
    }
  }
}

// ---- SwiGLU --------------------------------------------------------------------------------------

const std::pair<i64, bool> elementwise_sizes[] = {
    {1, false}, {1000, false}, {4099, false}, {65539, false}, {4096, true}};

TEST_CASE_TEMPLATE("swiglu_forward and swiglu_backward match the CPU kernels", T, DTYPES) {
  SEED_INFO();
  stream s;
  for (const auto& [n, misalign] : elementwise_sizes) {
    CAPTURE(n);
    CAPTURE(misalign);
    auto rng = fresh_rng();
    const i64 o = misalign ? 1 : 0;
    const auto gate = normal_t<T>(rng, n + o, 0.0f, 2.0f), up = normal_t<T>(rng, n + o, 0.0f, 1.0f);
    const auto dout = normal_t<T>(rng, n + o, 0.0f, 1.0f);
    const auto dgate0 = normal_t<T>(rng, n + o, 0.0f, 0.5f), dup0 = normal_t<T>(rng, n + o, 0.0f, 0.5f);
    const vecf gf = to_floats(gate), uf = to_floats(up), df = to_floats(dout);
    vecf ref_out(sz(n + o)), ref_dgate = to_floats(dgate0), ref_dup = to_floats(dup0);
    kc::swiglu_forward(ref_out.data() + o, gf.data() + o, uf.data() + o, n);
    kc::swiglu_backward(ref_dgate.data() + o, ref_dup.data() + o, df.data() + o, gf.data() + o, uf.data() + o, n);

    device_buffer<T> dg(gate), du(up), dd(dout), dout_buf(sz(n + o)), ddg(dgate0), ddu(dup0);
    dout_buf.poison();
    tc::swiglu_forward(offset(dout_buf.get(), misalign), offset(dg.get(), misalign), offset(du.get(), misalign), n, s);
    tc::swiglu_backward(offset(ddg.get(), misalign), offset(ddu.get(), misalign), offset(dd.get(), misalign),
                        offset(dg.get(), misalign), offset(du.get(), misalign), n, s);
    s.sync();
    auto out = dout_buf.download();
    out.erase(out.begin(), out.begin() + o);
    ref_out.erase(ref_out.begin(), ref_out.begin() + o);
    check_close("swiglu out", out, round_through<T>(ref_out), tol_t<T>(1e-6));
    check_close("swiglu dgate", ddg.download(), round_through<T>(ref_dgate), tol_t<T>(1e-6));
    check_close("swiglu dup", ddu.download(), round_through<T>(ref_dup), tol_t<T>(1e-6));
  }
}

// ---- embedding -----------------------------------------------------------------------------------

struct embedding_shape {
  i64 n_tokens, C, V, distinct;  // ids drawn from [0, distinct): few distinct ids force repeats
  bool misalign;
};
const embedding_shape embedding_shapes[] = {{37, 64, 50257, 50257, false},
                                            {129, 333, 1000, 7, false},
                                            {1, 8, 1, 1, false},
                                            {2500, 96, 300, 300, false},
                                            {64, 128, 50, 3, true}};

TEST_CASE_TEMPLATE("embedding_forward and embedding_backward match the CPU kernels", T, DTYPES) {
  SEED_INFO();
  stream s;
  for (const auto& [n_tokens, C, V, distinct, misalign] : embedding_shapes) {
    CAPTURE(n_tokens);
    CAPTURE(C);
    CAPTURE(V);
    CAPTURE(misalign);
    auto rng = fresh_rng();
    const i64 o = misalign ? 1 : 0;
    const auto table = normal_t<T>(rng, V * C + o, 0.0f, 1.0f);
    const veci tokens = uniform_ids(rng, n_tokens, distinct);
    const auto dout = normal_t<T>(rng, n_tokens * C + o, 0.0f, 1.0f);
    const vecf dtable0 = normal(rng, V * C + o, 0.0f, 1.0f);
    const vecf tf = to_floats(table), df = to_floats(dout);
    vecf ref_out(sz(n_tokens * C)), ref_dtable = dtable0;
    kc::embedding_forward(ref_out.data(), tokens.data(), tf.data() + o, n_tokens, C);
    kc::embedding_backward(ref_dtable.data() + o, df.data() + o, tokens.data(), n_tokens, C);

    device_buffer<T> dtab(table), dgrad(dout), dout_buf(sz(n_tokens * C + o));
    device_buffer<std::int32_t> dtok(tokens);
    device_buffer<float> ddtable(dtable0);
    dout_buf.poison();
    tc::embedding_forward(offset(dout_buf.get(), misalign), dtok.get(), offset(dtab.get(), misalign), n_tokens, C, V,
                          s);
    s.sync();
    auto out = dout_buf.download();
    out.erase(out.begin(), out.begin() + o);
    check_close("embedding out", out, ref_out, {0, 0});  // a copy: exact

    const auto run = [&] {
      ddtable.upload(dtable0);
      tc::embedding_backward(offset(ddtable.get(), misalign), offset(dgrad.get(), misalign), dtok.get(), n_tokens, C, V,
                             s);
      s.sync();
      return ddtable.download();
    };
    const auto dtable = run();
    // Same additions in the same order as the CPU kernel: equal up to fp32 rounding at most.
    check_close("embedding dtable", dtable, ref_dtable, {1e-6, 1e-6});
    check_same_bits("embedding dtable", dtable, run());
  }
}

TEST_CASE_TEMPLATE("embedding kernels turn an out-of-vocabulary id into NaN, not into a stray access", T, DTYPES) {
  SEED_INFO();
  stream s;
  auto rng = fresh_rng();
  const i64 C = 16, V = 10;
  const veci tokens = {3, static_cast<std::int32_t>(V), -1, 3};
  device_buffer<T> dtab(normal_t<T>(rng, V * C, 0.0f, 1.0f)), dout(sz(4 * C)),
      dgrad(normal_t<T>(rng, 4 * C, 0.0f, 1.0f));
  device_buffer<std::int32_t> dtok(tokens);
  const vecf zeros(sz(V * C), 0.0f);
  device_buffer<float> ddtable(zeros);
  tc::embedding_forward(dout.get(), dtok.get(), dtab.get(), 4, C, V, s);
  tc::embedding_backward(ddtable.get(), dgrad.get(), dtok.get(), 4, C, V, s);
  s.sync();
  const vecf out = to_floats(dout.download());
  for (i64 c = 0; c < C; ++c) {
    CHECK(std::isfinite(out[sz(c)]));
    CHECK(std::isnan(out[sz(C + c)]));
    CHECK(std::isnan(out[sz(2 * C + c)]));
  }
  const vecf dtable = ddtable.download();
  for (i64 r = 0; r < V; ++r)
    for (i64 c = 0; c < C; ++c) CHECK((r == 3 || dtable[sz(r * C + c)] == 0.0f));
}

// ---- cross-entropy -------------------------------------------------------------------------------

enum class grad_mode { separate, aliased, none };

TEST_CASE_TEMPLATE("cross_entropy and mean_loss match the CPU kernel and are deterministic", T, DTYPES) {
  SEED_INFO();
  stream s;
  const std::pair<i64, i64> shapes[] = {{3, 50257}, {5, 50304}, {2, 151936}, {17, 1000}, {1, 7}, {70, 333}};
  for (const auto& [rows, V] : shapes) {
    for (const grad_mode mode : {grad_mode::separate, grad_mode::aliased, grad_mode::none}) {
      CAPTURE(rows);
      CAPTURE(V);
      CAPTURE(static_cast<int>(mode));
      auto rng = fresh_rng();
      const auto logits = normal_t<T>(rng, rows * V, 0.0f, 3.0f);
      const veci targets = uniform_ids(rng, rows, V);
      const float dloss = 1.0f / static_cast<float>(rows);
      const vecf lf = to_floats(logits);
      vecf ref_losses(sz(rows)), ref_dlogits(sz(rows * V));
      const float ref_mean =
          kc::cross_entropy(ref_losses.data(), ref_dlogits.data(), lf.data(), targets.data(), rows, V, dloss);

      device_buffer<T> dlogits_in(logits), dgrad(sz(rows * V));
      device_buffer<std::int32_t> dtargets(targets);
      device_buffer<float> dlosses(sz(rows)), dmean(1);
      const auto run = [&] {
        dlogits_in.upload(logits);
        dgrad.poison();
        dlosses.poison();
        dmean.poison();
        T* g = mode == grad_mode::separate ? dgrad.get() : mode == grad_mode::aliased ? dlogits_in.get() : nullptr;
        tc::cross_entropy(dlosses.get(), g, dlogits_in.get(), dtargets.get(), rows, V, dloss, s);
        tc::mean_loss(dmean.get(), dlosses.get(), rows, s);
        s.sync();
        return std::make_pair(dlosses.download(), dmean.download());
      };
      const auto [losses, mean] = run();
      check_close("cross_entropy losses", losses, ref_losses, {2e-5, 2e-5});
      check_close("cross_entropy mean", mean, vecf{ref_mean}, {2e-5, 2e-5});
      // dloss x p with p ~ 1/V: tiny values, fp16 subnormals (spacing 6e-8) included.
      if (mode == grad_mode::separate)
        check_close("cross_entropy dlogits", dgrad.download(), round_through<T>(ref_dlogits), tol_t<T>(1e-7, 2e-5));
      if (mode == grad_mode::aliased)
        check_close("cross_entropy dlogits (aliasing logits)", dlogits_in.download(), round_through<T>(ref_dlogits),
                    tol_t<T>(1e-7, 2e-5));
      const auto [losses2, mean2] = run();
      check_same_bits("cross_entropy losses", losses, losses2);
      check_same_bits("mean_loss", mean, mean2);
    }
  }
}

// Megatron-LM's vocabulary parallelism over simulated ranks: each shard on its own host thread
// and stream; the group's max and sum are done on the host between two barriers.
struct host_group {
  explicit host_group(int n) : parts(sz(n)), sync(n) {}
  std::vector<vecf> parts;
  std::barrier<> sync;
  // x (n floats on the device, after `s`) becomes the max or sum over the shards' x.
  void reduce(int rank, float* x, i64 n, cudaStream_t s, bool max) {
    TRAINPERF_CUDA_CHECK(cudaStreamSynchronize(s));
    vecf& mine = parts[sz(rank)];
    mine.resize(sz(n));
    TRAINPERF_CUDA_CHECK(cudaMemcpy(mine.data(), x, sz(n) * sizeof(float), cudaMemcpyDeviceToHost));
    sync.arrive_and_wait();
    vecf out = parts[0];
    for (std::size_t r = 1; r < parts.size(); ++r)
      for (std::size_t i = 0; i < out.size(); ++i) out[i] = max ? std::max(out[i], parts[r][i]) : out[i] + parts[r][i];
    sync.arrive_and_wait();  // every shard has read the parts
    TRAINPERF_CUDA_CHECK(cudaMemcpy(x, out.data(), sz(n) * sizeof(float), cudaMemcpyHostToDevice));
  }
};

TEST_CASE_TEMPLATE("vocabulary shards: the embedding and the cross-entropy over shards match the whole vocabulary", T,
                   DTYPES) {
  SEED_INFO();
  // (rows, whole vocabulary, C, shard sizes)
  const std::vector<std::tuple<i64, i64, i64, std::vector<i64>>> shapes = {
      {17, 1000, 64, {500, 500}}, {5, 50304, 96, {12576, 12576, 12576, 12576}}, {9, 333, 40, {200, 133}}};
  for (const auto& [rows, V, C, shards] : shapes) {
    CAPTURE(rows);
    CAPTURE(V);
    auto rng = fresh_rng();
    const auto logits = normal_t<T>(rng, rows * V, 0.0f, 3.0f), table = normal_t<T>(rng, V * C, 0.0f, 1.0f);
    const auto dout = normal_t<T>(rng, rows * C, 0.0f, 1.0f);
    const veci targets = uniform_ids(rng, rows, V);
    const float dloss = 1.0f / static_cast<float>(rows);
    const vecf lf = to_floats(logits), tf = to_floats(table), df = to_floats(dout);
    vecf ref_losses(sz(rows)), ref_dlogits(sz(rows * V));
    kc::cross_entropy(ref_losses.data(), ref_dlogits.data(), lf.data(), targets.data(), rows, V, dloss);
    const int n = static_cast<int>(shards.size());
    host_group group(n);
    std::vector<std::thread> ranks;
    std::vector<std::string> failures(sz(n));
    i64 first = 0;
    for (int r = 0; r < n; ++r) {
      const i64 v = shards[sz(r)], f = first;
      first += v;
      ranks.emplace_back([&, r, v, f] {
        stream s;
        // this shard's columns of the logits, and rows of the table
        std::vector<T> mine(sz(rows * v));
        for (i64 i = 0; i < rows; ++i)
          std::copy_n(logits.begin() + static_cast<std::ptrdiff_t>(i * V + f), v,
                      mine.begin() + static_cast<std::ptrdiff_t>(i * v));
        device_buffer<T> dl(mine), dtab(std::vector<T>(table.begin() + static_cast<std::ptrdiff_t>(f * C),
                                                       table.begin() + static_cast<std::ptrdiff_t>((f + v) * C)));
        device_buffer<T> demb(sz(rows * C)), dgrad(dout);
        device_buffer<std::int32_t> dt(targets);
        device_buffer<float> dlosses(sz(rows)), ws(tc::vp_cross_entropy_workspace_floats(rows)),
            ddtable(vecf(sz(v * C), 0.0f));
        dlosses.poison();
        demb.poison();
        tc::cross_entropy_vocab_parallel(
            dlosses.get(), dl.get(), dl.get(), dt.get(), rows, v, f, dloss,
            [&](float* x, i64 k) { group.reduce(r, x, k, s, true); },
            [&](float* x, i64 k) { group.reduce(r, x, k, s, false); }, ws.get(), s);
        tc::embedding_forward(demb.get(), dt.get(), dtab.get(), rows, C, f, v, s);
        tc::embedding_backward(ddtable.get(), dgrad.get(), dt.get(), rows, C, f, v, s);
        s.sync();
        std::ostringstream why;
        const vecf losses = dlosses.download(), g = to_floats(dl.download()), emb = to_floats(demb.download());
        const vecf dtable = ddtable.download();
        for (i64 i = 0; i < rows; ++i) {
          if (std::abs(losses[sz(i)] - ref_losses[sz(i)]) > 2e-5 + 2e-5 * std::abs(ref_losses[sz(i)]))
            why << "loss " << i << ": " << losses[sz(i)] << " vs " << ref_losses[sz(i)] << "; ";
          // the whole vocabulary's gradient in this shard's columns, within about two units in the last
          // place of bf16 (the shards' sums are reassociated before the rounding to T)
          for (i64 j = 0; j < v; ++j) {
            const float want = round_through<T>(vecf{ref_dlogits[sz(i * V + f + j)]})[0];
            if (std::abs(g[sz(i * v + j)] - want) > 1e-7 + 1e-2 * std::abs(want)) {
              why << "dlogits " << i << "," << f + j << ": " << g[sz(i * v + j)] << " vs " << want << "; ";
              break;
            }
          }
          const i64 row = targets[sz(i)] - f;  // the embedding: this shard's row, or zeros
          for (i64 c = 0; c < C; ++c) {
            const float want = row >= 0 && row < v ? tf[sz((f + row) * C + c)] : 0.0f;
            if (emb[sz(i * C + c)] != want) {
              why << "embedding " << i << "," << c << "; ";
              break;
            }
          }
        }
        for (i64 j = 0; j < v; ++j) {  // the backward: the sum of this row's tokens' gradients
          double want = 0;
          for (i64 i = 0; i < rows; ++i)
            if (targets[sz(i)] == f + j) want += df[sz(i * C)];
          if (std::abs(dtable[sz(j * C)] - want) > 1e-5) why << "dtable row " << f + j << "; ";
        }
        failures[sz(r)] = why.str();
      });
    }
    for (auto& t : ranks) t.join();
    for (int r = 0; r < n; ++r) {
      CAPTURE(r);
      CHECK(failures[sz(r)] == "");
    }
  }
}

TEST_CASE("mean_loss matches a double-precision mean and is deterministic") {
  SEED_INFO();
  stream s;
  for (const i64 n : {i64{1}, i64{1000}, i64{100003}}) {
    CAPTURE(n);
    auto rng = fresh_rng();
    const vecf x = normal(rng, n, 5.0f, 2.0f);
    double sum = 0;
    for (float v : x) sum += v;
    device_buffer<float> dx(x), dm(1);
    dm.poison();
    tc::mean_loss(dm.get(), dx.get(), n, s);
    s.sync();
    const auto m = dm.download();
    check_close("mean_loss", m, vecf{static_cast<float>(sum / static_cast<double>(n))}, {1e-6, 1e-5});
    tc::mean_loss(dm.get(), dx.get(), n, s);
    s.sync();
    check_same_bits("mean_loss", m, dm.download());
  }
}

// ---- AdamW -------------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("adamw matches the CPU kernel, with and without a T copy and a gradient scale", T, DTYPES) {
  SEED_INFO();
  stream s;
  for (const auto& [n, misalign] : elementwise_sizes) {
    for (const bool with_copy : {false, true}) {
      for (const bool with_scale : {false, true}) {
        CAPTURE(n);
        CAPTURE(misalign);
        CAPTURE(with_copy);
        CAPTURE(with_scale);
        auto rng = fresh_rng();
        const i64 o = misalign ? 1 : 0;
        const tc::adamw_config gc{.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
        const kc::adamw_config cc{
            .lr = gc.lr, .beta1 = gc.beta1, .beta2 = gc.beta2, .eps = gc.eps, .weight_decay = gc.weight_decay};
        const float scale = 0.5f;
        vecf p = normal(rng, n + o, 0.0f, 1.0f), m(sz(n + o), 0.0f), v(sz(n + o), 0.0f);
        device_buffer<float> dp(p), dm(m), dv(v), dgrads(sz(n + o)), dscale(vecf{scale});
        device_buffer<T> dcopy(sz(n + o));
        for (i64 step = 1; step <= 3; ++step) {
          const vecf grads = normal(rng, n + o, 0.0f, 1e-2f);
          vecf scaled = grads;
          if (with_scale)
            for (auto& x : scaled) x *= scale;
          kc::adamw(p.data() + o, scaled.data() + o, m.data() + o, v.data() + o, n, cc, step);
          dgrads.upload(grads);
          dcopy.poison();
          T* copy = with_copy ? offset(dcopy.get(), misalign) : nullptr;
          tc::adamw(offset(dp.get(), misalign), copy, offset(dgrads.get(), misalign), offset(dm.get(), misalign),
                    offset(dv.get(), misalign), n, gc, step, with_scale ? dscale.get() : nullptr, s);
        }
        s.sync();
        const auto strip = [o](auto vec) {
          vec.erase(vec.begin(), vec.begin() + o);
          return vec;
        };
        check_close("adamw params", strip(dp.download()), strip(p), {1e-6, 1e-5});
        check_close("adamw m", strip(dm.download()), strip(m), {1e-8, 1e-5});
        check_close("adamw v", strip(dv.download()), strip(v), {1e-10, 1e-5});
        if (with_copy) check_close("adamw T copy", strip(dcopy.download()), round_through<T>(strip(p)), tol_t<T>(1e-6));
      }
    }
  }
}

TEST_CASE("adamw without a copy updates fp32 state like the CPU kernel") {
  SEED_INFO();
  stream s;
  auto rng = fresh_rng();
  const i64 n = 777;
  vecf p = normal(rng, n, 0.0f, 1.0f), m(sz(n), 0.0f), v(sz(n), 0.0f);
  const vecf g = normal(rng, n, 0.0f, 1.0f);
  device_buffer<float> dp(p), dm(m), dv(v), dg(g);
  tc::adamw(dp.get(), dg.get(), dm.get(), dv.get(), n, tc::adamw_config{}, 1, s);
  kc::adamw(p.data(), g.data(), m.data(), v.data(), n, kc::adamw_config{}, 1);
  s.sync();
  check_close("adamw params", dp.download(), p, {1e-6, 1e-5});
  check_close("adamw m", dm.download(), m, {1e-8, 1e-5});
  check_close("adamw v", dv.download(), v, {1e-10, 1e-5});
}

// ---- gradient norm and clipping ----------------------------------------------------------------

TEST_CASE("grad_norm and clip_grad_norm match the CPU kernel and are deterministic") {
  SEED_INFO();
  stream s;
  const std::pair<i64, bool> sizes[] = {{1, false},       {1000, false}, {4099, false}, {(i64{1} << 20) + 5, false},
                                        {3000000, false}, {4100, true}};
  for (const auto& [n, misalign] : sizes) {
    CAPTURE(n);
    CAPTURE(misalign);
    auto rng = fresh_rng();
    const i64 o = misalign ? 1 : 0;
    const vecf g = normal(rng, n + o, 0.0f, 0.01f);
    vecf ref = g;
    const float ref_norm = kc::clip_grad_norm(ref.data() + o, n, 0.0f);  // max_norm 0: no clipping
    device_buffer<float> dg(g), dnorm(1), ws(tc::grad_norm_workspace_floats(n));
    dnorm.poison();
    tc::grad_norm(dnorm.get(), offset(dg.get(), misalign), n, ws.get(), s);
    s.sync();
    const auto norm = dnorm.download();
    check_close("grad_norm", norm, vecf{ref_norm}, {1e-7, 1e-5});
    tc::grad_norm(dnorm.get(), offset(dg.get(), misalign), n, nullptr, s);
    s.sync();
    check_same_bits("grad_norm", norm, dnorm.download());

    for (const float factor : {0.5f, 2.0f}) {  // clips, does not clip
      CAPTURE(factor);
      const float max_norm = ref_norm * factor;
      vecf clipped = g;
      const float cpu_norm = kc::clip_grad_norm(clipped.data() + o, n, max_norm);
      dg.upload(g);
      dnorm.poison();
      tc::clip_grad_norm(offset(dg.get(), misalign), n, max_norm, dnorm.get(), ws.get(), s);
      s.sync();
      check_close("clip_grad_norm norm", dnorm.download(), vecf{cpu_norm}, {1e-7, 1e-5});
      check_close("clip_grad_norm grads", dg.download(), clipped, {1e-9, 2e-5});
    }
  }
}

TEST_CASE("clip_scale follows the CPU rule") {
  stream s;
  device_buffer<float> dnorm(1), dscale(1);
  const std::pair<float, float> cases[] = {{10.0f, 1.0f}, {0.5f, 1.0f}, {10.0f, 0.0f}};
  for (const auto& [norm, max_norm] : cases) {
    CAPTURE(norm);
    CAPTURE(max_norm);
    dnorm.upload(vecf{norm});
    dscale.poison();
    tc::clip_scale(dscale.get(), dnorm.get(), max_norm, s);
    s.sync();
    const float expected = max_norm > 0 && norm > max_norm ? max_norm / (norm + 1e-6f) : 1.0f;
    check_close("clip_scale", dscale.download(), vecf{expected}, {0, 1e-7});
  }
}

// ---- residual add and casts ----------------------------------------------------------------------

TEST_CASE_TEMPLATE("add_inplace matches the CPU kernel", T, DTYPES) {
  SEED_INFO();
  stream s;
  for (const auto& [n, misalign] : elementwise_sizes) {
    CAPTURE(n);
    CAPTURE(misalign);
    auto rng = fresh_rng();
    const i64 o = misalign ? 1 : 0;
    const auto y = normal_t<T>(rng, n + o, 0.0f, 1.0f), x = normal_t<T>(rng, n + o, 0.0f, 1.0f);
    vecf ref = to_floats(y);
    const vecf xf = to_floats(x);
    kc::add_inplace(ref.data(), xf.data(), n + o);
    device_buffer<T> dy(y), dx(x);
    tc::add_inplace(offset(dy.get(), misalign), offset(dx.get(), misalign), n, s);
    s.sync();
    auto got = to_floats(dy.download());
    got.erase(got.begin(), got.begin() + o);
    ref.erase(ref.begin(), ref.begin() + o);
    check_close("add_inplace", got, round_through<T>(ref), {0, 0});  // one fp32 add, one rounding: exact
  }
}

TEST_CASE_TEMPLATE("cast rounds like the host conversion, both ways", T, DTYPES) {
  SEED_INFO();
  stream s;
  for (const auto& [n, misalign] : elementwise_sizes) {
    CAPTURE(n);
    CAPTURE(misalign);
    auto rng = fresh_rng();
    const i64 o = misalign ? 1 : 0;
    const vecf f = normal(rng, n + o, 0.0f, 10.0f);
    device_buffer<float> df(f), dback(sz(n + o));
    device_buffer<T> dt(sz(n + o));
    dt.poison();
    dback.poison();
    tc::cast(offset(dt.get(), misalign), offset(df.get(), misalign), n, s);
    tc::cast(offset(dback.get(), misalign), offset(dt.get(), misalign), n, s);
    s.sync();
    vecf ref = round_through<T>(f);
    ref.erase(ref.begin(), ref.begin() + o);
    auto t = dt.download();
    t.erase(t.begin(), t.begin() + o);
    auto back = dback.download();
    back.erase(back.begin(), back.begin() + o);
    check_close("cast float -> T", t, ref, {0, 0});
    check_close("cast T -> float", back, ref, {0, 0});
  }
}

// ---- argument checks (on the host, before any launch) -------------------------------------------

TEST_CASE_TEMPLATE("bad arguments throw before launching, naming the argument, the value and the fix", T, DTYPES) {
  stream s;
  device_buffer<T> t(64);
  device_buffer<float> f(64);
  device_buffer<std::int32_t> ids(4);
  CHECK_THROWS_WITH_AS(tc::rmsnorm_forward(t.get(), f.get(), t.get(), f.get(), 4, 0, 1e-5f, s),
                       doctest::Contains("rmsnorm_forward: C = 0 must be at least 1"), tc::cuda_error);
  CHECK_THROWS_WITH_AS(tc::rmsnorm_forward(t.get(), f.get(), t.get(), f.get(), 4, 8, -1.0f, s),
                       doctest::Contains("eps = -1"), tc::cuda_error);
  CHECK_THROWS_WITH_AS(tc::rmsnorm_forward(static_cast<T*>(nullptr), f.get(), t.get(), f.get(), 4, 8, 1e-5f, s),
                       doctest::Contains("out is null; pass a device buffer of 32 elements"), tc::cuda_error);
  CHECK_THROWS_WITH_AS(
      tc::rmsnorm_backward(t.get(), f.get(), t.get(), t.get(), f.get(), f.get(), 1, i64{1} << 20, nullptr, s),
      doctest::Contains("C = 1048576 needs 4194304 bytes of shared memory"), tc::cuda_error);
  CHECK_THROWS_WITH_AS(tc::rope_forward(t.get(), 2, 2, 7, 10000.0f, 0, s), doctest::Contains("D = 7 is odd"),
                       tc::cuda_error);
  CHECK_THROWS_WITH_AS(tc::rope_backward(t.get(), 2, 2, 8, 0.0f, 0, s), doctest::Contains("theta = 0"), tc::cuda_error);
  CHECK_THROWS_WITH_AS(tc::swiglu_forward(t.get(), t.get(), t.get(), -3, s), doctest::Contains("n = -3"),
                       tc::cuda_error);
  CHECK_THROWS_WITH_AS(tc::embedding_forward(t.get(), ids.get(), t.get(), 4, 8, 0, s), doctest::Contains("V = 0"),
                       tc::cuda_error);
  CHECK_THROWS_WITH_AS(tc::cross_entropy(nullptr, t.get(), t.get(), ids.get(), 4, 8, 0.25f, s),
                       doctest::Contains("cross_entropy: losses is null"), tc::cuda_error);
  CHECK_THROWS_WITH_AS(tc::adamw(f.get(), t.get(), f.get(), f.get(), f.get(), 8, tc::adamw_config{}, 0, nullptr, s),
                       doctest::Contains("adamw: step = 0 must be at least 1"), tc::cuda_error);
  CHECK_THROWS_WITH_AS(
      tc::adamw(f.get(), t.get(), f.get(), f.get(), f.get(), 8, tc::adamw_config{.beta2 = 1.0f}, 1, nullptr, s),
      doctest::Contains("beta2 = 1"), tc::cuda_error);
  CHECK_THROWS_WITH_AS(tc::mean_loss(f.get(), f.get(), 0, s), doctest::Contains("mean_loss: n = 0"), tc::cuda_error);
}

}  // namespace
