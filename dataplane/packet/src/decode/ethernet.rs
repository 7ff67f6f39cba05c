//! Ethernet II header view, 802.1Q / 802.1ad VLAN tags and PPPoE session headers.
//!
//! Owns: following an ethertype chain (tags, PPPoE) to the IP header or an MPLS label stack,
//! for Ethernet and for the Linux cooked headers that carry an ethertype. Must not: look inside IP, or walk more than
//! [`MAX_VLAN_TAGS`] tags.

use super::{array_at, be16, Layer3, Network};
use crate::DropReason;

/// Ethernet II header length: destination, source, ethertype.
pub(super) const ETHERNET_HEADER_LEN: usize = 14;
/// Most stacked VLAN tags walked before the frame is dropped as [`DropReason::VlanTooDeep`].
pub(super) const MAX_VLAN_TAGS: usize = 4;
/// Length of one VLAN tag: TCI and the inner ethertype.
const VLAN_TAG_LEN: usize = 4;
/// PPPoE session header (version/type, code, session ID, length) plus the 2-byte PPP protocol.
const PPPOE_SESSION_LEN: usize = 8;

/// Ethertypes the decoder follows.
pub(super) mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service VLAN tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ outer tag.
    pub const QINQ_9100: u16 = 0x9100;
    /// PPPoE session stage.
    pub const PPPOE_SESSION: u16 = 0x8864;
    /// MPLS unicast label stack.
    pub const MPLS: u16 = 0x8847;
    /// MPLS multicast label stack.
    pub const MPLS_MULTICAST: u16 = 0x8848;
}

/// PPP protocol numbers carried in PPPoE sessions.
mod ppp_proto {
    /// IPv4.
    pub const IPV4: u16 = 0x0021;
    /// IPv6.
    pub const IPV6: u16 = 0x0057;
}

/// A view of the 14-byte Ethernet II header at the start of a frame.
#[derive(Debug, Clone, Copy)]
pub(super) struct EthernetHeader<'a> {
    header: &'a [u8; ETHERNET_HEADER_LEN],
}

impl<'a> EthernetHeader<'a> {
    /// The header of `frame`, or `None` when the frame is shorter than 14 bytes.
    pub(super) fn new(frame: &'a [u8]) -> Option<EthernetHeader<'a>> {
        array_at(frame, 0).map(|header| EthernetHeader { header })
    }

    /// Ethertype (or, below 0x0600, an 802.3 length).
    pub(super) fn ethertype(&self) -> u16 {
        be16([self.header[12], self.header[13]])
    }
}

/// A view of one 4-byte VLAN tag (the bytes after a VLAN ethertype).
#[derive(Debug, Clone, Copy)]
struct VlanTag<'a> {
    tag: &'a [u8; VLAN_TAG_LEN],
}

impl<'a> VlanTag<'a> {
    fn new(bytes: &'a [u8]) -> Option<VlanTag<'a>> {
        array_at(bytes, 0).map(|tag| VlanTag { tag })
    }

    /// VLAN ID: the low 12 bits of the tag control information.
    fn vlan_id(&self) -> u16 {
        be16([self.tag[0], self.tag[1]]) & 0x0fff
    }

    /// Ethertype of what follows the tag.
    fn inner_ethertype(&self) -> u16 {
        be16([self.tag[2], self.tag[3]])
    }
}

/// A view of a PPPoE session header with its PPP protocol field.
#[derive(Debug, Clone, Copy)]
struct PppoeSession<'a> {
    header: &'a [u8; PPPOE_SESSION_LEN],
}

impl<'a> PppoeSession<'a> {
    fn new(bytes: &'a [u8]) -> Option<PppoeSession<'a>> {
        array_at(bytes, 0).map(|header| PppoeSession { header })
    }

    /// Version 1, type 1, code 0 (session data), as RFC 2516 requires.
    fn is_session_data(&self) -> bool {
        self.header[0] == 0x11 && self.header[1] == 0
    }

    /// The PPP protocol of the payload.
    fn ppp_protocol(&self) -> u16 {
        be16([self.header[6], self.header[7]])
    }
}

/// Decodes an Ethernet frame down to its IP header.
pub(super) fn decode(frame: &[u8]) -> Result<Layer3<'_>, DropReason> {
    let eth = EthernetHeader::new(frame).ok_or(DropReason::TruncatedLink)?;
    let rest = frame.get(ETHERNET_HEADER_LEN..).unwrap_or_default();
    follow_ethertype(eth.ethertype(), rest)
}

