"""The trust score and `feature_distance` (docs/interfaces.md §9) through the real CLI.

- The shipped model has the `feature_distance` output and a trust model in its metadata; `infer`
  reports every signal and the trust score, and the trust score equals the Python formula of
  `training/trust.py` on the same signals within 1e-5.
- `replay` writes both to `frames.csv`; with `score_method: trust` the gate runs on it.
- A model without `feature_distance` (the same graph with that output removed) still runs every
  other method; asking it for `trust` is a start-up error that says why (exit 2).
"""
from __future__ import annotations

import csv
import json
import sys

import numpy as np
import onnx
import pytest

from conftest import MODEL, ROOT, run

sys.path.insert(0, str(ROOT / "training"))
import density  # noqa: E402
import trust  # noqa: E402

FRAMES = ROOT / "tests" / "data" / "frames"


def props(path):
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


@pytest.fixture(scope="module")
def infer_summary(tmp_path_factory):
    out = tmp_path_factory.mktemp("trust_infer")
    proc = run("infer", "--samples", "4", "--out", out, FRAMES / "val" / "image", FRAMES / "ood" / "image")
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "summary.json").read_text())


def test_shipped_model_has_feature_distance_and_a_trust_model():
    m = onnx.load(str(MODEL))
    assert "feature_distance" in [o.name for o in m.graph.output]
    assert trust.from_metadata(props(MODEL)) is not None


def test_rust_trust_equals_the_python_formula(infer_summary):
    model = trust.from_metadata(props(MODEL))
    frames = infer_summary["frames"]
    assert len(frames) >= 10
    for f in frames:
        sig = np.array([np.nan if f["signals"][n] is None else f["signals"][n] for n in trust.SIGNALS])
        assert set(f["signals"]) == set(trust.SIGNALS)
        assert f["signals"]["feature_distance"] is not None and f["signals"]["feature_distance"] >= 0
        want = float(trust.score(model, sig[None])[0])
        assert 0.0 <= f["trust"] <= 1.0
        assert abs(f["trust"] - want) < 1e-5, (f["input"], f["trust"], want)


def test_feature_distance_is_larger_off_the_training_look(infer_summary):
    d = {"val": [], "ood": []}
    for f in infer_summary["frames"]:
        d["ood" if "/ood/" in f["input"] else "val"].append(f["signals"]["feature_distance"])
    assert np.median(d["ood"]) > np.median(d["val"]), d


def test_replay_writes_trust_and_gates_on_it(tmp_path):
    cfg = tmp_path / "trust.yaml"
    cfg.write_text("pipeline_seg_node:\n  ros__parameters:\n    score_method: trust\n"
                   "    threshold_high: 0.5\n    threshold_low: 0.3\n")
    out = tmp_path / "replay"
    proc = run("replay", ROOT / "tests" / "data" / "sample_bag", "--topic", "/camera/image_raw/compressed",
               "--samples", "4", "--config", cfg, "--write", "confidence", "--out", out)
    assert proc.returncode == 0, proc.stderr
    with open(out / "frames.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["trust"] and r["feature_distance"] for r in rows)
    # The score the gate ran on is the trust score.
    assert all(abs(float(r["score"]) - float(r["trust"])) < 1e-6 for r in rows)
    assert any(r["confident"] == "true" for r in rows) and any(r["reason"] == "uncertain" for r in rows)


def test_a_model_without_feature_distance_runs_but_refuses_trust(tmp_path):
    # A model from before issue 11: no feature_distance, no trust model, an entropy score as default.
    old = density.strip(onnx.load(str(MODEL)))
    gate = {"score_method": "pipeline_mean", "threshold_high": "0.5878", "threshold_low": "0.4074", "recover_frames": "3"}
    keep = [p for p in old.metadata_props if not p.key.startswith("trust_") and p.key not in gate]
    del old.metadata_props[:]
    old.metadata_props.extend(keep)
    onnx.helper.set_model_props(old, {**{p.key: p.value for p in keep}, **gate})
    path = tmp_path / "old.onnx"
    onnx.save(old, str(path))
    assert "feature_distance" not in [o.name for o in onnx.load(str(path)).graph.output]
    img = FRAMES / "val" / "image"
    proc = run("infer", "--model", path, "--samples", "2", "--out", tmp_path / "ok", img)
    assert proc.returncode == 0, proc.stderr
    s = json.loads((tmp_path / "ok" / "summary.json").read_text())
    assert all(f["trust"] is None and f["signals"]["feature_distance"] is None for f in s["frames"])
    cfg = tmp_path / "trust.yaml"
    cfg.write_text("pipeline_seg_node:\n  ros__parameters:\n    score_method: trust\n")
    proc = run("infer", "--model", path, "--config", cfg, "--samples", "2", "--out", tmp_path / "no", img)
    assert proc.returncode == 2
    assert "trust" in proc.stderr and "no feature_distance output" in proc.stderr, proc.stderr
