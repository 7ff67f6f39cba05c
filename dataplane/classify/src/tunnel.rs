//! Explicit proxies: follows an HTTP `CONNECT host:port` or a SOCKS4/4a/5 `CONNECT` exchange on
//! a TCP flow's first bytes, so the engine can classify the bytes *inside* the tunnel and the
//! flow can be judged against the target's port rather than the proxy's.
//!
//! Owns: the wire parsers of the proxy handshakes (request and reply of each direction, each
//! returning how many bytes the message used) and [`TunnelWatch`], the per-flow state machine
//! that runs them over each direction's in-order bytes and says when the tunnel is up (and which
//! bytes are then the tunnel's content), refused, malformed, or not a proxy at all.
//! Must not: allocate per packet beyond the watch's two bounded buffers (at most
//! [`MAX_HANDSHAKE_BYTES`] each, created once per candidate flow), accept a message longer than
//! its bound, or panic on any bytes. Which protocol the tunnel carries is the engine's call.
//!
//! Followed: HTTP/1.x `CONNECT authority` (RFC 9110 9.3.6; any 2xx reply opens the tunnel, 1xx
//! replies are skipped), SOCKS4 and SOCKS4a `CONNECT` (reply code 90 opens it), SOCKS5 (RFC 1928)
//! greeting, method choice, username/password sub-negotiation (RFC 1929) and `CONNECT` (reply
//! 0 opens it). SOCKS `BIND` and `UDP ASSOCIATE` are not tunnels of this flow's bytes: the watch
//! ends. A client that sends its first tunnelled bytes before the proxy's reply (optimistic
//! data) has them kept (bounded) and handed over when the tunnel opens.

use std::net::{Ipv4Addr, Ipv6Addr};

use portolan_model::{ProxyKind, ProxyTarget, Side};

use crate::protocols::wire_int::{be16, u8_at};

/// Longest proxy message (and tunnelled bytes kept before the reply) per direction.
pub const MAX_HANDSHAKE_BYTES: usize = 4096;
/// Payload chunks (both directions) a watch reads before giving up on a handshake that never
/// completes; as high as the engine's TCP segment cap, so a request sent in 1-byte segments is
/// still followed (the byte bound is what binds).
pub const MAX_HANDSHAKE_CHUNKS: u16 = 4096;
/// Longest host name or user field of a SOCKS message, and of a `CONNECT` authority's host.
const MAX_HOST: usize = 255;
/// Headers read from a `CONNECT` request or its reply.
const MAX_HEADERS: usize = 64;

/// One parser's answer on the bytes it was given (which start at a message boundary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse<T> {
    /// A whole message: its value and the bytes it used.
    Done(T, usize),
    /// A prefix of a valid message: more bytes are needed.
    NeedMore,
    /// Not this message.
    Invalid,
}

impl<T> Parse<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Parse<U> {
        match self {
            Parse::Done(v, n) => Parse::Done(f(v), n),
            Parse::NeedMore => Parse::NeedMore,
            Parse::Invalid => Parse::Invalid,
        }
    }
}

/// A SOCKS request's command and target (`target` is `None` when the command is not `CONNECT`
/// and the address is not worth keeping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocksRequest {
    /// `1` CONNECT, `2` BIND, `3` UDP ASSOCIATE (SOCKS5 only).
    pub command: u8,
    /// The requested destination.
    pub target: ProxyTarget,
}

fn target(kind: ProxyKind, host: String, port: u16) -> ProxyTarget {
    ProxyTarget {
        kind,
        host,
        port,
        established: false,
    }
}

fn host_name_ok(h: &[u8]) -> bool {
    !h.is_empty()
        && h.len() <= MAX_HOST
        && h.iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&c))
}

