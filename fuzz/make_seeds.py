#!/usr/bin/env python3
"""Writes the in-tree seed corpora of the fuzz targets (fuzz/seeds/<target>/), a few small valid
inputs per target in the byte layout its harness expects (fuzz/harness.rs, fuzz/labels.py).

    python3 fuzz/make_seeds.py      # after `source scripts/env.sh` (the venv's rosbags and cv2)

Deterministic: re-running it rewrites the same bytes, except the SQLite bags, whose files vary
with the writer. The fuzzers start from these and keep what they find in fuzz/corpus/ (ignored).
"""
from __future__ import annotations

import shutil
import sqlite3
import struct
import tempfile
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

ROOT = Path(__file__).resolve().parent
SEEDS = ROOT / "seeds"
TS = get_typestore(Stores.ROS2_JAZZY)
T = TS.types
ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "mono16", "16UC1", "bayer_rggb8", "bayer_bggr8",
             "bayer_gbrg8", "bayer_grbg8", "yuv422", "uyvy", "UYVY", "yuv422_yuy2", "yuyv", "YUYV"]  # harness order
BPP = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono16": 2, "16UC1": 2, "yuv422": 2, "uyvy": 2, "UYVY": 2,
       "yuv422_yuy2": 2, "yuyv": 2, "YUYV": 2}


def put(target: str, name: str, data: bytes) -> None:
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def pattern(w: int, h: int) -> np.ndarray:
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    return ((x * 37 + y * 71 + c * 90) % 256).astype(np.uint8)


def jpeg(w=8, h=8, *extra) -> bytes:
    ok, b = cv2.imencode(".jpg", pattern(w, h), [cv2.IMWRITE_JPEG_QUALITY, 75, *extra])
    assert ok
    return b.tobytes()


def png(img: np.ndarray, *extra) -> bytes:
    ok, b = cv2.imencode(".png", img, list(extra))
    assert ok
    return b.tobytes()


def raw_seeds() -> None:
    # [encoding][flags][width u16][height u16][step u32][pixels]; flags bit 1: step from the length.
    for i, enc in enumerate(ENCODINGS):
        w, h = 4, 2
        bpp = BPP.get(enc, 1)
        pixels = bytes((j * 29) % 256 for j in range(w * h * bpp))
        put("raw_image", f"{i:02}_{enc}", struct.pack("<BBHHI", i, 2, w, h, 0) + pixels)
    # Padded rows (step 7 > 4 * 1), and big-endian mono16 with an explicit step.
    put("raw_image", "mono8_padded", struct.pack("<BBHHI", 4, 0, 4, 2, 7) + bytes(range(14)))
    put("raw_image", "mono16_be", struct.pack("<BBHHI", 6, 1, 2, 2, 4) + bytes(range(200, 208)))


def compressed_seeds() -> None:
    # [format index][bytes]: 0 jpeg, 1 png.
    put("compressed_image", "jpeg_420", b"\x00" + jpeg())
    put("compressed_image", "jpeg_444_odd", b"\x03" + jpeg(7, 5, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                                                              cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444))
    put("compressed_image", "jpeg_progressive", b"\x00" + jpeg(8, 8, cv2.IMWRITE_JPEG_PROGRESSIVE, 1))
    ok, grey = cv2.imencode(".jpg", pattern(8, 4)[:, :, 0])
    put("compressed_image", "jpeg_grey", b"\x02" + grey.tobytes())
    put("compressed_image", "png_rgb", b"\x01" + png(pattern(5, 3)))
    put("compressed_image", "png_grey", b"\x01" + png(pattern(5, 3)[:, :, 0]))
    put("compressed_image", "png_16bit", b"\x04" + png(pattern(3, 3).astype(np.uint16) * 257))
    put("compressed_image", "png_rgba", b"\x01" + png(np.dstack([pattern(3, 2), np.full((2, 3), 128, np.uint8)])))


