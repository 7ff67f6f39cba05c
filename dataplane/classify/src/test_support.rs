//! What the parsers' unit tests share: assertions on a parser's answer.
//!
//! Owns: turning "this answer is a `Probe::Match` (with this indicator)" into one call that
//! fails with the answer it got. Must not: build inputs (`portolan-testkit` and
//! [`ProbeContext::new`](crate::ProbeContext::new) do) or be compiled outside `cfg(test)`.

use crate::probe::{Meta, Probe};

/// The indicator and metadata of a [`Probe::Match`]; fails on any other answer (a
/// [`Probe::MatchFrom`] included).
#[track_caller]
pub(crate) fn expect_match(answer: Probe) -> (&'static str, Meta) {
    match answer {
        Probe::Match { indicator, meta } => (indicator, meta),
        other => panic!("expected Probe::Match, got {other:?}"),
    }
}

/// The metadata of a [`Probe::Match`] whose indicator is `indicator`; fails on any other answer.
#[track_caller]
pub(crate) fn assert_match(answer: Probe, indicator: &str) -> Meta {
    let (got, meta) = expect_match(answer);
    assert_eq!(got, indicator, "indicator of the match ({meta:?})");
    meta
}
