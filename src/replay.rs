//! `portolan replay`: captures through the dataplane (`net_pcap`, one worker per RX queue),
//! classified flows through the hand-off into the control plane, and the results written: flow
//! records and hand-off events as EVE JSON lines, alerts as EVE and OCSF, the summary on stderr
//! and optionally as JSON.
//!
//! Owns: the replay's options and how they become a [`ReplayConfig`], the order of its steps
//! (every input is read and checked before any output file is created; the files are renamed
//! into place only when the run succeeded), and reconciling the
//! port's counters with what the workers saw. Must not: judge flows (the control plane does,
//! through [`crate::feed`]) or set up the control plane its own way ([`crate::control_setup`]
//! does it for replay and the daemon alike).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use portolan_api::RolesSource;
use portolan_classify::ClassifyConfig;
use portolan_control::ControlConfig;
use portolan_dataplane::runtime::offline::{check_captures, small_capture_pool};
use portolan_dataplane::runtime::ClassifierSetupError;
use portolan_dataplane::{
    replay_observers, Classifiers, DrainOptions, DrainStats, FlowEvent, FlowEventDrain, FlowOnly,
    PacketObserver, ReplayConfig, ReplayError, ReplayOutcome, ReplayReport,
};
use portolan_hwconfig::cpus::spare_cpus;

use crate::control_setup::{open_control, ControlInputs, InputNames, StoreTarget};
use crate::feed::{AlertFeed, OnFailure};
use crate::staged::StagedOutputs;
use crate::summary::{AlertSummary, ReplayConsumer};
use crate::{signatures, Failure};

/// Actor recorded in the audit log for imports made by a replay.
const IMPORT_ACTOR: &str = "portolan-replay";

/// How replay's control inputs are named in errors.
const INPUT_NAMES: InputNames = InputNames {
    store: "--db",
    roles: "--roles",
    inventory: "--inventory",
    leases: "--leases",
    device_states: "--device-states",
};

/// Runs `portolan replay`.
pub fn run_replay(args: ReplayArgs) -> Result<(), Failure> {
    let (config, shards) = replay_config(&args)?;
    // Check the captures, the signatures and the control plane's files before creating any
    // output file, so bad input leaves nothing behind.
    check_captures(&config.captures).map_err(|e| Failure::bad_input(e.to_string()))?;
    let Some((classifiers, sig_line)) = load_classifiers(&args)? else {
        let mut outcome =
            replay_observers(&config, vec![FlowOnly; config.workers]).map_err(replay_err)?;
        account_truncated_tails(&mut outcome.report, &config.captures);
        account_sharded_tail(&mut outcome.report, shards.as_ref());
        let mut outputs = Outputs::create(&args)?;
        write_results(&outcome, None, None, &mut outputs)?;
        return outputs.commit();
    };
    let mut outputs = Outputs::create(&args)?;
    let (feed, devices) = match open_replay_control(&args, &classifiers, &mut outputs)? {
        Some((feed, devices)) => (Some(feed), devices),
        None => (None, 0),
    };
    // Hyperscan scratch is allocated here, once per worker, before any lcore runs.
    let (observers, receiver) = classifiers
        .observers(config.workers, args.event_queue)
        .map_err(|e| match e {
            ClassifierSetupError::Queues(m) => Failure::bad_input(format!("--event-queue: {m}")),
            other => Failure::runtime(other.to_string()),
        })?;
    // The drain thread starts before the EAL (threads created later inherit the main lcore's
    // affinity) and pins itself to a CPU no worker uses, when there is one. It feeds the
    // control plane, which judges each drained batch and writes the alerts.
    let drain = FlowEventDrain::spawn(
        receiver,
        ReplayConsumer {
            events: outputs.events.is_some().then(Vec::new),
            alerts: feed,
        },
        DrainOptions {
            cpus: spare_cpus(config.workers),
            ..DrainOptions::default()
        },
    )
    .map_err(|e| Failure::runtime(format!("cannot start the flow event thread: {e}")))?;
    let replayed = replay_observers(&config, observers);
    let drained = drain.finish();
    let mut outcome = replayed.map_err(replay_err)?;
    account_truncated_tails(&mut outcome.report, &config.captures);
    account_sharded_tail(&mut outcome.report, shards.as_ref());
    let (consumer, stats) = drained.map_err(|e| Failure::runtime(e.to_string()))?;
    let alerts = consumer
        .alerts
        .map(|feed| crate::summary::finish(feed, devices))
        .transpose()
        .map_err(Failure::runtime)?;
    write_events(consumer.events.as_deref(), outputs.events.as_mut())?;
    eprintln!("{sig_line}");
    write_results(&outcome, Some(&stats), alerts.as_ref(), &mut outputs)?;
    outputs.commit()
}

