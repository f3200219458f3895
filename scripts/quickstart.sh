#!/usr/bin/env bash
# End to end on CPU: build the datasets, train cpu-small (~20 min on 2 cores), evaluate, predict.
# Everything generated lands in data/ and runs/ (both ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${CORPUS:-../shared/data/bbc_news.jsonl}
export HF_HUB_OFFLINE=1
# 1. training data: the mixture of the seed and resolvers damage profiles, 4 damaged copies per article
[ -f data/bbc-mix4/train.jsonl ] || python scripts/make_dataset.py --corpus "$CORPUS" \
    --config configs/simulate-mix.yaml --out data/bbc-mix4 --samples-per-article 4 --processes 2
# 2. evaluation data: the default (seed) simulator settings; same article split, so no test article is trained on
[ -f data/bbc-seed/test.jsonl ] || python scripts/make_dataset.py --corpus "$CORPUS" \
    --config configs/simulate.yaml --out data/bbc-seed --processes 2
# 3. train (resumes if runs/cpu-small/last exists)
python scripts/train.py --config configs/cpu-small.yaml
# 4. evaluate on the seed test split and on the mixture's test split
python scripts/evaluate.py --model runs/cpu-small/best --data data/bbc-seed/test.jsonl --out runs/cpu-small/eval-seed/metrics.json
python scripts/evaluate.py --model runs/cpu-small/best --data data/bbc-mix4/test.jsonl --out runs/cpu-small/eval-mix/metrics.json
# 5. restore a few damaged articles
python - <<'PY'
import json, pathlib
out = pathlib.Path("runs/cpu-small/demo"); out.mkdir(parents=True, exist_ok=True)
for i, line in zip(range(3), open("data/bbc-seed/test.jsonl")):
    (out / f"article{i}.txt").write_text(json.loads(line)["text"], encoding="utf-8")
PY
python scripts/predict.py --model runs/cpu-small/best --input runs/cpu-small/demo --format html --output runs/cpu-small/demo.html
echo "done: see runs/cpu-small/eval-seed/report.md and runs/cpu-small/demo.html"
