//! Alert forwarding to where SOCs collect: syslog (RFC 5424, one JSON event per message, over UDP
//! or TCP with TLS, RFC 5425 octet-counting framing) and Redis (EVE into a list with `RPUSH` or a
//! channel with `PUBLISH`, as Suricata's `redis` output does).
//!
//! Owns: one bounded queue and one sender thread per output ([`Forwarder`]), the wire formats
//! (syslog header, RESP commands) and the counters ([`ForwardCounts`]: sent, dropped, errors).
//! [`Forwarder::send`] never blocks and never does I/O: it offers the event to the queue and, when
//! the queue is full (the receiver is down or slow), drops it and counts it. The sender thread
//! connects, reconnects with back-off, and holds the one event in hand while the receiver is down.
//! Must not: block its caller (the drain thread feeding the control plane), retry without bound,
//! or change an event.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;

/// How syslog messages travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogTransport {
    /// One datagram per message (RFC 5426).
    Udp,
    /// TCP with TLS (RFC 5425): the server's certificate must chain to `ca_file` (PEM) and name
    /// `server_name`.
    Tls {
        /// PEM file of the certificate authorities trusted for the receiver.
        ca_file: PathBuf,
        /// The name the receiver's certificate must carry.
        server_name: String,
    },
}

/// Where a [`Forwarder`] sends events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardTarget {
    /// A syslog receiver (rsyslog, syslog-ng, a SIEM's collector).
    Syslog {
        /// `host:port`.
        address: String,
        /// UDP or TLS.
        transport: SyslogTransport,
        /// Syslog facility number (0..=23; 13 "log audit", 16..=23 local0..local7).
        facility: u8,
        /// HOSTNAME field of the header.
        hostname: String,
        /// APP-NAME field of the header (`portolan`).
        app_name: String,
    },
    /// A Redis server: `RPUSH key event` (list) or `PUBLISH key event` (channel).
    Redis {
        /// `host:port`.
        address: String,
        /// List or channel name.
        key: String,
        /// `true`: `PUBLISH` to a channel; `false`: `RPUSH` onto a list.
        publish: bool,
    },
}

impl ForwardTarget {
    /// A short name for logs and metrics labels: `syslog-udp`, `syslog-tls`, `redis-list`,
    /// `redis-channel`.
    pub fn kind(&self) -> &'static str {
        match self {
            ForwardTarget::Syslog {
                transport: SyslogTransport::Udp,
                ..
            } => "syslog-udp",
            ForwardTarget::Syslog { .. } => "syslog-tls",
            ForwardTarget::Redis { publish: false, .. } => "redis-list",
            ForwardTarget::Redis { publish: true, .. } => "redis-channel",
        }
    }
}

/// Severity of a forwarded event, as syslog numbers it (0 emergency .. 7 debug).
pub type SyslogSeverity = u8;

/// What an output did so far (the counters shared by every output).
pub type ForwardCounts = super::OutputCounts;

type Counters = super::OutputCounters;

struct Event {
    severity: SyslogSeverity,
    ts_us: i64,
    json: String,
}

