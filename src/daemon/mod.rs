//! `portolan run --config FILE`: the appliance daemon. The dataplane from the hardware
//! description (one classifying worker per RX queue on its lcore), the flow hand-off into the
//! control plane, the SQLite store, and the admin API over TLS, in one process.
//!
//! Owns: the start-up order and the threads. Everything that is not a worker — the tokio runtime
//! serving the API, the flow-event drain thread feeding the control plane — is created *before*
//! the EAL starts and pinned to the description's control cores (threads created after
//! `rte_eal_init` would inherit the main lcore's single-CPU affinity). Then the EAL starts on the
//! main thread, which publishes statistics until shutdown. Signals: SIGTERM/SIGINT stop the
//! workers, drain their last flows into the control plane, write the learning counts and close
//! the API gracefully; SIGHUP reopens the output files (alert files, flow log: log rotation)
//! and (like `POST /api/v1/reload`) re-reads roles, baselines and exceptions without touching
//! the dataplane.
//!
//! Start policy (`dataplane.start`): `immediately`, or `after_first_inventory`, which holds the
//! dataplane until the store has a device — so a capture replayed through `net_pcap` is judged
//! with the inventory pushed through the API in place. With `net_pcap` ports the workers end at
//! the end of their captures and the daemon keeps serving the API.
//!
//! Must not: log secrets (tokens, keys), judge flows (the control plane does), or poll packets
//! on the main thread.

mod connectors;
mod data_dir_lock;
mod dataplane;
mod fleet;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use portolan_api::{
    ApiServer, ApiState, ControlHandle, DataplaneStatsHandle, Readiness, ReloadPlan, RolesSource,
    TokenStore,
};
use portolan_classify::{ClassifyConfig, PortRegistry};
use portolan_control::{ControlCore, ControlPlane, Ingest};
use portolan_dataplane::runtime::ClassifierSetupError;
use portolan_dataplane::{Classifiers, DrainOptions, FlowEventDrain};

use crate::config::{ApplianceConfig, LogFormat, LoggingSection, Overrides, StartPolicy};
use crate::control_setup::{
    open_control, ControlInputs, DataplaneBaseline, InputNames, StoreTarget,
};
use crate::feed::{self, AlertFeed, LiveProtocols, OnFailure};
use crate::Failure;
use dataplane::{port_link_types, LiveDataplane, OnlineError};

/// Actor recorded in the audit log for imports the daemon makes from `[inputs]`.
const STARTUP_ACTOR: &str = "portolan-run";

/// How the daemon's control inputs are named in errors.
const INPUT_NAMES: InputNames = InputNames {
    store: "store.path",
    roles: "control.roles",
    inventory: "inputs.inventory",
    leases: "inputs.leases",
    device_states: "inputs.device_states",
};

/// Tokio worker threads serving the API (on the control cores).
const API_THREADS: usize = 2;

/// Options of `portolan run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Appliance configuration (TOML), e.g. config/portolan.example.toml.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Listen on this address instead of the configuration's `api.listen` (port 0: any free
    /// port; the log line `admin API listening on ...` gives it).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Use this data folder instead of the configuration's `data_dir`.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// What the main thread waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DaemonEvent {
    /// SIGTERM or SIGINT.
    Shutdown(&'static str),
}

/// Creates `dir` (and its parents) with mode 0700 when missing; an existing `dir` open to its
/// group or others is tightened to 0700 (and says so in the log).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
                tracing::warn!(dir = %dir.display(), from = format!("{mode:o}"), "tightened the data directory to mode 0700");
            }
        }
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

pub(crate) fn init_logging(cfg: &LoggingSection) -> Result<(), Failure> {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = match EnvFilter::try_from_default_env() {
        Ok(f) => f,
        Err(_) => EnvFilter::try_new(&cfg.level)
            .map_err(|e| Failure::bad_input(format!("logging.level {:?}: {e}", cfg.level)))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match cfg.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| Failure::runtime(format!("cannot start logging: {e}")))
}

/// Pins the calling thread to `cpus` (the control cores); a failure is logged, not fatal.
fn pin_to(cpus: &[u32]) {
    if let Err(e) = portolan_hwconfig::cpus::pin_current_thread(cpus) {
        tracing::warn!(cpus = ?cpus, error = %e, "cannot pin a control-plane thread");
    }
}

