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
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = ["bag", "topic", "stamp_ns", "score"]
MASK_SUFFIX = "_mask.png"


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


def _check_mask(path: Path, shape, problems):
    try:
        data = path.read_bytes()
    except OSError as e:
        problems.append((str(path), f"unreadable ({e})"))
        return None
    m = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
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
            img = cv2.imread(str(fp), cv2.IMREAD_COLOR)
            if img is None:
                problems.append((str(fp), "unreadable frame: not an image OpenCV can decode"))
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
                img = cv2.imread(str(fp), cv2.IMREAD_COLOR)
                if img is None:
                    problems.append((str(fp), "unreadable frame: not an image OpenCV can decode"))
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
