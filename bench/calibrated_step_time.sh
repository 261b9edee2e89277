#!/usr/bin/env bash
# `trainperf calibrate` + `trainperf predict` against examples/train_llama's measured step time on
# this machine: for each run shape, ATTEMPTS times (calibrate, train, predict), the error of the
# prediction against the fastest step after warm-up and against the median
# (tests/trainer/calibrate_predicts.py --every). Shapes: the trainer's default run; a 4-layer
# hidden-512 model; the MFU probe's one wide layer; GPT-2-124M's shape (bench/trainer_mfu.sh) at
# sequence 64, llm.c's default. Where MPI and bench/mpi_link are: the default model as 2 processes of
# one thread, data-parallel (and with ZeRO-1), tensor-parallel (and with sequence parallelism) and
# pipeline-parallel, 1F1B and interleaved over 4 micro-batches (predict with the measured MPI link).
#   bench/calibrated_step_time.sh [build-dir] [attempts]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
attempts=${2:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() {  # steps, then the shape flags
  local steps=$1
  shift
  python3 tests/trainer/calibrate_predicts.py --every "$attempts" "$build/examples/trainperf" \
    "$build/examples/train_llama" "$work" "$steps" 1.0 -- "$@"
}
run 40 --model tiny --seq 128 --lbs 8
run 10 --model tiny --layers 4 --hidden 512 --heads 8 --kv-heads 8 --ffn 1408 --seq 256 --lbs 4
run 8 --model tiny --layers 1 --hidden 1024 --heads 8 --kv-heads 8 --ffn 4096 --seq 256 --lbs 4
run 6 --model tiny --layers 12 --hidden 768 --heads 12 --kv-heads 12 --ffn 2048 --vocab 50304 --seq 64 --lbs 4
if [ -x "$build/bench/mpi_link" ] && command -v mpiexec >/dev/null; then
  run_mpi() {  # layout, steps, then the shape flags
    local layout=$1 steps=$2
    shift 2
    python3 tests/trainer/calibrate_predicts.py --every "$attempts" --mpi "$(command -v mpiexec)" "$build/bench/mpi_link" \
      2 "$layout" "$build/examples/trainperf" "$build/examples/train_llama" "$work" "$steps" 1.0 -- "$@"
  }
  run_mpi "--dp 2" 40 --model tiny --seq 128 --lbs 4
  run_mpi "--tp 2" 40 --model tiny --seq 128 --lbs 8
  run_mpi "--tp 2 --sp" 40 --model tiny --seq 128 --lbs 8
  run_mpi "--dp 2 --zero 1" 40 --model tiny --seq 128 --lbs 4
  run_mpi "--pp 2 --gas 4" 40 --model tiny --seq 128 --lbs 4
  run_mpi "--pp 2 --vpp 2 --gas 4" 40 --model tiny --seq 128 --lbs 4
fi
