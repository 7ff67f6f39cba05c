//! Checks the confirming parsers against real traffic: the nDPI test captures shared under
//! `/work/shared/pcaps/ndpi` (see the README there). For every flow whose nDPI label is one of
//! the covered protocols (payload-based confidence only), the first payload packets of each
//! direction are probed the way the engine does (each packet, and for TCP the growing
//! reassembled direction), and the test reports per-protocol hit rates.
//!
//! It fails when a labelled flow is confirmed as a different covered protocol (a wrong label),
//! or when a protocol's hit rate falls below the floor recorded in `FLOORS`.
//!
//! A second test runs the whole engine (the real Hyperscan database compiled from
//! `dataplane/signatures`, the parsers, conflict handling) over the same flows, so the signature
//! patterns are checked against real first packets too. Both skip, with a message, when the
//! shared captures are absent.

mod common;

use common::COVERED;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use portolan_classify::protocols::PARSERS;
use portolan_classify::{
    AppProto, CacheDir, Classifier, ClassifyConfig, CompiledSignatures, FlowClassification, Probe,
    ProbeContext, ProxyKind,
};
use portolan_model::Side;
use portolan_packet::capture::CaptureReader;
use portolan_packet::{tcp_flags, Transport};

/// Payload packets per direction the engine inspects (its `max_packets` default).
const MAX_PACKETS: usize = 8;
/// Bytes of a direction the engine inspects (its `max_bytes` default).
const MAX_BYTES: usize = 4096;

/// nDPI master (or app) name → our parser name.
const NDPI_NAMES: &[(&str, &str)] = &[
    ("SSH", "ssh"),
    ("DNS", "dns"),
    ("MDNS", "mdns"),
    ("LLMNR", "llmnr"),
    ("SMTP", "smtp"),
    ("IMAP", "imap"),
    ("POP3", "pop3"),
    ("FTP_CONTROL", "ftp"),
    ("MQTT", "mqtt"),
    ("Jabber", "xmpp"),
    ("RTSP", "rtsp"),
    ("SIP", "sip"),
    ("STUN", "stun"),
    ("OpenVPN", "openvpn"),
    ("WireGuard", "wireguard"),
    ("IPSec", "ike"),
    ("SOCKS", "socks"),
    ("IRC", "irc"),
    ("BitTorrent", "bittorrent"),
    ("Telnet", "telnet"),
    ("RDP", "rdp"),
    ("SMBv1", "smb"),
    ("SMBv23", "smb"),
    ("NTP", "ntp"),
    ("DHCP", "dhcp"),
    ("DHCPV6", "dhcp"),
    ("LDAP", "ldap"),
];

/// Lowest acceptable share (percent) of labelled flows with payload that each parser must
/// confirm: the rates measured on the shared set, rounded down, so a regression fails the test.
/// The flows below 100 % carry nothing the parser could confirm:
/// * smb: nDPI labels NetBIOS datagram (UDP 138) browser announcements `SMBv1`; that is the
///   NetBIOS datagram service, not an SMB session (3 flows).
/// * xmpp: 5 flows to port 5223 in `jabber.pcap` use a proprietary binary framing, not XMPP.
/// * rdp: one RDP-UDP flow starts after its SYN exchange (nothing but ciphertext left).
const FLOORS: &[(&str, u32)] = &[
    ("bittorrent", 100),
    ("dhcp", 100),
    ("dns", 100),
    ("ftp", 100),
    ("ike", 100),
    ("imap", 100),
    ("irc", 100),
    ("ldap", 100),
    ("llmnr", 100),
    ("mdns", 100),
    ("mqtt", 100),
    ("ntp", 100),
    ("openvpn", 100),
    ("pop3", 100),
    ("rdp", 75),
    ("rtsp", 100),
    ("sip", 100),
    ("smb", 40),
    ("smtp", 100),
    ("socks", 100),
    ("ssh", 100),
    ("stun", 100),
    ("telnet", 100),
    ("wireguard", 100),
    ("xmpp", 58),
];

fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/pcaps/ndpi")
}

