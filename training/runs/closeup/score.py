"""Pooled IoU, entropy AUROC and close-up IoU (frames whose pipe covers > 25 %) of models on splits of
training/data, T = 16, al_study.evaluate's sampling. One JSON line per model.

Usage: python score.py --splits val_dr:80,val:80,xr MODEL.onnx ...   (SPLIT:N = the split's first N frames)
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "training"))
import al_study as A  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--splits", default="val_dr:80,val:80,xr")
ap.add_argument("models", nargs="+")
a = ap.parse_args()
sets = {}
for s in a.splits.split(","):
    name, _, n = s.partition(":")
    fr = A.frames_of(ROOT / "training" / "data" / name)
    sets[s.replace(":", "")] = fr[: int(n)] if n else fr
for m in a.models:
    rec = {"model": m}
    for k, fr in sets.items():
        e = A.evaluate(m, fr)
        rec[k] = round(e["pooled_iou"], 4)
        rec[k + "_auroc"] = round(e["auroc_entropy"], 4)
        if e["closeup_iou"] is not None:
            rec[k + "_closeup"] = round(e["closeup_iou"], 4)
    print(json.dumps(rec), flush=True)
