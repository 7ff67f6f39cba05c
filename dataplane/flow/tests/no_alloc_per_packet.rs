//! Once warm, the flow table does not touch the heap per packet: not for lookups, not for new
//! flows, not for evictions, expiry or draining finished flows.

mod common;

use common::*;
use portolan_flow::{FlowTable, FlowTableConfig};
use portolan_packet::Packet;

fn traffic(round: u16) -> Vec<Packet<'static>> {
    let mut v = Vec::new();
    for port in 0..200u16 {
        let p = 10_000 + round * 200 + port;
        v.push(tcp("10.0.0.1", p, "10.0.0.2", 443, SYN));
        v.push(tcp("10.0.0.2", 443, "10.0.0.1", p, SYN | ACK));
        v.push(tcp("10.0.0.1", p, "10.0.0.2", 443, ACK | PSH));
        v.push(udp("10.0.0.3", p, "10.0.0.4", 53));
        v.push(udp("10.0.0.4", 53, "10.0.0.3", p));
    }
    v
}

#[test]
fn warm_table_does_not_allocate_per_packet() {
    let cfg = FlowTableConfig {
        capacity: 256,
        ..FlowTableConfig::default()
    };
    let mut table: FlowTable<u64> = FlowTable::new(cfg);
    let rounds: Vec<Vec<Packet<'static>>> = (0..6).map(traffic).collect();
    let mut ts = 1_700_000_000_000_000u64;
    let run = |table: &mut FlowTable<u64>, pkts: &[Packet<'static>], ts: &mut u64| {
        let mut finished = 0u64;
        for p in pkts {
            *ts += 1000;
            let (flow, _) = table.update(p, *ts, 100);
            flow.app += 1;
        }
        // Jump past every timeout so expiry runs too, then drain.
        *ts += 700_000_000;
        table.expire(*ts);
        for f in table.drain_finished() {
            finished += f.flow.pkts();
        }
        finished
    };
    // Warm-up: fills the slab to capacity and grows nothing after.
    run(&mut table, &rounds[0], &mut ts);
    let before = table.stats();
    let info = allocation_counter::measure(|| {
        for pkts in &rounds[1..] {
            run(&mut table, pkts, &mut ts);
        }
    });
    let after = table.stats();
    assert!(
        after.evicted > before.evicted,
        "the measured rounds evicted"
    );
    assert!(
        after.expired > before.expired,
        "the measured rounds expired"
    );
    assert!(after.created - before.created >= 5 * 400);
    assert_eq!(
        info.count_total, 0,
        "heap allocations in a warm table: {info:?}"
    );
}
