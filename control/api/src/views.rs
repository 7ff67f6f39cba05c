//! The JSON shapes of the admin API (requests and responses), with their OpenAPI schemas, and the
//! conversions from the control plane's records.
//!
//! These are the API's contract: they change only with the API version. Timestamps are RFC 3339 strings.
//! This module must not reach into the store; it only converts values it is given.

use portolan_control::alert::Alert;
use portolan_control::audit::AuditEntry;
use portolan_control::device_state::{AppState, DeviceStateEvent, LockState};
use portolan_control::inventory::{Device, ManagedApp};
use portolan_control::learning::{BaselineProposal, ProposedPairing};
use portolan_control::roles::{ExceptionRule, PortRule, Role as ControlRole, UnlistedProtocols};
use portolan_control::store::{AlertAck, DeviceHistoryEntry, ImportSummary};
use portolan_control::timestamp::format_rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::control::AlertClosure;

/// What an inventory import changed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportResult {
    /// Import id.
    pub import_id: i64,
    /// Devices in the document.
    pub devices: usize,
    /// Devices new to the store.
    pub added: usize,
    /// Devices whose record was replaced (the old record is kept as history).
    pub replaced: usize,
    /// Replaced devices whose record changed.
    pub changed: usize,
    /// Replaced devices whose record is as before.
    pub unchanged: usize,
    /// UDIDs of devices of this source held before and absent from the document (kept).
    pub absent: Vec<String>,
    /// Records left out, each with its reason.
    pub skipped: Vec<String>,
    /// Values kept from the previous import because the document did not report them.
    pub kept: Vec<String>,
    /// Devices whose network address changed.
    pub address_changes: usize,
    /// Things skipped that did not stop the import.
    pub warnings: Vec<String>,
}

impl From<ImportSummary> for ImportResult {
    fn from(s: ImportSummary) -> Self {
        Self {
            import_id: s.import_id,
            devices: s.added + s.replaced,
            added: s.added,
            replaced: s.replaced,
            changed: s.changed,
            unchanged: s.unchanged,
            absent: s.absent,
            skipped: s.skipped,
            kept: s.kept,
            address_changes: s.address_changes,
            warnings: s.warnings,
        }
    }
}

/// The user an MDM assigns a device to (as the MDM reported it).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    /// Account name.
    pub username: Option<String>,
    /// Full name.
    pub real_name: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Department.
    pub department: Option<String>,
    /// Position or job title.
    pub position: Option<String>,
}

/// An app on a device.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AppView {
    /// Bundle identifier.
    pub bundle_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Version.
    pub version: Option<String>,
    /// Management status (`managed`, `user_installed`, ...).
    pub status: String,
}

impl From<&ManagedApp> for AppView {
    fn from(a: &ManagedApp) -> Self {
        Self {
            bundle_id: a.bundle_id.clone(),
            name: a.name.clone(),
            version: a.version.clone(),
            status: a.status.clone(),
        }
    }
}

/// A device from the MDM inventory.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceView {
    /// UDID.
    pub udid: String,
    /// Serial number.
    pub serial_number: Option<String>,
    /// Device name.
    pub name: Option<String>,
    /// Marketing model.
    pub model: Option<String>,
    /// Model identifier.
    pub model_identifier: Option<String>,
    /// OS name.
    pub os_name: Option<String>,
    /// OS version.
    pub os_version: Option<String>,
    /// Supervised.
    pub supervised: bool,
    /// Managed by the MDM.
    pub managed: bool,
    /// `institutional`, `personal` or `unknown`.
    pub ownership: String,
    /// Wi-Fi MAC.
    pub wifi_mac: Option<String>,
    /// IP address the MDM last saw.
    pub ip_address: Option<String>,
    /// Further (IPv6) addresses the MDM reports.
    pub ipv6_addresses: Vec<String>,
    /// The user the MDM assigns the device to.
    pub user: Option<UserView>,
    /// When the MDM last refreshed the record.
    pub reported_at: Option<String>,
    /// MDM format the record came from.
    pub source: String,
    /// Apps on the device.
    pub apps: Vec<AppView>,
}

impl From<&Device> for DeviceView {
    fn from(d: &Device) -> Self {
        Self {
            udid: d.udid.clone(),
            serial_number: d.serial_number.clone(),
            name: d.name.clone(),
            model: d.model.clone(),
            model_identifier: d.model_identifier.clone(),
            os_name: d.os_name.clone(),
            os_version: d.os_version.clone(),
            supervised: d.supervised,
            managed: d.managed,
            ownership: d.ownership.as_str().to_string(),
            wifi_mac: d.wifi_mac.clone(),
            ip_address: d.ip_address.map(|ip| ip.to_string()),
            ipv6_addresses: d.ipv6_addresses.iter().map(ToString::to_string).collect(),
            user: d.user.as_ref().map(|u| UserView {
                username: u.username.clone(),
                real_name: u.real_name.clone(),
                email: u.email.clone(),
                department: u.department.clone(),
                position: u.position.clone(),
            }),
            reported_at: d.reported_at_us.map(format_rfc3339),
            source: d.source.as_str().to_string(),
            apps: d.apps.iter().map(AppView::from).collect(),
        }
    }
}

