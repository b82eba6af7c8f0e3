//! Decoding of raw sensor_msgs/Image buffers and compressed images. Raw inputs are built by
//! hand here (byte patterns), never with OpenCV, so a wrong channel order, Bayer mapping, YUV
//! formula or step handling in `image.rs` shows up as wrong RGB values.

use std::path::{Path, PathBuf};

use pipeline_seg::engine::image::{decode_compressed, decode_raw, read_file, Frame, RawImage};
use pipeline_seg::Error;

const MAX: usize = 1 << 24;

fn decode(w: u32, h: u32, encoding: &str, step: u32, data: &[u8]) -> pipeline_seg::Result<Frame> {
    decode_raw(&RawImage { width: w, height: h, encoding, is_bigendian: false, step, data }, MAX)
}

/// Packed buffer, `bpp` bytes per pixel, byte `i` of pixel (x, y) from `f(x, y, i)`.
fn pattern(w: usize, h: usize, bpp: usize, f: impl Fn(usize, usize, usize) -> u8) -> Vec<u8> {
    (0..h)
        .flat_map(|y| (0..w).flat_map(move |x| (0..bpp).map(move |i| (x, y, i))))
        .map(|(x, y, i)| f(x, y, i))
        .collect()
}

/// A distinct value for each (pixel, channel) of a small image.
fn val(x: usize, y: usize, i: usize) -> u8 {
    (10 + 50 * y + 11 * x + 3 * i) as u8
}

/// Copies packed rows into rows of `step` bytes, the padding filled with garbage.
fn pad(packed: &[u8], row: usize, step: usize) -> Vec<u8> {
    packed
        .chunks_exact(row)
        .flat_map(|r| r.iter().copied().chain((0..step - row).map(|k| (0xA5 ^ (k * 37)) as u8)))
        .collect()
}

fn pixel(f: &Frame, x: usize, y: usize) -> [u8; 3] {
    let i = 3 * (y * f.width + x);
    [f.rgb[i], f.rgb[i + 1], f.rgb[i + 2]]
}

fn assert_close(got: [u8; 3], want: [f64; 3], tol: f64, what: &str) {
    for c in 0..3 {
        assert!((got[c] as f64 - want[c]).abs() <= tol, "{what}: got {got:?}, want {want:?} ±{tol}");
    }
}

#[test]
fn packed_colour_encodings_give_rgb_in_the_right_channel_order() {
    let (w, h) = (4, 3);
    // (encoding, bytes per pixel, byte index of R, G, B within a pixel)
    for (enc, bpp, order) in
        [("rgb8", 3, [0, 1, 2]), ("bgr8", 3, [2, 1, 0]), ("rgba8", 4, [0, 1, 2]), ("bgra8", 4, [2, 1, 0])]
    {
        let data = pattern(w, h, bpp, val);
        let f = decode(w as u32, h as u32, enc, (w * bpp) as u32, &data).unwrap();
        assert_eq!((f.width, f.height, f.rgb.len()), (w, h, w * h * 3), "{enc}");
        for (y, x) in (0..h).flat_map(|y| (0..w).map(move |x| (y, x))) {
            assert_eq!(pixel(&f, x, y), order.map(|i| val(x, y, i)), "{enc} pixel ({x},{y})");
        }
    }
}

#[test]
fn mono8_is_grey() {
    let data = pattern(4, 3, 1, val);
    let f = decode(4, 3, "mono8", 4, &data).unwrap();
    for (y, x) in (0..3).flat_map(|y| (0..4).map(move |x| (y, x))) {
        assert_eq!(pixel(&f, x, y), [val(x, y, 0); 3]);
    }
}

#[test]
fn mono16_scales_by_1_256_with_rounding_in_both_endiannesses() {
    let (w, h) = (4, 3);
    let v16 = |x: usize, y: usize| ((val(x, y, 0) as u16) << 8) | (0x7F ^ (x * 29 + y * 7) as u16 & 0xFF);
    for big in [true, false] {
        let data = pattern(w, h, 2, |x, y, i| {
            let b = if big { v16(x, y).to_be_bytes() } else { v16(x, y).to_le_bytes() };
            b[i]
        });
        let f = decode_raw(
            &RawImage { width: 4, height: 3, encoding: "mono16", is_bigendian: big, step: 8, data: &data },
            MAX,
        )
        .unwrap();
        for (y, x) in (0..h).flat_map(|y| (0..w).map(move |x| (y, x))) {
            // cv_bridge: convertTo(scale 1/256) rounds half to even and saturates.
            let v = v16(x, y) as f64 / 256.0;
            let r = v.round();
            let want =
                (if (v - v.floor() - 0.5).abs() < 1e-12 && r % 2.0 == 1.0 { r - 1.0 } else { r }).min(255.0) as u8;
            assert_eq!(pixel(&f, x, y), [want; 3], "big endian {big}, pixel ({x},{y})");
        }
    }
}

