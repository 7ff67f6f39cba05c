//! Triage of alerts beyond acknowledgement and closure: escalations and comments (table
//! `alert_triage`), and the undo of each triage act (acknowledgement, closure, escalation, comment).
//!
//! Every change and its audit entry are written in one transaction; nothing is deleted (an undone
//! escalation or retracted comment keeps its row, marked with who undid it and when), so the audit log
//! and the table tell the same story. Must not: decide who may triage (the API checks roles) or touch
//! findings.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{alert_state, insert_audit, sql, Store, StoreError};
use crate::audit::AuditEntry;

/// What kind of triage note a row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TriageKind {
    /// The alert was escalated (at most one live escalation per alert).
    Escalation,
    /// A free-text comment.
    Comment,
}

impl TriageKind {
    fn as_str(self) -> &'static str {
        match self {
            TriageKind::Escalation => "escalation",
            TriageKind::Comment => "comment",
        }
    }

    fn from_name(name: &str) -> Option<TriageKind> {
        match name {
            "escalation" => Some(TriageKind::Escalation),
            "comment" => Some(TriageKind::Comment),
            _ => None,
        }
    }
}

/// A live (not undone) escalation or comment on an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriageNote {
    /// Row id (the comment id the API shows).
    pub id: i64,
    /// The alert.
    pub alert_id: i64,
    /// Escalation or comment.
    pub kind: TriageKind,
    /// When, µs.
    pub ts_us: i64,
    /// Who.
    pub actor: String,
    /// The note or comment text.
    pub note: String,
}

/// What a triage change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriageOutcome {
    /// Done (and audited); for a comment, the new comment's id.
    Done(i64),
    /// No alert (or no such comment on it) has that id.
    NotFound,
    /// Nothing to do: the alert is not in the state the change undoes or already in the state it sets.
    Unchanged,
}

pub(super) const MIGRATION: &str = r#"
    CREATE TABLE alert_triage (
        id INTEGER PRIMARY KEY,
        alert_id INTEGER NOT NULL REFERENCES alerts(id),
        kind TEXT NOT NULL CHECK (kind IN ('escalation', 'comment')),
        ts_us INTEGER NOT NULL,
        actor TEXT NOT NULL,
        note TEXT NOT NULL,
        undone_us INTEGER,
        undone_by TEXT,
        undo_audit_id INTEGER REFERENCES audit_log(id)
    );
    CREATE INDEX alert_triage_alert ON alert_triage(alert_id, id);
"#;

/// Which of an alert's own acts an undo clears (its acknowledgement or its closure).
#[derive(Clone, Copy)]
enum AlertAct {
    Acknowledgement,
    Closure,
}

impl Store {
    /// Escalates an alert (audited); [`TriageOutcome::Unchanged`] when it is already escalated.
    pub fn escalate_alert(
        &mut self,
        alert_id: i64,
        entry: &AuditEntry,
    ) -> Result<TriageOutcome, StoreError> {
        self.add_triage_note(alert_id, TriageKind::Escalation, entry)
    }

    /// Adds a comment (the entry's reason is its text; audited); returns its id.
    pub fn comment_alert(
        &mut self,
        alert_id: i64,
        entry: &AuditEntry,
    ) -> Result<TriageOutcome, StoreError> {
        self.add_triage_note(alert_id, TriageKind::Comment, entry)
    }

    fn add_triage_note(
        &mut self,
        alert_id: i64,
        kind: TriageKind,
        entry: &AuditEntry,
    ) -> Result<TriageOutcome, StoreError> {
        self.in_transaction(("begin triage", "commit triage"), |tx, path| {
            if alert_state(tx, alert_id)
                .map_err(sql(path, "read alert"))?
                .is_none()
            {
                return Ok(TriageOutcome::NotFound);
            }
            if kind == TriageKind::Escalation {
                let live: i64 = tx
                    .query_row(
                        "SELECT COUNT(*) FROM alert_triage WHERE alert_id = ?1 AND kind = 'escalation' AND undone_us IS NULL",
                        [alert_id],
                        |r| r.get(0),
                    )
                    .map_err(sql(path, "read escalation"))?;
                if live > 0 {
                    return Ok(TriageOutcome::Unchanged);
                }
            }
            tx.execute(
                "INSERT INTO alert_triage (alert_id, kind, ts_us, actor, note) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![alert_id, kind.as_str(), entry.ts_us, entry.actor, entry.reason],
            )
            .map_err(sql(path, "write triage note"))?;
            let id = tx.last_insert_rowid();
            insert_audit(tx, path, entry)?;
            Ok(TriageOutcome::Done(id))
        })
    }

    /// Undoes an alert's live escalation (audited).
    pub fn deescalate_alert(
        &mut self,
        alert_id: i64,
        entry: &AuditEntry,
    ) -> Result<TriageOutcome, StoreError> {
        self.undo_triage_note(alert_id, TriageKind::Escalation, None, entry)
    }

    /// Retracts a live comment of an alert (audited).
    pub fn retract_alert_comment(
        &mut self,
        alert_id: i64,
        comment_id: i64,
        entry: &AuditEntry,
    ) -> Result<TriageOutcome, StoreError> {
        self.undo_triage_note(alert_id, TriageKind::Comment, Some(comment_id), entry)
    }

