//! The confidence gate's hysteresis and reasons (docs/interfaces.md §3).

use pipeline_seg::engine::gate::{Decision, Gate, GateParams, Observation, Reason};

const P: GateParams = GateParams { threshold_high: 0.6, threshold_low: 0.3, recover_frames: 3 };
const GOOD: Observation = Observation::Score(0.1);
const MIDDLE: Observation = Observation::Score(0.45);
const BAD: Observation = Observation::Score(0.9);

fn reasons(gate: &mut Gate, obs: &[Observation]) -> Vec<Reason> {
    obs.iter()
        .map(|&o| gate.update(o))
        .inspect(|d| assert_eq!(d.confident, d.reason == Reason::Ok))
        .map(|d| d.reason)
        .collect()
}

/// A gate that has just become confident.
fn confident_gate() -> Gate {
    let mut g = Gate::new(P);
    assert_eq!(reasons(&mut g, &[GOOD; 3]).last(), Some(&Reason::Ok));
    g
}

use Reason::{DecodeError, ImageQuality, InferenceError, Ok, Recovering, Stale, Uncertain};

#[test]
fn starts_unconfident_and_recovers_after_recover_frames_good_scores() {
    let mut g = Gate::new(P);
    assert_eq!(reasons(&mut g, &[GOOD; 5]), [Recovering, Recovering, Ok, Ok, Ok]);
    let mut one = Gate::new(GateParams { recover_frames: 1, ..P });
    assert_eq!(reasons(&mut one, &[GOOD]), [Ok]);
}

#[test]
fn a_middle_score_while_recovering_restarts_the_count() {
    let mut g = Gate::new(P);
    assert_eq!(
        reasons(&mut g, &[GOOD, GOOD, MIDDLE, GOOD, GOOD, GOOD]),
        [Recovering, Recovering, Recovering, Recovering, Recovering, Ok]
    );
    // A score equal to threshold_low is not below it.
    let mut g = Gate::new(P);
    assert_eq!(reasons(&mut g, &[GOOD, GOOD, Observation::Score(0.3), GOOD, GOOD]), [Recovering; 5]);
}

#[test]
fn above_threshold_high_is_uncertain_and_restarts_recovery() {
    let mut g = confident_gate();
    assert_eq!(
        reasons(&mut g, &[BAD, GOOD, GOOD, BAD, GOOD, GOOD, GOOD]),
        [Uncertain, Recovering, Recovering, Uncertain, Recovering, Recovering, Ok]
    );
    // threshold_high itself is still acceptable.
    let mut g = confident_gate();
    assert_eq!(reasons(&mut g, &[Observation::Score(0.6)]), [Ok]);
}

#[test]
fn once_confident_a_middle_score_keeps_it_confident() {
    let mut g = confident_gate();
    assert_eq!(reasons(&mut g, &[MIDDLE, MIDDLE, MIDDLE, GOOD, MIDDLE]), [Ok; 5]);
}

#[test]
fn decode_error_and_image_quality_are_reported_and_restart_recovery() {
    for (obs, reason) in [(Observation::DecodeError, DecodeError), (Observation::ImageQuality, ImageQuality)] {
        let mut g = confident_gate();
        assert_eq!(reasons(&mut g, &[obs, GOOD, GOOD, GOOD]), [reason, Recovering, Recovering, Ok]);
        let mut g = Gate::new(P);
        assert_eq!(
            reasons(&mut g, &[GOOD, GOOD, obs, GOOD, GOOD, GOOD]),
            [Recovering, Recovering, reason, Recovering, Recovering, Ok]
        );
    }
    assert_eq!((DecodeError.level(), ImageQuality.level(), Ok.level(), Stale.level()), (2, 1, 0, 2));
}

#[test]
fn stale_is_unconfident_and_restarts_recovery() {
    let mut g = confident_gate();
    assert_eq!(g.stale(), Decision { confident: false, reason: Stale });
    assert_eq!(reasons(&mut g, &[GOOD, GOOD, GOOD]), [Recovering, Recovering, Ok]);
    let mut g = Gate::new(P);
    reasons(&mut g, &[GOOD, GOOD]);
    g.stale();
    assert_eq!(reasons(&mut g, &[GOOD]), [Recovering], "the good run before stale must not count");
}

#[test]
fn nan_score_is_uncertain() {
    let mut g = confident_gate();
    assert_eq!(reasons(&mut g, &[Observation::Score(f32::NAN), GOOD]), [Uncertain, Recovering]);
    assert_eq!(Gate::single(&P, Observation::Score(f32::NAN)).reason, Uncertain);
}

#[test]
fn single_frames_need_only_sanity_and_score_at_most_threshold_high() {
    let single = |o| Gate::single(&P, o);
    assert_eq!(single(GOOD), Decision { confident: true, reason: Ok });
    assert_eq!(single(MIDDLE), Decision { confident: true, reason: Ok });
    assert_eq!(single(Observation::Score(0.6)), Decision { confident: true, reason: Ok });
    assert_eq!(single(BAD), Decision { confident: false, reason: Uncertain });
    assert_eq!(single(Observation::DecodeError), Decision { confident: false, reason: DecodeError });
    assert_eq!(single(Observation::ImageQuality), Decision { confident: false, reason: ImageQuality });
    let names: Vec<_> =
        [Stale, DecodeError, ImageQuality, Uncertain, Recovering, Ok].iter().map(|r| r.name()).collect();
    assert_eq!(names, ["stale", "decode_error", "image_quality", "uncertain", "recovering", "ok"]);
}

#[test]
fn a_failed_inference_has_its_own_reason_is_an_error_and_restarts_recovery() {
    let mut g = confident_gate();
    let d = g.update(Observation::InferenceError);
    assert_eq!(d, Decision { confident: false, reason: InferenceError });
    assert_eq!((InferenceError.name(), InferenceError.level()), ("inference_error", 2));
    assert_eq!(reasons(&mut g, &[GOOD, GOOD, GOOD]), [Recovering, Recovering, Ok]);
    assert_eq!(Gate::single(&P, Observation::InferenceError).reason, InferenceError);
}
