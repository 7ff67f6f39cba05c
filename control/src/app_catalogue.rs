//! The app catalogue: the data that ties evidence in a flow to apps — server names an app talks
//! to, HTTP User-Agent product tokens, protocols only some apps speak from a device, browsers,
//! and iOS system components. Every entry carries its source.
//!
//! Owns: [`AppCatalogue`], reading and validating it (`control/data/app_catalogue.toml` shipped,
//! or an operator's file), and the lookups attribution needs.
//! Must not: decide which app made a flow (that is [`crate::attribution`], which weighs this
//! evidence against the device's installed apps), or hold per-site state.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The shipped catalogue.
pub const SHIPPED_APP_CATALOGUE_TOML: &str = include_str!("../data/app_catalogue.toml");

/// A catalogue file that cannot be used; names the file and the entry.
#[derive(Debug, thiserror::Error)]
pub enum AppCatalogueError {
    /// Unreadable file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML or not the catalogue's shape, or an entry that breaks a rule.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Where and what.
        message: String,
    },
}

/// Server names one or more apps talk to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainEntry {
    /// Matches the name itself or any subdomain (lowercase, no trailing dot).
    pub suffix: String,
    /// Every app known to use it (may be empty for a site only browsers open).
    #[serde(default)]
    pub apps: Vec<String>,
    /// A site a browser also opens: installed browsers are candidates too.
    #[serde(default)]
    pub web: bool,
    /// Where the fact comes from.
    pub source: String,
}

/// An HTTP User-Agent product token that names an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserAgentEntry {
    /// The product name before `/` (or before `-<version>`), compared exactly.
    pub token: String,
    /// The app's bundle ID.
    pub app: String,
    /// Where the fact comes from.
    pub source: String,
}

/// A protocol only some apps speak directly from an iOS device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolEntry {
    /// EVE protocol name, lowercase.
    pub app_proto: String,
    /// The apps.
    pub apps: Vec<String>,
    /// Where the fact comes from.
    pub source: String,
}

/// A browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserEntry {
    /// Bundle ID.
    pub bundle_id: String,
    /// Substrings of a `Mozilla/5.0 ...` User-Agent that only this browser sends; empty for the
    /// one whose agent carries no marker of its own (Safari).
    #[serde(default)]
    pub ua_markers: Vec<String>,
    /// Where the fact comes from.
    pub source: String,
}

/// An iOS component on every device that MDM app lists never show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemAppEntry {
    /// Bundle ID.
    pub bundle_id: String,
    /// Where the fact comes from.
    pub source: String,
}

/// The catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppCatalogue {
    /// Format version (1).
    pub version: u32,
    /// Server names.
    #[serde(default, rename = "domain")]
    pub domains: Vec<DomainEntry>,
    /// User-Agent tokens.
    #[serde(default, rename = "user_agent")]
    pub user_agents: Vec<UserAgentEntry>,
    /// Protocols.
    #[serde(default, rename = "protocol")]
    pub protocols: Vec<ProtocolEntry>,
    /// Browsers.
    #[serde(default, rename = "browser")]
    pub browsers: Vec<BrowserEntry>,
    /// System components.
    #[serde(default, rename = "system_app")]
    pub system_apps: Vec<SystemAppEntry>,
}

/// What a User-Agent said about the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAgentClaim {
    /// A product token listed in the catalogue.
    Listed(String),
    /// A browser's `Mozilla/5.0` agent (by its marker, or Safari's with none).
    Browser(String),
    /// A CFNetwork agent whose product token is not listed: the app's executable name.
    Executable(String),
}

impl Default for AppCatalogue {
    fn default() -> Self {
        AppCatalogue {
            version: 1,
            domains: Vec::new(),
            user_agents: Vec::new(),
            protocols: Vec::new(),
            browsers: Vec::new(),
            system_apps: Vec::new(),
        }
    }
}

fn normalize_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

impl AppCatalogue {
    /// The shipped catalogue.
    pub fn shipped() -> Result<AppCatalogue, AppCatalogueError> {
        AppCatalogue::parse(
            SHIPPED_APP_CATALOGUE_TOML,
            Path::new("control/data/app_catalogue.toml"),
        )
    }

