//! `portolan synth`: a deterministic generator of realistic egress captures from a fleet of
//! managed iPhones and iPads, with the matching MDM inventory, device-state events and a
//! per-flow ground truth.
//!
//! Owns: the options, the run (plan → per-flow cursors → timestamp merge → pcap), and the
//! outputs' formats. Must not: read the wall clock or any other outside input — the same
//! options always give byte-identical files — or hold the capture in memory: flows are planned
//! as small specs, each open flow keeps one window of pending packet descriptors, and a heap
//! merges them by timestamp into the writer.
//!
//! Pipeline: [`catalogue`] (data file) → [`plan`] (devices, sessions, flow specs) →
//! [`script`] (protocol conversations built from [`tls`], [`quic`], [`payloads`]) →
//! [`flow`] (TCP/UDP mechanics) → [`wire`] (frames) → `PcapWriter`.

pub mod catalogue;
pub mod flow;
pub mod mdm;
pub mod payloads;
pub mod plan;
pub mod quic;
pub mod rng;
pub mod script;
pub mod time;
pub mod tls;
pub mod wire;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::PathBuf;

use portolan_packet::capture::PcapWriter;
use portolan_packet::LinkType;

use catalogue::{host_addresses, AppProto, Catalogue};
use flow::{FlowCursor, SizeSteer};
use plan::{FlowSpec, Plan, PlanInput};
use rng::BytePool;
use script::FlowParams;

/// Why a synth run failed. Every variant names the file or option at fault.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// Reading or writing a file failed.
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] io::Error),
    /// The catalogue is malformed.
    #[error("catalogue {0}: {1}")]
    Catalogue(String, String),
    /// An option is out of range or malformed.
    #[error("option {0}")]
    Options(String),
    /// The capture would grow past the output limit; the partial file is removed.
    #[error(
        "{path}: the capture would exceed --max-output-mb {limit_mb} (stopped after {packets} \
         packets and removed the partial file); raise the limit or ask for fewer packets or flows"
    )]
    TooLarge {
        /// The capture that was being written.
        path: PathBuf,
        /// The limit, in MiB.
        limit_mb: u64,
        /// Frames written before the limit was reached.
        packets: u64,
    },
}

/// Default limit on the capture file size, MiB (16 GiB).
pub const DEFAULT_MAX_OUTPUT_MB: u64 = 16 * 1024;
/// Bytes of a classic pcap file header and of each record header.
const PCAP_FILE_HEADER: u64 = 24;
const PCAP_RECORD_HEADER: u64 = 16;

/// Default capture start: a Tuesday morning in UTC.
pub const DEFAULT_START: &str = "2024-03-12T09:00:00Z";
/// Default number of flows when neither flows nor packets are given.
pub const DEFAULT_FLOWS: u64 = 2000;
/// Default target average frame size.
pub const DEFAULT_AVG_PACKET_SIZE: u32 = 760;

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Seed of every random draw.
    pub seed: u64,
    /// Number of managed devices.
    pub devices: u32,
    /// Number of flows to plan (ignored when `packets` is set).
    pub flows: u64,
    /// Stop after this many frames, planning enough flows to reach it.
    pub packets: Option<u64>,
    /// Relative share of flows per protocol; protocols not listed keep the catalogue's share.
    pub mix: BTreeMap<AppProto, f64>,
    /// Share of flows put on a non-standard port (0..=1).
    pub nonstandard_share: f64,
    /// Share of flows carried over IPv6 where the server has IPv6 (0..=1).
    pub ipv6_share: f64,
    /// Capture start, µs since the Unix epoch.
    pub start_us: u64,
    /// Capture length, µs.
    pub duration_us: u64,
    /// Target average frame size in bytes (`None`: plain delayed ACKs, no steering).
    pub avg_packet_size: Option<u32>,
    /// Multiplier on the catalogue profiles' request and response sizes (small samples use
    /// well below 1).
    pub size_scale: f64,
    /// Capture file to write (classic pcap, Ethernet, µs).
    pub output: PathBuf,
    /// Ground-truth TSV to write.
    pub ground_truth: Option<PathBuf>,
    /// Jamf-shaped inventory JSON to write.
    pub inventory: Option<PathBuf>,
    /// Device-state JSON lines to write.
    pub device_states: Option<PathBuf>,
    /// Catalogue file (default: the built-in `data/catalogue.toml`).
    pub catalogue: Option<PathBuf>,
    /// Largest capture file to write, MiB: a run that would write more stops, removes the
    /// partial file and fails (a typo in `--flows` must not fill the disk).
    pub max_output_mb: u64,
}

