//! `report.html` of `replay`: one self-contained file (no network) with a summary table of
//! `metrics.json`, seven SVG plots drawn with `plotters` (score over time with the gate state and
//! flagged frames, IoU over time, trust and feature distance over time, the frame decisions'
//! risk–coverage curve, reliability diagram, pixel risk–coverage curve, error-detection ROC)
//! and a gallery of the most uncertain frames as inline base64 images.
//!
//! The gallery is collected during the replay by [`Gallery`], a min-heap of at most K entries
//! holding small thumbnails: memory does not grow with the bag.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::path::Path;

use opencv::{core, imgcodecs, imgproc, prelude::*};
use plotters::prelude::*;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::num::fixed;

/// Frames in the gallery by default.
pub const GALLERY_FRAMES: usize = 8;
/// Thumbnail width [px].
pub const THUMB_WIDTH: usize = 240;

const PLOT_W: u32 = 900;
const PLOT_H: u32 = 380;

/// One bin of the reliability diagram (`eval::metrics::Accumulator::reliability`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ReliabilityBin {
    /// Lower confidence edge.
    pub lo: f64,
    /// Upper confidence edge.
    pub hi: f64,
    /// Pixels in the bin.
    pub count: u64,
    /// Mean confidence max(p, 1 − p) of its pixels.
    pub confidence: f64,
    /// Fraction of its pixels predicted right.
    pub accuracy: f64,
}

/// One frame on the time axes.
#[derive(Clone, Copy, Debug)]
pub struct FramePoint {
    /// Bag time since the first frame [s] (the bags of a run one after another).
    pub t: f64,
    /// Frame score; `None` for a failed frame.
    pub score: Option<f64>,
    /// The gate's output.
    pub confident: bool,
    /// Whether a review was requested for the frame.
    pub flagged: bool,
    /// IoU against the ground truth, when the frame has some.
    pub iou: Option<f64>,
    /// Bad per docs/interfaces.md §7, when the frame has ground truth.
    pub bad: Option<bool>,
    /// The trust score, when the model has one.
    pub trust: Option<f64>,
    /// The model's `feature_distance`, when it has that output.
    pub feature_distance: Option<f64>,
}

/// A gallery frame: thumbnails as encoded image files (JPEG or PNG bytes).
#[derive(Clone, Debug)]
pub struct GalleryItem {
    /// Header stamp [ns].
    pub stamp_ns: i64,
    /// Frame score.
    pub score: f64,
    /// Input thumbnail (JPEG).
    pub input: Vec<u8>,
    /// Mask thumbnail (PNG).
    pub mask: Vec<u8>,
    /// Entropy thumbnail, inferno colour map (JPEG).
    pub entropy: Vec<u8>,
}

struct Ranked(GalleryItem);

