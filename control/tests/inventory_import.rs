//! Inventory import of every supported shape, lease joins, and re-import with history.

mod common;

use std::net::IpAddr;

use common::{at, engine_in, fixture, tempdir};
use portolan_control::inventory::{
    load_inventory, load_inventory_files, InventorySource, Ownership,
};
use portolan_control::roles::RoleSet;

#[test]
fn jamf_detail_list_normalises_every_field() {
    let batch = load_inventory(&fixture("jamf_mobile_devices_detail.json")).unwrap();
    assert_eq!(batch.source, InventorySource::JamfPro);
    assert_eq!(batch.devices.len(), 3);
    let d = &batch.devices[0];
    assert_eq!(d.udid, "00008120-001A2C3E0E38801E");
    assert_eq!(d.serial_number.as_deref(), Some("F4KX91QHN7"));
    assert_eq!(d.name.as_deref(), Some("Aiko's iPhone"));
    assert_eq!(d.model.as_deref(), Some("iPhone 15"));
    assert_eq!(d.model_identifier.as_deref(), Some("iPhone15,4"));
    assert_eq!(d.os_name.as_deref(), Some("iOS"));
    assert_eq!(d.os_version.as_deref(), Some("17.4.1"));
    assert!(d.supervised && d.managed);
    assert_eq!(d.ownership, Ownership::Institutional);
    assert_eq!(d.wifi_mac.as_deref(), Some("a4:5e:60:c1:00:21"));
    assert_eq!(d.ip_address, Some("10.10.0.21".parse::<IpAddr>().unwrap()));
    assert_eq!(d.reported_at_us, Some(at("2024-04-30T08:00:00Z")));
    let statuses: Vec<(&str, &str)> = d
        .apps
        .iter()
        .map(|a| (a.bundle_id.as_str(), a.status.as_str()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("com.apple.mobilemail", "managed"),
            ("com.microsoft.Office.Outlook", "managed_but_uninstalled"),
            ("com.apple.mobilesafari", "unmanaged"),
            ("com.tinyspeck.chatlyio", "managed"),
        ]
    );
    assert_eq!(batch.devices[1].os_name.as_deref(), Some("iPadOS"));
    let byod = &batch.devices[2];
    assert!(!byod.managed && !byod.supervised);
    assert_eq!(byod.ip_address, None, "empty ipAddress is no address");
    assert_eq!(byod.ownership, Ownership::Personal);
    assert_eq!(byod.wifi_mac.as_deref(), Some("a4:5e:60:c1:00:41"));
}

#[test]
fn jamf_single_device_detail() {
    let batch = load_inventory(&fixture("jamf_mobile_device_detail_single.json")).unwrap();
    let d = &batch.devices[0];
    assert_eq!(d.udid, "00008030-001E3D2A1A93802E");
    assert!(d.supervised, "from ios.supervised");
    assert_eq!(d.model.as_deref(), Some("iPhone SE (3rd generation)"));
    assert_eq!(d.ip_address, Some("10.10.0.40".parse::<IpAddr>().unwrap()));
    assert_eq!(
        d.app("com.example.frontdesk")
            .and_then(|a| a.version.as_deref()),
        Some("2.1.0")
    );
}

