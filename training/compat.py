"""How a model behaves on the repository's fixed test fixtures (what the Rust/Python tests assume).

Usage: python compat.py MODEL [--json out.json]

`tests/data/frames` and `tests/data/sample_bag` are renders of the first generator and stay
fixed when the model changes. Several tests assume things of the *model* on them (frames that
are confident, frames that are uncertain, a sample bag with uncertain frames). This script
checks each assumption with the Python engine (`mcd.py`, T = 16 and T = 4, seeds as the tests
use) and lists which hold, with the margins, so a model change says up front what it breaks.
The Rust sampler draws other masks than Python, so scores differ by a few hundredths: a
margin under 0.03 is reported as "near".
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import mcd  # noqa: E402
import trust  # noqa: E402

FRAMES = ROOT / "tests" / "data" / "frames"
# Names the tests use (tests/test_node.py, tests/test_infer.py).
OOD_UNCERTAIN = ("plume_00001", "plume_00013", "wall_00006", "wall_00010")
VAL_CLEAR = ("00000", "00001", "00003", "00005", "00006")


def scores(sess, meta, path, t, i):
    """(default score, sane, pipeline fraction) of a fixture frame."""
    rgb = mcd.read_rgb(path)
    s, prob = trust.default_score(sess, meta, rgb, t, np.random.default_rng([0, i]))
    return s, bool(mcd.sanity(rgb)[0]), float((prob > 0.5).mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--json")
    a = ap.parse_args()
    sess, meta = mcd.load(a.model, threads=2)
    hi, lo = float(meta.props["threshold_high"]), float(meta.props["threshold_low"])
    checks = []

    def check(name, ok, detail, near=False):
        checks.append({"assumption": name, "holds": bool(ok), "near": bool(near), "detail": detail})

    fr = {}
    for split in ("val", "ood"):
        for i, im in enumerate(sorted((FRAMES / split / "image").glob("*.jpg"))):
            for t in (16, 4):
                fr[(split, im.stem, t)] = scores(sess, meta, im, t, i)
    for t in (16, 4):
        for stem in OOD_UNCERTAIN:
            s, sane, frac = fr[("ood", stem, t)]
            check(f"ood/{stem} uncertain (score > threshold_high) at T={t}", sane and s > hi,
                  f"score {s:.3f} vs high {hi:.3f}, pipeline fraction {frac:.4f}", abs(s - hi) < 0.03)
        for stem in VAL_CLEAR:
            s, sane, frac = fr[("val", stem, t)]
            check(f"val/{stem} clear (score < threshold_low) at T={t}", sane and s < lo,
                  f"score {s:.3f} vs low {lo:.3f}", abs(s - lo) < 0.03)
    s, sane, _ = fr[("val", "00000", 16)]
    check("val/00000 confident in infer (T=16)", sane and s <= hi, f"score {s:.3f} vs high {hi:.3f}")
    ood16 = [(k[1], v) for k, v in fr.items() if k[0] == "ood" and k[2] == 16]
    n_flag = sum(1 for _, (s, sane, _) in ood16 if sane and s > hi)
    check(">= 3 sane ood fixture frames above threshold_high (T=16)", n_flag >= 3, f"{n_flag} of {len(ood16)}")
    val16 = [v for k, v in fr.items() if k[0] == "val" and k[2] == 16]
    below = np.mean([s <= hi for s, _, _ in val16])
    check(">= 75 % of val fixture frames below threshold_high (T=16)", below >= 0.75, f"{below:.2f}")

    # Sample bag (its frames are legacy renders, present in training/data after `make model`).
    try:
        import make_sample_bag as msb
        rows = msb.layout()
        data = HERE / "data"
        sc, ious = [], []
        for frame, label, split, kind, idx in rows:
            f = data / split / "image" / f"{idx:05d}.jpg"
            if f.exists():
                rgb = mcd.read_rgb(f)
                gt = mcd.cv2.imread(str(data / split / "mask" / f"{idx:05d}.png"), 0) > 127
            else:  # the bag's frames are pure functions of (seed, split, index): render them
                import scenegen
                rgb, m, _, _ = scenegen.render(msb.SEED, split, idx)
                gt = m > 127
            s, prob_in = trust.default_score(sess, meta, rgb, 4, np.random.default_rng([0, frame]))
            sc.append(s)
            pred = prob_in > 0.5
            u = (pred | gt).sum()
            ious.append(1.0 if u == 0 else float((pred & gt).sum() / u))
        n_unc = sum(s > hi for s in sc)
        check("sample bag has frames above threshold_high at T=4 (replay review test)", n_unc >= 1,
              f"{n_unc} of {len(sc)} frames; labels above: "
              f"{sorted({rows[i][1] for i, s in enumerate(sc) if s > hi})}")
        bad = sum(i < 0.5 for i in ious)
        check("sample bag has bad and good frames (IoU < 0.5 and >= 0.5) at T=4", 0 < bad < len(ious),
              f"{bad} bad of {len(ious)}")
        by_label = {}
        for (frame, label, *_), s, i in zip(rows, sc, ious):
            by_label.setdefault(label, []).append((s, i))
        bag = {k: {"frames": len(v), "mean_score": float(np.mean([s for s, _ in v])),
                   "above_high": int(sum(s > hi for s, _ in v)), "mean_iou": float(np.mean([i for _, i in v]))}
               for k, v in by_label.items()}
    except (FileNotFoundError, ValueError) as e:
        check("sample bag frames available", False, f"{e} (run make_data first)")
        bag = {}

    # Legacy ood frames still above threshold_high: candidates for new fixtures, if needed.
    ev = None
    ev_path = HERE / "runs" / "shipped" / "eval.json"
    if ev_path.exists():
        ev = json.loads(ev_path.read_text())
    cands = []
    if ev and "ood" in ev.get("frames", {}):
        key = ev["metrics"]["ood"].get("score_method")
        cands = [f"{f['kind']}_{f['name']}" for f in ev["frames"]["ood"] if key and f["sane"] and f["scores"][key] > hi][:12]
    out = {"model": a.model, "threshold_high": hi, "threshold_low": lo, "checks": checks, "sample_bag": bag,
           "ood_candidates_above_high": cands}
    for c in checks:
        print(f"{'ok  ' if c['holds'] else 'FAIL'}{' (near)' if c['near'] else ''} {c['assumption']}: {c['detail']}")
    print("sample bag by segment:", json.dumps(bag))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
