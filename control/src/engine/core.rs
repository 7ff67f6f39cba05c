//! The state ingest and operator acts share, held once: the store, the roles in force with the device
//! default baseline, the inventory and what attributes flows to it (addresses, leases, DNS answers,
//! device state), the pending learning counts and the counters.
//!
//! Owns: [`ControlCore`] (one lock over [`CoreState`], plus the configuration, which never changes) and the
//! rules that keep the shared state consistent: the roles in force are always the base set plus every
//! change kept in the store, and the inventory index is always rebuilt from the store after an import.
//! Must not: judge flows ([`super::ingest`] does) or write the audit log ([`super::operator`] does).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use crate::attribution::AttributionIndex;
use crate::device_state::{DeviceStateEvent, DeviceStateTimeline};
use crate::inventory::Device;
use crate::learning::PairCounts;
use crate::roles::{PortRule, RegisteredPorts, RoleSet};
use crate::store::Store;

use super::backlog::{StoreHealth, StoreHealthSnapshot};
use super::{ControlConfig, ControlError, IngestStats};

/// The shared core of the control plane: [`Ingest`](super::Ingest) and [`Operator`](super::Operator)
/// each hold it in an `Arc`, so a change made by one is what the other sees next.
pub struct ControlCore {
    state: Mutex<CoreState>,
    config: ControlConfig,
    health: StoreHealth,
}

impl std::fmt::Debug for ControlCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("ControlCore");
        if let Ok(s) = self.state.try_lock() {
            d.field("store", &s.store)
                .field("devices", &s.inventory.devices.len())
                .field("stats", &s.stats);
        }
        d.finish_non_exhaustive()
    }
}

impl ControlCore {
    pub(super) fn new(state: CoreState, config: ControlConfig) -> ControlCore {
        ControlCore {
            state: Mutex::new(state),
            config,
            health: StoreHealth::default(),
        }
    }

    /// Takes the lock over the shared state (held for one batch of flows or one operator act).
    pub fn lock(&self) -> Result<MutexGuard<'_, CoreState>, ControlError> {
        self.state
            .lock()
            .map_err(|_| ControlError::Rejected("control-plane lock poisoned".to_string()))
    }

    /// Uses `registry` (e.g. the dataplane's port registry) as the device default baseline. A poisoned
    /// lock is taken over: this replaces one field whole.
    pub fn set_port_registry(&self, registry: Box<dyn RegisteredPorts>) {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.set_port_registry(registry);
    }

    /// The configuration (fixed for the life of the core).
    pub fn config(&self) -> &ControlConfig {
        &self.config
    }

    /// Whether findings wait for the store, and what failed or was lost (read without the lock).
    pub fn store_health(&self) -> StoreHealthSnapshot {
        self.health.snapshot()
    }

    pub(super) fn health(&self) -> &StoreHealth {
        &self.health
    }
}

/// The roles in force and the device default baseline.
pub(super) struct Policy {
    /// The role set as given (roles file or shipped), before the changes kept in the store.
    pub(super) base_roles: RoleSet,
    /// `base_roles` plus the changes kept in the store.
    pub(super) roles: RoleSet,
    pub(super) registry: Option<Box<dyn RegisteredPorts>>,
    /// `registry` came from the roles file's `[registry]` table (replaced with the roles).
    pub(super) registry_from_roles: bool,
}

/// The inventory and everything that attributes a flow to a device.
#[derive(Default)]
pub(super) struct Inventory {
    pub(super) index: AttributionIndex,
    pub(super) devices: HashMap<String, Device>,
    pub(super) serial_to_udid: HashMap<String, String>,
    pub(super) states: DeviceStateTimeline,
}

/// The mutable shared state, reached through [`ControlCore::lock`].
pub struct CoreState {
    pub(super) store: Store,
    pub(super) policy: Policy,
    pub(super) inventory: Inventory,
    pub(super) counts: PairCounts,
    pub(super) stats: IngestStats,
    pub(super) warnings: Vec<String>,
}

/// The key device state events are kept under when the UDID is not known.
pub(super) fn serial_key(serial: &str) -> String {
    format!("serial:{serial}")
}

/// Applies the changes made through the API and kept in `store` on top of `roles` (as read from
/// the roles file): roles defined or deleted, then approved pairings, then exceptions. What
/// cannot be applied is described in `warnings`.
pub(super) fn apply_stored_changes(
    store: &Store,
    roles: &mut RoleSet,
    warnings: &mut Vec<String>,
) -> Result<(), ControlError> {
    for (name, definition) in store.role_definitions()? {
        match definition {
            Some(role) => {
                if let Err(e) = roles.upsert_role(role) {
                    warnings.push(format!("stored role `{name}` not applied: {e}"));
                }
            }
            None => {
                roles.remove_role(&name);
            }
        }
    }
    for (role, p) in store.approved_pairings()? {
        let rule = PortRule {
            app_proto: p.app_proto.clone(),
            transport: p.transport.clone(),
            ports: vec![p.port],
            starttls: p.starttls,
        };
        if let Err(e) = roles.add_approved_rule(&role, rule) {
            warnings.push(format!(
                "approved pairing for role `{role}` not applied: {e}"
            ));
        }
    }
    for rule in store.active_exceptions()? {
        let id = rule.id.clone();
        if let Err(e) = roles.add_exception(rule) {
            warnings.push(format!("stored exception `{id}` not applied: {e}"));
        }
    }
    Ok(())
}

