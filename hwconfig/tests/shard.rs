//! Sharding real capture files: every packet lands in exactly one shard, and every flow (both
//! directions) and every address pair in a single shard.

use portolan_hwconfig::shard::{shard_capture, shard_file_path, HashedBy, RssSharder};
use portolan_hwconfig::HardwareDescription;
use portolan_packet::capture::{CaptureReader, PcapWriter};
use portolan_packet::{parse, LinkType};
use portolan_testkit::{ethernet, ipv4_fragments, vlan_tagged, Frame};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

// ---- frames (portolan-testkit) --------------------------------------------------------------

fn v6(last: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0x0db8, 0, 0, 0, 0, 0, last)
}

/// A capture with 300 TCP/UDP flows over IPv4 and IPv6 (some VLAN-tagged), each seen in both
/// directions, interleaved, plus non-first fragments, ICMP, ICMPv6 and ARP.
fn synthetic_frames() -> Vec<Vec<u8>> {
    const PSH_ACK: u8 = 0x18;
    const ACK: u8 = 0x10;
    let mut frames = Vec::new();
    for round in 0..3u8 {
        for i in 0..300u16 {
            let device = Ipv4Addr::new(10, 20, (i >> 8) as u8, (i & 0xff) as u8);
            let server = Ipv4Addr::new(203, 0, 113, (i % 7) as u8 + 1);
            let dport = [443u16, 5223, 8443, 53, 1883][usize::from(i % 5)];
            let sport = 40_000 + i;
            let payload = [round; 20];
            let (fwd, rev) = match i % 4 {
                0 => (
                    Frame::tcp((device, sport), (server, dport), PSH_ACK).build(&payload),
                    Frame::tcp((server, dport), (device, sport), ACK).build(&payload),
                ),
                1 => (
                    Frame::udp((device, sport), (server, dport)).build(&payload),
                    Frame::udp((server, dport), (device, sport)).build(&payload),
                ),
                2 => {
                    let (d, s) = (v6(i), v6(9000 + i % 3));
                    (
                        Frame::tcp((d, sport), (s, dport), PSH_ACK).build(&payload),
                        Frame::tcp((s, dport), (d, sport), ACK).build(&payload),
                    )
                }
                _ => {
                    let (d, s) = (v6(i), v6(9100));
                    (
                        vlan_tagged(&Frame::udp((d, sport), (s, dport)).build(&payload), 42),
                        vlan_tagged(&Frame::udp((s, dport), (d, sport)).build(&payload), 42),
                    )
                }
            };
            frames.push(fwd);
            frames.push(rev);
        }
        for i in 0..20u8 {
            let a = Ipv4Addr::new(10, 20, 9, i);
            let b = Ipv4Addr::new(198, 51, 100, i);
            // The second fragment of a TCP segment: no ports.
            let whole = Frame::tcp((a, 40_000), (b, 443), PSH_ACK).build(&[round; 40]);
            frames.push(ipv4_fragments(&whole, &[24], u16::from(i)).swap_remove(1));
            // ICMP echo both ways.
            frames.push(Frame::ip(a, b, 1).build(&[8, 0, 0, 0, 0, 1, 0, round]));
            frames.push(Frame::ip(b, a, 1).build(&[0, 0, 0, 0, 0, 1, 0, round]));
            // ICMPv6 both ways.
            frames.push(Frame::ip(v6(u16::from(i)), v6(7777), 58).build(&[128, 0, 0, 0]));
            frames.push(Frame::ip(v6(7777), v6(u16::from(i)), 58).build(&[129, 0, 0, 0]));
            // ARP.
            frames.push(ethernet(
                0x0806,
                &[
                    0, 1, 8, 0, 6, 4, 0, 1, i, round, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                    0, 0, 0,
                ],
            ));
        }
    }
    frames
}

fn write_capture(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::create(path, LinkType::Ethernet, 65535).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write(1_700_000_000_000_000 + i as u64 * 10, f.len() as u32, f)
            .unwrap();
    }
    w.finish().unwrap();
}

// ---- checking -------------------------------------------------------------------------------

