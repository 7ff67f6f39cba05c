//! `portolan run` with `[fleet]` against a real `nats-server` on loopback (free port, temporary
//! JetStream folder, killed at the end):
//!
//! 1. the daemon replays the sample capture and every finding update and alert it stored reaches
//!    the stream, in outbox order, each once, on `portolan.paris.edge-1.<kind>`; `/metrics` and
//!    `/api/v1/stats` report the publisher as output `fleet`;
//! 2. with the server stopped, a restarted daemon replays the capture again: it keeps judging
//!    (findings grow) while the outbox backlog grows and is reported; it is then killed with
//!    SIGKILL;
//! 3. the server comes back and a third start drains the backlog: the stream then holds outbox
//!    sequence numbers 1..N exactly once, in order, and as many alert messages as the store has
//!    alerts.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::daemon::{self, Running};

use portolan_control::fleet::{self, Body, Kind};
use portolan_fleet::local_server::LocalServer;
use serde_json::Value;

/// The example configuration with absolute sample paths, the sample inventory imported at
/// start-up, and `[fleet]` pointing at `url`.
fn config_text(url: &str) -> String {
    let text = daemon::example_config_with_inventory();
    format!(
        "{text}\n[fleet]\nservers = [{url:?}]\nsite = \"paris\"\nappliance = \"edge-1\"\nack_timeout_ms = 1000\nconfig_catchup_ms = 1000\n"
    )
}

fn create_token(config: &Path, data_dir: &Path) -> String {
    daemon::create_token(config, Some(data_dir), "admin", "fleet-test")
}

struct Daemon {
    p: Running,
    client: reqwest::blocking::Client,
    token: String,
}

impl Daemon {
    fn start(config: &Path, data_dir: &Path, token: &str) -> Daemon {
        let p = Running::spawn(daemon::command("run", config, Some(data_dir)));
        Daemon {
            p,
            client: daemon::api_client_blocking(data_dir),
            token: token.to_string(),
        }
    }

    fn log_text(&self) -> String {
        self.p.log_text()
    }

    fn get(&self, path: &str) -> String {
        let r = self
            .client
            .get(self.p.at(path))
            .bearer_auth(&self.token)
            .send()
            .expect("request");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.text().unwrap()
    }

    fn json(&self, path: &str) -> Value {
        serde_json::from_str(&self.get(path)).unwrap()
    }

    /// The publisher's entry among the outputs of `/api/v1/stats`.
    fn fleet_output(&self) -> Value {
        let stats = self.json("/api/v1/stats");
        stats["outputs"]
            .as_array()
            .and_then(|o| o.iter().find(|o| o["name"] == "fleet").cloned())
            .unwrap_or_else(|| panic!("no fleet output in {stats}"))
    }

    /// Waits until the capture is replayed and judged.
    fn wait_for_replay(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !self.log_text().contains("dataplane finished") {
            assert!(
                Instant::now() < deadline,
                "replay did not finish; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // The drain thread judges the last flows within a few milliseconds.
        std::thread::sleep(Duration::from_millis(500));
    }

    fn wait_until(&self, what: &str, mut done: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.fleet_output();
            if done(&out) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: fleet output {out}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn count(&self, path: &str, field: &str) -> usize {
        self.json(path)[field].as_array().map_or(0, Vec::len)
    }

    fn stop(self) {
        self.p.stop();
    }

    fn kill9(self) {
        self.p.kill9();
    }
}

/// Every message in the stream, in stream order: (message id, subject, decoded message).
fn stream_messages(url: &str) -> Vec<(String, String, fleet::FleetMessage)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let stream = js.get_stream("PORTOLAN").await.unwrap();
        let last = stream.cached_info().state.last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            let m = stream.get_raw_message(seq).await.unwrap();
            let id = m
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.to_string())
                .unwrap_or_default();
            out.push((
                id,
                m.subject.to_string(),
                fleet::decode(&m.payload).unwrap(),
            ));
        }
        out
    })
}

/// Outbox sequence numbers 1..=n, each once, in order, under its id and subject.
fn assert_exactly_once_in_order(msgs: &[(String, String, fleet::FleetMessage)]) {
    let seqs: Vec<i64> = msgs.iter().map(|m| m.2.seq).collect();
    let n = i64::try_from(msgs.len()).unwrap();
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<_>>(),
        "in outbox order, once each"
    );
    for (id, subject, m) in msgs {
        assert_eq!(id, &format!("edge-1:{}", m.seq));
        assert_eq!(
            subject,
            &format!("portolan.paris.edge-1.{}", m.kind().as_str())
        );
        assert_eq!(
            (m.site.as_str(), m.schema),
            ("paris", fleet::SCHEMA_VERSION)
        );
    }
}

