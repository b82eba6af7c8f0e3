"""Acceptance tests of `pipeline_seg infer` / `bench` with the real binary and the shipped model.

docs/interfaces.md §2 (uncertainty, frame score, sanity), §3 (confident/reason in `infer`) and
§6 (CLI outputs, exit codes). Every expected value is recomputed here independently (numpy
float64, OpenCV for the dilation, training/mcd.py for the Python evaluation path).

Run after `source scripts/env.sh` (python3 = the project venv; ORT_DYLIB_PATH for the binary).
The binary is `$PIPELINE_SEG_ROOT/target/release/pipeline_seg` (`make test` builds it first).
"""
from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from conftest import FRAMES, MODEL, OOD, ROOT, VAL, model_meta, run

sys.path.insert(0, str(ROOT / "training"))
import mcd  # noqa: E402

SUMMARY_KEYS = {"model", "samples", "min_samples", "seed", "execution_provider", "score_method", "threshold_high", "frames"}
FRAME_KEYS = {"input", "score", "confident", "reason", "pipeline_fraction", "latency_ms", "trust", "signals", "samples", "error"}
MAP_SUFFIXES = ("_mask.png", "_prob.npy", "_entropy.npy", "_mi.npy", "_entropy.png", "_overlay.png")
EPS = 1e-7

# Parity of the Rust T = 16 mask with the Python deterministic network (both at model
# resolution). Measured on val 00000/00002/00003/00004 with seed 3: IoU 0.989-0.998 on the
# pipeline frames (the negative 00002 is empty in both, IoU 1.0) and mean |Δprob| 0.0009-0.0030
# (max about 0.06 at a few boundary pixels); JPEG decoding differs (OpenCV 5 here, 4.6 in Rust).
PARITY_MIN_IOU = 0.9
PARITY_MAX_MEAN_ABS_DPROB = 0.02


# ---------------------------------------------------------------------------------------------
# helpers


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def by_stem(s: dict) -> dict:
    return {Path(f["input"]).stem: f for f in s["frames"]}


def ref_maps(samples: np.ndarray):
    """docs/interfaces.md §2 from samples [T,C,h,w], float64: prob, entropy, MI (normalised by log C)."""
    s = samples.astype(np.float64)
    c = s.shape[1]
    pbar = np.clip(s.mean(0), EPS, 1.0)
    h = -(pbar * np.log(pbar)).sum(0) / math.log(c)
    pt = np.clip(s, EPS, 1.0)
    h_t = -(pt * np.log(pt)).sum(1) / math.log(c)
    mi = np.clip(h - h_t.mean(0), 0.0, h)
    return s.mean(0)[1], np.clip(h, 0.0, 1.0), mi


def ref_score(entropy: np.ndarray, prob: np.ndarray, band_px: int) -> tuple[float, bool]:
    """pipeline_mean (docs/interfaces.md §2) in float64; returns (score, used the p95 fallback)."""
    pred = (prob > 0.5).astype(np.uint8)
    if not pred.any():
        return float(np.percentile(entropy.astype(np.float64), 95)), True
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band_px + 1, 2 * band_px + 1))
    band = cv2.dilate(pred, k) > 0
    return float(entropy.astype(np.float64)[band].mean()), False


def manifest() -> dict:
    with open(FRAMES / "manifest.csv", newline="") as f:
        return {r["name"]: r for r in csv.DictReader(f)}


# ---------------------------------------------------------------------------------------------
# shared runs (once per module)

MODEL_RES_FRAMES = [VAL / "00000.jpg", VAL / "00002.jpg", VAL / "00003.jpg", VAL / "00004.jpg"]


@pytest.fixture(scope="module")
def model_run(tmp_path_factory):
    """Default T (16), model resolution, samples saved: the numerical and parity checks."""
    out = tmp_path_factory.mktemp("model_res") / "out"
    run("infer", "--seed", 3, "--resolution", "model", "--save-samples", "--out", out, *MODEL_RES_FRAMES,
        check_rc=0)
    return out


@pytest.fixture(scope="module")
def black_png(tmp_path_factory):
    p = tmp_path_factory.mktemp("black") / "black.png"
    assert cv2.imwrite(str(p), np.zeros((48, 64, 3), np.uint8))
    return p