/// A record as read back: timestamp, wire length, bytes.
type Record = (u64, u32, Vec<u8>);

fn read_all(path: &Path) -> (LinkType, Vec<Record>) {
    let mut r = CaptureReader::open(path).unwrap();
    let link = r.info().link_type;
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        out.push((rec.ts_us, rec.orig_len, rec.data));
    }
    (link, out)
}

/// Direction-free key of a frame: the sorted endpoints of its 5-tuple, or its sorted address
/// pair.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum FlowKey {
    Flow(u8, (IpAddr, u16), (IpAddr, u16)),
    Addresses(IpAddr, IpAddr),
}

/// What the test can say about a frame on its own.
enum Check {
    /// All frames with this key must share a shard.
    Key(FlowKey),
    /// Not IP: must be in shard 0.
    NotIp,
    /// IP behind a link layer this test does not walk (QinQ, PPPoE, SLL): not checked.
    Unchecked,
}

fn check_of(link: LinkType, frame: &[u8], sharder: &RssSharder) -> Check {
    if let Ok(p) = parse(link, frame) {
        let a = (p.src_ip, p.src_port);
        let b = (p.dst_ip, p.dst_port);
        return Check::Key(FlowKey::Flow(p.transport.ip_proto(), a.min(b), a.max(b)));
    }
    match (
        sharder.queue_for_frame(link, frame).1,
        addresses(link, frame),
    ) {
        (HashedBy::NotIp, _) => Check::NotIp,
        (_, Some((a, b))) => Check::Key(FlowKey::Addresses(a.min(b), a.max(b))),
        (_, None) => Check::Unchecked,
    }
}

/// Addresses of plain Ethernet (optionally one VLAN tag) IPv4/IPv6 frames; `None` otherwise.
fn addresses(link: LinkType, frame: &[u8]) -> Option<(IpAddr, IpAddr)> {
    let be16 = |at: usize| Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]));
    let ip = match link {
        LinkType::Ethernet => match (be16(12)?, be16(16)) {
            (0x0800 | 0x86dd, _) => frame.get(14..)?,
            (0x8100, Some(0x0800 | 0x86dd)) => frame.get(18..)?,
            _ => return None,
        },
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => frame,
        _ => return None,
    };
    match ip.first()? >> 4 {
        4 => {
            let s: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let d: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            Some((IpAddr::from(s), IpAddr::from(d)))
        }
        6 => {
            let s: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let d: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            Some((IpAddr::from(s), IpAddr::from(d)))
        }
        _ => None,
    }
}

/// Shards `capture` into `queues` and checks: the shards hold exactly the input records (as a
/// multiset, each shard in input order), every flow and address pair sits in one shard, and
/// non-IP frames are in shard 0. Returns packets per shard.
fn shard_and_check(capture: &Path, out: &Path, queues: u16) -> Vec<u64> {
    let sharder = RssSharder::symmetric(queues).unwrap();
    let summary = shard_capture(capture, out, &sharder).unwrap();
    let (link, input) = read_all(capture);
    assert_eq!(summary.packets, input.len() as u64);
    assert_eq!(summary.shards.len(), usize::from(queues));
    assert_eq!(
        summary.four_tuple + summary.two_tuple + summary.not_ip,
        summary.packets
    );

    let mut seen: BTreeMap<Record, i64> = BTreeMap::new();
    for rec in &input {
        *seen.entry(rec.clone()).or_default() += 1;
    }
    let in_order = input.windows(2).all(|w| w[0].0 <= w[1].0);
    let mut flow_shards: BTreeMap<FlowKey, BTreeSet<u16>> = BTreeMap::new();
    let mut per_shard = Vec::new();
    for s in &summary.shards {
        assert_eq!(s.path, shard_file_path(out, capture, s.queue));
        let (shard_link, records) = read_all(&s.path);
        assert_eq!(shard_link, link, "shard keeps the link type");
        assert_eq!(records.len() as u64, s.packets);
        // Each shard is in input (timestamp) order when the input is.
        let mut last = 0;
        for rec in &records {
            let n = seen
                .get_mut(rec)
                .expect("a shard holds a record the input lacks");
            *n -= 1;
            assert!(*n >= 0, "a record was written twice");
            if in_order {
                assert!(rec.0 >= last);
                last = rec.0;
            }
            match check_of(link, &rec.2, &sharder) {
                Check::Key(key) => {
                    flow_shards.entry(key).or_default().insert(s.queue);
                }
                Check::NotIp => assert_eq!(s.queue, 0, "non-IP frames go to queue 0"),
                Check::Unchecked => {}
            }
        }
        per_shard.push(s.packets);
    }
    assert!(
        seen.values().all(|&n| n == 0),
        "every record lands in some shard"
    );
    for (key, shards) in &flow_shards {
        assert_eq!(shards.len(), 1, "{key:?} is split over shards {shards:?}");
    }
    per_shard
}

