//! `portolan hwcheck` end to end: the real binary, real DPDK `net_pcap`, the example hardware
//! description pointed at captures written here. Each run is its own process (one EAL each).

use portolan_packet::capture::PcapWriter;
use portolan_packet::LinkType;
use portolan_testkit::Frame;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/hwconfig/examples/net_pcap.toml"
);
const EXAMPLE_CAPTURE: &str = "samples/egress-sample.pcap";

/// A small Ethernet/IPv4/UDP capture of `n` frames.
fn write_capture(path: &Path, n: u8) {
    let mut w = PcapWriter::create(path, LinkType::Ethernet, 65535).expect("create capture");
    for i in 0..n {
        let f = Frame::udp(([10, 20, 0, i], 49152), ([198, 51, 100, 1], 443)).build(&[1, 2, 3, 4]);
        w.write(1_700_000_000_000_000 + u64::from(i), f.len() as u32, &f)
            .expect("write frame");
    }
    w.finish().expect("finish capture");
}

/// The example description with its port replaced by `vdev` and `rx_queues` queues on lcores
/// `1..=rx_queues`.
fn description_for(dir: &Path, vdev: &str, rx_queues: u16) -> PathBuf {
    let text = std::fs::read_to_string(EXAMPLE).expect("read example description");
    let port_line = format!("vdev = \"net_pcap0,rx_pcap={EXAMPLE_CAPTURE}\"");
    assert!(
        text.contains(&port_line),
        "the example's port line changed: {port_line}"
    );
    let queues = (1..=rx_queues)
        .map(|l| format!("{{ lcore = {l} }}"))
        .collect::<Vec<_>>()
        .join(", ");
    let text = text
        .replace(&port_line, &format!("vdev = \"{vdev}\""))
        .replace("lcores = \"0-1\"", &format!("lcores = \"0-{rx_queues}\""))
        .replace(
            "rx_queues = 1\nqueues = [{ lcore = 1 }]",
            &format!("rx_queues = {rx_queues}\nqueues = [{queues}]"),
        );
    let path = dir.join("hw.toml");
    std::fs::write(&path, text).expect("write description");
    path
}

fn hwcheck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portolan"))
        .arg("hwcheck")
        .args(args)
        .output()
        .expect("run portolan hwcheck")
}

