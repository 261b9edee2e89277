#!/usr/bin/env python3
"""trainperf's CUDA causal attention vs PyTorch's scaled_dot_product_attention, same shapes, same script.

Runs the bench_attention binary (built from bench/gpu/bench_attention.cu) and parses its CSV lines
    csv,attention,<fwd|bwd>,bf16,B,H,T,D,median_ms,tflops
then times torch.nn.functional.scaled_dot_product_attention(is_causal=True) in bf16 on the same
shapes, trying the flash, memory-efficient and cuDNN backends (torch.nn.attention.sdpa_kernel) and
keeping the fastest per direction. Prints ours/SDPA throughput ratios against the targets:
forward >= 70 %, backward >= 60 %.

FLOPs use FlashAttention-2's convention (Dao 2023, arXiv:2307.08691, section 4.1): forward
4 * B * H * T^2 * D / 2 for causal, backward 2.5 x forward; a ratio of throughputs is the ratio of
times, so the convention cancels out of the verdict.

Usage: attention_vs_sdpa.py [--bench PATH] [--reps N] [--shape B,H,T,D ...] [--strict]
"""
import argparse
import glob
import os
import subprocess
import sys

DEFAULT_SHAPES = [(8, 16, 2048, 128), (8, 16, 8192, 128), (8, 16, 2048, 64), (8, 16, 8192, 64)]
TARGET = {"fwd": 0.70, "bwd": 0.60}


def fwd_flops(b, h, t, d):
    return 4.0 * b * h * t * t * d / 2.0  # FlashAttention-2 section 4.1, causal halves it


def find_bench():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    hits = sorted(glob.glob(os.path.join(root, "build*", "bench", "gpu", "bench_attention")), key=os.path.getmtime)
    return hits[-1] if hits else None


def run_ours(bench, shapes, reps):
    cmd = [bench, "--reps", str(reps)]
    for s in shapes:
        cmd += ["--shape", ",".join(map(str, s))]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        sys.exit(f"attention_vs_sdpa: {' '.join(cmd)} exited with {proc.returncode}")
    ours = {}
    for line in proc.stdout.splitlines():
        f = line.strip().split(",")
        if len(f) == 10 and f[0] == "csv" and f[1] == "attention":
            key = (int(f[4]), int(f[5]), int(f[6]), int(f[7]))
            ours[(f[2], key)] = float(f[8])  # median ms
    return ours


def median_ms(torch, fn, reps, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def run_sdpa(torch, shape, reps):
    import torch.nn.functional as F

    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel  # PyTorch >= 2.3
    except ImportError:
        sys.exit(f"attention_vs_sdpa: torch {torch.__version__} lacks torch.nn.attention.sdpa_kernel (needs >= 2.3)")

    b, h, t, d = shape
    # Same memory layout as trainperf's kernels, [B, T, H, D]; SDPA sees [B, H, T, D] views.
    q, k, v = (torch.randn(b, t, h, d, device="cuda", dtype=torch.bfloat16).requires_grad_() for _ in range(3))
    dout = torch.randn(b, h, t, d, device="cuda", dtype=torch.bfloat16)
    best = {}
    for name in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION"):
        backend = getattr(SDPBackend, name, None)
        if backend is None:
            print(f"  SDPA {name}: not in this PyTorch")
            continue
        try:
            with sdpa_kernel([backend]):
                qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

                def fwd():
                    with torch.no_grad():
                        F.scaled_dot_product_attention(qt, kt, vt, is_causal=True)

                fwd_ms = median_ms(torch, fwd, reps)
                out = F.scaled_dot_product_attention(qt, kt, vt, is_causal=True)

                def bwd():
                    torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)

                bwd_ms = median_ms(torch, bwd, reps)
                del out
        except RuntimeError as e:  # backend unavailable for this shape / build / GPU
            print(f"  SDPA {name}: unavailable ({str(e).splitlines()[0][:100]})")
            continue
        print(f"  SDPA {name}: forward {fwd_ms:.3f} ms, backward {bwd_ms:.3f} ms")
        for direction, ms in (("fwd", fwd_ms), ("bwd", bwd_ms)):
            if direction not in best or ms < best[direction][0]:
                best[direction] = (ms, name)
    torch.cuda.empty_cache()
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", help="path to bench_attention (default: newest build*/bench/gpu/bench_attention)")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--shape", action="append", help="B,H,T,D (repeatable)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is not met")
    args = ap.parse_args()
    shapes = [tuple(int(x) for x in s.split(",")) for s in args.shape] if args.shape else DEFAULT_SHAPES
    bench = args.bench or find_bench()
    if not bench or not os.path.exists(bench):
        sys.exit("attention_vs_sdpa: bench_attention not found; build it (target bench_attention) or pass --bench")
    try:
        import torch
    except ImportError:
        sys.exit("attention_vs_sdpa: PyTorch is not importable here; it is needed for the SDPA baseline")
    if not torch.cuda.is_available():
        sys.exit("attention_vs_sdpa: PyTorch sees no CUDA device")

    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    ours = run_ours(bench, shapes, args.reps)
    rows, all_met = [], True
    for shape in shapes:
        print(f"SDPA B={shape[0]} H={shape[1]} T={shape[2]} D={shape[3]}:")
        best = run_sdpa(torch, shape, args.reps)
        for direction in ("fwd", "bwd"):
            mine = ours.get((direction, shape))
            if mine is None or direction not in best:
                rows.append((shape, direction, None, None, "-", None, "n/a"))
                all_met = False
                continue
            sdpa_ms, backend = best[direction]
            scale = 1.0 if direction == "fwd" else 2.5  # backward = 2.5 x forward (FlashAttention-2 4.1)
            flops = scale * fwd_flops(*shape)
            ratio = sdpa_ms / mine  # ours/SDPA throughput = their time / our time
            met = ratio >= TARGET[direction]
            all_met = all_met and met
            rows.append((shape, direction, flops / mine / 1e9, flops / sdpa_ms / 1e9, backend, ratio,
                         "met" if met else "not met"))

    print()
    print(f"{'shape B,H,T,D':<18} {'dir':<4} {'ours TF/s':>10} {'SDPA TF/s':>10} {'SDPA backend':<20} "
          f"{'ours/SDPA':>9} {'target':>7}  verdict")
    for shape, direction, ours_tf, sdpa_tf, backend, ratio, verdict in rows:
        fmt = lambda x, spec: format(x, spec) if x is not None else "-"
        print(f"{','.join(map(str, shape)):<18} {direction:<4} {fmt(ours_tf, '10.1f'):>10} {fmt(sdpa_tf, '10.1f'):>10} "
              f"{backend:<20} {fmt(ratio, '9.0%'):>9} {TARGET[direction]:>7.0%}  {verdict}")
    print(f"overall: {'all targets met' if all_met else 'targets not met'} "
          f"(forward >= {TARGET['fwd']:.0%}, backward >= {TARGET['bwd']:.0%} of the best SDPA backend)")
    return 1 if args.strict and not all_met else 0


if __name__ == "__main__":
    sys.exit(main())