/// `CONNECT host:port HTTP/1.x` with its headers, up to the blank line.
pub fn http_connect_request(d: &[u8]) -> Parse<ProxyTarget> {
    const PREFIX: &[u8] = b"CONNECT ";
    let n = d.len().min(PREFIX.len());
    if d.get(..n) != PREFIX.get(..n) {
        return Parse::Invalid;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(d) {
        Ok(httparse::Status::Complete(used)) => {
            if req.method != Some("CONNECT") {
                return Parse::Invalid;
            }
            match req.path.and_then(authority) {
                Some((host, port)) => Parse::Done(target(ProxyKind::HttpConnect, host, port), used),
                None => Parse::Invalid,
            }
        }
        Ok(httparse::Status::Partial) if d.len() < MAX_HANDSHAKE_BYTES => Parse::NeedMore,
        _ => Parse::Invalid,
    }
}

/// `host:port` or `[v6]:port` (RFC 9110 authority-form), port 1..=65535.
fn authority(a: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (v6, port) = rest.split_once("]:")?;
        let ip: Ipv6Addr = v6.parse().ok()?;
        (ip.to_string(), port)
    } else {
        let (host, port) = a.rsplit_once(':')?;
        if !host_name_ok(host.as_bytes()) {
            return None;
        }
        (host.to_ascii_lowercase(), port)
    };
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let port: u16 = port.parse().ok()?;
    (port != 0).then_some((host, port))
}

/// An HTTP/1.x status line and headers: the status code.
pub fn http_reply(d: &[u8]) -> Parse<u16> {
    const PREFIX: &[u8] = b"HTTP/1.";
    let n = d.len().min(PREFIX.len());
    if d.get(..n) != PREFIX.get(..n) {
        return Parse::Invalid;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(d) {
        Ok(httparse::Status::Complete(used)) => match resp.code {
            Some(code) => Parse::Done(code, used),
            None => Parse::Invalid,
        },
        Ok(httparse::Status::Partial) if d.len() < MAX_HANDSHAKE_BYTES => Parse::NeedMore,
        _ => Parse::Invalid,
    }
}

/// A NUL-terminated field at `d[from..]`: the index after its NUL.
fn nul_field(d: &[u8], from: usize, printable_only: bool) -> Parse<usize> {
    let rest = d.get(from..).unwrap_or_default();
    let ok = |c: &u8| !printable_only || (0x20..0x7f).contains(c);
    match rest.iter().position(|&c| c == 0) {
        Some(end) if end <= MAX_HOST && rest.get(..end).is_some_and(|f| f.iter().all(ok)) => {
            Parse::Done(from + end + 1, 0)
        }
        None if rest.len() <= MAX_HOST && rest.iter().all(ok) => Parse::NeedMore,
        _ => Parse::Invalid,
    }
}

/// `04 cmd port(2) ip(4) userid\0`, SOCKS4a (`ip` = `0.0.0.x`, x != 0): `host\0` after.
pub fn socks4_request(d: &[u8]) -> Parse<SocksRequest> {
    match u8_at(d, 0) {
        Some(4) => {}
        Some(_) => return Parse::Invalid,
        None => return Parse::NeedMore,
    }
    let command = match u8_at(d, 1) {
        Some(c @ (1 | 2)) => c,
        Some(_) => return Parse::Invalid,
        None => return Parse::NeedMore,
    };
    let (Some(port), Some(ip)) = (be16(d, 2), d.get(4..8)) else {
        return if be16(d, 2) == Some(0) {
            Parse::Invalid
        } else {
            Parse::NeedMore
        };
    };
    if port == 0 || ip.iter().all(|&b| b == 0) {
        return Parse::Invalid;
    }
    let after_user = match nul_field(d, 8, true) {
        Parse::Done(at, _) => at,
        Parse::NeedMore => return Parse::NeedMore,
        Parse::Invalid => return Parse::Invalid,
    };
    let v4 = Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]);
    if ip.get(..3) != Some([0u8, 0, 0].as_slice()) {
        return Parse::Done(
            SocksRequest {
                command,
                target: target(ProxyKind::Socks4, v4.to_string(), port),
            },
            after_user,
        );
    }
    match nul_field(d, after_user, true) {
        Parse::Done(end, _) => {
            let host = d.get(after_user..end - 1).unwrap_or_default();
            if !host_name_ok(host) {
                return Parse::Invalid;
            }
            Parse::Done(
                SocksRequest {
                    command,
                    target: target(
                        ProxyKind::Socks4,
                        String::from_utf8_lossy(host).to_ascii_lowercase(),
                        port,
                    ),
                },
                end,
            )
        }
        Parse::NeedMore => Parse::NeedMore,
        Parse::Invalid => Parse::Invalid,
    }
}

