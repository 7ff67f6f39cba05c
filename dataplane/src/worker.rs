//! The per-RX-queue poll loop: receive a burst, decode each frame, account it in the worker's
//! flow table, hand the packet and its flow to a [`PacketObserver`], expire idle flows on capture
//! time, and pass finished flows to a [`FlowSink`].
//!
//! Owns: one worker's flow table and counters. Must not: allocate, lock or make system calls per
//! packet (the flow table preallocates; finished flows are drained once per burst), or contain
//! `unsafe` (DPDK access goes through `crate::dpdk`).

use crate::dpdk::prefetch::prefetch0;
use crate::dpdk::xdp::{monotonic_ns, BypassKey, XdpBypassMap, PROTO_TCP, PROTO_UDP};
use crate::dpdk::{lcore, MbufBurst, RxQueue, TimestampField, BURST_SIZE};
use crate::nic_bypass::{BypassedFlow, Installed, NicBypass};
use crate::observer::{FlowSink, PacketObserver};
use crate::prefilter::ManagedSubnets;
use portolan_flow::{
    FinishedFlow, Flow, FlowLookup, FlowTable, FlowTableConfig, FlowTableConfigError,
    FlowTableStats, TcpState,
};
use portolan_packet::defrag::{DefragConfig, DefragStats, Defragmenter, Pushed};
use portolan_packet::{
    parse, parse_counting, DropReason, Encapsulation, Encapsulations, LinkType, Packet, Transport,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Non-empty bursts between two publications of a worker's [`LiveCounters`] (and at every empty
/// burst that follows unpublished work).
pub const LIVE_PUBLISH_BURSTS: u32 = 64;

/// How many packets ahead of the one being accounted the flow slot it will touch is
/// prefetched (its index cell was prefetched by the first pass over the burst).
const SLOT_PREFETCH_AHEAD: usize = 6;

/// Settings of one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Link type of every frame on the queue.
    pub link_type: LinkType,
    /// The worker's flow table.
    pub flow_table: FlowTableConfig,
    /// Idle flows are expired whenever capture time has advanced this much (µs).
    pub expire_interval_us: u64,
    /// Consecutive empty bursts, with no new `rx_nombuf`/errors, that mean end of input.
    pub empty_bursts_at_end: u32,
}

impl WorkerConfig {
    /// Defaults for `link_type`: default flow table, expiry every second of capture time,
    /// end of input after 4 empty bursts.
    pub fn new(link_type: LinkType) -> WorkerConfig {
        WorkerConfig {
            link_type,
            flow_table: FlowTableConfig::default(),
            expire_interval_us: 1_000_000,
            empty_bursts_at_end: 4,
        }
    }
}

/// Counters of one worker.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerCounters {
    /// Frames received.
    pub packets: u64,
    /// Bytes received (frame lengths over all segments).
    pub bytes: u64,
    /// Frames decoded to TCP/UDP and accounted in a flow.
    pub decoded: u64,
    /// Frames not decoded, by [`DropReason`] discriminant.
    pub drops: [u64; DropReason::COUNT],
    /// Frames carried in each encapsulation the decoder walked (GRE, ERSPAN, VXLAN, GENEVE,
    /// MPLS, IP in IP), decoded or not, by [`Encapsulation`] discriminant.
    pub encapsulated: [u64; Encapsulation::COUNT],
    /// Frames that spanned more than one mbuf (only the first segment is decoded).
    pub multi_segment: u64,
    /// Judged TCP and UDP flows put in the driver's bypass map ([`Worker::with_driver_bypass`]).
    pub driver_bypass_flows: u64,
    /// Flows the map refused (full): they stay on the worker's software path.
    pub driver_bypass_refused: u64,
    /// Packets and bytes the driver dropped for bypassed flows, read back as the flows ended
    /// (and added to those flows' counters): with `packets`, what the port received.
    pub driver_bypassed_packets: u64,
    /// Bytes of `driver_bypassed_packets`.
    pub driver_bypassed_bytes: u64,
    /// Judged TCP flows whose drop rules were installed in the NIC
    /// ([`Worker::with_nic_bypass`]).
    pub nic_bypass_flows: u64,
    /// Judged flows not installed in the NIC because the configured rule count was reached
    /// (`nic_bypass_max_rules`): they stay on the software path.
    pub nic_bypass_full: u64,
    /// Judged flows the NIC refused (its rule table full, or the rule not supported): they stay
    /// on the software path.
    pub nic_bypass_refused: u64,
    /// Decoded frames with neither address in a managed subnet, skipped before the flow table
    /// (the software prefilter, [`Worker::with_prefilter`]; 0 without one).
    pub prefiltered: u64,
    /// Frames without a capture timestamp (the previous timestamp was used).
    pub no_timestamp: u64,
    /// Non-empty RX bursts.
    pub bursts: u64,
    /// TSC cycles from the first received packet to the end of input.
    pub busy_cycles: u64,
    /// TSC cycles spent inside the PMD's receive call (which also frees the previous burst's
    /// mbufs) on non-empty bursts: the I/O share of `busy_cycles`, the rest being the worker's
    /// own work. Two TSC reads per burst.
    pub rx_cycles: u64,
    /// Seconds from the first received packet to the end of input.
    pub busy_seconds: f64,
    /// The defragmenter's counters (fragments, datagrams reassembled, overlapping, timed out,
    /// tiny first fragments); discarded fragments are under their drop reasons.
    pub defrag: DefragStats,
}

impl Default for WorkerCounters {
    fn default() -> Self {
        WorkerCounters {
            packets: 0,
            bytes: 0,
            decoded: 0,
            drops: [0; DropReason::COUNT],
            encapsulated: [0; Encapsulation::COUNT],
            multi_segment: 0,
            driver_bypass_flows: 0,
            driver_bypass_refused: 0,
            driver_bypassed_packets: 0,
            driver_bypassed_bytes: 0,
            nic_bypass_flows: 0,
            nic_bypass_full: 0,
            nic_bypass_refused: 0,
            prefiltered: 0,
            no_timestamp: 0,
            bursts: 0,
            busy_cycles: 0,
            rx_cycles: 0,
            busy_seconds: 0.0,
            defrag: DefragStats::default(),
        }
    }
}

impl WorkerCounters {
    /// Total frames dropped by the decoder.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// `(reason, count)` for every reason, in [`DropReason::ALL`] order.
    pub fn drops_by_reason(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .zip(self.drops.iter())
            .map(|(&r, &n)| (r, n))
    }

