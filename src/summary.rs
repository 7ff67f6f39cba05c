//! The control plane's part of `portolan replay`'s summary: alerts per severity, findings, the
//! control plane's counters and the best-scoring findings, from the run's [`AlertFeed`].
//!
//! Owns: [`AlertSummary`], [`ReplayConsumer`] (what replay's drain thread feeds: the events kept
//! for `--events`, and the feed) and the human form of the summary. Must not: judge (the control
//! plane does) or write alert files (the feed does).

use std::collections::BTreeMap;

use portolan_control::scoring::Severity;
use portolan_control::IngestStats;
use portolan_dataplane::{FlowEvent, FlowEventConsumer};
use serde::Serialize;

use crate::feed::AlertFeed;

/// Findings listed in the human summary.
const TOP_FINDINGS: usize = 10;

/// What the control plane made of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AlertSummary {
    /// Alerts raised in this run.
    pub alerts: u64,
    /// Alerts raised in this run, per severity (`critical`, `high`, `medium`, `low`, ...).
    pub alerts_by_severity: BTreeMap<&'static str, u64>,
    /// Findings in the store after the run (earlier runs on the same store included).
    pub findings: usize,
    /// Devices in the inventory.
    pub devices: usize,
    /// Flow events the control plane judged.
    pub flows_judged: u64,
    /// The control plane's counters.
    pub ingest: IngestStats,
    /// The highest-scoring findings that raised an alert, best first.
    pub top_findings: Vec<FindingLine>,
}

/// One finding as the summary lists it.
#[derive(Debug, Clone, Serialize)]
pub struct FindingLine {
    /// Score, 0..=100.
    pub score: f64,
    /// Severity name.
    pub severity: &'static str,
    /// Device name, UDID, or `ip:<address>` for a device not in the inventory.
    pub device: String,
    /// Whether the device is in the inventory and managed.
    pub managed_device: bool,
    /// Bundle ID, if attributed.
    pub bundle_id: Option<String>,
    /// Role, if attributed.
    pub role: Option<String>,
    /// Protocol.
    pub app_proto: String,
    /// Transport.
    pub transport: String,
    /// Server name or address.
    pub destination: String,
    /// Server port.
    pub port: u16,
    /// Sessions in the current window.
    pub sessions: u64,
    /// Mean gap between sessions, seconds.
    pub interval_seconds: Option<f64>,
    /// Why it scored what it scored.
    pub reasons: Vec<String>,
}

/// Judges what is still pending, writes the learning counts and returns the run's summary;
/// `devices` is the inventory's size. An error is the run's first failure.
pub fn finish(mut feed: AlertFeed, devices: usize) -> Result<AlertSummary, String> {
    feed.finish()?;
    let ingest = feed.ingest();
    let mut core = ingest
        .core()
        .lock()
        .map_err(|e| format!("control plane: {e}"))?;
    core.flush().map_err(|e| format!("control plane: {e}"))?;
    let totals = feed.totals();
    let findings = ingest.findings();
    let top_findings = findings
        .iter()
        .filter(|f| f.alerts > 0)
        .take(TOP_FINDINGS)
        .map(|f| {
            let device = f.udid.as_deref().and_then(|u| core.device(u));
            FindingLine {
                score: f.score,
                severity: f.severity.as_str(),
                device: match device {
                    Some(d) => match &d.name {
                        Some(n) => format!("{n} ({})", d.udid),
                        None => d.udid.clone(),
                    },
                    None => f.key.device.clone(),
                },
                managed_device: device.is_some_and(|d| d.managed),
                bundle_id: f.bundle_id.clone(),
                role: f.role.clone(),
                app_proto: f.key.app_proto.clone(),
                transport: f.transport.clone(),
                destination: f.key.destination.clone(),
                port: f.key.port,
                sessions: f.sessions,
                interval_seconds: f.interval_seconds(),
                reasons: f.reasons.clone(),
            }
        })
        .collect();
    Ok(AlertSummary {
        alerts: totals.alerts,
        alerts_by_severity: totals.alerts_by_severity.clone(),
        findings: findings.len(),
        devices,
        flows_judged: totals.flows_judged,
        ingest: core.stats(),
        top_findings,
    })
}

/// What the drain thread feeds: the events kept for `--events`, and the control plane.
#[derive(Debug)]
pub struct ReplayConsumer {
    /// Every event, when `--events` asked for them.
    pub events: Option<Vec<FlowEvent>>,
    /// The control plane, when any control option was given.
    pub alerts: Option<AlertFeed>,
}

impl FlowEventConsumer for ReplayConsumer {
    fn on_event(&mut self, event: FlowEvent) {
        // `--events` keeps finished flows; an early DNS-answer event, an early event or an
        // interim update of an open flow only feeds the control plane.
        if event.dns_answer_only || event.phase != portolan_control::FlowPhase::Final {
            if let Some(alerts) = self.alerts.as_mut() {
                alerts.on_event(event);
            }
            return;
        }
        match (&mut self.events, &mut self.alerts) {
            (Some(events), Some(alerts)) => {
                alerts.on_event(event.clone());
                events.push(event);
            }
            (Some(events), None) => events.push(event),
            (None, Some(alerts)) => alerts.on_event(event),
            (None, None) => {}
        }
    }

    fn on_batch_end(&mut self) {
        if let Some(a) = self.alerts.as_mut() {
            a.on_batch_end();
        }
    }
}

/// Prints the alert part of the human summary (stderr).
pub fn print_alert_summary(s: &AlertSummary) {
    let by_sev: Vec<String> = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Informational,
    ]
    .iter()
    .filter_map(|sev| {
        s.alerts_by_severity
            .get(sev.as_str())
            .map(|n| format!("{} {n}", sev.as_str()))
    })
    .collect();
    eprintln!(
        "alerts: {} ({}); {} findings, {} devices in the inventory; {} flows judged: {} approved, {} violations ({} excepted)",
        s.alerts,
        if by_sev.is_empty() {
            "none".to_string()
        } else {
            by_sev.join(", ")
        },
        s.findings,
        s.devices,
        s.flows_judged,
        s.ingest.approved,
        s.ingest.violations,
        s.ingest.excepted,
    );
    if s.top_findings.is_empty() {
        return;
    }
    eprintln!("top findings:");
    for f in &s.top_findings {
        let app = match (&f.bundle_id, &f.role) {
            (Some(b), Some(r)) => format!("{b} [{r}]"),
            (Some(b), None) => b.clone(),
            (None, Some(r)) => format!("[{r}]"),
            (None, None) => "(no app)".to_string(),
        };
        let every = f
            .interval_seconds
            .map_or(String::new(), |i| format!(", every {i:.0} s"));
        eprintln!(
            "  {:5.1} {:<8} {}{} | {} | {}/{} {}:{} | {} session{}{}",
            f.score,
            f.severity,
            f.device,
            if f.managed_device { "" } else { " (unmanaged)" },
            app,
            f.app_proto,
            f.transport,
            f.destination,
            f.port,
            f.sessions,
            if f.sessions == 1 { "" } else { "s" },
            every
        );
        if !f.reasons.is_empty() {
            eprintln!("        reasons: {}", f.reasons.join("; "));
        }
    }
}