#[test]
fn intune_devices_join_the_mobile_app_catalogue() {
    let batches = load_inventory_files(&[
        fixture("intune_mobile_apps.json"),
        fixture("intune_managed_devices.json"),
    ])
    .unwrap();
    assert_eq!(batches.len(), 1, "the catalogue is not a device batch");
    let b = &batches[0];
    assert_eq!(b.source, InventorySource::Intune);
    let d = &b.devices[0];
    assert_eq!(d.udid, "00008110-000C35A13A8A401E");
    assert_eq!(d.wifi_mac.as_deref(), Some("a4:5e:60:c1:00:61"));
    assert_eq!(d.ownership, Ownership::Institutional);
    assert!(d.supervised && d.managed);
    assert_eq!(d.ip_address, None, "Intune reports no IP");
    assert_eq!(
        d.app("com.microsoft.Office.Outlook")
            .map(|a| a.status.as_str()),
        Some("managed")
    );
    assert_eq!(
        d.app("com.microsoft.skype.teams")
            .map(|a| a.status.as_str()),
        Some("managed")
    );
    assert_eq!(
        d.app("com.example.fieldapp").map(|a| a.status.as_str()),
        Some("detected")
    );
    assert_eq!(d.apps.len(), 3);
    assert!(
        b.warnings
            .iter()
            .any(|w| w.contains("Weather Pro") && w.contains("value[0].detectedApps[3]")),
        "{:?}",
        b.warnings
    );
    assert_eq!(b.devices[1].ownership, Ownership::Personal);
    assert_eq!(b.devices[1].os_name.as_deref(), Some("iPadOS"));

    let alone = load_inventory(&fixture("intune_managed_devices.json")).unwrap();
    assert!(alone.devices[0]
        .app("com.microsoft.Office.Outlook")
        .is_none());
    assert!(alone
        .warnings
        .iter()
        .any(|w| w.contains("Microsoft Outlook")));
    let only_catalogue = load_inventory_files(&[fixture("intune_mobile_apps.json")]).unwrap_err();
    assert!(
        only_catalogue
            .to_string()
            .contains("intune_mobile_apps.json"),
        "{only_catalogue}"
    );
}

#[test]
fn apple_mdm_plist_merges_device_information_and_app_lists() {
    let batch = load_inventory(&fixture("apple_mdm_responses.plist")).unwrap();
    assert_eq!(batch.source, InventorySource::AppleMdm);
    assert_eq!(batch.devices.len(), 1);
    let d = &batch.devices[0];
    assert_eq!(d.udid, "00008120-0004D8A21E81401E");
    assert_eq!(d.serial_number.as_deref(), Some("C39XR2M1PQ"));
    assert_eq!(d.model_identifier.as_deref(), Some("iPhone15,4"));
    assert_eq!(d.os_name.as_deref(), Some("iOS"));
    assert!(d.supervised && d.managed);
    assert_eq!(d.ownership, Ownership::Institutional, "EnrolledViaDEP");
    assert_eq!(d.wifi_mac.as_deref(), Some("a4:5e:60:c1:00:81"));
    let mail = d.app("com.apple.mobilemail").unwrap();
    assert_eq!(
        (
            mail.status.as_str(),
            mail.name.as_deref(),
            mail.version.as_deref()
        ),
        ("managed", Some("Mail"), Some("3.0"))
    );
    assert_eq!(
        d.app("com.example.courier").map(|a| a.status.as_str()),
        Some("installing")
    );
    assert_eq!(
        d.app("net.whatsapp.WhatsApp").map(|a| a.status.as_str()),
        Some("user_installed")
    );
}

#[test]
fn apple_mdm_json_with_an_error_response() {
    let batch = load_inventory(&fixture("apple_mdm_responses.json")).unwrap();
    let d = &batch.devices[0];
    assert_eq!(d.os_name.as_deref(), Some("iPadOS"));
    assert!(!d.supervised);
    assert_eq!(d.ownership, Ownership::Unknown);
    assert_eq!(
        d.app("com.example.labtool").map(|a| a.status.as_str()),
        Some("managed_but_uninstalled")
    );
    assert!(
        batch
            .warnings
            .iter()
            .any(|w| w.contains("[2]") && w.contains("Error")),
        "{:?}",
        batch.warnings
    );
}

