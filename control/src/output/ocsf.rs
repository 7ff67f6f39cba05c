//! OCSF Detection Finding (class 2004) records, OCSF 1.5.0.
//!
//! Owns: the mapping of an [`Alert`] to a Detection Finding: `class_uid 2004`, `category_uid 2`,
//! `activity_id` 1 Create / 2 Update (`type_uid = 200400 + activity_id`), `finding_info` with the
//! ATT&CK analytic and `attacks[]`, `evidences[]` (endpoints, connection info with the Community
//! ID, `tls` with its required `version` when the handshake gave one), `device` (with `udid`,
//! `is_supervised`, `is_managed`, and the MDM's user as `owner`), `resources[]` (the app),
//! `observables[]` (device UDID, serial number and address, server address, name and port, user
//! name and e-mail, app), severity, confidence and risk scores, status (`status_code`,
//! `status_detail`), `timezone_offset`, `metadata` (`product.uid`, `log_name`, `log_provider`),
//! and the Portolan context under `unmapped.portolan`.
//! Times are OCSF `timestamp_t` (ms since the epoch, UTC: `timezone_offset` 0).
//! The version is the one whose attributes are used (1.5.0 added `device.udid` and
//! `device.is_supervised`); `tests/ocsf_schema.rs` validates every record against the vendored
//! 1.5.0 schema. Must not: claim a schema attribute it does not fill, or write an MDM string into
//! a typed attribute (e-mail) it does not match.

use serde_json::{json, Map, Value};

use super::eve::to_eve;
use super::{ANALYTIC_ID, ANALYTIC_NAME, TACTIC_ID, TACTIC_NAME, TECHNIQUE_ID, TECHNIQUE_NAME};
use crate::alert::{Alert, AlertActivity};
use crate::inventory::MdmUser;

/// Product and schema details written into `metadata`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OcsfProduct {
    /// Product name.
    pub name: String,
    /// Vendor name.
    pub vendor_name: String,
    /// Product version.
    pub version: String,
    /// OCSF schema version written.
    pub schema_version: String,
    /// ATT&CK version the ids come from.
    pub attack_version: String,
}

impl Default for OcsfProduct {
    fn default() -> Self {
        OcsfProduct {
            name: "Portolan".to_string(),
            vendor_name: "Portolan".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            schema_version: "1.5.0".to_string(),
            attack_version: "18".to_string(),
        }
    }
}

fn ms(us: i64) -> i64 {
    us.div_euclid(1000)
}

fn os_type_id(name: Option<&str>) -> u32 {
    match name {
        Some("iOS") => 301,
        Some("iPadOS") => 302,
        Some("macOS") => 300,
        Some("Android") => 201,
        Some(_) => 99,
        None => 0,
    }
}

