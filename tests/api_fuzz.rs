//! Property-based fuzzing of the admin API from its OpenAPI document: runs `scripts/api-fuzz`
//! (schemathesis in a venv under `target/`, against a real `portolan run` on the sample
//! configuration with a fresh data folder) and fails on any 5xx or failed check. Skips, saying
//! so, only when `python3` is missing.

use std::path::Path;
use std::process::Command;

#[test]
fn schemathesis_finds_no_server_error_in_the_admin_api() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = Command::new("python3").arg("--version").output();
    if !python.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED schemathesis_finds_no_server_error_in_the_admin_api: python3 is not installed (needed for scripts/api-fuzz)");
        return;
    }
    let out = Command::new(root.join("scripts/api-fuzz"))
        .env("PORTOLAN_BIN", env!("CARGO_BIN_EXE_portolan"))
        .current_dir(root)
        .output()
        .expect("run scripts/api-fuzz");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/api-fuzz failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stderr.contains("api-fuzz: passed"), "{stderr}");
    // The run exercised every operation of the document.
    assert!(
        stdout.contains("Tested: ") && !stdout.contains("Tested: 0"),
        "{stdout}"
    );
}
