//! Every OCSF record Portolan writes is an exact Detection Finding (class 2004) of the version it
//! declares (issue 14): the alerts of the sample run and of a synthetic run validate against a
//! JSON Schema built from the vendored OCSF 1.5.0 files (`tests/common/ocsf_schema.rs`) — 0
//! failures — and carry the recommended attributes Portolan knows.

mod common;
#[path = "common/ocsf_schema.rs"]
mod ocsf_schema;

use common::{assert_ok, json_lines, portolan, s};
use ocsf_schema::{check_all, OcsfSchema};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;

fn assert_valid(schema: &OcsfSchema, what: &str, records: &[Value]) {
    let (n, failures) = check_all(schema, what, records);
    common::assert_schema_valid(what, &format!("OCSF {}", schema.version()), n, &failures);
}

fn sample_alerts(dir: &Path) -> Vec<Value> {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let ocsf = dir.join("alerts.ocsf.json");
    let out = portolan(&[
        "replay",
        s(&samples.join("egress-sample.pcap")),
        "--inventory",
        s(&samples.join("inventory.json")),
        "--device-states",
        s(&samples.join("device-states.jsonl")),
        "--ocsf",
        s(&ocsf),
    ]);
    assert_ok(&out);
    json_lines(&ocsf)
}

#[test]
fn sample_run_findings_are_exact_ocsf() {
    let schema = OcsfSchema::load();
    let dir = tempfile::tempdir().expect("tempdir");
    let alerts = sample_alerts(dir.path());
    assert!(!alerts.is_empty());
    for a in &alerts {
        assert_eq!(
            a["metadata"]["version"],
            schema.version(),
            "declares the vendored version"
        );
    }
    assert_valid(&schema, "sample OCSF", &alerts);
    // The recommended attributes Portolan knows are there.
    for a in &alerts {
        assert!(a["observables"].as_array().is_some_and(|o| o.len() >= 3));
        assert_eq!(a["metadata"]["product"]["uid"], "portolan");
        assert!(a["metadata"]["log_name"].is_string());
        assert!(a["status_code"].is_string());
        assert_eq!(a["timezone_offset"], 0);
        // The sample inventory names every device's user (Jamf `userAndLocation`).
        assert!(a["device"]["owner"]["name"].is_string(), "{a}");
        assert!(a["observables"]
            .as_array()
            .is_some_and(|o| o.iter().any(|x| x["type_id"] == 4)));
    }
    let tls: Vec<_> = alerts
        .iter()
        .filter(|a| {
            a["finding_info"]["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("tls "))
        })
        .collect();
    assert!(tls.len() >= 5);
    assert!(
        tls.iter()
            .all(|a| a["evidences"][0]["tls"]["version"].is_string()),
        "every TLS evidence carries the version"
    );
}

#[test]
fn synthetic_run_findings_are_exact_ocsf() {
    let schema = OcsfSchema::load();
    let dir = tempfile::tempdir().expect("tempdir");
    let (cap, inv, states) = common::synth_site(dir.path());
    let ocsf = dir.path().join("alerts.ocsf.json");
    assert_ok(&portolan(&[
        "replay",
        s(&cap),
        "--inventory",
        s(&inv),
        "--device-states",
        s(&states),
        "--ocsf",
        s(&ocsf),
    ]));
    let alerts = json_lines(&ocsf);
    assert!(alerts.len() > 5, "{} alerts", alerts.len());
    assert_valid(&schema, "synthetic OCSF", &alerts);
}

#[test]
fn the_generated_schema_rejects_what_ocsf_does_not_define() {
    let schema = OcsfSchema::load();
    let dir = tempfile::tempdir().expect("tempdir");
    let good = sample_alerts(dir.path()).remove(0);
    let (_, f) = check_all(&schema, "good", [&good]);
    assert!(f.is_empty(), "{f:?}");
    let v = schema.validator(&BTreeSet::new());
    let mutate = |path: &[&str], value: Option<Value>| {
        let mut r = good.clone();
        let mut at = &mut r;
        for p in &path[..path.len() - 1] {
            at = &mut at[*p];
        }
        let last = path[path.len() - 1];
        match value {
            Some(v) => at[last] = v,
            None => {
                at.as_object_mut().map(|o| o.remove(last));
            }
        }
        r
    };
    for (what, bad) in [
        ("missing time", mutate(&["time"], None)),
        (
            "missing finding_info.uid",
            mutate(&["finding_info", "uid"], None),
        ),
        (
            "unknown attribute",
            mutate(&["device", "is_jailbroken_maybe"], Some(json!(true))),
        ),
        ("string time", mutate(&["time"], Some(json!("yesterday")))),
        (
            "severity_id out of enum",
            mutate(&["severity_id"], Some(json!(42))),
        ),
        (
            "bad ip",
            mutate(&["device", "ip"], Some(json!("not-an-ip"))),
        ),
        (
            "port out of range",
            mutate(
                &["evidences"],
                Some(json!([{"src_endpoint": {"port": 70000}}])),
            ),
        ),
        ("wrong class", mutate(&["class_uid"], Some(json!(2001)))),
    ] {
        assert!(!v.is_valid(&bad), "{what} must fail");
    }
}
