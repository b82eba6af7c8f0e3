"""Write tests/data/sample_bag/: a small rosbag2 MCAP bag of a synthetic survey "mission".

Usage: python3 training/make_sample_bag.py --out tests/data/sample_bag [--force]

The bag is written with the pure-Python `rosbags` library (no ROS install needed), rosbag2
metadata version 8 (what ROS 2 Jazzy writes), MCAP storage with zstd chunk compression (the
18 MB of raw masks shrink to ~40 kB; the JPEGs do not compress). Topics, both with header.frame_id "camera":
  /camera/image_raw/compressed  sensor_msgs/msg/CompressedImage  format "jpeg", 640x480, the
                                JPEG bytes exactly as scenegen.render() encoded them
  /camera/mask                  sensor_msgs/msg/Image  mono8, 0/255 ground truth of that frame
60 frames at 5 Hz: frame i has header stamp = log time = 1_700_000_000 s + i * 0.2 s, and its
mask carries the same stamp. No wall-clock time, random id or host name goes into the files, so
the output is byte-identical run to run (for the same directory name: rosbags names the MCAP
file `<dir name>.mcap`, and metadata.yaml lists it; and for the same rosbags / zstd versions).

Frames come from scenegen (seed 7, the seed of training/data; see data_digest.json), by split and
index, laid out as (frame index: kind, scenegen split, scenegen indices):
   0-14  clear       val pipe frames      0 1 3 5 6 9 12 19 23 26 27 28 30 35 39
  15-29  turbid      shift_turbid pipe    1 7 11 13 31 37 39 42 48 60 62 65 68 71 87
  30-39  clear       val pipe frames      46 49 50 54 56 57 60 61 67 70
  40-41  ood_plume   ood plume            13 14
  42-43  ood_wall    ood wall             6 10
  44-45  ood_water   ood open_water       21 26
  46-51  clear       val pipe frames      72 74 75 82 83 84
  52-53  clear_empty val negative frames  2 11 (seabed, no pipe: an all-zero mask)
  54-59  clear       val pipe frames      88 95 97 104 105 106
The indices were chosen once with the shipped model's evaluation (training/runs/shipped/
eval.json, score pipeline_mean:4, threshold_high 0.5878, threshold_low 0.4074) and are fixed
here; the rule, in index order, among frames that pass the input sanity check and whose JPEG is
at most 90 kB (to keep the bag small):
  clear:        val pipe, IoU >= 0.8, score < threshold_low - 0.05 (scores 0.21-0.35)
  clear_empty:  val negative, IoU 1, score < threshold_low - 0.05 (0.22, 0.20)
  turbid:       shift_turbid pipe, score > threshold_low + 0.05 (0.48-0.91; 10 of 15 above
                threshold_high, the first one included; IoU 0-0.92, two frames where the model
                misses the pipe entirely: turbid indices 39 and 62)
  ood_*:        score > threshold_high + 0.05 (0.84-0.94)
So a replay with the shipped model and default parameters (recover_frames 3) should show: confident
on 0-14; unconfident from 15 through 29 (every turbid score stays above threshold_low); recovering
30-32 and confident again from 33; unconfident 40-45; recovering 46-48, confident from 49 on,
including the two empty frames 52-53 (confident, pipeline not visible). These are expectations
from the Python evaluation (MC-dropout seed 0, 16 samples), not guarantees: another sampler seed
moves scores by a few hundredths, hence the 0.05 margins.
Each rendered frame's scenegen kind is checked against this table, so a changed generator fails
loudly instead of silently writing a different mission.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import scenegen  # noqa: E402

SEED = 7
EPOCH_NS = 1_700_000_000 * 10**9
PERIOD_NS = 200_000_000  # 5 Hz
FRAME_ID = "camera"
IMAGE_TOPIC = "/camera/image_raw/compressed"
MASK_TOPIC = "/camera/mask"
IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
MASK_TYPE = "sensor_msgs/msg/Image"
METADATA_VERSION = 8  # ROS 2 Jazzy's rosbag2 writes (and reads) version 8

# (label, scenegen split, scenegen kind, scenegen indices), in mission order.
SEGMENTS = [
    ("clear", "val", "pipe", [0, 1, 3, 5, 6, 9, 12, 19, 23, 26, 27, 28, 30, 35, 39]),
    ("turbid", "shift_turbid", "pipe", [1, 7, 11, 13, 31, 37, 39, 42, 48, 60, 62, 65, 68, 71, 87]),
    ("clear", "val", "pipe", [46, 49, 50, 54, 56, 57, 60, 61, 67, 70]),
    ("ood_plume", "ood", "plume", [13, 14]),
    ("ood_wall", "ood", "wall", [6, 10]),
    ("ood_water", "ood", "open_water", [21, 26]),
    ("clear", "val", "pipe", [72, 74, 75, 82, 83, 84]),
    ("clear_empty", "val", "negative", [2, 11]),
    ("clear", "val", "pipe", [88, 95, 97, 104, 105, 106]),
]


def layout():
    """[(frame, label, split, scenegen kind, scenegen index)] for every frame of the bag."""
    rows = []
    for label, split, kind, indices in SEGMENTS:
        for idx in indices:
            rows.append((len(rows), label, split, kind, idx))
    return rows


def stamp_ns(frame: int) -> int:
    return EPOCH_NS + frame * PERIOD_NS


def render_frames():
    """Yield (jpeg bytes, mask uint8 HxW) per frame, in bag order."""
    for frame, label, split, kind, idx in layout():
        _, mask, meta, jpeg = scenegen.render(SEED, split, idx)
        if meta["kind"] != kind:
            raise RuntimeError(f"frame {frame}: scenegen {split}/{idx} is now a {meta['kind']!r} "
                               f"frame, expected {kind!r}; the generator changed, re-pick SEGMENTS")
        yield jpeg, mask


def write_bag(out: Path, frames) -> None:
    """Write the bag into the new directory `out` from (jpeg, mask) pairs in frame order."""
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_JAZZY)
    Header = ts.types["std_msgs/msg/Header"]
    Time = ts.types["builtin_interfaces/msg/Time"]
    CompressedImage = ts.types[IMAGE_TYPE]
    Image = ts.types[MASK_TYPE]
    writer = Writer(out, version=METADATA_VERSION, storage_plugin=StoragePlugin.MCAP)
    # STORAGE = compression inside the storage (MCAP zstd chunks), not rosbag2 file/message
    # compression: any MCAP reader opens it, and metadata.yaml says compression_mode ''.
    writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    with writer:
        c_img = writer.add_connection(IMAGE_TOPIC, IMAGE_TYPE, typestore=ts)
        c_mask = writer.add_connection(MASK_TOPIC, MASK_TYPE, typestore=ts)
        for frame, (jpeg, mask) in enumerate(frames):
            t = stamp_ns(frame)
            header = Header(stamp=Time(sec=t // 10**9, nanosec=t % 10**9), frame_id=FRAME_ID)
            img = CompressedImage(header=header, format="jpeg",
                                  data=np.frombuffer(jpeg, np.uint8))
            mask = np.ascontiguousarray(mask, np.uint8)
            h, w = mask.shape
            msk = Image(header=header, height=h, width=w, encoding="mono8", is_bigendian=0,
                        step=w, data=mask.reshape(-1))
            writer.write(c_img, t, bytes(ts.serialize_cdr(img, IMAGE_TYPE)))
            writer.write(c_mask, t, bytes(ts.serialize_cdr(msk, MASK_TYPE)))


def readme_text(dir_name: str) -> str:
    rows = layout()
    n = len(rows)
    lines = [
        "# sample_bag",
        "",
        "A synthetic survey \"mission\" for replay tests. Generated, do not edit: made by",
        "`training/make_sample_bag.py` (pure-Python `rosbags`, no ROS needed) with",
        "",
        "    source scripts/env.sh",
        f"    python3 training/make_sample_bag.py --out tests/data/{dir_name} --force",
        "",
        "which rewrites these files byte for byte (same rosbags and zstd versions).",
        f"rosbag2 metadata version {METADATA_VERSION}, MCAP storage (`{dir_name}.mcap`, zstd chunks).",
        "",
        "| topic | type | messages |",
        "|---|---|---|",
        f"| `{IMAGE_TOPIC}` | {IMAGE_TYPE} (format `jpeg`, 640x480) | {n} |",
        f"| `{MASK_TOPIC}` | {MASK_TYPE} (`mono8`, 0/255 ground truth) | {n} |",
        "",
        f"{n} frames at 5 Hz, frame_id `{FRAME_ID}`. Frame i: header stamp = log time =",
        f"{EPOCH_NS // 10**9} s + i x 0.2 s; its mask has the same stamp.",
        f"Frames are scenegen.render(seed={SEED}, split, index):",
        "",
        "| frames | kind | split | scenegen indices |",
        "|---|---|---|---|",
    ]
    for label, split, kind, indices in SEGMENTS:
        first = next(r[0] for r in rows if r[1:] == (label, split, kind, indices[0]))
        lines.append(f"| {first}-{first + len(indices) - 1} | {label} | {split} ({kind}) | "
                     f"{' '.join(map(str, indices))} |")
    lines += [
        "",
        "Expected with the shipped model (see the script's docstring for how the frames were",
        "chosen): confident 0-14, unconfident 15-29 (turbid), recovering then confident from 30,",
        "unconfident 40-45 (plume, wall, open water), recovering then confident from 46; 52-53 show",
        "bare seabed (no pipe, all-zero mask).",
        "",
    ]
    return "\n".join(lines)


def make(out: Path, frames=None) -> None:
    """Write bag + README into `out` (must not exist) via a temporary sibling directory, so an
    interrupted run leaves no partial bag. `frames`: (jpeg, mask) pairs, default: rendered."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".sample_bag_", dir=out.parent) as tmp:
        # Same directory name inside the temp dir: rosbags names the MCAP after it.
        staged = Path(tmp) / out.name
        write_bag(staged, render_frames() if frames is None else frames)
        (staged / "README.md").write_text(readme_text(out.name))
        os.replace(staged, out)


OUR_FILES = {"metadata.yaml", "README.md"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="bag directory to create")
    ap.add_argument("--force", action="store_true",
                    help="replace an existing bag directory (only one holding a previous output)")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists():
        if not args.force:
            sys.exit(f"{out} exists; pass --force to replace it")
        names = {p.name for p in out.iterdir()}
        if not out.is_dir() or not names <= OUR_FILES | {out.name + ".mcap"}:
            sys.exit(f"{out} holds files this script does not write ({sorted(names)}); "
                     "refusing to delete it")
    t0 = time.time()
    if out.exists():
        # Build first, swap after: a failing render leaves the old bag in place.
        with tempfile.TemporaryDirectory(prefix=".sample_bag_old_", dir=out.parent) as tmp:
            new = Path(tmp) / "new" / out.name
            make(new)
            shutil.rmtree(out)
            os.replace(new, out)
    else:
        make(out)
    files = sorted(p for p in out.iterdir() if p.is_file())
    total = sum(p.stat().st_size for p in files)
    for p in files:
        print(f"  {p.name}: {p.stat().st_size / 1e6:.3f} MB")
    print(f"{out}: {len(layout())} frames, {total / 1e6:.2f} MB in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
