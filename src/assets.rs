//! Man pages and shell completions generated from the clap definitions of the command line
//! (`clap_mangen`, `clap_complete`): `portolan completions SHELL` prints one script, and the
//! hidden `portolan generate-assets --out DIR` writes what the Debian package installs
//! (`scripts/package` runs it on the release binary before `cargo deb`).
//!
//! Owns: the file names and layout under `DIR` (`man/portolan.1`, `man/portolan-<sub>.1`, ...,
//! `completions/portolan.bash`, `completions/_portolan`, `completions/portolan.fish`). Must not:
//! hold any text of its own about the commands — everything comes from the clap definitions, so
//! the pages cannot drift from `--help`.

use std::path::{Path, PathBuf};

use clap::{Args, Command};
use clap_complete::Shell;

use crate::Failure;

/// Options of `portolan completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to print the completion script for.
    #[arg(value_name = "SHELL")]
    shell: Shell,
}

/// Options of `portolan generate-assets`.
#[derive(Debug, Args)]
pub struct GenerateAssetsArgs {
    /// Directory to write `man/` and `completions/` into (created when missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Prints the completion script of `args.shell` on stdout.
pub fn run_completions(args: &CompletionsArgs, mut cmd: Command) -> Result<(), Failure> {
    let name = cmd.get_name().to_string();
    clap_complete::generate(args.shell, &mut cmd, name, &mut std::io::stdout());
    Ok(())
}

/// Writes the man pages (one per command and subcommand) and the bash, zsh and fish
/// completions under `args.out`; prints each file written.
pub fn run_generate_assets(args: &GenerateAssetsArgs, cmd: Command) -> Result<(), Failure> {
    let io = |what: &Path, e: std::io::Error| {
        Failure::runtime(format!("cannot write {}: {e}", what.display()))
    };
    let man = args.out.join("man");
    let completions = args.out.join("completions");
    for dir in [&man, &completions] {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    clap_mangen::generate_to(cmd.clone(), &man).map_err(|e| io(&man, e))?;
    let mut written: Vec<PathBuf> = std::fs::read_dir(&man)
        .and_then(|d| d.map(|e| e.map(|e| e.path())).collect())
        .map_err(|e| io(&man, e))?;
    written.sort();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut c = cmd.clone();
        let path = clap_complete::generate_to(shell, &mut c, "portolan", &completions)
            .map_err(|e| io(&completions, e))?;
        written.push(path);
    }
    for p in written {
        println!("{}", p.display());
    }
    Ok(())
}
