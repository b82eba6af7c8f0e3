"""Write `<stamp_ns>_mask.png` beside the frames `select` picked, from a bag's ground-truth topic.

Usage: python bag_labels.py --labels DIR --gt-topic /camera/mask [--bag BAG]

A stand-in for a human labeller in `make adapt-demo` and for synthetic studies: for each row of
DIR/manifest.csv, the mono8 mask message on --gt-topic with the same header stamp (in the row's
bag, or --bag) becomes the label. Frames whose stamp has no mask stay unlabelled.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2
import numpy as np


def masks_by_stamp(bag: str, topic: str) -> dict:
    from rosbags.highlevel import AnyReader
    out = {}
    with AnyReader([Path(bag)]) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        if not conns:
            sys.exit(f"error: {bag} has no topic {topic} (topics: {sorted({c.topic for c in reader.connections})})")
        for conn, _, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            if msg.encoding != "mono8":
                sys.exit(f"error: {topic} in {bag} is {msg.encoding}, expected mono8")
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            a = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)[:, : msg.width]
            out[stamp] = np.where(a > 127, 255, 0).astype(np.uint8)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--labels", required=True)
    ap.add_argument("--gt-topic", required=True)
    ap.add_argument("--bag", help="bag to read the masks from (default: each manifest row's bag)")
    a = ap.parse_args()
    d = Path(a.labels)
    with open(d / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    cache, n = {}, 0
    for r in rows:
        bag = a.bag or r["bag"]
        if bag not in cache:
            cache[bag] = masks_by_stamp(bag, a.gt_topic)
        m = cache[bag].get(int(r["stamp_ns"]))
        if m is None:
            continue
        cv2.imwrite(str(d / f"{r['stamp_ns']}_mask.png"), m)
        n += 1
    print(f"labelled {n} of {len(rows)} selected frames in {d} from {a.gt_topic}")


if __name__ == "__main__":
    main()
