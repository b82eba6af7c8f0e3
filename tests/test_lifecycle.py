"""End-to-end tests of `pipeline_seg_node` as a managed (lifecycle) node (`managed:=true`,
README "Managed (lifecycle) node", docs/interfaces.md §10).

An rclpy peer calls the node's lifecycle_msgs services as `ros2 lifecycle` does, records
`~/transition_event`, feeds frames and watches the outputs. The node binary, the peer, the
domain per run and the DDS settings are those of tests/test_node.py (its NodeRun); only the
readiness check differs: a managed node has no input subscription until it is activated.
"""
from __future__ import annotations

import time

import pytest

from conftest import MODEL, NS, VAL, model_meta
from test_node import (VAL_CLEAR, WAIT, NodeRun, _rel_qos, _stop, bgr, key, level, new_header,  # noqa: F401
                       raw_msg, values)

from lifecycle_msgs.msg import Transition, TransitionEvent  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetAvailableStates, GetAvailableTransitions, GetState  # noqa: E402

STATES = [(0, "unknown"), (1, "unconfigured"), (2, "inactive"), (3, "active"), (4, "finalized"),
          (10, "configuring"), (11, "cleaningup"), (12, "shuttingdown"), (13, "activating"),
          (14, "deactivating"), (15, "errorprocessing")]


class ManagedRun(NodeRun):
    """A managed node (unconfigured at start) and the peer of tests/test_node.py."""

    def __init__(self, tmp, params: dict):
        super().__init__(tmp, {"managed": "true", "samples": 4, "seed": 3, **params})
        self._sub(f"{NS}/transition_event", TransitionEvent, _rel_qos())
        self.spin_until(lambda: self.peer.subs[f"{NS}/transition_event"].get_publisher_count() > 0, WAIT,
                        "~/transition_event to match")

    def _matched(self) -> bool:  # no input subscription before activate
        return (all(s.get_publisher_count() > 0 for s in self.peer.subs.values())
                and len(self.msgs("confident")) > 0)

    def change(self, label: str = "", id: int = 0, n_events: int = 2) -> tuple[bool, list]:
        """ChangeState by label or id; the response's success and the `n_events` transition events
        it caused (0 for a refused request)."""
        start = len(self.msgs("transition_event"))
        res = self._call(ChangeState, "change_state", ChangeState.Request(transition=Transition(id=id, label=label)))
        self.spin_until(lambda: len(self.msgs("transition_event")) >= start + n_events, WAIT,
                        f"{n_events} transition events", allow_exit=True)
        events = [(e.transition.id, e.transition.label, e.start_state.label, e.goal_state.label)
                  for _, e in self.msgs("transition_event")[start:]]
        return res.success, events

    def state(self) -> tuple[int, str]:
        s = self._call(GetState, "get_state", GetState.Request()).current_state
        return s.id, s.label

    def transitions(self) -> list[tuple[int, str, str, str]]:
        res = self._call(GetAvailableTransitions, "get_available_transitions", GetAvailableTransitions.Request())
        return [(t.transition.id, t.transition.label, t.start_state.label, t.goal_state.label)
                for t in res.available_transitions]

    def wait_status(self, message: str, timeout: float = 5.0):
        """A `~/confidence` with this message (level 1) received from now on, and confident = false."""
        start = len(self.msgs("confidence"))

        def found():
            for _, arr in self.msgs("confidence")[start:]:
                st = arr.status[0]
                if st.message == message:
                    return st
            return None

        st = self.spin_until(found, timeout, f"~/confidence '{message}'")
        assert level(st) == 1 and st.name == "pipeline_seg/confidence"
        assert values(st)["pipeline_visible"] == "false"
        assert self.msgs("confident")[-1][1].data is False
        return st

    def segment_until_mask(self, img, tries: int = 20):
        """Sends fresh frames until one is segmented (a new subscription may miss the first); its header,
        once both its mask and its confidence arrived (they come on separate topics, in either order)."""
        for _ in range(tries):
            hdr = new_header()
            self.pub.publish(raw_msg(img, "bgr8", hdr))
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                if self.find("mask", hdr) is not None and self.find("confidence", hdr) is not None:
                    return hdr
                if self.proc.poll() is not None:
                    pytest.fail(f"the node exited ({self.proc.returncode}); log:\n{self.log()}")
                self.peer.spin_once(0.01)
        pytest.fail(f"no mask after {tries} frames; log:\n{self.log()}")

    def wait_exit(self, timeout: float = 10.0) -> int:
        """Waits for the node to exit by itself; its exit code (the last messages are taken in)."""
        self.spin_until(lambda: self.proc.poll() is not None, timeout, "the node to exit", allow_exit=True)
        for _ in range(30):
            self.peer.spin_once(0.01)
        return _stop(self.proc)


