//! The publisher on a real 3-node JetStream cluster on loopback (R3 stream): the stream's leader
//! is killed with SIGKILL in the middle of a drain; the publisher stalls while the cluster elects
//! a new leader (measured: the longest time without an acknowledgement), then goes on, and the
//! stream holds every outbox sequence exactly once and in order. Run with the default
//! acknowledgement timeout and with the tuned one the fleet uses (`ack_timeout_ms`).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use portolan_control::fleet::{self};
use portolan_control::learning::PairCountKey;
use portolan_control::{Durability, Store};
use portolan_fleet::local_server::LocalCluster;
use portolan_fleet::{FleetConfig, Publisher};

const ROWS: u64 = 2_000;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn config(urls: &[String], ack_timeout_ms: u64) -> FleetConfig {
    FleetConfig {
        servers: urls.to_vec(),
        site: "paris".into(),
        appliance: "edge-1".into(),
        stream: "PORTOLAN".into(),
        replicas: 3,
        outbox_capacity: 100_000,
        duplicate_window_s: 600,
        ack_timeout_ms,
        shared_config: false,
        config_catchup_ms: 0,
    }
}

fn fill(db: &Path, n: u64) {
    let mut s = Store::open_with(db, Durability::Normal).unwrap();
    s.enable_outbox(100_000);
    for i in 1..=n {
        let key = PairCountKey {
            role: "sales".into(),
            app_proto: "ssh".into(),
            transport: "TCP".into(),
            port: 2222,
            bucket_us: 0,
        };
        s.add_learning_counts(&[(key, i)]).unwrap();
    }
}

/// The stream's leader (server name), asked of any live node.
fn leader(urls: &[String]) -> Option<String> {
    rt().block_on(async {
        for url in urls {
            let Ok(Ok(client)) =
                tokio::time::timeout(Duration::from_secs(2), async_nats::connect(url)).await
            else {
                continue;
            };
            let js = async_nats::jetstream::new(client);
            if let Ok(mut s) = js.get_stream("PORTOLAN").await {
                if let Ok(info) = s.info().await {
                    if let Some(l) = info.cluster.as_ref().and_then(|c| c.leader.clone()) {
                        return Some(l);
                    }
                }
            }
        }
        None
    })
}

/// Outbox seqs in the stream, in stream order (read from `url`).
fn stream_seqs(url: &str) -> Vec<i64> {
    rt().block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream("PORTOLAN").await.unwrap();
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            let m = stream.get_raw_message(seq).await.unwrap();
            let decoded = fleet::decode(&m.payload).unwrap();
            let id = m
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.to_string())
                .unwrap_or_default();
            assert_eq!(id, format!("edge-1:{}", decoded.seq));
            out.push(decoded.seq);
        }
        out
    })
}

/// Drains `ROWS` rows through a 3-node cluster, killing the stream leader after a third of
/// them; the longest time without an acknowledgement after the kill.
fn stall_when_the_leader_dies(ack_timeout_ms: u64) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::start(&dir.path().join("nats"), 3, &[]).unwrap();
    let urls = cluster.urls();
    let db = dir.path().join("portolan.db");
    fill(&db, ROWS);
    let t_start = Instant::now();
    let publisher = Publisher::spawn(&config(&urls, ack_timeout_ms), "0.1.0", db, || {}).unwrap();
    let c = publisher.counters();
    let acked = || c.acked_seq.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked() < ROWS / 3 {
        assert!(Instant::now() < deadline, "no progress: {}", acked());
        std::thread::sleep(Duration::from_millis(2));
    }
    let name = leader(&urls).expect("a stream leader");
    let before = acked();
    let t_kill = Instant::now();
    let wall_kill = portolan_control::timestamp::now_us();
    cluster.node(&name).unwrap().kill();
    // Longest time the acknowledged sequence stood still from the kill on.
    let (mut last, mut last_change, mut stall) = (acked(), t_kill, Duration::ZERO);
    while acked() < ROWS {
        let now = acked();
        if now != last {
            stall = stall.max(last_change.elapsed());
            last = now;
            last_change = Instant::now();
        }
        assert!(
            t_kill.elapsed() < Duration::from_secs(60),
            "stuck at {now} after the leader {name} died"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let total = t_start.elapsed();
    let new_leader = leader(&urls).unwrap_or_default();
    println!(
        "ack_timeout_ms {ack_timeout_ms}: leader {name} killed at seq {before}; publish stall {:.2} s; new leader {new_leader}; {ROWS} messages in {:.2} s ({:.0}/s), duplicates {}",
        stall.as_secs_f64(),
        total.as_secs_f64(),
        ROWS as f64 / total.as_secs_f64(),
        c.duplicates.load(Ordering::Relaxed)
    );
    // When the cluster itself named the new leader (server logs), against the kill.
    for n in 1..=3 {
        let log = std::fs::read_to_string(dir.path().join(format!("nats/n{n}/server.log")))
            .unwrap_or_default();
        for line in log
            .lines()
            .filter(|l| l.contains("stream leader") && l.contains("PORTOLAN"))
        {
            println!("  n{n}: {line}");
        }
    }
    println!(
        "  killed at {}",
        portolan_control::timestamp::format_rfc3339(wall_kill)
    );
    publisher.stop();
    cluster.restart_stopped().unwrap();
    let live = cluster.urls()[0].clone();
    let mut seqs = Vec::new();
    for _ in 0..50 {
        seqs = stream_seqs(&live);
        if seqs.len() as u64 >= ROWS {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        seqs,
        (1..=ROWS as i64).collect::<Vec<_>>(),
        "every seq once, in order, on the restarted node's view too"
    );
    stall
}

#[test]
fn the_publisher_rides_out_the_death_of_the_stream_leader() {
    // nats-server's Raft election timeout (not configurable: 4 to 9 s, randomised) bounds the
    // stall from below; a 1 s acknowledgement timeout adds at most 1 s to it (the default 5 s
    // adds up to 5 s: the publish in flight when the leader died waits it out).
    let tuned = stall_when_the_leader_dies(1_000);
    assert!(tuned < Duration::from_secs(11), "{tuned:?}");
    if std::env::var_os("PORTOLAN_FLEET_STALL_BASELINE").is_some() {
        // Before tuning (the client's default 5 s acknowledgement timeout), for the note.
        stall_when_the_leader_dies(5_000);
    }
}
