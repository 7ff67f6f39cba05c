//! The offline mode of the runtime, replay: capture files through DPDK's `net_pcap` driver: one capture per RX queue, one worker
//! per queue on its own lcore, and a report of what was seen; or, in steady-state mode
//! (`infinite_rx`), the captures looped from memory for a fixed time.
//!
//! Owns: checking the captures before the EAL starts (so a bad file is one clear error, not an
//! EAL log), where packets come from (the `net_pcap` device string and the lcore layout, as a
//! [`StartPlan`] for the start-up shared with the daemon, [`super`]), and where results go
//! (each worker's flows kept or counted and ended at the end of the whole capture, and the
//! [`ReplayReport`]). Must not: decode packets (the worker does) or print; the
//! binary decides what to write where.

use super::{PoolPlan, PortPlan, StartError, StartPlan};
use crate::dpdk::{DpdkError, EalConfig, PortConfig, PortInfo, PortStats};
use crate::observer::{FlowSink, PacketObserver};
use crate::report::{
    drops_map, encapsulated_map, per_packet, ClassificationReport, ReplayReport, WorkerReport,
};
use crate::runtime;
use crate::worker::{WorkerCounters, WorkerOutcome};
use portolan_flow::eve::FlowRecord;
use portolan_flow::{FinishedFlow, FlowTableConfig, FlowTableConfigError, FlowTableStats};
use portolan_hwconfig::cpus::{allowed_cpus, lcore_layout};
use portolan_packet::capture::{probe, CaptureError, CaptureInfo};
use portolan_packet::LinkType;
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

/// Mbufs in a replay's pool unless told otherwise ([`ReplayConfig::new`]).
pub const DEFAULT_MBUFS: u32 = 8191;
/// EAL memory of a replay unless told otherwise, MB.
pub const DEFAULT_MEMORY_MB: u32 = 128;
/// The smallest pool [`small_capture_pool`] gives.
pub const SMALL_POOL_MIN_MBUFS: u32 = 2047;

/// A pool and EAL memory (mbufs, MB) for captures too small to fill the default pool, or `None`
/// when the default ([`DEFAULT_MBUFS`] in [`DEFAULT_MEMORY_MB`]) is needed (or a capture's size
/// cannot be read; [`check_captures`] reports that).
///
/// Without hugepages every mbuf takes a 4 KiB page that is faulted in and initialised when the
/// pool is created, and zeroed when it is freed at exit: the default pool costs about 30 ms of
/// CPU at start-up, most of a tiny replay's own work. A queue never holds more frames than its
/// capture has records (a pcap record is at least its 16-byte header), so the pool is the
/// largest capture's upper bound plus what each queue's lcore cache and burst can hold
/// (384 + 32) and 1,024 spare, at least [`SMALL_POOL_MIN_MBUFS`]; the memory is 4 KiB per mbuf
/// plus 24 MB for the rings and the EAL's own structures, at least 32 MB. The frames, flows and
/// records do not depend on it: `net_pcap` reads a frame only when an mbuf is free.
pub fn small_capture_pool(captures: &[PathBuf]) -> Option<(u32, u32)> {
    let mut largest = 0u64;
    for path in captures {
        largest = largest.max(std::fs::metadata(path).ok()?.len() / 16);
    }
    let needed = largest + captures.len() as u64 * (384 + 32) + 1024;
    if needed >= u64::from(DEFAULT_MBUFS) {
        return None;
    }
    let mbufs = u32::try_from(needed).ok()?.max(SMALL_POOL_MIN_MBUFS);
    let memory_mb = (u64::from(mbufs) * 4096 / (1 << 20) + 24).max(32);
    Some((mbufs, u32::try_from(memory_mb).ok()?.min(DEFAULT_MEMORY_MB)))
}