const FLAT: [u8; 3] = [200, 100, 30];

/// A mosaic of a flat colour; `order` names the 2×2 tile row by row (rggb: R G / G B).
fn bayer(order: &str, w: usize, h: usize, rgb: [u8; 3]) -> Vec<u8> {
    let tile = order.as_bytes();
    pattern(w, h, 1, |x, y, _| match tile[(y % 2) * 2 + x % 2] {
        b'r' => rgb[0],
        b'g' => rgb[1],
        _ => rgb[2],
    })
}

#[test]
fn bayer_flat_colour_decodes_to_that_colour_in_all_four_orders() {
    // Every pixel, borders included: OpenCV's demosaicing replicates the interior to the
    // border, so a flat mosaic stays flat. A swapped OpenCV code (its names describe the second
    // row) would swap R and B or mix G into them.
    let (w, h) = (8, 6);
    for order in ["rggb", "bggr", "gbrg", "grbg"] {
        let enc = format!("bayer_{order}8");
        let f = decode(w as u32, h as u32, &enc, w as u32, &bayer(order, w, h, FLAT)).unwrap();
        assert_eq!((f.width, f.height), (w, h));
        for (y, x) in (0..h).flat_map(|y| (0..w).map(move |x| (y, x))) {
            assert_close(pixel(&f, x, y), FLAT.map(f64::from), 1.0, &format!("{enc} pixel ({x},{y})"));
        }
    }
}

/// OpenCV 4.6 converts YUV 4:2:2 (COLOR_YUV2RGB_UYVY / _YUY2) with BT.601 *video range*
/// (Y 16..235, UV 16..240) — `ITUR_BT_601_C*` in color_yuv.simd.hpp — not the full-range
/// formula of COLOR_YUV2RGB. The decoded numbers confirm it: Y=50, U=V=128 gives 40
/// (1.164·34), not 50.
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [f64; 3] {
    let (y, u, v) = (1.164 * (y as f64 - 16.0), u as f64 - 128.0, v as f64 - 128.0);
    [y + 1.596 * v, y - 0.391 * u - 0.813 * v, y + 2.018 * u].map(|c| c.round().clamp(0.0, 255.0))
}

/// Pixel pairs (Y0, Y1, U, V) laid out as UYVY (`uyvy`) or YUYV (`yuy2`).
fn yuv422(pairs: &[[u8; 4]], uyvy: bool) -> Vec<u8> {
    pairs.iter().flat_map(|&[y0, y1, u, v]| if uyvy { [u, y0, v, y1] } else { [y0, u, y1, v] }).collect()
}

const PAIRS: [[u8; 4]; 4] = [[50, 200, 128, 128], [120, 90, 60, 200], [180, 30, 220, 40], [16, 235, 128, 128]];

#[test]
fn yuv422_both_byte_orders_decode_with_bt601_video_range() {
    for (encs, uyvy) in [(["yuv422", "uyvy"], true), (["yuv422_yuy2", "yuyv"], false)] {
        for enc in encs {
            // 4x2 image: row 0 = pairs 0, 1; row 1 = pairs 2, 3.
            let f = decode(4, 2, enc, 8, &yuv422(&PAIRS, uyvy)).unwrap();
            for (k, &[y0, y1, u, v]) in PAIRS.iter().enumerate() {
                let (x, y) = (2 * (k % 2), k / 2);
                assert_close(pixel(&f, x, y), yuv_to_rgb(y0, u, v), 2.0, &format!("{enc} pair {k} first"));
                assert_close(pixel(&f, x + 1, y), yuv_to_rgb(y1, u, v), 2.0, &format!("{enc} pair {k} second"));
            }
            // Neutral chroma is grey (50 -> 40, 200 -> 214); 16 is black and 235 white.
            assert_eq!(pixel(&f, 0, 0), [40; 3], "{enc}");
            assert_eq!(pixel(&f, 1, 0), [214; 3], "{enc}");
            assert_eq!(pixel(&f, 2, 1), [0; 3], "{enc}");
            assert_eq!(pixel(&f, 3, 1), [255; 3], "{enc}");
        }
    }
}

