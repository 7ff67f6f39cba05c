//! Traffic shaped the way a careless or hostile sender shapes it, through the classifying
//! worker (real signatures, real Hyperscan, frames fed through `Worker::process_frame`): a
//! ClientHello in 24-byte and 1-byte segments, a post-quantum ClientHello in two segments sent
//! in reverse order, retransmissions that disagree with the first copy, and parsers that claim
//! the roles the other way round on a flow whose handshake was seen. Each checks the flow
//! record's `app_proto`, roles (src = the SYN sender), SNI and JA4; a property test checks that
//! any segmentation and order within the reorder bound gives the record of one segment.

mod common;

use common::{classifier_parts, feed, frame, observer, tcp_frame_at};
use portolan_classify::{CompiledSignatures, PortRegistry};
use portolan_dataplane::worker::StopCause;
use portolan_dataplane::worker::WorkerCounters;
use portolan_dataplane::{ClassificationReport, PacketObserver, Worker, WorkerConfig};
use portolan_flow::eve::FlowRecord;
use portolan_packet::DropReason;
use portolan_packet::LinkType;
use portolan_testkit::{
    ipv4_fragments, ipv6_fragments, ssh_kexinit, tls_client_hello_record,
    tls_pq_client_hello_record, tls_server_hello_record, ClientHelloSpec, Frame,
};
use proptest::prelude::*;
use std::net::Ipv6Addr;
use std::sync::{Arc, OnceLock};

const TS0: u64 = 1_700_000_000_000_000;
const CLIENT: ([u8; 4], u16) = ([10, 0, 0, 7], 50123);
const SERVER: ([u8; 4], u16) = ([203, 0, 113, 9], 50443);
const ISN_C: u32 = 0xffff_ff00; // wraps inside the hello
const ISN_S: u32 = 77_000;

fn parts() -> &'static (Arc<CompiledSignatures>, Arc<PortRegistry>) {
    static PARTS: OnceLock<(Arc<CompiledSignatures>, Arc<PortRegistry>)> = OnceLock::new();
    PARTS.get_or_init(classifier_parts)
}

/// Runs `frames` through a fresh classifying worker; returns the flow records and the counters.
fn run(frames: &[Vec<u8>]) -> (Vec<FlowRecord>, ClassificationReport) {
    let (records, report, _) = run_counted(frames);
    (records, report)
}

/// [`run`], with the worker's counters too.
fn run_counted(frames: &[Vec<u8>]) -> (Vec<FlowRecord>, ClassificationReport, WorkerCounters) {
    let (sigs, ports) = parts();
    let mut w = Worker::new(
        WorkerConfig::new(LinkType::Ethernet),
        observer(sigs, ports, None),
    )
    .expect("worker");
    let mut t = TS0;
    feed(&mut w, frames, &mut t);
    let mut flows = Vec::new();
    let out = w.finish(&mut flows, StopCause::EndOfInput);
    let records = flows
        .iter()
        .map(|f| {
            let mut rec = FlowRecord::from_flow(f);
            out.observer.describe(f, &mut rec);
            rec
        })
        .collect();
    (records, out.observer.report(), out.counters)
}

/// The handshake, then the client's segments (offset into its stream, bytes) in the given order,
/// then the server's hello and the close.
fn tls_session(client_segments: &[(u32, Vec<u8>)], client_bytes: u32) -> Vec<Vec<u8>> {
    let server_hello = tls_server_hello_record(0x1301, Some(0x0304));
    let sh_len = server_hello.len() as u32;
    let mut frames = vec![
        tcp_frame_at(CLIENT, SERVER, 0x02, ISN_C, &[]),
        tcp_frame_at(SERVER, CLIENT, 0x12, ISN_S, &[]),
        tcp_frame_at(CLIENT, SERVER, 0x10, ISN_C.wrapping_add(1), &[]),
    ];
    for (off, bytes) in client_segments {
        frames.push(tcp_frame_at(
            CLIENT,
            SERVER,
            0x18,
            ISN_C.wrapping_add(1).wrapping_add(*off),
            bytes,
        ));
    }
    frames.push(tcp_frame_at(SERVER, CLIENT, 0x18, ISN_S + 1, &server_hello));
    frames.push(tcp_frame_at(
        CLIENT,
        SERVER,
        0x11,
        ISN_C.wrapping_add(1).wrapping_add(client_bytes),
        &[],
    ));
    frames.push(tcp_frame_at(SERVER, CLIENT, 0x11, ISN_S + 1 + sh_len, &[]));
    frames
}

