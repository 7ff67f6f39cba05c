//! The analytic's scenarios: ranking, approved pairings, STARTTLS, exceptions, unmanaged devices,
//! and the EVE / OCSF records the alerts become.

mod common;

use common::{at, engine_in, fixture, flow, roles_with_proxy, tempdir};
use portolan_control::alert::{Alert, AlertActivity};
use portolan_control::output::eve::to_eve;
use portolan_control::output::ocsf::{to_ocsf, OcsfProduct};
use portolan_control::roles::ViolationKind;
use portolan_control::scoring::Severity;
use portolan_control::ControlPlane;
use serde_json::json;

const AIKO: &str = "00008120-001A2C3E0E38801E";
const IPAD: &str = "00008103-000A4D1A2E12001E";

fn scenario_engine(dir: &std::path::Path) -> ControlPlane {
    let cp = engine_in(dir, roles_with_proxy());
    cp.operator
        .import_device_states(&fixture("scenario_device_states.jsonl"))
        .unwrap();
    cp
}

/// The supervised iPhone's managed Mail app beaconing TLS to 8443 every 15 minutes while locked.
fn mail_beacon(cp: &mut ControlPlane, sessions: i64) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for i in 0..sessions {
        let mut f = flow(
            "10.10.0.21",
            "203.0.113.50",
            8443,
            "tls",
            at("2024-05-01T09:00:00Z") + i * 900_000_000 + (i % 3) * 400_000,
            3,
        );
        f.sni = Some("imap.mail.example.com".to_string());
        f.tls = Some(
            json!({"sni": "imap.mail.example.com", "version": "TLS 1.3", "ja3": {"hash": "e7d705a3286e19ea42f587b344ee6865"}}),
        );
        f.port_mismatch = Some(true);
        alerts.extend(cp.ingest.ingest_flow(&f).unwrap());
    }
    alerts
}

/// One HTTP session to 8080 from the iPad while Safari is in the foreground, with Safari's
/// User-Agent.
fn browser_session(cp: &mut ControlPlane) -> Vec<Alert> {
    let mut f = flow(
        "10.10.0.22",
        "198.51.100.80",
        8080,
        "http",
        at("2024-05-01T10:01:00Z"),
        5,
    );
    f.http_host = Some("intranet-tools.example.org:8080".to_string());
    f.http = Some(
        json!({"hostname": "intranet-tools.example.org", "url": "/status", "http_method": "GET", "http_user_agent": "Mozilla/5.0 (iPad; CPU OS 17_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Mobile/15E148 Safari/604.1"}),
    );
    f.port_mismatch = Some(true);
    cp.ingest.ingest_flow(&f).unwrap()
}

#[test]
fn locked_background_mail_beacon_outranks_a_foreground_browser_session() {
    let dir = tempdir();
    let mut cp = scenario_engine(dir.path());
    let mail_alerts = mail_beacon(&mut cp, 8);
    let browser_alerts = browser_session(&mut cp);

    assert_eq!(
        browser_alerts.len(),
        1,
        "a single mismatch session still alerts, at low severity"
    );
    let b = &browser_alerts[0];
    assert_eq!(b.device.udid.as_deref(), Some(IPAD));
    assert_eq!(b.app.bundle_id.as_deref(), Some("com.apple.mobilesafari"));
    assert_eq!(
        b.app.method.as_str(),
        "user_agent",
        "Safari's own agent names it; the foreground app alone would not"
    );
    assert_eq!(b.kind, ViolationKind::RoleBaseline);
    assert_eq!(b.severity, Severity::Low);
    assert!(
        b.reasons.iter().any(|r| r.contains("single session")),
        "{:?}",
        b.reasons
    );

    assert!(
        mail_alerts.len() >= 2,
        "create, then updates as severity rises: {}",
        mail_alerts.len()
    );
    assert_eq!(mail_alerts[0].activity, AlertActivity::Create);
    assert!(
        mail_alerts
            .windows(2)
            .all(|w| w[1].severity > w[0].severity),
        "alerts repeat only when severity rises"
    );
    let last = mail_alerts.last().unwrap();
    assert_eq!(last.activity, AlertActivity::Update);
    assert!(
        last.severity >= Severity::High,
        "{:?} {}",
        last.severity,
        last.score
    );
    assert_eq!(last.app.bundle_id.as_deref(), Some("com.apple.mobilemail"));
    assert_eq!(last.app.role.as_deref(), Some("mail"));
    assert_eq!(last.baseline.approved_ports, vec![443, 465, 993]);
    let reasons = last.reasons.join("\n");
    for needle in [
        "outside role `mail`",
        "recurs every",
        "device locked",
        "in background",
        "no user interaction",
        "supervised device",
        "managed device",
        "sessions since",
    ] {
        assert!(reasons.contains(needle), "missing {needle:?} in\n{reasons}");
    }

    let ranked = cp.ingest.findings();
    assert_eq!(ranked.len(), 2);
    assert_eq!(ranked[0].udid.as_deref(), Some(AIKO));
    assert_eq!(ranked[0].sessions, 8);
    assert!((ranked[0].interval_seconds().unwrap() - 900.0).abs() < 1.0);
    assert!(
        ranked[0].score > ranked[1].score + 30.0,
        "{} vs {}",
        ranked[0].score,
        ranked[1].score
    );
    assert_eq!(ranked[1].udid.as_deref(), Some(IPAD));
    // One finding per (device, app, proto, destination, port): eight sessions, one finding.
    assert_eq!(
        cp.core().lock().unwrap().store().finding_count().unwrap(),
        2
    );
}