    /// `(kind, count)` for every encapsulation, in [`Encapsulation::ALL`] order.
    pub fn encapsulated_by_kind(&self) -> impl Iterator<Item = (Encapsulation, u64)> + '_ {
        Encapsulation::ALL
            .iter()
            .zip(self.encapsulated.iter())
            .map(|(&k, &n)| (k, n))
    }

    /// Adds `other`'s frame counters (packets, bytes, decoded, prefiltered, drops,
    /// encapsulations, defragmentation) to these: the totals of a run over several workers.
    pub fn add(&mut self, other: &WorkerCounters) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.decoded += other.decoded;
        self.prefiltered += other.prefiltered;
        for (t, x) in self.drops.iter_mut().zip(other.drops.iter()) {
            *t += x;
        }
        for (t, x) in self.encapsulated.iter_mut().zip(other.encapsulated.iter()) {
            *t += x;
        }
        self.defrag.fragments += other.defrag.fragments;
        self.defrag.reassembled += other.defrag.reassembled;
        self.defrag.overlapping += other.defrag.overlapping;
        self.defrag.timed_out += other.defrag.timed_out;
        self.defrag.tiny_first += other.defrag.tiny_first;
    }

    /// Counts one frame carried in `encaps` (out of line: tunnelled frames are the exception).
    #[cold]
    #[inline(never)]
    fn count_encapsulations(&mut self, encaps: Encapsulations) {
        for kind in encaps.iter() {
            if let Some(n) = self.encapsulated.get_mut(kind as usize) {
                *n += 1;
            }
        }
    }
}

/// A running worker's counters as other threads read them (statistics, metrics): the worker
/// stores its own counters here every [`LIVE_PUBLISH_BURSTS`] bursts, when its queue goes
/// quiet, and when it finishes — plain relaxed stores, no lock, nothing per packet.
#[derive(Debug, Default)]
pub struct LiveCounters {
    packets: AtomicU64,
    bytes: AtomicU64,
    decoded: AtomicU64,
    prefiltered: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
    encapsulated: [AtomicU64; Encapsulation::COUNT],
    driver_bypass_flows: AtomicU64,
    driver_bypassed_packets: AtomicU64,
    driver_bypassed_bytes: AtomicU64,
    flows_active: AtomicU64,
    flows_created: AtomicU64,
    flows_evicted: AtomicU64,
    flows_evicted_half_open: AtomicU64,
    flows_evicted_closed: AtomicU64,
    published: AtomicU64,
}

/// One reading of [`LiveCounters`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveSnapshot {
    /// Frames received.
    pub packets: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Frames decoded to TCP/UDP.
    pub decoded: u64,
    /// Decoded frames skipped by the software prefilter (outside the managed subnets).
    pub prefiltered: u64,
    /// Frames not decoded, by reason.
    pub drops: Vec<(DropReason, u64)>,
    /// Frames carried in each encapsulation.
    pub encapsulated: Vec<(Encapsulation, u64)>,
    /// Judged TCP and UDP flows put in the driver's (XDP) bypass map.
    pub driver_bypass_flows: u64,
    /// Packets the driver dropped for bypassed flows that have ended (read back per flow).
    pub driver_bypassed_packets: u64,
    /// Their bytes.
    pub driver_bypassed_bytes: u64,
    /// Flows in the worker's table.
    pub flows_active: u64,
    /// Flows created since start.
    pub flows_created: u64,
    /// Flows finished early because the table was full (every kind).
    pub flows_evicted: u64,
    /// Of `flows_evicted`: half-open TCP flows (SYN or SYN-ACK only), evicted first.
    pub flows_evicted_half_open: u64,
    /// Of `flows_evicted`: TCP flows already closed by FIN or RST.
    pub flows_evicted_closed: u64,
    /// Publications so far (0: the worker has not published yet).
    pub publications: u64,
}

impl LiveCounters {
    /// The counters as last published.
    pub fn snapshot(&self) -> LiveSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LiveSnapshot {
            packets: load(&self.packets),
            bytes: load(&self.bytes),
            decoded: load(&self.decoded),
            prefiltered: load(&self.prefiltered),
            drops: DropReason::ALL
                .iter()
                .zip(self.drops.iter())
                .map(|(&r, n)| (r, load(n)))
                .collect(),
            encapsulated: Encapsulation::ALL
                .iter()
                .zip(self.encapsulated.iter())
                .map(|(&k, n)| (k, load(n)))
                .collect(),
            driver_bypass_flows: load(&self.driver_bypass_flows),
            driver_bypassed_packets: load(&self.driver_bypassed_packets),
            driver_bypassed_bytes: load(&self.driver_bypassed_bytes),
            flows_active: load(&self.flows_active),
            flows_created: load(&self.flows_created),
            flows_evicted: load(&self.flows_evicted),
            flows_evicted_half_open: load(&self.flows_evicted_half_open),
            flows_evicted_closed: load(&self.flows_evicted_closed),
            publications: load(&self.published),
        }
    }

    fn store(&self, c: &WorkerCounters, table: &FlowTableStats) {
        let put = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        put(&self.packets, c.packets);
        put(&self.bytes, c.bytes);
        put(&self.decoded, c.decoded);
        put(&self.prefiltered, c.prefiltered);
        for (a, &v) in self.drops.iter().zip(c.drops.iter()) {
            put(a, v);
        }
        for (a, &v) in self.encapsulated.iter().zip(c.encapsulated.iter()) {
            put(a, v);
        }
        put(&self.driver_bypass_flows, c.driver_bypass_flows);
        put(&self.driver_bypassed_packets, c.driver_bypassed_packets);
        put(&self.driver_bypassed_bytes, c.driver_bypassed_bytes);
        put(&self.flows_active, table.active as u64);
        put(&self.flows_created, table.created);
        put(&self.flows_evicted, table.evicted);
        put(&self.flows_evicted_half_open, table.evicted_half_open);
        put(&self.flows_evicted_closed, table.evicted_closed);
        self.published.fetch_add(1, Ordering::Relaxed);
    }
}

/// Why a worker stopped polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// The queue ran dry: for a file-backed queue, the end of the capture.
    EndOfInput,
    /// The stop flag was raised.
    Stopped,
}

