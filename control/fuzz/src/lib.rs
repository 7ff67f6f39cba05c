//! The bodies of the control plane's fuzz targets, one function per target, each taking the raw
//! bytes an operator or an MDM could hand the appliance.
//!
//! Owns: what each target feeds to which loader and the properties it checks ([`TARGETS`] lists
//! them by the name of their `fuzz_targets/*.rs` binary).
//! Must not: depend on libFuzzer: `control/tests/fuzz_corpus.rs` includes this file in the normal
//! `cargo test` (stable toolchain) and replays every committed seed (`seeds/<target>/`) through
//! the same functions.
//!
//! Run one target (nightly, from `control/fuzz/`):
//! `nice -n 19 cargo +nightly fuzz run inventory corpus/inventory seeds/inventory -- -max_total_time=600`
//! (new inputs go to the first directory, `corpus/`, which git ignores; `seeds/` is the committed,
//! minimized set: `cargo +nightly fuzz cmin` refreshes it).

use std::path::Path;

use portolan_control::app_catalogue::AppCatalogue;
use portolan_control::device_state::parse_device_states;
use portolan_control::inventory::kea_leases::parse_kea_leases;
use portolan_control::inventory::{
    detect::detect, parse_inventory_bytes, parse_structured, InventoryShape, MobileAppCatalogue,
    MAX_NESTING_DEPTH,
};
use portolan_control::observation::FlowObservation;
use portolan_control::{ControlConfig, RoleSet};
use serde_json::Value;

/// A target: its binary's name and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("inventory", inventory),
    ("leases", leases),
    ("device_states", device_states),
    ("roles", roles),
    ("control_config", control_config),
    ("app_catalogue", app_catalogue),
    ("eve_flow", eve_flow),
];

const ORIGIN: &str = "fuzz-input";

/// An inventory document (Jamf Pro, Intune Graph, Apple MDM; JSON, XML or binary plist): the
/// bounded document reader, shape detection, the Graph app catalogue and every device parser.
/// Checks that a document accepted by the reader nests no deeper than [`MAX_NESTING_DEPTH`].
pub fn inventory(data: &[u8]) {
    let origin = Path::new(ORIGIN);
    if let Ok(value) = parse_structured(data, origin) {
        let depth = depth(&value);
        assert!(
            depth <= MAX_NESTING_DEPTH,
            "a document {depth} deep passed the limit of {MAX_NESTING_DEPTH}"
        );
        if detect(&value) == Ok(InventoryShape::GraphMobileApps) {
            let _ = MobileAppCatalogue::default().add_response(&value);
        }
    }
    let _ = parse_inventory_bytes(data, origin);
}

/// Nesting depth of a value, walked with an explicit stack (the value may be deep).
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(d + 1);
        stack.extend(children.map(|c| (c, d + 1)));
    }
    deepest
}

/// A Kea DHCPv4 lease CSV file.
pub fn leases(data: &[u8]) {
    let _ = parse_kea_leases(data, Path::new(ORIGIN));
}

/// A JSON-lines device-state file (the loader reads it as UTF-8 text; other bytes are refused
/// before parsing).
pub fn device_states(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_device_states(text, Path::new(ORIGIN));
    }
}

/// A roles file (TOML): roles, registered ports, exceptions.
pub fn roles(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = RoleSet::parse(text, Path::new(ORIGIN));
    }
}

/// The control configuration (TOML: scoring, attribution, learning, OCSF, inventory). Checks that
/// what `parse` accepts also passes [`ControlConfig::validate`].
pub fn control_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cfg) = ControlConfig::parse(text, Path::new(ORIGIN)) {
            assert!(cfg.validate().is_ok(), "parse accepted an invalid config");
        }
    }
}

/// The app catalogue (TOML).
pub fn app_catalogue(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = AppCatalogue::parse(text, Path::new(ORIGIN));
    }
}

/// EVE `flow` records, one JSON object a line, as the control plane ingests them
/// ([`FlowObservation::from_eve_flow`]).
pub fn eve_flow(data: &[u8]) {
    for line in data.split(|&b| b == b'\n') {
        if let Ok(record) = serde_json::from_slice::<Value>(line) {
            let _ = FlowObservation::from_eve_flow(&record);
        }
    }
}
