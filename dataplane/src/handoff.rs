//! Hand-off of classified flows from the worker lcores to the control plane.
//!
//! Owns: the compact [`FlowEvent`] a flow with a decided `app_proto` becomes (an early event
//! when it is identified, bounded interim updates while it lasts, the final record when it
//! ends: [`FlowEvent::phase`]), one
//! bounded lock-free queue per worker (crossbeam [`ArrayQueue`], its capacity allocated once at
//! start-up), the worker's end of it ([`FlowEventSender`]: never blocks — an event that does not
//! fit is counted as a ring drop), and the thread that drains every queue off the worker cores
//! ([`FlowEventDrain`]) and hands each event to a [`FlowEventConsumer`] (a callback, a channel,
//! or a `Vec`).
//! Must not: block, lock or make system calls on the worker side, or judge events (the control
//! plane scores mismatches and learns protocol/port pairs; this module only carries them).
//!
//! Why `ArrayQueue` and not `rte_ring`: the events are typed values moved inline (no mbuf, no
//! pointer to free on the other side, no EAL needed to test), and a two-thread micro-bench
//! (`cargo run --release -p portolan-dataplane --example handoff_bench`) moves them far faster
//! than flows end; see `docs/ARCHITECTURE.md`.

use crossbeam::queue::ArrayQueue;
use portolan_classify::{AppProto, DnsAnswers};
use portolan_model::observation::normalize_host;
use portolan_model::time::format_eve_unsigned;
use portolan_model::{indicator, DnsAnswer, EveHeader, FlowObservation, FlowPhase, ProxyTarget};
use portolan_packet::Transport;
use serde_json::{json, Map, Value};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Where a flow's server name came from (owned by `portolan-model`).
pub use portolan_model::NameSource;

/// One flow whose protocol was identified, as the control plane needs it to raise mismatch
/// alerts and learn protocol/port pairs: at most once when it is identified
/// ([`FlowPhase::Early`]), at most once per interval while it lasts ([`FlowPhase::Interim`]:
/// times and counters only, no heap part) and once when it ends ([`FlowPhase::Final`]). The
/// early and final events are built once per flow (the server name, User-Agent, TLS
/// fingerprints, indicator list and a DNS flow's boxed answers are their only heap parts); the
/// full record with every metadata field is the EVE flow log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowEvent {
    /// Flow id, unique over the workers (worker `w`'s ids carry `w << 48`, as the EVE records).
    pub flow_id: u64,
    /// Worker (RX queue) that saw the flow.
    pub worker: u16,
    /// Which of the flow's events this is: the early event (identified, still open), an
    /// interim update (still open; times and counters only) or the final record. A flow's
    /// events leave one worker's queue in that order.
    pub phase: FlowPhase,
    /// First packet, µs since the epoch (capture time).
    pub start_us: u64,
    /// Last packet so far (the flow's last packet in the final event), µs since the epoch.
    pub end_us: u64,
    /// Client address (after any role swap the classifier proved).
    pub client_ip: IpAddr,
    /// Client port.
    pub client_port: u16,
    /// Server address.
    pub server_ip: IpAddr,
    /// Server port: the port judged against the registry.
    pub server_port: u16,
    /// TCP or UDP.
    pub transport: Transport,
    /// Outermost VLAN id, if tagged.
    pub vlan: Option<u16>,
    /// The identified protocol (never `Unknown`: undecided flows are not handed off).
    pub app_proto: AppProto,
    /// `server_port` is not a registered port of `app_proto` (the port registry's verdict).
    pub port_mismatch: bool,
    /// The session was upgraded to TLS in band (STARTTLS and the like).
    pub starttls: bool,
    /// Packets client → server.
    pub pkts_toserver: u64,
    /// Packets server → client.
    pub pkts_toclient: u64,
    /// Frame bytes client → server.
    pub bytes_toserver: u64,
    /// Frame bytes server → client.
    pub bytes_toclient: u64,
    /// The name the client asked for (SNI or HTTP Host), if any, and where it came from.
    pub server_name: Option<(NameSource, Box<str>)>,
    /// The TLS version (negotiated, else the client's highest offer; `TLS 1.3`, `TLS 1.2`, ...)
    /// when a TLS handshake was read (also DTLS and STARTTLS-upgraded sessions).
    pub tls_version: Option<Box<str>>,
    /// For a UDP `dns` flow: the name and A/AAAA addresses its first response resolved (absent
    /// from the flow's end event when an early answer event already carried them).
    pub dns_answers: Option<Box<DnsAnswers>>,
    /// An early DNS-answer event: sent by the worker as soon as the response was read, so
    /// flows judged before the DNS flow ends can be attributed by it. It carries the DNS
    /// flow's endpoints and `dns_answers` only; it is not a finished flow (not judged, not
    /// counted among flow events), and the flow's own event follows when it ends.
    pub dns_answer_only: bool,
    /// An HTTP flow's `User-Agent` (iOS `CFNetwork` agents name the app's executable), for app
    /// attribution; built once per flow, like the server name.
    pub user_agent: Option<Box<str>>,
    /// The ClientHello's JA4 and JA3 (MD5) fingerprints, when a TLS handshake was read: evidence
    /// an alert shows (`tls.ja4`, `tls.ja3.hash`); built once per flow.
    pub tls_fingerprints: Option<Box<TlsFingerprints>>,
    /// Every evidence label the classifier collected (`tls.client_hello`, `starttls`,
    /// `roles.conflict`, `tcp.overlap_mismatch`, ...), shown with the alert; built once per flow.
    pub indicators: Box<[&'static str]>,
    /// The explicit proxy (HTTP `CONNECT`, SOCKS) the flow went through and the target it
    /// asked for; when established, `port_mismatch` was judged on the target's port. Built once
    /// per flow.
    pub proxy: Option<Box<ProxyTarget>>,
}

