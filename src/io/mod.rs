//! Files and bags: rosbag2 reading ([`bag_read`], MCAP and SQLite without ROS) and writing
//! ([`bag_write`], MCAP), `.npy` maps ([`npy`]) and image inputs on disk ([`files`]).

pub mod bag_read;
pub mod bag_write;
pub mod files;
pub mod npy;
