//! Replay of capture files through DPDK's `net_pcap` driver: one capture per RX queue, one worker
//! per queue on its own lcore, and a report of what was seen; or, in steady-state mode
//! (`infinite_rx`), the captures looped from memory for a fixed time.
//!
//! Owns: checking the captures before the EAL starts (so a bad file is one clear error, not an
//! EAL log), the `net_pcap` device string and the lcore layout, launching and joining the
//! workers, and the [`ReplayReport`]. Must not: decode packets (the worker does) or print; the
//! binary decides what to write where.

use crate::classify::ClassificationReport;
use crate::dpdk::{
    self, lcore, DpdkError, Eal, EalConfig, PktMbufPool, Port, PortConfig, PortInfo, PortStats,
    TimestampField,
};
use crate::prefilter::ManagedSubnets;
use crate::worker::{FlowSink, PacketObserver, Worker, WorkerConfig, WorkerCounters};
use portolan_flow::eve::FlowRecord;
use portolan_flow::{FinishedFlow, FlowTableConfig, FlowTableConfigError, FlowTableStats};
use portolan_packet::capture::{probe, CaptureError, CaptureInfo};
use portolan_packet::defrag::DefragStats;
use portolan_packet::{DropReason, Encapsulation, LinkType};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Most RX queues (and so captures) one `net_pcap` device takes.
pub const MAX_QUEUES: usize = 16;

/// Name of the `net_pcap` device a replay creates.
const VDEV_NAME: &str = "net_pcap0";

/// What to replay and with which resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayConfig {
    /// One capture per RX queue (and per worker).
    pub captures: Vec<PathBuf>,
    /// Number of workers; must equal the number of captures.
    pub workers: usize,
    /// Flow table of each worker.
    pub flow_table: FlowTableConfig,
    /// Mbufs in the RX pool.
    pub mbufs: u32,
    /// EAL memory in megabytes.
    pub memory_mb: u32,
    /// Data room of each mbuf, headroom included. Frames longer than the room minus 128 bytes
    /// of headroom span several mbufs, and only the first segment is decoded.
    pub mbuf_data_room: u16,
    /// Steady-state mode: `net_pcap` loads each capture into mbufs once and loops over it
    /// from memory (`infinite_rx=1`; the pool needs more mbufs than the largest capture has
    /// packets, and frames carry no timestamp), and the workers run for this long. `None`:
    /// replay each capture once, to its end.
    pub infinite_rx: Option<std::time::Duration>,
    /// The software managed-subnet prefilter: frames with neither address in one of these
    /// subnets are counted as `prefiltered` and skipped before the flow table. Empty: every
    /// frame is accounted.
    pub managed_subnets: Vec<ipnet::IpNet>,
    /// Keep every finished flow for [`ReplayOutcome::flows`] (EVE flow records). `false`:
    /// flows are counted and dropped as they end, so memory does not grow with the capture.
    pub keep_flows: bool,
}

