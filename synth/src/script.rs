//! Conversation scripts: what each side of a flow says, in which order, with which pauses.
//!
//! Owns: turning a planned flow (protocol, host, profile) into a list of turns (TCP) or steps
//! (UDP) whose payloads are real protocol messages, and the lazy payload stream that large
//! bodies are read from. Must not: know about segments, ACKs, sequence numbers or headers (that
//! is `tcp`/`udp`), or hold large bodies in memory — bulk data is a length, not a buffer.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

use crate::catalogue::{AppProto, Endpoint, Profile, Provider};
use crate::payloads::{self, BodyKind, HttpRequest};
use crate::quic;
use crate::rng::{BytePool, SynthRng};
use crate::time;
use crate::tls::{self, ClientHelloSpec, CT_ALERT, CT_APPDATA, CT_HANDSHAKE};

/// A piece of a payload stream.
#[derive(Debug, Clone)]
pub enum Chunk {
    /// Literal bytes.
    Bytes(Vec<u8>),
    /// TLS records of content type `ct` with `body_total` random body bytes, at most `max_body`
    /// per record (each record adds a 5-byte header).
    Records {
        /// Record content type.
        ct: u8,
        /// Body bytes over all records.
        body_total: usize,
        /// Largest record body.
        max_body: usize,
    },
    /// Random bytes (ciphertext, compressed or binary content).
    Random(usize),
    /// Random bytes without 0xFF, as in a JPEG entropy-coded scan (no stray markers).
    Entropy(usize),
}

impl Chunk {
    /// Bytes this chunk puts on the wire.
    pub fn wire_len(&self) -> usize {
        match self {
            Chunk::Bytes(b) => b.len(),
            Chunk::Records {
                body_total,
                max_body,
                ..
            } => {
                let m = (*max_body).max(1);
                body_total + 5 * body_total.div_ceil(m)
            }
            Chunk::Random(n) | Chunk::Entropy(n) => *n,
        }
    }
}

/// Reads a list of chunks sequentially, generating record headers and random bytes on demand.
#[derive(Debug, Default)]
pub struct PayloadReader {
    chunks: VecDeque<Chunk>,
    /// Offset into the front `Bytes` chunk, or body bytes already emitted of the front
    /// `Records`/`Random` chunk.
    off: usize,
    /// Body bytes left in the current record.
    rec_left: usize,
    hdr: [u8; 5],
    /// Next header byte to emit; 5 when no header is pending.
    hdr_pos: usize,
    pool_pos: usize,
    remaining: usize,
}

impl PayloadReader {
    /// A reader over `chunks`; random bytes start at `pool_pos` in the byte pool.
    pub fn new(chunks: Vec<Chunk>, pool_pos: usize) -> PayloadReader {
        let remaining = chunks.iter().map(Chunk::wire_len).sum();
        PayloadReader {
            chunks: chunks.into(),
            off: 0,
            rec_left: 0,
            hdr: [0; 5],
            hdr_pos: 5,
            pool_pos,
            remaining,
        }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Appends the next `n` bytes (fewer at the end of the stream) to `out`.
    pub fn read(&mut self, mut n: usize, pool: &BytePool, out: &mut Vec<u8>) {
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                return;
            };
            let took = match front {
                Chunk::Bytes(b) => {
                    let rest = b.get(self.off..).unwrap_or(&[]);
                    let take = rest.len().min(n);
                    out.extend_from_slice(&rest[..take]);
                    self.off += take;
                    (take, self.off >= b.len())
                }
                Chunk::Random(len) | Chunk::Entropy(len) => {
                    let take = (len - self.off.min(*len)).min(n);
                    let at = out.len();
                    pool.read(self.pool_pos, take, out);
                    if matches!(front, Chunk::Entropy(_)) {
                        for b in &mut out[at..] {
                            if *b == 0xff {
                                *b = 0xfe;
                            }
                        }
                    }
                    self.pool_pos = self.pool_pos.wrapping_add(take);
                    self.off += take;
                    (take, self.off >= *len)
                }
                Chunk::Records {
                    ct,
                    body_total,
                    max_body,
                } => {
                    let (ct, body_total, max_body) = (*ct, *body_total, (*max_body).max(1));
                    if self.hdr_pos >= 5 && self.rec_left == 0 {
                        // Start the next record.
                        let size = (body_total - self.off.min(body_total)).min(max_body);
                        self.hdr = [ct, 3, 3, (size >> 8) as u8, size as u8];
                        self.hdr_pos = 0;
                        self.rec_left = size;
                    }
                    let mut take = 0;
                    while self.hdr_pos < 5 && take < n {
                        out.push(self.hdr[self.hdr_pos]);
                        self.hdr_pos += 1;
                        take += 1;
                    }
                    let body = self.rec_left.min(n - take);
                    pool.read(self.pool_pos, body, out);
                    self.pool_pos = self.pool_pos.wrapping_add(body);
                    self.rec_left -= body;
                    self.off += body;
                    take += body;
                    (
                        take,
                        self.off >= body_total && self.rec_left == 0 && self.hdr_pos >= 5,
                    )
                }
            };
            let (take, done) = took;
            n -= take;
            self.remaining = self.remaining.saturating_sub(take);
            if done {
                self.chunks.pop_front();
                self.off = 0;
                self.rec_left = 0;
                self.hdr_pos = 5;
            } else if take == 0 {
                // Cannot happen for well-formed chunks; never spin.
                self.chunks.pop_front();
                self.off = 0;
            }
        }
    }
}