fn temp_capture(frames: &[Vec<u8>]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("egress.pcap");
    write_capture(&path, frames);
    (dir, path)
}

#[test]
fn synthetic_capture_into_2_and_4_queues() {
    let frames = synthetic_frames();
    let (dir, capture) = temp_capture(&frames);
    for queues in [1u16, 2, 4] {
        let out = dir.path().join(format!("out{queues}"));
        let per_shard = shard_and_check(&capture, &out, queues);
        assert_eq!(per_shard.iter().sum::<u64>(), frames.len() as u64);
        // 300 flows spread: every shard gets a fair part.
        for (q, n) in per_shard.iter().enumerate() {
            assert!(
                *n as f64 > 0.5 * frames.len() as f64 / f64::from(queues),
                "queue {q} of {queues} got only {n} of {} packets",
                frames.len()
            );
        }
    }
}

#[test]
fn summary_counts_each_hash_kind() {
    let frames = synthetic_frames();
    let (dir, capture) = temp_capture(&frames);
    let sharder = RssSharder::symmetric(4).unwrap();
    let summary = shard_capture(&capture, &dir.path().join("o"), &sharder).unwrap();
    // Per round: 600 TCP/UDP, 20 fragments + 40 ICMP + 40 ICMPv6 by addresses, 20 ARP.
    assert_eq!(summary.four_tuple, 3 * 600);
    assert_eq!(summary.two_tuple, 3 * 100);
    assert_eq!(summary.not_ip, 3 * 20);
    let text = summary.to_string();
    assert!(text.contains("by 4-tuple"), "{text}");
    assert!(text.contains("queue 3:"), "{text}");
    assert_eq!(summary.truncated_tail, None);
    assert!(!text.contains("cut short"), "{text}");
}

#[test]
fn a_record_cut_short_at_the_end_is_reported_not_dropped_silently() {
    let frames = synthetic_frames();
    let (dir, capture) = temp_capture(&frames);
    let bytes = std::fs::read(&capture).unwrap();
    // The last record loses its last 5 bytes.
    std::fs::write(&capture, &bytes[..bytes.len() - 5]).unwrap();
    let sharder = RssSharder::symmetric(2).unwrap();
    let summary = shard_capture(&capture, &dir.path().join("o"), &sharder).unwrap();
    let last = frames.last().unwrap().len() as u64;
    assert_eq!(summary.packets, frames.len() as u64 - 1);
    assert_eq!(summary.truncated_tail, Some(16 + last - 5));
    let text = summary.to_string();
    assert!(
        text.contains(&format!("record cut short ({} bytes", 16 + last - 5)),
        "{text}"
    );
}

