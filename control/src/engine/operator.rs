//! Operator acts: imports (inventory, leases, device state), roles and their reload, baseline
//! approvals, exceptions, and learning proposals. Each change is written to the audit log with its
//! actor and reason in the same store transaction, and is in force for the next flow ingest judges.
//! Alert acts (acknowledge, close, triage) and the audit log are in [`super::triage`]; rejecting a
//! proposal in [`super::review`].
//!
//! Owns: [`Operator`]. Must not: judge flows or touch findings ([`super::Ingest`] does), parse formats
//! (the inventory, roles and device state modules do), or build SQL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::audit::{AuditAction, AuditEntry};
use crate::device_state::{load_device_states, DeviceStateError, DeviceStateEvent};
use crate::inventory::kea_leases::{load_kea_leases, LeaseImportSummary};
use crate::inventory::{
    load_inventory_files_with, parse_inventory_bytes_with, parse_inventory_documents_with,
};
use crate::learning::{propose, ApprovedPairing, BaselineProposal};
use crate::roles::{
    BaselineBasis, ExceptionRule, PairingQuery, PortRule, RegisteredPorts, Role, RoleSet,
    DEVICE_DEFAULT,
};
use crate::store::ImportSummary;

use super::core::{apply_stored_changes, ControlCore};
use super::{ControlError, INVENTORY_BYTES_ORIGIN};

/// The operator side of the control plane. Cheap to clone; every clone acts on the same core.
#[derive(Debug, Clone)]
pub struct Operator {
    pub(super) core: Arc<ControlCore>,
}

impl Operator {
    /// The shared core (store, roles, inventory, counters).
    pub fn core(&self) -> &Arc<ControlCore> {
        &self.core
    }

    /// Uses `registry` (e.g. the dataplane's port registry) as the device default baseline.
    pub fn set_port_registry(&self, registry: Box<dyn RegisteredPorts>) {
        self.core.set_port_registry(registry);
    }

    // ------------------------------------------------------------------ imports

    /// Imports inventory files (auto-detected; Graph `mobileApps` catalogues may be among them).
    /// Each device's record is replaced and the old one kept in history. `actor` is recorded in
    /// the audit log.
    pub fn import_inventory(
        &self,
        paths: &[PathBuf],
        actor: &str,
    ) -> Result<Vec<ImportSummary>, ControlError> {
        let batches = load_inventory_files_with(paths, &self.core.config().inventory)?;
        self.apply_inventory_batches(&batches, actor, "inventory import")
    }

    /// Imports inventory documents already read and parsed as JSON (a connector's pull: every
    /// page joined into one document per call, each named by its origin, e.g.
    /// `jamf:https://jamf.example.com/api/v2/mobile-devices/detail`), under the same merge rules
    /// and audit as files ([`import_inventory`](Self::import_inventory)); `reason` goes to the
    /// audit log.
    pub fn import_inventory_documents(
        &self,
        documents: Vec<(PathBuf, Value)>,
        actor: &str,
        reason: &str,
    ) -> Result<Vec<ImportSummary>, ControlError> {
        let batches = parse_inventory_documents_with(documents, &self.core.config().inventory)?;
        self.apply_inventory_batches(&batches, actor, reason)
    }

    /// Stores parsed batches, one audit entry each, and reloads the inventory.
    fn apply_inventory_batches(
        &self,
        batches: &[crate::inventory::InventoryBatch],
        actor: &str,
        reason: &str,
    ) -> Result<Vec<ImportSummary>, ControlError> {
        let mut st = self.core.lock()?;
        let mut summaries = Vec::with_capacity(batches.len());
        for batch in batches {
            let entry = AuditEntry::new(
                actor,
                AuditAction::InventoryImported,
                &batch.path.display().to_string(),
                json!({"source": batch.source.as_str(), "devices": batch.devices.len(), "warnings": batch.warnings}),
                reason,
            )?;
            summaries.push(st.store.import_inventory(batch, &entry)?);
        }
        st.reload_inventory()?;
        Ok(summaries)
    }

