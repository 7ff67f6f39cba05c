//! The control plane engine, split along its pipeline: [`Ingest`] feeds observations through
//! attribution, baseline judgement, exceptions, finding bookkeeping and scoring and commits findings and
//! alerts to the store; [`Operator`] carries the audited operator acts (imports, approving learned
//! pairings, roles, adding and revoking exceptions, acknowledging and triaging alerts, the audit log).
//! Both hold the one [`ControlCore`] (store, roles in force, inventory, counters) in an `Arc`.
//!
//! ```text
//!  flow ─▶ Ingest: attribute ─▶ judge ─▶ exception ─▶ score ─▶ store ─▶ alerts
//!                      │           │          │                   │
//!                      └───────────┴── ControlCore (store, roles, inventory, counts) ◀── Operator acts
//! ```
//!
//! Owns: [`ControlPlane`] (builds the core and its two sides), [`ControlConfig`], [`ControlError`],
//! [`IngestStats`], [`TriageAct`]. Must not: parse formats (the inventory, roles, device state and
//! observation modules do), build SQL (the store does), or render output (the output modules do).

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::app_catalogue::AppCatalogueError;
use crate::attribution::AttributionConfig;
use crate::audit::AuditError;
use crate::device_state::DeviceStateError;
use crate::inventory::{InventoryError, InventoryOptions};
use crate::learning::LearningConfig;
use crate::observation::ObservationError;
use crate::output::ocsf::OcsfProduct;
use crate::roles::{RegisteredPorts, RoleSet, RolesError};
use crate::scoring::ScoringConfig;
use crate::store::{Store, StoreError};

mod backlog;
mod core;
mod ingest;
mod lookup;
mod operator;
mod retention;
mod review;
mod shared;
mod triage;

pub use self::core::{ControlCore, CoreState};
pub use backlog::{StoreHealth, StoreHealthSnapshot, MAX_UNSAVED_ALERTS};
pub use ingest::{Ingest, MAX_OPEN_SESSIONS};
pub use operator::Operator;

/// A triage act on an alert beyond acknowledging and closing it (see [`Operator::triage_alert`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriageAct {
    /// Escalate it.
    Escalate,
    /// Add a comment (the note is its text).
    Comment,
    /// Undo its acknowledgement (it must not be closed).
    UndoAcknowledge,
    /// Reopen it (undo its closure).
    UndoClose,
    /// Undo its escalation.
    UndoEscalate,
    /// Retract the comment with this id.
    RetractComment(i64),
}

/// How [`Operator::import_inventory_bytes`] names its document in errors and the audit log.
pub const INVENTORY_BYTES_ORIGIN: &str = "request body";

/// Every tunable of the control plane; each section documents its own defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlConfig {
    /// Scoring and alerting.
    pub scoring: ScoringConfig,
    /// Attribution confidences and DNS cache.
    pub attribution: AttributionConfig,
    /// Learning mode.
    pub learning: LearningConfig,
    /// Product details for OCSF output.
    pub ocsf: OcsfProduct,
    /// Site-specific inventory field names (IPv6 extension attributes).
    pub inventory: InventoryOptions,
    /// How long what grows with time is kept (the daemon prunes; a replay does not).
    pub retention: crate::retention::RetentionConfig,
}

impl ControlConfig {
    /// Reads a TOML file with any of the sections `[scoring]`, `[attribution]`, `[learning]`,
    /// `[ocsf]`, `[inventory]`, `[retention]`; absent keys keep their defaults. Errors name the file, line and column.
    pub fn load(path: &Path) -> Result<ControlConfig, ControlError> {
        let text = crate::input_file::read_to_string_bounded(
            path,
            crate::input_file::MAX_INPUT_FILE_BYTES,
        )
        .map_err(|e| ControlError::Rejected(format!("{}: {e}", path.display())))?;
        ControlConfig::parse(&text, path)
    }

    /// Checks every tunable's range (finite numbers, ordered severities, positive windows); the
    /// error names the first bad field.
    pub fn validate(&self) -> Result<(), crate::settings::InvalidSetting> {
        crate::settings::validate(self)
    }

    /// Parses config TOML and checks its values ([`ControlConfig::validate`]); `origin` names
    /// errors.
    pub fn parse(text: &str, origin: &Path) -> Result<ControlConfig, ControlError> {
        let cfg: ControlConfig = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((0, 0), |span| {
                let before = text.get(..span.start).unwrap_or("");
                let line = before.matches('\n').count() + 1;
                let column = before
                    .rfind('\n')
                    .map_or(before.len(), |nl| before.len() - nl - 1)
                    + 1;
                (line, column)
            });
            ControlError::Rejected(format!(
                "{}:{line}:{column}: {}",
                origin.display(),
                e.message()
            ))
        })?;
        cfg.validate()
            .map_err(|e| ControlError::Rejected(format!("{}: {e}", origin.display())))?;
        Ok(cfg)
    }
}

