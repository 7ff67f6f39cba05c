//! Mirrored traffic as it arrives at a sensor: the sample capture (SSH, DNS, NTP, TLS, QUIC, ...
//! from eight managed devices) with every frame wrapped in GRE, ERSPAN II/III, VXLAN, GENEVE,
//! MPLS or IP in IP, replayed through the real dataplane (`portolan replay`, DPDK net_pcap,
//! Hyperscan): the inner flows must be judged exactly as in the plain capture — the same
//! flows with the same protocols — the outer headers must never become flows, and every frame
//! must be counted under its encapsulation.

mod common;
#[path = "../dataplane/packet/tests/common/tunnel.rs"]
mod tunnel;

use common::{assert_ok, json_lines, portolan, read_json, s};
use portolan_packet::capture::{CaptureReader, PcapWriter};
use portolan_packet::LinkType;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use tunnel::{encapsulate, Wrap, OUTER_DST, OUTER_SRC};

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/egress-sample.pcap");

/// Writes the sample with every frame wrapped in `wrap`; returns the frames written.
fn wrapped_sample(wrap: Wrap, out: &Path) -> u64 {
    let mut r = CaptureReader::open(Path::new(SAMPLE)).expect("sample");
    let mut w = PcapWriter::create(out, LinkType::Ethernet, 65535).expect("create");
    let mut n = 0;
    while let Some(rec) = r.next_record().expect("record") {
        let frame = encapsulate(wrap, &rec.data).expect("the sample is untagged Ethernet/IP");
        w.write(rec.ts_us, frame.len() as u32, &frame)
            .expect("write");
        n += 1;
    }
    w.finish().expect("finish");
    n
}

/// Replays `capture`; returns the summary and the flows as `(proto, src, sport, dst, dport,
/// app_proto, packets)` keys.
fn replay(capture: &Path, dir: &Path, tag: &str) -> (Value, BTreeSet<String>) {
    let summary = dir.join(format!("{tag}.summary.json"));
    let flows = dir.join(format!("{tag}.flows.json"));
    assert_ok(&portolan(&[
        "replay",
        s(capture),
        "--summary",
        s(&summary),
        "--flows",
        s(&flows),
    ]));
    let keys = json_lines(&flows)
        .iter()
        .map(|f| {
            format!(
                "{} {}:{} > {}:{} {} pkts {}/{}",
                f["proto"],
                f["src_ip"],
                f["src_port"],
                f["dest_ip"],
                f["dest_port"],
                f["app_proto"],
                f["flow"]["pkts_toserver"],
                f["flow"]["pkts_toclient"],
            )
        })
        .collect();
    (read_json(&summary), keys)
}

#[test]
fn encapsulated_sample_yields_the_inner_flows_and_counts_each_encapsulation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (plain, plain_flows) = replay(Path::new(SAMPLE), dir.path(), "plain");
    let protos = &plain["app_protos"];
    for p in ["ssh", "dns", "ntp"] {
        assert!(
            protos[p].as_u64().unwrap_or(0) > 0,
            "{p} in the sample: {protos}"
        );
    }
    assert!(plain["encapsulated"]
        .as_object()
        .expect("encapsulated")
        .values()
        .all(|n| n == 0));
    let outer: [String; 2] =
        [OUTER_SRC, OUTER_DST].map(|a| format!("\"{}\"", std::net::Ipv4Addr::from(a)));
    for (wrap, kind) in [
        (Wrap::GreIp, "gre"),
        (Wrap::ErspanII, "erspan_ii"),
        (Wrap::ErspanIII, "erspan_iii"),
        (Wrap::Vxlan, "vxlan"),
        (Wrap::Geneve, "geneve"),
        (Wrap::Mpls, "mpls"),
        (Wrap::IpInIp, "ip_in_ip"),
    ] {
        let capture = dir.path().join(format!("{kind}.pcap"));
        let frames = wrapped_sample(wrap, &capture);
        let (summary, flows) = replay(&capture, dir.path(), kind);
        assert_eq!(summary["packets"].as_u64(), Some(frames), "{kind}");
        assert_eq!(
            summary["encapsulated"][kind].as_u64(),
            Some(frames),
            "{kind}: {summary}"
        );
        assert_eq!(summary["decoded"], plain["decoded"], "{kind}: {summary}");
        assert_eq!(summary["flows"], plain["flows"], "{kind}");
        assert_eq!(summary["app_protos"], plain["app_protos"], "{kind}");
        assert_eq!(
            flows, plain_flows,
            "{kind}: the same flows, keyed on the inner headers"
        );
        assert!(
            flows
                .iter()
                .all(|f| outer.iter().all(|o| !f.contains(o.as_str()))),
            "{kind}: an outer header became a flow"
        );
    }
}
