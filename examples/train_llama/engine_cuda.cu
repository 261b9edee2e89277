// train_llama's CUDA engine: the CUDA model (model_cuda.cuh) of this rank's part, one GPU per MPI
// process, with the CPU engine's parallel structure (engine_cpu.hpp) over NCCL communicators of
// the layout's groups: tensor parallelism inside the model (the "tp" group), pipeline stages run
// by pipeline.hpp's executor with its hand-offs over a communicator per pair of neighbouring
// stages (sends that never hold the model's stream), a tied
// embedding's two copies summed over the "embedding" group, gradients summed over the "dp" group,
// the replicas of a key/value head held by several tensor ranks summed over their "kv" group, and
// the global gradient norm's parts summed over the model-parallel group (MPI, on the host).
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <trainperf/error.hpp>
#include <trainperf/hardware.hpp>
#include <trainperf/kernels/cuda/check.cuh>
#include <trainperf/kernels/cuda/matmul.cuh>
#include <trainperf/kernels/cuda/ops.cuh>
#include <trainperf/partition.hpp>
#include <trainperf/units.hpp>

#ifdef TRAINPERF_WITH_NCCL
#include <trainperf/comm/nccl.hpp>
#endif

#include "engine.hpp"
#include "model_cuda.cuh"
#include "parallel.hpp"
#include "pipeline.hpp"

namespace train_llama {
namespace {

#ifdef TRAINPERF_WITH_NCCL
namespace comm = trainperf::comm;

// The model's tensor-parallel reductions as NCCL all-reduces on the model's stream.
class nccl_tensor_group final : public device_tensor_group {
 public:
  nccl_tensor_group(const comm::nccl_group& g, cudaStream_t stream) : g_(g), stream_(stream) {}
  void sum(bf16* x, i64 n) const override {
    g_.all_reduce(x, static_cast<std::size_t>(n), comm::reduce_op::sum, stream_);
  }
  void sum(float* x, i64 n) const override {
    g_.all_reduce(x, static_cast<std::size_t>(n), comm::reduce_op::sum, stream_);
  }
  void max(float* x, i64 n) const override {
    g_.all_reduce(x, static_cast<std::size_t>(n), comm::reduce_op::max, stream_);
  }
  void reduce_scatter(const bf16* whole, bf16* part, i64 n) const override {
    g_.reduce_scatter(whole, part, static_cast<std::size_t>(n), comm::reduce_op::sum, stream_);
  }
  void allgather(const bf16* part, bf16* whole, i64 n) const override {
    g_.all_gather(part, whole, static_cast<std::size_t>(n), stream_);
  }

