//! MDM inventory: the normalised device model and the loaders that fill it.
//!
//! Owns: [`Device`], [`ManagedApp`], [`Ownership`], reading inventory files (JSON or plist),
//! choosing the parser by shape ([`detect`]), and the DHCP lease join ([`kea_leases`]).
//! Must not: talk to an MDM server, persist anything (that is [`crate::store`]), or guess a field a
//! source does not report (absent stays `None`).
//!
//! Sources, one module each: [`jamf`] (Jamf Pro API `GET /v2/mobile-devices/detail` and
//! `/v2/mobile-devices/{id}/detail`), [`intune`] (Microsoft Graph `managedDevices` with
//! `detectedApps` expanded, joined to a `mobileApps` catalogue for bundle IDs), [`apple_mdm`]
//! (Apple MDM `DeviceInformation`, `ManagedApplicationList` and `InstalledApplicationList` command
//! responses, XML/binary plist or JSON).

pub mod apple_mdm;
pub mod detect;
mod document;
pub mod intune;
pub mod jamf;
mod json_fields;
pub mod kea_leases;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use detect::InventoryShape;
pub use document::{
    parse_structured, read_structured, MAX_DOCUMENT_BYTES, MAX_NESTING_DEPTH,
    MAX_PLIST_VALUES_PER_BYTE,
};
pub use intune::MobileAppCatalogue;
pub use json_fields::FieldError;

/// Who owns a device, normalised across MDMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Ownership {
    /// Organisation-owned (Jamf `Institutional`, Intune `company`, DEP enrolment).
    Institutional,
    /// User-owned (Jamf `PersonalDeviceProfile`/`UserEnrollment`, Intune `personal`).
    Personal,
    /// Not reported.
    #[default]
    Unknown,
}

impl Ownership {
    /// Normalises an MDM's ownership string.
    pub fn from_mdm(value: &str) -> Ownership {
        let v = value.to_ascii_lowercase();
        if v == "institutional" || v == "company" || v == "corporate" {
            Ownership::Institutional
        } else if v.contains("personal") || v.contains("userenrollment") || v == "byod" {
            Ownership::Personal
        } else {
            Ownership::Unknown
        }
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Ownership::Institutional => "institutional",
            Ownership::Personal => "personal",
            Ownership::Unknown => "unknown",
        }
    }
}

/// Which MDM format a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InventorySource {
    /// Jamf Pro API.
    JamfPro,
    /// Microsoft Intune through Graph.
    Intune,
    /// Apple MDM command responses.
    AppleMdm,
}

impl InventorySource {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            InventorySource::JamfPro => "jamf_pro",
            InventorySource::Intune => "intune",
            InventorySource::AppleMdm => "apple_mdm",
        }
    }
}

/// An app on a device, as the MDM lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedApp {
    /// Bundle identifier, e.g. `com.apple.mobilemail`.
    pub bundle_id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Version (short version preferred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Management status normalised to snake case: `managed`, `managed_but_uninstalled`,
    /// `installing`, `user_installed`, `unmanaged`, `failed`, `detected`, ...
    pub status: String,
}

impl ManagedApp {
    /// True when the MDM manages this app and it is installed.
    pub fn is_managed(&self) -> bool {
        self.status == "managed"
    }
}

/// Normalises an MDM status string (`Managed but uninstalled` → `managed_but_uninstalled`,
/// `UserInstalledApp` → `user_installed`).
pub fn normalize_app_status(raw: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in raw.trim().chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push('_');
        }
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    let out = out.trim_end_matches('_').to_string();
    match out.as_str() {
        "user_installed_app" => "user_installed".to_string(),
        "" => "unknown".to_string(),
        _ => out,
    }
}

/// The user an MDM assigns a device to. Every field is as the MDM reported it (untrusted text).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MdmUser {
    /// Account name (Jamf `username`, Intune `userPrincipalName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Full name (Jamf `realName`, Intune `userDisplayName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_name: Option<String>,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Position or job title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
}

impl MdmUser {
    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        self == &MdmUser::default()
    }
}

/// How inventory documents are read: the site-specific names an MDM keeps some fields under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InventoryOptions {
    /// Jamf extension attributes holding a device's IPv6 address(es), matched by name without
    /// regard to case (default: `IPv6 Address`, `IPv6 Addresses`, `IPv6`). Every value that
    /// parses as an IPv6 address is taken; one that does not is a warning naming the device.
    pub ipv6_extension_attributes: Vec<String>,
}

