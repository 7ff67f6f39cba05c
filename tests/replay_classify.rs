//! `portolan replay` with the classifier: real binary, real DPDK `net_pcap`, real Hyperscan and
//! the repository's signatures, captures built here from real handshake bytes.

mod common;

use common::{assert_ok, json_lines, portolan, read_json, s, write_pcap_spaced, TS0};
use portolan_testkit::numbered as frame;
use portolan_testkit::{tls_client_hello_record, ClientHelloSpec};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// TLS to 4444 (not a TLS port), HTTP to 80, SSH to 22 (server banner first), and one flow of
/// noise; then `extra`
/// HTTP flows to 8080. Returns the capture path.
fn mixed_capture(dir: &Path, extra: u16) -> PathBuf {
    let c = [10, 0, 0, 1];
    let hello = tls_client_hello_record(&ClientHelloSpec::chrome_like("app.example.net"));
    let noise: Vec<u8> = (0..120u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let mut frames = vec![
        frame((c, 40001), ([10, 0, 0, 2], 4444), true, 0x02, &[]),
        frame(([10, 0, 0, 2], 4444), (c, 40001), true, 0x12, &[]),
        frame((c, 40001), ([10, 0, 0, 2], 4444), true, 0x10, &[]),
        frame((c, 40001), ([10, 0, 0, 2], 4444), true, 0x18, &hello),
        frame(
            (c, 40002),
            ([10, 0, 0, 3], 80),
            true,
            0x18,
            b"GET /a HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: t\r\n\r\n",
        ),
        frame(
            ([10, 0, 0, 3], 80),
            (c, 40002),
            true,
            0x18,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        ),
        frame((c, 40003), ([10, 0, 0, 4], 22), true, 0x02, &[]),
        frame(([10, 0, 0, 4], 22), (c, 40003), true, 0x12, &[]),
        frame((c, 40003), ([10, 0, 0, 4], 22), true, 0x10, &[]),
        frame(
            ([10, 0, 0, 4], 22),
            (c, 40003),
            true,
            0x18,
            b"SSH-2.0-OpenSSH_9.6\r\n",
        ),
        frame(
            (c, 40003),
            ([10, 0, 0, 4], 22),
            true,
            0x18,
            b"SSH-2.0-Client_1.0\r\n",
        ),
        frame((c, 40004), ([10, 0, 0, 5], 9999), true, 0x18, &noise),
    ];
    for i in 0..extra {
        frames.push(frame(
            ([10, 1, (i >> 8) as u8, i as u8], 50000),
            ([10, 0, 0, 6], 8080),
            true,
            0x18,
            b"GET / HTTP/1.1\r\nHost: proxy.example\r\n\r\n",
        ));
    }
    let path = dir.join(format!("mixed{extra}.pcap"));
    write_pcap_spaced(&path, &frames, TS0, 1000);
    path
}

fn by_port(recs: &[Value], port: u64) -> &Value {
    recs.iter()
        .find(|r| r["dest_port"] == port)
        .unwrap_or_else(|| panic!("no record to port {port}: {recs:?}"))
}

#[test]
fn flows_carry_the_classifiers_fields_and_the_summary_counts_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = mixed_capture(dir.path(), 0);
    let (flows, summary, events) = (
        dir.path().join("flows.jsonl"),
        dir.path().join("summary.json"),
        dir.path().join("events.jsonl"),
    );
    let out = portolan(&[
        "replay",
        s(&cap),
        "--flows",
        s(&flows),
        "--summary",
        s(&summary),
        "--events",
        s(&events),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    assert!(stderr.contains("port mismatches 1"), "{stderr}");

    let recs = json_lines(&flows);
    assert_eq!(recs.len(), 4);
    let tls = by_port(&recs, 4444);
    assert_eq!(tls["app_proto"], "tls");
    assert_eq!(tls["portolan"]["port_mismatch"], true);
    assert_eq!(tls["tls"]["sni"], "app.example.net");
    assert_eq!(tls["tls"]["client_alpns"][0], "h2");
    assert!(tls["tls"]["ja4"]
        .as_str()
        .is_some_and(|j| j.starts_with("t13")));
    assert!(tls["portolan"]["indicators"]
        .as_array()
        .is_some_and(|i| i.iter().any(|x| x == "tls.client_hello")));
    let http = by_port(&recs, 80);
    assert_eq!(http["app_proto"], "http");
    assert_eq!(http["portolan"]["port_mismatch"], false);
    assert_eq!(http["http"]["hostname"], "www.example.com");
    assert_eq!(http["http"]["http_method"], "GET");
    assert_eq!(http["http"]["status"], 200);
    // The server spoke first: the handshake's roles stand.
    let ssh = by_port(&recs, 22);
    assert_eq!(ssh["app_proto"], "ssh");
    assert_eq!(ssh["src_port"], 40003);
    assert_eq!(ssh["ssh"]["server"]["software_version"], "OpenSSH_9.6");
    let noise = by_port(&recs, 9999);
    assert_eq!(noise["app_proto"], "unknown");
    assert!(noise.get("portolan").is_none());

    let r = read_json(&summary);
    assert_eq!(r["app_protos"]["tls"], 1);
    assert_eq!(r["app_protos"]["http"], 1);
    assert_eq!(r["app_protos"]["ssh"], 1);
    assert_eq!(r["app_protos"]["unknown"], 1);
    assert_eq!(r["decided_flows"], 3);
    assert_eq!(r["port_mismatches"], 1);
    assert_eq!(r["ring_drops"], 0);
    assert_eq!(r["flow_events"], 3);
    assert_eq!(r["flow_events_received"], 3);
    assert_eq!(r["workers"][0]["ring_drops"], 0);
    assert_eq!(r["workers"][0]["app_protos"]["tls"], 1);

    let evs = json_lines(&events);
    assert_eq!(evs.len(), 3, "one event per decided flow");
    let ev = by_port(&evs, 4444);
    assert_eq!(ev["app_proto"], "tls");
    assert_eq!(ev["portolan"]["port_mismatch"], true);
    assert_eq!(ev["tls"]["sni"], "app.example.net");
    assert_eq!(ev["community_id"], tls["community_id"]);
}

#[test]
fn no_classify_gives_flows_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = mixed_capture(dir.path(), 0);
    let (flows, summary) = (
        dir.path().join("flows.jsonl"),
        dir.path().join("summary.json"),
    );
    let out = portolan(&[
        "replay",
        s(&cap),
        "--no-classify",
        "--flows",
        s(&flows),
        "--summary",
        s(&summary),
    ]);
    assert_ok(&out);
    let recs = json_lines(&flows);
    assert_eq!(recs.len(), 4);
    assert!(recs.iter().all(|r| r["app_proto"] == "unknown"
        && r.get("portolan").is_none()
        && r.get("tls").is_none()));
    let r = read_json(&summary);
    assert!(r.get("app_protos").is_none() && r.get("ring_drops").is_none());
}

#[test]
fn port_override_changes_the_verdict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = mixed_capture(dir.path(), 0);
    let ports = dir.path().join("ports.toml");
    std::fs::write(&ports, "[tls]\ntcp = [443, 4444]\n\n[http]\ntcp = [8080]\n").expect("write");
    let flows = dir.path().join("flows.jsonl");
    let out = portolan(&[
        "replay",
        s(&cap),
        "--ports",
        s(&ports),
        "--flows",
        s(&flows),
    ]);
    assert_ok(&out);
    let recs = json_lines(&flows);
    assert_eq!(by_port(&recs, 4444)["portolan"]["port_mismatch"], false);
    assert_eq!(by_port(&recs, 80)["portolan"]["port_mismatch"], true);

    std::fs::write(&ports, "[tls]\ntcp = [70000]\n").expect("write");
    let out = portolan(&["replay", s(&cap), "--ports", s(&ports)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tls.tcp[0]") && err.contains("ports.toml"),
        "{err}"
    );
}

#[test]
fn signature_directory_errors_are_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = mixed_capture(dir.path(), 0);
    let flows = dir.path().join("flows.jsonl");
    let out = portolan(&[
        "replay",
        s(&cap),
        "--signatures",
        "/nonexistent/signatures",
        "--flows",
        s(&flows),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/signatures") && err.contains("PORTOLAN_SIGNATURES"),
        "{err}"
    );
    assert!(!flows.exists(), "bad input leaves no output file behind");

    let out = Command::new(env!("CARGO_BIN_EXE_portolan"))
        .args(["replay", s(&cap)])
        .env("PORTOLAN_SIGNATURES", "/nonexistent/from-env")
        .output()
        .expect("run portolan");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/from-env"), "{err}");

    // The environment variable points at a real directory: it is used.
    let out = Command::new(env!("CARGO_BIN_EXE_portolan"))
        .args(["replay", s(&cap)])
        .env(
            "PORTOLAN_SIGNATURES",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("dataplane/signatures"),
        )
        .output()
        .expect("run portolan");
    assert_ok(&out);
}

#[test]
fn a_one_slot_event_queue_counts_what_it_drops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = mixed_capture(dir.path(), 400);
    let (summary, events) = (
        dir.path().join("summary.json"),
        dir.path().join("events.jsonl"),
    );
    let out = portolan(&[
        "replay",
        s(&cap),
        "--event-queue",
        "1",
        "--summary",
        s(&summary),
        "--events",
        s(&events),
    ]);
    assert_ok(&out);
    let r = read_json(&summary);
    let decided = r["decided_flows"].as_u64().expect("decided_flows");
    let drops = r["ring_drops"].as_u64().expect("ring_drops");
    let received = r["flow_events_received"]
        .as_u64()
        .expect("flow_events_received");
    assert_eq!(decided, 403);
    assert!(
        drops > 0,
        "403 flows ending at once overflow a one-slot queue"
    );
    assert_eq!(received + drops, decided, "events + drops = decided flows");
    assert_eq!(json_lines(&events).len() as u64, received);
    assert_eq!(r["workers"][0]["ring_drops"], drops);
}
