//! The bodies of `portolan-packet`'s fuzz targets, one function per target.
//!
//! Owns: what each target feeds to the decoder or the defragmenter and the properties it checks
//! ([`TARGETS`] lists them by the name of their `fuzz_targets/*.rs` binary).
//! Must not: depend on libFuzzer: `dataplane/packet/tests/fuzz_corpus.rs` includes this file in
//! the normal `cargo test` (stable toolchain) and replays every committed seed
//! (`seeds/<target>/`) through the same functions.
//!
//! Run one target (nightly, from `dataplane/packet/fuzz/`):
//! `nice -n 19 cargo +nightly fuzz run decode corpus/decode seeds/decode -- -max_total_time=600`
//! (new inputs go to `corpus/`, which git ignores; `seeds/` is the committed, minimized set).

use portolan_packet::defrag::{DefragConfig, Defragmenter, Pushed};
use portolan_packet::{ip_addresses, parse, parse_counting, DropReason, Encapsulations, LinkType};

/// A target: its binary's name and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[("decode", decode), ("defrag", defrag)];

/// Fuzzes [`parse_counting`] (with its tunnel decoders: GRE, ERSPAN, VXLAN,
/// GENEVE, MPLS, IP in IP) and [`ip_addresses`] over every link type: the first input byte selects
/// the link type, the rest is the frame. Checks that neither panics, that a decoded payload
/// always lies inside the frame, and that both agree on a plain frame's addresses.
pub fn decode(data: &[u8]) {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let link = LinkType::ALL[usize::from(selector) % LinkType::ALL.len()];
    let addresses = ip_addresses(link, frame);
    let mut encaps = Encapsulations::NONE;
    if let Ok(packet) = parse_counting(link, frame, &mut encaps) {
        // `ip_addresses` reads the outermost IP header, `parse` the innermost packet.
        if encaps.is_empty() {
            assert_eq!(addresses, Some((packet.src_ip, packet.dst_ip)));
        }
        let f = frame.as_ptr_range();
        let p = packet.payload.as_ptr_range();
        assert!(
            f.start <= p.start && p.end <= f.end,
            "payload outside the frame"
        );
    }
}

/// Fuzzes the IP defragmenter: the input is a list of frames (a 2-byte length, then the bytes,
/// first byte of each frame mostly kept as an IPv4 or IPv6 header start) pushed through a small
/// defragmenter as raw-IP frames, with a clock that advances by the frame's first byte. Checks:
/// no panic, every completed datagram decodes or is refused with a drop reason (never a panic),
/// every fragment frame is accounted exactly once after `flush`.
pub fn defrag(data: &[u8]) {
    let mut d = Defragmenter::new(DefragConfig {
        max_datagrams: 4,
        max_datagram_bytes: 2048,
        timeout_us: 1_000,
    });
    let mut drops = [0u64; DropReason::COUNT];
    let mut fragments = 0u64;
    let mut accounted = 0u64;
    let mut now = 0u64;
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])) % 1600;
        let (frame, next) = rest[2..].split_at(len.min(rest.len() - 2));
        rest = next;
        now += u64::from(frame.first().copied().unwrap_or(0));
        match d.push(LinkType::RawIp, frame, now, &mut drops) {
            Pushed::NotFragment => {
                let _ = parse(LinkType::RawIp, frame);
            }
            Pushed::Taken => fragments += 1,
            Pushed::Complete(n) => {
                fragments += 1;
                accounted += u64::from(n);
                let _ = parse(LinkType::RawIp, d.datagram());
            }
        }
    }
    d.flush(&mut drops);
    let dropped: u64 = drops.iter().sum();
    assert_eq!(
        fragments,
        accounted + dropped,
        "every fragment accounted once"
    );
    assert_eq!(d.stats().fragments, fragments);
}
