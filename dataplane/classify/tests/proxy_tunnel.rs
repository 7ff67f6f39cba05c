//! Explicit proxies through the engine (real signatures, real Hyperscan): an HTTP `CONNECT`
//! tunnel and SOCKS4a/5 requests are followed, the bytes inside are classified, and the record
//! is judged on the target's port with the proxy kept as context; refusals and hostile bytes
//! leave the proxy's own label. Property tests: any segmentation of the exchange gives the
//! record of whole messages, and arbitrary bytes around a proxy request never panic.

use std::sync::{Arc, OnceLock};

use portolan_classify::{
    AppProto, AppRecord, CacheDir, Classifier, ClassifyConfig, CompiledSignatures,
    FlowClassification, ProbeContext, ProxyKind, Side,
};
use portolan_packet::Transport;
use portolan_testkit::{self as testkit, ClientHelloSpec};
use proptest::prelude::*;
use serde_json::{Map, Value};

const PROXY_PORT: u16 = 3128;
const ISN: [u32; 2] = [0x1000_0000, 0x7000_0000];

fn classifier() -> Classifier {
    static SIGS: OnceLock<Arc<CompiledSignatures>> = OnceLock::new();
    let sigs = SIGS.get_or_init(|| {
        let (sigs, _) = CompiledSignatures::load(
            &portolan_classify::source_signature_dir(),
            &CacheDir::Disabled,
        )
        .expect("the repository's signature files load");
        Arc::new(sigs)
    });
    Classifier::new(Arc::clone(sigs), ClassifyConfig::default()).unwrap()
}

fn ctx(from_client: bool) -> ProbeContext {
    ProbeContext {
        transport: Transport::Tcp,
        sender: Side::from_client(from_client),
        client_port: 49152,
        server_port: PROXY_PORT,
        packet_index: 0,
        dst_multicast: false,
    }
}

/// A whole exchange: (from the client, bytes) in order.
type Exchange = Vec<(bool, Vec<u8>)>;

fn client_hello() -> Vec<u8> {
    testkit::tls_client_hello_record(&ClientHelloSpec::chrome_like("c2.example.net"))
}

fn server_hello() -> Vec<u8> {
    testkit::tls_server_hello_record(0x1301, Some(0x0304))
}

fn http_connect(port: u16, status: &str) -> Exchange {
    vec![
        (
            true,
            format!(
                "CONNECT c2.example.net:{port} HTTP/1.1\r\nHost: c2.example.net:{port}\r\n\
                 User-Agent: Mail/3 CFNetwork\r\n\r\n"
            )
            .into_bytes(),
        ),
        (false, format!("HTTP/1.1 {status}\r\n\r\n").into_bytes()),
        (true, client_hello()),
        (false, server_hello()),
    ]
}

fn socks5(port: u16) -> Exchange {
    let mut req = b"\x05\x01\x00\x03\x0ec2.example.net".to_vec();
    req.extend_from_slice(&port.to_be_bytes());
    vec![
        (true, b"\x05\x01\x00".to_vec()),
        (false, b"\x05\x00".to_vec()),
        (true, req),
        (false, b"\x05\x00\x00\x01\xc0\x00\x02\x01\x0c\x38".to_vec()),
        (true, client_hello()),
        (false, server_hello()),
    ]
}

fn socks4a(port: u16) -> Exchange {
    let mut req = b"\x04\x01".to_vec();
    req.extend_from_slice(&port.to_be_bytes());
    req.extend_from_slice(b"\x00\x00\x00\x01ios\x00c2.example.net\x00");
    vec![
        (true, req),
        (false, b"\x00\x5a\x00\x00\x00\x00\x00\x00".to_vec()),
        (true, client_hello()),
        (false, server_hello()),
    ]
}

