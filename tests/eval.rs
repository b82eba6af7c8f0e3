//! Evaluation metrics (`eval`, docs/interfaces.md §7) against the Python definitions they must match:
//! deterministic random and degenerate maps are written as `.npy`, run through
//! `training/mcd.py`'s `Accumulator` and `spearman` by `python3` (the venv's, after
//! `source scripts/env.sh`), and compared with the Rust results. Gate statistics are checked
//! on their own.

use std::path::{Path, PathBuf};
use std::process::Command;

use pipeline_seg::engine::sampler::Rng;
use pipeline_seg::eval::metrics::{is_bad, spearman, Accumulator, GateStats};
use pipeline_seg::io::npy::write_f32;
use serde_json::{json, Value};

/// Tolerance for count ratios (IoU, dice, pixel error rate) and Spearman.
const TOL_COUNTS: f64 = 1e-9;
/// Tolerance for AUROC, ECE and AURC.
const TOL_CURVES: f64 = 1e-6;

/// One frame at input resolution.
#[derive(Clone)]
struct Frame {
    prob: Vec<f32>,
    entropy: Vec<f32>,
    mi: Vec<f32>,
    gt: Vec<u8>,
    shape: [usize; 2],
}

impl Frame {
    fn constant(h: usize, w: usize, prob: f32, entropy: f32, mi: f32, gt: u8) -> Frame {
        let n = h * w;
        Frame { prob: vec![prob; n], entropy: vec![entropy; n], mi: vec![mi; n], gt: vec![gt; n], shape: [h, w] }
    }
}

/// Binary entropy of p, normalised by ln 2.
fn h2(p: f64) -> f64 {
    let q = p.clamp(1e-7, 1.0 - 1e-7);
    -(q * q.ln() + (1.0 - q) * (1.0 - q).ln()) / 2f64.ln()
}

/// A pipeline-like band in the ground truth (with grey values and noise), a probability map that
/// mostly agrees with it, entropy that rises near 0.5, MI a random share of it; some values sit
/// exactly on histogram and ECE bin edges.
fn band_frame(rng: &mut Rng, h: usize, w: usize) -> Frame {
    let (x0, slope, half) =
        (rng.next_f64() * w as f64, rng.next_f64() * 2.0 - 1.0, 1.0 + rng.next_f64() * w as f64 / 6.0);
    let mut f = Frame { prob: vec![], entropy: vec![], mi: vec![], gt: vec![], shape: [h, w] };
    for y in 0..h {
        for x in 0..w {
            let inside = ((x as f64) - (x0 + slope * y as f64)).abs() < half;
            let r = rng.next_f64();
            let gt = if r < 0.05 {
                (rng.next_u64() % 256) as u8 // grey: 127 / 128 decide
            } else if inside ^ (r < 0.1) {
                255
            } else {
                0
            };
            let base = if inside { 0.85 } else { 0.15 };
            let mut p = (base + (rng.next_f64() - 0.5) * 0.9).clamp(0.0, 1.0) as f32;
            let mut e = (h2(p as f64) + (rng.next_f64() - 0.5) * 0.1).clamp(0.0, 1.0) as f32;
            match rng.next_u64() % 20 {
                0 => p = 0.5,
                1 => p = (0.5 + (rng.next_u64() % 16) as f64 / 30.0) as f32, // ECE bin edge
                2 => p = (0.5 - (rng.next_u64() % 16) as f64 / 30.0) as f32,
                3 => e = (rng.next_u64() % 1001) as f32 / 1000.0, // histogram bin edge (f32)
                4 => e = 1.0,
                _ => {}
            }
            f.prob.push(p);
            f.entropy.push(e);
            f.mi.push((e as f64 * rng.next_f64()) as f32);
            f.gt.push(gt);
        }
    }
    f
}

