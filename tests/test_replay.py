"""Acceptance tests of `pipeline_seg replay` on tests/data/sample_bag (docs/interfaces.md §3, §4, §6, §7).

The output bag is read back with the Python `rosbags` (every message deserialised with its
declared type, typestore ROS2_JAZZY) and `mcap` libraries; `metrics.json` is recomputed here with
numpy from the masks, probability, entropy and MI maps of the output bag and the ground truth of
the input bag. Two runs with the same seed must give identical outputs except the latency fields
(`frames.csv` latency_ms and the `latency_ms` value of `~/confidence`; since those sit inside the
zstd chunks the .mcap bytes differ, so the bags are compared message by message). A bag cut
mid-file ends with exit 1 and complete outputs up to the cut; garbage ends with exit 2.

Run after `source scripts/env.sh`; the binary is `$PIPELINE_SEG_ROOT/target/release/pipeline_seg`.
T = 4 keeps the runtime modest (about 7 s per replay of 60 frames on 2 CPU cores).
"""
from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from conftest import BAG, BIN, GT, NS, ROOT, TOPIC, auroc, run
from conftest import replay as replay_bag

PER_FRAME = ["mask", "probability", "entropy", "mutual_information", "entropy_color", "overlay", "confident",
             "confidence"]
REVIEW = ["review", "review/image"]
TYPES = {
    "confident": "std_msgs/msg/Bool",
    "confidence": "diagnostic_msgs/msg/DiagnosticArray",
    "review": "diagnostic_msgs/msg/DiagnosticArray",
}
CSV_COLUMNS = ["stamp_ns", "score", "confident", "reason", "pipeline_fraction", "latency_ms", "iou", "dice",
               "pixel_error_rate", "feature_distance", "trust", "samples", "bag"]
METRIC_KEYS = {
    "pooled_iou", "mean_iou", "auroc_entropy", "auroc_mi", "ece", "ece_pipe", "aurc", "spearman_score_iou",
    "bad_flagged", "good_flagged", "frames", "frames_with_gt", "decode_errors", "samples", "seed",
    "score_method", "thresholds", "model", "stopped_early", "error",
}
TS = get_typestore(Stores.ROS2_JAZZY)
SAMPLES = "4"


def replay(out, *extra, bag=BAG, rc=0):
    """This module's replay: T = SAMPLES, seed 0."""
    return replay_bag(out, "--samples", SAMPLES, "--seed", "0", *extra, bag=bag, rc=rc)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("replay")
    a, b = base / "a", base / "b"
    replay(a, "--gt-topic", GT, "--write", "all")
    replay(b, "--gt-topic", GT, "--write", "all")
    return a, b


