//! Two `portolan replay` processes at once over the same generated capture write identical flow
//! files, and those files hold exactly the flows the capture was built from (endpoints, roles,
//! per-direction packets and bytes, TCP state).
//!
//! The capture is generated here with `PcapWriter`: IPv4 TCP conversations with a full handshake
//! and FIN both ways, IPv6 TCP conversations ended by RST, and IPv4/IPv6 UDP request/response
//! pairs, their packets interleaved so hundreds of flows are active at once.

use std::collections::HashMap;
use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portolan_flow::community_id_v1;
use portolan_flow::eve::{EveFlowReason, EveFlowState, FlowRecord};
use portolan_packet::{tcp_flags, Transport};
use portolan_testkit::Frame;

mod common;
use common::write_pcap;

const SYN: u8 = tcp_flags::SYN;
const ACK: u8 = tcp_flags::ACK;
const FIN: u8 = tcp_flags::FIN;
const RST: u8 = tcp_flags::RST;
const PSH: u8 = tcp_flags::PSH;

const TCP4_FLOWS: usize = 150;
const TCP6_FLOWS: usize = 30;
const UDP4_FLOWS: usize = 90;
const UDP6_FLOWS: usize = 30;

/// One packet of a generated conversation.
struct Step {
    from_client: bool,
    /// TCP flags, or `None` for UDP.
    flags: Option<u8>,
    payload: usize,
}

/// A generated conversation and what the flow record must say about it.
struct GenFlow {
    client: (IpAddr, u16),
    server: (IpAddr, u16),
    transport: Transport,
    steps: Vec<Step>,
    pkts: [u64; 2],
    bytes: [u64; 2],
    state: EveFlowState,
    tcp_state: Option<&'static str>,
}

fn tcp_step(from_client: bool, flags: u8, payload: usize) -> Step {
    Step {
        from_client,
        flags: Some(flags),
        payload,
    }
}

fn udp_step(from_client: bool, payload: usize) -> Step {
    Step {
        from_client,
        flags: None,
        payload,
    }
}

fn flows() -> Vec<GenFlow> {
    let mut out = Vec::new();
    let mut add = |client: (IpAddr, u16),
                   server: (IpAddr, u16),
                   transport: Transport,
                   steps: Vec<Step>,
                   state: EveFlowState,
                   tcp_state: Option<&'static str>| {
        out.push(GenFlow {
            client,
            server,
            transport,
            steps,
            pkts: [0; 2],
            bytes: [0; 2],
            state,
            tcp_state,
        })
    };
    for i in 0..TCP4_FLOWS {
        let client = (
            IpAddr::from([10, 1, (i / 200) as u8, (i % 200) as u8 + 1]),
            40_000 + i as u16,
        );
        let server = (
            IpAddr::from([17, 253, 0, (i % 7) as u8 + 1]),
            [443, 8443, 5223][i % 3],
        );
        let steps = vec![
            tcp_step(true, SYN, 0),
            tcp_step(false, SYN | ACK, 0),
            tcp_step(true, ACK, 0),
            tcp_step(true, ACK | PSH, 100 + i % 50),
            tcp_step(false, ACK | PSH, 900 + i % 300),
            tcp_step(true, ACK, 0),
            tcp_step(true, FIN | ACK, 0),
            tcp_step(false, FIN | ACK, 0),
            tcp_step(true, ACK, 0),
        ];
        add(
            client,
            server,
            Transport::Tcp,
            steps,
            EveFlowState::Closed,
            Some("closed"),
        );
    }
    for i in 0..TCP6_FLOWS {
        let client = (
            format!("2001:db8:1::{:x}", i + 1).parse().unwrap(),
            50_000 + i as u16,
        );
        let server = ("2001:db8:ffff::80".parse().unwrap(), 8080);
        let steps = vec![
            tcp_step(true, SYN, 0),
            tcp_step(false, SYN | ACK, 0),
            tcp_step(true, ACK, 0),
            tcp_step(true, ACK | PSH, 300 + i),
            tcp_step(false, RST, 0),
        ];
        add(
            client,
            server,
            Transport::Tcp,
            steps,
            EveFlowState::Closed,
            Some("closed"),
        );
    }
    for i in 0..UDP4_FLOWS {
        let client = (
            IpAddr::from([192, 168, 10, (i % 250) as u8 + 1]),
            30_000 + i as u16,
        );
        let server = (IpAddr::from([198, 51, 100, (i % 5) as u8 + 1]), 4500);
        let steps = vec![
            udp_step(true, 60 + i),
            udp_step(false, 200 + i),
            udp_step(true, 40),
        ];
        add(
            client,
            server,
            Transport::Udp,
            steps,
            EveFlowState::Established,
            None,
        );
    }
    for i in 0..UDP6_FLOWS {
        let client = (
            format!("2001:db8:2::{:x}", i + 1).parse().unwrap(),
            20_000 + i as u16,
        );
        let server = ("2001:db8:ffff::53".parse().unwrap(), 9999);
        // One-way traffic: the flow stays `new`.
        let steps = vec![udp_step(true, 80 + i), udp_step(true, 80)];
        add(
            client,
            server,
            Transport::Udp,
            steps,
            EveFlowState::New,
            None,
        );
    }
    out
}

