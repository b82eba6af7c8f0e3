//! The fuzzers' findings, kept (issue 13): every input in `fuzz/regressions/<target>/` (each a
//! crash, panic, hang or broken promise a fuzzer found, fixed since) and every in-tree seed in
//! `fuzz/seeds/<target>/` runs through the same harness as the fuzz target (`fuzz/harness.rs`),
//! which panics if the library breaks a promise again. The label reader's inputs run through
//! `fuzz/fuzz_labels.py --replay` (the venv's python3, no atheris needed). Fuzzing itself is
//! `make fuzz` (README.md "Fuzzing").
#![allow(clippy::disallowed_methods, reason = "a test thread needs no name")]

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files of `fuzz/<kind>/<target>/`, sorted (none if the directory does not exist).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind).join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// Runs every seed and regression input of `target` through `harness`, naming the file that fails.
fn replay(target: &str, harness: fn(&[u8])) {
    let files: Vec<PathBuf> = inputs("seeds", target).into_iter().chain(inputs("regressions", target)).collect();
    assert!(!inputs("seeds", target).is_empty(), "no seeds in fuzz/seeds/{target}/");
    for file in files {
        let data = std::fs::read(&file).unwrap();
        if let Err(panic) = std::panic::catch_unwind(|| harness(&data)) {
            let why = panic.downcast_ref::<String>().map(String::as_str).or(panic.downcast_ref::<&str>().copied());
            panic!("{}: {}", file.display(), why.unwrap_or("panicked"));
        }
    }
}

#[test]
fn raw_image_inputs() {
    replay("raw_image", harness::raw_image);
}

#[test]
fn compressed_image_inputs() {
    replay("compressed_image", harness::compressed_image);
}

#[test]
fn cdr_inputs() {
    replay("cdr", harness::cdr);
}

#[test]
fn bag_inputs() {
    replay("bag", harness::bag);
}

#[test]
fn config_inputs() {
    replay("config", harness::config);
}

