//! Toeplitz RSS hashing exactly as NICs compute it, the symmetric key, and hash → RX queue.
//!
//! Owns: [`toeplitz_hash`], the hash input a NIC builds from an IPv4/IPv6 packet
//! ([`RssTuple`]), the test of whether a key is symmetric ([`check_symmetric`]), fitting a key
//! to a device's key size ([`key_for_device`]) and the mapping of a hash to an RX queue
//! ([`QueueMapping`]). Must not: decode frames (the sharder does, with `portolan_packet`),
//! allocate or panic — [`RssTuple::hash`] may run per packet.
//!
//! # The Toeplitz hash
//!
//! For an input of `n` bits and a key of at least `n + 32` bits, bit `i` of the input (most
//! significant bit of the first byte is bit 0) contributes the 32-bit *window* of key bits
//! `i .. i + 32`; the hash is the XOR of the windows of the input's set bits. This is the
//! `NdisHashFunctionToeplitz` of Microsoft's RSS specification and what Intel, Mellanox and
//! most other NICs implement (DPDK's `rte_softrss` computes the same function).
//!
//! # The input
//!
//! As in the RSS specification, the input is the source address, the destination address, then
//! (for TCP and UDP) the source port and the destination port, all in network byte order:
//! 12 bytes for an IPv4 4-tuple, 36 for IPv6, 8 and 32 for the address-only 2-tuple that NICs
//! use for fragments and other IP protocols. A 36-byte input needs a 40-byte key.
//!
//! # Why `6d5a` repeated makes the hash symmetric
//!
//! Because the hash is linear (an XOR of windows), swapping source and destination leaves it
//! unchanged exactly when each input bit's window equals the window of the bit it is swapped
//! with: window(i) = window(i + 32) for the IPv4 addresses, window(i) = window(i + 128) for
//! the IPv6 addresses, and window(p) = window(p + 16) for the ports. A key whose bits repeat
//! every 16 bits — the two bytes `6d 5a` over and over — has window(i) = window(i + 16k) for
//! every `k`, so all three hold: a flow's two directions get one hash, hence one RX queue, and
//! one worker owns the whole flow (Woo and Park, *Scalable TCP Session Monitoring with
//! Symmetric Receive-side Scaling*, KAIST 2012). `6d5a` itself is the start of Microsoft's
//! standard key; any 16-bit pattern would do, but one with few repeated bits spreads better
//! (an all-zero or all-one pattern would make every hash 0 or depend only on parity).
//!
//! The price: with a 16-bit-periodic key the hash depends only on the XOR of the input's 16-bit
//! words, so there are at most 65 536 distinct hashes. That is ample for spreading flows over a
//! RETA of 128–512 entries, but the RSS hash is no substitute for the flow table's own hash.
//!
//! # From hash to queue
//!
//! A NIC does not take `hash % queues`: it indexes a redirection table (RETA) with the low bits
//! of the hash, and DPDK drivers (ixgbe, i40e, ice, mlx5, …) fill the RETA round-robin when the
//! port is configured, `reta[i] = i % rx_queues`. So the queue is
//! `(hash % reta_size) % rx_queues` ([`QueueMapping::Reta`]; `reta_size` is a power of two,
//! 128 on ixgbe, 512 on i40e and mlx5). When `rx_queues` divides `reta_size` this equals
//! `hash % rx_queues` ([`QueueMapping::Modulo`]); for 3, 5, 6, … queues the two differ, and the
//! RETA form is what the hardware does.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Length of the standard RSS key: enough for the 36-byte IPv6 4-tuple input.
pub const KEY_LEN: usize = 40;

/// The symmetric key: `6d 5a` repeated to 40 bytes (see the module documentation).
pub const SYMMETRIC_KEY: [u8; KEY_LEN] = symmetric_key();

/// Microsoft's standard RSS verification key (`6d5a56da255b0ec2…`), the default of many NICs.
/// It is not symmetric; it is here to check [`toeplitz_hash`] against the published vectors.
pub const MICROSOFT_KEY: [u8; KEY_LEN] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

