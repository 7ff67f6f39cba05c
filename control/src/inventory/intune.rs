//! Microsoft Intune (Graph v1.0) inventory → [`Device`].
//!
//! Owns: reading `managedDevices` list responses with `detectedApps` expanded, and the
//! [`MobileAppCatalogue`] built from `deviceAppManagement/mobileApps` responses that gives detected
//! apps their bundle IDs (a `detectedApp` carries none). Intune reports no IP address: devices are
//! placed on the network through their Wi-Fi MAC and DHCP leases.
//! Must not: call Graph, or guess a bundle ID from a display name that matches nothing.

use std::collections::HashMap;

use serde_json::Value;

use super::json_fields::{mac_opt, timestamp_opt, FieldError, JsonNode};
use super::{Device, DevicePart, InventorySource, ManagedApp, MdmUser, Ownership};

/// Bundle IDs of the apps an Intune tenant deploys, keyed by lowercase display name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MobileAppCatalogue {
    by_name: HashMap<String, String>,
}

impl MobileAppCatalogue {
    /// Adds the apps of a Graph `mobileApps` list response (`value[]` items with `displayName` and
    /// `bundleId`, e.g. `#microsoft.graph.iosVppApp`, `iosStoreApp`, `iosLobApp`).
    pub fn add_response(&mut self, doc: &Value) -> Result<(), FieldError> {
        let root = JsonNode::new(doc, "")?;
        for app in root.objects_opt("value")?.unwrap_or_default() {
            let (Some(name), Some(bundle)) =
                (app.str_opt("displayName")?, app.str_opt("bundleId")?)
            else {
                continue;
            };
            self.by_name
                .insert(name.trim().to_ascii_lowercase(), bundle.to_string());
        }
        Ok(())
    }

    /// Adds one app.
    pub fn insert(&mut self, display_name: &str, bundle_id: &str) {
        self.by_name.insert(
            display_name.trim().to_ascii_lowercase(),
            bundle_id.to_string(),
        );
    }

    /// The bundle ID for a display name.
    pub fn bundle_for(&self, display_name: &str) -> Option<&str> {
        self.by_name
            .get(&display_name.trim().to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Number of apps known.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True when no app is known.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// A display name that is itself a bundle ID (`com.example.app`).
fn looks_like_bundle_id(name: &str) -> bool {
    !name.contains(char::is_whitespace)
        && name.split('.').count() >= 2
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Parses a Graph `managedDevices` list response. Detected apps are joined to `catalogue` by display
/// name (status `managed`: the tenant deploys them); a display name that is already a bundle ID is
/// kept with status `detected`; other apps are skipped with a warning. A record of another
/// platform (`operatingSystem` not iOS/iPadOS) or without a `udid` is left out with its reason
/// in `skipped`; a set `@odata.nextLink` (one page of several) is a warning.
pub fn parse_managed_devices(
    doc: &Value,
    catalogue: &MobileAppCatalogue,
    warnings: &mut Vec<String>,
    skipped: &mut Vec<String>,
) -> Result<Vec<Device>, FieldError> {
    let root = JsonNode::new(doc, "")?;
    let items = root.objects_opt("value")?.unwrap_or_default();
    if root.get("@odata.nextLink").is_some() {
        warnings.push(
            "partial export: `@odata.nextLink` is set (one page of several); import every page; \
             devices on other pages keep their previous records"
                .to_string(),
        );
    }
    let mut devices = Vec::with_capacity(items.len());
    for item in &items {
        let os = item.str_opt("operatingSystem")?;
        if let Some(os) = os.filter(|os| !is_apple_mobile_os(os)) {
            skipped.push(format!(
                "`{}`: operatingSystem {os:?} is not iOS/iPadOS; record skipped ({:?})",
                item.path(),
                item.str_opt("deviceName")?.unwrap_or("unnamed")
            ));
            continue;
        }
        let Some(udid) = item
            .get("udid")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|u| !u.is_empty())
        else {
            skipped.push(format!(
                "`{}.udid` missing or empty: record skipped ({:?}; a UDID is the key Portolan \
                 joins on)",
                item.path(),
                item.str_opt("deviceName")?.unwrap_or("unnamed")
            ));
            continue;
        };
        let udid = udid.to_string();
        let agent = item.str_opt("managementAgent")?.unwrap_or("mdm");
        let managed = agent.to_ascii_lowercase().contains("mdm");
        let mut apps = Vec::new();
        let mut unreported = Vec::new();
        match item.objects_opt("detectedApps")? {
            None => {
                unreported.push(DevicePart::Apps);
                warnings.push(format!(
                    "`{}.detectedApps` missing: request managedDevices with $expand=detectedApps \
                     to list apps; the device's previous app list is kept",
                    item.path()
                ))
            }
            Some(detected) => {
                for app in &detected {
                    let name = app.str_req("displayName")?;
                    let (bundle_id, status) = if let Some(b) = catalogue.bundle_for(name) {
                        (b.to_string(), "managed")
                    } else if looks_like_bundle_id(name) {
                        (name.to_string(), "detected")
                    } else {
                        warnings.push(format!(
                            "`{}.displayName` {name:?}: no bundle ID (not in the mobileApps \
                             catalogue); app skipped",
                            app.path()
                        ));
                        continue;
                    };
                    apps.push(ManagedApp {
                        bundle_id,
                        name: Some(name.to_string()),
                        version: app.text_opt("version")?,
                        status: status.to_string(),
                    });
                }
            }
        }
        let os_name = item.str_opt("operatingSystem")?.map(str::to_string);
        devices.push(Device {
            udid,
            serial_number: item.str_opt("serialNumber")?.map(str::to_string),
            name: item.str_opt("deviceName")?.map(str::to_string),
            model: item.str_opt("model")?.map(str::to_string),
            model_identifier: None,
            os_name,
            os_version: item.text_opt("osVersion")?,
            supervised: item.bool_opt("isSupervised")?.unwrap_or(false),
            managed,
            ownership: item
                .str_opt("managedDeviceOwnerType")?
                .map_or(Ownership::Unknown, Ownership::from_mdm),
            wifi_mac: mac_opt(item, "wiFiMacAddress")?,
            ip_address: None,
            ipv6_addresses: Vec::new(),
            user: {
                let user = MdmUser {
                    username: item.str_opt("userPrincipalName")?.map(str::to_string),
                    real_name: item.str_opt("userDisplayName")?.map(str::to_string),
                    email: item.str_opt("emailAddress")?.map(str::to_string),
                    department: None,
                    position: None,
                };
                (!user.is_empty()).then_some(user)
            },
            reported_at_us: timestamp_opt(item, "lastSyncDateTime")?,
            source: InventorySource::Intune,
            apps,
            unreported,
        });
    }
    Ok(devices)
}

/// iOS or iPadOS, as Graph's `operatingSystem` names them.
fn is_apple_mobile_os(os: &str) -> bool {
    let os = os.trim().to_ascii_lowercase();
    os == "ios" || os == "ipados"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_id_lookalikes() {
        assert!(looks_like_bundle_id("com.microsoft.Office.Outlook"));
        assert!(!looks_like_bundle_id("Microsoft Outlook"));
        assert!(!looks_like_bundle_id("Outlook"));
    }
}