/// One capture sharded for several workers: the shards' temporary directory (removed when this
/// is dropped) and the record the sharder could not place, when the capture ends inside one.
struct Shards {
    _dir: tempfile::TempDir,
    capture: PathBuf,
    truncated_tail: Option<u64>,
}

/// The replay's configuration from its options: one worker per capture, or a single capture
/// sharded as RSS would spread it (the shards live as long as the returned [`Shards`]).
fn replay_config(args: &ReplayArgs) -> Result<(ReplayConfig, Option<Shards>), Failure> {
    let mut captures = vec![args.capture.clone()];
    captures.extend(args.queue_captures.iter().cloned());
    let workers = args.workers.unwrap_or(captures.len());
    if workers == 0 {
        return Err(Failure::bad_input("--workers must be at least 1"));
    }
    let mut shard_dir = None;
    if workers > 1 && captures.len() == 1 {
        let (sharded, files) = shard_for_workers(&captures[0], workers, args.config.as_deref())?;
        shard_dir = Some(sharded);
        captures = files;
    }
    if workers != captures.len() {
        return Err(Failure::bad_input(format!(
            "--workers {workers} but {} captures: replay runs one worker per capture",
            captures.len()
        )));
    }
    let mut config = ReplayConfig::new(captures);
    config.workers = workers;
    match (args.mbufs, args.memory_mb) {
        // A capture too small to fill the default pool gets a smaller one (start-up time).
        (None, None) if args.infinite_rx_seconds.is_none() => {
            if let Some((mbufs, mb)) = small_capture_pool(&config.captures) {
                config.mbufs = mbufs;
                config.memory_mb = mb;
            }
        }
        (mbufs, mb) => {
            config.mbufs = mbufs.unwrap_or(config.mbufs);
            config.memory_mb = mb.unwrap_or(config.memory_mb);
        }
    }
    if let Some(seconds) = args.infinite_rx_seconds {
        size_for_infinite_rx(&mut config, seconds)?;
    }
    if let Some(cap) = args.flow_capacity {
        config.flow_table.capacity = cap;
    }
    config.managed_subnets = args.managed_subnets.clone();
    // Finished flows are kept only to write them; otherwise they are counted and dropped.
    config.keep_flows = args.flows.is_some();
    Ok((config, shard_dir))
}

/// The classifiers and the line saying where their signatures came from; `None` with
/// `--no-classify`.
fn load_classifiers(args: &ReplayArgs) -> Result<Option<(Classifiers, String)>, Failure> {
    if args.no_classify {
        return Ok(None);
    }
    let source = signatures::locate(args.signatures.as_deref(), "--signatures")
        .map_err(Failure::bad_input)?;
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
    let mut classifiers = signatures::classifiers(
        &source,
        args.ports.as_deref(),
        "port override",
        classify_config,
    )
    .map_err(Failure::bad_input)?;
    classifiers.set_updates(portolan_dataplane::UpdatePolicy {
        early: !args.final_only,
        interim_interval_s: args.interim_interval,
    });
    let line = format!(
        "signatures: {}",
        signatures::describe(&source, &classifiers)
    );
    Ok(Some((classifiers, line)))
}