impl CoreState {
    /// The shared state over `store`: the roles in force are `roles` plus the changes the store
    /// keeps, and the inventory and device states are the store's.
    pub(super) fn load(store: Store, mut roles: RoleSet) -> Result<CoreState, ControlError> {
        let mut warnings = Vec::new();
        let base_roles = roles.clone();
        apply_stored_changes(&store, &mut roles, &mut warnings)?;
        let registry: Option<Box<dyn RegisteredPorts>> = roles
            .file_registry()
            .cloned()
            .map(|r| Box::new(r) as Box<dyn RegisteredPorts>);
        let mut state = CoreState {
            store,
            policy: Policy {
                base_roles,
                roles,
                registry_from_roles: registry.is_some(),
                registry,
            },
            inventory: Inventory::default(),
            counts: PairCounts::default(),
            stats: IngestStats::default(),
            warnings,
        };
        state.reload_inventory()?;
        for (key, ev) in state.store.device_states()? {
            state.inventory.states.insert(&key, ev);
        }
        Ok(state)
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// From now on, every finding update, alert and learning-count flush is also queued in the
    /// store's fleet outbox (at most `capacity` rows), in the same transaction.
    pub fn enable_outbox(&mut self, capacity: u64) {
        self.store.enable_outbox(capacity);
    }

    /// Applies one fleet message to the store (the central; idempotent, see
    /// [`Store::apply_fleet_message`]).
    pub fn apply_fleet_message(
        &mut self,
        message: &crate::fleet::FleetMessage,
        now_us: i64,
    ) -> Result<crate::store::Applied, ControlError> {
        Ok(self.store.apply_fleet_message(message, now_us)?)
    }

    /// The roles in force (file, plus approved pairings and API exceptions).
    pub fn roles(&self) -> &RoleSet {
        &self.policy.roles
    }

    /// Counters since start.
    pub fn stats(&self) -> IngestStats {
        self.stats
    }

    /// Problems met while loading stored state (they did not stop the engine).
    pub fn startup_warnings(&self) -> &[String] {
        &self.warnings
    }

    /// A device by UDID.
    pub fn device(&self, udid: &str) -> Option<&Device> {
        self.inventory.devices.get(udid)
    }

    /// Number of devices known.
    pub fn device_count(&self) -> usize {
        self.inventory.devices.len()
    }

    /// The device holding `ip` at `at_us`, if any (for tools and tests).
    pub fn device_at(&self, ip: IpAddr, at_us: i64, config: &ControlConfig) -> Option<&Device> {
        self.inventory
            .index
            .device_at(ip, at_us, &config.attribution)
            .and_then(|a| self.inventory.devices.get(&a.udid))
    }

    /// Uses `registry` (e.g. the dataplane's port registry) as the device default baseline.
    pub fn set_port_registry(&mut self, registry: Box<dyn RegisteredPorts>) {
        self.policy.registry = Some(registry);
        self.policy.registry_from_roles = false;
    }

    /// Writes pending learning counts to the store.
    pub fn flush(&mut self) -> Result<(), ControlError> {
        let drained = self.counts.drain();
        if let Err(e) = self.store.add_learning_counts(&drained) {
            self.counts.restore(drained);
            return Err(e.into());
        }
        Ok(())
    }

    /// Rebuilds the device maps and the attribution index from the store.
    pub(super) fn reload_inventory(&mut self) -> Result<(), ControlError> {
        let devices = self.store.devices()?;
        let inv = &mut self.inventory;
        inv.devices.clear();
        inv.serial_to_udid.clear();
        let mut macs = HashMap::new();
        for d in devices {
            if let Some(s) = &d.serial_number {
                inv.serial_to_udid.insert(s.clone(), d.udid.clone());
            }
            if let Some(m) = &d.wifi_mac {
                macs.insert(m.clone(), d.udid.clone());
            }
            inv.devices.insert(d.udid.clone(), d);
        }
        let bindings = self.store.inventory_bindings()?;
        let leases = self.store.leases()?;
        inv.index.rebuild(bindings, &leases, &macs);
        Ok(())
    }

    /// The key a device state event is kept under: its UDID, else the UDID of its serial number, else
    /// the serial number itself; empty when the event names neither.
    pub(super) fn state_key(&self, ev: &DeviceStateEvent) -> String {
        if let Some(u) = &ev.udid {
            return u.clone();
        }
        match ev.serial_number.as_deref() {
            Some(s) => self
                .inventory
                .serial_to_udid
                .get(s)
                .cloned()
                .unwrap_or_else(|| serial_key(s)),
            None => String::new(),
        }
    }

    /// Roles in force = the base set plus every change kept in the store.
    pub(super) fn rebuild_roles(&mut self) -> Result<(), ControlError> {
        let mut roles = self.policy.base_roles.clone();
        let mut warnings = Vec::new();
        apply_stored_changes(&self.store, &mut roles, &mut warnings)?;
        self.warnings.extend(warnings);
        self.policy.roles = roles;
        Ok(())
    }
}

impl Drop for CoreState {
    /// Writes pending learning counts (best effort: call [`CoreState::flush`] to see errors).
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
