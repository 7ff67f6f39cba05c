//! `portolan run` end to end: the real daemon (DPDK net_pcap replaying `samples/egress-sample.pcap`,
//! Hyperscan classification, the SQLite store, the admin API over TLS) driven over HTTPS on loopback
//! with tokens created by `portolan token create`.
//!
//! Design of the replay: the shipped example configuration says `dataplane.start =
//! "after_first_inventory"`, so the daemon serves the API at once and holds the dataplane until the
//! inventory is pushed through `POST /api/v1/inventory`; the capture is then judged with the
//! inventory in place. A restart over the same data folder replays the capture again (the store
//! already holds devices), which is how the "next verdict" after a baseline change is observed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::daemon::{self, Running, BIN};

use reqwest::StatusCode;
use serde_json::{json, Value};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Daemons in this binary run one at a time: each starts a DPDK EAL and the machine is small.
static ONE_DAEMON: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn example_config() -> PathBuf {
    Path::new(ROOT).join("config/portolan.example.toml")
}

/// The example configuration with absolute sample paths and the sample inventory imported at
/// start-up (so the dataplane starts at once).
fn example_config_text_with_inventory() -> String {
    daemon::example_config_with_inventory()
}

fn sample_capture() -> PathBuf {
    Path::new(ROOT).join("samples/egress-sample.pcap")
}

/// Frames in a capture, counted by reading it.
fn capture_frames(path: &Path) -> u64 {
    let mut r = portolan_packet::capture::CaptureReader::open(path).expect("capture");
    let mut n = 0;
    while r.next_record().expect("record").is_some() {
        n += 1;
    }
    n
}

/// `portolan token create`; the token is the only thing on stdout.
fn create_token(config: &Path, data_dir: &Path, role: &str, label: &str) -> String {
    daemon::create_token(config, Some(data_dir), role, label)
}

/// A running `portolan run`.
struct Daemon {
    p: Running,
    client: reqwest::Client,
    cert: PathBuf,
}

impl Daemon {
    /// Starts the daemon on an ephemeral port and waits for its `admin API listening on` line.
    fn start(config: &Path, data_dir: &Path) -> Daemon {
        Self::start_with_nofile(config, data_dir, None)
    }

    /// [`Daemon::start`], with the daemon's descriptor limit (`RLIMIT_NOFILE`) lowered to `nofile`
    /// when given (through the shell's `ulimit -n`, which then execs the daemon).
    fn start_with_nofile(config: &Path, data_dir: &Path, nofile: Option<u32>) -> Daemon {
        Self::start_in_shell(config, data_dir, nofile.map(|n| format!("ulimit -n {n}")))
    }

