//! The streaming rosbag2 reader (`bag::read`) on bags that `rosbags` wrote: `tests/make_bags.py`
//! (run by `python3`, the venv's after `source scripts/env.sh`) writes MCAP and SQLite bags, old
//! and new schemas, split, without metadata; the tests check every message, its header and
//! decoded pixels against the generator's formulas, topic filters, the file and directory forms,
//! and that truncated or corrupt bags yield the good messages, then one error naming the file,
//! topic and position, then nothing.
//!
//! `cargo test --release --test bag_read -- --ignored --nocapture measure_peak_rss` prints the
//! peak RSS of reading 200- and 2000-frame bags (320x240 rgb8) in a child process.
#![allow(clippy::disallowed_methods, reason = "a test thread needs no name")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use pipeline_seg::engine::image::decode_msg;
use pipeline_seg::io::bag_read::{self as read, BagError, BagMessage, Location, Storage, TopicInfo};
use pipeline_seg::msg::cdr::{CdrError, CdrMessage};
use pipeline_seg::msg::{FrameMsg, Image};

// The generator's constants (tests/make_bags.py).
const W: usize = 32;
const H: usize = 24;
const FRAMES: usize = 10;
const MANY: usize = 600;
const T0: i64 = 1_700_000_000_000_000_000;
const MS: i64 = 1_000_000;
const TOPICS: [(&str, &str); 5] = [
    ("/cam/bgr8", "sensor_msgs/msg/Image"),
    ("/cam/rgb8", "sensor_msgs/msg/Image"),
    ("/cam/mono8", "sensor_msgs/msg/Image"),
    ("/cam/compressed", "sensor_msgs/msg/CompressedImage"),
    ("/gt/mask", "sensor_msgs/msg/Image"),
];
const MAX_PIXELS: usize = 1 << 24;

/// The fixture bags, written once per test process into the target's temporary directory.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bag_read");
        // Leftovers of earlier runs whose process is gone.
        if let Ok(entries) = std::fs::read_dir(&root) {
            for e in entries.flatten() {
                let pid = e.file_name().to_string_lossy().parse::<u32>().ok();
                if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = root.join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        make_bags(&dir.join("bags"), &[]);
        dir
    })
}

