//! The daemon's dataplane: starts the EAL as the hardware description says, configures every
//! port and its RX queues, and runs one classifying worker per queue on its lcore until the end
//! of its input (file-backed `net_pcap` queues) or until stopped; reports port and worker
//! counters as the admin API shows them.
//!
//! Owns: the EAL arguments of a run (the description's, through `hwcheck::eal_args`), the port
//! and mempool set-up from the description, launching and joining the workers, and turning
//! counters into [`DataplaneStats`]. Must not: decode or classify packets (the dataplane crate's
//! [`Worker`] and [`ClassifyObserver`] do, with the lcore loop [`Worker::poll`]), judge flows, or
//! run on a worker lcore itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use portolan_api::{DataplaneStats, PortCounters, WorkerStats};
use portolan_dataplane::dpdk::{
    lcore, xdp, DpdkError, Eal, LcoreJob, PktMbufPool, Port, PortConfig as DpdkPortConfig,
    RssSetup, TimestampField,
};
use portolan_dataplane::hwcheck::{eal_args, HwcheckOptions};
use portolan_dataplane::replay::check_captures;
use portolan_dataplane::worker::{LiveCounters, WorkerOutcome};
use portolan_dataplane::{ClassifyObserver, FlowSink, ManagedSubnets, Worker, WorkerConfig};
use portolan_flow::FinishedFlow;
use portolan_hwconfig::plan::rss_types;
use portolan_hwconfig::rss::key_for_device;
use portolan_hwconfig::{CoreList, HardwareDescription};
use portolan_packet::LinkType;

/// Why the dataplane could not start.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The description does not fit this machine or its captures.
    #[error("{0}")]
    Description(String),
    /// A DPDK call failed.
    #[error("{0}")]
    Dpdk(#[from] DpdkError),
}

/// Where each worker sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerPlace {
    /// Worker index (port order, then queue order).
    pub worker_id: u32,
    /// Its lcore.
    pub lcore: u32,
    /// DPDK port id.
    pub port_id: u16,
    /// RX queue.
    pub queue: u16,
    /// Flows its table holds at most.
    pub flows_capacity: u64,
}

/// Finished flows are judged through the hand-off queue ([`ClassifyObserver`] queues a flow
/// event as each flow ends); the flow records themselves are not kept by the daemon.
struct DiscardFlows;

impl<A> FlowSink<A> for DiscardFlows {
    #[inline]
    fn push_flow(&mut self, _flow: FinishedFlow<A>) {}
}

/// A port as configured.
struct RunningPort {
    port: Port,
    name: String,
}

/// A started dataplane.
pub struct LiveDataplane {
    ports: Vec<RunningPort>,
    places: Vec<WorkerPlace>,
    live: Vec<Arc<LiveCounters>>,
    jobs: Vec<Option<LcoreJob<WorkerOutcome<ClassifyObserver>>>>,
    outcomes: Vec<Option<WorkerOutcome<ClassifyObserver>>>,
    failures: Vec<String>,
    stop: Arc<AtomicBool>,
    _pool: Arc<PktMbufPool>,
    /// Holds the XDP bypass program the AF_XDP PMD loaded (removed at exit).
    _xdp_dir: Option<tempfile::TempDir>,
    eal: Eal,
}

impl std::fmt::Debug for LiveDataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveDataplane")
            .field("places", &self.places)
            .field("eal", &self.eal.args())
            .finish_non_exhaustive()
    }
}

/// The `rx_pcap=` files of a `net_pcap` vdev string.
fn rx_pcap_files(vdev: &str) -> Vec<PathBuf> {
    vdev.split(',')
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "rx_pcap")
        .map(|(_, v)| PathBuf::from(v))
        .collect()
}

/// The `iface=` of a `net_af_xdp` vdev string.
fn af_xdp_iface(vdev: &str) -> Option<&str> {
    vdev.split(',')
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "iface")
        .map(|(_, v)| v)
}

/// True for a `net_af_xdp` port on which the daemon loads its XDP bypass program: the
/// description asks for `bypass_judged_flows` and the vdev names no program of its own.
fn gets_xdp_bypass(bypass_judged_flows: bool, vdev: &str) -> bool {
    bypass_judged_flows
        && vdev.starts_with("net_af_xdp")
        && !vdev.contains("xdp_prog=")
        && af_xdp_iface(vdev).is_some()
}

