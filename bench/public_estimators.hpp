// Public memory estimators the benches print beside trainperf's model on the same rows.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>

#include <trainperf/trainperf.hpp>

namespace trainperf::bench {

// Megatron-LM megatron/training/theoretical_memory_usage.py (commit d98e8a64), stage 0:
// weights and optimizer at 18 bytes per parameter (6 + 12/dp with the distributed optimizer)
// on the most loaded shard, its parameters split as it splits them: attention and dense or
// shared-expert MLPs over tp, norms and routers replicated, routed experts over etp x ep (their
// optimizer bytes over the expert data-parallel ranks), dense and MoE layers by the model's
// layer frequency; activations sbh(18 + 4 ffn/h) per layer with sequence parallelism and
// selective recomputation (divided by tp), else sbh(10 + 24/tp) x 1.05; L layers (stage 0 holds
// pp micro-batches of L/pp layers), times the interleaved schedule's 1 + (pp - 1)/(pp vpp) with
// virtual stages, else min(1, m/pp), plus the embedding terms.
inline double megatron_formula_gib(const transformer_spec& m, const parallel_config& c, std::int64_t world,
                                   const memory_options& o) {
  const std::int64_t dp = c.dp_for(world);
  const double t = static_cast<double>(c.tp), p = static_cast<double>(c.pp), L = static_cast<double>(m.layers);
  const double h = static_cast<double>(m.hidden), s = static_cast<double>(o.seq), b = static_cast<double>(o.lbs);
  const double moe_layers = static_cast<double>(m.moe_layers()), dense_layers = L - moe_layers;
  const layer_params dense = count_layer_params(m, m.layer_of_shape(false));
  const layer_params moe = m.is_moe() ? count_layer_params(m, m.layer_of_shape(true)) : layer_params{};
  const double tp_sharded = static_cast<double>(dense.attention + dense.mlp) * dense_layers +
                            static_cast<double>(moe.attention + moe.shared_experts) * moe_layers;
  const double replicated = static_cast<double>(dense.norms) * dense_layers +
                            static_cast<double>(moe.norms + moe.router) * moe_layers +
                            static_cast<double>(detail::norm_params(m.norm, m.hidden));  // + the final norm
  const double expert_sharded = static_cast<double>(moe.routed_experts) * moe_layers;
  const double emb = static_cast<double>(m.padded_vocab(c.tp)) * h;
  double tp_shard = (tp_sharded / p + emb) / t;
  if (!m.tied_embeddings && c.pp == 1) tp_shard += emb / t;
  const double expert_shard = expert_sharded / p / static_cast<double>(c.resolved_etp() * c.ep);
  const bool dist = c.distributed_optimizer || c.zero_stage >= 1;
  const auto bytes = [&](std::int64_t ranks) { return dist ? 6 + 12.0 / static_cast<double>(ranks) : 18; };
  const std::int64_t expert_dp = std::max<std::int64_t>(1, world / (c.resolved_etp() * c.ep * c.pp));
  const double weights = (tp_shard + replicated / p) * bytes(dp) + expert_shard * bytes(expert_dp);
  const double ffn = static_cast<double>(m.ffn), V = static_cast<double>(m.padded_vocab(c.tp));
  const double inflight = c.vpp > 1 ? 1 + (p - 1) / (p * static_cast<double>(c.vpp))
                                    : std::min(1.0, static_cast<double>(o.micro_batches) / p);
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
