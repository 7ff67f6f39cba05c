//! The contract between the engine and each protocol's confirming parser.
//!
//! A parser is a pure function over the bytes of one packet (or of the first bytes of one flow
//! direction): no I/O, no allocation beyond the metadata it returns, no panics on any input, and
//! a cost bounded by the input length.

pub use portolan_model::Side;
use portolan_packet::Transport;

/// What a parser is told about the bytes it probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeContext {
    /// TCP or UDP.
    pub transport: Transport,
    /// Who sent the bytes: the flow's client or server (the roles we currently take for it).
    pub sender: Side,
    /// Client port of the flow.
    pub client_port: u16,
    /// Server port of the flow.
    pub server_port: u16,
    /// Index (within this direction: 0 for the first payload-carrying packet, 1 for the
    /// second, ...) of the packet whose payload starts the bytes probed; for bytes the engine
    /// joined over several segments, the index of the first of them.
    pub packet_index: u32,
    /// True when the packet was sent to a multicast group (IPv4 224.0.0.0/4, IPv6 ff00::/8):
    /// a fact of the wire like the transport, never a port. Unicast protocols (DNS) use it to
    /// refuse multicast traffic; mDNS and LLMNR (RFC 6762, RFC 4795) are multicast by design.
    pub dst_multicast: bool,
}

impl ProbeContext {
    /// The first payload packet of the client of a unicast `transport` flow from
    /// `client_port` to `server_port`; the `sent_by`, `at_packet` and `to_multicast` builders
    /// change one fact each.
    pub const fn new(transport: Transport, client_port: u16, server_port: u16) -> ProbeContext {
        ProbeContext {
            transport,
            sender: Side::Client,
            client_port,
            server_port,
            packet_index: 0,
            dst_multicast: false,
        }
    }

    /// The same context for bytes `sender` sent.
    pub const fn sent_by(mut self, sender: Side) -> ProbeContext {
        self.sender = sender;
        self
    }

    /// The same context for bytes starting at this direction's packet `packet_index`.
    pub const fn at_packet(mut self, packet_index: u32) -> ProbeContext {
        self.packet_index = packet_index;
        self
    }

    /// The same context for a packet sent to a multicast group.
    pub const fn to_multicast(mut self) -> ProbeContext {
        self.dst_multicast = true;
        self
    }
}

/// A parser's answer.
// Returned by value once per parser call; boxing `Meta` would allocate on every match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// The bytes are this protocol; `indicator` names the evidence (e.g. `ssh.banner`), `meta`
    /// carries what the parser extracted.
    Match {
        /// Evidence name for the flow record's `indicators`, e.g. `tls.client_hello`.
        indicator: &'static str,
        /// Extracted metadata, if any.
        meta: Meta,
    },
    /// Like [`Probe::Match`], and the bytes also prove which role sent them: they carry
    /// something the protocol's specification lets only that role send (e.g. `ext-info-c` in
    /// an SSH KEXINIT, RFC 8308 section 2.1). The engine corrects the flow's roles with it
    /// (at most once per flow; see `docs/CLASSIFICATION.md`, "Role correction").
    MatchFrom {
        /// Evidence name for the flow record's `indicators`.
        indicator: &'static str,
        /// Extracted metadata, if any (attributed with the roles as they were when probed).
        meta: Meta,
        /// The role that sent the bytes.
        sender: Side,
    },
    /// The bytes start like this protocol but are cut short (e.g. a ClientHello split over
    /// segments): try again with more bytes of the same direction.
    NeedMore,
    /// Not this protocol.
    NoMatch,
}

impl Probe {
    /// True for [`Probe::Match`] and [`Probe::MatchFrom`]: the bytes confirm the protocol.
    pub fn is_match(&self) -> bool {
        matches!(self, Probe::Match { .. } | Probe::MatchFrom { .. })
    }
}

/// TLS metadata (ClientHello and ServerHello).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsMeta {
    /// Server Name Indication from the ClientHello.
    pub sni: Option<String>,
    /// Negotiated or offered version as EVE prints it, e.g. `TLS 1.3`.
    pub version: Option<String>,
    /// ALPN protocols offered by the client.
    pub client_alpns: Vec<String>,
    /// Versions from the `supported_versions` extension, as EVE names.
    pub supported_versions: Vec<String>,
    /// JA3 hash (MD5 hex) of the ClientHello.
    pub ja3: Option<String>,
    /// JA3 string (before hashing).
    pub ja3_string: Option<String>,
    /// JA4 fingerprint of the ClientHello.
    pub ja4: Option<String>,
    /// Cipher suite chosen by the server (IANA number).
    pub server_cipher: Option<u16>,
    /// Version chosen by the server.
    pub server_version: Option<String>,
}

/// HTTP/1.x metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpMeta {
    /// Host header.
    pub hostname: Option<String>,
    /// Request target.
    pub url: Option<String>,
    /// Request method.
    pub http_method: Option<String>,
    /// User-Agent header.
    pub http_user_agent: Option<String>,
    /// Response status code.
    pub status: Option<u16>,
    /// The request was `CONNECT`.
    pub connect: bool,
    /// The request asked for a WebSocket upgrade.
    pub websocket_upgrade: bool,
}

/// QUIC metadata from the long header and the decrypted client Initial.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuicMeta {
    /// Version as a string, e.g. `v1`, `v2`, `draft-29`, or hex for others.
    pub version: Option<String>,
    /// SNI from the ClientHello inside the Initial.
    pub sni: Option<String>,
    /// ALPN offered in the Initial's ClientHello.
    pub client_alpns: Vec<String>,
}

/// SSH banner software strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshMeta {
    /// The client's identification string after `SSH-2.0-`.
    pub client_software: Option<String>,
    /// The server's identification string after `SSH-2.0-`.
    pub server_software: Option<String>,
}

/// Metadata a parser extracted; `None` when the protocol carries nothing Portolan reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Meta {
    /// Nothing beyond the protocol itself.
    #[default]
    None,
    /// TLS handshake fields.
    Tls(TlsMeta),
    /// HTTP/1.x request or response fields.
    Http(HttpMeta),
    /// QUIC Initial fields.
    Quic(QuicMeta),
    /// SSH banners.
    Ssh(SshMeta),
    /// A free-form host name or similar single string (e.g. DNS query name, SIP URI host).
    Name(String),
}
