//! Hand-off of finished, classified flows from the worker lcores to the control plane.
//!
//! Owns: the compact [`FlowEvent`] one finished flow with a decided `app_proto` becomes, one
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
use portolan_packet::Transport;
use serde_json::{json, Map, Value};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Where a flow's server name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameSource {
    /// TLS ClientHello SNI (also DTLS and STARTTLS-upgraded sessions).
    TlsSni,
    /// SNI of the ClientHello inside a QUIC Initial.
    QuicSni,
    /// HTTP `Host` header.
    HttpHost,
}

impl NameSource {
    /// `tls_sni`, `quic_sni` or `http_host`.
    pub fn as_str(self) -> &'static str {
        match self {
            NameSource::TlsSni => "tls_sni",
            NameSource::QuicSni => "quic_sni",
            NameSource::HttpHost => "http_host",
        }
    }
}

/// One finished flow whose protocol was identified, as the control plane needs it to raise
/// mismatch alerts and learn protocol/port pairs. Built once per flow as it ends (the server
/// name, User-Agent, TLS fingerprints, indicator list and a DNS flow's boxed answers are its only
/// heap parts); the full record with every metadata field is the EVE flow log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowEvent {
    /// Flow id, unique over the workers (worker `w`'s ids carry `w << 48`, as the EVE records).
    pub flow_id: u64,
    /// Worker (RX queue) that saw the flow.
    pub worker: u16,
    /// First packet, µs since the epoch (capture time).
    pub start_us: u64,
    /// Last packet, µs since the epoch.
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
    /// The event as a Suricata-style EVE `flow` record (the fields the control plane's
    /// `FlowObservation::from_eve_flow` reads: 5-tuple, times, counters, `app_proto`,
    /// `tls.sni` / `tls.version` / `quic.sni` / `http.hostname` / `http.http_user_agent`,
    /// `community_id`, and Portolan's own `portolan.port_mismatch` and `portolan.indicators` with
    /// `starttls`), in the shapes Suricata's EVE schema gives those fields.
    pub fn to_eve_json(&self) -> Value {
        let ts = portolan_flow::eve::format_eve_timestamp;
        let mut rec = Map::new();
        rec.insert("timestamp".into(), json!(ts(self.start_us)));
        rec.insert("flow_id".into(), json!(self.flow_id));
        rec.insert("event_type".into(), json!("flow"));
        if let Some(v) = self.vlan {
            rec.insert("vlan".into(), json!([v]));
        }
        rec.insert("src_ip".into(), json!(self.client_ip.to_string()));
        rec.insert("src_port".into(), json!(self.client_port));
        rec.insert("dest_ip".into(), json!(self.server_ip.to_string()));
        rec.insert("dest_port".into(), json!(self.server_port));
        rec.insert("proto".into(), json!(self.transport.eve_name()));
        rec.insert("app_proto".into(), json!(self.app_proto.as_str()));
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
        rec.insert(
            "community_id".into(),
            json!(portolan_flow::community_id_v1(
                0,
                self.client_ip,
                self.server_ip,
                self.transport.ip_proto(),
                self.client_port,
                self.server_port,
            )),
        );
        if let Some((source, name)) = &self.server_name {
            let (object, key) = match source {
                NameSource::TlsSni => ("tls", "sni"),
                NameSource::QuicSni => ("quic", "sni"),
                NameSource::HttpHost => ("http", "hostname"),
            };
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
        let mut indicators: Vec<&str> = self.indicators.to_vec();
        if self.starttls && !indicators.contains(&"starttls") {
            indicators.push("starttls");
        }
        if !indicators.is_empty() {
            own.insert("indicators".into(), json!(indicators));
        }
        own.insert("port_mismatch".into(), json!(self.port_mismatch));
        rec.insert("portolan".into(), Value::Object(own));
        Value::Object(rec)
    }

    /// For a flow carrying [`FlowEvent::dns_answers`]: a Suricata-style EVE `dns` answer record
    /// (format 2, `answers[]` with `rrname`/`rrtype`/`ttl`/`rdata`) from the server to the client,
    /// stamped with the time the response was seen, as the control plane's
    /// `DnsAnswer::from_eve_dns` reads it. Feed it before flows that start later.
    pub fn dns_eve_json(&self) -> Option<Value> {
        let answers = self.dns_answers.as_deref()?;
        let ttl = answers.ttl_s().unwrap_or(0);
        let records: Vec<Value> = answers
            .addresses()
            .map(|ip| {
                json!({
                    "rrname": answers.name(),
                    "rrtype": if ip.is_ipv4() { "A" } else { "AAAA" },
                    "ttl": ttl,
                    "rdata": ip.to_string(),
                })
            })
            .collect();
        Some(json!({
            "timestamp": portolan_flow::eve::format_eve_timestamp(answers.seen_us()),
            "flow_id": self.flow_id,
            "event_type": "dns",
            "src_ip": self.server_ip.to_string(),
            "src_port": self.server_port,
            "dest_ip": self.client_ip.to_string(),
            "dest_port": self.client_port,
            "proto": self.transport.eve_name(),
            "dns": {
                "version": 2,
                "type": "answer",
                "rrname": answers.name(),
                "answers": records,
            },
        }))
    }
}

