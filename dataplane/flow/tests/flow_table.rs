//! Flow table behaviour: bidirectional lookup, roles, TCP states, timeouts, eviction, EVE records.

mod common;

use common::*;
use portolan_flow::eve::{EveFlowReason, EveFlowState, FlowRecord};
use portolan_flow::{
    community_id_v1, FinishedFlow, FlowEndReason, FlowState, FlowTable, FlowTableConfig,
    RoleSource, Side, TcpState,
};

const S: u64 = 1_000_000;
const T0: u64 = 1_705_831_323_000_000;

fn table(capacity: usize) -> FlowTable<()> {
    FlowTable::new(FlowTableConfig {
        capacity,
        ..FlowTableConfig::default()
    })
}

fn drain(t: &mut FlowTable<()>) -> Vec<FinishedFlow<()>> {
    t.drain_finished().collect()
}

#[test]
fn both_directions_meet_in_one_flow() {
    let mut t = table(16);
    let (f, d) = t.update(&udp("10.0.0.1", 5000, "10.0.0.2", 53), T0, 80);
    let id = f.id;
    assert_eq!(d, Side::Client);
    let (f, d) = t.update(&udp("10.0.0.2", 53, "10.0.0.1", 5000), T0 + 10, 120);
    assert_eq!(f.id, id);
    assert_eq!(d, Side::Server);
    let (f, d) = t.update(&udp("10.0.0.1", 5000, "10.0.0.2", 53), T0 + 20, 90);
    assert_eq!(d, Side::Client);
    assert_eq!((f.pkts_toserver, f.pkts_toclient), (2, 1));
    assert_eq!((f.bytes_toserver, f.bytes_toclient), (170, 120));
    assert_eq!((f.start_us, f.end_us), (T0, T0 + 20));
    assert_eq!(f.state(), FlowState::Established);
    assert_eq!(t.len(), 1);
    assert_eq!(t.stats().created, 1);

    // A different port, VLAN or transport is a different flow.
    t.update(&udp("10.0.0.1", 5001, "10.0.0.2", 53), T0 + 30, 80);
    let mut tagged = udp("10.0.0.1", 5000, "10.0.0.2", 53);
    tagged.vlan = Some(7);
    let (f, _) = t.update(&tagged, T0 + 40, 84);
    assert_eq!(f.vlan, Some(7));
    t.update(&tcp("10.0.0.1", 5000, "10.0.0.2", 53, SYN), T0 + 50, 60);
    assert_eq!(t.len(), 4);
    let ids: Vec<u64> = t.iter().map(|f| f.id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 4, "ids are unique: {ids:?}");
}

#[test]
fn ipv6_flows_meet_too() {
    let mut t = table(4);
    let (f, _) = t.update(&udp("2001:db8::1", 40000, "2001:db8::2", 443), T0, 100);
    let id = f.id;
    let (f, d) = t.update(&udp("2001:db8::2", 443, "2001:db8::1", 40000), T0 + 1, 200);
    assert_eq!((f.id, d), (id, Side::Server));
    assert_eq!(f.client_ip, ip("2001:db8::1"));
}

#[test]
fn client_is_syn_sender_even_when_syn_ack_is_captured_first() {
    let mut t = table(16);
    // Capture order: SYN-ACK from the server, then the client's SYN, then the client's ACK.
    let (f, d) = t.update(&tcp("10.0.0.2", 443, "10.0.0.1", 50000, SYN | ACK), T0, 60);
    assert_eq!(d, Side::Server);
    assert_eq!((f.client_ip, f.client_port), (ip("10.0.0.1"), 50000));
    assert_eq!((f.server_ip, f.server_port), (ip("10.0.0.2"), 443));
    assert_eq!(f.role_source, RoleSource::SynAck);
    assert_eq!(f.tcp_state, TcpState::SynRecv);
    let (f, d) = t.update(&tcp("10.0.0.1", 50000, "10.0.0.2", 443, SYN), T0 + 1, 60);
    assert_eq!(d, Side::Client);
    assert_eq!(f.client_port, 50000);
    let (f, d) = t.update(&tcp("10.0.0.1", 50000, "10.0.0.2", 443, ACK), T0 + 2, 54);
    assert_eq!(d, Side::Client);
    assert_eq!(f.tcp_state, TcpState::Established);
    assert_eq!((f.pkts_toserver, f.pkts_toclient), (2, 1));
}

