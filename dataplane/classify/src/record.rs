//! The application-layer part of a flow record, in EVE field names.
//!
//! Owns: turning a [`FlowClassification`] (plus the port registry verdict) into the fields
//! flattened into `portolan_flow::eve::FlowRecord.app`. Every field Suricata's EVE schema
//! (`etc/schema.json`, vendored in `tests/fixtures/schemas/suricata/`) defines is written in
//! Suricata's shape and type:
//!
//! | what | EVE field |
//! | --- | --- |
//! | TLS | `tls{sni, version, client_alpns, ja3{hash, string}, ja4}` |
//! | HTTP/1.x | `http{hostname, url, http_method, http_user_agent, status}` |
//! | QUIC | `quic{version, sni, extensions[{name: "alpn", type: 16, values}]}` (Suricata's list of hello extensions) |
//! | SSH | `ssh{client{software_version}, server{software_version}}` |
//! | DNS query name | `dns{version: 3, queries[{rrname}]}` |
//! | mDNS / LLMNR query name | `mdns{queries[{rrname}]}`, `llmnr{queries[{rrname}]}` |
//! | SMTP HELO/EHLO domain | `smtp{helo}` |
//! | DHCP host name | `dhcp{hostname}` |
//! | RDP cookie | `rdp{cookie}` |
//!
//! Everything that is Portolan's own lives under the one key [`PORTOLAN_KEY`] (`portolan`):
//! `portolan.indicators` (evidence names), `portolan.port_mismatch` (the registry's verdict;
//! absent for `unknown`; judged on the tunnel target's port behind an explicit proxy),
//! `portolan.proxy{kind, host, port, established}` (the target a client asked an HTTP `CONNECT`
//! or SOCKS proxy for; `dest_ip`/`dest_port` are the proxy hop), and `portolan.<app_proto>.name` for a name a parser reported that
//! Suricata has no field for (SIP and RTSP request hosts, XMPP stream `to`, SOCKS target host).
//! Must not: classify, or emit a field the flow has no value for.

use portolan_packet::Transport;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::app_proto::AppProto;
use crate::engine::FlowClassification;
use crate::ports::PortRegistry;
use portolan_model::ProxyTarget;

/// JA3 as Suricata writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ja3Record {
    /// MD5 of `string`.
    pub hash: String,
    /// The JA3 string.
    pub string: String,
}

/// `tls` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TlsRecord {
    /// Server Name Indication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Negotiated version (the client's highest offer when no ServerHello was seen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// ALPN protocols the client offered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub client_alpns: Vec<String>,
    /// JA3 hash and string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3: Option<Ja3Record>,
    /// JA4 fingerprint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja4: Option<String>,
}

/// `http` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HttpRecord {
    /// Host header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Request target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Request method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_method: Option<String>,
    /// User-Agent header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_user_agent: Option<String>,
    /// Response status code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// `quic` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QuicRecord {
    /// Version (`v1`, `v2`, `draft-29`, `Q046`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// SNI of the Initial's ClientHello.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Hello extensions as Suricata lists them; Portolan reports the ALPN one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<QuicExtension>,
}

/// One entry of `quic.extensions`, as Suricata's QUIC logger writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuicExtension {
    /// Extension name (`alpn`).
    pub name: String,
    /// Extension type code (16 for ALPN).
    #[serde(rename = "type")]
    pub ext_type: u16,
    /// The extension's values (the offered protocol names for ALPN).
    pub values: Vec<String>,
}

/// One side of the `ssh` object (`ssh.client`, `ssh.server`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SshEndpoint {
    /// The software part of the identification string (after `SSH-2.0-`).
    pub software_version: String,
}

/// `ssh` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SshRecord {
    /// The client's identification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<SshEndpoint>,
    /// The server's identification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<SshEndpoint>,
}

/// The key under which every Portolan-specific field of an EVE record lives.
pub const PORTOLAN_KEY: &str = "portolan";

