//! Learning proposals an operator rejected (table `proposal_rejections`): which pairing of which role,
//! written in one transaction with its audit entry (`proposal_rejected`), so a rejection is as durable
//! and as accountable as an approval.
//!
//! A rejection changes no verdict (the pairing stays outside the baseline, as before); it only stops the
//! pairing from being proposed again. Must not: decide who may reject (the API checks roles) or touch
//! baselines, exceptions or alerts.

use rusqlite::params;

use super::{sql, Store, StoreError};
use crate::audit::AuditEntry;
use crate::learning::{ApprovedPairing, PairingRejection};

pub(super) const MIGRATION: &str = r#"
    CREATE TABLE proposal_rejections (
        id INTEGER PRIMARY KEY,
        role TEXT NOT NULL,
        app_proto TEXT NOT NULL,
        transport TEXT,
        port INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
        audit_id INTEGER NOT NULL REFERENCES audit_log(id)
    );
    CREATE INDEX proposal_rejections_role ON proposal_rejections(role, port);
"#;

impl Store {
    /// Records the rejection of `pairings` proposed for `role` together with its audit entry;
    /// returns the audit id.
    pub fn reject_pairings(
        &mut self,
        role: &str,
        pairings: &[ApprovedPairing],
        entry: &AuditEntry,
    ) -> Result<i64, StoreError> {
        self.audited_change(entry, ("begin rejection", "commit rejection"), |tx, path, audit_id| {
            for p in pairings {
                tx.execute(
                    "INSERT INTO proposal_rejections (role, app_proto, transport, port, audit_id) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![role, p.app_proto.to_ascii_lowercase(), p.transport.as_deref().map(str::to_ascii_uppercase), p.port, audit_id],
                )
                .map_err(sql(path, "write rejected pairing"))?;
            }
            Ok(())
        })
    }

    /// Every rejected pairing, oldest first.
    pub fn pairing_rejections(&self) -> Result<Vec<PairingRejection>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.role, r.app_proto, r.transport, r.port, a.ts_us, a.actor, a.reason, r.audit_id
                 FROM proposal_rejections r JOIN audit_log a ON a.id = r.audit_id ORDER BY r.id",
            )
            .map_err(sql(&self.path, "read rejected pairings"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(PairingRejection {
                    role: r.get(0)?,
                    app_proto: r.get(1)?,
                    transport: r.get(2)?,
                    port: r.get(3)?,
                    ts_us: r.get(4)?,
                    actor: r.get(5)?,
                    reason: r.get(6)?,
                    audit_id: r.get(7)?,
                })
            })
            .map_err(sql(&self.path, "read rejected pairings"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql(&self.path, "read rejected pairings"))?;
        Ok(rows)
    }
}
