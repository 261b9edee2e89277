#!/usr/bin/env bash
# Tokens/s and MFU of examples/train_llama on a GPT-2-124M-shaped Llama (12 layers, hidden
# 768, 12 heads, SwiGLU ffn 2048 = GPT-2's MLP parameter count, vocabulary 50304) on this
# machine, against its fp32 GEMM peak measured by the trainer's probe in the same run, with a
# per-kernel time breakdown (--profile). The first 2 steps are warm-up (trainperf's meter).
#   bench/trainer_mfu.sh [build-dir] [seq] [lbs] [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
seq=${2:-256}
lbs=${3:-4}
steps=${4:-5}
"$build/examples/train_llama" --layers 12 --hidden 768 --heads 12 --kv-heads 12 --ffn 2048 --vocab 50304 \
  --seq "$seq" --lbs "$lbs" --steps "$steps" --eval-every 100000 --log-every 1 --corpus-bytes 400000 --profile
