#!/usr/bin/env python3
"""Many bags on one machine: one `replay` of all bags vs `--jobs` replays in parallel + `merge`.

    source scripts/env.sh && python3 scripts/bench_fleet.py [--bags 4] [--jobs 2] [--threads 1]

The bags are the sample bag cut in halves by the Python `rosbags`, repeated to `--bags` bags.
Prints wall times, the speed-up, and checks that the merged metrics equal the single replay's
(docs/interfaces.md §11). The figures go to BENCHMARKS.md ("Many bags").
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(os.environ.get("PIPELINE_SEG_ROOT") or Path(__file__).resolve().parents[1])
BIN = ROOT / "target" / "release" / "pipeline_seg"
BAG = ROOT / "tests" / "data" / "sample_bag"
TOPIC, GT = "/camera/image_raw/compressed", "/camera/mask"


def cut(out: Path, n: int) -> list[Path]:
    """`n` bags: the sample bag's two halves (30 frames each), in turn."""
    sys.path.insert(0, str(ROOT / "tests"))
    from make_bags import cut_bag

    return cut_bag(BAG, TOPIC, [(0, 30) if i % 2 == 0 else (30, 60) for i in range(n)],
                   [out / f"bag{i:02d}" for i in range(n)])


def replay(out: Path, bags, threads: int) -> list[str]:
    return [str(BIN), "replay", *map(str, bags), "--topic", TOPIC, "--gt-topic", GT, "--threads", str(threads),
            "--out", str(out)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bags", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads of each parallel replay")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_fleet_"))
    bags = cut(tmp, args.bags)
    frames = 30 * args.bags

    t = time.monotonic()
    subprocess.run(replay(tmp / "one", bags, 0), check=True, capture_output=True)
    one_s = time.monotonic() - t

    t = time.monotonic()
    pending, running = list(enumerate(bags)), []
    while pending or running:
        while pending and len(running) < args.jobs:
            i, b = pending.pop(0)
            running.append(subprocess.Popen(replay(tmp / "runs" / f"{i:02d}", [b], args.threads),
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.05)
        for p in [p for p in running if p.poll() is not None]:
            assert p.returncode == 0, p.args
            running.remove(p)
    par_s = time.monotonic() - t
    t = time.monotonic()
    runs = sorted((tmp / "runs").iterdir())
    subprocess.run([str(BIN), "merge", *map(str, runs), "--out", str(tmp / "merged")], check=True,
                   capture_output=True)
    merge_s = time.monotonic() - t

    a = json.loads((tmp / "one" / "metrics.json").read_text())
    b = json.loads((tmp / "merged" / "metrics.json").read_text())
    diff = max(abs(a[k] - b[k]) for k in a if isinstance(a[k], float) and isinstance(b[k], float))
    same = all(a[k] == b[k] or (isinstance(a[k], float) and math.isclose(a[k], b[k], abs_tol=1e-9)) for k in a)
    print(json.dumps({
        "bags": args.bags, "frames": frames, "jobs": args.jobs, "threads_per_job": args.threads,
        "one_replay_s": round(one_s, 2), "one_replay_fps": round(frames / one_s, 2),
        "parallel_replays_s": round(par_s, 2), "merge_s": round(merge_s, 2),
        "parallel_plus_merge_fps": round(frames / (par_s + merge_s), 2),
        "speedup": round(one_s / (par_s + merge_s), 2),
        "metrics_equal_1e-9": same, "largest_metric_difference": diff, "out": str(tmp),
    }))


if __name__ == "__main__":
    main()
