//! What an alert carries: the finding's state when it was raised, with all the context an analyst
//! needs (device, app, baseline, device state, persistence, score and reasons) and the flow that
//! raised it. Both writers ([`crate::output::eve`], [`crate::output::ocsf`]) render this one record.
//!
//! Owns: [`Alert`], its context records, and the signature catalogue (data file
//! `control/data/alert_signatures.toml`). Must not: decide when to alert (the engine does) or
//! format output.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::attribution::{AppAttribution, DeviceMethod};
use crate::device_state::DeviceStateSnapshot;
use crate::findings::Finding;
use crate::findings::Severity;
use crate::inventory::{Device, MdmUser, Ownership};
use crate::observation::FlowObservation;
use crate::roles::{BaselineBasis, ViolationKind};

/// The shipped signature catalogue.
pub const SHIPPED_SIGNATURES_TOML: &str = include_str!("../data/alert_signatures.toml");

/// Suricata-style signature fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSignature {
    /// Generator id.
    pub gid: u32,
    /// Signature id.
    pub signature_id: u32,
    /// Revision.
    pub rev: u32,
    /// Message.
    pub signature: String,
    /// Classification text.
    pub category: String,
}

/// One signature per kind of alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureCatalogue {
    /// Managed device, no role baseline applied: protocol on a non-registered port.
    pub device_baseline: AlertSignature,
    /// Attributed managed app outside its role's approved pairings.
    pub role_baseline: AlertSignature,
    /// Device not in the inventory (or not managed).
    pub unmanaged_device: AlertSignature,
    /// Attributed app not managed on the device.
    pub unmanaged_app: AlertSignature,
}

impl SignatureCatalogue {
    /// The shipped catalogue.
    pub fn shipped() -> Result<SignatureCatalogue, String> {
        SignatureCatalogue::parse(
            SHIPPED_SIGNATURES_TOML,
            Path::new("control/data/alert_signatures.toml"),
        )
    }

    /// Parses a catalogue; the error names the file and the problem.
    pub fn parse(text: &str, origin: &Path) -> Result<SignatureCatalogue, String> {
        toml::from_str(text).map_err(|e| format!("{}: {}", origin.display(), e))
    }

    /// Chooses the signature for an alert's context.
    pub fn select(
        &self,
        kind: ViolationKind,
        device: &DeviceContext,
        app: &AppAttribution,
    ) -> &AlertSignature {
        if !device.in_inventory || !device.managed {
            &self.unmanaged_device
        } else if app.bundle_id.is_some() && app.app_managed == Some(false) {
            &self.unmanaged_app
        } else {
            match kind {
                ViolationKind::DeviceBaseline => &self.device_baseline,
                ViolationKind::RoleBaseline => &self.role_baseline,
            }
        }
    }
}

/// The device as the alert describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceContext {
    /// UDID (none for a device not in the inventory).
    pub udid: Option<String>,
    /// Serial number.
    pub serial_number: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// OS name (`iOS`, `iPadOS`).
    pub os_name: Option<String>,
    /// OS version.
    pub os_version: Option<String>,
    /// Supervised.
    pub supervised: bool,
    /// Managed.
    pub managed: bool,
    /// Ownership.
    pub ownership: Ownership,
    /// Found in the inventory at all.
    pub in_inventory: bool,
    /// How the source address was tied to the device.
    pub attribution: Option<DeviceMethod>,
    /// Confidence of that, 0..=1 (0 when not in the inventory).
    pub confidence: f64,
    /// The user the MDM assigns the device to, if it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<MdmUser>,
}

impl DeviceContext {
    /// Context for a device in the inventory.
    pub fn from_device(d: &Device, method: DeviceMethod, confidence: f64) -> DeviceContext {
        DeviceContext {
            udid: Some(d.udid.clone()),
            serial_number: d.serial_number.clone(),
            name: d.name.clone(),
            model: d.model.clone(),
            os_name: d.os_name.clone(),
            os_version: d.os_version.clone(),
            supervised: d.supervised,
            managed: d.managed,
            ownership: d.ownership,
            in_inventory: true,
            attribution: Some(method),
            confidence,
            user: d.user.clone(),
        }
    }

    /// Context for a source address no inventory record covers.
    pub fn unknown() -> DeviceContext {
        DeviceContext {
            udid: None,
            serial_number: None,
            name: None,
            model: None,
            os_name: None,
            os_version: None,
            supervised: false,
            managed: false,
            ownership: Ownership::Unknown,
            in_inventory: false,
            attribution: None,
            confidence: 0.0,
            user: None,
        }
    }
}

/// The baseline that was broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineContext {
    /// Role name, or `device-default`.
    pub role: String,
    /// Which baseline judged.
    pub basis: BaselineBasis,
    /// Approved ports for the protocol under it (empty when the registry does not say).
    pub approved_ports: Vec<u16>,
    /// The judgement in words.
    pub explanation: String,
}

/// Persistence of the finding when the alert was raised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistenceContext {
    /// Sessions in the window.
    pub sessions: u64,
    /// First session start, µs.
    pub first_seen_us: i64,
    /// Latest session end, µs.
    pub last_seen_us: i64,
    /// Mean gap between session starts, seconds.
    pub interval_seconds: Option<f64>,
    /// Coefficient of variation of the gaps.
    pub interval_cv: Option<f64>,
    /// Longest session, seconds.
    pub longest_session_s: i64,
    /// Total connected time, seconds.
    pub connected_s: i64,
}

impl PersistenceContext {
    /// From a finding.
    pub fn from_finding(f: &Finding) -> PersistenceContext {
        PersistenceContext {
            sessions: f.sessions,
            first_seen_us: f.first_seen_us,
            last_seen_us: f.last_seen_us,
            interval_seconds: f.interval_seconds(),
            interval_cv: f.intervals.coefficient_of_variation(),
            longest_session_s: f.longest_session_us / 1_000_000,
            connected_s: f.connected_us / 1_000_000,
        }
    }
}

/// First alert for a finding, or a later one (severity rose).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertActivity {
    /// First alert for the finding.
    Create,
    /// The finding's severity rose since its last alert.
    Update,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Store row id.
    pub id: i64,
    /// The finding it belongs to.
    pub finding_id: i64,
    /// The finding's key text.
    pub finding_key: String,
    /// When (end of the flow that raised it), µs.
    pub ts_us: i64,
    /// Create or update.
    pub activity: AlertActivity,
    /// Which baseline.
    pub kind: ViolationKind,
    /// Signature.
    pub signature: AlertSignature,
    /// Severity.
    pub severity: Severity,
    /// Score, 0..=100.
    pub score: f64,
    /// Attribution confidence, 0..=1.
    pub confidence: f64,
    /// Why.
    pub reasons: Vec<String>,
    /// The flow that raised it.
    pub flow: FlowObservation,
    /// Device.
    pub device: DeviceContext,
    /// App.
    pub app: AppAttribution,
    /// Baseline.
    pub baseline: BaselineContext,
    /// Device state at the session.
    pub device_state: DeviceStateSnapshot,
    /// Persistence.
    pub persistence: PersistenceContext,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_catalogue_parses_with_distinct_ids() {
        let c = SignatureCatalogue::shipped().unwrap();
        let mut ids = vec![
            c.device_baseline.signature_id,
            c.role_baseline.signature_id,
            c.unmanaged_device.signature_id,
            c.unmanaged_app.signature_id,
        ];
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 4);
    }
}
