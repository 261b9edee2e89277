#!/usr/bin/env bash
# What TRAINPERF_NATIVE buys: examples/train_llama built twice from this tree, for this machine
# (-march=native, the default) and for baseline x86-64 (TRAINPERF_NATIVE=OFF), run alternately on
# the same GPT-2-124M-shaped Llama (12 layers, hidden 768, 12 heads, SwiGLU ffn 2048, vocabulary
# 50304) at llm.c's default B4 T64, with the same --peak-flops so that only tokens/s is compared.
# Prints each run's tokens/s (trainperf's meter, warm-up excluded) and the ratio of the means.
#   bench/native_speedup.sh [rounds] [steps] [seq] [lbs]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
steps=${2:-6}
seq=${3:-64}
lbs=${4:-4}
for variant in native baseline; do
  flag=ON
  [ "$variant" = baseline ] && flag=OFF
  cmake -S . -B "build-bench-$variant" -DCMAKE_BUILD_TYPE=Release -DTRAINPERF_NATIVE=$flag -DTRAINPERF_ENABLE_CUDA=OFF \
    -DTRAINPERF_BUILD_TESTS=OFF -DTRAINPERF_BUILD_BENCH=OFF >/dev/null
  cmake --build "build-bench-$variant" -j "$(nproc)" --target train_llama >/dev/null
done
run() {
  "build-bench-$1/examples/train_llama" --layers 12 --hidden 768 --heads 12 --kv-heads 12 --ffn 2048 --vocab 50304 \
    --seq "$seq" --lbs "$lbs" --steps "$steps" --eval-every 100000 --log-every 100000 --corpus-bytes 400000 \
    --peak-flops 1e12 | sed -n 's/^| .* | \([0-9.]*\) | [0-9.]* | .*$/\1/p' | head -1
}
declare -A sum=([native]=0 [baseline]=0)
for r in $(seq "$rounds"); do
  for variant in baseline native; do
    tps=$(run $variant)
    echo "round $r: $variant $tps tokens/s"
    sum[$variant]=$(python3 -c "print(${sum[$variant]} + $tps)")
  done
done
python3 -c "n, b = ${sum[native]}, ${sum[baseline]}; print(f'native / baseline = {n / b:.2f} (means {n / $rounds:.1f} and {b / $rounds:.1f} tokens/s, B$lbs T$seq, $steps steps, warm-up 2 excluded)')"
