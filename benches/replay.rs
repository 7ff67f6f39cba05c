//! `cargo bench --bench replay`: the replay throughput measurement of `scripts/bench`, small.
//!
//! Generates a synthetic egress capture (`portolan synth`, 300,000 packets, 760 bytes average)
//! in a temporary directory, shards it in two (`portolan shard`), and runs the real binary
//! (one EAL per process): `portolan replay` with 1 and 2 workers and with `--no-classify`, and
//! `dpdk-testpmd` rxonly on the same file when it is installed. Prints the median of
//! `PORTOLAN_BENCH_RUNS` runs (default 3) of each. `scripts/bench` is the full benchmark (3 M
//! packets, ndpiReader, steady state, the shared captures).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PORTOLAN: &str = env!("CARGO_BIN_EXE_portolan");
const PACKETS: u64 = 300_000;

fn portolan(args: &[&str]) -> std::process::Output {
    let out = Command::new(PORTOLAN)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {PORTOLAN}: {e}"));
    assert!(
        out.status.success(),
        "portolan {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One replay: (Mpps over the workers' wall time, Gbit/s, per-worker Mpps).
fn replay_once(dir: &Path, captures: &[PathBuf], extra: &[&str]) -> (f64, f64, Vec<f64>) {
    let summary = dir.join("summary.json");
    let mut args: Vec<String> = vec!["replay".into(), captures[0].display().to_string()];
    for c in &captures[1..] {
        args.push("--queue-capture".into());
        args.push(c.display().to_string());
    }
    args.push("--summary".into());
    args.push(summary.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    portolan(&refs);
    let text = std::fs::read_to_string(&summary).expect("read summary");
    let s: serde_json::Value = serde_json::from_str(&text).expect("summary is JSON");
    assert_eq!(
        s["packets"].as_u64(),
        Some(PACKETS),
        "every packet replayed"
    );
    let per_worker = s["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| {
            let p = w["packets"].as_f64().unwrap_or(0.0);
            let t = w["busy_seconds"].as_f64().unwrap_or(0.0);
            if t > 0.0 {
                p / t / 1e6
            } else {
                0.0
            }
        })
        .collect();
    (
        s["mpps"].as_f64().unwrap_or(0.0),
        s["gbps"].as_f64().unwrap_or(0.0),
        per_worker,
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// testpmd rxonly over the capture: Mpps from its busy cycles, or `None` when not installed.
fn testpmd_once(capture: &Path) -> Option<f64> {
    use std::io::Write;
    let mut child = Command::new("dpdk-testpmd")
        .args([
            "--no-huge",
            "--no-pci",
            "-m",
            "128",
            "--no-shconf",
            "--no-telemetry",
            &format!("--file-prefix=bench-replay-{}", std::process::id()),
            "--log-level=*:error",
            "-l",
            "0-1",
            &format!("--vdev=net_pcap0,rx_pcap={}", capture.display()),
            "--",
            "--forward-mode=rxonly",
            "--no-flush-rx",
            "--record-core-cycles",
            "--total-num-mbufs=8191",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // Non-interactive testpmd forwards until Enter; 300,000 packets take well under 2 s.
    std::thread::sleep(Duration::from_secs(3));
    let mut stdin = child.stdin.take()?;
    let _ = stdin.write_all(b"\n");
    drop(stdin);
    let out = child.wait_with_output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("CPU cycles/packet="))?;
    let cpp: f64 = line
        .split("CPU cycles/packet=")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let mhz: f64 = line
        .split(" at ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(mhz / cpp)
}

fn main() {
    let runs: usize = std::env::var("PORTOLAN_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("egress.pcap");
    let t = Instant::now();
    portolan(&[
        "synth",
        "--packets",
        &PACKETS.to_string(),
        "--seed",
        "1",
        "--avg-packet-size",
        "760",
        "--output",
        capture.to_str().expect("utf8 temp path"),
    ]);
    let shard_dir = dir.path().join("shards");
    portolan(&[
        "shard",
        capture.to_str().expect("utf8"),
        "--queues",
        "2",
        "--out-dir",
        shard_dir.to_str().expect("utf8"),
    ]);
    let shards = vec![
        shard_dir.join("egress.q0.pcap"),
        shard_dir.join("egress.q1.pcap"),
    ];
    println!(
        "replay bench: {PACKETS} packets generated and sharded in {:.1} s; median of {runs} runs",
        t.elapsed().as_secs_f64()
    );

    let one = vec![capture.clone()];
    let cases: [(&str, &[PathBuf], &[&str]); 3] = [
        ("replay, 1 worker (full path)", &one, &[]),
        ("replay, 2 workers (full path)", &shards, &[]),
        ("replay --no-classify, 1 worker", &one, &["--no-classify"]),
    ];
    for (name, captures, extra) in cases {
        let mut mpps = Vec::with_capacity(runs);
        let mut gbps = Vec::with_capacity(runs);
        let mut per_worker = Vec::with_capacity(runs);
        for _ in 0..runs {
            let (m, g, w) = replay_once(dir.path(), captures, extra);
            mpps.push(m);
            gbps.push(g);
            per_worker.push(w.iter().sum::<f64>() / w.len().max(1) as f64);
        }
        println!(
            "{name:34} {:7.3} Mpps {:7.2} Gbit/s  ({:.3} Mpps per worker)",
            median(mpps),
            median(gbps),
            median(per_worker)
        );
    }
    let tp: Vec<f64> = (0..runs).filter_map(|_| testpmd_once(&capture)).collect();
    if tp.is_empty() {
        println!("dpdk-testpmd: not run (not installed or no cycle figures)");
    } else {
        println!(
            "{:34} {:7.3} Mpps (net_pcap I/O limit)",
            "dpdk-testpmd rxonly, 1 core",
            median(tp)
        );
    }
}
