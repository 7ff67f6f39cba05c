//! `parse` through its public API: every link type, VLAN stacks, padding and snap-length cuts,
//! fragments, a cut at every byte offset, and proptest properties (no panic on arbitrary bytes,
//! round trip of random valid fields, truncation never lengthens the payload).

mod common;

use common::tunnel::{encapsulate, Wrap};
use common::{build, FrameSpec};
use portolan_packet::{
    ip_addresses, parse, parse_counting, DropReason, Encapsulation, Encapsulations, LinkType,
    Packet, TcpHeader, Transport,
};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
}

/// Whether `link` can carry IP of this version.
fn carries(link: LinkType, ip: &IpAddr) -> bool {
    match link {
        LinkType::Ipv4 => ip.is_ipv4(),
        LinkType::Ipv6 => ip.is_ipv6(),
        _ => true,
    }
}

fn expected(spec: &FrameSpec) -> Packet<'_> {
    Packet {
        src_ip: spec.src,
        dst_ip: spec.dst,
        transport: spec.transport,
        src_port: spec.src_port,
        dst_port: spec.dst_port,
        tcp: (spec.transport == Transport::Tcp).then_some(spec.tcp),
        vlan: spec.vlans.iter().map(|(_, vid)| *vid).find(|vid| *vid != 0),
        payload: &spec.payload,
        payload_truncated: false,
    }
}

#[test]
fn every_link_type_tcp_and_udp_v4_and_v6() {
    for link in LinkType::ALL {
        for (src, dst) in [(v4(10, 0, 0, 1), v4(93, 184, 216, 34)), (v6(1), v6(0xbeef))] {
            if !carries(link, &src) {
                continue;
            }
            for spec in [
                FrameSpec::tcp(link, src, dst, b"GET / HTTP/1.1\r\n"),
                FrameSpec::udp(link, src, dst, b"dns?"),
            ] {
                let frame = build(&spec);
                assert_eq!(
                    parse(link, &frame.bytes),
                    Ok(expected(&spec)),
                    "{link:?} {src} {:?}",
                    spec.transport
                );
            }
        }
    }
}

#[test]
fn ip_version_the_link_type_does_not_announce() {
    let spec = FrameSpec::tcp(LinkType::Ipv4, v6(1), v6(2), b"");
    assert_eq!(
        parse(LinkType::Ipv4, &build(&spec).bytes),
        Err(DropReason::Ipv4BadVersion)
    );
    let spec = FrameSpec::tcp(LinkType::Ipv6, v4(1, 1, 1, 1), v4(2, 2, 2, 2), b"");
    assert_eq!(
        parse(LinkType::Ipv6, &build(&spec).bytes),
        Err(DropReason::Ipv6BadVersion)
    );
    assert_eq!(
        parse(LinkType::RawIp, &[]),
        Err(DropReason::UnknownIpVersion)
    );
    assert_eq!(
        parse(LinkType::RawIp, &[0x55; 40]),
        Err(DropReason::UnknownIpVersion)
    );
    // Ethernet announcing IPv4 around an IPv6 header.
    let mut f = build(&FrameSpec::tcp(LinkType::Ethernet, v6(1), v6(2), b"")).bytes;
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    assert_eq!(
        parse(LinkType::Ethernet, &f),
        Err(DropReason::Ipv4BadVersion)
    );
}

#[test]
fn loopback_family_in_either_byte_order() {
    for big in [false, true] {
        for (src, dst) in [(v4(127, 0, 0, 1), v4(127, 0, 0, 1)), (v6(1), v6(1))] {
            let spec = FrameSpec {
                null_big_endian: big,
                ..FrameSpec::udp(LinkType::Null, src, dst, b"x")
            };
            assert_eq!(
                parse(LinkType::Null, &build(&spec).bytes),
                Ok(expected(&spec))
            );
        }
    }
}