/// One labelled flow.
struct Label {
    pcap: String,
    transport: Transport,
    client: (IpAddr, u16),
    server: (IpAddr, u16),
    proto: &'static str,
    ndpi: String,
}

/// An IP address and port.
type Endpoint = (IpAddr, u16);

/// A DPI-confidence label of any protocol: pcap, transport, client, server, nDPI master and app.
type AnyLabel = (String, Transport, Endpoint, Endpoint, String, String);

/// Flows of one capture as the engine classified them, keyed by transport and sorted endpoints.
type EngineFlows = HashMap<(Transport, Endpoint, Endpoint), EngineFlow>;

/// Every DPI-confidence label, whatever its protocol.
fn read_all_labels(dir: &Path) -> Vec<AnyLabel> {
    let text = std::fs::read_to_string(dir.join("labels.tsv")).expect("labels.tsv is readable");
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let [pcap, l4, cip, cport, sip, sport, master, app, _risk, confidence, ..] = f[..] else {
            continue;
        };
        if !confidence.starts_with("DPI") {
            continue;
        }
        let transport = if l4 == "TCP" {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let (Ok(cip), Ok(cport), Ok(sip), Ok(sport)) =
            (cip.parse(), cport.parse(), sip.parse(), sport.parse())
        else {
            continue;
        };
        out.push((
            pcap.to_string(),
            transport,
            (cip, cport),
            (sip, sport),
            master.to_string(),
            app.to_string(),
        ));
    }
    out
}

fn read_labels(dir: &Path) -> Vec<Label> {
    let text = std::fs::read_to_string(dir.join("labels.tsv")).expect("labels.tsv is readable");
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let [pcap, l4, cip, cport, sip, sport, master, app, _risk, confidence, ..] = f[..] else {
            continue;
        };
        if !confidence.starts_with("DPI") {
            continue; // "Match by port/IP" and "Unknown" are guesses, not payload ground truth.
        }
        let name = NDPI_NAMES
            .iter()
            .find(|(n, _)| *n == master || (*n == app && master == "NetBIOS"));
        let Some((ndpi, proto)) = name else { continue };
        let transport = if l4 == "TCP" {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let (Ok(cip), Ok(cport), Ok(sip), Ok(sport)) =
            (cip.parse(), cport.parse(), sip.parse(), sport.parse())
        else {
            continue;
        };
        out.push(Label {
            pcap: pcap.to_string(),
            transport,
            client: (cip, cport),
            server: (sip, sport),
            proto,
            ndpi: ndpi.to_string(),
        });
    }
    out
}

/// Payloads of one flow direction, in capture order, retransmissions dropped.
#[derive(Default)]
struct Direction {
    packets: Vec<Vec<u8>>,
    seen_seq: HashSet<u32>,
}

/// Payload-carrying packets of the labelled flows of one capture: (label index, from_client).
fn collect(path: &Path, labels: &[(usize, &Label)]) -> HashMap<(usize, bool), Direction> {
    let mut out: HashMap<(usize, bool), Direction> = HashMap::new();
    let Ok(mut reader) = CaptureReader::open(path) else {
        return out;
    };
    let link = reader.info().link_type;
    while let Ok(Some(rec)) = reader.next_record() {
        let Ok(p) = portolan_packet::parse(link, &rec.data) else {
            continue;
        };
        if p.payload.is_empty() {
            continue;
        }
        let src = (p.src_ip, p.src_port);
        let dst = (p.dst_ip, p.dst_port);
        for (i, l) in labels {
            if l.transport != p.transport {
                continue;
            }
            let from_client = if src == l.client && dst == l.server {
                true
            } else if src == l.server && dst == l.client {
                false
            } else {
                continue;
            };
            let dir = out.entry((*i, from_client)).or_default();
            if dir.packets.len() >= MAX_PACKETS {
                continue;
            }
            if let Some(tcp) = p.tcp {
                if !dir.seen_seq.insert(tcp.seq) {
                    continue;
                }
            }
            dir.packets.push(p.payload.to_vec());
        }
    }
    out
}