/// A page of devices.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceList {
    /// Devices on this page, by UDID.
    pub devices: Vec<DeviceView>,
    /// Devices matching, over all pages.
    pub total: usize,
}

/// A replaced record of a device.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceHistoryView {
    /// When a re-import replaced it.
    pub replaced_at: String,
    /// The import that replaced it.
    pub import_id: i64,
    /// The record as it was.
    pub device: DeviceView,
}

impl From<&DeviceHistoryEntry> for DeviceHistoryView {
    fn from(h: &DeviceHistoryEntry) -> Self {
        Self {
            replaced_at: format_rfc3339(h.replaced_us),
            import_id: h.import_id,
            device: DeviceView::from(&h.device),
        }
    }
}

/// One state report of a device (lock and app state from the MDM's device state events).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceStateView {
    /// When the state was reported (RFC 3339, UTC).
    pub time: String,
    /// Screen locked or not, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_state: Option<LockStateInput>,
    /// The app's (or the front-most app's) state, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_state: Option<AppStateInput>,
    /// The app `app_state` is about (none: the device in general).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_id: Option<String>,
    /// The user's last interaction (RFC 3339, UTC), when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_user_interaction: Option<String>,
}

impl From<&DeviceStateEvent> for DeviceStateView {
    fn from(e: &DeviceStateEvent) -> Self {
        Self {
            time: format_rfc3339(e.ts_us),
            lock_state: e.lock_state.map(|l| match l {
                LockState::Locked => LockStateInput::Locked,
                LockState::Unlocked => LockStateInput::Unlocked,
            }),
            app_state: e.app_state.map(|a| match a {
                AppState::Foreground => AppStateInput::Foreground,
                AppState::Background => AppStateInput::Background,
            }),
            bundle_id: e.bundle_id.clone(),
            last_user_interaction: e.last_user_interaction_us.map(format_rfc3339),
        }
    }
}

/// A device with its record history and state reports.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceDetail {
    /// The current record.
    pub device: DeviceView,
    /// Records replaced by re-imports, oldest first.
    pub history: Vec<DeviceHistoryView>,
    /// Its lock/app state reports, oldest first (the device's state changes).
    #[serde(default)]
    pub states: Vec<DeviceStateView>,
}

/// Lock state of a device.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LockStateInput {
    /// Screen locked.
    Locked,
    /// Unlocked.
    Unlocked,
}

/// App state on a device.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AppStateInput {
    /// On screen.
    Foreground,
    /// Not on screen.
    Background,
}

/// One device state event (the body of `POST /device-states`, alone, in an array, or one per line).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceStateInput {
    /// When (RFC 3339 with offset).
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// Device UDID (this and/or `serial_number`).
    pub udid: Option<String>,
    /// Device serial number.
    pub serial_number: Option<String>,
    /// Lock state.
    pub lock_state: Option<LockStateInput>,
    /// App state.
    pub app_state: Option<AppStateInput>,
    /// The app `app_state` is about.
    pub bundle_id: Option<String>,
    /// Last user interaction (RFC 3339 with offset).
    #[schema(format = DateTime)]
    pub last_user_interaction: Option<String>,
}

/// Result of a device state batch.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceStatesAccepted {
    /// Events stored.
    pub accepted: usize,
}

/// Minimum severity filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeverityParam {
    /// Informational and above.
    Informational,
    /// Low and above.
    Low,
    /// Medium and above.
    Medium,
    /// High and above.
    High,
    /// Critical only.
    Critical,
}

/// One approved protocol → ports pairing of a baseline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PortRuleView {
    /// EVE `app_proto`.
    pub app_proto: String,
    /// `TCP`/`UDP`, absent for either.
    pub transport: Option<String>,
    /// Approved ports.
    pub ports: Vec<u16>,
    /// TLS reached by STARTTLS on these ports is approved too.
    pub starttls: bool,
}

impl From<&PortRule> for PortRuleView {
    fn from(r: &PortRule) -> Self {
        Self {
            app_proto: r.app_proto.clone(),
            transport: r.transport.clone(),
            ports: r.ports.clone(),
            starttls: r.starttls,
        }
    }
}