#[test]
fn vlan_and_qinq_on_ethernet_and_cooked_links() {
    let stacks: [&[(u16, u16)]; 4] = [
        &[(0x8100, 100)],
        &[(0x88a8, 200), (0x8100, 300)],
        &[(0x9100, 7), (0x9100, 8), (0x8100, 9)],
        &[(0x8100, 0), (0x8100, 42)],
    ];
    for link in [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2] {
        for stack in stacks {
            let spec = FrameSpec {
                vlans: stack.to_vec(),
                ..FrameSpec::tcp(link, v4(10, 1, 1, 1), v4(10, 2, 2, 2), b"tagged")
            };
            let frame = build(&spec);
            assert_eq!(
                parse(link, &frame.bytes),
                Ok(expected(&spec)),
                "{link:?} {stack:?}"
            );
        }
    }
    let deep = FrameSpec {
        vlans: vec![(0x8100, 1); 5],
        ..FrameSpec::tcp(LinkType::Ethernet, v4(1, 1, 1, 1), v4(2, 2, 2, 2), b"")
    };
    assert_eq!(
        parse(LinkType::Ethernet, &build(&deep).bytes),
        Err(DropReason::VlanTooDeep)
    );
}

#[test]
fn options_and_extension_headers() {
    let spec = FrameSpec {
        ipv4_options: vec![0x94, 0x04, 0, 0, 1, 1, 1, 0],
        tcp_options: vec![2, 4, 5, 0xb4, 4, 2, 1, 1],
        ..FrameSpec::tcp(
            LinkType::Ethernet,
            v4(10, 0, 0, 1),
            v4(10, 0, 0, 2),
            b"opts",
        )
    };
    assert_eq!(
        parse(LinkType::Ethernet, &build(&spec).bytes),
        Ok(expected(&spec))
    );
    let spec = FrameSpec {
        ipv6_dest_opts: 3,
        ..FrameSpec::udp(LinkType::Ethernet, v6(1), v6(2), b"ext")
    };
    assert_eq!(
        parse(LinkType::Ethernet, &build(&spec).bytes),
        Ok(expected(&spec))
    );
    let spec = FrameSpec {
        ipv6_dest_opts: 9,
        ..FrameSpec::udp(LinkType::Ethernet, v6(1), v6(2), b"ext")
    };
    assert_eq!(
        parse(LinkType::Ethernet, &build(&spec).bytes),
        Err(DropReason::Ipv6TooManyExtHeaders)
    );
}

#[test]
fn ethernet_padding_and_fcs_are_trimmed() {
    for (src, dst) in [(v4(10, 0, 0, 1), v4(10, 0, 0, 2)), (v6(1), v6(2))] {
        for spec in [
            FrameSpec::tcp(LinkType::Ethernet, src, dst, b""),
            FrameSpec::udp(LinkType::Ethernet, src, dst, b"ab"),
        ] {
            let spec = FrameSpec {
                trailer: vec![0; 22],
                ..spec
            };
            assert_eq!(
                parse(LinkType::Ethernet, &build(&spec).bytes),
                Ok(expected(&spec))
            );
        }
    }
}

/// The reason expected when `frame` is cut to `n` bytes, from where each layer starts.
fn reason_for_cut(
    link: LinkType,
    spec: &FrameSpec,
    frame: &common::BuiltFrame,
    n: usize,
) -> Option<DropReason> {
    if n < frame.ip_at {
        return Some(DropReason::TruncatedLink);
    }
    if n < frame.l4_at {
        return Some(match (link, n == frame.ip_at, spec.src.is_ipv4()) {
            (LinkType::RawIp, true, _) => DropReason::UnknownIpVersion,
            (_, _, true) => DropReason::Ipv4Truncated,
            (_, _, false) => DropReason::Ipv6Truncated,
        });
    }
    if n < frame.payload_at {
        return Some(match spec.transport {
            Transport::Tcp => DropReason::TcpTruncated,
            Transport::Udp => DropReason::UdpTruncated,
        });
    }
    None
}

#[test]
fn cut_at_every_byte_offset() {
    for link in LinkType::ALL {
        for (src, dst) in [(v4(192, 168, 0, 1), v4(8, 8, 8, 8)), (v6(7), v6(8))] {
            if !carries(link, &src) {
                continue;
            }
            for base in [
                FrameSpec::tcp(link, src, dst, b"0123456789"),
                FrameSpec::udp(link, src, dst, b"0123456789"),
            ] {
                let spec = FrameSpec {
                    vlans: if matches!(link, LinkType::Ethernet | LinkType::LinuxSll) {
                        vec![(0x88a8, 5), (0x8100, 6)]
                    } else {
                        Vec::new()
                    },
                    ipv4_options: vec![1, 1, 1, 0],
                    ipv6_dest_opts: 1,
                    tcp_options: vec![1, 1, 1, 0],
                    ..base
                };
                let frame = build(&spec);
                for n in 0..=frame.bytes.len() {
                    let got = parse(link, &frame.bytes[..n]);
                    match reason_for_cut(link, &spec, &frame, n) {
                        Some(reason) => assert_eq!(
                            got,
                            Err(reason),
                            "{link:?} {src} {:?} cut at {n}",
                            spec.transport
                        ),
                        None => {
                            let p =
                                got.unwrap_or_else(|e| panic!("{link:?} {src} cut at {n}: {e}"));
                            let kept = n - frame.payload_at;
                            assert_eq!(p.payload, &spec.payload[..kept]);
                            assert_eq!(
                                p.payload_truncated,
                                n < frame.end,
                                "{link:?} {src} cut at {n}"
                            );
                            assert_eq!((p.src_port, p.dst_port), (spec.src_port, spec.dst_port));
                        }
                    }
                }
            }
        }
    }
}

