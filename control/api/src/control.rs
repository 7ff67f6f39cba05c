//! What the admin API adds on top of the daemon's [`Operator`]: request validation that the engine
//! does not do (role names, pairing lists), the mapping of engine errors to HTTP problem categories
//! ([`ControlError`], also through `From` for routes that call the [`Operator`] directly), uploaded
//! inventory documents (kept next to the store for the record), closures written by earlier versions of
//! this crate (table `api_alert_closures`, read only), and where the roles come from when they are
//! reloaded. Plain reads and acts with nothing to add (devices, device state, roles in force, proposals,
//! the audit log) are not mirrored here: routes call [`ControlHandle::operator`].
//!
//! Every change goes through the operator side with the caller's identity and reason. Methods block (SQLite
//! and the core's lock); handlers call them on the blocking pool. This module must not decide verdicts or scores.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use portolan_control::engine::{
    ControlConfig, ControlCore, ControlError as EngineError, ControlPlane, CoreState, Ingest,
    Operator, TriageAct,
};
use portolan_control::inventory::InventoryError;
use portolan_control::learning::ApprovedPairing;
use portolan_control::roles::{
    ExceptionRule, RegisteredPorts, Role, RoleSet, RolesError, DEVICE_DEFAULT,
};
pub use portolan_control::store::AlertClosure;
use portolan_control::store::{
    CloseOutcome, ImportSummary, Store, StoreError, StoredAlert, TriageNote, TriageOutcome,
};
use rusqlite::Connection;

/// A control-plane operation that failed, classified for the HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No such device, role, exception, proposal or alert.
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The request is invalid; `field` names the part at fault.
    #[error("{message}")]
    Invalid {
        /// The field at fault.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// Well-formed but unusable content (an inventory of unknown shape, an unusable roles file).
    #[error("{message}")]
    Unprocessable {
        /// The field at fault.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The engine or the store failed.
    #[error("{0}")]
    Internal(String),
}

impl ControlError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ControlError::Invalid {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        ControlError::Internal(e.to_string())
    }
}

/// Classifies an engine error; `reason_field` names the request field an empty reason came from.
fn classify(e: EngineError, reason_field: &str) -> ControlError {
    match e {
        EngineError::Inventory(InventoryError::Syntax {
            line,
            column,
            message,
            ..
        }) => ControlError::Invalid {
            field: None,
            message: if line > 0 {
                format!("line {line}, column {column}: {message}")
            } else {
                message
            },
        },
        EngineError::Inventory(InventoryError::Field { error, .. }) => {
            ControlError::Unprocessable {
                message: format!("field `{}`: {}", error.field, error.message),
                field: Some(error.field),
            }
        }
        EngineError::Inventory(InventoryError::UnknownShape { message, .. }) => {
            ControlError::Unprocessable {
                field: None,
                message: format!("not a supported inventory: {message}"),
            }
        }
        EngineError::Inventory(InventoryError::Limit { message, .. }) => ControlError::Invalid {
            field: None,
            message,
        },
        EngineError::Inventory(InventoryError::Io { source, .. }) => ControlError::internal(source),
        EngineError::Inventory(other) => ControlError::Unprocessable {
            field: None,
            message: other.to_string(),
        },
        EngineError::Roles(RolesError::Invalid { field, message, .. }) => {
            // `exception[<id>].reason` → `reason`: a request body holds one record.
            let field = field
                .split_once("].")
                .map(|(_, f)| f.to_string())
                .unwrap_or_else(|| field.trim_start_matches("exception.").to_string());
            ControlError::Invalid {
                field: Some(field),
                message,
            }
        }
        EngineError::Audit(a) => ControlError::invalid(
            if a.field == "reason" {
                reason_field
            } else {
                a.field
            },
            a.to_string(),
        ),
        EngineError::DeviceState(d) => ControlError::Invalid {
            field: None,
            message: d.to_string(),
        },
        EngineError::Setting(s) => ControlError::Invalid {
            field: Some(s.field),
            message: s.message,
        },
        EngineError::Rejected(m) => ControlError::Conflict(m),
        EngineError::Store(StoreError::Sqlite {
            op,
            source: rusqlite::Error::SqliteFailure(f, _),
            ..
        }) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
            ControlError::Conflict(format!(
                "{op}: conflicts with a stored record (ids of revoked records cannot be reused)"
            ))
        }
        other => ControlError::internal(other),
    }
}

