//! Learning mode: count every protocol/port pair each role (and unattributed traffic) uses, and
//! propose a baseline from the counts over a window.
//!
//! Owns: [`PairCounts`] (in-memory counts per hour bucket, drained into the store on flush),
//! [`BaselineProposal`], [`PairingRejection`] (what the store keeps of a rejected pairing) and [`propose`]. Must not: approve anything — a proposal only lists pairs
//! with counts; approval is an explicit, audited call on the engine
//! ([`crate::engine::Operator::approve_baseline`]).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Learning tunables. Defaults in parentheses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LearningConfig {
    /// Count every classified flow per role and pair (default: true).
    pub enabled: bool,
    /// Bucket width for counts, so proposals can cover any window (default: 3600 s).
    pub bucket_s: i64,
    /// Sessions a pair needs within the window to be proposed (default: 3).
    pub min_sessions: u64,
}

impl Default for LearningConfig {
    fn default() -> Self {
        LearningConfig {
            enabled: true,
            bucket_s: 3600,
            min_sessions: 3,
        }
    }
}

/// One counted pair in one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PairCountKey {
    /// Role, or `device-default` for unattributed traffic.
    pub role: String,
    /// Protocol.
    pub app_proto: String,
    /// `TCP`/`UDP`.
    pub transport: String,
    /// Server port.
    pub port: u16,
    /// Bucket start, µs since the epoch.
    pub bucket_us: i64,
}

/// Counts not yet written to the store.
#[derive(Debug, Clone, Default)]
pub struct PairCounts {
    pending: HashMap<PairCountKey, u64>,
}

impl PairCounts {
    /// Counts one session.
    pub fn record(
        &mut self,
        role: &str,
        app_proto: &str,
        transport: &str,
        port: u16,
        at_us: i64,
        bucket_s: i64,
    ) {
        let width = bucket_s.max(1).saturating_mul(1_000_000);
        let key = PairCountKey {
            role: role.to_string(),
            app_proto: app_proto.to_string(),
            transport: transport.to_string(),
            port,
            bucket_us: at_us.div_euclid(width) * width,
        };
        *self.pending.entry(key).or_insert(0) += 1;
    }

    /// Takes the pending counts.
    pub fn drain(&mut self) -> Vec<(PairCountKey, u64)> {
        self.pending.drain().collect()
    }

    /// Puts counts back (after a failed write).
    pub fn restore(&mut self, counts: Vec<(PairCountKey, u64)>) {
        for (k, n) in counts {
            *self.pending.entry(k).or_insert(0) += n;
        }
    }

    /// Distinct pending keys.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// One pair in a proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposedPairing {
    /// Protocol.
    pub app_proto: String,
    /// `TCP`/`UDP`.
    pub transport: String,
    /// Port.
    pub port: u16,
    /// Sessions in the window.
    pub sessions: u64,
    /// First bucket with a session, µs.
    pub first_seen_us: i64,
    /// Last bucket with a session, µs.
    pub last_seen_us: i64,
    /// Already approved by the current baseline.
    pub already_approved: bool,
    /// Met `min_sessions`, is not yet approved and was not rejected: a candidate for approval.
    pub proposed: bool,
    /// Who rejected this pairing for the role, when and why, if it was rejected (then it is not
    /// proposed again; it can still be approved explicitly).
    #[serde(default)]
    pub rejected: Option<PairingRejection>,
}

/// A proposed baseline for one role over a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineProposal {
    /// Role, or `device-default`.
    pub role: String,
    /// Window start, µs.
    pub window_from_us: i64,
    /// Window end (exclusive), µs.
    pub window_to_us: i64,
    /// Every pair seen, most sessions first.
    pub pairings: Vec<ProposedPairing>,
}

/// Builds proposals from stored counts (already limited to the window).
/// `is_approved(role, app_proto, transport, port)` says what the current baseline approves.
pub fn propose(
    counts: &[(PairCountKey, u64)],
    window_from_us: i64,
    window_to_us: i64,
    min_sessions: u64,
    is_approved: &dyn Fn(&str, &str, &str, u16) -> bool,
) -> Vec<BaselineProposal> {
    /// (app_proto, transport, port) → (sessions, first bucket, last bucket).
    type PairTotals<'a> = BTreeMap<(&'a str, &'a str, u16), (u64, i64, i64)>;
    let mut by_role: BTreeMap<&str, PairTotals<'_>> = BTreeMap::new();
    for (k, n) in counts {
        let e = by_role
            .entry(k.role.as_str())
            .or_default()
            .entry((k.app_proto.as_str(), k.transport.as_str(), k.port))
            .or_insert((0, i64::MAX, i64::MIN));
        e.0 += n;
        e.1 = e.1.min(k.bucket_us);
        e.2 = e.2.max(k.bucket_us);
    }
    by_role
        .into_iter()
        .map(|(role, pairs)| {
            let mut pairings: Vec<ProposedPairing> = pairs
                .into_iter()
                .map(|((proto, transport, port), (n, first, last))| {
                    let already = is_approved(role, proto, transport, port);
                    ProposedPairing {
                        app_proto: proto.to_string(),
                        transport: transport.to_string(),
                        port,
                        sessions: n,
                        first_seen_us: first,
                        last_seen_us: last,
                        already_approved: already,
                        proposed: !already && n >= min_sessions,
                        rejected: None,
                    }
                })
                .collect();
            pairings.sort_by(|a, b| b.sessions.cmp(&a.sessions).then(a.port.cmp(&b.port)));
            BaselineProposal {
                role: role.to_string(),
                window_from_us,
                window_to_us,
                pairings,
            }
        })
        .collect()
}

/// A pairing an operator approves into a baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovedPairing {
    /// Protocol.
    pub app_proto: String,
    /// `TCP`/`UDP`, or `None` for either.
    pub transport: Option<String>,
    /// Port.
    pub port: u16,
    /// Also approve TLS reached by STARTTLS on this port.
    #[serde(default)]
    pub starttls: bool,
}

/// One rejected pairing, with who rejected it, when and why (from its audit entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingRejection {
    /// Role, or `device-default`.
    pub role: String,
    /// Protocol (lower case).
    pub app_proto: String,
    /// `TCP`/`UDP`, or `None` for either.
    pub transport: Option<String>,
    /// Port.
    pub port: u16,
    /// When, µs since the epoch.
    pub ts_us: i64,
    /// Who.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// The audit entry written with it.
    pub audit_id: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bucket_and_propose() {
        let mut c = PairCounts::default();
        for i in 0..5 {
            c.record("mail", "tls", "TCP", 8443, i * 900 * 1_000_000, 3600);
        }
        c.record("mail", "tls", "TCP", 993, 0, 3600);
        c.record("mail", "imap", "TCP", 1143, 0, 3600);
        let counts = c.drain();
        assert!(c.is_empty());
        let approved = |_: &str, p: &str, _: &str, port: u16| p == "tls" && port == 993;
        let props = propose(&counts, 0, 7200 * 1_000_000, 3, &approved);
        assert_eq!(props.len(), 1);
        let p = &props[0].pairings;
        assert_eq!((p[0].port, p[0].sessions, p[0].proposed), (8443, 5, true));
        assert!(p
            .iter()
            .any(|x| x.port == 993 && x.already_approved && !x.proposed));
        assert!(
            p.iter().any(|x| x.port == 1143 && !x.proposed),
            "below min_sessions"
        );
    }
}
