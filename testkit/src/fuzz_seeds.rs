//! Replaying a fuzz crate's committed seeds in the normal test suite (stable toolchain, no
//! libFuzzer), so that what fuzzing found stays found.
//!
//! Owns: the layout `<fuzz dir>/seeds/<target>/<file>` and the checks that keep it complete: every
//! `[[bin]]` of the fuzz crate's `Cargo.toml` has a body in the list handed to [`replay`] and at
//! least one seed, and every body has a binary.
//! Must not: decide what a target checks (its body does) or read anything but the seed files.
//! Uses the standard library only, so `portolan-packet` (which `portolan-testkit` depends on) can
//! include this file by path.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// A fuzz target: the name of its binary and its body.
pub type FuzzTarget = (&'static str, fn(&[u8]));

/// The `name`s of the `[[bin]]` sections of a fuzz crate's `Cargo.toml`.
pub fn fuzz_binaries(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin {
            if let Some(value) = line.strip_prefix("name").map(str::trim_start) {
                if let Some(value) = value.strip_prefix('=') {
                    names.push(value.trim().trim_matches('"').to_string());
                }
            }
        }
    }
    names
}

/// Runs every file in `<fuzz_dir>/seeds/<target>/` through its target's body and returns the
/// number of seeds per target. Panics (failing the test) naming the target and the seed file
/// when a body panics, and when the targets listed here and the crate's binaries differ or a
/// target has no seed.
pub fn replay(fuzz_dir: &Path, targets: &[FuzzTarget]) -> Vec<(String, usize)> {
    let manifest = std::fs::read_to_string(fuzz_dir.join("Cargo.toml"))
        .unwrap_or_else(|e| panic!("{}/Cargo.toml: {e}", fuzz_dir.display()));
    let mut binaries = fuzz_binaries(&manifest);
    binaries.sort();
    let mut listed: Vec<String> = targets.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(
        binaries,
        listed,
        "the fuzz binaries of {} and the replayed target bodies differ",
        fuzz_dir.display()
    );
    let mut counts = Vec::new();
    for &(name, body) in targets {
        let dir = fuzz_dir.join("seeds").join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (every fuzz target needs seeds)", dir.display()))
            .map(|entry| entry.expect("seed directory entry").path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}: no seed", dir.display());
        for file in &files {
            let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(&data))) {
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                panic!(
                    "fuzz target {name} panicked on {}: {message}",
                    file.display()
                );
            }
        }
        counts.push((name.to_string(), files.len()));
    }
    counts
}

/// [`replay`] for the fuzz crate at `<crate_dir>/fuzz` (pass `env!("CARGO_MANIFEST_DIR")`),
/// printing the number of seeds replayed per target.
pub fn replay_crate_seeds(crate_dir: &str, targets: &[FuzzTarget]) {
    let fuzz_dir = Path::new(crate_dir).join("fuzz");
    for (target, seeds) in replay(&fuzz_dir, targets) {
        println!("{target}: {seeds} seeds replayed");
    }
}
