#!/usr/bin/env bash
# orchcore build entry point.
#
#   ./build.sh demo              install deps, build the release preset, run the quick-start
#                                (engine) and the admission demo (every queue policy)
#   ./build.sh test              install deps, cmake --workflow --preset dev   (configure, build, ctest)
#   ./build.sh tsan              install deps, cmake --workflow --preset tsan
#   ./build.sh asan              install deps, cmake --workflow --preset asan
#   ./build.sh bench [args...]   install deps, build the release preset, run every benchmark
#
# Extra arguments after `demo`/`bench` are passed to the binaries
# (e.g. ./build.sh bench --benchmark_filter=push).
# Set ORCHCORE_SKIP_DEPS=1 to skip the Debian dependency check.
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"

usage() {
  sed -n '2,13s/^# \{0,1\}//p' "$0"
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
      "$b" --benchmark_format=console "$@"
      ran=$((ran + 1))
    done
    if [[ $ran -eq 0 ]]; then
      echo "build.sh: no benchmark binaries found in build/release/bench" >&2
      exit 1
    fi
    ;;
  -h | --help | help)
    usage
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac
