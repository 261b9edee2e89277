// Public memory estimators the benches print beside trainperf's model on the same rows.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>

#include <trainperf/trainperf.hpp>

namespace trainperf::bench {

// Megatron-LM megatron/training/theoretical_memory_usage.py (commit d98e8a64), stage 0:
// weights and optimizer at 18 bytes per parameter (6 + 12/dp with the distributed optimizer)
// on the most loaded shard; activations sbh(18 + 4 ffn/h) per layer with sequence parallelism
// and selective recomputation (divided by tp), else sbh(10 + 24/tp) x 1.05; L layers (stage 0
// holds pp micro-batches of L/pp layers), times min(1, m/pp), plus the embedding terms.
inline double megatron_formula_gib(const transformer_spec& m, const parallel_config& c, std::int64_t world,
                                   const memory_options& o) {
  const std::int64_t dp = c.dp_for(world);
  const double t = static_cast<double>(c.tp), p = static_cast<double>(c.pp), L = static_cast<double>(m.layers);
  const double h = static_cast<double>(m.hidden), s = static_cast<double>(o.seq), b = static_cast<double>(o.lbs);
  const double layer = static_cast<double>(count_layer_params(m, 0).total());
  const double emb = static_cast<double>(m.padded_vocab(c.tp)) * h;
  double shard = (layer * L / p + emb) / t;
  if (!m.tied_embeddings && c.pp == 1) shard += emb / t;
  const bool dist = c.distributed_optimizer || c.zero_stage >= 1;
  const double weights = shard * (dist ? 6 + 12.0 / static_cast<double>(dp) : 18);
  const double ffn = static_cast<double>(m.ffn), V = static_cast<double>(m.padded_vocab(c.tp));
  const double inflight = std::min(1.0, static_cast<double>(o.micro_batches) / p);
  double act = 0;
  if (c.sequence_parallel && c.recomputation == recompute::selective) {
    act = s * b * h * (18 + 4 * ffn / h) * L + 8 * s * b * p + s * b * h * p;
    act *= inflight;
    if (c.pp == 1) act += 4 * s * b * h * (1 + V / h);
    act /= t;
  } else {
    act = s * b * h * (10 + 24 / t) * L + 8 * s * b * p + s * b * h * p;
    act *= inflight;
    if (c.pp == 1) act += 2 * (s * b * V / t + s * b * h);
    act *= 1.05;
  }
  return (weights + act) / static_cast<double>(GiB);
}

// DeepSpeed deepspeed/runtime/zero/stage_1_and_2.py estimate_zero2_model_states_mem_needs and
// stage3.py estimate_zero3_model_states_mem_needs (no offload): ZeRO-2 2P + 18P/G, ZeRO-3
// 4 LL + 18P/G (LL: the largest layer's parameters); model states only, no activations.
inline std::optional<double> deepspeed_estimate_gib(const transformer_spec& m, const parallel_config& c,
                                                    std::int64_t world) {
  if (c.zero_stage < 2) return std::nullopt;
  const std::int64_t dp = c.dp_for(world);
  const double P = static_cast<double>(count_params(m).total()) / static_cast<double>(c.tp * c.pp);
  const double G = static_cast<double>(dp);
  if (c.zero_stage == 2) return (2 * P + 18 * P / G) / static_cast<double>(GiB);
  const double LL = static_cast<double>(count_layer_params(m, 0).total()) / static_cast<double>(c.tp);
  return (4 * LL + 18 * P / G) / static_cast<double>(GiB);
}

}  // namespace trainperf::bench