/// A role: its apps, their domains and its baseline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoleView {
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Bundle IDs in the role.
    pub bundle_ids: Vec<String>,
    /// Domain suffixes its apps talk to.
    pub domains: Vec<String>,
    /// `registry` (unlisted protocols judged by the device default baseline) or `deny`.
    pub unlisted_protocols: String,
    /// The baseline: approved pairings (from the roles file, then approved through the API).
    pub allow: Vec<PortRuleView>,
}

impl From<&ControlRole> for RoleView {
    fn from(r: &ControlRole) -> Self {
        Self {
            name: r.name.clone(),
            description: r.description.clone(),
            bundle_ids: r.bundle_ids.clone(),
            domains: r.domains.clone(),
            unlisted_protocols: match r.unlisted {
                UnlistedProtocols::Registry => "registry",
                UnlistedProtocols::Deny => "deny",
            }
            .to_string(),
            allow: r.rules.iter().map(PortRuleView::from).collect(),
        }
    }
}

/// What a role does with protocols its `allow` list does not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UnlistedInput {
    /// Judge them against the device default baseline (the port registry).
    Registry,
    /// Every unlisted protocol breaks the role's baseline.
    Deny,
}

/// One protocol → ports pairing of a role definition.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolePairingInput {
    /// EVE `app_proto`, e.g. `tls`.
    #[schema(min_length = 1, max_length = 64, pattern = "[^\\s\\u0085]")]
    pub app_proto: String,
    /// `TCP` or `UDP`; absent for either.
    pub transport: Option<TransportInput>,
    /// Approved ports.
    #[schema(min_items = 1, max_items = 64, inline)]
    pub ports: Vec<PortInput>,
    /// Also approve TLS reached by STARTTLS on these ports.
    #[serde(default)]
    pub starttls: bool,
}

/// Most bundle IDs, domains, pairings, and ports per pairing of a [`RoleDefinition`] (the document's
/// bounds keep every valid definition well under the body limit).
pub const ROLE_LIMITS: RoleLimits = RoleLimits {
    bundle_ids: 256,
    domains: 256,
    allow: 64,
    ports: 64,
    description: 4096,
};

/// Bounds of a [`RoleDefinition`].
#[derive(Debug, Clone, Copy)]
pub struct RoleLimits {
    /// Bundle IDs.
    pub bundle_ids: usize,
    /// Domains.
    pub domains: usize,
    /// Pairings.
    pub allow: usize,
    /// Ports per pairing.
    pub ports: usize,
    /// Characters of the description.
    pub description: usize,
}

/// A role as defined through the API (`PUT /api/v1/roles/{name}`), with the reason for the audit log.
/// It replaces the role of that name (from the roles file or the API) where it stands, or is added after
/// the others; pairings approved for the role through learning or `POST .../baseline` stay in force.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleDefinition {
    /// Why (written to the audit log).
    #[schema(min_length = 1, max_length = 4096, pattern = "[^\\s\\u0085]")]
    pub reason: String,
    /// Free text.
    #[schema(max_length = 4096)]
    pub description: Option<String>,
    /// Bundle IDs in the role (a trailing `*` matches a prefix).
    #[serde(default)]
    #[schema(max_items = 256, inline)]
    pub bundle_ids: Vec<BundleIdInput>,
    /// Domain suffixes its apps talk to (`*.` prefix allowed).
    #[serde(default)]
    #[schema(max_items = 256, inline)]
    pub domains: Vec<DomainInput>,
    /// The role's own pairings.
    #[serde(default)]
    #[schema(max_items = 64)]
    pub allow: Vec<RolePairingInput>,
    /// `registry` (default) or `deny`.
    pub unlisted_protocols: Option<UnlistedInput>,
}

/// A port number, 1 to 65535 (documented inline: `integer`, minimum 1, maximum 65535).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PortInput(#[serde(deserialize_with = "de_port")] pub u16);

impl utoipa::PartialSchema for PortInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .minimum(Some(1))
            .maximum(Some(65535))
            .into()
    }
}

impl ToSchema for PortInput {}

/// A bundle ID of a role definition (documented inline: 1 to 256 characters, not blank).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BundleIdInput(pub String);

impl utoipa::PartialSchema for BundleIdInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(256))
            .pattern(Some(crate::problem::NOT_BLANK_PATTERN))
            .into()
    }
}

impl ToSchema for BundleIdInput {}

/// A domain suffix of a role definition (documented inline: letters, digits, `.`, `-`, `_`, at least one
/// letter, optionally after `*.`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DomainInput(pub String);

/// The pattern of [`DomainInput`]; [`DomainInput::is_valid`] holds exactly when it matches.
pub const DOMAIN_PATTERN: &str = "^(\\*\\.)?[A-Za-z0-9._-]*[A-Za-z][A-Za-z0-9._-]*$";

