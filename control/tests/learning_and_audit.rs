//! Learning proposals, audited approval, API exceptions, alert acknowledgement and the audit log.

mod common;

use common::{at, audit_actions, engine_in, flow, tempdir};
use portolan_control::audit::AuditAction;
use portolan_control::learning::ApprovedPairing;
use portolan_control::roles::{ExceptionDestination, ExceptionKind, ExceptionRule, RoleSet};
use portolan_control::{ControlConfig, ControlError, ControlPlane, FlowObservation, Store};

fn outlook_sync(i: i64) -> FlowObservation {
    let mut f = flow(
        "10.10.0.21",
        "203.0.113.60",
        8443,
        "tls",
        at("2024-05-01T09:00:00Z") + i * 600_000_000,
        2,
    );
    f.sni = Some("outlook.office365.com".into());
    f
}

#[test]
fn learning_proposes_and_only_an_audited_approval_changes_the_baseline() {
    let dir = tempdir();
    let mut cp = engine_in(dir.path(), RoleSet::shipped_defaults().unwrap());
    let mut batch: Vec<FlowObservation> = (0..6).map(outlook_sync).collect();
    let mut imaps = flow(
        "10.10.0.21",
        "203.0.113.60",
        993,
        "tls",
        at("2024-05-01T09:01:00Z"),
        60,
    );
    imaps.sni = Some("outlook.office365.com".into());
    batch.push(imaps);
    batch.push(flow(
        "10.10.0.22",
        "198.51.100.3",
        4444,
        "mqtt",
        at("2024-05-01T09:02:00Z"),
        60,
    ));
    let alerts = cp.ingest.ingest_flows(&batch).unwrap();
    assert!(
        !alerts.is_empty(),
        "before approval tls/8443 breaks the mail baseline"
    );

    let proposals = cp
        .operator
        .propose_baselines(at("2024-05-01T00:00:00Z"), at("2024-05-02T00:00:00Z"))
        .unwrap();
    let mail = proposals
        .iter()
        .find(|p| p.role == "mail")
        .expect("mail proposal");
    let p8443 = mail.pairings.iter().find(|p| p.port == 8443).unwrap();
    assert_eq!(
        (p8443.app_proto.as_str(), p8443.sessions, p8443.proposed),
        ("tls", 6, true)
    );
    let p993 = mail.pairings.iter().find(|p| p.port == 993).unwrap();
    assert!(p993.already_approved && !p993.proposed);
    let dd = proposals
        .iter()
        .find(|p| p.role == "device-default")
        .expect("unattributed traffic counted");
    assert!(dd
        .pairings
        .iter()
        .any(|p| p.app_proto == "mqtt" && p.port == 4444 && p.sessions == 1 && !p.proposed));
    let before = cp.operator.audit_log().unwrap().len();
    assert_eq!(
        cp.core()
            .lock()
            .unwrap()
            .roles()
            .role_ports("mail", "tls", "TCP"),
        Some(vec![443, 465, 993]),
        "proposing approves nothing"
    );

    let pairing = ApprovedPairing {
        app_proto: "tls".into(),
        transport: Some("TCP".into()),
        port: 8443,
        starttls: false,
    };
    let e = cp
        .operator
        .approve_baseline(
            "mail",
            std::slice::from_ref(&pairing),
            "  ",
            "vendor moved sync to 8443",
        )
        .unwrap_err();
    assert!(matches!(e, ControlError::Audit(_)), "{e}");
    let e = cp
        .operator
        .approve_baseline("mail", std::slice::from_ref(&pairing), "alice", "")
        .unwrap_err();
    assert!(e.to_string().contains("reason"), "{e}");
    let e = cp
        .operator
        .approve_baseline("payroll", std::slice::from_ref(&pairing), "alice", "why")
        .unwrap_err();
    assert!(e.to_string().contains("unknown role `payroll`"), "{e}");
    assert_eq!(
        cp.operator.audit_log().unwrap().len(),
        before,
        "refused acts leave no trace and no change"
    );

    let audit_id = cp
        .operator
        .approve_baseline(
            "mail",
            &[pairing],
            "alice@example.com",
            "Exchange hybrid sync moved to 8443 (CHG-1042)",
        )
        .unwrap();
    let log = cp.operator.audit_log().unwrap();
    let entry = log.iter().find(|e| e.id == audit_id).unwrap();
    assert_eq!(entry.action, AuditAction::BaselineApproved);
    assert_eq!(entry.actor, "alice@example.com");
    assert_eq!(entry.target, "mail");
    assert_eq!(entry.detail["pairings"][0]["port"], 8443);
    assert!(entry.reason.contains("CHG-1042"));
    assert_eq!(
        cp.core()
            .lock()
            .unwrap()
            .roles()
            .role_ports("mail", "tls", "TCP"),
        Some(vec![443, 465, 993, 8443])
    );
    assert!(
        cp.ingest.ingest_flow(&outlook_sync(20)).unwrap().is_empty(),
        "approved now"
    );

    // The approval survives a restart.
    drop(cp);
    let store = Store::open(&dir.path().join("portolan.db")).unwrap();
    let mut cp = ControlPlane::new(
        store,
        RoleSet::shipped_defaults().unwrap(),
        ControlConfig::default(),
    )
    .unwrap()
    .with_port_registry(common::registry());
    assert!(
        cp.core().lock().unwrap().startup_warnings().is_empty(),
        "{:?}",
        cp.core().lock().unwrap().startup_warnings()
    );
    assert!(cp.ingest.ingest_flow(&outlook_sync(21)).unwrap().is_empty());
    let proposals = cp
        .operator
        .propose_baselines(at("2024-05-01T00:00:00Z"), at("2024-05-02T00:00:00Z"))
        .unwrap();
    let mail = proposals.iter().find(|p| p.role == "mail").unwrap();
    let p8443 = mail.pairings.iter().find(|p| p.port == 8443).unwrap();
    assert!(p8443.already_approved && !p8443.proposed);
    assert_eq!(p8443.sessions, 8, "counts flushed across the restart");
}

