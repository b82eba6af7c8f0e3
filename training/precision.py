"""Lower-precision variants of the trunk and head (issue 12): static int8 (QDQ) and fp16, measured
against fp32 for speed and for uncertainty quality, with onnxruntime on this CPU.

    python training/precision.py --model models/pipeline_seg_unet.onnx --calib DIR --eval DIR... --out training/runs/precision

- int8: `onnxruntime.quantization.quantize_static` (QDQ, per-channel weights, MinMax ranges)
  calibrated on frames from `--calib` (training frames: the look the shipped weights learnt);
  the head is calibrated on the trunk's outputs for those frames with random dropout masks.
- fp16: onnxruntime's own converter (`onnxruntime.transformers.float16`, in the pinned wheel),
  weights and activations in fp16, inputs and outputs kept fp32.
For each variant and each `--eval` directory (image/*.jpg + mask/*.png): per-frame latency of
trunk + 16 head samples (4 chunks of 4), pooled IoU, entropy AUROC and the mean absolute change of
the entropy map against fp32 with the same masks. Records precision.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import mcd  # noqa: E402
import split  # noqa: E402

T, CHUNK = 16, 4


def session(path, threads=0):
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def frames(d: Path, limit: int):
    for f in sorted((d / "image").glob("*.jpg"))[:limit]:
        rgb = mcd.read_rgb(str(f))
        m = d / "mask" / (f.stem + ".png")
        gt = cv2.imread(str(m), cv2.IMREAD_GRAYSCALE) if m.exists() else None
        yield rgb, gt


def run_pair(trunk, head, x, masks):
    outs = trunk.run(None, {"image": x})
    feed = {o.name: v for o, v in zip(trunk.get_outputs(), outs)}
    head_in = {i.name for i in head.get_inputs()}
    hf = {k: v for k, v in feed.items() if k in head_in}
    probs = [head.run(None, dict(hf, dropout_mask_0=masks[:, i:i + CHUNK]))[0] for i in range(0, T, CHUNK)]
    return np.concatenate(probs, 1)[0]


class Reader:
    """Calibration data for quantize_static: a list of feeds."""

    def __init__(self, feeds):
        self.it = iter(feeds)

    def get_next(self):
        return next(self.it, None)


def quantize(src: Path, dst: Path, feeds):
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    quantize_static(str(src), str(dst), Reader(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)


def auroc(err, score):
    """Pixel-level AUROC of `score` for `err` (bool), ties counted half."""
    order = np.argsort(score, kind="mergesort")
    s, e = score[order], err[order]
    pos, neg = e.sum(), (~e).sum()
    if pos == 0 or neg == 0:
        return None
    ranks = np.empty(len(s))
    _, idx, counts = np.unique(s, return_index=True, return_counts=True)
    for i, c in zip(idx, counts):
        ranks[i:i + c] = i + (c + 1) / 2
    return float((ranks[e].sum() - pos * (pos + 1) / 2) / (pos * neg))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=HERE.parent / "models" / "pipeline_seg_unet.onnx")
    ap.add_argument("--calib", type=Path, required=True, help="training frames (image/*.jpg)")
    ap.add_argument("--calib-frames", type=int, default=32)
    ap.add_argument("--eval", type=Path, nargs="+", required=True)
    ap.add_argument("--eval-frames", type=int, default=40)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("/tmp/pipeline_seg_precision"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    a.work.mkdir(parents=True, exist_ok=True)
    _, meta = mcd.load(str(a.model))
    tp, hp = split.paths(a.model)
    fp32 = (session(tp, a.threads), session(hp, a.threads))
    rng = np.random.default_rng(0)
    # Calibration feeds: trunk inputs, and the head's inputs for the same frames with masks.
    trunk_feeds, head_feeds = [], []
    for rgb, _ in frames(a.calib, a.calib_frames):
        x = mcd.preprocess(rgb, meta)
        trunk_feeds.append({"image": x})
        outs = fp32[0].run(None, {"image": x})
        feed = {o.name: v for o, v in zip(fp32[0].get_outputs(), outs)}
        hf = {k: v for k, v in feed.items() if k in {i.name for i in fp32[1].get_inputs()}}
        head_feeds.append(dict(hf, dropout_mask_0=mcd.draw_masks(meta, CHUNK, rng)[0]))
    variants = {"fp32": fp32}
    qt, qh = a.work / "trunk.int8.onnx", a.work / "head.int8.onnx"
    quantize(tp, qt, trunk_feeds)
    quantize(hp, qh, head_feeds)
    variants["int8"] = (session(qt, a.threads), session(qh, a.threads))
    variants["int8_head_only"] = (fp32[0], variants["int8"][1])
    from onnxruntime.transformers.float16 import convert_float_to_float16
    ft, fh = a.work / "trunk.fp16.onnx", a.work / "head.fp16.onnx"
    for src, dst in ((tp, ft), (hp, fh)):
        onnx.save(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True), str(dst))
    variants["fp16"] = (session(ft, a.threads), session(fh, a.threads))
    rec = {"model": str(a.model), "T": T, "chunk": CHUNK, "calib": str(a.calib), "calib_frames": len(trunk_feeds),
           "cpu": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": "),
           "sizes_mb": {"trunk_int8": round(qt.stat().st_size / 1e6, 2), "head_int8": round(qh.stat().st_size / 1e6, 2)},
           "sets": {}}
    for d in a.eval:
        data = list(frames(d, a.eval_frames))
        res = {}
        ref_ent = []
        for name, (trunk, head) in variants.items():
            times, inter, union, errs, ents, dent = [], 0, 0, [], [], []
            mrng = np.random.default_rng(1)
            for k, (rgb, gt) in enumerate(data):
                x = mcd.preprocess(rgb, meta)
                masks = mcd.draw_masks(meta, T, mrng)[0]
                t0 = time.perf_counter()
                probs = run_pair(trunk, head, x, masks)
                times.append((time.perf_counter() - t0) * 1e3)
                prob, ent, _ = mcd.uncertainty(probs)
                if name == "fp32":
                    ref_ent.append(ent)
                else:
                    dent.append(float(np.abs(ent - ref_ent[k]).mean()))
                if gt is not None:
                    g = cv2.resize(gt, (meta.width, meta.height), interpolation=cv2.INTER_NEAREST) > 127
                    pred = prob > 0.5
                    inter += int((pred & g).sum())
                    union += int((pred | g).sum())
                    errs.append((pred != g).ravel())
                    ents.append(ent.ravel())
            res[name] = {"p50_ms": round(float(np.median(times)), 2),
                         "pooled_iou": round(inter / union, 4) if union else None,
                         "auroc_entropy": round(auroc(np.concatenate(errs), np.concatenate(ents)), 4) if errs else None,
                         "entropy_mean_abs_change": round(float(np.mean(dent)), 5) if dent else 0.0}
            print(d.name, name, res[name], flush=True)
        rec["sets"][d.name] = res
    (a.out / "precision.json").write_text(json.dumps(rec, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
