//! What a run reports: the replay summary ([`ReplayReport`], one [`WorkerReport`] per worker)
//! and a classifying worker's counters ([`ClassificationReport`]: flows per protocol, port
//! mismatches, hand-off events and drops, classifier calls and cycles, reassembly).
//!
//! Owns: the reports' shapes (serialised as the `--summary` JSON) and how two classification
//! reports add up. Must not: count anything itself (the worker and its observer do) or depend
//! on the worker or the classifier, so both can name these types without importing each other.

use crate::dpdk::{PortInfo, PortStats};
use portolan_flow::FlowTableStats;
use portolan_packet::defrag::DefragStats;
use portolan_packet::{DropReason, Encapsulation};
use serde::Serialize;
use std::collections::BTreeMap;

/// Per-worker classification counters, as the replay summary shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClassificationReport {
    /// Finished flows per `app_proto` (`unknown` included; protocols with no flow left out).
    pub app_protos: BTreeMap<&'static str, u64>,
    /// Finished flows with a decided protocol (not `unknown`).
    pub decided_flows: u64,
    /// Decided flows on a port the registry does not list for their protocol.
    pub port_mismatches: u64,
    /// Flow events queued for the control plane.
    pub flow_events: u64,
    /// Flow events dropped because the worker's hand-off queue was full.
    pub ring_drops: u64,
    /// Early DNS-answer events queued (sent as each DNS flow's first response was read; not
    /// flow events).
    pub dns_answer_events: u64,
    /// Early events queued: a flow handed off as soon as it was identified (protocol decided,
    /// the name attribution needs read or given up), before it ended.
    pub early_events: u64,
    /// Interim updates queued (an open flow's duration and counters, at most one per flow per
    /// interval).
    pub interim_events: u64,
    /// Early events and interim updates dropped because the worker's hand-off queue was full.
    pub update_drops: u64,
    /// Classifier calls on undecided flows (Hyperscan prefilter and confirming parsers).
    pub scan_calls: u64,
    /// TSC cycles those calls took.
    pub scan_cycles: u64,
    /// Classifier calls on decided flows (the decided parser enriching metadata, STARTTLS and
    /// upgrade watches).
    pub enrich_calls: u64,
    /// TSC cycles those calls took.
    pub enrich_cycles: u64,
    /// Payload packets of judged flows (classification finished in that direction) that
    /// skipped the Hyperscan prefilter and the parsers: the software bypass.
    pub bypassed_packets: u64,
    /// TCP segments held by the stream reassembler because they arrived ahead of a gap.
    pub reassembly_held: u64,
    /// Out-of-order segments dropped at the reassembler's bounds (per-direction ranges full,
    /// or the worker's reorder buffers all lent out).
    pub reassembly_drops: u64,
    /// Segments ignored because all their bytes had been inspected already (retransmissions).
    pub reassembly_retransmissions: u64,
    /// Segments overlapping bytes seen before with different content (first copy kept;
    /// `tcp.overlap_mismatch` on the flow).
    pub reassembly_overlap_mismatches: u64,
    /// Gaps the reassembler gave up waiting for (a segment lost before the capture point).
    pub reassembly_gaps_skipped: u64,
}

impl ClassificationReport {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &ClassificationReport) {
        for (k, v) in &other.app_protos {
            *self.app_protos.entry(k).or_default() += v;
        }
        self.decided_flows += other.decided_flows;
        self.port_mismatches += other.port_mismatches;
        self.flow_events += other.flow_events;
        self.ring_drops += other.ring_drops;
        self.dns_answer_events += other.dns_answer_events;
        self.early_events += other.early_events;
        self.interim_events += other.interim_events;
        self.update_drops += other.update_drops;
        self.scan_calls += other.scan_calls;
        self.scan_cycles += other.scan_cycles;
        self.enrich_calls += other.enrich_calls;
        self.enrich_cycles += other.enrich_cycles;
        self.bypassed_packets += other.bypassed_packets;
        self.reassembly_held += other.reassembly_held;
        self.reassembly_drops += other.reassembly_drops;
        self.reassembly_retransmissions += other.reassembly_retransmissions;
        self.reassembly_overlap_mismatches += other.reassembly_overlap_mismatches;
        self.reassembly_gaps_skipped += other.reassembly_gaps_skipped;
    }
}

/// Flow table counters of one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FlowTableSummary {
    /// Flows created.
    pub created: u64,
    /// Flows ended by idle timeout.
    pub expired: u64,
    /// Flows evicted because the table was full.
    pub evicted: u64,
    /// Of `evicted`: half-open TCP flows (SYN or SYN-ACK only), evicted before any other.
    pub evicted_half_open: u64,
    /// Of `evicted`: TCP flows already closed by FIN or RST.
    pub evicted_closed: u64,
    /// Flows ended because a SYN reused their 5-tuple.
    pub reused: u64,
    /// Flows still open at the end of the capture (ended with reason shutdown).
    pub open_at_end: u64,
}

