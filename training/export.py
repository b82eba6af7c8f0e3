"""Export a trained checkpoint to ONNX (docs/interfaces.md §1) and check it against PyTorch.

Usage: python export.py runs/NAME/model.pt --out ../models/pipeline_seg_unet.onnx
The gate defaults are added later by calibrate.py (they are measured on the exported file).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

sys.path.insert(0, os.path.dirname(__file__))
import model as M  # noqa: E402
from calibrate import set_props  # noqa: E402

DEFAULT_SAMPLES = 16




def fix_output_shape(m: onnx.ModelProto):
    """The tracer leaves the output's H and W symbolic; they are the fixed input size."""
    dims = m.graph.output[0].type.tensor_type.shape.dim
    for d, v in zip(dims[3:], (M.INPUT_H, M.INPUT_W)):
        d.Clear()
        d.dim_value = v


def fit_temperature(net, data_dir, frames=120, t=8, split="val"):
    """Temperature for the logits that minimises the NLL of the MC-mean probability on `val`
    pixels near the pipeline (predicted or true, dilated), where calibration matters.
    `split` may name several splits (comma-separated): the first `frames` of each, pooled."""
    import cv2
    from train import load_split
    parts = [load_split(Path(data_dir), s, frames) for s in split.split(",")]
    imgs, masks = np.concatenate([i for i, _ in parts]), np.concatenate([m for _, m in parts])
    cfg_mean = torch.tensor(net.norm_mean).view(1, 3, 1, 1)
    cfg_std = torch.tensor(net.norm_std).view(1, 3, 1, 1)
    g = torch.Generator().manual_seed(0)
    temps = np.linspace(0.5, 4.0, 36)
    nll = np.zeros(len(temps))
    with torch.no_grad():
        for i in range(len(imgs)):
            x = (torch.from_numpy(imgs[i:i + 1]).float() / 255 - cfg_mean) / cfg_std
            lg = net.logits(x, *M.random_masks(net, 1, t, g))[0]  # [T,2,h,w]
            y = torch.from_numpy(masks[i].astype(np.float32))
            p_det = torch.softmax(lg, 1).mean(0)[1]
            region = ((p_det > 0.5) | (y > 0.5)).numpy().astype(np.uint8)
            region = torch.from_numpy(cv2.dilate(region, np.ones((7, 7), np.uint8)) > 0)
            if not region.any():
                continue
            for k, tau in enumerate(temps):
                p = torch.softmax(lg / tau, 1).mean(0)[1].clamp(1e-6, 1 - 1e-6)
                ll = y * p.log() + (1 - y) * (1 - p).log()
                nll[k] -= float(ll[region].sum())
    best = float(temps[int(np.argmin(nll))])
    print(f"temperature {best:.2f} (NLL near the pipeline: {nll.min():.0f} vs {nll[np.argmin(np.abs(temps - 1))]:.0f} at 1.0)")
    return best


def weights_path(onnx_path) -> Path:
    """`models/x.onnx` -> `models/x.pt`: the state dict that fine-tuning starts from."""
    return Path(onnx_path).with_suffix(".pt")


