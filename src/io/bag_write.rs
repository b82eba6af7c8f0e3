//! rosbag2 bag writer without ROS: one MCAP file laid out as rosbag2 (Jazzy) writes it.
//!
//! [`BagWriter::create`] makes the bag directory `DIR/` and its storage file
//! `DIR/<DIR name>_0.mcap` (rosbag2's name for the first file of a bag; rosbags would write
//! `DIR/<DIR name>.mcap`). The MCAP has profile `ros2`, library `pipeline_seg <version>`, zstd
//! chunks, one schema per message type (encoding `ros2msg`, named by the full type name, the
//! definition with its dependencies from [`cdr::schema`]) and one channel per topic (message
//! encoding `cdr`, metadata `offered_qos_profiles` and `topic_type_hash` as rosbag2 writes them).
//! Messages carry a per-channel sequence number counted from 0 (rosbag2 writes 0 for all).
//! [`BagWriter::finish`] adds the `rosbag2` metadata record (`serialized_metadata`: the bag's
//! metadata, as rosbag2 stores it), the summary (schemas, channels, statistics, chunk and
//! metadata indexes) and the footer, then writes `DIR/metadata.yaml` in rosbag2's version 9
//! format (`ros_distro: jazzy`; QoS profiles as YAML lists with policy names).
//!
//! Partially written bags: the open chunk is closed and handed to the operating system
//! (flushed, not fsynced) once it holds [`FLUSH_BYTES`] of message data, and on
//! [`BagWriter::flush`]. A chunk is built in memory and written in one piece, and schema and
//! channel records go into the chunk that is open when the topic is added (before its first
//! message), so when the process dies (killed, aborted) the file holds the header and the
//! flushed chunks (schemas, channels, messages) as complete records, then at most a partial
//! chunk record and no summary or footer: linear MCAP readers (this crate's `bag::read`, the
//! Python `mcap` `StreamReader`, `mcap recover`, `ros2 bag reindex`) get every flushed message;
//! messages written since the last flush are lost. Dropping a
//! [`BagWriter`] without [`BagWriter::finish`] (an early return, a panic that unwinds) finishes
//! the bag, `metadata.yaml` included, ignoring errors. [`BagWriter::finish`] fsyncs both files.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use mcap::records::op;
use serde::Serialize;

use crate::io::bag_read::{self, Storage, MCAP_MAGIC};
use crate::msg::cdr::{self, CdrMessage};
use crate::msg::{Bool, CompressedImage, DiagnosticArray, Image, Qos};

/// Uncompressed message bytes after which the open chunk is closed and flushed to the file.
pub const FLUSH_BYTES: usize = 1 << 20;

/// rosbag2 metadata version written (that of rosbag2 in ROS 2 Jazzy).
pub const METADATA_VERSION: u32 = 9;

/// `ros_distro` written into the metadata.
pub const ROS_DISTRO: &str = "jazzy";

/// A QoS duration rmw reports for "infinite" (unset deadline, lifespan, lease), as `(sec, nsec)`.
const INFINITE: (u64, u64) = (9_223_372_036, 854_775_807);

