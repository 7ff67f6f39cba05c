//! The control plane's end of the hand-off, for `portolan replay` and `portolan run` alike: a
//! [`FlowEventConsumer`] on the drain thread (off the worker lcores) that turns each drained
//! batch of finished, classified flows into control-plane observations, judges them in one store
//! transaction, appends the alerts to the optional EVE/OCSF files and offers them to the network
//! outputs (syslog, Redis; each a bounded queue that drops and counts rather than waits). With a
//! flow log it also appends every finished flow as an EVE `flow` record.
//!
//! Owns: the per-worker, per-protocol counts of flows received (published live as dataplane
//! statistics), the run's alert counters, what happens when a batch fails ([`OnFailure`]: a
//! replay stops judging and reports the first failure; the daemon logs it and goes on: the
//! control plane keeps the refused batch's findings and alerts, and the feed retries the commit
//! with the next batch or, while no flows come, every [`STORE_RETRY_INTERVAL`]; alerts reach the
//! files and outputs once committed), and reopening its files when asked (SIGHUP:
//! the request is a generation number the signal handler raises; the files are reopened before
//! the next write or at the end of the next drain pass). Must not: judge or score (the control
//! plane does), or hold the engine lock longer than one batch.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portolan_api::{OutputSource, OutputStats};
use portolan_control::output::eve::to_eve;
use portolan_control::output::forward::{ForwardCounts, ForwardTarget, Forwarder};
use portolan_control::output::ocsf::to_ocsf;
use portolan_control::output::{JsonLinesWriter, OutputCounters};
use portolan_control::{FlowObservation, FlowPhase, Ingest};
use portolan_dataplane::{FlowEvent, FlowEventConsumer};

use crate::config::{AlertFormat, NetworkOutput};

/// Flows received per worker and protocol, shared with the statistics publisher.
pub type LiveProtocols = Arc<Mutex<Vec<BTreeMap<String, u64>>>>;

/// What the feed did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedTotals {
    /// Flow events received (final records).
    pub events: u64,
    /// Early events and interim updates of open flows received.
    pub updates: u64,
    /// Flow events (final records) the control plane judged.
    pub flows_judged: u64,
    /// Batches that failed in the control plane.
    pub failed_batches: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Alerts raised, per severity (`critical`, `high`, `medium`, `low`, ...).
    pub alerts_by_severity: BTreeMap<&'static str, u64>,
}

/// What the feed does when the control plane refuses a batch or an output file cannot be
/// written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Log it and go on with the next batch (the daemon: earlier findings are committed).
    LogAndContinue,
    /// Judge nothing more and report the first failure from [`AlertFeed::finish`] (a replay,
    /// which then exits 1).
    Stop,
}

/// The consumer on the drain thread.
pub struct AlertFeed {
    engine: Ingest,
    on_failure: OnFailure,
    /// The first failure, kept for [`OnFailure::Stop`].
    failure: Option<String>,
    /// Each event's phase and observation, in arrival order (a flow's events in the order its
    /// worker sent them).
    batch: Vec<(FlowPhase, FlowObservation)>,
    pending_protocols: Vec<BTreeMap<String, u64>>,
    live: LiveProtocols,
    eve: Option<JsonLinesWriter>,
    ocsf: Option<JsonLinesWriter>,
    /// The EVE flow log (every finished flow), when configured.
    flows: Option<JsonLinesWriter>,
    /// Network outputs (syslog, Redis): bounded queues, never waited on.
    forwarders: Vec<(Forwarder, AlertFormat)>,
    /// Raised by the signal handler to ask for the files to be reopened.
    reopen_requested: Arc<AtomicU64>,
    /// The request last acted on.
    reopen_done: u64,
    totals: FeedTotals,
    /// When a commit was last tried (a batch or a retry of what waits for the store).
    last_store_retry: Instant,
    /// When the next retention pass is due (the daemon, with `[control.retention]` enabled).
    retention_due: Option<Instant>,
}

/// `interval_s` (validated positive) as a duration.
fn retention_interval(interval_s: i64) -> Duration {
    Duration::from_secs(u64::try_from(interval_s).unwrap_or(3600))
}

/// How often the drain thread retries a commit the store refused while no flows come.
pub const STORE_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Where the statistics read one output's counters.
#[derive(Debug, Clone)]
pub struct OutputProbe {
    name: String,
    kind: &'static str,
    target: String,
    queue_limit: usize,
    counters: Arc<OutputCounters>,
}

