//! RDP identification ([MS-RDPBCGR] 2.2.1.1/2.2.1.2): a TPKT (RFC 1006) carrying an X.224
//! Connection Request with an RDP cookie, routing token or `RDP_NEG_REQ`, or a Connection Confirm
//! with an `RDP_NEG_RSP`/`RDP_NEG_FAILURE`; and over UDP ([MS-RDPEUDP] 2.2.2/3.1.5.1) the SYN
//! and SYN+ACK datagrams, which are padded to 1232 bytes and carry both MTUs (1132..=1232).
//!
//! Owns: checking TPKT version and length, the X.224 header, and the RDP-specific user data; the
//! `mstshash` cookie value is reported. Must not: accept a bare X.224 request/confirm (S7comm and
//! other ISO-TSAP protocols send those with TSAP parameters instead of RDP data).

use super::text_line::starts_with_ci;
use super::wire_int::{be16, be32, le16, le32, u8_at};
use crate::probe::{Meta, Probe, ProbeContext};
use portolan_packet::Transport;

const CR: u8 = 0xe0;
const CC: u8 = 0xd0;

/// Probes the first bytes of one TCP direction for an RDP connection request or confirm.
pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe {
    if ctx.transport == Transport::Udp {
        return udp_syn(data);
    }
    if data.first().is_some_and(|&b| b != 3) || data.get(1).is_some_and(|&b| b != 0) {
        return Probe::NoMatch;
    }
    let Some(len) = be16(data, 2) else {
        return if data.is_empty() {
            Probe::NoMatch
        } else {
            Probe::NeedMore
        };
    };
    let len = usize::from(len);
    if !(11..=1024).contains(&len) {
        return Probe::NoMatch;
    }
    let Some(pdu) = data.get(..len) else {
        return match u8_at(data, 5) {
            None | Some(CR) | Some(CC) => Probe::NeedMore,
            _ => Probe::NoMatch,
        };
    };
    // X.224: length indicator covers the rest of the TPDU.
    let (Some(li), Some(code)) = (u8_at(pdu, 4), u8_at(pdu, 5)) else {
        return Probe::NoMatch;
    };
    if usize::from(li) != len - 5 || u8_at(pdu, 10) != Some(0) {
        return Probe::NoMatch;
    }
    let user = pdu.get(11..).unwrap_or_default();
    match code {
        CR if be16(pdu, 6) == Some(0) => request(user),
        CC => confirm(user),
        _ => Probe::NoMatch,
    }
}

/// Connection Request user data: optional cookie or routing token line, optional `RDP_NEG_REQ`.
fn request(user: &[u8]) -> Probe {
    let mut rest = user;
    let mut cookie = None;
    let token =
        starts_with_ci(rest, b"Cookie: mstshash=") || starts_with_ci(rest, b"Cookie: msts=");
    if token {
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Probe::NoMatch;
        };
        let line = rest.get(..end).unwrap_or_default();
        if !line.iter().all(|&b| (0x20..0x7f).contains(&b)) {
            return Probe::NoMatch;
        }
        if starts_with_ci(line, b"Cookie: mstshash=") {
            cookie = line
                .get(17..)
                .map(|v| String::from_utf8_lossy(v).into_owned());
        }
        rest = rest.get(end + 2..).unwrap_or_default();
    }
    let neg = match rest.len() {
        0 => false,
        8 => neg_ok(rest, 0x01, |p| p <= 0x1f),
        // RDP_NEG_REQ followed by RDP_NEG_CORRELATION_INFO (type 0x06, length 36).
        44 => {
            neg_ok(rest, 0x01, |p| p <= 0x1f)
                && u8_at(rest, 8) == Some(0x06)
                && le16(rest, 10) == Some(36)
        }
        _ => return Probe::NoMatch,
    };
    if !(token || neg) {
        return Probe::NoMatch;
    }
    Probe::Match {
        indicator: "rdp.connection_request",
        meta: cookie
            .filter(|c| !c.is_empty())
            .map(Meta::Name)
            .unwrap_or_default(),
    }
}

/// Connection Confirm user data: `RDP_NEG_RSP` (type 2) or `RDP_NEG_FAILURE` (type 3).
fn confirm(user: &[u8]) -> Probe {
    let ok = user.len() == 8
        && (neg_ok(user, 0x02, |p| p <= 0x1f)
            || neg_ok(user, 0x03, |code| (1..=6).contains(&code)));
    if ok {
        Probe::Match {
            indicator: "rdp.connection_confirm",
            meta: Meta::None,
        }
    } else {
        Probe::NoMatch
    }
}

/// MS-RDPEUDP SYN (`snSourceAck` 0xFFFFFFFF) or SYN+ACK: RDPUDP_FEC_HEADER with the SYN flag, then
/// RDPUDP_SYNDATA_PAYLOAD whose upstream and downstream MTUs are 1132..=1232; 1232 bytes long.
fn udp_syn(d: &[u8]) -> Probe {
    const SYN: u16 = 0x0001;
    const ACK: u16 = 0x0004;
    const NOT_IN_SYN: u16 = 0x0002 | 0x0008 | 0x0010; // FIN, DATA, FEC
    let (Some(source_ack), Some(flags), Some(up), Some(down)) =
        (be32(d, 0), be16(d, 6), be16(d, 12), be16(d, 14))
    else {
        return Probe::NoMatch;
    };
    let mtu_ok = |m: u16| (1132..=1232).contains(&m);
    let syn =
        flags & SYN != 0 && flags & NOT_IN_SYN == 0 && (flags & ACK != 0 || source_ack == u32::MAX);
    if d.len() == 1232 && syn && mtu_ok(up) && mtu_ok(down) {
        Probe::Match {
            indicator: "rdp.udp_syn",
            meta: Meta::None,
        }
    } else {
        Probe::NoMatch
    }
}

