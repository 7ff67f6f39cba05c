//! This crate's tables in the appliance's SQLite file (`api_tokens`, `api_alert_closures`) and their
//! migrations, versioned in `api_schema_migrations` so they never collide with the control plane's own
//! `PRAGMA user_version` migrations.
//!
//! Also owns the text form of the times written to these tables (`now_rfc3339`).
//!
//! This module must not touch the control plane's tables, nor depend on the modules that use it.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, Transaction, TransactionBehavior};

/// Ordered schema migrations of this crate's tables. Never edit a shipped entry; append.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE api_tokens (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        hash       BLOB    NOT NULL UNIQUE,
        role       TEXT    NOT NULL CHECK (role IN ('admin', 'analyst', 'viewer')),
        label      TEXT    NOT NULL DEFAULT '',
        created_at TEXT    NOT NULL,
        revoked_at TEXT
    );",
    "CREATE TABLE api_alert_closures (
        alert_id INTEGER PRIMARY KEY,
        ts_us    INTEGER NOT NULL,
        actor    TEXT    NOT NULL,
        note     TEXT    NOT NULL
    );",
];

/// Opens the file with a busy timeout and WAL (so the daemon and the CLI can use it at once), migrated.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    migrate(&conn)?;
    Ok(conn)
}

/// Applies the migrations not yet applied, each in its own transaction.
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS api_schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at TEXT NOT NULL
         );",
    )?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i64::try_from(i).unwrap_or(i64::MAX).saturating_add(1);
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        // Checked inside the transaction, so two processes opening the file at once migrate once.
        let applied: i64 = tx.query_row(
            "SELECT COUNT(*) FROM api_schema_migrations WHERE version = ?1",
            [version],
            |r| r.get(0),
        )?;
        if applied > 0 {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO api_schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![version, now_rfc3339()],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// The current time as RFC 3339 text, the form this crate's tables keep (`created_at`, `revoked_at`,
/// `applied_at`).
pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
