"""Label directories for fine-tuning (docs/interfaces.md §8), checked without PyTorch (numpy + OpenCV).

A label directory is what `pipeline_seg select` writes — `<stamp_ns>.png` frames and
`manifest.csv` (`bag, topic, stamp_ns, score`) — plus a mask beside each labelled frame,
`<stamp_ns>_mask.png`: mono8, the frame's width and height, 0 = background, 255 = pipeline.
Frames without a mask are unlabelled and ignored (counted).

`check_label_dirs` finds every problem in every directory before anything is trained or
written, and raises one `LabelError` that names each file and what is wrong with it.
"""
from __future__ import annotations

import csv
import struct
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = ["bag", "topic", "stamp_ns", "score"]
MASK_SUFFIX = "_mask.png"
# The largest frame the pipeline accepts (the max_image_pixels parameter's default).
MAX_PIXELS = 4096 * 4096


class LabelError(Exception):
    """One or more label files are unusable; `problems` lists (path, problem)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        lines = [f"  {p}: {why}" for p, why in problems]
        super().__init__(f"{len(problems)} problem(s) with the labels; nothing was trained or written:\n"
                         + "\n".join(lines))


@dataclass
class Labelled:
    """One labelled frame: its files and the decoded pixels (RGB uint8, mask bool)."""
    frame: Path
    mask_path: Path
    rgb: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)


@dataclass
class LabelSet:
    frames: list[Labelled]
    unlabelled: int
    per_dir: dict  # dir -> {"frames": n, "labelled": n, "unlabelled": n}


def _read_manifest(d: Path, problems):
    f = d / MANIFEST
    if not f.is_file():
        problems.append((str(f), "missing: a label directory is what `pipeline_seg select` writes "
                                 "(<stamp_ns>.png frames and manifest.csv)"))
        return None
    try:
        with open(f, newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as e:
        problems.append((str(f), f"unreadable ({e})"))
        return None
    if not rows or [c.strip() for c in rows[0]] != MANIFEST_COLUMNS:
        problems.append((str(f), f"header must be {','.join(MANIFEST_COLUMNS)}, found {','.join(rows[0]) if rows else 'nothing'}"))
        return None
    stamps = []
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(MANIFEST_COLUMNS) or not r[2].strip().isdigit():
            problems.append((str(f), f"line {i}: expected bag,topic,stamp_ns,score with an integer stamp_ns, found {r}"))
            continue
        stamps.append(r[2].strip())
    return stamps


def _declared_size(data: bytes):
    """(width, height) a PNG (IHDR) or JPEG (first SOF) header declares, read strictly: a header
    that cannot be read this way is a string saying why (the decoder might read another size);
    None for anything but PNG and JPEG."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return struct.unpack(">II", data[16:24]) if len(data) >= 24 and data[12:16] == b"IHDR" else "no PNG IHDR"
    if not data.startswith(b"\xff\xd8"):
        return None
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker == 0x00:
            # libjpeg reads FF 00 as no marker and scans on: the frame header after it here may
            # not be the one it decodes (1.2 GB for a frame declaring 16x16; found by fuzzing).
            break
        elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
        elif marker in (0xD9, 0xDA):
            break
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 <= len(data):
                return struct.unpack(">HH", data[i + 5:i + 9])[::-1]
            break
        else:
            i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return "no JPEG frame header (SOF) in a well-formed marker sequence"


def _png_chunk_past_end(data: bytes):
    """The first PNG chunk whose declared length runs past the end of the file, as text, or None.
    Every chunk to the end of the file counts, after IEND too: OpenCV reads on past an IEND that
    carries data (found by fuzzing)."""
    i = 8
    while i + 8 <= len(data):
        n, kind = struct.unpack(">I", data[i:i + 4])[0], data[i + 4:i + 8]
        if i + 12 + n > len(data):
            return f"chunk {kind.decode('latin-1')!r} at byte {i} declares {n} bytes, past the end of the file"
        i += 12 + n
    return None


def _decode(path: Path, flags, what: str, problems):
    """The image at `path` decoded by OpenCV, or None with the problem recorded. Only PNG and JPEG
    are read, only up to MAX_PIXELS as their header declares it, and a PNG only if every chunk
    fits in the file: OpenCV allocates (and for a JPEG cut short, fills) every declared pixel, and
    OpenCV 5's PNG reader allocates each chunk's declared length before reading it. Found by
    fuzzing (fuzz/regressions/labels/): a 300-byte JPEG declaring 20000x20000 cost 2.3 GB, an
    85-byte PNG declaring a 4 GB IDAT chunk 4.1 GB."""
    try:
        data = path.read_bytes()
    except OSError as e:
        problems.append((str(path), f"unreadable ({e})"))
        return None
    size = _declared_size(data)
    if size is None:
        problems.append((str(path), f"unreadable {what}: not a PNG or JPEG image"))
        return None
    if isinstance(size, str):
        problems.append((str(path), f"unreadable {what}: {size}"))
        return None
    if size[0] * size[1] > MAX_PIXELS:
        problems.append((str(path), f"{what} declares {size[0]}x{size[1]} pixels, more than the pipeline "
                                    f"accepts ({MAX_PIXELS} pixels, max_image_pixels)"))
        return None
    past_end = _png_chunk_past_end(data) if data.startswith(b"\x89PNG") else None
    if past_end:
        problems.append((str(path), f"unreadable {what}: truncated or corrupt PNG: {past_end}"))
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), flags)


