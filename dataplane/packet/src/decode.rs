//! Frame decoding from link layer to TCP/UDP payload: [`parse`].
//!
//! Owns: dispatch on the link type, and assembling a [`Packet`] from the header views in the
//! submodules (`ethernet`, `link`, `ipv4`, `ipv6`, `tcp`, `udp`), in the manner of Retina's
//! `protocols/packet`, and walking encapsulations (`tunnel`: GRE, ERSPAN, VXLAN, GENEVE, MPLS,
//! IP in IP) to the inner packet, at most [`MAX_TUNNEL_DEPTH`] deep. Must not: allocate, panic
//! on any input, copy payload bytes, or loop without a bound — it runs per packet on a worker
//! lcore. It does not reassemble IP fragments (the
//! worker hands fragments to [`crate::defrag`]); Teredo and other tunnels not listed are decoded
//! as the outer UDP packet or counted as [`DropReason::OtherIpProto`].
//!
//! Leniency, chosen so that snap-length-cut captures still yield their flows:
//! - an IP length longer than the frame decodes what is present and sets
//!   [`Packet::payload_truncated`], as long as the TCP/UDP header itself is complete;
//! - an IP length shorter than the frame trims the rest (Ethernet padding, FCS);
//! - an IPv4 total length of 0 (TCP segmentation offload on the capturing host) and an IPv6
//!   payload length of 0 (jumbogram) both mean "the bytes present";
//! - a first fragment (offset 0, more-fragments set) is decoded with `payload_truncated` set.

mod ethernet;
mod ipv4;
mod ipv6;
mod link;
mod tcp;
mod tunnel;
mod udp;

use crate::{DropReason, Encapsulations, LinkType, Packet, Transport};
use std::net::IpAddr;
use tunnel::Inner;

/// IANA protocol number of TCP.
const IPPROTO_TCP: u8 = 6;
/// IANA protocol number of UDP.
const IPPROTO_UDP: u8 = 17;

/// Decodes one captured frame of link type `link` down to its TCP or UDP payload.
///
/// Borrows the payload from `frame`; never allocates or panics, and its cost is bounded by the
/// VLAN-tag, IPv6-extension-header, MPLS-label and tunnel-depth limits, not by the frame's
/// contents. Every frame that is not a decodable TCP/UDP packet yields the [`DropReason`] the
/// worker counts. [`parse_counting`] also says which encapsulations were walked.
#[inline(always)]
pub fn parse(link: LinkType, frame: &[u8]) -> Result<Packet<'_>, DropReason> {
    let mut encaps = Encapsulations::NONE;
    parse_counting(link, frame, &mut encaps)
}

/// [`parse`], recording in `encaps` every encapsulation the frame was carried in (also when
/// the inner packet then fails to decode), so the worker can count them per kind.
///
/// A GRE, ERSPAN, VXLAN, GENEVE, MPLS or IP-in-IP packet yields its inner TCP/UDP packet (the
/// outer headers never make a flow of their own), walking at most [`MAX_TUNNEL_DEPTH`] nested
/// encapsulations. A UDP packet to VXLAN's or GENEVE's port whose header does not look like
/// one is the plain UDP packet it is.
#[inline(always)]
pub fn parse_counting<'a>(
    link: LinkType,
    frame: &'a [u8],
    encaps: &mut Encapsulations,
) -> Result<Packet<'a>, DropReason> {
    let l3 = link_layer(link, frame)?;
    let ip = match l3.network {
        Network::Ipv4(bytes) => ipv4::decode(bytes)?,
        Network::Ipv6(bytes) => ipv6::decode(bytes)?,
        Network::Ip(bytes) => match bytes.first().map(|b| b >> 4) {
            Some(4) => ipv4::decode(bytes)?,
            Some(6) => ipv6::decode(bytes)?,
            _ => return Err(DropReason::UnknownIpVersion),
        },
        Network::Mpls(_) => return decapsulate(Inner::Network(l3.network), l3.vlan, encaps),
    };
    match ip.proto {
        IPPROTO_TCP => tcp_packet(&ip, l3.vlan),
        IPPROTO_UDP => {
            let dgram = udp::decode(ip.bytes, ip.claimed_len, ip.jumbogram)?;
            if tunnel::is_tunnel_port(dgram.dst_port) {
                if let Some(inner) = tunnel::udp_inner(dgram.dst_port, dgram.payload, encaps)? {
                    return decapsulate(inner, l3.vlan, encaps);
                }
            }
            Ok(udp_packet(&ip, &dgram, l3.vlan))
        }
        proto => decapsulate(tunnel::ip_inner(proto, ip.bytes, encaps)?, l3.vlan, encaps),
    }
}