impl Default for InventoryOptions {
    fn default() -> Self {
        InventoryOptions {
            ipv6_extension_attributes: vec![
                "IPv6 Address".to_string(),
                "IPv6 Addresses".to_string(),
                "IPv6".to_string(),
            ],
        }
    }
}

impl InventoryOptions {
    /// True when `name` is one of the IPv6 extension attributes.
    pub fn is_ipv6_attribute(&self, name: &str) -> bool {
        self.ipv6_extension_attributes
            .iter()
            .any(|n| n.trim().eq_ignore_ascii_case(name.trim()))
    }
}

/// One device, normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// Apple UDID: the primary key.
    pub udid: String,
    /// Serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// Device name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Marketing model, e.g. `iPhone 15`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Model identifier, e.g. `iPhone15,4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_identifier: Option<String>,
    /// Operating system name, e.g. `iOS`, `iPadOS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_name: Option<String>,
    /// Operating system version, e.g. `17.4.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// Supervised.
    pub supervised: bool,
    /// Managed by the MDM.
    pub managed: bool,
    /// Ownership.
    #[serde(default)]
    pub ownership: Ownership,
    /// Wi-Fi MAC, lowercase colon-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wifi_mac: Option<String>,
    /// IP address the MDM last saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<IpAddr>,
    /// Further addresses the MDM reports, IPv6 in practice (Jamf extension attributes named in
    /// [`InventoryOptions::ipv6_extension_attributes`]); each becomes a time-ranged binding like
    /// `ip_address`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6_addresses: Vec<IpAddr>,
    /// The user the MDM assigns the device to (Jamf `userAndLocation` / `location`, Intune
    /// `userPrincipalName`), when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<MdmUser>,
    /// When the MDM last refreshed this record, µs since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_at_us: Option<i64>,
    /// Which MDM format it came from.
    pub source: InventorySource,
    /// Apps on the device.
    #[serde(default)]
    pub apps: Vec<ManagedApp>,
    /// Parts the source document did not carry for this device (e.g. a Jamf export without the
    /// `APPLICATIONS` section): an empty value here means "not reported", not "none", so an
    /// import keeps the previous inventory's value instead of wiping it. Not stored.
    #[serde(skip)]
    pub unreported: Vec<DevicePart>,
}

/// A part of a device record that a source document may leave out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DevicePart {
    /// The app list (Jamf `applications`, Intune `detectedApps`, Apple app-list responses).
    Apps,
    /// Serial number, model and Wi-Fi MAC (Jamf `hardware`, Apple `DeviceInformation`).
    Hardware,
    /// The assigned user (Jamf `userAndLocation` / `location`).
    User,
}

impl DevicePart {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DevicePart::Apps => "apps",
            DevicePart::Hardware => "hardware",
            DevicePart::User => "user",
        }
    }
}

impl Device {
    /// Every address the MDM reports for the device: `ip_address`, then `ipv6_addresses`.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = self.ip_address.into_iter().collect();
        for a in &self.ipv6_addresses {
            if !out.contains(a) {
                out.push(*a);
            }
        }
        out
    }

    /// The app with this bundle ID, if listed.
    pub fn app(&self, bundle_id: &str) -> Option<&ManagedApp> {
        self.apps.iter().find(|a| a.bundle_id == bundle_id)
    }

    /// `iOS 17.4`-style label.
    pub fn os_label(&self) -> Option<String> {
        match (&self.os_name, &self.os_version) {
            (Some(n), Some(v)) => Some(format!("{n} {v}")),
            (Some(n), None) => Some(n.clone()),
            (None, Some(v)) => Some(v.clone()),
            (None, None) => None,
        }
    }
}

/// Normalises a MAC address (`A1B2C3D4E5F6`, `a1-b2-..`, `A1:B2:..`) to `a1:b2:c3:d4:e5:f6`;
/// `None` when it is not 6 bytes of hex.
pub fn normalize_mac(raw: &str) -> Option<String> {
    let hex: String = raw
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.' | ' '))
        .collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let lower = hex.to_ascii_lowercase();
    let parts: Vec<&str> = (0..6).filter_map(|i| lower.get(i * 2..i * 2 + 2)).collect();
    Some(parts.join(":"))
}

