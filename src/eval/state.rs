//! What a replay run keeps (`DIR/state.json`) and `merge` (docs/interfaces.md §11).
//!
//! `metrics.json` and `report.html` are made from a [`RunState`] only: the run's counts and
//! histograms ([`Accumulator`], [`GateStats`]) and one small record per frame. States add up
//! exactly, and a frame's result does not depend on the frames before it (the dropout masks are
//! keyed by the frame), so runs of separate bags merge into what one replay of all of them
//! gives. Runs made with other settings, another model or another seed do not merge.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::processor::FrameProcessor;
use crate::engine::score::ScoreMethod;
use crate::engine::trust::FEATURE_DISTANCE;
use crate::eval::metrics::{spearman, Accumulator, GateStats, Metrics};
use crate::eval::replay::{ReplayMetrics, Thresholds};
use crate::num::{mix64, short};
use crate::view::report::{self, BagRow, FramePoint, Gallery, GalleryItem, ReportInput};

/// `format` of a state file this version writes and reads.
pub const FORMAT: &str = "pipeline_seg-run-state/1";
/// The state file in a run directory.
pub const STATE_FILE: &str = "state.json";
/// The per-frame table in a run directory.
pub const FRAMES_FILE: &str = "frames.csv";
/// Gallery thumbnails in a run directory.
pub const GALLERY_DIR: &str = "gallery";

/// Everything a frame's result depends on besides the frame: runs merge only when these agree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunKey {
    /// Hash of the model file's bytes (the path may differ between machines).
    pub model_digest: String,
    /// Whether the trunk/head pair ran (its numbers differ from the whole graph's by ~1e-7).
    pub split: bool,
    /// ONNX Runtime execution provider.
    pub execution_provider: String,
    /// MC-Dropout samples at most.
    pub samples: usize,
    /// Samples per anytime step.
    pub min_samples: usize,
    /// Anytime interval width.
    pub anytime_z: f32,
    /// Seed of the dropout masks.
    pub seed: u64,
    /// Frame score method.
    pub score_method: String,
    /// `pixel_threshold`.
    pub pixel_threshold: f32,
    /// `band_px`.
    pub band_px: u32,
    /// `threshold_high`.
    pub threshold_high: f32,
    /// `threshold_low`.
    pub threshold_low: f32,
    /// `recover_frames`.
    pub recover_frames: u32,
    /// The trust model in force, encoded.
    pub trust_model: Option<String>,
    /// `min_pipeline_fraction`.
    pub min_pipeline_fraction: f32,
    /// `max_image_pixels`.
    pub max_image_pixels: usize,
    /// `min_luma`, `max_luma`, `min_contrast`, `max_saturated`.
    pub sanity: [f32; 4],
    /// `review_min_interval_s`.
    pub review_min_interval_s: f64,
    /// Camera topic.
    pub topic: String,
    /// Ground-truth topic.
    pub gt_topic: Option<String>,
}

/// A 64-bit hash of a file's bytes as 16 hex digits (fixed here: the same on every machine).
pub fn file_digest(path: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    let mut words = bytes.chunks_exact(8);
    let h = (&mut words)
        .fold(0x6D6F_6465_6C5F_6869u64, |h, w| mix64(h, u64::from_le_bytes(w.try_into().expect("8 bytes"))));
    let h = words.remainder().iter().fold(h, |h, &b| mix64(h, b as u64));
    Ok(format!("{:016x}", h ^ bytes.len() as u64))
}

impl RunKey {
    /// The key of runs made by `processor` on `topic` (and `gt_topic`).
    pub fn new(processor: &FrameProcessor, topic: &str, gt_topic: Option<&str>) -> std::io::Result<RunKey> {
        let s = processor.settings();
        let model = &processor.pipeline().model;
        Ok(RunKey {
            model_digest: file_digest(&model.path)?,
            split: model.is_split(),
            execution_provider: model.execution_provider.to_string(),
            samples: s.samples,
            min_samples: s.min_samples,
            anytime_z: s.anytime_z,
            seed: s.seed,
            score_method: s.score.method.name().to_string(),
            pixel_threshold: s.score.pixel_threshold,
            band_px: s.score.band_px,
            threshold_high: s.gate.threshold_high,
            threshold_low: s.gate.threshold_low,
            recover_frames: s.gate.recover_frames,
            trust_model: s.trust.as_ref().map(|t| t.encode()),
            min_pipeline_fraction: s.min_pipeline_fraction,
            max_image_pixels: s.max_image_pixels,
            sanity: [s.sanity.min_luma, s.sanity.max_luma, s.sanity.min_contrast, s.sanity.max_saturated],
            review_min_interval_s: s.review_min_interval.as_secs_f64(),
            topic: topic.to_string(),
            gt_topic: gt_topic.map(str::to_string),
        })
    }