impl Ranked {
    fn key(&self) -> (f64, Reverse<i64>) {
        (self.0.score, Reverse(self.0.stamp_ns))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ranked {
    fn cmp(&self, o: &Self) -> Ordering {
        let (a, b) = (self.key(), o.key());
        a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
    }
}

/// The K frames with the highest score so far (ties: the earlier frame), in bounded memory.
pub struct Gallery {
    k: usize,
    heap: BinaryHeap<Reverse<Ranked>>,
}

impl Gallery {
    /// An empty gallery of at most `k` frames.
    pub fn new(k: usize) -> Self {
        Gallery { k, heap: BinaryHeap::with_capacity(k + 1) }
    }

    /// Whether a frame with this score and stamp would enter the gallery (check before making
    /// thumbnails).
    pub fn accepts(&self, score: f64, stamp_ns: i64) -> bool {
        if self.k == 0 || score.is_nan() {
            return false;
        }
        if self.heap.len() < self.k {
            return true;
        }
        let min = &self.heap.peek().expect("full heap").0;
        score.total_cmp(&min.0.score).then(Reverse(stamp_ns).cmp(&Reverse(min.0.stamp_ns))) == Ordering::Greater
    }

    /// Offers a frame; keeps it when it is among the K best.
    pub fn offer(&mut self, item: GalleryItem) {
        if !self.accepts(item.score, item.stamp_ns) {
            return;
        }
        self.heap.push(Reverse(Ranked(item)));
        if self.heap.len() > self.k {
            self.heap.pop();
        }
    }

    /// Frames kept so far.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no frame is kept.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The kept frames, most uncertain first.
    pub fn into_sorted(self) -> Vec<GalleryItem> {
        let mut v: Vec<Ranked> = self.heap.into_iter().map(|r| r.0).collect();
        v.sort_by(|a, b| b.cmp(a));
        v.into_iter().map(|r| r.0).collect()
    }
}

fn mat_from(bytes: &[u8], w: usize, h: usize, channels: usize) -> Result<Mat> {
    let flat = Mat::new_rows_cols_with_data(h as i32, (w * channels) as i32, bytes)?;
    Ok(flat.reshape(channels as i32, h as i32)?.try_clone()?)
}

/// Scales 8-bit pixels (1 = gray, 3 = BGR) to [`THUMB_WIDTH`] wide and encodes them
/// (`ext` `.jpg` or `.png`).
pub fn thumbnail(pixels: &[u8], w: usize, h: usize, channels: usize, ext: &str) -> Result<Vec<u8>> {
    let src = mat_from(pixels, w, h, channels)?;
    let tw = THUMB_WIDTH.min(w).max(1);
    let th = ((h * tw) as f64 / w.max(1) as f64).round().max(1.0) as i32;
    let mut dst = Mat::default();
    let interp = if channels == 1 { imgproc::INTER_NEAREST } else { imgproc::INTER_AREA };
    imgproc::resize(&src, &mut dst, core::Size::new(tw as i32, th), 0.0, 0.0, interp)?;
    let mut buf = core::Vector::<u8>::new();
    let params = if ext == ".jpg" {
        core::Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, 85])
    } else {
        core::Vector::new()
    };
    imgcodecs::imencode(ext, &dst, &mut buf, &params)?;
    Ok(buf.to_vec())
}

/// What the report shows.
#[derive(Debug)]
pub struct ReportInput<'a> {
    /// `metrics.json` as written.
    pub metrics: &'a serde_json::Value,
    /// Every frame, in order.
    pub frames: &'a [FramePoint],
    /// The gate's thresholds.
    pub threshold_high: f64,
    /// See `threshold_high`.
    pub threshold_low: f64,
    /// Reliability bins over all pixels with ground truth.
    pub reliability: Vec<ReliabilityBin>,
    /// `(coverage, risk)` points.
    pub risk_coverage: Vec<(f64, f64)>,
    /// Area under the risk–coverage curve.
    pub aurc: Option<f64>,
    /// `(FPR, TPR)` points of entropy detecting wrong pixels.
    pub roc: Vec<(f64, f64)>,
    /// AUROC of entropy for wrong pixels.
    pub auroc: Option<f64>,
    /// The most uncertain frames, most uncertain first.
    pub gallery: Vec<GalleryItem>,
    /// One row per bag, shown when the run has several (a merged campaign).
    pub bags: Vec<BagRow>,
}

/// A bag of a run of several: which bags of a campaign need a look.
#[derive(Clone, Debug, PartialEq)]
pub struct BagRow {
    /// The bag as given.
    pub bag: String,
    /// Frames processed.
    pub frames: u64,
    /// Frames that failed (decode or inference).
    pub failed: u64,
    /// Frames the gate called confident.
    pub confident: u64,
    /// Frames with ground truth.
    pub with_gt: u64,
    /// Mean IoU of the frames with ground truth.
    pub mean_iou: Option<f64>,
    /// Bad frames (docs/interfaces.md §7).
    pub bad: u64,
    /// Bad frames the gate called confident.
    pub bad_confident: u64,
    /// Why the bag's replay stopped early, if it did.
    pub error: Option<String>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn data_uri(bytes: &[u8]) -> String {
    let mime = if bytes.starts_with(&[0x89, b'P', b'N', b'G']) { "image/png" } else { "image/jpeg" };
    format!("data:{mime};base64,{}", base64(bytes))
}

fn plot_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::Io { path: "report.html".into(), source: std::io::Error::other(format!("plot: {e:?}")) }
}

