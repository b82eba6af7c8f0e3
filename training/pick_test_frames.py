"""Copy a few evaluated frames into tests/data/frames/{val,shift,ood} for the later tests.

val: clear pipe frames and negatives; shift: clearer and turbid water; ood: frames that pass the
input sanity checks and score above the shipped threshold_high first, then a few insane ones.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEST = HERE.parent / "tests" / "data" / "frames"


def copy(split, name, dest_split, prefix=""):
    src = HERE / "data" / split
    for sub, ext in (("image", ".jpg"), ("mask", ".png")):
        (DEST / dest_split / sub).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / sub / (name + ext), DEST / dest_split / sub / (prefix + name + ext))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval", required=True)
    a = ap.parse_args()
    ev = json.loads(Path(a.eval).read_text())
    fr = ev["frames"]
    key = ev["metrics"]["val"]["score_method"]
    if DEST.exists():
        shutil.rmtree(DEST)
    import onnx
    props = {p.key: p.value for p in onnx.load(str(HERE.parent / "models" / "pipeline_seg_unet.onnx")).metadata_props}
    th = float(props["threshold_high"])
    rows = []
    val_pipe = [f for f in fr["val"] if f["kind"] == "pipe" and f["iou"] >= 0.8 and f["sane"] and f["scores"][key] <= th][:6]
    val_neg = [f for f in fr["val"] if f["kind"] == "negative" and f["iou"] == 1.0 and f["sane"] and f["scores"][key] <= th][:2]
    for f in val_pipe + val_neg:
        copy("val", f["name"], "val")
        rows.append(("val", f["name"], f["kind"], f["scores"][key], f["sane"]))
    for split, prefix in (("shift_clear", "clear_"), ("shift_turbid", "turbid_")):
        for f in [f for f in fr[split] if f["kind"] == "pipe"][:3]:
            copy(split, f["name"], "shift", prefix)
            rows.append(("shift", prefix + f["name"], f["kind"], f["scores"][key], f["sane"]))
    flagged = [f for f in fr["ood"] if f["sane"] and f["scores"][key] > th]
    picked, seen = [], set()
    for f in flagged:  # one of each kind first, then the rest
        if f["kind"] not in seen:
            picked.append(f)
            seen.add(f["kind"])
    picked += [f for f in flagged if f not in picked][: max(0, 6 - len(picked))]
    picked += [f for f in fr["ood"] if not f["sane"]][:2]
    for f in picked:
        copy("ood", f["name"], "ood", f["kind"] + "_")
        rows.append(("ood", f["kind"] + "_" + f["name"], f["kind"], f["scores"][key], f["sane"]))
    with open(DEST / "manifest.csv", "w") as out:
        out.write(f"split,name,kind,score_{key.replace(':', '_')},passes_sanity\n")
        for r in rows:
            out.write(f"{r[0]},{r[1]},{r[2]},{r[3]:.4f},{str(r[4]).lower()}\n")
    size = sum(p.stat().st_size for p in DEST.rglob("*") if p.is_file())
    print(f"{len(rows)} test frames, {size / 1e6:.2f} MB; sane OOD above threshold_high: "
          f"{sum(1 for f in picked if f['sane'])}")


if __name__ == "__main__":
    main()
