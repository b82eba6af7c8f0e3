"""Evaluate the exported ONNX model with onnxruntime on the generated splits (docs/interfaces.md §7).

Usage: python evaluate.py ../models/pipeline_seg_unet.onnx [--splits val,shift_clear,...]
       [--samples 16] [--seed 0] [--json out.json]
Prints the per-split table that goes into models/MODEL_CARD.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import mcd  # noqa: E402

PIXEL_THRESHOLDS = [0.1, 0.2, 0.3, 0.5, 0.7]
BANDS = [0, 2, 4, 8]
# Own validation first (calibration), then held-out families, the second renderer, no-pipe
# scenes, and the first generator's legacy splits.
SPLITS = ["val_dr", "ho_water", "ho_seabed", "ho_coating", "ho_light", "xr", "nopipe_dr",
          "val", "ood"]


def candidate_scores(entropy, prob):
    """Every frame-score variant considered by calibration, keyed 'method[:param]'."""
    s = {"mean": mcd.frame_score(entropy, prob, "mean"), "p95": mcd.frame_score(entropy, prob, "p95")}
    for t in PIXEL_THRESHOLDS:
        s[f"fraction_above:{t}"] = mcd.frame_score(entropy, prob, "fraction_above", pixel_threshold=t)
    for b in BANDS:
        s[f"pipeline_mean:{b}"] = mcd.frame_score(entropy, prob, "pipeline_mean", band_px=b)
    return s


def score_key(props):
    m = props.get("score_method")
    if m == "fraction_above":
        return f"fraction_above:{float(props['pixel_threshold'])}"
    if m == "pipeline_mean":
        return f"pipeline_mean:{int(props['band_px'])}"
    return m


def evaluate_split(sess, meta, split_dir: Path, samples: int, seed: int, limit=None, progress=True):
    files = sorted((split_dir / "image").glob("*.jpg"))[:limit]
    metas = {}
    if (split_dir / "meta.jsonl").exists():
        for line in (split_dir / "meta.jsonl").read_text().splitlines():
            m = json.loads(line)
            metas[f"{m['index']:05d}"] = m
    acc, acc_det = mcd.Accumulator(), mcd.Accumulator()
    frames = []
    t0 = time.time()
    for i, f in enumerate(files):
        rgb = mcd.read_rgb(f)
        gt = cv2.imread(str(split_dir / "mask" / (f.stem + ".png")), cv2.IMREAD_GRAYSCALE)
        rng = np.random.default_rng([seed, i])
        r = mcd.infer(sess, meta, rgb, samples, rng)
        iou = acc.add(r.prob_in, r.entropy_in, r.mi_in, gt)
        d = mcd.infer(sess, meta, rgb, 1, None)
        det_iou = acc_det.add(d.prob_in, d.entropy_in, d.mi_in, gt)
        ok, why = mcd.sanity(rgb)
        gt_pipe, pred_pipe = bool((gt > 127).any()), bool((r.prob_in > 0.5).any())
        frames.append({
            "name": f.stem, "kind": metas.get(f.stem, {}).get("kind", "?"), "iou": iou, "det_iou": det_iou,
            "gt_pipe": gt_pipe, "pred_pipe": pred_pipe, "sane": ok, "insane_why": why,
            "pipeline_fraction": float((r.prob_in > 0.5).mean()),
            "bad": iou < 0.5 or (gt_pipe and not pred_pipe),
            "scores": candidate_scores(r.entropy_model, r.prob_model),
        })
        if progress and (i % 20 == 0 or i == len(files) - 1):
            el = time.time() - t0
            print(f"\r  {split_dir.name}: {i + 1}/{len(files)} frames, {el:.0f} s, ETA {el / (i + 1) * (len(files) - i - 1):.0f} s",
                  end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    met = acc.metrics()
    met["det_pooled_iou"] = acc_det.metrics()["pooled_iou"]
    met["det_mean_iou"] = acc_det.metrics()["mean_iou"]
    met["frames"] = len(frames)
    empty = [fr["pipeline_fraction"] for fr in frames if not fr["gt_pipe"]]
    met["nopipe_frames"] = len(empty)
    met["nopipe_median_fraction"] = float(np.median(empty)) if empty else float("nan")
    met["nopipe_mean_fraction"] = float(np.mean(empty)) if empty else float("nan")
    met["nopipe_p90_fraction"] = float(np.quantile(empty, 0.9)) if empty else float("nan")
    return met, frames


def gate_summary(met, frames, props):
    key = score_key(props)
    if frames and key not in frames[0]["scores"]:
        # `trust` (docs/interfaces.md §9) is scored by trust.py and the engine, not by these
        # entropy-map scores: its gate figures are in trust.py's and gate_check.py's records.
        met["score_method"] = key
        return
    th = float(props["threshold_high"])
    sc = [fr["scores"][key] for fr in frames]
    met["score_method"] = key
    met["mean_score"] = float(np.mean(sc))
    met["spearman_score_iou"] = mcd.spearman(sc, [fr["iou"] for fr in frames])
    above = [fr["scores"][key] > th for fr in frames]
    sane = [fr["sane"] for fr in frames]
    met["sane_frames"] = int(sum(sane))
    met["sane_above_high"] = float(np.mean([a for a, s in zip(above, sane) if s])) if any(sane) else float("nan")
    clear = [a for a, fr in zip(above, frames) if fr["iou"] >= 0.8]
    met["clear_frames"] = len(clear)
    met["clear_above_high"] = float(np.mean(clear)) if clear else float("nan")
    bad = [a or not fr["sane"] for a, fr in zip(above, frames) if fr["bad"]]
    good = [a or not fr["sane"] for a, fr in zip(above, frames) if not fr["bad"]]
    met["bad_frames"] = len(bad)
    met["bad_flagged"] = float(np.mean(bad)) if bad else float("nan")
    met["good_flagged"] = float(np.mean(good)) if good else float("nan")
    kinds = sorted({fr["kind"] for fr in frames})
    if len(kinds) > 1:
        met["by_kind"] = {}
        for k in kinds:
            sel = [(a, fr) for a, fr in zip(above, frames) if fr["kind"] == k]
            sane_sel = [a for a, fr in sel if fr["sane"]]
            met["by_kind"][k] = {"frames": len(sel), "sane": len(sane_sel),
                                 "sane_above_high": float(np.mean(sane_sel)) if sane_sel else float("nan"),
                                 "mean_score": float(np.mean([fr["scores"][key] for _, fr in sel]))}
    return met


COLS = [("pooled_iou", "pooled IoU"), ("mean_iou", "mean IoU"), ("dice", "Dice"), ("det_pooled_iou", "det. IoU"),
        ("auroc_entropy", "AUROC H"), ("auroc_mi", "AUROC MI"), ("ece", "ECE"), ("ece_pipe", "ECE pipe"),
        ("aurc", "AURC"), ("mean_score", "mean score"), ("sane_above_high", "sane > high"),
        ("clear_above_high", "clear > high"), ("nopipe_median_fraction", "no-pipe median frac."),
        ("nopipe_p90_fraction", "no-pipe p90 frac.")]


def table(results):
    lines = ["| split | frames | " + " | ".join(c for _, c in COLS) + " |",
             "|---|---|" + "---|" * len(COLS)]
    for split, met in results.items():
        vals = []
        for k, _ in COLS:
            v = met.get(k, float("nan"))
            vals.append("–" if v != v else f"{v:.3f}")
        lines.append(f"| {split} | {met['frames']} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "data"))
    ap.add_argument("--splits", default=",".join(SPLITS))
    ap.add_argument("--samples", type=int, default=0, help="T (default: the model's default_samples)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--json", help="write metrics and per-frame records here")
    ap.add_argument("--calibrate", metavar="JSON", help="calibrate the gate on `val` first, store it in the model, "
                    "and write the calibration record here")
    ap.add_argument("--calibrate-split", default="val", help="the split the gate is calibrated on")
    a = ap.parse_args()
    sess, meta = mcd.load(a.model)
    t = a.samples or meta.default_samples
    results, per_frame = {}, {}
    t0 = time.time()
    for split in a.splits.split(","):
        met, frames = evaluate_split(sess, meta, Path(a.data) / split, t, a.seed, a.limit)
        if split == a.calibrate_split and a.calibrate:
            import calibrate
            cal = calibrate.calibrate(a.model, frames)
            Path(a.calibrate).write_text(json.dumps(cal, indent=1))
            meta.props.update(cal["chosen"])
        results[split], per_frame[split] = met, frames
    for split in results:
        if "threshold_high" in meta.props:
            gate_summary(results[split], per_frame[split], meta.props)
    print(f"T = {t}, seed {a.seed}, {time.time() - t0:.0f} s")
    print(table(results))
    for split, met in results.items():
        if "by_kind" in met:
            for k, v in met["by_kind"].items():
                print(f"  {split}/{k}: {v}")
    if a.json:
        Path(a.json).write_text(json.dumps({"samples": t, "seed": a.seed, "calibrate_split": a.calibrate_split,
                                            "metrics": results, "frames": per_frame}, indent=1))


if __name__ == "__main__":
    main()
