"""Fine-tuning weights read back from a graph's initialisers (training/onnx_weights.py), so the
shipped model, which has no .pt beside it, can be a fine-tuning base (no PyTorch)."""
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "training"))
import onnx_weights as W  # noqa: E402

MODEL = ROOT / "models" / "pipeline_seg_unet.onnx"


def test_shipped_graph_gives_the_exported_network():
    ck = W.checkpoint_from_onnx(MODEL)
    props = {p.key: p.value for p in onnx.load(str(MODEL)).metadata_props}
    cfg = ck["config"]
    assert cfg["placement"] == props["dropout_placement"] and cfg["lcn"] is True and cfg["base"] == 16
    # export.py's record of the shipped run: its parameter count and temperature.
    rec = json.loads((ROOT / "training" / "runs" / "shipped" / "export.json").read_text())
    sd = ck["state_dict"]
    params = sum(v.size for k, v in sd.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert params == rec["params"]
    assert ck["temperature"] == pytest.approx(rec["temperature"], abs=1e-6)
    # BatchNorm as the identity: (x - 0) / sqrt(1 - eps + eps) * 1 + bias.
    assert np.allclose(sd["enc0.1.running_var"] + W.BN_EPS, 1.0) and not sd["enc0.1.running_mean"].any()
    assert sd["enc0.0.weight"].shape == (16, 6, 3, 3) and sd["head.weight"].shape == (2, 16, 1, 1)
    assert int(props["dropout_sites"]) == sd["dec1.3.weight"].shape[0]


def test_graph_without_constant_weights_is_refused(tmp_path):
    m = onnx.load(str(MODEL))
    conv = next(n for n in m.graph.node if n.op_type == "Conv")
    keep = [i for i in m.graph.initializer if i.name != conv.input[1]]
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    with pytest.raises(W.WeightsError, match="no constant weight"):
        W.checkpoint_from_onnx(p)


def test_graph_without_network_metadata_is_refused(tmp_path):
    m = onnx.load(str(MODEL))
    keep = [(p.key, p.value) for p in m.metadata_props if p.key != "dropout_placement"]
    del m.metadata_props[:]
    for k, v in keep:
        m.metadata_props.add(key=k, value=v)
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    with pytest.raises(W.WeightsError, match="dropout_placement"):
        W.checkpoint_from_onnx(p)
