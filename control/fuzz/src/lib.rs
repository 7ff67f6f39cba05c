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
    ("radius", radius),
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

/// A RADIUS accounting datagram from the network (UDP payload). Checks that the parser only
/// accepts a packet whose length field fits what arrived, that the authenticator check agrees
/// with a re-signed copy, and that an accepted packet's event is well formed (a framed prefix is
/// its own network, at most `MAX_ADDRESSES` of them).
pub fn radius(data: &[u8]) {
    use portolan_control::radius::packet::{self, MAX_ADDRESSES};
    const SECRET: &[u8] = b"fuzz-secret";
    let _ = packet::request_authenticator_ok(data, SECRET);
    if let Ok(req) = packet::parse(data) {
        let declared = usize::from(u16::from_be_bytes([data[2], data[3]]));
        assert!((packet::HEADER_LEN..=data.len()).contains(&declared));
        assert!(req.framed.len() <= MAX_ADDRESSES);
        for f in &req.framed {
            if let Some(len) = f.prefix_len {
                let net = portolan_control::inventory::kea_leases::network(f.address, len);
                assert_eq!(net, f.address, "a prefix is stored as its network");
            }
        }
        // The same packet signed with the secret verifies; the fuzzer's own bytes almost never do.
        let mut signed = data[..declared].to_vec();
        signed[4..20].fill(0);
        let mut h = <md5::Md5 as md5::Digest>::new();
        md5::Digest::update(&mut h, &signed);
        md5::Digest::update(&mut h, SECRET);
        signed[4..20].copy_from_slice(&md5::Digest::finalize(h));
        assert!(packet::request_authenticator_ok(&signed, SECRET));
        let event = portolan_control::radius::AccountingEvent::from_request(
            &req,
            "192.0.2.1"
                .parse()
                .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
            0,
        );
        assert_eq!(event.framed.len(), req.framed.len());
    }
}

/// A Kea lease CSV file (DHCPv4 or DHCPv6 memfile).
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
