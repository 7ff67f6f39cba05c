//! The classifier on a worker, without DPDK: real signatures, real Hyperscan, frames fed through
//! `Worker::process_frame`, flow events handed off through the real queues and drain thread.

mod common;

use common::{classifier_parts, feed, frame, observer};
use portolan_classify::AppProto;
use portolan_dataplane::worker::StopCause;
use portolan_dataplane::{
    flow_event_queues, ClassifyObserver, DrainOptions, FlowEvent, FlowEventDrain,
    FlowEventReceiver, NameSource, PacketObserver, Worker, WorkerConfig,
};
use portolan_flow::eve::FlowRecord;
use portolan_flow::FinishedFlow;
use portolan_packet::LinkType;
use portolan_testkit::{tls_client_hello_record, ClientHelloSpec};
use std::time::Duration;

const TS0: u64 = 1_700_000_000_000_000;

fn record_of(
    o: &ClassifyObserver,
    f: &FinishedFlow<portolan_classify::FlowClassification>,
) -> FlowRecord {
    let mut rec = FlowRecord::from_flow(f);
    o.describe(f, &mut rec);
    rec
}

/// A classifying worker whose flow events go to a 16-slot queue, and that queue's receiver.
fn worker_with_events() -> (Worker<ClassifyObserver>, FlowEventReceiver) {
    let (sigs, ports) = classifier_parts();
    let (mut senders, receiver) = flow_event_queues(1, 16).expect("queues");
    let tx = senders.pop().expect("one sender");
    let w = Worker::new(
        WorkerConfig::new(LinkType::Ethernet),
        observer(&sigs, &ports, Some(tx)),
    )
    .expect("worker");
    (w, receiver)
}

#[test]
fn tls_on_a_nonstandard_port_is_labelled_flagged_and_handed_off() {
    let (mut w, receiver) = worker_with_events();
    let c = ([10, 0, 0, 1], 40000);
    let s = ([10, 0, 0, 2], 4444);
    let hello = tls_client_hello_record(&ClientHelloSpec::chrome_like("push.example.com"));
    let mut t = TS0;
    feed(
        &mut w,
        &[
            frame(c, s, true, 0x02, &[]),
            frame(s, c, true, 0x12, &[]),
            frame(c, s, true, 0x10, &[]),
            frame(c, s, true, 0x18, &hello),
        ],
        &mut t,
    );
    let mut flows = Vec::new();
    let out = w.finish(&mut flows, StopCause::EndOfInput);
    assert_eq!(flows.len(), 1);
    let rec = record_of(&out.observer, &flows[0]);
    assert_eq!(rec.app_proto, "tls");
    assert_eq!(
        rec.app["portolan"]["port_mismatch"], true,
        "4444 is not a registered TLS port"
    );
    assert_eq!(rec.app["tls"]["sni"], "push.example.com");
    assert!(
        rec.app.get("app_proto").is_none(),
        "app_proto is not repeated in the flattened map"
    );
    let report = out.observer.report();
    assert_eq!(report.app_protos.get("tls"), Some(&1));
    assert_eq!((report.decided_flows, report.port_mismatches), (1, 1));
    assert_eq!((report.flow_events, report.ring_drops), (1, 0));
    // One payload packet, seen while the flow was undecided: one timed classifier call.
    assert_eq!((report.scan_calls, report.enrich_calls), (1, 0));
    assert!(report.scan_cycles > 0 && report.enrich_cycles == 0);

    let mut events: Vec<FlowEvent> = Vec::new();
    receiver.drain_into(&mut events);
    assert_eq!(events.len(), 1);
    let ev = &events[0];
    assert_eq!(ev.app_proto, AppProto::Tls);
    assert!(ev.port_mismatch);
    assert_eq!((ev.client_port, ev.server_port), (40000, 4444));
    assert_eq!(
        ev.server_name.as_ref().map(|(s, n)| (*s, &**n)),
        Some((NameSource::TlsSni, "push.example.com"))
    );
    // The alert's evidence: the fingerprints and indicators of the flow record, carried over.
    let fp = ev.tls_fingerprints.as_deref().expect("TLS fingerprints");
    assert_eq!(fp.ja4.as_deref(), rec.app["tls"]["ja4"].as_str());
    assert_eq!(fp.ja3.as_deref(), rec.app["tls"]["ja3"]["hash"].as_str());
    assert!(
        fp.ja4.as_deref().is_some_and(|j| j.starts_with('t')),
        "{fp:?}"
    );
    let recorded: Vec<&str> = rec.app["portolan"]["indicators"]
        .as_array()
        .expect("indicators")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(!recorded.is_empty());
    assert_eq!(&*ev.indicators, recorded.as_slice());
    let eve = ev.to_eve_json();
    assert_eq!(eve["tls"]["ja4"], rec.app["tls"]["ja4"]);
    assert_eq!(
        eve["portolan"]["indicators"],
        rec.app["portolan"]["indicators"]
    );
}