/// The client fingerprints of a flow's TLS handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFingerprints {
    /// JA4 of the ClientHello.
    pub ja4: Option<Box<str>>,
    /// JA3 hash (MD5 hex) of the ClientHello.
    pub ja3: Option<Box<str>>,
}

impl FlowEvent {
    /// The flow as the control plane takes it (the final form of the observation), built
    /// from the typed fields: no EVE text in between.
    pub fn observation(&self) -> FlowObservation {
        let mut sni = None;
        let mut quic_sni = None;
        let mut http_host = None;
        let mut tls = Map::new();
        let mut http = Map::new();
        if let Some((source, name)) = &self.server_name {
            let (_, key) = source.eve_field();
            let held = (!name.is_empty()).then(|| name.to_string());
            match source {
                NameSource::TlsSni => {
                    tls.insert(key.into(), json!(&**name));
                    sni = held;
                }
                NameSource::QuicSni => quic_sni = held,
                NameSource::HttpHost => {
                    http.insert(key.into(), json!(&**name));
                    http_host = held;
                }
            }
        }
        if let Some(ua) = &self.user_agent {
            http.insert("http_user_agent".into(), json!(&**ua));
        }
        if let Some(v) = &self.tls_version {
            tls.insert("version".into(), json!(&**v));
        }
        if let Some(fp) = &self.tls_fingerprints {
            if let Some(ja4) = &fp.ja4 {
                tls.insert("ja4".into(), json!(&**ja4));
            }
            if let Some(ja3) = &fp.ja3 {
                tls.insert("ja3".into(), json!({ "hash": &**ja3 }));
            }
        }
        let object = |m: Map<String, Value>| (!m.is_empty()).then_some(Value::Object(m));
        let start_us = micros(self.start_us);
        FlowObservation {
            flow_id: self.flow_id,
            community_id: Some(self.community_id()),
            start_us,
            end_us: micros(self.end_us).max(start_us),
            src_ip: self.client_ip,
            src_port: self.client_port,
            dest_ip: self.server_ip,
            dest_port: self.server_port,
            transport: self.transport.eve_name().to_string(),
            app_proto: self.app_proto.as_str().to_string(),
            indicators: self.indicator_labels().map(str::to_string).collect(),
            sni,
            http_host,
            quic_sni,
            tls: object(tls),
            http: object(http),
            pkts_toserver: self.pkts_toserver,
            pkts_toclient: self.pkts_toclient,
            bytes_toserver: self.bytes_toserver,
            bytes_toclient: self.bytes_toclient,
            port_mismatch: Some(self.port_mismatch),
            starttls: self.starttls,
            proxy: self.proxy.as_deref().cloned(),
        }
    }

