//! The fleet's shared configuration: what lives in the JetStream KV buckets (roles, baselines,
//! exceptions; an approved learning proposal is a baseline approval), how a value is written
//! and checked, and what an appliance does with a change ([`SharedChange`], applied by
//! `Operator::apply_shared_change`).
//!
//! One bucket per kind ([`ConfigBucket`]); the key is the role name (`device-default` for the
//! device default baseline) or the exception id, a KV token of 1 to 64 `A-Z a-z 0-9 _ -`
//! ([`check_key`]). A value is one JSON object, the [`SharedValue`] envelope: who changed it, why,
//! when, and `data`, the typed value (an [`ExceptionRule`], a [`Role`], or the
//! [`BaselineValue`], the pairings approved for the role). Each write gets the bucket's next
//! revision; writers use compare-and-swap on it, so two operators editing one key never merge
//! silently: the second is refused.
//!
//! Owns: bucket names, the envelope, the checks of a value before it is written. Must not: talk
//! to a server (the `portolan-fleet` crate does) or change the roles in force (the operator
//! does).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::learning::ApprovedPairing;
use crate::roles::{ExceptionRule, Role, RolesError};

/// The envelope's schema version this build writes.
pub const SHARED_SCHEMA_VERSION: u32 = 1;

/// One kind of shared configuration, one KV bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigBucket {
    /// Roles defined centrally (key: the role name).
    Roles,
    /// Pairings approved into a role's baseline, by hand or from a learning proposal (key: the
    /// role, or `device-default`).
    Baselines,
    /// Exceptions (key: the exception id).
    Exceptions,
}

impl ConfigBucket {
    /// Every bucket, in the order an appliance applies them at start (roles before the baselines
    /// that name them).
    pub const ALL: [ConfigBucket; 3] = [
        ConfigBucket::Roles,
        ConfigBucket::Baselines,
        ConfigBucket::Exceptions,
    ];

    /// The name in the API path (`roles`, `baselines`, `exceptions`).
    pub fn name(self) -> &'static str {
        match self {
            ConfigBucket::Roles => "roles",
            ConfigBucket::Baselines => "baselines",
            ConfigBucket::Exceptions => "exceptions",
        }
    }

    /// The KV bucket (`PORTOLAN_ROLES`, ...).
    pub fn bucket(self) -> &'static str {
        match self {
            ConfigBucket::Roles => "PORTOLAN_ROLES",
            ConfigBucket::Baselines => "PORTOLAN_BASELINES",
            ConfigBucket::Exceptions => "PORTOLAN_EXCEPTIONS",
        }
    }

    /// By API name.
    pub fn from_name(name: &str) -> Option<ConfigBucket> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// By KV bucket name.
    pub fn from_bucket(bucket: &str) -> Option<ConfigBucket> {
        Self::ALL.into_iter().find(|b| b.bucket() == bucket)
    }
}

/// `data` of a baseline key: the pairings approved for the role. Appliances add the pairings
/// they do not have yet; a pairing left out of a later value is not withdrawn (approvals are
/// withdrawn nowhere in Portolan).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineValue {
    /// The pairings.
    pub pairings: Vec<ApprovedPairing>,
}

/// A value as stored in a bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedValue {
    /// [`SHARED_SCHEMA_VERSION`] when written.
    pub schema: u32,
    /// Who made the change (the central's API caller).
    pub actor: String,
    /// Why.
    pub reason: String,
    /// When, µs since the epoch.
    pub ts_us: i64,
    /// The typed value (see the module documentation).
    pub data: Value,
}

/// What a bucket key holds, decoded and checked.
#[derive(Debug, Clone, PartialEq)]
pub enum SharedData {
    /// A role.
    Role(Role),
    /// A role's approved pairings.
    Baseline(BaselineValue),
    /// An exception.
    Exception(ExceptionRule),
}

/// A value that cannot be written or applied: the field at fault (relative to the value, e.g.
/// `data.ports`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SharedValueError {
    /// The field at fault.
    pub field: String,
    /// Why.
    pub reason: String,
}