impl DomainInput {
    /// True when the text matches [`DOMAIN_PATTERN`] and is at most 253 characters.
    pub fn is_valid(&self) -> bool {
        let rest = self.0.strip_prefix("*.").unwrap_or(&self.0);
        self.0.len() <= 253
            && rest.chars().any(|c| c.is_ascii_alphabetic())
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    }
}

impl utoipa::PartialSchema for DomainInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(253))
            .pattern(Some(DOMAIN_PATTERN))
            .into()
    }
}

impl ToSchema for DomainInput {}

impl RoleDefinition {
    /// The control plane's role named `name`.
    pub fn to_role(&self, name: &str) -> ControlRole {
        ControlRole {
            name: name.to_string(),
            description: self.description.clone(),
            bundle_ids: self
                .bundle_ids
                .iter()
                .map(|b| crate::problem::trim_blank(&b.0).to_string())
                .collect(),
            domains: self.domains.iter().map(|d| d.0.clone()).collect(),
            rules: self
                .allow
                .iter()
                .map(|p| PortRule {
                    app_proto: p.app_proto.clone(),
                    transport: p.transport.map(|t| t.as_str().to_string()),
                    ports: p.ports.iter().map(|p| p.0).collect(),
                    starttls: p.starttls,
                })
                .collect(),
            unlisted: match self.unlisted_protocols {
                Some(UnlistedInput::Deny) => UnlistedProtocols::Deny,
                _ => UnlistedProtocols::Registry,
            },
        }
    }
}

/// Every role.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoleList {
    /// Roles, in file order.
    pub roles: Vec<RoleView>,
}

/// Transport of a pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum TransportInput {
    /// TCP.
    #[serde(rename = "TCP", alias = "tcp")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP", alias = "udp")]
    Udp,
}

impl TransportInput {
    /// `TCP` or `UDP`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportInput::Tcp => "TCP",
            TransportInput::Udp => "UDP",
        }
    }
}

/// Accepts an integral JSON number (`978` or `978.0`, as JSON Schema's `integer` allows) as a `u16`.
fn integral_u16(v: f64) -> Option<u16> {
    (v.fract() == 0.0 && (0.0..=65535.0).contains(&v)).then_some(v as u16)
}

/// Deserializes a port given as any integral JSON number.
pub fn de_port<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let v = f64::deserialize(d)?;
    integral_u16(v).ok_or_else(|| serde::de::Error::custom(format!("{v} is not a port number")))
}

/// Deserializes a `u64` given as any integral JSON number (`7` or `7.0`, as JSON Schema's
/// `integer` allows); a float is exact up to 2^53.
pub fn de_whole_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|v| v.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(v))
                .map(|v| v as u64)
        })
        .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a whole number from 0")))
}

/// Deserializes a list of ports given as integral JSON numbers.
pub fn de_ports<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
    let vs = Vec::<f64>::deserialize(d)?;
    vs.into_iter()
        .map(|v| {
            integral_u16(v)
                .ok_or_else(|| serde::de::Error::custom(format!("{v} is not a port number")))
        })
        .collect()
}

/// A pairing to approve into a baseline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairingInput {
    /// EVE `app_proto`, e.g. `tls`.
    #[schema(min_length = 1, max_length = 64, pattern = "[^\\s\\u0085]")]
    pub app_proto: String,
    /// `TCP` or `UDP`; absent for either.
    pub transport: Option<TransportInput>,
    /// Destination port.
    #[schema(minimum = 1, maximum = 65535)]
    #[serde(deserialize_with = "de_port")]
    pub port: u16,
    /// Also approve TLS reached by STARTTLS on this port.
    #[serde(default)]
    pub starttls: bool,
}

/// A baseline change: pairings approved into a role (or `device-default`), with the reason.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BaselineChange {
    /// Why (written to the audit log).
    #[schema(min_length = 1, max_length = 4096, pattern = "[^\\s\\u0085]")]
    pub reason: String,
    /// Pairings to approve.
    #[schema(min_items = 1)]
    pub pairings: Vec<PairingInput>,
}

/// Kind of exception.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionKindView {
    /// Forward or transparent proxy.
    Proxy,
    /// Relay.
    Relay,
    /// Developer tooling destinations.
    DeveloperTooling,
    /// Anything else.
    Other,
}

