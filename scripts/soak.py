"""Soak and overload test of pipeline_seg_node (issue 13; figures in BENCHMARKS.md).

Starts its own node (fixed T: samples = min_samples, reliable input) in a private ROS domain and
drives it for --minutes with --publishers camera processes, each publishing the bundled
validation frames as 640x480 bgr8 at --hz on ~/image with its own frame_id (reliable, header
stamp = wall clock at publish). Then checks three bounds and exits 1 if one fails:

- memory: growth of the node's VmRSS (/proc, every 2 s) = (median of the last window - median of
  the first window) / first; the window is 60 s (minute 1 and minute 10 of a 10-min run), or a
  third of the run when it is shorter than 3 min. Bound: < 5 %.
- decision latency: frame publish (its stamp) -> receipt of the ~/confidence carrying that stamp,
  both wall clock on this host. Bound: p99 <= 2 inference periods, where the inference period is
  the median interval between consecutive frame decisions while the publishers run. Under
  overload the worker never waits for a frame, so that interval is the node's real cycle (decode,
  T samples, publishing), measured on the same clock and under the same load as the latency.
  The node's latency_ms (arrival -> decision, inside the node) is reported beside it.
- drops: frames published - frames that got a decision, after the publishers stop and the node
  has drained, must equal the node's last /diagnostics `dropped`, with no decode or inference
  errors (a failed frame would get a decision of its own). received = published is shown too:
  frames lost in transport would appear in neither counter.

Run after `make build` and `source scripts/env.sh`:

    python3 scripts/soak.py --minutes 10 --hz 30 --publishers 1 --samples 16 --json soak_1pub.json
    python3 scripts/soak.py --minutes 10 --hz 30 --publishers 3 --samples 16 --json soak_3pub.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NODE_BIN = ROOT / "target" / "release" / "pipeline_seg_node"
NS = "/pipeline_seg_node"
# Before rclpy creates a participant, in this process and in the spawned publishers: raw frames
# need the large shared-memory segment (config/fastdds_large_frames.xml says why).
os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(ROOT / "config" / "fastdds_large_frames.xml")

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.duration import Duration  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.signals import SignalHandlerOptions  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from bench_node import camera_frames, rss_mb  # noqa: E402

WINDOW_S = 60.0
RSS_EVERY_S = 2.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def reliable(depth: int) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def pct(values, q: float) -> float:
    """numpy's linear-interpolation percentile (as the node's `num::percentile`), q in 0..1."""
    if not values:
        return float("nan")
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def host_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs: how loaded the machine was, whoever loaded it."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    return f[0] + f[1] + f[2] + f[5] + f[6], sum(f)


# ---------------------------------------------------------------------------------------------
# a camera: one process, one participant, one publisher


def camera(idx: int, phase: float, domain: int, hz: float, seconds: float, depth: int, ready, go, done, t0, results):
    """Publishes the frames in turn at `hz` from monotonic time t0 + phase periods (several
    cameras are spread over the period) until t0 + seconds; sends back every stamp it published.
    A camera that falls more than a period behind skips the missed slots instead of bursting."""
    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(f"soak_camera_{idx}", context=ctx)
    pub = node.create_publisher(Image, f"{NS}/image", reliable(depth))
    frame_id = f"soak_cam{idx}"
    msgs = camera_frames(frame_id=frame_id)
    deadline = time.monotonic() + 60
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    ready.put((idx, pub.get_subscription_count()))
    go.wait()
    period = 1.0 / hz
    start, end = t0.value + phase * period, t0.value + seconds
    stamps, skipped, k = [], 0, 0
    while start + k * period < end:
        next_at = start + k * period
        now = time.monotonic()
        if now < next_at:
            time.sleep(next_at - now)
        elif now - next_at > period:
            behind = int((now - next_at) / period)
            skipped += behind
            k += behind
            continue
        ns = time.time_ns()
        m = msgs[len(stamps) % len(msgs)]
        m.header.stamp.sec, m.header.stamp.nanosec = ns // 10**9, ns % 10**9
        pub.publish(m)
        stamps.append(ns)
        k += 1
    acked = pub.wait_for_all_acked(Duration(seconds=10))
    results.put({"idx": idx, "frame_id": frame_id, "stamps": stamps, "skipped": skipped, "acked": bool(acked)})
    done.wait(120)  # keep the writer (and its unacked samples) until the node has drained
    node.destroy_node()
    rclpy.shutdown(context=ctx)


# ---------------------------------------------------------------------------------------------
# the run


class Recorder:
    """The soak's own rclpy node: decisions on ~/confidence, /diagnostics, the watched outputs."""

    def __init__(self, domain: int, watch: list[str]):
        self.ctx = Context()
        rclpy.init(context=self.ctx, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node("soak_recorder", context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.decisions = []  # (t_mono, frame_id, stamp_ns, latency_ms, node_latency_ms, reason, samples)
        self.timer_stale = []  # (t_mono, frame_id, stamp_ns): the node's stale timer, no frame behind it
        self.diags = []  # (t_mono, {key: value})
        self.watched = {t: 0 for t in watch}
        # Deep queues: a stall of this process must not lose decisions (the node's writers keep 10).
        self.subs = [self.node.create_subscription(DiagnosticArray, f"{NS}/confidence", self._decision, reliable(1000)),
                     self.node.create_subscription(DiagnosticArray, "/diagnostics", self._diag, reliable(100))]
        for t in watch:
            self.subs.append(self.node.create_subscription(Image, f"{NS}/{t}", lambda _m, t=t: self._count(t),
                                                           reliable(50)))

    def _decision(self, msg):
        now_ns, now = time.time_ns(), time.monotonic()
        st = msg.status[0]
        v = {kv.key: kv.value for kv in st.values}
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        if st.message == "stale" and v.get("score") == "":
            self.timer_stale.append((now, msg.header.frame_id, stamp))
            return
        self.decisions.append((now, msg.header.frame_id, stamp, (now_ns - stamp) / 1e6, float(v["latency_ms"]),
                               st.message, int(v["samples"])))

    def _diag(self, msg):
        for st in msg.status:
            if st.name == "/pipeline_seg_node":  # the node's fully qualified name
                self.diags.append((time.monotonic(), {kv.key: kv.value for kv in st.values}))

    def _count(self, topic):
        self.watched[topic] += 1

    def matched(self) -> bool:
        return all(s.get_publisher_count() > 0 for s in self.subs)

    def spin(self, seconds: float):
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.executor.spin_once(timeout_sec=min(left, 0.05))

    def close(self):
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)


def _stop(proc: subprocess.Popen) -> int | None:
    for sig, grace in ((signal.SIGINT, 10.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        proc.send_signal(sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    return proc.returncode


def _drained(rec: Recorder, since: float) -> bool:
    """The node has handled everything it received: a /diagnostics newer than `since` (and than
    the last decision) where received = processed + dropped + errors."""
    if not rec.diags or rec.diags[-1][0] < since:
        return False
    if rec.decisions and rec.diags[-1][0] < rec.decisions[-1][0] + 0.2:
        return False
    d = rec.diags[-1][1]
    done = int(d["processed"]) + int(d["dropped"]) + int(d["decode_errors"]) + int(d.get("inference_errors", 0))
    return int(d["received"]) == done


def run_soak(seconds: float, hz: float, publishers: int, samples: int, min_samples: int = 0, depth: int = 10,
             watch=("mask", "overlay"), domain: int | None = None, log_path: Path | None = None,
             progress=None, node_bin: Path = NODE_BIN) -> dict:
    """Drives a fresh node; returns the raw record (see `evaluate`)."""
    if not node_bin.is_file():
        raise SystemExit(f"{node_bin} missing: run `make build`")
    # Outside the tests' domains (test_node.py 1..96, test_calibrate_select.py 100..149).
    domain = domain if domain is not None else 97 + os.getpid() % 3
    min_samples = min_samples or samples
    log_path = log_path or Path(tempfile.mkstemp(prefix="soak_node_", suffix=".log")[1])
    ros_log = tempfile.TemporaryDirectory(prefix="soak_ros_log_")
    params = {"samples": samples, "min_samples": min_samples, "input_reliability": "reliable", "input_depth": depth}
    cmd = [str(node_bin), "--ros-args"] + [a for k, v in params.items() for a in ("-p", f"{k}:={v}")]
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_LOG_DIR=ros_log.name)
    record = {
        "config": {"seconds": seconds, "hz": hz, "publishers": publishers, "samples": samples,
                   "min_samples": min_samples, "input_depth": depth, "publisher_qos": f"reliable, keep last {depth}",
                   "watched_outputs": list(watch), "domain": domain, "node_cmd": " ".join(cmd)},
        "host": {"nproc": os.cpu_count(), "loadavg_start": os.getloadavg(),
                 "cpu": next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                              if ln.startswith("model name")), "?")},
        "binary": {"path": str(node_bin), "mtime": time.strftime("%Y-%m-%dT%H:%M:%S",
                                                                  time.localtime(node_bin.stat().st_mtime)),
                   "sha256": hashlib.sha256(node_bin.read_bytes()).hexdigest()[:16]},
        "git_head": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                   text=True).stdout.strip(),
    }
    spawn = mp.get_context("spawn")
    ready, results = spawn.Queue(), spawn.Queue()
    go, done, t0 = spawn.Event(), spawn.Event(), spawn.Value("d", 0.0)
    with open(log_path, "wb") as log:
        node_proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    rec = Recorder(domain, list(watch))
    cams = [spawn.Process(target=camera, args=(i, i / publishers, domain, hz, seconds, depth, ready, go, done, t0,
                                               results), daemon=True) for i in range(publishers)]
    try:
        for c in cams:
            c.start()
        t_start = time.monotonic()
        matched_cams = 0
        while matched_cams < publishers or not rec.matched():
            if node_proc.poll() is not None:
                raise RuntimeError(f"node exited ({node_proc.returncode}) at start; see {log_path}")
            if time.monotonic() - t_start > 90:
                raise RuntimeError(f"no match after 90 s (cameras {matched_cams}/{publishers}); see {log_path}")
            rec.spin(0.1)
            while not ready.empty():
                idx, n = ready.get()
                if n == 0:
                    raise RuntimeError(f"camera {idx} found no subscriber; see {log_path}")
                matched_cams += 1
        record["ready_s"] = round(time.monotonic() - t_start, 2)
        rec.spin(1.0)  # the node's first diagnostics: it is idle before any frame
        t0.value = time.monotonic() + 0.5
        go.set()
        rss, next_sample = [], t0.value
        busy0, ticks0 = host_busy(), cpu_ticks(node_proc.pid)
        while time.monotonic() < t0.value + seconds:
            rec.spin(max(0.0, min(next_sample, t0.value + seconds) - time.monotonic()))
            now = time.monotonic()
            if now >= next_sample and now < t0.value + seconds:
                if node_proc.poll() is not None:
                    # The node ends only on SIGINT/SIGTERM (exit 0) or a crash: exit 0 here means a
                    # signal from outside, such as a `pkill -f pipeline_seg_node` meant for others.
                    raise RuntimeError(f"node exited ({node_proc.returncode}) during the run; see {log_path}")
                busy, ticks = host_busy(), cpu_ticks(node_proc.pid)
                rss.append({"t": round(now - t0.value, 2), "rss_mb": round(rss_mb(node_proc.pid), 2),
                            "hwm_mb": round(rss_mb(node_proc.pid, "VmHWM"), 2),
                            "node_cpu_s": round((ticks - ticks0) / CLK_TCK, 2),
                            "host_busy_pct": round(100 * (busy[0] - busy0[0]) / max(1, busy[1] - busy0[1]), 1),
                            "loadavg1": os.getloadavg()[0]})
                busy0 = busy
                next_sample += RSS_EVERY_S
                if progress and len(rss) % 30 == 0:
                    progress(f"{now - t0.value:5.0f} s: {len(rec.decisions)} decisions, "
                             f"RSS {rss[-1]['rss_mb']:.1f} MB, load {rss[-1]['loadavg1']:.2f}")
        t_pub_end = time.monotonic()
        cam_results = [results.get(timeout=60) for _ in cams]
        # Drain: the node's last frame decided and its counters settled, then two more diagnostics.
        deadline = time.monotonic() + 60
        while not _drained(rec, t_pub_end + 1.0) and time.monotonic() < deadline:
            rec.spin(0.2)
        drained_at = time.monotonic()
        while len([d for d in rec.diags if d[0] > drained_at]) < 2 and time.monotonic() < deadline + 5:
            rec.spin(0.2)
        record["drained"] = _drained(rec, t_pub_end + 1.0)
        record["diag_publishers"] = rec.node.count_publishers("/diagnostics")
        record["node_names"] = sorted(n for n, _ns in rec.node.get_node_names_and_namespaces())
    finally:
        done.set()
        go.set()
        for c in cams:
            c.join(timeout=15)
            if c.is_alive():
                c.kill()
        rc = _stop(node_proc)
        rec.close()
        ros_log.cleanup()
    record["node_exit_code"] = rc
    record["t0_mono"] = t0.value
    record["publish_end_s"] = round(t_pub_end - t0.value, 2)
    record["cameras"] = sorted(cam_results, key=lambda r: r["idx"])
    record["decisions"] = [(round(t - t0.value, 4), fid, stamp, round(lat, 3), nl, reason, s)
                           for t, fid, stamp, lat, nl, reason, s in rec.decisions]
    record["timer_stale"] = [(round(t - t0.value, 3), fid, stamp) for t, fid, stamp in rec.timer_stale]
    record["diagnostics"] = [(round(t - t0.value, 3), d) for t, d in rec.diags]
    record["watched_received"] = rec.watched
    record["rss"] = rss
    record["node_log"] = str(log_path)
    lines = Path(log_path).read_text(errors="replace").splitlines()
    record["node_log_warnings"] = [ln for ln in lines if "WARN" in ln or "ERROR" in ln or "panick" in ln][:50]
    record["node_log_lines"] = len(lines)
    return record


