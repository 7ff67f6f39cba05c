//! `portolan central --config FILE`: the fleet's central view. Consumes the appliances' stream
//! with a durable consumer into its own store (`portolan_fleet::consumer`; findings merged per
//! device across appliances, alerts and learning counts as sent, idempotent) and serves it through
//! the same admin API as an appliance (tokens from `portolan token create --config FILE`, roles,
//! problem+json, OpenAPI), with the appliances at `GET /api/v1/fleet/appliances` (last seen,
//! backlog, version), and the fleet's shared configuration at `/api/v1/fleet/config/...` (KV
//! buckets written with compare-and-swap; the central applies them to its own view as every
//! appliance does).
//!
//! Owns: the start-up order and the threads (a tokio runtime for the API and the consumer).
//! Signals: SIGTERM/SIGINT stop gracefully (a message being applied is finished or redelivered).
//! Must not: judge flows (appliances do) or log secrets.

pub mod config;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use portolan_api::shared_config::{BoxFuture, SharedConfigStore};
use portolan_api::{
    ApiServer, ApiState, ControlHandle, DataplaneStatsHandle, Readiness, ReloadPlan, RolesSource,
    TokenStore,
};
use portolan_control::shared_config::{ConfigBucket, SharedConfigError, SharedEntry, SharedValue};
use portolan_control::{ControlConfig, ControlPlane, RoleSet, Store};
use portolan_fleet::consumer::{self, ConsumerCounters};
use portolan_fleet::shared_config::{ConfigWatcher, SharedConfig};

use crate::config::Overrides;
use crate::Failure;
use config::CentralConfig;

/// Tokio worker threads (API and consumer).
const THREADS: usize = 2;

/// Options of `portolan central`.
#[derive(Debug, Args)]
pub struct CentralArgs {
    /// Central configuration (TOML with a `[central]` table).
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

/// Runs the central until SIGTERM/SIGINT.
pub fn run_central(args: CentralArgs) -> Result<(), Failure> {
    let overrides = Overrides {
        data_dir: args.data_dir,
        listen: args.listen,
    };
    let cfg = CentralConfig::load(&args.config, &overrides)
        .map_err(|e| Failure::bad_input(e.to_string()))?;
    crate::daemon::init_logging(&cfg.logging)?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    crate::daemon::create_private_dir(&cfg.data_dir)
        .map_err(|e| Failure::runtime(format!("data_dir {}: {e}", cfg.data_dir.display())))?;
    tracing::info!(config = %cfg.origin.display(), data_dir = %cfg.data_dir.display(), "portolan central starting");
    let result = run(&cfg);
    if let Err(f) = &result {
        tracing::error!(error = %f.message, "portolan central failed");
    }
    result
}

fn run(cfg: &CentralConfig) -> Result<(), Failure> {
    let runtime_err = |e: &dyn std::fmt::Display| Failure::runtime(e.to_string());
    let store = Store::open_with(&cfg.store.path, cfg.store.durability)
        .map_err(|e| Failure::new(e.is_unusable_file(), format!("store.path: {e}")))?;
    let roles = RoleSet::shipped_defaults().map_err(|e| runtime_err(&e))?;
    let ControlPlane { operator, .. } =
        ControlPlane::new(store, roles, ControlConfig::default()).map_err(|e| runtime_err(&e))?;
    let core = Arc::clone(operator.core());
    let plan = ReloadPlan {
        roles: RolesSource::Shipped,
        config: ControlConfig::default(),
        registry: None,
    };
    let control = ControlHandle::new(operator, plan).map_err(|e| runtime_err(&e))?;
    let tokens = Arc::new(TokenStore::open(&cfg.store.path).map_err(|e| runtime_err(&e))?);
    if tokens
        .list()
        .map_err(|e| runtime_err(&e))?
        .iter()
        .all(|t| t.revoked_at.is_some())
    {
        tracing::warn!(
            "no live API token: create one with `portolan token create --config {} --role admin`",
            cfg.origin.display()
        );
    }
    let readiness = Readiness::new();
    let operator = control.operator().clone();
    let mut state = ApiState::with_stats(
        control,
        tokens,
        DataplaneStatsHandle::new(),
        readiness.clone(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .thread_name("portolan-central")
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the runtime: {e}")))?;
    // The shared configuration: written through the API with compare-and-swap; the central
    // applies it to its own view too (its exceptions and roles lists show what appliances use).
    let shared = runtime
        .block_on(SharedConfig::connect(
            &cfg.central.servers,
            cfg.central.replicas,
            &format!("portolan central {} config", cfg.central.consumer),
        ))
        .map_err(|e| runtime_err(&e))?;
    state.shared_config = Some(Arc::new(KvConfig(shared)));
    let watcher = ConfigWatcher::spawn(
        &cfg.central.servers,
        cfg.central.replicas,
        &cfg.central.consumer,
        operator,
        || {},
    )
    .map_err(|e| runtime_err(&e))?;
    let server = runtime
        .block_on(ApiServer::bind(&cfg.api, state))
        .map_err(|e| runtime_err(&e))?;
    if !tracing::enabled!(target: "portolan_api::server", tracing::Level::INFO) {
        eprintln!("portolan: admin API listening on {}", server.url());
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut api_stop = stop_rx.clone();
    let api = runtime.spawn(server.run(async move {
        let _ = api_stop.wait_for(|s| *s).await;
    }));
    let counters = Arc::new(ConsumerCounters::default());
    let consumer = runtime.spawn(consumer::run(
        cfg.central.clone(),
        Arc::clone(&core),
        Arc::clone(&counters),
        stop_rx,
    ));
    readiness.set_ready(true);
    let signal = runtime.block_on(wait_for_signal());
    tracing::info!(signal, "shutting down");
    readiness.set_ready(false);
    let _ = stop_tx.send(true);
    runtime.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(10), consumer).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), api).await;
    });
    watcher.stop();
    runtime.shutdown_timeout(Duration::from_secs(5));
    use std::sync::atomic::Ordering::Relaxed;
    tracing::info!(
        applied = counters.applied.load(Relaxed),
        duplicates = counters.duplicates.load(Relaxed),
        malformed = counters.malformed.load(Relaxed),
        store_errors = counters.store_errors.load(Relaxed),
        "stopped"
    );
    Ok(())
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the central with SIGKILL");
        std::future::pending::<()>().await;
        return "none";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// The API's shared-configuration store over the KV buckets.
struct KvConfig(SharedConfig);

impl SharedConfigStore for KvConfig {
    fn list(
        &self,
        bucket: ConfigBucket,
    ) -> BoxFuture<'_, Result<Vec<SharedEntry>, SharedConfigError>> {
        Box::pin(self.0.list(bucket))
    }

    fn put<'a>(
        &'a self,
        bucket: ConfigBucket,
        key: &'a str,
        value: &'a SharedValue,
        expected: u64,
    ) -> BoxFuture<'a, Result<u64, SharedConfigError>> {
        Box::pin(self.0.put(bucket, key, value, expected))
    }

    fn delete<'a>(
        &'a self,
        bucket: ConfigBucket,
        key: &'a str,
        expected: u64,
    ) -> BoxFuture<'a, Result<(), SharedConfigError>> {
        Box::pin(self.0.delete(bucket, key, expected))
    }
}
