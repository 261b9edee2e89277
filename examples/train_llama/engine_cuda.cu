// train_llama's CUDA engine: the CPU model's step (model.hpp) on trainperf's CUDA kernels, in
// mixed precision: fp32 master weights, gradients and AdamW states on the device (the host
// model's flat layout, so checkpoints are the CPU path's), a bf16 copy of the weights for the
// matmuls and the embedding, bf16 activations, fp32 reductions. Data parallel over NCCL (the
// layout's "dp" groups) when several MPI processes run, one GPU each.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <trainperf/error.hpp>
#include <trainperf/hardware.hpp>
#include <trainperf/kernels/cuda/attention.cuh>
#include <trainperf/kernels/cuda/check.cuh>
#include <trainperf/kernels/cuda/matmul.cuh>
#include <trainperf/kernels/cuda/ops.cuh>
#include <trainperf/layout.hpp>
#include <trainperf/units.hpp>

#ifdef TRAINPERF_WITH_NCCL
#include <trainperf/comm/nccl.hpp>
#endif

#include "engine.hpp"

namespace train_llama {
namespace {

namespace cu = trainperf::cuda;
using bf16 = __nv_bfloat16;

// A device array; every byte the engine allocates is counted in `allocated`.
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
  device_array(device_array&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; }
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

 private:
  X* p_ = nullptr;
  i64 n_ = 0;
};

class cuda_engine final : public engine {
 public:
  cuda_engine(const llama_params& m, i64 B, i64 T, int world, cu::backend gemm)
      : m_(m), B_(B), T_(T), N_(B * T), world_(world), device_(pick_device(world)), backend_(gemm) {
    TRAINPERF_CUDA_CHECK(cudaGetDeviceProperties(&prop_, device_));
    if (prop_.major < 8)
      throw trainperf::config_error("device", std::string("the CUDA kernels need compute capability 8.0 or newer "
                                                          "(Ampere, Hopper); ") +
                                                  prop_.name + " has " + std::to_string(prop_.major) + "." +
                                                  std::to_string(prop_.minor) + "; train with --device cpu");
    if (m_.D != 64 && m_.D != 128)
      throw trainperf::config_error("head_dim", "the CUDA attention kernels take head dimension 64 or 128, got " +
                                                    std::to_string(m_.D) + "; choose hidden / heads = 64 or 128");
    const i64 P = m.total, C = m_.C, Q = m_.Q, KV = m_.KV, F = m_.F, V = m_.V, L = m_.L, N = N_;
    auto& a = allocated_;
    params_ = {P, a}, params16_ = {P, a}, grads_ = {P, a}, adam_m_ = {P, a}, adam_v_ = {P, a};
    for (i64 l = 0; l <= L; ++l) x_.emplace_back(N * C, a);
    for (i64 l = 0; l < L; ++l) {
      n1_.emplace_back(N * C, a), rstd1_.emplace_back(N, a), q_.emplace_back(N * Q, a), k_.emplace_back(N * KV, a);
      v_.emplace_back(N * KV, a), att_.emplace_back(N * Q, a), lse_.emplace_back(N * m_.Hq, a);
      xmid_.emplace_back(N * C, a), n2_.emplace_back(N * C, a), rstd2_.emplace_back(N, a);
      gate_.emplace_back(N * F, a), up_.emplace_back(N * F, a), act_.emplace_back(N * F, a);
    }
    nf_ = {N * C, a}, rstdf_ = {N, a}, logits_ = {N * V, a}, losses_ = {N, a}, scalars_ = {2, a};
    dx_ = {N * C, a}, dx2_ = {N * C, a}, dn_ = {N * C, a}, dq_ = {N * Q, a}, dk_ = {N * KV, a}, dv_ = {N * KV, a};
    datt_ = {N * Q, a}, dgate_ = {N * F, a}, dup_ = {N * F, a}, dact_ = {N * F, a};
    tokens_ = {N, a}, targets_ = {N, a};
    attn_ws_ = {static_cast<i64>(cu::attention_workspace_bytes(static_cast<int>(B), static_cast<int>(T),
                                                               static_cast<int>(m_.Hq), static_cast<int>(m_.Hkv),
                                                               static_cast<int>(m_.D))),
                a};
    norm_ws_ = {static_cast<i64>(cu::rmsnorm_backward_workspace_floats(N, C)), a};
    grad_ws_ = {static_cast<i64>(cu::grad_norm_workspace_floats(P)), a};
    // The host model's state: fresh weights, or a resumed checkpoint's weights and Adam moments.
    upload(params_, m.params), upload(adam_m_, m.adam_m), upload(adam_v_, m.adam_v);
    cu::cast(params16_.get(), params_.get(), P, stream_);
#ifdef TRAINPERF_WITH_NCCL
    if (world > 1)
      comms_ = std::make_unique<trainperf::comm::nccl_communicators>(trainperf::layout(world, {}),
                                                                     std::vector<std::string>{"dp"});
#endif
    sync();
    sample_memory();
  }
  std::string name() const override { return std::to_string(world_) + " x " + prop_.name; }
  trainperf::dtype compute_dtype() const override { return trainperf::dtype::bf16; }

