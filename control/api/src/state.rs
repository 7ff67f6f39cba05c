//! What the admin API's handlers share: the control plane, the token store, the dataplane statistics handle,
//! the readiness flag and the metrics registry.
//!
//! [`ApiState`] is built by the daemon (or a test) from handles it already has; this module must not start
//! anything.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::console::session::SessionStore;
use crate::control::ControlHandle;
use crate::metrics::ApiMetrics;
use crate::stats::DataplaneStatsHandle;
use crate::tokens::TokenStore;

/// Whether the appliance is ready to serve (`GET /readyz`). Cheap to clone; all clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    ready: Arc<AtomicBool>,
    /// Why it is not ready, when the daemon said (`/readyz` reports it).
    reason: Arc<std::sync::RwLock<Option<String>>>,
}

impl Readiness {
    /// A flag that starts not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// A flag that starts ready.
    pub fn ready() -> Self {
        let r = Self::default();
        r.set_ready(true);
        r
    }

    /// Marks the appliance ready or not (not ready: "starting or shutting down").
    pub fn set_ready(&self, ready: bool) {
        if let Ok(mut r) = self.reason.write() {
            *r = None;
        }
        self.ready.store(ready, Ordering::Release);
    }

    /// Marks the appliance not ready, with the reason `/readyz` gives (e.g. the dataplane
    /// waits for the first inventory).
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        if let Ok(mut r) = self.reason.write() {
            *r = Some(reason.into());
        }
        self.ready.store(false, Ordering::Release);
    }

    /// Why it is not ready, if a reason was given.
    pub fn reason(&self) -> Option<String> {
        self.reason.read().ok().and_then(|r| r.clone())
    }

    /// Whether it is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// Shared state of the admin API. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    /// The control plane (inventory, roles, exceptions, findings, audit).
    pub control: ControlHandle,
    /// API tokens.
    pub tokens: Arc<TokenStore>,
    /// Latest dataplane statistics, published by the daemon.
    pub stats: DataplaneStatsHandle,
    /// Readiness flag, set by the daemon once the dataplane and the control plane run.
    pub readiness: Readiness,
    /// Metrics registry.
    pub metrics: Arc<ApiMetrics>,
    /// Console sign-in sessions (in memory).
    pub sessions: Arc<SessionStore>,
    /// The fleet's shared configuration (`portolan central` only; `None` on an appliance).
    pub shared_config: Option<Arc<dyn crate::shared_config::SharedConfigStore>>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("tokens", &self.tokens.path())
            .field("ready", &self.readiness.is_ready())
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// State over a control-plane handle and a token store; statistics start empty, readiness not ready.
    pub fn new(control: ControlHandle, tokens: Arc<TokenStore>) -> Self {
        Self::with_stats(
            control,
            tokens,
            DataplaneStatsHandle::new(),
            Readiness::new(),
        )
    }

    /// State with the daemon's statistics handle and readiness flag.
    pub fn with_stats(
        control: ControlHandle,
        tokens: Arc<TokenStore>,
        stats: DataplaneStatsHandle,
        readiness: Readiness,
    ) -> Self {
        let metrics = Arc::new(ApiMetrics::new(stats.clone(), Some(control.core().clone())));
        Self {
            control,
            tokens,
            stats,
            readiness,
            metrics,
            sessions: Arc::new(SessionStore::new()),
            shared_config: None,
        }
    }
}
