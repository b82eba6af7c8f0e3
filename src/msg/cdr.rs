//! CDR (XCDR1, as ROS 2 and rosbag2 use it) for the messages the replay reads and writes.
//!
//! A serialized message is a 4-byte encapsulation header (`00 00` big-endian, `00 01`
//! little-endian, then two option bytes) followed by the fields in declaration order, each
//! primitive aligned to its own size counted from the end of the header. Strings are a `u32`
//! length that includes the NUL terminator, the bytes and the NUL; sequences are a `u32` count
//! and the elements. [`CdrReader`] checks every length against the bytes left before it reads or
//! allocates, so malformed input is a [`CdrError`], never a panic or a huge allocation.
//! [`CdrWriter`] writes little-endian, byte for byte what rosbags and Fast CDR write (no trailing
//! padding). The message types implement [`CdrMessage`] (`decode`/`encode`); [`schema`] gives the
//! `ros2msg` schema text rosbag2 MCAP files carry for each of them.

use super::{Bool, CompressedImage, DiagnosticArray, DiagnosticStatus, Header, Image, KeyValue, Time};

/// Size of the encapsulation header; alignment is counted from its end.
const HEADER_LEN: usize = 4;

/// A CDR message that could not be decoded. Offsets count from the first byte of the message
/// (the encapsulation header included), as a hex dump of it shows them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CdrError {
    /// The message is shorter than the encapsulation header.
    #[error("CDR: message is {len} bytes, shorter than the 4-byte encapsulation header")]
    NoHeader {
        /// Message length [bytes].
        len: usize,
    },
    /// The encapsulation kind is not plain CDR (big- or little-endian).
    #[error(
        "CDR: encapsulation {0:02x} {1:02x} is not CDR_BE (00 00) or CDR_LE (00 01) \
         (parameter lists and XCDR2 are not supported)"
    )]
    Encapsulation(u8, u8),
    /// A fixed-size field runs past the end of the message.
    #[error("CDR: {what} needs {need} bytes at offset {offset} but only {left} are left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Offset of the field [bytes].
        offset: usize,
        /// Size of the field [bytes].
        need: usize,
        /// Bytes left in the message from `offset`.
        left: usize,
    },
    /// A string length or sequence count is larger than the rest of the message can hold.
    #[error("CDR: {what} length {len} at offset {offset} exceeds the {left} bytes left")]
    Length {
        /// The string or sequence being read.
        what: &'static str,
        /// The length or count read from the message.
        len: u32,
        /// Offset of the length field [bytes].
        offset: usize,
        /// Bytes left in the message after the length field.
        left: usize,
    },
    /// A string does not end with its NUL terminator.
    #[error("CDR: string {what} of length {len} at offset {offset} does not end with NUL")]
    NoNul {
        /// The string being read.
        what: &'static str,
        /// The string's length, NUL included [bytes].
        len: u32,
        /// Offset of the string's length field [bytes].
        offset: usize,
    },
    /// A string is not UTF-8.
    #[error("CDR: string {what} at offset {offset} is not valid UTF-8")]
    Utf8 {
        /// The string being read.
        what: &'static str,
        /// Offset of the string's length field [bytes].
        offset: usize,
    },
}

/// Bounds-checked reader of one CDR message in a byte slice.
#[derive(Debug, Clone)]
pub struct CdrReader<'a> {
    buf: &'a [u8],
    pos: usize,
    big_endian: bool,
}

macro_rules! read_prim {
    ($($(#[$doc:meta])* $name:ident -> $t:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(&mut self, what: &'static str) -> Result<$t, CdrError> {
            const N: usize = std::mem::size_of::<$t>();
            self.align(N);
            let b: [u8; N] = self.take(N, what)?.try_into().expect("take returns N bytes");
            Ok(if self.big_endian { <$t>::from_be_bytes(b) } else { <$t>::from_le_bytes(b) })
        }
    )*};
}

impl<'a> CdrReader<'a> {
    /// Starts reading `buf`, a whole message: checks and consumes the encapsulation header.
    pub fn new(buf: &'a [u8]) -> Result<Self, CdrError> {
        if buf.len() < HEADER_LEN {
            return Err(CdrError::NoHeader { len: buf.len() });
        }
        let big_endian = match (buf[0], buf[1]) {
            (0, 0) => true,
            (0, 1) => false,
            (a, b) => return Err(CdrError::Encapsulation(a, b)),
        };
        Ok(Self { buf, pos: HEADER_LEN, big_endian })
    }

    /// True when the message is big-endian (CDR_BE).
    pub fn is_big_endian(&self) -> bool {
        self.big_endian
    }