def image(w=4, h=2, enc="rgb8", frame_id="cam"):
    data = np.frombuffer(bytes((j * 29) % 256 for j in range(w * h * BPP.get(enc, 1))), np.uint8)
    hdr = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id=frame_id)
    return T["sensor_msgs/msg/Image"](header=hdr, height=h, width=w, encoding=enc, is_bigendian=0,
                                      step=w * BPP.get(enc, 1), data=data)


def compressed(data: bytes, fmt="jpeg"):
    hdr = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=3, nanosec=4), frame_id="cam")
    return T["sensor_msgs/msg/CompressedImage"](header=hdr, format=fmt, data=np.frombuffer(data, np.uint8))


def diagnostics():
    kv = T["diagnostic_msgs/msg/KeyValue"]
    status = T["diagnostic_msgs/msg/DiagnosticStatus"](level=1, name="pipeline_seg", message="uncertain",
                                                        hardware_id="cam", values=[kv(key="score", value="0.7")])
    hdr = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=5, nanosec=6), frame_id="")
    return T["diagnostic_msgs/msg/DiagnosticArray"](header=hdr, status=[status]), status, kv(key="k", value="v")


def cdr(msg, typ: str, le: bool = True) -> bytes:
    return bytes(TS.serialize_cdr(msg, typ, little_endian=le))


def cdr_seeds() -> None:
    # [type][message]: 0 Image, 1 CompressedImage, 2 Bool, 3 DiagnosticArray, 4 DiagnosticStatus,
    # 5 KeyValue, 6 Header, 7 Time, 8 reader op codes.
    array, status, kv = diagnostics()
    img = image()
    put("cdr", "image_le", b"\x00" + cdr(img, "sensor_msgs/msg/Image"))
    put("cdr", "image_be", b"\x00" + cdr(img, "sensor_msgs/msg/Image", le=False))
    put("cdr", "image_mono16", b"\x00" + cdr(image(2, 2, "mono16"), "sensor_msgs/msg/Image"))
    put("cdr", "compressed", b"\x01" + cdr(compressed(jpeg()), "sensor_msgs/msg/CompressedImage"))
    put("cdr", "bool", b"\x02" + cdr(T["std_msgs/msg/Bool"](data=True), "std_msgs/msg/Bool"))
    put("cdr", "diagnostic_array", b"\x03" + cdr(array, "diagnostic_msgs/msg/DiagnosticArray"))
    put("cdr", "diagnostic_status", b"\x04" + cdr(status, "diagnostic_msgs/msg/DiagnosticStatus"))
    put("cdr", "key_value", b"\x05" + cdr(kv, "diagnostic_msgs/msg/KeyValue"))
    put("cdr", "header", b"\x06" + cdr(img.header, "std_msgs/msg/Header"))
    put("cdr", "time", b"\x07" + cdr(img.header.stamp, "builtin_interfaces/msg/Time"))
    put("cdr", "reader_ops", b"\x08\x0b" + bytes(range(11)) + b"\x00\x01\x00\x00" + bytes(range(64)))


def write_bag(path: Path, storage: StoragePlugin, zstd: bool = False) -> None:
    """A tiny bag: an rgb8 and a mono16 Image, a CompressedImage (8x8 JPEG), a Bool, a DiagnosticArray."""
    w = Writer(path, version=9, storage_plugin=storage)
    if zstd:
        w.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    array, _, _ = diagnostics()
    msgs = [("/cam/raw", "sensor_msgs/msg/Image", image()),
            ("/cam/compressed", "sensor_msgs/msg/CompressedImage", compressed(jpeg())),
            ("/cam/raw", "sensor_msgs/msg/Image", image(2, 2, "mono16")),
            ("/confident", "std_msgs/msg/Bool", T["std_msgs/msg/Bool"](data=False)),
            ("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", array)]
    with w:
        conns = {}
        for i, (topic, typ, msg) in enumerate(msgs):
            if topic not in conns:
                conns[topic] = w.add_connection(topic, typ, typestore=TS)
            w.write(conns[topic], 1_700_000_000_000_000_000 + i * 1_000_000, cdr(msg, typ))


