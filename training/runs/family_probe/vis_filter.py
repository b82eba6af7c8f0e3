"""Usage: python training/runs/family_probe/vis_filter.py DATA (from the repository root).
Build DATA/{train,train_dr}: training/data's frames minus pipe frames whose pipe contrast
(training/visibility.py) is under 0.3 -- pipes a person could not see either."""
import sys, os, json
from pathlib import Path
import cv2, numpy as np
sys.path.insert(0, "training")
import visibility as V
out = Path(sys.argv[1])
stats = {}
for split in ["train", "train_dr"]:
    src = Path("training/data") / split
    (out / split / "image").mkdir(parents=True, exist_ok=True)
    (out / split / "mask").mkdir(parents=True, exist_ok=True)
    kept = dropped = 0
    for f in sorted((src / "image").glob("*.jpg")):
        m = cv2.imread(str(src / "mask" / f"{f.stem}.png"), cv2.IMREAD_GRAYSCALE) > 127
        c = V.contrast(cv2.imread(str(f))[..., ::-1], m) if m.any() else None
        if c is not None and c < V.CONTRAST:
            dropped += 1
            continue
        kept += 1
        for sub, name in (("image", f.name), ("mask", f"{f.stem}.png")):
            dst = out / split / sub / name
            if not dst.exists():
                os.symlink((src / sub / name).resolve(), dst)
    stats[split] = {"kept": kept, "dropped": dropped}
    print(split, stats[split], flush=True)
json.dump(stats, open(out / "filter.json", "w"), indent=1)