/// Everything that can go wrong writing a bag.
#[derive(Debug, thiserror::Error)]
pub enum BagWriteError {
    /// Creating, writing or syncing a file or directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The bag directory exists and is not empty (or is not a directory).
    #[error("{}: exists and is not an empty directory", path.display())]
    NotEmpty {
        /// The bag directory.
        path: PathBuf,
    },
    /// The MCAP writer failed.
    #[error("{}: {source}", path.display())]
    Mcap {
        /// The MCAP file.
        path: PathBuf,
        /// The underlying error.
        source: mcap::McapError,
    },
    /// No `ros2msg` schema is known for the message type ([`cdr::schema`]).
    #[error("no ros2msg schema known for message type {0}")]
    UnknownType(String),
    /// The topic was added before.
    #[error("topic {0} added twice")]
    DuplicateTopic(String),
    /// The [`TopicId`] belongs to no topic of this writer.
    #[error("unknown topic id {0}")]
    UnknownTopic(usize),
    /// A typed message does not have its topic's type.
    #[error("topic {topic} has type {expected}, not {got}")]
    WrongType {
        /// The topic.
        topic: String,
        /// The topic's type.
        expected: String,
        /// The message's type.
        got: String,
    },
    /// A negative log or publish time (MCAP times are unsigned nanoseconds since the epoch).
    #[error("topic {topic}: negative {what} {ns} ns")]
    NegativeTime {
        /// The topic.
        topic: String,
        /// `log time` or `publish time`.
        what: &'static str,
        /// The time [ns].
        ns: i64,
    },
    /// The data does not start with a CDR encapsulation header (`00 00` or `00 01`, 2 more bytes).
    #[error("topic {topic}: message data is not CDR (no encapsulation header)")]
    NotCdr {
        /// The topic.
        topic: String,
    },
    /// Serializing the metadata failed.
    #[error("metadata: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// A topic added to a [`BagWriter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TopicId(usize);

/// The RIHS01 type description hash of a message type (what rosbag2 records as
/// `type_description_hash`), for the types [`cdr::schema`] knows.
pub fn type_hash(type_name: &str) -> Option<&'static str> {
    Some(match type_name {
        Image::TYPE_NAME => "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47",
        CompressedImage::TYPE_NAME => "RIHS01_15640771531571185e2efc8a100baf923961a4d15d5569652e6cb6691e8e371a",
        Bool::TYPE_NAME => "RIHS01_feb91e995ff9ebd09c0cb3d2aed18b11077585839fb5db80193b62d74528f6c9",
        DiagnosticArray::TYPE_NAME => "RIHS01_5a8a36efb05fb25070fa0fb3810290c0e6cd4862b54a8fb975a1ee8dc55a333e",
        _ => return None,
    })
}

struct Topic {
    name: String,
    type_name: String,
    qos: Qos,
    channel_id: u16,
    count: u64,
}

/// Writes one rosbag2 MCAP bag (see the module documentation); [`BagWriter::finish`] completes it.
pub struct BagWriter {
    dir: PathBuf,
    file_name: String,
    mcap_path: PathBuf,
    mcap: Option<mcap::Writer<BufWriter<File>>>,
    topics: Vec<Topic>,
    custom_data: BTreeMap<String, String>,
    /// Smallest and largest log time written [ns].
    bounds: Option<(u64, u64)>,
    /// Message bytes in the open chunk.
    pending: usize,
}

