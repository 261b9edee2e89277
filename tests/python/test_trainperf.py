"""trainperf's Python module against the C++ library: each function's result equals the
command-line tool's (the same headers reached through another path, `trainperf ... --json`) on
the seed configurations, published figures are met, and errors arrive as ConfigError with the
C++ message and field. Run by CTest with PYTHONPATH at the build tree's package and
TRAINPERF_CLI naming the tool; TRAINPERF_SEED_REPORTS the seed reports' folder."""

import json
import math
import os
import subprocess
import unittest

import trainperf

CLI = os.environ.get("TRAINPERF_CLI", "")
SEEDS = os.environ.get("TRAINPERF_SEED_REPORTS", "")


def cli(*args, ok=(0,)):
    out = subprocess.run([CLI, *args, "--json"], capture_output=True, text=True, check=False)
    if out.returncode not in ok:
        raise AssertionError(f"trainperf {' '.join(args)}: exit {out.returncode}: {out.stderr}")
    return json.loads(out.stdout)


@unittest.skipUnless(CLI, "TRAINPERF_CLI is not set")
class SameNumbersAsTheTool(unittest.TestCase):
    def test_params(self):
        for name in ("llama2-70b", "llama2-7b", "gpt3-6.7b", "llava1.5-7b", "mixtral-8x7b"):
            py = trainperf.count_params(trainperf.preset(name))
            c = cli("params", "--model", name)
            self.assertEqual(py["total"], c["total"], name)
            self.assertEqual(py["embedding"], c["embedding"], name)
            for k, v in c["components"].items():
                self.assertEqual(py[k], v, f"{name} {k}")
        # Published: GPT-2 124M has 124,439,808 parameters (Radford et al. 2019, tied embeddings).
        self.assertEqual(trainperf.count_params(trainperf.preset("gpt2-124m"))["total"], 124_439_808)

    def test_flops_every_convention(self):
        m = trainperf.preset("llama2-70b")
        for conv in ("palm", "megatron", "kaplan", "nominal"):
            # The tool's nominal N is the preset's round size (70e9); the module takes it explicitly.
            n = trainperf.nominal_params("llama2-70b") if conv == "nominal" else 0.0
            py = trainperf.count_flops(m, convention=conv, seq=4096, params=n)
            c = cli("flops", "--model", "llama2-70b", "--seq", "4096", "--convention", conv)
            self.assertEqual(py["model_per_token"], c["flops_per_token"], conv)
            self.assertEqual(py["forward_per_token"], c["forward_flops_per_token"], conv)
        py = trainperf.count_flops(m, convention="megatron", seq=4096, causal=True, recompute="full")
        c = cli("flops", "--model", "llama2-70b", "--seq", "4096", "--convention", "megatron", "--causal",
                "--recompute", "full")
        self.assertEqual(py["hardware_per_token"], c["hardware_flops_per_token"])

    def test_seed000_mfu_as_the_suite_prints_it(self):
        # Seed 000: 791.37 token/p/s x 6 x 70e9 / 989e12 = 33.61%, printed 33.6% (truncated).
        f = trainperf.count_flops(trainperf.preset("llama2-70b"), convention="nominal", params=70e9)
        self.assertEqual(f["model_per_token"], 6 * 70e9)
        mfu = trainperf.mfu(f["model_per_token"], 791.37, 989e12)
        self.assertEqual(int(mfu * 1000) / 10, 33.6)
        c = cli("mfu", "--model", "llama2-70b", "--convention", "nominal", "--peak-flops", "989e12",
                "--tokens-per-device-per-s", "791.37")
        self.assertEqual(mfu, c["mfu"])
        self.assertEqual(trainperf.peak_flops("H800", "bf16"), trainperf.device("H800")["peak_flops"]["bf16"])

    def test_devices(self):
        c = cli("devices")
        rows = c["devices"] if isinstance(c, dict) else c
        self.assertEqual(sorted(trainperf.devices()), sorted(d["name"] for d in rows))
        for d in rows:
            py = trainperf.device(d["name"])
            self.assertEqual(py["memory_bytes"], d["memory_bytes"], d["name"])
            self.assertEqual(py["peak_flops"], d["peak_flops"], d["name"])

    def test_throughput_conversions_seed004(self):
        # Seed 004: "17.23 * 2048 / 8 = 4410 tokens/s" (samples/s of the node, sequence 2048, 8 devices).
        tps = trainperf.tokens_per_device_per_s_from_samples(17.23, 2048, 8)
        self.assertAlmostEqual(tps, 4410.88)
        m = trainperf.preset("gpt3-6.7b")
        mfu = trainperf.utilization(trainperf.count_flops(m, convention="palm", seq=2048)["model_per_token"], tps,
                                    trainperf.peak_flops("A100-80GB", "fp16"))
        c = cli("mfu", "--model", "gpt3-6.7b", "--seq", "2048", "--device", "A100-80GB", "--dtype", "fp16",
                "--samples-per-s", "17.23", "--devices", "8")
        self.assertEqual(tps, c["tokens_per_device_per_s"])
        self.assertEqual(mfu, c["mfu"])
        # The same rate as a step: 1024 sequences of 2048 in 1024 / 17.23 s on 8 devices.
        self.assertAlmostEqual(trainperf.tokens_per_device_per_s_from_step(1024 / 17.23, 1024, 2048, 8), 4410.88)

    def test_batch_seed004(self):
        # Seed 004: 4 per device x 32 accumulation x 8 = 1024 sequences of 2048 = 2M tokens.
        py = trainperf.solve_batch(lbs=4, gas=32, dp=8, seq=2048)
        c = cli("batch", "--lbs", "4", "--gas", "32", "--dp", "8", "--seq", "2048")
        self.assertEqual(py["gbs"], 1024)
        self.assertEqual(py["gbs"], c["gbs"])
        self.assertEqual(py["tokens_per_step"], c["tokens_per_step"])
        self.assertEqual(trainperf.solve_batch(gbs=1024, gas=128, dp=4)["lbs"], 2)

    def test_check_parallel_lists_every_broken_rule(self):
        config = trainperf.ParallelConfig(tp=3)
        py = trainperf.check_parallel(config, world=8, model=trainperf.preset("llama2-7b"))
        c = cli("check-config", "--model", "llama2-7b", "--world", "8", "--tp", "3", ok=(1,))
        self.assertEqual(py, [(v["field"], v["message"]) for v in c["violations"]])
        self.assertEqual(trainperf.check_parallel(trainperf.ParallelConfig(tp=8, pp=4), world=32), [])

    def test_layout_groups_as_megatron_documents_them(self):
        # megatron/core/parallel_state.py's docstring: 16 GPUs, TP 2, PP 4 -> 8 tensor groups
        # [g0, g1], [g2, g3], ...; 4 pipeline groups [g0, g4, g8, g12], ...; 8 data groups
        # [g0, g2], [g1, g3], [g4, g6], ...
        layout = trainperf.Layout(16, trainperf.ParallelConfig(tp=2, pp=4))
        self.assertEqual(layout.groups("tp")[:2], [[0, 1], [2, 3]])
        self.assertEqual(layout.groups("pp"), [[0, 4, 8, 12], [1, 5, 9, 13], [2, 6, 10, 14], [3, 7, 11, 15]])
        self.assertEqual(layout.groups("dp")[:3], [[0, 2], [1, 3], [4, 6]])
        c = cli("layout", "--world", "16", "--tp", "2", "--pp", "4", "--all")
        for name, groups in c["groups"].items():
            self.assertEqual(layout.groups(name), groups, name)
        self.assertEqual(layout.coords(5), {"tp": 1, "cp": 0, "dp": 0, "pp": 1, "ep": 0})

    def test_schedule(self):
        py = trainperf.make_schedule("1f1b", 2, 4)
        c = cli("schedule", "--pp", "2", "--microbatches", "4", "--kind", "1f1b")
        self.assertEqual(py["bubble_fraction"], c["bubble_fraction"])  # (p - 1) / m = 0.25
        self.assertEqual([[f"{p}{m}" for p, m, _ in stage] for stage in py["stages"]], c["actions"])

    def test_memory_seed000(self):
        # Seed 000's amp TP4 PP8 layout under Megatron-LM's accounting.
        m = trainperf.preset("llama2-70b")
        config = trainperf.ParallelConfig(tp=4, pp=8, sequence_parallel=True, distributed_optimizer=True)
        py = trainperf.estimate_memory(m, config, 32, lbs=1, seq=4096, micro_batches=44, framework="megatron",
                                       flash_attention=True)
        c = cli("memory", "--model", "llama2-70b", "--seq", "4096", "--tp", "4", "--pp", "8", "--dp", "1", "--sp",
                "--distributed-optimizer", "--gas", "44", "--lbs", "1", "--framework", "megatron", "--flash")
        self.assertEqual(len(py["stages"]), 8)
        for s, t in zip(py["stages"], c["stages"]):
            for k in ("params", "grads", "optimizer", "activations", "total"):
                self.assertAlmostEqual(s[k], t[k], delta=1.0, msg=f"stage {s['stage']} {k}")
        # The further options as keywords, against the tool's flags: seed 002's R300 run (DeepSpeed
        # ZeRO-3, fp16, full recompute, no flash attention, eager fp32 softmax), with dropout.
        z3 = trainperf.ParallelConfig(zero_stage=3, recompute="full")
        py = trainperf.estimate_memory(trainperf.preset("llama2-7b"), z3, 8, lbs=12, seq=512, param_dtype="fp16",
                                       framework="deepspeed", flash_attention=False, fp32_softmax=True, dropout=True,
                                       optimizer="adam_8bit")
        c = cli("memory", "--model", "llama2-7b", "--seq", "512", "--lbs", "12", "--dp", "8", "--zero", "3",
                "--recompute", "full", "--dtype", "fp16", "--framework", "deepspeed", "--attention", "eager",
                "--dropout", "--optimizer", "adamw8bit")
        self.assertAlmostEqual(py["max_total"], max(t["total"] for t in c["stages"]), delta=1.0)
        # FSDP's wrapping and PyTorch's loss_parallel() as keywords, against the flags. The root's
        # bf16 embedding, split over tp 2, is 32000 x 4096 / 2 x 2 = 131,072,000 bytes: the gap to
        # the default wrapping.
        fsdp_tp = trainperf.ParallelConfig(tp=2, zero_stage=3)
        py = trainperf.estimate_memory(trainperf.preset("llama2-7b"), fsdp_tp, 16, seq=2048, framework="fsdp",
                                       fsdp_embedding_resharded=True, loss="loss-parallel")
        c = cli("memory", "--model", "llama2-7b", "--seq", "2048", "--tp", "2", "--dp", "8", "--zero", "3",
                "--framework", "fsdp", "--fsdp-embedding-resharded", "--loss", "loss-parallel")
        self.assertAlmostEqual(py["max_total"], max(t["total"] for t in c["stages"]), delta=1.0)
        root = trainperf.estimate_memory(trainperf.preset("llama2-7b"), fsdp_tp, 16, seq=2048, framework="fsdp",
                                         loss="loss-parallel")
        self.assertAlmostEqual(root["max_total"] - py["max_total"], 32000 * 4096 * 2 / 2, delta=1.0)
        # flash-attn's fused cross entropy as a keyword: 2 + 2 bytes per logit where the default eager
        # loss holds 12 and leaves its freed 16-bit block (2) reserved, 2048 x 32000 x 10 bytes fewer
        # (with a fused Adam step, whose missing temporary leaves the loss at the peak).
        eager = trainperf.estimate_memory(trainperf.preset("llama2-7b"), trainperf.ParallelConfig(), 1, seq=2048,
                                          adam_step="fused")
        fused = trainperf.estimate_memory(trainperf.preset("llama2-7b"), trainperf.ParallelConfig(), 1, seq=2048,
                                          adam_step="fused", loss="fused")
        self.assertAlmostEqual(eager["max_total"] - fused["max_total"], 2048 * 32000 * 10, delta=1.0)
        # Its bf16 gradients, 6,738,415,616 x 2 bytes, are created in the backward under the saved
        # activations (about 18 GiB here), so the peak holds only the first, the output layer's
        # (32000 x 4096 x 2 bytes); persistent_grads keeps them all step.
        kept = trainperf.estimate_memory(trainperf.preset("llama2-7b"), trainperf.ParallelConfig(), 1, seq=2048,
                                         adam_step="fused", persistent_grads=True)
        self.assertEqual(eager["stages"][0]["grads"], 32000 * 4096 * 2)
        self.assertAlmostEqual(eager["stages"][0]["grad_buffers"], 6738415616 * 2, delta=1.0)
        self.assertAlmostEqual(kept["max_total"] - eager["max_total"], 6738415616 * 2 - 32000 * 4096 * 2, delta=1.0)
        # What it needs to fit leaves out the runtime overhead (6.2 GiB by default).
        self.assertAlmostEqual(eager["max_total"] - eager["max_need"], 6.2 * 2**30, delta=1.0)
        # Gradient buffers under megatron-core: None keeps its fp32 main grads, False is
        # --grad-reduce-in-bf16, 6,738,415,616 weights x 2 bytes fewer.
        mcore = dict(seq=2048, framework="megatron-core", adam_step="fused")
        fp32 = trainperf.estimate_memory(trainperf.preset("llama2-7b"), trainperf.ParallelConfig(), 1, **mcore)
        bf16 = trainperf.estimate_memory(trainperf.preset("llama2-7b"), trainperf.ParallelConfig(), 1,
                                         fp32_grads=False, **mcore)
        self.assertAlmostEqual(fp32["stages"][0]["grads"] - bf16["stages"][0]["grads"], 6738415616 * 2, delta=1.0)
        with self.assertRaises(trainperf.ConfigError) as e:
            trainperf.estimate_memory(m, config, 32, seq=4096, droput=True)
        self.assertIn("unknown memory option 'droput'", str(e.exception))
        for bad in ({"dropout": "yes"}, {"optimizer": 3}, {"dropout": None}):
            with self.assertRaises(trainperf.ConfigError) as e:
                trainperf.estimate_memory(m, config, 32, seq=4096, **bad)
            self.assertEqual(e.exception.field, next(iter(bad)))

    def test_predict_and_plan(self):
        # Seed 000's amp TP4 PP8 layout on 32 H800s, GBS 44.
        m = trainperf.preset("llama2-70b")
        config = trainperf.ParallelConfig(tp=4, pp=8, sequence_parallel=True)
        py = trainperf.predict_step(m, config, device="H800", devices=32, gbs=44, seq=4096, framework="megatron",
                                    flash_attention=True)
        c = cli("predict", "--model", "llama2-70b", "--seq", "4096", "--tp", "4", "--pp", "8", "--sp", "--flash",
                "--framework", "megatron", "--device", "H800", "--devices", "32", "--gbs", "44")
        self.assertEqual(py["step_time"], c["step_time_s"])
        self.assertEqual(py["mfu"], c["mfu"])
        self.assertEqual(py["breakdown"], c["breakdown"])
        # The gradient buffers' dtype as a keyword, against --grad-dtype: the same need, the same step.
        py = trainperf.predict_step(m, config, device="H800", devices=32, gbs=44, seq=4096, framework="megatron",
                                    flash_attention=True, fp32_grads=False)
        c = cli("predict", "--model", "llama2-70b", "--seq", "4096", "--tp", "4", "--pp", "8", "--sp", "--flash",
                "--framework", "megatron", "--device", "H800", "--devices", "32", "--gbs", "44", "--grad-dtype", "bf16")
        self.assertEqual(py["step_time"], c["step_time_s"])
        self.assertAlmostEqual(py["memory_max"] / 2**30, c["memory_max_gib"], delta=1e-9)
        with self.assertRaises(trainperf.ConfigError) as e:  # a dp the devices do not leave
            trainperf.predict_step(m, trainperf.ParallelConfig(tp=4, pp=8, dp=2), device="H800", devices=32, gbs=44,
                                   seq=4096)
        self.assertEqual(e.exception.field, "dp")
        py = trainperf.plan(trainperf.preset("llama2-7b"), device="H100", devices=16, gbs=64, seq=4096, top=3,
                            framework="megatron-core")
        c = cli("plan", "--model", "llama2-7b", "--seq", "4096", "--framework", "megatron-core", "--device", "H100",
                "--devices", "16", "--gbs", "64", "--top", "3")
        self.assertEqual(len(py["candidates"]), 3)
        for a, b in zip(py["candidates"], c["candidates"]):
            self.assertEqual((a["tp"], a["pp"], a["dp"], a["cp"], a["vpp"], a["lbs"]),
                             (b["tp"], b["pp"], b["dp"], b["cp"], b["vpp"], b["lbs"]))
            self.assertEqual(a["step_time"], b["step_time_s"])
        for bad in ({"top": 0}, {"threads": -1}):
            with self.assertRaises(trainperf.ConfigError):
                trainperf.plan(trainperf.preset("llama2-7b"), device="H100", devices=16, gbs=64, seq=4096, **bad)

    @unittest.skipUnless(SEEDS, "TRAINPERF_SEED_REPORTS is not set")
    def test_check_report(self):
        path = os.path.join(SEEDS, "seed001.md")
        py = trainperf.check_report(path)
        c = cli("check-report", path, ok=(1,))
        self.assertEqual([f["kind"] for f in py["findings"]], [f["kind"] for f in c["findings"]])
        self.assertEqual(py["findings"][-1]["expected"], "39.54%")  # 2937 x 6 x 7e9 / 312e12


