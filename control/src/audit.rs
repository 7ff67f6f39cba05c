//! The audit trail: who changed a baseline, an exception or an alert's state, when, what and why.
//!
//! Owns: [`AuditEntry`] and [`AuditAction`], and the rule that every change names an actor and a
//! reason ([`AuditEntry::new`] refuses either empty). Must not: write anything itself; the store
//! appends entries in the same transaction as the change they describe, and refuses to update or
//! delete them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// Learned pairings approved into a role's (or the device default) baseline.
    BaselineApproved,
    /// Learned pairings proposed for a role (or the device default) rejected: not proposed again.
    ProposalRejected,
    /// An exception was added.
    ExceptionAdded,
    /// An exception was revoked.
    ExceptionRevoked,
    /// An alert was acknowledged.
    AlertAcknowledged,
    /// An alert was closed (acknowledged too, when it was open).
    AlertClosed,
    /// An alert's acknowledgement was undone.
    AlertUnacknowledged,
    /// A closed alert was reopened (its closure undone).
    AlertReopened,
    /// An alert was escalated.
    AlertEscalated,
    /// An alert's escalation was undone.
    AlertDeescalated,
    /// A comment was added to an alert.
    AlertCommented,
    /// A comment on an alert was retracted.
    AlertCommentRetracted,
    /// The role set (roles, file exceptions, registry) was replaced, e.g. by a reload.
    RolesReplaced,
    /// A role was defined or redefined (through the API).
    RoleDefined,
    /// A role was deleted (through the API).
    RoleDeleted,
    /// An inventory file was imported.
    InventoryImported,
    /// A lease file was imported.
    LeasesImported,
    /// A retention pass removed what outlived its window (the detail counts it per kind).
    RetentionPruned,
}

impl AuditAction {
    /// Snake-case name (as stored).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::BaselineApproved => "baseline_approved",
            AuditAction::ProposalRejected => "proposal_rejected",
            AuditAction::ExceptionAdded => "exception_added",
            AuditAction::ExceptionRevoked => "exception_revoked",
            AuditAction::AlertAcknowledged => "alert_acknowledged",
            AuditAction::AlertClosed => "alert_closed",
            AuditAction::AlertUnacknowledged => "alert_unacknowledged",
            AuditAction::AlertReopened => "alert_reopened",
            AuditAction::AlertEscalated => "alert_escalated",
            AuditAction::AlertDeescalated => "alert_deescalated",
            AuditAction::AlertCommented => "alert_commented",
            AuditAction::AlertCommentRetracted => "alert_comment_retracted",
            AuditAction::RolesReplaced => "roles_replaced",
            AuditAction::RoleDefined => "role_defined",
            AuditAction::RoleDeleted => "role_deleted",
            AuditAction::InventoryImported => "inventory_imported",
            AuditAction::LeasesImported => "leases_imported",
            AuditAction::RetentionPruned => "retention_pruned",
        }
    }

    /// Parses the stored name.
    pub fn from_name(name: &str) -> Option<AuditAction> {
        Some(match name {
            "baseline_approved" => AuditAction::BaselineApproved,
            "proposal_rejected" => AuditAction::ProposalRejected,
            "exception_added" => AuditAction::ExceptionAdded,
            "exception_revoked" => AuditAction::ExceptionRevoked,
            "alert_acknowledged" => AuditAction::AlertAcknowledged,
            "alert_closed" => AuditAction::AlertClosed,
            "alert_unacknowledged" => AuditAction::AlertUnacknowledged,
            "alert_reopened" => AuditAction::AlertReopened,
            "alert_escalated" => AuditAction::AlertEscalated,
            "alert_deescalated" => AuditAction::AlertDeescalated,
            "alert_commented" => AuditAction::AlertCommented,
            "alert_comment_retracted" => AuditAction::AlertCommentRetracted,
            "roles_replaced" => AuditAction::RolesReplaced,
            "role_defined" => AuditAction::RoleDefined,
            "role_deleted" => AuditAction::RoleDeleted,
            "inventory_imported" => AuditAction::InventoryImported,
            "leases_imported" => AuditAction::LeasesImported,
            "retention_pruned" => AuditAction::RetentionPruned,
            _ => return None,
        })
    }
}

/// An audit entry missing its actor or reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit entry for {action}: `{field}` must not be empty")]
pub struct AuditError {
    /// The action attempted.
    pub action: &'static str,
    /// The empty field (`actor` or `reason`).
    pub field: &'static str,
}

/// One change, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Store row id (0 before it is stored).
    pub id: i64,
    /// When, µs since the epoch (wall clock).
    pub ts_us: i64,
    /// Who (user or service account).
    pub actor: String,
    /// What.
    pub action: AuditAction,
    /// On what: a role name, an exception id, an alert id, a file.
    pub target: String,
    /// The change itself (rules approved, the exception, ...).
    pub detail: Value,
    /// Why.
    pub reason: String,
}

impl AuditEntry {
    /// A new entry stamped now; refuses an empty actor or reason.
    pub fn new(
        actor: &str,
        action: AuditAction,
        target: &str,
        detail: Value,
        reason: &str,
    ) -> Result<AuditEntry, AuditError> {
        if actor.trim().is_empty() {
            return Err(AuditError {
                action: action.as_str(),
                field: "actor",
            });
        }
        if reason.trim().is_empty() {
            return Err(AuditError {
                action: action.as_str(),
                field: "reason",
            });
        }
        Ok(AuditEntry {
            id: 0,
            ts_us: crate::timestamp::now_us(),
            actor: actor.trim().to_string(),
            action,
            target: target.to_string(),
            detail,
            reason: reason.trim().to_string(),
        })
    }
}
