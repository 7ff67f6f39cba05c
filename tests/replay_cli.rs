//! `portolan replay` end to end: real binary, real DPDK `net_pcap`, captures built here.

mod common;

use common::{
    assert_ok, json_lines, portolan, read_json, s, shared_captures, write_pcap_spaced, TS0,
};
use portolan_packet::capture::PcapWriter;
use portolan_packet::LinkType;
use portolan_testkit::Frame;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Ethernet + IPv4 + TCP (`proto` 6, with `flags`) or UDP (17) or another protocol, with
/// `payload` bytes after the L4 header.
fn ipv4_frame(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    ports: (u16, u16),
    flags: u8,
    payload: usize,
) -> Vec<u8> {
    let body = vec![0x5a; payload];
    match proto {
        6 => Frame::tcp((src, ports.0), (dst, ports.1), flags)
            .seq(1)
            .build(&body),
        17 => Frame::udp((src, ports.0), (dst, ports.1)).build(&body),
        // An ICMP echo request header, then the payload.
        _ => Frame::ip(src, dst, proto).build(&[&[8, 0, 0, 0][..], &body].concat()),
    }
}

/// An ARP request (not IP).
fn arp_frame() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.resize(42, 0);
    f
}

/// A small capture: one TCP connection (client 10.0.0.1:40000 → 10.0.0.2:443), one UDP exchange
/// starting later, an ICMP echo and an ARP frame. Returns the path and the frame count.
fn small_capture(dir: &Path, name: &str, ts0: u64) -> (PathBuf, usize) {
    let c = [10, 0, 0, 1];
    let s = [10, 0, 0, 2];
    let frames = vec![
        ipv4_frame(c, s, 6, (40000, 443), 0x02, 0),
        ipv4_frame(s, c, 6, (443, 40000), 0x12, 0),
        ipv4_frame(c, s, 6, (40000, 443), 0x10, 0),
        ipv4_frame(c, s, 6, (40000, 443), 0x18, 200),
        ipv4_frame(s, c, 6, (443, 40000), 0x18, 1200),
        arp_frame(),
        ipv4_frame(c, [10, 0, 0, 53], 17, (5353, 53), 0, 40),
        ipv4_frame([10, 0, 0, 53], c, 17, (53, 5353), 0, 80),
        ipv4_frame(c, s, 1, (0, 0), 0, 32),
        ipv4_frame(c, s, 6, (40000, 443), 0x11, 0),
        ipv4_frame(s, c, 6, (443, 40000), 0x11, 0),
    ];
    let path = dir.join(name);
    write_pcap_spaced(&path, &frames, ts0, 10_000);
    (path, frames.len())
}

/// The one line a failing run prints; asserts it is exactly one line.
fn one_error_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "expected one error line, got:\n{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    err
}

