//! Scoring: how much a finding matters, why, and how severe it is.
//!
//! Owns: [`ScoringConfig`] (every tunable, with its default and meaning), and
//! [`score`], a pure function of a finding and its context that returns a 0..=100 score, a severity
//! and the reasons behind each point. Points add up; the one-off and exception factors multiply.
//! Must not: read the store or the clock, or decide whether to emit an alert (the engine compares
//! the score with [`ScoringConfig::alert_threshold`]).

use serde::{Deserialize, Serialize};

use crate::attribution::AppAttribution;
use crate::device_state::DeviceStateSnapshot;
use crate::findings::Finding;
pub use crate::findings::Severity;
use crate::inventory::Device;
use crate::roles::{ExceptionRule, ViolationKind};
use crate::timestamp::format_rfc3339;

/// Scoring tunables. Defaults in parentheses; points are added, factors multiply the sum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoringConfig {
    /// A session starting more than this long after the finding's last one starts the counts
    /// over (the time window) (default: 604 800 s = 7 days).
    pub window_s: i64,
    /// Alerts are emitted at or above this score (default: 20).
    pub alert_threshold: f64,
    /// Medium severity from this score (default: 45).
    pub severity_medium: f64,
    /// High severity from this score (default: 70).
    pub severity_high: f64,
    /// Critical severity from this score (default: 90).
    pub severity_critical: f64,
    /// Protocol on a port outside the device default baseline (port registry) (default: 30).
    pub device_baseline_points: f64,
    /// Pairing outside the attributed role's baseline at full attribution confidence; scaled
    /// down toward `device_baseline_points` as the confidence falls (default: 40).
    pub role_baseline_points: f64,
    /// Device not in the inventory or not managed, or app not managed on the device (default: 10).
    pub unmanaged_identity_points: f64,
    /// Repetition, reached at `repetition_saturation_sessions` (logarithmic) (default: 20).
    pub repetition_max_points: f64,
    /// Sessions at which repetition points are full (default: 16).
    pub repetition_saturation_sessions: u64,
    /// Stable recurrence interval (default: 15).
    pub regular_recurrence_points: f64,
    /// Largest coefficient of variation of the gaps that counts as stable (default: 0.3).
    pub regularity_cv_max: f64,
    /// Sessions needed before regularity is judged (default: 3).
    pub regularity_min_sessions: u64,
    /// A single connection lasting at least `persistent_connection_s` (default: 10).
    pub persistent_connection_points: f64,
    /// Length of a persistent connection (default: 600 s).
    pub persistent_connection_s: i64,
    /// Device locked, scaled by the share of sessions while locked (default: 10).
    pub locked_points: f64,
    /// App in background, scaled by the share of sessions (default: 8).
    pub background_points: f64,
    /// No user interaction within `interaction_window_s`, scaled by the share of sessions (default: 7).
    pub idle_points: f64,
    /// The recent-user-interaction window (default: 300 s).
    pub interaction_window_s: i64,
    /// Supervised device (default: 5).
    pub supervised_points: f64,
    /// Managed device (default: 5).
    pub managed_points: f64,
    /// Factor while the finding has a single session (default: 0.6).
    pub one_off_factor: f64,
    /// Factor when an exception covers the session (0 = never alert) (default: 0.0).
    pub exception_factor: f64,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        ScoringConfig {
            window_s: 7 * 24 * 3600,
            alert_threshold: 20.0,
            severity_medium: 45.0,
            severity_high: 70.0,
            severity_critical: 90.0,
            device_baseline_points: 30.0,
            role_baseline_points: 40.0,
            unmanaged_identity_points: 10.0,
            repetition_max_points: 20.0,
            repetition_saturation_sessions: 16,
            regular_recurrence_points: 15.0,
            regularity_cv_max: 0.3,
            regularity_min_sessions: 3,
            persistent_connection_points: 10.0,
            persistent_connection_s: 600,
            locked_points: 10.0,
            background_points: 8.0,
            idle_points: 7.0,
            interaction_window_s: 300,
            supervised_points: 5.0,
            managed_points: 5.0,
            one_off_factor: 0.6,
            exception_factor: 0.0,
        }
    }
}

impl ScoringConfig {
    /// The severity for a score.
    pub fn severity_for(&self, score: f64) -> Severity {
        if score >= self.severity_critical {
            Severity::Critical
        } else if score >= self.severity_high {
            Severity::High
        } else if score >= self.severity_medium {
            Severity::Medium
        } else if score >= self.alert_threshold {
            Severity::Low
        } else {
            Severity::Informational
        }
    }
}

/// What a finding is scored with.
#[derive(Debug, Clone, Copy)]
pub struct ScoreContext<'a> {
    /// The finding after its latest session was recorded.
    pub finding: &'a Finding,
    /// Why the pairing is a violation (from the baseline judgement).
    pub explanation: &'a str,
    /// The device, when in the inventory.
    pub device: Option<&'a Device>,
    /// The app attribution of the latest session.
    pub app: &'a AppAttribution,
    /// Device state at the latest session.
    pub state: &'a DeviceStateSnapshot,
    /// The exception covering the latest session, if any.
    pub exception: Option<&'a ExceptionRule>,
}

