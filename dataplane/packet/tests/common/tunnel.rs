//! Wraps an Ethernet frame in the encapsulations mirrored traffic arrives in (GRE, ERSPAN II and
//! III, VXLAN, GENEVE, MPLS, IP in IP), with an outer Ethernet/IPv4 header, as switches and
//! cloud mirrors send them. Lengths are set, checksums left zero (the decoder reads neither).
//! Shared with the root package's tunnel replay test (`tests/tunnels.rs`).

#![allow(dead_code)]

/// The encapsulations [`encapsulate`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrap {
    /// GRE carrying the inner IP packet (the inner Ethernet header dropped).
    GreIp,
    /// GRE with transparent Ethernet bridging, key and sequence number.
    GreEthernet,
    /// ERSPAN type II in GRE.
    ErspanII,
    /// ERSPAN type III in GRE, with the platform-specific subheader.
    ErspanIII,
    /// VXLAN over UDP 4789.
    Vxlan,
    /// GENEVE over UDP 6081 with one option word.
    Geneve,
    /// Two MPLS labels over the inner IP packet.
    Mpls,
    /// The inner IP packet directly in outer IPv4 (protocol 4 or 41).
    IpInIp,
}

impl Wrap {
    /// Every wrapping.
    pub const ALL: [Wrap; 8] = [
        Wrap::GreIp,
        Wrap::GreEthernet,
        Wrap::ErspanII,
        Wrap::ErspanIII,
        Wrap::Vxlan,
        Wrap::Geneve,
        Wrap::Mpls,
        Wrap::IpInIp,
    ];
}

/// Outer addresses: the mirroring switch and the sensor.
pub const OUTER_SRC: [u8; 4] = [198, 18, 0, 1];
/// The sensor's address.
pub const OUTER_DST: [u8; 4] = [198, 18, 0, 2];

fn outer_ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    ip.extend_from_slice(&OUTER_SRC);
    ip.extend_from_slice(&OUTER_DST);
    ip.extend_from_slice(payload);
    ip
}

fn outer_udp(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = 49_152u16.to_be_bytes().to_vec();
    u.extend_from_slice(&dst_port.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0xaa, 0x02, 0, 0, 0, 0, 0xbb];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// `inner` (an Ethernet II frame with an untagged IPv4 or IPv6 packet) wrapped in `wrap`, as
/// an outer Ethernet frame. `None` when `inner` is not such a frame.
pub fn encapsulate(wrap: Wrap, inner: &[u8]) -> Option<Vec<u8>> {
    let ethertype = u16::from_be_bytes([*inner.get(12)?, *inner.get(13)?]);
    let ip = inner.get(14..)?;
    if ethertype != 0x0800 && ethertype != 0x86dd {
        return None;
    }
    let gre = |flags: u8, proto: u16, extra: &[u8], body: &[u8]| {
        let mut g = vec![flags, 0];
        g.extend_from_slice(&proto.to_be_bytes());
        g.extend_from_slice(extra);
        g.extend_from_slice(body);
        ethernet(0x0800, &outer_ipv4(47, &g))
    };
    Some(match wrap {
        Wrap::GreIp => gre(0, ethertype, &[], ip),
        Wrap::GreEthernet => gre(0x30, 0x6558, &[0, 0, 0, 7, 0, 0, 0, 1], inner),
        Wrap::ErspanII => {
            let mut h = vec![0, 0, 0, 9]; // GRE sequence number
            h.extend_from_slice(&[0x10, 0x05, 0, 0x42, 0, 0, 0, 3]);
            gre(0x10, 0x88be, &h, inner)
        }
        Wrap::ErspanIII => {
            let mut h = vec![0, 0, 0, 9];
            h.extend_from_slice(&[0x20, 0x05, 0, 0x42, 0, 0, 0, 1, 0, 0, 0, 0x01]);
            h.extend_from_slice(&[0; 8]); // platform-specific subheader (O flag)
            gre(0x10, 0x22eb, &h, inner)
        }
        Wrap::Vxlan => {
            let mut v = vec![0x08, 0, 0, 0, 0, 0x12, 0x34, 0];
            v.extend_from_slice(inner);
            ethernet(0x0800, &outer_ipv4(17, &outer_udp(4789, &v)))
        }
        Wrap::Geneve => {
            let mut g = vec![
                0x01, 0, 0x65, 0x58, 0, 0x12, 0x34, 0, 0x01, 0x02, 0x03, 0x04,
            ];
            g.extend_from_slice(inner);
            ethernet(0x86dd, &outer_ipv6(17, &outer_udp(6081, &g)))
        }
        Wrap::Mpls => {
            let mut m = vec![0, 0x01, 0x00, 64, 0, 0x02, 0x01, 64];
            m.extend_from_slice(ip);
            ethernet(0x8847, &m)
        }
        Wrap::IpInIp => {
            let proto = if ethertype == 0x0800 { 4 } else { 41 };
            ethernet(0x0800, &outer_ipv4(proto, ip))
        }
    })
}

fn outer_ipv6(nh: u8, payload: &[u8]) -> Vec<u8> {
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[nh, 64]);
    ip.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    ]);
    ip.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
    ]);
    ip.extend_from_slice(payload);
    ip
}
