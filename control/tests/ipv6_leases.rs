//! A managed device on IPv6 known only through a Kea DHCPv6 lease is attributed (not shown as
//! unmanaged): by the DUID's MAC, by `hwaddr`, and through a delegated prefix; the lease file's
//! deletions end bindings and its unusable rows are reported with their reasons.

mod common;

use std::net::IpAddr;

use common::{at, engine_in, fixture, flow, tempdir};
use portolan_control::attribution::DeviceMethod;
use portolan_control::roles::RoleSet;

const JONAS: &str = "00008110-000C35A13A8A401E"; // Intune, Wi-Fi MAC a4:5e:60:c1:00:61
const SALES_IPAD: &str = "00008027-0019284A2E61002E"; // Intune, Wi-Fi MAC a4:5e:60:c1:00:71
const COURIER: &str = "00008120-0004D8A21E81401E"; // Apple MDM, Wi-Fi MAC a4:5e:60:c1:00:81

#[test]
fn a_device_known_only_through_dhcpv6_is_attributed() {
    let dir = tempdir();
    let mut cp = engine_in(dir.path(), RoleSet::shipped_defaults().unwrap());
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
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let owner = |cp: &portolan_control::ControlPlane, a: &str, t: &str| {
        cp.ingest.device_at(ip(a), at(t)).unwrap().map(|d| d.udid)
    };
    let noon = "2024-04-30T12:00:00Z";
    let mismatch = |src: &str, start: i64| {
        let mut f = flow(src, "2001:db8:ffff::50", 8088, "http", start, 5);
        f.port_mismatch = Some(true);
        f
    };

    // Before the lease file: the IPv6 source is nobody's; the alert calls it unmanaged.
    assert_eq!(owner(&cp, "2001:db8:10::61", noon), None);
    let before = cp
        .ingest
        .ingest_flow(&mismatch("2001:db8:10::61", at(noon)))
        .unwrap();
    assert!(
        !before.is_empty(),
        "a port mismatch from an unknown device alerts"
    );
    assert!(before.iter().all(|a| !a.device.in_inventory));

    let summary = cp
        .operator
        .import_leases(&fixture("kea-leases6.csv"), "test")
        .unwrap();
    assert_eq!(summary.rows, 7);
    assert_eq!(summary.added, 4, "{summary:?}");
    assert_eq!(summary.ended, 1, "the release of 2001:db8:10::71");
    assert_eq!(summary.skipped.len(), 2, "{:?}", summary.skipped);
    assert!(
        summary.skipped[0].ends_with(
            "kea-leases6.csv:5: 2001:db8:10::90: no hwaddr, and DUID type 4 (DUID-UUID) carries \
             no Ethernet MAC (only DUID-LLT and DUID-LL of hardware type 1 do); row skipped"
        ),
        "{}",
        summary.skipped[0]
    );
    assert!(summary.skipped[1].contains("2001:db8:10::66: state 1 (declined)"));

    // DUID-LLT with no hwaddr column: the DUID's MAC is the device's Wi-Fi MAC.
    assert_eq!(owner(&cp, "2001:db8:10::61", noon).as_deref(), Some(JONAS));
    let after = cp
        .ingest
        .ingest_flow(&mismatch("2001:db8:10::61", at("2024-04-30T12:30:00Z")))
        .unwrap();
    assert!(!after.is_empty());
    for a in &after {
        assert!(a.device.in_inventory && a.device.managed, "{:?}", a.device);
        assert_eq!(a.device.udid.as_deref(), Some(JONAS));
        assert_eq!(a.device.attribution, Some(DeviceMethod::DhcpLease));
    }
    // The renewal row extends the lease to 09:00 on 1 May; it ends then.
    assert_eq!(
        owner(&cp, "2001:db8:10::61", "2024-05-01T08:30:00Z").as_deref(),
        Some(JONAS)
    );
    assert_eq!(owner(&cp, "2001:db8:10::61", "2024-05-01T09:00:01Z"), None);

    // DUID-EN, but Kea filled `hwaddr` (from the link-local address); released at 18:00.
    assert_eq!(
        owner(&cp, "2001:db8:10::71", noon).as_deref(),
        Some(SALES_IPAD)
    );
    assert_eq!(owner(&cp, "2001:db8:10::71", "2024-04-30T18:00:01Z"), None);

    // A delegated /60 (DUID-LL): every address inside is the courier's, nothing outside.
    for a in ["2001:db8:20:40::1", "2001:db8:20:4f:8a2e:370:7334:1"] {
        assert_eq!(owner(&cp, a, noon).as_deref(), Some(COURIER), "{a}");
    }
    assert_eq!(owner(&cp, "2001:db8:20:50::1", noon), None);

    // The same file again adds nothing, and the bindings survive a restart (from the store).
    let again = cp
        .operator
        .import_leases(&fixture("kea-leases6.csv"), "test")
        .unwrap();
    assert_eq!((again.added, again.unchanged, again.ended), (0, 4, 0));
    drop(cp);
    let store = portolan_control::Store::open(&dir.path().join("portolan.db")).unwrap();
    let cp = portolan_control::ControlPlane::new(
        store,
        RoleSet::shipped_defaults().unwrap(),
        Default::default(),
    )
    .unwrap();
    assert_eq!(
        owner(&cp, "2001:db8:20:4a::9", noon).as_deref(),
        Some(COURIER)
    );
    assert_eq!(owner(&cp, "2001:db8:10::71", "2024-04-30T19:00:00Z"), None);
}
