//! The operator act that applies a change of the fleet's shared configuration (a KV bucket
//! entry, [`SharedChange`]) to the roles in force, through the same audited acts as the admin
//! API: an exception added, replaced or revoked, pairings approved into a baseline, a role
//! defined or deleted. The audit entry's actor is `fleet:<who changed it centrally>` and its
//! reason names the bucket, key and revision (`... (fleet exceptions/vpn revision 7)`).
//!
//! Applying is idempotent by content: a change the roles in force already reflect (applied
//! before a restart, or by the catch-up read and then by the watch) is [`SharedOutcome::Unchanged`]
//! and writes nothing.
//!
//! Owns: the mapping from a change to the operator acts. Must not: talk to a server.

use serde_json::json;

use crate::audit::{AuditAction, AuditEntry};
use crate::learning::ApprovedPairing;
use crate::roles::Role;
use crate::shared_config::{SharedChange, SharedData, SharedOutcome};

use super::{ControlError, Operator};

fn same_pairing(a: &ApprovedPairing, b: &ApprovedPairing) -> bool {
    a.port == b.port
        && a.starttls == b.starttls
        && a.app_proto.eq_ignore_ascii_case(&b.app_proto)
        && match (&a.transport, &b.transport) {
            (None, None) => true,
            (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
            _ => false,
        }
}

/// True when `in_force` is `defined` (the role in force may carry pairings approved since).
fn role_in_force(in_force: &Role, defined: &Role) -> bool {
    in_force.name == defined.name
        && in_force.description == defined.description
        && in_force.bundle_ids == defined.bundle_ids
        && in_force.domains == defined.domains
        && in_force.unlisted == defined.unlisted
        && defined.rules.iter().all(|r| in_force.rules.contains(r))
}

impl Operator {
    /// Applies one change of the shared configuration (see the module documentation).
    pub fn apply_shared_change(
        &self,
        change: &SharedChange,
    ) -> Result<SharedOutcome, ControlError> {
        let tag = format!(
            "fleet {}/{} revision {}",
            change.bucket.name(),
            change.key,
            change.revision
        );
        let Some((value, data)) = &change.value else {
            return self.apply_shared_delete(change, &tag);
        };
        let actor = format!("fleet:{}", value.actor);
        let reason = format!("{} ({tag})", value.reason);
        match data {
            SharedData::Exception(rule) => {
                rule.validate(std::path::Path::new("(fleet)"))?;
                let mut st = self.core.lock()?;
                let current = st
                    .policy
                    .roles
                    .exceptions()
                    .iter()
                    .find(|e| e.id == rule.id)
                    .cloned();
                if current.as_ref() == Some(rule) {
                    return Ok(SharedOutcome::Unchanged);
                }
                let entry = AuditEntry::new(
                    &actor,
                    AuditAction::ExceptionAdded,
                    &rule.id,
                    json!({"rule": rule, "replaced": current.is_some(),
                           "bucket": change.bucket.bucket(), "revision": change.revision}),
                    &reason,
                )?;
                st.store.upsert_exception(rule, &entry)?;
                st.policy.roles.remove_exception(&rule.id);
                st.policy.roles.add_exception(rule.clone())?;
                Ok(SharedOutcome::Applied)
            }
            SharedData::Baseline(b) => {
                let approved: Vec<ApprovedPairing> = {
                    let st = self.core.lock()?;
                    st.store
                        .approved_pairings()?
                        .into_iter()
                        .filter(|(role, _)| *role == change.key)
                        .map(|(_, p)| p)
                        .collect()
                };
                let new: Vec<ApprovedPairing> = b
                    .pairings
                    .iter()
                    .filter(|p| !approved.iter().any(|a| same_pairing(a, p)))
                    .cloned()
                    .collect();
                if new.is_empty() {
                    return Ok(SharedOutcome::Unchanged);
                }
                self.approve_baseline(&change.key, &new, &actor, &reason)?;
                Ok(SharedOutcome::Applied)
            }
            SharedData::Role(role) => {
                let roles = self.roles()?;
                if roles
                    .role(&role.name)
                    .is_some_and(|r| role_in_force(r, role))
                {
                    return Ok(SharedOutcome::Unchanged);
                }
                self.define_role(role.clone(), &actor, &reason)?;
                Ok(SharedOutcome::Applied)
            }
        }
    }

    fn apply_shared_delete(
        &self,
        change: &SharedChange,
        tag: &str,
    ) -> Result<SharedOutcome, ControlError> {
        use crate::shared_config::ConfigBucket;
        let reason = format!("deleted centrally ({tag})");
        let done = match change.bucket {
            ConfigBucket::Exceptions => {
                let present = self
                    .roles()?
                    .exceptions()
                    .iter()
                    .any(|e| e.id == change.key);
                present && self.revoke_exception(&change.key, "fleet", &reason)?
            }
            ConfigBucket::Roles => {
                self.roles()?.role(&change.key).is_some()
                    && self.delete_role(&change.key, "fleet", &reason)?
            }
            // Approvals are withdrawn nowhere; a deleted baseline key leaves them in force.
            ConfigBucket::Baselines => false,
        };
        Ok(if done {
            SharedOutcome::Applied
        } else {
            SharedOutcome::Unchanged
        })
    }
}
