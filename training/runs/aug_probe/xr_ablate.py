"""Which of the second renderer's steps cost a model IoU? (issue 9, stop 29)

Renders N pipe frames of `altgen` (seed 11: other scenes than the `xr` test split's seed 7), once as
altgen draws them and once per variant with one step switched off (the source is patched by string
replacement, asserted to match), and prints each variant's pooled IoU of the deterministic network
(T = 1, mask = probability > 0.5, 640x480).

usage: python training/runs/aug_probe/xr_ablate.py MODEL.onnx [N] [VARIANT,...]
"""
import json
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "training"))
import mcd  # noqa: E402

SRC = (ROOT / "training" / "altgen.py").read_text()
OFF = {
    "distort": [("k1 = rng.uniform(-0.25, 0.0)", "k1 = rng.uniform(-0.25, 0.0) * 0")],
    "ca": [("(0, 1 + rng.uniform(0, 0.006)), (2, 1 - rng.uniform(0, 0.006))",
            "(0, 1 + rng.uniform(0, 0.006) * 0), (2, 1 - rng.uniform(0, 0.006) * 0)")],
    "sharpen": [("img = np.clip(img + rng.uniform(0.3, 1.0) * (img", "img = np.clip(img + 0 * rng.uniform(0.3, 1.0) * (img")],
    "haze": [("haze = 1 - np.exp(-rng.uniform(0.3, 3.0) * (0.2 + far))", "haze = 0 * (1 - np.exp(-rng.uniform(0.3, 3.0) * (0.2 + far)))")],
    "spot": [("light = rng.uniform(0.3, 0.7) + rng.uniform(0.3, 1.0) * spot",
              "light = 0 * rng.uniform(0.3, 0.7) + 0 * rng.uniform(0.3, 1.0) * spot + 0.8")],
    "vignette": [("img = img * (1 - rng.uniform(0.1, 0.5) * r2)[..., None]", "img = img * (1 - 0 * rng.uniform(0.1, 0.5) * r2)[..., None]")],
    "blur": [("kb = int(rng.integers(1, 4)) * 2 - 1", "kb = int(rng.integers(1, 4)) * 0 + 1")],
    "rocks": [("img, mask = _rocks(rng, img, mask, int(rng.integers(0, 25)))", "img, mask = _rocks(rng, img, mask, int(rng.integers(0, 25)) * 0)")],
    "spec": [("* rng.uniform(0, 0.6)\n", "* rng.uniform(0, 0.6) * 0\n")],
    "shadow": [("img = img * np.where(inside, 1, sh)[..., None]", "img = img")],
    "burial": [("if rng.random() < 0.5:\n        drift", "if rng.random() < 0.0:\n        drift")],
}
OFF["camera"] = OFF["distort"] + OFF["ca"] + OFF["sharpen"] + OFF["blur"] + OFF["vignette"]
OFF["water"] = OFF["haze"] + OFF["spot"]


def patched(name, replacements):
    """altgen with its source patched by (old, new) string replacements, each asserted to match."""
    s = SRC
    for a, b in replacements:
        assert a in s, (name, a)
        s = s.replace(a, b)
    m = types.ModuleType("altgen_" + name)
    exec(compile(s, "altgen.py", "exec"), m.__dict__)
    return m


def variant(name):
    """altgen with the named step(s) off; the random draws stay in place, so the scenes stay the same."""
    return patched(name, OFF.get(name, []))


def main():
    sess, meta = mcd.load(sys.argv[1], threads=2)
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    names = ["full"] + (sys.argv[3].split(",") if len(sys.argv) > 3 else list(OFF))
    out = {}
    for name in names:
        ag, inter, union = variant(name), 0, 0
        for i in range(n):
            rgb, mask, _, _ = ag.render(11, i, "pipe")
            p, g = mcd.infer(sess, meta, rgb, 1, None).prob_in > 0.5, mask > 127
            inter, union = inter + (p & g).sum(), union + (p | g).sum()
        out[name] = round(float(inter / union), 3)
        print(name, out[name], flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