 private:
  const comm::nccl_group& g_;
  cudaStream_t stream_;
};

// The pipeline's channels: for each pipeline group, one communicator per ordered pair of
// neighbouring stages (sender first), and the wrap-around pairs (last to first and back) when
// chunks are interleaved; activations and gradients share a pair's channel. Each rank uses a
// channel from one stream only (the sender's send stream, the receiver's model stream), as NCCL
// requires. The pairs are spread over kinds "pp-channel-k" so that no rank is in two groups of a
// kind; every rank computes the same list.
struct stage_channel {
  i64 from, to;
  std::string kind;
};
std::vector<stage_channel> stage_channels(i64 pp, bool wrap) {
  std::vector<std::pair<i64, i64>> pairs;
  const auto add = [&](i64 a, i64 b) {
    if (a != b && std::find(pairs.begin(), pairs.end(), std::pair{a, b}) == pairs.end()) pairs.emplace_back(a, b);
  };
  for (i64 s = 0; s + 1 < pp; ++s) add(s, s + 1), add(s + 1, s);
  if (wrap) add(pp - 1, 0), add(0, pp - 1);
  std::vector<stage_channel> out;
  std::vector<std::vector<i64>> used;  // the stages in each kind's groups
  for (const auto& [a, b] : pairs) {
    std::size_t k = 0;
    while (k < used.size() &&
           (std::count(used[k].begin(), used[k].end(), a) + std::count(used[k].begin(), used[k].end(), b)) > 0)
      ++k;
    if (k == used.size()) used.emplace_back();
    used[k].push_back(a), used[k].push_back(b);
    out.push_back({a, b, "pp-channel-" + std::to_string(k)});
  }
  return out;
}
// The channels as communicator groups of world ranks, for every pipeline group of the layout.
std::vector<comm::named_groups> stage_channel_groups(const parallel_runtime& rt) {
  std::vector<comm::named_groups> kinds;
  for (const auto& c : stage_channels(rt.pp(), rt.vpp() > 1)) {
    auto it = std::find_if(kinds.begin(), kinds.end(), [&](const auto& k) { return k.kind == c.kind; });
    if (it == kinds.end()) it = kinds.insert(kinds.end(), comm::named_groups{c.kind, {}});
    for (const auto& stages : rt.layout().groups("pp"))
      it->groups.push_back({stages[static_cast<std::size_t>(c.from)], stages[static_cast<std::size_t>(c.to)]});
  }
  return kinds;
}

// pipeline.hpp's Link over NCCL with MPI's semantics, so that no schedule can deadlock
// (tests/trainer/test_pipeline_exchange.cpp): a send copies the buffer on the model's stream into
// a staging buffer and goes out on its channel's own stream, never holding the model's stream; a
// receive waits on the model's stream. The loss is summed over the pipeline group by MPI. The
// channels' streams run beside the model's, whose tensor-parallel all-reduces use other
// communicators (NCCL runs kernels of several communicators at once where the GPU has room).
class nccl_stage_link {
 public:
  nccl_stage_link(const comm::nccl_communicators& comms, i64 stage, cudaStream_t stream, const parallel_runtime& rt,
                  std::int64_t& allocated)
      : rt_(rt), stream_(stream), allocated_(allocated) {
    for (const auto& c : stage_channels(rt.pp(), rt.vpp() > 1)) {
      if (c.from == stage) out_[c.to].group = &comms.group(c.kind);
      if (c.to == stage) in_[c.from] = &comms.group(c.kind);
    }
  }
  void send(device_array<bf16>& x, i64 to, int, handoff) {
    outgoing& c = channel(out_, to);
    staging& b = c.take(x.size());
    TRAINPERF_CUDA_CHECK(cudaMemcpyAsync(b.data.get(), x.get(), x.bytes(), cudaMemcpyDeviceToDevice, stream_));
    TRAINPERF_CUDA_CHECK(cudaEventRecord(b.ready.get(), stream_));
    TRAINPERF_CUDA_CHECK(cudaStreamWaitEvent(c.stream.get(), b.ready.get(), 0));
    c.group->send(b.data.get(), static_cast<std::size_t>(x.size()), /*the receiver=*/1, c.stream.get());
    TRAINPERF_CUDA_CHECK(cudaEventRecord(b.sent.get(), c.stream.get()));
    b.in_flight = true;
  }
  void recv(device_array<bf16>& x, i64 from, int, handoff) {
    channel(in_, from)->recv(x.get(), static_cast<std::size_t>(x.size()), /*the sender=*/0, stream_);
  }
  // The model's stream waits for every send (the step ends with its hand-offs delivered).
  void finish() {
    for (auto& [to, c] : out_) {
      TRAINPERF_CUDA_CHECK(cudaEventRecord(c.done.get(), c.stream.get()));
      TRAINPERF_CUDA_CHECK(cudaStreamWaitEvent(stream_, c.done.get(), 0));
    }
  }
  [[nodiscard]] double sum(double x) const { return rt_.pp_sum(x); }

  // Staging for the most sends a call of the executor makes to each stage (pipeline::sends_per_call),
  // of `elements` each, allocated now: a cudaMalloc during the step could synchronize the device
  // under a waiting NCCL kernel. The engine synchronizes after every call, so all are free again.
  void reserve(const std::map<i64, i64>& sends, i64 elements) {
    for (const auto& [to, n] : sends)
      for (i64 i = 0; i < n; ++i) {
        auto& buffers = channel(out_, to).buffers;
        buffers.push_back(std::make_unique<staging>());
        buffers.back()->data = device_array<bf16>(elements, allocated_);
      }
  }