def export(ckpt_path: str, out: str, data_dir=None, temperature_split="val"):
    ckpt = torch.load(ckpt_path, map_location="cpu")
    cfg = ckpt["config"]
    net = M.MCUNet(cfg["base"], cfg["placement"], cfg["p"], lcn=cfg.get("lcn", False), width=cfg.get("width", 1.0))
    net.load_state_dict(ckpt["state_dict"])
    net.eval()
    net.norm_mean, net.norm_std = cfg["mean"], cfg["std"]
    net.temperature = float(ckpt.get("temperature", 1.0))
    if data_dir:
        net.temperature = fit_temperature(net, data_dir, split=temperature_split)
    k = len(net.sites)
    x = torch.randn(1, 3, M.INPUT_H, M.INPUT_W)
    masks = M.random_masks(net, 1, 2, torch.Generator().manual_seed(0))
    names = [f"dropout_mask_{i}" for i in range(k)]
    dyn = {"image": {0: "N"}, "probs": {0: "N", 1: "T"}}
    dyn.update({n: {0: "N", 1: "T"} for n in names})
    torch.onnx.export(net, (x, *masks), out, input_names=["image", *names], output_names=["probs"],
                      dynamic_axes=dyn, opset_version=17, dynamo=False, do_constant_folding=True)
    m = onnx.load(out)
    fix_output_shape(m)
    if m.ir_version > 10:
        m.ir_version = 10
    set_props(m, {
        "classes": "background,pipeline",
        "input_height": M.INPUT_H, "input_width": M.INPUT_W,
        "mean": ",".join(f"{v:.4f}" for v in cfg["mean"]), "std": ",".join(f"{v:.4f}" for v in cfg["std"]),
        "color_order": "RGB", "resize": "stretch", "dropout_p": cfg["p"],
        "dropout_sites": ",".join(str(c) for c in net.site_channels()),
        "dropout_placement": cfg["placement"], "default_samples": DEFAULT_SAMPLES,
        "producer_note": "pipeline_seg training/ (synthetic underwater scenes)",
    })
    onnx.checker.check_model(m)
    onnx.save(m, out)
    # The weights beside the graph (float32 state dict, ~3.4 MB), so `make finetune` can start
    # from exactly what ships (BatchNorm is folded into the convolutions in the ONNX graph).
    torch.save({"state_dict": net.state_dict(), "config": cfg, "temperature": net.temperature},
               weights_path(out))

    # Equivalence: all-ones masks with T = 1 in ONNX Runtime == PyTorch eval() without dropout.
    sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(3):
        xi = rng.standard_normal((2, 3, M.INPUT_H, M.INPUT_W)).astype(np.float32)
        ones = [np.ones((2, 1, c), np.float32) for c in net.site_channels()]
        feeds = {"image": xi, **{n: o for n, o in zip(names, ones)}}
        got = sess.run(["probs"], feeds)[0]
        with torch.no_grad():
            want = net(torch.from_numpy(xi), *[torch.from_numpy(o) for o in ones]).numpy()
        worst = max(worst, float(np.abs(got - want).max()))
    # And with random masks (T = 4): the graph and PyTorch agree sample by sample.
    rm = [(rng.random((1, 4, c)) < 1 - cfg["p"]).astype(np.float32) / (1 - cfg["p"]) for c in net.site_channels()]
    xi = rng.standard_normal((1, 3, M.INPUT_H, M.INPUT_W)).astype(np.float32)
    got = sess.run(["probs"], {"image": xi, **{n: o for n, o in zip(names, rm)}})[0]
    with torch.no_grad():
        want = net(torch.from_numpy(xi), *[torch.from_numpy(o) for o in rm]).numpy()
    worst_mc = float(np.abs(got - want).max())
    params = sum(p.numel() for p in net.parameters())
    once, per = M.flops(net)
    report = {"max_abs_diff_ones_T1": worst, "max_abs_diff_random_T4": worst_mc, "params": params,
              "macs_once": once, "macs_per_sample": per,
              "macs_T16_shipped": once + 16 * per, "macs_T16_whole_network": 16 * (once + per),
              "file_bytes": os.path.getsize(out), "ir_version": m.ir_version,
              "opset": m.opset_import[0].version, "placement": cfg["placement"], "temperature": net.temperature,
              "lcn": cfg.get("lcn", False), "weights_bytes": os.path.getsize(weights_path(out))}
    print(json.dumps(report, indent=1))
    if worst > 1e-5 or worst_mc > 1e-5:
        sys.exit(f"ONNX differs from PyTorch by {max(worst, worst_mc):.2e} (limit 1e-5)")
    return report


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--out", required=True)
    ap.add_argument("--report", help="write the check report (JSON) here")
    ap.add_argument("--fit-temperature", metavar="DATA", help="fit the logit temperature on DATA/val first")
    ap.add_argument("--temperature-split", default="val", help="split(s) of DATA the temperature is fitted on (comma-separated: pooled)")
    a = ap.parse_args()
    r = export(a.checkpoint, a.out, a.fit_temperature, a.temperature_split)
    if a.report:
        with open(a.report, "w") as f:
            json.dump(r, f, indent=1)
