//! Writes float32 arrays as NumPy `.npy` (format 1.0), so Python reads outputs without extra tools.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `data` with C-order `shape` as little-endian float32.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    assert_eq!(shape.iter().product::<usize>(), data.len(), "npy shape must match the data");
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    let pad = 64 - (10 + header.len() + 1) % 64;
    header.push_str(&" ".repeat(pad % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + data.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    data.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    std::fs::File::create(path).and_then(|mut f| f.write_all(&bytes)).map_err(io)
}