#[test]
fn step_padding_with_garbage_gives_the_packed_result() {
    let (w, h) = (8usize, 6usize);
    let cases: Vec<(&str, usize, Vec<u8>)> = vec![
        ("rgb8", 3, pattern(w, h, 3, val)),
        ("bgra8", 4, pattern(w, h, 4, val)),
        ("mono8", 1, pattern(w, h, 1, val)),
        ("mono16", 2, pattern(w, h, 2, val)),
        ("bayer_grbg8", 1, bayer("grbg", w, h, FLAT)),
        ("bayer_rggb8", 1, pattern(w, h, 1, val)),
        ("yuv422", 2, yuv422(&[PAIRS; 6].concat(), true)),
        ("yuv422_yuy2", 2, yuv422(&[PAIRS; 6].concat(), false)),
    ];
    for (enc, bpp, packed) in cases {
        let row = w * bpp;
        let want = decode(w as u32, h as u32, enc, row as u32, &packed).unwrap();
        for extra in [1, 5, 64] {
            let got = decode(w as u32, h as u32, enc, (row + extra) as u32, &pad(&packed, row, row + extra)).unwrap();
            assert_eq!(got, want, "{enc} with {extra} padding bytes per row");
        }
    }
}

fn expect_geometry(r: pipeline_seg::Result<Frame>, words: &[&str]) {
    match r {
        Err(e @ Error::BadGeometry(_)) => {
            let msg = e.to_string();
            assert!(words.iter().all(|w| msg.contains(w)), "message '{msg}' should name {words:?}");
        }
        other => panic!("expected BadGeometry naming {words:?}, got {other:?}"),
    }
}

#[test]
fn inconsistent_geometry_is_a_typed_error_naming_the_problem() {
    let data = vec![0u8; 4 * 3 * 3];
    expect_geometry(decode(4, 3, "rgb8", 12, &data[..35]), &["35 bytes", "step 12"]);
    expect_geometry(decode(4, 3, "rgb8", 12, &[data.clone(), vec![0]].concat()), &["37 bytes", "step 12"]);
    expect_geometry(decode(4, 3, "rgb8", 11, &data[..33]), &["step 11", "12"]);
    expect_geometry(decode(4, 3, "mono16", 7, &data[..21]), &["step 7", "8"]);
    expect_geometry(decode(0, 3, "rgb8", 0, &[]), &["0x3"]);
    expect_geometry(decode(4, 0, "mono8", 4, &[]), &["4x0"]);
    expect_geometry(decode(3, 2, "yuv422", 6, &[128; 12]), &["yuv422", "even width"]);
    expect_geometry(decode(3, 2, "yuv422_yuy2", 6, &[128; 12]), &["even width"]);
}

