//! Pull connectors: the inventory fetched from the MDM's API instead of exported by hand.
//!
//! Owns: the Jamf Pro API connector ([`jamf`]), the Microsoft Graph (Intune) connector
//! ([`graph`]), their configuration ([`config`]), the shared HTTPS client ([`http`]: trust, bounds,
//! retries) and OAuth client credentials ([`oauth`]), one pull applied as an import
//! ([`pull_and_import`]) and the schedule inside `portolan run` ([`schedule`]).
//! Must not: parse devices or merge them (the pulled pages are joined into one document per list
//! and go through [`portolan_control::Operator::import_inventory_documents`], the same rules and
//! audit as a file), or let a failed pull change the inventory.

#![forbid(unsafe_code)]

pub mod config;
pub mod graph;
pub mod http;
pub mod jamf;
pub mod oauth;
pub mod schedule;

use std::path::PathBuf;

use serde_json::Value;

use portolan_control::store::ImportSummary;
use portolan_control::Operator;

pub use config::{GraphConfig, HttpLimits, JamfConfig};
pub use schedule::{ConnectorStatus, StatusHandle};

/// Why a pull failed; each names the field, or the call and what the server answered.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// A configuration field is wrong (the message starts with its dotted name).
    #[error("{0}")]
    Config(String),
    /// The server answered with an error status.
    #[error("{what}: HTTP {status}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status {
        /// The call (`GET https://...`).
        what: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// The call failed before an answer (connection, TLS, time limit).
    #[error("{what}: {message}")]
    Transport {
        /// The call.
        what: String,
        /// The cause, with its sources.
        message: String,
    },
    /// The answer is not what the API documents (not JSON, a field missing, a limit passed).
    #[error("{what}: {message}")]
    Protocol {
        /// The call.
        what: String,
        /// What was wrong.
        message: String,
    },
    /// The pulled document was refused by the importer or the store; nothing was changed.
    #[error("import: {0}")]
    Import(String),
}

/// What one pull fetched.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The documents to import, each named by its origin (`jamf:https://...`).
    pub documents: Vec<(PathBuf, Value)>,
    /// Requests answered (list pages and per-device calls).
    pub pages: u32,
    /// Devices listed.
    pub devices: usize,
    /// Tokens fetched.
    pub tokens: u32,
}

/// One configured connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connector {
    /// `[inputs.jamf]`.
    Jamf(JamfConfig),
    /// `[inputs.graph]`.
    Graph(GraphConfig),
}

impl Connector {
    /// `jamf` or `graph`: its name in logs, metrics and the audit log.
    pub fn name(&self) -> &'static str {
        match self {
            Connector::Jamf(_) => "jamf",
            Connector::Graph(_) => "graph",
        }
    }

    /// The configuration section (`inputs.jamf`).
    pub fn section(&self) -> String {
        format!("inputs.{}", self.name())
    }

    /// The server it pulls from.
    pub fn target(&self) -> String {
        match self {
            Connector::Jamf(c) => c.base().to_string(),
            Connector::Graph(c) => c.base().to_string(),
        }
    }

    /// Seconds between scheduled pulls.
    pub fn interval_s(&self) -> u64 {
        match self {
            Connector::Jamf(c) => c.interval_s,
            Connector::Graph(c) => c.interval_s,
        }
    }

    /// Checks the configuration and that the secret file can be read as required.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let prefix = self.section();
        let (secret, ca) = match self {
            Connector::Jamf(c) => {
                c.validate(&prefix)?;
                (&c.client_secret_file, &c.ca_file)
            }
            Connector::Graph(c) => {
                c.validate(&prefix)?;
                (&c.client_secret_file, &c.ca_file)
            }
        };
        config::read_secret(&format!("{prefix}.client_secret_file"), secret)?;
        if let Some(ca) = ca {
            let limits = HttpLimits::default();
            http::Http::new(&limits, Some(ca), &format!("{prefix}.ca_file"))?;
        }
        Ok(())
    }

    /// Fetches the inventory (no import).
    pub async fn pull(&self) -> Result<Pulled, ConnectorError> {
        let prefix = self.section();
        match self {
            Connector::Jamf(c) => jamf::pull(c, &prefix).await,
            Connector::Graph(c) => graph::pull(c, &prefix).await,
        }
    }
}

/// One pull applied: what was fetched and what the import did.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// Requests, devices and tokens of the pull.
    pub pages: u32,
    /// Devices listed by the server.
    pub devices: usize,
    /// Tokens fetched.
    pub tokens: u32,
    /// One summary per imported document.
    pub imports: Vec<ImportSummary>,
}

/// Pulls with `connector` and imports the result through `operator` (actor `connector:<name>`),
/// on the blocking pool. A pull or import that fails leaves the inventory as it was.
pub async fn pull_and_import(
    connector: &Connector,
    operator: &Operator,
) -> Result<PullReport, ConnectorError> {
    let pulled = connector.pull().await?;
    let actor = format!("connector:{}", connector.name());
    let reason = format!(
        "scheduled pull from {} ({} devices, {} requests)",
        connector.target(),
        pulled.devices,
        pulled.pages
    );
    let op = operator.clone();
    let documents = pulled.documents;
    let imports = tokio::task::spawn_blocking(move || {
        op.import_inventory_documents(documents, &actor, &reason)
    })
    .await
    .map_err(|e| ConnectorError::Import(format!("import task failed: {e}")))?
    .map_err(|e| ConnectorError::Import(e.to_string()))?;
    Ok(PullReport {
        pages: pulled.pages,
        devices: pulled.devices,
        tokens: pulled.tokens,
        imports,
    })
}
