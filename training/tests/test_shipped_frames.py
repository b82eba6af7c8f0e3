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


def frame_score(sess, meta, rgb, i):
    """The model's default frame score of one frame (Python engine, T = default_samples)."""
    key, p = meta.props["score_method"], meta.props
    rng = np.random.default_rng([0, i])
    if key == "trust":
        has_fd = any(o.name == "feature_distance" for o in sess.get_outputs())
        sig, _ = trust.signals(sess, meta, rgb, meta.default_samples, rng, float(p["pixel_threshold"]),
                               int(p["band_px"]), has_fd)
        return float(trust.score(trust.from_metadata(p), sig)[0])
    r = mcd.infer(sess, meta, rgb, meta.default_samples, rng)
    return mcd.frame_score(r.entropy_model, r.prob_model, key, float(p["pixel_threshold"]), int(p["band_px"]))


def test_at_least_three_sane_ood_frames_score_above_threshold_high():
    sess, meta = mcd.load(str(MODEL), threads=2)
    th = float(meta.props["threshold_high"])
    flagged = 0
    for i, im in enumerate(sorted((FRAMES / "ood" / "image").glob("*.jpg"))):
        rgb = mcd.read_rgb(im)
        ok, _ = mcd.sanity(rgb)
        flagged += ok and frame_score(sess, meta, rgb, i) > th
    assert flagged >= 3


def test_clear_val_frames_mostly_below_threshold_high():
    sess, meta = mcd.load(str(MODEL), threads=2)
    th = float(meta.props["threshold_high"])
    below = total = 0
    for i, im in enumerate(sorted((FRAMES / "val" / "image").glob("*.jpg"))):
        total += 1
        below += frame_score(sess, meta, mcd.read_rgb(im), i) <= th
    assert below / total >= 0.75
