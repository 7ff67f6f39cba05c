//! The software fallback of the managed-subnet prefilter: what the NIC's rte_flow rules would do
//! (`hwconfig`'s offload plan, `prefilter_managed_subnets`) when the NIC cannot.
//!
//! Owns: the managed devices' subnets in a form a worker tests per packet ([`ManagedSubnets`]).
//! A packet with neither address in any of them is not the appliance's business (no managed
//! device takes part), so the worker counts it as prefiltered and skips it before the flow
//! table, exactly where a NIC drop rule would have kept it from arriving. Must not: allocate
//! or lock per packet, or look past the addresses.

use ipnet::IpNet;
use portolan_packet::Packet;
use std::net::IpAddr;

/// The managed devices' subnets, as network/mask integer pairs per address family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManagedSubnets {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl ManagedSubnets {
    /// The subnets of `nets` (host bits, if any, are ignored: the network is what counts).
    pub fn new(nets: &[IpNet]) -> ManagedSubnets {
        let mut s = ManagedSubnets::default();
        for net in nets {
            match net {
                IpNet::V4(n) => {
                    let mask = n.netmask().to_bits();
                    s.v4.push((n.network().to_bits() & mask, mask));
                }
                IpNet::V6(n) => {
                    let mask = n.netmask().to_bits();
                    s.v6.push((n.network().to_bits() & mask, mask));
                }
            }
        }
        s
    }

    /// Number of subnets.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// True when there is no subnet (such a filter admits nothing).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when `ip` is inside one of the subnets (IPv4 addresses match IPv4 subnets only,
    /// IPv6 addresses IPv6 subnets only).
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => {
                let a = a.to_bits();
                self.v4.iter().any(|&(net, mask)| a & mask == net)
            }
            IpAddr::V6(a) => {
                let a = a.to_bits();
                self.v6.iter().any(|&(net, mask)| a & mask == net)
            }
        }
    }

    /// True when the packet has its source or its destination in a managed subnet: the
    /// packets the NIC's pass rules (one per subnet and direction) would let through.
    #[inline]
    pub fn admits(&self, pkt: &Packet<'_>) -> bool {
        self.contains(pkt.src_ip) || self.contains(pkt.dst_ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn subnets(s: &[&str]) -> ManagedSubnets {
        let nets: Vec<IpNet> = s.iter().map(|n| n.parse().expect("net")).collect();
        ManagedSubnets::new(&nets)
    }

    #[test]
    fn membership_by_family_and_prefix() {
        let m = subnets(&["10.20.0.0/16", "192.0.2.128/25", "2001:db8:20::/48"]);
        assert_eq!(m.len(), 3);
        let yes = [
            "10.20.0.1",
            "10.20.255.255",
            "192.0.2.200",
            "2001:db8:20:ffff::1",
        ];
        let no = [
            "10.21.0.1",
            "192.0.2.127",
            "2001:db8:21::1",
            "::ffff:10.20.0.1",
            "0.0.0.0",
        ];
        for a in yes {
            assert!(m.contains(a.parse().expect("ip")), "{a} should be inside");
        }
        for a in no {
            assert!(!m.contains(a.parse().expect("ip")), "{a} should be outside");
        }
        assert!(!ManagedSubnets::default().contains("10.20.0.1".parse().expect("ip")));
        assert!(subnets(&["0.0.0.0/0"]).contains("203.0.113.9".parse().expect("ip")));
    }

    proptest! {
        /// The integer test agrees with ipnet's own `contains` for any subnet and address.
        #[test]
        fn agrees_with_ipnet(net in any::<u32>(), len in 0u8..=32, addr in any::<u32>(),
                             net6 in any::<u128>(), len6 in 0u8..=128, addr6 in any::<u128>()) {
            let n4 = IpNet::V4(ipnet::Ipv4Net::new(net.into(), len).expect("len"));
            let n6 = IpNet::V6(ipnet::Ipv6Net::new(net6.into(), len6).expect("len"));
            let m = ManagedSubnets::new(&[n4, n6]);
            let a4 = IpAddr::V4(addr.into());
            let a6 = IpAddr::V6(addr6.into());
            prop_assert_eq!(m.contains(a4), n4.contains(&a4));
            prop_assert_eq!(m.contains(a6), n6.contains(&a6));
        }
    }
}
