//! IPv6 header view and extension-header walk (RFC 8200).
//!
//! Owns: validating the fixed header, walking at most [`MAX_EXT_HEADERS`] extension headers to
//! the transport header, and spotting fragments. Must not: interpret options or routing
//! headers, reassemble, or walk an unbounded chain.

use super::{array_at, be16, tunnel, IpPayload, IPPROTO_TCP, IPPROTO_UDP};
use crate::DropReason;
use std::net::{IpAddr, Ipv6Addr};

/// Length of the fixed IPv6 header.
const HEADER_LEN: usize = 40;
/// Most extension headers walked before the packet is dropped as
/// [`DropReason::Ipv6TooManyExtHeaders`].
pub(super) const MAX_EXT_HEADERS: usize = 8;

/// IPv6 next-header values the walk knows.
mod next_header {
    /// Hop-by-hop options (only directly after the fixed header).
    pub const HOP_BY_HOP: u8 = 0;
    /// Routing header.
    pub const ROUTING: u8 = 43;
    /// Fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Authentication header (length in 4-byte units).
    pub const AUTH: u8 = 51;
    /// Destination options.
    pub const DEST_OPTS: u8 = 60;
    /// Mobility header.
    pub const MOBILITY: u8 = 135;
    /// Host identity protocol.
    pub const HIP: u8 = 139;
    /// Shim6.
    pub const SHIM6: u8 = 140;
    /// Experimentation and testing (RFC 3692), in the standard extension-header format.
    pub const EXPERIMENTAL_1: u8 = 253;
    /// Experimentation and testing (RFC 3692), in the standard extension-header format.
    pub const EXPERIMENTAL_2: u8 = 254;
}

/// Fragment header length.
const FRAGMENT_HEADER_LEN: usize = 8;
/// Smallest authentication header: 12 bytes (payload length field 1).
const MIN_AUTH_HEADER_LEN: usize = 12;

/// A view of the 40-byte fixed IPv6 header.
#[derive(Debug, Clone, Copy)]
struct Ipv6Header<'a> {
    fixed: &'a [u8; HEADER_LEN],
}

impl Ipv6Header<'_> {
    fn payload_len(&self) -> usize {
        usize::from(be16([self.fixed[4], self.fixed[5]]))
    }

    fn next_header(&self) -> u8 {
        self.fixed[6]
    }

    fn address(&self, at: usize) -> Ipv6Addr {
        let mut a = [0u8; 16];
        if let Some(src) = array_at::<16>(self.fixed, at) {
            a = *src;
        }
        Ipv6Addr::from(a)
    }

    fn src(&self) -> Ipv6Addr {
        self.address(8)
    }

    fn dst(&self) -> Ipv6Addr {
        self.address(24)
    }
}

/// Whether `nh` is an extension header this walk skips over (fragment handled apart).
fn is_skippable(nh: u8) -> bool {
    matches!(
        nh,
        next_header::HOP_BY_HOP
            | next_header::ROUTING
            | next_header::AUTH
            | next_header::DEST_OPTS
            | next_header::MOBILITY
            | next_header::HIP
            | next_header::SHIM6
            | next_header::EXPERIMENTAL_1
            | next_header::EXPERIMENTAL_2
    )
}

/// Decodes the IPv6 packet at the start of `bytes` (anything after its payload length is
/// padding and is ignored).
pub(super) fn decode(bytes: &[u8]) -> Result<IpPayload<'_>, DropReason> {
    let first = *bytes.first().ok_or(DropReason::Ipv6Truncated)?;
    if first >> 4 != 6 {
        return Err(DropReason::Ipv6BadVersion);
    }
    let fixed = array_at(bytes, 0).ok_or(DropReason::Ipv6Truncated)?;
    let ip = Ipv6Header { fixed };
    // Payload length 0: a jumbogram (or segmentation offload): the bytes present.
    let jumbogram = ip.payload_len() == 0;
    let claimed_end = if jumbogram {
        bytes.len()
    } else {
        HEADER_LEN + ip.payload_len()
    };
    let end = claimed_end.min(bytes.len());
    let present = bytes.get(..end).unwrap_or_default();

    let mut nh = ip.next_header();
    let mut at = HEADER_LEN;
    let mut first_fragment = false;
    let mut walked = 0;
    loop {
        if nh == IPPROTO_TCP || nh == IPPROTO_UDP || tunnel::is_tunnel_protocol(nh) {
            return Ok(IpPayload {
                src: IpAddr::V6(ip.src()),
                dst: IpAddr::V6(ip.dst()),
                proto: nh,
                bytes: present.get(at..).unwrap_or_default(),
                claimed_len: claimed_end.saturating_sub(at),
                first_fragment,
                jumbogram,
            });
        }
        if !is_skippable(nh) && nh != next_header::FRAGMENT {
            // ESP, no-next-header, ICMPv6 and every other upper-layer protocol.
            return Err(DropReason::OtherIpProto);
        }
        if nh == next_header::HOP_BY_HOP && at != HEADER_LEN {
            return Err(DropReason::Ipv6BadExtHeader);
        }
        walked += 1;
        if walked > MAX_EXT_HEADERS {
            return Err(DropReason::Ipv6TooManyExtHeaders);
        }
        // Every extension header starts with next-header and a length byte.
        let head = in_payload::<2>(present, at, claimed_end)?;
        let len = match nh {
            next_header::FRAGMENT => FRAGMENT_HEADER_LEN,
            next_header::AUTH => (usize::from(head[1]) + 2) * 4,
            _ => (usize::from(head[1]) + 1) * 8,
        };
        if nh == next_header::AUTH && len < MIN_AUTH_HEADER_LEN {
            return Err(DropReason::Ipv6BadExtHeader);
        }
        if nh == next_header::FRAGMENT {
            let frag = in_payload::<FRAGMENT_HEADER_LEN>(present, at, claimed_end)?;
            let offset_flags = be16([frag[2], frag[3]]);
            if offset_flags >> 3 != 0 {
                let inner = frag[0];
                return Err(
                    if inner == IPPROTO_TCP
                        || inner == IPPROTO_UDP
                        || tunnel::is_tunnel_protocol(inner)
                        || is_skippable(inner)
                    {
                        DropReason::IpFragment
                    } else {
                        DropReason::OtherIpProto
                    },
                );
            }
            first_fragment |= offset_flags & 1 != 0;
        }
        if at + len > claimed_end {
            return Err(DropReason::Ipv6BadPayloadLength);
        }
        if at + len > present.len() {
            return Err(DropReason::Ipv6Truncated);
        }
        nh = head[0];
        at += len;
    }
}

