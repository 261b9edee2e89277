// trainperf — parallel configurations (TP, PP, DP, CP, EP, expert TP, virtual stages,
// sequence parallel, ZeRO / distributed optimizer, recomputation) validated against the world
// size, the model and the batch. At run time every violated rule is reported with its fix; in
// constant evaluation the first violation fails compilation, naming the rule.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "batch.hpp"
#include "error.hpp"
#include "flops.hpp"
#include "model.hpp"
#include "partition.hpp"

namespace trainperf {

enum class pipeline_schedule { gpipe, one_f_one_b, interleaved };
// The names users give them (the CLI's schedule --kind, train_llama's --schedule, the Python module).
inline constexpr named<pipeline_schedule> pipeline_schedule_names[] = {{"gpipe", pipeline_schedule::gpipe},
                                                                       {"1f1b", pipeline_schedule::one_f_one_b},
                                                                       {"interleaved", pipeline_schedule::interleaved}};

struct parallel_config {
  std::int64_t tp = 1;   // tensor parallel
  std::int64_t pp = 1;   // pipeline parallel
  std::int64_t dp = 0;   // data parallel; 0: world / (tp x cp x pp)
  std::int64_t cp = 1;   // context parallel
  std::int64_t ep = 1;   // expert parallel (MoE)
  std::int64_t etp = 0;  // expert tensor parallel; 0: = tp
  std::int64_t vpp = 1;  // virtual pipeline stages (model chunks) per pipeline rank
  bool sequence_parallel = false;
  // With fewer key/value heads than tensor-parallel ranks (tp a multiple of kv_heads), each
  // key/value head is held by tp / kv_heads consecutive ranks, with their query heads (vLLM's
  // QKVParallelLinear, num_kv_head_replicas). Off: Megatron-LM's rule, kv_heads divisible by tp.
  bool replicate_kv_heads = false;
  int zero_stage = 0;  // ZeRO 0-3 (DeepSpeed; Paddle "sharding stage")
  // Hybrid sharding: ZeRO/FSDP shards over groups of shard_dp data-parallel ranks and replicates
  // across the dp / shard_dp groups (PyTorch FSDP's HYBRID_SHARD and FSDP2's HSDP, torchtitan's
  // dp_shard with dp_replicate; DeepSpeed's MiCS). 0: the shards span all of dp.
  std::int64_t shard_dp = 0;
  bool distributed_optimizer = false;  // Megatron-LM's sharded optimizer (ZeRO-1 like)
  recompute recomputation = recompute::none;
  // Uneven pipeline stages: the first or last stage's own layer count (Megatron-LM's
  // --decoder-first-pipeline-num-layers / --decoder-last-pipeline-num-layers); 0: an even split.
  std::int64_t first_stage_layers = 0;
  std::int64_t last_stage_layers = 0;
  // Or every stage's own count (partition.hpp, stage_layer_list).
  stage_layer_list stage_layers{};
  // The embedding, or the loss, counted as a layer in the even split (layer_split).
  bool embedding_as_layer = false;
  bool loss_as_layer = false;

