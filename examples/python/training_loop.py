"""A training-loop skeleton measured by trainperf's meter: the layout's process groups where
torch.distributed would take them, the step timed in a `with` block, token/p/s and MFU from
the library. No PyTorch needed to run it (the step is simulated); in a real trainer, put
torch.cuda.synchronize() at the end of the step so the time is the GPU's.
Run: PYTHONPATH=build/python python3 examples/python/training_loop.py"""

import time

import trainperf

world, rank = 16, 0
config = trainperf.ParallelConfig(tp=2, pp=2)
model = trainperf.preset("llama2-7b")
seq, lbs, gas = 4096, 1, 1
for field, message in trainperf.check_parallel(config, world=world, model=model, seq=seq):
    raise SystemExit(f"{field}: {message}")  # every broken rule, each with its fix
batch = trainperf.solve_batch(lbs=lbs, gas=gas, dp=world // (config.tp * config.pp), seq=seq)

layout = trainperf.Layout(world, config)
for kind in ("tp", "pp", "dp"):
    groups = layout.groups(kind)
    # With torch: handles = [torch.distributed.new_group(ranks) for ranks in groups] on every
    # rank, then keep the one that holds this rank.
    mine = next(g for g in groups if rank in g)
    print(f"{kind} groups {groups[:2]}...; rank {rank} is in {mine}")

flops = trainperf.count_flops(model, convention="megatron", seq=seq, causal=True)["model_per_token"]
peak = trainperf.peak_flops("H100", "bf16")
meter = trainperf.Meter(model_flops_per_token=flops, peak_flops=peak, devices=world, warmup_steps=1)
# The simulated step lasts what it would at 40% MFU on H100s.
step_seconds = batch["tokens_per_step"] * flops / (world * peak * 0.4)
for step in range(5):
    with meter.timed(sequences=batch["gbs"], seq=seq):
        time.sleep(step_seconds)  # forward, backward and the optimizer step of a real trainer
stats = meter.running()
print(f"GBS {batch['gbs']}: {stats['tokens_per_device_per_s']:.0f} token/p/s per device, "
      f"MFU {stats['mfu']:.1%} (megatron convention, causal; H100 dense bf16)")

# Before launching: the planner's best layouts for this model on 16 H100s at GBS 64.
best = trainperf.plan(model, device="H100", devices=world, gbs=64, seq=seq, top=3)
for c in best["candidates"]:
    print(f"  TP{c['tp']} PP{c['pp']} DP{c['dp']} CP{c['cp']} VPP{c['vpp']} LBS {c['lbs']}: "
          f"{c['step_time']:.2f} s/step, MFU {c['mfu']:.1%} (predicted), {c['memory_max'] / 2**30:.1f} GiB")
