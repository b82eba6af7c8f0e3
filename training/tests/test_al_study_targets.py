"""The active-learning study and the fine-tune recipe check draw their pools through make_data.render,
so a target domain can be a held-out family of scenegen or the second renderer (altgen)."""
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import al_study  # noqa: E402
import altgen  # noqa: E402
import make_data  # noqa: E402
import scenegen  # noqa: E402


def test_targets_are_the_held_out_families_and_the_second_renderer():
    assert set(al_study.TARGETS) == set(scenegen.HELD_OUT) | {"xr"}


@pytest.mark.parametrize("split,module", [("xr", "altgen"), ("ho_light", "scenegen")])
def test_pool_frames_come_from_the_right_renderer(split, module):
    jpeg, mask = al_study._render((al_study.POOL_SEED, split, 0))
    want = (altgen.render(al_study.POOL_SEED, 0) if module == "altgen"
            else scenegen.render(al_study.POOL_SEED, split, 0))
    assert jpeg == want[3] and (mask == want[1]).all()
    assert jpeg == make_data.render(al_study.POOL_SEED, split, 0)[3]


def test_closeup_iou_is_the_pooled_iou_of_the_close_up_frames():
    """al_study.evaluate's closeup_iou: the pooled IoU of the frames whose pipe covers more than CLOSE_UP."""
    import numpy as np
    model = HERE.parents[1] / "models" / "pipeline_seg_unet.onnx"
    rgb, mask = next((r[0], r[1]) for r in (scenegen.render(7, "val", i) for i in range(20)) if (r[1] > 127).mean() > 0.05)
    near = mask.copy()
    near[:, : int(mask.shape[1] * 0.4)] = 255  # the pipe and 40 % of the frame: a close-up
    far = np.zeros_like(mask)
    far[:40, :40] = 255
    assert (near > 127).mean() > al_study.CLOSE_UP > (far > 127).mean()
    both = al_study.evaluate(model, [(rgb, near), (rgb, far)], samples=2)
    alone = al_study.evaluate(model, [(rgb, near)], samples=2)  # frame 0 draws the same dropout masks
    assert 0 < both["closeup_iou"] == alone["pooled_iou"] != both["pooled_iou"]
    assert al_study.evaluate(model, [(rgb, far)], samples=2)["closeup_iou"] is None


def test_nopipe_median_fraction_is_the_share_called_pipeline_on_empty_frames():
    """al_study.evaluate's nopipe_median_fraction: evaluate.py's definition, over the frames whose label is empty."""
    import numpy as np
    import mcd
    model = HERE.parents[1] / "models" / "pipeline_seg_unet.onnx"
    rgb, mask = next((r[0], r[1]) for r in (scenegen.render(7, "val", i) for i in range(20)) if (r[1] > 127).mean() > 0.05)
    sess, meta = mcd.load(str(model))
    called = float((mcd.infer(sess, meta, rgb, 2, np.random.default_rng([0, 0])).prob_in > 0.5).mean())
    assert called > 0.02  # the frame shows a pipe, so an empty label makes it a false "pipeline"
    empty = al_study.evaluate(model, [(rgb, np.zeros_like(mask))], samples=2)
    assert empty["nopipe_median_fraction"] == called
    assert al_study.evaluate(model, [(rgb, mask)], samples=2)["nopipe_median_fraction"] is None