class ErrorsAndHelpers(unittest.TestCase):
    def test_config_error(self):
        with self.assertRaises(trainperf.ConfigError) as e:
            trainperf.preset("llama2-70")
        self.assertIsInstance(e.exception, ValueError)
        self.assertEqual(e.exception.field, "model")
        self.assertIn("did you mean llama2-70b", str(e.exception))
        with self.assertRaises(trainperf.ConfigError) as e:
            trainperf.solve_batch(gbs=1000, lbs=4, dp=8)
        self.assertIn("global batch 1000 is not a multiple of micro batch 4 x data parallel 8 = 32", str(e.exception))
        with self.assertRaises(trainperf.ConfigError) as e:
            trainperf.count_flops(trainperf.preset("tiny"), convention="chinchilla")
        self.assertEqual(e.exception.field, "convention")
        with self.assertRaises(trainperf.ConfigError) as e:  # an MFU above 100% is refused
            trainperf.mfu(6 * 70e9, 5000, 989e12)
        self.assertIn("100%", str(e.exception))

    def test_model_from_a_dict(self):
        # meta-llama/Llama-2-7b-hf config.json's shape fields: 6,738,415,616 parameters (the Hub's count).
        m = trainperf.model_from_hf_config({
            "model_type": "llama", "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 11008,
            "max_position_embeddings": 4096, "num_attention_heads": 32, "num_hidden_layers": 32,
            "num_key_value_heads": 32, "vocab_size": 32000, "tie_word_embeddings": False})
        self.assertEqual(trainperf.count_params(m)["total"], 6_738_415_616)
        self.assertIn("layers=32", repr(m))
        self.assertEqual(m.to_dict()["ffn"], 11008)
        with self.assertRaises(TypeError):  # no path
            trainperf.model_from_hf_config(None)
        config = trainperf.ParallelConfig(tp=2, ep=4, sequence_parallel=True, recompute="selective")
        self.assertIn("ep=4", repr(config))
        self.assertIn("sequence_parallel=True", repr(config))
        self.assertEqual(config.to_dict()["recompute"], "selective")

    def test_meter_around_a_loop(self):
        meter = trainperf.Meter(model_flops_per_token=1.0, peak_flops=1e15, devices=8, warmup_steps=1)
        for _ in range(3):
            with meter.timed(tokens=8 * 4096):
                sum(range(1000))
        stats = meter.running()
        self.assertEqual(stats["steps"], 2)  # the first step is warm-up
        self.assertAlmostEqual(stats["tokens_per_device_per_s"], stats["tokens"] / stats["seconds"] / 8)
        self.assertTrue(math.isclose(stats["mfu"], stats["tokens_per_device_per_s"] * 1.0 / 1e15, rel_tol=1e-12))
        with self.assertRaises(trainperf.ConfigError):
            with meter.timed():
                pass
        meter.start()
        sum(range(1000))
        meter.stop(sequences=8, seq=4096)
        self.assertEqual(meter.running()["steps"], 3)
        with self.assertRaises(trainperf.ConfigError):
            meter.stop(tokens=1)  # no start
        self.assertEqual(trainperf.zero_shard(10, 4, 3), (9, 12))  # 10 elements padded to 12 over 4 ranks
        # Llama 2 70B at TP 8 (64 query heads, 8 KV heads, ffn 28672, vocabulary 32000): rank 3 holds
        # query heads 24..31, KV head 3, MLP columns 3 x 3584 .. 4 x 3584, vocabulary rows 12000..16000.
        self.assertEqual(trainperf.tensor_parallel_slice(trainperf.preset("llama2-70b"), 8, 3),
                         {"q_heads": (24, 32), "kv_heads": (3, 4), "ffn": (10752, 14336), "vocab": (12000, 16000)})
        # Seed 004 TP1PP1SH2SP8 (GBS 1024, LBS 4, DP 8): rank 3 reads samples 12..15 of micro-step 0.
        self.assertEqual(trainperf.data_shard(1024, 4, 8, 0, 0, 3), (12, 16))
        self.assertIn("steps_seen=4", repr(meter))  # three timed steps, one started and stopped
        self.assertEqual(repr(trainperf.Layout(16, trainperf.ParallelConfig(tp=2, pp=4))),
                         "Layout(world=16, tp=2, pp=4, dp=2)")
        stages = trainperf.partition_layers(80, pp=4)
        self.assertEqual([s["layers"] for s in stages], [20, 20, 20, 20])
        # 30 layers + the embedding + the loss over pp 4: 8 a stage, one fewer on the first and last.
        stages = trainperf.partition_layers(30, pp=4, embedding_as_layer=True, loss_as_layer=True)
        self.assertEqual([s["layers"] for s in stages], [7, 8, 8, 7])
        # Llama 3.1 405B over pp 8 x vpp 8 (NeMo's layout): valid only with both counted, as the CLI says.
        l405 = trainperf.preset("llama3-405b")
        plain = trainperf.ParallelConfig(tp=8, pp=8, vpp=8)
        self.assertEqual([f for f, _ in trainperf.check_parallel(plain, world=512, model=l405)], ["pp"])
        counted = trainperf.ParallelConfig(tp=8, pp=8, vpp=8, embedding_as_layer=True, loss_as_layer=True)
        self.assertEqual(trainperf.check_parallel(counted, world=512, model=l405), [])
        self.assertTrue(counted.to_dict()["loss_as_layer"])


if __name__ == "__main__":
    unittest.main()