/// Renders one alert as an OCSF Detection Finding.
pub fn to_ocsf(alert: &Alert, product: &OcsfProduct) -> Value {
    let f = &alert.flow;
    let d = &alert.device;
    let p = &alert.persistence;
    let (activity_id, activity_name) = match alert.activity {
        AlertActivity::Create => (1, "Create"),
        AlertActivity::Update => (2, "Update"),
    };
    let transport = f.transport.to_ascii_lowercase();
    let protocol_num = match transport.as_str() {
        "tcp" => Some(6),
        "udp" => Some(17),
        _ => None,
    };
    let mut dst = Map::new();
    dst.insert("ip".into(), json!(f.dest_ip.to_string()));
    dst.insert("port".into(), json!(f.dest_port));
    if let Some(name) = &alert.app.server_name {
        dst.insert("hostname".into(), json!(name));
    }
    let mut conn = Map::new();
    conn.insert("protocol_name".into(), json!(transport));
    if let Some(n) = protocol_num {
        conn.insert("protocol_num".into(), json!(n));
    }
    conn.insert(
        "protocol_ver_id".into(),
        json!(if f.src_ip.is_ipv4() { 4 } else { 6 }),
    );
    conn.insert("direction_id".into(), json!(2));
    conn.insert("direction".into(), json!("Outbound"));
    if let Some(c) = &f.community_id {
        conn.insert("community_uid".into(), json!(c));
    }
    let mut evidence = Map::new();
    evidence.insert(
        "src_endpoint".into(),
        json!({"ip": f.src_ip.to_string(), "port": f.src_port}),
    );
    evidence.insert("dst_endpoint".into(), Value::Object(dst));
    evidence.insert("connection_info".into(), Value::Object(conn));
    // OCSF's `tls` requires `version`: written when the handshake gave one (the SNI also
    // stands in `dst_endpoint.hostname`).
    if let Some(v) = f
        .tls
        .as_ref()
        .and_then(|t| t.get("version"))
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
    {
        let mut tls = Map::new();
        tls.insert("version".into(), json!(v));
        if let Some(sni) = &f.sni {
            tls.insert("sni".into(), json!(sni));
        }
        evidence.insert("tls".into(), Value::Object(tls));
    }
    let mut device = Map::new();
    if let Some(udid) = &d.udid {
        device.insert("uid".into(), json!(udid));
        device.insert("udid".into(), json!(udid));
    }
    device.insert("ip".into(), json!(f.src_ip.to_string()));
    device.insert("is_supervised".into(), json!(d.supervised));
    device.insert("is_managed".into(), json!(d.managed));
    if d.in_inventory {
        device.insert(
            "is_personal".into(),
            json!(d.ownership == crate::inventory::Ownership::Personal),
        );
    }
    if let Some(n) = &d.name {
        device.insert("name".into(), json!(n));
    }
    if let Some(m) = &d.model {
        device.insert("model".into(), json!(m));
    }
    if let Some(s) = &d.serial_number {
        device.insert("hw_info".into(), json!({ "serial_number": s }));
    }
    if d.os_name.is_some() || d.os_version.is_some() {
        device.insert(
            "os".into(),
            json!({
                "name": d.os_name.clone().unwrap_or_else(|| "Unknown".to_string()),
                "type_id": os_type_id(d.os_name.as_deref()),
                "version": d.os_version,
            }),
        );
    }
    let (type_id, type_name) = match d.os_name.as_deref() {
        Some("iPadOS") => (4, "Tablet"),
        Some("iOS") => (5, "Mobile"),
        _ => (0, "Unknown"),
    };
    device.insert("type_id".into(), json!(type_id));
    device.insert("type".into(), json!(type_name));
    let owner = d.user.as_ref().and_then(owner_of);
    if let Some(o) = &owner {
        device.insert("owner".into(), Value::Object(o.clone()));
    }
    let observables = observables_of(alert, owner.as_ref());
    let resources: Vec<Value> = alert
        .app
        .bundle_id
        .iter()
        .map(|b| {
            let mut r = Map::new();
            r.insert("uid".into(), json!(b));
            r.insert("name".into(), json!(b));
            r.insert("type".into(), json!("iOS App"));
            Value::Object(r)
        })
        .collect();
    let confidence_score = (alert.confidence.clamp(0.0, 1.0) * 100.0).round() as i64;
    let confidence_id = match confidence_score {
        0 => 0,
        1..=39 => 1,
        40..=74 => 2,
        _ => 3,
    };
    let title = format!(
        "{} on {}/{} from {}",
        f.app_proto,
        f.transport,
        f.dest_port,
        alert
            .app
            .bundle_id
            .clone()
            .or_else(|| alert.app.role.as_ref().map(|r| format!("role {r}")))
            .or_else(|| d.udid.clone())
            .unwrap_or_else(|| f.src_ip.to_string())
    );
    let portolan = to_eve(alert)
        .get("portolan")
        .cloned()
        .unwrap_or(Value::Null);
    json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": 200400 + activity_id,
        "type_name": format!("Detection Finding: {activity_name}"),
        "time": ms(alert.ts_us),
        "message": alert.signature.signature,
        "severity_id": alert.severity.ocsf_id(),
        "severity": alert.severity.caption(),
        "confidence_id": confidence_id,
        "confidence_score": confidence_score,
        "risk_score": alert.score.round() as i64,
        "status_id": 1,
        "status": "New",
        "status_code": "new",
        "status_detail": alert.kind,
        "timezone_offset": 0,
        "observables": observables,
        "is_alert": true,
        "metadata": {
            "version": product.schema_version,
            "uid": format!("portolan-alert-{}", alert.id),
            "correlation_uid": alert.finding_key,
            "product": {
                "name": product.name,
                "uid": product.name.to_ascii_lowercase(),
                "vendor_name": product.vendor_name,
                "version": product.version,
            },
            "log_name": "alerts",
            "log_provider": product.name,
        },
        "finding_info": {
            "uid": format!("portolan-finding-{}", alert.finding_id),
            "title": title,
            "desc": alert.reasons.join("; "),
            "types": [alert.signature.signature],
            "analytic": {
                "uid": ANALYTIC_ID,
                "name": ANALYTIC_NAME,
                "type_id": 1,
                "type": "Rule",
            },
            "attacks": [{
                "technique": { "uid": TECHNIQUE_ID, "name": TECHNIQUE_NAME },
                "tactic": { "uid": TACTIC_ID, "name": TACTIC_NAME },
                "version": product.attack_version,
            }],
            "first_seen_time": ms(p.first_seen_us),
            "last_seen_time": ms(p.last_seen_us),
            "related_events_count": p.sessions,
        },
        "evidences": [Value::Object(evidence)],
        "device": Value::Object(device),
        "resources": resources,
        "unmapped": { "portolan": portolan },
    })
}

