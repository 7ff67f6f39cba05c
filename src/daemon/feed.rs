//! The daemon's end of the hand-off: a [`FlowEventConsumer`] on the drain thread (pinned to the
//! control cores, never a worker lcore) that turns each drained batch of finished, classified
//! flows into control-plane observations, judges them in one store transaction under the shared
//! engine's lock, appends the alerts to the optional EVE/OCSF files and offers them to the network
//! outputs (syslog, Redis; each a bounded queue that drops and counts rather than waits).
//!
//! Owns: the per-worker, per-protocol counts of flows received (published live as dataplane
//! statistics) and the run's alert counters. Must not: judge or score (the control plane does),
//! hold the engine lock longer than one batch, or stop on a failed batch (it is logged; the
//! findings of earlier batches are committed).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use portolan_control::output::eve::to_eve;
use portolan_control::output::forward::{ForwardCounts, Forwarder};
use portolan_control::output::ocsf::to_ocsf;
use portolan_control::output::JsonLinesWriter;
use portolan_control::{ControlPlane, DnsAnswer, FlowObservation};
use portolan_dataplane::{FlowEvent, FlowEventConsumer};

use crate::config::{AlertFormat, NetworkOutput};

/// Flows received per worker and protocol, shared with the statistics publisher.
pub type LiveProtocols = Arc<Mutex<Vec<BTreeMap<String, u64>>>>;

/// What the feed did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedTotals {
    /// Flow events received.
    pub events: u64,
    /// Events the control plane could not read.
    pub unreadable: u64,
    /// Batches that failed in the control plane.
    pub failed_batches: u64,
    /// Alerts raised.
    pub alerts: u64,
}

/// The consumer on the drain thread.
pub struct EngineFeed {
    engine: Arc<Mutex<ControlPlane>>,
    batch: Vec<FlowObservation>,
    pending_protocols: Vec<BTreeMap<String, u64>>,
    live: LiveProtocols,
    eve: Option<JsonLinesWriter>,
    ocsf: Option<JsonLinesWriter>,
    /// Network outputs (syslog, Redis): bounded queues, never waited on.
    forwarders: Vec<(Forwarder, AlertFormat)>,
    totals: FeedTotals,
}

impl std::fmt::Debug for EngineFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineFeed")
            .field("pending", &self.batch.len())
            .field("totals", &self.totals)
            .finish_non_exhaustive()
    }
}

impl EngineFeed {
    /// A feed into `engine` for `workers` workers; alert files are opened for appending.
    pub fn new(
        engine: Arc<Mutex<ControlPlane>>,
        workers: usize,
        live: LiveProtocols,
        eve: Option<&Path>,
        ocsf: Option<&Path>,
    ) -> Result<EngineFeed, String> {
        let open = |p: &Path, what: &str| {
            JsonLinesWriter::append(p)
                .map_err(|e| format!("cannot open the {what} alert file {}: {e}", p.display()))
        };
        if let Ok(mut l) = live.lock() {
            l.resize(workers, BTreeMap::new());
        }
        Ok(EngineFeed {
            engine,
            batch: Vec::new(),
            pending_protocols: vec![BTreeMap::new(); workers],
            live,
            eve: eve.map(|p| open(p, "EVE")).transpose()?,
            ocsf: ocsf.map(|p| open(p, "OCSF")).transpose()?,
            forwarders: Vec::new(),
            totals: FeedTotals::default(),
        })
    }

    /// Starts the network outputs; each gets its own bounded queue and sender thread.
    pub fn with_outputs(mut self, outputs: &[NetworkOutput]) -> Result<EngineFeed, String> {
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
    pub fn totals(&self) -> FeedTotals {
        self.totals
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
        if self.batch.is_empty() {
            return;
        }
        // Start order, so recurrence gaps come out right.
        self.batch
            .sort_by(|a, b| a.start_us.cmp(&b.start_us).then(a.flow_id.cmp(&b.flow_id)));
        let result = match self.engine.lock() {
            Ok(mut engine) => {
                let product = engine.config().ocsf.clone();
                engine
                    .ingest_flows(&self.batch)
                    .map(|alerts| (alerts, product))
                    .map_err(|e| e.to_string())
            }
            Err(_) => Err("control-plane lock poisoned".to_string()),
        };
        let n = self.batch.len();
        self.batch.clear();
        let (alerts, product) = match result {
            Ok(r) => r,
            Err(e) => {
                self.totals.failed_batches += 1;
                tracing::error!(flows = n, error = %e, "control plane refused a batch of flows");
                return;
            }
        };
        self.totals.alerts += alerts.len() as u64;
        for alert in &alerts {
            tracing::info!(
                alert_id = alert.id,
                severity = alert.severity.as_str(),
                score = alert.score,
                app_proto = %alert.flow.app_proto,
                dest_port = alert.flow.dest_port,
                device = alert.device.udid.as_deref().unwrap_or("-"),
                "alert raised"
            );
            if let Some(w) = self.eve.as_mut() {
                if let Err(e) = w.write(&to_eve(alert)) {
                    tracing::error!(file = %w.path().display(), error = %e, "cannot write EVE alert");
                }
            }
            if let Some(w) = self.ocsf.as_mut() {
                if let Err(e) = w.write(&to_ocsf(alert, &product)) {
                    tracing::error!(file = %w.path().display(), error = %e, "cannot write OCSF alert");
                }
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
        self.flush_files();
    }

    fn flush_files(&mut self) {
        for w in [self.eve.as_mut(), self.ocsf.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Err(e) = w.flush() {
                tracing::error!(file = %w.path().display(), error = %e, "cannot flush alert file");
            }
        }
    }

    /// Judges what is pending and flushes the files (at shutdown).
    pub fn finish(&mut self) {
        self.ingest_batch();
        self.publish_protocols();
        self.flush_files();
    }
}

impl FlowEventConsumer for EngineFeed {
    fn on_event(&mut self, event: FlowEvent) {
        if !event.dns_answer_only {
            self.totals.events += 1;
            if let Some(m) = self.pending_protocols.get_mut(usize::from(event.worker)) {
                *m.entry(event.app_proto.as_str().to_string()).or_default() += 1;
            }
        }
        // A DNS answer is remembered at once: flows judged later (this batch included) that
        // start after it can be attributed by it.
        if let Some(record) = event.dns_eve_json() {
            match DnsAnswer::from_eve_dns(&record) {
                Ok(Some(answer)) => {
                    if let Ok(mut engine) = self.engine.lock() {
                        engine.ingest_dns(&answer);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    self.totals.unreadable += 1;
                    tracing::warn!(error = %e, "DNS answer not readable by the control plane");
                }
            }
        }
        // An early DNS-answer event is not a finished flow: nothing to judge.
        if event.dns_answer_only {
            return;
        }
        match FlowObservation::from_eve_flow(&event.to_eve_json()) {
            Ok(obs) => self.batch.push(obs),
            Err(e) => {
                self.totals.unreadable += 1;
                tracing::warn!(error = %e, "flow event not readable by the control plane");
            }
        }
    }

    fn on_batch_end(&mut self) {
        self.ingest_batch();
        self.publish_protocols();
    }
}
