"""The model contract of docs/interfaces.md §1, as a checker (onnx + onnxruntime, no PyTorch).

Usage: python contract.py MODEL.onnx [--like BASE.onnx]
Exit 0 when the file honours the contract (and, with --like, has the base's inputs, outputs,
input size, normalisation and dropout sites, so every tool that loads the base loads it);
otherwise prints each violation and exits 1. Used by `make test` (on the shipped model) and by
`make test-training` (on a fine-tuned one).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx

REQUIRED = ["classes", "input_height", "input_width", "mean", "std", "color_order", "resize", "dropout_p",
            "dropout_sites", "dropout_placement", "default_samples", "score_method", "pixel_threshold",
            "band_px", "threshold_high", "threshold_low", "recover_frames"]
SCORE_METHODS = ("mean", "p95", "fraction_above", "pipeline_mean", "trust")
SAME_AS_BASE = ["classes", "input_height", "input_width", "mean", "std", "color_order", "resize", "dropout_p",
                "dropout_sites", "dropout_placement"]


def _dims(vi):
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def violations(path, like=None) -> list[str]:
    """Every way the model at `path` breaks the contract (empty list: it honours it)."""
    out = []
    path = Path(path)
    if path.stat().st_size > 10 * 1024 * 1024:
        out.append(f"file is {path.stat().st_size} bytes, limit 10 MiB")
    m = onnx.load(str(path))
    try:
        onnx.checker.check_model(m)
    except onnx.checker.ValidationError as e:
        out.append(f"onnx checker: {e}")
    if m.ir_version > 10:
        out.append(f"IR version {m.ir_version} > 10")
    opset = {o.domain or "ai.onnx": o.version for o in m.opset_import}.get("ai.onnx")
    if opset != 17:
        out.append(f"opset {opset}, expected 17")
    params = sum(int(np.prod(t.dims)) for t in m.graph.initializer)
    if params > 2_000_000:
        out.append(f"{params} parameters > 2 M")
    ops = {n.op_type for n in m.graph.node}
    rnd = ops & {"Dropout", "RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike", "Bernoulli"}
    if rnd:
        out.append(f"random or Dropout ops in the graph: {sorted(rnd)} (masks must be inputs)")
    props = {p.key: p.value for p in m.metadata_props}
    missing = [k for k in REQUIRED if k not in props]
    if missing:
        out.append(f"metadata lacks {missing}")
        return out
    try:
        if props["classes"] != "background,pipeline":
            out.append(f"classes {props['classes']!r}")
        if props["color_order"] != "RGB":
            out.append(f"color_order {props['color_order']!r}")
        if props["resize"] not in ("stretch", "letterbox"):
            out.append(f"resize {props['resize']!r}")
        h, w = int(props["input_height"]), int(props["input_width"])
        if len(props["mean"].split(",")) != 3 or len(props["std"].split(",")) != 3 or \
                not all(float(v) > 0 for v in props["std"].split(",")):
            out.append("mean/std must be three floats, std > 0")
        if not 0 < float(props["dropout_p"]) < 1:
            out.append(f"dropout_p {props['dropout_p']}")
        if props["score_method"] not in SCORE_METHODS:
            out.append(f"score_method {props['score_method']!r} not in {SCORE_METHODS}")
        if props["score_method"] == "trust" and "trust_features" not in props:
            out.append("score_method 'trust' needs a trust model (the trust_* metadata, docs/interfaces.md §9)")
        if not 0 <= float(props["pixel_threshold"]) <= 1 or int(props["band_px"]) < 0:
            out.append("pixel_threshold must be in [0, 1] and band_px >= 0")
        lo, hi = float(props["threshold_low"]), float(props["threshold_high"])
        if not 0 <= lo <= hi <= 1:
            out.append(f"thresholds low {lo} / high {hi} must satisfy 0 <= low <= high <= 1")
        if int(props["recover_frames"]) < 1 or int(props["default_samples"]) < 1:
            out.append("recover_frames and default_samples must be >= 1")
        sites = [int(c) for c in props["dropout_sites"].split(",")]
    except ValueError as e:
        out.append(f"metadata value does not parse: {e}")
        return out
    inputs = {i.name: i for i in m.graph.input}
    want = ["image", *[f"dropout_mask_{k}" for k in range(len(sites))]]
    if list(inputs) != want:
        out.append(f"inputs {list(inputs)}, expected {want}")
        return out
    img = _dims(inputs["image"])
    if img[1:] != [3, h, w] or not isinstance(img[0], str):
        out.append(f"image dims {img}, expected [N, 3, {h}, {w}] with dynamic N")
    for k, c in enumerate(sites):
        d = _dims(inputs[f"dropout_mask_{k}"])
        if len(d) != 3 or d[2] != c or not isinstance(d[1], str):
            out.append(f"dropout_mask_{k} dims {d}, expected [N, T, {c}] with dynamic T")
    for vi in m.graph.input:
        if vi.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            out.append(f"input {vi.name} is not float32")
    outs = list(m.graph.output)
    if len(outs) < 1 or outs[0].name != "probs":
        out.append(f"first output must be 'probs', found {[o.name for o in outs]}")
    else:
        od = _dims(outs[0])
        if len(od) != 5 or od[2] != 2 or od[3:] != [h, w]:
            out.append(f"probs dims {od}, expected [N, T, 2, {h}, {w}]")
    # Behaviour: softmax outputs, T samples differ, all-ones T = 1 is deterministic.
    try:
        out += _behaviour(path, h, w, props, sites)
    except Exception as e:  # noqa: BLE001  (any failure to load or run is a break)
        out.append(f"onnxruntime cannot run it: {e}")
    if like is not None:
        bp = {q.key: q.value for q in onnx.load(str(like)).metadata_props}
        for k in SAME_AS_BASE:
            if bp.get(k) != props.get(k):
                out.append(f"metadata {k} = {props.get(k)!r} differs from the base's {bp.get(k)!r}")
    return out


def _behaviour(path, h, w, props, sites):
    """Softmax outputs, T samples that differ, a deterministic all-ones T = 1 run."""
    import onnxruntime as ort
    out = []
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, h, w)).astype(np.float32)
    p = float(props["dropout_p"])
    masks = {f"dropout_mask_{k}": ((rng.random((1, 3, c)) < 1 - p) / (1 - p)).astype(np.float32) for k, c in enumerate(sites)}
    probs = sess.run(["probs"], {"image": x, **masks})[0]
    if probs.shape != (1, 3, 2, h, w):
        out.append(f"probs shape {probs.shape} for T = 3")
    elif not np.allclose(probs.sum(2), 1, atol=1e-4) or probs.min() < 0:
        out.append("probs are not a softmax over the class axis")
    elif np.abs(probs[0, 0] - probs[0, 1]).max() < 1e-6:
        out.append("different dropout masks give identical samples")
    ones = {f"dropout_mask_{k}": np.ones((1, 1, c), np.float32) for k, c in enumerate(sites)}
    a = sess.run(["probs"], {"image": x, **ones})[0]
    b = sess.run(["probs"], {"image": x, **ones})[0]
    if not np.array_equal(a, b):
        out.append("all-ones masks with T = 1 are not deterministic")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--like", help="a base model whose interface it must share")
    a = ap.parse_args()
    v = violations(a.model, a.like)
    for line in v:
        print(f"contract: {line}")
    print(f"{a.model}: {'honours' if not v else 'BREAKS'} the model contract (docs/interfaces.md §1)")
    return 1 if v else 0


if __name__ == "__main__":
    sys.exit(main())
