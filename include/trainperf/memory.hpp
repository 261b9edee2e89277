// trainperf — device-memory model: what every rank of every pipeline stage holds during
// training (model states, activations, buffers, runtime overhead), and whether it fits.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "adapters.hpp"
#include "error.hpp"
#include "hardware.hpp"
#include "memory/deepspeed.hpp"
#include "model.hpp"
#include "parallel.hpp"
#include "partition.hpp"
#include "schedule.hpp"
#include "units.hpp"

namespace trainperf {

// adam_8bit: bitsandbytes' block-wise 8-bit Adam (Dettmers et al. 2021, arXiv:2110.02861,
// section 2: m and v quantized to 8 bits in blocks of 2048 with an fp32 absmax per block):
// 2 x (1 + 4/2048) bytes per parameter, plus the fp32 master copy of mixed precision.
enum class optimizer_kind { adam, sgd, adam_8bit };
// The names users give them (here and below: the CLI's flags, the Python module's keywords); AdamW
// keeps Adam's states.
inline constexpr named<optimizer_kind> optimizer_kind_names[] = {{"adam", optimizer_kind::adam},
                                                                 {"adamw", optimizer_kind::adam},
                                                                 {"sgd", optimizer_kind::sgd},
                                                                 {"adamw8bit", optimizer_kind::adam_8bit},
                                                                 {"adam-8bit", optimizer_kind::adam_8bit}};
// How an Adam step runs. fused: one kernel updates each parameter in place (apex's and Transformer
// Engine's FusedAdam in Megatron-LM, DeepSpeed's FusedAdam, PyTorch's fused=True). foreach:
// PyTorch's default on CUDA (torch/optim/adamw.py, _multi_tensor_adamw: exp_avg_sq_sqrt =
// torch._foreach_sqrt(device_exp_avg_sqs)) takes sqrt(v) of every parameter of a group at once, a
// temporary as large as v, alive during the step. framework_default: foreach for generic
// (PyTorch's optimizers at their defaults: Hugging Face's Trainer with adamw_torch, Lit-GPT),
// fused otherwise (torchtitan's optimizer.implementation defaults to "fused").
enum class adam_step { framework_default, fused, foreach };
inline constexpr named<adam_step> adam_step_names[] = {{"fused", adam_step::fused}, {"foreach", adam_step::foreach}};

// Framework-specific accounting the model follows (each case cites its source below).
//   generic:   16-bit weights and gradients, fp32 master + Adam states (Rajbhandari et al. 2020).
//   megatron:  Megatron-LM's legacy model (megatron/model/transformer.py; the code seed 000 ran,
//              FlagScale@26cd664): fp32 main gradients with bf16 (--accumulate-allreduce-grads-
//              in-fp32, forced by --bf16); fused vocabulary-parallel cross entropy (fp32 logits
//              once); per layer, K and V repeated to every query head before core attention
//              (GQA), with flash attention the attention output kept twice (flash-attn's
//              output and the [s, b, h] copy the output projection saves), and the unfused SwiGLU keeping the whole fc1
//              output, the SiLU output and the product (4f). Transformer Engine's attention and
//              fused SwiGLU keep less: use generic with fp32_grads for those.
//   deepspeed: an fp32 gradient partition beside the 16-bit gradients under ZeRO (DeepSpeed's
//              estimate_zero2/3_model_states_mem_needs count 18 bytes per sharded parameter);
//              Hugging Face's loss path up-casts the logits to fp32 and copies them for the shift
//              (transformers LlamaForCausalLM.forward).
//   fsdp:      PyTorch FSDP2 (fully_shard with MixedPrecisionPolicy, as torchtitan runs it): the
//              sharded fp32 parameters are the optimizer's weights, so with 16-bit compute no
//              16-bit shard is kept, only the gathered 16-bit layers (torch/distributed/_composable/
//              fsdp: FSDPParam keeps the sharded fp32 parameter and all-gathers in param_dtype):
//              4 (the fp32 shard: weights and master at once) + gradients + 8 (Adam) bytes per
//              sharded parameter, 16 with fp32 gradient reduction. With pure 16-bit parameters (no master)
//              it shards like ZeRO-3.
//   megatron_core: Megatron-LM's megatron-core models with Transformer Engine's layers (the TE
//              layer spec, gpt_layer_specs.py): fp32 main gradients with bf16 (arguments.py turns on
//              --accumulate-allreduce-grads-in-fp32 with --bf16 unless --grad-reduce-in-bf16, which is
//              fp32_grads false; with fp16 they stay 16-bit unless fp32_grads), in the DDP's contiguous grad buffer,
//              unsharded even under the distributed optimizer (which shards only the fp32 main weights and Adam states:
//              dist_optimizer.md, 6 + 12/d bytes per parameter); K and V at their own heads (no
//              repeat); TE's layers keep what the generic accounting counts (LayerNormLinear its norm
//              input and normalized output, the fused bias-SwiGLU its 2f input, fc2 its f input),
//              and the attention output twice under TE's FlashAttention backend, which transposes
//              Megatron's [s, b, h] layout to flash-attn's [b, s, h] and back with a contiguous copy
//              (transformer_engine/pytorch/attention/dot_product_attention/backends.py,
//              FlashAttention.forward: "(bs)hd -> bs(hd) -> sb(hd)", then output.contiguous()),
//              once under its cuDNN FusedAttention backend, which works in [s, b, h] and which TE
//              prefers on sm90 and later (utils.py get_attention_backend: "Disabling FlashAttention
//              to give FusedAttention preference on Hopper+"): memory_options::cudnn_attention.
//   paddle:    PaddleNLP's Trainer with AMP O2 (paddlenlp/trainer/training_args.py): gradients in
//              the weights' dtype (amp_master_grad off by default; fp32_grads turns it on), fp32
//              master weights in the optimizer (multi_precision), sharding stage 1/2/3 as ZeRO
//              stages over the sharding degree (zero_stage): the generic arithmetic. What is
//              Paddle's own is how the script builds the model: in fp32 and cast in place
//              (weights_built_in_fp32), which FlagPerf's run_pretraining.py does.
enum class framework { generic, megatron, megatron_core, deepspeed, fsdp, paddle };
inline constexpr named<framework> framework_names[] = {
    {"generic", framework::generic},     {"megatron", framework::megatron}, {"megatron-core", framework::megatron_core},
    {"deepspeed", framework::deepspeed}, {"fsdp", framework::fsdp},         {"paddle", framework::paddle}};

// The model as framework f stores it: Megatron-LM (legacy and megatron-core, and NeMo on it) pads
// the vocabulary to a multiple of make_vocab_size_divisible_by (default 128) x tp
// (megatron/training/tokenizer/tokenizer.py, _vocab_size_with_padding); a spec with its own
// padding rule keeps it, and the other frameworks store the vocabulary as it is.
constexpr transformer_spec as_stored_by(transformer_spec m, framework f) {
  if ((f == framework::megatron || f == framework::megatron_core) && m.padding == vocab_padding::none)
    m.padding = vocab_padding::megatron, m.pad_multiple = 128;
  return m;
}

// What selective recomputation keeps. attention_core: Megatron-LM's selective recomputation
// (Korthikanti et al. 2022, section 5): everything but the attention core (scores, softmax,
// dropout), recomputed per layer. every_other_matmul: torchtitan's op-level selective activation
// checkpointing (selective_ac_option "op", torchtitan/distributed/activation_checkpoint.py):
// per block, the outputs of matmuls, attention and reduce-scatters are saved except every second
// matmul; everything else (norms, activations, RoPE) is recomputed from the block's input.
// every_other_matmul_and_attention: the same when the attention kernel that runs is not on the
// save list, so the attention is recomputed too and its output and log-sum-exp are not kept:
// torchtitan's list named the flash and memory-efficient SDPA kernels only (models/llama3/infra/
// parallelize.py _save_list) until 2025-12-01 (#2095, "add all SDPA backends to
// op_sac_save_list"), while it runs cuDNN's kernel first on sm100 (models/attention.py
// _init_backend: "Add CuDNN on B200 w/ highest priority"): its B200 runs of that time.
enum class selective_policy { attention_core, every_other_matmul, every_other_matmul_and_attention };
inline constexpr named<selective_policy> selective_policy_names[] = {
    {"attention-core", selective_policy::attention_core},
    {"every-other-matmul", selective_policy::every_other_matmul},
    {"every-other-matmul-and-attention", selective_policy::every_other_matmul_and_attention}};
enum class recompute_grouping { uniform, block };
inline constexpr named<recompute_grouping> recompute_grouping_names[] = {{"uniform", recompute_grouping::uniform},
                                                                         {"block", recompute_grouping::block}};
// How a layer's norms and activation function run. fused: kernels that keep their 16-bit inputs
// only (Transformer Engine, Apex, torch.compile'd code: RMSNorm its input, SwiGLU its gate and
// up). eager: PyTorch modules as Hugging Face transformers writes them (modeling_llama.py):
// LlamaRMSNorm up-casts its input to fp32 and keeps that copy (and its 16-bit normalized output
// when the norm's weight trains); LlamaMLP's act_fn(gate_proj(x)) * up_proj(x) keeps the gate,
// the SiLU output and up.
enum class layer_kernels { fused, eager };
inline constexpr named<layer_kernels> layer_kernels_names[] = {{"fused", layer_kernels::fused},
                                                               {"eager", layer_kernels::eager}};

// fp8 training: which library casts the linear layers' GEMM inputs to fp8, and what that keeps.
//   transformer_engine: TE's delayed scaling (recipe.DelayedScaling; TE 1.9-2.x): a Linear keeps
//     its input as fp8 for the weight gradient (1 byte; linear.py, _Linear.forward saves
//     inputmat_t or, with sequence parallelism, the fp8 shard), LayerNormLinear keeps its norm's
//     16-bit input and the fp8 normalized output (layernorm_linear.py), the MLP its 16-bit fc1
//     output and the fp8 activation output (layernorm_mlp.py: fc1_out, gelu_out); the attention
//     core stays 16-bit, so the output projection's fp8 input comes beside the core's own 16-bit
//     output. Each linear weight keeps a cached fp8 copy and its transpose across micro-batches
//     (base.py get_fp8_workspace: data and data_transpose, 2 bytes per weight on Hopper), and
//     each GEMM an amax history of 1024 x 5 fp32 values (fp8.py, amax_history_len 1024: 3
//     forward and 2 backward fp8 tensors).
//   torchao: torchao's Float8Linear (tensorwise or rowwise) and MX linears keep their 16-bit
//     input and weight and recast in the backward (float8_linear.py,
//     matmul_with_hp_or_float8_args.forward: save_for_backward(input_hp, weight_hp_t)): the
//     activations are those of 16-bit training.
//   torchao_fp8_all_gather: the same with FSDP2 gathering the weights in fp8, tensorwise only
//     (fsdp_utils.py, WeightWithDynamicFloat8CastTensor.fsdp_pre_all_gather): 1 byte per
//     gathered weight.
enum class fp8_training { none, transformer_engine, torchao, torchao_fp8_all_gather };
// The names a user gives (none is the absence of the choice).
inline constexpr named<fp8_training> fp8_training_names[] = {
    {"te", fp8_training::transformer_engine},
    {"torchao", fp8_training::torchao},
    {"torchao-fp8-all-gather", fp8_training::torchao_fp8_all_gather}};

enum class logits_loss {
  standard,
  chunked,
  chunked_compiled,
  autocast,
  no_upcast,
  compiled,
  chunked_fp32_outputs,
  loss_parallel,
  fused
};  // memory_options::loss
inline constexpr named<logits_loss> logits_loss_names[] = {{"standard", logits_loss::standard},
                                                           {"chunked", logits_loss::chunked},
                                                           {"chunked-compiled", logits_loss::chunked_compiled},
                                                           {"autocast", logits_loss::autocast},
                                                           {"no-upcast", logits_loss::no_upcast},
                                                           {"compiled", logits_loss::compiled},
                                                           {"chunked-fp32-outputs", logits_loss::chunked_fp32_outputs},
                                                           {"loss-parallel", logits_loss::loss_parallel},
                                                           {"fused", logits_loss::fused}};

struct memory_options {
  std::int64_t lbs = 1;             // micro batch (sequences)
  std::int64_t seq = 0;             // sequence length (tokens)
  std::int64_t micro_batches = 1;   // per replica per step (= GAS); bounds in-flight micro-batches
  dtype param_dtype = dtype::bf16;  // weights as stored for compute: bf16/fp16 (mixed precision) or fp32
  // Gradient buffers in fp32 with 16-bit weights (true) or in the weights' dtype (false); unset,
  // the framework's default: fp32 main grads under megatron with 16-bit weights and megatron_core
  // with bf16 (Megatron-LM's arguments.py turns on --accumulate-allreduce-grads-in-fp32 with --bf16
  // unless --grad-reduce-in-bf16), the weights' dtype under the others (DeepSpeed, Paddle, FSDP's
  // reduce_dtype left unset). false under Megatron: --grad-reduce-in-bf16, or NeMo's
  // optim.grad_sync_dtype bf16 (grad_reduce_in_fp32 False). fp32 weights keep fp32 gradients.
  std::optional<bool> fp32_grads{};
  // An fp32 master copy of 16-bit weights for the optimizer (mixed precision, the default).
  // false: pure 16-bit training: no master copy, and the optimizer states in the weights' dtype,
  // as torch.optim keeps them (AdamW's exp_avg and exp_avg_sq are created like the parameter:
  // torch/optim/adamw.py, torch.zeros_like(p)); e.g. a model loaded in bf16 and trained by
  // Hugging Face's Trainer or torchtune without FSDP mixed precision, Lightning's "bf16-true".
  bool master_weights = true;
  optimizer_kind optimizer = optimizer_kind::adam;
  adam_step adam_implementation = adam_step::framework_default;
  framework accounting = framework::generic;
  // A fused attention kernel: no s x s score matrix kept. This covers FlashAttention, cuDNN's fused
  // attention and PyTorch SDPA's fused kernels: SDPA's memory-efficient kernel is not "in between",
  // since like FlashAttention it saves its output and an fp32 log-sum-exp per query row for the backward
  // (PyTorch's _efficient_attention_forward returns logsumexp), nothing of size s x s. SDPA's math
  // fallback (masks or dtypes no fused kernel takes) materializes the scores: false for it.
  bool flash_attention = true;
  // Without flash attention: the unfused core computes its softmax in fp32 and casts it back, as
  // Hugging Face transformers' eager attention does (eager_attention_forward: softmax(...,
  // dtype=torch.float32).to(query.dtype)), keeping the fp32 probabilities for the softmax's
  // backward and the 16-bit copy for the product with V: 4 + 2 bytes per score, where Megatron-
  // LM's fused softmax keeps its 16-bit output only (Korthikanti et al. 2022: 2 bytes).
  bool fp32_softmax = false;
  // Flash attention through Transformer Engine's cuDNN FusedAttention backend, which reads and
  // writes Megatron's [s, b, h] layout (no transposed copy of its output); matters for
  // framework::megatron_core, whose default FlashAttention backend keeps one.
  bool cudnn_attention = false;
  bool dropout = false;            // dropout masks kept (1 byte per element)
  bool offload_optimizer = false;  // optimizer states (and master weights) in CPU memory
  // torchtune's memory options (torchtune/training/memory.py, modules/loss, training/
  // _activation_offloading.py, v0.3-0.6):
  // optimizer_in_backward: each parameter stepped in its post-accumulate-grad hook and its
  //   gradient freed (register_optim_in_bwd_hooks: one optimizer per parameter, step() then
  //   zero_grad()): no gradient buffers kept, one weight's gradient at a time.
  bool optimizer_in_backward = false;
  // persistent_grads: the gradient buffers live through the whole step. Where they do not, the
  //   backward creates them as it frees what the forward saved: PyTorch allocates a weight's .grad
  //   at its first accumulation (torch/csrc/autograd/functions/accumulate_grad.h) and
  //   Optimizer.zero_grad() sets it to None (set_to_none=True, the default since PyTorch 2.0), and
  //   FSDP's sharded gradients are made by each unit's post-backward reduce-scatter. Then the
  //   saved activations and the loss's buffers fall as the gradients grow, and the step peaks at
  //   the larger end, not at their sum (stage_memory::grads). That is the rule under the generic
  //   and fsdp accountings with one micro-batch a step and no DDP (generic with data or context
  //   parallelism, fsdp without sharded gradients: the reducer's buckets hold every gradient from
  //   construction). true: a loop that keeps them (zero_grad(set_to_none=False), or accumulation
  //   that micro_batches does not show). Megatron-LM's contiguous grad buffer and DeepSpeed's
  //   buffers persist, and Paddle's are counted whole.
  //   For the reserved counter this takes the activations' freed blocks to hold the gradients (the
  //   caching allocator splits a cached block for a smaller request of the same pool).
  bool persistent_grads = false;
  // loss: how the loss holds the logits. standard: PyTorch's eager cross_entropy on an fp32 copy
  //   (torchtune's unembed: output(h).float(); torchtitan's cross_entropy(pred.float(), ...);
  //   transformers' ForCausalLMLoss). Its forward holds the 16-bit logits, the fp32 copy and the
  //   fp32 log-softmax it saves; its backward the saved log-softmax, nll_loss's gradient (a dense
  //   fp32 tensor: aten's nll_loss_backward fills zeros and scatters) and log_softmax's (computed
  //   out of place): 3 x 4 bytes a logit, after the logits themselves are freed (torchtitan's
  //   train step `del pred` and torchtune's `del logits` before backward(); the Trainer's
  //   compute_loss returns the loss alone). The peak is the larger of the two, 12 bytes a
  //   16-bit logit under the generic and fsdp accountings, 14 on a pipeline stage, which keeps
  //   its logits for the micro-batch's backward. Megatron-LM's fused vocab-parallel
  //   cross entropy writes its gradient into the softmax it saved (no second tensor), and
  //   Paddle's is not read: those keep the forward's bytes.
  //   chunked: torchtune's CEWithChunkedOutputLoss (8 chunks) in eager mode: the output layer
  //   returns 16-bit chunks and the loss up-casts one at a time, so no full fp32 copy exists, but
  //   each chunk's fp32 log-softmax is kept (PyTorch's _log_softmax saves its result): 2 + 4
  //   bytes per logit. chunked_compiled: the same loss compiled with its up-cast, as torchtune's
  //   docstring requires for the saving ("The CE and upcasting have to be compiled together"):
  //   taken to keep only the 16-bit chunks and recompute each chunk's fp32 log-softmax in the
  //   backward (one chunk's fp32 alive at a time). That reading is inferred, not confirmed in
  //   Inductor's code; torchtune's compiled rows in the corpus agree with it (bench/RESULTS.md).
  //   autocast: model code that computes its loss on the 16-bit logits without an up-cast, run
  //   under autocast (Qwen's remote modeling_qwen.py with transformers' Trainer at bf16/fp16:
  //   lm_head output, its shifted .contiguous() copy, then CrossEntropyLoss, which autocast runs
  //   in fp32): 16-bit logits and shifted copy, the fp32 cast and the fp32 log-softmax, 2 + 2 + 4
  //   + 4 bytes per logit. no_upcast: the same code without autocast (DeepSpeed's engine runs
  //   the module in its 16-bit dtype, and accelerate enables no native autocast under DeepSpeed):
  //   the log-softmax in 16 bits too, 2 + 2 + 2. standard under the deepspeed accounting is
  //   transformers' Llama path (logits.float() before the shift): 18.
  //   chunked_fp32_outputs: Lit-GPT's fine-tuning loss under Lightning Fabric (finetune/*.py at
  //   8641822: the output layer in 128-token chunks, lm_head_chunk_size=128, then
  //   chunked_cross_entropy on each chunk). Fabric's precision plugin returns the module's outputs
  //   in the default dtype (convert_output: torch.get_default_dtype(), fp32), so the chunks reach
  //   the loss in fp32, stay referenced through the backward, and each chunk's fp32 log-softmax
  //   is saved: 4 + 4 bytes per logit (one chunk's backward transient is negligible).
  //   loss_parallel: the standard loss on vocabulary-sharded logits under PyTorch's
  //   loss_parallel() (torch/distributed/tensor/parallel/loss.py; torchtitan's default with tensor
  //   parallelism, parallel_dims.loss_parallel_enabled). Its forward decomposes the log-softmax
  //   (_log_softmax: the fp32 input, x - max and exp(x - max) alive at once beside the 16-bit
  //   logits: 14 bytes a logit); its backward fuses nll_loss's and log_softmax's
  //   (_nll_loss_and_log_softmax_backward: zeros_like(x), exp(x), their sum and the product with
  //   the gradient, beside the saved log-softmax): 16 bytes a logit of the rank's shard.
  //   compiled: the up-cast cross-entropy compiled whole (torchtitan's components/loss.py wraps
  //   cross_entropy(pred.float(), labels) in torch.compile when training.compile is set, from
  //   2025-04; before, its TODO left the loss eager): Inductor fuses the up-cast, log-softmax and
  //   NLL, so the 16-bit logits and their 16-bit gradient are what lives, 2 + 2 bytes per logit.
  //   Inferred, like chunked_compiled, from torchtitan's report that the compiled loss saved more
  //   than chunking (pytorch/torchtitan#1033), not read in Inductor's code.
  //   fused: a fused cross-entropy kernel on the 16-bit logits, flash-attn's CrossEntropyLoss
  //   (flash_attn/ops/triton/cross_entropy.py, and the xentropy CUDA kernel before it: it saves the
  //   logits and an fp32 log-sum-exp per row, and its backward writes a new 16-bit gradient,
  //   torch.empty_like(logits), unless inplace_backward) as llm-foundry's MPT runs it by default
  //   (loss_fn fused_crossentropy, llmfoundry/models/mpt/modeling_mpt.py): 2 + 2 bytes per logit.
  logits_loss loss = logits_loss::standard;
  // offload_activations: OffloadActivations moves every saved tensor of 1 KiB or more to pinned
  //   host memory, keeping the 5 most recent on the device (max_fwd_stash_size); the output layer
  //   and the loss stay on the device. torchtune requires activation checkpointing with it, so
  //   what moves is each layer's kept input: the device keeps at most 5 of them.
  bool offload_activations = false;
  // unsharded_grad_accumulation: FSDP (PyTorch's FullyShardedDataParallel) accumulating
  //   micro-batches under no_sync(), as Lightning Fabric's no_backward_sync does for Lit-GPT's
  //   fine-tuning scripts: "FSDP will accumulate the full model gradients (instead of gradient
  //   shards) until the eventual sync" (FullyShardedDataParallel.no_sync). A unit whose flat
  //   parameter holds any trainable weight computes gradients for all of its weights (it requires
  //   grad if any of its parameters does; use_orig_params), so every such unit's whole weights
  //   are held as gradients in the weights' dtype. Units: a transformer block each (the wrap
  //   policy of Lit-GPT and torchtitan), the embedding and the output layer in the root. Only
  //   with FSDP (zero_stage 3) and more than one micro-batch.
  bool unsharded_grad_accumulation = false;
  // Under the fsdp accounting, the weights FSDP leaves to its root unit stay gathered from the
  // forward to the end of the backward: FSDP2 does not reshard the root after forward
  // (_fsdp_state.py _lazy_init: "For the root, do not reshard after forward ...",
  // post_forward_mesh_info = None) and FSDP1 neither (_runtime_utils.py _post_forward_reshard:
  // "Do not free the root's parameters in the post-forward for FULL_SHARD"); both reshard it at
  // the end of the backward. With only the transformer blocks wrapped (torchtitan before
  // 83e694105, 2025-07-28; torchtune's shard_model without custom_sharded_layers; Lit-GPT's
  // auto_wrap_policy={Block}) the root holds the embedding, the final norm and the output layer.
  // The output layer is gathered at the backward's start in any case (its backward runs first).
  // fsdp_embedding_resharded: the embedding is its own unit and resharded after the forward
  // (torchtitan from 83e694105 without pipeline parallelism: fully_shard(model.tok_embeddings,
  // reshard_after_forward=not pp_enabled); torchtune with custom_sharded_layers:
  // ['tok_embeddings', 'output']), so it is not gathered at the peak. Vision towers and
  // projectors, which a root would also hold, are not counted gathered.
  bool fsdp_embedding_resharded = false;
  std::int64_t comm_buffer_bytes = 0;  // extra collective buffers the framework keeps (buckets)
  // The weights were created in fp32 on the device, then cast in place to param_dtype: Paddle's
  // Layer._transform (python/paddle/nn/layer/layers.py) casts one parameter at a time and frees
  // its fp32 copy, but the auto-growth allocator keeps the freed blocks. Each block then holds
  // the 16-bit weight in one half; gradients, activations and gathered ZeRO-3 weights (16-bit
  // tensors no larger than a weight) can reuse the other half; fp32 optimizer states (twice a
  // half block) and the fp32 logits (tokens x vocabulary) cannot, and the runtime overhead lies
  // outside the allocator. The stage holds at least 4 bytes per weight it keeps plus its
  // optimizer states and the rest (stage_memory::reserve is the difference). The weights are
  // those the rank keeps (with ZeRO-3, its shard: a partitioned construction, as DeepSpeed's
  // zero.Init does); with fp32 weights nothing is cast and the flag changes nothing. FlagPerf's
  // Paddle GPT-3 cases (seed 004) build this way: run_pretraining.py calls model_class(config)
  // without a dtype and PaddleNLP's Trainer decorates the model for O2.
  bool weights_built_in_fp32 = false;
  // Every batch is padded to its own longest sample, so tensor sizes change from step to step
  // (LLaVA's collator). PyTorch's caching allocator then leaves unusable slivers at the ends of
  // its segments and keeps allocating new ones until an allocation fails (PyTorch docs, CUDA
  // semantics, "expandable_segments"): the device's own reading climbs to its capacity whatever
  // the need. seq is the longest batch's length; memory_reading() gives the reading.
  bool variable_length = false;
  // The two global constants of the model (see memory_model_constants): the CUDA context and
  // allocator's fixed share, and the allocator's growth over the activation peak.
  double runtime_overhead_bytes = -1;  // -1: the fitted default
  double activation_overhead = -1;     // -1: the fitted default
  layer_kernels kernels = layer_kernels::fused;
  // Megatron-LM's --distribute-saved-activations: with full recomputation, each layer's kept
  // input split over the TP ranks.
  bool distribute_saved_activations = false;
  // MoE: 0, dropless (Megatron-LM's default); C > 0, experts padded to C x the balanced share of
  // tokens (--moe-expert-capacity-factor C --moe-pad-expert-input-to-capacity).
  double moe_capacity_factor = 0;
  selective_policy selective = selective_policy::attention_core;  // what recompute::selective keeps
  // Which layers full recomputation recomputes (Megatron-LM's --recompute-method and
  // --recompute-num-layers, megatron/training/arguments.py): uniform, the layers in groups of
  // recompute_num_layers, each group's input kept and the group recomputed as one; block, the
  // first recompute_num_layers layers of each pipeline stage (of each virtual chunk) recomputed
  // one by one, the others keeping all their activations.
  recompute_grouping recompute_method = recompute_grouping::uniform;
  std::int64_t recompute_num_layers = 1;
  // LoRA adapters on a frozen base, a quantized frozen base (adapters.hpp).
  adapter_options adapters{};
  // framework::deepspeed: ZeRO's buckets, prefetch and persistence (memory/deepspeed.hpp).
  deepspeed_zero_config deepspeed{};
  fp8_training fp8 = fp8_training::none;  // fp8 linear layers (see fp8_training)
};

// The two constants every prediction shares, fitted once to the seed measurements
// (bench/memory_accuracy prints the fit and its leave-one-out errors).
struct memory_model_constants {
  // Least-squares fit of the relative error over all seed rows (bench/memory_accuracy prints
  // the fit, every row's error and the leave-one-out errors): 6.2 GiB and 12%. The seeds
  // report nvidia-smi's "used" memory, which includes the CUDA context, NCCL's buffers and the
  // caching allocator's slack over the live tensors; set your own for other systems (a CPU
  // trainer has none of them).
  static constexpr double runtime_overhead_bytes = 6.2 * GiB;
  static constexpr double activation_overhead = 0.12;
};

// Bytes per parameter of the model states on one data-parallel rank.
struct state_bytes {
  double params = 0, grads = 0, optimizer = 0;
  double step_temporary = 0;  // alive during the optimizer step only (adam_step::foreach's sqrt(v))
  [[nodiscard]] constexpr double total() const { return params + grads + optimizer; }
};

// Mixed-precision accounting of Rajbhandari et al. 2020 (ZeRO, arXiv:1910.02054, section 3.1
// and figure 1): 16-bit weights (2) and gradients (2), K = 12 bytes of optimizer state (fp32
// master, Adam m and v); ZeRO stage 1 (P_os) shards the optimizer states over the dp ranks,
// stage 2 (P_os+g) also the gradients, stage 3 (P_os+g+p) also the weights. Megatron-LM's
// distributed optimizer shards the optimizer states like stage 1, with fp32 gradients
// (docs/source/api-guide/dist_optimizer.md: 6 + 12/d bytes per parameter).
constexpr state_bytes per_param_state_bytes(const parallel_config& c, std::int64_t dp, const memory_options& o);

// What a measured memory figure counts. allocated: the live tensors at their peak
// (torch.cuda.max_memory_allocated, PyTorch's peak "active" bytes); reserved: what the caching
// allocator holds (torch.cuda.max_memory_reserved); device_used: the device's own counter
// (nvidia-smi's "used"), which adds the CUDA context and buffers outside the allocator.
enum class memory_counter { allocated, reserved, device_used };

// One pipeline stage's memory on each of its ranks, in bytes.
struct stage_memory {
  std::int64_t stage = 0;
  std::int64_t layers = 0;
  double inflight = 0;      // micro-batches whose activations the stage holds at its peak
  double params = 0;        // weights on the device
  double grads = 0;         // gradient buffers at the peak: grad_buffers where they persist; where
                            // the backward creates them (memory_options::persistent_grads), what
                            // they outgrow of the saved activations and loss buffers it frees
  double grad_buffers = 0;  // every gradient buffer, alive at the end of the backward and in the step
  double optimizer = 0;     // optimizer states (and fp32 master weights)
  double activations = 0;   // stored activations at the peak, including the allocator's growth
  double other = 0;         // logits beyond a recomputed layer, gathered ZeRO-3 weights, comm buffers,
                            // the optimizer step's temporary (and the gradients it holds beyond
                            // `grads`), fp8 weight caches, runtime
  double reserve = 0;       // allocator blocks held beyond the live tensors: the fp32 construction's
                            // (weights_built_in_fp32) and the eager loss's freed logits block
  // Parts of the above that are not live tensors: the allocator's growth over the activation
  // peak (in activations) and the runtime overhead (in other).
  double allocator_growth = 0, runtime = 0;
  [[nodiscard]] constexpr double total() const { return params + grads + optimizer + activations + other + reserve; }
  // What each counter reads (memory_counter): the live tensors alone, the allocator's reserve
  // (the tensors, its growth and the blocks it keeps), or the device's own counter (also the
  // CUDA context, NCCL's and the framework's buffers: the runtime overhead).
  [[nodiscard]] constexpr double reading(memory_counter c) const {
    return c == memory_counter::allocated  ? total() - runtime - allocator_growth - reserve
           : c == memory_counter::reserved ? total() - runtime
                                           : total();
  }
  // What the stage needs of the device to run, the figure a fit is judged on: the reserved
  // counter. The runtime overhead stays out: fitted on the seeds' nvidia-smi readings, it holds
  // beside the CUDA context the caching allocator's cached slack, which the allocator frees before
  // it fails an allocation (c10/cuda/CUDACachingAllocator.cpp, malloc: release_available_cached_blocks,
  // then release_cached_blocks, each followed by another cudaMalloc). What the context and NCCL's
  // buffers take is the margin a planner leaves free (plan_request::memory_margin).
  [[nodiscard]] constexpr double need() const { return reading(memory_counter::reserved); }
};

struct memory_estimate {
  std::vector<stage_memory> stages;
  [[nodiscard]] constexpr double max_total() const { return largest(&stage_memory::total); }
  [[nodiscard]] constexpr double max_need() const { return largest(&stage_memory::need); }  // stage_memory::need
  // The largest stage's figure `of` (0 without stages).
  [[nodiscard]] constexpr double largest(double (stage_memory::*of)() const) const {
    double m = 0;
    for (const auto& s : stages) m = std::max(m, (s.*of)());
    return m;
  }
};

namespace detail {

constexpr double dtype_bytes(dtype d) {
  return d == dtype::fp32 || d == dtype::tf32 ? 4.0 : d == dtype::fp8 ? 1.0 : 2.0;
}

// Activation bytes one transformer layer stores for one micro-batch (Korthikanti et al. 2022,
// arXiv:2205.05198, section 4, generalized): per token, 16-bit elements
//   replicated over TP ranks (split by sequence parallelism): the two norm inputs and the
//   QKV and MLP-up inputs, 4h; dropout masks 2h bytes when dropout is on;
//   split over TP: Q and K (q + kv), V (kv), the attention output (q), the MLP: GELU keeps
//   its input and output (2f), SwiGLU gate, up and product (3f); MoE layers top_k times;
//   attention core: softmax probabilities a x s (plus mask and dropout output) unless
//   flash attention keeps only its fp32 log-sum-exp. framework::megatron: see above.
//   The QKV, MLP-up and down projections' inputs only where those weights train (or carry a
//   LoRA adapter): a frozen base keeps 2h + q + 2kv + q + 2f (SwiGLU), whatever trains above it.
// Selective recomputation drops the core and recomputes one layer's core at a time (its
// working set); full recomputation keeps only the layer input and recomputes a whole layer.
struct layer_activation_bytes {
  double stored = 0;   // kept from forward to backward, per layer
  double working = 0;  // one layer's full activations, alive while it is recomputed
};
constexpr layer_activation_bytes layer_activations(const transformer_spec& m, const parallel_config& c,
                                                   const memory_options& o, bool moe_layer) {
  const double t = static_cast<double>(c.tp), s = static_cast<double>(o.seq / c.cp), b = static_cast<double>(o.lbs);
  const double h = static_cast<double>(m.hidden), q = static_cast<double>(m.q_dim()),
               kv = static_cast<double>(m.kv_dim() * kv_head_replicas(m, c.tp, c.replicate_kv_heads));  // per tp
  const double a = static_cast<double>(m.heads), e = dtype_bytes(o.param_dtype);
  const double split_rep = c.sequence_parallel ? t : 1.0;
  // Per token, an MoE layer's experts run top_k expert MLPs (dropless, balanced routing; padded
  // to a capacity factor C, the experts hold C times the routed tokens, dropped ones included)
  // plus the shared experts.
  const double routed_share = o.moe_capacity_factor > 0 ? o.moe_capacity_factor : 1.0;
  const double f = moe_layer ? routed_share * static_cast<double>(m.moe.top_k * m.resolved_expert_ffn()) +
                                   static_cast<double>(m.moe.shared_experts * m.resolved_shared_expert_ffn())
                             : static_cast<double>(m.ffn);
  const bool legacy = o.accounting == framework::megatron;
  // A linear layer keeps its input only for its weight's gradient, so a frozen one keeps none
  // (PyTorch's mm backward saves mat1 only when mat2 requires grad: derivatives.yaml, mm); a
  // LoRA adapter keeps its projection's input for A's gradient, or with dropout the dropped-out
  // copy and its mask in its place (below).
  const adapter_options& ad = o.adapters;
  const bool base_trains = base_weights_train(m, ad);
  const bool quantized_keep = ad.frozen_weight_bits > 0 && ad.quantized_inputs_kept;
  // fp32 adapters (PEFT before 0.6) take their own copy of the input (x.to(fp32), which autocast
  // casts back to a 16-bit copy that lora_A saves), so they keep it per target, as with dropout.
  const bool own_copy = ad.lora_dropout || (ad.fp32_adapters && e < 4);
  const auto input_kept = [&](unsigned targets) {
    return base_trains || quantized_keep || ((ad.lora_targets & targets) != 0 && !own_copy);
  };
  namespace lt = lora_target;
  // An MoE layer's experts also keep their inputs: each token's hidden state permuted to its
  // top_k experts (Megatron-LM's token dispatcher output, the grouped GEMM's input). After the
  // all-to-all the dispatcher gathers the tokens over the expert-tensor-parallel group
  // (MoEAlltoAllTokenDispatcher: gather_from_sequence_parallel_region over expt_tp), so a rank
  // keeps etp ranks' tokens at full width; the experts' ffn-wide tensors are split etp ways, so
  // they stay 1/tp of the layer's tokens whatever etp is.
  const double expert_inputs = moe_layer ? routed_share * static_cast<double>(m.moe.top_k) * h : 0;
  // (Without sequence parallelism at tp > 1, which Megatron-LM refuses for MoE, every rank holds
  // the whole sequence already: no gather.)
  const double expert_tp = c.sequence_parallel || c.tp == 1 ? static_cast<double>(c.resolved_etp()) : 1.0;
  const double linear_inputs = (input_kept(lt::q | lt::k | lt::v | lt::qkv) ? h : 0) +
                               (input_kept(lt::gate | lt::up) ? h + expert_inputs * expert_tp : 0);
  // The MLP's kept tensors besides the down projection's input (f): SwiGLU's gate and up (an
  // unfused one, legacy Megatron's or eager PyTorch's, also the SiLU output), GELU's input.
  const bool eager = o.kernels == layer_kernels::eager;
  const double mlp_act = (m.mlp == mlp_kind::swiglu ? (legacy || eager ? 3.0 : 2.0) : 1.0) * f;
  const double down_input = input_kept(lt::down) ? f : 0;
  // Transformer Engine's fp8 linears keep their GEMM inputs in fp8 (see fp8_training), and the
  // output projection its own fp8 input beside the attention core's 16-bit output.
  const bool te_fp8 = o.fp8 == fp8_training::transformer_engine;
  const double linear_input_bytes = te_fp8 ? 1.0 : e;
  // Per norm: a fused RMSNorm/LayerNorm keeps its 16-bit input; an eager one computed in fp32
  // keeps the fp32 copy of its input, and the 16-bit normalized output when its weight trains.
  const bool norms_train = base_trains || ad.llama_adapter == prompt_adapter::v2;
  const double norm_bytes = eager ? 4 * h + (norms_train ? h * e : 0) : h * e;
  // LLaMA-Adapter v2's scale x (W x + bias) keeps each linear's biased output for the scale's
  // gradient: QKV, output projection, the MLP's up (and gate) and down projections.
  const double v2_outputs =
      ad.llama_adapter == prompt_adapter::v2 ? q + 2 * kv + h + (m.mlp == mlp_kind::swiglu ? 2.0 : 1.0) * f + h : 0.0;
  const double k_and_v = legacy ? 2 * q : 2 * kv;
  // Flash attention keeps its output for its own backward (legacy Megatron and megatron-core
  // under TE's FlashAttention also the re-laid-out copy the output projection saves); the
  // unfused core keeps probabilities and V, and the output only as the output projection's input.
  const bool transposed_copy = !te_fp8 && (legacy || (o.accounting == framework::megatron_core && !o.cudnn_attention));
  const double attention_out =
      o.flash_attention ? (transposed_copy ? 2 * q : q) : (input_kept(lt::o) && !te_fp8 ? q : 0);
  const double attention_out_fp8 = te_fp8 && input_kept(lt::o) ? q : 0;
  // Per LoRA target: A's output (r, B's input); with dropout, the copy of the input and its mask.
  double lora_rep = 0, lora_split = 0;
  if (ad.lora()) {
    const double r = static_cast<double>(ad.lora_rank), drop = ad.lora_dropout ? e + 1 : own_copy ? e : 0;
    const unsigned present = lora_targets_present(m, ad);
    for (unsigned bit : {lt::q, lt::k, lt::v, lt::qkv, lt::o, lt::gate, lt::up, lt::down}) {
      if ((present & bit) == 0) continue;
      lora_split += r * e;
      if (bit == lt::o)
        lora_split += q * drop;
      else if (bit == lt::down)
        lora_split += f * drop;
      else
        lora_rep += h * drop;
    }
  }
  // An MoE layer's router keeps one fp32 score per expert for its backward (Megatron-LM: the
  // softmax of compute_routing_scores_for_aux_loss, moe/moe_utils.py; transformers:
  // softmax(router_logits, dtype=torch.float)); the shared experts' gate its input (the shared
  // output, h) and two values (gate and sigmoid). Eager PyTorch (transformers' Qwen2Moe, Mixtral)
  // also keeps the router logits for the load-balancing loss and each routed token's expert output
  // for its weighting (expert_layer(x) * routing_weights), where Megatron-LM applies the weights
  // inside the experts' SwiGLU (WeightedSwiGLUFunction) and keeps no expert output.
  const double experts_n = static_cast<double>(m.moe.experts);
  const double router = !moe_layer ? 0
                                   : experts_n * 4 + (m.moe.shared_expert_gate ? (h + 2) * e : 0) +
                                         (eager ? experts_n * e + expert_inputs * e : 0);
  const double per_token =
      (2 * norm_bytes + linear_inputs * linear_input_bytes + (o.dropout ? 2 * h : 0) + lora_rep + router) / split_rep +
      ((q + k_and_v + attention_out + mlp_act + v2_outputs) * e +
       (attention_out_fp8 + down_input) * linear_input_bytes + lora_split) /
          t;
  const double softmax_bytes = o.fp32_softmax ? 4 + e : e;
  const double scores = o.flash_attention ? 0.0 : s * b * a * s * (softmax_bytes + (o.dropout ? 1 + e : 0)) / t;
  const double full = s * b * (per_token + (o.flash_attention ? a * 4.0 / t : 0.0)) + scores;
  layer_activation_bytes r;
  if (c.recomputation == recompute::full) {
    // Megatron-LM's --distribute-saved-activations splits the kept layer input over the TP ranks
    // (sequence parallelism already does).
    r.stored = s * b * h * e / (o.distribute_saved_activations ? t : split_rep);
    r.working = full;
  } else if (c.recomputation == recompute::selective && o.selective != selective_policy::attention_core) {
    // torchtitan's op-level SAC saves the layer input, the attention output (and log-sum-exp)
    // unless the attention is recomputed too, and the outputs of the 1st, 3rd, 5th and 7th
    // matmul of the block: wq (q), wv (kv), w1 (f) and w2 (h: the row-parallel matmul's
    // full-width partial sum); the rest is recomputed, one layer at a time.
    const bool attention_saved = o.selective == selective_policy::every_other_matmul;
    const double saved_per_token = (h * e + (o.dropout ? 2 * h : 0)) / split_rep + h * e +
                                   ((attention_saved ? 2 : 1) * q + kv + (m.mlp == mlp_kind::swiglu ? f : 0)) * e / t +
                                   (o.flash_attention && attention_saved ? a * 4.0 / t : 0.0);
    r.stored = s * b * saved_per_token + (o.flash_attention || !attention_saved ? 0.0 : scores);
    r.working = std::max(0.0, full - r.stored);
  } else if (c.recomputation == recompute::selective) {
    r.stored = full - scores;
    r.working = scores;
  } else {
    r.stored = full;
  }
  // Expert parallelism's all-to-all exchanges each token's top_k copies: the permuted tokens sent
  // and those received live together during the dispatch (and the combine, and their gradients in
  // the backward), then are freed (Megatron-LM's MoEAlltoAllTokenDispatcher saves neither).
  if (moe_layer && c.ep > 1) r.working = std::max(r.working, 2 * s * b * expert_inputs * e / split_rep);
  return r;
}

// The elements of one dense layer's weight tensors of at most `threshold` elements each (norm
// weights and biases), which DeepSpeed's ZeRO-3 keeps gathered (stage3_param_persistence_threshold).
constexpr std::int64_t small_layer_weights(const transformer_spec& m, double threshold) {
  const auto small = [&](std::int64_t n) { return static_cast<double>(n) <= threshold ? n : 0; };
  std::int64_t sum = (m.norm == norm_kind::layernorm ? 4 : 2) * small(m.hidden);
  if (m.qkv_bias || m.linear_bias) sum += small(m.q_dim()) + 2 * small(m.kv_dim());
  if (m.linear_bias) sum += 2 * small(m.hidden) + (m.mlp == mlp_kind::swiglu ? 2 : 1) * small(m.ffn);
  return sum;
}

// What a LLaMA-Adapter layer keeps beyond the layer (prompt_adapter): the second attention's
// output, over the prompt's keys and values, for the gate's gradient, and its fp32 log-sum-exp
// (the keys and values of a 10-token prompt are negligible).
constexpr double prompt_attention_bytes(const transformer_spec& m, const parallel_config& c, const memory_options& o) {
  const double tokens = static_cast<double>(o.seq / c.cp * o.lbs), t = static_cast<double>(c.tp);
  return tokens * (static_cast<double>(m.q_dim()) * dtype_bytes(o.param_dtype) + 4.0 * static_cast<double>(m.heads)) /
         t;
}

}  // namespace detail

constexpr state_bytes per_param_state_bytes(const parallel_config& c, std::int64_t dp, const memory_options& o) {
  const double e = detail::dtype_bytes(o.param_dtype), d = static_cast<double>(dp);
  const bool mixed = o.param_dtype != dtype::fp32;
  const bool fp32_grads =
      !mixed || o.fp32_grads.value_or(o.accounting == framework::megatron ||
                                      (o.accounting == framework::megatron_core && o.param_dtype == dtype::bf16));
  // Adam: m and v in fp32, plus an fp32 master copy of 16-bit weights; SGD: momentum (+ master).
  // Pure 16-bit (no master weights): the states in the weights' dtype, no copy.
  const bool master = mixed && o.master_weights;
  // FSDP2 over fp32 parameters: the weights are the fp32 shard, which is the master too (no
  // 16-bit shard kept, no separate master copy).
  const bool fp32_shard = o.accounting == framework::fsdp && master;
  const double state = mixed && !o.master_weights ? e : 4.0;
  const double states = o.optimizer == optimizer_kind::adam_8bit ? 2.0 * (1.0 + 4.0 / 2048)
                        : o.optimizer == optimizer_kind::adam    ? 2.0 * state
                                                                 : state;
  const double opt = states + (master && !fp32_shard ? 4.0 : 0.0);
  state_bytes b;
  b.params = (fp32_shard ? 4.0 : e) / (c.zero_stage == 3 ? d : 1.0);
  b.grads = (fp32_grads ? 4.0 : e) / (c.zero_stage >= 2 ? d : 1.0);
  // DeepSpeed ZeRO keeps an fp32 partition of the gradients for the optimizer step.
  if (o.accounting == framework::deepspeed && mixed && c.zero_stage >= 1) b.grads += 4.0 / d;
  const double state_shards = c.zero_stage >= 1 || c.distributed_optimizer ? d : 1.0;
  b.optimizer = o.offload_optimizer ? 0.0 : opt / state_shards;
  const bool foreach = o.adam_implementation == adam_step::framework_default
                           ? o.accounting == framework::generic
                           : o.adam_implementation == adam_step::foreach;
  if (foreach && o.optimizer == optimizer_kind::adam && !o.offload_optimizer && !o.optimizer_in_backward)
    b.step_temporary = state / state_shards;
  return b;
}

// ZeRO figure 1: model-state bytes per device for psi parameters on dp devices.
constexpr double zero_model_state_bytes(double psi, std::int64_t dp, int zero_stage) {
  parallel_config c;
  c.zero_stage = zero_stage;
  return psi * per_param_state_bytes(c, dp, {.param_dtype = dtype::fp16}).total();
}

namespace reason {
inline void memory_needs_a_sequence_length() {}
inline void memory_estimate_exceeds_2_to_the_62_bytes() {}
inline void quantized_weights_cannot_train() {}
inline void recompute_method_needs_full_recomputation() {}
inline void moe_capacity_factor_out_of_range() {}
inline void offloaded_activations_need_full_recomputation() {}
inline void optimizer_in_backward_with_accumulation() {}
inline void unsharded_grad_accumulation_needs_fsdp() {}
inline void fsdp_embedding_resharded_needs_fsdp() {}
inline void loss_parallel_needs_tensor_parallelism() {}
inline void fp32_adapters_under_deepspeed() {}
}  // namespace reason

// Past 2^62 bytes (4 EiB, some million times any device) an estimate means nothing and no longer
// converts to a 64-bit byte count: refused.
inline constexpr double max_memory_estimate_bytes = 4.611686018427387904e18;

// The memory of every pipeline stage under config c for world / data-parallel degree dp.
// Model states follow the mixed-precision accounting of Rajbhandari et al. 2020 (ZeRO,
// arXiv:1910.02054, section 3.1): 16-bit weights and gradients, fp32 master weights and Adam
// m and v; ZeRO stage 1 shards the optimizer states, stage 2 also the gradients, stage 3 also
// the weights, over the data-parallel ranks; Megatron-LM's distributed optimizer shards the
// optimizer states (docs/source/api-guide/dist_optimizer.md: 6 + 12/d bytes per parameter
// with fp32 gradients).
// The model is taken as the framework stores it (as_stored_by: Megatron-LM's vocabulary padding).
constexpr memory_estimate estimate_memory(const transformer_spec& spec, const parallel_config& c, std::int64_t world,
                                          const memory_options& o) {
  const transformer_spec m = as_stored_by(spec, o.accounting);
  validate(m);
  detail::require(o.seq > 0, reason::memory_needs_a_sequence_length, "seq",
                  [&] { return "the memory model needs the sequence length (seq), got " + detail::str(o.seq); });
  detail::require_dimension(o.seq, "seq");
  detail::require_dimension(o.lbs, "lbs");
  detail::require_positive(o.micro_batches, "micro_batches");
  validate(c, {.world = world, .model = m, .seq = o.seq});
  const std::int64_t dp = c.dp_for(world);
  const double t = static_cast<double>(c.tp);
  const double overhead =
      o.runtime_overhead_bytes >= 0 ? o.runtime_overhead_bytes : memory_model_constants::runtime_overhead_bytes;
  const double growth =
      o.activation_overhead >= 0 ? o.activation_overhead : memory_model_constants::activation_overhead;

  const std::vector<stage_layers> split = partition_layers(m.layers, c.split());
  std::vector<double> inflight(static_cast<std::size_t>(c.pp), 1.0);
  // Micro-batches a step runs (interleaving rounds them up to a multiple of pp).
  const std::int64_t micro_batches =
      c.pp > 1 && c.vpp > 1 ? detail::checked_mul(detail::ceil_div(o.micro_batches, c.pp), c.pp, "micro_batches")
                            : o.micro_batches;
  if (c.pp > 1) inflight = inflight_peaks(c.schedule(), c.pp, micro_batches, c.vpp);
  const adapter_options& ad = o.adapters;
  validate(ad, m);
  // With LoRA the base is frozen whatever llm_mode says; quantized weights cannot train.
  const bool base_trains = base_weights_train(m, ad);
  detail::require(ad.frozen_weight_bits == 0 || !base_trains, reason::quantized_weights_cannot_train,
                  "frozen_weight_bits", [&] {
                    return "frozen_weight_bits " + format_double(ad.frozen_weight_bits) +
                           " with the base model training: quantized weights stay frozen; add LoRA adapters "
                           "(lora_rank) or freeze the LLM";
                  });
  detail::require_positive(o.recompute_num_layers, "recompute_num_layers");
  detail::require(!o.offload_activations || c.recomputation == recompute::full,
                  reason::offloaded_activations_need_full_recomputation, "offload_activations", [&] {
                    return std::string("offload_activations with ") + std::string(to_string(c.recomputation)) +
                           " recomputation: torchtune offloads the layer inputs activation checkpointing keeps; set "
                           "full recomputation";
                  });
  detail::require(!o.optimizer_in_backward || o.micro_batches == 1, reason::optimizer_in_backward_with_accumulation,
                  "optimizer_in_backward", [&] {
                    return "optimizer_in_backward with " + detail::str(o.micro_batches) +
                           " micro-batches: the optimizer steps as each gradient arrives, so gradients cannot "
                           "accumulate (torchtune refuses it); set micro_batches 1 or turn it off";
                  });
  detail::require(!o.unsharded_grad_accumulation || (c.zero_stage == 3 && o.accounting == framework::fsdp),
                  reason::unsharded_grad_accumulation_needs_fsdp, "unsharded_grad_accumulation", [&] {
                    return "unsharded_grad_accumulation (FSDP's no_sync) with ZeRO stage " + detail::str(c.zero_stage) +
                           (o.accounting == framework::fsdp ? "" : " outside the fsdp accounting") +
                           ": only FSDP's full shard accumulates unsharded gradients (DeepSpeed refuses "
                           "no_sync under ZeRO-2/3); set accounting fsdp and zero_stage 3 (--framework fsdp --zero 3), "
                           "or drop it";
                  });
  detail::require(!o.fsdp_embedding_resharded || (c.zero_stage == 3 && o.accounting == framework::fsdp),
                  reason::fsdp_embedding_resharded_needs_fsdp, "fsdp_embedding_resharded", [&] {
                    return "fsdp_embedding_resharded with ZeRO stage " + detail::str(c.zero_stage) +
                           (o.accounting == framework::fsdp ? "" : " outside the fsdp accounting") +
                           ": it says how FSDP wraps the embedding; set accounting fsdp and zero_stage 3 "
                           "(--framework fsdp --zero 3), or drop it";
                  });
  detail::require(o.loss != logits_loss::loss_parallel || c.tp > 1, reason::loss_parallel_needs_tensor_parallelism,
                  "loss", [&] {
                    return std::string(
                        "loss loss_parallel with tp 1: PyTorch's loss_parallel() shards the logits over "
                        "the tensor-parallel ranks and does nothing without them; set tp > 1 or use "
                        "the standard loss");
                  });
  detail::require(!ad.fp32_adapters || o.accounting != framework::deepspeed, reason::fp32_adapters_under_deepspeed,
                  "fp32_adapters", [&] {
                    return std::string(
                        "fp32_adapters under the deepspeed accounting: DeepSpeed casts the whole "
                        "model, adapters included, to the weights' dtype; drop fp32_adapters");
                  });
  detail::require(o.moe_capacity_factor >= 0 && o.moe_capacity_factor <= 1024, reason::moe_capacity_factor_out_of_range,
                  "moe_capacity_factor", [&] {
                    return "moe_capacity_factor " + format_double(o.moe_capacity_factor) +
                           " is outside 0..1024; give 0 (dropless) or a factor such as 1.25";
                  });
  detail::require(c.recomputation == recompute::full ||
                      (o.recompute_num_layers == 1 && o.recompute_method == recompute_grouping::uniform),
                  reason::recompute_method_needs_full_recomputation, "recompute_num_layers", [&] {
                    return "recompute_num_layers " + detail::str(o.recompute_num_layers) +
                           " (or the block method) with " + std::string(to_string(c.recomputation)) +
                           " recomputation: Megatron-LM's recompute method applies to full recomputation; set "
                           "full recomputation or drop them";
                  });
  parallel_config keep_all = c;  // the layers partial full recomputation leaves alone keep everything
  keep_all.recomputation = recompute::none;
  const param_counts pc = count_params(m, c.tp);
  const double e = detail::dtype_bytes(o.param_dtype);
  // Context-parallel ranks hold the same weights, so the sharded states spread over dp x cp:
  // Megatron-LM's distributed optimizer shards over its data-parallel-with-CP group
  // (parallel_state.get_data_parallel_group(with_context_parallel=True)), torchtitan's FSDP2
  // over its dp_shard x cp mesh (parallelize_llama: dp_shard_cp).
  // Hybrid sharding shards over shard_dp of the dp ranks only (and replicates across the groups).
  const std::int64_t shards = detail::checked_mul(c.shard_dp > 0 ? c.shard_dp : dp, c.cp, "dp x cp");
  const state_bytes per_param = per_param_state_bytes(c, shards, o);
  // Expert parallelism (Megatron-LM's expert rank generator): each expert weight lives on one of
  // ep ranks, split etp ways, and its states shard over the expert data-parallel group of
  // world / (pp x ep x etp) ranks (validate checks it divides).
  const double expert_split = static_cast<double>(c.ep * c.resolved_etp());
  const std::int64_t expert_shards = std::max<std::int64_t>(1, world / (c.pp * c.ep * c.resolved_etp()));
  const state_bytes per_expert = per_param_state_bytes(c, expert_shards, o);
  // Adapters kept in fp32 (adapter_options::fp32_adapters) take fp32 training's states.
  memory_options fp32_training = o;
  fp32_training.param_dtype = dtype::fp32;
  const state_bytes per_adapter = ad.fp32_adapters ? per_param_state_bytes(c, shards, fp32_training) : per_param;
  const bool zero3 = c.zero_stage == 3;
  // The dtype ZeRO-3/FSDP gathers weights in: the weights', or fp8 under torchao's fp8 all-gather.
  const double gathered_bytes = o.fp8 == fp8_training::torchao_fp8_all_gather ? 1.0 : e;
  // Logits bytes per element at the loss's peak, each path as memory_options::loss describes it
  // (the compute-dtype logits, then what the path holds beside or after them). The up-cast
  // copies only 16-bit logits: fp32 logits are already what the loss reads (PyTorch's
  // Tensor.float() returns the tensor itself when it is fp32).
  const double upcast = e < 4 ? 4.0 : 0.0;
  // PyTorch's eager cross entropy (standard under the generic and fsdp accountings, and
  // loss_parallel) peaks in its backward. Without pipelining the logits are freed before it
  // (torchtitan's `del pred`, torchtune's `del logits`); a pipeline stage keeps its output for
  // the micro-batch's backward (torch.distributed.pipelining's fwd_cache), so they stay live.
  const bool eager_loss =
      o.loss == logits_loss::loss_parallel ||
      (o.loss == logits_loss::standard && (o.accounting == framework::generic || o.accounting == framework::fsdp));
  const bool logits_freed = c.pp == 1;
  const double logits_kept = logits_freed ? 0.0 : e;
  // The compiled loss and the fused kernel hold alike: the 16-bit logits and their 16-bit gradient.
  const bool logits_and_gradient = o.loss == logits_loss::compiled || o.loss == logits_loss::fused;
  const double logit_bytes =
      e + (o.loss == logits_loss::chunked                ? 4.0
           : o.loss == logits_loss::chunked_compiled     ? 4.0 / 8
           : o.loss == logits_loss::autocast             ? e + upcast + 4.0
           : o.loss == logits_loss::no_upcast            ? 2.0 * e
           : logits_and_gradient                         ? e
           : o.loss == logits_loss::chunked_fp32_outputs ? 8.0 - e
           : o.loss == logits_loss::loss_parallel        ? std::max(upcast + 8.0, 16.0 - e + logits_kept)
           : o.accounting == framework::deepspeed        ? 12.0 + upcast
           // The forward's bytes or the backward's 12 (see loss); Megatron's and Paddle's the forward's.
           : eager_loss ? std::max(4.0 + upcast, 12.0 - e + logits_kept)
                        : 4.0 + upcast);

  memory_estimate est;
  for (std::int64_t st = 0; st < c.pp; ++st) {
    stage_memory sm;
    sm.stage = st;
    sm.inflight = inflight[static_cast<std::size_t>(st)];
    // Weights on this stage: its layers, the embedding on the first, the output layer (or a
    // tied copy of the embedding, as Megatron-LM keeps one) and the final norm on the last.
    double total_params = 0, trainable = 0, largest_layer = 0;
    double largest_gathered = 0;  // bytes of the largest layer as ZeRO-3/FSDP gathers it
    double act_stored = 0, act_working = 0, logits = 0, quantized = 0, experts = 0, trainable_experts = 0;
    double logit_count = 0;                // the rank's logits (tokens x its share of the vocabulary)
    double linear_weights = 0, gemms = 0;  // the layers' linear weights and GEMMs on the rank (fp8 caches)
    double largest_trainable = 0;          // the largest trainable weight tensor (optimizer_in_backward)
    double adapter_params = 0;             // the adapters' weights (trainable, states per_adapter)
    double unit_weights = 0;  // weights of the FSDP units with a trainable one (unsharded_grad_accumulation)
    double head_weights = 0;  // what FSDP's root keeps gathered at the peak (fsdp_embedding_resharded)
    double head_grad = 0;     // the output layer's gradient, the backward's first (grads_in_backward)
    // Every trainable part goes through here, so the largest tensor is never missed.
    const auto trains = [&](double params, double largest_tensor) {
      trainable += params;
      largest_trainable = std::max(largest_trainable, largest_tensor);
    };
    double recomputed_input = 0;  // one recomputed layer's kept input (offload_activations)
    for (const stage_layers& sl : split) {
      if (sl.stage != st) continue;
      sm.layers += sl.layers;
      // Layers come in two shapes at most (is_moe_layer: MoE, dense otherwise): each
      // shape once, times its count in [first, first + layers), so 2^31 layers cost no loop.
      const std::int64_t end = sl.first_layer + sl.layers;
      // LLaMA-Adapter's prompt layers on this stage (from adapter_start_layer on).
      const std::int64_t prompt_layers =
          ad.prompt() ? std::max<std::int64_t>(0, end - std::max(sl.first_layer, ad.adapter_start_layer)) : 0;
      const std::int64_t moe_count = m.moe_layers_below(end) - m.moe_layers_below(sl.first_layer);
      for (const auto& [moe, count] : {std::pair{true, moe_count}, std::pair{false, sl.layers - moe_count}}) {
        if (count == 0) continue;
        const layer_params lps = count_layer_params(m, m.layer_of_shape(moe));
        // Routed experts spread over ep x etp ranks (each rank its experts' etp shard), the rest
        // of the layer over tp.
        const double routed = static_cast<double>(lps.routed_experts) / expert_split;
        const double lp = layer_params_per_tp_rank(m, lps, c.tp) + routed +
                          replicated_kv_weights_per_rank(m, c.tp, c.replicate_kv_heads);
        const double n = static_cast<double>(count);
        total_params += lp * n;
        experts += routed * n;
        largest_layer = std::max(largest_layer, lp);
        const double linear = lp - static_cast<double>(tp_replicated_params(m, lps));  // routed experts included
        linear_weights += linear * n;
        gemms += 4 * n;  // QKV, output projection, fc1 (gate and up, or the experts' grouped GEMM), fc2
        // The largest single matrix of the layer: an MLP projection (an expert's when routed) or
        // the fused QKV projection.
        const double h = static_cast<double>(m.hidden);
        const double mlp_matrix = h * static_cast<double>(moe ? m.resolved_expert_ffn() : m.ffn) / t;
        const double qkv_matrix =
            h * static_cast<double>(m.q_dim() + 2 * m.kv_dim() * kv_head_replicas(m, c.tp, c.replicate_kv_heads)) / t;
        if (base_trains) trains(lp * n, std::max(mlp_matrix, qkv_matrix)), trainable_experts += routed * n;
        // A quantized frozen base: the blocks' split linear weights at its bits (norms, router, biases 16-bit).
        const double quantized_lp = ad.frozen_weight_bits > 0 ? linear - routed : 0.0;
        quantized += quantized_lp * n;
        // Sharded quantized weights are gathered as stored, at their bits (torchao's NF4Tensor
        // all-gathers its packed data and scales under FSDP2: fsdp_pre_all_gather; bitsandbytes'
        // Params4bit its packed storage under FSDP1), the rest in the gathered dtype.
        largest_gathered =
            std::max(largest_gathered, (lp - quantized_lp) * gathered_bytes + quantized_lp * ad.frozen_weight_bits / 8);
        // Adapters (a layer's adapters together bound its largest adapter tensor). LoRA; LLaMA-
        // Adapter's prompts and gates from adapter_start_layer on (v2's biases and scales in every
        // layer); adapters are refused on MoE models, so these are dense layers.
        const double lora = static_cast<double>(count_lora_params(m, ad)) / t;
        const double prompt_layer = static_cast<double>(count_prompt_adapter_layer_params(m, ad, true)) / t;
        const double other_layer = static_cast<double>(count_prompt_adapter_layer_params(m, ad, false)) / t;
        const double adapters = lora * n + prompt_layer * static_cast<double>(prompt_layers) +
                                other_layer * (n - static_cast<double>(prompt_layers));
        total_params += adapters;
        adapter_params += adapters;
        if (adapters > 0) trains(adapters, std::max(lora, prompt_layer));
        // Units (blocks) with a trainable weight: all of them when the base or a per-layer adapter
        // trains, else only LLaMA-Adapter v1's prompt layers (the layers below it train nothing).
        const double trained_units =
            base_trains || lora > 0 || other_layer > 0 ? n : static_cast<double>(prompt_layers);
        unit_weights += lp * trained_units + adapters;
      }
      // Activations. With full recomputation, `recomputed` of the chunk's layers keep only
      // inputs (block: the chunk's first recompute_num_layers layers, one input each; uniform:
      // all, one input per group of recompute_num_layers, a whole group recomputed at a time);
      // the others keep everything.
      const bool full = c.recomputation == recompute::full;
      const std::int64_t group = o.recompute_num_layers;
      const std::int64_t recomputed = !full                                             ? 0
                                      : o.recompute_method == recompute_grouping::block ? std::min(group, sl.layers)
                                                                                        : sl.layers;
      const std::int64_t split_at = sl.first_layer + recomputed;
      const std::int64_t moe_recomputed = m.moe_layers_below(split_at) - m.moe_layers_below(sl.first_layer);
      const std::int64_t moe_kept = moe_count - moe_recomputed;
      // A micro-batch's kept layers of the chunk and what rebuilding its layers holds.
      double kept_stored = 0, rebuilt = 0;
      const bool grouped = full && o.recompute_method == recompute_grouping::uniform;
      for (const auto& [moe, kept, again] :
           {std::tuple{true, moe_kept, moe_recomputed},
            std::tuple{false, sl.layers - recomputed - moe_kept, recomputed - moe_recomputed}}) {
        if (kept > 0) {  // without full recomputation: as c says (nothing, or selectively)
          const auto la = detail::layer_activations(m, full ? keep_all : c, o, moe);
          act_stored += la.stored * static_cast<double>(kept);
          kept_stored += la.stored * static_cast<double>(kept);
          act_working = std::max(act_working, la.working);
        }
        if (again == 0) continue;
        const auto la = detail::layer_activations(m, c, o, moe);
        // uniform: this shape's share of the ceil(recomputed / group) group inputs.
        const double inputs = grouped ? static_cast<double>(detail::ceil_div(recomputed, group)) *
                                            static_cast<double>(again) / static_cast<double>(recomputed)
                                      : static_cast<double>(again);
        act_stored += la.stored * inputs;
        recomputed_input = std::max(recomputed_input, la.stored);
        rebuilt = std::max(rebuilt, la.working * static_cast<double>(grouped ? std::min(group, recomputed) : 1));
      }
      // The backward runs from the chunk's last layer: under block the kept layers (the later ones)
      // have freed their activations before the first recomputed layer is rebuilt, so the rebuild
      // counts only as far as it outgrows them (Megatron-LM's block method checkpoints the first
      // recompute_num_layers layers of a chunk: megatron/core/recompute.py at d98e8a6, formerly
      // transformer_block.py's _checkpointed_forward).
      act_working = std::max(act_working, std::max(0.0, rebuilt - kept_stored));
      // LLaMA-Adapter: each prompt layer's second attention; under v1 the layers below the first
      // prompt get no gradient (their inputs and weights are frozen), so they keep nothing (under
      // uniform grouped recomputation the layers' kept inputs are shared by groups, and removing
      // one input per such layer is an approximation, floored at zero).
      if (ad.prompt()) {
        act_stored += static_cast<double>(prompt_layers) * detail::prompt_attention_bytes(m, c, o);
        const std::int64_t below = std::max<std::int64_t>(0, std::min(end, ad.adapter_start_layer) - sl.first_layer);
        if (ad.llama_adapter == prompt_adapter::v1 && below > 0)
          act_stored =
              std::max(0.0, act_stored - static_cast<double>(below) * detail::layer_activations(m, c, o, false).stored);
      }
      if (sl.embedding) {
        const double emb = embedding_params_per_tp_rank(pc, c.tp);
        total_params += emb;
        if (base_trains) trains(emb, emb), unit_weights += emb;
        if (ad.train_embeddings) total_params += emb, trains(emb, emb), unit_weights += emb;  // the trainable copy
        if (!o.fsdp_embedding_resharded || (m.tied_embeddings && sl.output)) head_weights += emb;
        // The vision tower and projector sit with the embedding (the tower's largest tensor: an
        // MLP matrix; the projector's: at most all of it), split over tp whole (their norms,
        // positions and row biases too: a few MB, unlike the language layers' rule).
        const double vis = static_cast<double>(pc.vision) / t, proj = static_cast<double>(pc.projector) / t;
        total_params += vis + proj;
        if (m.vision.tower_mode == train_mode::trained)
          trains(vis, static_cast<double>(m.vision.hidden) * static_cast<double>(m.vision.ffn) / t),
              unit_weights += vis;
        if (m.vision.projector_mode == train_mode::trained) trains(proj, proj), unit_weights += proj;
      }
      if (sl.output) {
        // The output layer (Megatron-LM keeps a copy of a tied embedding on the last stage) and the
        // final norm (a LayerNorm's bias too).
        const double final_norm = static_cast<double>(detail::norm_params(m.norm, m.hidden));
        const double out_matrix =
            static_cast<double>(m.tied_embeddings ? (c.pp > 1 ? pc.token_embedding : 0) : pc.output) / t;
        const double out = out_matrix + final_norm;
        total_params += out;
        if (base_trains) trains(out, out_matrix), unit_weights += out;
        if (ad.train_embeddings) total_params += out, trains(out, out_matrix), unit_weights += out;
        head_weights += out;
        // The output layer's gradient (the embedding's, tied) as the backward first makes it: FSDP's
        // root unit holds it unsharded, in the compute dtype, until its reduce-scatter at the end.
        if (base_trains || ad.train_embeddings)
          head_grad = (m.tied_embeddings ? static_cast<double>(pc.token_embedding) / t : out_matrix) *
                      (o.accounting == framework::fsdp ? e : per_param.grads);
        // LLaMA-Adapter v2: the output layer's bias and scale and the final norm; the biased
        // logits kept for the scale's gradient.
        const double head_adapter = static_cast<double>(count_prompt_adapter_head_params(m, ad, c.tp)) / t;
        total_params += head_adapter;
        adapter_params += head_adapter;
        if (head_adapter > 0) trains(head_adapter, static_cast<double>(m.padded_vocab(c.tp)) / t);
        // The rank's logits and what the loss holds of them (logit_bytes).
        logit_count = static_cast<double>(o.seq / c.cp * o.lbs) * static_cast<double>(m.padded_vocab(c.tp)) / t;
        logits = logit_count * (logit_bytes + (ad.llama_adapter == prompt_adapter::v2 ? e : 0.0));
      }
    }
    // Quantized weights shard like the others (over dp x cp under ZeRO-3).
    // Expert weights' states shard over the expert data-parallel ranks, the others over dp x cp.
    // The adapters' weights and states as per_adapter says (the weights' dtype unless fp32_adapters).
    const double dense = total_params - quantized - experts - adapter_params;
    const double dense_trainable = trainable - trainable_experts - adapter_params;
    // A trainable state (gradients, optimizer states, the step's temporary) of the three kinds of weight.
    const auto trainable_bytes = [&](double state_bytes::*field) {
      return dense_trainable * per_param.*field + trainable_experts * per_expert.*field +
             adapter_params * per_adapter.*field;
    };
    const double adapter_bytes = adapter_params * per_adapter.params;
    sm.params = dense * per_param.params + experts * per_expert.params + adapter_bytes +
                quantized * ad.frozen_weight_bits / 8 / (zero3 ? static_cast<double>(shards) : 1.0);
    sm.grads = trainable_bytes(&state_bytes::grads);
    // Stepped in the backward: one weight's gradient at a time, the largest at the peak.
    if (o.optimizer_in_backward)
      sm.grads = std::min(
          sm.grads, largest_trainable * (base_trains || ad.train_embeddings ? per_param.grads : per_adapter.grads));
    // FSDP's no_sync: whole units' gradients, unsharded, until the last micro-batch's sync (in
    // the compute dtype, fp32 adapters too: FSDP's mixed precision computes every gradient in it).
    if (o.unsharded_grad_accumulation && o.micro_batches > 1) sm.grads = std::max(sm.grads, unit_weights * e);
    // Offloaded layer inputs: the device keeps the 5 most recent (torchtune's max_fwd_stash_size).
    if (o.offload_activations) act_stored = std::min(act_stored, 5 * recomputed_input);
    sm.optimizer = trainable_bytes(&state_bytes::optimizer);
    // Stored activations: the stage's layers for each in-flight micro-batch (a chunk's share
    // when interleaved: inflight_peak already counts micro-batches of the whole stage).
    const double stored = act_stored * sm.inflight + act_working;
    sm.activations = stored * (1.0 + growth);
    sm.allocator_growth = stored * growth;
    // The logits live from the head's forward to the end of the loss's backward; the layer being
    // recomputed lives only after that (recomputation starts with the last layer's backward), so
    // the stage peaks at the larger of the two, not at their sum.
    const double loss_beyond = std::max(0.0, logits - act_working * (1.0 + growth));
    sm.other += loss_beyond;
    // Gradients the backward creates (see persistent_grads) replace the saved activations and the
    // loss's buffers it frees meanwhile, layer by layer: live memory runs between the two ends,
    // the saved activations and loss at its start and the whole gradients at its end, so the
    // gradients count as far as they outgrow what is freed. The layer being recomputed lives at
    // both ends. Its effect on the public corpus: bench/RESULTS.md, eighteenth session.
    // The output layer's gradient comes first, beside every saved activation, so it counts whole.
    // DDP's buckets (generic with dp x cp > 1) and FSDP without sharded gradients (zero < 2: DDP or
    // replicate) keep every gradient.
    sm.grad_buffers = sm.grads;
    const bool replicated = dp * c.cp > 1 && (o.accounting == framework::generic || c.zero_stage < 2);
    const bool grads_in_backward = !o.persistent_grads && !o.optimizer_in_backward && micro_batches == 1 &&
                                   !replicated &&
                                   (o.accounting == framework::fsdp || o.accounting == framework::generic);
    if (grads_in_backward)
      sm.grads = std::max(head_grad, std::max(0.0, sm.grad_buffers - act_stored * sm.inflight - loss_beyond));
    // ZeRO-3's gathered weights: DeepSpeed's by its prefetch, reuse and persistence rules
    // (memory/deepspeed.hpp), otherwise the running layer and the prefetched next (FSDP's
    // forward and backward prefetch of one module), and under the fsdp accounting the root's
    // embedding and output layer in the compute dtype (see fsdp_embedding_resharded).
    double gathered = zero3 ? 2.0 * largest_gathered : 0.0;
    if (zero3 && o.accounting == framework::fsdp) gathered += head_weights * e;
    if (o.accounting == framework::deepspeed && c.zero_stage > 0) {
      const double persistent = zero3 ? static_cast<double>(sm.layers) *
                                            static_cast<double>(detail::small_layer_weights(
                                                m, o.deepspeed.stage3_param_persistence_threshold)) *
                                            (1.0 - 1.0 / static_cast<double>(shards))
                                      : 0.0;
      const deepspeed_buffer_bytes ds =
          deepspeed_buffers(o.deepspeed, c.zero_stage, largest_layer, sm.layers, persistent, e);
      gathered = ds.gathered;
      sm.other += ds.buckets;
    }
    sm.other += gathered;
    // The fp32 blocks of the construction (4 bytes per weight) hold the live weights, gradients,
    // activations and gathered ZeRO-3 layers; what they do not fill stays reserved (see
    // weights_built_in_fp32; adapters are built in their own dtype).
    if (o.weights_built_in_fp32)
      sm.reserve = std::max(0.0, (sm.params - adapter_bytes) * (4.0 / e - 1.0) - sm.grads - sm.activations - gathered);
    // What the caching allocator holds of the loss beyond its live tensors (the reserved counter):
    // the eager cross entropy frees the 16-bit logits before its backward, whose fp32 tensors that
    // block cannot hold (PyTorch's allocator serves a request from the smallest cached block that
    // fits, CUDACachingAllocator.cpp get_free_block), so its segments hold e bytes a logit beyond
    // the loss's live tensors. They count as far as the loss and that block outgrow the layer
    // recomputed after it (the stage's other peak, which may reuse the loss's blocks). Qwen's
    // autocast path is not derived, and leaves none.
    if (eager_loss && logits_freed && e < 4)
      sm.reserve += std::max(0.0, logits + logit_count * e - act_working * (1.0 + growth)) - loss_beyond;
    // The optimizer step's temporary comes after the backward has freed the activations, the
    // loss's buffers and the gathered weights, with every gradient alive: it raises the live peak
    // by what it outgrows them and the gradients not counted above (the allocator's growth stays
    // the activations' own), and it may take the reserved blocks, which then hold live tensors
    // rather than reserve.
    const double step_temporary = trainable_bytes(&state_bytes::step_temporary);
    const double step_beyond =
        std::max(0.0, step_temporary + sm.grad_buffers - sm.grads - stored - loss_beyond - gathered);
    sm.other += step_beyond;
    sm.reserve = std::max(0.0, sm.reserve - step_beyond);
    // Transformer Engine's fp8 weight caches (an fp8 copy and its transpose of every linear
    // weight) and amax histories (1024 x 5 fp32 values per GEMM): see fp8_training.
    if (o.fp8 == fp8_training::transformer_engine) sm.other += 2.0 * linear_weights + gemms * 1024 * 5 * 4;
    sm.other += static_cast<double>(o.comm_buffer_bytes) + overhead;
    sm.runtime = overhead;
    detail::require(detail::is_finite(sm.total()) && sm.total() < max_memory_estimate_bytes,
                    reason::memory_estimate_exceeds_2_to_the_62_bytes, "memory", [&] {
                      return "stage " + detail::str(st) + " would need " + format_double(sm.total()) +
                             " bytes, past 2^62 (4 EiB); lower lbs, seq, the runtime overhead or the model's sizes";
                    });
    est.stages.push_back(sm);
  }
  return est;
}

// What the device's own counter (nvidia-smi's "used") reads for a stage whose model total is
// `total` (the runtime overhead included) and which needs `need` (stage_memory::need) on a device
// of `capacity` bytes: the total, at most the capacity once the need fits (the allocator gives
// back cached blocks before it fails); with variable_length the capacity once the need fits (see
// there): an upper bound the reading approaches over a long run (the seeds' LLaVA runs read 92-98%
// of it). A stage that does not fit reads its total, what it would take.
constexpr double memory_reading(double total, double need, const memory_options& o, double capacity) {
  if (need > capacity) return total;
  return o.variable_length ? capacity : std::min(total, capacity);
}

// "74.2 / 80.0 GiB, fits, 5.8 GiB headroom" or "82.1 / 80.0 GiB, over by 2.1 GiB".
inline std::string fit_summary(double bytes, std::int64_t capacity) {
  char buf[160];
  const double used = bytes / static_cast<double>(GiB), cap = static_cast<double>(capacity) / static_cast<double>(GiB);
  if (bytes <= static_cast<double>(capacity))
    std::snprintf(buf, sizeof buf, "%.1f / %.1f GiB, fits, %.1f GiB headroom", used, cap, cap - used);
  else
    std::snprintf(buf, sizeof buf, "%.1f / %.1f GiB, over by %.1f GiB", used, cap, used - cap);
  return buf;
}

}  // namespace trainperf