#[test]
fn approved_pairings_starttls_and_excepted_proxies_do_not_alert() {
    let dir = tempdir();
    let mut cp = scenario_engine(dir.path());
    let t = at("2024-05-01T09:30:00Z");
    let mut imaps = flow("10.10.0.21", "203.0.113.50", 993, "tls", t, 30);
    imaps.sni = Some("imap.mail.example.com".into());
    let mut imap_starttls = flow("10.10.0.21", "203.0.113.50", 143, "imap", t, 30);
    imap_starttls.starttls = true;
    imap_starttls.sni = Some("imap.mail.example.com".into());
    let mut submission = flow("10.10.0.21", "203.0.113.51", 587, "tls", t, 4);
    submission.starttls = true;
    submission.port_mismatch = Some(true);
    let mut web = flow("10.10.0.22", "198.51.100.9", 443, "tls", t, 4);
    web.sni = Some("www.example.org".into());
    let mut proxied = flow("10.10.0.22", "10.20.0.5", 8080, "http", t, 4);
    proxied.http_host = Some("proxy.corp.example:8080".into());
    proxied.port_mismatch = Some(true);
    let mut apns = flow("10.10.0.21", "17.57.144.10", 5223, "tls", t, 600);
    apns.sni = Some("courier.push.apple.com".into());
    apns.port_mismatch = Some(true);
    let mut unclassified = flow("10.10.0.21", "203.0.113.99", 9999, "unknown", t, 4);
    unclassified.port_mismatch = Some(true);
    let batch = [
        imaps,
        imap_starttls,
        submission,
        web,
        proxied.clone(),
        apns,
        unclassified,
    ];
    let alerts = cp.ingest.ingest_flows(&batch).unwrap();
    assert!(
        alerts.is_empty(),
        "{:#?}",
        alerts.iter().map(|a| &a.reasons).collect::<Vec<_>>()
    );
    let stats = cp.core().lock().unwrap().stats();
    assert_eq!(stats.flows, 7);
    assert_eq!(stats.unclassified, 1);
    assert_eq!(stats.approved, 5);
    assert_eq!(stats.excepted, 1);
    // The proxied session is still on record, marked with its exception, scored zero.
    let findings = cp.ingest.findings();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].excepted_by.as_deref(), Some("corp-proxy"));
    assert_eq!(findings[0].score, 0.0);
    // The same pairing to another destination is not covered.
    let mut elsewhere = proxied;
    elsewhere.dest_ip = "10.20.0.6".parse().unwrap();
    elsewhere.http_host = Some("tools.example.net:8080".into());
    elsewhere.start_us = at("2024-05-01T11:00:00Z");
    elsewhere.end_us = elsewhere.start_us + 1_000_000;
    assert_eq!(cp.ingest.ingest_flow(&elsewhere).unwrap().len(), 1);
}

#[test]
fn unmanaged_device_traffic_is_reported_with_its_context() {
    let dir = tempdir();
    let mut cp = scenario_engine(dir.path());
    let mut ssh = flow(
        "10.10.0.99",
        "192.0.2.10",
        2222,
        "ssh",
        at("2024-05-01T09:10:00Z"),
        40,
    );
    ssh.port_mismatch = Some(true);
    let alerts = cp.ingest.ingest_flow(&ssh).unwrap();
    assert_eq!(alerts.len(), 1, "not dropped");
    let a = &alerts[0];
    assert!(!a.device.in_inventory && !a.device.managed);
    assert_eq!(a.device.udid, None);
    assert_eq!(a.signature.signature_id, 1_509_003);
    assert!(
        a.reasons
            .iter()
            .any(|r| r.contains("not in the MDM inventory")),
        "{:?}",
        a.reasons
    );
    let eve = to_eve(a);
    assert_eq!(eve["portolan"]["device"]["managed"], json!(false));
    assert_eq!(eve["portolan"]["device"]["in_inventory"], json!(false));
    assert_eq!(eve["portolan"]["device"]["udid"], json!(null));
    let ocsf = to_ocsf(a, &OcsfProduct::default());
    assert_eq!(ocsf["device"]["is_managed"], json!(false));
    assert_eq!(ocsf["device"]["ip"], json!("10.10.0.99"));
}

