//! One runtime, two modes. Replay ([`offline`]: captures through `net_pcap`) and the daemon
//! ([`online`]: the ports of a hardware description — `net_af_packet`, `net_af_xdp`, DPDK-bound
//! NICs, or `net_pcap` captures again) start the same way, in one order, through this module:
//!
//! ```text
//! Classifiers::load ─▶ Classifiers::observers ─▶ Eal::init_with_args ─▶ start_ports ─▶ prepare ─▶ launch
//!  (signatures,         (per-worker classifier,   (eal_args or the      (mempool,        (one      (one job
//!   port registry)       hand-off queues)          replay's EalConfig)   ports, queues)   Worker    per lcore)
//!                                                                                         per queue)
//! ```
//!
//! The modes differ only in where packets come from (the [`StartPlan`] each fills in: the
//! `net_pcap` device of the captures, or the described ports) and where results go (the job
//! each gives [`launch`]: replay keeps the workers and their flows for the report, the daemon
//! ends them on the lcore and lets the hand-off queues carry the flows on).
//!
//! Owns: loading the signatures and the port registry, building each worker's classifier and
//! hand-off queue, the EAL arguments of a described run ([`eal_args`]), the mempool and port
//! set-up of a [`StartPlan`], building the workers and launching them on their lcores. Must not:
//! decode or classify packets (the [`Worker`] and its observer do), decide which CPUs exist
//! (`portolan_hwconfig::cpus` does), or judge flows.

pub mod offline;
pub mod online;

use crate::classify::{ClassifyObserver, UpdatePolicy};
use crate::dpdk::eal::unique_file_prefix;
use crate::dpdk::{lcore, DpdkError, Eal, LcoreJob, PktMbufPool, Port, PortConfig, PortInfo};
use crate::dpdk::{RssSetup, RxQueue};
use crate::handoff::{flow_event_queues, FlowEventReceiver};
use crate::observer::PacketObserver;
use crate::prefilter::ManagedSubnets;
use crate::worker::{Worker, WorkerConfig};
use portolan_classify::{
    CacheDir, Classifier, ClassifyConfig, CompiledSignatures, DatabaseReport, PortRegistry,
};
use portolan_flow::{FlowTableConfig, FlowTableConfigError};
use portolan_hwconfig::{CoreList, HardwareDescription};
use portolan_packet::LinkType;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Why the signatures, the port registry or a worker's classifier could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClassifierSetupError {
    /// The signature directory does not load.
    #[error("signatures {}: {message}", .dir.display())]
    Signatures {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The port registry override does not load (the caller names its option).
    #[error("{0}")]
    PortOverride(String),
    /// The hand-off queues cannot be made (the caller names its option).
    #[error("{0}")]
    Queues(String),
    /// A worker's classifier (its Hyperscan scratch) could not be allocated.
    #[error("classifier for worker {worker}: {message}")]
    Classifier {
        /// Worker index.
        worker: usize,
        /// Why.
        message: String,
    },
}

impl ClassifierSetupError {
    /// True when a user's file or option is at fault (the classifier's allocation is not).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, ClassifierSetupError::Classifier { .. })
    }
}

/// The signatures and the port registry of a run, and what every worker's classifier is made
/// of: loaded once, shared by every worker.
#[derive(Debug)]
pub struct Classifiers {
    signatures: Arc<CompiledSignatures>,
    ports: Arc<PortRegistry>,
    config: ClassifyConfig,
    database: DatabaseReport,
    updates: UpdatePolicy,
}

impl Classifiers {
    /// Loads (or compiles) the signatures of `dir`, their port registry with `ports_override`
    /// applied (a TOML file replacing a protocol's port lists), for classifiers with `config`.
    pub fn load(
        dir: &Path,
        ports_override: Option<&Path>,
        config: ClassifyConfig,
    ) -> Result<Classifiers, ClassifierSetupError> {
        let (signatures, database) =
            CompiledSignatures::load(dir, &CacheDir::Default).map_err(|e| {
                ClassifierSetupError::Signatures {
                    dir: dir.to_path_buf(),
                    message: e.to_string(),
                }
            })?;
        Classifiers::from_compiled(signatures, database, ports_override, config)
    }