/// `00 code port(2) ip(4)`: granted (code 90) or not (91..=93).
pub fn socks4_reply(d: &[u8]) -> Parse<bool> {
    match (u8_at(d, 0), u8_at(d, 1)) {
        (Some(0), Some(code @ 0x5a..=0x5d)) if d.len() >= 8 => Parse::Done(code == 0x5a, 8),
        (Some(0), Some(0x5a..=0x5d)) | (Some(0), None) | (None, _) => Parse::NeedMore,
        _ => Parse::Invalid,
    }
}

/// `05 n methods[n]` (n 1..=255; methods are not checked here beyond their count).
pub fn socks5_greeting(d: &[u8]) -> Parse<()> {
    match (u8_at(d, 0), u8_at(d, 1)) {
        (None, _) | (Some(5), None) => Parse::NeedMore,
        (Some(5), Some(n)) if n > 0 => {
            let used = 2 + usize::from(n);
            if d.len() >= used {
                Parse::Done((), used)
            } else {
                Parse::NeedMore
            }
        }
        _ => Parse::Invalid,
    }
}

/// `05 method`: the method the server chose (`0xff`: none acceptable).
pub fn socks5_method(d: &[u8]) -> Parse<u8> {
    match (u8_at(d, 0), u8_at(d, 1)) {
        (None, _) | (Some(5), None) => Parse::NeedMore,
        (Some(5), Some(m)) => Parse::Done(m, 2),
        _ => Parse::Invalid,
    }
}

/// RFC 1929 `01 ulen user plen password` (lengths 1..=255).
pub fn socks5_auth(d: &[u8]) -> Parse<()> {
    if d.is_empty() {
        return Parse::NeedMore;
    }
    if u8_at(d, 0) != Some(1) {
        return Parse::Invalid;
    }
    let Some(ulen) = u8_at(d, 1) else {
        return Parse::NeedMore;
    };
    let at_plen = 2 + usize::from(ulen);
    let Some(plen) = u8_at(d, at_plen) else {
        return Parse::NeedMore;
    };
    if ulen == 0 || plen == 0 {
        return Parse::Invalid;
    }
    let used = at_plen + 1 + usize::from(plen);
    if d.len() >= used {
        Parse::Done((), used)
    } else {
        Parse::NeedMore
    }
}

/// RFC 1929 status `01 status`: accepted (status 0) or not.
pub fn socks5_auth_reply(d: &[u8]) -> Parse<bool> {
    match (u8_at(d, 0), u8_at(d, 1)) {
        (None, _) | (Some(1), None) => Parse::NeedMore,
        (Some(1), Some(s)) => Parse::Done(s == 0, 2),
        _ => Parse::Invalid,
    }
}

/// `05 x 00 atyp addr port` (a request when `x` is the command, a reply when it is the code):
/// `x`, the address as text, the port and the bytes used.
fn socks5_message(d: &[u8], kind_ok: impl Fn(u8) -> bool) -> Parse<(u8, String, u16)> {
    let head = d.get(..4).unwrap_or(d);
    for (i, &b) in head.iter().enumerate() {
        let ok = match i {
            0 => b == 5,
            1 => kind_ok(b),
            2 => b == 0,
            _ => matches!(b, 1 | 3 | 4),
        };
        if !ok {
            return Parse::Invalid;
        }
    }
    let (Some(x), Some(atyp)) = (u8_at(d, 1), u8_at(d, 3)) else {
        return Parse::NeedMore;
    };
    let (host, addr_end) = match atyp {
        1 => match d.get(4..8) {
            Some(a) => (Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string(), 8),
            None => return Parse::NeedMore,
        },
        4 => match d.get(4..20).and_then(|a| <[u8; 16]>::try_from(a).ok()) {
            Some(a) => (Ipv6Addr::from(a).to_string(), 20),
            None => return Parse::NeedMore,
        },
        _ => {
            let Some(n) = u8_at(d, 4).map(usize::from) else {
                return Parse::NeedMore;
            };
            match d.get(5..5 + n) {
                Some(h) if host_name_ok(h) => {
                    (String::from_utf8_lossy(h).to_ascii_lowercase(), 5 + n)
                }
                Some(_) => return Parse::Invalid,
                None => return Parse::NeedMore,
            }
        }
    };
    match be16(d, addr_end) {
        Some(port) => Parse::Done((x, host, port), addr_end + 2),
        None => Parse::NeedMore,
    }
}

