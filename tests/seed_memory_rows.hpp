// The seed reports' measured device memory (../shared/seeds), with the settings each run
// used (FlagPerf's case configs: FlagScale/Megatron flags for seed 000, DeepSpeed configs for
// 001-003, PaddleNLP configs for 004). Shared by tests/unit/test_memory.cpp and
// bench/memory_accuracy.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include <trainperf/trainperf.hpp>

namespace trainperf::seeds {

struct memory_row {
  const char* name;
  transformer_spec model;
  parallel_config parallel;
  std::int64_t world;
  memory_options options;
  std::int64_t stage;   // the stage the figure belongs to; -1: the most loaded stage
  double measured_gib;  // as printed (GiB)
  double capacity_gib;
  const char* framework;  // "megatron", "deepspeed", "paddle": selects the reference formulas
};

// The bytes the row's figure belongs to: its stage, or the most loaded stage.
inline double row_need(const memory_row& r, const memory_estimate& e) {
  return r.stage >= 0 ? e.stages[static_cast<std::size_t>(r.stage)].total() : e.max_total();
}

inline transformer_spec megatron_padded(transformer_spec s) {
  s.padding = vocab_padding::megatron;  // --make-vocab-size-divisible-by 128 (default)
  return s;
}
inline transformer_spec frozen_llm(transformer_spec s) {
  s.llm_mode = train_mode::frozen;  // LLaVA pretraining trains the projector only
  return s;
}

inline std::vector<memory_row> memory_rows() {
  const transformer_spec l70 = megatron_padded(get_preset("llama2-70b").spec);
  const transformer_spec l7 = get_preset("llama2-7b").spec;
  const transformer_spec llava = get_preset("llava1.5-7b").spec;
  const transformer_spec g67 = get_preset("gpt3-6.7b").spec, g13 = get_preset("gpt3-13b").spec;
  // Seed 000 (FlagScale@26cd664 via FlagPerf's megatron_main.sh): --bf16 (fp32 main grads),
  // --sequence-parallel, --use-distributed-optimizer, --use-flash-attn, micro batch 1, seq 4096,
  // 1F1B; the fp32 row drops --bf16 and adds --recompute-activations (selective). FlagScale's
  // FlashSelfAttention asserts fp16/bf16 inputs (megatron/model/transformer.py), so the fp32 run
  // used the unfused core attention, whose scores selective recomputation rebuilds per layer.
  const parallel_config tp8pp4{.tp = 8, .pp = 4, .sequence_parallel = true, .distributed_optimizer = true};
  const parallel_config tp4pp8{.tp = 4, .pp = 8, .sequence_parallel = true, .distributed_optimizer = true};
  parallel_config tp8pp4_rc = tp8pp4;
  tp8pp4_rc.recomputation = recompute::selective;
  const memory_options amp70{.lbs = 1, .seq = 4096, .micro_batches = 44, .accounting = framework::megatron};
  memory_options fp32_70 = amp70;
  fp32_70.param_dtype = dtype::fp32;
  fp32_70.flash_attention = false;
  memory_options amp70_1024 = amp70;
  amp70_1024.micro_batches = 1024;
  // Seed 001 (DeepSpeed, HF Trainer): bf16, gradient checkpointing (every layer), flash
  // attention 2, ZeRO-2 pretraining at 32 per GPU, ZeRO-3 finetuning at 16 per GPU. Batches
  // are padded to their longest sample (variable_length): the need is computed for an assumed
  // longest batch of 704 tokens in pretraining (576 image tokens and a short caption) and the
  // 2048-token model_max_length in finetuning.
  const parallel_config zero2_ckpt{.zero_stage = 2, .recomputation = recompute::full};
  const parallel_config zero3_ckpt{.zero_stage = 3, .recomputation = recompute::full};
  // Seeds 002/003 (DeepSpeed ZeRO-3, fp16, HF gradient checkpointing): R300 without flash
  // attention at seq 512 x 12; S4000 with SDPA at seq 4096 x 6. Seed 003's text gives LBS 3
  // as "the default in config_S4000x1x8.py", but that file, in every FlagPerf commit that
  // carries the 44.2/48.0 figure (5fae218a, 8b18240f, 9c646060), sets batchsize = 6, which
  // run_pretraining.py hands to the DataLoader as the per-device batch: the run used 6.
  const memory_options r300{
      .lbs = 12, .seq = 512, .param_dtype = dtype::fp16, .accounting = framework::deepspeed, .flash_attention = false};
  const memory_options s4000{.lbs = 6, .seq = 4096, .param_dtype = dtype::fp16, .accounting = framework::deepspeed};
  // Seed 004 (PaddleNLP, fp16 O2 with fp32 master weights, flash attention, dropout 0.1,
  // seq 2048): sharding stage 1/2 over the sharding degree; 13B with full recompute. FlagPerf's
  // run_pretraining.py builds the model with model_class(gpt_config) (fp32, on the device; the
  // O2 dtype is only passed to from_pretrained) and PaddleNLP's Trainer casts it in place.
  const memory_options g67o{.lbs = 4,
                            .seq = 2048,
                            .param_dtype = dtype::fp16,
                            .accounting = framework::paddle,
                            .dropout = true,
                            .weights_built_in_fp32 = true};
  memory_options g13o = g67o;
  g13o.lbs = 2;
  memory_options g13pp = g67o;
  std::vector<memory_row> rows = {
      {"000 llama2-70b fp32 TP8PP4 recompute", l70, tp8pp4_rc, 32, fp32_70, -1, 77, 80, "megatron"},
      {"000 llama2-70b amp TP8PP4", l70, tp8pp4, 32, amp70, -1, 62, 80, "megatron"},
      {"000 llama2-70b amp TP4PP8", l70, tp4pp8, 32, amp70, -1, 74, 80, "megatron"},
      {"000 llama2-70b amp TP4PP8 GAS=1024", l70, tp4pp8, 32, amp70_1024, -1, 74, 80, "megatron"},
      {"001 llava1.5-7b pretrain ZeRO-2",
       frozen_llm(llava),
       zero2_ckpt,
       8,
       {.lbs = 32, .seq = 704, .accounting = framework::deepspeed, .variable_length = true},
       -1,
       74,
       80,
       "deepspeed"},
      {"001 llava1.5-7b finetune ZeRO-3",
       llava,
       zero3_ckpt,
       8,
       {.lbs = 16, .seq = 2048, .accounting = framework::deepspeed, .variable_length = true},
       -1,
       78,
       80,
       "deepspeed"},
      {"002 llama2-7b R300 ZeRO-3", l7, zero3_ckpt, 8, r300, -1, 29, 32, "deepspeed"},
      {"003 llama2-7b S4000 ZeRO-3", l7, zero3_ckpt, 8, s4000, -1, 44.2, 48, "deepspeed"},
      {"004 gpt3-6.7b TP1PP1SH2SP8", g67, {.zero_stage = 2}, 8, g67o, -1, 66.27, 80, "paddle"},
      {"004 gpt3-6.7b TP2PP1SH1SP4", g67, {.tp = 2, .zero_stage = 1}, 8, g67o, -1, 54.65, 80, "paddle"},
      {"004 gpt3-6.7b TP2PP1SH2SP4", g67, {.tp = 2, .zero_stage = 2}, 8, g67o, -1, 49.46, 80, "paddle"},
      {"004 gpt3-13b TP1PP1SH2SP8",
       g13,
       {.zero_stage = 2, .recomputation = recompute::full},
       8,
       g13o,
       -1,
       76.29,
       80,
       "paddle"},
      {"004 gpt3-13b TP2PP1SH1SP4",
       g13,
       {.tp = 2, .zero_stage = 1, .recomputation = recompute::full},
       8,
       g13o,
       -1,
       50.72,
       80,
       "paddle"},
      {"004 gpt3-13b TP2PP1SH2SP4",
       g13,
       {.tp = 2, .zero_stage = 2, .recomputation = recompute::full},
       8,
       g13o,
       -1,
       48.54,
       80,
       "paddle"},
  };
  // The PP4 figures are by stage: FlagPerf's monitor lists nvidia-smi's GPUs in index order and
  // Paddle's topology puts TP innermost (GPUs 0-1 are stage 0, ...); bench/RESULTS.md.
  const double g67_pp[] = {46.77, 36.59, 30.09, 27.78}, g13_pp[] = {35.84, 34.71, 32.80, 32.04};
  memory_options g67pp = g67o;
  g67pp.micro_batches = 256;
  g13pp.micro_batches = 256;
  for (std::int64_t s = 0; s < 4; ++s) {
    rows.push_back({"004 gpt3-6.7b TP2PP4SH1SP1 stage",
                    g67,
                    {.tp = 2, .pp = 4, .zero_stage = 1},
                    8,
                    g67pp,
                    s,
                    g67_pp[s],
                    80,
                    "paddle"});
  }
  for (std::int64_t s = 0; s < 4; ++s) {
    rows.push_back({"004 gpt3-13b TP2PP4SH1SP1 stage",
                    g13,
                    {.tp = 2, .pp = 4, .zero_stage = 1, .recomputation = recompute::full},
                    8,
                    g13pp,
                    s,
                    g13_pp[s],
                    80,
                    "paddle"});
  }
  return rows;
}

}  // namespace trainperf::seeds