/// An IPv4 UDP frame on Ethernet with the given fragment field, payload after the UDP header.
fn ipv4_fragment(flags_offset: u16, udp_len: u16, payload: &[u8]) -> Vec<u8> {
    let spec = FrameSpec::udp(
        LinkType::Ethernet,
        v4(10, 0, 0, 1),
        v4(10, 0, 0, 2),
        payload,
    );
    let built = build(&spec);
    let mut f = built.bytes;
    f[built.ip_at + 6..built.ip_at + 8].copy_from_slice(&flags_offset.to_be_bytes());
    f[built.l4_at + 4..built.l4_at + 6].copy_from_slice(&udp_len.to_be_bytes());
    f
}

#[test]
fn ipv4_fragments() {
    let first = ipv4_fragment(0x2000, 3000, &[0xaa; 100]);
    let p = parse(LinkType::Ethernet, &first).unwrap();
    assert_eq!(
        (p.src_port, p.dst_port, p.payload.len(), p.payload_truncated),
        (40_000, 53, 100, true)
    );
    for field in [0x2000 | 185, 185, 1] {
        assert_eq!(
            parse(LinkType::Ethernet, &ipv4_fragment(field, 3000, &[0; 100])),
            Err(DropReason::IpFragment)
        );
    }
}

#[test]
fn bad_lengths_through_parse() {
    let spec = FrameSpec::udp(LinkType::RawIp, v4(1, 2, 3, 4), v4(5, 6, 7, 8), b"payload");
    let built = build(&spec);
    let mut f = built.bytes.clone();
    f[built.l4_at + 4..built.l4_at + 6].copy_from_slice(&7u16.to_be_bytes());
    assert_eq!(parse(LinkType::RawIp, &f), Err(DropReason::UdpBadLength));
    let mut f = built.bytes.clone();
    f[2..4].copy_from_slice(&19u16.to_be_bytes());
    assert_eq!(
        parse(LinkType::RawIp, &f),
        Err(DropReason::Ipv4BadTotalLength)
    );
    let mut f = built.bytes.clone();
    f[0] = 0x44;
    assert_eq!(parse(LinkType::RawIp, &f), Err(DropReason::Ipv4BadIhl));
    // IPv4 total length ends inside the TCP header: too short for one.
    let spec = FrameSpec::tcp(LinkType::RawIp, v4(1, 2, 3, 4), v4(5, 6, 7, 8), b"abcd");
    let mut f = build(&spec).bytes;
    f[2..4].copy_from_slice(&30u16.to_be_bytes());
    assert_eq!(parse(LinkType::RawIp, &f), Err(DropReason::TcpTruncated));
    // Data offset 6 fits the 24-byte segment; 7 points past its end.
    let mut f = build(&spec).bytes;
    f[32] = 0x60;
    assert_eq!(parse(LinkType::RawIp, &f).map(|p| p.payload), Ok(&[][..]));
    f[32] = 0x70;
    assert_eq!(
        parse(LinkType::RawIp, &f),
        Err(DropReason::TcpBadDataOffset)
    );
    let mut f = build(&spec).bytes;
    f[32] = 0x40;
    assert_eq!(
        parse(LinkType::RawIp, &f),
        Err(DropReason::TcpBadDataOffset)
    );
}