/// A new exception. It needs `destinations` or `ports` (a blanket exception is refused).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExceptionInput {
    /// Unique id.
    #[schema(min_length = 1, max_length = 128, pattern = "[^\\s\\u0085]")]
    pub id: String,
    /// Kind.
    pub kind: ExceptionKindView,
    /// UDIDs or serial numbers; empty for every device.
    #[serde(default)]
    pub devices: Vec<String>,
    /// IPv4/IPv6 addresses or CIDR ranges, or domain suffixes (`*.` prefix allowed); empty for any.
    #[serde(default)]
    #[schema(inline, value_type = Vec<String>)]
    pub destinations: Vec<String>,
    /// Destination ports; empty for any.
    #[serde(default, deserialize_with = "de_ports")]
    #[schema(value_type = Vec<u16>)]
    pub ports: Vec<u16>,
    /// Protocols; empty for any.
    #[serde(default)]
    pub app_protos: Vec<String>,
    /// Why (also written to the audit log).
    #[schema(min_length = 1, max_length = 4096, pattern = "[^\\s\\u0085]")]
    pub reason: String,
    /// Who answers for it.
    #[schema(min_length = 1, max_length = 256, pattern = "[^\\s\\u0085]")]
    pub owner: String,
    /// Expiry (RFC 3339 with offset).
    #[schema(format = DateTime)]
    pub expires: String,
}

/// An exception in force.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExceptionView {
    /// Unique id.
    pub id: String,
    /// Kind.
    pub kind: ExceptionKindView,
    /// UDIDs or serial numbers; empty for every device.
    pub devices: Vec<String>,
    /// Destinations.
    pub destinations: Vec<String>,
    /// Ports.
    pub ports: Vec<u16>,
    /// Protocols.
    pub app_protos: Vec<String>,
    /// Why.
    pub reason: String,
    /// Who answers for it.
    pub owner: String,
    /// Expiry.
    pub expires: String,
    /// `file` (the roles file; change it there) or `api` (revocable here).
    pub origin: String,
}

impl ExceptionView {
    /// From a rule and where it was defined.
    pub fn new(e: &ExceptionRule, origin: &str) -> Self {
        use portolan_control::roles::ExceptionKind as K;
        Self {
            id: e.id.clone(),
            kind: match e.kind {
                K::Proxy => ExceptionKindView::Proxy,
                K::Relay => ExceptionKindView::Relay,
                K::DeveloperTooling => ExceptionKindView::DeveloperTooling,
                K::Other => ExceptionKindView::Other,
            },
            devices: e.devices.clone(),
            destinations: e.destinations.iter().cloned().map(String::from).collect(),
            ports: e.ports.clone(),
            app_protos: e.app_protos.clone(),
            reason: e.reason.clone(),
            owner: e.owner.clone(),
            expires: format_rfc3339(e.expires_us),
            origin: origin.to_string(),
        }
    }
}

/// Every exception.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExceptionList {
    /// Exceptions, file ones first.
    pub exceptions: Vec<ExceptionView>,
}

/// A pairing seen while learning.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProposedPairingView {
    /// Protocol.
    pub app_proto: String,
    /// Transport.
    pub transport: String,
    /// Port.
    pub port: u16,
    /// Sessions counted in the window.
    pub sessions: u64,
    /// First bucket it was seen in.
    pub first_seen: String,
    /// Last bucket it was seen in.
    pub last_seen: String,
    /// Already approved for the role.
    pub already_approved: bool,
    /// Proposed for approval (not approved, not rejected, and seen often enough).
    pub proposed: bool,
    /// Who rejected it, when and why (`POST /learning/proposals/{id}/reject`); absent when not rejected.
    pub rejected: Option<AlertNoteView>,
}

impl From<&ProposedPairing> for ProposedPairingView {
    fn from(p: &ProposedPairing) -> Self {
        Self {
            app_proto: p.app_proto.clone(),
            transport: p.transport.clone(),
            port: p.port,
            sessions: p.sessions,
            first_seen: format_rfc3339(p.first_seen_us),
            last_seen: format_rfc3339(p.last_seen_us),
            already_approved: p.already_approved,
            proposed: p.proposed,
            rejected: p.rejected.as_ref().map(|r| AlertNoteView {
                at: format_rfc3339(r.ts_us),
                by: r.actor.clone(),
                note: r.reason.clone(),
            }),
        }
    }
}

/// A proposed baseline for one role over the window.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProposalView {
    /// Proposal id: the role name (approve with `POST /learning/proposals/{id}/approve`).
    pub id: String,
    /// Role (or `device-default`).
    pub role: String,
    /// Pairings seen, most sessions first.
    pub pairings: Vec<ProposedPairingView>,
}

impl From<&BaselineProposal> for ProposalView {
    fn from(p: &BaselineProposal) -> Self {
        Self {
            id: p.role.clone(),
            role: p.role.clone(),
            pairings: p.pairings.iter().map(ProposedPairingView::from).collect(),
        }
    }
}

/// Proposals over a window.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProposalList {
    /// Window start.
    pub window_from: String,
    /// Window end.
    pub window_to: String,
    /// One proposal per role with counts.
    pub proposals: Vec<ProposalView>,
}

