//! OCSF Detection Finding (class 2004) records.
//!
//! Owns: the mapping of an [`Alert`] to a Detection Finding: `class_uid 2004`, `category_uid 2`,
//! `activity_id` 1 Create / 2 Update (`type_uid = 200400 + activity_id`), `finding_info` with the
//! ATT&CK analytic and `attacks[]`, `evidences[]` (endpoints, connection info with the Community
//! ID, TLS), `device` (with `udid`, `is_supervised`, `is_managed`), severity, confidence and risk
//! scores, status, `metadata`, and the Portolan context under `unmapped.portolan`.
//! Times are OCSF `timestamp_t` (ms since the epoch).
//! Must not: claim a schema attribute it does not fill.

use serde_json::{json, Map, Value};

use super::eve::to_eve;
use super::{ANALYTIC_ID, ANALYTIC_NAME, TACTIC_ID, TACTIC_NAME, TECHNIQUE_ID, TECHNIQUE_NAME};
use crate::alert::{Alert, AlertActivity};

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
    if let Some(sni) = &f.sni {
        let mut tls = Map::new();
        tls.insert("sni".into(), json!(sni));
        if let Some(v) = f
            .tls
            .as_ref()
            .and_then(|t| t.get("version"))
            .and_then(Value::as_str)
        {
            tls.insert("version".into(), json!(v));
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
        "is_alert": true,
        "metadata": {
            "version": product.schema_version,
            "uid": format!("portolan-alert-{}", alert.id),
            "correlation_uid": alert.finding_key,
            "product": {
                "name": product.name,
                "vendor_name": product.vendor_name,
                "version": product.version,
            },
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
        "unmapped": { "portolan": portolan },
    })
}