    /// Classifiers over a signature set already loaded (from a directory or the set built into
    /// the binary), with `ports_override` applied to its port registry.
    pub fn from_compiled(
        signatures: CompiledSignatures,
        database: DatabaseReport,
        ports_override: Option<&Path>,
        config: ClassifyConfig,
    ) -> Result<Classifiers, ClassifierSetupError> {
        let mut ports = signatures.port_registry();
        if let Some(p) = ports_override {
            ports
                .apply_override_file(p)
                .map_err(|e| ClassifierSetupError::PortOverride(e.to_string()))?;
        }
        Ok(Classifiers {
            signatures: Arc::new(signatures),
            ports: Arc::new(ports),
            config,
            database,
            updates: UpdatePolicy::default(),
        })
    }

    /// Which events open flows get before their final record (default: early events and an
    /// interim update at most every 60 s).
    pub fn set_updates(&mut self, updates: UpdatePolicy) {
        self.updates = updates;
    }

    /// The port registry (the `port_mismatch` verdicts; the control plane's device default
    /// baseline).
    pub fn ports(&self) -> &Arc<PortRegistry> {
        &self.ports
    }

    /// Protocols with a signature.
    pub fn protocols(&self) -> usize {
        self.signatures.signatures().len()
    }

    /// How the pattern database was obtained (patterns, cache or compiled).
    pub fn database(&self) -> &DatabaseReport {
        &self.database
    }

    /// One classifying observer per worker, each with its own classifier (Hyperscan scratch
    /// allocated now, before any lcore runs) and its end of a hand-off queue of `queue_capacity`
    /// events; the receiver drains them all.
    pub fn observers(
        &self,
        workers: usize,
        queue_capacity: usize,
    ) -> Result<(Vec<ClassifyObserver>, FlowEventReceiver), ClassifierSetupError> {
        let (senders, receiver) = flow_event_queues(workers, queue_capacity)
            .map_err(|e| ClassifierSetupError::Queues(e.to_string()))?;
        let mut observers = Vec::with_capacity(workers);
        for (i, tx) in senders.into_iter().enumerate() {
            let classifier =
                Classifier::new(Arc::clone(&self.signatures), self.config).map_err(|e| {
                    ClassifierSetupError::Classifier {
                        worker: i,
                        message: e.to_string(),
                    }
                })?;
            observers.push(
                ClassifyObserver::new(i as u16, classifier, Arc::clone(&self.ports), Some(tx))
                    .with_updates(self.updates),
            );
        }
        Ok((observers, receiver))
    }
}

/// How the EAL of a described run is started: the process's own options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EalOptions {
    /// Start without hugepages even when the description asks for them (adds `--no-huge`).
    pub force_no_huge: bool,
    /// EAL log level (`--log-level`), e.g. `*:error` (the default when `None`).
    pub log_level: Option<String>,
}

/// The EAL arguments of a described run (the daemon, `portolan hwcheck`): program name,
/// [`HardwareDescription::eal_args`], then `--no-huge` if forced and missing, `--no-shconf`,
/// `--no-telemetry`, a private file prefix and the log level.
///
/// When some described lcores are not among the `available` CPUs (EAL's `-l` would refuse
/// them), `-l LIST` becomes `--lcores=(LIST)@(available)`: every lcore exists, floating over
/// the CPUs there are, so the ports can still be probed (the check reports the problem).
pub fn eal_args(
    hw: &HardwareDescription,
    options: &EalOptions,
    available: Option<&CoreList>,
) -> Vec<String> {
    let mut args = vec!["portolan".to_string()];
    let missing_cpu =
        available.is_some_and(|a| !a.is_empty() && hw.cores.lcores.iter().any(|c| !a.contains(c)));
    let mut described = hw.eal_args().into_iter();
    while let Some(arg) = described.next() {
        match (arg.as_str(), available) {
            ("-l", Some(cpus)) if missing_cpu => {
                let list = described.next().unwrap_or_default();
                args.push(format!("--lcores=({list})@({cpus})"));
            }
            _ => args.push(arg),
        }
    }
    if options.force_no_huge && !args.iter().any(|a| a == "--no-huge") {
        args.push("--no-huge".to_string());
    }
    args.push("--no-shconf".to_string());
    args.push("--no-telemetry".to_string());
    args.push(unique_file_prefix());
    args.push(format!(
        "--log-level={}",
        options.log_level.as_deref().unwrap_or("*:error")
    ));
    args
}

