#!/usr/bin/env bash
# What the parse cache of scripts/build_data.sh saves: one dataset built three ways from the same articles.
#   bash scripts/bench_parse_cache.sh [OUT_DIR]        (default /tmp/corefix-bench-parses; needs ../shared/data)
# The BBC training and validation articles (1,768, the ones the recipe damages again and again) are damaged by
# the resolvers profile (a) without the cache, (b) with an empty cache (parsing, then keeping each parse), and
# (c) again with the cache that (b) filled; then by the clean profile (d) with the cache, the way build_data.sh
# builds its next dataset. Prints each build's wall time (start-up included), the ratio (a) / (c), and
# whether (a), (b) and (c) wrote the same bytes (they must). Run it with nothing else busy and write the CPU
# beside the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
BBC=${BBC:-$SHARED/data/bbc_news.jsonl}
OUT=${1:-/tmp/corefix-bench-parses}
export HF_HUB_OFFLINE=1
rm -rf "$OUT" && mkdir -p "$OUT"
timed() {  # timed NAME CONFIG [make-dataset options]: prints NAME and its wall seconds
  local name=$1 config=$2; shift 2
  local t0=$(date +%s.%N)
  python scripts/make_dataset.py --corpus "$BBC" --config "$config" --out "$OUT/$name" --processes 2 \
      --splits train validation "$@" > "$OUT/$name.log" 2>&1
  python -c "import sys; print(f'| {sys.argv[1]} | {float(sys.argv[3]) - float(sys.argv[2]):.1f} |')" "$name" "$t0" "$(date +%s.%N)"
}
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores," \
     "flags: $(grep -o 'avx512_bf16\|avx2' /proc/cpuinfo | sort -u | xargs)"
echo "| build | wall s |"
echo "|---|---|"
A=$(timed a-no-cache configs/simulate-resolvers.yaml); echo "$A"
B=$(timed b-cold-cache configs/simulate-resolvers.yaml --parse-cache "$OUT/parses"); echo "$B"
C=$(timed c-warm-cache configs/simulate-resolvers.yaml --parse-cache "$OUT/parses"); echo "$C"
timed d-clean-warm-cache configs/simulate-clean.yaml --parse-cache "$OUT/parses"
python -c "import sys; a, c = float(sys.argv[1]), float(sys.argv[2]); print(f'no cache / warm cache: {a / c:.2f}x')" \
    "$(echo "$A" | cut -d'|' -f3)" "$(echo "$C" | cut -d'|' -f3)"
echo "parses kept: $(du -sh "$OUT/parses" | cut -f1) in $(find "$OUT/parses" -name '*.doc' | wc -l) files"
same=yes
for s in train validation; do
  for v in b-cold-cache c-warm-cache; do cmp -s "$OUT/a-no-cache/$s.jsonl" "$OUT/$v/$s.jsonl" || same=no; done
done
echo "records identical with and without the cache: $same"
[ "$same" = yes ]