/// The effective uid is 0 (`Uid:` line of `/proc/self/status`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// A real PMD with rte_flow: `net_tap` (a TAP device hwcheck creates; root and
/// `/dev/net/tun`). It validates the bypass drop rules, so with `offloads.nic_bypass = true`
/// the bypass is placed in the NIC, and without it the plan says the rules are not asked for.
#[test]
fn net_tap_validates_the_bypass_rules_and_the_plan_places_them_in_hardware_when_asked() {
    if !is_root() || !Path::new("/dev/net/tun").exists() {
        eprintln!("skipped: net_tap needs root and /dev/net/tun");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let iface = format!("ptlhw{}", std::process::id() % 100_000);
    let desc = description_for(dir.path(), &format!("net_tap0,iface={iface}"), 1);
    let text = std::fs::read_to_string(&desc).expect("read");
    assert!(text.contains("bypass_judged_flows = true\n"), "{text}");
    let asked = dir.path().join("asked.toml");
    std::fs::write(
        &asked,
        text.replace(
            "bypass_judged_flows = true\n",
            "bypass_judged_flows = true\nnic_bypass = true\nnic_bypass_max_rules = 8192\n",
        ),
    )
    .expect("write");

    let out = hwcheck(&["--config", asked.to_str().expect("utf8"), "--json"]);
    assert!(
        out.status.success(),
        "hwcheck failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let probed = &json["probed"][0];
    assert_eq!(probed["capabilities"]["driver_name"], "net_tap");
    assert!(
        probed["configured"]
            .as_str()
            .is_some_and(|c| !c.starts_with("failed")),
        "{probed}"
    );
    let answers = &probed["capabilities"]["rte_flow_validate"];
    assert_eq!(answers["bypass_drop_ipv4"], serde_json::json!({"Ok": null}));
    assert_eq!(answers["bypass_drop_ipv6"], serde_json::json!({"Ok": null}));
    let bypass = &json["plan"]["ports"][0]["offloads"][2];
    assert_eq!(bypass["offload"], "bypass_judged_flows");
    assert_eq!(bypass["placement"], "hardware", "{bypass}");
    assert!(
        bypass["reason"]
            .as_str()
            .is_some_and(|r| r.contains("at most 8192 rules")),
        "{bypass}"
    );

    let out = hwcheck(&["--config", desc.to_str().expect("utf8")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("bypass_judged_flows        hardware_capable   rte_flow_validate accepted bypass_drop_ipv4, bypass_drop_ipv6: the NIC could drop judged flows; set offloads.nic_bypass = true to install the rules"),
        "{stdout}"
    );
}

#[test]
fn net_pcap_plan_is_software_fallback_with_the_pmds_reasons() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = dir.path().join("egress.pcap");
    write_capture(&cap, 4);
    let desc = description_for(
        dir.path(),
        &format!("net_pcap0,rx_pcap={}", cap.display()),
        1,
    );

    let out = hwcheck(&["--config", desc.to_str().expect("utf8")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "hwcheck failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Measured from the device: dev_info says no RSS, and every rule is refused with ENOSYS.
    assert!(
        stdout.contains("driver net_pcap): max_rx_queues 1, flow_type_rss_offloads 0x0, hash_key_size 0, reta_size 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rte_flow_validate(bypass_mark_ipv6): -38 Function not implemented"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "symmetric_rss              software_fallback  flow_type_rss_offloads is 0: driver net_pcap offers no RSS"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("prefilter_managed_subnets  software_fallback  rte_flow_validate(prefilter_ipv4_subnet): -38 Function not implemented"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bypass_judged_flows        software_fallback"),
        "{stdout}"
    );

    let out = hwcheck(&["--config", desc.to_str().expect("utf8"), "--json"]);
    assert!(out.status.success());
    let json: Value = serde_json::from_slice(&out.stdout).expect("hwcheck --json is JSON");
    let probed = &json["probed"][0]["capabilities"];
    assert_eq!(probed["driver_name"], "net_pcap");
    assert_eq!(probed["flow_type_rss_offloads"], 0);
    let answers = probed["rte_flow_validate"]
        .as_object()
        .expect("one answer per rule kind");
    assert_eq!(answers.len(), 7);
    for (kind, answer) in answers {
        assert_eq!(answer["Err"]["code"], -38, "{kind}: {answer}");
    }
    let offloads = json["plan"]["ports"][0]["offloads"]
        .as_array()
        .expect("offloads");
    let placements: Vec<&str> = offloads
        .iter()
        .map(|d| d["placement"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(placements, vec!["software_fallback"; 3]);
    assert_eq!(
        offloads[2]["reason"],
        "rte_flow_validate(bypass_drop_ipv4): -38 Function not implemented; rte_flow_validate(bypass_mark_ipv4): -38 Function not implemented"
    );
    let args: Vec<&str> = json["eal_args"]
        .as_array()
        .expect("eal args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        args.contains(&"--no-huge") && args.contains(&"--no-shconf"),
        "{args:?}"
    );
}

#[test]
fn two_queues_name_the_shard_fallback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("q0.pcap");
    let b = dir.path().join("q1.pcap");
    write_capture(&a, 2);
    write_capture(&b, 3);
    let desc = description_for(
        dir.path(),
        &format!("net_pcap0,rx_pcap={},rx_pcap={}", a.display(), b.display()),
        2,
    );
    let out = hwcheck(&["--config", desc.to_str().expect("utf8")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Two workers and the main lcore need lcores 0-2: on a machine with fewer CPUs the check
    // still probes (lcores mapped onto the CPUs there are) but says the plan cannot start.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus >= 3 {
        assert!(out.status.success(), "{stdout}{stderr}");
    } else {
        assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
        assert!(
            stdout.contains("PROBLEM: ") && stdout.contains("cores.lcores"),
            "{stdout}"
        );
        assert!(stdout.contains("--lcores=(0-2)@("), "{stdout}");
        assert!(stderr.contains("the plan has problems"), "{stderr}");
    }
    assert!(stdout.contains("max_rx_queues 2"), "{stdout}");
    assert!(
        stdout.contains("configured: 2 RX queue(s), no RSS"),
        "{stdout}"
    );
    assert!(
        stdout.contains("software: `portolan shard --queues 2`"),
        "{stdout}"
    );
}

#[test]
fn missing_capture_and_bad_description_are_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.pcap");
    let desc = description_for(
        dir.path(),
        &format!("net_pcap0,rx_pcap={}", missing.display()),
        1,
    );
    let out = hwcheck(&["--config", desc.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nope.pcap") && stderr.contains("does not exist"),
        "{stderr}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "ports = []\n[cores]\nlcores = \"0-1\"\nmain = 5\n[memory]\nhugepages = false\n",
    )
    .expect("write");
    let out = hwcheck(&["--config", bad.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cores.main"), "{stderr}");
}

#[test]
fn an_appliance_configuration_is_checked_through_its_hardware_table() {
    // The shipped `portolan run` configuration: its [hardware] port replays the sample capture,
    // whose path is relative to the configuration's folder.
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/portolan.example.toml");
    let out = hwcheck(&["--config", config, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        report["probed"][0]["capabilities"]["driver_name"],
        "net_pcap"
    );
    assert_eq!(report["plan"]["ports"][0]["name"], "egress");
    // A bad key in the appliance file is named like `portolan run` names it.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(config).expect("read");
    std::fs::write(
        &bad,
        text.replace("rx_burst = 32", "rx_burst = 32\nrx_bursts = 1"),
    )
    .expect("w");
    let out = hwcheck(&["--config", bad.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rx_bursts"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
