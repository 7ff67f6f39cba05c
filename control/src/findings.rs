//! Findings: one per (device, app or role, app_proto, destination, port), growing as sessions
//! repeat.
//!
//! Owns: [`FindingKey`], [`Finding`] and the per-session bookkeeping — session count, first/last
//! seen, recurrence interval and its regularity (running mean and variance of the gaps between
//! session starts, Welford), persistent-connection time, and how many sessions happened while the
//! device was locked, the app in background, or the user idle.
//! Also owns [`Severity`], the scale a finding is rated on (scoring computes it, alerts carry it).
//! Must not: score (see [`crate::scoring`]), persist (see [`crate::store`]) or decide alerts.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::device_state::{AppState, DeviceStateSnapshot, LockState};
use crate::observation::FlowObservation;
use crate::roles::ViolationKind;

/// Severity, ordered; the numbers are OCSF `severity_id`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Below the alert threshold.
    Informational = 1,
    /// Worth a look.
    Low = 2,
    /// Likely abuse.
    Medium = 3,
    /// Act.
    High = 4,
    /// Act now.
    Critical = 5,
}

impl Severity {
    /// OCSF `severity_id`.
    pub fn ocsf_id(self) -> u8 {
        self as u8
    }

    /// OCSF `severity` caption.
    pub fn caption(self) -> &'static str {
        match self {
            Severity::Informational => "Informational",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
        }
    }

    /// Suricata `alert.severity` (1 is the most severe).
    pub fn eve_severity(self) -> u8 {
        match self {
            Severity::Critical | Severity::High => 1,
            Severity::Medium => 2,
            Severity::Low => 3,
            Severity::Informational => 4,
        }
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Informational => "informational",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses the lowercase name.
    pub fn from_name(name: &str) -> Option<Severity> {
        Some(match name {
            "informational" => Severity::Informational,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

/// What makes two sessions the same finding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FindingKey {
    /// Device UDID, or `ip:<source address>` for a device not in the inventory.
    pub device: String,
    /// Bundle ID, else `role:<role>`, else `-` (device default baseline).
    pub subject: String,
    /// Protocol.
    pub app_proto: String,
    /// Server name when known, else server address.
    pub destination: String,
    /// Server port.
    pub port: u16,
}

impl FindingKey {
    /// The stable text form used as the store's unique key.
    pub fn as_text(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.device, self.subject, self.app_proto, self.destination, self.port
        )
    }
}

/// Running mean and variance of the gaps between session starts, seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct IntervalStats {
    /// Number of gaps.
    pub count: u64,
    /// Mean gap, seconds.
    pub mean_s: f64,
    /// Sum of squared deviations (Welford's M2).
    pub m2: f64,
}

impl IntervalStats {
    /// Adds a gap.
    pub fn push(&mut self, gap_s: f64) {
        self.count += 1;
        let delta = gap_s - self.mean_s;
        // Counts stay far below 2^52, so the conversion is exact.
        self.mean_s += delta / self.count as f64;
        self.m2 += delta * (gap_s - self.mean_s);
    }

    /// Mean gap, when there is one.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then_some(self.mean_s)
    }

    /// Coefficient of variation (population standard deviation / mean): 0 for a perfectly
    /// regular beacon. `None` with fewer than two gaps or a zero mean.
    pub fn coefficient_of_variation(&self) -> Option<f64> {
        if self.count < 2 || self.mean_s <= 0.0 {
            return None;
        }
        let variance = self.m2 / self.count as f64;
        Some(variance.max(0.0).sqrt() / self.mean_s)
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Store row id (0 until stored).
    pub id: i64,
    /// Identity.
    pub key: FindingKey,
    /// Which baseline is broken.
    pub kind: ViolationKind,
    /// Device UDID, when in the inventory.
    pub udid: Option<String>,
    /// Device serial number, when known.
    pub serial_number: Option<String>,
    /// Latest source address.
    pub src_ip: IpAddr,
    /// Latest server address.
    pub dest_ip: IpAddr,
    /// Transport.
    pub transport: String,
    /// Attributed bundle.
    pub bundle_id: Option<String>,
    /// Attributed role.
    pub role: Option<String>,
    /// Sessions in the current window.
    pub sessions: u64,
    /// First session start in the current window, µs.
    pub first_seen_us: i64,
    /// Latest session end, µs.
    pub last_seen_us: i64,
    /// Latest session start, µs.
    pub last_start_us: i64,
    /// Gaps between session starts.
    pub intervals: IntervalStats,
    /// Longest single session, µs.
    pub longest_session_us: i64,
    /// Total connected time, µs.
    pub connected_us: i64,
    /// Bytes client → server.
    pub bytes_toserver: u64,
    /// Bytes server → client.
    pub bytes_toclient: u64,
    /// Sessions while the device was locked.
    pub locked_sessions: u64,
    /// Sessions with the app in background.
    pub background_sessions: u64,
    /// Sessions with no user interaction within the interaction window.
    pub idle_sessions: u64,
    /// Times the window ran out and the counts started over.
    pub window_resets: u64,
    /// Current score, 0..=100.
    pub score: f64,
    /// Current severity.
    pub severity: Severity,
    /// Why the score is what it is.
    pub reasons: Vec<String>,
    /// Attribution confidence of the latest session, 0..=1.
    pub confidence: f64,
    /// Exception that covered the latest session, if any.
    pub excepted_by: Option<String>,
    /// Highest severity already alerted (alerts repeat only when severity rises).
    pub alerted_severity: Option<Severity>,
    /// Alerts emitted.
    pub alerts: u64,
}

impl Finding {
    /// A finding with no session yet.
    pub fn open(key: FindingKey, kind: ViolationKind, obs: &FlowObservation) -> Finding {
        Finding {
            id: 0,
            key,
            kind,
            udid: None,
            serial_number: None,
            src_ip: obs.src_ip,
            dest_ip: obs.dest_ip,
            transport: obs.transport.clone(),
            bundle_id: None,
            role: None,
            sessions: 0,
            first_seen_us: obs.start_us,
            last_seen_us: obs.end_us,
            last_start_us: obs.start_us,
            intervals: IntervalStats::default(),
            longest_session_us: 0,
            connected_us: 0,
            bytes_toserver: 0,
            bytes_toclient: 0,
            locked_sessions: 0,
            background_sessions: 0,
            idle_sessions: 0,
            window_resets: 0,
            score: 0.0,
            severity: Severity::Informational,
            reasons: Vec::new(),
            confidence: 0.0,
            excepted_by: None,
            alerted_severity: None,
            alerts: 0,
        }
    }

    /// Adds one session. When it starts more than `window_us` after the last one ended, the counts
    /// start over (the finding keeps its id). Returns true when that happened.
    pub fn record_session(
        &mut self,
        obs: &FlowObservation,
        state: &DeviceStateSnapshot,
        interaction_window_s: i64,
        window_us: i64,
    ) -> bool {
        let reset = self.sessions > 0 && obs.start_us.saturating_sub(self.last_seen_us) > window_us;
        if reset {
            self.sessions = 0;
            self.first_seen_us = obs.start_us;
            self.last_seen_us = obs.end_us;
            self.last_start_us = obs.start_us;
            self.intervals = IntervalStats::default();
            self.longest_session_us = 0;
            self.connected_us = 0;
            self.locked_sessions = 0;
            self.background_sessions = 0;
            self.idle_sessions = 0;
            self.window_resets += 1;
            self.alerted_severity = None;
        }
        if self.sessions > 0 && obs.start_us > self.last_start_us {
            let gap_us = obs.start_us - self.last_start_us;
            self.intervals.push(gap_us as f64 / 1e6);
        }
        self.sessions += 1;
        self.first_seen_us = self.first_seen_us.min(obs.start_us);
        self.last_seen_us = self.last_seen_us.max(obs.end_us);
        self.last_start_us = self.last_start_us.max(obs.start_us);
        self.longest_session_us = self.longest_session_us.max(obs.duration_us());
        self.connected_us = self.connected_us.saturating_add(obs.duration_us());
        self.bytes_toserver = self.bytes_toserver.saturating_add(obs.bytes_toserver);
        self.bytes_toclient = self.bytes_toclient.saturating_add(obs.bytes_toclient);
        self.src_ip = obs.src_ip;
        self.dest_ip = obs.dest_ip;
        if state.lock_state == Some(LockState::Locked) {
            self.locked_sessions += 1;
        }
        if state.app_state == Some(AppState::Background) {
            self.background_sessions += 1;
        }
        if state
            .seconds_since_user_interaction
            .is_some_and(|s| s >= interaction_window_s)
        {
            self.idle_sessions += 1;
        }
        reset
    }

    /// Mean recurrence interval, seconds.
    pub fn interval_seconds(&self) -> Option<f64> {
        self.intervals.mean()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(start_s: i64, dur_s: i64) -> FlowObservation {
        FlowObservation {
            flow_id: 1,
            community_id: None,
            start_us: start_s * 1_000_000,
            end_us: (start_s + dur_s) * 1_000_000,
            src_ip: "10.0.0.5".parse().unwrap(),
            src_port: 50000,
            dest_ip: "198.51.100.7".parse().unwrap(),
            dest_port: 8443,
            transport: "TCP".into(),
            app_proto: "tls".into(),
            indicators: vec![],
            sni: None,
            http_host: None,
            quic_sni: None,
            tls: None,
            http: None,
            pkts_toserver: 1,
            pkts_toclient: 1,
            bytes_toserver: 10,
            bytes_toclient: 20,
            port_mismatch: Some(true),
            starttls: false,
        }
    }

    #[test]
    fn regular_beacon_has_low_cv_and_window_resets() {
        let key = FindingKey {
            device: "U".into(),
            subject: "-".into(),
            app_proto: "tls".into(),
            destination: "x".into(),
            port: 8443,
        };
        let mut f = Finding::open(key, ViolationKind::DeviceBaseline, &obs(0, 2));
        let locked = DeviceStateSnapshot {
            lock_state: Some(LockState::Locked),
            observed: true,
            ..Default::default()
        };
        for i in 0..8 {
            f.record_session(&obs(i * 900 + (i % 2), 2), &locked, 300, 86_400_000_000);
        }
        assert_eq!(f.sessions, 8);
        assert_eq!(f.locked_sessions, 8);
        let mean = f.interval_seconds().unwrap();
        assert!((mean - 900.0).abs() < 1.0, "{mean}");
        assert!(f.intervals.coefficient_of_variation().unwrap() < 0.01);
        let mut jitter = IntervalStats::default();
        for g in [10.0, 900.0, 30.0, 2000.0] {
            jitter.push(g);
        }
        assert!(jitter.coefficient_of_variation().unwrap() > 0.8);
        assert!(f.record_session(&obs(10 * 86_400, 2), &locked, 300, 86_400_000_000));
        assert_eq!(f.sessions, 1);
        assert_eq!(f.window_resets, 1);
    }
}