  void zero_grads() override { TRAINPERF_CUDA_CHECK(cudaMemsetAsync(grads_.get(), 0, bytes(grads_), stream_)); }

  float step(const std::int32_t* tokens, const std::int32_t* targets, bool backward, float loss_scale) override {
    TRAINPERF_CUDA_CHECK(cudaMemcpyAsync(tokens_.get(), tokens, bytes(tokens_), cudaMemcpyHostToDevice, stream_));
    TRAINPERF_CUDA_CHECK(cudaMemcpyAsync(targets_.get(), targets, bytes(targets_), cudaMemcpyHostToDevice, stream_));
    forward();
    // dlogits overwrite the logits in place: the gradient of loss_scale x mean loss.
    cu::cross_entropy(losses_.get(), backward ? logits_.get() : static_cast<bf16*>(nullptr), logits_.get(),
                      targets_.get(), N_, m_.V, loss_scale / static_cast<float>(N_), stream_);
    cu::mean_loss(scalars_.get(), losses_.get(), N_, stream_);
    if (backward) this->backward();
    // The loop reads every micro-batch's loss: one host sync per micro-batch (the GPU idles
    // while the next batch's kernels are queued; measurable on tiny models, counted in the MFU).
    float loss = 0;
    TRAINPERF_CUDA_CHECK(cudaMemcpyAsync(&loss, scalars_.get(), sizeof loss, cudaMemcpyDeviceToHost, stream_));
    sync();
    sample_memory();
    return loss;
  }

  void allreduce_grads() override {
#ifdef TRAINPERF_WITH_NCCL
    if (comms_)
      comms_->group("dp").all_reduce(grads_.get(), static_cast<std::size_t>(grads_.size()),
                                     trainperf::comm::reduce_op::sum, stream_);
#endif
  }

  float clip_and_update(float clip, const adamw_step& c, i64 step) override {
    const i64 P = params_.size();
    cu::clip_grad_norm(grads_.get(), P, clip, scalars_ + 1, grad_ws_.get(), stream_);
    cu::adamw(params_.get(), params16_.get(), grads_.get(), adam_m_.get(), adam_v_.get(), P,
              {.lr = c.lr, .beta1 = c.beta1, .beta2 = c.beta2, .eps = c.eps, .weight_decay = c.weight_decay}, step,
              static_cast<const float*>(nullptr), stream_);
    float norm = 0;
    TRAINPERF_CUDA_CHECK(cudaMemcpyAsync(&norm, scalars_ + 1, sizeof norm, cudaMemcpyDeviceToHost, stream_));
    sync();
    return norm;
  }

  void to_host(llama_params& m) override {
    download(m.params, params_), download(m.adam_m, adam_m_), download(m.adam_v, adam_v_);
  }

