//! `pipeline_seg_node`: the ROS 2 node (see README "The ROS 2 node").

fn main() -> std::process::ExitCode {
    pipeline_seg::ros::node::main()
}