/// One application write (or a burst of writes) by one side of a TCP connection.
#[derive(Debug)]
pub struct Turn {
    /// Sent by the device.
    pub from_client: bool,
    /// Pause before the turn starts (server turns answering a client turn add the RTT).
    pub think_us: u64,
    /// The bytes.
    pub chunks: Vec<Chunk>,
}

/// How a TCP connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// Client FIN, server FIN, client ACK.
    ClientFin,
    /// Server FIN first.
    ServerFin,
    /// Client reset.
    Reset,
    /// Still open when the capture ends.
    Open,
}

/// A TCP conversation.
#[derive(Debug)]
pub struct TcpScript {
    /// Turns in order.
    pub turns: VecDeque<Turn>,
    /// Teardown.
    pub close: Close,
}

/// One step of a UDP conversation.
#[derive(Debug)]
pub enum UdpStep {
    /// A single datagram.
    Datagram {
        /// Sent by the device.
        from_client: bool,
        /// Pause before it (server datagrams answering the client add the RTT).
        think_us: u64,
        /// UDP payload.
        payload: Vec<u8>,
    },
    /// QUIC 1-RTT data: `total` bytes in short-header packets from the sender, acknowledged by
    /// the receiver.
    QuicData {
        /// Sent by the device.
        from_client: bool,
        /// Pause before it.
        think_us: u64,
        /// Bytes of short-header packets.
        total: usize,
    },
}

/// A UDP conversation.
#[derive(Debug)]
pub struct UdpScript {
    /// Steps in order.
    pub steps: VecDeque<UdpStep>,
    /// QUIC connection IDs (client's, server's) for short headers.
    pub quic_cids: Option<([u8; 8], [u8; 8])>,
}

/// A flow's conversation.
#[derive(Debug)]
pub enum FlowScript {
    /// Over TCP.
    Tcp(TcpScript),
    /// Over UDP.
    Udp(UdpScript),
}

/// Everything a script builder needs to know about one planned flow.
pub struct FlowParams<'a> {
    /// Protocol.
    pub proto: AppProto,
    /// SNI / Host / question name.
    pub host: &'a str,
    /// Endpoint (None for DNS).
    pub endpoint: Option<&'a Endpoint>,
    /// Size/timing profile.
    pub profile: &'a Profile,
    /// Provider of the server (certificate issuer).
    pub provider: Option<&'a Provider>,
    /// User-Agent / client software token.
    pub user_agent: &'a str,
    /// App product token with version, e.g. `OpsTerminal_3.2` (SSH client banner).
    pub app_token: &'a str,
    /// Flow start (µs since epoch).
    pub start_us: u64,
    /// Server port.
    pub server_port: u16,
    /// Device address.
    pub client_ip: IpAddr,
    /// Device-specific tag (MQTT client id, topic).
    pub device_tag: &'a str,
    /// DNS: the addresses the queried host resolves to.
    pub dns_answers: &'a [IpAddr],
    /// Public address after NAT (STUN).
    pub nat_public: Ipv4Addr,
    /// Device port (STUN XOR-MAPPED-ADDRESS).
    pub client_port: u16,
}

struct Sizes {
    exchanges: u32,
}

fn think(p: &Profile, rng: &mut SynthRng) -> u64 {
    rng.log_range(p.think_ms[0], p.think_ms[1]) * 1000 + rng.below(1000)
}

fn req_len(p: &Profile, rng: &mut SynthRng) -> usize {
    rng.log_range(p.request_bytes[0], p.request_bytes[1]) as usize
}

fn resp_len(p: &Profile, rng: &mut SynthRng) -> usize {
    rng.log_range(p.response_bytes[0], p.response_bytes[1]) as usize
}