#[test]
fn eve_alert_carries_flow_alert_and_portolan_context() {
    let dir = tempdir();
    let mut cp = scenario_engine(dir.path());
    let alerts = mail_beacon(&mut cp, 8);
    let a = alerts.last().unwrap();
    let eve = to_eve(a);
    assert_eq!(eve["event_type"], json!("alert"));
    assert_eq!(eve["src_ip"], json!("10.10.0.21"));
    assert_eq!(eve["dest_port"], json!(8443));
    assert_eq!(eve["proto"], json!("TCP"));
    assert_eq!(eve["app_proto"], json!("tls"));
    assert_eq!(eve["community_id"], json!("1:LQU9qZlK+B5F3KDmev6m5PMibrg="));
    assert!(eve["timestamp"].as_str().unwrap().ends_with("+0000"));
    let al = &eve["alert"];
    assert_eq!(al["signature_id"], json!(1_509_002));
    assert_eq!(al["gid"], json!(1));
    assert_eq!(al["action"], json!("allowed"));
    assert_eq!(al["severity"], json!(1));
    assert_eq!(
        al["category"],
        json!("Detection of a non-standard protocol or event")
    );
    assert_eq!(al["metadata"]["mitre_technique_id"], json!(["T1509"]));
    assert_eq!(al["metadata"]["detection_strategy"], json!(["DET0706"]));
    assert_eq!(al["metadata"]["analytic"], json!(["AN1828"]));
    assert_eq!(al["metadata"]["mitre_tactic_id"], json!(["TA0037"]));
    assert!(al["metadata"].as_object().unwrap().values().all(|v| v
        .as_array()
        .is_some_and(|a| a.iter().all(|s| s.is_string()))));
    assert_eq!(eve["tls"]["sni"], json!("imap.mail.example.com"));
    assert_eq!(eve["tls"]["version"], json!("TLS 1.3"));
    assert_eq!(eve["flow"]["bytes_toserver"], json!(1800));
    let p = &eve["portolan"];
    assert_eq!(p["device"]["udid"], json!(AIKO));
    assert_eq!(p["device"]["serial_number"], json!("F4KX91QHN7"));
    assert_eq!(p["device"]["supervised"], json!(true));
    assert_eq!(p["device"]["managed"], json!(true));
    assert_eq!(p["app"]["bundle_id"], json!("com.apple.mobilemail"));
    assert_eq!(p["app"]["role"], json!("mail"));
    assert_eq!(p["app"]["attribution"], json!("tls_sni"));
    assert!(p["app"]["confidence"].as_f64().unwrap() > 0.8);
    assert_eq!(p["baseline"]["role"], json!("mail"));
    assert_eq!(p["baseline"]["approved_ports"], json!([443, 465, 993]));
    assert_eq!(p["device_state"]["lock_state"], json!("locked"));
    assert_eq!(p["device_state"]["app_state"], json!("background"));
    assert!(
        p["device_state"]["seconds_since_user_interaction"]
            .as_i64()
            .unwrap()
            >= 300
    );
    // The last alert was raised when severity last rose (the third session, once the recurrence
    // was judged regular); later sessions grow the finding without repeating the alert.
    assert_eq!(p["persistence"]["sessions"], json!(3));
    assert_eq!(a.severity, Severity::Critical);
    assert!((p["persistence"]["interval_seconds"].as_f64().unwrap() - 900.0).abs() < 1.0);
    assert!(p["persistence"]["first_seen"]
        .as_str()
        .unwrap()
        .starts_with("2024-05-01T09:00:00"));
    assert_eq!(p["score"], json!(a.score));
    assert!(p["reasons"].as_array().unwrap().len() >= 8);
    // One line of JSON.
    assert!(!serde_json::to_string(&eve).unwrap().contains('\n'));
}

