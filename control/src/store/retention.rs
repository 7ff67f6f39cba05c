//! One retention pass over the store: rows older than their window go, in one transaction with
//! the audit entry that counts them.
//!
//! Owns: [`Store::prune`] and the directory name of kept uploads ([`UPLOADS_DIR`]). Must not:
//! choose the windows ([`crate::retention`]), read the clock, touch the audit log's existing rows,
//! alerts, or findings that raised one.

use rusqlite::params;
use serde_json::json;

use super::{insert_audit, sql, Store, StoreError};
use crate::audit::{AuditAction, AuditEntry};
use crate::device_state::{still_needed, DeviceStateEvent};
use crate::retention::{Cutoffs, PruneReport};

/// Directory beside the store where the admin API keeps uploaded inventory documents.
pub const UPLOADS_DIR: &str = "api-uploads";

/// Who a retention pass is audited as.
pub const RETENTION_ACTOR: &str = "portolan-retention";

impl Store {
    /// Removes what outlived `cutoffs`: device state reports no later read needs
    /// ([`still_needed`]), replaced device records, learning buckets, ended bindings and leases,
    /// findings idle since before the cutoff that raised no alert, and import records nothing
    /// refers to any more. Writes one audit entry with the counts when anything went. Returns the
    /// counts and the keys of the findings removed (the ingest side forgets them too).
    pub fn prune(&mut self, c: &Cutoffs) -> Result<(PruneReport, Vec<String>), StoreError> {
        // Read and parse before the transaction: a corrupt row is reported, nothing is removed.
        let doomed_states = self.device_states_to_prune(c.device_states_us)?;
        self.in_transaction(("begin retention", "commit retention"), |tx, path| {
            let mut report = PruneReport::default();
            for id in &doomed_states {
                tx.execute("DELETE FROM device_states WHERE id = ?1", params![id])
                    .map_err(sql(path, "prune device states"))?;
            }
            report.device_states = doomed_states.len() as u64;
            // Rows older than their cutoff, one statement a kind.
            let by_age: [(&mut u64, &str, i64, &'static str); 5] = [
                (
                    &mut report.device_history,
                    "DELETE FROM device_history WHERE replaced_us < ?1",
                    c.device_history_us,
                    "prune device history",
                ),
                (
                    &mut report.learning_counts,
                    "DELETE FROM learning_counts WHERE bucket_us < ?1",
                    c.learning_counts_us,
                    "prune learning counts",
                ),
                (
                    &mut report.bindings,
                    "DELETE FROM network_bindings \
                     WHERE valid_until_us IS NOT NULL AND valid_until_us < ?1",
                    c.bindings_us,
                    "prune address bindings",
                ),
                (
                    &mut report.leases,
                    "DELETE FROM leases WHERE valid_until_us < ?1",
                    c.bindings_us,
                    "prune leases",
                ),
                (
                    &mut report.radius_bindings,
                    "DELETE FROM radius_bindings \
                     WHERE valid_until_us IS NOT NULL AND valid_until_us < ?1",
                    c.bindings_us,
                    "prune radius bindings",
                ),
            ];
            for (field, statement, cutoff, op) in by_age {
                *field = tx
                    .execute(statement, params![cutoff])
                    .map_err(sql(path, op))? as u64;
            }
            let findings: Vec<String> = {
                let mut stmt = tx
                    .prepare(
                        "DELETE FROM findings WHERE last_seen_us < ?1 \
                         AND NOT EXISTS (SELECT 1 FROM alerts WHERE alerts.finding_id = findings.id) \
                         RETURNING key",
                    )
                    .map_err(sql(path, "prune findings"))?;
                let rows = stmt
                    .query_map(params![c.findings_us], |r| r.get::<_, String>(0))
                    .map_err(sql(path, "prune findings"))?;
                rows.collect::<rusqlite::Result<_>>()
                    .map_err(sql(path, "prune findings"))?
            };
            report.findings = findings.len() as u64;
            report.imports = tx
                .execute(
                    "DELETE FROM imports WHERE id NOT IN (SELECT import_id FROM devices \
                     UNION SELECT import_id FROM device_history \
                     UNION SELECT import_id FROM network_bindings)",
                    [],
                )
                .map_err(sql(path, "prune import records"))? as u64;
            if report.total() > 0 {
                let entry = AuditEntry::new(
                    RETENTION_ACTOR,
                    AuditAction::RetentionPruned,
                    "store",
                    json!(report),
                    "retention windows ([control.retention])",
                )
                .map_err(StoreError::from)?;
                insert_audit(tx, path, &entry)?;
            }
            Ok((report, findings))
        })
    }

    /// Ids of the device state reports older than `cutoff_us` that [`still_needed`] lets go.
    fn device_states_to_prune(&self, cutoff_us: i64) -> Result<Vec<i64>, StoreError> {
        let rows = self.tuples::<(i64, String, String), _>(
            "read device states to prune",
            "SELECT id, device_key, data FROM device_states WHERE ts_us < ?1 \
             ORDER BY device_key, ts_us, id",
            params![cutoff_us],
        )?;
        let mut doomed = Vec::new();
        let mut start = 0;
        while start < rows.len() {
            let key = &rows[start].1;
            let end = rows[start..]
                .iter()
                .position(|r| &r.1 != key)
                .map_or(rows.len(), |n| start + n);
            let group = &rows[start..end];
            let events = group
                .iter()
                .map(|(id, _, data)| self.json::<DeviceStateEvent>("device_states", *id, data))
                .collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&DeviceStateEvent> = events.iter().collect();
            for ((id, _, _), keep) in group.iter().zip(still_needed(&refs)) {
                if !keep {
                    doomed.push(*id);
                }
            }
            start = end;
        }
        Ok(doomed)
    }
}