/// Follows `ethertype` through VLAN tags and a PPPoE session header to IPv4 or IPv6.
///
/// `rest` starts right after the field that held `ethertype`. The VLAN reported is the
/// outermost tag with a non-zero ID (ID 0 marks a priority-only tag, which is no VLAN).
///
/// Untagged IPv4 and IPv6 — nearly every frame — return here, inlined into the caller so the
/// result stays in registers (returned through memory from an out-of-line call, it cost a
/// store-forwarding stall per packet); tags and PPPoE go through [`follow_encapsulation`].
#[inline(always)]
pub(super) fn follow_ethertype(ethertype: u16, rest: &[u8]) -> Result<Layer3<'_>, DropReason> {
    match ethertype {
        ethertype::IPV4 => Ok(Layer3 {
            network: Network::Ipv4(rest),
            vlan: None,
        }),
        ethertype::IPV6 => Ok(Layer3 {
            network: Network::Ipv6(rest),
            vlan: None,
        }),
        _ => follow_encapsulation(ethertype, rest),
    }
}

/// [`follow_ethertype`] for everything but untagged IPv4/IPv6.
#[inline(never)]
fn follow_encapsulation(mut ethertype: u16, mut rest: &[u8]) -> Result<Layer3<'_>, DropReason> {
    let mut vlan = None;
    let mut tags = 0;
    loop {
        match ethertype {
            ethertype::IPV4 => {
                return Ok(Layer3 {
                    network: Network::Ipv4(rest),
                    vlan,
                })
            }
            ethertype::IPV6 => {
                return Ok(Layer3 {
                    network: Network::Ipv6(rest),
                    vlan,
                })
            }
            ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_9100 => {
                tags += 1;
                if tags > MAX_VLAN_TAGS {
                    return Err(DropReason::VlanTooDeep);
                }
                let tag = VlanTag::new(rest).ok_or(DropReason::TruncatedLink)?;
                if vlan.is_none() && tag.vlan_id() != 0 {
                    vlan = Some(tag.vlan_id());
                }
                ethertype = tag.inner_ethertype();
                rest = rest.get(VLAN_TAG_LEN..).unwrap_or_default();
            }
            ethertype::PPPOE_SESSION => {
                let pppoe = PppoeSession::new(rest).ok_or(DropReason::TruncatedLink)?;
                let ip = rest.get(PPPOE_SESSION_LEN..).unwrap_or_default();
                return match (pppoe.is_session_data(), pppoe.ppp_protocol()) {
                    (true, ppp_proto::IPV4) => Ok(Layer3 {
                        network: Network::Ipv4(ip),
                        vlan,
                    }),
                    (true, ppp_proto::IPV6) => Ok(Layer3 {
                        network: Network::Ipv6(ip),
                        vlan,
                    }),
                    _ => Err(DropReason::NonIp),
                };
            }
            // The label stack is walked with the other encapsulations (`decode::tunnel`).
            ethertype::MPLS | ethertype::MPLS_MULTICAST => {
                return Ok(Layer3 {
                    network: Network::Mpls(rest),
                    vlan,
                })
            }
            // ARP, LLDP, 802.3 length fields (values below 0x0600), and everything else.
            _ => return Err(DropReason::NonIp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MACS: [u8; 12] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];

    fn frame(parts: &[&[u8]]) -> Vec<u8> {
        let mut f = MACS.to_vec();
        for p in parts {
            f.extend_from_slice(p);
        }
        f
    }

    #[test]
    fn ipv4_and_ipv6_ethertypes() {
        let f = frame(&[&[0x08, 0x00], &[0x45, 0xaa]]);
        assert_eq!(
            decode(&f),
            Ok(Layer3 {
                network: Network::Ipv4(&[0x45, 0xaa]),
                vlan: None
            })
        );
        let f = frame(&[&[0x86, 0xdd], &[0x60]]);
        assert_eq!(
            decode(&f),
            Ok(Layer3 {
                network: Network::Ipv6(&[0x60]),
                vlan: None
            })
        );
    }

    #[test]
    fn short_header_is_truncated_link_at_every_length() {
        let f = frame(&[&[0x08, 0x00]]);
        for n in 0..ETHERNET_HEADER_LEN {
            assert_eq!(
                decode(&f[..n]),
                Err(DropReason::TruncatedLink),
                "length {n}"
            );
        }
        assert!(decode(&f).is_ok());
    }

    #[test]
    fn non_ip_ethertypes_and_8023_lengths() {
        for et in [0x0806u16, 0x88cc, 0x0000, 0x05dc, 0x0600, 0x890d] {
            let f = frame(&[&et.to_be_bytes(), &[0; 40]]);
            assert_eq!(decode(&f), Err(DropReason::NonIp), "ethertype {et:#06x}");
        }
    }

    #[test]
    fn single_vlan_tag() {
        // PCP 5, VID 100.
        let f = frame(&[&[0x81, 0x00, 0xa0, 0x64, 0x08, 0x00], &[0x45]]);
        assert_eq!(
            decode(&f),
            Ok(Layer3 {
                network: Network::Ipv4(&[0x45]),
                vlan: Some(100)
            })
        );
    }

    #[test]
    fn qinq_reports_outer_tag() {
        for outer in [ethertype::QINQ, ethertype::QINQ_9100, ethertype::VLAN] {
            let f = frame(&[
                &outer.to_be_bytes(),
                &[0x00, 0x0a, 0x81, 0x00],
                &[0x0f, 0xff, 0x86, 0xdd],
                &[0x60],
            ]);
            assert_eq!(
                decode(&f),
                Ok(Layer3 {
                    network: Network::Ipv6(&[0x60]),
                    vlan: Some(10)
                })
            );
        }
    }

    #[test]
    fn priority_tag_is_not_a_vlan() {
        let f = frame(&[&[0x81, 0x00, 0xe0, 0x00, 0x81, 0x00, 0x00, 0x07, 0x08, 0x00]]);
        assert_eq!(
            decode(&f),
            Ok(Layer3 {
                network: Network::Ipv4(&[]),
                vlan: Some(7)
            })
        );
        let f = frame(&[&[0x81, 0x00, 0xe0, 0x00, 0x08, 0x00]]);
        assert_eq!(
            decode(&f),
            Ok(Layer3 {
                network: Network::Ipv4(&[]),
                vlan: None
            })
        );
    }

    #[test]
    fn vlan_depth_is_bounded() {
        let mut tags: Vec<u8> = Vec::new();
        for _ in 0..MAX_VLAN_TAGS {
            tags.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        }
        let ok = frame(&[&tags, &[0x08, 0x00]]);
        assert!(decode(&ok).is_ok());
        let deep = frame(&[&tags, &[0x81, 0x00, 0x00, 0x05, 0x08, 0x00]]);
        assert_eq!(decode(&deep), Err(DropReason::VlanTooDeep));
    }

    #[test]
    fn truncated_vlan_tag() {
        let f = frame(&[&[0x81, 0x00, 0x00, 0x05, 0x08, 0x00]]);
        for n in ETHERNET_HEADER_LEN..f.len() {
            assert_eq!(
                decode(&f[..n]),
                Err(DropReason::TruncatedLink),
                "length {n}"
            );
        }
    }

    #[test]
    fn pppoe_session_carrying_ip() {
        let hdr = [0x88, 0x64, 0x11, 0x00, 0x12, 0x34, 0x00, 0x40];
        let f = frame(&[&hdr, &[0x00, 0x21], &[0x45]]);
        assert_eq!(
            decode(&f),
            Ok(Layer3 {
                network: Network::Ipv4(&[0x45]),
                vlan: None
            })
        );
        let f = frame(&[&hdr, &[0x00, 0x57], &[0x60]]);
        assert_eq!(
            decode(&f),
            Ok(Layer3 {
                network: Network::Ipv6(&[0x60]),
                vlan: None
            })
        );
        // LCP is not IP.
        let f = frame(&[&hdr, &[0xc0, 0x21], &[0x01]]);
        assert_eq!(decode(&f), Err(DropReason::NonIp));
        // Discovery-stage code in a session frame.
        let f = frame(&[&[0x88, 0x64, 0x11, 0x09, 0, 0, 0, 2], &[0x00, 0x21]]);
        assert_eq!(decode(&f), Err(DropReason::NonIp));
        let f = frame(&[&hdr, &[0x00, 0x21]]);
        for n in ETHERNET_HEADER_LEN..f.len() {
            assert_eq!(
                decode(&f[..n]),
                Err(DropReason::TruncatedLink),
                "length {n}"
            );
        }
    }

    #[test]
    fn vlan_then_pppoe() {
        let f = frame(&[&[
            0x81, 0x00, 0x00, 0x21, 0x88, 0x64, 0x11, 0, 0, 1, 0, 2, 0x00, 0x21,
        ]]);
        assert_eq!(
            decode(&f),
            Ok(Layer3 {
                network: Network::Ipv4(&[]),
                vlan: Some(0x21)
            })
        );
    }
}
