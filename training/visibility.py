"""How visible is the labelled pipe? Per pipe frame of each split: the largest over channels of
|mean inside the mask - mean of a 20-px ring around it| / the ring's spread (image blurred with
sigma 2), beside the shipped model's frame IoU from training/runs/shipped/eval.json; then the
shipped model's pooled IoU (T = 16) with and without the frames whose pipe is under CONTRAST.

Usage: python training/visibility.py   (from the repository root; needs the splits in training/data)
A frame whose contrast is under 0.3 shows the pipe at less than a third of the seabed's own
variation: often not visible to a person either (ho_water frames 4 and 5).
"""
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mcd  # noqa: E402

SPLITS = ["val_dr", "ho_water", "ho_seabed", "ho_coating", "ho_light", "xr"]
CONTRAST = 0.3


def contrast(bgr, m):
    img = cv2.GaussianBlur(bgr.astype(np.float32), (0, 0), 2)
    ring = cv2.dilate(m.astype(np.uint8), np.ones((41, 41), np.uint8)).astype(bool) & ~m
    if m.sum() < 50 or ring.sum() < 50:
        return None
    return max(abs(img[..., k][m].mean() - img[..., k][ring].mean()) / (img[..., k][ring].std() + 1.0) for k in range(3))


def frames(split):
    for f in sorted(Path(f"training/data/{split}/image").glob("*.jpg")):
        yield f.stem, cv2.imread(str(f)), cv2.imread(str(f.parent.parent / "mask" / f"{f.stem}.png"), 0) > 127


def per_frame():
    ev = json.load(open("training/runs/shipped/eval.json"))["frames"]
    for split in SPLITS:
        iou = {f["name"]: f["iou"] for f in ev[split] if f["gt_pipe"]}
        r = np.array([(iou[n], c) for n, bgr, m in frames(split) if n in iou
                      for c in [contrast(bgr, m)] if c is not None])
        low = r[:, 1] < CONTRAST
        rank = lambda a: np.argsort(np.argsort(a))  # noqa: E731
        print(f"{split:10s} pipe frames {len(r):3d}  IoU<0.1: {(r[:, 0] < 0.1).sum():2d}  contrast<{CONTRAST}: {low.sum():2d} "
              f"(their mean IoU {r[low, 0].mean() if low.any() else float('nan'):.2f}; others {r[~low, 0].mean():.2f})  "
              f"spearman(IoU,contrast) {np.corrcoef(rank(r[:, 0]), rank(r[:, 1]))[0, 1]:.2f}")


def pooled():
    sess, meta = mcd.load("models/pipeline_seg_unet.onnx")
    for split in SPLITS[1:]:
        acc = np.zeros(4)  # inter, union over all frames; over the frames kept
        for i, (_, bgr, gt) in enumerate(frames(split)):
            p = mcd.infer(sess, meta, bgr[..., ::-1].copy(), 16, np.random.default_rng([0, i])).prob_in > 0.5
            iu = np.array([(p & gt).sum(), (p | gt).sum()])
            c = contrast(bgr, gt) if gt.any() else None
            acc += np.concatenate([iu, iu * (c is None or c >= CONTRAST)])
        print(f"{split}: pooled IoU all {acc[0] / acc[1]:.3f}, without frames whose pipe contrast < {CONTRAST}: "
              f"{acc[2] / acc[3]:.3f}", flush=True)


if __name__ == "__main__":
    per_frame()
    pooled()
