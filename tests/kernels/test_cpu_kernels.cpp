// Tests for the fp32 CPU kernels in <trainperf/kernels/cpu/kernels.hpp>.
//
// Every expected value comes from a naive double-precision reference written here (plain loops,
// no Eigen, no blocking, full T x T attention matrix) or from central finite differences of such
// a reference; the kernels under test are never used to produce expected values. Inputs are
// deterministic (std::mt19937 with fixed seeds). Shapes are deliberately ragged: row counts and
// key counts straddle the kernels' row_block (64), q_block and kv_block (64), and the GEMM's
// register block (mr x nr), work items and cache blocks (kc, mc, nc).

#include <doctest/doctest.h>

#include <trainperf/kernels/cpu/kernels.hpp>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

namespace kc = trainperf::kernels::cpu;
using i64 = std::int64_t;
using vecf = std::vector<float>;
using vecd = std::vector<double>;
using veci = std::vector<std::int32_t>;

// ---- tolerances: |got - ref| <= atol + rtol * |ref| ------------------------------------------

struct tolerance {
  double atol;
  double rtol;
};
// Element-wise kernels: a handful of fp32 roundings per output.
constexpr tolerance tol_elem{2e-6, 2e-5};
// Kernels with fp32 reductions (GEMMs, dot products, online softmax, column sums).
constexpr tolerance tol_reduce{2e-5, 2e-4};
// fp32 kernel gradients against double-precision central differences of the reference forward.
constexpr tolerance tol_fd{5e-5, 5e-4};
// AdamW state and parameters after a few steps.
constexpr tolerance tol_adamw{1e-6, 1e-5};

// Central-difference step: truncation error O(h^2) ~ 1e-10, rounding ~ 1e-16 / h ~ 1e-11.
constexpr double fd_step = 1e-5;

std::size_t sz(i64 n) { return static_cast<std::size_t>(n); }

std::string describe(const std::string& what, std::size_t bad, std::size_t n, std::size_t first, double got, double ref,
                     double worst) {
  std::ostringstream os;
  os.precision(9);
  os << what << ": " << bad << " of " << n << " elements out of tolerance; first at [" << first << "] got " << got
     << " expected " << ref << "; worst |err|/limit = " << worst;
  return os.str();
}

// Checks every element of got against ref with the given tolerance (NaN never passes).
template <class Got>
void check_close(const std::string& what, const std::vector<Got>& got, const vecd& ref, tolerance tol) {
  REQUIRE_MESSAGE(got.size() == ref.size(), what << ": size mismatch");
  std::size_t bad = 0, first = 0;
  double worst = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double g = static_cast<double>(got[i]);
    const double err = std::fabs(g - ref[i]);
    const double limit = tol.atol + tol.rtol * std::fabs(ref[i]);
    const bool ok = err <= limit;  // false for NaN
    if (!ok) {
      if (bad == 0) first = i;
      ++bad;
    }
    worst = std::max(worst, ok ? err / limit : std::numeric_limits<double>::infinity());
  }
  CHECK_MESSAGE(bad == 0, describe(what, bad, ref.size(), first, bad ? static_cast<double>(got[first]) : 0.0,
                                   bad ? ref[first] : 0.0, worst));
}

void check_close_scalar(const std::string& what, double got, double ref, tolerance tol) {
  check_close(what, vecd{got}, vecd{ref}, tol);
}

vecf random_vec(std::size_t n, std::uint32_t seed, float scale = 1.0f, float offset = 0.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  vecf v(n);
  for (auto& x : v) x = offset + scale * dist(gen);
  return v;
}

