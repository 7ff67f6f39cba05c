//! End-to-end checks of `portolan synth` output without tshark: determinism, every frame
//! decoding with `portolan_packet::parse`, checksums, ground truth agreeing with the capture,
//! and the MDM files agreeing with both.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use portolan_packet::capture::CaptureReader;
use portolan_packet::{parse, LinkType, Transport};
use portolan_synth::{run, SynthOptions, GROUND_TRUTH_HEADER};

fn options(dir: &Path, name: &str) -> SynthOptions {
    let mut o = SynthOptions::new(dir.join(format!("{name}.pcap")));
    o.seed = 42;
    o.devices = 8;
    o.flows = 160;
    o.size_scale = 0.05;
    o.nonstandard_share = 0.15;
    o.ipv6_share = 0.2;
    o.ground_truth = Some(dir.join(format!("{name}.tsv")));
    o.inventory = Some(dir.join(format!("{name}.json")));
    o.device_states = Some(dir.join(format!("{name}.jsonl")));
    o
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn same_options_give_byte_identical_files_and_seeds_differ() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = options(dir.path(), "a");
    let b = options(dir.path(), "b");
    let ra = run(&a).expect("run a");
    let rb = run(&b).expect("run b");
    assert_eq!(ra, rb);
    assert!(ra.packets > 1000, "{ra}");
    for (x, y) in [
        (&a.output, &b.output),
        (
            a.ground_truth.as_ref().expect("gt"),
            b.ground_truth.as_ref().expect("gt"),
        ),
        (
            a.inventory.as_ref().expect("inv"),
            b.inventory.as_ref().expect("inv"),
        ),
        (
            a.device_states.as_ref().expect("ds"),
            b.device_states.as_ref().expect("ds"),
        ),
    ] {
        assert!(
            read(x) == read(y),
            "{} and {} differ",
            x.display(),
            y.display()
        );
    }
    let mut c = options(dir.path(), "c");
    c.seed = 43;
    run(&c).expect("run c");
    assert!(
        read(&a.output) != read(&c.output),
        "a different seed gives a different capture"
    );
}

/// Unfolded sum of big-endian 16-bit words.
fn sum(data: &[u8]) -> u64 {
    data.chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u64)
        .sum()
}

fn folds_to_zero(mut acc: u64) -> bool {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc == 0xffff
}

/// True when the frame's IPv4 header checksum and its TCP/UDP checksum verify.
fn checksums_ok(frame: &[u8]) -> bool {
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let (l4, pseudo) = if ethertype == 0x0800 {
        if !folds_to_zero(sum(&frame[14..34])) {
            return false;
        }
        (
            34,
            sum(&frame[26..34]) + frame[23] as u64 + (frame.len() - 34) as u64,
        )
    } else {
        (
            54,
            sum(&frame[22..54]) + frame[20] as u64 + (frame.len() - 54) as u64,
        )
    };
    folds_to_zero(sum(&frame[l4..]) + pseudo)
}

struct TruthRow {
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    proto: String,
    app_proto: String,
    sni: String,
    nonstandard: bool,
    udid: String,
    bundle: String,
}

fn truth(p: &Path) -> Vec<TruthRow> {
    let text = String::from_utf8(read(p)).expect("utf-8");
    let mut lines = text.lines();
    assert_eq!(
        lines.next().map(|l| format!("{l}\n")),
        Some(GROUND_TRUTH_HEADER.to_string())
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 12, "row {l:?}");
            TruthRow {
                src: f[0].parse().expect("src ip"),
                sport: f[1].parse().expect("src port"),
                dst: f[2].parse().expect("dst ip"),
                dport: f[3].parse().expect("dst port"),
                proto: f[4].to_string(),
                app_proto: f[5].to_string(),
                sni: f[6].to_string(),
                nonstandard: f[7] == "1",
                udid: f[8].to_string(),
                bundle: f[9].to_string(),
            }
        })
        .collect()
}

/// The SNI of a TLS ClientHello record, if `payload` starts with one.
fn client_hello_sni(payload: &[u8]) -> Option<String> {
    if payload.first() != Some(&22) || payload.get(5) != Some(&1) {
        return None;
    }
    let mut i = 5 + 4 + 2 + 32;
    i += 1 + *payload.get(i)? as usize;
    i += 2 + u16::from_be_bytes([*payload.get(i)?, *payload.get(i + 1)?]) as usize;
    i += 1 + *payload.get(i)? as usize;
    let end = i + 2 + u16::from_be_bytes([*payload.get(i)?, *payload.get(i + 1)?]) as usize;
    i += 2;
    while i + 4 <= end {
        let t = u16::from_be_bytes([payload[i], payload[i + 1]]);
        let l = u16::from_be_bytes([payload[i + 2], payload[i + 3]]) as usize;
        if t == 0 {
            let n = u16::from_be_bytes([*payload.get(i + 7)?, *payload.get(i + 8)?]) as usize;
            return String::from_utf8(payload.get(i + 9..i + 9 + n)?.to_vec()).ok();
        }
        i += 4 + l;
    }
    None
}