/// Feeds each direction's bytes as TCP segments (cut at `cuts` of the direction's stream, in
/// order) after the SYNs, interleaving the directions as the exchange does; returns the
/// record's app-layer map for a flow to the proxy port.
fn record_of(exchange: &Exchange, cuts: &[Vec<usize>; 2]) -> Map<String, Value> {
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    flow.fix_roles();
    flow.observe_syn(Side::Client, ISN[0]);
    flow.observe_syn(Side::Server, ISN[1]);
    let mut offset = [0usize; 2];
    for (from_client, bytes) in exchange {
        let d = usize::from(!from_client);
        let start = offset[d];
        let end = start + bytes.len();
        let mut points: Vec<usize> = cuts[d]
            .iter()
            .copied()
            .filter(|&p| p > start && p < end)
            .collect();
        points.sort_unstable();
        points.dedup();
        points.insert(0, start);
        points.push(end);
        for w in points.windows(2) {
            let seg = &bytes[w[0] - start..w[1] - start];
            let seq = ISN[d].wrapping_add(1).wrapping_add(w[0] as u32);
            let dec = flow.observe_segment(&mut c, &ctx(*from_client), seq, seg);
            assert!(!dec.is_some_and(|d| d.swap_roles), "roles never swap");
        }
        offset[d] = end;
    }
    let ports = c.signatures().port_registry();
    AppRecord::from_flow(&flow, &ports, Transport::Tcp, PROXY_PORT).to_json_map()
}

fn whole(exchange: &Exchange) -> Map<String, Value> {
    record_of(exchange, &[Vec::new(), Vec::new()])
}

#[test]
fn tls_through_an_http_connect_tunnel_is_judged_on_the_target_port() {
    let rec = whole(&http_connect(50443, "200 Connection established"));
    assert_eq!(rec["app_proto"], "tls", "{rec:#?}");
    assert_eq!(rec["tls"]["sni"], "c2.example.net");
    assert!(rec["tls"]["ja4"]
        .as_str()
        .is_some_and(|j| j.starts_with("t13d")));
    assert_eq!(rec["http"]["http_method"], "CONNECT");
    assert_eq!(rec["http"]["status"], 200);
    let own = &rec["portolan"];
    assert_eq!(own["port_mismatch"], true);
    assert_eq!(
        own["proxy"],
        serde_json::json!({"kind": "http_connect", "host": "c2.example.net", "port": 50443, "established": true})
    );
    let ind = own["indicators"].to_string();
    assert!(
        ind.contains("proxy.tunnel") && ind.contains("http.connect"),
        "{ind}"
    );
    // The same tunnel to 443 is TLS on its registered port.
    let rec = whole(&http_connect(443, "200 OK"));
    assert_eq!(rec["app_proto"], "tls");
    assert_eq!(rec["portolan"]["port_mismatch"], false);
}

#[test]
fn socks5_and_socks4a_tunnels_are_followed() {
    for (exchange, kind) in [(socks5(50443), "socks5"), (socks4a(50443), "socks4")] {
        let rec = whole(&exchange);
        assert_eq!(rec["app_proto"], "tls", "{kind}: {rec:#?}");
        assert_eq!(rec["tls"]["sni"], "c2.example.net");
        assert_eq!(rec["portolan"]["port_mismatch"], true, "{kind}");
        assert_eq!(rec["portolan"]["proxy"]["kind"], kind);
        assert_eq!(rec["portolan"]["proxy"]["port"], 50443);
        assert_eq!(rec["portolan"]["proxy"]["established"], true);
    }
    let rec = whole(&socks5(443));
    assert_eq!(rec["portolan"]["port_mismatch"], false);
}

#[test]
fn a_refused_connect_keeps_the_proxy_label_and_port() {
    let mut exchange = http_connect(50443, "403 Forbidden");
    exchange.truncate(2);
    let rec = whole(&exchange);
    assert_eq!(rec["app_proto"], "http");
    assert_eq!(rec["portolan"]["proxy"]["established"], false);
    assert_eq!(rec["portolan"]["proxy"]["port"], 50443);
    // http on 3128 is judged on 3128 (not a registered http port).
    assert_eq!(rec["portolan"]["port_mismatch"], true);
    assert!(rec["portolan"]["indicators"]
        .to_string()
        .contains("proxy.refused"));
    // SOCKS5 refusal (connection refused, 0x05).
    let mut s = socks5(50443);
    s[3].1 = b"\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00".to_vec();
    s.truncate(4);
    let rec = whole(&s);
    assert_eq!(rec["app_proto"], "socks");
    assert!(rec["portolan"]["indicators"]
        .to_string()
        .contains("proxy.refused"));
}

