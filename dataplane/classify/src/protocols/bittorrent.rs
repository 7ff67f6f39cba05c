//! BitTorrent identification: the peer wire handshake (`\x13BitTorrent protocol`, BEP 3), DHT
//! KRPC messages (bencoded dictionaries, BEP 5), uTP connection setup (BEP 29 `ST_SYN`) and Local
//! Service Discovery announcements (BEP 14 `BT-SEARCH * HTTP/1.1` with an `Infohash` header).
//!
//! Owns: the handshake prefix, a bounded bencode validator for whole KRPC datagrams, and the uTP
//! SYN header check. Must not: accept other uTP packet types (a 20-byte header of mostly free
//! fields is too weak alone) or bencode with trailing bytes.

use super::text_line::{starts_with_ci, Lines};
use super::wire_int::{be32, u8_at};
use crate::probe::{Meta, Probe, ProbeContext};
use portolan_packet::Transport;

const HANDSHAKE: &[u8] = b"\x13BitTorrent protocol";
/// Nesting bound for the bencode validator.
const MAX_DEPTH: usize = 16;

/// Probes one datagram or the first bytes of a TCP direction for BitTorrent.
pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe {
    if data.starts_with(HANDSHAKE) {
        return Probe::Match {
            indicator: "bittorrent.handshake",
            meta: Meta::None,
        };
    }
    if !data.is_empty() && HANDSHAKE.starts_with(data) {
        return Probe::NeedMore;
    }
    if ctx.transport != Transport::Udp {
        return Probe::NoMatch;
    }
    if krpc(data) {
        return Probe::Match {
            indicator: "bittorrent.dht",
            meta: Meta::None,
        };
    }
    if utp_syn(data) {
        return Probe::Match {
            indicator: "bittorrent.utp",
            meta: Meta::None,
        };
    }
    if lsd(data) {
        return Probe::Match {
            indicator: "bittorrent.lsd",
            meta: Meta::None,
        };
    }
    Probe::NoMatch
}

/// BEP 14 announcement: the `BT-SEARCH` start line and an `Infohash:` header line.
fn lsd(d: &[u8]) -> bool {
    let mut lines = Lines::new(d, 512, 16);
    lines.next() == Some(b"BT-SEARCH * HTTP/1.1".as_slice())
        && lines.any(|l| starts_with_ci(l, b"Infohash: "))
}

/// A KRPC message: the datagram is exactly one bencoded dictionary with a `y` key of `q`, `r`
/// or `e`, and a `t` key.
fn krpc(d: &[u8]) -> bool {
    if d.first() != Some(&b'd') || d.last() != Some(&b'e') {
        return false;
    }
    let prefix_ok = d.starts_with(b"d1:ad2:id20:")
        || d.starts_with(b"d1:rd2:id20:")
        || d.starts_with(b"d1:eli")
        || d.starts_with(b"d2:ip6:")
        || d.starts_with(b"d2:ip18:");
    if !prefix_ok {
        return false;
    }
    let mut keys = KrpcKeys::default();
    match value(d, 0, 0, &mut keys) {
        Some(end) => end == d.len() && keys.t && keys.y,
        None => false,
    }
}

#[derive(Default)]
struct KrpcKeys {
    t: bool,
    y: bool,
}

/// Validates the bencoded value at `off`; returns the offset after it.
fn value(d: &[u8], off: usize, depth: usize, keys: &mut KrpcKeys) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    match u8_at(d, off)? {
        b'i' => {
            let end = off + 1 + d.get(off + 1..)?.iter().position(|&b| b == b'e')?;
            let digits = d.get(off + 1..end)?;
            let digits = digits.strip_prefix(b"-").unwrap_or(digits);
            (!digits.is_empty() && digits.len() <= 20 && digits.iter().all(u8::is_ascii_digit))
                .then_some(end + 1)
        }
        b'l' => {
            let mut at = off + 1;
            while u8_at(d, at)? != b'e' {
                at = value(d, at, depth + 1, &mut KrpcKeys::default())?;
            }
            Some(at + 1)
        }
        b'd' => {
            let mut at = off + 1;
            while u8_at(d, at)? != b'e' {
                let (key, after_key) = string(d, at)?;
                if depth == 0 {
                    match key {
                        b"t" => keys.t = true,
                        b"y" => {
                            let (y, _) = string(d, after_key)?;
                            if !matches!(y, b"q" | b"r" | b"e") {
                                return None;
                            }
                            keys.y = true;
                        }
                        _ => {}
                    }
                }
                at = value(d, after_key, depth + 1, &mut KrpcKeys::default())?;
            }
            Some(at + 1)
        }
        b'0'..=b'9' => string(d, off).map(|(_, end)| end),
        _ => None,
    }
}

