"""Fleet-scale replay (docs/interfaces.md §11): bags replayed as separate parallel processes and
merged give what one replay of all the bags gives; `calibrate` and `select` take the run
directories instead of the bags; runs that do not belong together are refused.

The three bags are the sample bag cut in three by the Python `rosbags` (another writer than ours).
"""
from __future__ import annotations

import csv
import json
import math
import subprocess

import pytest
from conftest import BAG, BIN, GT, MODEL, ROOT, TOPIC, run, simulate_gate
from make_bags import cut_bag

PARTS = [(0, 20), (20, 40), (40, 60)]
def flags(samples=4, seed=3):
    return ["--topic", TOPIC, "--gt-topic", GT, "--samples", str(samples), "--seed", str(seed)]


def cut(out):
    """The sample bag's frames [a, b) of every topic, one rosbag2 MCAP bag per part."""
    return cut_bag(BAG, TOPIC, PARTS, [out / f"part{i}" for i in range(len(PARTS))])


def replay_cmd(out, *bags, **kw):
    return [str(BIN), "replay", *map(str, bags), *flags(**kw), "--write", "confident", "--out", str(out)]


def frames(path, drop=("latency_ms",)):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


def close(a, b, path="metrics"):
    """Numbers equal to 1e-9, everything else exactly."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None and math.isclose(a, b, rel_tol=0, abs_tol=1e-9), f"{path}: {a} vs {b}"
    else:
        assert a == b, f"{path}: {a} vs {b}"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("merge")
    bags = cut(tmp)
    # The cluster way: one process per bag, in parallel, then merge.
    procs = [subprocess.Popen(replay_cmd(tmp / f"run{i}", bag), cwd=ROOT, stderr=subprocess.PIPE, text=True)
             for i, bag in enumerate(bags)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    runs = [tmp / f"run{i}" for i in range(len(bags))]
    merged = run("merge", *runs, "--out", tmp / "merged", check_rc=0)
    # One replay of all bags, in the same order.
    one = subprocess.run(replay_cmd(tmp / "one", *bags), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    return tmp, bags, runs, merged


def test_parallel_runs_merge_into_one_replay_of_all_bags(fleet):
    tmp, bags, runs, merged = fleet
    assert "merged 3 runs: 3 bags, 60 frames (60 with ground truth)" in merged.stderr
    m, one = (json.loads((tmp / d / "metrics.json").read_text()) for d in ("merged", "one"))
    close(m, one)
    assert m["frames"] == 60 and m["bags"] == [str(b) for b in bags] and m["pooled_iou"] > 0.5
    # The merged metrics are not those of any single run (the runs really were combined).
    first = json.loads((runs[0] / "metrics.json").read_text())
    assert first["frames"] == 20 and abs(first["pooled_iou"] - m["pooled_iou"]) > 1e-6
    fm, fo = frames(tmp / "merged" / "frames.csv"), frames(tmp / "one" / "frames.csv")
    assert fm == fo and len(fm) == 60
    assert [r["bag"] for r in fm] == [str(b) for b in bags for _ in range(20)]
    # The gate starts over at each bag, as in a separate run: each bag's first frame gets the
    # decision of a fresh, latched gate (docs/interfaces.md §3).
    th = m["thresholds"]
    fresh = [simulate_gate([float(fm[i]["score"])], th["threshold_high"], th["threshold_low"], th["recover_frames"])[0]
             for i in (0, 20, 40)]
    assert [fm[i]["reason"] for i in (0, 20, 40)] == fresh
    html = (tmp / "merged" / "report.html").read_text()
    assert "<svg" in html and "data:image/jpeg;base64," in html
    assert "<h2>Bags (3)</h2>" in html and all(str(b) in html for b in bags), "the per-bag table"
    assert "<h2>Bags" not in (runs[0] / "report.html").read_text(), "no bag table for one bag"
    state = json.loads((tmp / "merged" / "state.json").read_text())
    assert len(state["frames"]) == 60 and [b["frames"] for b in state["bags"]] == [20, 20, 20]


def test_a_frame_scores_the_same_in_a_part_of_a_bag_as_in_the_whole(fleet, tmp_path):
    """The dropout masks are keyed by the frame: the middle part's frames give the same scores,
    masks and samples as the same frames in a replay of the whole bag."""
    _, _, runs, _ = fleet
    whole = tmp_path / "whole"
    subprocess.run(replay_cmd(whole, BAG), cwd=ROOT, check=True, capture_output=True, timeout=300)
    cols = ("stamp_ns", "score", "pipeline_fraction", "iou", "samples", "trust", "feature_distance")
    pick = lambda rows: [{c: r[c] for c in cols} for r in rows]  # noqa: E731
    assert pick(frames(runs[1] / "frames.csv")) == pick(frames(whole / "frames.csv")[20:40])


def test_calibrate_and_select_take_run_directories(fleet, tmp_path):
    _, bags, runs, _ = fleet
    args = [*flags(), "--max-good-flagged", "0.2", "--min-bad-flagged", "0.5"]
    from_bags = run("calibrate", *bags, *args, "--out", tmp_path / "bags.yaml", check_rc=0)
    from_runs = run("calibrate", *runs, *args, "--out", tmp_path / "runs.yaml", check_rc=0)
    assert from_runs.stdout == from_bags.stdout
    body = lambda p: [l for l in p.read_text().splitlines() if not l.startswith("#")]  # noqa: E731
    assert body(tmp_path / "runs.yaml") == body(tmp_path / "bags.yaml")
    sel = ["--topic", TOPIC, "--samples", "4", "--seed", "3", "--top-k", "4", "--min-gap", "1"]
    run("select", *bags, *sel, "--out", tmp_path / "sel_bags", check_rc=0)
    # A run made with --gt-topic serves select too (select ignores ground truth).
    run("select", *runs, *sel, "--out", tmp_path / "sel_runs", check_rc=0)
    manifest = lambda d: (tmp_path / d / "manifest.csv").read_text()  # noqa: E731
    assert manifest("sel_runs") == manifest("sel_bags") and manifest("sel_runs").count("\n") == 5
    pngs = lambda d: sorted(p.name for p in (tmp_path / d).glob("*.png"))  # noqa: E731
    assert pngs("sel_runs") == pngs("sel_bags") and len(pngs("sel_runs")) == 4


def test_runs_that_do_not_belong_together_are_refused(fleet, tmp_path):
    tmp, bags, runs, _ = fleet
    other = tmp_path / "seed4"
    subprocess.run(replay_cmd(other, bags[2], seed=4), cwd=ROOT, check=True, capture_output=True)
    r = run("merge", runs[0], other, "--out", tmp_path / "m1", check_rc=2)
    assert "cannot merge" in r.stderr and "seed: 3 vs 4" in r.stderr
    assert not (tmp_path / "m1").exists(), "nothing written"
    fixed = tmp_path / "t8"
    subprocess.run(replay_cmd(fixed, bags[2], samples=8), cwd=ROOT, check=True, capture_output=True)
    r = run("merge", runs[0], fixed, "--out", tmp_path / "m2", check_rc=2)
    assert "samples: 4 vs 8" in r.stderr
    # Another model file (here: the shipped one with one metadata entry added) does not merge; the
    # same bytes at another path do (runs on other machines name their own paths).
    import onnx

    m = onnx.load(str(MODEL))
    m.metadata_props.add(key="note", value="another model")
    other_model = tmp_path / "other.onnx"
    onnx.save(m, str(other_model))
    moved = tmp_path / "moved"
    moved.mkdir()
    for f in MODEL.parent.glob(MODEL.stem + ".*onnx"):
        (moved / f.name).write_bytes(f.read_bytes())
    for name, model in (("other_model", other_model), ("moved_model", moved / MODEL.name)):
        cmd = replay_cmd(tmp_path / name, bags[2])
        subprocess.run(cmd[:2] + ["--model", str(model)] + cmd[2:], cwd=ROOT, check=True, capture_output=True)
    r = run("merge", runs[0], tmp_path / "other_model", "--out", tmp_path / "m5", check_rc=2)
    assert "model_digest" in r.stderr
    run("merge", runs[0], runs[1], tmp_path / "moved_model", "--out", tmp_path / "m6", check_rc=0)
    r = run("merge", runs[0], runs[0], "--out", tmp_path / "m3", check_rc=2)
    assert "both replayed" in r.stderr
    r = run("merge", runs[0], bags[1], "--out", tmp_path / "m4", check_rc=2)
    assert "state.json" in r.stderr and "not a replay output directory" in r.stderr
    r = run("merge", runs[0], runs[1], "--out", runs[1], check_rc=2)
    assert "also the output directory" in r.stderr
    # calibrate on a run made with other settings says which and how to fix it.
    r = run("calibrate", runs[0], *flags(seed=9), "--out", tmp_path / "c.yaml", check_rc=2)
    assert "seed: 3 vs 9" in r.stderr and "replay the bags again" in r.stderr