fn sizes(p: &Profile, rng: &mut SynthRng) -> Sizes {
    Sizes {
        exchanges: rng.range(p.exchanges[0] as u64, p.exchanges[1] as u64) as u32,
    }
}

fn turn(from_client: bool, think_us: u64, chunks: Vec<Chunk>) -> Turn {
    Turn {
        from_client,
        think_us,
        chunks,
    }
}

fn bytes_turn(from_client: bool, think_us: u64, b: Vec<u8>) -> Turn {
    turn(from_client, think_us, vec![Chunk::Bytes(b)])
}

/// Builds the conversation for `p`.
pub fn build(p: &FlowParams<'_>, rng: &mut SynthRng) -> FlowScript {
    match p.proto {
        AppProto::Tls | AppProto::Apns => FlowScript::Tcp(tls_flow(p, rng)),
        AppProto::Http => FlowScript::Tcp(http_flow(p, rng)),
        AppProto::Ssh => FlowScript::Tcp(ssh_flow(p, rng)),
        AppProto::Mqtt => FlowScript::Tcp(mqtt_flow(p, rng)),
        AppProto::Imap | AppProto::Smtp => FlowScript::Tcp(starttls_flow(p, rng)),
        AppProto::Quic => FlowScript::Udp(quic_flow(p, rng)),
        AppProto::Dns => FlowScript::Udp(dns_flow(p, rng)),
        AppProto::Ntp => FlowScript::Udp(ntp_flow(p, rng)),
        AppProto::Stun => FlowScript::Udp(stun_flow(p, rng)),
    }
}

/// TLS parameters of a connection.
struct TlsChoice {
    tls13: bool,
    alpn: Vec<String>,
    /// Per-record overhead on top of plaintext (1.3: type + tag; 1.2: explicit nonce + tag).
    overhead: usize,
}

fn tls_choice(p: &FlowParams<'_>, rng: &mut SynthRng) -> TlsChoice {
    let ep_tls = p.endpoint.and_then(|e| e.tls.as_deref());
    let tls13 = match ep_tls {
        Some("1.2") => false,
        Some(_) => true,
        None => rng.chance(0.85),
    };
    let alpn = match p.endpoint.and_then(|e| e.alpn.clone()) {
        Some(a) => a,
        None => match p.proto {
            AppProto::Tls => vec!["h2".to_string(), "http/1.1".to_string()],
            AppProto::Apns if p.server_port == 443 => vec!["apns-security-v3".to_string()],
            _ => Vec::new(),
        },
    };
    TlsChoice {
        tls13,
        alpn,
        overhead: if tls13 { 17 } else { 24 },
    }
}

fn app_records(plain: usize, c: &TlsChoice) -> Chunk {
    let max_plain = 16384;
    let n = plain.div_ceil(max_plain).max(1);
    Chunk::Records {
        ct: CT_APPDATA,
        body_total: plain + n * c.overhead,
        max_body: max_plain + c.overhead,
    }
}