/// `05 cmd(1..=3) 00 atyp addr port`.
pub fn socks5_request(d: &[u8]) -> Parse<SocksRequest> {
    match socks5_message(d, |c| matches!(c, 1..=3)) {
        Parse::Done((_, _, 0), _) => Parse::Invalid,
        other => other.map(|(command, host, port)| SocksRequest {
            command,
            target: target(ProxyKind::Socks5, host, port),
        }),
    }
}

/// `05 rep(0..=8) 00 atyp addr port`: the reply code (0 succeeded).
pub fn socks5_reply(d: &[u8]) -> Parse<u8> {
    socks5_message(d, |c| c <= 8).map(|(rep, _, _)| rep)
}

/// What one chunk did to the watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The handshake goes on (or the chunk was a proxy message): keep feeding.
    Watching,
    /// The proxy granted the request: take [`TunnelWatch::take_inner`] and classify it as the
    /// tunnel's first bytes.
    Open,
    /// The proxy refused the request (non-2xx, SOCKS failure code, rejected authentication).
    Refused,
    /// A proxy exchange that had started well broke (a malformed or oversized message).
    Malformed,
    /// Not a proxy request, not a tunnel of this flow's bytes (`BIND`, `UDP ASSOCIATE`), or a
    /// handshake that never completed within [`MAX_HANDSHAKE_CHUNKS`]: stop watching quietly.
    Abandoned,
}

/// Where the client's side of the exchange stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientStage {
    /// The first message: a `CONNECT` request, a SOCKS4 request or a SOCKS5 greeting.
    First,
    /// SOCKS5: an RFC 1929 authentication or the request.
    Socks5Request,
    /// The request was read: what follows is the tunnel's content.
    Inner,
}

/// Where the server's side stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerStage {
    /// HTTP: the status (1xx replies are skipped); SOCKS4: the 8-byte reply.
    Reply,
    /// SOCKS5: the method choice.
    Socks5Method,
    /// SOCKS5: the authentication status (after method 2) or the reply.
    Socks5Reply,
    /// The grant was read: what follows is the tunnel's content.
    Inner,
}

/// One flow's proxy handshake, fed each direction's bytes in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelWatch {
    kind: ProxyKind,
    client: ClientStage,
    server: ServerStage,
    target: Option<ProxyTarget>,
    /// Per direction (client, server): bytes not consumed yet — a message still arriving, then
    /// (after the direction's last proxy message) the tunnel's first bytes.
    pending: [Vec<u8>; 2],
    chunks: u16,
}

impl TunnelWatch {
    /// A watch for a flow whose client's first bytes are `first` (stream offset 0), when they
    /// can start a proxy request: `C` (`CONNECT `), `04` (SOCKS4) or `05` (SOCKS5). `None`
    /// otherwise: the flow is not watched.
    pub fn start(first: &[u8]) -> Option<TunnelWatch> {
        let kind = match first.first()? {
            b'C' => ProxyKind::HttpConnect,
            4 => ProxyKind::Socks4,
            5 => ProxyKind::Socks5,
            _ => return None,
        };
        Some(TunnelWatch {
            kind,
            client: ClientStage::First,
            server: match kind {
                ProxyKind::Socks5 => ServerStage::Socks5Method,
                _ => ServerStage::Reply,
            },
            target: None,
            pending: [Vec::new(), Vec::new()],
            chunks: 0,
        })
    }

    /// The proxy protocol.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The target the client asked for, once its request was read.
    pub fn target(&self) -> Option<&ProxyTarget> {
        self.target.as_ref()
    }