/// Approval (or rejection) of a learning proposal.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposalApproval {
    /// Why (written to the audit log).
    #[schema(min_length = 1, max_length = 4096, pattern = "[^\\s\\u0085]")]
    pub reason: String,
    /// Pairings to approve (or reject); absent for every pairing the proposal marks `proposed`.
    pub pairings: Option<Vec<PairingInput>>,
    /// Window start the proposal was computed over (RFC 3339); default 7 days ago.
    #[schema(format = DateTime)]
    pub since: Option<String>,
    /// Window end (RFC 3339); default now.
    #[schema(format = DateTime)]
    pub until: Option<String>,
}

/// Lifecycle of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// Not yet looked at.
    Open,
    /// Acknowledged by an analyst.
    Acknowledged,
    /// Closed by an analyst.
    Closed,
}

/// Who changed an alert's state, when and why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertNoteView {
    /// When.
    pub at: String,
    /// Who (`token:<id> (<label>)`).
    pub by: String,
    /// Note.
    pub note: String,
}

/// A finding as the store holds it now: its sessions so far (an open session's duration grows
/// with the dataplane's interim updates), persistence, score and reasons.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FindingView {
    /// Finding id.
    pub id: i64,
    /// Device (UDID, or `ip:` address) | app or role | protocol | destination | port.
    pub key: String,
    /// Sessions in the current window.
    pub sessions: u64,
    /// First session start.
    pub first_seen: String,
    /// Latest session end (so far, for an open session).
    pub last_seen: String,
    /// Longest session, seconds (so far, for an open session).
    pub longest_session_s: f64,
    /// Total connected time, seconds.
    pub connected_s: f64,
    /// Bytes client → server.
    pub bytes_toserver: u64,
    /// Bytes server → client.
    pub bytes_toclient: u64,
    /// Mean gap between session starts, seconds.
    pub interval_s: Option<f64>,
    /// Score, 0..100.
    pub score: f64,
    /// `informational`, `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// Why the score is what it is.
    pub reasons: Vec<String>,
    /// Alerts raised.
    pub alerts: u64,
}

impl FindingView {
    /// From a stored finding.
    pub fn new(f: &portolan_control::findings::Finding) -> Self {
        Self {
            id: f.id,
            key: f.key.as_text(),
            sessions: f.sessions,
            first_seen: format_rfc3339(f.first_seen_us),
            last_seen: format_rfc3339(f.last_seen_us),
            longest_session_s: f.longest_session_us as f64 / 1e6,
            connected_s: f.connected_us as f64 / 1e6,
            bytes_toserver: f.bytes_toserver,
            bytes_toclient: f.bytes_toclient,
            interval_s: f.interval_seconds(),
            score: f.score,
            severity: f.severity.as_str().to_string(),
            reasons: f.reasons.clone(),
            alerts: f.alerts,
        }
    }
}

/// An alert with its evidence.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertView {
    /// Alert id.
    pub id: i64,
    /// Finding it belongs to.
    pub finding_id: i64,
    /// When it was raised.
    pub time: String,
    /// `informational`, `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// Score.
    pub score: f64,
    /// Confidence of the attribution, 0..1.
    pub confidence: f64,
    /// Signature id.
    pub signature_id: u32,
    /// Signature text.
    pub signature: String,
    /// Category.
    pub category: String,
    /// Device UDID, when the device is in the inventory.
    pub device_udid: Option<String>,
    /// Device serial number.
    pub device_serial_number: Option<String>,
    /// App bundle ID, when attributed.
    pub bundle_id: Option<String>,
    /// Role whose baseline was broken (or `device-default`).
    pub role: String,
    /// Application protocol.
    pub app_proto: String,
    /// Transport.
    pub transport: String,
    /// Client address.
    pub src_ip: String,
    /// Server address.
    pub dest_ip: String,
    /// Server port.
    pub dest_port: u16,
    /// Why the score is what it is.
    pub reasons: Vec<String>,
    /// Lifecycle state.
    pub status: AlertStatus,
    /// Acknowledgement.
    pub acknowledged: Option<AlertNoteView>,
    /// Closure.
    pub closed: Option<AlertNoteView>,
    /// Escalation, while escalated.
    #[serde(default)]
    pub escalated: Option<AlertNoteView>,
    /// Comments (retracted ones left out), oldest first.
    #[serde(default)]
    pub comments: Vec<CommentView>,
    /// The full alert record: flow, device, app, baseline, device state, persistence.
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
}

