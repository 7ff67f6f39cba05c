//! The bodies of `portolan-classify`'s fuzz targets, one function per target.
//!
//! Owns: what each target feeds to the parsers, the engine or the reassembler and the properties
//! it checks ([`TARGETS`] lists them by the name of their `fuzz_targets/*.rs` binary).
//! Must not: depend on libFuzzer: `dataplane/classify/tests/fuzz_corpus.rs` includes this file
//! in the normal `cargo test` (stable toolchain) and replays every committed seed
//! (`seeds/<target>/`) through the same functions.
//!
//! Run one target (nightly, from `dataplane/classify/fuzz/`):
//! `nice -n 19 cargo +nightly fuzz run tls corpus/tls seeds/tls -- -max_total_time=600`
//! (new inputs go to `corpus/`, which git ignores; `seeds/` is the committed, minimized set).

use std::sync::{Arc, OnceLock};

use portolan_classify::protocols::{http, quic, tls, PARSERS};
use portolan_classify::reassembly::{Reorder, ReorderPool, StreamCursor};
use portolan_classify::tunnel::{self as proxy, Parse, Step, TunnelWatch, MAX_HANDSHAKE_BYTES};
use portolan_classify::{
    CacheDir, Classifier, ClassifyConfig, CompiledSignatures, FlowClassification, ProbeContext,
    Side,
};
use portolan_packet::Transport;

/// A target: its binary's name and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("tls", tls),
    ("quic", quic),
    ("http", http),
    ("probe_all", probe_all),
    ("engine", engine),
    ("reassembly", reassembly),
    ("tunnel", tunnel),
];

/// The repository's signatures, compiled once per process.
fn signatures() -> &'static Arc<CompiledSignatures> {
    static SIGS: OnceLock<Arc<CompiledSignatures>> = OnceLock::new();
    SIGS.get_or_init(|| {
        let (s, _) = CompiledSignatures::load(
            &portolan_classify::source_signature_dir(),
            &CacheDir::Disabled,
        )
        .expect("signatures load");
        Arc::new(s)
    })
}

/// Fuzzes the `tls` parser: any bytes, both directions; it must not panic.
pub fn tls(data: &[u8]) {
    for sender in [Side::Client, Side::Server] {
        let ctx = ProbeContext::new(Transport::Tcp, 40000, 443).sent_by(sender);
        let _ = tls::probe(&ctx, data);
    }
}

/// Fuzzes the `quic` parser: any bytes, both directions; it must not panic.
pub fn quic(data: &[u8]) {
    for sender in [Side::Client, Side::Server] {
        let ctx = ProbeContext::new(Transport::Udp, 40000, 443).sent_by(sender);
        let _ = quic::probe(&ctx, data);
    }
}

/// Fuzzes the `http` parser: any bytes, both directions; it must not panic.
pub fn http(data: &[u8]) {
    for sender in [Side::Client, Side::Server] {
        let ctx = ProbeContext::new(Transport::Tcp, 40000, 443).sent_by(sender);
        let _ = http::probe(&ctx, data);
    }
}