/// Engine errors reach the API through [`Operator`] calls made directly by the routes: classified as
/// `classify` does, an empty reason naming the request's `reason` field.
impl From<EngineError> for ControlError {
    fn from(e: EngineError) -> Self {
        classify(e, "reason")
    }
}

/// An alert with its acknowledgement and closure.
#[derive(Debug, Clone)]
pub struct AlertRecord {
    /// The stored alert and its acknowledgement.
    pub stored: StoredAlert,
    /// Its closure, if closed.
    pub closure: Option<AlertClosure>,
    /// Its live escalation and comments, oldest first.
    pub triage: Vec<TriageNote>,
}

/// Where the roles come from on (re)load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolesSource {
    /// The shipped defaults.
    Shipped,
    /// A roles TOML file.
    File(PathBuf),
}

impl RolesSource {
    /// Loads the role set.
    pub fn load(&self) -> Result<RoleSet, RolesError> {
        match self {
            RolesSource::Shipped => RoleSet::shipped_defaults(),
            RolesSource::File(path) => RoleSet::load(path),
        }
    }
}

/// Makes the device default baseline (the dataplane's port registry) for a rebuilt engine.
pub type RegistryFactory = Arc<dyn Fn() -> Box<dyn RegisteredPorts> + Send + Sync>;

/// How to rebuild the engine on reload.
#[derive(Clone)]
pub struct ReloadPlan {
    /// Where the roles come from.
    pub roles: RolesSource,
    /// The engine's configuration.
    pub config: ControlConfig,
    /// The device default baseline to install in the rebuilt engine, if the daemon set one.
    pub registry: Option<RegistryFactory>,
}

impl std::fmt::Debug for ReloadPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadPlan")
            .field("roles", &self.roles)
            .field("registry", &self.registry.is_some())
            .finish_non_exhaustive()
    }
}

/// What a reload produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Roles defined.
    pub roles: usize,
    /// Exceptions in force (file and API).
    pub exceptions: usize,
    /// Problems met while applying stored pairings and exceptions.
    pub warnings: Vec<String>,
}

struct Inner {
    operator: Operator,
    store_path: PathBuf,
    /// The API's own connection: closures written by earlier versions (`api_alert_closures`).
    side: Mutex<Connection>,
    uploads: PathBuf,
    plan: ReloadPlan,
    file_exceptions: Mutex<Vec<String>>,
}

/// Cheap-to-clone handle on the control plane for the admin API.
#[derive(Clone)]
pub struct ControlHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ControlHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlHandle")
            .field("store", &self.inner.store_path)
            .field("plan", &self.inner.plan)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, ControlError> {
    m.lock()
        .map_err(|_| ControlError::Internal("control-plane lock poisoned".to_string()))
}

fn file_exception_ids(roles: &RolesSource) -> Vec<String> {
    roles
        .load()
        .map(|set| set.exceptions().iter().map(|e| e.id.clone()).collect())
        .unwrap_or_default()
}

impl ControlHandle {
    /// A handle over the daemon's control plane, through its operator side. `plan` says how to
    /// rebuild it on reload.
    pub fn new(operator: Operator, plan: ReloadPlan) -> Result<Self, ControlError> {
        let store_path = operator
            .core()
            .lock()
            .map_err(|e| classify(e, "reason"))?
            .store()
            .path()
            .to_path_buf();
        let conn = crate::db::open(&store_path)
            .map_err(|e| ControlError::Internal(format!("{}: {e}", store_path.display())))?;
        let uploads = store_path
            .parent()
            .map(|d| d.join(portolan_control::store::UPLOADS_DIR))
            .unwrap_or_else(|| PathBuf::from(portolan_control::store::UPLOADS_DIR));
        let file_exceptions = file_exception_ids(&plan.roles);
        Ok(Self {
            inner: Arc::new(Inner {
                operator,
                store_path,
                side: Mutex::new(conn),
                uploads,
                plan,
                file_exceptions: Mutex::new(file_exceptions),
            }),
        })
    }

