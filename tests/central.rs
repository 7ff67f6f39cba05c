//! `portolan central` end to end on a real `nats-server` on loopback: two appliances (`edge-1`
//! at site `paris`, `edge-2` at site `lyon`) replay the sample capture, which holds the same
//! devices (the devices roamed); the central consumes the stream with its durable consumer, is
//! killed with SIGKILL in the middle and started again, and then holds every alert of both
//! appliances exactly once, one finding per device and destination whose sessions are both
//! appliances' together, and both appliances with their last sequence numbers; served through
//! the same admin API (token from `portolan token create --config central.toml`).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::daemon::{self, Running};

use portolan_control::Store;
use portolan_fleet::local_server::LocalServer;
use serde_json::Value;

fn appliance_config(url: &str, site: &str, appliance: &str) -> String {
    let text = daemon::example_config_with_inventory();
    format!("{text}\n[fleet]\nservers = [{url:?}]\nsite = {site:?}\nappliance = {appliance:?}\n")
}

fn token(config: &Path, data_dir: &Path) -> String {
    daemon::create_token(config, Some(data_dir), "admin", "central-test")
}

/// A running `portolan run` or `portolan central`.
struct Proc {
    p: Running,
    client: reqwest::blocking::Client,
    token: String,
}

impl Proc {
    fn start(sub: &str, config: &Path, data_dir: &Path, token: &str) -> Proc {
        let p = Running::spawn(daemon::command(sub, config, Some(data_dir)));
        Proc {
            p,
            client: daemon::api_client_blocking(data_dir),
            token: token.to_string(),
        }
    }

    fn log_text(&self) -> String {
        self.p.log_text()
    }

    fn json(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.p.at(path))
            .bearer_auth(&self.token)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    fn wait_for_log(&self, text: &str) {
        self.p.wait_for_log_blocking(text, 90);
    }

    fn stop(self) {
        self.p.stop();
    }

    fn kill9(self) {
        self.p.kill9();
    }
}

/// Runs one appliance over the sample until its outbox is empty; returns its store file.
fn run_appliance(dir: &Path, url: &str, site: &str, name: &str) -> PathBuf {
    let config = dir.join(format!("{name}.toml"));
    let data = dir.join(name);
    std::fs::write(&config, appliance_config(url, site, name)).unwrap();
    let t = token(&config, &data);
    let a = Proc::start("run", &config, &data, &t);
    a.wait_for_log("dataplane finished");
    std::thread::sleep(Duration::from_millis(500));
    a.stop();
    let db = data.join("portolan.db");
    let left = Store::open(&db).unwrap().outbox_stats().unwrap();
    assert_eq!(
        left.rows, 0,
        "{name} sent everything before it stopped: {left:?}"
    );
    db
}

fn newest_seq(db: &Path) -> i64 {
    Store::open(db).unwrap().outbox_stats().unwrap().newest_seq
}

