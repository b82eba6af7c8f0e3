"""Does the gate keep its promise on frames it was not calibrated on? (issue 11)

    python training/gate_check.py --bin target/release/pipeline_seg --out training/runs/gate_check

Writes two labelled bags from rendered splits (real rosbag2 MCAP files, written with `rosbags`):
a calibration bag and a test bag with other splits, then
1. replays the test bag with the model's default gate;
2. runs `calibrate --max-risk A --min-gap 0 [--fit-trust]` on the calibration bag (the renders are
   independent scenes, so every frame is a trial) and replays the test bag with the file it wrote;
and records per run P(bad | confident), the good frames kept and the bound `calibrate` claimed.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_sample_bag  # noqa: E402

TOPIC, GT = make_sample_bag.IMAGE_TOPIC, make_sample_bag.MASK_TOPIC


def frames(data: Path, splits):
    for s in splits:
        for f in sorted((data / s / "image").glob("*.jpg")):
            mask = cv2.imread(str(data / s / "mask" / (f.stem + ".png")), cv2.IMREAD_GRAYSCALE)
            yield f.read_bytes(), mask


def bag(out: Path, data: Path, splits):
    if not (out / "metadata.yaml").exists():
        make_sample_bag.make(out, list(frames(data, splits)))
    return out


def replay_stats(run_dir: Path) -> dict:
    with open(run_dir / "frames.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["iou"]]
    # Bad per docs/interfaces.md §7 (an empty mask on a pipe frame has IoU 0, so IoU < 0.5 covers it).
    bad = [float(r["iou"]) < 0.5 for r in rows]
    conf = [r["confident"] == "true" for r in rows]
    kept = sum(c for c in conf)
    good = sum(not b for b in bad)
    return {"frames": len(rows), "bad": sum(bad), "confident": kept,
            "bad_confident": sum(c and b for c, b in zip(conf, bad)),
            "p_bad_given_confident": round(sum(c and b for c, b in zip(conf, bad)) / kept, 4) if kept else None,
            "good_confident": round(sum(c and not b for c, b in zip(conf, bad)) / good, 4) if good else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=str(HERE.parent / "target" / "release" / "pipeline_seg"))
    ap.add_argument("--data", default=str(HERE / "data"))
    ap.add_argument("--calib-splits", default="val_dr,nopipe_dr")
    ap.add_argument("--test-splits", default="val,ho_water,ho_seabed,ho_coating,ho_light")
    ap.add_argument("--max-risk", type=float, default=0.05)
    ap.add_argument("--samples", default="16")
    ap.add_argument("--out", required=True, help="records: gate_check.json, the parameter files, calibrate's output")
    ap.add_argument("--work", default="/tmp/pipeline_seg_gate_check", help="bags and replay outputs (large)")
    a = ap.parse_args()
    out, work = Path(a.out), Path(a.work)
    out.mkdir(parents=True, exist_ok=True)
    bags = work / "bags"
    cal_bag = bag(bags / "calib", Path(a.data), a.calib_splits.split(","))
    test_bag = bag(bags / "test", Path(a.data), a.test_splits.split(","))
    run = lambda *args: subprocess.run([a.bin, *map(str, args)], capture_output=True, text=True)  # noqa: E731
    rec = {"calib_splits": a.calib_splits, "test_splits": a.test_splits, "max_risk": a.max_risk,
           "samples": a.samples, "runs": {}}

    def replay(name, *cfg):
        p = run("replay", test_bag, "--topic", TOPIC, "--gt-topic", GT, "--samples", a.samples, "--write",
                "confidence", *cfg, "--out", work / name)
        if p.returncode not in (0, 1):
            sys.exit(f"replay {name} failed: {p.stderr}")
        return replay_stats(work / name)

    rec["runs"]["default_gate"] = replay("default_gate")
    for name, extra in (("calibrated", []), ("calibrated_fit_trust", ["--fit-trust"])):
        yaml = out / f"{name}.yaml"
        p = run("calibrate", cal_bag, "--topic", TOPIC, "--gt-topic", GT, "--samples", a.samples,
                "--max-risk", a.max_risk, "--min-gap", "0", *extra, "--out", yaml)
        (out / f"{name}.txt").write_text(p.stdout + p.stderr)
        if p.returncode == 2:
            sys.exit(f"calibrate {name} failed: {p.stderr}")
        chosen = next(l for l in p.stdout.splitlines() if l.startswith("chosen:"))
        rec["runs"][name] = {"calibrate_exit": p.returncode, "calibrate_says": chosen, **replay(name, "--config", yaml)}
        print(name, rec["runs"][name], flush=True)
    (out / "gate_check.json").write_text(json.dumps(rec, indent=1) + "\n")
    print(json.dumps(rec, indent=1))


if __name__ == "__main__":
    main()