    /// Feeds the next in-order bytes `sender` sent.
    pub fn feed(&mut self, sender: Side, bytes: &[u8]) -> Step {
        self.chunks = self.chunks.saturating_add(1);
        let d = sender.index();
        let Some(pending) = self.pending.get_mut(d) else {
            return Step::Abandoned;
        };
        let room = MAX_HANDSHAKE_BYTES.saturating_sub(pending.len());
        let over = bytes.len() > room;
        if pending.capacity() == 0 {
            pending.reserve(bytes.len().clamp(64, MAX_HANDSHAKE_BYTES));
        }
        pending.extend_from_slice(bytes.get(..room).unwrap_or(bytes));
        let step = if sender.is_client() {
            self.advance_client()
        } else {
            self.advance_server()
        };
        match step {
            Step::Watching if over && !self.inner_both() => {
                // A message (or optimistic data) past the bound.
                if self.started() {
                    Step::Malformed
                } else {
                    Step::Abandoned
                }
            }
            Step::Watching if self.inner_both() => Step::Open,
            Step::Watching if self.chunks >= MAX_HANDSHAKE_CHUNKS => Step::Abandoned,
            other => other,
        }
    }

    /// Both directions are past their proxy messages.
    fn inner_both(&self) -> bool {
        self.client == ClientStage::Inner && self.server == ServerStage::Inner
    }

    /// The client's first message was a valid proxy message (or, for HTTP, started with
    /// `CONNECT `: a request that then breaks is malformed, not "no proxy").
    fn started(&self) -> bool {
        self.client != ClientStage::First
            || (self.kind == ProxyKind::HttpConnect
                && self
                    .pending
                    .first()
                    .is_some_and(|p| p.starts_with(b"CONNECT ")))
    }

    /// The tunnel's first bytes seen so far (client's, server's), and the target marked
    /// established. Call once, on [`Step::Open`].
    pub fn take_inner(&mut self) -> ([Vec<u8>; 2], Option<ProxyTarget>) {
        let mut t = self.target.take();
        if let Some(t) = t.as_mut() {
            t.established = true;
        }
        (std::mem::take(&mut self.pending), t)
    }

    fn consume(&mut self, d: usize, n: usize) {
        if let Some(p) = self.pending.get_mut(d) {
            p.drain(..n.min(p.len()));
        }
    }

    fn advance_client(&mut self) -> Step {
        loop {
            let data = self.pending[0].as_slice();
            let step = match self.client {
                ClientStage::Inner => return Step::Watching,
                ClientStage::First => match self.kind {
                    ProxyKind::HttpConnect => match http_connect_request(data) {
                        Parse::Done(t, n) => {
                            self.target = Some(t);
                            self.client = ClientStage::Inner;
                            Parse::Done((), n)
                        }
                        Parse::NeedMore => Parse::NeedMore,
                        Parse::Invalid => Parse::Invalid,
                    },
                    ProxyKind::Socks4 => match socks4_request(data) {
                        Parse::Done(r, n) => {
                            if r.command != 1 {
                                return Step::Abandoned;
                            }
                            self.target = Some(r.target);
                            self.client = ClientStage::Inner;
                            Parse::Done((), n)
                        }
                        Parse::NeedMore => Parse::NeedMore,
                        Parse::Invalid => Parse::Invalid,
                    },
                    ProxyKind::Socks5 => {
                        let p = socks5_greeting(data);
                        if matches!(p, Parse::Done(..)) {
                            self.client = ClientStage::Socks5Request;
                        }
                        p
                    }
                },
                ClientStage::Socks5Request => match data.first() {
                    Some(1) => socks5_auth(data),
                    _ => match socks5_request(data) {
                        Parse::Done(r, n) => {
                            if r.command != 1 {
                                return Step::Abandoned;
                            }
                            self.target = Some(r.target);
                            self.client = ClientStage::Inner;
                            Parse::Done((), n)
                        }
                        Parse::NeedMore => Parse::NeedMore,
                        Parse::Invalid => Parse::Invalid,
                    },
                },
            };
            match step {
                Parse::Done((), n) => self.consume(0, n),
                Parse::NeedMore => return Step::Watching,
                Parse::Invalid if self.started() => return Step::Malformed,
                Parse::Invalid => return Step::Abandoned,
            }
        }
    }

