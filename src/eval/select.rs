//! `select`: the K most uncertain frames for labelling, no two of one bag within a minimum gap.
//!
//! Scores come from the one frame loop over the bags (pass 1, only `(stamp, score)` per frame is
//! kept); the chosen frames are then read again and written as PNGs (pass 2), so memory does not
//! grow with the bag.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::engine::config::Params;
use crate::engine::image::decode_msg;
use crate::engine::pipeline::Pipeline;
use crate::engine::processor::{FrameFailure, FrameProcessor, LoopOptions};
use crate::eval::replay::{self, csv_field, BagFrames, Failure, ReplayError};
use crate::eval::state::{self, FrameRecord, Matching, Seen};
use crate::eval::{Problem, Progress};
use crate::io::bag_read;
use crate::view::render;

/// The map that `score_method` is applied to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    /// Mutual information (epistemic: what more labels can teach).
    Mi,
    /// Entropy.
    Entropy,
}

impl std::str::FromStr for By {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> crate::error::Result<Self> {
        match s {
            "mi" => Ok(By::Mi),
            "entropy" => Ok(By::Entropy),
            other => Err(crate::error::Error::param("--by", format!("'{other}' unknown; use mi or entropy"))),
        }
    }
}

impl By {
    /// What it is called in messages.
    pub fn describe(self) -> &'static str {
        match self {
            By::Mi => "mutual information",
            By::Entropy => "entropy",
        }
    }
}

/// What to select from and where to write.
#[derive(Clone, Debug)]
pub struct SelectConfig {
    /// Bags to select from.
    pub bags: Vec<PathBuf>,
    /// Camera topic.
    pub topic: String,
    /// Number of frames to export.
    pub top_k: usize,
    /// No two picks of one bag closer than this [s, header stamps].
    pub min_gap_s: f64,
    /// The map scored.
    pub by: By,
    /// Output directory: `<stamp_ns>.png` and `manifest.csv`.
    pub out: PathBuf,
}

/// What `select` wrote.
#[derive(Debug)]
pub struct Selection {
    /// The map scored.
    pub by: By,
    /// Output directory.
    pub out: PathBuf,
    /// The minimum gap [s].
    pub min_gap_s: f64,
    /// The frames written, best first.
    pub written: Vec<Candidate>,
    /// The score method used.
    pub method: &'static str,
    /// Problems met on the way.
    pub problems: Vec<Problem>,
}

