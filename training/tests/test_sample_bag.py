"""tests/data/sample_bag (made by training/make_sample_bag.py): a valid rosbag2 MCAP bag for two
independent readers, with the documented topics, stamps and frame layout, and reproducible.

Full regeneration takes ~30 s (60 renders), so by default the reproducibility check rewrites the
bag from its own messages (byte-identical files) and re-renders one frame of each kind; set
PIPELINE_SEG_SLOW_TESTS=1 to regenerate everything from scenegen and compare bytes.
"""
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("rosbags")
pytest.importorskip("mcap")
from mcap.reader import make_reader  # noqa: E402
from rosbags.rosbag2 import Reader  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "training"))
import make_sample_bag as msb  # noqa: E402
import scenegen  # noqa: E402

BAG = ROOT / "tests" / "data" / "sample_bag"
N = 60
TS = get_typestore(Stores.ROS2_JAZZY)


def bag_files(d: Path):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def messages():
    """{topic: [(log_time, msg)]} via rosbags, in log-time order."""
    out = {}
    with Reader(BAG) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, TS.deserialize_cdr(raw, conn.msgtype)))
    return out


def test_files_and_size():
    files = bag_files(BAG)
    assert set(files) == {"metadata.yaml", "sample_bag.mcap", "README.md"}
    assert sum(len(b) for b in files.values()) <= 5 * 1024 * 1024


def test_layout_is_documented():
    rows = msb.layout()
    assert len(rows) == N and [r[0] for r in rows] == list(range(N))
    readme = (BAG / "README.md").read_text()
    for label, split, kind, indices in msb.SEGMENTS:
        assert f"| {label} | {split} ({kind}) | {' '.join(map(str, indices))} |" in readme
    labels = [r[1] for r in rows]
    assert labels[:15] == ["clear"] * 15 and labels[15:30] == ["turbid"] * 15
    assert {"ood_plume", "ood_wall", "ood_water", "clear_empty"} <= set(labels)


def test_rosbags_reader_topics_and_counts():
    meta = (BAG / "metadata.yaml").read_text()
    assert f"\n  version: {msb.METADATA_VERSION}\n" in meta  # rosbags' Reader does not expose it
    assert "\n  storage_identifier: mcap\n" in meta
    with Reader(BAG) as reader:
        conns = {c.topic: c for c in reader.connections}
        assert set(conns) == {msb.IMAGE_TOPIC, msb.MASK_TOPIC}
        assert conns[msb.IMAGE_TOPIC].msgtype == "sensor_msgs/msg/CompressedImage"
        assert conns[msb.MASK_TOPIC].msgtype == "sensor_msgs/msg/Image"
        assert all(c.msgcount == N for c in conns.values())
        assert reader.message_count == 2 * N
        assert reader.start_time == msb.EPOCH_NS
        assert reader.duration == (N - 1) * msb.PERIOD_NS + 1  # rosbags: end is exclusive


def test_stamps_frames_and_masks(messages):
    images, masks = messages[msb.IMAGE_TOPIC], messages[msb.MASK_TOPIC]
    assert len(images) == len(masks) == N
    stamp = lambda m: m.header.stamp.sec * 10**9 + m.header.stamp.nanosec  # noqa: E731
    want = [msb.EPOCH_NS + i * msb.PERIOD_NS for i in range(N)]
    assert [t for t, _ in images] == want and [stamp(m) for _, m in images] == want
    assert [t for t, _ in masks] == want and [stamp(m) for _, m in masks] == want
    rows = msb.layout()
    for (_, img), (_, mask), row in zip(images, masks, rows):
        assert img.header.frame_id == mask.header.frame_id == "camera"
        assert img.format == "jpeg"
        bgr = cv2.imdecode(img.data, cv2.IMREAD_COLOR)
        assert bgr is not None and bgr.shape == (480, 640, 3)
        assert (mask.encoding, mask.height, mask.width, mask.step, mask.is_bigendian) == \
            ("mono8", 480, 640, 640, 0)
        m = mask.data.reshape(480, 640)
        assert set(np.unique(m)) <= {0, 255}
        # Ground truth follows the kind: a pipe in pipe frames, none in OOD / empty seabed.
        assert (m.any()) == (row[3] == "pipe"), row


