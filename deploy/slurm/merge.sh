#!/usr/bin/env bash
# The merge after deploy/slurm/replay_array.sh: `pipeline_seg merge` over every run in
# RUNS/replay (bag-list order) into RUNS/merged: metrics.json, frames.csv (with a `bag` column) and
# report.html, equal to one replay of all the bags (docs/interfaces.md §11). Submit it after the
# array:  sbatch --dependency=afterok:<array job id> deploy/slurm/merge.sh
# or run it directly (bash deploy/slurm/merge.sh). Same environment as replay_array.sh (RUNS,
# BAG_LIST, and SIF/BIND or PIPELINE_SEG_ROOT). ALLOW_MISSING=1 merges when runs are missing.
#SBATCH --job-name=pipeline_seg-merge
#SBATCH --cpus-per-task=1
#SBATCH --mem=4G
#SBATCH --time=01:00:00
#SBATCH --output=logs/merge_%j.out
set -euo pipefail
shopt -s nullglob
RUNS=${RUNS:-$PWD/runs}

if [ -n "${SIF:-}" ]; then
  # --cleanenv: the image's ORT_DYLIB_PATH and AMENT_PREFIX_PATH, not a sourced host's.
  pipeline_seg() { "${APPTAINER:-apptainer}" exec --cleanenv ${BIND:+--bind "$BIND"} "$SIF" /opt/pipeline_seg/bin/pipeline_seg "$@"; }
elif [ -n "${PIPELINE_SEG_ROOT:-}" ]; then
  # shellcheck source=/dev/null
  source "$PIPELINE_SEG_ROOT/scripts/env.sh"
  export PATH=$PIPELINE_SEG_ROOT/target/release:$PATH
fi

runs=("$RUNS"/replay/*)
if [ "${#runs[@]}" -eq 0 ]; then
  echo "no runs in $RUNS/replay" >&2
  exit 2
fi
if [ -n "${BAG_LIST:-}" ]; then
  bags=$(grep -v -e '^[[:space:]]*$' -e '^[[:space:]]*#' "$BAG_LIST" | wc -l)
  echo "${#runs[@]} runs in $RUNS/replay for $bags bags in $BAG_LIST"
  if [ "${#runs[@]}" -ne "$bags" ] && [ "${ALLOW_MISSING:-0}" != 1 ]; then
    echo "runs missing (sacct -j <array job id> shows the failed tasks); ALLOW_MISSING=1 merges anyway" >&2
    exit 2
  fi
fi
for f in "$RUNS"/logs/*.rc; do
  [ "$(cat "$f")" = 0 ] || echo "replay exited $(cat "$f") (some frames failed; see ${f%.rc}.log): $(basename "$f" .rc)"
done
rm -rf "$RUNS/merged.tmp"
rc=0
pipeline_seg merge "${runs[@]}" --out "$RUNS/merged.tmp" || rc=$?
if [ "$rc" -le 1 ]; then
  rm -rf "$RUNS/merged"
  mv -T "$RUNS/merged.tmp" "$RUNS/merged"
  echo "merged: $RUNS/merged (metrics.json, frames.csv, report.html)"
fi
# Optional, on the same run directories (run directories are accepted wherever bags are; flags as
# for bags, README "The CLI"), e.g.:
#   pipeline_seg calibrate "${runs[@]}" --topic "$TOPIC" --gt-topic "$GT_TOPIC" --out "$RUNS/merged/calibrated.yaml"
#   pipeline_seg select "${runs[@]}" --topic "$TOPIC" --top-k 200 --out "$RUNS/merged/to_label"
exit "$rc"
