//! The store: one SQLite file holding inventory (with history), network identities, DHCP leases,
//! approved baseline pairings, exceptions, the audit log, findings, alerts with their
//! acknowledgement state, device state events and learning counts.
//!
//! Owns: the schema and its migrations (`PRAGMA user_version`), durability settings, and every
//! SQL statement. Must not: decide anything — it stores what the engine hands it.
//!
//! # Durability
//!
//! The file runs in WAL mode with `synchronous = FULL` by default ([`Durability::Full`]): each
//! commit syncs the WAL before it returns, so a finding reported as committed survives a process
//! kill *and* a power loss or kernel crash. `NORMAL` in WAL mode would also survive a process kill
//! (the WAL is written before commit returns) but may lose the latest commits on power loss; it is
//! offered as [`Durability::Normal`] for hosts with battery-backed storage. Commits are per
//! violating session (findings) or per flush (learning counts), not per packet, so the extra
//! fsync per commit is affordable on an appliance. The audit log is append-only, enforced by
//! triggers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::alert::Alert;
use crate::attribution::{BindingSource, NetworkBinding};
use crate::audit::{AuditAction, AuditEntry, AuditError};
use crate::device_state::DeviceStateEvent;
use crate::findings::Finding;
use crate::fleet::{Kind, LearningCounts};
use crate::inventory::kea_leases::{Lease, LeaseFile};
use crate::inventory::{Device, DevicePart, InventoryBatch};
use crate::learning::{ApprovedPairing, PairCountKey};
use crate::roles::{ExceptionRule, Role};
use crate::timestamp::now_us;

mod fleet_view;
mod outbox;
mod rejections;
mod retention;
pub use retention::{RETENTION_ACTOR, UPLOADS_DIR};
mod triage;
pub use crate::learning::PairingRejection;
pub use fleet_view::{ApplianceRecord, Applied};
pub use outbox::{OutboxReader, OutboxRow, OutboxStats};
pub use triage::{TriageKind, TriageNote, TriageOutcome};

/// The newest schema version this build writes.
pub const SCHEMA_VERSION: i64 = 7;

/// The schema version that added the fleet outbox.
pub const OUTBOX_SCHEMA_VERSION: i64 = 6;

/// How hard each commit is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `synchronous = FULL`: commits survive power loss (default).
    #[default]
    Full,
    /// `synchronous = NORMAL`: commits survive a process crash, not necessarily power loss.
    Normal,
}

/// A store operation that failed; names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("{path}: {op}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A stored record could not be decoded.
    #[error("{path}: table `{table}` row {row}: {message}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// Table.
        table: &'static str,
        /// Row id or key.
        row: String,
        /// What is wrong.
        message: String,
    },
    /// The file was written by a newer build.
    #[error("{path}: schema version {found} is newer than this build supports ({supported})")]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// `user_version` found.
        found: i64,
        /// Newest known.
        supported: i64,
    },
    /// An audit entry was incomplete.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl StoreError {
    /// True when the file itself is unusable as a store (cannot be opened, is not a SQLite
    /// database, or was written by a newer Portolan): the operator's path is at fault, not the
    /// machine.
    pub fn is_unusable_file(&self) -> bool {
        match self {
            StoreError::Sqlite {
                source: rusqlite::Error::SqliteFailure(f, _),
                ..
            } => matches!(
                f.code,
                rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::NotADatabase
            ),
            StoreError::NewerSchema { .. } => true,
            _ => false,
        }
    }
}

/// An alert as stored, with its acknowledgement and closure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAlert {
    /// The alert.
    pub alert: Alert,
    /// Acknowledgement, if any.
    pub ack: Option<AlertAck>,
    /// Closure, if closed (a closed alert is also acknowledged).
    #[serde(default)]
    pub closure: Option<AlertClosure>,
}

/// Who closed an alert, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertClosure {
    /// When, µs.
    pub ts_us: i64,
    /// Who.
    pub actor: String,
    /// Note.
    pub note: String,
}

/// What [`Store::close_alert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseOutcome {
    /// The alert was closed (and acknowledged with the same note when it was open).
    Closed {
        /// True when the close also acknowledged it.
        acknowledged: bool,
    },
    /// No alert has that id.
    NotFound,
    /// The alert was already closed.
    AlreadyClosed,
}

/// Who acknowledged an alert, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertAck {
    /// When, µs.
    pub ts_us: i64,
    /// Who.
    pub actor: String,
    /// Note.
    pub note: String,
}

/// A device record that a re-import replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceHistoryEntry {
    /// When it was replaced, µs.
    pub replaced_us: i64,
    /// The import that replaced it.
    pub import_id: i64,
    /// The record as it was.
    pub device: Device,
}

/// What an inventory import changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSummary {
    /// Import id.
    pub import_id: i64,
    /// Devices new to the store.
    pub added: usize,
    /// Devices whose record was replaced (old record kept in history): `changed` + `unchanged`.
    pub replaced: usize,
    /// Replaced devices whose record differs from the previous one.
    pub changed: usize,
    /// Replaced devices whose record is the same as before.
    pub unchanged: usize,
    /// Devices of the same source held before and absent from this file, by UDID. They are kept,
    /// never removed by a file import: a file may be one page of an export.
    pub absent: Vec<String>,
    /// Records the parser left out, each with its reason.
    pub skipped: Vec<String>,
    /// Devices whose previous apps, hardware or user were kept because this file did not report
    /// them, each with what was kept (also among `warnings`).
    pub kept: Vec<String>,
    /// Devices whose network address changed.
    pub address_changes: usize,
    /// Warnings from the parser and the merge.
    pub warnings: Vec<String>,
}

/// The SQLite store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// The outbox's bound, when commits also queue fleet messages ([`Store::enable_outbox`]).
    outbox: Option<u64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn sql<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError + 'a {
    move |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        op,
        source,
    }
}

