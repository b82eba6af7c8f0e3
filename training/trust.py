"""Fit the trust score (docs/interfaces.md §9) and store it in the model's metadata.

    python training/trust.py MODEL.onnx --out OUT.onnx [--report R.json]

trust = P(frame is bad | its signals), a logistic regression (L2, standardised) on the logarithms
of the signals but MI and clipped_fraction (UNFITTED below). `log:x` = ln(max(x, 0) + 1e-4): the
signals are fractions and entropies whose differences matter at small values; left out of the
fit, an OOD kind is flagged far more often than with the raw signals. It is fitted on labelled
frames: the fit splits are labelled bad per docs/interfaces.md §7, and the OOD splits' frames and
the frames of the same kinds in the fit splits (no scene the mask should be trusted on) count as
bad whatever the mask. A frame with more of its area clipped (`clipped_fraction`) than
`trust_clip_max` scores 1; that rule is set at CLIP_MARGIN x the largest clipped fraction of the
clear split's good frames, with no OOD frame. The Rust engine computes the same formula from the
same signals (`src/engine/trust.rs`); `score()` below is that formula, used by the tests to check
the two agree.

The report says per split and per OOD kind how often each signal flags a sane frame at the
threshold that flags 5 % of the good validation frames, and, because OOD kinds are used in
fitting, the leave-one-kind-out rate: trust refitted without that kind, judged on it.

With `--default-gate`, trust becomes the model's default score when it wins on the clear split
(flags more bad frames at the same 5 % of good ones, or fewer within sampling noise and more OOD
frames beyond it, by paired exact tests: `prefer_trust`) or is the default
already (a refit replaces it): `threshold_high` is the 95th percentile of the good frames' trust
at T = --samples or at FEW_SAMPLES, whichever is higher (the engine stops most frames at its
first anytime checkpoint, where trust is noisier: at the T = 16 percentile alone it flagged 5.4 %
of them), `threshold_low` the 80th at T = --samples (calibrate.py's rule), and `recover_frames` 1.
The gate still latches: after a frame above `threshold_high`, it is confident again only on a
frame below `threshold_low`. Replayed on independent renders as a
sequence, `recover_frames: 3` cost ~40 % of the good frames (issue 11, training/runs/gate_check);
one clearly good frame suffices to re-arm, and a frame in the band between the thresholds
keeps the gate unconfident.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(__file__))
import mcd  # noqa: E402

SIGNALS = ["entropy_mean", "entropy_p95", "entropy_fraction_above", "entropy_pipeline_mean", "mi_mean",
           "mi_pipeline_mean", "feature_distance", "pipeline_fraction", "luma_mean", "luma_std", "saturated_fraction",
           "clipped_fraction"]
FEW_SAMPLES = 4  # the engine's first anytime checkpoint (min_samples), where most frames stop
CLIP_GRID = (160, 120)  # as src/engine/sanity.rs: 4 x 4 pixels at 640 x 480
CLIP_MARGIN = 1.1  # trust_clip_max = this x the largest clipped fraction of the clear split's good frames
L2 = 1.0  # ridge on the standardised coefficients: a few hundred frames, some signals correlated
# Left out of the fit: the MI aggregates are the noisiest signals at the engine's first anytime
# checkpoint (4 samples), where most frames stop; with them, trust fitted on T = 16 frames let
# through twice as many bad frames when scored on 4 (issue 11, stop 22).
UNFITTED = ("mi_mean", "mi_pipeline_mean", "clipped_fraction")  # clipped_fraction: the rule below, not a feature


def clipped_fraction(rgb: np.ndarray) -> float:
    """The fraction of the frame's area in CLIP_GRID cells whose every pixel has a channel >= 250
    (src/engine/sanity.rs `clipped_fraction`): clipped regions, not isolated specks of snow."""
    h, w = rgb.shape[:2]
    gw, gh = min(CLIP_GRID[0], w), min(CLIP_GRID[1], h)
    cell = ((np.arange(h) * gh // h)[:, None] * gw + (np.arange(w) * gw // w)[None, :]).ravel()
    total = np.bincount(cell, minlength=gw * gh)
    clipped = np.bincount(cell, weights=(rgb >= 250).any(-1).ravel(), minlength=gw * gh)
    return float(total[clipped == total].sum() / (h * w))


def signals(sess, meta, rgb, t, rng, pixel_threshold, band_px, has_fd):
    """The frame's signals (SIGNALS order) and its mean probability at input resolution."""
    x = mcd.preprocess(rgb, meta)
    masks = mcd.draw_masks(meta, t, rng)
    feeds = {"image": x, **{f"dropout_mask_{k}": m for k, m in enumerate(masks)}}
    names = ["probs", "feature_distance"] if has_fd else ["probs"]
    out = sess.run(names, feeds)
    prob, ent, mi = mcd.uncertainty(out[0][0])
    fs = lambda m, method: mcd.frame_score(m, prob, method, pixel_threshold, band_px)  # noqa: E731
    y = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    s = [fs(ent, "mean"), fs(ent, "p95"), fs(ent, "fraction_above"), fs(ent, "pipeline_mean"), fs(mi, "mean"),
         fs(mi, "pipeline_mean"), float(out[1][0]) if has_fd else float("nan"), float((prob > 0.5).mean()),
         y.mean() / 255.0, y.std() / 255.0, float((rgb >= 250).any(-1).mean()), clipped_fraction(rgb)]
    hh, ww = rgb.shape[:2]
    return np.array(s, np.float64), cv2.resize(prob, (ww, hh), interpolation=cv2.INTER_LINEAR)