/// The devices read from one inventory file.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryBatch {
    /// Which MDM format.
    pub source: InventorySource,
    /// The file it came from.
    pub path: PathBuf,
    /// The devices, normalised.
    pub devices: Vec<Device>,
    /// Things skipped or missing that did not stop the import (each names file and field).
    pub warnings: Vec<String>,
    /// Records left out of the import, each with its reason (e.g. an Intune record of a Windows
    /// device); each is among `warnings` too.
    pub skipped: Vec<String>,
}

/// An inventory file that could not be read; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not well-formed JSON or plist.
    #[error("{}{}: {message}", path.display(), position(*line, *column))]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when the parser reports none).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// Well-formed, but not a shape this crate knows.
    #[error("{path}: {message}")]
    UnknownShape {
        /// The file.
        path: PathBuf,
        /// What was found and what was expected.
        message: String,
    },
    /// A field is missing or has the wrong type or value.
    #[error("{path}: field `{}`: {}", .error.field, .error.message)]
    Field {
        /// The file.
        path: PathBuf,
        /// The field path (`results[2].general.udid`) and the problem.
        error: FieldError,
    },
    /// The document exceeds a parsing limit ([`MAX_NESTING_DEPTH`], [`MAX_DOCUMENT_BYTES`]).
    #[error("{path}: {message}")]
    Limit {
        /// The file.
        path: PathBuf,
        /// Which limit, its value and what was found.
        message: String,
    },
    /// A lease file row is malformed.
    #[error("{path}:{line}: {message}")]
    Lease {
        /// The file.
        path: PathBuf,
        /// 1-based line of the row.
        line: u64,
        /// The column and the problem.
        message: String,
    },
}

/// `:line:column`, or nothing when the parser gave no position.
fn position(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}:{column}")
    }
}

/// Loads inventory files, each auto-detected by shape. Graph `mobileApps` catalogue files given in
/// the same call supply bundle IDs for the Graph `managedDevices` files; a catalogue alone is an
/// error. Fails on the first bad file, naming it.
pub fn load_inventory_files(paths: &[PathBuf]) -> Result<Vec<InventoryBatch>, InventoryError> {
    load_inventory_files_with(paths, &InventoryOptions::default())
}

/// [`load_inventory_files`] with the site's [`InventoryOptions`].
pub fn load_inventory_files_with(
    paths: &[PathBuf],
    options: &InventoryOptions,
) -> Result<Vec<InventoryBatch>, InventoryError> {
    let mut documents = Vec::with_capacity(paths.len());
    for path in paths {
        documents.push((path.clone(), read_structured(path)?));
    }
    parse_inventory_documents_with(documents, options)
}

/// Parses inventory documents already read (e.g. the pages a connector pulled and joined), each
/// named by its origin, as [`load_inventory_files_with`] parses files: shapes auto-detected, Graph
/// `mobileApps` catalogues among them giving bundle IDs to the `managedDevices` documents.
pub fn parse_inventory_documents_with(
    documents: Vec<(PathBuf, Value)>,
    options: &InventoryOptions,
) -> Result<Vec<InventoryBatch>, InventoryError> {
    let mut parsed = Vec::with_capacity(documents.len());
    let mut catalogue = MobileAppCatalogue::default();
    let paths: Vec<PathBuf> = documents.iter().map(|(p, _)| p.clone()).collect();
    for (path, value) in documents {
        let path = &path;
        let shape = detect::detect(&value).map_err(|message| InventoryError::UnknownShape {
            path: path.clone(),
            message,
        })?;
        if shape == InventoryShape::GraphMobileApps {
            catalogue
                .add_response(&value)
                .map_err(|error| InventoryError::Field {
                    path: path.clone(),
                    error,
                })?;
        } else {
            parsed.push((path.clone(), shape, value));
        }
    }
    if parsed.is_empty() {
        if let Some(first) = paths.first() {
            return Err(InventoryError::UnknownShape {
                path: first.clone(),
                message: "a Graph mobileApps catalogue lists apps, not devices; give it together \
                          with a Graph managedDevices file"
                    .to_string(),
            });
        }
    }
    parsed
        .into_iter()
        .map(|(path, shape, value)| parse_shape(&path, shape, &value, &catalogue, options))
        .collect()
}

