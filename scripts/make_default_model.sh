#!/usr/bin/env bash
# Make the model shipped inside corefix (src/corefix/default_model) in two stages:
#   1. configs/default-model.yaml: 3,000 steps from the encoder on the seed/resolvers mixture
#      (the model shipped on 2026-11-29), packed compactly into runs/default-model/packed;
#   2. configs/random-finetune.yaml: that model fine-tuned for 1,500 steps on randomised damage
#      (configs/simulate-random.yaml), with calibration and span heads (issue #22).
# Then pack stage 2, evaluate the packed model on the test sets, and write it into the package with its
# scores in its card. The package step refuses to replace a shipped model that the new one does not
# beat on every test set the old one was scored on.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
STAGE1=runs/default-model
RUN=runs/random-finetune
LIMIT=${LIMIT:-300}
TESTS=(data/bbc-seed/test.jsonl data/bbc-resolvers/test.jsonl data/us-seed/test.jsonl data/us-resolvers/test.jsonl
       data/bbc-insert/test.jsonl data/us-insert/test.jsonl data/bbc-left/test.jsonl data/us-left/test.jsonl
       data/bbc-clean/test.jsonl data/us-clean/test.jsonl)
bash scripts/build_data.sh
bash scripts/build_data.sh random
[ -f $STAGE1/packed/model.safetensors ] || {
  python scripts/train.py --config configs/default-model.yaml
  python scripts/package_model.py --model $STAGE1/best --out $STAGE1/packed
}
python scripts/train.py --config configs/random-finetune.yaml
python scripts/package_model.py --model $RUN/best --out $RUN/packed
python scripts/evaluate.py --model $RUN/packed --out $RUN/eval --limit "$LIMIT" --data "${TESTS[@]}"
python scripts/package_model.py --model $RUN/best --out src/corefix/default_model --eval $RUN/eval \
    --config configs/random-finetune.yaml --command "bash scripts/make_default_model.sh"