const fn symmetric_key() -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    let mut i = 0;
    while i < KEY_LEN {
        key[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    key
}

/// Key bytes `at .. at + 8` as a big-endian `u64`, bytes past the key's end reading as zero.
fn key_u64(key: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    for (k, slot) in w.iter_mut().enumerate() {
        *slot = at
            .checked_add(k)
            .and_then(|i| key.get(i))
            .copied()
            .unwrap_or(0);
    }
    u64::from_be_bytes(w)
}

/// The 32-bit window of key bits `bit .. bit + 32` (bits past the key's end read as zero).
fn window(key: &[u8], bit: usize) -> u32 {
    let w = key_u64(key, bit / 8);
    ((w << (bit % 8)) >> 32) as u32
}

/// The Toeplitz hash of `input` under `key`, as a NIC computes it.
///
/// Key bits past the end of `key` read as zero, so a key shorter than `input.len() + 4` bytes
/// gives the hash a NIC with that (zero-padded) key would; pass at least [`KEY_LEN`] bytes for
/// IPv6 inputs. Cost: one 8-byte key load per input byte, no allocation.
pub fn toeplitz_hash(key: &[u8], input: &[u8]) -> u32 {
    let mut hash = 0u32;
    for (i, &byte) in input.iter().enumerate() {
        if byte == 0 {
            continue;
        }
        let w = key_u64(key, i);
        for b in 0..8 {
            if byte & (0x80 >> b) != 0 {
                hash ^= ((w << b) >> 32) as u32;
            }
        }
    }
    hash
}

/// What a NIC hashes for one IP packet: its addresses, and its ports when it is TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RssTuple {
    /// An IPv4 packet.
    Ipv4 {
        /// Source address.
        src: Ipv4Addr,
        /// Destination address.
        dst: Ipv4Addr,
        /// `(source port, destination port)` for TCP and UDP; `None` hashes the addresses only
        /// (fragments, ICMP and other protocols).
        ports: Option<(u16, u16)>,
    },
    /// An IPv6 packet.
    Ipv6 {
        /// Source address.
        src: Ipv6Addr,
        /// Destination address.
        dst: Ipv6Addr,
        /// As for IPv4.
        ports: Option<(u16, u16)>,
    },
}

/// Largest hash input: the IPv6 4-tuple.
pub const MAX_INPUT_LEN: usize = 36;

impl RssTuple {
    /// The tuple of a packet from `src` to `dst`; `None` when the address families differ
    /// (no real packet has that).
    pub fn new(src: IpAddr, dst: IpAddr, ports: Option<(u16, u16)>) -> Option<RssTuple> {
        match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => Some(RssTuple::Ipv4 { src, dst, ports }),
            (IpAddr::V6(src), IpAddr::V6(dst)) => Some(RssTuple::Ipv6 { src, dst, ports }),
            _ => None,
        }
    }

    /// The same packet's tuple in the opposite direction.
    pub fn reversed(self) -> RssTuple {
        let swap = |p: Option<(u16, u16)>| p.map(|(s, d)| (d, s));
        match self {
            RssTuple::Ipv4 { src, dst, ports } => RssTuple::Ipv4 {
                src: dst,
                dst: src,
                ports: swap(ports),
            },
            RssTuple::Ipv6 { src, dst, ports } => RssTuple::Ipv6 {
                src: dst,
                dst: src,
                ports: swap(ports),
            },
        }
    }

    /// Writes the hash input (source address, destination address, source port, destination
    /// port, network byte order) into `buf` and returns its length: 8, 12, 32 or 36.
    pub fn write_input(&self, buf: &mut [u8; MAX_INPUT_LEN]) -> usize {
        let (addr_len, ports) = match self {
            RssTuple::Ipv4 { src, dst, ports } => {
                buf[0..4].copy_from_slice(&src.octets());
                buf[4..8].copy_from_slice(&dst.octets());
                (8, *ports)
            }
            RssTuple::Ipv6 { src, dst, ports } => {
                buf[0..16].copy_from_slice(&src.octets());
                buf[16..32].copy_from_slice(&dst.octets());
                (32, *ports)
            }
        };
        match ports {
            Some((sp, dp)) => {
                buf[addr_len..addr_len + 2].copy_from_slice(&sp.to_be_bytes());
                buf[addr_len + 2..addr_len + 4].copy_from_slice(&dp.to_be_bytes());
                addr_len + 4
            }
            None => addr_len,
        }
    }

    /// The Toeplitz hash of this tuple's input under `key`.
    pub fn hash(&self, key: &[u8]) -> u32 {
        let mut buf = [0u8; MAX_INPUT_LEN];
        let len = self.write_input(&mut buf);
        toeplitz_hash(key, &buf[..len])
    }
}

