//! The application-layer part of a flow record, in EVE field names.
//!
//! Owns: turning a [`FlowClassification`] (plus the port registry verdict) into the fields
//! flattened into `portolan_flow::eve::FlowRecord.app`: `app_proto`, `indicators`,
//! `tls{sni, version, client_alpns, ja3{hash, string}, ja4}`,
//! `http{hostname, url, http_method, http_user_agent, status}`,
//! `quic{version, sni, client_alpns}`, `ssh{client_software, server_software}`,
//! `<app_proto>{name}` for a single reported name, and `port_mismatch`.
//! Must not: classify, or emit a field the flow has no value for.

use portolan_packet::Transport;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::app_proto::AppProto;
use crate::engine::FlowClassification;
use crate::ports::PortRegistry;

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
    /// ALPN of the Initial's ClientHello.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub client_alpns: Vec<String>,
}

/// `ssh` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SshRecord {
    /// Client identification string (after `SSH-2.0-`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_software: Option<String>,
    /// Server identification string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_software: Option<String>,
}

/// The application-layer fields of one flow record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppRecord {
    /// EVE `app_proto` (`unknown` when undecided or conflicting).
    pub app_proto: AppProto,
    /// Evidence names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
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
    /// A single name another parser reported, written as `{"<app_proto>": {"name": ...}}`.
    #[serde(skip)]
    pub name: Option<String>,
    /// Known protocol on a port not registered for it; absent for `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_mismatch: Option<bool>,
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
                client_alpns: q.client_alpns.clone(),
            }),
            ssh: flow.ssh().map(|s| SshRecord {
                client_software: s.client_software.clone(),
                server_software: s.server_software.clone(),
            }),
            name: flow.name().map(str::to_string),
            port_mismatch: (app_proto != AppProto::Unknown)
                .then(|| ports.port_mismatch(app_proto, transport, server_port)),
        }
    }

    /// The fields as a JSON object, to flatten into the flow record.
    pub fn to_json_map(&self) -> Map<String, Value> {
        let mut map = match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        if let Some(name) = &self.name {
            let key = self.app_proto.as_str().to_string();
            if !map.contains_key(&key) {
                let mut inner = Map::new();
                inner.insert("name".to_string(), Value::String(name.clone()));
                map.insert(key, Value::Object(inner));
            }
        }
        map
    }
}
