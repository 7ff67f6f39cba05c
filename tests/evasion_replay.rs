//! Traffic shaped to dodge identification, as a capture file through the real binary (DPDK
//! `net_pcap`, the workers' defragmenter and stream reassembly, real Hyperscan): each evasion
//! class of issue 17 next to the same hello sent plainly, and the flow records compared —
//! `app_proto`, roles (src = the SYN sender), SNI and JA4.
//!
//! Frames come from `portolan_testkit` (`Frame`, the TLS hellos, `ssh_kexinit`, the IP fragment
//! cutter); the worker-level and property tests of the same classes are in
//! `dataplane/tests/evasion.rs`.

mod common;

use common::{assert_ok, json_lines, portolan, read_json, s, write_pcap_spaced, TS0};
use portolan_testkit::{
    ipv4_fragments, ssh_kexinit, tls_client_hello_record, tls_pq_client_hello_record,
    tls_server_hello_record, ClientHelloSpec, Frame,
};
use serde_json::Value;

const CLIENT: [u8; 4] = [10, 20, 5, 10];
const SERVER: [u8; 4] = [198, 51, 100, 7];
const ISN_C: u32 = 0x1000_0000;
const ISN_S: u32 = 0x5000_0000;
const SYN: u8 = 0x02;
const SYN_ACK: u8 = 0x12;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;
const FIN_ACK: u8 = 0x11;

fn tcp(from: ([u8; 4], u16), to: ([u8; 4], u16), flags: u8, seq: u32, payload: &[u8]) -> Vec<u8> {
    Frame::tcp(from, to, flags).seq(seq).ack(1).build(payload)
}

/// How the client's first bytes go on the wire.
enum Shape {
    /// One segment.
    Whole,
    /// Segments of this many bytes, in order.
    Segments(usize),
    /// Cut at these offsets, the segments sent last first.
    Reversed(Vec<usize>),
    /// One segment, IP-fragmented at these offsets of its L4 part, fragments sent last first.
    FragmentsReversed(Vec<usize>),
}

/// A TCP session from `client_port` to `server_port`: the handshake, the client's `hello` shaped
/// as `shape`, the server's `reply`, and the close.
fn session(
    client_port: u16,
    server_port: u16,
    hello: &[u8],
    shape: Shape,
    reply: &[u8],
) -> Vec<Vec<u8>> {
    let (c, srv) = ((CLIENT, client_port), (SERVER, server_port));
    let data = ISN_C + 1;
    let mut frames = vec![
        tcp(c, srv, SYN, ISN_C, &[]),
        tcp(srv, c, SYN_ACK, ISN_S, &[]),
        tcp(c, srv, ACK, data, &[]),
    ];
    let cut = |cuts: &[usize]| -> Vec<(usize, usize)> {
        let mut points = vec![0];
        points.extend_from_slice(cuts);
        points.push(hello.len());
        points.windows(2).map(|w| (w[0], w[1])).collect()
    };
    match shape {
        Shape::Whole => frames.push(tcp(c, srv, PSH_ACK, data, hello)),
        Shape::Segments(n) => {
            for (i, chunk) in hello.chunks(n).enumerate() {
                frames.push(tcp(c, srv, PSH_ACK, data + (i * n) as u32, chunk));
            }
        }
        Shape::Reversed(cuts) => {
            for (a, b) in cut(&cuts).into_iter().rev() {
                frames.push(tcp(c, srv, PSH_ACK, data + a as u32, &hello[a..b]));
            }
        }
        Shape::FragmentsReversed(cuts) => {
            let whole = tcp(c, srv, PSH_ACK, data, hello);
            let mut frags = ipv4_fragments(&whole, &cuts, client_port);
            frags.reverse();
            frames.extend(frags);
        }
    }
    frames.push(tcp(srv, c, PSH_ACK, ISN_S + 1, reply));
    frames.push(tcp(c, srv, FIN_ACK, data + hello.len() as u32, &[]));
    frames.push(tcp(srv, c, FIN_ACK, ISN_S + 1 + reply.len() as u32, &[]));
    frames
}

/// What the analyst reads about a flow: protocol, roles, SNI, JA4, mismatch verdict.
fn verdict(rec: &Value) -> Value {
    serde_json::json!({
        "app_proto": rec["app_proto"],
        "src": format!("{}:{}", rec["src_ip"].as_str().unwrap_or("?"), rec["src_port"]),
        "dest_port": rec["dest_port"],
        "sni": rec["tls"]["sni"],
        "ja4": rec["tls"]["ja4"],
        "port_mismatch": rec["portolan"]["port_mismatch"],
    })
}

fn record_from(records: &[Value], client_port: u16) -> &Value {
    let found: Vec<&Value> = records
        .iter()
        .filter(|r| r["src_port"] == client_port || r["dest_port"] == client_port)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one flow for client port {client_port}: {records:#?}"
    );
    found[0]
}

