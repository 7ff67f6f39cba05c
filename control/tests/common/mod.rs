//! Helpers shared by the integration tests: fixture paths, a real store in a temp dir, a port
//! registry, and a flow builder.
#![allow(dead_code)]

use std::path::PathBuf;

use portolan_control::roles::SHIPPED_ROLES_TOML;
use portolan_control::timestamp::parse_timestamp;
use portolan_control::{
    ControlConfig, ControlPlane, FlowObservation, RegisteredPortMap, RoleSet, Store,
};

/// A file under `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// µs since the epoch for an RFC 3339 time.
pub fn at(text: &str) -> i64 {
    parse_timestamp(text).expect("test timestamp")
}

/// A registry like the dataplane's, for the protocols the tests use.
pub fn registry() -> RegisteredPortMap {
    RegisteredPortMap::default()
        .with("tls", &[443, 465, 636, 853, 993, 995])
        .with("http", &[80])
        .with("quic", &[443])
        .with("imap", &[143])
        .with("smtp", &[25, 587])
        .with("ssh", &[22])
}

/// The shipped roles plus a global proxy exception for 10.20.0.5:8080.
pub fn roles_with_proxy() -> RoleSet {
    let text = format!(
        "{SHIPPED_ROLES_TOML}\n\
         [[exception]]\n\
         id = \"corp-proxy\"\n\
         kind = \"proxy\"\n\
         destinations = [\"10.20.0.5/32\", \"proxy.corp.example\"]\n\
         ports = [8080]\n\
         app_protos = [\"http\", \"tls\"]\n\
         reason = \"explicit forward proxy for managed devices\"\n\
         owner = \"netops@example.com\"\n\
         expires = \"2030-01-01T00:00:00Z\"\n"
    );
    RoleSet::parse(&text, std::path::Path::new("test-roles.toml")).expect("roles")
}

/// A control plane over a fresh store file in `dir`, with the Jamf fixture imported and the test
/// registry as the device default baseline.
pub fn engine_in(dir: &std::path::Path, roles: RoleSet) -> ControlPlane {
    let store = Store::open(&dir.join("portolan.db")).expect("store");
    let cp = ControlPlane::new(store, roles, ControlConfig::default())
        .expect("engine")
        .with_port_registry(registry());
    cp.operator
        .import_inventory(&[fixture("jamf_mobile_devices_detail.json")], "test")
        .expect("inventory");
    cp
}

/// A flow observation; adjust fields with struct update syntax.
pub fn flow(
    src: &str,
    dest: &str,
    port: u16,
    app_proto: &str,
    start: i64,
    dur_s: i64,
) -> FlowObservation {
    FlowObservation {
        flow_id: u64::try_from(start).unwrap_or(0) ^ u64::from(port),
        community_id: Some("1:LQU9qZlK+B5F3KDmev6m5PMibrg=".to_string()),
        start_us: start,
        end_us: start + dur_s * 1_000_000,
        src_ip: src.parse().expect("src ip"),
        src_port: 52_000,
        dest_ip: dest.parse().expect("dest ip"),
        dest_port: port,
        transport: if app_proto == "quic" { "UDP" } else { "TCP" }.to_string(),
        app_proto: app_proto.to_string(),
        indicators: Vec::new(),
        sni: None,
        http_host: None,
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
    }
}

/// Unique scratch directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// The scenarios' mail beacon: session `i` of TLS from the supervised iPhone (10.10.0.21) to
/// 203.0.113.50:8443 with the mail SNI, every 15 minutes from 2024-05-01T09:00Z, lasting `dur_s`.
pub fn mail_beacon(i: i64, dur_s: i64) -> FlowObservation {
    let mut f = flow(
        "10.10.0.21",
        "203.0.113.50",
        8443,
        "tls",
        at("2024-05-01T09:00:00Z") + i * 900_000_000,
        dur_s,
    );
    f.sni = Some("imap.mail.example.com".into());
    f
}

/// The actions of the audit log, in its order.
pub fn audit_actions(cp: &ControlPlane) -> Vec<portolan_control::audit::AuditAction> {
    cp.operator
        .audit_log()
        .expect("audit log")
        .iter()
        .map(|e| e.action)
        .collect()
}

/// Session `i` of the locked iPhone's managed Mail app beaconing TLS to 8443 every 15 minutes
/// (a little jitter), session 2 held open for 11 minutes (a persistent connection); judged a
/// mismatch by the dataplane.
pub fn jittered_mail_session(i: i64) -> FlowObservation {
    let dur = if i == 2 { 660 } else { 3 + i % 4 };
    let mut f = flow(
        "10.10.0.21",
        "203.0.113.50",
        8443,
        "tls",
        at("2024-05-01T09:00:00Z") + i * 900_000_000 + (i % 3) * 400_000,
        dur,
    );
    f.src_port = 52_000 + i as u16;
    f.sni = Some("imap.mail.example.com".to_string());
    f.tls = Some(serde_json::json!({"sni": "imap.mail.example.com", "version": "TLS 1.3"}));
    f.port_mismatch = Some(true);
    f
}