#[test]
fn replay_counts_packets_flows_and_drops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cap, n) = small_capture(dir.path(), "small.pcap", TS0);
    let summary = dir.path().join("summary.json");
    let flows = dir.path().join("flows.jsonl");
    let out = portolan(&[
        "replay",
        s(&cap),
        "--summary",
        s(&summary),
        "--flows",
        s(&flows),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    assert!(stderr.contains(&format!("{n} packets")), "{stderr}");
    assert!(!stderr.contains("EAL:"), "no EAL log lines: {stderr}");

    let r = read_json(&summary);
    assert_eq!(r["packets"], n as u64);
    assert_eq!(r["flows"], 2);
    assert_eq!(r["decoded"], (n - 2) as u64);
    assert_eq!(r["drops"]["non_ip"], 1);
    assert_eq!(r["drops"]["other_ip_proto"], 1);
    assert_eq!(r["port_counters_match"], true);
    assert_eq!(r["port"]["ipackets"], n as u64);
    assert_eq!(r["link_type"], "ethernet");
    assert_eq!(r["workers"].as_array().map(Vec::len), Some(1));
    assert!(r["mpps"].as_f64().is_some_and(|x| x > 0.0));
    assert!(r["gbps"].as_f64().is_some_and(|x| x > 0.0));
    // The worker's cycles split into the PMD's receive call and its own work.
    let w = &r["workers"][0];
    let (all, rx) = (
        w["cycles_per_packet"].as_f64().unwrap_or(0.0),
        w["rx_cycles_per_packet"].as_f64().unwrap_or(0.0),
    );
    assert!(rx > 0.0 && rx < all, "rx {rx} of {all} cycles per packet");
    assert!(stderr.contains("in the PMD's receive"), "{stderr}");

    let recs = json_lines(&flows);
    assert_eq!(recs.len(), 2);
    // Without --flows the flows are counted and dropped as they end: same counts.
    let counted = dir.path().join("counted.json");
    assert_ok(&portolan(&["replay", s(&cap), "--summary", s(&counted)]));
    let c = read_json(&counted);
    assert_eq!(
        (&c["flows"], &c["workers"][0]["flows"]),
        (&r["flows"], &r["workers"][0]["flows"])
    );
    // Sorted by start time: the TCP connection started first.
    assert_eq!(recs[0]["proto"], "TCP");
    assert_eq!(recs[0]["src_ip"], "10.0.0.1");
    assert_eq!(recs[0]["dest_port"], 443);
    assert_eq!(recs[0]["flow"]["pkts_toserver"], 4);
    assert_eq!(recs[0]["flow"]["pkts_toclient"], 3);
    assert_eq!(recs[0]["timestamp"], "2023-11-14T22:13:20.000000+0000");
    assert_eq!(recs[1]["proto"], "UDP");
    assert_eq!(recs[1]["dest_port"], 53);
    assert_eq!(
        recs[1]["flow"]["pkts_toserver"].as_u64().unwrap_or(0)
            + recs[1]["flow"]["pkts_toclient"].as_u64().unwrap_or(0),
        2
    );
}

#[test]
fn one_worker_per_queue_capture() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, na) = small_capture(dir.path(), "a.pcap", TS0);
    // A path DPDK's device arguments cannot carry as-is (comma, '=', space).
    let (b, nb) = small_capture(dir.path(), "b,odd=name x.pcap", TS0 + 5_000_000);
    let summary = dir.path().join("summary.json");
    let out = portolan(&[
        "replay",
        s(&a),
        "--queue-capture",
        s(&b),
        "--workers",
        "2",
        "--summary",
        s(&summary),
    ]);
    assert_ok(&out);
    let r = read_json(&summary);
    assert_eq!(r["packets"], (na + nb) as u64);
    assert_eq!(r["flows"], 4);
    assert_eq!(r["port_counters_match"], true);
    let workers = r["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 2);
    assert_eq!(workers[0]["packets"], na as u64);
    assert_eq!(workers[1]["packets"], nb as u64);
    assert_eq!(workers[1]["port_q_ipackets"], nb as u64);
    assert_ne!(workers[0]["lcore"], workers[1]["lcore"]);
}

#[test]
fn missing_capture_is_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-capture.pcap");
    let flows = dir.path().join("flows.jsonl");
    let out = portolan(&["replay", s(&missing), "--flows", s(&flows)]);
    assert_eq!(out.status.code(), Some(2));
    let err = one_error_line(&out);
    assert!(err.contains("no-such-capture.pcap"), "{err}");
    assert!(!flows.exists(), "bad input leaves no output file behind");
}

#[test]
fn unknown_link_type_is_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("usb.pcap");
    // Classic pcap header with link type 189 (USB Linux), which Portolan does not decode.
    let mut hdr = Vec::new();
    hdr.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    hdr.extend_from_slice(&2u16.to_le_bytes());
    hdr.extend_from_slice(&4u16.to_le_bytes());
    hdr.extend_from_slice(&[0; 8]);
    hdr.extend_from_slice(&65535u32.to_le_bytes());
    hdr.extend_from_slice(&189u32.to_le_bytes());
    std::fs::write(&path, hdr).expect("write capture");
    let out = portolan(&["replay", s(&path)]);
    assert_eq!(out.status.code(), Some(2));
    let err = one_error_line(&out);
    assert!(err.contains("usb.pcap") && err.contains("189"), "{err}");
}