    /// The classifier's evidence labels, with `starttls` when the session was upgraded (once):
    /// what both the observation and the EVE form carry as indicators.
    fn indicator_labels(&self) -> impl Iterator<Item = &'static str> + '_ {
        let starttls = (self.starttls && !self.indicators.contains(&indicator::STARTTLS))
            .then_some(indicator::STARTTLS);
        self.indicators.iter().copied().chain(starttls)
    }

    /// For a flow carrying [`FlowEvent::dns_answers`]: what its response resolved, for the
    /// client, stamped with the time the response was seen (the interim form an early
    /// DNS-answer event carries). Feed it before flows that start later. `None` without
    /// answers, or when they hold no address.
    pub fn dns_answer(&self) -> Option<DnsAnswer> {
        let answers = self.dns_answers.as_deref()?;
        let name = normalize_host(answers.name());
        let addresses: Vec<IpAddr> = answers.addresses().collect();
        if name.is_empty() || addresses.is_empty() {
            return None;
        }
        Some(DnsAnswer {
            ts_us: micros(answers.seen_us()),
            client_ip: self.client_ip,
            name,
            addresses,
            ttl_s: Some(answers.ttl_s().unwrap_or(0)),
        })
    }

    /// Community ID v1 (seed 0) of the flow's 5-tuple.
    fn community_id(&self) -> String {
        portolan_flow::community_id_v1(
            0,
            self.client_ip,
            self.server_ip,
            self.transport.ip_proto(),
            self.client_port,
            self.server_port,
        )
    }

    /// The event as a Suricata-style EVE `flow` record, for `portolan replay --events` and the
    /// daemon's flow log (edges; the control plane takes [`FlowEvent::observation`]): 5-tuple,
    /// times, counters, `app_proto`, `tls.sni` / `tls.version` / `quic.sni` / `http.hostname` /
    /// `http.http_user_agent`, `community_id`, and Portolan's own `portolan.port_mismatch` and
    /// `portolan.indicators` with `starttls` (and `portolan.proxy` behind an explicit proxy), in the shapes Suricata's EVE schema gives those
    /// fields.
    pub fn to_eve_json(&self) -> Value {
        let ts = format_eve_unsigned;
        let mut rec = EveHeader::new(
            "flow",
            micros(self.start_us),
            self.flow_id,
            (self.client_ip, self.client_port),
            (self.server_ip, self.server_port),
            self.transport.eve_name(),
            self.app_proto.as_str(),
        )
        .with_vlan(self.vlan)
        .into_object();
        rec.insert(
            "flow".into(),
            json!({
                "pkts_toserver": self.pkts_toserver,
                "pkts_toclient": self.pkts_toclient,
                "bytes_toserver": self.bytes_toserver,
                "bytes_toclient": self.bytes_toclient,
                "start": ts(self.start_us),
                "end": ts(self.end_us),
            }),
        );
        rec.insert("community_id".into(), json!(self.community_id()));
        if let Some((source, name)) = &self.server_name {
            let (object, key) = source.eve_field();
            rec.insert(object.into(), json!({ key: &**name }));
        }
        if let Some(ua) = &self.user_agent {
            if let Value::Object(http) = rec.entry("http").or_insert_with(|| json!({})) {
                http.insert("http_user_agent".into(), json!(&**ua));
            }
        }
        if let Some(v) = &self.tls_version {
            if let Value::Object(tls) = rec.entry("tls").or_insert_with(|| json!({})) {
                tls.insert("version".into(), json!(&**v));
            }
        }
        if let Some(fp) = &self.tls_fingerprints {
            if let Value::Object(tls) = rec.entry("tls").or_insert_with(|| json!({})) {
                if let Some(ja4) = &fp.ja4 {
                    tls.insert("ja4".into(), json!(&**ja4));
                }
                if let Some(ja3) = &fp.ja3 {
                    tls.insert("ja3".into(), json!({ "hash": &**ja3 }));
                }
            }
        }
        let mut own = Map::new();
        let indicators: Vec<&str> = self.indicator_labels().collect();
        if !indicators.is_empty() {
            own.insert("indicators".into(), json!(indicators));
        }
        own.insert("port_mismatch".into(), json!(self.port_mismatch));
        if let Some(p) = &self.proxy {
            own.insert("proxy".into(), json!(p));
        }
        rec.insert("portolan".into(), Value::Object(own));
        Value::Object(rec)
    }
}

