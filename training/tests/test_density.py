"""feature_distance (docs/interfaces.md §9) fitted by training/density.py: the graph computes the
numpy fit, with every part (pooled layers, channel correlations, image statistics), and a refit
replaces the output rather than adding a second one (onnxruntime + numpy, no PyTorch)."""
import sys
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "training"))
import density  # noqa: E402
import mcd  # noqa: E402
import onnx_weights  # noqa: E402

MODEL = ROOT / "models" / "pipeline_seg_unet.onnx"
FRAMES = ROOT / "tests" / "data" / "frames"


def test_refit_graph_is_the_fit_and_has_every_part(tmp_path):
    files = sorted((FRAMES / "val" / "image").glob("*.jpg")) + sorted((FRAMES / "shift" / "image").glob("*.jpg"))
    frames = [mcd.read_rgb(f) for f in files]
    has_pipe = [bool((mcd.read_rgb(FRAMES / f.parent.parent.name / "mask" / (f.stem + ".png")) > 127).any())
                for f in files]
    base = onnx.load(str(MODEL))
    feats = density.pooled(base, frames)
    names = [p for p, _, _ in density.parts(base)]
    assert [n for n in names if not n.startswith("fd/l")] == ["fd/g1/", "fd/img/"]
    assert feats[-1].shape == (len(frames), 12)  # image statistics
    c = int(round(np.sqrt(feats[-2].shape[1])))
    assert len(density.columns(feats[-2])) == c * (c - 1) // 2  # upper triangle of the correlations
    f = density.fit(feats, np.array(has_pipe))
    out = density.with_distance(base, f)
    assert density.graph_error(out, frames, feats, f, n=len(frames)) < 1e-3
    # One output, whatever was there before; the network's weights are still readable.
    again = density.refit(out, frames, has_pipe)
    assert [o.name for o in again.graph.output].count(density.OUTPUT) == 1
    path = tmp_path / "m.onnx"
    onnx.save(again, str(path))
    assert onnx_weights.checkpoint_from_onnx(path)["state_dict"]
    # Frames far from these (an OOD plume) are farther than the fitting frames.
    sess, meta = mcd.load(str(path), 2)
    ones = {f"dropout_mask_{k}": v for k, v in enumerate(mcd.ones_masks(meta))}
    d = lambda rgb: float(sess.run([density.OUTPUT], {"image": mcd.preprocess(rgb, meta), **ones})[0][0])  # noqa: E731
    assert d(mcd.read_rgb(FRAMES / "ood" / "image" / "plume_00001.jpg")) > np.median([d(x) for x in frames])
