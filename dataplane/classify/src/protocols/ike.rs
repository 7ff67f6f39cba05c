//! IKE identification (IKEv1, RFC 2408/2409; IKEv2, RFC 7296) on UDP, bare or behind the 4-byte
//! non-ESP marker used on the NAT-traversal port (RFC 3948).
//!
//! Owns: checking the 28-byte ISAKMP header (non-zero initiator SPI, version 1.0 or 2.0, a
//! registered exchange type, flags, length equal to the message) and walking the payload chain.
//! Decision: ESP-in-UDP (a non-zero SPI followed by ciphertext) is NOT reported: it has no
//! structure to check, so random datagrams would match. NAT keep-alives (one `0xff` byte) are
//! not reported either. The IKE exchange that precedes ESP-in-UDP on a flow identifies it.
//! Must not: look at ports (the marker is recognised wherever it appears).

use super::wire_int::{be16, be32, u8_at};
use crate::probe::{Meta, Probe, ProbeContext};
use portolan_packet::Transport;

const HEADER: usize = 28;

/// Probes one UDP datagram for an IKE message (IKE over TCP, RFC 8229, is not recognised).
pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe {
    if ctx.transport != Transport::Udp {
        return Probe::NoMatch;
    }
    if data.get(..4) == Some([0u8; 4].as_slice()) {
        if let Some(indicator) = judge(data.get(4..).unwrap_or_default()) {
            return Probe::Match {
                indicator,
                meta: Meta::None,
            };
        }
        return Probe::NoMatch;
    }
    match judge(data) {
        Some(indicator) => Probe::Match {
            indicator,
            meta: Meta::None,
        },
        None => Probe::NoMatch,
    }
}

/// One whole IKE message; the indicator names the version.
fn judge(m: &[u8]) -> Option<&'static str> {
    let ispi = m.get(..8)?;
    let rspi = m.get(8..16)?;
    let next = u8_at(m, 16)?;
    let version = u8_at(m, 17)?;
    let exchange = u8_at(m, 18)?;
    let flags = u8_at(m, 19)?;
    let msg_id = be32(m, 20)?;
    let len = usize::try_from(be32(m, 24)?).ok()?;
    if ispi.iter().all(|&b| b == 0) || len != m.len() || len < HEADER {
        return None;
    }
    let rspi_zero = rspi.iter().all(|&b| b == 0);
    match version {
        0x10 => {
            let exchange_ok = matches!(exchange, 1..=6 | 32 | 33);
            if !exchange_ok || flags & 0xf8 != 0 {
                return None;
            }
            // The responder SPI is zero only in the first message of Main/Aggressive mode.
            if rspi_zero && !(matches!(exchange, 2 | 4) && msg_id == 0) {
                return None;
            }
            if flags & 0x01 != 0 {
                // Encrypted: only the first payload type can be checked.
                return (1..=20).contains(&next).then_some("ike.v1");
            }
            walk(m, next, |t| (1..=20).contains(&t) || t == 130 || t == 131).then_some("ike.v1")
        }
        0x20 => {
            let exchange_ok = matches!(exchange, 34..=38 | 43 | 44);
            if !exchange_ok || flags & 0xc7 != 0 {
                return None;
            }
            if rspi_zero && !(exchange == 34 && msg_id == 0 && flags & 0x08 != 0) {
                return None;
            }
            walk(m, next, |t| (33..=55).contains(&t)).then_some("ike.v2")
        }
        _ => None,
    }
}