impl SynthOptions {
    /// The output limit in bytes.
    fn max_output_bytes(&self) -> u64 {
        self.max_output_mb.saturating_mul(1 << 20)
    }

    /// Defaults writing the capture to `output`.
    pub fn new(output: impl Into<PathBuf>) -> SynthOptions {
        SynthOptions {
            seed: 1,
            devices: 50,
            flows: DEFAULT_FLOWS,
            packets: None,
            mix: BTreeMap::new(),
            nonstandard_share: 0.05,
            ipv6_share: 0.1,
            start_us: time::parse_rfc3339(DEFAULT_START).unwrap_or(0),
            duration_us: 600_000_000,
            avg_packet_size: Some(DEFAULT_AVG_PACKET_SIZE),
            size_scale: 1.0,
            output: output.into(),
            ground_truth: None,
            inventory: None,
            device_states: None,
            catalogue: None,
            max_output_mb: DEFAULT_MAX_OUTPUT_MB,
        }
    }

    fn validate(&self) -> Result<(), SynthError> {
        let bad = |s: String| Err(SynthError::Options(s));
        if self.max_output_mb == 0 {
            return bad("--max-output-mb 0: must be at least 1".to_string());
        }
        if let (Some(packets), Some(avg)) = (self.packets, self.avg_packet_size) {
            let estimate = packets.saturating_mul(u64::from(avg) + PCAP_RECORD_HEADER);
            if estimate > self.max_output_bytes() {
                return bad(format!(
                    "--packets {packets}: about {} MiB at {avg} bytes per frame, above \
                     --max-output-mb {}",
                    estimate >> 20,
                    self.max_output_mb
                ));
            }
        }
        if self.devices == 0 || self.devices > 50_000 {
            return bad(format!("--devices {}: must be 1..=50000", self.devices));
        }
        if !(0.0..=1.0).contains(&self.nonstandard_share) {
            return bad(format!(
                "--nonstandard-share {}: must be within 0..=1",
                self.nonstandard_share
            ));
        }
        if !(0.0..=1.0).contains(&self.ipv6_share) {
            return bad(format!(
                "--ipv6-share {}: must be within 0..=1",
                self.ipv6_share
            ));
        }
        if self.duration_us == 0 {
            return bad("--duration: must be positive".into());
        }
        if self.packets == Some(0) || (self.packets.is_none() && self.flows == 0) {
            return bad("--flows / --packets: must be positive".into());
        }
        if self.flows > 10_000_000 || self.packets.is_some_and(|p| p > 1_000_000_000) {
            return bad("--flows at most 10M, --packets at most 1G".into());
        }
        if let Some(a) = self.avg_packet_size {
            if !(60..=1514).contains(&a) {
                return bad(format!(
                    "--avg-packet-size {a}: must be 60..=1514 (0 turns steering off)"
                ));
            }
        }
        if !(self.size_scale.is_finite() && self.size_scale > 0.0 && self.size_scale <= 100.0) {
            return bad(format!(
                "--size-scale {}: must be within (0, 100]",
                self.size_scale
            ));
        }
        for (p, w) in &self.mix {
            if !(w.is_finite() && *w >= 0.0) {
                return bad(format!(
                    "--mix {}={w}: shares must be non-negative",
                    p.name()
                ));
            }
        }
        Ok(())
    }
}