#[test]
fn a_malformed_reply_is_counted_and_not_a_tunnel() {
    let mut exchange = http_connect(50443, "200 OK");
    exchange[1].1 = b"\x16\x03\x03\x00\x02\x02\x00".to_vec();
    let rec = whole(&exchange);
    assert_eq!(rec["app_proto"], "http");
    assert!(rec["portolan"]["indicators"]
        .to_string()
        .contains("proxy.malformed"));
    assert_eq!(rec["portolan"]["proxy"]["established"], false);
}

#[test]
fn plain_flows_are_not_watched() {
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    flow.observe(&mut c, &ctx(true), &client_hello());
    assert!(flow.proxy().is_none());
    assert_eq!(flow.app_proto(), AppProto::Tls);
    assert_eq!(flow.judged_port(PROXY_PORT), PROXY_PORT);
}

fn exchanges() -> impl Strategy<Value = Exchange> {
    prop_oneof![
        Just(http_connect(50443, "200 Connection established")),
        Just(socks5(50443)),
        Just(socks4a(50443)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any segmentation of both directions (1-byte segments included) gives the record of the
    /// whole messages (the outer protocol's evidence names aside: a SOCKS greeting cut in two
    /// is recognised from the server's method choice instead).
    #[test]
    fn any_segmentation_gives_the_whole_record(
        exchange in exchanges(),
        cuts_c in prop::collection::vec(0usize..700, 0..24),
        cuts_s in prop::collection::vec(0usize..200, 0..12),
        one_byte_prefix in 0usize..80,
    ) {
        let mut cuts_c = cuts_c;
        cuts_c.extend(1..one_byte_prefix);
        let without_outer = |mut rec: Map<String, Value>| {
            let ind = rec["portolan"]["indicators"].take();
            let ind = ind.as_array().cloned().unwrap_or_default();
            let tunnel = ind.iter().position(|i| i == "proxy.tunnel");
            (rec, tunnel.map(|t| ind[t..].to_vec()))
        };
        let (expected, inner) = without_outer(whole(&exchange));
        prop_assert!(inner.is_some());
        prop_assert_eq!(without_outer(record_of(&exchange, &[cuts_c, cuts_s])), (expected, inner));
    }

    /// Hostile bytes in any position of a proxy exchange never panic, never swap the roles,
    /// and a tunnel is only ever reported with a target port.
    #[test]
    fn hostile_proxy_exchanges_never_panic(
        exchange in exchanges(),
        at in 0usize..4,
        junk in prop::collection::vec(any::<u8>(), 0..600),
        flip in any::<prop::sample::Index>(),
        x in any::<u8>(),
    ) {
        let mut exchange = exchange;
        let i = at.min(exchange.len() - 1);
        if !exchange[i].1.is_empty() {
            let k = flip.index(exchange[i].1.len());
            exchange[i].1[k] ^= x;
        }
        exchange.insert(i + 1, (i % 2 == 0, junk));
        let rec = whole(&exchange);
        if let Some(p) = rec.get("portolan").and_then(|p| p.get("proxy")) {
            prop_assert!(p["port"].as_u64().is_some_and(|port| port > 0));
            prop_assert!(["http_connect", "socks4", "socks5"].contains(&p["kind"].as_str().unwrap_or("")));
        }
    }
}

#[test]
fn proxy_kind_names() {
    assert_eq!(ProxyKind::HttpConnect.as_str(), "http_connect");
    assert_eq!(ProxyKind::Socks5.as_str(), "socks5");
}