/// The TLS handshake turns (ClientHello through the Finished messages), client first.
fn tls_handshake(p: &FlowParams<'_>, c: &TlsChoice, rng: &mut SynthRng) -> Vec<Turn> {
    let hello = tls::client_hello(
        &ClientHelloSpec {
            sni: p.host,
            alpn: &c.alpn,
            quic_scid: None,
        },
        rng,
    );
    let session_id = hello
        .get(4 + 2 + 32 + 1..4 + 2 + 32 + 1 + 32)
        .unwrap_or(&[])
        .to_vec();
    let mut turns = vec![bytes_turn(true, 200, tls::client_hello_record(&hello))];
    let server_think = 1000 + rng.below(8000);
    if c.tls13 {
        let mut first = tls::record(
            CT_HANDSHAKE,
            0x0303,
            &tls::server_hello(true, &session_id, None, rng),
        );
        first.extend_from_slice(&tls::ccs_record());
        let enc_flight = rng.range(2400, 4800) as usize;
        turns.push(turn(
            false,
            server_think,
            vec![
                Chunk::Bytes(first),
                Chunk::Records {
                    ct: CT_APPDATA,
                    body_total: enc_flight,
                    max_body: 16401,
                },
            ],
        ));
        let mut fin = tls::ccs_record();
        fin.extend_from_slice(&tls::opaque_record(CT_APPDATA, 53, rng));
        turns.push(bytes_turn(true, 300 + rng.below(2000), fin));
    } else {
        let mut flight = tls::record(
            CT_HANDSHAKE,
            0x0303,
            &tls::server_hello(false, &session_id, c.alpn.first().map(String::as_str), rng),
        );
        let provider_names = p
            .provider
            .map(|pr| (pr.issuer_cn.as_str(), pr.issuer_o.as_str()));
        let (issuer_cn, issuer_o) =
            provider_names.unwrap_or(("Example Issuing CA", "Example Trust"));
        let nb = time::utctime(p.start_us.saturating_sub(60 * 86_400 * 1_000_000));
        let na = time::utctime(p.start_us + 300 * 86_400 * 1_000_000);
        let cert = tls::certificate_message(
            &tls::CertSpec {
                host: p.host,
                issuer_cn,
                issuer_o,
                not_before: &nb,
                not_after: &na,
            },
            rng,
        );
        flight.extend_from_slice(&tls::record(CT_HANDSHAKE, 0x0303, &cert));
        flight.extend_from_slice(&tls::record(
            CT_HANDSHAKE,
            0x0303,
            &tls::server_key_exchange(rng),
        ));
        flight.extend_from_slice(&tls::record(
            CT_HANDSHAKE,
            0x0303,
            &tls::server_hello_done(),
        ));
        turns.push(bytes_turn(false, server_think, flight));
        let mut ckx = tls::record(CT_HANDSHAKE, 0x0303, &tls::client_key_exchange(rng));
        ckx.extend_from_slice(&tls::ccs_record());
        ckx.extend_from_slice(&tls::opaque_record(CT_HANDSHAKE, 40, rng));
        turns.push(bytes_turn(true, 300 + rng.below(2000), ckx));
        let mut ticket = vec![0u8; 4 + 2 + 192];
        ticket[..4].copy_from_slice(&7200u32.to_be_bytes());
        ticket[4..6].copy_from_slice(&192u16.to_be_bytes());
        rng.fill(&mut ticket[6..]);
        let mut fin = tls::record(CT_HANDSHAKE, 0x0303, &tls::handshake(4, &ticket));
        fin.extend_from_slice(&tls::ccs_record());
        fin.extend_from_slice(&tls::opaque_record(CT_HANDSHAKE, 40, rng));
        turns.push(bytes_turn(false, 500, fin));
    }
    turns
}

/// Request/response exchanges as TLS application data.
fn tls_exchanges(
    p: &FlowParams<'_>,
    c: &TlsChoice,
    turns: &mut Vec<Turn>,
    client_uploads: bool,
    rng: &mut SynthRng,
) {
    let s = sizes(p.profile, rng);
    for i in 0..s.exchanges {
        let (mut up, mut down) = (req_len(p.profile, rng), resp_len(p.profile, rng));
        if client_uploads {
            std::mem::swap(&mut up, &mut down);
        }
        let t = if i == 0 {
            200 + rng.below(3000)
        } else {
            think(p.profile, rng)
        };
        turns.push(turn(true, t, vec![app_records(up, c)]));
        let mut chunks = Vec::new();
        if i == 0 && c.tls13 {
            // TLS 1.3 servers send two NewSessionTickets after the client Finished.
            for _ in 0..2 {
                chunks.push(Chunk::Records {
                    ct: CT_APPDATA,
                    body_total: rng.range(200, 280) as usize,
                    max_body: 16401,
                });
            }
        }
        chunks.push(app_records(down, c));
        turns.push(turn(false, 2000 + rng.below(30_000), chunks));
    }
}

fn close_notify(c: &TlsChoice, rng: &mut SynthRng) -> Vec<u8> {
    if c.tls13 {
        tls::opaque_record(CT_APPDATA, 19, rng)
    } else {
        tls::opaque_record(CT_ALERT, 26, rng)
    }
}

fn pick_close(p: &FlowParams<'_>, rng: &mut SynthRng) -> Close {
    if p.profile.think_ms[1] >= 60_000 && rng.chance(0.7) {
        return Close::Open;
    }
    let x = rng.unit();
    if x < 0.75 {
        Close::ClientFin
    } else if x < 0.93 {
        Close::ServerFin
    } else {
        Close::Reset
    }
}

fn tls_flow(p: &FlowParams<'_>, rng: &mut SynthRng) -> TcpScript {
    let c = tls_choice(p, rng);
    let mut turns = tls_handshake(p, &c, rng);
    let uploads = p.profile.request_bytes[0] > p.profile.response_bytes[1];
    tls_exchanges(p, &c, &mut turns, uploads, rng);
    let close = pick_close(p, rng);
    if close == Close::ClientFin {
        turns.push(bytes_turn(
            true,
            think(p.profile, rng),
            close_notify(&c, rng),
        ));
    }
    TcpScript {
        turns: turns.into(),
        close,
    }
}

