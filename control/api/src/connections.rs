//! The admin API's open connections: caps (total and per client address), idle closing, and the
//! per-address record of failed authentications.
//!
//! Owns [`ConnectionTable`] (every open connection with its client address and activity, the caps
//! and the shedding rule), [`ConnectionActivity`] (requests in flight and the last activity of one
//! connection) and [`AuthFailures`] (failed bearer tokens per client address: delay and log lines).
//! Shedding rule: when a cap is reached, the connection of that scope that has been idle longest
//! (no request in flight) is told to close and the new one is admitted; when every connection of
//! the scope is busy, the new one is refused (closed at once). The total cap never exceeds the
//! process's descriptor limit less a reserve, so the daemon keeps descriptors for its store, logs
//! and dataplane. This module must not block: one short mutex per accept and per close.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::config::ConnectionConfig;
use crate::metrics::ApiMetrics;

/// The client address of a request, inserted into its extensions by the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// Descriptors kept free of API connections: at least this many, or a quarter of the limit.
pub const DESCRIPTOR_RESERVE: u64 = 128;

/// The total connection cap for a descriptor limit of `nofile` and a configured cap: the
/// configured cap, but never more than `nofile` less the reserve (at least 1).
pub fn total_cap(configured: usize, nofile: Option<u64>) -> usize {
    match nofile {
        Some(limit) => {
            let reserve = DESCRIPTOR_RESERVE.max(limit / 4);
            let room = usize::try_from(limit.saturating_sub(reserve)).unwrap_or(usize::MAX);
            configured.min(room).max(1)
        }
        None => configured,
    }
}

/// The soft `RLIMIT_NOFILE` of this process, when it can be read.
pub fn descriptor_limit() -> Option<u64> {
    let (soft, _hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok()?;
    (soft != nix::sys::resource::RLIM_INFINITY).then_some(soft)
}

/// Requests in flight on one connection and when it was last active.
#[derive(Debug)]
pub struct ConnectionActivity {
    epoch: Instant,
    in_flight: AtomicUsize,
    last_active_ms: AtomicU64,
}

impl ConnectionActivity {
    fn new(epoch: Instant) -> Self {
        let a = Self {
            epoch,
            in_flight: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(0),
        };
        a.touch();
        a
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active_ms.store(ms, Ordering::Relaxed);
    }

    /// Notes a request starting; the returned guard notes its end when dropped.
    pub fn begin(self: &Arc<Self>) -> RequestInFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        RequestInFlight(Arc::clone(self))
    }

    /// How long the connection has had no request in flight (`None` while one is).
    pub fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        Some(Duration::from_millis(
            now.saturating_sub(self.last_active_ms.load(Ordering::Relaxed)),
        ))
    }
}

/// One request in flight; dropping it ends the request.
#[derive(Debug)]
pub struct RequestInFlight(Arc<ConnectionActivity>);

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug)]
struct Entry {
    client: IpAddr,
    activity: Arc<ConnectionActivity>,
    close: Arc<Notify>,
    closing: bool,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Entry>,
    per_client: HashMap<IpAddr, usize>,
}

/// Every open connection of the admin API, with the caps.
#[derive(Debug)]
pub struct ConnectionTable {
    table: Mutex<Table>,
    epoch: Instant,
    max_total: usize,
    max_per_client: usize,
    metrics: Arc<ApiMetrics>,
}

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every connection is busy and the total cap is reached.
    TotalCap,
    /// Every connection of this client address is busy and its cap is reached.
    ClientCap,
}

impl Refusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::TotalCap => "total_cap",
            Refusal::ClientCap => "client_cap",
        }
    }
}

/// An admitted connection's place in the table; dropping it frees the place.
#[derive(Debug)]
pub struct ConnectionSlot {
    table: Arc<ConnectionTable>,
    id: u64,
    /// The connection's activity (shared with its request service).
    pub activity: Arc<ConnectionActivity>,
    /// Signalled when the connection must close (shed for a newer one, or shutdown).
    pub close: Arc<Notify>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.table.release(self.id);
    }
}

