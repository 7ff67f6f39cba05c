//! Names a flow carries: where its server name came from, and the classifier's indicator
//! labels that other crates act on.
//!
//! Owns: [`NameSource`] and the indicator names shared across crates ([`indicator`]).
//! Must not: normalise or judge names (see [`crate::observation::normalize_host`]).

use serde::{Deserialize, Serialize};

/// Which field named the server a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameSource {
    /// TLS ClientHello SNI (also DTLS and STARTTLS-upgraded sessions).
    TlsSni,
    /// SNI of the ClientHello inside a QUIC Initial.
    QuicSni,
    /// HTTP `Host` header.
    HttpHost,
}

impl NameSource {
    /// `tls_sni`, `quic_sni` or `http_host`.
    pub fn as_str(self) -> &'static str {
        match self {
            NameSource::TlsSni => "tls_sni",
            NameSource::QuicSni => "quic_sni",
            NameSource::HttpHost => "http_host",
        }
    }

    /// The EVE object and key that carry the name (`tls.sni`, `quic.sni`, `http.hostname`).
    pub fn eve_field(self) -> (&'static str, &'static str) {
        match self {
            NameSource::TlsSni => ("tls", "sni"),
            NameSource::QuicSni => ("quic", "sni"),
            NameSource::HttpHost => ("http", "hostname"),
        }
    }
}

/// Indicator labels (the evidence in a flow record's `portolan.indicators`) that more than one
/// crate reads.
pub mod indicator {
    /// Two parsers confirmed different protocols on the same bytes.
    pub const CONFLICT: &str = "classify.conflict";
    /// A TLS handshake follows an in-band upgrade (STARTTLS & co).
    pub const STARTTLS: &str = "starttls";
    /// A parser claimed the roles the other way round on a flow whose start (SYN or SYN-ACK)
    /// was seen: transport evidence outranks payload claims, the roles stay.
    pub const ROLES_CONFLICT: &str = "roles.conflict";
    /// A TCP segment overlapped bytes already seen with different content.
    pub const OVERLAP_MISMATCH: &str = "tcp.overlap_mismatch";
    /// An explicit proxy (HTTP `CONNECT`, SOCKS) opened a tunnel; the flow's protocol is the
    /// tunnel's content, judged against the target's port.
    pub const PROXY_TUNNEL: &str = "proxy.tunnel";
    /// The proxy refused the `CONNECT` (an HTTP status other than 2xx, a SOCKS failure code).
    pub const PROXY_REFUSED: &str = "proxy.refused";
    /// A proxy exchange that started well went wrong (a malformed or oversized request or
    /// reply): the flow keeps the proxy protocol's label, judged on its own port.
    pub const PROXY_MALFORMED: &str = "proxy.malformed";
}