  [[nodiscard]] constexpr layer_split split() const {
    return {.pp = pp,
            .vpp = vpp,
            .first_stage_layers = first_stage_layers,
            .last_stage_layers = last_stage_layers,
            .listed = stage_layers,
            .embedding_as_layer = embedding_as_layer,
            .loss_as_layer = loss_as_layer};
  }
  [[nodiscard]] constexpr std::int64_t resolved_etp() const { return etp == 0 ? tp : etp; }
  // dp, or world / (tp x cp x pp) when dp is 0 (unchecked: see resolved_dp for the checked one).
  [[nodiscard]] constexpr std::int64_t dp_for(std::int64_t world) const {
    return dp != 0 ? dp : world / model_parallel();
  }
  // Ranks per data-parallel replica.
  [[nodiscard]] constexpr std::int64_t model_parallel() const { return tp * cp * pp; }
  [[nodiscard]] constexpr pipeline_schedule schedule() const {
    return vpp > 1 ? pipeline_schedule::interleaved : pipeline_schedule::one_f_one_b;
  }
};

// One violated rule: the field to change and a message that names the values and the fix.
struct violation {
  std::string field;
  std::string message;
};

namespace reason {
inline void tp_times_cp_times_pp_times_dp_is_not_the_world_size() {}
inline void world_size_is_not_divisible_by_ep_times_etp_times_pp() {}
inline void heads_are_not_divisible_by_tp() {}
inline void kv_heads_are_not_divisible_by_tp() {}
inline void ffn_is_not_divisible_by_tp() {}
inline void expert_ffn_is_not_divisible_by_expert_tp() {}
inline void padded_vocab_is_not_divisible_by_tp() {}
inline void layers_are_not_divisible_by_pp_times_vpp() {}
inline void experts_are_not_divisible_by_ep() {}
inline void expert_parallelism_on_a_dense_model() {}
inline void sequence_is_not_divisible_by_2_cp() {}
inline void sequence_parallel_needs_tp_above_1() {}
inline void sequence_is_not_divisible_by_tp_with_sequence_parallelism() {}
inline void zero_stage_is_not_0_to_3() {}
inline void distributed_optimizer_with_zero_stage() {}
inline void shard_group_does_not_divide_dp() {}
inline void micro_batches_fewer_than_pipeline_stages() {}
inline void micro_batches_not_a_multiple_of_pp_for_interleaving() {}
inline void virtual_stages_need_pipeline_parallelism() {}
inline void batch_dp_differs_from_the_layout_dp() {}
inline void parallel_degree_exceeds_2_to_the_20() {}
inline void world_size_exceeds_2_to_the_20() {}
}  // namespace reason

// The largest tp, pp, cp, ep, etp, dp or vpp accepted (about a million ranks on one axis), and
// the largest world: a layout lists every rank, so a world past it would take gigabytes.
inline constexpr std::int64_t max_parallel_degree = std::int64_t{1} << 20;
inline constexpr std::int64_t max_world_size = std::int64_t{1} << 20;

namespace detail {

// Collects violations at run time; in constant evaluation the first one stops compilation.
class rule_checker {
 public:
  template <class MakeMessage>
  constexpr void check(bool ok, reason::fn why, std::string_view field, MakeMessage&& make_message) {
    if (ok) return;
    if (std::is_constant_evaluated()) why();
    found_.push_back({std::string(field), make_message()});
  }
  constexpr std::vector<violation> take() { return std::move(found_); }

