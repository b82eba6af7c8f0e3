//! Review bundles: the frame a human should look at, with what the model made of it, saved to a
//! directory that is kept under a size limit by deleting the oldest bundles.

use std::path::{Path, PathBuf};

use crate::engine::gate::Reason;
use crate::engine::image::Frame;
use crate::engine::pipeline::Segmentation;
use crate::engine::score::ScoreMethod;
use crate::error::{Error, Result};
use crate::view::render;

/// Writes `<dir>/<stamp_ns>_<reason>/` with input.png, mask.png, entropy.png, overlay.png and
/// review.json (`meta` plus score and reason); returns the bundle's path.
pub fn save_bundle(
    dir: &Path,
    stamp_ns: i64,
    reason: Reason,
    method: ScoreMethod,
    frame: &Frame,
    seg: &Segmentation,
    meta: serde_json::Value,
) -> Result<PathBuf> {
    let bundle = dir.join(format!("{stamp_ns:020}_{}", reason.name()));
    let io = |source| Error::Io { path: bundle.clone(), source };
    std::fs::create_dir_all(&bundle).map_err(io)?;
    let (w, h) = (seg.width, seg.height);
    render::write_png(&bundle.join("input.png"), &frame.to_bgr(), frame.width, frame.height, 3)?;
    render::write_png(&bundle.join("mask.png"), &seg.mask, w, h, 1)?;
    render::write_png(&bundle.join("entropy.png"), &render::entropy_color(&seg.entropy, w, h)?, w, h, 3)?;
    let caption = render::caption(seg.score, method, reason);
    render::write_png(&bundle.join("overlay.png"), &render::overlay(frame, seg, &caption)?, w, h, 3)?;
    let mut sidecar = serde_json::json!({
        "stamp_ns": stamp_ns, "reason": reason.name(), "score": seg.score,
        "pipeline_fraction": seg.pipeline_fraction, "samples": seg.samples,
        "sanity": seg.sanity.as_ref().err().map(|e| e.to_string()),
    });
    if let (Some(obj), serde_json::Value::Object(extra)) = (sidecar.as_object_mut(), meta) {
        obj.extend(extra);
    }
    let json = serde_json::to_string_pretty(&sidecar).unwrap_or_default();
    std::fs::write(bundle.join("review.json"), json + "\n").map_err(io)?;
    Ok(bundle)
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum()
        })
        .unwrap_or(0)
}

/// Deletes the oldest bundles (by name, i.e. by stamp) until `dir` holds at most `max_bytes`;
/// returns how many were deleted. Only bundle directories (`<digits>_<reason>`) are touched.
pub fn prune(dir: &Path, max_bytes: u64) -> Result<usize> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    let mut bundles: Vec<(PathBuf, u64)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.split_once('_')
                .is_some_and(|(stamp, _)| !stamp.is_empty() && stamp.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|p| {
            let size = dir_size(&p);
            (p, size)
        })
        .collect();
    bundles.sort();
    let mut total: u64 = bundles.iter().map(|(_, s)| s).sum();
    let mut deleted = 0;
    for (path, size) in bundles {
        if total <= max_bytes {
            break;
        }
        std::fs::remove_dir_all(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        total -= size;
        deleted += 1;
    }
    Ok(deleted)
}
