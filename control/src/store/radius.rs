//! RADIUS accounting bindings (table `radius_bindings`): which MAC held which address (or IPv6
//! prefix) from when to when, by NAS and Acct-Session-Id. The rules are in
//! [`crate::radius`]; this module applies them in one transaction per accounting record.
//!
//! Owns: the table's SQL. Must not: parse packets or join MACs to devices.

use std::collections::BTreeSet;

use rusqlite::{params, OptionalExtension, Transaction};

use super::{sql, Store, StoreError};
use crate::radius::{unusable, AccountingEvent, AccountingOutcome, RadiusBinding, StatusType};

pub(super) const MIGRATION: &str = r#"
    CREATE TABLE radius_bindings (
        id INTEGER PRIMARY KEY,
        nas TEXT NOT NULL,
        session TEXT NOT NULL,
        address TEXT NOT NULL,
        hwaddr TEXT NOT NULL,
        valid_from_us INTEGER NOT NULL,
        valid_until_us INTEGER
    );
    CREATE INDEX radius_bindings_address ON radius_bindings(address, valid_until_us);
    CREATE INDEX radius_bindings_session ON radius_bindings(nas, session);
"#;

/// Ends every open binding matching `filter` (a `WHERE` clause over `?1` = the time and the
/// further `args` as `?2`, ...) at the time, never before its start; returns the addresses ended.
fn close(
    tx: &Transaction<'_>,
    path: &std::path::Path,
    filter: &str,
    at_us: i64,
    args: &[&str],
) -> Result<Vec<String>, StoreError> {
    let mut stmt = tx
        .prepare(&format!(
            "UPDATE radius_bindings SET valid_until_us = MAX(valid_from_us, ?1) \
             WHERE valid_until_us IS NULL AND {filter} RETURNING address"
        ))
        .map_err(sql(path, "end radius bindings"))?;
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&at_us];
    values.extend(args.iter().map(|a| a as &dyn rusqlite::ToSql));
    let rows = stmt
        .query_map(values.as_slice(), |r| r.get::<_, String>(0))
        .map_err(sql(path, "end radius bindings"))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(sql(path, "end radius bindings"))
}