#[test]
fn label_reader_inputs() {
    let files: Vec<PathBuf> = inputs("seeds", "labels").into_iter().chain(inputs("regressions", "labels")).collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_labels.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg("--replay")
        .args(&files)
        .output()
        .expect("python3 not found: `source scripts/env.sh` first");
    assert!(
        out.status.success(),
        "fuzz/fuzz_labels.py --replay failed (needs the venv's cv2 and numpy: `source scripts/env.sh`):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Findings, each also as a named test of what the library now says.

/// One MCAP record: opcode, u64 length, body.
fn mcap_record(opcode: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![opcode];
    r.extend_from_slice(&(body.len() as u64).to_le_bytes());
    r.extend_from_slice(body);
    r
}

/// An MCAP string: u32 length, bytes.
fn mcap_string(s: &str) -> Vec<u8> {
    let mut r = (s.len() as u32).to_le_bytes().to_vec();
    r.extend_from_slice(s.as_bytes());
    r
}

/// An uncompressed MCAP chunk record holding `records`.
fn mcap_chunk(records: &[u8]) -> Vec<u8> {
    let len = (records.len() as u64).to_le_bytes();
    let body =
        [&7u64.to_le_bytes()[..], &7u64.to_le_bytes(), &len, &0u32.to_le_bytes(), &mcap_string(""), &len, records];
    mcap_record(0x06, &body.concat())
}

/// A message record on channel 1 holding `data`.
fn mcap_message(data: &[u8]) -> Vec<u8> {
    mcap_record(
        0x05,
        &[&1u16.to_le_bytes()[..], &0u32.to_le_bytes(), &7u64.to_le_bytes(), &7u64.to_le_bytes(), data].concat(),
    )
}

/// `bag` found (libFuzzer, 45 s): a record inside an uncompressed MCAP chunk that runs past the
/// chunk's end made mcap 0.26's reader underflow its count of the chunk's bytes left: a panic
/// with overflow checks; in the shipped release build the count wraps, the reader reads the
/// records after the chunk as the chunk's, and the messages of a later chunk were lost without
/// an error. The bag reader now ends the file with an error naming the chunk, after the
/// messages before it (fuzz/regressions/bag/ holds the fuzzer's input).
#[test]
fn mcap_record_running_past_its_chunk_ends_the_file_with_an_error() {
    const MAGIC: &[u8] = b"\x89MCAP0\r\n";
    let schema = [
        &1u16.to_le_bytes()[..],
        &mcap_string("std_msgs/msg/Bool"),
        &mcap_string("ros2msg"),
        &mcap_string("bool data\n"),
    ];
    let channel =
        [&1u16.to_le_bytes()[..], &1u16.to_le_bytes(), &mcap_string("/flag"), &mcap_string("cdr"), &0u32.to_le_bytes()];
    // The first chunk ends with 8 of the 9 bytes of an (unknown, opcode 0) record's opcode and
    // length: the 9th is the opcode of the empty record after the chunk, and the length (8)
    // takes the rest of that record. A second chunk holds a second message.
    let first = [
        mcap_record(0x03, &schema.concat()),
        mcap_record(0x04, &channel.concat()),
        mcap_message(&[0, 1, 0, 0, 1]),
        vec![0x00, 8, 0, 0, 0, 0, 0, 0],
    ];
    let header = mcap_record(0x01, &[mcap_string("ros2"), mcap_string("test")].concat());
    let chunk_at = MAGIC.len() + header.len();
    let chunk = mcap_chunk(&first.concat());
    let chunk_end = chunk_at + chunk.len();
    let rest = [mcap_record(0x00, &[]), mcap_chunk(&mcap_message(&[0, 1, 0, 0, 0])), mcap_record(0x0F, &[0; 4])];
    let file = [MAGIC, &header, &chunk, &rest.concat(), &mcap_record(0x02, &[0; 20]), MAGIC].concat();

    let dir = std::env::temp_dir().join(format!("pipeline_seg_fuzz_regression_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("overrun.mcap");
    std::fs::write(&path, &file).unwrap();
    let bag = pipeline_seg::io::bag_read::open(&path).unwrap();
    let mut messages = bag.messages(&[]);
    let first = messages.next().unwrap().unwrap();
    assert_eq!((first.topic.as_str(), first.data.as_slice()), ("/flag", &[0u8, 1, 0, 0, 1][..]));
    let err = messages.next().expect("an error, not the end of the bag").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: MCAP: a record (opcode 0x00, unknown) in the chunk at byte {chunk_at} runs past the chunk's end at \
             byte {chunk_end} (1 messages read)",
            path.display()
        )
    );
    assert!(messages.next().is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `labels` found three ways for a tiny file to make check_label_dirs (OpenCV under it)
/// allocate gigabytes (atheris flagged out-of-memory at 2048 MB, or peaks of 2.4 and 1.1 GB; the
/// causes were isolated by hand, since libFuzzer records the input running when its once-a-second
/// memory check fires): a 300-byte JPEG frame declaring 20000x20000 (2.3 GB), an 85-byte PNG
/// whose IDAT chunk declares 4 GB (4.1 GB: OpenCV 5's PNG reader allocates a chunk's length
/// first), and a JPEG whose `FF 00` hid its real frame header from a header check (1.2 GB).
/// Frames and masks are now read only as PNG or JPEG, their header read strictly, up to 4096 x
/// 4096 declared pixels, every PNG chunk inside the file; `label_reader_inputs` replays the three
/// (fuzz/regressions/labels/) with the process's peak RSS checked (< 512 MB).
#[test]
fn label_frame_declaring_20000_squared_pixels_is_refused_from_its_header() {
    let out = Command::new("python3")
        .args(["-c", "import sys; sys.path.insert(0, 'training'); import labels; print(labels.MAX_PIXELS)"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("python3 not found: `source scripts/env.sh` first");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), (4096 * 4096).to_string());
    assert!(!inputs("regressions", "labels").is_empty());
}

/// `compressed_image` found (libFuzzer, out of memory at a 300 MB limit in a probe run): the
/// JPEG header check walked an `FF 00` as a marker segment with a length, and so read a frame
/// header (259x2) that libjpeg never sees: libjpeg skips `FF 00` and decoded the one after it,
/// 14895x12035 pixels, 593 MB of peak RSS for 213 bytes, under the 4096 x 4096 limit's nose.
#[test]
fn jpeg_ff00_before_the_frame_header_is_refused_before_decoding() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions/compressed_image/oom-jpeg-ff00-hides-the-frame-header");
    let data = std::fs::read(path).unwrap();
    let jpeg = &data[1..];
    let expected = "corrupt jpeg image: FF 00 where a marker segment should start";
    let err = pipeline_seg::engine::image::declared_size("jpeg", jpeg).unwrap_err();
    assert_eq!(err.to_string(), expected);
    let err = pipeline_seg::engine::image::decode_compressed("", jpeg, 4096 * 4096).unwrap_err();
    assert_eq!(err.to_string(), expected);
}

/// `config`'s check that a parameter holds what the file says (not reached by the 10-minute
/// run, which never wrote a 10-digit number; confirmed by hand, fuzz/regressions/config/):
/// `band_px` and `recover_frames` were cast to u32, so 4294967300 became 4 and 4294967297
/// became 1, both valid. They are now errors naming the value.
#[test]
fn u32_parameters_past_u32_max_are_errors_not_wrapped() {
    use pipeline_seg::engine::config::Params;
    for (name, value) in [("band_px", 4_294_967_300u64), ("recover_frames", 4_294_967_297)] {
        let err = Params::default().set(name, &serde_yaml::Value::from(value)).unwrap_err();
        assert!(err.to_string().contains(&format!("{value} is larger than 4294967295")), "{name}: {err}");
        let mut p = Params::default();
        p.set(name, &serde_yaml::Value::from(7u64)).unwrap();
        assert_eq!((p.band_px.or(p.recover_frames)), Some(7));
    }
}