#[test]
fn a_flow_picked_up_at_the_servers_reply_gets_its_roles_swapped() {
    let (sigs, ports) = classifier_parts();
    let mut w = Worker::new(
        WorkerConfig::new(LinkType::Ethernet),
        observer(&sigs, &ports, None),
    )
    .expect("worker");
    let c = ([10, 0, 0, 1], 40000);
    let s = ([10, 0, 0, 2], 80);
    let mut t = TS0;
    // No handshake: the first packet is the server's response, so the table takes the server
    // for the client until the classifier proves otherwise.
    feed(
        &mut w,
        &[
            frame(
                s,
                c,
                true,
                0x18,
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            ),
            frame(
                c,
                s,
                true,
                0x18,
                b"GET /next HTTP/1.1\r\nHost: example.com\r\n\r\n",
            ),
            frame(
                s,
                c,
                true,
                0x18,
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            ),
        ],
        &mut t,
    );
    let mut flows = Vec::new();
    let out = w.finish(&mut flows, StopCause::EndOfInput);
    let f = &flows[0].flow;
    assert_eq!(f.app.app_proto(), AppProto::Http);
    assert_eq!((f.client_port, f.server_port), (40000, 80), "roles swapped");
    assert_eq!(
        (f.pkts_toserver, f.pkts_toclient),
        (1, 2),
        "counters follow the swap"
    );
    let rec = record_of(&out.observer, &flows[0]);
    assert_eq!(rec.app["portolan"]["port_mismatch"], false);
    assert_eq!(rec.app["http"]["hostname"], "example.com");
}

