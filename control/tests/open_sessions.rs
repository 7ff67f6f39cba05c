//! Flows judged while they are open: the dataplane hands a flow off when it is identified (early
//! event), then with interim updates while it lasts, then its final record. The control plane
//! counts the three as one session (placed by flow id), raises the flow's alert at most once
//! (at the early event when its score calls for one), scores a persistent connection while it
//! is still open, and stores the same findings as when every flow arrived whole, whatever the
//! number of workers and however their events interleave.

mod common;

use common::{at, engine_in, flow, jittered_mail_session, roles_with_proxy, tempdir};
use portolan_control::findings::Finding;
use portolan_control::observation::{FlowObservation, FlowPhase};
use portolan_control::{Alert, ControlPlane};
use serde_json::json;
use std::collections::HashMap;

/// The locked iPhone's managed Mail app: TLS to 8443 every 15 minutes, and one session held
/// open for 11 minutes (a persistent connection).
fn beacon(sessions: i64) -> Vec<FlowObservation> {
    (0..sessions)
        .map(|i| {
            let mut f = jittered_mail_session(i);
            let secs = ((f.end_us - f.start_us) / 1_000_000) as u64;
            f.flow_id = 1_000 + i as u64;
            f.bytes_toserver = 1_000 * (secs + 1);
            f.bytes_toclient = 3_000 * (secs + 1);
            f
        })
        .collect()
}

/// A flow's events as a worker sends them: the early event 200 ms after its start (the
/// ClientHello read), an interim update every `interval_s` while it lasts (times and counters
/// only), the final record. Counters grow with the time elapsed.
fn events_of(f: &FlowObservation, interval_s: i64) -> Vec<(FlowPhase, FlowObservation)> {
    let dur = f.duration_us();
    let at_offset = |phase: FlowPhase, off_us: i64| {
        let share = |total: u64| (total as f64 * off_us as f64 / dur.max(1) as f64) as u64;
        let mut e = match phase {
            FlowPhase::Interim => FlowObservation {
                sni: None,
                tls: None,
                indicators: Vec::new(),
                ..f.clone()
            },
            _ => f.clone(),
        };
        e.end_us = f.start_us + off_us;
        e.bytes_toserver = share(f.bytes_toserver);
        e.bytes_toclient = share(f.bytes_toclient);
        e.pkts_toserver = share(f.pkts_toserver);
        e.pkts_toclient = share(f.pkts_toclient);
        (phase, e)
    };
    let mut out = vec![at_offset(FlowPhase::Early, 200_000.min(dur))];
    let mut t = interval_s * 1_000_000;
    while t < dur {
        out.push(at_offset(FlowPhase::Interim, t));
        t += interval_s * 1_000_000;
    }
    out.push((FlowPhase::Final, f.clone()));
    out
}

/// What an analyst sees of a finding (everything but ids and the alert bookkeeping).
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
        "bytes_toserver": f.bytes_toserver,
        "bytes_toclient": f.bytes_toclient,
        "locked_sessions": f.locked_sessions,
        "background_sessions": f.background_sessions,
        "idle_sessions": f.idle_sessions,
        "confidence": f.confidence,
        "src_ip": f.src_ip.to_string(),
    })
}

fn engine() -> (tempfile::TempDir, ControlPlane) {
    let dir = tempdir();
    let cp = engine_in(dir.path(), roles_with_proxy());
    cp.operator
        .import_device_states(&common::fixture("scenario_device_states.jsonl"))
        .unwrap();
    (dir, cp)
}

fn stored(cp: &ControlPlane) -> Vec<serde_json::Value> {
    let stored = cp.core().lock().unwrap().store().findings().unwrap();
    let mut out: Vec<serde_json::Value> = stored.iter().map(seen).collect();
    out.sort_by_key(|v| v["key"].to_string());
    out
}

/// xorshift, so every run checks the same interleavings.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// The flows' events as `workers` queues deliver them: flow `i` on worker `i % workers`, each
/// queue in its own order (a flow's events in order, flows by the time their events were
/// sent), the queues interleaved at random, fed in batches of `batch`.
fn run_phased(
    flows: &[FlowObservation],
    workers: usize,
    interval_s: i64,
    batch: usize,
    mut seed: u64,
) -> (Vec<serde_json::Value>, Vec<Alert>) {
    let (_dir, mut cp) = engine();
    let mut queues: Vec<Vec<(i64, FlowPhase, FlowObservation)>> = vec![Vec::new(); workers];
    for (i, f) in flows.iter().enumerate() {
        for (phase, e) in events_of(f, interval_s) {
            queues[i % workers].push((e.end_us, phase, e));
        }
    }
    for q in &mut queues {
        // Sent in time order (stable: one flow's events keep their order).
        q.sort_by_key(|(t, _, _)| *t);
        q.reverse();
    }
    let mut arrival = Vec::new();
    while queues.iter().any(|q| !q.is_empty()) {
        let live: Vec<usize> = (0..workers).filter(|&w| !queues[w].is_empty()).collect();
        let w = live[(next(&mut seed) % live.len() as u64) as usize];
        let take = 1 + (next(&mut seed) % 4) as usize;
        for _ in 0..take {
            if let Some((_, p, e)) = queues[w].pop() {
                arrival.push((p, e));
            }
        }
    }
    let mut alerts = Vec::new();
    for chunk in arrival.chunks(batch) {
        alerts.extend(cp.ingest.ingest_events(chunk).unwrap());
    }
    assert_eq!(
        cp.ingest.open_sessions(),
        0,
        "every final record closed its session"
    );
    (stored(&cp), alerts)
}

