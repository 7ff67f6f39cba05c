//! Ingest: the control plane's pipeline for what the dataplane hands over. Each flow goes through
//! attribute → judge → exception → score → store, one stage per function below; DNS answers feed
//! attribution.
//!
//! A flow may arrive in several events ([`FlowPhase`]): early (identified, still open), interim
//! updates, final. Its first event goes through every stage and is counted as one session; the
//! later ones find it by flow id (with its start and client port) and update that session in place
//! ([`Finding::update_session`]: duration, bytes, end), are scored again, and may raise the
//! flow's alert only if none of its events raised one yet (one alert per flow, normally at the
//! early event). Open sessions are remembered in memory, bounded ([`MAX_OPEN_SESSIONS`]).
//!
//! Owns: [`Ingest`] (the findings as they grow, the signature and app catalogues, what the store
//! has not taken yet), the alert policy (a finding raises an alert when its score first reaches
//! `scoring.alert_threshold`, and again each time its severity rises; sessions covered by an
//! exception never alert), the counters, and the retry of failed commits (a batch the store
//! refuses stays in the backlog module's `Backlog`, is committed with the next batch or
//! [`Ingest::retry_unsaved`], and its alerts are returned then).
//! Must not: change roles, baselines, exceptions or the inventory (operator acts do, through
//! [`super::Operator`]), parse formats beyond handing EVE records to [`crate::observation`], or build
//! SQL.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::Value;

use crate::alert::{
    Alert, AlertActivity, BaselineContext, DeviceContext, PersistenceContext, SignatureCatalogue,
};
use crate::app_catalogue::AppCatalogue;
use crate::attribution::{AppAttribution, DeviceAttribution};
use crate::device_state::{DeviceStateSnapshot, LockState};
use crate::findings::{
    Finding, FindingKey, LatestSession, Placement, SessionOrder, SessionProgress,
};
use crate::inventory::Device;
use crate::observation::{DnsAnswer, EveInput, FlowObservation, FlowPhase};
use crate::roles::{
    BaselineBasis, ExceptionQuery, ExceptionRule, Judgement, PairingQuery, RoleSet, DEVICE_DEFAULT,
};
use crate::scoring::{score, Score, ScoreContext};

use super::backlog::Backlog;
use super::core::{serial_key, ControlCore, CoreState, Inventory, Policy};
use super::{ControlConfig, ControlError, IngestStats};

/// Pending learning keys that trigger a flush to the store.
const LEARNING_FLUSH_KEYS: usize = 10_000;

/// Open sessions (flows whose early event was judged and whose final record has not come)
/// remembered at most; past it the half that was updated least recently is forgotten (their
/// later events then count as new sessions, or are ignored for interim updates).
pub const MAX_OPEN_SESSIONS: usize = 262_144;

/// One flow's identity across its events: the dataplane's flow id with its start and client
/// port (flow ids start over when the dataplane restarts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SessionId {
    flow_id: u64,
    start_us: i64,
    src_port: u16,
}

impl SessionId {
    fn of(obs: &FlowObservation) -> SessionId {
        SessionId {
            flow_id: obs.flow_id,
            start_us: obs.start_us,
            src_port: obs.src_port,
        }
    }
}

/// A flow whose first event was judged and whose final record has not come yet.
#[derive(Debug, Clone)]
struct OpenSession {
    /// What its first event was judged with, when it counted in a finding.
    context: Option<Box<SessionContext>>,
    /// What the finding has counted of it so far.
    counted: SessionProgress,
    /// One of its events raised an alert.
    alerted: bool,
}

/// The judgement of a session's first event, kept to score and alert its later events alike.
#[derive(Debug, Clone)]
struct SessionContext {
    /// Its finding's key text.
    key: String,
    udid: Option<String>,
    device_attr: Option<DeviceAttribution>,
    app_proto: String,
    transport: String,
    app: AppAttribution,
    state: DeviceStateSnapshot,
    judgement: Judgement,
    /// The first event (the evidence an alert raised by a later interim update shows, with
    /// that update's times and counters).
    first: FlowObservation,
}

/// What the stages made of a session's first event.
struct Evaluated {
    finding: Option<(Finding, Option<Alert>)>,
    context: Option<Box<SessionContext>>,
}

