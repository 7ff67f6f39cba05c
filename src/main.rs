//! `portolan`: the appliance binary and its subcommands.
//!
//! Owns: command-line parsing, where results are written (flows as EVE JSON lines, the summary on
//! stderr and optionally as JSON), and exit codes (0 ok, 1 failure, 2 bad input). Must not:
//! contain dataplane logic; it calls `portolan_dataplane`.

use clap::{Args, Parser, Subcommand};
use portolan_dataplane::replay::check_captures;
use portolan_dataplane::{replay, FlowOnly, ReplayConfig, ReplayError, ReplayReport};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Finds managed iOS devices whose apps speak a known protocol on a non-standard port.
#[derive(Debug, Parser)]
#[command(name = "portolan", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replays capture files through the DPDK dataplane (net_pcap) and reports flows.
    Replay(ReplayArgs),
}

/// Options of `portolan replay`.
#[derive(Debug, Args)]
struct ReplayArgs {
    /// Capture (pcap or pcapng) read by RX queue 0.
    #[arg(value_name = "CAPTURE")]
    capture: PathBuf,
    /// A further capture, read by its own RX queue and worker (repeatable).
    #[arg(long = "queue-capture", value_name = "FILE")]
    queue_captures: Vec<PathBuf>,
    /// Number of workers; must equal the number of captures (the default).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Write one EVE flow record per line (JSON) to FILE.
    #[arg(long, value_name = "FILE")]
    flows: Option<PathBuf>,
    /// Write the run summary as one JSON object to FILE.
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
    /// Mbufs in the RX pool.
    #[arg(long, value_name = "N", default_value_t = 8191)]
    mbufs: u32,
    /// EAL memory in megabytes (no hugepages needed).
    #[arg(long, value_name = "MB", default_value_t = 128)]
    memory_mb: u32,
    /// Active flows per worker (the flow table is allocated up front).
    #[arg(long, value_name = "N")]
    flow_capacity: Option<usize>,
}

/// A failure with its exit code.
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    fn bad_input(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 2,
        }
    }
    fn runtime(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 1,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => run_replay(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("portolan: error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// Creates an output file up front so a bad path fails before the dataplane starts.
fn create_output(path: &Path, what: &str) -> Result<BufWriter<File>, Failure> {
    File::create(path).map(BufWriter::new).map_err(|e| {
        Failure::bad_input(format!("cannot create {what} file {}: {e}", path.display()))
    })
}

fn run_replay(args: ReplayArgs) -> Result<(), Failure> {
    let mut captures = vec![args.capture];
    captures.extend(args.queue_captures);
    let workers = args.workers.unwrap_or(captures.len());
    if workers == 0 {
        return Err(Failure::bad_input("--workers must be at least 1"));
    }
    if workers > 1 && captures.len() == 1 {
        return Err(Failure::bad_input(format!(
            "--workers {workers} with a single capture: sharding lands with `portolan shard`; \
             for now give one capture per worker with --queue-capture FILE"
        )));
    }
    if workers != captures.len() {
        return Err(Failure::bad_input(format!(
            "--workers {workers} but {} captures: replay runs one worker per capture",
            captures.len()
        )));
    }
    let mut config = ReplayConfig::new(captures);
    config.workers = workers;
    config.mbufs = args.mbufs;
    config.memory_mb = args.memory_mb;
    if let Some(cap) = args.flow_capacity {
        config.flow_table.capacity = cap;
    }
    // Check the captures before creating any output file, so bad input leaves nothing behind.
    check_captures(&config.captures).map_err(|e| Failure::bad_input(e.to_string()))?;
    let mut flows_out = args
        .flows
        .as_deref()
        .map(|p| create_output(p, "flows").map(|w| (p, w)))
        .transpose()?;
    let mut summary_out = args
        .summary
        .as_deref()
        .map(|p| create_output(p, "summary").map(|w| (p, w)))
        .transpose()?;

    let outcome = replay(&config, |_| FlowOnly).map_err(|e: ReplayError| {
        if e.is_bad_input() {
            Failure::bad_input(e.to_string())
        } else {
            Failure::runtime(e.to_string())
        }
    })?;

    if let Some((path, out)) = flows_out.as_mut() {
        let write_err = |e: std::io::Error| {
            Failure::runtime(format!("cannot write flows file {}: {e}", path.display()))
        };
        for rec in outcome.eve_records() {
            serde_json::to_writer(&mut *out, &rec).map_err(|e| write_err(e.into()))?;
            out.write_all(b"\n").map_err(write_err)?;
        }
        out.flush().map_err(write_err)?;
    }
    print_summary(&outcome.report);
    if let Some((path, out)) = summary_out.as_mut() {
        let write_err = |e: std::io::Error| {
            Failure::runtime(format!("cannot write summary file {}: {e}", path.display()))
        };
        serde_json::to_writer_pretty(&mut *out, &outcome.report)
            .map_err(|e| write_err(e.into()))?;
        out.write_all(b"\n").map_err(write_err)?;
        out.flush().map_err(write_err)?;
    }
    let r = &outcome.report;
    if !r.port_counters_match {
        return Err(Failure::runtime(format!(
            "the port counted {} packets (rx_nombuf {}, ierrors {}) but the workers saw {}: packets were lost",
            r.port.ipackets, r.port.rx_nombuf, r.port.ierrors, r.packets
        )));
    }
    Ok(())
}

/// The human summary, on stderr.
fn print_summary(r: &ReplayReport) {
    eprintln!(
        "replay: {} packets, {} bytes, {} flows ({} link) in {:.3} s: {:.3} Mpps, {:.3} Gbit/s",
        r.packets, r.bytes, r.flows, r.link_type, r.wall_seconds, r.mpps, r.gbps
    );
    let drops: Vec<String> = r
        .drops
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if drops.is_empty() {
        eprintln!("drops: none");
    } else {
        eprintln!("drops: {}", drops.join(", "));
    }
    for w in &r.workers {
        eprintln!(
            "worker {} (lcore {}, {}): {} packets, {} flows, {:.0} cycles/packet",
            w.queue, w.lcore, w.capture, w.packets, w.flows, w.cycles_per_packet
        );
    }
}