/// The statistics' view on the outputs: their counters read at each request.
pub fn output_source(probes: Vec<OutputProbe>) -> OutputSource {
    Arc::new(move || {
        probes
            .iter()
            .map(|p| {
                let c = p.counters.counts();
                OutputStats {
                    name: p.name.clone(),
                    kind: p.kind.to_string(),
                    target: p.target.clone(),
                    sent: c.sent,
                    dropped: c.dropped,
                    errors: c.errors,
                    queued: c.queued,
                    queue_limit: p.queue_limit as u64,
                    reopened: c.reopened,
                }
            })
            .collect()
    })
}

impl std::fmt::Debug for AlertFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertFeed")
            .field("pending", &self.batch.len())
            .field("totals", &self.totals)
            .finish_non_exhaustive()
    }
}

impl AlertFeed {
    /// A feed into `engine` for `workers` workers, appending alerts to the `eve` and `ocsf` files
    /// (the daemon's outlive restarts and are rotated outside; a replay gives fresh files staged
    /// under temporary names).
    pub fn new(
        engine: Ingest,
        workers: usize,
        live: LiveProtocols,
        (eve, ocsf): (Option<&Path>, Option<&Path>),
        on_failure: OnFailure,
    ) -> Result<AlertFeed, String> {
        let open = |p: &Path, what: &str| {
            let fail = |e: std::io::Error| {
                format!("cannot open the {what} alert file {}: {e}", p.display())
            };
            JsonLinesWriter::append(p).map_err(fail)
        };
        if let Ok(mut l) = live.lock() {
            l.resize(workers, BTreeMap::new());
        }
        Ok(AlertFeed {
            engine,
            on_failure,
            failure: None,
            batch: Vec::new(),
            pending_protocols: vec![BTreeMap::new(); workers],
            live,
            eve: eve.map(|p| open(p, "EVE")).transpose()?,
            ocsf: ocsf.map(|p| open(p, "OCSF")).transpose()?,
            flows: None,
            forwarders: Vec::new(),
            reopen_requested: Arc::new(AtomicU64::new(0)),
            reopen_done: 0,
            totals: FeedTotals::default(),
            last_store_retry: Instant::now(),
            retention_due: None,
        })
    }

    /// Prunes the store by `[control.retention]` every `interval_s`, between batches, the first
    /// time one interval after the start (so what `[inputs]` imported at start-up is judged with
    /// first; the daemon, a replay keeps everything it judged).
    pub fn with_retention(mut self) -> AlertFeed {
        let r = &self.engine.core().config().retention;
        if r.enabled {
            self.retention_due = Some(Instant::now() + retention_interval(r.interval_s));
        }
        self
    }

    /// Runs a retention pass when one is due. A failure is logged and tried again at the next
    /// interval; nothing is lost by a pass that did not happen.
    fn prune_if_due(&mut self) {
        let Some(due) = self.retention_due else {
            return;
        };
        if Instant::now() < due || self.stopped() {
            return;
        }
        let interval = self.engine.core().config().retention.interval_s;
        self.retention_due = Some(Instant::now() + retention_interval(interval));
        match self
            .engine
            .enforce_retention(portolan_control::timestamp::now_us())
        {
            Ok(report) if report.total() > 0 => {
                tracing::info!(?report, "retention: removed what outlived its window")
            }
            Ok(_) => tracing::debug!("retention: nothing outlived its window"),
            Err(e) => {
                tracing::warn!(error = %e, "retention pass failed; tried again next interval")
            }
        }
    }

    /// Appends every finished flow as an EVE `flow` record to `path` (the flow log).
    pub fn with_flow_log(mut self, path: Option<&Path>) -> Result<AlertFeed, String> {
        if let Some(p) = path {
            self.flows = Some(
                JsonLinesWriter::append(p)
                    .map_err(|e| format!("cannot open the EVE flow log {}: {e}", p.display()))?,
            );
        }
        Ok(self)
    }

