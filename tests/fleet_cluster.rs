//! The fleet on a 3-node JetStream cluster on loopback (R3 stream, consumer and KV buckets):
//! `portolan central` and two appliances replaying different captures (the sample split in two
//! by `portolan shard`), through three faults:
//!
//! 1. the whole cluster stopped (SIGKILL on every node) for 30 s while both appliances judge
//!    their captures: their outboxes grow;
//! 2. meanwhile appliance `edge-2` is killed with SIGKILL and started again (on an empty
//!    capture: it has judged its own already, and only its outbox is left to send);
//! 3. the cluster back, the stream's leader is killed with SIGKILL in the middle of the drain,
//!    and started again later.
//!
//! Afterwards every outbox message of both appliances is in the stream exactly once (message
//! ids compared), the central applied each once (its per-appliance counts, no gap), holds every
//! alert of both once, and its findings (keys and sessions) equal those of one appliance that
//! replays the whole sample. Figures printed: the backlog, how long the cluster took to store
//! again after the outage, the publish stall when the leader died, and the drain times (small
//! here: the sample is 8 devices; throughput is measured by `fleet/tests/cluster.rs`).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::{self, Running};
use portolan_control::Store;
use portolan_fleet::local_server::LocalCluster;
use serde_json::Value;

const OUTAGE: Duration = Duration::from_secs(30);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn servers(urls: &[String]) -> String {
    let quoted: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The example appliance configuration replaying `capture`, in the fleet on `urls`.
fn appliance_config(urls: &[String], appliance: &str, site: &str, capture: &Path) -> String {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/egress-sample.pcap");
    let text = daemon::example_config_with_inventory().replace(
        &sample.display().to_string(),
        &capture.display().to_string(),
    );
    format!(
        "{text}\n[fleet]\nservers = {}\nsite = {site:?}\nappliance = {appliance:?}\nreplicas = 3\nack_timeout_ms = 1000\nconfig_catchup_ms = 1000\n",
        servers(urls)
    )
}

fn get(p: &Running, client: &reqwest::blocking::Client, token: &str, path: &str) -> Value {
    let r = client.get(p.at(path)).bearer_auth(token).send().unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().unwrap()
}

/// (stream messages, stream leader) asked of any live node.
fn stream_state(urls: &[String]) -> (u64, Option<String>) {
    rt().block_on(async {
        for url in urls {
            let Ok(Ok(client)) = tokio::time::timeout(
                Duration::from_secs(1),
                async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_millis(500))
                    .connect(url),
            )
            .await
            else {
                continue;
            };
            let js = async_nats::jetstream::new(client);
            if let Ok(Ok(mut s)) =
                tokio::time::timeout(Duration::from_secs(2), js.get_stream("PORTOLAN")).await
            {
                if let Ok(Ok(info)) = tokio::time::timeout(Duration::from_secs(2), s.info()).await {
                    let leader = info.cluster.as_ref().and_then(|c| c.leader.clone());
                    return (info.state.messages, leader);
                }
            }
        }
        (0, None)
    })
}

/// Every message id in the stream.
fn stream_ids(url: &str) -> Vec<String> {
    rt().block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream("PORTOLAN").await.unwrap();
        let state = stream.info().await.unwrap().state.clone();
        let mut out = Vec::new();
        for seq in state.first_sequence..=state.last_sequence {
            let m = stream.get_raw_message(seq).await.unwrap();
            out.push(
                m.headers
                    .get("Nats-Msg-Id")
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            );
        }
        out
    })
}

fn findings(db: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = Store::open(db)
        .unwrap()
        .findings()
        .unwrap()
        .into_iter()
        .map(|f| (f.key.as_text(), f.sessions))
        .collect();
    v.sort();
    v
}

fn outbox(db: &Path) -> (i64, u64) {
    let s = Store::open(db).unwrap().outbox_stats().unwrap();
    (s.newest_seq, s.rows)
}

