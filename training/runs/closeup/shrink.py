"""Does a model segment close-up pipes better when the frame is shrunk (the pipe made smaller)? Each of
val_dr's first 80 frames is scaled by F about its centre (border: reflected), and only the scaled frame's
own area is scored (T = 16).

Usage: python shrink.py MODEL.onnx
"""
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "training"))
import al_study as A  # noqa: E402
import mcd  # noqa: E402

val = A.frames_of(ROOT / "training" / "data" / "val_dr")[:80]
sess, meta = mcd.load(sys.argv[1])


def shrink(a, f, interp):
    h, w = a.shape[:2]
    s = cv2.resize(a, (int(w * f), int(h * f)), interpolation=interp)
    t, l = (h - s.shape[0]) // 2, (w - s.shape[1]) // 2
    return cv2.copyMakeBorder(s, t, h - s.shape[0] - t, l, w - s.shape[1] - l, cv2.BORDER_REFLECT_101)


for f in (1.0, 0.75, 0.5):
    inter = union = ci = cu = 0
    for i, (rgb, gt) in enumerate(val):
        h, w = gt.shape
        sh, sw = int(h * f), int(w * f)
        roi = (slice((h - sh) // 2, (h - sh) // 2 + sh), slice((w - sw) // 2, (w - sw) // 2 + sw))
        r = mcd.infer(sess, meta, shrink(rgb, f, cv2.INTER_AREA), 16, np.random.default_rng([0, i]))
        p, g = (r.prob_in > 0.5)[roi], (shrink(gt, f, cv2.INTER_NEAREST) > 127)[roi]
        a, b = int((p & g).sum()), int((p | g).sum())
        inter, union = inter + a, union + b
        if (gt > 127).mean() > A.CLOSE_UP:
            ci, cu = ci + a, cu + b
    print(f"shrink {f}: pooled IoU {inter / union:.3f}, close-up frames {ci / cu:.3f}", flush=True)
