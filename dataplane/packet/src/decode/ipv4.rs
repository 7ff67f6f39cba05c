//! IPv4 header view (RFC 791).
//!
//! Owns: validating version, IHL and total length, finding the transport bytes the header
//! delimits, and spotting fragments. Must not: verify the header checksum (offloaded NICs write
//! garbage there, and a wrong checksum still names the flow), read options, or reassemble.

use super::{array_at, be16, tunnel, IpPayload, IPPROTO_TCP, IPPROTO_UDP};
use crate::DropReason;
use std::net::{IpAddr, Ipv4Addr};

/// Length of an IPv4 header without options.
const MIN_HEADER_LEN: usize = 20;
/// More-fragments flag in the flags/fragment-offset field.
const MORE_FRAGMENTS: u16 = 0x2000;
/// Fragment offset bits (in 8-byte units) of the flags/fragment-offset field.
const OFFSET_MASK: u16 = 0x1fff;

/// A view of the fixed 20 bytes of an IPv4 header.
#[derive(Debug, Clone, Copy)]
struct Ipv4Header<'a> {
    fixed: &'a [u8; MIN_HEADER_LEN],
}

impl Ipv4Header<'_> {
    /// Header length in bytes (IHL × 4).
    fn header_len(&self) -> usize {
        usize::from(self.fixed[0] & 0x0f) * 4
    }

    fn total_len(&self) -> usize {
        usize::from(be16([self.fixed[2], self.fixed[3]]))
    }

    fn fragment_offset(&self) -> u16 {
        be16([self.fixed[6], self.fixed[7]]) & OFFSET_MASK
    }

    fn more_fragments(&self) -> bool {
        be16([self.fixed[6], self.fixed[7]]) & MORE_FRAGMENTS != 0
    }

    fn protocol(&self) -> u8 {
        self.fixed[9]
    }

    fn src(&self) -> Ipv4Addr {
        Ipv4Addr::new(
            self.fixed[12],
            self.fixed[13],
            self.fixed[14],
            self.fixed[15],
        )
    }

    fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::new(
            self.fixed[16],
            self.fixed[17],
            self.fixed[18],
            self.fixed[19],
        )
    }
}