    fn undo_triage_note(
        &mut self,
        alert_id: i64,
        kind: TriageKind,
        row: Option<i64>,
        entry: &AuditEntry,
    ) -> Result<TriageOutcome, StoreError> {
        self.in_transaction(("begin undo", "commit undo"), |tx, path| {
            if alert_state(tx, alert_id)
                .map_err(sql(path, "read alert"))?
                .is_none()
            {
                return Ok(TriageOutcome::NotFound);
            }
            let found: Option<(i64, Option<i64>)> = tx
                .query_row(
                    "SELECT id, undone_us FROM alert_triage
                     WHERE alert_id = ?1 AND kind = ?2 AND (?3 IS NULL OR id = ?3)
                     ORDER BY undone_us IS NULL DESC, id DESC LIMIT 1",
                    params![alert_id, kind.as_str(), row],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(sql(path, "read triage note"))?;
            let id = match found {
                None if row.is_some() => return Ok(TriageOutcome::NotFound),
                None | Some((_, Some(_))) => return Ok(TriageOutcome::Unchanged),
                Some((id, None)) => id,
            };
            let audit_id = insert_audit(tx, path, entry)?;
            tx.execute(
                "UPDATE alert_triage SET undone_us = ?1, undone_by = ?2, undo_audit_id = ?3 WHERE id = ?4",
                params![entry.ts_us, entry.actor, audit_id, id],
            )
            .map_err(sql(path, "undo triage note"))?;
            Ok(TriageOutcome::Done(id))
        })
    }

    /// Undoes an acknowledgement (audited); [`TriageOutcome::Unchanged`] when the alert is not
    /// acknowledged or is closed (reopen it first).
    pub fn unacknowledge_alert(
        &mut self,
        alert_id: i64,
        entry: &AuditEntry,
    ) -> Result<TriageOutcome, StoreError> {
        self.undo_alert_act(alert_id, AlertAct::Acknowledgement, entry)
    }

    /// Reopens a closed alert (audited); it stays acknowledged. [`TriageOutcome::Unchanged`] when it
    /// is not closed.
    pub fn reopen_alert(
        &mut self,
        alert_id: i64,
        entry: &AuditEntry,
    ) -> Result<TriageOutcome, StoreError> {
        self.undo_alert_act(alert_id, AlertAct::Closure, entry)
    }

    /// Clears an alert's acknowledgement (only while it is not closed) or closure, audited.
    fn undo_alert_act(
        &mut self,
        alert_id: i64,
        act: AlertAct,
        entry: &AuditEntry,
    ) -> Result<TriageOutcome, StoreError> {
        let (update, op) = match act {
            AlertAct::Acknowledgement => (
                "UPDATE alerts SET acked_us = NULL, acked_by = NULL, ack_note = NULL WHERE id = ?1",
                "undo acknowledgement",
            ),
            AlertAct::Closure => (
                "UPDATE alerts SET closed_us = NULL, closed_by = NULL, close_note = NULL WHERE id = ?1",
                "reopen alert",
            ),
        };
        self.in_transaction(("begin undo", "commit undo"), |tx, path| {
            let undoable = match alert_state(tx, alert_id).map_err(sql(path, "read alert"))? {
                None => return Ok(TriageOutcome::NotFound),
                Some((acked, closed)) => match act {
                    AlertAct::Acknowledgement => acked.is_some() && closed.is_none(),
                    AlertAct::Closure => closed.is_some(),
                },
            };
            if !undoable {
                return Ok(TriageOutcome::Unchanged);
            }
            tx.execute(update, [alert_id]).map_err(sql(path, op))?;
            insert_audit(tx, path, entry)?;
            Ok(TriageOutcome::Done(alert_id))
        })
    }

    /// Live escalations and comments, of one alert or of all, oldest first.
    pub fn triage_notes(&self, alert_id: Option<i64>) -> Result<Vec<TriageNote>, StoreError> {
        Ok(self
            .tuples::<(i64, i64, String, i64, String, String), _>(
                "read triage notes",
                "SELECT id, alert_id, kind, ts_us, actor, note FROM alert_triage
                 WHERE undone_us IS NULL AND (?1 IS NULL OR alert_id = ?1) ORDER BY id",
                [alert_id],
            )?
            .into_iter()
            .filter_map(|(id, alert_id, kind, ts_us, actor, note)| {
                Some(TriageNote {
                    id,
                    alert_id,
                    kind: TriageKind::from_name(&kind)?,
                    ts_us,
                    actor,
                    note,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditAction;
    use serde_json::json;

    fn entry(action: AuditAction, id: i64, reason: &str) -> AuditEntry {
        AuditEntry::new(
            "tester",
            action,
            &id.to_string(),
            json!({"alert_id": id}),
            reason,
        )
        .unwrap()
    }

    #[test]
    fn unknown_alerts_are_not_found_and_nothing_is_audited() {
        let mut s = Store::open_in_memory().unwrap();
        let e = entry(AuditAction::AlertEscalated, 7, "why");
        assert_eq!(s.escalate_alert(7, &e).unwrap(), TriageOutcome::NotFound);
        assert_eq!(s.comment_alert(7, &e).unwrap(), TriageOutcome::NotFound);
        assert_eq!(
            s.unacknowledge_alert(7, &e).unwrap(),
            TriageOutcome::NotFound
        );
        assert_eq!(s.reopen_alert(7, &e).unwrap(), TriageOutcome::NotFound);
        assert!(s.audit_log().unwrap().is_empty());
        assert!(s.triage_notes(None).unwrap().is_empty());
    }
}
