//! Roles, baselines and exceptions: which protocol → port pairings are approved for whom.
//!
//! Owns: the roles TOML format (shipped defaults in `control/data/roles.toml`), the judgement of
//! one pairing against a role baseline or the device default baseline (the port registry), the
//! [`PortRegistry`] seam through which the dataplane's registry is passed in, and exception
//! matching (proxies, relays, developer tooling; per device or global; reason, owner, expiry).
//! Must not: write the audit log or the store (callers do, see [`crate::engine`]), or read flows.
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
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::observation::normalize_host;
use crate::timestamp::{format_rfc3339, parse_timestamp};

/// The name under which unattributed traffic is counted and judged (the device default baseline).
pub const DEVICE_DEFAULT: &str = "device-default";

/// The shipped default roles file.
pub const SHIPPED_ROLES_TOML: &str = include_str!("../data/roles.toml");

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

/// The dataplane's port registry as the control plane sees it: is `port` a standard port for
/// `app_proto` over `transport`? Implemented by [`PortRegistryMap`] and by any
/// `Fn(&str, &str, u16) -> bool` wrapped in [`RegistryFn`].
pub trait PortRegistry: Send + Sync {
    /// True when the registry lists `port` for `app_proto` (lowercase) over `transport` (`TCP`,
    /// `UDP`), or has no opinion about `app_proto`.
    fn is_standard(&self, app_proto: &str, transport: &str, port: u16) -> bool;

    /// The registered ports for `app_proto`, for alert context; empty when unknown.
    fn standard_ports(&self, _app_proto: &str, _transport: &str) -> Vec<u16> {
        Vec::new()
    }

    /// False when the registry has no opinion about `app_proto` (used for the STARTTLS check,
    /// which must not approve a port because an unknown protocol is "standard everywhere").
    fn knows(&self, _app_proto: &str) -> bool {
        true
    }
}

/// Adapts a closure `(app_proto, transport, port) -> is_standard` into a [`PortRegistry`].
pub struct RegistryFn<F>(pub F);