#[test]
fn several_workers_on_one_capture_shard_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cap, n) = small_capture(dir.path(), "one.pcap", TS0);
    let summary = dir.path().join("summary.json");
    let out = portolan(&[
        "replay",
        s(&cap),
        "--workers",
        "2",
        "--summary",
        s(&summary),
    ]);
    assert_ok(&out);
    let r = read_json(&summary);
    assert_eq!(r["packets"], n as u64, "every packet in exactly one shard");
    assert_eq!(r["port_counters_match"], true);
    assert_eq!(r["workers"].as_array().expect("workers").len(), 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("queue 1"),
        "the shard summary is printed: {err}"
    );
    // A bad --config is named before anything runs.
    let out = portolan(&[
        "replay",
        s(&cap),
        "--workers",
        "2",
        "--config",
        "/nonexistent/hw.toml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_error_line(&out).contains("/nonexistent/hw.toml"));
}

#[test]
fn mixed_link_types_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (eth, _) = small_capture(dir.path(), "eth.pcap", TS0);
    let raw = dir.path().join("raw.pcap");
    let mut w = PcapWriter::create(&raw, LinkType::RawIp, 65535).expect("create");
    let f = ipv4_frame([10, 0, 0, 1], [10, 0, 0, 2], 17, (1, 2), 0, 4);
    w.write(TS0, (f.len() - 14) as u32, &f[14..])
        .expect("write");
    w.finish().expect("finish");
    let out = portolan(&["replay", s(&eth), "--queue-capture", s(&raw)]);
    assert_eq!(out.status.code(), Some(2));
    let err = one_error_line(&out);
    assert!(
        err.contains("raw.pcap") && err.contains("link type"),
        "{err}"
    );
}

#[test]
fn shared_captures_replay_every_frame() {
    let dir = shared_captures();
    if !dir.is_dir() {
        println!(
            "skipping: {} is absent (shared captures not mounted)",
            dir.display()
        );
        return;
    }
    // One of each link type and container seen there: Ethernet pcap, Linux SLL, raw IP in
    // pcapng, BSD loopback, Ethernet pcapng with multi-segment frames, IP fragments.
    let names = [
        "443-curl.pcap",
        "KakaoTalk_chat.pcap",
        "hls.pcapng",
        "selfsigned.pcap",
        "geforcenow.pcapng",
        "dns_fragmented.pcap",
    ];
    let out_dir = tempfile::tempdir().expect("tempdir");
    for name in names {
        let cap = dir.join(name);
        if !cap.is_file() {
            println!("skipping {name}: not in {}", dir.display());
            continue;
        }
        let mut reader =
            portolan_packet::capture::CaptureReader::open(&cap).expect("readable capture");
        let mut frames = 0u64;
        while reader.next_record().expect("record").is_some() {
            frames += 1;
        }
        let summary = out_dir.path().join(format!("{name}.json"));
        let out = portolan(&["replay", s(&cap), "--summary", s(&summary)]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = read_json(&summary);
        assert_eq!(r["packets"], frames, "{name}: every frame replayed");
        assert_eq!(r["port_counters_match"], true, "{name}");
        let dropped: u64 = r["drops"]
            .as_object()
            .expect("drops")
            .values()
            .filter_map(Value::as_u64)
            .sum();
        assert_eq!(
            r["decoded"].as_u64().unwrap_or(0) + dropped,
            frames,
            "{name}: decoded + dropped"
        );
        assert!(
            r["flows"].as_u64().unwrap_or(0) >= 1,
            "{name}: at least one flow"
        );
    }
}

#[test]
fn managed_subnet_prefilter_skips_other_traffic_before_the_flow_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cap, n) = small_capture(dir.path(), "small.pcap", TS0);
    let summary = dir.path().join("summary.json");
    let flows = dir.path().join("flows.jsonl");
    // Only 10.0.0.2 is "managed": the TCP connection to it stays, the DNS exchange between
    // 10.0.0.1 and 10.0.0.53 (two frames) is skipped; ICMP and ARP are decode drops as before.
    let out = portolan(&[
        "replay",
        s(&cap),
        "--managed-subnet",
        "10.0.0.2/32",
        "--summary",
        s(&summary),
        "--flows",
        s(&flows),
    ]);
    assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("prefiltered: 2 packets outside the managed subnets"),
        "{stderr}"
    );
    let r = read_json(&summary);
    assert_eq!(r["packets"], n as u64);
    assert_eq!(r["prefiltered"], 2);
    assert_eq!(r["decoded"], (n - 4) as u64);
    assert_eq!(r["flows"], 1);
    assert_eq!(r["workers"][0]["prefiltered"], 2);
    assert_eq!(r["port_counters_match"], true);
    let recs = json_lines(&flows);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["dest_ip"], "10.0.0.2");

    // A subnet with host bits set is refused, naming the flag and the intended network.
    let bad = portolan(&["replay", s(&cap), "--managed-subnet", "10.0.0.1/24"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("--managed-subnet") && err.contains("did you mean 10.0.0.0/24"),
        "{err}"
    );
}