def read_csv(out):
    with open(out / "frames.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == CSV_COLUMNS
    return [dict(zip(CSV_COLUMNS, r)) for r in rows[1:]]


def input_frames():
    """Header (stamp ns, frame_id) of every frame and the ground-truth masks by stamp."""
    headers, gts = [], {}
    with AnyReader([BAG], default_typestore=TS) as r:
        for conn, _, raw in r.messages(connections=[c for c in r.connections if c.topic in (TOPIC, GT)]):
            msg = r.deserialize(raw, conn.msgtype)
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            if conn.topic == TOPIC:
                headers.append((stamp, msg.header.frame_id))
            else:
                gts[stamp] = np.asarray(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)[:, : msg.width]
    return headers, gts


def image_array(msg):
    if msg.encoding == "32FC1":
        dtype = np.dtype(">f4" if msg.is_bigendian else "<f4")
        return np.frombuffer(bytes(msg.data), dtype=dtype).reshape(msg.height, msg.width).astype(np.float32)
    ch = {"mono8": 1, "bgr8": 3, "rgb8": 3}[msg.encoding]
    return np.asarray(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)[:, : msg.width * ch]


def read_output(out):
    """{short topic: [(log_time, msg)]} of the output bag, every message deserialised by rosbags."""
    got = {}
    with AnyReader([out / "output"], default_typestore=TS) as r:
        types = {c.topic: c.msgtype for c in r.connections}
        for conn, t, raw in r.messages():
            msg = r.deserialize(raw, conn.msgtype)
            assert type(msg).__msgtype__ == conn.msgtype
            got.setdefault(conn.topic[len(NS) + 1 :], []).append((t, msg))
    return types, got


def values(msg):
    assert len(msg.status) == 1
    return {kv.key: kv.value for kv in msg.status[0].values}


# ---------------------------------------------------------------------------------------------


def test_output_bag_rosbags(runs):
    out = runs[0]
    headers, _ = input_frames()
    assert len(headers) == 60
    types, got = read_output(out)
    want_types = {f"{NS}/{t}": TYPES.get(t, "sensor_msgs/msg/Image") for t in PER_FRAME + REVIEW}
    assert types == want_types
    log_times = [1_700_000_000 * 10**9 + i * 200_000_000 for i in range(60)]
    for t in PER_FRAME:
        assert len(got[t]) == 60, t
        assert [lt for lt, _ in got[t]] == log_times, t
        if t != "confident":
            assert [(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec, m.header.frame_id)
                    for _, m in got[t]] == headers, t
    rows = read_csv(out)
    assert len(rows) == 60
    assert [int(r["stamp_ns"]) for r in rows] == [h[0] for h in headers]
    for row, (_, conf), (_, ok) in zip(rows, got["confidence"], got["confident"]):
        st = conf.status[0]
        assert st.name == "pipeline_seg/confidence"
        assert st.message == row["reason"]
        want_level = {"ok": 0, "stale": 2, "decode_error": 2, "inference_error": 2}.get(row["reason"], 1)
        assert st.level == want_level
        assert (st.level == 0) == (row["confident"] == "true") == ok.data
        v = values(conf)
        assert list(v) == ["score", "score_method", "threshold_high", "threshold_low", "pipeline_fraction",
                           "pipeline_visible", "samples", "latency_ms", "feature_distance", "trust"]
        assert v["score"] == row["score"] and v["pipeline_fraction"] == row["pipeline_fraction"]
        assert v["feature_distance"] == row["feature_distance"] and v["trust"] == row["trust"]
        assert v["samples"] == SAMPLES
    for (_, m) in got["mask"]:
        assert m.encoding == "mono8" and (m.width, m.height) == (640, 480)
        assert set(np.unique(image_array(m))) <= {0, 255}
    # Reviews: on frames that turned uncertain / image_quality, at most one per 10 s of bag time.
    reasons = {int(r["stamp_ns"]): r["reason"] for r in rows}
    review_stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in got["review"]]
    assert review_stamps, "the sample bag has uncertain frames"
    assert all(reasons[s] in ("uncertain", "image_quality") for s in review_stamps)
    assert all(b - a >= 10 * 10**9 for a, b in zip(review_stamps, review_stamps[1:]))
    first = next(int(r["stamp_ns"]) for r in rows if r["reason"] in ("uncertain", "image_quality"))
    assert review_stamps[0] == first
    image_stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in got["review/image"]]
    assert image_stamps == review_stamps
    for _, m in got["review"]:
        assert m.status[0].name == "pipeline_seg/review" and m.status[0].level == 1
        assert list(values(m)) == ["score", "bundle"]
    # The latched QoS of ~/confident.
    meta = (out / "output" / "metadata.yaml").read_text()
    assert "transient_local" in meta


