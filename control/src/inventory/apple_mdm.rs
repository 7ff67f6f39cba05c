//! Apple MDM command responses → [`Device`].
//!
//! Owns: merging `DeviceInformation` (`QueryResponses`), `SecurityInfo` (its own command's
//! response: DEP enrolment and User Enrollment give the ownership),
//! `ManagedApplicationList` (bundle ID → `Status`) and `InstalledApplicationList` (`Identifier`,
//! `Name`, `ShortVersion`) responses by `UDID` into one device each; a User Enrollment device,
//! which has no UDID by design, is keyed by its `EnrollmentID` (ownership personal). The file may hold one response
//! dictionary or an array of them, as plist (XML or binary) or JSON with the same keys.
//! Must not: send MDM commands, or report an IP address (Apple's responses carry none; devices
//! are placed on the network through `WiFiMAC` and DHCP leases).

use std::collections::BTreeMap;

use serde_json::Value;

use super::json_fields::{mac_opt, FieldError, JsonNode};
use super::{normalize_app_status, Device, DevicePart, InventorySource, ManagedApp, Ownership};

#[derive(Default)]
struct Merged {
    device: Option<Device>,
    /// From a `SecurityInfo` response: enrolled through DEP / Automated Device Enrollment, and
    /// User Enrollment.
    enrolled_via_dep: Option<bool>,
    user_enrollment: Option<bool>,
    /// Keyed by `EnrollmentID` (a User Enrollment device, which has no UDID by design).
    by_enrollment_id: bool,
    app_lists: bool,
    managed: BTreeMap<String, String>,
    installed: BTreeMap<String, (Option<String>, Option<String>)>,
}

/// Parses one response or an array of responses.
pub fn parse_responses(
    doc: &Value,
    warnings: &mut Vec<String>,
    skipped: &mut Vec<String>,
) -> Result<Vec<Device>, FieldError> {
    let nodes: Vec<JsonNode<'_>> = match doc {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| JsonNode::new(v, format!("[{i}]")))
            .collect::<Result<_, _>>()?,
        other => vec![JsonNode::new(other, "")?],
    };
    let mut by_udid: BTreeMap<String, Merged> = BTreeMap::new();
    for node in &nodes {
        if let Some(status) = node.str_opt("Status")? {
            if status != "Acknowledged" {
                warnings.push(format!(
                    "response `{}` has Status {status:?}: skipped",
                    if node.path().is_empty() {
                        "(root)"
                    } else {
                        node.path()
                    }
                ));
                continue;
            }
        }
        let query = node.object_opt("QueryResponses")?;
        let text = |n: &JsonNode<'_>, k: &str| -> Result<Option<String>, FieldError> {
            Ok(n.str_opt(k)?
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string))
        };
        let from_query = match &query {
            Some(q) => text(q, "UDID")?,
            None => None,
        };
        let (udid, by_enrollment_id) = match (
            text(node, "UDID")?.or(from_query),
            text(node, "EnrollmentID")?,
        ) {
            (Some(u), _) => (u, false),
            (None, Some(e)) => (e, true),
            (None, None) => {
                skipped.push(format!(
                    "response `{}` has neither `UDID` nor `EnrollmentID`: skipped",
                    if node.path().is_empty() {
                        "(root)"
                    } else {
                        node.path()
                    }
                ));
                continue;
            }
        };
        let merged = by_udid.entry(udid.clone()).or_default();
        merged.by_enrollment_id |= by_enrollment_id;
        if let Some(q) = &query {
            merged.device = Some(parse_device_information(&udid, q)?);
            if let Some(sec) = q.object_opt("SecurityInfo")? {
                read_security_info(&sec, merged)?;
            }
        }
        if let Some(sec) = node.object_opt("SecurityInfo")? {
            read_security_info(&sec, merged)?;
        }
        merged.app_lists |= node.get("ManagedApplicationList").is_some()
            || node.get("InstalledApplicationList").is_some();
        if let Some(list) = node.object_opt("ManagedApplicationList")? {
            for bundle in list.map().keys() {
                let entry = list.object_req(bundle)?;
                let status = entry
                    .str_opt("Status")?
                    .map_or_else(|| "unknown".to_string(), normalize_app_status);
                merged.managed.insert(bundle.clone(), status);
            }
        }
        if let Some(list) = node.objects_opt("InstalledApplicationList")? {
            for app in &list {
                let id = app.str_req("Identifier")?.to_string();
                let version = match app.text_opt("ShortVersion")? {
                    Some(v) => Some(v),
                    None => app.text_opt("Version")?,
                };
                merged
                    .installed
                    .insert(id, (app.str_opt("Name")?.map(str::to_string), version));
            }
        }
    }
    let mut devices = Vec::with_capacity(by_udid.len());
    for (udid, merged) in by_udid {
        let mut unreported = vec![DevicePart::User];
        if !merged.app_lists {
            unreported.push(DevicePart::Apps);
        }
        let mut device = match merged.device {
            Some(d) => d,
            None => {
                unreported.push(DevicePart::Hardware);
                warnings.push(format!(
                    "UDID {udid}: no DeviceInformation response; device recorded without its \
                     hardware (a previous record's is kept)"
                ));
                Device {
                    udid: udid.clone(),
                    serial_number: None,
                    name: None,
                    model: None,
                    model_identifier: None,
                    os_name: None,
                    os_version: None,
                    supervised: false,
                    managed: true,
                    ownership: Ownership::Unknown,
                    wifi_mac: None,
                    ip_address: None,
                    ipv6_addresses: Vec::new(),
                    user: None,
                    reported_at_us: None,
                    source: InventorySource::AppleMdm,
                    apps: Vec::new(),
                    unreported: Vec::new(),
                }
            }
        };
        device.unreported = unreported;
        let user_enrollment = merged.by_enrollment_id || merged.user_enrollment == Some(true);
        if user_enrollment {
            device.ownership = Ownership::Personal;
        } else if merged.enrolled_via_dep == Some(true) {
            device.ownership = Ownership::Institutional;
        }
        let mut apps: BTreeMap<String, ManagedApp> = BTreeMap::new();
        for (bundle, (name, version)) in &merged.installed {
            apps.insert(
                bundle.clone(),
                ManagedApp {
                    bundle_id: bundle.clone(),
                    name: name.clone(),
                    version: version.clone(),
                    status: "user_installed".to_string(),
                },
            );
        }
        for (bundle, status) in merged.managed {
            let app = apps.entry(bundle.clone()).or_insert_with(|| ManagedApp {
                bundle_id: bundle,
                name: None,
                version: None,
                status: String::new(),
            });
            app.status = status;
        }
        device.apps = apps.into_values().collect();
        devices.push(device);
    }
    Ok(devices)
}