fn err(field: impl Into<String>, reason: impl Into<String>) -> SharedValueError {
    SharedValueError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Checks a key: 1 to 64 of `A-Z a-z 0-9 _ -` (a KV token that needs no escaping).
pub fn check_key(key: &str) -> Result<(), SharedValueError> {
    crate::fleet::check_id(key).map_err(|r| err("key", r))
}

/// Decodes and checks `data` for `bucket` under `key` (the key must be the role name or the
/// exception id the value names).
pub fn check_data(
    bucket: ConfigBucket,
    key: &str,
    data: &Value,
) -> Result<SharedData, SharedValueError> {
    check_key(key)?;
    let origin = Path::new("(fleet)");
    let roles_err = |e: RolesError| err("data", e.to_string());
    match bucket {
        ConfigBucket::Exceptions => {
            let rule: ExceptionRule =
                serde_json::from_value(data.clone()).map_err(|e| err("data", e.to_string()))?;
            if rule.id != key {
                return Err(err(
                    "data.id",
                    format!("`{}` must be the key `{key}`", rule.id),
                ));
            }
            rule.validate(origin).map_err(roles_err)?;
            Ok(SharedData::Exception(rule))
        }
        ConfigBucket::Roles => {
            let role: Role =
                serde_json::from_value(data.clone()).map_err(|e| err("data", e.to_string()))?;
            let role = role.normalized(origin).map_err(roles_err)?;
            if role.name != key {
                return Err(err(
                    "data.name",
                    format!("`{}` must be the key `{key}`", role.name),
                ));
            }
            Ok(SharedData::Role(role))
        }
        ConfigBucket::Baselines => {
            let value: BaselineValue =
                serde_json::from_value(data.clone()).map_err(|e| err("data", e.to_string()))?;
            if value.pairings.is_empty() {
                return Err(err("data.pairings", "must not be empty"));
            }
            for (i, p) in value.pairings.iter().enumerate() {
                if p.port == 0 {
                    return Err(err(format!("data.pairings[{i}].port"), "must be 1-65535"));
                }
                if p.app_proto.trim().is_empty() {
                    return Err(err(
                        format!("data.pairings[{i}].app_proto"),
                        "must not be empty",
                    ));
                }
                if let Some(t) = &p.transport {
                    if !t.eq_ignore_ascii_case("tcp") && !t.eq_ignore_ascii_case("udp") {
                        return Err(err(
                            format!("data.pairings[{i}].transport"),
                            "must be TCP or UDP",
                        ));
                    }
                }
            }
            Ok(SharedData::Baseline(value))
        }
    }
}

impl SharedValue {
    /// Encodes a checked value for the bucket.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a value read from a bucket; a newer schema is refused.
    pub fn decode(bytes: &[u8]) -> Result<SharedValue, SharedValueError> {
        let v: SharedValue = serde_json::from_slice(bytes).map_err(|e| err("", e.to_string()))?;
        if v.schema > SHARED_SCHEMA_VERSION {
            return Err(err(
                "schema",
                format!(
                    "{} is newer than this build's {SHARED_SCHEMA_VERSION}",
                    v.schema
                ),
            ));
        }
        Ok(v)
    }
}

/// One change read from a bucket, as an appliance applies it.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedChange {
    /// The bucket.
    pub bucket: ConfigBucket,
    /// The key.
    pub key: String,
    /// The bucket's revision of this change.
    pub revision: u64,
    /// The new value, or `None` when the key was deleted.
    pub value: Option<(SharedValue, SharedData)>,
}

/// What applying a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedOutcome {
    /// The roles in force changed (audited).
    Applied,
    /// The roles in force already had it (e.g. applied before a restart).
    Unchanged,
}

/// A failed read or write of the shared configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedConfigError {
    /// The write was based on a revision that is no longer the key's latest.
    #[error("{bucket}/{key}: the change was based on revision {expected}, but the key is at revision {current} now; read it again and re-apply the change")]
    Conflict {
        /// The bucket (API name).
        bucket: &'static str,
        /// The key.
        key: String,
        /// The revision the write named.
        expected: u64,
        /// The key's latest revision (0: absent).
        current: u64,
    },
    /// The value or key is not acceptable (the field at fault and why).
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
    /// The cluster did not answer.
    #[error("shared configuration unavailable: {0}")]
    Unavailable(String),
}

/// One key's latest value.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedEntry {
    /// The key.
    pub key: String,
    /// Its latest revision.
    pub revision: u64,
    /// The value.
    pub value: SharedValue,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_checked_naming_the_field() {
        let ex = json!({"id": "vpn", "kind": "proxy", "ports": [8443], "reason": "r",
                        "owner": "o", "expires_us": 4_102_444_800_000_000_i64});
        assert!(matches!(
            check_data(ConfigBucket::Exceptions, "vpn", &ex),
            Ok(SharedData::Exception(_))
        ));
        let e = check_data(ConfigBucket::Exceptions, "other", &ex).unwrap_err();
        assert_eq!(e.field, "data.id");
        let e = check_data(ConfigBucket::Exceptions, "a.b", &ex).unwrap_err();
        assert_eq!(e.field, "key");
        let b = json!({"pairings": [{"app_proto": "tls", "transport": "SCTP", "port": 1}]});
        let e = check_data(ConfigBucket::Baselines, "mail", &b).unwrap_err();
        assert_eq!(e.field, "data.pairings[0].transport");
        assert_eq!(ConfigBucket::from_name("roles"), Some(ConfigBucket::Roles));
        assert_eq!(
            ConfigBucket::from_bucket("PORTOLAN_EXCEPTIONS"),
            Some(ConfigBucket::Exceptions)
        );
        let v = SharedValue {
            schema: 9,
            actor: "a".into(),
            reason: "r".into(),
            ts_us: 0,
            data: ex,
        };
        assert_eq!(
            SharedValue::decode(&v.encode()).unwrap_err().field,
            "schema"
        );
    }
}
