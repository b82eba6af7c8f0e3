"""Acceptance tests of `pipeline_seg calibrate` and `select` on tests/data/sample_bag (docs/interfaces.md §5-7).

calibrate prints the trade-off table and writes a ROS 2 parameter file that `replay --config`
accepts and whose values have the node's types (doubles written as floats); select writes K
lossless PNGs equal to the bag's frames and a manifest sorted by score, picks at least
--min-gap apart; a missing topic is fatal (exit 2). T = 4 keeps the runtime modest.

Run after `source scripts/env.sh`; the binary is `$PIPELINE_SEG_ROOT/target/release/pipeline_seg`.
"""
from __future__ import annotations

import csv
import os
import subprocess

import cv2
import numpy as np
import pytest
import yaml
from rosbags.highlevel import AnyReader

from conftest import BAG, GT, NODE_BIN, ROOT, TOPIC, run

SAMPLES = "4"
METHODS = {"mean", "p95", "fraction_above", "pipeline_mean", "trust"}  # trust: the shipped model has one
COLUMNS = ["method", "threshold_high", "threshold_low", "bad_flagged", "good_flagged", "coverage", "confident frames",
           "effective trials", "bad trials", "observed risk", "risk bound", "meets"]


def table_rows(stdout):
    """The printed table as {method: {column: cell}}."""
    lines = [l for l in stdout.splitlines() if l.startswith("| ")][1:]
    rows = {}
    for l in lines:
        cells = [c.strip() for c in l.split("|")[1:-1]]
        rows[cells[0].replace(" (chosen)", "")] = dict(zip(COLUMNS, cells), chosen="(chosen)" in cells[0])
    return rows


def bag_frames():
    """Header stamp -> the bag's frame decoded with cv2 (BGR)."""
    out = {}
    with AnyReader([BAG]) as reader:
        conns = [c for c in reader.connections if c.topic == TOPIC]
        for conn, _, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            out[stamp] = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
    return out


def test_calibrate_writes_a_parameter_file_replay_accepts(tmp_path):
    out = tmp_path / "calibrated.yaml"
    proc = run("calibrate", BAG, "--topic", TOPIC, "--gt-topic", GT, "--samples", SAMPLES, "--out", out)
    assert proc.returncode == 0, proc.stderr
    table = [l for l in proc.stdout.splitlines() if l.startswith("| ")]
    assert [c.strip() for c in table[0].split("|")[1:-1]] == COLUMNS
    assert {l.split("|")[1].split()[0] for l in table[1:]} == METHODS
    assert sum("(chosen)" in l for l in table) == 1
    text = out.read_text()
    assert text.startswith("#") and str(BAG) in text and "target" in text
    params = yaml.safe_load(text)["pipeline_seg_node"]["ros__parameters"]
    assert set(params) == {"samples", "score_method", "pixel_threshold", "band_px", "threshold_high", "threshold_low",
                           "recover_frames"}
    assert params["samples"] == int(SAMPLES), "thresholds hold for the T they were calibrated with"
    assert params["score_method"] in METHODS
    for k in ("pixel_threshold", "threshold_high", "threshold_low"):
        assert isinstance(params[k], float), (k, params[k])
    for k in ("samples", "band_px", "recover_frames"):
        assert isinstance(params[k], int) and not isinstance(params[k], bool), (k, params[k])
    assert 0.0 <= params["threshold_low"] <= params["threshold_high"] <= 1.0
    rep = run("replay", BAG, "--topic", TOPIC, "--samples", SAMPLES, "--config", out, "--write", "confidence",
              "--out", tmp_path / "replay")
    assert rep.returncode == 0, rep.stderr
    # The node takes the same file as its params file: it starts with the calibrated thresholds.
    node = subprocess.Popen([str(NODE_BIN), "--ros-args", "--params-file", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, ROS_DOMAIN_ID=str(100 + os.getpid() % 50)))
    try:
        first = node.stdout.readline()
        assert "ready:" in first and f"high {params['threshold_high']}" in first, first
    finally:
        node.send_signal(2)
        assert node.wait(timeout=15) == 0