fn parse_device_information(udid: &str, q: &JsonNode<'_>) -> Result<Device, FieldError> {
    let product = q.str_opt("ProductName")?.map(str::to_string);
    let model_name = q.str_opt("ModelName")?;
    let is_ipad = product
        .as_deref()
        .map(|p| p.starts_with("iPad"))
        .or_else(|| model_name.map(|m| m.starts_with("iPad")))
        .unwrap_or(false);
    let ownership = match q.bool_opt("IsUserEnrollment")? {
        Some(true) => Ownership::Personal,
        _ => Ownership::Unknown,
    };
    Ok(Device {
        udid: udid.to_string(),
        serial_number: q.str_opt("SerialNumber")?.map(str::to_string),
        name: q.str_opt("DeviceName")?.map(str::to_string),
        model: model_name
            .map(str::to_string)
            .or(q.str_opt("Model")?.map(str::to_string)),
        model_identifier: product,
        os_name: Some(if is_ipad { "iPadOS" } else { "iOS" }.to_string()),
        os_version: q.text_opt("OSVersion")?,
        supervised: q.bool_opt("IsSupervised")?.unwrap_or(false),
        managed: true,
        ownership,
        wifi_mac: mac_opt(q, "WiFiMAC")?,
        ip_address: None,
        ipv6_addresses: Vec::new(),
        user: None,
        reported_at_us: None,
        source: InventorySource::AppleMdm,
        apps: Vec::new(),
        unreported: Vec::new(),
    })
}

/// Reads a `SecurityInfo` dictionary (its own command's response, or inside `QueryResponses` as
/// some MDM servers store it): `ManagementStatus.EnrolledViaDEP` and
/// `ManagementStatus.IsUserEnrollment`.
fn read_security_info(sec: &JsonNode<'_>, merged: &mut Merged) -> Result<(), FieldError> {
    if let Some(ms) = sec.object_opt("ManagementStatus")? {
        if let Some(dep) = ms.bool_opt("EnrolledViaDEP")? {
            merged.enrolled_via_dep = Some(dep);
        }
        if let Some(ue) = ms.bool_opt("IsUserEnrollment")? {
            merged.user_enrollment = Some(ue);
        }
    }
    Ok(())
}