impl<F> PortRegistry for RegistryFn<F>
where
    F: Fn(&str, &str, u16) -> bool + Send + Sync,
{
    fn is_standard(&self, app_proto: &str, transport: &str, port: u16) -> bool {
        (self.0)(app_proto, transport, port)
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

/// A simple registry: protocol → rules. Protocols it does not list are treated as standard on
/// every port (no opinion), so a partial map never flags protocols it was not told about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortRegistryMap {
    rules: BTreeMap<String, Vec<PortRule>>,
}

impl PortRegistryMap {
    /// Adds ports for a protocol.
    pub fn insert(&mut self, app_proto: &str, transport: Option<&str>, ports: &[u16]) {
        self.rules
            .entry(app_proto.to_ascii_lowercase())
            .or_default()
            .push(PortRule {
                app_proto: app_proto.to_ascii_lowercase(),
                transport: transport.map(str::to_ascii_uppercase),
                ports: ports.to_vec(),
                starttls: false,
            });
    }

    /// Builder form of [`insert`](Self::insert).
    pub fn with(mut self, app_proto: &str, ports: &[u16]) -> Self {
        self.insert(app_proto, None, ports);
        self
    }
}

impl PortRegistry for PortRegistryMap {
    fn is_standard(&self, app_proto: &str, transport: &str, port: u16) -> bool {
        match self.rules.get(app_proto) {
            None => true,
            Some(rules) => rules
                .iter()
                .any(|r| r.transport_matches(transport) && r.ports.contains(&port)),
        }
    }

    fn standard_ports(&self, app_proto: &str, transport: &str) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .rules
            .get(app_proto)
            .into_iter()
            .flatten()
            .filter(|r| r.transport_matches(transport))
            .flat_map(|r| r.ports.iter().copied())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    fn knows(&self, app_proto: &str) -> bool {
        self.rules.contains_key(app_proto)
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
        let mut domains = Vec::with_capacity(self.domains.len());
        for (j, d) in self.domains.iter().enumerate() {
            match ExceptionDestination::try_from(d.clone()) {
                Ok(ExceptionDestination::Domain(host)) => domains.push(host),
                _ => {
                    return Err(invalid(
                        origin,
                        format!("role[{name}].domains[{j}]"),
                        format!("not a domain: {d:?}"),
                    ))
                }
            }
        }
        self.domains = domains;
        if let Some(j) = self.bundle_ids.iter().position(|b| b.trim().is_empty()) {
            return Err(invalid(
                origin,
                format!("role[{name}].bundle_ids[{j}]"),
                "must not be empty",
            ));
        }
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
            rule.transport = match rule.transport.as_deref().map(str::to_ascii_uppercase) {
                None => None,
                Some(t) if t == "TCP" || t == "UDP" => Some(t),
                Some(t) => {
                    return Err(invalid(
                        origin,
                        format!("{f}.transport"),
                        format!("expected \"TCP\" or \"UDP\", found {t:?}"),
                    ))
                }
            };
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

/// True when `host` equals `suffix` or is a subdomain of it (label boundary).
pub fn domain_matches(host: &str, suffix: &str) -> bool {
    let suffix = suffix.trim_start_matches("*.").trim_start_matches('.');
    host == suffix
        || (host.len() > suffix.len()
            && host.ends_with(suffix)
            && host.as_bytes().get(host.len() - suffix.len() - 1) == Some(&b'.'))
}

/// The kind of an exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionKind {
    /// An explicit or transparent proxy.
    Proxy,
    /// A relay (e.g. `com.apple.relay.managed`, a TURN server).
    Relay,
    /// Developer tooling (debug servers, test back-ends).
    DeveloperTooling,
    /// Anything else, explained in `reason`.
    Other,
}

/// An address range for exception destinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `a.b.c.d/n`, `x::/n` or a bare address.
    pub fn parse(text: &str) -> Option<IpNet> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    /// True when `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Where an exception applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum ExceptionDestination {
    /// An address range.
    Net(String),
    /// A domain suffix.
    Domain(String),
}

impl From<ExceptionDestination> for String {
    fn from(d: ExceptionDestination) -> String {
        match d {
            ExceptionDestination::Net(s) | ExceptionDestination::Domain(s) => s,
        }
    }
}

impl TryFrom<String> for ExceptionDestination {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let t = text.trim();
        if IpNet::parse(t).is_some() {
            return Ok(ExceptionDestination::Net(t.to_string()));
        }
        if t.contains('/') || t.parse::<IpAddr>().is_ok() {
            return Err(format!("not a valid address range: {t:?}"));
        }
        let host = normalize_host(t.trim_start_matches("*."));
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !valid {
            return Err(format!("not an address range or domain: {t:?}"));
        }
        Ok(ExceptionDestination::Domain(host))
    }
}

/// A known, owned reason for a pairing that would otherwise be a violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionRule {
    /// Unique id.
    pub id: String,
    /// Proxy, relay, developer tooling, other.
    pub kind: ExceptionKind,
    /// UDIDs or serial numbers; empty = global.
    #[serde(default)]
    pub devices: Vec<String>,
    /// Destinations; empty = any (then `ports` must not be empty).
    #[serde(default)]
    pub destinations: Vec<ExceptionDestination>,
    /// Destination ports; empty = any.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Protocols; empty = any.
    #[serde(default)]
    pub app_protos: Vec<String>,
    /// Why.
    pub reason: String,
    /// Who answers for it.
    pub owner: String,
    /// Expiry, µs since the epoch (judged against the session's time).
    pub expires_us: i64,
}

/// What an exception is matched against.
#[derive(Debug, Clone, Copy)]
pub struct ExceptionQuery<'a> {
    /// Device UDID, when known.
    pub udid: Option<&'a str>,
    /// Device serial number, when known.
    pub serial_number: Option<&'a str>,
    /// Server address.
    pub dest_ip: IpAddr,
    /// Server name (SNI/Host/DNS), lowercase.
    pub server_name: Option<&'a str>,
    /// Server port.
    pub port: u16,
    /// Protocol.
    pub app_proto: &'a str,
    /// Session time, µs since the epoch.
    pub at_us: i64,
}

