#!/usr/bin/env python3
"""What each `trainperf memory` flag does to the estimate, against hand counts (issue 18, section 1).

    memory_flag_effects.py TRAINPERF_EXE CASE
    memory_flag_effects.py --list      (the case names, for tests/cli/CMakeLists.txt)

Each case runs `trainperf memory --json` without and with a flag (or with two settings of it) and
checks the change in stage fields against a count made by hand from the rule the flag stands for,
cited next to the case. The two recomputation cases count layers and inputs by hand but take one
layer's bytes from the run without recomputation (its activations over 32 layers), so they check
the grouping, not the per-layer count (tests/unit/test_memory.cpp pins that against Korthikanti et
al. 2022). The library's own tests pin the same rules; these check that the command line reaches
them. Fields are bytes; the JSON prints them truncated to integers, so a change is compared within
a few bytes. `activations` includes the allocator's growth, 12% of the stored activations at the
library's default (memory_model_constants::activation_overhead in memory.hpp, restated here as
GROWTH), so a change in stored activations shows as 1.12 times itself.
"""
import json
import subprocess
import sys

GROWTH = 1.12  # memory_model_constants::activation_overhead, the library's default


def memory(exe, args):
    r = subprocess.run([exe, "memory", *args, "--json"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        sys.exit(f"FAILED: trainperf memory {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
    return json.loads(r.stdout)


# Shapes used below. llama2-7b: 32 layers, h 4096, 32 heads (Touvron et al. 2023).
L7_2048 = ["--model", "llama2-7b", "--seq", "2048"]
L7_4096 = ["--model", "llama2-7b", "--seq", "4096"]
A, S = 32, 2048  # llama2-7b's heads, the sequence of L7_2048
INPUT_4096 = 4096 * 4096 * 2  # a llama2-7b layer's bf16 input at 4096 tokens (what full recomputation keeps)


def layer_all(base):
    """What one layer keeps without recomputation: the run without it, over 32 layers and the growth."""
    return base["stages"][0]["activations"] / 32 / GROWTH


# name: (base args, flagged args, {field: expected change}, or a callable of (base, flagged) giving that)
CASES = {
    # transformers' eager attention keeps per layer the fp32 softmax (4 a s^2 bytes) and its 16-bit
    # copy (2 a s^2) and no flash log-sum-exp (4 a s): 32 x (6 a s^2 - 4 a s) (unit "unfused attention").
    "attention_eager": (L7_2048 + ["--attention", "flash"], L7_2048 + ["--attention", "eager"],
                        {"activations": 32 * (6 * A * S * S - 4 * A * S) * GROWTH}),
    # Megatron-LM's unfused core keeps the 16-bit softmax output only: 32 x (2 a s^2 - 4 a s).
    "attention_unfused": (L7_2048 + ["--attention", "flash"], L7_2048 + ["--attention", "unfused"],
                          {"activations": 32 * (2 * A * S * S - 4 * A * S) * GROWTH}),
    # SDPA's fused kernels (flash, memory-efficient) keep no scores: SDPA reads as flash, and the
    # unfused core adds to it what it adds to flash. (A zero change would also pass were the flag
    # ignored; attention_sdpa_unfused is the one that shows --attention sdpa reaches the model.)
    "attention_sdpa_is_fused": (L7_2048 + ["--attention", "flash"], L7_2048 + ["--attention", "sdpa"],
                                {"activations": 0, "other": 0}),
    "attention_sdpa_unfused": (L7_2048 + ["--attention", "sdpa"], L7_2048 + ["--attention", "unfused"],
                               {"activations": 32 * (2 * A * S * S - 4 * A * S) * GROWTH}),
    # Megatron-LM's --recompute-method uniform --recompute-num-layers 4 (arguments.py): 8 groups,
    # each keeping its input, one group of 4 layers rebuilt at a time: 8 inputs + 4 layers' worth,
    # against 32 inputs + 1 for the default of one layer a group.
    "recompute_uniform_4": (L7_4096 + ["--recompute", "none"],
                            L7_4096 + ["--recompute", "full", "--recompute-num-layers", "4"],
                            lambda b, f: {"activations": (8 * INPUT_4096 + 4 * layer_all(b)) * GROWTH
                                          - b["stages"][0]["activations"]}),
    # --recompute-method block 4: the first 4 layers recomputed (inputs kept), the other 28 keep
    # everything; the backward frees those 28 before it rebuilds the first four, so the rebuilt
    # layer adds nothing to the peak (megatron/core/recompute.py, block: use_checkpoint for the
    # first recompute_num_layers layers).
    "recompute_block_4": (L7_4096 + ["--recompute", "none"],
                          L7_4096 + ["--recompute", "full", "--recompute-method", "block", "--recompute-num-layers",
                                     "4"],
                          lambda b, f: {"activations": (4 * INPUT_4096 + 28 * layer_all(b)) * GROWTH
                                        - b["stages"][0]["activations"]}),
    # --distribute-saved-activations: the kept input of each of llama2-70b's 80 layers (4096 tokens x
    # h 8192 x 2 bytes) split over tp 8: 7/8 of it gone (unit "distributed saved activations").
    "distribute_saved_activations": (
        ["--model", "llama2-70b", "--seq", "4096", "--tp", "8", "--recompute", "full"],
        ["--model", "llama2-70b", "--seq", "4096", "--tp", "8", "--recompute", "full", "--distribute-saved-activations"],
        {"activations": -80 * 4096 * 8192 * 2 * 7 / 8 * GROWTH}),
    # Capacity factor 1.25 with padding on mixtral-8x7b (top-2 of 8 experts of 14336, h 4096, 32
    # layers): the experts' inputs (2h) and SwiGLU tensors (3 x 2 x 14336), 2 bytes each, grow by a
    # quarter per token.
    "moe_capacity_factor": (["--model", "mixtral-8x7b", "--seq", "2048"],
                            ["--model", "mixtral-8x7b", "--seq", "2048", "--moe-capacity-factor", "1.25"],
                            {"activations": 32 * 2048 * 0.25 * 2 * (2 * 4096 + 3 * 2 * 14336) * GROWTH}),
    # Top-2 instead of Qwen1.5-MoE-A2.7B's top-4 (h 2048, experts of 1408, one shared of 5632, 24
    # layers): per token, 2 fewer permuted copies of the MLP input (2h) and 2 fewer experts' gate,
    # up and down inputs (3 x 2 x 1408), 2 bytes each (unit "an MoE layer keeps its router's scores").
    "moe_top_k": (["--model", "qwen1.5-moe-a2.7b", "--seq", "4096"],
                  ["--model", "qwen1.5-moe-a2.7b", "--seq", "4096", "--top-k", "2"],
                  {"activations": -24 * 4096 * (2 * 2048 + 3 * 2 * 1408) * 2 * GROWTH}),
    # Interleaved 1F1B (Narayanan et al. 2021, 2.2.2): the first stage holds p (1 + (p - 1) / (p v))
    # micro-batches of its layers; 16 layers on pp 4 with full recomputation (each layer keeps its
    # 2048 x 4096 x 2-byte input): 16 inputs flat, 22 with vpp 2 (unit "interleaved pipeline").
    "interleaved_vpp": (L7_2048 + ["--layers", "16", "--pp", "4", "--gas", "8", "--recompute", "full"],
                        L7_2048 + ["--layers", "16", "--pp", "4", "--vpp", "2", "--gas", "8", "--recompute", "full"],
                        {"activations": 6 * 2048 * 4096 * 2 * GROWTH}),
    # Transformer Engine's fp8 weight caches (an fp8 copy and its transpose of every linear weight,
    # llama2-70b at tp 8: 106,954,752 a layer x 80 x 2 bytes) and amax histories (4 GEMMs x 80
    # layers x 1024 x 5 fp32) (unit "fp8 training").
    "fp8_transformer_engine": (
        ["--model", "llama2-70b", "--seq", "4096", "--tp", "8", "--sp", "--framework", "megatron-core",
         "--attention", "cudnn"],
        ["--model", "llama2-70b", "--seq", "4096", "--tp", "8", "--sp", "--framework", "megatron-core",
         "--attention", "cudnn", "--fp8", "te"],
        {"other": 17_112_760_320 + 6_553_600}),
    # DeepSpeed ZeRO-2 keeps one reduction bucket of reduce_bucket_size bf16 elements (5e8 by
    # default, stage_1_and_2.py ipg_buffer): 1e8 instead saves 4e8 x 2 bytes.
    "deepspeed_reduce_bucket_size": (L7_2048 + ["--dp", "8", "--zero", "2", "--framework", "deepspeed"],
                                     L7_2048 + ["--dp", "8", "--zero", "2", "--framework", "deepspeed",
                                                "--reduce-bucket-size", "1e8"],
                                     {"other": -8e8}),
    # allgather_bucket_size sizes no buffer (stages 1 and 2 gather in place into their flat buffer,
    # runtime/utils.py all_gather_dp_groups): nothing moves. This pins the rule, not the flag's
    # wiring (an ignored flag would pass too); the library's unit test holds the same rule.
    "deepspeed_allgather_bucket_size": (L7_2048 + ["--dp", "8", "--zero", "2", "--framework", "deepspeed"],
                                        L7_2048 + ["--dp", "8", "--zero", "2", "--framework", "deepspeed",
                                                   "--allgather-bucket-size", "5e9"],
                                        {"other": 0, "activations": 0, "grads": 0, "optimizer": 0}),
    # ZeRO-3 gathers the running layer (llama2-7b's 202,383,360 weights) and prefetches up to 5e7
    # more while the live total stays under stage3_max_live_parameters (partitioned_param_coordinator
    # .py, fetch_sub_module). With a reuse distance of 1e8 (no layer kept across the turn), 2.2e8
    # live leaves 17,616,640 for the prefetch instead of 5e7: 32,383,360 x 2 bytes fewer.
    "deepspeed_stage3_max_live_parameters": (
        L7_2048 + ["--dp", "8", "--zero", "3", "--framework", "deepspeed", "--stage3-max-reuse-distance", "1e8"],
        L7_2048 + ["--dp", "8", "--zero", "3", "--framework", "deepspeed", "--stage3-max-reuse-distance", "1e8",
                   "--stage3-max-live-parameters", "2.2e8"],
        {"other": -(202_383_360 + 50_000_000 - 220_000_000) * 2}),
    # A frozen projector (LLaVA's stage 2 with the projector frozen): LLaVA-1.5's MLP projector,
    # 1024 x 4096 + 4096 + 4096 x 4096 + 4096 = 20,979,712 weights, loses its bf16 gradients and its
    # fp32 master and Adam states (12 bytes).
    "train_frozen_projector": (["--model", "llava1.5-7b", "--seq", "2048", "--train", "projector,llm"],
                               ["--model", "llava1.5-7b", "--seq", "2048", "--train", "llm"],
                               {"grad_buffers": -20_979_712 * 2, "optimizer": -20_979_712 * 12}),
    # Training the vision tower too: CLIP ViT-L/14-336's 303,507,456 weights (counted tensor by
    # tensor in tests/unit/test_model.cpp) gain bf16 gradients and fp32 master and Adam states.
    "train_vision_tower": (["--model", "llava1.5-7b", "--seq", "2048", "--train", "projector,llm"],
                           ["--model", "llava1.5-7b", "--seq", "2048", "--train", "vision,projector,llm"],
                           {"grad_buffers": 303_507_456 * 2, "optimizer": 303_507_456 * 12}),
}


def main():
    if sys.argv[1:] == ["--list"]:
        print(";".join(CASES), end="")
        return
    exe, name = sys.argv[1], sys.argv[2]
    base_args, flag_args, expected = CASES[name]
    base, flagged = memory(exe, base_args), memory(exe, flag_args)
    if callable(expected):
        expected = expected(base, flagged)
    failed = False
    for field, want in expected.items():
        got = flagged["stages"][0][field] - base["stages"][0][field]
        ok = abs(got - want) <= 4 + 1e-9 * abs(want)
        failed |= not ok
        print(f"{name}: stage 0 {field} changes by {got:,} bytes, by hand {want:,.0f}{'' if ok else '  <- MISMATCH'}")
    if failed:
        sys.exit(f"FAILED: {name}")


if __name__ == "__main__":
    main()
