//! Runs the generator without the appliance binary: `cargo run --release -p portolan-synth
//! --example synth -- -o out.pcap ...` takes the same arguments as `portolan synth`.

use clap::Parser;
use portolan_synth::{run_cli, SynthArgs};
use std::process::ExitCode;

/// `portolan synth` as a standalone program.
#[derive(Debug, Parser)]
#[command(name = "synth")]
struct Cli {
    #[command(flatten)]
    args: SynthArgs,
}

fn main() -> ExitCode {
    match run_cli(&Cli::parse().args) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("synth: error: {e}");
            ExitCode::from(2)
        }
    }
}