/// The ingest side of the control plane: judges flows and remembers DNS answers. One per core; the
/// daemon's drain thread (or a replay) owns it.
pub struct Ingest {
    core: Arc<ControlCore>,
    signatures: SignatureCatalogue,
    catalogue: AppCatalogue,
    findings: HashMap<String, Finding>,
    /// Flows judged by their early event whose final record has not come.
    sessions: HashMap<SessionId, OpenSession>,
    /// Judged but not committed yet (the store refused).
    backlog: Backlog,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("core", &self.core)
            .field("findings", &self.findings.len())
            .field("backlog", &self.backlog.findings.len())
            .finish_non_exhaustive()
    }
}

/// What attribution found for one flow: the sender device, the app and role, and the device state.
struct Attributed<'a> {
    app_proto: String,
    transport: String,
    device_attr: Option<DeviceAttribution>,
    device: Option<&'a Device>,
    app: AppAttribution,
    state: DeviceStateSnapshot,
}

impl Ingest {
    /// The ingest side over `core`, with the findings the store holds.
    pub(super) fn new(core: Arc<ControlCore>) -> Result<Ingest, ControlError> {
        let signatures = SignatureCatalogue::shipped().map_err(ControlError::Rejected)?;
        let catalogue = match &core.config().attribution.app_catalogue {
            Some(path) => AppCatalogue::load(path)?,
            None => AppCatalogue::shipped()?,
        };
        let mut findings = HashMap::new();
        for f in core.lock()?.store().findings()? {
            findings.insert(f.key.as_text(), f);
        }
        Ok(Ingest {
            core,
            signatures,
            catalogue,
            findings,
            sessions: HashMap::new(),
            backlog: Backlog::default(),
        })
    }

    /// The shared core (store, roles, inventory, counters).
    pub fn core(&self) -> &Arc<ControlCore> {
        &self.core
    }

    /// Every finding, highest score first.
    pub fn findings(&self) -> Vec<&Finding> {
        let mut all: Vec<&Finding> = self.findings.values().collect();
        all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        all
    }

    /// The device holding `ip` at `at_us`, if any (for tools and tests).
    pub fn device_at(&self, ip: IpAddr, at_us: i64) -> Result<Option<Device>, ControlError> {
        Ok(self
            .core
            .lock()?
            .device_at(ip, at_us, self.core.config())
            .cloned())
    }

    /// Forgets the findings the store's retention pass removed (by key).
    pub(super) fn forget_findings(&mut self, keys: &[String]) {
        for k in keys {
            self.findings.remove(k);
        }
    }

    /// Writes pending learning counts to the store.
    pub fn flush(&mut self) -> Result<(), ControlError> {
        self.core.lock()?.flush()
    }

    /// Remembers a DNS answer for attribution of later flows.
    pub fn ingest_dns(&mut self, answer: &DnsAnswer) -> Result<(), ControlError> {
        let mut st = self.core.lock()?;
        st.inventory
            .index
            .record_dns(answer, &self.core.config().attribution);
        st.stats.dns_answers += 1;
        Ok(())
    }

    /// Feeds one EVE record: `flow` records are judged, `dns` answers remembered, others ignored.
    pub fn ingest_eve(&mut self, record: &Value) -> Result<Vec<Alert>, ControlError> {
        match EveInput::from_eve(record)? {
            EveInput::Flow(obs) => self.ingest_flow(&obs),
            EveInput::Dns(answer) => {
                self.ingest_dns(&answer)?;
                Ok(Vec::new())
            }
            EveInput::Ignored => Ok(Vec::new()),
        }
    }

    /// Judges one flow. A violation updates its finding, which is committed to the store (with
    /// any alert it raised) before this returns.
    pub fn ingest_flow(&mut self, obs: &FlowObservation) -> Result<Vec<Alert>, ControlError> {
        self.ingest_flows(std::slice::from_ref(obs))
    }

    /// Judges a batch of flow events ([`FlowPhase`]: a flow's early event, interim updates and
    /// final record count as one session), committing all resulting findings and alerts in one
    /// transaction, as [`Ingest::ingest_flows`] does. Feed each flow's events in the order its
    /// worker sent them.
    pub fn ingest_events(
        &mut self,
        events: &[(FlowPhase, FlowObservation)],
    ) -> Result<Vec<Alert>, ControlError> {
        self.ingest_batch(events.iter().map(|(p, o)| (*p, o)))
    }

