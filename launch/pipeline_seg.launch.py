"""Launch pipeline_seg_node: pipeline segmentation with MC-Dropout uncertainty and a confidence gate.

    ros2 launch pipeline_seg pipeline_seg.launch.py image_topic:=/camera/image_raw
    ros2 launch pipeline_seg pipeline_seg.launch.py image_topic:=/camera/image_raw/compressed input_transport:=compressed

Outputs are node-private (~/mask, ~/entropy, ~/confident, ...) under the node's name and the
given namespace. Arguments left empty fall back to the parameter file, then the model's metadata.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

ARGUMENTS = [
    ("image_topic", "/camera/image_raw", "camera topic to segment (sensor_msgs/Image, or CompressedImage with input_transport:=compressed)"),
    ("input_transport", "", "raw (sensor_msgs/Image on ~/image) or compressed (sensor_msgs/CompressedImage on ~/image/compressed); empty = the parameter file's (raw)"),
    ("params_file", "", "ROS 2 parameter file; empty = the installed config/pipeline_seg.yaml"),
    ("model_path", "", "ONNX model; empty = the parameter file's, else the installed models/pipeline_seg_unet.onnx"),
    ("device", "", "execution provider cpu | cuda | tensorrt; empty = the parameter file's (cpu)"),
    ("samples", "", "MC-Dropout samples T per frame (1..256); empty = the model's calibrated default"),
    ("namespace", "", "namespace of the node and its topics"),
    ("use_sim_time", "false", "use /clock (e.g. when replaying a bag with --clock)"),
    ("managed", "", "true = a managed (lifecycle) node: starts unconfigured, needs configure and activate (ros2 lifecycle set); empty = the parameter file's (false)"),
]


def _node(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    share = get_package_share_directory("pipeline_seg")
    params_file = arg["params_file"] or os.path.join(share, "config", "pipeline_seg.yaml")
    overrides = {"use_sim_time": arg["use_sim_time"].lower() == "true"}
    if arg["input_transport"]:
        overrides["input_transport"] = arg["input_transport"]
    if arg["model_path"]:
        overrides["model_path"] = arg["model_path"]
    if arg["device"]:
        overrides["device"] = arg["device"]
    if arg["managed"]:
        if arg["managed"].lower() not in ("true", "false"):
            raise ValueError(f"managed:={arg['managed']} is not true or false")
        overrides["managed"] = arg["managed"].lower() == "true"
    if arg["samples"]:
        if not arg["samples"].isdigit():
            raise ValueError(f"samples:={arg['samples']} is not a whole number (1..256)")
        overrides["samples"] = int(arg["samples"])
    return [
        Node(
            package="pipeline_seg",
            executable="pipeline_seg_node",
            name="pipeline_seg_node",
            namespace=arg["namespace"],
            parameters=[params_file, overrides],
            # Both input names: the node subscribes to the one its input_transport selects, which
            # may come from the parameter file.
            remappings=[("~/image", arg["image_topic"]), ("~/image/compressed", arg["image_topic"])],
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description():
    declared = [DeclareLaunchArgument(name, default_value=default, description=text) for name, default, text in ARGUMENTS]
    return LaunchDescription(declared + [OpaqueFunction(function=_node)])
