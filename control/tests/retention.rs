//! Retention: a synthetic week of device state reports and flows through a store on disk, pruned
//! at the end of every day, stays bounded (rows and file pages stop growing once the windows are
//! full) while every state read inside the window and every finding that raised an alert stay as
//! they were; replaced device records, learning counts, idle findings and uploads go by their
//! windows, and each pass is audited.

mod common;

use common::{fixture, flow, registry, roles_with_proxy, tempdir};
use portolan_control::audit::AuditAction;
use portolan_control::device_state::{DeviceStateEvent, DeviceStateTimeline};
use portolan_control::retention::RetentionConfig;
use portolan_control::scoring::ScoringConfig;
use portolan_control::store::UPLOADS_DIR;
use portolan_control::timestamp::now_us;
use portolan_control::{ControlConfig, ControlPlane, Store};
use serde_json::json;

const DAY_US: i64 = 86_400_000_000;
const TICK_US: i64 = 600_000_000;
/// The fixture's two devices with an address, and their UDIDs.
const DEVICES: [(&str, &str); 2] = [
    ("10.10.0.21", "00008120-001A2C3E0E38801E"),
    ("10.10.0.22", "00008103-000A4D1A2E12001E"),
];
const APPS: [&str; 3] = [
    "com.apple.mobilemail",
    "com.apple.mobilesafari",
    "com.example.chat",
];

/// One-day windows (and a one-day scoring window, which the findings' window may not undercut);
/// with `quiet`, no finding scores high enough to alert (so idle ones may go).
fn config_with(quiet: bool) -> ControlConfig {
    let top = if quiet { 1000.0 } else { 0.0 };
    let d = ScoringConfig::default();
    ControlConfig {
        scoring: ScoringConfig {
            window_s: 86_400,
            alert_threshold: d.alert_threshold.max(top),
            severity_medium: d.severity_medium.max(top),
            severity_high: d.severity_high.max(top),
            severity_critical: d.severity_critical.max(top),
            ..d
        },
        retention: RetentionConfig {
            device_states_s: 86_400,
            device_history_s: 86_400,
            learning_counts_s: 86_400,
            bindings_s: 86_400,
            findings_s: 86_400,
            uploads_s: 86_400,
            ..RetentionConfig::default()
        },
        ..ControlConfig::default()
    }
}

fn config() -> ControlConfig {
    config_with(false)
}

fn plane_with(dir: &std::path::Path, cfg: ControlConfig) -> ControlPlane {
    let store = Store::open(&dir.join("portolan.db")).expect("store");
    let cp = ControlPlane::new(store, roles_with_proxy(), cfg)
        .expect("engine")
        .with_port_registry(registry());
    cp.operator
        .import_inventory(&[fixture("jamf_mobile_devices_detail.json")], "test")
        .expect("inventory");
    cp
}

fn plane(dir: &std::path::Path) -> ControlPlane {
    plane_with(dir, config())
}

/// The report device `d` sends at tick `k` (time `t`): the lock state every tick, the last
/// interaction every third, an app's state every second (cycling through three apps).
fn report(d: usize, k: i64, t: i64) -> DeviceStateEvent {
    let mut line = json!({
        "timestamp": portolan_control::timestamp::format_rfc3339(t),
        "udid": DEVICES[d].1,
        "lock_state": if (k + d as i64) % 4 == 0 { "unlocked" } else { "locked" },
    });
    if k % 3 == 0 {
        line["last_user_interaction"] =
            json!(portolan_control::timestamp::format_rfc3339(t - 30_000_000));
    }
    if k % 2 == 0 {
        let app = APPS[((k / 2) as usize + d) % APPS.len()];
        line["bundle_id"] = json!(app);
        line["app_state"] = json!(if k % 8 == 0 {
            "background"
        } else {
            "foreground"
        });
    }
    DeviceStateEvent::from_json(&line).expect("report")
}

/// The state timeline the store's rows give.
fn timeline(cp: &ControlPlane) -> DeviceStateTimeline {
    let mut t = DeviceStateTimeline::default();
    for (key, e) in cp.core().lock().unwrap().store().device_states().unwrap() {
        t.insert(&key, e);
    }
    t
}