/// `hw` with `xdp_prog=` (the bypass program, written into a private folder) added to every
/// port that [`gets_xdp_bypass`], and that folder (None when no port does).
fn with_xdp_bypass(
    hw: &HardwareDescription,
) -> Result<(HardwareDescription, Option<tempfile::TempDir>), DataplaneError> {
    let mut hw = hw.clone();
    let bypass = hw.offloads.bypass_judged_flows;
    let wanted = hw.ports.iter().any(|p| {
        p.vdev
            .as_deref()
            .is_some_and(|v| gets_xdp_bypass(bypass, v))
    });
    if !wanted {
        return Ok((hw, None));
    }
    let dir = tempfile::Builder::new()
        .prefix("portolan-xdp-")
        .tempdir()
        .map_err(|e| DataplaneError::Description(format!("XDP program folder: {e}")))?;
    let prog = xdp::write_bypass_program(dir.path())
        .map_err(|e| DataplaneError::Description(format!("XDP program: {e}")))?;
    for port in &mut hw.ports {
        if let Some(v) = port.vdev.as_mut() {
            if gets_xdp_bypass(bypass, v) {
                v.push_str(&format!(",xdp_prog={}", prog.display()));
            }
        }
    }
    Ok((hw, Some(dir)))
}

/// The link type of each port's frames: the captures' for `net_pcap`, Ethernet otherwise.
pub fn port_link_types(hw: &HardwareDescription) -> Result<Vec<LinkType>, DataplaneError> {
    hw.ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if !p.is_net_pcap() {
                return Ok(LinkType::Ethernet);
            }
            let files = rx_pcap_files(p.device_string());
            if files.is_empty() {
                return Err(DataplaneError::Description(format!(
                    "hardware.ports[{i}].vdev: a net_pcap port needs at least one rx_pcap=FILE"
                )));
            }
            check_captures(&files)
                .map(|(link, _)| link)
                .map_err(|e| DataplaneError::Description(format!("hardware.ports[{i}].vdev: {e}")))
        })
        .collect()
}

