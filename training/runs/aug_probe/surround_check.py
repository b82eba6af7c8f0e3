"""How much does a changed seabed beside the pipe cost a model on its own validation frames? (stop 29)

Pooled IoU of the deterministic network (T = 1) at model resolution on the pipe frames of a split, as
rendered and with `train.surround` applied to every frame (two draws).

usage: python training/runs/aug_probe/surround_check.py MODEL.onnx [SPLIT]
"""
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "training"))
import mcd  # noqa: E402
import train  # noqa: E402


def main():
    sess, meta = mcd.load(sys.argv[1], threads=1)
    split = sys.argv[2] if len(sys.argv) > 2 else "val_dr"
    imgs, masks = train.load_split(ROOT / "training" / "data", split)
    pipe = masks.astype(np.float32).mean((1, 2)) >= 2 / 255  # with a pipe, more than a sliver
    x = torch.from_numpy(imgs[pipe]).float() / 255
    y = torch.from_numpy(masks[pipe]).float()
    res = {}
    for name, seed in [("as rendered", None), ("surround 0", 0), ("surround 1", 1)]:
        xa = x if seed is None else train.surround(x, y, torch.Generator().manual_seed(seed), p=1.0)
        inter = union = 0
        for i in range(len(xa)):
            inp = ((xa[i].permute(1, 2, 0).numpy() - meta.mean) / meta.std).transpose(2, 0, 1)[None].astype(np.float32)
            p, g = mcd.run(sess, inp, mcd.ones_masks(meta))[0, 0, 1] > 0.5, y[i].numpy() > 0.5
            inter, union = inter + (p & g).sum(), union + (p | g).sum()
        res[name] = round(float(inter / union), 3)
    print(sys.argv[1], split, len(x), "pipe frames", res)


if __name__ == "__main__":
    main()