#[test]
fn client_is_first_packet_sender_without_handshake() {
    let mut t = table(16);
    let (f, d) = t.update(&udp("192.0.2.9", 53, "10.0.0.1", 33333), T0, 100);
    assert_eq!(d, Side::Client);
    assert_eq!((f.client_ip, f.client_port), (ip("192.0.2.9"), 53));
    assert_eq!(f.role_source, RoleSource::FirstPacket);

    // TCP picked up mid-stream: the first sender is the client, and two-way traffic establishes.
    let (f, d) = t.update(
        &tcp("10.0.0.2", 443, "10.0.0.1", 50000, ACK | PSH),
        T0,
        1500,
    );
    assert_eq!(d, Side::Client);
    assert_eq!(f.client_port, 443);
    assert_eq!(f.tcp_state, TcpState::None);
    let (f, d) = t.update(&tcp("10.0.0.1", 50000, "10.0.0.2", 443, ACK), T0 + 1, 54);
    assert_eq!(d, Side::Server);
    assert_eq!(f.tcp_state, TcpState::Established);
}

#[test]
fn a_later_syn_overrules_first_packet_roles() {
    let mut t = table(16);
    // A stray packet from the server side comes first; then the real handshake.
    let (f, _) = t.update(&tcp("10.0.0.2", 443, "10.0.0.1", 50000, ACK), T0, 54);
    assert_eq!(f.client_port, 443);
    let (f, d) = t.update(&tcp("10.0.0.1", 50000, "10.0.0.2", 443, SYN), T0 + 1, 60);
    assert_eq!(d, Side::Client);
    assert_eq!((f.client_ip, f.client_port), (ip("10.0.0.1"), 50000));
    assert_eq!(f.role_source, RoleSource::Syn);
    // The stray packet is now counted as server-to-client.
    assert_eq!((f.pkts_toserver, f.pkts_toclient), (1, 1));
    assert_eq!((f.bytes_toserver, f.bytes_toclient), (60, 54));
    assert_eq!(f.tcp_state, TcpState::SynSent);
}

#[test]
fn swap_roles_swaps_endpoints_counters_and_later_directions() {
    let mut t = table(16);
    t.update(&udp("10.0.0.1", 40000, "10.0.0.2", 4433), T0, 100);
    t.update(&udp("10.0.0.1", 40000, "10.0.0.2", 4433), T0 + 1, 100);
    let (f, _) = t.update(&udp("10.0.0.2", 4433, "10.0.0.1", 40000), T0 + 2, 300);
    let id = f.id;
    f.swap_roles();
    assert_eq!((f.client_ip, f.client_port), (ip("10.0.0.2"), 4433));
    assert_eq!((f.server_ip, f.server_port), (ip("10.0.0.1"), 40000));
    assert_eq!((f.pkts_toserver, f.pkts_toclient), (1, 2));
    assert_eq!((f.bytes_toserver, f.bytes_toclient), (300, 200));
    assert_eq!(f.role_source, RoleSource::Swapped);

    let (f, d) = t.update(&udp("10.0.0.1", 40000, "10.0.0.2", 4433), T0 + 3, 50);
    assert_eq!((f.id, d), (id, Side::Server));
    let (f, d) = t.update(&udp("10.0.0.2", 4433, "10.0.0.1", 40000), T0 + 4, 70);
    assert_eq!(d, Side::Client);
    assert_eq!((f.pkts_toserver, f.pkts_toclient), (2, 3));
    assert_eq!((f.bytes_toserver, f.bytes_toclient), (370, 250));

    // A proven swap is not undone by a later SYN from the original first sender.
    let mut t = table(4);
    let (f, _) = t.update(&tcp("10.0.0.1", 1, "10.0.0.2", 2, ACK), T0, 54);
    f.swap_roles();
    let (f, d) = t.update(&tcp("10.0.0.1", 1, "10.0.0.2", 2, SYN), T0 + 1, 60);
    assert_eq!(d, Side::Server);
    assert_eq!(f.client_port, 2);
}

