"""Does the gate keep its promise on frames it was not calibrated on? (issue 11)

    python training/gate_check.py --bin target/release/pipeline_seg --out training/runs/gate_check

Writes two labelled bags from rendered splits (real rosbag2 MCAP files, written with `rosbags`):
a calibration bag and a test bag with other splits, then
1. replays the test bag with the model's default gate;
2. runs `calibrate --max-risk A --min-gap 0 [--fit-trust]` on the calibration bag (the renders are
   independent scenes, so every frame is a trial) and replays the test bag with the file it wrote;
and records per run P(bad | confident), the good frames kept and the bound `calibrate` claimed.
With `--ood-splits`, also replays a bag of those frames (scenes the mask must not be trusted on)
with the default gate and records per kind the fraction of sane frames (not refused by the input
sanity check) the gate flags.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
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


def ood_stats(run_dir: Path, data: Path, splits) -> dict:
    """Per kind: sane frames, the fraction of them the gate flags on their own (score above
    `threshold_high`, as `infer` judges a frame), the fraction not confident in the replayed
    sequence (which the hysteresis inflates: after one flagged frame the next ones wait to
    recover), the frames whose mask is wrong (IoU < 0.5 against the render's) and the fraction
    of them flagged, and the lowest IoU among the frames not flagged. frames.csv is in bag order."""
    high = json.loads((run_dir / "metrics.json").read_text())["thresholds"]["threshold_high"]
    kinds = [json.loads(line).get("kind", s) for s in splits for line in (data / s / "meta.jsonl").read_text().splitlines()]
    with open(run_dir / "frames.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != len(kinds):
        sys.exit(f"ood replay: {len(rows)} rows for {len(kinds)} frames")
    out = {}
    for k in sorted(set(kinds)) + ["all"]:
        sane = [r for r, kk in zip(rows, kinds) if (k == "all" or kk == k) and r["reason"] != "image_quality"]
        flagged = [not float(r["score"]) <= high for r in sane]
        # Whether the gate lets through a frame whose mask is wrong (§7, against the render's mask).
        wrong = [f for r, f in zip(sane, flagged) if r["iou"] and float(r["iou"]) < 0.5]
        passed = [float(r["iou"]) for r, f in zip(sane, flagged) if not f and r["iou"]]
        out[k] = {"sane": len(sane), "flagged": round(sum(flagged) / len(sane), 4),
                  "not_confident_in_sequence": round(sum(r["confident"] != "true" for r in sane) / len(sane), 4),
                  "wrong_mask": len(wrong), "wrong_mask_flagged": round(sum(wrong) / len(wrong), 4) if wrong else None,
                  "passed_min_iou": round(min(passed), 3) if passed else None}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=str(HERE.parent / "target" / "release" / "pipeline_seg"))
    ap.add_argument("--data", default=str(HERE / "data"))
    ap.add_argument("--calib-splits", default="val_dr,nopipe_dr")
    ap.add_argument("--test-splits", default="val,ho_water,ho_seabed,ho_coating,ho_light")
    ap.add_argument("--model", help="ONNX model (default: the binary's default, models/)")
    ap.add_argument("--ood-splits", default="", help="also replay these splits (all bad) with the default gate")
    ap.add_argument("--no-calibrate", action="store_true", help="only the default gate")
    ap.add_argument("--max-risk", type=float, default=0.05)
    ap.add_argument("--samples", default="16")
    ap.add_argument("--out", required=True, help="records: gate_check.json, the parameter files, calibrate's output")
    ap.add_argument("--work", default="/tmp/pipeline_seg_gate_check", help="bags and replay outputs (large)")
    a = ap.parse_args()
    out, work = Path(a.out), Path(a.work)
    out.mkdir(parents=True, exist_ok=True)
    bags = work / "bags"
    # Bags are kept between runs, named by their splits.
    key = lambda splits: splits.replace(",", "+")  # noqa: E731
    cal_bag = bag(bags / f"calib-{key(a.calib_splits)}", Path(a.data), a.calib_splits.split(","))
    test_bag = bag(bags / f"test-{key(a.test_splits)}", Path(a.data), a.test_splits.split(","))
    model = ["--model", a.model] if a.model else []
    run = lambda cmd, *args: subprocess.run([a.bin, cmd, *model, *map(str, args)], capture_output=True,  # noqa: E731
                                            text=True)
    rec = {"calib_splits": a.calib_splits, "test_splits": a.test_splits, "max_risk": a.max_risk,
           "ood_splits": a.ood_splits, "samples": a.samples, "runs": {}}

    def fresh(name):  # replay refuses a non-empty output folder; these are this script's own
        shutil.rmtree(work / name, ignore_errors=True)
        return work / name

    def replay(name, *cfg):
        p = run("replay", test_bag, "--topic", TOPIC, "--gt-topic", GT, "--samples", a.samples, "--write",
                "confidence", *cfg, "--out", fresh(name))
        if p.returncode not in (0, 1):
            sys.exit(f"replay {name} failed: {p.stderr}")
        return replay_stats(work / name)

    rec["runs"]["default_gate"] = replay("default_gate")
    print("default_gate", rec["runs"]["default_gate"], flush=True)
    if a.ood_splits:
        ood_bag = bag(bags / f"ood-{key(a.ood_splits)}", Path(a.data), a.ood_splits.split(","))
        p = run("replay", ood_bag, "--topic", TOPIC, "--gt-topic", GT, "--samples", a.samples, "--out", fresh("ood"))
        if p.returncode not in (0, 1):
            sys.exit(f"replay ood failed: {p.stderr}")
        rec["ood_default_gate"] = ood_stats(work / "ood", Path(a.data), a.ood_splits.split(","))
        print("ood_default_gate", rec["ood_default_gate"], flush=True)
    for name, extra in [] if a.no_calibrate else (("calibrated", []), ("calibrated_fit_trust", ["--fit-trust"])):
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
    (out / "card_section.md").write_text(card_section(rec))
    print(json.dumps(rec, indent=1))


def card_section(rec: dict) -> str:
    """The model card's section on the gate replayed by the Rust binary (training/card.py splices it)."""
    out = ["## The gate replayed (`training/gate_check.py`, the Rust binary)", "",
           f"The splits `{rec['test_splits']}` written as one labelled rosbag2 bag (frames in split order, 5 Hz) and "
           f"replayed with `pipeline_seg replay` at T = {rec['samples']}, the gate's hysteresis included; bad = IoU < 0.5 "
           "or a missed pipeline (docs/interfaces.md §7). `default_gate` is the model's own defaults; `calibrated*` are "
           f"the parameter files `calibrate --max-risk {rec['max_risk']} --min-gap 0` wrote from a bag of "
           f"`{rec['calib_splits']}`.", "",
           "| run | frames | bad | confident | bad and confident | P(bad \\| confident) | good frames confident |",
           "|---|---|---|---|---|---|---|"]
    for name, r in rec["runs"].items():
        out.append(f"| `{name}` | {r['frames']} | {r['bad']} | {r['confident']} | {r['bad_confident']} | "
                   f"{r['p_bad_given_confident']} | {r['good_confident']} |")
    for name, r in rec["runs"].items():
        if "calibrate_says" in r:
            out += ["", f"`{name}`: calibrate exited {r['calibrate_exit']}, {r['calibrate_says']}"]
    ood = rec.get("ood_default_gate")
    if ood:
        out += ["", f"OOD renders (`{rec.get('ood_splits', 'ood')}`, all to be flagged) replayed with the default gate. "
                "`flagged`: the frame's own score above `threshold_high` (as `infer` judges a frame); `not confident in "
                "sequence`: the replayed gate, whose latch also holds the frames after a flagged one. `wrong mask`: sane "
                "frames whose mask has IoU < 0.5 against the render's (an empty scene's: any pipeline pixel), and the "
                "fraction of them flagged; `lowest IoU let through`: the worst mask among the frames not flagged.", "",
                "| kind | sane frames | flagged | not confident in sequence | wrong mask | of them flagged | lowest IoU let "
                "through |", "|---|---|---|---|---|---|---|"]
        opt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
        out += [f"| {k} | {v['sane']} | {v['flagged']:.3f} | {v['not_confident_in_sequence']:.3f} | {v['wrong_mask']} | "
                f"{opt(v['wrong_mask_flagged'])} | {opt(v['passed_min_iou'])} |" for k, v in ood.items()]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
