//! Portolan's DPDK poll-mode dataplane.
//!
//! Owns: the safe DPDK layer ([`dpdk`], the only module outside `portolan-dpdk-sys` with
//! `unsafe`), the per-queue worker loop ([`worker`]), the classifier on the worker
//! ([`classify`], plugged in through [`observer::PacketObserver`]; its counters in [`report`]), the hand-off of finished
//! flows to the control plane ([`handoff`]), the software managed-subnet prefilter ([`prefilter`]), the NIC bypass of judged flows through rte_flow rules ([`nic_bypass`]), the
//! start-up shared by replay of captures through `net_pcap` and the daemon's ports ([`runtime`],
//! its two modes [`runtime::offline`] and [`runtime::online`]), what a run reports ([`report`])
//! and the probe of ports behind `portolan hwcheck` ([`hwcheck`]). Must not: decode protocols beyond L4 itself (`portolan-classify` does), or keep
//! state across workers.

pub mod classify;
// The one place `unsafe` is allowed in this crate (denied everywhere else by Cargo.toml).
#[allow(unsafe_code)]
pub mod dpdk;
pub mod handoff;
pub mod hwcheck;
pub mod nic_bypass;
pub mod observer;
pub mod prefilter;
pub mod report;
pub mod runtime;
pub mod worker;

pub use classify::{ClassifyObserver, UpdatePolicy};
pub use handoff::{
    flow_event_queues, DrainOptions, DrainPass, DrainStats, FlowEvent, FlowEventConsumer,
    FlowEventDrain, FlowEventReceiver, FlowEventSender, NameSource, TlsFingerprints,
};

pub use observer::{FlowOnly, FlowSink, PacketObserver};
pub use prefilter::ManagedSubnets;
pub use report::ClassificationReport;
pub use report::{ReplayReport, WorkerReport};
pub use runtime::offline::{replay, replay_observers, ReplayConfig, ReplayError, ReplayOutcome};
pub use runtime::online::LiveDataplane;
pub use runtime::Classifiers;
pub use worker::{Worker, WorkerConfig, WorkerCounters};
