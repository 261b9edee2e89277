#!/usr/bin/env bash
# Everything the CUDA issue measures, in one go on a machine with an NVIDIA GPU (about 5-8
# minutes on 16 cores and an H100): build, the GPU tests (kernels against the CPU kernels,
# NCCL, the trainer's GPU-vs-CPU losses), the matmul benchmark against cuBLASLt, attention
# against PyTorch's SDPA (needs python3 with torch), and a GPU training run. Logs go to
# $OUT (or ./gpu-results) and a summary is printed last.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-gpu-results}
mkdir -p "$out"
jobs=$(nproc 2>/dev/null || echo 4)
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total --format=csv >"$out/gpu.txt" 2>&1
# TRAINPERF_GPU_PREBUILT=1: build-gpu was built elsewhere (the GPU machine has no Eigen, fmt or
# doctest, or its time is short), e.g. on a workstation with nvcc:
#   cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DTRAINPERF_NATIVE=OFF -DCMAKE_CUDA_ARCHITECTURES=90a
#   cmake --build build-gpu --target gpu_matmul gpu_attention gpu_ops gpu_nccl train_llama bench_matmul bench_attention
# (the CTest files hold that machine's absolute paths: run from the same path there).
if [ "${TRAINPERF_GPU_PREBUILT:-0}" != 1 ]; then
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DTRAINPERF_BUILD_EXAMPLES=ON >"$out/configure.log" 2>&1 &&
    cmake --build build-gpu -j "$jobs" --target gpu_matmul gpu_attention gpu_ops gpu_nccl train_llama bench_matmul \
      bench_attention >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
fi
ctest --test-dir build-gpu -L gpu --output-on-failure >"$out/gpu_tests.log" 2>&1
tests_rc=$?
build-gpu/bench/gpu/bench_matmul >"$out/bench_matmul.log" 2>&1
python3 bench/gpu/attention_vs_sdpa.py --bench build-gpu/bench/gpu/bench_attention >"$out/attention_vs_sdpa.log" 2>&1
build-gpu/examples/train_llama --device cuda --heads 2 --kv-heads 1 --steps 300 >"$out/train_llama_cuda.log" 2>&1
echo "== $(head -2 "$out/gpu.txt" | tail -1)"
echo "== GPU tests (rc $tests_rc)"; grep -E "tests passed|Failed|Passed|Skipped" "$out/gpu_tests.log" | tail -12
echo "== matmul vs cuBLASLt"; tail -12 "$out/bench_matmul.log"
echo "== attention vs SDPA"; tail -14 "$out/attention_vs_sdpa.log"
echo "== train_llama --device cuda"; tail -6 "$out/train_llama_cuda.log"