impl Store {
    /// Applies one accounting record (see [`crate::radius`] for the rules) in one transaction.
    pub fn apply_accounting(
        &mut self,
        ev: &AccountingEvent,
    ) -> Result<AccountingOutcome, StoreError> {
        if let Some(reason) = unusable(ev) {
            return Ok(AccountingOutcome {
                ignored: Some(reason),
                ..Default::default()
            });
        }
        self.in_transaction(("begin radius accounting", "commit radius accounting"), |tx, path| {
            let mut out = AccountingOutcome::default();
            let mut touched = BTreeSet::new();
            let session = ev.session_id.as_deref().unwrap_or("");
            match ev.status {
                StatusType::AccountingOn | StatusType::AccountingOff => {
                    let ended = close(tx, path, "nas = ?2", ev.at_us, &[ev.nas.as_str()])?;
                    out.closed = ended.len();
                    touched.extend(ended);
                }
                StatusType::Stop => {
                    let ended =
                        close(tx, path, "nas = ?2 AND session = ?3", ev.at_us, &[ev.nas.as_str(), session])?;
                    out.closed = ended.len();
                    touched.extend(ended);
                    // A Stop for a session never seen: its addresses over Acct-Session-Time.
                    if let (Some(mac), Some(secs)) = (&ev.hwaddr, ev.session_time_s) {
                        for addr in ev.address_texts() {
                            let seen: Option<i64> = tx
                                .query_row(
                                    "SELECT id FROM radius_bindings WHERE nas = ?1 AND session = ?2 AND address = ?3",
                                    params![ev.nas, session, addr],
                                    |r| r.get(0),
                                )
                                .optional()
                                .map_err(sql(path, "read radius binding"))?;
                            // Only where no other binding of the address overlaps the time:
                            // rather no binding than a wrong one.
                            let from = ev.at_us - i64::from(secs) * 1_000_000;
                            let other: Option<i64> = tx
                                .query_row(
                                    "SELECT id FROM radius_bindings WHERE address = ?1 AND valid_from_us < ?3 \
                                     AND (valid_until_us IS NULL OR valid_until_us > ?2) LIMIT 1",
                                    params![addr, from, ev.at_us],
                                    |r| r.get(0),
                                )
                                .optional()
                                .map_err(sql(path, "read radius binding"))?;
                            if seen.is_none() && other.is_none() {
                                tx.execute(
                                    "INSERT INTO radius_bindings (nas, session, address, hwaddr, valid_from_us, valid_until_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                    params![ev.nas, session, addr, mac, from, ev.at_us],
                                )
                                .map_err(sql(path, "write radius binding"))?;
                                out.opened += 1;
                                out.closed += 1;
                                touched.insert(addr);
                            }
                        }
                    }
                }
                StatusType::Start | StatusType::InterimUpdate => {
                    let mac = ev.hwaddr.as_deref().unwrap_or("");
                    let current = ev.address_texts();
                    // Addresses this session no longer lists end.
                    let mut stmt = tx
                        .prepare(
                            "SELECT DISTINCT address FROM radius_bindings WHERE nas = ?1 AND session = ?2 AND valid_until_us IS NULL",
                        )
                        .map_err(sql(path, "read radius session"))?;
                    let open: Vec<String> = stmt
                        .query_map(params![ev.nas, session], |r| r.get(0))
                        .map_err(sql(path, "read radius session"))?
                        .collect::<Result<_, _>>()
                        .map_err(sql(path, "read radius session"))?;
                    drop(stmt);
                    for gone in open.iter().filter(|a| !current.contains(a)) {
                        let ended = close(
                            tx,
                            path,
                            "nas = ?2 AND session = ?3 AND address = ?4",
                            ev.at_us,
                            &[ev.nas.as_str(), session, gone.as_str()],
                        )?;
                        out.closed += ended.len();
                        touched.insert(gone.clone());
                    }
                    for addr in current {
                        // Known for this session: still open, or ended at or after this event
                        // (a late Interim-Update after the Stop opens nothing).
                        let known: Option<i64> = tx
                            .query_row(
                                "SELECT id FROM radius_bindings WHERE nas = ?1 AND session = ?2 AND address = ?3 \
                                 AND hwaddr = ?4 AND (valid_until_us IS NULL OR valid_until_us >= ?5)",
                                params![ev.nas, session, addr, mac, ev.at_us],
                                |r| r.get(0),
                            )
                            .optional()
                            .map_err(sql(path, "read radius binding"))?;
                        if known.is_some() {
                            continue;
                        }
                        // The address was reused: its other open bindings end here.
                        out.closed +=
                            close(tx, path, "address = ?2 AND valid_from_us <= ?1", ev.at_us, &[addr.as_str()])?
                                .len();
                        tx.execute(
                            "INSERT INTO radius_bindings (nas, session, address, hwaddr, valid_from_us, valid_until_us) VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
                            params![ev.nas, session, addr, mac, ev.at_us],
                        )
                        .map_err(sql(path, "write radius binding"))?;
                        out.opened += 1;
                        touched.insert(addr);
                    }
                }
                StatusType::Other(_) => {}
            }
            out.touched = touched.into_iter().collect();
            Ok(out)
        })
    }

    /// The RADIUS bindings of `addresses` (as stored), or of every address when `None`.
    pub fn radius_bindings(
        &self,
        addresses: Option<&[String]>,
    ) -> Result<Vec<RadiusBinding>, StoreError> {
        let rows: Vec<(String, String, i64, Option<i64>)> = match addresses {
            None => self.tuples(
                "read radius bindings",
                "SELECT address, hwaddr, valid_from_us, valid_until_us FROM radius_bindings",
                [],
            )?,
            Some(list) => {
                let mut all = Vec::new();
                for a in list {
                    all.extend(self.tuples::<(String, String, i64, Option<i64>), _>(
                        "read radius bindings",
                        "SELECT address, hwaddr, valid_from_us, valid_until_us FROM radius_bindings WHERE address = ?1",
                        params![a],
                    )?);
                }
                all
            }
        };
        rows.into_iter()
            .map(|(text, hwaddr, from, until)| {
                let (addr, prefix_len) = match text.split_once('/') {
                    Some((a, len)) => (
                        a,
                        Some(
                            len.parse::<u8>()
                                .map_err(|e| self.corrupt("radius_bindings", &text, e))?,
                        ),
                    ),
                    None => (text.as_str(), None),
                };
                Ok(RadiusBinding {
                    address: addr
                        .parse()
                        .map_err(|e| self.corrupt("radius_bindings", &text, e))?,
                    prefix_len,
                    hwaddr,
                    valid_from_us: from,
                    valid_until_us: until,
                })
            })
            .collect()
    }
}