impl ExceptionRule {
    /// Checks the fields an exception must have; `origin` names the file (or `(api)`).
    pub fn validate(&self, origin: &Path) -> Result<(), RolesError> {
        let field = |f: &str| format!("exception[{}].{f}", self.id);
        if self.id.trim().is_empty() {
            return Err(invalid(origin, "exception.id", "must not be empty"));
        }
        if self.reason.trim().is_empty() {
            return Err(invalid(origin, field("reason"), "must not be empty"));
        }
        if self.owner.trim().is_empty() {
            return Err(invalid(origin, field("owner"), "must not be empty"));
        }
        if self.destinations.is_empty() && self.ports.is_empty() {
            return Err(invalid(
                origin,
                field("destinations"),
                "an exception needs destinations or ports (a blanket exception is not allowed)",
            ));
        }
        if self.ports.contains(&0) {
            return Err(invalid(origin, field("ports"), "port 0 is not a port"));
        }
        Ok(())
    }

    /// True when this exception covers the query (and has not expired at its time).
    pub fn matches(&self, q: &ExceptionQuery<'_>) -> bool {
        if q.at_us >= self.expires_us {
            return false;
        }
        if !self.devices.is_empty()
            && !self
                .devices
                .iter()
                .any(|d| Some(d.as_str()) == q.udid || Some(d.as_str()) == q.serial_number)
        {
            return false;
        }
        if !self.ports.is_empty() && !self.ports.contains(&q.port) {
            return false;
        }
        if !self.app_protos.is_empty() && !self.app_protos.iter().any(|p| p == q.app_proto) {
            return false;
        }
        if self.destinations.is_empty() {
            return true;
        }
        self.destinations.iter().any(|d| match d {
            ExceptionDestination::Net(n) => {
                IpNet::parse(n).is_some_and(|net| net.contains(q.dest_ip))
            }
            ExceptionDestination::Domain(s) => q.server_name.is_some_and(|h| domain_matches(h, s)),
        })
    }

    /// One-line description for alert reasons.
    pub fn describe(&self) -> String {
        let kind = serde_json::to_value(self.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        format!(
            "exception `{}` ({kind}; owner {}; until {}): {}",
            self.id,
            self.owner,
            format_rfc3339(self.expires_us),
            self.reason
        )
    }
}

/// Which baseline judged a pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineBasis {
    /// The attributed app's role.
    Role,
    /// The port registry passed in (device default baseline).
    Registry,
    /// The dataplane's own `port_mismatch` verdict (device default baseline).
    Dataplane,
    /// Pairings approved for unattributed traffic through learning.
    DeviceDefaultApproved,
    /// Nothing could judge it: treated as approved.
    NoVerdict,
}

/// Which baseline a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// Protocol on a port outside the device default baseline (port registry).
    DeviceBaseline,
    /// Pairing outside the approved mapping for the app's role.
    RoleBaseline,
}

/// The verdict on one pairing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// No violation.
    pub approved: bool,
    /// Which baseline was broken (meaningful when not approved).
    pub kind: ViolationKind,
    /// Which baseline judged.
    pub basis: BaselineBasis,
    /// The role whose baseline applied (`None` = device default).
    pub baseline_role: Option<String>,
    /// The approved ports for the protocol under that baseline.
    pub approved_ports: Vec<u16>,
    /// Human-readable explanation.
    pub explanation: String,
}

/// One pairing to judge.
#[derive(Debug, Clone, Copy)]
pub struct PairingQuery<'a> {
    /// The attributed role, if any.
    pub role: Option<&'a str>,
    /// Lowercase protocol.
    pub app_proto: &'a str,
    /// `TCP`/`UDP`.
    pub transport: &'a str,
    /// Server port.
    pub port: u16,
    /// STARTTLS upgrade seen.
    pub starttls: bool,
    /// The dataplane's verdict (`Some(true)` = mismatch).
    pub dataplane_mismatch: Option<bool>,
}

