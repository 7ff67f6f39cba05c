//! Fuzzes the IP defragmenter: the input is a list of frames (a 2-byte length, then the bytes,
//! first byte of each frame mostly kept as an IPv4 or IPv6 header start) pushed through a small
//! defragmenter as raw-IP frames, with a clock that advances by the frame's first byte. Checks:
//! no panic, every completed datagram decodes or is refused with a drop reason (never a panic),
//! every fragment frame is accounted exactly once after `flush`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_packet::defrag::{DefragConfig, Defragmenter, Pushed};
use portolan_packet::{parse, DropReason, LinkType};

fuzz_target!(|data: &[u8]| {
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
        let before: u64 = drops.iter().sum();
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
        let _ = before;
    }
    d.flush(&mut drops);
    let dropped: u64 = drops.iter().sum();
    assert_eq!(fragments, accounted + dropped, "every fragment accounted once");
    assert_eq!(d.stats().fragments, fragments);
});