/// Decodes the IPv4 datagram at the start of `bytes` (anything after its total length is
/// padding and is ignored).
pub(super) fn decode(bytes: &[u8]) -> Result<IpPayload<'_>, DropReason> {
    let first = *bytes.first().ok_or(DropReason::Ipv4Truncated)?;
    if first >> 4 != 4 {
        return Err(DropReason::Ipv4BadVersion);
    }
    let fixed = array_at(bytes, 0).ok_or(DropReason::Ipv4Truncated)?;
    let ip = Ipv4Header { fixed };
    let header_len = ip.header_len();
    if header_len < MIN_HEADER_LEN {
        return Err(DropReason::Ipv4BadIhl);
    }
    if bytes.len() < header_len {
        return Err(DropReason::Ipv4Truncated);
    }
    // Total length 0: written by TCP segmentation offload on the capturing host.
    let total_len = match ip.total_len() {
        0 => bytes.len(),
        n => n,
    };
    if total_len < header_len {
        return Err(DropReason::Ipv4BadTotalLength);
    }
    let proto = ip.protocol();
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP && !tunnel::is_tunnel_protocol(proto) {
        return Err(DropReason::OtherIpProto);
    }
    if ip.fragment_offset() != 0 {
        return Err(DropReason::IpFragment);
    }
    let end = total_len.min(bytes.len());
    Ok(IpPayload {
        src: IpAddr::V4(ip.src()),
        dst: IpAddr::V4(ip.dst()),
        proto,
        bytes: bytes.get(header_len..end).unwrap_or_default(),
        claimed_len: total_len - header_len,
        first_fragment: ip.more_fragments(),
        jumbogram: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 20-byte header + `payload`, total length set to cover both.
    fn datagram(proto: u8, flags_offset: u16, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut d = vec![0x45, 0];
        d.extend_from_slice(&total.to_be_bytes());
        d.extend_from_slice(&[0x12, 0x34]);
        d.extend_from_slice(&flags_offset.to_be_bytes());
        d.extend_from_slice(&[64, proto, 0xde, 0xad, 10, 0, 0, 1, 192, 168, 1, 2]);
        d.extend_from_slice(payload);
        d
    }

    #[test]
    fn valid_header() {
        let d = datagram(6, 0x4000, b"abcdefgh");
        let ip = decode(&d).unwrap();
        assert_eq!(ip.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(ip.dst, IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2)));
        assert_eq!(ip.proto, 6);
        assert_eq!(ip.bytes, b"abcdefgh");
        assert_eq!(ip.claimed_len, 8);
        assert!(!ip.first_fragment);
    }

    #[test]
    fn options_are_skipped() {
        let mut d = datagram(17, 0, b"");
        d[0] = 0x46;
        d[3] = 28;
        d.extend_from_slice(&[1, 1, 1, 0, 9, 9, 9, 9]);
        let ip = decode(&d).unwrap();
        assert_eq!(ip.bytes, &[9, 9, 9, 9]);
    }

    #[test]
    fn padding_is_trimmed_and_short_frames_flagged() {
        let mut d = datagram(17, 0, b"1234");
        d.extend_from_slice(&[0; 18]);
        let ip = decode(&d).unwrap();
        assert_eq!(ip.bytes, b"1234");
        assert_eq!(ip.claimed_len, 4);
        let d = datagram(17, 0, b"12345678");
        let ip = decode(&d[..24]).unwrap();
        assert_eq!(ip.bytes, b"1234");
        assert_eq!(ip.claimed_len, 8);
    }

    #[test]
    fn truncated_header_at_every_length() {
        let d = datagram(6, 0, b"");
        assert_eq!(decode(&[]), Err(DropReason::Ipv4Truncated));
        for n in 1..20 {
            assert_eq!(
                decode(&d[..n]),
                Err(DropReason::Ipv4Truncated),
                "length {n}"
            );
        }
        let mut d = datagram(6, 0, &[0; 8]);
        d[0] = 0x47;
        assert_eq!(decode(&d[..24]), Err(DropReason::Ipv4Truncated));
        assert!(decode(&d[..28]).is_ok());
    }

    #[test]
    fn bad_version_ihl_and_total_length() {
        let mut d = datagram(6, 0, b"xx");
        d[0] = 0x65;
        assert_eq!(decode(&d), Err(DropReason::Ipv4BadVersion));
        for ihl in 0..5u8 {
            d[0] = 0x40 | ihl;
            assert_eq!(decode(&d), Err(DropReason::Ipv4BadIhl), "ihl {ihl}");
        }
        d[0] = 0x45;
        for total in 1..20u16 {
            d[2..4].copy_from_slice(&total.to_be_bytes());
            assert_eq!(
                decode(&d),
                Err(DropReason::Ipv4BadTotalLength),
                "total {total}"
            );
        }
    }

    #[test]
    fn zero_total_length_means_bytes_present() {
        let mut d = datagram(6, 0, b"segment");
        d[2..4].copy_from_slice(&[0, 0]);
        let ip = decode(&d).unwrap();
        assert_eq!(ip.bytes, b"segment");
        assert_eq!(ip.claimed_len, 7);
    }

    #[test]
    fn fragments() {
        let first = datagram(17, MORE_FRAGMENTS, b"udp header+");
        let ip = decode(&first).unwrap();
        assert!(ip.first_fragment);
        assert_eq!(ip.bytes, b"udp header+");
        for flags_offset in [MORE_FRAGMENTS | 1, 185, 0x4000 | 0x1fff] {
            let d = datagram(17, flags_offset, b"more data");
            assert_eq!(
                decode(&d),
                Err(DropReason::IpFragment),
                "{flags_offset:#06x}"
            );
        }
        // A fragment of something that is not TCP/UDP is counted by its protocol.
        assert_eq!(
            decode(&datagram(1, 185, b"icmp")),
            Err(DropReason::OtherIpProto)
        );
    }

    #[test]
    fn other_protocols() {
        for proto in [0u8, 1, 2, 50, 51, 58, 132, 255] {
            assert_eq!(
                decode(&datagram(proto, 0, b"x")),
                Err(DropReason::OtherIpProto),
                "{proto}"
            );
        }
        // The tunnels the decoder walks into: IP in IP, IPv6 in IP, GRE.
        for proto in [4u8, 41, 47] {
            assert_eq!(
                decode(&datagram(proto, 0, b"x")).map(|ip| ip.proto),
                Ok(proto)
            );
        }
    }
}