    /// Flows judged by their early event whose final record has not come yet.
    pub fn open_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Judges a batch of finished flows (final records), committing all resulting findings and
    /// alerts in one transaction (the shared state is locked for the batch).
    ///
    /// When the store refuses the commit, the batch's findings and alerts are kept (bounded by
    /// [`MAX_UNSAVED_ALERTS`](super::MAX_UNSAVED_ALERTS)), the core's [`store_health`](ControlCore::store_health) says so, and the
    /// error is returned; the next batch or [`Ingest::retry_unsaved`] commits them together with
    /// its own and returns the kept alerts first.
    pub fn ingest_flows(
        &mut self,
        observations: &[FlowObservation],
    ) -> Result<Vec<Alert>, ControlError> {
        self.ingest_batch(observations.iter().map(|o| (FlowPhase::Final, o)))
    }

    /// [`Ingest::ingest_events`] over any sequence of events.
    fn ingest_batch<'o>(
        &mut self,
        events: impl Iterator<Item = (FlowPhase, &'o FlowObservation)>,
    ) -> Result<Vec<Alert>, ControlError> {
        let core = Arc::clone(&self.core);
        let mut st = core.lock()?;
        let mut pending: HashMap<String, Finding> = HashMap::new();
        let mut alerts = Vec::new();
        let mut stats = st.stats;
        for (phase, obs) in events {
            let id = SessionId::of(obs);
            if let Some(mut open) = self.sessions.remove(&id) {
                stats.session_updates += 1;
                if let Some((finding, alert)) = self.update(&st, &mut open, obs, phase, &pending) {
                    pending.insert(finding.key.as_text(), finding);
                    alerts.extend(alert);
                }
                if phase != FlowPhase::Final {
                    self.sessions.insert(id, open);
                }
                continue;
            }
            if phase == FlowPhase::Interim {
                // Its early event was not judged (dropped, or forgotten): the final record
                // will count it.
                stats.unmatched_updates += 1;
                continue;
            }
            let evaluated = self.evaluate(&mut st, obs, &pending, &mut stats);
            let alerted = evaluated.finding.as_ref().is_some_and(|(_, a)| a.is_some());
            if let Some((finding, alert)) = evaluated.finding {
                pending.insert(finding.key.as_text(), finding);
                alerts.extend(alert);
            }
            if phase == FlowPhase::Early {
                self.remember(
                    id,
                    OpenSession {
                        context: evaluated.context,
                        counted: SessionProgress::of(obs),
                        alerted,
                    },
                    &mut stats,
                );
            }
        }
        stats.alerts += alerts.len() as u64;
        st.stats = stats;
        let dropped = self.backlog.add(pending.into_values().collect(), alerts);
        self.core.health().alerts_dropped(dropped);
        let committed = self.commit_backlog(&mut st)?;
        if st.counts.len() >= LEARNING_FLUSH_KEYS {
            self.flush_learning(&mut st);
        }
        Ok(committed)
    }

    /// Commits what an earlier failed commit left waiting; returns its alerts (oldest first), now
    /// with their ids. Nothing to do (`Ok` and no alerts) when nothing waits.
    pub fn retry_unsaved(&mut self) -> Result<Vec<Alert>, ControlError> {
        if self.backlog.is_empty() {
            return Ok(Vec::new());
        }
        let core = Arc::clone(&self.core);
        let mut st = core.lock()?;
        self.commit_backlog(&mut st)
    }

    /// Findings and alerts waiting for the store.
    pub fn unsaved(&self) -> (usize, usize) {
        (self.backlog.findings.len(), self.backlog.alerts.len())
    }

    /// One commit of everything waiting. The findings are this engine's current view either way
    /// (later sessions add to them); on failure everything is put back and the health updated.
    fn commit_backlog(&mut self, st: &mut CoreState) -> Result<Vec<Alert>, ControlError> {
        let (mut findings, mut alerts) = self.backlog.take();
        match st.store.save_findings(&mut findings, &mut alerts) {
            Ok(()) => {
                for f in findings {
                    self.findings.insert(f.key.as_text(), f);
                }
                self.core.health().committed();
                Ok(alerts)
            }
            Err(e) => {
                for f in &findings {
                    self.findings.insert(f.key.as_text(), f.clone());
                }
                self.backlog.restore(findings, alerts);
                self.core
                    .health()
                    .commit_failed(&e.to_string(), &self.backlog);
                Err(e.into())
            }
        }
    }

