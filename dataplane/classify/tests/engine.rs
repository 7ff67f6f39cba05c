//! End-to-end tests of the engine over the real signature files and a real Hyperscan
//! database: decisions, reassembly, role swap, conflicts, STARTTLS, budgets, the database
//! cache, and the EVE output.

mod common;

use common::ctx;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use portolan_classify::{
    AppProto, AppRecord, CacheDir, Classifier, ClassifyConfig, CompiledSignatures, DatabaseSource,
    FlowClassification, CONFLICT_INDICATOR, STARTTLS_INDICATOR,
};
use portolan_model::Side;
use portolan_packet::Transport;
use portolan_testkit::{self as testkit, ClientHelloSpec};

fn compiled() -> Arc<CompiledSignatures> {
    let (sigs, _) = CompiledSignatures::load(
        &portolan_classify::source_signature_dir(),
        &CacheDir::Disabled,
    )
    .expect("the repository's signature files load");
    Arc::new(sigs)
}

fn classifier() -> Classifier {
    Classifier::new(compiled(), ClassifyConfig::default()).unwrap()
}

#[test]
fn flow_state_is_small() {
    // 32 bytes of decision state plus two 12-byte stream cursors (the reassembler's place in
    // each TCP direction) and the role flags.
    assert!(
        std::mem::size_of::<FlowClassification>() <= 64,
        "{} bytes",
        std::mem::size_of::<FlowClassification>()
    );
}

#[test]
fn tls_client_hello_split_over_two_segments_then_server_hello() {
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    let hello = testkit::tls_client_hello_record(&ClientHelloSpec::chrome_like("mdm.example.com"));
    let (a, b) = hello.split_at(100);
    let tcp_c = ctx(Transport::Tcp, true);
    assert_eq!(flow.observe(&mut c, &tcp_c, a), None);
    assert!(!flow.is_decided());
    let d = flow
        .observe(&mut c, &tcp_c, b)
        .expect("decided on the second segment");
    assert_eq!(d.app_proto, AppProto::Tls);
    assert!(!d.swap_roles);
    let tls = flow.tls().unwrap();
    assert_eq!(tls.sni.as_deref(), Some("mdm.example.com"));
    assert_eq!(
        tls.ja4.as_deref(),
        Some("t13d1516h2_8daaf6152771_d8a2da3f94cd")
    );

    let sh = testkit::tls_server_hello_record(0x1302, Some(0x0304));
    assert_eq!(flow.observe(&mut c, &ctx(Transport::Tcp, false), &sh), None);
    let tls = flow.tls().unwrap();
    assert_eq!(tls.server_cipher, Some(0x1302));
    assert_eq!(tls.version.as_deref(), Some("TLS 1.3"));
    assert_eq!(flow.indicators(), &["tls.client_hello", "tls.server_hello"]);

    let ports = c.signatures().port_registry();
    let rec = AppRecord::from_flow(&flow, &ports, Transport::Tcp, 8444).to_json_map();
    assert_eq!(rec["app_proto"], "tls");
    assert_eq!(rec["portolan"]["port_mismatch"], true);
    assert_eq!(rec["tls"]["sni"], "mdm.example.com");
    assert_eq!(
        rec["tls"]["ja3"]["hash"],
        "98487aa16281980e7d1120d399efb6a4"
    );
    assert_eq!(rec["tls"]["client_alpns"][0], "h2");
    let rec = AppRecord::from_flow(&flow, &ports, Transport::Tcp, 443).to_json_map();
    assert_eq!(rec["portolan"]["port_mismatch"], false);
}

#[test]
fn client_hello_from_the_server_side_swaps_roles() {
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    let hello = testkit::tls_client_hello_record(&ClientHelloSpec::minimal("swap.example"));
    let d = flow
        .observe(&mut c, &ctx(Transport::Tcp, false), &hello)
        .expect("decided");
    assert_eq!(d.app_proto, AppProto::Tls);
    assert!(d.swap_roles);
    // After the swap the worker passes from_client relative to the new roles: the real
    // server's ServerHello now comes from the server side.
    let sh = testkit::tls_server_hello_record(0xc02f, None);
    flow.observe(&mut c, &ctx(Transport::Tcp, false), &sh);
    assert_eq!(
        flow.tls().unwrap().server_version.as_deref(),
        Some("TLS 1.2")
    );
}

