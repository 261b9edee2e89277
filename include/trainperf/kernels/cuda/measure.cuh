// trainperf — this GPU measured through the CUDA kernels (matmul.cuh, attention.cuh, ops.cuh), as
// kernels/cpu/measure.hpp measures the CPU: GEMM shapes through a backend (trainperf's kernels,
// which train_llama runs, or cuBLASLt, which the frameworks run), the device-to-device copy
// bandwidth, train_llama's memory-bound kernels and optimizer, flash attention; each task's work
// in step_time.hpp's units (namespace costs), in bf16, timed with CUDA events in interleaved
// rounds, the best round of each counting. calibration.hpp turns the figures into a device
// profile; `trainperf calibrate --device cuda` runs them.
// Compiled only under nvcc; never included by trainperf.hpp.
#pragma once

#if !defined(__CUDACC__)
#error "trainperf/kernels/cuda/measure.cuh launches CUDA kernels: include it from a .cu file compiled by nvcc"
#endif

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "../../calibration.hpp"
#include "../../step_time.hpp"
#include "attention.cuh"
#include "check.cuh"
#include "matmul.cuh"
#include "ops.cuh"

namespace trainperf::cuda::measure {

using bf16 = __nv_bfloat16;
using layer_shape = measured_layer;

// A device array of n elements filled with varied values (no shortcut on constant data, no
// denormals), freed with it.
template <class T>
class filled {
 public:
  explicit filled(i64 n, int salt = 0) : n_(std::max<i64>(n, 1)) {
    TRAINPERF_CUDA_CHECK(cudaMalloc(&p_, static_cast<std::size_t>(n_) * sizeof(T)));
    std::vector<T> h(static_cast<std::size_t>(n_));
    for (std::size_t i = 0; i < h.size(); ++i) {
      const std::size_t r = (i * 7 + static_cast<std::size_t>(salt)) % 13;
      if constexpr (std::is_integral_v<T>)
        h[i] = static_cast<T>(r);
      else
        h[i] = static_cast<T>(static_cast<float>(r) * 0.01f - 0.06f);
    }
    TRAINPERF_CUDA_CHECK(cudaMemcpy(p_, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  filled(const filled&) = delete;
  filled& operator=(const filled&) = delete;
  ~filled() { cudaFree(p_); }
  T* get() const { return p_; }

 private:
  T* p_ = nullptr;
  i64 n_ = 0;
};

// One measurement: a launch sequence on a stream that does `work` (FLOPs or bytes, as step_time
// charges it), owning its buffers.
struct task {
  double work = 0;
  std::function<void(cudaStream_t)> run;
};

// Seconds per call of t on the GPU, without the host's time to issue it: the calls are captured
// in a CUDA graph (as many as about a millisecond of GPU work; a training step's kernels queue
// ahead of the GPU, so the gaps of a host issuing them one by one are not the step's), replayed
// between two events for a run of at least min_seconds. A task that cannot be captured is
// timed as issued.
inline double time_calls(const task& t, double min_seconds, cudaStream_t s) {
  struct events {
    cudaEvent_t start = nullptr, stop = nullptr;
    events() {
      TRAINPERF_CUDA_CHECK(cudaEventCreate(&start));
      TRAINPERF_CUDA_CHECK(cudaEventCreate(&stop));
    }
    ~events() {
      cudaEventDestroy(start);
      cudaEventDestroy(stop);
    }
  } e;
  const auto timed = [&](i64 n, const std::function<void()>& issue) {
    TRAINPERF_CUDA_CHECK(cudaEventRecord(e.start, s));
    for (i64 i = 0; i < n; ++i) issue();
    TRAINPERF_CUDA_CHECK(cudaEventRecord(e.stop, s));
    TRAINPERF_CUDA_CHECK(cudaEventSynchronize(e.stop));
    float ms = 0;
    TRAINPERF_CUDA_CHECK(cudaEventElapsedTime(&ms, e.start, e.stop));
    return static_cast<double>(ms) * 1e-3;
  };
  const auto eager = [&] { t.run(s); };
  const double one = std::max(timed(1, eager), 1e-7);  // an upper bound: the host's time included
  const i64 per_graph = static_cast<i64>(std::clamp(std::ceil(1e-3 / one), 1.0, 1000.0));
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  if (cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess) {
    bool issued = true;
    try {
      for (i64 i = 0; i < per_graph; ++i) t.run(s);
    } catch (const std::exception&) {
      issued = false;
    }
    const cudaError_t ended = cudaStreamEndCapture(s, &graph);
    if (!issued || ended != cudaSuccess || cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) exec = nullptr;
  }
  (void)cudaGetLastError();  // a failed capture's error is not the measurement's
  double per_call = 0;
  if (exec != nullptr) {
    const auto replay = [&] { TRAINPERF_CUDA_CHECK(cudaGraphLaunch(exec, s)); };
    const double first = std::max(timed(1, replay), 1e-7);
    const i64 n = static_cast<i64>(std::clamp(std::ceil(min_seconds / first), 1.0, 100000.0));
    per_call = timed(n, replay) / static_cast<double>(n * per_graph);
  } else {
    const i64 n = static_cast<i64>(std::clamp(std::ceil(min_seconds / one), 1.0, 100000.0));
    per_call = timed(n, eager) / static_cast<double>(n);
  }
  if (exec != nullptr) cudaGraphExecDestroy(exec);
  if (graph != nullptr) cudaGraphDestroy(graph);
  return per_call;
}

// Seconds per call of each task, the best of `rounds` rounds of every task in turn (a slow spell
// of a shared GPU costs one round of many tasks); one warm-up call each first.
inline std::vector<double> best_seconds_interleaved(const std::vector<task>& tasks, int rounds, double min_seconds,
                                                    cudaStream_t s) {
  for (const task& t : tasks) t.run(s);
  TRAINPERF_CUDA_CHECK(cudaStreamSynchronize(s));
  std::vector<double> best(tasks.size(), std::numeric_limits<double>::infinity());
  for (int round = 0; round < rounds; ++round)
    for (std::size_t i = 0; i < tasks.size(); ++i) best[i] = std::min(best[i], time_calls(tasks[i], min_seconds, s));
  return best;
}

// n x n x n bf16 products inp · W^T through the backend (fp32 accumulation): the GEMM probe.
inline task gemm_probe(backend be, i64 n) {
  auto a = std::make_shared<filled<bf16>>(n * n, 1), b = std::make_shared<filled<bf16>>(n * n, 2),
       c = std::make_shared<filled<bf16>>(n * n, 3);
  return {2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n), [=](cudaStream_t s) {
            gemm<bf16, bf16>(be, false, true, n, n, n, 1.0f, a->get(), n, b->get(), n, 0.0f, c->get(), n,
                             epilogue::none, nullptr, nullptr, s);
          }};
}

// A linear layer's forward and backward as train_llama's CUDA model runs it (y = x · W^T and
// dx = dy · W in bf16, dW += dy^T · x in fp32), as step_time charges it: three GEMMs of the
// forward's shape (m = T, n = O, k = I).
inline task linear_layer(backend be, i64 T, i64 I, i64 O) {
  auto x = std::make_shared<filled<bf16>>(T * I, 1), w = std::make_shared<filled<bf16>>(O * I, 2),
       dy = std::make_shared<filled<bf16>>(T * O, 3), y = std::make_shared<filled<bf16>>(T * O, 4),
       dx = std::make_shared<filled<bf16>>(T * I, 5);
  auto dw = std::make_shared<filled<float>>(O * I, 6);
  return {3 * 2.0 * static_cast<double>(T) * static_cast<double>(I) * static_cast<double>(O), [=](cudaStream_t s) {
            gemm<bf16, bf16>(be, false, true, T, O, I, 1.0f, x->get(), I, w->get(), I, 0.0f, y->get(), O,
                             epilogue::none, nullptr, nullptr, s);
            gemm<bf16, bf16>(be, false, false, T, I, O, 1.0f, dy->get(), O, w->get(), I, 0.0f, dx->get(), I,
                             epilogue::none, nullptr, nullptr, s);
            gemm<bf16, float>(be, true, false, O, I, T, 1.0f, dy->get(), O, x->get(), I, 1.0f, dw->get(), I,
                              epilogue::none, nullptr, nullptr, s);
          }};
}

// Device-to-device copy of `bytes` (STREAM's copy: the bytes read and the bytes written).
inline task copy(i64 bytes) {
  auto a = std::make_shared<filled<unsigned char>>(bytes, 1), b = std::make_shared<filled<unsigned char>>(bytes, 2);
  return {2.0 * static_cast<double>(bytes), [=](cudaStream_t s) {
            TRAINPERF_CUDA_CHECK(
                cudaMemcpyAsync(b->get(), a->get(), static_cast<std::size_t>(bytes), cudaMemcpyDeviceToDevice, s));
          }};
}

// train_llama's memory-bound kernels on one layer in bf16, forward and backward (RMSNorm twice,
// the residual additions, RoPE on Q and K per sequence, SwiGLU), with the bytes step_time charges
// (kernels/cpu/measure.hpp's layer_streaming on the GPU).
inline task layer_streaming(const layer_shape& l) {
  const i64 t = l.batch * l.seq, h = l.hidden, q = l.heads * l.head_dim, kv = l.kv_heads * l.head_dim, f = l.ffn;
  struct buffers {
    filled<bf16> x, y, dx, resid, qk, gate, up, act, dgate, dup;
    filled<float> w, dw, rstd, ws;
  };
  auto b = std::shared_ptr<buffers>(
      new buffers{filled<bf16>(t * h, 1), filled<bf16>(t * h, 2), filled<bf16>(t * h, 3), filled<bf16>(t * h, 4),
                  filled<bf16>(t * (q + kv), 5), filled<bf16>(t * f, 6), filled<bf16>(t * f, 7), filled<bf16>(t * f, 8),
                  filled<bf16>(t * f, 9), filled<bf16>(t * f, 10), filled<float>(h, 11), filled<float>(h, 12),
                  filled<float>(t, 13), filled<float>(static_cast<i64>(rmsnorm_backward_workspace_floats(t, h)), 14)});
  const double td = static_cast<double>(t), hd = static_cast<double>(h), e = 2;
  const double forward = 2 * (costs::norm_bytes(td, hd, e) + costs::residual_bytes(td, hd, e)) +
                         costs::rotary_bytes(td, static_cast<double>(q), static_cast<double>(kv), e) +
                         costs::activation_bytes(td, static_cast<double>(f), 2, e);
  return {forward * (1 + costs::streaming_backward_ratio), [b, l, t, h, q, kv, f](cudaStream_t s) {
            const auto rope = [&](bool backward) {
              for (i64 i = 0; i < l.batch; ++i) {
                bf16* xq = b->qk.get() + i * l.seq * q;
                bf16* xk = b->qk.get() + t * q + i * l.seq * kv;
                if (backward) {
                  rope_backward(xq, l.seq, l.heads, l.head_dim, 10000.0f, 0, s);
                  rope_backward(xk, l.seq, l.kv_heads, l.head_dim, 10000.0f, 0, s);
                } else {
                  rope_forward(xq, l.seq, l.heads, l.head_dim, 10000.0f, 0, s);
                  rope_forward(xk, l.seq, l.kv_heads, l.head_dim, 10000.0f, 0, s);
                }
              }
            };
            for (int norm = 0; norm < 2; ++norm)
              rmsnorm_forward(b->y.get(), b->rstd.get(), b->x.get(), b->w.get(), t, h, 1e-5f, s);
            for (int add = 0; add < 2; ++add) add_inplace(b->resid.get(), b->x.get(), t * h, s);
            rope(false);
            swiglu_forward(b->act.get(), b->gate.get(), b->up.get(), t * f, s);
            for (int norm = 0; norm < 2; ++norm)
              rmsnorm_backward(b->dx.get(), b->dw.get(), b->y.get(), b->x.get(), b->w.get(), b->rstd.get(), t, h,
                               b->ws.get(), s);
            rope(true);  // (a residual's gradient passes through: the trainer runs no kernel for it)
            swiglu_backward(b->dgate.get(), b->dup.get(), b->act.get(), b->gate.get(), b->up.get(), t * f, s);
          }};
}

// The optimizer over `params` parameters as train_llama's CUDA engine steps them (the fp32
// gradients zeroed, clipped by their global norm, then AdamW on fp32 master weights and moments
// writing the bf16 copy), with the bytes step_time charges a bf16 run with fp32 main gradients:
// gradients 4, states (master, m, v) 12, weights 2 bytes a parameter.
inline task optimizer(i64 params) {
  struct buffers {
    filled<float> p, g, m, v, scalars, ws;
    filled<bf16> p16;
    i64 step = 0;
  };
  auto b = std::shared_ptr<buffers>(new buffers{filled<float>(params, 1), filled<float>(params, 2),
                                                filled<float>(params, 3), filled<float>(params, 4), filled<float>(2, 5),
                                                filled<float>(static_cast<i64>(grad_norm_workspace_floats(params)), 6),
                                                filled<bf16>(params, 7)});
  // AdamW's moments start at zero, as in training (the pattern's negative values would be NaN's root).
  TRAINPERF_CUDA_CHECK(cudaMemset(b->m.get(), 0, static_cast<std::size_t>(params) * sizeof(float)));
  TRAINPERF_CUDA_CHECK(cudaMemset(b->v.get(), 0, static_cast<std::size_t>(params) * sizeof(float)));
  return {static_cast<double>(params) * costs::optimizer_bytes_per_param(4, 12, 2, false), [b, params](cudaStream_t s) {
            TRAINPERF_CUDA_CHECK(cudaMemsetAsync(b->g.get(), 0, static_cast<std::size_t>(params) * sizeof(float), s));
            clip_grad_norm(b->g.get(), params, 1.0f, b->scalars.get(), b->ws.get(), s);
            adamw(b->p.get(), b->p16.get(), b->g.get(), b->m.get(), b->v.get(), params, adamw_config{}, ++b->step,
                  static_cast<const float*>(nullptr), s);
          }};
}

// Flash attention (attention_forward, then attention_backward) on the layer's shapes in bf16,
// with the FLOPs step_time charges each.
inline std::pair<task, task> attention(const layer_shape& l) {
  const i64 t = l.batch * l.seq, q = l.heads * l.head_dim, kv = l.kv_heads * l.head_dim;
  const int B = static_cast<int>(l.batch), T = static_cast<int>(l.seq), Hq = static_cast<int>(l.heads),
            Hkv = static_cast<int>(l.kv_heads), D = static_cast<int>(l.head_dim);
  const std::size_t ws_bytes = attention_workspace_bytes(B, T, Hq, Hkv, D);
  struct buffers {
    filled<bf16> q, k, v, dout, out, dq, dk, dv;
    filled<float> lse;
    filled<unsigned char> ws;
  };
  auto b = std::shared_ptr<buffers>(
      new buffers{filled<bf16>(t * q, 1), filled<bf16>(t * kv, 2), filled<bf16>(t * kv, 3), filled<bf16>(t * q, 4),
                  filled<bf16>(t * q, 5), filled<bf16>(t * q, 6), filled<bf16>(t * kv, 7), filled<bf16>(t * kv, 8),
                  filled<float>(t * l.heads, 9), filled<unsigned char>(static_cast<i64>(ws_bytes), 10)});
  const auto forward = [b, B, T, Hq, Hkv, D](cudaStream_t s) {
    attention_forward(b->out.get(), b->lse.get(), b->q.get(), b->k.get(), b->v.get(), B, T, Hq, Hkv, D, s);
  };
  forward(nullptr);  // the backward reads the forward's output and log-sum-exp
  TRAINPERF_CUDA_CHECK(cudaStreamSynchronize(nullptr));
  const double flops =
      costs::flash_attention_forward_flops(static_cast<double>(t), static_cast<double>(l.seq),
                                           static_cast<double>(l.heads), static_cast<double>(l.head_dim));
  return {{flops, forward},
          {costs::flash_attention_backward_ratio * flops, [b, B, T, Hq, Hkv, D, ws_bytes](cudaStream_t s) {
             attention_backward(b->dq.get(), b->dk.get(), b->dv.get(), b->dout.get(), b->q.get(), b->k.get(),
                                b->v.get(), b->out.get(), b->lse.get(), B, T, Hq, Hkv, D, b->ws.get(), ws_bytes, s);
           }}};
}

}  // namespace trainperf::cuda::measure
