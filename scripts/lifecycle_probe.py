"""The managed-node part of scripts/test_colcon.sh (run when `ros2 launch` is there): the node was
launched with `managed:=true namespace:=rov1 input_transport:=compressed
image_topic:=/camera/image_raw`. Drives configure → activate → deactivate → shutdown through the
lifecycle_msgs services, publishing JPEG frames on /camera/image_raw/compressed (the
image_transport name), and checks: no mask before activate, masks while active, confident = false
after deactivate, no mask while inactive, /diagnostics named /rov1/pipeline_seg_node with the
camera's frame_id as hardware_id. Exit 0 = all held."""
import sys
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Bool

NS = "/rov1/pipeline_seg_node"


def main(jpeg_path: str) -> int:
    jpeg = open(jpeg_path, "rb").read()
    rclpy.init()
    n = rclpy.create_node("lifecycle_probe")
    got = {"mask": 0, "confident": [], "diag": set()}
    pub = n.create_publisher(CompressedImage, "/camera/image_raw/compressed",
                             QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))
    n.create_subscription(Image, NS + "/mask", lambda m: got.__setitem__("mask", got["mask"] + 1), 10)
    n.create_subscription(Bool, NS + "/confident", lambda m: got["confident"].append(m.data),
                          QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                     durability=DurabilityPolicy.TRANSIENT_LOCAL))
    n.create_subscription(DiagnosticArray, "/diagnostics",
                          lambda m: got["diag"].update((s.name, s.hardware_id) for s in m.status), 10)
    change_state, get_state = n.create_client(ChangeState, NS + "/change_state"), n.create_client(GetState, NS + "/get_state")
    if not change_state.wait_for_service(timeout_sec=30):
        print("lifecycle probe: no", NS + "/change_state", file=sys.stderr)
        return 1

    def call(client, request):
        future = client.call_async(request)
        rclpy.spin_until_future_complete(n, future, timeout_sec=30)
        return future.result()

    def change(label: str) -> str:
        ok = call(change_state, ChangeState.Request(transition=Transition(label=label))).success
        state = call(get_state, GetState.Request()).current_state.label
        print(f"lifecycle probe: {label}: success={ok} -> {state}", flush=True)
        assert ok, label
        return state

    def spin(seconds: float, send: bool) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if send:
                msg = CompressedImage(format="jpeg", data=jpeg)
                msg.header.stamp, msg.header.frame_id = n.get_clock().now().to_msg(), "rov1_camera"
                pub.publish(msg)
            rclpy.spin_once(n, timeout_sec=0.1)

    spin(2.0, send=True)
    assert got["mask"] == 0, "segmented while unconfigured"
    assert change("configure") == "inactive" and change("activate") == "active"
    spin(8.0, send=True)
    assert got["mask"] > 0, "no mask while active"
    assert change("deactivate") == "inactive"
    spin(1.5, send=False)
    assert got["confident"][-1] is False, "confident after deactivate"
    before = got["mask"]
    spin(3.0, send=True)
    assert got["mask"] == before, "segmented while inactive"
    assert (NS, "rov1_camera") in got["diag"], got["diag"]
    assert change("shutdown") == "finalized"
    print(f"lifecycle probe: {before} masks while active, none while inactive; /diagnostics {sorted(got['diag'])}")
    n.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