/// Splits the sample capture (classic pcap, Ethernet) in two by device: the sample's device
/// `k` is 10.20.1.(9+k) and 2001:db8:20:k::/64 (see `samples/inventory.json`); odd devices go to
/// the first capture, even ones to the second.
fn split_by_device(pcap: &[u8]) -> [Vec<u8>; 2] {
    assert_eq!(
        &pcap[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian classic pcap"
    );
    let mut out = [pcap[..24].to_vec(), pcap[..24].to_vec()];
    let mut off = 24;
    while off + 16 <= pcap.len() {
        let incl = u32::from_le_bytes(pcap[off + 8..off + 12].try_into().unwrap()) as usize;
        let rec = &pcap[off..off + 16 + incl];
        let frame = &rec[16..];
        let device = match u16::from_be_bytes([frame[12], frame[13]]) {
            0x0800 => [&frame[26..30], &frame[30..34]]
                .into_iter()
                .find(|a| a[..3] == [10, 20, 1])
                .map(|a| u16::from(a[3]).saturating_sub(9)),
            0x86dd => [&frame[22..38], &frame[38..54]]
                .into_iter()
                .find(|a| a[..6] == [0x20, 0x01, 0x0d, 0xb8, 0x00, 0x20])
                .map(|a| u16::from_be_bytes([a[6], a[7]])),
            _ => None,
        };
        out[usize::from(device.unwrap_or(1) % 2 == 0)].extend_from_slice(rec);
        off += 16 + incl;
    }
    out
}

fn start(sub: &str, config: &Path, data: &Path) -> Running {
    Running::spawn(daemon::command(sub, config, Some(data)))
}

#[test]
fn the_fleet_loses_nothing_and_copies_nothing_through_a_cluster_outage_a_leader_kill_and_an_appliance_kill(
) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Two different captures: the sample's devices split between two sites (each device's
    // DNS with its other flows, as at a real site).
    let sample_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/egress-sample.pcap");
    std::fs::create_dir_all(root.join("captures")).unwrap();
    let shards = split_by_device(&std::fs::read(&sample_path).unwrap());
    for (i, bytes) in shards.iter().enumerate() {
        std::fs::write(root.join(format!("captures/site{i}.pcap")), bytes).unwrap();
    }
    let shard = |i: usize| root.join(format!("captures/site{i}.pcap"));
    // An empty capture (the sample's file header only) for the restarted appliance.
    let sample =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/egress-sample.pcap"))
            .unwrap();
    let empty = root.join("captures/empty.pcap");
    std::fs::write(&empty, &sample[..24]).unwrap();

    // The reference: one appliance (no fleet) replaying the whole sample.
    let reference_config = root.join("reference.toml");
    std::fs::write(&reference_config, daemon::example_config_with_inventory()).unwrap();
    let reference_data = root.join("reference");
    let r = start("run", &reference_config, &reference_data);
    r.wait_for_log_blocking("dataplane finished", 90);
    r.stop();
    let reference = findings(&reference_data.join("portolan.db"));
    assert!(!reference.is_empty());

    let mut cluster = LocalCluster::start(&root.join("nats"), 3, &[]).unwrap();
    let urls = cluster.urls();
    let central_config = root.join("central.toml");
    let central_data = root.join("central");
    std::fs::write(
        &central_config,
        format!(
            "data_dir = \"central\"\n[central]\nservers = {}\nreplicas = 3\n",
            servers(&urls)
        ),
    )
    .unwrap();
    let token = daemon::create_token(&central_config, Some(&central_data), "admin", "cluster");
    let central = start("central", &central_config, &central_data);
    central.wait_for_log_blocking("central: consuming", 90);
    let client = daemon::api_client_blocking(&central_data);

    // 1. The whole cluster stops; both appliances judge their captures meanwhile.
    let t_outage = Instant::now();
    cluster.kill_all();
    let mut appliances = Vec::new();
    for (i, (name, site)) in [("edge-1", "paris"), ("edge-2", "lyon")]
        .into_iter()
        .enumerate()
    {
        let config = root.join(format!("{name}.toml"));
        std::fs::write(&config, appliance_config(&urls, name, site, &shard(i))).unwrap();
        let data = root.join(name);
        let p = start("run", &config, &data);
        appliances.push((name, config, data, p));
    }
    for (_, _, _, p) in &appliances {
        p.wait_for_log_blocking("dataplane finished", 90);
    }
    // 2. edge-2 killed with SIGKILL during the outage and started again on an empty capture.
    let (name2, config2, data2, p2) = appliances.pop().unwrap();
    p2.kill9();
    let backlog2 = outbox(&data2.join("portolan.db"));
    std::fs::write(&config2, appliance_config(&urls, name2, "lyon", &empty)).unwrap();
    let p2 = start("run", &config2, &data2);
    p2.wait_for_log_blocking("dataplane finished", 90);
    appliances.push((name2, config2, data2, p2));
    let backlog1 = outbox(&appliances[0].2.join("portolan.db"));
    assert!(
        backlog1.1 > 0 && backlog2.1 > 0,
        "backlogs {backlog1:?} {backlog2:?}"
    );
    let backlog = backlog1.1 + backlog2.1;
    std::thread::sleep(OUTAGE.saturating_sub(t_outage.elapsed()));

    // 3. The cluster back; its stream leader killed in the middle of the drain.
    let t_back = Instant::now();
    cluster.restart_stopped().unwrap();
    let queued = (backlog1.0 + backlog2.0) as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (leader, t_kill, at_kill) = loop {
        let (messages, leader) = stream_state(&urls);
        if let Some(l) = leader.filter(|_| messages > 0) {
            break (l, Instant::now(), messages);
        }
        assert!(Instant::now() < deadline, "the drain never started");
        std::thread::sleep(Duration::from_millis(5));
    };
    cluster.node(&leader).unwrap().kill();
    let urls_live: Vec<String> = cluster
        .nodes
        .iter_mut()
        .filter_map(|n| n.is_running().then(|| n.url()))
        .collect();
    // The stall: from the kill until the stream grows again.
    let mut stall = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (messages, _) = stream_state(&urls_live);
        if messages > at_kill && stall.is_none() {
            stall = Some(t_kill.elapsed());
        }
        if messages >= queued {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stream at {messages} of {queued}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let t_stream = t_back.elapsed();
    cluster.restart_stopped().unwrap();
    // The appliances stop (their last learning flush is sent at shutdown), then the central
    // catches up with everything they queued.
    for (name, _, data, p) in appliances {
        p.stop();
        assert_eq!(
            outbox(&data.join("portolan.db")).1,
            0,
            "{name} sent everything"
        );
    }
    let newest1 = outbox(&root.join("edge-1/portolan.db")).0;
    let newest2 = outbox(&root.join("edge-2/portolan.db")).0;
    let total = (newest1 + newest2) as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = get(&central, &client, &token, "/api/v1/fleet/appliances");
        let list = body["appliances"].as_array().cloned().unwrap_or_default();
        let seq_of = |n: &str| {
            list.iter()
                .find(|a| a["appliance"] == n)
                .and_then(|a| a["last_seq"].as_i64())
        };
        if seq_of("edge-1") == Some(newest1) && seq_of("edge-2") == Some(newest2) {
            break;
        }
        assert!(Instant::now() < deadline, "central not caught up: {body}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let t_central = t_back.elapsed();
    central.stop();

    // Exactly once, end to end.
    let ids = stream_ids(&cluster.urls()[0]);
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no message id twice in the stream");
    let expected: BTreeSet<String> = (1..=newest1)
        .map(|s| format!("edge-1:{s}"))
        .chain((1..=newest2).map(|s| format!("edge-2:{s}")))
        .collect();
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), expected);
    let central_db = central_data.join("central.db");
    let cs = Store::open(&central_db).unwrap();
    for a in cs.fleet_appliances().unwrap() {
        let newest = if a.appliance == "edge-1" {
            newest1
        } else {
            newest2
        };
        assert_eq!(
            (a.last_seq, a.messages, a.gaps),
            (newest, newest as u64, 0),
            "{}: every seq applied once",
            a.appliance
        );
    }
    let alerts = |db: &Path| Store::open(db).unwrap().alerts().unwrap().len();
    let (a1, a2) = (
        alerts(&root.join("edge-1/portolan.db")),
        alerts(&root.join("edge-2/portolan.db")),
    );
    let central_alerts = cs.alerts().unwrap().len();
    assert_eq!(central_alerts, a1 + a2, "every alert of both once");
    assert_eq!(
        findings(&central_db),
        reference,
        "the central's view is the whole sample's"
    );

    let stall = stall.unwrap_or_default();
    println!(
        "cluster down {:.0} s; backlog {backlog} rows; after the restart: first message stored {:.2} s (cluster recovery), leader {leader} killed then (after {at_kill} messages): publish stall {:.2} s; stream complete {:.2} s, central caught up with both appliances (their shutdown flush included) {:.2} s; {total} messages, {central_alerts} alerts, once each",
        OUTAGE.as_secs_f64(),
        (t_kill - t_back).as_secs_f64(),
        stall.as_secs_f64(),
        t_stream.as_secs_f64(),
        t_central.as_secs_f64(),
    );
}
