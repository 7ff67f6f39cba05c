//! The managed-subnet prefilter in the driver: the part of the XDP program (`xdp/bypass.c`)
//! that drops, before the AF_XDP socket, plain TCP/UDP packets with neither address in a managed
//! subnet, and counts them per reason.
//!
//! Owns: filling the program's `ptl_managed` longest-prefix-match trie from the configured
//! subnets and then switching the prefilter on (`ptl_pf_on`), once, after the port has started;
//! reading what the driver dropped per reason (`ptl_pf_drops`). Must not: run per packet, or
//! decide which subnets are managed (`[hardware.offloads] managed_subnets` does).
//!
//! Until the switch is on the program passes every packet to the socket, so the worker's
//! software prefilter ([`crate::prefilter::ManagedSubnets`]) still skips what arrives before it
//! (and, after it, the encapsulated and fragmented packets the program leaves to the worker).

use super::xdp::{program_map, BpfError};
use ipnet::IpNet;
use portolan_dpdk_sys as sys;
use std::os::fd::{AsRawFd, OwnedFd};

/// Name of the program's trie of managed subnets.
pub const MANAGED_MAP_NAME: &str = "ptl_managed";
/// Name of the program's prefilter switch (index 0: 1 = on).
pub const SWITCH_MAP_NAME: &str = "ptl_pf_on";
/// Name of the program's counters of prefiltered packets, per [`PrefilterReason`].
pub const DROPS_MAP_NAME: &str = "ptl_pf_drops";
/// Subnets the trie holds (`max_entries` in `xdp/bypass.c`).
pub const MANAGED_MAP_ENTRIES: usize = 1024;

/// Why the driver dropped a packet before the worker (the index of its counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefilterReason {
    /// An IPv4 TCP/UDP packet with neither address in a managed subnet.
    UnmanagedIpv4 = 0,
    /// An IPv6 TCP/UDP packet with neither address in a managed subnet.
    UnmanagedIpv6 = 1,
}

impl PrefilterReason {
    /// Every reason, in counter order.
    pub const ALL: [PrefilterReason; 2] = [
        PrefilterReason::UnmanagedIpv4,
        PrefilterReason::UnmanagedIpv6,
    ];

    /// Stable snake_case name (statistics, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            PrefilterReason::UnmanagedIpv4 => "unmanaged_ipv4",
            PrefilterReason::UnmanagedIpv6 => "unmanaged_ipv6",
        }
    }
}

/// A managed subnet as `struct ptl_subnet_key` in `xdp/bypass.c`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SubnetKey {
    prefixlen: u32,
    family: u8,
    addr: [u8; 16],
    pad: [u8; 3],
}

impl SubnetKey {
    /// The trie key of `net`: the family byte's 8 bits count in the prefix.
    fn of(net: &IpNet) -> SubnetKey {
        let mut key = SubnetKey {
            prefixlen: 8 + u32::from(net.prefix_len()),
            ..SubnetKey::default()
        };
        match net {
            IpNet::V4(n) => {
                key.family = 4;
                key.addr[..4].copy_from_slice(&n.network().octets());
            }
            IpNet::V6(n) => {
                key.family = 6;
                key.addr = n.network().octets();
            }
        }
        key
    }
}

/// One reason's counters, as `struct ptl_pf_counters`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefilterCounters {
    /// Packets dropped in the driver.
    pub packets: u64,
    /// Their frame bytes.
    pub bytes: u64,
}

/// The prefilter of the XDP program attached to one interface, filled and switched on.
#[derive(Debug)]
pub struct XdpPrefilter {
    drops: OwnedFd,
    iface: String,
    subnets: usize,
}

/// `BPF_ANY`: insert or replace.
const BPF_ANY: u64 = 0;

