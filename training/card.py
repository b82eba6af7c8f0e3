"""Write models/MODEL_CARD.md from the run's JSON records (numbers are never typed by hand)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
import os  # noqa: E402

RUN = Path(os.environ.get("RUN_DIR", HERE / "runs" / "shipped"))
DATA = Path(os.environ.get("DATA_DIR", HERE / "data"))
CARD = Path(os.environ.get("CARD", ROOT / "models" / "MODEL_CARD.md"))
SHEETS = CARD.parent / "card"


def contact_sheet(split, n=8, cols=4):
    """Frames with their mask outline, one JPEG per split (kept as it is if the data is absent)."""
    d = DATA / split
    if not (d / "image").is_dir():
        return f"card/{split}.jpg"
    files = sorted((d / "image").glob("*.jpg"))[:n]
    tiles = []
    for f in files:
        rgb = cv2.imread(str(f))
        m = cv2.imread(str(d / "mask" / (f.stem + ".png")), cv2.IMREAD_GRAYSCALE)
        edge = cv2.morphologyEx(m, cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8)) > 0
        over = rgb.copy()
        over[edge] = (0, 255, 255)
        tiles.append(cv2.resize(over, (320, 240), interpolation=cv2.INTER_AREA))
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)]
    SHEETS.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(SHEETS / f"{split}.jpg"), np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return f"card/{split}.jpg"


def split_summary(split):
    if not (DATA / split / "meta.jsonl").exists():  # train_dr keeps no per-frame metadata (make_data.NO_META)
        n = len(list((DATA / split / "image").glob("*.jpg"))) if (DATA / split).exists() else 0
        return {"frames": n, "kinds": "see the generator's weights", "water": "all but the held-out families",
                "altitude": "–", "pitch": "–", "diameter": "–", "pipe_fraction": "–"}
    metas = [json.loads(line) for line in (DATA / split / "meta.jsonl").read_text().splitlines()]
    kinds = {}
    for m in metas:
        kinds[m["kind"]] = kinds.get(m["kind"], 0) + 1
    waters = sorted({m["water"] for m in metas})
    def rng(k):
        v = [m[k] for m in metas if k in m]
        return f"{min(v):.2f}–{max(v):.2f}" if v else "–"
    return {"frames": len(metas), "kinds": ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())),
            "water": ", ".join(waters), "altitude": rng("altitude_m"), "pitch": rng("pitch_deg"),
            "diameter": rng("pipe_diameter_m"),
            "pipe_fraction": f"{np.mean([m['pipeline_fraction'] for m in metas]):.3f}"}


def section(lines, head):
    """(start, end) of a card section: its `## ` heading up to the next one or the end; None if absent."""
    if head not in lines:
        return None
    i = lines.index(head)
    return i, next((k for k in range(i + 1, len(lines)) if lines[k].startswith("## ")), len(lines))


def card_data_rows():
    """The current card's `## Data` table rows, by split."""
    lines = CARD.read_text().splitlines() if CARD.exists() else []
    i, j = section(lines, "## Data") or (0, 0)
    return {r.split("|")[1].strip(): r for r in lines[i:j] if r.startswith("| ")}


def data_row(split, d, kept_rows):
    """A split's data-table row from the frames here; where fewer are here than the card counts (a fresh
    clone's `make al-study` renders only the splits it needs, and train_dr in part), the card's row as it was."""
    s = split_summary(split)
    kept = kept_rows.get(split)
    if kept and s["frames"] < int(kept.split("|")[2]):
        return kept
    return (f"| {split} | {s['frames']} | {s['kinds']} | {s['water']} | {s['altitude']} | {s['pitch']} | "
            f"{s['diameter']} | {s['pipe_fraction']} | `{d['sha256'][:12]}…` |")


