//! SOCKS identification: SOCKS4/4a requests (`04 cmd port ip user\0 [host\0]`) and their 8-byte
//! replies, SOCKS5 (RFC 1928) method-selection greetings, the server's 2-byte method choice, and
//! SOCKS5 requests.
//!
//! Owns: exact-length checks of those messages (each must be the whole payload, or a greeting
//! followed by exactly one request) and reporting the requested host name when one is given.
//! Must not: accept a message with trailing bytes, or a SOCKS5 username/password sub-negotiation
//! (`01 ulen ...` is too generic).

use super::wire_int::{be16, u8_at};
use crate::probe::{Meta, Probe, ProbeContext};
use portolan_packet::Transport;

/// Longest SOCKS4 user ID or SOCKS4a host name accepted.
const MAX_FIELD: usize = 255;

/// Probes the first bytes of one TCP direction for a SOCKS message.
pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe {
    if ctx.transport != Transport::Tcp {
        return Probe::NoMatch;
    }
    match data.first() {
        Some(4) => socks4_request(data),
        Some(5) => socks5(data),
        Some(0) if data.len() == 8 && matches!(data.get(1), Some(0x5a..=0x5d)) => Probe::Match {
            indicator: "socks.v4_reply",
            meta: Meta::None,
        },
        _ => Probe::NoMatch,
    }
}

/// `04 cmd(1|2) port(2) ip(4) userid\0`, SOCKS4a: ip `0.0.0.x` (x != 0) and `host\0` after.
fn socks4_request(d: &[u8]) -> Probe {
    if !matches!(u8_at(d, 1), Some(1 | 2) | None) {
        return Probe::NoMatch;
    }
    if d.len() < 9 {
        return if d.len() < 4 || be16(d, 2) != Some(0) {
            Probe::NeedMore
        } else {
            Probe::NoMatch
        };
    }
    let (Some(port), Some(ip)) = (be16(d, 2), d.get(4..8)) else {
        return Probe::NoMatch;
    };
    if port == 0 || ip.iter().all(|&b| b == 0) {
        return Probe::NoMatch;
    }
    let rest = d.get(8..).unwrap_or_default();
    let Some(user_end) = rest.iter().position(|&b| b == 0) else {
        return field_pending(rest);
    };
    if user_end > MAX_FIELD || !printable(rest.get(..user_end).unwrap_or_default()) {
        return Probe::NoMatch;
    }
    let after_user = rest.get(user_end + 1..).unwrap_or_default();
    let is_4a = ip.get(..3) == Some([0u8, 0, 0].as_slice());
    if !is_4a {
        return if after_user.is_empty() {
            Probe::Match {
                indicator: "socks.v4_request",
                meta: Meta::None,
            }
        } else {
            Probe::NoMatch
        };
    }
    let Some(host_end) = after_user.iter().position(|&b| b == 0) else {
        return field_pending(after_user);
    };
    let host = after_user.get(..host_end).unwrap_or_default();
    if host.is_empty()
        || host_end > MAX_FIELD
        || !hostname_ok(host)
        || host_end + 1 != after_user.len()
    {
        return Probe::NoMatch;
    }
    Probe::Match {
        indicator: "socks.v4a_request",
        meta: name(host),
    }
}

/// A NUL-terminated field still arriving.
fn field_pending(partial: &[u8]) -> Probe {
    if partial.len() <= MAX_FIELD && printable(partial) {
        Probe::NeedMore
    } else {
        Probe::NoMatch
    }
}

/// SOCKS5: greeting `05 n methods[n]` (optionally followed by a request), server choice
/// `05 method`, or a request `05 cmd 00 atyp addr port`.
fn socks5(d: &[u8]) -> Probe {
    let Some(second) = u8_at(d, 1) else {
        return Probe::NeedMore;
    };
    if d.len() == 2 {
        return match second {
            0x00 | 0x01 | 0x02 | 0xff => Probe::Match {
                indicator: "socks.v5_method",
                meta: Meta::None,
            },
            1..=9 => Probe::NeedMore,
            _ => Probe::NoMatch,
        };
    }
    // A request sent on its own.
    if let Some((host, used)) = socks5_request(d) {
        if used == d.len() {
            return Probe::Match {
                indicator: "socks.v5_request",
                meta: host.map(name).unwrap_or_default(),
            };
        }
    }
    let n = usize::from(second);
    if !(1..=10).contains(&n) {
        return Probe::NoMatch;
    }
    let Some(methods) = d.get(2..2 + n) else {
        return if d.iter().skip(2).all(|&m| method_ok(m)) {
            Probe::NeedMore
        } else {
            Probe::NoMatch
        };
    };
    if !methods.iter().all(|&m| method_ok(m)) {
        return Probe::NoMatch;
    }
    let after = d.get(2 + n..).unwrap_or_default();
    if after.is_empty() {
        return Probe::Match {
            indicator: "socks.v5_greeting",
            meta: Meta::None,
        };
    }
    match socks5_request(after) {
        Some((host, used)) if used == after.len() => Probe::Match {
            indicator: "socks.v5_greeting",
            meta: host.map(name).unwrap_or_default(),
        },
        _ => Probe::NoMatch,
    }
}

