//! `bag::write::BagWriter` against third-party readers: every bag written here is checked by
//! `tests/check_output_bag.py` (run by `python3`, the venv's after `source scripts/env.sh`) with
//! the Python `rosbags` rosbag2 Reader (each message deserialised with its declared type) and the
//! Python `mcap` reader (records, summary, CRCs), and its `metadata.yaml` against rosbag2's
//! version 9 format. Also: a writer dropped without `finish` completes the bag, a writer that
//! stops without any cleanup (a killed process, simulated by `mem::forget`) leaves every flushed
//! message readable, the same input gives the same bytes, and the API's errors.

use std::path::{Path, PathBuf};
use std::process::Command;

use pipeline_seg::io::bag_write::{BagWriteError, BagWriter, TopicId, FLUSH_BYTES};
use pipeline_seg::msg::cdr::CdrMessage;
use pipeline_seg::msg::Qos;
use pipeline_seg::msg::{Bool, DiagnosticArray, DiagnosticStatus, Header, Image, KeyValue, Time};
use serde_json::{json, Value};

const T0: i64 = 1_700_000_000_000_000_000;
const NODE: &str = "/pipeline_seg_node";

/// A fresh (removed) directory for one test under Cargo's scratch directory.
fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bag_write").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn header(stamp_ns: i64) -> Header {
    Header { stamp: Time::from_nanos(stamp_ns), frame_id: "camera".into() }
}

fn header_json(h: &Header) -> Value {
    json!({"stamp": {"sec": h.stamp.sec, "nanosec": h.stamp.nanosec}, "frame_id": h.frame_id})
}

fn mono8(stamp_ns: i64, w: u32, h: u32, seed: u8) -> Image {
    let data = (0..w * h).map(|i| if (i as u8).wrapping_add(seed).is_multiple_of(3) { 255 } else { 0 }).collect();
    Image { header: header(stamp_ns), height: h, width: w, encoding: "mono8".into(), is_bigendian: 0, step: w, data }
}

fn float32(stamp_ns: i64, w: u32, h: u32, seed: u32) -> Image {
    let data = (0..w * h)
        .flat_map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) as f32 / u32::MAX as f32).to_le_bytes())
        .collect();
    Image {
        header: header(stamp_ns),
        height: h,
        width: w,
        encoding: "32FC1".into(),
        is_bigendian: 0,
        step: 4 * w,
        data,
    }
}

fn diag(stamp_ns: i64, level: u8, reason: &str, score: f64) -> DiagnosticArray {
    DiagnosticArray {
        header: header(stamp_ns),
        status: vec![DiagnosticStatus {
            level,
            name: "pipeline_seg/confidence".into(),
            message: reason.into(),
            hardware_id: String::new(),
            values: vec![
                KeyValue { key: "score".into(), value: format!("{score:.4}") },
                KeyValue { key: "samples".into(), value: "8".into() },
            ],
        }],
    }
}

/// A message as `check_output_bag.py`'s `plain()` prints the rosbags deserialisation.
trait Plain: CdrMessage {
    fn plain(&self) -> Value;
}

impl Plain for Image {
    fn plain(&self) -> Value {
        json!({"header": header_json(&self.header), "height": self.height, "width": self.width,
               "encoding": self.encoding, "is_bigendian": self.is_bigendian, "step": self.step,
               "data": hex(&self.data)})
    }
}

impl Plain for Bool {
    fn plain(&self) -> Value {
        json!({"data": self.data})
    }
}

impl Plain for DiagnosticArray {
    fn plain(&self) -> Value {
        let status: Vec<Value> = self
            .status
            .iter()
            .map(|s| {
                let values: Vec<Value> = s.values.iter().map(|kv| json!({"key": kv.key, "value": kv.value})).collect();
                json!({"level": s.level, "name": s.name, "message": s.message, "hardware_id": s.hardware_id,
                       "values": values})
            })
            .collect();
        json!({"header": header_json(&self.header), "status": status})
    }
}

/// A writer plus the record of what went into it, for the Python check.
struct Recorder {
    w: BagWriter,
    topics: Vec<Value>,
    messages: Vec<Value>,
    custom_data: Value,
}

impl Recorder {
    fn create(dir: &Path) -> Self {
        Recorder { w: BagWriter::create(dir).unwrap(), topics: vec![], messages: vec![], custom_data: Value::Null }
    }

    fn topic(&mut self, name: &str, type_name: &str, qos: Qos) -> TopicId {
        let id = if qos == Qos::DEFAULT {
            self.w.add_topic(name, type_name).unwrap()
        } else {
            self.w.add_topic_with_qos(name, type_name, qos).unwrap()
        };
        self.topics.push(json!({"name": name, "type": type_name, "depth": qos.depth,
            "reliability": if qos.reliable { "reliable" } else { "best_effort" },
            "durability": if qos.transient_local { "transient_local" } else { "volatile" }}));
        id
    }

    fn custom(&mut self, key: &str, value: &str) {
        self.w.set_custom_data(key, value);
        if self.custom_data.is_null() {
            self.custom_data = json!({});
        }
        self.custom_data[key] = json!(value);
    }