 private:
  struct staging {
    device_array<bf16> data;
    cuda_event ready, sent;
    bool in_flight = false;
  };
  struct outgoing {
    const comm::nccl_group* group = nullptr;
    cuda_stream stream;
    cuda_event done;
    std::vector<std::unique_ptr<staging>> buffers;
    // A reserved staging buffer whose last send has completed.
    staging& take(i64 n) {
      for (auto& b : buffers) {
        if (b->data.size() < n)
          throw std::logic_error("train_llama: a hand-off of " + std::to_string(n) +
                                 " elements is larger than the staging reserved for it");
        if (b->in_flight) {
          const cudaError_t q = cudaEventQuery(b->sent.get());
          if (q == cudaErrorNotReady) continue;
          TRAINPERF_CUDA_CHECK(q);
        }
        return *b;
      }
      throw std::logic_error("train_llama: more hand-offs in flight than the schedule sends in a step");
    }
  };
  template <class Map>
  static typename Map::mapped_type& channel(Map& m, i64 stage) {
    const auto it = m.find(stage);
    if (it == m.end()) throw std::logic_error("train_llama: no pipeline channel with stage " + std::to_string(stage));
    return it->second;
  }
  const parallel_runtime& rt_;
  cudaStream_t stream_;
  std::int64_t& allocated_;
  std::map<i64, outgoing> out_;
  std::map<i64, const comm::nccl_group*> in_;
};
using stage_link = nccl_stage_link;
#else
// Without NCCL a CUDA run is one process: no pipeline, and this link is never built.
struct stage_link {
  [[noreturn]] static void none() { throw std::logic_error("train_llama: a CUDA pipeline needs NCCL"); }
  void send(device_array<bf16>&, i64, int, handoff) { none(); }
  void recv(device_array<bf16>&, i64, int, handoff) { none(); }
  void finish() { none(); }
  double sum(double) const { none(); }
};
#endif

class cuda_engine final : public engine {
 public:
  // With ZeRO-1 over dp > 1 this rank keeps the AdamW moments of its part of the flat buffer
  // (trainperf::zero_shard: equal parts of the buffer padded to a multiple of dp), updates that
  // part and all-gathers the others' (fp32, so that every rank holds the whole master copy the
  // norms read and a checkpoint writes).
  cuda_engine(llama_params& m, i64 B, i64 T, const parallel_runtime& rt, const cuda_options& o, cu::backend gemm)
      : m_(m),
        rt_(rt),
        device_(pick_device(rt.world())),
        zero1_(o.zero1 && rt.dp() > 1),
        part_(zero1_ ? trainperf::zero_shard(m.total, rt.dp(), rt.coords().dp)
                     : trainperf::flat_shard{0, m.total, 0, m.total}),
        sequence_parallel_(o.sequence_parallel && rt.tp() > 1) {
    TRAINPERF_CUDA_CHECK(cudaGetDeviceProperties(&prop_, device_));
    if (prop_.major < 8)
      throw trainperf::config_error("device", std::string("the CUDA kernels need compute capability 8.0 or newer "
                                                          "(Ampere, Hopper); ") +
                                                  prop_.name + " has " + std::to_string(prop_.major) + "." +
                                                  std::to_string(prop_.minor) + "; train with --device cpu");
    if (m.D != 64 && m.D != 128)
      throw trainperf::config_error("head_dim", "the CUDA attention kernels take head dimension 64 or 128, got " +
                                                    std::to_string(m.D) + "; choose hidden / heads = 64 or 128");
    model_ = std::make_unique<cuda_model>(m, B, T, stream_, gemm, allocated_, part_.padded_numel,
                                          trainperf::index_range{part_.begin, part_.end}, sequence_parallel_);
    grad_ws_ = {static_cast<i64>(cu::grad_norm_workspace_floats(m.total)), allocated_};
    scalars_ = {2, allocated_};
#ifdef TRAINPERF_WITH_NCCL
    if (rt.world() > 1) {
      std::vector<std::string> kinds;
      if (rt.tp() > 1) kinds.emplace_back("tp");
      if (rt.pp() > 1 && m.spec.tied_embeddings) kinds.emplace_back("embedding");
      if (rt.dp() > 1) kinds.emplace_back("dp");
      std::vector<comm::named_groups> extra;
      if (m.kv_replicas > 1) extra.push_back({"kv", rt.kv_groups()});
      if (rt.pp() > 1)
        for (auto& g : stage_channel_groups(rt)) extra.push_back(std::move(g));
      comms_ = std::make_unique<comm::nccl_communicators>(rt.layout(), kinds, MPI_COMM_WORLD, extra);
    }
    if (rt.tp() > 1) {
      tensor_ = std::make_unique<nccl_tensor_group>(comms_->group("tp"), stream_);
      model_->group = tensor_.get();
    }
    if (rt.pp() > 1) {
      link_ = std::make_unique<stage_link>(*comms_, rt.coords().pp, stream_, rt, allocated_);
      pipe_ = std::make_unique<pipeline<cuda_model, stage_link>>(*model_, *link_, B, T, rt.coords().pp, rt.pp(),
                                                                 rt.vpp(), o.schedule, o.gas);
      link_->reserve(pipe_->sends_per_call(), model_->handoff_elements());
    }
#endif
    if (!pipe_) act_ = model_->make_activations(B, T, m.chunks.front());
    if (zero1_) {  // a resumed checkpoint's whole moments: this rank's part is on the device now
      std::vector<float>().swap(m.adam_m);
      std::vector<float>().swap(m.adam_v);
    }
    sync();
    sample_memory();
  }
  std::string name() const override { return std::to_string(rt_.world()) + " x " + prop_.name; }
  trainperf::dtype compute_dtype() const override { return trainperf::dtype::bf16; }