#[test]
fn every_frame_decodes_and_ground_truth_matches_the_capture() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = options(dir.path(), "s");
    let report = run(&o).expect("run");
    let mut reader = CaptureReader::open(&o.output).expect("open capture");
    assert_eq!(reader.info().link_type, LinkType::Ethernet);
    let mut frames = 0u64;
    let mut bytes = 0u64;
    let mut last_ts = 0;
    // Client→server 5-tuples with their first payload (for ClientHello SNIs).
    let mut first_payload: BTreeMap<(IpAddr, u16, IpAddr, u16, Transport), Vec<u8>> =
        BTreeMap::new();
    let mut tuples = BTreeSet::new();
    let mut full_segments = 0u64;
    while let Some(rec) = reader.next_record().expect("record") {
        frames += 1;
        bytes += rec.data.len() as u64;
        assert!(rec.ts_us >= last_ts, "frames are in time order");
        last_ts = rec.ts_us;
        assert!(
            rec.data.len() <= 1514,
            "frame {frames} of {} bytes exceeds the MTU",
            rec.data.len()
        );
        assert!(checksums_ok(&rec.data), "frame {frames}: bad checksum");
        let pkt = parse(LinkType::Ethernet, &rec.data)
            .unwrap_or_else(|e| panic!("frame {frames} does not decode: {e:?}"));
        assert!(!pkt.payload_truncated);
        let key = (
            pkt.src_ip,
            pkt.src_port,
            pkt.dst_ip,
            pkt.dst_port,
            pkt.transport,
        );
        tuples.insert(key);
        if !pkt.payload.is_empty() {
            first_payload
                .entry(key)
                .or_insert_with(|| pkt.payload.to_vec());
        }
        if let Some(tcp) = pkt.tcp {
            let mss = if pkt.src_ip.is_ipv6() { 1440 } else { 1460 };
            assert!(
                pkt.payload.len() <= mss,
                "segment of {} bytes",
                pkt.payload.len()
            );
            full_segments += u64::from(pkt.payload.len() == 1448 || pkt.payload.len() == 1460);
            assert_ne!(tcp.flags, 0);
        }
    }
    assert_eq!(frames, report.packets);
    assert_eq!(bytes, report.bytes);
    assert!(
        full_segments > 100,
        "bulk data moves in MSS-sized segments ({full_segments})"
    );
    let rows = truth(o.ground_truth.as_ref().expect("gt path"));
    assert_eq!(
        rows.len() as u64,
        report.flows,
        "one ground-truth row per flow"
    );
    assert_eq!(report.flows, 160);
    let mut seen_protos = BTreeSet::new();
    let mut sni_checked = 0;
    for r in &rows {
        let transport = if r.proto == "TCP" {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let key = (r.src, r.sport, r.dst, r.dport, transport);
        assert!(
            tuples.contains(&key),
            "ground-truth flow {}:{} -> {}:{} is in the capture",
            r.src,
            r.sport,
            r.dst,
            r.dport
        );
        assert!((49152..=65535).contains(&r.sport));
        assert!(
            r.src.to_string().starts_with("10.20.")
                || r.src.to_string().starts_with("2001:db8:20:")
        );
        seen_protos.insert(r.app_proto.clone());
        if r.app_proto == "tls" && !r.nonstandard {
            let p = first_payload
                .get(&key)
                .expect("TLS flow has client payload");
            assert_eq!(
                client_hello_sni(p).as_deref(),
                Some(r.sni.as_str()),
                "ClientHello SNI matches the ground truth"
            );
            sni_checked += 1;
        }
        if r.app_proto == "http" {
            let p = first_payload.get(&key).expect("HTTP flow has a request");
            let head = String::from_utf8_lossy(p);
            assert!(
                head.starts_with("GET ") || head.starts_with("POST "),
                "{head}"
            );
            assert!(head.contains(&format!("Host: {}\r\n", r.sni)));
        }
        if r.app_proto == "ssh" {
            let p = first_payload.get(&key).expect("SSH client banner");
            assert!(p.starts_with(b"SSH-2.0-"));
        }
        if r.app_proto == "mqtt" {
            let p = first_payload.get(&key).expect("MQTT CONNECT");
            assert_eq!(p.first(), Some(&0x10));
        }
        if r.app_proto == "quic" {
            let p = first_payload.get(&key).expect("QUIC Initial");
            assert_eq!(p.len(), 1252);
            assert_eq!(p[0] & 0xf0, 0xc0, "long header, Initial");
            assert_eq!(&p[1..5], &[0, 0, 0, 1], "QUIC v1");
        }
    }
    assert!(sni_checked > 10, "checked {sni_checked} ClientHellos");
    for p in ["tls", "quic", "dns", "http"] {
        assert!(
            seen_protos.contains(p),
            "{p} flows present: {seen_protos:?}"
        );
    }
    assert!(
        rows.iter().any(|r| r.nonstandard),
        "some flows on non-standard ports"
    );
    assert!(rows.iter().any(|r| r.dst.is_ipv6()), "some IPv6 flows");

    // The inventory lists every device and every non-system app of the ground truth.
    let inv: serde_json::Value =
        serde_json::from_slice(&read(o.inventory.as_ref().expect("inv"))).expect("inventory JSON");
    assert_eq!(inv["totalCount"], 8);
    let results = inv["results"].as_array().expect("results");
    let mut apps_by_udid: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in results {
        let udid = d["general"]["udid"].as_str().expect("udid").to_string();
        assert!(d["hardware"]["wifiMacAddress"]
            .as_str()
            .is_some_and(|m| m.len() == 17));
        let apps = d["applications"].as_array().expect("applications");
        apps_by_udid.insert(
            udid,
            apps.iter()
                .filter_map(|a| a["identifier"].as_str().map(String::from))
                .collect(),
        );
    }
    for r in &rows {
        let apps = apps_by_udid
            .get(&r.udid)
            .unwrap_or_else(|| panic!("device {} in inventory", r.udid));
        let system = r.bundle.starts_with("com.apple.apsd")
            || r.bundle.starts_with("com.apple.timed")
            || r.bundle.starts_with("com.apple.captive");
        assert!(
            system || apps.contains(&r.bundle),
            "{} has {} installed",
            r.udid,
            r.bundle
        );
    }
    // Device states are time-ordered JSON lines about inventoried devices.
    let states = String::from_utf8(read(o.device_states.as_ref().expect("ds"))).expect("utf-8");
    let mut prev = String::new();
    let mut n = 0;
    for line in states.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("state JSON");
        let ts = v["timestamp"].as_str().expect("timestamp").to_string();
        assert!(ts >= prev, "states in time order");
        prev = ts;
        assert!(apps_by_udid.contains_key(v["udid"].as_str().expect("udid")));
        assert!(matches!(
            v["lock_state"].as_str(),
            Some("locked" | "unlocked")
        ));
        assert!(matches!(
            v["app_state"].as_str(),
            Some("foreground" | "background")
        ));
        n += 1;
    }
    assert!(n > 8);
}

