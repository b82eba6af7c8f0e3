"""Calibrate the gate defaults on `val` and store them in the ONNX metadata (docs/interfaces.md §2-3).

Clear frames should stay confident and wrong frames be flagged: for every score variant the
high threshold is the 95th percentile of the good frames' scores (≤ 5 % of good frames
flagged), and the variant that then flags the most bad frames wins (ties: AUROC of the score
for bad vs good, then Spearman with 1 − IoU). The low threshold is the 80th percentile.

Used by `evaluate.py --calibrate JSON`, which evaluates `val` once for both jobs.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx


def set_props(model, props):
    """Merge string metadata into an ONNX model (same as export.set_props, without torch)."""
    kept = {p.key: p.value for p in model.metadata_props}
    kept.update({k: str(v) for k, v in props.items()})
    del model.metadata_props[:]
    for k in sorted(kept):
        model.metadata_props.add(key=k, value=kept[k])

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mcd  # noqa: E402

GOOD_FLAG_QUANTILE = 0.95
LOW_QUANTILE = 0.80
RECOVER_FRAMES = 3


def auroc(pos, neg):
    pos, neg = np.asarray(pos), np.asarray(neg)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg)))


def choose(frames):
    rows = []
    good = [f for f in frames if not f["bad"] and f["sane"]]
    bad = [f for f in frames if f["bad"] and f["sane"]]
    if not good:  # a useless model: thresholds from all frames, so the record still shows it
        good = [f for f in frames if f["sane"]] or frames
    for key in frames[0]["scores"]:
        g = np.array([f["scores"][key] for f in good])
        b = np.array([f["scores"][key] for f in bad])
        hi = float(np.quantile(g, GOOD_FLAG_QUANTILE))
        lo = float(np.quantile(g, LOW_QUANTILE))
        rows.append({"key": key, "threshold_high": hi, "threshold_low": lo,
                     "good_flagged": float((g > hi).mean()),
                     "bad_flagged": float((b > hi).mean()) if len(b) else float("nan"),
                     "auroc_bad": auroc(b, g),
                     "spearman_1-iou": mcd.spearman([f["scores"][key] for f in frames], [1 - f["iou"] for f in frames])})
    nz = lambda v: -1.0 if v != v else v  # noqa: E731
    rows.sort(key=lambda r: (nz(r["bad_flagged"]), nz(r["auroc_bad"]), nz(r["spearman_1-iou"])), reverse=True)
    return rows, len(good), len(bad)


def calibrate(model_path, frames):
    """Choose the gate defaults from evaluated `val` frames and write them into the model."""
    rows, n_good, n_bad = choose(frames)
    best = rows[0]
    method, _, param = best["key"].partition(":")
    props = {"score_method": method,
             "pixel_threshold": param if method == "fraction_above" else "0.5",
             "band_px": param if method == "pipeline_mean" else "2",
             "threshold_high": f"{best['threshold_high']:.4f}", "threshold_low": f"{best['threshold_low']:.4f}",
             "recover_frames": str(RECOVER_FRAMES)}
    m = onnx.load(model_path)
    set_props(m, props)
    onnx.save(m, model_path)
    print(f"val: {len(frames)} frames, {n_good} good, {n_bad} bad (sane frames only)")
    print("| score | threshold_high | good flagged | bad flagged | AUROC bad/good | Spearman(score, 1-IoU) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['key']} | {r['threshold_high']:.4f} | {r['good_flagged']:.3f} | {r['bad_flagged']:.3f} | "
              f"{r['auroc_bad']:.3f} | {r['spearman_1-iou']:.3f} |")
    print("chosen:", props)
    return {"chosen": props, "rows": rows, "good": n_good, "bad": n_bad}
