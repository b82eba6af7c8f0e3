"""The randomised generator's families: held-out families never reach training, held-out
splits are made of them, renders are pure functions of (seed, split, index), and the second
and third renderers (altgen.py, planegen.py) are deterministic with exact empty masks on empty scenes."""
import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import scenegen  # noqa: E402


def test_held_out_families_never_in_training_splits():
    held = {axis: fam for axis, fam in scenegen.HELD_OUT.values()}
    for split in ("train_dr", "val_dr", "nopipe_dr"):
        for i in range(300):
            st = scenegen.draw_style(7, split, i)
            for axis, fam in held.items():
                assert getattr(st, axis) != fam, (split, i, axis)


def test_held_out_splits_are_their_family():
    for split, (axis, fam) in scenegen.HELD_OUT.items():
        for i in range(20):
            assert getattr(scenegen.draw_style(7, split, i), axis) == fam


def test_training_families_all_occur():
    seen = {"water": set(), "seabed": set(), "coating": set()}
    for i in range(300):
        st = scenegen.draw_style(7, "train_dr", i)
        for k in seen:
            seen[k].add(getattr(st, k))
    assert seen["water"] == set(scenegen.DR_WATERS)
    assert seen["seabed"] == set(scenegen.DR_SEABEDS)
    assert seen["coating"] == set(scenegen.DR_COATINGS)


def digest(r):
    rgb, mask, meta, jpeg = r
    return hashlib.sha256(jpeg + mask.tobytes()).hexdigest()


@pytest.mark.parametrize("split", ["train_dr", "ho_light"])
def test_randomised_render_is_deterministic(split):
    a, b = scenegen.render(3, split, 1), scenegen.render(3, split, 1)
    assert digest(a) == digest(b) and a[2] == b[2]
    assert a[2]["style"][scenegen.HELD_OUT.get(split, ("light",))[0]] == scenegen.HELD_OUT.get(split, ("light", "lamps"))[1]


def test_no_pipe_split_has_empty_masks():
    for i in range(3):
        rgb, mask, meta, _ = scenegen.render(3, "nopipe_dr", i)
        assert not mask.any(), meta


@pytest.mark.parametrize("name,empty", [("altgen", ("seabed", "open_water", "structure")),
                                        ("planegen", ("seabed", "open_water", "wall"))])
def test_other_renderers(name, empty):
    """The second renderer (altgen, test only) and the third (planegen, training only): deterministic,
    binary masks, empty masks on empty scenes, and a pipe labelled where a pipe frame shows one."""
    gen = __import__(name)
    a, b = gen.render(5, 0), gen.render(5, 0)
    assert digest(a) == digest(b)
    rgb, mask, meta, _ = a
    assert rgb.shape == (480, 640, 3) and mask.shape == (480, 640) and set(np.unique(mask)) <= {0, 255}
    for kind in empty:
        assert not gen.render(5, 1, kind)[1].any(), kind
    assert sum(gen.render(5, i, "pipe")[1].any() for i in range(4)) >= 3


def test_third_renderer_cylinder_hits():
    """The ray-cylinder hit the pipe mask rests on: hit points lie on the surface, and rays that
    miss pass the axis farther than the radius."""
    import planegen
    rng = np.random.default_rng(0)
    o = np.array([0.0, 0.0, 2.0], np.float32)
    d = rng.normal(size=(2000, 3)).astype(np.float32)
    d[:, 2] = -np.abs(d[:, 2])
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    a0, ax, r = np.array([0.3, 1.0, 0.4], np.float32), np.array([0.6, 0.8, 0.0], np.float32), 0.4
    t = planegen._cylinder(o, d, a0, ax, r)
    hit = np.isfinite(t)
    assert 50 < hit.sum() < 1950
    p = o + t[hit, None] * d[hit] - a0
    dist = np.linalg.norm(p - (p @ ax)[:, None] * ax, axis=1)
    assert np.allclose(dist, r, atol=1e-3)
    # A missing ray's closest approach to the axis line.
    n = np.cross(d[~hit], ax)
    gap = np.abs((o - a0) @ n.T) / np.linalg.norm(n, axis=1)
    assert (gap > r - 1e-4).all()
