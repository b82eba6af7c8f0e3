//! rosbag2 support without ROS: CDR encoding and decoding of the message types we read and write.

pub mod cdr;
pub mod read;
pub mod write;
