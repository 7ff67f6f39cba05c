//! WireGuard identification: the four message types of the WireGuard protocol, each a type byte
//! and three zero reserved bytes with a fixed or constrained length (handshake initiation 148,
//! response 92, cookie reply 64, transport data at least 32 and a multiple of 16).
//!
//! Owns: those shape checks over UDP. Must not: run over TCP (WireGuard is UDP only) or accept a
//! handshake message whose sender index is zero.

use super::wire_int::le32;
use crate::probe::{Meta, Probe, ProbeContext};
use portolan_packet::Transport;

/// Probes one UDP datagram for a WireGuard message.
pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe {
    if ctx.transport != Transport::Udp || data.get(1..4) != Some([0u8, 0, 0].as_slice()) {
        return Probe::NoMatch;
    }
    let index_nonzero = le32(data, 4).is_some_and(|i| i != 0);
    let indicator = match (data.first(), data.len()) {
        (Some(1), 148) if index_nonzero => "wireguard.handshake_initiation",
        (Some(2), 92) if index_nonzero && le32(data, 8).is_some_and(|i| i != 0) => {
            "wireguard.handshake_response"
        }
        (Some(3), 64) if index_nonzero => "wireguard.cookie_reply",
        (Some(4), n) if n >= 32 && n % 16 == 0 && index_nonzero => "wireguard.transport",
        _ => return Probe::NoMatch,
    };
    Probe::Match {
        indicator,
        meta: Meta::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_match, expect_match};

    const UDP: ProbeContext = ProbeContext::new(Transport::Udp, 50000, 51820);
    const TCP: ProbeContext = ProbeContext::new(Transport::Tcp, 50000, 51820);

    fn msg(t: u8, len: usize) -> Vec<u8> {
        let mut m = vec![t, 0, 0, 0, 0x5d, 0x1c, 0x9e, 0x02, 0x11, 0x22, 0x33, 0x44];
        m.resize(len, 0xab);
        m
    }

    #[test]
    fn all_message_types() {
        assert_match(probe(&UDP, &msg(1, 148)), "wireguard.handshake_initiation");
        expect_match(probe(&UDP, &msg(2, 92)));
        expect_match(probe(&UDP, &msg(3, 64)));
        assert_match(probe(&UDP, &msg(4, 32)), "wireguard.transport");
        expect_match(probe(&UDP, &msg(4, 1440)));
    }

    #[test]
    fn rejections() {
        assert_eq!(probe(&UDP, &msg(1, 149)), Probe::NoMatch);
        assert_eq!(probe(&UDP, &msg(4, 40)), Probe::NoMatch);
        assert_eq!(probe(&UDP, &msg(5, 64)), Probe::NoMatch);
        assert_eq!(probe(&TCP, &msg(1, 148)), Probe::NoMatch);
        let mut m = msg(1, 148);
        m[2] = 1;
        assert_eq!(probe(&UDP, &m), Probe::NoMatch);
        let mut m = msg(1, 148);
        m[4..8].fill(0);
        assert_eq!(probe(&UDP, &m), Probe::NoMatch);
        assert_eq!(probe(&UDP, &[0x1b; 48]), Probe::NoMatch);
    }
}
