//! Link headers other than Ethernet: Linux cooked capture v1/v2, BSD and OpenBSD loopback.
//!
//! Owns: reading the protocol or address-family field of these headers. Must not: interpret
//! the link addresses or anything past the header (ethertypes go to `ethernet`).

use super::{array_at, be16, ethernet, Layer3, Network};
use crate::DropReason;

/// Linux cooked capture v1 header length.
const SLL_LEN: usize = 16;
/// Linux cooked capture v2 header length.
const SLL2_LEN: usize = 20;
/// BSD / OpenBSD loopback header length (the address family).
const LOOPBACK_LEN: usize = 4;
/// `ARPHRD_NETLINK`: the protocol field holds a netlink family, not an ethertype.
const ARPHRD_NETLINK: u16 = 824;

/// Address families announcing IP in loopback headers.
mod address_family {
    /// AF_INET on every BSD.
    pub const INET: u32 = 2;
    /// AF_INET6 on NetBSD, OpenBSD and BSD/OS.
    pub const INET6_BSD: u32 = 24;
    /// AF_INET6 on FreeBSD and DragonFly.
    pub const INET6_FREEBSD: u32 = 28;
    /// AF_INET6 on macOS.
    pub const INET6_DARWIN: u32 = 30;
}

/// A view of the Linux cooked capture v1 header (`LINKTYPE_LINUX_SLL`).
#[derive(Debug, Clone, Copy)]
struct SllHeader<'a> {
    header: &'a [u8; SLL_LEN],
}

impl SllHeader<'_> {
    /// `ARPHRD_*` type of the capturing interface.
    fn arphrd(&self) -> u16 {
        be16([self.header[2], self.header[3]])
    }

    /// Protocol: an ethertype, or a Linux `ETH_P_*` value below 0x0600.
    fn protocol(&self) -> u16 {
        be16([self.header[14], self.header[15]])
    }
}

/// A view of the Linux cooked capture v2 header (`LINKTYPE_LINUX_SLL2`).
#[derive(Debug, Clone, Copy)]
struct Sll2Header<'a> {
    header: &'a [u8; SLL2_LEN],
}

impl Sll2Header<'_> {
    /// Protocol: an ethertype, or a Linux `ETH_P_*` value below 0x0600.
    fn protocol(&self) -> u16 {
        be16([self.header[0], self.header[1]])
    }

    /// `ARPHRD_*` type of the capturing interface.
    fn arphrd(&self) -> u16 {
        be16([self.header[8], self.header[9]])
    }
}

/// Decodes a Linux cooked capture v1 frame down to its IP header.
pub(super) fn linux_sll(frame: &[u8]) -> Result<Layer3<'_>, DropReason> {
    let header = array_at(frame, 0).ok_or(DropReason::TruncatedLink)?;
    let sll = SllHeader { header };
    if sll.arphrd() == ARPHRD_NETLINK {
        return Err(DropReason::NonIp);
    }
    ethernet::follow_ethertype(sll.protocol(), frame.get(SLL_LEN..).unwrap_or_default())
}

/// Decodes a Linux cooked capture v2 frame down to its IP header.
pub(super) fn linux_sll2(frame: &[u8]) -> Result<Layer3<'_>, DropReason> {
    let header = array_at(frame, 0).ok_or(DropReason::TruncatedLink)?;
    let sll2 = Sll2Header { header };
    if sll2.arphrd() == ARPHRD_NETLINK {
        return Err(DropReason::NonIp);
    }
    ethernet::follow_ethertype(sll2.protocol(), frame.get(SLL2_LEN..).unwrap_or_default())
}

/// Decodes a BSD loopback (`LINKTYPE_NULL`) frame: the address family is in the capturing
/// host's byte order, which the file does not record, so both orders are accepted (a family
/// never exceeds 16 bits, so a value that does is byte-swapped).
pub(super) fn bsd_null(frame: &[u8]) -> Result<Layer3<'_>, DropReason> {
    let af = array_at::<LOOPBACK_LEN>(frame, 0).ok_or(DropReason::TruncatedLink)?;
    let mut family = u32::from_le_bytes(*af);
    if family > 0xffff {
        family = family.swap_bytes();
    }
    by_family(family, frame.get(LOOPBACK_LEN..).unwrap_or_default())
}

/// Decodes an OpenBSD loopback (`LINKTYPE_LOOP`) frame: the address family is big-endian.
pub(super) fn openbsd_loop(frame: &[u8]) -> Result<Layer3<'_>, DropReason> {
    let af = array_at::<LOOPBACK_LEN>(frame, 0).ok_or(DropReason::TruncatedLink)?;
    by_family(
        u32::from_be_bytes(*af),
        frame.get(LOOPBACK_LEN..).unwrap_or_default(),
    )
}

