//! The control plane engine: feeds observations through attribution, baseline judgement,
//! exceptions, finding bookkeeping and scoring, commits findings and alerts to the store, and
//! carries the audited operator acts (approving learned pairings, adding and revoking exceptions,
//! acknowledging alerts).
//!
//! Owns: [`ControlPlane`], [`ControlConfig`], [`ControlError`], and the alert policy: a finding
//! raises an alert when its score first reaches `scoring.alert_threshold`, and again each time its
//! severity rises; sessions covered by an exception never alert.
//! Must not: parse formats (the inventory, roles, device state and observation modules do), build
//! SQL (the store does), or render output (the output modules do).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::alert::{
    Alert, AlertActivity, BaselineContext, DeviceContext, PersistenceContext, SignatureCatalogue,
};
use crate::app_catalogue::{AppCatalogue, AppCatalogueError};
use crate::attribution::{AttributionConfig, AttributionIndex};
use crate::audit::{AuditAction, AuditEntry, AuditError};
use crate::device_state::{
    load_device_states, DeviceStateError, DeviceStateEvent, DeviceStateTimeline, LockState,
};
use crate::findings::{Finding, FindingKey};
use crate::inventory::kea_leases::load_kea_leases;
use crate::inventory::{
    load_inventory_files_with, parse_inventory_bytes_with, Device, InventoryError, InventoryOptions,
};
use crate::learning::{propose, ApprovedPairing, BaselineProposal, LearningConfig, PairCounts};
use crate::observation::{DnsAnswer, EveInput, FlowObservation, ObservationError};
use crate::output::ocsf::OcsfProduct;
use crate::roles::{
    BaselineBasis, ExceptionQuery, ExceptionRule, PairingQuery, PortRule, RegisteredPorts, Role,
    RoleSet, RolesError, DEVICE_DEFAULT,
};
use crate::scoring::{score, ScoreContext, ScoringConfig};
use crate::store::{
    CloseOutcome, ImportSummary, Store, StoreError, StoredAlert, TriageNote, TriageOutcome,
};

mod review;

/// A triage act on an alert beyond acknowledging and closing it (see [`ControlPlane::triage_alert`]).
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

/// How [`ControlPlane::import_inventory_bytes`] names its document in errors and the audit log.
pub const INVENTORY_BYTES_ORIGIN: &str = "request body";

/// Pending learning keys that trigger a flush to the store.
const LEARNING_FLUSH_KEYS: usize = 10_000;

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
}

