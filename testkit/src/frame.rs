//! Ethernet frames carrying one TCP segment or UDP datagram between two socket addresses, IPv4
//! or IPv6, lengths and checksums right.
//!
//! Owns: the defaults every test frame shares (MACs 02:00:00:00:00:01 → 02:00:00:00:00:02,
//! IPv4 identification 1 with DF, TTL/hop limit 64, flow label 0, TCP window 65,535, no
//! options) and the few fields a test changes. The framing itself is
//! [`portolan_synth::wire`]. Must not: number TCP segments or time packets (a test's
//! scenario does), or build what no test needs (IP options, TCP options).

use std::net::{IpAddr, SocketAddr};

use portolan_synth::wire::{self, Endpoints, IpFields};

/// The source MAC of every frame unless [`Frame::macs`] says otherwise.
pub const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The destination MAC of every frame unless [`Frame::macs`] says otherwise.
pub const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// The transport header of a [`Frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L4 {
    Tcp {
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
    },
    Udp,
    /// Another IP protocol: the payload is its whole L4 part.
    Other(u8),
}

/// One frame to build: `Frame::tcp(src, dst, flags).seq(1000).build(payload)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    src: SocketAddr,
    dst: SocketAddr,
    l4: L4,
    macs: ([u8; 6], [u8; 6]),
    ident: u16,
    ttl: u8,
}

impl Frame {
    /// A TCP segment from `src` to `dst` with `flags` (`portolan_packet::tcp_flags`), sequence
    /// and acknowledgement numbers 0 until [`Frame::seq`] and [`Frame::ack`] set them.
    pub fn tcp(src: impl Into<SocketAddr>, dst: impl Into<SocketAddr>, flags: u8) -> Frame {
        Frame::new(
            src.into(),
            dst.into(),
            L4::Tcp {
                seq: 0,
                ack: 0,
                flags,
                window: 0xffff,
            },
        )
    }

    /// A UDP datagram from `src` to `dst`.
    pub fn udp(src: impl Into<SocketAddr>, dst: impl Into<SocketAddr>) -> Frame {
        Frame::new(src.into(), dst.into(), L4::Udp)
    }

    /// A packet of IP protocol `proto` (ICMP, GRE, ...) from `src` to `dst`; the payload given
    /// to [`Frame::build`] is its whole L4 part, written as it is (no checksum filled).
    pub fn ip(src: impl Into<IpAddr>, dst: impl Into<IpAddr>, proto: u8) -> Frame {
        Frame::new(
            SocketAddr::new(src.into(), 0),
            SocketAddr::new(dst.into(), 0),
            L4::Other(proto),
        )
    }

    fn new(src: SocketAddr, dst: SocketAddr, l4: L4) -> Frame {
        assert_eq!(
            src.is_ipv6(),
            dst.is_ipv6(),
            "a frame's two addresses are of one family"
        );
        Frame {
            src,
            dst,
            l4,
            macs: (SRC_MAC, DST_MAC),
            ident: 1,
            ttl: 64,
        }
    }

    /// The TCP sequence number (ignored for UDP).
    pub fn seq(mut self, seq: u32) -> Frame {
        if let L4::Tcp { seq: s, .. } = &mut self.l4 {
            *s = seq;
        }
        self
    }

    /// The TCP acknowledgement number (ignored for UDP).
    pub fn ack(mut self, ack: u32) -> Frame {
        if let L4::Tcp { ack: a, .. } = &mut self.l4 {
            *a = ack;
        }
        self
    }

    /// The source and destination MAC addresses.
    pub fn macs(mut self, src: [u8; 6], dst: [u8; 6]) -> Frame {
        self.macs = (src, dst);
        self
    }

    /// The IPv4 identification (IPv6 frames keep flow label 0).
    pub fn ident(mut self, ident: u16) -> Frame {
        self.ident = ident;
        self
    }

    /// The frame with `payload` after the transport header.
    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(wire::ETH_LEN + 60 + payload.len());
        self.build_into(&mut buf, payload);
        buf
    }

    /// [`Frame::build`] into `buf` (cleared first), for callers that reuse one buffer.
    pub fn build_into(&self, buf: &mut Vec<u8>, payload: &[u8]) {
        let ep = Endpoints {
            client_mac: self.macs.0,
            gateway_mac: self.macs.1,
            client_ip: self.src.ip(),
            server_ip: self.dst.ip(),
            client_port: self.src.port(),
            server_port: self.dst.port(),
        };
        let ip = IpFields {
            from_client: true,
            // synth derives the IPv6 flow label from the identification.
            ident: if self.src.is_ipv6() { 0 } else { self.ident },
            ttl: self.ttl,
        };
        match self.l4 {
            L4::Tcp {
                seq,
                ack,
                flags,
                window,
            } => wire::begin_tcp(buf, &ep, ip, seq, ack, flags, window, &[]),
            L4::Udp => wire::begin_udp(buf, &ep, ip),
            L4::Other(proto) => {
                wire::begin_ip(buf, &ep, ip, proto);
            }
        }
        buf.extend_from_slice(payload);
        wire::finish(buf);
    }
}

