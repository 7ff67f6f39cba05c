//! No silent loss at the store: while commits fail (here made to fail deterministically by a
//! trigger another connection installs, as a full disk or a locked file would), the findings and
//! alerts are kept in memory, the health says degraded with the error, and once the store takes
//! writes again the retry commits exactly what an undisturbed run commits.

mod common;

use common::{at, engine_in, fixture, flow, mail_beacon, tempdir};
use portolan_control::roles::RoleSet;
use portolan_control::{ControlConfig, ControlPlane, FlowObservation, Store};

const FAIL: &str = "CREATE TRIGGER full_ins BEFORE INSERT ON findings BEGIN SELECT RAISE(ABORT, 'database or disk is full (test)'); END;
                    CREATE TRIGGER full_upd BEFORE UPDATE ON findings BEGIN SELECT RAISE(ABORT, 'database or disk is full (test)'); END;";
const HEAL: &str = "DROP TRIGGER full_ins; DROP TRIGGER full_upd;";

fn beacon(i: i64) -> FlowObservation {
    let mut f = mail_beacon(i, 700);
    f.port_mismatch = Some(true);
    f
}

fn sql(db: &std::path::Path, batch: &str) {
    let c = rusqlite::Connection::open(db).expect("second connection");
    c.execute_batch(batch).expect("sql");
}

/// `(sessions, score, alerts as (severity, score))` of an undisturbed run over `n` beacons.
fn reference(n: i64) -> (u64, f64, Vec<(String, f64)>) {
    let dir = tempdir();
    let mut cp = engine_in(dir.path(), RoleSet::shipped_defaults().unwrap());
    cp.operator
        .import_device_states(&fixture("scenario_device_states.jsonl"))
        .unwrap();
    for i in 0..n {
        cp.ingest.ingest_flow(&beacon(i)).expect("ingest");
    }
    let f = cp.ingest.findings()[0].clone();
    let alerts = cp
        .operator
        .alerts()
        .unwrap()
        .into_iter()
        .map(|a| (a.alert.severity.as_str().to_string(), a.alert.score))
        .collect();
    (f.sessions, f.score, alerts)
}

#[test]
fn findings_wait_in_memory_while_the_store_refuses_and_are_committed_on_retry() {
    let dir = tempdir();
    let db = dir.path().join("portolan.db");
    let mut cp = engine_in(dir.path(), RoleSet::shipped_defaults().unwrap());
    cp.operator
        .import_device_states(&fixture("scenario_device_states.jsonl"))
        .unwrap();
    cp.ingest.ingest_flow(&beacon(0)).expect("first beacon");
    assert!(cp.core().store_health().degraded_reason().is_none());

    sql(&db, FAIL);
    for i in 1..6 {
        let e = cp
            .ingest
            .ingest_flow(&beacon(i))
            .expect_err("store refuses");
        assert!(e.to_string().contains("disk is full"), "{e}");
    }
    let h = cp.core().store_health();
    assert_eq!((h.unsaved_findings, h.failed_commits), (1, 5), "{h:?}");
    assert!(h.unsaved_alerts >= 1, "the beacon's alerts wait: {h:?}");
    let reason = h.degraded_reason().expect("degraded");
    assert!(
        reason.contains("cannot commit") && reason.contains("1 findings"),
        "{reason}"
    );
    assert!(
        !reason.contains(dir.path().to_str().unwrap()),
        "no server path: {reason}"
    );
    assert!(
        h.last_error
            .as_deref()
            .unwrap_or("")
            .contains("disk is full"),
        "{h:?}"
    );
    let stored = cp.operator.alerts().unwrap().len();
    // Still failing: a retry changes nothing and loses nothing.
    assert!(cp.ingest.retry_unsaved().is_err());
    assert_eq!(cp.ingest.unsaved().0, 1);

    sql(&db, HEAL);
    let late = cp.ingest.retry_unsaved().expect("store takes writes again");
    assert_eq!(late.len() as u64, h.unsaved_alerts);
    assert!(
        late.iter().all(|a| a.id > 0 && a.finding_id > 0),
        "ids from the store"
    );
    assert!(
        late.windows(2).all(|w| w[0].ts_us <= w[1].ts_us),
        "oldest first"
    );
    let h = cp.core().store_health();
    assert_eq!(
        (h.unsaved_findings, h.unsaved_alerts, h.failed_commits),
        (0, 0, 6)
    );
    assert!(h.degraded_reason().is_none() && h.last_error.is_none());
    assert!(cp.ingest.retry_unsaved().expect("nothing waits").is_empty());

    // Exactly what an undisturbed run commits: the finding's sessions and score, the alerts.
    let (sessions, score, alerts) = reference(6);
    let reopened = ControlPlane::new(
        Store::open(&db).unwrap(),
        RoleSet::shipped_defaults().unwrap(),
        ControlConfig::default(),
    )
    .unwrap();
    let f = reopened.ingest.findings()[0].clone();
    assert_eq!((f.sessions, f.score), (sessions, score));
    let got: Vec<(String, f64)> = reopened
        .operator
        .alerts()
        .unwrap()
        .into_iter()
        .map(|a| (a.alert.severity.as_str().to_string(), a.alert.score))
        .collect();
    assert_eq!(got.len(), stored + late.len());
    assert_eq!(got, alerts);
    assert_eq!(
        reopened
            .core()
            .lock()
            .unwrap()
            .store()
            .integrity_check()
            .unwrap(),
        "ok"
    );
}

#[test]
fn the_next_batch_commits_what_waits_before_its_own() {
    let dir = tempdir();
    let db = dir.path().join("portolan.db");
    let mut cp = engine_in(dir.path(), RoleSet::shipped_defaults().unwrap());
    sql(&db, FAIL);
    let mut first = cp.ingest.ingest_flow(&beacon(0)).map(|a| a.len());
    assert!(first.is_err());
    let waiting = cp.ingest.unsaved();
    assert_eq!(waiting.0, 1);
    sql(&db, HEAL);
    let mut other = flow(
        "10.10.0.22",
        "198.51.100.80",
        8080,
        "http",
        at("2024-05-01T10:01:00Z"),
        5,
    );
    other.port_mismatch = Some(true);
    let alerts = cp.ingest.ingest_flow(&other).expect("commits both");
    first = Ok(alerts.len());
    assert!(
        first.unwrap() > waiting.1,
        "the waiting alerts come first, then the new one"
    );
    assert_eq!(alerts[0].flow.dest_port, 8443);
    assert_eq!(alerts.last().unwrap().flow.dest_port, 8080);
    assert_eq!(
        cp.core().lock().unwrap().store().findings().unwrap().len(),
        2
    );
    assert!(cp.core().store_health().degraded_reason().is_none());
}