type Svg<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn svg(draw: impl FnOnce(&Svg) -> std::result::Result<(), Box<dyn std::error::Error + 'static>>) -> Result<String> {
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (PLOT_W, PLOT_H)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        draw(&root).map_err(|e| plot_err(e.to_string()))?;
        root.present().map_err(plot_err)?;
    }
    Ok(s)
}

fn range(v: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) =
        v.filter(|x| x.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        return (lo - 0.5, hi + 0.5);
    }
    let p = (hi - lo) * pad;
    (lo - p, hi + p)
}

const FLAG: RGBColor = RGBColor(214, 39, 40);
const LINE: RGBColor = RGBColor(31, 119, 180);
const UNSURE_BG: RGBColor = RGBColor(255, 214, 214);

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;
type Drawn = std::result::Result<(), Box<dyn std::error::Error + 'static>>;

/// What every plot has: caption, axes with their descriptions, and where the legend goes.
struct Axes<'s> {
    caption: String,
    x: (f64, f64),
    y: (f64, f64),
    x_desc: &'s str,
    y_desc: &'s str,
    /// Room for the y labels [px].
    y_area: u32,
    legend: SeriesLabelPosition,
}

/// Axes with room for the usual y labels.
fn axes<'s>(
    caption: impl Into<String>,
    x: (f64, f64),
    y: (f64, f64),
    desc: (&'s str, &'s str),
    legend: SeriesLabelPosition,
) -> Axes<'s> {
    Axes { caption: caption.into(), x, y, x_desc: desc.0, y_desc: desc.1, y_area: 60, legend }
}

/// A plot: the axes, then what `series` draws, then the legend.
fn plot(a: Axes, series: impl FnOnce(&mut Chart) -> Drawn) -> Result<String> {
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(&a.caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(a.y_area)
            .build_cartesian_2d(a.x.0..a.x.1, a.y.0..a.y.1)?;
        chart
            .configure_mesh()
            .axis_desc_style(("sans-serif", 15))
            .label_style(("sans-serif", 13))
            .x_desc(a.x_desc)
            .y_desc(a.y_desc)
            .draw()?;
        series(&mut chart)?;
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(a.legend)
            .draw()?;
        Ok(())
    })
}

/// A line with its legend entry.
fn line(chart: &mut Chart, pts: impl IntoIterator<Item = (f64, f64)>, style: ShapeStyle, label: String) -> Drawn {
    chart
        .draw_series(LineSeries::new(pts, style))?
        .label(label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    Ok(())
}

fn score_plot(inp: &ReportInput) -> Result<String> {
    let f = inp.frames;
    let (x0, x1) = range(f.iter().map(|p| p.t), 0.02);
    let (y0, y1) = range(f.iter().filter_map(|p| p.score).chain([inp.threshold_high, inp.threshold_low]), 0.08);
    let axes = axes(
        "Frame score over time (red band: gate not confident)",
        (x0, x1),
        (y0, y1),
        ("time since first frame [s]", "frame score"),
        SeriesLabelPosition::UpperRight,
    );
    plot(axes, |chart| {
        // Gate state: a band over every not-confident frame (to the next frame's time).
        for (i, p) in f.iter().enumerate() {
            if !p.confident {
                let next = f.get(i + 1).map(|n| n.t).unwrap_or(p.t + (x1 - x0) * 0.005);
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(p.t, y0), (next.max(p.t), y1)],
                    UNSURE_BG.filled(),
                )))?;
            }
        }
        let (high, low) = (inp.threshold_high, inp.threshold_low);
        line(
            chart,
            [(x0, high), (x1, high)],
            RGBColor(255, 127, 14).stroke_width(2),
            format!("threshold_high = {high:.3}"),
        )?;
        line(
            chart,
            [(x0, low), (x1, low)],
            RGBColor(44, 160, 44).stroke_width(2),
            format!("threshold_low = {low:.3}"),
        )?;
        line(chart, f.iter().filter_map(|p| Some((p.t, p.score?))), LINE.stroke_width(2), "score".into())?;
        chart
            .draw_series(
                f.iter()
                    .filter(|p| p.flagged)
                    .filter_map(|p| Some(TriangleMarker::new((p.t, p.score?), 7, FLAG.filled()))),
            )?
            .label("review requested (flagged)")
            .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, FLAG.filled()));
        Ok(())
    })
}