const HTTP_SERVERS: [&str; 4] = ["nginx", "Apache", "openresty", "envoy"];

fn http_flow(p: &FlowParams<'_>, rng: &mut SynthRng) -> TcpScript {
    let s = sizes(p.profile, rng);
    let paths: Vec<&str> = match p.endpoint {
        Some(e) if !e.paths.is_empty() => e.paths.iter().map(String::as_str).collect(),
        _ => vec!["/"],
    };
    let server = HTTP_SERVERS[(crate::catalogue::fnv1a(&[p.host.as_bytes()]) % 4) as usize];
    let date = time::http_date(p.start_us);
    let mut turns = Vec::new();
    let captive = paths.first() == Some(&"/hotspot-detect.html");
    let exchanges = if captive { 1 } else { s.exchanges };
    for i in 0..exchanges {
        let path = paths
            .get(rng.below(paths.len() as u64) as usize)
            .copied()
            .unwrap_or("/");
        let post = path.starts_with("/api") && p.profile.request_bytes[1] > 1000 && rng.chance(0.3);
        let req = payloads::http_request(
            &HttpRequest {
                method: if post { "POST" } else { "GET" },
                path,
                host: p.host,
                user_agent: p.user_agent,
                body_len: if post { req_len(p.profile, rng) } else { 0 },
            },
            rng,
        );
        let t = if i == 0 {
            200 + rng.below(2000)
        } else {
            think(p.profile, rng)
        };
        turns.push(bytes_turn(true, t, req));
        let last = i + 1 == exchanges;
        let mut chunks = Vec::new();
        if captive {
            let body =
                b"<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>".to_vec();
            chunks.push(Chunk::Bytes(payloads::http_response_head(
                200,
                BodyKind::Html,
                body.len(),
                "AkamaiGHost",
                false,
                &date,
            )));
            chunks.push(Chunk::Bytes(body));
        } else {
            let len = resp_len(p.profile, rng).max(32);
            let kind = if path.ends_with(".jpg") {
                BodyKind::Jpeg
            } else if path.ends_with(".pdf") || path.ends_with(".bin") || len > 300_000 {
                BodyKind::Binary
            } else if path.starts_with("/api") || p.profile.response_bytes[1] < 100_000 {
                BodyKind::Json
            } else {
                BodyKind::Html
            };
            let len = if kind == BodyKind::Jpeg {
                len.max(payloads::JPEG_MAGIC.len() + 2)
            } else {
                len
            };
            let close = last && rng.chance(0.3);
            chunks.push(Chunk::Bytes(payloads::http_response_head(
                200, kind, len, server, close, &date,
            )));
            match kind {
                BodyKind::Json => {
                    let mut b = Vec::with_capacity(len);
                    payloads::json_text(len, rng, &mut b);
                    chunks.push(Chunk::Bytes(b));
                }
                BodyKind::Html => {
                    let mut b = Vec::with_capacity(len);
                    payloads::html_text(len, rng, &mut b);
                    chunks.push(Chunk::Bytes(b));
                }
                BodyKind::Jpeg => {
                    chunks.push(Chunk::Bytes(payloads::JPEG_MAGIC.to_vec()));
                    chunks.push(Chunk::Entropy(
                        len.saturating_sub(payloads::JPEG_MAGIC.len() + 2),
                    ));
                    chunks.push(Chunk::Bytes(vec![0xff, 0xd9]));
                }
                BodyKind::Binary => chunks.push(Chunk::Random(len)),
            }
        }
        turns.push(turn(false, 1000 + rng.below(40_000), chunks));
    }
    TcpScript {
        turns: turns.into(),
        close: pick_close(p, rng),
    }
}

fn ssh_flow(p: &FlowParams<'_>, rng: &mut SynthRng) -> TcpScript {
    let mut turns = vec![
        bytes_turn(
            false,
            2000 + rng.below(20_000),
            payloads::ssh_banner("OpenSSH_8.9p1 Ubuntu-3ubuntu0.6"),
        ),
        bytes_turn(true, 300, payloads::ssh_banner(p.app_token)),
    ];
    turns.push(bytes_turn(false, 500, payloads::ssh_kexinit(true, rng)));
    let mut c = payloads::ssh_kexinit(false, rng);
    c.extend_from_slice(&payloads::ssh_ecdh_init(rng));
    turns.push(bytes_turn(true, 800, c));
    turns.push(bytes_turn(
        false,
        3000,
        payloads::ssh_ecdh_reply_newkeys(rng),
    ));
    let nk = payloads::ssh_newkeys(rng);
    let enc = |n: usize| Chunk::Random(payloads::ssh_encrypted_len(n));
    turns.push(turn(true, 1500, vec![Chunk::Bytes(nk), enc(17)]));
    turns.push(turn(false, 500, vec![enc(17)]));
    turns.push(turn(true, 400, vec![enc(rng.range(60, 500) as usize)]));
    turns.push(turn(false, 20_000, vec![enc(rng.range(20, 120) as usize)]));
    let s = sizes(p.profile, rng);
    let bulk = p.profile.response_bytes[0] > 100_000;
    for _ in 0..s.exchanges {
        let up = req_len(p.profile, rng);
        let down = resp_len(p.profile, rng);
        turns.push(turn(true, think(p.profile, rng), vec![enc(up)]));
        let chunk = if bulk { Chunk::Random(down) } else { enc(down) };
        turns.push(turn(false, 500 + rng.below(5000), vec![chunk]));
    }
    TcpScript {
        turns: turns.into(),
        close: Close::ClientFin,
    }
}

