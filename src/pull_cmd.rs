//! `portolan pull --config FILE [--connector jamf|graph]`: runs the configured inventory
//! connectors once, to test a configuration (credentials, API privileges, CA, paging), and prints
//! what was pulled and what an import would report.
//!
//! Exit codes: 0 every pull and parse succeeded; 2 the configuration is invalid or names no
//! connector; 1 a pull failed (the message names the call and the HTTP status or the cause).
//!
//! Owns: the one-shot run and its report. Must not: write the store (a running daemon holds it;
//! `portolan run` imports on its schedule), or print the secret or a token.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use portolan_connectors::Connector;
use portolan_control::inventory::parse_inventory_documents_with;

use crate::config::{ApplianceConfig, Overrides};
use crate::Failure;

/// Which connector to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// `[inputs.jamf]`.
    Jamf,
    /// `[inputs.graph]`.
    Graph,
}

/// Options of `portolan pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Appliance configuration (TOML) with `[inputs.jamf]` and/or `[inputs.graph]`.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Run only this connector (default: every configured one).
    #[arg(long, value_enum)]
    connector: Option<Which>,
}

/// Runs `portolan pull`.
pub fn run_pull(args: &PullArgs) -> Result<(), Failure> {
    let cfg = ApplianceConfig::load(&args.config, &Overrides::default())
        .map_err(|e| Failure::bad_input(e.to_string()))?;
    let connectors: Vec<Connector> = cfg
        .inputs
        .connectors()
        .into_iter()
        .filter(|c| match args.connector {
            None => true,
            Some(Which::Jamf) => matches!(c, Connector::Jamf(_)),
            Some(Which::Graph) => matches!(c, Connector::Graph(_)),
        })
        .collect();
    if connectors.is_empty() {
        return Err(Failure::bad_input(format!(
            "{}: no [inputs.jamf] or [inputs.graph] section{}",
            cfg.origin.display(),
            args.connector
                .map(|w| format!(" for --connector {w:?}").to_lowercase())
                .unwrap_or_default()
        )));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start a runtime: {e}")))?;
    let mut out = std::io::stdout().lock();
    let mut failed = None;
    for connector in &connectors {
        let _ = writeln!(out, "{} ({}):", connector.section(), connector.target());
        let pulled = match runtime.block_on(connector.pull()) {
            Ok(p) => p,
            Err(e) => {
                let _ = writeln!(out, "  pull failed: {e}");
                failed.get_or_insert(format!("{}: {e}", connector.section()));
                continue;
            }
        };
        let _ = writeln!(
            out,
            "  pulled       {} devices in {} requests, {} token(s)",
            pulled.devices, pulled.pages, pulled.tokens
        );
        match parse_inventory_documents_with(pulled.documents, &cfg.control.inventory) {
            Err(e) => {
                let _ = writeln!(out, "  import would fail: {e}");
                failed.get_or_insert(format!("{}: {e}", connector.section()));
            }
            Ok(batches) => {
                for b in batches {
                    let _ = writeln!(
                        out,
                        "  would import {} devices from {} ({} skipped, {} warnings)",
                        b.devices.len(),
                        b.path.display(),
                        b.skipped.len(),
                        b.warnings.len()
                    );
                    for w in &b.warnings {
                        let _ = writeln!(out, "    warning: {w}");
                    }
                }
            }
        }
    }
    match failed {
        Some(message) => Err(Failure::runtime(message)),
        None => Ok(()),
    }
}
