//! What the store has not taken yet: findings and alerts judged while a commit failed (full disk,
//! a locked or read-only file), kept in memory and committed with the next batch or retry, and the
//! store's health as readiness and metrics report it.
//!
//! Owns: [`Backlog`] (the latest version of each uncommitted finding, the uncommitted alerts in
//! the order they were raised, at most [`MAX_UNSAVED_ALERTS`] of them: past that the oldest alert
//! is dropped and counted, its finding still kept) and [`StoreHealth`] (counters and the last error,
//! read without the engine lock). Must not: judge flows or build SQL.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::alert::Alert;
use crate::findings::Finding;

/// Uncommitted alerts kept at most while the store refuses commits (about 2 KiB each in memory).
/// Findings need no bound of their own: every finding is in memory anyway.
pub const MAX_UNSAVED_ALERTS: usize = 10_000;

/// Findings and alerts waiting for the store.
#[derive(Debug, Default)]
pub(super) struct Backlog {
    /// By finding key: the latest version of each finding changed since the last commit.
    pub(super) findings: HashMap<String, Finding>,
    /// Raised since the last commit, oldest first.
    pub(super) alerts: VecDeque<Alert>,
}

impl Backlog {
    /// True when nothing waits.
    pub(super) fn is_empty(&self) -> bool {
        self.findings.is_empty() && self.alerts.is_empty()
    }

    /// Adds a batch's findings (replacing older versions) and alerts; returns how many of the
    /// oldest alerts were dropped to stay within [`MAX_UNSAVED_ALERTS`].
    pub(super) fn add(&mut self, findings: Vec<Finding>, alerts: Vec<Alert>) -> u64 {
        for f in findings {
            self.findings.insert(f.key.as_text(), f);
        }
        self.alerts.extend(alerts);
        let mut dropped = 0;
        while self.alerts.len() > MAX_UNSAVED_ALERTS {
            self.alerts.pop_front();
            dropped += 1;
        }
        dropped
    }

    /// Takes everything out, for one commit attempt (put it back with [`Backlog::restore`]).
    pub(super) fn take(&mut self) -> (Vec<Finding>, Vec<Alert>) {
        let findings = std::mem::take(&mut self.findings).into_values().collect();
        let alerts = std::mem::take(&mut self.alerts).into();
        (findings, alerts)
    }

    /// Puts back what a failed commit attempt took.
    pub(super) fn restore(&mut self, findings: Vec<Finding>, alerts: Vec<Alert>) {
        debug_assert!(self.is_empty());
        self.add(findings, alerts);
    }
}

/// The store's health as `/readyz`, `/metrics` and `/api/v1/stats` show it: whether findings wait
/// in memory because commits fail, and what was lost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreHealthSnapshot {
    /// Findings judged but not yet committed.
    pub unsaved_findings: u64,
    /// Alerts raised but not yet committed (nor written to the alert files and outputs).
    pub unsaved_alerts: u64,
    /// Commits of findings and alerts that failed since start (each is retried).
    pub failed_commits: u64,
    /// Uncommitted alerts dropped because more than [`MAX_UNSAVED_ALERTS`] waited (their
    /// findings are kept and committed).
    pub lost_alerts: u64,
    /// Learning counts writes that failed (the counts are kept and written with the next flush).
    pub failed_learning_flushes: u64,
    /// The error of the last failed commit, while findings wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl StoreHealthSnapshot {
    /// Why the appliance is degraded, when findings wait for the store. Without the error text
    /// (it names server paths, and `/readyz` answers anyone): the log has it.
    pub fn degraded_reason(&self) -> Option<String> {
        if self.unsaved_findings == 0 && self.unsaved_alerts == 0 {
            return None;
        }
        Some(format!(
            "degraded: the store cannot commit (full disk, read-only or locked file; the log has \
             the error); {} findings and {} alerts wait in memory and are retried every second",
            self.unsaved_findings, self.unsaved_alerts,
        ))
    }
}

/// Shared, lock-free counters behind [`StoreHealthSnapshot`] (the error text has its own lock).
#[derive(Debug, Default)]
pub struct StoreHealth {
    unsaved_findings: AtomicU64,
    unsaved_alerts: AtomicU64,
    failed_commits: AtomicU64,
    lost_alerts: AtomicU64,
    failed_learning_flushes: AtomicU64,
    last_error: RwLock<Option<String>>,
}

impl StoreHealth {
    /// The counters now.
    pub fn snapshot(&self) -> StoreHealthSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StoreHealthSnapshot {
            unsaved_findings: load(&self.unsaved_findings),
            unsaved_alerts: load(&self.unsaved_alerts),
            failed_commits: load(&self.failed_commits),
            lost_alerts: load(&self.lost_alerts),
            failed_learning_flushes: load(&self.failed_learning_flushes),
            last_error: self.last_error.read().ok().and_then(|e| e.clone()),
        }
    }

    /// `n` uncommitted alerts were dropped to keep the backlog bounded.
    pub(super) fn alerts_dropped(&self, n: u64) {
        self.lost_alerts.fetch_add(n, Ordering::Relaxed);
    }

    /// A commit failed with `error`; `backlog` is what now waits.
    pub(super) fn commit_failed(&self, error: &str, backlog: &Backlog) {
        self.failed_commits.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.write() {
            *e = Some(error.to_string());
        }
        self.set_waiting(backlog);
    }

    /// Everything waiting was committed.
    pub(super) fn committed(&self) {
        self.unsaved_findings.store(0, Ordering::Relaxed);
        self.unsaved_alerts.store(0, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.write() {
            *e = None;
        }
    }

    /// A write of learning counts failed (they stay pending).
    pub(super) fn learning_flush_failed(&self) {
        self.failed_learning_flushes.fetch_add(1, Ordering::Relaxed);
    }

    fn set_waiting(&self, backlog: &Backlog) {
        self.unsaved_findings
            .store(backlog.findings.len() as u64, Ordering::Relaxed);
        self.unsaved_alerts
            .store(backlog.alerts.len() as u64, Ordering::Relaxed);
    }
}
