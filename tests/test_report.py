"""`report.html` of `pipeline_seg replay` (issue 5): one self-contained file with seven SVG plots
with labelled axes and a gallery of inline images, also written when the replay stops early;
rendered in headless Chromium (/usr/bin/chromium, installed by scripts/setup.sh).

Run after `source scripts/env.sh`; the binary is `$PIPELINE_SEG_ROOT/target/release/pipeline_seg`.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import BAG, GT
from conftest import replay as replay_bag

CHROMIUM = Path("/usr/bin/chromium")
# Axis labels of the seven plots, in order (x, y); the third needs a model with feature_distance
# or trust (the shipped one has both), the fourth ground truth.
AXES = [
    ("time since first frame [s]", "frame score"),
    ("time since first frame [s]", "IoU"),
    ("time since first frame [s]", "trust / feature distance"),
    ("coverage (fraction of labelled frames kept)", "risk (fraction of kept frames bad)"),
    ("confidence max(p, 1-p)", "accuracy"),
    ("coverage (fraction of pixels kept)", "risk (error rate of kept pixels)"),
    ("false positive rate (right pixels flagged)", "true positive rate (wrong pixels flagged)"),
]


def replay(out, *extra, bag=BAG, rc=0):
    """This module's replay: T = 2, only ~/confidence written to the output bag."""
    return replay_bag(out, "--samples", "2", "--write", "confidence", *extra, bag=bag, rc=rc)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "out"
    replay(out, "--gt-topic", GT)
    return out / "report.html"


def svgs(html):
    return re.findall(r"<svg\b.*?</svg>", html, flags=re.S)


def check_self_contained(html):
    # Every URL in the file is an SVG namespace; no external script, style, frame or link.
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    for attr in re.findall(r"""\b(?:src|href|xlink:href)\s*=\s*["']([^"']*)""", html):
        assert attr.startswith("data:"), attr
    assert "<script" not in html.lower() and "<link" not in html.lower() and "<iframe" not in html.lower()
    assert "@import" not in html and "url(" not in html


def test_report_is_self_contained_with_plots_and_gallery(report):
    html = report.read_text()
    check_self_contained(html)
    plots = svgs(html)
    assert len(plots) == 7
    for svg, (x, y) in zip(plots, AXES):
        texts = [re.sub(r"\s+", " ", t).strip() for t in re.findall(r"<text\b[^>]*>(.*?)</text>", svg, flags=re.S)]
        assert x in texts and y in texts, (x, y, texts[:8])
        assert sum(bool(re.fullmatch(r"-?[0-9.]+", t)) for t in texts) >= 6, "tick labels"
    assert "AURC = " in plots[5] and "AUROC = " in plots[6]
    imgs = re.findall(r'<img [^>]*src="data:image/(jpeg|png);base64,([A-Za-z0-9+/=]+)"', html)
    assert 3 <= len(imgs) <= 3 * 8 and len(imgs) % 3 == 0
    metrics = json.loads((report.parent / "metrics.json").read_text())
    assert f"<td>{metrics['frames']}</td>" in html
    assert f"{metrics['pooled_iou']:.4f}" in html


def test_report_without_ground_truth_and_when_stopped_early(tmp_path):
    replay(tmp_path / "nogt")
    html = (tmp_path / "nogt" / "report.html").read_text()
    check_self_contained(html)
    assert len(svgs(html)) == 2 and "No ground truth" in html
    assert "data:image/" in html

    bag = tmp_path / "cut"
    bag.mkdir()
    shutil.copy(BAG / "metadata.yaml", bag / "metadata.yaml")
    data = (BAG / "sample_bag.mcap").read_bytes()
    (bag / "sample_bag.mcap").write_bytes(data[: len(data) // 2])
    replay(tmp_path / "cut_out", "--gt-topic", GT, bag=bag, rc=1)
    html = (tmp_path / "cut_out" / "report.html").read_text()
    check_self_contained(html)
    assert len(svgs(html)) == 7 and "sample_bag.mcap" in html


def test_report_renders_in_headless_chromium(report, tmp_path):
    assert CHROMIUM.exists(), "no /usr/bin/chromium: run scripts/setup.sh (it installs Debian's chromium)"
    cv2 = pytest.importorskip("cv2")
    shot = tmp_path / "shot.png"
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1400,4000",
        report.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (4000, 1400)
    rgb = img[:, :, ::-1].astype(int)

    def rows_with(color, tol=12):
        hit = (np.abs(rgb - np.array(color)).max(axis=2) <= tol)
        return np.where(hit.sum(axis=1) > 0)[0], int(hit.sum())

    # The plots' blue lines are drawn (score, IoU, reliability bars are a lighter blue, curves).
    rows, n = rows_with((31, 119, 180))
    assert n > 2000, n
    # Spread over the four line plots: at least ~4 separate vertical stretches.
    assert np.count_nonzero(np.diff(rows) > 100) >= 3, rows
    # The not-confident band of the score plot and the review markers.
    assert rows_with((255, 214, 214))[1] > 500
    assert rows_with((214, 39, 40))[1] > 20
    # Axis labels and tick text: many dark, thin strokes inside the plot column.
    dark = (rgb.max(axis=2) < 90)
    assert dark[:, :950].sum() > 5000
    # The gallery: decoded images are wide areas of varied colour below the plots (the inferno
    # entropy maps have saturated orange/purple pixels that nothing else on the page has).
    sat = rgb.max(axis=2) - rgb.min(axis=2)
    inferno = (sat > 120) & (rgb[:, :, 0] > 150) & (rgb[:, :, 2] < 120)
    assert inferno.sum() > 5000, inferno.sum()