    /// Writes pending learning counts; a failure keeps them pending and is counted (the batch's
    /// findings and alerts are committed already and must still reach the outputs).
    fn flush_learning(&self, st: &mut CoreState) {
        if st.flush().is_err() {
            self.core.health().learning_flush_failed();
        }
    }

    /// Remembers an open session, forgetting the least recently updated half when the bound is
    /// reached.
    fn remember(&mut self, id: SessionId, open: OpenSession, stats: &mut IngestStats) {
        if self.sessions.len() >= MAX_OPEN_SESSIONS {
            let mut ends: Vec<i64> = self.sessions.values().map(|s| s.counted.end_us).collect();
            let mid = ends.len() / 2;
            let (_, cut, _) = ends.select_nth_unstable(mid);
            let cut = *cut;
            let before = self.sessions.len();
            self.sessions.retain(|_, s| s.counted.end_us > cut);
            stats.open_sessions_forgotten += (before - self.sessions.len()) as u64;
        }
        self.sessions.insert(id, open);
    }

    /// A later event of a session already judged: its finding (pending in this batch or known)
    /// with the session updated in place, scored again; the flow's alert if none of its events
    /// raised one and the score now calls for it. `None` when the session counted in no finding.
    fn update(
        &self,
        st: &CoreState,
        open: &mut OpenSession,
        obs: &FlowObservation,
        phase: FlowPhase,
        pending: &HashMap<String, Finding>,
    ) -> Option<(Finding, Option<Alert>)> {
        let ctx = open.context.as_deref()?;
        let mut finding = pending
            .get(&ctx.key)
            .or_else(|| self.findings.get(&ctx.key))
            .cloned()?;
        finding.update_session(&open.counted, obs);
        open.counted = SessionProgress::of(obs);
        let cfg = self.core.config();
        let device = ctx.udid.as_ref().and_then(|u| st.inventory.devices.get(u));
        let s = score_finding(cfg, &mut finding, device);
        if open.alerted || finding.excepted_by.is_some() {
            return Some((finding, None));
        }
        let a = Attributed {
            app_proto: ctx.app_proto.clone(),
            transport: ctx.transport.clone(),
            device_attr: ctx.device_attr.clone(),
            device,
            app: ctx.app.clone(),
            state: ctx.state.clone(),
        };
        let evidence = match phase {
            FlowPhase::Final => obs.clone(),
            FlowPhase::Early | FlowPhase::Interim => FlowObservation {
                end_us: obs.end_us,
                pkts_toserver: obs.pkts_toserver,
                pkts_toclient: obs.pkts_toclient,
                bytes_toserver: obs.bytes_toserver,
                bytes_toclient: obs.bytes_toclient,
                ..ctx.first.clone()
            },
        };
        let alert = self.alert(&mut finding, s, &a, &ctx.judgement, &evidence, cfg);
        open.alerted = alert.is_some();
        Some((finding, alert))
    }

    /// A session's first event through the stages; no finding when it raised none
    /// (unclassified, approved, or in a window that is over).
    fn evaluate(
        &self,
        st: &mut CoreState,
        obs: &FlowObservation,
        pending: &HashMap<String, Finding>,
        stats: &mut IngestStats,
    ) -> Evaluated {
        let nothing = Evaluated {
            finding: None,
            context: None,
        };
        stats.flows += 1;
        if !obs.is_classified() {
            stats.unclassified += 1;
            return nothing;
        }
        let cfg = self.core.config();
        let a = attribute(&st.inventory, &st.policy.roles, &self.catalogue, cfg, obs);
        if cfg.learning.enabled {
            st.counts.record(
                a.app.role.as_deref().unwrap_or(DEVICE_DEFAULT),
                &a.app_proto,
                &a.transport,
                obs.judged_port(),
                obs.start_us,
                cfg.learning.bucket_s,
            );
        }
        let judgement = judge(&st.policy, &a, obs);
        if judgement.approved {
            stats.approved += 1;
            return nothing;
        }
        stats.violations += 1;
        let exception = matching_exception(&st.policy.roles, &a, obs);
        let Some(mut finding) = self.record_session(pending, &a, &judgement, exception, obs, cfg)
        else {
            return nothing;
        };
        let context = Some(Box::new(SessionContext {
            key: finding.key.as_text(),
            udid: a.device.map(|d| d.udid.clone()),
            device_attr: a.device_attr.clone(),
            app_proto: a.app_proto.clone(),
            transport: a.transport.clone(),
            app: a.app.clone(),
            state: a.state.clone(),
            judgement: judgement.clone(),
            first: obs.clone(),
        }));
        let s = score_finding(cfg, &mut finding, a.device);
        if exception.is_some() || finding.excepted_by.is_some() {
            stats.excepted += u64::from(exception.is_some());
            return Evaluated {
                finding: Some((finding, None)),
                context,
            };
        }
        let alert = self.alert(&mut finding, s, &a, &judgement, obs, cfg);
        Evaluated {
            finding: Some((finding, alert)),
            context,
        }
    }