#[test]
fn api_exceptions_are_audited_and_revocable() {
    let dir = tempdir();
    let mut cp = engine_in(dir.path(), RoleSet::shipped_defaults().unwrap());
    let devtool = |i: i64| {
        let mut f = flow(
            "10.10.0.22",
            "10.30.0.7",
            9090,
            "http",
            at("2024-05-01T09:00:00Z") + i * 60_000_000,
            1,
        );
        f.http_host = Some("builds.dev.example.com:9090".into());
        f
    };
    let rule = ExceptionRule {
        id: "ipad-devserver".into(),
        kind: ExceptionKind::DeveloperTooling,
        devices: vec!["DMPX77ZQ1F".into()],
        destinations: vec![ExceptionDestination::try_from("dev.example.com".to_string()).unwrap()],
        ports: vec![9090],
        app_protos: vec!["http".into()],
        reason: "iPad used for app QA against the build server".into(),
        owner: "mobile-dev@example.com".into(),
        expires_us: at("2024-06-01T00:00:00Z"),
    };
    let mut blanket = rule.clone();
    blanket.id = "everything".into();
    blanket.destinations.clear();
    blanket.ports.clear();
    assert!(
        cp.operator.add_exception(blanket, "bob", "lazy").is_err(),
        "blanket exceptions are refused"
    );
    cp.operator
        .add_exception(rule.clone(), "bob@example.com", "QA sprint 18")
        .unwrap();
    assert!(
        cp.operator
            .add_exception(rule, "bob@example.com", "again")
            .is_err(),
        "duplicate id"
    );
    assert!(cp.ingest.ingest_flow(&devtool(0)).unwrap().is_empty());
    // Another device (the iPhone) is not covered by this per-device exception.
    let mut other = devtool(1);
    other.src_ip = "10.10.0.21".parse().unwrap();
    assert_eq!(cp.ingest.ingest_flow(&other).unwrap().len(), 1);

    // Survives restart, then revoked.
    drop(cp);
    let store = Store::open(&dir.path().join("portolan.db")).unwrap();
    let mut cp = ControlPlane::new(
        store,
        RoleSet::shipped_defaults().unwrap(),
        ControlConfig::default(),
    )
    .unwrap()
    .with_port_registry(common::registry());
    assert!(cp.ingest.ingest_flow(&devtool(2)).unwrap().is_empty());
    assert!(cp
        .operator
        .revoke_exception("ipad-devserver", "carol@example.com", "QA sprint over")
        .unwrap());
    assert!(!cp
        .operator
        .revoke_exception("ipad-devserver", "carol@example.com", "again")
        .unwrap());
    let alerts = cp.ingest.ingest_flow(&devtool(3)).unwrap();
    assert_eq!(alerts.len(), 1, "alerts again once revoked");

    // Acknowledge it.
    let id = alerts[0].id;
    assert!(cp
        .operator
        .acknowledge_alert(id, "dave@example.com", "known QA traffic")
        .unwrap());
    assert!(!cp
        .operator
        .acknowledge_alert(id, "dave@example.com", "twice")
        .unwrap());
    let stored = cp.operator.alerts().unwrap();
    let acked = stored.iter().find(|a| a.alert.id == id).unwrap();
    assert_eq!(
        acked.ack.as_ref().map(|a| a.actor.as_str()),
        Some("dave@example.com")
    );

    let actions = audit_actions(&cp);
    for wanted in [
        AuditAction::InventoryImported,
        AuditAction::ExceptionAdded,
        AuditAction::ExceptionRevoked,
        AuditAction::AlertAcknowledged,
    ] {
        assert!(
            actions.contains(&wanted),
            "{wanted:?} missing from {actions:?}"
        );
    }
    let revoked = cp
        .operator
        .audit_log()
        .unwrap()
        .into_iter()
        .find(|e| e.action == AuditAction::ExceptionRevoked)
        .unwrap();
    assert_eq!(
        (revoked.actor.as_str(), revoked.reason.as_str()),
        ("carol@example.com", "QA sprint over")
    );
}
