//! Every EVE record Portolan writes has Suricata's shape (issue 14): the flow records, the
//! flow events handed to the control plane and the alerts of the sample run and of a synthetic
//! run validate against Suricata's own `etc/schema.json` (vendored in
//! `tests/fixtures/schemas/suricata/`) with Portolan's own `portolan` key set aside — 0 failures;
//! alert categories are spelled as in Suricata's `classification.config`. The shared captures
//! are validated in `tests/accuracy_ndpi.rs`, which replays them anyway.

mod common;
#[path = "common/eve_schema.rs"]
mod eve_schema;

use common::{assert_ok, json_lines, portolan, s};
use eve_schema::EveSchema;
use serde_json::{json, Value};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Replays `capture` through the whole pipeline; returns (flows, events, alerts).
fn run(dir: &Path, capture: &Path, inventory: &Path, states: &Path) -> [Vec<Value>; 3] {
    let (flows, events, eve) = (
        dir.join("flows.json"),
        dir.join("events.json"),
        dir.join("alerts.eve.json"),
    );
    let out = portolan(&[
        "replay",
        s(capture),
        "--flows",
        s(&flows),
        "--events",
        s(&events),
        "--inventory",
        s(inventory),
        "--device-states",
        s(states),
        "--eve",
        s(&eve),
    ]);
    assert_ok(&out);
    [json_lines(&flows), json_lines(&events), json_lines(&eve)]
}

fn assert_valid(schema: &EveSchema, what: &str, records: &[Value]) {
    let (n, failures) = schema.check_all(what, records);
    common::assert_schema_valid(what, "Suricata's schema", n, &failures);
}

#[test]
fn sample_run_records_match_suricatas_schema() {
    let schema = EveSchema::load();
    let dir = tempfile::tempdir().expect("tempdir");
    let samples = root().join("samples");
    let [flows, events, alerts] = run(
        dir.path(),
        &samples.join("egress-sample.pcap"),
        &samples.join("inventory.json"),
        &samples.join("device-states.jsonl"),
    );
    assert_eq!(flows.len(), 200, "the sample run has 200 flows");
    assert!(!alerts.is_empty(), "the sample run raises alerts");
    // The fields this issue moved into Suricata's shapes are there, not dropped.
    assert!(flows
        .iter()
        .any(|r| r["dns"]["version"] == 3 && r["dns"]["queries"][0]["rrname"].is_string()));
    assert!(flows
        .iter()
        .any(|r| r["quic"]["extensions"][0]["name"] == "alpn"));
    assert!(flows.iter().any(|r| r["smtp"]["helo"].is_string()));
    assert!(flows
        .iter()
        .all(|r| r["app_proto"] == "unknown" || r["portolan"]["port_mismatch"].is_boolean()));
    assert_valid(&schema, "sample flow", &flows);
    assert_valid(&schema, "sample flow event", &events);
    assert_valid(&schema, "sample alert", &alerts);
}

#[test]
fn synthetic_run_records_match_suricatas_schema() {
    let schema = EveSchema::load();
    let dir = tempfile::tempdir().expect("tempdir");
    let (cap, inv, states) = common::synth_site(dir.path());
    let [flows, events, alerts] = run(dir.path(), &cap, &inv, &states);
    assert!(flows.len() >= 1500, "{} flows", flows.len());
    assert!(!alerts.is_empty(), "20% non-standard ports raise alerts");
    assert_valid(&schema, "synthetic flow", &flows);
    assert_valid(&schema, "synthetic flow event", &events);
    assert_valid(&schema, "synthetic alert", &alerts);
}

#[test]
fn the_validator_rejects_the_shapes_suricata_does_not_have() {
    let schema = EveSchema::load();
    let base = json!({"timestamp": "2024-03-12T09:00:00.000000+0000", "event_type": "flow",
                      "src_ip": "10.0.0.1", "dest_ip": "10.0.0.2", "proto": "UDP"});
    assert!(schema.errors(&base).is_empty(), "a minimal flow is valid");
    for (key, bad) in [
        ("dns", json!({"name": "example.com"})),
        ("quic", json!({"client_alpns": ["h3"]})),
        ("ssh", json!({"client_software": "OpenSSH_9.6"})),
        ("smtp", json!({"name": "mail.example.com"})),
        ("xmpp", json!({"name": "im.example.com"})),
        ("port_mismatch", json!(true)),
    ] {
        let mut r = base.clone();
        r[key] = bad;
        assert!(!schema.errors(&r).is_empty(), "{key} must fail: {r}");
    }
    let mut own = base.clone();
    own["portolan"] = json!({"port_mismatch": true, "xmpp": {"name": "im.example.com"}});
    assert!(
        schema.errors(&own).is_empty(),
        "the portolan key is set aside"
    );
}

#[test]
fn alert_categories_are_spelled_as_suricatas_classification_config() {
    let config = std::fs::read_to_string(
        root().join("tests/fixtures/schemas/suricata/classification.config"),
    )
    .expect("classification.config");
    // `config classification: shortname,short description,priority`
    let descriptions: Vec<String> = config
        .lines()
        .filter_map(|l| l.strip_prefix("config classification:"))
        .filter_map(|rest| rest.split(',').nth(1))
        .map(|d| d.trim().to_string())
        .collect();
    assert!(descriptions.len() > 30, "parsed the classtypes");
    let signatures: toml::Table = toml::from_str(
        &std::fs::read_to_string(root().join("control/data/alert_signatures.toml"))
            .expect("alert_signatures.toml"),
    )
    .expect("alert_signatures.toml is TOML");
    assert!(!signatures.is_empty());
    for (kind, sig) in &signatures {
        let category = sig["category"].as_str().expect("category is a string");
        assert!(
            descriptions.iter().any(|d| d == category),
            "{kind}: category {category:?} is not a short description of Suricata's classification.config"
        );
    }
}
