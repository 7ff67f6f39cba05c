//! Roles, baselines and exceptions: which protocol → port pairings are approved for whom.
//!
//! Owns: the role set in force ([`RoleSet`]: roles, exceptions, the device default baseline's
//! approved pairings), the [`Role`] and [`PortRule`] types, and [`RolesError`]. The work is split
//! by concern: [`mod@file`] reads the roles TOML format (shipped defaults in
//! `control/data/roles.toml`), [`judge`] judges one pairing against a role baseline or the device
//! default baseline (through the [`RegisteredPorts`] seam the dataplane's registry is passed in
//! by), and [`exceptions`] matches the known, owned reasons for a pairing (proxies, relays,
//! developer tooling; per device or global; reason, owner, expiry).
//! Must not: write the audit log or the store (callers do, see [`crate::engine`]), or read flows.

pub mod exceptions;
pub mod file;
pub mod judge;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use exceptions::{
    domain_matches, ExceptionDestination, ExceptionKind, ExceptionQuery, ExceptionRule,
};
pub use file::SHIPPED_ROLES_TOML;
pub use judge::{
    BaselineBasis, Judgement, PairingQuery, RegisteredPortMap, RegisteredPorts, RegisteredPortsFn,
    ViolationKind,
};

/// The name under which unattributed traffic is counted and judged (the device default baseline).
pub const DEVICE_DEFAULT: &str = "device-default";

/// A roles file that could not be used; names the file and the line or field.
#[derive(Debug, thiserror::Error)]
pub enum RolesError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML, or a value of the wrong type.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// Well-formed but inconsistent (duplicate role, bad CIDR, missing owner, ...).
    #[error("{path}: field `{field}`: {message}")]
    Invalid {
        /// The file (or `(api)` for changes made through the API).
        path: PathBuf,
        /// The field, e.g. `role[mail].allow.tls` or `exception[corp-proxy].expires`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(path: &Path, field: impl Into<String>, message: impl Into<String>) -> RolesError {
    RolesError::Invalid {
        path: path.to_path_buf(),
        field: field.into(),
        message: message.into(),
    }
}

/// A rule's `transport` in upper case: `TCP`, `UDP` or none; anything else is refused naming
/// `{field}.transport`.
fn checked_transport(
    origin: &Path,
    field: &str,
    transport: Option<&str>,
) -> Result<Option<String>, RolesError> {
    match transport.map(str::to_ascii_uppercase) {
        None => Ok(None),
        Some(t) if t == "TCP" || t == "UDP" => Ok(Some(t)),
        Some(t) => Err(invalid(
            origin,
            format!("{field}.transport"),
            format!("expected \"TCP\" or \"UDP\", found {t:?}"),
        )),
    }
}

/// One approved protocol → ports pairing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRule {
    /// Lowercase EVE `app_proto`.
    pub app_proto: String,
    /// `TCP`/`UDP`; `None` = either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// Approved ports.
    pub ports: Vec<u16>,
    /// TLS reached through STARTTLS on these ports is approved too.
    #[serde(default)]
    pub starttls: bool,
}

impl PortRule {
    fn transport_matches(&self, transport: &str) -> bool {
        self.transport
            .as_deref()
            .is_none_or(|t| t.eq_ignore_ascii_case(transport))
    }
}

/// What a role does with protocols its `allow` table does not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnlistedProtocols {
    /// Judge them against the device default baseline (the port registry).
    #[default]
    Registry,
    /// Every unlisted protocol is a role baseline violation.
    Deny,
}

/// A class of apps with the domains they talk to and the pairings approved for them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    /// Unique name, e.g. `mail`.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Bundle IDs in this role (exact match; a trailing `*` matches a prefix).
    pub bundle_ids: Vec<String>,
    /// Domain suffixes the role's apps talk to (lowercase).
    pub domains: Vec<String>,
    /// Approved pairings (from the file, then approved through learning).
    pub rules: Vec<PortRule>,
    /// Handling of protocols not in `rules`.
    #[serde(default)]
    pub unlisted: UnlistedProtocols,
}

impl Role {
    /// Checks and normalises a role defined outside a roles file (the API): a non-empty name
    /// other than `device-default`, domains that are domains (lowercased), non-empty bundle IDs,
    /// and pairings with ports 1-65535 and transport `TCP`/`UDP`. Errors name the field as the
    /// roles file would (`role[<name>].domains[1]`), with `origin` as the file.
    pub fn normalized(mut self, origin: &Path) -> Result<Role, RolesError> {
        self.name = self.name.trim().to_string();
        if self.name.is_empty() {
            return Err(invalid(origin, "role.name", "must not be empty"));
        }
        if self.name == DEVICE_DEFAULT {
            return Err(invalid(
                origin,
                "role.name",
                format!("`{DEVICE_DEFAULT}` is reserved for unattributed traffic"),
            ));
        }
        let name = self.name.clone();
        self.domains = checked_domains(origin, &name, &self.domains)?;
        check_bundle_ids(origin, &name, &self.bundle_ids)?;
        for (j, rule) in self.rules.iter_mut().enumerate() {
            let f = format!("role[{name}].allow[{j}]");
            rule.app_proto = rule.app_proto.trim().to_ascii_lowercase();
            if rule.app_proto.is_empty() {
                return Err(invalid(
                    origin,
                    format!("{f}.app_proto"),
                    "must not be empty",
                ));
            }
            if rule.ports.is_empty() {
                return Err(invalid(origin, format!("{f}.ports"), "no ports listed"));
            }
            if rule.ports.contains(&0) {
                return Err(invalid(
                    origin,
                    format!("{f}.ports"),
                    "port 0 is not a port",
                ));
            }
            rule.transport = checked_transport(origin, &f, rule.transport.as_deref())?;
        }
        Ok(self)
    }

