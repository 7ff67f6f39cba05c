//! What the root package's integration tests share (frames come from `portolan_testkit`):
//! writing Ethernet capture files, running the `portolan` binary and reading the JSON it writes.
//!
//! It builds inputs and reads outputs only; it must not assert anything about Portolan's
//! behaviour beyond "the run succeeded". Each test binary uses a subset, hence the allow.
#![allow(dead_code)]

pub mod daemon;

use portolan_packet::capture::PcapWriter;
use portolan_packet::LinkType;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// 2023-11-14T22:13:20Z, µs: the first timestamp of the hand-built captures.
pub const TS0: u64 = 1_700_000_000_000_000;

/// Writes `frames` (capture time in µs, bytes) as an Ethernet pcap at `path`.
pub fn write_pcap<'a>(path: &Path, frames: impl IntoIterator<Item = (u64, &'a [u8])>) {
    let mut w = PcapWriter::create(path, LinkType::Ethernet, 65535).expect("create capture");
    for (ts, f) in frames {
        w.write(ts, f.len() as u32, f).expect("write frame");
    }
    w.finish().expect("finish capture");
}

/// Writes `frames` as an Ethernet pcap at `path`, the first at `ts0` µs, then one every
/// `step_us`.
pub fn write_pcap_spaced(path: &Path, frames: &[Vec<u8>], ts0: u64, step_us: u64) {
    write_pcap(
        path,
        frames
            .iter()
            .enumerate()
            .map(|(i, f)| (ts0 + i as u64 * step_us, f.as_slice())),
    );
}

/// Runs the `portolan` binary with `args` and waits for it.
pub fn portolan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portolan"))
        .args(args)
        .output()
        .expect("run portolan")
}

/// `p` as an argument (temporary paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Fails with the exit code and stderr unless the run succeeded.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "portolan failed ({:?}):\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The JSON document in `path` (a run summary).
pub fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The JSON lines in `path` (flow records, events, alerts), one value each.
pub fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// The shared real captures (`../shared/pcaps/ndpi` from the repository root); may be absent.
pub fn shared_captures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/pcaps/ndpi")
}

/// The synthetic site both schema tests validate: `portolan synth` seed 14, 20 devices, 1,500
/// flows, a fifth on non-standard ports. Returns (capture, inventory, device states) in `dir`.
#[allow(dead_code)]
pub fn synth_site(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (cap, inv, states) = (
        dir.join("synth.pcap"),
        dir.join("inventory.json"),
        dir.join("states.jsonl"),
    );
    assert_ok(&portolan(&[
        "synth",
        "--output",
        s(&cap),
        "--seed",
        "14",
        "--devices",
        "20",
        "--flows",
        "1500",
        "--nonstandard-share",
        "0.2",
        "--inventory",
        s(&inv),
        "--device-states",
        s(&states),
    ]));
    (cap, inv, states)
}

/// Fails, listing the first 20, when any of `n` records checked against `schema` (a schema's name
/// for the message) failed; prints the count either way.
pub fn assert_schema_valid(what: &str, schema: &str, n: usize, failures: &[String]) {
    assert!(n > 0, "{what}: no records");
    println!("{what}: {n} records, {} failures", failures.len());
    assert!(
        failures.is_empty(),
        "{} of {n} {what} records fail {schema}:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}