/// A score with its reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// 0..=100, one decimal.
    pub value: f64,
    /// From the value.
    pub severity: Severity,
    /// One line per contribution, each ending with its points or factor.
    pub reasons: Vec<String>,
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Scores a finding.
pub fn score(cfg: &ScoringConfig, ctx: &ScoreContext<'_>) -> Score {
    let f = ctx.finding;
    let mut reasons = Vec::new();
    let mut points = 0.0;
    let mut add = |pts: f64, text: String, reasons: &mut Vec<String>| {
        if pts > 0.0 {
            points += pts;
            reasons.push(format!("{text} (+{pts:.1})"));
        }
    };
    let base = match f.kind {
        ViolationKind::DeviceBaseline => cfg.device_baseline_points,
        ViolationKind::RoleBaseline => {
            let c = ctx.app.confidence.clamp(0.0, 1.0);
            cfg.device_baseline_points + (cfg.role_baseline_points - cfg.device_baseline_points) * c
        }
    };
    add(base, ctx.explanation.to_string(), &mut reasons);

    match ctx.device {
        None => add(
            cfg.unmanaged_identity_points,
            format!(
                "source {} is not in the MDM inventory: unmanaged device",
                f.src_ip
            ),
            &mut reasons,
        ),
        Some(d) if !d.managed => add(
            cfg.unmanaged_identity_points,
            format!("device {} is in the inventory but not managed", d.udid),
            &mut reasons,
        ),
        Some(_) => {
            if let (Some(b), Some(false)) = (&ctx.app.bundle_id, ctx.app.app_managed) {
                add(
                    cfg.unmanaged_identity_points,
                    format!("app {b} is not a managed app on this device"),
                    &mut reasons,
                );
            } else if ctx.app.bundle_id.is_none() && ctx.app.app_managed == Some(false) {
                add(
                    cfg.unmanaged_identity_points,
                    format!(
                        "no managed app of role `{}` on this device",
                        ctx.app.role.as_deref().unwrap_or("-")
                    ),
                    &mut reasons,
                );
            }
        }
    }

    if f.sessions >= 2 {
        let sat = cfg.repetition_saturation_sessions.max(2) as f64;
        let frac = ((f.sessions as f64).ln() / sat.ln()).min(1.0);
        add(
            cfg.repetition_max_points * frac,
            format!(
                "{} sessions since {}",
                f.sessions,
                format_rfc3339(f.first_seen_us)
            ),
            &mut reasons,
        );
    }
    if f.sessions >= cfg.regularity_min_sessions {
        if let (Some(mean), Some(cv)) = (f.intervals.mean(), f.intervals.coefficient_of_variation())
        {
            if cv <= cfg.regularity_cv_max {
                add(
                    cfg.regular_recurrence_points,
                    format!("recurs every {mean:.0} s (coefficient of variation {cv:.2})"),
                    &mut reasons,
                );
            }
        }
    }
    let longest_s = f.longest_session_us / 1_000_000;
    if longest_s >= cfg.persistent_connection_s {
        add(
            cfg.persistent_connection_points,
            format!("persistent connection of {longest_s} s"),
            &mut reasons,
        );
    }
    add(
        cfg.locked_points * share(f.locked_sessions, f.sessions),
        format!(
            "device locked in {}/{} sessions",
            f.locked_sessions, f.sessions
        ),
        &mut reasons,
    );
    add(
        cfg.background_points * share(f.background_sessions, f.sessions),
        format!(
            "{} in background in {}/{} sessions",
            ctx.app.bundle_id.as_deref().unwrap_or("app"),
            f.background_sessions,
            f.sessions
        ),
        &mut reasons,
    );
    let idle_text = match ctx.state.seconds_since_user_interaction {
        Some(s) => format!(
            "no user interaction within {} s in {}/{} sessions (latest: {s} s ago)",
            cfg.interaction_window_s, f.idle_sessions, f.sessions
        ),
        None => format!(
            "no user interaction within {} s in {}/{} sessions",
            cfg.interaction_window_s, f.idle_sessions, f.sessions
        ),
    };
    add(
        cfg.idle_points * share(f.idle_sessions, f.sessions),
        idle_text,
        &mut reasons,
    );
    if let Some(d) = ctx.device {
        if d.supervised {
            add(
                cfg.supervised_points,
                "supervised device".to_string(),
                &mut reasons,
            );
        }
        if d.managed {
            add(
                cfg.managed_points,
                "managed device".to_string(),
                &mut reasons,
            );
        }
    }
    if !ctx.state.observed {
        reasons.push("no device state reported for this device at the session time".to_string());
    }

    let mut value = points;
    if f.sessions <= 1 && cfg.one_off_factor < 1.0 {
        value *= cfg.one_off_factor;
        reasons.push(format!(
            "single session so far (x{:.2})",
            cfg.one_off_factor
        ));
    }
    if let Some(e) = ctx.exception {
        value *= cfg.exception_factor;
        reasons.push(format!(
            "covered by {} (x{:.2})",
            e.describe(),
            cfg.exception_factor
        ));
    }
    let value = (value.clamp(0.0, 100.0) * 10.0).round() / 10.0;
    Score {
        value,
        severity: cfg.severity_for(value),
        reasons,
    }
}
