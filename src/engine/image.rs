//! Decoding: raw sensor_msgs buffers, compressed JPEG/PNG and image files to an RGB frame.

use std::path::Path;

use opencv::{core, imgcodecs, imgproc, prelude::*};

use crate::error::{Error, Result};
use crate::msg::FrameMsg;

/// A decoded frame: RGB, 8 bits per channel, rows packed (no padding).
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// Frame width [px].
    pub width: usize,
    /// Frame height [px].
    pub height: usize,
    /// `height * width * 3` bytes, R G B per pixel.
    pub rgb: Vec<u8>,
}

/// A raw image as sensor_msgs/Image carries it.
#[derive(Clone, Copy, Debug)]
pub struct RawImage<'a> {
    /// Image width [px].
    pub width: u32,
    /// Image height [px].
    pub height: u32,
    /// Pixel encoding (REP 118 name, e.g. `rgb8`, `bayer_rggb8`).
    pub encoding: &'a str,
    /// Whether multi-byte pixel values (`mono16`) are big-endian.
    pub is_bigendian: bool,
    /// Bytes per row, padding included.
    pub step: u32,
    /// Pixel data, `step * height` bytes.
    pub data: &'a [u8],
}

/// The pixel layouts the decoder understands.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    Rgb8,
    Bgr8,
    Rgba8,
    Bgra8,
    Mono8,
    Mono16,
    /// OpenCV conversion code for a Bayer or YUV 4:2:2 layout.
    OpenCv {
        code: i32,
        bytes_per_pixel: usize,
    },
}

impl Layout {
    fn parse(encoding: &str) -> Result<Layout> {
        // cv_bridge's mapping: ROS names the first row's colours, OpenCV the second row's.
        let cv = |code, bytes_per_pixel| Layout::OpenCv { code, bytes_per_pixel };
        Ok(match encoding {
            "rgb8" => Layout::Rgb8,
            "bgr8" => Layout::Bgr8,
            "rgba8" => Layout::Rgba8,
            "bgra8" => Layout::Bgra8,
            "mono8" | "8UC1" => Layout::Mono8,
            "mono16" | "16UC1" => Layout::Mono16,
            "bayer_rggb8" => cv(imgproc::COLOR_BayerBG2RGB, 1),
            "bayer_bggr8" => cv(imgproc::COLOR_BayerRG2RGB, 1),
            "bayer_gbrg8" => cv(imgproc::COLOR_BayerGR2RGB, 1),
            "bayer_grbg8" => cv(imgproc::COLOR_BayerGB2RGB, 1),
            "yuv422" | "uyvy" | "UYVY" => cv(imgproc::COLOR_YUV2RGB_UYVY, 2),
            "yuv422_yuy2" | "yuyv" | "YUYV" => cv(imgproc::COLOR_YUV2RGB_YUY2, 2),
            other => return Err(Error::UnsupportedEncoding(other.to_string())),
        })
    }

    fn bytes_per_pixel(self) -> usize {
        match self {
            Layout::Rgb8 | Layout::Bgr8 => 3,
            Layout::Rgba8 | Layout::Bgra8 => 4,
            Layout::Mono8 => 1,
            Layout::Mono16 => 2,
            Layout::OpenCv { bytes_per_pixel, .. } => bytes_per_pixel,
        }
    }
}

fn check_size(width: usize, height: usize, max_pixels: usize) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::BadGeometry(format!("size {width}x{height} is empty")));
    }
    let pixels = width.saturating_mul(height);
    if pixels > max_pixels {
        return Err(Error::TooLarge { width, height, pixels, max: max_pixels });
    }
    Ok(())
}

