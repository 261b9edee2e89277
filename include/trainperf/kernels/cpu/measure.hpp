// trainperf — this machine measured through the CPU kernels (kernels.hpp): the GEMM probe that
// gives train_llama its peak for MFU, and tasks (linear layers, STREAM's triad, the trainer's
// memory-bound kernels and optimizer, flash attention) timed in interleaved rounds, the best
// round of each counting, with their work in step_time.hpp's units (namespace costs).
// calibration.hpp turns the figures into a device profile; `trainperf calibrate` runs them.
// Not part of trainperf.hpp: include <trainperf/kernels/cpu/measure.hpp> and link Eigen3.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include <trainperf/calibration.hpp>
#include <trainperf/kernels/cpu/kernels.hpp>
#include <trainperf/step_time.hpp>

namespace trainperf::kernels::cpu::measure {

// Seconds per call of fn: `repetitions` timed runs of at least min_seconds each; the best run's
// mean, the figure least disturbed by anything else on the machine. Every run's seconds per call
// is kept in `all` when given.
template <class F>
double best_seconds(F&& fn, int repetitions, double min_seconds, std::vector<double>* all = nullptr) {
  using clock = std::chrono::steady_clock;
  double best = 0;
  for (int rep = 0; rep < repetitions; ++rep) {
    const auto t0 = clock::now();
    int calls = 0;
    double s = 0;
    do {
      fn();
      ++calls;
      s = std::chrono::duration<double>(clock::now() - t0).count();
    } while (s < min_seconds);
    const double per_call = s / calls;
    if (all != nullptr) all->push_back(per_call);
    best = rep == 0 ? per_call : std::min(best, per_call);
  }
  return best;
}

// Operands with varied values: no shortcut on constant data, no denormals.
inline std::vector<float> filled(i64 n, int salt) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<float>((i * 7 + static_cast<std::size_t>(salt)) % 13) * 0.01f - 0.06f;
  return v;
}

// The fp32 GEMM rate of the linear kernel with the current threads.
struct gemm_peak {
  double best = 0, median = 0, worst = 0;  // FLOP/s over the timed repetitions
  i64 n = 0;
  int repetitions = 0;
  double seconds = 0;  // the probe's whole time, warm-up included
};

// n x n x n products (n = 1024: 12 MiB of operands, past the private caches, so the rate is the
// sustained one, not a cache burst), one warm-up, then `repetitions` timed runs of at least
// `min_seconds` each. The best run is the peak, what this kernel can sustain here; the spread
// says how steady the machine was while it was measured. (A 512^3 probe of 4 products read
// anywhere from 34 to 246 GFLOP/s on a shared 2-core machine: MFUs above 100%.)
inline gemm_peak measure_gemm_peak(i64 n = 1024, int repetitions = 5, double min_seconds = 0.2) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<float> a = filled(n * n, 0), b = filled(n * n, 5);
  std::vector<float> c(a.size());
  std::vector<double> runs;
  linear_forward(c.data(), a.data(), b.data(), nullptr, n, n, n);  // warm-up: pages, threads
  best_seconds([&] { linear_forward(c.data(), a.data(), b.data(), nullptr, n, n, n); }, repetitions, min_seconds,
               &runs);
  const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  std::sort(runs.begin(), runs.end());  // seconds, fastest first
  return {flops / runs.front(), flops / runs[runs.size() / 2],
          flops / runs.back(),  n,
          repetitions,          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()};
}

// One measurement: a call that does `work` (FLOPs or bytes, as step_time charges it), owning its
// buffers.
struct task {
  double work = 0;
  std::function<void()> run;
};

// Seconds per call of each task, the best of `rounds` rounds; each round times every task in
// turn for at least min_seconds, so that a slow spell of the machine (seconds long, on a shared
// one) costs one round of many tasks rather than every round of a few. One warm-up call each
// first (pages, threads).
inline std::vector<double> best_seconds_interleaved(const std::vector<task>& tasks, int rounds, double min_seconds) {
  for (const task& t : tasks) t.run();
  std::vector<double> best(tasks.size(), std::numeric_limits<double>::infinity());
  for (int round = 0; round < rounds; ++round)
    for (std::size_t i = 0; i < tasks.size(); ++i)
      best[i] = std::min(best[i], best_seconds(tasks[i].run, 1, min_seconds));
  return best;
}