veci random_tokens(std::size_t n, std::int32_t V, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<std::int32_t> dist(0, V - 1);
  veci v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

vecd to_d(const vecf& v) { return vecd(v.begin(), v.end()); }

vecd plus(const vecf& a, const vecd& b, double kb = 1.0) {
  vecd r(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) r[i] = static_cast<double>(a[i]) + kb * b[i];
  return r;
}

double dot(const vecd& a, const vecd& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Central differences of loss() with respect to every element of x, perturbed in place.
vecd numeric_grad(vecd& x, const std::function<double()>& loss) {
  vecd g(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + fd_step;
    const double lp = loss();
    x[i] = x0 - fd_step;
    const double lm = loss();
    x[i] = x0;
    g[i] = (lp - lm) / (2 * fd_step);
  }
  return g;
}

// ---- double-precision references ---------------------------------------------------------------

// out[t, o] = sum_i inp[t, i] * weight[o, i] + bias[o]
vecd ref_linear_forward(const vecd& inp, const vecd& weight, const vecd* bias, i64 T, i64 I, i64 O) {
  vecd out(sz(T * O));
  for (i64 t = 0; t < T; ++t)
    for (i64 o = 0; o < O; ++o) {
      double s = bias ? (*bias)[sz(o)] : 0.0;
      for (i64 i = 0; i < I; ++i) s += inp[sz(t * I + i)] * weight[sz(o * I + i)];
      out[sz(t * O + o)] = s;
    }
  return out;
}

void ref_linear_backward(vecd& dinp, vecd& dweight, vecd& dbias, const vecd& dout, const vecd& inp, const vecd& weight,
                         i64 T, i64 I, i64 O) {
  dinp.assign(sz(T * I), 0.0);
  dweight.assign(sz(O * I), 0.0);
  dbias.assign(sz(O), 0.0);
  for (i64 t = 0; t < T; ++t)
    for (i64 o = 0; o < O; ++o) {
      const double g = dout[sz(t * O + o)];
      dbias[sz(o)] += g;
      for (i64 i = 0; i < I; ++i) {
        dinp[sz(t * I + i)] += g * weight[sz(o * I + i)];
        dweight[sz(o * I + i)] += g * inp[sz(t * I + i)];
      }
    }
}

// out = x / sqrt(mean(x^2) + eps) * w, per row of C.
vecd ref_rmsnorm_forward(const vecd& x, const vecd& w, i64 T, i64 C, double eps, vecd* rstd = nullptr) {
  vecd out(sz(T * C));
  if (rstd) rstd->assign(sz(T), 0.0);
  for (i64 t = 0; t < T; ++t) {
    double ss = 0;
    for (i64 c = 0; c < C; ++c) ss += x[sz(t * C + c)] * x[sz(t * C + c)];
    const double rms = std::sqrt(ss / static_cast<double>(C) + eps);
    if (rstd) (*rstd)[sz(t)] = 1.0 / rms;
    for (i64 c = 0; c < C; ++c) out[sz(t * C + c)] = x[sz(t * C + c)] / rms * w[sz(c)];
  }
  return out;
}

// y_c = x_c r w_c with r = (mean(x^2) + eps)^(-1/2), dr/dx_c = -r^3 x_c / C.
void ref_rmsnorm_backward(vecd& dx, vecd& dw, const vecd& dout, const vecd& x, const vecd& w, i64 T, i64 C,
                          double eps) {
  dx.assign(sz(T * C), 0.0);
  dw.assign(sz(C), 0.0);
  for (i64 t = 0; t < T; ++t) {
    double ss = 0;
    for (i64 c = 0; c < C; ++c) ss += x[sz(t * C + c)] * x[sz(t * C + c)];
    const double r = 1.0 / std::sqrt(ss / static_cast<double>(C) + eps);
    double dr = 0;  // dL/dr
    for (i64 c = 0; c < C; ++c) dr += dout[sz(t * C + c)] * x[sz(t * C + c)] * w[sz(c)];
    for (i64 c = 0; c < C; ++c) {
      const double xc = x[sz(t * C + c)], g = dout[sz(t * C + c)];
      dx[sz(t * C + c)] = g * w[sz(c)] * r + dr * (-r * r * r * xc / static_cast<double>(C));
      dw[sz(c)] += g * xc * r;
    }
  }
}

// Half-split RoPE: (x_i, x_{i+D/2}) rotated by angle (pos0 + t) / theta^(2i/D); sign = -1 rotates
// back (the transpose, i.e. the gradient).
vecd ref_rope(const vecd& x, i64 T, i64 H, i64 D, double theta, i64 pos0, double sign) {
  vecd y = x;
  const i64 half = D / 2;
  for (i64 t = 0; t < T; ++t)
    for (i64 h = 0; h < H; ++h)
      for (i64 i = 0; i < half; ++i) {
        const double inv_freq = std::exp(-(2.0 * static_cast<double>(i) / static_cast<double>(D)) * std::log(theta));
        const double ang = static_cast<double>(pos0 + t) * inv_freq;
        const double c = std::cos(ang), s = sign * std::sin(ang);
        const std::size_t p = sz((t * H + h) * D + i), q = sz((t * H + h) * D + i + half);
        y[p] = x[p] * c - x[q] * s;
        y[q] = x[p] * s + x[q] * c;
      }
  return y;
}

double sigmoid(double g) { return 1.0 / (1.0 + std::exp(-g)); }

vecd ref_swiglu_forward(const vecd& gate, const vecd& up) {
  vecd out(gate.size());
  for (std::size_t i = 0; i < gate.size(); ++i) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
  return out;
}

void ref_swiglu_backward(vecd& dgate, vecd& dup, const vecd& dout, const vecd& gate, const vecd& up) {
  dgate.assign(gate.size(), 0.0);
  dup.assign(gate.size(), 0.0);
  for (std::size_t i = 0; i < gate.size(); ++i) {
    const double s = sigmoid(gate[i]);
    const double dsilu = s + gate[i] * s * (1.0 - s);  // d/dg [g s(g)]
    dgate[i] = dout[i] * up[i] * dsilu;
    dup[i] = dout[i] * gate[i] * s;
  }
}

vecd ref_embedding_forward(const veci& tokens, const vecd& table, i64 T, i64 C) {
  vecd out(sz(T * C));
  for (i64 t = 0; t < T; ++t)
    for (i64 c = 0; c < C; ++c) out[sz(t * C + c)] = table[sz(static_cast<i64>(tokens[sz(t)]) * C + c)];
  return out;
}

vecd ref_embedding_backward(const vecd& dout, const veci& tokens, i64 V, i64 T, i64 C) {
  vecd dtable(sz(V * C), 0.0);
  for (i64 t = 0; t < T; ++t)
    for (i64 c = 0; c < C; ++c) dtable[sz(static_cast<i64>(tokens[sz(t)]) * C + c)] += dout[sz(t * C + c)];
  return dtable;
}

struct attn_shape {
  i64 B, T, Hq, Hkv, D;
};

std::string show(const attn_shape& s) {
  std::ostringstream os;
  os << "B=" << s.B << " T=" << s.T << " Hq=" << s.Hq << " Hkv=" << s.Hkv << " D=" << s.D;
  return os.str();
}

i64 q_index(const attn_shape& s, i64 b, i64 t, i64 h) { return ((b * s.T + t) * s.Hq + h) * s.D; }
i64 kv_index(const attn_shape& s, i64 b, i64 t, i64 h) { return ((b * s.T + t) * s.Hkv + h) * s.D; }

// Full T x T probability matrix of (b, h) with the causal mask (masked entries exactly 0).
void ref_attention_probs(vecd& P, vecd& lse_bh, const vecd& q, const vecd& k, const attn_shape& s, i64 b, i64 h,
                         double scale) {
  const i64 T = s.T, hk = h / (s.Hq / s.Hkv);
  const double neg_inf = -std::numeric_limits<double>::infinity();
  vecd S(sz(T * T));
  for (i64 i = 0; i < T; ++i)
    for (i64 j = 0; j < T; ++j) {
      if (j > i) {
        S[sz(i * T + j)] = neg_inf;
        continue;
      }
      double d = 0;
      for (i64 e = 0; e < s.D; ++e) d += q[sz(q_index(s, b, i, h) + e)] * k[sz(kv_index(s, b, j, hk) + e)];
      S[sz(i * T + j)] = scale * d;
    }
  P.assign(sz(T * T), 0.0);
  lse_bh.assign(sz(T), 0.0);
  for (i64 i = 0; i < T; ++i) {
    double mx = neg_inf;
    for (i64 j = 0; j < T; ++j) mx = std::max(mx, S[sz(i * T + j)]);
    double sum = 0;
    for (i64 j = 0; j < T; ++j) sum += std::exp(S[sz(i * T + j)] - mx);  // exp(-inf) = 0
    lse_bh[sz(i)] = mx + std::log(sum);
    for (i64 j = 0; j < T; ++j) P[sz(i * T + j)] = std::exp(S[sz(i * T + j)] - mx) / sum;
  }
}

void ref_attention_forward(vecd& out, vecd& lse, const vecd& q, const vecd& k, const vecd& v, const attn_shape& s,
                           double scale) {
  out.assign(sz(s.B * s.T * s.Hq * s.D), 0.0);
  lse.assign(sz(s.B * s.Hq * s.T), 0.0);
  vecd P, l;
  for (i64 b = 0; b < s.B; ++b)
    for (i64 h = 0; h < s.Hq; ++h) {
      const i64 hk = h / (s.Hq / s.Hkv);
      ref_attention_probs(P, l, q, k, s, b, h, scale);
      for (i64 i = 0; i < s.T; ++i) {
        lse[sz((b * s.Hq + h) * s.T + i)] = l[sz(i)];
        for (i64 e = 0; e < s.D; ++e) {
          double acc = 0;
          for (i64 j = 0; j < s.T; ++j) acc += P[sz(i * s.T + j)] * v[sz(kv_index(s, b, j, hk) + e)];
          out[sz(q_index(s, b, i, h) + e)] = acc;
        }
      }
    }
}

// Softmax backward written on the full matrices: dP = dO V^T, dS = P o (dP - rowsum(P o dP)).
void ref_attention_backward(vecd& dq, vecd& dk, vecd& dv, const vecd& dout, const vecd& q, const vecd& k, const vecd& v,
                            const attn_shape& s, double scale) {
  const i64 T = s.T;
  dq.assign(sz(s.B * T * s.Hq * s.D), 0.0);
  dk.assign(sz(s.B * T * s.Hkv * s.D), 0.0);
  dv.assign(sz(s.B * T * s.Hkv * s.D), 0.0);
  vecd P, l, dP(sz(T * T)), dS(sz(T * T));
  for (i64 b = 0; b < s.B; ++b)
    for (i64 h = 0; h < s.Hq; ++h) {
      const i64 hk = h / (s.Hq / s.Hkv);
      ref_attention_probs(P, l, q, k, s, b, h, scale);
      for (i64 i = 0; i < T; ++i)
        for (i64 j = 0; j < T; ++j) {
          double d = 0;
          for (i64 e = 0; e < s.D; ++e) d += dout[sz(q_index(s, b, i, h) + e)] * v[sz(kv_index(s, b, j, hk) + e)];
          dP[sz(i * T + j)] = d;
        }
      for (i64 i = 0; i < T; ++i) {
        double row = 0;
        for (i64 j = 0; j < T; ++j) row += P[sz(i * T + j)] * dP[sz(i * T + j)];
        for (i64 j = 0; j < T; ++j) dS[sz(i * T + j)] = P[sz(i * T + j)] * (dP[sz(i * T + j)] - row);
      }
      for (i64 i = 0; i < T; ++i)
        for (i64 j = 0; j < T; ++j)
          for (i64 e = 0; e < s.D; ++e) {
            dv[sz(kv_index(s, b, j, hk) + e)] += P[sz(i * T + j)] * dout[sz(q_index(s, b, i, h) + e)];
            dq[sz(q_index(s, b, i, h) + e)] += scale * dS[sz(i * T + j)] * k[sz(kv_index(s, b, j, hk) + e)];
            dk[sz(kv_index(s, b, j, hk) + e)] += scale * dS[sz(i * T + j)] * q[sz(q_index(s, b, i, h) + e)];
          }
    }
}

// Per-row losses logsumexp(z) - z[target]; returns their mean; dlogits = dloss (softmax - onehot).
double ref_cross_entropy(vecd& losses, vecd* dlogits, const vecd& logits, const veci& targets, i64 T, i64 V,
                         double dloss) {
  losses.assign(sz(T), 0.0);
  if (dlogits) dlogits->assign(sz(T * V), 0.0);
  double total = 0;
  for (i64 t = 0; t < T; ++t) {
    double mx = -std::numeric_limits<double>::infinity();
    for (i64 j = 0; j < V; ++j) mx = std::max(mx, logits[sz(t * V + j)]);
    double sum = 0;
    for (i64 j = 0; j < V; ++j) sum += std::exp(logits[sz(t * V + j)] - mx);
    const double lse = mx + std::log(sum);
    losses[sz(t)] = lse - logits[sz(t * V + targets[sz(t)])];
    total += losses[sz(t)];
    if (dlogits) {
      for (i64 j = 0; j < V; ++j)
        (*dlogits)[sz(t * V + j)] = dloss * (std::exp(logits[sz(t * V + j)] - lse) - (j == targets[sz(t)] ? 1.0 : 0.0));
    }
  }
  return total / static_cast<double>(T);
}

struct adamw_state {
  vecd p, m, v;
};

void ref_adamw_step(adamw_state& st, const vecd& g, const kc::adamw_config& c, int step) {
  const double b1 = c.beta1, b2 = c.beta2, lr = c.lr, eps = c.eps, wd = c.weight_decay;
  double b1t = 1, b2t = 1;
  for (int s = 0; s < step; ++s) {
    b1t *= b1;
    b2t *= b2;
  }
  for (std::size_t i = 0; i < g.size(); ++i) {
    st.m[i] = b1 * st.m[i] + (1 - b1) * g[i];
    st.v[i] = b2 * st.v[i] + (1 - b2) * g[i] * g[i];
    const double mhat = st.m[i] / (1 - b1t), vhat = st.v[i] / (1 - b2t);
    st.p[i] -= lr * (mhat / (std::sqrt(vhat) + eps) + wd * st.p[i]);
  }
}

double l2(const vecf& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

}  // namespace

// =================================================================================================
// linear
// =================================================================================================

TEST_CASE("cpu kernels: gemm::multiply matches a double reference for every operand layout, overwrite and accumulate") {
  namespace g = kc::gemm;
  struct shape {
    i64 m, n, k;
  };
  // 1 x 1 x 1; one register block +- 1; past a work item (4 mr x 8 nr); k past kc; m past mc and
  // n past nc (one shape, to keep the double reference cheap); k = 0.
  const shape shapes[] = {{1, 1, 1},
                          {g::mr - 1, g::nr + 1, 3},
                          {g::mr + 1, g::nr - 1, 17},
                          {g::item_rows + 5, g::item_cols + 7, g::kc + 3},
                          {g::mc + 3, 37, 9},
                          {29, g::nc + 5, 2 * g::kc + 1},
                          {5, 7, 0}};
  std::uint32_t seed = 50;
  for (const auto& s : shapes)
    for (bool a_transposed : {false, true})
      for (bool b_transposed : {false, true})
        for (bool accumulate : {false, true}) {
          CAPTURE(s.m);
          CAPTURE(s.n);
          CAPTURE(s.k);
          CAPTURE(a_transposed);
          CAPTURE(b_transposed);
          CAPTURE(accumulate);
          const vecf a = random_vec(sz(s.m * s.k), ++seed), b = random_vec(sz(s.k * s.n), ++seed);
          const i64 ldc = s.n + 3;  // C with a leading dimension past n: the gap must be left alone
          const vecf c0 = random_vec(sz(s.m * ldc), ++seed);
          // Stored as given: A row-major [m, k] or column-major (its transpose stored row-major).
          const g::view av = a_transposed ? g::view{a.data(), 1, s.m} : g::view{a.data(), s.k, 1};
          const g::view bv = b_transposed ? g::view{b.data(), 1, s.k} : g::view{b.data(), s.n, 1};
          vecd ref(c0.begin(), c0.end());
          for (i64 i = 0; i < s.m; ++i)
            for (i64 j = 0; j < s.n; ++j) {
              double acc = accumulate ? static_cast<double>(c0[sz(i * ldc + j)]) : 0.0;
              for (i64 p = 0; p < s.k; ++p)
                acc += static_cast<double>(a[sz(i * av.rs + p * av.cs)]) * b[sz(p * bv.rs + j * bv.cs)];
              ref[sz(i * ldc + j)] = acc;
            }
          vecf c = c0;
          g::multiply(c.data(), ldc, av, bv, s.m, s.n, s.k, accumulate);
          check_close("gemm::multiply", c, ref, tol_reduce);
        }
}

TEST_CASE("cpu kernels: linear_forward matches a double reference (ragged shapes, with and without bias)") {
  struct shape {
    i64 T, I, O;
  };
  const shape shapes[] = {{1, 3, 5}, {4, 3, 5}, {7, 5, 3}, {65, 67, 33}, {130, 33, 67}, {129, 64, 65}};
  std::uint32_t seed = 100;
  for (const auto& s : shapes)
    for (bool with_bias : {true, false}) {
      CAPTURE(s.T);
      CAPTURE(s.I);
      CAPTURE(s.O);
      CAPTURE(with_bias);
      const vecf x = random_vec(sz(s.T * s.I), ++seed), w = random_vec(sz(s.O * s.I), ++seed, 0.5f),
                 b = random_vec(sz(s.O), ++seed);
      vecf out(sz(s.T * s.O), 12345.0f);  // forward overwrites
      kc::linear_forward(out.data(), x.data(), w.data(), with_bias ? b.data() : nullptr, s.T, s.I, s.O);
      const vecd bd = to_d(b);
      const vecd ref = ref_linear_forward(to_d(x), to_d(w), with_bias ? &bd : nullptr, s.T, s.I, s.O);
      check_close("linear_forward out", out, ref, tol_reduce);
    }
}

TEST_CASE("cpu kernels: linear_backward matches a double reference and accumulates") {
  struct shape {
    i64 T, I, O;
  };
  const shape shapes[] = {{1, 3, 5}, {4, 3, 5}, {7, 5, 3}, {65, 67, 33}, {130, 33, 67}, {129, 64, 65}};
  std::uint32_t seed = 200;
  for (const auto& s : shapes) {
    CAPTURE(s.T);
    CAPTURE(s.I);
    CAPTURE(s.O);
    const vecf x = random_vec(sz(s.T * s.I), ++seed), w = random_vec(sz(s.O * s.I), ++seed, 0.5f),
               dout = random_vec(sz(s.T * s.O), ++seed);
    vecd rdx, rdw, rdb;
    ref_linear_backward(rdx, rdw, rdb, to_d(dout), to_d(x), to_d(w), s.T, s.I, s.O);

    // Pre-filled gradients: the kernel must add to them.
    const vecf dx0 = random_vec(sz(s.T * s.I), ++seed), dw0 = random_vec(sz(s.O * s.I), ++seed),
               db0 = random_vec(sz(s.O), ++seed);
    vecf dx = dx0, dw = dw0, db = db0;
    kc::linear_backward(dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(), s.T, s.I, s.O);
    check_close("linear_backward dinp (accumulated once)", dx, plus(dx0, rdx), tol_reduce);
    check_close("linear_backward dweight (accumulated once)", dw, plus(dw0, rdw), tol_reduce);
    check_close("linear_backward dbias (accumulated once)", db, plus(db0, rdb), tol_reduce);

    // A second call adds the same gradient again.
    kc::linear_backward(dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(), s.T, s.I, s.O);
    check_close("linear_backward dinp (accumulated twice)", dx, plus(dx0, rdx, 2.0), tol_reduce);
    check_close("linear_backward dweight (accumulated twice)", dw, plus(dw0, rdw, 2.0), tol_reduce);
    check_close("linear_backward dbias (accumulated twice)", db, plus(db0, rdb, 2.0), tol_reduce);

    // dinp and dbias may be null: dweight is still right.
    vecf dw_only(sz(s.O * s.I), 0.0f);
    kc::linear_backward(nullptr, dw_only.data(), nullptr, dout.data(), x.data(), w.data(), s.T, s.I, s.O);
    check_close("linear_backward dweight (null dinp, null dbias)", dw_only, rdw, tol_reduce);
  }
}

TEST_CASE("cpu kernels: linear_backward matches central finite differences") {
  struct shape {
    i64 T, I, O;
  };
  // Small shapes; 66 rows / 66 outputs straddle row_block in both of the backward's row loops.
  const shape shapes[] = {{3, 5, 4}, {2, 3, 5}, {66, 3, 2}, {2, 3, 66}};
  std::uint32_t seed = 300;
  for (const auto& s : shapes) {
    CAPTURE(s.T);
    CAPTURE(s.I);
    CAPTURE(s.O);
    const vecf x = random_vec(sz(s.T * s.I), ++seed), w = random_vec(sz(s.O * s.I), ++seed, 0.5f),
               b = random_vec(sz(s.O), ++seed), dout = random_vec(sz(s.T * s.O), ++seed);
    vecf dx(sz(s.T * s.I), 0.0f), dw(sz(s.O * s.I), 0.0f), db(sz(s.O), 0.0f);
    kc::linear_backward(dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(), s.T, s.I, s.O);

    vecd xd = to_d(x), wd = to_d(w), bd = to_d(b);
    const vecd doutd = to_d(dout);
    const auto loss = [&] { return dot(doutd, ref_linear_forward(xd, wd, &bd, s.T, s.I, s.O)); };
    check_close("linear_backward dinp vs finite differences", dx, numeric_grad(xd, loss), tol_fd);
    check_close("linear_backward dweight vs finite differences", dw, numeric_grad(wd, loss), tol_fd);
    check_close("linear_backward dbias vs finite differences", db, numeric_grad(bd, loss), tol_fd);
  }
}

// =================================================================================================
// residual add
// =================================================================================================

TEST_CASE("cpu kernels: add_inplace adds x into y") {
  std::uint32_t seed = 350;
  for (i64 n : {i64{1}, i64{7}, i64{1000}, i64{4097}}) {
    CAPTURE(n);
    const vecf y0 = random_vec(sz(n), ++seed), x = random_vec(sz(n), ++seed, 3.0f);
    vecf y = y0;
    kc::add_inplace(y.data(), x.data(), n);
    check_close("add_inplace (once)", y, plus(y0, to_d(x)), tol_elem);
    kc::add_inplace(y.data(), x.data(), n);
    check_close("add_inplace (twice)", y, plus(y0, to_d(x), 2.0), tol_elem);
  }
}

// =================================================================================================
// RMSNorm
// =================================================================================================

TEST_CASE("cpu kernels: rmsnorm_forward matches a double reference") {
  struct shape {
    i64 T, C;
  };
  const shape shapes[] = {{1, 8}, {7, 16}, {65, 5}, {130, 67}};
  const float eps = 1e-5f;
  std::uint32_t seed = 400;
  for (const auto& s : shapes) {
    CAPTURE(s.T);
    CAPTURE(s.C);
    const vecf x = random_vec(sz(s.T * s.C), ++seed, 2.0f), w = random_vec(sz(s.C), ++seed, 0.5f, 1.0f);
    vecf out(sz(s.T * s.C), 12345.0f), rstd(sz(s.T), 12345.0f);
    kc::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), s.T, s.C, eps);
    vecd rrstd;
    const vecd ref = ref_rmsnorm_forward(to_d(x), to_d(w), s.T, s.C, static_cast<double>(eps), &rrstd);
    check_close("rmsnorm_forward out", out, ref, tol_elem);
    check_close("rmsnorm_forward rstd", rstd, rrstd, tol_elem);
  }
  {
    INFO("eps matters for a zero row: rstd = 1/sqrt(eps), out = 0");
    const vecf x(8, 0.0f), w(8, 1.0f);
    vecf out(8, 1.0f), rstd(1, 0.0f);
    kc::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), 1, 8, 0.25f);
    CHECK(rstd[0] == doctest::Approx(2.0).epsilon(1e-6));
    for (float o : out) CHECK(o == 0.0f);
  }
}

