//! What the operator side reads: devices (by UDID or serial number, with the records re-imports
//! replaced and their state reports), and the roles in force.
//!
//! Owns: the [`Operator`] read methods on inventory, device state and roles. Must not: change
//! anything (the imports and acts in [`super::operator`] do), or build SQL.

use super::{ControlError, Operator};
use crate::device_state::DeviceStateEvent;
use crate::inventory::Device;
use crate::roles::RoleSet;
use crate::store::DeviceHistoryEntry;

impl Operator {
    /// Every device, by UDID.
    pub fn devices(&self) -> Result<Vec<Device>, ControlError> {
        Ok(self.core.lock()?.store.devices()?)
    }

    /// One device by UDID, or else by serial number, with the records re-imports replaced
    /// (oldest first). `None` when neither matches.
    pub fn device(
        &self,
        key: &str,
    ) -> Result<Option<(Device, Vec<DeviceHistoryEntry>)>, ControlError> {
        let st = self.core.lock()?;
        let device = match st.device(key) {
            Some(d) => d.clone(),
            None => match st
                .store
                .devices()?
                .into_iter()
                .find(|d| d.serial_number.as_deref() == Some(key))
            {
                Some(d) => d,
                None => return Ok(None),
            },
        };
        let history = st.store.device_history(&device.udid)?;
        Ok(Some((device, history)))
    }

    /// The device state events reported for `device` (by its UDID or serial number), oldest first.
    pub fn device_states(&self, device: &Device) -> Result<Vec<DeviceStateEvent>, ControlError> {
        Ok(self
            .core
            .lock()?
            .store
            .device_states_of(&device.udid, device.serial_number.as_deref())?)
    }

    /// The roles in force (roles file or shipped defaults, plus approved pairings and exceptions).
    pub fn roles(&self) -> Result<RoleSet, ControlError> {
        Ok(self.core.lock()?.roles().clone())
    }
}
