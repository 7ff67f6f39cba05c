//! What the control plane is fed: one [`FlowObservation`] per classified flow and one
//! [`DnsAnswer`] per resolved name, as serde types shared by the dataplane and the control plane.
//!
//! Owns: the input contract and its construction from Suricata-style EVE records (`event_type`
//! `flow` and `dns`), the input format of EVE files; the dataplane's hand-off builds the same
//! types directly.
//! Must not: judge, attribute or score anything; it only carries what the dataplane saw.
//!
//! # `FlowObservation` fields
//!
//! | field | meaning | EVE source |
//! | --- | --- | --- |
//! | `flow_id` | the dataplane's flow id | `flow_id` |
//! | `community_id` | Community ID v1 | `community_id` |
//! | `start_us`, `end_us` | first / last packet, µs since epoch | `flow.start`, `flow.end` (else `timestamp`) |
//! | `src_ip`, `src_port` | the client (the device side) | `src_ip`, `src_port` |
//! | `dest_ip`, `dest_port` | the server | `dest_ip`, `dest_port` |
//! | `transport` | `TCP`, `UDP`, ... (uppercase) | `proto` |
//! | `app_proto` | identified protocol, lowercase (`tls`, `http`, `quic`, ...) | `app_proto` |
//! | `indicators` | the classifier's evidence labels | `portolan.indicators` (or top-level `indicators`) |
//! | `sni`, `http_host`, `quic_sni` | names the client asked for | `tls.sni`, `http.hostname`, `quic.sni` |
//! | `tls`, `http` | the EVE objects as-is, copied into alerts | `tls`, `http` |
//! | `pkts_*`, `bytes_*` | counters each way | `flow.pkts_toserver`, ... |
//! | `port_mismatch` | the dataplane registry's verdict: `Some(true)` = protocol on a port the registry does not list for it; `None` = no verdict | `portolan.port_mismatch` or top-level `port_mismatch` (bool, or an object, true unless it says `"mismatch": false`) |
//! | `starttls` | the session upgraded to TLS with STARTTLS | `portolan.starttls` / `starttls`, `tls.starttls`, or indicator `starttls` |

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::names::NameSource;
use crate::proxy::ProxyTarget;
use crate::time::parse_timestamp;

/// An EVE record that could not be turned into an observation; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("EVE record: field `{field}`: {message}")]
pub struct ObservationError {
    /// Dotted path of the offending field, e.g. `flow.start`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl ObservationError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// Which of a flow's hand-off events an observation is. A flow is handed off as soon as it is
/// identified (`Early`: protocol decided and the name attribution needs read or given up), then
/// at most once per interval while it lasts (`Interim`: times and counters only), and when it
/// ends (`Final`: the whole record). The control plane counts the three as one session, placed
/// by the flow's id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowPhase {
    /// The flow was just identified; it is still open.
    Early,
    /// The flow is still open: its duration and counters so far.
    Interim,
    /// The flow ended (the only event of flows the dataplane judged at their end).
    #[default]
    Final,
}

impl FlowPhase {
    /// `early`, `interim` or `final`.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowPhase::Early => "early",
            FlowPhase::Interim => "interim",
            FlowPhase::Final => "final",
        }
    }
}

