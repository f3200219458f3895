#!/usr/bin/env bash
# Build the training mixture and the four test sets from the shared corpora; a rerun skips what is built.
#   bash scripts/build_data.sh          # the full mixture: data/bbc-mix4 + data/us-mix3 (3,000 US articles)
#   bash scripts/build_data.sh quick    # the quickstart's: data/bbc-mix4 + data/us-quick (1,000 US articles)
#   bash scripts/build_data.sh random   # randomised damage (configs/simulate-random.yaml): data/{bbc,us}-rand,
#                                       # its leave-one-out twin data/{bbc,us}-loo, and the family and clean test sets
#   bash scripts/build_data.sh independent  # damage made by code that is not the simulator's
#                                       # (tools/independent_damage): data/gen{a,b}-{bbc,us}
#   bash scripts/build_data.sh clean    # undamaged training articles (configs/simulate-clean.yaml):
#                                       # data/{bbc,us}-clean-train, for configs/two-generators-clean-finetune.yaml
#   bash scripts/build_data.sh wide     # damage from wider ranges (configs/simulate-wide.yaml):
#                                       # data/{bbc,us}-wide, for configs/wide-finetune.yaml
#   bash scripts/build_data.sh resolvers  # training articles damaged by the resolvers profile, two copies each:
#                                       # data/bbc-resolvers-labelled (for configs/wide-resolvers-finetune.yaml)
#                                       # and data/us-resolvers-labelled, 1,500 US articles read (for
#                                       # configs/wide-us-resolvers-finetune.yaml)
#   bash scripts/build_data.sh resolvers2  # the BBC training articles damaged by the resolvers profile again, with
#                                       # another simulator seed: data/bbc-resolvers-labelled-2 (for
#                                       # configs/bbc-resolvers-second-finetune.yaml)
#   bash scripts/build_data.sh clean2   # more undamaged training articles (simulator seed 29): the BBC ones again and
#                                       # the first 6,000 US articles': data/{bbc,us}-clean-train-2 (for
#                                       # configs/clean-resolvers-finetune.yaml)
#   bash scripts/build_data.sh insert2  # the BBC training articles with inserted copies (configs/simulate-insert.yaml,
#                                       # simulator seed 29, two copies each): data/bbc-insert-labelled (for
#                                       # configs/insert-clean-resolvers-finetune.yaml)
# Both build data/{bbc,us}-{seed,resolvers}/test.jsonl, the test splits (no training set holds their articles).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
BBC=${BBC:-$SHARED/data/bbc_news.jsonl}
US=${US:-$SHARED/data/us_news.jsonl}
export HF_HUB_OFFLINE=1
# spaCy's parse of each article, kept once for every build that reads it (most of a build's time; the records are
# the same without it): PARSES=elsewhere to move it, rm -r data/parses to free its space
PARSES=${PARSES:-data/parses}
build() {  # build OUT CORPUS CONFIG [more make-dataset options]
  local out=$1 corpus=$2 config=$3; shift 3
  [ -f "$out/simulate.json" ] || python scripts/make_dataset.py --corpus "$corpus" --config "$config" --out "$out" \
      --processes 2 --parse-cache "$PARSES" "$@"
}
if [ "${1:-}" = independent ]; then
  exec bash tools/independent_damage/build.sh
fi
if [ "${1:-}" = clean ]; then  # the articles of the training splits the mixtures read, one clean copy each
  build data/bbc-clean-train "$BBC" configs/simulate-clean.yaml --splits train validation
  build data/us-clean-train "$US" configs/simulate-clean.yaml --splits train validation --limit 3000
  exit 0
fi
if [ "${1:-}" = wide ]; then  # two samples per training article (BBC), 1,500 US articles
  build data/bbc-wide "$BBC" configs/simulate-wide.yaml --samples-per-article 2
  build data/us-wide "$US" configs/simulate-wide.yaml --samples-per-article 2 --limit 1500
  exit 0
fi
if [ "${1:-}" = resolvers ]; then  # the resolvers gap: training and validation articles, two copies each
  build data/bbc-resolvers-labelled "$BBC" configs/simulate-resolvers.yaml --splits train validation --samples-per-article 2
  build data/us-resolvers-labelled "$US" configs/simulate-resolvers.yaml --splits train validation --samples-per-article 2 --limit 1500
  exit 0
fi
if [ "${1:-}" = resolvers2 ]; then  # new resolvers damage on the same BBC articles (simulator seed 29, not 13)
  build data/bbc-resolvers-labelled-2 "$BBC" configs/simulate-resolvers.yaml --splits train validation --samples-per-article 2 --seed 29
  exit 0
fi
if [ "${1:-}" = clean2 ]; then  # a second clean copy (seed 29); the US from the first 6,000 articles, not 3,000
  build data/bbc-clean-train-2 "$BBC" configs/simulate-clean.yaml --splits train validation --seed 29
  build data/us-clean-train-2 "$US" configs/simulate-clean.yaml --splits train validation --limit 6000 --seed 29
  exit 0
fi
if [ "${1:-}" = insert2 ]; then  # the insert family's damage on the BBC training and validation articles
  build data/bbc-insert-labelled "$BBC" configs/simulate-insert.yaml --splits train validation --samples-per-article 2 --seed 29
  exit 0
fi
# training data: the seed/resolvers mixture on both corpora (articles split by id: no test article is trained on)
if [ "${1:-}" = random ]; then
  # test sets of the families the leave-one-out mixture leaves out, and of clean articles
  for family in insert left clean; do
    build data/bbc-$family "$BBC" configs/simulate-$family.yaml --splits test
    build data/us-$family "$US" configs/simulate-$family.yaml --splits test --limit 6000
  done
  build data/bbc-loo "$BBC" configs/simulate-random-loo.yaml --samples-per-article 4
  build data/us-loo "$US" configs/simulate-random-loo.yaml --samples-per-article 2 --limit 1500
  # a damaged corpus for `corefix adapt` to learn from without labels: training articles only
  build data/bbc-resolvers-train "$BBC" configs/simulate-resolvers.yaml --splits train
  build data/bbc-rand "$BBC" configs/simulate-random.yaml --samples-per-article 4
  build data/us-rand "$US" configs/simulate-random.yaml --samples-per-article 2 --limit 1500
fi
build data/bbc-mix4 "$BBC" configs/simulate-mix.yaml --samples-per-article 4
if [ "${1:-}" = quick ]; then
  build data/us-quick "$US" configs/simulate-mix.yaml --samples-per-article 3 --limit 1000
else
  build data/us-mix3 "$US" configs/simulate-mix.yaml --samples-per-article 3 --limit 3000
fi
# evaluation data: the test splits only, damaged by the seed profile and by the resolvers profile
build data/bbc-seed "$BBC" configs/simulate.yaml --splits test
build data/bbc-resolvers "$BBC" configs/simulate-resolvers.yaml --splits test
build data/us-seed "$US" configs/simulate.yaml --splits test --limit 6000
build data/us-resolvers "$US" configs/simulate-resolvers.yaml --splits test --limit 6000
