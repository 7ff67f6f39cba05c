//! Runs the whole classifier over the shared nDPI captures (`../shared/pcaps/ndpi`) and
//! compares its TLS / HTTP / QUIC / DTLS labels with nDPI's (`labels.tsv`, DPI-confidence rows).
//!
//! Skips with a message when the shared captures are absent. Flows are grouped by 5-tuple
//! here; the client is the sender of the first packet (the SYN sender for TCP), as the flow
//! table does, and roles are swapped when the classifier asks for it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use portolan_classify::{
    AppProto, CacheDir, Classifier, ClassifyConfig, CompiledSignatures, FlowClassification,
    ProbeContext, ProxyKind,
};
use portolan_model::Side;
use portolan_packet::capture::CaptureReader;
use portolan_packet::{tcp_flags, Transport};

fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/pcaps/ndpi")
}

/// The protocols this test scores, by nDPI master name.
fn expected(master: &str) -> Option<AppProto> {
    match master {
        "TLS" | "IMAPS" | "SMTPS" | "POPS" | "DoH_DoT" | "ApplePush" => Some(AppProto::Tls),
        "HTTP" | "HTTP_Proxy" | "HTTP_Connect" => Some(AppProto::Http),
        "QUIC" => Some(AppProto::Quic),
        "DTLS" => Some(AppProto::Dtls),
        "HTTP2" => Some(AppProto::Http2),
        _ => None,
    }
}

/// Labels that differ from nDPI's master but describe the same flow correctly:
/// - a STARTTLS upgrade (nDPI: IMAPS/SMTPS/POPS; us: the cleartext protocol plus the
///   `starttls` indicator and the TLS fields);
/// - RDP negotiating TLS after its X.224 connection request (nDPI: TLS; us: rdp).
///
/// WebRTC's STUN then DTLS on one 5-tuple is `dtls` for both: the STUN signature's
/// `upgrades_to` relabels the flow.
fn compatible(master: &str, got: AppProto, state: &FlowClassification) -> bool {
    let starttls = state
        .indicators()
        .contains(&portolan_classify::STARTTLS_INDICATOR);
    match (master, got) {
        ("IMAPS", AppProto::Imap) | ("SMTPS", AppProto::Smtp) | ("POPS", AppProto::Pop3) => {
            starttls
        }
        ("TLS", AppProto::Rdp) => true,
        // nDPI labels an explicit proxy's flow by the proxy protocol; we label it by the
        // protocol inside the established tunnel (judged on the target's port).
        ("SOCKS", _) => tunnel_of(state).is_some_and(|k| k != ProxyKind::HttpConnect),
        ("HTTP" | "HTTP_Proxy" | "HTTP_Connect", _) => {
            tunnel_of(state) == Some(ProxyKind::HttpConnect)
        }
        _ => false,
    }
}

/// The kind of the flow's established proxy tunnel, if any.
fn tunnel_of(state: &FlowClassification) -> Option<ProxyKind> {
    state.proxy().filter(|p| p.established).map(|p| p.kind)
}

type Endpoint = (IpAddr, u16);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    transport: Transport,
    a: Endpoint,
    b: Endpoint,
}

fn key(transport: Transport, x: Endpoint, y: Endpoint) -> Key {
    let (a, b) = if x <= y { (x, y) } else { (y, x) };
    Key { transport, a, b }
}

struct Flow {
    client: Endpoint,
    server: Endpoint,
    state: FlowClassification,
    /// Next expected TCP sequence number per sender (retransmissions are skipped).
    next_seq: HashMap<Endpoint, u32>,
}

struct Label {
    pcap: String,
    transport: Transport,
    client: Endpoint,
    server: Endpoint,
    master: String,
}