/// `bytes` cut into segments of `size`, in order.
fn segments(bytes: &[u8], size: usize) -> Vec<(u32, Vec<u8>)> {
    bytes
        .chunks(size)
        .enumerate()
        .map(|(i, c)| ((i * size) as u32, c.to_vec()))
        .collect()
}

/// The one record of `frames`.
fn one_record(frames: &[Vec<u8>]) -> (FlowRecord, ClassificationReport) {
    let (mut records, report) = run(frames);
    assert_eq!(records.len(), 1, "one flow");
    (records.remove(0), report)
}

/// What the analyst reads about the flow: protocol, roles and the app-layer fields.
fn verdict(rec: &FlowRecord) -> serde_json::Value {
    serde_json::json!({
        "app_proto": rec.app_proto,
        "src": format!("{}:{}", rec.src_ip, rec.src_port),
        "dest": format!("{}:{}", rec.dest_ip, rec.dest_port),
        "app": rec.app,
    })
}

fn assert_client_hello_seen(rec: &FlowRecord, hello_spec_sni: &str) {
    assert_eq!(rec.app_proto, "tls", "{}", verdict(rec));
    assert_eq!(
        (rec.src_ip.to_string(), rec.src_port),
        ("10.0.0.7".to_string(), CLIENT.1),
        "src is the SYN sender"
    );
    assert_eq!(rec.dest_port, SERVER.1);
    assert_eq!(rec.app["tls"]["sni"], hello_spec_sni);
    assert_eq!(rec.app["portolan"]["port_mismatch"], true);
}

#[test]
fn a_client_hello_in_24_byte_segments_is_identified_with_sni_and_ja4() {
    let hello = tls_client_hello_record(&ClientHelloSpec::chrome_like("c2.example.net"));
    let (whole, _) = one_record(&tls_session(&[(0, hello.clone())], hello.len() as u32));
    let (split, report) = one_record(&tls_session(&segments(&hello, 24), hello.len() as u32));
    assert_client_hello_seen(&split, "c2.example.net");
    assert_eq!(
        split.app["tls"]["ja4"], "t13d1516h2_8daaf6152771_d8a2da3f94cd",
        "the published JA4 of the Chrome-like hello"
    );
    assert_eq!(verdict(&split), verdict(&whole));
    assert!(
        hello.len() / 24 > 8,
        "more segments than the old packet budget"
    );
    assert_eq!(report.reassembly_drops, 0);
}

#[test]
fn a_client_hello_in_1_byte_segments_fills_the_byte_budget_and_is_identified() {
    let hello = tls_client_hello_record(&ClientHelloSpec::chrome_like("one.example.net"));
    let (rec, _) = one_record(&tls_session(&segments(&hello, 1), hello.len() as u32));
    assert_client_hello_seen(&rec, "one.example.net");
    assert_eq!(
        rec.app["tls"]["ja4"],
        "t13d1516h2_8daaf6152771_d8a2da3f94cd"
    );
}