  void zero_grads() override {
    TRAINPERF_CUDA_CHECK(cudaMemsetAsync(model_->grads.get(), 0, model_->grads.bytes(), stream_));
  }

  float step(const std::int32_t* tokens, const std::int32_t* targets, bool backward, float loss_scale) override {
    float loss = 0;
    if (pipe_) {
      if (backward) throw std::logic_error("train_llama: a pipeline trains through train_step");
      const std::size_t n = static_cast<std::size_t>(pipe_->tokens_per_micro_batch());
      loss = pipe_->forward_only(std::vector<std::int32_t>(tokens, tokens + n),
                                 std::vector<std::int32_t>(targets, targets + n));
      sync();  // the hand-offs' staging is free for the next call
    } else {
      const auto& c = model_->chunks.front();
      loss = model_->forward(act_, c, tokens, targets, backward, loss_scale);  // syncs for the loss
      if (backward) {
        model_->backward(act_, c, tokens);
        sync();
      }
    }
    sample_memory();
    return loss;
  }

  float train_step(const batch_source& batches, i64 micro_batches, float loss_scale,
                   i64 tokens_per_micro_batch) override {
    if (!pipe_) return engine::train_step(batches, micro_batches, loss_scale, tokens_per_micro_batch);
    const float loss = static_cast<float>(rt_.pp_sum(pipe_->train(batches, loss_scale)));  // the last stage's
    sync();
    sample_memory();
    return loss;
  }

  // Under sequence parallelism the norms' weight gradients summed over the tensor group (each
  // rank has its rows' share); a tied embedding's two copies (first and last stage) summed over
  // the embedding group, as Megatron-LM keeps them equal; then the gradients summed over the
  // data-parallel group (under ZeRO-1, reduce-scattered: this rank's part only).
  void allreduce_grads() override {
#ifdef TRAINPERF_WITH_NCCL
    if (sequence_parallel_) m_.for_each_replicated([&](i64 o, i64 n) { tensor_->sum(model_->grads + o, n); });
    // A replicated key/value head's projections: each of its ranks has the gradient through its
    // own query heads; summed over the kv group.
    m_.for_each_replicated_kv([&](i64 o, i64 n) {
      comms_->group("kv").all_reduce(model_->grads + o, static_cast<std::size_t>(n), comm::reduce_op::sum, stream_);
    });
    if (comms_ && comms_->has("embedding") && m_.emb >= 0) {
      const comm::nccl_group& g = comms_->group("embedding");
      if (g.member() && g.size() > 1)
        g.all_reduce(model_->grads + m_.emb, static_cast<std::size_t>(m_.V_rows * m_.C), comm::reduce_op::sum, stream_);
    }
    if (comms_ && comms_->has("dp")) {
      const comm::nccl_group& dp = comms_->group("dp");
      float* g = model_->grads.get();
      if (zero1_)  // in place: this rank's part of the padded buffer receives the group's sum of it
        dp.reduce_scatter(g, g + part_.begin, static_cast<std::size_t>(part_.end - part_.begin), comm::reduce_op::sum,
                          stream_);
      else
        dp.all_reduce(g, static_cast<std::size_t>(m_.total), comm::reduce_op::sum, stream_);
    }
#endif
  }

