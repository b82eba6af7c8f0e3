"""The scene generator is deterministic for a seed and its masks are exact labels."""
import hashlib
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import scenegen  # noqa: E402


def digest(seed, split, index):
    rgb, mask, meta, jpeg = scenegen.render(seed, split, index)
    return hashlib.sha256(jpeg + mask.tobytes()).hexdigest(), rgb, mask, meta


@pytest.mark.parametrize("split,index", [("train", 0), ("val", 3), ("ood", 1), ("shift_turbid", 2)])
def test_same_seed_same_bytes(split, index):
    a = digest(11, split, index)
    b = digest(11, split, index)
    assert a[0] == b[0]
    assert a[3] == b[3]


def test_same_bytes_in_a_fresh_process():
    """No hidden state (global RNG, caches) leaks between frames or processes."""
    digest(11, "val", 0)  # render something else first
    here = digest(11, "val", 1)[0]
    code = (f"import sys; sys.path.insert(0, {str(HERE.parent)!r}); import scenegen, hashlib; "
            "r, m, meta, j = scenegen.render(11, 'val', 1); print(hashlib.sha256(j + m.tobytes()).hexdigest())")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert here == there


def test_other_seed_other_frame():
    assert digest(11, "val", 0)[0] != digest(12, "val", 0)[0]
    assert digest(11, "val", 0)[0] != digest(11, "val", 1)[0]


def test_frame_and_mask_layout():
    for i in range(6):
        _, rgb, mask, meta = digest(5, "train", i)
        assert rgb.shape == (scenegen.H, scenegen.W, 3) and rgb.dtype == np.uint8
        assert mask.shape == (scenegen.H, scenegen.W) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        if meta["kind"] == "negative":
            assert not mask.any(), "a frame without pipe must have an empty mask"
        assert abs(meta["pipeline_fraction"] - (mask > 0).mean()) < 1e-4


def test_pipe_is_brighter_or_different_where_masked():
    """The mask marks what the image shows: masked pixels differ in colour statistics from the
    background on a clear pipe frame (a mask drawn in the wrong place would not)."""
    found = 0
    for i in range(20):
        _, rgb, mask, meta = digest(3, "val", i)
        if meta["kind"] != "pipe" or meta["pipeline_fraction"] < 0.05:
            continue
        inside = rgb[mask > 0].astype(float).mean(0)
        # compare against a band just outside the pipe (same distance, same light)
        ring = cv2.dilate(mask, np.ones((15, 15), np.uint8)) - mask
        outside = rgb[ring > 0].astype(float).mean(0)
        if np.abs(inside - outside).max() > 4:
            found += 1
    assert found >= 3


def test_ood_kinds_and_no_pipe_in_open_water():
    kinds = set()
    for i in range(12):
        _, _, mask, meta = digest(2, "ood", i)
        kinds.add(meta["kind"])
        if meta["kind"] in ("open_water", "wall", "plume"):
            assert not mask.any()
    assert {"open_water", "plume", "wall", "overexposed"} <= kinds


def test_digest_check_holds_labels_exact_and_lets_image_bits_move(tmp_path, capsys):
    """make_data --check (the first step of `make model`): other frame counts or labels fail, while
    images that differ only in bytes (numpy's SIMD code differs between CPUs) are reported and pass."""
    import make_data
    for name, body in [("image/00000.jpg", b"jpeg"), ("mask/00000.png", b"png"), ("meta.jsonl", b"{}\n")]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(body)
    want = {"seed": 7, "splits": {"val": {"frames": 1, "sha256": make_data.split_digest(tmp_path),
                                          "labels": make_data.split_digest(tmp_path, labels_only=True)}}}
    (tmp_path / "image/00000.jpg").write_bytes(b"jpeg, a few pixels rounded otherwise")
    got = {"seed": 7, "splits": {"val": {"frames": 1, "sha256": make_data.split_digest(tmp_path),
                                         "labels": make_data.split_digest(tmp_path, labels_only=True)}}}
    assert got["splits"]["val"]["labels"] == want["splits"]["val"]["labels"]
    make_data.check(want, got, "digest.json")
    assert "image bytes differ in val" in capsys.readouterr().out
    (tmp_path / "mask/00000.png").write_bytes(b"another label")
    got["splits"]["val"]["labels"] = make_data.split_digest(tmp_path, labels_only=True)
    with pytest.raises(SystemExit) as e:
        make_data.check(want, got, "digest.json")
    assert e.value.code == 1
    assert "DATA MISMATCH" in capsys.readouterr().err
    got["splits"]["val"] = dict(want["splits"]["val"], frames=2)
    with pytest.raises(SystemExit):
        make_data.check(want, got, "digest.json")