    fn advance_server(&mut self) -> Step {
        loop {
            let data = self.pending[1].as_slice();
            let (n, next) = match self.server {
                ServerStage::Inner => return Step::Watching,
                ServerStage::Reply => match self.kind {
                    ProxyKind::HttpConnect => match http_reply(data) {
                        Parse::Done(code, n) if (100..200).contains(&code) => {
                            (n, ServerStage::Reply)
                        }
                        Parse::Done(code, n) if (200..300).contains(&code) => {
                            (n, ServerStage::Inner)
                        }
                        Parse::Done(..) => return Step::Refused,
                        Parse::NeedMore => return Step::Watching,
                        Parse::Invalid => return self.broken(),
                    },
                    _ => match socks4_reply(data) {
                        Parse::Done(true, n) => (n, ServerStage::Inner),
                        Parse::Done(false, _) => return Step::Refused,
                        Parse::NeedMore => return Step::Watching,
                        Parse::Invalid => return self.broken(),
                    },
                },
                ServerStage::Socks5Method => match socks5_method(data) {
                    Parse::Done(0xff, _) => return Step::Refused,
                    Parse::Done(_, n) => (n, ServerStage::Socks5Reply),
                    Parse::NeedMore => return Step::Watching,
                    Parse::Invalid => return self.broken(),
                },
                ServerStage::Socks5Reply => match data.first() {
                    Some(1) => match socks5_auth_reply(data) {
                        Parse::Done(true, n) => (n, ServerStage::Socks5Reply),
                        Parse::Done(false, _) => return Step::Refused,
                        Parse::NeedMore => return Step::Watching,
                        Parse::Invalid => return self.broken(),
                    },
                    _ => match socks5_reply(data) {
                        Parse::Done(0, n) => (n, ServerStage::Inner),
                        Parse::Done(_, _) => return Step::Refused,
                        Parse::NeedMore => return Step::Watching,
                        Parse::Invalid => return self.broken(),
                    },
                },
            };
            self.consume(1, n);
            self.server = next;
        }
    }

