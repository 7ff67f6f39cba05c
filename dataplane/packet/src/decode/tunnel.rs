//! Encapsulation headers around an inner packet, as mirrored and tunnelled traffic arrives:
//! GRE (RFC 2784/2890) with IP, transparent Ethernet bridging, MPLS or ERSPAN types I/II/III
//! inside; VXLAN (RFC 7348); GENEVE (RFC 8926); MPLS label stacks (RFC 3032); IP in IP.
//!
//! Owns: reading one encapsulation header, recording its kind in the frame's
//! [`Encapsulations`], and saying what follows it ([`Inner`]). Must not: decode IP or transport
//! headers (the decoder's loop in `decode.rs` does, with a depth bound), walk more than
//! [`MAX_MPLS_LABELS`] labels, or turn a UDP packet that does not look like VXLAN or GENEVE
//! into anything but the plain UDP packet it is.

use super::ethernet::ethertype;
use super::{array_at, be16, Network};
use crate::{DropReason, Encapsulation, Encapsulations};

/// IANA protocol number of IPv4 inside IP (IP in IP).
pub(super) const IPPROTO_IPIP: u8 = 4;
/// IANA protocol number of IPv6 inside IP.
pub(super) const IPPROTO_IPV6: u8 = 41;
/// IANA protocol number of GRE.
pub(super) const IPPROTO_GRE: u8 = 47;
/// VXLAN's registered UDP destination port.
pub(super) const VXLAN_PORT: u16 = 4789;
/// GENEVE's registered UDP destination port.
pub(super) const GENEVE_PORT: u16 = 6081;
/// Most MPLS labels walked in one stack before the frame is dropped as
/// [`DropReason::TunnelTooDeep`].
pub(super) const MAX_MPLS_LABELS: usize = 8;

/// Base GRE header: flags/version and protocol type.
const GRE_BASE_LEN: usize = 4;
/// GRE flag bits (first byte).
const GRE_CHECKSUM: u8 = 0x80;
const GRE_ROUTING: u8 = 0x40;
const GRE_KEY: u8 = 0x20;
const GRE_SEQUENCE: u8 = 0x10;
/// GRE version bits (second byte).
const GRE_VERSION_MASK: u8 = 0x07;
/// ERSPAN type II header length.
const ERSPAN_II_LEN: usize = 8;
/// ERSPAN type III header length, and its optional platform-specific subheader.
const ERSPAN_III_LEN: usize = 12;
const ERSPAN_III_SUBHEADER_LEN: usize = 8;
/// VXLAN and GENEVE fixed header length.
const UDP_TUNNEL_HEADER_LEN: usize = 8;
/// VXLAN "I" flag: the VNI is valid (RFC 7348 requires it).
const VXLAN_FLAG_I: u8 = 0x08;
/// One MPLS label stack entry.
const MPLS_LABEL_LEN: usize = 4;

/// GRE and GENEVE protocol types the decoder follows beyond the ethertypes.
mod protocol_type {
    /// Transparent Ethernet bridging: an Ethernet frame follows.
    pub const ETHERNET: u16 = 0x6558;
    /// ERSPAN type I and II.
    pub const ERSPAN_I_II: u16 = 0x88be;
    /// ERSPAN type III.
    pub const ERSPAN_III: u16 = 0x22eb;
}

/// What follows an encapsulation header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Inner<'a> {
    /// An Ethernet frame (VXLAN, GENEVE, GRE bridging, ERSPAN).
    Ethernet(&'a [u8]),
    /// IP or an MPLS label stack, without a link header.
    Network(Network<'a>),
}

/// True when the IP protocol `proto` is one the decoder walks into.
#[inline(always)]
pub(super) fn is_tunnel_protocol(proto: u8) -> bool {
    matches!(proto, IPPROTO_GRE | IPPROTO_IPIP | IPPROTO_IPV6)
}

/// True when a UDP packet to `dst_port` may carry VXLAN or GENEVE.
#[inline(always)]
pub(super) fn is_tunnel_port(dst_port: u16) -> bool {
    dst_port == VXLAN_PORT || dst_port == GENEVE_PORT
}

/// What an IP packet of protocol `proto` (GRE, IPv4 or IPv6 in IP) carries in `bytes`.
pub(super) fn ip_inner<'a>(
    proto: u8,
    bytes: &'a [u8],
    encaps: &mut Encapsulations,
) -> Result<Inner<'a>, DropReason> {
    match proto {
        IPPROTO_GRE => gre(bytes, encaps),
        IPPROTO_IPIP => {
            encaps.insert(Encapsulation::IpInIp);
            Ok(Inner::Network(Network::Ipv4(bytes)))
        }
        IPPROTO_IPV6 => {
            encaps.insert(Encapsulation::IpInIp);
            Ok(Inner::Network(Network::Ipv6(bytes)))
        }
        _ => Err(DropReason::OtherIpProto),
    }
}

