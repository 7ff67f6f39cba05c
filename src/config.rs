//! The appliance configuration file of `portolan run` and `portolan token`: one TOML file with the
//! hardware description (`[hardware]`, as `portolan-hwconfig` reads it), the store, the control
//! plane's roles and tunables, optional start-up inputs, the dataplane's start policy, the admin
//! API (`[api]`, as `portolan-api` reads it) and logging.
//!
//! Owns: parsing with unknown keys refused ([`ApplianceConfig::load`]), resolving relative paths
//! (inputs against the configuration file's directory; the store and the TLS files against
//! `data_dir`), and validation that names the bad field (`hardware.ports[0].vdev`,
//! `api.listen`, ...). Must not: open the store, bind sockets, start DPDK or create files; the
//! daemon does that from a loaded [`ApplianceConfig`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use portolan_api::ApiConfig;
use portolan_connectors::{Connector, GraphConfig, JamfConfig};
use portolan_control::attribution::AttributionConfig;
use portolan_control::inventory::InventoryOptions;
use portolan_control::learning::LearningConfig;
use portolan_control::output::forward::{ForwardTarget, SyslogTransport};
use portolan_control::output::ocsf::OcsfProduct;
use portolan_control::retention::RetentionConfig;
use portolan_control::scoring::ScoringConfig;
use portolan_control::{ControlConfig, Durability};
use portolan_fleet::FleetConfig;
use portolan_hwconfig::HardwareDescription;
use serde::Deserialize;

/// Smallest accepted `dataplane.stats_interval_ms`.
pub const MIN_STATS_INTERVAL_MS: u64 = 100;

/// The whole configuration file (see `config/portolan.example.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplianceConfig {
    /// Folder for everything the appliance writes: the store, the TLS pair, kept uploads.
    /// Relative to the configuration file's directory.
    pub data_dir: PathBuf,
    /// The hardware description: cores, memory, pools, rings, RSS, flow table, ports.
    pub hardware: HardwareDescription,
    /// The SQLite store.
    #[serde(default)]
    pub store: StoreSection,
    /// Roles file and control-plane tunables.
    #[serde(default)]
    pub control: ControlSection,
    /// Files imported once at start-up (optional).
    #[serde(default)]
    pub inputs: InputsSection,
    /// Dataplane options beyond the hardware description.
    #[serde(default)]
    pub dataplane: DataplaneSection,
    /// Alert files written beside the API (optional).
    #[serde(default)]
    pub outputs: OutputsSection,
    /// The admin API.
    #[serde(default)]
    pub api: ApiConfig,
    /// The fleet (optional): publish findings, alerts and learning counts to a NATS JetStream
    /// cluster through the store's outbox.
    #[serde(default)]
    pub fleet: Option<FleetConfig>,
    /// Logging.
    #[serde(default)]
    pub logging: LoggingSection,
    /// The file this was read from (absolute).
    #[serde(skip)]
    pub origin: PathBuf,
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// SQLite file, relative to `data_dir` (default `portolan.db`).
    pub path: PathBuf,
    /// `full` (default: commits survive power loss) or `normal`.
    pub durability: Durability,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            path: PathBuf::from("portolan.db"),
            durability: Durability::Full,
        }
    }
}

/// `[control]`: the roles file and the control plane's tunables (each subsection documents its
/// defaults in `portolan-control`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlSection {
    /// Roles and baselines TOML, relative to the configuration file; absent: the shipped roles.
    pub roles: Option<PathBuf>,
    /// Scoring and alerting.
    pub scoring: ScoringConfig,
    /// Attribution confidences and DNS cache.
    pub attribution: AttributionConfig,
    /// Learning mode.
    pub learning: LearningConfig,
    /// Product details in OCSF output.
    pub ocsf: OcsfProduct,
    /// Site-specific inventory field names (`[control.inventory]`).
    pub inventory: InventoryOptions,
    /// How long what grows with time is kept (`[control.retention]`).
    pub retention: RetentionConfig,
}