/// A capture time (µs, unsigned as the dataplane counts) as the model's signed µs.
fn micros(us: u64) -> i64 {
    i64::try_from(us).unwrap_or(i64::MAX)
}

/// A worker's end of its hand-off queue. Owned by the worker; never blocks.
#[derive(Debug)]
pub struct FlowEventSender {
    queue: Arc<ArrayQueue<FlowEvent>>,
    sent: u64,
    dropped: u64,
    dns_answers_sent: u64,
    /// Early events and interim updates queued (`[early, interim]`).
    updates_sent: [u64; 2],
    /// Early events and interim updates that did not fit the queue.
    updates_dropped: u64,
    /// `dropped`, readable from other threads ([`FlowEventReceiver::ring_drops`]); written only
    /// when an event is dropped.
    shared_drops: Arc<AtomicU64>,
}

impl FlowEventSender {
    /// Offers `event` to the queue: `true` when it was queued, `false` when the queue was full
    /// (the event is dropped and counted in [`FlowEventSender::dropped`]).
    #[inline]
    pub fn send(&mut self, event: FlowEvent) -> bool {
        match self.queue.push(event) {
            Ok(()) => {
                self.sent += 1;
                true
            }
            Err(_) => {
                self.dropped += 1;
                self.shared_drops.store(self.dropped, Ordering::Relaxed);
                false
            }
        }
    }

    /// Offers an early event or an interim update ([`FlowEvent::phase`] not `Final`) to the
    /// queue; never blocks. Counted apart from the final events (`flow_events`, `ring_drops`,
    /// whose sum stays the number of decided flows): `true` when queued, `false` when the queue
    /// was full (counted in [`FlowEventSender::updates_dropped`]).
    #[inline]
    pub fn send_update(&mut self, event: FlowEvent) -> bool {
        let slot = usize::from(event.phase == FlowPhase::Interim);
        match self.queue.push(event) {
            Ok(()) => {
                if let Some(n) = self.updates_sent.get_mut(slot) {
                    *n += 1;
                }
                true
            }
            Err(_) => {
                self.updates_dropped += 1;
                false
            }
        }
    }

    /// True when the queue has no free slot now (the drain thread may free one at any time):
    /// lets the worker skip building an event that would be dropped.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.queue.is_full()
    }

    /// Early events queued so far.
    pub fn early_sent(&self) -> u64 {
        self.updates_sent[0]
    }

    /// Interim updates queued so far.
    pub fn interim_sent(&self) -> u64 {
        self.updates_sent[1]
    }

    /// Early events and interim updates that did not fit the queue (or were not built because
    /// it was full).
    pub fn updates_dropped(&self) -> u64 {
        self.updates_dropped
    }

    /// Counts an update the worker did not build because the queue was full
    /// ([`FlowEventSender::is_full`]) as dropped.
    #[inline]
    pub fn count_update_dropped(&mut self) {
        self.updates_dropped += 1;
    }

    /// Queues an early DNS-answer event ([`FlowEvent::dns_answer_only`]); never blocks. Not
    /// counted among flow events or `ring_drops`: when the queue is full it returns false and
    /// the answers go with the DNS flow's own event instead.
    pub fn send_dns_answer(&mut self, event: FlowEvent) -> bool {
        let sent = self.queue.push(event).is_ok();
        if sent {
            self.dns_answers_sent += 1;
        }
        sent
    }

    /// Early DNS-answer events queued so far.
    pub fn dns_answers_sent(&self) -> u64 {
        self.dns_answers_sent
    }

    /// Events queued so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Events dropped because the queue was full (`ring_drops`).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The queue's capacity.
    pub fn capacity(&self) -> usize {
        self.queue.capacity()
    }
}

