"""Placement study: train each dropout placement briefly, export, and measure on `val` (and,
for information, on `ood`): pipeline IoU, pixel-error AUROC of entropy and MI, and the
multiply-accumulates of the part that runs T times.

Usage: python study.py --placement head --steps 900 --threads 1   (one placement per process)
       python study.py --table                                   (print the collected table)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "study"


def run_one(placement, steps, threads, p):
    d = OUT / placement.replace("+", "_")
    d.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    # The shipped recipe (local-contrast input, fitted temperature) at a shorter budget.
    subprocess.run([py, str(HERE / "train.py"), "--placement", placement, "--steps", str(steps), "--lcn",
                    "--threads", str(threads), "--p", str(p), "--out", str(d)], check=True)
    onnx_path = d / "model.onnx"
    subprocess.run([py, str(HERE / "export.py"), str(d / "model.pt"), "--out", str(onnx_path),
                    "--report", str(d / "export.json"), "--fit-temperature", str(HERE / "data")], check=True)
    env = dict(os.environ, ORT_THREADS=str(threads))
    subprocess.run([py, str(HERE / "evaluate.py"), str(onnx_path), "--splits", "val,ood", "--json", str(d / "eval.json"),
                    "--calibrate", str(d / "calib.json")], check=True, env=env)


def table():
    rows = []
    for d in sorted(OUT.iterdir()):
        if not (d / "eval.json").exists():
            continue
        ev = json.loads((d / "eval.json").read_text())["metrics"]
        ex = json.loads((d / "export.json").read_text())
        tr = json.loads((d / "train_log.json").read_text())["config"]
        cal = json.loads((d / "calib.json").read_text())["chosen"]
        v, o = ev["val"], ev["ood"]
        rows.append({"placement": ex["placement"], "steps": tr["steps"], "train_s": tr["train_seconds"],
                     "val_pooled_iou": v["pooled_iou"], "val_det_iou": v["det_pooled_iou"],
                     "val_auroc_entropy": v["auroc_entropy"], "val_auroc_mi": v["auroc_mi"],
                     "val_ece_pipe": v["ece_pipe"], "ood_sane_above_high": o.get("sane_above_high"),
                     "val_clear_above_high": v.get("clear_above_high"), "score": ev["val"].get("score_method"),
                     "gmacs_per_sample": ex["macs_per_sample"] / 1e9, "gmacs_T16": ex["macs_T16_shipped"] / 1e9,
                     "gmacs_T16_whole": ex["macs_T16_whole_network"] / 1e9, "score_method": cal["score_method"]})
    (OUT / "results.json").write_text(json.dumps(rows, indent=1))
    head = ("| placement | val IoU (T=16) | det. IoU | AUROC H | AUROC MI | ECE pipe | OOD sane > high | "
            "clear val > high | GMAC/sample | GMAC/frame T=16 | whole net ×16 | train s |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        print(f"| {r['placement']} | {r['val_pooled_iou']:.3f} | {r['val_det_iou']:.3f} | {r['val_auroc_entropy']:.3f} | "
              f"{r['val_auroc_mi']:.3f} | {r['val_ece_pipe']:.3f} | {r['ood_sane_above_high']:.3f} | "
              f"{r['val_clear_above_high']:.3f} | {r['gmacs_per_sample']:.3f} | {r['gmacs_T16']:.2f} | "
              f"{r['gmacs_T16_whole']:.2f} | {r['train_s']:.0f} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--placement")
    ap.add_argument("--steps", type=int, default=1400)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--p", type=float, default=0.2)
    ap.add_argument("--table", action="store_true")
    a = ap.parse_args()
    if a.table:
        table()
    else:
        run_one(a.placement, a.steps, a.threads, a.p)
