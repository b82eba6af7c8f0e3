"""The trunk/head pair for anytime sampling (training/split.py, docs/interfaces.md §1): the shipped
pair is what split.py writes from the shipped model today, and trunk once + head in chunks gives
the main model's samples and feature_distance (onnxruntime, no PyTorch)."""
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "training"))
import split  # noqa: E402

MODEL = ROOT / "models" / "pipeline_seg_unet.onnx"


def sess(p):
    return ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])


def test_shipped_pair_is_what_split_writes_today(tmp_path):
    copy = tmp_path / "pipeline_seg_unet.onnx"
    shutil.copy(MODEL, copy)
    for new, shipped in zip(split.write(copy), split.paths(MODEL)):
        assert new.read_bytes() == shipped.read_bytes(), f"{shipped.name} is stale: rerun training/split.py"


def test_trunk_once_and_head_in_chunks_give_the_main_models_samples():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 3, 192, 256)).astype(np.float32)
    sites = [int(c) for c in {p.key: p.value for p in onnx.load(str(MODEL)).metadata_props}["dropout_sites"].split(",")]
    masks = [((rng.random((1, 8, c)) < 0.8) / 0.8).astype(np.float32) for c in sites]
    full = sess(MODEL)
    want, want_fd = full.run(["probs", "feature_distance"], {"image": x, **{f"dropout_mask_{k}": m for k, m in enumerate(masks)}})
    trunk, head = (sess(p) for p in split.paths(MODEL))
    outs = dict(zip([o.name for o in trunk.get_outputs()], trunk.run(None, {"image": x})))
    feed = {i.name: outs[i.name] for i in head.get_inputs() if not i.name.startswith("dropout_mask_")}
    got = np.concatenate([head.run(None, {**feed, **{f"dropout_mask_{k}": m[:, a:b] for k, m in enumerate(masks)}})[0]
                          for a, b in ((0, 3), (3, 4), (4, 8))], axis=1)
    assert np.abs(got - want).max() < 1e-5
    assert np.allclose(outs["feature_distance"], want_fd, rtol=1e-5)
    assert [p.value for p in onnx.load(str(split.paths(MODEL)[1])).metadata_props if p.key == split.PART_KEY] == ["head"]


def test_the_once_per_frame_work_moves_to_the_trunk():
    trunk, head = (onnx.load(str(p)) for p in split.paths(MODEL))
    convs = [n for n in head.graph.node if n.op_type == "Conv"]
    first = onnx.numpy_helper.to_array(next(i for i in head.graph.initializer if i.name == convs[0].input[1]))
    assert first.shape[1] == 16, "the head's first conv reads only the stochastic features"
    assert any(n.name.endswith("/skip_conv") for n in trunk.graph.node)
    ops = {n.op_type for n in head.graph.node}
    assert "Resize" not in ops, "the upsampling runs once, in the trunk"
    assert "Softmax" not in ops and "Sigmoid" in ops, "two-class softmax as a sigmoid of the logit difference"


def test_a_graph_without_masks_is_refused(tmp_path):
    m = onnx.load(str(MODEL))
    with pytest.raises(ValueError, match="dropout_mask"):
        split.frontier(onnx.helper.make_graph([], "g", [m.graph.input[0]], [m.graph.output[0]]))