TEST_CASE("cpu kernels: rmsnorm_backward matches a double reference and accumulates") {
  struct shape {
    i64 T, C;
  };
  const shape shapes[] = {{1, 8}, {7, 16}, {65, 5}, {130, 67}};
  const float eps = 1e-5f;
  std::uint32_t seed = 500;
  for (const auto& s : shapes) {
    CAPTURE(s.T);
    CAPTURE(s.C);
    const vecf x = random_vec(sz(s.T * s.C), ++seed, 2.0f), w = random_vec(sz(s.C), ++seed, 0.5f, 1.0f),
               dout = random_vec(sz(s.T * s.C), ++seed);
    vecf out(sz(s.T * s.C)), rstd(sz(s.T));
    kc::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), s.T, s.C, eps);

    vecd rdx, rdw;
    ref_rmsnorm_backward(rdx, rdw, to_d(dout), to_d(x), to_d(w), s.T, s.C, static_cast<double>(eps));
    const vecf dx0 = random_vec(sz(s.T * s.C), ++seed), dw0 = random_vec(sz(s.C), ++seed);
    vecf dx = dx0, dw = dw0;
    kc::rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), s.T, s.C);
    check_close("rmsnorm_backward dinp (accumulated once)", dx, plus(dx0, rdx), tol_reduce);
    check_close("rmsnorm_backward dweight (accumulated once)", dw, plus(dw0, rdw), tol_reduce);
    kc::rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), s.T, s.C);
    check_close("rmsnorm_backward dinp (accumulated twice)", dx, plus(dx0, rdx, 2.0), tol_reduce);
    check_close("rmsnorm_backward dweight (accumulated twice)", dw, plus(dw0, rdw, 2.0), tol_reduce);
  }
}