impl ConnectionTable {
    /// A table with the caps of `cfg`, the total cap held below the descriptor limit `nofile`.
    pub fn new(cfg: &ConnectionConfig, nofile: Option<u64>, metrics: Arc<ApiMetrics>) -> Self {
        let max_total = total_cap(cfg.max_connections, nofile);
        Self {
            table: Mutex::new(Table::default()),
            epoch: Instant::now(),
            max_total,
            max_per_client: cfg.max_connections_per_client.min(max_total),
            metrics,
        }
    }

    /// The metrics the table counts into.
    pub fn metrics(&self) -> Arc<ApiMetrics> {
        Arc::clone(&self.metrics)
    }

    /// The total cap in force.
    pub fn max_total(&self) -> usize {
        self.max_total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding this lock cannot leave the maps inconsistent in a way that matters
        // more than refusing service: keep going with the data as it is.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `client`, shedding the longest-idle connection of a full scope.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<ConnectionSlot, Refusal> {
        let mut t = self.lock();
        let from_client = t.per_client.get(&client).copied().unwrap_or(0);
        // Connections already told to close still hold descriptors until their task ends: they
        // count against a hard ceiling a quarter above the cap (they close within a second).
        let hard_ceiling = self.max_total.saturating_add(self.max_total / 4 + 4);
        let scope = if from_client >= self.max_per_client {
            Some(Refusal::ClientCap)
        } else if t.open.values().filter(|e| !e.closing).count() >= self.max_total {
            Some(Refusal::TotalCap)
        } else {
            None
        };
        if let Some(scope) = scope {
            let victim = t
                .open
                .iter()
                .filter(|(_, e)| !e.closing && (scope == Refusal::TotalCap || e.client == client))
                .filter_map(|(id, e)| e.activity.idle_for().map(|idle| (*id, idle)))
                .max_by_key(|(_, idle)| *idle)
                .map(|(id, _)| id);
            match victim {
                Some(id) if t.open.len() < hard_ceiling => {
                    if let Some(e) = t.open.get_mut(&id) {
                        e.closing = true;
                        e.close.notify_one();
                    }
                    self.metrics.observe_connection_closed("shed");
                }
                _ => {
                    drop(t);
                    self.metrics.observe_connection_refused(scope.as_str());
                    return Err(scope);
                }
            }
        }
        let id = t.next_id;
        t.next_id = t.next_id.wrapping_add(1);
        let activity = Arc::new(ConnectionActivity::new(self.epoch));
        let close = Arc::new(Notify::new());
        t.open.insert(
            id,
            Entry {
                client,
                activity: Arc::clone(&activity),
                close: Arc::clone(&close),
                closing: false,
            },
        );
        *t.per_client.entry(client).or_insert(0) += 1;
        let open = t.open.len();
        drop(t);
        self.metrics.set_connections_open(open);
        Ok(ConnectionSlot {
            table: Arc::clone(self),
            id,
            activity,
            close,
        })
    }

    fn release(&self, id: u64) {
        let mut t = self.lock();
        if let Some(e) = t.open.remove(&id) {
            if let Some(n) = t.per_client.get_mut(&e.client) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    t.per_client.remove(&e.client);
                }
            }
        }
        let open = t.open.len();
        drop(t);
        self.metrics.set_connections_open(open);
    }

    /// Tells every open connection to close (server shutdown).
    pub fn close_all(&self) {
        let mut t = self.lock();
        for e in t.open.values_mut() {
            e.closing = true;
            e.close.notify_one();
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().open.len()
    }
}

/// Window over which failed authentications of one client address are counted.
const AUTH_WINDOW: Duration = Duration::from_secs(60);
/// Longest delay given to a failed authentication.
const AUTH_MAX_DELAY: Duration = Duration::from_secs(5);
/// Client addresses remembered at once (the oldest window is forgotten first beyond this).
const AUTH_MAX_CLIENTS: usize = 65_536;

#[derive(Debug)]
struct FailureWindow {
    started: Instant,
    failures: u32,
    logged: bool,
}

/// Failed authentications per client address over the last minute: how long to delay the next
/// answer, and when to log.
#[derive(Debug)]
pub struct AuthFailures {
    free: u32,
    by_client: Mutex<HashMap<IpAddr, FailureWindow>>,
}

/// What to do about one failed authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthFailureVerdict {
    /// Failures from this address in the current window, this one included.
    pub failures: u32,
    /// How long to wait before answering.
    pub delay: Duration,
    /// Whether to write a log line now (the first failure of a window, and the first delayed one).
    pub log: bool,
}

