//! `portolan`: the appliance binary and its subcommands.
//!
//! Owns: command-line parsing, where results are written (flows as EVE JSON lines, the summary on
//! stderr and optionally as JSON), and exit codes (0 ok, 1 failure, 2 bad input). Must not:
//! contain dataplane logic; it calls `portolan_dataplane`.

mod config;
mod daemon;
mod pipeline;
mod staged;
mod token_cmd;

use clap::{Args, Parser, Subcommand};
use portolan_classify::{ClassifyConfig, DatabaseSource};
use portolan_dataplane::runtime::offline::check_captures;
use portolan_dataplane::runtime::ClassifierSetupError;
use portolan_dataplane::{
    replay_observers, Classifiers, DrainOptions, DrainStats, FlowEventDrain, FlowOnly,
    PacketObserver, ReplayConfig, ReplayError, ReplayOutcome, ReplayReport,
};
use portolan_hwconfig::cpus::spare_cpus;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// The signature directory of the source tree this binary was built from.
const BUILD_SIGNATURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dataplane/signatures");

/// Environment variable naming the signature directory (overridden by `--signatures`).
const SIGNATURES_ENV: &str = "PORTOLAN_SIGNATURES";

/// `portolan --version`: the package version, the git revision built and the DPDK and Hyperscan
/// versions built against (see `build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("PORTOLAN_GIT_REVISION"),
    ", DPDK ",
    env!("PORTOLAN_DPDK_VERSION"),
    ", Hyperscan ",
    env!("PORTOLAN_HYPERSCAN_VERSION"),
    ")"
);

/// What this build is, for the `portolan_build_info` metric.
fn build_info() -> portolan_api::BuildInfo {
    portolan_api::BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        revision: env!("PORTOLAN_GIT_REVISION").to_string(),
        dpdk: env!("PORTOLAN_DPDK_VERSION").to_string(),
        hyperscan: env!("PORTOLAN_HYPERSCAN_VERSION").to_string(),
    }
}

/// Finds managed iOS devices whose apps speak a known protocol on a non-standard port.
#[derive(Debug, Parser)]
#[command(name = "portolan", version = VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replays capture files through the DPDK dataplane (net_pcap) and reports flows.
    Replay(Box<ReplayArgs>),
    /// Splits a capture into one capture per RX queue by the symmetric Toeplitz RSS hash a NIC
    /// would use (net_pcap has no RSS); `replay` then feeds one to each queue.
    Shard(ShardArgs),
    /// Writes a deterministic synthetic egress capture of managed iPhones/iPads, with optional
    /// ground truth (TSV), MDM inventory (Jamf-shaped JSON) and device-state events (JSON lines).
    Synth(portolan_synth::SynthArgs),
    /// Probes the ports of a hardware description (device info, RSS, rte_flow_validate) and
    /// prints the offload plan: which offloads run in the NIC and which fall back to software.
    Hwcheck(HwcheckArgs),
    /// Runs the appliance: the dataplane from the configuration's hardware description, the
    /// control plane and its store, and the admin API (TLS). SIGHUP reloads roles, baselines
    /// and exceptions; SIGTERM stops gracefully.
    Run(daemon::RunArgs),
    /// Creates, revokes and lists admin API bearer tokens (`create` prints the token alone on
    /// stdout).
    Token(token_cmd::TokenArgs),
}

/// Options of `portolan hwcheck`.
#[derive(Debug, Args)]
struct HwcheckArgs {
    /// Hardware description (TOML) to check: a description of its own
    /// (`hwconfig/examples/*.toml`) or an appliance configuration, whose `[hardware]` is checked.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Print the probe results and the plan as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Probe without hugepages even when the description asks for them.
    #[arg(long)]
    no_huge: bool,
}