impl ControlSection {
    /// The tunables as the control plane takes them.
    pub fn control_config(&self) -> ControlConfig {
        ControlConfig {
            scoring: self.scoring.clone(),
            attribution: self.attribution.clone(),
            learning: self.learning.clone(),
            ocsf: self.ocsf.clone(),
            inventory: self.inventory.clone(),
            retention: self.retention.clone(),
        }
    }
}

/// One path or a list of paths.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(p) => vec![p],
        OneOrMany::Many(v) => v,
    })
}

/// `[inputs]`: files imported at every start (optional; the API is the usual way to feed them).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputsSection {
    /// MDM inventory files (Jamf, Graph, Apple MDM; JSON or plist).
    pub inventory: Vec<PathBuf>,
    /// Kea DHCP lease CSVs (`kea-leases4.csv`, `kea-leases6.csv`): one path or a list.
    #[serde(deserialize_with = "one_or_many")]
    pub leases: Vec<PathBuf>,
    /// Device-state events, one JSON object per line.
    pub device_states: Option<PathBuf>,
    /// `[inputs.jamf]`: pull the inventory from the Jamf Pro API at start and every `interval_s`.
    pub jamf: Option<JamfConfig>,
    /// `[inputs.graph]`: pull it from Microsoft Graph (Intune) at start and every `interval_s`.
    pub graph: Option<GraphConfig>,
}

impl InputsSection {
    /// The configured pull connectors.
    pub fn connectors(&self) -> Vec<Connector> {
        let mut v = Vec::new();
        if let Some(j) = &self.jamf {
            v.push(Connector::Jamf(j.clone()));
        }
        if let Some(g) = &self.graph {
            v.push(Connector::Graph(g.clone()));
        }
        v
    }
}

/// When the dataplane starts polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPolicy {
    /// As soon as the control plane and the API are up.
    #[default]
    Immediately,
    /// Once the store holds at least one device (imported at start-up, earlier, or through
    /// `POST /api/v1/inventory`): a capture replayed through net_pcap is then judged with its
    /// inventory in place.
    AfterFirstInventory,
}

/// `[dataplane]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataplaneSection {
    /// When to start polling.
    pub start: StartPolicy,
    /// Signature directory, relative to the configuration file; absent: the search of
    /// `crate::signatures` (`$PORTOLAN_SIGNATURES`, `../share/portolan/signatures` beside the
    /// executable, `/usr/share/portolan/signatures`, the set built into the binary).
    pub signatures: Option<PathBuf>,
    /// Port registry override TOML, relative to the configuration file.
    pub ports: Option<PathBuf>,
    /// How often the dataplane statistics are published to the API, in milliseconds.
    pub stats_interval_ms: u64,
    /// Hand a flow to the control plane as soon as it is identified (the early event), so a
    /// live port's alert does not wait for the flow to end.
    pub early_events: bool,
    /// Seconds between an open flow's interim updates (duration, counters) after its early
    /// event, so persistent connections are scored while they last; 0: none.
    pub interim_interval_s: u32,
}

impl Default for DataplaneSection {
    fn default() -> Self {
        DataplaneSection {
            start: StartPolicy::Immediately,
            signatures: None,
            ports: None,
            stats_interval_ms: 1000,
            early_events: true,
            interim_interval_s: 60,
        }
    }
}

/// `[outputs]`: alert files (JSON lines, appended), relative to `data_dir`, and the network
/// outputs (`[[outputs.syslog]]`, `[[outputs.redis]]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputsSection {
    /// Suricata EVE alerts.
    pub eve: Option<PathBuf>,
    /// OCSF Detection Findings.
    pub ocsf: Option<PathBuf>,
    /// The EVE flow log: every finished flow as a Suricata EVE `flow` record (the shape of
    /// `portolan replay --events`), one per line.
    pub flows: Option<PathBuf>,
    /// Syslog receivers (RFC 5424, one JSON alert per message).
    pub syslog: Vec<SyslogOutput>,
    /// Redis servers (EVE alerts, as Suricata's `redis` output).
    pub redis: Vec<RedisOutput>,
}

/// Which rendering of an alert an output sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertFormat {
    /// Suricata EVE `alert`.
    #[default]
    Eve,
    /// OCSF Detection Finding.
    Ocsf,
}

