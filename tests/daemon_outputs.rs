//! `portolan run`'s outputs as an operator meets them (issue 14): the chosen port said on stderr
//! with `RUST_LOG` at `warn`, the EVE flow log, the files reopened on SIGHUP after a rotation, and
//! each output's counters (files and a Redis receiver that is down) in `/api/v1/stats` and
//! `/metrics`, with `portolan_build_info`.
//!
//! One daemon replays `samples/egress-sample.pcap` through DPDK's net_pcap: it holds the dataplane
//! until the inventory is pushed, so the files are rotated (renamed, SIGHUP) before any flow is
//! judged, and every flow and alert must land in the new files, none in the renamed ones.

mod common;
#[path = "common/eve_schema.rs"]
mod eve_schema;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::{self, Running, BIN};

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

struct Daemon {
    p: Running,
    client: reqwest::Client,
}

impl Daemon {
    fn log_text(&self) -> String {
        self.p.log_text()
    }

    async fn wait_for_log(&self, text: &str) {
        self.p.wait_for_log(text, 60).await;
    }

    async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        let r = self
            .client
            .get(self.p.at(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        self.p.signal(sig);
    }
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn lines(path: &Path) -> Vec<Value> {
    common::json_lines(path)
}

fn output<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["name"] == name))
        .unwrap_or_else(|| panic!("no output {name} in {stats}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_log_rotation_on_sighup_and_output_counters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let samples = Path::new(ROOT).join("samples");
    let redis_port = closed_port();
    let config_text = std::fs::read_to_string(Path::new(ROOT).join("config/portolan.example.toml"))
        .expect("example config")
        .replace("../samples/", &format!("{}/", samples.display()))
        .replace("data_dir = \"../data\"", "data_dir = \"data\"")
        .replace(
            "eve = \"alerts.eve.json\"",
            &format!(
                "eve = \"alerts.eve.json\"\nflows = \"flows.eve.json\"\n\
                 [[outputs.redis]]\naddress = \"127.0.0.1:{redis_port}\"\nkey = \"eve\"\n\
                 mode = \"list\"\nqueue = 2\n"
            ),
        );
    assert!(config_text.contains("flows = \"flows.eve.json\""));
    assert!(config_text.contains("data_dir = \"data\""));
    let config = dir.path().join("portolan.toml");
    std::fs::write(&config, config_text).expect("config");

    let token = daemon::create_token(&config, None, "admin", "outputs");

    // `warn` everywhere but the daemon's own lines (to follow the replay): the API's "listening"
    // line is filtered out, so the daemon must say the port itself.
    let mut run = daemon::command("run", &config, None);
    run.env("RUST_LOG", "warn,portolan::daemon=info");
    let d = Daemon {
        p: Running::spawn(run),
        client: daemon::api_client(&data),
    };
    assert!(
        d.log_text().contains("portolan: admin API listening on "),
        "the daemon names its port at RUST_LOG=warn; log:\n{}",
        d.log_text()
    );
    d.wait_for_log("waits for the first inventory").await;

    // Every output is listed before anything was written.
    let stats: Value = d.get("/api/v1/stats", &token).await.json().await.unwrap();
    let flows_out = output(&stats, "flows");
    assert_eq!(flows_out["kind"], "file");
    assert_eq!(flows_out["sent"], 0);
    let redis = output(&stats, "redis[0]");
    assert_eq!(redis["kind"], "redis-list");
    assert_eq!(redis["queue_limit"], 2);
    assert_eq!(redis["target"], format!("127.0.0.1:{redis_port}"));

    // Rotate: rename both files, then SIGHUP.
    let (eve, flows) = (data.join("alerts.eve.json"), data.join("flows.eve.json"));
    let (eve_old, flows_old) = (
        data.join("alerts.eve.json.1"),
        data.join("flows.eve.json.1"),
    );
    std::fs::rename(&eve, &eve_old).expect("rename EVE");
    std::fs::rename(&flows, &flows_old).expect("rename flow log");
    d.signal(nix::sys::signal::Signal::SIGHUP);
    d.wait_for_log("SIGHUP: roles, baselines and exceptions reloaded")
        .await;

    // Push the inventory: the dataplane starts and the sample is judged.
    let inventory = std::fs::read(samples.join("inventory.json")).expect("inventory");
    let r = d
        .client
        .post(d.p.at("/api/v1/inventory"))
        .bearer_auth(&token)
        .body(inventory)
        .send()
        .await
        .expect("import");
    assert!(r.status().is_success(), "{}", r.status());
    d.wait_for_log("dataplane finished").await;

    // The drain thread writes the last flows within a few milliseconds of the workers' end.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stats = loop {
        let stats: Value = d.get("/api/v1/stats", &token).await.json().await.unwrap();
        let flows_sent = output(&stats, "flows")["sent"].as_u64().unwrap_or(0);
        if flows_sent == 200 || Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Nothing went to the renamed files; the new ones hold every flow and alert.
    assert_eq!(std::fs::metadata(&eve_old).unwrap().len(), 0);
    assert_eq!(std::fs::metadata(&flows_old).unwrap().len(), 0);
    let flow_records = lines(&flows);
    assert_eq!(flow_records.len(), 200, "the sample has 200 flows");
    assert!(flow_records.iter().all(|r| r["event_type"] == "flow"));
    let schema = eve_schema::EveSchema::load();
    let (n, failures) = schema.check_all("flow log", &flow_records);
    assert_eq!((n, failures.len()), (200, 0), "{failures:?}");
    let alerts = lines(&eve);
    assert!(alerts.len() > 3, "{} alerts", alerts.len());

    let file = output(&stats, "flows");
    assert_eq!(file["sent"], 200);
    assert_eq!(file["reopened"], 1);
    assert_eq!(file["dropped"], 0);
    let eve_out = output(&stats, "eve");
    assert_eq!(eve_out["sent"].as_u64(), Some(alerts.len() as u64));
    assert_eq!(eve_out["reopened"], 1);

    // Redis is down: at most the queue (2) and the one event in hand wait; the rest is dropped
    // and counted, and every alert is accounted for.
    let redis = output(&stats, "redis[0]");
    let (sent, dropped, queued) = (
        redis["sent"].as_u64().unwrap(),
        redis["dropped"].as_u64().unwrap(),
        redis["queued"].as_u64().unwrap(),
    );
    assert_eq!(sent, 0, "{redis}");
    assert!(queued <= 3, "{redis}");
    assert_eq!(sent + dropped + queued, alerts.len() as u64, "{redis}");
    assert!(dropped >= alerts.len() as u64 - 3, "{redis}");
    assert!(redis["errors"].as_u64().unwrap() >= 1, "{redis}");

    // The same counters in /metrics, and what the build is.
    let text = d.get("/metrics", &token).await.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("metrics parse");
    let sample = |name: &str, output: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("output") == Some(output))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no {name}{{output={output}}} in\n{text}"))
    };
    assert_eq!(sample("portolan_output_events_sent_total", "flows"), 200.0);
    assert!(sample("portolan_output_events_dropped_total", "redis[0]") >= dropped as f64);
    assert_eq!(sample("portolan_output_queue_limit", "redis[0]"), 2.0);
    let build = scrape
        .samples
        .iter()
        .find(|s| s.metric == "portolan_build_info")
        .unwrap_or_else(|| panic!("no portolan_build_info in\n{text}"));
    let version = Command::new(BIN).arg("--version").output().unwrap();
    let version = String::from_utf8(version.stdout).unwrap();
    for label in ["version", "revision", "dpdk", "hyperscan"] {
        let v = build.labels.get(label).unwrap_or_default();
        assert!(
            !v.is_empty() && version.contains(v),
            "{label}={v:?}; {version}"
        );
    }

    // Stop cleanly.
    d.p.stop();
}
