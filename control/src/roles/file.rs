//! The roles TOML format: reading a roles file (or the shipped defaults) into a [`RoleSet`].
//!
//! Owns: the file's structure (`[defaults]`, `[[role]]`, `[[exception]]`, `[registry]`), its
//! checks, and errors that name the file and the line or field.
//! Must not: judge pairings ([`super::judge`]) or match exceptions ([`super::exceptions`]).
//!
//! # File format
//!
//! ```toml
//! version = 1
//! [defaults]
//! starttls_protocols = ["smtp", "imap", "pop3"]   # plaintext protocols that upgrade with STARTTLS
//!
//! [[role]]
//! name = "mail"
//! bundle_ids = ["com.apple.mobilemail"]
//! domains = ["mail.example.com"]          # suffix match on SNI / Host / DNS name
//! unlisted_protocols = "registry"         # or "deny": protocols not listed below are violations
//! [role.allow]
//! tls = [443, 993, 465]                   # app_proto = [ports]
//! imap = { ports = [143], starttls = true }  # also approves TLS reached by STARTTLS on 143
//! smtp = { ports = [587], starttls = true, transport = "TCP" }
//!
//! [[exception]]
//! id = "corp-proxy"
//! kind = "proxy"                          # proxy | relay | developer_tooling | other
//! devices = []                            # UDIDs or serial numbers; empty = every device
//! destinations = ["10.20.0.5/32", "proxy.corp.example"]  # CIDR, address or domain suffix
//! ports = [8080]
//! app_protos = ["http", "tls"]            # empty = any protocol
//! reason = "explicit forward proxy"
//! owner = "netops@example.com"
//! expires = "2027-01-01T00:00:00Z"
//!
//! [registry]                              # optional: a device default baseline of its own
//! http = [80]
//! tls = [443]
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::exceptions::ExceptionDestination;
use super::{
    check_bundle_ids, checked_domains, checked_transport, invalid, ExceptionKind, ExceptionRule,
    PortRule, RegisteredPortMap, Role, RoleSet, RolesError, UnlistedProtocols, DEVICE_DEFAULT,
};
use crate::timestamp::parse_timestamp;