/// Runs tests/make_bags.py OUT ARGS.
fn make_bags(out: &Path, args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/make_bags.py");
    let res = Command::new("python3")
        .arg(&script)
        .arg(out)
        .args(args)
        .output()
        .expect("python3 not found: `source scripts/env.sh` first");
    assert!(
        res.status.success(),
        "make_bags.py failed (needs the venv's rosbags and cv2: `source scripts/env.sh`):\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
}

fn bag(name: &str) -> PathBuf {
    fixtures().join("bags").join(name)
}

/// A fresh, empty directory for one test's corrupted copies.
fn scratch(name: &str) -> PathBuf {
    let dir = fixtures().join("scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every message up to the first error, and that error; checks that the iterator then ends.
fn read_all(path: &Path, topics: &[&str]) -> (Vec<BagMessage>, Option<BagError>) {
    let bag = read::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut it = bag.messages(topics);
    let mut msgs = Vec::new();
    let mut err = None;
    for item in it.by_ref() {
        match item {
            Ok(m) => msgs.push(m),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    assert!(it.next().is_none(), "the iterator goes on after its end or error");
    assert!(it.next().is_none());
    (msgs, err)
}

fn pattern(k: usize, x: usize, y: usize, c: usize) -> u8 {
    ((x * 7 + y * 13 + k * 5 + c * 50) % 256) as u8
}

fn block(k: usize, x: usize, y: usize, c: usize) -> u8 {
    (((x / 8) * 40 + (y / 8) * 60 + k * 10 + c * 70) % 256) as u8
}

fn topic_index(topic: &str) -> usize {
    TOPICS.iter().position(|(t, _)| *t == topic).unwrap_or_else(|| panic!("unexpected topic {topic}"))
}

/// Checks one message of the 5-topic fixtures against the generator: type, times, header,
/// geometry and every decoded pixel. Returns its frame number k.
fn check_message(m: &BagMessage) -> usize {
    let j = topic_index(&m.topic);
    assert_eq!(m.type_name, TOPICS[j].1, "{}", m.topic);
    let rel = m.log_time_ns - MS - T0 - j as i64 * 10 * MS;
    assert!(rel >= 0 && rel % (100 * MS) == 0, "{}: log time {}", m.topic, m.log_time_ns);
    let k = (rel / (100 * MS)) as usize;
    assert!(k < FRAMES);
    let msg = read::decode_frame(m).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(msg.header().stamp.nanos(), m.log_time_ns - MS, "{}: stamp", m.topic);
    assert_eq!(msg.header().frame_id, "cam");
    match (&msg, j) {
        (FrameMsg::Raw(img), 2) => assert_eq!((img.encoding.as_str(), img.step), ("mono8", W as u32 + 3)),
        (FrameMsg::Raw(img), 4) => {
            assert_eq!(img.encoding, "mono8");
            assert!(img.data.iter().all(|&v| v == 0 || v == 255));
        }
        (FrameMsg::Raw(img), _) => assert_eq!(img.encoding, ["bgr8", "rgb8"][j]),
        (FrameMsg::Compressed(c), 3) => assert_eq!(c.format, "jpeg"),
        other => panic!("{}: unexpected {other:?}", m.topic),
    }
    let frame = decode_msg(&msg, MAX_PIXELS).unwrap_or_else(|e| panic!("{}: {e}", m.topic));
    assert_eq!((frame.width, frame.height), (W, H), "{}", m.topic);
    for y in 0..H {
        for x in 0..W {
            for c in 0..3 {
                let got = frame.rgb[(y * W + x) * 3 + c];
                let ok = match j {
                    0 | 1 => got == pattern(k, x, y, c),
                    2 => got == pattern(k, x, y, 0),
                    3 => got.abs_diff(block(k, x, y, c)) <= 2,
                    _ => got == if (x + 2 * k) % 8 < 4 { 255 } else { 0 },
                };
                assert!(ok, "{} frame {k}: pixel ({x}, {y}) channel {c} is {got}", m.topic);
            }
        }
    }
    k
}

/// Checks a whole 5-topic bag holding `frames`: topics, every message, counts and time order.
fn check_bag(path: &Path, frames: std::ops::Range<usize>) -> Vec<BagMessage> {
    let b = read::open(path).unwrap();
    let want: Vec<TopicInfo> =
        TOPICS.iter().map(|(n, t)| TopicInfo { name: n.to_string(), type_name: t.to_string() }).collect();
    assert_eq!(b.topics(), want, "{}", path.display());
    let (msgs, err) = read_all(path, &[]);
    assert!(err.is_none(), "{}: {}", path.display(), err.unwrap());
    assert_eq!(msgs.len(), frames.len() * TOPICS.len(), "{}", path.display());
    let mut counts = BTreeMap::new();
    let mut seen_frames = BTreeMap::new();
    for (i, m) in msgs.iter().enumerate() {
        let k = check_message(m);
        *counts.entry(m.topic.clone()).or_insert(0) += 1;
        seen_frames.entry(m.topic.clone()).or_insert_with(Vec::new).push(k);
        if i > 0 {
            assert!(m.log_time_ns > msgs[i - 1].log_time_ns, "{}: time order at {i}", path.display());
        }
    }
    for (t, _) in TOPICS {
        assert_eq!(counts[t], frames.len(), "{}: {t}", path.display());
        assert_eq!(seen_frames[t], frames.clone().collect::<Vec<_>>(), "{t}");
    }
    msgs
}

#[test]
fn mcap_bag_directory() {
    let msgs = check_bag(&bag("mcap"), 0..FRAMES);
    let file = bag("mcap").join("mcap.mcap");
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m.file, file);
        assert_eq!(m.index, i as u64);
        assert!(matches!(m.location, Location::McapChunk { offset } if offset > 8), "{:?}", m.location);
    }
    let b = read::open(&bag("mcap")).unwrap();
    assert_eq!(b.files(), &[read::BagFile { path: file, storage: Storage::Mcap }]);
}

#[test]
fn mcap_bag_with_zstd_chunks() {
    check_bag(&bag("mcap_zstd"), 0..FRAMES);
}

#[test]
fn sqlite_bag_directory_schema_4() {
    let msgs = check_bag(&bag("sqlite"), 0..FRAMES);
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m.index, i as u64);
        // Written in log-time order: row ids follow.
        assert_eq!(m.location, Location::SqliteRow { id: i as i64 + 1 });
    }
}

#[test]
fn sqlite_bag_humble_schema_3() {
    check_bag(&bag("sqlite_humble"), 0..FRAMES);
}

#[test]
fn single_file_and_metadata_forms_read_the_same() {
    for (dir, file) in [("mcap", "mcap.mcap"), ("sqlite", "sqlite.db3"), ("sqlite_humble", "sqlite_humble.db3")] {
        let from_dir = read_all(&bag(dir), &[]).0;
        for path in [bag(dir).join(file), bag(dir).join("metadata.yaml")] {
            let b = read::open(&path).unwrap();
            assert_eq!(b.topics().len(), TOPICS.len());
            let (msgs, err) = read_all(&path, &[]);
            assert!(err.is_none());
            assert_eq!(msgs, from_dir, "{}", path.display());
        }
    }
}

#[test]
fn split_bag_reads_files_in_metadata_order() {
    let msgs = check_bag(&bag("split"), 0..FRAMES);
    let half = FRAMES / 2 * TOPICS.len();
    for (i, m) in msgs.iter().enumerate() {
        let (file, index) = if i < half { ("split_0.mcap", i) } else { ("split_1.mcap", i - half) };
        assert_eq!(m.file, bag("split").join(file));
        assert_eq!(m.index, index as u64, "the message number restarts in each file");
    }
}

#[test]
fn directory_without_metadata_reads_its_storage_files() {
    let msgs = check_bag(&bag("nometa"), 0..FRAMES);
    assert_eq!(msgs[0].file, bag("nometa").join("rec_0.mcap"));
}

#[test]
fn topic_filter() {
    for dir in ["mcap", "sqlite"] {
        let all = read_all(&bag(dir), &[]).0;
        let (some, err) = read_all(&bag(dir), &["/gt/mask", "/cam/rgb8"]);
        assert!(err.is_none());
        let want: Vec<_> = all.iter().filter(|m| m.topic == "/gt/mask" || m.topic == "/cam/rgb8").cloned().collect();
        assert_eq!(some.len(), 2 * FRAMES);
        // Same messages, same numbers and positions: the index counts every topic.
        assert_eq!(some, want, "{dir}");
        assert!(read_all(&bag(dir), &["/no/such/topic"]).0.is_empty());
    }
}

#[test]
fn sqlite_keyset_pages_keep_log_time_then_row_order() {
    // 600 messages (> 2 pages of 256), 3 per timestamp, inserted in shuffled order.
    let (msgs, err) = read_all(&bag("sqlite_many"), &[]);
    assert!(err.is_none());
    assert_eq!(msgs.len(), MANY);
    let mut seen = vec![false; MANY];
    let mut last = (i64::MIN, i64::MIN);
    for (i, m) in msgs.iter().enumerate() {
        let Location::SqliteRow { id } = m.location else { panic!("{:?}", m.location) };
        assert!((m.log_time_ns, id) > last, "order at {i}");
        last = (m.log_time_ns, id);
        assert_eq!(m.index, i as u64);
        let FrameMsg::Raw(img) = read::decode_frame(m).unwrap() else { panic!() };
        let s: usize = img.header.frame_id.strip_prefix('s').unwrap().parse().unwrap();
        assert_eq!((m.log_time_ns - T0) / MS, (s / 3) as i64);
        assert!(!seen[s], "message s{s} twice");
        seen[s] = true;
    }
    assert!(seen.iter().all(|&s| s));
}

/// Start and end offsets of the first chunk record of an MCAP file.
fn first_chunk(mcap: &[u8]) -> (usize, usize) {
    let mut at = 8;
    loop {
        let end = at + 9 + u64::from_le_bytes(mcap[at + 1..at + 9].try_into().unwrap()) as usize;
        if mcap[at] == 0x06 {
            return (at, end);
        }
        at = end;
    }
}

/// Offsets of the message records inside the first chunk of an uncompressed rosbags MCAP file
/// (rosbags writes one chunk per MiB, and the fixtures are smaller).
fn message_records_in_first_chunk(mcap: &[u8]) -> (usize, Vec<usize>) {
    let (chunk, _) = first_chunk(mcap);
    let body = chunk + 9;
    let compression_len = u32::from_le_bytes(mcap[body + 28..body + 32].try_into().unwrap()) as usize;
    assert_eq!(compression_len, 0, "the chunk is compressed");
    let records = body + 32 + 8;
    let size = u64::from_le_bytes(mcap[body + 32..body + 40].try_into().unwrap()) as usize;
    let mut offsets = Vec::new();
    let mut r = records;
    while r < records + size {
        if mcap[r] == 0x05 {
            offsets.push(r);
        }
        r += 9 + u64::from_le_bytes(mcap[r + 1..r + 9].try_into().unwrap()) as usize;
    }
    (chunk, offsets)
}

#[test]
fn truncated_mcap_yields_the_messages_before_the_cut_then_one_error() {
    let full = read_all(&bag("mcap"), &[]).0;
    for name in ["mcap", "mcap_zstd"] {
        let src = bag(name).join(format!("{name}.mcap"));
        let bytes = std::fs::read(&src).unwrap();
        // Cut 60% into the (only) chunk.
        let (start, end) = first_chunk(&bytes);
        let cut = scratch(&format!("truncated_{name}")).join("cut.mcap");
        std::fs::write(&cut, &bytes[..start + (end - start) * 6 / 10]).unwrap();
        // No footer: the topics come from a scan of what is there.
        let topics = read::open(&cut).unwrap().topics();
        assert!(topics.len() <= TOPICS.len());
        if name == "mcap" {
            assert_eq!(topics.len(), TOPICS.len());
        }
        let (msgs, err) = read_all(&cut, &[]);
        let err = err.expect("an error at the cut");
        let text = err.to_string();
        println!("{name}: {} messages, then: {text}", msgs.len());
        assert!(matches!(err, BagError::Corrupt { ref file, .. } if *file == cut), "{err:?}");
        assert!(text.starts_with(&format!("{}: truncated MCAP: chunk at byte ", cut.display())), "{text}");
        assert!(text.contains("cut short"), "{text}");
        assert!(msgs.len() < full.len());
        if name == "mcap" {
            // Uncompressed chunks stream record by record: everything before the cut arrives.
            assert!(msgs.len() >= full.len() / 2, "{} messages", msgs.len());
        }
        for (m, f) in msgs.iter().zip(&full) {
            assert_eq!(m.data, f.data);
            assert_eq!((m.index, m.log_time_ns), (f.index, f.log_time_ns));
            check_message(m);
        }
    }
}

#[test]
fn mcap_cut_between_records_or_at_the_start_is_reported() {
    let bytes = std::fs::read(bag("mcap").join("mcap.mcap")).unwrap();
    let (chunk, _) = message_records_in_first_chunk(&bytes);
    let dir = scratch("mcap_cut_between");
    // Cut right after the header record, before the chunk: a clean record boundary.
    let path = dir.join("header_only.mcap");
    std::fs::write(&path, &bytes[..chunk]).unwrap();
    let (msgs, err) = read_all(&path, &[]);
    assert!(msgs.is_empty());
    let text = err.expect("an error").to_string();
    assert!(text.contains("truncated MCAP: the file ends at byte") && text.contains("before the data end"), "{text}");
    // Only the magic.
    let path = dir.join("magic.mcap");
    std::fs::write(&path, &bytes[..8]).unwrap();
    let (msgs, err) = read_all(&path, &[]);
    assert!(msgs.is_empty() && err.is_some());
}

#[test]
fn corrupt_mcap_record_length_is_an_error_not_an_allocation() {
    let mut bytes = std::fs::read(bag("mcap").join("mcap.mcap")).unwrap();
    let (chunk, records) = message_records_in_first_chunk(&bytes);
    assert_eq!(records.len(), FRAMES * TOPICS.len());
    let bad = records[12];
    bytes[bad + 1..bad + 9].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let path = scratch("mcap_bad_len").join("bad.mcap");
    std::fs::write(&path, &bytes).unwrap();
    let (msgs, err) = read_all(&path, &[]);
    assert_eq!(msgs.len(), 12);
    msgs.iter().for_each(|m| {
        check_message(m);
    });
    let text = err.expect("an error").to_string();
    assert!(text.starts_with(&path.display().to_string()), "{text}");
    assert!(text.contains(&format!("chunk record at byte {chunk}")), "{text}");
}

/// Offset of the `data` length field of a serialized sensor_msgs/Image.
fn image_data_len_offset(cdr: &[u8]) -> usize {
    let img = Image::decode(cdr).unwrap();
    cdr.len() - img.data.len() - 4
}

/// Decodes every message like a replay loop would; returns the errors.
fn decode_errors(msgs: &[BagMessage]) -> Vec<BagError> {
    msgs.iter().filter_map(|m| read::decode_frame(m).err()).collect()
}

#[test]
fn wrong_cdr_length_in_mcap_names_file_topic_and_position() {
    let full = read_all(&bag("mcap"), &[]).0;
    let mut bytes = std::fs::read(bag("mcap").join("mcap.mcap")).unwrap();
    let victim = &full[17]; // frame 3, /cam/mono8
    assert_eq!(victim.topic, "/cam/mono8");
    let at = bytes.windows(victim.data.len()).position(|w| w == victim.data.as_slice()).unwrap();
    let len_at = at + image_data_len_offset(&victim.data);
    bytes[len_at..len_at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let path = scratch("mcap_wrong_cdr_len").join("bag.mcap");
    std::fs::write(&path, &bytes).unwrap();
    // The storage is intact: every message comes back, and only the victim fails to decode.
    let (msgs, err) = read_all(&path, &[]);
    assert!(err.is_none());
    assert_eq!(msgs.len(), full.len());
    let errors = decode_errors(&msgs);
    assert_eq!(errors.len(), 1);
    let BagError::Cdr { pos, source } = &errors[0] else { panic!("{:?}", errors[0]) };
    assert_eq!((pos.file.as_path(), pos.topic.as_str(), pos.index), (path.as_path(), "/cam/mono8", 17));
    assert!(matches!(pos.location, Location::McapChunk { .. }));
    assert!(matches!(source, CdrError::Length { what: "data", len: 0xFFFF_FFF0, .. }), "{source:?}");
    let text = errors[0].to_string();
    let Location::McapChunk { offset } = pos.location else { unreachable!() };
    assert!(
        text.starts_with(&format!(
            "{}: topic /cam/mono8, message 17 (chunk at byte offset {offset}): CDR: data length",
            path.display()
        )),
        "{text}"
    );
}

#[test]
fn garbage_messages_in_db3_fail_alone_with_file_topic_and_row() {
    let dir = scratch("db3_garbage");
    let path = dir.join("bag.db3");
    std::fs::copy(bag("sqlite").join("sqlite.db3"), &path).unwrap();
    let full = read_all(&path, &[]).0;
    let (wrong_len, garbage) = (&full[6], &full[33]); // frame 1 /cam/rgb8, frame 6 /cam/compressed
    assert_eq!((wrong_len.topic.as_str(), garbage.topic.as_str()), ("/cam/rgb8", "/cam/compressed"));
    let id_of = |m: &BagMessage| match m.location {
        Location::SqliteRow { id } => id,
        other => panic!("{other:?}"),
    };
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mut data = wrong_len.data.clone();
        let at = image_data_len_offset(&data);
        data[at..at + 4].copy_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
        conn.execute("UPDATE messages SET data = ?1 WHERE id = ?2", rusqlite::params![data, id_of(wrong_len)]).unwrap();
        conn.execute(
            "UPDATE messages SET data = CAST(X'DEADBEEF' || substr(data, 5) AS BLOB) WHERE id = ?1",
            [id_of(garbage)],
        )
        .unwrap();
    }
    let (msgs, err) = read_all(&path, &[]);
    assert!(err.is_none());
    assert_eq!(msgs.len(), full.len());
    let errors = decode_errors(&msgs);
    assert_eq!(errors.len(), 2);
    for (e, victim) in errors.iter().zip([wrong_len, garbage]) {
        let text = e.to_string();
        let want = format!(
            "{}: topic {}, message {} (row id {}): CDR: ",
            path.display(),
            victim.topic,
            victim.index,
            id_of(victim)
        );
        assert!(text.starts_with(&want), "{text}");
        assert_eq!(e.path(), path);
    }
    assert!(matches!(&errors[0], BagError::Cdr { source: CdrError::Length { what: "data", .. }, .. }));
    assert!(matches!(&errors[1], BagError::Cdr { source: CdrError::Encapsulation(0xDE, 0xAD), .. }));
    // Every other message still decodes to the written pixels.
    for m in msgs.iter().filter(|m| m.index != wrong_len.index && m.index != garbage.index) {
        check_message(m);
    }
}

#[test]
fn truncated_db3_is_an_error_never_a_panic() {
    let bytes = std::fs::read(bag("sqlite").join("sqlite.db3")).unwrap();
    let dir = scratch("db3_truncated");
    for percent in [10, 40, 60, 90] {
        let path = dir.join(format!("cut{percent}.db3"));
        std::fs::write(&path, &bytes[..bytes.len() * percent / 100]).unwrap();
        match read::open(&path) {
            Err(e) => {
                println!("{percent}%: open: {e}");
                assert_eq!(e.path(), path);
            }
            Ok(b) => {
                let mut it = b.messages(&[]);
                let mut n = 0;
                let mut err = None;
                for item in it.by_ref() {
                    match item {
                        Ok(m) => {
                            n += 1;
                            // A row may read back cut short; decoding says so instead of panicking.
                            let _ = read::decode_frame(&m).map(|f| decode_msg(&f, MAX_PIXELS));
                        }
                        Err(e) => {
                            err = Some(e);
                            break;
                        }
                    }
                }
                assert!(it.next().is_none());
                println!("{percent}%: {n} messages, then {err:?}");
                if let Some(e) = err {
                    assert_eq!(e.path(), path);
                    assert!(e.to_string().contains("SQLite"), "{e}");
                }
            }
        }
    }
}

#[test]
fn paths_that_are_not_bags_get_clear_errors() {
    let dir = scratch("not_bags");
    let err = |p: &Path| read::open(p).expect_err("not a bag").to_string();

    let empty = dir.join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), "hello").unwrap();
    assert_eq!(err(&empty), format!("not a rosbag2 bag: {}: no metadata.yaml and no .mcap/.db3", empty.display()));

    let txt = dir.join("notes.txt");
    std::fs::write(&txt, "hello").unwrap();
    assert!(err(&txt).starts_with(&format!("not a rosbag2 bag: {}: expected a bag directory", txt.display())));

    let noise: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mcap = dir.join("noise.mcap");
    std::fs::write(&mcap, &noise).unwrap();
    assert!(err(&mcap).contains("not an MCAP file"), "{}", err(&mcap));
    let db3 = dir.join("noise.db3");
    std::fs::write(&db3, &noise).unwrap();
    assert_eq!(err(&db3), format!("not a rosbag2 bag: {}: not a SQLite database", db3.display()));

    let foo = dir.join("foo_bag");
    std::fs::create_dir(&foo).unwrap();
    std::fs::write(
        foo.join("metadata.yaml"),
        "rosbag2_bagfile_information:\n  storage_identifier: foo\n  relative_file_paths: [foo_0.foo]\n",
    )
    .unwrap();
    assert_eq!(
        err(&foo),
        format!("{}: unsupported storage 'foo' (supported: mcap, sqlite3)", foo.join("metadata.yaml").display())
    );

    let missing = dir.join("missing_file");
    std::fs::create_dir(&missing).unwrap();
    std::fs::write(
        missing.join("metadata.yaml"),
        "rosbag2_bagfile_information:\n  storage_identifier: mcap\n  relative_file_paths: [gone_0.mcap]\n",
    )
    .unwrap();
    assert!(err(&missing).contains("lists gone_0.mcap, which is not a file"), "{}", err(&missing));

    let nowhere = dir.join("nowhere");
    assert!(err(&nowhere).starts_with(&nowhere.display().to_string()));
}