    /// Offset of the next byte to read, from the start of the message.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Bytes after the read position (trailing padding a writer may have added included).
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Skips the padding before a field of alignment `n` (may move past the end; the next read
    /// then fails).
    fn align(&mut self, n: usize) {
        let rel = self.pos - HEADER_LEN;
        self.pos += (n - rel % n) % n;
    }

    /// The next `n` bytes, or `Truncated` naming `what`.
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CdrError> {
        let left = self.remaining();
        if n > left {
            return Err(CdrError::Truncated { what, offset: self.pos, need: n, left });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    read_prim! {
        /// Reads a `uint8`/`byte`/`char`.
        read_u8 -> u8;
        /// Reads an `int8`.
        read_i8 -> i8;
        /// Reads a `uint16`.
        read_u16 -> u16;
        /// Reads a `uint32`.
        read_u32 -> u32;
        /// Reads an `int32`.
        read_i32 -> i32;
        /// Reads a `uint64`.
        read_u64 -> u64;
        /// Reads a `float32`.
        read_f32 -> f32;
        /// Reads a `float64`.
        read_f64 -> f64;
    }

    /// Reads a `bool` (one byte; any non-zero value is true).
    pub fn read_bool(&mut self, what: &'static str) -> Result<bool, CdrError> {
        Ok(self.read_u8(what)? != 0)
    }

    /// Reads a sequence count and checks that `count * min_element_size` bytes are left, so a
    /// caller may reserve `count` elements. `min_element_size` is the fewest bytes one element
    /// takes (at least 1).
    pub fn read_seq_len(&mut self, what: &'static str, min_element_size: usize) -> Result<usize, CdrError> {
        let len = self.read_u32(what)?;
        let left = self.remaining();
        if (len as u64).saturating_mul(min_element_size.max(1) as u64) > left as u64 {
            return Err(CdrError::Length { what, len, offset: self.pos - 4, left });
        }
        Ok(len as usize)
    }

    /// Reads a `uint8[]`/`byte[]` sequence, borrowed from the message.
    pub fn read_bytes(&mut self, what: &'static str) -> Result<&'a [u8], CdrError> {
        let n = self.read_seq_len(what, 1)?;
        self.take(n, what)
    }

    /// Reads a `string`. A length of 0 (no NUL at all, which ROS writers never produce) is read
    /// as the empty string.
    pub fn read_string(&mut self, what: &'static str) -> Result<String, CdrError> {
        let len = self.read_seq_len(what, 1)? as u32;
        let offset = self.pos - 4;
        let bytes = self.take(len as usize, what)?;
        let Some((&last, text)) = bytes.split_last() else { return Ok(String::new()) };
        if last != 0 {
            return Err(CdrError::NoNul { what, len, offset });
        }
        String::from_utf8(text.to_vec()).map_err(|_| CdrError::Utf8 { what, offset })
    }
}

/// Writer of one CDR message, little-endian (encapsulation `00 01 00 00`) unless made with
/// [`CdrWriter::new_big_endian`].
#[derive(Debug, Clone)]
pub struct CdrWriter {
    buf: Vec<u8>,
    big_endian: bool,
}

macro_rules! write_prim {
    ($($(#[$doc:meta])* $name:ident($t:ty);)*) => {$(
        $(#[$doc])*
        pub fn $name(&mut self, v: $t) {
            self.align(std::mem::size_of::<$t>());
            let b = if self.big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
            self.buf.extend_from_slice(&b);
        }
    )*};
}

impl Default for CdrWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl CdrWriter {
    /// A little-endian (CDR_LE) message, the encapsulation header written.
    pub fn new() -> Self {
        Self { buf: vec![0, 1, 0, 0], big_endian: false }
    }

    /// A big-endian (CDR_BE) message, the encapsulation header written.
    pub fn new_big_endian() -> Self {
        Self { buf: vec![0, 0, 0, 0], big_endian: true }
    }

    /// The serialized message.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// Pads with zeros to alignment `n`, counted from the end of the header.
    fn align(&mut self, n: usize) {
        let rel = self.buf.len() - HEADER_LEN;
        self.buf.resize(self.buf.len() + (n - rel % n) % n, 0);
    }

    write_prim! {
        /// Writes a `uint8`/`byte`/`char`.
        write_u8(u8);
        /// Writes an `int8`.
        write_i8(i8);
        /// Writes a `uint16`.
        write_u16(u16);
        /// Writes a `uint32`.
        write_u32(u32);
        /// Writes an `int32`.
        write_i32(i32);
        /// Writes a `uint64`.
        write_u64(u64);
        /// Writes a `float32`.
        write_f32(f32);
        /// Writes a `float64`.
        write_f64(f64);
    }

    /// Writes a `bool` as one byte 0 or 1.
    pub fn write_bool(&mut self, v: bool) {
        self.write_u8(v as u8);
    }

    /// Writes a sequence count. Panics above `u32::MAX` (4 GiB), which CDR cannot express.
    pub fn write_seq_len(&mut self, n: usize) {
        self.write_u32(u32::try_from(n).expect("CDR sequence longer than u32::MAX"));
    }

    /// Writes a `uint8[]`/`byte[]` sequence.
    pub fn write_bytes(&mut self, v: &[u8]) {
        self.write_seq_len(v.len());
        self.buf.extend_from_slice(v);
    }

    /// Writes a `string` (length with the NUL, bytes, NUL). A NUL inside `v` is written as is;
    /// C++ readers would cut the string there.
    pub fn write_string(&mut self, v: &str) {
        self.write_seq_len(v.len() + 1);
        self.buf.extend_from_slice(v.as_bytes());
        self.buf.push(0);
    }
}

/// A ROS 2 message type with its CDR layout.
pub trait CdrMessage: Sized {
    /// The full type name, e.g. `sensor_msgs/msg/Image`.
    const TYPE_NAME: &'static str;

    /// Reads the fields at the reader's position.
    fn read_from(r: &mut CdrReader<'_>) -> Result<Self, CdrError>;

    /// Writes the fields at the writer's position.
    fn write_to(&self, w: &mut CdrWriter);

    /// Decodes a whole serialized message (encapsulation header first). Bytes after the last
    /// field (writers' trailing padding) are ignored.
    fn decode(buf: &[u8]) -> Result<Self, CdrError> {
        Self::read_from(&mut CdrReader::new(buf)?)
    }

    /// Encodes the message little-endian, encapsulation header first.
    fn encode(&self) -> Vec<u8> {
        let mut w = CdrWriter::new();
        self.write_to(&mut w);
        w.finish()
    }
}

/// Reads a sequence of `T`, each element taking at least `min_size` bytes.
fn read_seq<T: CdrMessage>(r: &mut CdrReader<'_>, what: &'static str, min_size: usize) -> Result<Vec<T>, CdrError> {
    let n = r.read_seq_len(what, min_size)?;
    (0..n).map(|_| T::read_from(r)).collect()
}

/// Writes a sequence of `T`.
fn write_seq<T: CdrMessage>(w: &mut CdrWriter, v: &[T]) {
    w.write_seq_len(v.len());
    v.iter().for_each(|e| e.write_to(w));
}

impl CdrMessage for Time {
    const TYPE_NAME: &'static str = "builtin_interfaces/msg/Time";
    fn read_from(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Self { sec: r.read_i32("stamp.sec")?, nanosec: r.read_u32("stamp.nanosec")? })
    }
    fn write_to(&self, w: &mut CdrWriter) {
        w.write_i32(self.sec);
        w.write_u32(self.nanosec);
    }
}

impl CdrMessage for Header {
    const TYPE_NAME: &'static str = "std_msgs/msg/Header";
    fn read_from(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Self { stamp: Time::read_from(r)?, frame_id: r.read_string("header.frame_id")? })
    }
    fn write_to(&self, w: &mut CdrWriter) {
        self.stamp.write_to(w);
        w.write_string(&self.frame_id);
    }
}

impl CdrMessage for Image {
    const TYPE_NAME: &'static str = "sensor_msgs/msg/Image";
    fn read_from(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Self {
            header: Header::read_from(r)?,
            height: r.read_u32("height")?,
            width: r.read_u32("width")?,
            encoding: r.read_string("encoding")?,
            is_bigendian: r.read_u8("is_bigendian")?,
            step: r.read_u32("step")?,
            data: r.read_bytes("data")?.to_vec(),
        })
    }
    fn write_to(&self, w: &mut CdrWriter) {
        self.header.write_to(w);
        w.write_u32(self.height);
        w.write_u32(self.width);
        w.write_string(&self.encoding);
        w.write_u8(self.is_bigendian);
        w.write_u32(self.step);
        w.write_bytes(&self.data);
    }
}

impl CdrMessage for CompressedImage {
    const TYPE_NAME: &'static str = "sensor_msgs/msg/CompressedImage";
    fn read_from(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Self {
            header: Header::read_from(r)?,
            format: r.read_string("format")?,
            data: r.read_bytes("data")?.to_vec(),
        })
    }
    fn write_to(&self, w: &mut CdrWriter) {
        self.header.write_to(w);
        w.write_string(&self.format);
        w.write_bytes(&self.data);
    }
}

impl CdrMessage for Bool {
    const TYPE_NAME: &'static str = "std_msgs/msg/Bool";
    fn read_from(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Self { data: r.read_bool("data")? })
    }
    fn write_to(&self, w: &mut CdrWriter) {
        w.write_bool(self.data);
    }
}

impl CdrMessage for KeyValue {
    const TYPE_NAME: &'static str = "diagnostic_msgs/msg/KeyValue";
    fn read_from(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Self { key: r.read_string("values.key")?, value: r.read_string("values.value")? })
    }
    fn write_to(&self, w: &mut CdrWriter) {
        w.write_string(&self.key);
        w.write_string(&self.value);
    }
}

impl CdrMessage for DiagnosticStatus {
    const TYPE_NAME: &'static str = "diagnostic_msgs/msg/DiagnosticStatus";
    fn read_from(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Self {
            level: r.read_u8("status.level")?,
            name: r.read_string("status.name")?,
            message: r.read_string("status.message")?,
            hardware_id: r.read_string("status.hardware_id")?,
            // Two u32 string lengths at least.
            values: read_seq(r, "status.values", 8)?,
        })
    }
    fn write_to(&self, w: &mut CdrWriter) {
        w.write_u8(self.level);
        w.write_string(&self.name);
        w.write_string(&self.message);
        w.write_string(&self.hardware_id);
        write_seq(w, &self.values);
    }
}