impl LiveDataplane {
    /// Starts the EAL from `hw`, configures and starts every port, and launches one worker per RX
    /// queue with `observers` (one per worker, in port then queue order). `link_types` come from
    /// [`port_link_types`]. Runs once per process (the EAL cannot start twice).
    pub fn start(
        hw: &HardwareDescription,
        link_types: &[LinkType],
        observers: Vec<ClassifyObserver>,
    ) -> Result<LiveDataplane, DataplaneError> {
        let available = CoreList::allowed_for_this_process().map_err(|e| {
            DataplaneError::Description(format!("cannot read this process's CPUs: {e}"))
        })?;
        hw.validate_cpus(&available)
            .map_err(|e| DataplaneError::Description(format!("hardware: {e}")))?;
        if observers.len() != hw.worker_count() {
            return Err(DataplaneError::Description(format!(
                "{} classifiers for {} workers",
                observers.len(),
                hw.worker_count()
            )));
        }
        let (hw, xdp_dir) = with_xdp_bypass(hw)?;
        let hw = &hw;
        let args = eal_args(hw, &HwcheckOptions::default(), Some(&available));
        tracing::info!(eal = %args.join(" "), "starting the DPDK EAL");
        let eal = Eal::init_with_args(args)?;
        let data_room = u16::try_from(hw.mempool.data_room).map_err(|_| {
            DataplaneError::Description("hardware.mempool.data_room: above 65535".to_string())
        })?;
        let rx_descriptors = u16::try_from(hw.rings.rx_descriptors).map_err(|_| {
            DataplaneError::Description("hardware.rings.rx_descriptors: above 65535".to_string())
        })?;
        let pool = PktMbufPool::create(
            &eal,
            "portolan_rx",
            hw.mempool.mbufs,
            hw.mempool.cache,
            data_room,
        )?;
        let timestamp = TimestampField::lookup(&eal);
        let stop = Arc::new(AtomicBool::new(false));
        let mut ports = Vec::with_capacity(hw.ports.len());
        let mut prepared = Vec::with_capacity(hw.worker_count());
        let mut observers = observers.into_iter();
        for (i, pc) in hw.ports.iter().enumerate() {
            let name = pc.display_name(i);
            let port_id = Port::id_by_name(&eal, pc.device_name()).map_err(|_| {
                DataplaneError::Description(format!(
                    "hardware.ports[{i}] ({}): DPDK did not probe this device; check the address \
                     or vdev string (and that the driver is installed)",
                    pc.device_name()
                ))
            })?;
            let info = Port::info_of(&eal, port_id)?;
            let rss = (pc.rx_queues > 1
                && hw.offloads.symmetric_rss
                && info.rss_offloads & rss_types::REQUIRED == rss_types::REQUIRED)
                .then(|| key_for_device(&hw.rss.key, usize::from(info.hash_key_size)).ok())
                .flatten()
                .map(|key| RssSetup {
                    key,
                    rss_hf: rss_types::WANTED & info.rss_offloads,
                });
            let port_cfg = DpdkPortConfig {
                rx_queues: pc.rx_queues,
                tx_queues: portolan_dataplane::dpdk::paired_tx_queues(&info.driver, pc.rx_queues),
                rx_descriptors,
                ..DpdkPortConfig::default()
            };
            let port = Port::configure_with_rss(&eal, port_id, &port_cfg, &pool, rss.as_ref())?;
            port.start()?;
            // The bypass program is attached once the port has started; its map is found
            // through the interface. Without it the flows stay on the software path.
            let driver_bypass = pc
                .vdev
                .as_deref()
                .filter(|v| v.contains("xdp_prog=") && xdp_dir.is_some())
                .and_then(af_xdp_iface)
                .and_then(|iface| match xdp::XdpBypassMap::open(iface) {
                    Ok(map) => {
                        tracing::info!(port = %name, iface, "XDP bypass of judged flows in the driver");
                        Some(Arc::new(map))
                    }
                    Err(e) => {
                        tracing::warn!(port = %name, error = %e, "no XDP bypass: judged flows stay on the worker");
                        None
                    }
                });
            let link_type = link_types.get(i).copied().unwrap_or(LinkType::Ethernet);
            let stop_at_end = pc.is_net_pcap();
            for (q, queue) in pc.queues.iter().enumerate() {
                let observer = observers.next().ok_or_else(|| {
                    DataplaneError::Description("fewer classifiers than queues".to_string())
                })?;
                let worker_cfg = WorkerConfig {
                    flow_table: hw.flow_table_config(),
                    ..WorkerConfig::new(link_type)
                };
                let worker_cfg_capacity = worker_cfg.flow_table.capacity as u64;
                let live = Arc::new(LiveCounters::default());
                let mut worker = Worker::new(worker_cfg, observer)
                    .map_err(|e| DataplaneError::Description(format!("hardware.flow_table: {e}")))?
                    .with_live_counters(Arc::clone(&live));
                if let Some(map) = &driver_bypass {
                    worker = worker.with_driver_bypass(Arc::clone(map));
                }
                // No rte_flow rule is installed by this version, so the prefilter the
                // description asks for always runs in the worker (the offload plan says so).
                if hw.offloads.prefilter_managed_subnets {
                    worker =
                        worker.with_prefilter(ManagedSubnets::new(&hw.offloads.managed_subnets));
                }
                let rxq = port.rx_queue(q as u16)?;
                let place = WorkerPlace {
                    worker_id: prepared.len() as u32,
                    lcore: queue.lcore,
                    port_id,
                    queue: q as u16,
                    flows_capacity: worker_cfg_capacity,
                };
                prepared.push((place, worker, rxq, stop_at_end, live));
            }
            ports.push(RunningPort { port, name });
        }
        let mut places = Vec::with_capacity(prepared.len());
        let mut lives = Vec::with_capacity(prepared.len());
        let mut jobs = Vec::with_capacity(prepared.len());
        for (place, mut worker, mut rxq, stop_at_end, live) in prepared {
            let stop_flag = Arc::clone(&stop);
            let launched = lcore::launch(&eal, place.lcore, move || {
                let mut sink = DiscardFlows;
                let cause = worker.poll(&mut rxq, timestamp, stop_at_end, &stop_flag, &mut sink);
                drop(rxq);
                worker.finish(&mut sink, cause)
            });
            match launched {
                Ok(job) => {
                    places.push(place);
                    lives.push(live);
                    jobs.push(Some(job));
                }
                Err(e) => {
                    stop.store(true, Ordering::SeqCst);
                    for job in jobs.into_iter().flatten() {
                        let _ = job.wait();
                    }
                    return Err(e.into());
                }
            }
        }
        let n = jobs.len();
        Ok(LiveDataplane {
            ports,
            places,
            live: lives,
            jobs,
            outcomes: (0..n).map(|_| None).collect(),
            failures: Vec::new(),
            stop,
            _pool: pool,
            _xdp_dir: xdp_dir,
            eal,
        })
    }

    /// Where the workers run.
    pub fn places(&self) -> &[WorkerPlace] {
        &self.places
    }

    /// Collects the workers that have returned; true when every worker has.
    pub fn reap(&mut self) -> bool {
        for (i, slot) in self.jobs.iter_mut().enumerate() {
            if slot.as_ref().is_some_and(LcoreJob::is_finished) {
                if let Some(job) = slot.take() {
                    match job.wait() {
                        Ok(outcome) => {
                            if let Some(o) = self.outcomes.get_mut(i) {
                                *o = Some(outcome);
                            }
                        }
                        Err(e) => {
                            tracing::error!(worker = i, error = %e, "dataplane worker failed");
                            self.failures.push(format!("worker {i}: {e}"));
                        }
                    }
                }
            }
        }
        self.jobs.iter().all(Option::is_none)
    }

