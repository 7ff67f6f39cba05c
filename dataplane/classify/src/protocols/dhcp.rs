//! DHCP identification: DHCPv4 (RFC 2131: BOOTP header with the magic cookie and a DHCP Message
//! Type option) and DHCPv6 (RFC 8415: client/server and relay messages), both over UDP.
//!
//! Owns: the BOOTP header checks, walking DHCPv4 options to the End option, walking DHCPv6
//! options exactly to the end with the options each message type must carry; the DHCPv4 Host
//! Name option is reported. Must not: accept plain BOOTP without a message type, or DHCPv6
//! messages without their required identifiers.

use super::wire_int::{be16, u8_at};
use crate::probe::{Meta, Probe, ProbeContext};
use portolan_packet::Transport;

const MAGIC_COOKIE: [u8; 4] = [0x63, 0x82, 0x53, 0x63];

/// Probes one UDP datagram for a DHCPv4 or DHCPv6 message.
pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe {
    if ctx.transport != Transport::Udp {
        return Probe::NoMatch;
    }
    if let Some(host) = dhcpv4(data) {
        return Probe::Match {
            indicator: "dhcp.v4",
            meta: host
                .map(|h| Meta::Name(String::from_utf8_lossy(h).into_owned()))
                .unwrap_or_default(),
        };
    }
    if dhcpv6(data) {
        return Probe::Match {
            indicator: "dhcp.v6",
            meta: Meta::None,
        };
    }
    Probe::NoMatch
}

/// A DHCPv4 message: `Some(host name option)` when valid.
fn dhcpv4(d: &[u8]) -> Option<Option<&[u8]>> {
    let (op, htype, hlen, hops) = (u8_at(d, 0)?, u8_at(d, 1)?, u8_at(d, 2)?, u8_at(d, 3)?);
    if !matches!(op, 1 | 2) || !matches!(htype, 1 | 6) || hlen != 6 || hops > 16 {
        return None;
    }
    if d.get(236..240)? != MAGIC_COOKIE {
        return None;
    }
    let mut off = 240;
    let mut msg_type = None;
    let mut host = None;
    loop {
        let code = u8_at(d, off)?;
        match code {
            0 => off += 1,
            255 => break,
            _ => {
                let len = usize::from(u8_at(d, off + 1)?);
                let value = d.get(off + 2..off + 2 + len)?;
                match code {
                    53 if len == 1 => msg_type = value.first().copied(),
                    53 => return None,
                    12 if !value.is_empty() => {
                        host = Some(value.strip_suffix(b"\0").unwrap_or(value))
                    }
                    _ => {}
                }
                off += 2 + len;
            }
        }
    }
    // Client messages travel in BOOTREQUESTs (op 1), server messages in BOOTREPLYs (op 2).
    let type_ok = matches!(
        (op, msg_type?),
        (1, 1 | 3 | 4 | 7 | 8 | 10 | 14 | 15 | 18) | (2, 2 | 5 | 6 | 11 | 12 | 13 | 16 | 17)
    );
    type_ok
        .then_some(host.filter(|h| !h.is_empty() && h.iter().all(|&b| (0x20..0x7f).contains(&b))))
}

