//! `portolan run` on a live kernel interface: a veth pair the test creates, the daemon reading one
//! end through DPDK's `net_af_packet` or `net_af_xdp` PMD, `tcpreplay` sending the sample capture
//! into the other end at a fixed rate. Through the admin API the test checks the port and worker
//! packet counts against what `tcpreplay` sent, the flows per protocol and the alerts, against
//! `portolan replay` of the same capture with the same inventory (which must be identical).
//! On the AF_XDP port the daemon's XDP program drops the payload packets of judged TCP flows in
//! the driver: fewer packets reach the worker, and the flows' packet and byte counts in the
//! alerts are still exactly those of the replay (the driver's counters are read back).
//!
//! Needs root (veth pairs, raw sockets, XDP) and `tcpreplay` (`scripts/setup` installs it); as
//! another user the tests print why and pass without running. The veth names (`pt18a`/`pt18b`
//! for AF_PACKET, `pt18c`/`pt18d` for AF_XDP) are this file's own; the pair is removed when the
//! test ends, pass or fail. IPv6 is off on both ends so the kernel's own router solicitations
//! do not reach the port. Flow timeouts are a few seconds on wall-clock time, longer than the
//! replay takes (so no flow is split), and short enough that every flow has ended, been judged
//! and alerted on within seconds after the last packet.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::{self, Running};

use common::{assert_ok, json_lines, portolan, read_json, s};
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Live runs in this binary take turns: each busy-polls a worker lcore and the machine is small.
static ONE_DAEMON: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Packets per second `tcpreplay` sends: the 6,307-frame sample takes about 1.3 s.
const REPLAY_PPS: u32 = 5000;
/// Flow timeouts of the live runs (seconds of wall-clock time).
const LIVE_TIMEOUT_S: u32 = 4;

fn sample_capture() -> PathBuf {
    Path::new(ROOT).join("samples/egress-sample.pcap")
}

fn sample_inventory() -> PathBuf {
    Path::new(ROOT).join("samples/inventory.json")
}

/// Why the live tests cannot run here (not root, or no `ip`), if they cannot.
fn cannot_run() -> Option<String> {
    // The effective uid is the second field of `Uid:` in /proc/self/status.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string));
    if euid.as_deref() != Some("0") {
        return Some("not root: veth pairs and raw sockets need CAP_NET_ADMIN".to_string());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("no `ip` command (iproute2)".to_string());
    }
    None
}

fn run(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"))
}

/// A veth pair: `port` is read by the daemon, `feed` is where `tcpreplay` sends. Removed on drop.
struct VethPair {
    port: &'static str,
    feed: &'static str,
}