/// The TCP packet in `ip`.
#[inline(always)]
fn tcp_packet<'a>(ip: &IpPayload<'a>, vlan: Option<u16>) -> Result<Packet<'a>, DropReason> {
    let seg = tcp::decode(ip.bytes, ip.claimed_len)?;
    Ok(Packet {
        src_ip: ip.src,
        dst_ip: ip.dst,
        transport: Transport::Tcp,
        src_port: seg.src_port,
        dst_port: seg.dst_port,
        tcp: Some(seg.header),
        vlan,
        payload: seg.payload,
        payload_truncated: ip.first_fragment || ip.claimed_len > ip.bytes.len(),
    })
}

/// The UDP packet of datagram `dgram` in `ip`.
#[inline(always)]
fn udp_packet<'a>(
    ip: &IpPayload<'a>,
    dgram: &udp::UdpDatagram<'a>,
    vlan: Option<u16>,
) -> Packet<'a> {
    Packet {
        src_ip: ip.src,
        dst_ip: ip.dst,
        transport: Transport::Udp,
        src_port: dgram.src_port,
        dst_port: dgram.dst_port,
        tcp: None,
        vlan,
        payload: dgram.payload,
        payload_truncated: ip.first_fragment || dgram.truncated,
    }
}

/// Most nested encapsulations walked (an MPLS stack counts as one) before the frame is dropped
/// as [`DropReason::TunnelTooDeep`].
pub const MAX_TUNNEL_DEPTH: usize = 4;

/// Walks from the first encapsulated layer `inner` to the innermost TCP/UDP packet. Out of
/// line: tunnelled frames are the exception on the worker's path. The VLAN reported is the
/// outer frame's, else the first inner Ethernet frame's.
#[inline(never)]
fn decapsulate<'a>(
    mut inner: Inner<'a>,
    mut vlan: Option<u16>,
    encaps: &mut Encapsulations,
) -> Result<Packet<'a>, DropReason> {
    for _ in 0..MAX_TUNNEL_DEPTH {
        let network = match inner {
            Inner::Ethernet(bytes) => {
                let l3 = ethernet::decode(bytes)?;
                vlan = vlan.or(l3.vlan);
                l3.network
            }
            Inner::Network(n) => n,
        };
        let ip = match network {
            Network::Ipv4(bytes) => ipv4::decode(bytes)?,
            Network::Ipv6(bytes) => ipv6::decode(bytes)?,
            Network::Ip(bytes) => match bytes.first().map(|b| b >> 4) {
                Some(4) => ipv4::decode(bytes)?,
                Some(6) => ipv6::decode(bytes)?,
                _ => return Err(DropReason::UnknownIpVersion),
            },
            Network::Mpls(bytes) => {
                inner = Inner::Network(tunnel::mpls(bytes, encaps)?);
                continue;
            }
        };
        match ip.proto {
            IPPROTO_TCP => return tcp_packet(&ip, vlan),
            IPPROTO_UDP => {
                let dgram = udp::decode(ip.bytes, ip.claimed_len, ip.jumbogram)?;
                match tunnel::udp_inner(dgram.dst_port, dgram.payload, encaps)? {
                    Some(next) => inner = next,
                    None => return Ok(udp_packet(&ip, &dgram, vlan)),
                }
            }
            proto => inner = tunnel::ip_inner(proto, ip.bytes, encaps)?,
        }
    }
    Err(DropReason::TunnelTooDeep)
}

/// Walks the link layer of a frame of type `link` to the IP header.
#[inline(always)]
fn link_layer(link: LinkType, frame: &[u8]) -> Result<Layer3<'_>, DropReason> {
    Ok(match link {
        LinkType::Ethernet => ethernet::decode(frame)?,
        LinkType::LinuxSll => link::linux_sll(frame)?,
        LinkType::LinuxSll2 => link::linux_sll2(frame)?,
        LinkType::Null => link::bsd_null(frame)?,
        LinkType::Loop => link::openbsd_loop(frame)?,
        LinkType::RawIp => Layer3::untagged(Network::Ip(frame)),
        LinkType::Ipv4 => Layer3::untagged(Network::Ipv4(frame)),
        LinkType::Ipv6 => Layer3::untagged(Network::Ipv6(frame)),
    })
}