/// `[[outputs.syslog]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogOutput {
    /// `host:port` of the receiver.
    pub address: String,
    /// `tls` (TCP with TLS, RFC 5425) or `udp` (RFC 5426).
    pub transport: String,
    /// PEM file of the CAs trusted for the receiver (`tls`; relative to `data_dir`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The name the receiver's certificate carries (default: the host part of `address`).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Syslog facility, 0..=23 (default 13, log audit).
    #[serde(default = "default_facility")]
    pub facility: u8,
    /// `eve` (default) or `ocsf`.
    #[serde(default)]
    pub format: AlertFormat,
    /// Alerts queued while the receiver is down before new ones are dropped (and counted).
    #[serde(default = "default_output_queue")]
    pub queue: usize,
}

/// `[[outputs.redis]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisOutput {
    /// `host:port` of the server.
    pub address: String,
    /// List or channel name (Suricata's default is `suricata`).
    pub key: String,
    /// `list` (`RPUSH`) or `channel` (`PUBLISH`).
    pub mode: String,
    /// Alerts queued while the server is down before new ones are dropped (and counted).
    #[serde(default = "default_output_queue")]
    pub queue: usize,
}

/// One network output as the daemon starts it.
#[derive(Debug, Clone)]
pub struct NetworkOutput {
    /// Where and how.
    pub target: ForwardTarget,
    /// EVE or OCSF.
    pub format: AlertFormat,
    /// Queue limit.
    pub queue: usize,
}

impl OutputsSection {
    /// The network outputs, checked; an error names the field (`outputs.syslog[0].transport`)
    /// and the reason.
    pub fn network_outputs(&self, hostname: &str) -> Result<Vec<NetworkOutput>, (String, String)> {
        let mut out = Vec::new();
        let has_port = |a: &str| {
            a.rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
        };
        for (i, o) in self.syslog.iter().enumerate() {
            let field = |f: &str| format!("outputs.syslog[{i}].{f}");
            if !has_port(&o.address) {
                return Err((field("address"), "must be host:port".into()));
            }
            if o.facility > 23 {
                return Err((field("facility"), "must be 0..=23".into()));
            }
            if o.queue == 0 {
                return Err((field("queue"), "must be at least 1".into()));
            }
            let transport = match o.transport.as_str() {
                "udp" => SyslogTransport::Udp,
                "tls" => {
                    let Some(ca_file) = o.ca_file.clone() else {
                        return Err((
                            field("ca_file"),
                            "is required with transport \"tls\"".into(),
                        ));
                    };
                    let host = o.address.rsplit_once(':').map_or("", |(h, _)| h);
                    let server_name = o
                        .server_name
                        .clone()
                        .unwrap_or_else(|| host.trim_matches(['[', ']']).to_string());
                    SyslogTransport::Tls {
                        ca_file,
                        server_name,
                    }
                }
                other => {
                    return Err((
                        field("transport"),
                        format!("{other:?} is not \"tls\" or \"udp\""),
                    ))
                }
            };
            out.push(NetworkOutput {
                target: ForwardTarget::Syslog {
                    address: o.address.clone(),
                    transport,
                    facility: o.facility,
                    hostname: hostname.to_string(),
                    app_name: "portolan".to_string(),
                },
                format: o.format,
                queue: o.queue,
            });
        }
        for (i, o) in self.redis.iter().enumerate() {
            let field = |f: &str| format!("outputs.redis[{i}].{f}");
            if !has_port(&o.address) {
                return Err((field("address"), "must be host:port".into()));
            }
            if o.key.is_empty() {
                return Err((field("key"), "must not be empty".into()));
            }
            if o.queue == 0 {
                return Err((field("queue"), "must be at least 1".into()));
            }
            let publish = match o.mode.as_str() {
                "list" => false,
                "channel" => true,
                other => {
                    return Err((
                        field("mode"),
                        format!("{other:?} is not \"list\" or \"channel\""),
                    ))
                }
            };
            out.push(NetworkOutput {
                target: ForwardTarget::Redis {
                    address: o.address.clone(),
                    key: o.key.clone(),
                    publish,
                },
                format: AlertFormat::Eve,
                queue: o.queue,
            });
        }
        Ok(out)
    }
}

