#!/usr/bin/env bash
# Leave-one-out measure of the randomised-damage recipe (issue #22): train on a mixture that leaves
# three damage families out (configs/random-loo.yaml: the resolvers profile, inserted copies, leftward
# drift), then score the model on each left-out family, and on the seed profile and clean articles.
#   bash scripts/leave_one_out.sh            # LIMIT=200 articles per test file by default
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
RUN=${RUN:-runs/random-loo}
LIMIT=${LIMIT:-200}
bash scripts/build_data.sh random
python scripts/train.py --config configs/random-loo.yaml run_dir=$RUN
python scripts/evaluate.py --model $RUN/best --out $RUN/eval --limit "$LIMIT" --data \
    data/bbc-resolvers/test.jsonl data/us-resolvers/test.jsonl data/bbc-insert/test.jsonl data/us-insert/test.jsonl \
    data/bbc-left/test.jsonl data/us-left/test.jsonl data/bbc-seed/test.jsonl data/us-seed/test.jsonl \
    data/bbc-clean/test.jsonl data/us-clean/test.jsonl