impl BagWriter {
    /// Creates the bag directory `dir` (and its parents; an existing empty directory is used) and
    /// starts `dir/<name of dir>_0.mcap`.
    pub fn create(dir: &Path) -> Result<BagWriter, BagWriteError> {
        let io_err = |source| BagWriteError::Io { path: dir.to_path_buf(), source };
        if dir.exists() {
            if !dir.is_dir() || fs::read_dir(dir).map_err(io_err)?.next().is_some() {
                return Err(BagWriteError::NotEmpty { path: dir.to_path_buf() });
            }
        } else {
            fs::create_dir_all(dir).map_err(io_err)?;
        }
        // rosbag2 names the file after the directory as given ("." and ".." after the real one).
        let name = match dir.file_name() {
            Some(n) => Some(n.to_owned()),
            None => dir.canonicalize().map_err(io_err)?.file_name().map(|n| n.to_owned()),
        };
        let name = name.map_or_else(|| "rosbag2".to_string(), |n| n.to_string_lossy().into_owned());
        let file_name = format!("{name}_0.mcap");
        let mcap_path = dir.join(&file_name);
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&mcap_path)
            .map_err(|source| BagWriteError::Io { path: mcap_path.clone(), source })?;
        let options = mcap::WriteOptions::new()
            .profile("ros2")
            .library(format!("pipeline_seg {}", env!("CARGO_PKG_VERSION")))
            .compression(Some(mcap::Compression::Zstd))
            // Chunks are closed by `write` (every FLUSH_BYTES), and built in memory so that the
            // file only ever holds complete records up to the last flush.
            .chunk_size(None)
            .disable_seeking(true)
            // One thread: the same bytes on every machine, and no thread pool per writer.
            .compression_threads(0);
        let mcap = options
            .create(BufWriter::new(file))
            .map_err(|source| BagWriteError::Mcap { path: mcap_path.clone(), source })?;
        Ok(BagWriter {
            dir: dir.to_path_buf(),
            file_name,
            mcap_path,
            mcap: Some(mcap),
            topics: Vec::new(),
            custom_data: BTreeMap::new(),
            bounds: None,
            pending: 0,
        })
    }

    /// The bag directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The MCAP file, `DIR/<name of DIR>_0.mcap`.
    pub fn mcap_path(&self) -> &Path {
        &self.mcap_path
    }

    /// Adds a topic published with the default QoS ([`Qos::DEFAULT`]).
    pub fn add_topic(&mut self, name: &str, type_name: &str) -> Result<TopicId, BagWriteError> {
        self.add_topic_with_qos(name, type_name, Qos::DEFAULT)
    }

    /// Adds a topic whose publisher offered `qos`. The type needs a schema ([`cdr::schema`]).
    pub fn add_topic_with_qos(&mut self, name: &str, type_name: &str, qos: Qos) -> Result<TopicId, BagWriteError> {
        if self.topics.iter().any(|t| t.name == name) {
            return Err(BagWriteError::DuplicateTopic(name.to_string()));
        }
        let (Some(schema), Some(hash)) = (cdr::schema(type_name), type_hash(type_name)) else {
            return Err(BagWriteError::UnknownType(type_name.to_string()));
        };
        let mut metadata = BTreeMap::new();
        metadata.insert("offered_qos_profiles".to_string(), qos_string(&qos)?);
        metadata.insert("topic_type_hash".to_string(), hash.to_string());
        let path = self.mcap_path.clone();
        let mcap_err = |source| BagWriteError::Mcap { path: path.clone(), source };
        let w = self.mcap.as_mut().expect("writer present until finish");
        let schema_id = w.add_schema(type_name, "ros2msg", schema.as_bytes()).map_err(mcap_err)?;
        let channel_id = w.add_channel(schema_id, name, "cdr", &metadata).map_err(mcap_err)?;
        self.topics.push(Topic { name: name.to_string(), type_name: type_name.to_string(), qos, channel_id, count: 0 });
        Ok(TopicId(self.topics.len() - 1))
    }

    /// Sets a `custom_data` entry of the metadata (rosbag2's free key/value map).
    pub fn set_custom_data(&mut self, key: &str, value: &str) {
        self.custom_data.insert(key.to_string(), value.to_string());
    }

    /// Writes one serialized message (CDR, encapsulation header first). `log_time_ns` is the
    /// time rosbag2 would have received it, `publish_time_ns` the time it was sent [ns since the
    /// epoch]. Messages should come in log-time order, as rosbag2 records them.
    pub fn write(
        &mut self,
        topic: TopicId,
        log_time_ns: i64,
        publish_time_ns: i64,
        cdr: &[u8],
    ) -> Result<(), BagWriteError> {
        let t = self.topics.get_mut(topic.0).ok_or(BagWriteError::UnknownTopic(topic.0))?;
        let unsigned = |what, ns: i64| {
            u64::try_from(ns).map_err(|_| BagWriteError::NegativeTime { topic: t.name.clone(), what, ns })
        };
        let log_time = unsigned("log time", log_time_ns)?;
        let publish_time = unsigned("publish time", publish_time_ns)?;
        if cdr.len() < 4 || cdr[0] != 0 || cdr[1] > 1 {
            return Err(BagWriteError::NotCdr { topic: t.name.clone() });
        }
        let header =
            mcap::records::MessageHeader { channel_id: t.channel_id, sequence: t.count as u32, log_time, publish_time };
        let w = self.mcap.as_mut().expect("writer present until finish");
        w.write_to_known_channel(&header, cdr)
            .map_err(|source| BagWriteError::Mcap { path: self.mcap_path.clone(), source })?;
        t.count += 1;
        self.bounds = Some(match self.bounds {
            None => (log_time, log_time),
            Some((lo, hi)) => (lo.min(log_time), hi.max(log_time)),
        });
        self.pending += cdr.len();
        if self.pending >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Encodes `msg` and writes it ([`BagWriter::write`]); the topic must have `M`'s type.
    pub fn write_message<M: CdrMessage>(
        &mut self,
        topic: TopicId,
        log_time_ns: i64,
        publish_time_ns: i64,
        msg: &M,
    ) -> Result<(), BagWriteError> {
        let t = self.topics.get(topic.0).ok_or(BagWriteError::UnknownTopic(topic.0))?;
        if t.type_name != M::TYPE_NAME {
            return Err(BagWriteError::WrongType {
                topic: t.name.clone(),
                expected: t.type_name.clone(),
                got: M::TYPE_NAME.to_string(),
            });
        }
        self.write(topic, log_time_ns, publish_time_ns, &msg.encode())
    }

    /// Closes the open chunk and hands everything written so far to the operating system.
    pub fn flush(&mut self) -> Result<(), BagWriteError> {
        let w = self.mcap.as_mut().expect("writer present until finish");
        w.flush().map_err(|source| BagWriteError::Mcap { path: self.mcap_path.clone(), source })?;
        self.pending = 0;
        Ok(())
    }

    /// Messages written so far.
    pub fn message_count(&self) -> u64 {
        self.topics.iter().map(|t| t.count).sum()
    }

    /// Completes the MCAP (metadata record, summary, footer) and writes `metadata.yaml`; both
    /// files are synced to disk.
    pub fn finish(mut self) -> Result<(), BagWriteError> {
        self.finish_inner()
    }

    fn finish_inner(&mut self) -> Result<(), BagWriteError> {
        let Some(mut w) = self.mcap.take() else { return Ok(()) };
        let info = self.metadata();
        let mcap_err = |source| BagWriteError::Mcap { path: self.mcap_path.clone(), source };
        let serialized = serde_yaml::to_string(&info)?;
        let record = mcap::records::Metadata {
            name: "rosbag2".to_string(),
            metadata: BTreeMap::from([("serialized_metadata".to_string(), serialized)]),
        };
        w.write_metadata(&record).map_err(mcap_err)?;
        w.finish().map_err(mcap_err)?;
        let file = w
            .into_inner()
            .into_inner()
            .map_err(|e| BagWriteError::Io { path: self.mcap_path.clone(), source: e.into_error() })?;
        file.sync_all().map_err(|source| BagWriteError::Io { path: self.mcap_path.clone(), source })?;

        write_metadata_yaml(&self.dir, &info)?;
        Ok(())
    }

    /// The bag's metadata as rosbag2 writes it.
    fn metadata(&self) -> BagInfo {
        let topics = self.topics.iter().map(|t| (t.name.clone(), t.type_name.clone(), t.qos, t.count)).collect();
        let file = (self.file_name.clone(), self.bounds, self.message_count());
        bag_info(topics, vec![file], (!self.custom_data.is_empty()).then(|| self.custom_data.clone()))
    }
}

