//! The RADIUS accounting listener: one UDP socket and one thread that receives Accounting-Request
//! packets, verifies each Request Authenticator with the shared secret, applies the record
//! through [`Operator::radius_accounting`] and answers Accounting-Response.
//!
//! Owns: the socket, the thread, the counters ([`RadiusCounters`]). Per RFC 2866 a packet is
//! answered only once it is recorded: a packet from a source outside `clients`, malformed, with a
//! bad authenticator, or that the store could not record is dropped silently (and counted), so
//! the NAS retransmits or fails over. Must not: act on a packet before its authenticator is
//! verified, block the sender on anything but the store's lock, or allocate per packet beyond the
//! parsed record.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::packet::{self, PacketError, ACCOUNTING_REQUEST, MAX_PACKET_LEN};
use super::AccountingEvent;
use crate::engine::Operator;

/// How the listener is set up.
#[derive(Clone)]
pub struct ListenerConfig {
    /// Where to listen (`0.0.0.0:1813`, `[::]:1813`, ...).
    pub bind: SocketAddr,
    /// The shared secret (never logged).
    pub secret: Vec<u8>,
    /// Sources accepted (the NASes); empty: any source (the secret must still match).
    pub clients: Vec<ipnet::IpNet>,
}

impl std::fmt::Debug for ListenerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerConfig")
            .field("bind", &self.bind)
            .field("secret", &"<redacted>")
            .field("clients", &self.clients)
            .finish()
    }
}

/// What the listener did, since it started.
#[derive(Debug, Default)]
pub struct RadiusCounters {
    /// Accounting-Requests recorded and answered.
    pub accepted: AtomicU64,
    /// Requests whose Request Authenticator did not match (wrong secret, forged, or altered).
    pub bad_authenticator: AtomicU64,
    /// Datagrams that are not a well-formed Accounting-Request.
    pub malformed: AtomicU64,
    /// Datagrams from a source outside `clients`.
    pub unknown_client: AtomicU64,
    /// Accepted requests that bound nothing (no session id, no MAC, a status that binds nothing).
    pub ignored: AtomicU64,
    /// Accepted requests the store could not record (not answered; the NAS retries).
    pub errors: AtomicU64,
    /// Bindings begun.
    pub bindings_opened: AtomicU64,
    /// Bindings ended.
    pub bindings_closed: AtomicU64,
    last_problem: Mutex<Option<String>>,
}

/// A copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RadiusSnapshot {
    /// See [`RadiusCounters::accepted`].
    pub accepted: u64,
    /// See [`RadiusCounters::bad_authenticator`].
    pub bad_authenticator: u64,
    /// See [`RadiusCounters::malformed`].
    pub malformed: u64,
    /// See [`RadiusCounters::unknown_client`].
    pub unknown_client: u64,
    /// See [`RadiusCounters::ignored`].
    pub ignored: u64,
    /// See [`RadiusCounters::errors`].
    pub errors: u64,
    /// See [`RadiusCounters::bindings_opened`].
    pub bindings_opened: u64,
    /// See [`RadiusCounters::bindings_closed`].
    pub bindings_closed: u64,
    /// The last dropped or ignored packet's source and reason.
    pub last_problem: Option<String>,
}

impl RadiusCounters {
    /// The counters now.
    pub fn snapshot(&self) -> RadiusSnapshot {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RadiusSnapshot {
            accepted: n(&self.accepted),
            bad_authenticator: n(&self.bad_authenticator),
            malformed: n(&self.malformed),
            unknown_client: n(&self.unknown_client),
            ignored: n(&self.ignored),
            errors: n(&self.errors),
            bindings_opened: n(&self.bindings_opened),
            bindings_closed: n(&self.bindings_closed),
            last_problem: self.last_problem.lock().ok().and_then(|p| p.clone()),
        }
    }

    fn problem(&self, counter: &AtomicU64, from: SocketAddr, reason: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut p) = self.last_problem.lock() {
            *p = Some(format!("{from}: {reason}"));
        }
    }
}