/// Parses `tls=40,quic=10,...` into per-protocol shares.
pub fn parse_mix(s: &str) -> Result<BTreeMap<AppProto, f64>, SynthError> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| SynthError::Options(format!("--mix {part:?}: expected PROTO=SHARE")))?;
        let proto = AppProto::from_name(k.trim()).ok_or_else(|| {
            let names: Vec<&str> = AppProto::ALL.iter().map(|p| p.name()).collect();
            SynthError::Options(format!(
                "--mix {k:?}: unknown protocol (known: {})",
                names.join(", ")
            ))
        })?;
        let w: f64 = v
            .trim()
            .parse()
            .ok()
            .filter(|w: &f64| w.is_finite() && *w >= 0.0)
            .ok_or_else(|| {
                SynthError::Options(format!(
                    "--mix {part:?}: share must be a non-negative number"
                ))
            })?;
        out.insert(proto, w);
    }
    Ok(out)
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthReport {
    /// Frames written.
    pub packets: u64,
    /// Frame bytes written (sum of captured lengths).
    pub bytes: u64,
    /// Flows with at least one frame in the capture (= ground-truth rows).
    pub flows: u64,
    /// Flows planned.
    pub flows_planned: u64,
    /// Devices in the fleet.
    pub devices: u32,
    /// Flows deliberately on non-standard ports.
    pub nonstandard_flows: u64,
    /// Flows over IPv6.
    pub ipv6_flows: u64,
    /// Flows per protocol.
    pub flows_by_proto: BTreeMap<String, u64>,
    /// Packets per protocol.
    pub packets_by_proto: BTreeMap<String, u64>,
    /// First frame time (µs since epoch).
    pub first_ts_us: u64,
    /// Last frame time (µs since epoch).
    pub last_ts_us: u64,
}

impl SynthReport {
    /// Mean frame size in bytes.
    pub fn avg_packet_size(&self) -> f64 {
        if self.packets == 0 {
            0.0
        } else {
            self.bytes as f64 / self.packets as f64
        }
    }
}

impl fmt::Display for SynthReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} packets, {} bytes (average {:.1} bytes/packet), {} flows ({} planned) from {} devices",
            self.packets,
            self.bytes,
            self.avg_packet_size(),
            self.flows,
            self.flows_planned,
            self.devices
        )?;
        writeln!(
            f,
            "{} flows on non-standard ports, {} over IPv6, spanning {} .. {}",
            self.nonstandard_flows,
            self.ipv6_flows,
            time::rfc3339_millis(self.first_ts_us),
            time::rfc3339_millis(self.last_ts_us)
        )?;
        let parts: Vec<String> = self
            .flows_by_proto
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(f, "flows by protocol: {}", parts.join(" "))?;
        let parts: Vec<String> = self
            .packets_by_proto
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        write!(f, "packets by protocol: {}", parts.join(" "))
    }
}