    /// Opens the store at `store_path` and builds a control plane over it (for tools and tests; the
    /// daemon hands its own operator side to [`ControlHandle::new`]). Returns the handle and the
    /// ingest side, which feeds flows to the same core.
    pub fn open(store_path: &Path, plan: ReloadPlan) -> Result<(Self, Ingest), ControlError> {
        let store = Store::open(store_path).map_err(ControlError::internal)?;
        let roles = plan.roles.load().map_err(ControlError::internal)?;
        let cp =
            ControlPlane::new(store, roles, plan.config.clone()).map_err(ControlError::internal)?;
        if let Some(make) = &plan.registry {
            cp.operator.set_port_registry(make());
        }
        let ControlPlane { ingest, operator } = cp;
        Ok((Self::new(operator, plan)?, ingest))
    }

    /// The operator side of the control plane.
    pub fn operator(&self) -> &Operator {
        &self.inner.operator
    }

    /// The shared core of the control plane (store, roles, inventory, counters).
    pub fn core(&self) -> &Arc<ControlCore> {
        self.inner.operator.core()
    }

    fn op(&self) -> &Operator {
        &self.inner.operator
    }

    /// The shared state, locked (reads that span several of its parts).
    fn core_lock(&self) -> Result<MutexGuard<'_, CoreState>, ControlError> {
        self.core()
            .lock()
            .map_err(|_| ControlError::Internal("control-plane lock poisoned".to_string()))
    }

    /// Re-reads the roles (file or shipped defaults) and puts them in force without stopping ingestion:
    /// approved pairings and API exceptions are re-applied from the store, findings and inventory stay, and
    /// the replacement is audited under `actor` with `reason`. On failure the roles in force are kept.
    pub fn reload(&self, actor: &str, reason: &str) -> Result<ReloadReport, ControlError> {
        let plan = &self.inner.plan;
        let roles = plan.roles.load().map_err(|e| ControlError::Unprocessable {
            field: None,
            message: format!("roles not reloaded: {e}"),
        })?;
        let file_exceptions: Vec<String> =
            roles.exceptions().iter().map(|e| e.id.clone()).collect();
        let (_, warnings) = self
            .op()
            .replace_roles(roles, actor, reason)
            .map_err(|e| classify(e, "reason"))?;
        let core = self.core_lock()?;
        let report = ReloadReport {
            roles: core.roles().roles().len(),
            exceptions: core.roles().exceptions().len(),
            warnings,
        };
        drop(core);
        *lock(&self.inner.file_exceptions)? = file_exceptions;
        Ok(report)
    }

    // ------------------------------------------------------------------ inventory and devices

    /// Keeps an uploaded document next to the store (mode 0600) and returns its path.
    fn keep_upload(&self, body: &[u8], actor_token: i64) -> Result<PathBuf, ControlError> {
        let io = |e: std::io::Error| {
            ControlError::Internal(format!("{}: {e}", self.inner.uploads.display()))
        };
        std::fs::create_dir_all(&self.inner.uploads).map_err(io)?;
        let stamp =
            portolan_control::timestamp::format_rfc3339(portolan_control::timestamp::now_us())
                .replace([':', '.'], "");
        let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
        let ext = if body.starts_with(b"bplist") || first == Some(b'<') {
            "plist"
        } else {
            "json"
        };
        for n in 0..1000u32 {
            let path = self
                .inner
                .uploads
                .join(format!("inventory-{stamp}-token{actor_token}-{n}.{ext}"));
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            match opts.open(&path) {
                Ok(mut f) => {
                    f.write_all(body).map_err(io)?;
                    f.sync_all().map_err(io)?;
                    return Ok(path);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(e)),
            }
        }
        Err(ControlError::Internal(
            "no free upload file name".to_string(),
        ))
    }

    /// Imports an inventory document (Jamf, Graph or Apple MDM; JSON or plist), audited under `actor`.
    /// The document is kept in `api-uploads/` beside the store; the audit reason names that file.
    pub fn import_inventory(
        &self,
        body: &[u8],
        actor: &str,
        token_id: i64,
    ) -> Result<ImportSummary, ControlError> {
        let path = self.keep_upload(body, token_id)?;
        // The audit log is readable by viewers: name the kept file, not the server's directories.
        let kept = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let reason = format!("inventory upload through the admin API, kept as api-uploads/{kept}");
        let result = self.op().import_inventory_bytes(body, actor, &reason);
        result.map_err(|e| {
            // A refused document is not kept.
            let _ = std::fs::remove_file(&path);
            classify(e, "reason")
        })
    }

    // ------------------------------------------------------------------ roles, baselines, exceptions

    /// Defines (or redefines) a role, audited with `reason`; in force from the next verdict and kept in the
    /// store across reloads and restarts. Returns the role as now in force.
    pub fn define_role(&self, role: Role, actor: &str, reason: &str) -> Result<Role, ControlError> {
        if role.name == DEVICE_DEFAULT {
            return Err(ControlError::Conflict(format!(
                "`{DEVICE_DEFAULT}` is the baseline of unattributed traffic, not a role; approve pairings \
                 into it with POST /api/v1/roles/{DEVICE_DEFAULT}/baseline"
            )));
        }
        let name = role.name.clone();
        self.op()
            .define_role(role, actor, reason)
            .map_err(|e| classify(e, "reason"))?;
        self.core_lock()?
            .roles()
            .role(&name)
            .cloned()
            .ok_or_else(|| {
                ControlError::Internal(format!("role {name:?} not in force after definition"))
            })
    }

    /// Deletes a role in force, audited with `reason`.
    pub fn delete_role(&self, name: &str, actor: &str, reason: &str) -> Result<(), ControlError> {
        match self.op().delete_role(name, actor, reason) {
            Ok(true) => Ok(()),
            Ok(false) => Err(ControlError::NotFound(format!("no role named {name:?}"))),
            Err(e) => Err(classify(e, "reason")),
        }
    }

    /// Approves pairings into `role`'s baseline (or `device-default`), audited; applies to the next verdict.
    pub fn approve_pairings(
        &self,
        role: &str,
        pairings: &[ApprovedPairing],
        actor: &str,
        reason: &str,
    ) -> Result<(), ControlError> {
        for (i, p) in pairings.iter().enumerate() {
            if crate::problem::is_blank(&p.app_proto) || p.app_proto.chars().count() > 64 {
                return Err(ControlError::invalid(
                    format!("pairings[{i}].app_proto"),
                    "must be 1 to 64 characters",
                ));
            }
            if p.port == 0 {
                return Err(ControlError::invalid(
                    format!("pairings[{i}].port"),
                    "must be 1 to 65535",
                ));
            }
            if let Some(t) = &p.transport {
                if !t.eq_ignore_ascii_case("tcp") && !t.eq_ignore_ascii_case("udp") {
                    return Err(ControlError::invalid(
                        format!("pairings[{i}].transport"),
                        "must be TCP or UDP",
                    ));
                }
            }
        }
        if pairings.is_empty() {
            return Err(ControlError::invalid(
                "pairings",
                "at least one pairing is required",
            ));
        }
        if role != DEVICE_DEFAULT && self.core_lock()?.roles().role(role).is_none() {
            return Err(ControlError::NotFound(format!("no role named {role:?}")));
        }
        self.op()
            .approve_baseline(role, pairings, actor, reason)
            .map(|_| ())
            .map_err(|e| classify(e, "reason"))
    }

    /// Rejects pairings proposed for `role` (or `device-default`), stored and audited; they are not
    /// proposed again and no verdict changes.
    pub fn reject_pairings(
        &self,
        role: &str,
        pairings: &[ApprovedPairing],
        actor: &str,
        reason: &str,
    ) -> Result<(), ControlError> {
        if role != DEVICE_DEFAULT && self.core_lock()?.roles().role(role).is_none() {
            return Err(ControlError::NotFound(format!("no role named {role:?}")));
        }
        self.op()
            .reject_proposal(role, pairings, actor, reason)
            .map(|_| ())
            .map_err(|e| classify(e, "reason"))
    }

    /// Whether the exception `id` comes from the roles file.
    pub fn is_file_exception(&self, id: &str) -> Result<bool, ControlError> {
        Ok(lock(&self.inner.file_exceptions)?.iter().any(|e| e == id))
    }

    /// Adds an exception (validated, unique id), audited.
    pub fn add_exception(&self, rule: ExceptionRule, actor: &str) -> Result<(), ControlError> {
        if self
            .core_lock()?
            .roles()
            .exceptions()
            .iter()
            .any(|e| e.id == rule.id)
        {
            return Err(ControlError::Conflict(format!(
                "an exception with id {:?} exists",
                rule.id
            )));
        }
        let reason = rule.reason.clone();
        self.op()
            .add_exception(rule, actor, &reason)
            .map(|_| ())
            .map_err(|e| classify(e, "reason"))
    }

    /// Revokes an exception added through the API, audited.
    pub fn revoke_exception(
        &self,
        id: &str,
        actor: &str,
        reason: &str,
    ) -> Result<(), ControlError> {
        if self.is_file_exception(id)? {
            return Err(ControlError::Conflict(format!(
                "exception {id:?} is defined in the roles file; remove it there and reload"
            )));
        }
        match self.op().revoke_exception(id, actor, reason) {
            Ok(true) => Ok(()),
            Ok(false) => Err(ControlError::NotFound(format!(
                "no exception with id {id:?} in force"
            ))),
            Err(e) => Err(classify(e, "reason")),
        }
    }

    // ------------------------------------------------------------------ alerts and audit

    /// Closures recorded by earlier versions of this crate, by alert id.
    fn legacy_closures(&self) -> Result<HashMap<i64, AlertClosure>, ControlError> {
        let side = lock(&self.inner.side)?;
        let read = || -> rusqlite::Result<HashMap<i64, AlertClosure>> {
            let mut stmt =
                side.prepare("SELECT alert_id, ts_us, actor, note FROM api_alert_closures")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    AlertClosure {
                        ts_us: r.get(1)?,
                        actor: r.get(2)?,
                        note: r.get(3)?,
                    },
                ))
            })?;
            rows.collect()
        };
        read().map_err(ControlError::internal)
    }

    fn record(
        stored: StoredAlert,
        legacy: &mut HashMap<i64, AlertClosure>,
        notes: &mut HashMap<i64, Vec<TriageNote>>,
    ) -> AlertRecord {
        let old = legacy.remove(&stored.alert.id);
        let closure = stored.closure.clone().or(old);
        let triage = notes.remove(&stored.alert.id).unwrap_or_default();
        AlertRecord {
            stored,
            closure,
            triage,
        }
    }

    fn notes_by_alert(notes: Vec<TriageNote>) -> HashMap<i64, Vec<TriageNote>> {
        let mut by: HashMap<i64, Vec<TriageNote>> = HashMap::new();
        for n in notes {
            by.entry(n.alert_id).or_default().push(n);
        }
        by
    }

    /// Every alert with its acknowledgement and closure, oldest first.
    pub fn alerts(&self) -> Result<Vec<AlertRecord>, ControlError> {
        let (stored, notes) = {
            let engine = self.op();
            let stored = engine.alerts().map_err(ControlError::internal)?;
            let notes = engine.triage_notes(None).map_err(ControlError::internal)?;
            (stored, notes)
        };
        let mut legacy = self.legacy_closures()?;
        let mut notes = Self::notes_by_alert(notes);
        Ok(stored
            .into_iter()
            .map(|s| Self::record(s, &mut legacy, &mut notes))
            .collect())
    }

    /// One alert.
    pub fn alert(&self, id: i64) -> Result<AlertRecord, ControlError> {
        let (stored, notes) = {
            let engine = self.op();
            let stored = engine
                .alert(id)
                .map_err(ControlError::internal)?
                .ok_or_else(|| ControlError::NotFound(format!("no alert with id {id}")))?;
            let notes = engine
                .triage_notes(Some(id))
                .map_err(ControlError::internal)?;
            (stored, notes)
        };
        let mut notes = Self::notes_by_alert(notes);
        Ok(Self::record(
            stored,
            &mut self.legacy_closures()?,
            &mut notes,
        ))
    }

    /// One finding.
    pub fn finding(&self, id: i64) -> Result<portolan_control::findings::Finding, ControlError> {
        self.op()
            .finding(id)
            .map_err(ControlError::internal)?
            .ok_or_else(|| ControlError::NotFound(format!("no finding with id {id}")))
    }

    /// Acknowledges an alert with a note, audited.
    pub fn acknowledge(
        &self,
        id: i64,
        actor: &str,
        note: &str,
    ) -> Result<AlertRecord, ControlError> {
        let current = self.alert(id)?;
        if current.stored.ack.is_some() {
            return Err(ControlError::Conflict(format!(
                "alert {id} is already acknowledged"
            )));
        }
        match self.op().acknowledge_alert(id, actor, note) {
            Ok(true) => {}
            Ok(false) => {
                return Err(ControlError::Conflict(format!(
                    "alert {id} is already acknowledged"
                )))
            }
            Err(e) => return Err(classify(e, "note")),
        }
        self.alert(id)
    }

    /// Closes an alert with a note (the engine acknowledges it too when it was open); audited.
    pub fn close(&self, id: i64, actor: &str, note: &str) -> Result<AlertRecord, ControlError> {
        let current = self.alert(id)?;
        if current.closure.is_some() {
            return Err(ControlError::Conflict(format!(
                "alert {id} is already closed"
            )));
        }
        match self.op().close_alert(id, actor, note) {
            Ok(CloseOutcome::Closed { .. }) => {}
            Ok(CloseOutcome::AlreadyClosed) => {
                return Err(ControlError::Conflict(format!(
                    "alert {id} is already closed"
                )))
            }
            Ok(CloseOutcome::NotFound) => {
                return Err(ControlError::NotFound(format!("no alert with id {id}")))
            }
            Err(e) => return Err(classify(e, "note")),
        }
        self.alert(id)
    }

    /// Escalates, comments on, or undoes a triage act on an alert, audited under `actor` with `note`;
    /// returns the alert as it now stands. A change with nothing to do is a conflict.
    pub fn triage(
        &self,
        id: i64,
        act: TriageAct,
        actor: &str,
        note: &str,
    ) -> Result<AlertRecord, ControlError> {
        let current = self.alert(id)?;
        if matches!(act, TriageAct::UndoAcknowledge | TriageAct::UndoClose)
            && self.legacy_closures()?.contains_key(&id)
        {
            return Err(ControlError::Conflict(format!(
                "alert {id} was closed by an earlier version; its closure cannot be undone"
            )));
        }
        let outcome = self
            .op()
            .triage_alert(id, act, actor, note)
            .map_err(|e| classify(e, "note"))?;
        match outcome {
            TriageOutcome::Done(_) => self.alert(id),
            TriageOutcome::NotFound => Err(ControlError::NotFound(match act {
                TriageAct::RetractComment(c) => format!("alert {id} has no comment {c}"),
                _ => format!("no alert with id {id}"),
            })),
            TriageOutcome::Unchanged => Err(ControlError::Conflict(match act {
                TriageAct::Escalate => format!("alert {id} is already escalated"),
                TriageAct::UndoEscalate => format!("alert {id} is not escalated"),
                TriageAct::UndoAcknowledge if current.closure.is_some() => {
                    format!("alert {id} is closed; reopen it before undoing its acknowledgement")
                }
                TriageAct::UndoAcknowledge => format!("alert {id} is not acknowledged"),
                TriageAct::UndoClose => format!("alert {id} is not closed"),
                TriageAct::RetractComment(c) => format!("comment {c} is already retracted"),
                TriageAct::Comment => format!("alert {id}: comment not added"),
            })),
        }
    }
}