/// The control plane, when any control option was given: set up (every input read, imports
/// made) before the EAL starts, and its feed with the alert files created. Returns the feed and
/// the inventory's size.
fn open_replay_control(
    args: &ReplayArgs,
    classifiers: &Classifiers,
    outputs: &mut Outputs,
) -> Result<Option<(AlertFeed, usize)>, Failure> {
    let any = !args.inventory.is_empty()
        || !args.leases.is_empty()
        || args.roles.is_some()
        || args.device_states.is_some()
        || args.db.is_some()
        || args.control_config.is_some()
        || args.eve.is_some()
        || args.ocsf.is_some();
    if !any {
        return Ok(None);
    }
    let config = match &args.control_config {
        Some(p) => ControlConfig::load(p).map_err(|e| Failure::bad_input(e.to_string()))?,
        None => ControlConfig::default(),
    };
    let inputs = ControlInputs {
        store: match &args.db {
            Some(path) => StoreTarget::File {
                path: path.clone(),
                durability: Default::default(),
            },
            None => StoreTarget::InMemory,
        },
        roles: match &args.roles {
            Some(p) => RolesSource::File(p.clone()),
            None => RolesSource::Shipped,
        },
        config,
        inventory: args.inventory.clone(),
        leases: args.leases.clone(),
        device_states: args.device_states.clone(),
        names: INPUT_NAMES,
        actor: IMPORT_ACTOR,
    };
    let (control, mut warnings) = open_control(&inputs, classifiers.ports())
        .map_err(|e| Failure::new(e.bad_input, e.message))?;
    let devices = control
        .core()
        .lock()
        .map_err(|e| Failure::runtime(e.to_string()))?
        .device_count();
    if devices == 0 {
        warnings.push(
            "no devices in the inventory: every flow is judged as from an unmanaged device"
                .to_string(),
        );
    }
    for w in warnings {
        eprintln!("portolan: warning: {w}");
    }
    // The alert files are staged like the other outputs: in place only when the run succeeded.
    let eve = outputs.stage_named(args.eve.as_deref(), "EVE alert")?;
    let ocsf = outputs.stage_named(args.ocsf.as_deref(), "OCSF alert")?;
    let feed = AlertFeed::new(
        control.ingest,
        0,
        Default::default(),
        (eve.as_deref(), ocsf.as_deref()),
        OnFailure::Stop,
    )
    .map_err(Failure::bad_input)?;
    Ok(Some((feed, devices)))
}

fn replay_err(e: ReplayError) -> Failure {
    Failure::new(e.is_bad_input(), e.to_string())
}

/// The replay's output files, created before the dataplane starts so a bad path fails first,
/// under temporary names ([`crate::staged`]) that become theirs only when the run succeeded.
struct Outputs {
    flows: Option<(PathBuf, BufWriter<File>)>,
    summary: Option<(PathBuf, BufWriter<File>)>,
    events: Option<(PathBuf, BufWriter<File>)>,
    staged: StagedOutputs,
}

impl Outputs {
    fn create(args: &ReplayArgs) -> Result<Outputs, Failure> {
        let mut staged = StagedOutputs::default();
        let mut open = |p: &Option<PathBuf>, what: &str| {
            p.as_deref()
                .map(|p| create_output(&mut staged, p, what).map(|w| (p.to_path_buf(), w)))
                .transpose()
        };
        Ok(Outputs {
            flows: open(&args.flows, "flows")?,
            summary: open(&args.summary, "summary")?,
            events: open(&args.events, "events")?,
            staged,
        })
    }

    /// Stages `path` (when given) for a writer that opens its file by name: the temporary name.
    fn stage_named(&mut self, path: Option<&Path>, what: &str) -> Result<Option<PathBuf>, Failure> {
        path.map(|p| {
            self.staged.create_named(p).map_err(|e| {
                Failure::bad_input(format!("cannot create {what} file {}: {e}", p.display()))
            })
        })
        .transpose()
    }

    /// Renames the written files into place (call once the run succeeded).
    fn commit(self) -> Result<(), Failure> {
        let Outputs { staged, .. } = self;
        staged.commit().map_err(|(path, e)| {
            Failure::runtime(format!(
                "cannot rename the output into {}: {e}",
                path.display()
            ))
        })
    }
}

/// Writes every hand-off event kept for `--events`, one EVE flow record per line.
fn write_events(
    events: Option<&[FlowEvent]>,
    out: Option<&mut (PathBuf, BufWriter<File>)>,
) -> Result<(), Failure> {
    let (Some(events), Some((path, out))) = (events, out) else {
        return Ok(());
    };
    let write_err = |e: std::io::Error| {
        Failure::runtime(format!("cannot write events file {}: {e}", path.display()))
    };
    for ev in events {
        serde_json::to_writer(&mut *out, &ev.to_eve_json()).map_err(|e| write_err(e.into()))?;
        out.write_all(b"\n").map_err(write_err)?;
    }
    out.flush().map_err(write_err)
}

