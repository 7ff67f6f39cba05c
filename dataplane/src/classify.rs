//! The classifier on the worker: a [`PacketObserver`] that feeds each flow's payload-carrying
//! packets to `portolan-classify` while the flow still wants them, honours the role swaps the
//! classifier proves, counts flows per protocol, and hands every flow with a decided protocol
//! to the control plane as [`FlowEvent`]s: an early event as soon as it is identified (the
//! packet that settles its protocol and name, [`FlowClassification::is_settled`]), an interim
//! update at most once per [`UpdatePolicy::interim_interval_s`] while it lasts (on one of its
//! packets: times and counters, built without allocating), and the final record when it ends (a
//! UDP `dns` flow's event carries what its first response resolved, for DNS-answer
//! attribution; DNS flows get no early or interim events).
//!
//! Owns: the per-worker [`Classifier`] (Hyperscan scratch allocated once, before the lcore loop),
//! building each packet's [`ProbeContext`] from the flow's *current* roles, the per-worker
//! classification counters, and the app-layer part of the EVE flow records. Must not: allocate
//! or lock per packet (the classifier state lives in the flow entry; the early and final events
//! are built once per flow, an interim update allocates nothing), block on the hand-off queue, or decide anything from ports (ports only
//! feed the registry's `port_mismatch` verdict).

use crate::dpdk::lcore;
use crate::handoff::{FlowEvent, FlowEventSender, NameSource, TlsFingerprints};
use crate::observer::PacketObserver;
pub use crate::report::ClassificationReport;
use portolan_classify::{
    AppProto, AppRecord, Classifier, FlowClassification, HandoffMark, PortRegistry, ProbeContext,
    STARTTLS_INDICATOR,
};
use portolan_flow::eve::FlowRecord;
use portolan_flow::{FinishedFlow, Flow, RoleSource, Side};
use portolan_model::FlowPhase;
use portolan_packet::{tcp_flags, Packet};
use std::sync::Arc;

/// Slots in the per-protocol counters: every [`AppProto`] (`Unknown` included).
const PROTO_SLOTS: usize = AppProto::ALL.len() + 1;

fn proto_slot(p: AppProto) -> usize {
    // `AppProto` is a field-less enum whose `Unknown` is last: its discriminant is its slot.
    (p as usize).min(PROTO_SLOTS - 1)
}

fn slot_proto(i: usize) -> AppProto {
    AppProto::ALL.get(i).copied().unwrap_or(AppProto::Unknown)
}

/// Which events an open flow gets before its final record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdatePolicy {
    /// Hand a flow off as soon as it is identified (the early event), so the control plane
    /// judges it while it is open.
    pub early: bool,
    /// Seconds between a flow's interim updates (duration, counters) after its early event;
    /// 0: none.
    pub interim_interval_s: u32,
}

impl UpdatePolicy {
    /// Final records only (the hand-off before early events).
    pub const FINAL_ONLY: UpdatePolicy = UpdatePolicy {
        early: false,
        interim_interval_s: 0,
    };
}

impl Default for UpdatePolicy {
    /// Early events, and an interim update at most every 60 s.
    fn default() -> Self {
        UpdatePolicy {
            early: true,
            interim_interval_s: 60,
        }
    }
}

/// The classifying observer of one worker.
#[derive(Debug)]
pub struct ClassifyObserver {
    worker: u16,
    updates: UpdatePolicy,
    classifier: Classifier,
    ports: Arc<PortRegistry>,
    events: Option<FlowEventSender>,
    flows_by_proto: [u64; PROTO_SLOTS],
    port_mismatches: u64,
    bypassed_packets: u64,
    /// Calls and TSC cycles of the classifier: `[undecided, decided]`.
    classifier_calls: [u64; 2],
    classifier_cycles: [u64; 2],
}

impl ClassifyObserver {
    /// The observer of worker `worker`, with its own `classifier` (create it before the lcore
    /// loop: it allocates the Hyperscan scratch), the shared port registry, and the worker's
    /// end of its hand-off queue (`None`: no hand-off, counts only).
    pub fn new(
        worker: u16,
        classifier: Classifier,
        ports: Arc<PortRegistry>,
        events: Option<FlowEventSender>,
    ) -> ClassifyObserver {
        ClassifyObserver {
            worker,
            updates: UpdatePolicy::FINAL_ONLY,
            classifier,
            ports,
            events,
            flows_by_proto: [0; PROTO_SLOTS],
            port_mismatches: 0,
            bypassed_packets: 0,
            classifier_calls: [0; 2],
            classifier_cycles: [0; 2],
        }
    }