#[test]
fn a_post_quantum_client_hello_in_two_reversed_segments_is_identified() {
    let hello = tls_pq_client_hello_record(&ClientHelloSpec::chrome_like("pq.example.net"));
    assert!(hello.len() > 1448, "{} bytes: two segments", hello.len());
    let mut segs = segments(&hello, 1448);
    assert_eq!(segs.len(), 2);
    segs.reverse();
    let (rec, report) = one_record(&tls_session(&segs, hello.len() as u32));
    assert_client_hello_seen(&rec, "pq.example.net");
    let (whole, _) = one_record(&tls_session(&[(0, hello.clone())], hello.len() as u32));
    assert_eq!(rec.app["tls"]["ja4"], whole.app["tls"]["ja4"]);
    assert_eq!(verdict(&rec), verdict(&whole));
    assert_eq!(
        report.reassembly_held, 1,
        "the second half waited for the first"
    );
}

#[test]
fn a_retransmission_with_other_bytes_keeps_the_first_copy_and_is_flagged() {
    let hello = tls_client_hello_record(&ClientHelloSpec::chrome_like("first.example.net"));
    let mut segs = segments(&hello, 100);
    // The third segment first, then a forged copy of it (SNI area rewritten), then the rest.
    let third = segs.remove(2);
    let mut forged = third.clone();
    forged.1.iter_mut().for_each(|b| *b ^= 0x20);
    segs.insert(0, forged.clone());
    segs.insert(0, third);
    let (rec, report) = one_record(&tls_session(&segs, hello.len() as u32));
    assert_client_hello_seen(&rec, "first.example.net");
    let indicators = rec.app["portolan"]["indicators"].to_string();
    assert!(indicators.contains("tcp.overlap_mismatch"), "{indicators}");
    assert_eq!(report.reassembly_overlap_mismatches, 1);
}

#[test]
fn out_of_order_segments_past_the_bound_are_dropped_and_counted() {
    let hello = tls_client_hello_record(&ClientHelloSpec::chrome_like("bound.example.net"));
    // Every other 8-byte segment first: far more disjoint ranges than one direction may hold.
    let segs = segments(&hello, 8);
    let mut order: Vec<(u32, Vec<u8>)> = segs.iter().skip(1).step_by(2).cloned().collect();
    order.extend(segs.iter().step_by(2).cloned());
    let (_, report) = one_record(&tls_session(&order, hello.len() as u32));
    assert!(report.reassembly_drops > 0, "{report:?}");
}

#[test]
fn a_server_kexinit_with_the_client_marker_does_not_flip_a_flow_whose_syn_was_seen() {
    let (c, s) = (([10, 0, 0, 7], 50200), ([203, 0, 113, 20], 8022));
    let frames = vec![
        frame(c, s, true, 0x02, &[]),
        frame(s, c, true, 0x12, &[]),
        frame(c, s, true, 0x10, &[]),
        frame(s, c, true, 0x18, b"SSH-2.0-OpenSSH_9.6\r\n"),
        frame(c, s, true, 0x18, b"SSH-2.0-OpenSSH_9.7\r\n"),
        // The server advertises the client's extension-negotiation marker.
        frame(
            s,
            c,
            true,
            0x18,
            &ssh_kexinit("curve25519-sha256,ext-info-c"),
        ),
        frame(
            c,
            s,
            true,
            0x18,
            &ssh_kexinit("curve25519-sha256,kex-strict-s-v00@openssh.com"),
        ),
    ];
    let (rec, _) = one_record(&frames);
    assert_eq!(rec.app_proto, "ssh");
    assert_eq!(
        (rec.src_ip.to_string(), rec.src_port),
        ("10.0.0.7".to_string(), 50200),
        "the SYN sender stays the client"
    );
    let indicators = rec.app["portolan"]["indicators"].to_string();
    assert!(indicators.contains("roles.conflict"), "{indicators}");
}

#[test]
fn a_client_hello_from_the_syn_ack_side_does_not_flip_the_roles() {
    let (c, s) = (([10, 0, 0, 7], 50300), ([203, 0, 113, 30], 4433));
    let hello = tls_client_hello_record(&ClientHelloSpec::chrome_like("reverse.example.net"));
    let frames = vec![
        frame(c, s, true, 0x02, &[]),
        frame(s, c, true, 0x12, &[]),
        frame(c, s, true, 0x10, &[]),
        frame(s, c, true, 0x18, &hello),
    ];
    let (rec, _) = one_record(&frames);
    assert_eq!(rec.app_proto, "tls");
    assert_eq!(
        (rec.src_ip.to_string(), rec.src_port),
        ("10.0.0.7".to_string(), 50300)
    );
    let indicators = rec.app["portolan"]["indicators"].to_string();
    assert!(indicators.contains("roles.conflict"), "{indicators}");
}

