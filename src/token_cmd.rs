//! `portolan token create|revoke|list`: admin API bearer tokens in the appliance's store, managed
//! from the command line (the API itself cannot mint tokens).
//!
//! Owns: the subcommand's options and output: `create` prints the new token alone on stdout (so
//! scripts can capture it) and everything else on stderr. Must not: print or log a stored token
//! (only its id, role and label), or touch the control plane's tables.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use portolan_api::{Role, TokenError, TokenStore};

use crate::config::{ApplianceConfig, Overrides};
use crate::Failure;

/// Options of `portolan token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    action: TokenAction,
}

/// The configuration file and its overrides, shared by every token action.
#[derive(Debug, Args)]
struct ConfigArgs {
    /// Appliance configuration (TOML); the token table lives in its store.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Use this data folder instead of the configuration's `data_dir`.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Creates a token and prints it, alone, on stdout (it is not shown again).
    Create {
        #[command(flatten)]
        config: ConfigArgs,
        /// admin (everything), analyst (alerts and read) or viewer (read).
        #[arg(long, value_name = "ROLE")]
        role: String,
        /// Who or what holds the token (recorded in the audit log with every change it makes).
        #[arg(long, value_name = "TEXT", default_value = "")]
        label: String,
    },
    /// Revokes a token by id (see `portolan token list`).
    Revoke {
        #[command(flatten)]
        config: ConfigArgs,
        /// The token's id.
        #[arg(value_name = "ID")]
        id: i64,
    },
    /// Lists tokens (id, role, label, created, revoked), never their secrets.
    List {
        #[command(flatten)]
        config: ConfigArgs,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Longest accepted label.
const MAX_LABEL: usize = 200;

fn open_store(args: &ConfigArgs) -> Result<TokenStore, Failure> {
    let overrides = Overrides {
        data_dir: args.data_dir.clone(),
        listen: None,
    };
    // A central's configuration (a `[central]` table) keeps its tokens in the central's store.
    let text = std::fs::read_to_string(&args.config).unwrap_or_default();
    let (data_dir, store) = if crate::central::config::is_central(&text) {
        let cfg = crate::central::config::CentralConfig::load(&args.config, &overrides)
            .map_err(|e| Failure::bad_input(e.to_string()))?;
        (cfg.data_dir, cfg.store.path)
    } else {
        let cfg = ApplianceConfig::load(&args.config, &overrides)
            .map_err(|e| Failure::bad_input(e.to_string()))?;
        (cfg.data_dir, cfg.store.path)
    };
    crate::daemon::create_private_dir(&data_dir)
        .map_err(|e| Failure::runtime(format!("data_dir {}: {e}", data_dir.display())))?;
    if let Some(dir) = store.parent() {
        crate::daemon::create_private_dir(dir)
            .map_err(|e| Failure::runtime(format!("store folder {}: {e}", dir.display())))?;
    }
    TokenStore::open(&store).map_err(|e| Failure::runtime(e.to_string()))
}

fn token_failure(e: TokenError) -> Failure {
    match e {
        TokenError::UnknownRole(_) | TokenError::NotFound(_) | TokenError::AlreadyRevoked(_) => {
            Failure::bad_input(e.to_string())
        }
        _ => Failure::runtime(e.to_string()),
    }
}

/// Runs `portolan token ...`.
pub fn run_token(args: TokenArgs) -> Result<(), Failure> {
    match args.action {
        TokenAction::Create {
            config,
            role,
            label,
        } => {
            let role: Role = role.parse().map_err(token_failure)?;
            let label = label.trim();
            if label.chars().count() > MAX_LABEL || label.chars().any(char::is_control) {
                return Err(Failure::bad_input(format!(
                    "--label must be at most {MAX_LABEL} characters without control characters"
                )));
            }
            let store = open_store(&config)?;
            let token = store.create(role, label).map_err(token_failure)?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", token.secret)
                .and_then(|()| out.flush())
                .map_err(|e| Failure::runtime(format!("cannot write the token to stdout: {e}")))?;
            eprintln!(
                "created {} token {} in {}",
                token.role,
                token.id,
                store.path().display()
            );
            Ok(())
        }
        TokenAction::Revoke { config, id } => {
            let store = open_store(&config)?;
            store.revoke(id).map_err(token_failure)?;
            eprintln!("revoked token {id}");
            Ok(())
        }
        TokenAction::List { config, json } => {
            let store = open_store(&config)?;
            let tokens = store.list().map_err(token_failure)?;
            let mut out = std::io::stdout().lock();
            let written = if json {
                serde_json::to_writer_pretty(&mut out, &tokens)
                    .map_err(std::io::Error::from)
                    .and_then(|()| writeln!(out))
            } else {
                let mut r = writeln!(
                    out,
                    "{:>4}  {:<8} {:<31} {:<31} label",
                    "id", "role", "created", "revoked"
                );
                for t in &tokens {
                    r = r.and_then(|()| {
                        writeln!(
                            out,
                            "{:>4}  {:<8} {:<31} {:<31} {}",
                            t.id,
                            t.role.as_str(),
                            t.created_at,
                            t.revoked_at.as_deref().unwrap_or("-"),
                            t.label
                        )
                    });
                }
                r
            };
            written.map_err(|e| Failure::runtime(format!("cannot write to stdout: {e}")))
        }
    }
}
