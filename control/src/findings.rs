//! Findings: one per (device, app or role, app_proto, destination, port), growing as sessions
//! repeat.
//!
//! Owns: [`FindingKey`], [`Finding`] and the per-session bookkeeping — session count, first/last
//! seen, recurrence interval and its regularity (mean and variance of the gaps between session
//! starts), persistent-connection time, and how many sessions happened while the device was
//! locked, the app in background, or the user idle.
//!
//! Sessions are placed by their own start time, not by the order they arrive in: the dataplane's
//! workers hand flows off when they end, each from its own queue, so a session often reaches the
//! control plane after later ones. The finding keeps the starts of its window's latest
//! [`MAX_SESSION_STARTS`] sessions sorted and derives the gaps from them, counts are sums, and
//! "latest" means latest by start time ([`SessionOrder`]), so a late session leaves the finding as
//! if it had arrived in order. A session older than every start kept is counted without its gap,
//! and one that ended more than the window before the finding's first session belongs to a window
//! already over and is not counted ([`Placement::Stale`]).
//! Also owns [`Severity`], the scale a finding is rated on (scoring computes it, alerts carry it).
//! Must not: score (see [`crate::scoring`]), persist (see [`crate::store`]) or decide alerts.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::attribution::AppAttribution;
use crate::device_state::{AppState, DeviceStateSnapshot, LockState};
use crate::observation::FlowObservation;
use crate::roles::{BaselineBasis, ExceptionRule, ViolationKind};

/// Session starts a finding keeps, sorted, to place late sessions (the latest ones; the gaps
/// between older starts are folded into [`Finding::folded_intervals`]).
pub const MAX_SESSION_STARTS: usize = 64;

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

    /// The statistics of `self`'s gaps and `other`'s together (Chan et al.'s pairwise merge).
    pub fn merged(&self, other: &IntervalStats) -> IntervalStats {
        if other.count == 0 {
            return *self;
        }
        if self.count == 0 {
            return *other;
        }
        let count = self.count + other.count;
        let (na, nb, n) = (self.count as f64, other.count as f64, count as f64);
        let delta = other.mean_s - self.mean_s;
        IntervalStats {
            count,
            mean_s: self.mean_s + delta * nb / n,
            m2: self.m2 + other.m2 + delta * delta * na * nb / n,
        }
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

/// Orders sessions by time: start, then end, then the client port (two sessions that agree on
/// all three are one as far as a finding can tell).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SessionOrder {
    /// Session start, µs.
    pub start_us: i64,
    /// Session end, µs.
    pub end_us: i64,
    /// Client port.
    pub src_port: u16,
}

impl SessionOrder {
    /// The order key of a session.
    pub fn of(obs: &FlowObservation) -> SessionOrder {
        SessionOrder {
            start_us: obs.start_us,
            end_us: obs.end_us,
            src_port: obs.src_port,
        }
    }
}

/// The latest session's share of a finding's score: how it was attributed and judged, the device
/// state then, and the exception that covered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatestSession {
    /// Its place in time.
    pub order: SessionOrder,
    /// Which baseline it broke.
    pub kind: ViolationKind,
    /// Which baseline judged it.
    pub basis: BaselineBasis,
    /// Why the pairing is a violation.
    pub explanation: String,
    /// Its app attribution.
    pub app: AppAttribution,
    /// The device state at its start.
    pub state: DeviceStateSnapshot,
    /// Confidence of its device attribution, 0..=1 (1 without one).
    pub device_confidence: f64,
    /// The exception that covered it.
    pub exception: Option<ExceptionRule>,
}

/// What a finding has counted of one session so far: its end and its bytes as of the last
/// event of its flow (an early event or interim update of an open flow, or its final record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionProgress {
    /// Session end (so far), µs.
    pub end_us: i64,
    /// Bytes client → server so far.
    pub bytes_toserver: u64,
    /// Bytes server → client so far.
    pub bytes_toclient: u64,
}

impl SessionProgress {
    /// What `obs` says of its session.
    pub fn of(obs: &FlowObservation) -> SessionProgress {
        SessionProgress {
            end_us: obs.end_us,
            bytes_toserver: obs.bytes_toserver,
            bytes_toclient: obs.bytes_toclient,
        }
    }
}

/// Where [`Finding::record_session`] placed a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Counted; it is the latest session by start time (`reset`: it started more than the
    /// window after the previous sessions ended, so the counts started over with it).
    Latest {
        /// The counts started over.
        reset: bool,
    },
    /// Counted; a later session had arrived before it.
    Earlier,
    /// Not counted: it ended more than the window before the finding's first session, in a
    /// window that is over.
    Stale,
}