  float clip_and_update(float clip, const adamw_step& c, i64 step) override {
    cuda_model& md = *model_;
    const i64 P = m_.total;
    const cu::adamw_config cfg{
        .lr = c.lr, .beta1 = c.beta1, .beta2 = c.beta2, .eps = c.eps, .weight_decay = c.weight_decay};
    float norm = 0;
    if (rt_.tp() * rt_.pp() == 1 && !zero1_) {  // the whole model here: norm and clipping on the device
      cu::clip_grad_norm(md.grads.get(), P, clip, scalars_ + 1, grad_ws_.get(), stream_);
      cu::adamw(md.params.get(), md.params16.get(), md.grads.get(), md.adam_m.get(), md.adam_v.get(), P, cfg, step,
                static_cast<const float*>(nullptr), stream_);
      TRAINPERF_CUDA_CHECK(cudaMemcpyAsync(&norm, scalars_ + 1, sizeof norm, cudaMemcpyDeviceToHost, stream_));
      sync();
      return norm;
    }
    // The global norm over every rank that holds a part of the gradients (this rank's part under
    // ZeRO-1, all of it otherwise), each element once (params.hpp): the norm of each counted
    // piece on the device, their squares summed on the host and over the model-parallel group
    // (the world under ZeRO-1).
    const i64 b = part_.begin, e = std::min(part_.end, P), n = std::max<i64>(0, e - b);
    std::vector<std::pair<i64, i64>> pieces;
    m_.for_each_counted(b, std::max(b, e), [&](i64 o, i64 k) { pieces.emplace_back(o, k); });
    if (piece_norms_.size() < static_cast<i64>(pieces.size()))
      piece_norms_ = {static_cast<i64>(pieces.size()), allocated_};
    for (std::size_t i = 0; i < pieces.size(); ++i)
      cu::grad_norm(piece_norms_ + static_cast<i64>(i), md.grads + pieces[i].first, pieces[i].second, grad_ws_.get(),
                    stream_);
    std::vector<float> norms(pieces.size());
    if (!pieces.empty())
      TRAINPERF_CUDA_CHECK(cudaMemcpyAsync(norms.data(), piece_norms_.get(), norms.size() * sizeof(float),
                                           cudaMemcpyDeviceToHost, stream_));
    sync();
    double squares = 0;
    for (const float x : norms) squares += static_cast<double>(x) * x;
    norm = static_cast<float>(std::sqrt(zero1_ ? rt_.world_sum(squares) : rt_.mp_sum(squares)));
    // max_norm / (norm + 1e-6) when the norm exceeds it (Pascanu et al. 2013), the kernels' rule
    scale_ = clip > 0.0f && norm > clip ? clip / (norm + 1e-6f) : 1.0f;
    TRAINPERF_CUDA_CHECK(cudaMemcpyAsync(scalars_.get(), &scale_, sizeof scale_, cudaMemcpyHostToDevice, stream_));
    cu::adamw(md.params + b, md.params16 + b, md.grads + b, md.adam_m.get(), md.adam_v.get(), n, cfg, step,
              static_cast<const float*>(scalars_.get()), stream_);
#ifdef TRAINPERF_WITH_NCCL
    if (zero1_) {  // every part from its owner, then the bf16 copy of the whole
      float* p = md.params.get();
      comms_->group("dp").all_gather(p + part_.begin, p, static_cast<std::size_t>(part_.end - part_.begin), stream_);
      cu::cast(md.params16.get(), p, md.params.size(), stream_);
    }
#endif
    sync();
    return norm;
  }