    /// The generation number that asks for the files to be reopened: raise it (`fetch_add`)
    /// from any thread.
    pub fn reopen_handle(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.reopen_requested)
    }

    /// Where each output's counters are read, for the statistics.
    pub fn output_probes(&self) -> Vec<OutputProbe> {
        let mut out = Vec::new();
        for (name, w) in [
            ("eve", &self.eve),
            ("ocsf", &self.ocsf),
            ("flows", &self.flows),
        ] {
            if let Some(w) = w {
                out.push(OutputProbe {
                    name: name.to_string(),
                    kind: "file",
                    target: w.path().display().to_string(),
                    queue_limit: 0,
                    counters: w.counters(),
                });
            }
        }
        let (mut syslog, mut redis) = (0, 0);
        for (f, _) in &self.forwarders {
            let (name, target) = match f.target() {
                ForwardTarget::Syslog { address, .. } => {
                    syslog += 1;
                    (format!("syslog[{}]", syslog - 1), address.clone())
                }
                ForwardTarget::Redis { address, .. } => {
                    redis += 1;
                    (format!("redis[{}]", redis - 1), address.clone())
                }
            };
            out.push(OutputProbe {
                name,
                kind: f.kind(),
                target,
                queue_limit: f.queue_limit(),
                counters: f.counters(),
            });
        }
        out
    }

    /// Reopens the files when a reopen was asked for since the last time.
    fn reopen_if_asked(&mut self) {
        let asked = self.reopen_requested.load(Ordering::Acquire);
        if asked == self.reopen_done {
            return;
        }
        self.reopen_done = asked;
        for w in [self.eve.as_mut(), self.ocsf.as_mut(), self.flows.as_mut()]
            .into_iter()
            .flatten()
        {
            match w.reopen() {
                Ok(()) => tracing::info!(file = %w.path().display(), "output file reopened"),
                Err(e) => tracing::error!(
                    file = %w.path().display(),
                    error = %e,
                    "cannot reopen output file; still writing to the file already open"
                ),
            }
        }
    }

    /// Starts the network outputs; each gets its own bounded queue and sender thread.
    pub fn with_outputs(mut self, outputs: &[NetworkOutput]) -> Result<AlertFeed, String> {
        for o in outputs {
            let f = Forwarder::start(o.target.clone(), o.queue)
                .map_err(|e| format!("output {}: {e}", o.target.kind()))?;
            tracing::info!(output = f.kind(), queue = o.queue, "alert output started");
            self.forwarders.push((f, o.format));
        }
        Ok(self)
    }

    /// Each network output's kind and counters.
    pub fn output_counts(&self) -> Vec<(&'static str, ForwardCounts)> {
        self.forwarders
            .iter()
            .map(|(f, _)| (f.kind(), f.counts()))
            .collect()
    }

    /// Counters so far.
    pub fn totals(&self) -> &FeedTotals {
        &self.totals
    }

    /// The control plane's ingest side (findings, counters) after the run.
    pub fn ingest(&self) -> &Ingest {
        &self.engine
    }

    /// Records a failure: logged; with [`OnFailure::Stop`] the first one is kept and nothing
    /// more is judged.
    fn failed(&mut self, message: String) {
        tracing::error!(error = %message, "alert feed");
        if self.on_failure == OnFailure::Stop && self.failure.is_none() {
            self.failure = Some(message);
        }
    }

    /// True once a failure stopped the feed.
    fn stopped(&self) -> bool {
        self.failure.is_some()
    }

    fn publish_protocols(&mut self) {
        let Ok(mut live) = self.live.lock() else {
            return;
        };
        for (w, pending) in self.pending_protocols.iter_mut().enumerate() {
            if let Some(target) = live.get_mut(w) {
                for (k, v) in std::mem::take(pending) {
                    *target.entry(k).or_default() += v;
                }
            }
        }
    }

    fn ingest_batch(&mut self) {
        if self.batch.is_empty() || self.stopped() {
            self.batch.clear();
            return;
        }
        // Start order, so recurrence gaps come out right; the sort is stable, so one flow's
        // events (same start and id) keep their order.
        self.batch
            .sort_by(|(_, a), (_, b)| a.start_us.cmp(&b.start_us).then(a.flow_id.cmp(&b.flow_id)));
        let result = self.engine.ingest_events(&self.batch);
        let n = self
            .batch
            .iter()
            .filter(|(p, _)| *p == FlowPhase::Final)
            .count();
        self.batch.clear();
        self.last_store_retry = Instant::now();
        let alerts = match result {
            Ok(alerts) => alerts,
            Err(e) => {
                self.totals.failed_batches += 1;
                let (findings, alerts) = self.engine.unsaved();
                self.failed(format!(
                    "control plane refused a batch of {n} flows: {e} ({findings} findings and \
                     {alerts} alerts kept in memory, retried)"
                ));
                return;
            }
        };
        self.totals.flows_judged += n as u64;
        self.emit(&alerts);
    }

    /// Commits what a refused batch left waiting for the store, at most once per
    /// [`STORE_RETRY_INTERVAL`] unless `force`d (the daemon; a replay stops at its first failure).
    fn retry_store(&mut self, force: bool) {
        let (findings, alerts) = self.engine.unsaved();
        if (findings == 0 && alerts == 0) || self.stopped() {
            return;
        }
        if !force && self.last_store_retry.elapsed() < STORE_RETRY_INTERVAL {
            return;
        }
        self.last_store_retry = Instant::now();
        match self.engine.retry_unsaved() {
            Ok(late) => {
                tracing::info!(
                    findings,
                    alerts = late.len(),
                    "the store took the findings and alerts that waited"
                );
                self.emit(&late);
            }
            Err(e) => tracing::debug!(error = %e, "the store still refuses commits"),
        }
    }

    /// Logs committed alerts, counts them and hands them to the files and network outputs.
    fn emit(&mut self, alerts: &[portolan_control::Alert]) {
        let product = self.engine.core().config().ocsf.clone();
        self.totals.alerts += alerts.len() as u64;
        for alert in alerts {
            *self
                .totals
                .alerts_by_severity
                .entry(alert.severity.as_str())
                .or_default() += 1;
            tracing::info!(
                alert_id = alert.id,
                severity = alert.severity.as_str(),
                score = alert.score,
                app_proto = %alert.flow.app_proto,
                dest_port = alert.flow.dest_port,
                device = alert.device.udid.as_deref().unwrap_or("-"),
                "alert raised"
            );
            let mut write_failures = Vec::new();
            if let Some(w) = self.eve.as_mut() {
                if let Err(e) = w.write(&to_eve(alert)) {
                    write_failures.push(format!("cannot write {}: {e}", w.path().display()));
                }
            }
            if let Some(w) = self.ocsf.as_mut() {
                if let Err(e) = w.write(&to_ocsf(alert, &product)) {
                    write_failures.push(format!("cannot write {}: {e}", w.path().display()));
                }
            }
            for f in write_failures {
                self.failed(f);
            }
            // Syslog severity: high/critical → 2 critical .. informational → 6.
            let severity = 1 + alert.severity.eve_severity().min(5);
            for (f, format) in &self.forwarders {
                let event = match format {
                    AlertFormat::Eve => to_eve(alert),
                    AlertFormat::Ocsf => to_ocsf(alert, &product),
                };
                f.send(&event, severity, alert.ts_us);
            }
        }
        // Alerts reach the files batch by batch; the findings behind them are already committed.
        self.flush_files();
    }

    fn flush_files(&mut self) {
        let mut failures = Vec::new();
        for w in [self.eve.as_mut(), self.ocsf.as_mut(), self.flows.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Err(e) = w.flush() {
                failures.push(format!("cannot write {}: {e}", w.path().display()));
            }
        }
        for f in failures {
            self.failed(f);
        }
    }

    /// Judges what is pending, tries once more to commit what waits for the store (logged with
    /// its count when the store still refuses), and flushes the files (at the end of a run or at
    /// shutdown). With [`OnFailure::Stop`], the first failure of the run.
    pub fn finish(&mut self) -> Result<(), String> {
        self.reopen_if_asked();
        self.ingest_batch();
        self.retry_store(true);
        let (findings, alerts) = self.engine.unsaved();
        if findings > 0 || alerts > 0 {
            tracing::error!(
                unsaved_findings = findings,
                unsaved_alerts = alerts,
                "stopping with findings the store never took: they are lost"
            );
        }
        self.publish_protocols();
        self.flush_files();
        match self.failure.take() {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }
}