fn mqtt_flow(p: &FlowParams<'_>, rng: &mut SynthRng) -> TcpScript {
    let client_id = format!("ios-{}", p.device_tag);
    let topic_up = format!("fieldservice/{}/telemetry", p.device_tag);
    let topic_down = format!("fieldservice/{}/jobs", p.device_tag);
    let mut turns = vec![
        bytes_turn(
            true,
            300,
            payloads::mqtt_connect(&client_id, p.device_tag, rng),
        ),
        bytes_turn(false, 2000, payloads::mqtt_connack()),
        bytes_turn(true, 1000, payloads::mqtt_subscribe(1, &topic_down)),
        bytes_turn(false, 1000, payloads::mqtt_suback(1)),
    ];
    let s = sizes(p.profile, rng);
    for i in 0..s.exchanges {
        let id = (i + 2) as u16;
        let t = think(p.profile, rng);
        if t > 25_000_000 && rng.chance(0.5) {
            turns.push(bytes_turn(true, t, payloads::MQTT_PINGREQ.to_vec()));
            turns.push(bytes_turn(false, 500, payloads::MQTT_PINGRESP.to_vec()));
            continue;
        }
        turns.push(bytes_turn(
            true,
            t,
            payloads::mqtt_publish(&topic_up, Some(id), req_len(p.profile, rng), rng),
        ));
        let mut down = payloads::mqtt_puback(id);
        if rng.chance(0.2) {
            down.extend_from_slice(&payloads::mqtt_publish(
                &topic_down,
                None,
                rng.range(80, 1200) as usize,
                rng,
            ));
        }
        turns.push(bytes_turn(false, 800, down));
    }
    let close = pick_close(p, rng);
    if close == Close::ClientFin {
        turns.push(bytes_turn(true, 1000, payloads::MQTT_DISCONNECT.to_vec()));
    }
    TcpScript {
        turns: turns.into(),
        close,
    }
}

