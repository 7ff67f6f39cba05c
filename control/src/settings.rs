//! Range checks of the control plane's tunables ([`ControlConfig`]): every number finite and in
//! its range, severities ordered, windows positive. The first bad value is named by its dotted
//! field (`scoring.alert_threshold`), with the value and the range.
//!
//! Owns [`InvalidSetting`] and [`validate`]. This module only checks values; it must not change
//! them or read files.

use crate::engine::ControlConfig;

/// A tunable whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {field}: {message}")]
pub struct InvalidSetting {
    /// Dotted name below the control configuration, e.g. `scoring.severity_high`.
    pub field: String,
    /// The value and what it must be.
    pub message: String,
}

/// Largest score-like value accepted (points and thresholds).
const MAX_POINTS: f64 = 1_000.0;
/// Longest window accepted, in seconds (ten years).
const MAX_WINDOW_S: i64 = 10 * 366 * 24 * 3600;

fn invalid(field: &str, message: String) -> InvalidSetting {
    InvalidSetting {
        field: field.to_string(),
        message,
    }
}

/// `value` must be finite and within `lo..=hi`.
fn real(field: &str, value: f64, lo: f64, hi: f64) -> Result<(), InvalidSetting> {
    if value.is_finite() && value >= lo && value <= hi {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be a finite number from {lo} to {hi}, got {value}"),
        ))
    }
}

/// `value` seconds must be positive and at most ten years.
fn window(field: &str, value: i64) -> Result<(), InvalidSetting> {
    if value > 0 && value <= MAX_WINDOW_S {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be a positive number of seconds up to {MAX_WINDOW_S}, got {value}"),
        ))
    }
}

/// `value` must be within `lo..=hi`.
fn count(field: &str, value: u64, lo: u64, hi: u64) -> Result<(), InvalidSetting> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be from {lo} to {hi}, got {value}"),
        ))
    }
}

