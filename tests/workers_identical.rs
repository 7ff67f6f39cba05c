//! `portolan replay --workers N` on one capture: the capture is sharded by the symmetric
//! Toeplitz hash into N RX queues, one worker each, and the flow records and the flow events
//! (classification, port mismatches) are the same for 1, 2 and 4 workers — on a generated
//! capture and on shared real captures (skipped with a message when ../shared is absent).
//! Real binary, real DPDK net_pcap, real Hyperscan.

mod common;

use common::{portolan, read_json, s, shared_captures};
use serde_json::Value;
use std::path::Path;

/// Shared captures with many flows and protocols (Ethernet, time-ordered).
const SHARED: [&str; 4] = ["iphone.pcap", "android.pcap", "quic.pcap", "tor.pcap"];

/// JSON lines of `path`, each without its worker-dependent fields (`flow_id` carries the
/// worker in its top bits), as canonical strings, sorted.
fn records(path: &Path) -> Vec<String> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: bad JSON line {l}: {e}", path.display()));
            if let Some(o) = v.as_object_mut() {
                o.remove("flow_id");
                o.remove("worker");
            }
            v.to_string()
        })
        .collect();
    out.sort();
    out
}

struct Run {
    flows: Vec<String>,
    events: Vec<String>,
    summary: Value,
}

fn replay(capture: &Path, workers: usize, dir: &Path) -> Run {
    let flows = dir.join(format!("flows-{workers}.json"));
    let events = dir.join(format!("events-{workers}.json"));
    let summary = dir.join(format!("summary-{workers}.json"));
    let out = portolan(&[
        "replay",
        s(capture),
        "--workers",
        &workers.to_string(),
        "--flows",
        s(&flows),
        "--events",
        s(&events),
        "--summary",
        s(&summary),
    ]);
    assert!(
        out.status.success(),
        "replay --workers {workers} {}: {}",
        capture.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Run {
        flows: records(&flows),
        events: records(&events),
        summary: read_json(&summary),
    }
}

/// Replays `capture` with 1, 2 and 4 workers and checks every run against the first.
fn check_identical(capture: &Path) -> (usize, usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = replay(capture, 1, dir.path());
    assert!(!one.flows.is_empty(), "{}: no flows", capture.display());
    for workers in [2, 4] {
        let run = replay(capture, workers, dir.path());
        let w = run.summary["workers"].as_array().expect("workers");
        assert_eq!(w.len(), workers, "one worker per shard");
        assert_eq!(run.summary["packets"], one.summary["packets"]);
        if one.flows.len() >= 16 {
            // Flows spread: no worker is left without work on a capture of many flows.
            assert!(
                w.iter().all(|x| x["packets"].as_u64().unwrap_or(0) > 0),
                "{}: {workers} workers: an empty shard: {w:?}",
                capture.display()
            );
        }
        let missing: Vec<&String> = one
            .flows
            .iter()
            .filter(|r| run.flows.binary_search(r).is_err())
            .take(3)
            .collect();
        assert_eq!(
            run.flows.len(),
            one.flows.len(),
            "{}: {workers} workers: flow count; first records of 1 worker not found: {missing:?}",
            capture.display()
        );
        assert!(
            run.flows == one.flows,
            "{}: {workers} workers: flow records differ; first not found: {missing:?}",
            capture.display()
        );
        assert!(
            run.events == one.events,
            "{}: {workers} workers: {} events vs {} with 1 worker",
            capture.display(),
            run.events.len(),
            one.events.len()
        );
    }
    (one.flows.len(), one.events.len())
}

#[test]
fn generated_capture_gives_the_same_flows_and_events_for_1_2_and_4_workers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("egress.pcap");
    let out = portolan(&[
        "synth",
        "--packets",
        "40000",
        "--devices",
        "40",
        "--seed",
        "7",
        "--nonstandard-share",
        "0.2",
        "--output",
        s(&capture),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (flows, events) = check_identical(&capture);
    assert!(flows > 50, "{flows} flows");
    assert!(
        events > 10,
        "{events} events: classification must produce some"
    );
}

#[test]
fn shared_captures_give_the_same_flows_and_events_for_1_2_and_4_workers() {
    let dir = shared_captures();
    if !dir.is_dir() {
        println!(
            "skipped: {} is absent (shared captures are not in the repository)",
            dir.display()
        );
        return;
    }
    for name in SHARED {
        let path = dir.join(name);
        if !path.is_file() {
            println!("skipped {name}: not in {}", dir.display());
            continue;
        }
        let (flows, events) = check_identical(&path);
        println!("{name}: {flows} flows, {events} events identical for 1, 2 and 4 workers");
    }
}
