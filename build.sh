#!/usr/bin/env bash
# orchcore build entry point.
#
#   ./build.sh demo              install deps, build the release preset, run the quick-start
#                                (engine) and the admission demo (every queue policy)
#   ./build.sh test              install deps, cmake --workflow --preset dev   (configure, build, ctest)
#   ./build.sh tsan              install deps, cmake --workflow --preset tsan
#   ./build.sh asan              install deps, cmake --workflow --preset asan
#   ./build.sh bench [args...]   install deps, build the release preset, run every benchmark
#                                (JSON beside each binary), then print the targets' ratios
#   ./build.sh bench-bullmq [args...]  install deps, then bench/bullmq/run.py: orchcore vs BullMQ 5
#                                on a private redis-server (needs Node.js and npm; --quick, --help)
#   ./build.sh fuzz [seconds]    install deps, build the fuzz preset (clang + libFuzzer), run each
#                                fuzzer for [seconds] (default 20) over a copy of its seed corpus
#
# Extra arguments after `demo`/`bench` are passed to the binaries
# (e.g. ./build.sh bench --benchmark_filter=push).
# Set ORCHCORE_SKIP_DEPS=1 to skip the Debian dependency check. When ccache is on
# the PATH it is used as the compiler launcher of new build trees (set
# ORCHCORE_NO_CCACHE=1 to build without it); cache entries are keyed by paths
# relative to the checkout, so another clone reuses them.
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"

if [[ -z "${ORCHCORE_NO_CCACHE:-}" ]] && command -v ccache >/dev/null 2>&1; then
  export CMAKE_CXX_COMPILER_LAUNCHER="${CMAKE_CXX_COMPILER_LAUNCHER:-ccache}"
  export CMAKE_C_COMPILER_LAUNCHER="${CMAKE_C_COMPILER_LAUNCHER:-ccache}"
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
  export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
fi

usage() {
  sed -n '2,21s/^# \{0,1\}//p' "$0"
}

deps() {
  ./scripts/install-deps.sh
}

# build_release [target...]: configure and build the release preset.
build_release() {
  cmake --preset release
  if [[ $# -gt 0 ]]; then
    cmake --build --preset release --target "$@"
  else
    cmake --build --preset release
  fi
}

# run_fuzzers seconds: build every libFuzzer target and run each for at
# most `seconds` over a scratch copy of its seed corpus (tests/fuzz/corpus/<name>);
# inputs that crash are written to build/fuzz/artifacts/.
run_fuzzers() {
  local seconds="$1"
  [[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "build.sh: fuzz: seconds must be a positive integer, got '$seconds'" >&2; exit 2; }
  cmake --preset fuzz
  cmake --build --preset fuzz
  shopt -s nullglob
  local fuzzers=(build/fuzz/tests/fuzz/orchcore_fuzz_*)
  shopt -u nullglob
  if [[ ${#fuzzers[@]} -eq 0 ]]; then
    echo "build.sh: no fuzzers in build/fuzz/tests/fuzz (is clang's libFuzzer installed?)" >&2
    exit 1
  fi
  mkdir -p build/fuzz/artifacts
  local f name work
  for f in "${fuzzers[@]}"; do
    [[ -f "$f" && -x "$f" ]] || continue
    name="$(basename "$f")"
    name="${name#orchcore_fuzz_}"
    work="build/fuzz/corpus/$name"
    rm -rf "$work"
    mkdir -p "$work"
    if [[ -d "tests/fuzz/corpus/$name" ]]; then
      cp -R "tests/fuzz/corpus/$name/." "$work/"
    fi
    echo "=== fuzz $name: ${seconds}s ==="
    "$f" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
      -artifact_prefix="build/fuzz/artifacts/$name-" "$work"
  done
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift

case "$cmd" in
  demo)
    deps
    build_release orchcore_quickstart orchcore_admission_demo
    echo "=== examples/quickstart.cpp: register handlers, submit, await, cancel ==="
    build/release/examples/orchcore_quickstart
    echo
    echo "=== examples/admission_demo.cpp: the admission queue under each policy ==="
    build/release/examples/orchcore_admission_demo "$@"
    ;;
  test)
    deps
    cmake --workflow --preset dev
    ;;
  tsan | asan)
    deps
    cmake --workflow --preset "$cmd"
    ;;
  bench)
    deps
    build_release
    shopt -s nullglob
    benches=(build/release/bench/orchcore_bench_*)
    shopt -u nullglob
    ran=0
    for b in "${benches[@]}"; do
      [[ -f "$b" && -x "$b" ]] || continue
      echo "=== $(basename "$b") ==="
      "$b" --benchmark_format=console --benchmark_out="$b.json" --benchmark_out_format=json "$@"
      ran=$((ran + 1))
    done
    if [[ $ran -eq 0 ]]; then
      echo "build.sh: no benchmark binaries found in build/release/bench" >&2
      exit 1
    fi
    # The targets' ratios, each within this one run (bench/README.md).
    for pair in admission_queue:ratios engine:engine_ratios; do
      out="build/release/bench/orchcore_bench_${pair%%:*}.json"
      if [[ -s "$out" ]]; then
        echo "=== bench/${pair#*:}.py $out ==="
        python3 "bench/${pair#*:}.py" "$out"
      fi
    done
    ;;
  bench-bullmq)
    deps
    exec python3 bench/bullmq/run.py "$@"
    ;;
  fuzz)
    deps
    run_fuzzers "${1:-20}"
    ;;
  -h | --help | help)
    usage
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac
