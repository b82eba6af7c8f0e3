"""Feature density: add the optional output `feature_distance` (docs/interfaces.md §9) to a model.

    python training/density.py MODEL.onnx --data training/data --splits train --out OUT.onnx [--report R.json]

The distance is a Mahalanobis distance (Lee et al. 2018, who also combine layers; DDU, Mukhoti
et al. 2021) of the frame's features to their training distribution, per part:
- every trunk layer (each encoder level's output and the bottleneck, the tensor the decoder's
  first upsampling reads): the mean and standard deviation over space of each channel, log(1 + x)
  because ReLU activations are heavy-tailed. Low levels see style, the bottleneck content;
- the channel correlations of the second encoder level (texture and style, as in style
  transfer): open water and walls have other textures than a seabed;
- image statistics of the input (RGB mean and spread, chroma, gradient energy, highlights and
  shadows): plumes and over-exposure change these before any feature does.
Per part: class-conditional means (frames with and without pipeline), one shared, shrunk
covariance, the smaller of the two distances, divided by its 95th percentile on fitting frames
the fit did not see (3-fold: each third scored by a fit on the other two; a fit scores its own
frames too well, and high-dimensional parts would then swamp the maximum). The frame's distance
is the largest part distance, divided by that maximum's held-out 95th percentile (so 0 is the
training mean, ~1 the edge of what training saw, larger is new). The trunk runs once per frame
(before the first dropout site), so the output costs poolings and a few small matrix products.
Measured on our own OOD renders (none in the fit), issue 11: with pooled layers only, plumes
were flagged 6 % of the time at 5 % of validation frames; with image statistics 81 %
(training/runs/trust/density.json has the record of the shipped fit).

Works on any §1 model without PyTorch (onnx + onnxruntime + numpy); an older model keeps every
other output, and re-running replaces an existing `feature_distance`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
import mcd  # noqa: E402

OUTPUT = "feature_distance"
PREFIX = "fd/"
SHRINK = 0.1  # covariance shrinkage towards its mean diagonal (the fit has a few hundred frames)


def bottleneck(model: onnx.ModelProto) -> str:
    """The bottleneck map: the input of the first Resize after the last MaxPool (the deepest,
    still deterministic encoder output)."""
    nodes = list(model.graph.node)
    pools = [i for i, n in enumerate(nodes) if n.op_type == "MaxPool"]
    if not pools:
        raise ValueError("no MaxPool in the graph: cannot find the trunk's bottleneck")
    for n in nodes[pools[-1]:]:
        if n.op_type == "Resize":
            return n.input[0]
    raise ValueError("no Resize after the last MaxPool: cannot find the trunk's bottleneck")


def trunk_layers(model: onnx.ModelProto) -> list[str]:
    """Every encoder level's output (the input of each MaxPool) and the bottleneck: low levels
    see the image's style (haze, exposure, texture), the bottleneck its content."""
    return [n.input[0] for n in model.graph.node if n.op_type == "MaxPool"] + [bottleneck(model)]


