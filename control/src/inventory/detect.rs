//! Recognises which MDM format an inventory document is, by its shape alone.
//!
//! Owns: [`InventoryShape`] and [`detect`]. Must not: parse device fields (the source modules do),
//! or accept a document it cannot name a parser for: the error says what was found and what is
//! expected.

use serde_json::Value;

/// The inventory document shapes this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryShape {
    /// Jamf Pro `GET /v2/mobile-devices/detail`: `{results: [{general, hardware, applications}]}`.
    JamfDetailList,
    /// Jamf Pro `GET /v2/mobile-devices/{id}/detail`: `{udid, serialNumber, managed, ios: {...}}`.
    JamfDeviceDetail,
    /// Microsoft Graph `managedDevices` list: `{value: [{deviceName, operatingSystem, udid, ...}]}`.
    GraphManagedDevices,
    /// Microsoft Graph `deviceAppManagement/mobileApps` list: `{value: [{bundleId, ...}]}`.
    GraphMobileApps,
    /// Apple MDM command responses (`QueryResponses`, `ManagedApplicationList`,
    /// `InstalledApplicationList`), one dictionary or an array of them.
    AppleMdmResponses,
}

const EXPECTED: &str = "expected a Jamf Pro `/v2/mobile-devices/detail` response (`results[]` with \
`general`/`hardware`), a Jamf Pro `/v2/mobile-devices/{id}/detail` response (`udid` with `ios`), a \
Microsoft Graph `managedDevices` response (`value[]` with `deviceName`/`udid`), a Graph \
`mobileApps` response (`value[]` with `bundleId`), or Apple MDM command responses (`QueryResponses`, \
`ManagedApplicationList` or `InstalledApplicationList`)";

fn is_apple_response(v: &Value) -> bool {
    v.get("QueryResponses").is_some()
        || v.get("SecurityInfo").is_some()
        || v.get("ManagedApplicationList").is_some()
        || v.get("InstalledApplicationList").is_some()
}

fn top_keys(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let keys: Vec<&str> = m.keys().take(12).map(String::as_str).collect();
            format!("an object with keys [{}]", keys.join(", "))
        }
        Value::Array(a) => format!("an array of {} items", a.len()),
        Value::String(_) => "a string".to_string(),
        Value::Number(_) => "a number".to_string(),
        Value::Bool(_) => "a boolean".to_string(),
        Value::Null => "null".to_string(),
    }
}

/// Names the shape of `doc`, or explains why none fits.
pub fn detect(doc: &Value) -> Result<InventoryShape, String> {
    if let Some(results) = doc.get("results") {
        let Some(items) = results.as_array() else {
            return Err(format!("field `results` is not an array; {EXPECTED}"));
        };
        let sectioned = items
            .iter()
            .all(|d| d.get("general").is_some() || d.get("hardware").is_some());
        if sectioned {
            return Ok(InventoryShape::JamfDetailList);
        }
        let bad = items
            .iter()
            .position(|d| d.get("general").is_none() && d.get("hardware").is_none())
            .unwrap_or(0);
        return Err(format!(
            "`results[{bad}]` has no `general` or `hardware` section (is this a Jamf Pro v1 or \
             inventory-summary response?); {EXPECTED}"
        ));
    }
    if let Some(value) = doc.get("value") {
        let Some(items) = value.as_array() else {
            return Err(format!("field `value` is not an array; {EXPECTED}"));
        };
        let context = doc
            .get("@odata.context")
            .and_then(Value::as_str)
            .unwrap_or("");
        let devices = items.iter().any(|d| {
            d.get("deviceName").is_some()
                || d.get("operatingSystem").is_some()
                || d.get("managedDeviceOwnerType").is_some()
        });
        let apps = items.iter().any(|d| d.get("bundleId").is_some());
        if devices || context.contains("managedDevices") {
            return Ok(InventoryShape::GraphManagedDevices);
        }
        if apps || context.contains("mobileApps") {
            return Ok(InventoryShape::GraphMobileApps);
        }
        return Err(format!(
            "`value[]` items are neither Graph managedDevices nor mobileApps; {EXPECTED}"
        ));
    }
    if doc.get("udid").is_some() && (doc.get("ios").is_some() || doc.get("serialNumber").is_some())
    {
        return Ok(InventoryShape::JamfDeviceDetail);
    }
    if is_apple_response(doc) {
        return Ok(InventoryShape::AppleMdmResponses);
    }
    if let Some(items) = doc.as_array() {
        let response_like = |v: &Value| {
            is_apple_response(v) || v.get("CommandUUID").is_some() || v.get("Status").is_some()
        };
        if items.iter().any(is_apple_response) && items.iter().all(response_like) {
            return Ok(InventoryShape::AppleMdmResponses);
        }
    }
    Err(format!(
        "unrecognised inventory: found {}; {EXPECTED}",
        top_keys(doc)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes() {
        assert_eq!(
            detect(&json!({"totalCount": 1, "results": [{"general": {}}]})),
            Ok(InventoryShape::JamfDetailList)
        );
        assert_eq!(
            detect(&json!({"value": [{"deviceName": "x", "udid": "u"}]})),
            Ok(InventoryShape::GraphManagedDevices)
        );
        assert_eq!(
            detect(&json!({"value": [{"bundleId": "com.x"}]})),
            Ok(InventoryShape::GraphMobileApps)
        );
        assert_eq!(
            detect(&json!([{"UDID": "u", "QueryResponses": {}}])),
            Ok(InventoryShape::AppleMdmResponses)
        );
        let err = detect(&json!({"devices": []})).unwrap_err();
        assert!(err.contains("keys [devices]"), "{err}");
        let err = detect(&json!({"results": [{"id": 1}]})).unwrap_err();
        assert!(err.contains("results[0]"), "{err}");
    }
}
