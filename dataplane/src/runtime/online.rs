//! The online mode of the runtime, the daemon: the ports of a hardware description (kernel
//! interfaces through `net_af_packet` or `net_af_xdp`, DPDK-bound NICs, or `net_pcap` captures),
//! one classifying worker per RX queue on its described lcore, running until the end of its
//! input (file-backed `net_pcap` queues) or until stopped.
//!
//! Owns: where packets come from (the description turned into a [`StartPlan`] for the start-up
//! shared with replay, [`super`]: EAL arguments, pool, ports with symmetric RSS, the XDP bypass
//! program on `net_af_xdp` ports), where results go (each worker ends its flows on its lcore;
//! the flows travel on through the hand-off queues, the records are not kept), and the running
//! dataplane's workers, counters and failures ([`LiveDataplane`]). Must not: decode or classify
//! packets (the [`crate::Worker`] and [`ClassifyObserver`] do), judge flows, serve statistics
//! in an API's shape (the daemon maps them), or run on a worker lcore itself.

use super::{EalOptions, PoolPlan, PortPlan, StartError, StartPlan};
use crate::classify::ClassifyObserver;
use crate::dpdk::flow_table::DpdkRuleTable;
use crate::dpdk::kernel_drops::{af_xdp_iface, KernelSocketDrops};
use crate::dpdk::xdp_prefilter::XdpPrefilter;
use crate::dpdk::{xdp, DpdkError, Eal, LcoreJob, PktMbufPool, Port};
use crate::nic_bypass::{self, NicBypass, RuleTable};
use crate::observer::FlowSink;
use crate::runtime;
use crate::worker::{LiveCounters, WorkerOutcome};
use portolan_flow::FinishedFlow;
use portolan_hwconfig::{CoreList, HardwareDescription};
use portolan_packet::LinkType;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Why the dataplane could not start.
#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
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
#[derive(Debug)]
pub struct RunningPort {
    /// The started port.
    pub port: Port,
    /// Its name (the description's, else the device's).
    pub name: String,
    /// For a `net_af_packet` port (or the one `net_af_xdp` port): the kernel's drop counter
    /// of its sockets.
    pub kernel_drops: Option<KernelSocketDrops>,
    /// For a `net_af_xdp` port with the daemon's XDP program and
    /// `offloads.prefilter_managed_subnets`: the managed-subnet prefilter in the driver, filled
    /// and switched on, and its counters.
    pub driver_prefilter: Option<XdpPrefilter>,
}

/// A started dataplane.
pub struct LiveDataplane {
    /// The NIC bypass rules of each port that has them: flushed at exit, before the ports
    /// close (fields drop in order).
    nic_bypass: Vec<Arc<NicBypass>>,
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

/// True for a `net_af_xdp` port on which the daemon loads its XDP program: the description
/// asks for `bypass_judged_flows` or `prefilter_managed_subnets` (`wanted`) and the vdev names
/// no program of its own.
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
) -> Result<(HardwareDescription, Option<tempfile::TempDir>), OnlineError> {
    let mut hw = hw.clone();
    let bypass = hw.offloads.bypass_judged_flows || hw.offloads.prefilter_managed_subnets;
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
        .map_err(|e| OnlineError::Description(format!("XDP program folder: {e}")))?;
    let prog = xdp::write_bypass_program(dir.path())
        .map_err(|e| OnlineError::Description(format!("XDP program: {e}")))?;
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
pub fn port_link_types(hw: &HardwareDescription) -> Result<Vec<LinkType>, OnlineError> {
    hw.ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if !p.is_net_pcap() {
                return Ok(LinkType::Ethernet);
            }
            let files = rx_pcap_files(p.device_string());
            if files.is_empty() {
                return Err(OnlineError::Description(format!(
                    "hardware.ports[{i}].vdev: a net_pcap port needs at least one rx_pcap=FILE"
                )));
            }
            super::offline::check_captures(&files)
                .map(|(link, _)| link)
                .map_err(|e| OnlineError::Description(format!("hardware.ports[{i}].vdev: {e}")))
        })
        .collect()
}