fn run_final_only(flows: &[FlowObservation]) -> Vec<serde_json::Value> {
    let (_dir, mut cp) = engine();
    cp.ingest.ingest_flows(flows).unwrap();
    stored(&cp)
}

#[test]
fn early_interim_and_final_events_are_one_session_whatever_the_interleaving() {
    let flows = beacon(10);
    let whole = run_final_only(&flows);
    assert_eq!(whole[0]["sessions"], 10, "{whole:#?}");
    let reasons = whole[0]["reasons"].to_string();
    assert!(reasons.contains("persistent connection"), "{reasons}");
    for workers in [1, 2, 4] {
        for seed in 1..=6u64 {
            let batch = 1 + (seed as usize % 5);
            let (found, alerts) = run_phased(&flows, workers, 60, batch, 0x9E37_79B9 ^ seed);
            assert_eq!(
                found, whole,
                "{workers} workers, seed {seed}, batches of {batch}"
            );
            // One alert per flow at most, and the beacon's first alert is raised by an early
            // event (200 ms into its flow), not at the flow's end.
            let mut per_flow: HashMap<u64, usize> = HashMap::new();
            for a in &alerts {
                *per_flow.entry(a.flow.flow_id).or_default() += 1;
            }
            assert!(
                per_flow.values().all(|&n| n == 1),
                "{workers} workers, seed {seed}: {per_flow:?}"
            );
            let first = alerts
                .iter()
                .min_by_key(|a| a.ts_us)
                .expect("the beacon alerts");
            assert_eq!(
                first.ts_us,
                first.flow.start_us + 200_000,
                "raised at the early event"
            );
            assert!(first.flow.sni.is_some(), "the early event carries the SNI");
        }
    }
}

#[test]
fn a_persistent_connection_is_scored_while_it_is_open() {
    let (_dir, mut cp) = engine();
    let start = at("2024-05-01T09:00:00Z");
    let mut f = flow("10.10.0.21", "203.0.113.50", 8443, "tls", start, 900);
    f.flow_id = 77;
    f.sni = Some("c2.example.net".to_string());
    f.port_mismatch = Some(true);
    let events = events_of(&f, 60);
    let finding = |cp: &ControlPlane| {
        let all = cp.core().lock().unwrap().store().findings().unwrap();
        assert_eq!(all.len(), 1, "{all:#?}");
        all[0].clone()
    };
    let mut alerts = 0;
    let mut longest = Vec::new();
    for (i, e) in events.iter().enumerate() {
        alerts += cp
            .ingest
            .ingest_events(std::slice::from_ref(e))
            .unwrap()
            .len();
        let now = finding(&cp);
        assert_eq!(now.sessions, 1, "event {i} ({:?}) counted once", e.0);
        assert_eq!(now.longest_session_us, e.1.duration_us());
        assert_eq!(now.connected_us, e.1.duration_us());
        longest.push(now.longest_session_us);
        if e.0 == FlowPhase::Interim && e.1.duration_us() >= 600_000_000 {
            assert!(
                now.reasons
                    .iter()
                    .any(|r| r.contains("persistent connection")),
                "scored as persistent while open: {:?}",
                now.reasons
            );
        }
        if e.0 != FlowPhase::Final {
            assert_eq!(cp.ingest.open_sessions(), 1);
        }
    }
    assert!(longest.windows(2).all(|w| w[0] < w[1]), "{longest:?}");
    assert_eq!(alerts, 1, "one alert for the flow");
    assert_eq!(cp.ingest.open_sessions(), 0);
    let stats = cp.core().lock().unwrap().stats();
    assert_eq!(stats.flows, 1, "{stats:?}");
    assert_eq!(stats.session_updates, events.len() as u64 - 1, "{stats:?}");
}

#[test]
fn an_interim_update_without_its_early_event_is_ignored_and_the_final_record_counts() {
    let (_dir, mut cp) = engine();
    let mut f = flow(
        "10.10.0.21",
        "203.0.113.50",
        8443,
        "tls",
        at("2024-05-01T09:00:00Z"),
        300,
    );
    f.port_mismatch = Some(true);
    // The early event was dropped by a full queue: only interim updates and the final record.
    let events: Vec<_> = events_of(&f, 60)
        .into_iter()
        .filter(|(p, _)| *p != FlowPhase::Early)
        .collect();
    cp.ingest.ingest_events(&events).unwrap();
    let all = cp.core().lock().unwrap().store().findings().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].sessions, 1);
    assert_eq!(all[0].connected_us, 300_000_000);
    let stats = cp.core().lock().unwrap().stats();
    assert_eq!(stats.unmatched_updates, 4, "{stats:?}");
    assert_eq!(stats.flows, 1);
}
