"""Does anytime sampling keep the quality of fixed T? (issue 12)

    python training/anytime_check.py --data DIR --out training/runs/anytime

For each set of rendered splits (own validation, shifted / held-out, cross-renderer, OOD) it
writes a labelled bag (real rosbag2 MCAP, written with `rosbags`), replays it with the default
settings (anytime: `min_samples` 4 up to `samples` 16) and with every sample drawn
(`--min-samples 16`), and compares what `replay` wrote: metrics.json (IoU, entropy AUROC,
bad_flagged, good_flagged) and, frame by frame, frames.csv (the decision, the samples drawn).
Records anytime.json; exits 1 when a set misses the issue's bounds.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gate_check  # noqa: E402
import make_sample_bag  # noqa: E402

TOPIC, GT = make_sample_bag.IMAGE_TOPIC, make_sample_bag.MASK_TOPIC
SETS = {"own_val": "val", "shifted": "ho_water,ho_light", "cross_renderer": "xr", "ood": "ood"}
# The bounds: anytime vs fixed T on each set.
BOUNDS = {"mean_iou": 0.01, "pooled_iou": 0.01, "auroc_entropy": 0.01, "bad_flagged": 0.02, "good_flagged": 0.02}
SAME_DECISION = 0.98


def rows(run: Path) -> list[dict]:
    with open(run / "frames.csv", newline="") as f:
        return list(csv.DictReader(f))


def compare(fixed: Path, anytime: Path) -> dict:
    mf, ma = (json.loads((r / "metrics.json").read_text()) for r in (fixed, anytime))
    rf, ra = rows(fixed), rows(anytime)
    assert [r["stamp_ns"] for r in rf] == [r["stamp_ns"] for r in ra], "same frames in both runs"
    same = sum(a["confident"] == b["confident"] for a, b in zip(rf, ra)) / max(len(rf), 1)
    same_reason = sum(a["reason"] == b["reason"] for a, b in zip(rf, ra)) / max(len(rf), 1)
    drawn = [int(r["samples"]) for r in ra]
    rec = {"frames": len(rf), "same_decision": round(same, 4), "same_reason": round(same_reason, 4),
           "samples_mean": round(sum(drawn) / max(len(drawn), 1), 3),
           "stopped_at_min": round(sum(d == min(drawn) for d in drawn) / max(len(drawn), 1), 4),
           "fixed": {k: mf.get(k) for k in BOUNDS}, "anytime": {k: ma.get(k) for k in BOUNDS}}
    misses = []
    for k, bound in BOUNDS.items():
        a, b = mf.get(k), ma.get(k)
        if a is None or b is None:  # e.g. no bad frames in a set: nothing to compare
            continue
        if abs(a - b) > bound:
            misses.append(f"{k} {a:.4f} vs {b:.4f} (bound {bound})")
    if same < SAME_DECISION:
        misses.append(f"same decision on {same:.3f} of frames (bound {SAME_DECISION})")
    rec["misses"] = misses
    return rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=str(HERE.parent / "target" / "release" / "pipeline_seg"))
    ap.add_argument("--data", default=str(HERE / "data"), help="rendered splits (make_data.py)")
    ap.add_argument("--samples", default="16")
    ap.add_argument("--out", required=True, help="where anytime.json goes")
    ap.add_argument("--work", default="/tmp/pipeline_seg_anytime", help="bags and replay outputs (large)")
    a = ap.parse_args()
    out, work = Path(a.out), Path(a.work)
    out.mkdir(parents=True, exist_ok=True)
    rec = {"samples": a.samples, "bounds": BOUNDS, "same_decision_bound": SAME_DECISION, "sets": {}}
    failed = False
    for name, splits in SETS.items():
        bag = gate_check.bag(work / "bags" / name, Path(a.data), splits.split(","))
        runs = {}
        for mode, extra in (("fixed", ["--min-samples", a.samples]), ("anytime", [])):
            runs[mode] = work / f"{name}_{mode}"
            p = subprocess.run([a.bin, "replay", str(bag), "--topic", TOPIC, "--gt-topic", GT, "--samples", a.samples,
                                *extra, "--write", "confidence", "--out", str(runs[mode])],
                               capture_output=True, text=True)
            if p.returncode not in (0, 1):
                sys.exit(f"replay {name} {mode} failed: {p.stderr}")
        rec["sets"][name] = {"splits": splits, **compare(runs["fixed"], runs["anytime"])}
        failed |= bool(rec["sets"][name]["misses"])
        print(name, json.dumps(rec["sets"][name]), flush=True)
    (out / "anytime.json").write_text(json.dumps(rec, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
