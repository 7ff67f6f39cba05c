//! The source and destination IP addresses of a frame that `portolan_packet::parse` did not
//! decode to TCP/UDP (fragments, ICMP, other IP protocols), for the address-only RSS hash.
//!
//! Owns: a bounded walk over the same link layers the decoder accepts (Ethernet with up to four
//! VLAN tags and PPPoE, Linux SLL/SLL2, BSD/OpenBSD loopback, raw IP) to the IP header's
//! addresses. Must not: panic, allocate or look past the fixed IP header — it runs only for
//! frames the decoder rejected. (Better placed in `portolan-packet` as a public helper; kept
//! here until that crate offers one.)

use portolan_packet::LinkType;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
const MAX_VLAN_TAGS: usize = 4;
const ARPHRD_NETLINK: u16 = 824;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*s.first()?, *s.get(1)?]))
}

fn arr<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Which IP version the link layer announced.
enum Ip<'a> {
    V4(&'a [u8]),
    V6(&'a [u8]),
    Either(&'a [u8]),
}

/// The `(source, destination)` addresses of an IPv4 or IPv6 frame of link type `link`, or
/// `None` when the frame is not IP (ARP, LLDP, …) or is cut short before the addresses.
pub(crate) fn ip_pair(link: LinkType, frame: &[u8]) -> Option<(IpAddr, IpAddr)> {
    let ip = match link {
        LinkType::Ethernet => follow_ethertype(be16(frame, 12)?, frame.get(14..)?)?,
        LinkType::LinuxSll => {
            if be16(frame, 2)? == ARPHRD_NETLINK {
                return None;
            }
            follow_ethertype(be16(frame, 14)?, frame.get(16..)?)?
        }
        LinkType::LinuxSll2 => {
            if be16(frame, 8)? == ARPHRD_NETLINK {
                return None;
            }
            follow_ethertype(be16(frame, 0)?, frame.get(20..)?)?
        }
        LinkType::Null => {
            let mut family = u32::from_le_bytes(arr(frame, 0)?);
            if family > 0xffff {
                family = family.swap_bytes();
            }
            by_family(family, frame.get(4..)?)?
        }
        LinkType::Loop => by_family(u32::from_be_bytes(arr(frame, 0)?), frame.get(4..)?)?,
        LinkType::RawIp => Ip::Either(frame),
        LinkType::Ipv4 => Ip::V4(frame),
        LinkType::Ipv6 => Ip::V6(frame),
    };
    let (bytes, version) = match ip {
        Ip::V4(b) => (b, 4),
        Ip::V6(b) => (b, 6),
        Ip::Either(b) => (b, b.first()? >> 4),
    };
    if bytes.first()? >> 4 != version {
        return None;
    }
    match version {
        4 => Some((
            IpAddr::V4(Ipv4Addr::from(arr::<4>(bytes, 12)?)),
            IpAddr::V4(Ipv4Addr::from(arr::<4>(bytes, 16)?)),
        )),
        6 => Some((
            IpAddr::V6(Ipv6Addr::from(arr::<16>(bytes, 8)?)),
            IpAddr::V6(Ipv6Addr::from(arr::<16>(bytes, 24)?)),
        )),
        _ => None,
    }
}

fn follow_ethertype(mut ethertype: u16, mut rest: &[u8]) -> Option<Ip<'_>> {
    for _ in 0..=MAX_VLAN_TAGS {
        match ethertype {
            ETHERTYPE_IPV4 => return Some(Ip::V4(rest)),
            ETHERTYPE_IPV6 => return Some(Ip::V6(rest)),
            t if ETHERTYPE_VLAN.contains(&t) => {
                ethertype = be16(rest, 2)?;
                rest = rest.get(4..)?;
            }
            ETHERTYPE_PPPOE_SESSION => {
                if rest.first() != Some(&0x11) || rest.get(1) != Some(&0) {
                    return None;
                }
                let ip = rest.get(8..)?;
                return match be16(rest, 6)? {
                    PPP_IPV4 => Some(Ip::V4(ip)),
                    PPP_IPV6 => Some(Ip::V6(ip)),
                    _ => None,
                };
            }
            _ => return None,
        }
    }
    None
}

fn by_family(family: u32, rest: &[u8]) -> Option<Ip<'_>> {
    match family {
        2 => Some(Ip::V4(rest)),
        24 | 28 | 30 => Some(Ip::V6(rest)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ipv4_icmp() -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0];
        ip.extend_from_slice(&[10, 0, 0, 1, 192, 0, 2, 7]);
        ip.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0]);
        ip
    }

    #[test]
    fn finds_addresses_behind_vlan_and_pppoe() {
        let want = Some(("10.0.0.1".parse().unwrap(), "192.0.2.7".parse().unwrap()));
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x88, 0x64]);
        eth.extend_from_slice(&[0x11, 0x00, 0x00, 0x01, 0x00, 0x1e, 0x00, 0x21]);
        eth.extend_from_slice(&ipv4_icmp());
        assert_eq!(ip_pair(LinkType::Ethernet, &eth), want);
        assert_eq!(ip_pair(LinkType::RawIp, &ipv4_icmp()), want);
        let mut null = 2u32.to_be_bytes().to_vec();
        null.extend_from_slice(&ipv4_icmp());
        assert_eq!(ip_pair(LinkType::Null, &null), want);
        assert_eq!(ip_pair(LinkType::Loop, &null), want);
        // ARP is not IP.
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06]);
        arp.extend_from_slice(&[0u8; 28]);
        assert_eq!(ip_pair(LinkType::Ethernet, &arp), None);
        // Wrong version nibble behind an IPv6 ethertype.
        let mut v6 = vec![0u8; 12];
        v6.extend_from_slice(&[0x86, 0xdd]);
        v6.extend_from_slice(&ipv4_icmp());
        assert_eq!(ip_pair(LinkType::Ethernet, &v6), None);
    }

    proptest! {
        #[test]
        fn never_panics(link in 0usize..8, bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let links = [
                LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::RawIp,
                LinkType::Ipv4, LinkType::Ipv6, LinkType::Null, LinkType::Loop,
            ];
            let _ = ip_pair(links[link], &bytes);
        }
    }
}