#[test]
fn undecided_flows_are_counted_but_not_handed_off() {
    let (mut w, receiver) = worker_with_events();
    let noise: Vec<u8> = (0..200u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let mut t = TS0;
    for i in 0..12u16 {
        let c = ([10, 0, 1, 1], 30000 + i);
        let s = ([10, 0, 2, 2], 9999);
        feed(
            &mut w,
            &[
                frame(c, s, true, 0x18, &noise),
                frame(s, c, true, 0x18, &noise),
            ],
            &mut t,
        );
    }
    let mut flows = Vec::new();
    let out = w.finish(&mut flows, StopCause::EndOfInput);
    let report = out.observer.report();
    assert_eq!(report.app_protos.get("unknown"), Some(&12));
    assert_eq!((report.decided_flows, report.flow_events), (0, 0));
    assert!(receiver.is_empty());
    let rec = record_of(&out.observer, &flows[0]);
    assert_eq!(rec.app_proto, "unknown");
    assert!(
        rec.app.get("portolan").is_none(),
        "no verdict without a protocol"
    );
}

/// The hand-off with a queue of capacity 1 and a consumer far slower than the worker: the worker
/// never blocks, and every decided flow is either received or counted as a ring drop.
#[test]
fn capacity_one_queue_with_a_slow_consumer_loses_nothing_silently() {
    let (sigs, ports) = classifier_parts();
    let (mut senders, receiver) = flow_event_queues(1, 1).expect("queues");
    let tx = senders.pop().expect("one sender");
    let slow = |_ev: FlowEvent| std::thread::sleep(Duration::from_millis(2));
    let drain = FlowEventDrain::spawn(
        receiver,
        {
            let mut got = Vec::new();
            move |ev: FlowEvent| {
                slow(ev.clone());
                got.push(ev);
            }
        },
        DrainOptions {
            idle_sleep: Duration::from_micros(100),
            cpus: Vec::new(),
        },
    )
    .expect("drain thread");
    let mut cfg = WorkerConfig::new(LinkType::Ethernet);
    cfg.flow_table.udp_idle_timeout_us = 1_000_000;
    let mut w = Worker::new(cfg, observer(&sigs, &ports, Some(tx))).expect("worker");
    let mut sink = Vec::new();
    let decided_expected = 300u64;
    let mut t = TS0;
    for i in 0..decided_expected as u32 {
        // HTTP over TCP (decided), then a UDP flow of noise (undecided) every third flow.
        let c = ([10, 1, (i >> 8) as u8, i as u8], 40000);
        let s = ([10, 9, 0, 1], 8080);
        feed(
            &mut w,
            &[frame(
                c,
                s,
                true,
                0x18,
                b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
            )],
            &mut t,
        );
        if i % 3 == 0 {
            let u = ([10, 2, (i >> 8) as u8, i as u8], 5000);
            feed(
                &mut w,
                &[frame(u, ([10, 9, 0, 2], 7777), false, 0, &[0x99; 40])],
                &mut t,
            );
        }
        // Flows end along the run: capture time jumps past the idle timeout now and then.
        if i % 50 == 49 {
            t += 120_000_000;
        }
        w.after_burst(&mut sink);
    }
    let out = w.finish(&mut sink, StopCause::EndOfInput);
    let report = out.observer.report();
    let (_, stats) = drain.finish().expect("drain");
    assert_eq!(report.decided_flows, decided_expected);
    assert_eq!(report.app_protos.get("http"), Some(&decided_expected));
    assert!(
        report.ring_drops > 0,
        "a capacity-1 queue with a slow consumer must overflow"
    );
    assert!(stats.received > 0);
    assert_eq!(
        stats.received, report.flow_events,
        "every queued event arrived"
    );
    assert_eq!(
        stats.received + report.ring_drops,
        decided_expected,
        "events + drops = finished decided flows"
    );
}

/// A DNS query (A record, recursion desired) for `name` with id `id`.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for l in name.split('.') {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

#[test]
fn a_dns_answer_is_handed_off_when_read_not_when_its_flow_ends() {
    use portolan_testkit::dns_response;
    let (mut w, receiver) = worker_with_events();
    let c = ([10, 0, 0, 1], 53001);
    let s = ([10, 0, 0, 53], 53);
    let query = dns_query(0xabcd, "mail.example.com");
    let addr = std::net::IpAddr::from([198, 51, 100, 7]);
    let response = dns_response(0xabcd, "mail.example.com", None, &[addr]);
    let mut t = TS0;
    feed(
        &mut w,
        &[
            frame(c, s, false, 0, &query),
            frame(s, c, false, 0, &response),
        ],
        &mut t,
    );
    // The DNS flow is still open, and its answer is already in the queue.
    let mut early: Vec<FlowEvent> = Vec::new();
    receiver.drain_into(&mut early);
    assert_eq!(early.len(), 1, "{early:?}");
    let ev = &early[0];
    assert!(ev.dns_answer_only);
    assert_eq!(ev.app_proto, AppProto::Dns);
    assert_eq!((ev.server_port, ev.client_port), (53, 53001));
    let answers = ev.dns_answers.as_deref().expect("answers");
    assert_eq!(answers.name(), "mail.example.com");
    assert_eq!(answers.addresses().collect::<Vec<_>>(), vec![addr]);
    assert!(
        ev.dns_answer().is_some(),
        "the control plane's form of the answer"
    );

    // When the flow ends, its own event follows without repeating the answers.
    let mut flows = Vec::new();
    let out = w.finish(&mut flows, StopCause::EndOfInput);
    let report = out.observer.report();
    assert_eq!((report.flow_events, report.dns_answer_events), (1, 1));
    let mut at_end: Vec<FlowEvent> = Vec::new();
    receiver.drain_into(&mut at_end);
    assert_eq!(at_end.len(), 1);
    assert!(!at_end[0].dns_answer_only);
    assert!(at_end[0].dns_answers.is_none(), "already handed off");
}

#[test]
fn a_full_queue_keeps_the_dns_answer_for_the_flows_own_event() {
    use portolan_testkit::dns_response;
    let (sigs, ports) = classifier_parts();
    let (mut senders, receiver) = flow_event_queues(1, 1).expect("queues");
    let tx = senders.pop().expect("one sender");
    let mut w = Worker::new(
        WorkerConfig::new(LinkType::Ethernet),
        observer(&sigs, &ports, Some(tx)),
    )
    .expect("worker");
    let c = ([10, 0, 0, 1], 53001);
    let s = ([10, 0, 0, 53], 53);
    let addr = std::net::IpAddr::from([198, 51, 100, 8]);
    let response = dns_response(0x0101, "push.example.com", None, &[addr]);
    let query = dns_query(0x0101, "push.example.com");
    // Fill the one-slot queue with a finished TLS flow's event first.
    let tc = ([10, 0, 0, 1], 40000);
    let ts = ([10, 0, 0, 2], 4444);
    let hello = tls_client_hello_record(&ClientHelloSpec::chrome_like("a.example.com"));
    let mut t = TS0;
    feed(
        &mut w,
        &[
            frame(tc, ts, true, 0x02, &[]),
            frame(tc, ts, true, 0x18, &hello),
            frame(tc, ts, true, 0x04, &[]),
        ],
        &mut t,
    );
    let mut sink = Vec::new();
    w.expire_at(t + 3_600_000_000);
    w.after_burst(&mut sink);
    feed(
        &mut w,
        &[
            frame(c, s, false, 0, &query),
            frame(s, c, false, 0, &response),
        ],
        &mut t,
    );
    let mut first: Vec<FlowEvent> = Vec::new();
    receiver.drain_into(&mut first);
    assert_eq!(first.len(), 1);
    assert!(
        !first[0].dns_answer_only,
        "the queue held the TLS flow's event"
    );
    let mut flows = Vec::new();
    let out = w.finish(&mut flows, StopCause::EndOfInput);
    assert_eq!(out.observer.report().dns_answer_events, 0);
    let mut last: Vec<FlowEvent> = Vec::new();
    receiver.drain_into(&mut last);
    assert_eq!(last.len(), 1);
    let answers = last[0]
        .dns_answers
        .as_deref()
        .expect("answers kept for the flow event");
    assert_eq!(answers.name(), "push.example.com");
}

/// A worker whose observer hands open flows off early and with interim updates every
/// `interval_s`, into a queue of `capacity` events.
fn worker_with_updates(
    interval_s: u32,
    capacity: usize,
) -> (Worker<ClassifyObserver>, FlowEventReceiver) {
    let (sigs, ports) = classifier_parts();
    let (mut senders, receiver) = flow_event_queues(1, capacity).expect("queues");
    let tx = senders.pop().expect("one sender");
    let o = observer(&sigs, &ports, Some(tx)).with_updates(portolan_dataplane::UpdatePolicy {
        early: true,
        interim_interval_s: interval_s,
    });
    let w = Worker::new(WorkerConfig::new(LinkType::Ethernet), o).expect("worker");
    (w, receiver)
}

#[test]
fn an_open_flow_is_handed_off_when_identified_then_updated_then_finished() {
    use portolan_model::FlowPhase;
    let (mut w, receiver) = worker_with_updates(10, 64);
    let c = ([10, 0, 0, 1], 40001);
    let s = ([10, 0, 0, 2], 50443);
    let hello = tls_client_hello_record(&ClientHelloSpec::chrome_like("c2.example.net"));
    let app_data: Vec<u8> = [&[0x17u8, 0x03, 0x03, 0x00, 0x20][..], &[0x42; 32][..]].concat();
    let mut t = TS0;
    feed(
        &mut w,
        &[
            frame(c, s, true, 0x02, &[]),
            frame(s, c, true, 0x12, &[]),
            frame(c, s, true, 0x10, &[]),
        ],
        &mut t,
    );
    let mut got: Vec<FlowEvent> = Vec::new();
    receiver.drain_into(&mut got);
    assert!(
        got.is_empty(),
        "nothing before the flow is identified: {got:?}"
    );
    feed(&mut w, &[frame(c, s, true, 0x18, &hello)], &mut t);
    receiver.drain_into(&mut got);
    assert_eq!(got.len(), 1, "the ClientHello identifies the flow: {got:?}");
    let early = got[0].clone();
    assert_eq!(early.phase, FlowPhase::Early);
    assert_eq!(early.app_proto, AppProto::Tls);
    assert!(early.port_mismatch);
    assert_eq!(
        early.server_name,
        Some((NameSource::TlsSni, "c2.example.net".into()))
    );
    assert_eq!(early.end_us, t, "stamped with the identifying packet");
    // Heartbeats every 2 s for 65 s: an interim update at most every 10 s.
    for _ in 0..33 {
        t += 2_000_000;
        let f = frame(c, s, true, 0x18, &app_data);
        w.process_frame(&f, f.len() as u32, Some(t));
    }
    let end = t;
    got.clear();
    receiver.drain_into(&mut got);
    let interim: Vec<FlowEvent> = got.clone();
    assert_eq!(interim.len(), 6, "10, 20, .. 60 s: {interim:#?}");
    let mut last = 0;
    for e in &interim {
        assert_eq!(e.phase, FlowPhase::Interim);
        assert_eq!(e.flow_id, early.flow_id);
        assert!(e.end_us >= last + 10_000_000, "at most one per 10 s");
        assert!(
            e.server_name.is_none() && e.indicators.is_empty(),
            "no heap part"
        );
        last = e.end_us;
    }
    let mut flows = Vec::new();
    let out = w.finish(&mut flows, StopCause::EndOfInput);
    got.clear();
    receiver.drain_into(&mut got);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].phase, FlowPhase::Final);
    assert_eq!(got[0].end_us, end);
    assert_eq!(got[0].flow_id, early.flow_id);
    assert_eq!(got[0].server_name, early.server_name);
    let r = out.observer.report();
    assert_eq!(
        (r.early_events, r.interim_events, r.update_drops),
        (1, 6, 0)
    );
    assert_eq!((r.flow_events, r.ring_drops), (1, 0));
}