// A linear layer's forward and backward (linear_forward, linear_backward: three products of
// T x I x O), as step_time charges it: three GEMMs of the forward's shape (m = T, n = O, k = I).
inline task linear_layer(i64 T, i64 I, i64 O) {
  struct buffers {
    std::vector<float> x, w, dy, y, dx, dw;
  };
  auto b = std::make_shared<buffers>();
  b->x = filled(T * I, 1), b->w = filled(O * I, 2), b->dy = filled(T * O, 3);
  b->y.resize(static_cast<std::size_t>(T * O)), b->dx.resize(b->x.size()), b->dw.resize(b->w.size());
  return {3 * 2.0 * static_cast<double>(T) * static_cast<double>(I) * static_cast<double>(O), [b, T, I, O] {
            linear_forward(b->y.data(), b->x.data(), b->w.data(), nullptr, T, I, O);
            linear_backward(b->dx.data(), b->dw.data(), nullptr, b->dy.data(), b->x.data(), b->w.data(), T, I, O);
          }};
}

// STREAM's triad a = b + s c over n floats on every thread (McCalpin, "Memory Bandwidth and
// Machine Balance in Current High Performance Computers", 1995: 3 x 4 bytes an element,
// write-allocate not counted).
inline task triad(i64 n) {
  struct buffers {
    std::vector<float> a, b, c;
  };
  auto v = std::make_shared<buffers>();
  v->a.resize(static_cast<std::size_t>(n)), v->b = filled(n, 1), v->c = filled(n, 2);
  return {12.0 * static_cast<double>(n), [v, n] {
            float* a = v->a.data();
            const float *b = v->b.data(), *c = v->c.data();
#pragma omp parallel for schedule(static)
            for (i64 i = 0; i < n; ++i) a[i] = b[i] + 0.5f * c[i];
          }};
}

using layer_shape = measured_layer;

// train_llama's memory-bound kernels on one layer, forward and backward (RMSNorm twice, the
// residual additions, RoPE on Q and K per sequence, SwiGLU), with the bytes step_time charges.
inline task layer_streaming(const layer_shape& l) {
  const i64 t = l.batch * l.seq, h = l.hidden, q = l.heads * l.head_dim, kv = l.kv_heads * l.head_dim;
  struct buffers {
    std::vector<float> x, w, gate, up, y, dx, dw, rstd, resid, qk, act, dgate, dup;
  };
  auto b = std::make_shared<buffers>();
  b->x = filled(t * h, 1), b->w = filled(h, 2), b->gate = filled(t * l.ffn, 3), b->up = filled(t * l.ffn, 4);
  b->y.resize(b->x.size()), b->dx.resize(b->x.size()), b->dw.resize(b->w.size());
  b->rstd.resize(static_cast<std::size_t>(t)), b->resid = filled(t * h, 5), b->qk = filled(t * (q + kv), 6);
  b->act.resize(b->gate.size()), b->dgate.resize(b->gate.size()), b->dup.resize(b->gate.size());
  const double td = static_cast<double>(t), hd = static_cast<double>(h), e = 4;
  const double forward = 2 * (costs::norm_bytes(td, hd, e) + costs::residual_bytes(td, hd, e)) +
                         costs::rotary_bytes(td, static_cast<double>(q), static_cast<double>(kv), e) +
                         costs::activation_bytes(td, static_cast<double>(l.ffn), 2, e);
  return {forward * (1 + costs::streaming_backward_ratio), [b, l, t, h, q, kv] {
            const auto rope = [&](bool backward) {
              for (i64 s = 0; s < l.batch; ++s) {
                float* xq = b->qk.data() + s * l.seq * q;
                float* xk = b->qk.data() + t * q + s * l.seq * kv;
                if (backward) {
                  rope_backward(xq, l.seq, l.heads, l.head_dim, 10000.0f);
                  rope_backward(xk, l.seq, l.kv_heads, l.head_dim, 10000.0f);
                } else {
                  rope_forward(xq, l.seq, l.heads, l.head_dim, 10000.0f);
                  rope_forward(xk, l.seq, l.kv_heads, l.head_dim, 10000.0f);
                }
              }
            };
            for (int norm = 0; norm < 2; ++norm)
              rmsnorm_forward(b->y.data(), b->rstd.data(), b->x.data(), b->w.data(), t, h, 1e-5f);
            for (int add = 0; add < 2; ++add) add_inplace(b->resid.data(), b->x.data(), t * h);
            rope(false);
            swiglu_forward(b->act.data(), b->gate.data(), b->up.data(), t * l.ffn);
            for (int norm = 0; norm < 2; ++norm)
              rmsnorm_backward(b->dx.data(), b->dw.data(), b->y.data(), b->x.data(), b->w.data(), b->rstd.data(), t, h);
            // (a residual's gradient passes through: the trainer runs no kernel for it)
            rope(true);
            swiglu_backward(b->dgate.data(), b->dup.data(), b->act.data(), b->gate.data(), b->up.data(), t * l.ffn);
          }};
}

