//! Test frame builder: assembles link, IP and TCP/UDP headers from field values, so tests can
//! compare what `parse` returns with what went in. Checksums are left zero (the decoder does
//! not read them).

#![allow(dead_code)]

pub mod tunnel;

use portolan_packet::{LinkType, TcpHeader, Transport};
use std::net::IpAddr;

/// Field values of a frame to build.
#[derive(Debug, Clone)]
pub struct FrameSpec {
    /// Link type whose header is written.
    pub link: LinkType,
    /// VLAN tags (TPID, VLAN ID), outermost first; only for Ethernet and Linux SLL/SLL2.
    pub vlans: Vec<(u16, u16)>,
    /// BSD loopback: write the address family big-endian.
    pub null_big_endian: bool,
    /// Source address; must be the same version as `dst`.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IPv4 options (a multiple of 4 bytes, at most 40).
    pub ipv4_options: Vec<u8>,
    /// Number of 8-byte IPv6 destination-options headers before the transport header.
    pub ipv6_dest_opts: usize,
    /// TCP or UDP.
    pub transport: Transport,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// TCP fields (ignored for UDP).
    pub tcp: TcpHeader,
    /// TCP options (a multiple of 4 bytes, at most 40).
    pub tcp_options: Vec<u8>,
    /// Transport payload.
    pub payload: Vec<u8>,
    /// Bytes after the IP datagram (Ethernet padding, FCS).
    pub trailer: Vec<u8>,
}

impl FrameSpec {
    /// A TCP frame with default fields between two addresses.
    pub fn tcp(link: LinkType, src: IpAddr, dst: IpAddr, payload: &[u8]) -> FrameSpec {
        FrameSpec {
            link,
            vlans: Vec::new(),
            null_big_endian: false,
            src,
            dst,
            ipv4_options: Vec::new(),
            ipv6_dest_opts: 0,
            transport: Transport::Tcp,
            src_port: 51_000,
            dst_port: 443,
            tcp: TcpHeader {
                seq: 1,
                ack: 2,
                flags: 0x18,
                window: 502,
            },
            tcp_options: Vec::new(),
            payload: payload.to_vec(),
            trailer: Vec::new(),
        }
    }

    /// A UDP frame with default fields between two addresses.
    pub fn udp(link: LinkType, src: IpAddr, dst: IpAddr, payload: &[u8]) -> FrameSpec {
        FrameSpec {
            transport: Transport::Udp,
            src_port: 40_000,
            dst_port: 53,
            ..FrameSpec::tcp(link, src, dst, payload)
        }
    }
}

/// A built frame and where each layer starts in it.
#[derive(Debug, Clone)]
pub struct BuiltFrame {
    /// The frame bytes.
    pub bytes: Vec<u8>,
    /// Offset of the IP header.
    pub ip_at: usize,
    /// Offset of the TCP/UDP header.
    pub l4_at: usize,
    /// Offset of the transport payload.
    pub payload_at: usize,
    /// Offset just past the transport payload (start of the trailer).
    pub end: usize,
}

fn ethertype_of(ip: &IpAddr) -> u16 {
    if ip.is_ipv4() {
        0x0800
    } else {
        0x86dd
    }
}

/// Writes VLAN tags and the final ethertype after a field announcing the first TPID.
fn tags_then(out: &mut Vec<u8>, vlans: &[(u16, u16)], ethertype: u16) {
    for (i, (_, vid)) in vlans.iter().enumerate() {
        out.extend_from_slice(&vid.to_be_bytes());
        let next = vlans.get(i + 1).map(|(tpid, _)| *tpid).unwrap_or(ethertype);
        out.extend_from_slice(&next.to_be_bytes());
    }
}

/// Builds the frame `spec` describes.
pub fn build(spec: &FrameSpec) -> BuiltFrame {
    let mut f = Vec::new();
    let et = ethertype_of(&spec.src);
    let first = spec.vlans.first().map(|(tpid, _)| *tpid).unwrap_or(et);
    match spec.link {
        LinkType::Ethernet => {
            f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2]);
            f.extend_from_slice(&first.to_be_bytes());
            tags_then(&mut f, &spec.vlans, et);
        }
        LinkType::LinuxSll => {
            f.extend_from_slice(&[0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
            f.extend_from_slice(&first.to_be_bytes());
            tags_then(&mut f, &spec.vlans, et);
        }
        LinkType::LinuxSll2 => {
            f.extend_from_slice(&first.to_be_bytes());
            f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
            tags_then(&mut f, &spec.vlans, et);
        }
        LinkType::Null => {
            let af: u32 = if spec.src.is_ipv4() { 2 } else { 30 };
            f.extend_from_slice(&if spec.null_big_endian {
                af.to_be_bytes()
            } else {
                af.to_le_bytes()
            });
        }
        LinkType::Loop => {
            let af: u32 = if spec.src.is_ipv4() { 2 } else { 24 };
            f.extend_from_slice(&af.to_be_bytes());
        }
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => {}
    }
    let ip_at = f.len();

    let mut l4 = Vec::new();
    let l4_proto = match spec.transport {
        Transport::Tcp => {
            l4.extend_from_slice(&spec.src_port.to_be_bytes());
            l4.extend_from_slice(&spec.dst_port.to_be_bytes());
            l4.extend_from_slice(&spec.tcp.seq.to_be_bytes());
            l4.extend_from_slice(&spec.tcp.ack.to_be_bytes());
            l4.push((((20 + spec.tcp_options.len()) / 4) as u8) << 4);
            l4.push(spec.tcp.flags);
            l4.extend_from_slice(&spec.tcp.window.to_be_bytes());
            l4.extend_from_slice(&[0, 0, 0, 0]);
            l4.extend_from_slice(&spec.tcp_options);
            6
        }
        Transport::Udp => {
            l4.extend_from_slice(&spec.src_port.to_be_bytes());
            l4.extend_from_slice(&spec.dst_port.to_be_bytes());
            l4.extend_from_slice(&((8 + spec.payload.len()) as u16).to_be_bytes());
            l4.extend_from_slice(&[0, 0]);
            17
        }
    };
    let l4_header_len = l4.len();
    l4.extend_from_slice(&spec.payload);

    match (spec.src, spec.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let header_len = 20 + spec.ipv4_options.len();
            f.push(0x40 | (header_len / 4) as u8);
            f.push(0);
            f.extend_from_slice(&((header_len + l4.len()) as u16).to_be_bytes());
            f.extend_from_slice(&[0xab, 0xcd, 0x40, 0x00, 64, l4_proto, 0, 0]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
            f.extend_from_slice(&spec.ipv4_options);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let ext_len = 8 * spec.ipv6_dest_opts;
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&((ext_len + l4.len()) as u16).to_be_bytes());
            f.push(if spec.ipv6_dest_opts > 0 {
                60
            } else {
                l4_proto
            });
            f.push(64);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
            for i in 0..spec.ipv6_dest_opts {
                let next = if i + 1 == spec.ipv6_dest_opts {
                    l4_proto
                } else {
                    60
                };
                // PadN option filling the 6 bytes after next-header and length.
                f.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
            }
        }
        _ => panic!("test spec mixes IPv4 and IPv6 addresses"),
    }
    let l4_at = f.len();
    f.extend_from_slice(&l4);
    let end = f.len();
    f.extend_from_slice(&spec.trailer);
    BuiltFrame {
        bytes: f,
        ip_at,
        l4_at,
        payload_at: l4_at + l4_header_len,
        end,
    }
}
