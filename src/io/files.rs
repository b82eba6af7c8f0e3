//! Image files named on the command line.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn is_image(p: &Path) -> bool {
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    matches!(ext.as_str(), "png" | "jpg" | "jpeg")
}

/// Files named on the command line, with directories expanded (sorted, images only).
pub fn collect_inputs(args: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for arg in args {
        match std::fs::read_dir(arg) {
            Ok(entries) => {
                let mut files: Vec<PathBuf> =
                    entries.flatten().map(|e| e.path()).filter(|p| p.is_file() && is_image(p)).collect();
                files.sort();
                out.extend(files);
            }
            Err(_) => out.push(arg.clone()), // a file, or a missing path that fails when read
        }
    }
    out
}

/// `<stem>`, made unique when two inputs share a file stem.
pub fn unique_stem(path: &Path, used: &mut HashSet<String>) -> String {
    let stem = path.file_stem().map_or_else(|| "frame".to_string(), |s| s.to_string_lossy().into_owned());
    let mut name = stem.clone();
    let mut k = 2;
    while !used.insert(name.clone()) {
        name = format!("{stem}_{k}");
        k += 1;
    }
    name
}
