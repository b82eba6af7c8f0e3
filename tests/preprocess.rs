//! Resize/normalise into the model input and back (docs/interfaces.md §1): letterbox placement and
//! padding, normalisation, crop of the content and resize to the input size.

use pipeline_seg::engine::image::Frame;
use pipeline_seg::engine::model::{GateDefaults, ModelInfo};
use pipeline_seg::engine::preprocess::ResizeMode;
use pipeline_seg::engine::preprocess::{crop, placement, resize_map, to_tensor, Placement};

const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];
const COLOUR: [u8; 3] = [200, 100, 30];

fn info(resize: ResizeMode) -> ModelInfo {
    ModelInfo {
        height: 192,
        width: 256,
        mean: MEAN,
        std: STD,
        resize,
        dropout_p: 0.2,
        dropout_sites: vec![32],
        dropout_placement: "bottleneck".into(),
        default_samples: 8,
        gate: GateDefaults {
            score_method: "mean".into(),
            pixel_threshold: 0.5,
            band_px: 4,
            threshold_high: 0.3,
            threshold_low: 0.2,
            recover_frames: 3,
        },
        feature_distance: false,
        trust: None,
    }
}

/// A frame whose top half is `top` and bottom half `bottom`.
fn frame(w: usize, h: usize, top: [u8; 3], bottom: [u8; 3]) -> Frame {
    let rgb = (0..h).flat_map(|y| (0..w).flat_map(move |_| if y < h / 2 { top } else { bottom })).collect();
    Frame { width: w, height: h, rgb }
}

fn normalised(rgb: [u8; 3]) -> [f32; 3] {
    [0, 1, 2].map(|c| (rgb[c] as f32 / 255.0 - MEAN[c]) / STD[c])
}

/// Channel `c` of the CHW tensor at (x, y) for a 256×192 input.
fn at(t: &ndarray::Array4<f32>, c: usize, x: usize, y: usize) -> f32 {
    t[[0, c, y, x]]
}

#[test]
fn letterbox_placement_is_centred_and_keeps_the_aspect_ratio() {
    // 16:9 into 4:3: full width, 144 rows, 24 rows of padding above and below.
    assert_eq!(
        placement(640, 360, 256, 192, ResizeMode::Letterbox),
        Placement { x: 0, y: 24, width: 256, height: 144 }
    );
    // Portrait: full height, 108 columns centred.
    assert_eq!(
        placement(360, 640, 256, 192, ResizeMode::Letterbox),
        Placement { x: 74, y: 0, width: 108, height: 192 }
    );
    // Same aspect ratio: no padding; stretch always fills.
    assert_eq!(
        placement(1280, 960, 256, 192, ResizeMode::Letterbox),
        Placement { x: 0, y: 0, width: 256, height: 192 }
    );
    assert_eq!(placement(640, 360, 256, 192, ResizeMode::Stretch), Placement { x: 0, y: 0, width: 256, height: 192 });
}

#[test]
#[allow(clippy::needless_range_loop, reason = "c indexes the tensor as well as want")]
fn letterbox_tensor_has_zero_padding_and_normalised_content() {
    let (t, place) = to_tensor(&frame(640, 360, COLOUR, COLOUR), &info(ResizeMode::Letterbox).input()).unwrap();
    assert_eq!(t.len(), 3 * 192 * 256);
    assert_eq!(place, Placement { x: 0, y: 24, width: 256, height: 144 });
    let want = normalised(COLOUR);
    for c in 0..3 {
        for y in 0..192 {
            for x in 0..256 {
                let v = at(&t, c, x, y);
                if (24..168).contains(&y) {
                    assert!((v - want[c]).abs() < 1e-5, "content ({x},{y}) channel {c}: {v} vs {}", want[c]);
                } else {
                    assert_eq!(v, 0.0, "padding ({x},{y}) channel {c} must be exactly 0 (the mean colour)");
                }
            }
        }
    }
}

#[test]
fn letterbox_keeps_orientation_and_rgb_order() {
    let blue = [10, 60, 240];
    let (t, _) = to_tensor(&frame(640, 360, COLOUR, blue), &info(ResizeMode::Letterbox).input()).unwrap();
    let (top, bottom) = (normalised(COLOUR), normalised(blue));
    for c in 0..3 {
        assert!((at(&t, c, 128, 30) - top[c]).abs() < 1e-5, "channel {c} near the top");
        assert!((at(&t, c, 128, 160) - bottom[c]).abs() < 1e-5, "channel {c} near the bottom");
    }
}

#[test]
fn crop_returns_exactly_the_content_rectangle() {
    for (w, h) in [(640, 360), (360, 640)] {
        let place = placement(w, h, 256, 192, ResizeMode::Letterbox);
        let inside = |x: usize, y: usize| {
            (place.x..place.x + place.width).contains(&x) && (place.y..place.y + place.height).contains(&y)
        };
        // Content pixels carry their index within the content, padding carries -1.
        let map: Vec<f32> = (0..192 * 256)
            .map(|i| (i % 256, i / 256))
            .map(|(x, y)| if inside(x, y) { ((y - place.y) * place.width + x - place.x) as f32 } else { -1.0 })
            .collect();
        let got = crop(&map, 256, &place);
        let want: Vec<f32> = (0..place.width * place.height).map(|i| i as f32).collect();
        assert_eq!(got, want, "{w}x{h}");
    }
}

#[test]
fn resize_map_returns_the_input_size_and_keeps_flat_values() {
    let place = placement(640, 360, 256, 192, ResizeMode::Letterbox);
    let content = vec![0.625f32; place.width * place.height];
    let out = resize_map(&content, place.width, place.height, 640, 360).unwrap();
    assert_eq!(out.len(), 640 * 360);
    assert!(out.iter().all(|&v| (v - 0.625).abs() < 1e-6), "flat map must stay flat");
    // Downscaling too, and the identity size is a copy.
    let down = resize_map(&content, place.width, place.height, 100, 50).unwrap();
    assert_eq!(down.len(), 100 * 50);
    assert!(down.iter().all(|&v| (v - 0.625).abs() < 1e-6));
    let ramp: Vec<f32> = (0..12).map(|i| i as f32).collect();
    assert_eq!(resize_map(&ramp, 4, 3, 4, 3).unwrap(), ramp);
    // A left/right split keeps its sides.
    let split: Vec<f32> = (0..64 * 48).map(|i| if i % 64 < 32 { 0.0 } else { 1.0 }).collect();
    let up = resize_map(&split, 64, 48, 160, 120).unwrap();
    assert!(up.chunks_exact(160).all(|r| r[0] == 0.0 && r[159] == 1.0));
}

#[test]
fn stretch_fills_the_input_with_the_normalised_colour() {
    // Downscaled (area) and upscaled (bilinear).
    for (w, h) in [(640, 360), (100, 50)] {
        let (t, place) = to_tensor(&frame(w, h, COLOUR, COLOUR), &info(ResizeMode::Stretch).input()).unwrap();
        assert_eq!(place, Placement { x: 0, y: 0, width: 256, height: 192 });
        let want = normalised(COLOUR);
        for (c, plane) in t.index_axis(ndarray::Axis(0), 0).outer_iter().enumerate() {
            assert!(plane.iter().all(|&v| (v - want[c]).abs() < 1e-5), "{w}x{h} channel {c}");
        }
    }
}