TEST_CASE("cpu kernels: rmsnorm_backward matches central finite differences") {
  struct shape {
    i64 T, C;
  };
  const shape shapes[] = {{3, 8}, {2, 5}, {66, 4}, {1, 16}};
  const float eps = 1e-5f;
  std::uint32_t seed = 600;
  for (const auto& s : shapes) {
    CAPTURE(s.T);
    CAPTURE(s.C);
    const vecf x = random_vec(sz(s.T * s.C), ++seed, 2.0f), w = random_vec(sz(s.C), ++seed, 0.5f, 1.0f),
               dout = random_vec(sz(s.T * s.C), ++seed);
    vecf out(sz(s.T * s.C)), rstd(sz(s.T));
    kc::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), s.T, s.C, eps);
    vecf dx(sz(s.T * s.C), 0.0f), dw(sz(s.C), 0.0f);
    kc::rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), s.T, s.C);

    vecd xd = to_d(x), wd = to_d(w);
    const vecd doutd = to_d(dout);
    const auto loss = [&] { return dot(doutd, ref_rmsnorm_forward(xd, wd, s.T, s.C, static_cast<double>(eps))); };
    check_close("rmsnorm_backward dinp vs finite differences", dx, numeric_grad(xd, loss), tol_fd);
    check_close("rmsnorm_backward dweight vs finite differences", dw, numeric_grad(wd, loss), tol_fd);
  }
}

// =================================================================================================
// RoPE
// =================================================================================================

namespace {
struct rope_shape {
  i64 T, H, D;
  float theta;
  i64 pos0;
};
const rope_shape rope_shapes[] = {{1, 1, 2, 10000.0f, 0},    {7, 4, 8, 10000.0f, 0},     {65, 2, 16, 10000.0f, 3},
                                  {130, 3, 8, 500000.0f, 0}, {5, 2, 16, 10000.0f, 1000}, {3, 1, 6, 100.0f, 0}};
}  // namespace

TEST_CASE("cpu kernels: rope_forward matches a double reference") {
  std::uint32_t seed = 700;
  for (const auto& s : rope_shapes) {
    CAPTURE(s.T);
    CAPTURE(s.H);
    CAPTURE(s.D);
    CAPTURE(s.theta);
    CAPTURE(s.pos0);
    const vecf x0 = random_vec(sz(s.T * s.H * s.D), ++seed);
    vecf x = x0;
    kc::rope_forward(x.data(), s.T, s.H, s.D, s.theta, s.pos0);
    check_close("rope_forward", x, ref_rope(to_d(x0), s.T, s.H, s.D, static_cast<double>(s.theta), s.pos0, 1.0),
                tol_elem);
  }
  {
    INFO("position 0 is the identity; half-split pairing at position 1");
    // T = 2, H = 1, D = 4, theta = 1: every pair rotates by exactly 1 radian at t = 1; pairs are
    // (0, 2) and (1, 3), not adjacent elements.
    vecf x = {1, 2, 3, 4, 1, 0, 0, 0};
    kc::rope_forward(x.data(), 2, 1, 4, 1.0f, 0);
    const double c = std::cos(1.0), sn = std::sin(1.0);
    check_close("rope identity at t=0 and 1-radian rotation at t=1", x, vecd{1, 2, 3, 4, c, 0, sn, 0}, tol_elem);
  }
}

TEST_CASE("cpu kernels: rope_backward matches the transposed rotation and finite differences") {
  std::uint32_t seed = 800;
  for (const auto& s : rope_shapes) {
    CAPTURE(s.T);
    CAPTURE(s.H);
    CAPTURE(s.D);
    CAPTURE(s.pos0);
    const vecf g0 = random_vec(sz(s.T * s.H * s.D), ++seed);
    vecf g = g0;
    kc::rope_backward(g.data(), s.T, s.H, s.D, s.theta, s.pos0);
    check_close("rope_backward", g, ref_rope(to_d(g0), s.T, s.H, s.D, static_cast<double>(s.theta), s.pos0, -1.0),
                tol_elem);
  }
  // Finite differences of L = sum(dout * rope(x)) on small shapes.
  const rope_shape fd_shapes[] = {{3, 2, 8, 10000.0f, 2}, {4, 1, 4, 10.0f, 0}};
  for (const auto& s : fd_shapes) {
    CAPTURE(s.T);
    CAPTURE(s.D);
    const vecf x = random_vec(sz(s.T * s.H * s.D), ++seed), dout = random_vec(sz(s.T * s.H * s.D), ++seed);
    vecf dx = dout;
    kc::rope_backward(dx.data(), s.T, s.H, s.D, s.theta, s.pos0);
    vecd xd = to_d(x);
    const vecd doutd = to_d(dout);
    const auto loss = [&] {
      return dot(doutd, ref_rope(xd, s.T, s.H, s.D, static_cast<double>(s.theta), s.pos0, 1.0));
    };
    check_close("rope_backward vs finite differences", dx, numeric_grad(xd, loss), tol_fd);
  }
}

TEST_CASE("cpu kernels: rope preserves each head's norm and rope_backward inverts rope_forward") {
  std::uint32_t seed = 900;
  for (const auto& s : rope_shapes) {
    CAPTURE(s.T);
    CAPTURE(s.H);
    CAPTURE(s.D);
    CAPTURE(s.pos0);
    const vecf x0 = random_vec(sz(s.T * s.H * s.D), ++seed);
    vecf x = x0;
    kc::rope_forward(x.data(), s.T, s.H, s.D, s.theta, s.pos0);
    vecd norm_before(sz(s.T * s.H)), norm_after(sz(s.T * s.H));
    for (i64 r = 0; r < s.T * s.H; ++r) {
      double a = 0, b = 0;
      for (i64 d = 0; d < s.D; ++d) {
        a += static_cast<double>(x0[sz(r * s.D + d)]) * x0[sz(r * s.D + d)];
        b += static_cast<double>(x[sz(r * s.D + d)]) * x[sz(r * s.D + d)];
      }
      norm_before[sz(r)] = std::sqrt(a);
      norm_after[sz(r)] = std::sqrt(b);
    }
    check_close("rope_forward preserves per-head norms", norm_after, norm_before, tol_elem);
    kc::rope_backward(x.data(), s.T, s.H, s.D, s.theta, s.pos0);
    check_close("rope_backward(rope_forward(x)) == x", x, to_d(x0), tol_elem);
  }
}

// =================================================================================================
// SwiGLU
// =================================================================================================

TEST_CASE("cpu kernels: swiglu_forward matches a double reference") {
  std::uint32_t seed = 1000;
  for (i64 n : {i64{1}, i64{7}, i64{1000}, i64{4097}}) {
    CAPTURE(n);
    const vecf gate = random_vec(sz(n), ++seed, 6.0f), up = random_vec(sz(n), ++seed, 2.0f);
    vecf out(sz(n), 12345.0f);
    kc::swiglu_forward(out.data(), gate.data(), up.data(), n);
    check_close("swiglu_forward", out, ref_swiglu_forward(to_d(gate), to_d(up)), tol_elem);
  }
  {
    INFO("saturated gates stay finite");
    const vecf gate = {-80.0f, -20.0f, -5.0f, 0.0f, 5.0f, 20.0f, 80.0f},
               up = {1.5f, -1.0f, 2.0f, 3.0f, -0.5f, 1.0f, 0.25f};
    vecf out(gate.size());
    kc::swiglu_forward(out.data(), gate.data(), up.data(), static_cast<i64>(gate.size()));
    check_close("swiglu_forward saturated", out, ref_swiglu_forward(to_d(gate), to_d(up)), tol_elem);
  }
}

TEST_CASE("cpu kernels: swiglu_backward matches a double reference, accumulates, and matches finite differences") {
  std::uint32_t seed = 1100;
  for (i64 n : {i64{1}, i64{7}, i64{1000}, i64{4097}}) {
    CAPTURE(n);
    const vecf gate = random_vec(sz(n), ++seed, 6.0f), up = random_vec(sz(n), ++seed, 2.0f),
               dout = random_vec(sz(n), ++seed);
    vecd rdg, rdu;
    ref_swiglu_backward(rdg, rdu, to_d(dout), to_d(gate), to_d(up));
    const vecf dg0 = random_vec(sz(n), ++seed), du0 = random_vec(sz(n), ++seed);
    vecf dg = dg0, du = du0;
    kc::swiglu_backward(dg.data(), du.data(), dout.data(), gate.data(), up.data(), n);
    check_close("swiglu_backward dgate (accumulated once)", dg, plus(dg0, rdg), tol_elem);
    check_close("swiglu_backward dup (accumulated once)", du, plus(du0, rdu), tol_elem);
    kc::swiglu_backward(dg.data(), du.data(), dout.data(), gate.data(), up.data(), n);
    check_close("swiglu_backward dgate (accumulated twice)", dg, plus(dg0, rdg, 2.0), tol_elem);
    check_close("swiglu_backward dup (accumulated twice)", du, plus(du0, rdu, 2.0), tol_elem);
  }
  {
    INFO("saturated gates");
    const vecf gate = {-80.0f, -20.0f, -5.0f, 0.0f, 5.0f, 20.0f, 80.0f},
               up = {1.5f, -1.0f, 2.0f, 3.0f, -0.5f, 1.0f, 0.25f}, dout = {0.5f, -1.0f, 1.0f, 0.75f, -2.0f, 1.0f, 1.0f};
    vecd rdg, rdu;
    ref_swiglu_backward(rdg, rdu, to_d(dout), to_d(gate), to_d(up));
    vecf dg(gate.size(), 0.0f), du(gate.size(), 0.0f);
    kc::swiglu_backward(dg.data(), du.data(), dout.data(), gate.data(), up.data(), static_cast<i64>(gate.size()));
    check_close("swiglu_backward dgate saturated", dg, rdg, tol_elem);
    check_close("swiglu_backward dup saturated", du, rdu, tol_elem);
  }
  {
    INFO("finite differences");
    const i64 n = 13;
    const vecf gate = random_vec(sz(n), 1190, 4.0f), up = random_vec(sz(n), 1191, 2.0f), dout = random_vec(sz(n), 1192);
    vecf dg(sz(n), 0.0f), du(sz(n), 0.0f);
    kc::swiglu_backward(dg.data(), du.data(), dout.data(), gate.data(), up.data(), n);
    vecd gd = to_d(gate), ud = to_d(up);
    const vecd doutd = to_d(dout);
    const auto loss = [&] { return dot(doutd, ref_swiglu_forward(gd, ud)); };
    check_close("swiglu_backward dgate vs finite differences", dg, numeric_grad(gd, loss), tol_fd);
    check_close("swiglu_backward dup vs finite differences", du, numeric_grad(ud, loss), tol_fd);
  }
}