/// Fuzzes every registered confirming parser (`protocols::PARSERS`) over the same input.
///
/// The first input byte chooses the probe context (transport, direction, packet index); the rest
/// is the payload. A parser must not panic, and must answer the same way twice (parsers are pure).
pub fn probe_all(input: &[u8]) {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    let transport = if selector & 1 == 0 {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let sender = if selector & 2 == 0 {
        Side::Client
    } else {
        Side::Server
    };
    let ctx = ProbeContext::new(transport, 49152, 443)
        .sent_by(sender)
        .at_packet(u32::from(selector >> 2));
    for (name, probe) in PARSERS {
        let first = probe(&ctx, data);
        let again = probe(&ctx, data);
        assert_eq!(first, again, "parser {name} is not deterministic");
    }
}

/// Fuzzes the whole engine: the input is split into packets (a length byte each, the top bit
/// of which gives the direction) fed to one flow over TCP and one over UDP.
pub fn engine(data: &[u8]) {
    let mut classifier =
        Classifier::new(Arc::clone(signatures()), ClassifyConfig::default()).expect("scratch");
    for transport in [Transport::Tcp, Transport::Udp] {
        let mut flow = FlowClassification::default();
        let mut rest = data;
        while let Some((&head, tail)) = rest.split_first() {
            let len = usize::from(head & 0x7f) * 16;
            let (pkt, next) = tail.split_at(len.min(tail.len()));
            rest = next;
            let ctx = ProbeContext::new(transport, 40000, 443).sent_by(if head & 0x80 == 0 {
                Side::Client
            } else {
                Side::Server
            });
            let _ = flow.observe(&mut classifier, &ctx, pkt);
        }
    }
}

const BASE: u32 = u32::MAX - 300; // the stream wraps inside the budget

fn segments(mut data: &[u8]) -> Vec<(u32, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 3 {
        let off = u32::from(u16::from_be_bytes([data[0], data[1]])) % 1024;
        let len = usize::from(data[2]) % 96;
        let rest = &data[3..];
        let (seg, next) = rest.split_at(len.min(rest.len()));
        out.push((BASE.wrapping_add(off).wrapping_sub(64), seg));
        data = next;
    }
    out
}

/// Fuzzes the TCP stream reassembler: the input is a list of segments (a 2-byte sequence offset,
/// a length byte, then the bytes) placed on one direction with a small budget and pool, then the
/// same segments fed through the engine's `observe_segment` on both directions. Checks: no
/// panic, the delivered stream is exactly as long as the cursor says, every delivered byte is
/// the first copy that reached the reassembler at that offset when the direction never dropped
/// a segment, and every pool buffer comes back.
pub fn reassembly(data: &[u8]) {
    let segs = segments(data);
    let budget = 512u32;
    let mut pool = ReorderPool::new(1, budget as usize);
    let mut cursor = StreamCursor::default();
    cursor.on_syn(BASE.wrapping_sub(1));
    let mut held = None;
    let mut stream = Vec::new();
    // First copy of each offset that reached the reassembler (offsets inside the budget).
    let mut first: Vec<Option<u8>> = vec![None; budget as usize];
    for &(seq, seg) in &segs {
        let before = pool.stats.reorder_drops;
        let mut r = Reorder {
            cursor: &mut cursor,
            held: &mut held,
        };
        let d = r.place(&mut pool, budget, seq, seg);
        let run = r.held_bytes(d.held).to_vec();
        assert_eq!(run.len() as u32, d.held.1 - d.held.0);
        stream.extend_from_slice(&run);
        stream.extend_from_slice(&seg[d.direct.0..d.direct.1]);
        if pool.stats.reorder_drops == before {
            let rel = seq.wrapping_sub(BASE) as i32;
            for (i, &b) in seg.iter().enumerate() {
                let at = rel as i64 + i as i64;
                if (0..i64::from(budget)).contains(&at) {
                    first[at as usize].get_or_insert(b);
                }
            }
        }
    }
    if pool.stats.reorder_drops == 0 && pool.stats.gaps_skipped == 0 {
        assert_eq!(stream.len() as u32, cursor.delivered());
        for (at, b) in stream.iter().enumerate().take(budget as usize) {
            if let Some(f) = first[at] {
                assert_eq!(*b, f, "offset {at} is not the first copy");
            }
        }
    }
    Reorder {
        cursor: &mut cursor,
        held: &mut held,
    }
    .release(&mut pool);
    assert_eq!(pool.available(), 1);

    // The same segments through the engine, alternating directions.
    let mut classifier = Classifier::new(
        Arc::clone(signatures()),
        ClassifyConfig {
            reorder_buffers: 1,
            ..ClassifyConfig::default()
        },
    )
    .expect("scratch");
    let mut flow = FlowClassification::default();
    flow.observe_syn(Side::Client, BASE.wrapping_sub(1));
    for (i, &(seq, seg)) in segs.iter().enumerate() {
        let ctx = ProbeContext::new(Transport::Tcp, 40000, 443).sent_by(if i % 3 != 2 {
            Side::Client
        } else {
            Side::Server
        });
        let _ = flow.observe_segment(&mut classifier, &ctx, seq, seg);
    }
    flow.release(&mut classifier);
}

fn tunnel_chunks(mut data: &[u8]) -> Vec<(bool, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 2 {
        let from_client = data[0] & 1 == 0;
        let len = usize::from(data[1]);
        let rest = &data[2..];
        let (chunk, next) = rest.split_at(len.min(rest.len()));
        out.push((from_client, chunk));
        data = next;
    }
    out
}

fn tunnel_used<T>(p: Parse<T>, len: usize) {
    if let Parse::Done(_, n) = p {
        assert!(n >= 1 && n <= len, "used {n} of {len}");
    }
}

/// Fuzzes the explicit-proxy watch (`portolan_classify::tunnel`): the input is a list of chunks
/// (a direction bit and a length byte, then the bytes), fed to every wire parser alone and to a
/// `TunnelWatch` started on the first client chunk. Checks: no panic; a parser that reports a
/// whole message used at least one byte and no more than it was given; a watch never reports a
/// step after its last one, and an opened tunnel always has a target with a non-zero port and
/// hands over no more than the bound per direction.
pub fn tunnel(data: &[u8]) {
    tunnel_used(proxy::http_connect_request(data), data.len());
    tunnel_used(proxy::http_reply(data), data.len());
    tunnel_used(proxy::socks4_request(data), data.len());
    tunnel_used(proxy::socks4_reply(data), data.len());
    tunnel_used(proxy::socks5_greeting(data), data.len());
    tunnel_used(proxy::socks5_method(data), data.len());
    tunnel_used(proxy::socks5_auth(data), data.len());
    tunnel_used(proxy::socks5_auth_reply(data), data.len());
    tunnel_used(proxy::socks5_request(data), data.len());
    tunnel_used(proxy::socks5_reply(data), data.len());

    let chunks = tunnel_chunks(data);
    let Some(first) = chunks.iter().find(|(c, b)| *c && !b.is_empty()) else {
        return;
    };
    let Some(mut watch) = TunnelWatch::start(first.1) else {
        return;
    };
    for (from_client, bytes) in &chunks {
        match watch.feed(Side::from_client(*from_client), bytes) {
            Step::Watching => continue,
            Step::Open => {
                let ([c, s], target) = watch.take_inner();
                let target = target.expect("an open tunnel has a target");
                assert!(target.port > 0 && target.established);
                assert!(c.len() <= MAX_HANDSHAKE_BYTES && s.len() <= MAX_HANDSHAKE_BYTES);
                return;
            }
            Step::Refused | Step::Malformed | Step::Abandoned => return,
        }
    }
}
