//! Exceptions: known, owned reasons for a pairing that would otherwise be a violation (a proxy,
//! a relay, developer tooling), per device or global, each with a reason, an owner and an expiry.
//!
//! Owns: [`ExceptionRule`] and its checks, [`ExceptionQuery`] and matching (address ranges
//! through the `ipnet` crate, domain suffixes on label boundaries), [`RoleSet::matching_exception`].
//! Must not: judge pairings ([`super::judge`]) or decide what an exception does to a score
//! ([`crate::scoring`]).

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{invalid, RoleSet, RolesError};
use crate::observation::normalize_host;
use crate::timestamp::format_rfc3339;

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

/// Parses an exception's address range: `a.b.c.d/n`, `x::/n`, or a bare address (a host route).
pub fn parse_net(text: &str) -> Option<IpNet> {
    match text.parse::<IpNet>() {
        Ok(net) => Some(net),
        Err(_) if !text.contains('/') => text.parse::<IpAddr>().ok().map(IpNet::from),
        Err(_) => None,
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
        if parse_net(t).is_some() {
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
                parse_net(n).is_some_and(|net| net.contains(&q.dest_ip))
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

impl RoleSet {
    /// The first exception covering `q`.
    pub fn matching_exception(&self, q: &ExceptionQuery<'_>) -> Option<&ExceptionRule> {
        self.exceptions.iter().find(|e| e.matches(q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::parse_timestamp;

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
    fn domain_suffixes() {
        assert!(domain_matches("imap.mail.example.com", "mail.example.com"));
        assert!(domain_matches("mail.example.com", "*.mail.example.com"));
        assert!(!domain_matches("evilmail.example.com", "mail.example.com"));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let net = parse_net("10.0.0.0/8").unwrap();
        assert!(net.contains(&ip("10.9.9.9")));
        assert!(!net.contains(&ip("11.0.0.1")));
        assert!(parse_net("2001:db8::/32")
            .unwrap()
            .contains(&ip("2001:db8::5")));
        let host = parse_net("10.20.0.5").unwrap();
        assert!(host.contains(&ip("10.20.0.5")) && !host.contains(&ip("10.20.0.6")));
        for bad in [
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0/8",
            "proxy.corp/8",
            "",
        ] {
            assert!(parse_net(bad).is_none(), "{bad}");
        }
    }
}