#[test]
fn non_ip_and_other_protocols_through_parse() {
    let mut arp = vec![0xff; 12];
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    assert_eq!(parse(LinkType::Ethernet, &arp), Err(DropReason::NonIp));
    let spec = FrameSpec::udp(LinkType::Ethernet, v4(1, 2, 3, 4), v4(5, 6, 7, 8), b"gre?");
    let built = build(&spec);
    let mut f = built.bytes;
    f[built.ip_at + 9] = 50;
    assert_eq!(parse(LinkType::Ethernet, &f), Err(DropReason::OtherIpProto));
    // GRE whose header is really a UDP header: version bits set, so not walked into.
    f[built.ip_at + 9] = 47;
    assert_eq!(
        parse(LinkType::Ethernet, &f),
        Err(DropReason::TunnelUnsupported)
    );
}

/// The kind `wrap` must be counted as.
fn kind_of(wrap: Wrap) -> Encapsulation {
    match wrap {
        Wrap::GreIp | Wrap::GreEthernet => Encapsulation::Gre,
        Wrap::ErspanII => Encapsulation::ErspanII,
        Wrap::ErspanIII => Encapsulation::ErspanIII,
        Wrap::Vxlan => Encapsulation::Vxlan,
        Wrap::Geneve => Encapsulation::Geneve,
        Wrap::Mpls => Encapsulation::Mpls,
        Wrap::IpInIp => Encapsulation::IpInIp,
    }
}

/// An untagged Ethernet frame spec (what [`encapsulate`] takes).
fn plain_ethernet(mut spec: FrameSpec) -> FrameSpec {
    spec.link = LinkType::Ethernet;
    spec.vlans.clear();
    spec.trailer.clear();
    spec
}

#[test]
fn every_encapsulation_yields_the_inner_packet_and_is_counted() {
    for inner in [
        FrameSpec::tcp(
            LinkType::Ethernet,
            v4(10, 0, 0, 1),
            v4(10, 0, 0, 2),
            b"SSH-2.0-x\r\n",
        ),
        FrameSpec::udp(LinkType::Ethernet, v6(1), v6(2), b"dns?"),
    ] {
        let plain = build(&inner).bytes;
        for wrap in Wrap::ALL {
            let frame = encapsulate(wrap, &plain).expect("wrap");
            let mut encaps = Encapsulations::NONE;
            let got = parse_counting(LinkType::Ethernet, &frame, &mut encaps);
            assert_eq!(got, Ok(expected(&inner)), "{wrap:?}");
            assert_eq!(
                encaps.iter().collect::<Vec<_>>(),
                vec![kind_of(wrap)],
                "{wrap:?}"
            );
            // The outer header's addresses are what `ip_addresses` reads (an MPLS stack has
            // none of its own).
            let addrs = ip_addresses(LinkType::Ethernet, &frame);
            if wrap == Wrap::Mpls {
                assert_eq!(addrs, Some((inner.src, inner.dst)));
            } else {
                assert_ne!(addrs, Some((inner.src, inner.dst)), "{wrap:?}");
            }
        }
    }
}

#[test]
fn nesting_is_bounded() {
    let inner = FrameSpec::tcp(LinkType::Ethernet, v4(10, 0, 0, 1), v4(10, 0, 0, 2), b"x");
    let mut frame = build(&inner).bytes;
    for depth in 1..=6 {
        frame = encapsulate(Wrap::GreIp, &frame).expect("wrap");
        let got = parse(LinkType::Ethernet, &frame);
        if depth <= 4 {
            assert_eq!(got, Ok(expected(&inner)), "depth {depth}");
        } else {
            assert_eq!(got, Err(DropReason::TunnelTooDeep), "depth {depth}");
        }
    }
    // A mixed stack: VXLAN inside GRE inside MPLS.
    let mut frame = build(&inner).bytes;
    for wrap in [Wrap::Vxlan, Wrap::GreEthernet, Wrap::Mpls] {
        frame = encapsulate(wrap, &frame).expect("wrap");
    }
    let mut encaps = Encapsulations::NONE;
    assert_eq!(
        parse_counting(LinkType::Ethernet, &frame, &mut encaps),
        Ok(expected(&inner))
    );
    assert_eq!(
        encaps.iter().collect::<Vec<_>>(),
        vec![
            Encapsulation::Gre,
            Encapsulation::Vxlan,
            Encapsulation::Mpls
        ]
    );
}

#[test]
fn a_udp_packet_to_the_vxlan_port_that_is_not_vxlan_stays_a_udp_flow() {
    let mut spec = FrameSpec::udp(
        LinkType::Ethernet,
        v4(10, 0, 0, 1),
        v4(10, 0, 0, 2),
        &[0; 12],
    );
    spec.dst_port = 4789;
    let frame = build(&spec).bytes;
    let mut encaps = Encapsulations::NONE;
    assert_eq!(
        parse_counting(LinkType::Ethernet, &frame, &mut encaps),
        Ok(expected(&spec))
    );
    assert!(encaps.is_empty());
}

