"""Fine-tuning weights read from an exported graph's initialisers (docs/interfaces.md §8).

A model exported before export.py wrote its `.pt` (the shipped one among them) still carries all
its weights: the tracer folded each BatchNorm into the convolution before it, so every Conv has a
weight and a bias. They map back onto `model.MCUNet` exactly by taking each BatchNorm as the
identity (weight 1, running mean 0, running variance 1 − eps) with the folded bias as its bias.
Fine-tuning keeps BatchNorm frozen, so the network trains as the folded affine it ships as.

Torch-free (numpy + onnx): `make test` checks the mapping without PyTorch.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

BN_EPS = 1e-5  # nn.BatchNorm2d's default, what the running variance is offset by
BLOCKS = ["enc0", "enc1", "enc2", "enc3", "bott", "dec3", "dec2", "dec1", "dec0"]


class WeightsError(ValueError):
    pass


def _temperature(m: onnx.ModelProto) -> float:
    """The logit temperature: the Div by a scalar constant right before the Softmax (absent at 1.0)."""
    consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in m.graph.node
              if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"}
    consts.update({i.name: numpy_helper.to_array(i) for i in m.graph.initializer})
    producer = {o: n for n in m.graph.node for o in n.output}
    soft = [n for n in m.graph.node if n.op_type == "Softmax"]
    if len(soft) != 1:
        raise WeightsError(f"expected one Softmax in the graph, found {len(soft)}")
    src = producer.get(soft[0].input[0])
    if src is not None and src.op_type == "Div" and src.input[1] in consts and consts[src.input[1]].size == 1:
        return float(consts[src.input[1]].reshape(()))
    return 1.0


def checkpoint_from_onnx(path) -> dict:
    """{"state_dict": {name: np.ndarray}, "config": ..., "temperature": ...} in the layout
    export.py's `.pt` has, from the graph's Conv initialisers and metadata."""
    m = onnx.load(str(path))
    props = {p.key: p.value for p in m.metadata_props}
    for k in ("dropout_placement", "dropout_p", "mean", "std"):
        if k not in props:
            raise WeightsError(f"{Path(path).name}: metadata lacks '{k}', so its network cannot be rebuilt")
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    # feature_distance's own fixed convolutions (luma, gradients: density.py, prefix fd/) are not the network's.
    convs = [n for n in m.graph.node if n.op_type == "Conv" and not n.name.startswith("fd/")]
    want = 2 * len(BLOCKS) + 1
    if len(convs) != want:
        raise WeightsError(f"{Path(path).name}: {len(convs)} convolutions, a U-Net of this repository has {want}")
    tensors = []
    for n in convs:
        if len(n.input) < 3 or n.input[1] not in init or n.input[2] not in init:
            raise WeightsError(f"{Path(path).name}: convolution {n.name} has no constant weight and bias")
        tensors.append((init[n.input[1]].astype(np.float32), init[n.input[2]].astype(np.float32)))
    sd = {}
    for b, name in enumerate(BLOCKS):
        for j, (conv_idx, bn_idx) in enumerate(((0, 1), (3, 4))):
            w, bias = tensors[2 * b + j]
            c = w.shape[0]
            sd[f"{name}.{conv_idx}.weight"] = w
            sd[f"{name}.{bn_idx}.weight"] = np.ones(c, np.float32)
            sd[f"{name}.{bn_idx}.bias"] = bias
            sd[f"{name}.{bn_idx}.running_mean"] = np.zeros(c, np.float32)
            sd[f"{name}.{bn_idx}.running_var"] = np.full(c, 1.0 - BN_EPS, np.float32)
            sd[f"{name}.{bn_idx}.num_batches_tracked"] = np.zeros((), np.int64)
    sd["head.weight"], sd["head.bias"] = tensors[-1]
    first = tensors[0][0]
    # the bottleneck's width over the plain U-Net's 8 * base (model.MCUNet's `width`)
    width = tensors[8][0].shape[0] / (8 * first.shape[0])
    cfg = {"placement": props["dropout_placement"], "p": float(props["dropout_p"]), "base": int(first.shape[0]),
           "width": width,
           "lcn": int(first.shape[1]) == 6, "mean": [float(v) for v in props["mean"].split(",")],
           "std": [float(v) for v in props["std"].split(",")], "source": f"ONNX initialisers of {Path(path).name}"}
    return {"state_dict": sd, "config": cfg, "temperature": _temperature(m)}