/// How a hash selects one of `rx_queues` queues (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum QueueMapping {
    /// A redirection table of `size` entries (a power of two) filled round-robin, as DPDK
    /// drivers do: queue = `(hash % size) % rx_queues`.
    Reta {
        /// Number of RETA entries; a power of two.
        size: u16,
    },
    /// queue = `hash % rx_queues`.
    Modulo,
}

/// The RETA size used unless configured: 128 entries (ixgbe's, and DPDK's `RTE_ETH_RSS_RETA_SIZE_128`).
pub const DEFAULT_RETA_SIZE: u16 = 128;

impl Default for QueueMapping {
    fn default() -> Self {
        QueueMapping::Reta {
            size: DEFAULT_RETA_SIZE,
        }
    }
}

impl QueueMapping {
    /// The RX queue, in `0 .. rx_queues`, that a packet with `hash` lands on. `rx_queues` of 0
    /// is treated as 1, and a RETA size of 0 as 1 (queue 0), so this never panics.
    pub fn queue(self, hash: u32, rx_queues: u16) -> u16 {
        let queues = u32::from(rx_queues.max(1));
        let q = match self {
            QueueMapping::Reta { size } => (hash % u32::from(size.max(1))) % queues,
            QueueMapping::Modulo => hash % queues,
        };
        // q < queues <= u16::MAX.
        q as u16
    }
}

impl fmt::Display for QueueMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueMapping::Reta { size } => write!(f, "RETA of {size} entries, round-robin"),
            QueueMapping::Modulo => f.write_str("hash % queues"),
        }
    }
}

/// Which swap a non-symmetric key fails: the first pair of input bits whose key windows differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the key is not symmetric: {what} bit {bit} and bit {partner} of the hash input get different key windows, so the two directions of a flow would hash differently")]
pub struct AsymmetricKey {
    /// Which part of the input: `IPv4 address`, `IPv6 address`, `IPv4 port` or `IPv6 port`.
    pub what: &'static str,
    /// Input bit of the forward direction.
    pub bit: usize,
    /// Input bit it is swapped with in the reverse direction.
    pub partner: usize,
}

/// Checks exactly whether `key` hashes both directions of every IPv4 and IPv6 2-tuple and
/// 4-tuple alike: window(i) must equal window(j) for every input bit `i` swapped with `j`.
pub fn check_symmetric(key: &[u8]) -> Result<(), AsymmetricKey> {
    // (part, first bit of the source field, field width in bits, distance to its partner)
    const SWAPS: [(&str, usize, usize, usize); 4] = [
        ("IPv4 address", 0, 32, 32),
        ("IPv4 port", 64, 16, 16),
        ("IPv6 address", 0, 128, 128),
        ("IPv6 port", 256, 16, 16),
    ];
    for (what, start, width, distance) in SWAPS {
        for bit in start..start + width {
            let partner = bit + distance;
            if window(key, bit) != window(key, partner) {
                return Err(AsymmetricKey { what, bit, partner });
            }
        }
    }
    Ok(())
}

/// Why a key cannot be programmed into a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeviceKeyError {
    /// The device's key is shorter than the 40 bytes IPv6 4-tuple hashing needs.
    #[error("the device's RSS key is {device} bytes; hashing IPv6 4-tuples needs {KEY_LEN}")]
    DeviceKeyTooShort {
        /// `hash_key_size` the device reported.
        device: usize,
    },
    /// The configured key is shorter than 40 bytes.
    #[error("the configured RSS key is {configured} bytes; at least {KEY_LEN} are needed")]
    KeyTooShort {
        /// Length of the configured key.
        configured: usize,
    },
}