/// The mbuf pool of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolPlan {
    /// Mbufs.
    pub mbufs: u32,
    /// Per-lcore cache.
    pub cache: u32,
    /// Data room of each mbuf, headroom included.
    pub data_room: u16,
}

/// One port of a run and the workers on its RX queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPlan {
    /// The EAL device name (`net_pcap0`, `net_af_xdp0`, a PCI address).
    pub device: String,
    /// The lcore of each RX queue's worker, in queue order (`None`: the next worker lcore the
    /// EAL started).
    pub lcores: Vec<Option<u32>>,
    /// Configure as many TX queues as the driver needs paired with the RX queues
    /// (`net_af_xdp`); otherwise none.
    pub paired_tx: bool,
    /// RX descriptors per queue.
    pub rx_descriptors: u16,
    /// Symmetric RSS with this key over the queues, when the device offers the hash types.
    pub rss_key: Option<Vec<u8>>,
    /// Link type of the port's frames.
    pub link_type: LinkType,
    /// The workers stop at the end of input (file-backed queues) instead of waiting for more.
    pub stop_at_end: bool,
}

/// Everything the one start-up path needs: EAL arguments, the pool, the ports, the workers'
/// flow tables and prefilter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartPlan {
    /// Arguments `rte_eal_init` gets.
    pub eal_args: Vec<String>,
    /// The mbuf pool.
    pub pool: PoolPlan,
    /// The ports, in worker order.
    pub ports: Vec<PortPlan>,
    /// Each worker's flow table.
    pub flow_table: FlowTableConfig,
    /// Managed subnets of the software prefilter (empty: none).
    pub managed_subnets: Vec<ipnet::IpNet>,
}

