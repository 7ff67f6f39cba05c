//! The control-plane end of `portolan replay`: finished, classified flows from the dataplane's
//! hand-off queues go into `portolan-control`, and the alerts it raises are written as EVE and
//! OCSF JSON lines.
//!
//! Owns: reading the control plane's inputs (inventory, leases, roles, device states, config,
//! store) before the EAL starts, so a bad file is one clear error naming it; the adapter that
//! makes the dataplane's port registry the control plane's device default baseline
//! ([`DataplaneBaseline`]); the [`FlowEventConsumer`] that runs on the drain thread (off the
//! worker lcores) and feeds each drained batch to the control plane in one store transaction
//! ([`AlertPipeline`]); and the run's alert summary ([`AlertSummary`]).
//! Must not: judge, attribute or score flows (the control plane does), touch packets, or run on a
//! worker lcore.
//!
//! The hand-off's events reach the control plane typed: [`FlowEvent::observation`] for a
//! finished flow, [`FlowEvent::dns_answer`] for what a DNS flow resolved (an early answer event
//! carries only that), so flows are attributed by DNS answers, TLS/QUIC SNI, HTTP Host and
//! device state.

use portolan_classify::AppProto;
use portolan_control::output::eve::to_eve;
use portolan_control::output::ocsf::to_ocsf;
use portolan_control::output::JsonLinesWriter;
use portolan_control::scoring::Severity;
use portolan_control::{
    ControlConfig, ControlError, ControlPlane, FlowObservation, IngestStats, RoleSet, Store,
};
use portolan_dataplane::{FlowEvent, FlowEventConsumer};
use portolan_packet::Transport;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Actor recorded in the audit log for imports made by a replay.
const IMPORT_ACTOR: &str = "portolan-replay";

/// Findings listed in the human summary.
const TOP_FINDINGS: usize = 10;

/// The dataplane's port registry as the control plane's device default baseline: a protocol on a
/// port its signature (or the operator's override) registers is standard.
#[derive(Debug, Clone)]
pub struct DataplaneBaseline(pub Arc<portolan_classify::PortRegistry>);

impl DataplaneBaseline {
    fn transport(name: &str) -> Option<Transport> {
        if name.eq_ignore_ascii_case("tcp") {
            Some(Transport::Tcp)
        } else if name.eq_ignore_ascii_case("udp") {
            Some(Transport::Udp)
        } else {
            None
        }
    }

    fn proto(name: &str) -> Option<AppProto> {
        AppProto::from_name(&name.to_ascii_lowercase()).filter(|p| *p != AppProto::Unknown)
    }
}

impl portolan_control::RegisteredPorts for DataplaneBaseline {
    fn is_standard(&self, app_proto: &str, transport: &str, port: u16) -> bool {
        match (Self::proto(app_proto), Self::transport(transport)) {
            (Some(p), Some(t)) => !self.0.port_mismatch(p, t, port),
            // No opinion about a protocol or transport the dataplane does not know.
            _ => true,
        }
    }

    fn standard_ports(&self, app_proto: &str, transport: &str) -> Vec<u16> {
        match (Self::proto(app_proto), Self::transport(transport)) {
            (Some(p), Some(t)) => self.0.ports(p, t).to_vec(),
            _ => Vec::new(),
        }
    }

    fn knows(&self, app_proto: &str) -> bool {
        Self::proto(app_proto).is_some_and(|p| {
            !self.0.ports(p, Transport::Tcp).is_empty()
                || !self.0.ports(p, Transport::Udp).is_empty()
        })
    }
}

/// The control plane's inputs and outputs, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct ControlInputs {
    /// MDM inventory files (Jamf, Graph, Apple MDM; JSON or plist).
    pub inventory: Vec<PathBuf>,
    /// Kea DHCP lease CSV.
    pub leases: Option<PathBuf>,
    /// Roles and baselines TOML (default: the shipped roles).
    pub roles: Option<PathBuf>,
    /// Device-state JSON lines.
    pub device_states: Option<PathBuf>,
    /// SQLite store (default: an in-memory store).
    pub db: Option<PathBuf>,
    /// Control plane tunables TOML.
    pub control_config: Option<PathBuf>,
    /// Alerts as EVE JSON lines.
    pub eve: Option<PathBuf>,
    /// Alerts as OCSF Detection Finding JSON lines.
    pub ocsf: Option<PathBuf>,
}

impl ControlInputs {
    /// True when any control option was given (the control plane then runs).
    pub fn any(&self) -> bool {
        !self.inventory.is_empty()
            || self.leases.is_some()
            || self.roles.is_some()
            || self.device_states.is_some()
            || self.db.is_some()
            || self.control_config.is_some()
            || self.eve.is_some()
            || self.ocsf.is_some()
    }
}