/// One worker: its flow table, its observer and its counters.
pub struct Worker<O: PacketObserver> {
    cfg: WorkerConfig,
    table: FlowTable<O::FlowState>,
    observer: O,
    counters: WorkerCounters,
    last_ts_us: u64,
    next_expire_us: u64,
    live: Option<Arc<LiveCounters>>,
    unpublished_bursts: u32,
    prefilter: Option<ManagedSubnets>,
    /// The XDP program's map of bypassed flow directions (`net_af_xdp` ports).
    driver_bypass: Option<Arc<XdpBypassMap>>,
    /// The port's rte_flow bypass rules (a NIC that accepts them, when configured).
    nic_bypass: Option<Arc<NicBypass>>,
    /// Wall clock (µs since the epoch) for frames the driver gave no timestamp.
    clock: fn() -> u64,
    /// The clock read for the current burst (0: not read yet).
    burst_clock_us: u64,
    /// Some frame came without a timestamp: flows are timed on the wall clock, and a quiet
    /// queue still expires idle flows ([`Worker::on_idle`]).
    wall_clock_mode: bool,
    /// Some frame came with a capture timestamp: the source is timed, frames missing one
    /// reuse the previous timestamp.
    timestamped: bool,
    empty_polls: u32,
    /// IPv4/IPv6 fragment reassembly, before the flow table.
    defrag: Defragmenter,
}

/// A decode result that a fragment can give: a non-first fragment, a first fragment (decoded
/// with its payload cut short), or a first fragment too short for its TCP/UDP header (a tiny
/// fragment). Only these are shown to the defragmenter.
#[inline(always)]
fn may_be_fragment(res: &Result<Packet<'_>, DropReason>) -> bool {
    match res {
        Ok(p) => p.payload_truncated,
        Err(r) => matches!(
            r,
            DropReason::IpFragment
                | DropReason::TcpTruncated
                | DropReason::TcpBadDataOffset
                | DropReason::UdpTruncated
                | DropReason::UdpBadLength
        ),
    }
}

/// Microseconds since the Unix epoch, from the system clock (vDSO, no syscall).
pub fn system_clock_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Empty polls of a quiet queue between two [`Worker::on_idle`] calls.
const IDLE_CHECK_POLLS: u32 = 1024;

impl<O: PacketObserver> std::fmt::Debug for Worker<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("cfg", &self.cfg)
            .field("counters", &self.counters)
            .finish()
    }
}

/// What a worker hands back when it is done.
#[derive(Debug)]
pub struct WorkerOutcome<O: PacketObserver> {
    /// The worker's counters.
    pub counters: WorkerCounters,
    /// The flow table's counters.
    pub table_stats: FlowTableStats,
    /// The observer, with whatever it gathered.
    pub observer: O,
    /// Why it stopped.
    pub stop_cause: StopCause,
}

impl<O: PacketObserver> Worker<O> {
    /// A worker with an empty flow table (allocated now, off the hot path).
    pub fn new(cfg: WorkerConfig, observer: O) -> Result<Worker<O>, FlowTableConfigError> {
        Ok(Worker {
            cfg,
            table: FlowTable::try_new(cfg.flow_table)?,
            observer,
            counters: WorkerCounters::default(),
            last_ts_us: 0,
            next_expire_us: 0,
            live: None,
            unpublished_bursts: 0,
            prefilter: None,
            driver_bypass: None,
            nic_bypass: None,
            clock: system_clock_us,
            burst_clock_us: 0,
            wall_clock_mode: false,
            timestamped: false,
            empty_polls: 0,
            defrag: Defragmenter::new(DefragConfig::default()),
        })
    }

    /// Uses `cfg` for the defragmenter (table size, largest datagram, timeout).
    pub fn with_defrag(mut self, cfg: DefragConfig) -> Worker<O> {
        self.defrag = Defragmenter::new(cfg);
        self
    }

    /// A fragment frame (or a frame that may be one): the defragmenter takes it, and a datagram
    /// it completes is decoded and accounted like any packet, standing for all its fragments.
    /// Returns false when the frame is not a TCP/UDP fragment (the caller decodes it as usual).
    #[cold]
    #[inline(never)]
    fn process_fragment(&mut self, frame: &[u8], ts: u64) -> bool {
        let link = self.cfg.link_type;
        let pushed = self.defrag.push(link, frame, ts, &mut self.counters.drops);
        self.counters.defrag = self.defrag.stats();
        let frames = match pushed {
            Pushed::NotFragment => return false,
            Pushed::Taken => return true,
            Pushed::Complete(frames) => u64::from(frames),
        };
        let datagram = self.defrag.datagram();
        match parse(link, datagram) {
            Err(reason) => {
                if let Some(n) = self.counters.drops.get_mut(reason as usize) {
                    *n += frames;
                }
            }
            Ok(pkt) if self.prefilter.as_ref().is_some_and(|f| !f.admits(&pkt)) => {
                self.counters.prefiltered += frames;
            }
            Ok(pkt) => {
                self.counters.decoded += frames;
                let len = u32::try_from(datagram.len()).unwrap_or(u32::MAX);
                let (flow, dir) = self.table.update(&pkt, ts, len);
                self.observer.on_packet(flow, dir, &pkt, ts);
            }
        }
        true
    }

    /// Uses `clock` (µs since the epoch) instead of the system clock for frames without a
    /// capture timestamp (tests drive time with it).
    pub fn with_clock(mut self, clock: fn() -> u64) -> Worker<O> {
        self.clock = clock;
        self
    }

    /// Housekeeping for a quiet queue, called by [`Worker::poll`] every few empty polls: once
    /// frames without timestamps have been seen (a NIC that gives none), the flow clock follows
    /// the wall clock, so flows still time out when traffic stops; finished flows go to `sink`.
    /// Does nothing for timestamped input (captures), whose clock is the capture's.
    pub fn on_idle<S: FlowSink<O::FlowState>>(&mut self, sink: &mut S) {
        if !self.wall_clock_mode {
            return;
        }
        let now = (self.clock)();
        if now > self.last_ts_us {
            self.last_ts_us = now;
        }
        self.after_burst(sink);
    }

    /// Skips, before the flow table, every decoded frame with neither address in `subnets`
    /// (counted in [`WorkerCounters::prefiltered`]): the software fallback of the NIC's
    /// managed-subnet prefilter. An empty `subnets` would skip everything and is ignored.
    pub fn with_prefilter(mut self, subnets: ManagedSubnets) -> Worker<O> {
        self.prefilter = (!subnets.is_empty()).then_some(subnets);
        self
    }

