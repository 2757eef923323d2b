//! End-to-end simulation on the embedded digits set with a checked-in 1024-bit key: the secure
//! run follows the plaintext run within quantization error and survives dropouts.
#![allow(clippy::unwrap_used)]

use spddl_crypto::testing::test_key;
use spddl_experiments::driver::{federation, run_mode};
use spddl_experiments::metrics::{Mode, RoundMetrics};
use spddl_experiments::scenario::Scenario;

fn quiet(_: Mode, _: &RoundMetrics) {}

#[test]
fn secure_digits_tracks_plaintext_and_learns() {
    let s = Scenario {
        rounds: 4,
        key_bits: 1024,
        ..Scenario::default()
    };
    let fed = federation(&s).unwrap();
    let keys = test_key(1024, s.threshold, s.holders, 5);
    let secure = run_mode(&s, &fed, Mode::Secure, Some(&keys), &quiet).unwrap();
    let plain = run_mode(&s, &fed, Mode::Plaintext, None, &quiet).unwrap();
    for (a, b) in secure.iter().zip(&plain) {
        assert!(
            (a.accuracy - b.accuracy).abs() <= 0.01,
            "round {}: secure {} vs plaintext {}",
            a.round,
            a.accuracy,
            b.accuracy
        );
        assert_eq!(a.contributors, 10);
        assert!(a.bytes_uploaded > 0 && b.bytes_uploaded == 0);
    }
    assert!(secure[3].accuracy > 0.85, "{}", secure[3].accuracy);
    assert!(secure[3].loss < secure[0].loss);
}

#[test]
fn dropouts_silent_and_lying_holders_do_not_stop_a_round() {
    let s = Scenario {
        rounds: 2,
        key_bits: 1024,
        client_dropout: 0.3,
        silent_holders: 1,
        wrong_share_holders: 1,
        ..Scenario::default()
    };
    let fed = federation(&s).unwrap();
    let keys = test_key(1024, s.threshold, s.holders, 5);
    let rows = run_mode(&s, &fed, Mode::Secure, Some(&keys), &quiet).unwrap();
    for r in &rows {
        assert_eq!(r.blamed_holders, [1], "round {}", r.round);
        assert_eq!(r.silent_holders, [2], "round {}", r.round);
        assert_eq!(r.contributors + r.dropped.len(), 10);
    }
    assert!(rows.iter().any(|r| !r.dropped.is_empty()));
}