impl CdrMessage for DiagnosticArray {
    const TYPE_NAME: &'static str = "diagnostic_msgs/msg/DiagnosticArray";
    fn read_from(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        // A status is at least level + 3 string lengths + the values count (with padding).
        Ok(Self { header: Header::read_from(r)?, status: read_seq(r, "status", 17)? })
    }
    fn write_to(&self, w: &mut CdrWriter) {
        self.header.write_to(w);
        write_seq(w, &self.status);
    }
}

/// 80 `=` between the definitions of a `ros2msg` schema.
macro_rules! sep {
    () => {
        "================================================================================\n"
    };
}

/// Definitions of the dependency `std_msgs/Header` (and its `builtin_interfaces/Time`).
macro_rules! header_deps {
    () => {
        concat!(
            sep!(),
            "MSG: std_msgs/Header\n",
            "builtin_interfaces/Time stamp\n",
            "string frame_id\n",
            sep!(),
            "MSG: builtin_interfaces/Time\n",
            "int32 sec\n",
            "uint32 nanosec\n",
        )
    };
}

/// `ros2msg` schema of sensor_msgs/msg/Image, as rosbags writes it.
pub const IMAGE_SCHEMA: &str = concat!(
    "std_msgs/Header header\n",
    "uint32 height\n",
    "uint32 width\n",
    "string encoding\n",
    "uint8 is_bigendian\n",
    "uint32 step\n",
    "uint8[] data\n",
    header_deps!(),
);

