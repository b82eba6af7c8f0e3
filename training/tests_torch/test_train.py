"""`make test-training`: `train.py --init` (the warm start of `make model`) starts from exactly the
base's weights, keeps its normalisation and architecture, and leaves its folded BatchNorm alone."""
import subprocess
import sys
from pathlib import Path

import cv2
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "training"))
import finetune  # noqa: E402
import scenegen  # noqa: E402

BASE = ROOT / "training" / "base" / "legacy_v1.onnx"


def write_split(root: Path, name: str, split: str, n: int):
    d = root / name
    (d / "image").mkdir(parents=True)
    (d / "mask").mkdir()
    for i in range(n):
        rgb, mask, _, jpeg = scenegen.render(5, split, i)
        (d / "image" / f"{i:05d}.jpg").write_bytes(jpeg)
        cv2.imwrite(str(d / "mask" / f"{i:05d}.png"), mask)


def run_train(data: Path, out: Path, lr: str, steps: int = 3):
    subprocess.run([sys.executable, str(ROOT / "training" / "train.py"), "--data", str(data), "--init", str(BASE),
                    "--split", "a,b", "--split-weights", "1,1", "--steps", str(steps), "--lr", lr, "--threads", "1",
                    "--out", str(out)], check=True)
    return torch.load(out / "model.pt", map_location="cpu")


def test_warm_start_keeps_the_base_until_it_learns(tmp_path):
    write_split(tmp_path, "a", "train_dr", 3)
    write_split(tmp_path, "b", "val_dr", 2)
    net, ck, _ = finetune.base_weights(BASE)
    base_sd = net.state_dict()

    # lr 0: three steps with BatchNorm in the network must change nothing, running statistics included.
    still = run_train(tmp_path, tmp_path / "lr0", "0")
    cfg = still["config"]
    assert cfg["init"] == str(BASE) and cfg["split"] == "a,b" and cfg["train_frames"] == 5
    assert cfg["mean"] == ck["config"]["mean"] and cfg["std"] == ck["config"]["std"]
    assert (cfg["placement"], cfg["p"], cfg["base"], cfg["lcn"]) == (
        ck["config"]["placement"], ck["config"]["p"], ck["config"]["base"], ck["config"]["lcn"])
    for k, v in base_sd.items():
        if k.endswith("num_batches_tracked"):
            continue
        assert torch.equal(still["state_dict"][k], v), k

    # A real learning rate moves the weights, and still not the frozen statistics.
    moved = run_train(tmp_path, tmp_path / "lr", "1e-3")
    diff = max(float((moved["state_dict"][k] - v).abs().max()) for k, v in base_sd.items()
               if k.endswith(".weight") and v.dim() == 4)
    assert diff > 1e-5
    for k, v in base_sd.items():
        if k.endswith("running_mean") or k.endswith("running_var"):
            assert torch.equal(moved["state_dict"][k], v), k
    assert moved["temperature"] == 1.0  # trained at 1; export.py fits the shipped temperature


def test_probe_augmentations_keep_the_label_with_the_image():
    """train.geometry moves image and mask together; train.light and train.rand_conv leave the mask alone
    and keep frames in 0..1 (training/runs/aug_probe)."""
    import train as T
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(4, 3, 96, 128)
    y = torch.zeros(4, 96, 128)
    x[:, :, 40:56, :] = 1.0  # a bright horizontal band, labelled as the pipe
    y[:, 40:56, :] = 1.0
    xg, yg = T.geometry(x, y, g, p=1.0)
    assert xg.shape == x.shape and yg.shape == y.shape
    assert not torch.equal(yg, y)  # it moved
    # Where the mask says pipe the moved image is bright, and dark where it says background.
    assert float(xg[:, 0][yg > 0.99].min()) > 0.98 and float(xg[:, 0][yg < 0.01].max()) < 0.02
    for aug in (T.light, T.rand_conv):
        xa = aug(x * 0.5 + 0.25, g, p=1.0)
        assert xa.shape == x.shape and float(xa.min()) >= 0 and float(xa.max()) <= 1
        assert not torch.equal(xa, x * 0.5 + 0.25)