def test_mcap_reader_agrees():
    """The `mcap` package (an independent MCAP reader) sees the same bag."""
    by_rosbags = {}
    with Reader(BAG) as reader:
        for conn, t, raw in reader.messages():
            by_rosbags[(conn.topic, t)] = bytes(raw)
    with open(BAG / "sample_bag.mcap", "rb") as f:
        reader = make_reader(f, validate_crcs=True)
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        assert {s.name: s.encoding for s in summary.schemas.values()} == {
            "sensor_msgs/msg/CompressedImage": "ros2msg", "sensor_msgs/msg/Image": "ros2msg"}
        chans = {c.topic: c for c in summary.channels.values()}
        assert set(chans) == {msb.IMAGE_TOPIC, msb.MASK_TOPIC}
        assert all(c.message_encoding == "cdr" for c in chans.values())
        assert summary.schemas[chans[msb.MASK_TOPIC].schema_id].name == "sensor_msgs/msg/Image"
        st = summary.statistics
        assert st.message_count == 2 * N
        assert st.channel_message_counts == {c.id: N for c in chans.values()}
        assert (st.message_start_time, st.message_end_time) == \
            (msb.EPOCH_NS, msb.EPOCH_NS + (N - 1) * msb.PERIOD_NS)
        assert {ci.compression for ci in summary.chunk_indexes} == {"zstd"}
        assert "rosbag2" in {m.name for m in reader.iter_metadata()}
        by_mcap = {}
        for _, channel, msg in reader.iter_messages(log_time_order=True):
            assert msg.publish_time == msg.log_time
            by_mcap[(channel.topic, msg.log_time)] = msg.data
    assert by_mcap == by_rosbags


def test_rewrite_from_messages_is_byte_identical(messages, tmp_path):
    """The writer is deterministic: the same frames give the same files, byte for byte."""
    frames = [(bytes(img.data), mask.data.reshape(mask.height, mask.width))
              for (_, img), (_, mask) in zip(messages[msb.IMAGE_TOPIC], messages[msb.MASK_TOPIC])]
    out = tmp_path / "sample_bag"  # the same name: rosbags names the MCAP file after the dir
    msb.make(out, frames)
    assert bag_files(out) == bag_files(BAG)


def test_frames_match_scenegen(messages):
    """One frame of each kind re-rendered from scenegen: the same pixels (to JPEG rounding) and mask.

    Not the same JPEG bytes: numpy's vectorised exp/log differ in the last bit between CPUs
    (seen: AMD EPYC vs Intel Xeon, both AVX-512), which moves a few pixels by one level and the
    JPEG bytes with them. The mask is exact."""
    rows = msb.layout()
    firsts = {}
    for row in rows:
        firsts.setdefault(row[1], row)
    for frame, label, split, kind, idx in firsts.values():
        _, mask, meta, jpeg = scenegen.render(msb.SEED, split, idx)
        assert meta["kind"] == kind
        got = cv2.imdecode(np.frombuffer(bytes(messages[msb.IMAGE_TOPIC][frame][1].data), np.uint8), cv2.IMREAD_COLOR)
        want = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        diff = np.abs(got.astype(int) - want.astype(int))
        assert diff.mean() < 0.05 and diff.max() <= 8, (frame, label, diff.mean(), diff.max())
        assert np.array_equal(messages[msb.MASK_TOPIC][frame][1].data.reshape(480, 640), mask)


@pytest.mark.skipif(os.environ.get("PIPELINE_SEG_SLOW_TESTS") != "1",
                    reason="full regeneration takes ~30 s; set PIPELINE_SEG_SLOW_TESTS=1")
def test_full_regeneration_is_byte_identical(tmp_path):
    out = tmp_path / "sample_bag"
    msb.make(out)
    assert bag_files(out) == bag_files(BAG)