def strip(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model without a `feature_distance` output and its nodes (a refit replaces them)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    keep = [n for n in m.graph.node if not n.name.startswith(PREFIX)]
    del m.graph.node[:]
    m.graph.node.extend(keep)
    for coll in (m.graph.initializer,):
        keep = [t for t in coll if not t.name.startswith(PREFIX)]
        del coll[:]
        coll.extend(keep)
    outs = [o for o in m.graph.output if o.name != OUTPUT]
    del m.graph.output[:]
    m.graph.output.extend(outs)
    return m


def mean_sd_nodes(src: str, p: str):
    """Nodes computing `{p}cat4` [N, 2C, 1, 1]: the mean and standard deviation over space of each
    channel of map `src` [N, C, h, w]."""
    return [
        helper.make_node("GlobalAveragePool", [src], [p + "mean4"], name=p + "gap"),
        helper.make_node("Mul", [src, src], [p + "sq"], name=p + "sq"),
        helper.make_node("GlobalAveragePool", [p + "sq"], [p + "msq4"], name=p + "gap2"),
        helper.make_node("Mul", [p + "mean4", p + "mean4"], [p + "m2"], name=p + "m2"),
        helper.make_node("Sub", [p + "msq4", p + "m2"], [p + "var4"], name=p + "var"),
        helper.make_node("Relu", [p + "var4"], [p + "varp4"], name=p + "varp"),
        helper.make_node("Sqrt", [p + "varp4"], [p + "sd4"], name=p + "sd"),
        helper.make_node("Concat", [p + "mean4", p + "sd4"], [p + "cat4"], name=p + "cat", axis=1),
    ]


def pooling_nodes(src: str, p: str = PREFIX):
    """Nodes computing the pooled features `{p}feat` [N, 2C] of map `src` [N, C, h, w]:
    log(1 + x) of the channels' mean and standard deviation."""
    return mean_sd_nodes(src, p) + [
        helper.make_node("Flatten", [p + "cat4"], [p + "flat"], name=p + "flat", axis=1),
        helper.make_node("Add", [p + "flat", p + "one"], [p + "flat1"], name=p + "add1"),
        helper.make_node("Log", [p + "flat1"], [p + "feat"], name=p + "log"),
    ], [numpy_helper.from_array(np.ones((1,), np.float32), p + "one")]


def correlation_nodes(src: str, p: str):
    """Nodes computing `{p}corr` [N, C*C], the channel correlation matrix of map `src` [N, C, h, w]
    (the spatial size cancels: sum(a_i a_j) / sqrt(sum a_i^2 sum a_j^2) of centred channels)."""
    return [
        helper.make_node("Reshape", [src, p + "shape3"], [p + "flat"], name=p + "flat"),
        helper.make_node("ReduceMean", [p + "flat"], [p + "mu"], name=p + "mu", axes=[2], keepdims=1),
        helper.make_node("Sub", [p + "flat", p + "mu"], [p + "cen"], name=p + "cen"),
        helper.make_node("Transpose", [p + "cen"], [p + "cenT"], name=p + "cenT", perm=[0, 2, 1]),
        helper.make_node("MatMul", [p + "cen", p + "cenT"], [p + "cov"], name=p + "cov"),
        helper.make_node("ReduceSumSquare", [p + "cen"], [p + "ss"], name=p + "ss", axes=[2], keepdims=1),
        helper.make_node("Add", [p + "ss", p + "eps"], [p + "ss1"], name=p + "ss1"),
        helper.make_node("Sqrt", [p + "ss1"], [p + "sd"], name=p + "sd"),
        helper.make_node("Transpose", [p + "sd"], [p + "sdT"], name=p + "sdT", perm=[0, 2, 1]),
        helper.make_node("MatMul", [p + "sd", p + "sdT"], [p + "den"], name=p + "den"),
        helper.make_node("Div", [p + "cov", p + "den"], [p + "corr3"], name=p + "corr3"),
        helper.make_node("Flatten", [p + "corr3"], [p + "feat"], name=p + "corr", axis=1),
    ], [numpy_helper.from_array(np.array([0, 0, -1], np.int64), p + "shape3"),
        numpy_helper.from_array(np.array([1e-12], np.float32), p + "eps")]


def image_nodes(p: str, mean, std):
    """Nodes computing `{p}feat` [N, 12], statistics of the input image in [0, 1]: per-channel mean
    and standard deviation, chroma (max - min over channels) mean and standard deviation, log mean
    absolute luma gradient along x and y, and the mean excess of luma above 0.9 and below 0.1."""
    lum = np.array([0.299, 0.587, 0.114], np.float32).reshape(1, 3, 1, 1)
    inits = [numpy_helper.from_array(np.asarray(std, np.float32).reshape(1, 3, 1, 1), p + "std"),
             numpy_helper.from_array(np.asarray(mean, np.float32).reshape(1, 3, 1, 1), p + "mean"),
             numpy_helper.from_array(lum, p + "lum"),
             numpy_helper.from_array(np.array([[[[-1.0, 1.0]]]], np.float32), p + "dx"),
             numpy_helper.from_array(np.array([[[[-1.0], [1.0]]]], np.float32), p + "dy"),
             numpy_helper.from_array(np.array([1e-4], np.float32), p + "eps"),
             numpy_helper.from_array(np.array([0.9], np.float32), p + "hi"),
             numpy_helper.from_array(np.array([0.1], np.float32), p + "lo"),
             numpy_helper.from_array(np.array([10.0], np.float32), p + "ten")]

    nodes = [helper.make_node("Mul", ["image", p + "std"], [p + "rs"], name=p + "rs"),
             helper.make_node("Add", [p + "rs", p + "mean"], [p + "rgb"], name=p + "rgb"),
             helper.make_node("ReduceMax", [p + "rgb"], [p + "cmax"], name=p + "cmax", axes=[1], keepdims=1),
             helper.make_node("ReduceMin", [p + "rgb"], [p + "cmin"], name=p + "cmin", axes=[1], keepdims=1),
             helper.make_node("Sub", [p + "cmax", p + "cmin"], [p + "chroma"], name=p + "chroma"),
             helper.make_node("Conv", [p + "rgb", p + "lum"], [p + "y"], name=p + "y")]
    nodes += mean_sd_nodes(p + "rgb", p + "c/") + mean_sd_nodes(p + "chroma", p + "h/")
    parts = [p + "c/cat4", p + "h/cat4"]
    for d in ("dx", "dy"):
        nodes += [helper.make_node("Conv", [p + "y", p + d], [p + d + "v"], name=p + d + "v"),
                  helper.make_node("Abs", [p + d + "v"], [p + d + "a"], name=p + d + "a"),
                  helper.make_node("GlobalAveragePool", [p + d + "a"], [p + d + "m"], name=p + d + "m"),
                  helper.make_node("Add", [p + d + "m", p + "eps"], [p + d + "e"], name=p + d + "e"),
                  helper.make_node("Log", [p + d + "e"], [p + d + "l"], name=p + d + "l")]
        parts.append(p + d + "l")
    nodes += [helper.make_node("Sub", [p + "y", p + "hi"], [p + "hix"], name=p + "hix"),
              helper.make_node("Sub", [p + "lo", p + "y"], [p + "lox"], name=p + "lox")]
    for d in ("hix", "lox"):
        nodes += [helper.make_node("Relu", [p + d], [p + d + "r"], name=p + d + "r"),
                  helper.make_node("GlobalAveragePool", [p + d + "r"], [p + d + "m"], name=p + d + "m"),
                  helper.make_node("Mul", [p + d + "m", p + "ten"], [p + d + "s"], name=p + d + "s")]
        parts.append(p + d + "s")
    nodes += [helper.make_node("Concat", parts, [p + "cat"], name=p + "cat", axis=1),
              helper.make_node("Flatten", [p + "cat"], [p + "feat"], name=p + "flatten", axis=1)]
    return nodes, inits


def parts(model: onnx.ModelProto) -> list[tuple[str, list, list]]:
    """(prefix, nodes, initialisers) of each part; each part's nodes compute `{prefix}feat` [N, D]."""
    layers = trunk_layers(model)
    out = []
    for i, src in enumerate(layers):
        p = f"{PREFIX}l{i}/"
        out.append((p, *pooling_nodes(src, p)))
    out.append((f"{PREFIX}g1/", *correlation_nodes(layers[1], f"{PREFIX}g1/")))
    props = {q.key: q.value for q in model.metadata_props}
    nums = lambda k: [float(v) for v in props[k].split(",")]  # noqa: E731
    out.append((f"{PREFIX}img/", *image_nodes(f"{PREFIX}img/", nums("mean"), nums("std"))))
    return out


def features_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with each part's raw features as extra outputs `fd/<part>/feat`."""
    m = strip(model)
    for p, nodes, inits in parts(m):
        m.graph.node.extend(nodes)
        m.graph.initializer.extend(inits)
        m.graph.output.append(helper.make_tensor_value_info(p + "feat", TensorProto.FLOAT, None))
    return m


def pooled(model: onnx.ModelProto, frames, threads: int = 0) -> list[np.ndarray]:
    """Each part's raw features [N, D_part] of RGB frames, from ONNX Runtime (the graph's own
    numbers, so the fit sees exactly what the engine computes)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "feat.onnx"
        fm = features_model(model)
        names = [o.name for o in fm.graph.output if o.name.startswith(PREFIX)]
        onnx.save(fm, path)
        sess, meta = mcd.load(str(path), threads)
        masks = mcd.ones_masks(meta)
        out = [[] for _ in names]
        for rgb in frames:
            feeds = {"image": mcd.preprocess(rgb, meta), **{f"dropout_mask_{k}": v for k, v in enumerate(masks)}}
            for i, v in enumerate(sess.run(names, feeds)):
                out[i].append(v[0])
    return [np.stack(o).astype(np.float64) for o in out]


def columns(feats: np.ndarray) -> np.ndarray:
    """The columns of a part that carry information: the upper triangle of a flattened
    correlation matrix (its diagonal is 1 and it is symmetric), every column otherwise."""
    c = int(round(np.sqrt(feats.shape[1])))
    sq = feats.reshape(len(feats), c, c) if c * c == feats.shape[1] else None
    if sq is not None and c > 2 and np.allclose(sq, sq.transpose(0, 2, 1), atol=1e-5):
        i, j = np.triu_indices(c, 1)
        return i * c + j
    return np.arange(feats.shape[1])


FOLDS = 3


def fit(feats: list[np.ndarray], has_pipe: np.ndarray) -> dict:
    """One Mahalanobis fit per part on every frame. Scales come from held-out distances: each
    third of the frames (every third frame) scored by a fit on the other two thirds."""
    has_pipe = np.asarray(has_pipe, bool)
    fold = np.arange(len(has_pipe)) % FOLDS
    out_of_fold = []
    fits = []
    for x in feats:
        cols = columns(x)
        x = x[:, cols]
        held = np.zeros(len(x))
        for k in range(FOLDS):
            g = fit_layer(x[fold != k], has_pipe[fold != k])
            held[fold == k] = distances(x[fold == k], g["means"], g["whiten"])
        g = fit_layer(x, has_pipe)
        g["scale"] = float(np.percentile(held, 95))
        g["columns"] = cols
        fits.append(g)
        out_of_fold.append(held / g["scale"])
    d = np.max(out_of_fold, axis=0)
    return {"layers": fits, "scale": float(np.percentile(d, 95)), "classes": fits[0]["classes"]}


def combined(feats: list[np.ndarray], f: dict) -> np.ndarray:
    d = np.max([distances(x[:, g["columns"]], g["means"], g["whiten"], g["scale"])
                for x, g in zip(feats, f["layers"])], axis=0)
    return d / f["scale"]


def fit_layer(feats: np.ndarray, has_pipe: np.ndarray) -> dict:
    """Class means and the shared shrunk covariance's whitening matrix."""
    classes = [c for c in (False, True) if (has_pipe == c).sum() >= 2]
    means = np.stack([feats[has_pipe == c].mean(0) for c in classes])
    resid = np.concatenate([feats[has_pipe == c] - means[i] for i, c in enumerate(classes)])
    cov = resid.T @ resid / max(1, len(resid) - len(classes))
    cov = (1 - SHRINK) * cov + SHRINK * np.eye(len(cov)) * np.trace(cov) / len(cov)
    whiten = np.linalg.cholesky(np.linalg.inv(cov))  # P = W W^T: |(x - mu) W|^2 = Mahalanobis^2
    return {"means": means, "whiten": whiten, "classes": classes}


def distances(feats, means, whiten, scale=1.0):
    d2 = np.stack([(((feats - mu) @ whiten) ** 2).sum(1) for mu in means])
    return np.sqrt(d2.min(0)) / scale


def with_distance(model: onnx.ModelProto, f: dict) -> onnx.ModelProto:
    """The model with the output `feature_distance` [N] computed in the graph."""
    m = strip(model)
    nodes, inits, per_part = [], [], []
    for (p, n, it), g in zip(parts(m), f["layers"]):
        nodes += n
        inits += it
        feat = p + "feat"
        if not np.array_equal(g["columns"], np.arange(len(g["columns"]))):  # a subset: the correlations
            inits.append(numpy_helper.from_array(np.asarray(g["columns"], np.int64), p + "cols"))
            nodes.append(helper.make_node("Gather", [feat, p + "cols"], [p + "sel"], name=p + "sel", axis=1))
            feat = p + "sel"
        inits.append(numpy_helper.from_array(g["whiten"].astype(np.float32), p + "whiten"))
        inits.append(numpy_helper.from_array(np.array([g["scale"]], np.float32), p + "scale"))
        d2 = []
        for k, mu in enumerate(g["means"]):
            inits.append(numpy_helper.from_array(mu.astype(np.float32)[None], p + f"mu{k}"))
            nodes += [
                helper.make_node("Sub", [feat, p + f"mu{k}"], [p + f"c{k}"], name=p + f"c{k}"),
                helper.make_node("MatMul", [p + f"c{k}", p + "whiten"], [p + f"w{k}"], name=p + f"w{k}"),
                helper.make_node("ReduceSumSquare", [p + f"w{k}"], [p + f"d2_{k}"], name=p + f"d2_{k}", axes=[1],
                                 keepdims=0),
            ]
            d2.append(p + f"d2_{k}")
        nodes += [
            helper.make_node("Min", d2, [p + "d2"], name=p + "min"),
            helper.make_node("Sqrt", [p + "d2"], [p + "d"], name=p + "sqrt"),
            helper.make_node("Div", [p + "d", p + "scale"], [p + "dn"], name=p + "scale"),
        ]
        per_part.append(p + "dn")
    inits.append(numpy_helper.from_array(np.array([f["scale"]], np.float32), PREFIX + "scale"))
    nodes += [
        helper.make_node("Max", per_part, [PREFIX + "dmax"], name=PREFIX + "max"),
        helper.make_node("Div", [PREFIX + "dmax", PREFIX + "scale"], [OUTPUT], name=PREFIX + "scale"),
    ]
    m.graph.node.extend(nodes)
    m.graph.initializer.extend(inits)
    m.graph.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N"]))
    onnx.checker.check_model(m)
    return m


def graph_error(model: onnx.ModelProto, frames, feats: list[np.ndarray], f: dict, threads: int = 0, n: int = 8) -> float:
    """Largest difference between the graph's `feature_distance` and the numpy fit on the first
    `n` frames: the graph is what the engine reads, so it must be the fit."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fd.onnx"
        onnx.save(model, path)
        sess, meta = mcd.load(str(path), threads)
        masks = mcd.ones_masks(meta)
        got = [sess.run([OUTPUT], {"image": mcd.preprocess(rgb, meta),
                                   **{f"dropout_mask_{k}": v for k, v in enumerate(masks)}})[0][0] for rgb in frames[:n]]
    return float(np.abs(np.array(got) - combined([x[:n] for x in feats], f)).max())


def refit(model: onnx.ModelProto, frames, has_pipe) -> onnx.ModelProto:
    """The model with `feature_distance` fitted on these RGB frames (what `make finetune` trained on)."""
    feats = pooled(model, frames)
    f = fit(feats, np.asarray(has_pipe, bool))
    out = with_distance(model, f)
    err = graph_error(out, frames, feats, f)
    if err > 1e-3:
        raise ValueError(f"density: graph and fit disagree by {err}")
    return out


def load_split(data: Path, split: str, limit: int | None = None):
    files = sorted((data / split / "image").glob("*.jpg"))[:limit]
    frames = [mcd.read_rgb(f) for f in files]
    masks = [data / split / "mask" / (f.stem + ".png") for f in files]
    import cv2
    has_pipe = np.array([(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 127).any() for p in masks])
    return frames, has_pipe


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "data"))
    ap.add_argument("--splits", default="train", help="comma-separated splits to fit on (the model's training look)")
    ap.add_argument("--max", type=int, default=480, help="at most this many frames per split")
    ap.add_argument("--out", required=True, help="the model with feature_distance (may be the input)")
    ap.add_argument("--report", help="JSON: fit size, scale, and the distance's percentiles per split")
    ap.add_argument("--eval-splits", default="", help="comma-separated splits to report the distance on")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    t0 = time.time()
    model = onnx.load(args.model)
    frames, has_pipe = [], []
    for s in args.splits.split(","):
        fr, hp = load_split(Path(args.data), s, args.max)
        if not fr:
            sys.exit(f"density: no frames in {Path(args.data) / s / 'image'}")
        frames += fr
        has_pipe.append(hp)
    has_pipe = np.concatenate(has_pipe)
    feats = pooled(model, frames, args.threads)
    f = fit(feats, has_pipe)
    out = with_distance(model, f)
    err = graph_error(out, frames, feats, f, args.threads)
    if err > 1e-3:
        sys.exit(f"density: graph and fit disagree by {err}")
    onnx.save(out, args.out)
    report = {"fit_splits": args.splits, "fit_frames": len(frames),
              "parts": [p for p, _, _ in parts(model)], "features": [len(g["columns"]) for g in f["layers"]],
              "part_scales": [g["scale"] for g in f["layers"]],
              "classes": [("pipe" if c else "no_pipe") for c in f["classes"]], "shrinkage": SHRINK,
              "scale": f["scale"], "graph_vs_numpy_max_abs": err, "per_split": {}}
    for s in [s for s in args.eval_splits.split(",") if s]:
        fr, _ = load_split(Path(args.data), s)
        d = combined(pooled(model, fr, args.threads), f)
        report["per_split"][s] = {"frames": len(fr), "p50": float(np.median(d)), "p95": float(np.percentile(d, 95)),
                                  "above_1": float((d > 1).mean()), "distances": [round(float(v), 4) for v in d]}
        print(f"{s}: median {np.median(d):.3f}, p95 {np.percentile(d, 95):.3f}, above 1: {(d > 1).mean():.3f}")
    report["seconds"] = round(time.time() - t0, 1)
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=1) + "\n")
    print(f"{args.out}: feature_distance fitted on {len(frames)} frames of {args.splits} "
          f"({len(feats)} parts, scale {f['scale']:.3f}, graph vs numpy {err:.1e}) in {report['seconds']} s")


if __name__ == "__main__":
    main()