impl Placement {
    /// True when the session was counted.
    pub fn counted(self) -> bool {
        !matches!(self, Placement::Stale)
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
    /// Gaps between session starts (derived: [`Finding::folded_intervals`] and the gaps between
    /// [`Finding::session_starts`]).
    pub intervals: IntervalStats,
    /// Starts of the window's latest sessions, µs, sorted (at most [`MAX_SESSION_STARTS`]).
    #[serde(default)]
    pub session_starts: Vec<i64>,
    /// Gaps between starts no longer in [`Finding::session_starts`].
    #[serde(default)]
    pub folded_intervals: IntervalStats,
    /// What the latest session (by start time) brought to the score; a late session is scored
    /// with it, as it would have been in order.
    #[serde(default)]
    pub latest: Option<LatestSession>,
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
            session_starts: Vec::new(),
            folded_intervals: IntervalStats::default(),
            latest: None,
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

    /// Adds one session, placed by its start time whatever the order sessions arrive in. When it
    /// is the latest and starts more than `window_us` after the earlier sessions ended, the counts
    /// start over (the finding keeps its id).
    pub fn record_session(
        &mut self,
        obs: &FlowObservation,
        state: &DeviceStateSnapshot,
        interaction_window_s: i64,
        window_us: i64,
    ) -> Placement {
        let order = SessionOrder::of(obs);
        let latest = self.sessions == 0
            || self
                .latest
                .as_ref()
                .map_or(obs.start_us >= self.last_start_us, |l| order >= l.order);
        if self.sessions > 0 && !latest && self.first_seen_us.saturating_sub(obs.end_us) > window_us
        {
            return Placement::Stale;
        }
        let reset = self.sessions > 0
            && latest
            && obs.start_us.saturating_sub(self.last_seen_us) > window_us;
        if reset {
            self.sessions = 0;
            self.first_seen_us = obs.start_us;
            self.last_seen_us = obs.end_us;
            self.last_start_us = obs.start_us;
            self.intervals = IntervalStats::default();
            self.session_starts.clear();
            self.folded_intervals = IntervalStats::default();
            self.longest_session_us = 0;
            self.connected_us = 0;
            self.locked_sessions = 0;
            self.background_sessions = 0;
            self.idle_sessions = 0;
            self.window_resets += 1;
            self.alerted_severity = None;
        }
        if self.sessions > 0 && self.session_starts.is_empty() {
            // A finding stored before starts were kept: its gaps so far are folded, and its
            // latest start is the one place known.
            self.folded_intervals = self.intervals;
            self.session_starts.push(self.last_start_us);
        }
        self.place_start(obs.start_us);
        self.sessions += 1;
        self.first_seen_us = self.first_seen_us.min(obs.start_us);
        self.last_seen_us = self.last_seen_us.max(obs.end_us);
        self.last_start_us = self.last_start_us.max(obs.start_us);
        self.longest_session_us = self.longest_session_us.max(obs.duration_us());
        self.connected_us = self.connected_us.saturating_add(obs.duration_us());
        self.bytes_toserver = self.bytes_toserver.saturating_add(obs.bytes_toserver);
        self.bytes_toclient = self.bytes_toclient.saturating_add(obs.bytes_toclient);
        if latest {
            self.src_ip = obs.src_ip;
            self.dest_ip = obs.dest_ip;
        }
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
        if latest {
            Placement::Latest { reset }
        } else {
            Placement::Earlier
        }
    }

    /// A session this finding already counted grew: a later event of the same flow (an
    /// interim update, or the final record after the early event) says it lasted until
    /// `obs.end_us` with `obs`'s bytes, where `counted` is what was counted for it so far. Its
    /// duration, bytes and end replace the counted ones; the session count, its start (and so
    /// the recurrence gaps) and the per-session state counts stay: it is one session. A session
    /// from before the window started over is ignored.
    pub fn update_session(&mut self, counted: &SessionProgress, obs: &FlowObservation) {
        if self.sessions == 0 || obs.start_us < self.first_seen_us {
            return;
        }
        let before = counted.end_us.saturating_sub(obs.start_us).max(0);
        let now = obs.duration_us();
        self.connected_us = self
            .connected_us
            .saturating_add(now.saturating_sub(before).max(0));
        self.longest_session_us = self.longest_session_us.max(now);
        self.bytes_toserver = self
            .bytes_toserver
            .saturating_add(obs.bytes_toserver.saturating_sub(counted.bytes_toserver));
        self.bytes_toclient = self
            .bytes_toclient
            .saturating_add(obs.bytes_toclient.saturating_sub(counted.bytes_toclient));
        self.last_seen_us = self.last_seen_us.max(obs.end_us);
        if let Some(l) = self.latest.as_mut() {
            if l.order.start_us == obs.start_us && l.order.src_port == obs.src_port {
                l.order.end_us = l.order.end_us.max(obs.end_us);
            }
        }
    }

    /// One finding from the parts several appliances reported for the same key (a device roaming
    /// between sites): counts are sums, times the widest, session starts the union (the latest
    /// [`MAX_SESSION_STARTS`] kept sorted, the gaps of the others folded with each part's folded
    /// gaps), and what the latest session brought (attribution, addresses, judgement, score,
    /// severity, reasons, exception) is the part with the latest session's. The score is
    /// therefore the one the latest part's appliance computed, not recomputed from the merged
    /// counts (that needs the device record, which the messages do not carry yet). `None` for
    /// no part.
    pub fn merge_parts(parts: &[Finding]) -> Option<Finding> {
        let latest = parts
            .iter()
            .max_by_key(|f| (f.last_start_us, f.last_seen_us))?;
        let mut m = latest.clone();
        m.id = 0;
        let sum = |get: fn(&Finding) -> u64| parts.iter().map(get).fold(0u64, u64::saturating_add);
        m.sessions = sum(|f| f.sessions);
        m.bytes_toserver = sum(|f| f.bytes_toserver);
        m.bytes_toclient = sum(|f| f.bytes_toclient);
        m.locked_sessions = sum(|f| f.locked_sessions);
        m.background_sessions = sum(|f| f.background_sessions);
        m.idle_sessions = sum(|f| f.idle_sessions);
        m.alerts = sum(|f| f.alerts);
        m.window_resets = parts.iter().map(|f| f.window_resets).max().unwrap_or(0);
        m.connected_us = parts
            .iter()
            .map(|f| f.connected_us)
            .fold(0i64, i64::saturating_add);
        m.longest_session_us = parts
            .iter()
            .map(|f| f.longest_session_us)
            .max()
            .unwrap_or(0);
        m.first_seen_us = parts.iter().map(|f| f.first_seen_us).min().unwrap_or(0);
        m.last_seen_us = parts.iter().map(|f| f.last_seen_us).max().unwrap_or(0);
        m.last_start_us = parts.iter().map(|f| f.last_start_us).max().unwrap_or(0);
        m.score = parts.iter().map(|f| f.score).fold(m.score, f64::max);
        if let Some(top) = parts.iter().max_by(|a, b| a.score.total_cmp(&b.score)) {
            if top.score > latest.score {
                m.severity = top.severity;
                m.reasons = top.reasons.clone();
            }
        }
        m.alerted_severity = parts.iter().filter_map(|f| f.alerted_severity).max();
        let mut starts: Vec<i64> = parts
            .iter()
            .flat_map(|f| f.session_starts.iter().copied())
            .collect();
        starts.sort_unstable();
        let mut folded = parts.iter().fold(IntervalStats::default(), |acc, f| {
            acc.merged(&f.folded_intervals)
        });
        let cut = starts.len().saturating_sub(MAX_SESSION_STARTS);
        for w in starts[..(cut + 1).min(starts.len())].windows(2) {
            folded.push((w[1] - w[0]) as f64 / 1e6);
        }
        m.session_starts = starts.split_off(cut);
        m.folded_intervals = folded;
        let mut kept = IntervalStats::default();
        for w in m.session_starts.windows(2) {
            kept.push((w[1] - w[0]) as f64 / 1e6);
        }
        m.intervals = m.folded_intervals.merged(&kept);
        Some(m)
    }

    /// Puts a session start in its sorted place (folding the oldest gap when the list is full)
    /// and derives [`Finding::intervals`] again. A start older than every start kept after
    /// folding adds no gap: where it falls among the folded ones is not known.
    fn place_start(&mut self, start_us: i64) {
        let folded = self.folded_intervals.count > 0;
        let pos = self.session_starts.partition_point(|&s| s <= start_us);
        if pos == 0 && folded {
            return;
        }
        self.session_starts.insert(pos, start_us);
        if self.session_starts.len() > MAX_SESSION_STARTS {
            let gap_us = self.session_starts[1] - self.session_starts[0];
            self.folded_intervals.push(gap_us as f64 / 1e6);
            self.session_starts.remove(0);
        }
        let mut kept = IntervalStats::default();
        for w in self.session_starts.windows(2) {
            kept.push((w[1] - w[0]) as f64 / 1e6);
        }
        self.intervals = self.folded_intervals.merged(&kept);
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
            proxy: None,
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
        assert_eq!(
            f.record_session(&obs(10 * 86_400, 2), &locked, 300, 86_400_000_000),
            Placement::Latest { reset: true }
        );
        assert_eq!(f.sessions, 1);
        assert_eq!(f.window_resets, 1);
    }

    fn key() -> FindingKey {
        FindingKey {
            device: "U".into(),
            subject: "-".into(),
            app_proto: "tls".into(),
            destination: "x".into(),
            port: 8443,
        }
    }

    #[test]
    fn merged_statistics_equal_the_sequential_ones() {
        let gaps = [900.0, 901.5, 899.0, 1200.0, 30.0, 905.0, 899.9];
        let mut all = IntervalStats::default();
        let (mut a, mut b) = (IntervalStats::default(), IntervalStats::default());
        for (i, g) in gaps.iter().enumerate() {
            all.push(*g);
            if i < 3 {
                a.push(*g)
            } else {
                b.push(*g)
            }
        }
        let m = a.merged(&b);
        assert_eq!(m.count, all.count);
        assert!((m.mean_s - all.mean_s).abs() < 1e-9);
        assert!((m.m2 - all.m2).abs() < 1e-6);
        assert_eq!(IntervalStats::default().merged(&b), b);
        assert_eq!(a.merged(&IntervalStats::default()), a);
    }

    #[test]
    fn sessions_late_within_the_kept_starts_give_the_in_order_gaps_past_the_bound() {
        let n: i64 = 3 * MAX_SESSION_STARTS as i64;
        let state = DeviceStateSnapshot::default();
        let starts = |k: i64| obs(k * 900 + (k * 7) % 5, 2);
        let mut in_order = Finding::open(key(), ViolationKind::DeviceBaseline, &starts(0));
        for k in 0..n {
            in_order.record_session(&starts(k), &state, 300, i64::MAX);
        }
        // Every run of 16 sessions arrives reversed: each late by at most 15 sessions.
        let mut late = Finding::open(key(), ViolationKind::DeviceBaseline, &starts(0));
        for chunk in (0..n).collect::<Vec<_>>().chunks(16) {
            for &k in chunk.iter().rev() {
                late.record_session(&starts(k), &state, 300, i64::MAX);
            }
        }
        assert_eq!(late.sessions, n as u64);
        assert_eq!(late.intervals.count, n as u64 - 1);
        assert_eq!(late.session_starts.len(), MAX_SESSION_STARTS);
        assert_eq!(late.session_starts, in_order.session_starts);
        assert!((late.intervals.mean_s - in_order.intervals.mean_s).abs() < 1e-9);
        assert!((late.intervals.m2 - in_order.intervals.m2).abs() < 1e-6);
        // Older than every start kept: counted, without a gap.
        let before = late.intervals;
        assert!(matches!(
            late.record_session(&starts(1), &state, 300, i64::MAX),
            Placement::Earlier
        ));
        assert_eq!(late.intervals, before);
        assert_eq!(late.sessions, n as u64 + 1);
    }

    #[test]
    fn a_session_of_a_window_that_is_over_is_not_counted() {
        let day = 86_400;
        let state = DeviceStateSnapshot::default();
        let mut f = Finding::open(key(), ViolationKind::DeviceBaseline, &obs(10 * day, 2));
        f.record_session(&obs(10 * day, 2), &state, 300, 86_400_000_000);
        f.record_session(&obs(10 * day + 900, 2), &state, 300, 86_400_000_000);
        let before = f.clone();
        assert_eq!(
            f.record_session(&obs(day, 2), &state, 300, 86_400_000_000),
            Placement::Stale
        );
        assert_eq!(f, before);
        // Inside the window: placed before the others.
        assert_eq!(
            f.record_session(&obs(10 * day - 900, 2), &state, 300, 86_400_000_000),
            Placement::Earlier
        );
        assert_eq!(f.sessions, 3);
        assert_eq!(f.interval_seconds(), Some(900.0));
    }

    #[test]
    fn a_finding_stored_before_starts_were_kept_goes_on_from_its_latest_start() {
        let state = DeviceStateSnapshot::default();
        let mut f = Finding::open(key(), ViolationKind::DeviceBaseline, &obs(0, 2));
        for k in 0..3 {
            f.record_session(&obs(k * 900, 2), &state, 300, i64::MAX);
        }
        f.session_starts.clear();
        f.folded_intervals = IntervalStats::default();
        f.record_session(&obs(3 * 900, 2), &state, 300, i64::MAX);
        assert_eq!(f.intervals.count, 3);
        assert_eq!(f.interval_seconds(), Some(900.0));
        assert_eq!(f.session_starts, vec![1800 * 1_000_000, 2700 * 1_000_000]);
    }
}
