//! The admin API's listener: binds, sets up TLS (or plain HTTP on loopback when configured), serves HTTP/1.1
//! and HTTP/2 with header size limits, logs one line when ready, and shuts down gracefully.
//!
//! This module must not log request contents or secrets; connection errors are logged at debug level.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::config::{ApiConfig, ConfigError};
use crate::routes::build_router;
use crate::state::ApiState;
use crate::tls::{load_or_create, TlsError, TlsOrigin};

/// Time a client has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time open connections get to finish after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(cfg.max_header_bytes)
            .max_headers(cfg.max_headers);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(64);
        let server = Self {
            listener,
            local_addr,
            tls,
            router: build_router(cfg, state),
            builder,
        };
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
        let graceful = GracefulShutdown::new();
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
            let _ = tcp.set_nodelay(true);
            let service = TowerToHyperService::new(self.router.clone());
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let result = match tls {
                    Some(acceptor) => {
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                            .await
                        {
                            Ok(Ok(stream)) => {
                                let conn = builder.serve_connection(TokioIo::new(stream), service);
                                watcher.watch(conn).await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "admin API TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "admin API TLS handshake timed out");
                                return;
                            }
                        }
                    }
                    None => {
                        let conn = builder.serve_connection(TokioIo::new(tcp), service);
                        watcher.watch(conn).await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "admin API connection ended with an error");
                }
            });
        }
        drop(self.listener);
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(SHUTDOWN_GRACE) => {
                tracing::warn!("admin API connections still open after the shutdown grace period; closing");
            }
        }
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
