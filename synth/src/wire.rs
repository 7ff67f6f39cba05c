//! Ethernet, IPv4/IPv6, TCP and UDP framing with correct lengths and checksums.
//!
//! Owns: turning "these addresses, these header fields, this payload" into one Ethernet frame.
//! Must not: decide anything about flows or timing (that is `tcp`/`udp`), or allocate per frame
//! (callers pass the buffer they reuse).

use std::net::IpAddr;

/// Length of an Ethernet II header.
pub const ETH_LEN: usize = 14;
/// Ethernet MTU the generator frames against.
pub const MTU: usize = 1500;

/// The two ends of a flow on the wire: the device (client) and the server behind the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    /// The device's Wi-Fi MAC address.
    pub client_mac: [u8; 6],
    /// The default gateway's MAC address (every off-link packet goes through it).
    pub gateway_mac: [u8; 6],
    /// Device address.
    pub client_ip: IpAddr,
    /// Server address.
    pub server_ip: IpAddr,
    /// Device (ephemeral) port.
    pub client_port: u16,
    /// Server port.
    pub server_port: u16,
}

impl Endpoints {
    /// True for an IPv6 flow.
    pub fn is_v6(&self) -> bool {
        self.server_ip.is_ipv6()
    }

    /// Bytes of IP + transport header before the payload, for the MSS arithmetic.
    pub fn ip_header_len(&self) -> usize {
        if self.is_v6() {
            40
        } else {
            20
        }
    }
}

/// Per-packet IP fields that vary by direction.
#[derive(Debug, Clone, Copy)]
pub struct IpFields {
    /// True when the device sends the packet.
    pub from_client: bool,
    /// IPv4 identification (ignored for IPv6).
    pub ident: u16,
    /// TTL / hop limit as seen at the capture point.
    pub ttl: u8,
}

/// Writes the Ethernet and IP headers for a packet of IP protocol `proto` whose L4 part will
/// follow; returns the offset of the L4 header. Lengths and checksums are filled in by
/// [`finish`] (the L4 checksum only for TCP and UDP).
pub fn begin_ip(buf: &mut Vec<u8>, ep: &Endpoints, ip: IpFields, proto: u8) -> usize {
    buf.clear();
    let (dst, src) = if ip.from_client {
        (ep.gateway_mac, ep.client_mac)
    } else {
        (ep.client_mac, ep.gateway_mac)
    };
    buf.extend_from_slice(&dst);
    buf.extend_from_slice(&src);
    let (sip, dip) = if ip.from_client {
        (ep.client_ip, ep.server_ip)
    } else {
        (ep.server_ip, ep.client_ip)
    };
    match (sip, dip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            buf.extend_from_slice(&[0x08, 0x00]);
            buf.extend_from_slice(&[0x45, 0x00, 0, 0]);
            buf.extend_from_slice(&ip.ident.to_be_bytes());
            buf.extend_from_slice(&[0x40, 0x00, ip.ttl, proto, 0, 0]);
            buf.extend_from_slice(&s.octets());
            buf.extend_from_slice(&d.octets());
        }
        (s, d) => {
            buf.extend_from_slice(&[0x86, 0xdd]);
            // Version 6, traffic class 0, a flow label derived from the ident.
            let fl = (ip.ident as u32) & 0xfffff;
            buf.extend_from_slice(&(0x6000_0000u32 | fl).to_be_bytes());
            buf.extend_from_slice(&[0, 0, proto, ip.ttl]);
            buf.extend_from_slice(&v6_octets(s));
            buf.extend_from_slice(&v6_octets(d));
        }
    }
    buf.len()
}

fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(v) => v.octets(),
        IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
    }
}

/// Starts a TCP segment: Ethernet + IP + TCP header with `options` (a multiple of 4 bytes).
/// Append the payload to `buf`, then call [`finish`].
#[allow(clippy::too_many_arguments)]
pub fn begin_tcp(
    buf: &mut Vec<u8>,
    ep: &Endpoints,
    ip: IpFields,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    options: &[u8],
) {
    let l4 = begin_ip(buf, ep, ip, 6);
    let (sp, dp) = if ip.from_client {
        (ep.client_port, ep.server_port)
    } else {
        (ep.server_port, ep.client_port)
    };
    buf.extend_from_slice(&sp.to_be_bytes());
    buf.extend_from_slice(&dp.to_be_bytes());
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(&ack.to_be_bytes());
    let doff = ((20 + options.len()) / 4) as u8;
    buf.extend_from_slice(&[doff << 4, flags]);
    buf.extend_from_slice(&window.to_be_bytes());
    buf.extend_from_slice(&[0, 0, 0, 0]);
    buf.extend_from_slice(options);
    debug_assert_eq!(buf.len() - l4, 20 + options.len());
}

/// Starts a UDP datagram. Append the payload to `buf`, then call [`finish`].
pub fn begin_udp(buf: &mut Vec<u8>, ep: &Endpoints, ip: IpFields) {
    begin_ip(buf, ep, ip, 17);
    let (sp, dp) = if ip.from_client {
        (ep.client_port, ep.server_port)
    } else {
        (ep.server_port, ep.client_port)
    };
    buf.extend_from_slice(&sp.to_be_bytes());
    buf.extend_from_slice(&dp.to_be_bytes());
    buf.extend_from_slice(&[0, 0, 0, 0]);
}