// =================================================================================================
// embedding
// =================================================================================================

TEST_CASE("cpu kernels: embedding_forward copies the table rows exactly") {
  struct shape {
    i64 V, T, C;
  };
  const shape shapes[] = {{11, 1, 8}, {11, 30, 8}, {257, 130, 16}, {5, 65, 3}};
  std::uint32_t seed = 1200;
  for (const auto& s : shapes) {
    CAPTURE(s.V);
    CAPTURE(s.T);
    CAPTURE(s.C);
    const vecf table = random_vec(sz(s.V * s.C), ++seed);
    const veci tokens = random_tokens(sz(s.T), static_cast<std::int32_t>(s.V), ++seed);
    vecf out(sz(s.T * s.C), 12345.0f);
    kc::embedding_forward(out.data(), tokens.data(), table.data(), s.T, s.C);
    // A gather is exact: no tolerance.
    check_close("embedding_forward", out, ref_embedding_forward(tokens, to_d(table), s.T, s.C), tolerance{0.0, 0.0});
  }
}

TEST_CASE("cpu kernels: a vocabulary-parallel embedding's shards add up to the whole table's lookup and gradient") {
  // V = 257 rows in shards of 100, 100 and 57 rows (Megatron-LM's VocabParallelEmbedding: a
  // shard gives zero rows for tokens it does not hold, and the all-reduce adds the shards).
  const i64 V = 257, T = 130, C = 16;
  const i64 first[] = {0, 100, 200}, rows[] = {100, 100, 57};
  const vecf table = random_vec(sz(V * C), 1350);
  const veci tokens = random_tokens(sz(T), static_cast<std::int32_t>(V), 1351);
  const vecf dout = random_vec(sz(T * C), 1352);
  const vecd ref = ref_embedding_forward(tokens, to_d(table), T, C);
  const vecd dref = ref_embedding_backward(to_d(dout), tokens, V, T, C);
  vecd added(sz(T * C), 0.0);
  for (int r = 0; r < 3; ++r) {
    CAPTURE(r);
    vecf out(sz(T * C), 12345.0f);
    kc::embedding_forward(out.data(), tokens.data(), table.data() + first[r] * C, T, C, first[r], rows[r]);
    for (std::size_t i = 0; i < out.size(); ++i) added[i] += out[i];
    vecf dt(sz(rows[r] * C), 0.0f);
    kc::embedding_backward(dt.data(), dout.data(), tokens.data(), T, C, first[r], rows[r]);
    const vecd dmine(dref.begin() + first[r] * C, dref.begin() + (first[r] + rows[r]) * C);
    check_close("embedding_backward shard", dt, dmine, tol_elem);
  }
  // Each token is in exactly one shard, the others add zeros: exact.
  check_close("embedding_forward shards added", added, ref, tolerance{0.0, 0.0});
}

TEST_CASE(
    "cpu kernels: embedding_backward scatters with repeated tokens, accumulates, and matches finite differences") {
  struct shape {
    i64 V, T, C;
  };
  const shape shapes[] = {{11, 1, 8}, {11, 30, 8}, {257, 130, 16}, {5, 65, 3}};
  std::uint32_t seed = 1300;
  for (const auto& s : shapes) {
    CAPTURE(s.V);
    CAPTURE(s.T);
    CAPTURE(s.C);
    const veci tokens = random_tokens(sz(s.T), static_cast<std::int32_t>(s.V), ++seed);
    const vecf dout = random_vec(sz(s.T * s.C), ++seed);
    const vecd ref = ref_embedding_backward(to_d(dout), tokens, s.V, s.T, s.C);
    const vecf dt0 = random_vec(sz(s.V * s.C), ++seed);
    vecf dt = dt0;
    kc::embedding_backward(dt.data(), dout.data(), tokens.data(), s.T, s.C);
    check_close("embedding_backward (accumulated once)", dt, plus(dt0, ref), tol_elem);
    kc::embedding_backward(dt.data(), dout.data(), tokens.data(), s.T, s.C);
    check_close("embedding_backward (accumulated twice)", dt, plus(dt0, ref, 2.0), tol_elem);
  }
  {
    INFO("explicit repeated token");
    const veci tokens = {2, 0, 2, 2};
    const vecf dout = {1, 10, 100, 1000, 2, 20, 3, 30};  // T = 4, C = 2
    vecf dt(3 * 2, 0.0f);
    kc::embedding_backward(dt.data(), dout.data(), tokens.data(), 4, 2);
    check_close("embedding_backward repeated token", dt, vecd{100, 1000, 0, 0, 1 + 2 + 3, 10 + 20 + 30}, tol_elem);
  }
  {
    INFO("finite differences");
    const i64 V = 5, T = 9, C = 3;
    const veci tokens = random_tokens(sz(T), V, 1390);
    const vecf table = random_vec(sz(V * C), 1391), dout = random_vec(sz(T * C), 1392);
    vecf dt(sz(V * C), 0.0f);
    kc::embedding_backward(dt.data(), dout.data(), tokens.data(), T, C);
    vecd td = to_d(table);
    const vecd doutd = to_d(dout);
    const auto loss = [&] { return dot(doutd, ref_embedding_forward(tokens, td, T, C)); };
    check_close("embedding_backward vs finite differences", dt, numeric_grad(td, loss), tol_fd);
  }
}

// =================================================================================================
// attention
// =================================================================================================

namespace {
struct attn_inputs {
  vecf q, k, v;
};
attn_inputs make_attn_inputs(const attn_shape& s, std::uint32_t seed, float q_scale) {
  return {random_vec(sz(s.B * s.T * s.Hq * s.D), seed, q_scale), random_vec(sz(s.B * s.T * s.Hkv * s.D), seed + 1),
          random_vec(sz(s.B * s.T * s.Hkv * s.D), seed + 2)};
}
float attn_scale(const attn_shape& s) { return 1.0f / std::sqrt(static_cast<float>(s.D)); }

// T = 65 and 130 cross kv_block (64) once and twice; Hq = 4 with Hkv = 1, 2, 4 covers MQA, GQA, MHA.
const attn_shape attn_shapes[] = {{1, 1, 4, 1, 8},   {2, 7, 4, 2, 8},    {1, 7, 4, 4, 16},  {1, 65, 4, 1, 16},
                                  {2, 130, 4, 2, 8}, {1, 130, 4, 4, 16}, {1, 129, 2, 1, 8}, {1, 64, 4, 2, 8}};
}  // namespace

TEST_CASE("cpu kernels: attention_forward matches a full-matrix double reference (causal, GQA)") {
  std::uint32_t seed = 1400;
  for (const auto& s : attn_shapes)
    for (float q_scale : {1.0f, 4.0f}) {  // 4x: peaked softmax, exercises the online rescaling
      INFO(show(s));
      CAPTURE(q_scale);
      seed += 3;
      const attn_inputs in = make_attn_inputs(s, seed, q_scale);
      vecf out(sz(s.B * s.T * s.Hq * s.D), 12345.0f), lse(sz(s.B * s.Hq * s.T), 12345.0f);
      kc::attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), s.B, s.T, s.Hq, s.Hkv, s.D,
                            attn_scale(s));
      vecd rout, rlse;
      ref_attention_forward(rout, rlse, to_d(in.q), to_d(in.k), to_d(in.v), s, static_cast<double>(attn_scale(s)));
      check_close("attention_forward out", out, rout, tol_reduce);
      check_close("attention_forward lse", lse, rlse, tol_reduce);
    }
}

TEST_CASE("cpu kernels: attention_forward with T=1 returns v (of the query head's KV head)") {
  const attn_shape shapes[] = {{1, 1, 4, 1, 8}, {3, 1, 4, 2, 16}, {2, 1, 4, 4, 8}};
  std::uint32_t seed = 1500;
  for (const auto& s : shapes) {
    INFO(show(s));
    seed += 3;
    const attn_inputs in = make_attn_inputs(s, seed, 3.0f);
    vecf out(sz(s.B * s.Hq * s.D), 12345.0f), lse(sz(s.B * s.Hq), 12345.0f);
    const float scale = attn_scale(s);
    kc::attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), s.B, 1, s.Hq, s.Hkv, s.D,
                          scale);
    vecd expect_out(out.size()), expect_lse(lse.size());
    for (i64 b = 0; b < s.B; ++b)
      for (i64 h = 0; h < s.Hq; ++h) {
        const i64 hk = h / (s.Hq / s.Hkv);
        double qk = 0;
        for (i64 d = 0; d < s.D; ++d) {
          expect_out[sz(q_index(s, b, 0, h) + d)] = in.v[sz(kv_index(s, b, 0, hk) + d)];
          qk += static_cast<double>(in.q[sz(q_index(s, b, 0, h) + d)]) * in.k[sz(kv_index(s, b, 0, hk) + d)];
        }
        expect_lse[sz(b * s.Hq + h)] = static_cast<double>(scale) * qk;  // log(exp(s)) with one key
      }
    check_close("attention_forward T=1 out == v", out, expect_out, tol_elem);
    check_close("attention_forward T=1 lse == scaled score", lse, expect_lse, tol_reduce);
  }
}

