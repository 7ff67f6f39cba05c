//! A `portolan run` or `portolan central` child process for the integration tests: spawning it
//! on an ephemeral admin port, collecting its log, clients trusting only its certificate, tokens,
//! and stopping it (SIGTERM, `kill -9`, or on drop when a test fails first).
//!
//! Owns: the process's life and its log. Must not: know what a test asks the API; each test
//! keeps its own request helpers around a [`Running`].

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The `portolan` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_portolan");

/// The repository's example configuration (`config/portolan.example.toml`) with absolute sample
/// paths and the sample inventory imported at start-up, so the dataplane starts at once.
pub fn example_config_with_inventory() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let samples = root.join("samples");
    std::fs::read_to_string(root.join("config/portolan.example.toml"))
        .expect("example config")
        .replace("../samples/", &format!("{}/", samples.display()))
        .replacen(
            "# [inputs]              #",
            &format!(
                "[inputs]\ninventory = [{:?}]\n#",
                samples.join("inventory.json").display().to_string()
            ),
            1,
        )
}

/// `portolan <sub> --config CONFIG [--data-dir DATA] --listen 127.0.0.1:0`, ready for
/// [`Running::spawn`] (add arguments or environment first when needed).
pub fn command(sub: &str, config: &Path, data_dir: Option<&Path>) -> Command {
    let mut c = Command::new(BIN);
    c.args([sub, "--config"]).arg(config);
    if let Some(data_dir) = data_dir {
        c.arg("--data-dir").arg(data_dir);
    }
    c.args(["--listen", "127.0.0.1:0"]);
    c
}

/// `portolan token create` with `role` and `label`; the token is the only line on stdout.
pub fn create_token(config: &Path, data_dir: Option<&Path>, role: &str, label: &str) -> String {
    let mut c = Command::new(BIN);
    c.args(["token", "create", "--config"]).arg(config);
    if let Some(data_dir) = data_dir {
        c.arg("--data-dir").arg(data_dir);
    }
    let out = c
        .args(["--role", role, "--label", label])
        .output()
        .expect("run portolan token create");
    assert!(
        out.status.success(),
        "token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one token alone on stdout: {stdout:?}");
    assert!(lines[0].starts_with("ptl_"), "{stdout:?}");
    lines[0].to_string()
}

/// The root certificate of the admin API's self-signed certificate in `data_dir`.
pub fn api_certificate(data_dir: &Path) -> reqwest::Certificate {
    let pem = std::fs::read(data_dir.join("tls/api-cert.pem")).expect("self-signed certificate");
    reqwest::Certificate::from_pem(&pem).expect("pem")
}

/// Finishes a `reqwest` client builder (async or blocking): rustls, trusting only the API
/// certificate in the data directory, a 30 s timeout.
macro_rules! trusting_only_the_api {
    ($builder:expr, $data_dir:expr) => {
        $builder
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(api_certificate($data_dir))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client")
    };
}

/// An async client trusting only the API certificate in `data_dir`.
pub fn api_client(data_dir: &Path) -> reqwest::Client {
    trusting_only_the_api!(reqwest::Client::builder(), data_dir)
}

/// A blocking client trusting only the API certificate in `data_dir`.
pub fn api_client_blocking(data_dir: &Path) -> reqwest::blocking::Client {
    trusting_only_the_api!(reqwest::blocking::Client::builder(), data_dir)
}

/// A running process whose stderr is collected line by line.
pub struct Running {
    /// The process.
    pub child: Child,
    /// The admin API's base URL from its `admin API listening on` line.
    pub url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Spawns `command` (with `RUST_LOG=info` unless the command sets it) and waits up to 90 s
    /// for its `admin API listening on` line; panics with the log if it does not come.
    pub fn spawn(mut command: Command) -> Running {
        if !command.get_envs().any(|(k, _)| k == "RUST_LOG") {
            command.env("RUST_LOG", "info");
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn portolan");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, url)) = line.split_once("admin API listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let Ok(url) = rx.recv_timeout(Duration::from_secs(90)) else {
            let _ = child.kill();
            panic!(
                "no listening line within 90 s; log:\n{}",
                log.lock().unwrap().join("\n")
            );
        };
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        Running { child, url, log }
    }

    /// `base URL + path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Every log line so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits (blocking, up to `secs`) until a log line contains `text`.
    pub fn wait_for_log_blocking(&self, text: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.log_text().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no log line with {text:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (async, up to `secs`) until a log line contains `text`.
    pub async fn wait_for_log(&self, text: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.log_text().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no log line with {text:?}; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, sig).expect("signal");
    }

    /// SIGTERM, then waits up to 60 s for a successful exit; returns the whole log.
    pub fn stop(mut self) -> String {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                let log = self.log_text();
                assert!(status.success(), "exit {status}; log:\n{log}");
                return log;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("no exit within 60 s of SIGTERM; log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `kill -9`, then reaps the process.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("wait");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed assertion must not leave the process running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