/// A worker's end of its hand-off queue. Owned by the worker; never blocks.
#[derive(Debug)]
pub struct FlowEventSender {
    queue: Arc<ArrayQueue<FlowEvent>>,
    sent: u64,
    dropped: u64,
    dns_answers_sent: u64,
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
        pass.flow_events + pass.dns_answer_events
    }

    /// [`FlowEventReceiver::drain_into`], counting finished-flow events and early DNS-answer
    /// events ([`FlowEvent::dns_answer_only`]) apart.
    pub fn drain_counting<C: FlowEventConsumer + ?Sized>(&self, consumer: &mut C) -> DrainPass {
        let mut pass = DrainPass::default();
        for q in &self.queues {
            while let Some(ev) = q.pop() {
                if ev.dns_answer_only {
                    pass.dns_answer_events += 1;
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
}

/// What the drain thread did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DrainStats {
    /// Finished-flow events handed to the consumer.
    pub received: u64,
    /// Early DNS-answer events handed to the consumer.
    pub dns_answers_received: u64,
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

fn pin_current_thread(cpus: &[u32]) -> Result<(), String> {
    use nix::sched::{sched_setaffinity, CpuSet};
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c as usize).map_err(|e| format!("CPU {c}: {e}"))?;
    }
    sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(|e| e.to_string())
}

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
                    match pin_current_thread(&options.cpus) {
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
                    let n = pass.flow_events + pass.dns_answer_events;
                    if n > 0 {
                        stats.received += pass.flow_events as u64;
                        stats.batches += 1;
                        consumer.on_batch_end();
                    } else if stopping {
                        break;
                    } else {
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
        }
    }

    #[test]
    fn dns_answers_become_an_eve_dns_answer_record() {
        assert!(event(1).dns_eve_json().is_none());
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
        let rec = ev.dns_eve_json().unwrap();
        assert_eq!(rec["event_type"], "dns");
        assert_eq!(rec["src_port"], 53);
        assert_eq!(rec["dest_ip"], "10.0.0.1");
        assert_eq!(
            rec["timestamp"],
            portolan_flow::eve::format_eve_timestamp(1_700_000_000_500_000)
        );
        assert_eq!(rec["dns"]["type"], "answer");
        assert_eq!(rec["dns"]["rrname"], "mail.example.com");
        assert_eq!(rec["dns"]["answers"][0]["rrtype"], "A");
        assert_eq!(rec["dns"]["answers"][0]["rdata"], "203.0.113.9");
        assert_eq!(rec["dns"]["answers"][0]["ttl"], 300);
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
    }

    #[test]
    fn drain_thread_pins_itself_when_asked() {
        let (_, receiver) = flow_event_queues(1, 4).expect("queues");
        let cpu = crate::replay::allowed_cpus()[0];
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
