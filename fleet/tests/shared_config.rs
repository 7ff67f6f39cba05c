//! The fleet's shared configuration on a real `nats-server` on loopback: an exception written
//! centrally (compare-and-swap on the KV revision) reaches two appliances' verdicts within 2 s
//! (measured), is audited there with the bucket revision, survives an appliance restart, and an
//! appliance that was down when it changed catches up at start, before it judges anything; a
//! write based on a stale revision is refused naming the key and both revisions, and nothing is
//! written.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use portolan_control::audit::AuditAction;
use portolan_control::roles::{ExceptionDestination, ExceptionKind, ExceptionRule};
use portolan_control::shared_config::{ConfigBucket, SharedConfigError, SharedValue};
use portolan_control::timestamp::parse_timestamp;
use portolan_control::{
    ControlConfig, ControlPlane, FlowObservation, RegisteredPortMap, RoleSet, Store,
};
use portolan_fleet::local_server::LocalServer;
use portolan_fleet::shared_config::{ConfigWatcher, SharedConfig};

fn at(text: &str) -> i64 {
    parse_timestamp(text).unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../control/tests/fixtures")
        .join(name)
}

/// One appliance's control plane (its own store) with its watcher.
struct Appliance {
    cp: ControlPlane,
    watcher: ConfigWatcher,
    probes: i64,
}

impl Appliance {
    fn start(dir: &Path, url: &str, name: &str, import: bool) -> Appliance {
        std::fs::create_dir_all(dir).unwrap();
        let store = Store::open(&dir.join("portolan.db")).unwrap();
        let cp = ControlPlane::new(
            store,
            RoleSet::shipped_defaults().unwrap(),
            ControlConfig::default(),
        )
        .unwrap()
        .with_port_registry(
            RegisteredPortMap::default()
                .with("tls", &[443])
                .with("http", &[80]),
        );
        if import {
            cp.operator
                .import_inventory(&[fixture("jamf_mobile_devices_detail.json")], "test")
                .unwrap();
        }
        let mut watcher =
            ConfigWatcher::spawn(&[url.to_string()], 1, name, cp.operator.clone(), || {}).unwrap();
        assert!(
            watcher.wait_caught_up(Duration::from_secs(10)),
            "{name}: shared configuration read at start"
        );
        Appliance {
            cp,
            watcher,
            probes: 0,
        }
    }

    /// Judges one more session of the iPad's developer-tool flow; the id of the exception that
    /// covered it.
    fn verdict(&mut self) -> Option<String> {
        self.probes += 1;
        let obs = FlowObservation {
            flow_id: self.probes as u64,
            community_id: None,
            start_us: at("2024-05-01T09:00:00Z") + self.probes * 60_000_000,
            end_us: at("2024-05-01T09:00:01Z") + self.probes * 60_000_000,
            src_ip: "10.10.0.22".parse().unwrap(),
            src_port: 52_000,
            dest_ip: "10.30.0.7".parse().unwrap(),
            dest_port: 9090,
            transport: "TCP".into(),
            app_proto: "http".into(),
            indicators: Vec::new(),
            sni: None,
            http_host: Some("builds.dev.example.com:9090".into()),
            quic_sni: None,
            tls: None,
            http: None,
            pkts_toserver: 12,
            pkts_toclient: 10,
            bytes_toserver: 1_800,
            bytes_toclient: 5_400,
            port_mismatch: None,
            starttls: false,
            proxy: None,
        };
        self.cp.ingest.ingest_flow(&obs).unwrap();
        let start = obs.start_us;
        self.cp
            .ingest
            .findings()
            .into_iter()
            .filter_map(|f| f.latest.as_ref())
            .find(|l| l.order.start_us == start)
            .and_then(|l| l.exception.as_ref().map(|e| e.id.clone()))
    }

    fn exception(&self, id: &str) -> Option<ExceptionRule> {
        let roles = self.cp.operator.roles().unwrap();
        roles.exceptions().iter().find(|e| e.id == id).cloned()
    }

    fn fleet_audit(&self) -> Vec<(AuditAction, String, String)> {
        self.cp
            .operator
            .audit_log()
            .unwrap()
            .into_iter()
            .filter(|e| e.actor.starts_with("fleet"))
            .map(|e| (e.action, e.actor, e.reason))
            .collect()
    }

    fn stop(self) {
        self.watcher.stop();
        drop(self.cp);
    }
}

fn rule(expires: &str) -> ExceptionRule {
    ExceptionRule {
        id: "ipad-devserver".into(),
        kind: ExceptionKind::DeveloperTooling,
        devices: vec!["DMPX77ZQ1F".into()],
        destinations: vec![ExceptionDestination::try_from("dev.example.com".to_string()).unwrap()],
        ports: vec![9090],
        app_protos: vec!["http".into()],
        reason: "iPad used for app QA against the build server".into(),
        owner: "mobile-dev@example.com".into(),
        expires_us: at(expires),
    }
}

fn value(rule: &ExceptionRule, reason: &str) -> SharedValue {
    SharedValue {
        schema: 1,
        actor: "alice".into(),
        reason: reason.into(),
        ts_us: 0,
        data: serde_json::to_value(rule).unwrap(),
    }
}

