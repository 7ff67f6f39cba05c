//! The MDM side of a synthetic fleet: a Jamf-Pro-API-shaped inventory and device-state events.
//!
//! Owns: rendering [`Plan`] devices and sessions as the JSON the control plane ingests.
//! Must not: invent devices or apps that the capture does not have — everything comes from the
//! same plan as the flows.

use serde_json::{json, Value};
use std::io::Write;

use crate::catalogue::Catalogue;
use crate::plan::Plan;
use crate::rng::SynthRng;
use crate::time::{rfc3339, rfc3339_millis};

/// The inventory: `{"totalCount": N, "results": [ {general, hardware, userAndLocation,
/// applications, extensionAttributes}, ... ]}` as Jamf Pro's mobile-device detail API returns it.
pub fn inventory(cat: &Catalogue, plan: &Plan, start_us: u64, seed: u64) -> Value {
    let mut rng = SynthRng::new(seed, 0x696e_7665);
    let results: Vec<Value> = plan
        .devices
        .iter()
        .map(|d| {
            let model = cat.models.get(d.model);
            let os = cat.os_versions.get(d.os);
            let role = cat.roles.get(d.role).map_or("", |r| r.name.as_str());
            let apps: Vec<Value> = d
                .apps
                .iter()
                .filter_map(|&ai| cat.apps.get(ai))
                .map(|a| {
                    json!({
                        "identifier": a.bundle_id,
                        "name": a.name,
                        "version": a.version,
                        "shortVersion": a.short_version,
                        "managementStatus": if a.managed { "Managed" } else { "Unmanaged" },
                        "validationStatus": true,
                        "bundleSize": (rng.range(20, 400) * 1_048_576).to_string(),
                        "dynamicSize": (rng.range(1, 200) * 1_048_576).to_string(),
                    })
                })
                .collect();
            let last_inventory = start_us.saturating_sub(rng.range(600, 86_400) * 1_000_000);
            let enrolled = start_us.saturating_sub(rng.range(30, 700) * 86_400 * 1_000_000);
            json!({
                "mobileDeviceId": (d.index + 1).to_string(),
                "deviceType": "iOS",
                "general": {
                    "udid": d.udid,
                    "displayName": d.name,
                    "assetTag": format!("AT-{:05}", d.index + 1),
                    "ipAddress": d.ipv4.to_string(),
                    "managed": true,
                    "supervised": d.supervised,
                    "deviceOwnershipType": d.ownership,
                    "osVersion": os.map(|o| o.version.clone()),
                    "osBuild": os.map(|o| o.build.clone()),
                    "lastInventoryUpdateDate": rfc3339(last_inventory),
                    "lastEnrolledDate": rfc3339(enrolled),
                    "timeZone": "Europe/London",
                },
                "hardware": {
                    "serialNumber": d.serial,
                    "wifiMacAddress": d.mac_string(),
                    "model": model.map(|m| m.name.clone()),
                    "modelIdentifier": model.map(|m| m.identifier.clone()),
                },
                "userAndLocation": {
                    "username": d.username,
                    "realName": format!("User {:04}", d.index + 1),
                    "emailAddress": format!("{}@corp.example.com", d.username),
                    "department": role,
                    "position": role,
                },
                "extensionAttributes": [
                    {"name": "Portolan Role", "type": "STRING", "value": [role]},
                    {"name": "IPv6 Address", "type": "STRING", "value": [d.ipv6.to_string()]},
                ],
                "applications": apps,
            })
        })
        .collect();
    json!({ "totalCount": results.len(), "results": results })
}

/// Writes one JSON object per line: an initial locked state per device at the capture start,
/// then a foreground event at each session start and a background event at its end, in time
/// order.
pub fn write_device_states(
    out: &mut impl Write,
    cat: &Catalogue,
    plan: &Plan,
    start_us: u64,
    seed: u64,
) -> std::io::Result<()> {
    let mut rng = SynthRng::new(seed, 0x7374_6174);
    let mut events: Vec<(u64, u32, u8, Value)> = Vec::new();
    for d in &plan.devices {
        let idle = start_us.saturating_sub(rng.range(60, 3600) * 1_000_000);
        events.push((
            start_us,
            d.index,
            0,
            json!({
                "timestamp": rfc3339_millis(start_us),
                "udid": d.udid,
                "lock_state": "locked",
                "app_state": "background",
                "bundle_id": "com.apple.springboard",
                "last_user_interaction": rfc3339_millis(idle),
            }),
        ));
    }
    for s in &plan.sessions {
        let Some(d) = plan.devices.get(s.device as usize) else {
            continue;
        };
        let Some(app) = cat.apps.get(s.app) else {
            continue;
        };
        // The MDM agent reports a moment before the app's first connection.
        let at = s
            .start_us
            .saturating_sub(rng.range(200_000, 3_000_000))
            .max(start_us);
        events.push((
            at,
            d.index,
            1,
            json!({
                "timestamp": rfc3339_millis(at),
                "udid": d.udid,
                "lock_state": "unlocked",
                "app_state": "foreground",
                "bundle_id": app.bundle_id,
                "last_user_interaction": rfc3339_millis(at),
            }),
        ));
        let locked = rng.chance(0.5);
        let touched = s.end_us.saturating_sub(rng.range(0, 60_000_000)).max(at);
        events.push((
            s.end_us,
            d.index,
            2,
            json!({
                "timestamp": rfc3339_millis(s.end_us),
                "udid": d.udid,
                "lock_state": if locked { "locked" } else { "unlocked" },
                "app_state": "background",
                "bundle_id": app.bundle_id,
                "last_user_interaction": rfc3339_millis(touched),
            }),
        ));
    }
    events.sort_by_key(|e| (e.0, e.1, e.2));
    for (_, _, _, v) in events {
        serde_json::to_writer(&mut *out, &v)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
