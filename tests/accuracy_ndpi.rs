//! Protocol identification accuracy on the shared nDPI-labelled captures (issue 3): runs
//! `scripts/accuracy` with this build's `portolan` and checks the goals — at least 97% of the
//! scored flows agree overall, and at least 90% for every protocol with five or more scored
//! flows — on the adjudicated figure (without the reviewed exclusions of
//! `tests/fixtures/accuracy_exclusions.tsv`, labels the payload proves wrong), and prints the
//! raw figure (every scored flow) beside it. The same replays' flow records are validated against
//! Suricata's EVE schema (issue 14): 0 failures. Skips, saying so, when `../shared/pcaps/ndpi` is
//! absent.

#[path = "common/eve_schema.rs"]
mod eve_schema;

use serde_json::Value;
use std::path::Path;
use std::process::Command;

const OVERALL_GOAL: f64 = 97.0;
const PER_PROTOCOL_GOAL: f64 = 90.0;
const MIN_SCORED: u64 = 5;
/// The exclusions must stay a small, reviewed list: at most this share of the scored flows.
const MAX_EXCLUDED_SHARE: f64 = 0.01;

#[test]
fn ndpi_labelled_captures_meet_the_accuracy_goals() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pcaps = root.join("../shared/pcaps/ndpi");
    if !pcaps.join("labels.tsv").is_file() {
        eprintln!(
            "SKIPPED: {} is absent (the shared nDPI captures are not mounted here)",
            pcaps.display()
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("accuracy.json");
    let kept = dir.path().join("flows");
    let out = Command::new("python3")
        .arg(root.join("scripts/accuracy"))
        .arg("--portolan")
        .arg(env!("CARGO_BIN_EXE_portolan"))
        .arg("--pcaps")
        .arg(&pcaps)
        .arg("--json")
        .arg(&json)
        .arg("--diff")
        .arg("--keep-flows")
        .arg(&kept)
        .output()
        .expect("run python3 scripts/accuracy (python3 is required for this test)");
    let table = String::from_utf8_lossy(&out.stdout);
    println!("{table}");
    assert!(
        out.status.success(),
        "scripts/accuracy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("accuracy JSON"))
        .expect("accuracy JSON parses");
    assert_eq!(
        r["errors"].as_object().map(|e| e.len()),
        Some(0),
        "every capture must replay: {}",
        r["errors"]
    );
    assert_flow_records_match_suricatas_schema(&kept);
    let raw = &r["overall"];
    let adjudicated = &r["adjudicated"];
    let scored = raw["scored"].as_u64().unwrap_or(0);
    let adj_scored = adjudicated["overall"]["scored"].as_u64().unwrap_or(0);
    println!(
        "raw: {}/{} agree ({:.1}%); adjudicated: {}/{} agree ({:.1}%), {} flow(s) excluded",
        raw["agree"],
        scored,
        raw["percent"].as_f64().unwrap_or(0.0),
        adjudicated["overall"]["agree"],
        adj_scored,
        adjudicated["overall"]["percent"].as_f64().unwrap_or(0.0),
        scored - adj_scored
    );
    assert!(scored >= 1000, "only {scored} flows were scored");
    let excluded = adjudicated["excluded"].as_array().map_or(0, Vec::len);
    assert_eq!(
        excluded as u64,
        scored - adj_scored,
        "every exclusion is listed"
    );
    assert!(
        (excluded as f64) <= MAX_EXCLUDED_SHARE * scored as f64,
        "{excluded} exclusions: keep the reviewed list short"
    );
    let overall = adjudicated["overall"]["percent"]
        .as_f64()
        .expect("adjudicated overall percent");
    let mut below = Vec::new();
    if let Some(protocols) = adjudicated["protocols"].as_object() {
        for (name, p) in protocols {
            let n = p["scored"].as_u64().unwrap_or(0);
            let pct = p["percent"].as_f64().unwrap_or(0.0);
            if n >= MIN_SCORED && pct < PER_PROTOCOL_GOAL {
                below.push(format!("{name} {pct:.1}% of {n}"));
            }
        }
    }
    assert!(
        overall >= OVERALL_GOAL,
        "adjudicated overall {overall:.1}% < {OVERALL_GOAL}%\n{table}"
    );
    assert!(
        below.is_empty(),
        "protocols below {PER_PROTOCOL_GOAL}% (adjudicated, with >= {MIN_SCORED} scored flows): {}\n{table}",
        below.join(", ")
    );
}

/// Every flow record of every capture validates against Suricata's schema (Portolan's own
/// `portolan` key set aside).
fn assert_flow_records_match_suricatas_schema(kept: &Path) {
    let schema = eve_schema::EveSchema::load();
    let mut files: Vec<_> = std::fs::read_dir(kept)
        .expect("kept flow records")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let (mut records, mut failures) = (0, Vec::new());
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read flow records");
        let values: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        let (n, mut fails) = schema.check_all(name.as_deref().unwrap_or("?"), &values);
        records += n;
        failures.append(&mut fails);
    }
    println!(
        "Suricata schema: {records} flow records of {} captures, {} failures",
        files.len(),
        failures.len()
    );
    assert!(records >= 1000, "only {records} flow records were kept");
    assert!(
        failures.is_empty(),
        "{} of {records} flow records fail Suricata's schema:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