/// An Ethernet frame carrying one TCP or UDP segment, checksums filled in.
fn frame(
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    flags: Option<u8>,
    payload: usize,
    seq: u32,
) -> Vec<u8> {
    let body: Vec<u8> = (0..payload).map(|k| (k * 7 + 3) as u8).collect();
    let f = match flags {
        Some(f) => Frame::tcp(src, dst, f)
            .seq(seq)
            .ack(u32::from(f & ACK != 0)),
        None => Frame::udp(src, dst),
    };
    f.macs([0x02, 0, 0, 0, 0, 0x02], [0x02, 0, 0, 0, 0, 0x01])
        .build(&body)
}

/// Writes the capture (packets of all flows interleaved) and fills in the expected counters.
fn write_capture(path: &Path, flows: &mut [GenFlow]) {
    let mut frames = Vec::new();
    let mut ts = 1_705_831_323_000_000u64;
    let longest = flows.iter().map(|f| f.steps.len()).max().unwrap();
    for k in 0..longest {
        for f in flows.iter_mut() {
            let Some(step) = f.steps.get(k) else { continue };
            let (src, dst) = if step.from_client {
                (f.client, f.server)
            } else {
                (f.server, f.client)
            };
            let data = frame(src, dst, step.flags, step.payload, 1000 + k as u32);
            ts += 250;
            let d = usize::from(!step.from_client);
            f.pkts[d] += 1;
            f.bytes[d] += data.len() as u64;
            frames.push((ts, data));
        }
    }
    write_pcap(path, frames.iter().map(|(ts, f)| (*ts, f.as_slice())));
}

/// Starts `portolan replay CAPTURE --flows OUT`, stdout and stderr to files beside OUT.
fn start_replay(capture: &Path, out: &Path) -> Child {
    let log = |ext: &str| File::create(out.with_extension(ext)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_portolan"))
        .arg("replay")
        .arg(capture)
        .arg("--flows")
        .arg(out)
        .stdin(Stdio::null())
        .stdout(log("stdout"))
        .stderr(log("stderr"))
        .spawn()
        .expect("start portolan replay")
}

/// Waits for a replay (killing it after two minutes) and fails with its stderr unless it succeeded.
fn finish_replay(mut child: Child, out: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(out.with_extension("stderr")).unwrap_or_default();
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!(
            "portolan replay for {} failed ({s}):\n{stderr}",
            out.display()
        ),
        None => panic!(
            "portolan replay for {} ran over two minutes:\n{stderr}",
            out.display()
        ),
    }
}

#[test]
fn parallel_replays_write_identical_complete_flow_files() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("many_flows.pcap");
    let mut gen = flows();
    write_capture(&capture, &mut gen);

    let outs: Vec<PathBuf> = ["a", "b"]
        .iter()
        .map(|n| dir.path().join(format!("flows_{n}.json")))
        .collect();
    let children: Vec<Child> = outs.iter().map(|o| start_replay(&capture, o)).collect();
    for (child, out) in children.into_iter().zip(&outs) {
        finish_replay(child, out);
    }

    let a = std::fs::read(&outs[0]).unwrap();
    let b = std::fs::read(&outs[1]).unwrap();
    assert!(!a.is_empty(), "flow file is empty");
    assert!(
        a == b,
        "the two parallel replays wrote different flow files"
    );

    let text = String::from_utf8(a).unwrap();
    let records: Vec<FlowRecord> = text
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not an EVE flow record ({e}): {l}"))
        })
        .collect();
    assert_eq!(records.len(), gen.len(), "one record per generated flow");

    let expected: HashMap<_, &GenFlow> = gen
        .iter()
        .map(|f| {
            (
                (
                    f.client.0,
                    f.client.1,
                    f.server.0,
                    f.server.1,
                    f.transport.eve_name(),
                ),
                f,
            )
        })
        .collect();
    let mut seen_ids = std::collections::HashSet::new();
    for r in &records {
        let key = (
            r.src_ip,
            r.src_port,
            r.dest_ip,
            r.dest_port,
            r.proto.as_str(),
        );
        let f = expected.get(&key).unwrap_or_else(|| {
            panic!("record for a flow that was not generated (or with roles swapped): {key:?}")
        });
        assert!(
            seen_ids.insert(r.flow_id),
            "duplicate flow_id {}",
            r.flow_id
        );
        assert_eq!(r.event_type, "flow");
        assert_eq!(
            [r.flow.pkts_toserver, r.flow.pkts_toclient],
            f.pkts,
            "packets of {key:?}"
        );
        assert_eq!(
            [r.flow.bytes_toserver, r.flow.bytes_toclient],
            f.bytes,
            "bytes of {key:?}"
        );
        assert_eq!(r.flow.state, f.state, "state of {key:?}");
        assert_eq!(r.flow.reason, EveFlowReason::Shutdown, "reason of {key:?}");
        assert_eq!(
            r.tcp.as_ref().and_then(|t| t.state.as_deref()),
            f.tcp_state,
            "TCP state of {key:?}"
        );
        assert_eq!(
            r.community_id,
            community_id_v1(
                0,
                f.client.0,
                f.server.0,
                f.transport.ip_proto(),
                f.client.1,
                f.server.1
            )
        );
    }
    let tcp = records.iter().filter(|r| r.proto == "TCP").count();
    assert_eq!(tcp, TCP4_FLOWS + TCP6_FLOWS);
    assert_eq!(records.len() - tcp, UDP4_FLOWS + UDP6_FLOWS);
}
