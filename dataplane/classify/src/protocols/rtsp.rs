//! RTSP identification (RFC 2326, RFC 7826): a request line `METHOD URI RTSP/1.0` (or 2.0) and a
//! status line `RTSP/1.0 NNN reason`.
//!
//! Owns: recognising those first lines and reporting the host of an `rtsp://` request URI.
//! Must not: accept HTTP (same syntax, different version token); methods are any upper-case
//! token because AirPlay and vendors extend the set, the version token is what decides.

use super::text_line::{first_line, Line};
use crate::probe::{Meta, Probe, ProbeContext};

const MAX_LINE: usize = 4096;

/// Probes the first bytes of one direction for an RTSP request or status line.
pub fn probe(_ctx: &ProbeContext, data: &[u8]) -> Probe {
    let line = match first_line(data, MAX_LINE) {
        Line::Complete(line) => line,
        Line::Invalid => return Probe::NoMatch,
        Line::Partial => {
            return if partial_ok(data) {
                Probe::NeedMore
            } else {
                Probe::NoMatch
            }
        }
    };
    if let Some(rest) = line.strip_prefix(b"RTSP/") {
        return if status_ok(rest) {
            Probe::Match {
                indicator: "rtsp.response",
                meta: Meta::None,
            }
        } else {
            Probe::NoMatch
        };
    }
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Probe::NoMatch;
    };
    if !method_ok(method) || uri.is_empty() || !matches!(version, b"RTSP/1.0" | b"RTSP/2.0") {
        return Probe::NoMatch;
    }
    let meta = uri_host(uri)
        .map(|h| Meta::Name(String::from_utf8_lossy(h).into_owned()))
        .unwrap_or_default();
    Probe::Match {
        indicator: "rtsp.request",
        meta,
    }
}

/// `1.0 200 OK`: version, a three-digit code, then a space or the end.
fn status_ok(rest: &[u8]) -> bool {
    (rest.starts_with(b"1.0 ") || rest.starts_with(b"2.0 "))
        && rest
            .get(4..7)
            .is_some_and(|c| c.iter().all(u8::is_ascii_digit))
        && matches!(rest.get(7), None | Some(b' '))
}

/// An upper-case token of 3..=20 letters or `_`.
fn method_ok(m: &[u8]) -> bool {
    (3..=20).contains(&m.len()) && m.iter().all(|&b| b.is_ascii_uppercase() || b == b'_')
}

/// The host of `rtsp://host[:port]/...` (or `rtsps://`, `rtspu://`).
fn uri_host(uri: &[u8]) -> Option<&[u8]> {
    let lower = |p: &[u8]| {
        uri.get(..p.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(p))
    };
    let rest = [&b"rtsp://"[..], b"rtsps://", b"rtspu://"]
        .into_iter()
        .find(|p| lower(p))
        .and_then(|p| uri.get(p.len()..))?;
    let rest = match rest.iter().position(|&b| b == b'@') {
        Some(at) if rest.iter().position(|&b| b == b'/').is_none_or(|s| at < s) => {
            rest.get(at + 1..)?
        }
        _ => rest,
    };
    let host = if rest.first() == Some(&b'[') {
        rest.get(1..rest.iter().position(|&b| b == b']')?)?
    } else {
        let end = rest
            .iter()
            .position(|&b| matches!(b, b':' | b'/' | b'?'))
            .unwrap_or(rest.len());
        rest.get(..end)?
    };
    (!host.is_empty()).then_some(host)
}

/// The unfinished line can still become a request or status line.
fn partial_ok(data: &[u8]) -> bool {
    if data.starts_with(b"RTSP/") || b"RTSP/".starts_with(data) {
        return true;
    }
    // A method token, then a URI: wait only while a version could still follow.
    let mut parts = data.split(|&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    method_ok(method) && parts.count() <= 2 && data.len() < 1024
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_packet::Transport;
    use crate::test_support::{assert_match};

    const CTX: ProbeContext = ProbeContext::new(Transport::Tcp, 40000, 554);

    #[test]
    fn requests_and_responses() {
        let d = b"OPTIONS rtsp://192.168.1.64:554/Streaming/Channels/101 RTSP/1.0\r\nCSeq: 2\r\nUser-Agent: LibVLC/3.0.18\r\n\r\n";
        assert_eq!(
            probe(&CTX, d),
            Probe::Match {
                indicator: "rtsp.request",
                meta: Meta::Name("192.168.1.64".into())
            }
        );
        let d = b"DESCRIBE rtsp://admin:pw@cam.example.net/live RTSP/1.0\r\nCSeq: 3\r\n\r\n";
        assert_eq!(
            probe(&CTX, d),
            Probe::Match {
                indicator: "rtsp.request",
                meta: Meta::Name("cam.example.net".into())
            }
        );
        let d = b"POST /pair-setup RTSP/1.0\r\nCSeq: 0\r\n\r\n";
        assert_eq!(
            probe(&CTX, d),
            Probe::Match {
                indicator: "rtsp.request",
                meta: Meta::None
            }
        );
        let d = b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY\r\n\r\n";
        assert_match(probe(&CTX, d), "rtsp.response");
    }

    #[test]
    fn partial_and_rejections() {
        assert_eq!(probe(&CTX, b"PLAY rtsp://a/b RT"), Probe::NeedMore);
        assert_eq!(probe(&CTX, b"RTS"), Probe::NeedMore);
        for d in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"INVITE sip:bob@example.com SIP/2.0\r\n",
            b"RTSP/1.0 abc\r\n",
            b"play rtsp://a/b RTSP/1.0\r\n",
            b"\x16\x03\x01\x00\x10",
        ] {
            assert_eq!(probe(&CTX, d), Probe::NoMatch, "{d:?}");
        }
    }
}
