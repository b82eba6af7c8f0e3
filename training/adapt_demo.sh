#!/usr/bin/env bash
# `make adapt-demo`: the label -> fine-tune -> recalibrate loop on the sample bag, end to end.
# Usage: training/adapt_demo.sh PIPELINE_SEG_BINARY OUT_DIR TRAIN_PYTHON
# The sample bag's ground-truth topic /camera/mask stands in for a human labeller.
set -euo pipefail
BIN=$1; OUT=$2; PY=$3
BASE=${BASE:-models/pipeline_seg_unet.onnx}
BAG=tests/data/sample_bag
TOPIC=/camera/image_raw/compressed
rm -rf "$OUT"; mkdir -p "$OUT/model"
step() { echo; echo "== $*"; }

step "1. record: on the vehicle, 'ros2 bag record $TOPIC' (here: $BAG stands in for that recording)"
step "2. replay with the base model (metrics need the ground-truth topic; a fresh recording has none)"
"$BIN" replay "$BAG" --topic "$TOPIC" --gt-topic /camera/mask --model "$BASE" --write confidence --out "$OUT/replay_before"
step "3. select the 12 frames the model is least sure of (mutual information)"
"$BIN" select "$BAG" --topic "$TOPIC" --top-k 12 --min-gap 0.4 --by mi --model "$BASE" --out "$OUT/labels"
step "4. label: <stamp_ns>_mask.png (mono8, 0/255) beside each frame; here from /camera/mask"
"$PY" training/bag_labels.py --labels "$OUT/labels" --gt-topic /camera/mask
step "5. fine-tune (make finetune LABELS=$OUT/labels OUT=$OUT/model/adapted.onnx)"
t0=$(date +%s)
"$PY" training/finetune.py --labels "$OUT/labels" --out "$OUT/model/adapted.onnx" --base "$BASE" ${FINETUNE_ARGS:-}
echo "fine-tune took $(( $(date +%s) - t0 )) s; card: $OUT/model/adapted.md"
"$PY" training/contract.py "$OUT/model/adapted.onnx" --like "$BASE"
step "6. calibrate the gate of the new model (here on the same bag; on a vehicle use a separate labelled bag)"
# --fit-trust: the fine-tune refitted feature_distance but kept the base's trust coefficients.
# It is refused (exit 2) when a half of the bag has no bad frame left, which a model fine-tuned on
# this very bag may do; then the gate is calibrated among the other scores and the base's trust.
cal() { "$BIN" calibrate "$BAG" --topic "$TOPIC" --gt-topic /camera/mask --model "$OUT/model/adapted.onnx" "$@" \
  --out "$OUT/adapted.yaml"; }
cal --fit-trust || { echo "(trust not refitted: see above)"; cal; }
step "7. replay with the adapted model and its parameter file"
"$BIN" replay "$BAG" --topic "$TOPIC" --gt-topic /camera/mask --model "$OUT/model/adapted.onnx" --config "$OUT/adapted.yaml" \
  --write confidence --out "$OUT/replay_after"
"$PY" - "$OUT" <<'PYEOF'
import json, sys
out = sys.argv[1]
b, a = (json.load(open(f"{out}/replay_{w}/metrics.json")) for w in ("before", "after"))
print("| metric | base model | adapted model + calibrated params |")
print("|---|---|---|")
for k in ("pooled_iou", "mean_iou", "auroc_entropy", "bad_flagged", "good_flagged"):
    print(f"| {k} | {b[k]:.3f} | {a[k]:.3f} |")
PYEOF
step "8. run the node with the new model and parameter file"
MODEL=$(cd "$(dirname "$OUT/model/adapted.onnx")" && pwd)/adapted.onnx
PARAMS=$(cd "$OUT" && pwd)/adapted.yaml
echo "on a vehicle:  ros2 launch pipeline_seg pipeline_seg.launch.py image_topic:=$TOPIC input_transport:=compressed params_file:=$PARAMS model_path:=$MODEL"
NODE=$(dirname "$BIN")/pipeline_seg_node
if [ -x "$NODE" ] && "$PY" -c 'import os; assert os.environ.get("AMENT_PREFIX_PATH")' 2>/dev/null; then
  echo "here (ROS 2 wheels): $NODE --ros-args --params-file $PARAMS -p model_path:=$MODEL"
  "$NODE" --ros-args --params-file "$PARAMS" -p model_path:="$MODEL" > "$OUT/node.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 60); do grep -q "ready:" "$OUT/node.log" && break; sleep 0.5; done
  kill -INT $pid; wait $pid || true
  grep -m1 "ready:" "$OUT/node.log" || { echo "node did not report ready; see $OUT/node.log"; exit 1; }
else
  echo "no ROS 2 here: 'pipeline_seg infer' with the same model and parameter file stands in for the node"
  "$BIN" infer --model "$MODEL" --config "$PARAMS" --out "$OUT/infer" tests/data/frames/val/image/
fi
echo; echo "adapt-demo done: $OUT (labels/, model/adapted.onnx + .md, adapted.yaml, replay_before/, replay_after/)"