#[test]
fn addresses_of_frames_parse_rejects() {
    let want = Some((v4(10, 0, 0, 1), v4(10, 0, 0, 2)));
    // A middle fragment, and a non-TCP/UDP protocol behind two VLAN tags.
    let frag = ipv4_fragment(185, 3000, &[0; 100]);
    assert_eq!(
        parse(LinkType::Ethernet, &frag),
        Err(DropReason::IpFragment)
    );
    assert_eq!(ip_addresses(LinkType::Ethernet, &frag), want);
    let mut spec = FrameSpec::udp(
        LinkType::Ethernet,
        v4(10, 0, 0, 1),
        v4(10, 0, 0, 2),
        b"icmp",
    );
    spec.vlans = vec![(0x88a8, 5), (0x8100, 7)];
    let built = build(&spec);
    let mut f = built.bytes;
    f[built.ip_at + 9] = 1;
    assert_eq!(parse(LinkType::Ethernet, &f), Err(DropReason::OtherIpProto));
    assert_eq!(ip_addresses(LinkType::Ethernet, &f), want);
    // IPv6 on every link type that carries it, cut right after the destination address.
    for link in LinkType::ALL.into_iter().filter(|l| carries(*l, &v6(1))) {
        let built = build(&FrameSpec::tcp(link, v6(1), v6(2), b"x"));
        let end = built.ip_at + 40;
        assert_eq!(
            ip_addresses(link, &built.bytes[..end]),
            Some((v6(1), v6(2))),
            "{link:?}"
        );
        assert_eq!(
            ip_addresses(link, &built.bytes[..end - 1]),
            None,
            "{link:?}"
        );
    }
    // Not IP, and an IPv4 header behind the IPv6 ethertype.
    let mut arp = vec![0xff; 12];
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    assert_eq!(ip_addresses(LinkType::Ethernet, &arp), None);
    let built = build(&FrameSpec::udp(
        LinkType::Ethernet,
        v4(1, 2, 3, 4),
        v4(5, 6, 7, 8),
        b"x",
    ));
    let mut f = built.bytes;
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    assert_eq!(ip_addresses(LinkType::Ethernet, &f), None);
}

// ---- properties ----

fn link_strategy() -> impl Strategy<Value = LinkType> {
    prop::sample::select(LinkType::ALL.to_vec())
}

fn addr_pair() -> impl Strategy<Value = (IpAddr, IpAddr)> {
    prop_oneof![
        (any::<u32>(), any::<u32>())
            .prop_map(|(a, b)| (IpAddr::V4(a.into()), IpAddr::V4(b.into()))),
        (any::<u128>(), any::<u128>())
            .prop_map(|(a, b)| (IpAddr::V6(a.into()), IpAddr::V6(b.into()))),
    ]
}

fn options(max_words: usize) -> impl Strategy<Value = Vec<u8>> {
    (0..=max_words).prop_map(|words| {
        let mut o = vec![1u8; words * 4];
        if let Some(last) = o.last_mut() {
            *last = 0;
        }
        o
    })
}

prop_compose! {
    fn frame_spec()(
        link in link_strategy(),
        (src, dst) in addr_pair(),
        vlans in prop::collection::vec((prop::sample::select(vec![0x8100u16, 0x88a8, 0x9100]), 0u16..4096), 0..=4),
        null_big_endian in any::<bool>(),
        ipv4_options in options(10),
        ipv6_dest_opts in 0usize..=8,
        is_tcp in any::<bool>(),
        src_port in any::<u16>(),
        dst_port in any::<u16>(),
        seq in any::<u32>(), ack in any::<u32>(), flags in any::<u8>(), window in any::<u16>(),
        tcp_options in options(10),
        payload in prop::collection::vec(any::<u8>(), 0..300),
        trailer in prop::collection::vec(any::<u8>(), 0..8),
    ) -> FrameSpec {
        // IPv4-only and IPv6-only links: pick the link that fits the addresses.
        let link = match (link, src.is_ipv4()) {
            (LinkType::Ipv4, false) => LinkType::Ipv6,
            (LinkType::Ipv6, true) => LinkType::Ipv4,
            (l, _) => l,
        };
        let tagged = matches!(link, LinkType::Ethernet | LinkType::LinuxSll | LinkType::LinuxSll2);
        FrameSpec {
            link,
            vlans: if tagged { vlans } else { Vec::new() },
            null_big_endian,
            src,
            dst,
            ipv4_options,
            ipv6_dest_opts,
            transport: if is_tcp { Transport::Tcp } else { Transport::Udp },
            src_port,
            dst_port,
            tcp: TcpHeader { seq, ack, flags, window },
            tcp_options,
            payload,
            trailer,
        }
    }
}

