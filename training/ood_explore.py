"""Issue 11 exploration (records only, nothing ships): which frame-level distances flag our own
OOD renders when none of them is in the fit?

    python training/make_data.py --seed 7 --out /tmp/tx/data --splits val,ood
    python training/make_data.py --seed 7 --out /tmp/tx/data --splits train --max 300
    python training/ood_explore.py --data /tmp/tx/data --out training/runs/ood_explore

Per trunk layer of the shipped model (as `density.py`): the pooled channel mean/std ("pool", the
shipped `feature_distance`'s features) and the channel correlation matrix ("gram", texture
and style), plus image statistics of the input (RGB and HSV mean/std, gradient energy: "img").
Each is a class-conditional Mahalanobis distance fitted on the first 2/3 of the `train` frames
and scaled by its 95th percentile on the last 1/3, which the fit did not see (scaling on the fit
frames themselves lets high-dimensional layers overfit and swamp a max). A variant combines
layers by the max of the scaled distances. Reported: the flag rate of sane OOD frames per kind at
the threshold that flags 5 % of the sane `val` frames. Needs only onnx, onnxruntime, numpy, cv2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper

sys.path.insert(0, os.path.dirname(__file__))
import density  # noqa: E402
import mcd  # noqa: E402

MODEL = Path(__file__).resolve().parents[1] / "models" / "pipeline_seg_unet.onnx"


def frames(data: Path, split: str, limit: int | None = None):
    """(rgb, kind, has_pipe, sane) per frame."""
    files = sorted((data / split / "image").glob("*.jpg"))
    kinds = {}
    mf = data / split / "meta.jsonl"
    if mf.exists():
        kinds = {f.stem: json.loads(line).get("kind", "?") for f, line in zip(files, mf.read_text().splitlines())}
    out = []
    for f in files[:limit]:
        rgb = mcd.read_rgb(f)
        gt = cv2.imread(str(data / split / "mask" / (f.stem + ".png")), cv2.IMREAD_GRAYSCALE)
        out.append((rgb, kinds.get(f.stem, split), bool((gt > 127).any()), mcd.sanity(rgb)[0]))
    return out


def image_stats(rgb: np.ndarray) -> np.ndarray:
    r = rgb.reshape(-1, 3).astype(np.float64)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).reshape(-1, 3).astype(np.float64)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    gx, gy = cv2.Sobel(grey, cv2.CV_64F, 1, 0), cv2.Sobel(grey, cv2.CV_64F, 0, 1)
    grad = [np.log1p(np.hypot(gx, gy).mean()), np.log1p(np.abs(gx).mean() / (np.abs(gy).mean() + 1e-6))]
    return np.concatenate([r.mean(0), r.std(0), hsv.mean(0), hsv.std(0), grad])


def features(model_path: Path, fr, threads: int):
    """{"pool": [N×D per layer], "gram": [...], "img": [N×14]}."""
    m = density.strip(onnx.load(str(model_path)))
    names = density.trunk_layers(m)
    for n in names:
        m.graph.output.append(helper.make_tensor_value_info(n, TensorProto.FLOAT, None))
    path = Path(os.environ.get("TMPDIR", "/tmp")) / "ood_explore_layers.onnx"
    onnx.save(m, str(path))
    sess, meta = mcd.load(str(path), threads)
    masks = mcd.ones_masks(meta)
    pool, gram, img = [], [], []
    for rgb, *_ in fr:
        feeds = {"image": mcd.preprocess(rgb, meta), **{f"dropout_mask_{k}": v for k, v in enumerate(masks)}}
        p, g = [], []
        for o in sess.run(names, feeds):
            a = o[0].reshape(o.shape[1], -1).astype(np.float64)
            p.append(np.log1p(np.concatenate([a.mean(1), a.std(1)])))
            c = a - a.mean(1, keepdims=True)
            cov = c @ c.T / a.shape[1]
            d = np.sqrt(np.clip(np.diag(cov), 1e-12, None))
            g.append((cov / d[:, None] / d[None, :])[np.triu_indices(len(cov), 1)])
        pool.append(p)
        gram.append(g)
        img.append(image_stats(rgb))
    path.unlink()
    stack = lambda rows: [np.stack([r[i] for r in rows]) for i in range(len(rows[0]))]  # noqa: E731
    return {"pool": stack(pool), "gram": stack(gram), "img": np.stack(img)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default=str(MODEL))
    ap.add_argument("--train-max", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    t0 = time.time()
    data = Path(args.data)
    train, val, ood = frames(data, "train", args.train_max), frames(data, "val"), frames(data, "ood")
    allf = train + val + ood
    n1, n2 = len(train), len(train) + len(val)
    fit_n = (2 * n1) // 3
    pipe = np.array([f[2] for f in allf])
    sane = np.array([f[3] for f in allf])
    kind = np.array([f[1] for f in allf])
    F = features(Path(args.model), allf, args.threads)

    def layer(x):
        g = density.fit_layer(x[:fit_n], pipe[:fit_n])
        d = density.distances(x, g["means"], g["whiten"])
        return d / np.percentile(d[fit_n:n1], 95)

    d = {f"pool{i}": layer(x) for i, x in enumerate(F["pool"])}
    d.update({f"gram{i}": layer(x) for i, x in enumerate(F["gram"])})
    d["img"] = layer(F["img"])
    d["img_rgb"] = layer(F["img"][:, [0, 1, 2, 3, 4, 5, 12, 13]])
    n_layers = len(F["pool"])
    combos = {
        "pool, every layer (the shipped recipe's features)": [f"pool{i}" for i in range(n_layers)],
        "gram, every layer": [f"gram{i}" for i in range(n_layers)],
        "pool + img": [f"pool{i}" for i in range(n_layers)] + ["img"],
        "pool0 + pool1 + gram1 + img": ["pool0", "pool1", "gram1", "img"],
        "pool0 + pool1 + gram1 + img (RGB and gradient only)": ["pool0", "pool1", "gram1", "img_rgb"],
    }
    ood_kinds = sorted(str(k) for k in set(kind[n2:]))

    def rates(v):
        th = np.percentile(v[n1:n2][sane[n1:n2]], 95)
        out = {}
        for k in ood_kinds:
            sel = (kind == k) & sane
            sel[:n2] = False
            out[k] = round(float((v[sel] > th).mean()), 3)
        sel = sane.copy()
        sel[:n2] = False
        out["all"] = round(float((v[sel] > th).mean()), 3)
        return out

    report = {
        "frames": {"fit": fit_n, "scale": n1 - fit_n, "val_sane": int(sane[n1:n2].sum()),
                   **{f"ood_sane:{k}": int(((kind == k) & sane).sum()) for k in ood_kinds}},
        "layers": {name: rates(v) for name, v in d.items()},
        "combined_max": {name: rates(np.max([d[k] for k in keys], 0)) for name, keys in combos.items()},
        "dims": {"pool": [x.shape[1] for x in F["pool"]], "gram": [x.shape[1] for x in F["gram"]], "img": 14},
        "seconds": round(time.time() - t0, 1),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ood_explore.json").write_text(json.dumps(report, indent=1) + "\n")
    for group in ("layers", "combined_max"):
        for name, r in report[group].items():
            print(f"{name:55s} {r}")
    print(f"{out / 'ood_explore.json'} in {report['seconds']} s")


if __name__ == "__main__":
    main()
