//! `[fleet]` of the appliance configuration: where the JetStream cluster is, who this appliance
//! is, and the outbox's bound.
//!
//! Owns: the section's fields, defaults and checks (each error names the field, relative to
//! `[fleet]`: `site`, `servers[1]`, ...). Must not: connect anywhere.

use std::time::Duration;

use serde::Deserialize;

use portolan_control::fleet::check_id;

/// `[fleet]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// NATS server URLs (`nats://host:4222`), any member of the cluster.
    pub servers: Vec<String>,
    /// This appliance's site (a subject token: letters, digits, `_`, `-`).
    pub site: String,
    /// This appliance's id, unique in the fleet (a subject token).
    pub appliance: String,
    /// The JetStream stream the fleet's messages go to (created when missing).
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Replicas of the stream when this appliance creates it (1, or 3 on a 3-node cluster).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// Rows the outbox holds at most while the cluster is unreachable; past it, new messages are
    /// counted as dropped (the local store still has every finding and alert).
    #[serde(default = "default_outbox_capacity")]
    pub outbox_capacity: u64,
    /// The stream's de-duplication window, seconds (when this appliance creates it).
    #[serde(default = "default_duplicate_window_s")]
    pub duplicate_window_s: u64,
    /// How long a publish waits for JetStream's acknowledgement, ms.
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
    /// Apply the fleet's shared configuration (roles, baselines, exceptions in KV) live.
    #[serde(default = "default_true")]
    pub shared_config: bool,
    /// How long the start waits for the shared configuration's current values before the
    /// dataplane judges anything, ms (past it: judged with what the store kept, logged).
    #[serde(default = "default_config_catchup_ms")]
    pub config_catchup_ms: u64,
}

fn default_true() -> bool {
    true
}
fn default_config_catchup_ms() -> u64 {
    10_000
}

fn default_stream() -> String {
    "PORTOLAN".into()
}
fn default_replicas() -> usize {
    1
}
fn default_outbox_capacity() -> u64 {
    1_000_000
}
fn default_duplicate_window_s() -> u64 {
    600
}
fn default_ack_timeout_ms() -> u64 {
    5_000
}

impl FleetConfig {
    /// Checks every field; the error names the field (relative to `[fleet]`) and why.
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.servers.is_empty() {
            return Err((
                "servers".into(),
                "must name at least one server (nats://host:4222)".into(),
            ));
        }
        for (i, s) in self.servers.iter().enumerate() {
            check_server(s).map_err(|r| (format!("servers[{i}]"), r))?;
        }
        check_id(&self.site).map_err(|r| ("site".to_string(), r))?;
        check_id(&self.appliance).map_err(|r| ("appliance".to_string(), r))?;
        check_id(&self.stream).map_err(|r| ("stream".to_string(), r))?;
        if !(1..=5).contains(&self.replicas) {
            return Err(("replicas".into(), "must be 1 to 5".into()));
        }
        if self.outbox_capacity == 0 {
            return Err(("outbox_capacity".into(), "must be at least 1".into()));
        }
        if !(1..=86_400).contains(&self.duplicate_window_s) {
            return Err((
                "duplicate_window_s".into(),
                "must be 1 to 86400 seconds".into(),
            ));
        }
        if !(100..=600_000).contains(&self.ack_timeout_ms) {
            return Err(("ack_timeout_ms".into(), "must be 100 to 600000 ms".into()));
        }
        if self.config_catchup_ms > 600_000 {
            return Err(("config_catchup_ms".into(), "must be 0 to 600000 ms".into()));
        }
        Ok(())
    }

    /// [`FleetConfig::ack_timeout_ms`] as a duration.
    pub fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.ack_timeout_ms)
    }
}

/// `[central]` of `portolan central`'s configuration: the cluster and the durable consumer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralSection {
    /// NATS server URLs (`nats://host:4222`), any member of the cluster.
    pub servers: Vec<String>,
    /// The stream the appliances publish to (created when missing).
    #[serde(default = "default_stream")]
    pub stream: String,
    /// This central's durable consumer; each central process uses its own (and its own store).
    #[serde(default = "default_consumer")]
    pub consumer: String,
    /// Replicas of the stream and the consumer when this central creates them.
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// The stream's de-duplication window, seconds (when this central creates it).
    #[serde(default = "default_duplicate_window_s")]
    pub duplicate_window_s: u64,
}

fn default_consumer() -> String {
    "portolan-central".into()
}

impl CentralSection {
    /// Checks every field; the error names the field (relative to `[central]`) and why.
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.servers.is_empty() {
            return Err((
                "servers".into(),
                "must name at least one server (nats://host:4222)".into(),
            ));
        }
        for (i, s) in self.servers.iter().enumerate() {
            check_server(s).map_err(|r| (format!("servers[{i}]"), r))?;
        }
        check_id(&self.stream).map_err(|r| ("stream".to_string(), r))?;
        check_id(&self.consumer).map_err(|r| ("consumer".to_string(), r))?;
        if !(1..=5).contains(&self.replicas) {
            return Err(("replicas".into(), "must be 1 to 5".into()));
        }
        if !(1..=86_400).contains(&self.duplicate_window_s) {
            return Err((
                "duplicate_window_s".into(),
                "must be 1 to 86400 seconds".into(),
            ));
        }
        Ok(())
    }
}

fn check_server(s: &str) -> Result<(), String> {
    let rest = ["nats://", "tls://"]
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .ok_or_else(|| format!("{s:?} must start with nats:// or tls://"))?;
    let hostport = rest.rsplit('@').next().unwrap_or(rest);
    match hostport.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(())
        }
        _ => Err(format!("{s:?} must be nats://host:port")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FleetConfig, String> {
        toml::from_str::<FleetConfig>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_errors_name_the_field() {
        let ok =
            "servers = [\"nats://127.0.0.1:4222\"]\nsite = \"paris\"\nappliance = \"edge-1\"\n";
        let c = parse(ok).unwrap();
        assert_eq!(c.check(), Ok(()));
        assert_eq!((c.stream.as_str(), c.replicas), ("PORTOLAN", 1));
        for (text, field) in [
            ("servers = []\nsite = \"p\"\nappliance = \"a\"\n", "servers"),
            (
                "servers = [\"nats://h:1\", \"h:4222\"]\nsite = \"p\"\nappliance = \"a\"\n",
                "servers[1]",
            ),
            ("servers = [\"nats://h:1\"]\nsite = \"a.b\"\nappliance = \"a\"\n", "site"),
            ("servers = [\"nats://h:1\"]\nsite = \"p\"\nappliance = \"\"\n", "appliance"),
            (
                "servers = [\"nats://h:1\"]\nsite = \"p\"\nappliance = \"a\"\nreplicas = 7\n",
                "replicas",
            ),
            (
                "servers = [\"nats://h:1\"]\nsite = \"p\"\nappliance = \"a\"\noutbox_capacity = 0\n",
                "outbox_capacity",
            ),
        ] {
            let e = parse(text).unwrap().check().unwrap_err();
            assert_eq!(e.0, field, "{text}: {e:?}");
        }
        assert!(parse("servers = []\nsite = \"p\"\nappliance = \"a\"\nsurprise = 1\n").is_err());
    }
}