/// This machine's CPUs, once the description's cores are checked against them and the
/// observers against its workers.
fn check_machine(hw: &HardwareDescription, observers: usize) -> Result<CoreList, OnlineError> {
    let available = CoreList::allowed_for_this_process()
        .map_err(|e| OnlineError::Description(format!("cannot read this process's CPUs: {e}")))?;
    hw.validate_cpus(&available)
        .map_err(|e| OnlineError::Description(format!("hardware: {e}")))?;
    if observers != hw.worker_count() {
        return Err(OnlineError::Description(format!(
            "{observers} classifiers for {} workers",
            hw.worker_count()
        )));
    }
    Ok(available)
}

/// Where the daemon's packets come from: the description's EAL arguments (lcores floated over
/// the CPUs there are), its pool, and each port with its RX queues on their described lcores,
/// symmetric RSS when asked for, TX queues paired where the driver needs them.
fn start_plan(
    hw: &HardwareDescription,
    link_types: &[LinkType],
    available: &CoreList,
) -> Result<StartPlan, OnlineError> {
    let data_room = u16::try_from(hw.mempool.data_room).map_err(|_| {
        OnlineError::Description("hardware.mempool.data_room: above 65535".to_string())
    })?;
    let rx_descriptors = u16::try_from(hw.rings.rx_descriptors).map_err(|_| {
        OnlineError::Description("hardware.rings.rx_descriptors: above 65535".to_string())
    })?;
    let ports = hw
        .ports
        .iter()
        .enumerate()
        .map(|(i, pc)| PortPlan {
            device: pc.device_name().to_string(),
            lcores: pc.queues.iter().map(|q| Some(q.lcore)).collect(),
            paired_tx: true,
            rx_descriptors,
            rss_key: hw.offloads.symmetric_rss.then(|| hw.rss.key.clone()),
            link_type: link_types.get(i).copied().unwrap_or(LinkType::Ethernet),
            stop_at_end: pc.is_net_pcap(),
        })
        .collect();
    Ok(StartPlan {
        eal_args: runtime::eal_args(hw, &EalOptions::default(), Some(available)),
        pool: PoolPlan {
            mbufs: hw.mempool.mbufs,
            cache: hw.mempool.cache,
            data_room,
        },
        ports,
        flow_table: hw.flow_table_config(),
        // The workers' software prefilter runs whatever the driver does: before the driver's
        // is switched on, and for what it leaves to the workers (encapsulations, fragments).
        managed_subnets: if hw.offloads.prefilter_managed_subnets {
            hw.offloads.managed_subnets.clone()
        } else {
            Vec::new()
        },
    })
}

/// The XDP bypass map of a port whose vdev loads the daemon's program, once the port has
/// started (`None`, logged, when it cannot be found).
fn driver_bypass(
    pc: &portolan_hwconfig::PortConfig,
    name: &str,
    program_written: bool,
) -> Option<Arc<xdp::XdpBypassMap>> {
    pc.vdev
        .as_deref()
        .filter(|v| v.contains("xdp_prog=") && program_written)
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
        })
}

/// The managed-subnet prefilter in the driver of a port whose vdev loads the daemon's program,
/// when `[offloads] prefilter_managed_subnets` asks for it (`None`, logged, otherwise or when
/// the program's maps cannot be filled: the workers' software prefilter does the work then).
fn driver_prefilter(
    pc: &portolan_hwconfig::PortConfig,
    name: &str,
    hw: &HardwareDescription,
    program_written: bool,
) -> Option<XdpPrefilter> {
    if !hw.offloads.prefilter_managed_subnets {
        return None;
    }
    let iface = pc
        .vdev
        .as_deref()
        .filter(|v| v.contains("xdp_prog=") && program_written)
        .and_then(af_xdp_iface)?;
    match XdpPrefilter::start(iface, &hw.offloads.managed_subnets) {
        Ok(p) => {
            tracing::info!(port = %name, iface, subnets = p.subnets(),
                "managed-subnet prefilter in the driver");
            Some(p)
        }
        Err(e) => {
            tracing::warn!(port = %name, error = %e,
                "no driver prefilter: the workers skip unmanaged packets in software");
            None
        }
    }
}