    /// [`Daemon::start`], run through `sh -c '<shell>; exec portolan ...'` when `shell` is given
    /// (e.g. `ulimit -n 256`, `umask 000`).
    fn start_in_shell(config: &Path, data_dir: &Path, shell: Option<String>) -> Daemon {
        let run = daemon::command("run", config, Some(data_dir));
        let command = match shell {
            Some(prefix) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("{prefix} && exec \"$0\" \"$@\""))
                    .arg(BIN)
                    .args(run.get_args());
                c
            }
            None => run,
        };
        let p = Running::spawn(command);
        Daemon {
            p,
            client: daemon::api_client(data_dir),
            cert: data_dir.join("tls/api-cert.pem"),
        }
    }

    /// A client speaking only HTTP/2, trusting only the daemon's certificate.
    fn h2_client(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.cert).expect("certificate");
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
            .http2_prior_knowledge()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client")
    }

    fn at(&self, path: &str) -> String {
        self.p.at(path)
    }

    fn log_text(&self) -> String {
        self.p.log_text()
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .get(self.at(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .client
            .post(self.at(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Waits until the dataplane has replayed `frames` frames and the control plane has judged
    /// every flow the workers handed off.
    async fn wait_for_replay(&self, token: &str, frames: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let (status, stats) = self.get("/api/v1/stats", token).await;
            assert_eq!(status, StatusCode::OK, "{stats}");
            let done = stats["workers"].as_array().is_some_and(|w| {
                !w.is_empty()
                    && w.iter()
                        .map(|w| w["packets"].as_u64().unwrap_or(0))
                        .sum::<u64>()
                        == frames
                    && w.iter()
                        .all(|w| w["flows_created"].as_u64().unwrap_or(0) > 0)
            });
            if done && self.log_text().contains("dataplane finished") {
                // The drain thread judges the last flows within a few milliseconds.
                tokio::time::sleep(Duration::from_millis(300)).await;
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "replay did not finish; stats {stats}; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until a log line contains `text`.
    async fn wait_for_log(&self, text: &str) {
        self.p.wait_for_log(text, 30).await;
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(self) -> String {
        self.p.stop()
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        self.p.signal(sig);
    }
}

fn problem_field(body: &Value) -> Option<&str> {
    body["field"].as_str()
}

async fn import_sample_inventory(d: &Daemon, admin: &str) -> Value {
    let inventory =
        std::fs::read(Path::new(ROOT).join("samples/inventory.json")).expect("inventory");
    let r = d
        .client
        .post(d.at("/api/v1/inventory"))
        .bearer_auth(admin)
        .body(inventory)
        .send()
        .await
        .expect("import");
    let status = r.status();
    let body: Value = r.json().await.expect("json");
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn all_alerts(d: &Daemon, token: &str) -> Vec<Value> {
    let (status, body) = d.get("/api/v1/alerts?limit=1000", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["alerts"].as_array().cloned().unwrap_or_default()
}

/// Value of the sample `name{labels}` in a scrape (labels given as `key=value` pairs).
fn metric(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(k).is_some_and(|x| x == *v))
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

async fn scrape(d: &Daemon, token: &str) -> prometheus_parse::Scrape {
    let r = d
        .client
        .get(d.at("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain"), "{ct}");
    let text = r.text().await.expect("text");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    assert!(!parsed.samples.is_empty());
    assert!(
        parsed
            .samples
            .iter()
            .all(|s| s.metric.starts_with("portolan_")),
        "every metric carries the portolan_ prefix"
    );
    parsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_replays_the_sample_and_serves_alerts_securely_across_a_restart() {
    let _one = ONE_DAEMON.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = example_config();
    let admin = create_token(&config, &data, "admin", "test-admin");
    let analyst = create_token(&config, &data, "analyst", "test-analyst");
    let viewer = create_token(&config, &data, "viewer", "test-viewer");
    let frames = capture_frames(&sample_capture());
    assert!(frames > 1000, "{frames}");

    let d = Daemon::start(&config, &data);
    d.wait_for_log("waits for the first inventory").await;

    // Health needs no token; everything else does.
    let r = d.client.get(d.at("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = d.client.get(d.at("/api/v1/alerts")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/problem+json"));
    let (status, _) = d.get("/api/v1/alerts", "ptl_not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A viewer may read, not write.
    let (status, body) = d.post("/api/v1/device-states", &viewer, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let r = d
        .client
        .post(d.at("/api/v1/inventory"))
        .bearer_auth(&viewer)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Bad JSON names the field; an oversized body is refused before it is read.
    let (status, body) = d
        .post(
            "/api/v1/roles/mail/baseline",
            &admin,
            json!({"reason": "x", "pairings": [{"app_proto": "tls", "port": "many"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(problem_field(&body), Some("pairings[0].port"), "{body}");
    let r = d
        .client
        .post(d.at("/api/v1/exceptions"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{\"id\": \"x\", \"kind\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Over HTTP/2 (as negotiated by ALPN): the 413 ends the stream, and the client reads it even
    // though the server never reads the body (over HTTP/1.1 the connection is closed instead).
    let big = vec![b' '; 2 * 1024 * 1024];
    let r = d
        .h2_client()
        .post(d.at("/api/v1/device-states"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Nothing is judged before the inventory is in place, and /readyz says why.
    assert!(all_alerts(&d, &viewer).await.is_empty());
    let (status, body) = d.get("/readyz", &viewer).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("first inventory"),
        "{body}"
    );

    // Import, then the capture is replayed and judged.
    let imported = import_sample_inventory(&d, &admin).await;
    assert!(imported["devices"].as_u64().unwrap() >= 3, "{imported}");
    let stats = d.wait_for_replay(&viewer, frames).await;
    let (status, body) = d.get("/readyz", &viewer).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let port = &stats["ports"][0];
    assert_eq!(port["rx_packets"].as_u64(), Some(frames), "{stats}");
    assert_eq!(port["name"], "egress");
    let w = &stats["workers"][0];
    assert_eq!(w["lcore"], 1);
    assert_eq!(w["ring_drops"], 0);
    assert!(w["protocols"]["tls"].as_u64().unwrap() > 0, "{stats}");
    assert!(w["drops"].as_object().is_some());

    let alerts = all_alerts(&d, &viewer).await;
    assert!(
        !alerts.is_empty(),
        "the sample raises alerts; log:\n{}",
        d.log_text()
    );
    let inventory_alert = alerts
        .iter()
        .find(|a| a["device_udid"].is_string() && a["bundle_id"].is_string())
        .expect("an alert on an inventoried device attributed to an app");
    let ev = &inventory_alert["evidence"];
    assert_eq!(ev["device"]["in_inventory"], true, "{inventory_alert}");
    assert!(ev["app"]["bundle_id"].is_string());
    assert!(ev["baseline"]["explanation"].is_string());
    assert!(!inventory_alert["reasons"].as_array().unwrap().is_empty());
    assert_ne!(inventory_alert["dest_port"], 443);
    for a in &alerts {
        assert!(a["score"].as_f64().unwrap() > 0.0);
        assert_eq!(a["status"], "open");
    }

    // Metrics: Prometheus text, agreeing with the capture.
    let m = scrape(&d, &viewer).await;
    assert_eq!(
        metric(&m, "portolan_worker_packets_total", &[("worker", "0")]),
        Some(frames as f64)
    );
    assert_eq!(
        metric(&m, "portolan_control_alerts_total", &[]),
        Some(alerts.len() as f64)
    );
    assert!(metric(
        &m,
        "portolan_worker_protocol_flows_total",
        &[("app_proto", "tls")]
    )
    .is_some_and(|v| v > 0.0));

    // The analyst acknowledges one alert; a viewer cannot.
    let id = inventory_alert["id"].as_i64().unwrap();
    let ack = format!("/api/v1/alerts/{id}/ack");
    let (status, _) = d.post(&ack, &viewer, json!({"note": "mine"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = d
        .post(&ack, &analyst, json!({"note": "asked the mail team"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "acknowledged");
    let log = d.stop();
    assert!(log.contains("flow hand-off drained"), "{log}");
    for secret in [&admin, &analyst, &viewer] {
        assert!(!log.contains(secret.as_str()), "a token was logged");
    }

    // Restart over the same data folder: the store has devices, so the capture is replayed at
    // once; the acknowledgement survives.
    let d = Daemon::start(&config, &data);
    let (status, body) = d.get(&format!("/api/v1/alerts/{id}"), &viewer).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "acknowledged", "{body}");
    assert_eq!(body["acknowledged"]["note"], "asked the mail team");
    assert!(body["acknowledged"]["by"]
        .as_str()
        .unwrap()
        .contains("test-analyst"));
    d.wait_for_replay(&viewer, frames).await;
    let (_, body) = d.get(&format!("/api/v1/alerts/{id}"), &viewer).await;
    assert_eq!(body["status"], "acknowledged");
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseline_change_is_audited_and_changes_the_next_verdict_and_sighup_reloads_roles() {
    let _one = ONE_DAEMON.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // A copy of the example whose roles come from a file the test edits, and whose inventory is
    // imported at start-up (the dataplane starts at once).
    let roles = dir.path().join("roles.toml");
    std::fs::write(&roles, portolan_control::roles::SHIPPED_ROLES_TOML).unwrap();
    let text = example_config_text_with_inventory().replace(
        "# roles = \"roles.toml\"",
        &format!("roles = {:?}", roles.display().to_string()),
    );
    let config = dir.path().join("portolan.toml");
    std::fs::write(&config, text).unwrap();
    let admin = create_token(&config, &data, "admin", "baseline-admin");
    let frames = capture_frames(&sample_capture());

    let d = Daemon::start(&config, &data);
    d.wait_for_replay(&admin, frames).await;
    let first = scrape(&d, &admin).await;
    let approved_1 = metric(&first, "portolan_control_approved_flows_total", &[]).unwrap();
    let violations_1 = metric(&first, "portolan_control_violations_total", &[]).unwrap();
    let alerts = all_alerts(&d, &admin).await;
    // A role-baseline alert: approve its pairing for its role.
    let target = alerts
        .iter()
        .find(|a| a["evidence"]["baseline"]["basis"] == "role")
        .unwrap_or_else(|| panic!("a role-baseline alert in {alerts:?}"))
        .clone();
    let role = target["role"].as_str().unwrap().to_string();
    let proto = target["app_proto"].as_str().unwrap().to_string();
    let port = target["dest_port"].as_u64().unwrap();
    let change = json!({
        "reason": "vendor moved the service to this port",
        "pairings": [{"app_proto": proto, "transport": target["transport"], "port": port}]
    });
    let (status, body) = d
        .post(&format!("/api/v1/roles/{role}/baseline"), &admin, change)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, audit) = d
        .get("/api/v1/audit?action=baseline_approved", &admin)
        .await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["target"], role.as_str());
    assert_eq!(
        entries[0]["reason"],
        "vendor moved the service to this port"
    );
    assert!(entries[0]["actor"]
        .as_str()
        .unwrap()
        .contains("baseline-admin"));
    let last_id = alerts
        .iter()
        .filter_map(|a| a["id"].as_i64())
        .max()
        .unwrap();

    // SIGHUP re-reads the roles file (here: a new port approved for the role) without stopping.
    let edited = portolan_control::roles::SHIPPED_ROLES_TOML.replacen(
        "tls = [443, 993, 465]",
        "tls = [443, 993, 465, 10443]",
        1,
    );
    assert_ne!(edited, portolan_control::roles::SHIPPED_ROLES_TOML);
    std::fs::write(&roles, edited).unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, audit) = d.get("/api/v1/audit?action=roles_replaced", &admin).await;
        if let Some(e) = audit["entries"].as_array().and_then(|e| e.first()) {
            assert_eq!(e["actor"], "system:SIGHUP");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no reload; log:\n{}",
            d.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, mail) = d.get("/api/v1/roles/mail", &admin).await;
    assert!(mail.to_string().contains("10443"), "{mail}");
    // The approval made through the API is still in force after the reload.
    let (_, r) = d.get(&format!("/api/v1/roles/{role}"), &admin).await;
    assert!(r.to_string().contains(&port.to_string()), "{r}");
    d.stop();

    // The next verdicts: the same capture again, judged with the approval in force.
    let d = Daemon::start(&config, &data);
    d.wait_for_replay(&admin, frames).await;
    let second = scrape(&d, &admin).await;
    let approved_2 = metric(&second, "portolan_control_approved_flows_total", &[]).unwrap();
    let violations_2 = metric(&second, "portolan_control_violations_total", &[]).unwrap();
    assert_eq!(
        approved_1 + violations_1,
        approved_2 + violations_2,
        "the same flows are judged"
    );
    assert!(
        approved_2 > approved_1 && violations_2 < violations_1,
        "approved {approved_1} -> {approved_2}, violations {violations_1} -> {violations_2}"
    );
    let new_alerts: Vec<Value> = all_alerts(&d, &admin)
        .await
        .into_iter()
        .filter(|a| a["id"].as_i64().unwrap() > last_id)
        .collect();
    assert!(
        !new_alerts.iter().any(|a| a["role"] == role.as_str()
            && a["app_proto"] == proto.as_str()
            && a["dest_port"].as_u64() == Some(port)),
        "the approved pairing raised again: {new_alerts:?}"
    );
    d.stop();
}

/// Frames of an Ethernet capture with neither IPv4 address in 10.20.1.0/28, counted from the
/// raw bytes (ethertype and address fields), not through the dataplane's decoder.
fn frames_outside_10_20_1_0_28(path: &Path) -> u64 {
    let inside = |a: &[u8]| a[..3] == [10, 20, 1] && a[3] < 16;
    let mut r = portolan_packet::capture::CaptureReader::open(path).expect("capture");
    let mut n = 0;
    while let Some(rec) = r.next_record().expect("record") {
        let d = &rec.data;
        let ipv4 = d.len() >= 34 && d[12..14] == [0x08, 0x00];
        if !(ipv4 && (inside(&d[26..30]) || inside(&d[30..34]))) {
            n += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_managed_subnet_prefilter_of_the_hardware_description_runs_in_the_workers() {
    let _one = ONE_DAEMON.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let text = example_config_text_with_inventory().replace(
        "prefilter_managed_subnets = false",
        "prefilter_managed_subnets = true\nmanaged_subnets = [\"10.20.1.0/28\"]",
    );
    assert!(text.contains("managed_subnets = [\"10.20.1.0/28\"]"));
    let config = dir.path().join("portolan.toml");
    std::fs::write(&config, text).unwrap();
    let admin = create_token(&config, &data, "admin", "prefilter-admin");
    let frames = capture_frames(&sample_capture());
    let outside = frames_outside_10_20_1_0_28(&sample_capture());
    assert!(outside > 0 && outside < frames, "{outside} of {frames}");

    let d = Daemon::start(&config, &data);
    let stats = d.wait_for_replay(&admin, frames).await;
    let w = &stats["workers"][0];
    assert_eq!(w["prefiltered"].as_u64(), Some(outside), "{stats}");
    let m = scrape(&d, &admin).await;
    assert_eq!(
        metric(
            &m,
            "portolan_worker_prefiltered_packets_total",
            &[("worker", "0")]
        ),
        Some(outside as f64)
    );
    d.stop();
}

/// Opens a TLS connection offering only `h2`, sends the HTTP/2 preface and SETTINGS, and returns
/// the stream without reading from it: an idle HTTP/2 client. `None` when the server refused or
/// closed it during the handshake.
fn idle_h2_connection(
    addr: &str,
    tls: &Arc<rustls::ClientConfig>,
) -> Option<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>> {
    use std::io::Write;
    let tcp = std::net::TcpStream::connect(addr).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    tcp.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").ok()?;
    let conn = rustls::ClientConnection::new(Arc::clone(tls), name).ok()?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .ok()?;
    stream.flush().ok()?;
    Some(stream)
}

/// More idle HTTP/2 connections than the daemon has descriptors: the daemon closes the longest-idle
/// ones to make room instead of running out, `/healthz` still answers, the sheds are counted and
/// the log has no `Too many open files`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_beyond_the_descriptor_limit_do_not_lock_out_healthz() {
    use rustls_pki_types::pem::PemObject;
    let _one = ONE_DAEMON.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = dir.path().join("portolan.toml");
    std::fs::write(&config, example_config_text_with_inventory()).expect("config");
    let nofile = 256u32;
    let d = Daemon::start_with_nofile(&config, &data, Some(nofile));
    let admin = create_token(&config, &data, "admin", "flood-test");
    let addr = d.p.url.trim_start_matches("https://").to_string();
    let cert = rustls_pki_types::CertificateDer::from_pem_file(&d.cert).expect("certificate");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let tls = Arc::new(tls);
    let flood = (nofile as usize) + 150;
    let opened = tokio::task::spawn_blocking(move || {
        let mut held = Vec::new();
        for _ in 0..flood {
            if let Some(s) = idle_h2_connection(&addr, &tls) {
                held.push(s);
            }
        }
        held
    })
    .await
    .expect("flood");
    assert!(
        opened.len() > nofile as usize / 2,
        "only {} of {flood} connections were set up",
        opened.len()
    );
    // The flood's connections are all still held by this test; a new client is served.
    for client in [d.client.clone(), d.h2_client()] {
        let r = client.get(d.at("/healthz")).send().await.expect("healthz");
        assert_eq!(r.status(), StatusCode::OK);
    }
    let s = scrape(&d, &admin).await;
    let shed = metric(
        &s,
        "portolan_http_connections_closed_total",
        &[("reason", "shed")],
    )
    .unwrap_or(0.0);
    assert!(shed >= (flood - nofile as usize) as f64, "shed {shed}");
    let open = metric(&s, "portolan_http_connections_open", &[]).expect("open gauge");
    assert!(open < f64::from(nofile), "open {open}");
    drop(opened);
    let log = d.stop();
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(log.contains("max_connections=128"), "{log}");
}

/// The data stays the operator's: an existing data directory open to others is tightened to 0700,
/// the store and the alert file are 0600 even under `umask 000`, and a second daemon on the same
/// data directory refuses to start, naming the holder's pid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private_and_locked_to_one_daemon() {
    use std::os::unix::fs::PermissionsExt;
    let _one = ONE_DAEMON.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let config = dir.path().join("portolan.toml");
    std::fs::write(&config, example_config_text_with_inventory()).expect("config");
    let d = Daemon::start_in_shell(&config, &data, Some("umask 000".to_string()));
    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "data_dir tightened");
    assert_eq!(mode(&data.join("portolan.db")), 0o600);
    let lock = data.join("portolan.lock");
    assert_eq!(mode(&lock), 0o600);
    let holder = std::fs::read_to_string(&lock).expect("lock file");
    assert_eq!(
        holder.trim(),
        d.p.child.id().to_string(),
        "the lock names the daemon's pid"
    );
    // The sample replay raises alerts into the EVE file of the example configuration.
    let deadline = Instant::now() + Duration::from_secs(60);
    let eve = data.join("alerts.eve.json");
    while !eve.exists() {
        assert!(
            Instant::now() < deadline,
            "no alert file; log:\n{}",
            d.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(mode(&eve), 0o600, "alert file");
    // A second daemon on the same data directory refuses, naming the holder.
    let second = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .expect("second daemon");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{err}");
    assert!(
        err.contains("in use by another portolan")
            && err.contains(&format!("pid {}", d.p.child.id())),
        "{err}"
    );
    d.stop();
}

/// An inventory of `[inputs]` nesting 10,000 arrays (the document that used to overflow the stack
/// and abort every start) stops the start with exit 2 naming the file and the depth limit, before
/// the dataplane or the API start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_of_inputs_nested_too_deep_stops_the_start_naming_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let depth = 10_000;
    let deep = dir.path().join("deep.plist");
    std::fs::write(
        &deep,
        format!(
            "<?xml version=\"1.0\"?>\n<plist version=\"1.0\">{}{}</plist>\n",
            "<array>".repeat(depth),
            "</array>".repeat(depth)
        ),
    )
    .expect("plist");
    let samples = Path::new(ROOT).join("samples").join("inventory.json");
    let config = dir.path().join("portolan.toml");
    std::fs::write(
        &config,
        example_config_text_with_inventory().replace(
            &format!("{:?}", samples.display().to_string()),
            &format!("{:?}", deep.display().to_string()),
        ),
    )
    .expect("config");
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .contains("deep.plist"));
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .expect("portolan run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("inputs.inventory")
            && err.contains(&deep.display().to_string())
            && err.contains("limit of 64 levels"),
        "{err}"
    );
    // All or nothing: the imports are tried on a scratch store before the store file exists.
    assert!(
        !dir.path().join("data").join("portolan.db").exists(),
        "a refused start created the store"
    );
}

/// No silent loss at the store: while every commit of findings fails (a trigger installed with
/// `sqlite3` stands in for a full disk, deterministically), the daemon keeps the judged flows'
/// findings and alerts in memory, `/readyz` answers 503 saying so, `/metrics` and
/// `/api/v1/stats` count them and no alert reaches the store or the EVE file; once the store
/// takes writes again the drain thread's retry commits them within seconds (no new flow needed),
/// the alerts reach the EVE file and readiness comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_wait_for_a_store_that_cannot_commit_and_are_written_when_it_can() {
    let _one = ONE_DAEMON.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = example_config();
    let admin = create_token(&config, &data, "admin", "test-admin");
    let db = data.join("portolan.db");
    let sqlite = |sql: &str| {
        let out = Command::new("sqlite3")
            .arg(&db)
            .arg(sql)
            .output()
            .expect("sqlite3 (scripts/setup installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let d = Daemon::start(&config, &data);
    d.wait_for_log("waits for the first inventory").await;
    sqlite("CREATE TRIGGER disk_full BEFORE INSERT ON findings BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;");
    import_sample_inventory(&d, &admin).await;
    let stats = d
        .wait_for_replay(&admin, capture_frames(&sample_capture()))
        .await;
    let store = &stats["store"];
    assert_eq!(store["degraded"], true, "{stats}");
    assert!(
        store["unsaved_findings"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
    let waiting = store["unsaved_alerts"].as_u64().unwrap_or(0);
    assert!(waiting > 0, "{stats}");
    let r = d.client.get(d.at("/readyz")).send().await.expect("readyz");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().await.expect("problem");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|t| t.contains("store cannot commit")),
        "{body}"
    );
    let s = scrape(&d, &admin).await;
    assert_eq!(
        metric(&s, "portolan_control_store_degraded", &[]),
        Some(1.0)
    );
    assert!(metric(&s, "portolan_control_store_failed_commits_total", &[]).unwrap_or(0.0) >= 1.0);
    assert!(all_alerts(&d, &admin).await.is_empty());
    let eve = data.join("alerts.eve.json");
    let eve_lines = || {
        std::fs::read_to_string(&eve)
            .unwrap_or_default()
            .lines()
            .count() as u64
    };
    assert_eq!(eve_lines(), 0);
    assert!(d.log_text().contains("findings and"), "{}", d.log_text());

    sqlite("DROP TRIGGER disk_full;");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = d.client.get(d.at("/readyz")).send().await.expect("readyz");
        if r.status() == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still degraded; log:\n{}",
            d.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    d.wait_for_log("the store took the findings and alerts that waited")
        .await;
    assert_eq!(all_alerts(&d, &admin).await.len() as u64, waiting);
    assert_eq!(eve_lines(), waiting);
    let s = scrape(&d, &admin).await;
    assert_eq!(
        metric(&s, "portolan_control_store_degraded", &[]),
        Some(0.0)
    );
    assert_eq!(
        metric(&s, "portolan_control_store_lost_alerts_total", &[]),
        Some(0.0)
    );
    d.stop();
}
