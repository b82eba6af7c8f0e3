"""How visible is the labelled pipe? Per pipe frame of each split: the largest over channels of
|mean inside the mask - mean of a 20-px ring around it| / the ring's spread (image blurred with
sigma 2), beside the shipped model's frame IoU (T = 16, evaluate.py's draws); then its pooled IoU
with and without the frames whose pipe is under CONTRAST.

Usage: python training/visibility.py   (from the repository root; needs the splits in training/data)
A frame whose contrast is under 0.3 shows the pipe at less than a third of the seabed's own
variation: often not visible to a person either (ho_water frames 4 and 5).
"""
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mcd  # noqa: E402

SPLITS = ["val_dr", "ho_water", "ho_seabed", "ho_coating", "ho_light", "xr"]
CONTRAST = 0.3


def contrast(rgb, m):
    img = cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), 2)
    ring = cv2.dilate(m.astype(np.uint8), np.ones((41, 41), np.uint8)).astype(bool) & ~m
    if m.sum() < 50 or ring.sum() < 50:
        return None
    return max(abs(img[..., k][m].mean() - img[..., k][ring].mean()) / (img[..., k][ring].std() + 1.0) for k in range(3))


def main():
    sess, meta = mcd.load("models/pipeline_seg_unet.onnx")
    pooled = []
    for split in SPLITS:
        every, kept, rows = mcd.Accumulator(), mcd.Accumulator(), []
        for i, f in enumerate(sorted(Path(f"training/data/{split}/image").glob("*.jpg"))):
            rgb = mcd.read_rgb(f)
            gt = cv2.imread(str(f.parent.parent / "mask" / f"{f.stem}.png"), cv2.IMREAD_GRAYSCALE)
            r = mcd.infer(sess, meta, rgb, 16, np.random.default_rng([0, i]))  # evaluate.py's draws
            iou = every.add(r.prob_in, r.entropy_in, r.mi_in, gt)
            c = contrast(rgb, gt > 127) if (gt > 127).any() else None
            if c is None or c >= CONTRAST:
                kept.add(r.prob_in, r.entropy_in, r.mi_in, gt)
            if c is not None:
                rows.append((iou, c))
        r = np.array(rows)
        low = r[:, 1] < CONTRAST
        print(f"{split:10s} pipe frames {len(r):3d}  IoU<0.1: {(r[:, 0] < 0.1).sum():2d}  contrast<{CONTRAST}: {low.sum():2d} "
              f"(their mean IoU {r[low, 0].mean() if low.any() else float('nan'):.2f}; others {r[~low, 0].mean():.2f})  "
              f"spearman(IoU,contrast) {mcd.spearman(r[:, 0], r[:, 1]):.2f}", flush=True)
        pooled.append(f"{split}: pooled IoU all {every.metrics()['pooled_iou']:.3f}, without frames whose pipe "
                      f"contrast < {CONTRAST}: {kept.metrics()['pooled_iou']:.3f}")
    print("\n".join(pooled))


if __name__ == "__main__":
    main()