def test_every_extra_augmentation_is_an_option_and_keeps_shapes():
    """train.EXTRA_AUGS: each entry is a --NAME-aug option of train.py and maps (x, y) to tensors of the
    same shapes; train_step refuses a name that is not in the table."""
    import train as T
    helptext = subprocess.run([sys.executable, str(ROOT / "training" / "train.py"), "--help"],
                              capture_output=True, text=True, check=True).stdout
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(4, 3, 96, 128), (torch.rand(4, 96, 128) > 0.8).float()
    for name, (fn, _) in T.EXTRA_AUGS.items():
        assert f"--{name}-aug" in helptext, name
        xa, ya = fn(x, y, g)
        assert xa.shape == x.shape and ya.shape == y.shape, name
    try:
        T.train_step(None, None, None, x, y, g, 0, 1, augs=["fog"])
    except ValueError as e:
        assert "fog" in str(e)
    else:
        raise AssertionError("an unknown augmentation was accepted")


def test_surround_changes_the_seabed_beside_the_pipe_only():
    """train.surround (training/runs/aug_probe, arm H) darkens or lightens a band beside the labelled pipe:
    the pipe's inside and the seabed far from it keep their values, and the mask is not an argument it
    could change."""
    import train as T
    x = torch.full((8, 3, 96, 128), 0.5)
    y = torch.zeros(8, 96, 128)
    y[:, 40:56, :] = 1.0
    xa = T.surround(x, y, torch.Generator().manual_seed(0), p=1.0)
    assert torch.equal(xa[:, :, 45:51], x[:, :, 45:51])  # the pipe, more than the 4 px blur from its edge
    assert torch.equal(xa[:, :, :10], x[:, :, :10]) and torch.equal(xa[:, :, 87:], x[:, :, 87:])  # 30+ px away
    beside = (xa[:, 0, 30:40] - 0.5).abs().amax((1, 2)) + (xa[:, 0, 56:66] - 0.5).abs().amax((1, 2))
    assert bool((beside > 0.05).all())  # every frame got a band on at least one side
    assert float(xa.min()) >= 0 and float(xa.max()) <= 1


def test_paste_labels_every_pipe_pixel_and_no_other():
    """train.paste (copy-paste, arm I) lays one frame's pipe over another frame: each frame's own pipe keeps
    its pixels and label, and a pipe pixel that comes from the other frame is labelled too."""
    import train as T
    b = 6
    x = torch.zeros(b, 3, 64, 96)
    y = torch.zeros(b, 64, 96)
    for k in range(b):
        x[k] = 0.05 * (k + 1)  # a background value per frame
        rows = slice(5 + 9 * k, 12 + 9 * k)  # a pipe band per frame, at another place in each
        x[k, :, rows] = 0.9 - 0.05 * k
        y[k, rows] = 1.0
    xp, yp = T.paste(x, y, torch.Generator().manual_seed(0), p=1.0)
    pipe_values = torch.tensor([0.9 - 0.05 * k for k in range(b)])
    is_pipe = (xp[:, 0, ..., None] - pipe_values).abs().amin(-1) < 1e-6
    assert torch.equal(is_pipe, yp > 0.5)  # labelled exactly where a pipe is
    assert bool((yp >= y).all()) and torch.equal(xp.permute(0, 2, 3, 1)[y > 0.5], x.permute(0, 2, 3, 1)[y > 0.5])
    assert bool((yp > y).any())  # some frame got another's pipe