/// An 8-byte negotiation structure of `kind`, length 8, whose last field passes `value_ok`.
fn neg_ok(b: &[u8], kind: u8, value_ok: impl Fn(u32) -> bool) -> bool {
    u8_at(b, 0) == Some(kind) && le16(b, 2) == Some(8) && le32(b, 4).is_some_and(value_ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_match, expect_match};

    const CTX: ProbeContext = ProbeContext::new(Transport::Tcp, 50000, 3389);

    fn tpkt(code: u8, user: &[u8]) -> Vec<u8> {
        let len = 11 + user.len();
        let mut v = vec![3, 0];
        v.extend_from_slice(&(len as u16).to_be_bytes());
        v.push((len - 5) as u8);
        v.push(code);
        v.extend_from_slice(&[0, 0, 0x12, 0x34, 0]);
        v.extend_from_slice(user);
        v
    }

    #[test]
    fn request_with_cookie_and_neg() {
        let d = tpkt(
            CR,
            b"Cookie: mstshash=alice\r\n\x01\x00\x08\x00\x03\x00\x00\x00",
        );
        assert_eq!(
            probe(&CTX, &d),
            Probe::Match {
                indicator: "rdp.connection_request",
                meta: Meta::Name("alice".into())
            }
        );
        let d = tpkt(CR, b"\x01\x00\x08\x00\x0b\x00\x00\x00");
        assert_eq!(
            probe(&CTX, &d),
            Probe::Match {
                indicator: "rdp.connection_request",
                meta: Meta::None
            }
        );
        let d = tpkt(CR, b"Cookie: mstshash=bob\r\n");
        expect_match(probe(&CTX, &d));
        assert_eq!(probe(&CTX, &d[..8]), Probe::NeedMore);
    }

    #[test]
    fn confirm() {
        let d = tpkt(CC, b"\x02\x1f\x08\x00\x02\x00\x00\x00");
        assert_match(probe(&CTX, &d), "rdp.connection_confirm");
        let d = tpkt(CC, b"\x03\x00\x08\x00\x05\x00\x00\x00");
        expect_match(probe(&CTX, &d));
    }

    #[test]
    fn udp_syn_and_syn_ack() {
        let udp = ProbeContext::new(Transport::Udp, 50000, 3389);
        let mut syn = vec![
            0xff, 0xff, 0xff, 0xff, 0x00, 0x40, 0x18, 0x01, 0xbb, 0xff, 0x56, 0x87, 0x04, 0xd0,
            0x04, 0xd0,
        ];
        syn.resize(1232, 0);
        assert_match(probe(&udp, &syn), "rdp.udp_syn");
        let mut syn_ack = vec![
            0xbb, 0xff, 0x56, 0x87, 0x00, 0x40, 0x10, 0x05, 0x4d, 0x67, 0x79, 0x66, 0x04, 0xd0,
            0x04, 0xd0,
        ];
        syn_ack.resize(1232, 0);
        expect_match(probe(&udp, &syn_ack));
        let mut short = syn.clone();
        short.truncate(1231);
        assert_eq!(probe(&udp, &short), Probe::NoMatch);
        let mut data = syn.clone();
        data[7] = 0x08;
        assert_eq!(probe(&udp, &data), Probe::NoMatch);
        let mut bad_mtu = syn;
        bad_mtu[13] = 0x00;
        assert_eq!(probe(&udp, &bad_mtu), Probe::NoMatch);
    }

    #[test]
    fn rejections() {
        // S7comm COTP connection request with TSAP parameters.
        let s7 = b"\x03\x00\x00\x16\x11\xe0\x00\x00\x00\x01\x00\xc0\x01\x0a\xc1\x02\x01\x00\xc2\x02\x01\x02";
        assert_eq!(probe(&CTX, s7), Probe::NoMatch);
        assert_eq!(probe(&CTX, &tpkt(CR, b"")), Probe::NoMatch);
        assert_eq!(probe(&CTX, &tpkt(CC, b"")), Probe::NoMatch);
        let mut bad_li = tpkt(CR, b"\x01\x00\x08\x00\x03\x00\x00\x00");
        bad_li[4] = 3;
        assert_eq!(probe(&CTX, &bad_li), Probe::NoMatch);
        assert_eq!(
            probe(&CTX, &tpkt(CR, b"\x01\x00\x08\x00\x03\x00\x00\x00\x00")),
            Probe::NoMatch
        );
        assert_eq!(probe(&CTX, b"\x16\x03\x01\x00\x10"), Probe::NoMatch);
        assert_eq!(probe(&CTX, b"GET / HTTP/1.1\r\n\r\n"), Probe::NoMatch);
    }
}