/// Why the pipeline could not start or did not finish cleanly.
#[derive(Debug)]
pub struct PipelineError {
    /// A user's file or option is at fault (exit 2), else a runtime failure (exit 1).
    pub bad_input: bool,
    /// What went wrong, naming the file, line or field.
    pub message: String,
}

impl PipelineError {
    fn bad_input(message: impl Into<String>) -> PipelineError {
        PipelineError {
            bad_input: true,
            message: message.into(),
        }
    }

    fn runtime(message: impl Into<String>) -> PipelineError {
        PipelineError {
            bad_input: false,
            message: message.into(),
        }
    }

    /// A control plane error while loading inputs: the user's files are at fault, except for
    /// store failures, which are runtime failures.
    fn loading(e: ControlError) -> PipelineError {
        match e {
            ControlError::Store(_) => PipelineError::runtime(e.to_string()),
            _ => PipelineError::bad_input(e.to_string()),
        }
    }
}

/// One output file of alert lines.
#[derive(Debug)]
struct AlertOutput {
    writer: JsonLinesWriter,
}

impl AlertOutput {
    /// Creates (truncates) `path`: the file holds this run's alerts.
    fn create(path: &Path, what: &str) -> Result<AlertOutput, PipelineError> {
        let fail = |e: std::io::Error| {
            PipelineError::bad_input(format!("cannot create {what} file {}: {e}", path.display()))
        };
        File::create(path).map_err(fail)?;
        let writer = JsonLinesWriter::append(path).map_err(fail)?;
        Ok(AlertOutput { writer })
    }

    fn error(&self, e: std::io::Error) -> String {
        format!("cannot write {}: {e}", self.writer.path().display())
    }
}

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

/// The control plane on the drain thread: takes drained flow events, judges each batch in one
/// store transaction, and writes the alerts.
pub struct AlertPipeline {
    control: ControlPlane,
    eve: Option<AlertOutput>,
    ocsf: Option<AlertOutput>,
    batch: Vec<FlowObservation>,
    summary: AlertSummary,
    error: Option<String>,
}

impl std::fmt::Debug for AlertPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertPipeline")
            .field("control", &self.control)
            .field("pending", &self.batch.len())
            .field("error", &self.error)
            .finish()
    }
}

impl AlertPipeline {
    /// Opens the store, loads roles and config, imports the inventory, leases and device states,
    /// and creates the alert files — all before the EAL starts. `ports` becomes the device
    /// default baseline. Returns the pipeline and the control plane's start-up warnings.
    pub fn prepare(
        inputs: &ControlInputs,
        ports: Arc<portolan_classify::PortRegistry>,
    ) -> Result<(AlertPipeline, Vec<String>), PipelineError> {
        let roles = match &inputs.roles {
            Some(p) => RoleSet::load(p),
            None => RoleSet::shipped_defaults(),
        }
        .map_err(|e| PipelineError::bad_input(e.to_string()))?;
        let config = match &inputs.control_config {
            Some(p) => {
                ControlConfig::load(p).map_err(|e| PipelineError::bad_input(e.to_string()))?
            }
            None => ControlConfig::default(),
        };
        // All or nothing: every input is first loaded into a throw-away in-memory store, so a bad
        // inventory, lease or device-state file is refused before `--db` is created or written.
        if inputs.db.is_some() {
            let scratch =
                Store::open_in_memory().map_err(|e| PipelineError::runtime(e.to_string()))?;
            let trial = ControlPlane::new(scratch, roles.clone(), config.clone())
                .map_err(PipelineError::loading)?;
            Self::import_inputs(&trial, inputs)?;
        }
        let store = match &inputs.db {
            Some(p) => {
                Store::open(p).map_err(|e| PipelineError::bad_input(format!("--db: {e}")))?
            }
            None => Store::open_in_memory().map_err(|e| PipelineError::runtime(e.to_string()))?,
        };
        let control = ControlPlane::new(store, roles, config).map_err(PipelineError::loading)?;
        control
            .operator
            .set_port_registry(Box::new(DataplaneBaseline(ports)));
        let mut warnings: Vec<String> = control
            .core()
            .lock()
            .map_err(PipelineError::loading)?
            .startup_warnings()
            .to_vec();
        Self::import_inputs(&control, inputs)?;
        let devices = control
            .core()
            .lock()
            .map_err(PipelineError::loading)?
            .device_count();
        if devices == 0 {
            warnings.push(
                "no devices in the inventory: every flow is judged as from an unmanaged device"
                    .to_string(),
            );
        }
        let eve = inputs
            .eve
            .as_deref()
            .map(|p| AlertOutput::create(p, "EVE alert"))
            .transpose()?;
        let ocsf = inputs
            .ocsf
            .as_deref()
            .map(|p| AlertOutput::create(p, "OCSF alert"))
            .transpose()?;
        let summary = AlertSummary {
            devices,
            ..AlertSummary::default()
        };
        Ok((
            AlertPipeline {
                control,
                eve,
                ocsf,
                batch: Vec::new(),
                summary,
                error: None,
            },
            warnings,
        ))
    }

