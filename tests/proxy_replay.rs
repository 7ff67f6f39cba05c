//! Explicit proxies end to end, as a capture through the real binary (DPDK `net_pcap`, stream
//! reassembly, real Hyperscan, the control plane with the sample inventory): a managed iPhone's
//! TLS session to port 50443 through an HTTP `CONNECT` proxy on 8080 and through a SOCKS5
//! proxy on 1080 is identified as TLS, judged on 50443 and alerted with the proxy hop kept as
//! context; the same tunnel to 443 and a refused `CONNECT` raise nothing.
//!
//! Frames come from `portolan_testkit`; the engine-level and property tests are in
//! `dataplane/classify/tests/proxy_tunnel.rs`.

mod common;

use common::{assert_ok, json_lines, portolan, s, write_pcap_spaced, TS0};
use portolan_testkit::{tls_client_hello_record, tls_server_hello_record, ClientHelloSpec, Frame};
use serde_json::Value;
use std::path::Path;

/// A managed iPhone of `samples/inventory.json`.
const CLIENT: [u8; 4] = [10, 20, 1, 10];
const PROXY: [u8; 4] = [192, 0, 2, 80];
const SYN: u8 = 0x02;
const SYN_ACK: u8 = 0x12;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;
const FIN_ACK: u8 = 0x11;

/// A TCP session from `client_port` to the proxy's `proxy_port` carrying `exchange` (from the
/// client?, bytes), each message in its own segment, with handshake and close.
fn session(client_port: u16, proxy_port: u16, exchange: &[(bool, Vec<u8>)]) -> Vec<Vec<u8>> {
    let (c, p) = ((CLIENT, client_port), (PROXY, proxy_port));
    let mut seq = [0x2000_0000u32, 0x6000_0000u32];
    let mut frames = vec![
        Frame::tcp(c, p, SYN).seq(seq[0]).build(&[]),
        Frame::tcp(p, c, SYN_ACK)
            .seq(seq[1])
            .ack(seq[0] + 1)
            .build(&[]),
    ];
    seq = [seq[0] + 1, seq[1] + 1];
    frames.push(Frame::tcp(c, p, ACK).seq(seq[0]).ack(seq[1]).build(&[]));
    for (from_client, bytes) in exchange {
        let (d, (src, dst)) = if *from_client {
            (0, (c, p))
        } else {
            (1, (p, c))
        };
        frames.push(
            Frame::tcp(src, dst, PSH_ACK)
                .seq(seq[d])
                .ack(seq[1 - d])
                .build(bytes),
        );
        seq[d] += bytes.len() as u32;
    }
    frames.push(Frame::tcp(c, p, FIN_ACK).seq(seq[0]).ack(seq[1]).build(&[]));
    frames.push(
        Frame::tcp(p, c, FIN_ACK)
            .seq(seq[1])
            .ack(seq[0] + 1)
            .build(&[]),
    );
    frames
}

/// A TLS handshake whose ClientHello names `sni` (each session its own, so each is its own
/// finding and raises its own alert).
fn tls(sni: &str) -> [(bool, Vec<u8>); 2] {
    [
        (
            true,
            tls_client_hello_record(&ClientHelloSpec::chrome_like(sni)),
        ),
        (false, tls_server_hello_record(0x1301, Some(0x0304))),
    ]
}

fn connect(port: u16, status: &str) -> Vec<(bool, Vec<u8>)> {
    let mut x = vec![
        (
            true,
            format!(
                "CONNECT c2.example.net:{port} HTTP/1.1\r\nHost: c2.example.net:{port}\r\n\r\n"
            )
            .into_bytes(),
        ),
        (false, format!("HTTP/1.1 {status}\r\n\r\n").into_bytes()),
    ];
    if status.starts_with('2') {
        x.extend(tls(&format!("connect-{port}.example.net")));
    }
    x
}

fn socks5(port: u16) -> Vec<(bool, Vec<u8>)> {
    let mut req = b"\x05\x01\x00\x03\x0ec2.example.net".to_vec();
    req.extend_from_slice(&port.to_be_bytes());
    let mut x = vec![
        (true, b"\x05\x01\x00".to_vec()),
        (false, b"\x05\x00".to_vec()),
        (true, req),
        (false, b"\x05\x00\x00\x01\xc0\x00\x02\x50\x9c\x40".to_vec()),
    ];
    x.extend(tls(&format!("socks-{port}.example.net")));
    x
}

fn by_client_port(records: &[Value], port: u16) -> Vec<&Value> {
    records.iter().filter(|r| r["src_port"] == port).collect()
}

