//! The operator acts the admin API needs from the engine itself: closing an alert, importing an
//! inventory held in memory, and replacing the role set without a restart — each audited — and
//! the schema migration that added alert closure to stores written by the first version.

mod common;

use common::{audit_actions, engine_in, fixture, mail_beacon, tempdir};
use portolan_control::audit::AuditAction;
use portolan_control::learning::ApprovedPairing;
use portolan_control::roles::{RoleSet, SHIPPED_ROLES_TOML};
use portolan_control::store::{CloseOutcome, SCHEMA_VERSION};
use portolan_control::{ControlConfig, ControlError, ControlPlane, FlowObservation, Store};

fn mail_on_8443(i: i64) -> FlowObservation {
    mail_beacon(i, 3)
}

fn raise_one_alert(cp: &mut ControlPlane) -> i64 {
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.extend(
            cp.ingest
                .ingest_flow(&mail_on_8443(i))
                .unwrap()
                .iter()
                .map(|a| a.id),
        );
    }
    *ids.first().expect("the mail beacon raises an alert")
}

#[test]
fn closing_an_alert_acknowledges_it_is_audited_and_survives_a_restart() {
    let dir = tempdir();
    let id = {
        let mut cp = engine_in(dir.path(), RoleSet::shipped_defaults().unwrap());
        let id = raise_one_alert(&mut cp);
        assert!(matches!(
            cp.operator.close_alert(id, "", "sanctioned"),
            Err(ControlError::Audit(_))
        ));
        assert!(matches!(
            cp.operator.close_alert(id, "analyst", "  "),
            Err(ControlError::Audit(_))
        ));
        assert_eq!(
            cp.operator
                .close_alert(id, "analyst", "relay is sanctioned")
                .unwrap(),
            CloseOutcome::Closed { acknowledged: true }
        );
        assert_eq!(
            cp.operator.close_alert(id, "analyst", "again").unwrap(),
            CloseOutcome::AlreadyClosed
        );
        assert_eq!(
            cp.operator.close_alert(999_999, "analyst", "none").unwrap(),
            CloseOutcome::NotFound
        );
        // An acknowledged alert is closed without a second acknowledgement.
        let other = raise_one_alert_for(&mut cp);
        assert!(cp
            .operator
            .acknowledge_alert(other, "analyst", "looking")
            .unwrap());
        assert_eq!(
            cp.operator.close_alert(other, "lead", "done").unwrap(),
            CloseOutcome::Closed {
                acknowledged: false
            }
        );
        id
    };
    let store = Store::open(&dir.path().join("portolan.db")).unwrap();
    let cp = ControlPlane::new(
        store,
        RoleSet::shipped_defaults().unwrap(),
        ControlConfig::default(),
    )
    .unwrap();
    let a = cp.operator.alert(id).unwrap().expect("alert kept");
    let closure = a.closure.expect("closed");
    assert_eq!(closure.actor, "analyst");
    assert_eq!(closure.note, "relay is sanctioned");
    let ack = a.ack.expect("closing acknowledged it");
    assert_eq!(ack.note, "relay is sanctioned");
    let closed: Vec<_> = cp
        .operator
        .audit_log()
        .unwrap()
        .into_iter()
        .filter(|e| e.action == AuditAction::AlertClosed)
        .collect();
    assert_eq!(closed.len(), 2);
    assert_eq!(closed[0].target, id.to_string());
    assert_eq!(closed[0].reason, "relay is sanctioned");
}

fn raise_one_alert_for(cp: &mut ControlPlane) -> i64 {
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut f = mail_on_8443(i);
        f.dest_port = 2525;
        f.dest_ip = "203.0.113.77".parse().unwrap();
        ids.extend(cp.ingest.ingest_flow(&f).unwrap().iter().map(|a| a.id));
    }
    *ids.first().expect("a second finding alerts")
}

