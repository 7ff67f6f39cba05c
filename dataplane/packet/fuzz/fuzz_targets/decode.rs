//! Fuzzes `portolan_packet::parse_counting` (with its tunnel decoders: GRE, ERSPAN, VXLAN,
//! GENEVE, MPLS, IP in IP) and `ip_addresses` over every link type: the first input byte selects
//! the link type, the rest is the frame. Checks that neither panics, that a decoded payload
//! always lies inside the frame, and that both agree on a plain frame's addresses.
//!
//! Run (stable toolchain): `RUSTC_BOOTSTRAP=1 cargo fuzz run decode -- -max_total_time=60`
//! from `dataplane/packet/fuzz/`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_packet::{ip_addresses, parse_counting, Encapsulations, LinkType};

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
});
