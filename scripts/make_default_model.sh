#!/usr/bin/env bash
# Make the model shipped inside corefix (src/corefix/default_model): build the data, train
# configs/default-model.yaml (with calibration and span heads), pack it compactly, evaluate the packed
# model on the four test sets, and write it into the package with its scores in its card. The package
# step refuses to replace a shipped model that the new one does not beat on every test set.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
RUN=runs/default-model
TESTS=(data/bbc-seed/test.jsonl data/bbc-resolvers/test.jsonl data/us-seed/test.jsonl data/us-resolvers/test.jsonl)
bash scripts/build_data.sh
python scripts/train.py --config configs/default-model.yaml
python scripts/package_model.py --model $RUN/best --out $RUN/packed
python scripts/evaluate.py --model $RUN/packed --out $RUN/eval --limit 300 --data "${TESTS[@]}"
python scripts/package_model.py --model $RUN/best --out src/corefix/default_model --eval $RUN/eval \
    --config configs/default-model.yaml --command "bash scripts/make_default_model.sh"
