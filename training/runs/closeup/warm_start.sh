#!/bin/bash
# Warm start from the shipped model, 300 steps (lr 1e-4, water augmentation) on the 200 train_dr frames
# rendered here, with or without train.py's --geo-aug; export (temperature 1, not refitted); score.
# Usage (repository root): bash training/runs/closeup/warm_start.sh NAME OUTDIR [--seed S] [--geo-aug]
set -e
name=$1 dir=$2; shift 2
.venv-train/bin/python training/train.py --init models/pipeline_seg_unet.onnx --steps 300 --lr 1e-4 --split train_dr \
  --water-aug --threads 1 --out "$dir/$name" "$@" > "$dir/$name.train.log" 2>&1
.venv-train/bin/python training/export.py "$dir/$name/model.pt" --out "$dir/$name.onnx" > "$dir/$name.export.log" 2>&1
.venv-train/bin/python training/runs/closeup/score.py --splits val_dr:80,val:80,xr,ho_water,ho_seabed,ho_coating,ho_light "$dir/$name.onnx"
