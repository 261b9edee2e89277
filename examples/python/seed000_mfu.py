"""Seed 000's MFU cells as FlagPerf's llama2_70b case computes them by hand
(`chip_tps * 70e9 * 6 / theoryflops`, theoryflops 989e12 for the H800, truncated to one
decimal), rebuilt with trainperf: the convention named, the peak from the device table, and
the other conventions beside it. Run: PYTHONPATH=build/python python3 examples/python/seed000_mfu.py"""

import trainperf

model = trainperf.preset("llama2-70b")
rows = [("fp32", "TP8PP4DP1", 253.61, "10.7%"), ("amp", "TP8PP4DP1", 641.93, "27.2%"),
        ("amp", "TP4PP8DP1", 791.37, "33.6%")]

# FlagPerf's line: 6 x N_nominal FLOPs per token (N = 70e9), attention not counted.
nominal = trainperf.count_flops(model, convention="nominal", params=trainperf.nominal_params("llama2-70b"))
suite_peak = 989e12  # FlagPerf's theoryflops for the H800 (the datasheet's 989.4 rounded)
print(f"llama2-70b, 32 x H800, seq 4096: nominal {nominal['model_per_token']:.3g} FLOPs/token")
for precision, layout, tps, printed in rows:
    mfu = trainperf.mfu(nominal["model_per_token"], tps, suite_peak)
    truncated = int(mfu * 1000) / 10  # the suite truncates to one decimal
    # The honest peak for the row's precision: TF32 tensor cores for fp32, bf16 otherwise.
    dtype = "tf32" if precision == "fp32" else "bf16"
    honest = trainperf.mfu(nominal["model_per_token"], tps, trainperf.peak_flops("H800", dtype))
    palm = trainperf.count_flops(model, convention="palm", seq=4096)["model_per_token"]
    causal = trainperf.count_flops(model, convention="megatron", seq=4096, causal=True)["model_per_token"]
    print(f"  {precision:4} {layout}  {tps:7.2f} token/p/s  printed {printed:>5}  nominal {truncated}%"
          f"  vs the {dtype} peak {honest:.2%}  palm {trainperf.mfu(palm, tps, suite_peak):.2%}"
          f"  megatron causal {trainperf.mfu(causal, tps, suite_peak):.2%}")
    assert f"{truncated}%" == printed