TEST_CASE("cpu kernels: attention_backward matches a full-matrix double reference and overwrites") {
  std::uint32_t seed = 1600;
  for (const auto& s : attn_shapes) {
    INFO(show(s));
    seed += 4;
    const attn_inputs in = make_attn_inputs(s, seed, 2.0f);
    const vecf dout = random_vec(sz(s.B * s.T * s.Hq * s.D), seed + 3);
    const float scale = attn_scale(s);
    vecf out(sz(s.B * s.T * s.Hq * s.D)), lse(sz(s.B * s.Hq * s.T));
    kc::attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), s.B, s.T, s.Hq, s.Hkv, s.D,
                          scale);
    vecd rdq, rdk, rdv;
    ref_attention_backward(rdq, rdk, rdv, to_d(dout), to_d(in.q), to_d(in.k), to_d(in.v), s,
                           static_cast<double>(scale));
    // Garbage in the gradient buffers must not leak into the result.
    vecf dq(in.q.size(), 7.0f), dk(in.k.size(), -3.0f), dv(in.v.size(), 11.0f);
    for (int call = 0; call < 2; ++call) {
      CAPTURE(call);
      kc::attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), in.q.data(), in.k.data(), in.v.data(),
                             out.data(), lse.data(), s.B, s.T, s.Hq, s.Hkv, s.D, scale);
      check_close("attention_backward dq", dq, rdq, tol_reduce);
      check_close("attention_backward dk", dk, rdk, tol_reduce);
      check_close("attention_backward dv", dv, rdv, tol_reduce);
    }
  }
}

TEST_CASE("cpu kernels: attention_backward matches central finite differences of the reference forward") {
  // Small shapes; T = 66 puts keys on both sides of kv_block.
  const attn_shape shapes[] = {{2, 7, 4, 2, 8}, {1, 5, 4, 1, 4}, {1, 1, 4, 4, 4}, {1, 66, 2, 1, 4}};
  std::uint32_t seed = 1700;
  for (const auto& s : shapes) {
    INFO(show(s));
    seed += 4;
    const attn_inputs in = make_attn_inputs(s, seed, 2.0f);
    const vecf dout = random_vec(sz(s.B * s.T * s.Hq * s.D), seed + 3);
    const float scale = attn_scale(s);
    vecf out(sz(s.B * s.T * s.Hq * s.D)), lse(sz(s.B * s.Hq * s.T));
    kc::attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), s.B, s.T, s.Hq, s.Hkv, s.D,
                          scale);
    vecf dq(in.q.size()), dk(in.k.size()), dv(in.v.size());
    kc::attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), in.q.data(), in.k.data(), in.v.data(),
                           out.data(), lse.data(), s.B, s.T, s.Hq, s.Hkv, s.D, scale);

    vecd qd = to_d(in.q), kd = to_d(in.k), vd = to_d(in.v);
    const vecd doutd = to_d(dout);
    vecd o, l;
    const auto loss = [&] {
      ref_attention_forward(o, l, qd, kd, vd, s, static_cast<double>(scale));
      return dot(doutd, o);
    };
    check_close("attention_backward dq vs finite differences", dq, numeric_grad(qd, loss), tol_fd);
    check_close("attention_backward dk vs finite differences", dk, numeric_grad(kd, loss), tol_fd);
    check_close("attention_backward dv vs finite differences", dv, numeric_grad(vd, loss), tol_fd);
  }
}

// =================================================================================================
// cross-entropy
// =================================================================================================

TEST_CASE("cpu kernels: cross_entropy returns the mean loss and dloss x (softmax - onehot)") {
  struct shape {
    i64 T, V;
    float logit_scale;
  };
  // logit_scale 100: naive exp would overflow fp32, the max shift must keep it finite.
  // T = 4100 rows cross the 4096-term chunk of the kernels' ordered reduction.
  const shape shapes[] = {{1, 11, 3.0f},   {7, 257, 3.0f},  {130, 11, 5.0f},
                          {65, 257, 2.0f}, {9, 11, 100.0f}, {4100, 11, 3.0f}};
  std::uint32_t seed = 1800;
  for (const auto& s : shapes)
    for (bool mean_grad : {true, false}) {
      CAPTURE(s.T);
      CAPTURE(s.V);
      CAPTURE(s.logit_scale);
      CAPTURE(mean_grad);
      const vecf logits = random_vec(sz(s.T * s.V), ++seed, s.logit_scale);
      const veci targets = random_tokens(sz(s.T), static_cast<std::int32_t>(s.V), ++seed);
      const float dloss = mean_grad ? 1.0f / static_cast<float>(s.T) : 0.37f;
      vecf losses(sz(s.T), 12345.0f), dlogits(sz(s.T * s.V), 12345.0f);  // dlogits is written, not added to
      const float mean =
          kc::cross_entropy(losses.data(), dlogits.data(), logits.data(), targets.data(), s.T, s.V, dloss);
      vecd rlosses, rdlogits;
      const double rmean =
          ref_cross_entropy(rlosses, &rdlogits, to_d(logits), targets, s.T, s.V, static_cast<double>(dloss));
      check_close_scalar("cross_entropy mean", mean, rmean, tol_reduce);
      check_close("cross_entropy losses", losses, rlosses, tol_reduce);
      check_close("cross_entropy dlogits", dlogits, rdlogits, tol_elem);

      // Each row of dlogits sums to ~0 (softmax sums to 1, the one-hot removes 1).
      vecd row_sums(sz(s.T), 0.0);
      for (i64 t = 0; t < s.T; ++t)
        for (i64 j = 0; j < s.V; ++j) row_sums[sz(t)] += dlogits[sz(t * s.V + j)];
      check_close("cross_entropy dlogits row sums", row_sums, vecd(sz(s.T), 0.0), tolerance{1e-6, 0.0});

      // Optional outputs: the same mean without losses and/or dlogits.
      const float mean_no_outputs = kc::cross_entropy(nullptr, nullptr, logits.data(), targets.data(), s.T, s.V, dloss);
      check_close_scalar("cross_entropy mean (null losses, null dlogits)", mean_no_outputs, rmean, tol_reduce);
      vecf losses_only(sz(s.T), 0.0f);
      const float mean_losses_only =
          kc::cross_entropy(losses_only.data(), nullptr, logits.data(), targets.data(), s.T, s.V, dloss);
      check_close_scalar("cross_entropy mean (null dlogits)", mean_losses_only, rmean, tol_reduce);
      check_close("cross_entropy losses (null dlogits)", losses_only, rlosses, tol_reduce);
    }
  {
    INFO("uniform logits: loss is log(V)");
    const i64 T = 3, V = 257;
    const vecf logits(sz(T * V), 0.5f);
    const veci targets = {0, 100, 256};
    const float mean = kc::cross_entropy(nullptr, nullptr, logits.data(), targets.data(), T, V, 1.0f);
    check_close_scalar("cross_entropy uniform", mean, std::log(257.0), tol_elem);
  }
}

// A group of `ranks` simulated in one process, one std::thread each: an all-reduce hands every
// rank the combination of all ranks' buffers, taken in rank order (as a deterministic MPI
// all-reduce would), behind a barrier.
struct simulated_group {
  explicit simulated_group(int ranks) : n(ranks), bar(ranks), f(sz(ranks)), d(sz(ranks)) {}
  int n;
  std::barrier<> bar;
  std::vector<vecf> f;
  std::vector<vecd> d;
  template <class T, class Op>
  void all(std::vector<std::vector<T>>& slot, int r, T* x, i64 len, Op op) {
    slot[sz(r)].assign(x, x + len);
    bar.arrive_and_wait();
    for (i64 i = 0; i < len; ++i) {
      T acc = slot[0][sz(i)];
      for (int q = 1; q < n; ++q) acc = op(acc, slot[sz(q)][sz(i)]);
      x[i] = acc;
    }
    bar.arrive_and_wait();
  }
};

TEST_CASE("cpu kernels: vocabulary-parallel cross-entropy over simulated ranks matches the whole row's") {
  // Logits of V columns split into shards (uneven: the last shard is short, as when the
  // vocabulary is padded); every rank must return the whole row's losses and mean, and its
  // columns of (softmax - onehot) x dloss. Reference: the double cross-entropy over whole rows.
  struct split {
    i64 T, V;
    std::vector<i64> cols;  // each rank's column count, in rank order
    float logit_scale;
  };
  const split splits[] = {{7, 257, {257}, 3.0f},
                          {7, 257, {129, 128}, 3.0f},
                          {130, 11, {4, 4, 3}, 5.0f},
                          {9, 11, {6, 5}, 100.0f},
                          {65, 257, {100, 100, 57}, 2.0f}};
  std::uint32_t seed = 1850;
  for (const auto& s : splits) {
    CAPTURE(s.T);
    CAPTURE(s.V);
    CAPTURE(s.cols.size());
    const vecf logits = random_vec(sz(s.T * s.V), ++seed, s.logit_scale);
    const veci targets = random_tokens(sz(s.T), static_cast<std::int32_t>(s.V), ++seed);
    const float dloss = 1.0f / static_cast<float>(s.T);
    vecd rlosses, rdlogits;
    const double rmean =
        ref_cross_entropy(rlosses, &rdlogits, to_d(logits), targets, s.T, s.V, static_cast<double>(dloss));
    const int R = static_cast<int>(s.cols.size());
    simulated_group g(R);
    std::vector<vecf> losses(sz(R)), dlogits(sz(R)), shard(sz(R));
    std::vector<float> means(sz(R));
    std::vector<i64> first(sz(R), 0);
    for (int r = 1; r < R; ++r) first[sz(r)] = first[sz(r - 1)] + s.cols[sz(r - 1)];
    std::vector<std::thread> threads;
    for (int r = 0; r < R; ++r) {
      const i64 w = s.cols[sz(r)];
      shard[sz(r)].resize(sz(s.T * w));
      for (i64 t = 0; t < s.T; ++t)
        std::copy_n(logits.begin() + t * s.V + first[sz(r)], w, shard[sz(r)].begin() + t * w);
      losses[sz(r)].assign(sz(s.T), 12345.0f);
      dlogits[sz(r)].assign(sz(s.T * w), 12345.0f);
      threads.emplace_back([&, r, w] {
        means[sz(r)] = kc::cross_entropy_vocab_parallel(
            losses[sz(r)].data(), dlogits[sz(r)].data(), shard[sz(r)].data(), targets.data(), s.T, w, first[sz(r)],
            dloss, [&](float* x, i64 n) { g.all(g.f, r, x, n, [](float a, float b) { return std::max(a, b); }); },
            [&](double* x, i64 n) { g.all(g.d, r, x, n, std::plus<double>()); });
      });
    }
    for (auto& t : threads) t.join();
    for (int r = 0; r < R; ++r) {
      CAPTURE(r);
      const i64 w = s.cols[sz(r)];
      check_close_scalar("vocab-parallel mean", means[sz(r)], rmean, tol_reduce);
      check_close("vocab-parallel losses", losses[sz(r)], rlosses, tol_reduce);
      vecd mine(sz(s.T * w));
      for (i64 t = 0; t < s.T; ++t)
        for (i64 j = 0; j < w; ++j) mine[sz(t * w + j)] = rdlogits[sz(t * s.V + first[sz(r)] + j)];
      check_close("vocab-parallel dlogits", dlogits[sz(r)], mine, tol_elem);
    }
    if (R == 1) {  // one rank: cross_entropy's results, bit for bit
      vecf l1(sz(s.T)), d1(sz(s.T * s.V));
      const float m1 = kc::cross_entropy(l1.data(), d1.data(), logits.data(), targets.data(), s.T, s.V, dloss);
      CHECK(m1 == means[0]);
      CHECK(l1 == losses[0]);
      CHECK(d1 == dlogits[0]);
    }
  }
}