    /// Where `other` differs from this key, one `name: this vs other` per field.
    pub fn differences(&self, other: &RunKey) -> Vec<String> {
        let (a, b) = (serde_json::to_value(self).unwrap_or_default(), serde_json::to_value(other).unwrap_or_default());
        let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return vec!["unreadable key".into()] };
        a.iter().filter(|(k, v)| b.get(*k) != Some(v)).map(|(k, v)| format!("{k}: {v} vs {}", b[k])).collect()
    }
}

/// One bag of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BagRun {
    /// The bag as given on the command line.
    pub bag: PathBuf,
    /// Frames processed (failed ones included).
    pub frames: u64,
    /// Frames with matched ground truth.
    pub frames_with_gt: u64,
    /// Frames that could not be decoded.
    pub decode_errors: u64,
    /// Frames on which the model failed.
    pub inference_errors: u64,
    /// Why the bag's replay stopped early or could not finish its outputs, if it did.
    pub error: Option<String>,
}

/// What the gate saw of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seen {
    /// A score (the frame passed the input checks).
    Score,
    /// The frame failed the input checks.
    ImageQuality,
    /// The frame could not be decoded.
    DecodeError,
    /// The model failed on the frame.
    InferenceError,
}

/// One frame of a run: what `metrics.json`, `report.html`, `calibrate` and `select` need.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameRecord {
    /// Index of the bag in [`RunState::bags`].
    pub bag: usize,
    /// The message's log time [ns].
    pub log_time_ns: i64,
    /// Header stamp [ns] (the log time for a message that could not be read).
    pub stamp_ns: i64,
    /// What the gate saw.
    pub seen: Seen,
    /// The frame score under every method ([`ScoreMethod::ALL`] order); `None` for a failed
    /// frame or a method the model cannot compute.
    pub scores: Vec<Option<f32>>,
    /// The configured method applied to the mutual information (`select --by mi`).
    pub mi_score: Option<f32>,
    /// The frame's signals (docs/interfaces.md §9); empty for a failed frame.
    pub signals: Vec<Option<f32>>,
    /// The gate's decision.
    pub confident: bool,
    /// Whether a review was requested.
    pub review: bool,
    /// IoU against the ground truth, when the frame has some.
    pub iou: Option<f64>,
    /// Bad per docs/interfaces.md §7, when the frame has ground truth.
    pub bad: Option<bool>,
}

impl FrameRecord {
    /// The score of `method`, when the frame has one.
    pub fn score(&self, method: ScoreMethod) -> Option<f32> {
        self.scores.get(method.index()).copied().flatten()
    }

    /// A signal, when the frame has it.
    pub fn signal(&self, i: usize) -> Option<f32> {
        self.signals.get(i).copied().flatten()
    }
}

/// A frame of the report's gallery; its thumbnails are files in [`GALLERY_DIR`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GalleryEntry {
    /// Header stamp [ns].
    pub stamp_ns: i64,
    /// Frame score.
    pub score: f64,
    /// Input, mask and entropy thumbnails, relative to the run directory.
    pub files: [String; 3],
}

/// The mergeable state of a replay run (`DIR/state.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// [`FORMAT`].
    pub format: String,
    /// What the results depend on.
    pub key: RunKey,
    /// The model file as the run named it.
    pub model: PathBuf,
    /// The bags, in order.
    pub bags: Vec<BagRun>,
    /// Pixel metrics of the frames with ground truth.
    pub accumulator: Accumulator,
    /// Gate statistics of the frames with ground truth.
    pub gate: GateStats,
    /// Every frame, in order.
    pub frames: Vec<FrameRecord>,
    /// The most uncertain frames.
    pub gallery: Vec<GalleryEntry>,
}