#[test]
fn early_and_interim_events_that_do_not_fit_are_counted_and_the_final_record_still_counts() {
    // A 1-slot queue nobody drains while the flow is open: the early event fits, every interim
    // update is dropped and counted, the final record is dropped and counted as a ring drop.
    let (mut w, receiver) = worker_with_updates(1, 1);
    let c = ([10, 0, 0, 1], 40002);
    let s = ([10, 0, 0, 2], 50443);
    let hello = tls_client_hello_record(&ClientHelloSpec::chrome_like("c2.example.net"));
    let mut t = TS0;
    feed(
        &mut w,
        &[
            frame(c, s, true, 0x02, &[]),
            frame(c, s, true, 0x18, &hello),
        ],
        &mut t,
    );
    for _ in 0..5 {
        t += 1_500_000;
        let f = frame(c, s, true, 0x10, &[]);
        w.process_frame(&f, f.len() as u32, Some(t));
    }
    let mut flows = Vec::new();
    let out = w.finish(&mut flows, StopCause::EndOfInput);
    let mut got: Vec<FlowEvent> = Vec::new();
    receiver.drain_into(&mut got);
    let r = out.observer.report();
    assert_eq!(got.len(), 1);
    assert_eq!(r.early_events + r.interim_events, 1);
    assert_eq!(r.update_drops, 5, "{r:?}");
    assert_eq!((r.flow_events, r.ring_drops), (0, 1));
    // Sent = received + dropped, for updates and final records alike.
    assert_eq!(
        got.len() as u64 + r.update_drops + r.ring_drops,
        r.early_events + r.interim_events + r.update_drops + r.flow_events + r.ring_drops
    );
}
