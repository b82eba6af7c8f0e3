"""The trust score's features as training/trust.py fits and scores them (docs/interfaces.md §9):
`log:x` is ln(max(x, 0) + 1e-4) as src/engine/trust.rs computes it, a signal that is not finite
gives 1, and the fit separates bad from good frames through the logged features (numpy only)."""
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "training"))
import trust  # noqa: E402


def test_log_features_match_the_engine_rule():
    sig = np.zeros((3, len(trust.SIGNALS)))
    sig[0, 0], sig[1, 0], sig[2, 0] = 0.2, -0.5, np.nan
    x = trust.columns(sig, ["log:entropy_mean", "entropy_mean"])
    assert np.isclose(x[0, 0], np.log(0.2 + 1e-4)) and x[0, 1] == 0.2
    assert np.isclose(x[1, 0], np.log(1e-4))  # a negative signal counts as 0
    assert np.isnan(x[2, 0])
    model = {"features": ["log:entropy_mean"], "mean": np.array([-2.0]), "scale": np.array([1.0]),
             "coef": np.array([1.0]), "intercept": 0.0}
    s = trust.score(model, sig)
    assert np.isclose(s[0], 1 / (1 + np.exp(-(np.log(0.2 + 1e-4) + 2.0))))
    assert s[2] == 1.0


def test_fit_on_logged_features_separates_and_round_trips_through_metadata():
    rng = np.random.default_rng(0)
    n = 200
    sig = np.abs(rng.normal(0.0, 0.05, (n, len(trust.SIGNALS))))
    bad = rng.random(n) < 0.3
    sig[bad, 0] *= 20  # bad frames: an order of magnitude more entropy
    feats = [f"log:{s}" for s in trust.SIGNALS if s not in trust.UNFITTED]
    model = trust.fit(sig, bad.astype(float), feats)
    s = trust.score(model, sig)
    assert s[bad].mean() > 0.7 and s[~bad].mean() < 0.3
    back = trust.from_metadata(trust.metadata(model))
    assert back["features"] == feats
    assert np.allclose(trust.score(back, sig), s, atol=1e-9)


def test_clipped_fraction_and_the_clip_rule():
    rgb = np.full((480, 640, 3), 100, np.uint8)
    rgb[::5, ::5] = 255  # marine snow: saturated specks, no clipped cell
    assert trust.clipped_fraction(rgb) == 0.0
    rgb[40:160, 100:260] = 255  # a clipped region, 1/16 of the frame, not aligned to the 4 x 4 cells
    assert abs(trust.clipped_fraction(rgb) - 1 / 16) < 0.01
    small = np.full((10, 10, 3), 100, np.uint8)
    small[:, :3] = 250  # smaller than the grid: a cell is a pixel
    assert abs(trust.clipped_fraction(small) - 0.3) < 1e-12
    sig = np.zeros((2, len(trust.SIGNALS)))
    sig[:, trust.SIGNALS.index("clipped_fraction")] = [0.05, 0.2]
    model = {"features": ["log:entropy_mean"], "mean": np.array([0.0]), "scale": np.array([1.0]),
             "coef": np.array([0.0]), "intercept": -5.0, "clip_max": 0.1}
    s = trust.score(model, sig)
    assert s[0] < 0.01 and s[1] == 1.0
    assert trust.from_metadata(trust.metadata(model))["clip_max"] == 0.1
    assert trust.from_metadata(trust.metadata({**model, "clip_max": None}))["clip_max"] is None


def test_default_gate_rule_trades_one_bad_frame_only_for_more_ood():
    # Candidate r4's figures: one bad frame of 22 fewer, 0.62 more of the OOD renders flagged.
    assert trust.prefer_trust((0.909, 0.960), (0.955, 0.344), 22)
    # More bad frames flagged, or the same with at least as many OOD frames: trust wins.
    assert trust.prefer_trust((1.0, 0.1), (0.955, 0.9), 22)
    assert trust.prefer_trust((0.955, 0.5), (0.955, 0.5), 22)
    # Two bad frames of 22 lost is more than sampling noise, whatever the OOD gain.
    assert not trust.prefer_trust((0.864, 1.0), (0.955, 0.344), 22)
    # Within one frame, but the OOD gain is smaller than the loss: keep the current score.
    assert not trust.prefer_trust((0.909, 0.37), (0.955, 0.344), 22)
    # Many bad frames: the slack is 5 %, not one frame.
    assert trust.prefer_trust((0.93, 0.9), (0.97, 0.5), 200)
    assert not trust.prefer_trust((0.90, 0.9), (0.97, 0.5), 200)
