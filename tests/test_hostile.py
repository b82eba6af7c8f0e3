"""Hostile images (docs/interfaces.md §2): tiny PNG and JPEG files whose headers declare 20000² or
40000² pixels. Decoded in full they would cost 0.4 to 4.8 GB; the size is read from the header
and refused before any pixel is decoded, in `infer`, `replay` and the node, each process staying
under 200 MB of peak resident memory (its own high-water mark, VmHWM: printed by the CLI at its
end, read from /proc for the running node).

Run after `source scripts/env.sh` and `make build`.
"""
from __future__ import annotations

import os
import struct
import subprocess
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import BIN, ROOT, VAL

PEAK_MB = 200
SIZES = (20000, 40000)


def hostile_png(w: int, h: int) -> bytes:
    """A valid 8-bit grey PNG header (CRCs right) declaring w x h, with almost no pixel data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def hostile_jpeg(w: int, h: int) -> bytes:
    """A real 16x16 JPEG whose frame header is rewritten to declare w x h."""
    ok, enc = cv2.imencode(".jpg", np.full((16, 16, 3), 90, np.uint8))
    data = bytearray(enc.tobytes())
    sof = next(i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
    data[sof + 5:sof + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def hostile_files(d: Path) -> list[Path]:
    files = []
    for n in SIZES:
        for ext, make in (("png", hostile_png), ("jpg", hostile_jpeg)):
            f = d / f"huge_{n}.{ext}"
            f.write_bytes(make(n, n))
            assert f.stat().st_size < 2000
            files.append(f)
    return files


def cpu_onnxruntime() -> Path:
    """The CPU ONNX Runtime library (what CI and most vehicles run): the GPU build that
    `make setup GPU=1` adds maps ~100 MB more at start and would measure the library, not us."""
    import onnxruntime
    return sorted((Path(onnxruntime.__file__).parent / "capi").glob("libonnxruntime.so.*"))[-1]


def run_measured(args) -> tuple[int, float, str]:
    """Runs a command; its exit code, its own peak RSS [MB] (VmHWM, which `infer` and `replay` print
    as `peak memory:`) and its stderr. Not the rusage a parent gets: Linux counts into that the
    memory of the process that forked the child (here pytest, hundreds of MB)."""
    env = dict(os.environ, ORT_DYLIB_PATH=str(cpu_onnxruntime()))
    proc = subprocess.run([str(a) for a in args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("peak memory: ")]
    return proc.returncode, float(line.split()[2]), proc.stderr


def test_infer_refuses_huge_headers_in_bounded_memory(tmp_path):
    files = hostile_files(tmp_path)
    # Only the hostile files: the peak is the model load plus their refusal (a good frame's
    # inference would add ONNX Runtime's arena, 30-70 MB depending on how its threads allocate).
    rc, peak, err = run_measured([BIN, "infer", "--out", tmp_path / "out", *files])
    assert rc == 1, err
    for f in files:
        assert f"{f}: image is" in err and "max_image_pixels" in err, err
    assert "0/4 frames segmented" in err
    print(f"infer peak {peak:.1f} MB")
    assert peak < PEAK_MB, f"infer peaked at {peak:.0f} MB"


def test_replay_refuses_huge_headers_in_bounded_memory(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    ts = get_typestore(Stores.ROS2_JAZZY)
    Header, Time = ts.types["std_msgs/msg/Header"], ts.types["builtin_interfaces/msg/Time"]
    Compressed = ts.types["sensor_msgs/msg/CompressedImage"]
    payloads = [f.read_bytes() for f in hostile_files(tmp_path)]
    bag, t0 = tmp_path / "hostile", 1_700_000_000 * 10**9
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection("/cam", Compressed.__msgtype__, typestore=ts)
        for k, data in enumerate(payloads):
            t = t0 + k * 10**8
            msg = Compressed(header=Header(stamp=Time(sec=t // 10**9, nanosec=t % 10**9), frame_id="cam"),
                             format="jpeg", data=np.frombuffer(data, np.uint8))
            w.write(conn, t, bytes(ts.serialize_cdr(msg, Compressed.__msgtype__)))
    rc, peak, err = run_measured([BIN, "replay", bag, "--topic", "/cam", "--samples", "4", "--out", tmp_path / "o"])
    assert rc == 1, err
    assert err.count("max_image_pixels") == len(payloads), err
    assert "4 frames" in err and "4 decode errors" in err, err
    print(f"replay peak {peak:.1f} MB")
    assert peak < PEAK_MB, f"replay peaked at {peak:.0f} MB"


def test_node_refuses_huge_headers_in_bounded_memory(request, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ORT_DYLIB_PATH", str(cpu_onnxruntime()))
    from test_node import bgr, jpeg_msg, new_header, node_run, raw_msg  # noqa: F401  (rclpy set up there)
    run = node_run(request, tmp_path_factory, "hostile", {"samples": 4}, compressed=True)
    files = hostile_files(tmp_path_factory.mktemp("hostile_files"))
    for f in files:
        msg = jpeg_msg(f.read_bytes(), new_header())
        out = run.process(msg, topics=("confidence",))
        assert out["confidence"].status[0].message == "decode_error"
    hwm = _hwm(run.proc.pid)
    assert "max_image_pixels" in run.log()
    print(f"node peak {hwm:.1f} MB")
    assert hwm < PEAK_MB, f"the node peaked at {hwm:.0f} MB"
    # and it goes on with good frames
    good = jpeg_msg((VAL / "00000.jpg").read_bytes(), new_header())
    run.process(good, topics=("confidence", "mask"))
    assert run.proc.poll() is None


def _hwm(pid: int) -> float:
    """VmHWM, the process's peak resident memory [MB]."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