/// What a UDP payload to `dst_port` carries: `Some` for a VXLAN or GENEVE header that says
/// what follows, `None` for anything else (the plain UDP packet is then the flow).
pub(super) fn udp_inner<'a>(
    dst_port: u16,
    payload: &'a [u8],
    encaps: &mut Encapsulations,
) -> Result<Option<Inner<'a>>, DropReason> {
    let Some(header) = array_at::<UDP_TUNNEL_HEADER_LEN>(payload, 0) else {
        return Ok(None);
    };
    match dst_port {
        VXLAN_PORT => {
            if header[0] & VXLAN_FLAG_I == 0 {
                return Ok(None);
            }
            encaps.insert(Encapsulation::Vxlan);
            Ok(Some(Inner::Ethernet(
                payload.get(UDP_TUNNEL_HEADER_LEN..).unwrap_or_default(),
            )))
        }
        GENEVE_PORT => {
            // Version (2 bits) 0; options length in 4-byte words; protocol type.
            if header[0] >> 6 != 0 {
                return Ok(None);
            }
            let inner = match be16([header[2], header[3]]) {
                protocol_type::ETHERNET => Inner::Ethernet,
                ethertype::IPV4 => |b| Inner::Network(Network::Ipv4(b)),
                ethertype::IPV6 => |b| Inner::Network(Network::Ipv6(b)),
                _ => return Ok(None),
            };
            encaps.insert(Encapsulation::Geneve);
            let len = UDP_TUNNEL_HEADER_LEN + usize::from(header[0] & 0x3f) * 4;
            let rest = payload.get(len..).ok_or(DropReason::TunnelTruncated)?;
            Ok(Some(inner(rest)))
        }
        _ => Ok(None),
    }
}

/// A GRE packet: the header's optional fields skipped, then what its protocol type carries.
fn gre<'a>(bytes: &'a [u8], encaps: &mut Encapsulations) -> Result<Inner<'a>, DropReason> {
    let base = array_at::<GRE_BASE_LEN>(bytes, 0).ok_or(DropReason::TunnelTruncated)?;
    let (flags, version) = (base[0], base[1] & GRE_VERSION_MASK);
    if flags & GRE_ROUTING != 0 || version != 0 {
        encaps.insert(Encapsulation::Gre);
        return Err(DropReason::TunnelUnsupported);
    }
    let optional = [GRE_CHECKSUM, GRE_KEY, GRE_SEQUENCE]
        .iter()
        .filter(|&&f| flags & f != 0)
        .count();
    let len = GRE_BASE_LEN + 4 * optional;
    let rest = bytes.get(len..).ok_or(DropReason::TunnelTruncated);
    match be16([base[2], base[3]]) {
        protocol_type::ERSPAN_I_II => {
            encaps.insert(Encapsulation::ErspanII);
            let rest = rest?;
            if flags & GRE_SEQUENCE == 0 {
                // Type I: no ERSPAN header, the mirrored frame follows at once.
                return Ok(Inner::Ethernet(rest));
            }
            let header = array_at::<ERSPAN_II_LEN>(rest, 0).ok_or(DropReason::TunnelTruncated)?;
            if header[0] >> 4 != 1 {
                return Err(DropReason::TunnelUnsupported);
            }
            Ok(Inner::Ethernet(
                rest.get(ERSPAN_II_LEN..).unwrap_or_default(),
            ))
        }
        protocol_type::ERSPAN_III => {
            encaps.insert(Encapsulation::ErspanIII);
            let rest = rest?;
            let header = array_at::<ERSPAN_III_LEN>(rest, 0).ok_or(DropReason::TunnelTruncated)?;
            if header[0] >> 4 != 2 {
                return Err(DropReason::TunnelUnsupported);
            }
            // The O flag (lowest bit of the last byte): a platform-specific subheader follows.
            let len = if header[11] & 0x01 != 0 {
                ERSPAN_III_LEN + ERSPAN_III_SUBHEADER_LEN
            } else {
                ERSPAN_III_LEN
            };
            let frame = rest.get(len..).ok_or(DropReason::TunnelTruncated)?;
            Ok(Inner::Ethernet(frame))
        }
        other => {
            encaps.insert(Encapsulation::Gre);
            let rest = rest?;
            match other {
                ethertype::IPV4 => Ok(Inner::Network(Network::Ipv4(rest))),
                ethertype::IPV6 => Ok(Inner::Network(Network::Ipv6(rest))),
                protocol_type::ETHERNET => Ok(Inner::Ethernet(rest)),
                ethertype::MPLS | ethertype::MPLS_MULTICAST => {
                    Ok(Inner::Network(Network::Mpls(rest)))
                }
                _ => Err(DropReason::TunnelUnsupported),
            }
        }
    }
}