#[test]
fn leases_place_devices_without_inventory_addresses() {
    let dir = tempdir();
    let cp = engine_in(dir.path(), RoleSet::shipped_defaults().unwrap());
    cp.operator
        .import_inventory(
            &[
                fixture("intune_mobile_apps.json"),
                fixture("intune_managed_devices.json"),
                fixture("apple_mdm_responses.plist"),
            ],
            "test",
        )
        .unwrap();
    assert_eq!(cp.core().lock().unwrap().device_count(), 6);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(
        cp.ingest
            .device_at(ip("10.10.0.61"), at("2024-04-30T12:00:00Z"))
            .unwrap()
            .is_none(),
        "no lease yet"
    );
    let added = cp
        .operator
        .import_leases(&fixture("kea-leases4.csv"), "test")
        .unwrap();
    assert_eq!(added.added, 3, "the expired-reclaimed row is skipped");
    assert_eq!(added.skipped.len(), 1, "{:?}", added.skipped);
    assert!(added.skipped[0].contains("10.10.0.99: state 2 (expired-reclaimed)"));
    let jonas = cp
        .ingest
        .device_at(ip("10.10.0.61"), at("2024-04-30T12:00:00Z"))
        .unwrap()
        .unwrap();
    assert_eq!(jonas.name.as_deref(), Some("Jonas iPhone"));
    let courier = cp
        .ingest
        .device_at(ip("10.10.0.81"), at("2024-04-30T12:00:00Z"))
        .unwrap()
        .unwrap();
    assert_eq!(courier.udid, "00008120-0004D8A21E81401E");
    assert!(
        cp.ingest
            .device_at(ip("10.10.0.61"), at("2024-05-01T09:00:00Z"))
            .unwrap()
            .is_none(),
        "lease expired"
    );
    let audit = cp.operator.audit_log().unwrap();
    assert!(audit.iter().any(|e| e.target.ends_with("kea-leases4.csv")));
}

#[test]
fn reimport_replaces_records_and_keeps_history() {
    let dir = tempdir();
    let cp = engine_in(dir.path(), RoleSet::shipped_defaults().unwrap());
    let udid = "00008120-001A2C3E0E38801E";
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(
        cp.ingest
            .device_at(ip("10.10.0.21"), at("2024-05-01T09:00:00Z"))
            .unwrap()
            .as_ref()
            .map(|d| d.udid.as_str()),
        Some(udid)
    );

    let text = std::fs::read_to_string(fixture("jamf_mobile_devices_detail.json")).unwrap();
    let changed = text
        .replace("\"10.10.0.21\"", "\"10.10.0.121\"")
        .replace("2024-04-30T08:00:00.000Z", "2024-05-02T08:00:00.000Z")
        .replace(
            "\"displayName\": \"Aiko's iPhone\"",
            "\"displayName\": \"Aiko's work iPhone\"",
        );
    let path = dir.path().join("jamf-2.json");
    std::fs::write(&path, changed).unwrap();
    let summary = cp.operator.import_inventory(&[path], "test").unwrap();
    assert_eq!(summary[0].replaced, 3);
    assert_eq!(summary[0].added, 0);
    assert_eq!(summary[0].address_changes, 1);
    assert_eq!(
        cp.core()
            .lock()
            .unwrap()
            .device(udid)
            .and_then(|d| d.name.as_deref()),
        Some("Aiko's work iPhone")
    );
    let history = cp
        .core()
        .lock()
        .unwrap()
        .store()
        .device_history(udid)
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].device.name.as_deref(), Some("Aiko's iPhone"));
    assert_eq!(history[0].device.ip_address, Some(ip("10.10.0.21")));
    // The old address still names the device for sessions before the new report.
    assert_eq!(
        cp.ingest
            .device_at(ip("10.10.0.21"), at("2024-05-01T09:00:00Z"))
            .unwrap()
            .as_ref()
            .map(|d| d.udid.as_str()),
        Some(udid)
    );
    assert!(cp
        .ingest
        .device_at(ip("10.10.0.21"), at("2024-05-03T09:00:00Z"))
        .unwrap()
        .is_none());
    assert_eq!(
        cp.ingest
            .device_at(ip("10.10.0.121"), at("2024-05-03T09:00:00Z"))
            .unwrap()
            .as_ref()
            .map(|d| d.udid.as_str()),
        Some(udid)
    );
}

