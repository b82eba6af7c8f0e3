//! Anytime sampling with the real model (docs/interfaces.md §1): the shipped trunk/head pair
//! gives the whole graph's samples, a pair that disagrees is refused (whole graph, with the
//! reason), and a model without a pair still samples in chunks with the same results.

use std::path::{Path, PathBuf};

use ndarray::Array4;
use pipeline_seg::engine::model::{split_paths, Model, ModelOptions};
use pipeline_seg::engine::sampler::Sampler;
use pipeline_seg::Error;

fn shipped() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/pipeline_seg_unet.onnx")
}

fn load(path: &Path) -> Result<Model, Error> {
    Model::load(path, &ModelOptions::default())
}

/// Samples [T, C, H, W] of one image, drawn in the given chunks, and the feature distance.
fn samples(model: &mut Model, ends: &[usize]) -> (Vec<f32>, Option<f32>) {
    let (h, w) = (model.info.height, model.info.width);
    let image = Array4::from_shape_fn((1, 3, h, w), |(_, c, y, x)| ((x + 2 * y + 5 * c) % 17) as f32 / 8.0 - 1.0);
    let t = *ends.last().unwrap();
    let masks = Sampler::new(11, model.info.dropout_p).masks(&model.info.dropout_sites, t);
    let (mut out, mut fd) = (Vec::new(), None);
    model
        .run_chunks(image.view(), &masks, ends.iter().copied(), |p, d| {
            out.extend(p.iter().copied());
            fd = d;
            Ok(true)
        })
        .expect("runs");
    (out, fd)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The model copied into a temporary directory, with the given trunk and head files beside it.
fn copy_with(dir: &Path, trunk: Option<&Path>, head: Option<&Path>) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let model = dir.join("m.onnx");
    std::fs::copy(shipped(), &model).unwrap();
    let (t, h) = split_paths(&model);
    if let Some(src) = trunk {
        std::fs::copy(src, t).unwrap();
    }
    if let Some(src) = head {
        std::fs::copy(src, h).unwrap();
    }
    model
}

#[test]
fn shipped_split_gives_the_whole_graphs_samples_in_any_chunks() {
    let mut split = load(&shipped()).expect("shipped model loads");
    assert!(split.is_split(), "the shipped trunk/head pair is used: {:?}", split.split_problem);
    let dir = std::env::temp_dir().join(format!("ps_anytime_whole_{}", std::process::id()));
    let mut whole = load(&copy_with(&dir, None, None)).expect("copy loads");
    assert!(!whole.is_split() && whole.split_problem.is_none());
    let (a, fa) = samples(&mut whole, &[8]);
    let (b, fb) = samples(&mut split, &[4, 8]);
    let (c, fc) = samples(&mut whole, &[3, 5, 8]);
    assert!(max_diff(&a, &b) < 1e-5, "split vs whole: {}", max_diff(&a, &b));
    assert!(max_diff(&a, &c) < 1e-5, "whole graph in chunks: {}", max_diff(&a, &c));
    assert!(fa.is_some() && fa == fc && (fa.unwrap() - fb.unwrap()).abs() < 1e-4, "{fa:?} {fb:?}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_pair_that_disagrees_is_refused_with_the_reason() {
    let (trunk, _) = split_paths(&shipped());
    let dir = std::env::temp_dir().join(format!("ps_anytime_bad_{}", std::process::id()));
    // The trunk as head: it reads `image`, which the trunk does not give to a head.
    let model = load(&copy_with(&dir, Some(&trunk), Some(&trunk))).expect("the main file still loads");
    assert!(!model.is_split());
    let why = model.split_problem.clone().expect("a reason");
    assert!(why.contains("m.trunk.onnx") && why.contains("whole graph"), "{why}");
    std::fs::remove_dir_all(dir).ok();
}
