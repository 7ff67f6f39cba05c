//! Portolan's DPDK poll-mode dataplane.
//!
//! Owns: the safe DPDK layer ([`dpdk`], the only module outside `portolan-dpdk-sys` with
//! `unsafe`), the per-queue worker loop ([`worker`]), the classifier on the worker
//! ([`classify`], plugged in through [`worker::PacketObserver`]), the hand-off of finished
//! flows to the control plane ([`handoff`]), the software managed-subnet prefilter ([`prefilter`]), replay of captures through `net_pcap`
//! ([`mod@replay`]) and the probe of ports behind `portolan hwcheck` ([`hwcheck`]). Must not: decode protocols beyond L4 itself (`portolan-classify` does), or keep
//! state across workers.

pub mod classify;
// The one place `unsafe` is allowed in this crate (denied everywhere else by Cargo.toml).
#[allow(unsafe_code)]
pub mod dpdk;
pub mod handoff;
pub mod hwcheck;
pub mod prefilter;
pub mod replay;
pub mod worker;

pub use classify::{ClassificationReport, ClassifyObserver};
pub use handoff::{
    flow_event_queues, DrainOptions, DrainPass, DrainStats, FlowEvent, FlowEventConsumer,
    FlowEventDrain, FlowEventReceiver, FlowEventSender, NameSource, TlsFingerprints,
};

pub use prefilter::ManagedSubnets;
pub use replay::{
    replay, replay_observers, ReplayConfig, ReplayError, ReplayOutcome, ReplayReport, WorkerReport,
};
pub use worker::{FlowOnly, FlowSink, PacketObserver, Worker, WorkerConfig, WorkerCounters};
