//! Portolan control plane: puts each protocol-on-a-non-standard-port observation from the
//! dataplane into context — which managed device, which app and role, whether the pairing is
//! approved for that role, the device's lock and app state, whether it keeps happening — and turns
//! it into scored findings and alerts (Suricata EVE and OCSF Detection Finding) for ATT&CK T1509 /
//! DET0706 / AN1828.
//!
//! Owns: MDM inventory import ([`inventory`]), roles, baselines and exceptions ([`roles`]),
//! the app catalogue ([`app_catalogue`]), attribution ([`attribution`]), device state ([`device_state`]), findings and scoring
//! ([`findings`], [`scoring`]), learning ([`learning`]), the audit trail ([`audit`]), the SQLite
//! store ([`store`]), alert output ([`output`]) and the engine that ties them ([`engine`]).
//! Must not: depend on the dataplane crates — its input is [`observation::FlowObservation`],
//! filled from EVE flow records — touch packets, or block on the network.
//!
//! # Wiring a run (`portolan replay ... --inventory FILE [--leases FILE] [--roles FILE]
//! # [--device-states FILE] [--db FILE] [--eve FILE] [--ocsf FILE]`)
//!
//! 1. [`Store::open`] the `--db` file (or [`Store::open_in_memory`]); [`RoleSet::load`] the
//!    `--roles` file (or [`RoleSet::shipped_defaults`]); [`ControlConfig::load`] or `default()`.
//! 2. [`ControlPlane::new`] builds the shared core and its two sides, [`Ingest`] and [`Operator`];
//!    then [`Operator::set_port_registry`] with the dataplane's registry (a [`RegisteredPortsFn`]
//!    closure over it). Without one, each flow's `port_mismatch` verdict is used.
//! 3. [`Operator::import_inventory`] (Jamf, Graph or Apple MDM files, auto-detected),
//!    [`Operator::import_leases`], [`Operator::import_device_states`].
//! 4. For each EVE record from the dataplane: [`Ingest::ingest_eve`] (or
//!    [`Ingest::ingest_flow`] / [`Ingest::ingest_flows`] with
//!    [`FlowObservation::from_eve_flow`], and [`Ingest::ingest_dns`]); write each returned
//!    alert with [`output::eve::to_eve`] and [`output::ocsf::to_ocsf`] through
//!    [`output::JsonLinesWriter`].
//! 5. [`Ingest::flush`] at the end (learning counts); findings are committed as they happen.
//!
//! # Operator acts (each audited with the actor and a reason or note)
//!
//! [`Operator::import_inventory_bytes`] (an inventory held in memory, e.g. an API body),
//! [`Operator::approve_baseline`], [`Operator::add_exception`] /
//! [`Operator::revoke_exception`], [`Operator::acknowledge_alert`] /
//! [`Operator::close_alert`], and [`Operator::replace_roles`] (a reload of the roles file
//! without a restart: pairings and exceptions from the store are re-applied, findings stay).
//!
//! ```no_run
//! use portolan_control::{ControlConfig, ControlPlane, RoleSet, Store};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::open(std::path::Path::new("portolan.db"))?;
//! let ControlPlane { mut ingest, operator } =
//!     ControlPlane::new(store, RoleSet::shipped_defaults()?, ControlConfig::default())?;
//! operator.import_inventory(&["samples/inventory.json".into()], "replay")?;
//! operator.import_device_states(std::path::Path::new("samples/device-states.jsonl"))?;
//! let record: serde_json::Value = serde_json::from_str(r#"{"event_type":"flow","src_ip":"10.1.0.20","src_port":50000,"dest_ip":"203.0.113.9","dest_port":8443,"proto":"TCP","app_proto":"tls","port_mismatch":true,"flow":{"start":"2024-05-01T10:00:00.000000+0000","end":"2024-05-01T10:00:02.000000+0000"}}"#)?;
//! for alert in ingest.ingest_eve(&record)? {
//!     println!("{}", portolan_control::output::eve::to_eve(&alert));
//! }
//! ingest.flush()?;
//! # Ok(()) }
//! ```

pub mod alert;
pub mod app_catalogue;
pub mod attribution;
pub mod audit;
pub mod device_state;
pub mod engine;
pub mod findings;
pub mod fleet;
pub mod input_file;
pub mod inventory;
pub mod learning;
pub mod output;
pub mod retention;
pub mod roles;
pub mod scoring;
pub mod settings;
pub mod shared_config;
pub mod store;

/// The control plane's input contract ([`FlowObservation`], [`DnsAnswer`]), owned by
/// `portolan-model`.
pub use portolan_model::observation;
/// Timestamps (µs since the epoch and their text forms), owned by `portolan-model`.
pub use portolan_model::time as timestamp;

pub use alert::Alert;
pub use engine::{
    ControlConfig, ControlCore, ControlError, ControlPlane, Ingest, IngestStats, Operator,
    StoreHealthSnapshot,
};
pub use observation::{DnsAnswer, FlowObservation, FlowPhase};
pub use roles::{RegisteredPortMap, RegisteredPorts, RegisteredPortsFn, RoleSet};
pub use store::{Durability, Store};