def default_score(sess, meta, rgb, t, rng):
    """The model's default frame score of one frame and its mean probability at input
    resolution: trust from the metadata, or the §2 entropy score it names."""
    p = meta.props
    if p["score_method"] == "trust":
        has_fd = any(o.name == "feature_distance" for o in sess.get_outputs())
        sig, prob = signals(sess, meta, rgb, t, rng, float(p["pixel_threshold"]), int(p["band_px"]), has_fd)
        return float(score(from_metadata(p), sig)[0]), prob
    r = mcd.infer(sess, meta, rgb, t, rng)
    return float(mcd.frame_score(r.entropy_model, r.prob_model, p["score_method"], float(p["pixel_threshold"]),
                                 int(p["band_px"]))), r.prob_in


def frames_of(data: Path, split: str, sess, meta, t, seed, has_fd, all_bad=False):
    props = meta.props
    pt, band = float(props["pixel_threshold"]), int(props["band_px"])
    kinds = {}
    mfile = data / split / "meta.jsonl"
    files = sorted((data / split / "image").glob("*.jpg"))
    if mfile.exists():
        for f, line in zip(files, mfile.read_text().splitlines()):
            kinds[f.stem] = json.loads(line).get("kind", "?")
    rng = np.random.default_rng(seed)
    rows = []
    for f in files:
        rgb = mcd.read_rgb(f)
        sig, prob = signals(sess, meta, rgb, t, rng, pt, band, has_fd)
        gt = cv2.imread(str(data / split / "mask" / (f.stem + ".png")), cv2.IMREAD_GRAYSCALE) > 127
        pred = prob > 0.5
        union = (pred | gt).sum()
        iou = 1.0 if union == 0 else float((pred & gt).sum() / union)
        bad = all_bad or iou < 0.5 or (gt.any() and not pred.any())
        rows.append({"split": split, "name": f.stem, "kind": kinds.get(f.stem, "?"), "signals": sig, "iou": iou,
                     "bad": bool(bad), "sane": mcd.sanity(rgb)[0]})
    return rows


LOG_EPS = 1e-4  # log:x = ln(max(x, 0) + LOG_EPS), as src/engine/trust.rs


def columns(sig: np.ndarray, features: list[str]) -> np.ndarray:
    """The model inputs named by `features` (`signal` or `log:signal`) of signals [N, len(SIGNALS)];
    non-finite where the signal is."""
    sig = np.atleast_2d(sig).astype(np.float64)
    out = []
    for name in features:
        log = name.startswith("log:")
        x = sig[:, SIGNALS.index(name[4:] if log else name)]
        if log:
            with np.errstate(invalid="ignore"):
                x = np.where(np.isfinite(x), np.log(np.maximum(x, 0.0) + LOG_EPS), x)
        out.append(x)
    return np.stack(out, 1)