/// One classified flow as the dataplane reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowObservation {
    /// The dataplane's flow id.
    pub flow_id: u64,
    /// Community ID v1 of the 5-tuple, when computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub community_id: Option<String>,
    /// First packet, µs since the epoch.
    pub start_us: i64,
    /// Last packet, µs since the epoch.
    pub end_us: i64,
    /// Client address (the device side).
    pub src_ip: IpAddr,
    /// Client port.
    pub src_port: u16,
    /// Server address.
    pub dest_ip: IpAddr,
    /// Server port: the port judged against baselines.
    pub dest_port: u16,
    /// Transport, uppercase as EVE writes it (`TCP`, `UDP`).
    pub transport: String,
    /// Identified application protocol, lowercase EVE name; `unknown` when none.
    pub app_proto: String,
    /// The classifier's evidence labels.
    #[serde(default)]
    pub indicators: Vec<String>,
    /// TLS server name indication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// HTTP `Host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_host: Option<String>,
    /// QUIC server name indication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quic_sni: Option<String>,
    /// The flow's EVE `tls` object, copied verbatim into alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Value>,
    /// The flow's EVE `http` object, copied verbatim into alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Value>,
    /// Packets client → server.
    #[serde(default)]
    pub pkts_toserver: u64,
    /// Packets server → client.
    #[serde(default)]
    pub pkts_toclient: u64,
    /// Bytes client → server.
    #[serde(default)]
    pub bytes_toserver: u64,
    /// Bytes server → client.
    #[serde(default)]
    pub bytes_toclient: u64,
    /// The dataplane port registry's verdict (`Some(true)`: non-standard port for the protocol).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_mismatch: Option<bool>,
    /// The session was upgraded to TLS with STARTTLS.
    #[serde(default)]
    pub starttls: bool,
    /// The explicit proxy (HTTP `CONNECT`, SOCKS) the flow went through: `dest_ip`/`dest_port`
    /// are the proxy hop; once the tunnel was established the flow is judged on the target's
    /// port ([`FlowObservation::judged_port`]). EVE input: `portolan.proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyTarget>,
}

impl FlowObservation {
    /// Builds an observation from an EVE `flow` record (one JSON object), naming the field on error.
    pub fn from_eve_flow(record: &Value) -> Result<Self, ObservationError> {
        let obj = record
            .as_object()
            .ok_or_else(|| ObservationError::new("(record)", "not a JSON object"))?;
        if let Some(kind) = obj.get("event_type") {
            if kind.as_str() != Some("flow") {
                return Err(ObservationError::new(
                    "event_type",
                    format!("expected \"flow\", found {kind}"),
                ));
            }
        }
        let flow = match obj.get("flow") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(_) => return Err(ObservationError::new("flow", "not an object")),
        };
        let ts_field = |name: &str, v: Option<&Value>| -> Result<Option<i64>, ObservationError> {
            match v {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => parse_timestamp(s)
                    .map(Some)
                    .map_err(|e| ObservationError::new(name, e.to_string())),
                Some(other) => Err(ObservationError::new(
                    name,
                    format!("expected a timestamp string, found {other}"),
                )),
            }
        };
        let start = ts_field("flow.start", flow.and_then(|f| f.get("start")))?;
        let stamp = ts_field("timestamp", obj.get("timestamp"))?;
        let start_us = start
            .or(stamp)
            .ok_or_else(|| ObservationError::new("flow.start", "missing (and no `timestamp`)"))?;
        let end_us = ts_field("flow.end", flow.and_then(|f| f.get("end")))?
            .unwrap_or(start_us)
            .max(start_us);

