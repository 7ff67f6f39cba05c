//! Retention: how long the store keeps what grows with time (device state reports, replaced
//! device records, learning counts, ended address bindings and leases, idle findings, uploaded
//! inventory documents), and what one pruning pass removed.
//!
//! Owns: [`RetentionConfig`] (the windows, `[control.retention]`), [`Cutoffs`] (the windows as
//! times for one pass) and [`PruneReport`]. Must not: delete anything itself (the store and the
//! ingest side do, [`crate::Ingest::enforce_retention`]) or read the clock.
//!
//! What is never pruned: the audit log (append-only by design), alerts and their triage (an
//! analyst's record), findings that raised an alert, devices of the current inventory, roles,
//! baselines and exceptions. The latest device state report of each kind (lock state, last user
//! interaction, app state per app, foreground app) is kept however old, so the state at any time
//! inside the windows reads the same before and after a pass.

use serde::{Deserialize, Serialize};

const DAY_S: i64 = 24 * 3600;

/// `[control.retention]`: windows in seconds; the default after each field's description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Prune at all (the daemon; a replay never prunes) (default: true).
    pub enabled: bool,
    /// Seconds between passes (default: 3600).
    pub interval_s: i64,
    /// Device state reports older than this are removed, except the latest of each kind per
    /// device (default: 30 days).
    pub device_states_s: i64,
    /// Device records a re-import replaced, kept as history (default: 90 days).
    pub device_history_s: i64,
    /// Learning count buckets (proposals can look back this far) (default: 90 days).
    pub learning_counts_s: i64,
    /// Address bindings and DHCP leases that ended this long ago (default: 90 days).
    pub bindings_s: i64,
    /// Findings with no session for this long and no alert (default: 30 days); at least the scoring
    /// window, so a finding still scoring is never forgotten.
    pub findings_s: i64,
    /// Inventory documents uploaded through the API, kept beside the store (default: 90 days).
    pub uploads_s: i64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            enabled: true,
            interval_s: 3600,
            device_states_s: 30 * DAY_S,
            device_history_s: 90 * DAY_S,
            learning_counts_s: 90 * DAY_S,
            bindings_s: 90 * DAY_S,
            findings_s: 30 * DAY_S,
            uploads_s: 90 * DAY_S,
        }
    }
}

impl RetentionConfig {
    /// The windows as cutoff times (µs) for a pass at `now_us`: what is older goes.
    pub fn cutoffs(&self, now_us: i64) -> Cutoffs {
        let before = |s: i64| now_us.saturating_sub(s.saturating_mul(1_000_000));
        Cutoffs {
            device_states_us: before(self.device_states_s),
            device_history_us: before(self.device_history_s),
            learning_counts_us: before(self.learning_counts_s),
            bindings_us: before(self.bindings_s),
            findings_us: before(self.findings_s),
            uploads_us: before(self.uploads_s),
        }
    }

    /// `(dotted field, value)` of every window, for range checks.
    pub(crate) fn windows(&self) -> [(&'static str, i64); 7] {
        [
            ("retention.interval_s", self.interval_s),
            ("retention.device_states_s", self.device_states_s),
            ("retention.device_history_s", self.device_history_s),
            ("retention.learning_counts_s", self.learning_counts_s),
            ("retention.bindings_s", self.bindings_s),
            ("retention.findings_s", self.findings_s),
            ("retention.uploads_s", self.uploads_s),
        ]
    }
}

/// One pass's cutoffs, µs since the epoch: rows older than these go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Device state reports (the latest of each kind per device stays).
    pub device_states_us: i64,
    /// Replaced device records.
    pub device_history_us: i64,
    /// Learning count buckets (by bucket start).
    pub learning_counts_us: i64,
    /// Bindings and leases, by the time they ended.
    pub bindings_us: i64,
    /// Findings, by their last session.
    pub findings_us: i64,
    /// Uploaded documents, by modification time.
    pub uploads_us: i64,
}

/// What one pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneReport {
    /// Device state reports.
    pub device_states: u64,
    /// Replaced device records.
    pub device_history: u64,
    /// Learning count buckets.
    pub learning_counts: u64,
    /// Ended address bindings.
    pub bindings: u64,
    /// Ended DHCP leases.
    pub leases: u64,
    /// Ended RADIUS accounting bindings.
    #[serde(default)]
    pub radius_bindings: u64,
    /// Import records nothing refers to any more.
    pub imports: u64,
    /// Idle findings without alerts.
    pub findings: u64,
    /// Uploaded inventory documents.
    pub uploads: u64,
}

impl PruneReport {
    /// Rows and files removed in all.
    pub fn total(&self) -> u64 {
        self.device_states
            + self.device_history
            + self.learning_counts
            + self.bindings
            + self.leases
            + self.radius_bindings
            + self.imports
            + self.findings
            + self.uploads
    }
}
