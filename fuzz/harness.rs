//! The fuzz harnesses: one function per target, shared by the libFuzzer binaries
//! (`fuzz/fuzz_targets/*.rs`) and by `tests/fuzz_regressions.rs`, which replays the in-tree seeds
//! and every input a fuzzer ever found (`fuzz/regressions/<target>/`) through the same code.
//!
//! Each harness turns the fuzzer's bytes into one input of a reader the library exposes to the
//! outside world (a camera message, a bag, a parameter file), runs it, and panics only when the
//! library breaks a promise: a panic of its own, a result that contradicts the input (a decoded
//! frame of the wrong size, a CDR round trip that changes the message, a parameter silently
//! stored as another value), or an iterator that yields after its error. Errors are the expected
//! outcome for most inputs; their messages are formatted, so that `Display` is exercised too.

use std::path::{Path, PathBuf};

use pipeline_seg::engine::config::{Params, Settings, NODE_NAME};
use pipeline_seg::engine::gate::GateParams;
use pipeline_seg::engine::image::{declared_size, decode_compressed, decode_msg, decode_raw, RawImage};
use pipeline_seg::engine::sanity::SanityLimits;
use pipeline_seg::engine::score::{ScoreMethod, ScoreParams};
use pipeline_seg::io::bag_read;
use pipeline_seg::msg::cdr::{CdrMessage, CdrReader};
use pipeline_seg::msg::{Bool, CompressedImage, DiagnosticArray, DiagnosticStatus, Header, Image, KeyValue, Time};

/// The frame size limit the harnesses decode with: the parameter's default (4096 x 4096).
pub fn max_pixels() -> usize {
    Params::default().max_image_pixels
}

// ---------------------------------------------------------------------------------------------
// raw_image: sensor_msgs/Image pixel buffers of every encoding.

/// Every encoding the decoder knows (with cv_bridge's aliases), and a few it must refuse.
pub const ENCODINGS: &[&str] = &[
    "rgb8",
    "bgr8",
    "rgba8",
    "bgra8",
    "mono8",
    "8UC1",
    "mono16",
    "16UC1",
    "bayer_rggb8",
    "bayer_bggr8",
    "bayer_gbrg8",
    "bayer_grbg8",
    "yuv422",
    "uyvy",
    "UYVY",
    "yuv422_yuy2",
    "yuyv",
    "YUYV",
    "32FC1",
    "bgr16",
    "",
    "RGB8",
];

/// Bytes per pixel of the encodings the decoder must accept, `None` for the others.
fn bytes_per_pixel(encoding: &str) -> Option<usize> {
    Some(match encoding {
        "rgb8" | "bgr8" => 3,
        "rgba8" | "bgra8" => 4,
        "mono8" | "8UC1" | "bayer_rggb8" | "bayer_bggr8" | "bayer_gbrg8" | "bayer_grbg8" => 1,
        "mono16" | "16UC1" | "yuv422" | "uyvy" | "UYVY" | "yuv422_yuy2" | "yuyv" | "YUYV" => 2,
        _ => return None,
    })
}

/// The RGB a plain (non-OpenCV) layout must decode to, computed independently of the decoder.
fn reference_rgb(img: &RawImage) -> Option<Vec<u8>> {
    let (w, step) = (img.width as usize, img.step as usize);
    let bpp = bytes_per_pixel(img.encoding)?;
    let mut out = Vec::new();
    for row in img.data.chunks(step) {
        for p in row[..w * bpp].chunks(bpp) {
            let px = match img.encoding {
                "rgb8" => [p[0], p[1], p[2]],
                "bgr8" => [p[2], p[1], p[0]],
                "rgba8" => [p[0], p[1], p[2]],
                "bgra8" => [p[2], p[1], p[0]],
                "mono8" | "8UC1" => [p[0]; 3],
                "mono16" | "16UC1" => {
                    let v = if img.is_bigendian {
                        u16::from_be_bytes([p[0], p[1]])
                    } else {
                        u16::from_le_bytes([p[0], p[1]])
                    };
                    // cv_bridge: v / 256 rounded half to even, saturated.
                    let v = (v as f64 / 256.0).round_ties_even().min(255.0) as u8;
                    [v; 3]
                }
                _ => return None,
            };
            out.extend_from_slice(&px);
        }
    }
    Some(out)
}