#[test]
fn inventory_bytes_import_like_files_and_errors_name_the_request_body() {
    let dir = tempdir();
    let store = Store::open(&dir.path().join("portolan.db")).unwrap();
    let cp = ControlPlane::new(
        store,
        RoleSet::shipped_defaults().unwrap(),
        ControlConfig::default(),
    )
    .unwrap();
    let json = std::fs::read(fixture("jamf_mobile_devices_detail.json")).unwrap();
    let s = cp
        .operator
        .import_inventory_bytes(&json, "token:1 (admin)", "weekly MDM sync")
        .unwrap();
    assert_eq!(s.added, 3);
    assert_eq!(cp.core().lock().unwrap().device_count(), 3);
    let plist = std::fs::read(fixture("apple_mdm_responses.plist")).unwrap();
    cp.operator
        .import_inventory_bytes(&plist, "token:1 (admin)", "enrolment")
        .unwrap();
    assert!(cp.core().lock().unwrap().device_count() > 3);
    let entries: Vec<_> = cp
        .operator
        .audit_log()
        .unwrap()
        .into_iter()
        .filter(|e| e.action == AuditAction::InventoryImported)
        .collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].reason, "weekly MDM sync");
    assert_eq!(entries[0].detail["devices"], 3);
    assert_eq!(entries[0].detail["bytes"], json.len());

    let unknown = std::fs::read(fixture("malformed_unknown_shape.json")).unwrap();
    let e = cp
        .operator
        .import_inventory_bytes(&unknown, "a", "b")
        .unwrap_err()
        .to_string();
    assert!(e.contains("request body"), "{e}");
    let e = cp
        .operator
        .import_inventory_bytes(b"{\"results\": [", "a", "b")
        .unwrap_err()
        .to_string();
    assert!(e.contains("request body") && e.contains("line 1"), "{e}");
    assert!(matches!(
        cp.operator.import_inventory_bytes(&json, "a", ""),
        Err(ControlError::Audit(_))
    ));
}

#[test]
fn replacing_roles_keeps_approvals_and_findings_changes_verdicts_and_is_audited() {
    let dir = tempdir();
    let mut cp = engine_in(dir.path(), RoleSet::shipped_defaults().unwrap());
    raise_one_alert(&mut cp);
    let findings_before = cp.ingest.findings().len();
    cp.operator
        .approve_baseline(
            "mail",
            &[ApprovedPairing {
                app_proto: "tls".into(),
                transport: Some("TCP".into()),
                port: 2525,
                starttls: false,
            }],
            "lead",
            "vendor relay",
        )
        .unwrap();
    // A roles file that also approves tls/8443 for mail.
    let text =
        SHIPPED_ROLES_TOML.replacen("tls = [443, 993, 465]", "tls = [443, 993, 465, 8443]", 1);
    assert_ne!(
        text, SHIPPED_ROLES_TOML,
        "the shipped mail role lists tls ports"
    );
    let edited = RoleSet::parse(&text, std::path::Path::new("edited-roles.toml")).unwrap();
    assert!(matches!(
        cp.operator.replace_roles(edited.clone(), "sighup", ""),
        Err(ControlError::Audit(_))
    ));
    let (audit_id, warnings) = cp
        .operator
        .replace_roles(edited, "system:sighup", "roles file changed")
        .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    // The approval from the store is still in force, and the file's change too.
    let ports = cp
        .core()
        .lock()
        .unwrap()
        .roles()
        .role_ports("mail", "tls", "TCP")
        .unwrap();
    assert!(ports.contains(&2525) && ports.contains(&8443), "{ports:?}");
    assert_eq!(cp.ingest.findings().len(), findings_before);
    let before = cp.core().lock().unwrap().stats().violations;
    assert!(cp.ingest.ingest_flow(&mail_on_8443(10)).unwrap().is_empty());
    assert_eq!(
        cp.core().lock().unwrap().stats().violations,
        before,
        "tls/8443 is now approved"
    );
    let entry = cp
        .operator
        .audit_log()
        .unwrap()
        .into_iter()
        .find(|e| e.id == audit_id)
        .unwrap();
    assert_eq!(entry.action, AuditAction::RolesReplaced);
    assert_eq!(entry.actor, "system:sighup");
    assert_eq!(entry.target, "edited-roles.toml");
    assert!(entry.detail["roles"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == "mail"));
}

#[test]
fn a_version_1_store_is_migrated_and_its_alerts_read_as_not_closed() {
    let dir = tempdir();
    let db = dir.path().join("v1.db");
    let id = {
        let mut cp = engine_in(dir.path(), RoleSet::shipped_defaults().unwrap());
        raise_one_alert(&mut cp)
    };
    std::fs::rename(dir.path().join("portolan.db"), &db).unwrap();
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::rename(
            dir.path().join(format!("portolan.db{ext}")),
            dir.path().join(format!("v1.db{ext}")),
        );
    }
    // Undo migrations 2 to 8 by hand: what a store of the first version looks like.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "DROP TABLE radius_bindings;
         DROP TABLE fleet_appliances;
         DROP TABLE fleet_finding_parts;
         DROP TABLE outbox;
         DROP TABLE outbox_meta;
         DROP TABLE proposal_rejections;
         DROP TABLE alert_triage;
         DROP TABLE role_definitions;
         ALTER TABLE alerts DROP COLUMN closed_us;
         ALTER TABLE alerts DROP COLUMN closed_by;
         ALTER TABLE alerts DROP COLUMN close_note;
         PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(conn);
    let store = Store::open(&db).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let cp = ControlPlane::new(
        store,
        RoleSet::shipped_defaults().unwrap(),
        ControlConfig::default(),
    )
    .unwrap();
    let a = cp.operator.alert(id).unwrap().unwrap();
    assert!(a.closure.is_none() && a.ack.is_none());
    assert_eq!(
        cp.operator
            .close_alert(id, "analyst", "after upgrade")
            .unwrap(),
        CloseOutcome::Closed { acknowledged: true }
    );
}

