//! The library's message data model: the ROS 2 messages the node and `replay` read and write,
//! as plain Rust types. [`cdr`] encodes and decodes them as ROS 2 and rosbag2 do; the node
//! converts them to and from r2r's types at the ROS boundary (`ros::msgs`).

pub mod cdr;

/// builtin_interfaces/msg/Time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time {
    /// Whole seconds since the epoch [s].
    pub sec: i32,
    /// Nanoseconds past `sec`, 0..1e9 [ns].
    pub nanosec: u32,
}

impl Time {
    /// Nanoseconds since the epoch.
    pub fn nanos(&self) -> i64 {
        self.sec as i64 * 1_000_000_000 + self.nanosec as i64
    }

    /// The time `ns` nanoseconds since the epoch (seconds saturate at the `i32` range).
    pub fn from_nanos(ns: i64) -> Self {
        let sec = ns.div_euclid(1_000_000_000).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        Self { sec, nanosec: ns.rem_euclid(1_000_000_000) as u32 }
    }
}

/// std_msgs/msg/Header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// Acquisition time of the data.
    pub stamp: Time,
    /// Coordinate frame the data is in.
    pub frame_id: String,
}

/// sensor_msgs/msg/Image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Image {
    /// Stamp and frame of the image.
    pub header: Header,
    /// Image height [px].
    pub height: u32,
    /// Image width [px].
    pub width: u32,
    /// Pixel encoding (REP 118 name, e.g. `rgb8`, `mono8`, `32FC1`).
    pub encoding: String,
    /// Byte order of the pixel data (not of the CDR message): 0 little, non-zero big.
    pub is_bigendian: u8,
    /// Row length in bytes.
    pub step: u32,
    /// Pixel data, `step * height` bytes.
    pub data: Vec<u8>,
}

/// sensor_msgs/msg/CompressedImage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompressedImage {
    /// Stamp and frame of the image.
    pub header: Header,
    /// e.g. `jpeg`, `png`, or image_transport's `rgb8; jpeg compressed bgr8`.
    pub format: String,
    /// The compressed image bytes.
    pub data: Vec<u8>,
}

/// std_msgs/msg/Bool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bool {
    /// The value.
    pub data: bool,
}

/// diagnostic_msgs/msg/KeyValue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyValue {
    /// Name of the value.
    pub key: String,
    /// The value, as text.
    pub value: String,
}

/// diagnostic_msgs/msg/DiagnosticStatus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiagnosticStatus {
    /// [`DiagnosticStatus::OK`], `WARN`, `ERROR` or `STALE`.
    pub level: u8,
    /// Name of the component the status is about.
    pub name: String,
    /// Short description of the status.
    pub message: String,
    /// Identifier of the hardware the status is about.
    pub hardware_id: String,
    /// Further values, as key-value pairs.
    pub values: Vec<KeyValue>,
}

impl DiagnosticStatus {
    /// Level OK.
    pub const OK: u8 = 0;
    /// Level WARN.
    pub const WARN: u8 = 1;
    /// Level ERROR.
    pub const ERROR: u8 = 2;
    /// Level STALE.
    pub const STALE: u8 = 3;
}

/// diagnostic_msgs/msg/DiagnosticArray.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiagnosticArray {
    /// Stamp and frame the statuses refer to.
    pub header: Header,
    /// One status per component.
    pub status: Vec<DiagnosticStatus>,
}

/// An input camera message: what the node subscribes to and what a bag's camera topic holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameMsg {
    /// A sensor_msgs/msg/Image.
    Raw(Image),
    /// A sensor_msgs/msg/CompressedImage.
    Compressed(CompressedImage),
}

impl FrameMsg {
    /// The message's header.
    pub fn header(&self) -> &Header {
        match self {
            FrameMsg::Raw(m) => &m.header,
            FrameMsg::Compressed(m) => &m.header,
        }
    }
}

/// The QoS a topic's publisher offered, as recorded in the bag (playback offers it again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Qos {
    /// History depth (keep last).
    pub depth: u32,
    /// Reliable, else best effort.
    pub reliable: bool,
    /// Transient local, else volatile.
    pub transient_local: bool,
}

impl Qos {
    /// Reliable, volatile, keep last 10: rclcpp's default publisher QoS.
    pub const DEFAULT: Qos = Qos { depth: 10, reliable: true, transient_local: false };
    /// Reliable, transient local, keep last 1 (a latched topic such as `~/confident`).
    pub const LATCHED: Qos = Qos { depth: 1, reliable: true, transient_local: true };
}

impl Default for Qos {
    fn default() -> Self {
        Qos::DEFAULT
    }
}