    /// Asks every worker to stop, waits for them, and returns the failures met.
    pub fn stop_and_join(&mut self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        for (i, slot) in self.jobs.iter_mut().enumerate() {
            if let Some(job) = slot.take() {
                match job.wait() {
                    Ok(outcome) => {
                        if let Some(o) = self.outcomes.get_mut(i) {
                            *o = Some(outcome);
                        }
                    }
                    Err(e) => self.failures.push(format!("worker {i}: {e}")),
                }
            }
        }
        self.failures.clone()
    }

    /// The counters now: the ports' own, each worker's as it last published them (every few
    /// bursts while it runs; complete once it has returned), the flows the control plane received
    /// per worker and protocol (`live_protocols`, until the worker's own totals are in), and the
    /// hand-off drops per worker (`ring_drops`).
    pub fn stats(
        &self,
        live_protocols: &[BTreeMap<String, u64>],
        ring_drops: &[u64],
    ) -> DataplaneStats {
        let mut ports = Vec::with_capacity(self.ports.len());
        for rp in &self.ports {
            let id = rp.port.id();
            match rp.port.stats() {
                Ok(s) => ports.push(PortCounters {
                    port_id: id,
                    name: rp.name.clone(),
                    rx_packets: s.ipackets,
                    rx_bytes: s.ibytes,
                    rx_missed: s.imissed,
                    rx_errors: s.ierrors,
                    rx_nombuf: s.rx_nombuf,
                }),
                Err(e) => tracing::debug!(port = id, error = %e, "port statistics unavailable"),
            }
        }
        let workers = self
            .places
            .iter()
            .enumerate()
            .map(|(i, place)| {
                let mut w = WorkerStats {
                    worker_id: place.worker_id,
                    lcore: place.lcore,
                    port_id: place.port_id,
                    queue: place.queue,
                    flows_capacity: place.flows_capacity,
                    ..WorkerStats::default()
                };
                if let Some(live) = self.live.get(i) {
                    let snap = live.snapshot();
                    w.packets = snap.packets;
                    w.bytes = snap.bytes;
                    w.drops = snap
                        .drops
                        .iter()
                        .map(|(r, n)| (r.as_str().to_string(), *n))
                        .collect();
                    w.encapsulated = snap
                        .encapsulated
                        .iter()
                        .map(|(k, n)| (k.as_str().to_string(), *n))
                        .collect();
                    w.driver_bypass_flows = snap.driver_bypass_flows;
                    w.driver_bypassed_packets = snap.driver_bypassed_packets;
                    w.driver_bypassed_bytes = snap.driver_bypassed_bytes;
                    w.flows_active = snap.flows_active;
                    w.flows_created = snap.flows_created;
                    w.prefiltered = snap.prefiltered;
                }
                w.ring_drops = ring_drops.get(i).copied().unwrap_or(0);
                match self.outcomes.get(i).and_then(Option::as_ref) {
                    Some(o) => {
                        let report = o.observer.report();
                        w.ring_drops = report.ring_drops;
                        w.protocols = report
                            .app_protos
                            .iter()
                            .map(|(k, v)| ((*k).to_string(), *v))
                            .collect();
                    }
                    None => {
                        if let Some(protos) = live_protocols.get(i) {
                            w.protocols = protos.clone();
                        }
                    }
                }
                w
            })
            .collect();
        DataplaneStats {
            updated_at: Some(portolan_control::timestamp::format_rfc3339(
                portolan_control::timestamp::now_us(),
            )),
            ports,
            workers,
            outputs: Vec::new(),
        }
    }

    /// One line per worker for the log once every worker has returned.
    pub fn summary(&self) -> Vec<String> {
        self.places
            .iter()
            .zip(self.outcomes.iter())
            .filter_map(|(place, o)| {
                let o = o.as_ref()?;
                let r = o.observer.report();
                Some(format!(
                    "worker {} (lcore {}, port {} queue {}): {} packets, {} decoded, {} flows, {} classified, {} port mismatches, {} flow events, {} ring drops",
                    place.worker_id,
                    place.lcore,
                    place.port_id,
                    place.queue,
                    o.counters.packets,
                    o.counters.decoded,
                    o.table_stats.created,
                    r.decided_flows,
                    r.port_mismatches,
                    r.flow_events,
                    r.ring_drops
                ))
            })
            .collect()
    }
}