    /// True when `bundle_id` belongs to this role.
    pub fn has_bundle(&self, bundle_id: &str) -> bool {
        self.bundle_ids.iter().any(|b| match b.strip_suffix('*') {
            Some(prefix) => bundle_id.starts_with(prefix),
            None => b == bundle_id,
        })
    }

    /// The most specific of this role's domains matching `host`.
    pub fn matching_domain(&self, host: &str) -> Option<&str> {
        self.domains
            .iter()
            .filter(|d| domain_matches(host, d))
            .max_by_key(|d| d.len())
            .map(String::as_str)
    }
}

/// `domains` as domain suffixes (lowercase, without `*.`); the error names `role[<name>].domains[j]`.
fn checked_domains(
    origin: &Path,
    name: &str,
    domains: &[String],
) -> Result<Vec<String>, RolesError> {
    domains
        .iter()
        .enumerate()
        .map(|(j, d)| match ExceptionDestination::try_from(d.clone()) {
            Ok(ExceptionDestination::Domain(host)) => Ok(host),
            _ => Err(invalid(
                origin,
                format!("role[{name}].domains[{j}]"),
                format!("not a domain: {d:?}"),
            )),
        })
        .collect()
}

/// Refuses an empty bundle ID; the error names `role[<name>].bundle_ids[j]`.
fn check_bundle_ids(origin: &Path, name: &str, bundle_ids: &[String]) -> Result<(), RolesError> {
    match bundle_ids.iter().position(|b| b.trim().is_empty()) {
        Some(j) => Err(invalid(
            origin,
            format!("role[{name}].bundle_ids[{j}]"),
            "must not be empty",
        )),
        None => Ok(()),
    }
}

/// All roles, exceptions and the optional file registry.
#[derive(Debug, Clone, Default)]
pub struct RoleSet {
    roles: Vec<Role>,
    exceptions: Vec<ExceptionRule>,
    registry: Option<RegisteredPortMap>,
    starttls_protocols: Vec<String>,
    device_default_rules: Vec<PortRule>,
    origin: PathBuf,
}

impl RoleSet {
    /// Where these roles were read from.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// All roles.
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// A role by name.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// The first role listing `bundle_id`.
    pub fn role_for_bundle(&self, bundle_id: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.has_bundle(bundle_id))
    }

    /// The role whose domain matches `host` most specifically, with the matched domain.
    pub fn role_for_domain(&self, host: &str) -> Option<(&Role, &str)> {
        self.roles
            .iter()
            .filter_map(|r| r.matching_domain(host).map(|d| (r, d)))
            .max_by_key(|(_, d)| d.len())
    }

    /// The registry from the file's `[registry]` table, if it has one.
    pub fn file_registry(&self) -> Option<&RegisteredPortMap> {
        self.registry.as_ref()
    }

    /// Exceptions currently in force or expired (expiry is judged per session).
    pub fn exceptions(&self) -> &[ExceptionRule] {
        &self.exceptions
    }

    /// Adds an exception (validated; ids are unique).
    pub fn add_exception(&mut self, rule: ExceptionRule) -> Result<(), RolesError> {
        rule.validate(Path::new("(api)"))?;
        if self.exceptions.iter().any(|e| e.id == rule.id) {
            return Err(invalid(
                Path::new("(api)"),
                format!("exception[{}].id", rule.id),
                "duplicate id",
            ));
        }
        self.exceptions.push(rule);
        Ok(())
    }

    /// Adds `role`, or replaces the role of that name where it stands (a role's first matching
    /// entry wins, so the order is kept). The role is checked with [`Role::normalized`].
    pub fn upsert_role(&mut self, role: Role) -> Result<(), RolesError> {
        let role = role.normalized(Path::new("(api)"))?;
        match self.roles.iter_mut().find(|r| r.name == role.name) {
            Some(slot) => *slot = role,
            None => self.roles.push(role),
        }
        Ok(())
    }

    /// Removes a role; returns it when it existed.
    pub fn remove_role(&mut self, name: &str) -> Option<Role> {
        let idx = self.roles.iter().position(|r| r.name == name)?;
        Some(self.roles.remove(idx))
    }

    /// Removes an exception; returns it when it existed.
    pub fn remove_exception(&mut self, id: &str) -> Option<ExceptionRule> {
        let idx = self.exceptions.iter().position(|e| e.id == id)?;
        Some(self.exceptions.remove(idx))
    }

    /// Adds an approved pairing to a role, or to the device default baseline when `role` is
    /// [`DEVICE_DEFAULT`].
    pub fn add_approved_rule(&mut self, role: &str, rule: PortRule) -> Result<(), RolesError> {
        let api = Path::new("(api)");
        if rule.ports.is_empty() || rule.ports.contains(&0) {
            return Err(invalid(
                api,
                format!("role[{role}].allow.{}", rule.app_proto),
                "bad ports",
            ));
        }
        if role == DEVICE_DEFAULT {
            self.device_default_rules.push(rule);
            return Ok(());
        }
        let r = self
            .roles
            .iter_mut()
            .find(|r| r.name == role)
            .ok_or_else(|| invalid(api, "role", format!("unknown role `{role}`")))?;
        r.rules.push(rule);
        Ok(())
    }
}