    /// The observer handing open flows off as `updates` says (early events, interim
    /// updates); [`ClassifyObserver::new`] sends final records only.
    pub fn with_updates(mut self, updates: UpdatePolicy) -> ClassifyObserver {
        self.updates = updates;
        self
    }

    /// The port registry used for `port_mismatch`.
    pub fn ports(&self) -> &PortRegistry {
        &self.ports
    }

    /// The counters so far.
    pub fn report(&self) -> ClassificationReport {
        let app_protos = self
            .flows_by_proto
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| (slot_proto(i).as_str(), n))
            .collect();
        let unknown = self.flows_by_proto[proto_slot(AppProto::Unknown)];
        let reasm = self.classifier.reassembly_stats();
        ClassificationReport {
            app_protos,
            decided_flows: self.flows_by_proto.iter().sum::<u64>() - unknown,
            port_mismatches: self.port_mismatches,
            flow_events: self.events.as_ref().map_or(0, FlowEventSender::sent),
            ring_drops: self.events.as_ref().map_or(0, FlowEventSender::dropped),
            dns_answer_events: self
                .events
                .as_ref()
                .map_or(0, FlowEventSender::dns_answers_sent),
            early_events: self.events.as_ref().map_or(0, FlowEventSender::early_sent),
            interim_events: self
                .events
                .as_ref()
                .map_or(0, FlowEventSender::interim_sent),
            update_drops: self
                .events
                .as_ref()
                .map_or(0, FlowEventSender::updates_dropped),
            scan_calls: self.classifier_calls[0],
            scan_cycles: self.classifier_cycles[0],
            enrich_calls: self.classifier_calls[1],
            enrich_cycles: self.classifier_cycles[1],
            bypassed_packets: self.bypassed_packets,
            reassembly_held: reasm.held_segments,
            reassembly_drops: reasm.reorder_drops,
            reassembly_retransmissions: reasm.retransmissions,
            reassembly_overlap_mismatches: reasm.overlap_mismatches,
            reassembly_gaps_skipped: reasm.gaps_skipped,
        }
    }

    /// Feeds one payload packet the flow still wants to the classifier, applies a proven role
    /// swap at once, then lets a DNS response be read.
    #[inline(never)]
    fn classify_payload(
        &mut self,
        flow: &mut Flow<FlowClassification>,
        mut sender: Side,
        packet: &Packet<'_>,
        ts_us: u64,
    ) {
        let ctx = ProbeContext {
            transport: flow.transport,
            sender,
            client_port: flow.client_port,
            server_port: flow.server_port,
            packet_index: 0,
            dst_multicast: packet.dst_ip.is_multicast(),
        };
        let decision = match packet.tcp {
            Some(tcp) => {
                flow.app
                    .observe_segment(&mut self.classifier, &ctx, tcp.seq, packet.payload)
            }
            None => flow.app.observe(&mut self.classifier, &ctx, packet.payload),
        };
        if let Some(decision) = decision {
            if decision.swap_roles {
                flow.swap_roles();
                sender = sender.other();
            }
        }
        // After the classifier, so a response that decides the flow is read as well.
        if flow
            .app
            .observe_dns_response(flow.transport, sender, packet.payload, ts_us)
        {
            self.hand_off_dns_answers(flow);
        }
    }

    /// A SYN or SYN-ACK: the direction's stream starts after it, and a flow whose start was
    /// seen takes its roles from the transport (a parser may not swap them).
    #[cold]
    fn on_syn(&mut self, flow: &mut Flow<FlowClassification>, sender: Side, seq: u32) {
        if matches!(flow.role_source, RoleSource::Syn | RoleSource::SynAck) {
            flow.app.fix_roles();
        }
        flow.app.observe_syn(sender, seq);
    }

    /// Sends the DNS answers just read as an early event, so flows that end before this DNS
    /// flow does can be attributed by them; when the queue is full they go with the flow's own
    /// event instead.
    #[cold]
    fn hand_off_dns_answers(&mut self, flow: &mut Flow<FlowClassification>) {
        if self.events.is_none() {
            return;
        }
        let mut event = self.event_of(flow, AppProto::Dns, false);
        event.dns_answer_only = true;
        if event.dns_answers.is_some()
            && self
                .events
                .as_mut()
                .is_some_and(|tx| tx.send_dns_answer(event))
        {
            flow.app.mark_dns_answers_handed_off();
        }
    }

    /// The per-packet check of an open flow's hand-off: the early event once the flow is
    /// identified, then an interim update when one is due. Two field reads on most packets.
    #[inline(always)]
    fn report_progress(&mut self, flow: &mut Flow<FlowClassification>, ts_us: u64) {
        match flow.app.handoff() {
            HandoffMark::Done => {}
            HandoffMark::Pending => {
                if flow.app.is_decided() {
                    self.send_early(flow);
                }
            }
            HandoffMark::Early { next_update_s } => {
                let due = flow
                    .start_us
                    .saturating_add(u64::from(next_update_s) * 1_000_000);
                if self.updates.interim_interval_s > 0 && ts_us >= due {
                    self.send_interim(flow, ts_us);
                }
            }
        }
    }

    /// Seconds from `flow`'s start to its next interim update, counted from `ts_us`.
    fn next_update_s(&self, flow: &Flow<FlowClassification>, ts_us: u64) -> u32 {
        let elapsed = ts_us.saturating_sub(flow.start_us) / 1_000_000;
        u32::try_from(elapsed)
            .unwrap_or(u32::MAX)
            .saturating_add(self.updates.interim_interval_s)
    }

    /// The flow is decided: once it is settled (protocol for good, name read or given up), its
    /// early event goes to the control plane. Unknown and DNS flows, and a flow whose early
    /// event finds the queue full (counted as an update drop), wait for their final record.
    #[cold]
    #[inline(never)]
    fn send_early(&mut self, flow: &mut Flow<FlowClassification>) {
        let app_proto = flow.app.app_proto();
        if matches!(app_proto, AppProto::Unknown | AppProto::Dns) {
            flow.app.set_handoff(HandoffMark::Done);
            return;
        }
        if !flow.app.is_settled(&self.classifier) {
            return;
        }
        let full = match self.events.as_mut() {
            None => {
                flow.app.set_handoff(HandoffMark::Done);
                return;
            }
            Some(tx) if tx.is_full() => {
                tx.count_update_dropped();
                true
            }
            Some(_) => false,
        };
        if full {
            flow.app.set_handoff(HandoffMark::Done);
            return;
        }
        let mismatch = self.mismatch(flow, app_proto);
        let mut event = self.event_of(flow, app_proto, mismatch);
        event.phase = FlowPhase::Early;
        let sent = self.events.as_mut().is_some_and(|tx| tx.send_update(event));
        let mark = if sent {
            HandoffMark::Early {
                next_update_s: self.next_update_s(flow, flow.end_us),
            }
        } else {
            HandoffMark::Done
        };
        flow.app.set_handoff(mark);
    }

    /// An interim update of an open flow whose early event went: its times and counters so
    /// far (no heap part: nothing allocated); the next one is due an interval later.
    #[cold]
    #[inline(never)]
    fn send_interim(&mut self, flow: &mut Flow<FlowClassification>, ts_us: u64) {
        let app_proto = flow.app.app_proto();
        let event = FlowEvent {
            flow_id: flow.id | (u64::from(self.worker) << 48),
            worker: self.worker,
            phase: FlowPhase::Interim,
            start_us: flow.start_us,
            end_us: flow.end_us,
            client_ip: flow.client_ip,
            client_port: flow.client_port,
            server_ip: flow.server_ip,
            server_port: flow.server_port,
            transport: flow.transport,
            vlan: flow.vlan,
            app_proto,
            port_mismatch: self.mismatch(flow, app_proto),
            starttls: false,
            pkts_toserver: flow.pkts_toserver,
            pkts_toclient: flow.pkts_toclient,
            bytes_toserver: flow.bytes_toserver,
            bytes_toclient: flow.bytes_toclient,
            server_name: None,
            tls_version: None,
            dns_answers: None,
            dns_answer_only: false,
            user_agent: None,
            tls_fingerprints: None,
            indicators: Box::default(),
            proxy: None,
        };
        if let Some(tx) = self.events.as_mut() {
            tx.send_update(event);
        }
        flow.app.set_handoff(HandoffMark::Early {
            next_update_s: self.next_update_s(flow, ts_us),
        });
    }

    /// The registry's verdict on `flow` as `app_proto` (behind an explicit proxy, on the
    /// tunnel target's port).
    fn mismatch(&self, f: &Flow<FlowClassification>, app_proto: AppProto) -> bool {
        self.ports
            .port_mismatch(app_proto, f.transport, f.app.judged_port(f.server_port))
    }

    /// The compact hand-off event (final form) of a flow whose protocol is `app_proto`.
    fn event_of(
        &self,
        f: &Flow<FlowClassification>,
        app_proto: AppProto,
        port_mismatch: bool,
    ) -> FlowEvent {
        let c = &f.app;
        let server_name = c
            .tls()
            .and_then(|t| t.sni.as_deref())
            .map(|n| (NameSource::TlsSni, n))
            .or_else(|| {
                c.quic()
                    .and_then(|q| q.sni.as_deref())
                    .map(|n| (NameSource::QuicSni, n))
            })
            .or_else(|| {
                c.http()
                    .and_then(|h| h.hostname.as_deref())
                    .map(|n| (NameSource::HttpHost, n))
            })
            .map(|(s, n)| (s, Box::from(n)));
        FlowEvent {
            flow_id: f.id | (u64::from(self.worker) << 48),
            worker: self.worker,
            phase: FlowPhase::Final,
            start_us: f.start_us,
            end_us: f.end_us,
            client_ip: f.client_ip,
            client_port: f.client_port,
            server_ip: f.server_ip,
            server_port: f.server_port,
            transport: f.transport,
            vlan: f.vlan,
            app_proto,
            port_mismatch,
            starttls: c.indicators().contains(&STARTTLS_INDICATOR),
            pkts_toserver: f.pkts_toserver,
            pkts_toclient: f.pkts_toclient,
            bytes_toserver: f.bytes_toserver,
            bytes_toclient: f.bytes_toclient,
            server_name,
            tls_version: c.tls().and_then(|t| t.version.as_deref()).map(Box::from),
            dns_answers: if c.dns_answers_handed_off() {
                None
            } else {
                c.dns_answers().map(|a| Box::new(*a))
            },
            dns_answer_only: false,
            user_agent: c
                .http()
                .and_then(|h| h.http_user_agent.as_deref())
                .map(Box::from),
            tls_fingerprints: c
                .tls()
                .filter(|t| t.ja4.is_some() || t.ja3.is_some())
                .map(|t| {
                    Box::new(TlsFingerprints {
                        ja4: t.ja4.as_deref().map(Box::from),
                        ja3: t.ja3.as_deref().map(Box::from),
                    })
                }),
            indicators: Box::from(c.indicators()),
            proxy: c.proxy().map(|p| Box::new(p.clone())),
        }
    }
}

