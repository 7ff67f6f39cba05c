//! The RADIUS accounting listener inside `portolan run` (`[inputs.radius]`): started before the
//! EAL on its own thread, pinned to the control cores; its counters feed `/metrics`.
//!
//! Owns: reading the shared secret (mode-checked, as the connectors' secrets are) and starting
//! and stopping `portolan_control::radius::listener`. Must not: run on a worker core, or log the
//! secret.

use portolan_api::DataplaneStatsHandle;
use portolan_control::radius::listener::{ListenerConfig, RadiusListener};
use portolan_control::Operator;

use crate::config::ApplianceConfig;
use crate::Failure;

/// Starts the listener when `[inputs.radius]` is set.
pub fn start(
    cfg: &ApplianceConfig,
    operator: &Operator,
    stats: &DataplaneStatsHandle,
) -> Result<Option<RadiusListener>, Failure> {
    let Some(r) = &cfg.inputs.radius else {
        return Ok(None);
    };
    let secret =
        portolan_connectors::config::read_secret("inputs.radius.secret_file", &r.secret_file)
            .map_err(|e| Failure::bad_input(e.to_string()))?;
    let cpus = cfg.hardware.control_cores();
    let listener = RadiusListener::start(
        ListenerConfig {
            bind: r.listen,
            secret: secret.into_bytes(),
            clients: r.clients.clone(),
        },
        operator.clone(),
        move || super::pin_to(&cpus),
    )
    .map_err(|e| Failure::runtime(format!("inputs.radius.listen {}: {e}", r.listen)))?;
    tracing::info!(
        listen = %listener.local_addr(),
        clients = r.clients.len(),
        "RADIUS accounting listener started"
    );
    let counters = listener.counters();
    stats.set_radius_source(std::sync::Arc::new(move || counters.snapshot()));
    Ok(Some(listener))
}
