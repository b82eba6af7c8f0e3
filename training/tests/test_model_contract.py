"""The shipped ONNX model honours docs/interfaces.md §1 (onnxruntime only, no PyTorch)."""
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "training"))
import mcd  # noqa: E402

MODEL = ROOT / "models" / "pipeline_seg_unet.onnx"
FRAMES = ROOT / "tests" / "data" / "frames"
REQUIRED = ["classes", "input_height", "input_width", "mean", "std", "color_order", "resize", "dropout_p",
            "dropout_sites", "dropout_placement", "default_samples", "score_method", "pixel_threshold",
            "band_px", "threshold_high", "threshold_low", "recover_frames"]


@pytest.fixture(scope="module")
def model():
    return onnx.load(str(MODEL))


@pytest.fixture(scope="module")
def session():
    return mcd.load(str(MODEL), threads=2)


def dims(vi):
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def test_file_limits(model):
    assert MODEL.stat().st_size <= 10 * 1024 * 1024
    assert model.ir_version <= 10
    assert {o.domain or "ai.onnx": o.version for o in model.opset_import}["ai.onnx"] == 17
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    assert params <= 2_000_000
    onnx.checker.check_model(model)


def test_no_random_or_dropout_ops(model):
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"Dropout", "RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike", "Bernoulli"}


def test_metadata(model):
    props = {p.key: p.value for p in model.metadata_props}
    missing = [k for k in REQUIRED if k not in props]
    assert not missing, f"metadata lacks {missing}"
    assert props["classes"] == "background,pipeline"
    assert props["color_order"] == "RGB"
    assert props["resize"] in ("stretch", "letterbox")
    h, w = int(props["input_height"]), int(props["input_width"])
    assert h % 32 == 0 and w % 32 == 0
    assert len(props["mean"].split(",")) == 3 and len(props["std"].split(",")) == 3
    assert all(float(s) > 0 for s in props["std"].split(","))
    assert 0 < float(props["dropout_p"]) < 1
    assert props["score_method"] in ("mean", "p95", "fraction_above", "pipeline_mean", "trust")
    assert props["score_method"] != "trust" or "trust_features" in props
    assert 0 <= float(props["pixel_threshold"]) <= 1
    assert int(props["band_px"]) >= 0
    lo, hi = float(props["threshold_low"]), float(props["threshold_high"])
    assert 0 <= lo <= hi <= 1
    assert int(props["recover_frames"]) >= 1
    assert int(props["default_samples"]) >= 1


def test_inputs_outputs(model):
    props = {p.key: p.value for p in model.metadata_props}
    sites = [int(c) for c in props["dropout_sites"].split(",")]
    inputs = {i.name: i for i in model.graph.input}
    assert list(inputs)[0] == "image"
    assert set(inputs) == {"image", *[f"dropout_mask_{k}" for k in range(len(sites))]}
    img = dims(inputs["image"])
    assert img[1:] == [3, int(props["input_height"]), int(props["input_width"])]
    assert isinstance(img[0], str), "batch must be dynamic"
    for k, c in enumerate(sites):
        d = dims(inputs[f"dropout_mask_{k}"])
        assert len(d) == 3 and d[2] == c and isinstance(d[1], str), f"dropout_mask_{k} must be [N,T,{c}]"
    for vi in model.graph.input:
        assert vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    out, *extra = model.graph.output
    assert out.name == "probs"
    od = dims(out)
    assert len(od) == 5 and od[2] == 2 and od[3:] == img[2:]
    # The one optional output (docs/interfaces.md §9): a frame-level float32 [N].
    assert [o.name for o in extra] in ([], ["feature_distance"])
    for o in extra:
        assert o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT and len(dims(o)) == 1


def run(session, x, masks):
    sess, _ = session
    return mcd.run(sess, x, masks)


def test_probabilities_and_shapes(session):
    sess, meta = session
    x = np.random.default_rng(0).standard_normal((2, 3, meta.height, meta.width)).astype(np.float32)
    masks = [np.ones((2, 5, c), np.float32) for c in meta.sites]
    out = run(session, x, masks)
    assert out.shape == (2, 5, 2, meta.height, meta.width)
    np.testing.assert_allclose(out.sum(2), 1.0, atol=1e-5)
    assert (out >= 0).all() and (out <= 1).all()


def real_frame(meta):
    frame = sorted((FRAMES / "val" / "image").glob("*.jpg"))[0]
    return mcd.preprocess(mcd.read_rgb(frame), meta)


def test_mask_draws_change_samples_and_same_masks_repeat(session):
    sess, meta = session
    x = real_frame(meta)
    a = mcd.draw_masks(meta, 4, np.random.default_rng(1))
    b = mcd.draw_masks(meta, 4, np.random.default_rng(2))
    pa, pa2, pb = run(session, x, a), run(session, x, a), run(session, x, b)
    assert np.array_equal(pa, pa2), "same masks must give identical outputs"
    assert np.abs(pa - pb).max() > 1e-3, "different masks must give different samples"
    # within one draw, the T samples differ from each other too
    assert np.abs(pa[0, 0] - pa[0, 1]).max() > 1e-3


def test_samples_are_independent_runs(session):
    """Sample t of a T-sample run equals a T=1 run with that sample's masks: the broadcast to T
    is only the mask multiplication."""
    sess, meta = session
    x = real_frame(meta)
    masks = mcd.draw_masks(meta, 3, np.random.default_rng(5))
    full = run(session, x, masks)
    for t in range(3):
        one = run(session, x, [m[:, t:t + 1] for m in masks])
        np.testing.assert_allclose(full[:, t:t + 1], one, atol=1e-5)


def test_deterministic_network_is_all_ones_t1(session):
    sess, meta = session
    x = real_frame(meta)
    a = run(session, x, mcd.ones_masks(meta))
    b = run(session, x, mcd.ones_masks(meta))
    assert a.shape[1] == 1 and np.array_equal(a, b)