/// A topic in the metadata: name, type, offered QoS, messages.
type TopicCount = (String, String, Qos, u64);
/// A file in the metadata: name, smallest and largest log time [ns], messages.
type FileCount = (String, Option<(u64, u64)>, u64);

/// rosbag2's metadata of a bag: its topics (name, type, offered QoS, messages) and its files
/// (name, smallest and largest log time, messages).
fn bag_info(topics: Vec<TopicCount>, files: Vec<FileCount>, custom_data: Option<BTreeMap<String, String>>) -> BagInfo {
    // rosbag2 starts from the largest time point and keeps it when nothing was written.
    let span = |b: Option<(u64, u64)>| match b {
        Some((lo, hi)) => (lo, hi - lo),
        None => (i64::MAX as u64, 0),
    };
    let all = files.iter().filter_map(|f| f.1).reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)));
    let (start, duration) = span(all);
    let topics_with_message_count = topics
        .into_iter()
        .map(|(name, type_name, qos, count)| TopicWithCount {
            topic_metadata: TopicMeta {
                type_description_hash: type_hash(&type_name).unwrap_or_default(),
                name,
                type_name,
                serialization_format: "cdr",
                offered_qos_profiles: vec![QosYaml::new(&qos)],
            },
            message_count: count,
        })
        .collect();
    BagInfo {
        version: METADATA_VERSION,
        storage_identifier: "mcap",
        duration: Nanos { nanoseconds: duration },
        starting_time: SinceEpoch { nanoseconds_since_epoch: start },
        message_count: files.iter().map(|f| f.2).sum(),
        topics_with_message_count,
        compression_format: "",
        compression_mode: "",
        relative_file_paths: files.iter().map(|f| f.0.clone()).collect(),
        files: files
            .into_iter()
            .map(|(path, bounds, count)| {
                let (start, duration) = span(bounds);
                FileInfo {
                    path,
                    starting_time: SinceEpoch { nanoseconds_since_epoch: start },
                    duration: Nanos { nanoseconds: duration },
                    message_count: count,
                }
            })
            .collect(),
        custom_data,
        ros_distro: ROS_DISTRO,
    }
}