@pytest.fixture
def managed(request, tmp_path_factory):
    def start(name: str, **params) -> ManagedRun:
        run = ManagedRun(tmp_path_factory.mktemp(name), params)
        request.addfinalizer(run.close)
        return run

    return start


def test_every_transition_services_and_events(managed):
    run = managed("lifecycle")
    img = bgr(VAL / f"{VAL_CLEAR[0]}.jpg")
    # Unconfigured: alive and not confident, within the deadline.
    assert run.state() == (1, "unconfigured")
    st = run.wait_status("unconfigured")
    assert values(st)["score"] == ""
    # Without a model every value but these two is empty; the keys are those of a frame's status.
    assert values(st) == {"score": "", "score_method": "", "threshold_high": "", "threshold_low": "",
                          "pipeline_fraction": "", "pipeline_visible": "false", "samples": "", "latency_ms": "0.000",
                          "feature_distance": "", "trust": ""}
    res = run._call(GetAvailableStates, "get_available_states", GetAvailableStates.Request())
    assert [(s.id, s.label) for s in res.available_states] == STATES
    assert run.transitions() == [(1, "configure", "unconfigured", "configuring"),
                                 (5, "shutdown", "unconfigured", "shuttingdown")]
    graph = run._call(GetAvailableTransitions, "get_transition_graph", GetAvailableTransitions.Request())
    assert len(graph.available_transitions) == 25
    assert run.pub.get_subscription_count() == 0, "no input subscription before activate"

    # configure by id, as `ros2 lifecycle set NODE 1`
    ok, events = run.change(id=1)
    assert ok
    assert events == [(1, "configure", "unconfigured", "configuring"),
                      (10, "transition_success", "configuring", "inactive")]
    assert run.state() == (2, "inactive")
    assert run.transitions() == [(2, "cleanup", "inactive", "cleaningup"), (3, "activate", "inactive", "activating"),
                                 (6, "shutdown", "inactive", "shuttingdown")]
    st = run.wait_status("inactive")
    assert values(st)["score_method"] == model_meta()["score_method"] and values(st)["samples"] == "4"
    # Not available in this state: refused, nothing happens.
    assert run.change("deactivate", n_events=0) == (False, [])
    assert run.state() == (2, "inactive")

    # Frames only while active: the first is sent while inactive (nobody subscribes).
    idle = new_header()
    run.pub.publish(raw_msg(img, "bgr8", idle))
    ok, events = run.change("activate")
    assert ok and events == [(3, "activate", "inactive", "activating"),
                             (30, "transition_success", "activating", "active")]
    assert run.state() == (3, "active")
    assert run.transitions() == [(4, "deactivate", "active", "deactivating"),
                                 (7, "shutdown", "active", "shuttingdown")]
    run.segment_until_mask(img)
    assert run.find("mask", idle) is None, "a frame sent while inactive was segmented"
    # Confident after recover_frames clear frames, then deactivate: confident = false at once.
    for name in VAL_CLEAR[1:4]:
        run.process(raw_msg(bgr(VAL / f"{name}.jpg"), "bgr8", new_header()))
    run.wait_confident(True)
    ok, events = run.change("deactivate")
    assert ok and events == [(4, "deactivate", "active", "deactivating"),
                             (40, "transition_success", "deactivating", "inactive")]
    run.wait_confident(False, timeout=1.0)
    run.wait_status("inactive")
    assert run.state() == (2, "inactive")
    inactive_frame = new_header()
    run.pub.publish(raw_msg(img, "bgr8", inactive_frame))
    for _ in range(50):  # 0.5 s: nothing may come of it
        run.peer.spin_once(0.01)
    assert run.find("confidence", inactive_frame) is None and run.find("mask", inactive_frame) is None

    # activate again: segmenting again (the gate starts over: not confident at once)
    assert run.change(id=3)[0]
    hdr = run.segment_until_mask(img)
    assert run.find("confidence", hdr).status[0].message in ("recovering", "ok")
    assert run.find("mask", inactive_frame) is None
    assert run.change(id=4)[0]
    run.wait_confident(False, timeout=1.0)

    # cleanup releases the model; configure loads it again
    ok, events = run.change("cleanup")
    assert ok and events == [(2, "cleanup", "inactive", "cleaningup"),
                             (20, "transition_success", "cleaningup", "unconfigured")]
    assert run.state() == (1, "unconfigured")
    st = run.wait_status("unconfigured")
    assert values(st)["samples"] == ""
    assert run.change("configure")[0]
    assert run.state() == (2, "inactive")

    # shutdown (the label resolves to inactive_shutdown, 6): finalized, exit code 0, not confident
    ok, events = run.change("shutdown")
    assert ok and events == [(6, "shutdown", "inactive", "shuttingdown"),
                             (50, "transition_success", "shuttingdown", "finalized")]
    assert run.wait_exit() == 0, run.log()
    assert run.msgs("confident")[-1][1].data is False
    assert "lifecycle: shutdown -> finalized" in run.log()