HELD_OUT_TEXT = {
    "ho_water": "water: **murky** (Jerlov 9C ×1–1.6, dim exposure, more read noise); training waters are oceanic I–1C, "
                "coastal 1C–5C, green (yellow-substance) and turbid 5C–7C×1.25",
    "ho_seabed": "seabed: **weed** (vegetated patches of dark green-brown fronds over sand); training seabeds are sand, "
                 "mud, gravel, rock (dense cobbles) and shell hash",
    "ho_coating": "pipe coating: **fouled** (growth covering the whole pipe, with anemone / soft-coral spots); training "
                  "coatings are concrete, painted steel, growth patches, FBE, rust and helical wrap",
    "ho_light": "lighting rig: **daylight** (no lamps; shallow downwelling sunlight with caustics); training has 1–4 "
                "lamps in random rigs",
    "xr": "**second renderer** (`training/altgen.py`: image-space painter, Voronoi/ripple/stain seabeds, Bezier pipe, "
          "row haze, barrel distortion, chromatic aberration, sharpening), never trained on",
}
HELD_OUT = ["ho_water", "ho_seabed", "ho_coating", "ho_light", "xr"]
NOPIPE_SPLITS = ["nopipe_dr", "val_dr", "ood", "xr", "ho_water", "ho_seabed", "ho_light"]
MAC_BUDGET = 1.3 * 6.61e9  # 1.3x the T = 16 cost of the model before issue 9


RERUN = HERE / "runs" / "rerun_avx512" / "timings.json"


def make_model_time(tm):
    """The time criterion holds only for a run whose every step was timed (a run resumed with
    `--from` keeps the earlier steps' times; one with steps run by hand has gaps)."""
    import pipeline
    name = "`make model` ≤ 60 min on 2 cores"
    missing = [s for s in pipeline.STEP_NAMES if s not in tm]
    if missing and RERUN.exists():
        # The shipped run has gaps; a later run of the same recipe from nothing was timed whole.
        rt = json.loads(RERUN.read_text())
        if all(s in rt for s in pipeline.STEP_NAMES):
            return (name, rt["total"] <= 3600, f"{rt['total'] / 60:.1f} min end to end in a re-run of this recipe from "
                    f"nothing (`{RERUN.parent.relative_to(HERE.parent)}`, {rt['cpus']} cores of {rt.get('cpu', 'an AVX-512 EPYC')}; its model "
                    f"was not shipped); this run timed {tm['total'] / 60:.1f} min of its steps. On AVX2-only CPUs "
                    "training alone takes 70-90 min (float32)")
    if missing:
        return (name, None, f"not run end to end: {tm['total'] / 60:.1f} min for the steps timed; "
                f"not timed: {', '.join(missing)}")
    return (name, tm["total"] <= 3600, f"{tm['total'] / 60:.1f} min")


def acceptance9(m, tm, ex):
    """Issue 9's acceptance list, checked against this run's numbers."""
    v = m["val_dr"]
    rows = [("own val (`val_dr`) pooled IoU ≥ 0.88 (T = 16)", v["pooled_iou"] >= 0.88, f"{v['pooled_iou']:.3f}"),
            ("own val AUROC(entropy) ≥ 0.95", v["auroc_entropy"] >= 0.95, f"{v['auroc_entropy']:.3f}")]
    for s in HELD_OUT:
        if s in m:
            rows.append((f"`{s}` pooled IoU ≥ 0.75 and AUROC(entropy) ≥ 0.90",
                         m[s]["pooled_iou"] >= 0.75 and m[s]["auroc_entropy"] >= 0.90,
                         f"IoU {m[s]['pooled_iou']:.3f}, AUROC {m[s]['auroc_entropy']:.3f}"))
    for s in NOPIPE_SPLITS:
        if s in m and m[s].get("nopipe_frames"):
            rows.append((f"`{s}` no-pipe frames: median fraction called pipeline ≤ 0.5 %",
                         m[s]["nopipe_median_fraction"] <= 0.005,
                         f"{100 * m[s]['nopipe_median_fraction']:.2f} % of {m[s]['nopipe_frames']} frames "
                         f"(p90 {100 * m[s]['nopipe_p90_fraction']:.2f} %)"))
    rows += [("≤ 2 M parameters, file ≤ 10 MB", ex["params"] <= 2e6 and ex["file_bytes"] <= 10e6,
              f"{ex['params']:,} params, {ex['file_bytes'] / 1e6:.2f} MB"),
             ("T = 16 cost ≤ 1.3 × 6.61 GMAC", ex["macs_T16_shipped"] <= MAC_BUDGET, f"{ex['macs_T16_shipped'] / 1e9:.2f} GMAC"),
             make_model_time(tm)]
    out = ["## Acceptance (issue 9, this run)", "", "| criterion | holds | measured |", "|---|---|---|"]
    out += [f"| {name} | {'not measured' if ok is None else 'yes' if ok else '**no**'} | {val} |" for name, ok, val in rows]
    return out + [""]