/// The EAL's runtime directory (`/var/run/dpdk/portolan-<pid>-<ns>` as root) is removed at exit.
#[test]
fn the_eal_runtime_directory_is_removed_at_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cap, _) = small_capture(dir.path(), "small.pcap", TS0);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_portolan"))
        .args(["replay", s(&cap)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let root = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    };
    let runtime = if root {
        PathBuf::from("/var/run/dpdk")
    } else {
        std::env::var_os("XDG_RUNTIME_DIR")
            .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from)
            .join("dpdk")
    };
    let prefix = format!("portolan-{pid}-");
    let left: Vec<_> = std::fs::read_dir(&runtime)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "left behind in {}: {left:?}",
        runtime.display()
    );
}

/// A capture cut inside its last record: exit 0, the cut record counted as a drop reason, one
/// warning naming the capture; no contradictory "packets were lost".
#[test]
fn a_capture_cut_inside_its_last_record_is_a_counted_drop_not_a_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cap, n) = small_capture(dir.path(), "small.pcap", TS0);
    let bytes = std::fs::read(&cap).expect("read");
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).expect("write");
    let summary = dir.path().join("summary.json");
    let out = portolan(&["replay", s(&cut), "--summary", s(&summary)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("cut.pcap ends in a record cut short"), "{err}");
    assert!(!err.contains("packets were lost"), "{err}");
    let report = read_json(&summary);
    assert_eq!(report["drops"]["truncated_capture_record"], 1, "{report:#}");
    assert_eq!(report["packets"], (n - 1) as u64);
    assert_eq!(report["port_counters_match"], true);

    // Sharded for two workers, the cut record never reaches a shard (or a port): it is still
    // the counted drop, with the same warning.
    let out = portolan(&[
        "replay",
        s(&cut),
        "--workers",
        "2",
        "--summary",
        s(&summary),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("cut.pcap ends in a record cut short"), "{err}");
    let report = read_json(&summary);
    assert_eq!(report["drops"]["truncated_capture_record"], 1, "{report:#}");
    assert_eq!(report["packets"], (n - 1) as u64);
}

/// A FIFO given as the capture is refused at once, naming it (it used to hang the replay).
#[test]
fn a_fifo_capture_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("live.pcap");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let out = portolan(&["replay", s(&fifo)]);
    assert_eq!(out.status.code(), Some(2));
    let err = one_error_line(&out);
    assert!(err.contains("live.pcap") && err.contains("FIFO"), "{err}");
}

/// Outputs are all or nothing: a run that fails after creating them (here the mbuf pool cannot
/// be made) leaves an earlier summary untouched and no flows file or temporary file; a run that
/// succeeds renames complete files into place, 0600.
#[test]
fn a_failed_run_leaves_earlier_outputs_untouched_and_no_partial_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cap, _) = small_capture(dir.path(), "small.pcap", TS0);
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let summary = out_dir.join("summary.json");
    let flows = out_dir.join("flows.json");
    let eve = out_dir.join("eve.json");
    std::fs::write(&summary, "earlier run\n").expect("write");
    std::fs::write(&eve, "earlier alerts\n").expect("write");
    let args = [
        "replay",
        s(&cap),
        "--summary",
        s(&summary),
        "--flows",
        s(&flows),
        "--eve",
        s(&eve),
    ];
    let out = portolan(&[&args[..], &["--mbufs", "1"]].concat());
    assert_eq!(out.status.code(), Some(1), "{}", one_error_line(&out));
    assert_eq!(
        std::fs::read_to_string(&summary).expect("read"),
        "earlier run\n"
    );
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        std::fs::read_to_string(&eve).expect("read"),
        "earlier alerts\n",
        "the alert file is staged like the others"
    );
    assert_eq!(names(&out_dir), ["eve.json", "summary.json"]);
    let out = portolan(&args);
    assert_ok(&out);
    assert_eq!(names(&out_dir), ["eve.json", "flows.json", "summary.json"]);
    assert!(read_json(&summary)["packets"].as_u64().unwrap_or(0) > 0);
    assert!(!json_lines(&flows).is_empty());
    assert!(
        !std::fs::read_to_string(&eve)
            .expect("read")
            .contains("earlier alerts"),
        "a successful run replaces the alert file"
    );
    use std::os::unix::fs::PermissionsExt;
    for f in [&summary, &flows, &eve] {
        let mode = std::fs::metadata(f).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
}