    /// Stage 4a: the flow's finding (pending in this batch, known, or new) with this session
    /// placed by its start time; when it is the latest session, its attribution, judgement,
    /// state and exception become what the finding is scored with. `None` when the session
    /// belongs to a window that is over.
    fn record_session(
        &self,
        pending: &HashMap<String, Finding>,
        a: &Attributed<'_>,
        judgement: &Judgement,
        exception: Option<&ExceptionRule>,
        obs: &FlowObservation,
        cfg: &ControlConfig,
    ) -> Option<Finding> {
        let key = finding_key(a, obs);
        let key_text = key.as_text();
        let mut finding = pending
            .get(&key_text)
            .or_else(|| self.findings.get(&key_text))
            .cloned()
            .unwrap_or_else(|| Finding::open(key, judgement.kind, obs));
        let placement = finding.record_session(
            obs,
            &a.state,
            cfg.scoring.interaction_window_s,
            cfg.scoring.window_s.saturating_mul(1_000_000),
        );
        match placement {
            Placement::Stale => return None,
            Placement::Earlier if finding.latest.is_some() => return Some(finding),
            Placement::Earlier | Placement::Latest { .. } => {}
        }
        finding.kind = judgement.kind;
        finding.udid = a.device.map(|d| d.udid.clone());
        finding.serial_number = a.device.and_then(|d| d.serial_number.clone());
        finding.bundle_id = a.app.bundle_id.clone();
        finding.role = a.app.role.clone();
        finding.transport = a.transport.clone();
        finding.latest = Some(LatestSession {
            order: SessionOrder::of(obs),
            kind: judgement.kind,
            basis: judgement.basis,
            explanation: judgement.explanation.clone(),
            app: a.app.clone(),
            state: a.state.clone(),
            device_confidence: a.device_attr.as_ref().map_or(1.0, |d| d.confidence),
            exception: exception.cloned(),
        });
        Some(finding)
    }

    /// Stage 5: the alert a scored finding raises, if its score first reached the threshold or its
    /// severity rose since its last alert.
    fn alert(
        &self,
        finding: &mut Finding,
        s: Score,
        a: &Attributed<'_>,
        judgement: &Judgement,
        obs: &FlowObservation,
        cfg: &ControlConfig,
    ) -> Option<Alert> {
        let raise = s.value >= cfg.scoring.alert_threshold
            && finding
                .alerted_severity
                .is_none_or(|prev| s.severity > prev);
        if !raise {
            return None;
        }
        let device_ctx = match (a.device, &a.device_attr) {
            (Some(d), Some(at)) => DeviceContext::from_device(d, at.method, at.confidence),
            _ => DeviceContext::unknown(),
        };
        let activity = if finding.alerts == 0 {
            AlertActivity::Create
        } else {
            AlertActivity::Update
        };
        finding.alerted_severity = Some(s.severity);
        finding.alerts += 1;
        let signature = self
            .signatures
            .select(judgement.kind, &device_ctx, &a.app)
            .clone();
        Some(Alert {
            id: 0,
            finding_id: finding.id,
            finding_key: finding.key.as_text(),
            ts_us: obs.end_us,
            activity,
            kind: judgement.kind,
            signature,
            severity: s.severity,
            score: s.value,
            confidence: finding.confidence,
            reasons: s.reasons,
            flow: obs.clone(),
            device: device_ctx,
            app: a.app.clone(),
            baseline: BaselineContext {
                role: judgement
                    .baseline_role
                    .clone()
                    .unwrap_or_else(|| DEVICE_DEFAULT.to_string()),
                basis: judgement.basis,
                approved_ports: judgement.approved_ports.clone(),
                explanation: judgement.explanation.clone(),
            },
            device_state: a.state.clone(),
            persistence: PersistenceContext::from_finding(finding),
        })
    }
}

