#!/usr/bin/env bash
# Compile-time cost of `#include <trainperf/trainperf.hpp>`, next to an empty translation
# unit and to `#include <fmt/format.h>`, compiled in the same run with the same flags
# (-std=c++20 -O2 -c). Prints the median of N compilations (default 7) and the ratios.
#   bench/compile_time.sh [N] [compiler]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-7}
cxx=${2:-${CXX:-c++}}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'int main() { return 0; }\n' > "$tmp/empty.cpp"
printf '#include <fmt/format.h>\nint main() { return 0; }\n' > "$tmp/fmt.cpp"
printf '#include <trainperf/trainperf.hpp>\nint main() { return 0; }\n' > "$tmp/trainperf.cpp"
printf '#include <trainperf/trainperf.hpp>\nint main() { return static_cast<int>(trainperf::count_flops(trainperf::get_preset("llama2-70b").spec, {.seq = 4096}).model > 0); }\n' > "$tmp/trainperf_used.cpp"

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
measure() {
  for _ in $(seq "$n"); do
    local t0 t1
    t0=$(date +%s.%N)
    "$cxx" -std=c++20 -O2 -Iinclude -c "$1" -o "$tmp/out.o"
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'
  done | median
}

echo "compiler: $("$cxx" --version | head -1); $n compilations each, median seconds"
empty=$(measure "$tmp/empty.cpp")
fmt=$(measure "$tmp/fmt.cpp")
tpf=$(measure "$tmp/trainperf.cpp")
used=$(measure "$tmp/trainperf_used.cpp")
printf '%-46s %8.3f s  %6.2f x empty\n' "empty translation unit" "$empty" 1
div() { awk -v a="$1" -v b="$2" 'BEGIN { print a / b }'; }
printf '%-46s %8.3f s  %6.2f x empty\n' "#include <fmt/format.h>" "$fmt" "$(div "$fmt" "$empty")"
printf '%-46s %8.3f s  %6.2f x empty  %5.2f x fmt\n' "#include <trainperf/trainperf.hpp>" "$tpf" \
  "$(div "$tpf" "$empty")" "$(div "$tpf" "$fmt")"
printf '%-46s %8.3f s  %6.2f x empty  %5.2f x fmt\n' "... and one count_flops call" "$used" \
  "$(div "$used" "$empty")" "$(div "$used" "$fmt")"
