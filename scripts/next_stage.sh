#!/usr/bin/env bash
# One more release stage, carried on from the shipped model, on a machine where nothing is built yet:
#   bash scripts/next_stage.sh CONFIG RUN [DATA_PART ...]
#   e.g. bash scripts/next_stage.sh configs/insert-clean-resolvers-finetune.yaml runs/wide6-soup insert2
#   PREFER_THRESHOLD=T (in the environment): calibration keeps threshold T unless a threshold beats it by more
#   than one standard error (stage 11: PREFER_THRESHOLD=0.7, the shipped model's)
# 1. builds every dataset the release stages train on and are scored on (scripts/build_data.sh, each of its
#    parts, then DATA_PART: the data the stage adds), spaCy's parses shared between them (data/parses);
# 2. trains CONFIG (its `model` must be `default`: the shipped model) into its run_dir, averages that with the
#    shipped model into RUN/best and finishes it as the shipped model was (scripts/release_steps.sh);
# 3. evaluates it on every test set into RUN/eval* and asks `package-model` to replace the shipped model: it does
#    only if the candidate is better on every test set the shipped one was scored on, and otherwise says where it
#    is not, writes nothing and exits 2 (release_steps.sh's offer_release).
# Each step prints when it starts; docs/results.md records how long each took (2 CPU cores).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
[ $# -ge 2 ] || { sed -n 2,4p "$0" >&2; exit 64; }
CONFIG=$1 RUN=$2; shift 2
read -r MODEL TRAINED < <(python -c "import sys; from corefix.model.train import TrainConfig
c = TrainConfig.from_yaml(sys.argv[1]); print(c.model, c.run_dir)" "$CONFIG")
[ "$MODEL" = default ] || { echo "$CONFIG: model is $MODEL; a next stage carries on the shipped model (model: default)" >&2; exit 64; }
source scripts/release_steps.sh
step "1. data"
build_parts "${RECIPE_DATA[@]}" resolvers2 clean2 "$@"  # the recipe's data, stages 8 and 9's, then the stage's own
step "2. train $CONFIG, average with the shipped model into $RUN/best, finish"
carry_on "$TRAINED" "$SHIPPED" "$RUN/best" "$CONFIG"
step "3. evaluate on every test set; package-model: replace the shipped model only if better on every test set"
offer_release "$RUN" "${PREFER_THRESHOLD:+PREFER_THRESHOLD=$PREFER_THRESHOLD }bash scripts/next_stage.sh $CONFIG $RUN $*" \
    --config "$CONFIG"
step "done"