/// The control plane's end: every worker's queue.
#[derive(Debug, Clone)]
pub struct FlowEventReceiver {
    queues: Vec<Arc<ArrayQueue<FlowEvent>>>,
    drops: Vec<Arc<AtomicU64>>,
}

impl FlowEventReceiver {
    /// Takes every event queued now, worker by worker, passing each to `consumer`; returns how
    /// many were taken.
    pub fn drain_into<C: FlowEventConsumer + ?Sized>(&self, consumer: &mut C) -> usize {
        let pass = self.drain_counting(consumer);
        pass.flow_events + pass.updates + pass.dns_answer_events
    }

    /// [`FlowEventReceiver::drain_into`], counting finished-flow events, early events and
    /// interim updates, and early DNS-answer events ([`FlowEvent::dns_answer_only`]) apart.
    pub fn drain_counting<C: FlowEventConsumer + ?Sized>(&self, consumer: &mut C) -> DrainPass {
        let mut pass = DrainPass::default();
        for q in &self.queues {
            while let Some(ev) = q.pop() {
                if ev.dns_answer_only {
                    pass.dns_answer_events += 1;
                } else if ev.phase != FlowPhase::Final {
                    pass.updates += 1;
                } else {
                    pass.flow_events += 1;
                }
                consumer.on_event(ev);
            }
        }
        pass
    }

    /// True when every queue is empty.
    pub fn is_empty(&self) -> bool {
        self.queues.iter().all(|q| q.is_empty())
    }

    /// Number of queues (workers).
    pub fn queues(&self) -> usize {
        self.queues.len()
    }

    /// Events each worker dropped so far because its queue was full, in worker order (live:
    /// readable while the workers run, e.g. from a clone kept for statistics).
    pub fn ring_drops(&self) -> Vec<u64> {
        self.drops
            .iter()
            .map(|d| d.load(Ordering::Relaxed))
            .collect()
    }
}

/// Why hand-off queues could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandoffError {
    /// A capacity of zero.
    #[error("the flow event queue capacity must be at least 1")]
    ZeroCapacity,
}

/// One queue of `capacity` events per worker (allocated now): the workers' senders, in worker
/// order, and the receiver for the drain thread.
pub fn flow_event_queues(
    workers: usize,
    capacity: usize,
) -> Result<(Vec<FlowEventSender>, FlowEventReceiver), HandoffError> {
    if capacity == 0 {
        return Err(HandoffError::ZeroCapacity);
    }
    let queues: Vec<_> = (0..workers)
        .map(|_| Arc::new(ArrayQueue::new(capacity)))
        .collect();
    let drops: Vec<_> = (0..workers).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let senders = queues
        .iter()
        .zip(drops.iter())
        .map(|(q, d)| FlowEventSender {
            queue: Arc::clone(q),
            sent: 0,
            dropped: 0,
            dns_answers_sent: 0,
            updates_sent: [0; 2],
            updates_dropped: 0,
            shared_drops: Arc::clone(d),
        })
        .collect();
    Ok((senders, FlowEventReceiver { queues, drops }))
}

/// What receives drained events: a callback, a channel, or a collecting `Vec`. Runs on the drain
/// thread, never on a worker; it may take its time (the queues absorb bursts, and what does not
/// fit is counted as dropped by the worker).
pub trait FlowEventConsumer {
    /// Takes one event.
    fn on_event(&mut self, event: FlowEvent);
    /// Called after each non-empty drain pass (a place to flush or notify once per batch).
    fn on_batch_end(&mut self) {}
    /// Called by the drain thread after a pass that found nothing, before it sleeps (a place to
    /// retry work that failed, e.g. a refused store commit, when no new events come).
    fn on_idle(&mut self) {}
}

impl<F: FnMut(FlowEvent)> FlowEventConsumer for F {
    fn on_event(&mut self, event: FlowEvent) {
        self(event)
    }
}

