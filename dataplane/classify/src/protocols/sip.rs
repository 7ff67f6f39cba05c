//! SIP identification (RFC 3261 and method extensions) over UDP or TCP: a request line
//! `METHOD sip:uri SIP/2.0` with a registered method, or a status line `SIP/2.0 NNN reason`.
//!
//! Owns: recognising those first lines and reporting the request-URI host. Must not: accept a
//! request whose URI is not `sip:`/`sips:`/`tel:`, or keep-alive CRLFs.

use super::text_line::{first_line, starts_with_ci, Line};
use crate::probe::{Meta, Probe, ProbeContext};

const MAX_LINE: usize = 4096;

/// Registered SIP methods (IANA "SIP Parameters", Methods and Response Codes).
const METHODS: &[&[u8]] = &[
    b"INVITE",
    b"ACK",
    b"BYE",
    b"CANCEL",
    b"REGISTER",
    b"OPTIONS",
    b"PRACK",
    b"SUBSCRIBE",
    b"NOTIFY",
    b"PUBLISH",
    b"INFO",
    b"REFER",
    b"MESSAGE",
    b"UPDATE",
];

/// Probes one datagram or the first bytes of a TCP direction for a SIP start line.
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
    if let Some(rest) = line.strip_prefix(b"SIP/2.0 ") {
        let code_ok = rest
            .get(..3)
            .is_some_and(|c| c.iter().all(u8::is_ascii_digit))
            && matches!(rest.first(), Some(b'1'..=b'6'))
            && matches!(rest.get(3), None | Some(b' '));
        return if code_ok {
            Probe::Match {
                indicator: "sip.response",
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
    if !METHODS.contains(&method) || version != b"SIP/2.0" {
        return Probe::NoMatch;
    }
    let Some(host) = uri_host(uri) else {
        return Probe::NoMatch;
    };
    let meta = if host.is_empty() {
        Meta::None
    } else {
        Meta::Name(String::from_utf8_lossy(host).into_owned())
    };
    Probe::Match {
        indicator: "sip.request",
        meta,
    }
}

/// The host part of a `sip:`/`sips:` URI (empty for `tel:`); `None` if the scheme is wrong.
fn uri_host(uri: &[u8]) -> Option<&[u8]> {
    if starts_with_ci(uri, b"tel:") {
        return Some(&[]);
    }
    let rest = if starts_with_ci(uri, b"sips:") {
        uri.get(5..)?
    } else if starts_with_ci(uri, b"sip:") {
        uri.get(4..)?
    } else {
        return None;
    };
    let rest = match rest.iter().position(|&b| b == b'@') {
        Some(at) => rest.get(at + 1..)?,
        None => rest,
    };
    let host = if rest.first() == Some(&b'[') {
        rest.get(1..rest.iter().position(|&b| b == b']')?)?
    } else {
        let end = rest
            .iter()
            .position(|&b| matches!(b, b':' | b';' | b'?' | b'>'))
            .unwrap_or(rest.len());
        rest.get(..end)?
    };
    (!host.is_empty()).then_some(host)
}

/// The unfinished line can still become a SIP start line.
fn partial_ok(data: &[u8]) -> bool {
    if data.starts_with(b"SIP/2.0 ") || b"SIP/2.0 ".starts_with(data) {
        return true;
    }
    let (method, rest) = match data.iter().position(|&b| b == b' ') {
        Some(i) => (
            data.get(..i).unwrap_or_default(),
            data.get(i + 1..).unwrap_or_default(),
        ),
        None => return METHODS.iter().any(|m| m.starts_with(data)),
    };
    METHODS.contains(&method)
        && (starts_with_ci(rest, b"sip")
            || starts_with_ci(rest, b"tel:")
            || b"sip".starts_with(rest))
        && data.len() < 1024
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_packet::Transport;
    use crate::test_support::{assert_match};

    const CTX: ProbeContext = ProbeContext::new(Transport::Udp, 5060, 5060);

    #[test]
    fn requests_and_responses() {
        let d = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\nVia: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\nMax-Forwards: 70\r\n\r\n";
        assert_eq!(
            probe(&CTX, d),
            Probe::Match {
                indicator: "sip.request",
                meta: Meta::Name("biloxi.example.com".into())
            }
        );
        let d = b"REGISTER sip:10.0.0.1:5060;transport=udp SIP/2.0\r\n\r\n";
        assert_eq!(
            probe(&CTX, d),
            Probe::Match {
                indicator: "sip.request",
                meta: Meta::Name("10.0.0.1".into())
            }
        );
        let d = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.2\r\n\r\n";
        assert_match(probe(&CTX, d), "sip.response");
        let d = b"OPTIONS sip:[2001:db8::1]:5060 SIP/2.0\r\n\r\n";
        assert_eq!(
            probe(&CTX, d),
            Probe::Match {
                indicator: "sip.request",
                meta: Meta::Name("2001:db8::1".into())
            }
        );
    }

    #[test]
    fn partial_and_rejections() {
        assert_eq!(probe(&CTX, b"INVITE sip:bob@exa"), Probe::NeedMore);
        assert_eq!(probe(&CTX, b"SIP/2"), Probe::NeedMore);
        for d in [
            &b"\r\n\r\n"[..],
            b"INVITE http://example.com SIP/2.0\r\n",
            b"DESCRIBE rtsp://a/b RTSP/1.0\r\n",
            b"GET / HTTP/1.1\r\n",
            b"SIP/2.0 abc\r\n",
            b"FOO sip:a SIP/2.0\r\n",
            b"\x00\x01\x00\x00\x21\x12\xa4\x42",
        ] {
            assert_eq!(probe(&CTX, d), Probe::NoMatch, "{d:?}");
        }
    }
}