@pytest.fixture(scope="module")
def input_inputs(black_png):
    return [VAL / "00000.jpg", VAL / "00003.jpg", OOD, black_png]


@pytest.fixture(scope="module")
def input_run(tmp_path_factory, input_inputs):
    """T = 4 at input resolution with samples: file layout, gate, determinism."""
    out = tmp_path_factory.mktemp("input_res") / "out"
    proc = run("infer", "--samples", 4, "--seed", 7, "--save-samples", "--out", out, *input_inputs, check_rc=0)
    return out, proc


# ---------------------------------------------------------------------------------------------
# outputs (docs/interfaces.md §6)


def test_infer_writes_every_output_at_input_resolution(input_run, black_png):
    out, _ = input_run
    s = summary(out)
    assert set(s) == SUMMARY_KEYS
    assert s["samples"] == 4 and s["seed"] == 7
    assert s["execution_provider"] == "CPUExecutionProvider"
    assert s["score_method"] == model_meta()["score_method"]
    # the checkout's model, or an installed copy of it (AMENT_PREFIX_PATH comes first)
    assert Path(s["model"]).name == MODEL.name and Path(s["model"]).read_bytes() == MODEL.read_bytes()
    stems = by_stem(s)
    expected = {"00000", "00003", "black"} | {p.stem for p in OOD.glob("*.jpg")}
    assert set(stems) == expected and len(s["frames"]) == len(expected)
    for stem, f in stems.items():
        assert set(f) == FRAME_KEYS, stem
        assert f["error"] is None and isinstance(f["score"], float) and 0.0 <= f["score"] <= 1.0
        assert isinstance(f["latency_ms"], float) and f["latency_ms"] > 0
        size = (48, 64) if stem == "black" else (480, 640)
        for suffix in MAP_SUFFIXES + ("_samples.npy",):
            assert (out / f"{stem}{suffix}").is_file(), stem + suffix
        mask = cv2.imread(str(out / f"{stem}_mask.png"), cv2.IMREAD_UNCHANGED)
        assert mask.dtype == np.uint8 and mask.shape == size, (stem, mask.shape)
        assert set(np.unique(mask)) <= {0, 255}
        maps = {k: np.load(out / f"{stem}_{k}.npy") for k in ("prob", "entropy", "mi")}
        for k, m in maps.items():
            assert m.dtype == np.float32 and m.shape == size, (stem, k, m.dtype, m.shape)
            assert np.isfinite(m).all() and m.min() >= 0.0 and m.max() <= 1.0, (stem, k)
        assert (maps["mi"] <= maps["entropy"] + 1e-6).all(), stem
        assert np.array_equal(mask, np.where(maps["prob"] > 0.5, 255, 0).astype(np.uint8)), stem
        assert f["pipeline_fraction"] == pytest.approx((mask > 0).mean(), abs=1e-6), stem
        for name in ("_entropy.png", "_overlay.png"):
            img = cv2.imread(str(out / f"{stem}{name}"), cv2.IMREAD_UNCHANGED)
            assert img is not None and img.dtype == np.uint8 and img.shape == size + (3,), (stem, name)
        samples = np.load(out / f"{stem}_samples.npy")
        assert samples.dtype == np.float32 and samples.shape == (4, 2, 192, 256), (stem, samples.shape)
    # a frame with pipeline has a non-empty mask
    assert stems["00000"]["pipeline_fraction"] > 0.05


def test_input_resolution_maps_are_bilinear_upscales_of_model_maps(input_run):
    """docs/interfaces.md §1: maps computed at model resolution, then resized bilinearly to the input."""
    out, _ = input_run
    for stem in ("00000", "plume_00001"):
        prob, ent, mi = ref_maps(np.load(out / f"{stem}_samples.npy"))
        for name, ref in (("prob", prob), ("entropy", ent), ("mi", mi)):
            up = cv2.resize(ref.astype(np.float32), (640, 480), interpolation=cv2.INTER_LINEAR)
            got = np.load(out / f"{stem}_{name}.npy")
            assert np.abs(got - up).max() < 1e-5, (stem, name, float(np.abs(got - up).max()))


# ---------------------------------------------------------------------------------------------
# uncertainty and score (docs/interfaces.md §2)


