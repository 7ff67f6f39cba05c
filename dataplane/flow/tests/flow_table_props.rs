//! Property tests: random packet sequences through a small table (so eviction, expiry and TCP
//! reuse all happen) conserve every packet and byte, per 5-tuple, and never exceed capacity.

mod common;

use std::collections::HashMap;
use std::net::IpAddr;

use common::*;
use portolan_flow::{FinishedFlow, Flow, FlowTable, FlowTableConfig};
use portolan_packet::Transport;
use proptest::prelude::*;

/// Endpoint pairs the generated packets use (a few, so flows are revisited often).
const PAIRS: &[(&str, u16, &str, u16)] = &[
    ("10.0.0.1", 40000, "10.0.0.2", 443),
    ("10.0.0.1", 40001, "10.0.0.2", 443),
    ("10.0.0.3", 53, "10.0.0.1", 53),
    ("2001:db8::1", 5000, "2001:db8::2", 5001),
    ("10.0.0.9", 7, "10.0.0.9", 8),
    ("192.168.0.1", 1, "10.0.0.1", 65535),
];

const FLAG_CHOICES: &[u8] = &[SYN, SYN | ACK, ACK, ACK | PSH, FIN | ACK, RST, RST | ACK, 0];

#[derive(Debug, Clone)]
enum Op {
    Packet {
        pair: usize,
        reverse: bool,
        is_tcp: bool,
        vlan: Option<u16>,
        flags: usize,
        len: u32,
        dt_ms: u64,
    },
    Expire {
        dt_ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (
            0..PAIRS.len(),
            any::<bool>(),
            any::<bool>(),
            prop_oneof![Just(None), Just(Some(10u16))],
            0..FLAG_CHOICES.len(),
            40u32..1600,
            0u64..3000,
        )
            .prop_map(|(pair, reverse, is_tcp, vlan, flags, len, dt_ms)| Op::Packet {
                pair,
                reverse,
                is_tcp,
                vlan,
                flags,
                len,
                dt_ms,
            }),
        1 => (0u64..20_000).prop_map(|dt_ms| Op::Expire { dt_ms }),
    ]
}

/// Direction-free identity of a flow: sorted endpoints, transport, VLAN.
type Key = ((IpAddr, u16), (IpAddr, u16), bool, Option<u16>);

fn key_of<A>(f: &Flow<A>) -> Key {
    let a = (f.client_ip, f.client_port);
    let b = (f.server_ip, f.server_port);
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    (lo, hi, f.transport == Transport::Tcp, f.vlan)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn packets_and_bytes_are_conserved(
        capacity in 1usize..6,
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let cfg = FlowTableConfig {
            capacity,
            tcp_idle_timeout_us: 20_000_000,
            tcp_closed_timeout_us: 3_000_000,
            udp_idle_timeout_us: 8_000_000,
            tcp_unestablished_timeout_us: 5_000_000,
        };
        let mut table: FlowTable<u32> = FlowTable::new(cfg);
        let mut finished: Vec<FinishedFlow<u32>> = Vec::new();
        let mut fed: HashMap<Key, (u64, u64)> = HashMap::new();
        let (mut total_pkts, mut total_bytes) = (0u64, 0u64);
        let mut ts = 1_700_000_000_000_000u64;

        for op in &ops {
            match *op {
                Op::Packet { pair, reverse, is_tcp, vlan, flags, len, dt_ms } => {
                    ts += dt_ms * 1000;
                    let (a, ap, b, bp) = PAIRS[pair];
                    let (s, sp, d, dp) = if reverse { (b, bp, a, ap) } else { (a, ap, b, bp) };
                    let mut pkt = if is_tcp {
                        tcp(s, sp, d, dp, FLAG_CHOICES[flags])
                    } else {
                        udp(s, sp, d, dp)
                    };
                    pkt.vlan = vlan;
                    let (flow, _) = table.update(&pkt, ts, len);
                    flow.app += 1;
                    let (lo, hi) = {
                        let x = (pkt.src_ip, pkt.src_port);
                        let y = (pkt.dst_ip, pkt.dst_port);
                        if x <= y { (x, y) } else { (y, x) }
                    };
                    prop_assert_eq!(key_of(flow), (lo, hi, is_tcp, vlan));
                    let e = fed.entry((lo, hi, is_tcp, vlan)).or_default();
                    e.0 += 1;
                    e.1 += u64::from(len);
                    total_pkts += 1;
                    total_bytes += u64::from(len);
                }
                Op::Expire { dt_ms } => {
                    ts += dt_ms * 1000;
                    table.expire(ts);
                }
            }
            prop_assert!(table.len() <= capacity);
            prop_assert_eq!(table.iter().count(), table.len());
            let stats = table.stats();
            prop_assert_eq!(
                stats.created,
                stats.expired + stats.evicted + stats.reused + stats.shutdown + stats.active as u64
            );
            finished.extend(table.drain_finished());
        }

        // Active and finished flows together hold every packet and byte.
        let mut seen: HashMap<Key, (u64, u64)> = HashMap::new();
        let mut ids = Vec::new();
        for f in table.iter().chain(finished.iter().map(|f| &f.flow)) {
            prop_assert!(f.pkts() >= 1);
            prop_assert_eq!(u64::from(f.app), f.pkts(), "app state lived with its flow");
            prop_assert!(f.start_us <= f.end_us);
            let e = seen.entry(key_of(f)).or_default();
            e.0 += f.pkts();
            e.1 += f.bytes();
            ids.push(f.id);
        }
        prop_assert_eq!(&seen, &fed);
        let sum_pkts: u64 = seen.values().map(|v| v.0).sum();
        let sum_bytes: u64 = seen.values().map(|v| v.1).sum();
        prop_assert_eq!((sum_pkts, sum_bytes), (total_pkts, total_bytes));
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        prop_assert_eq!(ids.len(), n, "flow ids are unique");
        prop_assert_eq!(n as u64, table.stats().created);

        table.finish_all();
        prop_assert!(table.is_empty());
        let rest: Vec<_> = table.drain_finished().collect();
        prop_assert_eq!(rest.len() + finished.len(), n);
    }
}
