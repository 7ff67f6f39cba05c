//! Pulls on a schedule inside `portolan run`: one task per connector, a pull at start and then
//! every `interval_s`, each result logged and kept in a [`ConnectorStatus`] that `/metrics` and
//! `/api/v1/stats` read.
//!
//! Owns: [`run`], [`ConnectorStatus`], [`StatusHandle`]. Must not: retry a failed pull before its
//! next turn (the HTTP layer already retried each request), or change the inventory on failure.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portolan_control::Operator;

use crate::{pull_and_import, Connector};

/// What one connector did since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectorStatus {
    /// `jamf` or `graph`.
    pub name: String,
    /// The server.
    pub target: String,
    /// Pulls imported.
    pub pulls_ok: u64,
    /// Pulls that failed (the inventory was left as it was).
    pub pulls_failed: u64,
    /// Unix time of the last pull imported.
    pub last_success_unix: Option<u64>,
    /// Unix time of the last failure.
    pub last_failure_unix: Option<u64>,
    /// The last failure's message (cleared by a success).
    pub last_error: Option<String>,
    /// Devices the last imported pull listed.
    pub devices: u64,
    /// Import warnings of the last imported pull.
    pub warnings: u64,
}

/// The connectors' statuses, shared with the API; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct StatusHandle {
    inner: Arc<Mutex<Vec<ConnectorStatus>>>,
}

impl StatusHandle {
    /// A copy of every connector's status.
    pub fn snapshot(&self) -> Vec<ConnectorStatus> {
        self.inner.lock().map(|v| v.clone()).unwrap_or_default()
    }

    fn register(&self, connector: &Connector) -> usize {
        let mut v = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        v.push(ConnectorStatus {
            name: connector.name().to_string(),
            target: connector.target(),
            ..ConnectorStatus::default()
        });
        v.len() - 1
    }

    fn update(&self, index: usize, f: impl FnOnce(&mut ConnectorStatus)) {
        let mut v = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = v.get_mut(index) {
            f(s);
        }
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs `connector` until `stop` fires: a pull now, then one every `interval_s` after the last
/// one ended. Each outcome is logged and recorded in `status`.
pub async fn run(
    connector: Connector,
    operator: Operator,
    status: StatusHandle,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let index = status.register(&connector);
    let interval = Duration::from_secs(connector.interval_s());
    loop {
        let outcome = tokio::select! {
            r = pull_and_import(&connector, &operator) => r,
            _ = stop.changed() => return,
        };
        match outcome {
            Ok(report) => {
                let warnings: usize = report.imports.iter().map(|s| s.warnings.len()).sum();
                for w in report.imports.iter().flat_map(|s| s.warnings.iter()) {
                    tracing::warn!(connector = connector.name(), "{w}");
                }
                tracing::info!(
                    connector = connector.name(),
                    target = %connector.target(),
                    devices = report.devices,
                    requests = report.pages,
                    added = report.imports.iter().map(|s| s.added).sum::<usize>(),
                    changed = report.imports.iter().map(|s| s.changed).sum::<usize>(),
                    skipped = report.imports.iter().map(|s| s.skipped.len()).sum::<usize>(),
                    warnings,
                    "inventory pulled and imported"
                );
                status.update(index, |s| {
                    s.pulls_ok += 1;
                    s.last_success_unix = Some(now_unix());
                    s.last_error = None;
                    s.devices = report.devices as u64;
                    s.warnings = warnings as u64;
                });
            }
            Err(e) => {
                tracing::error!(
                    connector = connector.name(),
                    target = %connector.target(),
                    error = %e,
                    "inventory pull failed; the previous inventory stays in force"
                );
                status.update(index, |s| {
                    s.pulls_failed += 1;
                    s.last_failure_unix = Some(now_unix());
                    s.last_error = Some(e.to_string());
                });
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}
