#!/usr/bin/env bash
# train_llama under each layout the parallel tests check (TP1, DP2, TP2, TP2 x DP2), at a larger
# size than the tests: what training adds to each rank's peak RSS beside trainperf's memory model
# of that rank, and the step time (fastest and median after 2 warm-up steps), all runs in one
# script one after the other. One thread per rank, so that every layout uses the same cores:
# TP1 runs 1 process, DP2 and TP2 2, TP2 x DP2 4 (oversubscribed on a 2-core machine: its step
# time is not comparable, its memory is).
#   bench/parallel_layouts.sh [build-dir] [seq] [lbs] [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
seq=${2:-256}
lbs=${3:-4}
steps=${4:-5}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# GPT-2-124M-shaped Llama with 4 KV heads (so that TP2 splits them), vocabulary 50304.
model=(--layers 12 --hidden 768 --heads 12 --kv-heads 4 --ffn 2048 --vocab 50304)
common=(--seq "$seq" --steps "$steps" --eval-every 100000 --log-every 100 --corpus-bytes 400000 --threads 1
  --peak-flops 1e11)
run() {  # name processes lbs flags...
  local name=$1 np=$2 b=$3
  shift 3
  local out
  if [ "$np" -eq 1 ]; then
    out=$("$build/examples/train_llama" "${model[@]}" "${common[@]}" --lbs "$b" "$@")
  else
    out=$(mpirun -n "$np" --oversubscribe "$build/examples/train_llama" "${model[@]}" "${common[@]}" --lbs "$b" "$@")
  fi
  echo "== $name: $np process(es), LBS $b per replica, global batch $((lbs)) x $seq tokens"
  grep -E "^memory|^step time|TP[0-9]+PP" <<<"$out"
}
run TP1 1 "$lbs"
run DP2 2 $((lbs / 2)) --dp 2
run TP2 2 "$lbs" --tp 2
run TP2xDP2 4 $((lbs / 2)) --tp 2 --dp 2