def test_entropy_mi_prob_mask_match_numpy_from_samples(model_run):
    s = summary(model_run)
    assert s["samples"] == int(model_meta()["default_samples"])
    frames = by_stem(s)
    for path in MODEL_RES_FRAMES:
        stem = path.stem
        samples = np.load(model_run / f"{stem}_samples.npy")
        # anytime sampling: the maps are from the samples the frame drew, and those are saved
        drawn = frames[stem]["samples"]
        assert s["min_samples"] <= drawn <= s["samples"], (stem, drawn)
        assert samples.dtype == np.float32 and samples.shape == (drawn, 2, 192, 256)
        assert np.allclose(samples.sum(1), 1.0, atol=1e-5), "softmax over C"
        prob, ent, mi = ref_maps(samples)
        got = {k: np.load(model_run / f"{stem}_{k}.npy") for k in ("prob", "entropy", "mi")}
        for k, ref in (("prob", prob), ("entropy", ent), ("mi", mi)):
            assert got[k].dtype == np.float32 and got[k].shape == (192, 256), (stem, k)
            err = float(np.abs(got[k].astype(np.float64) - ref).max())
            assert err < 1e-5, (stem, k, err)
        mask = cv2.imread(str(model_run / f"{stem}_mask.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(mask, ((got["prob"] > 0.5) * 255).astype(np.uint8)), stem
        # with T >= 4 the samples differ: dropout is really on
        assert ent.max() > 0 and float(np.abs(samples[0] - samples[1]).max()) > 1e-3, stem


def test_frame_score_matches_numpy_pipeline_mean(model_run):
    """The entropy_pipeline_mean signal (the pipeline_mean score whatever the default score is)."""
    meta = model_meta()
    band = int(meta["band_px"])
    s = summary(model_run)
    assert s["score_method"] == meta["score_method"]
    fallbacks = set()
    for stem, f in by_stem(s).items():
        ent = np.load(model_run / f"{stem}_entropy.npy")
        prob = np.load(model_run / f"{stem}_prob.npy")
        ref, fallback = ref_score(ent, prob, band)
        fallbacks.add(fallback)
        got = f["signals"]["entropy_pipeline_mean"]
        assert abs(got - ref) < 1e-5, (stem, got, ref, fallback)
        if s["score_method"] == "pipeline_mean":
            assert f["score"] == got
    assert fallbacks == {True, False}, "the frames must exercise both the band mean and the p95 fallback"


def test_parity_with_python_deterministic_evaluation(model_run):
    """Rust T = 16 mask vs training/mcd.py's deterministic network (dropout off), model resolution."""
    sess, meta = mcd.load(str(MODEL), threads=2)
    report = []
    for path in MODEL_RES_FRAMES:
        stem = path.stem
        r = mcd.infer(sess, meta, mcd.read_rgb(path), 1, None)
        assert r.prob_model.shape == (192, 256)
        rust_prob = np.load(model_run / f"{stem}_prob.npy")
        rust = cv2.imread(str(model_run / f"{stem}_mask.png"), cv2.IMREAD_UNCHANGED) > 0
        py = r.prob_model > 0.5
        union = int((rust | py).sum())
        iou = 1.0 if union == 0 else int((rust & py).sum()) / union
        dprob = float(np.abs(rust_prob - r.prob_model).mean())
        report.append((stem, round(iou, 4), round(dprob, 5)))
        assert iou >= PARITY_MIN_IOU, report
        assert dprob <= PARITY_MAX_MEAN_ABS_DPROB, report
    print("parity (stem, IoU, mean |dprob|):", report)


# ---------------------------------------------------------------------------------------------
# determinism


def test_same_seed_reproduces_outputs_exactly(input_run, input_inputs, tmp_path):
    out, _ = input_run
    again = tmp_path / "again"
    run("infer", "--samples", 4, "--seed", 7, "--save-samples", "--out", again, *input_inputs, check_rc=0)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    compared = 0
    for name in names:
        if name == "summary.json":
            continue
        a, b = (out / name).read_bytes(), (again / name).read_bytes()
        assert a == b, f"{name} differs between two runs with the same seed"
        compared += 1
    assert compared >= 7 * 11

    def strip(s):
        for f in s["frames"]:
            f.pop("latency_ms")
        return s

    assert strip(summary(out)) == strip(summary(again))


def test_different_seeds_give_different_entropy(input_run, tmp_path):
    out, _ = input_run
    other = tmp_path / "seed8"
    frames = [VAL / "00000.jpg", OOD / "plume_00001.jpg"]
    run("infer", "--samples", 4, "--seed", 8, "--out", other, *frames, check_rc=0)
    assert summary(other)["seed"] == 8
    for p in frames:
        a = np.load(out / f"{p.stem}_entropy.npy")
        b = np.load(other / f"{p.stem}_entropy.npy")
        assert a.shape == b.shape
        assert float(np.abs(a - b).max()) > 1e-3, p.stem


# ---------------------------------------------------------------------------------------------
# gate in `infer` (docs/interfaces.md §3)


def test_confident_and_reason(input_run):
    out, _ = input_run
    s = summary(out)
    th = s["threshold_high"]
    assert th == pytest.approx(float(model_meta()["threshold_high"]), abs=1e-6)
    frames = by_stem(s)
    man = manifest()
    for stem, f in frames.items():
        sane = man[stem]["passes_sanity"] == "true" if stem in man else stem != "black"
        if stem != "black":  # independent check of the manifest with the Python sanity check
            assert mcd.sanity(cv2.imread(f["input"])[..., ::-1])[0] == sane, stem
        assert f["confident"] == (sane and f["score"] <= th), (stem, f)
        if not sane:
            want = "image_quality"
        else:
            want = "ok" if f["score"] <= th else "uncertain"
        assert f["reason"] == want, (stem, f)
    # overexposed_00009 fails on saturation by a small margin (0.602 of pixels >= 250 vs
    # max_saturated 0.6, OpenCV 5 decode); overexposed_00047 by a wide one (0.729).
    for stem in ("overexposed_00009", "overexposed_00047", "black"):
        assert frames[stem]["reason"] == "image_quality" and frames[stem]["confident"] is False, stem
    for stem in ("plume_00001", "plume_00013", "wall_00006", "wall_00010"):
        assert frames[stem]["reason"] == "uncertain" and frames[stem]["confident"] is False, stem
    assert frames["00000"]["reason"] == "ok" and frames["00000"]["confident"] is True


# ---------------------------------------------------------------------------------------------
# bad inputs: exit 1, the rest written (docs/interfaces.md §6)


def test_corrupt_and_unsupported_inputs_are_listed_and_the_rest_written(tmp_path):
    src = (VAL / "00001.jpg").read_bytes()
    bad = {
        "truncated.jpg": src[: len(src) // 2],  # OpenCV 4.6 alone would decode this to grey
        "garbage.jpg": bytes(range(256)) * 16,
        "fake_header.jpg": b"\xff\xd8" + bytes(range(256)) * 4 + b"\xff\xd9",
        "empty.jpg": b"",
        "notes.txt": b"not an image\n",
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    missing = tmp_path / "missing.jpg"
    png_dir = tmp_path / "dir"
    png_dir.mkdir()
    assert cv2.imwrite(str(png_dir / "good_png.png"), cv2.imread(str(VAL / "00004.jpg")))
    (png_dir / "readme.txt").write_text("directories are searched for images only\n")
    out = tmp_path / "out"
    good = VAL / "00000.jpg"
    inputs = [good, *(tmp_path / n for n in bad), missing, png_dir]
    proc = run("infer", "--samples", 1, "--out", out, *inputs, check_rc=1)
    s = summary(out)
    frames = {f["input"]: f for f in s["frames"]}
    failed = [tmp_path / n for n in bad] + [missing]
    assert set(frames) == {str(good), str(png_dir / "good_png.png"), *map(str, failed)}
    for p in failed:
        f = frames[str(p)]
        assert set(f) == FRAME_KEYS
        assert isinstance(f["error"], str) and f["error"].strip(), p.name
        assert f["reason"] == "decode_error" and f["confident"] is False, (p.name, f)
        assert f["score"] is None, p.name
        failed_lines = [ln for ln in proc.stderr.splitlines() if str(p) in ln]
        assert failed_lines, f"stderr does not name {p}:\n{proc.stderr}"
        assert not any((out / f"{p.stem}{suf}").exists() for suf in MAP_SUFFIXES), p.name
    assert any(w in frames[str(tmp_path / "truncated.jpg")]["error"].lower() for w in ("truncat", "premature"))
    for stem in ("00000", "good_png"):
        f = by_stem(s)[stem]
        assert f["error"] is None and f["reason"] in ("ok", "uncertain"), f
        for suf in MAP_SUFFIXES:
            assert (out / f"{stem}{suf}").is_file(), stem + suf
    assert not (out / "readme_mask.png").exists()


@pytest.mark.xfail(strict=True, reason="known gap: only a missing FFD9 is detected; a truncated scan "
                   "followed by FFD9 decodes to a grey-filled image (docs/interfaces.md §2: decoder-reported "
                   "corruption must be decode_error)")
def test_truncated_jpeg_with_end_marker_is_a_decode_error(tmp_path):
    src = (VAL / "00001.jpg").read_bytes()
    bad = tmp_path / "truncated_eoi.jpg"
    bad.write_bytes(src[: len(src) // 2] + b"\xff\xd9")
    run("infer", "--samples", 1, "--out", tmp_path / "o", bad, check_rc=1)
    assert summary(tmp_path / "o")["frames"][0]["reason"] == "decode_error"


# ---------------------------------------------------------------------------------------------
# fatal errors: exit 2 (docs/interfaces.md §6)


def test_missing_model_is_fatal(tmp_path):
    proc = run("infer", "--model", "/nonexistent.onnx", "--out", tmp_path / "o", VAL / "00000.jpg", check_rc=2)
    assert "/nonexistent.onnx" in proc.stderr


def _set_meta(key, value):
    def edit(m):
        props = [p for p in m.metadata_props if p.key == key]
        assert props, key
        props[0].value = value
    return edit


def _drop_meta(key):
    def edit(m):
        keep = [(p.key, p.value) for p in m.metadata_props if p.key != key]
        assert len(keep) == len(m.metadata_props) - 1, key
        del m.metadata_props[:]
        for k, v in keep:
            m.metadata_props.add(key=k, value=v)
    return edit


@pytest.mark.parametrize(
    "name, edit, needle",
    [
        ("sites", _set_meta("dropout_sites", "16,8"), "dropout_sites"),
        ("no_height", _drop_meta("input_height"), "input_height"),
        ("classes", _set_meta("classes", "a,b,c"), "classes"),
    ],
)
def test_mismatched_model_is_fatal_and_named(tmp_path, name, edit, needle):
    m = onnx.load(str(MODEL))
    edit(m)
    path = tmp_path / f"{name}.onnx"
    onnx.save(m, str(path))
    proc = run("infer", "--samples", 1, "--model", path, "--out", tmp_path / "o", VAL / "00000.jpg", check_rc=2)
    assert needle in proc.stderr and str(path) in proc.stderr, proc.stderr
    assert not (tmp_path / "o" / "00000_mask.png").exists()


def test_shipped_model_is_accepted_after_onnx_roundtrip(tmp_path):
    """Control for the mismatch tests: re-saving the model unchanged keeps it valid."""
    path = tmp_path / "same.onnx"
    onnx.save(onnx.load(str(MODEL)), str(path))
    run("infer", "--samples", 1, "--model", path, "--out", tmp_path / "o", VAL / "00000.jpg", check_rc=0)


def test_non_onnx_model_is_fatal(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"this is not an ONNX protobuf\n" * 8)
    proc = run("infer", "--model", path, "--out", tmp_path / "o", VAL / "00000.jpg", check_rc=2)
    assert str(path) in proc.stderr


def _gpu_visible() -> bool:
    return Path("/dev/nvidiactl").exists()


def test_cuda_without_fallback_is_fatal(tmp_path):
    proc = run("infer", "--samples", 1, "--device", "cuda", "--out", tmp_path / "o", VAL / "00000.jpg")
    if proc.returncode == 0 and _gpu_visible():  # a CUDA build on a GPU machine may run it
        assert summary(tmp_path / "o")["execution_provider"] == "CUDAExecutionProvider"
        return
    assert proc.returncode == 2, proc.stderr
    assert "cuda" in proc.stderr.lower()


def test_cuda_with_fallback_runs_on_cpu(tmp_path):
    out = tmp_path / "o"
    proc = run("infer", "--samples", 1, "--device", "cuda", "--allow-cpu-fallback", "--out", out, VAL / "00000.jpg",
               check_rc=0)
    provider = summary(out)["execution_provider"]
    if _gpu_visible() and provider != "CPUExecutionProvider":
        assert provider == "CUDAExecutionProvider"
    else:
        assert provider == "CPUExecutionProvider"
        assert "cuda" in proc.stderr.lower(), "the fallback must be reported"


def _param_file(tmp_path, body: str) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text("pipeline_seg_node:\n  ros__parameters:\n" + "".join(f"    {ln}\n" for ln in body.splitlines()))
    return p


def test_config_file_and_flag_precedence(tmp_path):
    cfg = _param_file(tmp_path, "samples: 4\nthreshold_high: 0.9")
    run("infer", "--config", cfg, "--out", tmp_path / "a", VAL / "00000.jpg", check_rc=0)
    s = summary(tmp_path / "a")
    assert s["samples"] == 4 and s["threshold_high"] == 0.9
    run("infer", "--config", cfg, "--samples", 2, "--save-samples", "--out", tmp_path / "b", VAL / "00000.jpg",
        check_rc=0)
    s = summary(tmp_path / "b")
    assert s["samples"] == 2 and s["threshold_high"] == 0.9
    assert np.load(tmp_path / "b" / "00000_samples.npy").shape[0] == 2


@pytest.mark.parametrize(
    "body, needle",
    [
        ("samples: 0", "samples"),
        ("threshold_high: 0.4\nthreshold_low: 0.6", "threshold_low"),
        ("no_such_parameter: 1", "no_such_parameter"),
    ],
)
def test_bad_config_is_fatal_and_named(tmp_path, body, needle):
    cfg = _param_file(tmp_path, body)
    proc = run("infer", "--config", cfg, "--out", tmp_path / "o", VAL / "00000.jpg", check_rc=2)
    assert needle in proc.stderr, proc.stderr
    assert not (tmp_path / "o" / "summary.json").exists()


def test_output_dir_that_cannot_be_created_is_fatal(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("a regular file where a directory should go\n")
    out = blocker / "out"
    proc = run("infer", "--samples", 1, "--out", out, VAL / "00000.jpg", check_rc=2)
    assert str(out) in proc.stderr


# ---------------------------------------------------------------------------------------------
# bench


def test_bench_prints_one_json_line():
    proc = run("bench", "--frames", 3, "--samples", 2, check_rc=0)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stdout
    report = json.loads(lines[0])
    assert {"p50_ms", "p95_ms", "p99_ms", "fps", "samples", "execution_provider"} <= set(report)
    assert report["samples"] == 2
    assert report["execution_provider"] == "CPUExecutionProvider"
    assert 0 < report["p50_ms"] <= report["p95_ms"] <= report["p99_ms"]
    assert report["fps"] > 0


def test_anytime_sampling_draws_a_prefix_of_the_fixed_samples_and_repeats(tmp_path):
    """Anytime sampling (min_samples 4 of 16) stops on settled frames; what it draws is the start
    of what fixed T = 16 draws with the same seed, the same seed stops at the same point, and
    `--min-samples 16` draws every sample."""
    inputs = [*MODEL_RES_FRAMES, *sorted(OOD.glob("*.jpg"))[:4]]
    common = ("--seed", 5, "--samples", 16, "--resolution", "model", "--save-samples")
    for name, extra in (("a", ()), ("b", ()), ("fixed", ("--min-samples", 16))):
        run("infer", *common, *extra, "--out", tmp_path / name, *inputs, check_rc=0)
    a, b, fixed = (by_stem(summary(tmp_path / n)) for n in ("a", "b", "fixed"))
    assert {f["samples"] for f in fixed.values()} == {16}
    drawn = {stem: f["samples"] for stem, f in a.items()}
    assert drawn == {stem: f["samples"] for stem, f in b.items()}, "same seed, same stopping point"
    assert all(n in (4, 8, 12, 16) for n in drawn.values()), drawn
    assert min(drawn.values()) < 16, f"no frame settled early: {drawn}"
    for stem, n in drawn.items():
        sa = np.load(tmp_path / "a" / f"{stem}_samples.npy")
        sb = np.load(tmp_path / "b" / f"{stem}_samples.npy")
        sf = np.load(tmp_path / "fixed" / f"{stem}_samples.npy")
        assert np.array_equal(sa, sb), stem
        assert sa.shape[0] == n and np.allclose(sa, sf[:n], atol=1e-5), stem
        assert a[stem]["score"] == b[stem]["score"], stem