def fit(x: np.ndarray, y: np.ndarray, features: list[str]):
    """L2 logistic regression by Newton's method on the standardised `features` of signals x."""
    x = columns(x, features)
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-9] = 1.0
    z = np.c_[np.ones(len(x)), (x - mean) / scale]
    w = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], L2)
    reg[0] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-z @ w))
        g = z.T @ (p - y) + reg * w
        h = (z * (p * (1 - p))[:, None]).T @ z + np.diag(reg)
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return {"features": list(features), "mean": mean, "scale": scale, "coef": w[1:], "intercept": float(w[0])}


def score(model: dict, sig: np.ndarray) -> np.ndarray:
    """The trust score of signals [N, len(SIGNALS)] (as src/engine/trust.rs): non-finite -> 1,
    and 1 where more of the frame is clipped than `clip_max`."""
    x = columns(sig, model["features"])
    with np.errstate(invalid="ignore"):
        z = model["intercept"] + ((x - model["mean"]) / model["scale"]) @ model["coef"]
        out = 1 / (1 + np.exp(-z))
    out[~np.isfinite(x).all(1)] = 1.0
    if model.get("clip_max") is not None:
        with np.errstate(invalid="ignore"):
            out[np.atleast_2d(sig)[:, SIGNALS.index("clipped_fraction")] > model["clip_max"]] = 1.0
    return out


def from_metadata(props: dict) -> dict | None:
    if "trust_features" not in props:
        return None
    nums = lambda k: np.array([float(v) for v in props[k].split(",")])  # noqa: E731
    return {"features": props["trust_features"].split(","), "mean": nums("trust_mean"), "scale": nums("trust_scale"),
            "coef": nums("trust_coef"), "intercept": float(props["trust_intercept"]),
            "clip_max": float(props["trust_clip_max"]) if "trust_clip_max" in props else None}


def metadata(model: dict) -> dict:
    j = lambda v: ",".join(repr(float(x)) for x in v)  # noqa: E731
    out = {"trust_features": ",".join(model["features"]), "trust_mean": j(model["mean"]),
           "trust_scale": j(model["scale"]), "trust_coef": j(model["coef"]), "trust_intercept": repr(model["intercept"])}
    if model.get("clip_max") is not None:
        out["trust_clip_max"] = repr(float(model["clip_max"]))
    return out


def flag_rates(rows, values, th):
    """Fraction of sane frames with value > th."""
    sane = [v for r, v in zip(rows, values) if r["sane"]]
    return round(float(np.mean(np.array(sane) > th)), 4) if sane else None


def mcnemar_p(lost: int, gained: int) -> float:
    """Exact two-sided McNemar p-value: of the frames the two scores disagree on, `lost` are flagged
    only by the current score and `gained` only by trust (binomial(lost + gained, 1/2))."""
    n, k = lost + gained, min(lost, gained)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0


def prefer_trust(ours_bad, theirs_bad, ours_ood, theirs_ood, alpha: float = 0.05) -> bool:
    """Per-frame flags (booleans, the same frames in the same order) of trust and of the current
    score on the bad frames and on the OOD frames, both scores at 5 % of the good frames. Trust wins
    when it flags at least as many bad frames (ties: at least as many OOD frames), or when the bad
    frames it loses are within sampling noise (paired exact test, p >= alpha) and it gains OOD
    frames beyond it (p < alpha). Decided on counts alone, the bad frames (about 20 of them) made
    the choice a coin toss: a re-run of the shipped recipe on another CPU (training/runs/
    rerun_avx512) flagged 16 of 20 bad frames with trust and 19 with the entropy score, and the
    one-frame slack that rule allowed kept the entropy score, which flagged 0.36 of the OOD renders
    against trust's 0.96."""
    ob, tb, oo, to = (np.asarray(v, bool) for v in (ours_bad, theirs_bad, ours_ood, theirs_ood))
    if (ob.sum(), oo.sum()) >= (tb.sum(), to.sum()):
        return True
    if ob.sum() >= tb.sum():  # as many bad frames, fewer OOD frames
        return False
    bad_noise = mcnemar_p(int((tb & ~ob).sum()), int((ob & ~tb).sum())) >= alpha
    ood_gain = oo.sum() > to.sum() and mcnemar_p(int((to & ~oo).sum()), int((oo & ~to).sum())) < alpha
    return bool(bad_noise and ood_gain)