/// A payload `parse` returns must lie inside the frame it was given.
fn payload_within(frame: &[u8], p: &Packet<'_>) -> bool {
    let f = frame.as_ptr_range();
    let r = p.payload.as_ptr_range();
    f.start <= r.start && r.end <= f.end
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_bytes(link in link_strategy(), bytes in prop::collection::vec(any::<u8>(), 0..160)) {
        if let Ok(p) = parse(link, &bytes) {
            prop_assert!(payload_within(&bytes, &p));
        }
    }

    #[test]
    fn never_panics_on_mutated_valid_frames(
        spec in frame_spec(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = build(&spec).bytes;
        for (at, v) in edits {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        if let Ok(p) = parse(spec.link, &bytes) {
            prop_assert!(payload_within(&bytes, &p));
        }
    }

    #[test]
    fn ip_addresses_never_panic_and_agree_with_parse(link in link_strategy(), bytes in prop::collection::vec(any::<u8>(), 0..160)) {
        let addrs = ip_addresses(link, &bytes);
        let mut encaps = Encapsulations::NONE;
        // `ip_addresses` reads the outermost IP header; `parse` the innermost packet.
        if let Ok(p) = parse_counting(link, &bytes, &mut encaps) {
            if encaps.is_empty() {
                prop_assert_eq!(addrs, Some((p.src_ip, p.dst_ip)));
            }
        }
    }

    #[test]
    fn tunnelled_frames_decode_to_the_inner_packet(spec in frame_spec(), wrap in prop::sample::select(Wrap::ALL.to_vec())) {
        let spec = plain_ethernet(spec);
        let frame = encapsulate(wrap, &build(&spec).bytes).expect("wrap");
        let mut encaps = Encapsulations::NONE;
        prop_assert_eq!(parse_counting(LinkType::Ethernet, &frame, &mut encaps), Ok(expected(&spec)));
        prop_assert!(encaps.contains(kind_of(wrap)));
    }

    #[test]
    fn cut_or_mutated_tunnelled_frames_never_panic(
        spec in frame_spec(),
        wrap in prop::sample::select(Wrap::ALL.to_vec()),
        cut in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let spec = plain_ethernet(spec);
        let mut frame = encapsulate(wrap, &build(&spec).bytes).expect("wrap");
        for (at, v) in edits {
            let i = at.index(frame.len());
            frame[i] = v;
        }
        let n = cut.index(frame.len() + 1);
        let mut encaps = Encapsulations::NONE;
        if let Ok(p) = parse_counting(LinkType::Ethernet, &frame[..n], &mut encaps) {
            prop_assert!(payload_within(&frame[..n], &p));
        }
    }

    #[test]
    fn ip_addresses_of_valid_frames(spec in frame_spec()) {
        let frame = build(&spec);
        prop_assert_eq!(ip_addresses(spec.link, &frame.bytes), Some((spec.src, spec.dst)));
    }

    #[test]
    fn valid_fields_round_trip(spec in frame_spec()) {
        let frame = build(&spec);
        prop_assert_eq!(parse(spec.link, &frame.bytes), Ok(expected(&spec)));
    }

    #[test]
    fn truncation_never_lengthens_payload(spec in frame_spec(), cut in any::<prop::sample::Index>()) {
        let frame = build(&spec);
        let full = parse(spec.link, &frame.bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let n = cut.index(frame.bytes.len() + 1);
        if let Ok(p) = parse(spec.link, &frame.bytes[..n]) {
            prop_assert!(p.payload.len() <= full.payload.len());
            prop_assert_eq!(p.payload, &full.payload[..p.payload.len()]);
            prop_assert_eq!((p.src_ip, p.dst_ip, p.src_port, p.dst_port), (full.src_ip, full.dst_ip, full.src_port, full.dst_port));
            prop_assert_eq!(p.payload_truncated, n < frame.end);
        }
    }
}