        let transport = required_str(obj.get("proto"), "proto")?.to_ascii_uppercase();
        let app_proto = match obj.get("app_proto") {
            None | Some(Value::Null) => "unknown".to_string(),
            Some(Value::String(s)) if s.is_empty() || s == "failed" => "unknown".to_string(),
            Some(Value::String(s)) => s.to_ascii_lowercase(),
            Some(other) => {
                return Err(ObservationError::new(
                    "app_proto",
                    format!("expected a string, found {other}"),
                ))
            }
        };
        // Portolan's own fields live under `portolan`; records written before they moved there
        // (and hand-written ones) carry them at the top level.
        let own = match obj.get("portolan") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                return Err(ObservationError::new(
                    "portolan",
                    format!("expected an object, found {other}"),
                ))
            }
        };
        let own_field = |key: &str| own.and_then(|m| m.get(key)).or_else(|| obj.get(key));
        let own_path = |key: &str| match own {
            Some(m) if m.contains_key(key) => format!("portolan.{key}"),
            _ => key.to_string(),
        };
        let indicators = match own_field("indicators") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        ObservationError::new(
                            &format!("{}[{i}]", own_path("indicators")),
                            "not a string",
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => {
                return Err(ObservationError::new(
                    &own_path("indicators"),
                    "not an array",
                ))
            }
        };
        let tls = object_field(obj.get("tls"), "tls")?;
        let http = object_field(obj.get("http"), "http")?;
        let quic = object_field(obj.get("quic"), "quic")?;
        let name_in = |o: &Option<Value>, key: &str| -> Option<String> {
            o.as_ref()
                .and_then(|v| v.get(key))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let port_mismatch = match own_field("port_mismatch") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::Object(m)) => {
                Some(m.get("mismatch").and_then(Value::as_bool).unwrap_or(true))
            }
            Some(other) => {
                return Err(ObservationError::new(
                    &own_path("port_mismatch"),
                    format!("expected a bool or an object, found {other}"),
                ))
            }
        };
        let starttls = own_field("starttls")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || tls
                .as_ref()
                .and_then(|t| t.get("starttls"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
            || indicators
                .iter()
                .any(|i| i.eq_ignore_ascii_case("starttls"));
        let counter = |key: &str| -> Result<u64, ObservationError> {
            match flow.and_then(|f| f.get(key)) {
                None | Some(Value::Null) => Ok(0),
                Some(v) => v.as_u64().ok_or_else(|| {
                    ObservationError::new(&format!("flow.{key}"), "not a non-negative integer")
                }),
            }
        };
        Ok(FlowObservation {
            flow_id: match obj.get("flow_id") {
                None | Some(Value::Null) => 0,
                Some(v) => v
                    .as_u64()
                    .ok_or_else(|| ObservationError::new("flow_id", "not an unsigned integer"))?,
            },
            community_id: obj
                .get("community_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            start_us,
            end_us,
            src_ip: ip_field(obj.get("src_ip"), "src_ip")?,
            src_port: port_field(obj.get("src_port"), "src_port")?,
            dest_ip: ip_field(obj.get("dest_ip"), "dest_ip")?,
            dest_port: port_field(obj.get("dest_port"), "dest_port")?,
            transport,
            app_proto,
            indicators,
            sni: name_in(&tls, "sni"),
            http_host: name_in(&http, "hostname"),
            quic_sni: name_in(&quic, "sni"),
            tls,
            http,
            pkts_toserver: counter("pkts_toserver")?,
            pkts_toclient: counter("pkts_toclient")?,
            bytes_toserver: counter("bytes_toserver")?,
            bytes_toclient: counter("bytes_toclient")?,
            port_mismatch,
            starttls,
            proxy: match obj.get("portolan").and_then(|p| p.get("proxy")) {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    serde_json::from_value::<ProxyTarget>(v.clone())
                        .map_err(|e| ObservationError::new("portolan.proxy", e.to_string()))?,
                ),
            },
        })
    }

    /// The port the flow is judged on: the tunnel target's when an explicit proxy established
    /// one (the protocol inside runs to that port), else `dest_port`.
    pub fn judged_port(&self) -> u16 {
        match &self.proxy {
            Some(p) if p.established => p.port,
            _ => self.dest_port,
        }
    }

    /// How long the flow lasted, µs (never negative).
    pub fn duration_us(&self) -> i64 {
        self.end_us.saturating_sub(self.start_us).max(0)
    }

    /// The server name the client asked for, strongest evidence first: TLS SNI, QUIC SNI, HTTP Host
    /// (without a `:port` suffix), lowercased.
    pub fn server_name(&self) -> Option<(String, NameSource)> {
        let pick = |s: &Option<String>, src: NameSource| {
            s.as_deref()
                .map(normalize_host)
                .filter(|n| !n.is_empty())
                .map(|n| (n, src))
        };
        pick(&self.sni, NameSource::TlsSni)
            .or_else(|| pick(&self.quic_sni, NameSource::QuicSni))
            .or_else(|| pick(&self.http_host, NameSource::HttpHost))
    }

    /// The HTTP `User-Agent` the client sent (`http.http_user_agent`), if any.
    pub fn user_agent(&self) -> Option<&str> {
        self.http
            .as_ref()
            .and_then(|h| h.get("http_user_agent"))
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// True when the dataplane identified a protocol.
    pub fn is_classified(&self) -> bool {
        !(self.app_proto.is_empty() || self.app_proto == "unknown" || self.app_proto == "failed")
    }
}

/// Lowercases a host name and strips a trailing dot and any `:port` suffix (IPv6 literals in
/// brackets keep their colons).
pub fn normalize_host(host: &str) -> String {
    let h = host.trim();
    let h = if let Some(rest) = h.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if h.matches(':').count() == 1 {
        h.split(':').next().unwrap_or(h)
    } else {
        h
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// A DNS response seen on the wire: `name` resolved to `addresses` for `client_ip` at `ts_us`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsAnswer {
    /// When the answer was seen, µs since the epoch.
    pub ts_us: i64,
    /// The client that asked.
    pub client_ip: IpAddr,
    /// The queried name (lowercase, no trailing dot); CNAME chains are credited to it.
    pub name: String,
    /// A and AAAA addresses in the answer.
    pub addresses: Vec<IpAddr>,
    /// Smallest TTL among the address records, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_s: Option<u32>,
}

impl DnsAnswer {
    /// Builds an answer from an EVE `dns` record (Suricata format 2 `answer` records with
    /// `answers[]` or `grouped`, and format 3 with `queries[]`/`answers[]`). `Ok(None)` for queries
    /// and answers without A/AAAA records.
    pub fn from_eve_dns(record: &Value) -> Result<Option<Self>, ObservationError> {
        let obj = record
            .as_object()
            .ok_or_else(|| ObservationError::new("(record)", "not a JSON object"))?;
        let dns = obj
            .get("dns")
            .and_then(Value::as_object)
            .ok_or_else(|| ObservationError::new("dns", "missing or not an object"))?;
        if dns.get("type").and_then(Value::as_str) == Some("query") {
            return Ok(None);
        }
        let ts_us = parse_timestamp(required_str(obj.get("timestamp"), "timestamp")?)
            .map_err(|e| ObservationError::new("timestamp", e.to_string()))?;
        let src_ip = ip_field(obj.get("src_ip"), "src_ip")?;
        let dest_ip = ip_field(obj.get("dest_ip"), "dest_ip")?;
        let src_port = obj.get("src_port").and_then(Value::as_u64);
        let client_ip = if src_port == Some(53) {
            dest_ip
        } else {
            src_ip
        };
        let name = dns
            .get("rrname")
            .and_then(Value::as_str)
            .or_else(|| {
                dns.get("queries")
                    .and_then(Value::as_array)
                    .and_then(|q| q.first())
                    .and_then(|q| q.get("rrname"))
                    .and_then(Value::as_str)
            })
            .map(normalize_host);
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        let mut addresses = Vec::new();
        let mut ttl: Option<u32> = None;
        if let Some(answers) = dns.get("answers").and_then(Value::as_array) {
            for a in answers {
                let rrtype = a.get("rrtype").and_then(Value::as_str).unwrap_or("");
                if rrtype != "A" && rrtype != "AAAA" {
                    continue;
                }
                if let Some(ip) = a
                    .get("rdata")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<IpAddr>().ok())
                {
                    addresses.push(ip);
                    if let Some(t) = a.get("ttl").and_then(Value::as_u64) {
                        let t = u32::try_from(t).unwrap_or(u32::MAX);
                        ttl = Some(ttl.map_or(t, |cur| cur.min(t)));
                    }
                }
            }
        }
        if let Some(grouped) = dns.get("grouped").and_then(Value::as_object) {
            for key in ["A", "AAAA"] {
                for v in grouped
                    .get(key)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(ip) = v.as_str().and_then(|s| s.parse::<IpAddr>().ok()) {
                        if !addresses.contains(&ip) {
                            addresses.push(ip);
                        }
                    }
                }
            }
        }
        if addresses.is_empty() {
            return Ok(None);
        }
        Ok(Some(DnsAnswer {
            ts_us,
            client_ip,
            name,
            addresses,
            ttl_s: ttl,
        }))
    }
}