/// Writes `dir/metadata.yaml` (through a temporary file and a rename).
fn write_metadata_yaml(dir: &Path, info: &BagInfo) -> Result<(), BagWriteError> {
    let yaml = serde_yaml::to_string(&MetadataFile { rosbag2_bagfile_information: info })?;
    let path = dir.join("metadata.yaml");
    let tmp = dir.join("metadata.yaml.tmp");
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| BagWriteError::Io { path: p, source }
    };
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(yaml.as_bytes()).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    Ok(())
}

/// What [`reindex`] did to one MCAP file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reindexed {
    /// The file.
    pub file: PathBuf,
    /// Whether it already ended with a footer (then it is left as it was).
    pub complete: bool,
    /// Bytes after the last complete record, cut off.
    pub cut_bytes: u64,
    /// Messages it holds now.
    pub messages: u64,
}

/// Makes a bag whose writer died (killed, out of power) whole again, as `ros2 bag reindex`
/// does for rosbag2: each `.mcap` of `dir` is cut after its last complete record and closed with
/// a data end record and a footer without a summary (readers then scan the records), and
/// `metadata.yaml` is written from the messages the files hold. A file that already has its
/// footer is left untouched. `qos_of` gives a topic's offered QoS for the metadata (a cut file's
/// channels keep theirs).
pub fn reindex(dir: &Path, qos_of: &dyn Fn(&str) -> Qos) -> Result<Vec<Reindexed>, BagWriteError> {
    // The storage files in rosbag2's order (bag_0, bag_1, ..., bag_10), as the reader lists them.
    let files = bag_read::files_in_dir(dir).map_err(|e| corrupt(dir, e.to_string()))?;
    let paths: Vec<PathBuf> = files.into_iter().filter(|f| f.storage == Storage::Mcap).map(|f| f.path).collect();
    if paths.is_empty() {
        return Err(corrupt(dir, "no .mcap file in this directory".into()));
    }
    let mut done = Vec::new();
    let mut topics: Vec<TopicCount> = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        let (complete, cut_bytes) = close_mcap(&path)?;
        let bag = bag_read::open(&path).map_err(|e| corrupt(&path, e.to_string()))?;
        let (mut count, mut bounds) = (0u64, None::<(u64, u64)>);
        for msg in bag.messages(&[]) {
            let msg = msg.map_err(|e| corrupt(&path, e.to_string()))?;
            let t = msg.log_time_ns.max(0) as u64;
            bounds = Some(bounds.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t))));
            count += 1;
            match topics.iter_mut().find(|x| x.0 == msg.topic) {
                Some(x) => x.3 += 1,
                None => topics.push((msg.topic.clone(), msg.type_name.clone(), qos_of(&msg.topic), 1)),
            }
        }
        for t in bag.topics() {
            if !topics.iter().any(|x| x.0 == t.name) {
                let qos = qos_of(&t.name);
                topics.push((t.name, t.type_name, qos, 0));
            }
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        files.push((name, bounds, count));
        done.push(Reindexed { file: path, complete, cut_bytes, messages: count });
    }
    write_metadata_yaml(dir, &bag_info(topics, files, None))?;
    Ok(done)
}

fn corrupt(path: &Path, detail: String) -> BagWriteError {
    BagWriteError::Io { path: path.to_path_buf(), source: io::Error::new(io::ErrorKind::InvalidData, detail) }
}

