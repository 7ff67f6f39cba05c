//! TCP header view (RFC 9293).
//!
//! Owns: ports, sequence/acknowledgment numbers, flags, window and the payload boundary given by
//! the data offset. Must not: verify the checksum, parse options, or track connection state
//! (that is the flow table's job).

use super::{array_at, be16, be32};
use crate::{DropReason, TcpHeader};

/// Length of a TCP header without options.
const MIN_HEADER_LEN: usize = 20;

/// A view of the fixed 20 bytes of a TCP header.
#[derive(Debug, Clone, Copy)]
struct TcpFixedHeader<'a> {
    fixed: &'a [u8; MIN_HEADER_LEN],
}

impl TcpFixedHeader<'_> {
    fn src_port(&self) -> u16 {
        be16([self.fixed[0], self.fixed[1]])
    }

    fn dst_port(&self) -> u16 {
        be16([self.fixed[2], self.fixed[3]])
    }

    fn seq(&self) -> u32 {
        be32([self.fixed[4], self.fixed[5], self.fixed[6], self.fixed[7]])
    }

    fn ack(&self) -> u32 {
        be32([self.fixed[8], self.fixed[9], self.fixed[10], self.fixed[11]])
    }

    /// Header length in bytes (data offset × 4).
    fn header_len(&self) -> usize {
        usize::from(self.fixed[12] >> 4) * 4
    }

    fn flags(&self) -> u8 {
        self.fixed[13]
    }

    fn window(&self) -> u16 {
        be16([self.fixed[14], self.fixed[15]])
    }
}

/// A decoded TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TcpSegment<'a> {
    pub(super) src_port: u16,
    pub(super) dst_port: u16,
    pub(super) header: TcpHeader,
    /// Payload bytes present after the header (options skipped).
    pub(super) payload: &'a [u8],
}

/// Decodes the TCP segment in `bytes` (the segment bytes present); `claimed_len` is the segment
/// length the IP header gives, which `bytes` may fall short of when the capture was cut.
pub(super) fn decode(bytes: &[u8], claimed_len: usize) -> Result<TcpSegment<'_>, DropReason> {
    let fixed = array_at(bytes, 0).ok_or(DropReason::TcpTruncated)?;
    let tcp = TcpFixedHeader { fixed };
    let header_len = tcp.header_len();
    if header_len < MIN_HEADER_LEN || header_len > claimed_len {
        return Err(DropReason::TcpBadDataOffset);
    }
    let payload = bytes.get(header_len..).ok_or(DropReason::TcpTruncated)?;
    Ok(TcpSegment {
        src_port: tcp.src_port(),
        dst_port: tcp.dst_port(),
        header: TcpHeader {
            seq: tcp.seq(),
            ack: tcp.ack(),
            flags: tcp.flags(),
            window: tcp.window(),
        },
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp_flags;

    fn segment(data_offset: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut s = vec![
            0xc0, 0x01, 0x01, 0xbb, 0, 0, 0x10, 0, 0xde, 0xad, 0xbe, 0xef,
        ];
        s.push(data_offset << 4);
        s.push(tcp_flags::SYN | tcp_flags::ACK | 0x80);
        s.extend_from_slice(&[0xff, 0xf0, 0, 0, 0, 0]);
        s.extend_from_slice(options);
        s.extend_from_slice(payload);
        s
    }

    #[test]
    fn valid_header_fields() {
        let s = segment(5, &[], b"hello");
        let seg = decode(&s, s.len()).unwrap();
        assert_eq!((seg.src_port, seg.dst_port), (0xc001, 443));
        assert_eq!(
            seg.header,
            TcpHeader {
                seq: 0x1000,
                ack: 0xdead_beef,
                flags: 0x92,
                window: 0xfff0
            }
        );
        assert_eq!(seg.payload, b"hello");
    }

    #[test]
    fn options_are_skipped() {
        let s = segment(7, &[2, 4, 5, 0xb4, 1, 1, 4, 2], b"data");
        assert_eq!(decode(&s, s.len()).unwrap().payload, b"data");
    }

    #[test]
    fn truncated_at_every_length() {
        let s = segment(6, &[1, 1, 1, 0], b"");
        for n in 0..s.len() {
            assert_eq!(
                decode(&s[..n], s.len()),
                Err(DropReason::TcpTruncated),
                "length {n}"
            );
        }
        assert_eq!(decode(&s, s.len()).unwrap().payload, b"");
    }

    #[test]
    fn bad_data_offset() {
        for off in 0..5 {
            let s = segment(off, &[], b"payload-bytes-here");
            assert_eq!(
                decode(&s, s.len()),
                Err(DropReason::TcpBadDataOffset),
                "offset {off}"
            );
        }
        // A data offset pointing past the end the IP header gives.
        let s = segment(15, &[], b"");
        assert_eq!(decode(&s, s.len()), Err(DropReason::TcpBadDataOffset));
    }

    #[test]
    fn cut_payload_is_what_is_present() {
        let s = segment(5, &[], b"0123456789");
        let seg = decode(&s[..25], s.len()).unwrap();
        assert_eq!(seg.payload, b"01234");
    }
}