fn starttls_flow(p: &FlowParams<'_>, rng: &mut SynthRng) -> TcpScript {
    let mut turns = Vec::new();
    if p.proto == AppProto::Imap {
        turns.push(bytes_turn(false, 3000, b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS LOGINDISABLED] Dovecot ready.\r\n".to_vec()));
        turns.push(bytes_turn(true, 400, b"1 CAPABILITY\r\n".to_vec()));
        turns.push(bytes_turn(false, 800, b"* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS LOGINDISABLED\r\n1 OK Pre-login capabilities listed, post-login capabilities have more.\r\n".to_vec()));
        turns.push(bytes_turn(true, 400, b"2 STARTTLS\r\n".to_vec()));
        turns.push(bytes_turn(
            false,
            600,
            b"2 OK Begin TLS negotiation now.\r\n".to_vec(),
        ));
    } else {
        turns.push(bytes_turn(
            false,
            3000,
            format!("220 {} ESMTP Postfix\r\n", p.host).into_bytes(),
        ));
        let ehlo = match p.client_ip {
            IpAddr::V4(a) => format!("EHLO [{a}]\r\n"),
            IpAddr::V6(a) => format!("EHLO [IPv6:{a}]\r\n"),
        };
        turns.push(bytes_turn(true, 400, ehlo.into_bytes()));
        turns.push(bytes_turn(
            false,
            800,
            format!("250-{}\r\n250-PIPELINING\r\n250-SIZE 36700160\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 CHUNKING\r\n", p.host).into_bytes(),
        ));
        turns.push(bytes_turn(true, 400, b"STARTTLS\r\n".to_vec()));
        turns.push(bytes_turn(
            false,
            600,
            b"220 2.0.0 Ready to start TLS\r\n".to_vec(),
        ));
    }
    let c = tls_choice(p, rng);
    let mut hs = tls_handshake(p, &c, rng);
    if let Some(first) = hs.first_mut() {
        first.think_us = 300;
    }
    turns.extend(hs);
    tls_exchanges(p, &c, &mut turns, p.proto == AppProto::Smtp, rng);
    turns.push(bytes_turn(
        true,
        think(p.profile, rng),
        close_notify(&c, rng),
    ));
    TcpScript {
        turns: turns.into(),
        close: Close::ClientFin,
    }
}

/// Largest 1-RTT packet the generator sends.
pub const QUIC_MAX_PACKET: usize = 1350;
/// Size of the datagrams that carry Initial packets.
pub const QUIC_INITIAL_DATAGRAM: usize = 1252;

fn quic_flow(p: &FlowParams<'_>, rng: &mut SynthRng) -> UdpScript {
    let dcid: [u8; 8] = rng.bytes();
    let client_cid: [u8; 8] = rng.bytes();
    let server_cid: [u8; 8] = rng.bytes();
    let (ck, sk) = quic::initial_keys(&dcid);
    let alpn = p
        .endpoint
        .and_then(|e| e.alpn.clone())
        .unwrap_or_else(|| vec!["h3".to_string()]);
    let hello = tls::client_hello(
        &ClientHelloSpec {
            sni: p.host,
            alpn: &alpn,
            quic_scid: Some(&client_cid),
        },
        rng,
    );
    let mut steps = VecDeque::new();
    let mut d1 = Vec::with_capacity(QUIC_INITIAL_DATAGRAM);
    quic::push_initial(
        &mut d1,
        &ck,
        &dcid,
        &client_cid,
        0,
        &quic::crypto_frame(0, &hello),
        QUIC_INITIAL_DATAGRAM,
    );
    steps.push_back(UdpStep::Datagram {
        from_client: true,
        think_us: 0,
        payload: d1,
    });
    // Server: Initial (ACK + ServerHello) coalesced with the start of its Handshake flight.
    let sh = tls::server_hello(true, &[], None, rng);
    let mut frames = quic::ack_frame(0, rng.range(0, 20));
    frames.extend_from_slice(&quic::crypto_frame(0, &sh));
    let mut s1 = Vec::with_capacity(QUIC_INITIAL_DATAGRAM);
    quic::push_initial(&mut s1, &sk, &client_cid, &server_cid, 0, &frames, 0);
    let fill = QUIC_INITIAL_DATAGRAM.saturating_sub(s1.len());
    quic::push_handshake_opaque(&mut s1, &client_cid, &server_cid, fill, rng);
    steps.push_back(UdpStep::Datagram {
        from_client: false,
        think_us: 1500 + rng.below(6000),
        payload: s1,
    });
    let mut s2 = Vec::new();
    quic::push_handshake_opaque(
        &mut s2,
        &client_cid,
        &server_cid,
        QUIC_INITIAL_DATAGRAM,
        rng,
    );
    steps.push_back(UdpStep::Datagram {
        from_client: false,
        think_us: 30,
        payload: s2,
    });
    let mut s3 = Vec::new();
    quic::push_handshake_opaque(
        &mut s3,
        &client_cid,
        &server_cid,
        rng.range(300, 900) as usize,
        rng,
    );
    steps.push_back(UdpStep::Datagram {
        from_client: false,
        think_us: 30,
        payload: s3,
    });
    // Client: Initial ACK + Handshake Finished, padded to the minimum datagram size.
    let mut c2 = Vec::with_capacity(QUIC_INITIAL_DATAGRAM);
    let hs_len = 80 + rng.below(20) as usize;
    quic::push_initial(
        &mut c2,
        &ck,
        &server_cid,
        &client_cid,
        1,
        &quic::ack_frame(0, 0),
        QUIC_INITIAL_DATAGRAM - hs_len,
    );
    quic::push_handshake_opaque(&mut c2, &server_cid, &client_cid, hs_len, rng);
    steps.push_back(UdpStep::Datagram {
        from_client: true,
        think_us: 400 + rng.below(1500),
        payload: c2,
    });
    let s = sizes(p.profile, rng);
    for i in 0..s.exchanges {
        let t = if i == 0 { 100 } else { think(p.profile, rng) };
        steps.push_back(UdpStep::QuicData {
            from_client: true,
            think_us: t,
            total: req_len(p.profile, rng) + 30,
        });
        steps.push_back(UdpStep::QuicData {
            from_client: false,
            think_us: 2000 + rng.below(20_000),
            total: resp_len(p.profile, rng) + 30,
        });
    }
    if rng.chance(0.6) {
        // CONNECTION_CLOSE in a short-header packet.
        steps.push_back(UdpStep::QuicData {
            from_client: true,
            think_us: think(p.profile, rng),
            total: 40,
        });
    }
    UdpScript {
        steps,
        quic_cids: Some((client_cid, server_cid)),
    }
}

fn dns_flow(p: &FlowParams<'_>, rng: &mut SynthRng) -> UdpScript {
    let mut steps = VecDeque::new();
    let mut qtypes = vec![1u16, 28];
    if rng.chance(0.5) {
        qtypes.push(65);
    }
    let ids: Vec<u16> = qtypes.iter().map(|_| rng.u16()).collect();
    for (i, (q, id)) in qtypes.iter().zip(&ids).enumerate() {
        let t = if i == 0 { 0 } else { 50 + rng.below(300) };
        steps.push_back(UdpStep::Datagram {
            from_client: true,
            think_us: t,
            payload: payloads::dns_query(*id, p.host, *q),
        });
    }
    let ttl = rng.range(30, 3600) as u32;
    for (i, (q, id)) in qtypes.iter().zip(&ids).enumerate() {
        let t = if i == 0 {
            500 + rng.below(20_000)
        } else {
            30 + rng.below(400)
        };
        let answers: &[IpAddr] = if *q == 65 { &[] } else { p.dns_answers };
        steps.push_back(UdpStep::Datagram {
            from_client: false,
            think_us: t,
            payload: payloads::dns_response(*id, p.host, *q, answers, ttl),
        });
    }
    UdpScript {
        steps,
        quic_cids: None,
    }
}

fn ntp_flow(p: &FlowParams<'_>, rng: &mut SynthRng) -> UdpScript {
    let mut steps = VecDeque::new();
    let s = sizes(p.profile, rng);
    let mut t_us = p.start_us;
    for i in 0..s.exchanges {
        let gap = if i == 0 {
            0
        } else {
            1_000_000 + rng.below(1_000_000)
        };
        t_us += gap;
        let rtt = 5_000 + rng.below(30_000);
        steps.push_back(UdpStep::Datagram {
            from_client: true,
            think_us: gap,
            payload: payloads::ntp_request(t_us),
        });
        steps.push_back(UdpStep::Datagram {
            from_client: false,
            think_us: 50,
            payload: payloads::ntp_response(t_us, t_us + rtt / 2),
        });
        t_us += rtt;
    }
    UdpScript {
        steps,
        quic_cids: None,
    }
}

fn stun_flow(p: &FlowParams<'_>, rng: &mut SynthRng) -> UdpScript {
    let mut steps = VecDeque::new();
    let s = sizes(p.profile, rng);
    let mapped_port = 1024 + (p.client_port ^ 0x5a5a) % 64000;
    for i in 0..s.exchanges {
        let tid: [u8; 12] = rng.bytes();
        let gap = if i == 0 {
            0
        } else {
            500_000 + rng.below(2_000_000)
        };
        steps.push_back(UdpStep::Datagram {
            from_client: true,
            think_us: gap,
            payload: payloads::stun_binding_request(&tid),
        });
        steps.push_back(UdpStep::Datagram {
            from_client: false,
            think_us: 100,
            payload: payloads::stun_binding_response(&tid, p.nat_public, mapped_port),
        });
    }
    UdpScript {
        steps,
        quic_cids: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_emits_records_with_headers_across_reads() {
        let pool = BytePool::new(1);
        let chunks = vec![
            Chunk::Bytes(b"abc".to_vec()),
            Chunk::Records {
                ct: 23,
                body_total: 40_000,
                max_body: 16401,
            },
            Chunk::Random(10),
        ];
        let total: usize = chunks.iter().map(Chunk::wire_len).sum();
        assert_eq!(total, 3 + 40_000 + 5 * 3 + 10);
        let mut r = PayloadReader::new(chunks, 5);
        let mut out = Vec::new();
        while r.remaining() > 0 {
            r.read(1448, &pool, &mut out);
        }
        assert_eq!(out.len(), total);
        assert_eq!(&out[..3], b"abc");
        // Walk the records.
        let mut i = 3;
        let mut bodies = 0;
        while bodies < 40_000 {
            assert_eq!(&out[i..i + 3], &[23, 3, 3]);
            let l = u16::from_be_bytes([out[i + 3], out[i + 4]]) as usize;
            assert!(l <= 16401);
            bodies += l;
            i += 5 + l;
        }
        assert_eq!(bodies, 40_000);
        assert_eq!(out.len() - i, 10);
    }
}
