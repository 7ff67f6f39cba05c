//! Measures the flow table's per-packet cost with and without the l3fwd-style burst prefetch,
//! away from the PMD's I/O: every frame of a capture is read into memory and parsed once, then
//! accounted in a fresh table packet by packet (`FlowTable::update`) or burst by burst
//! (`lookup` + `prefetch_index` for the whole burst of 32, then `prefetch_slot` a few packets
//! ahead and `update_prepared`), which is what the worker does.
//!
//! Usage: `flow_prefetch CAPTURE [RUNS] [CAPACITY]` (defaults 3 runs, capacity 262,144).
//! Prints the median ns/packet of each way.

use portolan_dataplane::dpdk::prefetch::prefetch0;
use portolan_flow::{FlowLookup, FlowTable, FlowTableConfig};
use portolan_packet::capture::CaptureReader;
use portolan_packet::{parse, Packet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

const BURST: usize = 32;
/// Packets ahead whose slot is prefetched while the current one is accounted.
const SLOT_AHEAD: usize = 4;

fn plain(cfg: FlowTableConfig, pkts: &[(Packet<'_>, u64, u32)]) -> (f64, usize) {
    let mut t: FlowTable<[u64; 8]> = FlowTable::new(cfg);
    let start = Instant::now();
    for (p, ts, len) in pkts {
        let (flow, _) = t.update(p, *ts, *len);
        flow.app[0] += 1;
    }
    let ns = start.elapsed().as_nanos() as f64 / pkts.len() as f64;
    (ns, t.stats().created as usize)
}

/// The worker's two passes over each burst of `BURST`: hash every packet and prefetch its
/// index cell, then account each packet, prefetching the slot of the packet `slot_ahead`
/// places later when given (`None`: index cells only).
fn two_pass(
    cfg: FlowTableConfig,
    pkts: &[(Packet<'_>, u64, u32)],
    slot_ahead: Option<usize>,
) -> (f64, usize) {
    let mut t: FlowTable<[u64; 8]> = FlowTable::new(cfg);
    let start = Instant::now();
    let mut lookups: [Option<FlowLookup>; BURST] = [None; BURST];
    for burst in pkts.chunks(BURST) {
        for (slot, (p, _, _)) in lookups.iter_mut().zip(burst) {
            let l = t.lookup(p);
            t.prefetch_index(&l, prefetch0);
            *slot = Some(l);
        }
        for (i, (p, ts, len)) in burst.iter().enumerate() {
            if let Some(Some(ahead)) = slot_ahead.and_then(|k| lookups.get(i + k)) {
                t.prefetch_slot(ahead, prefetch0);
            }
            if let Some(Some(l)) = lookups.get(i) {
                let (flow, _) = t.update_prepared(l, p, *ts, *len);
                flow.app[0] += 1;
            }
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / pkts.len() as f64;
    (ns, t.stats().created as usize)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        eprintln!("usage: flow_prefetch CAPTURE [RUNS] [CAPACITY]");
        return ExitCode::from(2);
    };
    let runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let capacity: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(262_144);
    let mut reader = match CaptureReader::open(&path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("flow_prefetch: {e}");
            return ExitCode::from(2);
        }
    };
    let link = reader.info().link_type;
    let mut frames = Vec::new();
    loop {
        match reader.next_record() {
            Ok(Some(r)) => frames.push(r),
            Ok(None) => break,
            Err(e) => {
                eprintln!("flow_prefetch: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let pkts: Vec<(Packet<'_>, u64, u32)> = frames
        .iter()
        .filter_map(|r| parse(link, &r.data).ok().map(|p| (p, r.ts_us, r.orig_len)))
        .collect();
    let cfg = FlowTableConfig {
        capacity,
        ..FlowTableConfig::default()
    };
    let mut a = Vec::new();
    let mut b = Vec::new();
    let mut c = Vec::new();
    let mut flows = (0, 0);
    for _ in 0..runs {
        let (ns, n) = plain(cfg, &pkts);
        a.push(ns);
        flows.0 = n;
        let (ns, n) = two_pass(cfg, &pkts, Some(SLOT_AHEAD));
        b.push(ns);
        flows.1 = n;
        c.push(two_pass(cfg, &pkts, None).0);
    }
    assert_eq!(flows.0, flows.1, "both ways create the same flows");
    let (a, b, c) = (median(a), median(b), median(c));
    println!(
        "{}: {} decoded packets, {} flows, capacity {capacity}: update {a:.1} ns/packet, burst prefetch (index + slot) {b:.1} ns/packet ({:+.0}%), index only {c:.1} ns/packet ({:+.0}%)",
        path.display(),
        pkts.len(),
        flows.0,
        (b / a - 1.0) * 100.0,
        (c / a - 1.0) * 100.0
    );
    ExitCode::SUCCESS
}
