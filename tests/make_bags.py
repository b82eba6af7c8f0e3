#!/usr/bin/env python3
"""Writes the rosbag2 fixtures of tests/bag_read.rs with `rosbags` (0.11.9) into OUT_DIR.

    python3 tests/make_bags.py OUT_DIR          # the fixture bags below
    python3 tests/make_bags.py OUT_DIR --big N  # big_N_mcap/ and big_N_sqlite/: N 320x240 rgb8 frames

Each fixture bag holds FRAMES frames on each of these topics (log time = stamp + 1 ms; topic j
of frame k stamped T0 + k * 100 ms + j * 10 ms, frame_id "cam"), written in log-time order:
  /cam/bgr8        sensor_msgs/msg/Image bgr8, W x H, RGB = pattern(x, y, k, c)
  /cam/rgb8        sensor_msgs/msg/Image rgb8, W x H, RGB = pattern(x, y, k, c)
  /cam/mono8       sensor_msgs/msg/Image mono8, W x H, step W + 3 (padding 0xAB), value = pattern(x, y, k, 0)
  /cam/compressed  sensor_msgs/msg/CompressedImage jpeg (cv2.imencode, quality 95, 4:4:4) of block(x, y, k, c)
  /gt/mask         sensor_msgs/msg/Image mono8, W x H, 255 where (x + 2k) % 8 < 4, else 0
Bags: mcap/ (Jazzy metadata v9), mcap_zstd/ (zstd chunks), sqlite/ (schema 4, metadata v9),
sqlite_humble/ (metadata v8, converted to Humble's schema 3: no type_description_hash, no
message_definitions), split/ (two MCAP files, frames 0-4 and 5-9, listed in metadata.yaml),
nometa/ (mcap/'s file alone, no metadata.yaml), and sqlite_many/ (MANY tiny mono8 messages on
/many, written in shuffled order with 3 messages per timestamp: message s is stamped and logged
at T0 + (s // 3) ms, frame_id "s<s>").
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from ruamel.yaml import YAML

W, H, FRAMES, MANY = 32, 24, 10, 600
T0 = 1_700_000_000 * 10**9
TOPICS = ["/cam/bgr8", "/cam/rgb8", "/cam/mono8", "/cam/compressed", "/gt/mask"]

TS = get_typestore(Stores.ROS2_JAZZY)
Time = TS.types["builtin_interfaces/msg/Time"]
Header = TS.types["std_msgs/msg/Header"]
Image = TS.types["sensor_msgs/msg/Image"]
CompressedImage = TS.types["sensor_msgs/msg/CompressedImage"]


def pattern(k: int, w: int = W, h: int = H) -> np.ndarray:
    """RGB [h, w, 3] with value (x * 7 + y * 13 + k * 5 + c * 50) % 256."""
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    return ((x * 7 + y * 13 + k * 5 + c * 50) % 256).astype(np.uint8)


def block(k: int) -> np.ndarray:
    """RGB [H, W, 3], constant over 8x8 blocks: ((x // 8) * 40 + (y // 8) * 60 + k * 10 + c * 70) % 256."""
    y, x, c = np.meshgrid(np.arange(H), np.arange(W), np.arange(3), indexing="ij")
    return (((x // 8) * 40 + (y // 8) * 60 + k * 10 + c * 70) % 256).astype(np.uint8)


def header(ns: int, frame_id: str = "cam"):
    return Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id=frame_id)


def image(ns: int, encoding: str, pixels: np.ndarray, step: int | None = None):
    h, w = pixels.shape[:2]
    row = pixels.reshape(h, -1)
    step = step or row.shape[1]
    data = np.full((h, step), 0xAB, dtype=np.uint8)
    data[:, : row.shape[1]] = row
    return Image(header=header(ns), height=h, width=w, encoding=encoding, is_bigendian=0, step=step,
                 data=data.reshape(-1))


def frame_messages(k: int):
    """(topic, type, message) of frame k, in topic order."""
    stamp = lambda j: T0 + k * 100_000_000 + j * 10_000_000  # noqa: E731
    rgb = pattern(k)
    # 4:4:4 (no chroma subsampling): the 8x8 blocks decode to within 1 of their colour.
    params = [cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, jpeg = cv2.imencode(".jpg", block(k)[:, :, ::-1], params)
    assert ok
    x = np.arange(W)[None, :].repeat(H, 0)
    mask = np.where((x + 2 * k) % 8 < 4, 255, 0).astype(np.uint8)
    return [
        ("/cam/bgr8", "sensor_msgs/msg/Image", image(stamp(0), "bgr8", rgb[:, :, ::-1])),
        ("/cam/rgb8", "sensor_msgs/msg/Image", image(stamp(1), "rgb8", rgb)),
        ("/cam/mono8", "sensor_msgs/msg/Image", image(stamp(2), "mono8", rgb[:, :, 0], step=W + 3)),
        ("/cam/compressed", "sensor_msgs/msg/CompressedImage",
         CompressedImage(header=header(stamp(3)), format="jpeg", data=jpeg.reshape(-1))),
        ("/gt/mask", "sensor_msgs/msg/Image", image(stamp(4), "mono8", mask)),
    ]


def write_bag(path: Path, storage: StoragePlugin, frames: range, version: int = 9, zstd: bool = False) -> None:
    writer = Writer(path, version=version, storage_plugin=storage)
    if zstd:
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    with writer:
        conns = {}
        for k in frames:
            for topic, typ, msg in frame_messages(k):
                if topic not in conns:
                    conns[topic] = writer.add_connection(topic, typ, typestore=TS)
                log_time = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec + 1_000_000
                writer.write(conns[topic], log_time, TS.serialize_cdr(msg, typ))


def to_humble_schema(db3: Path) -> None:
    """Rewrites a rosbags schema-4 .db3 as Humble's schema 3."""
    con = sqlite3.connect(db3)
    con.executescript(
        "ALTER TABLE topics DROP COLUMN type_description_hash;"
        "DROP TABLE message_definitions;"
        "UPDATE schema SET schema_version = 3, ros_distro = 'humble';"
    )
    con.commit()
    con.close()


def write_split(out: Path) -> None:
    """split/: frames 0-4 in split_0.mcap, 5-9 in split_1.mcap, metadata.yaml listing both."""
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        write_bag(a, StoragePlugin.MCAP, range(0, FRAMES // 2))
        write_bag(b, StoragePlugin.MCAP, range(FRAMES // 2, FRAMES))
        out.mkdir()
        shutil.copy(a / "a.mcap", out / "split_0.mcap")
        shutil.copy(b / "b.mcap", out / "split_1.mcap")
        yaml = YAML(typ="safe")
        meta = yaml.load((a / "metadata.yaml").read_text())
        meta["rosbag2_bagfile_information"]["relative_file_paths"] = ["split_0.mcap", "split_1.mcap"]
        with (out / "metadata.yaml").open("w") as f:
            yaml.dump(meta, f)


def write_many(path: Path) -> None:
    """sqlite_many/: MANY messages, 3 per timestamp, inserted in shuffled order."""
    order = np.random.default_rng(7).permutation(MANY)
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        conn = writer.add_connection("/many", "sensor_msgs/msg/Image", typestore=TS)
        for s in order:
            ns = T0 + int(s // 3) * 1_000_000
            msg = image(ns, "mono8", np.full((2, 2), s % 256, dtype=np.uint8))
            msg.header.frame_id = f"s{s}"
            writer.write(conn, ns, TS.serialize_cdr(msg, "sensor_msgs/msg/Image"))


def write_big(out: Path, n: int) -> None:
    """big_N_mcap/ and big_N_sqlite/: n 320x240 rgb8 frames on /cam/big, 100 ms apart."""
    for storage, name in [(StoragePlugin.MCAP, "mcap"), (StoragePlugin.SQLITE3, "sqlite")]:
        with Writer(out / f"big_{n}_{name}", version=9, storage_plugin=storage) as writer:
            conn = writer.add_connection("/cam/big", "sensor_msgs/msg/Image", typestore=TS)
            base = pattern(0, 320, 240)
            for k in range(n):
                ns = T0 + k * 100_000_000
                msg = image(ns, "rgb8", base + np.uint8(k % 256))
                writer.write(conn, ns, TS.serialize_cdr(msg, "sensor_msgs/msg/Image"))


def cut_bag(bag: Path, topic: str, parts: list[tuple[int, int]], outs: list[Path]) -> list[Path]:
    """Bag `outs[i]` (rosbag2 MCAP) holds every message of `bag` logged at the log times of
    `topic`'s frames parts[i] = [a, b): a long bag cut into shorter ones, as a campaign has them
    (tests/test_merge.py, scripts/bench_fleet.py)."""
    from rosbags.highlevel import AnyReader

    with AnyReader([bag]) as reader:
        msgs = [(c.topic, c.msgtype, t, raw) for c, t, raw in reader.messages()]
    stamps = sorted({t for name, _, t, _ in msgs if name == topic})
    for (a, b), out in zip(parts, outs):
        keep = set(stamps[a:b])
        with Writer(out, version=9, storage_plugin=StoragePlugin.MCAP) as w:
            conns = {}
            for name, typ, t, raw in msgs:
                if t in keep:
                    if name not in conns:
                        conns[name] = w.add_connection(name, typ, typestore=TS)
                    w.write(conns[name], t, raw)
    return outs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--big", type=int, help="write only big_N_mcap/ and big_N_sqlite/ with N frames")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.big:
        write_big(args.out, args.big)
        return
    frames = range(FRAMES)
    write_bag(args.out / "mcap", StoragePlugin.MCAP, frames)
    write_bag(args.out / "mcap_zstd", StoragePlugin.MCAP, frames, zstd=True)
    write_bag(args.out / "sqlite", StoragePlugin.SQLITE3, frames)
    write_bag(args.out / "sqlite_humble", StoragePlugin.SQLITE3, frames, version=8)
    to_humble_schema(args.out / "sqlite_humble" / "sqlite_humble.db3")
    write_split(args.out / "split")
    (args.out / "nometa").mkdir()
    shutil.copy(args.out / "mcap" / "mcap.mcap", args.out / "nometa" / "rec_0.mcap")
    write_many(args.out / "sqlite_many")


if __name__ == "__main__":
    main()
