//! Suricata EVE `alert` records.
//!
//! Owns: the mapping of an [`Alert`] to an EVE object: the flow fields (`timestamp, flow_id,
//! event_type, src_ip, src_port, dest_ip, dest_port, proto, app_proto` through the one EVE header
//! writer, `portolan_model::EveHeader`; `community_id`),
//! `alert{action, gid, signature_id, rev, signature, category, severity, metadata}` — metadata
//! values are arrays of strings as Suricata writes them — `flow{...}`, `tls`/`http` as in flow
//! records, and the `portolan` object (the one key of the record that is not Suricata's) with
//! device (and the MDM's user of it), app, baseline, device state, persistence, score and reasons,
//! and `proxy` (the tunnel's target) when the flow went through an explicit proxy. Timestamps use EVE's form (`2024-05-01T10:00:00.000000+0000`).
//! Must not: invent fields Suricata gives another meaning.

use serde_json::{json, Value};

use super::{
    ANALYTIC_ID, DETECTION_STRATEGY_ID, TACTIC_ID, TACTIC_NAME, TECHNIQUE_ID, TECHNIQUE_NAME,
};
use crate::alert::Alert;
use crate::timestamp::format_eve;
use portolan_model::EveHeader;

fn opt<T: serde::Serialize>(v: &Option<T>) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Renders one alert as an EVE object.
pub fn to_eve(alert: &Alert) -> Value {
    let f = &alert.flow;
    let mut record = EveHeader::new(
        "alert",
        alert.ts_us,
        f.flow_id,
        (f.src_ip, f.src_port),
        (f.dest_ip, f.dest_port),
        &f.transport,
        &f.app_proto,
    )
    .into_object();
    if let Some(c) = &f.community_id {
        record.insert("community_id".into(), json!(c));
    }
    record.insert(
        "alert".into(),
        json!({
            "action": "allowed",
            "gid": alert.signature.gid,
            "signature_id": alert.signature.signature_id,
            "rev": alert.signature.rev,
            "signature": alert.signature.signature,
            "category": alert.signature.category,
            "severity": alert.severity.eve_severity(),
            "metadata": {
                "mitre_technique_id": [TECHNIQUE_ID],
                "mitre_technique_name": [TECHNIQUE_NAME.replace(' ', "_")],
                "mitre_tactic_id": [TACTIC_ID],
                "mitre_tactic_name": [TACTIC_NAME.replace(' ', "_")],
                "detection_strategy": [DETECTION_STRATEGY_ID],
                "analytic": [ANALYTIC_ID],
                "portolan_finding_id": [alert.finding_id.to_string()],
                "portolan_severity": [alert.severity.as_str()],
            }
        }),
    );
    record.insert(
        "flow".into(),
        json!({
            "pkts_toserver": f.pkts_toserver,
            "pkts_toclient": f.pkts_toclient,
            "bytes_toserver": f.bytes_toserver,
            "bytes_toclient": f.bytes_toclient,
            "start": format_eve(f.start_us),
            "end": format_eve(f.end_us),
            "age": f.duration_us() / 1_000_000,
            "alerted": true,
        }),
    );
    match (&f.tls, &f.sni) {
        (Some(tls), _) => {
            record.insert("tls".into(), tls.clone());
        }
        (None, Some(sni)) => {
            record.insert("tls".into(), json!({ "sni": sni }));
        }
        _ => {}
    }
    match (&f.http, &f.http_host) {
        (Some(http), _) => {
            record.insert("http".into(), http.clone());
        }
        (None, Some(host)) => {
            record.insert("http".into(), json!({ "hostname": host }));
        }
        _ => {}
    }
    if let Some(sni) = &f.quic_sni {
        record.insert("quic".into(), json!({ "sni": sni }));
    }
    let d = &alert.device;
    let p = &alert.persistence;
    record.insert(
        "portolan".into(),
        json!({
            "finding_id": alert.finding_id,
            "alert_id": alert.id,
            "activity": alert.activity,
            "kind": alert.kind,
            "device": {
                "udid": opt(&d.udid),
                "serial_number": opt(&d.serial_number),
                "name": opt(&d.name),
                "model": opt(&d.model),
                "os": d.os_name.as_ref().map(|n| match &d.os_version { Some(v) => format!("{n} {v}"), None => n.clone() }),
                "supervised": d.supervised,
                "managed": d.managed,
                "ownership": d.ownership,
                "in_inventory": d.in_inventory,
                "attribution": opt(&d.attribution),
                "confidence": d.confidence,
                "user": opt(&d.user),
            },
            "app": {
                "bundle_id": opt(&alert.app.bundle_id),
                "role": opt(&alert.app.role),
                "managed": opt(&alert.app.app_managed),
                "server_name": opt(&alert.app.server_name),
                "matched_domain": opt(&alert.app.matched_domain),
                "attribution": alert.app.method.as_str(),
                "confidence": alert.app.confidence,
                "candidates": alert.app.candidates,
                "evidence": alert.app.evidence,
            },
            "baseline": {
                "role": alert.baseline.role,
                "basis": alert.baseline.basis,
                "approved_ports": alert.baseline.approved_ports,
            },
            "device_state": {
                "lock_state": opt(&alert.device_state.lock_state),
                "app_state": opt(&alert.device_state.app_state),
                "seconds_since_user_interaction": opt(&alert.device_state.seconds_since_user_interaction),
            },
            "persistence": {
                "sessions": p.sessions,
                "first_seen": format_eve(p.first_seen_us),
                "last_seen": format_eve(p.last_seen_us),
                "interval_seconds": p.interval_seconds.map(|s| (s * 10.0).round() / 10.0),
                "interval_cv": p.interval_cv.map(|c| (c * 1000.0).round() / 1000.0),
                "longest_session_seconds": p.longest_session_s,
                "connected_seconds": p.connected_s,
            },
            "score": alert.score,
            "severity": alert.severity,
            "confidence": alert.confidence,
            "reasons": alert.reasons,
        }),
    );
    if let (Some(proxy), Some(Value::Object(own))) = (&f.proxy, record.get_mut("portolan")) {
        // The real destination behind an explicit proxy: `dest_ip`/`dest_port` are the proxy
        // hop, the finding is judged on `proxy.port`.
        own.insert("proxy".into(), opt(&Some(proxy)));
    }
    Value::Object(record)
}