/// Uniform random maps and ground truth.
fn uniform_frame(rng: &mut Rng, h: usize, w: usize) -> Frame {
    let n = h * w;
    let mut u = |_| rng.next_f64() as f32;
    let (prob, entropy, mi) =
        ((0..n).map(&mut u).collect(), (0..n).map(&mut u).collect(), (0..n).map(&mut u).collect());
    let gt = (0..n).map(|_| if rng.next_u64().is_multiple_of(3) { 255 } else { 0 }).collect();
    Frame { prob, entropy, mi, gt, shape: [h, w] }
}

fn random_frames(seed: u64) -> Vec<Frame> {
    let mut rng = Rng::new(seed);
    vec![
        band_frame(&mut rng, 48, 64),
        band_frame(&mut rng, 31, 17),
        band_frame(&mut rng, 1, 1),
        band_frame(&mut rng, 100, 3),
        uniform_frame(&mut rng, 64, 48),
        band_frame(&mut rng, 20, 20),
        uniform_frame(&mut rng, 7, 13),
    ]
}

/// Empty ground truth and empty prediction.
fn empty_frames() -> Vec<Frame> {
    let mut rng = Rng::new(7);
    let mut f = Frame::constant(16, 12, 0.1, 0.2, 0.05, 0);
    for i in 0..f.prob.len() {
        f.prob[i] = (rng.next_f64() * 0.5) as f32; // ≤ 0.5: background
        f.entropy[i] = rng.next_f64() as f32;
        f.gt[i] = (rng.next_u64() % 128) as u8; // ≤ 127: background
    }
    vec![f, Frame::constant(5, 9, 0.0, 0.0, 0.0, 0)]
}

/// Every pixel wrong.
fn all_wrong_frames() -> Vec<Frame> {
    let mut rng = Rng::new(11);
    let mut f = uniform_frame(&mut rng, 24, 30);
    for i in 0..f.prob.len() {
        f.gt[i] = if f.prob[i] > 0.5 { 0 } else { 255 };
    }
    vec![f, Frame::constant(4, 4, 0.9, 0.4, 0.1, 0), Frame::constant(3, 5, 0.2, 0.7, 0.3, 200)]
}

/// Constant maps, with right and wrong pixels.
fn constant_frames() -> Vec<Frame> {
    let mut f = Frame::constant(10, 10, 0.7, 0.3, 0.0, 255);
    f.gt[..37].iter_mut().for_each(|g| *g = 0);
    vec![f, Frame::constant(6, 8, 0.7, 0.3, 0.0, 0), Frame::constant(6, 8, 0.7, 0.3, 0.0, 255)]
}

/// Extreme but finite values: prob exactly 0, 0.5, 1 and on ECE bin edges, entropy and MI
/// exactly 0 and 1 (→ bin 999), 0.999, 0.001, gt 127 / 128, and a frame without pixels.
fn extreme_frames() -> Vec<Frame> {
    let probs = [
        0.0f32,
        0.5,
        1.0,
        0.5 + f32::EPSILON,
        0.5 - f32::EPSILON / 2.0,
        0.5 + 1.0 / 30.0,
        0.5 - 14.0 / 30.0,
        29.0 / 30.0,
    ];
    let ents = [0.0f32, 1.0, 0.999, 0.001, 0.5, 0.0005, 0.9995];
    let gts = [0u8, 127, 128, 255];
    let mut f = Frame { prob: vec![], entropy: vec![], mi: vec![], gt: vec![], shape: [0, 0] };
    for &p in &probs {
        for &e in &ents {
            for &g in &gts {
                f.prob.push(p);
                f.entropy.push(e);
                f.mi.push(1.0 - e);
                f.gt.push(g);
            }
        }
    }
    f.shape = [f.prob.len() / 4, 4];
    let empty = Frame { prob: vec![], entropy: vec![], mi: vec![], gt: vec![], shape: [0, 0] };
    vec![f, Frame::constant(3, 3, 0.5, 1.0, 1.0, 128), empty]
}