#[test]
fn non_image_messages_and_the_iterator_outliving_its_bag() {
    let m = BagMessage {
        topic: "/flag".into(),
        type_name: "std_msgs/msg/Bool".into(),
        log_time_ns: 5,
        data: vec![0, 1, 0, 0, 1],
        file: "x.mcap".into(),
        index: 3,
        location: Location::McapRecord { offset: 99 },
    };
    let e = read::decode_frame(&m).unwrap_err();
    assert_eq!(
        e.to_string(),
        "x.mcap: topic /flag, message 3 (byte offset 99): type std_msgs/msg/Bool is not \
         sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage"
    );
    // It may be handed to a reader thread.
    fn send<T: Send>(t: T) -> T {
        t
    }
    let it = send(read::open(&bag("sqlite")).unwrap().messages(&["/cam/rgb8"]));
    assert_eq!(std::thread::spawn(move || it.count()).join().unwrap(), FRAMES);
    let it = send(read::open(&bag("mcap_zstd")).unwrap().messages(&["/cam/rgb8"]));
    assert_eq!(std::thread::spawn(move || it.count()).join().unwrap(), FRAMES);
}

/// Child process of `measure_peak_rss`: reads the bag named by BAG_READ_RSS_BAG (decoding each
/// message's CDR; none when it is empty: the baseline) and prints its message count and peak RSS.
#[test]
#[ignore = "run by measure_peak_rss"]
fn rss_probe() {
    let Some(path) = std::env::var_os("BAG_READ_RSS_BAG") else { return };
    let (mut n, mut bytes) = (0u64, 0u64);
    if !path.is_empty() {
        let b = read::open(Path::new(&path)).unwrap();
        for m in b.messages(&[]) {
            let m = m.unwrap();
            let FrameMsg::Raw(img) = read::decode_frame(&m).unwrap() else { panic!() };
            bytes += img.data.len() as u64;
            n += 1;
        }
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap().split_whitespace().nth(1).unwrap();
    println!("RSS_PROBE messages={n} pixel_bytes={bytes} VmHWM={hwm} kB");
}

#[test]
#[ignore = "writes ~0.5 GB of bags; run with --ignored --nocapture to print the numbers"]
fn measure_peak_rss() {
    let dir = fixtures().join("big");
    let exe = std::env::current_exe().unwrap();
    let probe = |bag: &Path| {
        let out = Command::new(&exe)
            .args(["rss_probe", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env("BAG_READ_RSS_BAG", bag)
            .output()
            .unwrap();
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (base, _) = probe(Path::new(""));
    let result = |out: &str| out.lines().find_map(|l| l.find("RSS_PROBE").map(|i| l[i..].to_string()));
    println!("baseline (no bag read): {}", result(&base).unwrap_or_default());
    for n in [200usize, 2000] {
        make_bags(&dir, &["--big", &n.to_string()]);
        for storage in ["mcap", "sqlite"] {
            let bag = dir.join(format!("big_{n}_{storage}"));
            let size: u64 = std::fs::read_dir(&bag).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
            let t = std::time::Instant::now();
            let (stdout, stderr) = probe(&bag);
            let Some(line) = result(&stdout) else { panic!("rss_probe printed no result:\n{stdout}\n{stderr}") };
            println!(
                "peak RSS: {n:>5} frames, {storage:>6}, bag {:>4} MiB, {:.2} s: {line}",
                size >> 20,
                t.elapsed().as_secs_f64()
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn mcap_record_declaring_4_gb_is_a_clean_error_naming_its_position() {
    // The file up to the end of its first chunk, then a message record outside any chunk whose
    // length says 4 GB: an error naming the record's offset, and nothing allocated for it.
    let bytes = std::fs::read(bag("mcap").join("mcap.mcap")).unwrap();
    let (_, at) = first_chunk(&bytes);
    let mut cut = bytes[..at].to_vec();
    cut.push(0x05);
    cut.extend_from_slice(&(4u64 << 30).to_le_bytes());
    cut.extend_from_slice(&[0u8; 64]);
    let path = scratch("mcap_4gb").join("huge.mcap");
    std::fs::write(&path, &cut).unwrap();
    let (msgs, err) = read_all(&path, &[]);
    assert_eq!(msgs.len(), FRAMES * TOPICS.len(), "the messages before it are read");
    let text = err.expect("an error").to_string();
    println!("{text}");
    assert!(text.contains(&format!("byte {at}")), "{text}");
}
