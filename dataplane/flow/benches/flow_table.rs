//! Update throughput of the flow table with 100 000 concurrent flows.
//!
//! `warm`: every flow already in the table (pure lookup + accounting, the common case).
//! `churn`: 100 000 flows through a 65 536-slot table, so most updates evict and create.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use portolan_flow::{FlowTable, FlowTableConfig};
use portolan_packet::{tcp_flags, Packet, TcpHeader, Transport};

const FLOWS: usize = 100_000;

/// One packet per flow, in a scrambled order, alternating directions and transports.
fn packets() -> Vec<Packet<'static>> {
    let mut out = Vec::with_capacity(FLOWS);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..FLOWS {
        // xorshift: a deterministic shuffle of client addresses and ports.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i as u32 & 0x00ff_ffff)));
        let server = IpAddr::V4(Ipv4Addr::from(0xc0a8_0000 | (x as u32 & 0xffff)));
        let cport = 1024 + (x >> 16) as u16 % 60000;
        let sport = [443u16, 80, 8443, 53][i % 4];
        let tcp = i % 3 != 0;
        let (src_ip, dst_ip, src_port, dst_port) = if i % 2 == 0 {
            (client, server, cport, sport)
        } else {
            (server, client, sport, cport)
        };
        out.push(Packet {
            src_ip,
            dst_ip,
            transport: if tcp { Transport::Tcp } else { Transport::Udp },
            src_port,
            dst_port,
            tcp: tcp.then_some(TcpHeader {
                seq: 1,
                ack: 1,
                flags: tcp_flags::ACK,
                window: 1024,
            }),
            vlan: None,
            payload: &[],
            payload_truncated: false,
        });
    }
    out
}

fn bench_update(c: &mut Criterion) {
    let pkts = packets();
    let mut group = c.benchmark_group("flow_table_update");
    group.throughput(Throughput::Elements(FLOWS as u64));

    let mut warm: FlowTable<u64> = FlowTable::new(FlowTableConfig {
        capacity: 131_072,
        ..FlowTableConfig::default()
    });
    let mut ts = 1_700_000_000_000_000u64;
    for p in &pkts {
        warm.update(p, ts, 100);
    }
    group.bench_function("warm_100k_flows", |b| {
        b.iter(|| {
            ts += 1;
            for p in &pkts {
                let (flow, dir) = warm.update(black_box(p), ts, 100);
                flow.app += 1;
                black_box(dir);
            }
        })
    });

    let mut churn: FlowTable<u64> = FlowTable::new(FlowTableConfig {
        capacity: 65_536,
        ..FlowTableConfig::default()
    });
    group.bench_function("churn_100k_flows_64k_slots", |b| {
        b.iter(|| {
            ts += 1;
            for p in &pkts {
                let (flow, dir) = churn.update(black_box(p), ts, 100);
                flow.app += 1;
                black_box(dir);
            }
            churn.drain_finished().for_each(drop);
        })
    });
    group.finish();
}

criterion_group!(benches, bench_update);
criterion_main!(benches);