/// `[encoding][flags][width u16][height u16][step u32][pixels...]`. Flags: bit 0 big-endian,
/// bit 1 step = pixel bytes / height (a consistent buffer), bit 2 width and height scaled by
/// 65536 (sizes the limit must refuse), bit 3 a 64-pixel limit instead of the default.
pub fn raw_image(data: &[u8]) {
    let Some((head, pixels)) = data.split_first_chunk::<10>() else { return };
    let encoding = ENCODINGS[head[0] as usize % ENCODINGS.len()];
    let flags = head[1];
    let mut width = u16::from_le_bytes([head[2], head[3]]) as u32;
    let mut height = u16::from_le_bytes([head[4], head[5]]) as u32;
    let mut step = u32::from_le_bytes([head[6], head[7], head[8], head[9]]);
    if flags & 4 != 0 {
        width = width.saturating_mul(65536);
        height = height.saturating_mul(65536);
    }
    let mut pixels = pixels;
    if flags & 2 != 0 && height > 0 {
        step = u32::try_from(pixels.len() / height as usize).unwrap_or(u32::MAX);
        pixels = &pixels[..step as usize * height as usize];
    }
    let max = if flags & 8 != 0 { 64 } else { max_pixels() };
    let img = RawImage { width, height, encoding, is_bigendian: flags & 1 != 0, step, data: pixels };
    let (w, h) = (width as usize, height as usize);
    // The input is valid when the encoding is known and size, step and length agree.
    let valid = bytes_per_pixel(encoding).is_some_and(|bpp| {
        w > 0
            && h > 0
            && w * h <= max
            && step as usize >= w * bpp
            && step as usize * h == pixels.len()
            && (bpp != 2 || w % 2 == 0 || encoding.starts_with("mono") || encoding == "16UC1")
    });
    match decode_raw(&img, max) {
        Ok(frame) => {
            assert!(valid, "{encoding} {w}x{h} step {step}, {} bytes: decoded, but is invalid", pixels.len());
            assert_eq!((frame.width, frame.height), (w, h), "{encoding}: decoded frame size");
            assert_eq!(frame.rgb.len(), w * h * 3, "{encoding}: decoded RGB length");
            if let Some(expected) = reference_rgb(&img) {
                assert!(frame.rgb == expected, "{encoding} {w}x{h} step {step}: pixels differ from the reference");
            }
        }
        Err(e) => {
            assert!(!valid, "{encoding} {w}x{h} step {step}, {} bytes: valid input refused: {e}", pixels.len());
            let _ = e.to_string();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// compressed_image: sensor_msgs/CompressedImage (JPEG, PNG) bytes.

/// `format` fields a CompressedImage may carry; the bytes decide, the field only words errors.
pub const FORMATS: &[&str] = &["jpeg", "png", "", "bgr8; jpeg compressed bgr8", "rgb8; png compressed bgr8", "tiff"];

/// `[format][compressed bytes...]`.
pub fn compressed_image(data: &[u8]) {
    let Some((&sel, bytes)) = data.split_first() else { return };
    let format = FORMATS[sel as usize % FORMATS.len()];
    for kind in ["jpeg", "png"] {
        let _ = declared_size(kind, bytes);
    }
    let max = max_pixels();
    match decode_compressed(format, bytes, max) {
        Ok(frame) => {
            let (w, h) = (frame.width, frame.height);
            assert!(w > 0 && h > 0 && w * h <= max, "decoded {w}x{h}, limit {max}");
            assert_eq!(frame.rgb.len(), w * h * 3, "decoded RGB length of {w}x{h}");
            let kind = if bytes.starts_with(&[0xFF, 0xD8]) { "jpeg" } else { "png" };
            let declared = declared_size(kind, bytes).expect("decoded, so the header was read");
            assert_eq!(declared, (w, h), "decoded size differs from the header's");
        }
        Err(e) => {
            // The header check must read the size the decoder decodes: if they disagree, the
            // decoder allocated a size nobody checked. (A JPEG whose Exif orientation turns it
            // is decoded turned, and refused with this error rightly.)
            let text = e.to_string();
            let exif = bytes.windows(6).any(|w| w == b"Exif\0\0");
            assert!(
                !text.contains("but the header declares") || exif,
                "the header check and the decoder disagree: {text}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// cdr: every message type the library decodes.

/// Decodes `buf` as `T`; a message that decodes must encode and decode back to itself.
fn cdr_round_trip<T: CdrMessage + PartialEq + std::fmt::Debug>(buf: &[u8]) -> Option<T> {
    match T::decode(buf) {
        Ok(msg) => {
            let again = T::decode(&msg.encode())
                .unwrap_or_else(|e| panic!("{}: re-encoded message does not decode: {e}", T::TYPE_NAME));
            assert_eq!(again, msg, "{}: round trip changed the message", T::TYPE_NAME);
            Some(msg)
        }
        Err(e) => {
            let _ = e.to_string();
            None
        }
    }
}

/// `[type][message...]`: Image, CompressedImage, Bool, DiagnosticArray, their nested types, and
/// (type 8) a reader driven by op codes `[8][n][n op codes][message...]`. Image and
/// CompressedImage messages that decode are decoded to frames as the node and `replay` do.
pub fn cdr(data: &[u8]) {
    let Some((&sel, msg)) = data.split_first() else { return };
    match sel % 9 {
        0 => {
            if let Some(m) = cdr_round_trip::<Image>(msg) {
                let _ = decode_msg(&pipeline_seg::msg::FrameMsg::Raw(m), max_pixels());
            }
        }
        1 => {
            if let Some(m) = cdr_round_trip::<CompressedImage>(msg) {
                let _ = decode_msg(&pipeline_seg::msg::FrameMsg::Compressed(m), max_pixels());
            }
        }
        2 => drop(cdr_round_trip::<Bool>(msg)),
        3 => drop(cdr_round_trip::<DiagnosticArray>(msg)),
        4 => drop(cdr_round_trip::<DiagnosticStatus>(msg)),
        5 => drop(cdr_round_trip::<KeyValue>(msg)),
        6 => drop(cdr_round_trip::<Header>(msg)),
        7 => drop(cdr_round_trip::<Time>(msg)),
        _ => {
            let Some((&n, rest)) = msg.split_first() else { return };
            let n = (n as usize % 16).min(rest.len());
            let (ops, buf) = rest.split_at(n);
            let Ok(mut r) = CdrReader::new(buf) else { return };
            for &op in ops {
                let before = r.offset();
                let ok = match op % 11 {
                    0 => r.read_u8("u8").is_ok(),
                    1 => r.read_i8("i8").is_ok(),
                    2 => r.read_u16("u16").is_ok(),
                    3 => r.read_u32("u32").is_ok(),
                    4 => r.read_i32("i32").is_ok(),
                    5 => r.read_u64("u64").is_ok(),
                    6 => r.read_f32("f32").is_ok(),
                    7 => r.read_f64("f64").is_ok(),
                    8 => r.read_bool("bool").is_ok(),
                    9 => r.read_bytes("bytes").is_ok(),
                    _ => r.read_string("string").is_ok(),
                };
                assert!(r.offset() >= before, "the reader moved backwards");
                if ok {
                    assert!(r.offset() <= buf.len(), "a read succeeded past the end");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// bag: rosbag2 bags, MCAP and SQLite, directory and single file.

/// A scratch directory of this thread, emptied for each input (one per thread: the regression
/// tests run in parallel). Directories of processes that are gone are removed.
fn scratch() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static DIR: PathBuf = {
            let root = std::env::temp_dir().join("pipeline_seg_fuzz");
            if let Ok(entries) = std::fs::read_dir(&root) {
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let pid = name.split('-').next().and_then(|p| p.parse::<u32>().ok());
                    if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
            root.join(format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)))
        };
    }
    let dir = DIR.with(|d| d.clone());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// Splits `data` at a little-endian u16 length prefix: (first part, rest).
fn split_u16(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<2>() else { return (&[], data) };
    rest.split_at((u16::from_le_bytes(*len) as usize).min(rest.len()))
}

/// `[layout][...]`, layout % 6: 0 a single `.mcap` file, 1 a single `.db3` file, 2 a directory
/// with `metadata.yaml` and `bag_0.{mcap,db3}` (`[yaml length u16][yaml][file]`), 3 the same
/// opened by its `metadata.yaml`, 4 a directory without metadata holding `bag_0.{mcap,db3}`, 5
/// the same with two files (`[first length u16][bag_0][bag_1]`). layout / 6 odd: `.db3` files in
/// 2..5. Every message of every topic is read and decoded to a frame.
pub fn bag(data: &[u8]) {
    let Some((&layout, rest)) = data.split_first() else { return };
    let dir = scratch();
    let ext = if (layout / 6) % 2 == 1 { "db3" } else { "mcap" };
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(dir.join(name), bytes).expect("write scratch file");
        dir.join(name)
    };
    let path = match layout % 6 {
        0 => write("fuzz.mcap", rest),
        1 => write("fuzz.db3", rest),
        l @ (2 | 3) => {
            let (yaml, file) = split_u16(rest);
            let meta = write("metadata.yaml", yaml);
            write(&format!("bag_0.{ext}"), file);
            if l == 2 {
                dir.clone()
            } else {
                meta
            }
        }
        4 => {
            write(&format!("bag_0.{ext}"), rest);
            dir.clone()
        }
        _ => {
            let (first, second) = split_u16(rest);
            write(&format!("bag_0.{ext}"), first);
            write(&format!("bag_1.{ext}"), second);
            dir.clone()
        }
    };
    read_bag(&path);
}

/// Opens a bag and reads it through: every message decoded to a frame, and after an error,
/// nothing.
pub fn read_bag(path: &Path) {
    let bag = match bag_read::open(path) {
        Ok(bag) => bag,
        Err(e) => {
            let _ = (e.to_string(), e.path());
            return;
        }
    };
    let _ = bag.topics();
    let mut messages = bag.messages(&[]);
    while let Some(next) = messages.next() {
        match next {
            Ok(msg) => match bag_read::decode_frame(&msg) {
                Ok(frame) => {
                    let _ = decode_msg(&frame, max_pixels());
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            },
            Err(e) => {
                let _ = (e.to_string(), e.path());
                assert!(messages.next().is_none(), "the bag reader yielded after its error: {e}");
                break;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// config: the ROS 2 parameter file of `--config` and the node.

/// Valid settings, as a model's metadata would give them.
fn base_settings() -> Settings {
    Settings {
        samples: 16,
        min_samples: 4,
        anytime_z: 3.0,
        seed: 0,
        score: ScoreParams { method: ScoreMethod::Mean, pixel_threshold: 0.5, band_px: 8 },
        gate: GateParams { threshold_high: 0.3, threshold_low: 0.2, recover_frames: 3 },
        trust: None,
        min_pipeline_fraction: 0.005,
        max_image_pixels: 4096 * 4096,
        sanity: SanityLimits::default(),
        review_min_interval: std::time::Duration::from_secs(10),
    }
}

/// The integer parameters and where [`Params`] keeps them, for the "stored as given" check.
fn stored_uint(p: &Params, name: &str) -> Option<u64> {
    Some(match name {
        "samples" => p.samples? as u64,
        "min_samples" => p.min_samples as u64,
        "seed" => p.seed,
        "intra_threads" => p.intra_threads as u64,
        "gpu_device_id" => p.gpu_device_id as u64,
        "band_px" => p.band_px? as u64,
        "recover_frames" => p.recover_frames? as u64,
        "max_image_pixels" => p.max_image_pixels as u64,
        _ => return None,
    })
}

/// The file's bytes as a parameter file: applied to the defaults, then resolved over valid
/// settings. A file that applies must hold each integer parameter as written, and resolved
/// settings must pass validation.
pub fn config(data: &[u8]) {
    let path = scratch().join("params.yaml");
    std::fs::write(&path, data).expect("write scratch file");
    let mut params = Params::default();
    if let Err(e) = params.apply_file(&path) {
        let _ = e.to_string();
        return;
    }
    // The file applied, so it is YAML with a ros__parameters map: read it back independently.
    let text = std::str::from_utf8(data).expect("applied, so UTF-8");
    let doc: serde_yaml::Value = serde_yaml::from_str(text).expect("applied, so YAML");
    let section = [NODE_NAME, "/**"]
        .iter()
        .find_map(|node| doc.get(*node).and_then(|n| n.get("ros__parameters")))
        .expect("applied, so it has ros__parameters");
    if let Some(map) = section.as_mapping() {
        for (k, v) in map {
            let (Some(name), Some(given)) = (k.as_str(), v.as_u64()) else { continue };
            if let Some(stored) = stored_uint(&params, name) {
                assert_eq!(stored, given, "{name}: the file says {given}, the parameter holds {stored}");
            }
        }
    }
    match params.resolve_over(&base_settings()) {
        Ok(settings) => settings.validate().expect("resolved settings validate"),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
