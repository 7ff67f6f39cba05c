//! IP fragments of a [`crate::Frame`]: an IPv4 frame cut into fragments (RFC 791) or an IPv6
//! frame into fragments with a Fragment extension header (RFC 8200 4.5), the way a sender that
//! fragments its ClientHello (or everything) puts them on the wire.
//!
//! Owns: cutting the L4 part (transport header and payload) of an Ethernet + IPv4 (20-byte
//! header, no options) or Ethernet + IPv6 (40-byte header, no extension headers) frame at given
//! offsets, with the lengths, offsets, "more fragments" flags and identification right. The
//! IPv4 header checksum is left as the whole frame had it (decoders here do not check it).
//! Must not: reorder, duplicate or overlap fragments (a test does that with the pieces it gets).

use portolan_synth::wire::ETH_LEN;

const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
/// IPv6 next-header value of the Fragment extension header.
const IPV6_FRAGMENT: u8 = 44;

/// Cut points as (start, end) pieces of `len` bytes; each inner cut must be a multiple of 8.
fn pieces(len: usize, cuts: &[usize]) -> Vec<(usize, usize)> {
    let mut points = Vec::with_capacity(cuts.len() + 2);
    points.push(0);
    for &c in cuts {
        assert!(
            c % 8 == 0 && c > 0 && c < len,
            "fragment cut {c} of {len} bytes"
        );
        points.push(c);
    }
    points.push(len);
    assert!(
        points.windows(2).all(|w| w[0] < w[1]),
        "cuts {cuts:?} not increasing"
    );
    points.windows(2).map(|w| (w[0], w[1])).collect()
}

/// The Ethernet + IPv4 frame `frame` as fragments whose L4 pieces start at `cuts` (increasing
/// multiples of 8), all with identification `id`, in order.
pub fn ipv4_fragments(frame: &[u8], cuts: &[usize], id: u16) -> Vec<Vec<u8>> {
    let (head, l4) = frame.split_at(ETH_LEN + IPV4_HEADER);
    assert_eq!(head[ETH_LEN] >> 4, 4, "an IPv4 frame");
    assert_eq!(head[ETH_LEN] & 0x0f, 5, "an IPv4 header without options");
    pieces(l4.len(), cuts)
        .into_iter()
        .map(|(start, end)| {
            let mut f = head.to_vec();
            let total = u16::try_from(IPV4_HEADER + end - start).expect("fragment length");
            f[ETH_LEN + 2..ETH_LEN + 4].copy_from_slice(&total.to_be_bytes());
            f[ETH_LEN + 4..ETH_LEN + 6].copy_from_slice(&id.to_be_bytes());
            let more = if end < l4.len() { 0x2000 } else { 0 };
            let offset = u16::try_from(start / 8).expect("fragment offset");
            f[ETH_LEN + 6..ETH_LEN + 8].copy_from_slice(&(offset | more).to_be_bytes());
            f.extend_from_slice(&l4[start..end]);
            f
        })
        .collect()
}

/// The Ethernet + IPv6 frame `frame` as fragments whose L4 pieces start at `cuts` (increasing
/// multiples of 8), each with a Fragment header of identification `id`, in order.
pub fn ipv6_fragments(frame: &[u8], cuts: &[usize], id: u32) -> Vec<Vec<u8>> {
    let (head, l4) = frame.split_at(ETH_LEN + IPV6_HEADER);
    assert_eq!(head[ETH_LEN] >> 4, 6, "an IPv6 frame");
    let inner = head[ETH_LEN + 6];
    pieces(l4.len(), cuts)
        .into_iter()
        .map(|(start, end)| {
            let mut f = head.to_vec();
            let payload = u16::try_from(8 + end - start).expect("fragment length");
            f[ETH_LEN + 4..ETH_LEN + 6].copy_from_slice(&payload.to_be_bytes());
            f[ETH_LEN + 6] = IPV6_FRAGMENT;
            let more = u16::from(end < l4.len());
            let offset = u16::try_from(start / 8).expect("fragment offset");
            f.extend_from_slice(&[inner, 0]);
            f.extend_from_slice(&((offset << 3) | more).to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
            f.extend_from_slice(&l4[start..end]);
            f
        })
        .collect()
}