namespace trainperf {

// A stacked bar per pipeline stage (weights, gradients, optimizer, activations, other, reserve, and on
// top the runtime overhead that only nvidia-smi reads) with the device capacity as a dashed line when
// given; the figure over each bar is what the stage needs (stage_memory::need, the top of the
// reserve), the one a fit is judged on against the line. Standalone SVG.
inline std::string render_memory_svg(const memory_estimate& e, std::int64_t capacity_bytes = 0,
                                     const std::string& title = "") {
  const double gib = static_cast<double>(GiB);
  double top = static_cast<double>(capacity_bytes);
  for (const auto& s : e.stages) top = std::max(top, s.total());
  top = top / gib * 1.08;
  const double chart_h = 320, bar_w = 46, gap = 24, left = 60, y0 = 40 + chart_h;
  const double width = left + static_cast<double>(e.stages.size()) * (bar_w + gap) + 170;
  constexpr int kinds = 7;
  const char* names[kinds] = {"weights", "gradients at the peak",    "optimizer", "activations", "other",
                              "reserve", "runtime (nvidia-smi only)"};
  const char* colors[kinds] = {"#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#9c9c9c", "#d4c8a8", "#eeeeee"};
  std::string svg;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" "
                "font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                width, y0 + 40);
  svg += buf;
  const std::string t = detail::xml_escape(title);
  std::snprintf(buf, sizeof buf, "<text x=\"%.0f\" y=\"22\" font-size=\"14\">%s</text>\n", left, t.c_str());
  svg += buf;
  const auto y_of = [&](double g) { return y0 - g / top * chart_h; };
  for (int k = 0; k <= 4; ++k) {  // axis ticks in GiB
    const double g = top / 1.08 * k / 4;
    std::snprintf(
        buf, sizeof buf,
        "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n<text x=\"%.0f\" y=\"%.1f\" "
        "text-anchor=\"end\">%.0f GiB</text>\n",
        left, y_of(g), width - 170, y_of(g), left - 6, y_of(g) + 4, g);
    svg += buf;
  }
  for (std::size_t i = 0; i < e.stages.size(); ++i) {
    const auto& s = e.stages[i];
    const double parts[kinds] = {s.params,  s.grads,  s.optimizer, s.activations, s.other - s.runtime,
                                 s.reserve, s.runtime};
    const double x = left + gap / 2 + static_cast<double>(i) * (bar_w + gap);
    double acc = 0;
    for (int k = 0; k < kinds; ++k) {
      const double lo = acc / gib, hi = (acc + parts[k]) / gib;
      std::snprintf(buf, sizeof buf, "<rect x=\"%.1f\" y=\"%.2f\" width=\"%.0f\" height=\"%.2f\" fill=\"%s\"/>\n", x,
                    y_of(hi), bar_w, y_of(lo) - y_of(hi), colors[k]);
      svg += buf;
      acc += parts[k];
    }
    std::snprintf(buf, sizeof buf,
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.1f</text>\n<text x=\"%.1f\" y=\"%.1f\" "
                  "text-anchor=\"middle\">stage %zu</text>\n",
                  x + bar_w / 2, y_of(acc / gib) - 4, s.need() / gib, x + bar_w / 2, y0 + 16, i);
    svg += buf;
  }
  if (capacity_bytes > 0) {
    const double y = y_of(static_cast<double>(capacity_bytes) / gib);
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"black\" stroke-dasharray=\"6,4\"/>\n"
                  "<text x=\"%.0f\" y=\"%.1f\">capacity %.0f GiB</text>\n",
                  left, y, width - 170, y, left + 4, y - 4, static_cast<double>(capacity_bytes) / gib);
    svg += buf;
  }
  for (int k = 0; k < kinds; ++k) {
    std::snprintf(
        buf, sizeof buf,
        "<rect x=\"%.0f\" y=\"%.0f\" width=\"12\" height=\"12\" fill=\"%s\"/>\n<text x=\"%.0f\" y=\"%.0f\">%s</text>\n",
        width - 150, 50.0 + 18 * k, colors[k], width - 132, 60.0 + 18 * k, names[k]);
    svg += buf;
  }
  std::snprintf(buf, sizeof buf, "<text x=\"%.0f\" y=\"%.0f\">over a bar: GiB it needs</text>\n", width - 150,
                60.0 + 18 * kinds + 6);
  svg += buf;
  svg += "</svg>\n";
  return svg;
}

}  // namespace trainperf
