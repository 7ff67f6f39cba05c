//! The triage console end to end in a real browser: runs `scripts/console-test` (Playwright for Python
//! in a venv under `target/`, driving Debian's chromium against a real `portolan run` replaying the
//! sample capture plus hostile sessions), which writes the screenshots in `target/console-test/shots/`
//! (`scripts/console-test --update-docs` copies them to `docs/console/`, the README's images; a test run
//! leaves the tree clean). Skips, saying so, only when `python3` is missing; a missing chromium fails
//! (scripts/setup installs it).

use std::path::Path;
use std::process::Command;

#[test]
fn the_console_triages_the_sample_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = Command::new("python3").arg("--version").output();
    if !python.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED the_console_triages_the_sample_in_chromium: python3 is not installed (needed for scripts/console-test)");
        return;
    }
    // Screenshots of an earlier run must not pass for this run's.
    let _ = std::fs::remove_dir_all(root.join("target/console-test/shots"));
    let out = Command::new(root.join("scripts/console-test"))
        .env("PORTOLAN_BIN", env!("CARGO_BIN_EXE_portolan"))
        .current_dir(root)
        .output()
        .expect("run scripts/console-test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/console-test failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stderr.contains("console-test: passed"), "{stderr}");
    for screen in [
        "inbox",
        "finding",
        "flow",
        "devices",
        "device",
        "baselines",
        "health",
    ] {
        let shot = root.join(format!("target/console-test/shots/{screen}.png"));
        let len = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(len > 10_000, "{} missing or empty", shot.display());
    }
}