    /// Imports one inventory document held in memory (e.g. an API request body): JSON or plist,
    /// shape auto-detected as by [`import_inventory`](Self::import_inventory). Errors name the
    /// document as `request body`. Written to the audit log with `actor` and `reason`.
    pub fn import_inventory_bytes(
        &self,
        bytes: &[u8],
        actor: &str,
        reason: &str,
    ) -> Result<ImportSummary, ControlError> {
        let batch = parse_inventory_bytes_with(
            bytes,
            Path::new(INVENTORY_BYTES_ORIGIN),
            &self.core.config().inventory,
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
        let mut st = self.core.lock()?;
        let summary = st.store.import_inventory(&batch, &entry)?;
        st.reload_inventory()?;
        Ok(summary)
    }

    /// Imports a Kea lease CSV (DHCPv4 or DHCPv6); leases join devices through their Wi-Fi MAC.
    /// Returns what the import added, ended and skipped.
    pub fn import_leases(
        &self,
        path: &Path,
        actor: &str,
    ) -> Result<LeaseImportSummary, ControlError> {
        let file = load_kea_leases(path)?;
        let entry = AuditEntry::new(
            actor,
            AuditAction::LeasesImported,
            &path.display().to_string(),
            json!({
                "rows": file.rows,
                "leases": file.leases.len(),
                "ended": file.ended.len(),
                "skipped": file.skipped.len(),
            }),
            "DHCP lease import",
        )?;
        let mut st = self.core.lock()?;
        let (added, ended) = st.store.import_leases(&file, &entry)?;
        st.reload_inventory()?;
        Ok(LeaseImportSummary {
            rows: file.rows,
            added,
            unchanged: file.leases.len() - added,
            ended,
            skipped: file.skipped,
        })
    }

    /// Stores device state events (from the API or a file) and makes them visible to scoring.
    pub fn ingest_device_states(
        &self,
        events: Vec<DeviceStateEvent>,
    ) -> Result<usize, ControlError> {
        let mut st = self.core.lock()?;
        let keyed: Vec<(String, DeviceStateEvent)> = events
            .into_iter()
            .map(|e| (st.state_key(&e), e))
            .filter(|(k, _)| !k.is_empty())
            .collect();
        st.store.insert_device_states(&keyed)?;
        let n = keyed.len();
        for (k, e) in keyed {
            st.inventory.states.insert(&k, e);
        }
        st.stats.device_states += n as u64;
        Ok(n)
    }

    /// Stores one device state event given as JSON (the API path); the error names the field.
    pub fn ingest_device_state_json(&self, value: &Value) -> Result<(), ControlError> {
        let ev = DeviceStateEvent::from_json(value).map_err(|message| DeviceStateError::Line {
            path: PathBuf::from("(api)"),
            line: 1,
            message,
        })?;
        self.ingest_device_states(vec![ev]).map(|_| ())
    }

    /// Reads a JSON-lines device state file and stores its events.
    pub fn import_device_states(&self, path: &Path) -> Result<usize, ControlError> {
        let events = load_device_states(path)?;
        self.ingest_device_states(events)
    }

    // ------------------------------------------------------------------ roles

    /// Replaces the role set in force (roles, file exceptions, `[registry]`; e.g. the roles file
    /// re-read on reload) without stopping ingestion: the pairings approved and the exceptions
    /// added through the API are re-applied from the store on top of `roles`, and the change is
    /// written to the audit log (`roles_replaced`, with the roles added, removed and kept).
    /// Findings, inventory and device state are untouched. A `[registry]` table in `roles`
    /// becomes the device default baseline unless one was set with
    /// [`set_port_registry`](Self::set_port_registry). Returns the audit id and the problems met
    /// re-applying stored changes (they did not stop the replacement).
    pub fn replace_roles(
        &self,
        mut roles: RoleSet,
        actor: &str,
        reason: &str,
    ) -> Result<(i64, Vec<String>), ControlError> {
        let names =
            |set: &RoleSet| -> Vec<String> { set.roles().iter().map(|r| r.name.clone()).collect() };
        let mut st = self.core.lock()?;
        let before = names(&st.policy.roles);
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
        apply_stored_changes(&st.store, &mut roles, &mut warnings)?;
        let audit_id = st.store.append_audit(&entry)?;
        let policy = &mut st.policy;
        policy.base_roles = base_roles;
        if policy.registry.is_none() || policy.registry_from_roles {
            policy.registry = roles
                .file_registry()
                .cloned()
                .map(|r| Box::new(r) as Box<dyn RegisteredPorts>);
            policy.registry_from_roles = policy.registry.is_some();
        }
        policy.roles = roles;
        Ok((audit_id, warnings))
    }

    /// Defines a role, or redefines the role of that name (file or API), through the API: checked
    /// ([`Role::normalized`]), kept in the store with its audit entry (`role_defined`), and in
    /// force from the next verdict. Such definitions are applied on top of the roles file at
    /// every start and reload; pairings approved for the role stay in force. Returns the audit id.
    pub fn define_role(&self, role: Role, actor: &str, reason: &str) -> Result<i64, ControlError> {
        let role = role.normalized(Path::new("(api)"))?;
        let mut st = self.core.lock()?;
        let mut candidate = st.policy.roles.clone();
        candidate.upsert_role(role.clone())?;
        let existed = st.policy.roles.role(&role.name).is_some();
        let entry = AuditEntry::new(
            actor,
            AuditAction::RoleDefined,
            &role.name,
            json!({"role": role, "replaced": existed}),
            reason,
        )?;
        let audit_id = st
            .store
            .put_role_definition(&role.name, Some(&role), &entry)?;
        st.rebuild_roles()?;
        Ok(audit_id)
    }

    /// Deletes a role in force (from the file or the API), audited (`role_deleted`); the deletion
    /// is kept in the store and holds across reloads until the role is defined again. Its apps
    /// are then judged against the device default baseline. False when no such role is in force.
    pub fn delete_role(&self, name: &str, actor: &str, reason: &str) -> Result<bool, ControlError> {
        let mut st = self.core.lock()?;
        let Some(old) = st.policy.roles.role(name).cloned() else {
            return Ok(false);
        };
        let entry = AuditEntry::new(
            actor,
            AuditAction::RoleDeleted,
            name,
            json!({"role": old}),
            reason,
        )?;
        st.store.put_role_definition(name, None, &entry)?;
        st.rebuild_roles()?;
        Ok(true)
    }

    // ------------------------------------------------------------------ baselines and exceptions

    /// Proposes a baseline per role (and for unattributed traffic, `device-default`) from the
    /// pairs counted in `[from_us, to_us)`. Nothing is approved by this.
    pub fn propose_baselines(
        &self,
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<BaselineProposal>, ControlError> {
        let mut st = self.core.lock()?;
        st.flush()?;
        let counts = st.store.learning_counts(from_us, to_us)?;
        let roles = &st.policy.roles;
        let registry = st.policy.registry.as_deref();
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
            self.core.config().learning.min_sessions,
            &is_approved,
        );
        super::review::mark_rejections(&st.store, &mut proposals)?;
        Ok(proposals)
    }

    /// Approves pairings into `role`'s baseline (or `device-default`): an explicit act, written
    /// to the audit log with `actor` and `reason` in the same transaction. Returns the audit id.
    pub fn approve_baseline(
        &self,
        role: &str,
        pairings: &[ApprovedPairing],
        actor: &str,
        reason: &str,
    ) -> Result<i64, ControlError> {
        let mut st = self.core.lock()?;
        super::review::check_pairings(&st.policy.roles, role, pairings, "approve")?;
        let entry = AuditEntry::new(
            actor,
            AuditAction::BaselineApproved,
            role,
            json!({"pairings": pairings}),
            reason,
        )?;
        let audit_id = st.store.approve_pairings(role, pairings, &entry)?;
        for p in pairings {
            st.policy.roles.add_approved_rule(
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

    /// Adds an exception (audited). Returns the audit id.
    pub fn add_exception(
        &self,
        rule: ExceptionRule,
        actor: &str,
        reason: &str,
    ) -> Result<i64, ControlError> {
        rule.validate(Path::new("(api)"))?;
        let mut st = self.core.lock()?;
        if st.policy.roles.exceptions().iter().any(|e| e.id == rule.id) {
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
        let id = st.store.add_exception(&rule, &entry)?;
        st.policy.roles.add_exception(rule)?;
        Ok(id)
    }

    /// Revokes an exception added through the API (audited). Exceptions from the roles file are
    /// changed by editing the file.
    pub fn revoke_exception(
        &self,
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
        let mut st = self.core.lock()?;
        if !st.store.revoke_exception(id, &entry)? {
            let roles = &st.policy.roles;
            if roles.exceptions().iter().any(|e| e.id == id) {
                return Err(ControlError::Rejected(format!(
                    "exception `{id}` comes from the roles file {}; edit the file to remove it",
                    roles.origin().display()
                )));
            }
            return Ok(false);
        }
        st.policy.roles.remove_exception(id);
        Ok(true)
    }
}
