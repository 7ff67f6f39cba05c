//! Micro-benchmark of the worker → control-plane hand-off queue: how many [`FlowEvent`]s per
//! second one crossbeam `ArrayQueue` moves between two threads (the worker pushing, the drain
//! thread popping), and the cost of one push + pop on one thread.
//!
//! Usage: `cargo run --release -p portolan-dataplane --example handoff_bench [EVENTS] [CAPACITY]`
//! (defaults 5,000,000 events through a 16,384-slot queue). When the queue is full the producer
//! retries here (to measure the transfer rate); the real worker drops and counts instead.

use portolan_classify::AppProto;
use portolan_dataplane::handoff::{flow_event_queues, FlowEvent, FlowEventReceiver, NameSource};
use portolan_packet::Transport;
use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::time::Instant;

fn event(i: u64) -> FlowEvent {
    FlowEvent {
        flow_id: i,
        worker: 0,
        phase: portolan_model::FlowPhase::Final,
        start_us: 1_700_000_000_000_000 + i,
        end_us: 1_700_000_000_500_000 + i,
        client_ip: IpAddr::V4(Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8)),
        client_port: 40000,
        server_ip: IpAddr::V4(Ipv4Addr::new(17, 57, 144, 1)),
        server_port: 5223,
        transport: Transport::Tcp,
        vlan: None,
        app_proto: AppProto::Tls,
        port_mismatch: false,
        starttls: false,
        pkts_toserver: 10,
        pkts_toclient: 12,
        bytes_toserver: 1_500,
        bytes_toclient: 9_000,
        server_name: None,
        tls_version: None,
        dns_answers: None,
        dns_answer_only: false,
        user_agent: None,
        tls_fingerprints: None,
        indicators: Box::new([]),
        proxy: None,
    }
}

struct Count(u64);

impl portolan_dataplane::FlowEventConsumer for Count {
    fn on_event(&mut self, ev: FlowEvent) {
        self.0 += u64::from(ev.server_name.is_some()) + 1;
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let events: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000_000);
    let capacity: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16_384);
    println!(
        "FlowEvent: {} bytes inline; queue capacity {capacity}",
        std::mem::size_of::<FlowEvent>()
    );

    // One thread: push then pop, in batches of the queue's capacity.
    let Ok((mut senders, receiver)) = flow_event_queues(1, capacity) else {
        eprintln!("capacity must be at least 1");
        return ExitCode::from(2);
    };
    let Some(mut tx) = senders.pop() else {
        return ExitCode::FAILURE;
    };
    let mut sink = Count(0);
    let t0 = Instant::now();
    let mut i = 0u64;
    while i < events {
        let batch = (capacity as u64).min(events - i);
        for k in 0..batch {
            tx.send(event(i + k));
        }
        receiver.drain_into(&mut sink);
        i += batch;
    }
    let one = t0.elapsed().as_secs_f64();
    println!(
        "one thread: {:.1} M push+pop/s ({:.1} ns per event)",
        events as f64 / one / 1e6,
        one * 1e9 / events as f64
    );

    // Two threads: the producer pushes (retrying when full), the consumer pops.
    let Ok((mut senders, receiver)) = flow_event_queues(1, capacity) else {
        return ExitCode::FAILURE;
    };
    let Some(mut tx) = senders.pop() else {
        return ExitCode::FAILURE;
    };
    let consumer = std::thread::spawn(move || {
        let rx: FlowEventReceiver = receiver;
        let mut got = Count(0);
        let mut n = 0u64;
        let backoff = crossbeam::utils::Backoff::new();
        while n < events {
            let k = rx.drain_into(&mut got) as u64;
            if k == 0 {
                backoff.snooze();
            } else {
                backoff.reset();
            }
            n += k;
        }
        n
    });
    let t0 = Instant::now();
    let mut full = 0u64;
    for i in 0..events {
        let mut ev = event(i);
        if i % 4 == 0 {
            ev.server_name = Some((NameSource::TlsSni, "".into()));
        }
        let backoff = crossbeam::utils::Backoff::new();
        while !tx.send(ev.clone()) {
            full += 1;
            backoff.snooze();
        }
    }
    let received = consumer.join().unwrap_or(0);
    let two = t0.elapsed().as_secs_f64();
    println!(
        "two threads: {:.1} M events/s ({received} received, producer found the queue full {full} times)",
        events as f64 / two / 1e6
    );
    ExitCode::SUCCESS
}
