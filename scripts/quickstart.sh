#!/usr/bin/env bash
# Train your own model end to end on CPU: build the data, train configs/cpu-small.yaml (with calibration
# and span heads), evaluate it on the four test sets, restore a few articles. Within 30 minutes on 2 cores,
# AVX2-only ones included (docs/results.md gives the measured times and the CPU).
# Everything generated lands in data/ and runs/ (both ignored by git); a rerun skips what is built and
# resumes training. If the time budget cuts training short, `train` says so and exits 3, and this stops.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
export HF_HUB_OFFLINE=1
RUN=runs/cpu-small
stage() { echo "== $1 (at ${SECONDS}s)"; }
stage "1. data: the quick training mixture and the four test sets"
bash scripts/build_data.sh quick
stage "2. train, calibrate, fit the span heads"
python scripts/train.py --config configs/cpu-small.yaml ${TRAIN_OVERRIDES:-}  # e.g. TRAIN_OVERRIDES="mixed_precision=no"
stage "3. evaluate on every test set (and on the real damaged excerpts of CORRUPTION.md, when present)"
QUOTES=(); [ -f "$SHARED/CORRUPTION.md" ] && QUOTES=(--quotes "$SHARED/CORRUPTION.md")
python scripts/evaluate.py --model $RUN/best --out $RUN/eval --limit 100 "${QUOTES[@]}" \
    --data data/bbc-seed/test.jsonl data/bbc-resolvers/test.jsonl data/us-seed/test.jsonl data/us-resolvers/test.jsonl
stage "4. restore a few damaged articles, marking where copies destroyed words"
python - <<'PY'
import json, pathlib
out = pathlib.Path("runs/cpu-small/demo"); out.mkdir(parents=True, exist_ok=True)
for i, line in zip(range(3), open("data/us-seed/test.jsonl")):
    (out / f"article{i}.txt").write_text(json.loads(line)["text"], encoding="utf-8")
PY
python scripts/predict.py --model $RUN/best --input $RUN/demo --format html --output $RUN/demo.html --gaps mark
stage "done: see $RUN/eval/summary.md and $RUN/demo.html"
