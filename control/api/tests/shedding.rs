//! The admin API sheds what it cannot serve: header-count limits equal on HTTP/1.1 and HTTP/2,
//! HSTS over TLS, a trickled body answered 408, idle HTTP/1.1 and HTTP/2 connections closed,
//! connection caps that close the longest-idle connection so a new client is still served, and
//! failed authentications slowed per client address and counted. Real server on loopback.

mod common;

use std::time::{Duration, Instant};

use common::TestApi;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The HTTP/2 client preface and an empty SETTINGS frame: what an idle HTTP/2 client sends.
const H2_PREFACE_AND_SETTINGS: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

fn addr_of(api: &TestApi) -> String {
    api.url.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection or `within` passes; returns whether it closed.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// A counter of the Prometheus scrape (summed over labels matching `label`).
async fn counter(api: &TestApi, name: &str, label: Option<(&str, &str)>) -> f64 {
    let text = api
        .client
        .get(api.at("/metrics"))
        .bearer_auth(&api.viewer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn http2_refuses_more_headers_than_max_headers_like_http1_and_tls_answers_carry_hsts() {
    let api = TestApi::start_with(|c| c.max_headers = 20).await;
    let pem = std::fs::read(api.dir.path().join("tls/cert.pem")).unwrap();
    let client = |h2: bool| {
        let b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        if h2 {
            b.http2_prior_knowledge()
        } else {
            b.http1_only()
        }
        .build()
        .unwrap()
    };
    for (h2, version) in [
        (true, reqwest::Version::HTTP_2),
        (false, reqwest::Version::HTTP_11),
    ] {
        let mut req = client(h2)
            .get(api.at("/api/v1/roles"))
            .bearer_auth(&api.viewer);
        for i in 0..30 {
            req = req.header(format!("x-extra-{i}"), "1");
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.version(), version);
        assert_eq!(r.status(), 431, "{version:?}");
        let ok = client(h2).get(api.at("/healthz")).send().await.unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(
            ok.headers()["strict-transport-security"],
            "max-age=31536000",
            "{version:?}"
        );
    }
    api.stop().await;
}

#[tokio::test]
async fn a_trickled_request_body_is_answered_408_within_the_body_timeout() {
    let api = TestApi::start_with(|c| {
        c.plain_http = true;
        c.connections.body_read_timeout_seconds = 1;
    })
    .await;
    let mut s = TcpStream::connect(addr_of(&api)).await.unwrap();
    let head = format!(
        "POST /api/v1/alerts/1/ack HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        api.analyst
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // One byte every 300 ms: the 100-byte body would take 30 s.
    while started.elapsed() < Duration::from_secs(10) {
        let _ = s.write_all(b" ").await;
        match tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break,
            Err(_) => {}
        }
    }
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_read_timeout_seconds"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "held for {:?}",
        started.elapsed()
    );
    api.stop().await;
}

#[tokio::test]
async fn idle_http1_keep_alive_and_http2_connections_are_closed() {
    let api = TestApi::start_with(|c| {
        c.plain_http = true;
        c.connections.idle_timeout_seconds = 1;
    })
    .await;
    // HTTP/2: the preface and SETTINGS, then nothing.
    let mut h2 = TcpStream::connect(addr_of(&api)).await.unwrap();
    h2.write_all(H2_PREFACE_AND_SETTINGS).await.unwrap();
    // HTTP/1.1: one request, then the connection kept alive and unused.
    let mut h1 = TcpStream::connect(addr_of(&api)).await.unwrap();
    h1.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut h2, Duration::from_secs(6)).await);
    assert!(closed_within(&mut h1, Duration::from_secs(6)).await);
    assert!(
        counter(
            &api,
            "portolan_http_connections_closed_total",
            Some(("reason", "idle"))
        )
        .await
            >= 2.0
    );
    api.stop().await;
}

#[tokio::test]
async fn at_the_connection_cap_the_longest_idle_is_shed_and_a_new_client_is_served() {
    let api = TestApi::start_with(|c| {
        c.plain_http = true;
        c.connections.max_connections = 8;
        c.connections.max_connections_per_client = 8;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..30 {
        let mut s = TcpStream::connect(addr_of(&api)).await.unwrap();
        s.write_all(H2_PREFACE_AND_SETTINGS).await.unwrap();
        idle.push(s);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = api.client.get(api.at("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The oldest idle connections were closed to make room.
    assert!(closed_within(&mut idle[0], Duration::from_secs(6)).await);
    // 30 connections against a cap of 8: at least 22 were shed (or, while shed ones were still
    // closing, refused at the hard ceiling).
    let shed = counter(
        &api,
        "portolan_http_connections_closed_total",
        Some(("reason", "shed")),
    )
    .await;
    let refused = counter(&api, "portolan_http_connections_refused_total", None).await;
    assert!(
        shed >= 1.0 && shed + refused >= 22.0,
        "shed {shed}, refused {refused}"
    );
    // Shed connections leave the table as their tasks end: the cap (8) plus this client's one
    // connection remain.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let open = counter(&api, "portolan_http_connections_open", None).await;
        if open <= 9.0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} connections still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    api.stop().await;
}

#[tokio::test]
async fn failed_authentications_are_slowed_per_client_address_and_counted() {
    let api = TestApi::start_with(|c| c.connections.auth_failures_before_delay = 2).await;
    let mut last = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        let r = api
            .client
            .get(api.at("/api/v1/roles"))
            .bearer_auth("ptl_guess")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        last = started.elapsed();
    }
    // Failures 3, 4 and 5 wait 100, 200 and 400 ms.
    assert!(last >= Duration::from_millis(400), "{last:?}");
    assert_eq!(
        counter(&api, "portolan_http_auth_failures_delayed_total", None).await,
        3.0
    );
    assert_eq!(
        counter(&api, "portolan_http_auth_failures_total", None).await,
        5.0
    );
    // A good token is not slowed by someone else's guesses... nor by the same address's.
    let r = api
        .client
        .get(api.at("/api/v1/roles"))
        .bearer_auth(&api.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    api.stop().await;
}

#[tokio::test]
async fn console_sign_ins_with_a_bad_token_are_slowed_and_counted_with_bearer_failures() {
    let api = TestApi::start_with(|c| c.connections.auth_failures_before_delay = 2).await;
    let sign_in = || async {
        let started = Instant::now();
        let r = api
            .client
            .post(api.at("/ui/session"))
            .json(&serde_json::json!({"token": "ptl_guess"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers().get("set-cookie").is_none());
        let p: serde_json::Value = r.json().await.unwrap();
        assert_eq!(p["field"], "token", "{p}");
        started.elapsed()
    };
    sign_in().await;
    sign_in().await;
    // The address's third failure (a bearer token) is the first slowed: they share one count.
    let r = api
        .client
        .get(api.at("/api/v1/roles"))
        .bearer_auth("ptl_guess")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The fourth (a console sign-in) waits 200 ms, the fifth (an unknown session cookie) 400 ms.
    let waited = sign_in().await;
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    let started = Instant::now();
    let r = api
        .client
        .get(api.at("/api/v1/roles"))
        .header("cookie", "__Host-portolan_session=not-a-session")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(
        counter(&api, "portolan_http_auth_failures_total", None).await,
        5.0
    );
    assert_eq!(
        counter(&api, "portolan_http_auth_failures_delayed_total", None).await,
        3.0
    );
    // A good token still signs in.
    let r = api
        .client
        .post(api.at("/ui/session"))
        .json(&serde_json::json!({"token": api.viewer}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    api.stop().await;
}