#[test]
fn the_central_merges_two_appliances_once_each_across_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let nats = LocalServer::start(&dir.path().join("nats")).unwrap();
    let url = nats.url();
    let central_config = dir.path().join("central.toml");
    let central_data = dir.path().join("central");
    std::fs::write(
        &central_config,
        format!("data_dir = \"central\"\n[central]\nservers = [{url:?}]\n"),
    )
    .unwrap();
    let t = token(&central_config, &central_data);
    let central = Proc::start("central", &central_config, &central_data, &t);
    central.wait_for_log("central: consuming");

    let db1 = run_appliance(dir.path(), &url, "paris", "edge-1");
    // Killed in the middle: after the first appliance, before the second.
    central.kill9();
    let db2 = run_appliance(dir.path(), &url, "lyon", "edge-2");
    let central = Proc::start("central", &central_config, &central_data, &t);
    let (seq1, seq2) = (newest_seq(&db1), newest_seq(&db2));
    let deadline = Instant::now() + Duration::from_secs(30);
    let appliances = loop {
        let (status, body) = central.json("/api/v1/fleet/appliances");
        assert_eq!(status, 200, "{body}");
        let list = body["appliances"].as_array().cloned().unwrap_or_default();
        let seq_of = |name: &str| {
            list.iter()
                .find(|a| a["appliance"] == name)
                .and_then(|a| a["last_seq"].as_i64())
        };
        if seq_of("edge-1") == Some(seq1) && seq_of("edge-2") == Some(seq2) {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "not caught up: {body}; log:\n{}",
            central.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(appliances[0]["site"], "paris");
    assert_eq!(appliances[1]["site"], "lyon");
    assert_eq!(appliances[0]["gaps"], 0);
    let (status, _) = central.json("/api/v1/alerts?limit=1000");
    assert_eq!(status, 200);
    let (status, problem) = central.json("/api/v1/alerts?limit=0");
    assert_eq!(status, 400, "problem+json from the same API: {problem}");
    central.stop();

    // Every alert of both appliances once; one finding per key with both appliances' sessions.
    let central_store = Store::open(&central_data.join("central.db")).unwrap();
    let (s1, s2) = (Store::open(&db1).unwrap(), Store::open(&db2).unwrap());
    let alerts = |s: &Store| s.alerts().unwrap().len();
    assert_eq!(alerts(&central_store), alerts(&s1) + alerts(&s2));
    let sessions = |s: &Store| {
        let mut v: Vec<(String, u64)> = s
            .findings()
            .unwrap()
            .into_iter()
            .map(|f| (f.key.as_text(), f.sessions))
            .collect();
        v.sort();
        v
    };
    let (one, two) = (sessions(&s1), sessions(&s2));
    assert_eq!(
        one.iter().map(|f| &f.0).collect::<Vec<_>>(),
        two.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let merged: Vec<(String, u64)> = one
        .iter()
        .zip(&two)
        .map(|(a, b)| (a.0.clone(), a.1 + b.1))
        .collect();
    assert_eq!(sessions(&central_store), merged);
}

impl Proc {
    fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .client
            .request(method, self.p.at(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    fn has_exception(&self, id: &str, expires_us: i64) -> bool {
        let (status, body) = self.json("/api/v1/exceptions");
        assert_eq!(status, 200, "{body}");
        body["exceptions"].as_array().is_some_and(|l| {
            l.iter().any(|e| {
                e["id"] == id
                    && e["expires"].as_str().is_some_and(|x| {
                        portolan_control::timestamp::parse_timestamp(x).ok() == Some(expires_us)
                    })
            })
        })
    }
}

/// Starts `portolan run` over the sample with `[fleet]` and waits until its replay is done.
fn start_appliance(dir: &Path, url: &str, site: &str, name: &str) -> (Proc, PathBuf, PathBuf) {
    let config = dir.join(format!("{name}.toml"));
    let data = dir.join(name);
    std::fs::write(&config, appliance_config(url, site, name)).unwrap();
    let t = token(&config, &data);
    let a = Proc::start("run", &config, &data, &t);
    a.wait_for_log("dataplane finished");
    (a, config, data)
}

#[test]
fn an_exception_approved_at_the_central_reaches_both_appliances_and_stale_edits_get_409() {
    let dir = tempfile::tempdir().unwrap();
    let nats = LocalServer::start(&dir.path().join("nats")).unwrap();
    let url = nats.url();
    let central_config = dir.path().join("central.toml");
    let central_data = dir.path().join("central");
    std::fs::write(
        &central_config,
        format!("data_dir = \"central\"\n[central]\nservers = [{url:?}]\n"),
    )
    .unwrap();
    let t = token(&central_config, &central_data);
    let central = Proc::start("central", &central_config, &central_data, &t);
    central.wait_for_log("shared configuration: current values applied");
    let (a, a_config, a_data) = start_appliance(dir.path(), &url, "paris", "edge-1");
    let (b, _, _) = start_appliance(dir.path(), &url, "lyon", "edge-2");
    assert!(a
        .log_text()
        .contains("shared configuration read; judging with it"));

    let expires = portolan_control::timestamp::parse_timestamp("2030-01-01T00:00:00Z").unwrap();
    let exception = |expires_us: i64| {
        serde_json::json!({"id": "corp-relay", "kind": "relay", "destinations": ["relay.corp.example"],
          "ports": [8443], "app_protos": ["tls"], "reason": "corporate relay", "owner": "netops@example.com",
          "expires_us": expires_us})
    };
    let path = "/api/v1/fleet/config/exceptions/corp-relay";
    let t0 = Instant::now();
    let (status, written) = central.send(
        reqwest::Method::PUT,
        path,
        Some(serde_json::json!({"revision": 0, "reason": "relay approved", "data": exception(expires)})),
    );
    assert_eq!(status, 200, "{written}");
    let r1 = written["revision"].as_u64().unwrap();
    let (mut seen_a, mut seen_b) = (None, None);
    while seen_a.is_none() || seen_b.is_none() {
        if seen_a.is_none() && a.has_exception("corp-relay", expires) {
            seen_a = Some(t0.elapsed());
        }
        if seen_b.is_none() && b.has_exception("corp-relay", expires) {
            seen_b = Some(t0.elapsed());
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "not applied");
        std::thread::sleep(Duration::from_millis(10));
    }
    let latency = seen_a.max(seen_b).unwrap();
    println!(
        "exception in force on both appliances {:.1} ms after the central's API answered the PUT",
        latency.as_secs_f64() * 1e3
    );
    assert!(latency < Duration::from_secs(2), "{latency:?}");

    // A stale revision: 409 problem+json naming the key and both revisions; nothing written.
    let (status, problem) = central.send(
        reqwest::Method::PUT,
        path,
        Some(serde_json::json!({"revision": 0, "reason": "mine", "data": exception(expires + 1)})),
    );
    assert_eq!(status, 409, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("exceptions/corp-relay")
            && detail.contains("revision 0")
            && detail.contains(&format!("revision {r1}")),
        "{problem}"
    );
    assert_eq!(problem["field"], "revision");
    let (status, listed) = central.json("/api/v1/fleet/config/exceptions");
    assert_eq!(status, 200);
    assert_eq!(listed["entries"][0]["revision"], r1, "{listed}");
    assert_eq!(
        listed["entries"][0]["data"]["expires_us"], expires,
        "{listed}"
    );
    let (status, problem) = a.json("/api/v1/fleet/config/exceptions");
    assert_eq!(status, 404, "an appliance does not write it: {problem}");
    // The central's own view has it too.
    assert!(central.has_exception("corp-relay", expires));

    // Audited on the appliance with the revision; survives a restart.
    let (_, audit) = a.json("/api/v1/audit");
    assert!(
        audit
            .to_string()
            .contains(&format!("fleet exceptions/corp-relay revision {r1}")),
        "{audit}"
    );
    a.stop();
    let ta = token(&a_config, &a_data);
    let a = Proc::start("run", &a_config, &a_data, &ta);
    assert!(a.has_exception("corp-relay", expires), "{}", a.log_text());
    a.stop();
    b.stop();
    central.stop();
}