const MIGRATIONS: &[&str] = &[
    // Version 1.
    r#"
    CREATE TABLE imports (
        id INTEGER PRIMARY KEY,
        ts_us INTEGER NOT NULL,
        source TEXT NOT NULL,
        path TEXT NOT NULL,
        devices INTEGER NOT NULL,
        warnings TEXT NOT NULL
    );
    CREATE TABLE devices (
        udid TEXT PRIMARY KEY,
        serial_number TEXT,
        wifi_mac TEXT,
        source TEXT NOT NULL,
        import_id INTEGER NOT NULL REFERENCES imports(id),
        updated_us INTEGER NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX devices_serial ON devices(serial_number);
    CREATE INDEX devices_mac ON devices(wifi_mac);
    CREATE TABLE device_history (
        id INTEGER PRIMARY KEY,
        udid TEXT NOT NULL,
        replaced_us INTEGER NOT NULL,
        import_id INTEGER NOT NULL REFERENCES imports(id),
        record TEXT NOT NULL
    );
    CREATE INDEX device_history_udid ON device_history(udid, id);
    CREATE TABLE managed_apps (
        udid TEXT NOT NULL,
        bundle_id TEXT NOT NULL,
        name TEXT,
        version TEXT,
        status TEXT NOT NULL,
        PRIMARY KEY (udid, bundle_id)
    ) WITHOUT ROWID;
    CREATE TABLE network_bindings (
        id INTEGER PRIMARY KEY,
        udid TEXT NOT NULL,
        ip TEXT NOT NULL,
        valid_from_us INTEGER NOT NULL,
        valid_until_us INTEGER,
        import_id INTEGER NOT NULL REFERENCES imports(id)
    );
    CREATE INDEX network_bindings_udid ON network_bindings(udid, id);
    CREATE TABLE leases (
        address TEXT NOT NULL,
        hwaddr TEXT NOT NULL,
        valid_from_us INTEGER NOT NULL,
        valid_until_us INTEGER NOT NULL,
        hostname TEXT,
        PRIMARY KEY (address, hwaddr, valid_from_us)
    ) WITHOUT ROWID;
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        ts_us INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    CREATE TABLE baseline_rules (
        id INTEGER PRIMARY KEY,
        role TEXT NOT NULL,
        app_proto TEXT NOT NULL,
        transport TEXT,
        port INTEGER NOT NULL,
        starttls INTEGER NOT NULL,
        audit_id INTEGER NOT NULL REFERENCES audit_log(id)
    );
    CREATE TABLE exceptions (
        id TEXT PRIMARY KEY,
        rule TEXT NOT NULL,
        added_audit_id INTEGER NOT NULL REFERENCES audit_log(id),
        revoked_audit_id INTEGER REFERENCES audit_log(id)
    );
    CREATE TABLE findings (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        device TEXT NOT NULL,
        app_proto TEXT NOT NULL,
        dest_port INTEGER NOT NULL,
        score REAL NOT NULL,
        severity TEXT NOT NULL,
        sessions INTEGER NOT NULL,
        first_seen_us INTEGER NOT NULL,
        last_seen_us INTEGER NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX findings_score ON findings(score DESC);
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        finding_id INTEGER NOT NULL REFERENCES findings(id),
        ts_us INTEGER NOT NULL,
        signature_id INTEGER NOT NULL,
        severity TEXT NOT NULL,
        score REAL NOT NULL,
        data TEXT NOT NULL,
        acked_us INTEGER,
        acked_by TEXT,
        ack_note TEXT
    );
    CREATE INDEX alerts_finding ON alerts(finding_id);
    CREATE TABLE device_states (
        id INTEGER PRIMARY KEY,
        device_key TEXT NOT NULL,
        ts_us INTEGER NOT NULL,
        data TEXT NOT NULL
    );
    CREATE TABLE learning_counts (
        role TEXT NOT NULL,
        app_proto TEXT NOT NULL,
        transport TEXT NOT NULL,
        port INTEGER NOT NULL,
        bucket_us INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (role, app_proto, transport, port, bucket_us)
    ) WITHOUT ROWID;
    "#,
    // Version 2: alert closure (columns added; rows of version 1 read as not closed).
    r#"
    ALTER TABLE alerts ADD COLUMN closed_us INTEGER;
    ALTER TABLE alerts ADD COLUMN closed_by TEXT;
    ALTER TABLE alerts ADD COLUMN close_note TEXT;
    "#,
    // Version 3: roles defined or deleted through the API (a NULL definition deletes the role),
    // applied on top of the roles file.
    r#"
    CREATE TABLE role_definitions (
        seq INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        definition TEXT,
        audit_id INTEGER NOT NULL REFERENCES audit_log(id)
    );
    "#,
    // Version 4: escalations and comments on alerts, and the undo of triage acts (store/triage.rs).
    triage::MIGRATION,
    // Version 5: learning proposals rejected by an operator (store/rejections.rs).
    rejections::MIGRATION,
    // Version 6: the fleet outbox (store/outbox.rs).
    outbox::MIGRATION,
    // Version 7: the central's record of the fleet (store/fleet_view.rs).
    fleet_view::MIGRATION,
];

fn to_json<T: Serialize>(v: &T) -> String {
    // Serializing these plain records cannot fail (no maps with non-string keys, no I/O).
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}

/// A corrupt row, for code that cannot borrow the store.
fn self_corrupt(path: &Path, table: &'static str, row: &str, message: impl ToString) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        table,
        row: row.to_string(),
        message: message.to_string(),
    }
}