/// `ros2msg` schema of sensor_msgs/msg/CompressedImage, as rosbags writes it.
pub const COMPRESSED_IMAGE_SCHEMA: &str =
    concat!("std_msgs/Header header\n", "string format\n", "uint8[] data\n", header_deps!(),);

/// `ros2msg` schema of std_msgs/msg/Bool, as rosbags writes it.
pub const BOOL_SCHEMA: &str = "bool data\n";

/// `ros2msg` schema of diagnostic_msgs/msg/DiagnosticArray, as rosbags writes it.
pub const DIAGNOSTIC_ARRAY_SCHEMA: &str = concat!(
    "std_msgs/Header header\n",
    "diagnostic_msgs/DiagnosticStatus[] status\n",
    header_deps!(),
    sep!(),
    "MSG: diagnostic_msgs/DiagnosticStatus\n",
    "byte OK=0\n",
    "byte WARN=1\n",
    "byte ERROR=2\n",
    "byte STALE=3\n",
    "byte level\n",
    "string name\n",
    "string message\n",
    "string hardware_id\n",
    "diagnostic_msgs/KeyValue[] values\n",
    sep!(),
    "MSG: diagnostic_msgs/KeyValue\n",
    "string key\n",
    "string value\n",
);

/// The MCAP schema (encoding `ros2msg`, named by the full type name) of a type this module knows:
/// the type's definition, then for each nested type 80 `=`, `MSG: pkg/Type` (without `/msg/`)
/// and its definition, comments stripped, constants kept — what rosbags 0.11 writes.
pub fn schema(type_name: &str) -> Option<&'static str> {
    match type_name {
        Image::TYPE_NAME => Some(IMAGE_SCHEMA),
        CompressedImage::TYPE_NAME => Some(COMPRESSED_IMAGE_SCHEMA),
        Bool::TYPE_NAME => Some(BOOL_SCHEMA),
        DiagnosticArray::TYPE_NAME => Some(DIAGNOSTIC_ARRAY_SCHEMA),
        _ => None,
    }
}
