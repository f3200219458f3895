#!/usr/bin/env bash
# A release stage that trains nothing: the uniform mean of the weights of models already trained from one start
# (a model soup: Wortsman et al. 2022), finished and offered as scripts/next_stage.sh offers its candidates:
#   bash scripts/soup_stage.sh RUN MODEL MODEL [MODEL ...]
#   e.g. bash scripts/soup_stage.sh runs/soup-10-11 runs/wide6-soup/best runs/wide7-soup/best
#   PREFER_THRESHOLD=T (in the environment): as in next_stage.sh, calibration keeps threshold T unless a threshold
#   beats it by more than one standard error
# 1. averages the MODELs into RUN/best and finishes it as every stage is (scripts/release_steps.sh's `soup`);
# 2. evaluates it on every test set into RUN/eval* and asks `package-model` to replace the shipped model: it does
#    only if the soup is better on every test set the shipped one was scored on, and otherwise says where it is
#    not, writes nothing and exits 2.
# The test sets must be built (scripts/next_stage.sh builds them); a rerun skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
[ $# -ge 3 ] || { sed -n 4,5p "$0" >&2; exit 64; }
RUN=$1; shift
for model in "$@"; do
  [ -f "$model/model.safetensors" ] || { echo "$model: no model.safetensors: not a trained corefix model" >&2; exit 66; }
done
source scripts/release_steps.sh
step "1. average $* into $RUN/best, finish"
soup "$RUN/best" "$@"
step "2. evaluate on every test set; package-model: replace the shipped model only if better on every test set"
offer_release "$RUN" "${PREFER_THRESHOLD:+PREFER_THRESHOLD=$PREFER_THRESHOLD }bash scripts/soup_stage.sh $RUN $*"
step "done"
