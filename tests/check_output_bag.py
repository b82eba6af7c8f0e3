#!/usr/bin/env python3
"""Checks a bag written by pipeline_seg's `BagWriter` (src/bag/write.rs) with third-party readers.

Usage: check_output_bag.py BAG_DIR EXPECTED_JSON [--partial]

EXPECTED_JSON (written by tests/bag_write.rs) lists the topics (name, type, offered QoS) and the
messages written (topic, type, log/publish time, the message as plain data: nested dicts, uint8
arrays as hex), the MCAP library string, the custom_data and the least number of chunks.

Full bag: `metadata.yaml` (rosbag2 version 9, as rosbag2 in Jazzy writes it), `rosbags`'
rosbag2 Reader (every message deserialised with its declared type, typestore ROS2_JAZZY), and
the Python `mcap` reader (header, schemas equal to rosbags' generated definitions, channel
metadata, statistics, zstd chunk indexes, CRCs, sequence numbers, the `rosbag2` metadata
record). `mcap_ros2` is not installed in the venv, so messages are decoded with rosbags only.

`--partial`: a writer that stopped without finishing (no Drop ran): no `metadata.yaml`, and a
linear MCAP read (`mcap.stream_reader.StreamReader`, stopping at the cut) yields exactly the
expected (flushed) messages.

Prints one line `OK ...` and exits 0, or raises (exit 1).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import yaml
from mcap.reader import make_reader
from mcap.records import Channel, Footer, Header, Message, Schema
from mcap.stream_reader import StreamReader
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.metadata import parse_qos
from rosbags.typesys import Stores, get_typestore

TS = get_typestore(Stores.ROS2_JAZZY)
INF = {"sec": 9223372036, "nsec": 854775807}


def plain(obj):
    """A rosbags message as plain data: dicts of fields (no constants), uint8 arrays as hex."""
    if dataclasses.is_dataclass(obj):
        return {
            f.name: plain(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if not f.name.startswith("__") and not f.name.isupper()
        }
    if isinstance(obj, np.ndarray):
        assert obj.dtype == np.uint8, obj.dtype
        return obj.tobytes().hex()
    if isinstance(obj, (list, tuple)):
        return [plain(x) for x in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def qos_dict(t):
    return {
        "history": "keep_last",
        "depth": t["depth"],
        "reliability": t["reliability"],
        "durability": t["durability"],
        "deadline": INF,
        "lifespan": INF,
        "liveliness": "automatic",
        "liveliness_lease_duration": INF,
        "avoid_ros_namespace_conventions": False,
    }


def eq(what, got, want):
    if got != want:
        g, w = repr(got), repr(want)
        raise AssertionError(f"{what}: got {g[:400]}, want {w[:400]}")


def by_topic(msgs):
    out = {}
    for m in msgs:
        out.setdefault(m["topic"], []).append(m)
    return out


def check_messages(what, got, expected):
    """got: {topic: [(log, publish or None, sequence or None, plain msg)]} in file order."""
    want = by_topic(expected)
    eq(f"{what}: topics with messages", sorted(got), sorted(want))
    for topic, ws in want.items():
        gs = got[topic]
        eq(f"{what}: {topic} count", len(gs), len(ws))
        for i, (g, w) in enumerate(zip(gs, ws)):
            log, pub, seq, msg = g
            eq(f"{what}: {topic}[{i}] log time", log, w["log_time"])
            if pub is not None:
                eq(f"{what}: {topic}[{i}] publish time", pub, w["publish_time"])
            if seq is not None:
                eq(f"{what}: {topic}[{i}] sequence", seq, i)
            eq(f"{what}: {topic}[{i}] message", msg, w["msg"])


def check_metadata(info, bag, exp):
    msgs = exp["messages"]
    topics = exp["topics"]
    fname = f"{bag.name}_0.mcap"
    logs = [m["log_time"] for m in msgs]
    start, dur = (min(logs), max(logs) - min(logs)) if logs else (2**63 - 1, 0)
    eq("version", info["version"], 9)
    eq("storage_identifier", info["storage_identifier"], "mcap")
    eq("relative_file_paths", info["relative_file_paths"], [fname])
    eq("message_count", info["message_count"], len(msgs))
    eq("starting_time", info["starting_time"], {"nanoseconds_since_epoch": start})
    eq("duration", info["duration"], {"nanoseconds": dur})
    eq("compression", (info["compression_format"], info["compression_mode"]), ("", ""))
    eq("ros_distro", info["ros_distro"], "jazzy")
    eq("custom_data", info["custom_data"], exp["custom_data"])
    eq(
        "files",
        info["files"],
        [
            {
                "path": fname,
                "starting_time": {"nanoseconds_since_epoch": start},
                "duration": {"nanoseconds": dur},
                "message_count": len(msgs),
            }
        ],
    )
    counts = {t["name"]: 0 for t in topics}
    for m in msgs:
        counts[m["topic"]] += 1
    want = [
        {
            "topic_metadata": {
                "name": t["name"],
                "type": t["type"],
                "serialization_format": "cdr",
                "offered_qos_profiles": [qos_dict(t)],
                "type_description_hash": TS.hash_rihs01(t["type"]),
            },
            "message_count": counts[t["name"]],
        }
        for t in topics
    ]
    eq("topics_with_message_count", info["topics_with_message_count"], want)
    # rosbags' own QoS parser understands the profiles.
    for tw in info["topics_with_message_count"]:
        (q,) = parse_qos(tw["topic_metadata"]["offered_qos_profiles"])
        eq("parsed history", q.history.name, "KEEP_LAST")
        eq("parsed liveliness", q.liveliness.name, "AUTOMATIC")


def check_rosbags(bag, exp):
    got = {}
    with Reader(bag) as r:
        eq("rosbags message_count", r.message_count, len(exp["messages"]))
        eq(
            "rosbags connections",
            [(c.topic, c.msgtype) for c in r.connections],
            [(t["name"], t["type"]) for t in exp["topics"]],
        )
        for c, t in zip(r.connections, exp["topics"]):
            (q,) = c.ext.offered_qos_profiles
            eq(f"{c.topic} reliability", q.reliability.name.lower(), t["reliability"])
            eq(f"{c.topic} durability", q.durability.name.lower(), t["durability"])
            eq(f"{c.topic} depth", q.depth, t["depth"])
            eq(f"{c.topic} digest", c.digest, TS.hash_rihs01(t["type"]))
        for c, ts, raw in r.messages():
            msg = TS.deserialize_cdr(raw, c.msgtype)
            got.setdefault(c.topic, []).append((ts, None, None, plain(msg)))
    check_messages("rosbags", got, exp["messages"])


def check_mcap(path, exp, info):
    msgs = exp["messages"]
    types = {t["name"]: t["type"] for t in exp["topics"]}
    with path.open("rb") as f:
        r = make_reader(f, validate_crcs=True)
        h = r.get_header()
        eq("profile", h.profile, "ros2")
        eq("library", h.library, exp["library"])
        s = r.get_summary()
        assert s is not None, "no summary"
        eq("schema names", sorted(x.name for x in s.schemas.values()), sorted(set(types.values())))
        for sc in s.schemas.values():
            eq(f"{sc.name} schema encoding", sc.encoding, "ros2msg")
            eq(f"{sc.name} schema", sc.data.decode(), TS.generate_msgdef(sc.name, ros_version=2)[0])
        eq("channel topics", sorted(c.topic for c in s.channels.values()), sorted(types))
        for c in s.channels.values():
            t = next(t for t in exp["topics"] if t["name"] == c.topic)
            eq(f"{c.topic} schema", s.schemas[c.schema_id].name, t["type"])
            eq(f"{c.topic} message_encoding", c.message_encoding, "cdr")
            eq(f"{c.topic} metadata keys", sorted(c.metadata), ["offered_qos_profiles", "topic_type_hash"])
            eq(f"{c.topic} topic_type_hash", c.metadata["topic_type_hash"], TS.hash_rihs01(t["type"]))
            qos = c.metadata["offered_qos_profiles"]
            assert not qos.endswith("\n"), "offered_qos_profiles ends with a newline"
            eq(f"{c.topic} offered_qos_profiles", yaml.safe_load(qos), [qos_dict(t)])
        st = s.statistics
        eq("statistics message_count", st.message_count, len(msgs))
        counts = {}
        for c in s.channels.values():
            n = sum(1 for m in msgs if m["topic"] == c.topic)
            if n:
                counts[c.id] = n
        eq("channel_message_counts", {k: v for k, v in st.channel_message_counts.items() if v}, counts)
        if msgs:
            eq("message_start_time", st.message_start_time, min(m["log_time"] for m in msgs))
            eq("message_end_time", st.message_end_time, max(m["log_time"] for m in msgs))
        eq("statistics metadata_count", st.metadata_count, 1)
        assert st.chunk_count >= exp["min_chunks"], f"{st.chunk_count} chunks < {exp['min_chunks']}"
        # (An empty bag still has one chunk: the schema and channel records.)
        eq("chunk compression", {ci.compression for ci in s.chunk_indexes}, {"zstd"})
        if msgs:
            assert all(ci.message_index_offsets for ci in s.chunk_indexes), "a chunk without messages"
        got = {}
        for _, c, m in r.iter_messages(log_time_order=False):
            msg = plain(TS.deserialize_cdr(m.data, types[c.topic]))
            got.setdefault(c.topic, []).append((m.log_time, m.publish_time, m.sequence, msg))
        check_messages("mcap", got, msgs)
        metas = list(r.iter_metadata())
        eq("metadata records", [(m.name, sorted(m.metadata)) for m in metas], [("rosbag2", ["serialized_metadata"])])
        eq("serialized_metadata", yaml.safe_load(metas[0].metadata["serialized_metadata"]), info)
    return st.chunk_count


def check_partial(bag, exp):
    assert not (bag / "metadata.yaml").exists(), "metadata.yaml written by a writer that never finished"
    path = bag / f"{bag.name}_0.mcap"
    schemas, channels, got, header, footer, error = {}, {}, {}, None, False, None
    types = {t["name"]: t["type"] for t in exp["topics"]}
    with path.open("rb") as f:
        records = StreamReader(f).records
        while True:
            try:
                rec = next(records)
            except StopIteration:
                break
            except Exception as e:  # the cut: a truncated record, no footer
                error = type(e).__name__
                break
            if isinstance(rec, Header):
                header = rec
            elif isinstance(rec, Schema):
                schemas[rec.id] = rec
            elif isinstance(rec, Channel):
                channels[rec.id] = rec
            elif isinstance(rec, Footer):
                footer = True
            elif isinstance(rec, Message):
                c = channels[rec.channel_id]
                eq(f"{c.topic} schema", schemas[c.schema_id].name, types[c.topic])
                msg = plain(TS.deserialize_cdr(rec.data, types[c.topic]))
                got.setdefault(c.topic, []).append((rec.log_time, rec.publish_time, rec.sequence, msg))
    assert header is not None and header.profile == "ros2", header
    assert not footer, "a footer in a bag that was never finished"
    eq("channels", sorted(c.topic for c in channels.values()), sorted(types))
    check_messages("partial", got, exp["messages"])
    return error


def main():
    bag, exp_path = Path(sys.argv[1]), Path(sys.argv[2])
    exp = json.loads(exp_path.read_text())
    if "--partial" in sys.argv[3:]:
        err = check_partial(bag, exp)
        print(f"OK partial: {len(exp['messages'])} flushed messages read linearly, stopped by {err}")
        return
    files = sorted(p.name for p in bag.iterdir())
    eq("bag files", files, sorted([f"{bag.name}_0.mcap", "metadata.yaml"]))
    doc = yaml.safe_load((bag / "metadata.yaml").read_text())
    eq("metadata.yaml keys", list(doc), ["rosbag2_bagfile_information"])
    info = doc["rosbag2_bagfile_information"]
    check_metadata(info, bag, exp)
    check_rosbags(bag, exp)
    chunks = check_mcap(bag / f"{bag.name}_0.mcap", exp, info)
    print(f"OK {len(exp['messages'])} messages, {len(exp['topics'])} topics, {chunks} chunks")


if __name__ == "__main__":
    main()