/// Options of `portolan shard`.
#[derive(Debug, Args)]
struct ShardArgs {
    /// Capture (pcap or pcapng) to split.
    #[arg(value_name = "CAPTURE")]
    capture: PathBuf,
    /// Number of RX queues (output captures).
    #[arg(long, value_name = "N")]
    queues: u16,
    /// Directory for the output captures `<stem>.q<i>.pcap` (created if missing).
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    /// Hardware description whose `[rss]` key and queue mapping to use (default: the symmetric
    /// key 6d5a… and a 128-entry round-robin RETA).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
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
    /// Number of workers (default: one per capture). With a single capture and N > 1, the
    /// capture is first split into N per-queue captures by the symmetric Toeplitz RSS hash
    /// (as `portolan shard`, into a temporary directory), one worker each.
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Hardware description whose `[rss]` key and queue mapping shard the capture for
    /// `--workers N` (default: the symmetric key 6d5a… and a 128-entry round-robin RETA).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Steady state: load each capture into mbufs once (net_pcap `infinite_rx=1`) and loop
    /// over it from memory for S seconds (the rate then excludes file I/O; frames carry no
    /// timestamps). Raises --mbufs and --memory-mb to fit the largest capture.
    #[arg(long, value_name = "S")]
    infinite_rx_seconds: Option<f64>,
    /// Managed devices' subnet (CIDR, repeatable): frames with neither address in one of them
    /// are counted as `prefiltered` and skipped before the flow table — the software fallback
    /// of the NIC prefilter that `[offloads] prefilter_managed_subnets` asks for.
    #[arg(long = "managed-subnet", value_name = "CIDR", value_parser = parse_managed_subnet)]
    managed_subnets: Vec<ipnet::IpNet>,
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
    /// Signature directory (default: $PORTOLAN_SIGNATURES, else `signatures` or
    /// `../share/portolan/signatures` beside the executable, else the source tree's
    /// `dataplane/signatures`).
    #[arg(long, value_name = "DIR")]
    signatures: Option<PathBuf>,
    /// Port registry override (TOML: `[proto] tcp = [..] udp = [..]` replaces that list).
    #[arg(long, value_name = "FILE")]
    ports: Option<PathBuf>,
    /// Payload bytes of each flow direction the classifier ever looks at.
    #[arg(long, value_name = "N", default_value_t = ClassifyConfig::default().max_bytes)]
    inspect_bytes: u32,
    /// Payload-carrying packets of each flow direction the classifier looks at.
    #[arg(long, value_name = "M", default_value_t = ClassifyConfig::default().max_packets)]
    inspect_packets: u16,
    /// Flows only: no classification (to measure what classification costs).
    #[arg(long, conflicts_with_all = [
        "signatures", "ports", "events", "inventory", "leases", "roles", "device_states", "db",
        "control_config", "eve", "ocsf",
    ])]
    no_classify: bool,
    /// Capacity of each worker's flow-event queue to the control plane (events that do not
    /// fit are counted as `ring_drops`).
    #[arg(long, value_name = "N", default_value_t = 16384)]
    event_queue: usize,
    /// Write every flow event handed to the control plane as one JSON line (EVE flow form).
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// MDM inventory (Jamf Pro, Microsoft Graph or Apple MDM responses, JSON or plist;
    /// repeatable). Any control option turns the control plane on: it judges every classified
    /// flow against roles and baselines in device context and writes alerts.
    #[arg(long, value_name = "FILE")]
    inventory: Vec<PathBuf>,
    /// Kea DHCP lease CSV joining device Wi-Fi MACs to addresses over time.
    #[arg(long, value_name = "FILE")]
    leases: Option<PathBuf>,
    /// Roles, baselines and exceptions (TOML; default: the shipped `control/data/roles.toml`).
    #[arg(long, value_name = "FILE")]
    roles: Option<PathBuf>,
    /// Device-state events, one JSON object per line (lock state, app state, last interaction).
    #[arg(long, value_name = "FILE")]
    device_states: Option<PathBuf>,
    /// SQLite store keeping inventory, device states, findings and alerts across runs
    /// (default: an in-memory store).
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,
    /// Control plane tunables (TOML sections `[scoring]`, `[attribution]`, `[learning]`, `[ocsf]`).
    #[arg(long, value_name = "FILE")]
    control_config: Option<PathBuf>,
    /// Write this run's alerts as Suricata EVE JSON lines (`event_type: alert`).
    #[arg(long, value_name = "FILE")]
    eve: Option<PathBuf>,
    /// Write this run's alerts as OCSF Detection Finding (class 2004) JSON lines.
    #[arg(long, value_name = "FILE")]
    ocsf: Option<PathBuf>,
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
        Command::Replay(args) => run_replay(*args),
        Command::Shard(args) => run_shard(args),
        Command::Synth(args) => run_synth(&args),
        Command::Hwcheck(args) => run_hwcheck(&args),
        Command::Run(args) => daemon::run_daemon(args),
        Command::Token(args) => token_cmd::run_token(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("portolan: error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// Runs `portolan synth`: bad options or catalogue are bad input, failed writes are failures.
fn run_synth(args: &portolan_synth::SynthArgs) -> Result<(), Failure> {
    portolan_synth::run_cli(args)
        .map(|_| ())
        .map_err(|e| match e {
            portolan_synth::SynthError::Io(..) => Failure::runtime(e.to_string()),
            _ => Failure::bad_input(e.to_string()),
        })
}

/// A `--managed-subnet` value: a CIDR network with no host bits set.
fn parse_managed_subnet(s: &str) -> Result<ipnet::IpNet, String> {
    let net: ipnet::IpNet = s
        .parse()
        .map_err(|e| format!("{s:?} is not a CIDR network such as 10.20.0.0/16: {e}"))?;
    if net.trunc() != net {
        return Err(format!(
            "{net} has host bits set (did you mean {}?)",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Creates an output file up front (under a temporary name, see [`staged`]) so a bad path fails
/// before the dataplane starts.
fn create_output(
    staged: &mut staged::StagedOutputs,
    path: &Path,
    what: &str,
) -> Result<BufWriter<File>, Failure> {
    staged.create(path).map_err(|e| {
        Failure::bad_input(format!("cannot create {what} file {}: {e}", path.display()))
    })
}

/// `portolan replay`: the flows, summary and events files appear only when the run succeeds.
fn run_replay(args: ReplayArgs) -> Result<(), Failure> {
    let mut staged = staged::StagedOutputs::default();
    run_replay_staged(args, &mut staged)?;
    staged.commit().map_err(|(path, e)| {
        Failure::runtime(format!(
            "cannot rename the output into {}: {e}",
            path.display()
        ))
    })
}

fn run_replay_staged(args: ReplayArgs, staged: &mut staged::StagedOutputs) -> Result<(), Failure> {
    let control_inputs = pipeline::ControlInputs {
        inventory: args.inventory,
        leases: args.leases,
        roles: args.roles,
        device_states: args.device_states,
        db: args.db,
        control_config: args.control_config,
        eve: args.eve,
        ocsf: args.ocsf,
    };
    let mut captures = vec![args.capture];
    captures.extend(args.queue_captures);
    let workers = args.workers.unwrap_or(captures.len());
    if workers == 0 {
        return Err(Failure::bad_input("--workers must be at least 1"));
    }
    // With one capture and several workers, shard it as a NIC's RSS would spread it; the
    // directory lives until the replay is over.
    let mut _shard_dir = None;
    if workers > 1 && captures.len() == 1 {
        let (dir, shards) = shard_for_workers(&captures[0], workers, args.config.as_deref())?;
        _shard_dir = Some(dir);
        captures = shards;
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
    if let Some(seconds) = args.infinite_rx_seconds {
        size_for_infinite_rx(&mut config, seconds)?;
    }
    if let Some(cap) = args.flow_capacity {
        config.flow_table.capacity = cap;
    }
    config.managed_subnets = args.managed_subnets;
    // Finished flows are kept only to write them; otherwise they are counted and dropped.
    config.keep_flows = args.flows.is_some();
    // Check the captures and the signatures before creating any output file, so bad input
    // leaves nothing behind.
    check_captures(&config.captures).map_err(|e| Failure::bad_input(e.to_string()))?;
    let signatures = if args.no_classify {
        None
    } else {
        let sig_dir = signature_dir(args.signatures)?;
        if args.inspect_bytes == 0 || args.inspect_packets == 0 || args.event_queue == 0 {
            return Err(Failure::bad_input(
                "--inspect-bytes, --inspect-packets and --event-queue must be at least 1",
            ));
        }
        let classify_config = ClassifyConfig {
            max_bytes: args.inspect_bytes,
            max_packets: args.inspect_packets,
            ..ClassifyConfig::default()
        };
        let classifiers = Classifiers::load(&sig_dir, args.ports.as_deref(), classify_config)
            .map_err(|e| match e {
                ClassifierSetupError::PortOverride(m) => {
                    Failure::bad_input(format!("port override: {m}"))
                }
                other => Failure::bad_input(other.to_string()),
            })?;
        let sig_line = format!(
            "signatures: {} protocols, {} patterns from {} ({})",
            classifiers.protocols(),
            classifiers.database().patterns,
            sig_dir.display(),
            match &classifiers.database().source {
                DatabaseSource::Cache(p) => format!("cached database {}", p.display()),
                DatabaseSource::Compiled => "compiled".to_string(),
                DatabaseSource::Empty => "no patterns".to_string(),
            }
        );
        Some((classifiers, sig_line))
    };
    // The control plane reads its files now: a bad one fails before any output exists and
    // before the EAL starts.
    let alert_pipeline = match &signatures {
        Some((classifiers, _)) if control_inputs.any() => {
            let ports = Arc::clone(classifiers.ports());
            let (p, warnings) =
                pipeline::AlertPipeline::prepare(&control_inputs, ports).map_err(|e| Failure {
                    message: e.message,
                    code: if e.bad_input { 2 } else { 1 },
                })?;
            for w in warnings {
                eprintln!("portolan: warning: {w}");
            }
            Some(p)
        }
        _ => None,
    };
    let mut flows_out = args
        .flows
        .as_deref()
        .map(|p| create_output(staged, p, "flows").map(|w| (p, w)))
        .transpose()?;
    let mut summary_out = args
        .summary
        .as_deref()
        .map(|p| create_output(staged, p, "summary").map(|w| (p, w)))
        .transpose()?;

    let replay_err = |e: ReplayError| {
        if e.is_bad_input() {
            Failure::bad_input(e.to_string())
        } else {
            Failure::runtime(e.to_string())
        }
    };
    let Some((classifiers, sig_line)) = signatures else {
        let mut outcome = replay_observers(&config, vec![FlowOnly; workers]).map_err(replay_err)?;
        account_truncated_tails(&mut outcome.report, &config.captures);
        return write_results(
            &outcome,
            None,
            None,
            flows_out.as_mut(),
            summary_out.as_mut(),
        );
    };

    // Hyperscan scratch is allocated here, once per worker, before any lcore runs.
    let (observers, receiver) = classifiers
        .observers(workers, args.event_queue)
        .map_err(|e| match e {
            ClassifierSetupError::Queues(m) => Failure::bad_input(format!("--event-queue: {m}")),
            other => Failure::runtime(other.to_string()),
        })?;
    let mut events_out = args
        .events
        .as_deref()
        .map(|p| create_output(staged, p, "events").map(|w| (p, w)))
        .transpose()?;
    // The drain thread starts before the EAL (threads created later inherit the main lcore's
    // affinity) and pins itself to a CPU no worker uses, when there is one. It feeds the
    // control plane, which judges each drained batch and writes the alerts.
    let drain = FlowEventDrain::spawn(
        receiver,
        pipeline::RunConsumer {
            events: events_out.is_some().then(Vec::new),
            alerts: alert_pipeline,
        },
        DrainOptions {
            cpus: spare_cpus(workers),
            ..DrainOptions::default()
        },
    )
    .map_err(|e| Failure::runtime(format!("cannot start the flow event thread: {e}")))?;
    let replayed = replay_observers(&config, observers);
    let drained = drain.finish();
    let mut outcome = replayed.map_err(replay_err)?;
    account_truncated_tails(&mut outcome.report, &config.captures);
    let (consumer, stats) = drained.map_err(|e| Failure::runtime(e.to_string()))?;
    let alerts = consumer
        .alerts
        .map(pipeline::AlertPipeline::finish)
        .transpose()
        .map_err(|e| Failure::runtime(e.message))?;
    let events = consumer.events.unwrap_or_default();
    if let Some((path, out)) = events_out.as_mut() {
        let write_err = |e: std::io::Error| {
            Failure::runtime(format!("cannot write events file {}: {e}", path.display()))
        };
        for ev in &events {
            serde_json::to_writer(&mut *out, &ev.to_eve_json()).map_err(|e| write_err(e.into()))?;
            out.write_all(b"\n").map_err(write_err)?;
        }
        out.flush().map_err(write_err)?;
    }
    eprintln!("{sig_line}");
    write_results(
        &outcome,
        Some(&stats),
        alerts.as_ref(),
        flows_out.as_mut(),
        summary_out.as_mut(),
    )
}

/// Drop reason of a capture whose last record is cut short.
const TRUNCATED_RECORD: &str = "truncated_capture_record";

/// Bytes after the last whole record of a classic pcap file (`None` for pcapng, an unreadable
/// file, or one that ends on a record boundary). Reads only the record headers.
fn pcap_truncated_tail(path: &Path) -> Option<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let mut hdr = [0u8; 24];
    f.read_exact(&mut hdr).ok()?;
    let magic = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    let big = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => false,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => true,
        _ => return None,
    };
    let mut at = 24u64;
    loop {
        if at == len {
            return None;
        }
        if at + 16 > len {
            return Some(len - at);
        }
        f.seek(SeekFrom::Start(at + 8)).ok()?;
        let mut incl = [0u8; 4];
        f.read_exact(&mut incl).ok()?;
        let incl = if big {
            u32::from_be_bytes(incl)
        } else {
            u32::from_le_bytes(incl)
        };
        let next = at + 16 + u64::from(incl);
        if next > len {
            return Some(len - at);
        }
        at = next;
    }
}

/// The PMD counts a capture's cut-short last record as an input error; when every input error
/// of the port is such a record (and nothing else was lost), they become the drop reason
/// `truncated_capture_record`, the port counters are reconciled, and each capture is named on
/// stderr, instead of a "packets were lost" failure.
fn account_truncated_tails(report: &mut ReplayReport, captures: &[PathBuf]) {
    if report.port_counters_match
        || report.port.ierrors == 0
        || report.port.rx_nombuf != 0
        || report.port.ipackets != report.packets
    {
        return;
    }
    let truncated: Vec<(&PathBuf, u64)> = captures
        .iter()
        .filter_map(|c| pcap_truncated_tail(c).map(|bytes| (c, bytes)))
        .collect();
    if truncated.len() as u64 != report.port.ierrors {
        return;
    }
    for (c, bytes) in &truncated {
        eprintln!(
            "portolan: warning: {} ends in a record cut short ({bytes} bytes after the last whole \
             record); it is counted as drop reason {TRUNCATED_RECORD}",
            c.display()
        );
    }
    report
        .drops
        .insert(TRUNCATED_RECORD, truncated.len() as u64);
    report.port_counters_match = true;
}

/// Where the signatures are: `--signatures`, else `$PORTOLAN_SIGNATURES`, else beside the
/// executable (`signatures`, `../share/portolan/signatures`), else the source tree's.
fn signature_dir(arg: Option<PathBuf>) -> Result<PathBuf, Failure> {
    let not_found = |p: &Path, from: &str| {
        Failure::bad_input(format!(
            "signature directory {} (from {from}) not found: give --signatures DIR or set {SIGNATURES_ENV}",
            p.display()
        ))
    };
    if let Some(p) = arg {
        return if p.is_dir() {
            Ok(p)
        } else {
            Err(not_found(&p, "--signatures"))
        };
    }
    if let Some(p) = std::env::var_os(SIGNATURES_ENV).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_dir() {
            Ok(p)
        } else {
            Err(not_found(&p, SIGNATURES_ENV))
        };
    }
    let mut tried = Vec::new();
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        tried.push(exe_dir.join("signatures"));
        tried.push(exe_dir.join("../share/portolan/signatures"));
    }
    tried.push(PathBuf::from(BUILD_SIGNATURES));
    match tried.iter().find(|p| p.is_dir()) {
        Some(p) => Ok(p.clone()),
        None => Err(Failure::bad_input(format!(
            "no signature directory found (tried {}): give --signatures DIR or set {SIGNATURES_ENV}",
            tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

type Output<'a> = Option<&'a mut (&'a Path, BufWriter<File>)>;

/// Writes the flow records and the summary, then checks that nothing was lost.
fn write_results<O: PacketObserver>(
    outcome: &ReplayOutcome<O>,
    drain: Option<&DrainStats>,
    alerts: Option<&pipeline::AlertSummary>,
    flows_out: Output<'_>,
    summary_out: Output<'_>,
) -> Result<(), Failure> {
    if let Some((path, out)) = flows_out {
        let write_err = |e: std::io::Error| {
            Failure::runtime(format!("cannot write flows file {}: {e}", path.display()))
        };
        for rec in outcome.eve_records() {
            serde_json::to_writer(&mut *out, &rec).map_err(|e| write_err(e.into()))?;
            out.write_all(b"\n").map_err(write_err)?;
        }
        out.flush().map_err(write_err)?;
    }
    print_summary(&outcome.report, drain);
    if let Some(a) = alerts {
        pipeline::print_alert_summary(a);
    }
    if let Some((path, out)) = summary_out {
        let write_err = |e: std::io::Error| {
            Failure::runtime(format!("cannot write summary file {}: {e}", path.display()))
        };
        let mut summary = serde_json::to_value(&outcome.report).map_err(|e| write_err(e.into()))?;
        if let (Some(d), Some(obj)) = (drain, summary.as_object_mut()) {
            obj.insert("flow_events_received".into(), d.received.into());
            obj.insert(
                "dns_answer_events_received".into(),
                d.dns_answers_received.into(),
            );
        }
        if let (Some(a), Some(obj)) = (alerts, summary.as_object_mut()) {
            let a = serde_json::to_value(a).map_err(|e| write_err(e.into()))?;
            obj.insert("alerts".into(), a);
        }
        serde_json::to_writer_pretty(&mut *out, &summary).map_err(|e| write_err(e.into()))?;
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
    if let (Some(c), Some(d)) = (&r.classification, drain) {
        if c.flow_events != d.received || c.dns_answer_events != d.dns_answers_received {
            return Err(Failure::runtime(format!(
                "the workers queued {} flow events and {} DNS-answer events but the drain thread \
                 received {} and {}",
                c.flow_events, c.dns_answer_events, d.received, d.dns_answers_received
            )));
        }
    }
    Ok(())
}

/// Splits `capture` into `workers` per-queue captures in a new temporary directory with the
/// symmetric Toeplitz hash (key and mapping from the hardware description `config` when
/// given), as `portolan shard` does; returns the directory (removed when dropped) and the
/// shards in queue order.
fn shard_for_workers(
    capture: &Path,
    workers: usize,
    config: Option<&Path>,
) -> Result<(tempfile::TempDir, Vec<PathBuf>), Failure> {
    use portolan_hwconfig::{shard_capture, HardwareDescription, RssSharder};
    check_captures(&[capture.to_path_buf()]).map_err(|e| Failure::bad_input(e.to_string()))?;
    let queues = u16::try_from(workers)
        .map_err(|_| Failure::bad_input(format!("--workers {workers} is too many")))?;
    let sharder = match config {
        Some(path) => {
            let hw =
                HardwareDescription::load(path).map_err(|e| Failure::bad_input(e.to_string()))?;
            RssSharder::from_description(&hw, queues)
        }
        None => RssSharder::symmetric(queues),
    }
    .map_err(|e| Failure::bad_input(e.to_string()))?;
    let dir = tempfile::Builder::new()
        .prefix("portolan-shards-")
        .tempdir()
        .map_err(|e| Failure::runtime(format!("cannot create a directory for the shards: {e}")))?;
    let summary = shard_capture(capture, dir.path(), &sharder).map_err(|e| {
        if e.is_bad_input() {
            Failure::bad_input(e.to_string())
        } else {
            Failure::runtime(e.to_string())
        }
    })?;
    eprint!("{summary}");
    let shards = (0..queues)
        .map(|q| portolan_hwconfig::shard::shard_file_path(dir.path(), capture, q))
        .collect();
    Ok((dir, shards))
}

/// Steady-state replay: `net_pcap` preloads every packet of a capture into the pool, so the
/// pool must hold the largest capture plus the RX rings, caches and bursts in flight.
fn size_for_infinite_rx(config: &mut ReplayConfig, seconds: f64) -> Result<(), Failure> {
    use portolan_packet::capture::CaptureReader;
    if !(seconds > 0.0 && seconds <= 86_400.0) {
        return Err(Failure::bad_input(
            "--infinite-rx-seconds must be more than 0 and at most 86400",
        ));
    }
    config.infinite_rx = Some(std::time::Duration::from_secs_f64(seconds));
    let mut largest = 0u64;
    for path in &config.captures {
        let mut reader =
            CaptureReader::open(path).map_err(|e| Failure::bad_input(e.to_string()))?;
        let mut n = 0u64;
        while reader
            .next_record()
            .map_err(|e| Failure::bad_input(e.to_string()))?
            .is_some()
        {
            n += 1;
        }
        largest = largest.max(n);
    }
    let queues = config.captures.len() as u64;
    let needed = largest + queues * (1024 + 256 + 32) + 256 + 1024;
    let mbufs = u32::try_from(needed).map_err(|_| {
        Failure::bad_input(format!(
            "--infinite-rx-seconds: {largest} packets do not fit in one mbuf pool; use a slice"
        ))
    })?;
    if mbufs > config.mbufs {
        config.mbufs = mbufs;
    }
    // Without hugepages an mbuf takes about 4 KiB (objects do not cross 4 KiB pages).
    let memory =
        u32::try_from(u64::from(config.mbufs) * 4096 / (1 << 20) + 128).unwrap_or(u32::MAX);
    if memory > config.memory_mb {
        config.memory_mb = memory;
    }
    eprintln!(
        "infinite_rx: {largest} packets per queue preloaded; {} mbufs, {} MB",
        config.mbufs, config.memory_mb
    );
    Ok(())
}

/// The hardware description in `path`: the `[hardware]` table of an appliance configuration
/// (`portolan run --config`, paths resolved as the daemon resolves them), or a description file
/// of its own.
fn load_hardware_description(
    path: &std::path::Path,
) -> Result<portolan_hwconfig::HardwareDescription, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))?;
    let is_appliance = text
        .parse::<toml::Table>()
        .is_ok_and(|t| t.contains_key("hardware"));
    if is_appliance {
        config::ApplianceConfig::load(path, &config::Overrides::default())
            .map(|c| c.hardware)
            .map_err(|e| Failure::bad_input(e.to_string()))
    } else {
        portolan_hwconfig::HardwareDescription::load(path)
            .map_err(|e| Failure::bad_input(e.to_string()))
    }
}

/// Runs `portolan hwcheck`: exit 0 when the plan can start, 1 when it has problems (still
/// printed) or DPDK failed, 2 for a bad description.
fn run_hwcheck(args: &HwcheckArgs) -> Result<(), Failure> {
    use portolan_dataplane::hwcheck::{hwcheck, HwcheckOptions};
    let hw = load_hardware_description(&args.config)?;
    let options = HwcheckOptions {
        force_no_huge: args.no_huge,
        log_level: None,
    };
    let report = hwcheck(&hw, &options).map_err(|e| {
        if e.is_bad_input() {
            Failure::bad_input(e.to_string())
        } else {
            Failure::runtime(e.to_string())
        }
    })?;
    let mut out = std::io::stdout().lock();
    // A closed stdout (e.g. `| head`) is not an error of the check.
    let _ = if args.json {
        writeln!(out, "{}", report.to_json())
    } else {
        write!(out, "{report}")
    };
    drop(out);
    if report.is_startable() {
        Ok(())
    } else {
        Err(Failure::runtime(format!(
            "{}: the plan has problems (listed above); the dataplane cannot start as described",
            args.config.display()
        )))
    }
}

fn run_shard(args: ShardArgs) -> Result<(), Failure> {
    use portolan_hwconfig::{shard_capture, HardwareDescription, RssSharder};
    let sharder = match &args.config {
        Some(path) => {
            let hw =
                HardwareDescription::load(path).map_err(|e| Failure::bad_input(e.to_string()))?;
            RssSharder::from_description(&hw, args.queues)
        }
        None => RssSharder::symmetric(args.queues),
    }
    .map_err(|e| Failure::bad_input(e.to_string()))?;
    let summary = shard_capture(&args.capture, &args.out_dir, &sharder).map_err(|e| {
        if e.is_bad_input() {
            Failure::bad_input(e.to_string())
        } else {
            Failure::runtime(e.to_string())
        }
    })?;
    eprint!("{summary}");
    Ok(())
}

/// The human summary, on stderr.
fn print_summary(r: &ReplayReport, drain: Option<&DrainStats>) {
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
    let encapsulated: Vec<String> = r
        .encapsulated
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if !encapsulated.is_empty() {
        eprintln!("encapsulated: {}", encapsulated.join(", "));
    }
    if r.prefiltered > 0 {
        eprintln!(
            "prefiltered: {} packets outside the managed subnets",
            r.prefiltered
        );
    }
    if let Some(c) = &r.classification {
        let mut protos: Vec<(&str, u64)> = c
            .app_protos
            .iter()
            .filter(|(k, _)| **k != "unknown")
            .map(|(k, v)| (*k, *v))
            .collect();
        protos.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let list: Vec<String> = protos.iter().map(|(k, v)| format!("{k} {v}")).collect();
        eprintln!(
            "classified: {} of {} flows ({}), unknown {}, port mismatches {}",
            c.decided_flows,
            r.flows,
            if list.is_empty() {
                "none".to_string()
            } else {
                list.join(", ")
            },
            c.app_protos.get("unknown").copied().unwrap_or(0),
            c.port_mismatches
        );
        eprintln!(
            "flow events: {} queued, {} ring drops, {} received by the drain thread; {} early DNS-answer events",
            c.flow_events,
            c.ring_drops,
            drain.map_or(0, |d| d.received),
            c.dns_answer_events
        );
        let per = |cycles: u64, n: u64| cycles.checked_div(n).unwrap_or(0);
        eprintln!(
            "classifier: {} calls on undecided flows ({} cycles each), {} on decided flows ({} each); {:.1} cycles per packet",
            c.scan_calls,
            per(c.scan_cycles, c.scan_calls),
            c.enrich_calls,
            per(c.enrich_cycles, c.enrich_calls),
            (c.scan_cycles + c.enrich_cycles) as f64 / r.packets.max(1) as f64
        );
    }
    for w in &r.workers {
        let extra = w.classification.as_ref().map_or(String::new(), |c| {
            format!(
                ", {} classified, {} ring drops",
                c.decided_flows, c.ring_drops
            )
        });
        eprintln!(
            "worker {} (lcore {}, {}): {} packets, {} flows{extra}, {:.0} cycles/packet \
             ({:.0} in the PMD's receive, {:.0} the worker's own)",
            w.queue,
            w.lcore,
            w.capture,
            w.packets,
            w.flows,
            w.cycles_per_packet,
            w.rx_cycles_per_packet,
            w.cycles_per_packet - w.rx_cycles_per_packet
        );
    }
}