def test_output_bag_mcap(runs):
    out = runs[0]
    files = list((out / "output").glob("*.mcap"))
    assert len(files) == 1
    counts = {}
    with open(files[0], "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert reader.get_header().profile == "ros2"
        for schema, channel, message in reader.iter_messages():
            assert schema.encoding == "ros2msg" and channel.message_encoding == "cdr"
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
    for t in PER_FRAME:
        assert counts[f"{NS}/{t}"] == 60
    assert summary.statistics.message_count == sum(counts.values())


def hist_bins(v):
    return np.clip((v.astype(np.float32) * np.float32(1000)).astype(np.int64), 0, 999)


def ranks(v):
    v = np.asarray(v, dtype=np.float64)
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    r[order] = np.arange(len(v))
    for val in np.unique(v):
        sel = v == val
        r[sel] = r[sel].mean()
    return r


def test_metrics_match_numpy(runs):
    out = runs[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    _, gts = input_frames()
    _, got = read_output(out)
    rows = read_csv(out)
    inter_sum = union_sum = 0
    ious = []
    h_err, h_ok, m_err, m_ok = (np.zeros(1000, np.int64) for _ in range(4))
    ece_n, ece_c, ece_ok = np.zeros((2, 15)), np.zeros((2, 15)), np.zeros((2, 15))
    for (_, mask), (_, prob), (_, ent), (_, mi), row in zip(got["mask"], got["probability"], got["entropy"],
                                                              got["mutual_information"], rows):
        stamp = mask.header.stamp.sec * 10**9 + mask.header.stamp.nanosec
        gt = gts[stamp] > 127
        pred = image_array(mask) > 127
        p = image_array(prob)
        assert np.array_equal(pred, p > 0.5)
        inter, union = int((pred & gt).sum()), int((pred | gt).sum())
        iou = 1.0 if union == 0 else inter / union
        assert abs(float(row["iou"]) - iou) < 1e-9
        ious.append(iou)
        inter_sum += inter
        union_sum += union
        wrong = pred != gt
        e, m = image_array(ent), image_array(mi)
        h_err += np.bincount(hist_bins(e[wrong]), minlength=1000)
        h_ok += np.bincount(hist_bins(e[~wrong]), minlength=1000)
        m_err += np.bincount(hist_bins(m[wrong]), minlength=1000)
        m_ok += np.bincount(hist_bins(m[~wrong]), minlength=1000)
        conf = np.maximum(p, 1 - p)
        b = np.clip(((conf - np.float32(0.5)) / np.float32(0.5) * np.float32(15)).astype(np.int64), 0, 14)
        for k, sel in enumerate([np.ones_like(gt), pred | gt]):
            ece_n[k] += np.bincount(b[sel], minlength=15)
            ece_c[k] += np.bincount(b[sel], weights=conf[sel].astype(np.float64), minlength=15)
            ece_ok[k] += np.bincount(b[sel], weights=(~wrong[sel]).astype(np.float64), minlength=15)
    assert metrics["frames"] == metrics["frames_with_gt"] == 60 and metrics["decode_errors"] == 0
    assert abs(metrics["pooled_iou"] - inter_sum / union_sum) < 1e-6
    assert abs(metrics["mean_iou"] - float(np.mean(ious))) < 1e-6
    assert abs(metrics["auroc_entropy"] - auroc(h_err, h_ok)) < 1e-3
    assert abs(metrics["auroc_mi"] - auroc(m_err, m_ok)) < 1e-3
    for k, name in enumerate(["ece", "ece_pipe"]):
        n = ece_n[k]
        want = float((np.abs(ece_ok[k] - ece_c[k])[n > 0]).sum() / n.sum())
        assert abs(metrics[name] - want) < 1e-6, name
    tot = h_err + h_ok
    risk = np.cumsum(h_err) / np.maximum(np.cumsum(tot), 1)
    assert abs(metrics["aurc"] - float((risk * tot).sum() / tot.sum())) < 1e-6
    scores = [float(r["score"]) for r in rows]
    rs, ri = ranks(scores), ranks(ious)
    assert abs(metrics["spearman_score_iou"] - float(np.corrcoef(rs, ri)[0, 1])) < 1e-9
    # Gate (docs/interfaces.md §7): bad = IoU < 0.5 or GT has pipeline and the mask none.
    bad, good = [], []
    for (_, mask), row, iou in zip(got["mask"], rows, ious):
        stamp = mask.header.stamp.sec * 10**9 + mask.header.stamp.nanosec
        is_bad = iou < 0.5 or ((gts[stamp] > 127).any() and not (image_array(mask) > 127).any())
        (bad if is_bad else good).append(row["confident"] == "false")
    assert bad and good
    assert abs(metrics["bad_flagged"] - float(np.mean(bad))) < 1e-12
    assert abs(metrics["good_flagged"] - float(np.mean(good))) < 1e-12
    assert metrics["samples"] == 4 and metrics["seed"] == 0 and metrics["stopped_early"] is False
    assert metrics["error"] is None


def mcap_messages(out):
    files = list((out / "output").glob("*.mcap"))
    with open(files[0], "rb") as f:
        return [(c.topic, m.log_time, m.publish_time, m.data) for _, c, m in make_reader(f).iter_messages()]


def test_two_runs_identical(runs):
    a, b = runs
    strip = lambda rows: [{k: v for k, v in r.items() if k != "latency_ms"} for r in rows]  # noqa: E731
    assert strip(read_csv(a)) == strip(read_csv(b))
    assert (a / "metrics.json").read_text() == (b / "metrics.json").read_text()
    assert (a / "output" / "metadata.yaml").read_text() == (b / "output" / "metadata.yaml").read_text()
    ma, mb = mcap_messages(a), mcap_messages(b)
    assert len(ma) == len(mb)
    differ = 0
    for x, y in zip(ma, mb):
        assert x[:3] == y[:3]
        if x[3] != y[3]:
            assert x[0] == f"{NS}/confidence", x[0]
            differ += 1
    # Only the latency_ms value of ~/confidence may differ.
    _, ga = read_output(a)
    _, gb = read_output(b)
    for (_, ca), (_, cb) in zip(ga["confidence"], gb["confidence"]):
        va, vb = values(ca), values(cb)
        va.pop("latency_ms"), vb.pop("latency_ms")
        assert va == vb and ca.status[0].level == cb.status[0].level
        assert (ca.header.stamp.sec, ca.header.stamp.nanosec, ca.header.frame_id) == (
            cb.header.stamp.sec, cb.header.stamp.nanosec, cb.header.frame_id)
    assert differ > 0  # the latency values differ, all else is the same


def test_truncated_bag(tmp_path):
    bag = tmp_path / "cut"
    bag.mkdir()
    shutil.copy(BAG / "metadata.yaml", bag / "metadata.yaml")
    data = (BAG / "sample_bag.mcap").read_bytes()
    (bag / "sample_bag.mcap").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    proc = replay(out, "--gt-topic", GT, "--write", "mask,confidence,/pipeline_seg_node/confident", bag=bag, rc=1)
    assert "sample_bag.mcap" in proc.stderr and "truncated" in proc.stderr
    assert TOPIC in proc.stderr
    rows = read_csv(out)
    assert 0 < len(rows) < 60
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stopped_early"] is True and "sample_bag.mcap" in metrics["error"]
    assert metrics["frames"] == len(rows)
    types, got = read_output(out)
    assert set(types) == {f"{NS}/mask", f"{NS}/confidence", f"{NS}/confident"}
    for t in ("mask", "confidence", "confident"):
        assert len(got[t]) == len(rows)
    assert [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in got["confidence"]] == [
        int(r["stamp_ns"]) for r in rows
    ]
    assert len(mcap_messages(out)) == 3 * len(rows)


def test_garbage_and_bad_arguments(tmp_path):
    garbage = tmp_path / "garbage.mcap"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    proc = replay(tmp_path / "o1", bag=garbage, rc=2)
    assert "garbage.mcap" in proc.stderr
    # Cut inside the first chunk: nothing could be read.
    cut = tmp_path / "cut.mcap"
    cut.write_bytes((BAG / "sample_bag.mcap").read_bytes()[:3000])
    replay(tmp_path / "o2", bag=cut, rc=2)
    proc = replay(tmp_path / "o3", "--write", "mask,nonsense", rc=2)
    assert "nonsense" in proc.stderr
    proc = run("replay", BAG, "--topic", "/no/such", "--out", tmp_path / "o4")
    assert proc.returncode == 2 and "/no/such" in proc.stderr and TOPIC in proc.stderr


@pytest.fixture(scope="module")
def fixture_bags(tmp_path_factory):
    out = tmp_path_factory.mktemp("bags")
    subprocess.run(["python3", str(ROOT / "tests" / "make_bags.py"), str(out)], check=True, capture_output=True,
                   timeout=120)
    return out


@pytest.mark.parametrize(
    "bag,topic",
    [("sqlite", "/cam/bgr8"), ("sqlite_humble", "/cam/mono8"), ("mcap_zstd", "/cam/rgb8"),
     ("split", "/cam/compressed")],
)
def test_storages_and_encodings(fixture_bags, tmp_path, bag, topic):
    """Both storages, raw Image (bgr8, mono8 with row padding, rgb8) and CompressedImage."""
    src = fixture_bags / bag
    proc = run("replay", src, "--topic", topic, "--samples", "2", "--write", "all", "--out", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    inputs = []
    with AnyReader([src], default_typestore=TS) as r:
        for conn, t, raw in r.messages(connections=[c for c in r.connections if c.topic == topic]):
            inputs.append((t, r.deserialize(raw, conn.msgtype)))
    assert len(inputs) == 10
    _, got = read_output(tmp_path / "o")
    for name in PER_FRAME:
        assert [t for t, _ in got[name]] == [t for t, _ in inputs], name
    for (_, m), (_, i) in zip(got["mask"], inputs):
        assert (m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id) == (
            i.header.stamp.sec, i.header.stamp.nanosec, i.header.frame_id)
        assert (m.width, m.height) == (32, 24)
    rows = read_csv(tmp_path / "o")
    assert len(rows) == 10 and all(r["iou"] == "" for r in rows)
    # ~/review/image is the input message itself for raw input (as the node publishes it).
    stamps = {(i.header.stamp.sec, i.header.stamp.nanosec): i for _, i in inputs}
    for _, m in got.get("review/image", []):
        i = stamps[(m.header.stamp.sec, m.header.stamp.nanosec)]
        if topic == "/cam/compressed":
            assert m.encoding == "rgb8" and (m.width, m.height) == (32, 24)
        else:
            assert (m.encoding, m.step, bytes(m.data)) == (i.encoding, i.step, bytes(i.data))


def test_bad_frames_are_listed_and_replay_goes_on(tmp_path):
    """A frame that is not an image and a message with a wrong CDR length: decode_error for the
    gate, listed on stderr, the other frames processed, exit 1."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    jpeg = (ROOT / "tests" / "data" / "frames" / "val" / "image" / "00000.jpg").read_bytes()
    Header, Time = TS.types["std_msgs/msg/Header"], TS.types["builtin_interfaces/msg/Time"]
    Compressed = TS.types["sensor_msgs/msg/CompressedImage"]
    bag = tmp_path / "bad"
    t0 = 1_700_000_000 * 10**9
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection("/cam", Compressed.__msgtype__, typestore=TS)
        for k in range(5):
            t = t0 + k * 10**8
            hdr = Header(stamp=Time(sec=t // 10**9, nanosec=t % 10**9), frame_id="cam")
            data = b"not a jpeg at all" if k == 2 else jpeg
            msg = Compressed(header=hdr, format="jpeg", data=np.frombuffer(data, np.uint8))
            raw = TS.serialize_cdr(msg, Compressed.__msgtype__)
            if k == 3:
                raw = bytes(raw[:40])  # the data length says more than there is
            w.write(conn, t, bytes(raw))
    out = tmp_path / "o"
    proc = run("replay", bag, "--topic", "/cam", "--samples", "2", "--out", out)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("failed:") == 2 and "/cam" in proc.stderr and ".mcap" in proc.stderr
    rows = read_csv(out)
    assert [r["reason"] for r in rows][2:4] == ["decode_error", "decode_error"]
    assert [int(r["stamp_ns"]) for r in rows] == [t0 + k * 10**8 for k in range(5)]
    assert rows[2]["score"] == "" and rows[3]["confident"] == "false"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frames"] == 5 and metrics["decode_errors"] == 2 and metrics["stopped_early"] is False
    _, got = read_output(out)
    assert len(got["confidence"]) == 5 and len(got["mask"]) == 3
    assert [m.status[0].level for _, m in got["confidence"]][2:4] == [2, 2]


def _start_replay(out, *extra):
    return subprocess.Popen([str(BIN), "replay", str(BAG), "--topic", TOPIC, "--samples", SAMPLES, "--seed", "0",
                             "--min-samples", SAMPLES, *extra, "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_rows(out, n, proc, timeout=120):
    """Waits until frames.csv holds `n` frame rows (it is written through, row by row)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"replay ended early: {proc.communicate()[1]}"
        if (out / "frames.csv").exists() and len((out / "frames.csv").read_text().splitlines()) > n:
            return
        time.sleep(0.05)
    pytest.fail(f"fewer than {n} rows after {timeout} s")


def _stream_decisions(mcap_file):
    """Header stamps of the ~/confidence messages a linear reader gets from a file that may be cut."""
    from mcap.records import Channel, Message
    from mcap.stream_reader import StreamReader
    channels, stamps = {}, []
    try:
        for rec in StreamReader(open(mcap_file, "rb")).records:
            if isinstance(rec, Channel):
                channels[rec.id] = rec.topic
            elif isinstance(rec, Message) and channels[rec.channel_id] == f"{NS}/confidence":
                msg = TS.deserialize_cdr(rec.data, "diagnostic_msgs/msg/DiagnosticArray")
                stamps.append(msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)
    except Exception:  # noqa: BLE001 -- the cut: a partial record ends the stream
        pass
    return stamps


def test_sigkill_keeps_a_row_for_every_decision_and_reindex_restores_the_bag(tmp_path):
    """kill -9 mid-run: frames.csv (written through) holds every decision the bag holds; the bag
    is readable up to its last complete chunk, and `pipeline_seg reindex` makes it whole for
    rosbags and mcap's indexed reader."""
    out = tmp_path / "killed"
    # All topics: ~4 MB a frame, so chunks reach the file every frame or so.
    proc = _start_replay(out, "--gt-topic", GT, "--write", "all")
    _wait_for_rows(out, 12, proc)
    proc.kill()
    proc.wait()
    bag = out / "output"
    assert not (bag / "metadata.yaml").exists()
    (mcap_file,) = bag.glob("*.mcap")
    in_bag = _stream_decisions(mcap_file)
    rows = read_csv(out)
    assert len(in_bag) >= 1, "at least one chunk reached the file"
    assert set(in_bag) <= {int(r["stamp_ns"]) for r in rows}, "a decision in the bag without its frames.csv row"
    assert len(rows) < 60
    reindex = run("reindex", bag, check_rc=0)
    assert "metadata.yaml" in reindex.stderr
    _, got = read_output(out)
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in got["confidence"]]
    assert stamps == in_bag
    assert len(got["mask"]) == len(got["confident"]) == len(in_bag)
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["message_count"] == sum(len(v) for v in got.values())
    with open(mcap_file, "rb") as f:
        assert sum(1 for _ in make_reader(f).iter_messages()) == meta["message_count"]
    # A second reindex leaves the whole file as it is.
    before = mcap_file.read_bytes()
    assert "left as it was" in run("reindex", bag, check_rc=0).stderr
    assert mcap_file.read_bytes() == before


def test_sigint_finishes_every_output_for_the_frames_processed(tmp_path):
    out = tmp_path / "interrupted"
    proc = _start_replay(out, "--gt-topic", GT)
    _wait_for_rows(out, 5, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted after" in err
    rows = read_csv(out)
    assert 5 <= len(rows) < 60
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frames"] == len(rows) and metrics["stopped_early"] is True
    assert (out / "report.html").stat().st_size > 0
    _, got = read_output(out)  # metadata.yaml and the footer are there: rosbags reads it as is
    assert len(got["confidence"]) == len(rows)


def test_default_output_is_the_campaign_set(tmp_path):
    out = tmp_path / "default"
    replay(out, "--gt-topic", GT)
    types, got = read_output(out)
    assert set(types) == {f"{NS}/{t}" for t in ("confident", "confidence", "mask", "entropy_color", "review",
                                                  "review/image")}
    frames = len(read_csv(out))
    per_frame = sum(f.stat().st_size for f in (out / "output").glob("*.mcap")) / frames
    assert per_frame < 1.5e6, f"{per_frame:.0f} bytes per 640x480 frame"
