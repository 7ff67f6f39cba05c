//! Rejecting learning proposals: the audited counterpart of
//! [`Operator::approve_baseline`](super::Operator::approve_baseline).
//!
//! Owns: [`Operator::reject_proposal`], the checks approvals and rejections share, and the marking of
//! rejected pairings in proposals (a rejected pairing is shown with who rejected it and is no longer
//! `proposed`). Must not: change a baseline or a verdict — a rejected pairing stays outside the baseline
//! exactly as before; approving it later is still possible and takes precedence.

use serde_json::json;

use super::{ControlError, Operator};
use crate::audit::{AuditAction, AuditEntry};
use crate::learning::{ApprovedPairing, BaselineProposal};
use crate::roles::{RoleSet, DEVICE_DEFAULT};
use crate::store::Store;

impl Operator {
    /// Rejects pairings proposed for `role` (or `device-default`): an explicit act, stored with its
    /// audit entry (`proposal_rejected`, with `actor` and `reason`) in one transaction. The pairings
    /// are not proposed again; no verdict changes. Returns the audit id.
    pub fn reject_proposal(
        &self,
        role: &str,
        pairings: &[ApprovedPairing],
        actor: &str,
        reason: &str,
    ) -> Result<i64, ControlError> {
        let mut st = self.core.lock()?;
        check_pairings(&st.policy.roles, role, pairings, "reject")?;
        let entry = AuditEntry::new(
            actor,
            AuditAction::ProposalRejected,
            role,
            json!({"pairings": pairings}),
            reason,
        )?;
        Ok(st.store.reject_pairings(role, pairings, &entry)?)
    }
}

/// Refuses an approval or rejection (`verb`) of `pairings` for an unknown role, of no pairing, or of a
/// pairing without port or protocol.
pub(super) fn check_pairings(
    roles: &RoleSet,
    role: &str,
    pairings: &[ApprovedPairing],
    verb: &str,
) -> Result<(), ControlError> {
    if role != DEVICE_DEFAULT && roles.role(role).is_none() {
        return Err(ControlError::Rejected(format!("unknown role `{role}`")));
    }
    if pairings.is_empty() {
        return Err(ControlError::Rejected(format!("no pairings to {verb}")));
    }
    if let Some(p) = pairings
        .iter()
        .find(|p| p.port == 0 || p.app_proto.trim().is_empty())
    {
        return Err(ControlError::Rejected(format!(
            "invalid pairing {}/{}",
            p.app_proto, p.port
        )));
    }
    Ok(())
}

/// Marks the pairings of `proposals` that were rejected: `rejected` says who, when and why, and
/// `proposed` turns false; a pairing approved since is left alone. The newest matching rejection wins;
/// one without transport matches both.
pub(super) fn mark_rejections(
    store: &Store,
    proposals: &mut [BaselineProposal],
) -> Result<(), ControlError> {
    let rejections = store.pairing_rejections()?;
    if rejections.is_empty() {
        return Ok(());
    }
    for proposal in proposals.iter_mut() {
        for p in proposal.pairings.iter_mut().filter(|p| !p.already_approved) {
            let found = rejections.iter().rev().find(|r| {
                r.role == proposal.role
                    && r.port == p.port
                    && r.app_proto.eq_ignore_ascii_case(&p.app_proto)
                    && r.transport
                        .as_deref()
                        .is_none_or(|t| t.eq_ignore_ascii_case(&p.transport))
            });
            if let Some(r) = found {
                p.rejected = Some(r.clone());
                p.proposed = false;
            }
        }
    }
    Ok(())
}