#[test]
fn full_handshake_and_fin_both_ways_close_the_flow() {
    let mut t = table(16);
    let c = ("10.1.1.1", 51000);
    let s = ("10.2.2.2", 8443);
    let steps: &[(bool, u8, TcpState)] = &[
        (true, SYN, TcpState::SynSent),
        (false, SYN | ACK, TcpState::SynRecv),
        (true, ACK, TcpState::Established),
        (true, ACK | PSH, TcpState::Established),
        (false, ACK | PSH, TcpState::Established),
        (false, FIN | ACK, TcpState::FinWait),
        (true, ACK, TcpState::FinWait),
        (true, FIN | ACK, TcpState::Closed),
        (false, ACK, TcpState::Closed),
    ];
    for (i, &(from_client, flags, want)) in steps.iter().enumerate() {
        let pkt = if from_client {
            tcp(c.0, c.1, s.0, s.1, flags)
        } else {
            tcp(s.0, s.1, c.0, c.1, flags)
        };
        let (f, d) = t.update(&pkt, T0 + i as u64, 60);
        assert_eq!(f.tcp_state, want, "step {i}");
        let want_dir = if from_client {
            Side::Client
        } else {
            Side::Server
        };
        assert_eq!(d, want_dir, "step {i}");
    }
    let f = t.iter().next().unwrap();
    assert_eq!(f.state(), FlowState::Closed);
    assert_eq!(f.tcp_flags_toserver, SYN | ACK | PSH | FIN);
    assert_eq!(f.tcp_flags_toclient, SYN | ACK | PSH | FIN);
    assert_eq!((f.pkts_toserver, f.pkts_toclient), (5, 4));
}

#[test]
fn fin_from_client_first_then_server() {
    let mut t = table(4);
    t.update(&tcp("10.0.0.1", 1, "10.0.0.2", 2, SYN), T0, 60);
    t.update(&tcp("10.0.0.2", 2, "10.0.0.1", 1, SYN | ACK), T0 + 1, 60);
    t.update(&tcp("10.0.0.1", 1, "10.0.0.2", 2, ACK), T0 + 2, 60);
    let (f, _) = t.update(&tcp("10.0.0.1", 1, "10.0.0.2", 2, FIN | ACK), T0 + 3, 60);
    assert_eq!(f.tcp_state, TcpState::FinWait);
    // A second FIN from the same side does not close it.
    let (f, _) = t.update(&tcp("10.0.0.1", 1, "10.0.0.2", 2, FIN | ACK), T0 + 4, 60);
    assert_eq!(f.tcp_state, TcpState::FinWait);
    let (f, _) = t.update(&tcp("10.0.0.2", 2, "10.0.0.1", 1, FIN | ACK), T0 + 5, 60);
    assert_eq!(f.tcp_state, TcpState::Closed);
}

#[test]
fn rst_resets_from_any_state_and_sticks() {
    for rst_from_client in [true, false] {
        let mut t = table(4);
        t.update(&tcp("10.0.0.1", 1, "10.0.0.2", 2, SYN), T0, 60);
        let pkt = if rst_from_client {
            tcp("10.0.0.1", 1, "10.0.0.2", 2, RST | ACK)
        } else {
            tcp("10.0.0.2", 2, "10.0.0.1", 1, RST)
        };
        let (f, _) = t.update(&pkt, T0 + 1, 54);
        assert_eq!(f.tcp_state, TcpState::Reset);
        assert_eq!(f.state(), FlowState::Closed);
        let (f, _) = t.update(&tcp("10.0.0.2", 2, "10.0.0.1", 1, ACK), T0 + 2, 54);
        assert_eq!(f.tcp_state, TcpState::Reset);
    }
    // RST on an established connection.
    let mut t = table(4);
    t.update(&tcp("10.0.0.1", 1, "10.0.0.2", 2, SYN), T0, 60);
    t.update(&tcp("10.0.0.2", 2, "10.0.0.1", 1, SYN | ACK), T0 + 1, 60);
    let (f, _) = t.update(&tcp("10.0.0.1", 1, "10.0.0.2", 2, ACK), T0 + 2, 60);
    assert_eq!(f.tcp_state, TcpState::Established);
    let (f, _) = t.update(&tcp("10.0.0.2", 2, "10.0.0.1", 1, RST | ACK), T0 + 3, 60);
    assert_eq!(f.tcp_state, TcpState::Reset);
}

