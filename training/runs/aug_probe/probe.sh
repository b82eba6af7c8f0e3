# usage: bash training/runs/aug_probe/probe.sh NAME THREADS [train.py flags...]
# One arm: continue the shipped model for STEPS (600) steps, export, evaluate; outputs in $OUT/NAME
# (default /tmp/aug_probe: the models stay out of the repository).
set -e
cd "$(dirname "$0")/../../.."
P=.venv-train/bin/python
name=$1; th=$2; shift 2
out=${OUT:-/tmp/aug_probe}/$name
mkdir -p $out
$P training/train.py --init models/pipeline_seg_unet.onnx --steps ${STEPS:-600} --lr 2e-4 --split train,train_dr --split-weights 1,1 --water-aug --threads $th --out $out "$@" > $out/train.log 2>&1
$P training/export.py $out/model.pt --out $out/model.onnx > $out/export.log 2>&1
ORT_THREADS=$th $P training/evaluate.py $out/model.onnx --splits val_dr,ho_water,ho_seabed,ho_light,xr --samples 8 --json $out/eval.json > $out/eval.log 2>&1
echo done > $out/DONE