def acceptance(m, tm):
    """The issue's acceptance list, checked against this run's numbers."""
    v, sc, st, o = m["val"], m["shift_clear"], m["shift_turbid"], m["ood"]
    rows = [
        ("val pooled IoU ≥ 0.85 (T = 16)", v["pooled_iou"] >= 0.85, f"{v['pooled_iou']:.3f}"),
        ("val MC-mean IoU ≥ deterministic IoU − 0.01", v["pooled_iou"] >= v["det_pooled_iou"] - 0.01,
         f"{v['pooled_iou']:.3f} vs {v['det_pooled_iou']:.3f}"),
        ("val AUROC(entropy) ≥ 0.90", v["auroc_entropy"] >= 0.90, f"{v['auroc_entropy']:.3f}"),
        ("val ECE on pipeline pixels ≤ 0.10", v["ece_pipe"] <= 0.10, f"{v['ece_pipe']:.3f}"),
        ("shifted sets AUROC(entropy) ≥ 0.80", min(sc["auroc_entropy"], st["auroc_entropy"]) >= 0.80,
         f"clear {sc['auroc_entropy']:.3f}, turbid {st['auroc_entropy']:.3f}"),
        ("sane OOD frames above threshold_high ≥ 80 %", o["sane_above_high"] >= 0.80, f"{o['sane_above_high']:.3f}"),
        ("clear val frames (IoU ≥ 0.8) above threshold_high ≤ 10 %", v["clear_above_high"] <= 0.10,
         f"{v['clear_above_high']:.3f}"),
        ("`make model` ≤ 40 min on 2 cores", tm["total"] <= 2400, f"{tm['total'] / 60:.1f} min"),
    ]
    out = ["## Acceptance (this run)", "", "| criterion | holds | measured |", "|---|---|---|"]
    out += [f"| {name} | {'yes' if ok else '**no**'} | {val} |" for name, ok, val in rows]
    return out + [""]


def shipped_gate() -> dict:
    """The gate keys in the shipped model's metadata (the trust step may have replaced calib.json's)."""
    import onnx
    m = onnx.load(str(ROOT / "models" / "pipeline_seg_unet.onnx"), load_external_data=False)
    return {p.key: p.value for p in m.metadata_props}


def fmt(v, nd=3):
    return "–" if v is None or v != v else f"{v:.{nd}f}"