/// Options of `portolan replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
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
    /// Mbufs in the RX pool (default 8191; with neither this nor --memory-mb, captures too
    /// small to fill it get a pool sized to them, from 2047 mbufs, which starts faster).
    #[arg(long, value_name = "N")]
    mbufs: Option<u32>,
    /// EAL memory in megabytes, no hugepages needed (default 128; 32 or more with the smaller
    /// pool of a small capture).
    #[arg(long, value_name = "MB")]
    memory_mb: Option<u32>,
    /// Active flows per worker (the flow table is allocated up front).
    #[arg(long, value_name = "N")]
    flow_capacity: Option<usize>,
    /// Signature directory (default: $PORTOLAN_SIGNATURES, else `signatures` or
    /// `../share/portolan/signatures` beside the executable, else
    /// /usr/share/portolan/signatures, else the set built into the binary).
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
    /// Seconds between an open flow's interim updates to the control plane (its duration and
    /// counters so far, on capture time), after the early event it gets when identified; 0:
    /// none.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    interim_interval: u32,
    /// Hand flows to the control plane only when they end (no early events or interim
    /// updates).
    #[arg(long)]
    final_only: bool,
    /// Write every finished flow's event handed to the control plane as one JSON line (EVE
    /// flow form).
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// MDM inventory (Jamf Pro, Microsoft Graph or Apple MDM responses, JSON or plist;
    /// repeatable). Any control option turns the control plane on: it judges every classified
    /// flow against roles and baselines in device context and writes alerts.
    #[arg(long, value_name = "FILE")]
    inventory: Vec<PathBuf>,
    /// Kea DHCP lease CSV (DHCPv4 or DHCPv6 memfile) joining device Wi-Fi MACs to addresses
    /// over time (repeatable).
    #[arg(long, value_name = "FILE")]
    leases: Vec<PathBuf>,
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

/// Creates an output file up front (under a temporary name) so a bad path fails before the
/// dataplane starts.
fn create_output(
    staged: &mut StagedOutputs,
    path: &Path,
    what: &str,
) -> Result<BufWriter<File>, Failure> {
    staged.create(path).map_err(|e| {
        Failure::bad_input(format!("cannot create {what} file {}: {e}", path.display()))
    })
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

/// A sharded capture's cut-short last record never reaches a shard (the sharder stops at the
/// last whole record, as net_pcap does), so no port counts it: it is added here as the drop
/// `truncated_capture_record`, with the same warning as an unsharded capture's.
fn account_sharded_tail(report: &mut ReplayReport, shards: Option<&Shards>) {
    let Some(Shards {
        capture,
        truncated_tail: Some(bytes),
        ..
    }) = shards
    else {
        return;
    };
    eprintln!(
        "portolan: warning: {} ends in a record cut short ({bytes} bytes after the last whole \
         record); it is counted as drop reason {TRUNCATED_RECORD}",
        capture.display()
    );
    *report.drops.entry(TRUNCATED_RECORD).or_insert(0) += 1;
}

/// Writes the flow records and the summary, then checks that nothing was lost.
fn write_results<O: PacketObserver>(
    outcome: &ReplayOutcome<O>,
    drain: Option<&DrainStats>,
    alerts: Option<&AlertSummary>,
    outputs: &mut Outputs,
) -> Result<(), Failure> {
    if let Some((path, out)) = outputs.flows.as_mut() {
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
        crate::summary::print_alert_summary(a);
    }
    if let Some((path, out)) = outputs.summary.as_mut() {
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
            obj.insert("update_events_received".into(), d.updates_received.into());
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
        let updates = c.early_events + c.interim_events;
        if c.flow_events != d.received
            || c.dns_answer_events != d.dns_answers_received
            || updates != d.updates_received
        {
            return Err(Failure::runtime(format!(
                "the workers queued {} flow events, {} early and interim events and {} \
                 DNS-answer events but the drain thread received {}, {} and {}",
                c.flow_events,
                updates,
                c.dns_answer_events,
                d.received,
                d.updates_received,
                d.dns_answers_received
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
) -> Result<(Shards, Vec<PathBuf>), Failure> {
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
    let summary = shard_capture(capture, dir.path(), &sharder)
        .map_err(|e| Failure::new(e.is_bad_input(), e.to_string()))?;
    eprint!("{summary}");
    let files = (0..queues)
        .map(|q| portolan_hwconfig::shard::shard_file_path(dir.path(), capture, q))
        .collect();
    let shards = Shards {
        _dir: dir,
        capture: capture.to_path_buf(),
        truncated_tail: summary.truncated_tail,
    };
    Ok((shards, files))
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
        eprintln!(
            "open flows: {} early events, {} interim updates queued, {} dropped, {} received by the drain thread",
            c.early_events,
            c.interim_events,
            c.update_drops,
            drain.map_or(0, |d| d.updates_received)
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