/// Why runs cannot be read or merged (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A run directory without a readable state.
    #[error("{}: {why}", dir.display())]
    Unreadable {
        /// The run directory.
        dir: PathBuf,
        /// Why.
        why: String,
    },
    /// Runs that do not merge.
    #[error("cannot merge {} with {}: {}", a.display(), b.display(), why.join("; "))]
    Mismatch {
        /// The first run.
        a: PathBuf,
        /// The run that differs.
        b: PathBuf,
        /// What differs.
        why: Vec<String>,
    },
    /// An output that cannot be written.
    #[error("cannot write {}: {why}", path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

fn unreadable(dir: &Path, why: impl std::fmt::Display) -> StateError {
    StateError::Unreadable { dir: dir.to_path_buf(), why: why.to_string() }
}

impl RunState {
    /// An empty state for runs with this key.
    pub fn new(key: RunKey, model: PathBuf) -> RunState {
        RunState {
            format: FORMAT.to_string(),
            key,
            model,
            bags: Vec::new(),
            accumulator: Accumulator::new(),
            gate: GateStats::new(),
            frames: Vec::new(),
            gallery: Vec::new(),
        }
    }

    /// Reads `DIR/state.json` of a replay run.
    pub fn load(dir: &Path) -> Result<RunState, StateError> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            let hint = if dir.join(FRAMES_FILE).exists() {
                " (the run did not finish: killed? replay the bag again)"
            } else {
                " (not a replay output directory)"
            };
            unreadable(dir, format!("{STATE_FILE}: {e}{hint}"))
        })?;
        let state: RunState = serde_json::from_str(&text).map_err(|e| unreadable(dir, format!("{STATE_FILE}: {e}")))?;
        if state.format != FORMAT {
            return Err(unreadable(dir, format!("{STATE_FILE} is '{}', this version reads '{FORMAT}'", state.format)));
        }
        if state.frames.iter().any(|f| f.bag >= state.bags.len()) {
            return Err(unreadable(dir, format!("{STATE_FILE}: a frame names a bag that is not listed")));
        }
        Ok(state)
    }

    /// Appends the bags and frames of `other` (a run made with the same key) after these.
    pub fn append(&mut self, other: RunState) -> Result<(), String> {
        let offset = self.bags.len();
        self.accumulator.merge(&other.accumulator)?;
        self.gate.merge(&other.gate);
        self.bags.extend(other.bags);
        self.frames.extend(other.frames.into_iter().map(|f| FrameRecord { bag: f.bag + offset, ..f }));
        Ok(())
    }

    /// The method the run scored frames with.
    pub fn method(&self) -> ScoreMethod {
        self.key.score_method.parse().unwrap_or(ScoreMethod::Mean)
    }

    /// `metrics.json` of these frames.
    pub fn metrics(&self) -> ReplayMetrics {
        let m: Metrics = self.accumulator.metrics();
        let with_gt = self.accumulator.frames() > 0;
        let method = self.method();
        let (scores, ious): (Vec<f64>, Vec<f64>) =
            self.frames.iter().filter_map(|f| Some((f.score(method)? as f64, f.iou?))).unzip();
        let sum = |f: fn(&BagRun) -> u64| self.bags.iter().map(f).sum::<u64>();
        let errors: Vec<String> = self
            .bags
            .iter()
            .filter_map(|b| {
                b.error
                    .as_ref()
                    .map(|e| if self.bags.len() > 1 { format!("{}: {e}", b.bag.display()) } else { e.clone() })
            })
            .collect();
        let k = &self.key;
        ReplayMetrics {
            pooled_iou: with_gt.then_some(m.pooled_iou),
            mean_iou: m.mean_iou,
            dice: with_gt.then_some(m.dice),
            auroc_entropy: m.auroc_entropy,
            auroc_mi: m.auroc_mi,
            ece: m.ece,
            ece_pipe: m.ece_pipe,
            aurc: with_gt.then_some(m.aurc),
            pixel_error_rate: with_gt.then_some(m.pixel_error_rate),
            spearman_score_iou: spearman(&scores, &ious),
            gate: self.gate.summary(),
            frames: sum(|b| b.frames),
            frames_with_gt: sum(|b| b.frames_with_gt),
            decode_errors: sum(|b| b.decode_errors),
            inference_errors: sum(|b| b.inference_errors),
            samples: k.samples,
            seed: k.seed,
            score_method: method.name(),
            thresholds: Thresholds {
                threshold_high: short(k.threshold_high),
                threshold_low: short(k.threshold_low),
                recover_frames: k.recover_frames,
            },
            model: self.model.clone(),
            execution_provider: k.execution_provider.clone(),
            bag: self.bags.first().map(|b| b.bag.clone()).unwrap_or_default(),
            bags: self.bags.iter().map(|b| b.bag.clone()).collect(),
            topic: k.topic.clone(),
            gt_topic: k.gt_topic.clone(),
            stopped_early: !errors.is_empty(),
            error: (!errors.is_empty()).then(|| errors.join("; ")),
        }
    }

    /// The report's time series: bag time since the run's first frame, the bags of a run placed
    /// one after another, 1 s apart (their own times may overlap or lie days apart).
    fn points(&self) -> Vec<FramePoint> {
        let method = self.method();
        let (mut bag, mut first, mut offset, mut last) = (None, 0i64, 0.0f64, 0.0f64);
        self.frames
            .iter()
            .map(|f| {
                if bag != Some(f.bag) {
                    offset = if bag.is_some() { last + 1.0 } else { 0.0 };
                    (bag, first) = (Some(f.bag), f.log_time_ns);
                }
                last = offset + (f.log_time_ns - first) as f64 * 1e-9;
                (f, last)
            })
            .map(|(f, t)| FramePoint {
                t,
                score: f.score(method).map(f64::from),
                confident: f.confident,
                flagged: f.review,
                iou: f.iou,
                bad: f.bad,
                trust: f.score(ScoreMethod::Trust).map(f64::from),
                feature_distance: f.signal(FEATURE_DISTANCE).map(f64::from),
            })
            .collect()
    }

    /// Writes `metrics.json`, the gallery's thumbnails, `report.html` and `state.json` into
    /// `dir`; returns what could not be written (the others are still written).
    pub fn write(&mut self, dir: &Path, gallery: Vec<GalleryItem>) -> Vec<String> {
        let mut errors = Vec::new();
        let mut fail = |path: &Path, e: &dyn std::fmt::Display| errors.push(format!("{}: {e}", path.display()));
        self.gallery.clear();
        let gdir = dir.join(GALLERY_DIR);
        if !gallery.is_empty() {
            if let Err(e) = std::fs::create_dir_all(&gdir) {
                fail(&gdir, &e);
            }
        }
        for (rank, item) in gallery.iter().enumerate() {
            // The rank keeps frames of two bags with the same stamp apart.
            let stem = format!("{GALLERY_DIR}/{rank:02}_{}", item.stamp_ns);
            let files = [format!("{stem}_input.jpg"), format!("{stem}_mask.png"), format!("{stem}_entropy.jpg")];
            for (name, bytes) in files.iter().zip([&item.input, &item.mask, &item.entropy]) {
                if let Err(e) = std::fs::write(dir.join(name), bytes) {
                    fail(&dir.join(name), &e);
                }
            }
            self.gallery.push(GalleryEntry { stamp_ns: item.stamp_ns, score: item.score, files });
        }
        let json = serde_json::to_value(self.metrics()).unwrap_or_default();
        let path = dir.join("metrics.json");
        if let Err(e) = std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap_or_default() + "\n") {
            fail(&path, &e);
        }
        let m = self.accumulator.metrics();
        let points = self.points();
        let report_input = ReportInput {
            metrics: &json,
            frames: &points,
            threshold_high: self.key.threshold_high as f64,
            threshold_low: self.key.threshold_low as f64,
            reliability: self.accumulator.reliability(),
            risk_coverage: self.accumulator.risk_coverage(),
            aurc: (self.accumulator.frames() > 0).then_some(m.aurc),
            roc: self.accumulator.error_roc(),
            auroc: m.auroc_entropy,
            gallery,
            bags: self.bag_rows(),
        };
        let path = dir.join("report.html");
        if let Err(e) = report::write_report(&path, &report_input) {
            fail(&path, &e);
        }
        let path = dir.join(STATE_FILE);
        match serde_json::to_string(self) {
            Ok(text) => {
                if let Err(e) = std::fs::write(&path, text + "\n") {
                    fail(&path, &e);
                }
            }
            Err(e) => fail(&path, &e),
        }
        errors
    }

    /// The report's per-bag table (one pass over the frames: campaigns have many bags).
    fn bag_rows(&self) -> Vec<BagRow> {
        let mut rows: Vec<(BagRow, f64)> = self
            .bags
            .iter()
            .map(|b| {
                let row = BagRow {
                    bag: b.bag.display().to_string(),
                    frames: b.frames,
                    failed: b.decode_errors + b.inference_errors,
                    confident: 0,
                    with_gt: 0,
                    mean_iou: None,
                    bad: 0,
                    bad_confident: 0,
                    error: b.error.clone(),
                };
                (row, 0.0)
            })
            .collect();
        for f in &self.frames {
            let (row, iou_sum) = &mut rows[f.bag];
            row.confident += f.confident as u64;
            if let Some(iou) = f.iou {
                row.with_gt += 1;
                *iou_sum += iou;
            }
            let bad = f.bad == Some(true);
            row.bad += bad as u64;
            row.bad_confident += (bad && f.confident) as u64;
        }
        rows.into_iter()
            .map(|(row, sum)| BagRow { mean_iou: (row.with_gt > 0).then(|| sum / row.with_gt as f64), ..row })
            .collect()
    }

    /// The gallery's thumbnails, read back from the run directory.
    fn gallery_items(&self, dir: &Path) -> Result<Vec<GalleryItem>, StateError> {
        self.gallery
            .iter()
            .map(|g| {
                let read =
                    |name: &String| std::fs::read(dir.join(name)).map_err(|e| unreadable(dir, format!("{name}: {e}")));
                Ok(GalleryItem {
                    stamp_ns: g.stamp_ns,
                    score: g.score,
                    input: read(&g.files[0])?,
                    mask: read(&g.files[1])?,
                    entropy: read(&g.files[2])?,
                })
            })
            .collect()
    }
}

