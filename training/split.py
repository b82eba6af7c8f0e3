"""Split a model (docs/interfaces.md §1) into its trunk and its stochastic head, for anytime sampling.

Usage: python split.py models/pipeline_seg_unet.onnx   (writes <stem>.trunk.onnx and <stem>.head.onnx)

The trunk is every node that depends on `image` and not on a dropout mask: it runs once per frame
and returns the tensors the stochastic part reads (the features before the first mask, the skip
connections, shape values) plus `feature_distance` if the model has it. The head takes those
tensors and the masks and returns `probs`, so the engine can draw the T samples in chunks and stop
when the frame's decision is settled. The main file stays the contract; the engine checks at load
that trunk + head give the main model's output and falls back to the main file if not.
Needs only `onnx` (no PyTorch): it runs on any model, shipped or fine-tuned.

Three exact rewrites make the head cheaper (ONNX Runtime's profile of the head showed softmax
22 %, the upsampling 16 % and the skip half of the first convolution a third of the convs):
- `hoist_skip_convs`: a convolution of the concatenation [upsampled stochastic features, skip
  connection] is the sum of a convolution of each part; the skip part is the same for every
  sample, so it moves to the trunk (once per frame) and the head adds it;
- `hoist_upsample`: the channel masks commute with the bilinear upsampling (both are linear per
  channel), so the trunk upsamples the features once and the head masks them at full size;
- `softmax_of_two_as_sigmoid`: a softmax over two classes is a sigmoid of the logit difference,
  so the last 1×1 convolution gives ±(l₁ − l₀)/τ and a Sigmoid replaces the Div and the Softmax
  over a middle axis.
The head then expects batch N = 1 (what the engine runs); the main file keeps any N.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import onnx
import numpy as np
from onnx import helper, numpy_helper
from onnx import utils as onnx_utils

PART_KEY = "anytime_part"


def frontier(g: onnx.GraphProto) -> list[str]:
    """Tensors that depend on the image but not on a mask and are read by mask-dependent nodes."""
    masks = {i.name for i in g.input if i.name.startswith("dropout_mask_")}
    if not masks:
        raise ValueError("the graph has no dropout_mask_k input")
    stochastic, from_image = set(masks), {"image"}
    for n in g.node:  # nodes are topologically sorted (ONNX requires it)
        if any(i in stochastic for i in n.input):
            stochastic.update(n.output)
        elif any(i in from_image for i in n.input):
            from_image.update(n.output)
    out: list[str] = []
    for n in g.node:
        if any(i in stochastic for i in n.input):
            out.extend(i for i in n.input if i in from_image and i not in out)
    if "probs" not in stochastic:
        raise ValueError("output 'probs' does not depend on the dropout masks")
    return out


def parts(model: onnx.ModelProto) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """(trunk, head) of `model`; tensor names are kept, so trunk outputs are head inputs."""
    g = model.graph
    cut = frontier(g)
    extras = [o.name for o in g.output if o.name != "probs"]  # feature_distance, if present
    masks = [i.name for i in g.input if i.name.startswith("dropout_mask_")]
    inferred = onnx.shape_inference.infer_shapes(model)
    ex = onnx_utils.Extractor(inferred)
    trunk = ex.extract_model(["image"], cut + extras)
    head = ex.extract_model(cut + masks, ["probs"])
    for part, name in ((trunk, "trunk"), (head, "head")):
        part.ir_version = model.ir_version
        del part.opset_import[:]
        part.opset_import.extend(model.opset_import)
        del part.metadata_props[:]
        for k, v in ((PART_KEY, name), ("producer_note", "training/split.py")):
            p = part.metadata_props.add()
            p.key, p.value = k, v
        onnx.checker.check_model(part)
    hoist_skip_convs(trunk, head)
    hoist_upsample(trunk, head)
    softmax_of_two_as_sigmoid(head)
    for part in (trunk, head):
        onnx.checker.check_model(part)
    return trunk, head


def _producers(g: onnx.GraphProto) -> dict:
    return {o: n for n in g.node for o in n.output}


def _prune(g: onnx.GraphProto) -> None:
    """Drops nodes, initialisers and inputs that no output needs."""
    needed = {o.name for o in g.output}
    keep = []
    for n in reversed(list(g.node)):
        if any(o in needed for o in n.output):
            keep.append(n)
            needed.update(i for i in n.input if i)
    keep.reverse()
    del g.node[:]
    g.node.extend(keep)
    inits = [i for i in g.initializer if i.name in needed]
    del g.initializer[:]
    g.initializer.extend(inits)
    ins = [i for i in g.input if i.name in needed]
    del g.input[:]
    g.input.extend(ins)


def hoist_skip_convs(trunk: onnx.ModelProto, head: onnx.ModelProto) -> int:
    """Moves the skip-connection half of each head Conv(Concat(a, broadcast(S))) to the trunk.

    S is a head input that the trunk makes as Unsqueeze(x, 1) and the head broadcasts to the T
    samples; Conv(Concat(a, S_T), W, b) = Conv(a, W_a) + Conv(x, W_s, b), and the second term is
    computed once in the trunk. Returns how many were moved (0 when the pattern is absent)."""
    th, hh = trunk.graph, head.graph
    t_prod, h_prod = _producers(th), _producers(hh)
    h_inputs = {i.name for i in hh.input}
    inits = {i.name: i for i in hh.initializer}
    moved = 0
    for conv in [n for n in hh.node if n.op_type == "Conv"]:
        cat = h_prod.get(conv.input[0])
        if cat is None or cat.op_type != "Concat" or len(cat.input) != 2:
            continue
        if next((a.i for a in cat.attribute if a.name == "axis"), None) != 1 or conv.input[1] not in inits:
            continue
        # The skip half: Reshape(Expand(S)) with S a head input made by Unsqueeze(x, [1]) in the trunk.
        reshape = h_prod.get(cat.input[1])
        expand = h_prod.get(reshape.input[0]) if reshape is not None and reshape.op_type == "Reshape" else None
        if expand is None or expand.op_type != "Expand" or expand.input[0] not in h_inputs:
            continue
        x = _unsqueezed_on_axis_1(th, t_prod, expand.input[0])
        dims = _dims(trunk, x) if x is not None else None
        w = numpy_helper.to_array(inits[conv.input[1]])
        c_skip = dims[1] if dims is not None and len(dims) > 1 and dims[1] > 0 else None
        if c_skip is None or c_skip >= w.shape[1]:
            continue
        c_a = w.shape[1] - c_skip
        base = conv.output[0]
        w_a, w_s = f"{base}/w_stochastic", f"{base}/w_skip"
        y = f"{base}/skip_part"
        attrs = list(conv.attribute)
        # Trunk: y = Conv(x, W_skip, bias), once per frame.
        th.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w[:, c_a:]), w_s))
        t_inputs = [x, w_s]
        if len(conv.input) > 2 and conv.input[2]:
            bias = inits[conv.input[2]]
            b = onnx.TensorProto()
            b.CopyFrom(bias)
            b.name = f"{base}/bias"
            th.initializer.append(b)
            t_inputs.append(b.name)
        node = helper.make_node("Conv", t_inputs, [y], name=f"{base}/skip_conv")
        node.attribute.extend(attrs)
        th.node.append(node)
        th.output.append(helper.make_tensor_value_info(y, onnx.TensorProto.FLOAT, ["N", int(w.shape[0]), "H", "W"]))
        # Head: Conv(a, W_stochastic) + y (broadcast over the samples: batch N = 1).
        hh.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w[:, :c_a]), w_a))
        hh.input.append(helper.make_tensor_value_info(y, onnx.TensorProto.FLOAT, ["N", int(w.shape[0]), "H", "W"]))
        part = f"{base}/stochastic_part"
        new_conv = helper.make_node("Conv", [cat.input[0], w_a], [part], name=f"{base}/stochastic_conv")
        new_conv.attribute.extend(attrs)
        add = helper.make_node("Add", [part, y], [base], name=f"{base}/add_skip")
        at = list(hh.node).index(conv)
        hh.node.remove(conv)
        hh.node.insert(at, add)
        hh.node.insert(at, new_conv)
        moved += 1
    if moved:
        _prune(hh)
        used = {i.name for i in hh.input} | {o.name for o in th.output if o.name == "feature_distance"}
        outs = [o for o in th.output if o.name in used]
        del th.output[:]
        th.output.extend(outs)
        _prune(th)
    return moved


def _const(g: onnx.GraphProto, name: str):
    """The value of `name` if an initialiser or a Constant node gives it, else None."""
    for i in g.initializer:
        if i.name == name:
            return numpy_helper.to_array(i)
    for n in g.node:
        if n.op_type == "Constant" and n.output[0] == name and n.attribute and n.attribute[0].name == "value":
            return numpy_helper.to_array(n.attribute[0].t)
    return None


def _unsqueezed_on_axis_1(trunk: onnx.GraphProto, producers: dict, name: str):
    """x when the trunk makes `name` as Unsqueeze(x, [1]) (a tensor the head broadcasts to the T
    samples), else None."""
    unsq = producers.get(name)
    if unsq is None or unsq.op_type != "Unsqueeze" or len(unsq.input) < 2:
        return None
    axes = _const(trunk, unsq.input[1])
    return unsq.input[0] if axes is not None and axes.tolist() == [1] else None


def _dims(model: onnx.ModelProto, name: str):
    """The dims of tensor `name` from shape inference (0 where unknown), or None."""
    inferred = onnx.shape_inference.infer_shapes(model)
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        if vi.name == name:
            return [d.dim_value for d in vi.type.tensor_type.shape.dim]
    return None


def hoist_upsample(trunk: onnx.ModelProto, head: onnx.ModelProto) -> int:
    """Resize(Reshape(S * m)) in the head, with S = Unsqueeze(x, 1) from the trunk, becomes
    Reshape(S_up * m) with S_up = Unsqueeze(Resize(x), 1) computed once in the trunk. Returns the
    number of rewrites (0 when the pattern is absent)."""
    th, hh = trunk.graph, head.graph
    t_prod, h_prod = _producers(th), _producers(hh)
    h_inputs = {i.name for i in hh.input}
    moved = 0
    for rs in [n for n in hh.node if n.op_type == "Resize"]:
        if len(rs.input) != 3 or rs.input[1]:
            continue  # only scales-based Resize without roi
        scales = _const(hh, rs.input[2])
        reshape = h_prod.get(rs.input[0])
        mul = h_prod.get(reshape.input[0]) if reshape is not None and reshape.op_type == "Reshape" else None
        if scales is None or len(scales) != 4 or list(scales[:2]) != [1, 1] or mul is None or mul.op_type != "Mul":
            continue
        feats = [i for i in mul.input if i in h_inputs]
        x = _unsqueezed_on_axis_1(th, t_prod, feats[0]) if len(feats) == 1 else None
        src = _dims(trunk, x) if x is not None else None  # [N, C, h, w] before the upsampling
        if src is None or len(src) != 4 or 0 in src[1:]:
            continue
        out = [src[0], src[1], int(round(src[2] * float(scales[2]))), int(round(src[3] * float(scales[3])))]
        base = rs.output[0]
        up, up5 = f"{base}/once", f"{base}/once_unsqueezed"
        th.initializer.append(numpy_helper.from_array(scales.astype(np.float32), f"{base}/scales"))
        th.initializer.append(numpy_helper.from_array(np.array([1], np.int64), f"{base}/axis1"))
        node = helper.make_node("Resize", [x, "", f"{base}/scales"], [up], name=f"{base}/resize_once")
        node.attribute.extend(rs.attribute)
        th.node.append(node)
        th.node.append(helper.make_node("Unsqueeze", [up, f"{base}/axis1"], [up5], name=f"{base}/unsqueeze_once"))
        th.output.append(helper.make_tensor_value_info(up5, onnx.TensorProto.FLOAT, ["N", 1, *out[1:]]))
        hh.input.append(helper.make_tensor_value_info(up5, onnx.TensorProto.FLOAT, ["N", 1, *out[1:]]))
        other = [i for i in mul.input if i != feats[0]][0]
        hh.initializer.append(numpy_helper.from_array(np.array([-1, *out[1:]], np.int64), f"{base}/shape"))
        at = list(hh.node).index(rs)
        hh.node.remove(rs)
        hh.node.insert(at, helper.make_node("Reshape", [f"{base}/masked", f"{base}/shape"], [base], name=f"{base}/reshape"))
        hh.node.insert(at, helper.make_node("Mul", [up5, other], [f"{base}/masked"], name=f"{base}/mask"))
        moved += 1
    if moved:
        _prune_pair(trunk, head)
    return moved


def softmax_of_two_as_sigmoid(head: onnx.ModelProto) -> bool:
    """Softmax(Div(Reshape(Conv(x, W, b)), τ), axis=2) over two classes becomes
    Reshape(Sigmoid(Conv(x, W', b'))) with W' = [(W₀ − W₁)/τ, (W₁ − W₀)/τ] (and b' alike):
    softmax(l)₀ = σ(l₀ − l₁). Returns whether it was rewritten."""
    g = head.graph
    prod = _producers(g)
    inits = {i.name: i for i in g.initializer}
    sm = next((n for n in g.node if n.op_type == "Softmax"), None)
    if sm is None or next((a.i for a in sm.attribute if a.name == "axis"), None) != 2:
        return False
    div = prod.get(sm.input[0])
    tau = _const(g, div.input[1]) if div is not None and div.op_type == "Div" else None
    reshape = prod.get(div.input[0]) if tau is not None and tau.size == 1 else None
    conv = prod.get(reshape.input[0]) if reshape is not None and reshape.op_type == "Reshape" else None
    if conv is None or conv.op_type != "Conv" or conv.input[1] not in inits:
        return False
    w = numpy_helper.to_array(inits[conv.input[1]])
    if w.shape[0] != 2:
        return False
    t = float(tau.reshape(()))
    diff = lambda a: np.stack([(a[0] - a[1]) / t, (a[1] - a[0]) / t]).astype(np.float32)  # noqa: E731
    base = conv.output[0]
    g.initializer.append(numpy_helper.from_array(diff(w), f"{base}/w_logit_diff"))
    ins = [conv.input[0], f"{base}/w_logit_diff"]
    if len(conv.input) > 2 and conv.input[2]:
        g.initializer.append(numpy_helper.from_array(diff(numpy_helper.to_array(inits[conv.input[2]])), f"{base}/b_logit_diff"))
        ins.append(f"{base}/b_logit_diff")
    new_conv = helper.make_node("Conv", ins, [f"{base}/logit_diff"], name=f"{base}/logit_diff_conv")
    new_conv.attribute.extend(conv.attribute)
    sig = helper.make_node("Sigmoid", [f"{base}/logit_diff"], [base], name=f"{base}/sigmoid")
    at = list(g.node).index(conv)
    g.node.remove(conv)
    g.node.insert(at, sig)
    g.node.insert(at, new_conv)
    reshape.output[0] = sm.output[0]
    g.node.remove(div)
    g.node.remove(sm)
    _prune(g)
    return True


def _prune_pair(trunk: onnx.ModelProto, head: onnx.ModelProto) -> None:
    """Prunes the head, then keeps only the trunk outputs the head reads (and feature_distance)."""
    th, hh = trunk.graph, head.graph
    _prune(hh)
    used = {i.name for i in hh.input} | {"feature_distance"}
    outs = [o for o in th.output if o.name in used]
    del th.output[:]
    th.output.extend(outs)
    _prune(th)


def paths(model_path: Path) -> tuple[Path, Path]:
    """Where the engine looks for the parts of `model_path`: beside it, `<stem>.trunk.onnx`, `<stem>.head.onnx`."""
    stem = model_path.name.removesuffix(".onnx")
    return model_path.with_name(stem + ".trunk.onnx"), model_path.with_name(stem + ".head.onnx")


def write(model_path: Path) -> tuple[Path, Path]:
    trunk, head = parts(onnx.load(str(model_path)))
    t_path, h_path = paths(model_path)
    onnx.save(trunk, str(t_path))
    onnx.save(head, str(h_path))
    return t_path, h_path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    a = ap.parse_args(argv)
    try:
        for p in write(a.model):
            print(f"wrote {p} ({p.stat().st_size / 1e6:.2f} MB)")
    except (ValueError, onnx.checker.ValidationError) as e:
        print(f"split: {a.model}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