impl ReplayConfig {
    /// One worker per capture, default flow table, 8191 mbufs of 2176 bytes, 128 MB.
    pub fn new(captures: Vec<PathBuf>) -> ReplayConfig {
        ReplayConfig {
            workers: captures.len(),
            captures,
            flow_table: FlowTableConfig::default(),
            mbufs: 8191,
            memory_mb: 128,
            mbuf_data_room: dpdk::mempool::DEFAULT_DATA_ROOM,
            infinite_rx: None,
            managed_subnets: Vec::new(),
            keep_flows: true,
        }
    }
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No capture was given.
    #[error("no capture given")]
    NoCapture,
    /// The worker count does not match the capture count.
    #[error(
        "{workers} workers but {captures} capture(s): replay runs one worker per capture \
         (sharding one capture over several workers lands with `portolan shard`)"
    )]
    WorkerCountMismatch {
        /// Requested workers.
        workers: usize,
        /// Captures given.
        captures: usize,
    },
    /// More captures than `net_pcap` has RX queues.
    #[error("{0} captures given; a net_pcap device has at most {MAX_QUEUES} RX queues")]
    TooManyQueues(usize),
    /// A capture is missing, unreadable, not a capture, or of an unsupported link type.
    #[error("{0}")]
    Capture(#[from] CaptureError),
    /// A capture path is not a regular file (a FIFO, a device, a directory): replay reads
    /// captures whole, twice (probe, then the PMD), which a stream cannot give.
    #[error(
        "capture {}: not a regular file ({kind}); replay reads capture files, not streams",
        .path.display()
    )]
    NotARegularFile {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// Two captures have different link types.
    #[error(
        "capture {}: link type {} differs from {} of capture {}; all captures of one replay must share a link type",
        .path.display(), .link.name(), .first_link.name(), .first_path.display()
    )]
    MixedLinkTypes {
        /// The capture that differs.
        path: PathBuf,
        /// Its link type.
        link: LinkType,
        /// The first capture.
        first_path: PathBuf,
        /// The first capture's link type.
        first_link: LinkType,
    },
    /// A capture path cannot be passed to DPDK and could not be linked into a safe place.
    #[error("capture {}: cannot give this path to DPDK: {reason}", .path.display())]
    Path {
        /// The capture.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The flow table configuration is invalid.
    #[error("{0}")]
    FlowTable(#[from] FlowTableConfigError),
    /// DPDK's `net_pcap` did not create the device.
    #[error("DPDK's net_pcap could not open the capture(s) {0}")]
    VdevProbe(String),
    /// The EAL started fewer worker lcores than needed.
    #[error("the EAL started {have} worker lcore(s), {need} needed")]
    NotEnoughLcores {
        /// Worker lcores available.
        have: usize,
        /// Workers requested.
        need: usize,
    },
    /// A DPDK call failed.
    #[error("{0}")]
    Dpdk(#[from] DpdkError),
}

impl ReplayError {
    /// True when the error is the user's input (a capture or an option), not the system.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ReplayError::NoCapture
                | ReplayError::WorkerCountMismatch { .. }
                | ReplayError::TooManyQueues(_)
                | ReplayError::Capture(_)
                | ReplayError::MixedLinkTypes { .. }
                | ReplayError::Path { .. }
                | ReplayError::FlowTable(_)
        )
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

/// A worker's finished flows during a replay: counted, and kept when asked for.
struct ReplayFlows<A> {
    keep: bool,
    kept: Vec<FinishedFlow<A>>,
    count: u64,
}

impl<A> ReplayFlows<A> {
    fn new(keep: bool) -> Self {
        ReplayFlows {
            keep,
            kept: Vec::new(),
            count: 0,
        }
    }
}

impl<A> FlowSink<A> for ReplayFlows<A> {
    #[inline]
    fn push_flow(&mut self, flow: FinishedFlow<A>) {
        self.count += 1;
        if self.keep {
            self.kept.push(flow);
        }
    }
}

/// Everything a replay produced.
#[derive(Debug)]
pub struct ReplayOutcome<O: PacketObserver> {
    /// The summary.
    pub report: ReplayReport,
    /// Finished flows of each worker, in the order they ended (empty unless
    /// [`ReplayConfig::keep_flows`]).
    pub flows: Vec<Vec<FinishedFlow<O::FlowState>>>,
    /// Each worker's observer, after the run.
    pub observers: Vec<O>,
}

impl<O: PacketObserver> ReplayOutcome<O> {
    /// EVE flow records of every flow, sorted by start time, then Community ID, then 5-tuple,
    /// with the app-layer fields the worker's observer gives ([`PacketObserver::describe`]).
    ///
    /// Flow ids are unique per worker; worker `w`'s ids get `w << 48` added so they stay unique
    /// over the replay (worker 0's are unchanged).
    pub fn eve_records(&self) -> Vec<FlowRecord> {
        let mut keyed: Vec<(u64, FlowRecord)> =
            Vec::with_capacity(self.flows.iter().map(Vec::len).sum());
        for (w, flows) in self.flows.iter().enumerate() {
            let observer = self.observers.get(w);
            for f in flows {
                let mut rec = FlowRecord::from_flow(f);
                if let Some(o) = observer {
                    o.describe(f, &mut rec);
                }
                rec.flow_id |= (w as u64) << 48;
                keyed.push((f.flow.start_us, rec));
            }
        }
        keyed.sort_by(|(ta, a), (tb, b)| {
            ta.cmp(tb)
                .then_with(|| a.community_id.cmp(&b.community_id))
                .then_with(|| a.src_ip.cmp(&b.src_ip))
                .then_with(|| a.src_port.cmp(&b.src_port))
                .then_with(|| a.dest_ip.cmp(&b.dest_ip))
                .then_with(|| a.dest_port.cmp(&b.dest_port))
                .then_with(|| a.proto.cmp(&b.proto))
                .then_with(|| a.flow_id.cmp(&b.flow_id))
        });
        keyed.into_iter().map(|(_, r)| r).collect()
    }
}

/// Probes every capture (before any DPDK start-up) and returns their common link type.
pub fn check_captures(captures: &[PathBuf]) -> Result<(LinkType, Vec<CaptureInfo>), ReplayError> {
    let mut infos = Vec::with_capacity(captures.len());
    let mut first: Option<(&Path, LinkType)> = None;
    for path in captures {
        // Opening a FIFO would block until a writer comes: look before opening.
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            let t = meta.file_type();
            let kind = if t.is_fifo() {
                Some("a FIFO")
            } else if t.is_dir() {
                Some("a directory")
            } else if t.is_socket() {
                Some("a socket")
            } else if t.is_char_device() || t.is_block_device() {
                Some("a device")
            } else {
                None
            };
            if let Some(kind) = kind {
                return Err(ReplayError::NotARegularFile {
                    path: path.clone(),
                    kind,
                });
            }
        }
        let info = probe(path)?;
        match first {
            None => first = Some((path, info.link_type)),
            Some((first_path, first_link)) if first_link != info.link_type => {
                return Err(ReplayError::MixedLinkTypes {
                    path: path.clone(),
                    link: info.link_type,
                    first_path: first_path.to_path_buf(),
                    first_link,
                })
            }
            Some(_) => {}
        }
        infos.push(info);
    }
    match first {
        Some((_, link)) => Ok((link, infos)),
        None => Err(ReplayError::NoCapture),
    }
}

/// True when DPDK's device-argument parser reads `s` back unchanged as one value (no `,`, `=`,
/// brackets, quotes, whitespace or control characters).
fn is_devarg_safe(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+~@:%".contains(&b))
}

/// Paths `net_pcap` can be given for each capture: the absolute path when it is safe in a device
/// argument, otherwise a symbolic link to it inside `staging` (created on first need).
fn devarg_paths(
    captures: &[PathBuf],
    staging: &mut Option<tempfile::TempDir>,
) -> Result<Vec<String>, ReplayError> {
    let mut out = Vec::with_capacity(captures.len());
    for (i, path) in captures.iter().enumerate() {
        let path_err = |reason: String| ReplayError::Path {
            path: path.clone(),
            reason,
        };
        let abs = std::path::absolute(path).map_err(|e| path_err(e.to_string()))?;
        if let Some(s) = abs.to_str().filter(|s| is_devarg_safe(s)) {
            out.push(s.to_string());
            continue;
        }
        if staging.is_none() {
            let dir = tempfile::Builder::new()
                .prefix("portolan-replay-")
                .tempdir()
                .map_err(|e| path_err(format!("cannot create a staging directory: {e}")))?;
            *staging = Some(dir);
        }
        let dir = staging
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_default();
        let link = dir.join(format!("queue{i}.cap"));
        std::os::unix::fs::symlink(&abs, &link)
            .map_err(|e| path_err(format!("cannot link it as {}: {e}", link.display())))?;
        match link.to_str().filter(|s| is_devarg_safe(s)) {
            Some(s) => out.push(s.to_string()),
            None => {
                return Err(path_err(format!(
                    "the staging directory {} itself has characters DPDK cannot take (set TMPDIR)",
                    dir.display()
                )))
            }
        }
    }
    Ok(out)
}

/// CPUs this process may run on (from `/proc/self/status`, else `0..available_parallelism`).
pub fn allowed_cpus() -> Vec<u32> {
    let from_proc = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
            let mut cpus = Vec::new();
            for part in line.trim().split(',') {
                match part.split_once('-') {
                    Some((a, b)) => {
                        cpus.extend(a.trim().parse::<u32>().ok()?..=b.trim().parse::<u32>().ok()?)
                    }
                    None => cpus.push(part.trim().parse::<u32>().ok()?),
                }
            }
            (!cpus.is_empty()).then_some(cpus)
        });
    from_proc.unwrap_or_else(|| {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        (0..n).collect()
    })
}

