//! The central's side of the fleet in its store: what each appliance sent (tables
//! `fleet_appliances`, `fleet_finding_parts`) and the merged view written into the ordinary
//! `findings`, `alerts` and `learning_counts` tables, so the admin API serves the fleet as it
//! serves one appliance.
//!
//! [`Store::apply_fleet_message`] applies one message in one transaction and is idempotent: an
//! appliance's messages carry increasing outbox sequence numbers and are applied in that order,
//! so a message whose `seq` is not above the appliance's last applied one was applied already
//! (a redelivery after a crash before the ack, or a copy sent again after JetStream's
//! de-duplication window) and changes nothing. A finding is kept per (key, appliance) as each
//! appliance last reported it, and the finding the API shows is their merge
//! ([`Finding::merge_parts`]): a device roaming between sites keeps one record and one score.
//!
//! Owns: these tables' SQL. Must not: decode messages (`crate::fleet` does) or talk to a server.

use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use super::{sql, to_json, Store, StoreError};
use crate::findings::Finding;
use crate::fleet::{Body, FleetMessage};

pub(super) const MIGRATION: &str = r#"
    CREATE TABLE fleet_appliances (
        appliance TEXT PRIMARY KEY,
        site TEXT NOT NULL,
        version TEXT NOT NULL,
        last_seq INTEGER NOT NULL,
        last_seen_us INTEGER NOT NULL,
        last_sent_us INTEGER NOT NULL,
        backlog INTEGER NOT NULL,
        messages INTEGER NOT NULL,
        duplicates INTEGER NOT NULL,
        gaps INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE fleet_finding_parts (
        key TEXT NOT NULL,
        appliance TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (key, appliance)
    ) WITHOUT ROWID;
"#;

/// One appliance as the central knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplianceRecord {
    /// Appliance id.
    pub appliance: String,
    /// Its site.
    pub site: String,
    /// Its software version (as of its latest message).
    pub version: String,
    /// The outbox sequence number of its latest applied message.
    pub last_seq: i64,
    /// When the central applied its latest message, µs.
    pub last_seen_us: i64,
    /// When the appliance queued its latest message, µs.
    pub last_sent_us: i64,
    /// Rows waiting in its outbox when it sent its latest message.
    pub backlog: u64,
    /// Messages applied.
    pub messages: u64,
    /// Messages received again and ignored (already applied).
    pub duplicates: u64,
    /// Sequence numbers skipped (rows its full outbox did not take).
    pub gaps: u64,
}

/// What [`Store::apply_fleet_message`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Applied.
    New,
    /// Already applied earlier; nothing changed but the duplicate count.
    Duplicate,
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The appliance's last applied sequence number, when it sent anything before.
fn last_seq(tx: &Transaction<'_>, appliance: &str) -> rusqlite::Result<Option<i64>> {
    tx.query_row(
        "SELECT last_seq FROM fleet_appliances WHERE appliance = ?1",
        [appliance],
        |r| r.get(0),
    )
    .optional()
}

impl Store {
    /// Applies one message from an appliance (see the module documentation); `now_us` is when.
    pub fn apply_fleet_message(
        &mut self,
        m: &FleetMessage,
        now_us: i64,
    ) -> Result<Applied, StoreError> {
        self.in_transaction(("begin fleet message", "commit fleet message"), |tx, path| {
            let last = last_seq(tx, &m.appliance).map_err(sql(path, "read appliance"))?;
            if last.is_some_and(|l| m.seq <= l) {
                tx.execute(
                    "UPDATE fleet_appliances SET duplicates = duplicates + 1 WHERE appliance = ?1",
                    [&m.appliance],
                )
                .map_err(sql(path, "count duplicate"))?;
                return Ok(Applied::Duplicate);
            }
            let gap = match last {
                Some(l) => m.seq - l - 1,
                None => m.seq - 1,
            }
            .max(0);
            match &m.body {
                Body::Finding(f) => merge_finding(tx, path, &m.appliance, f)?,
                Body::Alert(a) => {
                    let finding_id: Option<i64> = tx
                        .query_row(
                            "SELECT id FROM findings WHERE key = ?1",
                            [&a.finding_key],
                            |r| r.get(0),
                        )
                        .optional()
                        .map_err(sql(path, "find alert's finding"))?;
                    let Some(finding_id) = finding_id else {
                        return Err(StoreError::Corrupt {
                            path: path.to_path_buf(),
                            table: "findings",
                            row: a.finding_key.clone(),
                            message: format!(
                                "alert {}:{} names a finding no message brought",
                                m.appliance, m.seq
                            ),
                        });
                    };
                    let mut alert = (**a).clone();
                    alert.finding_id = finding_id;
                    tx.execute(
                        "INSERT INTO alerts (finding_id, ts_us, signature_id, severity, score, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![finding_id, alert.ts_us, alert.signature.signature_id, alert.severity.as_str(), alert.score, to_json(&alert)],
                    )
                    .map_err(sql(path, "write alert"))?;
                }
                Body::Learning(l) => {
                    for c in &l.counts {
                        tx.execute(
                            "INSERT INTO learning_counts (role, app_proto, transport, port, bucket_us, count) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                             ON CONFLICT(role, app_proto, transport, port, bucket_us) DO UPDATE SET count = count + excluded.count",
                            params![c.role, c.app_proto, c.transport, c.port, c.bucket_us, i64_of(c.count)],
                        )
                        .map_err(sql(path, "write learning count"))?;
                    }
                }
            }
            tx.execute(
                "INSERT INTO fleet_appliances (appliance, site, version, last_seq, last_seen_us, last_sent_us, backlog, messages, duplicates, gaps)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, 0, ?8)
                 ON CONFLICT(appliance) DO UPDATE SET site = excluded.site, version = excluded.version,
                   last_seq = excluded.last_seq, last_seen_us = excluded.last_seen_us,
                   last_sent_us = excluded.last_sent_us, backlog = excluded.backlog,
                   messages = messages + 1, gaps = gaps + excluded.gaps",
                params![m.appliance, m.site, m.version, m.seq, now_us, m.ts_us, i64_of(m.backlog), gap],
            )
            .map_err(sql(path, "write appliance"))?;
            Ok(Applied::New)
        })
    }

