"""The test frames shipped for later issues: layout, size, and OOD frames the gate must flag."""
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "training"))
import mcd  # noqa: E402
import trust  # noqa: E402

FRAMES = ROOT / "tests" / "data" / "frames"
MODEL = ROOT / "models" / "pipeline_seg_unet.onnx"


def test_layout_and_size():
    total = sum(f.stat().st_size for f in FRAMES.rglob("*") if f.is_file())
    assert total <= 3 * 1024 * 1024
    for split in ("val", "shift", "ood"):
        images = sorted((FRAMES / split / "image").glob("*.jpg"))
        assert len(images) >= 3, split
        for im in images:
            m = cv2.imread(str(FRAMES / split / "mask" / (im.stem + ".png")), cv2.IMREAD_UNCHANGED)
            rgb = mcd.read_rgb(im)
            assert rgb.shape == (480, 640, 3)
            assert m is not None and m.shape == (480, 640) and m.dtype == np.uint8
            assert set(np.unique(m)) <= {0, 255}


def test_at_least_three_sane_ood_frames_score_above_threshold_high():
    sess, meta = mcd.load(str(MODEL), threads=2)
    th = float(meta.props["threshold_high"])
    flagged = 0
    for i, im in enumerate(sorted((FRAMES / "ood" / "image").glob("*.jpg"))):
        rgb = mcd.read_rgb(im)
        ok, _ = mcd.sanity(rgb)
        s, _ = trust.default_score(sess, meta, rgb, meta.default_samples, np.random.default_rng([0, i]))
        flagged += ok and s > th
    assert flagged >= 3


def test_clear_val_frames_mostly_below_threshold_high():
    sess, meta = mcd.load(str(MODEL), threads=2)
    th = float(meta.props["threshold_high"])
    below = total = 0
    for i, im in enumerate(sorted((FRAMES / "val" / "image").glob("*.jpg"))):
        total += 1
        rgb = mcd.read_rgb(im)
        s, _ = trust.default_score(sess, meta, rgb, meta.default_samples, np.random.default_rng([0, i]))
        below += s <= th
    assert below / total >= 0.75