def test_failed_configure_then_fixed_and_shutdown_from_active(managed, tmp_path):
    missing = tmp_path / "missing.onnx"
    run = managed("lifecycle_bad_model", model_path=str(missing))
    ok, events = run.change("configure")
    assert not ok
    assert events == [(1, "configure", "unconfigured", "configuring"),
                      (11, "transition_failure", "configuring", "unconfigured")]
    assert run.proc.poll() is None, "the node must stay up"
    assert run.state() == (1, "unconfigured")
    run.spin_until(lambda: "configure failed" in run.log(), 5.0, "the reason in the log")
    assert str(missing) in run.log() or "missing.onnx" in run.log(), run.log()
    run.wait_status("unconfigured")
    # A supervisor reads why on /diagnostics, without the node's log.
    run.wait_diagnostics(lambda v: True)
    assert level(run.diag_status) == 1
    assert run.diag_status.message.startswith("unconfigured: configure failed:"), run.diag_status.message
    assert "missing.onnx" in run.diag_status.message

    # Model parameters may change while unconfigured (ros2 param set), then configure succeeds.
    assert run.set_params(model_path=str(MODEL))[0].successful
    assert run.change("configure")[0]
    assert run.state() == (2, "inactive")
    run.wait_diagnostics(lambda v: v["model"] != "")
    assert run.diag_status.message == "inactive", "the old configure error is gone"
    res = run.set_params(model_path=str(missing))[0]
    assert not res.successful and "configure" in res.reason
    assert run.get_params("model_path") == [str(MODEL)]

    assert run.change("activate")[0]
    run.segment_until_mask(bgr(VAL / f"{VAL_CLEAR[0]}.jpg"))
    # shutdown from active, by id (active_shutdown, 7)
    ok, events = run.change(id=7)
    assert ok and events == [(7, "shutdown", "active", "shuttingdown"),
                             (50, "transition_success", "shuttingdown", "finalized")]
    assert run.wait_exit() == 0, run.log()
    assert run.msgs("confident")[-1][1].data is False