  memory_reading memory() const override {
    return {peak_in_use_, static_cast<std::int64_t>(prop_.totalGlobalMem),
            "device memory in use (cudaMemGetInfo, the most seen after a step: CUDA context, cuBLASLt, any other "
            "process, and the " +
                trainperf::format_bytes(allocated_) + " the engine allocated)"};
  }

  std::pair<double, std::string> default_peak() const override {
    const trainperf::device_spec* dev = trainperf::find_device_by_product_name(prop_.name);
    if (dev == nullptr)
      throw trainperf::config_error("peak-flops", std::string("the GPU '") + prop_.name +
                                                      "' is not in trainperf's device table; pass its dense bf16 "
                                                      "peak with --peak-flops");
    return {trainperf::require_peak(*dev, trainperf::dtype::bf16), std::string(prop_.name) + ": trainperf's " +
                                                                       std::string(dev->name) + ", dense bf16 peak (" +
                                                                       std::string(dev->source) + ")"};
  }

 private:
  // The GPU of this process: with several processes, one per GPU of the node (by local rank),
  // chosen before anything touches the device.
  static int pick_device(int world) {
#ifdef TRAINPERF_WITH_NCCL
    if (world > 1) trainperf::comm::select_local_device();
#else
    if (world > 1)
      throw trainperf::config_error("device",
                                    "data parallelism on GPUs needs NCCL, and this train_llama was built without it; "
                                    "run one process, or rebuild where NCCL is found (NCCL_ROOT)");
#endif
    int device = 0;
    TRAINPERF_CUDA_CHECK(cudaGetDevice(&device));
    return device;
  }

  template <class X>
  static std::size_t bytes(const device_array<X>& d) {
    return static_cast<std::size_t>(d.size()) * sizeof(X);
  }
  void upload(device_array<float>& d, const std::vector<float>& h) {
    TRAINPERF_CUDA_CHECK(cudaMemcpyAsync(d.get(), h.data(), bytes(d), cudaMemcpyHostToDevice, stream_));
  }
  void download(std::vector<float>& h, const device_array<float>& d) {
    TRAINPERF_CUDA_CHECK(cudaMemcpyAsync(h.data(), d.get(), bytes(d), cudaMemcpyDeviceToHost, stream_));
    sync();
  }
  void sync() { TRAINPERF_CUDA_CHECK(cudaStreamSynchronize(stream_)); }
  void sample_memory() {
    std::size_t free = 0, total = 0;
    TRAINPERF_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    peak_in_use_ = std::max(peak_in_use_, static_cast<std::int64_t>(total - free));
  }