fn iou_plot(inp: &ReportInput) -> Result<String> {
    let pts: Vec<(f64, f64)> = inp.frames.iter().filter_map(|p| Some((p.t, p.iou?))).collect();
    let axes = axes(
        "IoU with the ground truth over time",
        range(inp.frames.iter().map(|p| p.t), 0.02),
        (0.0, 1.05),
        ("time since first frame [s]", "IoU"),
        SeriesLabelPosition::LowerRight,
    );
    let (x0, x1) = axes.x;
    plot(axes, |chart| {
        line(chart, [(x0, 0.5), (x1, 0.5)], BLACK.mix(0.4).into(), "bad frame below 0.5".into())?;
        line(chart, pts.iter().copied(), LINE.stroke_width(2), "IoU".into())?;
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, LINE.filled())))?;
        Ok(())
    })
}

fn signals_plot(inp: &ReportInput) -> Result<String> {
    let f = inp.frames;
    let y1 =
        f.iter().flat_map(|p| [p.trust, p.feature_distance]).flatten().filter(|v| v.is_finite()).fold(1.0, f64::max);
    let axes = axes(
        "Trust (P(bad)) and feature distance over time",
        range(f.iter().map(|p| p.t), 0.02),
        (0.0, y1 * 1.05),
        ("time since first frame [s]", "trust / feature distance"),
        SeriesLabelPosition::UpperRight,
    );
    let (x0, x1) = axes.x;
    plot(axes, |chart| {
        line(chart, [(x0, 1.0), (x1, 1.0)], BLACK.mix(0.3).into(), "distance 1: edge of the training look".into())?;
        let fd: Vec<(f64, f64)> = f.iter().filter_map(|p| Some((p.t, p.feature_distance?))).collect();
        if !fd.is_empty() {
            line(chart, fd, RGBColor(148, 103, 189).stroke_width(2), "feature_distance".into())?;
        }
        let tr: Vec<(f64, f64)> = f.iter().filter_map(|p| Some((p.t, p.trust?))).collect();
        if !tr.is_empty() {
            line(chart, tr, LINE.stroke_width(2), "trust".into())?;
        }
        Ok(())
    })
}

/// Frames with ground truth kept in order of increasing `key`: (coverage, risk) after each.
pub fn frame_risk_coverage(frames: &[FramePoint], key: impl Fn(&FramePoint) -> Option<f64>) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, bool)> = frames.iter().filter_map(|p| Some((key(p)?, p.bad?))).collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = v.len() as f64;
    let mut bad = 0usize;
    v.iter()
        .enumerate()
        .map(|(i, &(_, b))| {
            bad += b as usize;
            ((i + 1) as f64 / n, bad as f64 / (i + 1) as f64)
        })
        .collect()
}

