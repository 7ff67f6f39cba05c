//! The appliance's hardware description and the explicit offload plan.
//!
//! Owns: reading and validating the hardware description (TOML: ports, RX queues and their
//! lcores, main and control cores, memory, mempool and ring sizes, the RSS key, flow-table size
//! and timeouts, inspection depth, wanted offloads) — [`config`]; the symmetric Toeplitz RSS
//! hash and hash → queue mapping — [`rss`]; deciding per port which offloads run in the NIC and
//! which fall back to software — [`plan`]; CPU discovery and pinning of helper threads —
//! [`cpus`]; and splitting a capture into per-queue captures by
//! that hash for net_pcap, which has no RSS — [`shard`]. Must not: call DPDK. The dataplane
//! probes devices (`rte_eth_dev_info`, `rte_flow_validate`), fills [`PortCapabilities`] and
//! calls [`plan_offloads`]; everything here is plain Rust and testable without a NIC.

pub mod config;
pub mod core_list;
pub mod cpus;
pub mod plan;
pub mod rss;
pub mod shard;

pub use config::{
    FieldProblem, HardwareDescription, HwConfigError, InspectionDepth, InvalidDescription,
    PortConfig, RssFields, MAX_DESCRIPTION_BYTES,
};
pub use core_list::CoreList;
pub use plan::{
    plan_offloads, FlowRuleKind, Offload, OffloadDecision, OffloadPlan, Placement, PlanError,
    PortCapabilities, PortPlan, RteFlowError,
};
pub use rss::{toeplitz_hash, QueueMapping, RssTuple, SYMMETRIC_KEY};
pub use shard::{shard_capture, RssSharder, ShardError, ShardSummary};
