//! OpenVPN identification: the first control packet of a session, `P_CONTROL_HARD_RESET_CLIENT_V2`
//! / `_V3` from the client or `P_CONTROL_HARD_RESET_SERVER_V2` from the server, over UDP or over
//! TCP (each packet prefixed by a 2-byte length).
//!
//! Owns: checking the opcode/key-id byte, a non-zero session ID, and the packet-ID layout for the
//! three wrappings of the control channel: plain, `tls-auth` (HMAC of 16/20/32/64 bytes, then
//! replay packet-ID and time) and `tls-crypt`/`tls-crypt-v2` (packet-ID and time, then a 32-byte
//! tag and ciphertext). Must not: accept data-channel packets or later control packets (a
//! session ID plus ciphertext is indistinguishable from random bytes).

use super::wire_int::{be16, be32, u8_at};
use crate::probe::{Meta, Probe, ProbeContext};
use portolan_packet::Transport;

const HARD_RESET_CLIENT_V2: u8 = 7;
const HARD_RESET_SERVER_V2: u8 = 8;
const HARD_RESET_CLIENT_V3: u8 = 10;
/// HMAC sizes `tls-auth` may use (MD5, SHA1, SHA256, SHA512).
const HMAC_SIZES: [usize; 4] = [16, 20, 32, 64];
/// 2001-09-09 and 2106: bounds for the `net_time` field (seconds since the Unix epoch).
const TIME_MIN: u32 = 1_000_000_000;
/// Largest packet the check accepts.
const MAX_PACKET: usize = 1600;

/// Probes one datagram or the first bytes of a TCP direction for an OpenVPN hard reset.
pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe {
    match ctx.transport {
        Transport::Udp => judge(data),
        Transport::Tcp => {
            let Some(len) = be16(data, 0) else {
                return if data.is_empty() {
                    Probe::NoMatch
                } else {
                    Probe::NeedMore
                };
            };
            let len = usize::from(len);
            if !(14..=MAX_PACKET).contains(&len) {
                return Probe::NoMatch;
            }
            match data.get(2..2 + len) {
                Some(packet) => judge(packet),
                None => {
                    let op = u8_at(data, 2).map(|b| b >> 3);
                    if op.is_none_or(|o| {
                        matches!(
                            o,
                            HARD_RESET_CLIENT_V2 | HARD_RESET_SERVER_V2 | HARD_RESET_CLIENT_V3
                        )
                    }) {
                        Probe::NeedMore
                    } else {
                        Probe::NoMatch
                    }
                }
            }
        }
    }
}

/// One whole packet.
fn judge(p: &[u8]) -> Probe {
    let Some(first) = u8_at(p, 0) else {
        return Probe::NoMatch;
    };
    let (opcode, key_id) = (first >> 3, first & 0x07);
    if key_id != 0 || p.len() > MAX_PACKET {
        return Probe::NoMatch;
    }
    let server = match opcode {
        HARD_RESET_CLIENT_V2 | HARD_RESET_CLIENT_V3 => false,
        HARD_RESET_SERVER_V2 => true,
        _ => return Probe::NoMatch,
    };
    let Some(session) = p.get(1..9) else {
        return Probe::NoMatch;
    };
    if session.iter().all(|&b| b == 0) {
        return Probe::NoMatch;
    }
    let shaped = plain(p, 9, server)
        || HMAC_SIZES
            .iter()
            .any(|&h| replay_ok(p, 9 + h) && plain(p, 9 + h + 8, server))
        || (replay_ok(p, 9) && p.len() >= 9 + 8 + 32 + 5);
    if shaped {
        Probe::Match {
            indicator: "openvpn.hard_reset",
            meta: Meta::None,
        }
    } else {
        Probe::NoMatch
    }
}

/// Replay protection at `off`: packet-ID 1..=15 and a plausible `net_time`.
fn replay_ok(p: &[u8], off: usize) -> bool {
    matches!(be32(p, off), Some(1..=15)) && be32(p, off + 4).is_some_and(|t| t >= TIME_MIN)
}

/// The cleartext control header at `off`: the ACK array (empty for the client's first packet,
/// one ACK of packet 0 plus the peer's session ID for the server's), then message packet-ID 0.
fn plain(p: &[u8], off: usize, server: bool) -> bool {
    match u8_at(p, off) {
        Some(0) if !server => be32(p, off + 1) == Some(0),
        Some(1) if server => {
            be32(p, off + 1) == Some(0)
                && p.get(off + 5..off + 13)
                    .is_some_and(|s| s.iter().any(|&b| b != 0))
                && be32(p, off + 13) == Some(0)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{expect_match};

    const UDP: ProbeContext = ProbeContext::new(Transport::Udp, 50000, 1194);
    const TCP: ProbeContext = ProbeContext::new(Transport::Tcp, 50000, 1194);

    const SID: [u8; 8] = [0x3f, 0x12, 0x9a, 0x01, 0x55, 0xc3, 0x7e, 0x20];

    fn plain_client() -> Vec<u8> {
        let mut p = vec![0x38];
        p.extend_from_slice(&SID);
        p.extend_from_slice(&[0, 0, 0, 0, 0]);
        p
    }

    #[test]
    fn plain_client_udp_and_tcp() {
        let p = plain_client();
        assert_eq!(
            probe(&UDP, &p),
            Probe::Match {
                indicator: "openvpn.hard_reset",
                meta: Meta::None
            }
        );
        let mut framed = (p.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&p);
        expect_match(probe(&TCP, &framed));
        assert_eq!(probe(&TCP, &framed[..6]), Probe::NeedMore);
    }

    #[test]
    fn tls_auth_sha1_client_and_plain_server() {
        let mut p = vec![0x38];
        p.extend_from_slice(&SID);
        p.extend_from_slice(&[0xa5; 20]);
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0, 0]);
        expect_match(probe(&UDP, &p));

        let mut s = vec![0x40];
        s.extend_from_slice(&[9; 8]);
        s.push(1);
        s.extend_from_slice(&[0, 0, 0, 0]);
        s.extend_from_slice(&SID);
        s.extend_from_slice(&[0, 0, 0, 0]);
        expect_match(probe(&UDP, &s));
    }

    #[test]
    fn tls_crypt_client() {
        let mut p = vec![0x38];
        p.extend_from_slice(&SID);
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        p.extend_from_slice(&[0x77; 32 + 5]);
        expect_match(probe(&UDP, &p));
    }

    #[test]
    fn rejections() {
        let mut p = plain_client();
        p[0] = 0x39; // key id 1
        assert_eq!(probe(&UDP, &p), Probe::NoMatch);
        let mut p = plain_client();
        p[0] = 0x30; // P_DATA_V1
        assert_eq!(probe(&UDP, &p), Probe::NoMatch);
        let mut p = plain_client();
        p[12] = 7; // message packet-id not 0
        assert_eq!(probe(&UDP, &p), Probe::NoMatch);
        let mut p = plain_client();
        p[1..9].fill(0);
        assert_eq!(probe(&UDP, &p), Probe::NoMatch);
        assert_eq!(probe(&UDP, &[0x38; 60]), Probe::NoMatch);
        assert_eq!(
            probe(&TCP, b"\x16\x03\x01\x00\x10"),
            Probe::NoMatch
        );
        assert_eq!(
            probe(&UDP, b"GET / HTTP/1.1\r\n\r\n"),
            Probe::NoMatch
        );
    }
}