impl PacketObserver for ClassifyObserver {
    type FlowState = FlowClassification;

    /// The per-packet check inlined into the worker's loop; the classifier itself runs out of
    /// line (`ClassifyObserver::classify_payload`) on the few packets of each flow it wants.
    #[inline(always)]
    fn on_packet(
        &mut self,
        flow: &mut Flow<FlowClassification>,
        direction: Side,
        packet: &Packet<'_>,
        ts_us: u64,
    ) {
        if let Some(tcp) = packet.tcp {
            if tcp.flags & tcp_flags::SYN != 0 {
                self.on_syn(flow, direction, tcp.seq);
            }
        }
        if !packet.payload.is_empty() {
            self.on_payload(flow, direction, packet, ts_us);
        }
        if self.updates.early {
            self.report_progress(flow, ts_us);
        }
    }

    /// Decided (a protocol or `unknown`), no parser wants either direction's bytes any more,
    /// and not DNS (whose answers are read from later packets). While the flow's early event
    /// waits for it to settle, nothing may be bypassed yet: the early event (and an alert raised
    /// on it) carries the counters the worker has seen, and a packet dropped in the driver before
    /// then would be missing from them (it is read back only at the flow's end).
    fn payload_wanted(&self, flow: &Flow<FlowClassification>, side: Side) -> Option<bool> {
        if matches!(flow.app.handoff(), HandoffMark::Pending) && self.updates.early {
            return None;
        }
        (flow.app.is_decided() && flow.app.app_proto() != AppProto::Dns)
            .then(|| flow.app.wants_payload_from(&self.classifier, side))
    }