/// The application-layer fields of one flow record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppRecord {
    /// EVE `app_proto` (`unknown` when undecided or conflicting).
    pub app_proto: AppProto,
    /// Evidence names (written as `portolan.indicators`).
    #[serde(skip)]
    pub indicators: Vec<String>,
    /// TLS fields (also for DTLS and STARTTLS flows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsRecord>,
    /// HTTP/1.x fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpRecord>,
    /// QUIC fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quic: Option<QuicRecord>,
    /// SSH fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshRecord>,
    /// A single name another parser reported, written in Suricata's field for it where there
    /// is one (see the module table), else as `portolan.<app_proto>.name`.
    #[serde(skip)]
    pub name: Option<String>,
    /// Known protocol on a port not registered for it; absent for `unknown` (written as
    /// `portolan.port_mismatch`). Judged on the tunnel target's port when an explicit proxy
    /// established one.
    #[serde(skip)]
    pub port_mismatch: Option<bool>,
    /// The explicit proxy's target (written as `portolan.proxy`): the record's `dest_ip` and
    /// `dest_port` are the proxy hop.
    #[serde(skip)]
    pub proxy: Option<ProxyTarget>,
}

impl AppRecord {
    /// Builds the record of a flow whose server port is `server_port`.
    pub fn from_flow(
        flow: &FlowClassification,
        ports: &PortRegistry,
        transport: Transport,
        server_port: u16,
    ) -> AppRecord {
        let app_proto = flow.app_proto();
        AppRecord {
            app_proto,
            indicators: flow.indicators().iter().map(|s| s.to_string()).collect(),
            tls: flow.tls().map(|t| TlsRecord {
                sni: t.sni.clone(),
                version: t.version.clone(),
                client_alpns: t.client_alpns.clone(),
                ja3: match (&t.ja3, &t.ja3_string) {
                    (Some(hash), Some(string)) => Some(Ja3Record {
                        hash: hash.clone(),
                        string: string.clone(),
                    }),
                    _ => None,
                },
                ja4: t.ja4.clone(),
            }),
            http: flow.http().map(|h| HttpRecord {
                hostname: h.hostname.clone(),
                url: h.url.clone(),
                http_method: h.http_method.clone(),
                http_user_agent: h.http_user_agent.clone(),
                status: h.status,
            }),
            quic: flow.quic().map(|q| QuicRecord {
                version: q.version.clone(),
                sni: q.sni.clone(),
                extensions: if q.client_alpns.is_empty() {
                    Vec::new()
                } else {
                    vec![QuicExtension {
                        name: "alpn".to_string(),
                        ext_type: 16,
                        values: q.client_alpns.clone(),
                    }]
                },
            }),
            ssh: flow.ssh().map(|s| SshRecord {
                client: s.client_software.clone().map(|v| SshEndpoint {
                    software_version: v,
                }),
                server: s.server_software.clone().map(|v| SshEndpoint {
                    software_version: v,
                }),
            }),
            name: flow.name().map(str::to_string),
            port_mismatch: (app_proto != AppProto::Unknown)
                .then(|| ports.port_mismatch(app_proto, transport, flow.judged_port(server_port))),
            proxy: flow.proxy().cloned(),
        }
    }

    /// The fields as a JSON object, to flatten into the flow record.
    pub fn to_json_map(&self) -> Map<String, Value> {
        let mut map = match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let mut own = Map::new();
        if !self.indicators.is_empty() {
            own.insert("indicators".to_string(), json!(self.indicators));
        }
        if let Some(m) = self.port_mismatch {
            own.insert("port_mismatch".to_string(), Value::Bool(m));
        }
        if let Some(p) = &self.proxy {
            own.insert("proxy".to_string(), json!(p));
        }
        if let Some(name) = &self.name {
            let key = self.app_proto.as_str().to_string();
            match suricata_name_field(self.app_proto, name) {
                Some(v) if !map.contains_key(&key) => {
                    map.insert(key, v);
                }
                Some(_) => {}
                None => {
                    own.insert(key, json!({ "name": name }));
                }
            }
        }
        if !own.is_empty() {
            map.insert(PORTOLAN_KEY.to_string(), Value::Object(own));
        }
        map
    }
}

/// The EVE object Suricata writes for a parser's single name, where Suricata has a field for it.
fn suricata_name_field(proto: AppProto, name: &str) -> Option<Value> {
    Some(match proto {
        AppProto::Dns => json!({ "version": 3, "queries": [{ "rrname": name }] }),
        AppProto::Mdns | AppProto::Llmnr => json!({ "queries": [{ "rrname": name }] }),
        AppProto::Smtp => json!({ "helo": name }),
        AppProto::Dhcp => json!({ "hostname": name }),
        AppProto::Rdp => json!({ "cookie": name }),
        _ => return None,
    })
}