impl AlertView {
    /// From a stored alert, its acknowledgement and its closure.
    pub fn new(a: &Alert, ack: Option<&AlertAck>, closure: Option<&AlertClosure>) -> Self {
        let status = if closure.is_some() {
            AlertStatus::Closed
        } else if ack.is_some() {
            AlertStatus::Acknowledged
        } else {
            AlertStatus::Open
        };
        Self {
            id: a.id,
            finding_id: a.finding_id,
            time: format_rfc3339(a.ts_us),
            severity: a.severity.caption().to_ascii_lowercase(),
            score: a.score,
            confidence: a.confidence,
            signature_id: a.signature.signature_id,
            signature: a.signature.signature.clone(),
            category: a.signature.category.clone(),
            device_udid: a.device.udid.clone(),
            device_serial_number: a.device.serial_number.clone(),
            bundle_id: a.app.bundle_id.clone(),
            role: a.baseline.role.clone(),
            app_proto: a.flow.app_proto.clone(),
            transport: a.flow.transport.clone(),
            src_ip: a.flow.src_ip.to_string(),
            dest_ip: a.flow.dest_ip.to_string(),
            dest_port: a.flow.dest_port,
            reasons: a.reasons.clone(),
            status,
            acknowledged: ack.map(|k| AlertNoteView {
                at: format_rfc3339(k.ts_us),
                by: k.actor.clone(),
                note: k.note.clone(),
            }),
            closed: closure.map(|c| AlertNoteView {
                at: format_rfc3339(c.ts_us),
                by: c.actor.clone(),
                note: c.note.clone(),
            }),
            escalated: None,
            comments: Vec::new(),
            evidence: serde_json::to_value(a).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// A page of alerts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertList {
    /// Alerts on this page, oldest first.
    pub alerts: Vec<AlertView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A note for acknowledging or closing an alert.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertNote {
    /// Why (written to the alert and the audit log).
    #[schema(min_length = 1, max_length = 4096, pattern = "[^\\s\\u0085]")]
    pub note: String,
}

/// A comment on an alert.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommentView {
    /// Comment id (to retract it with `POST .../undo`).
    pub id: i64,
    /// When.
    pub at: String,
    /// Who.
    pub by: String,
    /// The text.
    pub text: String,
}

/// A comment to add to an alert.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentInput {
    /// The text (also the audit entry's reason).
    #[schema(min_length = 1, max_length = 4096, pattern = "[^\\s\\u0085]")]
    pub text: String,
}

/// Which triage act `POST /alerts/{id}/undo` undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UndoAction {
    /// The acknowledgement (the alert must not be closed).
    Acknowledge,
    /// The closure (the alert is reopened and stays acknowledged).
    Close,
    /// The escalation.
    Escalate,
    /// A comment (`comment_id` names it).
    Comment,
}

/// Undo of one triage act.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UndoInput {
    /// What to undo.
    pub action: UndoAction,
    /// The comment to retract (with `action: comment` only).
    #[serde(default)]
    pub comment_id: Option<i64>,
    /// Why (audit log).
    #[schema(min_length = 1, max_length = 4096, pattern = "[^\\s\\u0085]")]
    pub note: String,
}

/// Alerts of one device × app × protocol × port.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertGroupView {
    /// Stable key of the group (device, app, protocol, transport, port).
    pub key: String,
    /// Device UDID (absent for a device not in the inventory).
    pub device_udid: Option<String>,
    /// Device name from the MDM.
    pub device_name: Option<String>,
    /// Client address of the newest alert (the device when it is not in the inventory).
    pub src_ip: String,
    /// App bundle ID, when attributed.
    pub bundle_id: Option<String>,
    /// Role whose baseline was broken (or `device-default`).
    pub role: String,
    /// Application protocol.
    pub app_proto: String,
    /// Transport.
    pub transport: String,
    /// Server port.
    pub dest_port: u16,
    /// Alerts in the group (matching the filter).
    pub count: usize,
    /// Of which open (neither acknowledged nor closed).
    pub open: usize,
    /// Of which escalated.
    pub escalated: usize,
    /// Earliest alert time.
    pub first_seen: String,
    /// Latest alert time.
    pub last_seen: String,
    /// Highest score.
    pub score: f64,
    /// Highest severity.
    pub severity: String,
    /// Server name (SNI, Host or DNS) of the newest alert, when seen.
    pub server_name: Option<String>,
    /// Ids of the alerts, newest first.
    pub alert_ids: Vec<i64>,
    /// The newest alert's id.
    pub latest_alert_id: i64,
}

/// Alert groups, highest score first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertGroupList {
    /// The groups.
    pub groups: Vec<AlertGroupView>,
    /// Alerts matching the filter, in all groups.
    pub alerts: usize,
}

/// What an exception would have suppressed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RetroImpact {
    /// Alerts raised in the window that the exception covers.
    pub would_suppress: usize,
    /// Alerts raised in the window.
    pub alerts_in_window: usize,
    /// Window start.
    pub window_from: String,
    /// Window end.
    pub window_to: String,
    /// Ids of up to 100 covered alerts, newest first.
    pub alert_ids: Vec<i64>,
}