/// Command-line arguments of `portolan synth` (flatten into the main binary's subcommand).
#[derive(Debug, Clone, clap::Args)]
pub struct SynthArgs {
    /// Capture file to write (classic pcap, Ethernet, microsecond timestamps).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Seed: the same options and seed give a byte-identical capture.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of managed devices (IPv4 from the catalogue's device prefix, 10.20.0.0/16).
    #[arg(long, default_value_t = 50)]
    pub devices: u32,
    /// Number of flows.
    #[arg(long, conflicts_with = "packets")]
    pub flows: Option<u64>,
    /// Target number of packets instead of flows (the capture stops at exactly this many).
    #[arg(long)]
    pub packets: Option<u64>,
    /// Protocol mix overrides, e.g. `tls=50,quic=10,ssh=5` (known: tls quic http dns ssh mqtt
    /// apns imap smtp ntp stun; unlisted protocols keep the catalogue's share).
    #[arg(long)]
    pub mix: Option<String>,
    /// Share of flows put on a non-standard port (0..1).
    #[arg(long, default_value_t = 0.05)]
    pub nonstandard_share: f64,
    /// Share of flows over IPv6 where the server has an IPv6 address (0..1).
    #[arg(long, default_value_t = 0.1)]
    pub ipv6_share: f64,
    /// Capture start time (RFC 3339).
    #[arg(long, default_value = DEFAULT_START)]
    pub start: String,
    /// Capture length in seconds.
    #[arg(long, default_value_t = 600.0)]
    pub duration: f64,
    /// Target average packet size in bytes (0: no steering, plain delayed ACKs).
    #[arg(long, default_value_t = DEFAULT_AVG_PACKET_SIZE)]
    pub avg_packet_size: u32,
    /// Multiply every request/response size of the catalogue's profiles by this factor.
    #[arg(long, default_value_t = 1.0)]
    pub size_scale: f64,
    /// Write the per-flow ground truth (TSV) here.
    #[arg(long)]
    pub ground_truth: Option<PathBuf>,
    /// Write a Jamf-Pro-API-shaped MDM inventory (JSON) here.
    #[arg(long)]
    pub inventory: Option<PathBuf>,
    /// Write device-state events (JSON lines) here.
    #[arg(long)]
    pub device_states: Option<PathBuf>,
    /// Device/app catalogue (default: the built-in synth/data/catalogue.toml).
    #[arg(long)]
    pub catalogue: Option<PathBuf>,
    /// Largest capture file to write, in MiB: a run that would write more stops, removes the
    /// partial file and fails.
    #[arg(long, value_name = "MB", default_value_t = DEFAULT_MAX_OUTPUT_MB)]
    pub max_output_mb: u64,
}

impl SynthArgs {
    /// The options these arguments describe.
    pub fn to_options(&self) -> Result<SynthOptions, SynthError> {
        let start_us = time::parse_rfc3339(&self.start).ok_or_else(|| {
            SynthError::Options(format!(
                "--start {:?}: expected RFC 3339, e.g. {DEFAULT_START}",
                self.start
            ))
        })?;
        if !(self.duration.is_finite() && self.duration > 0.0 && self.duration < 1e7) {
            return Err(SynthError::Options(format!(
                "--duration {}: must be a positive number of seconds",
                self.duration
            )));
        }
        let opts = SynthOptions {
            seed: self.seed,
            devices: self.devices,
            flows: self.flows.unwrap_or(DEFAULT_FLOWS),
            packets: self.packets,
            mix: match &self.mix {
                Some(m) => parse_mix(m)?,
                None => BTreeMap::new(),
            },
            nonstandard_share: self.nonstandard_share,
            ipv6_share: self.ipv6_share,
            start_us,
            duration_us: (self.duration * 1e6) as u64,
            avg_packet_size: (self.avg_packet_size > 0).then_some(self.avg_packet_size),
            size_scale: self.size_scale,
            output: self.output.clone(),
            ground_truth: self.ground_truth.clone(),
            inventory: self.inventory.clone(),
            device_states: self.device_states.clone(),
            catalogue: self.catalogue.clone(),
            max_output_mb: self.max_output_mb,
        };
        opts.validate()?;
        Ok(opts)
    }
}

/// Runs `portolan synth` with parsed arguments and prints the report and the speed.
pub fn run_cli(args: &SynthArgs) -> Result<SynthReport, SynthError> {
    let opts = args.to_options()?;
    let began = std::time::Instant::now();
    let report = run(&opts)?;
    let secs = began.elapsed().as_secs_f64();
    println!("wrote {}", opts.output.display());
    println!("{report}");
    println!(
        "generated in {secs:.2} s ({:.0} packets/s)",
        report.packets as f64 / secs.max(1e-9)
    );
    Ok(report)
}

/// Effective per-protocol shares: the catalogue's `[mix]` overridden by `opts.mix`.
fn resolve_mix(cat: &Catalogue, opts: &SynthOptions) -> BTreeMap<AppProto, f64> {
    let mut mix: BTreeMap<AppProto, f64> = cat
        .mix
        .iter()
        .filter_map(|(k, v)| AppProto::from_name(k).map(|p| (p, *v)))
        .collect();
    for (p, w) in &opts.mix {
        mix.insert(*p, *w);
    }
    mix
}

