//! `portolan check-config FILE`: checks an appliance configuration without starting anything,
//! as `suricata -T` does.
//!
//! Checked: the TOML and every field as `portolan run` reads them (unknown keys, types, ranges,
//! the hardware description, the API, the outputs, the control plane's tunables, the input
//! files' existence); the signatures the daemon would load (found by the search of
//! `crate::signatures` and compiled, without writing the Hyperscan cache) and the port override;
//! the roles file; the TLS pair (both files readable as a certificate chain and a key that
//! match, or both absent: then the names a self-signed pair would carry are printed); the syslog
//! CA files; the logging filter; that `data_dir` is a directory when it exists.
//!
//! Exit codes: 0 valid (a summary on stdout); 2 invalid or unreadable (one line on stderr naming
//! the file and the field at fault).
//!
//! Owns: the checks above and the summary. Must not: create or modify any file (the data
//! directory, the store, the TLS pair, the cache), bind a socket or start DPDK — what needs the
//! hardware is `portolan hwcheck`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use portolan_api::RolesSource;
use portolan_classify::CacheDir;

use crate::config::{ApplianceConfig, Overrides};
use crate::Failure;

/// Options of `portolan check-config`.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// Appliance configuration (TOML) to check, e.g. /etc/portolan/portolan.toml.
    #[arg(value_name = "FILE")]
    config: PathBuf,
    /// Print nothing when the configuration is valid.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `portolan check-config`.
pub fn run_check_config(args: &CheckConfigArgs) -> Result<(), Failure> {
    let lines = check(&args.config).map_err(Failure::bad_input)?;
    if !args.quiet {
        let mut out = std::io::stdout().lock();
        // A closed stdout (e.g. `| head`) is not a failure of the check.
        let _ = writeln!(out, "{}: configuration is valid", args.config.display());
        for (what, detail) in lines {
            let _ = writeln!(out, "  {what:<12} {detail}");
        }
    }
    Ok(())
}

/// Every check; on success the summary lines `(topic, detail)`, on failure one message naming
/// the file and the field.
pub fn check(path: &Path) -> Result<Vec<(&'static str, String)>, String> {
    let cfg = ApplianceConfig::load(path, &Overrides::default()).map_err(|e| e.to_string())?;
    let file = cfg.origin.display().to_string();
    let field_err = |field: &str, reason: String| format!("{file}: {field}: {reason}");
    let mut lines = Vec::new();

    if cfg.data_dir.exists() && !cfg.data_dir.is_dir() {
        return Err(field_err(
            "data_dir",
            format!("{} exists and is not a directory", cfg.data_dir.display()),
        ));
    }
    lines.push((
        "data_dir",
        format!(
            "{}{}",
            cfg.data_dir.display(),
            if cfg.data_dir.is_dir() {
                ""
            } else {
                " (created at first start)"
            }
        ),
    ));

    let hw = &cfg.hardware;
    for (i, port) in hw.ports.iter().enumerate() {
        let lcores: Vec<String> = port.queues.iter().map(|q| q.lcore.to_string()).collect();
        lines.push((
            "port",
            format!(
                "{} {} ({} RX queue(s), workers on lcores {})",
                port.name.clone().unwrap_or_else(|| format!("#{i}")),
                port.device_string(),
                port.queues.len(),
                lcores.join(",")
            ),
        ));
    }

    let source =
        crate::signatures::locate(cfg.dataplane.signatures.as_deref(), "dataplane.signatures")
            .map_err(|e| field_err("dataplane.signatures", e))?;
    let (sigs, db) = crate::signatures::load(&source, &CacheDir::Disabled)
        .map_err(|e| field_err("dataplane.signatures", e))?;
    lines.push((
        "signatures",
        format!(
            "{} protocols, {} patterns from {source}",
            sigs.signatures().len(),
            db.patterns
        ),
    ));
    if let Some(p) = &cfg.dataplane.ports {
        let mut registry = sigs.port_registry();
        registry
            .apply_override_file(p)
            .map_err(|e| field_err("dataplane.ports", e.to_string()))?;
        lines.push(("ports", format!("override {}", p.display())));
    }

    let roles_source = match &cfg.control.roles {
        Some(p) => RolesSource::File(p.clone()),
        None => RolesSource::Shipped,
    };
    let roles = roles_source
        .load()
        .map_err(|e| field_err("control.roles", e.to_string()))?;
    lines.push((
        "roles",
        format!(
            "{} roles from {}",
            roles.roles().len(),
            cfg.control
                .roles
                .as_ref()
                .map_or("the shipped defaults".to_string(), |p| p
                    .display()
                    .to_string())
        ),
    ));

    lines.push(("api", check_tls(&cfg).map_err(|(f, r)| field_err(f, r))?));

    for (i, o) in cfg.outputs.syslog.iter().enumerate() {
        if let Some(ca) = &o.ca_file {
            if !ca.is_file() {
                return Err(field_err(
                    &format!("outputs.syslog[{i}].ca_file"),
                    format!(
                        "file {} does not exist (relative paths are relative to data_dir)",
                        ca.display()
                    ),
                ));
            }
        }
    }
    let mut outputs: Vec<String> = [
        ("eve", &cfg.outputs.eve),
        ("ocsf", &cfg.outputs.ocsf),
        ("flows", &cfg.outputs.flows),
    ]
    .into_iter()
    .filter_map(|(k, p)| p.as_ref().map(|p| format!("{k} {}", p.display())))
    .collect();
    for o in cfg
        .outputs
        .network_outputs("-")
        .map_err(|(f, r)| field_err(&f, r))?
    {
        let address = match &o.target {
            portolan_control::output::forward::ForwardTarget::Syslog { address, .. }
            | portolan_control::output::forward::ForwardTarget::Redis { address, .. } => address,
        };
        outputs.push(format!("{} {address}", o.target.kind()));
    }
    lines.push((
        "outputs",
        if outputs.is_empty() {
            "none (alerts stay in the store and the API)".to_string()
        } else {
            outputs.join(", ")
        },
    ));

    tracing_subscriber::EnvFilter::try_new(&cfg.logging.level)
        .map_err(|e| field_err("logging.level", format!("{:?}: {e}", cfg.logging.level)))?;
    Ok(lines)
}

/// The API line: plain HTTP, the TLS pair loaded, or the names a self-signed pair would get.
fn check_tls(cfg: &ApplianceConfig) -> Result<String, (&'static str, String)> {
    let api = &cfg.api;
    if api.plain_http {
        return Ok(format!("http://{} (plain HTTP, loopback only)", api.listen));
    }
    let files = &api.tls;
    match (files.cert.exists(), files.key.exists()) {
        (true, true) => {
            portolan_api::tls::server_config(files).map_err(|e| ("api.tls", e.to_string()))?;
            Ok(format!(
                "https://{} with {} and {}",
                api.listen,
                files.cert.display(),
                files.key.display()
            ))
        }
        (false, false) => Ok(format!(
            "https://{}; a self-signed pair for {} valid {} days is created at first start as {}",
            api.listen,
            portolan_api::tls::self_signed_names(&files.names, api.listen.ip()).join(", "),
            files.self_signed_days,
            files.cert.display()
        )),
        (true, false) => Err((
            "api.tls.key",
            format!(
                "{} does not exist but {} does: provide both, or neither to create a \
                 self-signed pair",
                files.key.display(),
                files.cert.display()
            ),
        )),
        (false, true) => Err((
            "api.tls.cert",
            format!(
                "{} does not exist but {} does: provide both, or neither to create a \
                 self-signed pair",
                files.cert.display(),
                files.key.display()
            ),
        )),
    }
}
