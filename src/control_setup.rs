//! The one set-up of the control plane, for `portolan replay` and `portolan run` alike: the
//! store, the roles, the tunables, the dataplane's port registry as the device default baseline,
//! and the imports of the MDM inventory, DHCP leases and device states — all read before the EAL
//! starts, so a bad file is one clear error naming the option or field that gave it.
//!
//! Owns: [`ControlInputs`] (what the control plane starts from, and how each input is named in
//! errors), [`open_control`] (all or nothing: with a store on disk, every import is first made
//! into a throw-away in-memory store, so a bad inventory, lease or device-state file is refused
//! before the store is created or written), and [`DataplaneBaseline`] (the adapter that makes the
//! dataplane's port registry the control plane's device default baseline).
//! Must not: judge, attribute or score flows, touch packets, or log (warnings are returned: the
//! daemon logs them, replay prints them).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use portolan_api::RolesSource;
use portolan_classify::{AppProto, PortRegistry};
use portolan_control::store::Durability;
use portolan_control::{ControlConfig, ControlError, ControlPlane, Store};
use portolan_packet::Transport;

/// The dataplane's port registry as the control plane's device default baseline: a protocol on a
/// port its signature (or the operator's override) registers is standard. A flow the workers judged
/// keeps their verdict (the observation's `port_mismatch`); this registry is asked only for flows
/// without one (EVE input that carries none) and for the alert's context (registered ports, STARTTLS).
#[derive(Debug, Clone)]
pub struct DataplaneBaseline(pub Arc<PortRegistry>);

impl DataplaneBaseline {
    fn transport(name: &str) -> Option<Transport> {
        if name.eq_ignore_ascii_case("tcp") {
            Some(Transport::Tcp)
        } else if name.eq_ignore_ascii_case("udp") {
            Some(Transport::Udp)
        } else {
            None
        }
    }

    fn proto(name: &str) -> Option<AppProto> {
        AppProto::from_name(&name.to_ascii_lowercase()).filter(|p| *p != AppProto::Unknown)
    }
}

impl portolan_control::RegisteredPorts for DataplaneBaseline {
    fn is_standard(&self, app_proto: &str, transport: &str, port: u16) -> bool {
        match (Self::proto(app_proto), Self::transport(transport)) {
            (Some(p), Some(t)) => !self.0.port_mismatch(p, t, port),
            // No opinion about a protocol or transport the dataplane does not know.
            _ => true,
        }
    }

    fn standard_ports(&self, app_proto: &str, transport: &str) -> Vec<u16> {
        match (Self::proto(app_proto), Self::transport(transport)) {
            (Some(p), Some(t)) => self.0.ports(p, t).to_vec(),
            _ => Vec::new(),
        }
    }

    fn knows(&self, app_proto: &str) -> bool {
        Self::proto(app_proto).is_some_and(|p| {
            !self.0.ports(p, Transport::Tcp).is_empty()
                || !self.0.ports(p, Transport::Udp).is_empty()
        })
    }

    fn judged_by_dataplane(&self) -> bool {
        true
    }
}

/// Where the store lives.
#[derive(Debug, Clone)]
pub enum StoreTarget {
    /// In memory: nothing survives the process (a one-shot replay without `--db`).
    InMemory,
    /// A SQLite file, created when missing.
    File {
        /// The database file.
        path: PathBuf,
        /// How hard each commit is pushed to disk.
        durability: Durability,
    },
}

/// How each input is named in errors: the command-line option (`--inventory`) or the
/// configuration field (`inputs.inventory`).
#[derive(Debug, Clone, Copy)]
pub struct InputNames {
    /// The store.
    pub store: &'static str,
    /// The roles file.
    pub roles: &'static str,
    /// The inventory files.
    pub inventory: &'static str,
    /// The lease file.
    pub leases: &'static str,
    /// The device-state file.
    pub device_states: &'static str,
}

