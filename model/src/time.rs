//! Timestamps: microseconds since the Unix epoch, parsed from RFC 3339 or Suricata's EVE form and
//! formatted back. The one time module of the workspace: flow records, alerts, the API and the
//! EVE input all write and read time through it.
//!
//! Owns: the one time representation (`i64` µs, UTC) and its text forms.
//! Must not: read the wall clock anywhere but [`now_us`], or accept a timestamp without an offset.

use std::borrow::Cow;

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// A timestamp that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 timestamp: {text:?} ({reason})")]
pub struct TimestampError {
    /// The text as given.
    pub text: String,
    /// Why it was rejected.
    pub reason: String,
}

/// Parses RFC 3339 (`2024-05-01T10:00:00Z`, `...+02:00`) or Suricata's EVE form, whose offset has no
/// colon (`2024-05-01T10:00:00.123456+0000`), into µs since the epoch.
pub fn parse_timestamp(text: &str) -> Result<i64, TimestampError> {
    let trimmed = text.trim();
    let normalized = add_offset_colon(trimmed);
    let parsed = OffsetDateTime::parse(&normalized, &Rfc3339).map_err(|e| TimestampError {
        text: text.to_string(),
        reason: e.to_string(),
    })?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1000).map_err(|_| TimestampError {
        text: text.to_string(),
        reason: "out of range".to_string(),
    })
}

/// Suricata writes `+0000`; RFC 3339 wants `+00:00`.
fn add_offset_colon(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let n = bytes.len();
    let colonless = n >= 6
        && matches!(bytes.get(n - 5), Some(b'+' | b'-'))
        && bytes
            .get(n - 4..)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        && bytes.get(n - 6).is_some_and(u8::is_ascii_digit);
    if !colonless {
        return Cow::Borrowed(text);
    }
    match (text.get(..n - 2), text.get(n - 2..)) {
        (Some(head), Some(minutes)) => Cow::Owned(format!("{head}:{minutes}")),
        _ => Cow::Borrowed(text),
    }
}

fn to_datetime(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Formats µs since the epoch as RFC 3339 in UTC with microseconds (`2024-05-01T10:00:00.000000Z`).
pub fn format_rfc3339(us: i64) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    to_datetime(us)
        .format(&fmt)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000Z".to_string())
}

/// Formats µs since the epoch the way Suricata's EVE writes `timestamp` and `flow.start`
/// (`2024-05-01T10:00:00.000000+0000`).
pub fn format_eve(us: i64) -> String {
    let fmt = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+0000"
    );
    to_datetime(us)
        .format(&fmt)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000+0000".to_string())
}

/// [`format_eve`] of an unsigned µs count (the dataplane's capture times).
pub fn format_eve_unsigned(us: u64) -> String {
    format_eve(i64::try_from(us).unwrap_or(i64::MAX))
}

/// The current wall-clock time in µs since the epoch.
pub fn now_us() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_and_eve_forms() {
        let a = parse_timestamp("2024-05-01T10:00:00Z").unwrap();
        let b = parse_timestamp("2024-05-01T10:00:00.000000+0000").unwrap();
        let c = parse_timestamp("2024-05-01T12:00:00+02:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a, 1_714_557_600_000_000);
        assert!(parse_timestamp("2024-05-01 10:00").is_err());
        assert!(parse_timestamp("2024-05-01T10:00:00").is_err());
        for short in ["", "Z", "+0", "é+0000", "x"] {
            assert!(parse_timestamp(short).is_err());
        }
    }

    #[test]
    fn formats_round_trip() {
        let us = 1_714_557_600_123_456;
        assert_eq!(format_eve(us), "2024-05-01T10:00:00.123456+0000");
        assert_eq!(format_rfc3339(us), "2024-05-01T10:00:00.123456Z");
        assert_eq!(parse_timestamp(&format_eve(us)).unwrap(), us);
        assert_eq!(parse_timestamp(&format_rfc3339(us)).unwrap(), us);
    }

    #[test]
    fn eve_form_matches_suricata() {
        assert_eq!(format_eve_unsigned(0), "1970-01-01T00:00:00.000000+0000");
        assert_eq!(
            format_eve_unsigned(1_705_831_323_123_456),
            "2024-01-21T10:02:03.123456+0000"
        );
        // Leap days and the turn of a century that is a leap year.
        assert_eq!(
            format_eve_unsigned(951_782_400_000_001),
            "2000-02-29T00:00:00.000001+0000"
        );
        assert_eq!(
            format_eve_unsigned(1_709_251_199_999_999),
            "2024-02-29T23:59:59.999999+0000"
        );
        assert_eq!(
            format_eve_unsigned(4_107_542_400_000_000),
            "2100-03-01T00:00:00.000000+0000"
        );
    }
}
