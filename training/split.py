"""Split a model (docs/interfaces.md §1) into its trunk and its stochastic head, for anytime sampling.

Usage: python split.py models/pipeline_seg_unet.onnx   (writes <stem>.trunk.onnx and <stem>.head.onnx)

The trunk is every node that depends on `image` and not on a dropout mask: it runs once per frame
and returns the tensors the stochastic part reads (the features before the first mask, the skip
connections, shape values) plus `feature_distance` if the model has it. The head takes those
tensors and the masks and returns `probs`, so the engine can draw the T samples in chunks and stop
when the frame's decision is settled. The main file stays the contract; the engine checks at load
that trunk + head give the main model's output and falls back to the main file if not.
Needs only `onnx` (no PyTorch): it runs on any model, shipped or fine-tuned.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import onnx
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
    # The head's own inputs: the cut, then the masks (whatever order the extractor chose).
    return trunk, head


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