fn plan_input(
    opts: &SynthOptions,
    mix: &BTreeMap<AppProto, f64>,
    flows: u64,
    stream: u64,
) -> PlanInput {
    PlanInput {
        seed: opts.seed,
        stream,
        devices: opts.devices,
        flows,
        mix: mix.clone(),
        nonstandard_share: opts.nonstandard_share,
        ipv6_share: opts.ipv6_share,
        start_us: opts.start_us,
        duration_us: opts.duration_us,
    }
}

/// Generates the capture and the optional side files described by `opts`.
pub fn run(opts: &SynthOptions) -> Result<SynthReport, SynthError> {
    opts.validate()?;
    let mut cat = Catalogue::load(opts.catalogue.as_deref())?;
    cat.scale_sizes(opts.size_scale);
    let mix = resolve_mix(&cat, opts);
    if mix.values().all(|w| *w <= 0.0) {
        return Err(SynthError::Options(
            "--mix: every protocol has a zero share".into(),
        ));
    }
    let pool = BytePool::new(opts.seed);
    let mut flows = match opts.packets {
        None => opts.flows,
        Some(target) => {
            // Measure packets per flow on a sample plan, then plan a little more than needed;
            // the capture stops at exactly `target` packets.
            let sample = 600u64;
            let sample_plan = plan::plan(&cat, &plan_input(opts, &mix, sample, 1));
            let mut sink = CountingSink::default();
            generate(&cat, opts, &sample_plan, &pool, &mut sink, None, None)?;
            let per_flow = (sink.packets as f64 / sample_plan.flows.len().max(1) as f64).max(1.0);
            ((target as f64 / per_flow) * 1.15).ceil() as u64 + 1
        }
    };
    // With a packet target, a plan that falls short (heavy-tailed flow sizes) is replanned
    // larger; the outcome is still a function of the options alone.
    let mut attempt = 0;
    let (plan, mut report) = loop {
        attempt += 1;
        let plan = plan::plan(&cat, &plan_input(opts, &mix, flows, 0));
        let report = write_outputs(&cat, opts, &plan, &pool)?;
        match opts.packets {
            Some(target) if report.packets < target && attempt < 4 && flows < 10_000_000 => {
                let factor = target as f64 / report.packets.max(1) as f64;
                flows = ((flows as f64 * factor * 1.15).ceil() as u64 + 10).min(10_000_000);
            }
            _ => break (plan, report),
        }
    };
    report.flows_planned = plan.flows.len() as u64;
    report.devices = plan.devices.len() as u32;
    Ok(report)
}

