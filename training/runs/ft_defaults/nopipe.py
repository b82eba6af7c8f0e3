"""The `ho_light` test frames without a pipe: share called pipeline by each model (T = 16, al_study's
dropout seeds), and a sheet of those where the first model calls more than 1 %: frame | model 1 | model 2 ...
(red = mask). Usage: python nopipe.py OUT.jpg MODEL.onnx [MODEL.onnx ...]"""
import glob
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "training"))
import mcd  # noqa: E402

d = ROOT / "training" / "data" / "ho_light"
rows = [json.loads(line) for line in open(d / "meta.jsonl")]
files = sorted(glob.glob(str(d / "image" / "*.jpg")))
sess = [mcd.load(m, threads=1) for m in sys.argv[2:]]
tiles, fr = [], [[] for _ in sess]
for r in rows:
    if r["pipeline_fraction"] > 0:
        continue
    i = r["index"]
    rgb = mcd.read_rgb(files[i])
    bgr = rgb[..., ::-1].copy()
    row = [bgr]
    for j, (s, m) in enumerate(sess):
        p = mcd.infer(s, m, rgb, 16, np.random.default_rng([0, i])).prob_in > 0.5
        fr[j].append(float(p.mean()))
        ov = bgr.copy()
        ov[p] = (0.5 * ov[p] + [0, 0, 127]).astype(np.uint8)
        row.append(ov)
    print(i, " ".join(f"{100 * f[-1]:.2f} %" for f in fr), flush=True)
    if fr[0][-1] > 0.01:
        tiles.append(cv2.resize(np.hstack(row), (240 * len(row), 180)))
for m, f in zip(sys.argv[2:], fr):
    print(f"{m}: median {100 * np.median(f):.2f} %, mean {100 * np.mean(f):.2f} % of {len(f)} frames")
cv2.imwrite(sys.argv[1], np.vstack(tiles), [cv2.IMWRITE_JPEG_QUALITY, 80])
