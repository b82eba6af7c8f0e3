//! Resize and normalise a frame into the model's input, and map model-resolution maps back
//! (docs/interfaces.md §1).

use ndarray::Array4;
use opencv::{core, imgproc, prelude::*};

use crate::engine::image::Frame;
use crate::error::Result;

/// How the model wants its input resized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeMode {
    /// Resize to the input size, aspect ratio not kept.
    Stretch,
    /// Keep the aspect ratio, centre and pad with the mean colour.
    Letterbox,
}

/// What the model wants as input (its metadata, docs/interfaces.md §1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InputSpec {
    /// Input width [px].
    pub width: usize,
    /// Input height [px].
    pub height: usize,
    /// Per-channel RGB mean on the 0..1 scale.
    pub mean: [f32; 3],
    /// Per-channel RGB standard deviation on the 0..1 scale.
    pub std: [f32; 3],
    /// Stretch or letterbox.
    pub resize: ResizeMode,
}

/// Where the frame's content lies inside the model input (the whole input unless letterboxed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Left edge of the content [px at model resolution].
    pub x: usize,
    /// Top edge of the content [px at model resolution].
    pub y: usize,
    /// Content width [px at model resolution].
    pub width: usize,
    /// Content height [px at model resolution].
    pub height: usize,
}

/// The content rectangle for a `w`×`h` frame in a `mw`×`mh` input.
pub fn placement(w: usize, h: usize, mw: usize, mh: usize, mode: ResizeMode) -> Placement {
    match mode {
        ResizeMode::Stretch => Placement { x: 0, y: 0, width: mw, height: mh },
        ResizeMode::Letterbox => {
            let scale = (mw as f64 / w as f64).min(mh as f64 / h as f64);
            let width = ((w as f64 * scale).round() as usize).clamp(1, mw);
            let height = ((h as f64 * scale).round() as usize).clamp(1, mh);
            Placement { x: (mw - width) / 2, y: (mh - height) / 2, width, height }
        }
    }
}

/// Area interpolation when shrinking both sides, bilinear otherwise (as the Python evaluation).
fn interpolation(from: (usize, usize), to: (usize, usize)) -> i32 {
    if to.0 < from.0 && to.1 < from.1 {
        imgproc::INTER_AREA
    } else {
        imgproc::INTER_LINEAR
    }
}

fn resize_mat(src: &impl core::ToInputArray, w: usize, h: usize, interp: i32) -> Result<Mat> {
    let mut dst = Mat::default();
    imgproc::resize(src, &mut dst, core::Size::new(w as i32, h as i32), 0.0, 0.0, interp)?;
    Ok(dst)
}

/// The model input [1,3,H,W], and where the frame lies in it.
pub fn to_tensor(frame: &Frame, info: &InputSpec) -> Result<(Array4<f32>, Placement)> {
    let (mw, mh) = (info.width, info.height);
    let place = placement(frame.width, frame.height, mw, mh, info.resize);
    let src = Mat::new_rows_cols_with_data(frame.height as i32, (frame.width * 3) as i32, &frame.rgb)?;
    let src = src.reshape(3, frame.height as i32)?;
    let interp = interpolation((frame.width, frame.height), (place.width, place.height));
    let resized = resize_mat(&src, place.width, place.height, interp)?;
    let pixels = resized.data_bytes()?;
    // Padding is zero after normalisation, i.e. the mean colour.
    let mut tensor = Array4::<f32>::zeros((1, 3, mh, mw));
    for (c, mut plane) in tensor.index_axis_mut(ndarray::Axis(0), 0).outer_iter_mut().enumerate() {
        let (scale, offset) = (1.0 / (255.0 * info.std[c]), info.mean[c] / info.std[c]);
        for (row, src_row) in pixels.chunks_exact(place.width * 3).enumerate() {
            let mut dst = plane.row_mut(place.y + row);
            for (d, px) in dst.iter_mut().skip(place.x).zip(src_row.chunks_exact(3)) {
                *d = px[c] as f32 * scale - offset;
            }
        }
    }
    Ok((tensor, place))
}

/// Copies the content rectangle out of a model-resolution map (`mw` wide).
pub fn crop(map: &[f32], mw: usize, place: &Placement) -> Vec<f32> {
    map.chunks_exact(mw)
        .skip(place.y)
        .take(place.height)
        .flat_map(|row| &row[place.x..place.x + place.width])
        .copied()
        .collect()
}

/// Resizes a `w`×`h` float map to `out_w`×`out_h` bilinearly.
pub fn resize_map(map: &[f32], w: usize, h: usize, out_w: usize, out_h: usize) -> Result<Vec<f32>> {
    if (w, h) == (out_w, out_h) {
        return Ok(map.to_vec());
    }
    let src = Mat::new_rows_cols_with_data(h as i32, w as i32, map)?;
    let dst = resize_mat(&src, out_w, out_h, imgproc::INTER_LINEAR)?;
    Ok(dst.data_typed::<f32>()?.to_vec())
}