#[test]
fn packet_target_is_met_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = SynthOptions::new(dir.path().join("p.pcap"));
    o.packets = Some(20_000);
    o.devices = 20;
    o.size_scale = 0.2;
    let r = run(&o).expect("run");
    assert_eq!(r.packets, 20_000);
    let mut reader = CaptureReader::open(&o.output).expect("open");
    let mut n = 0;
    while reader.next_record().expect("record").is_some() {
        n += 1;
    }
    assert_eq!(n, 20_000);
}

#[test]
fn average_packet_size_is_steered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = SynthOptions::new(dir.path().join("avg.pcap"));
    o.flows = 400;
    o.devices = 20;
    o.avg_packet_size = Some(760);
    let steered = run(&o).expect("run");
    assert!(
        (700.0..820.0).contains(&steered.avg_packet_size()),
        "{steered}"
    );
    o.avg_packet_size = None;
    let plain = run(&o).expect("run");
    assert!(
        plain.avg_packet_size() > steered.avg_packet_size() + 50.0,
        "{plain}"
    );
}

#[test]
fn bad_options_are_named() {
    let mut o = SynthOptions::new("/nonexistent-dir/x.pcap");
    o.nonstandard_share = 1.5;
    let e = run(&o).expect_err("share out of range");
    assert!(e.to_string().contains("--nonstandard-share"), "{e}");
    o.nonstandard_share = 0.1;
    let e = run(&o).expect_err("unwritable output");
    assert!(e.to_string().contains("/nonexistent-dir/x.pcap"), "{e}");
    assert!(portolan_synth::parse_mix("tls=1,gopher=2").is_err());
    assert_eq!(
        portolan_synth::parse_mix("tls=1, quic=2")
            .expect("mix")
            .len(),
        2
    );
}

#[test]
fn a_capture_past_the_output_limit_fails_and_leaves_no_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = options(dir.path(), "big");
    o.size_scale = 1.0;
    o.flows = 400;
    o.max_output_mb = 1;
    let out = o.output.clone();
    match run(&o) {
        Err(portolan_synth::SynthError::TooLarge {
            path,
            limit_mb,
            packets,
        }) => {
            assert_eq!((path, limit_mb), (out.clone(), 1));
            assert!(packets > 0, "some frames fit under 1 MiB");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(!out.exists(), "the partial capture is removed");

    // A packet target that cannot fit is refused before anything is written.
    let mut p = options(dir.path(), "target");
    p.packets = Some(10_000);
    p.max_output_mb = 1;
    let err = run(&p).expect_err("refused");
    assert!(err.to_string().contains("--max-output-mb 1"), "{err}");
    assert!(!p.output.exists());

    // Under the limit nothing changes.
    let mut ok = options(dir.path(), "small");
    ok.max_output_mb = 64;
    run(&ok).expect("fits");
    assert!(ok.output.exists());
}
