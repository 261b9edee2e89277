// What train_llama's loop drives: one replica of the model on one device. The CPU engine runs
// trainperf's Eigen kernels on the host model's flat fp32 buffers; the CUDA engine
// (engine_cuda.cu, built where nvcc is) keeps fp32 master weights, fp32 gradients and AdamW
// states on the GPU and computes in bf16. Both read the same data, write the same checkpoints
// (the host model's fp32 buffers) and end with the same report row.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <trainperf/hardware.hpp>
#include <trainperf/schedule.hpp>

#include "params.hpp"

namespace train_llama {

// One AdamW step's hyper-parameters (the CPU kernel's adamw_config, without its header).
struct adamw_step {
  float lr = 3e-4f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.1f;
};

// Fills the token ids and targets of micro-batch `micro` of a step ([B, T] each).
using batch_source =
    std::function<void(i64 micro, std::vector<std::int32_t>& tokens, std::vector<std::int32_t>& targets)>;

// Measured memory for the report row, and what it counts.
struct memory_reading {
  std::int64_t used = 0;      // bytes
  std::int64_t capacity = 0;  // bytes
  std::string what;           // "peak RSS", "device memory in use at the peak (cudaMemGetInfo)"
};

class engine {
 public:
  virtual ~engine() = default;
  [[nodiscard]] virtual std::string name() const = 0;  // the device, for the report row
  [[nodiscard]] virtual trainperf::dtype compute_dtype() const = 0;
  virtual void zero_grads() = 0;
  // Forward over [B, T] tokens; with backward, accumulates the gradient of loss_scale x mean
  // loss. Returns the mean loss.
  virtual float step(const std::int32_t* tokens, const std::int32_t* targets, bool backward, float loss_scale) = 0;
  // Forward and backward of a step's micro-batches of B x T tokens, in the engine's order (one
  // after the other; a pipeline stage's schedule); returns the sum of their mean losses.
  virtual float train_step(const batch_source& batches, i64 micro_batches, float loss_scale,
                           i64 tokens_per_micro_batch) {
    tokens_in_.resize(static_cast<std::size_t>(tokens_per_micro_batch));
    tokens_out_.resize(tokens_in_.size());
    float loss = 0;
    for (i64 i = 0; i < micro_batches; ++i) {
      batches(i, tokens_in_, tokens_out_);
      loss += step(tokens_in_.data(), tokens_out_.data(), true, loss_scale);
    }
    return loss;
  }
  // Sums the gradients over the data-parallel group (no-op for one replica).
  virtual void allreduce_grads() = 0;
  // Clips the global gradient norm to clip (returns the norm before clipping), then one AdamW step.
  virtual float clip_and_update(float clip, const adamw_step& c, std::int64_t step) = 0;
  // Copies the params and Adam states into the host model (before a checkpoint; every rank
  // calls it). An engine starts from the host model's (a resumed checkpoint's) state.
  virtual void to_host(llama_params& m) = 0;
  // After the checkpoint is written: what to_host assembled only for it may go.
  virtual void checkpoint_written(llama_params&) {}
  [[nodiscard]] virtual memory_reading memory() const = 0;
  // The peak FLOP/s MFU is taken against when --peak-flops is not given, and where it comes from.
  [[nodiscard]] virtual std::pair<double, std::string> default_peak() const = 0;

 private:
  std::vector<std::int32_t> tokens_in_, tokens_out_;  // train_step's micro-batch, reused step to step
};

class parallel_runtime;

// How the CUDA engine runs a rank's part: a pipeline stage's schedule over gas micro-batches
// (GPipe, 1F1B or interleaved), ZeRO-1 over the data-parallel group,
// Megatron-LM's sequence parallelism, and the matmul backend: "trainperf" (the default dispatch),
// "mma_sync" (never wgmma) or "cublaslt".
struct cuda_options {
  trainperf::pipeline_schedule schedule = trainperf::pipeline_schedule::one_f_one_b;
  std::int64_t gas = 1;
  bool zero1 = false, sequence_parallel = false;
  std::string gemm = "trainperf";
};

// The CUDA engine for this rank's part m of the model at micro batch B x T tokens (m's weights
// are uploaded; under ZeRO-1 a resumed checkpoint's whole AdamW moments are then released from
// m). When the build has no CUDA, or no device is present, it throws a config_error saying so.
// rt: the layout of the MPI processes, one GPU each, its groups over NCCL.
std::unique_ptr<engine> make_cuda_engine(llama_params& m, std::int64_t B, std::int64_t T, const parallel_runtime& rt,
                                         const cuda_options& options);

}  // namespace train_llama