def _read_frame(path: Path, problems):
    n = len(problems)
    img = _decode(path, cv2.IMREAD_COLOR, "frame", problems)
    if img is None and len(problems) == n:
        problems.append((str(path), "unreadable frame: not an image OpenCV can decode"))
    return img


def _check_mask(path: Path, shape, problems):
    n = len(problems)
    m = _decode(path, cv2.IMREAD_UNCHANGED, "mask", problems)
    if len(problems) > n:
        return None
    if m is None:
        problems.append((str(path), "unreadable: not a PNG image OpenCV can decode"))
        return None
    if m.ndim != 2 or m.dtype != np.uint8:
        ch = 1 if m.ndim == 2 else m.shape[2]
        problems.append((str(path), f"must be mono8 (one 8-bit channel), found {ch} channel(s) of {m.dtype}"))
        return None
    if shape is not None and m.shape != shape:
        problems.append((str(path), f"size {m.shape[1]}x{m.shape[0]} differs from its frame's {shape[1]}x{shape[0]}"))
        return None
    bad = (m != 0) & (m != 255)
    if bad.any():
        vals = np.unique(m[bad])
        problems.append((str(path), f"{int(bad.sum())} pixel(s) with values other than 0 and 255 "
                                    f"(e.g. {', '.join(str(int(v)) for v in vals[:5])}); "
                                    "export the mask as 0 = background, 255 = pipeline without anti-aliasing"))
        return None
    return m == 255


def check_label_dirs(dirs) -> LabelSet:
    """Every labelled frame of `dirs`, decoded; raises LabelError naming every bad file."""
    problems: list[tuple[str, str]] = []
    frames: list[Labelled] = []
    per_dir = {}
    unlabelled_total = 0
    dirs = [Path(d) for d in dirs]
    if not dirs:
        raise LabelError([("LABELS", "no label directory given")])
    for d in dirs:
        if not d.is_dir():
            problems.append((str(d), "not a directory"))
            continue
        stamps = _read_manifest(d, problems)
        if stamps is None:
            continue
        listed = set(stamps)
        masks = {p.name[: -len(MASK_SUFFIX)]: p for p in d.glob("*" + MASK_SUFFIX)}
        for stem in sorted(set(masks) - listed):
            if not (d / f"{stem}.png").exists():
                problems.append((str(masks[stem]), f"missing frame: {stem}.png is not in the directory"))
        n_lab = n_unlab = 0
        for stem in stamps:
            fp = d / f"{stem}.png"
            mp = d / f"{stem}{MASK_SUFFIX}"
            if not fp.exists():
                if mp.exists():
                    problems.append((str(mp), f"missing frame: {fp.name} is listed in {MANIFEST} but absent"))
                else:
                    problems.append((str(fp), f"missing frame: listed in {MANIFEST} but absent"))
                continue
            if not mp.exists():
                n_unlab += 1
                continue
            img = _read_frame(fp, problems)
            if img is None:
                continue
            m = _check_mask(mp, img.shape[:2], problems)
            if m is None:
                continue
            frames.append(Labelled(fp, mp, np.ascontiguousarray(img[..., ::-1]), m))
            n_lab += 1
        # masks beside frames that the manifest does not list are labels too
        for stem in sorted(set(masks) - listed):
            fp = d / f"{stem}.png"
            if fp.exists():
                img = _read_frame(fp, problems)
                if img is None:
                    continue
                m = _check_mask(masks[stem], img.shape[:2], problems)
                if m is not None:
                    frames.append(Labelled(fp, masks[stem], np.ascontiguousarray(img[..., ::-1]), m))
                    n_lab += 1
        per_dir[str(d)] = {"frames": n_lab + n_unlab, "labelled": n_lab, "unlabelled": n_unlab}
        unlabelled_total += n_unlab
    if not problems and not frames:
        problems.append((", ".join(str(d) for d in dirs),
                         f"empty label set: no frame has a <stamp_ns>{MASK_SUFFIX} beside it"))
    if problems:
        raise LabelError(problems)
    return LabelSet(frames, unlabelled_total, per_dir)


def write_label_dir(d: Path, items, bag="synthetic", topic="/camera/image_raw") -> None:
    """Write a label directory in `select`'s layout from (stamp_ns, rgb uint8, mask uint8 or None)."""
    d.mkdir(parents=True, exist_ok=True)
    with open(d / MANIFEST, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(MANIFEST_COLUMNS)
        for stamp, rgb, mask in items:
            w.writerow([bag, topic, stamp, "0.0"])
            cv2.imwrite(str(d / f"{stamp}.png"), rgb[..., ::-1])
            if mask is not None:
                cv2.imwrite(str(d / f"{stamp}{MASK_SUFFIX}"), np.where(mask > 127, 255, 0).astype(np.uint8))
