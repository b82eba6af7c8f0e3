"""Launch pipeline_seg_node: pipeline segmentation with MC-Dropout uncertainty and a confidence gate.

    ros2 launch pipeline_seg pipeline_seg.launch.py image_topic:=/camera/image_raw
    ros2 launch pipeline_seg pipeline_seg.launch.py image_topic:=/camera/image_raw input_transport:=compressed

image_topic is the camera's base topic, as image_transport names it: with input_transport:=compressed
the node subscribes to <image_topic>/compressed. Outputs are node-private (~/mask, ~/entropy,
~/confident, ...) under the node's name and the given namespace. Arguments left empty fall back to
the parameter file, then the model's metadata.
"""

import os
import sys

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
    ("onnxruntime_lib", "", "libonnxruntime.so to load; empty = the parameter file's, else the search of docs/interfaces.md §5"),
    ("allow_cpu_fallback", "", "true | false: run on CPU when the GPU provider cannot be used; empty = the parameter file's (false)"),
    ("samples", "", "MC-Dropout samples T per frame (1..256); empty = the model's calibrated default"),
    ("namespace", "", "namespace of the node and its topics"),
    ("log_level", "info", "node log level (ros-args --log-level): debug | info | warn | error | fatal"),
    ("respawn", "false", "restart the node when it exits (true | false)"),
    ("respawn_delay", "2.0", "seconds to wait before a respawn"),
    ("use_sim_time", "false", "use /clock (e.g. when replaying a bag with --clock)"),
    ("managed", "", "true = a managed (lifecycle) node: starts unconfigured, needs configure and activate (ros2 lifecycle set); empty = the parameter file's (false)"),
]


def _bool(name, value):
    if value.lower() not in ("true", "false"):
        raise ValueError(f"{name}:={value} is not true or false")
    return value.lower() == "true"


def remappings(image_topic):
    """The input remappings, as image_transport names topics: `image_topic` is the base topic, its
    compressed form is `<image_topic>/compressed`. Both are given: the node subscribes to the one
    its input_transport selects, which may come from the parameter file."""
    base = image_topic.rstrip("/") or image_topic
    return [("~/image", base), ("~/image/compressed", f"{base}/compressed")]


def overrides(arg):
    """The parameters the launch arguments set over the parameter file (empty = not set)."""
    out = {"use_sim_time": _bool("use_sim_time", arg["use_sim_time"])}
    for name in ("input_transport", "model_path", "device", "onnxruntime_lib"):
        if arg[name]:
            out[name] = arg[name]
    if arg["allow_cpu_fallback"]:
        out["allow_cpu_fallback"] = _bool("allow_cpu_fallback", arg["allow_cpu_fallback"])
    if arg["managed"]:
        out["managed"] = _bool("managed", arg["managed"])
    if arg["samples"]:
        if not arg["samples"].isdigit():
            raise ValueError(f"samples:={arg['samples']} is not a whole number (1..256)")
        out["samples"] = int(arg["samples"])
    return out


def node_options(arg, share):
    """Everything the Node action gets, from the performed launch arguments."""
    try:
        respawn_delay = float(arg["respawn_delay"])
    except ValueError:
        raise ValueError(f"respawn_delay:={arg['respawn_delay']} is not a number of seconds") from None
    if arg["input_transport"] == "compressed" and arg["image_topic"].rstrip("/").endswith("/compressed"):
        raise ValueError(f"image_topic:={arg['image_topic']}: give the base topic (e.g. /camera/image_raw); "
                         "input_transport:=compressed subscribes to <image_topic>/compressed")
    return dict(
        package="pipeline_seg",
        executable="pipeline_seg_node",
        name="pipeline_seg_node",
        namespace=arg["namespace"],
        parameters=[arg["params_file"] or os.path.join(share, "config", "pipeline_seg.yaml"), overrides(arg)],
        remappings=remappings(arg["image_topic"]),
        ros_arguments=["--log-level", arg["log_level"] or "info"],
        respawn=_bool("respawn", arg["respawn"]),
        respawn_delay=respawn_delay,
        output="screen",
        # Colour codes only on a terminal: a log redirected to a file stays plain text.
        emulate_tty=sys.stdout.isatty(),
    )


def _node(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    return [Node(**node_options(arg, get_package_share_directory("pipeline_seg")))]


def generate_launch_description():
    declared = [DeclareLaunchArgument(name, default_value=default, description=text) for name, default, text in ARGUMENTS]
    return LaunchDescription(declared + [OpaqueFunction(function=_node)])