/// All roles, exceptions and the optional file registry.
#[derive(Debug, Clone, Default)]
pub struct RoleSet {
    roles: Vec<Role>,
    exceptions: Vec<ExceptionRule>,
    registry: Option<PortRegistryMap>,
    starttls_protocols: Vec<String>,
    device_default_rules: Vec<PortRule>,
    origin: PathBuf,
}

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
            let transport = match spec.transport.as_deref().map(str::to_ascii_uppercase) {
                None => None,
                Some(t) if t == "TCP" || t == "UDP" => Some(t),
                Some(t) => {
                    return Err(invalid(
                        origin,
                        format!("{f}.transport"),
                        format!("expected \"TCP\" or \"UDP\", found {t:?}"),
                    ))
                }
            };
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
        let text = std::fs::read_to_string(path).map_err(|source| RolesError::Io {
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
            let mut domains = Vec::with_capacity(entry.domains.len());
            for (j, d) in entry.domains.iter().enumerate() {
                match ExceptionDestination::try_from(d.clone()) {
                    Ok(ExceptionDestination::Domain(host)) => domains.push(host),
                    _ => {
                        return Err(invalid(
                            origin,
                            format!("role[{name}].domains[{j}]"),
                            format!("not a domain: {d:?}"),
                        ))
                    }
                }
            }
            if let Some(j) = entry.bundle_ids.iter().position(|b| b.trim().is_empty()) {
                return Err(invalid(
                    origin,
                    format!("role[{name}].bundle_ids[{j}]"),
                    "must not be empty",
                ));
            }
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
                let mut reg = PortRegistryMap::default();
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
    pub fn file_registry(&self) -> Option<&PortRegistryMap> {
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

    /// The first exception covering `q`.
    pub fn matching_exception(&self, q: &ExceptionQuery<'_>) -> Option<&ExceptionRule> {
        self.exceptions.iter().find(|e| e.matches(q))
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

    /// Approved ports for `app_proto` in `role` (`None` when the role does not list it).
    pub fn role_ports(&self, role: &str, app_proto: &str, transport: &str) -> Option<Vec<u16>> {
        let r = self.role(role)?;
        let mut ports: Vec<u16> = r
            .rules
            .iter()
            .filter(|x| x.app_proto == app_proto && x.transport_matches(transport))
            .flat_map(|x| x.ports.iter().copied())
            .collect();
        if ports.is_empty() {
            return None;
        }
        ports.sort_unstable();
        ports.dedup();
        Some(ports)
    }

    /// Judges one pairing. Order: the attributed role's rules for the protocol; else (role does
    /// not list it and is not `deny`, or no role) the device default baseline: pairings approved
    /// for [`DEVICE_DEFAULT`], then `registry`, then the dataplane's verdict; with none of these the
    /// pairing is approved (no evidence against it).
    pub fn judge(&self, q: &PairingQuery<'_>, registry: Option<&dyn PortRegistry>) -> Judgement {
        let upgraded_tls = q.starttls && q.app_proto == "tls";
        if let Some(role) = q.role.and_then(|r| self.role(r)) {
            let listed: Vec<&PortRule> = role
                .rules
                .iter()
                .filter(|r| r.app_proto == q.app_proto && r.transport_matches(q.transport))
                .collect();
            let starttls_ok = upgraded_tls
                && role.rules.iter().any(|r| {
                    r.starttls && r.transport_matches(q.transport) && r.ports.contains(&q.port)
                });
            if !listed.is_empty() || starttls_ok {
                let mut ports: Vec<u16> = listed
                    .iter()
                    .flat_map(|r| r.ports.iter().copied())
                    .collect();
                ports.sort_unstable();
                ports.dedup();
                let approved = starttls_ok || ports.contains(&q.port);
                let explanation = if starttls_ok {
                    format!(
                        "TLS via STARTTLS on {}/{} is approved for role `{}`",
                        q.transport, q.port, role.name
                    )
                } else if approved {
                    format!(
                        "{} on {}/{} is approved for role `{}`",
                        q.app_proto, q.transport, q.port, role.name
                    )
                } else {
                    format!(
                        "{} on {}/{} is outside role `{}` approved ports {:?}",
                        q.app_proto, q.transport, q.port, role.name, ports
                    )
                };
                return Judgement {
                    approved,
                    kind: ViolationKind::RoleBaseline,
                    basis: BaselineBasis::Role,
                    baseline_role: Some(role.name.clone()),
                    approved_ports: ports,
                    explanation,
                };
            }
            if role.unlisted == UnlistedProtocols::Deny {
                return Judgement {
                    approved: false,
                    kind: ViolationKind::RoleBaseline,
                    basis: BaselineBasis::Role,
                    baseline_role: Some(role.name.clone()),
                    approved_ports: Vec::new(),
                    explanation: format!(
                        "role `{}` does not approve {} at all",
                        role.name, q.app_proto
                    ),
                };
            }
        }
        self.judge_device_default(q, registry)
    }

    fn judge_device_default(
        &self,
        q: &PairingQuery<'_>,
        registry: Option<&dyn PortRegistry>,
    ) -> Judgement {
        let upgraded_tls = q.starttls && q.app_proto == "tls";
        let extra = self.device_default_rules.iter().any(|r| {
            r.transport_matches(q.transport)
                && r.ports.contains(&q.port)
                && (r.app_proto == q.app_proto || (upgraded_tls && r.starttls))
        });
        let verdict = |approved: bool,
                       basis: BaselineBasis,
                       ports: Vec<u16>,
                       explanation: String| Judgement {
            approved,
            kind: ViolationKind::DeviceBaseline,
            basis,
            baseline_role: None,
            approved_ports: ports,
            explanation,
        };
        if extra {
            return verdict(
                true,
                BaselineBasis::DeviceDefaultApproved,
                Vec::new(),
                format!(
                    "{} on {}/{} approved for unattributed traffic",
                    q.app_proto, q.transport, q.port
                ),
            );
        }
        if let Some(reg) = registry {
            let direct = reg.is_standard(q.app_proto, q.transport, q.port);
            let via_starttls = upgraded_tls
                && self
                    .starttls_protocols
                    .iter()
                    .any(|p| reg.knows(p) && reg.is_standard(p, q.transport, q.port));
            let ports = reg.standard_ports(q.app_proto, q.transport);
            let approved = direct || via_starttls;
            let explanation = if via_starttls && !direct {
                format!(
                    "TLS via STARTTLS on {}/{} (a registered STARTTLS port)",
                    q.transport, q.port
                )
            } else if approved {
                format!(
                    "{} on {}/{} is a registered port",
                    q.app_proto, q.transport, q.port
                )
            } else {
                format!(
                    "{} on {}/{} is not a registered port for {} (registered: {:?})",
                    q.app_proto, q.transport, q.port, q.app_proto, ports
                )
            };
            return verdict(approved, BaselineBasis::Registry, ports, explanation);
        }
        match q.dataplane_mismatch {
            Some(mismatch) => {
                let approved = !mismatch || upgraded_tls;
                let explanation = if approved && mismatch {
                    format!("TLS via STARTTLS on {}/{}", q.transport, q.port)
                } else if approved {
                    format!(
                        "{} on {}/{} matches the dataplane registry",
                        q.app_proto, q.transport, q.port
                    )
                } else {
                    format!(
                        "{} on {}/{} is not a registered port for {} (dataplane registry)",
                        q.app_proto, q.transport, q.port, q.app_proto
                    )
                };
                verdict(approved, BaselineBasis::Dataplane, Vec::new(), explanation)
            }
            None => verdict(
                true,
                BaselineBasis::NoVerdict,
                Vec::new(),
                "no baseline verdict available".to_string(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_defaults_parse_and_judge() {
        let roles = RoleSet::shipped_defaults().unwrap();
        let mail = roles.role("mail").expect("mail role");
        assert!(mail.has_bundle("com.apple.mobilemail"));
        let q = |port, proto, starttls| PairingQuery {
            role: Some("mail"),
            app_proto: proto,
            transport: "TCP",
            port,
            starttls,
            dataplane_mismatch: None,
        };
        assert!(roles.judge(&q(993, "tls", false), None).approved);
        let j = roles.judge(&q(8443, "tls", false), None);
        assert!(!j.approved);
        assert_eq!(j.kind, ViolationKind::RoleBaseline);
        assert_eq!(j.approved_ports, vec![443, 465, 993]);
        assert!(roles.judge(&q(143, "imap", false), None).approved);
        assert!(
            roles.judge(&q(143, "tls", true), None).approved,
            "STARTTLS on 143"
        );
        assert!(
            roles.judge(&q(587, "tls", true), None).approved,
            "STARTTLS on 587"
        );
        assert!(!roles.judge(&q(9000, "tls", true), None).approved);
    }

    #[test]
    fn registry_and_dataplane_fallbacks() {
        let roles = RoleSet::shipped_defaults().unwrap();
        let reg = PortRegistryMap::default()
            .with("http", &[80])
            .with("imap", &[143]);
        let q = PairingQuery {
            role: None,
            app_proto: "http",
            transport: "TCP",
            port: 8080,
            starttls: false,
            dataplane_mismatch: Some(false),
        };
        let j = roles.judge(&q, Some(&reg));
        assert!(!j.approved, "registry beats the dataplane's verdict");
        assert_eq!(j.basis, BaselineBasis::Registry);
        assert!(
            !roles
                .judge(
                    &PairingQuery {
                        dataplane_mismatch: Some(true),
                        ..q
                    },
                    None
                )
                .approved
        );
        assert!(
            roles
                .judge(
                    &PairingQuery {
                        dataplane_mismatch: None,
                        ..q
                    },
                    None
                )
                .approved
        );
        let tls143 = PairingQuery {
            app_proto: "tls",
            port: 143,
            starttls: true,
            ..q
        };
        assert!(roles.judge(&tls143, Some(&reg)).approved);
        let f = RegistryFn(|p: &str, _t: &str, port: u16| p != "http" || port == 80);
        assert!(!roles.judge(&q, Some(&f)).approved);
    }

    #[test]
    fn exceptions_match_scope_and_expiry() {
        let text = r#"
            [[exception]]
            id = "proxy"
            kind = "proxy"
            destinations = ["10.20.0.0/24", "proxy.corp.example"]
            ports = [8080]
            reason = "forward proxy"
            owner = "netops"
            expires = "2030-01-01T00:00:00Z"
        "#;
        let roles = RoleSet::parse(text, Path::new("r.toml")).unwrap();
        let q = ExceptionQuery {
            udid: Some("U1"),
            serial_number: None,
            dest_ip: "10.20.0.5".parse().unwrap(),
            server_name: None,
            port: 8080,
            app_proto: "http",
            at_us: 0,
        };
        assert!(roles.matching_exception(&q).is_some());
        assert!(roles
            .matching_exception(&ExceptionQuery { port: 8081, ..q })
            .is_none());
        let far = ExceptionQuery {
            dest_ip: "192.0.2.1".parse().unwrap(),
            ..q
        };
        assert!(roles.matching_exception(&far).is_none());
        let named = ExceptionQuery {
            server_name: Some("a.proxy.corp.example"),
            ..far
        };
        assert!(roles.matching_exception(&named).is_some());
        let late = ExceptionQuery {
            at_us: parse_timestamp("2030-01-02T00:00:00Z").unwrap(),
            ..q
        };
        assert!(roles.matching_exception(&late).is_none());
    }

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

    #[test]
    fn domain_suffixes() {
        assert!(domain_matches("imap.mail.example.com", "mail.example.com"));
        assert!(domain_matches("mail.example.com", "*.mail.example.com"));
        assert!(!domain_matches("evilmail.example.com", "mail.example.com"));
        let net = IpNet::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.9.9.9".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(IpNet::parse("2001:db8::/32")
            .unwrap()
            .contains("2001:db8::5".parse().unwrap()));
    }
}