  // out[N, O] = inp[N, I] · W[O, I]^T (+ residual[N, O]): the CPU linear_forward.
  void linear(bf16* out, const bf16* inp, i64 w, i64 I, i64 O, const bf16* residual = nullptr) {
    cu::gemm<bf16, bf16>(backend_, false, true, N_, O, I, 1.0f, inp, I, params16_ + w, I, 0.0f, out, O,
                         residual ? cu::epilogue::residual : cu::epilogue::none, nullptr, residual, stream_);
  }
  // dinp[N, I] (= or +=) dout[N, O] · W[O, I]; dW[O, I] += dout^T · inp in fp32: the CPU
  // linear_backward. accumulate_input: dinp already holds another branch's gradient.
  void linear_backward(bf16* dinp, i64 w, const bf16* dout, const bf16* inp, i64 I, i64 O, bool accumulate_input) {
    if (dinp != nullptr)
      cu::gemm<bf16, bf16>(backend_, false, false, N_, I, O, 1.0f, dout, O, params16_ + w, I,
                           accumulate_input ? 1.0f : 0.0f, dinp, I, cu::epilogue::none, nullptr, nullptr, stream_);
    cu::gemm<bf16, float>(backend_, true, false, O, I, N_, 1.0f, dout, O, inp, I, 1.0f, grads_ + w, I,
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
  int ib(i64 x) const { return static_cast<int>(x); }

  void forward() {
    const i64 C = m_.C, Q = m_.Q, KV = m_.KV, F = m_.F, L = m_.L, N = N_;
    const llama_params& lo = m_;
    cu::embedding_forward(x_[0].get(), tokens_.get(), params16_ + lo.emb, N, C, m_.V, stream_);
    for (i64 l = 0; l < L; ++l) {
      const auto& o = lo.layers[static_cast<std::size_t>(l)];
      const auto s = static_cast<std::size_t>(l);
      cu::rmsnorm_forward(n1_[s].get(), rstd1_[s].get(), x_[s].get(), params_ + o.attn_norm, N, C, m_.norm_eps,
                          stream_);
      linear(q_[s].get(), n1_[s].get(), o.wq, C, Q);
      linear(k_[s].get(), n1_[s].get(), o.wk, C, KV);
      linear(v_[s].get(), n1_[s].get(), o.wv, C, KV);
      rope(q_[s].get(), m_.Hq, false);
      rope(k_[s].get(), m_.Hkv, false);
      cu::attention_forward(att_[s].get(), lse_[s].get(), q_[s].get(), k_[s].get(), v_[s].get(), ib(B_), ib(T_),
                            ib(m_.Hq), ib(m_.Hkv), ib(m_.D), stream_);
      linear(xmid_[s].get(), att_[s].get(), o.wo, Q, C, x_[s].get());  // + the residual stream
      cu::rmsnorm_forward(n2_[s].get(), rstd2_[s].get(), xmid_[s].get(), params_ + o.mlp_norm, N, C, m_.norm_eps,
                          stream_);
      linear(gate_[s].get(), n2_[s].get(), o.wgate, C, F);
      linear(up_[s].get(), n2_[s].get(), o.wup, C, F);
      cu::swiglu_forward(act_[s].get(), gate_[s].get(), up_[s].get(), N * F, stream_);
      linear(x_[s + 1].get(), act_[s].get(), o.wdown, F, C, xmid_[s].get());
    }
    cu::rmsnorm_forward(nf_.get(), rstdf_.get(), x_[static_cast<std::size_t>(L)].get(), params_ + lo.final_norm, N, C,
                        m_.norm_eps, stream_);
    linear(logits_.get(), nf_.get(), lo.head, C, m_.V);
  }

  void backward() {
    const i64 C = m_.C, Q = m_.Q, KV = m_.KV, F = m_.F, L = m_.L, N = N_;
    const llama_params& lo = m_;
    const auto zero = [&](const device_array<bf16>& d) {
      TRAINPERF_CUDA_CHECK(cudaMemsetAsync(d.get(), 0, bytes(d), stream_));
    };
    const auto copy = [&](const device_array<bf16>& to, const device_array<bf16>& from) {
      TRAINPERF_CUDA_CHECK(cudaMemcpyAsync(to.get(), from.get(), bytes(to), cudaMemcpyDeviceToDevice, stream_));
    };
    linear_backward(dn_.get(), lo.head, logits_.get(), nf_.get(), C, m_.V, false);
    zero(dx_);
    cu::rmsnorm_backward(dx_.get(), grads_ + lo.final_norm, dn_.get(), x_[static_cast<std::size_t>(L)].get(),
                         params_ + lo.final_norm, rstdf_.get(), N, C, norm_ws_.get(), stream_);
    for (i64 l = L - 1; l >= 0; --l) {
      const auto& o = lo.layers[static_cast<std::size_t>(l)];
      const auto s = static_cast<std::size_t>(l);
      // x[l+1] = xmid + act · Wdown^T
      linear_backward(dact_.get(), o.wdown, dx_.get(), act_[s].get(), F, C, false);
      zero(dgate_), zero(dup_);
      cu::swiglu_backward(dgate_.get(), dup_.get(), dact_.get(), gate_[s].get(), up_[s].get(), N * F, stream_);
      linear_backward(dn_.get(), o.wgate, dgate_.get(), n2_[s].get(), C, F, false);
      linear_backward(dn_.get(), o.wup, dup_.get(), n2_[s].get(), C, F, true);
      copy(dx2_, dx_);  // the residual path
      cu::rmsnorm_backward(dx2_.get(), grads_ + o.mlp_norm, dn_.get(), xmid_[s].get(), params_ + o.mlp_norm,
                           rstd2_[s].get(), N, C, norm_ws_.get(), stream_);
      // xmid = x[l] + att · Wo^T
      linear_backward(datt_.get(), o.wo, dx2_.get(), att_[s].get(), Q, C, false);
      cu::attention_backward(dq_.get(), dk_.get(), dv_.get(), datt_.get(), q_[s].get(), k_[s].get(), v_[s].get(),
                             att_[s].get(), lse_[s].get(), ib(B_), ib(T_), ib(m_.Hq), ib(m_.Hkv), ib(m_.D),
                             attn_ws_.get(), bytes(attn_ws_), stream_);
      rope(dq_.get(), m_.Hq, true);
      rope(dk_.get(), m_.Hkv, true);
      linear_backward(dn_.get(), o.wq, dq_.get(), n1_[s].get(), C, Q, false);
      linear_backward(dn_.get(), o.wk, dk_.get(), n1_[s].get(), C, KV, true);
      linear_backward(dn_.get(), o.wv, dv_.get(), n1_[s].get(), C, KV, true);
      copy(dx_, dx2_);
      cu::rmsnorm_backward(dx_.get(), grads_ + o.attn_norm, dn_.get(), x_[s].get(), params_ + o.attn_norm,
                           rstd1_[s].get(), N, C, norm_ws_.get(), stream_);
    }
    cu::embedding_backward(grads_ + lo.emb, dx_.get(), tokens_.get(), N, C, m_.V, stream_);
  }

  const llama_params& m_;  // the host model: dimensions and offsets (it outlives the engine)
  i64 B_, T_, N_;
  int world_, device_ = 0;
  cudaDeviceProp prop_{};
  cu::backend backend_;
  // The engine's stream, created before and destroyed after every buffer (members are
  // destroyed in reverse order), also when the constructor throws halfway.
  struct owned_stream {
    cudaStream_t s = nullptr;
    owned_stream() { TRAINPERF_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)); }
    owned_stream(const owned_stream&) = delete;
    owned_stream& operator=(const owned_stream&) = delete;
    ~owned_stream() { cudaStreamDestroy(s); }
  } owned_stream_;
  cudaStream_t stream_ = owned_stream_.s;
  std::int64_t allocated_ = 0, peak_in_use_ = 0;
  device_array<float> params_, grads_, adam_m_, adam_v_;
  device_array<bf16> params16_;
  std::vector<device_array<bf16>> x_, n1_, q_, k_, v_, att_, xmid_, n2_, gate_, up_, act_;
  std::vector<device_array<float>> rstd1_, lse_, rstd2_;
  device_array<bf16> nf_, logits_, dx_, dx2_, dn_, dq_, dk_, dv_, datt_, dgate_, dup_, dact_;
  device_array<float> rstdf_, losses_, scalars_, norm_ws_, grad_ws_;
  device_array<std::int32_t> tokens_, targets_;
  device_array<unsigned char> attn_ws_;
#ifdef TRAINPERF_WITH_NCCL
  std::unique_ptr<trainperf::comm::nccl_communicators> comms_;
#endif
};

}  // namespace

std::unique_ptr<engine> make_cuda_engine(const llama_params& m, i64 B, i64 T, int world, const std::string& gemm) {
  const cu::backend be =
      gemm == "trainperf"  ? cu::backend::trainperf
      : gemm == "mma_sync" ? cu::backend::trainperf_mma_sync
      : gemm == "cublaslt"
          ? cu::backend::cublaslt
          : throw trainperf::config_error("gemm", "--gemm is trainperf, mma_sync or cublaslt, got '" + gemm + "'");
  std::string why;
  if (cu::device_count(&why) == 0)
    throw trainperf::config_error(
        "device", "--device cuda needs a CUDA GPU, and none is usable here (" + why + "); train with --device cpu");
  return std::make_unique<cuda_engine>(m, B, T, world, be);
}

}  // namespace train_llama
