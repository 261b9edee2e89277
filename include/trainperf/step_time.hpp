// trainperf — one layout's training step time, predicted: every GEMM at a shape-dependent
// efficiency, flash attention at its own, memory-bound operations from the bytes they move, the
// communication each parallelism adds (collectives.hpp) where the framework leaves it exposed,
// the pipeline's bubble from the schedule simulator (schedule.hpp) and the optimizer step.
// The figures of a benchmark report (token/p/s, MFU, HFU) follow from it, with the memory
// model's per-stage figure beside them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "collectives.hpp"
#include "error.hpp"
#include "flops.hpp"
#include "hardware.hpp"
#include "memory.hpp"
#include "model.hpp"
#include "parallel.hpp"
#include "partition.hpp"
#include "profile.hpp"
#include "schedule.hpp"

namespace trainperf {

struct step_options {
  memory_options memory{};  // micro batch (lbs), seq, dtypes, framework, recomputation details
  std::int64_t gbs = 0;     // global batch in sequences; micro-batches per step = gbs / (lbs x dp)
  // Megatron-core's --tp-comm-overlap (Transformer Engine's userbuffers): tensor-parallel
  // collectives hidden behind the GEMMs next to them; off, they are exposed.
  bool tp_comm_overlap = false;
  // Gradient reduction overlapped with the backward: unset takes the framework's default
  // (fsdp: yes, FSDP2 reduce-scatters each layer's gradients as its backward ends; deepspeed:
  // its overlap_comm; megatron, megatron-core, paddle, generic: no, as their flags default:
  // --overlap-grad-reduce off).
  std::optional<bool> overlap_grad_reduce{};
  // The sharded optimizer's parameter all-gather overlapped with the next step's forward
  // (Megatron-LM's --overlap-param-gather); unset: no.
  std::optional<bool> overlap_param_gather{};
  // The attention's Q, K, V projections as one GEMM and a gated MLP's gate and up as one:
  // unset takes the framework's default (megatron, megatron-core: yes, linear_qkv and linear_fc1;
  // fsdp: no, torchtitan's Llama has wq, wk, wv and w1, w3; deepspeed: no, Hugging Face's
  // q_proj, k_proj, v_proj and gate_proj, up_proj; paddle: no, PaddleNLP's LlamaConfig defaults
  // fuse_attention_qkv and fuse_attention_ffn to False; generic: yes). Separate products have
  // the same FLOPs in smaller GEMMs, which run below the fused one's rate on a device whose
  // efficiency rises with a GEMM's outputs.
  std::optional<bool> fused_projections{};
  // The FLOPs convention MFU and HFU count (flops.hpp); seq and recomputation are filled in.
  flops_convention mfu_convention = flops_convention::megatron;
  bool mfu_causal = false;
};

// Where a step's time goes, in seconds, on the stage that sets it.
struct step_breakdown {
  double compute = 0;    // GEMMs, attention, memory-bound operations, recomputation
  double tp_comm = 0;    // exposed tensor-parallel collectives
  double cp_comm = 0;    // exposed context-parallel ring exchange
  double ep_comm = 0;    // expert-parallel all-to-all
  double bubble = 0;     // pipeline idle time
  double dp_comm = 0;    // exposed data-parallel gradient reduction and parameter gathers
  double optimizer = 0;  // the optimizer step
  // What the parts above leave: the pipeline's stage hand-offs (its point-to-point transfers),
  // measured as what they add to the pipeline's time.
  double other = 0;
  [[nodiscard]] constexpr double total() const;
};

// The breakdown's parts in the order every report lists them: the key (JSON, Python), the label
// (tables) and a short one (the SVG's legend).
using breakdown_seconds = double step_breakdown::*;
struct breakdown_part {
  std::string_view key, label, short_label;
  breakdown_seconds seconds;
};
inline constexpr breakdown_part breakdown_parts[] = {
    {"compute", "compute", "compute", &step_breakdown::compute},
    {"tp_comm", "tensor-parallel comm (exposed)", "TP comm", &step_breakdown::tp_comm},
    {"cp_comm", "context-parallel comm (exposed)", "CP comm", &step_breakdown::cp_comm},
    {"ep_comm", "expert-parallel all-to-all", "EP comm", &step_breakdown::ep_comm},
    {"bubble", "pipeline bubble", "bubble", &step_breakdown::bubble},
    {"dp_comm", "data-parallel comm (exposed)", "DP comm", &step_breakdown::dp_comm},
    {"optimizer", "optimizer step", "optimizer", &step_breakdown::optimizer},
    {"other", "other: pipeline hand-offs", "hand-offs", &step_breakdown::other}};

constexpr double step_breakdown::total() const {
  double t = 0;
  for (const breakdown_part& p : breakdown_parts) t += this->*p.seconds;
  return t;
}

struct step_prediction {
  double step_time = 0;  // seconds
  double tokens_per_device_per_s = 0;
  double mfu = 0, hfu = 0;  // under step_options::mfu_convention, against the dense peak of the GEMMs' dtype
  step_breakdown breakdown{};
  std::int64_t micro_batches = 0;                     // per step per data-parallel replica
  std::vector<double> stage_forward, stage_backward;  // one micro-batch on each pipeline stage, s
  std::vector<double> stage_memory;                   // bytes each stage needs (stage_memory::need)
  [[nodiscard]] double memory_max() const {
    return stage_memory.empty() ? 0 : *std::max_element(stage_memory.begin(), stage_memory.end());
  }
};

namespace reason {
inline void step_time_needs_a_global_batch() {}
inline void step_time_models_language_models_only() {}
inline void step_time_does_not_model_offloading() {}
inline void step_time_profile_measured_elsewhere() {}
inline void framework_cannot_run_layout() {}
}  // namespace reason

// The layouts the step-time model times under each framework, and so the planner's search: its
// data parallelism as the framework shards it. Megatron-LM (megatron, megatron-core): DDP or its
// distributed optimizer, no ZeRO stage (its FSDP modes are --framework fsdp here); DeepSpeed: ZeRO
// stages without tensor or pipeline parallelism (its PipelineModule and AutoTP are not modeled;
// Megatron-DeepSpeed's layouts are Megatron-LM's); the distributed optimizer under Megatron-LM
// alone (DeepSpeed's and PaddleNLP's stages and FSDP's sharding are zero_stage). generic: any.
// The field the first refusal names and its one-line reason, or nullopt when the layout runs.
struct framework_refusal {
  std::string_view field;
  std::string reason;
};
inline std::optional<framework_refusal> refuses(framework f, const parallel_config& c) {
  using detail::str;
  const auto name = [f] { return std::string(detail::name_of(framework_names, f)); };  // for a refusal only
  const bool megatron = f == framework::megatron || f == framework::megatron_core;
  if (megatron && c.zero_stage > 0)
    return framework_refusal{
        "zero_stage", "framework " + name() +
                          " (--framework): the step-time model times Megatron-LM's data parallelism "
                          "without ZeRO stages, got zero_stage " +
                          str(c.zero_stage) +
                          " (--zero); shard the optimizer states with distributed_optimizer (--distributed-optimizer), "
                          "or for Megatron-FSDP or PyTorch FSDP2 give framework fsdp"};
  if (f == framework::deepspeed && (c.tp != 1 || c.pp != 1))
    return framework_refusal{
        c.tp != 1 ? "tp" : "pp",
        "framework deepspeed (--framework): the step-time model times DeepSpeed without tensor or pipeline "
        "parallelism (its PipelineModule and AutoTP are not modeled), got tp " +
            str(c.tp) + ", pp " + str(c.pp) +
            "; for Megatron-DeepSpeed's layouts give framework megatron with distributed_optimizer "
            "(--distributed-optimizer) in place of ZeRO-1"};
  if (c.distributed_optimizer && !megatron && f != framework::generic)
    return framework_refusal{
        "distributed_optimizer",
        "distributed_optimizer (--distributed-optimizer) is Megatron-LM's; framework " + name() + " shards with " +
            (f == framework::fsdp ? std::string("zero_stage 3 or 2 (--zero: FULL_SHARD, SHARD_GRAD_OP)")
                                  : std::string("zero_stage 1-3 (--zero; 1: the optimizer states)"))};
  return std::nullopt;
}

inline void check_framework_runs(framework f, const parallel_config& c) {
  if (const auto r = refuses(f, c))
    detail::require(false, reason::framework_cannot_run_layout, r->field, [&] { return r->reason; });
}

// The work the step-time model charges each operation, in FLOPs or bytes moved; calibration
// (calibration.hpp) measures a device in the same units, so that what it writes into a profile
// is what predict_step divides by.
namespace costs {
// Flash attention's forward: Q·K^T and P·V (2 x 2 FLOPs per query, key and head dimension) for
// `queries` queries against `keys` keys, halved for the causal mask it skips (Dao 2023,
// arXiv:2307.08691). Its backward does 2.5 x the forward's FLOPs (same paper, section 4.1: five
// matrix products to the forward's two).
constexpr double flash_attention_forward_flops(double queries, double keys, double heads, double head_dim) {
  return 4 * queries * keys * heads * head_dim * 0.5;
}
inline constexpr double flash_attention_backward_ratio = 2.5;
// Memory-bound operations, forward: a norm reads and writes the hidden state, a residual
// addition reads two and writes one, rotary embedding reads and writes Q and K, the MLP's
// activation reads its inputs (gate and up for SwiGLU, one for GELU) and writes one. A backward
// moves twice its forward's bytes (the forward's inputs and the incoming gradient read, a
// gradient written).
constexpr double norm_bytes(double tokens, double width, double e) { return 2 * tokens * width * e; }
constexpr double residual_bytes(double tokens, double width, double e) { return 3 * tokens * width * e; }
// Dropout fused into the residual addition (Megatron-LM's bias_dropout_add fusion): its 1-byte mask
// written forward and read backward, beside the addition's own bytes.
constexpr double dropout_mask_bytes(double tokens, double width) { return tokens * width; }
constexpr double rotary_bytes(double tokens, double q_width, double kv_width, double e) {
  return 2 * tokens * (q_width + kv_width) * e;
}
constexpr double activation_bytes(double tokens, double width, double inputs, double e) {
  return tokens * width * (inputs + 1) * e;
}
inline constexpr double streaming_backward_ratio = 2;
// The optimizer step per parameter (Adam, Kingma and Ba 2015, algorithm 1): its states (m, v and
// any fp32 master) read and written, the gradient read twice (the update and the norm for
// clipping) and zeroed, the weight written (read and written where the update is in place on the
// weight itself, as FSDP2's fp32 shard).
constexpr double optimizer_bytes_per_param(double grad_bytes, double state_bytes, double weight_bytes,
                                           bool weight_read_too) {
  return 3 * grad_bytes + 2 * state_bytes + (weight_read_too ? 2 : 1) * weight_bytes;
}
}  // namespace costs

namespace detail {

// Seconds for `batch` GEMMs of m x n x k: one GEMM of a shape the profile measured takes its
// measured seconds (predict_step_time checks the device and dtype they were measured in); any
// other its FLOPs at the profile's efficiency for that many output elements, or the bytes of its
// operands over the achieved memory bandwidth when that is slower (the roofline, Williams et al.
// 2009).
constexpr double gemm_time(double m, double n, double k, double peak, double element_bytes, double memory_bw,
                           const device_profile& p, double batch = 1) {
  if (m <= 0 || n <= 0 || k <= 0) return 0;
  if (batch == 1)
    for (const gemm_sample& g : p.measured.shapes)
      if (g.m == m && g.n == n && g.k == k) return g.seconds;
  const double outputs = m * n * batch, flops = 2 * outputs * k;
  const double compute = flops / (peak * p.gemm_efficiency * outputs / (outputs + p.gemm_half_outputs));
  const double memory = batch * element_bytes * (m * k + k * n + m * n) / (memory_bw * p.memory_efficiency);
  return std::max(compute, memory);
}

// One micro-batch through one layer (or the embedding, or the output layer) on one rank.
struct pass_time {
  double compute = 0, tp = 0, cp = 0, ep = 0;
  constexpr pass_time& operator+=(const pass_time& o) {
    compute += o.compute, tp += o.tp, cp += o.cp, ep += o.ep;
    return *this;
  }
  [[nodiscard]] constexpr pass_time times(double f) const { return {compute * f, tp * f, cp * f, ep * f}; }
  [[nodiscard]] constexpr double total() const { return compute + tp + cp + ep; }
};

struct layer_time {
  pass_time forward, backward;  // backward includes what recomputation repeats
};

// The process groups' spans under Megatron-LM's default order (tp-cp-ep-dp-pp, layout.hpp):
// tp fastest, then cp, dp, pp; the expert mesh tp-ep-dp-pp with etp in place of tp. Gradients
// reduce over dp x cp (context-parallel ranks hold the same weights: Megatron-LM's
// data-parallel group with context parallelism, torchtitan's dp_shard x cp), and with hybrid
// sharding over groups of shard_dp x cp of them, then across the dp / shard_dp replicas.
struct group_spans {
  group_span tp, cp, ep, dp, shard, replicate, expert_dp;
  bool pp_crosses_nodes = false;  // some stage hand-off crosses a node boundary
};

constexpr group_spans spans_for(const parallel_config& c, std::int64_t dp, const cluster_spec& cl) {
  const std::int64_t k = cl.devices_per_node;
  group_spans g;
  g.tp = span_of(c.tp, 1, k);
  g.cp = span_of(c.cp, c.tp, k);
  g.dp = span_of(dp * c.cp, c.tp, k);
  const std::int64_t shard = c.shard_dp > 0 ? c.shard_dp : dp;
  g.shard = span_of(shard * c.cp, c.tp, k);
  g.replicate = span_of(dp / shard, c.tp * c.cp * shard, k);
  const std::int64_t etp = c.resolved_etp();
  g.ep = span_of(c.ep, etp, k);
  const std::int64_t expert_dp = std::max<std::int64_t>(1, c.tp * c.cp * dp / (etp * c.ep));
  g.expert_dp = span_of(expert_dp, etp * c.ep, k);
  g.pp_crosses_nodes = span_of(c.pp, c.tp * c.cp * dp, k).spans_nodes();
  return g;
}

struct step_context {
  const transformer_spec& m;
  const parallel_config& c;
  const cluster_spec& cl;
  const device_profile& p;
  const step_options& o;
  group_spans g;
  double peak = 0, linear_peak = 0, mem_bw = 0, e = 2;  // e: bytes per activation element
  double tokens = 0;                                    // per micro-batch on one rank (lbs x seq / cp)
};

constexpr double streaming_time(const step_context& x, double bytes) {
  return bytes / (x.mem_bw * x.p.memory_efficiency);
}

// Megatron-LM's tensor-parallel pattern (Shoeybi et al. 2019, section 3; with sequence
// parallelism Korthikanti et al. 2022, section 4.2.2): where a tensor-parallel region ends, its
// partial sums are all-reduced, or with sequence parallelism reduce-scattered into the sequence
// split; where one begins, nothing is exchanged, or with sequence parallelism the split is
// all-gathered. Each of `bytes`, on this rank's tensor-parallel group.
constexpr double tp_reduce(const step_context& x, double bytes) {
  if (x.c.tp <= 1) return 0;
  return collective_time(x.c.sequence_parallel ? collective::reduce_scatter : collective::all_reduce, bytes, x.g.tp,
                         x.cl);
}
constexpr double tp_gather(const step_context& x, double bytes) {
  if (x.c.tp <= 1 || !x.c.sequence_parallel) return 0;
  return collective_time(collective::all_gather, bytes, x.g.tp, x.cl);
}
// Around one block: its output reduced in the forward, its input gradient in the backward, and
// with sequence parallelism the input gathered (forward) and the output gradient (backward).
constexpr double tp_block_comm(const step_context& x) {
  const double bytes = x.tokens * static_cast<double>(x.m.hidden) * x.e;
  return tp_reduce(x, bytes) + tp_gather(x, bytes);
}

constexpr bool fuses_projections(const step_options& o) {
  if (o.fused_projections) return *o.fused_projections;
  const framework f = o.memory.accounting;
  return f != framework::fsdp && f != framework::deepspeed && f != framework::paddle;
}

constexpr layer_time time_layer(const step_context& x, bool moe_layer) {
  const transformer_spec& m = x.m;
  const parallel_config& c = x.c;
  const double t = x.tokens, tp = static_cast<double>(c.tp), h = static_cast<double>(m.hidden);
  // kv per tp: replicated key/value heads are projected whole on each of their ranks.
  const double q = static_cast<double>(m.q_dim()),
               kv = static_cast<double>(m.kv_dim() * kv_head_replicas(m, c.tp, c.replicate_kv_heads));
  const double d = static_cast<double>(m.resolved_head_dim()), heads = static_cast<double>(m.heads) / tp;
  const double up = detail::mlp_matrices(m.mlp) - 1;  // fc1's outputs (gate and up, or up): the activation's inputs
  const double e = x.e, bw = x.mem_bw;
  const auto gemm = [&](double rows, double n, double k) { return gemm_time(rows, n, k, x.linear_peak, e, bw, x.p); };

  // Linear layers (forward; each backward GEMM, input and weight gradient, has the same FLOPs),
  // the projections fused into one GEMM or each its own (fuses_projections).
  const bool fused = fuses_projections(x.o);
  double linear =
      (fused ? gemm(t, (q + 2 * kv) / tp, h) : gemm(t, q / tp, h) + 2 * gemm(t, kv / tp, h)) + gemm(t, h, q / tp);
  double activation_bytes = 0;  // the activation function's reads and writes, forward
  const auto mlp = [&](double rows, double f, double split) {
    linear += (fused ? gemm(rows, up * f / split, h) : up * gemm(rows, f / split, h)) + gemm(rows, h, f / split);
    activation_bytes += costs::activation_bytes(rows, f / split, up, e);
  };
  double ep_comm = 0;
  if (moe_layer) {
    const double experts = static_cast<double>(m.moe.experts), k = static_cast<double>(m.moe.top_k);
    const double ep = static_cast<double>(c.ep), etp = static_cast<double>(c.resolved_etp());
    const double cf = x.o.memory.moe_capacity_factor > 0 ? x.o.memory.moe_capacity_factor : 1.0;
    linear += gemm(t, experts, h);  // router
    // Balanced routing: each of the experts / ep local experts receives t x top_k x ep / experts tokens.
    const double rows = t * k * ep / experts * cf;
    const double local = experts / ep;
    const double before = linear, before_bytes = activation_bytes;
    mlp(rows, static_cast<double>(m.resolved_expert_ffn()), etp);
    linear = before + (linear - before) * local;
    activation_bytes = before_bytes + (activation_bytes - before_bytes) * local;
    if (m.moe.shared_experts > 0)
      mlp(t, static_cast<double>(m.moe.shared_experts * m.resolved_shared_expert_ffn()), tp);
    // Dispatch and combine: each routed token copy (t x top_k of them, hidden wide) crosses the
    // expert-parallel group once each way (Megatron-LM's alltoall token dispatcher).
    if (c.ep > 1) ep_comm = 2 * collective_time(collective::all_to_all, t * k * cf * h * e, x.g.ep, x.cl);
  } else {
    mlp(t, static_cast<double>(m.ffn), tp);
  }

  // Attention core: the query heads of this rank against the whole sequence's keys (context
  // parallelism splits the queries).
  const double seq = static_cast<double>(x.o.memory.seq);
  double attn_f = 0, attn_b = 0;
  if (x.o.memory.flash_attention) {
    const double flops = costs::flash_attention_forward_flops(t, seq, heads, d);
    const bool cudnn = x.o.memory.cudnn_attention;
    attn_f = flops / (x.peak * (cudnn ? x.p.cudnn_attention_forward_efficiency : x.p.attention_forward_efficiency));
    attn_b = costs::flash_attention_backward_ratio * flops /
             (x.peak * (cudnn ? x.p.cudnn_attention_backward_efficiency : x.p.attention_backward_efficiency));
  } else {
    // Unfused: two batched GEMMs per head over the whole score matrix, and the softmax reading
    // and writing it (scale and mask, softmax, and its fp32 copy when it runs in fp32).
    const double lbs = static_cast<double>(x.o.memory.lbs), rows = t / lbs;
    const double batch = lbs * heads;  // one batched GEMM each, filling the device as one
    const double products =
        gemm_time(rows, seq, d, x.peak, e, bw, x.p, batch) + gemm_time(rows, d, seq, x.peak, e, bw, x.p, batch);
    const double scores = t * seq * heads;
    const double passes = x.o.memory.fp32_softmax ? 3 * e + 8 : 4 * e;
    // Dropout on the probabilities: read and written with its 1-byte mask forward; the gradient
    // read and written with the mask backward.
    const double dropout_pass = x.o.memory.dropout ? streaming_time(x, scores * (2 * e + 1)) : 0;
    attn_f = products + streaming_time(x, scores * passes) + dropout_pass;
    attn_b = 2 * products + streaming_time(x, scores * 1.5 * passes) + dropout_pass;
  }

  // Memory-bound operations (forward bytes): two norms, two residual additions, rotary embedding
  // on Q and K, the activation function. Sequence parallelism splits the norms and residuals
  // over tp.
  const double norm_tokens = c.sequence_parallel ? t / tp : t;
  double bytes =
      2 * (costs::norm_bytes(norm_tokens, h, e) + costs::residual_bytes(norm_tokens, h, e)) + activation_bytes;
  if (m.positions == position_kind::rotary) bytes += costs::rotary_bytes(t, q / tp, kv / tp, e);
  const double elementwise = streaming_time(x, bytes);
  // Hidden dropout after each block: its mask, as many bytes forward as backward (flash attention
  // draws its own dropout inside the kernel: no mask).
  const double dropout = x.o.memory.dropout ? streaming_time(x, 2 * costs::dropout_mask_bytes(norm_tokens, h)) : 0;

  const double tp_comm = 2 * tp_block_comm(x);  // attention and MLP blocks
  // Context parallelism: ring attention passes each rank's K and V chunk around the ring, cp - 1
  // hops forward and the same back with their gradients (Megatron-LM's p2p ring,
  // transformer_engine attention's AttnFuncWithCPAndKVP2P), overlapped with the core.
  double cp_f = 0, cp_b = 0;
  if (c.cp > 1) {
    const double hop = collective_time(collective::p2p, 2 * t * kv / tp * e, x.g.cp, x.cl);
    const double steps = static_cast<double>(c.cp - 1);
    cp_f = std::max(0.0, steps * hop - attn_f);
    cp_b = std::max(0.0, 2 * steps * hop - attn_b);
  }
  const double tp_f = x.o.tp_comm_overlap ? std::max(0.0, tp_comm - linear) : tp_comm;
  const double tp_b = x.o.tp_comm_overlap ? std::max(0.0, tp_comm - 2 * linear) : tp_comm;

  layer_time r;
  r.forward = {linear + attn_f + elementwise + dropout, tp_f, cp_f, ep_comm};
  r.backward = {2 * linear + attn_b + costs::streaming_backward_ratio * elementwise + dropout, tp_b, cp_b, ep_comm};
  // Recomputation repeats forward work inside the backward: full, the whole layer; Megatron's
  // selective, the attention core; torchtitan's op-level selective, every other matmul and the
  // memory-bound operations, and the attention when its kernel is not saved.
  const recompute rc = c.recomputation;
  const selective_policy sp = x.o.memory.selective;
  if (rc == recompute::full)
    r.backward += r.forward;
  else if (rc == recompute::selective)
    r.backward.compute += sp == selective_policy::attention_core                     ? attn_f
                          : sp == selective_policy::every_other_matmul_and_attention ? linear / 2 + elementwise + attn_f
                                                                                     : linear / 2 + elementwise;
  return r;
}

// The output layer and loss (last stage) and the embedding (first stage), per micro-batch.
constexpr layer_time time_output(const step_context& x) {
  const double t = x.tokens, tp = static_cast<double>(x.c.tp), h = static_cast<double>(x.m.hidden);
  const double v = static_cast<double>(x.m.padded_vocab(x.c.tp)) / tp;
  const double logits = gemm_time(t, v, h, x.linear_peak, x.e, x.mem_bw, x.p);
  // Final norm; the cross entropy reads the logits and writes fp32 softmax statistics forward,
  // reads them and writes the logits' gradient backward (Megatron-LM's vocab-parallel cross
  // entropy computes in fp32).
  const double norm = costs::norm_bytes(x.c.sequence_parallel ? t / tp : t, h, x.e);
  const double ce = t * v * (x.e + 4);
  // The column-parallel output layer begins a tensor-parallel region: its input gathered forward,
  // its gradient reduced backward (Megatron-LM's copy_to / gather_from_sequence_parallel_region).
  const double a = t * h * x.e;
  layer_time r;
  r.forward = {logits + streaming_time(x, norm + ce), tp_gather(x, a), 0, 0};
  r.backward = {2 * logits + streaming_time(x, costs::streaming_backward_ratio * norm + ce), tp_reduce(x, a), 0, 0};
  return r;
}

// The vocabulary-parallel embedding ends a tensor-parallel region: its output reduced forward,
// its gradient gathered backward.
constexpr layer_time time_embedding(const step_context& x) {
  const double bytes = x.tokens * static_cast<double>(x.m.hidden) * x.e;
  layer_time r;
  r.forward = {streaming_time(x, bytes), tp_reduce(x, bytes), 0, 0};
  r.backward = {streaming_time(x, costs::streaming_backward_ratio * bytes), tp_gather(x, bytes), 0, 0};
  return r;
}

// Bucket sizes of the frameworks' overlapped gradient reduction:
//   megatron-core DistributedDataParallelConfig.bucket_size: "max(40000000, 1000000 * dp_size)
//   parameters" (core v0.7.0, distributed_data_parallel_config.py); torch DistributedDataParallel's
//   bucket_cap_mb = 25; paddle.DataParallel's last_comm_buffer_size = 1 (MB; its last bucket is
//   kept small for this reason).
inline constexpr double megatron_bucket_min_params = 4e7;
inline constexpr double megatron_bucket_params_per_dp = 1e6;
inline constexpr double torch_ddp_bucket_bytes = 25.0 * 1024 * 1024;
inline constexpr double paddle_last_bucket_bytes = 1.0 * 1024 * 1024;

// The parameters of the bucket a framework reduces last when its gradient reduction overlaps the
// backward (and gathers first when its parameter gather overlaps the forward): nothing is left to
// hide it behind, so it stays exposed however much compute there is. `unit` is one transformer
// block's parameters on this rank (an FSDP unit, a ZeRO-3 module), grad_bytes a gradient's size.
// No bucket splits a parameter: predict_step_time raises it to the piece reduced last (`last`).
constexpr double overlap_bucket_params(const step_options& o, int zero_stage, double dp_cp, double unit,
                                       double grad_bytes) {
  switch (o.memory.accounting) {
    case framework::megatron:
    case framework::megatron_core:
      return std::max(megatron_bucket_min_params, megatron_bucket_params_per_dp * dp_cp);
    case framework::fsdp:
      return unit;  // one FSDP unit a transformer block (torchtitan, llm-foundry wrap each block)
    case framework::deepspeed:
      // ZeRO-3 gathers a module at a time; every stage reduces reduce_bucket_size elements at a time.
      return zero_stage == 3 ? std::min(unit, o.memory.deepspeed.reduce_bucket_size)
                             : o.memory.deepspeed.reduce_bucket_size;
    case framework::paddle:
      return paddle_last_bucket_bytes / grad_bytes;
    case framework::generic:
      break;
  }
  return torch_ddp_bucket_bytes / grad_bytes;
}

constexpr bool overlaps_grad_reduce(const step_options& o, int zero_stage) {
  if (o.overlap_grad_reduce) return *o.overlap_grad_reduce;
  if (o.memory.accounting == framework::fsdp) return true;
  if (o.memory.accounting == framework::deepspeed) return o.memory.deepspeed.overlaps(zero_stage);
  return false;
}

// predict_step without the memory model (the planner has run it already); simulate false takes
// the pipeline's time in closed form (pipeline_time_estimate), as the planner's screening does.
// The model is taken as the framework stores it (as_stored_by).
inline step_prediction predict_step_time(const transformer_spec& spec, const parallel_config& c, const cluster_spec& cl,
                                         const device_profile& p, const step_options& o,
                                         bool simulate_pipeline = true) {
  using detail::str;
  const transformer_spec m = as_stored_by(spec, o.memory.accounting);
  validate(m);
  validate(cl);
  validate(p);
  detail::require(!m.vision.present() && m.llm_mode == train_mode::trained && !o.memory.adapters.lora() &&
                      !o.memory.adapters.prompt(),
                  reason::step_time_models_language_models_only, "model", [&] {
                    return std::string(
                        "the step-time model covers fully trained language models; vision towers, "
                        "frozen parts and adapters are not modeled yet (use memory and mfu for them)");
                  });
  detail::require(!o.memory.offload_optimizer && !o.memory.offload_activations,
                  reason::step_time_does_not_model_offloading, "offload", [&] {
                    return std::string(
                        "offloaded optimizer states or activations are not in the step-time model; "
                        "predict without offloading");
                  });
  detail::require(o.gbs > 0, reason::step_time_needs_a_global_batch, "gbs",
                  [&] { return "the step time needs the global batch (gbs, sequences), got " + str(o.gbs); });
  const std::int64_t world = cl.devices;
  const std::int64_t dp = resolved_dp(c, world);
  const std::int64_t per_step = detail::checked_mul(o.memory.lbs, dp, "lbs x dp");
  // Also refuses a global batch that is not a multiple of lbs x dp, naming the nearest valid ones.
  validate(c, {.world = world, .model = m, .seq = o.memory.seq, .gbs = o.gbs, .lbs = o.memory.lbs});
  check_framework_runs(o.memory.accounting, c);
  const std::int64_t micro = o.gbs / per_step;

  step_options opt = o;
  opt.memory.micro_batches = micro;
  const dtype compute = o.memory.param_dtype;
  const bool fp8 = o.memory.fp8 != fp8_training::none;
  detail::step_context x{m, c, cl, p, opt, detail::spans_for(c, dp, cl)};
  x.peak = require_peak(cl.device, compute);
  x.linear_peak = fp8 ? require_peak(cl.device, dtype::fp8) : x.peak;
  const dtype linear = fp8 ? dtype::fp8 : compute;
  detail::require(p.measured.empty() || (p.measured.device == cl.device.name && p.measured.type == linear),
                  reason::step_time_profile_measured_elsewhere, "profile", [&] {
                    return "profile " + p.name + " holds GEMMs measured on " + p.measured.device + " in " +
                           std::string(to_string(p.measured.type)) + "; this step runs its GEMMs on " +
                           std::string(cl.device.name) + " in " + std::string(to_string(linear)) +
                           ": predict for that device and dtype, or give a profile without measured GEMMs";
                  });
  detail::require(cl.device.memory_bandwidth > 0, reason::device_fields_must_be_positive, "memory_bandwidth", [&] {
    return std::string(cl.device.name) + " has no memory bandwidth in the device table; the step-time model needs it";
  });
  x.mem_bw = cl.device.memory_bandwidth;
  x.e = detail::dtype_bytes(compute == dtype::tf32 ? dtype::fp32 : compute);
  x.tokens = static_cast<double>(o.memory.lbs) * static_cast<double>(o.memory.seq) / static_cast<double>(c.cp);

  const detail::layer_time dense = detail::time_layer(x, false);
  const detail::layer_time moe = m.is_moe() ? detail::time_layer(x, true) : dense;
  const detail::layer_time head = detail::time_output(x), embed = detail::time_embedding(x);

  // Per stage: one micro-batch's forward and backward, and its parameters.
  const auto stages = partition_layers(m.layers, c.split());
  const auto pp = static_cast<std::size_t>(c.pp);
  std::vector<detail::pass_time> fwd(pp), bwd(pp);
  std::vector<double> stage_params(pp, 0.0), stage_expert_params(pp, 0.0);
  std::vector<double> stage_last_piece(pp, 0.0);                  // reduced last as one piece (see reduce below)
  const bool root_unit = o.memory.accounting == framework::fsdp;  // FSDP's root: embedding, final norm, output
  const param_counts pc = count_params(m, c.tp);
  const double tp = static_cast<double>(c.tp), etp = static_cast<double>(c.resolved_etp());
  const layer_params moe_lp = count_layer_params(m, m.layer_of_shape(true));
  const double dense_layer_params = layer_params_per_tp_rank(m, count_layer_params(m, m.layer_of_shape(false)), c.tp);
  const double moe_layer_params = m.is_moe() ? layer_params_per_tp_rank(m, moe_lp, c.tp) : 0.0;  // experts apart
  const double kv_copies = replicated_kv_weights_per_rank(m, c.tp, c.replicate_kv_heads);        // per layer and rank
  for (const stage_layers& s : stages) {
    const auto st = static_cast<std::size_t>(s.stage);
    const std::int64_t moe_layers = m.moe_layers_below(s.first_layer + s.layers) - m.moe_layers_below(s.first_layer);
    const std::int64_t dense_layers = s.layers - moe_layers;
    fwd[st] += dense.forward.times(static_cast<double>(dense_layers));
    fwd[st] += moe.forward.times(static_cast<double>(moe_layers));
    bwd[st] += dense.backward.times(static_cast<double>(dense_layers));
    bwd[st] += moe.backward.times(static_cast<double>(moe_layers));
    if (moe_layers > 0) {
      stage_params[st] += static_cast<double>(moe_layers) * (moe_layer_params + kv_copies);
      stage_expert_params[st] += static_cast<double>(moe_layers) * static_cast<double>(moe_lp.routed_experts) /
                                 (etp * static_cast<double>(c.ep));
    }
    stage_params[st] += static_cast<double>(dense_layers) * (dense_layer_params + kv_copies);
    if (s.embedding) {
      fwd[st] += embed.forward, bwd[st] += embed.backward;
      const double embedding = embedding_params_per_tp_rank(pc, c.tp);
      stage_params[st] += embedding;
      stage_last_piece[st] += root_unit ? embedding : static_cast<double>(pc.token_embedding) / tp;
    }
    if (s.output) {
      fwd[st] += head.forward, bwd[st] += head.backward;
      const double output =
          static_cast<double>(pc.output) / tp + static_cast<double>(detail::norm_params(m.norm, m.hidden));
      stage_params[st] += output;  // the output layer and the final norm (whole on every tp rank)
      if (root_unit) stage_last_piece[st] += output;
    }
  }
  if (m.tied_embeddings && c.pp > 1) stage_params[pp - 1] += static_cast<double>(pc.token_embedding) / tp;

  // The pipeline: the schedule simulator plays the stages' per-micro-batch times, each hand-off
  // carrying one activation (Megatron-LM sends it split over tp with sequence parallelism).
  double pipeline = 0, handoffs = 0;
  std::vector<double> f_total(pp), b_total(pp);
  for (std::size_t s = 0; s < pp; ++s) f_total[s] = fwd[s].total(), b_total[s] = bwd[s].total();
  if (c.pp > 1) {
    const double act = x.tokens * static_cast<double>(m.hidden) * x.e / (c.sequence_parallel ? tp : 1.0);
    const group_span pair{2, x.g.pp_crosses_nodes ? 1 : 2};
    const double hop = collective_time(collective::p2p, act, pair, cl);
    // The schedule is built once and timed twice (with and without the hand-offs).
    const schedule plan = simulate_pipeline ? make_schedule(c.schedule(), c.pp, micro, c.vpp) : schedule{};
    const auto timed = [&](double h) {
      return simulate_pipeline ? simulate(plan, f_total, b_total, h, false).step_time
                               : pipeline_time_estimate(c.schedule(), c.pp, micro, c.vpp, f_total, b_total, h);
    };
    pipeline = timed(hop);
    handoffs = hop > 0 ? std::max(0.0, pipeline - timed(0)) : 0;  // what the hand-offs add
  } else {
    pipeline = static_cast<double>(micro) * (f_total[0] + b_total[0]);
  }

  // Data parallelism and the optimizer, per stage (the slowest sets the step's tail). Bytes per
  // parameter as the memory model keeps them (per_param_state_bytes, unsharded): the gradient's
  // dtype and the optimizer's states.
  const memory_options& mo = opt.memory;
  const state_bytes unsharded = per_param_state_bytes(parallel_config{}, 1, mo);
  const double grad_bytes = unsharded.grads;
  const bool fsdp = mo.accounting == framework::fsdp;
  const int zero = fsdp ? 3 : c.zero_stage;
  const bool sharded_states = zero >= 1 || c.distributed_optimizer;
  const bool overlap = detail::overlaps_grad_reduce(opt, c.zero_stage);
  const bool overlap_gather = opt.overlap_param_gather.value_or(false);
  const double m_d = static_cast<double>(micro);
  std::size_t critical = 0;
  double tail_max = 0;
  std::vector<double> dp_exposed(pp), opt_time(pp);
  // One block's parameters on this rank (an FSDP unit, a ZeRO-3 module): the largest block's,
  // its routed experts apart (they reduce over their own group).
  const bool has_dense_layers = m.moe_layers() < m.layers;
  const double moe_block = m.is_moe() ? moe_layer_params + kv_copies : 0.0;
  const double unit = std::max(has_dense_layers ? dense_layer_params + kv_copies : 0.0, moe_block);
  const double expert_unit =
      m.is_moe() ? static_cast<double>(moe_lp.routed_experts) / (etp * static_cast<double>(c.ep)) : 0.0;
  for (std::size_t s = 0; s < pp; ++s) {
    double exposed = 0;
    const double f1 = fwd[s].total(), b1 = bwd[s].total();
    // Overlapped communication hides behind the compute beside it, all but its edge: the first
    // bucket a forward gathers or the last one a backward reduces (`edge`, the same collective on
    // that bucket) waits with nothing left to run.
    const auto hide = [](double comm, double behind, bool overlapped, double edge) {
      return overlapped ? std::max(std::min(edge, comm), comm - behind) : comm;
    };
    // The parameters' gradients reduced over `shard` (then, with hybrid sharding, their shard
    // all-reduced over `replicate`), and with sharded states the weights gathered back.
    // `block`: one block's share of them; `last`: what is reduced last (gathered first) as one
    // piece: the embedding, which no bucket splits, or FSDP's root unit (embedding, final norm and
    // output layer, reduce-scattered after every block).
    const auto reduce = [&](double params, group_span shard, group_span replicate, double block, double last) {
      if (params <= 0 || shard.size * replicate.size <= 1) return;
      const double bucket = std::min(
          params, std::max(last, detail::overlap_bucket_params(
                                     opt, zero, static_cast<double>(shard.size * replicate.size), block, grad_bytes)));
      const auto gather = [&](double n) { return collective_time(collective::all_gather, n * x.e, shard, cl); };
      const auto scatter = [&](double n) {
        return collective_time(collective::reduce_scatter, n * grad_bytes, shard, cl) +
               collective_time(collective::all_reduce, n * grad_bytes / static_cast<double>(shard.size), replicate, cl);
      };
      if (zero == 3) {
        // ZeRO-3 / FSDP: every micro-batch gathers the weights for its forward and again for its
        // backward and reduce-scatters the gradients; prefetching overlaps the gathers; the last
        // micro-batch's last reduce-scatter ends the step.
        const double all = gather(params) + scatter(params);
        exposed += m_d * hide(gather(params), f1, true, gather(bucket));
        exposed += (m_d - 1) * hide(all, b1, overlap || fsdp, 0) + hide(all, b1, overlap || fsdp, scatter(bucket));
      } else if (zero == 2) {
        // ZeRO-2 keeps only its gradient partition: it reduce-scatters every micro-batch.
        exposed += m_d * hide(scatter(params), b1, overlap, scatter(bucket));
        exposed += hide(gather(params), f1, overlap_gather, gather(bucket));
      } else if (sharded_states) {
        // ZeRO-1 / the distributed optimizer: one reduce-scatter per step, then the updated
        // weights are gathered (Megatron-LM dist_optimizer.md).
        exposed += hide(scatter(params), b1, overlap, scatter(bucket));
        exposed += hide(gather(params), f1, overlap_gather, gather(bucket));
      } else {
        const auto all_reduce = [&](double n) {
          return collective_time(collective::all_reduce, n * grad_bytes, x.g.dp, cl);
        };
        exposed += hide(all_reduce(params), b1, overlap, all_reduce(bucket));
      }
    };
    reduce(stage_params[s], x.g.shard, x.g.replicate, unit, stage_last_piece[s]);
    reduce(stage_expert_params[s], x.g.expert_dp, group_span{}, expert_unit, 0.0);
    // The optimizer step streams its states, its gradients and the weights (FSDP2 updates its
    // fp32 shard in place: read too); sharded states spread over the shard groups.
    const double per_param = costs::optimizer_bytes_per_param(grad_bytes, unsharded.optimizer, unsharded.params, fsdp);
    const double dense_shards = sharded_states ? static_cast<double>(x.g.shard.size) : 1.0;
    const double expert_shards = sharded_states ? static_cast<double>(x.g.expert_dp.size) : 1.0;
    const double local = stage_params[s] / dense_shards + stage_expert_params[s] / expert_shards;
    opt_time[s] = detail::streaming_time(x, local * per_param);
    dp_exposed[s] = exposed;
    if (exposed + opt_time[s] > tail_max) tail_max = exposed + opt_time[s], critical = s;
  }

  step_prediction r;
  r.micro_batches = micro;
  r.step_time = pipeline + tail_max;
  // The breakdown on the busiest stage: its compute and exposed communication over all
  // micro-batches, the rest of the pipeline time as bubble, and the slowest stage's tail.
  std::size_t busiest = 0;
  for (std::size_t s = 1; s < pp; ++s)
    if (f_total[s] + b_total[s] > f_total[busiest] + b_total[busiest]) busiest = s;
  detail::pass_time busy = fwd[busiest];
  busy += bwd[busiest];
  busy = busy.times(m_d);
  r.breakdown.compute = busy.compute;
  r.breakdown.tp_comm = busy.tp;
  r.breakdown.cp_comm = busy.cp;
  r.breakdown.ep_comm = busy.ep;
  r.breakdown.bubble = std::max(0.0, pipeline - handoffs - busy.total());
  r.breakdown.other = handoffs;
  r.breakdown.dp_comm = dp_exposed[critical];
  r.breakdown.optimizer = opt_time[critical];
  for (std::size_t s = 0; s < pp; ++s) r.stage_forward.push_back(f_total[s]), r.stage_backward.push_back(b_total[s]);

  const double tokens = static_cast<double>(o.gbs) * static_cast<double>(o.memory.seq);
  const double devices = static_cast<double>(world);
  r.tokens_per_device_per_s = tokens / (r.step_time * devices);
  flops_options fo{
      .convention = o.mfu_convention, .seq = o.memory.seq, .causal = o.mfu_causal, .recomputation = c.recomputation};
  fo.tp = c.tp;
  const flops_count fc = count_flops(m, fo);
  // Against the dense peak of the dtype the GEMMs run in (fp8 with fp8 linear layers), so that no
  // part of the step can run above it.
  r.mfu = fc.model * static_cast<double>(o.gbs) / (r.step_time * devices * x.linear_peak);
  r.hfu = fc.hardware * static_cast<double>(o.gbs) / (r.step_time * devices * x.linear_peak);

  return r;
}
}  // namespace detail

// The predicted step of model m under layout c on cluster cl with profile p, with what each
// pipeline stage needs of the device (stage_memory::need).
inline step_prediction predict_step(const transformer_spec& m, const parallel_config& c, const cluster_spec& cl,
                                    const device_profile& p, const step_options& o) {
  step_prediction r = detail::predict_step_time(m, c, cl, p, o);
  memory_options mo = o.memory;
  mo.micro_batches = r.micro_batches;
  for (const stage_memory& s : estimate_memory(m, c, cl.devices, mo).stages) r.stage_memory.push_back(s.need());
  return r;
}

}  // namespace trainperf