    fn write<M: Plain>(&mut self, topic: TopicId, name: &str, log: i64, publish: i64, msg: &M) {
        self.w.write_message(topic, log, publish, msg).unwrap();
        self.messages.push(json!({"topic": name, "type": M::TYPE_NAME, "log_time": log, "publish_time": publish,
                                  "msg": msg.plain()}));
    }

    /// The expectation for the checker, with only the first `n` messages.
    fn expected(&self, n: usize, min_chunks: usize) -> Value {
        json!({"topics": self.topics, "messages": self.messages[..n], "custom_data": self.custom_data,
               "library": format!("pipeline_seg {}", env!("CARGO_PKG_VERSION")), "min_chunks": min_chunks})
    }
}

/// Runs `tests/check_output_bag.py` on `bag`; panics with its output unless it prints `OK`.
fn check(bag: &Path, expected: &Value, partial: bool) -> String {
    let exp = bag.with_extension("expected.json");
    std::fs::write(&exp, serde_json::to_vec(expected).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_output_bag.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg(bag).arg(&exp);
    if partial {
        cmd.arg("--partial");
    }
    let out = cmd.output().expect("python3 not found: `source scripts/env.sh` first");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.starts_with("OK"),
        "check_output_bag.py failed (needs the venv: `source scripts/env.sh`):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The replay's topics for `frames` frames at 5 Hz; log time = the input's (a few ms after the
/// stamp), publish time later still. 32FC1 images of 256x256 (256 KiB) make several chunks.
fn write_replay(r: &mut Recorder, frames: i64) {
    let mask = r.topic(&format!("{NODE}/mask"), "sensor_msgs/msg/Image", Qos::DEFAULT);
    let prob = r.topic(&format!("{NODE}/probability"), "sensor_msgs/msg/Image", Qos::DEFAULT);
    let confident = r.topic(&format!("{NODE}/confident"), "std_msgs/msg/Bool", Qos::LATCHED);
    let confidence = r.topic(&format!("{NODE}/confidence"), "diagnostic_msgs/msg/DiagnosticArray", Qos::DEFAULT);
    // A topic that gets no message is still listed, with count 0.
    r.topic(
        &format!("{NODE}/review"),
        "diagnostic_msgs/msg/DiagnosticArray",
        Qos { depth: 5, reliable: false, transient_local: false },
    );
    for i in 0..frames {
        let stamp = T0 + i * 200_000_000 + 17;
        let log = stamp + 3_000_000 + i;
        let ok = i % 3 != 1;
        r.write(mask, &format!("{NODE}/mask"), log, log + 10, &mono8(stamp, 64, 48, i as u8));
        r.write(prob, &format!("{NODE}/probability"), log, log + 20, &float32(stamp, 256, 256, i as u32));
        r.write(confident, &format!("{NODE}/confident"), log, log + 30, &Bool { data: ok });
        let (level, reason) = if ok { (DiagnosticStatus::OK, "") } else { (DiagnosticStatus::WARN, "uncertain") };
        r.write(confidence, &format!("{NODE}/confidence"), log, log + 40, &diag(stamp, level, reason, 0.1 * i as f64));
    }
}

#[test]
fn writes_bag_readable_by_rosbags_and_mcap() {
    let bag = scratch("full").join("output");
    let mut r = Recorder::create(&bag);
    assert_eq!(r.w.mcap_path(), bag.join("output_0.mcap"));
    r.custom("model", "pipeline_seg_unet.onnx");
    write_replay(&mut r, 6);
    assert_eq!(r.w.message_count(), 24);
    let expected = r.expected(r.messages.len(), 2);
    r.w.finish().unwrap();
    let out = check(&bag, &expected, false);
    eprintln!("{out}");

    // metadata.yaml keeps rosbag2's key order.
    let yaml = std::fs::read_to_string(bag.join("metadata.yaml")).unwrap();
    let keys: Vec<&str> = yaml
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && !l.starts_with("  -"))
        .map(|l| l.trim().split(':').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "version",
            "storage_identifier",
            "duration",
            "starting_time",
            "message_count",
            "topics_with_message_count",
            "compression_format",
            "compression_mode",
            "relative_file_paths",
            "files",
            "custom_data",
            "ros_distro"
        ]
    );
}

#[test]
fn empty_bag_is_valid() {
    let bag = scratch("empty").join("bag");
    let mut r = Recorder::create(&bag);
    r.topic("/a", "std_msgs/msg/Bool", Qos::DEFAULT);
    let expected = r.expected(0, 0);
    r.w.finish().unwrap();
    check(&bag, &expected, false);
}

#[test]
fn drop_without_finish_completes_the_bag() {
    let bag = scratch("dropped").join("output");
    let mut r = Recorder::create(&bag);
    write_replay(&mut r, 2);
    let expected = r.expected(r.messages.len(), 1);
    drop(r.w);
    check(&bag, &expected, false);
}