    /// Every appliance that sent something, by id.
    pub fn fleet_appliances(&self) -> Result<Vec<ApplianceRecord>, StoreError> {
        self.rows(
            "read appliances",
            "SELECT appliance, site, version, last_seq, last_seen_us, last_sent_us, backlog, messages, duplicates, gaps
             FROM fleet_appliances ORDER BY appliance",
            [],
            |r| {
                Ok(ApplianceRecord {
                    appliance: r.get(0)?,
                    site: r.get(1)?,
                    version: r.get(2)?,
                    last_seq: r.get(3)?,
                    last_seen_us: r.get(4)?,
                    last_sent_us: r.get(5)?,
                    backlog: u64_of(r.get(6)?),
                    messages: u64_of(r.get(7)?),
                    duplicates: u64_of(r.get(8)?),
                    gaps: u64_of(r.get(9)?),
                })
            },
        )
    }
}

/// Keeps `f` as `appliance`'s part of its finding and writes the merge of every part.
fn merge_finding(
    tx: &Transaction<'_>,
    path: &std::path::Path,
    appliance: &str,
    f: &Finding,
) -> Result<(), StoreError> {
    let key = f.key.as_text();
    tx.execute(
        "INSERT INTO fleet_finding_parts (key, appliance, data) VALUES (?1, ?2, ?3)
         ON CONFLICT(key, appliance) DO UPDATE SET data = excluded.data",
        params![key, appliance, to_json(f)],
    )
    .map_err(sql(path, "write finding part"))?;
    let mut parts = Vec::new();
    {
        let mut stmt = tx
            .prepare_cached("SELECT appliance, data FROM fleet_finding_parts WHERE key = ?1")
            .map_err(sql(path, "read finding parts"))?;
        let rows = stmt
            .query_map([&key], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(sql(path, "read finding parts"))?;
        for row in rows {
            let (who, data) = row.map_err(sql(path, "read finding parts"))?;
            let part: Finding = serde_json::from_str(&data).map_err(|e| StoreError::Corrupt {
                path: path.to_path_buf(),
                table: "fleet_finding_parts",
                row: format!("{key} from {who}"),
                message: e.to_string(),
            })?;
            parts.push(part);
        }
    }
    let Some(m) = Finding::merge_parts(&parts) else {
        return Ok(());
    };
    tx.execute(
        "INSERT INTO findings (key, device, app_proto, dest_port, score, severity, sessions, first_seen_us, last_seen_us, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT(key) DO UPDATE SET score = excluded.score, severity = excluded.severity,
           sessions = excluded.sessions, first_seen_us = excluded.first_seen_us,
           last_seen_us = excluded.last_seen_us, data = excluded.data",
        params![
            key,
            m.key.device,
            m.key.app_proto,
            m.key.port,
            m.score,
            m.severity.as_str(),
            i64_of(m.sessions),
            m.first_seen_us,
            m.last_seen_us,
            to_json(&m)
        ],
    )
    .map_err(sql(path, "write merged finding"))?;
    Ok(())
}
