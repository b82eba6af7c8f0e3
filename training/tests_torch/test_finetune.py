"""`make test-training` (needs PyTorch, .venv-train): a few-step fine-tune on real label
directories gives a model that honours the shipped contract, its card and weights, and leaves
the base untouched; bad labels are refused with nothing written."""
import hashlib
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "training"))
import contract  # noqa: E402
import finetune  # noqa: E402
import labels as L  # noqa: E402
import scenegen  # noqa: E402

BASE = ROOT / "models" / "pipeline_seg_unet.onnx"
STAMP0 = 1_700_000_000_000_000_000


def sha(p):
    p = Path(p)
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None


@pytest.fixture(scope="module")
def label_dirs(tmp_path_factory):
    """Two label directories of held-out-family renders (fouled pipe), one frame unlabelled."""
    root = tmp_path_factory.mktemp("labels")
    dirs = []
    for j in range(2):
        items = []
        for i in range(6):
            rgb, mask, meta, _ = scenegen.render(21, "ho_coating", 6 * j + i)
            items.append((STAMP0 + (6 * j + i) * 10**9, rgb, mask if (j, i) != (1, 5) else None))
        d = root / f"d{j}"
        L.write_label_dir(d, items)
        dirs.append(d)
    return dirs


@pytest.fixture(scope="module")
def finetuned(label_dirs, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "ft.onnx"
    before = sha(BASE), sha(BASE.with_suffix(".pt"))
    rc = finetune.main(["--labels", *map(str, label_dirs), "--out", str(out), "--steps", "4",
                        "--synthetic-frames", "8", "--holdout", "0.2", "--samples", "2", "--threads", "2",
                        "--min-calibration", "2"])
    assert rc == 0
    assert (sha(BASE), sha(BASE.with_suffix(".pt"))) == before, "the base must never change"
    return out


def test_result_honours_the_contract_of_the_base(finetuned):
    assert contract.violations(finetuned, like=BASE) == []


def test_metadata_and_card(finetuned):
    props = {p.key: p.value for p in onnx.load(str(finetuned)).metadata_props}
    base = {p.key: p.value for p in onnx.load(str(BASE)).metadata_props}
    assert set(base) <= set(props)
    assert props["finetuned_from"] == BASE.name and props["finetune_labels"] == "11"
    card = finetuned.with_suffix(".md").read_text()
    for needle in ("11 (9 trained on, 2 held out)", "unlabelled frames ignored: 1", "4 steps", "gate defaults",
                   "| pooled_iou |"):
        assert needle in card, needle
    assert finetuned.with_suffix(".pt").stat().st_size <= 5 * 1024 * 1024
    # feature_distance is refitted on what the fine-tune trained on, so the copied trust model's
    # feature_distance term has its output (docs/interfaces.md §9).
    outs = [o.name for o in onnx.load(str(finetuned)).graph.output]
    if "feature_distance" in [o.name for o in onnx.load(str(BASE)).graph.output]:
        assert outs == ["probs", "feature_distance"] and "feature_distance refitted" in card


def test_finetuned_model_is_a_base_in_turn(finetuned, label_dirs, tmp_path):
    out = tmp_path / "ft2.onnx"
    assert finetune.main(["--labels", str(label_dirs[0]), "--out", str(out), "--base", str(finetuned),
                          "--steps", "2", "--synthetic-frames", "4", "--samples", "2"]) == 0
    assert contract.violations(out, like=BASE) == []


def test_bad_labels_refused_nothing_written(label_dirs, tmp_path, capsys):
    bad = tmp_path / "bad"
    rgb, mask, _, _ = scenegen.render(21, "ho_coating", 0)
    L.write_label_dir(bad, [(STAMP0, rgb, mask)])
    cv2.imwrite(str(bad / f"{STAMP0}_mask.png"), cv2.resize(mask, (320, 240)))
    out = tmp_path / "o" / "ft.onnx"
    out.parent.mkdir()
    assert finetune.main(["--labels", str(label_dirs[0]), str(bad), "--out", str(out)]) == 2
    assert "320x240" in capsys.readouterr().err
    assert list(out.parent.iterdir()) == []


def test_refuses_to_overwrite_the_base(label_dirs, capsys):
    assert finetune.main(["--labels", str(label_dirs[0]), "--out", str(BASE)]) == 2
    assert "overwrite the base" in capsys.readouterr().err


def test_blend_is_the_weighted_mean_of_tuned_and_base():
    import torch
    tuned = {"w": torch.tensor([2.0, 4.0]), "n": torch.tensor(3)}
    base = {"w": torch.tensor([0.0, 0.0]), "n": torch.tensor(7)}
    assert torch.equal(finetune.blend(tuned, base, 0.5)["w"], torch.tensor([1.0, 2.0]))
    assert torch.equal(finetune.blend(tuned, base, 1.0)["w"], tuned["w"])
    assert finetune.blend(tuned, base, 0.5)["n"].item() == 3  # counters are not averaged


@pytest.mark.parametrize("bad", ["0", "1.5", "-0.2"])
def test_refuses_a_blend_outside_0_1(label_dirs, tmp_path, capsys, bad):
    out = tmp_path / "ft.onnx"
    assert finetune.main(["--labels", str(label_dirs[0]), "--out", str(out), "--blend", bad]) == 2
    assert "--blend" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def trained_weights(label_dirs, out, *args):
    rc = finetune.main(["--labels", str(label_dirs[0]), "--out", str(out), "--steps", "3", "--synthetic-frames", "8",
                        "--holdout", "0", "--samples", "1", "--threads", "2", "--blend", "1", *args])
    assert rc == 0
    import torch
    return torch.load(out.with_suffix(".pt"), map_location="cpu")["state_dict"], finetune.base_weights(BASE)[0].state_dict()


def test_tune_decoder_leaves_the_encoder_as_the_base(label_dirs, tmp_path):
    import torch
    tuned, base = trained_weights(label_dirs, tmp_path / "ft.onnx", "--tune", "decoder", "--lr", "1e-3")
    enc = [k for k in base if k.split(".")[0] not in finetune.TUNE["decoder"]]
    dec = [k for k in base if k.split(".")[0] in finetune.TUNE["decoder"] and base[k].is_floating_point()]
    assert enc and dec
    assert all(torch.equal(tuned[k], base[k]) for k in enc)
    assert any(not torch.equal(tuned[k], base[k]) for k in dec)
    assert "layers trained: decoder," in (tmp_path / "ft.md").read_text()  # the card says how it was made


def test_full_anchor_holds_every_weight_at_the_base(label_dirs, tmp_path):
    """--anchor pulls the weights back by lr * ANCHOR of their move after each step: at 1 (or more) nothing moves."""
    import torch
    tuned, base = trained_weights(label_dirs, tmp_path / "ft.onnx", "--anchor", "1e9", "--lr", "1e-3")
    assert all(torch.allclose(tuned[k].float(), base[k].float(), atol=1e-6) for k in base)
    free, _ = trained_weights(label_dirs, tmp_path / "free.onnx", "--lr", "1e-3")
    assert any(not torch.allclose(free[k].float(), base[k].float(), atol=1e-6) for k in base)


def test_refuses_a_negative_anchor(label_dirs, tmp_path, capsys):
    assert finetune.main(["--labels", str(label_dirs[0]), "--out", str(tmp_path / "ft.onnx"), "--anchor", "-1"]) == 2
    assert "--anchor" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_trains_at_temperature_1_and_writes_the_base_temperature(label_dirs, tmp_path, monkeypatch):
    """The loss sees the logits at temperature 1 (as train.py's); the written weights keep the base's fitted one."""
    import torch
    import train
    seen = []
    step = train.train_step

    def spy(net, *args, **kwargs):
        seen.append(net.temperature)
        return step(net, *args, **kwargs)
    monkeypatch.setattr(train, "train_step", spy)
    out = tmp_path / "ft.onnx"
    assert finetune.main(["--labels", str(label_dirs[0]), "--out", str(out), "--steps", "3", "--synthetic-frames", "8",
                          "--holdout", "0", "--samples", "1", "--threads", "2"]) == 0
    t_base = finetune.base_weights(BASE)[0].temperature
    assert t_base != 1.0 and seen == [1.0] * 3
    assert torch.load(out.with_suffix(".pt"), map_location="cpu")["temperature"] == t_base


def test_augs_reach_every_step_and_the_card(label_dirs, tmp_path, monkeypatch):
    """--augs NAME... are train.py's optional augmentations, applied in each fine-tune step."""
    import train
    seen = []
    step = train.train_step

    def spy(*args, **kwargs):
        seen.append(tuple(kwargs.get("augs", ())))
        return step(*args, **kwargs)
    monkeypatch.setattr(train, "train_step", spy)
    out = tmp_path / "ft.onnx"
    assert finetune.main(["--labels", str(label_dirs[0]), "--out", str(out), "--steps", "2", "--synthetic-frames", "8",
                          "--holdout", "0", "--samples", "1", "--threads", "2", "--augs", "geo"]) == 0
    assert seen == [("geo",)] * 2
    assert "extra augmentations: geo," in out.with_suffix(".md").read_text()


def test_refuses_an_unknown_aug_before_training(label_dirs, tmp_path, capsys):
    assert finetune.main(["--labels", str(label_dirs[0]), "--out", str(tmp_path / "ft.onnx"), "--augs", "zoom"]) == 2
    err = capsys.readouterr().err
    assert "--augs zoom" in err and "geo" in err
    assert list(tmp_path.iterdir()) == []