    /// Has the driver drop the later packets of judged flows ([`PacketObserver::judged`]):
    /// established TCP flows and UDP flows. Once a flow is judged the worker inserts both its
    /// directions in `map` (two bpf calls, once per flow). Before it ends a bypassed flow on
    /// idle time it reads the map's last-seen time (a flow still sending in the driver stays),
    /// and when the flow ends it takes what the driver dropped and adds it to the flow's packet
    /// and byte counters and end time, so flow records stay exact. TCP FIN and RST still reach
    /// the worker, so TCP flows end on time; UDP flows end on idle time.
    pub fn with_driver_bypass(mut self, map: Arc<XdpBypassMap>) -> Worker<O> {
        self.driver_bypass = Some(map);
        self
    }

    /// Has the NIC drop the later packets of judged TCP flows: once a flow is judged (as for
    /// [`Worker::with_driver_bypass`]) the worker installs one rte_flow drop rule per direction
    /// through `nic` (capped, counted when full), and removes them when the flow ends. The NIC
    /// counts nothing back: a bypassed flow's record holds the packets up to its judgement, and
    /// it ends on the worker's idle timeout (the rules drop FIN and RST too).
    pub fn with_nic_bypass(mut self, nic: Arc<NicBypass>) -> Worker<O> {
        self.nic_bypass = Some(nic);
        self
    }

    /// Offers a flow just updated to the driver's or the NIC's bypass, if the port has one.
    #[inline(always)]
    fn offer_bypass(
        driver: Option<&XdpBypassMap>,
        nic: Option<&NicBypass>,
        observer: &O,
        flow: &mut Flow<O::FlowState>,
        counters: &mut WorkerCounters,
    ) {
        if let Some(map) = driver {
            offer_driver_bypass(map, observer, flow, counters);
        } else if let Some(nic) = nic {
            offer_nic_bypass(nic, observer, flow, counters);
        }
    }

    /// True when a prefilter is set and `pkt` is outside it.
    #[inline]
    fn prefiltered(&self, pkt: &Packet<'_>) -> bool {
        self.prefilter.as_ref().is_some_and(|f| !f.admits(pkt))
    }

    /// Publishes this worker's counters to `live` while it runs (see [`LiveCounters`]).
    pub fn with_live_counters(mut self, live: Arc<LiveCounters>) -> Worker<O> {
        self.live = Some(live);
        self
    }

    fn publish_live(&mut self) {
        if let Some(live) = &self.live {
            live.store(&self.counters, &self.table.stats());
        }
        self.unpublished_bursts = 0;
    }

    /// The counters so far.
    pub fn counters(&self) -> &WorkerCounters {
        &self.counters
    }

    /// Accounts one frame: decode, flow update, observer. `frame` is the bytes available (the
    /// first segment), `frame_len` the frame's full length, `ts_us` its capture timestamp.
    #[inline]
    pub fn process_frame(&mut self, frame: &[u8], frame_len: u32, ts_us: Option<u64>) {
        let ts = self.frame_seen(frame_len, ts_us);
        let mut encaps = Encapsulations::NONE;
        let decoded = parse_counting(self.cfg.link_type, frame, &mut encaps);
        if !encaps.is_empty() {
            self.counters.count_encapsulations(encaps);
        }
        match decoded {
            _ if may_be_fragment(&decoded) && self.process_fragment(frame, ts) => {}
            Err(reason) => {
                if let Some(n) = self.counters.drops.get_mut(reason as usize) {
                    *n += 1;
                }
            }
            Ok(pkt) if self.prefiltered(&pkt) => self.counters.prefiltered += 1,
            Ok(pkt) => {
                self.counters.decoded += 1;
                let (flow, dir) = self.table.update(&pkt, ts, frame_len);
                self.observer.on_packet(flow, dir, &pkt, ts);
                Self::offer_bypass(
                    self.driver_bypass.as_deref(),
                    self.nic_bypass.as_deref(),
                    &self.observer,
                    flow,
                    &mut self.counters,
                );
            }
        }
    }

    /// Per-burst housekeeping: expire idle flows when capture time has moved on, and move
    /// finished flows to `sink`.
    #[inline]
    pub fn after_burst<S: FlowSink<O::FlowState>>(&mut self, sink: &mut S) {
        self.burst_clock_us = 0;
        if self.last_ts_us >= self.next_expire_us {
            match self.driver_bypass.as_deref() {
                // A bypassed flow still sending in the driver is not idle.
                Some(map) => self
                    .table
                    .expire_with(self.last_ts_us, |f| driver_last_seen_us(map, f)),
                None => self.table.expire(self.last_ts_us),
            }
            self.defrag
                .expire(self.last_ts_us, &mut self.counters.drops);
            self.counters.defrag = self.defrag.stats();
            self.next_expire_us = self.last_ts_us.saturating_add(self.cfg.expire_interval_us);
        }
        if self.table.finished_len() > 0 {
            for mut f in self.table.drain_finished() {
                if f.flow.driver_bypass {
                    take_driver_counters(
                        self.driver_bypass.as_deref(),
                        &mut f.flow,
                        &mut self.counters,
                    );
                    remove_nic_bypass(self.nic_bypass.as_deref(), &f.flow);
                }
                self.observer.on_flow_end(&mut f);
                sink.push_flow(f);
            }
        }
        if self.live.is_some() {
            self.unpublished_bursts += 1;
            if self.unpublished_bursts >= LIVE_PUBLISH_BURSTS {
                self.publish_live();
            }
        }
    }

