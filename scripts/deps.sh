# Sourced by scripts/run and scripts/test: installs whatever of the project's Debian
# packages is missing (nothing when all are present). Later capabilities add theirs here.
trainperf_packages=(cmake g++ make python3 libeigen3-dev libfmt-dev doctest-dev nlohmann-json3-dev libxml2-utils
  libopenmpi-dev openmpi-bin python3-dev pybind11-dev)
# scripts/test's fuzzing stage: clang with libFuzzer's runtime (Debian 12: clang 14).
trainperf_fuzz_packages=(clang libclang-rt-14-dev)

# trainperf_install_deps [extra package...]: the project's packages and the extra ones.
trainperf_install_deps() {
  local missing=()
  for p in "${trainperf_packages[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "scripts: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

trainperf_jobs() { nproc 2>/dev/null || echo 2; }
