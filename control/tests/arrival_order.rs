//! Verdicts do not depend on the order in which sessions reach the control plane: the dataplane's
//! workers hand flows off when they end, each from its own queue, so the drain thread sees them
//! in no fixed order. Each session is placed by its own start time; a late one updates its
//! finding as if it had arrived in time order (score, severity, reasons, persistence).

mod common;

use common::{engine_in, jittered_mail_session, roles_with_proxy, tempdir};
use portolan_control::findings::Finding;
use portolan_control::observation::FlowObservation;
use serde_json::json;

/// The locked iPhone's managed Mail app: TLS to 8443 every 15 minutes (with a little jitter),
/// and one session held open for 11 minutes (a persistent connection).
fn beacon(sessions: i64) -> Vec<FlowObservation> {
    (0..sessions).map(jittered_mail_session).collect()
}

/// What an analyst sees of a finding (everything but ids and the alert bookkeeping, which
/// follows the order alerts were raised in).
fn seen(f: &Finding) -> serde_json::Value {
    json!({
        "key": f.key.as_text(),
        "score": f.score,
        "severity": f.severity,
        "reasons": f.reasons,
        "sessions": f.sessions,
        "first_seen_us": f.first_seen_us,
        "last_seen_us": f.last_seen_us,
        "interval_s": f.interval_seconds(),
        "interval_cv": f.intervals.coefficient_of_variation(),
        "longest_session_us": f.longest_session_us,
        "connected_us": f.connected_us,
        "locked_sessions": f.locked_sessions,
        "background_sessions": f.background_sessions,
        "idle_sessions": f.idle_sessions,
        "confidence": f.confidence,
        "src_ip": f.src_ip.to_string(),
    })
}

/// Ingests `flows` in `order`, in batches of `batch`, and returns the stored findings.
fn run(flows: &[FlowObservation], order: &[usize], batch: usize) -> Vec<serde_json::Value> {
    let dir = tempdir();
    let mut cp = engine_in(dir.path(), roles_with_proxy());
    cp.operator
        .import_device_states(&common::fixture("scenario_device_states.jsonl"))
        .unwrap();
    let ordered: Vec<FlowObservation> = order.iter().map(|&i| flows[i].clone()).collect();
    for chunk in ordered.chunks(batch) {
        cp.ingest.ingest_flows(chunk).unwrap();
    }
    let stored = cp.core().lock().unwrap().store().findings().unwrap();
    let mut out: Vec<serde_json::Value> = stored.iter().map(seen).collect();
    out.sort_by_key(|v| v["key"].to_string());
    out
}

/// A small deterministic shuffle (xorshift), so every run checks the same orders.
fn shuffled(n: usize, mut seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    v
}

#[test]
fn a_late_session_updates_the_finding_as_if_it_had_arrived_in_order() {
    let flows = beacon(6);
    let in_order = run(&flows, &[0, 1, 2, 3, 4, 5], 1);
    let reasons = in_order[0]["reasons"].to_string();
    assert!(reasons.contains("recurs every 900 s"), "{reasons}");
    assert!(reasons.contains("persistent connection"), "{reasons}");
    assert_eq!(in_order[0]["sessions"], 6);
    // What two workers do to a beacon: each hands off its own sessions, one queue after the
    // other, and the session held open arrives last.
    for order in [
        [0, 2, 4, 1, 3, 5],
        [1, 3, 5, 0, 2, 4],
        [0, 1, 3, 4, 5, 2],
        [5, 4, 3, 2, 1, 0],
    ] {
        for batch in [1, 4] {
            assert_eq!(
                run(&flows, &order, batch),
                in_order,
                "order {order:?}, batches of {batch}"
            );
        }
    }
}

#[test]
fn any_arrival_order_gives_the_same_finding() {
    let flows = beacon(12);
    let in_order = run(&flows, &(0..flows.len()).collect::<Vec<_>>(), 1);
    for seed in 1..=12u64 {
        let order = shuffled(flows.len(), 0x9E37_79B9_7F4A_7C15 ^ seed);
        let batch = 1 + (seed as usize % 5);
        assert_eq!(
            run(&flows, &order, batch),
            in_order,
            "order {order:?}, batches of {batch}"
        );
    }
}