/// `bpf_map_update_elem(fd, key, value, BPF_ANY)` for `#[repr(C)]` key and value types of the
/// map's sizes.
fn update<K: Copy, V: Copy>(fd: &OwnedFd, key: &K, value: &V) -> Result<(), BpfError> {
    // SAFETY: key and value point to #[repr(C)] values of the map's key and value sizes (the
    // callers' types mirror the C structs), valid for the call; the fd is open.
    let r = unsafe {
        sys::portolan_bpf_map_update(
            fd.as_raw_fd(),
            (key as *const K).cast(),
            (value as *const V).cast(),
            BPF_ANY,
        )
    };
    if r < 0 {
        Err(BpfError(-r))
    } else {
        Ok(())
    }
}

impl XdpPrefilter {
    /// Fills the trie of the program attached to `iface` with `subnets` and switches the
    /// prefilter on. An error (no such program or map, more subnets than the trie holds, a
    /// refused insert) leaves the switch off: every packet then reaches the worker, whose
    /// software prefilter does the work.
    pub fn start(iface: &str, subnets: &[IpNet]) -> Result<XdpPrefilter, String> {
        if subnets.is_empty() {
            return Err("no managed subnet: the driver prefilter would drop everything".into());
        }
        if subnets.len() > MANAGED_MAP_ENTRIES {
            return Err(format!(
                "{} managed subnets; the driver's trie holds {MANAGED_MAP_ENTRIES}",
                subnets.len()
            ));
        }
        let managed = program_map(iface, MANAGED_MAP_NAME)?;
        let switch = program_map(iface, SWITCH_MAP_NAME)?;
        let drops = program_map(iface, DROPS_MAP_NAME)?;
        for net in subnets {
            update(&managed, &SubnetKey::of(net), &1u8)
                .map_err(|e| format!("interface {iface}: subnet {net}: {e}"))?;
        }
        update(&switch, &0u32, &1u32)
            .map_err(|e| format!("interface {iface}: switching the prefilter on: {e}"))?;
        Ok(XdpPrefilter {
            drops,
            iface: iface.to_string(),
            subnets: subnets.len(),
        })
    }

    /// The interface whose program runs the prefilter.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Subnets in the trie.
    pub fn subnets(&self) -> usize {
        self.subnets
    }

    /// What the driver dropped so far for `reason`.
    pub fn drops(&self, reason: PrefilterReason) -> Result<PrefilterCounters, BpfError> {
        let key = reason as u32;
        let mut out = PrefilterCounters::default();
        // SAFETY: key and out are #[repr(C)] values of the map's key (u32) and value
        // (struct ptl_pf_counters) sizes, valid for the call; the fd is open.
        let r = unsafe {
            sys::portolan_bpf_map_lookup(
                self.drops.as_raw_fd(),
                (&key as *const u32).cast(),
                (&mut out as *mut PrefilterCounters).cast(),
            )
        };
        if r < 0 {
            Err(BpfError(-r))
        } else {
            Ok(out)
        }
    }

    /// Every reason's counters added up (0 for a reason that cannot be read).
    pub fn total(&self) -> PrefilterCounters {
        PrefilterReason::ALL
            .iter()
            .filter_map(|r| self.drops(*r).ok())
            .fold(PrefilterCounters::default(), |a, c| PrefilterCounters {
                packets: a.packets + c.packets,
                bytes: a.bytes + c.bytes,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_key_matches_the_c_struct() {
        assert_eq!(std::mem::size_of::<SubnetKey>(), 24);
        assert_eq!(std::mem::size_of::<PrefilterCounters>(), 16);
        let k = SubnetKey::of(&"10.20.0.0/16".parse().unwrap());
        assert_eq!((k.prefixlen, k.family), (24, 4));
        assert_eq!(&k.addr[..4], &[10, 20, 0, 0]);
        assert!(k.addr[4..].iter().all(|b| *b == 0));
        let k6 = SubnetKey::of(&"2001:db8:20::/48".parse().unwrap());
        assert_eq!((k6.prefixlen, k6.family), (56, 6));
        assert_eq!(&k6.addr[..6], &[0x20, 0x01, 0x0d, 0xb8, 0x00, 0x20]);
        assert_eq!(PrefilterReason::UnmanagedIpv6 as u32, 1);
        assert!(XdpPrefilter::start("lo", &[]).is_err());
    }
}