/// Parsers (covered ones) that confirm some probe of this direction.
fn confirmations(
    transport: Transport,
    from_client: bool,
    dir: &Direction,
) -> BTreeMap<&'static str, &'static str> {
    let mut found = BTreeMap::new();
    let mut stream: Vec<u8> = Vec::new();
    for (index, payload) in dir.packets.iter().enumerate() {
        let ctx = ProbeContext {
            transport,
            sender: Side::from_client(from_client),
            client_port: 0,
            server_port: 0,
            packet_index: index as u32,
            dst_multicast: false,
        };
        let mut inputs: Vec<&[u8]> = vec![payload];
        if transport == Transport::Tcp && index > 0 && stream.len() < MAX_BYTES {
            stream.extend_from_slice(payload);
            stream.truncate(MAX_BYTES);
            inputs.push(&stream);
        } else if index == 0 {
            stream.extend_from_slice(payload);
        }
        for input in inputs {
            let input = &input[..input.len().min(MAX_BYTES)];
            for (name, probe) in PARSERS.iter().filter(|(n, _)| COVERED.contains(n)) {
                if let Probe::Match { indicator, .. } | Probe::MatchFrom { indicator, .. } =
                    probe(&ctx, input)
                {
                    found.entry(*name).or_insert(indicator);
                }
            }
        }
    }
    found
}

#[test]
fn parsers_confirm_labelled_ndpi_flows() {
    let dir = shared_dir();
    if !dir.join("labels.tsv").is_file() {
        eprintln!(
            "SKIPPED: shared nDPI captures not found at {} (needs /work/shared)",
            dir.display()
        );
        return;
    }
    let labels = read_labels(&dir);
    let mut by_pcap: BTreeMap<&str, Vec<(usize, &Label)>> = BTreeMap::new();
    for (i, l) in labels.iter().enumerate() {
        by_pcap.entry(l.pcap.as_str()).or_default().push((i, l));
    }
    // proto -> (flows, confirmed, flows with payload, wrong-label flows)
    let mut stats: BTreeMap<&str, (u32, u32, u32, u32)> = BTreeMap::new();
    let mut wrong = Vec::new();
    let mut misses = Vec::new();
    for (pcap, flows) in &by_pcap {
        let dirs = collect(&dir.join(pcap), flows);
        for (i, l) in flows {
            let entry = stats.entry(l.proto).or_default();
            entry.0 += 1;
            let mut seen = BTreeMap::new();
            let mut has_payload = false;
            for from_client in [true, false] {
                if let Some(d) = dirs.get(&(*i, from_client)) {
                    has_payload |= !d.packets.is_empty();
                    seen.extend(confirmations(l.transport, from_client, d));
                }
            }
            entry.2 += u32::from(has_payload);
            if seen.contains_key(l.proto) {
                entry.1 += 1;
            } else if has_payload {
                misses.push(format!(
                    "{pcap} {}:{} -> {}:{} ({}) nDPI {}",
                    l.client.0,
                    l.client.1,
                    l.server.0,
                    l.server.1,
                    l.transport.eve_name(),
                    l.ndpi
                ));
            }
            let others: Vec<_> = seen.iter().filter(|(p, _)| **p != l.proto).collect();
            if !others.is_empty() {
                entry.3 += 1;
                wrong.push(format!(
                    "{pcap} {}:{} -> {}:{} nDPI {}: also confirmed {others:?}",
                    l.client.0, l.client.1, l.server.0, l.server.1, l.ndpi
                ));
            }
        }
    }
    println!(
        "{:<11} {:>6} {:>10} {:>8} {:>8} {:>6}",
        "protocol", "flows", "w/payload", "hits", "rate%", "wrong"
    );
    for (proto, (flows, hits, payload, wrong_n)) in &stats {
        let rate = if *payload > 0 {
            100.0 * f64::from(*hits) / f64::from(*payload)
        } else {
            0.0
        };
        println!("{proto:<11} {flows:>6} {payload:>10} {hits:>8} {rate:>8.1} {wrong_n:>6}");
    }
    println!("\nmissed flows (payload present, own parser never confirmed):");
    for m in &misses {
        println!("  {m}");
    }
    assert!(
        wrong.is_empty(),
        "flows confirmed as another protocol:\n{}",
        wrong.join("\n")
    );
    for (proto, floor) in FLOORS {
        let (_, hits, payload, _) = stats.get(proto).copied().unwrap_or_default();
        let rate = (100 * hits).checked_div(payload).unwrap_or(0);
        assert!(
            rate >= *floor,
            "{proto}: {hits}/{payload} flows confirmed ({rate}%), floor {floor}%"
        );
    }
}

