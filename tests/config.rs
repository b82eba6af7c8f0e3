//! Parameters from ROS 2 parameter files and their validation (docs/interfaces.md §5).

use std::path::PathBuf;

use pipeline_seg::engine::gate::GateParams;
use pipeline_seg::engine::model::{GateDefaults, ModelInfo};
use pipeline_seg::engine::preprocess::ResizeMode;
use pipeline_seg::engine::score::ScoreMethod;
use pipeline_seg::{Error, Params};

fn info() -> ModelInfo {
    ModelInfo {
        height: 192,
        width: 256,
        mean: [0.5; 3],
        std: [0.25; 3],
        resize: ResizeMode::Stretch,
        dropout_p: 0.2,
        dropout_sites: vec![32, 16],
        dropout_placement: "bottleneck+decoder".into(),
        default_samples: 8,
        gate: GateDefaults {
            score_method: "p95".into(),
            pixel_threshold: 0.4,
            band_px: 6,
            threshold_high: 0.35,
            threshold_low: 0.25,
            recover_frames: 4,
        },
        feature_distance: false,
        trust: None,
    }
}

/// Writes `text` to a fresh temp file named after the test.
fn yaml(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pipeline_seg_config_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn apply(name: &str, text: &str) -> pipeline_seg::Result<Params> {
    let (mut p, path) = (Params::default(), yaml(name, text));
    let r = p.apply_file(&path);
    std::fs::remove_file(path).ok();
    r.map(|()| p)
}

/// The error must be a parameter error for `param`, and its message must name it.
fn expect_param<T: std::fmt::Debug>(r: pipeline_seg::Result<T>, param: &str) {
    match r {
        Err(e @ Error::Param { .. }) => {
            let Error::Param { name, .. } = &e else { unreachable!() };
            assert_eq!(name, param, "{e}");
            assert!(e.to_string().contains(param), "'{e}' should name {param}");
        }
        other => panic!("expected a parameter error naming {param}, got {other:?}"),
    }
}

#[test]
fn parameter_file_under_the_node_name_or_wildcard_is_applied() {
    let body = "  ros__parameters:\n    samples: 12\n    seed: 99\n    score_method: pipeline_mean\n    threshold_high: 0.5\n    \
                threshold_low: 0.2\n    band_px: 3\n    max_saturated: 0.7\n    min_luma: 10\n    stale_timeout_ms: 500\n";
    for (name, header) in [("node", "pipeline_seg_node:\n"), ("wildcard", "/**:\n")] {
        let p = apply(name, &format!("{header}{body}")).unwrap();
        assert_eq!(
            (p.samples, p.seed, p.score_method, p.band_px),
            (Some(12), 99, Some(ScoreMethod::PipelineMean), Some(3)),
            "{name}"
        );
        assert_eq!(
            (p.threshold_high, p.threshold_low, p.sanity.max_saturated, p.sanity.min_luma),
            (Some(0.5), Some(0.2), 0.7, 10.0)
        );
        // The file beats the model; what it leaves out comes from the model's metadata.
        let s = p.resolve(&info()).unwrap();
        assert_eq!(s.samples, 12);
        assert_eq!(s.gate, GateParams { threshold_high: 0.5, threshold_low: 0.2, recover_frames: 4 });
        assert_eq!((s.score.method, s.score.pixel_threshold, s.score.band_px), (ScoreMethod::PipelineMean, 0.4, 3));
    }
}

#[test]
fn unknown_parameter_is_an_error_naming_it() {
    expect_param(
        apply("unknown", "pipeline_seg_node:\n  ros__parameters:\n    samples: 4\n    treshold_high: 0.5\n"),
        "treshold_high",
    );
}

#[test]
fn wrong_type_is_an_error_naming_the_parameter() {
    for (param, value) in [
        ("samples", "\"many\""),
        ("samples", "2.5"),
        ("samples", "-1"),
        ("threshold_high", "high"),
        ("allow_cpu_fallback", "3"),
        ("score_method", "median"),
        ("device", "gpu"),
    ] {
        let text = format!("pipeline_seg_node:\n  ros__parameters:\n    {param}: {value}\n");
        expect_param(apply(&format!("type_{param}"), &text), param);
    }
}

#[test]
fn file_not_in_parameter_file_form_is_an_error() {
    expect_param(apply("flat", "samples: 4\n"), "config");
    expect_param(apply("not_yaml", "pipeline_seg_node: [unclosed\n"), "config");
    let mut p = Params::default();
    expect_param(p.apply_file(&std::env::temp_dir().join("pipeline_seg_no_such_file.yaml")), "config");
}

#[test]
fn resolve_names_the_out_of_range_parameter() {
    let defaults = Params::default();
    assert!(defaults.resolve(&info()).is_ok());
    let cases: [(&str, Params); 7] = [
        ("samples", Params { samples: Some(0), ..Params::default() }),
        ("threshold_low", Params { threshold_low: Some(0.5), threshold_high: Some(0.4), ..Params::default() }),
        ("threshold_low", Params { threshold_low: Some(0.36), ..Params::default() }),
        ("pixel_threshold", Params { pixel_threshold: Some(1.5), ..Params::default() }),
        ("threshold_high", Params { threshold_high: Some(f32::NAN), ..Params::default() }),
        ("recover_frames", Params { recover_frames: Some(0), ..Params::default() }),
        (
            "max_saturated",
            Params {
                sanity: pipeline_seg::engine::sanity::SanityLimits { max_saturated: -0.1, ..Default::default() },
                ..Params::default()
            },
        ),
    ];
    for (param, p) in cases {
        expect_param(p.resolve(&info()), param);
    }
    // A model whose own defaults are out of range is caught too.
    let mut bad = info();
    bad.gate.threshold_low = 0.5;
    expect_param(defaults.resolve(&bad), "threshold_low");
}

#[test]
fn shipped_config_file_lists_the_built_in_defaults() {
    // config/pipeline_seg.yaml documents every default; it must parse and change nothing.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/pipeline_seg.yaml");
    let mut p = Params::default();
    p.apply_file(&path).expect("config/pipeline_seg.yaml parses");
    assert_eq!(p, Params::default());
    let text = std::fs::read_to_string(&path).unwrap();
    let listed = pipeline_seg::engine::config::NODE_ONLY.iter().chain(pipeline_seg::engine::config::PARAM_NAMES);
    for name in listed.filter(|n| **n != "use_sim_time") {
        assert!(
            text.contains(&format!("    {name}:")) || text.contains(&format!("# {name}:")),
            "config/pipeline_seg.yaml lacks {name}"
        );
    }
    for name in pipeline_seg::engine::config::FROM_MODEL {
        assert!(text.contains(&format!("# {name}:")), "{name} must be listed, commented out (the model decides)");
    }
}

#[test]
fn from_model_is_the_gate_and_trust_run_of_param_names() {
    let want = [
        "samples",
        "score_method",
        "pixel_threshold",
        "band_px",
        "threshold_high",
        "threshold_low",
        "recover_frames",
        "trust_model",
    ];
    assert_eq!(pipeline_seg::engine::config::FROM_MODEL, want);
}