impl FlowEventConsumer for Vec<FlowEvent> {
    fn on_event(&mut self, event: FlowEvent) {
        self.push(event);
    }
}

/// Forwards events to a standard channel (a receiver that hung up is ignored: the events are
/// dropped on this side, never on the worker).
impl FlowEventConsumer for std::sync::mpsc::Sender<FlowEvent> {
    fn on_event(&mut self, event: FlowEvent) {
        let _ = self.send(event);
    }
}

/// How the drain thread runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainOptions {
    /// Sleep between passes that found every queue empty.
    pub idle_sleep: Duration,
    /// CPUs to pin the drain thread to (keep it off the worker cores); empty: leave the
    /// thread's affinity as inherited.
    pub cpus: Vec<u32>,
}

impl Default for DrainOptions {
    /// 1 ms idle sleep, no pinning.
    fn default() -> Self {
        DrainOptions {
            idle_sleep: Duration::from_millis(1),
            cpus: Vec::new(),
        }
    }
}

/// What one pass over the queues handed to the consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DrainPass {
    /// Finished-flow events.
    pub flow_events: usize,
    /// Early DNS-answer events ([`FlowEvent::dns_answer_only`]).
    pub dns_answer_events: usize,
    /// Early events and interim updates of open flows.
    pub updates: usize,
}

/// What the drain thread did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DrainStats {
    /// Finished-flow events handed to the consumer.
    pub received: u64,
    /// Early DNS-answer events handed to the consumer.
    pub dns_answers_received: u64,
    /// Early events and interim updates of open flows handed to the consumer.
    pub updates_received: u64,
    /// Non-empty drain passes.
    pub batches: u64,
    /// The CPUs the thread was pinned to, when pinning was asked for and worked.
    pub pinned_to: Vec<u32>,
    /// Why pinning failed, if it did.
    pub pin_error: Option<String>,
}

/// The thread that drains the hand-off queues. Spawn it before the DPDK EAL starts (threads
/// created afterwards inherit the main lcore's affinity), and pin it off the worker cores.
#[derive(Debug)]
pub struct FlowEventDrain<C: FlowEventConsumer + Send + 'static> {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(C, DrainStats)>,
}

/// The drain thread panicked (in the consumer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the flow event drain thread panicked: {0}")]
pub struct DrainPanicked(pub String);

