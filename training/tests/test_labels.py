"""Label directories for `make finetune` (docs/interfaces.md §8): bad labels are refused before any
training, with the file and the problem named, and nothing is written (no PyTorch needed)."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import labels as L  # noqa: E402

STAMP0 = 1_700_000_000_000_000_000


def frame(i, h=480, w=640):
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def mask(i, h=480, w=640):
    m = np.zeros((h, w), np.uint8)
    m[:, 100 + 10 * i: 180 + 10 * i] = 255
    return m


@pytest.fixture
def good_dir(tmp_path):
    d = tmp_path / "labels"
    L.write_label_dir(d, [(STAMP0 + i, frame(i), mask(i) if i < 4 else None) for i in range(6)])
    return d


def test_good_directory_loads_labelled_frames_and_counts_unlabelled(good_dir):
    ls = L.check_label_dirs([good_dir])
    assert len(ls.frames) == 4 and ls.unlabelled == 2
    assert ls.per_dir[str(good_dir)] == {"frames": 6, "labelled": 4, "unlabelled": 2}
    f = ls.frames[0]
    assert f.rgb.shape == (480, 640, 3) and f.mask.dtype == bool
    # RGB order: the file is BGR on disk
    assert np.array_equal(f.rgb, cv2.imread(str(f.frame))[..., ::-1])
    assert np.array_equal(f.mask, cv2.imread(str(f.mask_path), 0) == 255)


def test_several_directories(good_dir, tmp_path):
    d2 = tmp_path / "more"
    L.write_label_dir(d2, [(STAMP0 + 100, frame(7), mask(1))])
    ls = L.check_label_dirs([good_dir, d2])
    assert len(ls.frames) == 5


def problems(dirs):
    with pytest.raises(L.LabelError) as e:
        L.check_label_dirs(dirs)
    return e.value.problems, str(e.value)


def test_missing_frame_listed_in_manifest(good_dir):
    (good_dir / f"{STAMP0 + 1}.png").unlink()
    (p, why), = problems([good_dir])[0]
    assert p == str(good_dir / f"{STAMP0 + 1}_mask.png") and "missing frame" in why


def test_mask_without_any_frame(good_dir):
    cv2.imwrite(str(good_dir / "123_mask.png"), mask(0))
    (p, why), = problems([good_dir])[0]
    assert p.endswith("123_mask.png") and "missing frame" in why and "123.png" in why


def test_size_mismatch(good_dir):
    cv2.imwrite(str(good_dir / f"{STAMP0 + 2}_mask.png"), mask(2, 240, 320))
    (p, why), = problems([good_dir])[0]
    assert p.endswith(f"{STAMP0 + 2}_mask.png") and "320x240" in why and "640x480" in why


def test_values_other_than_0_and_255(good_dir):
    m = mask(0)
    m[0, 0] = 128
    m[5, 5] = 1
    cv2.imwrite(str(good_dir / f"{STAMP0}_mask.png"), m)
    (p, why), = problems([good_dir])[0]
    assert p.endswith(f"{STAMP0}_mask.png") and "2 pixel(s)" in why and "128" in why


def test_colour_mask_is_not_mono8(good_dir):
    cv2.imwrite(str(good_dir / f"{STAMP0}_mask.png"), cv2.cvtColor(mask(0), cv2.COLOR_GRAY2BGR))
    (p, why), = problems([good_dir])[0]
    assert "mono8" in why and "3 channel" in why


def test_16_bit_mask_is_not_mono8(good_dir):
    cv2.imwrite(str(good_dir / f"{STAMP0}_mask.png"), mask(0).astype(np.uint16) * 257)
    (p, why), = problems([good_dir])[0]
    assert "mono8" in why and "uint16" in why


def test_unreadable_mask_and_frame(good_dir):
    (good_dir / f"{STAMP0}_mask.png").write_bytes(b"not a png")
    (good_dir / f"{STAMP0 + 1}.png").write_bytes(b"\x89PNG truncated")
    probs, text = problems([good_dir])
    assert {Path(p).name for p, _ in probs} == {f"{STAMP0}_mask.png", f"{STAMP0 + 1}.png"}
    assert all("unreadable" in why for _, why in probs)
    assert "nothing was trained or written" in text


def test_empty_set(tmp_path):
    d = tmp_path / "unlabelled"
    L.write_label_dir(d, [(STAMP0 + i, frame(i), None) for i in range(3)])
    (p, why), = problems([d])[0]
    assert "empty label set" in why


def test_no_directory_and_missing_manifest(tmp_path):
    (p, why), = problems([tmp_path / "nope"])[0]
    assert "not a directory" in why
    d = tmp_path / "bare"
    d.mkdir()
    cv2.imwrite(str(d / "1.png"), frame(0))
    cv2.imwrite(str(d / "1_mask.png"), mask(0))
    (p, why), = problems([d])[0]
    assert p.endswith("manifest.csv") and "missing" in why


def test_every_problem_is_reported_at_once(good_dir, tmp_path):
    cv2.imwrite(str(good_dir / f"{STAMP0 + 2}_mask.png"), mask(2, 240, 320))
    m = mask(0)
    m[1, 1] = 7
    cv2.imwrite(str(good_dir / f"{STAMP0}_mask.png"), m)
    probs, _ = problems([good_dir, tmp_path / "nope"])
    assert len(probs) == 3


def test_finetune_refuses_bad_labels_before_importing_torch(good_dir, tmp_path):
    """The CLI stops with exit 2, names the file and writes nothing, even without PyTorch."""
    m = mask(0)
    m[0, 0] = 100
    cv2.imwrite(str(good_dir / f"{STAMP0}_mask.png"), m)
    out = tmp_path / "out" / "ft.onnx"
    out.parent.mkdir()
    code = ("import sys, builtins; real = builtins.__import__\n"
            "def guard(name, *a, **k):\n"
            "    if name == 'torch' or name.startswith('torch.'): raise ImportError('torch must not be needed')\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = guard\n"
            f"sys.path.insert(0, {str(HERE.parent)!r}); sys.argv = ['finetune.py', '--labels', {str(good_dir)!r}, '--out', {str(out)!r}]\n"
            "import finetune; sys.exit(finetune.main())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert f"{STAMP0}_mask.png" in proc.stderr and "other than 0 and 255" in proc.stderr
    assert list(out.parent.iterdir()) == []