/// One audit log entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    /// Entry id.
    pub id: i64,
    /// When.
    pub time: String,
    /// Who.
    pub actor: String,
    /// What (`baseline_approved`, `exception_added`, ...).
    pub action: String,
    /// On what.
    pub target: String,
    /// The change itself.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// Why.
    pub reason: String,
}

impl From<&AuditEntry> for AuditView {
    fn from(e: &AuditEntry) -> Self {
        Self {
            id: e.id,
            time: format_rfc3339(e.ts_us),
            actor: e.actor.clone(),
            action: e.action.as_str().to_string(),
            target: e.target.clone(),
            detail: e.detail.clone(),
            reason: e.reason.clone(),
        }
    }
}

impl AuditView {
    /// The entry as a non-admin sees it: every absolute server path in the target, reason and
    /// detail is cut to its file name (`/var/lib/portolan/inputs/jamf.json` → `jamf.json`).
    pub fn without_server_paths(mut self) -> Self {
        self.target = strip_paths(&self.target);
        self.reason = strip_paths(&self.reason);
        strip_paths_in(&mut self.detail);
        self
    }
}

/// Cuts every absolute path in `text` to its last component, spaces included:
/// `import of /srv/MDM exports/jamf 2024.json failed` → `import of jamf 2024.json failed`.
///
/// A path starts at a `/` that begins a word (at the start, or after whitespace or one of
/// `( [ " ' =`) and is followed by a non-space. Its directories end at its last `/` before the
/// next such start, a line break or tab, or one of `) ] " ' ;`: a path may hold spaces, so
/// everything up to that slash is taken as directories (a viewer sees at most less, never a
/// directory name).
pub(crate) fn strip_paths(text: &str) -> String {
    // Every byte compared below is ASCII, so each index found is a char boundary.
    let bytes = text.as_bytes();
    let starts_path = |i: usize| {
        bytes[i] == b'/'
            && (i == 0
                || matches!(
                    bytes[i - 1],
                    b' ' | b'\t' | b'\n' | b'(' | b'[' | b'"' | b'\'' | b'='
                ))
            && bytes.get(i + 1).is_some_and(|b| !b.is_ascii_whitespace())
    };
    let ends_path = |b: u8| matches!(b, b'\n' | b'\t' | b')' | b']' | b'"' | b'\'' | b';');
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !starts_path(i) {
            i += 1;
            continue;
        }
        let end = (i + 1..bytes.len())
            .find(|&j| ends_path(bytes[j]) || starts_path(j))
            .unwrap_or(bytes.len());
        // The region starts with `/`, so it has a last slash.
        let last = i + text[i..end].rfind('/').unwrap_or(0);
        out.push_str(&text[copied..i]);
        copied = last + 1;
        i = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// [`strip_paths`] on every string of a JSON value (an explicit stack: no recursion).
fn strip_paths_in(value: &mut serde_json::Value) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::String(s) => *s = strip_paths(s),
            serde_json::Value::Array(items) => stack.extend(items.iter_mut()),
            serde_json::Value::Object(map) => stack.extend(map.values_mut()),
            _ => {}
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditList {
    /// Entries, oldest first.
    pub entries: Vec<AuditView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// What a reload loaded.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReloadSummary {
    /// Roles defined.
    pub roles: usize,
    /// Exceptions in force (file and API).
    pub exceptions: usize,
    /// Approved pairings or exceptions skipped, with why.
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod path_tests {
    use super::strip_paths;

    #[test]
    fn absolute_paths_become_file_names() {
        assert_eq!(strip_paths("/var/lib/portolan/in/jamf.json"), "jamf.json");
        assert_eq!(
            strip_paths("inventory import from /srv/x/y.plist kept"),
            "inventory import from y.plist kept"
        );
        assert_eq!(strip_paths("request body"), "request body");
        assert_eq!(strip_paths("api-uploads/a.json"), "api-uploads/a.json");
    }

    #[test]
    fn paths_with_spaces_are_cut_whole() {
        assert_eq!(
            strip_paths("/srv/MDM exports/jamf 2024.json"),
            "jamf 2024.json"
        );
        assert_eq!(
            strip_paths("import of /srv/MDM exports/jamf 2024.json failed"),
            "import of jamf 2024.json failed"
        );
        assert_eq!(
            strip_paths("/srv/a b/x.json and /home/c d/y.csv"),
            "x.json and y.csv"
        );
        assert_eq!(
            strip_paths("see (/etc/portolan dir/roles.toml); then \"/var/x y/z\""),
            "see (roles.toml); then \"z\""
        );
        assert_eq!(strip_paths("a / b and/or c"), "a / b and/or c");
        assert_eq!(
            strip_paths("https://example.com/x"),
            "https://example.com/x"
        );
        assert_eq!(strip_paths("/"), "/");
        assert_eq!(strip_paths("é /dir ü/ñ.json"), "é ñ.json");
    }
}
