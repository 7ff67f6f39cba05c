//! MDM imports that fail loudly and merge safely: exports missing sections keep what the previous
//! inventory had, partial pages warn, other platforms' records are skipped with a reason, and
//! Apple User Enrollment / `SecurityInfo` responses are read as the separate responses they are.

mod common;

use common::{engine_in, fixture, tempdir};
use portolan_control::inventory::{load_inventory, Ownership};
use portolan_control::roles::RoleSet;
use serde_json::{json, Value};

const AIKO: &str = "00008120-001A2C3E0E38801E";

/// The shipped Jamf list fixture as Jamf returns it without `section=` parameters: only
/// `general` (plus ids), and one page of `total` devices.
fn jamf_general_only(total: u64) -> String {
    let text = std::fs::read_to_string(fixture("jamf_mobile_devices_detail.json")).unwrap();
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    doc["totalCount"] = json!(total);
    for r in doc["results"].as_array_mut().unwrap() {
        let obj = r.as_object_mut().unwrap();
        obj.retain(|k, _| matches!(k.as_str(), "mobileDeviceId" | "deviceType" | "general"));
    }
    serde_json::to_string_pretty(&doc).unwrap()
}

#[test]
fn a_general_only_jamf_page_keeps_apps_serial_and_mac_and_warns() {
    let dir = tempdir();
    let cp = engine_in(dir.path(), RoleSet::shipped_defaults().unwrap());
    let before = cp.core().lock().unwrap().device(AIKO).cloned().unwrap();
    assert_eq!(before.apps.len(), 4);
    assert!(before.serial_number.is_some() && before.wifi_mac.is_some());

    let path = dir.path().join("jamf-general.json");
    std::fs::write(&path, jamf_general_only(250)).unwrap();
    let summary = cp.operator.import_inventory(&[path], "test").unwrap();
    let s = &summary[0];
    assert_eq!((s.added, s.replaced), (0, 3), "{s:?}");
    assert_eq!(s.unchanged, 3, "nothing the file reported differs: {s:?}");
    assert_eq!(s.changed, 0);
    assert!(s.absent.is_empty());
    let all = s.warnings.join("\n");
    assert!(
        all.contains("3 of `totalCount` 250"),
        "partial page warns: {all}"
    );
    assert!(all.contains("section=APPLICATIONS"), "{all}");
    assert!(all.contains("section=HARDWARE"), "{all}");
    assert_eq!(s.kept.len(), 3, "{:?}", s.kept);
    assert!(
        s.kept.iter().any(|k| k.contains(AIKO)
            && k.contains("4 apps")
            && k.contains("serial number")
            && k.contains("Wi-Fi MAC")
            && k.contains("user")),
        "{:?}",
        s.kept
    );

    let after = cp.core().lock().unwrap().device(AIKO).cloned().unwrap();
    assert_eq!(after.apps, before.apps, "apps are not wiped");
    assert_eq!(after.serial_number, before.serial_number);
    assert_eq!(after.wifi_mac, before.wifi_mac);
    assert_eq!(after.model, before.model);
    assert_eq!(after.user, before.user);
    // The stored app table (what the API and attribution read after a restart) too.
    let stored = cp.core().lock().unwrap().store().devices().unwrap();
    let aiko = stored.iter().find(|d| d.udid == AIKO).unwrap();
    assert_eq!(aiko.apps.len(), 4);
}

#[test]
fn a_full_jamf_export_reports_changes_and_an_empty_app_list_is_taken_as_reported() {
    let dir = tempdir();
    let cp = engine_in(dir.path(), RoleSet::shipped_defaults().unwrap());
    let text = std::fs::read_to_string(fixture("jamf_mobile_devices_detail.json")).unwrap();
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    // Aiko's phone now reports no apps (the section is there, empty): that is a change.
    doc["results"][0]["applications"] = json!([]);
    // One device left the export.
    doc["results"].as_array_mut().unwrap().pop();
    doc["totalCount"] = json!(2);
    let path = dir.path().join("jamf-2.json");
    std::fs::write(&path, serde_json::to_string(&doc).unwrap()).unwrap();
    let s = cp
        .operator
        .import_inventory(&[path], "test")
        .unwrap()
        .remove(0);
    assert_eq!((s.changed, s.unchanged), (1, 1), "{s:?}");
    assert_eq!(s.absent.len(), 1, "{s:?}");
    assert!(s.kept.is_empty(), "{:?}", s.kept);
    assert!(
        !s.warnings.iter().any(|w| w.contains("totalCount")),
        "{:?}",
        s.warnings
    );
    let after = cp.core().lock().unwrap().device(AIKO).cloned().unwrap();
    assert!(after.apps.is_empty(), "a reported empty list is taken");
    assert_eq!(
        cp.core().lock().unwrap().device_count(),
        3,
        "an absent device is kept, not removed"
    );
}

