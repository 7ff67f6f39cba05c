//! Decoding cross-checked against Wireshark on built frames the shared captures lack: every
//! link type (Linux SLL2, OpenBSD loopback, both BSD loopback byte orders), 802.1Q/802.1ad/
//! 0x9100 stacks, IPv4 options, IPv6 destination-options chains, Ethernet padding and
//! snap-length cuts. Each frame gets its own ports, is written with `PcapWriter` (one file per
//! link type), and the conversations `parse` finds must equal those of
//! `tshark -n -r FILE -q -z conv,tcp -z conv,udp`, frame for frame.
//!
//! Skips with a message when tshark is not installed.

mod common;

use common::{build, FrameSpec};
use portolan_packet::capture::{CaptureReader, PcapWriter};
use portolan_packet::{parse, LinkType, Transport};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Command;

type ConvKey = (&'static str, String, String);

fn endpoint(ip: IpAddr, port: u16) -> String {
    format!("{ip}:{port}")
}

fn key(t: Transport, a: String, b: String) -> ConvKey {
    if a <= b {
        (t.eve_name(), a, b)
    } else {
        (t.eve_name(), b, a)
    }
}

/// Frames of every shape for `link`, each with distinct ports.
fn frames(link: LinkType) -> Vec<Vec<u8>> {
    let pairs = [
        (
            IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
            IpAddr::V4(Ipv4Addr::new(172, 16, 9, 9)),
        ),
        (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 2)),
        ),
    ];
    let tagged = matches!(
        link,
        LinkType::Ethernet | LinkType::LinuxSll | LinkType::LinuxSll2
    );
    let stacks: Vec<Vec<(u16, u16)>> = if tagged {
        vec![
            vec![],
            vec![(0x8100, 10)],
            vec![(0x88a8, 20), (0x8100, 21)],
            vec![(0x9100, 30), (0x8100, 31)],
        ]
    } else {
        vec![vec![]]
    };
    let mut out = Vec::new();
    let mut port = 20_000u16;
    for (src, dst) in pairs {
        if (link == LinkType::Ipv4 && src.is_ipv6()) || (link == LinkType::Ipv6 && src.is_ipv4()) {
            continue;
        }
        for stack in &stacks {
            for big in [false, true] {
                for transport in [Transport::Tcp, Transport::Udp] {
                    for shape in 0..4 {
                        port += 1;
                        let base = match transport {
                            Transport::Tcp => FrameSpec::tcp(link, src, dst, &[0x5a; 40]),
                            Transport::Udp => FrameSpec::udp(link, src, dst, &[0x5a; 40]),
                        };
                        let spec = FrameSpec {
                            vlans: stack.clone(),
                            null_big_endian: big,
                            src_port: port,
                            dst_port: 60_000 - port,
                            ipv4_options: if shape == 1 {
                                vec![1, 1, 1, 0]
                            } else {
                                Vec::new()
                            },
                            ipv6_dest_opts: if shape == 1 { 2 } else { 0 },
                            tcp_options: if shape == 1 {
                                vec![1, 1, 1, 0]
                            } else {
                                Vec::new()
                            },
                            trailer: if shape == 2 { vec![0; 12] } else { Vec::new() },
                            ..base
                        };
                        let built = build(&spec);
                        let mut bytes = built.bytes;
                        if shape == 3 {
                            // Snap length cut in the middle of the payload.
                            bytes.truncate(built.payload_at + 10);
                        }
                        out.push(bytes);
                    }
                }
            }
        }
    }
    out
}

#[test]
fn synthetic_frames_match_tshark() {
    if Command::new("tshark").arg("--version").output().is_err() {
        eprintln!("skipping: tshark is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for link in LinkType::ALL {
        let path = dir.path().join(format!("{}.pcap", link.name()));
        let mut w = PcapWriter::create(&path, link, 65535).unwrap();
        let frames = frames(link);
        for (i, f) in frames.iter().enumerate() {
            // Wire length: what the frame had before any snap-length cut.
            w.write(1_700_000_000_000_000 + i as u64, f.len() as u32 + 30, f)
                .unwrap();
        }
        w.finish().unwrap();

        let mut ours = BTreeMap::new();
        let mut reader = CaptureReader::open(&path).unwrap();
        while let Some(rec) = reader.next_record().unwrap() {
            let p = parse(link, &rec.data).unwrap_or_else(|e| panic!("{link:?}: {e}"));
            *ours
                .entry(key(
                    p.transport,
                    endpoint(p.src_ip, p.src_port),
                    endpoint(p.dst_ip, p.dst_port),
                ))
                .or_insert(0u64) += 1;
        }
        assert_eq!(ours.values().sum::<u64>(), frames.len() as u64);
        assert_eq!(
            tshark(&path),
            ours,
            "{link:?}: our conversations (right) differ from tshark's (left)"
        );
    }
}

/// Conversations from tshark, endpoints written as `IpAddr` displays them.
fn tshark(path: &Path) -> BTreeMap<ConvKey, u64> {
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(path)
        .args(["-q", "-z", "conv,tcp", "-z", "conv,udp"])
        .output()
        .unwrap();
    assert!(out.status.success(), "tshark failed on {}", path.display());
    let mut convs = BTreeMap::new();
    let mut transport = Transport::Tcp;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if line.starts_with("TCP Conversations") {
            transport = Transport::Tcp;
        } else if line.starts_with("UDP Conversations") {
            transport = Transport::Udp;
        }
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() < 10 || t[1] != "<->" {
            continue;
        }
        let ep = |s: &str| {
            let (a, p) = s.rsplit_once(':').unwrap();
            endpoint(a.parse().unwrap(), p.parse().unwrap())
        };
        *convs.entry(key(transport, ep(t[0]), ep(t[2]))).or_insert(0) +=
            t[9].parse::<u64>().unwrap();
    }
    convs
}