/// Stage 1: the device holding the source address, its state, and the app and role of the flow.
fn attribute<'a>(
    inv: &'a Inventory,
    roles: &RoleSet,
    catalogue: &AppCatalogue,
    cfg: &ControlConfig,
    obs: &FlowObservation,
) -> Attributed<'a> {
    let at = obs.start_us;
    let device_attr = inv.index.device_at(obs.src_ip, at, &cfg.attribution);
    let device = device_attr.as_ref().and_then(|a| inv.devices.get(&a.udid));
    let mut keys: Vec<String> = Vec::new();
    if let Some(d) = device {
        keys.push(d.udid.clone());
        if let Some(s) = &d.serial_number {
            keys.push(serial_key(s));
        }
    }
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let general = inv.states.state_at(&key_refs, at, None);
    let foreground = match general.lock_state {
        Some(LockState::Locked) => None,
        _ => general.foreground_bundle_id.as_deref(),
    };
    let app = inv
        .index
        .attribute_app(roles, catalogue, obs, device, foreground, &cfg.attribution);
    let state = inv.states.state_at(&key_refs, at, app.bundle_id.as_deref());
    Attributed {
        app_proto: obs.app_proto.to_ascii_lowercase(),
        transport: obs.transport.to_ascii_uppercase(),
        device_attr,
        device,
        app,
        state,
    }
}

/// Stage 2: the pairing judged against the role's baseline (or the device default).
fn judge(policy: &Policy, a: &Attributed<'_>, obs: &FlowObservation) -> Judgement {
    policy.roles.judge(
        &PairingQuery {
            role: a.app.role.as_deref(),
            app_proto: &a.app_proto,
            transport: &a.transport,
            port: obs.judged_port(),
            starttls: obs.starttls,
            dataplane_mismatch: obs.port_mismatch,
        },
        policy.registry.as_deref(),
    )
}

/// Stage 3: the exception covering the violation, if any.
fn matching_exception<'r>(
    roles: &'r RoleSet,
    a: &Attributed<'_>,
    obs: &FlowObservation,
) -> Option<&'r ExceptionRule> {
    roles.matching_exception(&ExceptionQuery {
        udid: a.device.map(|d| d.udid.as_str()),
        serial_number: a.device.and_then(|d| d.serial_number.as_deref()),
        dest_ip: obs.dest_ip,
        server_name: a.app.server_name.as_deref(),
        port: obs.judged_port(),
        app_proto: &a.app_proto,
        at_us: obs.start_us,
    })
}

/// What makes the flow's sessions one finding: device, app (or role), protocol, destination, port.
fn finding_key(a: &Attributed<'_>, obs: &FlowObservation) -> FindingKey {
    FindingKey {
        device: a
            .device
            .map_or_else(|| format!("ip:{}", obs.src_ip), |d| d.udid.clone()),
        subject: match (&a.app.bundle_id, &a.app.role) {
            (Some(b), _) => b.clone(),
            (None, Some(r)) => format!("role:{r}"),
            (None, None) => "-".to_string(),
        },
        app_proto: a.app_proto.clone(),
        destination: a
            .app
            .server_name
            .clone()
            .unwrap_or_else(|| obs.dest_ip.to_string()),
        port: obs.judged_port(),
    }
}

/// Stage 4b: scores the finding with its latest session's context (whichever session arrived
/// last) and records score, severity, reasons, confidence and exception on it.
fn score_finding(cfg: &ControlConfig, finding: &mut Finding, device: Option<&Device>) -> Score {
    let Some(latest) = finding.latest.clone() else {
        // record_session sets it for every counted session.
        return Score {
            value: finding.score,
            severity: finding.severity,
            reasons: finding.reasons.clone(),
        };
    };
    let s = score(
        &cfg.scoring,
        &ScoreContext {
            finding,
            explanation: &latest.explanation,
            device,
            app: &latest.app,
            state: &latest.state,
            exception: latest.exception.as_ref(),
        },
    );
    finding.confidence = match latest.basis {
        BaselineBasis::Role => latest.device_confidence * latest.app.confidence,
        _ => latest.device_confidence,
    };
    finding.score = s.value;
    finding.severity = s.severity;
    finding.reasons = s.reasons.clone();
    finding.excepted_by = latest.exception.as_ref().map(|e| e.id.clone());
    s
}