impl ReplayConfig {
    /// One worker per capture, default flow table, [`DEFAULT_MBUFS`] mbufs of 2176 bytes,
    /// [`DEFAULT_MEMORY_MB`] MB.
    pub fn new(captures: Vec<PathBuf>) -> ReplayConfig {
        ReplayConfig {
            workers: captures.len(),
            captures,
            flow_table: FlowTableConfig::default(),
            mbufs: DEFAULT_MBUFS,
            memory_mb: DEFAULT_MEMORY_MB,
            mbuf_data_room: crate::dpdk::mempool::DEFAULT_DATA_ROOM,
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
    check_config(config, observers.len())?;
    let (link_type, _infos) = check_captures(&config.captures)?;
    let mut staging = None;
    let plan = start_plan(config, link_type, &mut staging)?;
    let started = runtime::start(&plan).map_err(|e| start_error(e, config))?;
    // Every worker is built (flow tables allocated) before any is launched, so the timed part
    // is polling only.
    let prepared = runtime::prepare(&plan, &started, observers, |_, _, w| w)
        .map_err(|e| start_error(e, config))?;
    let (timestamp, keep_flows) = (started.timestamp, config.keep_flows);
    let stop = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    // Each job polls to the end of its capture and hands the worker back: flows are ended
    // below, once the end of every capture is known.
    let jobs = runtime::launch(
        &started,
        prepared,
        &stop,
        move |mut worker, mut rxq, at_end, stop| {
            let mut flows = ReplayFlows::new(keep_flows);
            let cause = worker.poll(&mut rxq, timestamp, at_end, stop, &mut flows);
            drop(rxq);
            (worker, flows, cause)
        },
    )
    .map_err(|e| start_error(e, config))?;
    if let Some(duration) = config.infinite_rx {
        // The main lcore only sleeps while the workers loop over the captures in memory.
        std::thread::sleep(duration);
        stop.store(true, Ordering::SeqCst);
    }
    let results: Vec<_> = jobs.into_iter().map(|j| (j.lcore(), j.wait())).collect();
    let port = started.ports.first().ok_or(ReplayError::NoCapture)?;
    let port_stats = port.port.stats()?;
    let mut polled = Vec::with_capacity(results.len());
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
    let outcomes: Vec<_> = polled
        .into_iter()
        .map(|(lc, (mut worker, mut flows, cause))| {
            worker.expire_at(capture_end);
            let outcome = worker.finish(&mut flows, cause);
            (lc, outcome, flows)
        })
        .collect();
    // Ending the flows still open is part of the replay's work: timed with it.
    let wall_seconds = began.elapsed().as_secs_f64();
    let port_info = port.info.clone();
    drop(started);
    let report = replay_report(
        config,
        link_type,
        &outcomes,
        port_stats,
        port_info,
        wall_seconds,
    );
    let (flows, observers) = outcomes
        .into_iter()
        .map(|(_, o, f)| (f.kept, o.observer))
        .unzip();
    drop(staging);
    Ok(ReplayOutcome {
        report,
        flows,
        observers,
    })
}

/// The replay's options against its observers: one worker per capture, at most
/// [`MAX_QUEUES`].
fn check_config(config: &ReplayConfig, observers: usize) -> Result<(), ReplayError> {
    let n = config.captures.len();
    if observers != n {
        return Err(ReplayError::WorkerCountMismatch {
            workers: observers,
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
    Ok(())
}

/// Where a replay's packets come from: one `net_pcap` device with one `rx_pcap=` per capture
/// (and `infinite_rx=1` in steady-state mode), one worker lcore per queue pinned as
/// [`lcore_layout`] says, no hugepages.
fn start_plan(
    config: &ReplayConfig,
    link_type: LinkType,
    staging: &mut Option<tempfile::TempDir>,
) -> Result<StartPlan, ReplayError> {
    let n = config.captures.len();
    let mut vdev = VDEV_NAME.to_string();
    for p in devarg_paths(&config.captures, staging)? {
        vdev.push_str(",rx_pcap=");
        vdev.push_str(&p);
    }
    if config.infinite_rx.is_some() {
        vdev.push_str(",infinite_rx=1");
    }
    let eal = EalConfig {
        lcores: lcore_layout(n, &allowed_cpus()),
        memory_mb: config.memory_mb,
        vdevs: vec![vdev],
        ..EalConfig::default()
    };
    Ok(StartPlan {
        eal_args: eal.args(),
        pool: PoolPlan {
            mbufs: config.mbufs,
            cache: 256,
            data_room: config.mbuf_data_room,
        },
        ports: vec![PortPlan {
            device: VDEV_NAME.to_string(),
            lcores: vec![None; n],
            paired_tx: false,
            rx_descriptors: PortConfig::default().rx_descriptors,
            rss_key: None,
            link_type,
            stop_at_end: config.infinite_rx.is_none(),
        }],
        flow_table: config.flow_table,
        managed_subnets: config.managed_subnets.clone(),
    })
}

/// The counter part of a worker's report (where it sits and its flows are the caller's).
fn worker_report(c: &WorkerCounters) -> WorkerReport {
    WorkerReport {
        queue: 0,
        lcore: 0,
        capture: String::new(),
        packets: c.packets,
        bytes: c.bytes,
        decoded: c.decoded,
        prefiltered: c.prefiltered,
        flows: 0,
        drops: drops_map(c.drops_by_reason()),
        encapsulated: encapsulated_map(c.encapsulated_by_kind()),
        multi_segment: c.multi_segment,
        no_timestamp: c.no_timestamp,
        busy_seconds: c.busy_seconds,
        cycles_per_packet: per_packet(c.busy_cycles, c.packets),
        rx_cycles_per_packet: per_packet(c.rx_cycles, c.packets),
        port_q_ipackets: 0,
        flow_table: FlowTableStats::default().into(),
        defrag: c.defrag,
        classification: None,
    }
}

/// The counter part of the replay's report, over `wall_seconds` (the rest is the caller's).
fn totals_report(
    total: &WorkerCounters,
    wall_seconds: f64,
    port: PortStats,
    port_info: PortInfo,
) -> ReplayReport {
    let rate_base = if wall_seconds > 0.0 {
        wall_seconds
    } else {
        f64::MIN_POSITIVE
    };
    ReplayReport {
        packets: total.packets,
        bytes: total.bytes,
        flows: 0,
        decoded: total.decoded,
        prefiltered: total.prefiltered,
        drops: drops_map(total.drops_by_reason()),
        encapsulated: encapsulated_map(total.encapsulated_by_kind()),
        defrag: total.defrag,
        wall_seconds,
        mpps: total.packets as f64 / rate_base / 1e6,
        gbps: total.bytes as f64 * 8.0 / rate_base / 1e9,
        link_type: "",
        port_counters_match: false,
        classification: None,
        workers: Vec::new(),
        port,
        port_info,
        infinite_rx_seconds: None,
    }
}

/// A start-up failure in the replay's terms.
fn start_error(e: StartError, config: &ReplayConfig) -> ReplayError {
    match e {
        StartError::PortNotProbed { .. } => ReplayError::VdevProbe(
            config
                .captures
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        StartError::NotEnoughLcores { have, need } => ReplayError::NotEnoughLcores { have, need },
        StartError::ObserverCount { observers, workers } => ReplayError::WorkerCountMismatch {
            workers: observers,
            captures: workers,
        },
        StartError::FlowTable(e) => ReplayError::FlowTable(e),
        StartError::Dpdk(e) => ReplayError::Dpdk(e),
    }
}

/// A worker after the replay: its lcore, its outcome and its flows.
type Finished<O> = (
    u32,
    WorkerOutcome<O>,
    ReplayFlows<<O as PacketObserver>::FlowState>,
);

/// The summary of a replay from each worker's outcome and the port's counters.
fn replay_report<O: PacketObserver>(
    config: &ReplayConfig,
    link_type: LinkType,
    outcomes: &[Finished<O>],
    port_stats: PortStats,
    port_info: PortInfo,
    wall_seconds: f64,
) -> ReplayReport {
    let mut total = WorkerCounters::default();
    let mut worker_reports = Vec::with_capacity(outcomes.len());
    let mut flows_total = 0u64;
    let mut per_queue_match = true;
    let mut classification: Option<ClassificationReport> = None;
    for (i, (lc, o, flows)) in outcomes.iter().enumerate() {
        let c = &o.counters;
        total.add(c);
        flows_total += flows.count;
        let worker_classification = o.observer.classification();
        if let Some(c) = &worker_classification {
            classification.get_or_insert_with(Default::default).add(c);
        }
        let q_ipackets = port_stats.q_ipackets.get(i).copied().unwrap_or(0);
        per_queue_match &= q_ipackets == c.packets;
        let capture = config.captures.get(i).map(|p| p.display().to_string());
        worker_reports.push(WorkerReport {
            queue: i as u16,
            lcore: *lc,
            capture: capture.unwrap_or_default(),
            flows: flows.count,
            port_q_ipackets: q_ipackets,
            flow_table: o.table_stats.into(),
            classification: worker_classification,
            ..worker_report(c)
        });
    }
    let port_counters_match = per_queue_match
        && port_stats.ipackets == total.packets
        && port_stats.rx_nombuf == 0
        && port_stats.ierrors == 0;
    ReplayReport {
        flows: flows_total,
        link_type: link_type.name(),
        port_counters_match,
        classification,
        workers: worker_reports,
        infinite_rx_seconds: config.infinite_rx.map(|_| wall_seconds),
        ..totals_report(&total, wall_seconds, port_stats, port_info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_captures_get_a_small_pool_and_large_ones_the_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, len: usize| {
            let p = dir.path().join(name);
            std::fs::write(&p, vec![0u8; len]).expect("write");
            p
        };
        let tiny = write("tiny.pcap", 102);
        assert_eq!(
            small_capture_pool(std::slice::from_ref(&tiny)),
            Some((2047, 32))
        );
        // 60,000 bytes: at most 3,750 records, plus one queue's cache and burst and 1,024.
        let small = write("small.pcap", 60_000);
        assert_eq!(
            small_capture_pool(std::slice::from_ref(&small)),
            Some((5190, 44))
        );
        // Two queues need room for two caches.
        assert_eq!(small_capture_pool(&[tiny.clone(), small]), Some((5606, 45)));
        let large = write("large.pcap", 16 * 8191);
        assert_eq!(small_capture_pool(&[tiny, large]), None);
        assert_eq!(small_capture_pool(&[dir.path().join("missing.pcap")]), None);
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