#[test]
fn too_many_pixels_is_rejected_before_decoding() {
    let data = vec![0u8; 100 * 50];
    let r = decode_raw(
        &RawImage { width: 100, height: 50, encoding: "mono8", is_bigendian: false, step: 100, data: &data },
        4999,
    );
    match r {
        Err(e @ Error::TooLarge { pixels: 5000, max: 4999, .. }) => assert!(e.to_string().contains("max_image_pixels")),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(decode_raw(
        &RawImage { width: 100, height: 50, encoding: "mono8", is_bigendian: false, step: 100, data: &data },
        5000
    )
    .is_ok());
}

#[test]
fn unsupported_encodings_are_named_with_the_supported_list() {
    for enc in ["yuv420", "32FC1", "bayer_rggb16", ""] {
        match decode(4, 2, enc, 16, &[0; 32]) {
            Err(e @ Error::UnsupportedEncoding(_)) => {
                let msg = e.to_string();
                assert!(msg.contains(&format!("'{enc}'")), "{msg}");
                for known in ["rgb8", "mono16", "bayer_gbrg8", "yuv422_yuy2"] {
                    assert!(msg.contains(known), "'{msg}' should list {known}");
                }
            }
            other => panic!("{enc}: expected UnsupportedEncoding, got {other:?}"),
        }
    }
}

fn data_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

fn jpeg_bytes() -> Vec<u8> {
    std::fs::read(data_file("frames/val/image/00000.jpg")).unwrap()
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pipeline_seg_decode_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn expect_corrupt(r: pipeline_seg::Result<Frame>, what: &str) {
    assert!(
        matches!(r, Err(Error::Corrupt { .. })),
        "{what}: expected Corrupt, got {:?}",
        r.map(|f| (f.width, f.height))
    );
}

#[test]
fn real_jpeg_decodes_and_read_file_agrees() {
    let f = decode_compressed("jpeg", &jpeg_bytes(), MAX).unwrap();
    assert_eq!((f.width, f.height, f.rgb.len()), (640, 480, 640 * 480 * 3));
    let distinct: std::collections::HashSet<_> = f.rgb.chunks_exact(3).collect();
    assert!(distinct.len() > 1000, "a real frame, not a flat fill ({} colours)", distinct.len());
    assert_eq!(read_file(&data_file("frames/val/image/00000.jpg"), MAX).unwrap(), f);
    // The bytes decide, not the format field.
    assert_eq!(decode_compressed("bgr8; jpeg compressed bgr8", &jpeg_bytes(), MAX).unwrap(), f);
    assert!(matches!(decode_compressed("jpeg", &jpeg_bytes(), 640 * 480 - 1), Err(Error::TooLarge { .. })));
}

#[test]
fn truncated_jpeg_is_corrupt_not_a_grey_image() {
    let data = jpeg_bytes();
    expect_corrupt(decode_compressed("jpeg", &data[..data.len() / 2], MAX), "cut at half");
    expect_corrupt(decode_compressed("jpeg", &data[..data.len() - 1], MAX), "last byte missing");
    expect_corrupt(
        decode_compressed("jpeg", &[&data[..data.len() / 2], &[0u8; 64][..]].concat(), MAX),
        "cut, zero padded",
    );
}

#[test]
fn jpeg_with_trailing_zero_padding_still_decodes() {
    let data = jpeg_bytes();
    let want = decode_compressed("jpeg", &data, MAX).unwrap();
    let padded = [&data[..], &[0u8; 37][..]].concat();
    assert_eq!(decode_compressed("jpeg", &padded, MAX).unwrap(), want);
}

#[test]
fn png_round_trips_exactly_and_truncated_png_is_an_error() {
    let (w, h) = (7, 5);
    let rgb = pattern(w, h, 3, val);
    let bgr: Vec<u8> = rgb.chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
    let path = temp_path("round_trip.png");
    pipeline_seg::view::render::write_png(&path, &bgr, w, h, 3).unwrap();
    let f = read_file(&path, MAX).unwrap();
    assert_eq!(f, Frame { width: w, height: h, rgb });
    let data = std::fs::read(&path).unwrap();
    assert_eq!(decode_compressed("png", &data, MAX).unwrap(), f);
    expect_corrupt(decode_compressed("png", &data[..data.len() / 2], MAX), "png cut at half");
    expect_corrupt(decode_compressed("png", &data[..data.len() - 4], MAX), "png without IEND CRC");
    // A grey PNG from the data set decodes to three equal channels.
    let mask = read_file(&data_file("frames/val/mask/00000.png"), MAX).unwrap();
    assert!(mask.rgb.chunks_exact(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    std::fs::remove_file(path).ok();
}

#[test]
fn garbage_and_unknown_formats_are_errors() {
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    for format in ["jpeg", "png", ""] {
        expect_corrupt(decode_compressed(format, &garbage, MAX), format);
    }
    // JPEG signature and end marker around garbage.
    let framed = [&[0xFF, 0xD8][..], &garbage, &[0xFF, 0xD9]].concat();
    assert!(decode_compressed("jpeg", &framed, MAX).is_err(), "framed garbage must not decode");
    let bmp = [b"BM".as_slice(), &[0u8; 60]].concat();
    assert!(matches!(decode_compressed("bmp", &bmp, MAX), Err(Error::UnsupportedFormat(f)) if f == "bmp"));
    let path = temp_path("frame.bmp");
    std::fs::write(&path, &bmp).unwrap();
    assert!(matches!(read_file(&path, MAX), Err(Error::UnsupportedFormat(_))));
    std::fs::remove_file(path).ok();
    assert!(matches!(decode_compressed("jpeg", &[], MAX), Err(Error::Corrupt { .. })));
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let path = temp_path("does_not_exist.jpg");
    match read_file(&path, MAX) {
        Err(e @ Error::Io { .. }) => assert!(e.to_string().contains("does_not_exist.jpg")),
        other => panic!("expected Io, got {:?}", other.map(|f| f.width)),
    }
}

#[test]
fn mono16_rounding_matches_cv_bridge_at_the_edges() {
    // Hand-computed: 0x12FF/256 = 18.996 -> 19; 0x1280 = 18.5 -> 18 (even); 0x1380 = 19.5 -> 20;
    // 0xFFFF = 255.996 -> saturates at 255; 0x007F -> 0.
    for (v, want) in [(0x12FFu16, 19u8), (0x1280, 18), (0x1380, 20), (0xFFFF, 255), (0x007F, 0)] {
        assert_eq!(pipeline_seg::engine::image::mono16_to_8(v), want, "{v:#06x}");
    }
}

/// A PNG of `w` x `h` 8-bit grey pixels whose IDAT holds almost nothing: what a hostile sender
/// needs to make a decoder allocate `w * h` bytes from a file of a few dozen.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], body: &[u8]| {
        v.extend_from_slice(&(body.len() as u32).to_be_bytes());
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v.extend_from_slice(&[0; 4]); // CRC: never reached, the size is refused first
    };
    chunk(b"IHDR", &[&w.to_be_bytes()[..], &h.to_be_bytes(), &[8, 0, 0, 0, 0]].concat());
    chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00]);
    chunk(b"IEND", &[]);
    v
}

