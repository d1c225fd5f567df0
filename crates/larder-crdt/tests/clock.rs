//! Hybrid logical clock rules, drift guard, and causality under skew.

use larder_codec::Timestamp;
use larder_crdt::{CrdtError, Hlc, ManualClock, SkewedClock};

#[test]
fn now_is_strictly_increasing_even_when_the_wall_clock_goes_back() {
    let wall = ManualClock::new(1_000);
    let mut hlc = Hlc::new(wall.clone());
    let a = hlc.now().unwrap();
    let b = hlc.now().unwrap();
    wall.set(500);
    let c = hlc.now().unwrap();
    wall.set(2_000);
    let d = hlc.now().unwrap();
    assert_eq!(a, Timestamp::new(1_000, 0));
    assert_eq!(b, Timestamp::new(1_000, 1));
    assert_eq!(c, Timestamp::new(1_000, 2));
    assert_eq!(d, Timestamp::new(2_000, 0));
}

#[test]
fn update_moves_past_the_received_timestamp() {
    let mut hlc = Hlc::new(ManualClock::new(1_000));
    hlc.now().unwrap();
    let t = hlc.update(Timestamp::new(1_500, 7), "peer").unwrap();
    assert_eq!(t, Timestamp::new(1_500, 8));
    let t = hlc.update(Timestamp::new(1_500, 3), "peer").unwrap();
    assert_eq!(t, Timestamp::new(1_500, 9));
    let t = hlc.update(Timestamp::new(900, 50), "peer").unwrap();
    assert_eq!(t, Timestamp::new(1_500, 10));
}

#[test]
fn a_timestamp_too_far_ahead_is_refused_not_adopted() {
    let mut hlc = Hlc::with_max_drift(ManualClock::new(10_000), 1_000);
    let before = hlc.now().unwrap();
    let err = hlc.update(Timestamp::new(20_000, 0), "wild").unwrap_err();
    assert!(
        matches!(err, CrdtError::ClockDrift { ahead_ms: 10_000, max_drift_ms: 1_000, ref from, .. } if from == "wild")
    );
    assert_eq!(hlc.last(), before, "the clock did not move");
    assert!(hlc.update(Timestamp::new(10_900, 0), "ok").is_ok());
}

#[test]
fn counter_overflow_rolls_into_the_next_millisecond() {
    let mut hlc = Hlc::new(ManualClock::new(5));
    hlc.update(Timestamp::new(5, u32::MAX - 1), "p").unwrap();
    assert_eq!(hlc.now().unwrap(), Timestamp::new(6, 0));
}

#[test]
fn skewed_replicas_keep_causality() {
    // One replica an hour ahead, one an hour behind, drift bound three hours.
    let wall = ManualClock::new(10 * 3_600_000);
    let hour = 3_600_000;
    let mut ahead = Hlc::with_max_drift(SkewedClock::new(wall.clone(), hour), 3 * hour as u64);
    let mut behind = Hlc::with_max_drift(SkewedClock::new(wall.clone(), -hour), 3 * hour as u64);
    for round in 0..100 {
        wall.advance(7);
        let sent = ahead.now().unwrap();
        // `behind` observes it, then writes: its event must sort after.
        behind.observe(sent, "ahead").unwrap();
        let reply = behind.now().unwrap();
        assert!(reply > sent, "round {round}: {reply} !> {sent}");
        ahead.observe(reply, "behind").unwrap();
        assert!(ahead.now().unwrap() > reply);
    }
}