/// Fills the parts `device` did not report (its [`Device::unreported`]) from `previous`, and
/// says what was kept: a file without Jamf's `APPLICATIONS` or `HARDWARE` section must not wipe
/// a device's apps, serial number or MAC.
fn keep_unreported(device: &mut Device, previous: &Device) -> Vec<String> {
    let mut kept = Vec::new();
    for part in device.unreported.clone() {
        match part {
            DevicePart::Apps if device.apps.is_empty() && !previous.apps.is_empty() => {
                device.apps = previous.apps.clone();
                kept.push(format!("{} apps", previous.apps.len()));
            }
            DevicePart::Hardware => {
                let mut fields = Vec::new();
                if device.serial_number.is_none() && previous.serial_number.is_some() {
                    device.serial_number = previous.serial_number.clone();
                    fields.push("serial number");
                }
                if device.wifi_mac.is_none() && previous.wifi_mac.is_some() {
                    device.wifi_mac = previous.wifi_mac.clone();
                    fields.push("Wi-Fi MAC");
                }
                if device.model.is_none() && previous.model.is_some() {
                    device.model = previous.model.clone();
                    device.model_identifier = previous.model_identifier.clone();
                    // Jamf tells iPadOS from iOS by the model.
                    if previous.os_name.is_some() {
                        device.os_name = previous.os_name.clone();
                    }
                    fields.push("model");
                }
                kept.extend(fields.into_iter().map(str::to_string));
            }
            DevicePart::User if device.user.is_none() && previous.user.is_some() => {
                device.user = previous.user.clone();
                kept.push("user".to_string());
            }
            _ => {}
        }
    }
    kept
}

/// Whether two records say the same, ignoring when the MDM reported them.
fn same_record(a: &Device, b: &Device) -> bool {
    let mut a = a.clone();
    a.reported_at_us = b.reported_at_us;
    a.unreported.clone_from(&b.unreported);
    a == *b
}

fn insert_audit(tx: &Transaction<'_>, path: &Path, entry: &AuditEntry) -> Result<i64, StoreError> {
    tx.execute(
        "INSERT INTO audit_log (ts_us, actor, action, target, detail, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            entry.ts_us,
            entry.actor,
            entry.action.as_str(),
            entry.target,
            to_json(&entry.detail),
            entry.reason
        ],
    )
    .map_err(sql(path, "append audit entry"))?;
    Ok(tx.last_insert_rowid())
}

/// Runs `query` on `conn` (the store's connection or a transaction on it) and maps each row with
/// `map`; any failure is reported as `op` on the file at `path`.
fn query_rows<T, P: rusqlite::Params>(
    conn: &Connection,
    path: &Path,
    op: &'static str,
    query: &str,
    params: P,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let read = || -> rusqlite::Result<Vec<T>> {
        let mut stmt = conn.prepare(query)?;
        let rows = stmt.query_map(params, map)?.collect();
        rows
    };
    read().map_err(sql(path, op))
}

/// The acknowledgement and closure columns of an alert: `None` when there is no such alert.
type AlertState = Option<(Option<i64>, Option<i64>)>;

/// Reads an alert's acknowledgement and closure times inside a transaction.
fn alert_state(tx: &Transaction<'_>, alert_id: i64) -> rusqlite::Result<AlertState> {
    tx.query_row(
        "SELECT acked_us, closed_us FROM alerts WHERE id = ?1",
        [alert_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// Sets the store file and its SQLite companions (`-wal`, `-shm`) to mode 0600 whatever the umask
/// (the store holds the inventory, alerts and token hashes). Best effort: a file that cannot be
/// changed (not ours) keeps its mode, and SQLite gives new companions the main file's mode.
fn restrict_to_owner(path: &Path) {
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let mut name = path.as_os_str().to_os_string();
        name.push(suffix);
        let _ = std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600));
    }
}

