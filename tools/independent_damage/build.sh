#!/usr/bin/env bash
# Labelled damage made by code that is not corefix's simulator (README.md here): the test sets of the three
# generators, and the training/validation sets of generators A and B; a rerun skips what is built.
#   bash tools/independent_damage/build.sh      (or: bash scripts/build_data.sh independent)
# -> data/gena-{bbc,us}/{train,validation,test}.jsonl (mechanism.py), data/genb-{bbc,us}/{train,validation,test}.jsonl
#    (resolver_loops.py), data/genc-{bbc,us}/test.jsonl (subword_offsets.py: C is in no training set). Articles keep corefix's split
#    by id, so no test article is trained on.
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${SHARED:-../shared}
BBC=${BBC:-$SHARED/data/bbc_news.jsonl}
US=${US:-$SHARED/data/us_news.jsonl}
HERE=tools/independent_damage
export PYTHONHASHSEED=0  # resolver_loops.py walks sets of strings: a fixed hash seed makes its output the same every run
gen() {  # gen GENERATOR PROFILE OUT_DIR CORPUS SPLIT LIMIT SEED
  local out=$3/$5.jsonl raw=$3/$5.raw.jsonl
  [ -f "$out" ] && return
  mkdir -p "$3"
  python "$HERE/$1.py" --input "$4" --out "$raw" --split "$5" --limit "$6" --seed "$7"
  python scripts/make_dataset.py --labelled "$raw" --out "$3" --profile "$2" --splits "$5"
  rm "$raw"
}
# The generators share nothing (each reads the corpus and writes its own folders, seeded): A then C, and B, run
# side by side, one per core (each parses in one process); the files are the same as one after the other.
jobs() {  # jobs GENERATOR ...: the builds below of these generators, in order
  local generator profile out corpus split limit seed
  while read -r generator profile out corpus split limit seed; do
    if [[ " $* " == *" $generator "* ]]; then gen "$generator" "$profile" "$out" "${!corpus}" "$split" "$limit" "$seed"; fi
  done <<'BUILDS'
mechanism gen_a data/gena-us US test 224 1
mechanism gen_a data/gena-bbc BBC test 224 2
mechanism gen_a data/gena-us US train 2500 3
mechanism gen_a data/gena-bbc BBC train 1200 4
mechanism gen_a data/gena-us US validation 100 5
mechanism gen_a data/gena-bbc BBC validation 100 6
resolver_loops gen_b data/genb-us US test 224 1
resolver_loops gen_b data/genb-bbc BBC test 224 2
subword_offsets gen_c data/genc-us US test 224 1
subword_offsets gen_c data/genc-bbc BBC test 224 2
resolver_loops gen_b data/genb-us US train 2500 7
resolver_loops gen_b data/genb-bbc BBC train 1200 8
resolver_loops gen_b data/genb-us US validation 100 9
resolver_loops gen_b data/genb-bbc BBC validation 100 10
BUILDS
}
jobs mechanism subword_offsets & first=$!
jobs resolver_loops & second=$!
status=0
wait $first || status=$?
wait $second || status=$?
exit $status