/// A DHCPv6 message (RFC 8415 section 8/9) with its options filling the datagram exactly.
fn dhcpv6(d: &[u8]) -> bool {
    let Some(t) = u8_at(d, 0) else { return false };
    let start = match t {
        1..=11 => 4,
        12 | 13 => {
            // Relay-forward/reply: hop count, link address, peer address.
            if u8_at(d, 1).is_none_or(|h| h > 32) {
                return false;
            }
            34
        }
        _ => return false,
    };
    let mut seen = [false; 4]; // client id (1), server id (2), elapsed time (8), relay message (9)
    let mut off = start;
    let mut options = 0;
    while off < d.len() {
        let (Some(code), Some(len)) = (be16(d, off), be16(d, off + 2)) else {
            return false;
        };
        if code == 0 || code > 150 {
            return false;
        }
        let len = usize::from(len);
        match code {
            1 => seen[0] = len >= 4,
            2 => seen[1] = len >= 4,
            8 => seen[2] = len == 2,
            9 => seen[3] = len >= 4,
            _ => {}
        }
        off += 4 + len;
        options += 1;
    }
    if off != d.len() || options == 0 {
        return false;
    }
    let [client_id, server_id, elapsed, relay_msg] = seen;
    match t {
        // Client messages carry Elapsed Time; all but Information-request carry the client ID.
        1 | 3 | 4 | 5 | 6 | 8 | 9 => client_id && elapsed,
        11 => elapsed,
        // Server messages carry the server ID (and the client's ID when it sent one).
        2 | 7 | 10 => server_id,
        _ => relay_msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: ProbeContext = ProbeContext::new(Transport::Udp, 68, 67);

    fn discover(options: &[u8]) -> Vec<u8> {
        let mut d = vec![1, 1, 6, 0, 0x3d, 0x1d, 0x7a, 0x12];
        d.resize(28, 0);
        d.extend_from_slice(&[0x00, 0x0c, 0x29, 0x3a, 0x4b, 0x5c]);
        d.resize(236, 0);
        d.extend_from_slice(&MAGIC_COOKIE);
        d.extend_from_slice(options);
        d
    }

    #[test]
    fn dhcpv4_discover_with_host_name() {
        let d = discover(b"\x35\x01\x01\x0c\x06iPhone\x37\x03\x01\x03\x06\xff\x00\x00");
        assert_eq!(
            probe(&CTX, &d),
            Probe::Match {
                indicator: "dhcp.v4",
                meta: Meta::Name("iPhone".into())
            }
        );
        let d = discover(b"\x35\x01\x03\xff");
        assert_eq!(
            probe(&CTX, &d),
            Probe::Match {
                indicator: "dhcp.v4",
                meta: Meta::None
            }
        );
    }

    #[test]
    fn dhcpv6_solicit() {
        let mut d = vec![1, 0x9a, 0x4f, 0x11];
        d.extend_from_slice(&[
            0, 1, 0, 14, 0, 1, 0, 1, 0x2a, 0x1b, 0x3c, 0x4d, 0, 0x0c, 0x29, 0x3a, 0x4b, 0x5c,
        ]);
        d.extend_from_slice(&[0, 8, 0, 2, 0, 0]);
        d.extend_from_slice(&[0, 3, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            probe(&CTX, &d),
            Probe::Match {
                indicator: "dhcp.v6",
                meta: Meta::None
            }
        );
        d.pop();
        assert_eq!(probe(&CTX, &d), Probe::NoMatch);
    }

    #[test]
    fn rejections() {
        // BOOTP without a message type, wrong cookie, no End option, type/op mismatch.
        let no_type = discover(b"\x0c\x02ab\xff");
        let mut bad_cookie = discover(b"\x35\x01\x01\xff");
        bad_cookie[236] = 0;
        let no_end = discover(b"\x35\x01\x01");
        let mismatch = discover(b"\x35\x01\x05\xff");
        for d in [&no_type, &bad_cookie, &no_end, &mismatch] {
            assert_eq!(probe(&CTX, d), Probe::NoMatch);
        }
        // DHCPv6 Solicit without Elapsed Time.
        let d = [1u8, 0x9a, 0x4f, 0x11, 0, 1, 0, 4, 1, 2, 3, 4];
        assert_eq!(probe(&CTX, &d), Probe::NoMatch);
        assert_eq!(probe(&CTX, &[0x1b; 48]), Probe::NoMatch);
        let tcp = ProbeContext::new(Transport::Tcp, 68, 67);
        assert_eq!(probe(&tcp, &discover(b"\x35\x01\x01\xff")), Probe::NoMatch);
    }
}