#[test]
fn new_syn_after_close_starts_a_new_flow() {
    let mut t = table(4);
    let (f, _) = t.update(&tcp("10.0.0.1", 1, "10.0.0.2", 2, SYN), T0, 60);
    let first = f.id;
    t.update(&tcp("10.0.0.2", 2, "10.0.0.1", 1, RST | ACK), T0 + 1, 54);
    // A retransmitted SYN-less packet stays in the old flow; a new SYN opens a new one.
    let (f, _) = t.update(&tcp("10.0.0.1", 1, "10.0.0.2", 2, ACK), T0 + 2, 54);
    assert_eq!(f.id, first);
    let (f, d) = t.update(&tcp("10.0.0.1", 1, "10.0.0.2", 2, SYN), T0 + 3, 60);
    assert_ne!(f.id, first);
    assert_eq!(d, Side::Client);
    assert_eq!(f.tcp_state, TcpState::SynSent);
    assert_eq!(f.pkts(), 1);
    let done = drain(&mut t);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].flow.id, first);
    assert_eq!(done[0].reason, FlowEndReason::Reused);
    assert_eq!(done[0].flow.pkts(), 3);
    assert_eq!(t.stats().reused, 1);
    assert_eq!(t.len(), 1);
}

#[test]
fn timeouts_follow_capture_time_and_state() {
    let cfg = FlowTableConfig::default();
    let mut t: FlowTable<()> = FlowTable::new(cfg);
    // UDP.
    t.update(&udp("10.0.0.1", 1000, "10.0.0.2", 53), T0, 80);
    // TCP established.
    t.update(&tcp("10.0.0.1", 2000, "10.0.0.2", 443, SYN), T0, 60);
    t.update(&tcp("10.0.0.2", 443, "10.0.0.1", 2000, SYN | ACK), T0, 60);
    t.update(&tcp("10.0.0.1", 2000, "10.0.0.2", 443, ACK), T0, 60);
    // TCP closed.
    t.update(&tcp("10.0.0.1", 3000, "10.0.0.2", 443, SYN), T0, 60);
    t.update(&tcp("10.0.0.2", 443, "10.0.0.1", 3000, RST), T0, 60);
    // TCP unestablished.
    t.update(&tcp("10.0.0.1", 4000, "10.0.0.2", 443, SYN), T0, 60);
    assert_eq!(t.len(), 4);

    t.expire(T0 + cfg.tcp_closed_timeout_us);
    assert!(
        drain(&mut t).is_empty(),
        "idle exactly the timeout is not past it"
    );
    t.expire(T0 + cfg.tcp_closed_timeout_us + 1);
    let done = drain(&mut t);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].flow.client_port, 3000);
    assert_eq!(done[0].reason, FlowEndReason::Timeout);

    t.expire(T0 + 60 * S + 1);
    let mut ports: Vec<u16> = drain(&mut t).iter().map(|f| f.flow.client_port).collect();
    ports.sort_unstable();
    assert_eq!(ports, vec![1000, 4000]);

    t.expire(T0 + 600 * S);
    assert_eq!(t.len(), 1);
    t.expire(T0 + 600 * S + 1);
    assert_eq!(t.len(), 0);
    assert_eq!(drain(&mut t)[0].flow.client_port, 2000);
    assert_eq!(t.stats().expired, 4);
}

#[test]
fn activity_keeps_a_flow_alive_and_idle_flows_expire_on_lookup() {
    let mut t = table(16);
    let (f, _) = t.update(&udp("10.0.0.1", 1000, "10.0.0.2", 53), T0, 80);
    let first = f.id;
    t.update(&udp("10.0.0.2", 53, "10.0.0.1", 1000), T0 + 50 * S, 80);
    t.expire(T0 + 100 * S);
    assert_eq!(t.len(), 1, "last packet 50 s ago");
    // 61 s of silence, then a packet of the same 5-tuple without expire() in between.
    let (f, d) = t.update(&udp("10.0.0.2", 53, "10.0.0.1", 1000), T0 + 111 * S + 1, 90);
    assert_ne!(f.id, first);
    assert_eq!(d, Side::Client, "new flow: its first sender is the client");
    let done = drain(&mut t);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].reason, FlowEndReason::Timeout);
    assert_eq!(done[0].flow.pkts(), 2);
    assert_eq!(t.stats().expired, 1);
}