    /// A server message that is not the expected reply: malformed once the client's request
    /// was a proxy message, else not a proxy flow.
    fn broken(&self) -> Step {
        if self.started() {
            Step::Malformed
        } else {
            Step::Abandoned
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(exchange: &[(bool, &[u8])]) -> (Step, TunnelWatch) {
        let first = exchange.iter().find(|(c, _)| *c).map(|(_, b)| *b).unwrap();
        let mut w = TunnelWatch::start(first).expect("a candidate");
        let mut last = Step::Watching;
        for (from_client, bytes) in exchange {
            last = w.feed(Side::from_client(*from_client), bytes);
            if last != Step::Watching {
                break;
            }
        }
        (last, w)
    }

    #[test]
    fn http_connect_opens_on_2xx_and_hands_over_the_inner_bytes() {
        let (step, mut w) = run(&[
            (
                true,
                b"CONNECT c2.example.net:50443 HTTP/1.1\r\nHost: c2.example.net:50443\r\n\r\n",
            ),
            (false, b"HTTP/1.1 200 Connection established\r\n\r\n"),
        ]);
        assert_eq!(step, Step::Open);
        let ([c, s], t) = w.take_inner();
        assert!(c.is_empty() && s.is_empty());
        let t = t.unwrap();
        assert_eq!(
            (t.kind, t.host.as_str(), t.port, t.established),
            (ProxyKind::HttpConnect, "c2.example.net", 50443, true)
        );
    }

    #[test]
    fn optimistic_client_bytes_and_server_bytes_after_the_reply_are_kept() {
        let (step, mut w) = run(&[
            (
                true,
                b"CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n\r\n\x16\x03\x01",
            ),
            (true, b"\x00\x05"),
            (
                false,
                b"HTTP/1.0 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nSSH-2.0-x\r\n",
            ),
        ]);
        assert_eq!(step, Step::Open);
        let ([c, s], t) = w.take_inner();
        assert_eq!(c, b"\x16\x03\x01\x00\x05");
        assert_eq!(s, b"SSH-2.0-x\r\n");
        assert_eq!(t.unwrap().host, "2001:db8::1");
    }

    #[test]
    fn refusals() {
        let (step, _) = run(&[
            (true, b"CONNECT a.example:443 HTTP/1.1\r\n\r\n"),
            (false, b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"),
        ]);
        assert_eq!(step, Step::Refused);
        let (step, _) = run(&[
            (true, b"\x04\x01\x01\xbb\x01\x02\x03\x04\x00"),
            (false, b"\x00\x5b\x00\x00\x00\x00\x00\x00"),
        ]);
        assert_eq!(step, Step::Refused);
        let (step, _) = run(&[(true, b"\x05\x01\x02"), (false, b"\x05\xff")]);
        assert_eq!(step, Step::Refused);
        let (step, _) = run(&[
            (true, b"\x05\x01\x00"),
            (false, b"\x05\x00"),
            (true, b"\x05\x01\x00\x01\x0a\x00\x00\x01\x01\xbb"),
            (false, b"\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00"),
        ]);
        assert_eq!(step, Step::Refused);
    }

    #[test]
    fn socks4a_and_socks5_with_authentication_open() {
        let (step, mut w) = run(&[
            (
                true,
                b"\x04\x01\xc5\x1b\x00\x00\x00\x01bob\x00C2.Example.NET\x00",
            ),
            (false, b"\x00\x5a\x00\x00\x00\x00\x00\x00"),
        ]);
        assert_eq!(step, Step::Open);
        let t = w.take_inner().1.unwrap();
        assert_eq!(
            (t.kind, t.host.as_str(), t.port),
            (ProxyKind::Socks4, "c2.example.net", 50459)
        );
        let (step, mut w) = run(&[
            (true, b"\x05\x02\x00\x02"),
            (false, b"\x05\x02"),
            (true, b"\x01\x03bob\x06secret"),
            (false, b"\x01\x00"),
            (
                true,
                b"\x05\x01\x00\x03\x0ec2.example.net\xc5\x13\x16\x03\x01",
            ),
            (false, b"\x05\x00\x00\x01\x0a\x00\x00\x01\x04\x38"),
        ]);
        assert_eq!(step, Step::Open);
        let ([c, _], t) = w.take_inner();
        assert_eq!(c, b"\x16\x03\x01");
        let t = t.unwrap();
        assert_eq!((t.host.as_str(), t.port), ("c2.example.net", 50451));
    }

    #[test]
    fn not_proxies_and_broken_exchanges() {
        assert!(TunnelWatch::start(b"\x16\x03\x01").is_none());
        assert!(TunnelWatch::start(b"").is_none());
        // `COPY` is HTTP but not a tunnel; a SOCKS BIND is not this flow's bytes either.
        let (step, _) = run(&[(true, b"COPY /a HTTP/1.1\r\n\r\n")]);
        assert_eq!(step, Step::Abandoned);
        let (step, _) = run(&[(true, b"\x04\x02\x00\x50\x01\x02\x03\x04\x00")]);
        assert_eq!(step, Step::Abandoned);
        // A port-less authority, a reply that is not HTTP.
        let (step, _) = run(&[(true, b"CONNECT example.net HTTP/1.1\r\n\r\n")]);
        assert_eq!(step, Step::Malformed);
        let (step, _) = run(&[
            (true, b"CONNECT example.net:1 HTTP/1.1\r\n\r\n"),
            (false, b"\x16\x03\x03\x00\x10"),
        ]);
        assert_eq!(step, Step::Malformed);
        // A request whose headers never end within the bound.
        let mut w = TunnelWatch::start(b"C").unwrap();
        assert_eq!(
            w.feed(Side::Client, b"CONNECT a.example:443 HTTP/1.1\r\n"),
            Step::Watching
        );
        let header = b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        let mut last = Step::Watching;
        for _ in 0..80 {
            last = w.feed(Side::Client, header);
            if last != Step::Watching {
                break;
            }
        }
        assert_eq!(last, Step::Malformed);
    }

    #[test]
    fn one_byte_chunks_give_the_same_outcome() {
        let req = b"\x05\x01\x00\x05\x01\x00\x03\x0bexample.com\x01\xbb";
        let mut w = TunnelWatch::start(req).unwrap();
        for b in req.iter() {
            assert_eq!(
                w.feed(Side::Client, std::slice::from_ref(b)),
                Step::Watching
            );
        }
        assert_eq!(w.feed(Side::Server, b"\x05\x00"), Step::Watching);
        let reply = b"\x05\x00\x00\x01\x0a\x00\x00\x01\x04\x38";
        let mut last = Step::Watching;
        for b in reply.iter() {
            last = w.feed(Side::Server, std::slice::from_ref(b));
        }
        assert_eq!(last, Step::Open);
        assert_eq!(w.take_inner().1.unwrap().port, 443);
    }
}