impl FlowEventConsumer for AlertFeed {
    fn on_event(&mut self, event: FlowEvent) {
        self.reopen_if_asked();
        if event.phase != FlowPhase::Final {
            // An open flow: judged (early event) or updated in place; not a finished flow, so
            // neither counted per protocol nor written to the flow log.
            self.totals.updates += 1;
            self.batch.push((event.phase, event.observation()));
            return;
        }
        if !event.dns_answer_only {
            self.totals.events += 1;
            if let Some(m) = self.pending_protocols.get_mut(usize::from(event.worker)) {
                *m.entry(event.app_proto.as_str().to_string()).or_default() += 1;
            }
        }
        // A DNS answer is remembered at once: flows judged later (this batch included) that
        // start after it can be attributed by it.
        if let Some(answer) = event.dns_answer() {
            if let Err(e) = self.engine.ingest_dns(&answer) {
                self.failed(format!("control plane: DNS answer not remembered: {e}"));
            }
        }
        // An early DNS-answer event is not a finished flow: nothing to judge.
        if event.dns_answer_only {
            return;
        }
        if let Some(w) = self.flows.as_mut() {
            if let Err(e) = w.write(&event.to_eve_json()) {
                let message = format!("cannot write the EVE flow log {}: {e}", w.path().display());
                self.failed(message);
            }
        }
        self.batch.push((FlowPhase::Final, event.observation()));
    }

    fn on_batch_end(&mut self) {
        self.reopen_if_asked();
        self.ingest_batch();
        self.publish_protocols();
        self.prune_if_due();
    }

    fn on_idle(&mut self) {
        self.retry_store(false);
        self.prune_if_due();
    }
}
