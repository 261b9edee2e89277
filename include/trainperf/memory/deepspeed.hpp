// trainperf — DeepSpeed ZeRO's own buffers: the gradient reduction buckets and, under stage 3,
// the gathered weights its prefetch and reuse rules keep (framework::deepspeed in memory.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace trainperf {

// The zero_optimization settings that size device buffers, in elements, with DeepSpeed's
// defaults (deepspeed/runtime/zero/config.py, DeepSpeedZeroConfig, v0.16.5).
struct deepspeed_zero_config {
  double reduce_bucket_size = 5e8;
  // Kept as DeepSpeed's configs give it, and read by nothing: stages 1 and 2 all-gather the
  // updated weights in place into their flat 16-bit buffer, allgather_bucket_size elements at a
  // time (runtime/utils.py, all_gather_dp_groups), so it allocates no buffer.
  double allgather_bucket_size = 5e8;
  double stage3_prefetch_bucket_size = 5e7;
  double stage3_max_live_parameters = 1e9;
  double stage3_max_reuse_distance = 1e9;
  double stage3_param_persistence_threshold = 1e5;
  // overlap_comm: DeepSpeed's default is on for stage 3 only (config.py, overlap_comm_valid).
  enum class toggle { stage_default, on, off } overlap_comm = toggle::stage_default;
  bool contiguous_gradients = true;

  // Hugging Face transformers' "auto" values (integrations/deepspeed.py,
  // HfTrainerDeepSpeedConfig.trainer_config_finalize): reduce_bucket_size h^2; under stage 3
  // stage3_prefetch_bucket_size 0.9 h^2 and stage3_param_persistence_threshold 10 h.
  static constexpr deepspeed_zero_config hf_auto(std::int64_t hidden) {
    const double h = static_cast<double>(hidden);
    deepspeed_zero_config c;
    c.reduce_bucket_size = h * h;
    c.stage3_prefetch_bucket_size = 0.9 * h * h;
    c.stage3_param_persistence_threshold = 10 * h;
    return c;
  }
  [[nodiscard]] constexpr bool overlaps(int zero_stage) const {
    return overlap_comm == toggle::stage_default ? zero_stage == 3 : overlap_comm == toggle::on;
  }
};

// The bytes DeepSpeed's buffers add on one rank at the backward's peak, for weights of
// `element_bytes` each.
//   Stages 1 and 2, contiguous_gradients: the reduction bucket of reduce_bucket_size elements,
//   two with overlap_comm (stage_1_and_2.py, backward: ipg_buffer buf_0, and buf_1 "double
//   buffers"), alive through the backward.
//   Stage 3: one persistent bucket of reduce_bucket_size elements (stage3.py __init__:
//   __ipg_bucket_flat_buffer, not doubled by overlap_comm), and the gathered weights: the layer
//   running and the prefetched ones (at most stage3_prefetch_bucket_size elements, and no more
//   than stage3_max_live_parameters in all: partitioned_param_coordinator.py, fetch_sub_module);
//   at the turn from forward to backward, the last layers of the forward also stay gathered when
//   their next use, in the backward, comes within stage3_max_reuse_distance elements of the trace
//   (__params_to_release): the last layer's comes at once, layer L - j's after 2j layers.
//   Weights of at most stage3_param_persistence_threshold elements (norms, biases) stay gathered
//   for good (parameter_offload.py, mark_persistent_parameters).
struct deepspeed_buffer_bytes {
  double buckets = 0;   // gradient reduction buckets
  double gathered = 0;  // stage 3: gathered weights beyond the rank's shard
};
// layer_elements: the largest layer's weights on the rank (its tensor-parallel share, all of it
// gathered); stage_layers: the layers of the pipeline stage; persistent_elements: what the
// stage's weights no larger than the persistence threshold hold beyond their shards.
constexpr deepspeed_buffer_bytes deepspeed_buffers(const deepspeed_zero_config& z, int zero_stage,
                                                   double layer_elements, std::int64_t stage_layers,
                                                   double persistent_elements, double element_bytes) {
  deepspeed_buffer_bytes b;
  if (zero_stage == 0) return b;
  if (z.contiguous_gradients)
    b.buckets = z.reduce_bucket_size * element_bytes * (zero_stage < 3 && z.overlaps(zero_stage) ? 2.0 : 1.0);
  if (zero_stage < 3 || layer_elements <= 0) return b;
  const double layers = static_cast<double>(std::max<std::int64_t>(1, stage_layers));
  // Running layer plus prefetch, bounded by the live-parameter budget (never below one layer:
  // the running module's weights are fetched regardless).
  const double prefetch =
      std::min(z.stage3_prefetch_bucket_size, std::max(0.0, z.stage3_max_live_parameters - layer_elements));
  const double running = layer_elements + std::min(prefetch, layer_elements * (layers - 1));
  // Layers kept across the forward/backward turn: j = 0, 1, ... while 2 j layers fit in the reuse distance.
  const double kept = std::min(layers, 1.0 + std::floor(z.stage3_max_reuse_distance / (2.0 * layer_elements)));
  b.gathered = (std::max(running, kept * layer_elements) + persistent_elements) * element_bytes;
  return b;
}

}  // namespace trainperf