fn labels(dir: &Path) -> Vec<Label> {
    let text = std::fs::read_to_string(dir.join("labels.tsv")).unwrap();
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 10 || f[9] != "DPI" {
            continue;
        }
        let transport = match f[1] {
            "TCP" => Transport::Tcp,
            "UDP" => Transport::Udp,
            _ => continue,
        };
        let (Ok(cip), Ok(cp), Ok(sip), Ok(sp)) = (
            f[2].parse::<IpAddr>(),
            f[3].parse::<u16>(),
            f[4].parse::<IpAddr>(),
            f[5].parse::<u16>(),
        ) else {
            continue;
        };
        out.push(Label {
            pcap: f[0].to_string(),
            transport,
            client: (cip, cp),
            server: (sip, sp),
            master: f[6].to_string(),
        });
    }
    out
}

/// Classifies every flow of one capture.
fn classify_capture(path: &Path, classifier: &mut Classifier) -> HashMap<Key, Flow> {
    let mut flows: HashMap<Key, Flow> = HashMap::new();
    let Ok(mut reader) = CaptureReader::open(path) else {
        return flows;
    };
    let link = reader.info().link_type;
    while let Ok(Some(rec)) = reader.next_record() {
        let Ok(pkt) = portolan_packet::parse(link, &rec.data) else {
            continue;
        };
        let src = (pkt.src_ip, pkt.src_port);
        let dst = (pkt.dst_ip, pkt.dst_port);
        let k = key(pkt.transport, src, dst);
        let flow = flows.entry(k).or_insert_with(|| {
            // A SYN-ACK first means we missed the SYN: its receiver is the client.
            let synack = pkt
                .tcp
                .is_some_and(|t| t.flags & tcp_flags::SYN != 0 && t.flags & tcp_flags::ACK != 0);
            let (client, server) = if synack { (dst, src) } else { (src, dst) };
            Flow {
                client,
                server,
                state: FlowClassification::default(),
                next_seq: HashMap::new(),
            }
        });
        if pkt.payload.is_empty() {
            continue;
        }
        if let Some(tcp) = pkt.tcp {
            let len = u32::try_from(pkt.payload.len()).unwrap_or(u32::MAX);
            let end = tcp.seq.wrapping_add(len);
            if let Some(&next) = flow.next_seq.get(&src) {
                // Entirely before what we already saw: a retransmission.
                if (end.wrapping_sub(next) as i32) <= 0 {
                    continue;
                }
            }
            flow.next_seq.insert(src, end);
        }
        let ctx = ProbeContext {
            transport: pkt.transport,
            sender: Side::from_client(src == flow.client),
            client_port: flow.client.1,
            server_port: flow.server.1,
            packet_index: 0,
            dst_multicast: dst.0.is_multicast(),
        };
        if !flow.state.wants_payload(classifier) {
            continue;
        }
        if let Some(d) = flow.state.observe(classifier, &ctx, pkt.payload) {
            if d.swap_roles {
                std::mem::swap(&mut flow.client, &mut flow.server);
            }
        }
    }
    flows
}