/// One flow as the engine sees it: the client is the first sender (the SYN sender for TCP).
struct EngineFlow {
    client: (IpAddr, u16),
    state: FlowClassification,
    next_seq: HashMap<(IpAddr, u16), u32>,
}

/// Runs the classifier over every packet of one capture; flows keyed by sorted endpoints.
fn classify_capture(path: &Path, classifier: &mut Classifier) -> EngineFlows {
    let mut flows = HashMap::new();
    let Ok(mut reader) = CaptureReader::open(path) else {
        return flows;
    };
    let link = reader.info().link_type;
    while let Ok(Some(rec)) = reader.next_record() {
        let Ok(p) = portolan_packet::parse(link, &rec.data) else {
            continue;
        };
        let src = (p.src_ip, p.src_port);
        let dst = (p.dst_ip, p.dst_port);
        let k = if src <= dst {
            (p.transport, src, dst)
        } else {
            (p.transport, dst, src)
        };
        let flow = flows.entry(k).or_insert_with(|| {
            let synack = p
                .tcp
                .is_some_and(|t| t.flags & tcp_flags::SYN != 0 && t.flags & tcp_flags::ACK != 0);
            EngineFlow {
                client: if synack { dst } else { src },
                state: FlowClassification::default(),
                next_seq: HashMap::new(),
            }
        });
        if p.payload.is_empty() {
            continue;
        }
        if let Some(tcp) = p.tcp {
            let end = tcp
                .seq
                .wrapping_add(u32::try_from(p.payload.len()).unwrap_or(u32::MAX));
            if flow
                .next_seq
                .get(&src)
                .is_some_and(|&next| (end.wrapping_sub(next) as i32) <= 0)
            {
                continue;
            }
            flow.next_seq.insert(src, end);
        }
        if !flow.state.wants_payload(classifier) {
            continue;
        }
        let server = if src == flow.client { dst } else { src };
        let ctx = ProbeContext {
            transport: p.transport,
            sender: Side::from_client(src == flow.client),
            client_port: flow.client.1,
            server_port: server.1,
            packet_index: 0,
            dst_multicast: dst.0.is_multicast(),
        };
        if let Some(d) = flow.state.observe(classifier, &ctx, p.payload) {
            if d.swap_roles {
                flow.client = server;
            }
        }
    }
    flows
}

/// nDPI names a later phase of the same flow: WebRTC media multiplexes STUN first, then
/// DTLS/SRTP on one 5-tuple; a STARTTLS upgrade is IMAPS/SMTPS/POPS to nDPI; RDP negotiates TLS
/// right after its X.224 request.
fn same_flow_other_name(master: &str, got: AppProto, indicators: &[&str]) -> bool {
    let starttls = indicators.contains(&portolan_classify::STARTTLS_INDICATOR);
    matches!(
        (master, got),
        ("DTLS" | "SRTP", AppProto::Stun) | ("TLS", AppProto::Rdp)
    ) || (starttls
        && matches!(
            (master, got),
            ("IMAPS", AppProto::Imap) | ("SMTPS", AppProto::Smtp) | ("POPS", AppProto::Pop3)
        ))
}