fn count_kind(msgs: &[(String, String, fleet::FleetMessage)], kind: Kind) -> usize {
    msgs.iter().filter(|m| m.2.kind() == kind).count()
}

/// Sessions of every finding the stream's latest updates say, by finding key.
fn latest_sessions(msgs: &[(String, String, fleet::FleetMessage)]) -> Vec<(String, u64)> {
    let mut by_key = std::collections::BTreeMap::new();
    for (_, _, m) in msgs {
        if let Body::Finding(f) = &m.body {
            by_key.insert(f.key.as_text(), f.sessions);
        }
    }
    by_key.into_iter().collect()
}

fn store(data: &Path) -> portolan_control::Store {
    portolan_control::Store::open(&data.join("portolan.db")).unwrap()
}

/// Sessions of every stored finding, by finding key.
fn stored_sessions(data: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = store(data)
        .findings()
        .unwrap()
        .into_iter()
        .map(|f| (f.key.as_text(), f.sessions))
        .collect();
    v.sort();
    v
}

fn stored_alerts(data: &Path) -> usize {
    store(data).alerts().unwrap().len()
}

#[test]
fn the_appliance_publishes_through_its_outbox_and_loses_nothing_across_an_outage_and_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut nats = LocalServer::start(&dir.path().join("nats")).unwrap();
    let config: PathBuf = dir.path().join("portolan.toml");
    std::fs::write(&config, config_text(&nats.url())).unwrap();
    let token = create_token(&config, &data);

    // 1. Published, in order, once each.
    let d = Daemon::start(&config, &data, &token);
    d.wait_for_replay();
    let out = d.wait_until("drained", |o| {
        o["queued"] == 0 && o["sent"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(out["kind"], "nats-jetstream");
    let alerts = d.count("/api/v1/alerts?limit=1000", "alerts");
    assert!(alerts > 0, "the sample raises alerts");
    let metrics = d.get("/metrics");
    assert!(
        metrics
            .contains("portolan_output_events_queued{output=\"fleet\",kind=\"nats-jetstream\"} 0"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("fleet"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let first = stream_messages(&nats.url());
    assert_exactly_once_in_order(&first);
    assert_eq!(count_kind(&first, Kind::Alert), alerts);
    d.stop();
    let after_first = stream_messages(&nats.url());
    assert_exactly_once_in_order(&after_first);
    assert!(
        count_kind(&after_first, Kind::Learning) >= 1,
        "the learning counts written at shutdown were sent before the exit"
    );
    let stored = stored_sessions(&data);
    assert!(!stored.is_empty());
    assert_eq!(
        latest_sessions(&after_first),
        stored,
        "the stream's latest finding updates are the store's findings"
    );

    // 2. The server is away: the daemon judges the capture again, the backlog grows.
    nats.kill();
    let d = Daemon::start(&config, &data, &token);
    d.wait_for_replay();
    let out = d.wait_until("backlog", |o| o["queued"].as_u64().unwrap_or(0) > 0);
    let backlog = out["queued"].as_u64().unwrap();
    assert!(d.get("/metrics").contains(&format!(
        "portolan_output_events_queued{{output=\"fleet\",kind=\"nats-jetstream\"}} {backlog}"
    )));
    d.kill9();
    let grown = stored_sessions(&data);
    let total = |v: &[(String, u64)]| v.iter().map(|f| f.1).sum::<u64>();
    assert!(
        total(&grown) > total(&stored),
        "the appliance kept judging while the cluster was away"
    );

    // 3. Back: a restarted daemon drains the backlog, nothing twice, nothing missing.
    nats.restart().unwrap();
    let t = Instant::now();
    let d = Daemon::start(&config, &data, &token);
    d.wait_until("drained after the restart", |o| o["queued"] == 0);
    let drained = t.elapsed();
    d.wait_for_replay();
    d.wait_until("drained after the replay", |o| o["queued"] == 0);
    eprintln!("backlog of {backlog} drained {drained:?} after the daemon's start");
    let all = stream_messages(&nats.url());
    assert_exactly_once_in_order(&all);
    assert!(all.len() as u64 >= after_first.len() as u64 + backlog);
    d.stop();
    let all = stream_messages(&nats.url());
    assert_exactly_once_in_order(&all);
    assert_eq!(count_kind(&all, Kind::Alert), stored_alerts(&data));
    assert_eq!(latest_sessions(&all), stored_sessions(&data));
}