#[test]
fn an_address_without_report_time_holds_until_it_changes() {
    let dir = tempdir();
    let store = portolan_control::Store::open(&dir.path().join("p.db")).unwrap();
    let cp = portolan_control::ControlPlane::new(
        store,
        RoleSet::shipped_defaults().unwrap(),
        Default::default(),
    )
    .unwrap();
    let text = std::fs::read_to_string(fixture("jamf_mobile_devices_detail.json")).unwrap();
    let undated = text.replace(
        "\"lastInventoryUpdateDate\"",
        "\"lastInventoryUpdateDateX\"",
    );
    let path = dir.path().join("undated.json");
    std::fs::write(&path, &undated).unwrap();
    cp.operator
        .import_inventory(std::slice::from_ref(&path), "test")
        .unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let udid = "00008120-001A2C3E0E38801E";
    assert_eq!(
        cp.ingest
            .device_at(ip("10.10.0.21"), at("2019-01-01T00:00:00Z"))
            .unwrap()
            .as_ref()
            .map(|d| d.udid.as_str()),
        Some(udid)
    );
    std::fs::write(&path, undated.replace("\"10.10.0.21\"", "\"10.10.0.121\"")).unwrap();
    cp.operator.import_inventory(&[path], "test").unwrap();
    let now = portolan_control::timestamp::now_us();
    assert_eq!(
        cp.ingest
            .device_at(ip("10.10.0.21"), at("2019-01-01T00:00:00Z"))
            .unwrap()
            .as_ref()
            .map(|d| d.udid.as_str()),
        Some(udid)
    );
    assert!(cp
        .ingest
        .device_at(ip("10.10.0.21"), now + 1_000_000)
        .unwrap()
        .is_none());
    assert_eq!(
        cp.ingest
            .device_at(ip("10.10.0.121"), now + 1_000_000)
            .unwrap()
            .as_ref()
            .map(|d| d.udid.as_str()),
        Some(udid)
    );
}

