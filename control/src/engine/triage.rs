//! Alert acts: acknowledging, closing, escalating, commenting and undoing, each written to the audit
//! log in the same transaction; and reading alerts, their triage notes and the audit log.
//!
//! Owns: the [`Operator`] methods on alerts and the audit log. Must not: raise, score or change an
//! alert's content (ingest raised it), or build SQL.

use serde_json::json;

use super::{ControlError, Operator, TriageAct};
use crate::audit::{AuditAction, AuditEntry};
use crate::store::{CloseOutcome, StoredAlert, TriageNote, TriageOutcome};

impl Operator {
    /// Every stored alert with its acknowledgement.
    pub fn alerts(&self) -> Result<Vec<StoredAlert>, ControlError> {
        Ok(self.core.lock()?.store.alerts()?)
    }

    /// One stored alert with its acknowledgement and closure.
    pub fn alert(&self, alert_id: i64) -> Result<Option<StoredAlert>, ControlError> {
        Ok(self.core.lock()?.store.alert(alert_id)?)
    }

    /// One stored finding (as the latest committed batch left it: an open session's duration
    /// grows with its interim updates).
    pub fn finding(
        &self,
        finding_id: i64,
    ) -> Result<Option<crate::findings::Finding>, ControlError> {
        Ok(self.core.lock()?.store.finding(finding_id)?)
    }

    /// Live escalations and comments, of one alert or of all, oldest first.
    pub fn triage_notes(&self, alert_id: Option<i64>) -> Result<Vec<TriageNote>, ControlError> {
        Ok(self.core.lock()?.store.triage_notes(alert_id)?)
    }

    /// The audit log, oldest first.
    pub fn audit_log(&self) -> Result<Vec<AuditEntry>, ControlError> {
        Ok(self.core.lock()?.store.audit_log()?)
    }

    /// Acknowledges an alert (audited). False when it does not exist or is already acknowledged.
    pub fn acknowledge_alert(
        &self,
        alert_id: i64,
        actor: &str,
        note: &str,
    ) -> Result<bool, ControlError> {
        let entry = alert_entry(actor, AuditAction::AlertAcknowledged, alert_id, note)?;
        Ok(self
            .core
            .lock()?
            .store
            .acknowledge_alert(alert_id, &entry)?)
    }

    /// Closes an alert with a note (audited as `alert_closed`); an alert still open is
    /// acknowledged by the same act. See [`CloseOutcome`] for an unknown or already closed id.
    pub fn close_alert(
        &self,
        alert_id: i64,
        actor: &str,
        note: &str,
    ) -> Result<CloseOutcome, ControlError> {
        let entry = alert_entry(actor, AuditAction::AlertClosed, alert_id, note)?;
        Ok(self.core.lock()?.store.close_alert(alert_id, &entry)?)
    }

    /// Applies one triage act to an alert (escalate, comment, or undo an acknowledgement, closure,
    /// escalation or comment), audited under `actor` with `note` as the reason (a comment's text).
    pub fn triage_alert(
        &self,
        alert_id: i64,
        act: TriageAct,
        actor: &str,
        note: &str,
    ) -> Result<TriageOutcome, ControlError> {
        let (action, detail) = match act {
            TriageAct::Escalate => (AuditAction::AlertEscalated, json!({"alert_id": alert_id})),
            TriageAct::Comment => (AuditAction::AlertCommented, json!({"alert_id": alert_id})),
            TriageAct::UndoAcknowledge => (
                AuditAction::AlertUnacknowledged,
                json!({"alert_id": alert_id}),
            ),
            TriageAct::UndoClose => (AuditAction::AlertReopened, json!({"alert_id": alert_id})),
            TriageAct::UndoEscalate => {
                (AuditAction::AlertDeescalated, json!({"alert_id": alert_id}))
            }
            TriageAct::RetractComment(c) => (
                AuditAction::AlertCommentRetracted,
                json!({"alert_id": alert_id, "comment_id": c}),
            ),
        };
        let entry = AuditEntry::new(actor, action, &alert_id.to_string(), detail, note)?;
        let mut st = self.core.lock()?;
        let store = &mut st.store;
        Ok(match act {
            TriageAct::Escalate => store.escalate_alert(alert_id, &entry)?,
            TriageAct::Comment => store.comment_alert(alert_id, &entry)?,
            TriageAct::UndoAcknowledge => store.unacknowledge_alert(alert_id, &entry)?,
            TriageAct::UndoClose => store.reopen_alert(alert_id, &entry)?,
            TriageAct::UndoEscalate => store.deescalate_alert(alert_id, &entry)?,
            TriageAct::RetractComment(c) => store.retract_alert_comment(alert_id, c, &entry)?,
        })
    }
}

/// The audit entry of an act on one alert: the alert id as target and detail, `note` as reason.
fn alert_entry(
    actor: &str,
    action: AuditAction,
    alert_id: i64,
    note: &str,
) -> Result<AuditEntry, ControlError> {
    Ok(AuditEntry::new(
        actor,
        action,
        &alert_id.to_string(),
        json!({"alert_id": alert_id}),
        note,
    )?)
}
