#!/usr/bin/env bash
# Refit `feature_distance` and `trust` on the shipped weights, make trust the default gate if it
# wins, and record what the gate then does on sequences and on OOD renders (issue 11). Needs no
# PyTorch: .venv (make setup) and the release binary (make build). About 15 min on 2 cores.
#   make refit-trust, or: bash training/refit_trust.sh [PYTHON] [PIPELINE_SEG]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
BIN=${2:-target/release/pipeline_seg}
M=models/pipeline_seg_unet.onnx
D=training/data
R=training/runs/trust
mkdir -p "$R"
# The shipped weights continue the first model (trained on the first generator's `train`) on
# `train` and `train_dr`; `feature_distance` is fitted on `train` alone (training/pipeline.py says
# why). `val` (200) and `shift_*` are the first generator's validation and shifted water; the
# randomised splits, held-out families and the second renderer (xr) are other looks. A split
# already rendered is kept (a frame depends only on seed, split and index).
render() { # split [make_data args]
  local s=$1; shift
  [ -f "$D/$s/meta.jsonl" ] && [ "$(wc -l < "$D/$s/meta.jsonl")" -ge "${WANT:-1}" ] && return 0
  "$PY" training/make_data.py --seed 7 --out "$D" --splits "$s" "$@"
}
WANT=480 render train --max 480
WANT=200 render val --scale 2
for s in shift_clear shift_turbid ood val_dr nopipe_dr ho_water ho_seabed ho_coating ho_light xr; do render "$s"; done
"$PY" training/density.py "$M" --data "$D" --splits train --out "$M" --report "$R/density.json" \
  --eval-splits val,shift_clear,shift_turbid,ood,xr
"$PY" training/trust.py "$M" --data "$D" --fit-splits val,val_dr,nopipe_dr --ood-splits ood \
  --eval-splits shift_clear,shift_turbid,xr,ho_water,ho_seabed,ho_coating,ho_light --clear-split val \
  --default-gate --out "$M" --report "$R/trust.json"
"$PY" training/split.py "$M"
source scripts/env.sh >/dev/null
"$PY" training/gate_check.py --bin "$BIN" --model "$M" --test-splits val,shift_clear,shift_turbid --ood-splits ood \
  --out training/runs/gate_check
"$PY" training/card.py --splice trust/card_section.md gate_check/card_section.md