/// The NIC bypass of a started port, when `[offloads]` asks for it explicitly
/// (`nic_bypass = true`), the port has no driver bypass, and its driver validates the bypass
/// drop rule: the port's rules are flushed and the bypass installs at most
/// `nic_bypass_max_rules`. `None` (logged with the driver's answer) otherwise.
fn nic_bypass_for(
    hw: &HardwareDescription,
    eal: &Eal,
    port_id: u16,
    name: &str,
    has_driver_bypass: bool,
) -> Option<Arc<NicBypass>> {
    let o = &hw.offloads;
    if !(o.bypass_judged_flows && o.nic_bypass) || has_driver_bypass {
        return None;
    }
    let max_rules = usize::try_from(o.nic_bypass_max_rules).unwrap_or(usize::MAX);
    let mut table = match DpdkRuleTable::new(eal, port_id, max_rules) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(port = %name, error = %e, "no NIC bypass");
            return None;
        }
    };
    // The rule kind `portolan hwcheck` validates as bypass_drop_ipv4 (documentation addresses).
    let probe = nic_bypass::bypass_rule(
        std::net::Ipv4Addr::new(192, 0, 2, 1).into(),
        49152,
        std::net::Ipv4Addr::new(198, 51, 100, 1).into(),
        443,
    )?;
    if let Err(refusal) = table.validate(&probe) {
        tracing::warn!(port = %name, code = refusal.code, reason = %refusal.message,
            "offloads.nic_bypass: the driver refuses the bypass drop rule; judged flows stay on the software path");
        return None;
    }
    // Some drivers validate what they then cannot create (net_tap when the kernel lacks its
    // qdisc): one probe rule is created and destroyed before any flow relies on it.
    match table.create(&probe) {
        Ok(h) => {
            let _ = table.destroy(h);
        }
        Err(refusal) => {
            tracing::warn!(port = %name, code = refusal.code, reason = %refusal.message,
                "offloads.nic_bypass: the driver validates the bypass drop rule but refuses to create it; judged flows stay on the software path");
            return None;
        }
    }
    match NicBypass::start(name, Box::new(table), max_rules) {
        Ok(b) => {
            tracing::info!(port = %name, max_rules, "bypass of judged flows in the NIC (rte_flow drop rules)");
            Some(Arc::new(b))
        }
        Err(refusal) => {
            tracing::warn!(port = %name, code = refusal.code, reason = %refusal.message,
                "offloads.nic_bypass: rte_flow_flush failed; judged flows stay on the software path");
            None
        }
    }
}

/// A start-up failure in the description's terms.
fn start_error(e: StartError, hw: &HardwareDescription) -> OnlineError {
    match e {
        StartError::PortNotProbed { port, device } => OnlineError::Description(format!(
            "hardware.ports[{port}] ({device}): DPDK did not probe this device; check the address \
             or vdev string (and that the driver is installed)"
        )),
        StartError::FlowTable(e) => OnlineError::Description(format!("hardware.flow_table: {e}")),
        StartError::Dpdk(e) => OnlineError::Dpdk(e),
        other => {
            OnlineError::Description(format!("hardware ({} workers): {other}", hw.worker_count()))
        }
    }
}