TEST_CASE("cpu kernels: cross_entropy dlogits matches central finite differences") {
  struct shape {
    i64 T, V;
  };
  const shape shapes[] = {{4, 11}, {3, 7}, {1, 5}};
  std::uint32_t seed = 1900;
  for (const auto& s : shapes) {
    CAPTURE(s.T);
    CAPTURE(s.V);
    const vecf logits = random_vec(sz(s.T * s.V), ++seed, 3.0f);
    const veci targets = random_tokens(sz(s.T), static_cast<std::int32_t>(s.V), ++seed);
    const float dloss = 1.0f / static_cast<float>(s.T);
    vecf dlogits(sz(s.T * s.V));
    kc::cross_entropy(nullptr, dlogits.data(), logits.data(), targets.data(), s.T, s.V, dloss);
    vecd zd = to_d(logits);
    vecd losses;
    // L = mean loss = (1/T) sum_t loss_t, whose gradient is dloss = 1/T times (softmax - onehot).
    const auto loss = [&] { return ref_cross_entropy(losses, nullptr, zd, targets, s.T, s.V, 0.0); };
    check_close("cross_entropy dlogits vs finite differences", dlogits, numeric_grad(zd, loss), tol_fd);
  }
}

// =================================================================================================
// AdamW
// =================================================================================================

TEST_CASE("cpu kernels: adamw matches a double reference over 3 steps (bias correction, decoupled decay)") {
  kc::adamw_config custom;
  custom.lr = 1e-2f;
  custom.beta1 = 0.8f;
  custom.beta2 = 0.9f;
  custom.eps = 1e-8f;
  custom.weight_decay = 0.05f;
  const kc::adamw_config configs[] = {kc::adamw_config{}, custom};
  std::uint32_t seed = 2000;
  for (const auto& cfg : configs)
    for (i64 n : {i64{37}, i64{1001}}) {
      CAPTURE(n);
      CAPTURE(cfg.lr);
      vecf p = random_vec(sz(n), ++seed), m(sz(n), 0.0f), v(sz(n), 0.0f);
      adamw_state ref{to_d(p), vecd(sz(n), 0.0), vecd(sz(n), 0.0)};
      for (int step = 1; step <= 3; ++step) {
        CAPTURE(step);
        vecf g = random_vec(sz(n), ++seed, 0.5f);
        g[0] = 0.0f;  // a zero gradient: only the decay (and, after step 1, momentum) move it
        const vecf p_before = p;
        kc::adamw(p.data(), g.data(), m.data(), v.data(), n, cfg, step);
        ref_adamw_step(ref, to_d(g), cfg, step);
        check_close("adamw m", m, ref.m, tol_adamw);
        check_close("adamw v", v, ref.v, tol_adamw);
        check_close("adamw params", p, ref.p, tol_adamw);
        // The update itself, compared relative to its own size (lr is small next to |params|).
        vecd got_delta(sz(n)), ref_delta(sz(n));
        for (i64 i = 0; i < n; ++i) got_delta[sz(i)] = static_cast<double>(p[sz(i)]) - p_before[sz(i)];
        for (i64 i = 0; i < n; ++i) ref_delta[sz(i)] = ref.p[sz(i)] - p_before[sz(i)];
        check_close("adamw update", got_delta, ref_delta, tolerance{2e-7, 1e-3});
      }
    }
  {
    INFO("first step without decay moves each parameter by lr * sign(grad)");
    // Bias correction makes mhat = g and vhat = g^2 at step 1, so the update is lr * g / (|g| + eps).
    kc::adamw_config cfg;
    cfg.lr = 1e-2f;
    cfg.weight_decay = 0.0f;
    const i64 n = 9;
    const vecf p0 = random_vec(sz(n), 2090);
    const vecf g = {0.5f, -0.25f, 1e-3f, -1e-3f, 2.0f, -3.0f, 0.1f, -0.7f, 0.9f};
    vecf p = p0, m(sz(n), 0.0f), v(sz(n), 0.0f);
    kc::adamw(p.data(), g.data(), m.data(), v.data(), n, cfg, 1);
    vecd expect(sz(n));
    for (i64 i = 0; i < n; ++i) expect[sz(i)] = static_cast<double>(p0[sz(i)]) - 1e-2 * (g[sz(i)] > 0 ? 1.0 : -1.0);
    check_close("adamw step 1 = lr * sign(g)", p, expect, tolerance{1e-6, 0.0});
  }
  {
    INFO("decay is decoupled: zero gradient shrinks params by lr * wd * p");
    kc::adamw_config cfg;
    cfg.lr = 0.1f;
    cfg.weight_decay = 0.5f;
    const i64 n = 5;
    const vecf p0 = {1.0f, -2.0f, 0.5f, 4.0f, -0.25f};
    const vecf g(sz(n), 0.0f);
    vecf p = p0, m(sz(n), 0.0f), v(sz(n), 0.0f);
    kc::adamw(p.data(), g.data(), m.data(), v.data(), n, cfg, 1);
    vecd expect(sz(n));
    for (i64 i = 0; i < n; ++i) expect[sz(i)] = p0[sz(i)] * (1.0 - 0.1 * 0.5);
    check_close("adamw decoupled decay", p, expect, tol_elem);
  }
}

// =================================================================================================
// gradient clipping
// =================================================================================================

TEST_CASE("cpu kernels: clip_grad_norm returns the pre-clip norm and scales only above max_norm") {
  std::uint32_t seed = 2100;
  for (i64 n : {i64{1}, i64{1001}, i64{100003}}) {
    CAPTURE(n);
    const vecf g0 = random_vec(sz(n), ++seed);
    const double norm = l2(g0);  // double reference norm

    {
      INFO("below max_norm: untouched");
      vecf g = g0;
      const float got = kc::clip_grad_norm(g.data(), n, static_cast<float>(2.0 * norm));
      check_close_scalar("clip_grad_norm return (no clip)", got, norm, tolerance{0.0, 1e-6});
      CHECK(g == g0);
    }
    {
      INFO("norm just below max_norm: untouched");
      vecf g = g0;
      kc::clip_grad_norm(g.data(), n, static_cast<float>(norm * 1.001));
      CHECK(g == g0);
    }
    {
      INFO("above max_norm: scaled to max_norm");
      const double max_norm = 0.25 * norm;
      vecf g = g0;
      const float got = kc::clip_grad_norm(g.data(), n, static_cast<float>(max_norm));
      check_close_scalar("clip_grad_norm return (clipped) is the pre-clip norm", got, norm, tolerance{0.0, 1e-6});
      vecd expect(sz(n));
      for (i64 i = 0; i < n; ++i) expect[sz(i)] = g0[sz(i)] * (max_norm / norm);
      check_close("clip_grad_norm scaled gradients", g, expect, tolerance{1e-7, 1e-5});
      check_close_scalar("clip_grad_norm norm after clipping", l2(g), max_norm, tolerance{0.0, 1e-5});
    }
  }
  {
    INFO("known values: 3-4-5");
    vecf g = {3.0f, 4.0f};
    const float got = kc::clip_grad_norm(g.data(), 2, 1.0f);
    CHECK(got == doctest::Approx(5.0).epsilon(1e-7));
    check_close("clip 3-4-5 to unit norm", g, vecd{0.6, 0.8}, tolerance{1e-6, 0.0});
  }
  {
    INFO("zero gradients: norm 0, untouched");
    vecf g(10, 0.0f);
    CHECK(kc::clip_grad_norm(g.data(), 10, 1.0f) == 0.0f);
    CHECK(g == vecf(10, 0.0f));
  }
}

TEST_CASE("cpu kernels: clip_and_adamw is clip_grad_norm then adamw, bit for bit, and matches a double reference") {
  std::uint32_t seed = 2200;
  for (i64 n : {i64{37}, i64{100003}})
    for (double clip_ratio : {0.25, 4.0}) {  // clipped, and not clipped
      CAPTURE(n);
      CAPTURE(clip_ratio);
      vecf p = random_vec(sz(n), ++seed), m(sz(n), 0.0f), v(sz(n), 0.0f);
      vecf p2 = p, m2 = m, v2 = v;
      adamw_state ref{to_d(p), vecd(sz(n), 0.0), vecd(sz(n), 0.0)};
      for (int step = 1; step <= 2; ++step) {
        CAPTURE(step);
        const vecf g = random_vec(sz(n), ++seed, 0.5f);
        const double norm = l2(g);
        const float max_norm = static_cast<float>(clip_ratio * norm);
        const float got = kc::clip_and_adamw(p.data(), g.data(), m.data(), v.data(), n, max_norm, {}, step);
        vecf g2 = g;
        const float got2 = kc::clip_grad_norm(g2.data(), n, max_norm);
        kc::adamw(p2.data(), g2.data(), m2.data(), v2.data(), n, {}, step);
        CHECK(got == got2);
        CHECK(p == p2);
        CHECK(m == m2);
        CHECK(v == v2);
        check_close_scalar("clip_and_adamw returns the pre-clip norm", got, norm, tolerance{0.0, 1e-6});
        vecd gd = to_d(g);  // the reference: scale by max_norm / norm in double when above, then AdamW in double
        if (norm > max_norm)
          for (auto& x : gd) x *= static_cast<double>(max_norm) / norm;
        ref_adamw_step(ref, gd, kc::adamw_config{}, step);
        check_close("clip_and_adamw params", p, ref.p, tol_adamw);
        check_close("clip_and_adamw m", m, ref.m, tol_adamw);
        check_close("clip_and_adamw v", v, ref.v, tol_adamw);
      }
    }
}

