#!/usr/bin/env bash
# Install orchcore's build/test dependencies on Debian 12 (bookworm).
#
# Fast no-op (no apt calls) when everything is already installed.
# Never installs libboost-dev: it pulls in Boost 1.74, which conflicts with
# the libboost1.81-dev we build against.
#
# Environment:
#   ORCHCORE_SKIP_DEPS=1   do nothing (e.g. on non-Debian systems with deps present)
set -euo pipefail

packages=(
  build-essential
  g++
  clang
  libclang-rt-14-dev
  cmake
  ninja-build
  pkg-config
  git
  python3             # package.conan runs conanfile.py (tests/package/conan_emulation.py)
  libboost1.81-dev
  libboost-json1.81-dev
  catch2
  librapidcheck-dev
  libbenchmark-dev
  libhiredis-dev
  libyaml-cpp-dev     # the YAML workflow-spec front end (ORCHCORE_WITH_YAML)
  redis-server
  redis-tools
  libtbb-dev
  libconcurrentqueue-dev
)

if [[ "${ORCHCORE_SKIP_DEPS:-0}" == "1" ]]; then
  echo "install-deps: ORCHCORE_SKIP_DEPS=1, skipping dependency check"
  exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps: dpkg-query not found; this script supports Debian 12 only." >&2
  echo "install-deps: install the equivalents of: ${packages[*]}" >&2
  echo "install-deps: (set ORCHCORE_SKIP_DEPS=1 to silence this check)" >&2
  exit 1
fi

# One dpkg-query call for all packages (unknown packages just don't appear).
declare -A installed=()
while IFS='|' read -r pkg status; do
  if [[ "$status" == "install ok installed" ]]; then
    installed["$pkg"]=1
  fi
done < <(dpkg-query -W -f='${Package}|${Status}\n' "${packages[@]}" 2>/dev/null || true)

missing=()
for pkg in "${packages[@]}"; do
  [[ -n "${installed[$pkg]:-}" ]] || missing+=("$pkg")
done

# libatomic-queue-dev (a benchmark peer, header-only) depends on
# libboost-dev, i.e. Boost 1.74, which conflicts with libboost1.81-dev; its
# headers need no Boost. So its Debian package is downloaded and only its
# headers are unpacked into /usr/local/include.
atomic_queue_header=/usr/local/include/atomic_queue/atomic_queue.h
need_atomic_queue=0
[[ -f "$atomic_queue_header" || -f /usr/include/atomic_queue/atomic_queue.h ]] || need_atomic_queue=1

if [[ ${#missing[@]} -eq 0 && $need_atomic_queue -eq 0 ]]; then
  exit 0
fi

if [[ "$(id -u)" -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install-deps: not root and sudo is unavailable; install as root: ${missing[*]} libatomic-queue-dev (headers)" >&2
  exit 1
fi

"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "install-deps: installing missing packages: ${missing[*]}"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

if [[ $need_atomic_queue -eq 1 ]]; then
  echo "install-deps: unpacking the headers of libatomic-queue-dev into /usr/local/include"
  tmp="$(mktemp -d)"
  chmod 755 "$tmp"
  (cd "$tmp" && apt-get download libatomic-queue-dev >/dev/null)
  dpkg-deb -x "$tmp"/libatomic-queue-dev_*.deb "$tmp/root"
  "${as_root[@]}" mkdir -p /usr/local/include
  "${as_root[@]}" cp -r "$tmp/root/usr/include/atomic_queue" /usr/local/include/
  rm -rf "$tmp"
fi