/// OCSF `user` (`device.owner`) from the MDM's user: `name` (the account name), `full_name`,
/// `email_addr` (only when it has the form OCSF's `email_t` requires), `type_id` 1 User. `None`
/// when the MDM names neither an account nor a full name.
fn owner_of(u: &MdmUser) -> Option<Map<String, Value>> {
    let name = u.username.as_deref().filter(|s| !s.is_empty());
    let full = u.real_name.as_deref().filter(|s| !s.is_empty());
    if name.is_none() && full.is_none() {
        return None;
    }
    let mut o = Map::new();
    o.insert("name".into(), json!(name.or(full)));
    if let Some(f) = full {
        o.insert("full_name".into(), json!(f));
    }
    if let Some(e) = u.email.as_deref().filter(|e| is_ocsf_email(e)) {
        o.insert("email_addr".into(), json!(e));
    }
    o.insert("type_id".into(), json!(1));
    o.insert("type".into(), json!("User"));
    Some(o)
}

/// The form OCSF 1.5.0's `email_t` requires: `^[a-zA-Z0-9!#$%&'*+-/=?^_`{|}~.]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$`.
fn is_ocsf_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    // `+-/` in the class is the range `+ , - . /`.
    let local_ok = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+,-./=?^_`{|}~".contains(c);
    let Some((first, rest)) = domain.split_once('.') else {
        return false;
    };
    !local.is_empty()
        && local.chars().all(local_ok)
        && !first.is_empty()
        && first.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// One OCSF observable.
fn observable(name: &str, type_id: u32, type_name: &str, value: impl Into<Value>) -> Value {
    json!({ "name": name, "type_id": type_id, "type": type_name, "value": value.into() })
}

/// The finding's observables: device UDID (type 99, `UDID`), serial number (37), address (2),
/// server address (2), name (1 Hostname) and port (11), user name (4) and e-mail (5), app bundle
/// id (10 Resource UID).
fn observables_of(alert: &Alert, owner: Option<&Map<String, Value>>) -> Vec<Value> {
    let f = &alert.flow;
    let d = &alert.device;
    let mut out = Vec::new();
    if let Some(u) = &d.udid {
        out.push(observable("device.udid", 99, "UDID", u.as_str()));
    }
    if let Some(s) = &d.serial_number {
        out.push(observable(
            "device.hw_info.serial_number",
            37,
            "Serial Number",
            s.as_str(),
        ));
    }
    out.push(observable(
        "device.ip",
        2,
        "IP Address",
        f.src_ip.to_string(),
    ));
    out.push(observable(
        "evidences.dst_endpoint.ip",
        2,
        "IP Address",
        f.dest_ip.to_string(),
    ));
    if let Some(h) = &alert.app.server_name {
        out.push(observable(
            "evidences.dst_endpoint.hostname",
            1,
            "Hostname",
            h.as_str(),
        ));
    }
    out.push(observable(
        "evidences.dst_endpoint.port",
        11,
        "Port",
        f.dest_port.to_string(),
    ));
    if let Some(o) = owner {
        if let Some(n) = o.get("name").and_then(Value::as_str) {
            out.push(observable("device.owner.name", 4, "User Name", n));
        }
        if let Some(e) = o.get("email_addr").and_then(Value::as_str) {
            out.push(observable("device.owner.email_addr", 5, "Email Address", e));
        }
    }
    if let Some(b) = &alert.app.bundle_id {
        out.push(observable("resources.uid", 10, "Resource UID", b.as_str()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mdm_emails_of_ocsf_form_are_written() {
        assert!(is_ocsf_email("user0001@corp.example.com"));
        assert!(is_ocsf_email("a.b+tag@x-y.example"));
        for bad in [
            "",
            "user",
            "user@",
            "@corp.example.com",
            "user@corp",
            "us er@corp.example.com",
            "user@@corp.example.com",
            "user@.example.com",
        ] {
            assert!(!is_ocsf_email(bad), "{bad:?}");
        }
        let user = MdmUser {
            username: Some("alice".into()),
            email: Some("not an address".into()),
            ..MdmUser::default()
        };
        let o = owner_of(&user).expect("an account name");
        assert_eq!(o["name"], "alice");
        assert!(!o.contains_key("email_addr"));
        assert!(owner_of(&MdmUser::default()).is_none());
    }
}