/// Decodes a raw sensor_msgs/Image buffer, honouring `step` and `is_bigendian`.
pub fn decode_raw(img: &RawImage, max_pixels: usize) -> Result<Frame> {
    let layout = Layout::parse(img.encoding)?;
    let (w, h) = (img.width as usize, img.height as usize);
    check_size(w, h, max_pixels)?;
    let bpp = layout.bytes_per_pixel();
    let row = w * bpp;
    let step = img.step as usize;
    if step < row {
        return Err(Error::BadGeometry(format!(
            "step {step} is less than width {w} x {bpp} bytes per pixel ({}) = {row}",
            img.encoding
        )));
    }
    if step.checked_mul(h) != Some(img.data.len()) {
        return Err(Error::BadGeometry(format!(
            "data is {} bytes but step {step} x height {h} = {}",
            img.data.len(),
            step.saturating_mul(h)
        )));
    }
    let rows = img.data.chunks_exact(step).map(|r| &r[..row]);
    let mut rgb = Vec::with_capacity(w * h * 3);
    match layout {
        Layout::Rgb8 => rows.for_each(|r| rgb.extend_from_slice(r)),
        Layout::Bgr8 => rows.flat_map(|r| r.chunks_exact(3)).for_each(|p| rgb.extend_from_slice(&[p[2], p[1], p[0]])),
        Layout::Rgba8 => rows.flat_map(|r| r.chunks_exact(4)).for_each(|p| rgb.extend_from_slice(&p[..3])),
        Layout::Bgra8 => rows.flat_map(|r| r.chunks_exact(4)).for_each(|p| rgb.extend_from_slice(&[p[2], p[1], p[0]])),
        Layout::Mono8 => rows.flatten().for_each(|&v| rgb.extend_from_slice(&[v, v, v])),
        Layout::Mono16 => rows.flat_map(|r| r.chunks_exact(2)).for_each(|p| {
            let v = if img.is_bigendian { u16::from_be_bytes([p[0], p[1]]) } else { u16::from_le_bytes([p[0], p[1]]) };
            rgb.extend_from_slice(&[mono16_to_8(v); 3])
        }),
        Layout::OpenCv { code, bytes_per_pixel } => {
            if bytes_per_pixel == 2 && w % 2 != 0 {
                return Err(Error::BadGeometry(format!("{} needs an even width, got {w}", img.encoding)));
            }
            let packed: Vec<u8> = rows.flatten().copied().collect();
            rgb = convert_with_opencv(&packed, w, h, bytes_per_pixel, code)?;
        }
    }
    Ok(Frame { width: w, height: h, rgb })
}

/// v/256 rounded half to even and saturated, as cv_bridge's mono16 -> mono8 (OpenCV's
/// `convertTo` with scale 1/256), so frames match what ROS tools show.
pub fn mono16_to_8(v: u16) -> u8 {
    let (q, r) = (v >> 8, v & 0xff);
    let up = r > 128 || (r == 128 && q % 2 == 1);
    (q + up as u16).min(255) as u8
}

fn convert_with_opencv(packed: &[u8], w: usize, h: usize, channels: usize, code: i32) -> Result<Vec<u8>> {
    let flat = Mat::new_rows_cols_with_data(h as i32, (w * channels) as i32, packed)?;
    let src = flat.reshape(channels as i32, h as i32)?;
    let mut dst = Mat::default();
    imgproc::cvt_color(&src, &mut dst, code, 3)?;
    Ok(dst.data_bytes()?.to_vec())
}

/// The compressed formats the decoder accepts, told by their magic bytes.
fn sniff(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(&[0xFF, 0xD8]) {
        Some("jpeg")
    } else if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("png")
    } else {
        None
    }
}

/// The width and height a PNG (IHDR) or JPEG (first SOF segment) header declares, read without
/// decoding anything.
pub fn declared_size(kind: &'static str, data: &[u8]) -> Result<(usize, usize)> {
    let corrupt = |detail: &str| Error::Corrupt { format: kind, detail: detail.to_string() };
    let be16 = |i: usize| data.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize);
    let be32 = |i: usize| data.get(i..i + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    if kind == "png" {
        // Signature (8), then the IHDR chunk: length (4), "IHDR", width (4), height (4).
        if data.get(12..16) != Some(b"IHDR".as_slice()) {
            return Err(corrupt("no IHDR chunk after the signature"));
        }
        return Ok((
            be32(16).ok_or_else(|| corrupt("IHDR cut short"))?,
            be32(20).ok_or_else(|| corrupt("IHDR cut short"))?,
        ));
    }
    // JPEG: walk the marker segments after SOI up to the first start-of-frame.
    let mut i = 2;
    loop {
        while data.get(i) == Some(&0xFF) && data.get(i + 1) == Some(&0xFF) {
            i += 1; // fill bytes
        }
        let (Some(&0xFF), Some(&marker)) = (data.get(i), data.get(i + 1)) else {
            return Err(corrupt("no frame header (SOF) before the image data"));
        };
        i += 2;
        match marker {
            0x01 | 0xD0..=0xD7 => continue, // no length
            0xD9 | 0xDA => return Err(corrupt("no frame header (SOF) before the image data")),
            // libjpeg reads FF 00 as no marker and scans on for the next one, so a frame header
            // read past it here may not be the one it decodes: 213 bytes declaring 259x2 here
            // made OpenCV allocate 14895x12035 pixels (593 MB). Found by fuzzing.
            0x00 => return Err(corrupt("FF 00 where a marker segment should start")),
            0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                // Length (2), precision (1), height (2), width (2).
                let (h, w) = (be16(i + 3), be16(i + 5));
                return w.zip(h).ok_or_else(|| corrupt("frame header cut short"));
            }
            _ => i += be16(i).ok_or_else(|| corrupt("marker segment cut short"))?,
        }
    }
}