/// Anything the control plane refused or failed at; each variant names its file, line or field.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// An inventory or lease file.
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// Roles, baselines or exceptions.
    #[error(transparent)]
    Roles(#[from] RolesError),
    /// A device state file or event.
    #[error(transparent)]
    DeviceState(#[from] DeviceStateError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An EVE record.
    #[error(transparent)]
    Observation(#[from] ObservationError),
    /// An operator act without actor or reason.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The app catalogue.
    #[error(transparent)]
    AppCatalogue(#[from] AppCatalogueError),
    /// A tunable out of its range (names the field).
    #[error(transparent)]
    Setting(#[from] crate::settings::InvalidSetting),
    /// A request that cannot be honoured.
    #[error("{0}")]
    Rejected(String),
}

/// Counters since the engine started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestStats {
    /// Flow observations received.
    pub flows: u64,
    /// Flows without an identified protocol (not judged).
    pub unclassified: u64,
    /// Flows whose pairing was approved.
    pub approved: u64,
    /// Flows that broke a baseline (findings updated).
    pub violations: u64,
    /// Violations covered by an exception.
    pub excepted: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// DNS answers remembered.
    pub dns_answers: u64,
    /// Device state events stored.
    pub device_states: u64,
    /// Later events (interim updates, final records) of flows judged by their early event,
    /// applied to their session in place (not counted in `flows`).
    #[serde(default)]
    pub session_updates: u64,
    /// Interim updates of flows whose early event was not judged (dropped by the dataplane,
    /// or forgotten): ignored, the final record counts the flow.
    #[serde(default)]
    pub unmatched_updates: u64,
    /// Open sessions forgotten at the bound (`MAX_OPEN_SESSIONS`).
    #[serde(default)]
    pub open_sessions_forgotten: u64,
}

/// The control plane as start-up builds it: one shared core ([`ControlCore`]: store, roles in force,
/// inventory, counters) and its two sides, each with one job. Hand [`ingest`](Self::ingest) to the
/// consumer of the dataplane's flows and [`operator`](Self::operator) (cheap to clone) to whoever acts
/// for an operator (the admin API, start-up imports).
#[derive(Debug)]
pub struct ControlPlane {
    /// attribute → judge → exception → score → store, for each flow.
    pub ingest: Ingest,
    /// Imports, approvals, exceptions, roles, alert acts and the audit log.
    pub operator: Operator,
}

impl ControlPlane {
    /// Builds the shared core over a store — the inventory, network identities, leases, approved
    /// pairings, API exceptions, device states and findings it holds, on top of `roles` — and its two
    /// sides. A `[registry]` table in the roles file becomes the device default baseline until
    /// [`Operator::set_port_registry`] replaces it.
    pub fn new(
        store: Store,
        roles: RoleSet,
        config: ControlConfig,
    ) -> Result<ControlPlane, ControlError> {
        config.validate()?;
        let state = CoreState::load(store, roles)?;
        let core = Arc::new(ControlCore::new(state, config));
        Ok(ControlPlane {
            ingest: Ingest::new(Arc::clone(&core))?,
            operator: Operator { core },
        })
    }

    /// Builder form of [`Operator::set_port_registry`].
    pub fn with_port_registry(self, registry: impl RegisteredPorts + 'static) -> Self {
        self.core().set_port_registry(Box::new(registry));
        self
    }

    /// The shared core.
    pub fn core(&self) -> &Arc<ControlCore> {
        self.operator.core()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_overrides_only_what_it_names_and_errors_name_the_line() {
        let cfg = ControlConfig::parse(
            "[scoring]\nalert_threshold = 35.0\ninteraction_window_s = 120\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(cfg.scoring.alert_threshold, 35.0);
        assert_eq!(cfg.scoring.interaction_window_s, 120);
        assert_eq!(cfg.scoring.window_s, ScoringConfig::default().window_s);
        assert_eq!(cfg.attribution, AttributionConfig::default());
        let e = ControlConfig::parse(
            "[scoring]\nalert_threshold = \"high\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("c.toml:2:"), "{e}");
        let e = ControlConfig::parse("[scoring]\nalert_treshold = 3.0\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("c.toml:2:") && e.contains("alert_treshold"),
            "{e}"
        );
    }

    #[test]
    fn in_memory_store_runs_the_engine() {
        let store = Store::open_in_memory().unwrap();
        let cp = ControlPlane::new(
            store,
            RoleSet::shipped_defaults().unwrap(),
            ControlConfig::default(),
        )
        .unwrap();
        assert_eq!(cp.core().lock().unwrap().device_count(), 0);
    }
}
