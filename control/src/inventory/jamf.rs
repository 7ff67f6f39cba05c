//! Jamf Pro API mobile-device inventory → [`Device`].
//!
//! Owns: reading `GET /v2/mobile-devices/detail` (sectioned: `general`, `hardware`,
//! `userAndLocation`, `applications`, extension attributes) and
//! `GET /v2/mobile-devices/{id}/detail` (flat with `ios`, `location` and `extensionAttributes`).
//! Must not: call Jamf, or invent a field Jamf did not send.
//!
//! Extension attributes (`{name, type, value: [..]}`) are read at the top level of a record and
//! in each section (`general`, `hardware`, `userAndLocation`, `purchasing`), where Jamf puts them
//! by their inventory display; those named in [`InventoryOptions::ipv6_extension_attributes`]
//! give the device's IPv6 addresses.
//!
//! Jamf returns only `general` unless the request names `section=`s: a record without
//! `hardware`, `applications` or `userAndLocation` marks them [`Device::unreported`] (the store
//! then keeps the previous values) and the file gets a warning naming the `section=` to request;
//! `totalCount` above the records returned warns of a partial export.

use std::net::IpAddr;

use serde_json::Value;

use super::json_fields::{ip_opt, mac_opt, timestamp_opt, FieldError, JsonNode};
use super::{
    normalize_app_status, Device, DevicePart, InventoryOptions, InventorySource, ManagedApp,
    MdmUser, Ownership,
};

/// Sections of a record that may hold extension attributes.
const ATTRIBUTE_SECTIONS: [&str; 4] = ["general", "hardware", "userAndLocation", "purchasing"];

/// Parses a `/v2/mobile-devices/detail` response: `{totalCount, results: [...]}`.
pub fn parse_detail_list(
    doc: &Value,
    options: &InventoryOptions,
    warnings: &mut Vec<String>,
) -> Result<Vec<Device>, FieldError> {
    let root = JsonNode::new(doc, "")?;
    let items = root.objects_opt("results")?.unwrap_or_default();
    if items.is_empty() {
        warnings.push("`results` is empty: no devices".to_string());
    }
    if let Some(total) = root.get("totalCount").and_then(Value::as_u64) {
        if total > items.len() as u64 {
            warnings.push(format!(
                "partial export: `results` holds {} of `totalCount` {total} devices (one page); \
                 import every page (`page=0..`, or a larger `page-size`); devices on other pages \
                 keep their previous records",
                items.len()
            ));
        }
    }
    let devices = items
        .iter()
        .map(|item| parse_sectioned(item, options, warnings))
        .collect::<Result<Vec<_>, _>>()?;
    for part in [DevicePart::Hardware, DevicePart::Apps, DevicePart::User] {
        let missing = devices
            .iter()
            .filter(|d| d.unreported.contains(&part))
            .count();
        if missing > 0 {
            warnings.push(format!(
                "{missing} of {} records lack the `{}` section (request it with `section={}`); \
                 each one's previous {} is kept",
                devices.len(),
                section_name(part),
                section_param(part),
                part.as_str()
            ));
        }
    }
    Ok(devices)
}

/// The list response's section holding `part`.
fn section_name(part: DevicePart) -> &'static str {
    match part {
        DevicePart::Apps => "applications",
        DevicePart::Hardware => "hardware",
        DevicePart::User => "userAndLocation",
    }
}

/// The `section` query value that asks Jamf for `part`.
fn section_param(part: DevicePart) -> &'static str {
    match part {
        DevicePart::Apps => "APPLICATIONS",
        DevicePart::Hardware => "HARDWARE",
        DevicePart::User => "USER_AND_LOCATION",
    }
}

/// The extension attributes of a record: at the top level and in each section.
fn extension_attributes<'a>(item: &JsonNode<'a>) -> Result<Vec<JsonNode<'a>>, FieldError> {
    let mut out = item.objects_opt("extensionAttributes")?.unwrap_or_default();
    for section in ATTRIBUTE_SECTIONS {
        if let Some(s) = item.object_opt(section)? {
            out.extend(s.objects_opt("extensionAttributes")?.unwrap_or_default());
        }
    }
    Ok(out)
}

