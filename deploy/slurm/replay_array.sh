#!/usr/bin/env bash
# One `pipeline_seg replay` per bag as a Slurm job array: task i replays line i+1 of BAG_LIST into
# RUNS/replay/<i, 5 digits>_<bag name> (zero-padded, so `RUNS/replay/*` is in bag-list order, the
# order the merge lists frames in). Submit (N bags, at most 50 at once), then the merge:
#
#   export BAG_LIST=$PWD/bags.txt RUNS=$PWD/runs            # one bag path per line
#   n=$(grep -c . "$BAG_LIST")
#   jid=$(sbatch --parsable --array=0-$((n - 1))%50 deploy/slurm/replay_array.sh)
#   sbatch --dependency=afterok:$jid deploy/slurm/merge.sh
#
# (sbatch passes the exported environment on; logs go to the submit directory's logs/, which must
# exist: mkdir -p logs). `afterok` waits for every task of the array and is never satisfied if one
# fails: then rerun the array (finished runs are not redone) or merge what there is by hand.
#
# Where the CLI comes from, in this order:
#   SIF=/path/pipeline_seg.sif  apptainer (APPTAINER=singularity for Singularity) with the image of deploy/Dockerfile:
#                               apptainer build pipeline_seg.sif docker-daemon://pipeline_seg:latest
#                               (or docker://REGISTRY/pipeline_seg:latest). BIND (e.g. /data) is
#                               passed as --bind: the bags and RUNS must be visible inside (apptainer
#                               binds $HOME, /tmp and the working directory by itself).
#   PIPELINE_SEG_ROOT=/checkout  a native build there (make build): sources scripts/env.sh.
#   otherwise                   `pipeline_seg` from PATH (e.g. after `source scripts/env.sh`
#                               and putting target/release on PATH, or an install).
# Replay flags: TOPIC (required), GT_TOPIC, SEED (0), SAMPLES (the model's), REPLAY_ARGS (more,
# e.g. "--config params.yaml"). Runs merge only when model, seed and samples agree.
# Exit codes as in docs/interfaces.md §6: 1 (some frames failed, outputs complete) counts as done,
# kept in RUNS/logs/<name>.rc; 2 and others fail the task. Not run here: no cluster (deploy/README.md).
#SBATCH --job-name=pipeline_seg-replay
#SBATCH --array=0-0
#SBATCH --cpus-per-task=2
#SBATCH --mem=2G
#SBATCH --time=04:00:00
#SBATCH --output=logs/replay_%A_%a.out
set -euo pipefail

: "${BAG_LIST:?export BAG_LIST (one bag path per line)}"
: "${TOPIC:?export TOPIC (the camera topic)}"
RUNS=${RUNS:-$PWD/runs}
SEED=${SEED:-0}
i=${SLURM_ARRAY_TASK_ID:?run through sbatch --array}

if [ -n "${SIF:-}" ]; then
  # --cleanenv: the image's ORT_DYLIB_PATH and AMENT_PREFIX_PATH, not a sourced host's.
  pipeline_seg() { "${APPTAINER:-apptainer}" exec --cleanenv ${BIND:+--bind "$BIND"} "$SIF" /opt/pipeline_seg/bin/pipeline_seg "$@"; }
elif [ -n "${PIPELINE_SEG_ROOT:-}" ]; then
  # shellcheck source=/dev/null
  source "$PIPELINE_SEG_ROOT/scripts/env.sh"
  export PATH=$PIPELINE_SEG_ROOT/target/release:$PATH
fi

bag=$(grep -v -e '^[[:space:]]*$' -e '^[[:space:]]*#' "$BAG_LIST" | sed -n "$((i + 1))p")
if [ -z "$bag" ]; then
  echo "no bag for task $i in $BAG_LIST (array larger than the list?)" >&2
  exit 2
fi
name=$(printf '%05d_%s' "$i" "$(basename "${bag%/}" | tr -c 'A-Za-z0-9._-' _)")
final=$RUNS/replay/$name tmp=$RUNS/.tmp/$name log=$RUNS/logs/$name
mkdir -p "$RUNS/replay" "$RUNS/.tmp" "$RUNS/logs"
if [ -e "$final/state.json" ]; then
  echo "$final is complete already; not replayed again"
  exit 0
fi
rm -rf "$tmp"
echo "task $i: $bag -> $final"
rc=0
pipeline_seg replay "$bag" --topic "$TOPIC" ${GT_TOPIC:+--gt-topic "$GT_TOPIC"} \
  --seed "$SEED" ${SAMPLES:+--samples "$SAMPLES"} --threads "${SLURM_CPUS_PER_TASK:-2}" ${REPLAY_ARGS:-} \
  --out "$tmp" 2>&1 | tee "$log.log" || rc=$?
echo "$rc" > "$log.rc"
if [ "$rc" -gt 1 ]; then
  exit "$rc"
fi
mv -T "$tmp" "$final"