/// Whether `path` is a replay run directory (it holds `state.json`), not a bag.
pub fn is_run_dir(path: &Path) -> bool {
    path.join(STATE_FILE).is_file()
}

/// What runs must have been made with to stand in for bags in `calibrate` and `select`: what
/// the frame processor would do now on `topic` (and `gt_topic`; `None`: any). The key hashes the
/// model file, so it is made once, at the first run directory, not per directory.
pub struct Matching<'a> {
    topic: &'a str,
    gt_topic: Option<&'a str>,
    key: Option<RunKey>,
}

impl<'a> Matching<'a> {
    /// Runs made on `topic` (and `gt_topic`; `None`: any).
    pub fn new(topic: &'a str, gt_topic: Option<&'a str>) -> Matching<'a> {
        Matching { topic, gt_topic, key: None }
    }

    /// Reads the run in `dir`, which must have been made with what `processor` does; an error
    /// names each setting it was made with otherwise.
    pub fn load(&mut self, dir: &Path, processor: &FrameProcessor) -> Result<RunState, StateError> {
        let s = RunState::load(dir)?;
        let key = match &self.key {
            Some(k) => k,
            None => {
                let k = RunKey::new(processor, self.topic, self.gt_topic).map_err(|e| unreadable(dir, e))?;
                self.key.insert(k)
            }
        };
        // Without a gt_topic to match, the run's own stands.
        let now = match self.gt_topic {
            Some(_) => key.clone(),
            None => RunKey { gt_topic: s.key.gt_topic.clone(), ..key.clone() },
        };
        let why = s.key.differences(&now);
        if !why.is_empty() {
            let why = why.into_iter().map(|w| format!("{w} (run vs now)")).collect::<Vec<_>>().join("; ");
            let hint = "pass the --model/--config/--samples/--seed the run was made with, or replay the bags again";
            return Err(unreadable(dir, format!("made with other settings: {why}; {hint}")));
        }
        Ok(s)
    }
}

