"""Where a model's own-validation IoU goes: per-frame intersection, union, predicted and true pipe
pixels on val_dr's first 80 frames (T = 16, al_study.evaluate's sampling), for each model; then, against
the first model, each frame's share of the change in pooled IoU (linearised), worst frames first.

Usage: python perframe.py BASE.onnx MODEL.onnx ... > perframe.txt
"""
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "training"))
import al_study as A  # noqa: E402
import mcd  # noqa: E402

val = A.frames_of(ROOT / "training" / "data" / "val_dr")[:80]
rows = {}
for model in sys.argv[1:]:
    sess, meta = mcd.load(model)
    rows[model] = []
    for i, (rgb, gt) in enumerate(val):
        r = mcd.infer(sess, meta, rgb, 16, np.random.default_rng([0, i]))
        p, g = r.prob_in > 0.5, gt > 127
        rows[model].append((int((p & g).sum()), int((p | g).sum()), int(p.sum()), int(g.sum())))
base = rows[sys.argv[1]]
IB, UB, N = sum(r[0] for r in base), sum(r[1] for r in base), val[0][1].size
print(f"{sys.argv[1]}: pooled IoU {IB / UB:.4f}")
for share, lab in ((0.25, "pipe > 25 % of the frame"), (0.10, "pipe > 10 % of the frame"), (0.0, "pipe > 0")):
    sel = [i for i, r in enumerate(base) if r[3] / N > share]
    print(f"  {lab}: {len(sel)} frames, {sum(base[i][1] - base[i][0] for i in sel) / (UB - IB):.3f} of the wrong pixels")
close = [i for i, r in enumerate(base) if r[3] / N > 0.25]
I2 = IB + sum(base[i][3] - base[i][0] for i in close)
U2 = UB - sum(base[i][2] - base[i][0] for i in close)
print(f"  pooled IoU were the close-ups perfect: {I2 / U2:.4f}")
for model in sys.argv[2:]:
    m = rows[model]
    c = [(m[i][0] - base[i][0]) / UB - IB * (m[i][1] - base[i][1]) / UB ** 2 for i in range(len(val))]
    worst = sorted(range(len(val)), key=lambda i: c[i])[:5]
    print(f"{model}: pooled IoU {sum(r[0] for r in m) / sum(r[1] for r in m):.4f}; change {sum(c):+.4f}, of which "
          f"close-ups {sum(c[i] for i in close):+.4f}; worst frames (index, change, true pipe share): "
          + ", ".join(f"{i} {c[i]:+.4f} {base[i][3] / N:.2f}" for i in worst))