#[test]
fn http_request_and_response() {
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    let d = flow
        .observe(
            &mut c,
            &ctx(Transport::Tcp, true),
            b"GET /enroll HTTP/1.1\r\nHost: mdm.example\r\nUser-Agent: MDM/1.0 CFNetwork\r\n\r\n",
        )
        .unwrap();
    assert_eq!(d.app_proto, AppProto::Http);
    flow.observe(
        &mut c,
        &ctx(Transport::Tcp, false),
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    let rec = AppRecord::from_flow(&flow, &c.signatures().port_registry(), Transport::Tcp, 80)
        .to_json_map();
    assert_eq!(rec["http"]["hostname"], "mdm.example");
    assert_eq!(rec["http"]["http_user_agent"], "MDM/1.0 CFNetwork");
    assert_eq!(rec["http"]["status"], 200);
    assert_eq!(rec["portolan"]["port_mismatch"], false);
    assert_eq!(
        rec["portolan"]["indicators"],
        serde_json::json!(["http.request", "http.response"])
    );
}

#[test]
fn http_request_split_mid_header() {
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    let tcp = ctx(Transport::Tcp, true);
    assert_eq!(
        flow.observe(
            &mut c,
            &tcp,
            b"GET / HTTP/1.1\r\nHost: a.example\r\nUser-Agent: Moz"
        ),
        None
    );
    let d = flow.observe(&mut c, &tcp, b"illa/5.0\r\n\r\n").unwrap();
    assert_eq!(d.app_proto, AppProto::Http);
    assert_eq!(
        flow.http().unwrap().http_user_agent.as_deref(),
        Some("Mozilla/5.0")
    );
}

#[test]
fn quic_client_hello_over_two_datagrams() {
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    let hello = testkit::client_hello_message(&ClientHelloSpec::chrome_like("quic.example"));
    let mid = hello.len() / 2;
    let dcid = [0x42; 8];
    let d1 = testkit::quic_initial(1, &dcid, 0, &[(0, &hello[..mid])], 1200);
    let d2 = testkit::quic_initial(1, &dcid, 1, &[(mid as u64, &hello[mid..])], 1200);
    let udp = ctx(Transport::Udp, true);
    assert_eq!(flow.observe(&mut c, &udp, &d1), None);
    let d = flow.observe(&mut c, &udp, &d2).unwrap();
    assert_eq!(d.app_proto, AppProto::Quic);
    let q = flow.quic().unwrap();
    assert_eq!(q.sni.as_deref(), Some("quic.example"));
    assert_eq!(q.version.as_deref(), Some("v1"));
    let rec = AppRecord::from_flow(&flow, &c.signatures().port_registry(), Transport::Udp, 4433)
        .to_json_map();
    assert_eq!(
        rec["quic"]["extensions"],
        serde_json::json!([{"name": "alpn", "type": 16, "values": ["h2", "http/1.1"]}])
    );
    assert_eq!(rec["portolan"]["port_mismatch"], true);
}

#[test]
fn rfc_quic_vectors_through_the_engine() {
    for file in ["rfc9001_client_initial.hex", "rfc9369_client_initial.hex"] {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/vectors")
                .join(file),
        )
        .unwrap();
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        let pkt: Vec<u8> = digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect();
        let mut c = classifier();
        let mut flow = FlowClassification::default();
        let d = flow
            .observe(&mut c, &ctx(Transport::Udp, true), &pkt)
            .unwrap();
        assert_eq!(d.app_proto, AppProto::Quic, "{file}");
        assert_eq!(flow.quic().unwrap().sni.as_deref(), Some("example.com"));
    }
}

#[test]
fn random_bytes_give_up_as_unknown_within_budget() {
    let cfg = ClassifyConfig::default();
    let mut c = Classifier::new(compiled(), cfg).unwrap();
    let mut flow = FlowClassification::default();
    let junk: Vec<u8> = (0..700u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 | 0x80)
        .collect();
    let mut decision = None;
    for i in 0..(2 * cfg.max_packets) {
        if let Some(d) = flow.observe(&mut c, &ctx(Transport::Tcp, i % 2 == 0), &junk) {
            decision = Some(d);
            break;
        }
    }
    let d = decision.expect("gives up within the packet budget");
    assert_eq!(d.app_proto, AppProto::Unknown);
    assert!(!flow.wants_payload(&c));
    // Nothing changes after the final decision.
    let hello = testkit::tls_client_hello_record(&ClientHelloSpec::minimal("late.example"));
    assert_eq!(
        flow.observe(&mut c, &ctx(Transport::Tcp, true), &hello),
        None
    );
    assert_eq!(flow.app_proto(), AppProto::Unknown);
    let rec = AppRecord::from_flow(&flow, &c.signatures().port_registry(), Transport::Tcp, 443)
        .to_json_map();
    assert_eq!(rec["app_proto"], "unknown");
    assert!(!rec.contains_key("portolan"));
}

/// Writes signature files into a fresh directory.
fn signature_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

const HTTP_SIG: &str = r#"
name = "http"
transport = ["tcp"]
first_speaker = "client"
parser = "http"
[[pattern]]
direction = "client"
regex = '^GET '
"#;

/// A second file confirming the same bytes with the same parser: a deliberate conflict.
const RTSP_AS_HTTP_SIG: &str = r#"
name = "rtsp"
transport = ["tcp"]
first_speaker = "client"
parser = "http"
[[pattern]]
direction = "client"
regex = '^GET /'
"#;