/// The `(source, destination)` addresses of an IP frame of link type `link`, read from the
/// fixed IP header after the same link-layer walk as [`parse`] (VLAN tags, PPPoE, cooked and
/// loopback headers). For frames `parse` rejects past the link layer (fragments, ICMP, other
/// IP protocols, bad lengths) whose addresses are still wanted, e.g. for an address-only RSS
/// hash. `None` when the frame is not IP (ARP, LLDP, ...), the version nibble disagrees with
/// what the link layer announced, or the frame ends before the addresses. Never panics or
/// allocates; checks nothing past the addresses.
pub fn ip_addresses(link: LinkType, frame: &[u8]) -> Option<(IpAddr, IpAddr)> {
    let mut network = link_layer(link, frame).ok()?.network;
    if let Network::Mpls(b) = network {
        network = tunnel::mpls(b, &mut Encapsulations::default()).ok()?;
    }
    let (bytes, version) = match network {
        Network::Ipv4(b) => (b, 4),
        Network::Ipv6(b) => (b, 6),
        Network::Ip(b) => (b, b.first()? >> 4),
        Network::Mpls(_) => return None,
    };
    if bytes.first()? >> 4 != version {
        return None;
    }
    match version {
        4 => Some((
            IpAddr::from(*array_at::<4>(bytes, 12)?),
            IpAddr::from(*array_at::<4>(bytes, 16)?),
        )),
        6 => Some((
            IpAddr::from(*array_at::<16>(bytes, 8)?),
            IpAddr::from(*array_at::<16>(bytes, 24)?),
        )),
        _ => None,
    }
}

/// Where the outer IP header of a frame of link type `link` starts, after the same link-layer
/// walk as [`parse`] (VLAN tags, PPPoE, cooked and loopback headers, an MPLS label stack);
/// `None` when the frame is not IP. For the defragmenter, which reads fragment fields the
/// decoder does not keep (fragments inside a tunnel are not reassembled). Never panics or
/// allocates.
pub fn network_offset(link: LinkType, frame: &[u8]) -> Option<usize> {
    let mut network = link_layer(link, frame).ok()?.network;
    if let Network::Mpls(b) = network {
        network = tunnel::mpls(b, &mut Encapsulations::default()).ok()?;
    }
    let bytes = match network {
        Network::Ipv4(b) | Network::Ipv6(b) | Network::Ip(b) => b,
        Network::Mpls(_) => return None,
    };
    // The network bytes are a sub-slice of the frame: their distance from its start.
    (bytes.as_ptr() as usize).checked_sub(frame.as_ptr() as usize)
}

/// What follows the link layer: which IP version the link layer announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Network<'a> {
    /// IPv4 by ethertype, address family or link type.
    Ipv4(&'a [u8]),
    /// IPv6 by ethertype, address family or link type.
    Ipv6(&'a [u8]),
    /// IP of either version: the first nibble tells (raw IP link type).
    Ip(&'a [u8]),
    /// An MPLS label stack (ethertype 0x8847/0x8848, or inside GRE).
    Mpls(&'a [u8]),
}

/// The network-layer bytes of a frame and the VLAN it was tagged with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layer3<'a> {
    /// The IP header onwards.
    network: Network<'a>,
    /// Outermost non-zero VLAN ID.
    vlan: Option<u16>,
}

impl<'a> Layer3<'a> {
    fn untagged(network: Network<'a>) -> Layer3<'a> {
        Layer3 {
            network,
            vlan: None,
        }
    }
}

/// An IP datagram's addresses and the transport bytes it delimits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IpPayload<'a> {
    src: IpAddr,
    dst: IpAddr,
    /// IANA protocol of `bytes` (after IPv6 extension headers).
    proto: u8,
    /// Transport bytes present: up to the end the IP header gives or the end of the frame,
    /// whichever comes first.
    bytes: &'a [u8],
    /// Transport length the IP header gives (never less than `bytes.len()`).
    claimed_len: usize,
    /// First fragment of a fragmented datagram: the transport payload continues elsewhere.
    first_fragment: bool,
    /// IPv6 payload length 0: a jumbogram, where a UDP length of 0 is legal (RFC 2675).
    jumbogram: bool,
}

/// `N` bytes of `b` starting at `at`, as a fixed-size array (so constant indexing cannot fail).
fn array_at<const N: usize>(b: &[u8], at: usize) -> Option<&[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Big-endian `u16` from a two-byte array.
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// Big-endian `u32` from a four-byte array.
fn be32(b: [u8; 4]) -> u32 {
    u32::from_be_bytes(b)
}
