// The memory model: published model-state and activation figures, the model's own accounting,
// and the accuracy against the seed measurements that holds today (bench/memory_accuracy prints
// the whole table, bench/RESULTS.md records it).
#include <algorithm>
#include <cmath>
#include <string_view>

#include <doctest/doctest.h>

#include <trainperf/trainperf.hpp>

#include "../seed_memory_rows.hpp"

using namespace trainperf;

TEST_CASE("ZeRO paper figure 1: 7.5B parameters on 64 devices, K = 12") {
  // Rajbhandari et al. 2020 (arXiv:1910.02054), figure 1: baseline 120 GB, P_os 31.4 GB,
  // P_os+g 16.6 GB, P_os+g+p 1.9 GB per device (decimal GB).
  CHECK(zero_model_state_bytes(7.5e9, 64, 0) / 1e9 == doctest::Approx(120));
  CHECK(zero_model_state_bytes(7.5e9, 64, 1) / 1e9 == doctest::Approx(31.40625));
  CHECK(zero_model_state_bytes(7.5e9, 64, 2) / 1e9 == doctest::Approx(16.640625));
  CHECK(zero_model_state_bytes(7.5e9, 64, 3) / 1e9 == doctest::Approx(1.875));
}

TEST_CASE("Megatron-LM distributed optimizer: bytes per parameter") {
  // Megatron-LM docs (dist_optimizer.md): fp16 weights + fp16 grads 20 -> 4 + 16/d;
  // bf16 weights + fp32 grads 18 -> 6 + 12/d; fp32 + fp32 16 -> 8 + 8/d.
  for (std::int64_t d : {1, 2, 8, 64}) {
    CAPTURE(d);
    const double dd = static_cast<double>(d);
    const parallel_config plain{}, dist{.distributed_optimizer = true};
    const memory_options bf16{.accounting = framework::megatron}, fp32{.param_dtype = dtype::fp32};
    memory_options fp16_fp16{.param_dtype = dtype::fp16};
    CHECK(per_param_state_bytes(plain, d, bf16).total() == 18);
    CHECK(per_param_state_bytes(dist, d, bf16).total() == doctest::Approx(6 + 12 / dd));
    CHECK(per_param_state_bytes(plain, d, fp32).total() == 16);
    CHECK(per_param_state_bytes(dist, d, fp32).total() == doctest::Approx(8 + 8 / dd));
    // Megatron's fp16 + fp16 row (20) also keeps fp32 copies of the gradients for the
    // optimizer; 16-bit gradients alone are ZeRO's 16 bytes (2 + 2 + 12).
    CHECK(per_param_state_bytes(plain, d, fp16_fp16).total() == 16);
  }
}

TEST_CASE("pure 16-bit training (no master weights): states in the weights' dtype") {
  // Hand count: torch.optim.AdamW creates exp_avg and exp_avg_sq with torch.zeros_like(p)
  // (torch/optim/adamw.py), so a bf16 model trained without a master copy holds 2 (weights)
  // + 2 (grads) + 2 + 2 (the two states) = 8 bytes per parameter; SGD with momentum 6; the
  // states shard over d ranks with ZeRO-1 (2 + 2 + 4/d); fp32 gradients add 2.
  for (std::int64_t d : {1, 4}) {
    CAPTURE(d);
    const double dd = static_cast<double>(d);
    const memory_options pure{.master_weights = false};
    CHECK(per_param_state_bytes({}, d, pure).total() == 8);
    CHECK(per_param_state_bytes({.zero_stage = 1}, d, pure).total() == doctest::Approx(4 + 4 / dd));
    CHECK(per_param_state_bytes({}, d, {.master_weights = false, .optimizer = optimizer_kind::sgd}).total() == 6);
    CHECK(per_param_state_bytes({}, d, {.fp32_grads = true, .master_weights = false}).total() == 10);
    // fp32 weights have no master copy to drop: 4 + 4 + 8 either way.
    CHECK(per_param_state_bytes({}, d, {.param_dtype = dtype::fp32, .master_weights = false}).total() == 16);
  }
}

TEST_CASE("context-parallel ranks share the sharding of the states: dp x cp ranks") {
  // CP ranks hold the same weights; Megatron-LM's distributed optimizer and torchtitan's FSDP2
  // shard over dp x cp. So DP 2 x CP 4 holds the states of DP 8 (and ZeRO-3's weights too).
  const transformer_spec m = get_preset("llama2-7b").spec;
  for (int zero : {1, 2, 3}) {
    CAPTURE(zero);
    const memory_options o{.seq = 4096};
    const auto cp4 = estimate_memory(m, {.cp = 4, .zero_stage = zero}, 8, o).stages[0];
    const auto dp8 = estimate_memory(m, {.zero_stage = zero}, 8, o).stages[0];
    CHECK(cp4.params == doctest::Approx(dp8.params));
    CHECK(cp4.grads == doctest::Approx(dp8.grads));
    CHECK(cp4.optimizer == doctest::Approx(dp8.optimizer));
    CHECK(cp4.optimizer == doctest::Approx(static_cast<double>(count_params(m).total()) * 12 / 8));
  }
}

TEST_CASE("activations per layer reproduce Korthikanti et al. 2022, table 2") {
  // Korthikanti et al. 2022 (arXiv:2205.05198) section 4, per layer, 16-bit, with dropout,
  // MHA and a 4h GELU MLP (a GPT-3-like layer): no parallelism sbh(34 + 5as/h); tensor
  // parallel t: sbh(10 + 24/t + 5as/(ht)); + sequence parallel: sbh(34/t + 5as/(ht));
  // + selective recompute: sbh(34/t); full recompute: 2sbh (per layer, the input).
  const transformer_spec m = get_preset("gpt3-175b").spec;  // h 12288, a 96
  const double s = 2048, b = 1, h = 12288, a = 96;
  memory_options o{.lbs = 1, .seq = 2048, .flash_attention = false, .dropout = true};
  const auto per_layer = [&](parallel_config c) { return detail::layer_activations(m, c, o, false).stored; };
  CHECK(per_layer({}) == doctest::Approx(s * b * h * (34 + 5 * a * s / h)));
  CHECK(per_layer({.tp = 8}) == doctest::Approx(s * b * h * (10 + 24.0 / 8 + 5 * a * s / (h * 8))));
  CHECK(per_layer({.tp = 8, .sequence_parallel = true}) ==
        doctest::Approx(s * b * h * (34.0 / 8 + 5 * a * s / (h * 8))));
  CHECK(per_layer({.tp = 8, .sequence_parallel = true, .recomputation = recompute::selective}) ==
        doctest::Approx(s * b * h * 34.0 / 8));
  CHECK(per_layer({.recomputation = recompute::full}) == doctest::Approx(2 * s * b * h));
}

TEST_CASE("framework::megatron: what Megatron-LM's legacy llama layer keeps, tensor by tensor") {
  // Independent enumeration from FlagScale@26cd664 megatron/model/transformer.py (the code seed
  // 000 ran) for llama2-70b at TP 8 with sequence parallelism and flash attention, bf16, per
  // token of one layer. Split by sequence parallelism (h each): the input norm's input, the QKV
  // projection's input, the second norm's input, fc1's input. Split by TP: Q, and K and V after
  // repeat_interleave to all 64 query heads (q each), flash-attn's output (q) and the
  // 's b h d -> s b (h d)' copy the output projection saves (q); the unfused swiglu keeps fc1's
  // output (2f), silu's output (f) and the product (f). Plus flash-attn's fp32 log-sum-exp.
  const transformer_spec l70 = get_preset("llama2-70b").spec;
  const double h = 8192, q = 8192, f = 28672, a = 64, t = 8, s = 4096;
  const double per_token = 2 * (4 * h + 5 * q + 4 * f) / t + 4 * a / t;
  const parallel_config c{.tp = 8, .sequence_parallel = true};
  const memory_options megatron{.lbs = 1, .seq = 4096, .accounting = framework::megatron};
  CHECK(detail::layer_activations(l70, c, megatron, false).stored == doctest::Approx(s * per_token));
  // The generic accounting keeps K and V at the 8 KV heads, the attention output once and the
  // fused SwiGLU's gate, up and product (3f).
  const double kv = 1024, generic_per_token = 2 * (4 * h + 2 * q + 2 * kv + 3 * f) / t + 4 * a / t;
  CHECK(detail::layer_activations(l70, c, {.lbs = 1, .seq = 4096}, false).stored ==
        doctest::Approx(s * generic_per_token));
}

TEST_CASE("framework::megatron_core: mcore with Transformer Engine, tensor by tensor and state by state") {
  // Independent enumeration for llama2-70b at TP 8 with sequence parallelism, bf16, per token of
  // one layer, from the TE layer spec (megatron/core/models/gpt/gpt_layer_specs.py): split by
  // sequence parallelism (h each), TELayerNormColumnParallelLinear's norm input and normalized
  // output, twice (QKV and fc1); split by TP: Q and K, V at their 8 KV heads (q + 2 kv), the
  // attention output once as TE's cuDNN FusedAttention keeps it in [s, b, h] and a second time
  // under its FlashAttention backend (the contiguous [s, b, h] copy of flash-attn's [b, s, h]
  // output that the output projection saves), the fused bias-SwiGLU's input (2f) and fc2's input
  // (f); plus the fp32 log-sum-exp.
  const transformer_spec l70 = get_preset("llama2-70b").spec;
  const double h = 8192, q = 8192, kv = 1024, f = 28672, a = 64, t = 8, s = 4096;
  const parallel_config c{.tp = 8, .sequence_parallel = true};
  const double cudnn_per_token = 2 * (4 * h + 2 * q + 2 * kv + 3 * f) / t + 4 * a / t;
  const memory_options mcore{.lbs = 1, .seq = 4096, .accounting = framework::megatron_core};
  memory_options mcore_cudnn = mcore;
  mcore_cudnn.cudnn_attention = true;
  CHECK(detail::layer_activations(l70, c, mcore_cudnn, false).stored == doctest::Approx(s * cudnn_per_token));
  CHECK(detail::layer_activations(l70, c, mcore, false).stored == doctest::Approx(s * (cudnn_per_token + 2 * q / t)));
  // The legacy layer repeats K and V to all heads and keeps the unfused SwiGLU's SiLU output too.
  CHECK(detail::layer_activations(l70, c, {.lbs = 1, .seq = 4096, .accounting = framework::megatron}, false).stored >
        detail::layer_activations(l70, c, mcore, false).stored);
  // States with the distributed optimizer over 8 ranks (dist_optimizer.md: 6 + 12/d bytes per
  // parameter): bf16 weights 2, the fp32 main-grad buffer 4 unsharded, 12 / 8 of fp32 master, m, v.
  const parallel_config distopt{.distributed_optimizer = true};
  const state_bytes bf16 = per_param_state_bytes(distopt, 8, mcore);
  CHECK(bf16.params == 2);
  CHECK(bf16.grads == 4);
  CHECK(bf16.optimizer == doctest::Approx(12.0 / 8));
  // With fp16 Megatron-LM accumulates in the weights' dtype unless asked
  // (--accumulate-allreduce-grads-in-fp32 is forced only by --bf16).
  memory_options fp16 = mcore;
  fp16.param_dtype = dtype::fp16;
  CHECK(per_param_state_bytes(distopt, 8, fp16).grads == 2);
  fp16.fp32_grads = true;
  CHECK(per_param_state_bytes(distopt, 8, fp16).grads == 4);
}