/// The `--lcores` mapping: main lcore 0 may run on any allowed CPU (it sleeps while workers
/// run); worker lcores `1..=workers` are pinned round-robin starting from the *last* allowed CPU
/// (the first CPU usually takes most interrupts and housekeeping, as with testpmd's `-l 0-1`).
pub fn lcore_layout(workers: usize, cpus: &[u32]) -> String {
    let all: Vec<String> = cpus.iter().map(u32::to_string).collect();
    let mut s = format!("0@({})", all.join(","));
    for (i, cpu) in worker_cpus(workers, cpus).into_iter().enumerate() {
        s.push_str(&format!(",{}@{cpu}", i + 1));
    }
    s
}

/// The CPU each worker lcore of [`lcore_layout`] is pinned to, in worker order.
pub fn worker_cpus(workers: usize, cpus: &[u32]) -> Vec<u32> {
    let n = cpus.len().max(1);
    (0..workers)
        .map(|i| cpus.get(n - 1 - i % n).copied().unwrap_or(0))
        .collect()
}

/// Allowed CPUs no worker of a `workers`-worker replay is pinned to: where helper threads (the
/// flow-event drain) belong. Empty when the workers take every CPU.
pub fn spare_cpus(workers: usize) -> Vec<u32> {
    let cpus = allowed_cpus();
    let busy = worker_cpus(workers, &cpus);
    cpus.into_iter().filter(|c| !busy.contains(c)).collect()
}

