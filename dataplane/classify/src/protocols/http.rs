//! HTTP/1.x: confirms a request line or a status line at the start of the bytes (`httparse`).
//!
//! Owns: request/response recognition and the fields the flow record reports (Host,
//! User-Agent, method, target, status, CONNECT, WebSocket upgrade).
//! Must not: accept HTTP/2 or RTSP/SIP lines (their versions are not `HTTP/1.x`), keep state,
//! or panic on any input.

use crate::probe::{HttpMeta, Meta, Probe, ProbeContext};
use portolan_packet::Transport;

/// Headers parsed per message; more are ignored (the interesting ones come first).
const MAX_HEADERS: usize = 64;
/// A request whose headers are still open is reported once this many bytes are seen (so a
/// message with huge cookies is not held back forever); below it the parser asks for more.
const PARTIAL_HEADERS_ENOUGH: usize = 2048;
/// Longest field value kept.
const MAX_VALUE_LEN: usize = 1024;

/// Request methods of the IANA HTTP Method Registry (without `PRI`, the HTTP/2 preface).
/// Other tokens are not taken as HTTP: HTTP-shaped discovery protocols (`M-SEARCH`, `NOTIFY`,
/// `BT-SEARCH`) and unknown extensions stay with their own parsers or `unknown`.
const METHODS: &[&str] = &[
    "ACL",
    "BASELINE-CONTROL",
    "BIND",
    "CHECKIN",
    "CHECKOUT",
    "CONNECT",
    "COPY",
    "DELETE",
    "GET",
    "HEAD",
    "LABEL",
    "LINK",
    "LOCK",
    "MERGE",
    "MKACTIVITY",
    "MKCALENDAR",
    "MKCOL",
    "MKREDIRECTREF",
    "MKWORKSPACE",
    "MOVE",
    "OPTIONS",
    "ORDERPATCH",
    "PATCH",
    "POST",
    "PROPFIND",
    "PROPPATCH",
    "PUT",
    "QUERY",
    "REBIND",
    "REPORT",
    "SEARCH",
    "TRACE",
    "UNBIND",
    "UNCHECKOUT",
    "UNLINK",
    "UNLOCK",
    "UPDATE",
    "UPDATEREDIRECTREF",
    "VERSION-CONTROL",
];

fn text(bytes: &[u8]) -> String {
    let cut = bytes.get(..MAX_VALUE_LEN).unwrap_or(bytes);
    String::from_utf8_lossy(cut).into_owned()
}

/// Fills Host / User-Agent / Upgrade from one header.
fn take_header(meta: &mut HttpMeta, name: &str, value: &[u8]) {
    if name.eq_ignore_ascii_case("host") {
        meta.hostname
            .get_or_insert_with(|| text(value.trim_ascii()));
    } else if name.eq_ignore_ascii_case("user-agent") {
        meta.http_user_agent
            .get_or_insert_with(|| text(value.trim_ascii()));
    } else if name.eq_ignore_ascii_case("upgrade")
        && value.trim_ascii().eq_ignore_ascii_case(b"websocket")
    {
        meta.websocket_upgrade = true;
    }
}

/// Complete header lines after the request line of a message whose header block is not
/// finished yet (`httparse` reports none in that case).
fn partial_headers(meta: &mut HttpMeta, after_request_line: &[u8]) {
    for line in after_request_line.split(|&b| b == b'\n') {
        // The last piece has no `\n`: it is an unfinished line, skip it.
        if line.len() == after_request_line.len() {
            break;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        if let Ok(name) = std::str::from_utf8(name) {
            take_header(meta, name, value.get(1..).unwrap_or(&[]));
        }
    }
}

fn request(data: &[u8]) -> Probe {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let status = req.parse(data);
    let complete = match status {
        Ok(httparse::Status::Complete(_)) => true,
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => false,
        Err(_) => return Probe::NoMatch,
    };
    let (Some(method), Some(path), Some(_version)) = (req.method, req.path, req.version) else {
        // The request line itself is not finished yet.
        return if data.len() < PARTIAL_HEADERS_ENOUGH {
            Probe::NeedMore
        } else {
            Probe::NoMatch
        };
    };
    if !METHODS.contains(&method) {
        return Probe::NoMatch;
    }
    let mut meta = HttpMeta {
        url: Some(text(path.as_bytes())),
        http_method: Some(method.to_string()),
        connect: method == "CONNECT",
        ..Default::default()
    };
    if complete {
        for h in req.headers.iter() {
            take_header(&mut meta, h.name, h.value);
        }
    } else {
        if data.len() < PARTIAL_HEADERS_ENOUGH {
            return Probe::NeedMore;
        }
        let line_end = data
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |i| i + 1);
        partial_headers(&mut meta, data.get(line_end..).unwrap_or(&[]));
    }
    Probe::Match {
        indicator: "http.request",
        meta: Meta::Http(meta),
    }
}

