//! STUN identification (RFC 8489/5389 with the magic cookie, and the classic RFC 3489 shape),
//! over UDP or TCP, including TURN (RFC 8656) methods.
//!
//! Owns: validating the 20-byte header (top bits zero, length a multiple of 4, cookie) and
//! walking the attributes so that they exactly fill the stated length. Must not: accept TURN
//! ChannelData (a 2-byte channel and a length; too little to tell apart from other traffic) or
//! a classic message whose attributes are not RFC 3489 ones.

use super::wire_int::{be16, be32};
use crate::probe::{Meta, Probe, ProbeContext};
use portolan_packet::Transport;

const HEADER: usize = 20;
const MAGIC_COOKIE: u32 = 0x2112_a442;
/// Bound on a STUN message (RFC 8489 recommends fitting the path MTU; TCP allows more).
const MAX_MESSAGE: usize = 16 * 1024;

/// Probes one datagram or the first bytes of a TCP direction for a STUN message.
pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe {
    let Some(msg_type) = be16(data, 0) else {
        return need_more_tcp(ctx, data);
    };
    if msg_type & 0xc000 != 0 {
        return Probe::NoMatch;
    }
    let Some(len) = be16(data, 2) else {
        return need_more_tcp(ctx, data);
    };
    let len = usize::from(len);
    if len % 4 != 0 || len > MAX_MESSAGE {
        return Probe::NoMatch;
    }
    let Some(cookie) = be32(data, 4) else {
        return need_more_tcp(ctx, data);
    };
    let total = HEADER + len;
    let body = match ctx.transport {
        Transport::Udp if data.len() != total => return Probe::NoMatch,
        Transport::Tcp if data.len() < total => {
            return if cookie == MAGIC_COOKIE {
                Probe::NeedMore
            } else {
                Probe::NoMatch
            };
        }
        _ => data.get(HEADER..total).unwrap_or_default(),
    };
    if cookie == MAGIC_COOKIE {
        if walk_attributes(body, |_| true) {
            return Probe::Match {
                indicator: "stun.message",
                meta: Meta::None,
            };
        }
        return Probe::NoMatch;
    }
    // RFC 3489: Binding and Shared Secret requests/responses, classic attributes only.
    let classic_type = matches!(
        msg_type,
        0x0001 | 0x0101 | 0x0111 | 0x0002 | 0x0102 | 0x0112
    );
    if classic_type
        && (len > 0 || msg_type == 0x0001)
        && walk_attributes(body, |t| (0x0001..=0x000b).contains(&t))
    {
        return Probe::Match {
            indicator: "stun.classic",
            meta: Meta::None,
        };
    }
    Probe::NoMatch
}

/// Over TCP a header may arrive in pieces; over UDP a short datagram is not STUN.
fn need_more_tcp(ctx: &ProbeContext, data: &[u8]) -> Probe {
    let top_ok = data.first().is_none_or(|b| b & 0xc0 == 0);
    if ctx.transport == Transport::Tcp && !data.is_empty() && top_ok {
        Probe::NeedMore
    } else {
        Probe::NoMatch
    }
}

/// Attributes (type, length, value padded to 4) fill `body` exactly; every type passes `ok`.
fn walk_attributes(body: &[u8], ok: impl Fn(u16) -> bool) -> bool {
    let mut off = 0;
    while off < body.len() {
        let (Some(t), Some(l)) = (be16(body, off), be16(body, off + 2)) else {
            return false;
        };
        if !ok(t) {
            return false;
        }
        let padded = (usize::from(l) + 3) & !3;
        off += 4 + padded;
    }
    off == body.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_match, expect_match};

    const UDP: ProbeContext = ProbeContext::new(Transport::Udp, 50000, 3478);
    const TCP: ProbeContext = ProbeContext::new(Transport::Tcp, 50000, 3478);

    /// Binding request with SOFTWARE ("abc", padded) and FINGERPRINT.
    fn binding_request() -> Vec<u8> {
        let mut m = vec![0x00, 0x01, 0x00, 0x10, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&[
            0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
        ]);
        m.extend_from_slice(&[0x80, 0x22, 0x00, 0x03, b'a', b'b', b'c', 0x00]);
        m.extend_from_slice(&[0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf]);
        m
    }

    #[test]
    fn rfc5389_binding() {
        let m = binding_request();
        assert_eq!(
            probe(&UDP, &m),
            Probe::Match {
                indicator: "stun.message",
                meta: Meta::None
            }
        );
        expect_match(probe(&TCP, &m));
        assert_eq!(probe(&TCP, &m[..24]), Probe::NeedMore);
        // A bare 20-byte binding request.
        expect_match(probe(
                &UDP,
                &m[..20]
                    .iter()
                    .enumerate()
                    .map(|(i, &b)| if i == 3 { 0 } else { b })
                    .collect::<Vec<_>>()
            ));
    }

    #[test]
    fn classic_binding() {
        let mut m = vec![0x00, 0x01, 0x00, 0x08];
        m.extend_from_slice(&[0x5a; 16]);
        m.extend_from_slice(&[0x00, 0x03, 0x00, 0x04, 0, 0, 0, 0]);
        assert_match(probe(&UDP, &m), "stun.classic");
        let mut bare = vec![0x00, 0x01, 0x00, 0x00];
        bare.extend_from_slice(&[0x33; 16]);
        expect_match(probe(&UDP, &bare));
    }

    #[test]
    fn rejections() {
        let mut m = binding_request();
        m[3] = 0x14; // length disagrees
        assert_eq!(probe(&UDP, &m), Probe::NoMatch);
        let mut m = binding_request();
        m.truncate(m.len() - 1);
        assert_eq!(probe(&UDP, &m), Probe::NoMatch);
        let mut m = binding_request();
        m[23] = 0x0d; // attribute overruns the message
        assert_eq!(probe(&UDP, &m), Probe::NoMatch);
        // Classic type with a modern attribute.
        let mut c = vec![0x00, 0x01, 0x00, 0x08];
        c.extend_from_slice(&[0x5a; 16]);
        c.extend_from_slice(&[0x80, 0x22, 0x00, 0x04, 0, 0, 0, 0]);
        assert_eq!(probe(&UDP, &c), Probe::NoMatch);
        // ChannelData.
        assert_eq!(
            probe(&UDP, &[0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4]),
            Probe::NoMatch
        );
        assert_eq!(probe(&UDP, &[0x1b; 48]), Probe::NoMatch);
        assert_eq!(
            probe(&UDP, b"GET / HTTP/1.1\r\n\r\n"),
            Probe::NoMatch
        );
    }
}