TEST_CASE("cpu kernels: exp_fast is within 2 ulp of exp over [-87, 88] and clamps outside") {
  double worst = 0;
  for (double x = -87.0; x <= 88.0; x += 0.000731) {
    const float xf = static_cast<float>(x);
    const double want = std::exp(static_cast<double>(xf));
    worst = std::max(worst, std::abs(static_cast<double>(kc::detail::exp_fast(xf)) - want) / want);
  }
  CHECK(worst < 2.0 * 5.96e-8);  // 2 ulp of fp32 (2^-24 relative per ulp at the top of a binade)
  CHECK(kc::detail::exp_fast(0.0f) == 1.0f);
  CHECK(kc::detail::exp_fast(-std::numeric_limits<float>::infinity()) > 0.0f);  // clamped to exp(-87)
  CHECK(kc::detail::exp_fast(-std::numeric_limits<float>::infinity()) < 2e-38f);
  CHECK(std::isfinite(kc::detail::exp_fast(1e30f)));
}

// =================================================================================================
// determinism: the header promises results independent of the thread count
// =================================================================================================

namespace {
int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
void set_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n);
#else
  (void)n;
#endif
}
struct thread_count_guard {
  int saved = max_threads();
  ~thread_count_guard() { set_threads(saved); }
};

struct named_output {
  std::string name;
  vecf values;
};

// Runs every kernel on fixed inputs whose sizes cross row_block, kv_block and the 4096-term
// reduction chunk; returns every output buffer (scalar results as one-element buffers).
std::vector<named_output> run_every_kernel() {
  std::vector<named_output> r;
  std::uint32_t seed = 3000;
  {
    const i64 T = 130, I = 67, O = 129;
    const vecf x = random_vec(sz(T * I), ++seed), w = random_vec(sz(O * I), ++seed), b = random_vec(sz(O), ++seed),
               dout = random_vec(sz(T * O), ++seed);
    vecf out(sz(T * O)), dx(sz(T * I), 0.5f), dw(sz(O * I), 0.5f), db(sz(O), 0.5f);
    kc::linear_forward(out.data(), x.data(), w.data(), b.data(), T, I, O);
    kc::linear_backward(dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(), T, I, O);
    r.push_back({"linear_forward out", out});
    r.push_back({"linear_backward dinp", dx});
    r.push_back({"linear_backward dweight", dw});
    r.push_back({"linear_backward dbias", db});
  }
  {
    const i64 m = 70, n = 300, k = 600;  // crosses kc, work items and register blocks
    const vecf a = random_vec(sz(m * k), ++seed), b = random_vec(sz(k * n), ++seed);
    vecf c(sz(m * n));
    kc::gemm::multiply(c.data(), n, {a.data(), k, 1}, {b.data(), 1, k}, m, n, k, false);
    r.push_back({"gemm::multiply", c});
  }
  {
    const i64 n = 10001;
    vecf y = random_vec(sz(n), ++seed);
    const vecf x = random_vec(sz(n), ++seed);
    kc::add_inplace(y.data(), x.data(), n);
    r.push_back({"add_inplace", y});
  }
  {
    const i64 T = 200, C = 67;
    const vecf x = random_vec(sz(T * C), ++seed), w = random_vec(sz(C), ++seed), dout = random_vec(sz(T * C), ++seed);
    vecf out(sz(T * C)), rstd(sz(T)), dx(sz(T * C), 0.5f), dw(sz(C), 0.5f);
    kc::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), T, C, 1e-5f);
    kc::rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), T, C);
    r.push_back({"rmsnorm_forward out", out});
    r.push_back({"rmsnorm_forward rstd", rstd});
    r.push_back({"rmsnorm_backward dinp", dx});
    r.push_back({"rmsnorm_backward dweight", dw});
  }
  {
    const i64 T = 130, H = 3, D = 8;
    vecf x = random_vec(sz(T * H * D), ++seed), g = random_vec(sz(T * H * D), ++seed);
    kc::rope_forward(x.data(), T, H, D, 10000.0f, 5);
    kc::rope_backward(g.data(), T, H, D, 10000.0f, 5);
    r.push_back({"rope_forward", x});
    r.push_back({"rope_backward", g});
  }
  {
    const i64 n = 10001;
    const vecf gate = random_vec(sz(n), ++seed, 4.0f), up = random_vec(sz(n), ++seed), dout = random_vec(sz(n), ++seed);
    vecf out(sz(n)), dg(sz(n), 0.5f), du(sz(n), 0.5f);
    kc::swiglu_forward(out.data(), gate.data(), up.data(), n);
    kc::swiglu_backward(dg.data(), du.data(), dout.data(), gate.data(), up.data(), n);
    r.push_back({"swiglu_forward", out});
    r.push_back({"swiglu_backward dgate", dg});
    r.push_back({"swiglu_backward dup", du});
  }
  {
    const i64 V = 11, T = 130, C = 16;
    const vecf table = random_vec(sz(V * C), ++seed), dout = random_vec(sz(T * C), ++seed);
    const veci tokens = random_tokens(sz(T), static_cast<std::int32_t>(V), ++seed);
    vecf out(sz(T * C)), dt(sz(V * C), 0.5f);
    kc::embedding_forward(out.data(), tokens.data(), table.data(), T, C);
    kc::embedding_backward(dt.data(), dout.data(), tokens.data(), T, C);
    r.push_back({"embedding_forward", out});
    r.push_back({"embedding_backward", dt});
  }
  {
    const attn_shape s{2, 130, 4, 2, 8};
    const vecf q = random_vec(sz(s.B * s.T * s.Hq * s.D), ++seed, 2.0f),
               k = random_vec(sz(s.B * s.T * s.Hkv * s.D), ++seed), v = random_vec(sz(s.B * s.T * s.Hkv * s.D), ++seed),
               dout = random_vec(q.size(), ++seed);
    const float scale = 1.0f / std::sqrt(static_cast<float>(s.D));
    vecf out(q.size()), lse(sz(s.B * s.Hq * s.T)), dq(q.size()), dk(k.size()), dv(v.size());
    kc::attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), s.B, s.T, s.Hq, s.Hkv, s.D, scale);
    kc::attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), out.data(),
                           lse.data(), s.B, s.T, s.Hq, s.Hkv, s.D, scale);
    r.push_back({"attention_forward out", out});
    r.push_back({"attention_forward lse", lse});
    r.push_back({"attention_backward dq", dq});
    r.push_back({"attention_backward dk", dk});
    r.push_back({"attention_backward dv", dv});
  }
  {
    const i64 T = 4100, V = 11;
    const vecf logits = random_vec(sz(T * V), ++seed, 3.0f);
    const veci targets = random_tokens(sz(T), static_cast<std::int32_t>(V), ++seed);
    vecf losses(sz(T)), dlogits(sz(T * V));
    const float mean = kc::cross_entropy(losses.data(), dlogits.data(), logits.data(), targets.data(), T, V,
                                         1.0f / static_cast<float>(T));
    const float mean_only = kc::cross_entropy(nullptr, nullptr, logits.data(), targets.data(), T, V, 1.0f);
    r.push_back({"cross_entropy mean", vecf{mean}});
    r.push_back({"cross_entropy mean (null outputs)", vecf{mean_only}});
    r.push_back({"cross_entropy losses", losses});
    r.push_back({"cross_entropy dlogits", dlogits});
  }
  {
    const i64 n = 10001;
    vecf p = random_vec(sz(n), ++seed), m(sz(n), 0.0f), v(sz(n), 0.0f);
    for (int step = 1; step <= 2; ++step) {
      const vecf g = random_vec(sz(n), ++seed);
      kc::adamw(p.data(), g.data(), m.data(), v.data(), n, kc::adamw_config{}, step);
    }
    r.push_back({"adamw params", p});
    r.push_back({"adamw m", m});
    r.push_back({"adamw v", v});
  }
  {
    const i64 n = 100003;
    vecf g = random_vec(sz(n), ++seed);
    const float norm = kc::clip_grad_norm(g.data(), n, 1.0f);
    r.push_back({"clip_grad_norm norm", vecf{norm}});
    r.push_back({"clip_grad_norm grads", g});
  }
  {
    const i64 n = 100003;
    vecf p = random_vec(sz(n), ++seed), m(sz(n), 0.0f), v(sz(n), 0.0f);
    const vecf g = random_vec(sz(n), ++seed);
    const float norm = kc::clip_and_adamw(p.data(), g.data(), m.data(), v.data(), n, 1.0f, {}, 1);
    r.push_back({"clip_and_adamw norm", vecf{norm}});
    r.push_back({"clip_and_adamw params", p});
  }
  return r;
}
}  // namespace

TEST_CASE("cpu kernels: results are bit-identical for 1, 2, 3 and 8 threads") {
  const thread_count_guard guard;
  set_threads(1);
  const std::vector<named_output> base = run_every_kernel();
  for (int threads : {2, 3, 8}) {
    CAPTURE(threads);
    set_threads(threads);
    const std::vector<named_output> got = run_every_kernel();
    REQUIRE(got.size() == base.size());
    for (std::size_t i = 0; i < base.size(); ++i) {
      INFO(base[i].name);
      CHECK(got[i].values == base[i].values);
    }
  }
}