/// RFC 1928 methods: none, GSSAPI, username/password, IANA-assigned up to 0x09, private 0x80..=0xfe.
fn method_ok(m: u8) -> bool {
    matches!(m, 0x00..=0x09 | 0x80..=0xfe)
}

/// `05 cmd(1..=3) 00 atyp addr port`: the host name (for ATYP 3) and the bytes used.
fn socks5_request(d: &[u8]) -> Option<(Option<&[u8]>, usize)> {
    if u8_at(d, 0)? != 5 || !matches!(u8_at(d, 1)?, 1..=3) || u8_at(d, 2)? != 0 {
        return None;
    }
    let (host, addr_end) = match u8_at(d, 3)? {
        1 => (None, 8),
        4 => (None, 20),
        3 => {
            let n = usize::from(u8_at(d, 4)?);
            let host = d.get(5..5 + n)?;
            if n == 0 || !hostname_ok(host) {
                return None;
            }
            (Some(host), 5 + n)
        }
        _ => return None,
    };
    let port = be16(d, addr_end)?;
    (port != 0).then_some((host, addr_end + 2))
}

fn printable(b: &[u8]) -> bool {
    b.iter().all(|&c| (0x20..0x7f).contains(&c))
}

fn hostname_ok(h: &[u8]) -> bool {
    h.iter()
        .all(|&c| c.is_ascii_alphanumeric() || b"-._:".contains(&c))
}

fn name(host: &[u8]) -> Meta {
    Meta::Name(String::from_utf8_lossy(host).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_match, expect_match};

    const CTX: ProbeContext = ProbeContext::new(Transport::Tcp, 50000, 1080);

    #[test]
    fn socks4_and_4a() {
        let r = b"\x04\x01\x00\x50\x5d\xb8\xd8\x22alice\x00";
        assert_eq!(
            probe(&CTX, r),
            Probe::Match {
                indicator: "socks.v4_request",
                meta: Meta::None
            }
        );
        let r = b"\x04\x01\x01\xbb\x00\x00\x00\x01\x00www.example.com\x00";
        assert_eq!(
            probe(&CTX, r),
            Probe::Match {
                indicator: "socks.v4a_request",
                meta: Meta::Name("www.example.com".into())
            }
        );
        expect_match(probe(&CTX, b"\x00\x5a\x00\x00\x00\x00\x00\x00"));
        assert_eq!(
            probe(&CTX, b"\x04\x01\x00\x50\x5d\xb8\xd8\x22ali"),
            Probe::NeedMore
        );
    }

    #[test]
    fn socks5_exchange() {
        assert_match(probe(&CTX, b"\x05\x01\x00"), "socks.v5_greeting");
        expect_match(probe(&CTX, b"\x05\x02\x00\x02"));
        assert_match(probe(&CTX, b"\x05\x00"), "socks.v5_method");
        let req = b"\x05\x01\x00\x03\x0bexample.com\x01\xbb";
        assert_eq!(
            probe(&CTX, req),
            Probe::Match {
                indicator: "socks.v5_request",
                meta: Meta::Name("example.com".into())
            }
        );
        expect_match(probe(&CTX, b"\x05\x01\x00\x01\x0a\x00\x00\x01\x00\x16"));
        let both = b"\x05\x01\x00\x05\x01\x00\x03\x0bexample.com\x01\xbb";
        assert_eq!(
            probe(&CTX, both),
            Probe::Match {
                indicator: "socks.v5_greeting",
                meta: Meta::Name("example.com".into())
            }
        );
        assert_eq!(probe(&CTX, b"\x05"), Probe::NeedMore);
    }

    #[test]
    fn rejections() {
        for d in [
            &b"\x05\x01\x00\x00"[..],
            b"\x05\x00\x00",
            b"\x05\x03\x00\x01\x02\x7f",
            b"\x04\x03\x00\x50\x01\x02\x03\x04\x00",
            b"\x04\x01\x00\x00\x01\x02\x03\x04\x00",
            b"\x04\x01\x00\x50\x01\x02\x03\x04alice\x00junk",
            b"\x00\x5a\x00\x00",
            b"\x16\x03\x01\x00\x10",
            b"GET / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(probe(&CTX, d), Probe::NoMatch, "{d:?}");
        }
        let udp = ProbeContext::new(Transport::Udp, 50000, 1080);
        assert_eq!(probe(&udp, b"\x05\x01\x00"), Probe::NoMatch);
    }
}