impl From<FlowTableStats> for FlowTableSummary {
    fn from(s: FlowTableStats) -> Self {
        FlowTableSummary {
            created: s.created,
            expired: s.expired,
            evicted: s.evicted,
            evicted_half_open: s.evicted_half_open,
            evicted_closed: s.evicted_closed,
            reused: s.reused,
            open_at_end: s.shutdown,
        }
    }
}

/// What one worker saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerReport {
    /// RX queue polled.
    pub queue: u16,
    /// Lcore the worker ran on.
    pub lcore: u32,
    /// Capture behind the queue.
    pub capture: String,
    /// Frames received.
    pub packets: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Frames decoded to TCP/UDP and accounted in a flow.
    pub decoded: u64,
    /// Decoded frames skipped by the managed-subnet prefilter (outside every managed subnet).
    pub prefiltered: u64,
    /// Flows (ended during the capture plus open at its end).
    pub flows: u64,
    /// Frames not decoded, by reason (every reason listed).
    pub drops: BTreeMap<&'static str, u64>,
    /// Frames carried in each encapsulation the decoder walked (every kind listed).
    pub encapsulated: BTreeMap<&'static str, u64>,
    /// Frames larger than one mbuf (only their first segment was decoded).
    pub multi_segment: u64,
    /// Frames without a capture timestamp.
    pub no_timestamp: u64,
    /// Seconds from the worker's first packet to the end of its capture.
    pub busy_seconds: f64,
    /// TSC cycles per received frame.
    pub cycles_per_packet: f64,
    /// Of `cycles_per_packet`, those inside the PMD's receive call (the I/O: for `net_pcap`,
    /// reading the file and copying into mbufs); the rest is the worker's own work.
    pub rx_cycles_per_packet: f64,
    /// Packets the port counted on this queue.
    pub port_q_ipackets: u64,
    /// Flow table counters.
    pub flow_table: FlowTableSummary,
    /// IP defragmentation: fragments received, datagrams reassembled, dropped overlapping or
    /// timed out, tiny first fragments (evasion attempts).
    pub defrag: DefragStats,
    /// Flows per protocol, mismatches, flow events and `ring_drops` (absent without
    /// classification).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub classification: Option<ClassificationReport>,
}

/// Summary of a replay (serialised as the `--summary` JSON object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayReport {
    /// Frames received over all queues.
    pub packets: u64,
    /// Bytes received (captured frame lengths).
    pub bytes: u64,
    /// Flows over all workers.
    pub flows: u64,
    /// Frames decoded to TCP/UDP and accounted in a flow.
    pub decoded: u64,
    /// Decoded frames skipped by the managed-subnet prefilter (outside every managed subnet).
    pub prefiltered: u64,
    /// Frames not decoded, by reason (every reason listed).
    pub drops: BTreeMap<&'static str, u64>,
    /// Frames carried in each encapsulation the decoder walked (GRE, ERSPAN, VXLAN, GENEVE,
    /// MPLS, IP in IP; every kind listed), decoded or not.
    pub encapsulated: BTreeMap<&'static str, u64>,
    /// IP defragmentation over all workers (see [`WorkerReport::defrag`]).
    pub defrag: DefragStats,
    /// Seconds from launching the workers to the last one finishing.
    pub wall_seconds: f64,
    /// Million packets per second over `wall_seconds`.
    pub mpps: f64,
    /// Gigabits per second over `wall_seconds`.
    pub gbps: f64,
    /// Link type of the captures.
    pub link_type: &'static str,
    /// True when the port's packet counters equal the packets the workers saw (total and per
    /// queue) and no packet was lost to allocation failures or errors.
    pub port_counters_match: bool,
    /// Flows per protocol, mismatches, flow events and `ring_drops` over all workers (absent
    /// without classification).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub classification: Option<ClassificationReport>,
    /// Per worker.
    pub workers: Vec<WorkerReport>,
    /// The port's counters at the end.
    pub port: PortStats,
    /// The port's device info.
    pub port_info: PortInfo,
    /// Seconds the workers looped over the captures in memory (steady-state mode), absent for
    /// a replay to the end of the captures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub infinite_rx_seconds: Option<f64>,
}

/// `cycles` per packet (0 without packets).
pub(crate) fn per_packet(cycles: u64, packets: u64) -> f64 {
    if packets > 0 {
        cycles as f64 / packets as f64
    } else {
        0.0
    }
}

pub(crate) fn drops_map<'a>(
    counts: impl Iterator<Item = (DropReason, u64)> + 'a,
) -> BTreeMap<&'static str, u64> {
    counts.map(|(r, n)| (r.as_str(), n)).collect()
}

pub(crate) fn encapsulated_map<'a>(
    counts: impl Iterator<Item = (Encapsulation, u64)> + 'a,
) -> BTreeMap<&'static str, u64> {
    counts.map(|(k, n)| (k.as_str(), n)).collect()
}