/// Spearman cases: (name, a, b).
fn spearman_cases() -> Vec<(String, Vec<f64>, Vec<f64>)> {
    let mut rng = Rng::new(99);
    let r: Vec<f64> = (0..50).map(|_| rng.next_f64()).collect();
    let noisy: Vec<f64> = r.iter().map(|v| v + rng.next_f64() * 0.5).collect();
    let ta: Vec<f64> = (0..40).map(|_| (rng.next_u64() % 5) as f64).collect();
    let tb: Vec<f64> = (0..40).map(|_| (rng.next_u64() % 3) as f64 * 0.25).collect();
    let s = |v: &[f64]| v.to_vec();
    vec![
        ("random".into(), r.clone(), noisy),
        ("random_vs_independent".into(), r.clone(), (0..50).map(|_| rng.next_f64()).collect()),
        ("ties".into(), ta.clone(), tb),
        ("ties_vs_random".into(), ta, r[..40].to_vec()),
        ("monotone".into(), s(&[1.0, 2.0, 5.0, 9.0]), s(&[0.1, 0.2, 0.3, 10.0])),
        ("reversed".into(), s(&[1.0, 2.0, 3.0]), s(&[3.0, 2.0, 1.0])),
        ("two".into(), s(&[0.3, 0.1]), s(&[0.5, 0.9])),
        ("signed_zero_ties".into(), s(&[-0.0, 0.0, 1.0, -1.0]), s(&[2.0, 1.0, 3.0, 0.0])),
        ("all_but_one_tied".into(), s(&[1.0, 1.0, 1.0, 1.0, 2.0]), s(&[0.5, 0.1, 0.9, 0.3, 0.2])),
        ("constant_a".into(), s(&[2.0, 2.0, 2.0]), s(&[1.0, 2.0, 3.0])),
        ("constant_b".into(), s(&[1.0, 2.0, 3.0]), s(&[0.0, 0.0, 0.0])),
        ("one".into(), s(&[1.0]), s(&[2.0])),
        ("empty".into(), vec![], vec![]),
    ]
}

/// Python side: mcd.Accumulator over every scenario's frames and mcd.spearman over every case.
const PYTHON: &str = r#"
import json, pathlib, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import mcd
root = pathlib.Path(sys.argv[2])
man = json.loads((root / "manifest.json").read_text())
nan = lambda v: None if isinstance(v, float) and v != v else v
out = {"scenarios": {}, "spearman": {}}
for name, n in man["scenarios"].items():
    acc, frames = mcd.Accumulator(), []
    for k in range(n):
        prob, ent, mi, gt = (np.load(root / name / f"{k:03d}_{w}.npy") for w in ("prob", "entropy", "mi", "gt"))
        assert prob.dtype == np.float32 and gt.dtype == np.float32
        iou = acc.add(prob, ent, mi, gt)
        pred, g = prob > 0.5, gt > 127
        s = int(pred.sum()) + int(g.sum())
        frames.append({"iou": iou, "dice": 2 * int((pred & g).sum()) / s if s else 1.0,
                       "pixel_error_rate": float((pred != g).mean()) if pred.size else 0.0,
                       "gt_has_pipe": bool(g.any()), "pred_has_pipe": bool(pred.any())})
    out["scenarios"][name] = {"frames": frames, "metrics": {k: nan(v) for k, v in acc.metrics().items()}}
for name, (a, b) in man["spearman"].items():
    out["spearman"][name] = nan(mcd.spearman(a, b))