impl Store {
    /// Opens (creating if needed) the store with [`Durability::Full`].
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, Durability::Full)
    }

    /// A store in memory, for one-shot runs without `--db`: nothing survives the process.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let path = Path::new(":memory:");
        let conn = Connection::open_in_memory().map_err(sql(path, "open"))?;
        Store::init(conn, path)
    }

    /// Opens (creating if needed) the store and brings its schema up to date.
    pub fn open_with(path: &Path, durability: Durability) -> Result<Store, StoreError> {
        let conn = Connection::open(path).map_err(sql(path, "open"))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(sql(path, "set busy timeout"))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(sql(path, "enable WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                table: "(pragma)",
                row: "journal_mode".to_string(),
                message: format!("could not switch to WAL (got {mode})"),
            });
        }
        let sync = match durability {
            Durability::Full => "PRAGMA synchronous = FULL",
            Durability::Normal => "PRAGMA synchronous = NORMAL",
        };
        conn.execute_batch(sync)
            .map_err(sql(path, "set synchronous"))?;
        let store = Store::init(conn, path)?;
        restrict_to_owner(path);
        Ok(store)
    }

    fn init(mut conn: Connection, path: &Path) -> Result<Store, StoreError> {
        conn.execute_batch("PRAGMA foreign_keys = ON")
            .map_err(sql(path, "enable foreign keys"))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql(path, "read schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            let target = i64::try_from(i).unwrap_or(i64::MAX).saturating_add(1);
            if version >= target {
                continue;
            }
            let tx = conn.transaction().map_err(sql(path, "begin migration"))?;
            tx.execute_batch(migration)
                .map_err(sql(path, "migrate schema"))?;
            tx.execute_batch(&format!("PRAGMA user_version = {target}"))
                .map_err(sql(path, "write schema version"))?;
            tx.commit().map_err(sql(path, "commit migration"))?;
        }
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            outbox: None,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `PRAGMA user_version`.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql(&self.path, "read schema version"))
    }

    /// `PRAGMA synchronous` (0 off, 1 normal, 2 full, 3 extra).
    pub fn synchronous(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .map_err(sql(&self.path, "read synchronous"))
    }

    /// `PRAGMA integrity_check`; `ok` when sound.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(sql(&self.path, "integrity check"))
    }

    fn corrupt(
        &self,
        table: &'static str,
        row: impl ToString,
        message: impl ToString,
    ) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            table,
            row: row.to_string(),
            message: message.to_string(),
        }
    }

    // ---------------------------------------------------------------- inventory

    /// Stores an inventory batch in one transaction: each device's record is replaced (the old
    /// record goes to history), its apps are replaced, and its network address gets a new
    /// identity interval when it changed (the previous one is closed).
    pub fn import_inventory(
        &mut self,
        batch: &InventoryBatch,
        entry: &AuditEntry,
    ) -> Result<ImportSummary, StoreError> {
        let path = self.path.clone();
        let now = now_us();
        let tx = self
            .conn
            .transaction()
            .map_err(sql(&path, "begin import"))?;
        tx.execute(
            "INSERT INTO imports (ts_us, source, path, devices, warnings) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                now,
                batch.source.as_str(),
                batch.path.display().to_string(),
                i64::try_from(batch.devices.len()).unwrap_or(i64::MAX),
                to_json(&batch.warnings)
            ],
        )
        .map_err(sql(&path, "record import"))?;
        let import_id = tx.last_insert_rowid();
        let mut summary = ImportSummary {
            import_id,
            added: 0,
            replaced: 0,
            changed: 0,
            unchanged: 0,
            absent: Vec::new(),
            skipped: batch.skipped.clone(),
            kept: Vec::new(),
            address_changes: 0,
            warnings: batch.warnings.clone(),
        };
        let held: Vec<String> = query_rows(
            &tx,
            &path,
            "read devices of the source",
            "SELECT udid FROM devices WHERE source = ?1 ORDER BY udid",
            [batch.source.as_str()],
            |r| r.get::<_, String>(0),
        )?;
        for udid in held {
            if !batch.devices.iter().any(|d| d.udid == udid) {
                summary.absent.push(udid);
            }
        }
        if !summary.absent.is_empty() {
            summary.warnings.push(format!(
                "{}: {} device(s) of this source held before are not in this file; kept \
                 (a file import never removes a device)",
                batch.path.display(),
                summary.absent.len()
            ));
        }
        for reported in &batch.devices {
            let old: Option<String> = tx
                .query_row(
                    "SELECT record FROM devices WHERE udid = ?1",
                    [&reported.udid],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql(&path, "read device"))?;
            let mut merged = reported.clone();
            match &old {
                Some(record) => {
                    let previous: Device = serde_json::from_str(record)
                        .map_err(|e| self_corrupt(&path, "devices", &reported.udid, e))?;
                    let kept = keep_unreported(&mut merged, &previous);
                    if !kept.is_empty() {
                        let note = format!(
                            "{}: device {}: not in this file, kept from the previous import: {}",
                            batch.path.display(),
                            reported.udid,
                            kept.join(", ")
                        );
                        summary.kept.push(note.clone());
                        summary.warnings.push(note);
                    }
                    tx.execute(
                        "INSERT INTO device_history (udid, replaced_us, import_id, record) VALUES (?1, ?2, ?3, ?4)",
                        params![reported.udid, now, import_id, record],
                    )
                    .map_err(sql(&path, "keep device history"))?;
                    summary.replaced += 1;
                    if same_record(&merged, &previous) {
                        summary.unchanged += 1;
                    } else {
                        summary.changed += 1;
                    }
                }
                None => summary.added += 1,
            }
            let d = &merged;
            tx.execute(
                "INSERT INTO devices (udid, serial_number, wifi_mac, source, import_id, updated_us, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(udid) DO UPDATE SET serial_number = excluded.serial_number,
                   wifi_mac = excluded.wifi_mac, source = excluded.source,
                   import_id = excluded.import_id, updated_us = excluded.updated_us,
                   record = excluded.record",
                params![
                    d.udid,
                    d.serial_number,
                    d.wifi_mac,
                    d.source.as_str(),
                    import_id,
                    now,
                    to_json(d)
                ],
            )
            .map_err(sql(&path, "write device"))?;
            tx.execute("DELETE FROM managed_apps WHERE udid = ?1", [&d.udid])
                .map_err(sql(&path, "replace apps"))?;
            for a in &d.apps {
                tx.execute(
                    "INSERT OR REPLACE INTO managed_apps (udid, bundle_id, name, version, status) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![d.udid, a.bundle_id, a.name, a.version, a.status],
                )
                .map_err(sql(&path, "write app"))?;
            }
            let addresses = d.addresses();
            if !addresses.is_empty() {
                let open: Vec<(i64, String, i64)> = query_rows(
                    &tx,
                    &path,
                    "read network identity",
                    "SELECT id, ip, valid_from_us FROM network_bindings
                     WHERE udid = ?1 AND valid_until_us IS NULL ORDER BY id",
                    [&d.udid],
                    |r| <(i64, String, i64)>::try_from(r),
                )?;
                // Without a report time, a device's first addresses are taken to have held all
                // along; a later change takes effect at the import.
                let from = d
                    .reported_at_us
                    .unwrap_or(if open.is_empty() { i64::MIN } else { now });
                let wanted: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                let mut changed = false;
                for (id, old_ip, old_from) in &open {
                    if !wanted.contains(old_ip) {
                        tx.execute(
                            "UPDATE network_bindings SET valid_until_us = ?1 WHERE id = ?2",
                            params![from.max(*old_from), id],
                        )
                        .map_err(sql(&path, "close network identity"))?;
                        changed = true;
                    }
                }
                for ip in &wanted {
                    if open.iter().any(|(_, old_ip, _)| old_ip == ip) {
                        continue;
                    }
                    // An address now reported for this device no longer belongs to whichever
                    // other device held it: close those bindings where this one starts, so a
                    // reused address never points at two devices at once.
                    let handover = if from == i64::MIN { now } else { from };
                    tx.execute(
                        "UPDATE network_bindings SET valid_until_us = MAX(?1, valid_from_us)
                         WHERE ip = ?2 AND udid != ?3 AND valid_until_us IS NULL",
                        params![handover, ip, d.udid],
                    )
                    .map_err(sql(&path, "hand over network identity"))?;
                    tx.execute(
                        "INSERT INTO network_bindings (udid, ip, valid_from_us, valid_until_us, import_id) VALUES (?1, ?2, ?3, NULL, ?4)",
                        params![d.udid, ip, from, import_id],
                    )
                    .map_err(sql(&path, "write network identity"))?;
                    changed |= !open.is_empty();
                }
                if changed {
                    summary.address_changes += 1;
                }
            }
        }
        insert_audit(&tx, &path, entry)?;
        tx.commit().map_err(sql(&path, "commit import"))?;
        Ok(summary)
    }

    /// Every current device record.
    pub fn devices(&self) -> Result<Vec<Device>, StoreError> {
        self.tuples::<(String, String), _>(
            "read devices",
            "SELECT udid, record FROM devices ORDER BY udid",
            [],
        )?
        .into_iter()
        .map(|(udid, rec)| self.json("devices", udid, &rec))
        .collect()
    }

    /// Replaced records of a device, oldest first.
    pub fn device_history(&self, udid: &str) -> Result<Vec<DeviceHistoryEntry>, StoreError> {
        self.tuples::<(i64, i64, i64, String), _>(
            "read device history",
            "SELECT id, replaced_us, import_id, record FROM device_history WHERE udid = ?1 ORDER BY id",
            [udid],
        )?
        .into_iter()
        .map(|(id, replaced_us, import_id, rec)| {
            Ok(DeviceHistoryEntry {
                replaced_us,
                import_id,
                device: self.json("device_history", id, &rec)?,
            })
        })
        .collect()
    }

    /// Every inventory network identity (open and closed).
    pub fn inventory_bindings(&self) -> Result<Vec<NetworkBinding>, StoreError> {
        self.tuples::<(i64, String, String, i64, Option<i64>), _>(
            "read network identities",
            "SELECT id, udid, ip, valid_from_us, valid_until_us FROM network_bindings ORDER BY id",
            [],
        )?
        .into_iter()
        .map(|(id, udid, ip, from, until)| {
            Ok(NetworkBinding {
                udid,
                ip: ip
                    .parse::<IpAddr>()
                    .map_err(|e| self.corrupt("network_bindings", id, e))?,
                valid_from_us: from,
                valid_until_us: until,
                source: BindingSource::Inventory,
            })
        })
        .collect()
    }

    /// Stores a lease file's leases (duplicates ignored) and ends the leases its deletion rows
    /// end, with an audit entry, in one transaction; returns (leases new to the store, leases
    /// ended). A prefix is kept as `address/len` in `address`.
    pub fn import_leases(
        &mut self,
        file: &LeaseFile,
        entry: &AuditEntry,
    ) -> Result<(usize, usize), StoreError> {
        self.in_transaction(("begin lease import", "commit lease import"), |tx, path| {
            let mut added = 0;
            for l in &file.leases {
                added += tx
                    .execute(
                        "INSERT OR IGNORE INTO leases (address, hwaddr, valid_from_us, valid_until_us, hostname) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![l.address_text(), l.hwaddr, l.valid_from_us, l.valid_until_us, l.hostname],
                    )
                    .map_err(sql(path, "write lease"))?;
            }
            let mut ended = 0;
            for e in &file.ended {
                ended += tx
                    .execute(
                        "UPDATE leases SET valid_until_us = ?3 WHERE address = ?1 AND hwaddr = ?2 AND valid_from_us <= ?3 AND valid_until_us > ?3",
                        params![e.address, e.hwaddr, e.at_us],
                    )
                    .map_err(sql(path, "end lease"))?;
            }
            insert_audit(tx, path, entry)?;
            Ok((added, ended))
        })
    }

    /// Every stored lease.
    pub fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        self.tuples::<(String, String, i64, i64, Option<String>), _>(
            "read leases",
            "SELECT address, hwaddr, valid_from_us, valid_until_us, hostname FROM leases",
            [],
        )?
        .into_iter()
        .map(|(text, hwaddr, from, until, hostname)| {
            let (addr, prefix_len) = match text.split_once('/') {
                Some((a, len)) => (
                    a,
                    Some(
                        len.parse::<u8>()
                            .map_err(|e| self.corrupt("leases", &text, e))?,
                    ),
                ),
                None => (text.as_str(), None),
            };
            Ok(Lease {
                address: addr.parse().map_err(|e| self.corrupt("leases", &text, e))?,
                prefix_len,
                hwaddr,
                valid_from_us: from,
                valid_until_us: until,
                hostname,
            })
        })
        .collect()
    }

    // ---------------------------------------------------------------- audit, baselines, exceptions

    /// Appends an audit entry on its own; returns its id.
    pub fn append_audit(&mut self, entry: &AuditEntry) -> Result<i64, StoreError> {
        self.in_transaction(("begin audit", "commit audit"), |tx, path| {
            insert_audit(tx, path, entry)
        })
    }

    /// The audit log, oldest first.
    pub fn audit_log(&self) -> Result<Vec<AuditEntry>, StoreError> {
        self.tuples::<(i64, i64, String, String, String, String, String), _>(
            "read audit log",
            "SELECT id, ts_us, actor, action, target, detail, reason FROM audit_log ORDER BY id",
            [],
        )?
        .into_iter()
        .map(|(id, ts_us, actor, action, target, detail, reason)| {
            Ok(AuditEntry {
                id,
                ts_us,
                actor,
                action: AuditAction::from_name(&action).ok_or_else(|| {
                    self.corrupt("audit_log", id, format!("unknown action {action:?}"))
                })?,
                target,
                detail: self.json("audit_log", id, &detail)?,
                reason,
            })
        })
        .collect()
    }

    /// Approves pairings into `role`'s baseline together with their audit entry; returns the
    /// audit id.
    pub fn approve_pairings(
        &mut self,
        role: &str,
        pairings: &[ApprovedPairing],
        entry: &AuditEntry,
    ) -> Result<i64, StoreError> {
        self.audited_change(entry, ("begin approval", "commit approval"), |tx, path, audit_id| {
            for p in pairings {
                tx.execute(
                    "INSERT INTO baseline_rules (role, app_proto, transport, port, starttls, audit_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![role, p.app_proto, p.transport, p.port, p.starttls, audit_id],
                )
                .map_err(sql(path, "write approved pairing"))?;
            }
            Ok(())
        })
    }

    /// Every approved pairing with its role, in approval order.
    pub fn approved_pairings(&self) -> Result<Vec<(String, ApprovedPairing)>, StoreError> {
        self.rows(
            "read approved pairings",
            "SELECT role, app_proto, transport, port, starttls FROM baseline_rules ORDER BY id",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    ApprovedPairing {
                        app_proto: r.get(1)?,
                        transport: r.get(2)?,
                        port: r.get(3)?,
                        starttls: r.get(4)?,
                    },
                ))
            },
        )
    }

    /// Stores an exception with its audit entry.
    pub fn add_exception(
        &mut self,
        rule: &ExceptionRule,
        entry: &AuditEntry,
    ) -> Result<i64, StoreError> {
        self.audited_change(
            entry,
            ("begin exception", "commit exception"),
            |tx, path, audit_id| {
                tx.execute(
                    "INSERT INTO exceptions (id, rule, added_audit_id) VALUES (?1, ?2, ?3)",
                    params![rule.id, to_json(rule), audit_id],
                )
                .map_err(sql(path, "write exception"))?;
                Ok(())
            },
        )
    }

    /// Adds or replaces an exception (a revoked one of that id too) with its audit entry: the
    /// fleet's shared configuration re-applies a key's new value under the same id.
    pub fn upsert_exception(
        &mut self,
        rule: &ExceptionRule,
        entry: &AuditEntry,
    ) -> Result<i64, StoreError> {
        self.audited_change(
            entry,
            ("begin exception", "commit exception"),
            |tx, path, audit_id| {
                tx.execute(
                    "INSERT INTO exceptions (id, rule, added_audit_id) VALUES (?1, ?2, ?3) \
                     ON CONFLICT(id) DO UPDATE SET rule = excluded.rule, \
                     added_audit_id = excluded.added_audit_id, revoked_audit_id = NULL",
                    params![rule.id, to_json(rule), audit_id],
                )
                .map_err(sql(path, "write exception"))?;
                Ok(())
            },
        )
    }

    /// Revokes a stored exception with its audit entry; false when no active one has that id.
    pub fn revoke_exception(&mut self, id: &str, entry: &AuditEntry) -> Result<bool, StoreError> {
        self.in_transaction(("begin revocation", "commit revocation"), |tx, path| {
            let active: Option<String> = tx
                .query_row(
                    "SELECT id FROM exceptions WHERE id = ?1 AND revoked_audit_id IS NULL",
                    [id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql(path, "read exception"))?;
            if active.is_none() {
                return Ok(false);
            }
            let audit_id = insert_audit(tx, path, entry)?;
            tx.execute(
                "UPDATE exceptions SET revoked_audit_id = ?1 WHERE id = ?2",
                params![audit_id, id],
            )
            .map_err(sql(path, "revoke exception"))?;
            Ok(true)
        })
    }

    /// Records a role defined (`Some`) or deleted (`None`) through the API, with its audit entry,
    /// replacing any earlier definition of that name; returns the audit id.
    pub fn put_role_definition(
        &mut self,
        name: &str,
        role: Option<&Role>,
        entry: &AuditEntry,
    ) -> Result<i64, StoreError> {
        self.audited_change(
            entry,
            ("begin role definition", "commit role definition"),
            |tx, path, audit_id| {
                tx.execute(
                    "INSERT INTO role_definitions (name, definition, audit_id) VALUES (?1, ?2, ?3)
                     ON CONFLICT(name) DO UPDATE SET definition = excluded.definition, audit_id = excluded.audit_id",
                    params![name, role.map(to_json), audit_id],
                )
                .map_err(sql(path, "write role definition"))?;
                Ok(())
            },
        )
    }

    /// Runs `write` in one transaction together with the audit entry it is recorded under, so a
    /// change and its audit record commit (or fail) together; returns the audit id. `ops` names
    /// the begin and commit steps for error messages.
    fn audited_change(
        &mut self,
        entry: &AuditEntry,
        ops: (&'static str, &'static str),
        write: impl FnOnce(&Transaction<'_>, &Path, i64) -> Result<(), StoreError>,
    ) -> Result<i64, StoreError> {
        self.in_transaction(ops, |tx, path| {
            let audit_id = insert_audit(tx, path, entry)?;
            write(tx, path, audit_id)?;
            Ok(audit_id)
        })
    }

    /// Runs `work` in one transaction, committed when it returns `Ok` (an `Ok` that wrote nothing
    /// commits nothing) and rolled back when it fails; `ops` names the begin and commit steps for
    /// error messages.
    fn in_transaction<R>(
        &mut self,
        ops: (&'static str, &'static str),
        work: impl FnOnce(&Transaction<'_>, &Path) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(sql(&path, ops.0))?;
        let out = work(&tx, &path)?;
        tx.commit().map_err(sql(&path, ops.1))?;
        Ok(out)
    }

    /// Runs `query` and maps each row with `map`; any failure is reported as `op`.
    fn rows<T, P: rusqlite::Params>(
        &self,
        op: &'static str,
        query: &str,
        params: P,
        map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        query_rows(&self.conn, &self.path, op, query, params, map)
    }

    /// [`Store::rows`] for rows read whole as a tuple of their columns.
    fn tuples<T, P: rusqlite::Params>(
        &self,
        op: &'static str,
        query: &str,
        params: P,
    ) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> TryFrom<&'r Row<'r>, Error = rusqlite::Error>,
    {
        self.rows(op, query, params, |r| T::try_from(r))
    }

    /// Decodes a JSON column of row `row` in `table`; a failure is [`StoreError::Corrupt`].
    fn json<T: DeserializeOwned>(
        &self,
        table: &'static str,
        row: impl ToString,
        text: &str,
    ) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|e| self.corrupt(table, row, e))
    }

    /// Roles defined (`Some`) or deleted (`None`) through the API, in the order first defined.
    pub fn role_definitions(&self) -> Result<Vec<(String, Option<Role>)>, StoreError> {
        self.tuples::<(String, Option<String>), _>(
            "read role definitions",
            "SELECT name, definition FROM role_definitions ORDER BY seq",
            [],
        )?
        .into_iter()
        .map(|(name, def)| {
            let role = match def {
                Some(d) => Some(self.json("role_definitions", &name, &d)?),
                None => None,
            };
            Ok((name, role))
        })
        .collect()
    }

    /// Exceptions added through the API and not revoked.
    pub fn active_exceptions(&self) -> Result<Vec<ExceptionRule>, StoreError> {
        self.tuples::<(String, String), _>(
            "read exceptions",
            "SELECT id, rule FROM exceptions WHERE revoked_audit_id IS NULL ORDER BY rowid",
            [],
        )?
        .into_iter()
        .map(|(id, rule)| self.json("exceptions", id, &rule))
        .collect()
    }

    // ---------------------------------------------------------------- findings and alerts

    /// Writes findings and the alerts they raised in one transaction; assigns ids (findings by
    /// key, alerts' `finding_id` through their `finding_key`). When this returns `Ok`, every
    /// finding and alert passed is durable.
    pub fn save_findings(
        &mut self,
        findings: &mut [Finding],
        alerts: &mut [Alert],
    ) -> Result<(), StoreError> {
        if findings.is_empty() && alerts.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let outbox = self.outbox;
        let tx = self
            .conn
            .transaction()
            .map_err(sql(&path, "begin findings"))?;
        let mut ids: HashMap<String, i64> = HashMap::new();
        for f in findings.iter_mut() {
            let key = f.key.as_text();
            let id: i64 = tx
                .query_row(
                    "INSERT INTO findings (key, device, app_proto, dest_port, score, severity, sessions, first_seen_us, last_seen_us, data)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT(key) DO UPDATE SET score = excluded.score, severity = excluded.severity,
                       sessions = excluded.sessions, first_seen_us = excluded.first_seen_us,
                       last_seen_us = excluded.last_seen_us, data = excluded.data
                     RETURNING id",
                    params![
                        key,
                        f.key.device,
                        f.key.app_proto,
                        f.key.port,
                        f.score,
                        f.severity.as_str(),
                        i64::try_from(f.sessions).unwrap_or(i64::MAX),
                        f.first_seen_us,
                        f.last_seen_us,
                        to_json(f)
                    ],
                    |r| r.get(0),
                )
                .map_err(sql(&path, "write finding"))?;
            f.id = id;
            ids.insert(key, id);
            if let Some(capacity) = outbox {
                outbox::enqueue(&tx, &path, capacity, Kind::Finding, now_us(), &to_json(f))?;
            }
        }
        for a in alerts.iter_mut() {
            let finding_id = match ids.get(&a.finding_key) {
                Some(id) => *id,
                None => tx
                    .query_row(
                        "SELECT id FROM findings WHERE key = ?1",
                        [&a.finding_key],
                        |r| r.get(0),
                    )
                    .map_err(sql(&path, "find alert's finding"))?,
            };
            a.finding_id = finding_id;
            tx.execute(
                "INSERT INTO alerts (finding_id, ts_us, signature_id, severity, score, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    finding_id,
                    a.ts_us,
                    a.signature.signature_id,
                    a.severity.as_str(),
                    a.score,
                    to_json(a)
                ],
            )
            .map_err(sql(&path, "write alert"))?;
            a.id = tx.last_insert_rowid();
            if let Some(capacity) = outbox {
                outbox::enqueue(&tx, &path, capacity, Kind::Alert, now_us(), &to_json(a))?;
            }
        }
        tx.commit().map_err(sql(&path, "commit findings"))?;
        Ok(())
    }

    /// Every finding, highest score first.
    pub fn findings(&self) -> Result<Vec<Finding>, StoreError> {
        self.tuples::<(i64, String), _>(
            "read findings",
            "SELECT id, data FROM findings ORDER BY score DESC, id",
            [],
        )?
        .into_iter()
        .map(|(id, data)| {
            let mut f: Finding = self.json("findings", id, &data)?;
            f.id = id;
            Ok(f)
        })
        .collect()
    }

    /// One finding by its id.
    pub fn finding(&self, id: i64) -> Result<Option<Finding>, StoreError> {
        self.tuples::<(i64, String), _>(
            "read a finding",
            "SELECT id, data FROM findings WHERE id = ?1",
            [id],
        )?
        .into_iter()
        .map(|(id, data)| {
            let mut f: Finding = self.json("findings", id, &data)?;
            f.id = id;
            Ok(f)
        })
        .next()
        .transpose()
    }

    /// Number of findings.
    pub fn finding_count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM findings", [], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(sql(&self.path, "count findings"))
    }

    /// Every alert with its acknowledgement and closure, oldest first.
    pub fn alerts(&self) -> Result<Vec<StoredAlert>, StoreError> {
        self.read_alerts(None)
    }

    /// One alert with its acknowledgement and closure.
    pub fn alert(&self, alert_id: i64) -> Result<Option<StoredAlert>, StoreError> {
        Ok(self.read_alerts(Some(alert_id))?.pop())
    }

    fn read_alerts(&self, only: Option<i64>) -> Result<Vec<StoredAlert>, StoreError> {
        /// Who did it, when, and the note: acknowledgement or closure columns.
        type Act = (Option<i64>, Option<String>, Option<String>);
        let act = |(ts, actor, note): Act| {
            ts.map(|ts_us| (ts_us, actor.unwrap_or_default(), note.unwrap_or_default()))
        };
        self.rows(
            "read alerts",
            "SELECT id, finding_id, data, acked_us, acked_by, ack_note, closed_us, closed_by, close_note
             FROM alerts WHERE ?1 IS NULL OR id = ?1 ORDER BY id",
            [only],
            |r| {
                let ack: Act = (r.get(3)?, r.get(4)?, r.get(5)?);
                let closure: Act = (r.get(6)?, r.get(7)?, r.get(8)?);
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, ack, closure))
            },
        )?
        .into_iter()
        .map(|(id, finding_id, data, ack, closure)| {
            let mut alert: Alert = self.json("alerts", id, &data)?;
            alert.id = id;
            alert.finding_id = finding_id;
            Ok(StoredAlert {
                alert,
                ack: act(ack).map(|(ts_us, actor, note)| AlertAck { ts_us, actor, note }),
                closure: act(closure)
                    .map(|(ts_us, actor, note)| AlertClosure { ts_us, actor, note }),
            })
        })
        .collect()
    }

    /// Acknowledges an alert with its audit entry; false when no unacknowledged alert has that id.
    pub fn acknowledge_alert(
        &mut self,
        alert_id: i64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        self.in_transaction(("begin acknowledgement", "commit acknowledgement"), |tx, path| {
            let n = tx
                .execute(
                    "UPDATE alerts SET acked_us = ?1, acked_by = ?2, ack_note = ?3 WHERE id = ?4 AND acked_us IS NULL",
                    params![entry.ts_us, entry.actor, entry.reason, alert_id],
                )
                .map_err(sql(path, "acknowledge alert"))?;
            if n == 0 {
                return Ok(false);
            }
            insert_audit(tx, path, entry)?;
            Ok(true)
        })
    }

    /// Closes an alert with its audit entry, in one transaction; an alert not yet acknowledged
    /// is acknowledged with the same actor and note.
    pub fn close_alert(
        &mut self,
        alert_id: i64,
        entry: &AuditEntry,
    ) -> Result<CloseOutcome, StoreError> {
        self.in_transaction(("begin closure", "commit closure"), |tx, path| {
            let acknowledged = match alert_state(tx, alert_id).map_err(sql(path, "read alert"))? {
                None => return Ok(CloseOutcome::NotFound),
                Some((_, Some(_))) => return Ok(CloseOutcome::AlreadyClosed),
                Some((acked, None)) => acked.is_none(),
            };
            if acknowledged {
                tx.execute(
                    "UPDATE alerts SET acked_us = ?1, acked_by = ?2, ack_note = ?3 WHERE id = ?4",
                    params![entry.ts_us, entry.actor, entry.reason, alert_id],
                )
                .map_err(sql(path, "acknowledge alert"))?;
            }
            tx.execute(
                "UPDATE alerts SET closed_us = ?1, closed_by = ?2, close_note = ?3 WHERE id = ?4",
                params![entry.ts_us, entry.actor, entry.reason, alert_id],
            )
            .map_err(sql(path, "close alert"))?;
            insert_audit(tx, path, entry)?;
            Ok(CloseOutcome::Closed { acknowledged })
        })
    }

    // ---------------------------------------------------------------- device state, learning

    /// Stores device state events under their device keys.
    pub fn insert_device_states(
        &mut self,
        events: &[(String, DeviceStateEvent)],
    ) -> Result<(), StoreError> {
        self.in_transaction(
            ("begin device states", "commit device states"),
            |tx, path| {
                for (key, e) in events {
                    tx.execute(
                        "INSERT INTO device_states (device_key, ts_us, data) VALUES (?1, ?2, ?3)",
                        params![key, e.ts_us, to_json(e)],
                    )
                    .map_err(sql(path, "write device state"))?;
                }
                Ok(())
            },
        )
    }

    /// Every stored device state event with its device key.
    pub fn device_states(&self) -> Result<Vec<(String, DeviceStateEvent)>, StoreError> {
        self.tuples::<(i64, String, String), _>(
            "read device states",
            "SELECT id, device_key, data FROM device_states ORDER BY ts_us, id",
            [],
        )?
        .into_iter()
        .map(|(id, key, data)| Ok((key, self.json("device_states", id, &data)?)))
        .collect()
    }

    /// The state events stored under `udid` or, for events that named only a serial number not
    /// yet in the inventory then, under `serial:<serial>`; oldest first.
    pub fn device_states_of(
        &self,
        udid: &str,
        serial: Option<&str>,
    ) -> Result<Vec<DeviceStateEvent>, StoreError> {
        let serial_key = serial.map(|s| format!("serial:{s}")).unwrap_or_default();
        self.tuples::<(i64, String), _>(
            "read device states",
            "SELECT id, data FROM device_states WHERE device_key = ?1 OR device_key = ?2 ORDER BY ts_us, id",
            params![udid, serial_key],
        )?
        .into_iter()
        .map(|(id, data)| self.json("device_states", id, &data))
        .collect()
    }

    /// Adds learning counts (summing into existing buckets).
    pub fn add_learning_counts(
        &mut self,
        counts: &[(PairCountKey, u64)],
    ) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        let outbox = self.outbox;
        self.in_transaction(("begin learning counts", "commit learning counts"), |tx, path| {
            if let Some(capacity) = outbox {
                let message = LearningCounts::from_pairs(counts);
                outbox::enqueue(tx, path, capacity, Kind::Learning, now_us(), &to_json(&message))?;
            }
            for (k, n) in counts {
                tx.execute(
                    "INSERT INTO learning_counts (role, app_proto, transport, port, bucket_us, count) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT(role, app_proto, transport, port, bucket_us) DO UPDATE SET count = count + excluded.count",
                    params![k.role, k.app_proto, k.transport, k.port, k.bucket_us, i64::try_from(*n).unwrap_or(i64::MAX)],
                )
                .map_err(sql(path, "write learning count"))?;
            }
            Ok(())
        })
    }

    /// Learning counts whose bucket starts in `[from_us, to_us)`.
    pub fn learning_counts(
        &self,
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<(PairCountKey, u64)>, StoreError> {
        self.rows(
            "read learning counts",
            "SELECT role, app_proto, transport, port, bucket_us, count FROM learning_counts
             WHERE bucket_us >= ?1 AND bucket_us < ?2",
            params![from_us, to_us],
            |r| {
                Ok((
                    PairCountKey {
                        role: r.get(0)?,
                        app_proto: r.get(1)?,
                        transport: r.get(2)?,
                        port: r.get(3)?,
                        bucket_us: r.get(4)?,
                    },
                    u64::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
                ))
            },
        )
    }
}
