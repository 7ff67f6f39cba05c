//! `portolan run` with `[inputs.radius]`: FreeRADIUS's `radclient` (Debian `freeradius-utils`,
//! installed by `scripts/setup`) sends real Accounting-Requests over loopback to the daemon's
//! listener; the daemon answers Accounting-Response (radclient checks its authenticator), counts a
//! request with a wrong secret in `/metrics`, and the binding it stored names the sample
//! inventory's device for the framed IPv6 address after a restart.

mod common;

use std::io::Write;
use std::net::{IpAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};

use common::daemon::{self, Running, BIN};
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// radclient, one try, 2 s: whether a verified Accounting-Response came back, and its output.
fn radclient(port: u16, secret: &str, attributes: &str) -> (bool, String) {
    let bin = Path::new("/usr/bin/radclient");
    assert!(
        bin.is_file(),
        "radclient not found: run scripts/setup (Debian package freeradius-utils)"
    );
    let mut child = Command::new(bin)
        .args([
            "-x",
            "-r",
            "1",
            "-t",
            "2",
            &format!("127.0.0.1:{port}"),
            "acct",
            secret,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("radclient");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(attributes.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && text.contains("Received Accounting-Response"),
        text,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn radclient_accounting_through_portolan_run() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let samples = Path::new(ROOT).join("samples");
    let secret = dir.path().join("radius.secret");
    std::fs::write(&secret, "wlc-shared-secret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let udp_port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port");
    let config_text = daemon::example_config_with_inventory()
        .replace("data_dir = \"../data\"", "data_dir = \"data\"")
        + &format!(
            "\n[inputs.radius]\nlisten = \"127.0.0.1:{udp_port}\"\n\
             secret_file = \"{}\"\nclients = [\"127.0.0.1/32\"]\n",
            secret.display()
        );
    assert!(config_text.contains("data_dir = \"data\""));
    let config = dir.path().join("portolan.toml");
    std::fs::write(&config, config_text).expect("config");
    let check = Command::new(BIN)
        .args(["check-config", "--quiet"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let token = daemon::create_token(&config, None, "admin", "radius");
    let p = Running::spawn(daemon::command("run", &config, None));
    p.wait_for_log("RADIUS accounting listener started", 30)
        .await;

    // The sample inventory's first device and its Wi-Fi MAC, in RFC 3580's spelling.
    let inventory: Value =
        serde_json::from_slice(&std::fs::read(samples.join("inventory.json")).unwrap()).unwrap();
    let device = &inventory["results"][0];
    let udid = device["general"]["udid"].as_str().unwrap().to_string();
    let mac = device["hardware"]["wifiMacAddress"]
        .as_str()
        .unwrap()
        .to_uppercase()
        .replace(':', "-");
    let start_s = 1_714_471_200i64;
    let start = format!(
        "Acct-Status-Type = Start\nAcct-Session-Id = \"5F3A0001\"\nCalling-Station-Id = \"{mac}\"\n\
         NAS-Identifier = \"wlc-1\"\nFramed-IPv6-Address = 2001:db8:99::1\n\
         Framed-IP-Address = 10.99.0.1\nEvent-Timestamp = {start_s}\n"
    );
    let (ok, out) = radclient(udp_port, "wlc-shared-secret", &start);
    assert!(ok, "{out}\nlog:\n{}", p.log_text());
    let (ok, out) = radclient(udp_port, "a-guess", &start.replace("5F3A0001", "5F3A0002"));
    assert!(!ok, "{out}");

    let client = daemon::api_client(&data);
    let text = client
        .get(p.at("/metrics"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("metrics parse");
    let sample = |name: &str, label: (&str, &str)| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no {name}{{{}={}}} in\n{text}", label.0, label.1))
    };
    assert_eq!(
        sample("portolan_radius_packets_total", ("result", "accepted")),
        1.0
    );
    assert_eq!(
        sample(
            "portolan_radius_packets_total",
            ("result", "bad_authenticator")
        ),
        1.0
    );
    assert_eq!(
        sample("portolan_radius_bindings_total", ("change", "opened")),
        2.0
    );

    // Stop; the binding is in the store: the framed addresses are the device's from the Start.
    p.stop();
    let store = portolan_control::Store::open(&data.join("portolan.db")).expect("store");
    let cp = portolan_control::ControlPlane::new(
        store,
        portolan_control::RoleSet::shipped_defaults().unwrap(),
        Default::default(),
    )
    .unwrap();
    for addr in ["2001:db8:99::1", "10.99.0.1"] {
        let held = cp
            .ingest
            .device_at(addr.parse::<IpAddr>().unwrap(), (start_s + 60) * 1_000_000)
            .unwrap()
            .map(|d| d.udid);
        assert_eq!(held.as_deref(), Some(udid.as_str()), "{addr}");
        let before = cp
            .ingest
            .device_at(addr.parse::<IpAddr>().unwrap(), (start_s - 60) * 1_000_000)
            .unwrap();
        assert!(before.is_none(), "{addr} before the Start");
    }
}