    /// Reads a catalogue file.
    pub fn load(path: &Path) -> Result<AppCatalogue, AppCatalogueError> {
        let text = crate::input_file::read_to_string_bounded(
            path,
            crate::input_file::MAX_INPUT_FILE_BYTES,
        )
        .map_err(|source| AppCatalogueError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        AppCatalogue::parse(&text, path)
    }

    /// Parses and validates catalogue TOML; `origin` names errors.
    pub fn parse(text: &str, origin: &Path) -> Result<AppCatalogue, AppCatalogueError> {
        let invalid = |message: String| AppCatalogueError::Invalid {
            path: origin.to_path_buf(),
            message,
        };
        let mut cat: AppCatalogue = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if cat.version != 1 {
            return Err(invalid(format!(
                "version: {} is not supported (1 is)",
                cat.version
            )));
        }
        let bundle_ok = |b: &str| {
            !b.is_empty() && b.len() <= 255 && !b.contains(char::is_whitespace) && b.contains('.')
        };
        for (i, d) in cat.domains.iter_mut().enumerate() {
            d.suffix = normalize_name(&d.suffix);
            if d.suffix.is_empty() || d.suffix.contains(char::is_whitespace) {
                return Err(invalid(format!("domain[{i}].suffix: not a DNS name")));
            }
            if d.apps.is_empty() && !d.web {
                return Err(invalid(format!(
                    "domain[{i}] ({}): no apps and not `web`: it could name nothing",
                    d.suffix
                )));
            }
            if let Some(b) = d.apps.iter().find(|b| !bundle_ok(b)) {
                return Err(invalid(format!(
                    "domain[{i}].apps: {b:?} is not a bundle ID"
                )));
            }
            if d.source.trim().is_empty() {
                return Err(invalid(format!("domain[{i}].source: empty")));
            }
        }
        for (i, u) in cat.user_agents.iter().enumerate() {
            if u.token.trim().is_empty() || !bundle_ok(&u.app) || u.source.trim().is_empty() {
                return Err(invalid(format!(
                    "user_agent[{i}]: token, app (a bundle ID) and source are required"
                )));
            }
        }
        for (i, p) in cat.protocols.iter_mut().enumerate() {
            p.app_proto = p.app_proto.trim().to_ascii_lowercase();
            if p.app_proto.is_empty()
                || p.apps.is_empty()
                || !p.apps.iter().all(|b| bundle_ok(b))
                || p.source.trim().is_empty()
            {
                return Err(invalid(format!(
                    "protocol[{i}]: app_proto, apps (bundle IDs) and source are required"
                )));
            }
        }
        for (i, b) in cat.browsers.iter().enumerate() {
            if !bundle_ok(&b.bundle_id) || b.source.trim().is_empty() {
                return Err(invalid(format!(
                    "browser[{i}]: bundle_id and source are required"
                )));
            }
        }
        for (i, s) in cat.system_apps.iter().enumerate() {
            if !bundle_ok(&s.bundle_id) || s.source.trim().is_empty() {
                return Err(invalid(format!(
                    "system_app[{i}]: bundle_id and source are required"
                )));
            }
        }
        Ok(cat)
    }

    /// The entry with the longest suffix matching `name` (the name or a parent domain).
    pub fn domain(&self, name: &str) -> Option<&DomainEntry> {
        let name = normalize_name(name);
        self.domains
            .iter()
            .filter(|d| {
                name == d.suffix
                    || (name.len() > d.suffix.len()
                        && name.ends_with(&d.suffix)
                        && name.as_bytes().get(name.len() - d.suffix.len() - 1) == Some(&b'.'))
            })
            .max_by_key(|d| d.suffix.len())
    }

    /// The entry for a protocol.
    pub fn protocol(&self, app_proto: &str) -> Option<&ProtocolEntry> {
        self.protocols
            .iter()
            .find(|p| p.app_proto.eq_ignore_ascii_case(app_proto))
    }

    /// True for an iOS component present on every device.
    pub fn is_system_app(&self, bundle_id: &str) -> bool {
        self.system_apps.iter().any(|s| s.bundle_id == bundle_id)
    }

    /// The browsers' bundle IDs.
    pub fn browser_ids(&self) -> impl Iterator<Item = &str> {
        self.browsers.iter().map(|b| b.bundle_id.as_str())
    }

    /// What a User-Agent says about the app that sent it, if anything.
    pub fn user_agent_claim(&self, user_agent: &str) -> Option<UserAgentClaim> {
        let ua = user_agent.trim();
        if ua.is_empty() || ua.len() > 1024 {
            return None;
        }
        if ua.starts_with("Mozilla/") {
            if !(ua.contains("iPhone") || ua.contains("iPad")) {
                return None;
            }
            if let Some(b) = self
                .browsers
                .iter()
                .find(|b| b.ua_markers.iter().any(|m| ua.contains(m.as_str())))
            {
                return Some(UserAgentClaim::Browser(b.bundle_id.clone()));
            }
            // Safari proper carries `Version/.. Mobile/.. Safari/..`; a web view inside an app
            // lacks `Safari/` and says nothing about which app.
            if ua.contains(" Safari/") && ua.contains(" Version/") {
                if let Some(b) = self.browsers.iter().find(|b| b.ua_markers.is_empty()) {
                    return Some(UserAgentClaim::Browser(b.bundle_id.clone()));
                }
            }
            return None;
        }
        let first = ua.split_whitespace().next()?;
        let product = first.split('/').next().unwrap_or(first);
        if let Some(u) = self.user_agents.iter().find(|u| {
            product == u.token
                || product
                    .strip_prefix(u.token.as_str())
                    .is_some_and(|rest| rest.starts_with('-'))
        }) {
            return Some(UserAgentClaim::Listed(u.app.clone()));
        }
        if ua.contains("CFNetwork/") && !product.is_empty() && product != "CFNetwork" {
            return Some(UserAgentClaim::Executable(product.to_string()));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_catalogue_is_valid_and_lookups_work() {
        let c = AppCatalogue::shipped().unwrap();
        assert!(c.domains.iter().all(|d| !d.source.is_empty()));
        let d = c.domain("34-courier.push.apple.com.").unwrap();
        assert_eq!(d.apps, vec!["com.apple.apsd".to_string()]);
        assert!(c.domain("notpush.apple.com").is_none(), "label boundary");
        assert_eq!(
            c.domain("x.relay.teams.microsoft.com").unwrap().suffix,
            "relay.teams.microsoft.com",
            "longest suffix wins"
        );
        assert_eq!(
            c.user_agent_claim("Outlook-iOS/723.4027091.prod.iphone (4.2350.0)"),
            Some(UserAgentClaim::Listed(
                "com.microsoft.Office.Outlook".into()
            ))
        );
        assert_eq!(
            c.user_agent_claim("CaptiveNetworkSupport-481.0.1 wispr"),
            Some(UserAgentClaim::Listed(
                "com.apple.captivenetworksupport".into()
            ))
        );
        assert_eq!(
            c.user_agent_claim("Acme%20Notes/12 CFNetwork/1490.0.4 Darwin/23.2.0"),
            Some(UserAgentClaim::Executable("Acme%20Notes".into()))
        );
        let safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1";
        assert_eq!(
            c.user_agent_claim(safari),
            Some(UserAgentClaim::Browser("com.apple.mobilesafari".into()))
        );
        let chrome = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1";
        assert_eq!(
            c.user_agent_claim(chrome),
            Some(UserAgentClaim::Browser("com.google.chrome.ios".into()))
        );
        let webview = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148";
        assert_eq!(c.user_agent_claim(webview), None, "a web view names no app");
        assert_eq!(c.user_agent_claim("curl/8.5.0"), None);
    }

    #[test]
    fn bad_entries_are_refused_naming_them() {
        let e = AppCatalogue::parse(
            "version = 1\n[[domain]]\nsuffix = \"x.example\"\napps = []\nsource = \"s\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("c.toml") && e.contains("domain[0]"), "{e}");
        let e = AppCatalogue::parse(
            "version = 1\n[[domain]]\nsuffix = \"x.example\"\napps = [\"not a bundle\"]\nsource = \"s\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("domain[0].apps"), "{e}");
        let e = AppCatalogue::parse("version = 2\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("version"), "{e}");
    }
}