/// The generic payload chain after the header fills the message exactly; an IKEv2 SK payload
/// (46) or encrypted fragment (53) ends the chain with its own length covering the rest.
fn walk(m: &[u8], first: u8, ok: impl Fn(u8) -> bool) -> bool {
    let mut next = first;
    let mut off = HEADER;
    let mut payloads = 0;
    while next != 0 {
        if !ok(next) || payloads > 64 {
            return false;
        }
        let (Some(following), Some(plen)) = (u8_at(m, off), be16(m, off + 2)) else {
            return false;
        };
        let plen = usize::from(plen);
        if plen < 4 {
            return false;
        }
        off += plen;
        if off > m.len() {
            return false;
        }
        if next == 46 || next == 53 {
            return off == m.len();
        }
        next = following;
        payloads += 1;
    }
    off == m.len() && payloads > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{expect_match};

    const UDP: ProbeContext = ProbeContext::new(Transport::Udp, 500, 500);
    const TCP: ProbeContext = ProbeContext::new(Transport::Tcp, 500, 500);

    /// Header plus payloads given as (type, body length); lengths fixed up.
    fn message(
        version: u8,
        exchange: u8,
        flags: u8,
        rspi: [u8; 8],
        payloads: &[(u8, usize)],
    ) -> Vec<u8> {
        let mut m = vec![0x8f, 0x3a, 0x11, 0x02, 0x9c, 0x44, 0x71, 0x05];
        m.extend_from_slice(&rspi);
        m.push(payloads.first().map_or(0, |p| p.0));
        m.extend_from_slice(&[version, exchange, flags, 0, 0, 0, 0, 0, 0, 0, 0]);
        for (i, (_, body)) in payloads.iter().enumerate() {
            let next = payloads.get(i + 1).map_or(0, |p| p.0);
            m.push(next);
            m.push(0);
            m.extend_from_slice(&((body + 4) as u16).to_be_bytes());
            m.extend(std::iter::repeat_n(0x42, *body));
        }
        let len = m.len() as u32;
        m[24..28].copy_from_slice(&len.to_be_bytes());
        m
    }

    #[test]
    fn ikev2_sa_init_and_natt() {
        let m = message(
            0x20,
            34,
            0x08,
            [0; 8],
            &[(33, 44), (34, 132), (40, 32), (41, 24), (41, 24)],
        );
        assert_eq!(
            probe(&UDP, &m),
            Probe::Match {
                indicator: "ike.v2",
                meta: Meta::None
            }
        );
        let mut natt = vec![0, 0, 0, 0];
        natt.extend_from_slice(&m);
        expect_match(probe(&UDP, &natt));
        // IKE_AUTH: SK payload.
        let a = message(0x20, 35, 0x08, [7; 8], &[(46, 300)]);
        expect_match(probe(&UDP, &a));
    }

    #[test]
    fn ikev1_main_mode_and_encrypted() {
        let m = message(0x10, 2, 0, [0; 8], &[(1, 52), (13, 16), (13, 16)]);
        assert_eq!(
            probe(&UDP, &m),
            Probe::Match {
                indicator: "ike.v1",
                meta: Meta::None
            }
        );
        let mut e = message(0x10, 5, 0x01, [3; 8], &[]);
        e[16] = 8;
        e.extend_from_slice(&[0x99; 32]);
        let len = e.len() as u32;
        e[24..28].copy_from_slice(&len.to_be_bytes());
        expect_match(probe(&UDP, &e));
    }

    #[test]
    fn rejections() {
        let good = message(0x20, 34, 0x08, [0; 8], &[(33, 44)]);
        let mut bad_len = good.clone();
        bad_len.push(0);
        let mut bad_version = good.clone();
        bad_version[17] = 0x30;
        let mut zero_ispi = good.clone();
        zero_ispi[..8].fill(0);
        let mut bad_exchange = good.clone();
        bad_exchange[18] = 99;
        let mut rspi_zero_auth = good.clone();
        rspi_zero_auth[18] = 35;
        let mut bad_chain = good.clone();
        bad_chain[30..32].copy_from_slice(&[0, 100]);
        for d in [
            &bad_len,
            &bad_version,
            &zero_ispi,
            &bad_exchange,
            &rspi_zero_auth,
            &bad_chain,
        ] {
            assert_eq!(probe(&UDP, d), Probe::NoMatch);
        }
        assert_eq!(probe(&TCP, &good), Probe::NoMatch);
        // ESP-in-UDP and keep-alive.
        let mut esp = vec![0x0a, 0x1b, 0x2c, 0x3d, 0, 0, 0, 1];
        esp.extend_from_slice(&[0x5e; 80]);
        assert_eq!(probe(&UDP, &esp), Probe::NoMatch);
        assert_eq!(probe(&UDP, &[0xff]), Probe::NoMatch);
    }
}