#[test]
fn a_flow_whose_start_was_not_seen_still_takes_its_roles_from_the_parser() {
    let (c, s) = (([10, 0, 0, 7], 50400), ([203, 0, 113, 40], 4433));
    let hello = tls_client_hello_record(&ClientHelloSpec::chrome_like("midstream.example.net"));
    // Picked up mid-stream: the server's hello is the first packet seen, then the client's.
    let frames = vec![
        frame(
            s,
            c,
            true,
            0x18,
            &tls_server_hello_record(0x1301, Some(0x0304)),
        ),
        frame(c, s, true, 0x18, &hello),
    ];
    let (rec, _) = one_record(&frames);
    assert_eq!(rec.app_proto, "tls");
    assert_eq!(
        (rec.src_ip.to_string(), rec.src_port),
        ("10.0.0.7".to_string(), 50400)
    );
    assert!(!rec.app["portolan"]["indicators"]
        .to_string()
        .contains("roles.conflict"));
}

/// A segmentation of `len` bytes: sorted cut points → (offset, length) pieces.
fn pieces(len: usize, cuts: &[usize]) -> Vec<(usize, usize)> {
    let mut points: Vec<usize> = cuts.iter().map(|c| 1 + c % (len - 1)).collect();
    points.push(0);
    points.push(len);
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| (w[0], w[1] - w[0])).collect()
}

