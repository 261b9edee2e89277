#!/usr/bin/env bash
# train_llama on the CPU against karpathy/llm.c's CPU trainer (train_gpt2.c, fp32) and against the
# same Llama model in eager PyTorch (bench/llama_torch.py), on this machine, alternately, at llm.c's
# default shape B4 T64 and at B4 T256 (issue 17, section 4). Prints every run's tokens/s, the
# means, the ratios train_llama / llm.c (target >= 3x) and train_llama / PyTorch (target >= 2x),
# and train_llama's MFU against the GEMM peak it measures in the same run (target >= 75% at T256).
#
#   bench/cpu_vs_llmc_pytorch.sh LLMC_DIR [rounds (3)] [steps (10)]
#   LLMC_DIR=/path/to/llm.c bench/cpu_vs_llmc_pytorch.sh [rounds] [steps]
#
# LLMC_DIR is a source checkout of https://github.com/karpathy/llm.c that you provide: this
# project never vendors or downloads it. Nothing in it is modified: its Makefile, train_gpt2.c and
# llmc/ are copied to a scratch directory ($SCRATCH, default build-bench-vs/ in this tree,
# git-ignored) and built there with llm.c's own Makefile (`make train_gpt2`: -Ofast
# -march=native, OpenMP when the compiler has it). train_gpt2.c's main() hard-codes B = 4, T = 64
# and 41 steps (with a validation pass every 10 steps and text generation every 20); the scratch
# copy is edited with sed so that main() takes them from its command line instead
# (`train_gpt2 B T LAST_STEP`, defaults unchanged), and nothing else is touched. Its inputs are
# generated here without internet: a randomly initialised GPT-2 124M checkpoint in llm.c's
# gpt2_124M.bin format (header magic 20240326, version 3: maxT 1024, vocab 50257 padded to 50304,
# 12 layers, 12 heads, 768 channels; weights N(0, 0.02), projections scaled by 1/sqrt(2L) as
# llm.c's init, layernorms at 1, biases 0) and random-token train/val files in its dataloader's
# format (magic 20240520, version 1, uint16 tokens) at the tinyshakespeare path train_gpt2.c
# reads. No tokenizer file: llm.c warns and does without (it only uses it to print samples).
#
# train_llama is built from this tree (Release, TRAINPERF_NATIVE=ON, CUDA off, no tests) and run
# on the GPT-2-124M-shaped Llama of bench/native_speedup.sh and bench/trainer_mfu.sh (12 layers,
# hidden 768, 12 heads, kv 12, SwiGLU ffn 2048, vocabulary 50304, untied head: 162 M parameters
# against GPT-2's 124 M, so train_llama does more work per token than llm.c). PyTorch runs
# bench/llama_torch.py, the same Llama model, where python3-torch is importable ($PYTHON, else
# python3, else /usr/bin/python3); where it is not, that column is skipped and the script says
# how to install it.
#
# Every trainer runs with the same threads (OMP_NUM_THREADS = $THREADS, default nproc), 2
# warm-up steps left out (train_llama's meter leaves out 2), then `steps` timed steps (forward,
# backward, optimizer). llm.c's tokens/s is B*T over its printed per-step milliseconds. Other
# settings: SEQS (default "64 256"), B (default 4), SCRATCH, PYTHON.
set -euo pipefail
me=$(basename "$0")
die() { echo "$me: $*" >&2; exit 2; }
cd "$(dirname "$0")/.."
root=$PWD