def shrink_db3(path: Path) -> None:
    """512-byte pages: the same database in a fraction of the bytes."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("PRAGMA page_size=512")
    con.execute("VACUUM")
    con.close()


def bag_seeds() -> None:
    # [layout][...] (fuzz/harness.rs `bag`): 0 .mcap, 1 .db3, 2 dir + metadata.yaml, 3 its
    # metadata.yaml, 4 dir without metadata, 5 two files; layout / 6 odd: .db3 in 2..5.
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_bag(tmp / "m", StoragePlugin.MCAP)
        write_bag(tmp / "z", StoragePlugin.MCAP, zstd=True)
        write_bag(tmp / "s", StoragePlugin.SQLITE3)
        mcap = (tmp / "m" / "m.mcap").read_bytes()
        zstd = next((tmp / "z").glob("*.mcap")).read_bytes()
        db3_path = tmp / "s" / "s.db3"
        shrink_db3(db3_path)
        db3 = db3_path.read_bytes()
        meta = (tmp / "m" / "metadata.yaml").read_text().replace("m.mcap", "bag_0.mcap").encode()
        meta_db3 = (tmp / "s" / "metadata.yaml").read_text().replace("s.db3", "bag_0.db3").encode()
    u16 = lambda b: struct.pack("<H", len(b))  # noqa: E731
    put("bag", "mcap_file", b"\x00" + mcap)
    put("bag", "mcap_zstd_file", b"\x00" + zstd)
    put("bag", "db3_file", b"\x01" + db3)
    put("bag", "mcap_dir_metadata", b"\x02" + u16(meta) + meta + mcap)
    put("bag", "db3_metadata_yaml", bytes([9]) + u16(meta_db3) + meta_db3 + db3)
    put("bag", "mcap_dir_nometa", b"\x04" + mcap)
    put("bag", "mcap_split", b"\x05" + u16(mcap) + mcap + zstd)


def config_seeds() -> None:
    shipped = (ROOT.parent / "config" / "pipeline_seg.yaml").read_bytes()
    put("config", "pipeline_seg.yaml", shipped)
    put("config", "wildcard_all_set.yaml", b"""/**:
  ros__parameters:
    device: cuda
    samples: 8
    min_samples: 2
    score_method: trust
    pixel_threshold: 0.4
    band_px: 4
    threshold_high: 0.6
    threshold_low: 0.4
    recover_frames: 3
    gpu_device_id: 1
    trust_model: "features=entropy_mean,luma_mean;mean=0.1,100;scale=0.05,20;coef=1.5,-0.2;intercept=-1.0"
    review_min_interval_s: 0.5
    anytime_z: 0
""")


def labels_seeds() -> None:
    # [manifest length u16][frame length u16][manifest][frame png][mask png] (fuzz/labels.py).
    frame = png(pattern(4, 3))
    mask = png(np.where(pattern(4, 3)[:, :, 0] > 100, 255, 0).astype(np.uint8))
    manifest = b"bag,topic,stamp_ns,score\nb,/cam,1000,0.5\n"
    put("labels", "labelled", struct.pack("<HH", len(manifest), len(frame)) + manifest + frame + mask)
    put("labels", "unlabelled", struct.pack("<HH", len(manifest), len(frame)) + manifest + frame)


if __name__ == "__main__":
    shutil.rmtree(SEEDS, ignore_errors=True)
    raw_seeds()
    compressed_seeds()
    cdr_seeds()
    bag_seeds()
    config_seeds()
    labels_seeds()
    for d in sorted(SEEDS.iterdir()):
        sizes = [f.stat().st_size for f in d.iterdir()]
        print(f"{d.name}: {len(sizes)} seeds, largest {max(sizes)} B, total {sum(sizes)} B")