fn reference() -> &'static (Vec<u8>, serde_json::Value) {
    static R: OnceLock<(Vec<u8>, serde_json::Value)> = OnceLock::new();
    R.get_or_init(|| {
        let hello = tls_pq_client_hello_record(&ClientHelloSpec::chrome_like("prop.example.net"));
        let (rec, _) = one_record(&tls_session(&[(0, hello.clone())], hello.len() as u32));
        (hello, verdict(&rec))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any split into at most 9 segments, any order (at most 8 segments ever wait, the bound),
    /// plus retransmissions of whole segments and overlapping copies of the same bytes, gives
    /// the record of the hello in one segment.
    #[test]
    fn any_segmentation_order_and_duplication_gives_the_one_segment_record(
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        order in Just(()).prop_perturb(|_, mut rng| {
            let mut v: Vec<usize> = (0..9).collect();
            for i in (1..v.len()).rev() {
                let j = (rng.next_u32() as usize) % (i + 1);
                v.swap(i, j);
            }
            v
        }),
        dups in proptest::collection::vec((any::<usize>(), any::<usize>()), 0..3),
        overlaps in proptest::collection::vec((any::<usize>(), 1usize..600), 0..3),
    ) {
        let (hello, expected) = reference();
        let ps = pieces(hello.len(), &cuts);
        let mut segs: Vec<(u32, Vec<u8>)> = order
            .iter()
            .filter(|&&i| i < ps.len())
            .map(|&i| (ps[i].0 as u32, hello[ps[i].0..ps[i].0 + ps[i].1].to_vec()))
            .collect();
        for (which, at) in dups {
            let s = segs[which % segs.len()].clone();
            let at = at % (segs.len() + 1);
            segs.insert(at, s);
        }
        for (start, len) in overlaps {
            let start = start % hello.len();
            let end = (start + len).min(hello.len());
            let at = segs.len() / 2;
            segs.insert(at, (start as u32, hello[start..end].to_vec()));
        }
        let (rec, report) = one_record(&tls_session(&segs, hello.len() as u32));
        prop_assert_eq!(&verdict(&rec), expected);
        prop_assert_eq!(report.reassembly_drops, 0);
        prop_assert_eq!(report.reassembly_overlap_mismatches, 0);
    }
}

// ---- IP fragments -------------------------------------------------------------------------

/// An Ethernet + IPv6 + TCP frame.
fn ipv6_tcp_frame(
    src: ([u8; 16], u16),
    dst: ([u8; 16], u16),
    flags: u8,
    seq: u32,
    payload: &[u8],
) -> Vec<u8> {
    let (s, d) = (Ipv6Addr::from(src.0), Ipv6Addr::from(dst.0));
    Frame::tcp((s, src.1), (d, dst.1), flags)
        .seq(seq)
        .ack(1)
        .build(payload)
}

/// The TLS session with the client's hello carried in `hello_frames` (already built).
fn session_with_hello_frames(hello_frames: Vec<Vec<u8>>, hello_len: u32) -> Vec<Vec<u8>> {
    let mut frames = tls_session(&[], 0);
    // tls_session(&[], 0) = SYN, SYN-ACK, ACK, server hello, FIN, FIN: the hello goes after
    // the ACK, and the client's FIN after it.
    frames.truncate(3);
    frames.extend(hello_frames);
    let server_hello = tls_server_hello_record(0x1301, Some(0x0304));
    frames.push(tcp_frame_at(SERVER, CLIENT, 0x18, ISN_S + 1, &server_hello));
    frames.push(tcp_frame_at(
        CLIENT,
        SERVER,
        0x11,
        ISN_C.wrapping_add(1).wrapping_add(hello_len),
        &[],
    ));
    frames
}

#[test]
fn a_client_hello_in_ipv4_fragments_is_identified_in_every_order() {
    let hello = tls_pq_client_hello_record(&ClientHelloSpec::chrome_like("frag.example.net"));
    let whole = tcp_frame_at(CLIENT, SERVER, 0x18, ISN_C.wrapping_add(1), &hello);
    let (reference, _) = one_record(&session_with_hello_frames(
        vec![whole.clone()],
        hello.len() as u32,
    ));
    assert_client_hello_seen(&reference, "frag.example.net");
    let frags = ipv4_fragments(&whole, &[512, 1024], 0x4242);
    assert_eq!(frags.len(), 3);
    for order in [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ] {
        let frames: Vec<Vec<u8>> = order.iter().map(|&i| frags[i].clone()).collect();
        let (mut recs, _, counters) =
            run_counted(&session_with_hello_frames(frames, hello.len() as u32));
        assert_eq!(recs.len(), 1, "{order:?}");
        let rec = recs.remove(0);
        assert_eq!(verdict(&rec), verdict(&reference), "{order:?}");
        assert_eq!(counters.defrag.reassembled, 1);
        assert_eq!(counters.defrag.fragments, 3);
        assert_eq!(counters.dropped(), 0, "{order:?}");
        assert_eq!(
            counters.decoded, counters.packets,
            "every frame accounted once"
        );
    }
}

#[test]
fn a_client_hello_in_reversed_ipv6_fragments_is_identified() {
    let c6 = (
        [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7],
        50600,
    );
    let s6 = (
        [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
        50443,
    );
    let hello = tls_pq_client_hello_record(&ClientHelloSpec::chrome_like("frag6.example.net"));
    let whole = ipv6_tcp_frame(c6, s6, 0x18, 1001, &hello);
    let mut frags = ipv6_fragments(&whole, &[1232], 0x0101_0101);
    frags.reverse();
    let mut frames = vec![
        ipv6_tcp_frame(c6, s6, 0x02, 1000, &[]),
        ipv6_tcp_frame(s6, c6, 0x12, 5000, &[]),
        ipv6_tcp_frame(c6, s6, 0x10, 1001, &[]),
    ];
    frames.extend(frags);
    let (rec, _, counters) = {
        let (mut r, rep, c) = run_counted(&frames);
        assert_eq!(r.len(), 1);
        (r.remove(0), rep, c)
    };
    assert_eq!(rec.app_proto, "tls");
    assert_eq!(rec.src_port, 50600);
    assert_eq!(rec.app["tls"]["sni"], "frag6.example.net");
    assert_eq!(counters.defrag.reassembled, 1);
    assert_eq!(counters.dropped(), 0);
}

#[test]
fn overlapping_and_tiny_first_fragments_are_dropped_or_counted() {
    let hello = tls_client_hello_record(&ClientHelloSpec::chrome_like("tiny.example.net"));
    let whole = tcp_frame_at(CLIENT, SERVER, 0x18, ISN_C.wrapping_add(1), &hello);
    // A first fragment of 8 bytes hides the TCP header's flags and data offset (RFC 1858).
    let tiny = ipv4_fragments(&whole, &[8, 256], 0x0707);
    let (rec, _, counters) = {
        let (mut r, rep, c) = run_counted(&session_with_hello_frames(tiny, hello.len() as u32));
        (r.remove(0), rep, c)
    };
    assert_eq!(counters.defrag.tiny_first, 1, "an evasion attempt, counted");
    assert_eq!(
        rec.app["tls"]["sni"], "tiny.example.net",
        "and still seen through"
    );
    // A forged second copy of the middle fragment with other bytes: the datagram is dropped.
    let mut frags = ipv4_fragments(&whole, &[64, 256], 0x0808);
    let mut forged = frags[1].clone();
    let last = forged.len() - 1;
    forged[last] ^= 0xff;
    frags.insert(2, forged);
    let (_, _, counters) = run_counted(&session_with_hello_frames(frags, hello.len() as u32));
    assert_eq!(counters.defrag.overlapping, 1);
    assert_eq!(counters.defrag.reassembled, 0);
    assert_eq!(
        counters.drops[DropReason::FragmentOverlap as usize]
            + counters.drops[DropReason::FragmentTimeout as usize],
        4,
        "every fragment is counted once: the three held ones and the late last one"
    );
    assert_eq!(counters.decoded + counters.dropped(), counters.packets);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Any fragmentation (8-byte aligned cut points) in any order, with exact duplicates, gives
    /// the record of the unfragmented hello.
    #[test]
    fn any_fragment_order_gives_the_unfragmented_record(
        cuts in proptest::collection::btree_set(1usize..190, 1..6),
        order in Just(()).prop_perturb(|_, mut rng| {
            let mut v: Vec<usize> = (0..7).collect();
            for i in (1..v.len()).rev() {
                let j = (rng.next_u32() as usize) % (i + 1);
                v.swap(i, j);
            }
            v
        }),
        dup in any::<usize>(),
    ) {
        let (hello, expected) = reference();
        let whole = tcp_frame_at(CLIENT, SERVER, 0x18, ISN_C.wrapping_add(1), hello);
        let cuts: Vec<usize> = cuts.iter().map(|c| c * 8).filter(|&c| c < hello.len() + 20).collect();
        let frags = ipv4_fragments(&whole, &cuts, 0x5151);
        let mut frames: Vec<Vec<u8>> = order.iter().filter(|&&i| i < frags.len()).map(|&i| frags[i].clone()).collect();
        let d = frames[dup % frames.len()].clone();
        frames.insert(dup % (frames.len() + 1), d);
        let (mut recs, _, counters) = run_counted(&session_with_hello_frames(frames, hello.len() as u32));
        prop_assert_eq!(recs.len(), 1);
        prop_assert_eq!(&verdict(&recs.remove(0)), expected);
        prop_assert_eq!(counters.defrag.reassembled, 1);
        // A duplicate arriving after its datagram completed starts a datagram of its own that
        // never completes: counted as timed out at the end, nothing else is dropped.
        let timed_out = counters.drops[DropReason::FragmentTimeout as usize];
        prop_assert!(timed_out <= 1);
        prop_assert_eq!(counters.dropped(), timed_out);
        prop_assert_eq!(counters.decoded + counters.dropped(), counters.packets);
    }
}