/// Every state read (each device, no app and each app) at each tick from `from_us` to `to_us`.
fn reads(t: &DeviceStateTimeline, from_us: i64, to_us: i64) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = from_us;
    while at <= to_us {
        for (_, udid) in DEVICES {
            for app in [None, Some(APPS[0]), Some(APPS[1]), Some(APPS[2])] {
                out.push(format!(
                    "{at} {udid} {app:?} {:?}",
                    t.state_at(&[udid], at, app)
                ));
            }
        }
        at += TICK_US / 3;
    }
    out
}

fn count(cp: &ControlPlane, table: &str) -> i64 {
    let path = cp.core().lock().unwrap().store().path().to_path_buf();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn pages(cp: &ControlPlane) -> i64 {
    let path = cp.core().lock().unwrap().store().path().to_path_buf();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_synthetic_week_stays_bounded_and_reads_inside_the_window_do_not_change() {
    let dir = tempdir();
    let mut cp = plane_with(dir.path(), config_with(true));
    let week0 = now_us() / DAY_US * DAY_US - 7 * DAY_US;
    let mut per_day = Vec::new();
    for day in 0..7i64 {
        let mut states = Vec::new();
        let mut flows = Vec::new();
        for k in 0..(DAY_US / TICK_US) {
            let t = week0 + day * DAY_US + k * TICK_US;
            for (d, &(ip, _)) in DEVICES.iter().enumerate() {
                states.push(report(d, day * 1000 + k, t));
                // Every device beacons TLS to 8443 each hour, and tries a new port once a
                // day (a finding of its own that goes idle).
                if k % 6 == 0 {
                    let mut f = flow(ip, "203.0.113.50", 8443, "tls", t, 4);
                    f.src_port = 40_000 + k as u16;
                    f.port_mismatch = Some(true);
                    flows.push(f);
                }
                if k == 0 {
                    let mut f = flow(
                        DEVICES[d].0,
                        "198.51.100.7",
                        9000 + day as u16,
                        "http",
                        t,
                        2,
                    );
                    f.port_mismatch = Some(true);
                    flows.push(f);
                }
            }
        }
        cp.operator.ingest_device_states(states).unwrap();
        cp.ingest.ingest_flows(&flows).unwrap();
        let end = week0 + (day + 1) * DAY_US;
        let cutoff = end - DAY_US;
        let before = reads(&timeline(&cp), cutoff, end);
        let report = cp.ingest.enforce_retention(end).unwrap();
        let after = reads(&timeline(&cp), cutoff, end);
        assert_eq!(
            before, after,
            "day {day}: a state read inside the window changed"
        );
        if day > 0 {
            assert!(report.device_states > 0, "day {day}: {report:?}");
            assert!(report.learning_counts > 0, "day {day}: {report:?}");
        }
        per_day.push((
            count(&cp, "device_states"),
            count(&cp, "learning_counts"),
            count(&cp, "findings"),
            pages(&cp),
        ));
    }
    eprintln!(
        "rows and pages at the end of each day (states, learning, findings, pages): {per_day:?}"
    );
    // A day of reports (144 ticks × 2 devices) plus the latest of each kind per device.
    let day_of_reports = (DAY_US / TICK_US) * DEVICES.len() as i64;
    for (day, &(states, learning, _, _)) in per_day.iter().enumerate() {
        assert!(
            states <= day_of_reports + 16,
            "day {day}: {states} state rows"
        );
        assert!(learning <= 2 * 48, "day {day}: {learning} learning buckets");
    }
    let (_, _, findings_day2, pages_day2) = per_day[2];
    let (_, _, findings_day6, pages_day6) = per_day[6];
    assert_eq!(
        findings_day6, findings_day2,
        "idle findings go as new ones come"
    );
    assert!(
        pages_day6 <= pages_day2 + pages_day2 / 10,
        "the file stopped growing: {pages_day2} pages on day 2, {pages_day6} on day 6"
    );
    assert!(
        cp.operator.alerts().unwrap().is_empty(),
        "nothing scored to alert"
    );
    let kept: std::collections::HashSet<String> = cp
        .ingest
        .findings()
        .iter()
        .map(|f| f.key.as_text())
        .collect();
    let stored = cp.core().lock().unwrap().store().findings().unwrap();
    assert_eq!(stored.len(), kept.len(), "memory and store agree");
    assert!(stored.iter().all(|f| kept.contains(&f.key.as_text())));
    // Each pass that removed something is in the audit log with its counts.
    let passes: Vec<_> = cp
        .operator
        .audit_log()
        .unwrap()
        .into_iter()
        .filter(|e| e.action == AuditAction::RetentionPruned)
        .collect();
    assert_eq!(passes.len(), 6, "one per day after the first");
    assert!(passes[0].detail["device_states"].as_u64().unwrap() > 0);
}

#[test]
fn replaced_records_import_records_and_uploads_go_by_their_windows() {
    let dir = tempdir();
    let mut cp = plane(dir.path());
    // A second import replaces every device's record (kept as history).
    cp.operator
        .import_inventory(&[fixture("jamf_mobile_devices_detail.json")], "test")
        .unwrap();
    assert!(count(&cp, "device_history") > 0);
    let imports_before = count(&cp, "imports");
    let uploads = dir.path().join(UPLOADS_DIR);
    std::fs::create_dir_all(&uploads).unwrap();
    std::fs::write(uploads.join("inventory-old.json"), b"{}").unwrap();

    // Inside the windows nothing goes.
    let report = cp.ingest.enforce_retention(now_us()).unwrap();
    assert_eq!(report.device_history, 0, "{report:?}");
    assert_eq!(report.uploads, 0);
    assert!(uploads.join("inventory-old.json").exists());

    // Two days on, the replaced records, the import they referred to and the upload go; the
    // devices and their current import stay.
    let report = cp.ingest.enforce_retention(now_us() + 2 * DAY_US).unwrap();
    assert!(report.device_history > 0, "{report:?}");
    assert_eq!(count(&cp, "device_history"), 0);
    assert_eq!(
        count(&cp, "imports"),
        imports_before - report.imports as i64
    );
    assert_eq!(
        count(
            &cp,
            "imports WHERE id NOT IN (SELECT import_id FROM devices UNION \
             SELECT import_id FROM network_bindings)"
        ),
        0,
        "an import record nothing refers to is left"
    );
    assert_eq!(report.uploads, 1);
    assert!(!uploads.join("inventory-old.json").exists());
    assert_eq!(cp.operator.devices().unwrap().len(), 3);
    let audit = cp.operator.audit_log().unwrap();
    let last = audit.last().unwrap();
    assert_eq!(last.action, AuditAction::RetentionPruned);
    assert_eq!(last.actor, "portolan-retention");
    assert_eq!(last.detail["device_history"], json!(report.device_history));
}

#[test]
fn findings_that_raised_an_alert_are_kept_however_idle() {
    let dir = tempdir();
    let mut cp = plane(dir.path());
    let t = now_us() - 3 * DAY_US;
    let mut idle = flow(DEVICES[0].0, "203.0.113.50", 8443, "tls", t, 4);
    idle.port_mismatch = Some(true);
    cp.ingest.ingest_flows(&[idle]).unwrap();
    let alerts = cp.operator.alerts().unwrap();
    assert!(!alerts.is_empty(), "a managed iPhone's TLS on 8443 alerts");
    let report = cp.ingest.enforce_retention(now_us()).unwrap();
    assert_eq!(report.findings, 0, "{report:?}");
    let stored = cp.core().lock().unwrap().store().findings().unwrap();
    for a in &alerts {
        assert!(stored.iter().any(|f| f.id == a.alert.finding_id));
    }
    assert_eq!(cp.ingest.findings().len(), stored.len());
}

#[test]
fn windows_shorter_than_what_they_protect_are_refused_naming_the_field() {
    let mut cfg = config();
    cfg.retention.findings_s = 3600;
    let e = cfg.validate().unwrap_err();
    assert_eq!(e.field, "retention.findings_s");
    let mut cfg = config();
    cfg.retention.device_states_s = 0;
    assert_eq!(
        cfg.validate().unwrap_err().field,
        "retention.device_states_s"
    );
    let text = "[retention]\ninterval_s = -5\n";
    let e = ControlConfig::parse(text, std::path::Path::new("c.toml")).unwrap_err();
    assert!(e.to_string().contains("retention.interval_s"), "{e}");
}