 private:
  std::vector<violation> found_;
};

}  // namespace detail

// What the configuration is checked against; every part is optional (a zero or absent part
// is not checked).
struct parallel_context {
  std::int64_t world = 0;
  std::optional<transformer_spec> model{};
  std::int64_t seq = 0;  // training sequence length
  std::int64_t gbs = 0;  // global batch (sequences)
  std::int64_t lbs = 0;  // micro batch (sequences)
};

// Every rule the configuration breaks, each with its fix; empty when valid.
constexpr std::vector<violation> check_parallel(const parallel_config& c, const parallel_context& ctx = {}) {
  using detail::str;
  detail::rule_checker r;
  // Each degree at most 2^20, so that products of three (tp x cp x pp, ep x etp x pp) fit in 64 bits.
  const auto positive = [&](std::int64_t v, std::string_view field) {
    r.check(v > 0, reason::value_must_be_positive, field,
            [&] { return std::string(field) + " must be a positive integer, got " + str(v); });
    r.check(v <= max_parallel_degree, reason::parallel_degree_exceeds_2_to_the_20, field, [&] {
      return std::string(field) + " " + str(v) +
             " exceeds the largest supported parallel degree 2^20 = " + str(max_parallel_degree);
    });
    return v > 0 && v <= max_parallel_degree;
  };
  // Every degree checked (no short circuit): each broken one is reported.
  bool sizes_ok = true;
  for (const auto& [v, field] : {std::pair{c.tp, "tp"}, std::pair{c.pp, "pp"}, std::pair{c.cp, "cp"},
                                 std::pair{c.ep, "ep"}, std::pair{c.vpp, "vpp"}})
    sizes_ok = positive(v, field) && sizes_ok;
  if (c.dp != 0) sizes_ok &= positive(c.dp, "dp");
  if (c.etp != 0) sizes_ok &= positive(c.etp, "etp");
  r.check(ctx.world <= max_world_size, reason::world_size_exceeds_2_to_the_20, "world", [&] {
    return "world size " + str(ctx.world) + " exceeds the largest supported world 2^20 = " + str(max_world_size) +
           " ranks";
  });
  if (!sizes_ok || ctx.world > max_world_size) return r.take();
  const std::int64_t etp = c.resolved_etp();

  // ---- world size
  std::int64_t dp = c.dp;
  if (ctx.world > 0) {
    const std::int64_t mp = c.tp * c.cp * c.pp;
    if (dp == 0) {
      r.check(ctx.world % mp == 0, reason::tp_times_cp_times_pp_times_dp_is_not_the_world_size, "world", [&] {
        return "world size " + str(ctx.world) + " is not divisible by tp " + str(c.tp) + " x cp " + str(c.cp) +
               " x pp " + str(c.pp) + " = " + str(mp) + "; " + detail::nearest_multiples(ctx.world, mp) +
               " devices, or change tp/cp/pp";
      });
      dp = ctx.world % mp == 0 ? ctx.world / mp : 0;
    } else {
      const std::int64_t ranks = detail::checked_mul(mp, dp, "tp x cp x pp x dp");
      r.check(ranks == ctx.world, reason::tp_times_cp_times_pp_times_dp_is_not_the_world_size, "dp", [&] {
        return "tp " + str(c.tp) + " x cp " + str(c.cp) + " x pp " + str(c.pp) + " x dp " + str(dp) + " = " +
               str(ranks) + " but the world size is " + str(ctx.world) +
               (ctx.world % mp == 0 ? "; set dp to " + str(ctx.world / mp) : "; change tp/cp/pp or the world size");
      });
    }
    // Experts: ep x etp x edp x pp == world (Megatron-LM's expert rank generator).
    if (c.ep > 1 || etp != c.tp) {
      const std::int64_t emp = c.ep * etp * c.pp;
      r.check(ctx.world % emp == 0, reason::world_size_is_not_divisible_by_ep_times_etp_times_pp, "ep", [&] {
        return "world size " + str(ctx.world) + " is not divisible by ep " + str(c.ep) + " x expert tp " + str(etp) +
               " x pp " + str(c.pp) + " = " + str(emp) +
               ", so the expert data-parallel size is not an integer; "
               "change ep or etp";
      });
    }
  }

  // ---- model
  if (ctx.model) {
    const transformer_spec& m = *ctx.model;
    r.check(m.heads % c.tp == 0, reason::heads_are_not_divisible_by_tp, "tp", [&] {
      return "heads " + str(m.heads) + " are not divisible by tp " + str(c.tp) +
             "; each tensor-parallel rank needs whole heads: use a tp that divides " + str(m.heads);
    });
    const std::int64_t kv = m.resolved_kv_heads();
    r.check(kv % c.tp == 0 || (c.replicate_kv_heads && c.tp % kv == 0), reason::kv_heads_are_not_divisible_by_tp, "tp",
            [&] {
              return "kv_heads " + str(kv) + " are not divisible by tp " + str(c.tp) +
                     "; Megatron-LM splits key/value groups across tensor-parallel ranks: use tp <= " + str(kv) +
                     " dividing it" +
                     (c.tp % kv == 0 && !c.replicate_kv_heads
                          ? ", or replicate each key/value head on tp / kv_heads = " + str(c.tp / kv) +
                                " ranks (replicate_kv_heads, --replicate-kv-heads)"
                          : "");
            });
    r.check(m.ffn % c.tp == 0, reason::ffn_is_not_divisible_by_tp, "tp", [&] {
      return "ffn " + str(m.ffn) + " is not divisible by tp " + str(c.tp) + "; pick a tp that divides it";
    });
    const std::int64_t pv = m.padded_vocab(c.tp);
    r.check(pv % c.tp == 0, reason::padded_vocab_is_not_divisible_by_tp, "tp", [&] {
      return "vocabulary " + str(pv) + " is not divisible by tp " + str(c.tp) +
             "; pad it as Megatron-LM does (to a multiple of 128 x tp = " + str(detail::round_up(m.vocab, 128 * c.tp)) +
             ") or pick a tp that divides it";
    });
    const std::int64_t chunks = c.pp * c.vpp;
    r.check(listed_stages_split(m.layers, c.split()), reason::layers_do_not_split_over_the_stages, "stage_layers",
            [&] { return describe_listed_stages(m.layers, c.split()); });
    const bool uneven = c.first_stage_layers > 0 || c.last_stage_layers > 0;
    if (uneven) {
      r.check(c.vpp == 1, reason::uneven_stages_with_virtual_pipeline, "vpp", [&] {
        return "uneven first/last stages (" + str(c.first_stage_layers) + ", " + str(c.last_stage_layers) +
               " layers) are supported without virtual stages only; set vpp 1";
      });
      r.check(uneven_stages_split(m.layers, c.split()), reason::layers_do_not_split_over_the_stages, "pp", [&] {
        return "after " + str(c.first_stage_layers) + " layers on the first stage and " + str(c.last_stage_layers) +
               " on the last, the other " + str(m.layers - c.first_stage_layers - c.last_stage_layers) + " of the " +
               str(m.layers) + " layers do not split evenly over the other stages of pp " + str(c.pp) +
               "; adjust the first/last counts or pp";
      });
    }
    r.check(c.first_stage_layers >= 0 && c.last_stage_layers >= 0, reason::layers_do_not_split_over_the_stages, "pp",
            [&] {
              return "first/last stage layers " + str(c.first_stage_layers) + ", " + str(c.last_stage_layers) +
                     " are negative; give 0 (an even split) or a count";
            });
    const layer_split split = c.split();
    r.check(!split.counts_embedding_or_loss() || (!uneven && !c.stage_layers.given()),
            reason::embedding_as_layer_with_uneven_stages, counted_split_field(split),
            [&] { return describe_counted_with_uneven_stages(split); });
    r.check(uneven || c.stage_layers.given() || split.split_layers(m.layers) % chunks == 0,
            reason::layers_are_not_divisible_by_pp_times_vpp, "pp",
            [&] { return describe_uneven_split(m.layers, split); });
    if (m.is_moe()) {
      r.check(m.moe.experts % c.ep == 0, reason::experts_are_not_divisible_by_ep, "ep", [&] {
        return "experts " + str(m.moe.experts) + " are not divisible by ep " + str(c.ep) + "; pick an ep dividing " +
               str(m.moe.experts);
      });
      r.check(m.resolved_expert_ffn() % etp == 0, reason::expert_ffn_is_not_divisible_by_expert_tp, "etp", [&] {
        return "expert ffn " + str(m.resolved_expert_ffn()) + " is not divisible by expert tp " + str(etp) +
               "; pick an etp dividing it";
      });
    } else {
      r.check(c.ep == 1, reason::expert_parallelism_on_a_dense_model, "ep",
              [&] { return "ep " + str(c.ep) + " on a dense model (no experts); set ep to 1"; });
    }
  }

  // ---- sequence
  if (ctx.seq > 0 && c.cp > 1) {
    r.check(ctx.seq % (2 * c.cp) == 0, reason::sequence_is_not_divisible_by_2_cp, "seq", [&] {
      return "sequence " + str(ctx.seq) + " is not divisible by 2 x cp = " + str(2 * c.cp) +
             "; load-balanced context parallelism cuts it into 2 x cp chunks: " +
             detail::nearest_multiples(ctx.seq, 2 * c.cp);
    });
  }
  r.check(!c.sequence_parallel || c.tp > 1, reason::sequence_parallel_needs_tp_above_1, "sequence_parallel", [&] {
    return std::string(
        "sequence parallelism splits activations across tensor-parallel ranks; with tp 1 "
        "there are none: turn it off or set tp > 1");
  });
  // Megatron-LM scatters each context-parallel rank's seq / cp tokens over the tp ranks
  // (tensor_parallel/mappings.py: the first dimension must divide by the tp size).
  if (ctx.seq > 0 && c.sequence_parallel && c.tp > 1)
    r.check(ctx.seq % (c.cp * c.tp) == 0, reason::sequence_is_not_divisible_by_tp_with_sequence_parallelism, "seq",
            [&] {
              return "sequence " + str(ctx.seq) + " is not divisible by cp " + str(c.cp) + " x tp " + str(c.tp) +
                     ", and sequence parallelism gives each tensor-parallel rank an equal part of it: " +
                     detail::nearest_multiples(ctx.seq, c.cp * c.tp);
            });
  r.check(c.zero_stage >= 0 && c.zero_stage <= 3, reason::zero_stage_is_not_0_to_3, "zero_stage",
          [&] { return "ZeRO stage " + str(c.zero_stage) + " does not exist; use 0, 1, 2 or 3"; });
  r.check(!c.distributed_optimizer || c.zero_stage == 0, reason::distributed_optimizer_with_zero_stage,
          "distributed_optimizer", [&] {
            return "the distributed optimizer is Megatron-LM's own optimizer-state sharding; with ZeRO stage " +
                   str(c.zero_stage) + " on top it shards twice: use one of the two";
          });
  r.check(c.shard_dp >= 0 && (c.shard_dp == 0 || dp <= 0 || dp % c.shard_dp == 0),
          reason::shard_group_does_not_divide_dp, "shard_dp", [&] {
            return "shard group " + str(c.shard_dp) + " does not divide data parallel " + str(dp) +
                   "; hybrid sharding replicates dp / shard_dp groups: pick a divisor of " + str(dp) +
                   " (or 0: shard over all of dp)";
          });
  r.check(c.vpp == 1 || c.pp > 1, reason::virtual_stages_need_pipeline_parallelism, "vpp",
          [&] { return "vpp " + str(c.vpp) + " needs pipeline parallelism; set pp > 1 or vpp 1"; });

  // ---- batch
  if (ctx.gbs > 0 && ctx.lbs > 0 && dp > 0) {
    const std::int64_t per_step = detail::checked_mul(ctx.lbs, dp, "lbs x dp");
    r.check(ctx.gbs % per_step == 0, reason::global_batch_is_not_a_multiple_of_micro_batch_times_data_parallel, "gbs",
            [&] {
              return "global batch " + str(ctx.gbs) + " is not a multiple of micro batch " + str(ctx.lbs) +
                     " x data parallel " + str(dp) + " = " + str(per_step) + "; " +
                     detail::nearest_multiples(ctx.gbs, per_step);
            });
    if (ctx.gbs % per_step == 0 && c.pp > 1) {
      const std::int64_t m = ctx.gbs / per_step;  // micro-batches per replica per step
      r.check(m >= c.pp, reason::micro_batches_fewer_than_pipeline_stages, "gas", [&] {
        return str(m) + " micro-batches per step are fewer than the " + str(c.pp) +
               " pipeline stages, so 1F1B never reaches its steady state; raise gas (global batch) to at least " +
               str(c.pp) + " micro-batches, or lower pp";
      });
      r.check(c.vpp == 1 || m % c.pp == 0, reason::micro_batches_not_a_multiple_of_pp_for_interleaving, "gas", [&] {
        return str(m) + " micro-batches per step are not a multiple of pp " + str(c.pp) +
               ", which the interleaved schedule needs; use " + detail::nearest_multiples(m, c.pp) + " micro-batches";
      });
    }
  }
  return r.take();
}

// Throws one config_error listing every violation (field of the first); in constant
// evaluation an invalid configuration does not compile.
constexpr void validate(const parallel_config& c, const parallel_context& ctx = {}) {
  const std::vector<violation> v = check_parallel(c, ctx);
  if (v.empty()) return;
  std::string all;
  for (const violation& x : v) all += (all.empty() ? "" : "\n") + x.message;
  throw config_error(v.front().field, all);
}

// The data-parallel degree the configuration implies for `world` devices.
constexpr std::int64_t resolved_dp(const parallel_config& c, std::int64_t world) {
  validate(c, {.world = world});
  return c.dp_for(world);
}

}  // namespace trainperf