    /// Imports the inventory, leases and device states named in `inputs` into `control`.
    fn import_inputs(control: &ControlPlane, inputs: &ControlInputs) -> Result<(), PipelineError> {
        if !inputs.inventory.is_empty() {
            control
                .operator
                .import_inventory(&inputs.inventory, IMPORT_ACTOR)
                .map_err(PipelineError::loading)?;
        }
        if let Some(p) = &inputs.leases {
            control
                .operator
                .import_leases(p, IMPORT_ACTOR)
                .map_err(PipelineError::loading)?;
        }
        if let Some(p) = &inputs.device_states {
            control
                .operator
                .import_device_states(p)
                .map_err(PipelineError::loading)?;
        }
        Ok(())
    }

    /// Judges the pending batch (in start order, so recurrence gaps come out right) and writes
    /// its alerts. After the first failure nothing more is judged; the failure is reported by
    /// [`AlertPipeline::finish`].
    fn ingest_batch(&mut self) {
        if self.batch.is_empty() || self.error.is_some() {
            self.batch.clear();
            return;
        }
        self.batch
            .sort_by(|a, b| a.start_us.cmp(&b.start_us).then(a.flow_id.cmp(&b.flow_id)));
        self.summary.flows_judged += self.batch.len() as u64;
        let alerts = match self.control.ingest.ingest_flows(&self.batch) {
            Ok(a) => a,
            Err(e) => {
                self.error = Some(format!("control plane: {e}"));
                self.batch.clear();
                return;
            }
        };
        self.batch.clear();
        let product = self.control.core().config().ocsf.clone();
        for alert in &alerts {
            self.summary.alerts += 1;
            *self
                .summary
                .alerts_by_severity
                .entry(alert.severity.as_str())
                .or_default() += 1;
            if let Some(out) = self.eve.as_mut() {
                if let Err(e) = out.writer.write(&to_eve(alert)) {
                    self.error = Some(out.error(e));
                    return;
                }
            }
            if let Some(out) = self.ocsf.as_mut() {
                if let Err(e) = out.writer.write(&to_ocsf(alert, &product)) {
                    self.error = Some(out.error(e));
                    return;
                }
            }
        }
        // Alerts reach the files batch by batch; the findings behind them are already committed.
        for out in [self.eve.as_mut(), self.ocsf.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Err(e) = out.writer.flush() {
                self.error = Some(out.error(e));
                return;
            }
        }
    }

    /// Judges what is still pending, writes the learning counts, flushes the files and returns
    /// the run's summary.
    pub fn finish(mut self) -> Result<AlertSummary, PipelineError> {
        self.ingest_batch();
        if let Some(e) = self.error.take() {
            return Err(PipelineError::runtime(e));
        }
        self.control
            .ingest
            .flush()
            .map_err(|e| PipelineError::runtime(format!("control plane: {e}")))?;
        let core = self
            .control
            .core()
            .lock()
            .map_err(|e| PipelineError::runtime(format!("control plane: {e}")))?;
        let mut summary = std::mem::take(&mut self.summary);
        summary.ingest = core.stats();
        let findings = self.control.ingest.findings();
        summary.findings = findings.len();
        summary.top_findings = findings
            .into_iter()
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
        Ok(summary)
    }
}

impl FlowEventConsumer for AlertPipeline {
    fn on_event(&mut self, event: FlowEvent) {
        // A DNS answer is remembered at once: flows judged later (this batch included) that
        // start after it can be attributed by it.
        if let Some(answer) = event.dns_answer() {
            if let Err(e) = self.control.ingest.ingest_dns(&answer) {
                self.error
                    .get_or_insert_with(|| format!("control plane: {e}"));
            }
        }
        // An early DNS-answer event is not a finished flow: nothing to judge.
        if event.dns_answer_only {
            return;
        }
        self.batch.push(event.observation());
    }

    fn on_batch_end(&mut self) {
        self.ingest_batch();
    }
}

/// What the drain thread feeds: the events kept for `--events`, and the control plane.
#[derive(Debug)]
pub struct RunConsumer {
    /// Every event, when `--events` asked for them.
    pub events: Option<Vec<FlowEvent>>,
    /// The control plane, when any control option was given.
    pub alerts: Option<AlertPipeline>,
}

impl FlowEventConsumer for RunConsumer {
    fn on_event(&mut self, event: FlowEvent) {
        // `--events` keeps finished flows; an early DNS-answer event only feeds the control plane.
        if event.dns_answer_only {
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