fn by_family(family: u32, rest: &[u8]) -> Result<Layer3<'_>, DropReason> {
    let network = match family {
        address_family::INET => Network::Ipv4(rest),
        address_family::INET6_BSD
        | address_family::INET6_FREEBSD
        | address_family::INET6_DARWIN => Network::Ipv6(rest),
        _ => return Err(DropReason::NonIp),
    };
    Ok(Layer3::untagged(network))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sll(arphrd: u16, proto: u16) -> Vec<u8> {
        let mut f = vec![0, 0];
        f.extend_from_slice(&arphrd.to_be_bytes());
        f.extend_from_slice(&[0, 6, 1, 2, 3, 4, 5, 6, 0, 0]);
        f.extend_from_slice(&proto.to_be_bytes());
        f
    }

    fn sll2(arphrd: u16, proto: u16) -> Vec<u8> {
        let mut f = proto.to_be_bytes().to_vec();
        f.extend_from_slice(&[0, 0, 0, 0, 0, 3]);
        f.extend_from_slice(&arphrd.to_be_bytes());
        f.extend_from_slice(&[4, 6, 1, 2, 3, 4, 5, 6, 0, 0]);
        f
    }

    #[test]
    fn sll_v1_protocols() {
        let mut f = sll(1, 0x0800);
        assert_eq!(f.len(), SLL_LEN);
        f.push(0x45);
        assert_eq!(linux_sll(&f), Ok(Layer3::untagged(Network::Ipv4(&[0x45]))));
        let f = sll(1, 0x86dd);
        assert_eq!(linux_sll(&f), Ok(Layer3::untagged(Network::Ipv6(&[]))));
        assert_eq!(linux_sll(&sll(1, 0x0806)), Err(DropReason::NonIp));
        // ETH_P_802_2 (LLC) and a netlink capture whose family happens to look like IPv4.
        assert_eq!(linux_sll(&sll(1, 0x0004)), Err(DropReason::NonIp));
        assert_eq!(
            linux_sll(&sll(ARPHRD_NETLINK, 0x0800)),
            Err(DropReason::NonIp)
        );
        let mut f = sll(1, 0x8100);
        f.extend_from_slice(&[0x00, 0x2a, 0x86, 0xdd]);
        assert_eq!(
            linux_sll(&f),
            Ok(Layer3 {
                network: Network::Ipv6(&[]),
                vlan: Some(42)
            })
        );
    }

    #[test]
    fn sll_v2_protocols() {
        let mut f = sll2(1, 0x86dd);
        assert_eq!(f.len(), SLL2_LEN);
        f.push(0x60);
        assert_eq!(linux_sll2(&f), Ok(Layer3::untagged(Network::Ipv6(&[0x60]))));
        assert_eq!(
            linux_sll2(&sll2(1, 0x0800)),
            Ok(Layer3::untagged(Network::Ipv4(&[])))
        );
        assert_eq!(linux_sll2(&sll2(1, 0x88cc)), Err(DropReason::NonIp));
        assert_eq!(
            linux_sll2(&sll2(ARPHRD_NETLINK, 0x86dd)),
            Err(DropReason::NonIp)
        );
    }

    #[test]
    fn cooked_headers_truncated_at_every_length() {
        let f = sll(1, 0x0800);
        for n in 0..f.len() {
            assert_eq!(
                linux_sll(&f[..n]),
                Err(DropReason::TruncatedLink),
                "sll length {n}"
            );
        }
        let f = sll2(1, 0x0800);
        for n in 0..f.len() {
            assert_eq!(
                linux_sll2(&f[..n]),
                Err(DropReason::TruncatedLink),
                "sll2 length {n}"
            );
        }
    }

    #[test]
    fn bsd_null_both_byte_orders() {
        for af in [2u32, 24, 28, 30] {
            let want = if af == 2 {
                Network::Ipv4(&[9])
            } else {
                Network::Ipv6(&[9])
            };
            for bytes in [af.to_le_bytes(), af.to_be_bytes()] {
                let mut f = bytes.to_vec();
                f.push(9);
                assert_eq!(
                    bsd_null(&f),
                    Ok(Layer3::untagged(want)),
                    "af {af} {bytes:?}"
                );
            }
        }
        for af in [0u32, 1, 10, 23, 0x0800] {
            assert_eq!(
                bsd_null(&af.to_le_bytes()),
                Err(DropReason::NonIp),
                "af {af}"
            );
            assert_eq!(
                bsd_null(&af.to_be_bytes()),
                Err(DropReason::NonIp),
                "af {af}"
            );
        }
        for n in 0..LOOPBACK_LEN {
            assert_eq!(bsd_null(&[2, 0, 0, 0][..n]), Err(DropReason::TruncatedLink));
        }
    }

    #[test]
    fn openbsd_loop_is_network_order() {
        assert_eq!(
            openbsd_loop(&[0, 0, 0, 2]),
            Ok(Layer3::untagged(Network::Ipv4(&[])))
        );
        assert_eq!(
            openbsd_loop(&[0, 0, 0, 24]),
            Ok(Layer3::untagged(Network::Ipv6(&[])))
        );
        assert_eq!(openbsd_loop(&[2, 0, 0, 0]), Err(DropReason::NonIp));
        for n in 0..LOOPBACK_LEN {
            assert_eq!(
                openbsd_loop(&[0, 0, 0, 2][..n]),
                Err(DropReason::TruncatedLink)
            );
        }
    }
}
