//! No allocation per packet on the worker's hot path with the classifier plugged in: a counting
//! global allocator watches `Worker::process_frame` once flows exist (undecided flows being
//! scanned, decided flows being enriched, decided flows past their budget).

mod common;

use common::{classifier_parts, feed, frame, observer};
use portolan_dataplane::{ClassifyObserver, Worker, WorkerConfig};
use portolan_packet::LinkType;
use portolan_testkit::{tls_client_hello_record, ClientHelloSpec};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
/// The counter is process-wide: the tests of this binary take turns, or one would count the
/// other's allocations (they run on parallel threads by default).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

// SAFETY: forwards to the system allocator; only counts calls.
#[allow(unsafe_code)] // a global allocator cannot be written without it
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made while feeding `frames` (after they were built).
fn allocs_while(w: &mut Worker<ClassifyObserver>, frames: &[Vec<u8>], t: &mut u64) -> u64 {
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    feed(w, frames, t);
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCS.load(Ordering::SeqCst)
}

#[test]
fn the_hot_path_does_not_allocate_per_packet() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (sigs, ports) = classifier_parts();
    let mut w = Worker::new(
        WorkerConfig::new(LinkType::Ethernet),
        observer(&sigs, &ports, None),
    )
    .expect("worker");
    let mut t = 1_700_000_000_000_000u64;

    let noise: Vec<u8> = (0..300u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 23) as u8)
        .collect();
    let hello = tls_client_hello_record(&ClientHelloSpec::chrome_like("a.example"));
    let app_data: Vec<u8> = [&[0x17u8, 0x03, 0x03, 0x01, 0x00][..], &[0x42; 256][..]].concat();
    let server = ([10, 9, 9, 9], 443);
    let clients: Vec<([u8; 4], u16)> = (0..64u16)
        .map(|i| ([10, 0, (i >> 8) as u8, i as u8], 40000 + i))
        .collect();

    // Warm-up (not counted): the first packet of every flow creates it; the TLS flows are
    // decided here (metadata boxes are allocated once per decided flow, at the decision).
    let mut warm = Vec::new();
    for (i, &c) in clients.iter().enumerate() {
        if i % 2 == 0 {
            warm.push(frame(c, server, true, 0x18, &hello));
        } else {
            warm.push(frame(c, ([10, 8, 8, 8], 9000), true, 0x18, &noise));
        }
    }
    allocs_while(&mut w, &warm, &mut t);

    // Undecided flows still being scanned (within their 8-packet budget) and decided flows
    // being enriched (application data records after the ClientHello).
    let mut busy = Vec::new();
    for round in 0..5 {
        for (i, &c) in clients.iter().enumerate() {
            if i % 2 == 0 {
                busy.push(frame(c, server, true, 0x18, &app_data));
            } else {
                let mut p = noise.clone();
                p[0] = round as u8;
                busy.push(frame(c, ([10, 8, 8, 8], 9000), true, 0x18, &p));
            }
        }
    }
    let n = allocs_while(&mut w, &busy, &mut t);
    assert_eq!(
        n,
        0,
        "{n} allocations over {} packets of flows being classified",
        busy.len()
    );

    // Past every budget: decided and given-up flows cost nothing. The first rounds use up the
    // budgets (the noise flows give up after 16 packets); the counted rounds come after.
    let round = |w: &mut Worker<ClassifyObserver>, t: &mut u64, rounds: usize| {
        let mut frames = Vec::new();
        for _ in 0..rounds {
            for (i, &c) in clients.iter().enumerate() {
                if i % 2 == 0 {
                    frames.push(frame(c, server, true, 0x18, &app_data));
                } else {
                    frames.push(frame(c, ([10, 8, 8, 8], 9000), true, 0x18, &noise));
                }
            }
        }
        (allocs_while(w, &frames, t), frames.len())
    };
    round(&mut w, &mut t, 12);
    let (n, packets) = round(&mut w, &mut t, 10);
    assert_eq!(
        n, 0,
        "{n} allocations over {packets} packets of settled flows"
    );
}

#[test]
fn interim_updates_of_open_flows_do_not_allocate() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (sigs, ports) = classifier_parts();
    let (mut senders, receiver) = portolan_dataplane::flow_event_queues(1, 4096).expect("queues");
    let o = observer(&sigs, &ports, senders.pop()).with_updates(portolan_dataplane::UpdatePolicy {
        early: true,
        interim_interval_s: 1,
    });
    let mut w = Worker::new(WorkerConfig::new(LinkType::Ethernet), o).expect("worker");
    let hello = tls_client_hello_record(&ClientHelloSpec::chrome_like("c2.example.net"));
    let app_data: Vec<u8> = [&[0x17u8, 0x03, 0x03, 0x00, 0x40][..], &[0x42; 64][..]].concat();
    let server = ([10, 9, 9, 9], 50443);
    let clients: Vec<([u8; 4], u16)> = (0..32u16)
        .map(|i| ([10, 0, 0, i as u8], 41000 + i))
        .collect();
    // Warm-up (not counted): the ClientHellos identify the flows and their early events go
    // (built once per flow); a few rounds use up the decided parser's packets.
    let mut t = 1_700_000_000_000_000u64;
    let warm: Vec<Vec<u8>> = clients
        .iter()
        .map(|&c| frame(c, server, true, 0x18, &hello))
        .collect();
    feed(&mut w, &warm, &mut t);
    for _ in 0..10 {
        let f: Vec<Vec<u8>> = clients
            .iter()
            .map(|&c| frame(c, server, true, 0x18, &app_data))
            .collect();
        feed(&mut w, &f, &mut t);
    }
    let mut drained = Vec::new();
    receiver.drain_into(&mut drained);
    // Counted: every flow gets an interim update each 1.1 s round.
    let rounds: Vec<Vec<Vec<u8>>> = (0..10)
        .map(|_| {
            clients
                .iter()
                .map(|&c| frame(c, server, true, 0x18, &app_data))
                .collect()
        })
        .collect();
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    for r in &rounds {
        t += 1_100_000;
        feed(&mut w, r, &mut t);
    }
    COUNTING.store(false, Ordering::SeqCst);
    let n = ALLOCS.load(Ordering::SeqCst);
    drained.clear();
    receiver.drain_into(&mut drained);
    assert_eq!(
        drained.len(),
        10 * clients.len(),
        "one update per flow per round"
    );
    assert_eq!(
        n,
        0,
        "{n} allocations over {} packets that sent {} interim updates",
        10 * clients.len(),
        drained.len()
    );
}