// The optimizer over `params` fp32 parameters as train_llama steps them (the gradients zeroed on
// every thread, then clip_and_adamw), with the bytes step_time charges.
inline task optimizer(i64 params) {
  struct buffers {
    std::vector<float> p, g, m, v;
    i64 step = 0;
  };
  auto b = std::make_shared<buffers>();
  b->p = filled(params, 7), b->g = filled(params, 8);
  b->m.resize(b->p.size()), b->v.resize(b->p.size());
  return {static_cast<double>(params) * costs::optimizer_bytes_per_param(4, 8, 4, false), [b, params] {
            float* g = b->g.data();
#pragma omp parallel for schedule(static)
            for (i64 i = 0; i < params; ++i) g[i] = 0.0f;
            clip_and_adamw(b->p.data(), g, b->m.data(), b->v.data(), params, 1.0f, {}, ++b->step);
          }};
}

// Flash attention (attention_forward, then attention_backward) on the layer's shapes, with the
// FLOPs step_time charges each.
inline std::pair<task, task> attention(const layer_shape& l) {
  const i64 t = l.batch * l.seq, q = l.heads * l.head_dim, kv = l.kv_heads * l.head_dim;
  struct buffers {
    std::vector<float> q, k, v, dout, out, lse, dq, dk, dv;
  };
  auto b = std::make_shared<buffers>();
  b->q = filled(t * q, 1), b->k = filled(t * kv, 2), b->v = filled(t * kv, 3), b->dout = filled(t * q, 4);
  b->out.resize(b->q.size()), b->lse.resize(static_cast<std::size_t>(l.batch * l.heads * l.seq));
  b->dq.resize(b->q.size()), b->dk.resize(b->k.size()), b->dv.resize(b->v.size());
  const float scale = 1.0f / std::sqrt(static_cast<float>(l.head_dim));
  const auto forward = [b, l, scale] {
    attention_forward(b->out.data(), b->lse.data(), b->q.data(), b->k.data(), b->v.data(), l.batch, l.seq, l.heads,
                      l.kv_heads, l.head_dim, scale);
  };
  forward();  // the backward reads the forward's output and log-sum-exp
  const double flops =
      costs::flash_attention_forward_flops(static_cast<double>(t), static_cast<double>(l.seq),
                                           static_cast<double>(l.heads), static_cast<double>(l.head_dim));
  return {{flops, forward}, {costs::flash_attention_backward_ratio * flops, [b, l, scale] {
                               attention_backward(b->dq.data(), b->dk.data(), b->dv.data(), b->dout.data(), b->q.data(),
                                                  b->k.data(), b->v.data(), b->out.data(), b->lse.data(), l.batch,
                                                  l.seq, l.heads, l.kv_heads, l.head_dim, scale);
                             }}};
}

}  // namespace trainperf::kernels::cpu::measure