/// Reads the states of run directories and checks that they merge: same key, no bag twice.
pub fn load_runs(dirs: &[PathBuf]) -> Result<Vec<RunState>, StateError> {
    let mut states: Vec<RunState> = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let s = RunState::load(dir)?;
        if let Some(first) = states.first() {
            let why = first.key.differences(&s.key);
            if !why.is_empty() {
                return Err(StateError::Mismatch { a: dirs[0].clone(), b: dir.clone(), why });
            }
        }
        for (other_dir, other) in dirs.iter().zip(&states) {
            if let Some(b) = s.bags.iter().find(|b| other.bags.iter().any(|o| o.bag == b.bag)) {
                let why = vec![format!("both replayed {}", b.bag.display())];
                return Err(StateError::Mismatch { a: other_dir.clone(), b: dir.clone(), why });
            }
        }
        states.push(s);
    }
    Ok(states)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// What `merge` wrote.
#[derive(Debug)]
pub struct Merged {
    /// The merged state (as written to `OUT/state.json`).
    pub state: RunState,
    /// Outputs that could not be written.
    pub errors: Vec<String>,
}

/// Merges replay runs into `out`: `metrics.json`, `frames.csv` (rows in the order of `dirs`,
/// with their `bag` column), `report.html` and `state.json`, equal to one replay of all their
/// bags in that order.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Merged, StateError> {
    if dirs.is_empty() {
        return Err(unreadable(Path::new("merge"), "no run directories given"));
    }
    if let Some(d) = dirs.iter().find(|d| same_dir(d, out)) {
        return Err(unreadable(d, "is also the output directory; merge into another"));
    }
    let states = load_runs(dirs)?;
    let mut gallery = Gallery::new(report::GALLERY_FRAMES);
    let mut csv = String::new();
    for (dir, s) in dirs.iter().zip(&states) {
        s.gallery_items(dir)?.into_iter().for_each(|g| gallery.offer(g));
        let path = dir.join(FRAMES_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| unreadable(dir, format!("{FRAMES_FILE}: {e}")))?;
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        if csv.is_empty() {
            csv = format!("{header}\n");
        } else if !csv.starts_with(&format!("{header}\n")) {
            return Err(unreadable(dir, format!("{FRAMES_FILE} has other columns than {}", dirs[0].display())));
        }
        let rows: Vec<&str> = lines.collect();
        let frames = s.frames.len();
        if rows.len() != frames {
            let why = format!("{FRAMES_FILE} has {} rows, {STATE_FILE} {frames} frames", rows.len());
            return Err(unreadable(dir, why));
        }
        rows.iter().for_each(|r| {
            csv += r;
            csv.push('\n');
        });
    }
    let mut states = states.into_iter();
    let mut state = states.next().expect("one run at least");
    for s in states {
        state.append(s).map_err(|why| unreadable(out, why))?;
    }
    std::fs::create_dir_all(out).map_err(|e| StateError::Output { path: out.to_path_buf(), why: e.to_string() })?;
    let path = out.join(FRAMES_FILE);
    std::fs::write(&path, csv).map_err(|e| StateError::Output { path, why: e.to_string() })?;
    let errors = state.write(out, gallery.into_sorted());
    Ok(Merged { state, errors })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(bag: usize, log_time_ns: i64) -> FrameRecord {
        FrameRecord {
            bag,
            log_time_ns,
            stamp_ns: log_time_ns,
            seen: Seen::Score,
            scores: vec![Some(0.5); ScoreMethod::ALL.len()],
            mi_score: Some(0.1),
            signals: Vec::new(),
            confident: true,
            review: false,
            iou: None,
            bad: None,
        }
    }

    #[test]
    fn the_report_places_bags_one_after_another() {
        let key: RunKey = serde_json::from_value(serde_json::json!({
            "model_digest": "0", "split": true, "execution_provider": "CPUExecutionProvider", "samples": 4,
            "min_samples": 4, "anytime_z": 3.0, "seed": 0, "score_method": "mean", "pixel_threshold": 0.5,
            "band_px": 4, "threshold_high": 0.6, "threshold_low": 0.4, "recover_frames": 3, "trust_model": null,
            "min_pipeline_fraction": 0.005, "max_image_pixels": 100, "sanity": [8.0, 247.0, 3.0, 0.6],
            "review_min_interval_s": 10.0, "topic": "/cam", "gt_topic": null
        }))
        .unwrap();
        let mut s = RunState::new(key.clone(), PathBuf::from("m.onnx"));
        let s0 = 1_700_000_000_000_000_000i64;
        // Two bags recorded at the same time (or any times): 0, 0.5 s, then 1 s apart, 0, 0.5 s.
        s.frames = vec![frame(0, s0), frame(0, s0 + 500_000_000), frame(1, s0), frame(1, s0 + 500_000_000)];
        let t: Vec<f64> = s.points().iter().map(|p| p.t).collect();
        assert_eq!(t, vec![0.0, 0.5, 1.5, 2.0]);
        let mut other = key.clone();
        other.seed = 4;
        assert_eq!(key.differences(&other), vec!["seed: 0 vs 4".to_string()]);
        assert!(key.differences(&key).is_empty());
    }
}