#[test]
fn a_full_table_evicts_the_least_recently_active_flow() {
    let mut t = table(3);
    for (i, port) in [1u16, 2, 3].into_iter().enumerate() {
        t.update(&udp("10.0.0.1", port, "10.0.0.2", 53), T0 + i as u64, 80);
    }
    // Touch flow 1, so flow 2 is now the least recently active.
    t.update(&udp("10.0.0.2", 53, "10.0.0.1", 1), T0 + 10, 80);
    t.update(&udp("10.0.0.1", 4, "10.0.0.2", 53), T0 + 11, 80);
    assert_eq!(t.len(), 3);
    let done = drain(&mut t);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].flow.client_port, 2);
    assert_eq!(done[0].reason, FlowEndReason::Evicted);
    assert_eq!(t.stats().evicted, 1);

    // Eviction looks across timeout classes: an old TCP flow goes before a newer UDP one.
    let mut t = table(2);
    t.update(&tcp("10.0.0.1", 9, "10.0.0.2", 80, SYN), T0, 60);
    t.update(&udp("10.0.0.1", 8, "10.0.0.2", 53), T0 + 1, 80);
    t.update(&udp("10.0.0.1", 7, "10.0.0.2", 53), T0 + 2, 80);
    let done = drain(&mut t);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].flow.client_port, 9);
    let mut ports: Vec<u16> = t.iter().map(|f| f.client_port).collect();
    ports.sort_unstable();
    assert_eq!(ports, vec![7, 8]);
}

#[test]
fn eviction_churn_keeps_lookups_right() {
    // Many more flows than slots: every lookup must still find the right entry after the
    // index has shifted cells around on removals.
    let mut t = table(8);
    for round in 0..50u64 {
        for port in 0..12u16 {
            let ts = T0 + round * 100 + u64::from(port);
            let (f, _) = t.update(&udp("10.0.0.1", 1000 + port, "10.0.0.2", 53), ts, 80);
            assert_eq!(f.client_port, 1000 + port);
            assert!(f.pkts_toserver >= 1);
        }
        assert!(t.len() <= 8);
    }
    // Only the 8 most recent flows remain; re-touching them must not create new flows.
    let created = t.stats().created;
    for port in 4..12u16 {
        let (f, _) = t.update(
            &udp("10.0.0.2", 53, "10.0.0.1", 1000 + port),
            T0 + 10_000,
            80,
        );
        assert_eq!(f.pkts_toclient, 1);
    }
    assert_eq!(t.stats().created, created);
}

#[test]
fn finish_all_ends_every_flow_with_shutdown() {
    let mut t = table(16);
    for port in 0..5u16 {
        t.update(&udp("10.0.0.1", port, "10.0.0.2", 53), T0, 80);
        t.update(&tcp("10.0.0.1", port, "10.0.0.2", 80, SYN), T0, 60);
    }
    t.finish_all();
    assert!(t.is_empty());
    assert_eq!(t.finished_len(), 10);
    let done = drain(&mut t);
    assert!(done.iter().all(|f| f.reason == FlowEndReason::Shutdown));
    assert_eq!(t.stats().shutdown, 10);
    assert_eq!(t.finished_len(), 0);
    // The table works again after a full drain.
    let (f, _) = t.update(&udp("10.0.0.1", 1, "10.0.0.2", 53), T0 + 1, 80);
    assert_eq!(f.id, 11);
}