/// The running listener; [`RadiusListener::stop`] (or dropping it) ends the thread.
pub struct RadiusListener {
    local: SocketAddr,
    counters: Arc<RadiusCounters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// How often the thread looks at the stop flag while no packet comes.
const POLL: Duration = Duration::from_millis(200);

impl RadiusListener {
    /// Binds the socket and starts the thread; `on_start` runs first on the thread (to pin it).
    pub fn start(
        cfg: ListenerConfig,
        operator: Operator,
        on_start: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<RadiusListener> {
        let socket = UdpSocket::bind(cfg.bind)?;
        socket.set_read_timeout(Some(POLL))?;
        let local = socket.local_addr()?;
        let counters = Arc::new(RadiusCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let counters = Arc::clone(&counters);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("portolan-radius".into())
                .spawn(move || {
                    on_start();
                    serve(&socket, &cfg, &operator, &counters, &stop);
                })?
        };
        Ok(RadiusListener {
            local,
            counters,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address (the port chosen when `bind` named port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The counters (shared with the thread).
    pub fn counters(&self) -> Arc<RadiusCounters> {
        Arc::clone(&self.counters)
    }

    /// Ends the thread and waits for it.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RadiusListener {
    fn drop(&mut self) {
        self.halt();
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn serve(
    socket: &UdpSocket,
    cfg: &ListenerConfig,
    operator: &Operator,
    counters: &RadiusCounters,
    stop: &AtomicBool,
) {
    // One octet more than the largest packet: a longer datagram is still read whole enough to
    // be judged by its length field (the rest is padding).
    let mut buf = vec![0u8; MAX_PACKET_LEN + 1];
    while !stop.load(Ordering::Relaxed) {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                counters.problem(&counters.errors, cfg.bind, format!("receive: {e}"));
                std::thread::sleep(POLL);
                continue;
            }
        };
        if let Some(reply) = handle(&buf[..n], from, cfg, operator, counters) {
            if let Err(e) = socket.send_to(&reply, from) {
                counters.problem(&counters.errors, from, format!("send: {e}"));
            }
        }
    }
}

/// One datagram: the Accounting-Response to send, or `None` (dropped, counted).
pub fn handle(
    bytes: &[u8],
    from: SocketAddr,
    cfg: &ListenerConfig,
    operator: &Operator,
    counters: &RadiusCounters,
) -> Option<[u8; packet::HEADER_LEN]> {
    let source: IpAddr = from.ip().to_canonical();
    if !cfg.clients.is_empty() && !cfg.clients.iter().any(|n| n.contains(&source)) {
        counters.problem(
            &counters.unknown_client,
            from,
            "not among inputs.radius.clients".into(),
        );
        return None;
    }
    if bytes.first() != Some(&ACCOUNTING_REQUEST) {
        let reason = match bytes.first() {
            Some(c) => PacketError::Code(*c).to_string(),
            None => PacketError::Short(0).to_string(),
        };
        counters.problem(&counters.malformed, from, reason);
        return None;
    }
    if !packet::request_authenticator_ok(bytes, &cfg.secret) {
        // A short or over-long packet fails here too: tell the two apart.
        match packet::parse(bytes) {
            Err(e @ (PacketError::Short(_) | PacketError::Length { .. })) => {
                counters.problem(&counters.malformed, from, e.to_string())
            }
            _ => counters.problem(
                &counters.bad_authenticator,
                from,
                "Request Authenticator does not match (shared secret?)".into(),
            ),
        }
        return None;
    }
    let request = match packet::parse(bytes) {
        Ok(r) => r,
        Err(e) => {
            counters.problem(&counters.malformed, from, e.to_string());
            return None;
        }
    };
    let event = AccountingEvent::from_request(&request, source, now_us());
    match operator.radius_accounting(&event) {
        Ok(outcome) => {
            counters.accepted.fetch_add(1, Ordering::Relaxed);
            counters
                .bindings_opened
                .fetch_add(outcome.opened as u64, Ordering::Relaxed);
            counters
                .bindings_closed
                .fetch_add(outcome.closed as u64, Ordering::Relaxed);
            if let Some(reason) = outcome.ignored {
                counters.problem(&counters.ignored, from, reason);
            }
            Some(packet::accounting_response(
                request.identifier,
                &request.authenticator,
                &cfg.secret,
            ))
        }
        Err(e) => {
            counters.problem(&counters.errors, from, format!("not recorded: {e}"));
            None
        }
    }
}