/// Writes the capture and the requested side files for `plan`.
fn write_outputs(
    cat: &Catalogue,
    opts: &SynthOptions,
    plan: &Plan,
    pool: &BytePool,
) -> Result<SynthReport, SynthError> {
    if let Some(path) = &opts.inventory {
        let inv = mdm::inventory(cat, plan, opts.start_us, opts.seed);
        let mut w =
            BufWriter::new(File::create(path).map_err(|e| SynthError::Io(path.clone(), e))?);
        serde_json::to_writer_pretty(&mut w, &inv)
            .map_err(io::Error::from)
            .and_then(|_| w.write_all(b"\n"))
            .and_then(|_| w.flush())
            .map_err(|e| SynthError::Io(path.clone(), e))?;
    }
    if let Some(path) = &opts.device_states {
        let mut w =
            BufWriter::new(File::create(path).map_err(|e| SynthError::Io(path.clone(), e))?);
        mdm::write_device_states(&mut w, cat, plan, opts.start_us, opts.seed)
            .and_then(|_| w.flush())
            .map_err(|e| SynthError::Io(path.clone(), e))?;
    }
    let out_err = |e| SynthError::Io(opts.output.clone(), e);
    let writer = PcapWriter::create(&opts.output, LinkType::Ethernet, 65535).map_err(out_err)?;
    let mut sink = PcapSink {
        writer,
        written: PCAP_FILE_HEADER,
        limit: opts.max_output_bytes(),
        packets: 0,
        over: false,
    };
    let mut truth = match &opts.ground_truth {
        Some(p) => {
            let mut w = BufWriter::new(File::create(p).map_err(|e| SynthError::Io(p.clone(), e))?);
            w.write_all(GROUND_TRUTH_HEADER.as_bytes())
                .map_err(|e| SynthError::Io(p.clone(), e))?;
            Some((p.clone(), w))
        }
        None => None,
    };
    let generated = generate(
        cat,
        opts,
        plan,
        pool,
        &mut sink,
        opts.packets,
        truth
            .as_mut()
            .map(|(p, w)| (p.as_path(), w as &mut dyn Write)),
    );
    if sink.over {
        let packets = sink.packets;
        drop(sink);
        // Best effort: the error below says the file is gone; a failure to remove it is rare
        // (the directory became read-only) and the file is then merely truncated.
        let _ = std::fs::remove_file(&opts.output);
        return Err(SynthError::TooLarge {
            path: opts.output.clone(),
            limit_mb: opts.max_output_mb,
            packets,
        });
    }
    let report = generated?;
    sink.writer.finish().map_err(out_err)?;
    if let Some((p, mut w)) = truth {
        w.flush().map_err(|e| SynthError::Io(p, e))?;
    }
    Ok(report)
}

/// Column names of the ground-truth TSV (one row per flow that has a frame in the capture, in
/// order of first frame). `src_*` is the device, `dest_*` the server; `proto` is `TCP`/`UDP`;
/// `app_proto` is what is on the wire (`tls`, `quic`, `http`, `dns`, `ssh`, `mqtt`, `imap`,
/// `smtp`, `ntp`, `stun`; APNs is `tls`); `sni` is the TLS/QUIC SNI, HTTP Host, or DNS question
/// (DNS rows carry the app whose host is looked up); `nonstandard_port` is 1 for flows the
/// generator put on a non-standard port; `first_seen` is the flow's first frame (RFC 3339).
pub const GROUND_TRUTH_HEADER: &str =
    "src_ip\tsrc_port\tdest_ip\tdest_port\tproto\tapp_proto\tsni\tnonstandard_port\tdevice_udid\tbundle_id\trole\tfirst_seen\n";

/// Where frames go.
trait FrameSink {
    fn frame(&mut self, ts_us: u64, data: &[u8]) -> io::Result<()>;
}

/// Writes frames to the capture, refusing the one that would take it past `limit` bytes.
struct PcapSink {
    writer: PcapWriter<BufWriter<File>>,
    written: u64,
    limit: u64,
    packets: u64,
    over: bool,
}

impl FrameSink for PcapSink {
    fn frame(&mut self, ts_us: u64, data: &[u8]) -> io::Result<()> {
        let size = PCAP_RECORD_HEADER + data.len() as u64;
        if self.written + size > self.limit {
            self.over = true;
            return Err(io::Error::other("output limit reached"));
        }
        self.writer.write(ts_us, data.len() as u32, data)?;
        self.written += size;
        self.packets += 1;
        Ok(())
    }
}

#[derive(Default)]
struct CountingSink {
    packets: u64,
}

impl FrameSink for CountingSink {
    fn frame(&mut self, _ts_us: u64, _data: &[u8]) -> io::Result<()> {
        self.packets += 1;
        Ok(())
    }
}

/// A flow being generated.
struct Active {
    cursor: FlowCursor,
    spec: usize,
    announced: bool,
}