fn response(data: &[u8]) -> Probe {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(data) {
        Ok(_) | Err(httparse::Error::TooManyHeaders) => {}
        Err(_) => return Probe::NoMatch,
    }
    match (resp.version, resp.code) {
        (Some(_), Some(code)) if (100..=599).contains(&code) => Probe::Match {
            indicator: "http.response",
            meta: Meta::Http(HttpMeta {
                status: Some(code),
                ..Default::default()
            }),
        },
        (_, Some(_)) => Probe::NoMatch,
        _ if data.len() < 16 => Probe::NeedMore,
        _ => Probe::NoMatch,
    }
}

/// Confirms HTTP/1.x over TCP: a request with a registered method (`http.request`) or a
/// response status line (`http.response`).
pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe {
    if ctx.transport != Transport::Tcp {
        // HTTP/1.x runs over TCP; HTTP-shaped UDP (SSDP, BitTorrent LSD) is something else.
        return Probe::NoMatch;
    }
    if data.starts_with(b"HTTP/") || (data.len() < 5 && b"HTTP/".starts_with(data)) {
        response(data)
    } else {
        request(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: ProbeContext = ProbeContext::new(Transport::Tcp, 50000, 80);

    fn http(p: Probe) -> (&'static str, HttpMeta) {
        match p {
            Probe::Match {
                indicator,
                meta: Meta::Http(m),
            } => (indicator, m),
            other => panic!("expected HTTP, got {other:?}"),
        }
    }

    #[test]
    fn get_request_fields() {
        let req = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
        let (ind, m) = http(probe(&CTX, req));
        assert_eq!(ind, "http.request");
        assert_eq!(m.http_method.as_deref(), Some("GET"));
        assert_eq!(m.url.as_deref(), Some("/index.html?q=1"));
        assert_eq!(m.hostname.as_deref(), Some("example.com"));
        assert_eq!(m.http_user_agent.as_deref(), Some("curl/8.5.0"));
        assert!(!m.connect && !m.websocket_upgrade);
    }

    #[test]
    fn connect_and_websocket() {
        let (_, m) = http(probe(
            &CTX,
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        ));
        assert!(m.connect);
        assert_eq!(m.url.as_deref(), Some("example.com:443"));
        let (_, m) = http(probe(
            &CTX,
            b"GET /chat HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        ));
        assert!(m.websocket_upgrade);
    }

    #[test]
    fn split_request_needs_more_then_matches() {
        let full = b"GET / HTTP/1.1\r\nHost: a.example\r\nUser-Agent: Mozilla/5.0 (iPhone)\r\n\r\n";
        assert_eq!(probe(&CTX, &full[..3]), Probe::NeedMore);
        assert_eq!(probe(&CTX, &full[..40]), Probe::NeedMore);
        let (_, m) = http(probe(&CTX, full));
        assert_eq!(m.http_user_agent.as_deref(), Some("Mozilla/5.0 (iPhone)"));
    }

    #[test]
    fn long_unfinished_headers_match_with_complete_lines() {
        let mut req = b"POST /upload HTTP/1.1\r\nHost: big.example\r\nCookie: ".to_vec();
        req.extend(std::iter::repeat_n(b'a', 3000));
        let (_, m) = http(probe(&CTX, &req));
        assert_eq!(m.hostname.as_deref(), Some("big.example"));
        assert_eq!(m.http_method.as_deref(), Some("POST"));
    }

    #[test]
    fn response_status() {
        let (ind, m) = http(probe(
            &CTX,
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        ));
        assert_eq!(ind, "http.response");
        assert_eq!(m.status, Some(404));
        assert_eq!(probe(&CTX, b"HTTP/1."), Probe::NeedMore);
    }

    #[test]
    fn rejects_other_protocols() {
        assert_eq!(
            probe(
                &CTX,
                b"OPTIONS rtsp://cam/stream RTSP/1.0\r\nCSeq: 1\r\n\r\n"
            ),
            Probe::NoMatch
        );
        assert_eq!(
            probe(
                &CTX,
                b"INVITE sip:bob@example.com SIP/2.0\r\nVia: x\r\n\r\n"
            ),
            Probe::NoMatch
        );
        assert_eq!(
            probe(&CTX, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Probe::NoMatch
        );
        assert_eq!(probe(&CTX, b"RTSP/1.0 200 OK\r\n\r\n"), Probe::NoMatch);
        assert_eq!(probe(&CTX, b"SSH-2.0-OpenSSH_9.6\r\n"), Probe::NoMatch);
        assert_eq!(
            probe(&CTX, &[0x16, 0x03, 0x01, 0x00, 0x05]),
            Probe::NoMatch
        );
    }
}