TEST_CASE("framework::deepspeed: ZeRO's buckets, prefetch, reuse and persistence (memory/deepspeed.hpp)") {
  // Hand counts with DeepSpeed's defaults (zero/config.py): stage 2 keeps one reduction bucket of
  // 5e8 bf16 elements (overlap_comm off below stage 3), two with overlap_comm: 1e9 and 2e9 bytes.
  const deepspeed_zero_config defaults;
  CHECK(deepspeed_buffers(defaults, 2, 0, 1, 0, 2).buckets == 1e9);
  deepspeed_zero_config overlap = defaults;
  overlap.overlap_comm = deepspeed_zero_config::toggle::on;
  CHECK(deepspeed_buffers(overlap, 2, 0, 1, 0, 2).buckets == 2e9);
  CHECK(deepspeed_buffers(defaults, 0, 0, 1, 0, 2).buckets == 0);
  // Stage 3, llama2-7b (a layer: 4 x 4096^2 + 3 x 4096 x 11008 + 2 x 4096 = 202,383,360 weights),
  // 32 layers: one bucket of 5e8 (not doubled); running layer + 5e7 prefetched = 252,383,360
  // elements, but at the forward/backward turn the last 1 + floor(1e9 / (2 x 202,383,360)) = 3
  // layers stay gathered (607,150,080); plus the norms (2 x 4096 per layer, under the 1e5
  // persistence threshold) whole instead of 1/8 shards: 32 x 8192 x 7/8 = 229,376.
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  CHECK(detail::small_layer_weights(l7, 1e5) == 8192);
  CHECK(detail::small_layer_weights(l7, 4095) == 0);
  const deepspeed_buffer_bytes z3 = deepspeed_buffers(defaults, 3, 202'383'360, 32, 229'376, 2);
  CHECK(z3.buckets == 1e9);
  CHECK(z3.gathered == (607'150'080.0 + 229'376) * 2);
  // A reuse distance under two layers keeps the running layer and the prefetch only.
  deepspeed_zero_config short_reuse = defaults;
  short_reuse.stage3_max_reuse_distance = 1e8;
  CHECK(deepspeed_buffers(short_reuse, 3, 202'383'360, 32, 0, 2).gathered == 252'383'360.0 * 2);
  // The prefetch stops where the live weights would pass stage3_max_live_parameters
  // (partitioned_param_coordinator.py, fetch_sub_module): 2.2e8 live leaves 17,616,640 beside the
  // running layer; under one layer, the running layer alone (it is fetched whatever the budget).
  deepspeed_zero_config few_live = short_reuse;
  few_live.stage3_max_live_parameters = 2.2e8;
  CHECK(deepspeed_buffers(few_live, 3, 202'383'360, 32, 0, 2).gathered == 220'000'000.0 * 2);
  few_live.stage3_max_live_parameters = 1e8;
  CHECK(deepspeed_buffers(few_live, 3, 202'383'360, 32, 0, 2).gathered == 202'383'360.0 * 2);
  // allgather_bucket_size sizes no buffer (stages 1 and 2 gather in place into their flat
  // buffer): the stage-2 bucket stays the default reduce bucket's 5e8 bf16 elements, 1e9 bytes.
  deepspeed_zero_config big_gather = defaults;
  big_gather.allgather_bucket_size = 5e9;
  CHECK(deepspeed_buffers(big_gather, 2, 0, 1, 0, 2).buckets == 1e9);
  // Hugging Face's "auto" for hidden 4096: buckets of 4096^2, prefetch 0.9 x 4096^2, persistence 40960.
  const deepspeed_zero_config hf = deepspeed_zero_config::hf_auto(4096);
  CHECK(hf.reduce_bucket_size == 16'777'216);
  CHECK(hf.stage3_prefetch_bucket_size == doctest::Approx(15'099'494.4));
  CHECK(hf.stage3_param_persistence_threshold == 40960);
  // estimate_memory adds the bucket to the stage's other memory.
  const memory_options ds{.lbs = 1, .seq = 2048, .accounting = framework::deepspeed};
  memory_options no_buckets = ds;
  no_buckets.deepspeed.contiguous_gradients = false;
  CHECK(estimate_memory(l7, {.zero_stage = 2}, 8, ds).stages[0].other -
            estimate_memory(l7, {.zero_stage = 2}, 8, no_buckets).stages[0].other ==
        doctest::Approx(1e9));
}

TEST_CASE("fp8 training: Transformer Engine keeps fp8 GEMM inputs and weight caches; torchao keeps 16-bit") {
  // Independent enumeration for llama2-70b at TP 8 with sequence parallelism, megatron-core with
  // TE's cuDNN attention, per token of one layer under TE's delayed scaling: split by sequence
  // parallelism, the two norms' 16-bit inputs (2h x 2 bytes) and the two fp8 normalized outputs
  // that QKV and fc1 keep (2h x 1); split by TP, in 16 bits Q, K, V (q + 2kv), the core's output
  // (q) and fc1's output (2f), in fp8 the output projection's input (q) and fc2's (f); plus the
  // fp32 log-sum-exp.
  const transformer_spec l70 = get_preset("llama2-70b").spec;
  const double h = 8192, q = 8192, kv = 1024, f = 28672, a = 64, t = 8, s = 4096;
  const parallel_config c{.tp = 8, .sequence_parallel = true};
  memory_options te{.lbs = 1, .seq = 4096, .accounting = framework::megatron_core};
  te.cudnn_attention = true;
  te.fp8 = fp8_training::transformer_engine;
  const double per_token = (2 * h * 2 + 2 * h * 1) / t + ((q + 2 * kv + q + 2 * f) * 2 + (q + f) * 1) / t + 4 * a / t;
  CHECK(detail::layer_activations(l70, c, te, false).stored == doctest::Approx(s * per_token));
  // torchao's float8 linears keep the 16-bit input and weight: the activations of bf16 training.
  memory_options ao = te;
  ao.fp8 = fp8_training::torchao;
  memory_options bf16 = te;
  bf16.fp8 = fp8_training::none;
  CHECK(detail::layer_activations(l70, c, ao, false).stored == detail::layer_activations(l70, c, bf16, false).stored);
  // TE's weight caches: an fp8 copy and its transpose of each linear weight on the rank,
  // (8192 x (8192 + 2048) + 8192^2 + 3 x 8192 x 28672) / 8 = 106,954,752 per layer, x 80 layers
  // x 2 bytes = 17,112,760,320, plus 4 GEMMs x 80 layers of 1024 x 5 fp32 amax values, 6,553,600.
  const parallel_config tp8{.tp = 8, .sequence_parallel = true};
  CHECK(estimate_memory(l70, tp8, 8, te).stages[0].other - estimate_memory(l70, tp8, 8, bf16).stages[0].other ==
        doctest::Approx(17'112'760'320.0 + 6'553'600));
  // torchao with FSDP2's fp8 all-gather: the two gathered llama2-7b layers (202,383,360 weights
  // each) at 1 byte instead of 2.
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  memory_options fsdp{.lbs = 1, .seq = 2048, .accounting = framework::fsdp};
  fsdp.fp8 = fp8_training::torchao;
  memory_options fp8_gather = fsdp;
  fp8_gather.fp8 = fp8_training::torchao_fp8_all_gather;
  CHECK(estimate_memory(l7, {.zero_stage = 3}, 8, fsdp).stages[0].other -
            estimate_memory(l7, {.zero_stage = 3}, 8, fp8_gather).stages[0].other ==
        doctest::Approx(2.0 * 202'383'360));
}

TEST_CASE("FSDP's root keeps the embedding and output layer gathered through the backward") {
  // llama2-7b (vocabulary 32000, hidden 4096) under FSDP over 8 ranks, bf16 compute. The root
  // unit's weights, gathered in bf16 at the peak: the embedding (32000 x 4096), the final norm
  // (4096) and the output layer (32000 x 4096), (2 x 131,072,000 + 4096) x 2 = 524,296,192 bytes
  // beyond the gathered blocks; with the embedding its own unit, resharded after the forward,
  // 131,072,000 x 2 = 262,144,000 fewer. A fused Adam step keeps `other` to the loss's buffers
  // and the gathered weights.
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  memory_options o{.lbs = 1, .seq = 2048, .runtime_overhead_bytes = 0};
  o.accounting = framework::fsdp;
  o.adam_implementation = adam_step::fused;
  const parallel_config z3{.zero_stage = 3};
  const double root = estimate_memory(l7, z3, 8, o).stages[0].other;
  memory_options generic = o;
  generic.accounting = framework::generic;
  CHECK(root - estimate_memory(l7, z3, 8, generic).stages[0].other == doctest::Approx(524'296'192.0));
  memory_options own_unit = o;
  own_unit.fsdp_embedding_resharded = true;
  CHECK(root - estimate_memory(l7, z3, 8, own_unit).stages[0].other == doctest::Approx(262'144'000.0));
  // A tied embedding is the output layer's weight, counted once and gathered for the output's
  // backward either way: (131,072,000 + 4096) x 2 = 262,152,192 bytes.
  transformer_spec tied = l7;
  tied.tied_embeddings = true;
  memory_options tied_generic = generic;
  CHECK(estimate_memory(tied, z3, 8, o).stages[0].other - estimate_memory(tied, z3, 8, tied_generic).stages[0].other ==
        doctest::Approx(262'152'192.0));
  CHECK(estimate_memory(tied, z3, 8, own_unit).stages[0].other ==
        doctest::Approx(estimate_memory(tied, z3, 8, o).stages[0].other));
  // Over two pipeline stages the first keeps the embedding, the last the output layer and norm.
  const parallel_config z3pp{.pp = 2, .zero_stage = 3};
  const memory_estimate staged = estimate_memory(l7, z3pp, 16, o),
                        staged_generic = estimate_memory(l7, z3pp, 16, generic);
  CHECK(staged.stages[0].other - staged_generic.stages[0].other == doctest::Approx(262'144'000.0));
  CHECK(staged.stages[1].other - staged_generic.stages[1].other == doctest::Approx(262'152'192.0));
  // It describes FSDP's wrapping only.
  CHECK_THROWS_WITH_AS(estimate_memory(l7, {}, 8, own_unit), doctest::Contains("set accounting fsdp and zero_stage 3"),
                       config_error);
}

TEST_CASE("hybrid sharding: states shard within groups of shard_dp ranks, replicated across") {
  // FSDP2 over fp32 parameters, llama2-7b (6,738,415,616 weights) on 64 ranks as 8 replicas of 8
  // shards: 16 bytes per parameter / 8 = 13,476,831,232 bytes of states per rank, not / 64.
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  const memory_options fsdp{.lbs = 1, .seq = 2048, .fp32_grads = true, .accounting = framework::fsdp};
  const stage_memory hsdp = estimate_memory(l7, {.zero_stage = 3, .shard_dp = 8}, 64, fsdp).stages[0];
  CHECK(hsdp.params + hsdp.grad_buffers + hsdp.optimizer == doctest::Approx(16.0 * 6'738'415'616 / 8));
  const stage_memory full = estimate_memory(l7, {.zero_stage = 3}, 64, fsdp).stages[0];
  CHECK(full.params + full.grad_buffers + full.optimizer == doctest::Approx(16.0 * 6'738'415'616 / 64));
  CHECK_THROWS_WITH_AS(estimate_memory(l7, {.zero_stage = 3, .shard_dp = 6}, 64, fsdp),
                       doctest::Contains("shard group 6 does not divide data parallel 64"), config_error);
}

TEST_CASE("torchtune's memory options: optimizer in the backward, chunked loss, offloaded activations") {
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  memory_options base{.lbs = 1, .seq = 2048, .runtime_overhead_bytes = 0, .activation_overhead = 0};
  base.adam_implementation = adam_step::fused;  // no step temporary: the loss's buffers alone in `other`
  const stage_memory plain = estimate_memory(l7, {}, 1, base).stages[0];
  // Optimizer in the backward: one gradient at a time; the largest weight is the embedding,
  // 32000 x 4096 = 131,072,000 bf16 gradients (an MLP projection is 4096 x 11008).
  memory_options in_bwd = base;
  in_bwd.optimizer_in_backward = true;
  CHECK(estimate_memory(l7, {}, 1, in_bwd).stages[0].grads == 131'072'000.0 * 2);
  in_bwd.micro_batches = 4;
  CHECK_THROWS_WITH_AS(estimate_memory(l7, {}, 1, in_bwd), doctest::Contains("gradients cannot accumulate"),
                       config_error);
  // The standard loss peaks in its backward at 12 bytes a logit (the saved fp32 log-softmax,
  // nll_loss's fp32 gradient and log_softmax's). Chunked: the 16-bit logits and every chunk's
  // fp32 log-softmax, 2 + 4, 6 bytes less; compiled, one chunk's of 8: 2 + 4/8, 9.5 less.
  memory_options chunked = base;
  chunked.loss = logits_loss::chunked;
  CHECK(plain.other - estimate_memory(l7, {}, 1, chunked).stages[0].other == doctest::Approx(2048.0 * 32000 * 6));
  chunked.loss = logits_loss::chunked_compiled;
  CHECK(plain.other - estimate_memory(l7, {}, 1, chunked).stages[0].other ==
        doctest::Approx(2048.0 * 32000 * (12 - 2 - 4.0 / 8)));
  // Qwen's loss on 16-bit logits: under autocast 2 + 2 + 4 + 4 bytes per logit (the shifted 16-bit
  // copy, the fp32 cast and log-softmax), as many as the standard's 12; without autocast 2 + 2 + 2,
  // 6 fewer.
  memory_options qwen = base;
  qwen.loss = logits_loss::autocast;
  CHECK(estimate_memory(l7, {}, 1, qwen).stages[0].other == doctest::Approx(plain.other));
  qwen.loss = logits_loss::no_upcast;
  CHECK(plain.other - estimate_memory(l7, {}, 1, qwen).stages[0].other == doctest::Approx(2048.0 * 32000 * 6));
  // The up-cast loss compiled whole: the 16-bit logits and their 16-bit gradient, 2 + 2 bytes, 8
  // fewer than the standard 12; Lit-GPT's chunks, which Fabric returns in fp32: the fp32 chunks
  // and each chunk's fp32 log-softmax, 4 + 4 bytes, 4 fewer.
  memory_options compiled = base;
  compiled.loss = logits_loss::compiled;
  CHECK(plain.other - estimate_memory(l7, {}, 1, compiled).stages[0].other == doctest::Approx(2048.0 * 32000 * 8));
  compiled.loss = logits_loss::chunked_fp32_outputs;
  CHECK(plain.other - estimate_memory(l7, {}, 1, compiled).stages[0].other == doctest::Approx(2048.0 * 32000 * 4));
  // flash-attn's fused cross entropy saves the 16-bit logits (and an fp32 log-sum-exp per row,
  // 2048 x 4 bytes) and its backward allocates a 16-bit gradient: 2 + 2 bytes per logit, 8 fewer
  // than the standard 12, and no freed block left reserved (the loss frees nothing before it).
  memory_options fused = base;
  fused.loss = logits_loss::fused;
  const stage_memory fused_stage = estimate_memory(l7, {}, 1, fused).stages[0];
  CHECK(plain.other - fused_stage.other == doctest::Approx(2048.0 * 32000 * 8));
  CHECK(fused_stage.reserve == 0);
  // Offloaded activations under full recomputation: 5 of the 32 layer inputs (2048 x 4096 x 2
  // bytes each) stay on the device.
  const parallel_config full{.recomputation = recompute::full};
  memory_options offload = base;
  offload.offload_activations = true;
  CHECK(estimate_memory(l7, full, 1, base).stages[0].activations -
            estimate_memory(l7, full, 1, offload).stages[0].activations ==
        doctest::Approx(27.0 * 2048 * 4096 * 2));
  CHECK_THROWS_WITH_AS(estimate_memory(l7, {}, 1, offload), doctest::Contains("set full recomputation"), config_error);
  // With only adapters training, the one gradient at a time is an adapter's: a LLaMA-Adapter
  // layer's prompt and gates, 10 x 4096 + 32 = 40,992 bf16 gradients (not zero).
  memory_options adapter_in_bwd = base;
  adapter_in_bwd.optimizer_in_backward = true;
  adapter_in_bwd.adapters.llama_adapter = prompt_adapter::v1;
  CHECK(estimate_memory(l7, {}, 1, adapter_in_bwd).stages[0].grads == 40'992.0 * 2);
}

TEST_CASE("LLaMA-Adapter: Lit-GPT's trainable counts and what a prompt layer keeps") {
  // Lit-GPT's resource tables (tutorials/resource-tables.md, measured at commit 8641822) state
  // the trainable parameters: Llama 2 7B 1,229,760 (adapter) and 4,279,744 (adapter v2),
  // StableLM-Base-Alpha 3B 573,888 and 2,125,248.
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  const transformer_spec stablelm{.layers = 16,
                                  .hidden = 4096,
                                  .heads = 32,
                                  .ffn = 16384,
                                  .vocab = 50688,
                                  .max_seq = 4096,
                                  .mlp = mlp_kind::gelu,
                                  .norm = norm_kind::layernorm,
                                  .linear_bias = true};
  adapter_options v1{.llama_adapter = prompt_adapter::v1};
  adapter_options v2{.llama_adapter = prompt_adapter::v2};
  CHECK(count_prompt_adapter_params(l7, v1) == 1'229'760);
  CHECK(count_prompt_adapter_params(l7, v2) == 4'279'744);
  CHECK(count_prompt_adapter_params(stablelm, v1) == 573'888);
  CHECK(count_prompt_adapter_params(stablelm, v2) == 2'125'248);
  // Activations, hand count for llama2-7b (generic fused kernels, flash attention, bf16), 1024
  // tokens: layers 0 and 1 get no gradient and keep nothing; each of the 30 prompt layers keeps
  // its two norms' inputs (2h), Q, K, V and the attention output (4 x 4096), the SwiGLU's gate
  // and up (2 x 11008), at 2 bytes, the log-sum-exp (32 x 4), and for the prompt attention its
  // output (4096 x 2) and log-sum-exp (32 x 4); the frozen linears keep no inputs.
  const double per_token = (2 * 4096 + 4 * 4096 + 2 * 11008) * 2 + 32 * 4 + 4096 * 2 + 32 * 4;
  memory_options o{.lbs = 1, .seq = 1024, .runtime_overhead_bytes = 0, .activation_overhead = 0};
  o.adapters = v1;
  const stage_memory st = estimate_memory(l7, {}, 1, o).stages[0];
  CHECK(st.activations == doctest::Approx(30.0 * 1024 * per_token));
  CHECK(st.grad_buffers == doctest::Approx(1'229'760.0 * 2));
  o.adapters = v2;
  CHECK(estimate_memory(l7, {}, 1, o).stages[0].grad_buffers == doctest::Approx(4'279'744.0 * 2));
  o.adapters = {.lora_rank = 8, .lora_targets = lora_target::q, .llama_adapter = prompt_adapter::v1};
  CHECK_THROWS_WITH_AS(estimate_memory(l7, {}, 1, o), doctest::Contains("give one kind of adapter"), config_error);
}

TEST_CASE("framework::paddle: PaddleNLP's O2 states, sharding stages as ZeRO stages") {
  // PaddleNLP's Trainer (amp_master_grad off): 16-bit weights (2) and gradients (2), fp32 master
  // weights and Adam m, v (12), the last sharded by sharding stage 1 over 8 ranks, the gradients
  // too by stage 2: 2 + 2 + 12 / 8 and 2 + 2 / 8 + 12 / 8 bytes per parameter.
  const memory_options paddle{.param_dtype = dtype::fp16, .accounting = framework::paddle};
  CHECK(per_param_state_bytes({.zero_stage = 1}, 8, paddle).total() == doctest::Approx(2 + 2 + 12.0 / 8));
  CHECK(per_param_state_bytes({.zero_stage = 2}, 8, paddle).total() == doctest::Approx(2 + 2.0 / 8 + 12.0 / 8));
  // Stage 3 shards the 16-bit weights as well: (2 + 2 + 12) / 8.
  CHECK(per_param_state_bytes({.zero_stage = 3}, 8, paddle).total() == doctest::Approx(16.0 / 8));
}

TEST_CASE("every weight on some stage, a tied embedding's copy on the last (Megatron-LM)") {
  // GPT-2 124M (124,439,808 weights, Radford et al. 2019; tied, learned positions, LayerNorm with
  // biases), bf16 weights at 2 bytes: one stage holds them all; on pp 2 the last stage also keeps
  // a copy of the 50257 x 768 = 38,597,376-weight token embedding for its output layer, as
  // Megatron-LM does with tied embeddings and pipelining (its embedding group all-reduces the two).
  const transformer_spec g = get_preset("gpt2-124m").spec;
  memory_options o{.lbs = 1, .seq = 1024, .runtime_overhead_bytes = 0, .activation_overhead = 0};
  CHECK(estimate_memory(g, {}, 1, o).stages[0].params == 124'439'808.0 * 2);
  const memory_estimate two = estimate_memory(g, {.pp = 2}, 2, o);
  CHECK(two.stages[0].params + two.stages[1].params == (124'439'808.0 + 38'597'376) * 2);
}

TEST_CASE(
    "tensor parallelism splits the matrices, not the norms or row-parallel biases; Megatron pads the vocabulary") {
  // GPT-2 124M on tp 2 under framework::megatron, by hand (Megatron-LM: ColumnParallelLinear splits
  // its weight and bias, RowParallelLinear its weight but adds its whole bias after the
  // all-reduce; LayerNorms and learned positions are whole; VocabParallelEmbedding splits the
  // vocabulary, padded to a multiple of 128 x tp = 256 by default: 50257 -> 50432).
  // A layer: attention 4 x 768^2 + QKV biases 3 x 768, MLP 2 x 768 x 3072 + fc1 bias 3072 split
  // (7,083,264 / 2); two LayerNorms 2 x 2 x 768 and the two row-parallel biases 2 x 768 whole (4,608).
  const double layer = 7'083'264.0 / 2 + 4'608;
  const double embedding = 50'432.0 * 768 / 2 + 1024.0 * 768, final_norm = 2 * 768;
  const transformer_spec g = get_preset("gpt2-124m").spec;
  memory_options o{.lbs = 1, .seq = 1024, .accounting = framework::megatron};
  o.runtime_overhead_bytes = 0, o.activation_overhead = 0;
  CHECK(estimate_memory(g, {.tp = 2}, 2, o).stages[0].params == 2 * (12 * layer + embedding + final_norm));
  // Padded as the framework stores it; given its own padding rule, the spec keeps it.
  CHECK(as_stored_by(g, framework::megatron_core).padded_vocab(2) == 50'432);
  CHECK(as_stored_by(g, framework::fsdp).padded_vocab(2) == 50'257);
  transformer_spec own = g;
  own.padding = vocab_padding::megatron, own.pad_multiple = 64;
  CHECK(as_stored_by(own, framework::megatron).padded_vocab(2) == 50'304);
}

TEST_CASE("framework::deepspeed: model states as DeepSpeed's own estimator counts them") {
  // deepspeed/runtime/zero/stage_1_and_2.py estimate_zero2_model_states_mem_needs (no offload):
  // 2 bytes per parameter plus 18 per parameter over the ranks: the 16-bit weights whole, and
  // over the ranks the 16-bit gradient partition (2), its fp32 copy for the step (4), the fp32
  // master and Adam m and v (12). ZeRO-1 keeps the 16-bit gradients whole: 4 + 16 / d.
  const memory_options ds{.param_dtype = dtype::bf16, .accounting = framework::deepspeed};
  CHECK(per_param_state_bytes({.zero_stage = 2}, 8, ds).total() == doctest::Approx(2 + 18.0 / 8));
  CHECK(per_param_state_bytes({.zero_stage = 1}, 8, ds).total() == doctest::Approx(4 + 16.0 / 8));
}

TEST_CASE("interleaved pipeline: the first stage keeps p + (p - 1) / v stages' worth of micro-batches") {
  // Narayanan et al. 2021 (SC'21), section 2.2.2, and Megatron-LM's theoretical_memory_usage: the
  // first stage of an interleaved 1F1B schedule holds activations for p (1 + (p - 1) / (p v))
  // micro-batches of its layers. 16 layers on pp 4: 4 a stage; with full recomputation each layer
  // keeps its bf16 input, s x b x h x 2 = 2048 x 4096 x 2 bytes. Non-interleaved: 4 in flight x 4
  // layers = 16 inputs; vpp 2: (4 + 3 / 2) x 4 = 22, so 6 inputs more (the working layer and the
  // embedding are the same in both).
  transformer_spec m = get_preset("llama2-7b").spec;
  m.layers = 16;
  const memory_options o{
      .lbs = 1, .seq = 2048, .micro_batches = 8, .runtime_overhead_bytes = 0, .activation_overhead = 0};
  const stage_memory flat = estimate_memory(m, {.pp = 4, .recomputation = recompute::full}, 4, o).stages[0];
  const stage_memory inter = estimate_memory(m, {.pp = 4, .vpp = 2, .recomputation = recompute::full}, 4, o).stages[0];
  CHECK(inter.activations - flat.activations == doctest::Approx(6.0 * 2048 * 4096 * 2));
}

TEST_CASE("pipeline stages hold their in-flight micro-batches; ZeRO shards what it says") {
  const transformer_spec l70 = get_preset("llama2-70b").spec;
  const memory_options o{
      .lbs = 1, .seq = 4096, .micro_batches = 44, .runtime_overhead_bytes = 0, .activation_overhead = 0};
  const memory_estimate e = estimate_memory(l70, {.tp = 8, .pp = 4, .sequence_parallel = true}, 32, o);
  REQUIRE(e.stages.size() == 4);
  // 1F1B: stage s holds pp - s micro-batches of its 20 layers (schedule.hpp).
  CHECK(e.stages[0].inflight == 4);
  CHECK(e.stages[3].inflight == 1);
  CHECK(e.stages[0].activations == doctest::Approx(4 * e.stages[3].activations));
  CHECK(e.stages[0].total() > e.stages[1].total());
  // The last stage carries the output layer and the logits.
  CHECK(e.stages[3].other > e.stages[1].other);
  // ZeRO over 8 ranks: stage 1 cuts the optimizer 8-fold, stage 2 the gradients, 3 the weights.
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  const memory_options p{.lbs = 1, .seq = 2048, .runtime_overhead_bytes = 0, .activation_overhead = 0};
  const stage_memory z0 = estimate_memory(l7, {}, 8, p).stages[0],
                     z1 = estimate_memory(l7, {.zero_stage = 1}, 8, p).stages[0];
  const stage_memory z2 = estimate_memory(l7, {.zero_stage = 2}, 8, p).stages[0],
                     z3 = estimate_memory(l7, {.zero_stage = 3}, 8, p).stages[0];
  CHECK(z1.optimizer == doctest::Approx(z0.optimizer / 8));
  CHECK(z2.grads == doctest::Approx(z0.grads / 8));
  CHECK(z3.params == doctest::Approx(z0.params / 8));
  CHECK(z0.params == doctest::Approx(2.0 * 6'738'415'616));  // bf16, one replica
  // Frozen parts carry no gradients or optimizer states (LLaVA pretraining).
  transformer_spec pre = get_preset("llava1.5-7b").spec;
  pre.llm_mode = train_mode::frozen;
  const stage_memory lv = estimate_memory(pre, {}, 1, p).stages[0];
  CHECK(lv.grad_buffers == doctest::Approx(2.0 * 20'979'712));
}

TEST_CASE("the logits and a recomputed layer are never alive together") {
  // llama2-7b, seq 4096, one sequence, bf16, generic accounting, no overhead constants.
  // Logits by hand: 4096 tokens x 32000 x 12 bytes, the standard loss's backward (the saved fp32
  // log-softmax, nll_loss's fp32 gradient and log_softmax's; the 16-bit logits freed by then).
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  memory_options o{.lbs = 1, .seq = 4096, .runtime_overhead_bytes = 0, .activation_overhead = 0};
  o.adam_implementation = adam_step::fused;  // no step temporary: the loss's buffers alone in `other`
  const double logits = 4096.0 * 32000 * 12, h = 4096;
  const stage_memory none = estimate_memory(l7, {}, 1, o).stages[0];
  CHECK(none.other == doctest::Approx(logits));  // on top of every stored activation
  // Full recomputation keeps the 32 layer inputs (4096 x h x 2 bytes each) and rebuilds one
  // layer at a time, whose activations are what each of the 32 layers stores without it.
  const double layer = none.activations / 32;
  const stage_memory full = estimate_memory(l7, {.recomputation = recompute::full}, 1, o).stages[0];
  CHECK(full.activations == doctest::Approx(32 * 4096 * h * 2 + layer));
  CHECK(full.other == doctest::Approx(std::max(0.0, logits - layer)));
}

TEST_CASE("fit summaries and bad input") {
  CHECK(fit_summary(74.2 * GiB, 80 * GiB) == "74.2 / 80.0 GiB, fits, 5.8 GiB headroom");
  CHECK(fit_summary(83.1 * GiB, 80 * GiB) == "83.1 / 80.0 GiB, over by 3.1 GiB");
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  CHECK_THROWS_WITH_AS(estimate_memory(l7, {}, 1, {.seq = 0}), doctest::Contains("needs the sequence length"),
                       config_error);
  CHECK_THROWS_WITH_AS(estimate_memory(l7, {.tp = 3}, 3, {.seq = 4096}),
                       doctest::Contains("heads 32 are not divisible by tp 3"), config_error);
  CHECK_THROWS_WITH_AS(estimate_memory(l7, {}, 1, {.lbs = std::int64_t{1} << 40, .seq = 4096}),
                       "lbs 1099511627776 exceeds the largest supported size 2^31 = 2147483648", config_error);
}

TEST_CASE("a step of 2^40 micro-batches: the in-flight peaks of 2 x pp, not a listing of them all") {
  // Under 1F1B the peak stops growing at pp micro-batches (stage s holds pp - s), so a huge
  // accumulation count must give the same memory as 2 x pp and answer at once.
  const transformer_spec l70 = get_preset("llama2-70b").spec;
  const parallel_config c{.tp = 8, .pp = 4, .sequence_parallel = true};
  const memory_options few{.lbs = 1, .seq = 4096, .micro_batches = 8};
  memory_options huge = few;
  huge.micro_batches = std::int64_t{1} << 40;
  const memory_estimate a = estimate_memory(l70, c, 32, few), b = estimate_memory(l70, c, 32, huge);
  for (std::size_t s = 0; s < 4; ++s) {
    CHECK(b.stages[s].inflight == 4.0 - static_cast<double>(s));
    CHECK(b.stages[s].total() == a.stages[s].total());
  }
}

TEST_CASE("seed measurements: every row within 15%, mean error under 8%") {
  // Expected values: the measured device memory of the seed reports (nvidia-smi's "used", GiB),
  // with each run's settings from FlagPerf's case configs (tests/seed_memory_rows.hpp). These
  // are the memory issue's targets; bench/memory_accuracy prints the whole table.
  double sum = 0;
  int rows = 0;
  std::vector<double> pp4_67b, pp4_13b;
  for (const seeds::memory_row& r : seeds::memory_rows()) {
    const memory_estimate e = estimate_memory(r.model, r.parallel, r.world, r.options);
    const double need = seeds::row_need(r, e);
    const double predicted = memory_reading(need, need, r.options, r.capacity_gib * GiB) / static_cast<double>(GiB);
    const double error = (predicted - r.measured_gib) / r.measured_gib;
    const std::string_view name = r.name;
    CAPTURE(name);
    CAPTURE(r.stage);
    CAPTURE(predicted);
    CAPTURE(r.measured_gib);
    CHECK(std::fabs(error) <= 0.15);
    sum += std::fabs(error);
    ++rows;
    if (name == "004 gpt3-6.7b TP2PP4SH1SP1 stage") pp4_67b.push_back(predicted);
    if (name == "004 gpt3-13b TP2PP4SH1SP1 stage") pp4_13b.push_back(predicted);
  }
  CHECK(rows == 22);
  CHECK(sum / rows < 0.08);
  // Seed 004's 6.7B PP4 stages measure 46.77 > 36.59 > 30.09 > 27.78 GiB: the first stage holds
  // the most in-flight micro-batches (1F1B). The predicted stages keep that order.
  REQUIRE(pp4_67b.size() == 4);
  CHECK(std::is_sorted(pp4_67b.rbegin(), pp4_67b.rend()));
  CHECK(pp4_67b[0] > pp4_67b[1]);
  CHECK(pp4_67b[2] > pp4_67b[3]);
  // The 13B PP4 figures by stage (35.84, 34.71, 32.80, 32.04) put stage 0 first: so does the
  // model. The full order is NOT met (the model puts stage 3 second, above stage 2 by the tied
  // embedding copy's states; bench/RESULTS.md explains why) and bench/memory_accuracy reports it.
  REQUIRE(pp4_13b.size() == 4);
  CHECK(*std::max_element(pp4_13b.begin(), pp4_13b.end()) == pp4_13b[0]);
}

TEST_CASE("weights built in fp32 and cast in place leave the fp32 blocks reserved") {
  // Independent statement of the rule (memory_options::weights_built_in_fp32): the stage holds
  // at least 4 bytes per weight plus its optimizer states and other buffers; gradients and
  // activations that fit in the freed halves add nothing.
  const transformer_spec g13 = get_preset("gpt3-13b").spec;
  memory_options o{.lbs = 2, .seq = 2048, .param_dtype = dtype::fp16, .runtime_overhead_bytes = 0};
  o.adam_implementation = adam_step::fused;  // no step temporary (it may take the reserve: next test)
  const parallel_config sh2{.zero_stage = 2, .recomputation = recompute::full};
  const stage_memory plain = estimate_memory(g13, sh2, 8, o).stages[0];
  o.weights_built_in_fp32 = true;
  const stage_memory built = estimate_memory(g13, sh2, 8, o).stages[0];
  const double weights = plain.params / 2;  // fp16
  // plain.reserve is the loss's: the freed fp16 logits' block, beside the construction's blocks
  // (see "the logits at the loss"), 2 x 2048 x GPT-3's vocabulary x 2 bytes.
  CHECK(plain.reserve == doctest::Approx(2 * 2048 * static_cast<double>(g13.padded_vocab()) * 2));
  CHECK(built.total() ==
        doctest::Approx(std::max(plain.total() - plain.reserve, 4 * weights + plain.optimizer + plain.other) +
                        plain.reserve));
  CHECK(built.reserve > 15.0 * GiB);  // 13B: 48 GiB of fp32 weights hold 24 + 3 + ~2.6 GiB
  // Large activations fill the freed halves: no reserve (6.7B without recompute at 4 x 2048).
  const stage_memory wide =
      estimate_memory(get_preset("gpt3-6.7b").spec, {.zero_stage = 2}, 8,
                      {.lbs = 4, .seq = 2048, .param_dtype = dtype::fp16, .weights_built_in_fp32 = true})
          .stages[0];
  const double vocab = static_cast<double>(g13.padded_vocab());  // GPT-3's, as 6.7B's
  CHECK(wide.reserve == doctest::Approx(4 * 2048 * vocab * 2));  // the loss's logits block alone
  // ZeRO-3: the rank builds and keeps its shard; the shard's fp32 blocks (4 bytes per weight of
  // the shard) hold its fp16 weights and fp16 gradient shard (2 + 2 bytes): nothing of them
  // reserved, only the loss's logits block.
  const parallel_config sh3{.zero_stage = 3, .recomputation = recompute::full};
  CHECK(estimate_memory(g13, sh3, 8, o).stages[0].reserve == doctest::Approx(2 * 2048 * vocab * 2));
  // fp32 training casts nothing: no reserve, with or without ZeRO-3.
  o.param_dtype = dtype::fp32;
  CHECK(estimate_memory(g13, sh2, 8, o).stages[0].reserve == 0.0);
  CHECK(estimate_memory(g13, sh3, 8, o).stages[0].reserve == 0.0);
}

TEST_CASE("what a stage needs: the reserved counter, without the runtime overhead") {
  // llama2-7b at seq 2048 with the default runtime overhead, 6.2 GiB: the need is the total less
  // those 6.2 GiB, and the reserved counter's reading.
  const memory_estimate e = estimate_memory(get_preset("llama2-7b").spec, {}, 1, {.seq = 2048});
  const stage_memory& s = e.stages[0];
  CHECK(s.total() - s.need() == doctest::Approx(6.2 * GiB));
  CHECK(s.need() == s.reading(memory_counter::reserved));
  CHECK(e.max_need() == s.need());
}

TEST_CASE("variable-length batches: the reading climbs to the capacity") {
  memory_options o{.seq = 2048};
  CHECK(memory_reading(50.0 * GiB, 50.0 * GiB, o, 80.0 * GiB) == 50.0 * GiB);
  o.variable_length = true;
  CHECK(memory_reading(50.0 * GiB, 50.0 * GiB, o, 80.0 * GiB) == 80.0 * GiB);
  CHECK(memory_reading(90.0 * GiB, 90.0 * GiB, o, 80.0 * GiB) == 90.0 * GiB);  // does not fit: its total
  // A total past the capacity whose need fits (the runtime overhead's cached blocks given back):
  // the capacity, with or without varying lengths.
  CHECK(memory_reading(86.0 * GiB, 79.0 * GiB, o, 80.0 * GiB) == 80.0 * GiB);
  o.variable_length = false;
  CHECK(memory_reading(86.0 * GiB, 79.0 * GiB, o, 80.0 * GiB) == 80.0 * GiB);
}

TEST_CASE("LoRA trainable parameters: Lit-GPT's resource tables") {
  // Lit-GPT tutorials/resource-tables.md@26857050 (lines 41-65), LoRA r = 8 on the query and
  // value projections (finetune/lora.py defaults): "trainable params" per model.
  const adapter_options qv{.lora_rank = 8, .lora_targets = lora_target::q | lora_target::v};
  const auto lora = [&](transformer_spec m) { return count_lora_params(m, qv) * m.layers; };
  transformer_spec phi{.layers = 24, .hidden = 2048, .heads = 32, .ffn = 8192, .vocab = 51200};
  phi.mlp = mlp_kind::gelu;
  CHECK(lora(phi) == 1'572'864);
  CHECK(lora({.layers = 16, .hidden = 4096, .heads = 32, .ffn = 16384, .vocab = 50688}) == 2'097'152);  // StableLM 3B
  CHECK(lora(get_preset("llama2-7b").spec) == 4'194'304);
  CHECK(lora(get_preset("llama2-13b").spec) == 6'553'600);
  // Falcon 40B: 128 query heads of 64 in 8 groups (kv 512).
  CHECK(lora({.layers = 60, .hidden = 8192, .heads = 128, .kv_heads = 8, .ffn = 32768, .vocab = 65024}) == 12'042'240);
  // A fused QKV adapter has one A for the shared input: r (h + q + 2kv) against r (3h + q + 2kv).
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  CHECK(count_lora_params(l7, {.lora_rank = 8, .lora_targets = lora_target::qkv}) == 8 * (4096 + 3 * 4096));
  CHECK(count_lora_params(l7, {.lora_rank = 8, .lora_targets = lora_target::q | lora_target::k | lora_target::v}) ==
        8 * (3 * 4096 + 3 * 4096));
  // All seven projections of a SwiGLU layer: q, k, v, o (h -> h each) and gate, up, down (h <-> f).
  CHECK(count_lora_params(l7, {.lora_rank = 64, .lora_targets = lora_target::all_linear}) ==
        64 * (4 * 2 * 4096 + 3 * (4096 + 11008)));
}

TEST_CASE("quantized frozen weights: the formats' bits per weight") {
  // QLoRA (arXiv:2305.14314) section 3: NF4 with fp32 absmax per 64 weights costs 32/64 = 0.5
  // bits more; double quantization 8/64 + 32/(64 x 256) = 0.127.
  CHECK(*quantized_weight_bits("nf4") == 4.5);
  CHECK(*quantized_weight_bits("nf4-dq") == doctest::Approx(4.127).epsilon(1e-4));
  CHECK(!quantized_weight_bits("nf3"));
  CHECK(*parse_lora_targets("q,v") == (lora_target::q | lora_target::v));
  CHECK(*parse_lora_targets("all-linear") == lora_target::all_linear);
  std::string bad;
  CHECK(!parse_lora_targets("q,query", &bad));
  CHECK(bad == "query");
}

TEST_CASE("LoRA on a frozen base: states of the adapters only, activations without frozen linears' inputs") {
  // Hand count for llama2-7b, pure bf16 (no master weights), LoRA r = 8 on q and v without
  // dropout, one sequence of 2048 tokens, no recomputation, flash attention.
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  const double h = 4096, f = 11008, a = 32, s = 2048, layers = 32, r = 8;
  memory_options o{
      .lbs = 1, .seq = 2048, .master_weights = false, .runtime_overhead_bytes = 0, .activation_overhead = 0};
  o.adapters = {.lora_rank = 8, .lora_targets = lora_target::q | lora_target::v};
  const stage_memory st = estimate_memory(l7, {}, 1, o).stages[0];
  const double base = static_cast<double>(count_params(l7).total()), lora = 4'194'304;
  CHECK(st.params == doctest::Approx(2 * (base + lora)));
  CHECK(st.grad_buffers == doctest::Approx(2 * lora));
  CHECK(st.optimizer == doctest::Approx(4 * lora));  // AdamW's m and v in bf16
  // Per token and layer, bf16: the two norm inputs (2h) and the QKV input (h, kept for the q and
  // v adapters' A), Q, K, V and flash attention's output (4h), SwiGLU's gate and up (2f), the
  // adapters' A outputs (2r); flash's fp32 log-sum-exp (4a bytes). The MLP-up and down
  // projections' inputs are not kept: those weights are frozen.
  const double per_token = 2 * (3 * h + 4 * h + 2 * f + 2 * r) + 4 * a;
  CHECK(detail::layer_activations(l7, {}, o, false).stored == doctest::Approx(s * per_token));
  CHECK(st.activations == doctest::Approx(layers * s * per_token));
  // With dropout the adapters keep their dropped-out inputs and masks (h (2 + 1) bytes each)
  // and the QKV input itself no longer.
  o.adapters.lora_dropout = true;
  CHECK(detail::layer_activations(l7, {}, o, false).stored == doctest::Approx(s * (per_token - 2 * h + 2 * 3 * h)));
  // Full training keeps all three linear inputs (and the down projection's, f) and trains all.
  o.adapters = {};
  CHECK(detail::layer_activations(l7, {}, o, false).stored ==
        doctest::Approx(s * (2 * (4 * h + 4 * h + 3 * f) + 4 * a)));
}

TEST_CASE("QLoRA: the blocks' linear weights at 4.127 bits, the rest in bf16") {
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  memory_options o{.lbs = 1, .seq = 512, .master_weights = false, .runtime_overhead_bytes = 0};
  o.adapters = {.lora_rank = 8,
                .lora_targets = lora_target::q | lora_target::v,
                .frozen_weight_bits = *quantized_weight_bits("nf4-dq")};
  const param_counts pc = count_params(l7);
  const double linears = static_cast<double>(pc.attention + pc.mlp);          // llama has no biases
  const double bf16 = static_cast<double>(pc.total()) - linears + 4'194'304;  // embeddings, norms, output, LoRA
  CHECK(estimate_memory(l7, {}, 1, o).stages[0].params ==
        doctest::Approx(linears * 4.127 / 8 + 2 * bf16).epsilon(1e-4));
  // Quantized weights cannot train: refused with the fix.
  o.adapters.lora_rank = 0;
  CHECK_THROWS_WITH_AS(estimate_memory(l7, {}, 1, o), doctest::Contains("quantized weights stay frozen"), config_error);
  o.adapters = {.lora_rank = 8};
  CHECK_THROWS_WITH_AS(estimate_memory(l7, {}, 1, o), doctest::Contains("with no targets"), config_error);
  // Sharded over 8 FSDP ranks, the base's blocks are gathered as stored (packed data and scales):
  // a layer's linear weights (4 x 4096^2 + 3 x 4096 x 11008 = 202,375,168) at 4.5 bits under NF4
  // without double quantization (4 + 32/64) instead of 2 bytes; the running and the prefetched
  // layer, so the gathered weights shrink by 2 x 202,375,168 x (2 - 4.5 / 8) bytes.
  o.adapters = {.lora_rank = 8, .lora_targets = lora_target::q | lora_target::v};
  o.accounting = framework::fsdp;
  const parallel_config fsdp{.zero_stage = 3};
  const double bf16_base = estimate_memory(l7, fsdp, 8, o).stages[0].other;
  o.adapters.frozen_weight_bits = *quantized_weight_bits("nf4");
  CHECK(bf16_base - estimate_memory(l7, fsdp, 8, o).stages[0].other ==
        doctest::Approx(2 * 202'375'168.0 * (2 - 4.5 / 8)));
}

TEST_CASE("what each counter reads: live tensors, the allocator's reserve, the device's own counter") {
  // The same estimate with both constants at 0 is the live tensors; the activation overhead adds
  // to reserved (the allocator's growth), the runtime overhead only to the device's counter.
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  memory_options o{.lbs = 1, .seq = 4096, .runtime_overhead_bytes = 0, .activation_overhead = 0};
  const stage_memory bare = estimate_memory(l7, {}, 1, o).stages[0];
  o.runtime_overhead_bytes = 3.0 * GiB;
  o.activation_overhead = 0.25;
  const stage_memory st = estimate_memory(l7, {}, 1, o).stages[0];
  // (No reserve: the foreach Adam step's temporary, as large as v, 4 x 6.74e9 bytes, outgrows the
  // backward's tensors and fills the loss's freed logits block.)
  CHECK(bare.reserve == 0);
  CHECK(st.reading(memory_counter::allocated) == doctest::Approx(bare.total()));
  CHECK(st.reading(memory_counter::reserved) == doctest::Approx(bare.total() + 0.25 * bare.activations));
  CHECK(st.reading(memory_counter::device_used) == doctest::Approx(bare.total() + 0.25 * bare.activations + 3.0 * GiB));
  CHECK(st.reading(memory_counter::device_used) == st.total());
}

TEST_CASE("torchtitan's op-level selective checkpointing: every other matmul's output") {
  // Hand count from torchtitan's policy (torchtitan/distributed/activation_checkpoint.py: save
  // mm, SDPA and reduce-scatter outputs except every second mm, counted per block) on its Llama
  // block, whose matmuls run wq, wk, wv, wo, w1, w3, w2: saved wq (q), wv (kv), w1 (f), w2 (h),
  // SDPA's output (q) and fp32 log-sum-exp (4a bytes), and the block's input (h). Llama 3 8B,
  // bf16, 8192 tokens: 2 (2h + 2q + kv + f) + 4a bytes per token.
  const transformer_spec l8 = get_preset("llama3-8b").spec;
  const double h = 4096, q = 4096, kv = 1024, f = 14336, a = 32, s = 8192;
  memory_options o{.lbs = 1, .seq = 8192, .selective = selective_policy::every_other_matmul};
  const auto la = detail::layer_activations(l8, {.recomputation = recompute::selective}, o, false);
  CHECK(la.stored == doctest::Approx(s * (2 * (2 * h + 2 * q + kv + f) + 4 * a)));
  // The rest of the layer is recomputed one layer at a time: together they are the whole layer.
  const auto none = detail::layer_activations(l8, {}, o, false);
  CHECK(la.stored + la.working == doctest::Approx(none.stored));
  // Megatron's selective recomputation keeps more with flash attention (only the core, nothing
  // with flash, is recomputed): the policies differ.
  o.selective = selective_policy::attention_core;
  CHECK(detail::layer_activations(l8, {.recomputation = recompute::selective}, o, false).stored > la.stored * 1.5);
  // With the attention kernel off the save list (cuDNN's on B200 before torchtitan #2095) its
  // output and log-sum-exp are recomputed: 2q + 4a bytes a token fewer, the layer whole again.
  o.selective = selective_policy::every_other_matmul_and_attention;
  const auto no_attention = detail::layer_activations(l8, {.recomputation = recompute::selective}, o, false);
  CHECK(la.stored - no_attention.stored == doctest::Approx(s * (2 * q + 4 * a)));
  CHECK(no_attention.stored + no_attention.working == doctest::Approx(none.stored));
}

TEST_CASE("partial recomputation: Megatron-LM's uniform and block methods") {
  // Megatron-LM's --recompute-method (megatron/training/arguments.py): uniform divides the
  // layers into groups of --recompute-num-layers and keeps each group's input, recomputing a
  // group at a time; block recomputes the first --recompute-num-layers layers of each pipeline
  // stage and keeps everything of the rest. Hand count for llama2-7b (32 layers), one sequence of
  // 4096 tokens: a layer's input is 4096 x 4096 x 2 bytes; `all` is what a layer keeps without
  // recomputation.
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  memory_options o{.lbs = 1, .seq = 4096, .runtime_overhead_bytes = 0, .activation_overhead = 0};
  const double input = 4096.0 * 4096 * 2;
  const double all = detail::layer_activations(l7, {}, o, false).stored;
  const auto activations = [&](recompute_grouping how, std::int64_t n) {
    memory_options x = o;
    x.recompute_method = how;
    x.recompute_num_layers = n;
    return estimate_memory(l7, {.recomputation = recompute::full}, 1, x).stages[0].activations;
  };
  CHECK(activations(recompute_grouping::uniform, 1) == doctest::Approx(32 * input + all));
  CHECK(activations(recompute_grouping::uniform, 4) == doctest::Approx(8 * input + 4 * all));
  CHECK(activations(recompute_grouping::uniform, 5) == doctest::Approx(7 * input + 5 * all));  // ceil(32 / 5) groups
  // block: the last 28 layers keep everything and free it in the backward before the first four
  // are rebuilt (the backward runs from the last layer), so the rebuilt layer fits in what they
  // freed: 4 inputs and 28 layers at the backward's start are the peak.
  CHECK(activations(recompute_grouping::block, 4) == doctest::Approx(4 * input + 28 * all));
  CHECK(activations(recompute_grouping::block, 32) == doctest::Approx(activations(recompute_grouping::uniform, 1)));
  // Per pipeline stage: with 4 stages of 8 layers, block 2 recomputes 2 of each stage's 8.
  const auto st = estimate_memory(l7, {.pp = 4, .recomputation = recompute::full}, 4,
                                  [&] {
                                    memory_options x = o;
                                    x.recompute_method = recompute_grouping::block;
                                    x.recompute_num_layers = 2;
                                    return x;
                                  }())
                      .stages[3];
  CHECK(st.activations == doctest::Approx(st.inflight * (2 * input + 6 * all)));
  // The method applies to full recomputation only.
  o.recompute_num_layers = 2;
  CHECK_THROWS_WITH_AS(estimate_memory(l7, {}, 1, o), doctest::Contains("applies to full recomputation"), config_error);
}

TEST_CASE("uneven pipeline stages: the first and last stages' own layer counts") {
  // llama2-7b's 32 layers over 4 stages with 5 on the first and 9 on the last: 18 left for the
  // 2 middle stages, 9 each (Megatron-LM's --decoder-first/last-pipeline-num-layers).
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  const memory_options o{.seq = 4096, .micro_batches = 8, .runtime_overhead_bytes = 0, .activation_overhead = 0};
  const parallel_config c{.pp = 4, .first_stage_layers = 5, .last_stage_layers = 9};
  const auto e = estimate_memory(l7, c, 4, o);
  REQUIRE(e.stages.size() == 4);
  CHECK(e.stages[0].layers == 5);
  CHECK(e.stages[1].layers == 9);
  CHECK(e.stages[3].layers == 9);
  // A middle stage holds 9 layers' weights: 9 x 202,383,360 (llama2-7b's layer) x 2 bytes.
  CHECK(e.stages[1].params == doctest::Approx(9.0 * 202383360 * 2));
  // Counts that leave the middle stages unequal are refused with the numbers.
  CHECK_THROWS_WITH_AS(estimate_memory(l7, {.pp = 4, .first_stage_layers = 5, .last_stage_layers = 8}, 4, o),
                       doctest::Contains("the other 19 of the 32 layers do not split evenly"), config_error);
  CHECK_THROWS_WITH_AS(estimate_memory(l7, {.pp = 4, .vpp = 2, .first_stage_layers = 4}, 4, o),
                       doctest::Contains("without virtual stages only"), config_error);
  // Every stage listed (a split the first/last counts cannot give): 6, 10, 10, 6 layers; the
  // second stage holds 10 layers' weights.
  parallel_config listed{.pp = 4};
  listed.stage_layers.layers = {6, 10, 10, 6};
  listed.stage_layers.count = 4;
  const auto l = estimate_memory(l7, listed, 4, o);
  CHECK(l.stages[0].layers == 6);
  CHECK(l.stages[1].layers == 10);
  CHECK(l.stages[3].layers == 6);
  CHECK(l.stages[1].params == doctest::Approx(10.0 * 202383360 * 2));
  listed.stage_layers.layers[3] = 5;  // 31 layers listed for 32
  CHECK_THROWS_WITH_AS(estimate_memory(l7, listed, 4, o),
                       doctest::Contains("stage layers 6,10,10,5 (4 stages, 31 layers) for pp 4 and 32 layers"),
                       config_error);
}

TEST_CASE("unfused attention: a 16-bit softmax (Megatron-LM) or an fp32 one cast back (transformers' eager)") {
  // Per layer, bf16, no dropout, MHA with a heads: the unfused core adds a s^2 b scores of 2 bytes
  // (Korthikanti et al. 2022: the softmax output), or 4 + 2 with an fp32 softmax kept for its
  // backward and its bf16 copy kept for the product with V. Without flash, the 4a-byte log-sum-exp
  // is not kept.
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  const double s = 2048, a = 32;
  memory_options o{.lbs = 1, .seq = 2048};
  const double flash = detail::layer_activations(l7, {}, o, false).stored;
  o.flash_attention = false;
  const double megatron = detail::layer_activations(l7, {}, o, false).stored;
  o.fp32_softmax = true;
  const double eager = detail::layer_activations(l7, {}, o, false).stored;
  CHECK(megatron - flash == doctest::Approx(a * s * s * 2 - s * 4 * a));
  CHECK(eager - megatron == doctest::Approx(a * s * s * 4));
}

TEST_CASE("eager PyTorch layers: fp32 norm copies and the unfused SwiGLU's SiLU output") {
  // transformers' LlamaRMSNorm keeps the fp32 copy of its input (4h bytes) and, when its weight
  // trains, the bf16 normalized output (2h) where a fused RMSNorm keeps its bf16 input (2h);
  // LlamaMLP keeps gate, SiLU output and up (3f) where a fused SwiGLU keeps gate and up (2f).
  // Per token and layer, llama2-7b, bf16: full training +2 x 4h + f x 2 bytes over fused; a frozen
  // base (LoRA) +2 x 2h + f x 2.
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  const double h = 4096, f = 11008, s = 1024;
  memory_options o{.lbs = 1, .seq = 1024};
  const auto stored = [&](layer_kernels k) {
    memory_options x = o;
    x.kernels = k;
    return detail::layer_activations(l7, {}, x, false).stored;
  };
  CHECK(stored(layer_kernels::eager) - stored(layer_kernels::fused) == doctest::Approx(s * (2 * 4 * h + 2 * f)));
  o.adapters = {.lora_rank = 8, .lora_targets = lora_target::q | lora_target::v};
  CHECK(stored(layer_kernels::eager) - stored(layer_kernels::fused) == doctest::Approx(s * (2 * 2 * h + 2 * f)));
}

TEST_CASE("FSDP2 over fp32 parameters: the sharded fp32 parameter is the master, no 16-bit shard") {
  // Hand count (framework::fsdp): per sharded parameter 4 (fp32 shard) + 4 (fp32-reduced
  // gradient shard) + 8 (Adam m, v) = 16 bytes over d ranks, where ZeRO-3 with a 16-bit shard
  // and an fp32 master holds 2 + 4 + 12 = 18; pure bf16 FSDP2 (no master) is ZeRO-3's 2 + 2 + 4.
  for (std::int64_t d : {1, 8, 64}) {
    CAPTURE(d);
    const double dd = static_cast<double>(d);
    const parallel_config z3{.zero_stage = 3};
    const memory_options fsdp{.fp32_grads = true, .accounting = framework::fsdp};
    CHECK(per_param_state_bytes(z3, d, fsdp).params == doctest::Approx(4 / dd));
    CHECK(per_param_state_bytes(z3, d, fsdp).optimizer == doctest::Approx(8 / dd));
    CHECK(per_param_state_bytes(z3, d, fsdp).total() == doctest::Approx(16 / dd));
    CHECK(per_param_state_bytes(z3, d, {.fp32_grads = true}).total() == doctest::Approx(18 / dd));
    CHECK(per_param_state_bytes(z3, d, {.master_weights = false, .accounting = framework::fsdp}).total() ==
          doctest::Approx(8 / dd));
  }
}

TEST_CASE("expert parallelism: each rank holds its experts; their states shard over expert data parallelism") {
  // Hand count for Mixtral 8x7B (32 layers, hidden 4096, 32 heads / 8 KV heads, 8 experts of
  // ffn 14336, vocabulary 32000) on 8 ranks with ep 8 (tp 1, dp 8) and the distributed optimizer.
  // Per layer: attention 4096 x (4096 + 2 x 1024) + 4096 x 4096 = 41,943,040, router 4096 x 8 =
  // 32,768, norms 8,192; experts 8 x 3 x 4096 x 14336 = 1,409,286,144, one of the 8 per rank.
  // Dense weights per rank: 32 x 41,984,000 + 2 x 32000 x 4096 + 4096 = 1,605,636,096; expert
  // weights per rank: 32 x 176,160,768 = 5,637,144,576. The dense states shard over dp 8; the
  // expert data-parallel group is 8 / (1 x 8 x 1) = 1 rank.
  const transformer_spec mx = get_preset("mixtral-8x7b").spec;
  const double dense = 1'605'636'096, expert = 5'637'144'576;
  const memory_options o{.seq = 4096, .runtime_overhead_bytes = 0};
  const parallel_config ep8{.ep = 8, .distributed_optimizer = true};
  const stage_memory st = estimate_memory(mx, ep8, 8, o).stages[0];
  CHECK(st.params == doctest::Approx(2 * (dense + expert)).epsilon(1e-12));
  CHECK(st.optimizer == doctest::Approx(12 * (dense / 8 + expert)).epsilon(1e-12));
  // Without expert parallelism every rank holds all experts, and their states shard over dp 8.
  const stage_memory ep1 = estimate_memory(mx, {.distributed_optimizer = true}, 8, o).stages[0];
  CHECK(ep1.params == doctest::Approx(2 * (dense + 8 * expert)).epsilon(1e-12));
  CHECK(ep1.optimizer == doctest::Approx(12 * (dense + 8 * expert) / 8).epsilon(1e-12));
}

TEST_CASE("the logits at the loss: PyTorch's eager cross entropy peaks in its backward") {
  // The tiny preset (vocabulary 256), 4 sequences of 128: 512 x 256 logits. Forward, bf16: the
  // logits (2 bytes), their fp32 copy (4) and the saved fp32 log-softmax (4), 10 bytes each; fp32:
  // 8 (Tensor.float() of an fp32 tensor is the tensor itself). Backward, after the logits are
  // freed: the saved log-softmax, nll_loss's dense fp32 gradient and log_softmax's, 12 bytes each
  // in either dtype, so 12 is the peak. Megatron-LM's fused cross entropy writes its gradient
  // into its saved softmax: the forward's 10 under its accounting. Nothing else is "other" here:
  // no recomputation, one rank, no runtime overhead.
  const transformer_spec m = get_preset("tiny").spec;
  memory_options o{.lbs = 4, .seq = 128, .runtime_overhead_bytes = 0};
  CHECK(estimate_memory(m, {}, 1, o).stages[0].other == doctest::Approx(512.0 * 256 * 12));
  // The freed bf16 logits' block cannot hold the backward's fp32 tensors: the allocator keeps 2
  // bytes a logit reserved beyond the live peak (read by the reserved counter only).
  CHECK(estimate_memory(m, {}, 1, o).stages[0].reserve == doctest::Approx(512.0 * 256 * 2));
  memory_options f32 = o;
  f32.param_dtype = dtype::fp32;
  CHECK(estimate_memory(m, {}, 1, f32).stages[0].other == doctest::Approx(512.0 * 256 * 12));
  CHECK(estimate_memory(m, {}, 1, f32).stages[0].reserve == 0);
  // PyTorch's loss_parallel() on the vocabulary-sharded logits (torchtitan with tensor
  // parallelism): its fused backward holds the saved log-softmax, zeros_like(x), exp(x), their
  // sum and the product, 16 bytes a logit of the rank's shard, 512 x 256/2 over two ranks.
  memory_options parallel_loss = o;
  parallel_loss.loss = logits_loss::loss_parallel;
  CHECK(estimate_memory(m, {.tp = 2}, 2, parallel_loss).stages[0].other == doctest::Approx(512.0 * 128 * 16));
  CHECK_THROWS_WITH_AS(estimate_memory(m, {}, 1, parallel_loss), doctest::Contains("loss_parallel with tp 1"),
                       config_error);
  // A pipeline stage keeps its output for the micro-batch's backward: the bf16 logits stay live
  // beside the backward's 12 bytes (14, and no freed block) on the last of two stages.
  const memory_estimate staged = estimate_memory(m, {.pp = 2}, 2, o);
  CHECK(staged.stages[1].other == doctest::Approx(512.0 * 256 * 14));
  CHECK(staged.stages[1].reserve == 0);
  o.accounting = framework::megatron;
  CHECK(estimate_memory(m, {}, 1, o).stages[0].other == doctest::Approx(512.0 * 256 * 10));
  CHECK(estimate_memory(m, {}, 1, o).stages[0].reserve == 0);
}

TEST_CASE("the loss's freed logits block counts as far as the loss outgrows the recomputed layer") {
  // llama2-7b, one sequence of 4096, bf16, generic accounting, no growth, a fused Adam step. The
  // loss holds L = 4096 x V x 12 bytes live and B = 4096 x V x 2 more in the freed bf16 block.
  // Under full recomputation the recomputed layer's working set W is the layer's activations
  // without it (as "the logits and a recomputed layer" computes it); the reserve is
  // max(0, L + B - W) - max(0, L - W): B when W <= L, L + B - W when L < W < L + B, 0 above.
  transformer_spec m = get_preset("llama2-7b").spec;
  memory_options o{.lbs = 1, .seq = 4096, .runtime_overhead_bytes = 0, .activation_overhead = 0};
  o.adam_implementation = adam_step::fused;
  const parallel_config full{.recomputation = recompute::full};
  const double working = estimate_memory(m, {}, 1, o).stages[0].activations / 32;  // 539,492,352
  const auto reserve_at = [&](std::int64_t vocab) {
    m.vocab = vocab;
    return estimate_memory(m, full, 1, o).stages[0].reserve;
  };
  // 32000: L = 1,572,864,000 > W, the whole block.
  CHECK(reserve_at(32000) == doctest::Approx(4096.0 * 32000 * 2));
  // 10000: L = 491,520,000 < W < L + B = 573,440,000, the part above W.
  CHECK(reserve_at(10000) == doctest::Approx(4096.0 * 10000 * 14 - working));
  // 1000: L + B = 57,344,000 < W, none.
  CHECK(reserve_at(1000) == 0);
}

TEST_CASE("replicated key/value heads: a rank holds what it holds when the model has one KV head per rank") {
  // Llama 2 70B (8 KV heads) at TP 16 with each KV head on 2 ranks: every rank holds 4 query heads
  // and one whole KV head, and keeps those heads' activations, exactly as a rank of the same
  // model with 16 KV heads (unreplicated, one per rank) does. Without replication the KV part
  // would be 8/16 of a head per rank: the replicated run holds 2 x 8192 x 128 x 0.5 more
  // weights per layer than that.
  const transformer_spec m = get_preset("llama2-70b").spec;
  transformer_spec kv16 = m;
  kv16.kv_heads = 16;
  const memory_options o{.lbs = 1, .seq = 4096, .runtime_overhead_bytes = 0};
  const parallel_config rep{.tp = 16, .pp = 4, .replicate_kv_heads = true};
  const parallel_config one{.tp = 16, .pp = 4};
  for (std::size_t st = 0; st < 4; ++st) {
    const stage_memory a = estimate_memory(m, rep, 64, o).stages[st], b = estimate_memory(kv16, one, 64, o).stages[st];
    CHECK(a.params == doctest::Approx(b.params).epsilon(1e-12));
    CHECK(a.grads == doctest::Approx(b.grads).epsilon(1e-12));
    CHECK(a.optimizer == doctest::Approx(b.optimizer).epsilon(1e-12));
    CHECK(a.activations == doctest::Approx(b.activations).epsilon(1e-12));
  }
  CHECK_THROWS_AS(estimate_memory(m, one, 64, o), config_error);  // Megatron-LM's rule without replication
}

TEST_CASE("an MoE layer keeps its router's scores, the shared expert's gate and its experts' inputs") {
  // Independent enumeration for a Qwen1.5-MoE-A2.7B layer (h 2048, 16 heads of 128, 60 experts
  // of 1408, top-4, one shared expert of 5632 behind a sigmoid gate), bf16, tp 1, flash
  // attention, fused kernels, per token: the two norms' inputs (2h) and the QKV input (h); the MLP
  // input (h) and its 4 permuted copies, the experts' inputs (4h); Q, K, V and the attention
  // output (4 x 2048); the SwiGLU's gate and up (2 x (4 x 1408 + 5632)) and the down projections'
  // inputs (4 x 1408 + 5632), all at 2 bytes; the router's 60 fp32 scores; the shared expert's
  // gate input (h) and its two values at 2 bytes; flash attention's 16 fp32 log-sum-exps.
  const transformer_spec qm = get_preset("qwen1.5-moe-a2.7b").spec;
  const double h = 2048, f = 4 * 1408 + 5632;
  const double per_token = (2 * h + h + h + 4 * h + 4 * 2048 + 3 * f) * 2 + 60 * 4 + (h + 2) * 2 + 16 * 4;
  const memory_options o{.lbs = 1, .seq = 4096};
  CHECK(detail::layer_activations(qm, {}, o, true).stored == doctest::Approx(4096 * per_token));
  // Eager PyTorch (transformers' Qwen2MoeSparseMoeBlock) also keeps the router logits (60 x 2
  // bytes) and each routed token's expert output (4h x 2) for its weighting, besides the eager
  // norms' fp32 input copies and normalized outputs (2 x (4h + 2h) instead of 2 x 2h) and the
  // SiLU output (f x 2).
  memory_options eager = o;
  eager.kernels = layer_kernels::eager;
  CHECK(detail::layer_activations(qm, {}, eager, true).stored - detail::layer_activations(qm, {}, o, true).stored ==
        doctest::Approx(4096 * (60 * 2 + 4 * h * 2 + 2 * (6 * h - 2 * h) + f * 2)));
  // With expert parallelism the all-to-all's send and receive buffers (4 copies of each token's
  // hidden state each way, 2 bytes) are alive during the exchange, not kept.
  CHECK(detail::layer_activations(qm, {.ep = 4}, o, true).working == doctest::Approx(4096 * 2 * 4 * h * 2));
  CHECK(detail::layer_activations(qm, {.ep = 4}, o, true).stored == detail::layer_activations(qm, {}, o, true).stored);
  // Tensor parallelism 2 with sequence parallelism: a rank's layer input is half the sequence,
  // and after the all-to-all megatron-core gathers the routed tokens over the expert-tensor-
  // parallel group (MoEAlltoAllTokenDispatcher: gather_from_sequence_parallel_region, expt_tp):
  // with etp 2 (the default, = tp) the experts' inputs are 2 x 2048 tokens x 4 copies x h x 2
  // bytes; with etp 1 half of that. The experts' ffn-wide tensors do not change (each rank runs its
  // 1/etp of every expert on etp times the tokens).
  const parallel_config tp2{.tp = 2, .etp = 2, .sequence_parallel = true};
  const parallel_config etp1{.tp = 2, .etp = 1, .sequence_parallel = true};
  CHECK(detail::layer_activations(qm, tp2, o, true).stored - detail::layer_activations(qm, etp1, o, true).stored ==
        doctest::Approx(2048 * 4 * h * 2));
  // Without sequence parallelism (Megatron-LM refuses it for MoE at tp > 1) every rank holds the
  // whole sequence: nothing to gather, etp changes nothing.
  CHECK(detail::layer_activations(qm, {.tp = 2, .etp = 2}, o, true).stored ==
        detail::layer_activations(qm, {.tp = 2, .etp = 1}, o, true).stored);
}

TEST_CASE("distributed saved activations and MoE capacity factors") {
  // --distribute-saved-activations: with full recomputation the kept layer input (s b h x 2 bytes)
  // is split over the tp ranks: llama2-70b, tp 8, 4096 tokens: 4096 x 8192 x 2 / 8 per layer.
  const transformer_spec l70 = get_preset("llama2-70b").spec;
  memory_options o{.lbs = 1, .seq = 4096};
  const parallel_config full8{.tp = 8, .recomputation = recompute::full};
  CHECK(detail::layer_activations(l70, full8, o, false).stored == 4096.0 * 8192 * 2);
  o.distribute_saved_activations = true;
  CHECK(detail::layer_activations(l70, full8, o, false).stored == 4096.0 * 8192 * 2 / 8);
  // Capacity factor 1.25 with padding: the experts' part of an MoE layer (the expert inputs top_k h
  // and the SwiGLU's 3 top_k f, 2 bytes each) grows by a quarter; the rest does not.
  const transformer_spec mx = get_preset("mixtral-8x7b").spec;  // top_k 2, expert ffn 14336
  memory_options moe{.lbs = 1, .seq = 2048};
  const double dropless = detail::layer_activations(mx, {}, moe, true).stored;
  moe.moe_capacity_factor = 1.25;
  const double padded = detail::layer_activations(mx, {}, moe, true).stored;
  CHECK(padded - dropless == doctest::Approx(2048 * 0.25 * 2 * (2 * 4096 + 3 * 2 * 14336)));
}

TEST_CASE("8-bit Adam: two 1-byte states with an fp32 absmax per 2048") {
  // Dettmers et al. 2021 (arXiv:2110.02861), block-wise quantization with blocks of 2048: per
  // parameter 2 x (1 + 4/2048) bytes of states; with mixed precision the fp32 master stays (4),
  // without a master (pure bf16) it does not.
  const memory_options mixed{.optimizer = optimizer_kind::adam_8bit};
  CHECK(per_param_state_bytes({}, 1, mixed).optimizer == doctest::Approx(4 + 2 * (1 + 4.0 / 2048)));
  const memory_options pure{.master_weights = false, .optimizer = optimizer_kind::adam_8bit};
  CHECK(per_param_state_bytes({}, 1, pure).optimizer == doctest::Approx(2 * (1 + 4.0 / 2048)));
  CHECK(per_param_state_bytes({.zero_stage = 1}, 4, pure).optimizer == doctest::Approx(2 * (1 + 4.0 / 2048) / 4));
}

TEST_CASE("PEFT before 0.6.0: LoRA weights, gradients and Adam states in fp32 over a bf16 base") {
  // Llama 2 7B (6,738,415,616 weights, its paper's count) with LoRA rank 8 on q and v: 4,194,304
  // adapter weights (2 x 32 x (4096 x 8 + 8 x 4096)). PEFT 0.5.0 builds them in fp32: 4 bytes each,
  // fp32 gradients (4), Adam m and v in fp32 (8); the frozen base stays bf16 (2 bytes a weight).
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  memory_options o{.lbs = 1, .seq = 256, .runtime_overhead_bytes = 0, .activation_overhead = 0};
  o.adapters = {.lora_rank = 8, .lora_targets = *parse_lora_targets("q,v")};
  const stage_memory bf16 = estimate_memory(l7, {}, 1, o).stages[0];
  o.adapters.fp32_adapters = true;
  const stage_memory fp32 = estimate_memory(l7, {}, 1, o).stages[0];
  CHECK(fp32.params == 6'738'415'616.0 * 2 + 4'194'304.0 * 4);
  CHECK(fp32.grad_buffers == 4'194'304.0 * 4);
  CHECK(fp32.optimizer == 4'194'304.0 * 8);
  CHECK(bf16.grad_buffers == 4'194'304.0 * 2);
  // PEFT 0.5's LoRA forward runs x.to(fp32) for its adapters; under autocast lora_A saves the
  // 16-bit copy autocast makes of it, one per target, where 16-bit adapters share the projection's
  // input: q and v keep two copies of the layer's normalized input instead of one, 4096 x 2 bytes
  // more per token and layer (no recomputation, 256 tokens, 32 layers).
  CHECK(fp32.activations - bf16.activations == doctest::Approx(32.0 * 256 * 4096 * 2));
  // The optimizer in the backward: the gradients of one step at a time, bounded by a layer's
  // adapters together (q and v: 2 x (4096 x 8 + 8 x 4096) = 131,072), in fp32.
  o.optimizer_in_backward = true;
  CHECK(estimate_memory(l7, {}, 1, o).stages[0].grads == 131'072.0 * 4);
  o.optimizer_in_backward = false;
  // Without LoRA it means nothing: refused.
  o.adapters = {.fp32_adapters = true};
  CHECK_THROWS_WITH_AS(estimate_memory(l7, {}, 1, o), doctest::Contains("fp32_adapters without LoRA"), config_error);
  o.adapters = {.lora_rank = 8, .lora_targets = *parse_lora_targets("q,v"), .fp32_adapters = true};
  // An fp32 model: the adapters are fp32 already.
  o.param_dtype = dtype::fp32;
  const double fp32_model = estimate_memory(l7, {}, 1, o).stages[0].total();
  o.adapters.fp32_adapters = false;
  CHECK(estimate_memory(l7, {}, 1, o).stages[0].total() == fp32_model);
  // DeepSpeed casts the whole module: refused, naming the fix.
  o.adapters.fp32_adapters = true;
  o.accounting = framework::deepspeed;
  CHECK_THROWS_WITH_AS(estimate_memory(l7, {}, 1, o), doctest::Contains("drop fp32_adapters"), config_error);
}

TEST_CASE("the optimizer step's temporary takes the construction's reserved blocks first") {
  // 13B, ZeRO-2 over 8, fp16 weights built in fp32: over 15 GiB stays reserved (test above).
  // PyTorch's foreach Adam takes sqrt(v) of the rank's shard, 4 bytes x 13B / 8 = 6.5 GB: it fits
  // in those blocks, so the stage needs what it needs with the fused step; without the fp32
  // construction nothing is reserved and the temporary raises the peak.
  const transformer_spec g13 = get_preset("gpt3-13b").spec;
  memory_options o{.lbs = 2, .seq = 2048, .param_dtype = dtype::fp16, .runtime_overhead_bytes = 0};
  const parallel_config sh2{.zero_stage = 2, .recomputation = recompute::full};
  o.weights_built_in_fp32 = true;
  o.adam_implementation = adam_step::fused;
  const stage_memory fused = estimate_memory(g13, sh2, 8, o).stages[0];
  o.adam_implementation = adam_step::foreach;
  const stage_memory foreach = estimate_memory(g13, sh2, 8, o).stages[0];
  REQUIRE(fused.reserve > 13e9 * 4 / 8);
  CHECK(foreach.total() == fused.total());
  o.weights_built_in_fp32 = false;
  const double plain_foreach = estimate_memory(g13, sh2, 8, o).stages[0].total();
  o.adam_implementation = adam_step::fused;
  CHECK(plain_foreach > estimate_memory(g13, sh2, 8, o).stages[0].total() + 1e9);
}

TEST_CASE("FSDP's no_sync: whole units' gradients, unsharded, while micro-batches accumulate") {
  // Two blocks of h 1024, 8 heads, SwiGLU ffn 4096: 4 h^2 + 3 h f + 2 h = 16,779,264 weights each;
  // LoRA rank 8 on q and v: 2 x (1024 x 8 + 8 x 1024) = 32,768 more per block. Under no_sync every
  // block (it holds a trainable adapter) keeps all its weights' gradients, bf16, unsharded over
  // the 4 FSDP ranks; the embedding and output layer are frozen, so the root keeps none.
  const transformer_spec m{.layers = 2, .hidden = 1024, .heads = 8, .ffn = 4096, .vocab = 32000, .max_seq = 1024};
  memory_options o{.lbs = 1, .seq = 1024, .runtime_overhead_bytes = 0, .activation_overhead = 0};
  o.accounting = framework::fsdp;
  o.adapters = {.lora_rank = 8, .lora_targets = *parse_lora_targets("q,v")};
  o.micro_batches = 4;
  const parallel_config fsdp{.zero_stage = 3};
  const double sharded = estimate_memory(m, fsdp, 4, o).stages[0].grads;
  o.unsharded_grad_accumulation = true;
  CHECK(estimate_memory(m, fsdp, 4, o).stages[0].grads == 2 * (16'779'264.0 + 32'768) * 2);
  CHECK(sharded < 32'768.0 * 2 * 2);  // without it: the adapters' gradients, sharded
  // One micro-batch: FSDP syncs in the backward, nothing accumulates.
  o.micro_batches = 1;
  CHECK(estimate_memory(m, fsdp, 4, o).stages[0].grad_buffers == sharded);
  // LLaMA-Adapter v1 from layer 1: only block 1 holds a trainable weight (its prompt, 10 x 1024,
  // and its 8 gates: 10,248); block 0 trains nothing, so it keeps no gradient.
  o.micro_batches = 4;
  o.adapters = {.llama_adapter = prompt_adapter::v1, .adapter_start_layer = 1};
  CHECK(estimate_memory(m, fsdp, 4, o).stages[0].grads == (16'779'264.0 + 10'248) * 2);
  // LLaVA's pretraining (frozen tower and LLM): the trained projector's unit alone. Projector
  // 1024 -> 1024 (linear): 1024 x 1024 + 1024 = 1,049,600 weights.
  transformer_spec llava = m;
  llava.llm_mode = train_mode::frozen;
  llava.vision = {.layers = 2,
                  .hidden = 1024,
                  .heads = 8,
                  .ffn = 4096,
                  .image_size = 224,
                  .patch_size = 14,
                  .projector = projector_kind::linear};
  o.adapters = {};
  CHECK(estimate_memory(llava, fsdp, 4, o).stages[0].grads == 1'049'600.0 * 2);
  o.adapters = {.lora_rank = 8, .lora_targets = *parse_lora_targets("q,v")};
  // Not sharded, or sharded by DeepSpeed (which refuses no_sync under ZeRO-2/3): refused, naming the fix.
  CHECK_THROWS_WITH_AS(estimate_memory(m, {}, 4, o), doctest::Contains("--zero 3"), config_error);
  o.accounting = framework::deepspeed;
  CHECK_THROWS_WITH_AS(estimate_memory(m, fsdp, 4, o), doctest::Contains("set accounting fsdp"), config_error);
}

TEST_CASE("PyTorch's foreach Adam: sqrt(v) of every weight at once, past what the backward freed") {
  // Llama 2 7B (6,738,415,616 weights, its paper's count), one token: the activations and logits
  // are a few MB, so the step's temporary, v's size in fp32 (4 bytes a weight), sets the peak.
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  memory_options o{.lbs = 1, .seq = 1, .runtime_overhead_bytes = 0, .activation_overhead = 0};
  o.adam_implementation = adam_step::fused;
  const stage_memory fused = estimate_memory(l7, {}, 1, o).stages[0];
  o.adam_implementation = adam_step::foreach;
  const stage_memory foreach = estimate_memory(l7, {}, 1, o).stages[0];
  CHECK(foreach.other - fused.other == doctest::Approx(6'738'415'616.0 * 4).epsilon(0.001));
  CHECK(foreach.activations == fused.activations);
  // The generic accounting's default is PyTorch's: foreach. Megatron-LM's is its FusedAdam.
  o.adam_implementation = adam_step::framework_default;
  CHECK(estimate_memory(l7, {}, 1, o).stages[0].other == foreach.other);
  o.accounting = framework::megatron;
  CHECK(estimate_memory(l7, {}, 1, o).stages[0].other < fused.other + 1e6);
  // ZeRO-1 over 8: each rank steps (and takes sqrt of) its eighth of v.
  o.accounting = framework::generic;
  const parallel_config zero1{.zero_stage = 1};
  o.adam_implementation = adam_step::fused;
  const double fused8 = estimate_memory(l7, zero1, 8, o).stages[0].other;
  o.adam_implementation = adam_step::foreach;
  CHECK(estimate_memory(l7, zero1, 8, o).stages[0].other - fused8 ==
        doctest::Approx(6'738'415'616.0 * 4 / 8).epsilon(0.005));
  // At a long sequence the backward's activations outgrow the temporary: no change.
  o.seq = 4096;
  o.lbs = 8;
  o.adam_implementation = adam_step::fused;
  const double long_fused = estimate_memory(l7, {}, 1, o).stages[0].total();
  o.adam_implementation = adam_step::foreach;
  CHECK(estimate_memory(l7, {}, 1, o).stages[0].total() == long_fused);
}

TEST_CASE("gradients created in the backward replace what it frees; persistent ones add to it") {
  // Llama 2 7B in pure bf16 (6,738,415,616 weights), fused Adam (no step temporary), full
  // recomputation. At 65,536 tokens the checkpointed layer inputs alone, 32 x 65536 x 4096 x 2 =
  // 17,179,869,184 bytes, outgrow the bf16 gradients, 13,476,831,232: created in the backward as
  // those inputs are freed (PyTorch's zero_grad(set_to_none=True)), they add to the peak only the
  // first one, the output layer's (32000 x 4096 x 2 = 262,144,000 bytes), made beside every input.
  // The persistent buffers' peak is the rest higher.
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  const double weights = 6'738'415'616.0, output_grad = 32000.0 * 4096 * 2;
  const parallel_config full{.recomputation = recompute::full};
  memory_options o{
      .lbs = 1, .seq = 65536, .master_weights = false, .runtime_overhead_bytes = 0, .activation_overhead = 0};
  o.adam_implementation = adam_step::fused;
  const stage_memory lazy = estimate_memory(l7, full, 1, o).stages[0];
  CHECK(lazy.grads == output_grad);
  CHECK(lazy.grad_buffers == weights * 2);
  memory_options kept = o;
  kept.persistent_grads = true;
  const stage_memory persistent = estimate_memory(l7, full, 1, kept).stages[0];
  CHECK(persistent.grads == weights * 2);
  CHECK(persistent.total() - lazy.total() == doctest::Approx(weights * 2 - output_grad));
  // Gradients that outlive the backward count whole: accumulation over micro-batches (interleaved
  // pipelines run at least pp of them), DDP's reducer buckets (generic with data or context
  // parallelism, FSDP without sharded gradients), Megatron-LM's contiguous buffer.
  memory_options accumulating = o;
  accumulating.micro_batches = 2;
  CHECK(estimate_memory(l7, full, 1, accumulating).stages[0].grads == persistent.grads);
  CHECK(estimate_memory(l7, full, 2, o).stages[0].grads == persistent.grads);
  CHECK(estimate_memory(l7, {.cp = 2, .recomputation = recompute::full}, 2, o).stages[0].grads == persistent.grads);
  const stage_memory interleaved =
      estimate_memory(l7, {.pp = 2, .vpp = 2, .recomputation = recompute::full}, 2, o).stages[0];
  CHECK(interleaved.grads == interleaved.grad_buffers);
  memory_options fsdp = o;
  fsdp.accounting = framework::fsdp;
  CHECK(estimate_memory(l7, full, 8, fsdp).stages[0].grads == persistent.grads);
  memory_options megatron = o;
  megatron.master_weights = true;
  megatron.accounting = framework::megatron;
  const stage_memory mg = estimate_memory(l7, full, 1, megatron).stages[0];
  CHECK(mg.grads == mg.grad_buffers);
  // FSDP's sharded gradients come from each unit's post-backward reduce-scatter: over 8 ranks, an
  // eighth of them, again under the inputs; its root unit holds the output layer's gradient
  // unsharded in bf16 until its reduce-scatter at the end.
  const stage_memory sharded =
      estimate_memory(l7, {.zero_stage = 3, .recomputation = recompute::full}, 8, fsdp).stages[0];
  CHECK(sharded.grad_buffers == doctest::Approx(weights * 2 / 8));
  CHECK(sharded.grads == output_grad);
  // PyTorch's foreach step holds weights, m, v, every gradient and sqrt(v) at once, 2 + 4 + 2 + 2
  // bytes a weight. At 57,344 tokens with a fused loss the backward's start (weights, states, the
  // inputs, 15,032,385,536 bytes, and one recomputed layer) stays below that, though the inputs
  // outgrow the gradients: the step sets the peak, all its gradients alive.
  o.seq = 57344;
  o.loss = logits_loss::fused;
  o.adam_implementation = adam_step::foreach;
  const stage_memory step = estimate_memory(l7, full, 1, o).stages[0];
  CHECK(step.grads == output_grad);
  CHECK(step.total() == doctest::Approx(weights * 10));
}

TEST_CASE("bitsandbytes' 4-bit matmul keeps its input: the frozen projections' inputs, by hand") {
  // Llama 2 7B (h 4096, ffn 11008), NF4 base, LoRA on q and v without dropout (their input is kept
  // already; so is flash attention's output, the output projection's input). Kept besides, per
  // token and layer, 16-bit: the MLP's input for gate and up (h) and the down projection's input
  // (f): (4096 + 11008) x 2 = 30,208 bytes; x 2048 tokens x 32 layers.
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  memory_options o{.lbs = 1, .seq = 2048, .runtime_overhead_bytes = 0, .activation_overhead = 0};
  o.adapters = {.lora_rank = 8, .lora_targets = *parse_lora_targets("q,v")};
  o.adapters.frozen_weight_bits = *quantized_weight_bits("nf4");
  const double plain = estimate_memory(l7, {}, 1, o).stages[0].activations;
  o.adapters.quantized_inputs_kept = true;
  CHECK(estimate_memory(l7, {}, 1, o).stages[0].activations - plain == doctest::Approx(30'208.0 * 2048 * 32));
  // Without quantized weights there is nothing it could mean: refused.
  o.adapters.frozen_weight_bits = 0;
  CHECK_THROWS_WITH_AS(estimate_memory(l7, {}, 1, o), doctest::Contains("without quantized weights"), config_error);
}

TEST_CASE("the memory SVG stacks the runtime overhead on top and prints what each stage needs, by hand") {
  // One stage, GiB: weights 10, gradients 5, optimizer 5, activations 20, other 8 of which 6 the
  // runtime overhead, reserve 2: total 50, need (max reserved) 44. The chart's top is
  // max(capacity 40, 50) x 1.08 = 54 GiB over 320 px from y = 360, so g GiB sits at
  // 360 - g / 54 x 320.
  memory_estimate e;
  stage_memory s;
  s.params = 10.0 * GiB, s.grads = 5.0 * GiB, s.optimizer = 5.0 * GiB, s.activations = 20.0 * GiB;
  s.other = 8.0 * GiB, s.runtime = 6.0 * GiB, s.reserve = 2.0 * GiB;
  e.stages = {s};
  REQUIRE(s.need() == doctest::Approx(44.0 * GiB));
  const std::string svg = render_memory_svg(e, 40 * GiB);
  const auto has = [&](const std::string& element) {
    INFO(element);
    CHECK(svg.find(element) != std::string::npos);
  };
  // other without the runtime, 40 -> 42 GiB: y 360 - 42/54 x 320 = 111.11, 2/54 x 320 = 11.85 high.
  has(R"(<rect x="72.0" y="111.11" width="46" height="11.85" fill="#9c9c9c"/>)");
  // the runtime overhead, 44 -> 50 GiB: y 63.70, 6/54 x 320 = 35.56 high.
  has(R"(<rect x="72.0" y="63.70" width="46" height="35.56" fill="#eeeeee"/>)");
  has(R"(text-anchor="middle">44.0</text>)");  // the need, over the bar (not the total, 50.0)
  CHECK(svg.find(">50.0</text>") == std::string::npos);
  has("capacity 40 GiB");
}
