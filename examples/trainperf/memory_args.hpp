// The memory subcommand's model, parallel, framework and memory flags, shared by `trainperf memory`,
// `predict` and `plan`: flag list and their reading into a model, a layout and memory_options.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <trainperf/trainperf.hpp>

#include "cli.hpp"
#include "device_flags.hpp"
#include "model_flags.hpp"

namespace trainperf::cli {
namespace tp = trainperf;

inline std::vector<flag> memory_flags() {
  auto f = tp::cli::model_flags();
  for (auto& x : f)
    if (x.name == "seq") x.help = "training sequence length";
  for (const auto& x : std::vector<flag>{
           {"lbs", "N", "micro batch (sequences, default 1)"},
           {"gas", "N", "micro-batches per step (default 1)"},
           {"tp", "N", "tensor parallel"},
           {"pp", "N", "pipeline parallel"},
           {"dp", "N", "data parallel (default 1)"},
           {"cp", "N", "context parallel"},
           {"vpp", "N", "virtual pipeline stages"},
           {"ep", "N", "expert parallel (MoE: each rank holds experts / ep)"},
           {"etp", "N", "expert tensor parallel (default: tp)"},
           {"replicate-kv-heads", "", "with fewer key/value heads than tp: each on tp / kv_heads ranks (vLLM's rule)"},
           {"sp", "", "sequence parallel"},
           {"zero", "0..3", "ZeRO stage"},
           {"distributed-optimizer", "", "Megatron-LM's distributed optimizer"},
           {"shard-dp", "N",
            "hybrid sharding: ZeRO/FSDP shards over groups of N data-parallel ranks, replicated across groups "
            "(FSDP HYBRID_SHARD / HSDP, torchtitan's dp_shard)"},
           {"recompute", choices_of(tp::recompute_names), "activation recomputation"},
           {"recompute-method", choices_of(tp::recompute_grouping_names),
            "with --recompute full, Megatron-LM's: groups of --recompute-num-layers (uniform, the default) or the "
            "first --recompute-num-layers layers of each stage (block)"},
           {"recompute-num-layers", "N", "layers per recomputed group (uniform) or recomputed per stage (block)"},
           {"distribute-saved-activations", "", "with --recompute full, the kept layer inputs split over tp ranks"},
           {"moe-capacity-factor", "C", "MoE experts padded to C x their share of tokens (default: dropless)"},
           {"kernels", choices_of(tp::layer_kernels_names),
            "norms and activation: fused kernels (default; TE, Apex, torch.compile) or eager PyTorch modules as "
            "Hugging Face transformers writes them (fp32 norm copies, the SiLU output kept)"},
           {"selective", choices_of(tp::selective_policy_names),
            "what --recompute selective keeps: Megatron-LM's (all but the attention core, the default) or "
            "torchtitan's op-level SAC (every other matmul's output and the attention's; -and-attention: the attention "
            "recomputed too, as when its kernel is not on the save list, cuDNN's on B200 before 2025-12)"},
           {"flash", "", "flash attention (no s x s scores kept); the same as --attention flash"},
           {"attention", "flash|cudnn|sdpa|eager|unfused",
            "attention implementation: flash, cudnn (Transformer Engine's FusedAttention, in Megatron's [s, b, h] "
            "layout) and SDPA's fused kernels keep no scores; eager (transformers) keeps an fp32 softmax and its "
            "16-bit copy, unfused (Megatron-LM) a 16-bit softmax (default: unfused unless --flash); SDPA's math "
            "fallback materializes the scores: give eager for it"},
           {"dropout", "", "dropout masks are kept"},
           {"dtype", "fp32|bf16|fp16", "weight and activation dtype (default bf16)"},
           {"fp8", choices_of(tp::fp8_training_names),
            "fp8 linear layers: Transformer Engine's delayed scaling (fp8 GEMM inputs kept, fp8 weight caches), "
            "torchao's float8/MX linears (16-bit inputs kept), with FSDP2 gathering weights in fp8"},
           {"grad-dtype", "fp32|bf16|fp16",
            "gradient buffers: fp32 or the weights' dtype (default: fp32 under megatron and megatron-core with bf16, "
            "the weights' otherwise; bf16 there is Megatron-LM's --grad-reduce-in-bf16, NeMo's grad_sync_dtype bf16)"},
           {"no-master-weights", "",
            "pure 16-bit training: no fp32 master copy, optimizer states in the weights' dtype"},
           {"optimizer", choices_of(tp::optimizer_kind_names),
            "optimizer (default adam; adamw keeps the same states; adamw8bit: bitsandbytes' block-wise 8-bit states)"},
           {"framework", choices_of(tp::framework_names),
            "framework accounting (default generic): megatron is Megatron-LM's legacy models, megatron-core its "
            "mcore models with Transformer Engine"},
           {"offload-optimizer", "", "optimizer states in CPU memory"},
           {"optimizer-in-backward", "",
            "each weight stepped as its gradient arrives, no gradient buffers (torchtune's optimizer_in_bwd)"},
           {"persistent-grads", "",
            "gradient buffers live through the whole step (zero_grad(set_to_none=False)); by default, under "
            "generic without data or context parallelism and under fsdp --zero 2|3, with one micro-batch a step, "
            "the backward creates them as it frees the saved activations (PyTorch's set_to_none default), so they "
            "count as far as they outgrow those, the output layer's first"},
           {"loss", choices_of(tp::logits_loss_names),
            "how the loss holds the logits: PyTorch's cross entropy on an fp32 copy (standard: 12 bytes a logit at "
            "its backward; 10 under Megatron's fused one), torchtune's chunked cross-entropy (fp32 log-softmax per "
            "chunk kept) or compiled (16-bit chunks only), 16-bit logits and their shifted copy with autocast's fp32 "
            "log-softmax (autocast: Qwen's model code under the Trainer) or without autocast (no-upcast: the same "
            "under DeepSpeed), the whole up-cast loss compiled (compiled: 16-bit logits and gradient, torchtitan with "
            "--training.compile since 2025-04), or Lit-GPT's loss on output chunks that Fabric returns in fp32 "
            "(chunked-fp32-outputs: the fp32 chunks and their log-softmax), or PyTorch's loss_parallel() on "
            "vocabulary-sharded logits "
            "(loss-parallel: 16 bytes a logit of the shard at its backward; torchtitan's default with --tp), or a "
            "fused cross-entropy kernel on the 16-bit logits (fused: the logits and their 16-bit gradient; "
            "flash-attn's CrossEntropyLoss, llm-foundry's default)"},
           {"offload-activations", "",
            "with --recompute full, the layer inputs moved to host memory but the last 5 (torchtune)"},
           {"adam-step", choices_of(tp::adam_step_names),
            "how Adam steps: fused kernels in place, or PyTorch's foreach with a temporary as large as v during the "
            "step (default: foreach for generic and fsdp, fused for the others)"},
           {"fsdp-no-sync", "",
            "with --framework fsdp and --gas > 1, micro-batches accumulated under FSDP's no_sync (Lightning "
            "Fabric's no_backward_sync): every block with a trainable weight holds its whole weights' gradients, "
            "unsharded"},
           {"fsdp-embedding-resharded", "",
            "with --framework fsdp --zero 3, the embedding is its own FSDP unit, resharded after the forward "
            "(torchtitan since 2025-07-28 without --pp; torchtune's custom_sharded_layers); by default FSDP's root "
            "keeps the "
            "embedding and output layer gathered through the backward"},
           {"ds-auto", "", "DeepSpeed's buffer sizes as Hugging Face's \"auto\" sets them (hidden^2 buckets)"},
           {"reduce-bucket-size", "N", "DeepSpeed's reduce_bucket_size in elements (default 5e8)"},
           {"allgather-bucket-size", "N",
            "DeepSpeed's allgather_bucket_size in elements (default 5e8): accepted as configs give it; it sizes no "
            "buffer (ZeRO-1/2 gather the weights in place in their flat buffer) and the step time does not read it "
            "(the gather after the step is not overlapped)"},
           {"overlap-comm", "on|off", "DeepSpeed's overlap_comm (default: on for ZeRO-3 only)"},
           {"no-contiguous-gradients", "", "DeepSpeed without contiguous_gradients (no reduction bucket)"},
           {"stage3-prefetch-bucket-size", "N", "DeepSpeed ZeRO-3's prefetch bucket in elements (default 5e7)"},
           {"stage3-max-live-parameters", "N", "DeepSpeed ZeRO-3's live-parameter budget (default 1e9)"},
           {"stage3-max-reuse-distance", "N", "DeepSpeed ZeRO-3's reuse distance in elements (default 1e9)"},
           {"stage3-param-persistence-threshold", "N",
            "DeepSpeed ZeRO-3: weights of at most N elements stay gathered (default 1e5)"},
           {"train", "PARTS", "comma list of the parts that train: vision,projector,llm (the rest frozen)"},
           {"lora-rank", "R", "LoRA adapters of rank R on a frozen base (Hu et al. 2021)"},
           {"lora-targets", "LIST",
            "projections with adapters: q,k,v,qkv (fused),o,gate,up,down, attention, mlp, all-linear"},
           {"lora-dropout", "", "dropout on the adapters' inputs (each keeps a dropped-out copy and its mask)"},
           {"train-embeddings", "",
            "trainable copies of the embedding and output layer beside the frozen ones "
            "(PEFT's modules_to_save)"},
           {"llama-adapter", choices_of(tp::prompt_adapter_names),
            "LLaMA-Adapter on a frozen base as Lit-GPT builds it: prompts and gates (v1), also a bias and scale per "
            "linear output and trainable norms (v2)"},
           {"adapter-prompt-length", "N", "LLaMA-Adapter prompt length (default 10)"},
           {"adapter-start-layer", "N", "first layer with a LLaMA-Adapter prompt (default 2)"},
           {"base-weights", "nf4|nf4-dq|int8|int4|int8-gptq",
            "frozen base's linear weights quantized (QLoRA's NF4, LLM.int8, GPTQ); default: the weights' dtype"},
           {"quantized-keeps-inputs", "",
            "with --base-weights, each quantized projection keeps its input as bitsandbytes 0.41's 4-bit matmul does "
            "(for a weight gradient it never computes)"},
           {"fp32-adapters", "",
            "adapters (and their gradients and optimizer states) in fp32 over a 16-bit base, as PEFT before 0.6.0 "
            "leaves them"},
           {"built-fp32", "", "weights created in fp32 on the device, then cast: the allocator keeps the fp32 blocks"},
           {"variable-length", "",
            "batches padded to their own longest sample (--seq): nvidia-smi's reading may climb to the capacity"},
           {"overhead-gib", "X",
            "runtime overhead per device, in nvidia-smi's reading only, not in what the run needs to fit (default: "
            "the fitted constant)"},
           {"device", "NAME", "device whose capacity to fit against"},
           devices_file_flag(),
           {"capacity-gib", "X", "fit against a device of X GiB instead of a named one"},
           {"svg", "FILE", "write the per-stage breakdown as a stacked bar chart"},
       })
    f.push_back(x);
  for (auto& x : uneven_stage_flags()) f.push_back(x);
  return with_common(f);
}

struct memory_setup {
  tp::cli::model_choice model;
  tp::parallel_config parallel;
  std::int64_t world = 1;
  tp::memory_options options;
};

// What the layers keep for the backward: recomputation's policy and grouping, the kernels,
// the attention implementation, MoE capacity.
inline void activations_from_args(const args& a, const tp::parallel_config& c, tp::memory_options& o) {
  if (const auto p = a.get_named("selective", tp::selective_policy_names)) {
    if (c.recomputation != tp::recompute::selective)
      throw tp::config_error("selective", fmt::format("--selective {} without --recompute selective: give both, or "
                                                      "drop --selective",
                                                      tp::detail::name_of(tp::selective_policy_names, *p)));
    o.selective = *p;
  }
  o.kernels = a.get_named("kernels", tp::layer_kernels_names).value_or(tp::layer_kernels::fused);
  o.recompute_method = a.get_named("recompute-method", tp::recompute_grouping_names).value_or(o.recompute_method);
  o.recompute_num_layers = a.get_int("recompute-num-layers").value_or(1);
  if ((a.has("recompute-method") || a.has("recompute-num-layers")) && c.recomputation != tp::recompute::full)
    throw tp::config_error(a.has("recompute-method") ? "recompute-method" : "recompute-num-layers",
                           "--recompute-method and --recompute-num-layers choose which layers full recomputation "
                           "recomputes; add --recompute full");
  o.distribute_saved_activations = a.has("distribute-saved-activations");
  if (o.distribute_saved_activations && c.recomputation != tp::recompute::full)
    throw tp::config_error("distribute-saved-activations",
                           "--distribute-saved-activations splits the inputs full recomputation keeps; add "
                           "--recompute full");
  if (a.has("moe-capacity-factor")) o.moe_capacity_factor = *a.get_double("moe-capacity-factor");
  // --attention: flash, cudnn and SDPA's fused kernels keep no scores (memory_options::
  // flash_attention says why SDPA's memory-efficient kernel counts as fused); eager is transformers'
  // unfused attention with its fp32 softmax; unfused is Megatron-LM's (a 16-bit fused softmax).
  static constexpr std::string_view attentions[] = {"flash", "cudnn", "sdpa", "eager", "unfused"};
  const auto attention = a.get_choice("attention", attentions);
  if (attention && a.has("flash") && (attention == "eager" || attention == "unfused"))
    throw tp::config_error("attention",
                           fmt::format("--attention {} with --flash: give one attention implementation", *attention));
  o.flash_attention = a.has("flash") || attention == "flash" || attention == "cudnn" || attention == "sdpa";
  o.cudnn_attention = attention == "cudnn";
  o.fp32_softmax = attention == "eager";
}

// DeepSpeed ZeRO's buffer settings (framework deepspeed only).
inline void deepspeed_from_args(const args& a, std::int64_t hidden, tp::memory_options& o) {
  static constexpr const char* sizes[] = {"reduce-bucket-size",          "allgather-bucket-size",
                                          "stage3-prefetch-bucket-size", "stage3-max-live-parameters",
                                          "stage3-max-reuse-distance",   "stage3-param-persistence-threshold"};
  for (const char* flag : {"ds-auto", "overlap-comm", "no-contiguous-gradients", sizes[0], sizes[1], sizes[2], sizes[3],
                           sizes[4], sizes[5]})
    if (a.has(flag) && o.accounting != tp::framework::deepspeed)
      throw tp::config_error(flag, fmt::format("--{} is a DeepSpeed setting; add --framework deepspeed", flag));
  tp::deepspeed_zero_config& z = o.deepspeed;
  if (a.has("ds-auto")) z = tp::deepspeed_zero_config::hf_auto(hidden);
  double* fields[] = {&z.reduce_bucket_size,          &z.allgather_bucket_size,
                      &z.stage3_prefetch_bucket_size, &z.stage3_max_live_parameters,
                      &z.stage3_max_reuse_distance,   &z.stage3_param_persistence_threshold};
  static_assert(std::size(fields) == std::size(sizes));
  for (std::size_t i = 0; i < std::size(sizes); ++i)
    if (a.has(sizes[i])) *fields[i] = *a.get_double(sizes[i], /*zero_allowed=*/true);
  static constexpr std::string_view toggles[] = {"on", "off"};
  if (const auto t = a.get_choice("overlap-comm", toggles))
    z.overlap_comm = *t == "on" ? tp::deepspeed_zero_config::toggle::on : tp::deepspeed_zero_config::toggle::off;
  z.contiguous_gradients = !a.has("no-contiguous-gradients");
}

// Adapters (LoRA, LLaMA-Adapter) and a quantized frozen base.
inline void adapters_from_args(const args& a, tp::adapter_options& ad) {
  if (const auto r = a.get_int("lora-rank")) {
    ad.lora_rank = *r;
    const auto list = a.get("lora-targets");
    if (!list)
      throw tp::config_error("lora-targets", fmt::format("--lora-rank {} needs --lora-targets: name the projections "
                                                         "with adapters (q,v or all-linear)",
                                                         *r));
    std::string bad;
    const auto bits = tp::parse_lora_targets(*list, &bad);
    if (!bits)
      throw tp::config_error("lora-targets", fmt::format("--lora-targets: unknown projection '{}'; give a comma list "
                                                         "of q,k,v,qkv,o,gate,up,down,attention,mlp,all-linear",
                                                         bad));
    ad.lora_targets = *bits;
  } else {
    for (const char* flag : {"lora-targets", "lora-dropout", "train-embeddings"})
      if (a.has(flag))
        throw tp::config_error(flag, fmt::format("--{} without --lora-rank: give the adapters' rank", flag));
  }
  ad.lora_dropout = a.has("lora-dropout");
  ad.train_embeddings = a.has("train-embeddings");
  ad.llama_adapter = a.get_named("llama-adapter", tp::prompt_adapter_names).value_or(tp::prompt_adapter::none);
  for (const char* flag : {"adapter-prompt-length", "adapter-start-layer"})
    if (a.has(flag) && !ad.prompt())
      throw tp::config_error(flag, fmt::format("--{} without --llama-adapter: give the adapter's version", flag));
  ad.adapter_prompt_length = a.get_int("adapter-prompt-length").value_or(ad.adapter_prompt_length);
  if (const auto start = a.get_double("adapter-start-layer", /*zero_allowed=*/true)) {
    if (*start != std::floor(*start) || *start > 1e9)
      throw tp::config_error("adapter-start-layer",
                             fmt::format("--adapter-start-layer expects a layer index, got {}", *start));
    ad.adapter_start_layer = static_cast<std::int64_t>(*start);
  }
  static constexpr std::string_view formats[] = {"nf4", "nf4-dq", "int8", "int4", "int8-gptq"};
  if (const auto q = a.get_choice("base-weights", formats)) ad.frozen_weight_bits = *tp::quantized_weight_bits(*q);
  ad.quantized_inputs_kept = a.has("quantized-keeps-inputs");
  ad.fp32_adapters = a.has("fp32-adapters");
}

// one_layout false (plan): the layout flags fix dimensions of a search, so what depends on the
// degrees the search picks (sequence parallelism on tp, the distributed optimizer and sharding on
// dp) is not checked against the defaults here: each candidate layout is checked instead.
inline memory_setup memory_from_args(const args& a, bool one_layout = true) {
  memory_setup m{tp::cli::model_from_args(a, /*seq_sets_max_seq=*/false), {}, 1, {}};
  tp::parallel_config& c = m.parallel;
  c = parallel_from_args(a);
  c.dp = a.get_int("dp").value_or(1);  // no world to derive it from: one replica unless given
  c.shard_dp = a.get_int("shard-dp").value_or(0);
  tp::parallel_config checked = c;
  if (!one_layout) checked.sequence_parallel = checked.distributed_optimizer = false, checked.shard_dp = 0;
  tp::validate(checked);  // each degree positive and at most 2^20 before they are multiplied
  m.world = tp::detail::checked_mul(c.model_parallel(), c.dp, "world (tp x cp x pp x dp)");
  tp::memory_options& o = m.options;
  o.lbs = a.get_int("lbs").value_or(1);
  o.micro_batches = a.get_int("gas").value_or(1);
  o.seq = a.get_int("seq").value_or(m.model.spec.max_seq);
  static constexpr std::string_view dtypes[] = {"fp32", "bf16", "fp16"};
  o.param_dtype = *tp::parse_dtype(a.get_choice("dtype", dtypes).value_or("bf16"));
  o.fp8 = a.get_named("fp8", tp::fp8_training_names).value_or(tp::fp8_training::none);
  // AdamW differs from Adam only in the update (decoupled weight decay): the same m and v.
  o.optimizer = a.get_named("optimizer", tp::optimizer_kind_names).value_or(tp::optimizer_kind::adam);
  o.accounting = a.get_named("framework", tp::framework_names).value_or(tp::framework::generic);
  const std::string_view fw = tp::detail::name_of(tp::framework_names, o.accounting);
  if (const auto g = a.get_choice("grad-dtype", dtypes)) {
    const tp::dtype grads = *tp::parse_dtype(*g);
    if (grads != tp::dtype::fp32 && grads != o.param_dtype)
      throw tp::config_error("grad-dtype",
                             fmt::format("--grad-dtype {} with --dtype {}: gradients are kept in fp32 or in "
                                         "the weights' dtype; give --grad-dtype fp32 or {}",
                                         *g, tp::to_string(o.param_dtype), tp::to_string(o.param_dtype)));
    o.fp32_grads = grads == tp::dtype::fp32;
  }
  o.master_weights = !a.has("no-master-weights");
  if (!o.master_weights && o.accounting != tp::framework::generic && o.accounting != tp::framework::fsdp)
    throw tp::config_error("no-master-weights", fmt::format("--no-master-weights with --framework {}: its optimizer "
                                                            "keeps fp32 master weights of 16-bit models; give "
                                                            "--framework generic or fsdp for pure 16-bit training",
                                                            fw));
  activations_from_args(a, c, o);
  deepspeed_from_args(a, m.model.spec.hidden, o);
  train_parts_from_args(a, m.model);
  adapters_from_args(a, o.adapters);
  o.dropout = a.has("dropout");
  o.offload_optimizer = a.has("offload-optimizer");
  o.optimizer_in_backward = a.has("optimizer-in-backward");
  o.persistent_grads = a.has("persistent-grads");
  o.loss = a.get_named("loss", tp::logits_loss_names).value_or(tp::logits_loss::standard);
  o.offload_activations = a.has("offload-activations");
  o.unsharded_grad_accumulation = a.has("fsdp-no-sync");
  o.fsdp_embedding_resharded = a.has("fsdp-embedding-resharded");
  if (const auto v = a.get_named("adam-step", tp::adam_step_names)) o.adam_implementation = *v;
  o.weights_built_in_fp32 = a.has("built-fp32");
  o.variable_length = a.has("variable-length");
  if (auto g = a.get("overhead-gib"))
    o.runtime_overhead_bytes = *a.get_double("overhead-gib", /*zero_allowed=*/true) * tp::GiB;
  return m;
}

}  // namespace trainperf::cli