def test_widened_trunk_starts_as_the_base_and_reads_back_from_its_graph(tmp_path):
    """`train.py --width` (model.widen): the wider network computes what the base does, and its
    exported graph gives back the same width and weights (onnx_weights), so it can be a base in turn."""
    import export
    import model as M
    import onnx_weights
    net, ck, _ = finetune.base_weights(BASE)
    wide = M.widen(net, M.MCUNet(ck["config"]["base"], net.placement, net.p, lcn=net.lcn, width=1.5))
    assert sum(p.numel() for p in wide.parameters()) <= 2_000_000
    net.eval()
    wide.eval()
    x = torch.randn(1, 3, M.INPUT_H, M.INPUT_W)
    masks = M.random_masks(net, 1, 3, torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(net(x, *masks), wide(x, *masks), atol=1e-6)
        wide.bott[0].weight[-1].add_(0.1)  # a new channel reaches the output once its weights move
        wide.dec3[0].weight[:, 8 * 16 * 3 // 2 - 1].add_(0.1)
        assert not torch.allclose(net(x, *masks), wide(x, *masks), atol=1e-4)
    cfg = dict(ck["config"], width=1.5)
    torch.save({"state_dict": wide.state_dict(), "config": cfg, "temperature": wide.temperature}, tmp_path / "w.pt")
    export.export(str(tmp_path / "w.pt"), str(tmp_path / "w.onnx"))
    back = onnx_weights.checkpoint_from_onnx(tmp_path / "w.onnx")
    assert back["config"]["width"] == 1.5 and back["config"]["base"] == 16
    again = M.MCUNet(16, net.placement, net.p, lcn=net.lcn, width=back["config"]["width"])
    again.load_state_dict({k: torch.from_numpy(v) for k, v in back["state_dict"].items()})
    again.eval()
    again.temperature = back["temperature"]
    with torch.no_grad():
        assert torch.allclose(again(x, *masks), wide(x, *masks), atol=1e-5)


def test_mixstyle_mixes_channel_statistics_in_training_only():
    import model as M
    torch.manual_seed(0)
    x = torch.randn(4, 8, 16, 16) * torch.arange(1, 5).view(4, 1, 1, 1) + torch.arange(4).view(4, 1, 1, 1)
    y = M.mix_style(x, p=1.0)
    assert y.shape == x.shape and not torch.allclose(x, y)
    # Each frame keeps its normalised content; only its per-channel mean and std change.
    norm = lambda a: (a - a.mean((2, 3), keepdim=True)) / a.std((2, 3), keepdim=True)  # noqa: E731
    assert torch.allclose(norm(x), norm(y), atol=1e-3)
    # The new statistics lie between the frame's own and those of another frame of the batch.
    mu_x, mu_y = x.mean((2, 3)), y.mean((2, 3))
    assert (mu_y >= mu_x.min(0).values - 1e-4).all() and (mu_y <= mu_x.max(0).values + 1e-4).all()
    assert torch.equal(M.mix_style(x, p=0.0), x)
    net, _, _ = finetune.base_weights(BASE)
    net.style_mix = 1.0
    net.eval()  # the exported graph: no mixing
    img = torch.randn(2, 3, M.INPUT_H, M.INPUT_W)
    ones = M.ones_masks(net, 2)
    with torch.no_grad():
        a = net(img, *ones)
        net.style_mix = 0.0
        assert torch.equal(a, net(img, *ones))


def test_unfolded_batchnorm_computes_what_the_folded_base_does():
    """`train.py --init --train-bn`: the base's identity BatchNorms get real statistics without
    changing the network's outputs, so BatchNorm can train from there."""
    import model as M
    import train
    net, _, _ = finetune.base_weights(BASE)
    x = torch.randn(2, 3, M.INPUT_H, M.INPUT_W)
    masks = M.random_masks(net, 2, 2, torch.Generator().manual_seed(3))
    net.eval()
    with torch.no_grad():
        before = net(x, *masks)
    train.unfold_batchnorm(net, [torch.randn(4, 3, M.INPUT_H, M.INPUT_W)])
    bn = net.enc1[1]
    assert bn.running_var.min() > 0 and not torch.allclose(bn.weight, torch.ones_like(bn.weight))
    with torch.no_grad():
        assert torch.allclose(net(x, *masks), before, atol=1e-4)


def test_unfolded_batchnorm_keeps_a_working_batchnorm_too():
    """A base with real BatchNorm statistics (a `.pt` beside the graph) keeps its outputs as well."""
    import model as M
    import train
    net = M.MCUNet(16, "last_block", 0.2, lcn=True)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(4, 3, M.INPUT_H, M.INPUT_W) * 2 + 1, *M.ones_masks(net, 4))
    net.eval()
    x = torch.randn(1, 3, M.INPUT_H, M.INPUT_W)
    with torch.no_grad():
        before = net(x, *M.ones_masks(net, 1))
    train.unfold_batchnorm(net, [torch.randn(4, 3, M.INPUT_H, M.INPUT_W)])
    with torch.no_grad():
        assert torch.allclose(net(x, *M.ones_masks(net, 1)), before, atol=1e-4)