def default_gate(model: dict, clear: list, split_rows: list, ood_rows: list, props: dict,
                 clear_few: list | None = None) -> tuple[dict, dict]:
    """Whether trust should be the default score (`prefer_trust` on the clear split's bad frames
    and the OOD frames, both scores at 5 % of the good frames). Returns
    the record and the metadata to set (empty when it should not). `clear_few`: the same good
    frames scored with FEW_SAMPLES samples; `threshold_high` is then the higher of the two 95th
    percentiles, so that the engine, which stops most frames at its first anytime checkpoint,
    also flags no more than 5 % of them."""
    import calibrate
    sig = lambda rows: np.stack([r["signals"] for r in rows])  # noqa: E731
    good = score(model, sig(clear))
    hi, lo = float(np.quantile(good, calibrate.GOOD_FLAG_QUANTILE)), float(np.quantile(good, calibrate.LOW_QUANTILE))
    hi_few = float(np.quantile(score(model, sig(clear_few)), calibrate.GOOD_FLAG_QUANTILE)) if clear_few else None
    hi = max(hi, hi_few) if hi_few is not None else hi
    bad = [r for r in split_rows if r["bad"] and r["sane"]]
    ood = [r for r in ood_rows if r["sane"]]
    cur = props.get("score_method", "")
    # The entropy scores are signals too (entropy_mean, ..., entropy_pipeline_mean).
    col = SIGNALS.index(f"entropy_{cur}") if f"entropy_{cur}" in SIGNALS else None
    def flagged(rows, values_of, th):  # per frame: the score above its threshold
        return values_of(sig(rows)) > th if rows else np.zeros(0, bool)

    ours_f = tuple(flagged(rows, lambda s: score(model, s), hi) for rows in (bad, ood))
    theirs_f = (np.zeros(len(bad), bool), np.zeros(len(ood), bool))
    if col is not None:
        th = float(props["threshold_high"])
        theirs_f = tuple(flagged(rows, lambda s: s[:, col], th) for rows in (bad, ood))
    rate = lambda f: float(f.mean()) if len(f) else 0.0  # noqa: E731
    ours, theirs = (rate(ours_f[0]), rate(ours_f[1])), (rate(theirs_f[0]), rate(theirs_f[1]))
    # A refit of the current trust replaces it: the same method, its thresholds set by the same rule.
    chosen = cur == "trust" or prefer_trust(ours_f[0], theirs_f[0], ours_f[1], theirs_f[1])
    rec = {"current": cur, "current_bad_ood_flagged": theirs, "trust_bad_ood_flagged": ours,
           "threshold_high_few_samples": hi_few,
           "threshold_high": hi, "threshold_low": lo, "recover_frames": 1, "chosen": chosen}
    print("default gate:", rec)
    gate = {"score_method": "trust", "threshold_high": f"{hi:.4f}", "threshold_low": f"{lo:.4f}", "recover_frames": "1"}
    return rec, gate if chosen else {}