#[test]
fn ndpi_captures_tls_http_quic() {
    let dir = shared_dir();
    if !dir.join("labels.tsv").exists() {
        eprintln!(
            "SKIP ndpi_captures_tls_http_quic: shared captures not found at {}",
            dir.display()
        );
        return;
    }
    let (sigs, _) = CompiledSignatures::load(
        &portolan_classify::source_signature_dir(),
        &CacheDir::Disabled,
    )
    .unwrap();
    let mut classifier = Classifier::new(Arc::new(sigs), ClassifyConfig::default()).unwrap();
    let labels = labels(&dir);
    let mut by_pcap: HashMap<&str, Vec<&Label>> = HashMap::new();
    for l in &labels {
        by_pcap.entry(l.pcap.as_str()).or_default().push(l);
    }
    let mut pcaps: Vec<&str> = by_pcap.keys().copied().collect();
    pcaps.sort_unstable();

    // (expected proto) -> (total, right, unknown)
    let mut score: HashMap<AppProto, (u32, u32, u32)> = HashMap::new();
    let mut wrong: Vec<String> = Vec::new();
    let mut false_positive: Vec<String> = Vec::new();
    let mut missed: Vec<String> = Vec::new();
    // Flows decided from a QUIC Initial / TLS ClientHello, and how many carry an SNI / JA4.
    let (mut quic_initials, mut quic_sni, mut hellos, mut hello_ja4) = (0u32, 0u32, 0u32, 0u32);
    for pcap in pcaps {
        let flows = classify_capture(&dir.join(pcap), &mut classifier);
        for l in &by_pcap[pcap] {
            let Some(flow) = flows.get(&key(l.transport, l.client, l.server)) else {
                continue;
            };
            let got = flow.state.app_proto();
            if got == AppProto::Quic && std::env::var_os("PORTOLAN_DEBUG_QUIC").is_some() {
                eprintln!(
                    "quic {pcap}: {:?} {:?}",
                    flow.state.indicators(),
                    flow.state.quic()
                );
            }
            if flow.state.indicators().contains(&"quic.initial") {
                quic_initials += 1;
                quic_sni += u32::from(flow.state.quic().is_some_and(|q| q.sni.is_some()));
            }
            if got == AppProto::Tls && flow.state.indicators().contains(&"tls.client_hello") {
                hellos += 1;
                hello_ja4 += u32::from(flow.state.tls().is_some_and(|t| t.ja4.is_some()));
            }
            let what = format!(
                "{pcap} {:?} {}:{} -> {}:{} ndpi={} got={got}",
                l.transport, l.client.0, l.client.1, l.server.0, l.server.1, l.master
            );
            match expected(&l.master) {
                Some(want) => {
                    let e = score.entry(want).or_default();
                    e.0 += 1;
                    if got == want || compatible(&l.master, got, &flow.state) {
                        e.1 += 1;
                    } else if got == AppProto::Unknown {
                        e.2 += 1;
                        missed.push(what);
                    } else {
                        wrong.push(what);
                    }
                }
                None if compatible(&l.master, got, &flow.state) => {}
                None => {
                    if matches!(
                        got,
                        AppProto::Tls
                            | AppProto::Http
                            | AppProto::Quic
                            | AppProto::Dtls
                            | AppProto::Http2
                    ) {
                        false_positive.push(what);
                    }
                }
            }
        }
    }
    let mut protos: Vec<_> = score.iter().collect();
    protos.sort_by_key(|(p, _)| **p);
    for (p, (total, right, unknown)) in &protos {
        eprintln!("{p}: {right}/{total} right, {unknown} unknown");
    }
    for m in &missed {
        eprintln!("unknown: {m}");
    }
    for w in &wrong {
        eprintln!("WRONG: {w}");
    }
    for f in &false_positive {
        eprintln!("labelled by us, not by nDPI: {f}");
    }
    eprintln!("QUIC Initials decrypted: {quic_initials}, with SNI: {quic_sni}");
    eprintln!("TLS ClientHellos: {hellos}, with JA4: {hello_ja4}");
    assert!(quic_initials >= 10 && quic_sni * 10 >= quic_initials * 7);
    assert!(hellos >= 300 && hello_ja4 == hellos);
    assert!(
        false_positive.is_empty(),
        "{} flows labelled only by us",
        false_positive.len()
    );
    assert!(
        wrong.is_empty(),
        "{} flows got another protocol's label",
        wrong.len()
    );
    for (p, min_share, min_total) in [
        (AppProto::Tls, 0.95, 10),
        (AppProto::Http, 0.95, 10),
        (AppProto::Quic, 0.90, 10),
        (AppProto::Dtls, 0.90, 4),
    ] {
        let (total, right, _) = score.get(&p).copied().unwrap_or_default();
        assert!(total > min_total, "{p}: only {total} labelled flows found");
        let share = f64::from(right) / f64::from(total);
        assert!(
            share >= min_share,
            "{p}: {right}/{total} = {share:.2} < {min_share}"
        );
    }
}