/// Fills in IP/UDP lengths and the IPv4 header, TCP and UDP checksums of the frame in `buf`
/// (other protocols' L4 bytes are left as they are).
pub fn finish(buf: &mut [u8]) {
    let v6 = buf[12] == 0x86;
    let (l4, proto, mut sum) = if v6 {
        let plen = (buf.len() - ETH_LEN - 40) as u16;
        buf[ETH_LEN + 4..ETH_LEN + 6].copy_from_slice(&plen.to_be_bytes());
        let proto = buf[ETH_LEN + 6];
        // Pseudo-header: addresses, upper-layer length, next header.
        let s = sum16(&buf[ETH_LEN + 8..ETH_LEN + 40], 0) + plen as u64 + proto as u64;
        (ETH_LEN + 40, proto, s)
    } else {
        let tot = (buf.len() - ETH_LEN) as u16;
        buf[ETH_LEN + 2..ETH_LEN + 4].copy_from_slice(&tot.to_be_bytes());
        let c = fold(sum16(&buf[ETH_LEN..ETH_LEN + 20], 0));
        buf[ETH_LEN + 10..ETH_LEN + 12].copy_from_slice(&c.to_be_bytes());
        let proto = buf[ETH_LEN + 9];
        let l4len = (buf.len() - ETH_LEN - 20) as u64;
        let s = sum16(&buf[ETH_LEN + 12..ETH_LEN + 20], 0) + l4len + proto as u64;
        (ETH_LEN + 20, proto, s)
    };
    let ck_at = match proto {
        6 => l4 + 16,
        17 => {
            let ulen = (buf.len() - l4) as u16;
            buf[l4 + 4..l4 + 6].copy_from_slice(&ulen.to_be_bytes());
            l4 + 6
        }
        _ => return,
    };
    sum = sum16(&buf[l4..], sum);
    let mut c = fold(sum);
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    buf[ck_at..ck_at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Ones'-complement sum of big-endian 16-bit words (odd tail padded with zero), unfolded.
fn sum16(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (w >> 48) + ((w >> 32) & 0xffff) + ((w >> 16) & 0xffff) + (w & 0xffff);
    }
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u16::from_be_bytes([p[0], p[1]]) as u64;
    }
    if let [b] = pairs.remainder() {
        acc += (*b as u64) << 8;
    }
    acc
}

/// Folds a sum to 16 bits and complements it.
fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ep(v6: bool) -> Endpoints {
        let (c, s): (IpAddr, IpAddr) = if v6 {
            (
                Ipv6Addr::new(0x2001, 0xdb8, 0x20, 0, 1, 2, 3, 4).into(),
                Ipv6Addr::new(0x2001, 0xdb8, 0xc0, 0, 0, 0, 0, 9).into(),
            )
        } else {
            (
                Ipv4Addr::new(10, 20, 0, 5).into(),
                Ipv4Addr::new(203, 0, 113, 9).into(),
            )
        };
        Endpoints {
            client_mac: [0xf0, 0x18, 0x98, 1, 2, 3],
            gateway_mac: [0, 0x1b, 0x54, 1, 2, 3],
            client_ip: c,
            server_ip: s,
            client_port: 50000,
            server_port: 443,
        }
    }

    /// Verifying a correct checksum over the whole covered range gives 0 after folding.
    fn verify(frame: &[u8]) {
        let v6 = frame[12] == 0x86;
        let (l4, pseudo) = if v6 {
            let proto = frame[ETH_LEN + 6] as u64;
            let len = (frame.len() - ETH_LEN - 40) as u64;
            (
                ETH_LEN + 40,
                sum16(&frame[ETH_LEN + 8..ETH_LEN + 40], 0) + proto + len,
            )
        } else {
            assert_eq!(fold(sum16(&frame[ETH_LEN..ETH_LEN + 20], 0)), 0);
            let proto = frame[ETH_LEN + 9] as u64;
            let len = (frame.len() - ETH_LEN - 20) as u64;
            (
                ETH_LEN + 20,
                sum16(&frame[ETH_LEN + 12..ETH_LEN + 20], 0) + proto + len,
            )
        };
        assert_eq!(fold(sum16(&frame[l4..], pseudo)), 0);
    }

    #[test]
    fn checksums_verify_for_odd_and_even_payloads() {
        for v6 in [false, true] {
            for n in [0usize, 1, 7, 1448] {
                let mut b = Vec::new();
                let ipf = IpFields {
                    from_client: true,
                    ident: 77,
                    ttl: 64,
                };
                begin_tcp(
                    &mut b,
                    &ep(v6),
                    ipf,
                    1,
                    2,
                    0x18,
                    2048,
                    &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
                );
                b.extend((0..n).map(|i| i as u8));
                finish(&mut b);
                verify(&b);
                let mut u = Vec::new();
                begin_udp(
                    &mut u,
                    &ep(v6),
                    IpFields {
                        from_client: false,
                        ident: 3,
                        ttl: 55,
                    },
                );
                u.extend((0..n).map(|i| (i * 7) as u8));
                finish(&mut u);
                verify(&u);
            }
        }
    }
}