/// A bencoded byte string `<len>:<bytes>` at `off`: its bytes and the offset after it.
fn string(d: &[u8], off: usize) -> Option<(&[u8], usize)> {
    let colon = off + d.get(off..)?.iter().take(7).position(|&b| b == b':')?;
    let digits = d.get(off..colon)?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let len: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let end = colon.checked_add(1)?.checked_add(len)?;
    Some((d.get(colon + 1..end)?, end))
}

/// uTP `ST_SYN`, version 1: `0x41`, a valid extension chain, `timestamp_difference` 0, a
/// non-zero window, and no payload after the extensions.
fn utp_syn(d: &[u8]) -> bool {
    if u8_at(d, 0) != Some(0x41) || d.len() < 20 {
        return false;
    }
    if be32(d, 8) != Some(0) || be32(d, 12).is_none_or(|w| w == 0) {
        return false;
    }
    let mut ext = match u8_at(d, 1) {
        Some(e @ 0..=2) => e,
        _ => return false,
    };
    let mut off = 20;
    while ext != 0 {
        let (Some(next), Some(len)) = (u8_at(d, off), u8_at(d, off + 1)) else {
            return false;
        };
        if next > 2 || len == 0 {
            return false;
        }
        ext = next;
        off += 2 + usize::from(len);
    }
    off == d.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_match, expect_match};

    const UDP: ProbeContext = ProbeContext::new(Transport::Udp, 50000, 6881);
    const TCP: ProbeContext = ProbeContext::new(Transport::Tcp, 50000, 6881);

    #[test]
    fn handshake() {
        let mut h = HANDSHAKE.to_vec();
        h.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 5]);
        h.extend_from_slice(&[0xaa; 20]);
        h.extend_from_slice(b"-qB4500-abcdefghijkl");
        assert_eq!(
            probe(&TCP, &h),
            Probe::Match {
                indicator: "bittorrent.handshake",
                meta: Meta::None
            }
        );
        assert_eq!(probe(&TCP, &h[..10]), Probe::NeedMore);
    }

    #[test]
    fn dht_query_and_response() {
        let q = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        assert_match(probe(&UDP, q), "bittorrent.dht");
        let r = b"d2:ip6:\x01\x02\x03\x04\x1a\xe11:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re";
        expect_match(probe(&UDP, r));
        let e = b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee";
        expect_match(probe(&UDP, e));
    }

    #[test]
    fn utp_syn_packet() {
        let mut s = vec![0x41, 0x00, 0x9b, 0x2a];
        s.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        s.extend_from_slice(&0u32.to_be_bytes());
        s.extend_from_slice(&0x0010_0000u32.to_be_bytes());
        s.extend_from_slice(&[0x3c, 0x01, 0x00, 0x00]);
        assert_match(probe(&UDP, &s), "bittorrent.utp");
        s.push(0);
        assert_eq!(probe(&UDP, &s), Probe::NoMatch);
    }

    #[test]
    fn local_service_discovery() {
        let d = b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: 0123456789abcdef0123456789abcdef01234567\r\n\r\n\r\n";
        assert_match(probe(&UDP, d), "bittorrent.lsd");
        let d = b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\n\r\n";
        assert_eq!(probe(&UDP, d), Probe::NoMatch);
    }

    #[test]
    fn rejections() {
        for d in [
            &b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aae"[..],
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qexx",
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:xe",
            b"d1:ad2:id99:abce",
            b"d8:announce",
            b"\x13BitTorrent protocoX",
            b"GET /announce?info_hash=abc HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(probe(&UDP, d), Probe::NoMatch, "{d:?}");
        }
    }
}
