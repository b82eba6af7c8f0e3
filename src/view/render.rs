//! Images for people: the mask, a colour-mapped entropy map and an overlay on the input.

use std::path::Path;

use opencv::{core, imgcodecs, imgproc, prelude::*};

use crate::engine::gate::Reason;
use crate::engine::image::Frame;
use crate::engine::pipeline::Segmentation;
use crate::engine::score::ScoreMethod;
use crate::error::{Error, Result};

fn mat_from(bytes: &[u8], w: usize, h: usize, channels: usize) -> Result<Mat> {
    let flat = Mat::new_rows_cols_with_data(h as i32, (w * channels) as i32, bytes)?;
    Ok(flat.reshape(channels as i32, h as i32)?.try_clone()?)
}

/// Entropy 0..1 as a BGR image with the perceptual *inferno* colour map (black = sure).
pub fn entropy_color(entropy: &[f32], w: usize, h: usize) -> Result<Vec<u8>> {
    let gray: Vec<u8> = entropy.iter().map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
    let src = mat_from(&gray, w, h, 1)?;
    let mut dst = Mat::default();
    imgproc::apply_color_map(&src, &mut dst, imgproc::COLORMAP_INFERNO)?;
    Ok(dst.data_bytes()?.to_vec())
}

/// The input (BGR) with the mask tinted green, uncertain pixels (entropy > 0.5) tinted magenta,
/// The caption written on every overlay (node, `replay`, `infer`, review bundles).
pub fn caption(score: f32, method: ScoreMethod, reason: Reason) -> String {
    format!("score {score:.3} {} ({})", method.name(), reason.name())
}

/// and a caption with the score and decision.
pub fn overlay(frame: &Frame, seg: &Segmentation, caption: &str) -> Result<Vec<u8>> {
    let input = if (frame.width, frame.height) == (seg.width, seg.height) {
        frame.to_bgr()
    } else {
        let src = mat_from(&frame.to_bgr(), frame.width, frame.height, 3)?;
        let mut dst = Mat::default();
        let size = core::Size::new(seg.width as i32, seg.height as i32);
        imgproc::resize(&src, &mut dst, size, 0.0, 0.0, imgproc::INTER_AREA)?;
        dst.data_bytes()?.to_vec()
    };
    let mut out = Vec::with_capacity(input.len());
    for ((px, &m), &e) in input.chunks_exact(3).zip(&seg.mask).zip(&seg.entropy) {
        let tint: Option<[f32; 3]> = if e > 0.5 {
            Some([255.0, 0.0, 255.0])
        } else if m > 0 {
            Some([0.0, 255.0, 0.0])
        } else {
            None
        };
        match tint {
            Some(t) => out.extend(px.iter().zip(t).map(|(&v, t)| (0.55 * v as f32 + 0.45 * t).round() as u8)),
            None => out.extend_from_slice(px),
        }
    }
    let mut img = mat_from(&out, seg.width, seg.height, 3)?;
    let scale = (seg.width as f64 / 640.0).max(0.35);
    let origin = core::Point::new(6, (22.0 * scale).round() as i32 + 2);
    for (color, thickness) in [(core::Scalar::all(0.0), 4), (core::Scalar::all(255.0), 1)] {
        imgproc::put_text(
            &mut img,
            caption,
            origin,
            imgproc::FONT_HERSHEY_SIMPLEX,
            0.6 * scale,
            color,
            thickness,
            imgproc::LINE_AA,
            false,
        )?;
    }
    Ok(img.data_bytes()?.to_vec())
}

/// Writes 8-bit pixels (1 = gray, 3 = BGR channels) as a PNG file.
pub fn write_png(path: &Path, pixels: &[u8], w: usize, h: usize, channels: usize) -> Result<()> {
    let img = mat_from(pixels, w, h, channels)?;
    let mut buf = core::Vector::<u8>::new();
    imgcodecs::imencode(".png", &img, &mut buf, &core::Vector::new())?;
    std::fs::write(path, buf.as_slice()).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}