fn frame_risk_plot(inp: &ReportInput) -> Result<String> {
    let f = inp.frames;
    let by_score = frame_risk_coverage(f, |p| p.score);
    let by_trust = frame_risk_coverage(f, |p| p.trust);
    let labelled: Vec<&FramePoint> = f.iter().filter(|p| p.bad.is_some()).collect();
    let kept: Vec<&&FramePoint> = labelled.iter().filter(|p| p.confident).collect();
    let gate = (!kept.is_empty()).then(|| {
        let bad = kept.iter().filter(|p| p.bad == Some(true)).count();
        (kept.len() as f64 / labelled.len() as f64, bad as f64 / kept.len() as f64)
    });
    let ymax = by_score.iter().chain(&by_trust).map(|p| p.1).fold(0.05f64, f64::max) * 1.1;
    let axes = Axes {
        y_area: 70,
        ..axes(
            "Frame decisions: risk-coverage (frames kept by increasing score)",
            (0.0, 1.0),
            (0.0, ymax),
            ("coverage (fraction of labelled frames kept)", "risk (fraction of kept frames bad)"),
            SeriesLabelPosition::UpperLeft,
        )
    };
    plot(axes, |chart| {
        line(chart, by_score.iter().copied(), LINE.stroke_width(2), "by the gate's score".into())?;
        if !by_trust.is_empty() {
            line(chart, by_trust.iter().copied(), RGBColor(148, 103, 189).stroke_width(2), "by trust".into())?;
        }
        if let Some(g) = gate {
            chart
                .draw_series(std::iter::once(Circle::new(g, 6, FLAG.filled())))?
                .label(format!("the gate (hysteresis): coverage {:.3}, risk {:.3}", g.0, g.1))
                .legend(|(x, y)| Circle::new((x + 10, y), 5, FLAG.filled()));
        }
        Ok(())
    })
}

fn reliability_plot(inp: &ReportInput) -> Result<String> {
    let axes = axes(
        "Reliability diagram (all pixels with ground truth)",
        (0.5, 1.0),
        (0.0, 1.0),
        ("confidence max(p, 1-p)", "accuracy"),
        SeriesLabelPosition::UpperLeft,
    );
    plot(axes, |chart| {
        chart
            .draw_series(
                inp.reliability
                    .iter()
                    .map(|b| Rectangle::new([(b.lo, 0.0), (b.hi, b.accuracy)], LINE.mix(0.6).filled())),
            )?
            .label("accuracy per ECE bin")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], LINE.mix(0.6).filled()));
        chart
            .draw_series(inp.reliability.iter().map(|b| Circle::new((b.confidence, b.accuracy), 4, FLAG.filled())))?
            .label("mean confidence vs accuracy")
            .legend(|(x, y)| Circle::new((x + 10, y), 4, FLAG.filled()));
        line(chart, [(0.5, 0.5), (1.0, 1.0)], BLACK.stroke_width(1), "perfect calibration".into())
    })
}

fn risk_plot(inp: &ReportInput) -> Result<String> {
    let ymax = inp.risk_coverage.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-3) * 1.1;
    let axes = Axes {
        y_area: 70,
        ..axes(
            format!("Risk-coverage (pixels kept by increasing entropy), AURC = {}", fixed(inp.aurc, 4)),
            (0.0, 1.0),
            (0.0, ymax),
            ("coverage (fraction of pixels kept)", "risk (error rate of kept pixels)"),
            SeriesLabelPosition::UpperLeft,
        )
    };
    plot(axes, |chart| {
        let label = format!("entropy, AURC = {}", fixed(inp.aurc, 4));
        line(chart, inp.risk_coverage.iter().copied(), LINE.stroke_width(2), label)
    })
}