/// The key to program into a device whose key is `device_len` bytes (`hash_key_size` of
/// `rte_eth_dev_info`; i40e takes 52, most others 40), giving the same hashes as `key`.
///
/// Only the first 40 key bytes reach any 4-tuple or 2-tuple input, so a longer device key is
/// `key` truncated, or extended by repeating it (which keeps a 16-bit-periodic key periodic).
pub fn key_for_device(key: &[u8], device_len: usize) -> Result<Vec<u8>, DeviceKeyError> {
    if key.len() < KEY_LEN {
        return Err(DeviceKeyError::KeyTooShort {
            configured: key.len(),
        });
    }
    if device_len < KEY_LEN {
        return Err(DeviceKeyError::DeviceKeyTooShort { device: device_len });
    }
    Ok(key.iter().copied().cycle().take(device_len).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One row of Microsoft's "Verifying the RSS Hash Calculation" tables.
    struct Vector {
        dst: &'static str,
        dst_port: u16,
        src: &'static str,
        src_port: u16,
        ip_only: u32,
        with_tcp: u32,
    }

    const IPV4_VECTORS: [Vector; 5] = [
        Vector {
            dst: "161.142.100.80",
            dst_port: 1766,
            src: "66.9.149.187",
            src_port: 2794,
            ip_only: 0x323e8fc2,
            with_tcp: 0x51ccc178,
        },
        Vector {
            dst: "65.69.140.83",
            dst_port: 4739,
            src: "199.92.111.2",
            src_port: 14230,
            ip_only: 0xd718262a,
            with_tcp: 0xc626b0ea,
        },
        Vector {
            dst: "12.22.207.184",
            dst_port: 38024,
            src: "24.19.198.95",
            src_port: 12898,
            ip_only: 0xd2d0a5de,
            with_tcp: 0x5c2b394a,
        },
        Vector {
            dst: "209.142.163.6",
            dst_port: 2217,
            src: "38.27.205.30",
            src_port: 48228,
            ip_only: 0x82989176,
            with_tcp: 0xafc7327f,
        },
        Vector {
            dst: "202.188.127.2",
            dst_port: 1303,
            src: "153.39.163.191",
            src_port: 44251,
            ip_only: 0x5d1809c5,
            with_tcp: 0x10e828a2,
        },
    ];

    const IPV6_VECTORS: [Vector; 3] = [
        Vector {
            dst: "3ffe:2501:200:3::1",
            dst_port: 1766,
            src: "3ffe:2501:200:1fff::7",
            src_port: 2794,
            ip_only: 0x2cc18cd5,
            with_tcp: 0x40207d3d,
        },
        Vector {
            dst: "ff02::1",
            dst_port: 4739,
            src: "3ffe:501:8::260:97ff:fe40:efab",
            src_port: 14230,
            ip_only: 0x0f0c461c,
            with_tcp: 0xdde51bbf,
        },
        Vector {
            dst: "fe80::200:f8ff:fe21:67cf",
            dst_port: 38024,
            src: "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
            src_port: 44251,
            ip_only: 0x4b61e985,
            with_tcp: 0x02d1feef,
        },
    ];

    fn check(vectors: &[Vector]) {
        for v in vectors {
            let src: IpAddr = v.src.parse().unwrap();
            let dst: IpAddr = v.dst.parse().unwrap();
            let ip = RssTuple::new(src, dst, None).unwrap();
            let tcp = RssTuple::new(src, dst, Some((v.src_port, v.dst_port))).unwrap();
            assert_eq!(
                ip.hash(&MICROSOFT_KEY),
                v.ip_only,
                "{} -> {} addresses",
                v.src,
                v.dst
            );
            assert_eq!(
                tcp.hash(&MICROSOFT_KEY),
                v.with_tcp,
                "{} -> {} 4-tuple",
                v.src,
                v.dst
            );
        }
    }

    #[test]
    fn microsoft_verification_suite_ipv4() {
        check(&IPV4_VECTORS);
    }

    #[test]
    fn microsoft_verification_suite_ipv6() {
        check(&IPV6_VECTORS);
    }

    #[test]
    fn input_layout_is_src_dst_sport_dport() {
        let t = RssTuple::new(
            "1.2.3.4".parse().unwrap(),
            "5.6.7.8".parse().unwrap(),
            Some((0x0102, 0x0304)),
        )
        .unwrap();
        let mut buf = [0u8; MAX_INPUT_LEN];
        let n = t.write_input(&mut buf);
        assert_eq!(&buf[..n], &[1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4]);
    }

    #[test]
    fn window_matches_bitwise_definition() {
        // window(i) built bit by bit from the key.
        let bit = |i: usize| {
            MICROSOFT_KEY
                .get(i / 8)
                .map_or(0u32, |b| u32::from(b >> (7 - i % 8) & 1))
        };
        for i in 0..(KEY_LEN * 8) {
            let slow = (0..32).fold(0u32, |acc, k| (acc << 1) | bit(i + k));
            assert_eq!(window(&MICROSOFT_KEY, i), slow, "window {i}");
        }
    }

    #[test]
    fn symmetric_key_is_6d5a_repeated_and_symmetric() {
        assert!(SYMMETRIC_KEY.chunks(2).all(|c| c == [0x6d, 0x5a]));
        assert_eq!(check_symmetric(&SYMMETRIC_KEY), Ok(()));
        let err = check_symmetric(&MICROSOFT_KEY).unwrap_err();
        assert_eq!(err.what, "IPv4 address");
        assert!(err.to_string().contains("not symmetric"));
    }

    #[test]
    fn device_key_is_cut_or_extended_and_hashes_alike() {
        let long = key_for_device(&SYMMETRIC_KEY, 52).unwrap();
        assert_eq!(long.len(), 52);
        assert_eq!(check_symmetric(&long), Ok(()));
        let t = RssTuple::new(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            Some((5223, 40000)),
        )
        .unwrap();
        assert_eq!(t.hash(&long), t.hash(&SYMMETRIC_KEY));
        assert_eq!(
            key_for_device(&SYMMETRIC_KEY, 0),
            Err(DeviceKeyError::DeviceKeyTooShort { device: 0 })
        );
        assert_eq!(
            key_for_device(&SYMMETRIC_KEY[..16], 40),
            Err(DeviceKeyError::KeyTooShort { configured: 16 })
        );
    }

    #[test]
    fn reta_mapping_is_round_robin_over_low_bits() {
        let reta = QueueMapping::Reta { size: 128 };
        // Entry 127 of a round-robin RETA over 3 queues is 127 % 3 = 1; hash % 3 would be 0.
        assert_eq!(reta.queue(0xffff_ff7f, 3), 1);
        assert_eq!(
            QueueMapping::Modulo.queue(0xffff_ff7f, 3),
            (0xffff_ff7fu32 % 3) as u16
        );
        // With a power-of-two queue count both agree.
        for h in [0u32, 1, 77, 0xdead_beef, u32::MAX] {
            assert_eq!(reta.queue(h, 4), QueueMapping::Modulo.queue(h, 4));
            assert!(reta.queue(h, 3) < 3);
        }
        assert_eq!(reta.queue(12345, 0), 0);
        assert_eq!(QueueMapping::Reta { size: 0 }.queue(12345, 4), 0);
    }

    fn ipv4() -> impl Strategy<Value = IpAddr> {
        any::<[u8; 4]>().prop_map(IpAddr::from)
    }

    fn ipv6() -> impl Strategy<Value = IpAddr> {
        any::<[u8; 16]>().prop_map(IpAddr::from)
    }

    proptest! {
        #[test]
        fn symmetric_key_hashes_both_directions_alike_v4(
            a in ipv4(), b in ipv4(), pa: u16, pb: u16, with_ports: bool
        ) {
            let t = RssTuple::new(a, b, with_ports.then_some((pa, pb))).unwrap();
            prop_assert_eq!(t.hash(&SYMMETRIC_KEY), t.reversed().hash(&SYMMETRIC_KEY));
        }

        #[test]
        fn symmetric_key_hashes_both_directions_alike_v6(
            a in ipv6(), b in ipv6(), pa: u16, pb: u16, with_ports: bool
        ) {
            let t = RssTuple::new(a, b, with_ports.then_some((pa, pb))).unwrap();
            prop_assert_eq!(t.hash(&SYMMETRIC_KEY), t.reversed().hash(&SYMMETRIC_KEY));
        }

        #[test]
        fn any_key_passing_check_symmetric_is_symmetric(
            pattern: [u8; 2], a in ipv6(), b in ipv6(), pa: u16, pb: u16
        ) {
            let key: Vec<u8> = pattern.iter().copied().cycle().take(KEY_LEN).collect();
            prop_assert_eq!(check_symmetric(&key), Ok(()));
            let t = RssTuple::new(a, b, Some((pa, pb))).unwrap();
            prop_assert_eq!(t.hash(&key), t.reversed().hash(&key));
        }

        #[test]
        fn hash_is_linear_in_the_input(x: [u8; 12], y: [u8; 12]) {
            let xy: Vec<u8> = x.iter().zip(&y).map(|(a, b)| a ^ b).collect();
            prop_assert_eq!(
                toeplitz_hash(&MICROSOFT_KEY, &xy),
                toeplitz_hash(&MICROSOFT_KEY, &x) ^ toeplitz_hash(&MICROSOFT_KEY, &y)
            );
        }
    }
}
