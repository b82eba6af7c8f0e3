"""The launch file compiles, declares the arguments the README and the issue promise, and turns
them into the Node action's options (remappings, parameters, log level, respawn, emulate_tty).

`ros2 launch` itself is not among the PyPI wheels, so CI checks the file without it: the launch
modules are stubbed and the file's functions are called with performed arguments. The launch was
run with ros2launch from its public sources (README, "Getting `ros2 launch`")."""
import ast
import importlib.util
import sys
import types
from pathlib import Path

import pytest

LAUNCH = Path(__file__).resolve().parents[1] / "launch" / "pipeline_seg.launch.py"
PROMISED = {"image_topic", "input_transport", "params_file", "model_path", "device", "samples", "namespace",
            "use_sim_time", "managed"}
PROMISED |= {"onnxruntime_lib", "allow_cpu_fallback", "log_level", "respawn", "respawn_delay"}


def _rows():
    tree = ast.parse(LAUNCH.read_text())
    table = next(n.value for n in ast.walk(tree)
                 if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "ARGUMENTS")
    return [tuple(ast.literal_eval(e) for e in row.elts) for row in table.elts]


def test_launch_file_compiles():
    # compile(), not py_compile: py_compile writes launch/__pycache__/, which colcon would install.
    compile(LAUNCH.read_text(), str(LAUNCH), "exec")


def test_launch_file_declares_every_promised_argument_with_a_description():
    rows = _rows()
    assert {name for name, _, _ in rows} >= PROMISED
    for name, _, description in rows:
        assert len(description) > 20, f"argument {name} needs a description"
    readme = (LAUNCH.parents[1] / "README.md").read_text()
    for name, _, _ in rows:
        assert f"`{name}`" in readme or f"{name}:=" in readme, f"README does not mention launch argument {name}"


@pytest.fixture(scope="module")
def launch_module():
    """The launch file as a module, with launch, launch_ros and ament_index_python stubbed where
    they are missing (their classes are not called by the functions under test)."""
    saved = {}
    for name, attrs in {"launch": ["LaunchDescription"], "launch.actions": ["DeclareLaunchArgument", "OpaqueFunction"],
                        "launch.substitutions": ["LaunchConfiguration"], "launch_ros": [],
                        "launch_ros.actions": ["Node"], "ament_index_python": [],
                        "ament_index_python.packages": ["get_package_share_directory"]}.items():
        saved[name] = sys.modules.get(name)
        mod = types.ModuleType(name)
        for attr in attrs:
            setattr(mod, attr, lambda *a, **kw: (a, kw))
        sys.modules[name] = mod
    try:
        spec = importlib.util.spec_from_file_location("pipeline_seg_launch", LAUNCH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    return module


def _args(**given):
    """The performed arguments: defaults of the ARGUMENTS table, then `given`."""
    arg = {name: default for name, default, _ in _rows()}
    arg.update(given)
    return arg


def test_compressed_input_subscribes_to_the_compressed_sub_topic_as_image_transport_does(launch_module):
    opts = launch_module.node_options(_args(image_topic="/camera/image_raw", input_transport="compressed"), "/share")
    assert dict(opts["remappings"]) == {"~/image": "/camera/image_raw",
                                        "~/image/compressed": "/camera/image_raw/compressed"}
    assert opts["parameters"][1]["input_transport"] == "compressed"
    # raw: the base topic itself
    opts = launch_module.node_options(_args(image_topic="/cam/"), "/share")
    assert dict(opts["remappings"])["~/image"] == "/cam"
    assert dict(opts["remappings"])["~/image/compressed"] == "/cam/compressed"
    # the old way of writing it is an error that says what to write
    with pytest.raises(ValueError, match="base topic"):
        launch_module.node_options(_args(image_topic="/camera/image_raw/compressed", input_transport="compressed"), "/s")


def test_defaults_leave_the_parameter_file_in_charge(launch_module):
    opts = launch_module.node_options(_args(), "/share")
    assert opts["parameters"] == ["/share/config/pipeline_seg.yaml", {"use_sim_time": False}]
    assert opts["ros_arguments"] == ["--log-level", "info"]
    assert opts["respawn"] is False and opts["respawn_delay"] == 2.0
    assert opts["name"] == "pipeline_seg_node" and opts["executable"] == "pipeline_seg_node"


def test_runtime_log_and_respawn_arguments(launch_module):
    opts = launch_module.node_options(_args(onnxruntime_lib="/opt/ort/lib/libonnxruntime.so.1.31.1",
                                            allow_cpu_fallback="True", device="cuda", samples="8",
                                            log_level="debug", respawn="true", respawn_delay="5",
                                            namespace="rov1", params_file="/my.yaml"), "/share")
    assert opts["parameters"] == ["/my.yaml", {"use_sim_time": False, "device": "cuda", "samples": 8,
                                               "onnxruntime_lib": "/opt/ort/lib/libonnxruntime.so.1.31.1",
                                               "allow_cpu_fallback": True}]
    assert opts["ros_arguments"] == ["--log-level", "debug"]
    assert opts["respawn"] is True and opts["respawn_delay"] == 5.0
    assert opts["namespace"] == "rov1"
    for bad in (dict(allow_cpu_fallback="yes"), dict(respawn="1"), dict(respawn_delay="soon"), dict(samples="8.5")):
        with pytest.raises(ValueError):
            launch_module.node_options(_args(**bad), "/share")


def test_emulate_tty_only_on_a_terminal(launch_module, monkeypatch):
    class Out:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    for tty in (True, False):
        monkeypatch.setattr(sys, "stdout", Out(tty))
        assert launch_module.node_options(_args(), "/share")["emulate_tty"] is tty