/// One output: a bounded queue and the thread that empties it into the receiver.
pub struct Forwarder {
    tx: Option<SyncSender<Event>>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
    kind: &'static str,
    queue_limit: usize,
    target: ForwardTarget,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("kind", &self.kind)
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

/// Why an output could not start.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The queue limit is zero.
    #[error("the output queue limit must be at least 1")]
    ZeroQueue,
    /// The TLS trust file could not be read or holds no certificate.
    #[error("TLS CA file {path}: {message}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The server name is not a valid DNS name or address.
    #[error("TLS server name {0:?} is not a DNS name or IP address")]
    ServerName(String),
    /// The facility is out of range.
    #[error("syslog facility {0} is out of range (0..=23)")]
    Facility(u8),
    /// The sender thread could not be started.
    #[error("cannot start the output thread: {0}")]
    Thread(std::io::Error),
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Forwarder {
    /// Starts an output that queues up to `queue_limit` events.
    pub fn start(target: ForwardTarget, queue_limit: usize) -> Result<Forwarder, ForwardError> {
        if queue_limit == 0 {
            return Err(ForwardError::ZeroQueue);
        }
        let tls = match &target {
            ForwardTarget::Syslog { facility, .. } if *facility > 23 => {
                return Err(ForwardError::Facility(*facility))
            }
            ForwardTarget::Syslog {
                transport:
                    SyslogTransport::Tls {
                        ca_file,
                        server_name,
                    },
                ..
            } => Some(tls_client(ca_file, server_name)?),
            _ => None,
        };
        let kind = target.kind();
        let shown = target.clone();
        let (tx, rx) = sync_channel::<Event>(queue_limit);
        let counters = Arc::new(Counters::default());
        let c = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name(format!("out-{kind}"))
            .spawn(move || run(target, tls, rx, c))
            .map_err(ForwardError::Thread)?;
        Ok(Forwarder {
            tx: Some(tx),
            counters,
            thread: Some(thread),
            kind,
            queue_limit,
            target: shown,
        })
    }

    /// Offers one event (serialised as one line of JSON); never blocks. Returns `false` when the
    /// queue was full and the event was dropped (counted).
    pub fn send(&self, event: &Value, severity: SyslogSeverity, ts_us: i64) -> bool {
        let Some(tx) = &self.tx else { return false };
        let json = event.to_string();
        // Counted as queued before it is offered, so the sender thread never takes it off the
        // count first (the gauge never wraps below zero).
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(Event {
            severity: severity.min(7),
            ts_us,
            json,
        }) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.queued.fetch_sub(1, Ordering::Relaxed);
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Counters so far.
    pub fn counts(&self) -> ForwardCounts {
        self.counters.counts()
    }

    /// The live counters (shared; read them from any thread, e.g. for the statistics).
    pub fn counters(&self) -> Arc<super::OutputCounters> {
        Arc::clone(&self.counters)
    }

    /// Where it sends.
    pub fn target(&self) -> &ForwardTarget {
        &self.target
    }

    /// Events the queue holds at most before new ones are dropped.
    pub fn queue_limit(&self) -> usize {
        self.queue_limit
    }

    /// `syslog-udp`, `syslog-tls`, `redis-list` or `redis-channel`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Stops taking events and waits up to `grace` for the queue to drain; what is still queued
    /// then is counted as dropped. Returns the final counts.
    pub fn close(mut self, grace: Duration) -> ForwardCounts {
        self.tx = None; // the thread sees the hang-up once the queue is empty
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && self.thread.as_ref().is_some_and(|t| !t.is_finished()) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(t) = self.thread.take() {
            if t.is_finished() {
                let _ = t.join();
            } else {
                // The receiver is still down: give up on what is queued.
                let left = self.counters.queued.swap(0, Ordering::Relaxed);
                self.counters.dropped.fetch_add(left, Ordering::Relaxed);
            }
        }
        self.counts()
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.tx = None;
    }
}

fn tls_client(
    ca_file: &std::path::Path,
    server_name: &str,
) -> Result<(Arc<rustls::ClientConfig>, ServerName<'static>), ForwardError> {
    let ca_err = |message: String| ForwardError::CaFile {
        path: ca_file.to_path_buf(),
        message,
    };
    let pem = std::fs::read(ca_file).map_err(|e| ca_err(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| ca_err(format!("not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| ca_err(format!("unusable certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ca_err("holds no certificate".to_string()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ca_err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|_| ForwardError::ServerName(server_name.to_string()))?;
    Ok((Arc::new(config), name))
}

/// An open connection to the receiver.
enum Link {
    Udp(UdpSocket),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Redis(BufReader<TcpStream>),
}

fn connect_tcp(address: &str) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn open(
    target: &ForwardTarget,
    tls: &Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
) -> std::io::Result<Link> {
    match target {
        ForwardTarget::Syslog {
            address,
            transport: SyslogTransport::Udp,
            ..
        } => {
            let to = address
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))?;
            let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
            let s = UdpSocket::bind(bind)?;
            s.connect(to)?;
            Ok(Link::Udp(s))
        }
        ForwardTarget::Syslog { address, .. } => {
            let (config, name) = tls.as_ref().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "no TLS configuration")
            })?;
            let tcp = connect_tcp(address)?;
            let conn = rustls::ClientConnection::new(Arc::clone(config), name.clone())
                .map_err(std::io::Error::other)?;
            let mut stream = rustls::StreamOwned::new(conn, tcp);
            // Complete the handshake now, so a bad certificate shows as a connect error.
            while stream.conn.is_handshaking() {
                stream
                    .conn
                    .complete_io(&mut stream.sock)
                    .map_err(std::io::Error::other)?;
            }
            Ok(Link::Tls(Box::new(stream)))
        }
        ForwardTarget::Redis { address, .. } => {
            Ok(Link::Redis(BufReader::new(connect_tcp(address)?)))
        }
    }
}

/// The RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`, MSGID `alert`,
/// no structured data, MSG the JSON event.
pub fn syslog_message(
    facility: u8,
    severity: SyslogSeverity,
    ts_us: i64,
    hostname: &str,
    app_name: &str,
    json: &str,
) -> String {
    let pri = u32::from(facility.min(23)) * 8 + u32::from(severity.min(7));
    let ts = crate::timestamp::format_rfc3339(ts_us);
    let field = |s: &str, max: usize| -> String {
        // PRINTUSASCII without spaces, bounded, `-` when empty (RFC 5424 section 6).
        let v: String = s
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(max)
            .collect();
        if v.is_empty() {
            "-".to_string()
        } else {
            v
        }
    };
    format!(
        "<{pri}>1 {ts} {} {} {} alert - {json}",
        field(hostname, 255),
        field(app_name, 48),
        std::process::id()
    )
}

/// A Redis command as RESP: an array of bulk strings.
pub fn resp_command(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for p in parts {
        out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn deliver(link: &mut Link, target: &ForwardTarget, ev: &Event) -> std::io::Result<()> {
    let syslog = match target {
        ForwardTarget::Syslog {
            facility,
            hostname,
            app_name,
            ..
        } => Some(syslog_message(
            *facility,
            ev.severity,
            ev.ts_us,
            hostname,
            app_name,
            &ev.json,
        )),
        ForwardTarget::Redis { .. } => None,
    };
    match (link, target, syslog) {
        (Link::Udp(s), _, Some(msg)) => s.send(msg.as_bytes()).map(|_| ()),
        (Link::Tls(s), _, Some(msg)) => {
            // RFC 5425 section 4.3: octet counting.
            let mut frame = format!("{} ", msg.len()).into_bytes();
            frame.extend_from_slice(msg.as_bytes());
            s.write_all(&frame)?;
            s.flush()
        }
        (Link::Redis(r), ForwardTarget::Redis { key, publish, .. }, None) => {
            let verb: &[u8] = if *publish { b"PUBLISH" } else { b"RPUSH" };
            r.get_mut()
                .write_all(&resp_command(&[verb, key.as_bytes(), ev.json.as_bytes()]))?;
            // The reply is an integer (`:n`) or an error (`-ERR ...`).
            let mut line = Vec::new();
            r.by_ref().take(512).read_until(b'\n', &mut line)?;
            match line.first() {
                Some(b':') => Ok(()),
                _ => Err(std::io::Error::other(format!(
                    "Redis replied {:?}",
                    String::from_utf8_lossy(&line).trim_end()
                ))),
            }
        }
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "link does not match its target",
        )),
    }
}

fn run(
    target: ForwardTarget,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    rx: Receiver<Event>,
    c: Arc<Counters>,
) {
    let mut link: Option<Link> = None;
    let mut backoff = BACKOFF_MIN;
    loop {
        let ev = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(ev) => ev,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // Hold this event until the receiver takes it (the queue fills meanwhile and the
        // caller counts what does not fit).
        loop {
            if link.is_none() {
                match open(&target, &tls) {
                    Ok(l) => link = Some(l),
                    Err(_) => {
                        c.errors.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                }
            }
            let Some(l) = link.as_mut() else { continue };
            match deliver(l, &target, &ev) {
                Ok(()) => {
                    c.sent.fetch_add(1, Ordering::Relaxed);
                    c.queued.fetch_sub(1, Ordering::Relaxed);
                    backoff = BACKOFF_MIN;
                    break;
                }
                Err(_) => {
                    c.errors.fetch_add(1, Ordering::Relaxed);
                    link = None;
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_header_is_rfc5424() {
        let m = syslog_message(13, 4, 1_710_234_195_247_432, "sensor 1", "portolan", "{}");
        assert!(
            m.starts_with("<108>1 2024-03-12T09:03:15.247432Z sensor1 portolan "),
            "{m}"
        );
        assert!(m.ends_with(" alert - {}"));
        assert!(syslog_message(13, 4, 0, "", "", "x").contains(" - - "));
    }

    #[test]
    fn resp_is_an_array_of_bulk_strings() {
        assert_eq!(
            resp_command(&[b"RPUSH", b"eve", b"{\"a\":1}"]),
            b"*3\r\n$5\r\nRPUSH\r\n$3\r\neve\r\n$7\r\n{\"a\":1}\r\n".to_vec()
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        // Port 1 on loopback: nothing listens, every connect fails fast.
        let f = Forwarder::start(
            ForwardTarget::Redis {
                address: "127.0.0.1:1".into(),
                key: "eve".into(),
                publish: false,
            },
            4,
        )
        .expect("start");
        let t = Instant::now();
        let accepted = (0..100)
            .filter(|i| f.send(&serde_json::json!({ "n": i }), 4, 0))
            .count();
        assert!(t.elapsed() < Duration::from_secs(1), "send never waits");
        assert!(
            accepted <= 5,
            "{accepted} accepted: the queue holds 4 (+1 in hand)"
        );
        let counts = f.close(Duration::from_millis(50));
        assert_eq!(counts.sent, 0);
        assert_eq!(counts.dropped, 100);
        assert!(counts.errors >= 1);
    }
}