/// `cycles` per packet (0 without packets).
fn per_packet(cycles: u64, packets: u64) -> f64 {
    if packets > 0 {
        cycles as f64 / packets as f64
    } else {
        0.0
    }
}

fn drops_map<'a>(
    counts: impl Iterator<Item = (DropReason, u64)> + 'a,
) -> BTreeMap<&'static str, u64> {
    counts.map(|(r, n)| (r.as_str(), n)).collect()
}

fn encapsulated_map<'a>(
    counts: impl Iterator<Item = (Encapsulation, u64)> + 'a,
) -> BTreeMap<&'static str, u64> {
    counts.map(|(k, n)| (k.as_str(), n)).collect()
}

/// Replays `config.captures` through `net_pcap`, one worker per capture, each with the observer
/// `make_observer(worker_index)`. Starts the EAL, so it can run once per process.
pub fn replay<O, F>(
    config: &ReplayConfig,
    make_observer: F,
) -> Result<ReplayOutcome<O>, ReplayError>
where
    O: PacketObserver,
    F: FnMut(usize) -> O,
{
    let n = config.captures.len();
    replay_observers(config, (0..n).map(make_observer).collect())
}

/// Replays `config.captures` through `net_pcap` with observers built beforehand, one per capture
/// in worker order (for observers whose construction can fail, like a classifier allocating its
/// scratch). Starts the EAL, so it can run once per process.
pub fn replay_observers<O: PacketObserver>(
    config: &ReplayConfig,
    observers: Vec<O>,
) -> Result<ReplayOutcome<O>, ReplayError> {
    let n = config.captures.len();
    if observers.len() != n {
        return Err(ReplayError::WorkerCountMismatch {
            workers: observers.len(),
            captures: n,
        });
    }
    if n == 0 {
        return Err(ReplayError::NoCapture);
    }
    if config.workers != n {
        return Err(ReplayError::WorkerCountMismatch {
            workers: config.workers,
            captures: n,
        });
    }
    if n > MAX_QUEUES {
        return Err(ReplayError::TooManyQueues(n));
    }
    config.flow_table.validate()?;
    let (link_type, _infos) = check_captures(&config.captures)?;
    let mut staging = None;
    let paths = devarg_paths(&config.captures, &mut staging)?;

    let mut vdev = VDEV_NAME.to_string();
    for p in &paths {
        vdev.push_str(",rx_pcap=");
        vdev.push_str(p);
    }
    if config.infinite_rx.is_some() {
        vdev.push_str(",infinite_rx=1");
    }
    let eal_config = EalConfig {
        lcores: lcore_layout(n, &allowed_cpus()),
        memory_mb: config.memory_mb,
        vdevs: vec![vdev],
        ..EalConfig::default()
    };
    let eal = Eal::init(&eal_config)?;
    let captures_list = || {
        config
            .captures
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let port_id =
        Port::id_by_name(&eal, VDEV_NAME).map_err(|_| ReplayError::VdevProbe(captures_list()))?;
    let port_info = Port::info_of(&eal, port_id)?;
    let workers_lcores = lcore::worker_lcores(&eal);
    if workers_lcores.len() < n {
        return Err(ReplayError::NotEnoughLcores {
            have: workers_lcores.len(),
            need: n,
        });
    }
    let pool = PktMbufPool::create(
        &eal,
        "portolan_rx",
        config.mbufs,
        256,
        config.mbuf_data_room,
    )?;
    let port_config = PortConfig {
        rx_queues: n as u16,
        tx_queues: 0,
        ..PortConfig::default()
    };
    let port = Port::configure(&eal, port_id, &port_config, &pool)?;
    port.start()?;
    let timestamp = TimestampField::lookup(&eal);

    // Build every worker (flow tables are allocated here) before launching any, so the timed
    // part is polling only.
    let mut prepared = Vec::with_capacity(n);
    for (i, observer) in observers.into_iter().enumerate() {
        let worker_cfg = WorkerConfig {
            flow_table: config.flow_table,
            ..WorkerConfig::new(link_type)
        };
        let worker = Worker::new(worker_cfg, observer)?
            .with_prefilter(ManagedSubnets::new(&config.managed_subnets));
        let rxq = port.rx_queue(i as u16)?;
        prepared.push((worker, rxq));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut jobs = Vec::with_capacity(n);
    let stop_at_end = config.infinite_rx.is_none();
    let keep_flows = config.keep_flows;
    let started = Instant::now();
    for ((worker, rxq), &lc) in prepared.into_iter().zip(workers_lcores.iter()) {
        let stop_flag = Arc::clone(&stop);
        // The job polls to the end of its capture and hands the worker back: flows are ended
        // below, once the end of every capture is known.
        match lcore::launch(&eal, lc, move || {
            let (mut worker, mut rxq) = (worker, rxq);
            let mut flows = ReplayFlows::new(keep_flows);
            let cause = worker.poll(&mut rxq, timestamp, stop_at_end, &stop_flag, &mut flows);
            drop(rxq);
            (worker, flows, cause)
        }) {
            Ok(job) => jobs.push(job),
            Err(e) => {
                stop.store(true, Ordering::SeqCst);
                for job in jobs {
                    let _ = job.wait();
                }
                return Err(e.into());
            }
        }
    }
    if let Some(duration) = config.infinite_rx {
        // The main lcore only sleeps while the workers loop over the captures in memory.
        std::thread::sleep(duration);
        stop.store(true, Ordering::SeqCst);
    }
    let mut results: Vec<(u32, Result<_, DpdkError>)> = Vec::with_capacity(n);
    for job in jobs {
        let lc = job.lcore();
        results.push((lc, job.wait()));
    }
    let port_stats = port.stats()?;

    let mut polled = Vec::with_capacity(n);
    for (lc, r) in results {
        polled.push((lc, r?));
    }
    // Flows idle past their timeout at the end of the whole capture end as timeouts on every
    // worker (a worker whose shard ends earlier would otherwise end them as shutdown), so the
    // records do not depend on the number of workers.
    let capture_end = polled
        .iter()
        .map(|(_, (w, _, _))| w.clock_us())
        .max()
        .unwrap_or(0);
    let mut outcomes = Vec::with_capacity(n);
    for (lc, (mut worker, mut flows, cause)) in polled {
        worker.expire_at(capture_end);
        let outcome = worker.finish(&mut flows, cause);
        outcomes.push((lc, outcome, flows));
    }
    // Ending the flows still open is part of the replay's work: timed with it.
    let wall_seconds = started.elapsed().as_secs_f64();
    drop(port);
    drop(pool);

    let mut total = WorkerCounters::default();
    let mut worker_reports = Vec::with_capacity(n);
    let mut flows_total = 0u64;
    let mut per_queue_match = true;
    let mut classification: Option<ClassificationReport> = None;
    for (i, (lc, o, flows)) in outcomes.iter().enumerate() {
        let c = &o.counters;
        total.packets += c.packets;
        total.bytes += c.bytes;
        total.decoded += c.decoded;
        total.prefiltered += c.prefiltered;
        for (t, x) in total.drops.iter_mut().zip(c.drops.iter()) {
            *t += x;
        }
        for (t, x) in total.encapsulated.iter_mut().zip(c.encapsulated.iter()) {
            *t += x;
        }
        total.defrag.fragments += c.defrag.fragments;
        total.defrag.reassembled += c.defrag.reassembled;
        total.defrag.overlapping += c.defrag.overlapping;
        total.defrag.timed_out += c.defrag.timed_out;
        total.defrag.tiny_first += c.defrag.tiny_first;
        flows_total += flows.count;
        let worker_classification = o.observer.classification();
        if let Some(c) = &worker_classification {
            classification.get_or_insert_with(Default::default).add(c);
        }
        let q_ipackets = port_stats.q_ipackets.get(i).copied().unwrap_or(0);
        per_queue_match &= q_ipackets == c.packets;
        worker_reports.push(WorkerReport {
            queue: i as u16,
            lcore: *lc,
            capture: config
                .captures
                .get(i)
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            packets: c.packets,
            bytes: c.bytes,
            decoded: c.decoded,
            prefiltered: c.prefiltered,
            flows: flows.count,
            drops: drops_map(c.drops_by_reason()),
            encapsulated: encapsulated_map(c.encapsulated_by_kind()),
            multi_segment: c.multi_segment,
            no_timestamp: c.no_timestamp,
            busy_seconds: c.busy_seconds,
            cycles_per_packet: per_packet(c.busy_cycles, c.packets),
            rx_cycles_per_packet: per_packet(c.rx_cycles, c.packets),
            port_q_ipackets: q_ipackets,
            flow_table: o.table_stats.into(),
            defrag: c.defrag,
            classification: worker_classification,
        });
    }
    let port_counters_match = per_queue_match
        && port_stats.ipackets == total.packets
        && port_stats.rx_nombuf == 0
        && port_stats.ierrors == 0;
    let rate_base = if wall_seconds > 0.0 {
        wall_seconds
    } else {
        f64::MIN_POSITIVE
    };
    let report = ReplayReport {
        packets: total.packets,
        bytes: total.bytes,
        flows: flows_total,
        decoded: total.decoded,
        prefiltered: total.prefiltered,
        drops: drops_map(total.drops_by_reason()),
        encapsulated: encapsulated_map(total.encapsulated_by_kind()),
        defrag: total.defrag,
        wall_seconds,
        mpps: total.packets as f64 / rate_base / 1e6,
        gbps: total.bytes as f64 * 8.0 / rate_base / 1e9,
        link_type: link_type.name(),
        port_counters_match,
        classification,
        workers: worker_reports,
        port: port_stats,
        port_info,
        infinite_rx_seconds: config.infinite_rx.map(|_| wall_seconds),
    };
    let mut flows = Vec::with_capacity(n);
    let mut observers = Vec::with_capacity(n);
    for (_, o, f) in outcomes {
        flows.push(f.kept);
        observers.push(o.observer);
    }
    drop(staging);
    Ok(ReplayOutcome {
        report,
        flows,
        observers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcore_layout_pins_workers_round_robin() {
        assert_eq!(lcore_layout(1, &[0, 1]), "0@(0,1),1@1");
        assert_eq!(lcore_layout(3, &[0, 1]), "0@(0,1),1@1,2@0,3@1");
        assert_eq!(lcore_layout(2, &[4]), "0@(4),1@4,2@4");
        assert_eq!(worker_cpus(3, &[0, 1]), vec![1, 0, 1]);
    }

    #[test]
    fn devarg_safety() {
        assert!(is_devarg_safe("/tmp/a-b_c.pcap"));
        assert!(!is_devarg_safe("/tmp/a,b.pcap"));
        assert!(!is_devarg_safe("/tmp/a=b.pcap"));
        assert!(!is_devarg_safe("/tmp/a b.pcap"));
        assert!(!is_devarg_safe("/tmp/[x].pcap"));
        assert!(!is_devarg_safe(""));
    }

    #[test]
    fn unsafe_paths_are_linked_into_a_staging_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let odd = dir.path().join("a,b=c [d].pcap");
        std::fs::write(&odd, b"x").expect("write");
        let plain = dir.path().join("plain.pcap");
        std::fs::write(&plain, b"y").expect("write");
        let mut staging = None;
        let paths = devarg_paths(&[odd.clone(), plain.clone()], &mut staging).expect("paths");
        assert!(staging.is_some());
        assert!(paths.iter().all(|p| is_devarg_safe(p)));
        assert_eq!(std::fs::read(&paths[0]).expect("read link"), b"x");
        assert_eq!(paths[1], plain.to_str().expect("utf8"));
    }

    #[test]
    fn missing_capture_is_named_before_dpdk_starts() {
        let err = check_captures(&[PathBuf::from("/nonexistent/x.pcap")]).expect_err("must fail");
        assert!(err.is_bad_input());
        assert!(err.to_string().contains("/nonexistent/x.pcap"), "{err}");
    }
}