/// What the control plane starts from.
#[derive(Debug, Clone)]
pub struct ControlInputs {
    /// The store.
    pub store: StoreTarget,
    /// The roles and baselines (file or shipped defaults).
    pub roles: RolesSource,
    /// The tunables.
    pub config: ControlConfig,
    /// MDM inventory files (Jamf, Graph, Apple MDM; JSON or plist).
    pub inventory: Vec<PathBuf>,
    /// Kea DHCP lease CSVs (v4 and v6).
    pub leases: Vec<PathBuf>,
    /// Device-state JSON lines.
    pub device_states: Option<PathBuf>,
    /// How the inputs are named in errors.
    pub names: InputNames,
    /// The actor the imports are audited under.
    pub actor: &'static str,
}

/// Why the control plane could not start.
#[derive(Debug)]
pub struct SetupError {
    /// A user's file or option is at fault (exit 2), else a runtime failure (exit 1).
    pub bad_input: bool,
    /// What went wrong, naming the option or field.
    pub message: String,
}

impl SetupError {
    fn bad_input(message: String) -> SetupError {
        SetupError {
            bad_input: true,
            message,
        }
    }

    fn runtime(message: String) -> SetupError {
        SetupError {
            bad_input: false,
            message,
        }
    }

    /// A control-plane error about the input `what`: the user's file is at fault, except for
    /// store failures, which are runtime failures.
    fn input(what: &str, e: ControlError) -> SetupError {
        match e {
            ControlError::Store(_) => SetupError::runtime(format!("{what}: {e}")),
            _ => SetupError::bad_input(format!("{what}: {e}")),
        }
    }
}

/// The control plane over its store, with the roles, tunables, `registry` as the device default
/// baseline and every import of `inputs` made; and the control plane's start-up warnings.
pub fn open_control(
    inputs: &ControlInputs,
    registry: &Arc<PortRegistry>,
) -> Result<(ControlPlane, Vec<String>), SetupError> {
    let names = inputs.names;
    let roles = inputs
        .roles
        .load()
        .map_err(|e| SetupError::bad_input(format!("{}: {e}", names.roles)))?;
    let plane = |store: Store| {
        let control = ControlPlane::new(store, roles.clone(), inputs.config.clone())
            .map_err(|e| SetupError::runtime(e.to_string()))?;
        control
            .operator
            .set_port_registry(Box::new(DataplaneBaseline(Arc::clone(registry))));
        Ok::<_, SetupError>(control)
    };
    let in_memory = || Store::open_in_memory().map_err(|e| SetupError::runtime(e.to_string()));
    let store = match &inputs.store {
        StoreTarget::InMemory => in_memory()?,
        StoreTarget::File { path, durability } => {
            // All or nothing: the imports are tried on a scratch store before the file exists.
            import(&plane(in_memory()?)?, inputs)?;
            open_store(path, *durability, names.store)?
        }
    };
    let control = plane(store)?;
    let warnings = control
        .core()
        .lock()
        .map_err(|e| SetupError::runtime(e.to_string()))?
        .startup_warnings()
        .to_vec();
    let mut warnings = warnings;
    warnings.extend(import(&control, inputs)?);
    Ok((control, warnings))
}

fn open_store(path: &Path, durability: Durability, what: &str) -> Result<Store, SetupError> {
    Store::open_with(path, durability).map_err(|e| {
        let message = format!("{what}: {e}");
        if e.is_unusable_file() {
            SetupError::bad_input(message)
        } else {
            SetupError::runtime(message)
        }
    })
}

/// Imports the inventory, leases and device states of `inputs` into `control`; returns the
/// inventory imports' warnings (skipped records, partial exports, values kept from before).
fn import(control: &ControlPlane, inputs: &ControlInputs) -> Result<Vec<String>, SetupError> {
    let names = inputs.names;
    let op = &control.operator;
    let mut warnings = Vec::new();
    if !inputs.inventory.is_empty() {
        let summaries = op
            .import_inventory(&inputs.inventory, inputs.actor)
            .map_err(|e| SetupError::input(names.inventory, e))?;
        warnings.extend(summaries.into_iter().flat_map(|s| s.warnings));
    }
    for p in &inputs.leases {
        let summary = op
            .import_leases(p, inputs.actor)
            .map_err(|e| SetupError::input(names.leases, e))?;
        warnings.extend(summary.skipped);
    }
    if let Some(p) = &inputs.device_states {
        op.import_device_states(p)
            .map_err(|e| SetupError::input(names.device_states, e))?;
    }
    Ok(warnings)
}