/// The started ports with their names and, for kernel-socket ports, their drop counters.
fn running_ports(
    hw: &HardwareDescription,
    started: Vec<runtime::StartedPort>,
    program_written: bool,
) -> Vec<RunningPort> {
    let af_xdp_ports = hw
        .ports
        .iter()
        .filter(|pc| pc.vdev.as_deref().and_then(af_xdp_iface).is_some())
        .count();
    started
        .into_iter()
        .zip(hw.ports.iter().enumerate())
        .map(|(sp, (i, pc))| RunningPort {
            port: sp.port,
            name: pc.display_name(i),
            kernel_drops: pc
                .vdev
                .as_deref()
                .and_then(|vdev| KernelSocketDrops::for_vdev(vdev, af_xdp_ports)),
            driver_prefilter: driver_prefilter(pc, &pc.display_name(i), hw, program_written),
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
    ) -> Result<LiveDataplane, OnlineError> {
        let available = check_machine(hw, observers.len())?;
        let (hw, xdp_dir) = with_xdp_bypass(hw)?;
        let plan = start_plan(&hw, link_types, &available)?;
        tracing::info!(eal = %plan.eal_args.join(" "), "starting the DPDK EAL");
        let started = runtime::start(&plan).map_err(|e| start_error(e, &hw))?;
        // The bypass program is attached once the port has started; its map is found through
        // the interface. Without it the flows stay on the software path.
        let bypass: Vec<Option<Arc<xdp::XdpBypassMap>>> = hw
            .ports
            .iter()
            .enumerate()
            .map(|(i, pc)| {
                let program = xdp_dir.is_some() && hw.offloads.bypass_judged_flows;
                driver_bypass(pc, &pc.display_name(i), program)
            })
            .collect();
        let nic: Vec<Option<Arc<NicBypass>>> = hw
            .ports
            .iter()
            .enumerate()
            .map(|(i, pc)| {
                let port_id = started.ports.get(i).map(|p| p.port.id())?;
                let has_driver = bypass.get(i).is_some_and(Option::is_some);
                nic_bypass_for(&hw, &started.eal, port_id, &pc.display_name(i), has_driver)
            })
            .collect();
        let lives: Vec<Arc<LiveCounters>> = (0..plan.worker_count())
            .map(|_| Arc::new(LiveCounters::default()))
            .collect();
        let prepared = runtime::prepare(&plan, &started, observers, |w, p, worker| {
            let mut worker = match lives.get(w) {
                Some(live) => worker.with_live_counters(Arc::clone(live)),
                None => worker,
            };
            if let Some(map) = bypass.get(p).and_then(Option::as_ref) {
                worker = worker.with_driver_bypass(Arc::clone(map));
            } else if let Some(rules) = nic.get(p).and_then(Option::as_ref) {
                worker = worker.with_nic_bypass(Arc::clone(rules));
            }
            worker
        })
        .map_err(|e| start_error(e, &hw))?;
        let places = prepared
            .iter()
            .map(|w| WorkerPlace {
                worker_id: w.index as u32,
                lcore: w.lcore,
                port_id: started.ports.get(w.port).map_or(0, |p| p.port.id()),
                queue: w.queue,
                flows_capacity: plan.flow_table.capacity as u64,
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let timestamp = started.timestamp;
        let jobs = runtime::launch(
            &started,
            prepared,
            &stop,
            move |mut worker, mut rxq, at_end, stop| {
                let mut sink = DiscardFlows;
                let cause = worker.poll(&mut rxq, timestamp, at_end, stop, &mut sink);
                drop(rxq);
                worker.finish(&mut sink, cause)
            },
        )
        .map_err(|e| start_error(e, &hw))?;
        let runtime::Started {
            eal, pool, ports, ..
        } = started;
        let n = jobs.len();
        Ok(LiveDataplane {
            nic_bypass: nic.into_iter().flatten().collect(),
            ports: running_ports(&hw, ports, xdp_dir.is_some()),
            places,
            live: lives,
            jobs: jobs.into_iter().map(Some).collect(),
            outcomes: (0..n).map(|_| None).collect(),
            failures: Vec::new(),
            stop,
            _pool: pool,
            _xdp_dir: xdp_dir,
            eal,
        })
    }

    /// The arguments the EAL was started with.
    pub fn eal_args(&self) -> &[String] {
        self.eal.args()
    }

    /// The ports as configured, in description order.
    pub fn ports(&self) -> &[RunningPort] {
        &self.ports
    }

    /// Each worker's counters as it last published them (see [`LiveCounters`]).
    pub fn live_counters(&self) -> &[Arc<LiveCounters>] {
        &self.live
    }

    /// Each worker's outcome, once it has returned ([`LiveDataplane::reap`],
    /// [`LiveDataplane::stop_and_join`]).
    pub fn outcomes(&self) -> &[Option<WorkerOutcome<ClassifyObserver>>] {
        &self.outcomes
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

    /// Each NIC bypass's port name and counters (ports with `offloads.nic_bypass` whose driver
    /// accepted the rules).
    pub fn nic_bypass_stats(&self) -> Vec<(String, nic_bypass::NicBypassStats)> {
        self.nic_bypass
            .iter()
            .map(|b| (b.port().to_string(), b.stats()))
            .collect()
    }

    /// Asks every worker to stop, waits for them, flushes the NIC bypass rules, and returns
    /// the failures met.
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
        for b in &self.nic_bypass {
            let st = b.stats();
            tracing::info!(port = %b.port(), flows = st.flows_installed, full = st.full,
                refused = st.refused, peak_rules = st.rules_peak, "NIC bypass at exit");
            if let Err(e) = b.shutdown() {
                self.failures.push(format!(
                    "port {}: rte_flow_flush at exit: {}",
                    b.port(),
                    e.message
                ));
            }
        }
        self.failures.clone()
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
