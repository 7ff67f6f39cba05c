//! The publisher against a real `nats-server` on loopback (a free port, a temporary JetStream
//! folder, killed at the end): messages reach the stream in outbox order with their ids; while the
//! server is down the store keeps committing and the backlog grows; after the restart it drains in
//! order; a publisher killed with SIGKILL in the middle of a drain and started again leaves no
//! duplicate in the stream.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use portolan_control::fleet::{self, Body};
use portolan_control::learning::PairCountKey;
use portolan_control::store::OutboxReader;
use portolan_control::{Durability, Store};
use portolan_fleet::local_server::LocalServer;
use portolan_fleet::{FleetConfig, Publisher};

const CHILD_DB: &str = "PORTOLAN_FLEET_TEST_CHILD_DB";
const CHILD_URL: &str = "PORTOLAN_FLEET_TEST_CHILD_URL";

fn config(url: &str) -> FleetConfig {
    FleetConfig {
        servers: vec![url.to_string()],
        site: "paris".into(),
        appliance: "edge-1".into(),
        stream: "PORTOLAN".into(),
        replicas: 1,
        outbox_capacity: 100_000,
        duplicate_window_s: 600,
        ack_timeout_ms: 2_000,
        shared_config: false,
        config_catchup_ms: 0,
    }
}

fn store(db: &Path) -> Store {
    let mut s = Store::open_with(db, Durability::Normal).unwrap();
    s.enable_outbox(100_000);
    s
}

/// Commits `n` learning-count flushes, each queued as one outbox row; the `i`th carries count
/// `first + i` so messages can be told apart.
fn commit(store: &mut Store, first: u64, n: u64) {
    for i in first..first + n {
        let key = PairCountKey {
            role: "sales".into(),
            app_proto: "ssh".into(),
            transport: "TCP".into(),
            port: 2222,
            bucket_us: 0,
        };
        store.add_learning_counts(&[(key, i)]).unwrap();
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every message in the stream, in stream order: (message id, outbox seq, count carried).
fn stream_messages(url: &str) -> Vec<(String, i64, u64)> {
    rt().block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let stream = js.get_stream("PORTOLAN").await.unwrap();
        let last = stream.get_info().await.unwrap().state.last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            let m = stream.get_raw_message(seq).await.unwrap();
            let id = m
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.to_string())
                .unwrap_or_default();
            let decoded = fleet::decode(&m.payload).unwrap();
            assert_eq!(m.subject.as_str(), "portolan.paris.edge-1.learning");
            let count = match decoded.body {
                Body::Learning(l) => l.counts[0].count,
                other => panic!("unexpected {other:?}"),
            };
            out.push((id, decoded.seq, count));
        }
        out
    })
}

fn stream_count(url: &str) -> u64 {
    rt().block_on(async {
        let client = match async_nats::connect(url).await {
            Ok(c) => c,
            Err(_) => return 0,
        };
        let js = async_nats::jetstream::new(client);
        match js.get_stream("PORTOLAN").await {
            Ok(s) => s.cached_info().state.messages,
            Err(_) => 0,
        }
    })
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(
            t.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The stream holds exactly outbox seqs 1..=n, in order, each under its own id.
fn assert_exactly_once_in_order(msgs: &[(String, i64, u64)], n: i64) {
    let seqs: Vec<i64> = msgs.iter().map(|m| m.1).collect();
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<_>>(),
        "outbox order, no gap, no copy"
    );
    for (id, seq, _) in msgs {
        assert_eq!(id, &format!("edge-1:{seq}"));
    }
}

#[test]
fn publishes_in_order_keeps_a_backlog_while_the_server_is_down_and_drains_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("portolan.db");
    let mut server = LocalServer::start(&dir.path().join("nats")).unwrap();
    let url = server.url();
    let mut s = store(&db);
    let publisher = Publisher::spawn(&config(&url), "0.1.0", db.clone(), || {}).unwrap();
    let c = publisher.counters();
    commit(&mut s, 1, 50);
    wait_for("50 messages", Duration::from_secs(20), || {
        c.published.load(Ordering::Relaxed) == 50
    });
    let msgs = stream_messages(&url);
    assert_exactly_once_in_order(&msgs, 50);
    assert_eq!(msgs[9].2, 10, "payload of the 10th row");

    // Server down: the store keeps committing, the backlog grows and is reported.
    server.kill();
    commit(&mut s, 51, 200);
    wait_for("the backlog of 200", Duration::from_secs(10), || {
        c.backlog.load(Ordering::Relaxed) == 200
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(c.published.load(Ordering::Relaxed), 50);
    assert!(c.errors.load(Ordering::Relaxed) > 0 || !c.healthy.load(Ordering::Relaxed));

    // Back: the backlog drains in order.
    server.restart().unwrap();
    let t = Instant::now();
    wait_for("the drain", Duration::from_secs(30), || {
        c.backlog.load(Ordering::Relaxed) == 0
    });
    let drained = t.elapsed();
    eprintln!("drained 200 queued messages in {drained:?} after the restart (reconnect included)");
    let msgs = stream_messages(&url);
    assert_exactly_once_in_order(&msgs, 250);
    // A publish sent while the server was away may reach it after the reconnect (its
    // acknowledgement timed out), before its retry: the retry is then acknowledged as a
    // duplicate, and the stream still holds it once.
    assert_eq!(
        c.published.load(Ordering::Relaxed) + c.duplicates.load(Ordering::Relaxed),
        250
    );
    assert_eq!(OutboxReader::open(&db).unwrap().stats().unwrap().rows, 0);
    publisher.stop();
}

/// The child process: a publisher over the store `$CHILD_DB`, until killed.
#[test]
fn child_publisher() {
    let (Some(db), Some(url)) = (std::env::var_os(CHILD_DB), std::env::var(CHILD_URL).ok()) else {
        return;
    };
    let _p = Publisher::spawn(&config(&url), "0.1.0", PathBuf::from(db), || {}).unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

fn spawn_child(db: &Path, url: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_publisher", "--nocapture"])
        .env(CHILD_DB, db)
        .env(CHILD_URL, url)
        .spawn()
        .unwrap()
}

#[test]
fn a_publisher_killed_mid_drain_leaves_no_duplicate() {
    const ROWS: u64 = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("portolan.db");
    let server = LocalServer::start(&dir.path().join("nats")).unwrap();
    let url = server.url();
    commit(&mut store(&db), 1, ROWS);

    let mut child = spawn_child(&db, &url);
    wait_for("the first 300 messages", Duration::from_secs(30), || {
        stream_count(&url) >= 300
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = stream_count(&url);
    let left = OutboxReader::open(&db).unwrap().stats().unwrap();
    eprintln!(
        "killed with {at_kill} messages in the stream; outbox kept {} rows from seq {}",
        left.rows, left.oldest_seq
    );
    assert!(
        at_kill < ROWS,
        "the kill must land in the middle of the drain"
    );

    let t = Instant::now();
    let mut child = spawn_child(&db, &url);
    wait_for("the rest", Duration::from_secs(60), || {
        stream_count(&url) >= ROWS && OutboxReader::open(&db).unwrap().stats().unwrap().rows == 0
    });
    let rest = t.elapsed();
    child.kill().unwrap();
    child.wait().unwrap();
    eprintln!(
        "after the restart: {} messages in {rest:?} ({:.0} messages/s, start-up included)",
        ROWS - at_kill,
        (ROWS - at_kill) as f64 / rest.as_secs_f64()
    );
    let msgs = stream_messages(&url);
    assert_exactly_once_in_order(&msgs, ROWS as i64);
}