impl VethPair {
    fn create(port: &'static str, feed: &'static str) -> VethPair {
        // A pair left over by an aborted run of this test.
        let _ = run("ip", &["link", "del", port]);
        let out = run(
            "ip",
            &["link", "add", port, "type", "veth", "peer", "name", feed],
        );
        assert!(
            out.status.success(),
            "ip link add {port}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pair = VethPair { port, feed };
        for dev in [port, feed] {
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6"), b"1");
            let out = run("ip", &["link", "set", dev, "up"]);
            assert!(out.status.success(), "ip link set {dev} up");
        }
        pair
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        let _ = run("ip", &["link", "del", self.port]);
    }
}

/// The live example configuration reading `vdev`, writing to `data`, with the sample inventory
/// imported at start-up and short flow timeouts; with `managed` subnets, the managed-subnet
/// prefilter on.
fn live_config(dir: &Path, vdev: &str, data: &Path, managed: &[&str]) -> PathBuf {
    let text = std::fs::read_to_string(Path::new(ROOT).join("config/portolan.live.example.toml"))
        .expect("config/portolan.live.example.toml");
    assert!(text.contains("vdev = \"net_af_packet0,iface=eth1\""));
    let mut text = text
        .replace(
            "vdev = \"net_af_packet0,iface=eth1\"",
            &format!("vdev = \"{vdev}\""),
        )
        .replace(
            "data_dir = \"../data\"",
            &format!("data_dir = {:?}", s(data)),
        )
        .replacen(
            "# [inputs]              #",
            &format!("[inputs]\ninventory = [{:?}]\n#", s(&sample_inventory())),
            1,
        );
    for key in [
        "tcp_idle_timeout_s = 600",
        "tcp_closed_timeout_s = 30",
        "udp_idle_timeout_s = 60",
        "tcp_unestablished_timeout_s = 60",
    ] {
        let (name, _) = key.split_once(" = ").unwrap_or_default();
        assert!(text.contains(key), "{key}");
        text = text.replace(key, &format!("{name} = {LIVE_TIMEOUT_S}"));
    }
    if !managed.is_empty() {
        assert!(text.contains("prefilter_managed_subnets = false"));
        text = text.replace(
            "prefilter_managed_subnets = false",
            &format!("prefilter_managed_subnets = true\nmanaged_subnets = {managed:?}"),
        );
    }
    let path = dir.join("live.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// A running `portolan run` with a viewer token.
struct Daemon {
    p: Running,
    client: reqwest::Client,
    token: String,
}

impl Daemon {
    fn start(config: &Path, data: &Path) -> Daemon {
        let token = daemon::create_token(config, None, "viewer", "live-test");
        let p = Running::spawn(daemon::command("run", config, None));
        Daemon {
            p,
            client: daemon::api_client(data),
            token,
        }
    }

    fn log_text(&self) -> String {
        self.p.log_text()
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .client
            .get(self.p.at(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.expect("json")
    }

    async fn wait_for_log(&self, text: &str) {
        self.p.wait_for_log(text, 60).await;
    }

    /// Waits until the workers have seen `frames` frames and every flow has ended and been
    /// judged (no active flow, alerts unchanged for two polls); returns the stats.
    async fn wait_until_judged(&self, frames: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last_alerts = usize::MAX;
        loop {
            let stats = self.get("/api/v1/stats").await;
            let workers = stats["workers"].as_array().cloned().unwrap_or_default();
            // Frames the worker saw plus those the driver dropped for bypassed flows and, with
            // the prefilter in the driver, for unmanaged addresses.
            let packets: u64 = workers
                .iter()
                .filter_map(|w| {
                    Some(w["packets"].as_u64()? + w["driver_bypassed_packets"].as_u64()?)
                })
                .sum::<u64>()
                + driver_prefiltered(&stats, "driver_prefiltered_packets");
            let active: u64 = workers
                .iter()
                .filter_map(|w| w["flows_active"].as_u64())
                .sum();
            let alerts = self.get("/api/v1/alerts?limit=1000").await["alerts"]
                .as_array()
                .map_or(0, Vec::len);
            if packets >= frames && active == 0 && alerts == last_alerts {
                return stats;
            }
            last_alerts = alerts;
            assert!(
                Instant::now() < deadline,
                "flows not all judged within 60 s: {stats}\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn stop(self) {
        self.p.stop();
    }
}

/// Sends `capture` into `iface` at [`REPLAY_PPS`]; returns the packets `tcpreplay` says it sent.
fn tcpreplay(iface: &str, capture: &Path) -> u64 {
    let out = Command::new("tcpreplay")
        .args(["-i", iface, "--pps", &REPLAY_PPS.to_string(), s(capture)])
        .output()
        .expect("tcpreplay is not installed: run scripts/setup");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "tcpreplay: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name:?} in tcpreplay's output:\n{text}"))
    };
    assert_eq!(field("Failed packets:"), 0, "{text}");
    field("Successful packets:")
}

/// One alert as a comparable key: device, app, protocol, destination, signature, severity,
/// and the packets and bytes of its flow each way (exact also when the driver dropped some).
fn alert_key(fields: [&Value; 7], flow: &Value) -> String {
    let [udid, bundle, proto, ip, port, sid, sev] = fields;
    format!(
        "{udid} {bundle} {proto} {ip}:{port} sid {sid} {sev} pkts {}/{} bytes {}/{}",
        flow["pkts_toserver"],
        flow["pkts_toclient"],
        flow["bytes_toserver"],
        flow["bytes_toclient"]
    )
}

/// Alert keys as two sorted lists: every alerted flow without its severity, and every alert's
/// group (device, app, protocol, server, signature) with its severity. When a group alerts more
/// than once, the repeat is ranked up on whichever of its flows the control plane judges second;
/// that order follows when each flow ends, which a live port (tcpreplay's pacing, the idle
/// timeouts) and a replay need not share. So the test asserts the same flows and the same
/// severities per group, not which flow of a group carried which.
fn order_free(keys: &[String]) -> (Vec<String>, Vec<String>) {
    let mut flows = Vec::new();
    let mut severities = Vec::new();
    for key in keys {
        let (alert, counters) = key.split_once(" pkts ").expect("alert key has counters");
        let (group, _severity) = alert.rsplit_once(' ').expect("alert key has a severity");
        flows.push(format!("{group} pkts {counters}"));
        severities.push(alert.to_string());
    }
    flows.sort();
    severities.sort();
    (flows, severities)
}

/// The first port's packets (or bytes: `field`) dropped by the managed-subnet prefilter in the
/// driver, over every reason (0 without it).
fn driver_prefiltered(stats: &Value, field: &str) -> u64 {
    stats["ports"][0][field]
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

/// What `portolan replay` of the sample with the sample inventory finds (with the software
/// prefilter of `managed`, if any): the summary and the alert keys.
fn replay_reference(dir: &Path, managed: &[&str]) -> (Value, Vec<String>) {
    let summary = dir.join("replay-summary.json");
    let eve = dir.join("replay-alerts.json");
    let (capture, inventory) = (sample_capture(), sample_inventory());
    let mut args = vec![
        "replay",
        s(&capture),
        "--inventory",
        s(&inventory),
        "--summary",
        s(&summary),
        "--eve",
        s(&eve),
    ];
    for net in managed {
        args.extend(["--managed-subnet", net]);
    }
    assert_ok(&portolan(&args));
    let mut alerts: Vec<String> = json_lines(&eve)
        .iter()
        .map(|a| {
            let p = &a["portolan"];
            alert_key(
                [
                    &p["device"]["udid"],
                    &p["app"]["bundle_id"],
                    &a["app_proto"],
                    &a["dest_ip"],
                    &a["dest_port"],
                    &a["alert"]["signature_id"],
                    &p["severity"],
                ],
                &a["flow"],
            )
        })
        .collect();
    alerts.sort();
    (read_json(&summary), alerts)
}

/// The `hwcheck --json` report of `config`.
fn hwcheck(config: &Path) -> Value {
    let out = portolan(&["hwcheck", "--config", s(config), "--json"]);
    assert_ok(&out);
    serde_json::from_slice(&out.stdout).expect("hwcheck --json")
}

/// Runs the daemon on `vdev` (the `port` end of a fresh veth pair), replays the sample into the
/// `feed` end, and checks counts, flows and alerts against `portolan replay`; with `managed`
/// subnets, with the managed-subnet prefilter on both sides (the driver's on an AF_XDP port).
async fn live_run_matches_replay(
    vdev_of: impl Fn(&str) -> String,
    driver: &str,
    bypass_placement: &str,
    port: &'static str,
    feed: &'static str,
    managed: &[&str],
) {
    if let Some(why) = cannot_run() {
        println!("skipped: {why}");
        return;
    }
    let _one = ONE_DAEMON.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (reference, reference_alerts) = replay_reference(dir.path(), managed);
    let veth = VethPair::create(port, feed);
    let data = dir.path().join("data");
    let config = live_config(dir.path(), &vdev_of(veth.port), &data, managed);

    // What the port can do, before the daemon holds it.
    let report = hwcheck(&config);
    let probed = &report["probed"][0];
    assert_eq!(probed["capabilities"]["driver_name"], driver, "{report}");
    let placements: BTreeMap<String, String> = report["plan"]["ports"][0]["offloads"]
        .as_array()
        .expect("offloads")
        .iter()
        .map(|o| {
            (
                o["offload"].as_str().unwrap_or_default().to_string(),
                o["placement"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        placements.get("bypass_judged_flows").map(String::as_str),
        Some(bypass_placement),
        "{report}"
    );
    if !managed.is_empty() {
        assert_eq!(
            placements
                .get("prefilter_managed_subnets")
                .map(String::as_str),
            Some(bypass_placement),
            "{report}"
        );
    }

    let d = Daemon::start(&config, &data);
    d.wait_for_log("dataplane started").await;
    let sent = tcpreplay(veth.feed, &sample_capture());
    assert_eq!(sent, reference["packets"].as_u64().unwrap(), "{reference}");
    let stats = d.wait_until_judged(sent).await;

    // Every frame sent reached the worker or was dropped by the driver for a judged flow (and
    // counted there); none was missed.
    let port_stats = &stats["ports"][0];
    let worker = &stats["workers"][0];
    let bypassed = worker["driver_bypassed_packets"].as_u64().unwrap_or(0);
    let bypassed_bytes = worker["driver_bypassed_bytes"].as_u64().unwrap_or(0);
    let seen = worker["packets"].as_u64().unwrap_or(0);
    let prefiltered = driver_prefiltered(&stats, "driver_prefiltered_packets");
    let prefiltered_bytes = driver_prefiltered(&stats, "driver_prefiltered_bytes");
    assert_eq!(seen + bypassed + prefiltered, sent, "{stats}");
    assert_eq!(port_stats["rx_packets"].as_u64(), Some(seen), "{stats}");
    assert_eq!(port_stats["rx_missed"].as_u64(), Some(0), "{stats}");
    assert_eq!(port_stats["rx_nombuf"].as_u64(), Some(0), "{stats}");
    // The kernel's ring-full drops on the port's sockets are read (the sockets were found:
    // none found is no counter) and are none at this rate.
    assert_eq!(port_stats["rx_kernel_dropped"].as_u64(), Some(0), "{stats}");
    assert_eq!(
        worker["bytes"]
            .as_u64()
            .map(|b| b + bypassed_bytes + prefiltered_bytes),
        reference["bytes"].as_u64(),
        "{stats}"
    );
    // What the replay's software prefilter skipped, the driver dropped (or, for what it leaves
    // to the worker, the worker's prefilter skipped): none of it made a flow.
    assert_eq!(
        worker["prefiltered"].as_u64().map(|p| p + prefiltered),
        reference["prefiltered"].as_u64(),
        "{stats}"
    );
    if !managed.is_empty() && bypass_placement == "driver" {
        assert!(prefiltered > 0, "the driver prefiltered: {stats}");
        println!(
            "{driver}: {sent} packets sent, {prefiltered} dropped in the driver outside {managed:?} ({}), {} skipped by the worker's prefilter",
            stats["ports"][0]["driver_prefiltered_packets"], worker["prefiltered"]
        );
    }
    if bypass_placement == "driver" {
        assert!(
            worker["driver_bypass_flows"].as_u64().unwrap_or(0) > 0,
            "{stats}"
        );
        assert!(seen < sent, "the driver dropped bypassed packets: {stats}");
        println!(
            "{driver}: {sent} packets sent, {seen} reached the worker, {bypassed} dropped in the driver for {} judged flows",
            worker["driver_bypass_flows"]
        );
    } else {
        assert_eq!(bypassed, 0, "{stats}");
    }
    assert_eq!(worker["ring_drops"].as_u64(), Some(0), "{stats}");
    // The same flows, with the same protocols.
    assert_eq!(worker["flows_created"], reference["flows"], "{stats}");
    assert_eq!(worker["protocols"], reference["app_protos"], "{stats}");

    // The same alerts.
    let alerts = d.get("/api/v1/alerts?limit=1000").await;
    let mut live_alerts: Vec<String> = alerts["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| {
            alert_key(
                [
                    &a["device_udid"],
                    &a["bundle_id"],
                    &a["app_proto"],
                    &a["dest_ip"],
                    &a["dest_port"],
                    &a["signature_id"],
                    &a["severity"],
                ],
                &a["evidence"]["flow"],
            )
        })
        .collect();
    live_alerts.sort();
    assert!(!reference_alerts.is_empty());
    assert_eq!(order_free(&live_alerts), order_free(&reference_alerts));
    d.stop();
    drop(veth);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn af_packet_port_on_a_veth_judges_what_tcpreplay_sends_as_replay_does() {
    live_run_matches_replay(
        |iface| format!("net_af_packet0,iface={iface}"),
        "net_af_packet",
        "software_fallback",
        "pt18a",
        "pt18b",
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn af_xdp_port_on_a_veth_bypasses_judged_flows_in_the_driver_and_judges_as_replay_does() {
    live_run_matches_replay(
        |iface| format!("net_af_xdp0,iface={iface},start_queue=0,queue_count=1"),
        "net_af_xdp",
        "driver",
        "pt18c",
        "pt18d",
        &[],
    )
    .await;
}

/// How long the open TLS session of [`a_tls_session_held_open_is_alerted_within_2_s_and_its_finding_grows`]
/// lasts: the 5 minutes unless `PORTOLAN_LIVE_SESSION_S` says otherwise (at least 30 s).
fn live_session_s() -> u64 {
    std::env::var("PORTOLAN_LIVE_SESSION_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
        .max(30)
}

/// Interim updates of the open session's run (seconds).
const LIVE_INTERIM_S: u64 = 10;
/// When the ClientHello leaves `tcpreplay`, after it starts (the handshake is sent at 0).
const HELLO_AT_US: u64 = 1_000_000;

/// A TLS session from the sample inventory's Sales iPhone 01 (10.20.1.10) to 203.0.113.77 on
/// 50443, timed as it happens: the three-way handshake at 0, the ClientHello (SNI
/// `c2.example.net`) at 1 s, the server's hello 40 ms later, then one application-data record
/// each way every second for `session_s` seconds, then FIN both ways. Sequence numbers run on,
/// so the flow is one TCP session; capture timestamps start at 0 (tcpreplay keeps the gaps).
fn open_session_capture(path: &Path, session_s: u64) {
    use portolan_testkit::{
        tls_client_hello_record, tls_server_hello_record, ClientHelloSpec, Frame,
    };
    let c = (std::net::Ipv4Addr::new(10, 20, 1, 10), 51_234u16);
    let srv = (std::net::Ipv4Addr::new(203, 0, 113, 77), 50_443u16);
    let (mut cseq, mut sseq) = (1_000u32, 50_000u32);
    let mut frames: Vec<(u64, Vec<u8>)> = Vec::new();
    let to_server = |t: u64, flags: u8, payload: &[u8], cseq: &mut u32, sseq: u32| {
        let f = Frame::tcp(c, srv, flags)
            .seq(*cseq)
            .ack(sseq)
            .build(payload);
        *cseq = cseq.wrapping_add(payload.len() as u32 + u32::from(flags & 0x03 != 0));
        (t, f)
    };
    let to_client = |t: u64, flags: u8, payload: &[u8], sseq: &mut u32, cseq: u32| {
        let f = Frame::tcp(srv, c, flags)
            .seq(*sseq)
            .ack(cseq)
            .build(payload);
        *sseq = sseq.wrapping_add(payload.len() as u32 + u32::from(flags & 0x03 != 0));
        (t, f)
    };
    frames.push(to_server(0, 0x02, &[], &mut cseq, 0));
    frames.push(to_client(500, 0x12, &[], &mut sseq, cseq));
    frames.push(to_server(1_000, 0x10, &[], &mut cseq, sseq));
    let hello = tls_client_hello_record(&ClientHelloSpec::chrome_like("c2.example.net"));
    frames.push(to_server(HELLO_AT_US, 0x18, &hello, &mut cseq, sseq));
    let server_hello = tls_server_hello_record(0x1301, Some(0x0304));
    frames.push(to_client(
        HELLO_AT_US + 40_000,
        0x18,
        &server_hello,
        &mut sseq,
        cseq,
    ));
    let record: Vec<u8> = [&[0x17u8, 0x03, 0x03, 0x00, 0x30][..], &[0x5a; 48][..]].concat();
    for k in 1..session_s {
        let t = HELLO_AT_US + k * 1_000_000;
        frames.push(to_server(t, 0x18, &record, &mut cseq, sseq));
        frames.push(to_client(t + 30_000, 0x18, &record, &mut sseq, cseq));
    }
    let end = HELLO_AT_US + session_s * 1_000_000;
    frames.push(to_server(end, 0x11, &[], &mut cseq, sseq));
    frames.push(to_client(end + 500, 0x11, &[], &mut sseq, cseq));
    frames.push(to_server(end + 1_000, 0x10, &[], &mut cseq, sseq));
    common::write_pcap(path, frames.iter().map(|(t, f)| (*t, f.as_slice())));
}

/// The live test: a TLS session on a non-standard port held open for 5 minutes
/// (`tcpreplay` keeps the capture's timing) is alerted through `/api/v1/alerts` within 2 s of
/// its ClientHello, long before it ends, and its finding (`/api/v1/findings/{id}`) shows the
/// session's duration growing while it lasts (interim updates every 10 s); at the end the
/// finding still counts one session with the whole duration, and the flow raised one alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_session_held_open_is_alerted_within_2_s_and_its_finding_grows() {
    if let Some(why) = cannot_run() {
        println!("skipped: {why}");
        return;
    }
    let _one = ONE_DAEMON.lock().await;
    let session_s = live_session_s();
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("open-session.pcap");
    open_session_capture(&capture, session_s);
    let veth = VethPair::create("pt17a", "pt17b");
    let data = dir.path().join("data");
    let config = live_config(
        dir.path(),
        &format!("net_af_packet0,iface={}", veth.port),
        &data,
        &[],
    );
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(text.contains("interim_interval_s = 60"), "{text}");
    // Heartbeats every second: the flow outlives the short idle timeouts of these runs.
    std::fs::write(
        &config,
        text.replace(
            "interim_interval_s = 60",
            &format!("interim_interval_s = {LIVE_INTERIM_S}"),
        ),
    )
    .expect("write config");

    let d = Daemon::start(&config, &data);
    d.wait_for_log("dataplane started").await;
    let started = Instant::now();
    let replay = Command::new("tcpreplay")
        .args(["-i", veth.feed, s(&capture)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tcpreplay is not installed: run scripts/setup");
    // tcpreplay sends the ClientHello 1 s after its first packet, which it sends no earlier
    // than its start: measured from here, the delay can only be overstated.
    let hello_at = started + Duration::from_micros(HELLO_AT_US);
    let alerts_of = |v: &Value| -> Vec<Value> {
        v["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a["dest_port"] == 50443)
            .collect()
    };
    let (alert, alerted_at) = loop {
        let found = alerts_of(&d.get("/api/v1/alerts?limit=100").await);
        if let Some(a) = found.into_iter().next() {
            break (a, Instant::now());
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no alert for the 50443 session within 20 s:\n{}",
            d.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let delay = alerted_at.saturating_duration_since(hello_at);
    println!(
        "alert {} ({} {}) {:.3} s after the ClientHello",
        alert["id"],
        alert["severity"],
        alert["app_proto"],
        delay.as_secs_f64()
    );
    assert!(
        delay <= Duration::from_secs(2),
        "alerted {delay:?} after the ClientHello"
    );
    assert_eq!(alert["app_proto"], "tls");
    assert!(alert["device_udid"].is_string(), "{alert:#}");
    assert_eq!(
        alert["evidence"]["flow"]["sni"], "c2.example.net",
        "{alert:#}"
    );

    // While the session lasts, its finding's duration grows with the interim updates.
    let finding_path = format!("/api/v1/findings/{}", alert["finding_id"]);
    let mut durations: Vec<f64> = Vec::new();
    let session_end = hello_at + Duration::from_secs(session_s);
    while Instant::now() + Duration::from_secs(LIVE_INTERIM_S) < session_end {
        tokio::time::sleep(Duration::from_secs(LIVE_INTERIM_S)).await;
        let f = d.get(&finding_path).await;
        assert_eq!(f["sessions"], 1, "one session while open: {f:#}");
        let longest = f["longest_session_s"].as_f64().expect("longest_session_s");
        println!(
            "t+{:.0} s: finding {} longest session {longest:.1} s, score {}, {}",
            started.elapsed().as_secs_f64(),
            f["id"],
            f["score"],
            f["severity"]
        );
        durations.push(longest);
    }
    assert!(
        durations.len() >= 2,
        "the session was too short to watch: {durations:?}"
    );
    let distinct: Vec<&f64> = durations
        .windows(2)
        .filter(|w| w[1] > w[0])
        .map(|w| &w[1])
        .collect();
    assert!(
        distinct.len() + 1 >= durations.len() - 1,
        "the duration grows with each interim update: {durations:?}"
    );
    let last = *durations.last().unwrap_or(&0.0);
    assert!(
        last >= (session_s - 3 * LIVE_INTERIM_S) as f64,
        "the latest duration while open ({last} s) follows the session ({session_s} s): {durations:?}"
    );

    // The end: the final record completes the same session; one alert for the flow.
    let out = tokio::task::spawn_blocking(move || replay.wait_with_output())
        .await
        .expect("join")
        .expect("tcpreplay");
    assert!(
        out.status.success(),
        "tcpreplay: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let f = loop {
        let f = d.get(&finding_path).await;
        if f["longest_session_s"].as_f64().unwrap_or(0.0) >= session_s as f64 {
            break f;
        }
        assert!(Instant::now() < deadline, "final record not judged: {f:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(f["sessions"], 1, "{f:#}");
    let alerts = alerts_of(&d.get("/api/v1/alerts?limit=100").await);
    assert_eq!(alerts.len(), 1, "one alert for the flow: {alerts:#?}");
    d.stop();
    drop(veth);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn af_xdp_port_on_a_veth_prefilters_unmanaged_addresses_in_the_driver_as_replay_does() {
    // Two of the sample's eight IPv4 devices and one IPv6 device's /64: the rest of the
    // traffic is outside every managed subnet.
    live_run_matches_replay(
        |iface| format!("net_af_xdp0,iface={iface},start_queue=0,queue_count=1"),
        "net_af_xdp",
        "driver",
        "pt18e",
        "pt18f",
        &["10.20.1.10/31", "2001:db8:20:1::/64"],
    )
    .await;
}
