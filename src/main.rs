//! `portolan`: the appliance binary and its subcommands.
//!
//! Owns: command-line parsing, where results are written (flows as EVE JSON lines, the summary on
//! stderr and optionally as JSON), and exit codes (0 ok, 1 failure, 2 bad input). Must not:
//! contain dataplane logic; it calls `portolan_dataplane`.

mod assets;
mod central;
mod check_config;
mod config;
mod control_setup;
mod daemon;
mod feed;
mod pull_cmd;
mod replay;
mod signatures;
mod staged;
mod summary;
mod token_cmd;

use clap::{Args, CommandFactory, Parser, Subcommand};
use replay::ReplayArgs;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Runs the fleet's central view: consumes the appliances' JetStream stream with a durable
    /// consumer into its own store (findings merged per device across appliances) and serves it
    /// through the admin API, with the appliances at /api/v1/fleet/appliances.
    Central(central::CentralArgs),
    /// Checks an appliance configuration without starting anything (as `suricata -T`): every
    /// field, the signatures, roles, TLS pair and CA files it names. Exit 0 when valid (a
    /// summary on stdout), 2 when not (one line on stderr naming the file and the field).
    CheckConfig(check_config::CheckConfigArgs),
    /// Runs the configured inventory connectors (`[inputs.jamf]`, `[inputs.graph]`) once, to test
    /// the configuration, and prints what was pulled and what an import would report; the store
    /// is not touched (`portolan run` imports on its schedule).
    Pull(pull_cmd::PullArgs),
    /// Prints the shell completion script for bash, zsh, fish, elvish or powershell.
    Completions(assets::CompletionsArgs),
    /// Writes the man pages and completions the Debian package installs (scripts/package).
    #[command(hide = true)]
    GenerateAssets(assets::GenerateAssetsArgs),
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
    /// Bad input (exit 2) when `bad_input`, else a failure of the run (exit 1).
    fn new(bad_input: bool, message: impl Into<String>) -> Failure {
        if bad_input {
            Failure::bad_input(message)
        } else {
            Failure::runtime(message)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => replay::run_replay(*args),
        Command::Shard(args) => run_shard(args),
        Command::Synth(args) => run_synth(&args),
        Command::Hwcheck(args) => run_hwcheck(&args),
        Command::Run(args) => daemon::run_daemon(args),
        Command::Token(args) => token_cmd::run_token(args),
        Command::Central(args) => central::run_central(args),
        Command::CheckConfig(args) => check_config::run_check_config(&args),
        Command::Pull(args) => pull_cmd::run_pull(&args),
        Command::Completions(args) => assets::run_completions(&args, Cli::command()),
        Command::GenerateAssets(args) => assets::run_generate_assets(&args, Cli::command()),
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

/// The hardware description in `path`: the `[hardware]` table of an appliance configuration
/// (`portolan run --config`, paths resolved as the daemon resolves them), or a description file
/// of its own.
fn load_hardware_description(
    path: &std::path::Path,
) -> Result<portolan_hwconfig::HardwareDescription, Failure> {
    let text = config::read_config_text(path).map_err(|e| Failure::bad_input(e.to_string()))?;
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
    let report =
        hwcheck(&hw, &options).map_err(|e| Failure::new(e.is_bad_input(), e.to_string()))?;
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
    let summary = shard_capture(&args.capture, &args.out_dir, &sharder)
        .map_err(|e| Failure::new(e.is_bad_input(), e.to_string()))?;
    eprint!("{summary}");
    Ok(())
}