fn default_facility() -> u8 {
    13
}

fn default_output_queue() -> usize {
    10_000
}

/// `[logging]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingSection {
    /// `tracing` filter directives, e.g. `info` or `info,portolan_api=debug` (`RUST_LOG`
    /// overrides).
    pub level: String,
    /// `text` (default) or `json`.
    pub format: LogFormat,
}

impl Default for LoggingSection {
    fn default() -> Self {
        LoggingSection {
            level: "info".to_string(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Command-line overrides applied after the file is read.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces `data_dir` (relative to the working directory).
    pub data_dir: Option<PathBuf>,
    /// Replaces `api.listen`.
    pub listen: Option<SocketAddr>,
}

/// Why the configuration cannot be used; every variant names the file, and the field when one
/// is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not TOML, a wrong type, or an unknown key (toml names the line, column and key).
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message.
        message: String,
    },
    /// A field has a value that cannot be used.
    #[error("{}: {field}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Dotted field name, e.g. `hardware.ports[0].vdev`.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

impl ConfigError {
    /// The field at fault, when one is.
    #[cfg(test)]
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// One line for a TOML or type error: the dotted field (when serde reached one), toml's reason,
/// and the line and column, e.g. `hardware.flow_table.udp_idle_timeout_s: invalid type: string
/// "x", expected u64 (line 52, column 22)`.
pub(crate) fn parse_message(text: &str, e: &serde_path_to_error::Error<toml::de::Error>) -> String {
    let inner = e.inner();
    let mut out = String::new();
    let path = e.path().to_string();
    if path != "." {
        out.push_str(&path);
        out.push_str(": ");
    }
    out.push_str(
        &inner
            .message()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    );
    if let Some(span) = inner.span() {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        out.push_str(&format!(" (line {line}, column {column})"));
    }
    out
}

/// `base/p` unless `p` is absolute, with `.` and `..` folded lexically (symbolic links are
/// left alone), so logs and DPDK device arguments show plain paths.
pub(crate) fn rebase(base: &Path, p: &Path) -> PathBuf {
    use std::path::Component;
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push(c);
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// True when DPDK's device-argument parser reads `s` back unchanged as one value.
fn is_devarg_safe(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+~@:%".contains(&b))
}

/// Device arguments of `net_pcap` that name files.
const NET_PCAP_FILE_ARGS: &[&str] = &["rx_pcap", "tx_pcap"];

/// Largest appliance configuration file read (1 MiB; the example is 9 KB). A larger file is
/// refused naming the limit: a regular file before it is read, anything else once one byte past
/// the limit has been read.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The text of the configuration file at `path`, at most [`MAX_CONFIG_BYTES`].
pub fn read_config_text(path: &Path) -> Result<String, ConfigError> {
    portolan_control::input_file::read_to_string_bounded(path, MAX_CONFIG_BYTES).map_err(|source| {
        ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }
    })
}

impl ApplianceConfig {
    /// Reads (at most [`MAX_CONFIG_BYTES`]), resolves and validates the configuration at `path`,
    /// with `overrides` applied.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<ApplianceConfig, ConfigError> {
        let origin = std::path::absolute(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let text = read_config_text(&origin)?;
        Self::parse(&text, &origin, overrides)
    }

    /// Parses configuration text read from `origin` (an absolute path: relative paths inside are
    /// resolved against its directory).
    pub fn parse(
        text: &str,
        origin: &Path,
        overrides: &Overrides,
    ) -> Result<ApplianceConfig, ConfigError> {
        let mut cfg: ApplianceConfig =
            serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
                ConfigError::Parse {
                    path: origin.to_path_buf(),
                    message: parse_message(text, &e),
                }
            })?;
        cfg.origin = origin.to_path_buf();
        if let Some(d) = &overrides.data_dir {
            cfg.data_dir = std::path::absolute(d).map_err(|e| cfg.invalid("data_dir", e))?;
        }
        if let Some(l) = overrides.listen {
            cfg.api.listen = l;
        }
        cfg.resolve()?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn invalid(&self, field: impl Into<String>, reason: impl ToString) -> ConfigError {
        ConfigError::Invalid {
            path: self.origin.clone(),
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// The configuration file's directory.
    pub fn base_dir(&self) -> PathBuf {
        self.origin
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    fn resolve(&mut self) -> Result<(), ConfigError> {
        let base = self.base_dir();
        self.data_dir = rebase(&base, &self.data_dir);
        let data = self.data_dir.clone();
        self.store.path = rebase(&data, &self.store.path);
        self.api.resolve_paths(&data);
        for p in [
            &mut self.outputs.eve,
            &mut self.outputs.ocsf,
            &mut self.outputs.flows,
        ]
        .into_iter()
        .flatten()
        {
            *p = rebase(&data, p);
        }
        for o in &mut self.outputs.syslog {
            if let Some(p) = o.ca_file.as_mut() {
                *p = rebase(&data, p);
            }
        }
        for p in [
            &mut self.control.roles,
            &mut self.inputs.device_states,
            &mut self.dataplane.signatures,
            &mut self.dataplane.ports,
        ]
        .into_iter()
        .flatten()
        {
            *p = rebase(&base, p);
        }
        for p in self
            .inputs
            .inventory
            .iter_mut()
            .chain(&mut self.inputs.leases)
        {
            *p = rebase(&base, p);
        }
        if let Some(j) = self.inputs.jamf.as_mut() {
            j.client_secret_file = rebase(&base, &j.client_secret_file);
            j.ca_file = j.ca_file.as_ref().map(|p| rebase(&base, p));
        }
        if let Some(g) = self.inputs.graph.as_mut() {
            g.client_secret_file = rebase(&base, &g.client_secret_file);
            g.ca_file = g.ca_file.as_ref().map(|p| rebase(&base, p));
        }
        for i in 0..self.hardware.ports.len() {
            let Some(vdev) = self.hardware.ports.get(i).and_then(|p| p.vdev.clone()) else {
                continue;
            };
            let mut parts = vdev.split(',');
            let mut out = parts.next().unwrap_or("").to_string();
            for kv in parts {
                out.push(',');
                match kv.split_once('=') {
                    Some((k, v)) if NET_PCAP_FILE_ARGS.contains(&k) => {
                        let abs = rebase(&base, Path::new(v));
                        let s = abs.to_str().filter(|s| is_devarg_safe(s)).ok_or_else(|| {
                            self.invalid(
                                format!("hardware.ports[{i}].vdev"),
                                format!(
                                    "{k} file {} has characters DPDK device arguments cannot carry \
                                     (`,`, `=`, spaces, brackets, quotes); move or link it",
                                    abs.display()
                                ),
                            )
                        })?;
                        out.push_str(k);
                        out.push('=');
                        out.push_str(s);
                    }
                    _ => out.push_str(kv),
                }
            }
            if let Some(p) = self.hardware.ports.get_mut(i) {
                p.vdev = Some(out);
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Err(invalid) = self.hardware.validate() {
            let first = invalid.problems.first();
            return Err(self.invalid(
                format!(
                    "hardware.{}",
                    first.map_or("(unknown)", |p| p.field.as_str())
                ),
                invalid
                    .problems
                    .iter()
                    .map(|p| format!("hardware.{p}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ));
        }
        self.api
            .validate()
            .map_err(|e| self.invalid(format!("api.{}", e.field), e.reason))?;
        self.outputs
            .network_outputs("-")
            .map_err(|(field, reason)| self.invalid(field, reason))?;
        self.control
            .control_config()
            .validate()
            .map_err(|e| self.invalid(format!("control.{}", e.field), e.message))?;
        if self.dataplane.stats_interval_ms < MIN_STATS_INTERVAL_MS {
            return Err(self.invalid(
                "dataplane.stats_interval_ms",
                format!("must be at least {MIN_STATS_INTERVAL_MS}"),
            ));
        }
        if self.logging.level.trim().is_empty() {
            return Err(self.invalid("logging.level", "must not be empty"));
        }
        if let Some(fleet) = &self.fleet {
            fleet
                .check()
                .map_err(|(field, reason)| self.invalid(format!("fleet.{field}"), reason))?;
        }
        let must_exist = |field: String, p: &Path, dir: bool| -> Result<(), ConfigError> {
            let ok = if dir { p.is_dir() } else { p.is_file() };
            if ok {
                Ok(())
            } else {
                Err(self.invalid(
                    field,
                    format!(
                        "{} {} does not exist (relative paths are relative to {})",
                        if dir { "directory" } else { "file" },
                        p.display(),
                        self.base_dir().display()
                    ),
                ))
            }
        };
        if let Some(p) = &self.control.roles {
            must_exist("control.roles".into(), p, false)?;
        }
        for (i, p) in self.inputs.inventory.iter().enumerate() {
            must_exist(format!("inputs.inventory[{i}]"), p, false)?;
        }
        for (i, p) in self.inputs.leases.iter().enumerate() {
            must_exist(format!("inputs.leases[{i}]"), p, false)?;
        }
        if let Some(p) = &self.inputs.device_states {
            must_exist("inputs.device_states".into(), p, false)?;
        }
        for connector in self.inputs.connectors() {
            // Fields, the secret file (regular, mode 0600/0400, not empty) and the CA file.
            if let Err(e) = connector.validate() {
                let message = e.to_string();
                let section = connector.section();
                let (field, reason) = message
                    .split_once(": ")
                    .unwrap_or((section.as_str(), message.as_str()));
                return Err(self.invalid(field, reason));
            }
        }
        if let Some(p) = &self.dataplane.signatures {
            must_exist("dataplane.signatures".into(), p, true)?;
        }
        if let Some(p) = &self.dataplane.ports {
            must_exist("dataplane.ports".into(), p, false)?;
        }
        for (i, port) in self.hardware.ports.iter().enumerate() {
            if !port.is_net_pcap() {
                continue;
            }
            for kv in port.device_string().split(',').skip(1) {
                if let Some(("rx_pcap", v)) = kv.split_once('=') {
                    must_exist(format!("hardware.ports[{i}].vdev"), Path::new(v), false)?;
                }
            }
        }
        if self.store.path.is_dir() {
            return Err(self.invalid(
                "store.path",
                format!("{} is a directory", self.store.path.display()),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../config/portolan.example.toml");

    fn example_origin() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/portolan.example.toml")
    }

    fn parse(text: &str) -> Result<ApplianceConfig, ConfigError> {
        ApplianceConfig::parse(text, &example_origin(), &Overrides::default())
    }

    #[test]
    fn the_shipped_example_loads_with_paths_resolved() {
        let cfg = ApplianceConfig::load(&example_origin(), &Overrides::default()).unwrap();
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        assert!(
            cfg.data_dir.starts_with(&root),
            "{}",
            cfg.data_dir.display()
        );
        assert!(cfg.store.path.starts_with(&cfg.data_dir));
        assert!(cfg.api.tls.cert.starts_with(&cfg.data_dir));
        assert!(cfg.api.tls.key.starts_with(&cfg.data_dir));
        assert!(!cfg.api.plain_http, "TLS on by default");
        assert_eq!(cfg.api.listen.to_string(), "127.0.0.1:9443");
        let vdev = cfg.hardware.ports[0].vdev.as_deref().unwrap();
        let capture = root.join("samples/egress-sample.pcap");
        assert!(
            vdev.contains(&format!("rx_pcap={}", capture.display())),
            "{vdev}"
        );
        assert_eq!(cfg.hardware.worker_count(), 1);
    }

    #[test]
    fn connectors_name_their_fields_and_refuse_a_secret_others_can_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("jamf.secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o640)).unwrap();
        let jamf = |url: &str| {
            format!(
                "{EXAMPLE}\n[inputs.jamf]\nurl = \"{url}\"\nclient_id = \"abc\"\n\
                 client_secret_file = \"{}\"\ninterval_s = 900\n",
                secret.display()
            )
        };
        let e = parse(&jamf("https://jamf.example.com")).unwrap_err();
        assert_eq!(e.field(), Some("inputs.jamf.client_secret_file"), "{e}");
        assert!(e.to_string().contains("640"), "{e}");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let cfg = parse(&jamf("https://jamf.example.com")).unwrap();
        let connectors = cfg.inputs.connectors();
        assert_eq!(connectors.len(), 1);
        assert_eq!(connectors[0].interval_s(), 900);
        let e = parse(&jamf("http://jamf.example.com")).unwrap_err();
        assert_eq!(e.field(), Some("inputs.jamf.url"), "{e}");
        let e = parse(&format!(
            "{}limits = {{ max_pages = 0 }}\n",
            jamf("https://j.example.com")
        ))
        .unwrap_err();
        assert_eq!(e.field(), Some("inputs.jamf.limits.max_pages"), "{e}");
    }

    #[test]
    fn overrides_replace_the_data_dir_and_the_listen_address() {
        let o = Overrides {
            data_dir: Some(PathBuf::from("/tmp/portolan-x")),
            listen: Some("127.0.0.1:0".parse().unwrap()),
        };
        let cfg = ApplianceConfig::parse(EXAMPLE, &example_origin(), &o).unwrap();
        assert_eq!(cfg.store.path, Path::new("/tmp/portolan-x/portolan.db"));
        assert!(cfg.api.tls.cert.starts_with("/tmp/portolan-x"));
        assert_eq!(cfg.api.listen.port(), 0);
    }

    #[test]
    fn the_fleet_section_is_optional_and_checked_naming_its_field() {
        assert!(parse(EXAMPLE).unwrap().fleet.is_none());
        let fleet = "\n[fleet]\nservers = [\"nats://127.0.0.1:4222\"]\nsite = \"paris\"\nappliance = \"edge-1\"\n";
        let c = parse(&format!("{EXAMPLE}{fleet}")).unwrap();
        assert_eq!(c.fleet.as_ref().map(|f| f.site.as_str()), Some("paris"));
        let e = parse(&format!("{EXAMPLE}{}", fleet.replace("edge-1", "edge 1"))).unwrap_err();
        assert_eq!(e.field(), Some("fleet.appliance"), "{e}");
        let e = parse(&format!("{EXAMPLE}{}", fleet.replace("nats://", "http://"))).unwrap_err();
        assert_eq!(e.field(), Some("fleet.servers[0]"), "{e}");
        let e = parse(&format!("{EXAMPLE}{fleet}replicas = 0\n")).unwrap_err();
        assert_eq!(e.field(), Some("fleet.replicas"), "{e}");
        let e = parse(&format!("{EXAMPLE}{fleet}sight = \"x\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sight"), "{e}");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_their_field() {
        let e = parse(&format!("{EXAMPLE}\n[bogus]\nx = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = parse(&EXAMPLE.replace("[store]", "[store]\npathh = \"x.db\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("pathh") && e.contains("line"), "{e}");
        let e = parse(&EXAMPLE.replace("listen = \"127.0.0.1:9443\"", "listen = \"nowhere\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen"), "{e}");
        let e = parse(&EXAMPLE.replace(
            "listen = \"127.0.0.1:9443\"",
            "listen = \"0.0.0.0:9443\"\nplain_http = true",
        ))
        .unwrap_err();
        assert_eq!(e.field(), Some("api.plain_http"), "{e}");
        let e =
            parse(&EXAMPLE.replace("samples/egress-sample.pcap", "samples/none.pcap")).unwrap_err();
        assert_eq!(e.field(), Some("hardware.ports[0].vdev"), "{e}");
        assert!(e.to_string().contains("none.pcap"), "{e}");
        let e = parse(&EXAMPLE.replace("queues = [{ lcore = 1 }]", "queues = [{ lcore = 7 }]"))
            .unwrap_err();
        assert!(e.field().is_some_and(|f| f.starts_with("hardware.")), "{e}");
        let e = parse(&EXAMPLE.replace("stats_interval_ms = 1000", "stats_interval_ms = 1"))
            .unwrap_err();
        assert_eq!(e.field(), Some("dataplane.stats_interval_ms"), "{e}");
        let e = parse(&EXAMPLE.replace("start = \"after_first_inventory\"", "start = \"later\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("later") || e.contains("start"), "{e}");
        // Numbers are checked as data: NaN, unordered severities, a zero window, a zero timeout.
        for (from, to, field) in [
            (
                "alert_threshold = 20.0",
                "alert_threshold = nan",
                "control.scoring.alert_threshold",
            ),
            (
                "severity_high = 70.0",
                "severity_high = 10.0",
                "control.scoring.severity_high",
            ),
            (
                "bucket_s = 3600",
                "bucket_s = 0",
                "control.learning.bucket_s",
            ),
        ] {
            let e = parse(&EXAMPLE.replace(from, to)).unwrap_err();
            assert_eq!(e.field(), Some(field), "{e}");
        }
        let e = parse(&format!(
            "{EXAMPLE}\n[control.attribution]\ndns_max_age_s = -1\n"
        ))
        .unwrap_err();
        assert_eq!(e.field(), Some("control.attribution.dns_max_age_s"), "{e}");
        let e = parse(&EXAMPLE.replace("idle_timeout_seconds = 30 ", "idle_timeout_seconds = 0 "))
            .unwrap_err();
        assert_eq!(
            e.field(),
            Some("api.connections.idle_timeout_seconds"),
            "{e}"
        );
    }

    #[test]
    fn network_outputs_are_checked_and_name_their_field() {
        let with = |extra: &str| parse(&format!("{EXAMPLE}\n{extra}\n"));
        let cfg = with(
            "[[outputs.syslog]]\naddress = \"siem.example.com:6514\"\ntransport = \"tls\"\n\
             ca_file = \"ca.pem\"\n[[outputs.syslog]]\naddress = \"127.0.0.1:514\"\n\
             transport = \"udp\"\nformat = \"ocsf\"\n[[outputs.redis]]\n\
             address = \"127.0.0.1:6379\"\nkey = \"suricata\"\nmode = \"channel\"",
        )
        .unwrap();
        let outs = cfg.outputs.network_outputs("sensor").unwrap();
        let kinds: Vec<_> = outs.iter().map(|o| o.target.kind()).collect();
        assert_eq!(kinds, ["syslog-tls", "syslog-udp", "redis-channel"]);
        match &outs[0].target {
            ForwardTarget::Syslog {
                transport:
                    SyslogTransport::Tls {
                        ca_file,
                        server_name,
                    },
                ..
            } => {
                assert!(ca_file.starts_with(&cfg.data_dir), "relative to data_dir");
                assert_eq!(server_name, "siem.example.com");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(outs[1].format, AlertFormat::Ocsf);
        for (extra, field) in [
            (
                "[[outputs.syslog]]\naddress = \"h:6514\"\ntransport = \"tcp\"",
                "outputs.syslog[0].transport",
            ),
            (
                "[[outputs.syslog]]\naddress = \"h:6514\"\ntransport = \"tls\"",
                "outputs.syslog[0].ca_file",
            ),
            (
                "[[outputs.syslog]]\naddress = \"h\"\ntransport = \"udp\"",
                "outputs.syslog[0].address",
            ),
            (
                "[[outputs.redis]]\naddress = \"h:1\"\nkey = \"k\"\nmode = \"set\"",
                "outputs.redis[0].mode",
            ),
            (
                "[[outputs.redis]]\naddress = \"h:1\"\nkey = \"k\"\nmode = \"list\"\nqueue = 0",
                "outputs.redis[0].queue",
            ),
        ] {
            let e = with(extra).unwrap_err();
            assert_eq!(e.field(), Some(field), "{e}");
        }
    }

    #[test]
    fn an_odd_capture_path_is_refused_before_dpdk_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("a,b.pcap");
        std::fs::write(&odd, b"x").unwrap();
        let text = EXAMPLE.replace("../samples/egress-sample.pcap", odd.to_str().unwrap());
        let e = parse(&text).unwrap_err();
        assert_eq!(e.field(), Some("hardware.ports[0].vdev"), "{e}");
    }
}
