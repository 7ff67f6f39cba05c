//! The fleet outbox: written in the same transaction as the findings, alerts and learning counts
//! it carries, bounded and counted, read in order and removed from the front, sequence numbers
//! never reused; and the message schema: frozen messages of schema 1 still decode.

mod common;

use common::{engine_in, mail_beacon, tempdir};
use portolan_control::fleet::{self, Body, Kind, Origin};
use portolan_control::roles::RoleSet;
use portolan_control::store::OutboxReader;
use portolan_control::ControlPlane;

fn beacon(i: i64) -> portolan_control::FlowObservation {
    mail_beacon(i, 3)
}

fn kinds(reader: &OutboxReader) -> Vec<(i64, Kind)> {
    reader
        .batch(0, 1000)
        .unwrap()
        .into_iter()
        .map(|r| (r.seq, r.kind))
        .collect()
}

fn enable(cp: &ControlPlane, capacity: u64) {
    cp.core().lock().unwrap().enable_outbox(capacity);
}

#[test]
fn findings_alerts_and_learning_counts_are_queued_in_order_and_removed_after_ack() {
    let dir = tempdir();
    let db = dir.path().join("portolan.db");
    let mut cp = engine_in(dir.path(), RoleSet::shipped_defaults().unwrap());
    let reader = OutboxReader::open(&db).unwrap();
    // Not enabled: nothing queued.
    cp.ingest.ingest_flow(&beacon(0)).unwrap();
    assert!(kinds(&reader).is_empty());

    enable(&cp, 1000);
    let mut alerts = 0;
    for i in 1..4 {
        alerts += cp.ingest.ingest_flow(&beacon(i)).unwrap().len();
    }
    cp.ingest.flush().unwrap();
    let rows = reader.batch(0, 1000).unwrap();
    let findings = rows.iter().filter(|r| r.kind == Kind::Finding).count();
    let queued_alerts = rows.iter().filter(|r| r.kind == Kind::Alert).count();
    assert_eq!(findings, 3, "one finding update per committed flow");
    assert_eq!(queued_alerts, alerts);
    assert_eq!(rows.last().unwrap().kind, Kind::Learning);
    assert!(
        rows.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "{rows:?}"
    );
    // Each payload is the stored record: the finding grows session by session.
    let sessions: Vec<u64> = rows
        .iter()
        .filter(|r| r.kind == Kind::Finding)
        .map(|r| {
            let f: portolan_control::findings::Finding = serde_json::from_str(&r.payload).unwrap();
            f.sessions
        })
        .collect();
    assert_eq!(sessions, vec![2, 3, 4]);

    // Removed from the front; numbers go on after the removed ones, never reused.
    let last = rows.last().unwrap().seq;
    assert_eq!(reader.remove_through(last).unwrap(), rows.len());
    assert_eq!(reader.stats().unwrap().rows, 0);
    cp.ingest.ingest_flow(&beacon(4)).unwrap();
    let next = reader.batch(0, 10).unwrap();
    assert_eq!(next[0].seq, last + 1);
    let stats = reader.stats().unwrap();
    assert_eq!(
        (stats.rows, stats.oldest_seq, stats.newest_seq),
        (1, last + 1, last + 1)
    );
}

#[test]
fn a_refused_commit_queues_nothing_and_a_full_outbox_counts_what_it_dropped() {
    let dir = tempdir();
    let db = dir.path().join("portolan.db");
    let mut cp = engine_in(dir.path(), RoleSet::shipped_defaults().unwrap());
    enable(&cp, 3);
    let reader = OutboxReader::open(&db).unwrap();
    // The store refuses alerts: the finding written earlier in the same transaction is rolled
    // back, and so is its outbox row.
    let other = rusqlite::Connection::open(&db).unwrap();
    other
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON alerts BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .unwrap();
    let mut raised = 0;
    for i in 0..3 {
        match cp.ingest.ingest_flow(&beacon(i)) {
            Ok(a) => raised += a.len(),
            Err(_) => break,
        }
    }
    assert_eq!(raised, 0);
    assert!(
        kinds(&reader).is_empty(),
        "nothing queued by a refused commit"
    );
    other.execute_batch("DROP TRIGGER refuse;").unwrap();
    for i in 3..8 {
        cp.ingest.ingest_flow(&beacon(i)).unwrap();
    }
    let stats = reader.stats().unwrap();
    assert_eq!(stats.rows, 3, "bounded at 3: {stats:?}");
    assert!(stats.dropped >= 3, "the rest counted: {stats:?}");
    assert_eq!(
        cp.core().lock().unwrap().store().outbox_stats().unwrap(),
        stats
    );
}

#[test]
fn frozen_schema_1_messages_still_decode() {
    for (file, kind) in [
        ("v1-finding.json", Kind::Finding),
        ("v1-alert.json", Kind::Alert),
        ("v1-learning.json", Kind::Learning),
    ] {
        let path = common::fixture(&format!("fleet/{file}"));
        let bytes = std::fs::read(&path).unwrap();
        let m = fleet::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            (m.schema, m.backlog),
            (1, 0),
            "no backlog field in the first messages"
        );
        assert_eq!(m.kind(), kind);
        assert_eq!((m.site.as_str(), m.appliance.as_str()), ("paris", "edge-1"));
        match m.body {
            Body::Finding(f) => assert_eq!(f.key.port, 8443),
            Body::Alert(a) => assert_eq!(a.flow.dest_port, 8443),
            Body::Learning(l) => assert!(!l.counts.is_empty()),
        }
    }
}

/// Writes the frozen messages from today's encoder (run once with
/// `PORTOLAN_WRITE_FLEET_FIXTURES=1`; the files are then kept as they are, so later schema
/// changes are checked against what schema 1 wrote).
#[test]
fn write_fixtures_when_asked() {
    if std::env::var_os("PORTOLAN_WRITE_FLEET_FIXTURES").is_none() {
        return;
    }
    let dir = tempdir();
    let db = dir.path().join("portolan.db");
    let mut cp = engine_in(dir.path(), RoleSet::shipped_defaults().unwrap());
    enable(&cp, 1000);
    for i in 0..4 {
        cp.ingest.ingest_flow(&beacon(i)).unwrap();
    }
    cp.ingest.flush().unwrap();
    let origin = Origin {
        site: "paris".into(),
        appliance: "edge-1".into(),
        version: "0.1.0".into(),
    };
    let out = common::fixture("fleet");
    std::fs::create_dir_all(&out).unwrap();
    for row in OutboxReader::open(&db).unwrap().batch(0, 1000).unwrap() {
        let bytes = fleet::encode(&origin, &row, 0).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        std::fs::write(
            out.join(format!("v1-{}.json", row.kind.as_str())),
            serde_json::to_string_pretty(&v).unwrap() + "\n",
        )
        .unwrap();
    }
}
