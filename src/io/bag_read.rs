//! Streaming rosbag2 reader without ROS: MCAP and SQLite (`.db3`) storage.
//!
//! [`open`] takes a bag directory (its `metadata.yaml` names the storage and the files, in order),
//! a directory without `metadata.yaml` holding `.mcap`/`.db3` files (a recording cut short before
//! rosbag2 wrote the metadata: the files are read in the order of their `_N` suffix), or a single
//! `.mcap` or `.db3` file. [`Bag::messages`] streams the raw CDR messages of chosen topics, file
//! by file, each file in log-time order; memory stays bounded by the largest message and, for
//! MCAP, one chunk's read buffer, whatever the bag's length:
//! - MCAP is read front to back with `mcap`'s sans-io [`LinearReader`], fed from the file as it
//!   asks (chunks are decompressed as they stream by). The messages come in file order, which is
//!   log-time order for bags written by rosbag2 and rosbags. Nothing is looked up in the summary
//!   (it is only read for the topic list), so a truncated file yields every message before the
//!   cut (in a compressed chunk: up to the last whole zstd/lz4 block).
//! - SQLite is read by keyset pages of (`timestamp`, `id`) over `timestamp_idx` (metadata only,
//!   [`SQLITE_PAGE`] rows a page), and each selected message's blob by its row id: no statement
//!   outlives a call, and no page holds message data. Schemas 3 (Humble) and 4 (Iron, Jazzy)
//!   and the older ones share the columns read here.
//!
//! Every error names the file and, where known, the topic, the message number and its position
//! ([`MessagePos`]). A storage error ends [`Messages`] after the messages read before it: one
//! `Err`, then `None`. [`decode_frame`] turns an Image or CompressedImage message into a
//! [`FrameMsg`], whose CDR errors concern that message only.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcap::records::{op, Record};
use mcap::sans_io::{LinearReadEvent, LinearReader, LinearReaderOptions};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::msg::cdr::{CdrError, CdrMessage};
use crate::msg::{CompressedImage, FrameMsg, Image};

/// Largest MCAP record (a message, or a chunk's header) the reader accepts, in bytes; a corrupt
/// length above it is an error, not an allocation.
pub const MAX_RECORD_BYTES: usize = 256 << 20;

/// SQLite rows (id, topic, timestamp; no data) fetched per keyset page.
pub const SQLITE_PAGE: i64 = 256;

/// MCAP magic at the start and the end of a file.
pub(crate) const MCAP_MAGIC: &[u8; 8] = b"\x89MCAP0\r\n";

/// Opcode and length that start every MCAP record, in bytes.
const RECORD_PREFIX: u64 = 9;

/// A storage plugin of rosbag2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// `mcap`: `.mcap` files.
    Mcap,
    /// `sqlite3`: `.db3` files.
    Sqlite3,
}

/// One storage file of a bag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BagFile {
    /// The file.
    pub path: PathBuf,
    /// Its storage format.
    pub storage: Storage,
}

/// A topic of a bag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TopicInfo {
    /// Topic name, e.g. `/camera/image_raw`.
    pub name: String,
    /// Full message type, e.g. `sensor_msgs/msg/Image`.
    pub type_name: String,
}

/// Where a message lies in its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// MCAP: inside the chunk record that starts at this byte offset.
    McapChunk {
        /// Offset of the chunk record's opcode, in bytes.
        offset: u64,
    },
    /// MCAP: a message record outside any chunk, at this byte offset.
    McapRecord {
        /// Offset of the message record's opcode, in bytes.
        offset: u64,
    },
    /// SQLite: the row of the `messages` table with this `id`.
    SqliteRow {
        /// The row's `id`.
        id: i64,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::McapChunk { offset } => write!(f, "chunk at byte offset {offset}"),
            Location::McapRecord { offset } => write!(f, "byte offset {offset}"),
            Location::SqliteRow { id } => write!(f, "row id {id}"),
        }
    }
}

/// One message of a bag, its data still CDR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BagMessage {
    /// Topic name.
    pub topic: String,
    /// Full message type, e.g. `sensor_msgs/msg/Image`.
    pub type_name: String,
    /// Time the recorder received the message, in ns since the epoch.
    pub log_time_ns: i64,
    /// The serialized message (CDR, encapsulation header first).
    pub data: Vec<u8>,
    /// The storage file holding it.
    pub file: PathBuf,
    /// Number of the message in its file, from 0, counting every topic, in reading order.
    pub index: u64,
    /// Position of the message in its file.
    pub location: Location,
}

impl BagMessage {
    /// File, topic, number and location of the message, for error messages.
    pub fn pos(&self) -> MessagePos {
        MessagePos { file: self.file.clone(), topic: self.topic.clone(), index: self.index, location: self.location }
    }
}

