"""How visible is the labelled pipe? Per pipe frame of each split: the largest over channels of
|mean inside the mask - mean of a 20-px ring around it| / the ring's spread (image blurred with
sigma 2), beside the shipped model's frame IoU from training/runs/shipped/eval.json.

Usage: python training/visibility.py   (needs the splits in training/data)
A frame whose contrast is under 0.3 shows the pipe at less than a third of the seabed's own
variation: often not visible to a person either (ho_water frames 4 and 5).
"""
import json, cv2, numpy as np
e = json.load(open("training/runs/shipped/eval.json"))["frames"]
for fam in ["val_dr", "ho_water", "ho_seabed", "ho_coating", "ho_light", "xr"]:
    rows = []
    for f in e[fam]:
        if not f["gt_pipe"]:
            continue
        img = cv2.imread(f"training/data/{fam}/image/{f['name']}.jpg").astype(np.float32)
        img = cv2.GaussianBlur(img, (0, 0), 2)
        m = cv2.imread(f"training/data/{fam}/mask/{f['name']}.png", 0) > 127
        ring = cv2.dilate(m.astype(np.uint8), np.ones((41, 41), np.uint8)).astype(bool) & ~m
        if m.sum() < 50 or ring.sum() < 50:
            continue
        c = max(abs(img[..., k][m].mean() - img[..., k][ring].mean()) / (img[..., k][ring].std() + 1.0) for k in range(3))
        rows.append((f["iou"], c))
    r = np.array(rows)
    low = r[:, 1] < 0.3
    print(f"{fam:10s} pipe frames {len(r):3d}  IoU<0.1: {(r[:,0]<0.1).sum():2d}  contrast<0.3: {low.sum():2d} (their mean IoU {r[low,0].mean() if low.any() else float('nan'):.2f}; others {r[~low,0].mean():.2f})  spearman(IoU,contrast) {np.corrcoef(np.argsort(np.argsort(r[:,0])), np.argsort(np.argsort(r[:,1])))[0,1]:.2f}")