/// The Jamf list fixture with an IPv6 extension attribute in Aiko's `general` section (as Jamf
/// places attributes whose inventory display is General) and `extra` appended to it.
fn jamf_with_ipv6(name: &str, values: &str) -> String {
    let text = std::fs::read_to_string(fixture("jamf_mobile_devices_detail.json")).unwrap();
    let attribute = format!(
        r#""extensionAttributes": [{{"id": "7", "name": "{name}", "type": "STRING", "value": [{values}], "extensionAttributeCollectionAllowed": false, "inventoryDisplay": "General"}}],"#
    );
    let replaced = text.replacen(r#""extensionAttributes": [],"#, &attribute, 1);
    assert_ne!(
        replaced, text,
        "fixture has an empty general.extensionAttributes"
    );
    replaced
}

#[test]
fn jamf_ipv6_extension_attributes_and_user_are_read() {
    use portolan_control::inventory::{parse_inventory_bytes_with, InventoryOptions};
    let text = jamf_with_ipv6(
        "IPv6 address",
        r#""2001:db8:10::21, 2001:db8:10::121", "not-an-address""#,
    );
    let batch = parse_inventory_bytes_with(
        text.as_bytes(),
        std::path::Path::new("jamf.json"),
        &InventoryOptions::default(),
    )
    .unwrap();
    let d = &batch.devices[0];
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(
        d.ipv6_addresses,
        vec![ip("2001:db8:10::21"), ip("2001:db8:10::121")],
        "default names match without regard to case; a value may list several"
    );
    assert!(
        batch
            .warnings
            .iter()
            .any(|w| w.contains("not-an-address") && w.contains("results[0].general")),
        "{:?}",
        batch.warnings
    );
    let user = d.user.as_ref().expect("userAndLocation");
    assert_eq!(user.username.as_deref(), Some("aiko.tanaka"));
    assert_eq!(user.real_name.as_deref(), Some("Aiko Tanaka"));
    assert_eq!(user.email.as_deref(), Some("aiko.tanaka@example.com"));
    assert_eq!(user.position.as_deref(), Some("Field engineer"));
    assert_eq!(batch.devices[1].user, None, "no userAndLocation section");

    // A site that keeps the address under another name configures it; the default names then
    // no longer match.
    let custom = jamf_with_ipv6("Wi-Fi v6", r#""2001:db8:10::21""#);
    let options = InventoryOptions {
        ipv6_extension_attributes: vec!["Wi-Fi v6".into()],
    };
    let batch =
        parse_inventory_bytes_with(custom.as_bytes(), std::path::Path::new("j"), &options).unwrap();
    assert_eq!(batch.devices[0].ipv6_addresses, vec![ip("2001:db8:10::21")]);
    let batch = parse_inventory_bytes_with(
        custom.as_bytes(),
        std::path::Path::new("j"),
        &InventoryOptions::default(),
    )
    .unwrap();
    assert!(batch.devices[0].ipv6_addresses.is_empty());
}

#[test]
fn ipv6_from_the_inventory_attributes_a_flow_and_a_reused_address_moves() {
    let dir = tempdir();
    let store = portolan_control::Store::open(&dir.path().join("p.db")).unwrap();
    let cp = portolan_control::ControlPlane::new(
        store,
        RoleSet::shipped_defaults().unwrap(),
        Default::default(),
    )
    .unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let aiko = "00008120-001A2C3E0E38801E";
    let other = "00008103-000A4D1A2E12001E";
    let first = dir.path().join("first.json");
    std::fs::write(
        &first,
        jamf_with_ipv6("IPv6 Address", r#""2001:db8:10::21""#),
    )
    .unwrap();
    cp.operator.import_inventory(&[first], "test").unwrap();
    let v6 = ip("2001:db8:10::21");
    assert_eq!(
        cp.ingest
            .device_at(v6, at("2024-05-01T09:00:00Z"))
            .unwrap()
            .as_ref()
            .map(|d| d.udid.as_str()),
        Some(aiko)
    );
    // IPv4 still names the same device.
    assert_eq!(
        cp.ingest
            .device_at(ip("10.10.0.21"), at("2024-05-01T09:00:00Z"))
            .unwrap()
            .as_ref()
            .map(|d| d.udid.as_str()),
        Some(aiko)
    );

    // A later inventory: Aiko's device no longer reports the address, the second device does
    // (reported on 2 May). Before that the address was Aiko's, after it the other device's;
    // never both.
    let text = std::fs::read_to_string(fixture("jamf_mobile_devices_detail.json")).unwrap();
    let marker = format!(r#""udid": "{other}""#);
    let moved = text
        .replacen(
            &marker,
            &format!(
                r#""extensionAttributes": [{{"id": "7", "name": "IPv6 Address", "type": "STRING", "value": ["2001:db8:10::21"]}}], {marker}"#
            ),
            1,
        )
        .replace("2024-04-30T08:00:00.000Z", "2024-05-02T08:00:00.000Z")
        .replace("2024-04-30T08:05:00.000Z", "2024-05-02T08:05:00.000Z");
    let second = dir.path().join("second.json");
    std::fs::write(&second, &moved).unwrap();
    let summary = cp.operator.import_inventory(&[second], "test").unwrap();
    assert!(summary[0].address_changes >= 1, "{summary:?}");
    let owner = |t: &str| {
        cp.ingest
            .device_at(v6, at(t))
            .unwrap()
            .as_ref()
            .map(|d| d.udid.clone())
    };
    assert_eq!(owner("2024-05-01T09:00:00Z").as_deref(), Some(aiko));
    assert_eq!(owner("2024-05-03T09:00:00Z").as_deref(), Some(other));
}
