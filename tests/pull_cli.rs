//! `portolan pull` and `check-config` on connector sections, end to end with the real binary: a
//! configuration without a connector, a secret file others can read, and a server that cannot be
//! reached (the connectors against live HTTPS servers are `control/connectors/tests/pull.rs`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn portolan(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portolan"))
        .args(args)
        .arg(config)
        .env_remove("PORTOLAN_SIGNATURES")
        .output()
        .expect("run portolan")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The example configuration with its data_dir in `dir` and `extra` appended.
fn config(dir: &Path, extra: &str) -> PathBuf {
    let example = std::fs::read_to_string(Path::new(ROOT).join("config/portolan.example.toml"))
        .expect("read example");
    let text = example
        .replace(
            "data_dir = \"../data\"",
            &format!("data_dir = \"{}\"", dir.join("data").display()),
        )
        .replace(
            "../samples/egress-sample.pcap",
            &format!("{ROOT}/samples/egress-sample.pcap"),
        );
    let path = dir.join("portolan.toml");
    std::fs::write(&path, format!("{text}\n{extra}")).expect("write config");
    path
}

fn secret(dir: &Path, mode: u32) -> PathBuf {
    let p = dir.join("jamf.secret");
    std::fs::write(&p, "s3cret-value\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn jamf_section(secret: &Path) -> String {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    format!(
        "[inputs.jamf]\nurl = \"https://127.0.0.1:9\"\nclient_id = \"portolan\"\n\
         client_secret_file = \"{}\"\nlimits = {{ attempts = 1, connect_timeout_s = 2 }}\n",
        secret.display()
    )
}

#[test]
fn pull_without_a_connector_section_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let out = portolan(&["pull", "--config"], &cfg);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("no [inputs.jamf] or [inputs.graph]"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_secret_others_can_read_is_refused_by_check_config_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let s = secret(dir.path(), 0o644);
    let cfg = config(dir.path(), &jamf_section(&s));
    let out = portolan(&["check-config"], &cfg);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("inputs.jamf.client_secret_file") && t.contains("644"),
        "{t}"
    );
    assert!(
        !t.contains("s3cret-value"),
        "the secret is never shown: {t}"
    );
    std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = portolan(&["check-config"], &cfg);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_pull_that_cannot_reach_the_server_exits_1_naming_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let s = secret(dir.path(), 0o600);
    let cfg = config(dir.path(), &jamf_section(&s));
    let out = portolan(&["pull", "--connector", "jamf", "--config"], &cfg);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("inputs.jamf") && t.contains("POST https://127.0.0.1:9/api/oauth/token"),
        "{t}"
    );
    assert!(!t.contains("s3cret-value"), "{t}");
    assert!(!dir.path().join("data").exists(), "pull touches no store");
}
