//! `select`: the K most uncertain frames for labelling, no two of one bag within a minimum gap.
//!
//! Scores come from `replay` (pass 1, only `(stamp, score)` per frame is kept); the chosen frames
//! are then read again and written as PNGs (pass 2), so memory does not grow with the bag.

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