    /// Processes every packet of a received burst, then does the per-burst housekeeping.
    ///
    /// Two passes, as DPDK's l3fwd does with its route lookups: first every frame is decoded,
    /// its flow key hashed and the flow table's hash-index cell for it prefetched; then each
    /// packet is accounted in order. The index misses of a burst overlap instead of stalling
    /// one packet at a time (with 250,000 flows the table update fell from 177–211 to 72–82 ns
    /// per packet, `dataplane/examples/flow_prefetch.rs`). The result is the same as
    /// [`Worker::process_frame`] on each frame in order.
    #[inline]
    pub fn process_burst<S: FlowSink<O::FlowState>>(&mut self, burst: &MbufBurst, sink: &mut S) {
        self.counters.bursts += 1;
        // Decoded in place and read by reference: a `Packet` is ~80 bytes at odd offsets
        // (`IpAddr` has alignment 1), and moving it through `Option`/`Result` temporaries cost
        // store-forwarding stalls on every copy (see docs/PERFORMANCE.md, steady state).
        let mut decoded: [Result<Packet<'_>, DropReason>; BURST_SIZE] =
            [const { Err(DropReason::TruncatedLink) }; BURST_SIZE];
        let mut lookups: [Option<FlowLookup>; BURST_SIZE] = [const { None }; BURST_SIZE];
        for ((slot, lookup), m) in decoded.iter_mut().zip(lookups.iter_mut()).zip(burst.iter()) {
            let mut encaps = Encapsulations::NONE;
            *slot = parse_counting(self.cfg.link_type, m.data(), &mut encaps);
            if !encaps.is_empty() {
                self.counters.count_encapsulations(encaps);
            }
            if may_be_fragment(slot)
                && portolan_packet::defrag::is_fragment(self.cfg.link_type, m.data())
            {
                // A fragment: the defragmenter takes it in the second pass.
                *slot = Err(DropReason::IpFragment);
            }
            if let Ok(pkt) = slot {
                if self.prefiltered(pkt) {
                    continue;
                }
                let l = self.table.lookup(pkt);
                self.table.prefetch_index(&l, prefetch0);
                *lookup = Some(l);
            }
        }
        for (i, ((res, lookup), m)) in decoded
            .iter()
            .zip(lookups.iter())
            .zip(burst.views())
            .enumerate()
        {
            if let Some(Some(ahead)) = lookups.get(i + SLOT_PREFETCH_AHEAD) {
                self.table.prefetch_slot(ahead, prefetch0);
            }
            if m.nb_segs() > 1 {
                self.counters.multi_segment += 1;
            }
            let frame_len = m.pkt_len();
            let ts = self.frame_seen(frame_len, m.timestamp_us());
            match (res, lookup) {
                (Ok(pkt), Some(lookup)) => {
                    self.counters.decoded += 1;
                    let (flow, dir) = self.table.update_prepared(lookup, pkt, ts, frame_len);
                    self.observer.on_packet(flow, dir, pkt, ts);
                    Self::offer_bypass(
                        self.driver_bypass.as_deref(),
                        self.nic_bypass.as_deref(),
                        &self.observer,
                        flow,
                        &mut self.counters,
                    );
                }
                (Err(DropReason::IpFragment), _) if self.process_fragment(m.data(), ts) => {}
                (Err(reason), _) => {
                    if let Some(c) = self.counters.drops.get_mut(*reason as usize) {
                        *c += 1;
                    }
                }
                // Left without a lookup by the first pass: outside the managed subnets.
                (Ok(_), None) => self.counters.prefiltered += 1,
            }
        }
        self.after_burst(sink);
    }

    /// Counts a received frame and returns its timestamp: the capture's; for a source that
    /// gives none, the wall clock; for a timestamped source missing one, the previous one.
    #[inline]
    fn frame_seen(&mut self, frame_len: u32, ts_us: Option<u64>) -> u64 {
        self.counters.packets += 1;
        self.counters.bytes += u64::from(frame_len);
        match ts_us {
            Some(t) => {
                self.last_ts_us = t;
                self.timestamped = true;
                t
            }
            None if self.timestamped => {
                // A timestamped source (a capture) missing one: the previous timestamp.
                self.counters.no_timestamp += 1;
                self.last_ts_us
            }
            None => {
                // A NIC without timestamps: time the flow on the wall clock (read once per
                // burst), never behind the latest time seen.
                self.counters.no_timestamp += 1;
                self.wall_clock_mode = true;
                if self.burst_clock_us == 0 {
                    self.burst_clock_us = (self.clock)();
                }
                if self.burst_clock_us > self.last_ts_us {
                    self.last_ts_us = self.burst_clock_us;
                }
                self.last_ts_us
            }
        }
    }

    /// Polls `rxq` until the end of input (`stop_at_end`: a run of empty bursts with no new
    /// allocation failures or errors on the port) or until `stop` is raised.
    pub fn poll<S: FlowSink<O::FlowState>>(
        &mut self,
        rxq: &mut RxQueue,
        timestamp: Option<TimestampField>,
        stop_at_end: bool,
        stop: &AtomicBool,
        sink: &mut S,
    ) -> StopCause {
        let mut burst = MbufBurst::new(timestamp);
        let mut empty_run = 0u32;
        let mut losses = rxq.loss_counters();
        let mut started: Option<(Instant, u64)> = None;
        let cause = loop {
            if stop.load(Ordering::Relaxed) {
                break StopCause::Stopped;
            }
            let rx_started = lcore::rdtsc();
            if rxq.rx_burst(&mut burst) == 0 {
                if self.unpublished_bursts > 0 {
                    self.publish_live();
                }
                if !stop_at_end {
                    self.empty_polls += 1;
                    if self.empty_polls >= IDLE_CHECK_POLLS {
                        self.empty_polls = 0;
                        self.on_idle(sink);
                    }
                    continue;
                }
                // A file-backed queue returns nothing at its end, but also when an mbuf
                // allocation failed: only a quiet empty burst counts towards the end.
                let now = rxq.loss_counters();
                if now != losses {
                    losses = now;
                    empty_run = 0;
                    continue;
                }
                empty_run += 1;
                if empty_run >= self.cfg.empty_bursts_at_end {
                    break StopCause::EndOfInput;
                }
                continue;
            }
            self.counters.rx_cycles += lcore::rdtsc().wrapping_sub(rx_started);
            empty_run = 0;
            if started.is_none() {
                // The busy cycles start with the receive call that brought the first packet,
                // as testpmd's include its receive calls (the wall clock a moment later).
                started = Some((Instant::now(), rx_started));
            }
            self.process_burst(&burst, sink);
        };
        burst.free_all();
        if let Some((t0, c0)) = started {
            self.counters.busy_seconds = t0.elapsed().as_secs_f64();
            self.counters.busy_cycles = lcore::rdtsc().wrapping_sub(c0);
        }
        cause
    }

    /// The largest capture timestamp this worker has seen (µs; 0 before any packet).
    pub fn clock_us(&self) -> u64 {
        self.table.clock_us()
    }

    /// Ends (reason timeout) every flow idle past its timeout at `now_us`; they reach the sink
    /// with [`Worker::finish`]. A replay over several workers calls it with the latest
    /// timestamp of all of them before finishing, so a flow idle at the end of the capture ends
    /// the same way whichever worker — and however many — saw it.
    pub fn expire_at(&mut self, now_us: u64) {
        self.table.expire(now_us);
    }

    /// Ends every remaining flow (reason shutdown), moves them to `sink`, and returns the
    /// worker's results.
    pub fn finish<S: FlowSink<O::FlowState>>(
        mut self,
        sink: &mut S,
        stop_cause: StopCause,
    ) -> WorkerOutcome<O> {
        // Fragments still waiting for the rest of their datagram are counted as timed out.
        self.defrag.flush(&mut self.counters.drops);
        self.counters.defrag = self.defrag.stats();
        self.table.finish_all();
        for mut f in self.table.drain_finished() {
            if f.flow.driver_bypass {
                take_driver_counters(
                    self.driver_bypass.as_deref(),
                    &mut f.flow,
                    &mut self.counters,
                );
                remove_nic_bypass(self.nic_bypass.as_deref(), &f.flow);
            }
            self.observer.on_flow_end(&mut f);
            sink.push_flow(f);
        }
        self.publish_live();
        WorkerOutcome {
            counters: self.counters,
            table_stats: self.table.stats(),
            observer: self.observer,
            stop_cause,
        }
    }
}

/// Puts an established, judged TCP flow in the driver's bypass map (both directions), once.
/// Runs on the worker lcore right after the observer: the bpf calls happen once per flow, not
/// per packet.
#[inline(always)]
fn offer_driver_bypass<O: PacketObserver>(
    map: &XdpBypassMap,
    observer: &O,
    flow: &mut Flow<O::FlowState>,
    counters: &mut WorkerCounters,
) {
    if flow.driver_bypass
        || (flow.transport == Transport::Tcp && flow.tcp_state != TcpState::Established)
        || !observer.judged(flow)
    {
        return;
    }
    insert_driver_bypass(map, flow, counters);
}

/// The driver map's keys of a flow's two directions (client → server, server → client).
fn driver_keys<A>(flow: &Flow<A>) -> Option<(BypassKey, BypassKey)> {
    let proto = match flow.transport {
        Transport::Tcp => PROTO_TCP,
        Transport::Udp => PROTO_UDP,
    };
    Some((
        BypassKey::new(
            proto,
            flow.client_ip,
            flow.client_port,
            flow.server_ip,
            flow.server_port,
        )?,
        BypassKey::new(
            proto,
            flow.server_ip,
            flow.server_port,
            flow.client_ip,
            flow.client_port,
        )?,
    ))
}

/// `CLOCK_MONOTONIC` (the XDP program's clock) to the wall clock (µs) the live worker times
/// flows with: the offset between the two now.
fn monotonic_to_wall_offset_us() -> u64 {
    system_clock_us().saturating_sub(monotonic_ns() / 1000)
}

/// When the driver last dropped a packet of a bypassed flow, on the worker's wall clock (µs);
/// `None` when it dropped none. Asked by the flow table before it ends such a flow on idle time
/// (two bpf lookups per bypassed flow due to expire).
#[cold]
#[inline(never)]
fn driver_last_seen_us<A>(map: &XdpBypassMap, flow: &Flow<A>) -> Option<u64> {
    let (up, down) = driver_keys(flow)?;
    let last_ns = [up, down]
        .iter()
        .filter_map(|k| map.peek(k).ok())
        .filter(|c| c.packets > 0)
        .map(|c| c.last_ns)
        .max()?;
    Some(last_ns / 1000 + monotonic_to_wall_offset_us())
}

#[cold]
#[inline(never)]
fn insert_driver_bypass<A>(map: &XdpBypassMap, flow: &mut Flow<A>, counters: &mut WorkerCounters) {
    let Some((up, down)) = driver_keys(flow) else {
        return;
    };
    // Marked either way: a refused flow (map full) is not offered again, and the take at its
    // end finds nothing.
    flow.driver_bypass = true;
    if map.insert(&up).is_err() {
        counters.driver_bypass_refused += 1;
        return;
    }
    if map.insert(&down).is_err() {
        let _ = map.take(&up);
        counters.driver_bypass_refused += 1;
        return;
    }
    counters.driver_bypass_flows += 1;
}

/// Installs an established, judged TCP flow's drop rules in the NIC, once (the flow is marked
/// either way, so a refused flow is not offered again).
#[inline(always)]
fn offer_nic_bypass<O: PacketObserver>(
    nic: &NicBypass,
    observer: &O,
    flow: &mut Flow<O::FlowState>,
    counters: &mut WorkerCounters,
) {
    if flow.driver_bypass
        || flow.transport != Transport::Tcp
        || flow.tcp_state != TcpState::Established
        || !observer.judged(flow)
    {
        return;
    }
    install_nic_bypass(nic, flow, counters);
}

fn bypassed_flow<A>(flow: &Flow<A>) -> BypassedFlow {
    BypassedFlow {
        client_ip: flow.client_ip,
        client_port: flow.client_port,
        server_ip: flow.server_ip,
        server_port: flow.server_port,
    }
}

#[cold]
#[inline(never)]
fn install_nic_bypass<A>(nic: &NicBypass, flow: &mut Flow<A>, counters: &mut WorkerCounters) {
    flow.driver_bypass = true;
    match nic.install(&bypassed_flow(flow)) {
        Installed::Yes | Installed::Already => counters.nic_bypass_flows += 1,
        Installed::Full => counters.nic_bypass_full += 1,
        Installed::Refused(_) => counters.nic_bypass_refused += 1,
    }
}

/// Removes a bypassed flow's rules from the NIC as the flow ends.
#[cold]
#[inline(never)]
fn remove_nic_bypass<A>(nic: Option<&NicBypass>, flow: &Flow<A>) {
    if let Some(nic) = nic {
        nic.remove(&bypassed_flow(flow));
    }
}

/// Reads back and removes what the driver dropped for a bypassed flow and adds it to the flow:
/// packets and bytes per direction, and the end time (the driver's monotonic clock mapped to
/// the wall clock the live worker times flows with).
#[cold]
#[inline(never)]
fn take_driver_counters<A>(
    map: Option<&XdpBypassMap>,
    flow: &mut Flow<A>,
    counters: &mut WorkerCounters,
) {
    let Some(map) = map else {
        return;
    };
    let offset_us = monotonic_to_wall_offset_us();
    let Some((up, down)) = driver_keys(flow) else {
        return;
    };
    for (key, to_server) in [(up, true), (down, false)] {
        let Some(c) = map.take(&key).ok() else {
            continue;
        };
        if to_server {
            flow.pkts_toserver += c.packets;
            flow.bytes_toserver += c.bytes;
        } else {
            flow.pkts_toclient += c.packets;
            flow.bytes_toclient += c.bytes;
        }
        counters.driver_bypassed_packets += c.packets;
        counters.driver_bypassed_bytes += c.bytes;
        if c.packets > 0 {
            flow.end_us = flow.end_us.max(c.last_ns / 1000 + offset_us);
        }
    }
}

/// A finished worker's outcome and every flow it saw, in the order they ended.
pub type WorkerResult<O> = (
    WorkerOutcome<O>,
    Vec<FinishedFlow<<O as PacketObserver>::FlowState>>,
);

/// Runs a worker over `rxq` to the end of its input (or until `stop`), then finishes all flows.
/// Returns the outcome and every flow, in the order they finished.
pub fn run_to_end<O: PacketObserver>(
    worker: Worker<O>,
    rxq: RxQueue,
    timestamp: Option<TimestampField>,
    stop: Arc<AtomicBool>,
) -> WorkerResult<O> {
    run_until(worker, rxq, timestamp, stop, true)
}

/// As [`run_to_end`], but with `stop_at_end` false the worker ignores empty bursts and polls
/// until `stop` is raised (for a queue that never ends, such as `net_pcap`'s `infinite_rx`).
pub fn run_until<O: PacketObserver>(
    mut worker: Worker<O>,
    mut rxq: RxQueue,
    timestamp: Option<TimestampField>,
    stop: Arc<AtomicBool>,
    stop_at_end: bool,
) -> WorkerResult<O> {
    let mut flows = Vec::new();
    let cause = worker.poll(&mut rxq, timestamp, stop_at_end, &stop, &mut flows);
    drop(rxq);
    let outcome = worker.finish(&mut flows, cause);
    (outcome, flows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observer::FlowOnly;
    use portolan_flow::Side;
    use portolan_testkit::Frame;

    /// Ethernet + IPv4 + TCP (`proto` 6, sequence number 1) or UDP (17) frame with `payload`
    /// bytes of payload; another `proto` gets an 8-byte header of zeros before the payload.
    fn frame(
        src: [u8; 4],
        dst: [u8; 4],
        proto: u8,
        sport: u16,
        dport: u16,
        flags: u8,
        payload: usize,
    ) -> Vec<u8> {
        let body = vec![0xab; payload];
        match proto {
            6 => Frame::tcp((src, sport), (dst, dport), flags)
                .seq(1)
                .build(&body),
            17 => Frame::udp((src, sport), (dst, dport)).build(&body),
            _ => Frame::ip(src, dst, proto).build(&[&[0u8; 8][..], &body].concat()),
        }
    }

    /// Counts packets per direction, as the classifier hook would see them.
    #[derive(Default)]
    struct DirectionCounter {
        to_server: u64,
        to_client: u64,
        ended: u64,
    }

    impl PacketObserver for DirectionCounter {
        type FlowState = u32;
        fn on_packet(&mut self, flow: &mut Flow<u32>, dir: Side, _: &Packet<'_>, _: u64) {
            flow.app += 1;
            match dir {
                Side::Client => self.to_server += 1,
                Side::Server => self.to_client += 1,
            }
        }
        fn on_flow_end(&mut self, _: &mut FinishedFlow<u32>) {
            self.ended += 1;
        }
    }

    static FAKE_NOW_US: AtomicU64 = AtomicU64::new(1_800_000_000_000_000);

    fn fake_clock() -> u64 {
        FAKE_NOW_US.load(Ordering::Relaxed)
    }

    #[test]
    fn frames_without_timestamps_are_timed_and_aged_on_the_wall_clock() {
        let mut w = Worker::new(
            WorkerConfig::new(LinkType::Ethernet),
            DirectionCounter::default(),
        )
        .expect("worker")
        .with_clock(fake_clock);
        let c = [10, 0, 0, 1];
        let s = [10, 0, 0, 2];
        let t0 = fake_clock();
        let udp = frame(c, s, 17, 5353, 53, 0, 30);
        let mut sink = Vec::new();
        w.process_frame(&udp, udp.len() as u32, None);
        w.after_burst(&mut sink);
        assert_eq!(w.counters().no_timestamp, 1);
        // A quiet queue: nothing is due yet ...
        FAKE_NOW_US.store(t0 + 30_000_000, Ordering::Relaxed);
        w.on_idle(&mut sink);
        assert!(sink.is_empty());
        // ... and after the 60 s UDP timeout the flow ends on its own, without traffic.
        FAKE_NOW_US.store(t0 + 61_000_000, Ordering::Relaxed);
        w.on_idle(&mut sink);
        assert_eq!(sink.len(), 1, "the idle UDP flow timed out");
        assert_eq!(
            sink[0].flow.start_us, t0,
            "timed on the wall clock, not at 0"
        );

        // Timestamped input (a capture) keeps capture time: on_idle does nothing.
        let mut capture = Worker::new(WorkerConfig::new(LinkType::Ethernet), FlowOnly)
            .expect("worker")
            .with_clock(fake_clock);
        let mut flows = Vec::new();
        capture.process_frame(&udp, udp.len() as u32, Some(1_000_000));
        capture.after_burst(&mut flows);
        FAKE_NOW_US.store(t0 + 3_600_000_000, Ordering::Relaxed);
        capture.on_idle(&mut flows);
        assert!(flows.is_empty());
        assert_eq!(capture.clock_us(), 1_000_000);
    }

    #[test]
    fn prefilter_skips_frames_outside_the_managed_subnets() {
        let nets: Vec<ipnet::IpNet> = vec!["10.20.0.0/16".parse().expect("net")];
        let mut w = Worker::new(
            WorkerConfig::new(LinkType::Ethernet),
            DirectionCounter::default(),
        )
        .expect("worker")
        .with_prefilter(ManagedSubnets::new(&nets));
        let managed = [10, 20, 0, 7];
        let server = [203, 0, 113, 5];
        let other = [10, 30, 0, 9];
        let frames = [
            frame(managed, server, 6, 40000, 443, 0x02, 0),
            frame(server, managed, 6, 443, 40000, 0x12, 0),
            frame(other, server, 6, 40001, 443, 0x02, 0),
            frame(other, server, 17, 5353, 53, 0, 30),
        ];
        for (i, f) in frames.iter().enumerate() {
            w.process_frame(f, f.len() as u32, Some(1_000_000 + i as u64));
        }
        let c = w.counters().clone();
        assert_eq!((c.packets, c.decoded, c.prefiltered), (4, 2, 2));
        let mut sink = Vec::new();
        let out = w.finish(&mut sink, StopCause::EndOfInput);
        assert_eq!(sink.len(), 1, "only the managed device's flow exists");
        assert_eq!(sink[0].flow.pkts_toserver + sink[0].flow.pkts_toclient, 2);
        assert_eq!(out.observer.to_server + out.observer.to_client, 2);
        // An empty subnet list is ignored rather than dropping everything.
        let mut open = Worker::new(WorkerConfig::new(LinkType::Ethernet), FlowOnly)
            .expect("worker")
            .with_prefilter(ManagedSubnets::default());
        open.process_frame(&frames[2], frames[2].len() as u32, Some(1));
        assert_eq!(
            (open.counters().decoded, open.counters().prefiltered),
            (1, 0)
        );
    }

    #[test]
    fn frames_are_accounted_dropped_and_observed() {
        let mut w = Worker::new(
            WorkerConfig::new(LinkType::Ethernet),
            DirectionCounter::default(),
        )
        .expect("worker");
        let c = [10, 0, 0, 1];
        let s = [10, 0, 0, 2];
        let syn = frame(c, s, 6, 40000, 443, 0x02, 0);
        let synack = frame(s, c, 6, 443, 40000, 0x12, 0);
        let data = frame(c, s, 6, 40000, 443, 0x18, 100);
        let udp = frame(c, s, 17, 5353, 53, 0, 30);
        let icmp = frame(c, s, 1, 0, 0, 0, 8);
        let mut arp = vec![0u8; 42];
        arp[12] = 0x08;
        arp[13] = 0x06;
        let mut sink = Vec::new();
        for (i, f) in [&syn, &synack, &data, &udp, &icmp, &arp].iter().enumerate() {
            w.process_frame(f, f.len() as u32, Some(1_000_000 + i as u64));
        }
        w.process_frame(&syn[..10], 10, None);
        w.after_burst(&mut sink);
        let c = w.counters().clone();
        assert_eq!(c.packets, 7);
        assert_eq!(c.decoded, 4);
        assert_eq!(c.no_timestamp, 1);
        assert_eq!(c.drops[DropReason::OtherIpProto as usize], 1);
        assert_eq!(c.drops[DropReason::NonIp as usize], 1);
        assert_eq!(c.drops[DropReason::TruncatedLink as usize], 1);
        assert_eq!(c.dropped(), 3);
        let total_len: u64 = [&syn, &synack, &data, &udp, &icmp, &arp]
            .iter()
            .map(|f| f.len() as u64)
            .sum::<u64>()
            + 10;
        assert_eq!(c.bytes, total_len);
        assert!(sink.is_empty(), "nothing has ended yet");
        let out = w.finish(&mut sink, StopCause::EndOfInput);
        assert_eq!(sink.len(), 2);
        assert_eq!(out.observer.to_server, 3);
        assert_eq!(out.observer.to_client, 1);
        assert_eq!(out.observer.ended, 2);
        let tcp = sink
            .iter()
            .find(|f| f.flow.server_port == 443)
            .expect("tcp flow");
        assert_eq!(tcp.flow.app, 3, "observer state lives in the flow");
        assert_eq!(tcp.flow.pkts_toserver, 2);
        assert_eq!(tcp.flow.pkts_toclient, 1);
    }

    #[test]
    fn live_counters_are_published_every_few_bursts_and_at_the_end() {
        let live = Arc::new(LiveCounters::default());
        let mut w = Worker::new(WorkerConfig::new(LinkType::Ethernet), FlowOnly)
            .expect("worker")
            .with_live_counters(Arc::clone(&live));
        let mut sink = Vec::new();
        let a = frame([10, 0, 0, 1], [10, 0, 0, 2], 17, 1000, 53, 0, 10);
        for i in 0..(LIVE_PUBLISH_BURSTS - 1) {
            w.process_frame(&a, a.len() as u32, Some(1_000 + u64::from(i)));
            w.after_burst(&mut sink);
        }
        assert_eq!(live.snapshot().publications, 0, "not yet");
        w.process_frame(&a, a.len() as u32, Some(2_000));
        w.after_burst(&mut sink);
        let s = live.snapshot();
        assert_eq!(s.publications, 1);
        assert_eq!(s.packets, u64::from(LIVE_PUBLISH_BURSTS));
        assert_eq!(s.decoded, s.packets);
        assert_eq!((s.flows_active, s.flows_created), (1, 1));
        w.process_frame(&a[..5], 5, Some(3_000));
        let out = w.finish(&mut sink, StopCause::EndOfInput);
        let s = live.snapshot();
        assert_eq!(s.publications, 2);
        assert_eq!(s.packets, out.counters.packets);
        assert_eq!(s.flows_active, 0);
        let truncated = s
            .drops
            .iter()
            .find(|(r, _)| *r == DropReason::TruncatedLink)
            .map(|(_, n)| *n);
        assert_eq!(truncated, Some(1));
    }

    #[test]
    fn idle_flows_expire_on_capture_time() {
        let mut cfg = WorkerConfig::new(LinkType::Ethernet);
        cfg.flow_table.udp_idle_timeout_us = 5_000_000;
        let mut w = Worker::new(cfg, FlowOnly).expect("worker");
        let mut sink = Vec::new();
        let a = frame([10, 0, 0, 1], [10, 0, 0, 2], 17, 1000, 53, 0, 10);
        let b = frame([10, 0, 0, 3], [10, 0, 0, 2], 17, 1000, 53, 0, 10);
        w.process_frame(&a, a.len() as u32, Some(1_000_000));
        w.after_burst(&mut sink);
        w.process_frame(&b, b.len() as u32, Some(20_000_000));
        w.after_burst(&mut sink);
        assert_eq!(
            sink.len(),
            1,
            "the first flow idled past 5 s of capture time"
        );
        assert_eq!(
            sink[0].flow.client_ip,
            std::net::IpAddr::from([10, 0, 0, 1])
        );
        let out = w.finish(&mut sink, StopCause::EndOfInput);
        assert_eq!(sink.len(), 2);
        assert_eq!(out.table_stats.expired, 1);
        assert_eq!(out.table_stats.shutdown, 1);
    }
}