/// Cuts an MCAP file after its last complete top-level record and appends a data end record,
/// a footer and the end magic; returns (already complete, bytes cut).
fn close_mcap(path: &Path) -> Result<(bool, u64), BagWriteError> {
    use std::io::{Read, Seek, SeekFrom};
    let io_err = |source| BagWriteError::Io { path: path.to_path_buf(), source };
    let mut f = File::options().read(true).write(true).open(path).map_err(io_err)?;
    let len = f.metadata().map_err(io_err)?.len();
    let mut magic = [0u8; 8];
    f.read_exact(&mut magic).map_err(io_err)?;
    if &magic != MCAP_MAGIC {
        return Err(corrupt(path, "not an MCAP file (no magic at the start)".into()));
    }
    if len >= 8 + 9 + 20 + 8 {
        let mut tail = [0u8; 37];
        f.seek(SeekFrom::Start(len - 37)).map_err(io_err)?;
        f.read_exact(&mut tail).map_err(io_err)?;
        if tail[0] == op::FOOTER && &tail[29..] == MCAP_MAGIC {
            return Ok((true, 0));
        }
    }
    // Walk the records: opcode (1), length (8), body.
    let (mut at, mut last_op) = (8u64, 0u8);
    loop {
        let mut head = [0u8; 9];
        if at + 9 > len {
            break;
        }
        f.seek(SeekFrom::Start(at)).map_err(io_err)?;
        f.read_exact(&mut head).map_err(io_err)?;
        let body = u64::from_le_bytes(head[1..].try_into().expect("8 bytes"));
        let end = at.saturating_add(9).saturating_add(body);
        if end > len || head[0] == op::FOOTER {
            break;
        }
        (at, last_op) = (end, head[0]);
        if last_op == op::DATA_END {
            break;
        }
    }
    f.set_len(at).map_err(io_err)?;
    f.seek(SeekFrom::Start(at)).map_err(io_err)?;
    let mut tail = Vec::new();
    if last_op != op::DATA_END {
        tail.push(op::DATA_END);
        tail.extend_from_slice(&4u64.to_le_bytes());
        tail.extend_from_slice(&0u32.to_le_bytes()); // data section CRC: 0 = not computed
    }
    tail.push(op::FOOTER);
    tail.extend_from_slice(&20u64.to_le_bytes());
    tail.extend_from_slice(&[0u8; 20]); // no summary, no summary offsets, no CRC
    tail.extend_from_slice(MCAP_MAGIC);
    f.write_all(&tail).map_err(io_err)?;
    f.sync_all().map_err(io_err)?;
    Ok((false, len - at))
}

impl Drop for BagWriter {
    fn drop(&mut self) {
        let _ = self.finish_inner();
    }
}

/// The channel's `offered_qos_profiles`: the YAML list rosbag2 (yaml-cpp) dumps, no final newline.
fn qos_string(qos: &Qos) -> Result<String, serde_yaml::Error> {
    let s = serde_yaml::to_string(&[QosYaml::new(qos)])?;
    Ok(s.trim_end().to_string())
}

#[derive(Serialize)]
struct MetadataFile<'a> {
    rosbag2_bagfile_information: &'a BagInfo,
}

/// rosbag2's `BagMetadata`, fields in the order rosbag2 writes them.
#[derive(Serialize)]
struct BagInfo {
    version: u32,
    storage_identifier: &'static str,
    duration: Nanos,
    starting_time: SinceEpoch,
    message_count: u64,
    topics_with_message_count: Vec<TopicWithCount>,
    compression_format: &'static str,
    compression_mode: &'static str,
    relative_file_paths: Vec<String>,
    files: Vec<FileInfo>,
    custom_data: Option<BTreeMap<String, String>>,
    ros_distro: &'static str,
}

#[derive(Serialize)]
struct Nanos {
    nanoseconds: u64,
}

#[derive(Serialize)]
struct SinceEpoch {
    nanoseconds_since_epoch: u64,
}

#[derive(Serialize)]
struct TopicWithCount {
    topic_metadata: TopicMeta,
    message_count: u64,
}

#[derive(Serialize)]
struct TopicMeta {
    name: String,
    #[serde(rename = "type")]
    type_name: String,
    serialization_format: &'static str,
    offered_qos_profiles: Vec<QosYaml>,
    type_description_hash: &'static str,
}

#[derive(Serialize)]
struct FileInfo {
    path: String,
    starting_time: SinceEpoch,
    duration: Nanos,
    message_count: u64,
}

#[derive(Serialize)]
struct SecNsec {
    sec: u64,
    nsec: u64,
}

/// One QoS profile as rosbag2 (metadata version 9) serializes it: policy names, durations.
#[derive(Serialize)]
struct QosYaml {
    history: &'static str,
    depth: u32,
    reliability: &'static str,
    durability: &'static str,
    deadline: SecNsec,
    lifespan: SecNsec,
    liveliness: &'static str,
    liveliness_lease_duration: SecNsec,
    avoid_ros_namespace_conventions: bool,
}

impl QosYaml {
    fn new(q: &Qos) -> Self {
        let inf = || SecNsec { sec: INFINITE.0, nsec: INFINITE.1 };
        QosYaml {
            history: "keep_last",
            depth: q.depth,
            reliability: if q.reliable { "reliable" } else { "best_effort" },
            durability: if q.transient_local { "transient_local" } else { "volatile" },
            deadline: inf(),
            lifespan: inf(),
            liveliness: "automatic",
            liveliness_lease_duration: inf(),
            avoid_ros_namespace_conventions: false,
        }
    }
}