/// Waits for SIGTERM/SIGINT (tells the main thread) and SIGHUP (asks the drain thread to reopen
/// the output files through `reopen`, and reloads roles, baselines and exceptions through the
/// same path as `POST /api/v1/reload`).
async fn handle_signals(
    control: ControlHandle,
    events: mpsc::Sender<DaemonEvent>,
    reopen: Arc<std::sync::atomic::AtomicU64>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the daemon with SIGKILL");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => {
                let _ = events.send(DaemonEvent::Shutdown("SIGTERM"));
            }
            _ = int.recv() => {
                let _ = events.send(DaemonEvent::Shutdown("SIGINT"));
            }
            _ = hup.recv() => {
                reopen.fetch_add(1, std::sync::atomic::Ordering::Release);
                tracing::info!("SIGHUP: output files are reopened before the next write");
                let c = control.clone();
                let result = tokio::task::spawn_blocking(move || {
                    c.reload("system:SIGHUP", "SIGHUP received: roles file re-read")
                })
                .await;
                match result {
                    Ok(Ok(r)) => tracing::info!(
                        roles = r.roles,
                        exceptions = r.exceptions,
                        warnings = r.warnings.len(),
                        "SIGHUP: roles, baselines and exceptions reloaded"
                    ),
                    Ok(Err(e)) => tracing::error!(error = %e, "SIGHUP: reload failed; previous roles stay in force"),
                    Err(e) => tracing::error!(error = %e, "SIGHUP: reload task failed"),
                }
            }
        }
    }
}

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run_daemon(args: RunArgs) -> Result<(), Failure> {
    let overrides = Overrides {
        data_dir: args.data_dir,
        listen: args.listen,
    };
    let cfg = ApplianceConfig::load(&args.config, &overrides)
        .map_err(|e| Failure::bad_input(e.to_string()))?;
    init_logging(&cfg.logging)?;
    tracing::info!(config = %cfg.origin.display(), data_dir = %cfg.data_dir.display(), "portolan run starting");
    let result = run(&cfg);
    if let Err(f) = &result {
        tracing::error!(error = %f.message, "portolan run failed");
    }
    result
}