/// Scores every frame of the bags, picks the top K and writes them with `manifest.csv`.
pub fn run(params: &Params, cfg: &SelectConfig, progress: &mut dyn Progress) -> Result<Selection, ReplayError> {
    if cfg.top_k == 0 {
        return Err(crate::error::Error::param("--top-k", "must be at least 1").into());
    }
    if !(cfg.min_gap_s >= 0.0 && cfg.min_gap_s.is_finite()) {
        return Err(crate::error::Error::param(
            "--min-gap",
            format!("must be a non-negative number of seconds, not {}", cfg.min_gap_s),
        )
        .into());
    }
    let mut total = 0;
    for bag in cfg.bags.iter().filter(|b| !state::is_run_dir(b)) {
        BagFrames::open(bag, &cfg.topic, None)?;
        total += replay::expected_messages(bag, &cfg.topic).unwrap_or(0);
    }
    std::fs::create_dir_all(&cfg.out).map_err(|source| ReplayError::Output { path: cfg.out.clone(), source })?;
    let mut processor = FrameProcessor::new(Pipeline::new(params)?, LoopOptions::default());
    let method = processor.settings().score.method.name();
    let max_pixels = processor.settings().max_image_pixels;
    // Pass 1: every frame's score; only (bag, stamp, score) is kept.
    progress.start("select: scoring", Some(total));
    let (mut cands, mut problems) = (Vec::new(), Vec::new());
    // The bags the frames come from: a replay run's recorded bags stand in for its directory.
    let mut bags: Vec<PathBuf> = Vec::new();
    let mut matching = Matching::new(&cfg.topic, None);
    for bag in &cfg.bags {
        if state::is_run_dir(bag) {
            let run = matching.load(bag, &processor)?;
            let score = |f: &FrameRecord| match cfg.by {
                By::Mi => f.mi_score,
                By::Entropy => f.score(run.method()),
            };
            let segmented = run.frames.iter().filter(|f| matches!(f.seen, Seen::Score | Seen::ImageQuality));
            cands.extend(
                segmented.filter_map(|f| {
                    Some(Candidate { bag: bags.len() + f.bag, stamp_ns: f.stamp_ns, score: score(f)? })
                }),
            );
            bags.extend(run.bags.iter().map(|b| b.bag.clone()));
            continue;
        }
        let i = bags.len();
        bags.push(bag.clone());
        problems.extend(replay::scan(&mut processor, bag, &cfg.topic, None, &mut |_, r| {
            progress.step(r.decision.reason.name());
            if let Some(seg) = r.segmentation() {
                let score = match cfg.by {
                    By::Mi => seg.mi_score,
                    By::Entropy => seg.score,
                };
                cands.push(Candidate { bag: i, stamp_ns: r.header.stamp.nanos(), score });
            }
        })?);
    }
    progress.finish();
    let picked = pick(cands, cfg.top_k, (cfg.min_gap_s * 1e9).round() as i64);
    // Pass 2: read the chosen frames again and write them losslessly.
    progress.start("select: writing", Some(picked.len() as u64));
    let mut written = HashSet::new();
    for (i, bag) in bags.iter().enumerate() {
        let want: HashSet<i64> = picked.iter().filter(|c| c.bag == i).map(|c| c.stamp_ns).collect();
        if want.is_empty() {
            continue;
        }
        for msg in bag_read::open(bag)?.messages(&[cfg.topic.as_str()]) {
            let Ok(msg) = msg else { break };
            let Ok(decoded) = bag_read::decode_frame(&msg) else { continue };
            let stamp = decoded.header().stamp.nanos();
            if !want.contains(&stamp) || written.contains(&(i, stamp)) {
                continue;
            }
            match decode_msg(&decoded, max_pixels) {
                Ok(frame) => {
                    let path = cfg.out.join(format!("{stamp}.png"));
                    render::write_png(&path, &frame.to_bgr(), frame.width, frame.height, 3)?;
                    written.insert((i, stamp));
                    progress.step("");
                }
                Err(e) => problems
                    .push(Problem::Failed(Failure { pos: msg.pos(), failure: FrameFailure::Decode(Box::new(e)) })),
            }
            if written.iter().filter(|(b, _)| *b == i).count() == want.len() {
                break;
            }
        }
    }
    progress.finish();
    let n_picked = picked.len();
    let written: Vec<Candidate> = picked.into_iter().filter(|c| written.contains(&(c.bag, c.stamp_ns))).collect();
    if written.len() < n_picked {
        problems.push(Problem::NotWritten(n_picked - written.len()));
    }
    let mut csv = String::from("bag,topic,stamp_ns,score\n");
    for c in &written {
        csv += &format!("{},{},{},{}\n", csv_field(&bags[c.bag].display().to_string()), cfg.topic, c.stamp_ns, c.score);
    }
    let manifest = cfg.out.join("manifest.csv");
    std::fs::write(&manifest, csv).map_err(|source| ReplayError::Output { path: manifest, source })?;
    Ok(Selection { by: cfg.by, out: cfg.out.clone(), min_gap_s: cfg.min_gap_s, written, method, problems })
}

/// A scored frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Index of the bag on the command line.
    pub bag: usize,
    /// Header stamp [ns].
    pub stamp_ns: i64,
    /// Score (higher = more uncertain).
    pub score: f32,
}

/// The top `k` by score (descending; ties: earlier stamp), skipping any frame within
/// `min_gap_ns` of an already picked frame of the same bag.
pub fn pick(mut cands: Vec<Candidate>, k: usize, min_gap_ns: i64) -> Vec<Candidate> {
    cands.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.bag.cmp(&b.bag)).then(a.stamp_ns.cmp(&b.stamp_ns)));
    let mut out: Vec<Candidate> = Vec::with_capacity(k);
    for c in cands {
        if out.len() >= k {
            break;
        }
        if out.iter().all(|o| o.bag != c.bag || (o.stamp_ns - c.stamp_ns).abs() >= min_gap_ns) {
            out.push(c);
        }
    }
    out
}

impl std::fmt::Display for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (n, by, out) = (self.written.len(), self.by.describe(), self.out.display());
        write!(
            f,
            "{n} frames selected by {} of the {by} (min gap {} s); outputs in {out} (<stamp_ns>.png, manifest.csv)",
            self.method, self.min_gap_s
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_by_score_with_a_gap() {
        let c = |bag, s: i64, score| Candidate { bag, stamp_ns: s * 1_000_000_000, score };
        let got = pick(vec![c(0, 0, 0.9), c(0, 1, 0.8), c(0, 3, 0.7), c(1, 1, 0.6), c(0, 5, 0.1)], 3, 2_000_000_000);
        assert_eq!(got, vec![c(0, 0, 0.9), c(0, 3, 0.7), c(1, 1, 0.6)]);
    }
}