#[test]
fn intune_skips_other_platforms_per_record_and_warns_on_a_next_link() {
    let dir = tempdir();
    let text = std::fs::read_to_string(fixture("intune_managed_devices.json")).unwrap();
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    let list = doc["value"].as_array_mut().unwrap();
    // Graph managedDevice records of a Windows laptop and an Android phone (no UDID), and an
    // iOS record whose UDID is empty.
    list.push(json!({
        "id": "9f1c2d3e-0000-4000-8000-000000000101",
        "deviceName": "DESKTOP-7Q2M1",
        "operatingSystem": "Windows",
        "osVersion": "10.0.22631.3447",
        "udid": null,
        "managementAgent": "mdm",
        "managedDeviceOwnerType": "company",
        "serialNumber": "PF3XK2LM"
    }));
    list.push(json!({
        "id": "9f1c2d3e-0000-4000-8000-000000000102",
        "deviceName": "Pixel 8",
        "operatingSystem": "Android",
        "osVersion": "14",
        "managementAgent": "mdm"
    }));
    list.push(json!({
        "id": "9f1c2d3e-0000-4000-8000-000000000103",
        "deviceName": "Half-enrolled iPhone",
        "operatingSystem": "iOS",
        "udid": "",
        "managementAgent": "mdm"
    }));
    doc["@odata.nextLink"] =
        json!("https://graph.microsoft.com/v1.0/deviceManagement/managedDevices?$skiptoken=X");
    let path = dir.path().join("intune.json");
    std::fs::write(&path, serde_json::to_string(&doc).unwrap()).unwrap();
    let batch = load_inventory(&path).expect("a Windows record does not fail the file");
    assert_eq!(batch.devices.len(), 2);
    assert_eq!(batch.skipped.len(), 3, "{:?}", batch.skipped);
    assert!(batch.skipped[0].contains("\"Windows\"") && batch.skipped[0].contains("value[2]"));
    assert!(batch.skipped[1].contains("\"Android\""));
    assert!(batch.skipped[2].contains("udid"));
    assert!(
        batch.warnings.iter().any(|w| w.contains("@odata.nextLink")),
        "{:?}",
        batch.warnings
    );
}

#[test]
fn apple_user_enrollment_and_security_info_as_their_own_responses() {
    let dir = tempdir();
    let doc = json!([
        {
            "CommandUUID": "C0000000-0000-4000-8000-000000000001",
            "Status": "Acknowledged",
            "UDID": "00008101-001C49A83C61001E",
            "QueryResponses": {
                "DeviceName": "Lab iPad", "ModelName": "iPad", "ProductName": "iPad13,1",
                "OSVersion": "17.1", "IsSupervised": true, "WiFiMAC": "A4:5E:60:C1:00:91"
            }
        },
        {
            "CommandUUID": "C0000000-0000-4000-8000-000000000002",
            "Status": "Acknowledged",
            "UDID": "00008101-001C49A83C61001E",
            "SecurityInfo": {
                "PasscodePresent": true,
                "ManagementStatus": {"EnrolledViaDEP": true, "UserApprovedEnrollment": true}
            }
        },
        {
            "CommandUUID": "C0000000-0000-4000-8000-000000000003",
            "Status": "Acknowledged",
            "EnrollmentID": "B0C2E1F4A5D6C7B8A9E0F1D2C3B4A5E6F7081920",
            "EnrollmentUserID": "user@example.com",
            "QueryResponses": {
                "DeviceName": "Sam's iPhone", "ModelName": "iPhone", "ProductName": "iPhone15,4",
                "OSVersion": "17.4"
            }
        },
        {
            "CommandUUID": "C0000000-0000-4000-8000-000000000004",
            "Status": "Acknowledged",
            "EnrollmentID": "B0C2E1F4A5D6C7B8A9E0F1D2C3B4A5E6F7081920",
            "SecurityInfo": {"ManagementStatus": {"IsUserEnrollment": true, "EnrolledViaDEP": false}}
        },
        {
            "CommandUUID": "C0000000-0000-4000-8000-000000000005",
            "Status": "Acknowledged",
            "ManagedApplicationList": {"com.example.app": {"Status": "Managed"}}
        }
    ]);
    let path = dir.path().join("apple.json");
    std::fs::write(&path, serde_json::to_string(&doc).unwrap()).unwrap();
    let batch = load_inventory(&path).unwrap();
    assert_eq!(batch.devices.len(), 2, "{:?}", batch.devices);
    let lab = batch
        .devices
        .iter()
        .find(|d| d.udid == "00008101-001C49A83C61001E")
        .unwrap();
    assert_eq!(lab.ownership, Ownership::Institutional, "from SecurityInfo");
    let byod = batch
        .devices
        .iter()
        .find(|d| d.udid == "B0C2E1F4A5D6C7B8A9E0F1D2C3B4A5E6F7081920")
        .expect("a User Enrollment device is keyed by its enrollment ID");
    assert_eq!(byod.ownership, Ownership::Personal);
    assert_eq!(byod.name.as_deref(), Some("Sam's iPhone"));
    assert_eq!(batch.skipped.len(), 1, "{:?}", batch.skipped);
    assert!(batch.skipped[0].contains("[4]") && batch.skipped[0].contains("EnrollmentID"));
}