impl ControlConfig {
    /// Reads a TOML file with any of the sections `[scoring]`, `[attribution]`, `[learning]`,
    /// `[ocsf]`, `[inventory]`; absent keys keep their defaults. Errors name the file, line and column.
    pub fn load(path: &Path) -> Result<ControlConfig, ControlError> {
        let text = std::fs::read_to_string(path)
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
}

/// The control plane.
pub struct ControlPlane {
    store: Store,
    /// The role set as given (roles file or shipped), before the changes kept in the store.
    base_roles: RoleSet,
    roles: RoleSet,
    config: ControlConfig,
    signatures: SignatureCatalogue,
    registry: Option<Box<dyn RegisteredPorts>>,
    /// `registry` came from the roles file's `[registry]` table (replaced with the roles).
    registry_from_roles: bool,
    index: AttributionIndex,
    catalogue: AppCatalogue,
    devices: HashMap<String, Device>,
    serial_to_udid: HashMap<String, String>,
    states: DeviceStateTimeline,
    findings: HashMap<String, Finding>,
    counts: PairCounts,
    stats: IngestStats,
    warnings: Vec<String>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("store", &self.store)
            .field("devices", &self.devices.len())
            .field("findings", &self.findings.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Drop for ControlPlane {
    /// Writes pending learning counts (best effort: call [`ControlPlane::flush`] to see errors).
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// The key device state events are kept under when the UDID is not known.
fn serial_key(serial: &str) -> String {
    format!("serial:{serial}")
}

/// Applies the changes made through the API and kept in `store` on top of `roles` (as read from
/// the roles file): roles defined or deleted, then approved pairings, then exceptions. What
/// cannot be applied is described in `warnings`.
fn apply_stored_changes(
    store: &Store,
    roles: &mut RoleSet,
    warnings: &mut Vec<String>,
) -> Result<(), ControlError> {
    for (name, definition) in store.role_definitions()? {
        match definition {
            Some(role) => {
                if let Err(e) = roles.upsert_role(role) {
                    warnings.push(format!("stored role `{name}` not applied: {e}"));
                }
            }
            None => {
                roles.remove_role(&name);
            }
        }
    }
    for (role, p) in store.approved_pairings()? {
        let rule = PortRule {
            app_proto: p.app_proto.clone(),
            transport: p.transport.clone(),
            ports: vec![p.port],
            starttls: p.starttls,
        };
        if let Err(e) = roles.add_approved_rule(&role, rule) {
            warnings.push(format!(
                "approved pairing for role `{role}` not applied: {e}"
            ));
        }
    }
    for rule in store.active_exceptions()? {
        let id = rule.id.clone();
        if let Err(e) = roles.add_exception(rule) {
            warnings.push(format!("stored exception `{id}` not applied: {e}"));
        }
    }
    Ok(())
}

impl ControlPlane {
    /// Builds the engine over a store: loads the inventory, network identities, leases, approved
    /// pairings, API exceptions, device states and findings the store holds, on top of `roles`.
    /// A `[registry]` table in the roles file becomes the device default baseline until
    /// [`set_port_registry`](Self::set_port_registry) replaces it.
    pub fn new(
        store: Store,
        mut roles: RoleSet,
        config: ControlConfig,
    ) -> Result<ControlPlane, ControlError> {
        config.validate()?;
        let signatures = SignatureCatalogue::shipped().map_err(ControlError::Rejected)?;
        let mut warnings = Vec::new();
        let base_roles = roles.clone();
        apply_stored_changes(&store, &mut roles, &mut warnings)?;
        let registry: Option<Box<dyn RegisteredPorts>> = roles
            .file_registry()
            .cloned()
            .map(|r| Box::new(r) as Box<dyn RegisteredPorts>);
        let catalogue = match &config.attribution.app_catalogue {
            Some(path) => AppCatalogue::load(path)?,
            None => AppCatalogue::shipped()?,
        };
        let mut engine = ControlPlane {
            store,
            base_roles,
            roles,
            config,
            signatures,
            registry_from_roles: registry.is_some(),
            registry,
            index: AttributionIndex::default(),
            catalogue,
            devices: HashMap::new(),
            serial_to_udid: HashMap::new(),
            states: DeviceStateTimeline::default(),
            findings: HashMap::new(),
            counts: PairCounts::default(),
            stats: IngestStats::default(),
            warnings,
        };
        engine.reload_inventory()?;
        for (key, ev) in engine.store.device_states()? {
            engine.states.insert(&key, ev);
        }
        for f in engine.store.findings()? {
            engine.findings.insert(f.key.as_text(), f);
        }
        Ok(engine)
    }

    /// Uses `registry` (e.g. the dataplane's port registry) as the device default baseline.
    pub fn set_port_registry(&mut self, registry: Box<dyn RegisteredPorts>) {
        self.registry = Some(registry);
        self.registry_from_roles = false;
    }

    /// Builder form of [`set_port_registry`](Self::set_port_registry).
    pub fn with_port_registry(mut self, registry: impl RegisteredPorts + 'static) -> Self {
        self.set_port_registry(Box::new(registry));
        self
    }

    /// Replaces the role set in force (roles, file exceptions, `[registry]`; e.g. the roles file
    /// re-read on reload) without stopping ingestion: the pairings approved and the exceptions
    /// added through the API are re-applied from the store on top of `roles`, and the change is
    /// written to the audit log (`roles_replaced`, with the roles added, removed and kept).
    /// Findings, inventory and device state are untouched. A `[registry]` table in `roles`
    /// becomes the device default baseline unless one was set with
    /// [`set_port_registry`](Self::set_port_registry). Returns the audit id and the problems met
    /// re-applying stored changes (they did not stop the replacement).
    pub fn replace_roles(
        &mut self,
        mut roles: RoleSet,
        actor: &str,
        reason: &str,
    ) -> Result<(i64, Vec<String>), ControlError> {
        let names =
            |set: &RoleSet| -> Vec<String> { set.roles().iter().map(|r| r.name.clone()).collect() };
        let before = names(&self.roles);
        let after = names(&roles);
        let added: Vec<&String> = after.iter().filter(|n| !before.contains(n)).collect();
        let removed: Vec<&String> = before.iter().filter(|n| !after.contains(n)).collect();
        let entry = AuditEntry::new(
            actor,
            AuditAction::RolesReplaced,
            &roles.origin().display().to_string(),
            json!({
                "roles": after,
                "added": added,
                "removed": removed,
                "file_exceptions": roles.exceptions().len(),
                "registry": roles.file_registry().is_some(),
            }),
            reason,
        )?;
        let mut warnings = Vec::new();
        let base_roles = roles.clone();
        apply_stored_changes(&self.store, &mut roles, &mut warnings)?;
        let audit_id = self.store.append_audit(&entry)?;
        self.base_roles = base_roles;
        if self.registry.is_none() || self.registry_from_roles {
            self.registry = roles
                .file_registry()
                .cloned()
                .map(|r| Box::new(r) as Box<dyn RegisteredPorts>);
            self.registry_from_roles = self.registry.is_some();
        }
        self.roles = roles;
        Ok((audit_id, warnings))
    }

    /// Problems met while loading stored state (they did not stop the engine).
    pub fn startup_warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The roles in force (file, plus approved pairings and API exceptions).
    pub fn roles(&self) -> &RoleSet {
        &self.roles
    }

    /// The configuration.
    pub fn config(&self) -> &ControlConfig {
        &self.config
    }

    /// Counters since start.
    pub fn stats(&self) -> IngestStats {
        self.stats
    }

    /// A device by UDID.
    pub fn device(&self, udid: &str) -> Option<&Device> {
        self.devices.get(udid)
    }

    /// Number of devices known.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    fn reload_inventory(&mut self) -> Result<(), ControlError> {
        let devices = self.store.devices()?;
        self.devices.clear();
        self.serial_to_udid.clear();
        let mut macs = HashMap::new();
        for d in devices {
            if let Some(s) = &d.serial_number {
                self.serial_to_udid.insert(s.clone(), d.udid.clone());
            }
            if let Some(m) = &d.wifi_mac {
                macs.insert(m.clone(), d.udid.clone());
            }
            self.devices.insert(d.udid.clone(), d);
        }
        let bindings = self.store.inventory_bindings()?;
        let leases = self.store.leases()?;
        self.index.rebuild(bindings, &leases, &macs);
        Ok(())
    }

    // ------------------------------------------------------------------ inventory and state

    /// Imports inventory files (auto-detected; Graph `mobileApps` catalogues may be among them).
    /// Each device's record is replaced and the old one kept in history. `actor` is recorded in
    /// the audit log.
    pub fn import_inventory(
        &mut self,
        paths: &[PathBuf],
        actor: &str,
    ) -> Result<Vec<ImportSummary>, ControlError> {
        let batches = load_inventory_files_with(paths, &self.config.inventory)?;
        let mut summaries = Vec::with_capacity(batches.len());
        for batch in &batches {
            let entry = AuditEntry::new(
                actor,
                AuditAction::InventoryImported,
                &batch.path.display().to_string(),
                json!({"source": batch.source.as_str(), "devices": batch.devices.len(), "warnings": batch.warnings}),
                "inventory import",
            )?;
            summaries.push(self.store.import_inventory(batch, &entry)?);
        }
        self.reload_inventory()?;
        Ok(summaries)
    }

    /// Imports one inventory document held in memory (e.g. an API request body): JSON or plist,
    /// shape auto-detected as by [`import_inventory`](Self::import_inventory). Errors name the
    /// document as `request body`. Written to the audit log with `actor` and `reason`.
    pub fn import_inventory_bytes(
        &mut self,
        bytes: &[u8],
        actor: &str,
        reason: &str,
    ) -> Result<ImportSummary, ControlError> {
        let batch = parse_inventory_bytes_with(
            bytes,
            Path::new(INVENTORY_BYTES_ORIGIN),
            &self.config.inventory,
        )?;
        let entry = AuditEntry::new(
            actor,
            AuditAction::InventoryImported,
            INVENTORY_BYTES_ORIGIN,
            json!({
                "source": batch.source.as_str(),
                "devices": batch.devices.len(),
                "bytes": bytes.len(),
                "warnings": batch.warnings,
            }),
            reason,
        )?;
        let summary = self.store.import_inventory(&batch, &entry)?;
        self.reload_inventory()?;
        Ok(summary)
    }

    /// Imports a Kea lease CSV; leases join devices through their Wi-Fi MAC. Returns how many
    /// leases were new.
    pub fn import_leases(&mut self, path: &Path, actor: &str) -> Result<usize, ControlError> {
        let leases = load_kea_leases(path)?;
        let entry = AuditEntry::new(
            actor,
            AuditAction::LeasesImported,
            &path.display().to_string(),
            json!({"leases": leases.len()}),
            "DHCP lease import",
        )?;
        let added = self.store.import_leases(&leases, &entry)?;
        self.reload_inventory()?;
        Ok(added)
    }

    fn state_key(&self, ev: &DeviceStateEvent) -> String {
        if let Some(u) = &ev.udid {
            return u.clone();
        }
        match ev.serial_number.as_deref() {
            Some(s) => self
                .serial_to_udid
                .get(s)
                .cloned()
                .unwrap_or_else(|| serial_key(s)),
            None => String::new(),
        }
    }

    /// Stores device state events (from the API or a file) and makes them visible to scoring.
    pub fn ingest_device_states(
        &mut self,
        events: Vec<DeviceStateEvent>,
    ) -> Result<usize, ControlError> {
        let keyed: Vec<(String, DeviceStateEvent)> = events
            .into_iter()
            .map(|e| (self.state_key(&e), e))
            .filter(|(k, _)| !k.is_empty())
            .collect();
        self.store.insert_device_states(&keyed)?;
        let n = keyed.len();
        for (k, e) in keyed {
            self.states.insert(&k, e);
        }
        self.stats.device_states += n as u64;
        Ok(n)
    }

    /// Stores one device state event given as JSON (the API path); the error names the field.
    pub fn ingest_device_state_json(&mut self, value: &Value) -> Result<(), ControlError> {
        let ev = DeviceStateEvent::from_json(value).map_err(|message| DeviceStateError::Line {
            path: PathBuf::from("(api)"),
            line: 1,
            message,
        })?;
        self.ingest_device_states(vec![ev]).map(|_| ())
    }

    /// Reads a JSON-lines device state file and stores its events.
    pub fn import_device_states(&mut self, path: &Path) -> Result<usize, ControlError> {
        let events = load_device_states(path)?;
        self.ingest_device_states(events)
    }

    /// Remembers a DNS answer for attribution of later flows.
    pub fn ingest_dns(&mut self, answer: &DnsAnswer) {
        self.index.record_dns(answer, &self.config.attribution);
        self.stats.dns_answers += 1;
    }

    /// Feeds one EVE record: `flow` records are judged, `dns` answers remembered, others ignored.
    pub fn ingest_eve(&mut self, record: &Value) -> Result<Vec<Alert>, ControlError> {
        match EveInput::from_eve(record)? {
            EveInput::Flow(obs) => self.ingest_flow(&obs),
            EveInput::Dns(answer) => {
                self.ingest_dns(&answer);
                Ok(Vec::new())
            }
            EveInput::Ignored => Ok(Vec::new()),
        }
    }

    // ------------------------------------------------------------------ flows

    /// Judges one flow. A violation updates its finding, which is committed to the store (with
    /// any alert it raised) before this returns.
    pub fn ingest_flow(&mut self, obs: &FlowObservation) -> Result<Vec<Alert>, ControlError> {
        self.ingest_flows(std::slice::from_ref(obs))
    }

    /// Judges a batch of flows, committing all resulting findings and alerts in one transaction.
    pub fn ingest_flows(
        &mut self,
        observations: &[FlowObservation],
    ) -> Result<Vec<Alert>, ControlError> {
        let mut pending: HashMap<String, Finding> = HashMap::new();
        let mut alerts = Vec::new();
        let mut stats = self.stats;
        for obs in observations {
            if let Some((finding, alert)) = self.evaluate(obs, &pending, &mut stats) {
                pending.insert(finding.key.as_text(), finding);
                alerts.extend(alert);
            }
        }
        let mut findings: Vec<Finding> = pending.into_values().collect();
        self.store.save_findings(&mut findings, &mut alerts)?;
        for f in findings {
            self.findings.insert(f.key.as_text(), f);
        }
        stats.alerts += alerts.len() as u64;
        self.stats = stats;
        if self.counts.len() >= LEARNING_FLUSH_KEYS {
            self.flush()?;
        }
        Ok(alerts)
    }

    fn evaluate(
        &mut self,
        obs: &FlowObservation,
        pending: &HashMap<String, Finding>,
        stats: &mut IngestStats,
    ) -> Option<(Finding, Option<Alert>)> {
        stats.flows += 1;
        if !obs.is_classified() {
            stats.unclassified += 1;
            return None;
        }
        let cfg = &self.config;
        let app_proto = obs.app_proto.to_ascii_lowercase();
        let transport = obs.transport.to_ascii_uppercase();
        let at = obs.start_us;
        let dev_attr = self.index.device_at(obs.src_ip, at, &cfg.attribution);
        let device = dev_attr.as_ref().and_then(|a| self.devices.get(&a.udid));
        let mut keys: Vec<String> = Vec::new();
        if let Some(d) = device {
            keys.push(d.udid.clone());
            if let Some(s) = &d.serial_number {
                keys.push(serial_key(s));
            }
        }
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let general = self.states.state_at(&key_refs, at, None);
        let foreground = match general.lock_state {
            Some(LockState::Locked) => None,
            _ => general.foreground_bundle_id.as_deref(),
        };
        let app = self.index.attribute_app(
            &self.roles,
            &self.catalogue,
            obs,
            device,
            foreground,
            &cfg.attribution,
        );
        let state = self
            .states
            .state_at(&key_refs, at, app.bundle_id.as_deref());
        if cfg.learning.enabled {
            self.counts.record(
                app.role.as_deref().unwrap_or(DEVICE_DEFAULT),
                &app_proto,
                &transport,
                obs.dest_port,
                at,
                cfg.learning.bucket_s,
            );
        }
        let judgement = self.roles.judge(
            &PairingQuery {
                role: app.role.as_deref(),
                app_proto: &app_proto,
                transport: &transport,
                port: obs.dest_port,
                starttls: obs.starttls,
                dataplane_mismatch: obs.port_mismatch,
            },
            self.registry.as_deref(),
        );
        if judgement.approved {
            stats.approved += 1;
            return None;
        }
        stats.violations += 1;
        let exception = self.roles.matching_exception(&ExceptionQuery {
            udid: device.map(|d| d.udid.as_str()),
            serial_number: device.and_then(|d| d.serial_number.as_deref()),
            dest_ip: obs.dest_ip,
            server_name: app.server_name.as_deref(),
            port: obs.dest_port,
            app_proto: &app_proto,
            at_us: at,
        });
        let key = FindingKey {
            device: device.map_or_else(|| format!("ip:{}", obs.src_ip), |d| d.udid.clone()),
            subject: match (&app.bundle_id, &app.role) {
                (Some(b), _) => b.clone(),
                (None, Some(r)) => format!("role:{r}"),
                (None, None) => "-".to_string(),
            },
            app_proto: app_proto.clone(),
            destination: app
                .server_name
                .clone()
                .unwrap_or_else(|| obs.dest_ip.to_string()),
            port: obs.dest_port,
        };
        let key_text = key.as_text();
        let mut finding = pending
            .get(&key_text)
            .or_else(|| self.findings.get(&key_text))
            .cloned()
            .unwrap_or_else(|| Finding::open(key, judgement.kind, obs));
        finding.kind = judgement.kind;
        finding.record_session(
            obs,
            &state,
            cfg.scoring.interaction_window_s,
            cfg.scoring.window_s.saturating_mul(1_000_000),
        );
        finding.udid = device.map(|d| d.udid.clone());
        finding.serial_number = device.and_then(|d| d.serial_number.clone());
        finding.bundle_id = app.bundle_id.clone();
        finding.role = app.role.clone();
        finding.transport = transport.clone();
        let s = score(
            &cfg.scoring,
            &ScoreContext {
                finding: &finding,
                explanation: &judgement.explanation,
                device,
                app: &app,
                state: &state,
                exception,
            },
        );
        let device_conf = dev_attr.as_ref().map_or(1.0, |a| a.confidence);
        let confidence = match judgement.basis {
            BaselineBasis::Role => device_conf * app.confidence,
            _ => device_conf,
        };
        finding.score = s.value;
        finding.severity = s.severity;
        finding.reasons = s.reasons.clone();
        finding.confidence = confidence;
        finding.excepted_by = exception.map(|e| e.id.clone());
        if exception.is_some() {
            stats.excepted += 1;
            return Some((finding, None));
        }
        let raise = s.value >= cfg.scoring.alert_threshold
            && finding
                .alerted_severity
                .is_none_or(|prev| s.severity > prev);
        if !raise {
            return Some((finding, None));
        }
        let device_ctx = match (device, &dev_attr) {
            (Some(d), Some(a)) => DeviceContext::from_device(d, a.method, a.confidence),
            _ => DeviceContext::unknown(),
        };
        let activity = if finding.alerts == 0 {
            AlertActivity::Create
        } else {
            AlertActivity::Update
        };
        finding.alerted_severity = Some(s.severity);
        finding.alerts += 1;
        let signature = self
            .signatures
            .select(judgement.kind, &device_ctx, &app)
            .clone();
        let alert = Alert {
            id: 0,
            finding_id: finding.id,
            finding_key: key_text,
            ts_us: obs.end_us,
            activity,
            kind: judgement.kind,
            signature,
            severity: s.severity,
            score: s.value,
            confidence,
            reasons: s.reasons,
            flow: obs.clone(),
            device: device_ctx,
            app,
            baseline: BaselineContext {
                role: judgement
                    .baseline_role
                    .clone()
                    .unwrap_or_else(|| DEVICE_DEFAULT.to_string()),
                basis: judgement.basis,
                approved_ports: judgement.approved_ports.clone(),
                explanation: judgement.explanation.clone(),
            },
            device_state: state,
            persistence: PersistenceContext::from_finding(&finding),
        };
        Some((finding, Some(alert)))
    }

    /// Writes pending learning counts to the store.
    pub fn flush(&mut self) -> Result<(), ControlError> {
        let drained = self.counts.drain();
        if let Err(e) = self.store.add_learning_counts(&drained) {
            self.counts.restore(drained);
            return Err(e.into());
        }
        Ok(())
    }

    // ------------------------------------------------------------------ findings and alerts

    /// Every finding, highest score first.
    pub fn findings(&self) -> Vec<&Finding> {
        let mut all: Vec<&Finding> = self.findings.values().collect();
        all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        all
    }

    /// Every stored alert with its acknowledgement.
    pub fn alerts(&self) -> Result<Vec<StoredAlert>, ControlError> {
        Ok(self.store.alerts()?)
    }

    /// Acknowledges an alert (audited). False when it does not exist or is already acknowledged.
    pub fn acknowledge_alert(
        &mut self,
        alert_id: i64,
        actor: &str,
        note: &str,
    ) -> Result<bool, ControlError> {
        let entry = AuditEntry::new(
            actor,
            AuditAction::AlertAcknowledged,
            &alert_id.to_string(),
            json!({"alert_id": alert_id}),
            note,
        )?;
        Ok(self.store.acknowledge_alert(alert_id, &entry)?)
    }

    /// Closes an alert with a note (audited as `alert_closed`); an alert still open is
    /// acknowledged by the same act. See [`CloseOutcome`] for an unknown or already closed id.
    pub fn close_alert(
        &mut self,
        alert_id: i64,
        actor: &str,
        note: &str,
    ) -> Result<CloseOutcome, ControlError> {
        let entry = AuditEntry::new(
            actor,
            AuditAction::AlertClosed,
            &alert_id.to_string(),
            json!({"alert_id": alert_id}),
            note,
        )?;
        Ok(self.store.close_alert(alert_id, &entry)?)
    }

    /// Applies one triage act to an alert (escalate, comment, or undo an acknowledgement, closure,
    /// escalation or comment), audited under `actor` with `note` as the reason (a comment's text).
    pub fn triage_alert(
        &mut self,
        alert_id: i64,
        act: TriageAct,
        actor: &str,
        note: &str,
    ) -> Result<TriageOutcome, ControlError> {
        let (action, detail) = match act {
            TriageAct::Escalate => (AuditAction::AlertEscalated, json!({"alert_id": alert_id})),
            TriageAct::Comment => (AuditAction::AlertCommented, json!({"alert_id": alert_id})),
            TriageAct::UndoAcknowledge => (
                AuditAction::AlertUnacknowledged,
                json!({"alert_id": alert_id}),
            ),
            TriageAct::UndoClose => (AuditAction::AlertReopened, json!({"alert_id": alert_id})),
            TriageAct::UndoEscalate => {
                (AuditAction::AlertDeescalated, json!({"alert_id": alert_id}))
            }
            TriageAct::RetractComment(c) => (
                AuditAction::AlertCommentRetracted,
                json!({"alert_id": alert_id, "comment_id": c}),
            ),
        };
        let entry = AuditEntry::new(actor, action, &alert_id.to_string(), detail, note)?;
        let store = &mut self.store;
        Ok(match act {
            TriageAct::Escalate => store.escalate_alert(alert_id, &entry)?,
            TriageAct::Comment => store.comment_alert(alert_id, &entry)?,
            TriageAct::UndoAcknowledge => store.unacknowledge_alert(alert_id, &entry)?,
            TriageAct::UndoClose => store.reopen_alert(alert_id, &entry)?,
            TriageAct::UndoEscalate => store.deescalate_alert(alert_id, &entry)?,
            TriageAct::RetractComment(c) => store.retract_alert_comment(alert_id, c, &entry)?,
        })
    }

    /// Live escalations and comments, of one alert or of all, oldest first.
    pub fn triage_notes(&self, alert_id: Option<i64>) -> Result<Vec<TriageNote>, ControlError> {
        Ok(self.store.triage_notes(alert_id)?)
    }

    /// One stored alert with its acknowledgement and closure.
    pub fn alert(&self, alert_id: i64) -> Result<Option<StoredAlert>, ControlError> {
        Ok(self.store.alert(alert_id)?)
    }

    /// The audit log, oldest first.
    pub fn audit_log(&self) -> Result<Vec<AuditEntry>, ControlError> {
        Ok(self.store.audit_log()?)
    }

    // ------------------------------------------------------------------ learning and baselines

    /// Proposes a baseline per role (and for unattributed traffic, `device-default`) from the
    /// pairs counted in `[from_us, to_us)`. Nothing is approved by this.
    pub fn propose_baselines(
        &mut self,
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<BaselineProposal>, ControlError> {
        self.flush()?;
        let counts = self.store.learning_counts(from_us, to_us)?;
        let roles = &self.roles;
        let registry = self.registry.as_deref();
        let is_approved = |role: &str, proto: &str, transport: &str, port: u16| {
            let j = roles.judge(
                &PairingQuery {
                    role: (role != DEVICE_DEFAULT).then_some(role),
                    app_proto: proto,
                    transport,
                    port,
                    starttls: false,
                    dataplane_mismatch: None,
                },
                registry,
            );
            j.approved && j.basis != BaselineBasis::NoVerdict
        };
        let mut proposals = propose(
            &counts,
            from_us,
            to_us,
            self.config.learning.min_sessions,
            &is_approved,
        );
        self.mark_rejections(&mut proposals)?;
        Ok(proposals)
    }

    /// Approves pairings into `role`'s baseline (or `device-default`): an explicit act, written
    /// to the audit log with `actor` and `reason` in the same transaction. Returns the audit id.
    pub fn approve_baseline(
        &mut self,
        role: &str,
        pairings: &[ApprovedPairing],
        actor: &str,
        reason: &str,
    ) -> Result<i64, ControlError> {
        if role != DEVICE_DEFAULT && self.roles.role(role).is_none() {
            return Err(ControlError::Rejected(format!("unknown role `{role}`")));
        }
        if pairings.is_empty() {
            return Err(ControlError::Rejected("no pairings to approve".to_string()));
        }
        if let Some(p) = pairings
            .iter()
            .find(|p| p.port == 0 || p.app_proto.trim().is_empty())
        {
            return Err(ControlError::Rejected(format!(
                "invalid pairing {}/{}",
                p.app_proto, p.port
            )));
        }
        let entry = AuditEntry::new(
            actor,
            AuditAction::BaselineApproved,
            role,
            json!({"pairings": pairings}),
            reason,
        )?;
        let audit_id = self.store.approve_pairings(role, pairings, &entry)?;
        for p in pairings {
            self.roles.add_approved_rule(
                role,
                PortRule {
                    app_proto: p.app_proto.to_ascii_lowercase(),
                    transport: p.transport.as_deref().map(str::to_ascii_uppercase),
                    ports: vec![p.port],
                    starttls: p.starttls,
                },
            )?;
        }
        Ok(audit_id)
    }

    /// Defines a role, or redefines the role of that name (file or API), through the API: checked
    /// ([`Role::normalized`]), kept in the store with its audit entry (`role_defined`), and in
    /// force from the next verdict. Such definitions are applied on top of the roles file at
    /// every start and reload; pairings approved for the role stay in force. Returns the audit id.
    pub fn define_role(
        &mut self,
        role: Role,
        actor: &str,
        reason: &str,
    ) -> Result<i64, ControlError> {
        let role = role.normalized(Path::new("(api)"))?;
        let mut candidate = self.roles.clone();
        candidate.upsert_role(role.clone())?;
        let existed = self.roles.role(&role.name).is_some();
        let entry = AuditEntry::new(
            actor,
            AuditAction::RoleDefined,
            &role.name,
            json!({"role": role, "replaced": existed}),
            reason,
        )?;
        let audit_id = self
            .store
            .put_role_definition(&role.name, Some(&role), &entry)?;
        self.rebuild_roles()?;
        Ok(audit_id)
    }

    /// Deletes a role in force (from the file or the API), audited (`role_deleted`); the deletion
    /// is kept in the store and holds across reloads until the role is defined again. Its apps
    /// are then judged against the device default baseline. False when no such role is in force.
    pub fn delete_role(
        &mut self,
        name: &str,
        actor: &str,
        reason: &str,
    ) -> Result<bool, ControlError> {
        let Some(old) = self.roles.role(name).cloned() else {
            return Ok(false);
        };
        let entry = AuditEntry::new(
            actor,
            AuditAction::RoleDeleted,
            name,
            json!({"role": old}),
            reason,
        )?;
        self.store.put_role_definition(name, None, &entry)?;
        self.rebuild_roles()?;
        Ok(true)
    }

    /// Roles in force = the base set plus every change kept in the store.
    fn rebuild_roles(&mut self) -> Result<(), ControlError> {
        let mut roles = self.base_roles.clone();
        let mut warnings = Vec::new();
        apply_stored_changes(&self.store, &mut roles, &mut warnings)?;
        self.warnings.extend(warnings);
        self.roles = roles;
        Ok(())
    }

    /// Adds an exception (audited). Returns the audit id.
    pub fn add_exception(
        &mut self,
        rule: ExceptionRule,
        actor: &str,
        reason: &str,
    ) -> Result<i64, ControlError> {
        rule.validate(Path::new("(api)"))?;
        if self.roles.exceptions().iter().any(|e| e.id == rule.id) {
            return Err(ControlError::Rejected(format!(
                "exception `{}` already exists",
                rule.id
            )));
        }
        let entry = AuditEntry::new(
            actor,
            AuditAction::ExceptionAdded,
            &rule.id,
            serde_json::to_value(&rule).unwrap_or(Value::Null),
            reason,
        )?;
        let id = self.store.add_exception(&rule, &entry)?;
        self.roles.add_exception(rule)?;
        Ok(id)
    }

    /// Revokes an exception added through the API (audited). Exceptions from the roles file are
    /// changed by editing the file.
    pub fn revoke_exception(
        &mut self,
        id: &str,
        actor: &str,
        reason: &str,
    ) -> Result<bool, ControlError> {
        let entry = AuditEntry::new(
            actor,
            AuditAction::ExceptionRevoked,
            id,
            json!({"id": id}),
            reason,
        )?;
        if !self.store.revoke_exception(id, &entry)? {
            if self.roles.exceptions().iter().any(|e| e.id == id) {
                return Err(ControlError::Rejected(format!(
                    "exception `{id}` comes from the roles file {}; edit the file to remove it",
                    self.roles.origin().display()
                )));
            }
            return Ok(false);
        }
        self.roles.remove_exception(id);
        Ok(true)
    }

    /// The device holding `ip` at `at_us`, if any (for tools and tests).
    pub fn device_at(&self, ip: IpAddr, at_us: i64) -> Option<&Device> {
        self.index
            .device_at(ip, at_us, &self.config.attribution)
            .and_then(|a| self.devices.get(&a.udid))
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
        assert_eq!(cp.device_count(), 0);
    }
}