impl AuthFailures {
    /// `free` failures per minute per address are answered at once; later ones are delayed.
    pub fn new(free: u32) -> Self {
        Self {
            free,
            by_client: Mutex::new(HashMap::new()),
        }
    }

    /// Records one failure from `client`.
    pub fn record(&self, client: IpAddr) -> AuthFailureVerdict {
        let now = Instant::now();
        let mut map = self.by_client.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= AUTH_MAX_CLIENTS && !map.contains_key(&client) {
            map.retain(|_, w| now.duration_since(w.started) < AUTH_WINDOW);
            if map.len() >= AUTH_MAX_CLIENTS {
                if let Some(oldest) = map.iter().min_by_key(|(_, w)| w.started).map(|(k, _)| *k) {
                    map.remove(&oldest);
                }
            }
        }
        let w = map.entry(client).or_insert(FailureWindow {
            started: now,
            failures: 0,
            logged: false,
        });
        if now.duration_since(w.started) >= AUTH_WINDOW {
            *w = FailureWindow {
                started: now,
                failures: 0,
                logged: false,
            };
        }
        w.failures = w.failures.saturating_add(1);
        let over = w.failures.saturating_sub(self.free);
        let delay = if over == 0 {
            Duration::ZERO
        } else {
            let shift = over.min(16);
            Duration::from_millis(50u64 << shift).min(AUTH_MAX_DELAY)
        };
        let log = w.failures == 1 || (over == 1 && !w.logged);
        if over == 1 {
            w.logged = true;
        }
        AuthFailureVerdict {
            failures: w.failures,
            delay,
            log,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::DataplaneStatsHandle;

    fn table(total: usize, per_client: usize) -> Arc<ConnectionTable> {
        let cfg = ConnectionConfig {
            max_connections: total,
            max_connections_per_client: per_client,
            ..ConnectionConfig::default()
        };
        let metrics = Arc::new(ApiMetrics::new(DataplaneStatsHandle::default(), None));
        Arc::new(ConnectionTable::new(&cfg, None, metrics))
    }

    #[test]
    fn total_cap_stays_below_the_descriptor_limit() {
        assert_eq!(total_cap(1024, Some(256)), 128);
        assert_eq!(total_cap(1024, Some(1024)), 768);
        assert_eq!(total_cap(100, Some(1024)), 100);
        assert_eq!(total_cap(100, None), 100);
        assert_eq!(total_cap(100, Some(10)), 1);
    }

    #[test]
    fn a_full_table_sheds_the_longest_idle_and_refuses_when_all_are_busy() {
        let t = table(2, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let first = t.admit(a).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let second = t.admit(a).unwrap();
        // Both idle: the third sheds the first (idle longest).
        let third = t.admit(a).unwrap();
        assert!(
            futures_ready(&first.close),
            "the longest-idle connection is told to close"
        );
        drop(first);
        // Now both open ones are busy: the next is refused.
        let _r2 = second.activity.begin();
        let _r3 = third.activity.begin();
        assert_eq!(t.admit(a).unwrap_err(), Refusal::ClientCap);
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(t.admit(b).unwrap_err(), Refusal::TotalCap);
        drop(second);
        assert_eq!(t.open(), 1);
        assert!(t.admit(b).is_ok());
    }

    /// Whether a `notify_one` is stored on `n` (consumes it).
    fn futures_ready(n: &Notify) -> bool {
        use std::future::Future;
        let fut = n.notified();
        let mut fut = std::pin::pin!(fut);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        fut.as_mut().poll(&mut cx).is_ready()
    }

    #[test]
    fn auth_failures_are_free_then_delayed_doubling_and_logged_twice_per_window() {
        let f = AuthFailures::new(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let v: Vec<_> = (0..6).map(|_| f.record(a)).collect();
        assert_eq!(
            v.iter().map(|v| v.delay.as_millis()).collect::<Vec<_>>(),
            [0, 0, 0, 100, 200, 400]
        );
        assert_eq!(
            v.iter().map(|v| v.log).collect::<Vec<_>>(),
            [true, false, false, true, false, false]
        );
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(f.record(b).delay, Duration::ZERO, "per client address");
    }
}
