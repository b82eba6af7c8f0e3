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