#[test]
fn conflicting_confirmations_stay_unknown() {
    let dir = signature_dir(&[("http.toml", HTTP_SIG), ("rtsp.toml", RTSP_AS_HTTP_SIG)]);
    let (sigs, _) = CompiledSignatures::load(dir.path(), &CacheDir::Disabled).unwrap();
    let mut c = Classifier::new(Arc::new(sigs), ClassifyConfig::default()).unwrap();
    let mut flow = FlowClassification::default();
    let d = flow
        .observe(
            &mut c,
            &ctx(Transport::Tcp, true),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .unwrap();
    assert_eq!(d.app_proto, AppProto::Unknown);
    assert_eq!(flow.indicators(), &[CONFLICT_INDICATOR]);

    // With `overrides`, the more specific signature wins instead.
    let rtsp = RTSP_AS_HTTP_SIG.replace(
        "parser = \"http\"",
        "parser = \"http\"\noverrides = [\"http\"]",
    );
    let dir = signature_dir(&[("http.toml", HTTP_SIG), ("rtsp.toml", &rtsp)]);
    let (sigs, _) = CompiledSignatures::load(dir.path(), &CacheDir::Disabled).unwrap();
    let mut c = Classifier::new(Arc::new(sigs), ClassifyConfig::default()).unwrap();
    let mut flow = FlowClassification::default();
    let d = flow
        .observe(
            &mut c,
            &ctx(Transport::Tcp, true),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .unwrap();
    assert_eq!(d.app_proto, AppProto::Rtsp);
}

#[test]
fn smtp_starttls_keeps_app_proto_and_adds_indicator() {
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    let (cl, sv) = (ctx(Transport::Tcp, true), ctx(Transport::Tcp, false));
    let d = flow
        .observe(&mut c, &sv, b"220 mail.example.com ESMTP Postfix\r\n")
        .expect("the greeting decides smtp");
    assert_eq!(d.app_proto, AppProto::Smtp);
    flow.observe(&mut c, &cl, b"EHLO client.example\r\n");
    flow.observe(
        &mut c,
        &sv,
        b"250-mail.example.com\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
    );
    flow.observe(&mut c, &cl, b"STARTTLS\r\n");
    flow.observe(&mut c, &sv, b"220 2.0.0 Ready to start TLS\r\n");
    assert!(!flow.indicators().contains(&STARTTLS_INDICATOR));
    let hello = testkit::tls_client_hello_record(&ClientHelloSpec::minimal("mail.example.com"));
    let (a, b) = hello.split_at(40);
    flow.observe(&mut c, &cl, a);
    flow.observe(&mut c, &cl, b);
    assert_eq!(flow.app_proto(), AppProto::Smtp);
    assert!(
        flow.indicators().contains(&STARTTLS_INDICATOR),
        "{:?}",
        flow.indicators()
    );
    assert_eq!(flow.tls().unwrap().sni.as_deref(), Some("mail.example.com"));
    let rec = AppRecord::from_flow(&flow, &c.signatures().port_registry(), Transport::Tcp, 25)
        .to_json_map();
    assert_eq!(rec["app_proto"], "smtp");
    assert_eq!(rec["tls"]["sni"], "mail.example.com");
}

#[test]
fn database_cache_is_written_reused_and_repaired() {
    let cache = tempfile::tempdir().unwrap();
    let dir = portolan_classify::source_signature_dir();
    let cache_dir = CacheDir::Dir(cache.path().join("nested"));
    let (_, first) = CompiledSignatures::load(&dir, &cache_dir).unwrap();
    assert_eq!(first.source, DatabaseSource::Compiled);
    assert_eq!(first.cache_problem, None);
    let file: PathBuf = first.cache_file.clone().unwrap();
    assert!(file.exists());

    let (sigs, second) = CompiledSignatures::load(&dir, &cache_dir).unwrap();
    assert_eq!(second.source, DatabaseSource::Cache(file.clone()));
    // The cached database classifies like a fresh one.
    let mut c = Classifier::new(Arc::new(sigs), ClassifyConfig::default()).unwrap();
    let mut flow = FlowClassification::default();
    let hello = testkit::tls_client_hello_record(&ClientHelloSpec::minimal("cache.example"));
    assert_eq!(
        flow.observe(&mut c, &ctx(Transport::Tcp, true), &hello)
            .unwrap()
            .app_proto,
        AppProto::Tls
    );

    // A damaged cache file is detected, recompiled and rewritten.
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let (_, third) = CompiledSignatures::load(&dir, &cache_dir).unwrap();
    assert_eq!(third.source, DatabaseSource::Compiled);
    assert!(third.cache_problem.unwrap().contains("checksum"));
    let (_, fourth) = CompiledSignatures::load(&dir, &cache_dir).unwrap();
    assert_eq!(fourth.source, DatabaseSource::Cache(file));
}

#[test]
fn unwritable_cache_falls_back_to_compiling() {
    let blocker = tempfile::NamedTempFile::new().unwrap();
    // A regular file where the cache directory should be: create_dir_all fails.
    let cache_dir = CacheDir::Dir(blocker.path().join("sub"));
    let (_, report) =
        CompiledSignatures::load(&portolan_classify::source_signature_dir(), &cache_dir).unwrap();
    assert_eq!(report.source, DatabaseSource::Compiled);
    assert!(report.cache_problem.is_some());
}

#[test]
fn bad_regex_error_names_file_and_field() {
    let bad = HTTP_SIG.replace("regex = '^GET '", "regex = '^GET (('");
    let dir = signature_dir(&[("http.toml", &bad)]);
    let e = CompiledSignatures::load(dir.path(), &CacheDir::Disabled)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("http.toml") && e.contains("pattern[0].regex"),
        "{e}"
    );
}

/// A STUN Binding request (RFC 5389, with SOFTWARE and FINGERPRINT) or, with `response`, a
/// Binding success response with XOR-MAPPED-ADDRESS.
fn stun_binding(response: bool) -> Vec<u8> {
    let mut m = if response {
        vec![0x01, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42]
    } else {
        vec![0x00, 0x01, 0x00, 0x10, 0x21, 0x12, 0xa4, 0x42]
    };
    m.extend_from_slice(&[
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ]);
    if response {
        m.extend_from_slice(&[
            0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0x5e, 0x12, 0xa4, 0x43,
        ]);
    } else {
        m.extend_from_slice(&[0x80, 0x22, 0x00, 0x03, b'a', b'b', b'c', 0x00]);
        m.extend_from_slice(&[0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf]);
    }
    m
}

fn webrtc_dtls_hello(sni: &str) -> Vec<u8> {
    let mut spec = ClientHelloSpec::minimal(sni);
    spec.legacy_version = 0xfefd;
    spec.supported_versions.clear();
    spec.extensions.retain(|&t| t != 43);
    testkit::dtls_client_hello_record(&spec, None)
}

/// RTP (version 2, PCMU) as WebRTC sends it after the handshake (first byte 128..=191).
fn rtp() -> Vec<u8> {
    [
        &[
            0x80u8, 0x00, 0x1c, 0x2d, 0x00, 0x01, 0x5f, 0x90, 0x12, 0x34, 0x56, 0x78,
        ][..],
        &[0xd5; 160],
    ]
    .concat()
}

#[test]
fn dtls_after_stun_on_one_five_tuple_relabels_the_flow() {
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    let (cl, sv) = (ctx(Transport::Udp, true), ctx(Transport::Udp, false));
    let d = flow.observe(&mut c, &cl, &stun_binding(false)).unwrap();
    assert_eq!(d.app_proto, AppProto::Stun);
    assert_eq!(flow.observe(&mut c, &sv, &stun_binding(true)), None);
    assert_eq!(flow.observe(&mut c, &cl, &stun_binding(false)), None);
    assert_eq!(flow.app_proto(), AppProto::Stun);
    // The DTLS ClientHello: relabelled once, no role change.
    let d = flow
        .observe(&mut c, &cl, &webrtc_dtls_hello("webrtc.example"))
        .expect("the upgrade is reported");
    assert_eq!(
        (d.app_proto, d.swap_roles),
        (AppProto::Dtls, false),
        "{:?}",
        flow.indicators()
    );
    assert_eq!(flow.indicators(), &["stun.message", "dtls.client_hello"]);
    // After the upgrade the DTLS parser collects the ServerHello; STUN and RTP change nothing.
    assert_eq!(
        flow.observe(&mut c, &sv, &testkit::dtls_server_hello_record(0xc02b)),
        None
    );
    assert_eq!(flow.observe(&mut c, &sv, &stun_binding(true)), None);
    assert_eq!(flow.observe(&mut c, &cl, &rtp()), None);
    assert_eq!(flow.app_proto(), AppProto::Dtls);
    let tls = flow.tls().unwrap();
    assert_eq!(tls.sni.as_deref(), Some("webrtc.example"));
    assert_eq!(tls.server_version.as_deref(), Some("DTLS 1.2"));
    assert_eq!(tls.server_cipher, Some(0xc02b));
    let ports = c.signatures().port_registry();
    let rec = AppRecord::from_flow(&flow, &ports, Transport::Udp, 19305).to_json_map();
    assert_eq!(rec["app_proto"], "dtls");
    assert_eq!(
        rec["portolan"]["indicators"],
        serde_json::json!(["stun.message", "dtls.client_hello", "dtls.server_hello"])
    );
    assert_eq!(rec["tls"]["sni"], "webrtc.example");
    assert_eq!(rec["portolan"]["port_mismatch"], true);
    let rec = AppRecord::from_flow(&flow, &ports, Transport::Udp, 5349).to_json_map();
    assert_eq!(rec["portolan"]["port_mismatch"], false);
}

#[test]
fn dtls_hello_from_the_stun_server_side_also_upgrades_without_swapping() {
    // The DTLS client role is negotiated in SDP, not by who sent the first Binding request.
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    let (cl, sv) = (ctx(Transport::Udp, true), ctx(Transport::Udp, false));
    flow.observe(&mut c, &cl, &stun_binding(false)).unwrap();
    flow.observe(&mut c, &sv, &stun_binding(true));
    let d = flow
        .observe(&mut c, &sv, &webrtc_dtls_hello("peer.example"))
        .unwrap();
    assert_eq!((d.app_proto, d.swap_roles), (AppProto::Dtls, false));
}

#[test]
fn protected_dtls_records_after_stun_relabel_the_flow() {
    // WebRTC moving to another candidate pair: the DTLS handshake happened on the first
    // 5-tuple; this one carries STUN checks, then DTLS application data and SRTP.
    let mut app = vec![0x17, 0xfe, 0xfd, 0x00, 0x01, 0, 0, 0, 0, 0, 9, 0x02, 0x0c];
    app.extend((0..524u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8));
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    let (cl, sv) = (ctx(Transport::Udp, true), ctx(Transport::Udp, false));
    flow.observe(&mut c, &cl, &stun_binding(false)).unwrap();
    flow.observe(&mut c, &sv, &stun_binding(true));
    let d = flow.observe(&mut c, &sv, &app).expect("relabelled");
    assert_eq!((d.app_proto, d.swap_roles), (AppProto::Dtls, false));
    assert_eq!(flow.indicators(), &["stun.message", "dtls.records"]);
    assert!(flow.tls().is_none());
}

#[test]
fn stun_stays_stun_without_a_dtls_handshake() {
    let hello_tls = testkit::tls_client_hello_record(&ClientHelloSpec::minimal("x.example"));
    let junk: Vec<u8> = (0..300u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    // A DTLS record header whose length does not cover the datagram.
    let mut dtls_data = vec![0x17, 0xfe, 0xfd, 0x00, 0x01, 0, 0, 0, 0, 0, 1, 0x00, 0x20];
    dtls_data.extend_from_slice(&[0x99; 31]);
    // Other protocols' bytes, a broken DTLS record, random bytes.
    for later in [
        rtp(),
        hello_tls,
        junk,
        dtls_data,
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
    ] {
        let mut c = classifier();
        let mut flow = FlowClassification::default();
        let cl = ctx(Transport::Udp, true);
        flow.observe(&mut c, &cl, &stun_binding(false)).unwrap();
        for _ in 0..20 {
            assert_eq!(flow.observe(&mut c, &cl, &later), None);
        }
        assert_eq!(flow.app_proto(), AppProto::Stun);
        assert_eq!(flow.indicators(), &["stun.message"]);
        assert!(flow.tls().is_none());
    }
}

#[test]
fn the_upgrade_watch_is_bounded() {
    let cfg = ClassifyConfig::default();
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    let cl = ctx(Transport::Udp, true);
    flow.observe(&mut c, &cl, &stun_binding(false)).unwrap();
    for _ in 0..cfg.upgrade_packets {
        flow.observe(&mut c, &cl, &rtp());
    }
    // Past the watch a DTLS hello relabels nothing.
    assert_eq!(
        flow.observe(&mut c, &cl, &webrtc_dtls_hello("late.example")),
        None
    );
    assert_eq!(flow.app_proto(), AppProto::Stun);
}

#[test]
fn stun_over_tcp_is_not_watched_for_dtls() {
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    let cl = ctx(Transport::Tcp, true);
    flow.observe(&mut c, &cl, &stun_binding(false)).unwrap();
    assert_eq!(
        flow.observe(&mut c, &cl, &webrtc_dtls_hello("tcp.example")),
        None
    );
    assert_eq!(flow.app_proto(), AppProto::Stun);
}

const OPENSSH_CLIENT_KEX: &str =
    "sntrup761x25519-sha512@openssh.com,curve25519-sha256,ext-info-c,kex-strict-c-v00@openssh.com";
const OPENSSH_SERVER_KEX: &str =
    "sntrup761x25519-sha512@openssh.com,curve25519-sha256,kex-strict-s-v00@openssh.com";

#[test]
fn ssh_seen_from_the_server_banner_is_turned_round_by_the_kexinit() {
    // The capture starts after the TCP handshake with the server's banner: the first packet's
    // sender (the real server) is taken for the client.
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    let (first, second) = (ctx(Transport::Tcp, true), ctx(Transport::Tcp, false));
    let d = flow
        .observe(&mut c, &first, b"SSH-2.0-OpenSSH_9.6\r\n")
        .unwrap();
    assert_eq!((d.app_proto, d.swap_roles), (AppProto::Ssh, false));
    assert_eq!(
        flow.observe(&mut c, &second, b"SSH-2.0-PuTTY_Release_0.80\r\n"),
        None
    );
    // The real server's KEXINIT proves it is the server: swap.
    let d = flow
        .observe(&mut c, &first, &testkit::ssh_kexinit(OPENSSH_SERVER_KEX))
        .expect("the role proof is reported");
    assert_eq!((d.app_proto, d.swap_roles), (AppProto::Ssh, true));
    let ssh = flow.ssh().unwrap();
    assert_eq!(ssh.server_software.as_deref(), Some("OpenSSH_9.6"));
    assert_eq!(ssh.client_software.as_deref(), Some("PuTTY_Release_0.80"));
    assert_eq!(flow.indicators(), &["ssh.banner", "ssh.kexinit"]);
    // After the swap the worker passes from_client relative to the new roles; the client's
    // KEXINIT agrees, and a contradicting one later changes nothing (the roles are proven).
    let (cl, sv) = (ctx(Transport::Tcp, true), ctx(Transport::Tcp, false));
    assert_eq!(
        flow.observe(&mut c, &cl, &testkit::ssh_kexinit(OPENSSH_CLIENT_KEX)),
        None
    );
    assert_eq!(
        flow.observe(&mut c, &sv, &testkit::ssh_kexinit(OPENSSH_CLIENT_KEX)),
        None
    );
    let rec = AppRecord::from_flow(&flow, &c.signatures().port_registry(), Transport::Tcp, 22)
        .to_json_map();
    assert_eq!(rec["portolan"]["port_mismatch"], false);
    assert_eq!(rec["ssh"]["server"]["software_version"], "OpenSSH_9.6");
}

#[test]
fn ssh_banner_and_kexinit_in_the_first_segment_decide_with_the_right_roles() {
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    let mut first = b"SSH-2.0-OpenSSH_9.7\r\n".to_vec();
    first.extend_from_slice(&testkit::ssh_kexinit(OPENSSH_SERVER_KEX));
    let d = flow
        .observe(&mut c, &ctx(Transport::Tcp, true), &first)
        .unwrap();
    assert_eq!((d.app_proto, d.swap_roles), (AppProto::Ssh, true));
    assert_eq!(
        flow.ssh().unwrap().server_software.as_deref(),
        Some("OpenSSH_9.7")
    );
    assert_eq!(flow.indicators(), &["ssh.banner"]);
}

#[test]
fn ssh_roles_stay_without_proof_or_when_the_proof_agrees() {
    // Roles right (handshake seen): the client's KEXINIT agrees, nothing is reported.
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    let (cl, sv) = (ctx(Transport::Tcp, true), ctx(Transport::Tcp, false));
    flow.observe(&mut c, &sv, b"SSH-2.0-OpenSSH_9.6\r\n")
        .unwrap();
    flow.observe(&mut c, &cl, b"SSH-2.0-OpenSSH_9.6\r\n");
    assert_eq!(
        flow.observe(&mut c, &cl, &testkit::ssh_kexinit(OPENSSH_CLIENT_KEX)),
        None
    );
    assert_eq!(
        flow.observe(&mut c, &sv, &testkit::ssh_kexinit(OPENSSH_CLIENT_KEX)),
        None,
        "a later contradicting proof is ignored"
    );
    // No marker (older implementations): no proof, first-packet roles stay.
    let mut flow = FlowClassification::default();
    flow.observe(&mut c, &cl, b"SSH-2.0-OpenSSH_7.4\r\n")
        .unwrap();
    flow.observe(&mut c, &sv, b"SSH-2.0-OpenSSH_7.4\r\n");
    for from_client in [true, false] {
        let kex = testkit::ssh_kexinit("diffie-hellman-group14-sha1,diffie-hellman-group1-sha1");
        assert_eq!(
            flow.observe(&mut c, &ctx(Transport::Tcp, from_client), &kex),
            None
        );
    }
    assert_eq!(flow.indicators(), &["ssh.banner"]);
}

#[test]
fn gquic_rej_seen_only_from_the_server_decides_quic_with_the_roles_turned() {
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    // Only the server's side was captured: its first packet makes it the "client".
    let rej = testkit::gquic_server_handshake(b"REJ\0", b"Server");
    let d = flow
        .observe(&mut c, &ctx(Transport::Udp, true), &rej)
        .unwrap();
    assert_eq!((d.app_proto, d.swap_roles), (AppProto::Quic, true));
    assert_eq!(flow.indicators(), &["quic.gquic_rej"]);
    // A forged hash is not evidence: the flow gives up as unknown.
    let mut forged = rej.clone();
    forged[12] ^= 0xff;
    let mut flow = FlowClassification::default();
    let mut last = None;
    for _ in 0..16 {
        if let Some(d) = flow.observe(&mut c, &ctx(Transport::Udp, true), &forged) {
            last = Some(d);
            break;
        }
    }
    assert_eq!(last.map(|d| d.app_proto), Some(AppProto::Unknown));
}

#[test]
fn malformed_client_hello_confirms_tls_without_fingerprints() {
    let mut spec = ClientHelloSpec::minimal("www.example.it");
    spec.supported_versions.clear();
    spec.extensions.retain(|&t| t != 43);
    let mut hello = testkit::tls_client_hello_record(&spec);
    let at = 5 + 4 + 2 + 32 + 1 + 32;
    hello[at..at + 2].copy_from_slice(&0x0086u16.to_be_bytes());
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    let d = flow
        .observe(&mut c, &ctx(Transport::Tcp, true), &hello)
        .unwrap();
    assert_eq!(d.app_proto, AppProto::Tls);
    assert_eq!(flow.indicators(), &["tls.client_hello_malformed"]);
    assert!(flow.tls().is_none());
    let rec = AppRecord::from_flow(&flow, &c.signatures().port_registry(), Transport::Tcp, 443)
        .to_json_map();
    assert!(!rec.contains_key("tls"));
    assert_eq!(rec["portolan"]["port_mismatch"], false);
}

#[test]
fn mid_stream_tls_record_over_two_segments() {
    // `tls-appdata.pcap`: the capture starts mid-connection; the client's first record (1467
    // bytes) spans a 1452-byte and a 20-byte segment, the server's 16 KiB records never
    // complete within the byte budget.
    let mut record = vec![0x17, 0x03, 0x03, 0x05, 0xbb];
    record.extend((0..1467u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8));
    let mut big = vec![0x17, 0x03, 0x03, 0x32, 0xbe];
    big.extend((0..1447u32).map(|i| (i.wrapping_mul(40503) >> 7) as u8));
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    let (cl, sv) = (ctx(Transport::Tcp, true), ctx(Transport::Tcp, false));
    assert_eq!(flow.observe(&mut c, &cl, &record[..1452]), None);
    assert_eq!(flow.observe(&mut c, &sv, &big), None);
    let d = flow.observe(&mut c, &cl, &record[1452..]).unwrap();
    assert_eq!((d.app_proto, d.swap_roles), (AppProto::Tls, false));
    assert_eq!(flow.indicators(), &["tls.records"]);

    // A first segment that only looks like a record start, followed by bytes that put no
    // valid header where its length says, stays unknown.
    let mut flow = FlowClassification::default();
    let mut decision = None;
    let mut pkts = vec![record[..1452].to_vec(), vec![0x99; 30]];
    pkts.extend(std::iter::repeat_n(vec![0x99; 700], 14));
    for p in &pkts {
        if let Some(d) = flow.observe(&mut c, &cl, p) {
            decision = Some(d);
            break;
        }
    }
    assert_ne!(decision.map(|d| d.app_proto), Some(AppProto::Tls));
    assert_ne!(flow.app_proto(), AppProto::Tls);
}

/// `tls.toml` has `metadata_in_first_message`: once a direction's hello is read the decided
/// parser stops reading it, while a direction whose hello has not come yet (lost, reordered)
/// is still read within `max_packets`, so a late ServerHello is not missed.
#[test]
fn tls_directions_stop_after_their_hello_but_wait_for_a_late_one() {
    let mut c = classifier();
    let max = c.config().max_packets;
    let cl = ctx(Transport::Tcp, true);
    let sv = ctx(Transport::Tcp, false);
    let record = |n: u8| {
        let mut r = vec![0x17, 0x03, 0x03, 0x00, 0x20];
        r.extend([n; 0x20]);
        r
    };
    let mut flow = FlowClassification::default();
    let hello = testkit::tls_client_hello_record(&ClientHelloSpec::chrome_like("a.example.com"));
    assert!(flow.observe(&mut c, &cl, &hello).is_some());
    assert!(
        !flow.wants_payload_from(&c, Side::Client),
        "client hello read"
    );
    assert!(
        flow.wants_payload_from(&c, Side::Server),
        "server hello not yet"
    );
    // The server's first segments were lost: its encrypted records come first, then the
    // retransmitted ServerHello, which is still read.
    for n in 0..3 {
        flow.observe(&mut c, &sv, &record(n));
        assert!(flow.wants_payload_from(&c, Side::Server));
    }
    flow.observe(
        &mut c,
        &sv,
        &testkit::tls_server_hello_record(0x1302, Some(0x0304)),
    );
    assert_eq!(flow.tls().unwrap().server_cipher, Some(0x1302));
    assert_eq!(flow.indicators(), &["tls.client_hello", "tls.server_hello"]);
    assert!(!flow.wants_payload(&c), "both hellos read");

    // Without a ServerHello the server side is read up to the budget, not beyond.
    let mut flow = FlowClassification::default();
    flow.observe(&mut c, &cl, &hello);
    let mut read = 0;
    for n in 0..(2 * max) {
        if flow.wants_payload_from(&c, Side::Server) {
            read += 1;
            flow.observe(&mut c, &sv, &record(n as u8));
        }
    }
    assert_eq!(read, max);

    // Seen from the server side first (roles swapped at the decision): the flags follow the
    // roles, so the real client's side is the one still read.
    let mut flow = FlowClassification::default();
    let d = flow
        .observe(&mut c, &cl, &testkit::tls_server_hello_record(0xc02f, None))
        .unwrap();
    assert!(d.swap_roles);
    assert!(
        !flow.wants_payload_from(&c, Side::Server),
        "server hello read"
    );
    assert!(
        flow.wants_payload_from(&c, Side::Client),
        "client hello not yet"
    );
}

/// Feeds `packets` (from client?, payload) to two flows: one sees every packet, the other only
/// those `wants_payload_from` asks for (what the worker does). Their records must be equal.
fn same_record_when_skipping_unwanted_directions(
    packets: &[(bool, Vec<u8>)],
    transport: Transport,
    port: u16,
) -> serde_json::Map<String, serde_json::Value> {
    let mut c = classifier();
    let mut all = FlowClassification::default();
    let mut skipping = FlowClassification::default();
    let mut skipped = 0;
    for (from_client, payload) in packets {
        let cx = ctx(transport, *from_client);
        all.observe(&mut c, &cx, payload);
        if skipping.wants_payload_from(&c, Side::from_client(*from_client)) {
            skipping.observe(&mut c, &cx, payload);
        } else {
            skipped += 1;
        }
    }
    assert!(skipped > 0, "the test must exercise the skip");
    let ports = c.signatures().port_registry();
    let a = AppRecord::from_flow(&all, &ports, transport, port).to_json_map();
    let b = AppRecord::from_flow(&skipping, &ports, transport, port).to_json_map();
    assert_eq!(a, b);
    assert_eq!(all.indicators(), skipping.indicators());
    assert_eq!(all.app_proto(), skipping.app_proto());
    a
}

#[test]
fn skipping_directions_that_are_not_wanted_changes_nothing() {
    let bulk = |n: usize, from_client: bool| {
        (0..n).map(move |i| (from_client, vec![(i % 251) as u8; 1200]))
    };
    // TLS download: a few client packets, many server packets.
    let mut tls = vec![(
        true,
        testkit::tls_client_hello_record(&ClientHelloSpec::chrome_like("cdn.example.com")),
    )];
    tls.push((
        false,
        testkit::tls_server_hello_record(0x1301, Some(0x0304)),
    ));
    tls.extend(bulk(30, false));
    tls.extend(bulk(2, true));
    tls.extend(bulk(30, false));
    let rec = same_record_when_skipping_unwanted_directions(&tls, Transport::Tcp, 8443);
    assert_eq!(rec["tls"]["sni"], "cdn.example.com");

    // HTTP download on a non-standard port.
    let mut http = vec![(
        true,
        b"GET /a.bin HTTP/1.1\r\nHost: files.example.com\r\nUser-Agent: t\r\n\r\n".to_vec(),
    )];
    http.push((
        false,
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n".to_vec(),
    ));
    http.extend(bulk(40, false));
    let rec = same_record_when_skipping_unwanted_directions(&http, Transport::Tcp, 4444);
    assert_eq!(rec["app_proto"], "http");

    // SMTP whose server talks a lot before the client's STARTTLS: the watch must survive.
    let mut smtp = vec![(false, b"220 mail.example.com ESMTP\r\n".to_vec())];
    smtp.push((true, b"EHLO c.example\r\n".to_vec()));
    smtp.extend((0..12).map(|_| (false, b"250-X-EXTENSION\r\n".to_vec())));
    smtp.push((false, b"250 STARTTLS\r\n".to_vec()));
    smtp.push((true, b"STARTTLS\r\n".to_vec()));
    smtp.push((false, b"220 2.0.0 Ready to start TLS\r\n".to_vec()));
    smtp.push((
        true,
        testkit::tls_client_hello_record(&ClientHelloSpec::minimal("mail.example.com")),
    ));
    smtp.extend(bulk(30, false));
    smtp.extend(bulk(30, true));
    let rec = same_record_when_skipping_unwanted_directions(&smtp, Transport::Tcp, 2525);
    assert_eq!(rec["app_proto"], "smtp");
    assert_eq!(rec["tls"]["sni"], "mail.example.com");
}

#[test]
fn ldap_starttls_keeps_app_proto_and_adds_indicator() {
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    let (cl, sv) = (ctx(Transport::Tcp, true), ctx(Transport::Tcp, false));
    // ExtendedRequest (RFC 4511 4.12) with the StartTLS OID (RFC 4511 4.14.1), message ID 1.
    let oid = b"1.3.6.1.4.1.1466.20037";
    let mut req = vec![0x30, 0x1d, 0x02, 0x01, 0x01, 0x77, 0x18, 0x80, 0x16];
    req.extend_from_slice(oid);
    let d = flow
        .observe(&mut c, &cl, &req)
        .expect("the extended request decides ldap");
    assert_eq!(d.app_proto, AppProto::Ldap);
    // ExtendedResponse: success, empty DN and message.
    let resp = [
        0x30, 0x0c, 0x02, 0x01, 0x01, 0x78, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00,
    ];
    flow.observe(&mut c, &sv, &resp);
    let hello = testkit::tls_client_hello_record(&ClientHelloSpec::minimal("dc1.corp.example"));
    flow.observe(&mut c, &cl, &hello);
    assert_eq!(flow.app_proto(), AppProto::Ldap);
    assert!(
        flow.indicators().contains(&STARTTLS_INDICATOR),
        "{:?}",
        flow.indicators()
    );
    assert_eq!(flow.tls().unwrap().sni.as_deref(), Some("dc1.corp.example"));
}
