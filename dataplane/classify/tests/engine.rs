//! End-to-end tests of the engine over the real signature files and a real Hyperscan
//! database: decisions, reassembly, role swap, conflicts, STARTTLS, budgets, the database
//! cache, and the EVE output.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use portolan_classify::samples::{self, ClientHelloSpec};
use portolan_classify::{
    AppProto, AppRecord, CacheDir, Classifier, ClassifyConfig, CompiledSignatures, DatabaseSource,
    FlowClassification, ProbeContext, CONFLICT_INDICATOR, STARTTLS_INDICATOR,
};
use portolan_packet::Transport;

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

fn ctx(transport: Transport, from_client: bool) -> ProbeContext {
    ProbeContext {
        transport,
        from_client,
        client_port: 51000,
        server_port: 8443,
        packet_index: 0,
    }
}

#[test]
fn flow_state_is_small() {
    assert!(
        std::mem::size_of::<FlowClassification>() <= 32,
        "{} bytes",
        std::mem::size_of::<FlowClassification>()
    );
}

#[test]
fn tls_client_hello_split_over_two_segments_then_server_hello() {
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    let hello = samples::tls_client_hello_record(&ClientHelloSpec::chrome_like("mdm.example.com"));
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

    let sh = samples::tls_server_hello_record(0x1302, Some(0x0304));
    assert_eq!(flow.observe(&mut c, &ctx(Transport::Tcp, false), &sh), None);
    let tls = flow.tls().unwrap();
    assert_eq!(tls.server_cipher, Some(0x1302));
    assert_eq!(tls.version.as_deref(), Some("TLS 1.3"));
    assert_eq!(flow.indicators(), &["tls.client_hello", "tls.server_hello"]);

    let ports = c.signatures().port_registry();
    let rec = AppRecord::from_flow(&flow, &ports, Transport::Tcp, 8444).to_json_map();
    assert_eq!(rec["app_proto"], "tls");
    assert_eq!(rec["port_mismatch"], true);
    assert_eq!(rec["tls"]["sni"], "mdm.example.com");
    assert_eq!(
        rec["tls"]["ja3"]["hash"],
        "98487aa16281980e7d1120d399efb6a4"
    );
    assert_eq!(rec["tls"]["client_alpns"][0], "h2");
    let rec = AppRecord::from_flow(&flow, &ports, Transport::Tcp, 443).to_json_map();
    assert_eq!(rec["port_mismatch"], false);
}

#[test]
fn client_hello_from_the_server_side_swaps_roles() {
    let mut c = classifier();
    let mut flow = FlowClassification::default();
    let hello = samples::tls_client_hello_record(&ClientHelloSpec::minimal("swap.example"));
    let d = flow
        .observe(&mut c, &ctx(Transport::Tcp, false), &hello)
        .expect("decided");
    assert_eq!(d.app_proto, AppProto::Tls);
    assert!(d.swap_roles);
    // After the swap the worker passes from_client relative to the new roles: the real
    // server's ServerHello now comes from the server side.
    let sh = samples::tls_server_hello_record(0xc02f, None);
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
    assert_eq!(rec["port_mismatch"], false);
    assert_eq!(
        rec["indicators"],
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
    let hello = samples::client_hello_message(&ClientHelloSpec::chrome_like("quic.example"));
    let mid = hello.len() / 2;
    let dcid = [0x42; 8];
    let d1 = samples::quic_initial(1, &dcid, 0, &[(0, &hello[..mid])], 1200);
    let d2 = samples::quic_initial(1, &dcid, 1, &[(mid as u64, &hello[mid..])], 1200);
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
        rec["quic"]["client_alpns"],
        serde_json::json!(["h2", "http/1.1"])
    );
    assert_eq!(rec["port_mismatch"], true);
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
    let hello = samples::tls_client_hello_record(&ClientHelloSpec::minimal("late.example"));
    assert_eq!(
        flow.observe(&mut c, &ctx(Transport::Tcp, true), &hello),
        None
    );
    assert_eq!(flow.app_proto(), AppProto::Unknown);
    let rec = AppRecord::from_flow(&flow, &c.signatures().port_registry(), Transport::Tcp, 443)
        .to_json_map();
    assert_eq!(rec["app_proto"], "unknown");
    assert!(!rec.contains_key("port_mismatch"));
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
    let hello = samples::tls_client_hello_record(&ClientHelloSpec::minimal("mail.example.com"));
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
    let hello = samples::tls_client_hello_record(&ClientHelloSpec::minimal("cache.example"));
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