#[test]
fn roles_defined_and_deleted_through_the_api_persist_over_reloads_and_restarts() {
    use portolan_control::roles::{PortRule, Role, UnlistedProtocols};
    let dir = tempdir();
    let mut cp = engine_in(dir.path(), RoleSet::shipped_defaults().unwrap());
    // Before: the mail beacon on 8443 violates the mail baseline.
    let before = cp.core().lock().unwrap().stats().violations;
    cp.ingest.ingest_flow(&mail_on_8443(0)).unwrap();
    assert_eq!(cp.core().lock().unwrap().stats().violations, before + 1);

    let mut mail = cp
        .core()
        .lock()
        .unwrap()
        .roles()
        .role("mail")
        .unwrap()
        .clone();
    mail.rules.push(PortRule {
        app_proto: "TLS".into(),
        transport: Some("tcp".into()),
        ports: vec![8443],
        starttls: false,
    });
    let bad = Role {
        name: "device-default".into(),
        ..mail.clone()
    };
    assert!(matches!(
        cp.operator.define_role(bad, "lead", "x"),
        Err(ControlError::Roles(_))
    ));
    let bad_domain = Role {
        domains: vec!["not a domain".into()],
        ..mail.clone()
    };
    let e = cp
        .operator
        .define_role(bad_domain, "lead", "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("role[mail].domains[0]"), "{e}");
    assert!(matches!(
        cp.operator.define_role(mail.clone(), "lead", ""),
        Err(ControlError::Audit(_))
    ));
    cp.operator
        .define_role(mail, "lead", "mail relay on 8443 is sanctioned")
        .unwrap();
    let rule = cp
        .core()
        .lock()
        .unwrap()
        .roles()
        .role("mail")
        .unwrap()
        .rules
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (rule.app_proto.as_str(), rule.transport.as_deref()),
        ("tls", Some("TCP")),
        "normalised"
    );
    let v = cp.core().lock().unwrap().stats().violations;
    cp.ingest.ingest_flow(&mail_on_8443(1)).unwrap();
    assert_eq!(
        cp.core().lock().unwrap().stats().violations,
        v,
        "approved by the redefined role"
    );

    // A new role, and the deletion of a shipped one.
    let lab = Role {
        name: "lab".into(),
        description: Some("test devices".into()),
        bundle_ids: vec!["com.example.lab*".into()],
        domains: vec!["Lab.Example.COM".into()],
        rules: vec![],
        unlisted: UnlistedProtocols::Deny,
    };
    cp.operator.define_role(lab, "lead", "lab devices").unwrap();
    assert_eq!(
        cp.core()
            .lock()
            .unwrap()
            .roles()
            .role("lab")
            .unwrap()
            .domains,
        vec!["lab.example.com".to_string()]
    );
    let victim = cp
        .core()
        .lock()
        .unwrap()
        .roles()
        .roles()
        .iter()
        .find(|r| r.name != "mail" && r.name != "lab")
        .unwrap()
        .name
        .clone();
    assert!(cp
        .operator
        .delete_role(&victim, "lead", "no longer used")
        .unwrap());
    assert!(!cp.operator.delete_role(&victim, "lead", "again").unwrap());
    assert!(cp.core().lock().unwrap().roles().role(&victim).is_none());

    // A reload of the (unchanged) file keeps every API change.
    cp.operator
        .replace_roles(
            RoleSet::shipped_defaults().unwrap(),
            "system:SIGHUP",
            "reload",
        )
        .unwrap();
    let check = |cp: &ControlPlane| {
        assert!(cp.core().lock().unwrap().roles().role("lab").is_some());
        assert!(cp.core().lock().unwrap().roles().role(&victim).is_none());
        assert!(cp
            .core()
            .lock()
            .unwrap()
            .roles()
            .role_ports("mail", "tls", "TCP")
            .unwrap()
            .contains(&8443));
    };
    check(&cp);
    drop(cp);
    let store = Store::open(&dir.path().join("portolan.db")).unwrap();
    let cp = ControlPlane::new(
        store,
        RoleSet::shipped_defaults().unwrap(),
        ControlConfig::default(),
    )
    .unwrap();
    check(&cp);
    assert!(
        cp.core().lock().unwrap().startup_warnings().is_empty(),
        "{:?}",
        cp.core().lock().unwrap().startup_warnings()
    );
    let actions = audit_actions(&cp);
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == AuditAction::RoleDefined)
            .count(),
        2
    );
    assert!(actions.contains(&AuditAction::RoleDeleted));
}