/// The real JPEG with the frame header's size rewritten: a valid stream that declares `w` x `h`.
fn jpeg_declaring(w: u16, h: u16) -> Vec<u8> {
    let mut data = jpeg_bytes();
    let sof = data.windows(2).position(|m| m[0] == 0xFF && matches!(m[1], 0xC0 | 0xC2)).expect("a SOF marker");
    data[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    data[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    data
}

#[test]
fn huge_declared_sizes_are_refused_before_decoding() {
    use pipeline_seg::engine::image::declared_size;
    for (w, h) in [(20000u32, 20000u32), (40000, 40000), (65535, 65535)] {
        let png = png_header_only(w, h);
        assert_eq!(declared_size("png", &png).unwrap(), (w as usize, h as usize));
        match decode_compressed("png", &png, MAX) {
            Err(Error::TooLarge { width, height, .. }) => assert_eq!((width, height), (w as usize, h as usize)),
            other => panic!("png {w}x{h}: expected TooLarge, got {:?}", other.map(|f| (f.width, f.height))),
        }
        let jpeg = jpeg_declaring(w.min(65535) as u16, h.min(65535) as u16);
        match decode_compressed("jpeg", &jpeg, MAX) {
            Err(Error::TooLarge { width, height, .. }) => assert_eq!((width, height), (w as usize, h as usize)),
            other => panic!("jpeg {w}x{h}: expected TooLarge, got {:?}", other.map(|f| (f.width, f.height))),
        }
    }
}

#[test]
fn declared_size_matches_what_the_decoder_gives() {
    use pipeline_seg::engine::image::declared_size;
    assert_eq!(declared_size("jpeg", &jpeg_bytes()).unwrap(), (640, 480));
    for dir in ["frames/val/image", "frames/val/mask", "frames/ood/image"] {
        for entry in std::fs::read_dir(data_file(dir)).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let kind = if bytes.starts_with(b"\x89PNG") { "png" } else { "jpeg" };
            let f = read_file(&path, MAX).unwrap();
            assert_eq!(declared_size(kind, &bytes).unwrap(), (f.width, f.height), "{}", path.display());
        }
    }
}

#[test]
fn headers_without_a_size_are_corrupt() {
    // SOI then straight to the scan, or a segment length running off the end.
    expect_corrupt(decode_compressed("jpeg", &[0xFF, 0xD8, 0xFF, 0xDA, 0, 2, 0xFF, 0xD9], MAX), "no SOF");
    expect_corrupt(decode_compressed("jpeg", &[0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xF0, 0xFF, 0xD9], MAX), "long APP0");
    expect_corrupt(decode_compressed("jpeg", &[0xFF, 0xD8, 0xFF, 0xC0, 0, 17, 8, 0xFF, 0xD9], MAX), "short SOF");
    let mut png = png_header_only(4, 4);
    png[12..16].copy_from_slice(b"IDAT");
    expect_corrupt(decode_compressed("png", &png, MAX), "no IHDR");
}