fn roc_plot(inp: &ReportInput) -> Result<String> {
    let axes = axes(
        format!("Error detection by pixel entropy (ROC), AUROC = {}", fixed(inp.auroc, 4)),
        (0.0, 1.0),
        (0.0, 1.0),
        ("false positive rate (right pixels flagged)", "true positive rate (wrong pixels flagged)"),
        SeriesLabelPosition::LowerRight,
    );
    plot(axes, |chart| {
        line(
            chart,
            inp.roc.iter().copied(),
            LINE.stroke_width(2),
            format!("entropy, AUROC = {}", fixed(inp.auroc, 4)),
        )?;
        line(chart, [(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.4).into(), "chance".into())
    })
}

/// The per-bag table of a run of several bags; a bag with a bad frame called confident is marked.
fn bags_table(h: &mut String, bags: &[BagRow]) {
    let _ = writeln!(h, "<h2>Bags ({})</h2>", bags.len());
    h.push_str(
        "<table>\n<tr><th>bag</th><th>frames</th><th>failed</th><th>confident</th><th>with ground truth</th>\
         <th>mean IoU</th><th>bad</th><th>bad and confident</th><th>stopped early</th></tr>\n",
    );
    for b in bags {
        let pct = |n: u64| {
            if b.frames == 0 {
                "n/a".to_string()
            } else {
                format!("{:.0} %", 100.0 * n as f64 / b.frames as f64)
            }
        };
        let mark = if b.bad_confident > 0 { " class=\"note\"" } else { "" };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{mark}>{}</td><td>{}</td></tr>",
            esc(&b.bag),
            b.frames,
            b.failed,
            pct(b.confident),
            b.with_gt,
            b.mean_iou.map_or("n/a".into(), |v| format!("{v:.3}")),
            b.bad,
            b.bad_confident,
            b.error.as_deref().map_or("no".into(), esc),
        );
    }
    h.push_str("</table>\n<p>Bad = IoU &lt; 0.5, or ground truth with pipeline and a mask without (docs/interfaces.md §7); a bad frame called confident is marked.</p>\n");
}

fn json_cell(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => "n/a".into(),
        Some(serde_json::Value::Number(n)) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.to_string(),
            (_, Some(i), _) => i.to_string(),
            (_, _, Some(f)) => format!("{f:.4}"),
            _ => n.to_string(),
        },
        Some(serde_json::Value::String(s)) => esc(s),
        Some(other) => esc(&other.to_string()),
    }
}