def main():
    ex = json.loads((RUN / "export.json").read_text())
    cal = json.loads((RUN / "calib.json").read_text())
    ev = json.loads((RUN / "eval.json").read_text())
    tm = json.loads((RUN / "timings.json").read_text())
    tr = json.loads((RUN / "train_log.json").read_text())["config"]
    digest = json.loads(Path(os.environ.get("DIGEST", HERE / "data_digest.json")).read_text())
    notes = (HERE / "card_notes.md").read_text()
    study = HERE / "study" / "results.json"
    import evaluate  # noqa: E402  (table formatting lives there)
    import pipeline  # noqa: E402  (which timings keys are steps)

    out = ["# Model card: `pipeline_seg_unet.onnx`", "",
           "_Generated by `training/card.py` from the records of `make model`; do not edit by hand. "
           "Hand-written notes come from `training/card_notes.md`._", ""]
    out += [notes, ""]
    out += ["## The shipped graph", "",
            f"- placement `{ex['placement']}`, dropout p = {tr['p']}, {ex['params']:,} parameters, "
            f"{ex['file_bytes'] / 1e6:.2f} MB, ONNX IR {ex['ir_version']}, opset {ex['opset']}",
            f"- input 192×256 (H×W), RGB, normalisation mean {[round(v, 4) for v in tr['mean']]} "
            f"std {[round(v, 4) for v in tr['std']]} (on pixel/255); local-contrast input {'on' if ex.get('lcn') else 'off'}; "
            f"logit temperature {ex.get('temperature', 1.0):.2f}",
            f"- multiply-accumulates per frame at T = 16: **{ex['macs_T16_shipped'] / 1e9:.2f} G** for the shipped graph "
            f"(once: {ex['macs_once'] / 1e9:.3f} G, per sample: {ex['macs_per_sample'] / 1e9:.4f} G) vs "
            f"**{ex['macs_T16_whole_network'] / 1e9:.2f} G** for running the whole network 16 times "
            f"({ex['macs_T16_whole_network'] / ex['macs_T16_shipped']:.1f}× more)",
            f"- ONNX Runtime vs PyTorch `eval()` without dropout (all-ones masks, T = 1): max |Δ| = "
            f"{ex['max_abs_diff_ones_T1']:.1e}; with random masks (T = 4): {ex['max_abs_diff_random_T4']:.1e} "
            "(`make model` fails above 1e-5)",
            f"- trained {tr['steps']} steps × batch {tr['batch']} on {tr['train_frames']} frames of `{tr.get('split', 'train')}` "
            f"(shares {tr.get('split_weights')}; strong augmentation {'on' if tr.get('strong_aug') else 'off'}, "
            f"water augmentation {'on' if tr.get('water_aug') else 'off'}"
            + (f"; continued from `{Path(tr['init']).relative_to(ROOT) if Path(tr['init']).is_absolute() else tr['init']}`"
               if tr.get("init") else "")
            + f", lr {tr['lr']}) in {tr['train_seconds'] / 60:.1f} min ({tr['threads']} threads), seed {tr['seed']}", ""]
    ch = cal["chosen"]
    meta = shipped_gate()
    out += ["## Gate defaults (stored in the metadata)", "",
            "| key | value |", "|---|---|"] + [f"| `{k}` | {meta.get(k, '–')} |" for k in ch] + [""]
    if meta.get("score_method") != ch.get("score_method"):
        out += [f"`calibrate+evaluate` first chose `{ch['score_method']}` (below); the `trust` step then made "
                f"`{meta.get('score_method')}` the default (`--default-gate`, see *Trust signals*). The `sane > high` and "
                f"`clear > high` columns of the evaluation table are those of `{ch['score_method']}`.", ""]
    out += [f"Calibration on {cal['good'] + cal['bad']} sane `{ev.get('calibrate_split', 'val')}` frames ({cal['good']} good, {cal['bad']} bad: "
            "IoU < 0.5 or a missed pipeline). For each score variant, `threshold_high` is the 95th percentile of the "
            "good frames' scores; the variant that then flags the most bad frames wins. Top variants:", "",
            "| score | threshold_high | good flagged | bad flagged | AUROC bad vs good | Spearman(score, 1−IoU) |",
            "|---|---|---|---|---|---|"]
    for r in cal["rows"][:8]:
        out.append(f"| {r['key']} | {r['threshold_high']:.4f} | {fmt(r['good_flagged'])} | {fmt(r['bad_flagged'])} | "
                   f"{fmt(r['auroc_bad'])} | {fmt(r['spearman_1-iou'])} |")
    out += ["", f"## Evaluation (ONNX Runtime, T = {ev['samples']}, seed {ev['seed']}, `training/evaluate.py`)", "",
            "Pixel metrics at input resolution (640×480), definitions in `training/mcd.py` (docs/interfaces.md §7). "
            "`sane > high`: fraction of frames passing the input sanity checks whose score is above "
            "`threshold_high`; `clear > high`: the same for frames with IoU ≥ 0.8.", "",
            evaluate.table(ev["metrics"]), ""]
    out += ["By kind of frame:", "", "| split | kind | frames | pass sanity | sane above threshold_high | mean score |",
            "|---|---|---|---|---|---|"]
    for split in ("val_dr", "nopipe_dr", "val", "ood"):
        for k, v in ev["metrics"].get(split, {}).get("by_kind", {}).items():
            out.append(f"| {split} | {k} | {v['frames']} | {v['sane']} | {fmt(v['sane_above_high'])} | "
                       f"{fmt(v['mean_score'], 4)} |")
    out.append("")
    if "val_dr" in ev["metrics"]:
        out += acceptance9(ev["metrics"], tm, ex)
        out += ["## Held-out families and the second renderer", "",
                "Each family below is rendered only in its own split; training (`train_dr` and the first generator's "
                "`train`) never contains it.", "",
                "| split | held out | pooled IoU | AUROC H | ECE pipe | no-pipe median frac. |", "|---|---|---|---|---|---|"]
        for sname in HELD_OUT:
            if sname in ev["metrics"]:
                mm = ev["metrics"][sname]
                out.append(f"| `{sname}` | {HELD_OUT_TEXT[sname]} | {fmt(mm['pooled_iou'])} | {fmt(mm['auroc_entropy'])} | "
                           f"{fmt(mm['ece_pipe'])} | {fmt(100 * mm['nopipe_median_fraction'], 2)} % |")
        out.append("")
        base = RUN / "baseline_eval.json"
        if base.exists():
            bm = json.loads(base.read_text())["metrics"]
            out += ["### Against the previous model", "",
                    "The model shipped before issue 9 (trained on the first generator only), evaluated by the same "
                    "`evaluate.py` on the same frames (`baseline_eval.json`):", "",
                    "| split | previous pooled IoU | this pooled IoU | previous AUROC H | this AUROC H | previous no-pipe median | this no-pipe median |",
                    "|---|---|---|---|---|---|---|"]
            for sname, mm in ev["metrics"].items():
                if sname in bm and bm[sname].get("frames") and mm.get("frames"):
                    b = bm[sname]
                    out.append(f"| `{sname}` | {fmt(b['pooled_iou'])} | {fmt(mm['pooled_iou'])} | {fmt(b['auroc_entropy'])} | "
                               f"{fmt(mm['auroc_entropy'])} | {fmt(100 * b.get('nopipe_median_fraction', float('nan')), 2)} % | "
                               f"{fmt(100 * mm['nopipe_median_fraction'], 2)} % |")
            out.append("")
    else:
        out += acceptance(ev["metrics"], tm)
    comp = RUN / "compat.json"
    if comp.exists():
        c = json.loads(comp.read_text())
        out += ["## What the repository's tests assume of the model (`training/compat.py`)", "",
                "The test fixtures (`tests/data/frames`, `tests/data/sample_bag`) are renders of the first generator "
                "and do not change with the model; these are the model-dependent assumptions of the tests, checked "
                "with the Python engine (the Rust sampler's masks differ, so scores move by a few hundredths).", "",
                "| assumption | holds | detail |", "|---|---|---|"]
        out += [f"| {r['assumption']} | {'yes' if r['holds'] else '**no**'}{' (near)' if r['near'] else ''} | {r['detail']} |"
                for r in c["checks"]]
        out.append("")
    for extra in ("trust/card_section.md", "gate_check/card_section.md", "finetune_check/card_section.md",
                  "al_study/card_section.md", "ft_blend/card_section.md", "ft_defaults/card_section.md",
                  "al_study_xr/card_section.md"):
        f = HERE / "runs" / extra
        if f.exists():
            out += [f.read_text(), ""]
    if study.exists():
        rows = json.loads(study.read_text())
        out += ["## Dropout placement study (`make study`)", "",
                "Each placement trained with the shipped recipe for 1,400 steps (batch 8, one thread each, two runs at "
                "a time on the 2 cores), exported with its fitted temperature, calibrated on `val` and evaluated with "
                "ONNX Runtime at T = 16 (`training/study/*/`).", "",
                "| placement | val IoU (T=16) | det. IoU | AUROC H | AUROC MI | ECE pipe | OOD sane > high | clear val > high | "
                "GMAC per sample | GMAC/frame T=16 | whole net ×16 | train min |", "|---" * 12 + "|"]
        for r in rows:
            out.append(f"| `{r['placement']}` | {fmt(r['val_pooled_iou'])} | {fmt(r['val_det_iou'])} | "
                       f"{fmt(r['val_auroc_entropy'])} | {fmt(r['val_auroc_mi'])} | {fmt(r['val_ece_pipe'])} | "
                       f"{fmt(r['ood_sane_above_high'])} | {fmt(r['val_clear_above_high'])} | "
                       f"{r['gmacs_per_sample']:.4f} | {r['gmacs_T16']:.2f} | {r['gmacs_T16_whole']:.2f} | "
                       f"{r['train_s'] / 60:.1f} |")
        out.append("")
    out += ["## Data", "",
            f"Generated by `training/scenegen.py` from seed {digest['seed']}; `make model` regenerates it and checks "
            "it against `training/data_digest.json`: masks and metadata byte for byte; the sha256 below also covers the "
            "images, whose last bits depend on the CPU's numpy SIMD code.", "",
            "| split | frames | kinds | water (Jerlov) | altitude m | pitch ° | pipe Ø m | mean pipe fraction | sha256 |",
            "|---|---|---|---|---|---|---|---|---|"]
    kept = card_data_rows()
    out += [data_row(split, d, kept) for split, d in digest["splits"].items()]
    out += ["", "Contact sheets (first 8 frames per split; yellow outline = pipeline mask):", ""]
    for split in digest["splits"]:
        out += [f"**{split}**", "", f"![{split}]({contact_sheet(split)})", ""]
    out += ["## Time of `make model` on this machine", "",
            f"{tm['cpus']} CPU cores" + (f" of {tm['cpu']}" if "cpu" in tm else "") + f", no GPU. Total **{tm['total'] / 60:.1f} min**"
            + (" (of the steps timed)." if make_model_time(tm)[1] is None else "."), "",
            "| step | seconds |", "|---|---|"] + [f"| {k} | {v:.0f} |" for k, v in tm.items() if k not in pipeline.NOT_STEPS]
    extra = RUN / "timings_extra.json"
    if extra.exists():
        x = json.loads(extra.read_text())
        if "note" in x:
            out += ["", x["note"]]
        else:
            out += ["", f"Not in the total above: a first data step of {x['data_first_attempt_killed_s']:.0f} s, stopped: "
                    f"{x['why']}. The machine's 2 cores were shared with other builds and test runs during this run, "
                    "so these times are upper bounds of a standalone run."]
    CARD.write_text("\n".join(out) + "\n")
    print(f"wrote {CARD}")


def splice(sections: list[str]) -> None:
    """Replace sections of the existing card by the records' `card_section.md` files (matched by
    their `## ` heading; a new one goes before `## Data`), for a run that refits only part of the
    model (training/refit_trust.sh) and so has no full set of records to write the card from."""
    lines = CARD.read_text().splitlines()
    for rel in sections:
        new = (HERE / "runs" / rel).read_text().rstrip("\n").splitlines() + [""]
        span = section(lines, new[0])
        if span:
            lines[span[0]:span[1]] = new
        else:
            i = lines.index("## Data") if "## Data" in lines else len(lines)
            lines[i:i] = new
    CARD.write_text("\n".join(lines) + "\n")
    print(f"spliced {', '.join(sections)} into {CARD}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--splice"]:
        splice(sys.argv[2:])
    else:
        main()
