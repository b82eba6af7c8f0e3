"""Generate the data splits from one seed: data/<split>/{image/*.jpg, mask/*.png, meta.jsonl}.

Usage: python make_data.py [--seed 7] [--out data] [--check data_digest.json] [--jobs 2]
A frame depends only on (seed, split, index), so the worker count never changes the bytes.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import cv2

sys.path.insert(0, os.path.dirname(__file__))
import scenegen  # noqa: E402

import altgen  # noqa: E402

# Randomised training data (train_dr, val_dr = own validation, nopipe_dr = own no-pipe scenes),
# held-out families (ho_*: rendered by scenegen with one family training never sees), the
# second renderer (xr: altgen.py, never trained on), and the legacy splits of the first
# generator (val, shift_*, ood), kept so the card compares with the earlier model.
COUNTS = {"train_dr": 2400, "val_dr": 200, "nopipe_dr": 120, "ho_water": 100, "ho_seabed": 100,
          "ho_coating": 100, "ho_light": 100, "xr": 200,
          "val": 200, "shift_clear": 100, "shift_turbid": 100, "ood": 160}
# Old name kept for scripts that generate the first generator's training split.
LEGACY = {"train": 2400}


def _one(args):
    seed, split, i, out = args
    if split == "xr":
        rgb, mask, meta, jpeg = altgen.render(seed, i)
    else:
        rgb, mask, meta, jpeg = scenegen.render(seed, split, i)
    d = Path(out) / split
    (d / "image" / f"{i:05d}.jpg").write_bytes(jpeg)
    ok, png = cv2.imencode(".png", mask)
    (d / "mask" / f"{i:05d}.png").write_bytes(png.tobytes())
    return i, meta


def split_digest(d: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in d.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(d)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "data"))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--check", help="digest file to compare against (fails on mismatch)")
    ap.add_argument("--write-digest", help="write the digests to this file")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the frame counts")
    ap.add_argument("--splits", help="comma-separated subset of the splits (default: all of COUNTS)")
    args = ap.parse_args()
    counts = {**COUNTS, **LEGACY}
    counts = {k: counts[k] for k in args.splits.split(",")} if args.splits else COUNTS
    digests = {}
    t0 = time.time()
    with Pool(args.jobs) as pool:
        for split, n in counts.items():
            n = max(1, int(round(n * args.scale)))
            d = Path(args.out) / split
            (d / "image").mkdir(parents=True, exist_ok=True)
            (d / "mask").mkdir(parents=True, exist_ok=True)
            metas = [None] * n
            for i, meta in pool.imap_unordered(_one, [(args.seed, split, i, args.out) for i in range(n)], chunksize=2):
                metas[i] = meta
            with open(d / "meta.jsonl", "w") as f:
                for m in metas:
                    f.write(json.dumps(m, sort_keys=True) + "\n")
            digests[split] = {"frames": n, "sha256": split_digest(d)}
            print(f"{split}: {n} frames, sha256 {digests[split]['sha256'][:16]}…  ({time.time() - t0:.0f} s)", flush=True)
    result = {"seed": args.seed, "splits": digests}
    if args.write_digest:
        Path(args.write_digest).write_text(json.dumps(result, indent=1) + "\n")
    if args.check:
        want = json.loads(Path(args.check).read_text())
        if want != result:
            print(f"DATA MISMATCH: generated data differs from {args.check}", file=sys.stderr)
            for s in want["splits"]:
                if want["splits"][s] != result["splits"].get(s):
                    print(f"  {s}: expected {want['splits'][s]}, got {result['splits'].get(s)}", file=sys.stderr)
            sys.exit(1)
        print(f"data identical to {args.check} (byte for byte)")


if __name__ == "__main__":
    main()