/// Parses one inventory document held in memory (JSON or plist, shape auto-detected); `origin`
/// names it in errors and in the batch. A Graph `mobileApps` catalogue alone is refused (it
/// lists apps, not devices).
pub fn parse_inventory_bytes(
    bytes: &[u8],
    origin: &Path,
) -> Result<InventoryBatch, InventoryError> {
    parse_inventory_bytes_with(bytes, origin, &InventoryOptions::default())
}

/// [`parse_inventory_bytes`] with the site's [`InventoryOptions`].
pub fn parse_inventory_bytes_with(
    bytes: &[u8],
    origin: &Path,
    options: &InventoryOptions,
) -> Result<InventoryBatch, InventoryError> {
    let value = parse_structured(bytes, origin)?;
    let shape = detect::detect(&value).map_err(|message| InventoryError::UnknownShape {
        path: origin.to_path_buf(),
        message,
    })?;
    parse_shape(
        origin,
        shape,
        &value,
        &MobileAppCatalogue::default(),
        options,
    )
}

/// Loads one inventory file (see [`load_inventory_files`]).
pub fn load_inventory(path: &Path) -> Result<InventoryBatch, InventoryError> {
    let mut batches = load_inventory_files(&[path.to_path_buf()])?;
    batches.pop().ok_or_else(|| InventoryError::UnknownShape {
        path: path.to_path_buf(),
        message: "no devices".to_string(),
    })
}

fn parse_shape(
    path: &Path,
    shape: InventoryShape,
    value: &Value,
    catalogue: &MobileAppCatalogue,
    options: &InventoryOptions,
) -> Result<InventoryBatch, InventoryError> {
    let field_err = |error: FieldError| InventoryError::Field {
        path: path.to_path_buf(),
        error,
    };
    let mut warnings = Vec::new();
    let mut skipped = Vec::new();
    let (source, devices) = match shape {
        InventoryShape::JamfDetailList => (
            InventorySource::JamfPro,
            jamf::parse_detail_list(value, options, &mut warnings).map_err(field_err)?,
        ),
        InventoryShape::JamfDeviceDetail => (
            InventorySource::JamfPro,
            vec![jamf::parse_device_detail_with(value, options, &mut warnings).map_err(field_err)?],
        ),
        InventoryShape::GraphManagedDevices => (
            InventorySource::Intune,
            intune::parse_managed_devices(value, catalogue, &mut warnings, &mut skipped)
                .map_err(field_err)?,
        ),
        InventoryShape::AppleMdmResponses => (
            InventorySource::AppleMdm,
            apple_mdm::parse_responses(value, &mut warnings, &mut skipped).map_err(field_err)?,
        ),
        InventoryShape::GraphMobileApps => {
            return Err(InventoryError::UnknownShape {
                path: path.to_path_buf(),
                message: "a Graph mobileApps catalogue has no devices".to_string(),
            })
        }
    };
    let name = |w: String| format!("{}: {w}", path.display());
    let skipped: Vec<String> = skipped.into_iter().map(name).collect();
    let mut warnings: Vec<String> = warnings.into_iter().map(name).collect();
    warnings.extend(skipped.iter().cloned());
    Ok(InventoryBatch {
        source,
        path: path.to_path_buf(),
        devices,
        warnings,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_mac_normalisation() {
        assert_eq!(normalize_app_status("Managed"), "managed");
        assert_eq!(
            normalize_app_status("ManagedButUninstalled"),
            "managed_but_uninstalled"
        );
        assert_eq!(
            normalize_app_status("Managed but uninstalled"),
            "managed_but_uninstalled"
        );
        assert_eq!(normalize_app_status("UserInstalledApp"), "user_installed");
        assert_eq!(
            normalize_mac("A1B2C3D4E5F6").as_deref(),
            Some("a1:b2:c3:d4:e5:f6")
        );
        assert_eq!(
            normalize_mac("a1-b2-c3-d4-e5-f6").as_deref(),
            Some("a1:b2:c3:d4:e5:f6")
        );
        assert_eq!(normalize_mac("a1:b2"), None);
        assert_eq!(
            Ownership::from_mdm("PersonalDeviceProfile"),
            Ownership::Personal
        );
        assert_eq!(Ownership::from_mdm("company"), Ownership::Institutional);
    }
}
