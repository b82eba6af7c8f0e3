"""Shared helpers of the Python tests: paths, the CLI runner, the shipped model's metadata, AUROC.

pytest imports this file before any test module in tests/ and puts tests/ on sys.path, so a
module takes what it needs with `from conftest import ...`. Nothing here imports ROS:
test_node.py must set FASTRTPS_DEFAULT_PROFILES_FILE before rclpy is imported.

ROOT is `$PIPELINE_SEG_ROOT` (scripts/env.sh sets it) or this checkout; the binaries are those
of `make build` (`cargo build --release --locked`, `--features ros` for the node).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(os.environ.get("PIPELINE_SEG_ROOT") or Path(__file__).resolve().parents[1])
BIN = ROOT / "target" / "release" / "pipeline_seg"
NODE_BIN = ROOT / "target" / "release" / "pipeline_seg_node"
MODEL = ROOT / "models" / "pipeline_seg_unet.onnx"
FRAMES = ROOT / "tests" / "data" / "frames"
VAL = FRAMES / "val" / "image"
OOD = FRAMES / "ood" / "image"
BAG = ROOT / "tests" / "data" / "sample_bag"
TOPIC = "/camera/image_raw/compressed"
GT = "/camera/mask"
NS = "/pipeline_seg_node"


def run(*args, check_rc=None, timeout=300):
    """Runs the CLI `pipeline_seg ARGS...` in ROOT; returns the CompletedProcess (text).
    `check_rc` asserts the exit code (docs/interfaces.md §6)."""
    if not BIN.is_file():
        pytest.fail(f"{BIN} missing: build it with `cargo build --release --locked` (make test does)")
    proc = subprocess.run([str(BIN), *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if check_rc is not None:
        assert proc.returncode == check_rc, f"exit {proc.returncode}, expected {check_rc}\nstderr:\n{proc.stderr}"
    return proc


def replay(out, *extra, bag=BAG, topic=TOPIC, rc=0):
    """`pipeline_seg replay BAG --topic TOPIC EXTRA... --out OUT`, asserting the exit code `rc`."""
    return run("replay", bag, "--topic", topic, *extra, "--out", out, check_rc=rc)


def model_meta() -> dict:
    """The shipped model's `metadata_props` as a dict (docs/interfaces.md §1)."""
    import onnx

    m = onnx.load(str(MODEL), load_external_data=False)
    return {p.key: p.value for p in m.metadata_props}


def auroc(pos, neg):
    """AUROC from histograms over the same bins (docs/interfaces.md §7): `pos` and `neg` count the
    positive (wrong) and negative (right) pixels per bin; ties within a bin count half."""
    p_tot, n_tot = pos.sum(), neg.sum()
    below = np.concatenate([[0], np.cumsum(neg)[:-1]]).astype(np.float64)
    return float(((below + 0.5 * neg) * pos).sum() / (p_tot * n_tot))


def simulate_gate(scores, high, low, recover) -> list[str]:
    """docs/interfaces.md §3 hysteresis from a start in `recovering` (pass float32 values to compare as the node)."""
    latched, good_run, out = True, 0, []
    for s in scores:
        if s > high:
            latched, good_run = True, 0
            out.append("uncertain")
            continue
        if s < low:
            good_run += 1
            if good_run >= recover:
                latched = False
        else:
            good_run = 0
        out.append("recovering" if latched else "ok")
    return out