# ---------------------------------------------------------------------------------------------
# figures and bounds


def latency_over_cycle(record: dict) -> list[float]:
    """Each decision's latency over the interval since the previous decision (its own cycle),
    while the cameras run. Under overload a frame waits in the slot at most one camera period
    before its inference starts, so this stays near 1 at any speed of the machine."""
    running = [d for d in record["decisions"] if d[0] <= record["publish_end_s"]]
    return [b[3] / (1e3 * (b[0] - a[0])) for a, b in zip(running, running[1:]) if b[0] > a[0]]


def evaluate(record: dict, max_growth_pct: float = 5.0, max_latency_periods: float = 2.0) -> dict:
    """The figures of a run and its bounds (each {value, limit, ok})."""
    cfg, seconds = record["config"], record["config"]["seconds"]
    published = {(c["frame_id"], s) for c in record["cameras"] for s in c["stamps"]}
    n_published = sum(len(c["stamps"]) for c in record["cameras"])
    decisions = record["decisions"]
    keys = [(d[1], d[2]) for d in decisions]
    decided = set(keys) & published
    running = [d for d in decisions if d[0] <= record["publish_end_s"]]
    intervals = [b[0] - a[0] for a, b in zip(running, running[1:])]
    period_ms = 1e3 * statistics.median(intervals) if intervals else float("nan")
    lat = [d[3] for d in decisions if (d[1], d[2]) in published]
    node_lat = [d[4] for d in decisions if (d[1], d[2]) in published]
    last = record["diagnostics"][-1][1] if record["diagnostics"] else {}
    dg = {k: int(last.get(k, -1)) for k in ("received", "processed", "dropped", "decode_errors", "inference_errors")}

    window = WINDOW_S if seconds >= 3 * WINDOW_S else seconds / 3
    first = [r["rss_mb"] for r in record["rss"] if r["t"] < window]
    last_w = [r["rss_mb"] for r in record["rss"] if r["t"] >= seconds - window]
    rss_first = statistics.median(first) if first else float("nan")
    rss_last = statistics.median(last_w) if last_w else float("nan")
    growth = 100 * (rss_last - rss_first) / rss_first

    minutes = []
    for m in range(int((seconds + WINDOW_S - 1) // WINDOW_S)):
        lo, hi = m * WINDOW_S, min((m + 1) * WINDOW_S, seconds)
        ds = [d for d in running if lo <= d[0] < hi]
        iv = [b[0] - a[0] for a, b in zip(ds, ds[1:])]
        rs = [r for r in record["rss"] if lo <= r["t"] < hi]
        cpu = (rs[-1]["node_cpu_s"] - rs[0]["node_cpu_s"]) / (rs[-1]["t"] - rs[0]["t"]) if len(rs) > 1 else None
        minutes.append({
            "minute": m + 1, "decisions": len(ds), "period_ms": round(1e3 * statistics.median(iv), 1) if iv else None,
            "latency_p50_ms": round(pct([d[3] for d in ds], 0.5), 1),
            "latency_p99_ms": round(pct([d[3] for d in ds], 0.99), 1),
            "rss_median_mb": round(statistics.median([r["rss_mb"] for r in rs]), 1) if rs else None,
            "node_cpu_pct": round(100 * cpu, 0) if cpu is not None else None,
            "host_busy_pct": round(statistics.mean([r["host_busy_pct"] for r in rs[1:]]), 0) if len(rs) > 1 else None,
            "loadavg1_mean": round(statistics.mean([r["loadavg1"] for r in rs]), 2) if rs else None,
        })

    drops_script = n_published - len(decided)
    figures = {
        "published": n_published,
        "publish_hz": [round(len(c["stamps"]) / seconds, 2) for c in record["cameras"]],
        "camera_skipped_slots": [c["skipped"] for c in record["cameras"]],
        "decisions": len(decided),
        "decisions_unknown_stamp": len(set(keys) - published),
        "decisions_duplicate": len(keys) - len(set(keys)),
        "decision_reasons": {r: sum(1 for d in decisions if d[5] == r) for r in sorted({d[5] for d in decisions})},
        "samples_seen": sorted({d[6] for d in decisions}),
        # The node's stale timer between the first decision and the end of publishing: the frame
        # behind the current decision grew older than stale_timeout_ms while the next one ran.
        "timer_stale_running": sum(1 for t, *_ in record["timer_stale"]
                                   if decisions and decisions[0][0] < t <= record["publish_end_s"]),
        "recovering_after_first_ok": sum(1 for d in decisions[next((i for i, d in enumerate(decisions)
                                                                     if d[5] == "ok"), len(decisions)):]
                                         if d[5] == "recovering"),
        "drops_script": drops_script,
        "diag": dg,
        "diag_latency_p50_ms": float(last.get("latency_p50_ms", "nan")),
        "diag_latency_p95_ms": float(last.get("latency_p95_ms", "nan")),
        "processed_hz": round(len(decided) / seconds, 2),
        "period_ms": round(period_ms, 1),
        "period_p95_ms": round(1e3 * pct(intervals, 0.95), 1),
        "latency_p50_ms": round(pct(lat, 0.5), 1),
        "latency_p95_ms": round(pct(lat, 0.95), 1),
        "latency_p99_ms": round(pct(lat, 0.99), 1),
        "latency_max_ms": round(max(lat), 1) if lat else None,
        "latency_over_cycle_p99": round(pct(latency_over_cycle(record), 0.99), 3),
        "latency_over_cycle_max": round(max(latency_over_cycle(record), default=float("nan")), 3),
        "node_latency_p50_ms": round(pct(node_lat, 0.5), 1),
        "node_latency_p99_ms": round(pct(node_lat, 0.99), 1),
        "rss_window_s": window,
        "rss_first_mb": round(rss_first, 1),
        "rss_last_mb": round(rss_last, 1),
        "rss_growth_pct": round(growth, 2),
        "rss_peak_mb": max((r["hwm_mb"] for r in record["rss"]), default=None),
        "watched_received": record["watched_received"],
        "minutes": minutes,
    }
    counted = (drops_script == dg["dropped"] and dg["decode_errors"] == 0 and dg["inference_errors"] == 0
               and figures["decisions_unknown_stamp"] == 0 and figures["decisions_duplicate"] == 0)
    bounds = {
        "rss_growth": {"value": f"{growth:+.2f} %", "limit": f"< {max_growth_pct:g} %", "ok": growth < max_growth_pct},
        "latency_p99": {"value": f"{figures['latency_p99_ms']:.1f} ms",
                        "limit": f"<= {max_latency_periods:g} x {period_ms:.1f} ms = "
                                 f"{max_latency_periods * period_ms:.1f} ms",
                        "ok": figures["latency_p99_ms"] <= max_latency_periods * period_ms},
        "drops_counted": {"value": f"{drops_script} published - decided",
                          "limit": f"= diagnostics dropped {dg['dropped']}, decode/inference errors "
                                   f"{dg['decode_errors']}/{dg['inference_errors']} = 0",
                          "ok": counted},
        "run_complete": {"value": f"drained {record.get('drained')}, node exit {record.get('node_exit_code')}, "
                                  f"/diagnostics publishers {record.get('diag_publishers')}",
                         "limit": "drained, exit 0, 1 publisher", "ok": bool(record.get("drained"))
                         and record.get("node_exit_code") == 0 and record.get("diag_publishers") == 1},
    }
    return {"figures": figures, "bounds": bounds, "passed": all(b["ok"] for b in bounds.values()),
            "config": cfg}


def summary(record: dict, result: dict) -> str:
    f, cfg = result["figures"], result["config"]
    dg = f["diag"]
    out = [f"soak: {cfg['seconds'] / 60:g} min, {cfg['publishers']} publisher(s) x {cfg['hz']:g} Hz, 640x480 bgr8, "
           f"T = {cfg['samples']} (min_samples {cfg['min_samples']}), node {record['binary']['sha256']} "
           f"({record['git_head']}), {record['host']['nproc']} CPUs",
           "", f"{'min':>3} {'decisions':>9} {'period ms':>9} {'lat p50':>8} {'lat p99':>8} {'RSS MB':>7} "
           f"{'node CPU%':>9} {'host busy%':>10} {'load1':>6}"]
    def col(v, width, prec=1):
        return f"{v:>{width}.{prec}f}" if v is not None else f"{'-':>{width}}"

    for m in f["minutes"]:
        out.append(f"{m['minute']:>3} {m['decisions']:>9} {col(m['period_ms'], 9)} {col(m['latency_p50_ms'], 8)} "
                   f"{col(m['latency_p99_ms'], 8)} {col(m['rss_median_mb'], 7)} {col(m['node_cpu_pct'], 9, 0)} "
                   f"{col(m['host_busy_pct'], 10, 0)} {col(m['loadavg1_mean'], 6, 2)}")
    out += ["",
            f"published {f['published']} ({', '.join(f'{h:g}' for h in f['publish_hz'])} Hz; skipped slots "
            f"{f['camera_skipped_slots']}), received {dg['received']}, decisions {f['decisions']} "
            f"(processed {dg['processed']}, {f['processed_hz']:g} Hz), drops {f['drops_script']} "
            f"(diagnostics {dg['dropped']}), decode/inference errors {dg['decode_errors']}/{dg['inference_errors']}",
            f"inference period (median decision interval) {f['period_ms']:.1f} ms (p95 {f['period_p95_ms']:.1f}); "
            f"decision latency p50 {f['latency_p50_ms']:.1f} / p95 {f['latency_p95_ms']:.1f} / "
            f"p99 {f['latency_p99_ms']:.1f} / max {f['latency_max_ms']} ms; node latency_ms p50 "
            f"{f['node_latency_p50_ms']:.1f} / p99 {f['node_latency_p99_ms']:.1f}; latency / own cycle p99 "
            f"{f['latency_over_cycle_p99']:.2f}, max {f['latency_over_cycle_max']:.2f}",
            f"RSS median first {f['rss_window_s']:g} s {f['rss_first_mb']:.1f} MB, last {f['rss_window_s']:g} s "
            f"{f['rss_last_mb']:.1f} MB ({f['rss_growth_pct']:+.2f} %), peak {f['rss_peak_mb']} MB",
            f"reasons {f['decision_reasons']} (recovering after the first ok {f['recovering_after_first_ok']}), "
            f"samples {f['samples_seen']}, stale timer while running {f['timer_stale_running']}, "
            f"watched {f['watched_received']}, node log: {len(record['node_log_warnings'])} WARN/ERROR lines",
            ""]
    for name, b in result["bounds"].items():
        out.append(f"{'PASS' if b['ok'] else 'FAIL'}  {name:<14} {b['value']}  ({b['limit']})")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--hz", type=float, default=30, help="rate of each publisher")
    ap.add_argument("--publishers", type=int, default=1)
    ap.add_argument("--samples", type=int, default=16, help="T, fixed: min_samples = samples unless --min-samples")
    ap.add_argument("--min-samples", type=int, default=0)
    ap.add_argument("--depth", type=int, default=10, help="input_depth of the node and depth of the publishers")
    ap.add_argument("--watch", default="mask,overlay", help="outputs to subscribe to ('' = only the decisions)")
    ap.add_argument("--domain", type=int, default=None, help="ROS domain (default: 97..99 by pid)")
    ap.add_argument("--json", type=Path, help="write the raw record and the figures here")
    ap.add_argument("--node-bin", type=Path, default=NODE_BIN,
                    help="the node binary (a copy under another name survives a `pkill -f pipeline_seg_node` "
                         "aimed at other runs on a shared machine)")
    args = ap.parse_args()
    log = args.json.with_suffix(".node.log") if args.json else None
    record = run_soak(args.minutes * 60, args.hz, args.publishers, args.samples, args.min_samples, args.depth,
                      [t for t in args.watch.split(",") if t], args.domain, log,
                      progress=lambda s: print(s, file=sys.stderr, flush=True), node_bin=args.node_bin)
    result = evaluate(record)
    if args.json:
        args.json.write_text(json.dumps({**result, "record": record}, indent=1))
    print(summary(record, result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
