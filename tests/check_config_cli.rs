//! `portolan check-config FILE` end to end: the real binary on the shipped configurations and on
//! broken copies of them. Nothing may be created (no data_dir, no TLS pair, no cache).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn check_config(config: &Path, envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portolan"));
    cmd.arg("check-config").arg(config);
    cmd.env_remove("PORTOLAN_SIGNATURES");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run portolan check-config")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The example configuration with `from` replaced by `to`, its data_dir in `dir`, written to
/// `dir/portolan.toml` (relative inputs stay resolvable: the capture path is made absolute).
fn variant(dir: &Path, from: &str, to: &str) -> PathBuf {
    let example = std::fs::read_to_string(Path::new(ROOT).join("config/portolan.example.toml"))
        .expect("read example");
    let data = dir.join("data");
    let text = example
        .replace(
            "data_dir = \"../data\"",
            &format!("data_dir = \"{}\"", data.display()),
        )
        .replace(
            "../samples/egress-sample.pcap",
            &format!("{ROOT}/samples/egress-sample.pcap"),
        );
    assert!(text.contains(from), "the example no longer has {from:?}");
    let path = dir.join("portolan.toml");
    std::fs::write(&path, text.replace(from, to)).expect("write variant");
    path
}

#[test]
fn the_shipped_configurations_are_valid_and_nothing_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = variant(dir.path(), "[logging]", "[logging]");
    let out = check_config(&config, &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}{stdout}", text(&out.stderr));
    assert!(stdout.contains("configuration is valid"), "{stdout}");
    assert!(stdout.contains("net_pcap0"), "the port is listed: {stdout}");
    assert!(stdout.contains("signatures"), "{stdout}");
    assert!(
        stdout.contains("self-signed pair for"),
        "the certificate's names are shown: {stdout}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "check-config created data_dir"
    );

    // The packaged configuration (a live af_packet port: nothing probed) and the live example.
    for shipped in [
        "packaging/portolan.toml",
        "config/portolan.live.example.toml",
    ] {
        let out = check_config(&Path::new(ROOT).join(shipped), &[]);
        assert!(out.status.success(), "{shipped}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.contains("net_af_packet0,iface=eth1"), "{stdout}");
    }

    // --quiet says nothing when valid.
    let out = Command::new(env!("CARGO_BIN_EXE_portolan"))
        .args(["check-config", "--quiet"])
        .arg(&config)
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}

#[test]
fn a_bad_configuration_exits_2_naming_the_file_and_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (from, to, field) in [
        // a type error, located by toml
        (
            "udp_idle_timeout_s = 60",
            "udp_idle_timeout_s = \"x\"",
            "hardware.flow_table.udp_idle_timeout_s",
        ),
        // an unknown key
        ("[store]", "[store]\npathh = \"x.db\"", "pathh"),
        // a value out of range
        ("stats_interval_ms = 1000", "stats_interval_ms = 1", "dataplane.stats_interval_ms"),
        // a certificate name that is no host name
        ("key = \"tls/api-key.pem\"", "key = \"tls/api-key.pem\"\nnames = [\"not a host\"]", "api.tls.names"),
        // a signature directory that does not exist
        (
            "# signatures = \"../dataplane/signatures\"",
            "signatures = \"/nonexistent/sigs\"",
            "dataplane.signatures",
        ),
        // a syslog CA file that does not exist
        (
            "# [[outputs.syslog]]",
            "[[outputs.syslog]]\naddress = \"siem:6514\"\ntransport = \"tls\"\nca_file = \"nope.pem\"",
            "outputs.syslog[0].ca_file",
        ),
        // a logging filter tracing cannot read
        ("level = \"info\"", "level = \"info,[bad\"", "logging.level"),
    ] {
        let config = variant(dir.path(), from, to);
        let out = check_config(&config, &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{field}: {stderr}");
        assert!(stderr.contains(field), "{field} not named: {stderr}");
        assert!(stderr.contains("portolan.toml"), "file not named: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn the_tls_pair_and_the_signatures_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = variant(dir.path(), "[logging]", "[logging]");
    // Half a pair: named.
    let tls = dir.path().join("data/tls");
    std::fs::create_dir_all(&tls).expect("mkdir");
    std::fs::write(tls.join("api-cert.pem"), "junk").expect("write");
    let out = check_config(&config, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("api.tls.key"),
        "{}",
        text(&out.stderr)
    );
    // Both files, but not PEM: the file is named.
    std::fs::write(tls.join("api-key.pem"), "junk").expect("write");
    let out = check_config(&config, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("api-cert.pem"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(&tls).expect("rm");

    // A signature directory named by the environment, with a broken file: the file is named.
    let sigs = dir.path().join("sigs");
    std::fs::create_dir_all(&sigs).expect("mkdir");
    std::fs::write(sigs.join("tls.toml"), "name = 3\n").expect("write");
    let out = check_config(
        &config,
        &[("PORTOLAN_SIGNATURES", sigs.to_str().expect("utf8"))],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("tls.toml"),
        "{}",
        text(&out.stderr)
    );
    // Without any directory the built-in set is used (unless this machine has the package).
    let out = check_config(&config, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    if !Path::new("/usr/share/portolan/signatures").is_dir() {
        assert!(
            text(&out.stdout).contains("built into this binary"),
            "{}",
            text(&out.stdout)
        );
    }
}

#[test]
fn completions_come_from_the_command_line_definitions() {
    let out = Command::new(env!("CARGO_BIN_EXE_portolan"))
        .args(["completions", "bash"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let script = text(&out.stdout);
    for sub in ["check-config", "replay", "hwcheck", "run", "token"] {
        assert!(
            script.contains(sub),
            "{sub} missing from the bash completion"
        );
    }
}

#[test]
fn configuration_files_over_the_size_limit_are_refused_naming_the_limit() {
    const LIMIT: usize = 1024 * 1024; // src/config.rs MAX_CONFIG_BYTES
    let dir = tempfile::tempdir().expect("tempdir");
    // The valid example, padded with a comment to one byte past the limit.
    let config = variant(dir.path(), "[logging]", "[logging]");
    let mut padded = std::fs::read_to_string(&config).expect("read variant");
    padded.push('#');
    padded.push_str(&"x".repeat(LIMIT + 1 - padded.len()));
    std::fs::write(&config, &padded).expect("write padded");
    let out = check_config(&config, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("limit of {LIMIT} bytes")),
        "{stderr}"
    );

    // `hwcheck` reads the same file (appliance or hardware description) within the same bound.
    let out = Command::new(env!("CARGO_BIN_EXE_portolan"))
        .arg("hwcheck")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run portolan hwcheck");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("limit of {LIMIT} bytes")),
        "{stderr}"
    );

    // At the limit the configuration is valid again.
    padded.pop();
    std::fs::write(&config, &padded).expect("write at the limit");
    let out = check_config(&config, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