impl StartPlan {
    /// Workers (RX queues over all ports).
    pub fn worker_count(&self) -> usize {
        self.ports.iter().map(|p| p.lcores.len()).sum()
    }
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The EAL did not create a planned device.
    #[error("ports[{port}] ({device}): DPDK did not probe this device")]
    PortNotProbed {
        /// Index in the plan.
        port: usize,
        /// The device name.
        device: String,
    },
    /// The EAL started fewer worker lcores than needed.
    #[error("the EAL started {have} worker lcore(s), {need} needed")]
    NotEnoughLcores {
        /// Worker lcores available.
        have: usize,
        /// Workers requested.
        need: usize,
    },
    /// The number of observers is not the number of workers.
    #[error("{observers} classifiers for {workers} workers")]
    ObserverCount {
        /// Observers given.
        observers: usize,
        /// Workers planned.
        workers: usize,
    },
    /// The flow table configuration is invalid.
    #[error("{0}")]
    FlowTable(#[from] FlowTableConfigError),
    /// A DPDK call failed.
    #[error("{0}")]
    Dpdk(#[from] DpdkError),
}

/// A started port.
#[derive(Debug)]
pub struct StartedPort {
    /// The port (stopped and closed when dropped).
    pub port: Port,
    /// Its device info.
    pub info: PortInfo,
}

/// The EAL, the pool and the started ports of a run.
pub struct Started {
    /// The ports, in plan order.
    pub ports: Vec<StartedPort>,
    /// The mbuf pool.
    pub pool: Arc<PktMbufPool>,
    /// The receive timestamp field, when the drivers register one.
    pub timestamp: Option<crate::dpdk::TimestampField>,
    /// The EAL (cleaned up once the ports, the pool and every lcore job are gone).
    pub eal: Eal,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("eal", &self.eal.args())
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

/// Starts the EAL with the plan's arguments, creates the pool, and configures and starts every
/// port (RSS when planned and offered, TX queues paired when the driver needs them).
pub fn start(plan: &StartPlan) -> Result<Started, StartError> {
    plan.flow_table.validate()?;
    let eal = Eal::init_with_args(plan.eal_args.clone())?;
    let pool = PktMbufPool::create(
        &eal,
        "portolan_rx",
        plan.pool.mbufs,
        plan.pool.cache,
        plan.pool.data_room,
    )?;
    let mut ports = Vec::with_capacity(plan.ports.len());
    for (i, pp) in plan.ports.iter().enumerate() {
        let port_id =
            Port::id_by_name(&eal, &pp.device).map_err(|_| StartError::PortNotProbed {
                port: i,
                device: pp.device.clone(),
            })?;
        let info = Port::info_of(&eal, port_id)?;
        let rx_queues = pp.lcores.len() as u16;
        let rss = pp
            .rss_key
            .as_deref()
            .and_then(|key| rss_setup(key, &info, rx_queues));
        let config = PortConfig {
            rx_queues,
            tx_queues: if pp.paired_tx {
                crate::dpdk::paired_tx_queues(&info.driver, rx_queues)
            } else {
                0
            },
            rx_descriptors: pp.rx_descriptors,
            ..PortConfig::default()
        };
        let port = Port::configure_with_rss(&eal, port_id, &config, &pool, rss.as_ref())?;
        port.start()?;
        ports.push(StartedPort { port, info });
    }
    let timestamp = crate::dpdk::TimestampField::lookup(&eal);
    Ok(Started {
        eal,
        pool,
        ports,
        timestamp,
    })
}

/// Symmetric RSS over `rx_queues` queues with `key` (sized to the device), when the device
/// offers the required hash types.
fn rss_setup(key: &[u8], info: &PortInfo, rx_queues: u16) -> Option<RssSetup> {
    use portolan_hwconfig::plan::rss_types;
    if rx_queues <= 1 || info.rss_offloads & rss_types::REQUIRED != rss_types::REQUIRED {
        return None;
    }
    let key = portolan_hwconfig::rss::key_for_device(key, usize::from(info.hash_key_size)).ok()?;
    Some(RssSetup {
        key,
        rss_hf: rss_types::WANTED & info.rss_offloads,
    })
}

/// A worker ready to run: its lcore, its queue, and where it sits.
pub struct PreparedWorker<O: PacketObserver> {
    /// Worker index (port order, then queue order).
    pub index: usize,
    /// Index of its port in the plan.
    pub port: usize,
    /// Its RX queue on that port.
    pub queue: u16,
    /// The lcore it runs on.
    pub lcore: u32,
    /// Stop at the end of input.
    pub stop_at_end: bool,
    /// The worker (flow table allocated).
    pub worker: Worker<O>,
    /// Its RX queue.
    pub rxq: RxQueue,
}

/// Builds one worker per planned RX queue with `observers` (one per worker, in port then queue
/// order), each with its flow table (allocated now) and the prefilter. Lcores left open in the
/// plan are the EAL's worker lcores, in order. `customise` adds what a mode needs (live
/// counters, the driver bypass) given the worker's index and port.
pub fn prepare<O: PacketObserver>(
    plan: &StartPlan,
    started: &Started,
    observers: Vec<O>,
    mut customise: impl FnMut(usize, usize, Worker<O>) -> Worker<O>,
) -> Result<Vec<PreparedWorker<O>>, StartError> {
    let need = plan.worker_count();
    if observers.len() != need {
        return Err(StartError::ObserverCount {
            observers: observers.len(),
            workers: need,
        });
    }
    let eal_lcores = lcore::worker_lcores(&started.eal);
    let open = plan
        .ports
        .iter()
        .flat_map(|p| &p.lcores)
        .filter(|l| l.is_none())
        .count();
    if eal_lcores.len() < open {
        return Err(StartError::NotEnoughLcores {
            have: eal_lcores.len(),
            need: open,
        });
    }
    let mut next_lcore = eal_lcores.into_iter();
    let mut observers = observers.into_iter();
    let mut prepared = Vec::with_capacity(need);
    for ((p, pp), sp) in plan.ports.iter().enumerate().zip(&started.ports) {
        for (q, lc) in pp.lcores.iter().enumerate() {
            let (Some(observer), Some(lcore)) =
                (observers.next(), lc.or_else(|| next_lcore.next()))
            else {
                break;
            };
            let cfg = WorkerConfig {
                flow_table: plan.flow_table,
                ..WorkerConfig::new(pp.link_type)
            };
            let worker = Worker::new(cfg, observer)?
                .with_prefilter(ManagedSubnets::new(&plan.managed_subnets));
            let index = prepared.len();
            prepared.push(PreparedWorker {
                index,
                port: p,
                queue: q as u16,
                lcore,
                stop_at_end: pp.stop_at_end,
                worker: customise(index, p, worker),
                rxq: sp.port.rx_queue(q as u16)?,
            });
        }
    }
    Ok(prepared)
}

/// Launches every prepared worker on its lcore with `job` (what the lcore runs: the poll loop
/// and whatever the mode does with the worker after it). When one launch fails the workers
/// already running are stopped through `stop` and joined.
pub fn launch<O, T, F>(
    started: &Started,
    prepared: Vec<PreparedWorker<O>>,
    stop: &Arc<AtomicBool>,
    job: F,
) -> Result<Vec<LcoreJob<T>>, StartError>
where
    O: PacketObserver,
    T: Send + 'static,
    F: Fn(Worker<O>, RxQueue, bool, &AtomicBool) -> T + Clone + Send + 'static,
{
    let mut jobs = Vec::with_capacity(prepared.len());
    for w in prepared {
        let stop_flag = Arc::clone(stop);
        let job = job.clone();
        let (worker, rxq, stop_at_end) = (w.worker, w.rxq, w.stop_at_end);
        match lcore::launch(&started.eal, w.lcore, move || {
            job(worker, rxq, stop_at_end, &stop_flag)
        }) {
            Ok(j) => jobs.push(j),
            Err(e) => {
                stop.store(true, Ordering::SeqCst);
                for j in jobs {
                    let _ = j.wait();
                }
                return Err(e.into());
            }
        }
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn description() -> HardwareDescription {
        HardwareDescription::from_toml_str(
            r#"
            [cores]
            lcores = "0-2"
            main = 0
            [memory]
            hugepages = true
            memory_mb = 256
            [[ports]]
            vdev = "net_pcap0,rx_pcap=a.pcap,rx_pcap=b.pcap"
            rx_queues = 2
            queues = [{ lcore = 1 }, { lcore = 2 }]
            "#,
        )
        .expect("description")
    }

    #[test]
    fn eal_args_add_private_prefix_and_forced_no_huge() {
        let hw = description();
        let two: CoreList = [0u32, 1].into_iter().collect();
        let plain = eal_args(&hw, &EalOptions::default(), Some(&two));
        assert_eq!(plain[1], "--lcores=(0-2)@(0-1)");
        let three: CoreList = [0u32, 1, 2].into_iter().collect();
        let fits = eal_args(&hw, &EalOptions::default(), Some(&three));
        assert_eq!(&fits[1..3], &["-l".to_string(), "0-2".to_string()]);
        assert_eq!(plain[0], "portolan");
        assert!(!plain.iter().any(|a| a == "--no-huge"), "{plain:?}");
        assert!(plain
            .iter()
            .any(|a| a.starts_with("--file-prefix=portolan-")));
        assert!(plain.iter().any(|a| a == "--log-level=*:error"));
        let forced = eal_args(
            &hw,
            &EalOptions {
                force_no_huge: true,
                log_level: Some("*:info".into()),
            },
            None,
        );
        assert_eq!(forced.iter().filter(|a| *a == "--no-huge").count(), 1);
        assert!(forced.iter().any(|a| a == "--log-level=*:info"));
        let one: CoreList = [3u32].into_iter().collect();
        let floated = eal_args(&hw, &EalOptions::default(), Some(&one));
        assert_eq!(floated[1], "--lcores=(0-2)@(3)");
        assert_eq!(floated[2], "--main-lcore");
    }
}