/// One EVE line sorted by what the control plane does with it.
#[derive(Debug, Clone, PartialEq)]
pub enum EveInput {
    /// An `event_type: flow` record.
    Flow(Box<FlowObservation>),
    /// An `event_type: dns` record with addresses.
    Dns(DnsAnswer),
    /// Anything else (alerts, stats, DNS queries): ignored.
    Ignored,
}

impl EveInput {
    /// Sorts one parsed EVE record.
    pub fn from_eve(record: &Value) -> Result<Self, ObservationError> {
        match record.get("event_type").and_then(Value::as_str) {
            Some("flow") => Ok(EveInput::Flow(Box::new(FlowObservation::from_eve_flow(
                record,
            )?))),
            Some("dns") => {
                Ok(DnsAnswer::from_eve_dns(record)?.map_or(EveInput::Ignored, EveInput::Dns))
            }
            _ => Ok(EveInput::Ignored),
        }
    }
}

fn required_str<'a>(v: Option<&'a Value>, field: &str) -> Result<&'a str, ObservationError> {
    match v {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(ObservationError::new(field, "missing")),
        Some(other) => Err(ObservationError::new(
            field,
            format!("expected a string, found {other}"),
        )),
    }
}

fn ip_field(v: Option<&Value>, field: &str) -> Result<IpAddr, ObservationError> {
    let s = required_str(v, field)?;
    s.parse()
        .map_err(|_| ObservationError::new(field, format!("not an IP address: {s:?}")))
}

