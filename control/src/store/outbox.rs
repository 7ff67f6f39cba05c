//! The fleet outbox (table `outbox`): every finding update, alert and learning-count flush the
//! store commits is also queued here, in the same transaction, for the fleet publisher to send to
//! JetStream. A row leaves the table only after JetStream acknowledged it ([`OutboxReader::remove_through`]).
//!
//! Sequence numbers come from `AUTOINCREMENT`, so a number is never given twice, even after the
//! rows before it were removed: the publisher's message id (appliance id + sequence) stays unique
//! for the store's life, which is what lets JetStream drop a re-sent copy.
//!
//! The outbox is bounded ([`Store::enable_outbox`]): when it holds `capacity` rows, a new row is
//! not queued and counted in `outbox_meta.dropped` instead (the finding or alert itself is still
//! committed locally). Rows are removed only from the front, so the rows present are always one
//! contiguous run of sequence numbers and the count is `newest - oldest + 1`, read from the
//! primary key, never by a scan.
//!
//! Owns: the outbox's SQL. Must not: decide what is published where (`portolan_control::fleet`
//! and the publisher do), or queue anything while the outbox is not enabled.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::{sql, Store, StoreError};
use crate::fleet::Kind;

pub(super) const MIGRATION: &str = r#"
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        ts_us INTEGER NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE TABLE outbox_meta (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO outbox_meta (key, value) VALUES ('dropped', 0);
"#;

/// One queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Outbox sequence number (never reused).
    pub seq: i64,
    /// What the payload is.
    pub kind: Kind,
    /// When it was queued, µs since the epoch.
    pub ts_us: i64,
    /// The record as JSON (a finding, an alert or learning counts).
    pub payload: String,
}

/// How full the outbox is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Rows waiting.
    pub rows: u64,
    /// Oldest waiting sequence number (0 when empty).
    pub oldest_seq: i64,
    /// Newest sequence number ever given (0 before the first).
    pub newest_seq: i64,
    /// Rows not queued because the outbox was full, since the store was created.
    pub dropped: u64,
}

/// Queues one row in `tx` when the outbox has room (`Ok(false)`, counted as dropped, when full).
pub(super) fn enqueue(
    tx: &Transaction<'_>,
    path: &Path,
    capacity: u64,
    kind: Kind,
    ts_us: i64,
    payload: &str,
) -> Result<bool, StoreError> {
    let rows = waiting(tx).map_err(sql(path, "count outbox rows"))?;
    if rows >= capacity {
        tx.execute(
            "UPDATE outbox_meta SET value = value + 1 WHERE key = 'dropped'",
            [],
        )
        .map_err(sql(path, "count dropped outbox row"))?;
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO outbox (kind, ts_us, payload) VALUES (?1, ?2, ?3)",
        params![kind.as_str(), ts_us, payload],
    )
    .map_err(sql(path, "queue outbox row"))?;
    Ok(true)
}

/// Rows waiting: the run from the oldest to the newest sequence number.
fn waiting(conn: &Connection) -> rusqlite::Result<u64> {
    let (min, max): (Option<i64>, Option<i64>) =
        conn.query_row("SELECT MIN(seq), MAX(seq) FROM outbox", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok(match (min, max) {
        (Some(a), Some(b)) => u64::try_from(b - a + 1).unwrap_or(0),
        _ => 0,
    })
}

fn stats(conn: &Connection, path: &Path) -> Result<OutboxStats, StoreError> {
    let rows = waiting(conn).map_err(sql(path, "count outbox rows"))?;
    let oldest: Option<i64> = conn
        .query_row("SELECT MIN(seq) FROM outbox", [], |r| r.get(0))
        .map_err(sql(path, "read outbox"))?;
    let newest: i64 = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql(path, "read outbox sequence"))?
        .unwrap_or(0);
    let dropped: i64 = conn
        .query_row(
            "SELECT value FROM outbox_meta WHERE key = 'dropped'",
            [],
            |r| r.get(0),
        )
        .map_err(sql(path, "read outbox drops"))?;
    Ok(OutboxStats {
        rows,
        oldest_seq: oldest.unwrap_or(0),
        newest_seq: newest,
        dropped: u64::try_from(dropped).unwrap_or(0),
    })
}

impl Store {
    /// Queues every finding update, alert and learning-count flush committed from now on in the
    /// outbox, at most `capacity` rows (at least 1).
    pub fn enable_outbox(&mut self, capacity: u64) {
        self.outbox = Some(capacity.max(1));
    }

    /// The outbox's bound, when it is enabled.
    pub fn outbox_capacity(&self) -> Option<u64> {
        self.outbox
    }

    /// How full the outbox is.
    pub fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        stats(&self.conn, &self.path)
    }
}

/// The publisher's own connection to the store file: reads the outbox in order and removes what
/// JetStream acknowledged. WAL mode lets it read while the engine writes; its writes (removals)
/// wait for the engine's transactions through the busy timeout.
#[derive(Debug)]
pub struct OutboxReader {
    conn: Connection,
    path: PathBuf,
}

impl OutboxReader {
    /// Opens the store file (which must exist and be at the outbox's schema version or newer).
    pub fn open(path: &Path) -> Result<OutboxReader, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql(path, "open for the outbox"))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(sql(path, "set busy timeout"))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql(path, "read schema version"))?;
        if version < super::OUTBOX_SCHEMA_VERSION {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                table: "outbox",
                row: "(schema)".to_string(),
                message: format!(
                    "schema version {version} has no outbox (open the store with this build first)"
                ),
            });
        }
        Ok(OutboxReader {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Up to `limit` rows after `after_seq`, oldest first.
    pub fn batch(&self, after_seq: i64, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, kind, ts_us, payload FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(sql(&self.path, "read outbox"))?;
        let rows = stmt
            .query_map(params![after_seq, limit], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(sql(&self.path, "read outbox"))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, kind, ts_us, payload) = row.map_err(sql(&self.path, "read outbox"))?;
            let kind = Kind::from_name(&kind).ok_or_else(|| StoreError::Corrupt {
                path: self.path.clone(),
                table: "outbox",
                row: seq.to_string(),
                message: format!("unknown kind {kind:?}"),
            })?;
            out.push(OutboxRow {
                seq,
                kind,
                ts_us,
                payload,
            });
        }
        Ok(out)
    }

    /// Removes every row up to and including `seq` (JetStream acknowledged them).
    pub fn remove_through(&self, seq: i64) -> Result<usize, StoreError> {
        self.conn
            .execute("DELETE FROM outbox WHERE seq <= ?1", [seq])
            .map_err(sql(&self.path, "remove published outbox rows"))
    }

    /// How full the outbox is.
    pub fn stats(&self) -> Result<OutboxStats, StoreError> {
        stats(&self.conn, &self.path)
    }
}