/// Decodes JPEG or PNG bytes strictly: a truncated stream is an error, not a grey image.
///
/// `format` is sensor_msgs/CompressedImage's field (`jpeg`, `png`, `bgr8; jpeg compressed bgr8`);
/// the bytes decide, the field only words the error.
pub fn decode_compressed(format: &str, data: &[u8], max_pixels: usize) -> Result<Frame> {
    let kind = match sniff(data) {
        Some(kind) => kind,
        None if format.contains("jpeg") || format.contains("png") || format.is_empty() => {
            let kind = if format.contains("png") { "png" } else { "jpeg" };
            return Err(Error::Corrupt { format: kind, detail: "no JPEG/PNG signature at the start".into() });
        }
        None => return Err(Error::UnsupportedFormat(format.to_string())),
    };
    // OpenCV 4.6 decodes a truncated JPEG to a grey-filled image with only a warning.
    let complete = match kind {
        "jpeg" => {
            let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            data[..end].ends_with(&[0xFF, 0xD9])
        }
        _ => data.len() >= 12 && data[data.len() - 12..].starts_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D']),
    };
    if !complete {
        let marker = if kind == "jpeg" { "end-of-image marker (FFD9)" } else { "IEND chunk" };
        return Err(Error::Corrupt { format: kind, detail: format!("truncated: no {marker} at the end") });
    }
    // The header's size is checked before any pixel is decoded: a tiny file can declare
    // 40000 x 40000 pixels, and OpenCV would allocate them all (its own limit is 2^30 pixels).
    let (w, h) = declared_size(kind, data)?;
    check_size(w, h, max_pixels)?;
    let buf = core::Vector::<u8>::from_slice(data);
    let bgr = imgcodecs::imdecode(&buf, imgcodecs::IMREAD_COLOR)?;
    if bgr.empty() {
        return Err(Error::Corrupt { format: kind, detail: "the decoder could not read it".into() });
    }
    if (bgr.cols() as usize, bgr.rows() as usize) != (w, h) {
        let detail = format!("decoded {}x{} but the header declares {w}x{h}", bgr.cols(), bgr.rows());
        return Err(Error::Corrupt { format: kind, detail });
    }
    let rgb = bgr.data_bytes()?.chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
    Ok(Frame { width: w, height: h, rgb })
}

/// Reads a JPEG or PNG file.
pub fn read_file(path: &Path, max_pixels: usize) -> Result<Frame> {
    let data = std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let format = match ext.as_str() {
        "jpg" | "jpeg" => "jpeg",
        "png" => "png",
        other => other,
    };
    decode_compressed(format, &data, max_pixels)
}

impl Frame {
    /// The frame as BGR bytes (OpenCV's order), for writing and rendering.
    pub fn to_bgr(&self) -> Vec<u8> {
        self.rgb.chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]]).collect()
    }
}

/// Decodes an input camera message (raw or compressed) to an RGB frame.
pub fn decode_msg(msg: &FrameMsg, max_pixels: usize) -> Result<Frame> {
    match msg {
        FrameMsg::Raw(m) => decode_raw(
            &RawImage {
                width: m.width,
                height: m.height,
                encoding: &m.encoding,
                is_bigendian: m.is_bigendian != 0,
                step: m.step,
                data: &m.data,
            },
            max_pixels,
        ),
        FrameMsg::Compressed(m) => decode_compressed(&m.format, &m.data, max_pixels),
    }
}
