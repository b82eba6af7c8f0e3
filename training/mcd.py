"""MC-Dropout inference and metrics with onnxruntime + numpy (no PyTorch), per docs/interfaces.md §1-3, §7.

Shared by calibrate.py, evaluate.py and the contract tests.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import cv2
import numpy as np
import onnxruntime as ort

EPS = 1e-7
BINS = 1000


@dataclass
class Meta:
    height: int
    width: int
    mean: np.ndarray
    std: np.ndarray
    resize: str
    p: float
    sites: list
    default_samples: int
    props: dict


def load(path: str, threads: int = 0):
    so = ort.SessionOptions()
    threads = threads or int(os.environ.get("ORT_THREADS", "0"))
    if threads:
        so.intra_op_num_threads = threads
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    props = sess.get_modelmeta().custom_metadata_map
    meta = Meta(int(props["input_height"]), int(props["input_width"]),
                np.array([float(v) for v in props["mean"].split(",")], np.float32),
                np.array([float(v) for v in props["std"].split(",")], np.float32),
                props["resize"], float(props["dropout_p"]),
                [int(c) for c in props["dropout_sites"].split(",")], int(props["default_samples"]), dict(props))
    return sess, meta


def resize(img, w, h):
    """Area when shrinking, bilinear when enlarging (docs/interfaces.md §1)."""
    shrink = w < img.shape[1] and h < img.shape[0]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def preprocess(rgb: np.ndarray, meta: Meta) -> np.ndarray:
    """RGB uint8 HxWx3 -> float32 [1,3,h,w] (stretch; the shipped model is 4:3 like the camera)."""
    x = resize(rgb, meta.width, meta.height).astype(np.float32) / 255.0
    x = (x - meta.mean) / meta.std
    return x.transpose(2, 0, 1)[None].copy()


def draw_masks(meta: Meta, t: int, rng: np.random.Generator):
    keep = 1.0 - meta.p
    return [(rng.random((1, t, c)) < keep).astype(np.float32) / np.float32(keep) for c in meta.sites]


def ones_masks(meta: Meta):
    return [np.ones((1, 1, c), np.float32) for c in meta.sites]


def run(sess, x, masks):
    feeds = {"image": x}
    feeds.update({f"dropout_mask_{k}": m for k, m in enumerate(masks)})
    return sess.run(["probs"], feeds)[0]


def uncertainty(probs: np.ndarray):
    """probs [T,C,h,w] -> mean pipeline prob, entropy, MI (normalised by log C)."""
    t, c = probs.shape[:2]
    p = np.clip(probs, EPS, 1.0)
    pbar = np.clip(probs.mean(0), EPS, 1.0)
    h = -(pbar * np.log(pbar)).sum(0) / math.log(c)
    h_each = -(p * np.log(p)).sum(1) / math.log(c)
    mi = np.clip(h - h_each.mean(0), 0, h)
    return probs.mean(0)[1], np.clip(h, 0, 1), mi


def frame_score(entropy, prob, method, pixel_threshold=0.5, band_px=2):
    """Frame score on the entropy map at model resolution (docs/interfaces.md §2)."""
    if method == "mean":
        return float(entropy.mean())
    if method == "p95":
        return float(np.percentile(entropy, 95))
    if method == "fraction_above":
        return float((entropy > pixel_threshold).mean())
    if method == "pipeline_mean":
        pred = (prob > 0.5).astype(np.uint8)
        if not pred.any():
            return float(np.percentile(entropy, 95))
        if band_px > 0:
            k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band_px + 1, 2 * band_px + 1))
            pred = cv2.dilate(pred, k)
        return float(entropy[pred > 0].mean())
    raise ValueError(f"score_method '{method}' unknown; use mean, p95, fraction_above, pipeline_mean")


def sanity(rgb: np.ndarray, min_luma=8.0, max_luma=247.0, min_contrast=3.0, max_saturated=0.6):
    """docs/interfaces.md §2 input sanity; returns (ok, reason detail)."""
    y = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    m, s = float(y.mean()), float(y.std())
    sat = float((rgb >= 250).any(-1).mean())
    if not (min_luma <= m <= max_luma):
        return False, f"mean luma {m:.1f}"
    if s < min_contrast:
        return False, f"luma std {s:.2f}"
    if sat > max_saturated:
        return False, f"saturated {sat:.2f}"
    return True, ""


@dataclass
class FrameResult:
    prob_in: np.ndarray  # mean pipeline probability at input resolution
    entropy_in: np.ndarray
    mi_in: np.ndarray
    entropy_model: np.ndarray
    prob_model: np.ndarray
    samples: np.ndarray


def infer(sess, meta: Meta, rgb: np.ndarray, t: int, rng: np.random.Generator | None):
    x = preprocess(rgb, meta)
    masks = ones_masks(meta) if rng is None else draw_masks(meta, t, rng)
    probs = run(sess, x, masks)[0]
    prob, ent, mi = uncertainty(probs)
    hh, ww = rgb.shape[:2]
    up = lambda a: cv2.resize(a, (ww, hh), interpolation=cv2.INTER_LINEAR)  # noqa: E731
    return FrameResult(up(prob), up(ent), up(mi), ent, prob, probs)


class Accumulator:
    """Streaming pixel metrics of docs/interfaces.md §7 over frames with ground truth."""

    def __init__(self):
        self.inter = self.union = self.pred_sum = self.gt_sum = 0
        self.ious = []
        self.h_err = np.zeros(BINS)
        self.h_ok = np.zeros(BINS)
        self.mi_err = np.zeros(BINS)
        self.mi_ok = np.zeros(BINS)
        self.ece = np.zeros((2, 15, 3))  # [all|pipe, bin, (n, sum conf, sum correct)]

    def add(self, prob, entropy, mi, gt):
        pred = prob > 0.5
        gt = gt > 127
        i, u = int((pred & gt).sum()), int((pred | gt).sum())
        self.inter += i
        self.union += u
        self.pred_sum += int(pred.sum())
        self.gt_sum += int(gt.sum())
        iou = 1.0 if u == 0 else i / u
        self.ious.append(iou)
        wrong = pred != gt
        hb = np.clip((entropy * BINS).astype(int), 0, BINS - 1)
        mb = np.clip((mi * BINS).astype(int), 0, BINS - 1)
        self.h_err += np.bincount(hb[wrong], minlength=BINS)
        self.h_ok += np.bincount(hb[~wrong], minlength=BINS)
        self.mi_err += np.bincount(mb[wrong], minlength=BINS)
        self.mi_ok += np.bincount(mb[~wrong], minlength=BINS)
        conf = np.maximum(prob, 1 - prob)
        cb = np.clip(((conf - 0.5) / 0.5 * 15).astype(int), 0, 14)
        for k, sel in enumerate([np.ones_like(gt), pred | gt]):
            self.ece[k, :, 0] += np.bincount(cb[sel], minlength=15)
            self.ece[k, :, 1] += np.bincount(cb[sel], weights=conf[sel], minlength=15)
            self.ece[k, :, 2] += np.bincount(cb[sel], weights=(~wrong)[sel].astype(float), minlength=15)
        return iou

    @staticmethod
    def auroc(pos, neg):
        """AUROC of a score for positives (errors) vs negatives, from histograms (ties count half)."""
        if pos.sum() == 0 or neg.sum() == 0:
            return float("nan")
        neg_below = np.cumsum(neg) - neg
        return float(((neg_below + 0.5 * neg) * pos).sum() / (pos.sum() * neg.sum()))

    def metrics(self):
        def ece(k):
            n = self.ece[k, :, 0]
            tot = n.sum()
            if tot == 0:
                return float("nan")
            nz = n > 0
            return float((np.abs(self.ece[k, nz, 2] - self.ece[k, nz, 1]) / tot).sum())

        total = self.h_err + self.h_ok
        risk = np.cumsum(self.h_err) / np.maximum(np.cumsum(total), 1)
        aurc = float((risk * total).sum() / max(total.sum(), 1))
        return {
            "pooled_iou": self.inter / self.union if self.union else 1.0,
            "mean_iou": float(np.mean(self.ious)) if self.ious else float("nan"),
            "dice": 2 * self.inter / (self.pred_sum + self.gt_sum) if (self.pred_sum + self.gt_sum) else 1.0,
            "auroc_entropy": self.auroc(self.h_err, self.h_ok),
            "auroc_mi": self.auroc(self.mi_err, self.mi_ok),
            "ece": ece(0),
            "ece_pipe": ece(1),
            "aurc": aurc,
            "pixel_error_rate": float(self.h_err.sum() / max(total.sum(), 1)),
        }


def spearman(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2:
        return float("nan")
    ra = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(float)
    rb = np.argsort(np.argsort(b, kind="stable"), kind="stable").astype(float)
    # average ranks for ties
    for r, v in ((ra, a), (rb, b)):
        for val in np.unique(v):
            sel = v == val
            if sel.sum() > 1:
                r[sel] = r[sel].mean()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def read_rgb(path):
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot decode {path}")
    return bgr[..., ::-1].copy()
