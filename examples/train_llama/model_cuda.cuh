// train_llama's CUDA model: the CPU model's step (model.hpp) on trainperf's CUDA kernels, in mixed
// precision: fp32 master weights, gradients and AdamW states on the device (the host model's flat
// layout of this rank's part, so checkpoints are the CPU path's), a bf16 copy of the weights for
// the matmuls and the embedding, bf16 activations, fp32 reductions. Under tensor parallelism,
// this rank's shard (params.hpp), reducing over its tensor group where Megatron-LM and model.hpp
// do: after the row-parallel projections, on the input gradients of the column-parallel ones, in
// the vocabulary-parallel embedding and cross-entropy. Under pipeline parallelism, this stage's
// chunks, run by pipeline.hpp's executor (forward, backward, and the hand-off buffers).
#pragma once

#include <cuda_bf16.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <stdexcept>
#include <utility>
#include <vector>

#include <trainperf/kernels/cuda/attention.cuh>
#include <trainperf/kernels/cuda/check.cuh>
#include <trainperf/kernels/cuda/matmul.cuh>
#include <trainperf/kernels/cuda/ops.cuh>

#include <trainperf/partition.hpp>

#include "params.hpp"

namespace train_llama {

namespace cu = trainperf::cuda;
using bf16 = __nv_bfloat16;

// A device array; every byte it allocates is counted in `allocated`.
template <class X>
class device_array {
 public:
  device_array() = default;
  device_array(i64 n, std::int64_t& allocated) : n_(n) {
    TRAINPERF_CUDA_CHECK(cudaMalloc(&p_, static_cast<std::size_t>(std::max<i64>(n, 1)) * sizeof(X)));
    allocated += n * static_cast<std::int64_t>(sizeof(X));
  }
  device_array(const device_array&) = delete;
  device_array& operator=(const device_array&) = delete;
  device_array(device_array&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  device_array& operator=(device_array&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  ~device_array() {
    if (p_ != nullptr) cudaFree(p_);
  }
  X* get() const { return p_; }
  X* operator+(i64 offset) const { return p_ + offset; }
  i64 size() const { return n_; }
  std::size_t bytes() const { return static_cast<std::size_t>(n_) * sizeof(X); }

 private:
  X* p_ = nullptr;
  i64 n_ = 0;
};

// A CUDA stream (non-blocking) and an event (no timing), owned; movable.
class cuda_stream {
 public:
  cuda_stream() { TRAINPERF_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  cuda_stream(cuda_stream&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  cuda_stream& operator=(cuda_stream&& o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~cuda_stream() {
    if (s_ != nullptr) cudaStreamDestroy(s_);
  }
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};
class cuda_event {
 public:
  cuda_event() { TRAINPERF_CUDA_CHECK(cudaEventCreateWithFlags(&e_, cudaEventDisableTiming)); }
  cuda_event(cuda_event&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  cuda_event& operator=(cuda_event&& o) noexcept {
    std::swap(e_, o.e_);
    return *this;
  }
  ~cuda_event() {
    if (e_ != nullptr) cudaEventDestroy(e_);
  }
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

// What the model asks of its tensor-parallel group, on the model's stream (engine_cuda.cu: NCCL):
// in-place sums and maxima, and with sequence parallelism their halves (collectives.hpp's, in
// bf16: whole holds size() parts of n elements, part is this rank's). Without one (nullptr) the
// model is whole.
class device_tensor_group {
 public:
  virtual ~device_tensor_group() = default;
  virtual void sum(bf16* x, i64 n) const = 0;
  virtual void sum(float* x, i64 n) const = 0;
  virtual void max(float* x, i64 n) const = 0;
  virtual void reduce_scatter(const bf16* whole, bf16* part, i64 n) const = 0;
  virtual void allgather(const bf16* part, bf16* whole, i64 n) const = 0;
};

class cuda_model {
 public:
  using chunk = llama_params::chunk;

  // m: this rank's part (dimensions, offsets, and its fresh or resumed state, uploaded here); its
  // micro-batches are B sequences of T tokens. The flat buffers hold `capacity` >= m.total
  // elements (ZeRO-1 pads them to equal parts; the padding stays zero); the AdamW moments are
  // those of [state.begin, state.end) (ZeRO-1: this rank's part), taken from m's whole moments,
  // or m's moments of that part, or zeros where m has none. sequence_parallel: Megatron-LM's, as
  // model.hpp runs it.
  cuda_model(const llama_params& m, i64 B, i64 T, cudaStream_t stream, cu::backend backend, std::int64_t& allocated,
             i64 capacity, trainperf::index_range state, bool sequence_parallel)
      : chunks(m.chunks),
        sequence_parallel(sequence_parallel),
        m_(m),
        B_(B),
        T_(T),
        N_(B * T),
        stream_(stream),
        backend_(backend),
        allocated_(allocated) {
    const i64 P = m.total, N = N_;
    auto& a = allocated_;
    params = {capacity, a}, params16 = {capacity, a}, grads = {capacity, a};
    adam_m = {state.size(), a}, adam_v = {state.size(), a};
    scalar_ = {1, a};
    attn_ws_ = {static_cast<i64>(cu::attention_workspace_bytes(ib(B), ib(T), ib(m.Hq), ib(m.Hkv), ib(m.D))), a};
    norm_ws_ = {static_cast<i64>(cu::rmsnorm_backward_workspace_floats(N, m.C)), a};
    if (m.tp > 1 && m.has_output) ce_ws_ = {static_cast<i64>(cu::vp_cross_entropy_workspace_floats(N)), a};
    TRAINPERF_CUDA_CHECK(cudaMemsetAsync(params.get(), 0, params.bytes(), stream_));
    TRAINPERF_CUDA_CHECK(cudaMemsetAsync(grads.get(), 0, grads.bytes(), stream_));
    upload(params.get(), m.params.data(), P);
    const i64 real = std::max<i64>(0, std::min(state.end, P) - state.begin);  // the part's elements in the model
    for (auto [d, h] : {std::pair{&adam_m, &m.adam_m}, std::pair{&adam_v, &m.adam_v}}) {
      TRAINPERF_CUDA_CHECK(cudaMemsetAsync(d->get(), 0, d->bytes(), stream_));
      if (static_cast<i64>(h->size()) == P)
        upload(d->get(), h->data() + state.begin, real);
      else if (static_cast<i64>(h->size()) == real)
        upload(d->get(), h->data(), real);
    }
    cu::cast(params16.get(), params.get(), capacity, stream_);
  }

  std::vector<chunk> chunks;                   // this rank's, in order (pipeline.hpp)
  const device_tensor_group* group = nullptr;  // the tensor-parallel group; nullptr with tp 1
  // Megatron-LM's sequence parallelism: the residual stream, the norms and the residual adds
  // hold this rank's 1/tp of the token rows; all-gathered before the column-parallel layers,
  // reduce-scattered after the row-parallel ones (instead of one all-reduce).
  bool sequence_parallel = false;
  // This rank's part: fp32 master weights, their bf16 copy, fp32 gradients and AdamW moments.
  device_array<float> params, grads, adam_m, adam_v;
  device_array<bf16> params16;

  // A micro-batch's activations through one chunk (bf16; norm statistics and losses fp32), its
  // tokens and targets on the device, and the gradient scratch (dx also carries the gradient of
  // the chunk's output in and of its input out).
  struct activations {
    std::vector<device_array<bf16>> x, n1, q, k, v, att, xmid, n2, gate, up, act;
    std::vector<device_array<float>> rstd1, lse, rstd2;
    device_array<bf16> nf, logits;  // the output chunk's; the logits become their gradient in place
    device_array<float> rstdf, losses;
    device_array<std::int32_t> tokens, targets;
    device_array<bf16> dx, dx2, dn, dq, dk, dv, datt, dgate, dup, dact;
    // Sequence parallelism (model.hpp's): the norms' outputs on this rank's rows (n1s, n2s, nfs), a
    // row-parallel layer's partial output over all rows (partial), a stream gradient over all rows
    // (whole), the norms' input gradients on this rank's rows (dns).
    device_array<bf16> n1s, n2s, nfs, partial, whole, dns;
    // Nothing in it outlives a backward pass: a chunk's slots can take turns with one set.
    std::array<device_array<bf16>*, 10> gradient_scratch() {
      return {&dx, &dx2, &dn, &dq, &dk, &dv, &datt, &dgate, &dup, &dact};
    }
  };
  // pipeline.hpp's hand-off buffers, of handoff_elements() each.
  [[nodiscard]] i64 handoff_elements() const { return stream_rows() * m_.C; }
  static device_array<bf16>& input(activations& a) { return a.x.front(); }
  static device_array<bf16>& output(activations& a) { return a.x.back(); }
  static device_array<bf16>& gradient(activations& a) { return a.dx; }

  activations make_activations(i64 B, i64 T, const chunk& c, bool gradient_scratch = true) {
    if (B != B_ || T != T_) throw std::logic_error("train_llama: the CUDA model was built for another micro-batch");
    const i64 N = N_, S = stream_rows(), C = m_.C, Q = m_.Q, KV = m_.KV, F = m_.F;
    auto& al = allocated_;
    activations a;
    for (i64 l = 0; l <= c.count; ++l) a.x.emplace_back(S * C, al);
    for (i64 l = 0; l < c.count; ++l) {
      a.n1.emplace_back(N * C, al), a.rstd1.emplace_back(S, al), a.q.emplace_back(N * Q, al);
      a.k.emplace_back(N * KV, al), a.v.emplace_back(N * KV, al), a.att.emplace_back(N * Q, al);
      a.lse.emplace_back(N * m_.Hq, al), a.xmid.emplace_back(S * C, al), a.n2.emplace_back(N * C, al);
      a.rstd2.emplace_back(S, al), a.gate.emplace_back(N * F, al), a.up.emplace_back(N * F, al);
      a.act.emplace_back(N * F, al);
    }
    if (c.output) a.nf = {N * C, al}, a.rstdf = {S, al}, a.logits = {N * m_.V, al}, a.losses = {N, al};
    a.tokens = {N, al}, a.targets = {N, al};
    if (gradient_scratch) {
      a.dx = {S * C, al}, a.dx2 = {S * C, al}, a.dn = {N * C, al}, a.dq = {N * Q, al}, a.dk = {N * KV, al};
      a.dv = {N * KV, al}, a.datt = {N * Q, al}, a.dgate = {N * F, al}, a.dup = {N * F, al}, a.dact = {N * F, al};
    }
    if (sequence_parallel) {
      a.n1s = {S * C, al}, a.n2s = {S * C, al}, a.nfs = {S * C, al}, a.partial = {N * C, al};
      a.whole = {N * C, al}, a.dns = {S * C, al};
    }
    return a;
  }

  // Forward of chunk c (model.hpp's forward): from the embedding of tokens or from a.x[0] (the
  // previous stage's output, received there). When c ends with the output layer, returns the mean
  // loss against targets (a host sync) and, with backward, leaves the gradient of loss_scale x
  // mean loss in a.logits; else returns 0 and a.x[c.count] is the chunk's output.
  float forward(activations& a, const chunk& c, const std::int32_t* tokens, const std::int32_t* targets, bool backward,
                float loss_scale) {
    const i64 C = m_.C, Q = m_.Q, KV = m_.KV, F = m_.F, N = N_, S = stream_rows();
    const bool sp = sequence_parallel;
    if (c.embedding) {
      upload(a.tokens.get(), tokens, N);
      if (group == nullptr) {
        cu::embedding_forward(a.x[0].get(), a.tokens.get(), params16 + m_.emb, N, C, m_.V, stream_);
      } else {  // vocabulary-parallel: each rank's rows, zeros elsewhere, summed over the group
        bf16* part = sp ? a.partial.get() : a.x[0].get();
        cu::embedding_forward(part, a.tokens.get(), params16 + m_.emb, N, C, m_.vocab_begin, m_.V, stream_);
        leave(part, a.x[0].get());
      }
    }
    for (i64 l = 0; l < c.count; ++l) {
      const auto& o = m_.layers[static_cast<std::size_t>(c.first + l)];
      const auto s = static_cast<std::size_t>(l);
      bf16* n1 = sp ? a.n1s.get() : a.n1[s].get();
      cu::rmsnorm_forward(n1, a.rstd1[s].get(), a.x[s].get(), params + o.attn_norm, S, C, m_.norm_eps, stream_);
      const bf16* in1 = enter(n1, a.n1[s].get());
      linear(a.q[s].get(), in1, o.wq, C, Q);
      linear(a.k[s].get(), in1, o.wk, C, KV);
      linear(a.v[s].get(), in1, o.wv, C, KV);
      rope(a.q[s].get(), m_.Hq, false);
      rope(a.k[s].get(), m_.Hkv, false);
      cu::attention_forward(a.att[s].get(), a.lse[s].get(), a.q[s].get(), a.k[s].get(), a.v[s].get(), ib(B_), ib(T_),
                            ib(m_.Hq), ib(m_.Hkv), ib(m_.D), stream_);
      row_parallel(a, a.xmid[s].get(), a.att[s].get(), o.wo, Q, a.x[s].get());  // + the residual stream
      bf16* n2 = sp ? a.n2s.get() : a.n2[s].get();
      cu::rmsnorm_forward(n2, a.rstd2[s].get(), a.xmid[s].get(), params + o.mlp_norm, S, C, m_.norm_eps, stream_);
      const bf16* in2 = enter(n2, a.n2[s].get());
      linear(a.gate[s].get(), in2, o.wgate, C, F);
      linear(a.up[s].get(), in2, o.wup, C, F);
      cu::swiglu_forward(a.act[s].get(), a.gate[s].get(), a.up[s].get(), N * F, stream_);
      row_parallel(a, a.x[s + 1].get(), a.act[s].get(), o.wdown, F, a.xmid[s].get());
    }
    if (!c.output) return 0;
    bf16* nf = sp ? a.nfs.get() : a.nf.get();
    cu::rmsnorm_forward(nf, a.rstdf.get(), a.x[static_cast<std::size_t>(c.count)].get(), params + m_.final_norm, S, C,
                        m_.norm_eps, stream_);
    linear(a.logits.get(), enter(nf, a.nf.get()), m_.head, C, m_.V);
    upload(a.targets.get(), targets, N);
    // dlogits overwrite the logits in place: the gradient of loss_scale x mean loss.
    bf16* dlogits = backward ? a.logits.get() : nullptr;
    const float dloss = loss_scale / static_cast<float>(N);
    if (group == nullptr) {
      cu::cross_entropy(a.losses.get(), dlogits, a.logits.get(), a.targets.get(), N, m_.V, dloss, stream_);
    } else {
      cu::cross_entropy_vocab_parallel(
          a.losses.get(), dlogits, a.logits.get(), a.targets.get(), N, m_.V, m_.vocab_begin, dloss,
          [&](float* x, i64 n) { group->max(x, n); }, [&](float* x, i64 n) { group->sum(x, n); }, ce_ws_.get(),
          stream_);
    }
    cu::mean_loss(scalar_.get(), a.losses.get(), N, stream_);
    // The loop reads every micro-batch's loss: one host sync per micro-batch (the GPU idles while
    // the next batch's kernels are queued; measurable on tiny models, counted in the MFU).
    float loss = 0;
    TRAINPERF_CUDA_CHECK(cudaMemcpyAsync(&loss, scalar_.get(), sizeof loss, cudaMemcpyDeviceToHost, stream_));
    TRAINPERF_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return loss;
  }

  // Backward of chunk c after its forward (model.hpp's backward): from a.logits (the output
  // chunk's dlogits) or a.dx (the gradient of its output, received). Accumulates into grads;
  // leaves the gradient of its input in a.dx unless c starts with the embedding.
  void backward(activations& a, const chunk& c, const std::int32_t* /*tokens: a.tokens holds them*/) {
    const i64 C = m_.C, Q = m_.Q, KV = m_.KV, F = m_.F, N = N_, S = stream_rows();
    const auto zero = [&](const device_array<bf16>& d) {
      TRAINPERF_CUDA_CHECK(cudaMemsetAsync(d.get(), 0, d.bytes(), stream_));
    };
    const auto copy = [&](const device_array<bf16>& to, const device_array<bf16>& from) {
      TRAINPERF_CUDA_CHECK(cudaMemcpyAsync(to.get(), from.get(), to.bytes(), cudaMemcpyDeviceToDevice, stream_));
    };
    bf16* dn = sequence_parallel ? a.dns.get() : a.dn.get();  // a norm's output gradient, its rows
    if (c.output) {
      linear_backward(a.dn.get(), m_.head, a.logits.get(), a.nf.get(), C, m_.V, false);
      leave(a.dn.get(), dn);  // column-parallel (vocabulary): each rank's rows' share
      zero(a.dx);
      cu::rmsnorm_backward(a.dx.get(), grads + m_.final_norm, dn, a.x[static_cast<std::size_t>(c.count)].get(),
                           params + m_.final_norm, a.rstdf.get(), S, C, norm_ws_.get(), stream_);
    }
    for (i64 l = c.count - 1; l >= 0; --l) {
      const auto& o = m_.layers[static_cast<std::size_t>(c.first + l)];
      const auto s = static_cast<std::size_t>(l);
      // x[l+1] = xmid + act · Wdown^T
      linear_backward(a.dact.get(), o.wdown, enter(a.dx.get(), a.whole.get()), a.act[s].get(), F, C, false);
      zero(a.dgate), zero(a.dup);
      cu::swiglu_backward(a.dgate.get(), a.dup.get(), a.dact.get(), a.gate[s].get(), a.up[s].get(), N * F, stream_);
      linear_backward(a.dn.get(), o.wgate, a.dgate.get(), a.n2[s].get(), C, F, false);
      linear_backward(a.dn.get(), o.wup, a.dup.get(), a.n2[s].get(), C, F, true);
      leave(a.dn.get(), dn);  // column-parallel gate and up: each rank's columns' share
      copy(a.dx2, a.dx);      // the residual path
      cu::rmsnorm_backward(a.dx2.get(), grads + o.mlp_norm, dn, a.xmid[s].get(), params + o.mlp_norm, a.rstd2[s].get(),
                           S, C, norm_ws_.get(), stream_);
      // xmid = x[l] + att · Wo^T
      linear_backward(a.datt.get(), o.wo, enter(a.dx2.get(), a.whole.get()), a.att[s].get(), Q, C, false);
      cu::attention_backward(a.dq.get(), a.dk.get(), a.dv.get(), a.datt.get(), a.q[s].get(), a.k[s].get(), a.v[s].get(),
                             a.att[s].get(), a.lse[s].get(), ib(B_), ib(T_), ib(m_.Hq), ib(m_.Hkv), ib(m_.D),
                             attn_ws_.get(), attn_ws_.bytes(), stream_);
      rope(a.dq.get(), m_.Hq, true);
      rope(a.dk.get(), m_.Hkv, true);
      linear_backward(a.dn.get(), o.wq, a.dq.get(), a.n1[s].get(), C, Q, false);
      linear_backward(a.dn.get(), o.wk, a.dk.get(), a.n1[s].get(), C, KV, true);
      linear_backward(a.dn.get(), o.wv, a.dv.get(), a.n1[s].get(), C, KV, true);
      leave(a.dn.get(), dn);  // column-parallel Q, K, V: each rank's heads' share
      copy(a.dx, a.dx2);
      cu::rmsnorm_backward(a.dx.get(), grads + o.attn_norm, dn, a.x[s].get(), params + o.attn_norm, a.rstd1[s].get(), S,
                           C, norm_ws_.get(), stream_);
    }
    if (!c.embedding) return;
    const bf16* dy = enter(a.dx.get(), a.whole.get());
    if (group == nullptr)
      cu::embedding_backward(grads + m_.emb, dy, a.tokens.get(), N, C, m_.V, stream_);
    else
      cu::embedding_backward(grads + m_.emb, dy, a.tokens.get(), N, C, m_.vocab_begin, m_.V, stream_);
  }

 private:
  static int ib(i64 x) { return static_cast<int>(x); }
  template <class X>
  void upload(X* d, const X* h, i64 n) {
    if (n > 0)
      TRAINPERF_CUDA_CHECK(
          cudaMemcpyAsync(d, h, static_cast<std::size_t>(n) * sizeof(X), cudaMemcpyHostToDevice, stream_));
  }
  // The token rows of the residual stream here: all, or this rank's part with sequence parallelism.
  [[nodiscard]] i64 stream_rows() const { return sequence_parallel ? N_ / m_.tp : N_; }
  // model.hpp's leave: `partial` holds this rank's share of N x C outputs; `out` gets the group's
  // sum, all rows (in place) or this rank's with sequence parallelism.
  void leave(bf16* partial, bf16* out) const {
    if (group == nullptr) return;
    if (sequence_parallel)
      group->reduce_scatter(partial, out, stream_rows() * m_.C);
    else
      group->sum(partial, N_ * m_.C);
  }
  // model.hpp's enter: the N x C rows a column-parallel layer reads, gathered into `whole` from
  // the parts when the stream is sequence-parallel, else the stream itself.
  const bf16* enter(const bf16* stream, bf16* whole) const {
    if (!sequence_parallel) return stream;
    group->allgather(stream, whole, stream_rows() * m_.C);
    return whole;
  }
  // out[S, C] = residual[S, C] + the group's sum of inp[N, I] · W[C, I]^T (a row-parallel layer):
  // one GEMM with the residual in its epilogue when the model is whole; else this rank's share,
  // summed (with sequence parallelism, scattered) over the group, then the residual added.
  void row_parallel(activations& a, bf16* out, const bf16* inp, i64 w, i64 I, const bf16* residual) {
    if (group == nullptr) return linear(out, inp, w, I, m_.C, residual);
    bf16* part = sequence_parallel ? a.partial.get() : out;
    linear(part, inp, w, I, m_.C);
    leave(part, out);
    cu::add_inplace(out, residual, stream_rows() * m_.C, stream_);
  }

  // out[N, O] = inp[N, I] · W[O, I]^T (+ residual[N, O]): the CPU linear_forward.
  void linear(bf16* out, const bf16* inp, i64 w, i64 I, i64 O, const bf16* residual = nullptr) {
    cu::gemm<bf16, bf16>(backend_, false, true, N_, O, I, 1.0f, inp, I, params16 + w, I, 0.0f, out, O,
                         residual ? cu::epilogue::residual : cu::epilogue::none, nullptr, residual, stream_);
  }
  // dinp[N, I] (= or +=) dout[N, O] · W[O, I]; dW[O, I] += dout^T · inp in fp32: the CPU
  // linear_backward. accumulate_input: dinp already holds another branch's gradient.
  void linear_backward(bf16* dinp, i64 w, const bf16* dout, const bf16* inp, i64 I, i64 O, bool accumulate_input) {
    cu::gemm<bf16, bf16>(backend_, false, false, N_, I, O, 1.0f, dout, O, params16 + w, I,
                         accumulate_input ? 1.0f : 0.0f, dinp, I, cu::epilogue::none, nullptr, nullptr, stream_);
    cu::gemm<bf16, float>(backend_, true, false, O, I, N_, 1.0f, dout, O, inp, I, 1.0f, grads + w, I,
                          cu::epilogue::none, nullptr, nullptr, stream_);
  }
  void rope(bf16* x, i64 H, bool inverse) {
    for (i64 b = 0; b < B_; ++b) {  // positions restart at 0 in every sequence, as on the CPU
      if (inverse)
        cu::rope_backward(x + b * T_ * H * m_.D, T_, H, m_.D, m_.rope_theta, 0, stream_);
      else
        cu::rope_forward(x + b * T_ * H * m_.D, T_, H, m_.D, m_.rope_theta, 0, stream_);
    }
  }

  const llama_params& m_;  // this rank's part on the host: dimensions and offsets (it outlives the model)
  i64 B_, T_, N_;
  cudaStream_t stream_;
  cu::backend backend_;
  std::int64_t& allocated_;
  device_array<float> scalar_, norm_ws_, ce_ws_;
  device_array<unsigned char> attn_ws_;
};

}  // namespace train_llama