/// Checks every tunable of `cfg`; the error names the first bad field.
pub fn validate(cfg: &ControlConfig) -> Result<(), InvalidSetting> {
    let s = &cfg.scoring;
    window("scoring.window_s", s.window_s)?;
    for (field, value) in [
        ("scoring.alert_threshold", s.alert_threshold),
        ("scoring.severity_medium", s.severity_medium),
        ("scoring.severity_high", s.severity_high),
        ("scoring.severity_critical", s.severity_critical),
    ] {
        real(field, value, 0.0, MAX_POINTS)?;
    }
    if s.alert_threshold <= 0.0 {
        return Err(invalid(
            "scoring.alert_threshold",
            format!(
                "must be above 0 (every violation would alert), got {}",
                s.alert_threshold
            ),
        ));
    }
    for (field, below, name_below) in [
        (
            "scoring.severity_medium",
            s.alert_threshold,
            "scoring.alert_threshold",
        ),
        (
            "scoring.severity_high",
            s.severity_medium,
            "scoring.severity_medium",
        ),
        (
            "scoring.severity_critical",
            s.severity_high,
            "scoring.severity_high",
        ),
    ] {
        let value = match field {
            "scoring.severity_medium" => s.severity_medium,
            "scoring.severity_high" => s.severity_high,
            _ => s.severity_critical,
        };
        if value < below {
            return Err(invalid(
                field,
                format!("must not be below {name_below} ({below}), got {value}"),
            ));
        }
    }
    for (field, value) in [
        ("scoring.device_baseline_points", s.device_baseline_points),
        ("scoring.role_baseline_points", s.role_baseline_points),
        (
            "scoring.unmanaged_identity_points",
            s.unmanaged_identity_points,
        ),
        ("scoring.repetition_max_points", s.repetition_max_points),
        (
            "scoring.regular_recurrence_points",
            s.regular_recurrence_points,
        ),
        (
            "scoring.persistent_connection_points",
            s.persistent_connection_points,
        ),
        ("scoring.locked_points", s.locked_points),
        ("scoring.background_points", s.background_points),
        ("scoring.idle_points", s.idle_points),
        ("scoring.supervised_points", s.supervised_points),
        ("scoring.managed_points", s.managed_points),
    ] {
        real(field, value, 0.0, MAX_POINTS)?;
    }
    real("scoring.regularity_cv_max", s.regularity_cv_max, 0.0, 100.0)?;
    real("scoring.one_off_factor", s.one_off_factor, 0.0, 1.0)?;
    real("scoring.exception_factor", s.exception_factor, 0.0, 1.0)?;
    count(
        "scoring.repetition_saturation_sessions",
        s.repetition_saturation_sessions,
        2,
        1_000_000,
    )?;
    count(
        "scoring.regularity_min_sessions",
        s.regularity_min_sessions,
        3,
        1_000_000,
    )?;
    window("scoring.persistent_connection_s", s.persistent_connection_s)?;
    window("scoring.interaction_window_s", s.interaction_window_s)?;

    let a = &cfg.attribution;
    window("attribution.dns_max_age_s", a.dns_max_age_s)?;
    count(
        "attribution.dns_cache_capacity",
        u64::try_from(a.dns_cache_capacity).unwrap_or(u64::MAX),
        1,
        100_000_000,
    )?;
    for (field, value) in [
        ("attribution.tls_sni_confidence", a.tls_sni_confidence),
        ("attribution.quic_sni_confidence", a.quic_sni_confidence),
        ("attribution.http_host_confidence", a.http_host_confidence),
        ("attribution.dns_answer_confidence", a.dns_answer_confidence),
        (
            "attribution.foreground_app_confidence",
            a.foreground_app_confidence,
        ),
        (
            "attribution.unresolved_bundle_factor",
            a.unresolved_bundle_factor,
        ),
        ("attribution.lease_confidence", a.lease_confidence),
        ("attribution.radius_confidence", a.radius_confidence),
        (
            "attribution.inventory_ip_confidence",
            a.inventory_ip_confidence,
        ),
        (
            "attribution.inventory_ip_nearest_confidence",
            a.inventory_ip_nearest_confidence,
        ),
        (
            "attribution.app_protocol_confidence",
            a.app_protocol_confidence,
        ),
        ("attribution.user_agent_confidence", a.user_agent_confidence),
        (
            "attribution.user_agent_executable_confidence",
            a.user_agent_executable_confidence,
        ),
        ("attribution.app_threshold", a.app_threshold),
    ] {
        real(field, value, 0.0, 1.0)?;
    }

    let l = &cfg.learning;
    window("learning.bucket_s", l.bucket_s)?;
    count("learning.min_sessions", l.min_sessions, 1, 1_000_000)?;

    let r = &cfg.retention;
    for (field, value) in r.windows() {
        window(field, value)?;
    }
    // A window may not undercut what it keeps alive.
    for (field, value, floor, floor_name, why) in [
        (
            "retention.findings_s",
            r.findings_s,
            s.window_s,
            "scoring.window_s",
            ": a finding still scoring would be forgotten",
        ),
        (
            "retention.learning_counts_s",
            r.learning_counts_s,
            l.bucket_s,
            "learning.bucket_s",
            "",
        ),
    ] {
        if value < floor {
            return Err(invalid(
                field,
                format!("must not be below {floor_name} ({floor}){why}, got {value}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(validate(&ControlConfig::default()), Ok(()));
    }

    #[test]
    fn the_issues_bad_values_are_refused_naming_the_field() {
        type Edit = fn(&mut ControlConfig);
        let cases: [(Edit, &str); 15] = [
            (
                |c| c.scoring.alert_threshold = f64::NAN,
                "scoring.alert_threshold",
            ),
            (
                |c| c.scoring.alert_threshold = f64::INFINITY,
                "scoring.alert_threshold",
            ),
            (
                |c| c.scoring.alert_threshold = -1.0,
                "scoring.alert_threshold",
            ),
            (
                |c| c.scoring.alert_threshold = 0.0,
                "scoring.alert_threshold",
            ),
            (|c| c.scoring.window_s = 0, "scoring.window_s"),
            (|c| c.scoring.window_s = -5, "scoring.window_s"),
            (|c| c.scoring.severity_high = 30.0, "scoring.severity_high"),
            (
                |c| c.scoring.severity_critical = 50.0,
                "scoring.severity_critical",
            ),
            (
                |c| c.scoring.locked_points = f64::NEG_INFINITY,
                "scoring.locked_points",
            ),
            (|c| c.scoring.one_off_factor = 1.5, "scoring.one_off_factor"),
            (
                |c| c.scoring.interaction_window_s = 0,
                "scoring.interaction_window_s",
            ),
            (
                |c| c.attribution.dns_max_age_s = -1,
                "attribution.dns_max_age_s",
            ),
            (
                |c| c.attribution.tls_sni_confidence = f64::NAN,
                "attribution.tls_sni_confidence",
            ),
            (
                |c| c.attribution.dns_cache_capacity = 0,
                "attribution.dns_cache_capacity",
            ),
            (|c| c.learning.bucket_s = 0, "learning.bucket_s"),
        ];
        for (edit, field) in cases {
            let mut cfg = ControlConfig::default();
            edit(&mut cfg);
            let err = validate(&cfg).expect_err(field);
            assert_eq!(err.field, field, "{err}");
            assert!(err.to_string().contains(field), "{err}");
        }
    }
}