fn run(cfg: &ApplianceConfig) -> Result<(), Failure> {
    let hw = &cfg.hardware;
    // One daemon per data directory: held until this function returns.
    let _lock = prepare_data_dir(cfg)?;
    // Captures, signatures and the port registry: bad input fails before anything starts.
    let link_types = port_link_types(hw).map_err(|e| Failure::bad_input(e.to_string()))?;
    let classifiers = load_classifiers(cfg)?;
    let (ingest, core, control) = start_control(cfg, classifiers.ports())?;
    // The fleet publisher's thread, before the EAL (pinned to the control cores like the rest).
    let publisher = fleet::start(cfg, &core)?;
    let config_watcher = fleet::start_config(cfg, control.operator())?;
    let tokens = open_tokens(cfg)?;
    let stats = DataplaneStatsHandle::new();
    let readiness = Readiness::new();
    let state = ApiState::with_stats(control.clone(), tokens, stats.clone(), readiness.clone());

    // Classifiers (Hyperscan scratch), hand-off queues and the drain thread: before the EAL.
    let (observers, receiver) = classifiers
        .observers(hw.worker_count(), hw.rings.handoff as usize)
        .map_err(|e| match e {
            ClassifierSetupError::Queues(m) => {
                Failure::bad_input(format!("hardware.rings.handoff: {m}"))
            }
            other => Failure::runtime(other.to_string()),
        })?;
    let live_protocols: LiveProtocols = Arc::new(Mutex::new(Vec::new()));
    let feed = open_feed(cfg, ingest, &live_protocols)?;
    let reopen = feed.reopen_handle();
    stats.set_output_source(fleet::with_outputs(
        feed::output_source(feed.output_probes()),
        publisher.as_ref(),
    ));
    stats.set_build_info(crate::build_info());
    // A view on the queues' drop counters for the statistics (the receiver goes to the drain).
    let ring_view = receiver.clone();
    let drain = FlowEventDrain::spawn(
        receiver,
        feed,
        DrainOptions {
            cpus: hw.control_cores(),
            ..DrainOptions::default()
        },
    )
    .map_err(|e| Failure::runtime(format!("cannot start the flow event thread: {e}")))?;
    let operator = control.operator().clone();
    let api = Api::start(cfg, state, control, reopen)?;
    // Inventory connectors pull on the API runtime (their first pull may be what
    // `after_first_inventory` waits for).
    let connectors = connectors::Connectors::start(cfg, &api.runtime, &operator, &stats);
    // Ready once the dataplane polls (below); until then /readyz says why not.

    let mut shutdown = None;
    if cfg.dataplane.start == StartPolicy::AfterFirstInventory && device_count(&core) == 0 {
        shutdown = wait_for_inventory(&core, &api.events, &readiness);
    }
    let (mut dataplane, failure) = match shutdown {
        None => start_dataplane(hw, &link_types, observers, &readiness),
        Some(_) => (None, None),
    };
    if shutdown.is_none() && failure.is_none() {
        let interval = Duration::from_millis(cfg.dataplane.stats_interval_ms);
        let publish = |dp: &LiveDataplane| {
            let protos = live_protocols.lock().map(|p| p.clone()).unwrap_or_default();
            stats.publish(dataplane::stats(dp, &protos, &ring_view.ring_drops()));
        };
        shutdown = Some(serve(dataplane.as_mut(), &api.events, interval, &publish));
    }
    if let Some(sig) = shutdown {
        tracing::info!(signal = sig, "shutting down");
    }

    // Shutdown: stop the workers (their open flows end and are queued), drain the queues into
    // the control plane, write the learning counts, then close the API.
    readiness.set_ready(false);
    if let Some(dp) = dataplane.as_mut() {
        for f in dp.stop_and_join() {
            tracing::error!("{f}");
        }
        let protos = live_protocols.lock().map(|p| p.clone()).unwrap_or_default();
        stats.publish(dataplane::stats(dp, &protos, &ring_view.ring_drops()));
    }
    finish_drain(drain);
    flush_learning(&core);
    fleet::stop(publisher, config_watcher, &core);
    connectors.stop();
    api.stop();
    drop(dataplane);
    tracing::info!("stopped");
    match failure {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// Writes the pending learning counts at shutdown (a failure is logged: the daemon is stopping).
fn flush_learning(core: &ControlCore) {
    match core.lock() {
        Ok(mut e) => {
            if let Err(err) = e.flush() {
                tracing::error!(error = %err, "cannot write the learning counts");
            }
        }
        Err(_) => tracing::error!("control-plane lock poisoned at shutdown"),
    }
}

/// Creates the data directory and the store's folder (mode 0700 whatever the umask) and takes
/// the data directory's lock.
fn prepare_data_dir(cfg: &ApplianceConfig) -> Result<data_dir_lock::DataDirLock, Failure> {
    // Whatever the caller's umask, what the daemon creates (store, WAL, alert files, uploads,
    // TLS pair) is its owner's only.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    create_private_dir(&cfg.data_dir)
        .map_err(|e| Failure::runtime(format!("data_dir {}: {e}", cfg.data_dir.display())))?;
    let lock = data_dir_lock::DataDirLock::acquire(&cfg.data_dir)?;
    if let Some(dir) = cfg.store.path.parent() {
        create_private_dir(dir)
            .map_err(|e| Failure::runtime(format!("store folder {}: {e}", dir.display())))?;
    }
    Ok(lock)
}

/// The signatures and port registry of `[dataplane]`, for classifiers of `[hardware.inspection]`.
fn load_classifiers(cfg: &ApplianceConfig) -> Result<Classifiers, Failure> {
    let source =
        crate::signatures::locate(cfg.dataplane.signatures.as_deref(), "dataplane.signatures")
            .map_err(Failure::bad_input)?;
    let inspection = &cfg.hardware.inspection;
    let classify_config = ClassifyConfig {
        max_bytes: inspection.bytes_per_direction,
        max_packets: inspection.packets_per_direction,
        ..ClassifyConfig::default()
    };
    let mut classifiers = crate::signatures::classifiers(
        &source,
        cfg.dataplane.ports.as_deref(),
        "dataplane.ports",
        classify_config,
    )
    .map_err(Failure::bad_input)?;
    classifiers.set_updates(portolan_dataplane::UpdatePolicy {
        early: cfg.dataplane.early_events,
        interim_interval_s: cfg.dataplane.interim_interval_s,
    });
    tracing::info!(
        protocols = classifiers.protocols(),
        patterns = classifiers.database().patterns,
        from = %source,
        "signatures loaded"
    );
    Ok(classifiers)
}

/// The control plane over the store: roles, the port registry as the device default baseline,
/// the `[inputs]` imports; and the handle the API and the reloads go through.
fn start_control(
    cfg: &ApplianceConfig,
    registry: &Arc<PortRegistry>,
) -> Result<(Ingest, Arc<ControlCore>, ControlHandle), Failure> {
    let roles = match &cfg.control.roles {
        Some(p) => RolesSource::File(p.clone()),
        None => RolesSource::Shipped,
    };
    let inputs = ControlInputs {
        store: StoreTarget::File {
            path: cfg.store.path.clone(),
            durability: cfg.store.durability,
        },
        roles: roles.clone(),
        config: cfg.control.control_config(),
        inventory: cfg.inputs.inventory.clone(),
        leases: cfg.inputs.leases.clone(),
        device_states: cfg.inputs.device_states.clone(),
        names: INPUT_NAMES,
        actor: STARTUP_ACTOR,
    };
    let (ControlPlane { ingest, operator }, warnings) =
        open_control(&inputs, registry).map_err(|e| Failure::new(e.bad_input, e.message))?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    let core = Arc::clone(operator.core());
    let locked = |e: portolan_control::ControlError| Failure::runtime(e.to_string());
    tracing::info!(
        store = %cfg.store.path.display(),
        devices = device_count(&core),
        findings = ingest.findings().len(),
        roles = core.lock().map_err(locked)?.roles().roles().len(),
        "control plane ready"
    );
    let factory_registry = Arc::clone(registry);
    let plan = ReloadPlan {
        roles,
        config: inputs.config,
        registry: Some(Arc::new(move || {
            Box::new(DataplaneBaseline(Arc::clone(&factory_registry))) as _
        })),
    };
    let control =
        ControlHandle::new(operator, plan).map_err(|e| Failure::runtime(e.to_string()))?;
    Ok((ingest, core, control))
}

/// The API token store (a warning when no live token exists).
fn open_tokens(cfg: &ApplianceConfig) -> Result<Arc<TokenStore>, Failure> {
    let tokens =
        Arc::new(TokenStore::open(&cfg.store.path).map_err(|e| Failure::runtime(e.to_string()))?);
    match tokens.list() {
        Ok(list) if list.iter().all(|t| t.revoked_at.is_some()) => tracing::warn!(
            "no live API token: create one with `portolan token create --config {} --role admin`",
            cfg.origin.display()
        ),
        Ok(_) => {}
        Err(e) => return Err(Failure::runtime(e.to_string())),
    }
    Ok(tokens)
}

/// The drain thread's consumer: the control plane, the alert files, the flow log and the
/// network outputs of `[outputs]`.
fn open_feed(
    cfg: &ApplianceConfig,
    ingest: Ingest,
    live_protocols: &LiveProtocols,
) -> Result<AlertFeed, Failure> {
    AlertFeed::new(
        ingest,
        cfg.hardware.worker_count(),
        Arc::clone(live_protocols),
        (cfg.outputs.eve.as_deref(), cfg.outputs.ocsf.as_deref()),
        OnFailure::LogAndContinue,
    )
    .and_then(|feed| feed.with_flow_log(cfg.outputs.flows.as_deref()))
    .map(AlertFeed::with_retention)
    .and_then(|feed| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let outputs = cfg
            .outputs
            .network_outputs(&host)
            .map_err(|(field, reason)| format!("{field}: {reason}"))?;
        feed.with_outputs(&outputs)
    })
    .map_err(Failure::runtime)
}

/// The admin API: its tokio runtime (threads pinned to the control cores, created before the
/// EAL), the server task, and the signal handler feeding `events`.
struct Api {
    runtime: tokio::runtime::Runtime,
    task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
    events: mpsc::Receiver<DaemonEvent>,
}

impl Api {
    fn start(
        cfg: &ApplianceConfig,
        state: ApiState,
        control: ControlHandle,
        reopen: Arc<std::sync::atomic::AtomicU64>,
    ) -> Result<Api, Failure> {
        let pin_cpus = cfg.hardware.control_cores();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(API_THREADS)
            .thread_name("portolan-api")
            .enable_all()
            .on_thread_start(move || pin_to(&pin_cpus))
            .build()
            .map_err(|e| Failure::runtime(format!("cannot start the API runtime: {e}")))?;
        let server = runtime
            .block_on(ApiServer::bind(&cfg.api, state))
            .map_err(|e| Failure::runtime(e.to_string()))?;
        // The operator must learn the port (`--listen :0`) whatever the log level: when the
        // API's own `admin API listening on` line is filtered out, say it on stderr.
        if !tracing::enabled!(target: "portolan_api::server", tracing::Level::INFO) {
            eprintln!("portolan: admin API listening on {}", server.url());
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = runtime.spawn(server.run(async move {
            let _ = stopped.await;
        }));
        let (events_tx, events) = mpsc::channel::<DaemonEvent>();
        runtime.spawn(handle_signals(control, events_tx, reopen));
        Ok(Api {
            runtime,
            task,
            stop,
            events,
        })
    }

    /// Closes the API gracefully and stops its runtime.
    fn stop(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.runtime.block_on(self.task) {
            tracing::error!(error = %e, "admin API task failed");
        }
        self.runtime.shutdown_timeout(Duration::from_secs(5));
    }
}

/// Holds the dataplane until the store has a device; `Some(signal)` when the daemon was told
/// to stop meanwhile.
fn wait_for_inventory(
    core: &ControlCore,
    events: &mpsc::Receiver<DaemonEvent>,
    readiness: &Readiness,
) -> Option<&'static str> {
    tracing::info!(
        "dataplane waits for the first inventory (POST /api/v1/inventory) before polling"
    );
    readiness.set_not_ready(
        "the dataplane waits for the first inventory (POST /api/v1/inventory) before polling",
    );
    while device_count(core) == 0 {
        match events.recv_timeout(Duration::from_millis(200)) {
            Ok(DaemonEvent::Shutdown(sig)) => return Some(sig),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Some("signal handler gone"),
        }
    }
    None
}

/// Starts the dataplane (the runtime's online mode) with the classifying observers; the
/// failure, when it does not start, is what the daemon exits with once it has shut down.
fn start_dataplane(
    hw: &portolan_hwconfig::HardwareDescription,
    link_types: &[portolan_packet::LinkType],
    observers: Vec<portolan_dataplane::ClassifyObserver>,
    readiness: &Readiness,
) -> (Option<LiveDataplane>, Option<Failure>) {
    match LiveDataplane::start(hw, link_types, observers) {
        Ok(dp) => {
            readiness.set_ready(true);
            let lcores: Vec<u32> = dp.places().iter().map(|p| p.lcore).collect();
            tracing::info!(workers = lcores.len(), lcores = ?lcores, control_cores = ?hw.control_cores(), "dataplane started");
            (Some(dp), None)
        }
        Err(e) => {
            tracing::error!(error = %e, "dataplane did not start");
            let failure = match e {
                OnlineError::Description(m) => Failure::bad_input(m),
                other => Failure::runtime(other.to_string()),
            };
            (None, Some(failure))
        }
    }
}

/// Publishes statistics every `interval` until SIGTERM/SIGINT (returned); notes when
/// file-backed workers reach the end of their captures.
fn serve(
    mut dataplane: Option<&mut LiveDataplane>,
    events: &mpsc::Receiver<DaemonEvent>,
    interval: Duration,
    publish: &dyn Fn(&LiveDataplane),
) -> &'static str {
    let mut finished = false;
    loop {
        if let Some(dp) = dataplane.as_deref_mut() {
            if !finished && dp.reap() {
                finished = true;
                for line in dp.summary() {
                    tracing::info!("{line}");
                }
                tracing::info!(
                    "dataplane finished (end of its captures); the admin API keeps serving until SIGTERM"
                );
            }
            publish(dp);
        }
        match events.recv_timeout(interval) {
            Ok(DaemonEvent::Shutdown(sig)) => return sig,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return "signal handler gone",
        }
    }
}

/// Stops the drain thread after its last pass and logs what the feed did.
fn finish_drain(drain: FlowEventDrain<AlertFeed>) {
    match drain.finish() {
        Ok((mut feed, drained)) => {
            // Failures were logged as they happened (the daemon's feed goes on after them).
            let _ = feed.finish();
            let t = feed.totals();
            tracing::info!(
                flow_events = drained.received,
                alerts = t.alerts,
                failed_batches = t.failed_batches,
                "flow hand-off drained"
            );
            for (kind, c) in feed.output_counts() {
                tracing::info!(
                    output = kind,
                    sent = c.sent,
                    dropped = c.dropped,
                    errors = c.errors,
                    queued = c.queued,
                    "alert output"
                );
            }
        }
        Err(e) => tracing::error!(error = %e, "flow event thread failed"),
    }
}

fn device_count(core: &ControlCore) -> usize {
    core.lock().map(|e| e.device_count()).unwrap_or(0)
}
