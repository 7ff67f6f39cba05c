//! Malformed inventory, roles, state and lease files fail naming the file and the line or field.

mod common;

use common::{fixture, tempdir};
use portolan_control::device_state::load_device_states;
use portolan_control::inventory::kea_leases::load_kea_leases;
use portolan_control::inventory::load_inventory;
use portolan_control::roles::RoleSet;
use portolan_control::{ControlConfig, ControlPlane, Store};

fn inventory_error(name: &str) -> String {
    load_inventory(&fixture(name)).unwrap_err().to_string()
}

#[test]
fn inventory_errors_name_file_and_field() {
    let e = inventory_error("malformed_jamf_missing_udid.json");
    assert!(
        e.contains("malformed_jamf_missing_udid.json: field `results[1].general.udid`: missing"),
        "{e}"
    );
    let e = inventory_error("malformed_jamf_bad_ip.json");
    assert!(
        e.contains("field `results[0].general.ipAddress`: not an IP address"),
        "{e}"
    );
    let e = inventory_error("malformed_intune_apps.json");
    assert!(
        e.contains("field `value[0].detectedApps[0].displayName`: expected a string"),
        "{e}"
    );
}

#[test]
fn inventory_syntax_errors_name_the_line() {
    let e = inventory_error("malformed_syntax.json");
    assert!(e.contains("malformed_syntax.json:4:"), "{e}");
    let e = inventory_error("malformed_apple.plist");
    assert!(
        e.contains("malformed_apple.plist") && e.contains("plist"),
        "{e}"
    );
}

#[test]
fn unknown_inventory_shape_says_what_was_found_and_expected() {
    let e = inventory_error("malformed_unknown_shape.json");
    assert!(e.contains("malformed_unknown_shape.json"), "{e}");
    assert!(e.contains("keys [mobile_devices]"), "{e}");
    assert!(
        e.contains("Jamf Pro") && e.contains("managedDevices") && e.contains("QueryResponses"),
        "{e}"
    );
}

#[test]
fn state_lease_and_roles_errors_name_file_and_line() {
    let e = load_device_states(&fixture("malformed_device_states.jsonl"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("malformed_device_states.jsonl:3: field `lock_state`"),
        "{e}"
    );
    let e = load_kea_leases(&fixture("malformed_leases.csv"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("malformed_leases.csv:3: field `hwaddr`"), "{e}");
    let e = RoleSet::load(&fixture("malformed_roles.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("malformed_roles.toml:9:"), "{e}");
    let e = RoleSet::load(&fixture("does-not-exist.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("does-not-exist.toml"), "{e}");
}

#[test]
fn engine_import_failure_leaves_the_store_unchanged() {
    let dir = tempdir();
    let store = Store::open(&dir.path().join("p.db")).unwrap();
    let cp = ControlPlane::new(
        store,
        RoleSet::shipped_defaults().unwrap(),
        ControlConfig::default(),
    )
    .unwrap();
    let e = cp
        .operator
        .import_inventory(
            &[
                fixture("jamf_mobile_devices_detail.json"),
                fixture("malformed_jamf_missing_udid.json"),
            ],
            "test",
        )
        .unwrap_err();
    assert!(e.to_string().contains("results[1].general.udid"), "{e}");
    assert_eq!(
        cp.core().lock().unwrap().device_count(),
        0,
        "a bad file in the set imports nothing"
    );
    let e = cp
        .operator
        .import_device_states(&fixture("malformed_device_states.jsonl"))
        .unwrap_err();
    assert!(e.to_string().contains(":3:"), "{e}");
    assert_eq!(cp.core().lock().unwrap().stats().device_states, 0);
}

/// Every input file is refused past its size bound, naming the file and the limit, before it is
/// read (sparse files: nothing is written or read).
#[test]
fn input_files_over_the_size_limit_are_refused_naming_file_and_limit() {
    use portolan_control::app_catalogue::AppCatalogue;
    use portolan_control::input_file::MAX_INPUT_FILE_BYTES;
    use portolan_control::inventory::MAX_DOCUMENT_BYTES;
    let dir = tempdir();
    let sparse = |name: &str, len: u64| {
        let path = dir.path().join(name);
        std::fs::File::create(&path).unwrap().set_len(len).unwrap();
        path
    };
    let over = MAX_INPUT_FILE_BYTES + 1;
    let limit = format!("limit of {MAX_INPUT_FILE_BYTES} bytes");
    let checks: Vec<(std::path::PathBuf, String)> = vec![
        {
            let p = sparse("states.jsonl", over);
            (p.clone(), load_device_states(&p).unwrap_err().to_string())
        },
        {
            let p = sparse("leases.csv", over);
            (p.clone(), load_kea_leases(&p).unwrap_err().to_string())
        },
        {
            let p = sparse("roles.toml", over);
            (p.clone(), RoleSet::load(&p).unwrap_err().to_string())
        },
        {
            let p = sparse("control.toml", over);
            (p.clone(), ControlConfig::load(&p).unwrap_err().to_string())
        },
        {
            let p = sparse("apps.toml", over);
            (p.clone(), AppCatalogue::load(&p).unwrap_err().to_string())
        },
    ];
    for (path, e) in checks {
        assert!(
            e.contains(&path.display().to_string()) && e.contains(&limit),
            "{e}"
        );
    }
    let p = sparse("inventory.json", MAX_DOCUMENT_BYTES + 1);
    let e = load_inventory(&p).unwrap_err().to_string();
    assert!(
        e.contains(&p.display().to_string())
            && e.contains(&format!("limit of {MAX_DOCUMENT_BYTES} bytes")),
        "{e}"
    );
}
