//! The pull connectors inside `portolan run`: one task per `[inputs.jamf]` / `[inputs.graph]` on
//! the API runtime, each pulling at start and then every `interval_s`; their statuses feed
//! `/api/v1/stats` and `/metrics`.
//!
//! Owns: starting and stopping the schedule tasks. Must not: pull on the main thread or a worker
//! core, or let a failed pull touch the inventory (the connectors crate guarantees it).

use portolan_api::{ConnectorStats, DataplaneStatsHandle};
use portolan_connectors::{schedule, StatusHandle};
use portolan_control::Operator;

use crate::config::ApplianceConfig;

/// The running schedule tasks; dropping it (or [`Connectors::stop`]) ends them.
pub struct Connectors {
    stop: tokio::sync::watch::Sender<bool>,
}

impl Connectors {
    /// Starts one task per configured connector on `runtime` and registers their statuses with
    /// `stats`. With none configured nothing runs.
    pub fn start(
        cfg: &ApplianceConfig,
        runtime: &tokio::runtime::Runtime,
        operator: &Operator,
        stats: &DataplaneStatsHandle,
    ) -> Connectors {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let status = StatusHandle::default();
        for connector in cfg.inputs.connectors() {
            tracing::info!(
                connector = connector.name(),
                target = %connector.target(),
                interval_s = connector.interval_s(),
                "inventory connector scheduled"
            );
            runtime.spawn(schedule::run(
                connector,
                operator.clone(),
                status.clone(),
                stopped.clone(),
            ));
        }
        stats.set_connector_source(std::sync::Arc::new(move || {
            status
                .snapshot()
                .into_iter()
                .map(|s| ConnectorStats {
                    name: s.name,
                    target: s.target,
                    pulls_ok: s.pulls_ok,
                    pulls_failed: s.pulls_failed,
                    last_success_unix: s.last_success_unix,
                    last_failure_unix: s.last_failure_unix,
                    last_error: s.last_error,
                    devices: s.devices,
                    warnings: s.warnings,
                })
                .collect()
        }));
        Connectors { stop }
    }

    /// Ends the tasks: a pull under way is abandoned (an import already handed to the store
    /// completes or not as one transaction).
    pub fn stop(self) {
        let _ = self.stop.send(true);
    }
}
