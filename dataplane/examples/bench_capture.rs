//! Writes a synthetic Ethernet capture for replay throughput runs.
//!
//! Usage: `bench_capture OUT.pcap [PACKETS] [FLOWS]` (defaults 1,000,000 packets over 10,000
//! flows). Frames are IPv4 TCP (3 in 4 flows) and UDP between distinct endpoints, with payload
//! sizes cycling so the mean frame is close to 790 bytes; one packet every microsecond.

use portolan_packet::capture::PcapWriter;
use portolan_packet::LinkType;
use portolan_testkit::Frame;
use std::path::PathBuf;
use std::process::ExitCode;

/// Bytes every frame's payload is cut from.
const FILL: [u8; 1440] = [0x61; 1440];

/// Frame of `flow` (to the server or back), TCP (PSH|ACK, seq/ack 1) to 443 or UDP to 53, with
/// `payload` bytes, built into `buf` by the repository's one frame builder.
fn frame(buf: &mut Vec<u8>, flow: u32, to_server: bool, tcp: bool, payload: usize) {
    let client = [10, (flow >> 16) as u8, (flow >> 8) as u8, flow as u8];
    let server = [172, 16, (flow % 7) as u8, 1];
    let cport = 20_000 + (flow % 40_000) as u16;
    let sport = if tcp { 443 } else { 53 };
    let (src, dst) = if to_server {
        ((client, cport), (server, sport))
    } else {
        ((server, sport), (client, cport))
    };
    let f = if tcp {
        Frame::tcp(src, dst, 0x18).seq(1).ack(1)
    } else {
        Frame::udp(src, dst)
    };
    f.build_into(buf, &FILL[..payload.min(FILL.len())]);
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next().map(PathBuf::from) else {
        eprintln!("usage: bench_capture OUT.pcap [PACKETS] [FLOWS]");
        return ExitCode::from(2);
    };
    let packets: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let flows: u32 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000)
        .max(1);
    let mut w = match PcapWriter::create(&out, LinkType::Ethernet, 65535) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("cannot create {}: {e}", out.display());
            return ExitCode::from(1);
        }
    };
    // Payloads 0..1440 in steps; mean frame = 54 + mean payload ≈ 790 bytes.
    const PAYLOADS: [usize; 8] = [0, 1440, 200, 1440, 64, 1440, 1200, 100];
    let mut buf = Vec::with_capacity(1600);
    for i in 0..packets {
        let flow = (i % flows as u64) as u32;
        let tcp = flow % 4 != 3;
        let to_server = (i / flows as u64).is_multiple_of(2);
        frame(&mut buf, flow, to_server, tcp, PAYLOADS[(i % 8) as usize]);
        if let Err(e) = w.write(1_700_000_000_000_000 + i, buf.len() as u32, &buf) {
            eprintln!("cannot write {}: {e}", out.display());
            return ExitCode::from(1);
        }
    }
    if let Err(e) = w.finish() {
        eprintln!("cannot write {}: {e}", out.display());
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
