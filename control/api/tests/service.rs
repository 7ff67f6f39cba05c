//! Service routes over real HTTPS on loopback: health without a token, 401 without or with a bad token,
//! Prometheus text that parses strictly, dataplane statistics, header limits, plain HTTP on loopback.

mod common;

use std::collections::BTreeMap;

use common::{problem, TestApi};
use portolan_api::{BuildInfo, DataplaneStats, OutputStats, PortCounters, StoreStats, WorkerStats};

#[tokio::test]
async fn health_needs_no_token_and_readiness_follows_the_flag() {
    let api = TestApi::start().await;
    let r = api.client.get(api.at("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["status"], "ok");
    let r = api.client.get(api.at("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    api.state.readiness.set_ready(false);
    let r = api.client.get(api.at("/readyz")).send().await.unwrap();
    problem(r, 503).await;
    api.state
        .readiness
        .set_not_ready("the dataplane waits for the first inventory");
    let r = api.client.get(api.at("/readyz")).send().await.unwrap();
    let body = problem(r, 503).await;
    assert_eq!(
        body["detail"],
        "the dataplane waits for the first inventory"
    );
    api.state.readiness.set_ready(true);
    let r = api.client.get(api.at("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    api.stop().await;
}

#[tokio::test]
async fn every_other_route_needs_a_valid_token() {
    let api = TestApi::start().await;
    for path in ["/metrics", "/api/v1/stats", "/api/v1/openapi.json"] {
        let r = api.client.get(api.at(path)).send().await.unwrap();
        let www = r.headers().get("www-authenticate").cloned();
        problem(r, 401).await;
        assert!(
            www.unwrap().to_str().unwrap().starts_with("Bearer"),
            "{path}"
        );
        let r = api
            .client
            .get(api.at(path))
            .bearer_auth("ptl_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .send()
            .await
            .unwrap();
        problem(r, 401).await;
        let r = api
            .client
            .get(api.at(path))
            .header("authorization", format!("Basic {}", api.viewer))
            .send()
            .await
            .unwrap();
        problem(r, 401).await;
        let r = api
            .client
            .get(api.at(path))
            .bearer_auth(&api.viewer)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    // A revoked token stops working at once.
    let t = api
        .state
        .tokens
        .create(portolan_api::Role::Admin, "short-lived")
        .unwrap();
    let r = api
        .client
        .get(api.at("/api/v1/stats"))
        .bearer_auth(&t.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    api.state.tokens.revoke(t.id).unwrap();
    let r = api
        .client
        .get(api.at("/api/v1/stats"))
        .bearer_auth(&t.secret)
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    api.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let api = TestApi::start().await;
    let r = api
        .client
        .get(api.at("/api/v1/nope"))
        .bearer_auth(&api.admin)
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
    let r = api.client.delete(api.at("/healthz")).send().await.unwrap();
    problem(r, 405).await;
    api.stop().await;
}

fn sample_stats() -> DataplaneStats {
    DataplaneStats {
        updated_at: Some("2026-01-01T00:00:00Z".into()),
        ports: vec![PortCounters {
            port_id: 0,
            name: "net_pcap0".into(),
            rx_packets: 1000,
            rx_bytes: 123_456,
            rx_missed: 3,
            rx_errors: 0,
            rx_nombuf: 0,
            rx_kernel_dropped: Some(5),
            ..PortCounters::default()
        }],
        workers: vec![WorkerStats {
            worker_id: 0,
            lcore: 1,
            port_id: 0,
            queue: 0,
            packets: 1000,
            bytes: 123_456,
            drops: BTreeMap::from([("truncated".to_string(), 7), ("non_ip".to_string(), 2)]),
            encapsulated: BTreeMap::from([("vxlan".to_string(), 4)]),
            driver_bypass_flows: 0,
            driver_bypassed_packets: 0,
            driver_bypassed_bytes: 0,
            prefiltered: 9,
            ring_drops: 5,
            flows_active: 12,
            flows_capacity: 65_536,
            flows_created: 40,
            flows_evicted: 9,
            flows_evicted_half_open: 6,
            flows_evicted_closed: 1,
            protocols: BTreeMap::from([("tls".to_string(), 30), ("http".to_string(), 10)]),
        }],
        outputs: vec![OutputStats {
            name: "redis[0]".into(),
            kind: "redis-list".into(),
            target: "127.0.0.1:6379".into(),
            sent: 11,
            dropped: 7,
            errors: 2,
            queued: 3,
            queue_limit: 10,
            reopened: 0,
        }],
        store: None,
    }
}

/// Checks every line against the Prometheus text format 0.0.4 grammar; returns sample name → TYPE.
fn check_prometheus_text(text: &str) -> BTreeMap<String, String> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut types = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').expect("HELP has text");
            assert!(name_ok(name), "bad name in {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has kind");
            assert!(name_ok(name), "bad name in {line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad type in {line}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "second TYPE for {name}"
            );
            current = Some((name.to_string(), kind.to_string()));
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let name = series.split('{').next().unwrap();
        assert!(name_ok(name), "bad sample name in {line}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(
                    labels.starts_with('{') && labels.ends_with('}'),
                    "bad labels in {line}"
                );
            }
        }
        let (family, kind) = current.as_ref().expect("sample before TYPE");
        let ok = match kind.as_str() {
            "histogram" => [
                format!("{family}_bucket"),
                format!("{family}_sum"),
                format!("{family}_count"),
            ]
            .contains(&name.to_string()),
            _ => name == family,
        };
        assert!(
            ok,
            "sample {name} does not belong to family {family} ({kind})"
        );
    }
    types
}

#[tokio::test]
async fn metrics_are_strict_prometheus_text_with_http_and_dataplane_counters() {
    let api = TestApi::start().await;
    api.state.stats.publish(sample_stats());
    api.state.stats.set_build_info(BuildInfo {
        version: "0.1.0".into(),
        revision: "0123456789ab".into(),
        dpdk: "22.11.11".into(),
        hyperscan: "5.4.0".into(),
    });
    // Make some traffic to count, including a refused request.
    let _ = api.client.get(api.at("/healthz")).send().await.unwrap();
    let _ = api
        .client
        .get(api.at("/api/v1/stats"))
        .send()
        .await
        .unwrap();
    let r = api
        .client
        .get(api.at("/metrics"))
        .bearer_auth(&api.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text().await.unwrap();
    let types = check_prometheus_text(&text);
    for (name, kind) in &types {
        assert!(name.starts_with("portolan_"), "{name}");
        if kind == "counter" {
            assert!(
                name.ends_with("_total"),
                "counter {name} must end in _total"
            );
        }
    }
    assert_eq!(types["portolan_http_requests_total"], "counter");
    assert_eq!(types["portolan_http_request_duration_seconds"], "histogram");
    assert_eq!(types["portolan_worker_flows_active"], "gauge");
    assert_eq!(types["portolan_port_rx_bytes_total"], "counter");

    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("prometheus-parse accepts it");
    let find = |metric: &str, label: &str, value: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && s.labels.get(label) == Some(value))
            .unwrap_or_else(|| panic!("no {metric}{{{label}={value}}} in\n{text}"))
    };
    let healthz = find("portolan_http_requests_total", "route", "/healthz");
    assert!(matches!(healthz.value, prometheus_parse::Value::Counter(v) if v >= 1.0));
    let refused = find("portolan_http_requests_total", "status", "401");
    assert_eq!(refused.labels.get("route"), Some("/api/v1/stats"));
    let drops = find("portolan_worker_decode_drops_total", "reason", "truncated");
    assert!(matches!(drops.value, prometheus_parse::Value::Counter(v) if v == 7.0));
    let vxlan = find(
        "portolan_worker_encapsulated_packets_total",
        "encapsulation",
        "vxlan",
    );
    assert!(matches!(vxlan.value, prometheus_parse::Value::Counter(v) if v == 4.0));
    let tls = find("portolan_worker_protocol_flows_total", "app_proto", "tls");
    assert!(matches!(tls.value, prometheus_parse::Value::Counter(v) if v == 30.0));
    let ring = find("portolan_worker_ring_drops_total", "worker", "0");
    assert!(matches!(ring.value, prometheus_parse::Value::Counter(v) if v == 5.0));
    for (kind, n) in [("half_open", 6.0), ("closed", 1.0), ("active", 2.0)] {
        let evicted = find("portolan_worker_flows_evicted_total", "kind", kind);
        assert!(
            matches!(evicted.value, prometheus_parse::Value::Counter(v) if v == n),
            "{kind}"
        );
    }
    let kernel = find(
        "portolan_port_rx_kernel_dropped_packets_total",
        "device",
        "net_pcap0",
    );
    assert!(matches!(kernel.value, prometheus_parse::Value::Counter(v) if v == 5.0));
    let prefiltered = find("portolan_worker_prefiltered_packets_total", "worker", "0");
    assert!(matches!(prefiltered.value, prometheus_parse::Value::Counter(v) if v == 9.0));
    let dropped = find("portolan_output_events_dropped_total", "output", "redis[0]");
    assert_eq!(dropped.labels.get("kind"), Some("redis-list"));
    assert!(matches!(dropped.value, prometheus_parse::Value::Counter(v) if v == 7.0));
    let sent = find("portolan_output_events_sent_total", "output", "redis[0]");
    assert!(matches!(sent.value, prometheus_parse::Value::Counter(v) if v == 11.0));
    let queued = find("portolan_output_events_queued", "output", "redis[0]");
    assert!(matches!(queued.value, prometheus_parse::Value::Gauge(v) if v == 3.0));
    let build = find("portolan_build_info", "revision", "0123456789ab");
    assert_eq!(build.labels.get("dpdk"), Some("22.11.11"));
    assert_eq!(build.labels.get("hyperscan"), Some("5.4.0"));
    assert!(matches!(build.value, prometheus_parse::Value::Gauge(v) if v == 1.0));
    let devices = scrape
        .samples
        .iter()
        .find(|s| s.metric == "portolan_control_devices")
        .expect("control gauge");
    assert!(matches!(devices.value, prometheus_parse::Value::Gauge(v) if v == 0.0));
    assert!(scrape
        .samples
        .iter()
        .any(|s| s.metric == "portolan_control_alerts_total"));
    let auth = scrape
        .samples
        .iter()
        .find(|s| s.metric == "portolan_http_auth_failures_total")
        .expect("auth failure counter");
    assert!(matches!(auth.value, prometheus_parse::Value::Counter(v) if v >= 1.0));

    // OpenMetrics on request.
    let r = api
        .client
        .get(api.at("/metrics"))
        .bearer_auth(&api.viewer)
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(r.text().await.unwrap().trim_end().ends_with("# EOF"));
    api.stop().await;
}

#[tokio::test]
async fn stats_route_returns_the_published_snapshot() {
    let api = TestApi::start().await;
    let r = api
        .client
        .get(api.at("/api/v1/stats"))
        .bearer_auth(&api.viewer)
        .send()
        .await
        .unwrap();
    let empty: DataplaneStats = r.json().await.unwrap();
    assert!(empty.ports.is_empty() && empty.workers.is_empty());
    api.state.stats.publish(sample_stats());
    let r = api
        .client
        .get(api.at("/api/v1/stats"))
        .bearer_auth(&api.viewer)
        .send()
        .await
        .unwrap();
    let expected = DataplaneStats {
        store: Some(StoreStats::default()),
        ..sample_stats()
    };
    assert_eq!(r.json::<DataplaneStats>().await.unwrap(), expected);
    api.stop().await;
}

/// A store that refuses commits (a trigger another connection installs stands in for a full
/// disk): `/readyz` answers 503 saying findings wait, `/metrics` and `/api/v1/stats` count them,
/// and once the store takes writes again the retry commits them and readiness comes back.
#[tokio::test]
async fn a_store_that_cannot_commit_is_reported_degraded_until_the_findings_are_written() {
    let api = TestApi::start().await;
    let (status, body) = api
        .call(
            api.client
                .post(api.at("/api/v1/inventory"))
                .header("content-type", "application/json")
                .body(common::control_fixture("jamf_mobile_devices_detail.json")),
            &api.admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let sql = |batch: &str| {
        rusqlite::Connection::open(&api.db)
            .and_then(|c| c.execute_batch(batch))
            .expect("sql");
    };
    sql("CREATE TRIGGER full BEFORE INSERT ON findings BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;");
    let record = serde_json::json!({
        "event_type": "flow", "src_ip": "10.10.0.21", "src_port": 50000, "dest_ip": "203.0.113.50",
        "dest_port": 8443, "proto": "TCP", "app_proto": "tls", "port_mismatch": true,
        "tls": {"sni": "imap.mail.example.com"},
        "flow": {"start": "2024-05-01T09:00:00Z", "end": "2024-05-01T09:10:00Z",
                 "pkts_toserver": 10, "pkts_toclient": 10, "bytes_toserver": 1800, "bytes_toclient": 4000}
    });
    let refused = api.ingest.lock().unwrap().ingest_eve(&record);
    assert!(refused.is_err());

    let r = api.client.get(api.at("/readyz")).send().await.unwrap();
    let body = problem(r, 503).await;
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("store cannot commit") && detail.contains("1 findings"),
        "{detail}"
    );
    assert!(
        !detail.contains(api.dir.path().to_str().unwrap()),
        "no server path: {detail}"
    );
    let metrics = |api: &TestApi| {
        let req = api.client.get(api.at("/metrics")).bearer_auth(&api.viewer);
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let text = metrics(&api).await;
    for line in [
        "portolan_control_store_degraded 1",
        "portolan_control_store_unsaved_findings 1",
        "portolan_control_store_failed_commits_total 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    let (status, stats) = api
        .call(api.client.get(api.at("/api/v1/stats")), &api.viewer)
        .await;
    assert_eq!(status, 200);
    assert_eq!(stats["store"]["degraded"], true, "{stats}");
    assert_eq!(stats["store"]["unsaved_findings"], 1, "{stats}");

    sql("DROP TRIGGER full;");
    let late = api.ingest.lock().unwrap().retry_unsaved().expect("retry");
    assert!(!late.is_empty() && late.iter().all(|a| a.id > 0));
    let r = api.client.get(api.at("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = metrics(&api).await;
    assert!(
        text.lines()
            .any(|l| l == "portolan_control_store_degraded 0"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "portolan_control_store_unsaved_findings 0"),
        "{text}"
    );
    let (_, alerts) = api
        .call(api.client.get(api.at("/api/v1/alerts")), &api.viewer)
        .await;
    assert!(
        alerts.to_string().contains("imap.mail.example.com"),
        "{alerts}"
    );
    api.stop().await;
}

/// A file output's target is a server path: admins read it, viewers and analysts its file name.
#[tokio::test]
async fn stats_show_output_file_paths_to_admins_only() {
    let api = TestApi::start().await;
    let mut stats = sample_stats();
    stats.outputs.push(OutputStats {
        name: "eve".into(),
        kind: "file".into(),
        target: "/var/lib/portolan/alerts dir/alerts.eve.json".into(),
        sent: 4,
        ..OutputStats::default()
    });
    api.state.stats.publish(stats);
    for (token, expected) in [
        (&api.viewer, "alerts.eve.json"),
        (&api.analyst, "alerts.eve.json"),
        (&api.admin, "/var/lib/portolan/alerts dir/alerts.eve.json"),
    ] {
        let r = api
            .client
            .get(api.at("/api/v1/stats"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let got: DataplaneStats = r.json().await.unwrap();
        assert_eq!(got.outputs[1].target, expected);
        // Network outputs name their receiver for every role.
        assert_eq!(got.outputs[0].target, "127.0.0.1:6379");
    }
    api.stop().await;
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let api = TestApi::start().await;
    let huge = "x".repeat(32 * 1024);
    let pem = std::fs::read(api.dir.path().join("tls/cert.pem")).unwrap();
    let h1 = reqwest::Client::builder()
        .use_rustls_tls()
        .http1_only()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let r = h1
        .get(api.at("/healthz"))
        .header("x-filler", &huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 431);
    let many = (0..100).fold(h1.get(api.at("/healthz")), |req, i| {
        req.header(format!("x-h{i}"), "1")
    });
    let r = many.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 431);
    // Over HTTP/2 the header list limit is enforced by the protocol layer: the request is never served.
    let r = api
        .client
        .get(api.at("/healthz"))
        .header("x-filler", &huge)
        .send()
        .await;
    eprintln!("h2 oversized header: {:?}", r.as_ref().map(|r| r.status()));
    assert!(r.map(|r| r.status().as_u16() != 200).unwrap_or(true));
    let r = api.client.get(api.at("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    api.stop().await;
}

#[tokio::test]
async fn plain_http_is_served_only_when_asked_and_on_loopback() {
    let api = TestApi::start_with(|c| c.plain_http = true).await;
    assert!(api.url.starts_with("http://127.0.0.1:"));
    let r = api.client.get(api.at("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        !api.dir.path().join("tls").exists(),
        "no certificate is created for plain HTTP"
    );

    let state = api.state.clone();
    let _dir = api.stop().await;
    let cfg = portolan_api::ApiConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        plain_http: true,
        ..Default::default()
    };
    let err = portolan_api::ApiServer::bind(&cfg, state)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("api.plain_http"), "{err}");
}