fn user_agent(cat: &Catalogue, plan: &Plan, spec: &FlowSpec) -> String {
    let app = cat.apps.get(spec.app);
    let dev = plan.devices.get(spec.device as usize);
    let os = dev.and_then(|d| cat.os_versions.get(d.os));
    let kind = dev
        .and_then(|d| cat.models.get(d.model))
        .map_or("iPhone", |m| m.kind.as_str());
    let (ver, cf, darwin) = os.map_or(("17.2", "1490.0.4", "23.2.0"), |o| {
        (o.version.as_str(), o.cfnetwork.as_str(), o.darwin.as_str())
    });
    match app {
        Some(a) if a.ua_name == "MobileSafari" => {
            let short: String = ver.split('.').take(2).collect::<Vec<_>>().join(".");
            format!(
                "Mozilla/5.0 ({kind}; CPU {} OS {} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{short} Mobile/15E148 Safari/604.1",
                if kind == "iPad" { "" } else { "iPhone" },
                ver.replace('.', "_")
            )
            .replace("CPU  OS", "CPU OS")
        }
        Some(a) if a.system => a.ua_name.clone(),
        Some(a) => format!(
            "{}/{} CFNetwork/{cf} Darwin/{darwin}",
            a.ua_name, a.short_version
        ),
        None => format!("CFNetwork/{cf} Darwin/{darwin}"),
    }
}

fn activate(cat: &Catalogue, plan: &Plan, spec: &FlowSpec) -> Option<FlowCursor> {
    let app = cat.apps.get(spec.app)?;
    let ep = app.endpoints.get(spec.endpoint)?;
    let dev = plan.devices.get(spec.device as usize)?;
    let provider = cat.provider(ep);
    let profile = if spec.proto == AppProto::Dns {
        cat.profiles.get("query")
    } else {
        cat.profile(ep)
    }?;
    let client_ip = if spec.server_ip.is_ipv6() {
        dev.ipv6
    } else {
        dev.ipv4
    };
    let answers: Vec<IpAddr> = match (spec.proto, provider) {
        (AppProto::Dns, Some(p)) => {
            let (v4, v6) = host_addresses(&spec.host, p);
            v4.into_iter().chain(v6).collect()
        }
        _ => Vec::new(),
    };
    let ua = user_agent(cat, plan, spec);
    let token = format!("{}_{}", app.ua_name, app.short_version);
    let tag: String = dev
        .udid
        .chars()
        .rev()
        .take(8)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<String>()
        .to_lowercase();
    let params = FlowParams {
        proto: spec.proto,
        host: &spec.host,
        endpoint: (spec.proto != AppProto::Dns).then_some(ep),
        profile,
        provider,
        user_agent: &ua,
        app_token: &token,
        start_us: spec.start_us,
        server_port: spec.server_port,
        client_ip,
        device_tag: &tag,
        dns_answers: &answers,
        nat_public: cat
            .parsed
            .nat_public
            .unwrap_or(std::net::Ipv4Addr::new(198, 51, 100, 1)),
        client_port: spec.client_port,
    };
    let mut rng = rng::SynthRng::new(spec.seed, 0x7363_7269);
    let script = script::build(&params, &mut rng);
    let ep_wire = wire::Endpoints {
        client_mac: dev.mac,
        gateway_mac: cat.parsed.gateway_mac,
        client_ip,
        server_ip: spec.server_ip,
        client_port: spec.client_port,
        server_port: spec.server_port,
    };
    Some(FlowCursor::new(ep_wire, script, spec.start_us, spec.seed))
}

fn truth_row(cat: &Catalogue, plan: &Plan, spec: &FlowSpec) -> String {
    let app = cat.apps.get(spec.app);
    let dev = plan.devices.get(spec.device as usize);
    let client_ip = dev.map_or(String::new(), |d| {
        if spec.server_ip.is_ipv6() {
            d.ipv6.to_string()
        } else {
            d.ipv4.to_string()
        }
    });
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
        client_ip,
        spec.client_port,
        spec.server_ip,
        spec.server_port,
        if spec.proto.is_udp() { "UDP" } else { "TCP" },
        spec.proto.wire_name(),
        spec.host,
        u8::from(spec.nonstandard),
        dev.map_or("", |d| d.udid.as_str()),
        app.map_or("", |a| a.bundle_id.as_str()),
        dev.and_then(|d| cat.roles.get(d.role))
            .map_or("", |r| r.name.as_str()),
        time::rfc3339_millis(spec.start_us),
    )
}