  // The host model's state for a checkpoint: under ZeRO-1 the AdamW moments gathered whole over
  // the data-parallel group (through one padded device buffer, for the time of the copy).
  void to_host(llama_params& m) override {
    download(m.params, model_->params.get());
    for (auto [h, d] : {std::pair{&m.adam_m, &model_->adam_m}, std::pair{&m.adam_v, &model_->adam_v}}) {
      if (!zero1_) {
        download(*h, d->get());
        continue;
      }
#ifdef TRAINPERF_WITH_NCCL
      device_array<float> whole(part_.padded_numel, allocated_);
      comms_->group("dp").all_gather(d->get(), whole.get(), static_cast<std::size_t>(d->size()), stream_);
      download(*h, whole.get());
      allocated_ -= static_cast<std::int64_t>(whole.bytes());
#endif
    }
  }
  // What to_host gathered only for the checkpoint (ZeRO-1's whole moments) goes.
  void checkpoint_written(llama_params& m) override {
    if (!zero1_) return;
    std::vector<float>().swap(m.adam_m);
    std::vector<float>().swap(m.adam_v);
  }

  memory_reading memory() const override {
    return {peak_in_use_, static_cast<std::int64_t>(prop_.totalGlobalMem),
            "device memory in use (cudaMemGetInfo, the most seen after a step: CUDA context, cuBLASLt, NCCL, any "
            "other process, and the " +
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
  static int pick_device(i64 world) {
#ifdef TRAINPERF_WITH_NCCL
    if (world > 1) trainperf::comm::select_local_device();
#else
    if (world > 1)
      throw trainperf::config_error("device",
                                    "several processes on GPUs need NCCL, and this train_llama was built without it; "
                                    "run one process, or rebuild where NCCL is found (NCCL_ROOT)");
#endif
    int device = 0;
    TRAINPERF_CUDA_CHECK(cudaGetDevice(&device));
    return device;
  }

  // The model's m_.total elements from d (a flat buffer's, or a whole gathered one).
  void download(std::vector<float>& h, const float* d) {
    h.resize(static_cast<std::size_t>(m_.total));
    TRAINPERF_CUDA_CHECK(cudaMemcpyAsync(h.data(), d, h.size() * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    sync();
  }
  void sync() { TRAINPERF_CUDA_CHECK(cudaStreamSynchronize(stream_)); }
  void sample_memory() {
    std::size_t free = 0, total = 0;
    TRAINPERF_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    peak_in_use_ = std::max(peak_in_use_, static_cast<std::int64_t>(total - free));
  }

  const llama_params& m_;  // this rank's part on the host (it outlives the engine)
  const parallel_runtime& rt_;
  int device_ = 0;
  bool zero1_ = false;
  trainperf::flat_shard part_;  // this rank's part of the flat buffer (all of it without ZeRO-1)
  bool sequence_parallel_ = false;
  cudaDeviceProp prop_{};
  // The engine's stream, created before and destroyed after every buffer (members are
  // destroyed in reverse order), also when the constructor throws halfway.
  cuda_stream owned_stream_;
  cudaStream_t stream_ = owned_stream_.get();
  std::int64_t allocated_ = 0, peak_in_use_ = 0;
  float scale_ = 1.0f;  // the clipping scale uploaded for the update (lives until the copy is done)
  std::unique_ptr<cuda_model> model_;
  cuda_model::activations act_;  // without a pipeline: the micro-batch's
  device_array<float> grad_ws_, scalars_, piece_norms_;
#ifdef TRAINPERF_WITH_NCCL
  std::unique_ptr<comm::nccl_communicators> comms_;
  std::unique_ptr<nccl_tensor_group> tensor_;
#endif
  std::unique_ptr<stage_link> link_;
  std::unique_ptr<pipeline<cuda_model, stage_link>> pipe_;
};

}  // namespace

std::unique_ptr<engine> make_cuda_engine(llama_params& m, i64 B, i64 T, const parallel_runtime& rt,
                                         const cuda_options& o) {
  const std::string& gemm = o.gemm;
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
  return std::make_unique<cuda_engine>(m, B, T, rt, o, be);
}

}  // namespace train_llama