def test_calibrate_with_a_risk_bound(tmp_path):
    """--max-risk: the bound per method; on 12 s of bag (6 trials of 2 s) no bound can reach 0.05,
    which it says, exiting 1 with its best written; counting every frame as a trial, 0.1 is met."""
    out = tmp_path / "risk.yaml"
    proc = run("calibrate", BAG, "--topic", TOPIC, "--gt-topic", GT, "--samples", SAMPLES, "--max-risk", "--out", out)
    assert proc.returncode == 1, proc.stderr
    assert "too few frames" in proc.stdout and ">= 45 effective trials" in proc.stdout, proc.stdout
    rows = table_rows(proc.stdout)
    assert set(rows) == METHODS and sum(r["chosen"] for r in rows.values()) == 1
    for r in rows.values():
        assert r["meets"] == "no" and int(r["effective trials"]) <= 7
        n, k = int(r["effective trials"]), int(r["bad trials"])
        if k == 0 and n > 0:  # the closed form of the Clopper-Pearson bound without errors
            assert abs(float(r["risk bound"]) - (1 - 0.1 ** (1 / n))) < 1e-4, r
    params = yaml.safe_load(out.read_text())["pipeline_seg_node"]["ros__parameters"]
    assert params["score_method"] in METHODS
    rep = run("replay", BAG, "--topic", TOPIC, "--samples", SAMPLES, "--config", out, "--write", "confidence",
              "--out", tmp_path / "replay")
    assert rep.returncode == 0, rep.stderr

    proc = run("calibrate", BAG, "--topic", TOPIC, "--gt-topic", GT, "--samples", SAMPLES, "--max-risk", "0.1",
               "--min-gap", "0", "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    chosen = next(r for r in table_rows(proc.stdout).values() if r["chosen"])
    assert chosen["meets"] == "yes" and float(chosen["risk bound"]) <= 0.1
    assert int(chosen["effective trials"]) == int(chosen["confident frames"]) >= 22
    # The chosen thresholds, replayed, give exactly the confident frames the table says.
    rep = run("replay", BAG, "--topic", TOPIC, "--gt-topic", GT, "--samples", SAMPLES, "--config", out,
              "--write", "confidence", "--out", tmp_path / "replay2")
    assert rep.returncode == 0, rep.stderr
    with open(tmp_path / "replay2" / "frames.csv", newline="") as f:
        frames = list(csv.DictReader(f))
    confident = [r for r in frames if r["confident"] in ("true", "1", "True")]
    assert len(confident) == int(chosen["confident frames"])
    bad = [r for r in confident if float(r["iou"]) < 0.5]
    assert len(bad) == int(chosen["bad trials"])


def test_calibrate_fit_trust_writes_a_trust_model_node_and_replay_accept(tmp_path):
    out = tmp_path / "trust.yaml"
    proc = run("calibrate", BAG, "--topic", TOPIC, "--gt-topic", GT, "--samples", SAMPLES, "--fit-trust",
               "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "trust refitted on these bags" in proc.stdout and "cross-fitted" in proc.stdout
    assert "trust" in table_rows(proc.stdout)
    params = yaml.safe_load(out.read_text())["pipeline_seg_node"]["ros__parameters"]
    model = params["trust_model"]
    assert isinstance(model, str) and model.startswith("features=") and ";intercept=" in model
    # Gate on the refitted trust: replay and the node take the file with score_method trust.
    cfg = tmp_path / "gate_on_trust.yaml"
    params.update(score_method="trust", threshold_high=0.5, threshold_low=0.3)
    cfg.write_text(yaml.safe_dump({"pipeline_seg_node": {"ros__parameters": params}}))
    rep = run("replay", BAG, "--topic", TOPIC, "--samples", SAMPLES, "--config", cfg, "--write", "confidence",
              "--out", tmp_path / "replay")
    assert rep.returncode == 0, rep.stderr
    with open(tmp_path / "replay" / "frames.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert all(r["score"] == r["trust"] for r in rows)
    node = subprocess.Popen([str(NODE_BIN), "--ros-args", "--params-file", str(cfg)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, ROS_DOMAIN_ID=str(100 + os.getpid() % 50)))
    try:
        first = node.stdout.readline()
        assert "ready:" in first and "trust" in first, first
    finally:
        node.send_signal(2)
        assert node.wait(timeout=15) == 0
    # A broken trust_model is a named parameter error.
    params["trust_model"] = "features=entropy_mean;mean=0.1"
    cfg.write_text(yaml.safe_dump({"pipeline_seg_node": {"ros__parameters": params}}))
    rep = run("replay", BAG, "--topic", TOPIC, "--samples", SAMPLES, "--config", cfg, "--out", tmp_path / "bad")
    assert rep.returncode == 2 and "trust_model" in rep.stderr, rep.stderr


def test_calibrate_refuses_out_of_range_risk(tmp_path):
    for flags, name in ((["--max-risk", "0"], "--max-risk"), (["--max-risk", "1.5"], "--max-risk"),
                        (["--max-risk", "0.05", "--delta", "1"], "--delta"),
                        (["--max-risk", "0.05", "--min-gap=-1"], "--min-gap")):
        proc = run("calibrate", BAG, "--topic", TOPIC, "--gt-topic", GT, "--samples", SAMPLES, *flags,
                   "--out", tmp_path / "c.yaml")
        assert proc.returncode == 2 and name in proc.stderr, (flags, proc.stderr)
        assert not (tmp_path / "c.yaml").exists()


@pytest.mark.parametrize("by", ["mi", "entropy"])
def test_select_writes_k_frames_and_a_manifest(tmp_path, by):
    k, gap = 4, 2.0
    proc = run("select", BAG, "--topic", TOPIC, "--top-k", k, "--samples", SAMPLES, "--by", by,
               "--min-gap", gap, "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["bag", "topic", "stamp_ns", "score"]
    assert len(rows) == k
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    stamps = sorted(int(r["stamp_ns"]) for r in rows)
    assert all(b - a >= gap * 1e9 for a, b in zip(stamps, stamps[1:]))
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(f"{s}.png" for s in stamps)
    frames = bag_frames()
    for s in stamps:
        png = cv2.imread(str(tmp_path / f"{s}.png"), cv2.IMREAD_COLOR)
        assert png is not None and png.shape == (480, 640, 3)
        diff = np.abs(png.astype(np.int16) - frames[s].astype(np.int16))
        assert diff.mean() < 2.0 and diff.max() <= 32, (s, diff.mean(), diff.max())


def test_missing_topic_is_fatal(tmp_path):
    proc = run("select", BAG, "--topic", "/no/such/topic", "--top-k", "2", "--samples", SAMPLES, "--out", tmp_path)
    assert proc.returncode == 2 and "/no/such/topic" in proc.stderr
    proc = run("calibrate", BAG, "--topic", TOPIC, "--gt-topic", "/no/mask", "--samples", SAMPLES,
               "--out", tmp_path / "c.yaml")
    assert proc.returncode == 2 and "/no/mask" in proc.stderr
    assert not (tmp_path / "c.yaml").exists()
