//! The admin API's listener: binds, sets up TLS (or plain HTTP on loopback when configured), serves HTTP/1.1
//! and HTTP/2 with header size limits, logs one line when ready, and shuts down gracefully.
//!
//! It sheds what it cannot serve: every connection is admitted through the [`ConnectionTable`] (caps total
//! and per client address, below the descriptor limit; the longest-idle connection is closed to make room),
//! a connection with no request in flight for `idle_timeout_seconds` is closed (HTTP/1.1 keep-alive and
//! HTTP/2 alike), HTTP/2 peers are PINGed and closed when they stop answering, and the request head must
//! arrive within `header_read_timeout_seconds` (the TLS handshake within 10 s).
//!
//! This module must not log request contents or secrets; connection errors are logged at debug level.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::config::{ApiConfig, ConfigError};
use crate::connections::{descriptor_limit, ClientAddr, ConnectionSlot, ConnectionTable};
use crate::router::build_router;
use crate::state::ApiState;
use crate::tls::{load_or_create, TlsError, TlsOrigin};

/// Time a client has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time open connections get to finish after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Time a connection told to close (shed, shutdown) gets to finish requests in flight.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Time an idle connection told to close gets to send its GOAWAY (HTTP/2 would otherwise wait
/// for the peer to answer a PING, which an idle attacker never does).
const IDLE_CLOSE_GRACE: Duration = Duration::from_millis(20);

/// Why the admin API could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The `[api]` section is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// TLS files could not be loaded or created.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The listening socket could not be bound.
    #[error("admin API cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// A bound, not yet serving, admin API listener.
pub struct ApiServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    router: axum::Router,
    builder: auto::Builder<TokioExecutor>,
    connections: Arc<ConnectionTable>,
    idle_timeout: Duration,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("local_addr", &self.local_addr)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl ApiServer {
    /// Validates `cfg`, prepares TLS (creating a self-signed pair when both files are absent), binds the
    /// socket, and logs `admin API listening on <url>`.
    pub async fn bind(cfg: &ApiConfig, state: ApiState) -> Result<Self, ServeError> {
        cfg.validate()?;
        let tls = if cfg.plain_http {
            None
        } else {
            let (server_cfg, origin) = load_or_create(&cfg.tls, cfg.listen.ip())?;
            if origin == TlsOrigin::Created {
                tracing::warn!(
                    cert = %cfg.tls.cert.display(),
                    key = %cfg.tls.key.display(),
                    "created a self-signed TLS certificate for the admin API; replace it with one from your CA"
                );
            }
            Some(TlsAcceptor::from(server_cfg))
        };
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let limits = &cfg.connections;
        let ping = Duration::from_secs(limits.http2_ping_interval_seconds);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(limits.header_read_timeout_seconds))
            .max_buf_size(cfg.max_header_bytes)
            .max_headers(cfg.max_headers);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(64)
            .keep_alive_interval(Some(ping))
            .keep_alive_timeout(ping);
        let nofile = descriptor_limit();
        let connections = Arc::new(ConnectionTable::new(
            limits,
            nofile,
            Arc::clone(&state.metrics),
        ));
        let server = Self {
            listener,
            local_addr,
            tls,
            router: build_router(cfg, state),
            builder,
            connections,
            idle_timeout: Duration::from_secs(limits.idle_timeout_seconds),
        };
        tracing::info!(
            max_connections = server.connections.max_total(),
            descriptor_limit = nofile,
            "admin API connection cap"
        );
        tracing::info!("admin API listening on {}", server.url());
        Ok(server)
    }

    /// The bound address (the real port when the configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Base URL, e.g. `https://127.0.0.1:9443`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// Serves until `shutdown` completes, then lets open connections finish (bounded grace period).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let builder = Arc::new(self.builder);
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                res = self.listener.accept() => res,
                () = &mut shutdown => break,
            };
            let (tcp, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors or a reset during accept: back off briefly, keep serving.
                    tracing::warn!(error = %e, "admin API accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let slot = match self.connections.admit(peer.ip()) {
                Ok(slot) => slot,
                Err(refusal) => {
                    tracing::debug!(%peer, reason = refusal.as_str(), "admin API connection refused");
                    drop(tcp);
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let connection = Connection {
                builder: builder.clone(),
                router: self.router.clone(),
                peer,
                slot,
                idle_timeout: self.idle_timeout,
                metrics: self.connections.metrics(),
            };
            let tls = self.tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        let close = Arc::clone(&connection.slot.close);
                        let handshake =
                            tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                        let stream = tokio::select! {
                            r = handshake => r,
                            () = close.notified() => return,
                        };
                        match stream {
                            Ok(Ok(stream)) => connection.serve(stream).await,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "admin API TLS handshake failed");
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "admin API TLS handshake timed out");
                            }
                        }
                    }
                    None => connection.serve(tcp).await,
                }
            });
        }
        drop(self.listener);
        self.connections.close_all();
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while self.connections.open() > 0 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    "admin API connections still open after the shutdown grace period; closing"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One admitted connection, ready to be served once its transport (TCP or TLS) is up.
struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    router: axum::Router,
    peer: std::net::SocketAddr,
    slot: ConnectionSlot,
    idle_timeout: Duration,
    metrics: Arc<crate::metrics::ApiMetrics>,
}

impl Connection {
    /// Serves HTTP/1.1 or HTTP/2 on `io` until the peer closes, the connection idles past the
    /// timeout, or the table tells it to close; then closes it gracefully within [`CLOSE_GRACE`].
    async fn serve<IO>(self, io: IO)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            builder,
            router,
            peer,
            slot,
            idle_timeout,
            metrics,
        } = self;
        let activity = Arc::clone(&slot.activity);
        let service =
            tower::service_fn(move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ClientAddr(peer));
                let in_flight = activity.begin();
                let router = router.clone();
                async move {
                    let resp = tower::ServiceExt::oneshot(router, req).await;
                    drop(in_flight);
                    resp
                }
            });
        let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        tokio::pin!(conn);
        let check_every =
            (idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        let mut tick = tokio::time::interval(check_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let reason = loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "admin API connection ended with an error");
                    }
                    return;
                }
                () = slot.close.notified() => break "shed_or_shutdown",
                _ = tick.tick() => {
                    if slot.activity.idle_for().is_some_and(|idle| idle >= idle_timeout) {
                        metrics.observe_connection_closed("idle");
                        break "idle";
                    }
                }
            }
        };
        tracing::debug!(%peer, reason, "admin API closing a connection");
        conn.as_mut().graceful_shutdown();
        let grace = if slot.activity.idle_for().is_some() {
            IDLE_CLOSE_GRACE
        } else {
            CLOSE_GRACE
        };
        if tokio::time::timeout(grace, conn.as_mut()).await.is_err() {
            tracing::debug!(%peer, "admin API connection did not finish within the close grace; dropped");
        }
        drop(slot);
    }
}

/// Binds the admin API per `cfg`, logs one `admin API listening on <url>` line when ready, and serves until
/// `shutdown` completes.
pub async fn serve(
    cfg: ApiConfig,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let server = ApiServer::bind(&cfg, state).await?;
    server.run(shutdown).await;
    Ok(())
}
