//! Jamf Pro API mobile-device inventory → [`Device`].
//!
//! Owns: reading `GET /v2/mobile-devices/detail` (sectioned: `general`, `hardware`,
//! `applications`) and `GET /v2/mobile-devices/{id}/detail` (flat with an `ios` section).
//! Must not: call Jamf, or invent a field Jamf did not send.

use serde_json::Value;

use super::json_fields::{ip_opt, mac_opt, timestamp_opt, FieldError, JsonNode};
use super::{normalize_app_status, Device, InventorySource, ManagedApp, Ownership};

/// Parses a `/v2/mobile-devices/detail` response: `{totalCount, results: [...]}`.
pub fn parse_detail_list(
    doc: &Value,
    warnings: &mut Vec<String>,
) -> Result<Vec<Device>, FieldError> {
    let root = JsonNode::new(doc, "")?;
    let items = root.objects_opt("results")?.unwrap_or_default();
    if items.is_empty() {
        warnings.push("`results` is empty: no devices".to_string());
    }
    items.iter().map(parse_sectioned).collect()
}

fn os_name(raw: Option<&str>, model: Option<&str>) -> Option<String> {
    let from_model = model.map(|m| m.starts_with("iPad"));
    match raw.map(str::to_ascii_lowercase).as_deref() {
        Some("ios") | Some("iphone") if from_model == Some(true) => Some("iPadOS".to_string()),
        Some("ios") | Some("iphone") => Some("iOS".to_string()),
        Some("ipados") => Some("iPadOS".to_string()),
        Some("tvos") | Some("appletv") => Some("tvOS".to_string()),
        Some("watchos") => Some("watchOS".to_string()),
        Some("visionos") => Some("visionOS".to_string()),
        Some(other) if !other.is_empty() && other != "unknown" => raw.map(str::to_string),
        _ => match from_model {
            Some(true) => Some("iPadOS".to_string()),
            Some(false) => Some("iOS".to_string()),
            None => None,
        },
    }
}

fn parse_sectioned(item: &JsonNode<'_>) -> Result<Device, FieldError> {
    let general = item.object_req("general")?;
    let hardware = item.object_opt("hardware")?;
    let udid = general.str_req("udid")?.to_string();
    let model = match &hardware {
        Some(h) => h.str_opt("model")?.map(str::to_string),
        None => None,
    };
    let device_type = match item.str_opt("deviceType")? {
        Some(t) => Some(t),
        None => item.str_opt("type")?,
    };
    let apps = match item.objects_opt("applications")? {
        Some(list) => list.iter().map(parse_app).collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    Ok(Device {
        udid,
        serial_number: match &hardware {
            Some(h) => h.str_opt("serialNumber")?.map(str::to_string),
            None => None,
        },
        name: general
            .str_opt("displayName")?
            .or(general.str_opt("name")?)
            .map(str::to_string),
        os_name: os_name(device_type, model.as_deref()),
        model,
        model_identifier: match &hardware {
            Some(h) => h.str_opt("modelIdentifier")?.map(str::to_string),
            None => None,
        },
        os_version: general.text_opt("osVersion")?,
        supervised: general.bool_opt("supervised")?.unwrap_or(false),
        managed: general.bool_opt("managed")?.unwrap_or(false),
        ownership: general
            .str_opt("deviceOwnershipType")?
            .map_or(Ownership::Unknown, Ownership::from_mdm),
        wifi_mac: match &hardware {
            Some(h) => mac_opt(h, "wifiMacAddress")?,
            None => None,
        },
        ip_address: ip_opt(&general, "ipAddress")?,
        reported_at_us: timestamp_opt(&general, "lastInventoryUpdateDate")?,
        source: InventorySource::JamfPro,
        apps,
    })
}

fn parse_app(app: &JsonNode<'_>) -> Result<ManagedApp, FieldError> {
    let status = app
        .str_opt("managementStatus")?
        .map_or_else(|| "unknown".to_string(), normalize_app_status);
    Ok(ManagedApp {
        bundle_id: app.str_req("identifier")?.to_string(),
        name: app.str_opt("name")?.map(str::to_string),
        version: match app.text_opt("shortVersion")? {
            Some(v) => Some(v),
            None => app.text_opt("version")?,
        },
        status,
    })
}

/// Parses a `/v2/mobile-devices/{id}/detail` response (one device, flat, with an `ios` section).
pub fn parse_device_detail(doc: &Value) -> Result<Device, FieldError> {
    let root = JsonNode::new(doc, "")?;
    let ios = root.object_opt("ios")?;
    let model = match &ios {
        Some(i) => i.str_opt("model")?.map(str::to_string),
        None => None,
    };
    let apps = match &ios {
        Some(i) => match i.objects_opt("applications")? {
            Some(list) => list.iter().map(parse_app).collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        },
        None => Vec::new(),
    };
    let supervised = match &ios {
        Some(i) => i.bool_opt("supervised")?,
        None => None,
    };
    let ownership = match root.str_opt("deviceOwnershipLevel")? {
        Some(o) => Some(o),
        None => root.str_opt("deviceOwnershipType")?,
    };
    Ok(Device {
        udid: root.str_req("udid")?.to_string(),
        serial_number: root.str_opt("serialNumber")?.map(str::to_string),
        name: root.str_opt("name")?.map(str::to_string),
        os_name: os_name(root.str_opt("type")?, model.as_deref()),
        model_identifier: match &ios {
            Some(i) => i.str_opt("modelIdentifier")?.map(str::to_string),
            None => None,
        },
        model,
        os_version: root.text_opt("osVersion")?,
        supervised: supervised.or(root.bool_opt("supervised")?).unwrap_or(false),
        managed: root.bool_opt("managed")?.unwrap_or(false),
        ownership: ownership.map_or(Ownership::Unknown, Ownership::from_mdm),
        wifi_mac: mac_opt(&root, "wifiMacAddress")?,
        ip_address: ip_opt(&root, "ipAddress")?,
        reported_at_us: match timestamp_opt(&root, "lastInventoryUpdateTimestamp")? {
            Some(t) => Some(t),
            None => timestamp_opt(&root, "lastInventoryUpdateDate")?,
        },
        source: InventorySource::JamfPro,
        apps,
    })
}
