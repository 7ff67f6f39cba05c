//! Per-worker flow table: bidirectional TCP/UDP flows, TCP state, idle timeouts, Community ID and
//! Suricata EVE flow records.
//!
//! Owns: turning decoded packets ([`portolan_packet::Packet`]) into flows with client/server
//! roles and per-direction counters, ending them (idle timeout on capture time, eviction when
//! full, TCP port reuse, shutdown), and describing finished flows as EVE records. Must not:
//! parse frames, look at payload bytes, lock, or allocate per packet once the table is warm —
//! one [`FlowTable`] lives on each worker lcore and only that worker touches it.

mod community_id;
mod config;
pub mod eve;
mod flow;
mod table;

pub use community_id::{community_id_v1, community_id_v1_digest};
pub use config::{FlowTableConfig, FlowTableConfigError, MAX_CAPACITY};
pub use flow::{FinishedFlow, Flow, FlowEndReason, FlowState, RoleSource, Side, TcpState};
pub use table::{FlowLookup, FlowTable, FlowTableStats};
