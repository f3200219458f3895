#!/usr/bin/env bash
# Run a command as if this CPU had AVX2 but no AVX-512 or VNNI (see avx2_only.c), for benchmarks:
#   bash tools/avx2_only/run.sh corefix benchmark --only prediction --data data/bbc-seed/test.jsonl
# Needs gcc and a CPU and kernel with CPUID faulting ("cpuid_fault" in /proc/cpuinfo).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
grep -qw cpuid_fault /proc/cpuinfo || { echo "avx2_only: no cpuid_fault in /proc/cpuinfo: this CPU or VM cannot mask CPUID" >&2; exit 3; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
lib="$tmp/avx2_only.so"
gcc -O2 -shared -fPIC -o "$lib" "$here/avx2_only.c"
LD_PRELOAD="$lib" "$@"