fn replay(capture: &Path, dir: &Path, workers: &str) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let (flows, events, eve, db) = (
        dir.join(format!("flows-{workers}.json")),
        dir.join(format!("events-{workers}.json")),
        dir.join(format!("alerts-{workers}.json")),
        dir.join(format!("store-{workers}.db")),
    );
    assert_ok(&portolan(&[
        "replay",
        s(capture),
        "--workers",
        workers,
        "--flows",
        s(&flows),
        "--events",
        s(&events),
        "--inventory",
        s(&samples.join("inventory.json")),
        "--db",
        s(&db),
        "--eve",
        s(&eve),
    ]));
    (json_lines(&flows), json_lines(&events), json_lines(&eve))
}

#[test]
fn tls_through_connect_and_socks5_is_judged_on_the_target_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sessions = [
        session(52001, 8080, &connect(50443, "200 Connection established")),
        session(52002, 1080, &socks5(50443)),
        session(52003, 8080, &connect(443, "200 OK")),
        session(52004, 8080, &connect(50443, "403 Forbidden")),
    ];
    let frames: Vec<Vec<u8>> = sessions.concat();
    let capture = dir.path().join("proxies.pcap");
    write_pcap_spaced(&capture, &frames, TS0, 1_000);
    let (flows, events, alerts) = replay(&capture, dir.path(), "1");
    assert_eq!(flows.len(), 4, "{flows:#?}");

    for (port, kind, proxy_port, sni) in [
        (52001, "http_connect", 8080, "connect-50443.example.net"),
        (52002, "socks5", 1080, "socks-50443.example.net"),
    ] {
        let [rec] = by_client_port(&flows, port)[..] else {
            panic!("one flow record for {port}: {flows:#?}");
        };
        assert_eq!(rec["app_proto"], "tls", "{rec:#}");
        assert_eq!(
            rec["dest_port"], proxy_port,
            "the record keeps the proxy hop"
        );
        assert_eq!(rec["tls"]["sni"], sni);
        assert!(rec["tls"]["ja4"]
            .as_str()
            .is_some_and(|j| j.starts_with("t13d")));
        assert_eq!(rec["portolan"]["port_mismatch"], true, "judged on 50443");
        assert_eq!(
            rec["portolan"]["proxy"],
            serde_json::json!({"kind": kind, "host": "c2.example.net", "port": 50443, "established": true})
        );
        // The hand-off event carries the same.
        let [ev] = by_client_port(&events, port)[..] else {
            panic!("one event for {port}: {events:#?}");
        };
        assert_eq!(ev["portolan"]["proxy"], rec["portolan"]["proxy"]);
        // The alert: TLS judged on 50443, the proxy hop as the flow's destination.
        let [alert] = by_client_port(&alerts, port)[..] else {
            panic!("one alert for {port}: {alerts:#?}");
        };
        assert_eq!(alert["app_proto"], "tls");
        assert_eq!(alert["dest_port"], proxy_port);
        assert_eq!(alert["portolan"]["proxy"]["port"], 50443, "{alert:#}");
        assert!(
            alert["portolan"]["baseline"]["approved_ports"]
                .to_string()
                .contains("443"),
            "{alert:#}"
        );
    }
    // TLS to 443 through the proxy: registered port, no alert; the refused CONNECT stays http
    // on the proxy's port 8080 (registered for http), no alert either.
    let [to_443] = by_client_port(&flows, 52003)[..] else {
        panic!("{flows:#?}");
    };
    assert_eq!(to_443["app_proto"], "tls");
    assert_eq!(to_443["portolan"]["port_mismatch"], false);
    let [refused] = by_client_port(&flows, 52004)[..] else {
        panic!("{flows:#?}");
    };
    assert_eq!(refused["app_proto"], "http");
    assert_eq!(refused["portolan"]["proxy"]["established"], false);
    assert!(refused["portolan"]["indicators"]
        .to_string()
        .contains("proxy.refused"));
    assert_eq!(alerts.len(), 2, "{alerts:#?}");

    // Two workers (the capture sharded as symmetric RSS would): the same records and alerts.
    let (flows2, _, alerts2) = replay(&capture, dir.path(), "2");
    let strip = |v: &[Value]| {
        let mut out: Vec<String> = v
            .iter()
            .map(|r| {
                let mut r = r.clone();
                for k in ["flow_id", "timestamp"] {
                    r.as_object_mut().map(|o| o.remove(k));
                }
                if let Some(p) = r.get_mut("portolan").and_then(Value::as_object_mut) {
                    for k in ["finding_id", "alert_id"] {
                        p.remove(k);
                    }
                }
                r["alert"]["metadata"]["portolan_finding_id"] = Value::Null;
                r.to_string()
            })
            .collect();
        out.sort();
        out
    };
    assert_eq!(strip(&flows2), strip(&flows));
    assert_eq!(strip(&alerts2), strip(&alerts));
}