impl<C: FlowEventConsumer + Send + 'static> FlowEventDrain<C> {
    /// Starts the drain thread over `receiver`, feeding `consumer`.
    pub fn spawn(
        receiver: FlowEventReceiver,
        mut consumer: C,
        options: DrainOptions,
    ) -> std::io::Result<FlowEventDrain<C>> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("portolan-events".into())
            .spawn(move || {
                let mut stats = DrainStats::default();
                if !options.cpus.is_empty() {
                    match portolan_hwconfig::cpus::pin_current_thread(&options.cpus) {
                        Ok(()) => stats.pinned_to = options.cpus.clone(),
                        Err(e) => stats.pin_error = Some(e),
                    }
                }
                loop {
                    // Read the flag before draining: events queued before `finish` raised it
                    // are all taken by this pass or the final one.
                    let stopping = stop_flag.load(Ordering::Acquire);
                    let pass = receiver.drain_counting(&mut consumer);
                    stats.dns_answers_received += pass.dns_answer_events as u64;
                    stats.updates_received += pass.updates as u64;
                    let n = pass.flow_events + pass.updates + pass.dns_answer_events;
                    if n > 0 {
                        stats.received += pass.flow_events as u64;
                        stats.batches += 1;
                        consumer.on_batch_end();
                    } else if stopping {
                        break;
                    } else {
                        consumer.on_idle();
                        std::thread::sleep(options.idle_sleep);
                    }
                }
                (consumer, stats)
            })?;
        Ok(FlowEventDrain { stop, handle })
    }

    /// Stops the thread after a last pass over every queue (call it once the workers are done)
    /// and returns the consumer with the thread's counters.
    pub fn finish(self) -> Result<(C, DrainStats), DrainPanicked> {
        self.stop.store(true, Ordering::Release);
        self.handle.join().map_err(|p| {
            DrainPanicked(
                p.downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".into()),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn event(i: u64) -> FlowEvent {
        FlowEvent {
            flow_id: i,
            worker: 0,
            phase: FlowPhase::Final,
            start_us: 1_700_000_000_000_000 + i,
            end_us: 1_700_000_001_000_000 + i,
            client_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            client_port: 40000,
            server_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            server_port: 8443,
            transport: Transport::Tcp,
            vlan: None,
            app_proto: AppProto::Tls,
            port_mismatch: true,
            starttls: false,
            pkts_toserver: 3,
            pkts_toclient: 2,
            bytes_toserver: 300,
            bytes_toclient: 200,
            server_name: Some((NameSource::TlsSni, "example.com".into())),
            tls_version: Some("TLS 1.3".into()),
            dns_answers: None,
            dns_answer_only: false,
            user_agent: None,
            tls_fingerprints: None,
            indicators: Box::new([]),
            proxy: None,
        }
    }

    #[test]
    fn dns_answers_become_a_typed_dns_answer() {
        assert!(event(1).dns_answer().is_none());
        let resolved: IpAddr = "203.0.113.9".parse().unwrap();
        let wire = portolan_testkit::dns_response(5, "Mail.Example.com", None, &[resolved]);
        let answers = portolan_classify::parse_response_answers(&wire)
            .unwrap()
            .seen_at(1_700_000_000_500_000);
        let mut ev = event(2);
        ev.app_proto = AppProto::Dns;
        ev.transport = Transport::Udp;
        ev.server_port = 53;
        ev.server_name = None;
        ev.dns_answers = Some(Box::new(answers));
        let a = ev.dns_answer().unwrap();
        assert_eq!(a.ts_us, 1_700_000_000_500_000);
        assert_eq!(a.client_ip, ev.client_ip);
        assert_eq!(a.name, "mail.example.com");
        assert_eq!(a.addresses, vec![resolved]);
        assert_eq!(a.ttl_s, Some(300));
    }

    #[test]
    fn observation_is_what_the_eve_form_reads_back() {
        // The typed hand-off gives the control plane exactly what the EVE round trip gave.
        for ev in [
            event(3),
            FlowEvent {
                starttls: true,
                server_name: Some((NameSource::HttpHost, "Api.Example.com:8080".into())),
                user_agent: Some("Mail/3 CFNetwork".into()),
                tls_version: None,
                vlan: Some(7),
                ..event(4)
            },
            FlowEvent {
                server_name: Some((NameSource::QuicSni, "q.example.net".into())),
                tls_version: None,
                transport: Transport::Udp,
                app_proto: AppProto::Quic,
                port_mismatch: false,
                ..event(5)
            },
            FlowEvent {
                server_name: None,
                tls_version: None,
                ..event(6)
            },
            FlowEvent {
                server_port: 3128,
                proxy: Some(Box::new(ProxyTarget {
                    kind: portolan_model::ProxyKind::HttpConnect,
                    host: "c2.example.net".into(),
                    port: 50443,
                    established: true,
                })),
                ..event(7)
            },
        ] {
            let back = FlowObservation::from_eve_flow(&ev.to_eve_json()).unwrap();
            assert_eq!(ev.observation(), back);
        }
    }

    #[test]
    fn zero_capacity_is_refused() {
        assert_eq!(
            flow_event_queues(1, 0).err(),
            Some(HandoffError::ZeroCapacity)
        );
    }

    #[test]
    fn full_queue_counts_drops_and_never_blocks() {
        let (mut senders, receiver) = flow_event_queues(2, 2).expect("queues");
        let s = &mut senders[0];
        assert!(s.send(event(1)));
        assert!(s.send(event(2)));
        assert!(!s.send(event(3)), "third event does not fit");
        assert_eq!((s.sent(), s.dropped()), (2, 1));
        assert_eq!(
            receiver.ring_drops(),
            vec![1, 0],
            "drops are visible to other threads"
        );
        let mut got = Vec::new();
        assert_eq!(receiver.drain_into(&mut got), 2);
        assert_eq!(
            got.iter().map(|e| e.flow_id).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(receiver.is_empty());
    }

    #[test]
    fn slow_consumer_on_capacity_one_loses_nothing_silently() {
        let (mut senders, receiver) = flow_event_queues(1, 1).expect("queues");
        let slow = |ev: FlowEvent| {
            std::thread::sleep(Duration::from_micros(200));
            assert_eq!(ev.app_proto, AppProto::Tls);
        };
        let drain = FlowEventDrain::spawn(
            receiver,
            slow,
            DrainOptions {
                idle_sleep: Duration::from_micros(50),
                cpus: Vec::new(),
            },
        )
        .expect("spawn");
        let s = &mut senders[0];
        let total = 2_000u64;
        for i in 0..total {
            s.send(event(i));
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let (_, stats) = drain.finish().expect("drain");
        assert!(s.dropped() > 0, "a capacity-1 queue must overflow");
        assert!(stats.received > 0, "some events must get through");
        assert_eq!(stats.received, s.sent());
        assert_eq!(stats.received + s.dropped(), total);
    }

    #[test]
    fn eve_form_carries_what_the_control_plane_reads() {
        let mut ev = event(7);
        ev.starttls = true;
        let v = ev.to_eve_json();
        assert_eq!(v["event_type"], "flow");
        assert_eq!(v["app_proto"], "tls");
        assert_eq!(v["dest_port"], 8443);
        assert_eq!(v["proto"], "TCP");
        assert_eq!(v["portolan"]["port_mismatch"], true);
        assert_eq!(v["tls"]["sni"], "example.com");
        assert_eq!(v["tls"]["version"], "TLS 1.3");
        assert_eq!(v["portolan"]["indicators"][0], "starttls");
        assert_eq!(v["flow"]["pkts_toserver"], 3);
        assert!(v["community_id"]
            .as_str()
            .is_some_and(|c| c.starts_with("1:")));
    }

    #[test]
    fn eve_form_carries_the_fingerprints_and_every_indicator() {
        let mut ev = event(8);
        ev.tls_fingerprints = Some(Box::new(TlsFingerprints {
            ja4: Some("t13d1516h2_8daaf6152771_02713d6af862".into()),
            ja3: Some("e7d705a3286e19ea42f587b344ee6865".into()),
        }));
        ev.indicators = Box::new(["tls.client_hello", "roles.conflict"]);
        ev.starttls = true;
        let v = ev.to_eve_json();
        assert_eq!(v["tls"]["ja4"], "t13d1516h2_8daaf6152771_02713d6af862");
        assert_eq!(v["tls"]["ja3"]["hash"], "e7d705a3286e19ea42f587b344ee6865");
        assert_eq!(v["tls"]["sni"], "example.com", "the name stays beside them");
        assert_eq!(
            v["portolan"]["indicators"],
            json!(["tls.client_hello", "roles.conflict", "starttls"])
        );
        let plain = event(9).to_eve_json();
        assert!(plain["tls"].get("ja4").is_none() && plain["portolan"].get("indicators").is_none());
        // The typed observation the control plane takes carries the same evidence.
        let typed = ev.observation();
        assert_eq!(typed, FlowObservation::from_eve_flow(&v).unwrap());
        assert_eq!(typed.tls.as_ref().unwrap()["ja4"], v["tls"]["ja4"]);
        assert_eq!(
            typed.indicators,
            ["tls.client_hello", "roles.conflict", "starttls"]
        );
    }

    #[test]
    fn drain_thread_pins_itself_when_asked() {
        let (_, receiver) = flow_event_queues(1, 4).expect("queues");
        let cpu = portolan_hwconfig::cpus::allowed_cpus()[0];
        let drain = FlowEventDrain::spawn(
            receiver,
            Vec::new(),
            DrainOptions {
                cpus: vec![cpu],
                ..DrainOptions::default()
            },
        )
        .expect("spawn");
        let (_, stats) = drain.finish().expect("drain");
        assert_eq!(stats.pin_error, None);
        assert_eq!(stats.pinned_to, vec![cpu]);
    }
}