    fn judged(&self, flow: &Flow<FlowClassification>) -> bool {
        // As for the driver: nothing leaves the worker before the early event went.
        !(matches!(flow.app.handoff(), HandoffMark::Pending) && self.updates.early)
            && flow.app.is_decided()
            && flow.app.app_proto() != AppProto::Dns
            && !flow.app.wants_payload_from(&self.classifier, Side::Client)
            && !flow.app.wants_payload_from(&self.classifier, Side::Server)
    }

    fn on_flow_end(&mut self, finished: &mut FinishedFlow<FlowClassification>) {
        self.end_flow(finished);
    }

    fn describe(&self, finished: &FinishedFlow<FlowClassification>, record: &mut FlowRecord) {
        let f = &finished.flow;
        let app = AppRecord::from_flow(&f.app, &self.ports, f.transport, f.server_port);
        record.app_proto = app.app_proto.as_str().to_string();
        let mut map = app.to_json_map();
        // `app_proto` is a field of the record itself; the flattened map must not repeat it.
        map.remove("app_proto");
        record.app = map;
    }

    fn classification(&self) -> Option<ClassificationReport> {
        Some(self.report())
    }
}

impl ClassifyObserver {
    /// A payload-carrying packet: to the classifier while its direction is wanted, else
    /// counted as bypassed (a DNS response is still read).
    #[inline(always)]
    fn on_payload(
        &mut self,
        flow: &mut Flow<FlowClassification>,
        direction: Side,
        packet: &Packet<'_>,
        ts_us: u64,
    ) {
        if flow.app.wants_payload_from(&self.classifier, direction) {
            // Timed (two TSC reads on the few packets the classifier sees) so the summary says
            // what classification costs: `scan_cycles` / `enrich_cycles`.
            let kind = usize::from(flow.app.is_decided());
            let t0 = lcore::rdtsc();
            self.classify_payload(flow, direction, packet, ts_us);
            let spent = lcore::rdtsc().wrapping_sub(t0);
            if let (Some(n), Some(c)) = (
                self.classifier_calls.get_mut(kind),
                self.classifier_cycles.get_mut(kind),
            ) {
                *n += 1;
                *c += spent;
            }
        } else {
            self.bypassed_packets += 1;
            if flow
                .app
                .observe_dns_response(flow.transport, direction, packet.payload, ts_us)
            {
                self.hand_off_dns_answers(flow);
            }
        }
    }

    /// A flow left the table: its reorder buffers go back, it is counted, and a decided one's
    /// final record goes to the control plane.
    fn end_flow(&mut self, finished: &mut FinishedFlow<FlowClassification>) {
        finished.flow.app.release(&mut self.classifier);
        let f = &finished.flow;
        let app_proto = f.app.app_proto();
        if let Some(n) = self.flows_by_proto.get_mut(proto_slot(app_proto)) {
            *n += 1;
        }
        if app_proto == AppProto::Unknown {
            return;
        }
        // Behind an explicit proxy the tunnel's content runs to the target's port.
        let mismatch = self.mismatch(f, app_proto);
        if mismatch {
            self.port_mismatches += 1;
        }
        if self.events.is_some() {
            let event = self.event_of(f, app_proto, mismatch);
            if let Some(tx) = self.events.as_mut() {
                tx.send(event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protocol_has_its_own_slot() {
        let mut seen = std::collections::HashSet::new();
        for &p in AppProto::ALL.iter().chain([AppProto::Unknown].iter()) {
            let s = proto_slot(p);
            assert!(s < PROTO_SLOTS);
            assert!(seen.insert(s), "{p} shares a slot");
            assert_eq!(slot_proto(s), p);
        }
    }
}
