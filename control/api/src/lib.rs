//! `portolan-api`: the appliance's admin HTTP API (axum on tokio, TLS by rustls).
//!
//! Owns: the `[api]` configuration ([`ApiConfig`]), bearer tokens and roles ([`tokens`]), the route table and
//! handlers ([`routes`]), the router assembled from it ([`router`]), RFC 7807 errors ([`problem`]), rate limiting, Prometheus metrics, the OpenAPI
//! document, TLS set-up and the listener ([`serve`]). Must not: hold control-plane logic (it calls
//! `portolan-control` through [`control::ControlHandle`]), touch dataplane state (it reads the
//! [`DataplaneStatsHandle`] the daemon publishes), or log a token or key.

pub mod auth;
pub mod config;
pub mod connections;
pub mod console;
pub mod control;
pub mod db;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod ratelimit;
pub mod router;
pub mod routes;
pub mod server;
pub mod shared_config;
pub mod state;
pub mod stats;
pub mod tls;
pub mod tokens;
pub mod views;

pub use config::{ApiConfig, ConfigError, ConnectionConfig, RateLimitConfig, TlsFiles};
pub use control::{ControlError, ControlHandle, RegistryFactory, ReloadPlan, RolesSource};
pub use problem::Problem;
pub use server::{serve, ApiServer, ServeError};
pub use state::{ApiState, Readiness};
pub use stats::{
    BuildInfo, ConnectorSource, ConnectorStats, DataplaneStats, DataplaneStatsHandle, OutputSource,
    OutputStats, PortCounters, StoreStats, WorkerStats,
};
pub use tokens::{Access, Identity, NewToken, Role, TokenError, TokenRecord, TokenStore};
