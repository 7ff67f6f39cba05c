//! What the dataplane's worker tests share: Ethernet + IPv4 + TCP/UDP frames (numbered TCP
//! segments on `portolan_testkit::Frame`), the classifier
//! built from the repository's real signatures, and feeding frames to a `Worker`.
//!
//! It builds inputs only; it must not assert anything about the worker or the classifier.
//! Each test binary uses a subset, hence the allow.
#![allow(dead_code)]

use portolan_classify::{Classifier, ClassifyConfig, CompiledSignatures, PortRegistry};
use portolan_dataplane::{ClassifyObserver, FlowEventSender, Worker};
use portolan_testkit::Frame;
use std::sync::Arc;

/// A direction of a TCP connection: source address and port, destination address and port.
type SeqKey = ([u8; 4], u16, [u8; 4], u16);

thread_local! {
    /// Next sequence number per (source, destination) endpoint pair of this test thread.
    static NEXT_SEQ: std::cell::RefCell<std::collections::HashMap<SeqKey, u32>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The sequence number of the next TCP segment from `src` to `dst`, as a real stack numbers
/// them: a SYN starts the direction at 1000 (its data at 1001), each segment advances it by its
/// payload (and by one for SYN and FIN).
fn next_seq(src: ([u8; 4], u16), dst: ([u8; 4], u16), flags: u8, len: usize) -> u32 {
    NEXT_SEQ.with(|m| {
        let mut m = m.borrow_mut();
        let key = (src.0, src.1, dst.0, dst.1);
        if flags & 0x02 != 0 {
            m.insert(key, 1000);
        }
        let seq = *m.entry(key).or_insert(1000);
        let advance = len as u32 + u32::from(flags & 0x03 != 0);
        m.insert(key, seq.wrapping_add(advance));
        seq
    })
}

/// Ethernet + IPv4 + TCP (with `flags`) or UDP frame carrying `payload`; TCP segments are
/// numbered in sequence per direction ([`next_seq`]), [`tcp_frame_at`] sets the number.
pub fn frame(
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    tcp: bool,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    if tcp {
        let seq = next_seq(src, dst, flags, payload.len());
        Frame::tcp(src, dst, flags).seq(seq).ack(1).build(payload)
    } else {
        Frame::udp(src, dst).build(payload)
    }
}

/// Ethernet + IPv4 + TCP frame with an explicit sequence number (for reordering tests); the
/// direction's running number advances as for [`frame`].
pub fn tcp_frame_at(
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    flags: u8,
    seq: u32,
    payload: &[u8],
) -> Vec<u8> {
    next_seq(src, dst, flags, payload.len());
    Frame::tcp(src, dst, flags).seq(seq).ack(1).build(payload)
}

/// The repository's signatures, compiled (no cache), and their port registry.
pub fn classifier_parts() -> (Arc<CompiledSignatures>, Arc<PortRegistry>) {
    let (sigs, _) = CompiledSignatures::load(
        &portolan_classify::source_signature_dir(),
        &portolan_classify::CacheDir::Disabled,
    )
    .expect("the repository's signatures load");
    let ports = Arc::new(sigs.port_registry());
    (Arc::new(sigs), ports)
}

/// A classifying observer for worker 0, handing flow events to `events` if given.
pub fn observer(
    sigs: &Arc<CompiledSignatures>,
    ports: &Arc<PortRegistry>,
    events: Option<FlowEventSender>,
) -> ClassifyObserver {
    let classifier = Classifier::new(Arc::clone(sigs), ClassifyConfig::default()).expect("scratch");
    ClassifyObserver::new(0, classifier, Arc::clone(ports), events)
}

/// Feeds `frames` to `w`, each one µs after the last (`t` is the running capture time).
pub fn feed(w: &mut Worker<ClassifyObserver>, frames: &[Vec<u8>], t: &mut u64) {
    for f in frames {
        *t += 1;
        w.process_frame(f, f.len() as u32, Some(*t));
    }
}