#[test]
fn evasion_shaped_captures_give_the_plain_senders_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hello = tls_client_hello_record(&ClientHelloSpec::chrome_like("c2.example.net"));
    let pq = tls_pq_client_hello_record(&ClientHelloSpec::chrome_like("pq.example.net"));
    assert!(
        pq.len() > 1500,
        "a post-quantum hello spans two segments: {}",
        pq.len()
    );
    let sh = tls_server_hello_record(0x1301, Some(0x0304));
    let flows: Vec<(u16, Vec<Vec<u8>>)> = vec![
        (51001, session(51001, 50443, &hello, Shape::Whole, &sh)),
        (
            51002,
            session(51002, 50443, &hello, Shape::Segments(24), &sh),
        ),
        (51003, session(51003, 50443, &pq, Shape::Whole, &sh)),
        (
            51004,
            session(51004, 50443, &pq, Shape::Reversed(vec![1448]), &sh),
        ),
        (
            51005,
            session(
                51005,
                50443,
                &pq,
                Shape::FragmentsReversed(vec![600, 1200]),
                &sh,
            ),
        ),
        // The server sends the ClientHello (from the SYN-ACK side), the client a ServerHello.
        (51006, {
            let mut f = session(51006, 50443, &sh, Shape::Whole, &hello);
            // The client's bytes go first in `session`; put the server's hello first.
            f.swap(3, 4);
            f
        }),
        // SSH whose server advertises the client's extension-negotiation marker.
        (51007, {
            let mut f = session(
                51007,
                8022,
                &[
                    b"SSH-2.0-OpenSSH_9.7\r\n".as_slice(),
                    &ssh_kexinit("curve25519-sha256,kex-strict-c-v00@openssh.com"),
                ]
                .concat(),
                Shape::Whole,
                &[
                    b"SSH-2.0-OpenSSH_9.6\r\n".as_slice(),
                    &ssh_kexinit("curve25519-sha256,ext-info-c"),
                ]
                .concat(),
            );
            f.swap(3, 4);
            f
        }),
    ];
    let frames: Vec<Vec<u8>> = flows.iter().flat_map(|(_, f)| f.iter().cloned()).collect();
    let capture = dir.path().join("evasion.pcap");
    write_pcap_spaced(&capture, &frames, TS0, 1_000);
    let out_flows = dir.path().join("flows.json");
    let summary = dir.path().join("summary.json");
    assert_ok(&portolan(&[
        "replay",
        s(&capture),
        "--flows",
        s(&out_flows),
        "--summary",
        s(&summary),
    ]));
    let records = json_lines(&out_flows);
    assert_eq!(records.len(), flows.len(), "{records:#?}");
    let v = |port: u16| verdict(record_from(&records, port));
    let plain = v(51001);
    assert_eq!(plain["app_proto"], "tls");
    assert_eq!(plain["src"], "10.20.5.10:51001");
    assert_eq!(plain["sni"], "c2.example.net");
    assert!(
        plain["ja4"].as_str().is_some_and(|j| j.starts_with("t13d")),
        "{plain}"
    );
    assert_eq!(plain["port_mismatch"], true);
    let same_but_port = |mut x: Value, port: u16| {
        x["src"] = Value::from(format!("10.20.5.10:{port}"));
        x
    };
    // 24-byte segments: the same record as one segment.
    assert_eq!(v(51002), same_but_port(plain.clone(), 51002));
    // A post-quantum hello in two segments sent in reverse, and in reversed IPv4 fragments.
    let pq_plain = v(51003);
    assert_eq!(pq_plain["sni"], "pq.example.net");
    assert_eq!(v(51004), same_but_port(pq_plain.clone(), 51004));
    assert_eq!(v(51005), same_but_port(pq_plain, 51005));
    // Roles: the SYN sender stays the client whatever the payload claims.
    for port in [51006, 51007] {
        let rec = record_from(&records, port);
        assert_eq!(verdict(rec)["src"], format!("10.20.5.10:{port}"), "{rec:#}");
        let indicators = rec["portolan"]["indicators"].to_string();
        assert!(
            indicators.contains("roles.conflict"),
            "{port}: {indicators}"
        );
    }
    assert_eq!(record_from(&records, 51006)["app_proto"], "tls");
    assert_eq!(record_from(&records, 51007)["app_proto"], "ssh");
    // With 4 workers (the capture sharded as symmetric RSS would) the segmented and role-claiming
    // flows give the same records. Not the fragmented one: a NIC hashes non-first fragments by
    // their addresses only, so they reach another worker than their flow and its first
    // fragment, and that worker cannot rebuild the datagram (docs/ARCHITECTURE.md, "IP
    // defragmentation", limits).
    let shards = dir.path().join("flows-4.json");
    assert_ok(&portolan(&[
        "replay",
        s(&capture),
        "--workers",
        "4",
        "--flows",
        s(&shards),
    ]));
    let sharded = json_lines(&shards);
    for port in [51001, 51002, 51003, 51004, 51006, 51007] {
        assert_eq!(
            verdict(record_from(&sharded, port)),
            v(port),
            "--workers 4, {port}"
        );
    }
    // With `[rss] fields = "addresses"` every packet of an address pair lands on one worker, so
    // the fragmented hello is rebuilt on its flow's worker: every record, the fragmented one
    // included, is the plain run's with 2 and 4 workers.
    let hw = dir.path().join("addresses.toml");
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hwconfig/examples/net_pcap.toml"),
    )
    .expect("the net_pcap example");
    assert!(
        example.contains("\n[rss]\n"),
        "the example has an [rss] section"
    );
    std::fs::write(
        &hw,
        example.replace("\n[rss]\n", "\n[rss]\nfields = \"addresses\"\n"),
    )
    .expect("write the description");
    for workers in ["2", "4"] {
        let out = dir.path().join(format!("flows-addresses-{workers}.json"));
        assert_ok(&portolan(&[
            "replay",
            s(&capture),
            "--workers",
            workers,
            "--config",
            s(&hw),
            "--flows",
            s(&out),
        ]));
        let records = json_lines(&out);
        for (port, _) in &flows {
            assert_eq!(
                verdict(record_from(&records, *port)),
                v(*port),
                "--workers {workers} with rss.fields = addresses, {port}"
            );
        }
    }
    let report = read_json(&summary);
    assert_eq!(
        report["workers"][0]["defrag"]["reassembled"], 1,
        "{report:#}"
    );
    assert_eq!(
        report["drops"]
            .as_object()
            .map(|d| d.values().filter(|n| n.as_u64() != Some(0)).count()),
        Some(0),
        "{report:#}"
    );
}
