#!/usr/bin/env bash
# train_llama under the layouts the parallel tests check, at a larger size than the tests: what
# training adds to each rank's peak RSS beside trainperf's memory model of that rank's stage, and
# the step time (fastest and median after 2 warm-up steps), all runs in one script one after
# the other, the same global batch (lbs x gas sequences). One thread per rank: TP1 runs 1
# process, DP2 (also with ZeRO-1), TP2 (also with SP) and PP2 2, TP2 x PP2 4 (oversubscribed on
# a 2-core machine: its step time is not comparable, its memory is).
#   bench/parallel_layouts.sh [build-dir] [seq] [lbs] [gas] [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
seq=${2:-256}
lbs=${3:-4}
gas=${4:-2}
steps=${5:-5}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# GPT-2-124M-shaped Llama with 4 KV heads (so that TP2 splits them), vocabulary 50304.
model=(--layers 12 --hidden 768 --heads 12 --kv-heads 4 --ffn 2048 --vocab 50304)
common=(--seq "$seq" --gas "$gas" --steps "$steps" --eval-every 100000 --log-every 100 --corpus-bytes 400000 --threads 1
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
  echo "== $name: $np process(es), LBS $b x GAS $gas per replica"
  grep -E "^memory|^step time|TP[0-9]+PP" <<<"$out"
}
run TP1 1 "$lbs"
run DP2 2 $((lbs / 2)) --dp 2
run DP2-ZeRO1 2 $((lbs / 2)) --dp 2 --zero 1
run TP2 2 "$lbs" --tp 2
run TP2-SP 2 "$lbs" --tp 2 --sp
run PP2 2 "$lbs" --pp 2
run TP2xPP2 4 "$lbs" --tp 2 --pp 2
