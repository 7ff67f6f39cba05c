//! Portolan's DPDK poll-mode dataplane.
//!
//! Owns: the safe DPDK layer ([`dpdk`], the only module outside `portolan-dpdk-sys` with
//! `unsafe`), the per-queue worker loop ([`worker`]) and replay of captures through `net_pcap`
//! ([`replay`]). Must not: decode protocols beyond L4 or keep state across workers; the
//! classifier plugs in through [`worker::PacketObserver`].

pub mod dpdk;
pub mod replay;
pub mod worker;

pub use replay::{replay, ReplayConfig, ReplayError, ReplayOutcome, ReplayReport, WorkerReport};
pub use worker::{FlowOnly, FlowSink, PacketObserver, Worker, WorkerConfig, WorkerCounters};