/// Identifies one message in an error: displays as `FILE: topic T, message N (LOCATION)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessagePos {
    /// The storage file.
    pub file: PathBuf,
    /// The message's topic.
    pub topic: String,
    /// Number of the message in its file ([`BagMessage::index`]).
    pub index: u64,
    /// Position of the message in its file.
    pub location: Location,
}

impl fmt::Display for MessagePos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: topic {}, message {} ({})", self.file.display(), self.topic, self.index, self.location)
    }
}

/// Everything that can go wrong reading a bag. Each error names the file (or directory).
#[derive(Debug, thiserror::Error)]
pub enum BagError {
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The path is not a rosbag2 bag, or a file is not of the storage format it claims.
    #[error("not a rosbag2 bag: {}: {detail}", path.display())]
    NotABag {
        /// The path given, or the file that is not what it claims to be.
        path: PathBuf,
        /// What is missing or wrong.
        detail: String,
    },
    /// `metadata.yaml` names a storage plugin other than `mcap` and `sqlite3`.
    #[error("{}: unsupported storage '{storage}' (supported: mcap, sqlite3)", path.display())]
    UnsupportedStorage {
        /// The `metadata.yaml` file.
        path: PathBuf,
        /// The storage identifier it names.
        storage: String,
    },
    /// `metadata.yaml` is malformed, lists a missing file, or asks for something unsupported.
    #[error("{}: {detail}", path.display())]
    Metadata {
        /// The `metadata.yaml` file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A storage file is truncated or corrupt (MCAP framing, SQLite database).
    #[error("{}: {detail}", file.display())]
    Corrupt {
        /// The storage file.
        file: PathBuf,
        /// What is wrong and where, e.g. `truncated MCAP: chunk at byte 123456 cut short ...`.
        detail: String,
    },
    /// A message's CDR bytes could not be decoded.
    #[error("{pos}: {source}")]
    Cdr {
        /// The message.
        pos: MessagePos,
        /// The decoding error (it names the field and the offset in the message).
        source: CdrError,
    },
    /// A message is neither a sensor_msgs/msg/Image nor a sensor_msgs/msg/CompressedImage.
    #[error("{pos}: type {type_name} is not sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage")]
    NotAnImage {
        /// The message.
        pos: MessagePos,
        /// The message's type.
        type_name: String,
    },
}

impl BagError {
    /// The file (or directory) the error is about.
    pub fn path(&self) -> &Path {
        match self {
            BagError::Io { path, .. }
            | BagError::NotABag { path, .. }
            | BagError::UnsupportedStorage { path, .. }
            | BagError::Metadata { path, .. } => path,
            BagError::Corrupt { file, .. } => file,
            BagError::Cdr { pos, .. } | BagError::NotAnImage { pos, .. } => &pos.file,
        }
    }

    fn io(path: &Path, source: std::io::Error) -> Self {
        BagError::Io { path: path.to_path_buf(), source }
    }

    fn corrupt(file: &Path, detail: impl Into<String>) -> Self {
        BagError::Corrupt { file: file.to_path_buf(), detail: detail.into() }
    }

