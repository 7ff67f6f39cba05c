//! What share of a capture's packets a bypass of judged flows would keep from the worker, and
//! why the rest still reach it: the capture goes through a classifying worker whose observer
//! notes, for every packet, whether its flow was already judged and eligible (an established
//! TCP flow, or a UDP flow) — a packet the XDP program would drop (TCP FIN/RST excepted) — or,
//! if not, why not (undecided, decided but a parser still reads, DNS, TCP not established),
//! per protocol. Capture time, so no liveness effects: an upper bound for the live run.
//!
//! Usage: `bypass_share CAPTURE [TIMEOUT_S]` (flow timeouts, default 10 s as the live
//! measurements use).

use portolan_classify::{
    AppProto, Classifier, ClassifyConfig, CompiledSignatures, FlowClassification,
};
use portolan_dataplane::worker::StopCause;
use portolan_dataplane::{
    ClassificationReport, ClassifyObserver, PacketObserver, Worker, WorkerConfig,
};
use portolan_flow::eve::FlowRecord;
use portolan_flow::{FinishedFlow, Flow, FlowTableConfig, Side, TcpState};
use portolan_packet::capture::CaptureReader;
use portolan_packet::{LinkType, Packet, Transport};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

struct Share {
    inner: ClassifyObserver,
    classifier: Classifier,
    judged: HashSet<u64>,
    /// Per direction: flows whose sender's payload nobody wants any more.
    done: HashSet<(u64, usize)>,
    /// Packets a per-direction bypass would drop: (full directions, + empty packets of the rest).
    per_direction: (u64, u64),
    counts: BTreeMap<(&'static str, &'static str), u64>,
}

impl PacketObserver for Share {
    type FlowState = FlowClassification;

    fn on_packet(
        &mut self,
        flow: &mut Flow<FlowClassification>,
        dir: Side,
        pkt: &Packet<'_>,
        ts_us: u64,
    ) {
        let fin_rst = pkt.tcp.is_some_and(|t| t.flags & 0x05 != 0);
        let sender = if dir == Side::Client { 0 } else { 1 };
        let decided = flow.app.is_decided() && flow.app.app_proto() != AppProto::Dns;
        let eligible = flow.transport == Transport::Udp || flow.tcp_state == TcpState::Established;
        if decided && eligible && !fin_rst {
            if self.done.contains(&(flow.id, sender)) {
                self.per_direction.0 += 1;
                self.per_direction.1 += 1;
            } else if pkt.payload.is_empty() {
                self.per_direction.1 += 1;
            }
        }
        let reason = if self.judged.contains(&flow.id) {
            if fin_rst {
                "fin_rst"
            } else {
                "bypassed"
            }
        } else if !flow.app.is_decided() {
            "undecided"
        } else if flow.app.app_proto() == AppProto::Dns {
            "dns"
        } else if flow.transport == Transport::Tcp && flow.tcp_state != TcpState::Established {
            "tcp_not_established"
        } else {
            "decided_parser_reads"
        };
        *self
            .counts
            .entry((reason, flow.app.app_proto().as_str()))
            .or_default() += 1;
        self.inner.on_packet(flow, dir, pkt, ts_us);
        if flow.app.is_decided() && flow.app.app_proto() != AppProto::Dns {
            for (i, side) in [Side::Client, Side::Server].into_iter().enumerate() {
                if !flow.app.wants_payload_from(&self.classifier, side) {
                    self.done.insert((flow.id, i));
                }
            }
        }
        if eligible && self.inner.judged(flow) {
            self.judged.insert(flow.id);
        }
    }

    fn judged(&self, flow: &Flow<FlowClassification>) -> bool {
        self.inner.judged(flow)
    }

    fn on_flow_end(&mut self, f: &mut FinishedFlow<FlowClassification>) {
        self.judged.remove(&f.flow.id);
        self.inner.on_flow_end(f);
    }

    fn describe(&self, f: &FinishedFlow<FlowClassification>, r: &mut FlowRecord) {
        self.inner.describe(f, r);
    }

    fn classification(&self) -> Option<ClassificationReport> {
        self.inner.classification()
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        eprintln!("usage: bypass_share CAPTURE [TIMEOUT_S]");
        return ExitCode::from(2);
    };
    let timeout_s: u64 = args.next().and_then(|t| t.parse().ok()).unwrap_or(10);
    let (sigs, _) = match CompiledSignatures::load(
        &portolan_classify::source_signature_dir(),
        &portolan_classify::CacheDir::Disabled,
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("signatures: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ports = Arc::new(sigs.port_registry());
    let sigs = Arc::new(sigs);
    let Ok(classifier) = Classifier::new(Arc::clone(&sigs), ClassifyConfig::default()) else {
        eprintln!("no Hyperscan scratch");
        return ExitCode::FAILURE;
    };
    let Ok(own) = Classifier::new(Arc::clone(&sigs), ClassifyConfig::default()) else {
        eprintln!("no Hyperscan scratch");
        return ExitCode::FAILURE;
    };
    let observer = Share {
        inner: ClassifyObserver::new(0, classifier, ports, None),
        classifier: own,
        done: HashSet::new(),
        per_direction: (0, 0),
        judged: HashSet::new(),
        counts: BTreeMap::new(),
    };
    let t = timeout_s * 1_000_000;
    let mut cfg = WorkerConfig::new(LinkType::Ethernet);
    cfg.flow_table = FlowTableConfig {
        tcp_idle_timeout_us: t,
        tcp_closed_timeout_us: t,
        udp_idle_timeout_us: t,
        tcp_unestablished_timeout_us: t,
        ..FlowTableConfig::default()
    };
    let Ok(mut w) = Worker::new(cfg, observer) else {
        eprintln!("worker");
        return ExitCode::FAILURE;
    };
    let mut reader = match CaptureReader::open(&path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut sink = Vec::new();
    let mut frames = 0u64;
    while let Ok(Some(rec)) = reader.next_record() {
        frames += 1;
        w.process_frame(&rec.data, rec.orig_len, Some(rec.ts_us));
        w.after_burst(&mut sink);
        sink.clear();
    }
    let out = w.finish(&mut sink, StopCause::EndOfInput);
    let counts = &out.observer.counts;
    let bypassed: u64 = counts
        .iter()
        .filter(|((r, _), _)| *r == "bypassed")
        .map(|(_, n)| n)
        .sum();
    println!(
        "{frames} frames; a bypass would drop {bypassed} ({:.1}%); reaching the worker by reason and protocol:",
        100.0 * bypassed as f64 / frames as f64
    );
    let mut by_reason: BTreeMap<&str, u64> = BTreeMap::new();
    for ((reason, proto), n) in counts {
        if *reason != "bypassed" {
            *by_reason.entry(reason).or_default() += n;
            println!("  {reason:22} {proto:10} {n}");
        }
    }
    println!("by reason: {by_reason:?}");
    let (full, with_empty) = out.observer.per_direction;
    println!(
        "per direction: {full} ({:.1}%) with directions bypassed as soon as their payload is not wanted; {with_empty} ({:.1}%) dropping also the empty packets of still-wanted directions",
        100.0 * full as f64 / frames as f64,
        100.0 * with_empty as f64 / frames as f64
    );
    ExitCode::SUCCESS
}