#[test]
fn eve_record_of_a_tcp_flow() {
    let mut t = table(4);
    let c = "192.168.1.10";
    let s = "17.253.144.10";
    t.update(&tcp(c, 50123, s, 8443, SYN), T0 + 123_456, 74);
    t.update(&tcp(s, 8443, c, 50123, SYN | ACK), T0 + 200_000, 74);
    t.update(&tcp(c, 50123, s, 8443, ACK), T0 + 300_000, 66);
    t.update(&tcp(c, 50123, s, 8443, ACK | PSH), T0 + 400_000, 583);
    t.update(&tcp(s, 8443, c, 50123, FIN | ACK), T0 + 5 * S + 1, 66);
    t.update(&tcp(c, 50123, s, 8443, FIN | ACK), T0 + 5 * S + 2, 66);
    t.finish_all();
    let done = drain(&mut t);
    let rec = FlowRecord::from_flow(&done[0]);
    assert_eq!(rec.timestamp, "2024-01-21T10:02:03.123456+0000");
    assert_eq!(rec.flow.start, rec.timestamp);
    assert_eq!(rec.flow.end, "2024-01-21T10:02:08.000002+0000");
    assert_eq!(rec.flow.age, 5);
    assert_eq!(rec.flow.state, EveFlowState::Closed);
    assert_eq!(rec.flow.reason, EveFlowReason::Shutdown);
    assert_eq!(rec.src_ip, ip(c));
    assert_eq!(rec.dest_port, 8443);
    assert_eq!(
        rec.community_id,
        community_id_v1(0, ip(s), ip(c), 6, 8443, 50123)
    );

    let json = serde_json::to_value(&rec).unwrap();
    assert_eq!(json["event_type"], "flow");
    assert_eq!(json["proto"], "TCP");
    assert_eq!(json["app_proto"], "unknown");
    assert_eq!(json["src_ip"], c);
    assert_eq!(json["dest_ip"], s);
    assert_eq!(json["flow"]["pkts_toserver"], 4);
    assert_eq!(json["flow"]["pkts_toclient"], 2);
    assert_eq!(json["flow"]["bytes_toserver"], 74 + 66 + 583 + 66);
    assert_eq!(json["flow"]["bytes_toclient"], 74 + 66);
    assert_eq!(json["flow"]["state"], "closed");
    assert_eq!(json["flow"]["reason"], "shutdown");
    assert_eq!(json["tcp"]["tcp_flags"], "1b");
    assert_eq!(json["tcp"]["tcp_flags_ts"], "1b");
    assert_eq!(json["tcp"]["tcp_flags_tc"], "13");
    assert_eq!(json["tcp"]["syn"], true);
    assert_eq!(json["tcp"]["fin"], true);
    assert!(json["tcp"].get("rst").is_none(), "unset flags are omitted");
    assert_eq!(json["tcp"]["state"], "closed");
    assert!(json.get("vlan").is_none(), "untagged flows carry no vlan");
}

#[test]
fn eve_record_of_a_udp_flow_with_vlan_and_app_fields() {
    let mut t = table(4);
    let mut p = udp("10.0.0.5", 5353, "10.0.0.6", 4500);
    p.vlan = Some(42);
    t.update(&p, T0, 100);
    t.expire(T0 + 61 * S);
    let done = drain(&mut t);
    let mut rec = FlowRecord::from_flow(&done[0]);
    assert_eq!(rec.flow.state, EveFlowState::New);
    assert_eq!(rec.flow.reason, EveFlowReason::Timeout);
    assert!(rec.tcp.is_none());
    rec.app_proto = "quic".to_string();
    rec.app
        .insert("port_mismatch".to_string(), serde_json::json!(true));
    let line = serde_json::to_string(&rec).unwrap();
    let json: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(json["vlan"], serde_json::json!([42]));
    assert_eq!(json["proto"], "UDP");
    assert_eq!(
        json["port_mismatch"], true,
        "app fields sit at the top level"
    );
    assert!(json.get("tcp").is_none());
    assert!(json.get("app").is_none());
    // Round trip: unknown top-level fields come back in `app`.
    let back: FlowRecord = serde_json::from_str(&line).unwrap();
    assert_eq!(back, rec);
}

#[test]
fn evicted_and_reused_flows_report_forced() {
    let mut t = table(1);
    t.update(&udp("10.0.0.1", 1, "10.0.0.2", 2), T0, 60);
    t.update(&udp("10.0.0.1", 3, "10.0.0.2", 4), T0 + 1, 60);
    let done = drain(&mut t);
    assert_eq!(
        FlowRecord::from_flow(&done[0]).flow.reason,
        EveFlowReason::Forced
    );
}

#[test]
fn config_errors_reach_try_new() {
    let bad = FlowTableConfig {
        tcp_closed_timeout_us: 0,
        ..FlowTableConfig::default()
    };
    let err = FlowTable::<()>::try_new(bad).err().unwrap();
    assert!(err.to_string().contains("tcp_closed_timeout_us"));
}