/// `N` bytes at `at` of the payload: [`DropReason::Ipv6BadPayloadLength`] when they lie past
/// the payload length, [`DropReason::Ipv6Truncated`] when past the captured bytes.
fn in_payload<const N: usize>(
    present: &[u8],
    at: usize,
    claimed_end: usize,
) -> Result<&[u8; N], DropReason> {
    if at + N > claimed_end {
        return Err(DropReason::Ipv6BadPayloadLength);
    }
    array_at(present, at).ok_or(DropReason::Ipv6Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    /// Fixed header with next header `nh` and payload length covering `payload`.
    fn packet(nh: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[nh, 64]);
        p.extend_from_slice(&SRC);
        p.extend_from_slice(&DST);
        p.extend_from_slice(payload);
        p
    }

    /// A generic extension header of `units` × 8 bytes after the first 8, with next header `nh`.
    fn ext(nh: u8, units: u8) -> Vec<u8> {
        let mut e = vec![nh, units];
        e.resize(8 * (usize::from(units) + 1), 1);
        e
    }

    fn fragment(nh: u8, offset: u16, more: bool) -> Vec<u8> {
        let mut f = vec![nh, 0];
        f.extend_from_slice(&((offset << 3) | u16::from(more)).to_be_bytes());
        f.extend_from_slice(&[0xca, 0xfe, 0xba, 0xbe]);
        f
    }

    #[test]
    fn valid_header() {
        let p = packet(17, b"12345678");
        let ip = decode(&p).unwrap();
        assert_eq!(ip.src, IpAddr::V6(Ipv6Addr::from(SRC)));
        assert_eq!(ip.dst, IpAddr::V6(Ipv6Addr::from(DST)));
        assert_eq!(ip.proto, 17);
        assert_eq!(ip.bytes, b"12345678");
        assert_eq!(ip.claimed_len, 8);
        assert!(!ip.first_fragment && !ip.jumbogram);
    }

    #[test]
    fn truncated_fixed_header_and_bad_version() {
        let p = packet(6, &[]);
        for n in 0..HEADER_LEN {
            assert_eq!(
                decode(&p[..n]),
                Err(DropReason::Ipv6Truncated),
                "length {n}"
            );
        }
        let mut p = packet(6, &[0; 20]);
        p[0] = 0x45;
        assert_eq!(decode(&p), Err(DropReason::Ipv6BadVersion));
    }

    #[test]
    fn padding_trimmed_and_cut_payload_kept() {
        let mut p = packet(6, b"abcd");
        p.extend_from_slice(&[0; 10]);
        assert_eq!(decode(&p).unwrap().bytes, b"abcd");
        let p = packet(6, b"abcdefgh");
        let ip = decode(&p[..44]).unwrap();
        assert_eq!((ip.bytes, ip.claimed_len), (&b"abcd"[..], 8));
    }

    #[test]
    fn jumbogram_payload_length_zero_is_bytes_present() {
        let mut p = packet(17, b"0123456789");
        p[4..6].copy_from_slice(&[0, 0]);
        let ip = decode(&p).unwrap();
        assert!(ip.jumbogram);
        assert_eq!((ip.bytes, ip.claimed_len), (&b"0123456789"[..], 10));
    }

    #[test]
    fn extension_headers_are_walked() {
        // hop-by-hop → routing → destination options (24 bytes) → AH (12 bytes) → mobility → TCP.
        let mut payload = ext(next_header::ROUTING, 0);
        payload.extend(ext(next_header::DEST_OPTS, 0));
        payload.extend(ext(next_header::AUTH, 2));
        payload.extend_from_slice(&[next_header::MOBILITY, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 7]);
        payload.extend(ext(6, 0));
        payload.extend_from_slice(b"tcp!");
        let p = packet(next_header::HOP_BY_HOP, &payload);
        let ip = decode(&p).unwrap();
        assert_eq!(ip.proto, 6);
        assert_eq!(ip.bytes, b"tcp!");
        assert_eq!(ip.claimed_len, 4);
    }

    #[test]
    fn extension_header_truncated_or_beyond_payload_length() {
        let mut payload = ext(next_header::DEST_OPTS, 1);
        payload.extend(ext(17, 0));
        let p = packet(next_header::DEST_OPTS, &payload);
        assert!(decode(&p).is_ok());
        for n in HEADER_LEN..p.len() {
            assert_eq!(
                decode(&p[..n]),
                Err(DropReason::Ipv6Truncated),
                "length {n}"
            );
        }
        for plen in 0..payload.len() as u16 {
            let mut q = p.clone();
            q[4..6].copy_from_slice(&plen.to_be_bytes());
            let want = if plen == 0 {
                Ok(17)
            } else {
                Err(DropReason::Ipv6BadPayloadLength)
            };
            assert_eq!(decode(&q).map(|ip| ip.proto), want, "payload length {plen}");
        }
    }

    #[test]
    fn misplaced_hop_by_hop_and_short_auth_header() {
        let mut payload = ext(next_header::HOP_BY_HOP, 0);
        payload.extend(ext(6, 0));
        let p = packet(next_header::DEST_OPTS, &payload);
        assert_eq!(decode(&p), Err(DropReason::Ipv6BadExtHeader));
        let p = packet(next_header::AUTH, &[6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(decode(&p), Err(DropReason::Ipv6BadExtHeader));
    }

    #[test]
    fn extension_chain_is_bounded() {
        let mut payload = Vec::new();
        for _ in 0..MAX_EXT_HEADERS {
            payload.extend(ext(next_header::DEST_OPTS, 0));
        }
        let mut ok = packet(next_header::DEST_OPTS, &payload);
        let last = ok.len() - 8;
        ok[last] = 17;
        assert_eq!(decode(&ok).map(|ip| ip.proto), Ok(17));
        payload.extend(ext(17, 0));
        let deep = packet(next_header::DEST_OPTS, &payload);
        assert_eq!(decode(&deep), Err(DropReason::Ipv6TooManyExtHeaders));
    }

    #[test]
    fn terminal_and_other_protocols() {
        for nh in [58u8, 59, 50, 1, 132] {
            assert_eq!(
                decode(&packet(nh, &[0; 16])),
                Err(DropReason::OtherIpProto),
                "{nh}"
            );
        }
        for nh in [4u8, 41, 47] {
            assert_eq!(decode(&packet(nh, &[0; 16])).map(|ip| ip.proto), Ok(nh));
        }
        let mut payload = ext(59, 0);
        payload.extend_from_slice(&[0; 8]);
        assert_eq!(
            decode(&packet(next_header::DEST_OPTS, &payload)),
            Err(DropReason::OtherIpProto)
        );
    }

    #[test]
    fn fragments() {
        let mut first = fragment(17, 0, true);
        first.extend_from_slice(b"udp header");
        let p = packet(next_header::FRAGMENT, &first);
        let ip = decode(&p).unwrap();
        assert!(ip.first_fragment);
        assert_eq!(ip.bytes, b"udp header");
        let mut atomic = fragment(6, 0, false);
        atomic.extend_from_slice(b"tcp");
        let p = packet(next_header::FRAGMENT, &atomic);
        let ip = decode(&p).unwrap();
        assert!(!ip.first_fragment);
        for (nh, more) in [
            (17, true),
            (17, false),
            (6, true),
            (next_header::DEST_OPTS, false),
        ] {
            let mut later = fragment(nh, 181, more);
            later.extend_from_slice(&[0; 16]);
            assert_eq!(
                decode(&packet(next_header::FRAGMENT, &later)),
                Err(DropReason::IpFragment),
                "nh {nh} more {more}"
            );
        }
        let mut icmp = fragment(58, 2, false);
        icmp.extend_from_slice(&[0; 16]);
        assert_eq!(
            decode(&packet(next_header::FRAGMENT, &icmp)),
            Err(DropReason::OtherIpProto)
        );
        let p = packet(next_header::FRAGMENT, &fragment(17, 0, true));
        for n in HEADER_LEN..p.len() {
            assert_eq!(
                decode(&p[..n]),
                Err(DropReason::Ipv6Truncated),
                "length {n}"
            );
        }
    }
}