#[test]
fn an_exception_approved_centrally_reaches_every_appliance_live_and_stale_edits_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let nats = LocalServer::start(&dir.path().join("nats")).unwrap();
    let url = nats.url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let central = rt
        .block_on(SharedConfig::connect(
            std::slice::from_ref(&url),
            1,
            "test central",
        ))
        .unwrap();

    let mut a = Appliance::start(&dir.path().join("a"), &url, "edge-1", true);
    let mut b = Appliance::start(&dir.path().join("b"), &url, "edge-2", true);
    assert_eq!((a.verdict(), b.verdict()), (None, None), "no exception yet");

    // Approved centrally: in both appliances' verdicts within 2 s.
    let v1 = value(&rule("2030-01-01T00:00:00Z"), "QA sprint 18");
    let t0 = Instant::now();
    let r1 = rt
        .block_on(central.put(ConfigBucket::Exceptions, "ipad-devserver", &v1, 0))
        .unwrap();
    let (mut seen_a, mut seen_b) = (None, None);
    while seen_a.is_none() || seen_b.is_none() {
        if seen_a.is_none() && a.verdict().as_deref() == Some("ipad-devserver") {
            seen_a = Some(t0.elapsed());
        }
        if seen_b.is_none() && b.verdict().as_deref() == Some("ipad-devserver") {
            seen_b = Some(t0.elapsed());
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "not applied");
        std::thread::sleep(Duration::from_millis(5));
    }
    let latency = seen_a.max(seen_b).unwrap();
    println!(
        "exception in both appliances' verdicts {:.1} ms after the central's write (edge-1 {:?}, edge-2 {:?})",
        latency.as_secs_f64() * 1e3,
        seen_a.unwrap(),
        seen_b.unwrap()
    );
    assert!(latency < Duration::from_secs(2), "{latency:?}");
    // Audited with the bucket revision and the central's actor and reason.
    let audit = a.fleet_audit();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].0, AuditAction::ExceptionAdded);
    assert_eq!(audit[0].1, "fleet:alice");
    assert!(
        audit[0]
            .2
            .contains(&format!("fleet exceptions/ipad-devserver revision {r1}")),
        "{audit:?}"
    );

    // A second edit based on the old state is refused, nothing written.
    let v2 = value(&rule("2031-01-01T00:00:00Z"), "extended");
    let stale = rt.block_on(central.put(ConfigBucket::Exceptions, "ipad-devserver", &v2, 0));
    assert_eq!(
        stale,
        Err(SharedConfigError::Conflict {
            bucket: "exceptions",
            key: "ipad-devserver".into(),
            expected: 0,
            current: r1,
        })
    );
    let msg = stale.unwrap_err().to_string();
    assert!(
        msg.contains("ipad-devserver")
            && msg.contains("revision 0")
            && msg.contains(&format!("revision {r1}")),
        "{msg}"
    );
    let r2 = rt
        .block_on(central.put(ConfigBucket::Exceptions, "ipad-devserver", &v2, r1))
        .unwrap();
    assert!(r2 > r1);
    let v3 = value(&rule("2032-01-01T00:00:00Z"), "based on r1 again");
    let stale = rt
        .block_on(central.put(ConfigBucket::Exceptions, "ipad-devserver", &v3, r1))
        .unwrap_err();
    assert!(
        matches!(stale, SharedConfigError::Conflict { expected, current, .. } if expected == r1 && current == r2),
        "{stale:?}"
    );
    let listed = rt.block_on(central.list(ConfigBucket::Exceptions)).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].revision, listed[0].value.reason.as_str()),
        (r2, "extended")
    );
    let wait_for = |app: &Appliance, expires: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while app.exception("ipad-devserver").map(|e| e.expires_us) != Some(at(expires)) {
            assert!(Instant::now() < deadline, "{expires} not applied");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for(&a, "2031-01-01T00:00:00Z");
    wait_for(&b, "2031-01-01T00:00:00Z");

    // Edge-1 stops; a change made meanwhile is in force when it starts again, before it judges.
    let probes = a.probes;
    a.stop();
    let v4 = value(&rule("2033-01-01T00:00:00Z"), "while edge-1 was down");
    let r4 = rt
        .block_on(central.put(ConfigBucket::Exceptions, "ipad-devserver", &v4, r2))
        .unwrap();
    let mut a = Appliance::start(&dir.path().join("a"), &url, "edge-1", false);
    a.probes = probes;
    assert_eq!(
        a.exception("ipad-devserver").map(|e| e.expires_us),
        Some(at("2033-01-01T00:00:00Z")),
        "caught up at start"
    );
    assert_eq!(
        a.verdict().as_deref(),
        Some("ipad-devserver"),
        "survives the restart"
    );
    let audit = a.fleet_audit();
    assert!(
        audit
            .last()
            .is_some_and(|e| e.2.contains(&format!("revision {r4}"))),
        "{audit:?}"
    );
    let before = audit.len();
    // A restart with nothing changed applies nothing again.
    a.stop();
    let a = Appliance::start(&dir.path().join("a"), &url, "edge-1", false);
    assert_eq!(a.fleet_audit().len(), before);
    assert_eq!(
        a.watcher
            .counters()
            .applied
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // Revoked centrally (compare-and-swap on the revision too).
    assert!(matches!(
        rt.block_on(central.delete(ConfigBucket::Exceptions, "ipad-devserver", r2)),
        Err(SharedConfigError::Conflict { .. })
    ));
    rt.block_on(central.delete(ConfigBucket::Exceptions, "ipad-devserver", r4))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.exception("ipad-devserver").is_some() || b.exception("ipad-devserver").is_some() {
        assert!(Instant::now() < deadline, "not revoked");
        std::thread::sleep(Duration::from_millis(10));
    }
    a.stop();
    b.stop();
}
