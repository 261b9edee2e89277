// trainperf memory: device memory per pipeline stage: weights, gradients, optimizer, activations; fit on a device
#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <trainperf/trainperf.hpp>

#include <trainperf/io/file.hpp>

#include "cli.hpp"
#include "device_flags.hpp"
#include "model_flags.hpp"

namespace trainperf::cli {
namespace {
namespace tp = trainperf;

std::vector<flag> memory_flags() {
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
           {"sp", "", "sequence parallel"},
           {"zero", "0..3", "ZeRO stage"},
           {"distributed-optimizer", "", "Megatron-LM's distributed optimizer"},
           {"shard-dp", "N",
            "hybrid sharding: ZeRO/FSDP shards over groups of N data-parallel ranks, replicated across groups "
            "(FSDP HYBRID_SHARD / HSDP, torchtitan's dp_shard)"},
           {"recompute", "none|selective|full", "activation recomputation"},
           {"recompute-method", "uniform|block",
            "with --recompute full, Megatron-LM's: groups of --recompute-num-layers (uniform, the default) or the "
            "first --recompute-num-layers layers of each stage (block)"},
           {"recompute-num-layers", "N", "layers per recomputed group (uniform) or recomputed per stage (block)"},
           {"distribute-saved-activations", "", "with --recompute full, the kept layer inputs split over tp ranks"},
           {"moe-capacity-factor", "C", "MoE experts padded to C x their share of tokens (default: dropless)"},
           {"kernels", "fused|eager",
            "norms and activation: fused kernels (default; TE, Apex, torch.compile) or eager PyTorch modules as "
            "Hugging Face transformers writes them (fp32 norm copies, the SiLU output kept)"},
           {"selective", "attention-core|every-other-matmul",
            "what --recompute selective keeps: Megatron-LM's (all but the attention core, the default) or "
            "torchtitan's op-level SAC (every other matmul's output)"},
           {"flash", "", "flash attention (no s x s scores kept); the same as --attention flash"},
           {"attention", "flash|cudnn|sdpa|eager|unfused",
            "attention implementation: flash, cudnn (Transformer Engine's FusedAttention, in Megatron's [s, b, h] "
            "layout) and SDPA's fused kernels keep no scores; eager (transformers) keeps an fp32 softmax and its "
            "16-bit copy, unfused (Megatron-LM) a 16-bit softmax (default: unfused unless --flash)"},
           {"dropout", "", "dropout masks are kept"},
           {"dtype", "fp32|bf16|fp16", "weight and activation dtype (default bf16)"},
           {"fp8", "te|torchao|torchao-fp8-all-gather",
            "fp8 linear layers: Transformer Engine's delayed scaling (fp8 GEMM inputs kept, fp8 weight caches), "
            "torchao's float8/MX linears (16-bit inputs kept), with FSDP2 gathering weights in fp8"},
           {"grad-dtype", "fp32|bf16|fp16", "gradient buffers: fp32 or the weights' dtype (default: the weights')"},
           {"no-master-weights", "",
            "pure 16-bit training: no fp32 master copy, optimizer states in the weights' dtype"},
           {"optimizer", "adam|adamw|sgd|adamw8bit",
            "optimizer (default adam; adamw keeps the same states; adamw8bit: bitsandbytes' block-wise 8-bit states)"},
           {"framework", "generic|megatron|megatron-core|deepspeed|fsdp|paddle",
            "framework accounting (default generic): megatron is Megatron-LM's legacy models, megatron-core its "
            "mcore models with Transformer Engine"},
           {"offload-optimizer", "", "optimizer states in CPU memory"},
           {"optimizer-in-backward", "",
            "each weight stepped as its gradient arrives, no gradient buffers (torchtune's optimizer_in_bwd)"},
           {"loss", "standard|chunked|chunked-compiled",
            "how the loss holds the logits: an fp32 copy and fp32 log-softmax (standard), torchtune's chunked "
            "cross-entropy (fp32 log-softmax per chunk kept), or compiled (16-bit chunks only)"},
           {"offload-activations", "",
            "with --recompute full, the layer inputs moved to host memory but the last 5 (torchtune)"},
           {"ds-auto", "", "DeepSpeed's buffer sizes as Hugging Face's \"auto\" sets them (hidden^2 buckets)"},
           {"reduce-bucket-size", "N", "DeepSpeed's reduce_bucket_size in elements (default 5e8)"},
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
           {"llama-adapter", "v1|v2",
            "LLaMA-Adapter on a frozen base as Lit-GPT builds it: prompts and gates (v1), also a bias and scale per "
            "linear output and trainable norms (v2)"},
           {"adapter-prompt-length", "N", "LLaMA-Adapter prompt length (default 10)"},
           {"adapter-start-layer", "N", "first layer with a LLaMA-Adapter prompt (default 2)"},
           {"base-weights", "nf4|nf4-dq|int8|int4|int8-gptq",
            "frozen base's linear weights quantized (QLoRA's NF4, LLM.int8, GPTQ); default: the weights' dtype"},
           {"built-fp32", "", "weights created in fp32 on the device, then cast: the allocator keeps the fp32 blocks"},
           {"variable-length", "",
            "batches padded to their own longest sample (--seq): nvidia-smi's reading may climb to the capacity"},
           {"overhead-gib", "X", "runtime overhead per device (default: the fitted constant)"},
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
void activations_from_args(const args& a, const tp::parallel_config& c, tp::memory_options& o) {
  static constexpr std::string_view policies[] = {"attention-core", "every-other-matmul"};
  if (const auto p = a.get_choice("selective", policies)) {
    if (c.recomputation != tp::recompute::selective)
      throw tp::config_error("selective", fmt::format("--selective {} without --recompute selective: give both, or "
                                                      "drop --selective",
                                                      *p));
    o.selective =
        *p == "every-other-matmul" ? tp::selective_policy::every_other_matmul : tp::selective_policy::attention_core;
  }
  static constexpr std::string_view kernel_kinds[] = {"fused", "eager"};
  if (a.get_choice("kernels", kernel_kinds).value_or("fused") == "eager") o.kernels = tp::layer_kernels::eager;
  static constexpr std::string_view methods[] = {"uniform", "block"};
  if (const auto how = a.get_choice("recompute-method", methods))
    o.recompute_method = *how == "block" ? tp::recompute_grouping::block : tp::recompute_grouping::uniform;
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
  // --attention: flash and SDPA's fused kernels keep no scores; eager is transformers' unfused
  // attention with its fp32 softmax; unfused is Megatron-LM's (a 16-bit fused softmax).
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
void deepspeed_from_args(const args& a, std::int64_t hidden, tp::memory_options& o) {
  static constexpr const char* sizes[] = {"reduce-bucket-size", "stage3-prefetch-bucket-size",
                                          "stage3-max-live-parameters", "stage3-max-reuse-distance",
                                          "stage3-param-persistence-threshold"};
  for (const char* flag :
       {"ds-auto", "overlap-comm", "no-contiguous-gradients", sizes[0], sizes[1], sizes[2], sizes[3], sizes[4]})
    if (a.has(flag) && o.accounting != tp::framework::deepspeed)
      throw tp::config_error(flag, fmt::format("--{} sets a DeepSpeed buffer; add --framework deepspeed", flag));
  tp::deepspeed_zero_config& z = o.deepspeed;
  if (a.has("ds-auto")) z = tp::deepspeed_zero_config::hf_auto(hidden);
  double* fields[] = {&z.reduce_bucket_size, &z.stage3_prefetch_bucket_size, &z.stage3_max_live_parameters,
                      &z.stage3_max_reuse_distance, &z.stage3_param_persistence_threshold};
  for (std::size_t i = 0; i < std::size(sizes); ++i)
    if (a.has(sizes[i])) *fields[i] = *a.get_double(sizes[i], /*zero_allowed=*/true);
  static constexpr std::string_view toggles[] = {"on", "off"};
  if (const auto t = a.get_choice("overlap-comm", toggles))
    z.overlap_comm = *t == "on" ? tp::deepspeed_zero_config::toggle::on : tp::deepspeed_zero_config::toggle::off;
  z.contiguous_gradients = !a.has("no-contiguous-gradients");
}

// Adapters (LoRA, LLaMA-Adapter) and a quantized frozen base.
void adapters_from_args(const args& a, tp::adapter_options& ad) {
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
  static constexpr std::string_view versions[] = {"v1", "v2"};
  if (const auto v = a.get_choice("llama-adapter", versions))
    ad.llama_adapter = *v == "v2" ? tp::prompt_adapter::v2 : tp::prompt_adapter::v1;
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
}

memory_setup memory_from_args(const args& a) {
  memory_setup m{tp::cli::model_from_args(a, /*seq_sets_max_seq=*/false), {}, 1, {}};
  tp::parallel_config& c = m.parallel;
  c = parallel_from_args(a);
  c.dp = a.get_int("dp").value_or(1);  // no world to derive it from: one replica unless given
  c.shard_dp = a.get_int("shard-dp").value_or(0);
  tp::validate(c);  // each degree positive and at most 2^20 before they are multiplied
  m.world = tp::detail::checked_mul(c.model_parallel(), c.dp, "world (tp x cp x pp x dp)");
  tp::memory_options& o = m.options;
  o.lbs = a.get_int("lbs").value_or(1);
  o.micro_batches = a.get_int("gas").value_or(1);
  o.seq = a.get_int("seq").value_or(m.model.spec.max_seq);
  static constexpr std::string_view dtypes[] = {"fp32", "bf16", "fp16"};
  o.param_dtype = *tp::parse_dtype(a.get_choice("dtype", dtypes).value_or("bf16"));
  static constexpr std::string_view fp8_kinds[] = {"te", "torchao", "torchao-fp8-all-gather"};
  if (const auto k = a.get_choice("fp8", fp8_kinds))
    o.fp8 = *k == "te"        ? tp::fp8_training::transformer_engine
            : *k == "torchao" ? tp::fp8_training::torchao
                              : tp::fp8_training::torchao_fp8_all_gather;
  // AdamW differs from Adam only in the update (decoupled weight decay): the same m and v.
  static constexpr std::string_view optimizers[] = {"adam", "adamw", "sgd", "adamw8bit"};
  const std::string opt = a.get_choice("optimizer", optimizers).value_or("adam");
  o.optimizer = opt == "sgd"         ? tp::optimizer_kind::sgd
                : opt == "adamw8bit" ? tp::optimizer_kind::adam_8bit
                                     : tp::optimizer_kind::adam;
  static constexpr std::string_view frameworks[] = {"generic",   "megatron", "megatron-core",
                                                    "deepspeed", "fsdp",     "paddle"};
  const std::string fw = a.get_choice("framework", frameworks).value_or("generic");
  o.accounting = fw == "megatron"        ? tp::framework::megatron
                 : fw == "megatron-core" ? tp::framework::megatron_core
                 : fw == "deepspeed"     ? tp::framework::deepspeed
                 : fw == "fsdp"          ? tp::framework::fsdp
                 : fw == "paddle"        ? tp::framework::paddle
                                         : tp::framework::generic;
  if (const auto g = a.get_choice("grad-dtype", dtypes)) {
    const tp::dtype grads = *tp::parse_dtype(*g);
    if (grads != tp::dtype::fp32 && grads != o.param_dtype)
      throw tp::config_error("grad-dtype",
                             fmt::format("--grad-dtype {} with --dtype {}: gradients are kept in fp32 or in "
                                         "the weights' dtype; give --grad-dtype fp32 or {}",
                                         *g, tp::to_string(o.param_dtype), tp::to_string(o.param_dtype)));
    if (grads != tp::dtype::fp32 &&
        (o.accounting == tp::framework::megatron ||
         (o.accounting == tp::framework::megatron_core && o.param_dtype == tp::dtype::bf16)))
      throw tp::config_error("grad-dtype", fmt::format("--grad-dtype {} with --framework {}: Megatron-LM keeps fp32 "
                                                       "main gradients with {} weights; give --grad-dtype fp32 or "
                                                       "--framework generic",
                                                       *g, fw, tp::to_string(o.param_dtype)));
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
  static constexpr std::string_view losses[] = {"standard", "chunked", "chunked-compiled"};
  const std::string loss = a.get_choice("loss", losses).value_or("standard");
  o.loss = loss == "chunked"            ? tp::logits_loss::chunked
           : loss == "chunked-compiled" ? tp::logits_loss::chunked_compiled
                                        : tp::logits_loss::standard;
  o.offload_activations = a.has("offload-activations");
  o.weights_built_in_fp32 = a.has("built-fp32");
  o.variable_length = a.has("variable-length");
  if (auto g = a.get("overhead-gib"))
    o.runtime_overhead_bytes = *a.get_double("overhead-gib", /*zero_allowed=*/true) * tp::GiB;
  return m;
}

// Changes that would make an over-capacity layout fit, each with its new peak and the devices
// it uses: single changes first (sharding the states, recomputation, more tensor or pipeline
// parallelism, a smaller micro batch, flash attention, offloading the optimizer); when none fits
// alone, pairs of changes of different kinds. Only what the named framework offers: Megatron-LM
// shards optimizer states with its distributed optimizer, not ZeRO stages; DeepSpeed's ZeRO
// over Hugging Face models (the deepspeed accounting) has ZeRO 1-3 and offload but no tensor,
// sequence or pipeline parallelism; the generic accounting takes all. At most four answers:
// those needing no extra devices first, then the fewest devices, then the smallest peak.
std::vector<std::string> what_would_fit(const memory_setup& m, std::int64_t capacity) {
  struct change {
    std::string what;
    int kind;  // changes of the same kind are alternatives, never combined
    std::function<void(tp::parallel_config&, tp::memory_options&)> apply;
  };
  const tp::parallel_config& c = m.parallel;
  const tp::memory_options& o = m.options;
  const bool megatron = o.accounting == tp::framework::megatron || o.accounting == tp::framework::megatron_core,
             deepspeed = o.accounting == tp::framework::deepspeed;
  std::vector<change> changes;
  for (int z = c.zero_stage + 1; z <= 3 && c.dp > 1 && !megatron; ++z)
    changes.push_back({fmt::format("--zero {}", z), 0, [z](auto& x, auto&) {
                         x.zero_stage = z;
                         x.distributed_optimizer = false;
                       }});
  if (c.dp > 1 && c.zero_stage == 0 && !c.distributed_optimizer && !deepspeed)
    changes.push_back({"--distributed-optimizer", 0, [](auto& x, auto&) { x.distributed_optimizer = true; }});
  if (c.recomputation == tp::recompute::none)
    changes.push_back({"--recompute selective", 1, [](auto& x, auto&) { x.recomputation = tp::recompute::selective; }});
  if (c.recomputation != tp::recompute::full)
    changes.push_back({"--recompute full", 1, [](auto& x, auto&) { x.recomputation = tp::recompute::full; }});
  for (std::int64_t f = 2; f <= 8 && !deepspeed; f *= 2) {
    changes.push_back({fmt::format("--tp {} --sp", c.tp * f), 2, [f](auto& x, auto&) {
                         x.tp *= f;
                         x.sequence_parallel = true;
                       }});
    changes.push_back({fmt::format("--pp {}", c.pp * f), 3, [f](auto& x, auto&) { x.pp *= f; }});
  }
  if (o.lbs > 1)
    changes.push_back({fmt::format("--lbs {} --gas {}", o.lbs / 2, o.micro_batches * 2), 4, [](auto&, auto& y) {
                         y.lbs /= 2;
                         y.micro_batches *= 2;
                       }});
  if (!o.flash_attention) changes.push_back({"--flash", 5, [](auto&, auto& y) { y.flash_attention = true; }});
  if (!o.offload_optimizer && !megatron)
    changes.push_back({"--offload-optimizer", 6, [](auto&, auto& y) { y.offload_optimizer = true; }});

  // Tries the given changes; keeps them when the result is a valid layout that fits.
  std::vector<std::tuple<std::int64_t, double, std::string>> fits;  // world, peak, flags
  const auto tryit = [&](std::initializer_list<const change*> chosen) {
    tp::parallel_config x = c;
    tp::memory_options y = o;
    std::string what;
    for (const change* ch : chosen) {
      ch->apply(x, y);
      if (!what.empty()) what += ' ';
      what += ch->what;
    }
    try {  // more tp or pp can pass a degree's bound (2^20): then not a valid layout, not an answer
      tp::validate(x);
      const std::int64_t world = tp::detail::checked_mul(x.model_parallel(), x.dp ? x.dp : 1, "world");
      const double peak = tp::estimate_memory(m.model.spec, x, world, y).max_total();
      if (peak <= static_cast<double>(capacity)) fits.emplace_back(world, peak, what);
    } catch (const tp::config_error&) {  // not a valid layout for this model: not an answer
    }
  };
  for (const change& a : changes) tryit({&a});
  if (fits.empty())
    for (std::size_t i = 0; i < changes.size(); ++i)
      for (std::size_t k = i + 1; k < changes.size(); ++k)
        if (changes[i].kind != changes[k].kind) tryit({&changes[i], &changes[k]});
  std::sort(fits.begin(), fits.end());
  std::vector<std::string> out;
  for (const auto& [world, peak, what] : fits) {
    if (out.size() == 4) break;
    out.push_back(fmt::format("{} -> {:.1f} GiB on {} device{}", what, peak / static_cast<double>(tp::GiB), world,
                              world == 1 ? "" : "s"));
  }
  return out;
}

int run_memory(const args& a, output& out) {
  const memory_setup m = memory_from_args(a);
  const tp::memory_estimate e = tp::estimate_memory(m.model.spec, m.parallel, m.world, m.options);
  std::optional<tp::device_spec> dev;
  const tp::io::device_table file = devices_file_from_args(a);
  if (a.get("device")) dev = device_from_args(a, file);
  std::string custom_name;  // the custom device's name lives here
  if (a.get("capacity-gib")) {
    if (dev)
      throw tp::config_error("capacity-gib",
                             "--capacity-gib with --device: give one capacity, the named device's or "
                             "your own");
    const double capacity = *a.get_double("capacity-gib");
    if (capacity > 4294967296.0)
      throw tp::config_error("capacity-gib", fmt::format("--capacity-gib {} is past 2^32 GiB; give the capacity of one "
                                                         "device in GiB",
                                                         tp::format_double(capacity)));
    custom_name = fmt::format("{} GiB device", tp::format_double(capacity));
    tp::device_spec d;
    d.name = custom_name;
    d.memory_bytes = static_cast<std::int64_t>(capacity * static_cast<double>(tp::GiB));
    dev = d;
  }
  const double gib = static_cast<double>(tp::GiB);
  std::vector<std::string> fixes;
  if (dev && e.max_total() > static_cast<double>(dev->memory_bytes)) fixes = what_would_fit(m, dev->memory_bytes);
  if (auto path = a.get("svg")) {  // last: a refused request leaves no file behind
    tp::io::write_file(*path,
                       tp::render_memory_svg(e, dev ? dev->memory_bytes : 0,
                                             fmt::format("{}: memory per device by pipeline stage", m.model.name)),
                       "svg");
  }
  if (a.has("json")) {
    json stages = json::array();
    for (const auto& s : e.stages)
      stages.push_back({{"stage", s.stage},
                        {"layers", s.layers},
                        {"inflight", s.inflight},
                        {"params", static_cast<std::int64_t>(s.params)},
                        {"grads", static_cast<std::int64_t>(s.grads)},
                        {"optimizer", static_cast<std::int64_t>(s.optimizer)},
                        {"activations", static_cast<std::int64_t>(s.activations)},
                        {"other", static_cast<std::int64_t>(s.other)},
                        {"reserve", static_cast<std::int64_t>(s.reserve)},
                        {"reads_allocated", static_cast<std::int64_t>(s.reading(tp::memory_counter::allocated))},
                        {"reads_reserved", static_cast<std::int64_t>(s.reading(tp::memory_counter::reserved))},
                        {"total", static_cast<std::int64_t>(s.total())}});
    json j{{"model", m.model.name},
           {"world", m.world},
           {"stages", stages},
           {"max_total", static_cast<std::int64_t>(e.max_total())}};
    if (dev) {
      j["device"] = dev->name;
      j["capacity"] = dev->memory_bytes;
      j["fits"] = e.max_total() <= static_cast<double>(dev->memory_bytes);
      j["reading"] = static_cast<std::int64_t>(
          tp::memory_reading(e.max_total(), m.options, static_cast<double>(dev->memory_bytes)));
      j["what_would_fit"] = fixes;
    }
    out.print_json(j);
    return 0;
  }
  out.print("{} on {} device{} (tp {} x cp {} x pp {} x dp {}), per device, GiB\n", m.model.name, m.world,
            m.world == 1 ? "" : "s", m.parallel.tp, m.parallel.cp, m.parallel.pp, m.parallel.dp);
  table t({"stage", "layers", "inflight", "weights", "grads", "optimizer", "activations", "other", "reserve", "total"});
  const auto g2 = [gib](double bytes) { return fmt::format("{:.2f}", bytes / gib); };
  for (const auto& s : e.stages)
    t.row({fmt::format("{}", s.stage), fmt::format("{}", s.layers), fmt::format("{:.2f}", s.inflight), g2(s.params),
           g2(s.grads), g2(s.optimizer), g2(s.activations), g2(s.other), g2(s.reserve), g2(s.total())});
  out.print("{}", t.render());
  out.print(
      "other = logits/loss buffers (beyond a recomputed layer, never alive with them), gathered ZeRO-3 weights, "
      "comm buffers, fp8 weight caches and the runtime overhead ({:.1f} GiB)\n",
      (m.options.runtime_overhead_bytes >= 0 ? m.options.runtime_overhead_bytes
                                             : tp::memory_model_constants::runtime_overhead_bytes) /
          gib);
  {
    const auto most = std::max_element(e.stages.begin(), e.stages.end(),
                                       [](const auto& x, const auto& y) { return x.total() < y.total(); });
    out.print("what the counters read (stage {}): torch max allocated {:.2f}, max reserved {:.2f}, nvidia-smi {:.2f}\n",
              most->stage, most->reading(tp::memory_counter::allocated) / gib,
              most->reading(tp::memory_counter::reserved) / gib, most->total() / gib);
  }
  if (m.options.weights_built_in_fp32)
    out.print(
        "reserve = what weights, gradients and activations leave unfilled of the fp32 construction's "
        "blocks (4 bytes per weight), which the allocator keeps\n");
  if (dev) {
    out.print("{}: {}\n", dev->name, tp::fit_summary(e.max_total(), dev->memory_bytes));
    const double reading = tp::memory_reading(e.max_total(), m.options, static_cast<double>(dev->memory_bytes));
    if (reading != e.max_total())
      out.print(
          "nvidia-smi will read up to {:.1f} GiB: with batches of varying length the caching allocator's "
          "segments fragment until an allocation fails\n",
          reading / gib);
    if (!fixes.empty())
      out.print("what would fit: {}\n", fmt::join(fixes, "; "));
    else if (e.max_total() > static_cast<double>(dev->memory_bytes))
      out.print("no single change or pair of changes tried here fits\n");
  }
  return 0;
}

}  // namespace

command memory_command() {
  return {"memory", "device memory per pipeline stage: weights, gradients, optimizer, activations; fit on a device",
          memory_flags, run_memory};
}

}  // namespace trainperf::cli