# ---- arguments
llmc=${LLMC_DIR:-}
if [ $# -gt 0 ] && ! [[ $1 =~ ^[0-9]+$ && -n $llmc ]]; then llmc=$1; shift; fi
rounds=${1:-3}
steps=${2:-10}
[ $# -le 2 ] || die "too many arguments; usage: $me LLMC_DIR [rounds] [steps] (or LLMC_DIR=... $me [rounds] [steps])"
[ -n "$llmc" ] || die "no llm.c source directory: give its path (a checkout of https://github.com/karpathy/llm.c) as the first argument or in LLMC_DIR"
[ -d "$llmc" ] || die "llm.c source directory '$llmc' does not exist or is not a directory"
for f in Makefile train_gpt2.c llmc/dataloader.h; do
  [ -f "$llmc/$f" ] || die "'$llmc' is not an llm.c source directory: it has no $f (expected a checkout of https://github.com/karpathy/llm.c)"
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "rounds must be a positive integer, got '$rounds'"
[[ $steps =~ ^[1-9][0-9]*$ ]] || die "steps must be a positive integer, got '$steps'"
llmc=$(cd "$llmc" && pwd)
threads=${THREADS:-$(nproc)}
B=${B:-4}
seqs=${SEQS:-64 256}
warmup=2
[[ $B =~ ^[1-9][0-9]*$ ]] || die "B must be a positive integer, got '$B'"
[[ $threads =~ ^[1-9][0-9]*$ ]] || die "THREADS must be a positive integer, got '$threads'"
for T in $seqs; do
  { [[ $T =~ ^[1-9][0-9]*$ ]] && [ "$T" -le 1024 ]; } || die "SEQS: each T must be an integer from 1 to 1024 (llm.c's GPT-2 maxT), got '$T'"
done
scratch=${SCRATCH:-$root/build-bench-vs}
mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd)

# The lines of train_gpt2.c's main() the scratch copy changes; an llm.c whose main() differs is refused.
patterns=('^int main() {$' '^    int B = 4; ' '^    int T = 64; ' 'for (int step = 0; step <= 40; step++) {')
for p in "${patterns[@]}"; do
  [ "$(grep -c -- "$p" "$llmc/train_gpt2.c")" = 1 ] ||
    die "$llmc/train_gpt2.c has not exactly one line matching '$p': this llm.c version's main() is not the one this script knows how to parameterise (karpathy/llm.c master, 2024-2025)"
done

# ---- llm.c: scratch copy, the B/T/steps edit, its own Makefile
src="$scratch/llm.c"
mkdir -p "$src/dev/data/tinyshakespeare"
cp "$llmc/Makefile" "$llmc/train_gpt2.c" "$src/"
rm -rf "$src/llmc" && cp -R "$llmc/llmc" "$src/llmc"
sed -i -e 's/^int main() {$/int main(int argc, char *argv[]) { \/\/ bench\/cpu_vs_llmc_pytorch.sh: B, T, last step from argv/' \
  -e 's/^    int B = 4; /    int B = argc > 1 ? atoi(argv[1]) : 4; /' \
  -e 's/^    int T = 64; /    int T = argc > 2 ? atoi(argv[2]) : 64; /' \
  -e 's/for (int step = 0; step <= 40; step++) {/for (int step = 0; step <= (argc > 3 ? atoi(argv[3]) : 40); step++) {/' \
  "$src/train_gpt2.c"
[ "$(grep -c 'argv\[[123]\]' "$src/train_gpt2.c")" = 3 ] || die "the B/T/steps edit of the scratch copy of train_gpt2.c did not apply"
echo "llm.c: building $src/train_gpt2 with llm.c's Makefile (make train_gpt2; source $llmc, commit $([ -e "$llmc/.git" ] && git -C "$llmc" rev-parse --short HEAD 2>/dev/null || echo unknown))"
if ! make -C "$src" train_gpt2 >"$scratch/llmc-make.log" 2>&1; then
  tail -n 20 "$scratch/llmc-make.log" >&2
  echo "$me: llm.c's make train_gpt2 failed (log: $scratch/llmc-make.log)" >&2
  exit 1
fi
grep -q 'OpenMP found' "$scratch/llmc-make.log" ||
  echo "warning: llm.c's Makefile found no OpenMP: its train_gpt2 runs on one thread (install libgomp / libomp-dev and rerun)" >&2
grep -E '^(cc|gcc|clang|.*-o train_gpt2)' "$scratch/llmc-make.log" | tail -n 1 | sed 's/^/  /'

# ---- llm.c's inputs: random GPT-2 124M checkpoint, random tokens (python3 standard library)
echo "llm.c: inputs (a random-init gpt2_124M.bin of ~500 MB is written once and reused)"
python3 - "$src" <<'EOF'
import array, math, os, random, sys
src = sys.argv[1]
maxT, V, Vp, L, NH, C = 1024, 50257, 50304, 12, 12, 768
# train_gpt2.c's fill_in_parameter_sizes order; kind: w = N(0, 0.02), p = projection, 1 = ones, 0 = zeros
tensors = [(Vp * C, "wte"), (maxT * C, "w"), (L * C, "1"), (L * C, "0"), (L * 3 * C * C, "w"), (L * 3 * C, "0"),
           (L * C * C, "p"), (L * C, "0"), (L * C, "1"), (L * C, "0"), (L * 4 * C * C, "w"), (L * 4 * C, "0"),
           (L * C * 4 * C, "p"), (L * C, "0"), (C, "1"), (C, "0")]
n_params = sum(n for n, _ in tensors)
rng = random.Random(20240326)
POOL = 1 << 20

def pool(std):  # one block of normals, written from random offsets (twice over, so any window fits)
    b = array.array("f", (rng.gauss(0.0, std) for _ in range(POOL))).tobytes()
    return b + b

def write_random(f, n, blk):
    while n > 0:
        k, off = min(n, POOL), rng.randrange(POOL)
        f.write(blk[4 * off:4 * (off + k)])
        n -= k

ckpt = os.path.join(src, "gpt2_124M.bin")
if os.path.exists(ckpt) and os.path.getsize(ckpt) == 4 * (256 + n_params):
    print(f"  reusing {ckpt} ({n_params} parameters)")
else:
    normal, proj = pool(0.02), pool(0.02 / math.sqrt(2 * L))
    header = array.array("i", [0] * 256)
    header[:8] = array.array("i", [20240326, 3, maxT, V, L, NH, C, Vp])
    with open(ckpt + ".tmp", "wb") as f:
        f.write(header.tobytes())
        for n, kind in tensors:
            if kind == "wte":  # real vocabulary rows random, padding rows zero (as llm.c writes them)
                write_random(f, V * C, normal)
                f.write(bytes(4 * (Vp - V) * C))
            elif kind in "wp":
                write_random(f, n, normal if kind == "w" else proj)
            else:
                f.write((array.array("f", [1.0]) * n).tobytes() if kind == "1" else bytes(4 * n))
    os.replace(ckpt + ".tmp", ckpt)
    print(f"  wrote {ckpt} ({n_params} parameters, random init)")

for name, ntok in (("train", 1 << 19), ("val", 1 << 17)):
    path = os.path.join(src, "dev", "data", "tinyshakespeare", f"tiny_shakespeare_{name}.bin")
    if os.path.exists(path) and os.path.getsize(path) == 4 * 256 + 2 * ntok:
        continue
    header = array.array("i", [0] * 256)
    header[:3] = array.array("i", [20240520, 1, ntok])
    with open(path + ".tmp", "wb") as f:
        f.write(header.tobytes())
        f.write(array.array("H", (rng.randrange(V) for _ in range(ntok))).tobytes())
    os.replace(path + ".tmp", path)
    print(f"  wrote {path} ({ntok} random tokens)")
EOF

# ---- train_llama from this tree
build="$scratch/train_llama"
echo "train_llama: building $build (Release, TRAINPERF_NATIVE=ON, CUDA off, no tests)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DTRAINPERF_NATIVE=ON -DTRAINPERF_ENABLE_CUDA=OFF \
  -DTRAINPERF_BUILD_TESTS=OFF -DTRAINPERF_BUILD_BENCH=OFF >"$scratch/train_llama-cmake.log" 2>&1 ||
  { tail -n 20 "$scratch/train_llama-cmake.log" >&2; echo "$me: cmake failed" >&2; exit 1; }
cmake --build "$build" -j "$(nproc)" --target train_llama >>"$scratch/train_llama-cmake.log" 2>&1 ||
  { tail -n 20 "$scratch/train_llama-cmake.log" >&2; echo "$me: building train_llama failed" >&2; exit 1; }

# ---- PyTorch, where it is importable
py=""
for cand in ${PYTHON:-python3 /usr/bin/python3}; do
  if command -v "$cand" >/dev/null && "$cand" -c 'import torch' 2>/dev/null; then py=$cand; break; fi
done
if [ -z "$py" ]; then
  cat <<EOF
PyTorch: not importable here (tried ${PYTHON:-python3 and /usr/bin/python3}); the PyTorch column is skipped.
  To include it (Debian/Ubuntu): apt-get install python3-torch libopenblas0-openmp
  OpenBLAS matters: Debian's torch calls the system libblas.so.3, and the default one is the reference
  BLAS, with which torch runs ~20x slower (7 tokens/s against 117-177 on issue 17's 2-core machine). Check which one is selected with
  update-alternatives --display libblas.so.3-$(uname -m)-linux-gnu, and pick openblas-openmp if not.
EOF
else
  # Which BLAS torch actually loads (the system libblas.so.3 alternative on Debian)
  blas=$(OMP_NUM_THREADS=1 "$py" -c '
import torch
torch.ones(64, 64) @ torch.ones(64, 64)
libs = sorted({l.split()[-1] for l in open("/proc/self/maps") if "blas" in l.split()[-1].lower()})
print(" ".join(libs) or "no separate BLAS library")')
  echo "PyTorch: $py, torch $("$py" -c 'import torch; print(torch.__version__)'), BLAS: $blas"
  case "$blas" in
    */blas/libblas.so*) echo "warning: torch is using the reference BLAS ($blas), ~20x slower than OpenBLAS: apt-get install libopenblas0-openmp, or update-alternatives --config libblas.so.3-$(uname -m)-linux-gnu" >&2 ;;
  esac
fi

# ---- the runs
export OMP_NUM_THREADS=$threads
last=$((warmup + steps - 1))
run_llmc() {  # tokens/s over the steps after the warm-up, from llm.c's per-step ms
  (cd "$src" && ./train_gpt2 "$B" "$1" "$last") >"$scratch/llmc-T$1.log" 2>&1 ||
    { tail -n 5 "$scratch/llmc-T$1.log" >&2; echo "$me: llm.c's train_gpt2 failed (log: $scratch/llmc-T$1.log)" >&2; exit 1; }
  awk -v w="$warmup" -v n="$steps" -v tok="$((B * $1))" '
    /^step [0-9]+: train loss .* \(took [0-9.]+ ms\)/ {
      s = $2; sub(":", "", s); ms = $NF == "ms)" ? $(NF - 1) : ""; if (s + 0 >= w) { sum += ms; c++ } }
    END { if (c != n || sum <= 0) { print "no " n " timed steps in llm.c'"'"'s output" > "/dev/stderr"; exit 1 } printf "%.2f\n", tok * c / (sum / 1000) }' "$scratch/llmc-T$1.log"
}
run_torch() {
  "$py" bench/llama_torch.py --lbs "$B" --seq "$1" --steps "$steps" --warmup "$warmup" --threads "$threads" \
    >"$scratch/torch-T$1.log" 2>&1 ||
    { tail -n 5 "$scratch/torch-T$1.log" >&2; echo "$me: bench/llama_torch.py failed (log: $scratch/torch-T$1.log)" >&2; exit 1; }
  sed -n 's/^llama_torch: tokens_per_s=\([0-9.]*\) .*/\1/p' "$scratch/torch-T$1.log" | tail -n 1
}
run_llama() {  # prints "tokens/s MFU% peak"; MFU "-" when train_llama left it out
  "$build/examples/train_llama" --layers 12 --hidden 768 --heads 12 --kv-heads 12 --ffn 2048 --vocab 50304 \
    --seq "$1" --lbs "$B" --steps "$((steps + warmup))" --threads "$threads" --eval-every 100000 --log-every 100000 \
    --corpus-bytes 400000 >"$scratch/train_llama-T$1.log" 2>&1 ||
    { tail -n 5 "$scratch/train_llama-T$1.log" >&2; echo "$me: train_llama failed (log: $scratch/train_llama-T$1.log)" >&2; exit 1; }
  awk -F'|' '
    /^peak for MFU: / { peak = $0; sub(/^peak for MFU: /, "", peak); sub(/ FLOP\/s.*/, "", peak) }
    /^\| config \| / { hdr = NR }
    hdr && NR == hdr + 2 { tps = $6; mfu = $9; gsub(/ /, "", tps); gsub(/[ %]/, "", mfu) }
    END { if (tps == "") { print "no result row in train_llama'"'"'s output" > "/dev/stderr"; exit 1 } print tps, (mfu == "" || mfu == "/" ? "-" : mfu), peak }' \
    "$scratch/train_llama-T$1.log"
}

echo "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg) (other work on this machine skews every figure)"
echo "runs: $rounds round(s) x T in {$seqs}, B $B, $threads threads, $warmup warm-up + $steps timed steps each; logs in $scratch"
declare -A sum cnt
for r in $(seq "$rounds"); do
  for T in $seqs; do
    tps=$(run_llmc "$T")
    echo "round $r B$B T$T: llm.c        $tps tokens/s"
    sum[llmc$T]=$(awk "BEGIN{print ${sum[llmc$T]:-0} + $tps}"); cnt[llmc$T]=$((${cnt[llmc$T]:-0} + 1))
    if [ -n "$py" ]; then
      tps=$(run_torch "$T")
      echo "round $r B$B T$T: PyTorch      $tps tokens/s"
      sum[torch$T]=$(awk "BEGIN{print ${sum[torch$T]:-0} + $tps}"); cnt[torch$T]=$((${cnt[torch$T]:-0} + 1))
    fi
    out=$(run_llama "$T")
    read -r tps mfu peak <<<"$out"
    echo "round $r B$B T$T: train_llama  $tps tokens/s, MFU $mfu% of its measured GEMM peak $peak FLOP/s"
    sum[llama$T]=$(awk "BEGIN{print ${sum[llama$T]:-0} + $tps}"); cnt[llama$T]=$((${cnt[llama$T]:-0} + 1))
    if [ "$mfu" != "-" ]; then
      sum[mfu$T]=$(awk "BEGIN{print ${sum[mfu$T]:-0} + $mfu}"); cnt[mfu$T]=$((${cnt[mfu$T]:-0} + 1))
    fi
  done
done

echo
echo "summary (means over $rounds round(s), $steps timed steps each, $threads threads; targets from issue 17):"
verdict() { awk -v x="$1" -v t="$2" 'BEGIN { print (x >= t ? "met" : "NOT met") }'; }
for T in $seqs; do
  lm=$(awk "BEGIN{printf \"%.1f\", ${sum[llama$T]} / ${cnt[llama$T]}}")
  cm=$(awk "BEGIN{printf \"%.1f\", ${sum[llmc$T]} / ${cnt[llmc$T]}}")
  line="B$B T$T: train_llama $lm, llm.c $cm"
  [ -n "$py" ] && line+=", PyTorch $(awk "BEGIN{printf \"%.1f\", ${sum[torch$T]} / ${cnt[torch$T]}}")"
  echo "$line tokens/s"
  x=$(awk "BEGIN{printf \"%.2f\", $lm / $cm}")
  echo "  train_llama / llm.c   = ${x}x (target >= 3x: $(verdict "$x" 3))"
  if [ -n "$py" ]; then
    x=$(awk "BEGIN{printf \"%.2f\", $lm / (${sum[torch$T]} / ${cnt[torch$T]})}")
    echo "  train_llama / PyTorch = ${x}x (target >= 2x: $(verdict "$x" 2))"
  else
    echo "  train_llama / PyTorch: not measured (PyTorch not importable; see above)"
  fi
  if [ -n "${cnt[mfu$T]:-}" ]; then
    x=$(awk "BEGIN{printf \"%.1f\", ${sum[mfu$T]} / ${cnt[mfu$T]}}")
    note=""
    [ "$T" = 256 ] && note=" (target >= 75% at T256: $(verdict "$x" 75))"
    echo "  train_llama MFU       = $x% of the GEMM peak it measured in each run$note"
  else
    echo "  train_llama MFU: left out by train_llama in every run (see $scratch/train_llama-T$T.log)"
  fi
done
