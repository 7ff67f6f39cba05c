//! UDP header view (RFC 768).
//!
//! Owns: ports and the payload boundary given by the UDP length. Must not: verify the checksum
//! or decode what the payload carries (tunnels included).

use super::{array_at, be16};
use crate::DropReason;

/// UDP header length.
const HEADER_LEN: usize = 8;

/// A view of the 8-byte UDP header.
#[derive(Debug, Clone, Copy)]
struct UdpHeader<'a> {
    header: &'a [u8; HEADER_LEN],
}

impl UdpHeader<'_> {
    fn src_port(&self) -> u16 {
        be16([self.header[0], self.header[1]])
    }

    fn dst_port(&self) -> u16 {
        be16([self.header[2], self.header[3]])
    }

    /// Length of header and payload in bytes.
    fn length(&self) -> usize {
        usize::from(be16([self.header[4], self.header[5]]))
    }
}

/// A decoded UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct UdpDatagram<'a> {
    pub(super) src_port: u16,
    pub(super) dst_port: u16,
    /// Payload bytes present, bounded by the UDP length.
    pub(super) payload: &'a [u8],
    /// The UDP length claims more bytes than are present.
    pub(super) truncated: bool,
}

/// Decodes the UDP datagram in `bytes` (the bytes present). `claimed_len` is the length the IP
/// header gives; it stands in for a UDP length of 0 in an IPv6 jumbogram (RFC 2675).
pub(super) fn decode(
    bytes: &[u8],
    claimed_len: usize,
    jumbogram: bool,
) -> Result<UdpDatagram<'_>, DropReason> {
    let header = array_at(bytes, 0).ok_or(DropReason::UdpTruncated)?;
    let udp = UdpHeader { header };
    let length = match udp.length() {
        0 if jumbogram => claimed_len,
        n if n < HEADER_LEN => return Err(DropReason::UdpBadLength),
        n => n,
    };
    let end = length.min(bytes.len());
    Ok(UdpDatagram {
        src_port: udp.src_port(),
        dst_port: udp.dst_port(),
        payload: bytes.get(HEADER_LEN..end).unwrap_or_default(),
        truncated: length > bytes.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(length: u16, payload: &[u8]) -> Vec<u8> {
        let mut d = vec![0x00, 0x35, 0xd4, 0x31];
        d.extend_from_slice(&length.to_be_bytes());
        d.extend_from_slice(&[0, 0]);
        d.extend_from_slice(payload);
        d
    }

    #[test]
    fn valid_header() {
        let d = datagram(12, b"abcd");
        let u = decode(&d, d.len(), false).unwrap();
        assert_eq!((u.src_port, u.dst_port), (53, 0xd431));
        assert_eq!(u.payload, b"abcd");
        assert!(!u.truncated);
    }

    #[test]
    fn truncated_at_every_length() {
        let d = datagram(8, b"");
        for n in 0..HEADER_LEN {
            assert_eq!(
                decode(&d[..n], 8, false),
                Err(DropReason::UdpTruncated),
                "length {n}"
            );
        }
        assert_eq!(decode(&d, 8, false).unwrap().payload, b"");
    }

    #[test]
    fn bad_length_below_header() {
        for len in 0..8u16 {
            let d = datagram(len, b"xyz");
            assert_eq!(
                decode(&d, d.len(), false),
                Err(DropReason::UdpBadLength),
                "len {len}"
            );
        }
    }

    #[test]
    fn length_bounds_payload() {
        // Shorter than the bytes present: the rest is not UDP payload.
        let d = datagram(10, b"abcdef");
        let u = decode(&d, d.len(), false).unwrap();
        assert_eq!((u.payload, u.truncated), (&b"ab"[..], false));
        // Longer than the bytes present: what is there, flagged truncated.
        let d = datagram(100, b"abcdef");
        let u = decode(&d, 100, false).unwrap();
        assert_eq!((u.payload, u.truncated), (&b"abcdef"[..], true));
    }

    #[test]
    fn zero_length_in_jumbogram() {
        let d = datagram(0, b"jumbo");
        let u = decode(&d, d.len(), true).unwrap();
        assert_eq!((u.payload, u.truncated), (&b"jumbo"[..], false));
    }
}