/// An Ethernet frame of `ethertype` carrying `payload` as it is (ARP, or anything else no
/// [`Frame`] builds), between the default MACs.
pub fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(wire::ETH_LEN + payload.len());
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// `frame` (Ethernet) with an 802.1Q tag of VLAN `vid` after its MAC addresses.
pub fn vlan_tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    let (macs, rest) = frame.split_at(12);
    let mut f = Vec::with_capacity(frame.len() + 4);
    f.extend_from_slice(macs);
    f.extend_from_slice(&0x8100u16.to_be_bytes());
    f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    f.extend_from_slice(rest);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn vlan_tag_goes_after_the_macs() {
        let f = Frame::udp(([10, 0, 0, 1], 1), ([10, 0, 0, 2], 2)).build(b"x");
        let t = vlan_tagged(&f, 42);
        assert_eq!(t.len(), f.len() + 4);
        assert_eq!(&t[..12], &f[..12]);
        assert_eq!(&t[12..18], &[0x81, 0x00, 0, 42, 0x08, 0x00]);
        assert_eq!(&t[18..], &f[14..]);
        assert_eq!(&ethernet(0x0806, &[1, 2])[12..], &[0x08, 0x06, 1, 2]);
    }

    #[test]
    fn ipv4_tcp_layout() {
        let f = Frame::tcp(([10, 0, 0, 1], 40000), ([10, 0, 0, 2], 443), 0x18)
            .seq(1001)
            .ack(7)
            .build(b"hi");
        assert_eq!(f.len(), 14 + 20 + 20 + 2);
        assert_eq!(&f[..14], &[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        // Version/IHL, total length, ident 1, DF, TTL 64, TCP.
        assert_eq!(&f[14..24], &[0x45, 0, 0, 42, 0, 1, 0x40, 0, 64, 6]);
        assert_eq!(&f[26..34], &[10, 0, 0, 1, 10, 0, 0, 2]);
        assert_eq!(&f[34..38], &[0x9c, 0x40, 0x01, 0xbb]);
        assert_eq!(&f[38..42], &1001u32.to_be_bytes());
        assert_eq!(&f[42..46], &7u32.to_be_bytes());
        assert_eq!(&f[46..50], &[0x50, 0x18, 0xff, 0xff]);
        assert_ne!(&f[24..26], &[0, 0], "IPv4 header checksum filled in");
        assert_eq!(&f[54..], b"hi");
    }

    #[test]
    fn ipv6_udp_layout() {
        let a = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        let b = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
        let f = Frame::udp((a, 5353), (b, 53)).build(&[1, 2, 3]);
        assert_eq!(f.len(), 14 + 40 + 8 + 3);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        assert_eq!(&f[14..22], &[0x60, 0, 0, 0, 0, 11, 17, 64]);
        assert_eq!(&f[54..60], &[0x14, 0xe9, 0, 53, 0, 11]);
        assert_ne!(&f[60..62], &[0, 0], "UDP checksum filled in");
    }

    #[test]
    fn other_protocols_carry_their_bytes_as_given() {
        let f = Frame::ip([10, 0, 0, 1], [10, 0, 0, 2], 1).build(&[8, 0, 0, 0, 0x5a]);
        assert_eq!(f.len(), 14 + 20 + 5);
        assert_eq!(&f[14..24], &[0x45, 0, 0, 25, 0, 1, 0x40, 0, 64, 1]);
        assert_eq!(&f[34..], &[8, 0, 0, 0, 0x5a]);
    }
}

/// A direction of a TCP connection: source address and port, destination address and port.
type SeqKey = ([u8; 4], u16, [u8; 4], u16);

thread_local! {
    /// Next sequence number per (source, destination) endpoint pair of this test thread.
    static NEXT_SEQ: std::cell::RefCell<std::collections::HashMap<SeqKey, u32>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The sequence number of the next TCP segment from `src` to `dst` on this thread, as a real
/// stack numbers them: a SYN starts the direction at 1000 (its data at 1001), each segment
/// advances it by its payload (and by one for SYN and FIN).
pub fn next_seq(src: ([u8; 4], u16), dst: ([u8; 4], u16), flags: u8, len: usize) -> u32 {
    NEXT_SEQ.with(|m| {
        let mut m = m.borrow_mut();
        let key = (src.0, src.1, dst.0, dst.1);
        if flags & 0x02 != 0 {
            m.insert(key, 1000);
        }
        let seq = *m.entry(key).or_insert(1000);
        let advance = len as u32 + u32::from(flags & 0x03 != 0);
        m.insert(key, seq.wrapping_add(advance));
        seq
    })
}

/// Ethernet + IPv4 + TCP (with `flags`, acknowledging 1) or UDP frame carrying `payload`; TCP
/// segments are numbered in sequence per direction ([`next_seq`]).
pub fn numbered(
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    tcp: bool,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    if tcp {
        let seq = next_seq(src, dst, flags, payload.len());
        Frame::tcp(src, dst, flags).seq(seq).ack(1).build(payload)
    } else {
        Frame::udp(src, dst).build(payload)
    }
}

/// Ethernet + IPv4 + TCP frame (acknowledging 1) with an explicit sequence number, for
/// reordering tests; the direction's running number ([`next_seq`]) advances as for [`numbered`].
pub fn numbered_at(
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    flags: u8,
    seq: u32,
    payload: &[u8],
) -> Vec<u8> {
    next_seq(src, dst, flags, payload.len());
    Frame::tcp(src, dst, flags).seq(seq).ack(1).build(payload)
}