def card_section(report: dict, args) -> str:
    """The model card's section on the trust signals (training/card.py includes it)."""
    rates = report["rates"]
    groups = [g for g in next(iter(rates.values())) if g != "threshold"]
    out = ["## Trust signals: what each one flags (`training/trust.py`)", "",
           f"Each signal thresholded where it flags 5 % of the good, sane `{args.clear_split}` frames; the table gives "
           f"the fraction of sane frames above that threshold (T = {report['samples']}). `trust` is the logistic "
           f"regression on {', '.join(report['signals_used'])}, fitted on {report['fit_frames']} sane frames "
           f"({report['fit_bad']} bad) of {args.fit_splits} (bad per docs/interfaces.md §7) and {args.ood_splits} "
           "(all bad, as are the fit splits' frames of the OOD kinds). The OOD kinds are in the fit, so the last row "
           "refits trust without each kind (in every split) and judges it on that kind: the figure to expect for a "
           "kind of scene nobody has shown it. Good frames should be low; `ood:*`, no-pipe and hard held-out sets "
           "high.", "",
           "| signal | " + " | ".join(groups) + " |", "|---" * (len(groups) + 1) + "|"]
    for name, r in rates.items():
        out.append(f"| `{name}` | " + " | ".join("n/a" if r[g] is None else f"{r[g]:.3f}" for g in groups) + " |")
    if report["model"].get("clip_max") is not None:
        out[2] += (f" A frame with more than {report['model']['clip_max']:.4f} of its area clipped "
                   f"(`clipped_fraction`: cells of a 160 × 120 grid whose every pixel has a channel ≥ 250) scores 1 "
                   f"({CLIP_MARGIN} × the largest clipped fraction of the good `{args.clear_split}` frames; no OOD "
                   "frame sets it).")
    loko = report["leave_one_kind_out_trust"]
    out.append("| `trust`, kind left out | " + " | ".join(
        f"{loko[g.split(':', 1)[1]]:.3f}" if g.startswith("ood:") and g.split(":", 1)[1] in loko else ""
        for g in groups) + " |")
    g = report.get("default_gate")
    if g:
        was = ("the default was `trust` already (this refit replaces it)" if g["current"] == "trust" else
               f"`{g['current']}` at its threshold flagged {g['current_bad_ood_flagged'][0]:.3f} / "
               f"{g['current_bad_ood_flagged'][1]:.3f}")
        out += ["", f"Default gate (`--default-gate`): on the bad sane `{args.clear_split}` frames and the sane OOD frames, "
                f"{was}, `trust` at the 95th percentile of the good frames"
                + (f" (the higher of T = {report['samples']} and T = {FEW_SAMPLES}: "
                   f"{g['threshold_high_few_samples']:.4f} at T = {FEW_SAMPLES})" if g.get("threshold_high_few_samples")
                   else "") + " "
                f"({g['threshold_high']:.4f}) {g['trust_bad_ood_flagged'][0]:.3f} / {g['trust_bad_ood_flagged'][1]:.3f}: "
                + ("trust is the default score, `threshold_low` " f"{g['threshold_low']:.4f}, `recover_frames` 1 "
                   "(the model's gate defaults now; the gate table of the calibration section records the run "
                   "that trained the weights)."
                   if g["chosen"] else "the default score is unchanged.")]
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "data"))
    ap.add_argument("--fit-splits", default="val,val_dr,nopipe_dr")
    ap.add_argument("--ood-splits", default="ood")
    ap.add_argument("--eval-splits", default="xr,ho_water,ho_seabed,ho_coating,ho_light")
    ap.add_argument("--clear-split", default="val", help="the good frames of this split set the 5 %% threshold")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--report")
    ap.add_argument("--default-gate", action="store_true",
                    help="make trust the default score (thresholds from the clear split) if it wins there")
    args = ap.parse_args()
    t0 = time.time()
    sess, meta = mcd.load(args.model)
    has_fd = any(o.name == "feature_distance" for o in sess.get_outputs())
    data = Path(args.data)
    split = lambda s: [x for x in s.split(",") if x]  # noqa: E731
    fit_rows = [r for s in split(args.fit_splits) for r in frames_of(data, s, sess, meta, args.samples, args.seed, has_fd)]
    ood_rows = [r for s in split(args.ood_splits)
                for r in frames_of(data, s, sess, meta, args.samples, args.seed, has_fd, all_bad=True)]
    eval_rows = {s: frames_of(data, s, sess, meta, args.samples, args.seed, has_fd) for s in split(args.eval_splits)}
    features = [f"log:{n}" for n in SIGNALS if n not in UNFITTED and (has_fd or n != "feature_distance")]
    # The OOD kinds are out of scope wherever they appear: a fit split's open water with an empty
    # mask is right by §7 but no scene to trust, so the fit labels it as it labels the OOD split.
    ood_kinds = {r["kind"] for r in ood_rows}
    train = [r for r in fit_rows + ood_rows if r["sane"]]
    label = lambda rows: np.array([r["bad"] or r["kind"] in ood_kinds for r in rows], float)  # noqa: E731
    x, y = np.stack([r["signals"] for r in train]), label(train)
    model = fit(x, y, features)
    clear = [r for r in fit_rows if r["split"] == args.clear_split and not r["bad"] and r["sane"]]
    # The clipped-area rule: set on the good clear frames only (no OOD frame), above all of them.
    clip = SIGNALS.index("clipped_fraction")
    model["clip_max"] = round(CLIP_MARGIN * max(r["signals"][clip] for r in clear), 4)
    m = onnx.load(args.model)
    keep = [p for p in m.metadata_props if not p.key.startswith("trust_")]
    del m.metadata_props[:]
    m.metadata_props.extend(keep)
    onnx.helper.set_model_props(m, {**{p.key: p.value for p in keep}, **metadata(model)})

    # What each signal flags at the threshold that flags 5 % of the clear split's good frames.
    cols = {"trust": lambda rows: score(model, np.stack([r["signals"] for r in rows]))}
    for i, n in enumerate(SIGNALS):
        cols[n] = lambda rows, i=i: np.stack([r["signals"] for r in rows])[:, i]
    report = {"signals_used": model["features"], "fit_frames": len(train), "fit_bad": int(y.sum()),
              "samples": args.samples, "feature_distance": has_fd, "rates": {}}
    groups = {f"{r['split']}": [] for r in fit_rows}
    for r in fit_rows:
        groups[r["split"]].append(r)
    for r in ood_rows:
        groups.setdefault(f"ood:{r['kind']}", []).append(r)
    groups.update(eval_rows)
    for name, f in cols.items():
        if name == "feature_distance" and not has_fd:
            continue
        th = float(np.percentile(f(clear), 95))
        report["rates"][name] = {"threshold": th, **{g: flag_rates(rows, f(rows), th) for g, rows in groups.items()}}
    if args.default_gate:
        # The clear split's good frames again at the engine's first anytime checkpoint.
        few = [r for r in frames_of(data, args.clear_split, sess, meta, FEW_SAMPLES, args.seed + 1, has_fd)
               if not r["bad"] and r["sane"]]
        report["default_gate"], gate = default_gate(model, clear, [r for r in fit_rows if r["split"] == args.clear_split],
                                                    ood_rows, meta.props, few)
        if gate:
            import calibrate
            calibrate.set_props(m, gate)
    onnx.save(m, args.out)
    # Leave one OOD kind out: refit without it, flag rate on it at the refit's own 5 % threshold.
    loko = {}
    for kind in sorted(ood_kinds):
        tr = [r for r in train if r["kind"] != kind]
        mk = {**fit(np.stack([r["signals"] for r in tr]), label(tr), features), "clip_max": model["clip_max"]}
        th = float(np.percentile(score(mk, np.stack([r["signals"] for r in clear])), 95))
        held = [r for r in ood_rows if r["kind"] == kind]
        loko[kind] = flag_rates(held, score(mk, np.stack([r["signals"] for r in held])), th)
    report["leave_one_kind_out_trust"] = loko
    report["model"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in model.items()}
    report["seconds"] = round(time.time() - t0, 1)
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=1) + "\n")
        (Path(args.report).parent / "card_section.md").write_text(card_section(report, args))
    for name, r in report["rates"].items():
        print(name, {k: v for k, v in r.items()})
    print("leave one kind out (trust):", loko)
    print(f"{args.out}: trust fitted on {len(train)} sane frames ({int(y.sum())} bad) in {report['seconds']} s")


if __name__ == "__main__":
    main()