#[test]
fn ocsf_detection_finding_fields() {
    let dir = tempdir();
    let mut cp = scenario_engine(dir.path());
    let alerts = mail_beacon(&mut cp, 8);
    let first = to_ocsf(&alerts[0], &OcsfProduct::default());
    let last = to_ocsf(alerts.last().unwrap(), &OcsfProduct::default());
    assert_eq!(first["class_uid"], json!(2004));
    assert_eq!(first["category_uid"], json!(2));
    assert_eq!(
        (first["activity_id"].clone(), first["type_uid"].clone()),
        (json!(1), json!(200401))
    );
    assert_eq!(
        (last["activity_id"].clone(), last["type_uid"].clone()),
        (json!(2), json!(200402))
    );
    let fi = &last["finding_info"];
    assert_eq!(
        fi["uid"], first["finding_info"]["uid"],
        "one finding, several alerts"
    );
    assert_eq!(fi["analytic"]["uid"], json!("AN1828"));
    assert_eq!(fi["analytic"]["type_id"], json!(1));
    assert_eq!(
        fi["attacks"][0]["technique"],
        json!({"uid": "T1509", "name": "Non-Standard Port"})
    );
    assert_eq!(fi["attacks"][0]["tactic"]["uid"], json!("TA0037"));
    assert_eq!(fi["related_events_count"], json!(3));
    assert_eq!(
        fi["first_seen_time"],
        json!(at("2024-05-01T09:00:00Z") / 1000)
    );
    assert!(fi["last_seen_time"].as_i64().unwrap() > fi["first_seen_time"].as_i64().unwrap());
    let dev = &last["device"];
    assert_eq!(dev["uid"], json!(AIKO));
    assert_eq!(dev["udid"], json!(AIKO));
    assert_eq!(dev["is_supervised"], json!(true));
    assert_eq!(dev["is_managed"], json!(true));
    assert_eq!(dev["model"], json!("iPhone 15"));
    assert_eq!(dev["os"]["name"], json!("iOS"));
    assert_eq!(dev["os"]["type_id"], json!(301));
    assert_eq!(dev["hw_info"]["serial_number"], json!("F4KX91QHN7"));
    let ev = &last["evidences"][0];
    assert_eq!(ev["dst_endpoint"]["port"], json!(8443));
    assert_eq!(
        ev["dst_endpoint"]["hostname"],
        json!("imap.mail.example.com")
    );
    assert_eq!(ev["connection_info"]["protocol_name"], json!("tcp"));
    assert_eq!(
        ev["connection_info"]["community_uid"],
        json!("1:LQU9qZlK+B5F3KDmev6m5PMibrg=")
    );
    assert_eq!(ev["tls"]["sni"], json!("imap.mail.example.com"));
    assert!(last["severity_id"].as_u64().unwrap() >= 4);
    assert!(last["risk_score"].as_i64().unwrap() > first["risk_score"].as_i64().unwrap());
    assert!(last["confidence_score"].as_i64().unwrap() > 50);
    assert_eq!(last["status_id"], json!(1));
    assert_eq!(last["metadata"]["product"]["name"], json!("Portolan"));
    assert_eq!(last["unmapped"]["portolan"]["app"]["role"], json!("mail"));
}

#[test]
fn dns_answer_attributes_a_flow_without_sni() {
    let dir = tempdir();
    let mut cp = scenario_engine(dir.path());
    let dns = json!({"timestamp": "2024-05-01T09:00:00.000000+0000", "event_type": "dns",
        "src_ip": "10.10.0.1", "src_port": 53, "dest_ip": "10.10.0.21", "dest_port": 53011, "proto": "UDP",
        "dns": {"type": "answer", "rrname": "smtp.mail.example.com", "answers": [
            {"rrname": "smtp.mail.example.com", "rrtype": "A", "ttl": 300, "rdata": "203.0.113.77"}]}});
    assert!(cp.ingest.ingest_eve(&dns).unwrap().is_empty());
    let eve_flow = json!({"timestamp": "2024-05-01T09:05:02.000000+0000", "flow_id": 1234567, "event_type": "flow",
        "src_ip": "10.10.0.21", "src_port": 50123, "dest_ip": "203.0.113.77", "dest_port": 2525, "proto": "TCP",
        "app_proto": "smtp", "port_mismatch": true, "community_id": "1:abc=",
        "flow": {"pkts_toserver": 9, "pkts_toclient": 8, "bytes_toserver": 700, "bytes_toclient": 900,
                 "start": "2024-05-01T09:05:00.000000+0000", "end": "2024-05-01T09:05:02.000000+0000"}});
    let alerts = cp.ingest.ingest_eve(&eve_flow).unwrap();
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a.app.method.as_str(), "dns_answer");
    assert_eq!(a.app.role.as_deref(), Some("mail"));
    assert_eq!(a.app.server_name.as_deref(), Some("smtp.mail.example.com"));
    assert_eq!(a.flow.flow_id, 1_234_567);
    assert_eq!(cp.core().lock().unwrap().stats().dns_answers, 1);
}