/// Merges the flows of `plan` by timestamp into `sink`, stopping at `limit` frames or at the end
/// of the capture window.
fn generate(
    cat: &Catalogue,
    opts: &SynthOptions,
    plan: &Plan,
    pool: &BytePool,
    sink: &mut dyn FrameSink,
    limit: Option<u64>,
    mut truth: Option<(&std::path::Path, &mut dyn Write)>,
) -> Result<SynthReport, SynthError> {
    let io_err = |e| SynthError::Io(opts.output.clone(), e);
    let end_us = opts.start_us + opts.duration_us;
    let mut steer = SizeSteer {
        target: opts.avg_packet_size.map(f64::from),
        ..SizeSteer::default()
    };
    let mut heap: BinaryHeap<Reverse<(u64, u32, usize)>> = BinaryHeap::new();
    let mut slots: Vec<Option<Active>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut next = 0usize;
    let mut buf = Vec::with_capacity(2048);
    let mut report = SynthReport {
        packets: 0,
        bytes: 0,
        flows: 0,
        flows_planned: plan.flows.len() as u64,
        devices: plan.devices.len() as u32,
        nonstandard_flows: 0,
        ipv6_flows: 0,
        flows_by_proto: BTreeMap::new(),
        packets_by_proto: BTreeMap::new(),
        first_ts_us: 0,
        last_ts_us: 0,
    };
    loop {
        let top = heap.peek().map(|Reverse((ts, _, _))| *ts);
        if let Some(spec) = plan.flows.get(next) {
            if top.is_none_or(|t| spec.start_us <= t) {
                next += 1;
                if spec.start_us > end_us {
                    continue;
                }
                let Some(mut cursor) = activate(cat, plan, spec) else {
                    continue;
                };
                if let Some(ts) = cursor.next_ts(&steer) {
                    let slot = free.pop().unwrap_or_else(|| {
                        slots.push(None);
                        slots.len() - 1
                    });
                    slots[slot] = Some(Active {
                        cursor,
                        spec: next - 1,
                        announced: false,
                    });
                    heap.push(Reverse((ts, spec.id, slot)));
                }
                continue;
            }
        }
        let Some(Reverse((ts, id, slot))) = heap.pop() else {
            break;
        };
        if ts > end_us {
            break;
        }
        let Some(active) = slots.get_mut(slot).and_then(Option::as_mut) else {
            continue;
        };
        if active.cursor.emit(pool, &mut buf).is_none() {
            continue;
        }
        sink.frame(ts, &buf).map_err(io_err)?;
        steer.record(buf.len());
        if report.packets == 0 {
            report.first_ts_us = ts;
        }
        report.packets += 1;
        report.bytes += buf.len() as u64;
        report.last_ts_us = ts;
        if let Some(spec) = plan.flows.get(active.spec) {
            *report
                .packets_by_proto
                .entry(spec.proto.name().to_string())
                .or_insert(0) += 1;
        }
        if !active.announced {
            active.announced = true;
            if let Some(spec) = plan.flows.get(active.spec) {
                report.flows += 1;
                report.nonstandard_flows += u64::from(spec.nonstandard);
                report.ipv6_flows += u64::from(spec.server_ip.is_ipv6());
                *report
                    .flows_by_proto
                    .entry(spec.proto.name().to_string())
                    .or_insert(0) += 1;
                if let Some((path, w)) = truth.as_mut() {
                    w.write_all(truth_row(cat, plan, spec).as_bytes())
                        .map_err(|e| SynthError::Io(path.to_path_buf(), e))?;
                }
            }
        }
        if limit.is_some_and(|l| report.packets >= l) {
            break;
        }
        match active.cursor.next_ts(&steer) {
            Some(t) => heap.push(Reverse((t, id, slot))),
            None => {
                slots[slot] = None;
                free.push(slot);
            }
        }
    }
    Ok(report)
}