/// The IPv6 addresses held by the extension attributes `options` names. A value may list
/// several addresses (comma, semicolon or space separated); a token that is not an IPv6 address
/// is a warning naming the attribute, never a failed import.
fn ipv6_from_attributes(
    attributes: &[JsonNode<'_>],
    options: &InventoryOptions,
    warnings: &mut Vec<String>,
) -> Result<Vec<IpAddr>, FieldError> {
    let mut out = Vec::new();
    for attr in attributes {
        let Some(name) = attr.str_opt("name")? else {
            continue;
        };
        if !options.is_ipv6_attribute(name) {
            continue;
        }
        let raw = match attr.get("value") {
            Some(v) => Some(v),
            None => attr.get("values"),
        };
        let values: Vec<String> = match raw {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        for token in values
            .iter()
            .flat_map(|v| v.split([',', ';', ' ', '\n', '\t']))
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            match token.parse::<IpAddr>() {
                Ok(ip @ IpAddr::V6(_)) => {
                    if !out.contains(&ip) {
                        out.push(ip);
                    }
                }
                _ => warnings.push(format!(
                    "`{}.value`: {token:?} in extension attribute {name:?} is not an IPv6 address; \
                     ignored",
                    attr.path()
                )),
            }
        }
    }
    Ok(out)
}

/// The assigned user from a `userAndLocation` (list) or `location` (single device) section.
fn user_from(section: Option<&JsonNode<'_>>) -> Result<Option<MdmUser>, FieldError> {
    let Some(s) = section else {
        return Ok(None);
    };
    let text = |k: &str| -> Result<Option<String>, FieldError> {
        Ok(s.str_opt(k)?.map(|v| v.trim().to_string()))
    };
    let user = MdmUser {
        username: text("username")?,
        real_name: text("realName")?,
        email: match text("emailAddress")? {
            Some(e) => Some(e),
            None => text("email")?,
        },
        department: text("department")?,
        position: text("position")?,
    };
    Ok((!user.is_empty()).then_some(user))
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

fn parse_sectioned(
    item: &JsonNode<'_>,
    options: &InventoryOptions,
    warnings: &mut Vec<String>,
) -> Result<Device, FieldError> {
    let general = item.object_req("general")?;
    let attributes = extension_attributes(item)?;
    let ipv6_addresses = ipv6_from_attributes(&attributes, options, warnings)?;
    let user = user_from(item.object_opt("userAndLocation")?.as_ref())?;
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
    let apps_section = item.objects_opt("applications")?;
    let user_section = item.object_opt("userAndLocation")?;
    let mut unreported = Vec::new();
    if hardware.is_none() {
        unreported.push(DevicePart::Hardware);
    }
    if apps_section.is_none() {
        unreported.push(DevicePart::Apps);
    }
    if user_section.is_none() {
        unreported.push(DevicePart::User);
    }
    let apps = match apps_section {
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
        ipv6_addresses,
        user,
        reported_at_us: timestamp_opt(&general, "lastInventoryUpdateDate")?,
        source: InventorySource::JamfPro,
        apps,
        unreported,
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

/// Parses a `/v2/mobile-devices/{id}/detail` response (one device, flat, with an `ios` section)
/// with the default [`InventoryOptions`], dropping warnings.
pub fn parse_device_detail(doc: &Value) -> Result<Device, FieldError> {
    parse_device_detail_with(doc, &InventoryOptions::default(), &mut Vec::new())
}

/// [`parse_device_detail`] with the site's options; problems that do not stop the import go to
/// `warnings`.
pub fn parse_device_detail_with(
    doc: &Value,
    options: &InventoryOptions,
    warnings: &mut Vec<String>,
) -> Result<Device, FieldError> {
    let root = JsonNode::new(doc, "")?;
    let attributes = extension_attributes(&root)?;
    let ipv6_addresses = ipv6_from_attributes(&attributes, options, warnings)?;
    let user = user_from(root.object_opt("location")?.as_ref())?;
    let ios = root.object_opt("ios")?;
    let model = match &ios {
        Some(i) => i.str_opt("model")?.map(str::to_string),
        None => None,
    };
    let apps_section = match &ios {
        Some(i) => i.objects_opt("applications")?,
        None => None,
    };
    let mut unreported = Vec::new();
    if apps_section.is_none() {
        unreported.push(DevicePart::Apps);
        warnings
            .push("`ios.applications` missing: the device's previous app list is kept".to_string());
    }
    if root.get("location").is_none() {
        unreported.push(DevicePart::User);
    }
    let apps = match apps_section {
        Some(list) => list.iter().map(parse_app).collect::<Result<Vec<_>, _>>()?,
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
        ipv6_addresses,
        user,
        reported_at_us: match timestamp_opt(&root, "lastInventoryUpdateTimestamp")? {
            Some(t) => Some(t),
            None => timestamp_opt(&root, "lastInventoryUpdateDate")?,
        },
        source: InventorySource::JamfPro,
        apps,
        unreported,
    })
}
