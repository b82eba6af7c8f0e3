# usage: bash training/runs/family_probe/probe.sh NAME THREADS STEPS SPLITS WEIGHTS [train.py flags...]
# One arm: continue the shipped model for STEPS steps on SPLITS (read from $DATA, default /tmp/oracle_data:
# training/data's train and train_dr beside frames of the held-out families rendered with another seed,
# see README.md), export, evaluate on training/data's test splits. Outputs in $OUT/NAME (default
# /tmp/fam_probe): the models stay out of the repository.
set -e
cd "$(dirname "$0")/../../.."
P=.venv-train/bin/python
name=$1; th=$2; steps=$3; splits=$4; w=$5; shift 5
out=${OUT:-/tmp/fam_probe}/$name; mkdir -p $out
$P training/train.py --data ${DATA:-/tmp/oracle_data} --init models/pipeline_seg_unet.onnx --steps $steps --lr 2e-4 \
    --split $splits --split-weights $w --water-aug --threads $th --out $out "$@" > $out/train.log 2>&1
$P training/export.py $out/model.pt --out $out/model.onnx > $out/export.log 2>&1
ORT_THREADS=$th $P training/evaluate.py $out/model.onnx --splits val_dr,ho_water,ho_seabed,ho_coating,ho_light,xr,nopipe_dr \
    --samples 8 --json $out/eval.json > $out/eval.log 2>&1
echo done > $out/DONE
