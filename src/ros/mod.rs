//! The ROS 2 node (feature `ros`): parameters, message conversions and the node itself.

pub mod managed;
pub mod msgs;
pub mod node;
pub mod params;
