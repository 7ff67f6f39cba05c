//! Fuzzes `portolan_packet::parse` and `ip_addresses` over every link type: the first input
//! byte selects the link type, the rest is the frame. Checks that neither panics, that a decoded
//! payload always lies inside the frame, and that both agree on a decoded frame's addresses.
//!
//! Run (stable toolchain): `RUSTC_BOOTSTRAP=1 cargo fuzz run decode -- -max_total_time=60`
//! from `dataplane/packet/fuzz/`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_packet::{ip_addresses, parse, LinkType};

const LINKS: [LinkType; 8] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::RawIp,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Null,
    LinkType::Loop,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let link = LINKS[usize::from(selector) % LINKS.len()];
    let addresses = ip_addresses(link, frame);
    if let Ok(packet) = parse(link, frame) {
        assert_eq!(addresses, Some((packet.src_ip, packet.dst_ip)));
        let f = frame.as_ptr_range();
        let p = packet.payload.as_ptr_range();
        assert!(
            f.start <= p.start && p.end <= f.end,
            "payload outside the frame"
        );
    }
});
