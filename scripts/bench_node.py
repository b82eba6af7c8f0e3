"""Load benchmark of pipeline_seg_node (BENCHMARKS.md): a camera faster than inference.

Publishes 640x480 bgr8 frames (the bundled validation frames in turn) at --hz for --seconds to a
freshly started node and reports what /diagnostics says about rates, drops and latency, plus the
node's resident memory at 10 s, at the end, and its peak. Run after `source scripts/env.sh` (and `make build`):

    python3 scripts/bench_node.py --seconds 60 --hz 30
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(ROOT / "config" / "fastdds_large_frames.xml"))

import cv2  # noqa: E402
import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402


def rss_mb(pid, key="VmRSS"):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def camera_frames(frame_id="camera"):
    """The bundled validation frames as 640x480 bgr8 Image messages (decoded once, sent in turn)."""
    msgs = []
    for f in sorted((ROOT / "tests/data/frames/val/image").glob("*.jpg")):
        bgr = cv2.imread(str(f))
        m = Image(height=bgr.shape[0], width=bgr.shape[1], encoding="bgr8", step=bgr.shape[1] * 3, data=bgr.tobytes())
        m.header.frame_id = frame_id
        msgs.append(m)
    return msgs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--hz", type=float, default=30)
    ap.add_argument("--samples", type=int, default=0, help="0 = the model's default")
    ap.add_argument("--min-samples", type=int, default=0, help="0 = the default (anytime sampling)")
    args = ap.parse_args()
    # Here, not at import: scripts/soak.py and tests/test_soak.py import this module's helpers.
    os.environ.setdefault("ROS_DOMAIN_ID", str(60 + os.getpid() % 30))
    cmd = [str(ROOT / "target/release/pipeline_seg_node"), "--ros-args"]
    if args.samples:
        cmd += ["-p", f"samples:={args.samples}"]
    if args.min_samples:
        cmd += ["-p", f"min_samples:={args.min_samples}"]
    node_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rclpy.init()
    peer = rclpy.create_node("bench_camera")
    pub = peer.create_publisher(Image, "/pipeline_seg_node/image", qos_profile_sensor_data)
    diags = []
    peer.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diags.append((time.monotonic(), m)), 10)
    msgs = camera_frames()
    deadline = time.monotonic() + 20
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(peer, timeout_sec=0.05)
    start = time.monotonic()
    period, sent, rss_10 = 1.0 / args.hz, 0, None
    while time.monotonic() - start < args.seconds:
        now = time.time_ns()
        msg = msgs[sent % len(msgs)]
        msg.header.stamp.sec, msg.header.stamp.nanosec = now // 10**9, now % 10**9
        pub.publish(msg)
        sent += 1
        if rss_10 is None and time.monotonic() - start >= 10:
            rss_10 = rss_mb(node_proc.pid)
        next_at = start + sent * period
        while time.monotonic() < next_at:
            rclpy.spin_once(peer, timeout_sec=max(0.0, next_at - time.monotonic()))
    rss_end, rss_peak = rss_mb(node_proc.pid), rss_mb(node_proc.pid, "VmHWM")
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        rclpy.spin_once(peer, timeout_sec=0.05)
    node_proc.send_signal(signal.SIGINT)
    node_proc.wait(timeout=10)
    steady = [m for t, m in diags if t - start > 10]
    last = {kv.key: kv.value for kv in (steady or [m for _, m in diags])[-1].status[0].values}
    rates = [{kv.key: kv.value for kv in m.status[0].values} for m in steady]
    mean = lambda key: sum(float(r[key]) for r in rates) / max(len(rates), 1)  # noqa: E731
    print(json.dumps({
        "seconds": args.seconds, "hz": args.hz, "sent": sent, "samples": last["samples"],
        "received": int(last["received"]), "processed": int(last["processed"]), "dropped": int(last["dropped"]),
        "input_hz_mean": round(mean("input_hz"), 2), "processed_hz_mean": round(mean("processed_hz"), 2),
        "latency_p50_ms": float(last["latency_p50_ms"]), "latency_p95_ms": float(last["latency_p95_ms"]),
        "min_samples": args.min_samples or "default",
        "rss_mb_10s": round(rss_10 or float("nan"), 1), "rss_mb_end": round(rss_end, 1), "rss_mb_peak": round(rss_peak, 1),
        "rss_growth_pct": round(100 * (rss_end - rss_10) / rss_10, 2) if rss_10 else None,
    }))
    peer.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
