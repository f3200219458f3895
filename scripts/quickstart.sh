#!/usr/bin/env bash
# End to end on CPU: build the datasets, train cpu-small (~20 min on 2 cores), evaluate, predict.
# Everything generated lands in data/ and runs/ (both ignored by git); a rerun skips what is built.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
BBC=${BBC:-$SHARED/data/bbc_news.jsonl}
US=${US:-$SHARED/data/us_news.jsonl}
export HF_HUB_OFFLINE=1
build() {  # build OUT CORPUS CONFIG [more make-dataset options]
  local out=$1 corpus=$2 config=$3; shift 3
  [ -f "$out/simulate.json" ] || python scripts/make_dataset.py --corpus "$corpus" --config "$config" --out "$out" --processes 2 "$@"
}
# 1. training data: the seed/resolvers mixture on both corpora (articles split by id: no test article is trained on)
build data/bbc-mix4 "$BBC" configs/simulate-mix.yaml --samples-per-article 4
build data/us-mix3 "$US" configs/simulate-mix.yaml --samples-per-article 3 --limit 3000
# 2. evaluation data: the test splits only, damaged by the seed profile and by the resolvers profile
build data/bbc-seed "$BBC" configs/simulate.yaml --splits test
build data/bbc-resolvers "$BBC" configs/simulate-resolvers.yaml --splits test
build data/us-seed "$US" configs/simulate.yaml --splits test --limit 6000
build data/us-resolvers "$US" configs/simulate-resolvers.yaml --splits test --limit 6000
# 3. train (resumes if runs/cpu-small/last exists), calibrate, fit the span heads (pronouns, gaps)
python scripts/train.py --config configs/cpu-small.yaml
# 4. evaluate on every test set (and on the real damaged excerpts of CORRUPTION.md, when present)
QUOTES=(); [ -f "$SHARED/CORRUPTION.md" ] && QUOTES=(--quotes "$SHARED/CORRUPTION.md")
python scripts/evaluate.py --model runs/cpu-small/best --out runs/cpu-small/eval --limit 300 "${QUOTES[@]}" \
    --data data/bbc-seed/test.jsonl data/bbc-resolvers/test.jsonl data/us-seed/test.jsonl data/us-resolvers/test.jsonl
# 5. restore a few damaged articles, marking where copies destroyed words
python - <<'PY'
import json, pathlib
out = pathlib.Path("runs/cpu-small/demo"); out.mkdir(parents=True, exist_ok=True)
for i, line in zip(range(3), open("data/us-seed/test.jsonl")):
    (out / f"article{i}.txt").write_text(json.loads(line)["text"], encoding="utf-8")
PY
python scripts/predict.py --model runs/cpu-small/best --input runs/cpu-small/demo --format html --output runs/cpu-small/demo.html --gaps mark
echo "done: see runs/cpu-small/eval/summary.md and runs/cpu-small/demo.html"