fn port_field(v: Option<&Value>, field: &str) -> Result<u16, ObservationError> {
    match v {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| ObservationError::new(field, format!("not a port number: {v}"))),
    }
}

fn object_field(v: Option<&Value>, field: &str) -> Result<Option<Value>, ObservationError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(o @ Value::Object(_)) => Ok(Some(o.clone())),
        Some(_) => Err(ObservationError::new(field, "not an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flow_record_maps_every_field() {
        let rec = json!({
            "timestamp": "2024-05-01T10:00:05.000000+0000", "flow_id": 42, "event_type": "flow",
            "src_ip": "10.1.0.20", "src_port": 51000, "dest_ip": "203.0.113.9", "dest_port": 8443,
            "proto": "TCP", "app_proto": "tls", "community_id": "1:abc=",
            "indicators": ["tls.client_hello"], "port_mismatch": true,
            "tls": {"sni": "Mail.Example.com", "version": "TLS 1.3"},
            "flow": {"pkts_toserver": 5, "pkts_toclient": 4, "bytes_toserver": 900,
                     "bytes_toclient": 3000, "start": "2024-05-01T10:00:00.000000+0000",
                     "end": "2024-05-01T10:00:05.000000+0000"}
        });
        let obs = FlowObservation::from_eve_flow(&rec).unwrap();
        assert_eq!(obs.flow_id, 42);
        assert_eq!(obs.dest_port, 8443);
        assert_eq!(obs.transport, "TCP");
        assert_eq!(obs.port_mismatch, Some(true));
        assert_eq!(obs.duration_us(), 5_000_000);
        assert_eq!(
            obs.server_name(),
            Some(("mail.example.com".to_string(), NameSource::TlsSni))
        );
        assert!(!obs.starttls);
    }

    #[test]
    fn starttls_indicator_from_the_dataplane() {
        let rec = json!({"timestamp": "2024-05-01T10:00:00.000000+0000", "flow_id": 7,
            "event_type": "flow", "src_ip": "10.1.0.20", "src_port": 51000, "dest_ip": "203.0.113.9",
            "dest_port": 587, "proto": "TCP", "app_proto": "smtp",
            "portolan": {"port_mismatch": false,
                         "indicators": ["smtp.banner", "starttls", "tls.client_hello"]},
            "tls": {"sni": "smtp.example.com", "version": "TLS 1.3"}});
        let obs = FlowObservation::from_eve_flow(&rec).unwrap();
        assert!(obs.starttls);
        assert_eq!(obs.app_proto, "smtp");
        assert_eq!(obs.port_mismatch, Some(false));
        assert_eq!(obs.end_us, obs.start_us, "no flow.end: zero-length");
    }

    #[test]
    fn flow_record_errors_name_the_field() {
        let rec = json!({"event_type": "flow", "src_ip": "nope", "dest_ip": "10.0.0.1",
                         "proto": "TCP", "timestamp": "2024-05-01T10:00:00Z"});
        let err = FlowObservation::from_eve_flow(&rec).unwrap_err();
        assert_eq!(err.field, "src_ip");
        let rec = json!({"event_type": "flow", "src_ip": "10.0.0.2", "dest_ip": "10.0.0.1",
                         "proto": "TCP", "flow": {"start": "yesterday"}});
        assert_eq!(
            FlowObservation::from_eve_flow(&rec).unwrap_err().field,
            "flow.start"
        );
        let rec = json!({"event_type": "flow", "src_ip": "10.0.0.2", "dest_ip": "10.0.0.1",
                         "proto": "TCP", "timestamp": "2024-05-01T10:00:00Z",
                         "portolan": {"port_mismatch": "yes"}});
        assert_eq!(
            FlowObservation::from_eve_flow(&rec).unwrap_err().field,
            "portolan.port_mismatch"
        );
    }

    #[test]
    fn dns_answer_from_both_eve_formats() {
        let v2 = json!({"timestamp": "2024-05-01T09:59:59Z", "event_type": "dns",
            "src_ip": "10.1.0.1", "src_port": 53, "dest_ip": "10.1.0.20", "dest_port": 5353,
            "dns": {"type": "answer", "rrname": "beacon.example.net", "answers": [
                {"rrname": "beacon.example.net", "rrtype": "CNAME", "rdata": "cdn.example.org"},
                {"rrname": "cdn.example.org", "rrtype": "A", "rdata": "198.51.100.7", "ttl": 60}]}});
        let a = DnsAnswer::from_eve_dns(&v2).unwrap().unwrap();
        assert_eq!(a.client_ip, "10.1.0.20".parse::<IpAddr>().unwrap());
        assert_eq!(a.name, "beacon.example.net");
        assert_eq!(a.addresses, vec!["198.51.100.7".parse::<IpAddr>().unwrap()]);
        let v3 = json!({"timestamp": "2024-05-01T09:59:59Z", "event_type": "dns",
            "src_ip": "10.1.0.20", "src_port": 5353, "dest_ip": "10.1.0.1", "dest_port": 53,
            "dns": {"queries": [{"rrname": "x.example.net"}],
                    "grouped": {"AAAA": ["2001:db8::1"]}}});
        let b = DnsAnswer::from_eve_dns(&v3).unwrap().unwrap();
        assert_eq!(b.client_ip, "10.1.0.20".parse::<IpAddr>().unwrap());
        assert_eq!(b.addresses.len(), 1);
    }

    #[test]
    fn host_normalization() {
        assert_eq!(normalize_host("Example.COM:8080"), "example.com");
        assert_eq!(normalize_host("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(normalize_host("a.b."), "a.b");
    }
}