#[test]
fn sharding_follows_the_described_key_and_mapping() {
    let text = r#"
        [cores]
        lcores = "0-3"
        main = 0
        [memory]
        hugepages = false
        memory_mb = 256
        [rss]
        key = "1f2e1f2e1f2e1f2e1f2e1f2e1f2e1f2e1f2e1f2e1f2e1f2e1f2e1f2e1f2e1f2e1f2e1f2e1f2e1f2e"
        queue_mapping = "modulo"
        [[ports]]
        vdev = "net_pcap0,rx_pcap=a,rx_pcap=b,rx_pcap=c"
        rx_queues = 3
        queues = [{ lcore = 1 }, { lcore = 2 }, { lcore = 3 }]
    "#;
    let hw = HardwareDescription::from_toml_str(text).unwrap();
    let sharder = RssSharder::from_description(&hw, 3).unwrap();
    assert_eq!(sharder.key()[..2], [0x1f, 0x2e]);
    let frames = synthetic_frames();
    let default = RssSharder::symmetric(3).unwrap();
    let differ = frames
        .iter()
        .filter(|f| {
            sharder.queue_for_frame(LinkType::Ethernet, f).0
                != default.queue_for_frame(LinkType::Ethernet, f).0
        })
        .count();
    assert!(differ > 0, "another key and mapping must move some flows");
    let (dir, capture) = temp_capture(&frames);
    let summary = shard_capture(&capture, &dir.path().join("o"), &sharder).unwrap();
    assert_eq!(summary.shards.len(), 3);
}

#[test]
fn bad_arguments_are_refused() {
    assert!(RssSharder::symmetric(0).unwrap_err().is_bad_input());
    let asym = portolan_hwconfig::rss::MICROSOFT_KEY;
    let err = RssSharder::new(&asym, 2, Default::default()).unwrap_err();
    assert!(err.to_string().contains("not symmetric"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let err = shard_capture(
        &dir.path().join("missing.pcap"),
        dir.path(),
        &RssSharder::symmetric(2).unwrap(),
    )
    .unwrap_err();
    assert!(err.is_bad_input());
    assert!(err.to_string().contains("missing.pcap"), "{err}");
}

/// The shared real captures (nDPI's test set), each sharded into 2 and 4 queues.
#[test]
fn shared_captures_into_2_and_4_queues() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/pcaps/ndpi");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!(
            "skipping: {} is absent (shared captures not mounted)",
            dir.display()
        );
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    let out = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for file in &files {
        if CaptureReader::open(file).is_err() {
            println!("skipping {}: not a capture Portolan reads", file.display());
            continue;
        }
        for queues in [2u16, 4] {
            let sub = out.path().join(format!(
                "{}-{queues}",
                file.file_name().unwrap().to_string_lossy()
            ));
            shard_and_check(file, &sub, queues);
        }
        checked += 1;
    }
    println!("sharded {checked} shared captures");
    assert!(
        checked > 0,
        "no shared capture could be read from {}",
        dir.display()
    );
}

#[path = "../../dataplane/packet/tests/common/tunnel.rs"]
mod tunnel;

#[test]
fn a_tunnelled_flow_is_sharded_by_its_inner_tuple_both_ways() {
    // Both directions of many inner flows, each wrapped in every encapsulation (the outer
    // headers are the same for all: one mirror session), land on the queue of the plain flow.
    let sharder = RssSharder::symmetric(8).expect("sharder");
    let mut queues_seen = BTreeSet::new();
    for i in 0..64u16 {
        let client = Ipv4Addr::new(10, 20, 1, (i % 250) as u8 + 1);
        let server = Ipv4Addr::new(198, 51, 100, (i * 7 % 250) as u8 + 1);
        let up = Frame::tcp((client, 40_000 + i), (server, 22), 0x18).build(b"SSH-2.0-x\r\n");
        let down = Frame::tcp((server, 22), (client, 40_000 + i), 0x18).build(b"SSH-2.0-y\r\n");
        let (plain, by) = sharder.queue_for_frame(LinkType::Ethernet, &up);
        assert_eq!(by, HashedBy::FourTuple);
        queues_seen.insert(plain);
        for wrap in tunnel::Wrap::ALL {
            for frame in [&up, &down] {
                let wrapped = tunnel::encapsulate(wrap, frame).expect("wrap");
                assert_eq!(
                    sharder.queue_for_frame(LinkType::Ethernet, &wrapped),
                    (plain, HashedBy::FourTuple),
                    "{wrap:?} flow {i}"
                );
            }
        }
    }
    // The inner tuples spread over the queues (the outer headers alone would give one).
    assert!(queues_seen.len() > 4, "{queues_seen:?}");
}