/// An MPLS label stack: the labels up to the bottom of the stack skipped (at most
/// [`MAX_MPLS_LABELS`]), then IPv4 or IPv6 by the first nibble of what follows.
pub(super) fn mpls<'a>(
    bytes: &'a [u8],
    encaps: &mut Encapsulations,
) -> Result<Network<'a>, DropReason> {
    encaps.insert(Encapsulation::Mpls);
    for i in 0..MAX_MPLS_LABELS {
        let at = i * MPLS_LABEL_LEN;
        let entry = array_at::<MPLS_LABEL_LEN>(bytes, at).ok_or(DropReason::TunnelTruncated)?;
        if entry[2] & 0x01 != 0 {
            let rest = bytes.get(at + MPLS_LABEL_LEN..).unwrap_or_default();
            return match rest.first().map(|b| b >> 4) {
                Some(4) => Ok(Network::Ipv4(rest)),
                Some(6) => Ok(Network::Ipv6(rest)),
                None => Err(DropReason::TunnelTruncated),
                // A pseudowire control word (0) or anything else: not IP.
                Some(_) => Err(DropReason::TunnelUnsupported),
            };
        }
    }
    Err(DropReason::TunnelTooDeep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk<'a>(
        f: impl FnOnce(&mut Encapsulations) -> Result<Inner<'a>, DropReason>,
    ) -> (Result<Inner<'a>, DropReason>, Vec<Encapsulation>) {
        let mut e = Encapsulations::NONE;
        let r = f(&mut e);
        (r, e.iter().collect())
    }

    #[test]
    fn gre_skips_its_optional_fields() {
        // Checksum + key + sequence present: 16 bytes of header, then IPv4.
        let g = [
            0xb0, 0, 0x08, 0x00, 1, 2, 0, 0, 3, 4, 5, 6, 7, 8, 9, 10, 0x45,
        ];
        let (r, e) = walk(|e| ip_inner(IPPROTO_GRE, &g, e));
        assert_eq!(r, Ok(Inner::Network(Network::Ipv4(&[0x45]))));
        assert_eq!(e, vec![Encapsulation::Gre]);
        let (r, _) = walk(|e| ip_inner(IPPROTO_GRE, &g[..10], e));
        assert_eq!(r, Err(DropReason::TunnelTruncated));
    }

    #[test]
    fn gre_refuses_routing_pptp_and_unknown_types() {
        for g in [
            [0x40, 0, 0x08, 0x00],
            [0x00, 1, 0x88, 0x0b],
            [0x00, 0, 0x12, 0x34],
        ] {
            let (r, e) = walk(|e| ip_inner(IPPROTO_GRE, &g, e));
            assert_eq!(r, Err(DropReason::TunnelUnsupported), "{g:?}");
            assert_eq!(e, vec![Encapsulation::Gre]);
        }
    }

    #[test]
    fn erspan_types_one_two_and_three() {
        // Type I: GRE without sequence number, the frame at once.
        let t1 = [0x00, 0, 0x88, 0xbe, 0xaa];
        assert_eq!(
            walk(|e| ip_inner(IPPROTO_GRE, &t1, e)),
            (Ok(Inner::Ethernet(&[0xaa])), vec![Encapsulation::ErspanII])
        );
        // Type II: sequence number, 8-byte header of version 1.
        let t2 = [
            0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0, 0, 0, 0, 0, 0, 0, 0xbb,
        ];
        assert_eq!(
            walk(|e| ip_inner(IPPROTO_GRE, &t2, e)).0,
            Ok(Inner::Ethernet(&[0xbb]))
        );
        let mut bad = t2;
        bad[8] = 0x20;
        assert_eq!(
            walk(|e| ip_inner(IPPROTO_GRE, &bad, e)).0,
            Err(DropReason::TunnelUnsupported)
        );
        // Type III: 12-byte header of version 2, with and without the 8-byte subheader.
        let mut t3 = vec![0x10, 0, 0x22, 0xeb, 0, 0, 0, 1, 0x20];
        t3.extend_from_slice(&[0; 11]);
        t3.push(0xcc);
        assert_eq!(
            walk(|e| ip_inner(IPPROTO_GRE, &t3, e)),
            (Ok(Inner::Ethernet(&[0xcc])), vec![Encapsulation::ErspanIII])
        );
        let last = 8 + 11;
        t3[last] = 0x01;
        assert_eq!(
            walk(|e| ip_inner(IPPROTO_GRE, &t3, e)).0,
            Err(DropReason::TunnelTruncated)
        );
        t3.extend_from_slice(&[0; 8]);
        let (r, _) = walk(|e| ip_inner(IPPROTO_GRE, &t3, e));
        assert_eq!(r, Ok(Inner::Ethernet(&t3[28..])));
        assert_eq!(t3[28..].len(), 1);
    }

    #[test]
    fn vxlan_and_geneve_need_a_plausible_header() {
        let mut e = Encapsulations::NONE;
        let vx = [0x08, 0, 0, 0, 0, 0, 1, 0, 0xdd];
        assert_eq!(
            udp_inner(VXLAN_PORT, &vx, &mut e),
            Ok(Some(Inner::Ethernet(&[0xdd])))
        );
        assert!(e.contains(Encapsulation::Vxlan));
        // Without the I flag, or too short: plain UDP to port 4789.
        let mut e = Encapsulations::NONE;
        assert_eq!(udp_inner(VXLAN_PORT, &[0u8; 9], &mut e), Ok(None));
        assert_eq!(udp_inner(VXLAN_PORT, &vx[..7], &mut e), Ok(None));
        assert!(e.is_empty());
        // GENEVE with one 4-byte option word, carrying IPv4.
        let gv = [0x01, 0, 0x08, 0x00, 0, 0, 1, 0, 9, 9, 9, 9, 0x45];
        assert_eq!(
            udp_inner(GENEVE_PORT, &gv, &mut e),
            Ok(Some(Inner::Network(Network::Ipv4(&[0x45]))))
        );
        assert_eq!(
            udp_inner(GENEVE_PORT, &gv[..10], &mut e),
            Err(DropReason::TunnelTruncated)
        );
        // Version 1 or an unknown protocol type: not GENEVE.
        let mut v1 = gv;
        v1[0] = 0x41;
        assert_eq!(udp_inner(GENEVE_PORT, &v1, &mut e), Ok(None));
        assert_eq!(udp_inner(53, &vx, &mut e), Ok(None));
    }

    #[test]
    fn mpls_walks_to_the_bottom_of_the_stack_within_the_bound() {
        let mut e = Encapsulations::NONE;
        let two = [0, 0x10, 0x00, 64, 0, 0x20, 0x01, 64, 0x60];
        assert_eq!(mpls(&two, &mut e), Ok(Network::Ipv6(&[0x60])));
        assert!(e.contains(Encapsulation::Mpls));
        let cw = [0, 0x10, 0x01, 64, 0x00, 0, 0, 0];
        assert_eq!(mpls(&cw, &mut e), Err(DropReason::TunnelUnsupported));
        assert_eq!(mpls(&two[..4], &mut e), Err(DropReason::TunnelTruncated));
        let deep = [0u8; 4 * (MAX_MPLS_LABELS + 1)];
        assert_eq!(mpls(&deep, &mut e), Err(DropReason::TunnelTooDeep));
    }
}