#[test]
fn engine_labels_ndpi_flows_of_covered_protocols() {
    let dir = shared_dir();
    if !dir.join("labels.tsv").is_file() {
        eprintln!(
            "SKIPPED: shared nDPI captures not found at {} (needs /work/shared)",
            dir.display()
        );
        return;
    }
    let (sigs, _) = CompiledSignatures::load(
        &portolan_classify::source_signature_dir(),
        &CacheDir::Disabled,
    )
    .expect("signature files load and compile");
    let mut classifier =
        Classifier::new(Arc::new(sigs), ClassifyConfig::default()).expect("classifier");
    let labels = read_labels(&dir);
    let mut by_pcap: BTreeMap<&str, Vec<&Label>> = BTreeMap::new();
    for l in &labels {
        by_pcap.entry(l.pcap.as_str()).or_default().push(l);
    }
    // proto -> (flows, right, unknown)
    let mut stats: BTreeMap<&str, (u32, u32, u32)> = BTreeMap::new();
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for (pcap, flows) in &by_pcap {
        let seen = classify_capture(&dir.join(pcap), &mut classifier);
        for l in flows {
            let k = if l.client <= l.server {
                (l.transport, l.client, l.server)
            } else {
                (l.transport, l.server, l.client)
            };
            let Some(flow) = seen.get(&k) else { continue };
            let got = flow.state.app_proto();
            let e = stats.entry(l.proto).or_default();
            e.0 += 1;
            let what = format!(
                "{pcap} {}:{} -> {}:{} nDPI {} got {got} {:?}",
                l.client.0,
                l.client.1,
                l.server.0,
                l.server.1,
                l.ndpi,
                flow.state.indicators()
            );
            // nDPI labels a SOCKS proxy's flow by the proxy protocol; once the proxy granted
            // the tunnel we label it by what it carries (judged on the target's port), as
            // `ndpi_pcaps.rs` accepts too.
            let socks_tunnel = l.proto == "socks"
                && flow
                    .state
                    .proxy()
                    .is_some_and(|p| p.established && p.kind != ProxyKind::HttpConnect);
            if AppProto::from_name(l.proto) == Some(got) || socks_tunnel {
                e.1 += 1;
            } else if got == AppProto::Unknown {
                e.2 += 1;
                unknown.push(what);
            } else {
                wrong.push(what);
            }
        }
    }
    // Flows nDPI gives another protocol that we label with a covered one.
    let mut ours_only = Vec::new();
    let all = read_all_labels(&dir);
    let mut all_by_pcap: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for l in &all {
        all_by_pcap.entry(l.0.as_str()).or_default().push(l);
    }
    for (pcap, flows) in &all_by_pcap {
        let seen = classify_capture(&dir.join(pcap), &mut classifier);
        for (_, transport, client, server, master, app) in flows {
            if NDPI_NAMES
                .iter()
                .any(|(n, _)| n == master || (n == app && master == "NetBIOS"))
            {
                continue;
            }
            let k = if client <= server {
                (*transport, *client, *server)
            } else {
                (*transport, *server, *client)
            };
            let Some(flow) = seen.get(&k) else { continue };
            let got = flow.state.app_proto();
            if COVERED.contains(&got.as_str())
                && !same_flow_other_name(master, got, flow.state.indicators())
            {
                ours_only.push(format!(
                    "{pcap} {}:{} -> {}:{} nDPI {master}.{app} got {got} {:?}",
                    client.0,
                    client.1,
                    server.0,
                    server.1,
                    flow.state.indicators()
                ));
            }
        }
    }
    for o in &ours_only {
        println!("labelled by us, nDPI says otherwise: {o}");
    }
    assert!(
        ours_only.is_empty(),
        "{} flows labelled with a covered protocol that nDPI calls something else",
        ours_only.len()
    );
    println!(
        "{:<11} {:>6} {:>8} {:>8}",
        "protocol", "flows", "right", "unknown"
    );
    for (proto, (flows, right, unk)) in &stats {
        println!("{proto:<11} {flows:>6} {right:>8} {unk:>8}");
    }
    for u in &unknown {
        println!("unknown: {u}");
    }
    assert!(
        wrong.is_empty(),
        "flows labelled as another protocol:\n{}",
        wrong.join("\n")
    );
    let (flows, right) = stats.values().fold((0, 0), |(f, r), v| (f + v.0, r + v.1));
    // Every flow the parsers alone confirm (see the other test) must also come out of the engine.
    assert!(
        right * 100 >= flows * 95,
        "engine labelled {right}/{flows} covered flows"
    );
}