/// The HTML text of the report.
pub fn render_html(inp: &ReportInput) -> Result<String> {
    let m = inp.metrics;
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>pipeline_seg replay report</title>\n<style>\n");
    h.push_str(
        "body{font-family:sans-serif;margin:20px;max-width:1000px;color:#222}\
         table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #bbb;padding:3px 10px;text-align:left}\
         th{background:#eee}.plot{margin:14px 0}.note{color:#a33;font-style:italic}\
         .gallery{display:grid;grid-template-columns:repeat(3,244px);gap:4px 8px;align-items:start}\
         .gallery img{width:240px;border:1px solid #888}.cap{grid-column:1/4;font-size:14px;margin-top:10px;font-weight:bold}\n",
    );
    h.push_str(
        "</style></head><body>\n<h1>pipeline_seg replay report</h1>\n<h2>Summary (metrics.json)</h2>\n<table>\n",
    );
    let rows: [(&str, String); 14] = [
        ("model", json_cell(m.get("model"))),
        (
            "bag",
            match m.get("bags").and_then(|b| b.as_array()) {
                Some(b) if b.len() > 1 => {
                    format!("{} bags: {} … {}", b.len(), json_cell(b.first()), json_cell(b.last()))
                }
                _ => json_cell(m.get("bag")),
            },
        ),
        ("topic / ground truth", format!("{} / {}", json_cell(m.get("topic")), json_cell(m.get("gt_topic")))),
        ("samples (T)", json_cell(m.get("samples"))),
        ("score method", json_cell(m.get("score_method"))),
        ("frames", json_cell(m.get("frames"))),
        ("frames with ground truth", json_cell(m.get("frames_with_gt"))),
        ("decode errors", json_cell(m.get("decode_errors"))),
        ("pooled IoU", json_cell(m.get("pooled_iou"))),
        ("AUROC (entropy / MI)", format!("{} / {}", json_cell(m.get("auroc_entropy")), json_cell(m.get("auroc_mi")))),
        ("ECE (all / pipeline pixels)", format!("{} / {}", json_cell(m.get("ece")), json_cell(m.get("ece_pipe")))),
        ("AURC", json_cell(m.get("aurc"))),
        (
            "gate: bad flagged / good flagged",
            format!(
                "{} of {} bad / {} of {} good",
                json_cell(m.get("bad_flagged")),
                json_cell(m.get("bad_frames")),
                json_cell(m.get("good_flagged")),
                json_cell(m.get("good_frames"))
            ),
        ),
        ("stopped early", json_cell(m.get("error")).replace("n/a", "no")),
    ];
    for (k, v) in rows {
        let _ = writeln!(h, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    h.push_str("</table>\n");

    if inp.bags.len() > 1 {
        bags_table(&mut h, &inp.bags);
    }

    let section = |h: &mut String, title: &str, plot: Option<Result<String>>, note: &str| -> Result<()> {
        let _ = writeln!(h, "<h2>{}</h2>", esc(title));
        match plot {
            Some(p) => {
                let _ = writeln!(h, "<div class=\"plot\">{}</div>", p?);
            }
            None => {
                let _ = writeln!(h, "<p class=\"note\">{}</p>", esc(note));
            }
        }
        Ok(())
    };
    let has_gt = inp.frames.iter().any(|p| p.iou.is_some());
    section(&mut h, "Score over time", (!inp.frames.is_empty()).then(|| score_plot(inp)), "No frames.")?;
    section(&mut h, "IoU over time", has_gt.then(|| iou_plot(inp)), "No ground truth: IoU not available.")?;
    let has_signals = inp.frames.iter().any(|p| p.trust.is_some() || p.feature_distance.is_some());
    section(
        &mut h,
        "Trust and feature distance",
        has_signals.then(|| signals_plot(inp)),
        "The model has no feature_distance output and no trust model.",
    )?;
    let has_bad = inp.frames.iter().any(|p| p.bad.is_some() && p.score.is_some());
    section(
        &mut h,
        "Frame risk-coverage",
        has_bad.then(|| frame_risk_plot(inp)),
        "No ground truth: no frame risk-coverage curve.",
    )?;
    section(
        &mut h,
        "Reliability diagram",
        (!inp.reliability.is_empty()).then(|| reliability_plot(inp)),
        "No ground truth: no reliability diagram.",
    )?;
    section(
        &mut h,
        "Risk-coverage curve",
        (!inp.risk_coverage.is_empty()).then(|| risk_plot(inp)),
        "No ground truth: no risk-coverage curve.",
    )?;
    section(
        &mut h,
        "Error-detection ROC",
        (!inp.roc.is_empty()).then(|| roc_plot(inp)),
        "No ground truth, or no wrong (or no right) pixels: no ROC.",
    )?;

    let _ = writeln!(h, "<h2>Most uncertain frames ({} by frame score)</h2>", inp.gallery.len());
    if inp.gallery.is_empty() {
        h.push_str("<p class=\"note\">No frame was segmented.</p>\n");
    } else {
        h.push_str("<div class=\"gallery\">\n<div><b>input</b></div><div><b>mask</b></div><div><b>entropy</b></div>\n");
        for (i, g) in inp.gallery.iter().enumerate() {
            let _ = writeln!(
                h,
                "<div class=\"cap\">#{} stamp {}.{:09} s, score {:.4}</div>",
                i + 1,
                g.stamp_ns.div_euclid(1_000_000_000),
                g.stamp_ns.rem_euclid(1_000_000_000),
                g.score
            );
            for (what, bytes) in [("input", &g.input), ("mask", &g.mask), ("entropy", &g.entropy)] {
                let _ = writeln!(h, "<img alt=\"{what}\" title=\"{what}\" src=\"{}\">", data_uri(bytes));
            }
        }
        h.push_str("</div>\n<p>Columns: input, mask (white = pipeline), entropy (inferno: black = sure).</p>\n");
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

/// Writes the report to `path`.
pub fn write_report(path: &Path, inp: &ReportInput) -> Result<()> {
    let html = render_html(inp)?;
    std::fs::write(path, html).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(score: f64, stamp_ns: i64) -> GalleryItem {
        GalleryItem { stamp_ns, score, input: vec![], mask: vec![], entropy: vec![] }
    }

    #[test]
    fn gallery_keeps_the_k_highest_scores() {
        let mut g = Gallery::new(3);
        for (i, s) in [0.1, 0.9, 0.5, 0.3, 0.95, 0.2, 0.9].into_iter().enumerate() {
            g.offer(item(s, i as i64));
        }
        assert_eq!(g.len(), 3);
        assert!(!g.accepts(0.4, 100));
        let got: Vec<(f64, i64)> = g.into_sorted().iter().map(|i| (i.score, i.stamp_ns)).collect();
        assert_eq!(got, vec![(0.95, 4), (0.9, 1), (0.9, 6)]);
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    fn pt(t: f64, score: f64) -> FramePoint {
        FramePoint {
            t,
            score: Some(score),
            confident: true,
            flagged: false,
            iou: None,
            bad: None,
            trust: None,
            feature_distance: None,
        }
    }

    #[test]
    fn frame_risk_coverage_keeps_frames_by_increasing_score() {
        let f = [
            FramePoint { bad: Some(true), ..pt(0.0, 0.9) },
            FramePoint { bad: Some(false), ..pt(1.0, 0.1) },
            FramePoint { bad: None, ..pt(2.0, 0.0) },
        ];
        assert_eq!(frame_risk_coverage(&f, |p| p.score), vec![(0.5, 0.0), (1.0, 0.5)]);
    }

    #[test]
    fn report_has_seven_plots_and_no_links() {
        let metrics = serde_json::json!({"model": "m.onnx", "frames": 3, "pooled_iou": 0.5});
        let frames = [
            FramePoint {
                iou: Some(0.9),
                bad: Some(false),
                trust: Some(0.1),
                feature_distance: Some(0.8),
                ..pt(0.0, 0.1)
            },
            FramePoint { flagged: true, iou: Some(0.3), bad: Some(true), trust: Some(0.9), ..pt(0.5, 0.6) },
            FramePoint { score: None, confident: false, ..pt(1.0, 0.0) },
        ];
        let rel = vec![ReliabilityBin { lo: 0.9, hi: 0.95, count: 4, confidence: 0.93, accuracy: 0.8 }];
        let inp = ReportInput {
            metrics: &metrics,
            frames: &frames,
            threshold_high: 0.4,
            threshold_low: 0.2,
            reliability: rel,
            risk_coverage: vec![(0.5, 0.0), (1.0, 0.25)],
            aurc: Some(0.1),
            roc: vec![(0.0, 0.0), (0.3, 0.9), (1.0, 1.0)],
            auroc: Some(0.8),
            gallery: vec![],
            bags: vec![],
        };
        let h = render_html(&inp).unwrap();
        assert_eq!(h.matches("<svg").count(), 7);
        assert!(!h.contains("<h2>Bags"), "no bag table for one bag");
        let row = |bag: &str, bad_confident| BagRow {
            bag: bag.into(),
            frames: 4,
            failed: 0,
            confident: 3,
            with_gt: 4,
            mean_iou: Some(0.8),
            bad: 1,
            bad_confident,
            error: None,
        };
        let h = render_html(&ReportInput { bags: vec![row("a<b", 0), row("c", 1)], ..inp }).unwrap();
        assert!(h.contains("<h2>Bags (2)</h2>") && h.contains("a&lt;b") && h.contains("<td>75 %</td>"));
        assert_eq!(h.matches("<td class=\"note\">1</td>").count(), 1, "the bag with a bad confident frame is marked");
        for label in ["frame score", "IoU", "accuracy", "coverage", "true positive rate"] {
            assert!(h.contains(label), "{label}");
        }
        assert!(!h.contains("src=\"http") && !h.contains("<script"));
    }
}