/// The shipped default roles file.
pub const SHIPPED_ROLES_TOML: &str = include_str!("../../data/roles.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesFile {
    #[serde(default)]
    version: Option<u32>,
    #[serde(default)]
    defaults: DefaultsSection,
    #[serde(default, rename = "role")]
    roles: Vec<RoleEntry>,
    #[serde(default, rename = "exception")]
    exceptions: Vec<ExceptionEntry>,
    #[serde(default)]
    registry: Option<BTreeMap<String, PortSpec>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DefaultsSection {
    #[serde(default)]
    starttls_protocols: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleEntry {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    bundle_ids: Vec<String>,
    #[serde(default)]
    domains: Vec<String>,
    #[serde(default)]
    allow: BTreeMap<String, PortSpec>,
    #[serde(default)]
    unlisted_protocols: UnlistedProtocols,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionEntry {
    id: String,
    kind: ExceptionKind,
    #[serde(default)]
    devices: Vec<String>,
    #[serde(default)]
    destinations: Vec<ExceptionDestination>,
    #[serde(default)]
    ports: Vec<u16>,
    #[serde(default)]
    app_protos: Vec<String>,
    reason: String,
    owner: String,
    expires: String,
}

/// `[443, 993]` or `{ ports = [143], starttls = true, transport = "TCP" }`.
#[derive(Debug, Clone)]
struct PortSpec {
    ports: Vec<u16>,
    starttls: bool,
    transport: Option<String>,
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Detailed {
            ports: Vec<u16>,
            #[serde(default)]
            starttls: bool,
            #[serde(default)]
            transport: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            List(Vec<u16>),
            Table(Detailed),
        }
        match Either::deserialize(d) {
            Ok(Either::List(ports)) => Ok(PortSpec {
                ports,
                starttls: false,
                transport: None,
            }),
            Ok(Either::Table(t)) => Ok(PortSpec {
                ports: t.ports,
                starttls: t.starttls,
                transport: t.transport,
            }),
            Err(_) => Err(serde::de::Error::custom(
                "expected a list of ports (1-65535) or a table { ports = [..], starttls = bool, \
                 transport = \"TCP\"|\"UDP\" }",
            )),
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

fn to_rules(
    origin: &Path,
    field: &str,
    allow: BTreeMap<String, PortSpec>,
) -> Result<Vec<PortRule>, RolesError> {
    allow
        .into_iter()
        .map(|(proto, spec)| {
            let f = format!("{field}.{proto}");
            if spec.ports.is_empty() {
                return Err(invalid(origin, f, "no ports listed"));
            }
            if spec.ports.contains(&0) {
                return Err(invalid(origin, f, "port 0 is not a port"));
            }
            let transport = checked_transport(origin, &f, spec.transport.as_deref())?;
            Ok(PortRule {
                app_proto: proto.to_ascii_lowercase(),
                transport,
                ports: spec.ports,
                starttls: spec.starttls,
            })
        })
        .collect()
}

impl RoleSet {
    /// The shipped defaults (`control/data/roles.toml`).
    pub fn shipped_defaults() -> Result<RoleSet, RolesError> {
        RoleSet::parse(SHIPPED_ROLES_TOML, Path::new("control/data/roles.toml"))
    }

    /// Reads a roles file.
    pub fn load(path: &Path) -> Result<RoleSet, RolesError> {
        let text = crate::input_file::read_to_string_bounded(
            path,
            crate::input_file::MAX_INPUT_FILE_BYTES,
        )
        .map_err(|source| RolesError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        RoleSet::parse(&text, path)
    }

    /// Parses roles TOML; `origin` names errors.
    pub fn parse(text: &str, origin: &Path) -> Result<RoleSet, RolesError> {
        let file: RolesFile = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((0, 0), |span| line_col(text, span.start));
            RolesError::Syntax {
                path: origin.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        if let Some(v) = file.version {
            if v != 1 {
                return Err(invalid(
                    origin,
                    "version",
                    format!("unsupported version {v} (expected 1)"),
                ));
            }
        }
        let mut roles: Vec<Role> = Vec::with_capacity(file.roles.len());
        for (i, entry) in file.roles.into_iter().enumerate() {
            let name = entry.name.trim().to_string();
            if name.is_empty() {
                return Err(invalid(
                    origin,
                    format!("role[{i}].name"),
                    "must not be empty",
                ));
            }
            if name == DEVICE_DEFAULT {
                return Err(invalid(
                    origin,
                    format!("role[{i}].name"),
                    format!("`{DEVICE_DEFAULT}` is reserved for unattributed traffic"),
                ));
            }
            if roles.iter().any(|r| r.name == name) {
                return Err(invalid(
                    origin,
                    format!("role[{i}].name"),
                    format!("duplicate role `{name}`"),
                ));
            }
            let domains = checked_domains(origin, &name, &entry.domains)?;
            check_bundle_ids(origin, &name, &entry.bundle_ids)?;
            let rules = to_rules(origin, &format!("role[{name}].allow"), entry.allow)?;
            roles.push(Role {
                name,
                description: entry.description,
                bundle_ids: entry.bundle_ids,
                domains,
                rules,
                unlisted: entry.unlisted_protocols,
            });
        }
        let mut exceptions: Vec<ExceptionRule> = Vec::with_capacity(file.exceptions.len());
        for entry in file.exceptions {
            let expires_us = parse_timestamp(&entry.expires).map_err(|e| {
                invalid(
                    origin,
                    format!("exception[{}].expires", entry.id),
                    e.to_string(),
                )
            })?;
            let rule = ExceptionRule {
                id: entry.id,
                kind: entry.kind,
                devices: entry.devices,
                destinations: entry.destinations,
                ports: entry.ports,
                app_protos: entry
                    .app_protos
                    .iter()
                    .map(|p| p.to_ascii_lowercase())
                    .collect(),
                reason: entry.reason,
                owner: entry.owner,
                expires_us,
            };
            rule.validate(origin)?;
            if exceptions.iter().any(|e| e.id == rule.id) {
                return Err(invalid(
                    origin,
                    format!("exception[{}].id", rule.id),
                    "duplicate id",
                ));
            }
            exceptions.push(rule);
        }
        let registry = match file.registry {
            None => None,
            Some(map) => {
                let mut reg = RegisteredPortMap::default();
                for rule in to_rules(origin, "registry", map)? {
                    reg.insert(&rule.app_proto, rule.transport.as_deref(), &rule.ports);
                }
                Some(reg)
            }
        };
        Ok(RoleSet {
            roles,
            exceptions,
            registry,
            starttls_protocols: file
                .defaults
                .starttls_protocols
                .unwrap_or_else(|| vec!["smtp".into(), "imap".into(), "pop3".into()]),
            device_default_rules: Vec::new(),
            origin: origin.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_line_or_field() {
        let e = RoleSet::parse(
            "[[role]]\nname = \"mail\"\n[role.allow]\ntls = [\"x\"]\n",
            Path::new("r.toml"),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("r.toml:4:"), "{msg}");
        let e = RoleSet::parse(
            "[[role]]\nname = \"a\"\n[[role]]\nname = \"a\"\n",
            Path::new("r.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("role[1].name"), "{e}");
        let e = RoleSet::parse(
            "[[exception]]\nid = \"x\"\nkind = \"proxy\"\nports = [1]\nreason = \"r\"\nowner = \"\"\nexpires = \"2030-01-01T00:00:00Z\"\n",
            Path::new("r.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("exception[x].owner"), "{e}");
        let e = RoleSet::parse("[[role]]\nname = \"a\"\nbundle = []\n", Path::new("r.toml"))
            .unwrap_err();
        assert!(e.to_string().starts_with("r.toml:3:"), "{e}");
    }
}