    fn not_a_bag(path: &Path, detail: impl Into<String>) -> Self {
        BagError::NotABag { path: path.to_path_buf(), detail: detail.into() }
    }
}

/// An opened bag: its files and topics. Reading happens in [`Bag::messages`].
#[derive(Clone, Debug)]
pub struct Bag {
    path: PathBuf,
    files: Vec<BagFile>,
    topics: Vec<TopicInfo>,
}

/// Opens a rosbag2 bag: a directory with `metadata.yaml` (or, without one, with `.mcap`/`.db3`
/// files), a single `.mcap` or `.db3` file, or a bag's `metadata.yaml`. Checks that every file
/// is readable storage of its kind and reads the topic list (MCAP: from the summary, or by a scan
/// when the file has none).
pub fn open(path: &Path) -> Result<Bag, BagError> {
    let meta = std::fs::metadata(path).map_err(|e| BagError::io(path, e))?;
    let files = if meta.is_dir() {
        let yaml = path.join("metadata.yaml");
        if yaml.is_file() {
            files_from_metadata(path, &yaml)?
        } else {
            files_in_dir(path)?
        }
    } else if path.file_name().is_some_and(|n| n == "metadata.yaml") {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        files_from_metadata(dir, path)?
    } else {
        match storage_of(path) {
            Some(storage) => vec![BagFile { path: path.to_path_buf(), storage }],
            None => {
                return Err(BagError::not_a_bag(
                    path,
                    "expected a bag directory (with metadata.yaml) or a .mcap or .db3 file",
                ))
            }
        }
    };
    let mut topics: Vec<TopicInfo> = Vec::new();
    for f in &files {
        let found = match f.storage {
            Storage::Mcap => mcap_topics(&f.path)?,
            Storage::Sqlite3 => SqliteMessages::open(&f.path, None)?.topic_list(),
        };
        for t in found {
            if !topics.contains(&t) {
                topics.push(t);
            }
        }
    }
    Ok(Bag { path: path.to_path_buf(), files, topics })
}

/// The storage of a file, by its extension.
fn storage_of(path: &Path) -> Option<Storage> {
    match path.extension()?.to_str()? {
        "mcap" => Some(Storage::Mcap),
        "db3" => Some(Storage::Sqlite3),
        _ => None,
    }
}

/// The files `metadata.yaml` lists, in order, with the storage it names.
fn files_from_metadata(dir: &Path, yaml: &Path) -> Result<Vec<BagFile>, BagError> {
    let bad = |detail: String| BagError::Metadata { path: yaml.to_path_buf(), detail };
    let text = std::fs::read_to_string(yaml).map_err(|e| BagError::io(yaml, e))?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| bad(format!("not valid YAML: {e}")))?;
    let info = doc
        .get("rosbag2_bagfile_information")
        .ok_or_else(|| bad("no rosbag2_bagfile_information: not a rosbag2 metadata file".into()))?;
    let mode = info.get("compression_mode").and_then(|v| v.as_str()).unwrap_or("");
    if !mode.is_empty() && !mode.eq_ignore_ascii_case("none") {
        let format = info.get("compression_format").and_then(|v| v.as_str()).unwrap_or("?");
        return Err(bad(format!(
            "compressed bag (compression_mode {mode}, format {format}) is not supported; \
             decompress it first (`ros2 bag convert`)"
        )));
    }
    let storage = match info.get("storage_identifier").and_then(|v| v.as_str()).unwrap_or("") {
        "mcap" => Some(Storage::Mcap),
        "sqlite3" => Some(Storage::Sqlite3),
        "" => None,
        other => return Err(BagError::UnsupportedStorage { path: yaml.to_path_buf(), storage: other.to_string() }),
    };
    let names = info
        .get("relative_file_paths")
        .and_then(|v| v.as_sequence())
        .ok_or_else(|| bad("no relative_file_paths list".into()))?;
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        let name = name.as_str().ok_or_else(|| bad(format!("relative_file_paths entry {name:?} is not a string")))?;
        // Some rosbag2 versions wrote the bag directory's name before the file's: fall back to
        // the file name in this directory, as rosbags does.
        let mut path = dir.join(name);
        if !path.is_file() {
            if let Some(base) = Path::new(name).file_name() {
                path = dir.join(base);
            }
        }
        if !path.is_file() {
            return Err(bad(format!("lists {name}, which is not a file in {}", dir.display())));
        }
        let storage = match storage.or_else(|| storage_of(&path)) {
            Some(s) => s,
            None => return Err(bad(format!("no storage_identifier, and {name} is not .mcap or .db3"))),
        };
        files.push(BagFile { path, storage });
    }
    if files.is_empty() {
        return Err(bad("relative_file_paths is empty".into()));
    }
    Ok(files)
}

/// The `.mcap`/`.db3` files of a directory without `metadata.yaml`, by their `_N` suffix.
pub(crate) fn files_in_dir(dir: &Path) -> Result<Vec<BagFile>, BagError> {
    let entries = std::fs::read_dir(dir).map_err(|e| BagError::io(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| BagError::io(dir, e))?.path();
        if let Some(storage) = storage_of(&path).filter(|_| path.is_file()) {
            files.push(BagFile { path, storage });
        }
    }
    if files.is_empty() {
        return Err(BagError::not_a_bag(dir, "no metadata.yaml and no .mcap/.db3"));
    }
    // bag_0.mcap, bag_1.mcap, ..., bag_10.mcap: by the number after the last '_', then by name.
    let key = |f: &BagFile| {
        let stem = f.path.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_string();
        let n = stem.rsplit_once('_').and_then(|(_, n)| n.parse::<u64>().ok()).unwrap_or(0);
        (n, stem)
    };
    files.sort_by_key(key);
    Ok(files)
}

impl Bag {
    /// The path the bag was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The storage files, in reading order.
    pub fn files(&self) -> &[BagFile] {
        &self.files
    }

    /// The topics of all files, each (name, type) once, in the order first found.
    pub fn topics(&self) -> Vec<TopicInfo> {
        self.topics.clone()
    }

    /// Streams the messages of `topics` (all topics when empty): the files in order, each in
    /// log-time order. A storage error is the last item.
    pub fn messages(&self, topics: &[&str]) -> Messages {
        let selected = (!topics.is_empty()).then(|| Arc::new(topics.iter().map(|t| t.to_string()).collect()));
        Messages { files: self.files.clone().into_iter(), selected, current: None, done: false }
    }
}

/// The iterator of [`Bag::messages`]. It owns what it reads: it outlives the [`Bag`].
pub struct Messages {
    files: std::vec::IntoIter<BagFile>,
    selected: Option<Arc<HashSet<String>>>,
    current: Option<FileMessages>,
    done: bool,
}

/// The reader of the file being read.
enum FileMessages {
    Mcap(Box<McapMessages>),
    Sqlite(Box<SqliteMessages>),
}

