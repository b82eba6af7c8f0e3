"""The model-contract checker (training/contract.py) that `make test-training` applies to a
fine-tuned model: it passes the shipped model and catches each kind of break (no PyTorch)."""
import sys
from pathlib import Path

import onnx
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "training"))
import contract  # noqa: E402

MODEL = ROOT / "models" / "pipeline_seg_unet.onnx"


def test_shipped_model_honours_the_contract():
    assert contract.violations(MODEL, like=MODEL) == []


def test_shipped_weights_for_finetuning_are_small():
    """`make finetune` starts from the state dict beside the graph (≤ 5 MB) or, where there is
    none, from the graph's initialisers (tests/test_onnx_weights.py)."""
    pt = MODEL.with_suffix(".pt")
    limit = 5 * 1024 * 1024
    assert (pt.stat().st_size if pt.is_file() else MODEL.stat().st_size) <= limit


def mutated(tmp_path, fn):
    m = onnx.load(str(MODEL))
    fn(m)
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    return p


def set_prop(m, key, value):
    for p in m.metadata_props:
        if p.key == key:
            p.value = value


def drop_prop(m, key):
    keep = [(p.key, p.value) for p in m.metadata_props if p.key != key]
    del m.metadata_props[:]
    for k, v in keep:
        m.metadata_props.add(key=k, value=v)


@pytest.mark.parametrize("fn,needle", [
    (lambda m: drop_prop(m, "threshold_high"), "metadata lacks ['threshold_high']"),
    (lambda m: set_prop(m, "score_method", "vibes"), "score_method"),
    (lambda m: set_prop(m, "threshold_low", "0.99"), "thresholds"),
    (lambda m: setattr(m.graph.input[1], "name", "mask0"), "inputs"),
    (lambda m: setattr(m.graph.output[0], "name", "out"), "first output must be 'probs'"),
])
def test_breaks_are_caught(tmp_path, fn, needle):
    v = contract.violations(mutated(tmp_path, fn))
    assert any(needle in line for line in v), v


def test_interface_must_match_the_base(tmp_path):
    p = mutated(tmp_path, lambda m: set_prop(m, "mean", "0.5,0.5,0.5"))
    assert contract.violations(p) == []
    assert any("mean" in line for line in contract.violations(p, like=MODEL))
