//! The daemon's part of the fleet (`[fleet]`): turns the store's outbox on, starts the publisher
//! thread, reports it among the outputs (`/api/v1/stats`, `/metrics`: output `fleet`, kind
//! `nats-jetstream`; `queued` is the outbox backlog, `dropped` what the full outbox refused,
//! `queue_limit` its bound), and gives it a moment at shutdown to send what the last flush
//! queued.
//!
//! With `shared_config` it also runs the watcher of the fleet's shared configuration (KV) and
//! waits for its current values before the dataplane starts.
//!
//! Owns: that wiring. Must not: publish (the `portolan-fleet` publisher does) or block the
//! drain thread.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portolan_api::stats::{OutputSource, OutputStats};
use portolan_control::engine::Operator;
use portolan_control::ControlCore;
use portolan_fleet::shared_config::ConfigWatcher;
use portolan_fleet::Publisher;

use crate::config::ApplianceConfig;
use crate::Failure;

/// How long shutdown waits for the publisher to send the rows queued last.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(3);

/// With `[fleet]`: the outbox enabled on the store and the publisher running.
pub(super) fn start(
    cfg: &ApplianceConfig,
    core: &ControlCore,
) -> Result<Option<Publisher>, Failure> {
    let Some(fleet) = &cfg.fleet else {
        return Ok(None);
    };
    core.lock()
        .map_err(|e| Failure::runtime(e.to_string()))?
        .enable_outbox(fleet.outbox_capacity);
    let cpus = cfg.hardware.control_cores();
    let publisher = Publisher::spawn(
        fleet,
        env!("CARGO_PKG_VERSION"),
        cfg.store.path.clone(),
        move || super::pin_to(&cpus),
    )
    .map_err(|e| Failure::runtime(format!("cannot start the fleet publisher: {e}")))?;
    tracing::info!(
        servers = %publisher.servers(),
        site = %fleet.site,
        appliance = %fleet.appliance,
        outbox_capacity = fleet.outbox_capacity,
        "fleet publisher started"
    );
    Ok(Some(publisher))
}

/// The outputs' counters plus the publisher's, when there is one.
pub(super) fn with_outputs(outputs: OutputSource, publisher: Option<&Publisher>) -> OutputSource {
    let Some(p) = publisher else {
        return outputs;
    };
    let counters = p.counters();
    let limit = p.capacity();
    let target = p.servers().to_string();
    Arc::new(move || {
        let mut all = outputs();
        all.push(OutputStats {
            name: "fleet".into(),
            kind: "nats-jetstream".into(),
            target: target.clone(),
            sent: counters.published.load(Ordering::Relaxed)
                + counters.duplicates.load(Ordering::Relaxed),
            dropped: counters.dropped.load(Ordering::Relaxed)
                + counters.malformed.load(Ordering::Relaxed),
            errors: counters.errors.load(Ordering::Relaxed),
            queued: counters.backlog.load(Ordering::Relaxed),
            queue_limit: limit,
            reopened: 0,
        });
        all
    })
}

/// Waits (a few seconds at most, and only while the cluster answers) until the publisher has
/// sent every row queued so far, then stops it; what is left stays in the outbox for the next
/// start. Stops the shared configuration's watcher first.
pub(super) fn stop(
    publisher: Option<Publisher>,
    watcher: Option<ConfigWatcher>,
    core: &ControlCore,
) {
    if let Some(w) = watcher {
        w.stop();
    }
    let Some(publisher) = publisher else {
        return;
    };
    let newest = core
        .lock()
        .ok()
        .and_then(|st| st.store().outbox_stats().ok())
        .map_or(0, |s| s.newest_seq);
    let counters = publisher.counters();
    let t = Instant::now();
    while counters.healthy.load(Ordering::Relaxed)
        && i64::try_from(counters.acked_seq.load(Ordering::Relaxed)).unwrap_or(i64::MAX) < newest
        && t.elapsed() < SHUTDOWN_DRAIN
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let backlog = counters.backlog.load(Ordering::Relaxed);
    publisher.stop();
    tracing::info!(
        published = counters.published.load(Ordering::Relaxed),
        duplicates = counters.duplicates.load(Ordering::Relaxed),
        errors = counters.errors.load(Ordering::Relaxed),
        backlog,
        "fleet publisher stopped"
    );
}

/// With `[fleet]` and `shared_config` (the default): the watcher of the fleet's shared
/// configuration, started and waited for (`config_catchup_ms` at most) so the buckets' current
/// values are in force before the dataplane judges anything.
pub(super) fn start_config(
    cfg: &ApplianceConfig,
    operator: &Operator,
) -> Result<Option<ConfigWatcher>, Failure> {
    let Some(fleet) = cfg.fleet.as_ref().filter(|f| f.shared_config) else {
        return Ok(None);
    };
    let cpus = cfg.hardware.control_cores();
    let mut watcher = ConfigWatcher::spawn(
        &fleet.servers,
        fleet.replicas,
        &fleet.appliance,
        operator.clone(),
        move || super::pin_to(&cpus),
    )
    .map_err(|e| {
        Failure::runtime(format!(
            "cannot start the shared configuration watcher: {e}"
        ))
    })?;
    let t = Instant::now();
    if watcher.wait_caught_up(Duration::from_millis(fleet.config_catchup_ms)) {
        tracing::info!(
            elapsed_ms = t.elapsed().as_millis() as u64,
            "shared configuration read; judging with it"
        );
    } else {
        tracing::warn!(
            waited_ms = fleet.config_catchup_ms,
            "shared configuration not read yet (cluster unreachable?): judging with what the store kept; changes apply when it answers"
        );
    }
    Ok(Some(watcher))
}