impl Iterator for Messages {
    type Item = Result<BagMessage, BagError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let current = match &mut self.current {
                Some(c) => c,
                None => {
                    let Some(file) = self.files.next() else {
                        self.done = true;
                        break;
                    };
                    let opened = match file.storage {
                        Storage::Mcap => McapMessages::open(&file.path, 0, self.selected.clone())
                            .map(|m| FileMessages::Mcap(Box::new(m))),
                        Storage::Sqlite3 => SqliteMessages::open(&file.path, self.selected.clone())
                            .map(|m| FileMessages::Sqlite(Box::new(m))),
                    };
                    match opened {
                        Ok(m) => self.current.insert(m),
                        Err(e) => {
                            self.done = true;
                            return Some(Err(e));
                        }
                    }
                }
            };
            let next = match current {
                FileMessages::Mcap(m) => m.next_message(),
                FileMessages::Sqlite(m) => m.next_message(),
            };
            match next {
                Ok(Some(msg)) => return Some(Ok(msg)),
                Ok(None) => self.current = None,
                Err(e) => {
                    self.done = true;
                    self.current = None;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

impl std::iter::FusedIterator for Messages {}

// ---------------------------------------------------------------------------------------------
// MCAP

/// Name of an MCAP record kind, for error messages.
fn record_kind(opcode: u8) -> &'static str {
    match opcode {
        op::HEADER => "header",
        op::FOOTER => "footer",
        op::SCHEMA => "schema",
        op::CHANNEL => "channel",
        op::MESSAGE => "message",
        op::CHUNK => "chunk",
        op::MESSAGE_INDEX => "message index",
        op::CHUNK_INDEX => "chunk index",
        op::ATTACHMENT => "attachment",
        op::ATTACHMENT_INDEX => "attachment index",
        op::STATISTICS => "statistics",
        op::METADATA => "metadata",
        op::METADATA_INDEX => "metadata index",
        op::SUMMARY_OFFSET => "summary offset",
        op::DATA_END => "data end",
        _ => "unknown",
    }
}

/// A top-level MCAP record, as the bytes fed to the reader show it.
#[derive(Clone, Copy, Debug)]
struct TopRecord {
    /// Offset of its opcode, in bytes.
    start: u64,
    /// Its opcode, if the file holds it.
    opcode: Option<u8>,
    /// Offset one past its end, as its length field says, in bytes.
    end: u64,
}

/// Tracks the top-level record that the fed bytes have reached. The reader is fed only the bytes
/// it asks for, and it asks only within the record it is reading, so the record holding the last
/// fed byte is the one it is reading (for a message from a chunk: that chunk).
#[derive(Debug)]
struct Framer {
    /// Offset of the next top-level record not yet reached.
    next_at: u64,
    /// The record the reader is in.
    current: Option<TopRecord>,
    /// The last chunk record reached, for [`Framer::check`]'s error.
    last_chunk: Option<TopRecord>,
    /// Past the footer (the end magic follows): no more records.
    done: bool,
}

impl Framer {
    /// Moves to the record holding byte `fed - 1`, reading record headers through `peek`.
    fn advance(&mut self, peek: &mut File, fed: u64, file_len: u64) -> std::io::Result<()> {
        while !self.done && self.next_at < fed {
            let start = self.next_at;
            let mut head = [0u8; RECORD_PREFIX as usize];
            let avail = file_len.saturating_sub(start).min(RECORD_PREFIX) as usize;
            peek.seek(SeekFrom::Start(start))?;
            peek.read_exact(&mut head[..avail])?;
            let opcode = (avail >= 1).then_some(head[0]);
            if avail < RECORD_PREFIX as usize {
                self.current = Some(TopRecord { start, opcode, end: u64::MAX });
                self.done = true;
                break;
            }
            let len = u64::from_le_bytes(head[1..].try_into().expect("8 bytes"));
            let end = start.saturating_add(RECORD_PREFIX).saturating_add(len);
            self.current = Some(TopRecord { start, opcode, end });
            if opcode == Some(op::CHUNK) {
                self.last_chunk = self.current;
            }
            self.next_at = end;
            if opcode == Some(op::FOOTER) {
                self.done = true;
            }
        }
        Ok(())
    }

    /// Checks that a record the reader yields (`data_len` bytes after its prefix, the fed bytes
    /// ending at `fed`) is where the file's framing puts one: in a chunk, or exactly the
    /// top-level record the fed bytes end in; and never a chunk itself.
    ///
    /// mcap 0.26's reader lets a record inside an uncompressed chunk run past the chunk's end:
    /// its count of the chunk's bytes left underflows (a panic where overflow checks are on,
    /// else it wraps and reads the records after the chunk as if they were in it, yielding a
    /// message made of two records' bytes and skipping the messages of later chunks). Found by
    /// fuzzing (`fuzz/regressions/bag/`).
    fn check(&self, opcode: u8, data_len: usize, in_chunk: bool, fed: u64) -> Result<(), String> {
        let whole = self.current.is_some_and(|r| {
            r.opcode == Some(opcode) && r.end == fed && r.end - r.start == RECORD_PREFIX + data_len as u64
        });
        if opcode != op::CHUNK && (in_chunk || whole) {
            return Ok(());
        }
        Err(match self.last_chunk {
            Some(c) if opcode == op::CHUNK => format!("a chunk record inside the chunk at byte {}", c.start),
            Some(c) if c.end < fed => format!(
                "a record (opcode {opcode:#04x}, {}) in the chunk at byte {} runs past the chunk's end at byte {}",
                record_kind(opcode),
                c.start,
                c.end
            ),
            _ => format!(
                "a record (opcode {opcode:#04x}, {}) ending at byte {fed} is not where the file's framing puts one",
                record_kind(opcode)
            ),
        })
    }
}

/// A channel: topic, type, and whether its messages are wanted.
struct Channel {
    topic: String,
    type_name: String,
    selected: bool,
}

/// Streams the messages of one MCAP file (or, from the summary's offset, its channels).
struct McapMessages {
    path: PathBuf,
    src: BufReader<File>,
    peek: File,
    file_len: u64,
    /// Offset of the next byte to feed.
    fed: u64,
    framer: Framer,
    reader: LinearReader,
    /// Schema id -> schema name (the message type).
    schemas: HashMap<u16, String>,
    channels: HashMap<u16, Channel>,
    /// Channel ids in the order first seen.
    channel_order: Vec<u16>,
    /// Wanted topics; `None`: all.
    selected: Option<Arc<HashSet<String>>>,
    /// Messages read so far (every channel).
    count: u64,
    /// Past the data end (or the footer, reading the summary): nothing more to yield.
    finished: bool,
}

impl McapMessages {
    /// Opens `path` to read from byte `start` (0: the whole file, checking the magic; else the
    /// offset of a record, e.g. the summary's).
    fn open(path: &Path, start: u64, selected: Option<Arc<HashSet<String>>>) -> Result<Self, BagError> {
        let mut file = File::open(path).map_err(|e| BagError::io(path, e))?;
        let file_len = file.metadata().map_err(|e| BagError::io(path, e))?.len();
        if start == 0 {
            check_mcap_magic(path, &mut file, file_len)?;
        }
        file.seek(SeekFrom::Start(start)).map_err(|e| BagError::io(path, e))?;
        let peek = File::open(path).map_err(|e| BagError::io(path, e))?;
        let options = LinearReaderOptions::default()
            .with_skip_start_magic(start > 0)
            .with_skip_end_magic(true)
            .with_validate_chunk_crcs(true)
            .with_record_length_limit(MAX_RECORD_BYTES);
        Ok(Self {
            path: path.to_path_buf(),
            src: BufReader::with_capacity(64 << 10, file),
            peek,
            file_len,
            fed: start,
            framer: Framer {
                next_at: if start == 0 { MCAP_MAGIC.len() as u64 } else { start },
                current: None,
                last_chunk: None,
                done: false,
            },
            reader: LinearReader::new_with_options(options),
            schemas: HashMap::new(),
            channels: HashMap::new(),
            channel_order: Vec::new(),
            selected,
            count: 0,
            finished: false,
        })
    }

    /// The next wanted message; `None` at the data end (or the summary's footer). After an
    /// error, `None`.
    fn next_message(&mut self) -> Result<Option<BagMessage>, BagError> {
        if self.finished {
            return Ok(None);
        }
        let next = self.read_next();
        if next.is_err() {
            self.finished = true;
        }
        next
    }

    fn read_next(&mut self) -> Result<Option<BagMessage>, BagError> {
        loop {
            // A panic of mcap's reader (overflow checks on, see `Framer::check`) is this file's
            // fault: it ends the file with an error, not the process.
            let reader = &mut self.reader;
            let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let reader = reader; // moved in: the event borrows it past the call
                reader.next_event()
            }));
            let event = match next {
                Err(panic) => {
                    let why =
                        panic.downcast_ref::<&str>().copied().or(panic.downcast_ref::<String>().map(String::as_str));
                    let detail = format!(
                        "MCAP: the reader failed on this file: {} ({} messages read)",
                        why.unwrap_or("panic"),
                        self.count
                    );
                    return Err(BagError::corrupt(&self.path, detail));
                }
                Ok(None) => return Err(self.ended_early()),
                Ok(Some(Err(e))) => return Err(self.mcap_error(&e)),
                Ok(Some(Ok(event))) => event,
            };
            let (opcode, data) = match event {
                LinearReadEvent::ReadRequest(need) => {
                    // Never more than the file still holds: a corrupt length must not allocate.
                    let left = self.file_len.saturating_sub(self.fed);
                    let n = (need as u64).min(left) as usize;
                    let buf = self.reader.insert(n);
                    let got = read_some(&mut self.src, buf).map_err(|e| BagError::io(&self.path, e))?;
                    self.reader.notify_read(got);
                    self.fed += got as u64;
                    self.framer
                        .advance(&mut self.peek, self.fed, self.file_len)
                        .map_err(|e| BagError::io(&self.path, e))?;
                    continue;
                }
                LinearReadEvent::Record { opcode, data } => (opcode, data),
            };
            let current = self.framer.current;
            let in_chunk = current.is_some_and(|r| r.opcode == Some(op::CHUNK));
            if let Err(detail) = self.framer.check(opcode, data.len(), in_chunk, self.fed) {
                return Err(BagError::corrupt(&self.path, format!("MCAP: {detail} ({} messages read)", self.count)));
            }
            match opcode {
                op::DATA_END | op::FOOTER if !in_chunk => {
                    self.finished = true;
                    return Ok(None);
                }
                op::SCHEMA | op::CHANNEL | op::MESSAGE => {}
                _ => continue,
            }
            let at = current.map_or(0, |r| r.start);
            let record = match mcap::parse_record(opcode, data) {
                Ok(r) => r,
                Err(e) => {
                    let detail = format!(
                        "MCAP: bad {} record in the {} at byte {at}: {}",
                        record_kind(opcode),
                        current.and_then(|r| r.opcode).map_or("record", record_kind),
                        error_chain(&e)
                    );
                    return Err(BagError::corrupt(&self.path, detail));
                }
            };
            match record {
                Record::Schema { header, .. } => {
                    self.schemas.insert(header.id, header.name);
                }
                Record::Channel(ch) => {
                    if !self.channels.contains_key(&ch.id) {
                        self.channel_order.push(ch.id);
                    }
                    let type_name = self.schemas.get(&ch.schema_id).cloned().unwrap_or_default();
                    let selected = self.selected.as_ref().is_none_or(|s| s.contains(&ch.topic));
                    self.channels.insert(ch.id, Channel { topic: ch.topic, type_name, selected });
                }
                Record::Message { header, data } => {
                    let index = self.count;
                    self.count += 1;
                    let location =
                        if in_chunk { Location::McapChunk { offset: at } } else { Location::McapRecord { offset: at } };
                    let Some(channel) = self.channels.get(&header.channel_id) else {
                        let detail = format!(
                            "MCAP: message {index} ({location}) is on channel {}, which no channel record defines",
                            header.channel_id
                        );
                        return Err(BagError::corrupt(&self.path, detail));
                    };
                    if !channel.selected {
                        continue;
                    }
                    let Ok(log_time_ns) = i64::try_from(header.log_time) else {
                        let detail = format!(
                            "topic {}, message {index} ({location}): log time {} ns is past the year 2262",
                            channel.topic, header.log_time
                        );
                        return Err(BagError::corrupt(&self.path, detail));
                    };
                    return Ok(Some(BagMessage {
                        topic: channel.topic.clone(),
                        type_name: channel.type_name.clone(),
                        log_time_ns,
                        data: data.into_owned(),
                        file: self.path.clone(),
                        index,
                        location,
                    }));
                }
                _ => {}
            }
        }
    }

    /// The error for a file whose reader stopped cleanly at a record boundary before the data
    /// end record (a recording cut short between two records).
    fn ended_early(&self) -> BagError {
        let after = match self.framer.current {
            Some(r) => format!(" after the {} record at byte {}", r.opcode.map_or("unknown", record_kind), r.start),
            None => String::new(),
        };
        BagError::corrupt(
            &self.path,
            format!(
                "truncated MCAP: the file ends at byte {}{after}, before the data end record \
                 ({} messages read)",
                self.file_len, self.count
            ),
        )
    }

    /// Words an error of the MCAP reader with the record it happened in.
    fn mcap_error(&self, e: &mcap::McapError) -> BagError {
        let read = format!("{} messages read", self.count);
        let detail = match (e, self.framer.current) {
            (mcap::McapError::UnexpectedEof, Some(r)) if self.fed < r.end || r.end == u64::MAX => {
                let kind = r.opcode.map_or("record", record_kind);
                let needs = if r.end == u64::MAX { String::new() } else { format!(" (it ends at byte {})", r.end) };
                format!(
                    "truncated MCAP: {kind} at byte {} cut short{needs}; the file ends at byte {} ({read})",
                    r.start, self.file_len
                )
            }
            (mcap::McapError::UnexpectedEof, r) => {
                let after = r.map_or(String::new(), |r| {
                    format!(" after the {} record at byte {}", r.opcode.map_or("unknown", record_kind), r.start)
                });
                format!(
                    "truncated MCAP: the file ends at byte {}{after}, before the data end record ({read})",
                    self.file_len
                )
            }
            (e, Some(r)) => {
                let kind = r.opcode.map_or("unknown", record_kind);
                format!("MCAP: {} in the {kind} record at byte {} ({read})", error_chain(e), r.start)
            }
            (e, None) => format!("MCAP: {} ({read})", error_chain(e)),
        };
        BagError::corrupt(&self.path, detail)
    }

    /// The topics of the channels read so far, each (name, type) once, in channel order.
    fn topic_list(&self) -> Vec<TopicInfo> {
        let mut topics: Vec<TopicInfo> = Vec::new();
        for id in &self.channel_order {
            let ch = &self.channels[id];
            let t = TopicInfo { name: ch.topic.clone(), type_name: ch.type_name.clone() };
            if !topics.contains(&t) {
                topics.push(t);
            }
        }
        topics
    }
}

