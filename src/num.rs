//! Numbers as every module wants them: one percentile, one way to print an `f32`, and one
//! fixed 64-bit hash step.

/// The `q` quantile (0..1) with linear interpolation between order statistics (numpy's
/// default); `None` for no values. NaNs sort last.
pub fn percentile<T: Copy + Into<f64>>(values: &[T], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = values.iter().map(|&x| x.into()).collect();
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    // Selection instead of a full sort: the score's p95 runs on every frame's entropy map.
    let (_, &mut a, rest) = v.select_nth_unstable_by(lo, f64::total_cmp);
    let b = if pos > lo as f64 { rest.iter().copied().min_by(f64::total_cmp).unwrap_or(a) } else { a };
    Some(a + (b - a) * (pos - lo as f64))
}

/// An `f32` as the shortest decimal that reads back to it, widened to `f64` (0.9, not
/// 0.8999999761581421): what JSON files and ROS double parameters should show.
pub fn short(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(v as f64)
}

/// A value with `decimals` digits after the point, or `n/a` when there is none (tables, plots).
pub fn fixed(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.decimals$}"))
}

/// An `f32` as a YAML double: the shortest decimal, always with a decimal point.
pub fn yaml_double(v: f32) -> String {
    let s = format!("{v}");
    if s.contains('.') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

/// One step of the fixed 64-bit hash the project keys things with (a frame's dropout masks, a
/// model file's digest): `w` folded into `h`. Fixed here, not std's hasher, so keys are the
/// same on every platform and Rust version.
pub fn mix64(h: u64, w: u64) -> u64 {
    let h = (h ^ w).wrapping_mul(0x9FB2_1C65_1E98_DF25);
    h ^ (h >> 29)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interpolates_like_numpy() {
        let v = [4.0f64, 1.0, 3.0, 2.0];
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 1.0), Some(4.0));
        assert_eq!(percentile(&v, 0.5), Some(2.5));
        assert!((percentile(&v, 0.95).unwrap() - 3.85).abs() < 1e-12);
        assert_eq!(percentile::<f64>(&[], 0.5), None);
        assert_eq!(percentile(&[7.0f32], 0.3), Some(7.0));
    }

    #[test]
    fn short_and_yaml_double_print_the_decimal_a_person_typed() {
        assert_eq!(short(0.9), 0.9);
        assert_eq!(short(0.5878), 0.5878);
        assert_eq!(yaml_double(1.0), "1.0");
        assert_eq!(yaml_double(0.25), "0.25");
        assert_eq!(fixed(Some(0.12345), 3), "0.123");
        assert_eq!(fixed(None, 3), "n/a");
    }
}
