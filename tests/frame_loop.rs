//! The one frame loop (docs/interfaces.md §3–§4): the node and `replay` drive the same
//! `FrameProcessor` and build their messages with the same `outputs` functions, so for the same
//! frames and seed their message contents are byte-identical except for the latency fields.
//! Here the loop is driven twice over the sample bag with the real model: once by
//! `replay::run` (which writes the output bag), once the way the node drives it (stale timeout
//! on, its own arrival instants, decision first, then the maps and the review).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pipeline_seg::engine::processor::{Arrival, FrameProcessor, LoopOptions, Source};
use pipeline_seg::eval::replay::{self, ReplayConfig};
use pipeline_seg::io::bag_read;
use pipeline_seg::msg::cdr::CdrMessage;
use pipeline_seg::msg::{DiagnosticArray, FrameMsg};
use pipeline_seg::outputs::{self, Message, Topic, TopicSet};
use pipeline_seg::{Params, Pipeline};

const TOPIC: &str = "/camera/image_raw/compressed";

fn sample_bag() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sample_bag")
}

fn params() -> Params {
    // T = 4 keeps the test short; review every 3 s of bag time so that several reviews happen.
    Params { samples: Some(4), seed: 5, review_min_interval_s: 3.0, ..Params::default() }
}

/// CDR bytes of a message with its `latency_ms` value blanked (the only field allowed to differ).
fn without_latency(type_name: &str, data: &[u8]) -> Vec<u8> {
    if type_name != DiagnosticArray::TYPE_NAME {
        return data.to_vec();
    }
    let mut d = DiagnosticArray::decode(data).expect("a DiagnosticArray");
    for s in &mut d.status {
        for kv in s.values.iter_mut().filter(|kv| kv.key == "latency_ms") {
            kv.value.clear();
        }
    }
    d.encode()
}

fn replayed(out: &Path) -> Vec<(String, Vec<u8>)> {
    let mut p = FrameProcessor::new(Pipeline::new(&params()).unwrap(), LoopOptions::default());
    let cfg = ReplayConfig {
        bags: vec![sample_bag()],
        topic: TOPIC.into(),
        gt_topic: None,
        write: TopicSet::ALL,
        out: out.into(),
    };
    let outcome = replay::run(&mut p, &cfg, &mut |_| {}).unwrap();
    assert!(outcome.error().is_none() && outcome.failures.is_empty(), "{:?}", outcome.error());
    let bag = bag_read::open(&out.join("output")).unwrap();
    bag.messages(&[]).map(|m| m.unwrap()).map(|m| (m.topic.clone(), without_latency(&m.type_name, &m.data))).collect()
}

/// The node's inference loop without ROS: frames arrive, the processor decides with the stale
/// timeout on, the decision is published first, then the maps and the review.
fn as_the_node(frames: &[(i64, FrameMsg)]) -> Vec<(String, Vec<u8>)> {
    let options = LoopOptions { stale_timeout: Some(Duration::from_secs(3600)), ..LoopOptions::default() };
    let mut p = FrameProcessor::new(Pipeline::new(&params()).unwrap(), options);
    let mut published = Vec::new();
    for (log_time_ns, msg) in frames {
        // The node's review clock is its own; frames here arrive at the camera's rate.
        let r = p.process(Source::Msg(msg), Arrival { at: Instant::now(), clock_ns: *log_time_ns });
        let mut msgs: Vec<(Topic, Message)> = outputs::decision_messages(&r).into();
        msgs.extend(outputs::frame_messages(&r, Some(msg), &|_| true, None).unwrap());
        published.extend(msgs.into_iter().map(|(t, m)| (t.full(), without_latency(t.type_name(), &m.encode()))));
    }
    published
}

#[test]
fn node_and_replay_publish_the_same_messages_through_the_one_loop() {
    let out = std::env::temp_dir().join(format!("pipeline_seg_frame_loop_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let from_replay = replayed(&out);
    let frames: Vec<(i64, FrameMsg)> = bag_read::open(&sample_bag())
        .unwrap()
        .messages(&[TOPIC])
        .map(|m| m.unwrap())
        .map(|m| (m.log_time_ns, bag_read::decode_frame(&m).unwrap()))
        .collect();
    let from_node = as_the_node(&frames);
    let _ = std::fs::remove_dir_all(&out);

    assert_eq!(frames.len(), 60);
    // Every topic is there, with reviews, and the two runs agree message by message.
    for t in Topic::ALL {
        let n = from_node.iter().filter(|(name, _)| *name == t.full()).count();
        let expected = match t {
            Topic::Review | Topic::ReviewImage => 2..=30,
            _ => 60..=60,
        };
        assert!(expected.contains(&n), "{}: {n} messages", t.full());
    }
    assert_eq!(from_node.len(), from_replay.len());
    for (i, (a, b)) in from_node.iter().zip(&from_replay).enumerate() {
        assert_eq!(a.0, b.0, "message {i}: topic");
        assert!(a.1 == b.1, "message {i} on {}: contents differ", a.0);
    }
}

/// A frame's dropout masks are keyed by the seed and the frame itself (docs/interfaces.md §1):
/// the same frame gives the same segmentation whatever came before it, so a replay of part of a
/// bag, the node and `infer` agree frame by frame, and per-bag runs merge exactly.
#[test]
fn a_frames_segmentation_does_not_depend_on_the_frames_before_it() {
    use pipeline_seg::engine::image::decode_msg;
    use pipeline_seg::engine::pipeline::Resolution;
    let frames: Vec<_> = bag_read::open(&sample_bag())
        .unwrap()
        .messages(&[TOPIC])
        .take(3)
        .map(|m| decode_msg(&bag_read::decode_frame(&m.unwrap()).unwrap(), 1 << 24).unwrap())
        .collect();
    let run = |order: &[usize], seed: u64| {
        let mut p = Pipeline::new(&Params { seed, samples: Some(8), ..params() }).unwrap();
        let mut out = vec![None, None, None];
        for &i in order {
            let s = p.segment(&frames[i], Resolution::Model, false).unwrap();
            out[i] = Some((s.prob, s.entropy, s.mi, s.samples, s.scores.map(f32::to_bits)));
        }
        out
    };
    let forward = run(&[0, 1, 2], 5);
    assert_eq!(forward, run(&[2, 1, 0], 5), "reversed order");
    assert_eq!(forward[1], run(&[1], 5)[1], "the frame alone");
    let again = run(&[1, 1], 5);
    assert_eq!(forward[1], again[1], "the same frame twice");
    assert_ne!(forward[1], run(&[1], 6)[1], "another seed draws other masks");
}
