# The steps every release stage shares, sourced by scripts/make_default_model.sh (all stages from the encoder)
# and scripts/next_stage.sh (one stage from the shipped model): the test sets the release rule reads, how a
# stage is trained, averaged and finished, and how a candidate is evaluated on every test set.

# seed and resolvers: every article (224 BBC, 689 US; the US sets were scored on their first 300 until
# docs/results.md 2026-12-06 (7), where three candidates in a row lost one or two sets by 0.1-0.3 points)
TESTS=(data/bbc-seed/test.jsonl data/bbc-resolvers/test.jsonl data/us-seed/test.jsonl data/us-resolvers/test.jsonl)
# inserted copies: every article (224 BBC, 689 US; on 100 a candidate lost by 0.2 points, a few spans);
# leftward drift (every copy left of its mention; training draws at most 30 % leftward): the first 100 of each
INSERT=(data/bbc-insert/test.jsonl data/us-insert/test.jsonl)
LEFT=(data/bbc-left/test.jsonl data/us-left/test.jsonl)
# undamaged articles: every one of the clean test splits (224 BBC, 689 US; 100 were too few to tell models apart)
CLEAN=(data/bbc-clean/test.jsonl data/us-clean/test.jsonl)
# damage made by code that is not the simulator (tools/independent_damage): up to 224 articles of each, BBC's whole test
# split (150 until docs/results.md 2026-12-07 (8))
INDEPENDENT=(data/gen{a,b,c}-{bbc,us}/test.jsonl)

# the build_data.sh parts the stages of scripts/make_default_model.sh train on and are scored on ("": the base part)
RECIPE_DATA=("" random independent clean wide resolvers)
build_parts() {  # build_parts PART ...: bash scripts/build_data.sh PART for each (a rerun skips what is built)
  local part
  for part in "$@"; do bash scripts/build_data.sh $part; done
}

finish() {  # finish AVERAGE_DIR: calibrate on 800, no gate, first-mention bias on 800, span heads; with
  # PREFER_THRESHOLD=T set, calibration keeps threshold T when it is within one standard error of the best
  # (corefix calibrate --prefer-threshold; stage 11 on: the shipped model's threshold, docs/results.md 2026-12-07 (4))
  python scripts/calibrate.py --model "$1" --limit 800 ${PREFER_THRESHOLD:+--prefer-threshold "$PREFER_THRESHOLD"}
  python -c "import sys; from corefix.model.card import ModelCard; c = ModelCard.load(sys.argv[1]); c.article_gate = c.gate_density = 0.0; c.save(sys.argv[1])" "$1"
  python scripts/calibrate.py --model "$1" --only-first-mention-bias --limit 800
  python scripts/fit_heads.py --model "$1" --data data/bbc-mix4 data/us-mix3 --train-limit 2000
}

soup() {  # soup AVERAGE MODEL MODEL ...: the uniform mean of the MODELs' weights (corefix average) into AVERAGE,
  # finished. A rerun skips what is done: nothing when AVERAGE is finished (its span heads, the last step, are
  # written), only the finishing when AVERAGE is averaged but was stopped while finishing (an unfinished average
  # is never evaluated as if finished)
  local average=$1
  [ -f "$average/heads.safetensors" ] && return
  mean "$@"
  finish "$average"
}

mean() {  # mean AVERAGE MODEL MODEL ...: the uniform mean of the MODELs' weights (corefix average) into AVERAGE,
  # not finished (an average that only goes into another average); a rerun skips it when AVERAGE holds a model
  local average=$1; shift
  [ -f "$average/model.safetensors" ] || python scripts/average.py --models "$@" --out "$average"
}

carry_on() {  # carry_on TRAINED FROM AVERAGE CONFIG [KEY=VALUE ...]: train CONFIG (its best in TRAINED), average
  # that with FROM, the model it started from, into AVERAGE, and finish it (soup); a rerun trains again only when
  # AVERAGE is not averaged yet
  local trained=$1 from=$2 average=$3; shift 3
  [ -f "$average/heads.safetensors" ] && return
  [ -f "$average/model.safetensors" ] || python scripts/train.py --config "$@"
  soup "$average" "$trained/best" "$from"
}

evaluate_release() {  # evaluate_release RUN: pack RUN/best into RUN/packed, score it into RUN/eval*
  python scripts/package_model.py --model "$1/best" --out "$1/packed"
  python scripts/evaluate.py --model "$1/packed" --out "$1"/eval --data "${TESTS[@]}"
  python scripts/evaluate.py --model "$1/packed" --out "$1"/eval-insert --data "${INSERT[@]}"
  python scripts/evaluate.py --model "$1/packed" --out "$1"/eval-families --limit 100 --data "${LEFT[@]}"
  python scripts/evaluate.py --model "$1/packed" --out "$1"/eval-clean --data "${CLEAN[@]}"
  python scripts/evaluate.py --model "$1/packed" --out "$1"/eval-independent --data "${INDEPENDENT[@]}"
}
EVALS=(eval eval-insert eval-families eval-clean eval-independent)  # the folders evaluate_release writes
SHIPPED=src/corefix/default_model  # the shipped model, the one offer_release may replace

step() {  # step NAME: say that a stage's step starts, when, and how long after the script began
  echo "== $1 (at ${SECONDS} s, $(date -u +%H:%M:%S) UTC)"
}

offer_release() {  # offer_release RUN MADE_BY [--config CONFIG]: evaluate RUN/best on every test set, then
  # package-model replaces the shipped model with it only if it is better on every test set the shipped one was
  # scored on; otherwise it says where it is not, writes nothing and exits 2. MADE_BY: the command, for the card
  local run=$1 made_by=$2; shift 2
  evaluate_release "$run"
  python scripts/package_model.py --model "$run/best" --out "$SHIPPED" --eval "${EVALS[@]/#/$run/}" \
      "$@" --command "$made_by"
}