#[test]
fn killed_writer_leaves_flushed_messages_readable() {
    let bag = scratch("killed").join("output");
    let mut r = Recorder::create(&bag);
    let prob = r.topic("/probability", "sensor_msgs/msg/Image", Qos::DEFAULT);
    let flag = r.topic("/confident", "std_msgs/msg/Bool", Qos::LATCHED);
    // 4 images of 256 KiB pass FLUSH_BYTES: the chunk is closed and flushed after the 4th.
    let img_bytes = float32(0, 256, 256, 0).encode().len();
    assert!(4 * img_bytes >= FLUSH_BYTES && 3 * img_bytes < FLUSH_BYTES);
    for i in 0..4 {
        let t = T0 + i * 100_000_000;
        r.write(prob, "/probability", t, t, &float32(t, 256, 256, i as u32));
    }
    r.write(flag, "/confident", T0 + 450_000_000, T0 + 450_000_000, &Bool { data: true });
    r.w.flush().unwrap();
    let flushed = r.messages.len();
    // Then messages that are still in the open chunk when the process dies.
    r.write(flag, "/confident", T0 + 500_000_000, T0 + 500_000_000, &Bool { data: false });
    r.write(prob, "/probability", T0 + 600_000_000, T0 + 600_000_000, &float32(T0, 256, 256, 9));
    let expected = r.expected(flushed, 0);
    // No destructor runs, as when the process is killed: only what reached the OS is there.
    std::mem::forget(r.w);
    let out = check(&bag, &expected, true);
    eprintln!("{out}");
}

#[test]
fn same_input_same_bytes() {
    let root = scratch("determinism");
    let mut files = vec![];
    for run in ["a", "b"] {
        let bag = root.join(run).join("output");
        let mut r = Recorder::create(&bag);
        write_replay(&mut r, 3);
        r.w.finish().unwrap();
        files.push((
            std::fs::read(bag.join("output_0.mcap")).unwrap(),
            std::fs::read(bag.join("metadata.yaml")).unwrap(),
        ));
    }
    assert!(files[0] == files[1], "two runs wrote different bytes");
}

#[test]
fn create_uses_an_empty_directory_and_refuses_others() {
    let root = scratch("create");
    // An existing empty directory is used; the file is named after it.
    let empty = root.join("empty_dir");
    std::fs::create_dir(&empty).unwrap();
    let w = BagWriter::create(&empty).unwrap();
    assert_eq!(w.mcap_path(), empty.join("empty_dir_0.mcap"));
    w.finish().unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&empty).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["empty_dir_0.mcap", "metadata.yaml"]);
    // Now it is not empty.
    assert!(matches!(BagWriter::create(&empty), Err(BagWriteError::NotEmpty { .. })));
    // A file is not a bag directory.
    let file = root.join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(BagWriter::create(&file), Err(BagWriteError::NotEmpty { .. })));
    // Parents are created.
    let deep = root.join("x/y/z");
    let w = BagWriter::create(&deep).unwrap();
    assert_eq!(w.mcap_path(), deep.join("z_0.mcap"));
    let msg = BagWriter::create(&empty).err().unwrap().to_string();
    assert!(msg.contains("empty_dir") && msg.contains("not an empty directory"), "{msg}");
}

#[test]
fn api_errors() {
    let root = scratch("errors");
    let mut w = BagWriter::create(&root.join("bag")).unwrap();
    let twist = "geometry_msgs/msg/Twist";
    assert!(matches!(w.add_topic("/x", twist), Err(BagWriteError::UnknownType(t)) if t == twist));
    let flag = w.add_topic("/flag", "std_msgs/msg/Bool").unwrap();
    assert!(matches!(w.add_topic("/flag", "std_msgs/msg/Bool"), Err(BagWriteError::DuplicateTopic(_))));
    let err = w.write_message(flag, T0, T0, &mono8(T0, 2, 2, 0)).unwrap_err();
    assert!(matches!(&err, BagWriteError::WrongType { .. }), "{err}");
    assert_eq!(err.to_string(), "topic /flag has type std_msgs/msg/Bool, not sensor_msgs/msg/Image");
    assert!(matches!(
        w.write(flag, -1, 0, &Bool { data: true }.encode()),
        Err(BagWriteError::NegativeTime { what: "log time", .. })
    ));
    assert!(matches!(
        w.write(flag, 0, -5, &Bool { data: true }.encode()),
        Err(BagWriteError::NegativeTime { what: "publish time", .. })
    ));
    assert!(matches!(w.write(flag, 0, 0, b"\x01\x00"), Err(BagWriteError::NotCdr { .. })));
    assert!(matches!(w.write(flag, 0, 0, b"\x89PNG\r\n"), Err(BagWriteError::NotCdr { .. })));
    // A TopicId of another writer with more topics.
    let mut other = BagWriter::create(&root.join("other")).unwrap();
    other.add_topic("/a", "std_msgs/msg/Bool").unwrap();
    let b = other.add_topic("/b", "std_msgs/msg/Bool").unwrap();
    assert!(matches!(w.write(b, 0, 0, &Bool { data: true }.encode()), Err(BagWriteError::UnknownTopic(1))));
    // Failed writes leave no trace.
    assert_eq!(w.message_count(), 0);
    w.write_message(flag, T0, T0, &Bool { data: true }).unwrap();
    assert_eq!(w.message_count(), 1);
}
