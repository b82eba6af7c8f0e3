"""The rclpy side of scripts/test_colcon.sh: publishes a camera frame on /camera/image_raw (bgr8,
reliable, once a second) until the node's ~/mask for it arrives; checks the mask's size and
header and the node's /diagnostics status name. Exit 0 = mask received within TIMEOUT s."""
import sys
import time

import cv2
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

TIMEOUT = 90.0


def main(frame_path: str) -> int:
    img = cv2.imread(frame_path, cv2.IMREAD_COLOR)
    assert img is not None, frame_path
    h, w = img.shape[:2]
    rclpy.init()
    node = rclpy.create_node("colcon_probe")
    got = {}
    node.create_subscription(Image, "/pipeline_seg_node/mask", lambda m: got.setdefault("mask", m),
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    node.create_subscription(DiagnosticArray, "/diagnostics",
                             lambda m: got.setdefault("diag", [s.name for s in m.status]), 10)
    pub = node.create_publisher(Image, "/camera/image_raw", QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    t0 = time.monotonic()
    last = 0.0
    while "mask" not in got and time.monotonic() - t0 < TIMEOUT:
        if time.monotonic() - last > 1.0 and pub.get_subscription_count() > 0:
            hdr = Header(frame_id="colcon_probe_camera")
            hdr.stamp = node.get_clock().now().to_msg()
            pub.publish(Image(header=hdr, height=h, width=w, encoding="bgr8", is_bigendian=0, step=w * 3,
                              data=img.tobytes()))
            last = time.monotonic()
        rclpy.spin_once(node, timeout_sec=0.05)
    deadline = time.monotonic() + 3.0
    while "diag" not in got and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    mask = got.get("mask")
    node.destroy_node()
    rclpy.shutdown()
    if mask is None:
        print(f"probe: no mask within {TIMEOUT:.0f} s", file=sys.stderr)
        return 1
    assert (mask.width, mask.height, mask.encoding) == (w, h, "mono8"), (mask.width, mask.height, mask.encoding)
    assert mask.header.frame_id == "colcon_probe_camera", mask.header.frame_id
    print(f"probe: mask {mask.width}x{mask.height} received {time.monotonic() - t0:.1f} s after the probe started; "
          f"/diagnostics statuses: {got.get('diag')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