/// Reads into `buf` until it is full or the file ends; returns the bytes read.
fn read_some(src: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match src.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// An error and its sources, `: `-separated (`mcap`'s parse errors keep the detail in a source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Checks the MCAP magic at the start of the file.
fn check_mcap_magic(path: &Path, file: &mut File, file_len: u64) -> Result<(), BagError> {
    let mut magic = [0u8; 8];
    if file_len < magic.len() as u64 {
        return Err(BagError::not_a_bag(path, format!("not an MCAP file: only {file_len} bytes")));
    }
    file.read_exact(&mut magic).map_err(|e| BagError::io(path, e))?;
    if &magic != MCAP_MAGIC {
        return Err(BagError::not_a_bag(path, "not an MCAP file: no MCAP magic at the start"));
    }
    Ok(())
}

/// The summary section's offset from the footer, or `None` when the file has no (readable)
/// footer or no summary.
fn mcap_summary_start(path: &Path, file_len: u64) -> Result<Option<u64>, BagError> {
    // Footer record (opcode, length 20, summary start, summary offset start, CRC), end magic.
    const TAIL: u64 = 1 + 8 + 8 + 8 + 4 + 8;
    if file_len < 8 + TAIL {
        return Ok(None);
    }
    let mut file = File::open(path).map_err(|e| BagError::io(path, e))?;
    let mut tail = [0u8; TAIL as usize];
    file.seek(SeekFrom::Start(file_len - TAIL)).map_err(|e| BagError::io(path, e))?;
    file.read_exact(&mut tail).map_err(|e| BagError::io(path, e))?;
    let len = u64::from_le_bytes(tail[1..9].try_into().expect("8 bytes"));
    if tail[0] != op::FOOTER || len != 20 || &tail[29..] != MCAP_MAGIC {
        return Ok(None);
    }
    let start = u64::from_le_bytes(tail[9..17].try_into().expect("8 bytes"));
    Ok((start >= 8 && start < file_len - TAIL).then_some(start))
}

/// The topics of an MCAP file: from its summary, or by reading it through when it has none (a
/// file cut short: its topics up to the cut).
fn mcap_topics(path: &Path) -> Result<Vec<TopicInfo>, BagError> {
    let nothing = Some(Arc::new(HashSet::new()));
    let mut scan = McapMessages::open(path, 0, nothing.clone())?;
    if let Some(start) = mcap_summary_start(path, scan.file_len)? {
        let mut summary = McapMessages::open(path, start, nothing)?;
        if matches!(summary.next_message(), Ok(None)) && !summary.channels.is_empty() {
            return Ok(summary.topic_list());
        }
    }
    // No summary: every channel record is in the data section. An error only ends the list.
    while let Ok(Some(_)) = scan.next_message() {}
    Ok(scan.topic_list())
}

// ---------------------------------------------------------------------------------------------
// SQLite

/// A topic of a `.db3` file.
struct SqliteTopic {
    name: String,
    type_name: String,
    selected: bool,
}

/// Streams the messages of one `.db3` file in (timestamp, id) order.
struct SqliteMessages {
    path: PathBuf,
    conn: Connection,
    /// Topic id -> topic, in id order.
    topics: Vec<(i64, SqliteTopic)>,
    /// The current page: (id, topic id, timestamp), next row last.
    page: Vec<(i64, i64, i64)>,
    /// Key of the last row fetched: (timestamp, id).
    last: (i64, i64),
    /// The last page was short: no rows after it.
    exhausted: bool,
    /// Rows read so far (every topic).
    count: u64,
}

impl SqliteMessages {
    /// Opens a `.db3` read-only, checks its tables and reads its topics.
    fn open(path: &Path, selected: Option<Arc<HashSet<String>>>) -> Result<Self, BagError> {
        if !path.is_file() {
            return Err(BagError::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")));
        }
        let sql_err = |e: rusqlite::Error| BagError::corrupt(path, format!("SQLite: {e}"));
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(sql_err)?;
        let tables: i64 = match conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('messages', 'topics')",
            [],
            |r| r.get(0),
        ) {
            Ok(n) => n,
            Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::NotADatabase => {
                return Err(BagError::not_a_bag(path, "not a SQLite database"))
            }
            Err(e) => return Err(sql_err(e)),
        };
        if tables != 2 {
            return Err(BagError::not_a_bag(path, "SQLite database without rosbag2's messages and topics tables"));
        }
        let mut topics = Vec::new();
        {
            let mut stmt = conn.prepare("SELECT id, name, type FROM topics ORDER BY id").map_err(sql_err)?;
            let mut rows = stmt.query([]).map_err(sql_err)?;
            while let Some(row) = rows.next().map_err(sql_err)? {
                let name: String = row.get(1).map_err(sql_err)?;
                let selected = selected.as_ref().is_none_or(|s| s.contains(&name));
                let type_name = row.get(2).map_err(sql_err)?;
                topics.push((row.get(0).map_err(sql_err)?, SqliteTopic { name, type_name, selected }));
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            conn,
            topics,
            page: Vec::new(),
            last: (i64::MIN, i64::MIN),
            exhausted: false,
            count: 0,
        })
    }

    /// The topics, each (name, type) once, in id order.
    fn topic_list(&self) -> Vec<TopicInfo> {
        let mut topics: Vec<TopicInfo> = Vec::new();
        for (_, t) in &self.topics {
            let t = TopicInfo { name: t.name.clone(), type_name: t.type_name.clone() };
            if !topics.contains(&t) {
                topics.push(t);
            }
        }
        topics
    }

    /// Fetches the next page of (id, topic id, timestamp) after `last`.
    fn fetch_page(&mut self) -> rusqlite::Result<()> {
        let mut stmt = self.conn.prepare(
            "SELECT id, topic_id, timestamp FROM messages WHERE (timestamp, id) > (?1, ?2) \
             ORDER BY timestamp, id LIMIT ?3",
        )?;
        let mut rows = stmt.query(rusqlite::params![self.last.0, self.last.1, SQLITE_PAGE])?;
        let mut page = Vec::with_capacity(SQLITE_PAGE as usize);
        while let Some(row) = rows.next()? {
            page.push((row.get(0)?, row.get(1)?, row.get(2)?));
        }
        self.exhausted = (page.len() as i64) < SQLITE_PAGE;
        if let Some(&(id, _, ts)) = page.last() {
            self.last = (ts, id);
        }
        page.reverse();
        self.page = page;
        Ok(())
    }

    /// The next wanted message; `None` after the last row.
    fn next_message(&mut self) -> Result<Option<BagMessage>, BagError> {
        loop {
            if self.page.is_empty() {
                if self.exhausted {
                    return Ok(None);
                }
                if let Err(e) = self.fetch_page() {
                    self.exhausted = true;
                    let after = if self.count == 0 {
                        "reading the first messages".to_string()
                    } else {
                        format!("reading the messages after row id {} ({} messages read)", self.last.1, self.count)
                    };
                    return Err(BagError::corrupt(&self.path, format!("SQLite: {e} ({after})")));
                }
                continue;
            }
            let (id, topic_id, timestamp) = self.page.pop().expect("page is not empty");
            let index = self.count;
            self.count += 1;
            let location = Location::SqliteRow { id };
            let Some((_, topic)) = self.topics.iter().find(|(tid, _)| *tid == topic_id) else {
                self.page.clear();
                self.exhausted = true;
                return Err(BagError::corrupt(
                    &self.path,
                    format!("message {index} ({location}) has topic_id {topic_id}, which the topics table lacks"),
                ));
            };
            if !topic.selected {
                continue;
            }
            // A blob, or text where a tool rewrote the column with string functions.
            let blob = |r: &rusqlite::Row<'_>| match r.get_ref(0)? {
                ValueRef::Blob(b) | ValueRef::Text(b) => Ok(b.to_vec()),
                other => Err(rusqlite::Error::InvalidColumnType(0, "data".into(), other.data_type())),
            };
            let data = match self.conn.query_row("SELECT data FROM messages WHERE id = ?1", [id], blob) {
                Ok(d) => d,
                Err(e) => {
                    self.page.clear();
                    self.exhausted = true;
                    return Err(BagError::corrupt(
                        &self.path,
                        format!("topic {}, message {index} ({location}): SQLite: {e}", topic.name),
                    ));
                }
            };
            return Ok(Some(BagMessage {
                topic: topic.name.clone(),
                type_name: topic.type_name.clone(),
                log_time_ns: timestamp,
                data,
                file: self.path.clone(),
                index,
                location,
            }));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Frames

/// Decodes an Image or CompressedImage message's CDR.
pub fn decode_frame(msg: &BagMessage) -> Result<FrameMsg, BagError> {
    let decoded = match msg.type_name.as_str() {
        Image::TYPE_NAME => Image::decode(&msg.data).map(FrameMsg::Raw),
        CompressedImage::TYPE_NAME => CompressedImage::decode(&msg.data).map(FrameMsg::Compressed),
        other => return Err(BagError::NotAnImage { pos: msg.pos(), type_name: other.to_string() }),
    };
    decoded.map_err(|source| BagError::Cdr { pos: msg.pos(), source })
}