print(json.dumps(out))
"#;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes the scenarios and Spearman cases under a fresh temp dir, runs [`PYTHON`] on them and
/// returns its JSON.
fn python(tag: &str, scenarios: &[(&str, Vec<Frame>)], spearman: &[(String, Vec<f64>, Vec<f64>)]) -> Value {
    let dir = std::env::temp_dir().join(format!("pipeline_seg_eval_{}_{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut man = json!({"scenarios": {}, "spearman": {}});
    for (name, frames) in scenarios {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).unwrap();
        for (k, f) in frames.iter().enumerate() {
            let gt: Vec<f32> = f.gt.iter().map(|&g| g as f32).collect();
            for (what, data) in [("prob", &f.prob), ("entropy", &f.entropy), ("mi", &f.mi), ("gt", &gt)] {
                write_f32(&sub.join(format!("{k:03}_{what}.npy")), &f.shape, data).unwrap();
            }
        }
        man["scenarios"][name] = json!(frames.len());
    }
    for (name, a, b) in spearman {
        man["spearman"][name] = json!([a, b]);
    }
    std::fs::write(dir.join("manifest.json"), man.to_string()).unwrap();
    let out = run_python(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    out
}

fn run_python(dir: &Path) -> Value {
    let out = Command::new("python3")
        .arg("-c")
        .arg(PYTHON)
        .arg(repo().join("training"))
        .arg(dir)
        .output()
        .expect("python3 not found: `source scripts/env.sh` first");
    assert!(
        out.status.success(),
        "python3 failed (needs the venv: `source scripts/env.sh`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python printed no JSON")
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    a == b || (a - b).abs() <= tol * a.abs().max(b.abs())
}

/// Both null, or both numbers within `tol` relative.
fn assert_json_close(what: &str, rust: &Value, py: &Value, tol: f64) {
    match (rust.as_f64(), py.as_f64()) {
        (Some(r), Some(p)) => assert!(close(r, p, tol), "{what}: rust {r} vs python {p} (tol {tol})"),
        _ => assert!(rust.is_null() && py.is_null(), "{what}: rust {rust} vs python {py}"),
    }
}

fn tol_of(key: &str) -> f64 {
    match key {
        "pooled_iou" | "mean_iou" | "dice" | "pixel_error_rate" | "iou" => TOL_COUNTS,
        "auroc_entropy" | "auroc_mi" | "ece" | "ece_pipe" | "aurc" => TOL_CURVES,
        k => panic!("unexpected metric {k}"),
    }
}

/// Runs the frames through a Rust [`Accumulator`] and compares per-frame results and the
/// serialized metrics (same keys, nulls in the same places) with Python's.
fn compare(name: &str, frames: &[Frame], py: &Value) -> pipeline_seg::eval::metrics::Metrics {
    let mut acc = Accumulator::new();
    let py_frames = py["frames"].as_array().unwrap();
    assert_eq!(py_frames.len(), frames.len(), "{name}: frame count");
    for (k, (f, pf)) in frames.iter().zip(py_frames).enumerate() {
        let m = acc.add(&f.prob, &f.entropy, &f.mi, &f.gt);
        for (key, v) in [("iou", m.iou), ("dice", m.dice), ("pixel_error_rate", m.pixel_error_rate)] {
            assert_json_close(&format!("{name} frame {k} {key}"), &json!(v), &pf[key], TOL_COUNTS);
        }
        assert_eq!(json!(m.gt_has_pipe), pf["gt_has_pipe"], "{name} frame {k} gt_has_pipe");
        assert_eq!(json!(m.pred_has_pipe), pf["pred_has_pipe"], "{name} frame {k} pred_has_pipe");
    }
    assert_eq!(acc.frames(), frames.len() as u64);
    assert_eq!(acc.pixels(), frames.iter().map(|f| f.prob.len() as u64).sum::<u64>());
    let metrics = acc.metrics();
    let rust = serde_json::to_value(metrics).unwrap();
    let (r, p) = (rust.as_object().unwrap(), py["metrics"].as_object().unwrap());
    let mut rk: Vec<_> = r.keys().collect();
    let mut pk: Vec<_> = p.keys().collect();
    rk.sort();
    pk.sort();
    assert_eq!(rk, pk, "{name}: metric names");
    for (key, pv) in p {
        assert_json_close(&format!("{name} {key}"), &r[key], pv, tol_of(key));
    }
    metrics
}

fn check_scenarios(tag: &str, scenarios: &[(&str, Vec<Frame>)]) -> Vec<pipeline_seg::eval::metrics::Metrics> {
    let py = python(tag, scenarios, &[]);
    scenarios.iter().map(|(name, frames)| compare(name, frames, &py["scenarios"][*name])).collect()
}

#[test]
fn random_frames_match_python() {
    let m = check_scenarios("random", &[("random_a", random_frames(1)), ("random_b", random_frames(2))]);
    for m in m {
        let auroc = m.auroc_entropy.unwrap();
        assert!(auroc > 0.5 && auroc < 1.0, "entropy should rank errors above chance: {auroc}");
        assert!(m.ece.is_some() && m.ece_pipe.is_some() && m.auroc_mi.is_some());
    }
}

#[test]
fn empty_gt_and_pred_match_python() {
    let m = check_scenarios("empty", &[("empty", empty_frames())]).remove(0);
    assert_eq!((m.pooled_iou, m.mean_iou, m.dice, m.pixel_error_rate), (1.0, Some(1.0), 1.0, 0.0));
    assert_eq!((m.auroc_entropy, m.auroc_mi, m.ece_pipe, m.aurc), (None, None, None, 0.0));
    assert!(m.ece.unwrap() > 0.0);
}

#[test]
fn all_wrong_matches_python() {
    let m = check_scenarios("wrong", &[("all_wrong", all_wrong_frames())]).remove(0);
    assert_eq!((m.pooled_iou, m.mean_iou, m.dice, m.pixel_error_rate), (0.0, Some(0.0), 0.0, 1.0));
    assert_eq!((m.auroc_entropy, m.auroc_mi, m.aurc), (None, None, 1.0));
}

#[test]
fn constant_maps_match_python() {
    let m = check_scenarios("constant", &[("constant", constant_frames())]).remove(0);
    // One entropy bin for right and wrong pixels: every pair ties.
    assert_eq!((m.auroc_entropy, m.auroc_mi), (Some(0.5), Some(0.5)));
}

#[test]
fn extreme_values_match_python() {
    check_scenarios("extreme", &[("extreme", extreme_frames())]);
}

#[test]
fn no_frames_match_python() {
    let m = check_scenarios("none", &[("none", vec![])]).remove(0);
    assert_eq!(m.mean_iou, None);
    let v = serde_json::to_value(m).unwrap();
    assert!(v["mean_iou"].is_null() && v["ece"].is_null() && v["auroc_entropy"].is_null());
}

#[test]
fn mixed_sequence_matches_python() {
    let all: Vec<Frame> =
        [random_frames(3), empty_frames(), all_wrong_frames(), constant_frames(), extreme_frames()].concat();
    check_scenarios("mixed", &[("mixed", all)]);
}

#[test]
fn spearman_matches_python() {
    let cases = spearman_cases();
    let py = python("spearman", &[], &cases);
    for (name, a, b) in &cases {
        assert_json_close(&format!("spearman {name}"), &json!(spearman(a, b)), &py["spearman"][name], TOL_COUNTS);
    }
}

#[test]
fn spearman_known_values() {
    assert_eq!(spearman(&[1.0, 2.0, 5.0], &[0.0, 4.0, 9.0]), Some(1.0));
    assert_eq!(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
    assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
    assert_eq!(spearman(&[1.0], &[1.0]), None);
    assert_eq!(spearman(&[], &[]), None);
    // Ties take the mean rank: ranks (0.5, 0.5, 2) vs (0, 1, 2) → r = √3/2.
    let r = spearman(&[1.0, 1.0, 2.0], &[1.0, 2.0, 3.0]).unwrap();
    assert!((r - 3f64.sqrt() / 2.0).abs() < 1e-12, "{r}");
}

#[test]
fn entropy_one_lands_in_the_last_bin() {
    // Errors at entropy 1.0, right pixels at 0.999: both in bin 999, so they tie.
    let mut acc = Accumulator::new();
    acc.add(&[0.9; 4], &[1.0; 4], &[1.0; 4], &[0; 4]);
    acc.add(&[0.9; 4], &[0.999; 4], &[0.999; 4], &[255; 4]);
    assert_eq!(acc.metrics().auroc_entropy, Some(0.5));
    // At 0.998 (bin 998) the right pixels rank strictly below the errors.
    let mut acc = Accumulator::new();
    acc.add(&[0.9; 4], &[1.0; 4], &[1.0; 4], &[0; 4]);
    acc.add(&[0.9; 4], &[0.998; 4], &[0.0; 4], &[255; 4]);
    let m = acc.metrics();
    assert_eq!((m.auroc_entropy, m.auroc_mi), (Some(1.0), Some(1.0)));
    // Kept in order of increasing entropy: risk 0 over the right half, then 1/2 at full coverage.
    assert_eq!(m.aurc, (0.0 * 4.0 + 0.5 * 4.0) / 8.0);
}

#[test]
fn prob_one_half_is_background_with_confidence_one_half() {
    let mut acc = Accumulator::new();
    let f = acc.add(&[0.5; 6], &[0.0; 6], &[0.0; 6], &[0, 0, 0, 255, 255, 255]);
    assert_eq!((f.iou, f.dice, f.pixel_error_rate, f.pred_has_pipe, f.gt_has_pipe), (0.0, 0.0, 0.5, false, true));
    // Bin 0 with mean confidence 0.5 and accuracy 0.5: calibrated.
    assert_eq!(acc.metrics().ece, Some(0.0));
}

#[test]
#[should_panic(expected = "differ in length")]
fn add_rejects_mismatched_maps() {
    Accumulator::new().add(&[0.1; 4], &[0.1; 4], &[0.1; 3], &[0; 4]);
}

#[test]
fn bad_frame_definition() {
    assert!(is_bad(0.49, false, false));
    assert!(!is_bad(0.5, true, true));
    assert!(!is_bad(1.0, false, false));
    // Ground truth has pipeline, mask has none: bad whatever the IoU passed in.
    assert!(is_bad(0.9, true, false));
    assert!(!is_bad(0.9, false, true));
    assert!(!is_bad(f64::NAN, false, false), "NaN < 0.5 is false, as in Python");
}

#[test]
fn gate_stats_fractions() {
    let mut g = GateStats::new();
    assert_eq!((g.bad_flagged(), g.good_flagged()), (None, None));
    let s = serde_json::to_value(g.summary()).unwrap();
    assert!(s["bad_flagged"].is_null() && s["good_flagged"].is_null());

    assert!(g.add(0.2, true, true, false)); // bad, flagged
    assert!(g.add(0.9, true, false, true)); // bad (pipeline missed), not flagged
    assert!(g.add(0.1, false, true, false)); // bad, flagged
    assert_eq!((g.bad_flagged(), g.good_flagged()), (Some(2.0 / 3.0), None));
    assert!(!g.add(0.8, true, true, true)); // good, confident
    assert!(!g.add(1.0, false, false, false)); // good, flagged
    assert!(!g.add(0.5, true, true, true)); // good (IoU 0.5 is not < 0.5)
    assert!(!g.add(0.95, false, false, true));
    assert_eq!((g.bad_frames, g.bad_unconfident, g.good_frames, g.good_unconfident), (3, 2, 4, 1));
    assert_eq!((g.bad_flagged(), g.good_flagged()), (Some(2.0 / 3.0), Some(0.25)));
    let s = serde_json::to_value(g.summary()).unwrap();
    assert_eq!(s, json!({"bad_frames": 3, "good_frames": 4, "bad_flagged": 2.0 / 3.0, "good_flagged": 0.25}));
}

#[test]
fn gate_stats_from_frame_metrics() {
    let mut acc = Accumulator::new();
    let mut g = GateStats::new();
    // Pipeline in the ground truth, none predicted: IoU 0, bad.
    let missed = acc.add(&[0.1; 4], &[0.5; 4], &[0.1; 4], &[255, 255, 0, 0]);
    assert!(g.add_frame(&missed, true));
    // Nothing anywhere: IoU 1, good.
    let clear = acc.add(&[0.1; 4], &[0.1; 4], &[0.0; 4], &[0; 4]);
    assert!(!g.add_frame(&clear, false));
    // Three of four pipeline pixels found: IoU 0.75, good.
    let found = acc.add(&[0.9, 0.9, 0.9, 0.1], &[0.1; 4], &[0.0; 4], &[255; 4]);
    assert_eq!(found.iou, 0.75);
    assert!(!g.add_frame(&found, true));
    assert_eq!((g.bad_flagged(), g.good_flagged()), (Some(0.0), Some(0.5)));
}
