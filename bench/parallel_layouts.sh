#!/usr/bin/env bash
# train_llama under the layouts the parallel tests check, at a larger size than the tests: what
# training adds to each rank's peak RSS beside trainperf's memory model of that rank's stage, and
# the step time (fastest and median after 2 warm-up steps), all runs in one script one after
# the other, the same global batch (lbs x gas sequences). One thread per rank: TP1 runs 1
# process, DP2 (also with ZeRO-1), TP2 (also with SP) and PP2 2, TP2 x PP2 4 (oversubscribed on
# a 2-core machine: its step time is not comparable, its memory is), and trainperf predict's step
# time for the same layout from a calibration of this machine and its measured MPI link.
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
# The prediction beside each run: this machine calibrated with one thread at the run's shapes
# (`trainperf calibrate`), and the interconnect (MPI over shared memory between 2 processes)
# measured by mpi_link; `trainperf predict` then takes the layout, the batch and these alone
# (gradients reduced after the backward, not overlapped with it, as train_llama does; Q, K, V and
# gate, up each their own GEMM, as train_llama computes them).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/examples/trainperf" calibrate --model tiny "${model[@]}" --seq "$seq" --lbs "$lbs" --threads 1 \
  --name calibrated-cpu --devices-out "$work/device.json" --profile-out "$work/profile.json" >/dev/null
link=$(mpirun -n 2 "$build/bench/mpi_link")
echo "$link"
read -r -a link_flags <<<"$(sed -n 's/^flags: //p' <<<"$link")"
predict() {  # processes lbs dp layout flags... (predict derives dp from the devices)
  local np=$1 b=$2 dp=$3
  shift 3
  "$build/examples/trainperf" predict --model tiny "${model[@]}" --seq "$seq" --lbs "$b" --gbs $((b * gas * dp)) \
    --devices "$np" --devices-per-node "$np" --devices-file "$work/device.json" --device calibrated-cpu \
    --profile "$work/profile.json" --dtype fp32 --attention flash --optimizer adamw --overlap-grad-reduce off \
    --projections separate "${link_flags[@]}" "$@" --json |
    python3 -c 'import json, sys; print("predicted step time %.3f s" % json.load(sys.stdin)["step_time_s"])'
}
run() {  # name processes lbs dp "train_llama flags" "predict flags"
  local name=$1 np=$2 b=$3 dp=$4 flags=$5 pflags=$6
  local out
  # shellcheck disable=SC2086  # the flag lists split on spaces
  if [ "$np" -eq 1 ]; then
    out=$("$build/examples/train_llama" "${model[@]}" "${common[@]}" --lbs "$b" $flags)
  else
    out=$(mpirun -n "$np" --oversubscribe "$build/examples/train_llama" "${model[@]}" "${common[@]}" --lbs "$b" $flags)
  fi
  echo "== $name: $np process(es), LBS $b x GAS $gas per replica"
  grep -E "^memory|^step time|TP[0-9]+PP" <<<"$out"
  # shellcheck disable=SC2086
  predict "$np" "$b" "$dp" $pflags
}
run TP1 1 "$lbs" 1 "" ""
run DP2 2 $((lbs / 2)) 2 "--dp 2" ""
run DP2-ZeRO1 2 $((lbs / 2)) 2 "--dp 2 --zero 1" "--distributed-optimizer"
run TP2 2 "$lbs" 1 "--tp 2" "--tp 2"
run TP2-SP 2 "$lbs" 1 "--tp 2 --sp" "--tp 2 --sp"
run PP2 2 "$lbs" 1 "--pp 2" "--pp 2"
run TP2xPP2 4 "$lbs" 1 "--tp 2 --pp 2" "--tp 2 --pp 2"
