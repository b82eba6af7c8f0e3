"""How much of the second renderer's gap is pipe hidden under altgen's sediment? (issue 9, stop 30)

altgen paints a "sediment drift" over part of some pipes and takes those pixels out of the mask. The
drift is cut to the pipe's outline and keeps 30 % of its blurred shading, so it can read as a band of
another coating. This re-renders the `xr` test frames (seed 7) with the mask that keeps those pixels
(the image is unchanged: the source is patched after the image step, asserted byte-identical to
training/data/xr), and scores a model three ways at T = 8:
  as labelled | covered pixels counted as pipe | covered pixels left out of the score.

usage: python training/runs/xr_labels/covered.py MODEL.onnx [N]
"""
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "training"))
sys.path.insert(0, str(ROOT / "training" / "runs" / "aug_probe"))
import mcd  # noqa: E402
from xr_ablate import patched  # noqa: E402  (altgen patched by string replacement, as the ablation does)

KEEP = patched("keep", [("        mask = mask * ~cover\n", "        mask = mask\n")])


def main():
    sess, meta = mcd.load(sys.argv[1], threads=2)
    d = ROOT / "training" / "data" / "xr"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else len(list((d / "mask").glob("*.png")))
    acc = {"as_labelled": [0, 0], "covered_is_pipe": [0, 0], "covered_ignored": [0, 0]}
    covered_px = pipe_px = frames_covered = 0
    for i in range(n):
        rgb, keep, _, jpeg = KEEP.render(7, i)
        assert jpeg == (d / "image" / f"{i:05d}.jpg").read_bytes(), f"frame {i} differs from the test split"
        g = cv2.imread(str(d / "mask" / f"{i:05d}.png"), cv2.IMREAD_GRAYSCALE) > 127
        k = keep > 127
        cov = k & ~g
        p = mcd.infer(sess, meta, rgb, 8, np.random.default_rng([0, i])).prob_in > 0.5
        for name, gt, valid in (("as_labelled", g, None), ("covered_is_pipe", k, None), ("covered_ignored", g, ~cov)):
            pi, gi = (p, gt) if valid is None else (p & valid, gt & valid)
            acc[name][0] += int((pi & gi).sum())
            acc[name][1] += int((pi | gi).sum())
        covered_px += int(cov.sum())
        pipe_px += int(k.sum())
        frames_covered += bool(cov.any())
    out = {k: round(a / max(b, 1), 4) for k, (a, b) in acc.items()}
    out.update(frames=n, frames_with_covered_pipe=frames_covered, covered_share_of_pipe=round(covered_px / max(pipe_px, 1), 4))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
