//! The device/app catalogue (`data/catalogue.toml`): loading, validation and the lookups the
//! planner needs (host addresses, ports, profiles).
//!
//! Owns: the catalogue's schema and every check on it, so later stages can index it without
//! failing. Must not: draw random numbers (host addresses are a hash of the host name, so a host
//! has the same addresses in the DNS answers and in the flows of every capture).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::SynthError;

/// The catalogue shipped with the crate.
pub const DEFAULT_CATALOGUE: &str = include_str!("../data/catalogue.toml");

/// Application protocols the generator can put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppProto {
    /// TLS over TCP (1.2 or 1.3).
    Tls,
    /// QUIC v1 over UDP.
    Quic,
    /// Plain HTTP/1.1.
    Http,
    /// DNS over UDP.
    Dns,
    /// SSH-2.
    Ssh,
    /// MQTT 3.1.1 without TLS.
    Mqtt,
    /// Apple Push Notification service: TLS to the courier hosts.
    Apns,
    /// IMAP upgraded with STARTTLS.
    Imap,
    /// SMTP submission upgraded with STARTTLS.
    Smtp,
    /// NTPv4.
    Ntp,
    /// STUN binding requests.
    Stun,
}

impl AppProto {
    /// Every protocol, in the order used for mixes and reports.
    pub const ALL: [AppProto; 11] = [
        AppProto::Tls,
        AppProto::Quic,
        AppProto::Http,
        AppProto::Dns,
        AppProto::Ssh,
        AppProto::Mqtt,
        AppProto::Apns,
        AppProto::Imap,
        AppProto::Smtp,
        AppProto::Ntp,
        AppProto::Stun,
    ];

    /// Catalogue / command-line name.
    pub fn name(self) -> &'static str {
        match self {
            AppProto::Tls => "tls",
            AppProto::Quic => "quic",
            AppProto::Http => "http",
            AppProto::Dns => "dns",
            AppProto::Ssh => "ssh",
            AppProto::Mqtt => "mqtt",
            AppProto::Apns => "apns",
            AppProto::Imap => "imap",
            AppProto::Smtp => "smtp",
            AppProto::Ntp => "ntp",
            AppProto::Stun => "stun",
        }
    }

    /// The protocol named `s`.
    pub fn from_name(s: &str) -> Option<AppProto> {
        AppProto::ALL.into_iter().find(|p| p.name() == s)
    }

    /// What a protocol identifier sees on the wire (the ground truth's `app_proto`): APNs is TLS.
    pub fn wire_name(self) -> &'static str {
        match self {
            AppProto::Apns => "tls",
            p => p.name(),
        }
    }

    /// True for the protocols carried over UDP.
    pub fn is_udp(self) -> bool {
        matches!(
            self,
            AppProto::Quic | AppProto::Dns | AppProto::Ntp | AppProto::Stun
        )
    }
}

/// An IPv4 or IPv6 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub len: u8,
}

impl Prefix {
    /// Parses `a.b.c.d/n` or `x:y::/n`.
    pub fn parse(s: &str) -> Option<Prefix> {
        let (a, l) = s.split_once('/')?;
        let addr: IpAddr = a.trim().parse().ok()?;
        let len: u8 = l.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (len <= max).then_some(Prefix { addr, len })
    }

    /// Number of host bits.
    pub fn host_bits(&self) -> u32 {
        let max = if self.addr.is_ipv4() { 32 } else { 128 };
        max - self.len as u32
    }

    /// The address at host offset `n` (taken modulo the prefix size).
    pub fn nth(&self, n: u128) -> IpAddr {
        let bits = self.host_bits();
        let off = if bits >= 128 { n } else { n % (1u128 << bits) };
        match self.addr {
            IpAddr::V4(a) => {
                let mask = if bits >= 32 { 0 } else { u32::MAX << bits };
                IpAddr::V4(Ipv4Addr::from((u32::from(a) & mask) | off as u32))
            }
            IpAddr::V6(a) => {
                let mask = if bits >= 128 { 0 } else { u128::MAX << bits };
                IpAddr::V6(Ipv6Addr::from((u128::from(a) & mask) | off))
            }
        }
    }
}

/// `[network]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Prefix device IPv4 addresses come from.
    pub device_ipv4_prefix: String,
    /// Prefix each device's IPv6 /64 comes from.
    pub device_ipv6_prefix: String,
    /// MAC address of the default gateway.
    pub gateway_mac: String,
    /// OUIs device MAC addresses are drawn from.
    pub device_mac_ouis: Vec<String>,
    /// IPv4 DNS resolvers.
    pub dns_resolvers_v4: Vec<String>,
    /// IPv6 DNS resolvers.
    pub dns_resolvers_v6: Vec<String>,
    /// The site's public IPv4 address after NAT (STUN answers).
    pub nat_public_ipv4: String,
}

/// `[protocols.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolPorts {
    /// Ports where the protocol is expected.
    pub standard_ports: Vec<u16>,
    /// Ports used for flows put on a non-standard port.
    pub nonstandard_ports: Vec<u16>,
}

/// `[profiles.NAME]`: size and timing bounds of a connection's exchanges.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Number of request/response exchanges (min, max).
    pub exchanges: [u32; 2],
    /// Request size in bytes (min, max), log-uniform.
    pub request_bytes: [u64; 2],
    /// Response size in bytes (min, max), log-uniform.
    pub response_bytes: [u64; 2],
    /// Pause before each request in milliseconds (min, max), log-uniform.
    pub think_ms: [u64; 2],
}

/// `[providers.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// IPv4 blocks.
    pub ipv4: Vec<String>,
    /// IPv6 blocks (may be empty).
    pub ipv6: Vec<String>,
    /// Certificate issuer CN.
    pub issuer_cn: String,
    /// Certificate issuer organisation.
    pub issuer_o: String,
    /// Parsed `ipv4` (filled by validation).
    #[serde(skip)]
    pub v4: Vec<Prefix>,
    /// Parsed `ipv6` (filled by validation).
    #[serde(skip)]
    pub v6: Vec<Prefix>,
}

/// `[[os_versions]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsVersion {
    /// iOS version, e.g. `17.2.1`.
    pub version: String,
    /// Build, e.g. `21C66`.
    pub build: String,
    /// CFNetwork version for User-Agents.
    pub cfnetwork: String,
    /// Darwin version for User-Agents.
    pub darwin: String,
    /// Relative share of devices.
    pub weight: f64,
}

/// `[[models]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Marketing name.
    pub name: String,
    /// Model identifier, e.g. `iPhone16,1`.
    pub identifier: String,
    /// `iPhone` or `iPad`.
    pub kind: String,
    /// First UDID group (8 hex digits).
    pub chip_id: String,
    /// Relative share of devices.
    pub weight: f64,
}

/// `[[roles]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Role name (ground truth `role`, inventory department).
    pub name: String,
    /// Relative share of devices.
    pub weight: f64,
    /// Bundle IDs installed on every device of the role.
    pub apps: Vec<String>,
}

/// One host an app talks to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Host name (SNI, HTTP Host, DNS question); `{n}` becomes 1..=50.
    pub host: String,
    /// Protocol.
    pub proto: AppProto,
    /// Key into `[providers]`.
    pub provider: String,
    /// Key into `[profiles]`.
    pub profile: String,
    /// Relative share among the app's endpoints.
    pub weight: f64,
    /// ALPN list for TLS/QUIC (default: h2, http/1.1 for TLS; h3 for QUIC; none for APNs).
    #[serde(default)]
    pub alpn: Option<Vec<String>>,
    /// `1.2` or `1.3` (default: mostly 1.3).
    #[serde(default)]
    pub tls: Option<String>,
    /// Ports this endpoint uses when its flow is put on a non-standard port.
    #[serde(default)]
    pub alt_ports: Vec<u16>,
    /// HTTP request paths.
    #[serde(default)]
    pub paths: Vec<String>,
}

/// `[[apps]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// Bundle identifier.
    pub bundle_id: String,
    /// Display name.
    pub name: String,
    /// CFBundleVersion.
    pub version: String,
    /// CFBundleShortVersionString.
    pub short_version: String,
    /// An iOS daemon: on every device, not inventoried, no foreground sessions.
    #[serde(default)]
    pub system: bool,
    /// Installed and managed by the MDM.
    #[serde(default)]
    pub managed: bool,
    /// Share of devices that have it without their role requiring it.
    #[serde(default)]
    pub install_share: f64,
    /// Relative share of flows.
    pub weight: f64,
    /// Product token for the User-Agent (`NAME/short_version CFNetwork/... Darwin/...`).
    pub ua_name: String,
    /// Hosts the app talks to.
    pub endpoints: Vec<Endpoint>,
}

/// The whole catalogue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// Addressing.
    pub network: Network,
    /// Default protocol mix: relative share of flows per protocol name.
    pub mix: BTreeMap<String, f64>,
    /// Ports per protocol, keyed by protocol name.
    pub protocols: BTreeMap<String, ProtocolPorts>,
    /// Traffic profiles.
    pub profiles: BTreeMap<String, Profile>,
    /// Server address blocks.
    pub providers: BTreeMap<String, Provider>,
    /// iOS versions.
    pub os_versions: Vec<OsVersion>,
    /// Device models.
    pub models: Vec<Model>,
    /// Device roles.
    pub roles: Vec<Role>,
    /// Apps and daemons.
    pub apps: Vec<App>,
    /// Parsed network fields (filled by validation).
    #[serde(skip)]
    pub parsed: ParsedNetwork,
}

/// The `[network]` fields parsed into addresses.
#[derive(Debug, Clone, Default)]
pub struct ParsedNetwork {
    /// Device IPv4 prefix.
    pub device_v4: Option<Prefix>,
    /// Device IPv6 prefix.
    pub device_v6: Option<Prefix>,
    /// Gateway MAC.
    pub gateway_mac: [u8; 6],
    /// Device OUIs.
    pub ouis: Vec<[u8; 3]>,
    /// IPv4 resolvers.
    pub resolvers_v4: Vec<IpAddr>,
    /// IPv6 resolvers.
    pub resolvers_v6: Vec<IpAddr>,
    /// NAT public address.
    pub nat_public: Option<Ipv4Addr>,
}

fn parse_mac(s: &str) -> Option<Vec<u8>> {
    s.split(':')
        .map(|h| u8::from_str_radix(h, 16).ok())
        .collect()
}

impl Catalogue {
    /// Loads and validates the catalogue at `path`, or the built-in one when `None`.
    pub fn load(path: Option<&Path>) -> Result<Catalogue, SynthError> {
        let (text, name) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|e| SynthError::Io(p.to_path_buf(), e))?,
                p.display().to_string(),
            ),
            None => (
                DEFAULT_CATALOGUE.to_string(),
                "built-in catalogue".to_string(),
            ),
        };
        Catalogue::parse(&text, &name)
    }

    /// Parses and validates catalogue text; `name` labels errors.
    pub fn parse(text: &str, name: &str) -> Result<Catalogue, SynthError> {
        let bad = |why: String| SynthError::Catalogue(name.to_string(), why);
        let mut c: Catalogue = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let n = &c.network;
        let mut p = ParsedNetwork {
            device_v4: Prefix::parse(&n.device_ipv4_prefix)
                .filter(|p| p.addr.is_ipv4() && p.host_bits() >= 8),
            device_v6: Prefix::parse(&n.device_ipv6_prefix)
                .filter(|p| p.addr.is_ipv6() && p.len <= 64),
            ..ParsedNetwork::default()
        };
        if p.device_v4.is_none() {
            return Err(bad(
                "network.device_ipv4_prefix must be an IPv4 prefix of /24 or shorter".into(),
            ));
        }
        if p.device_v6.is_none() {
            return Err(bad(
                "network.device_ipv6_prefix must be an IPv6 prefix of /64 or shorter".into(),
            ));
        }
        p.gateway_mac = parse_mac(&n.gateway_mac)
            .and_then(|v| <[u8; 6]>::try_from(v).ok())
            .ok_or_else(|| {
                bad(format!(
                    "network.gateway_mac {:?} is not a MAC address",
                    n.gateway_mac
                ))
            })?;
        for o in &n.device_mac_ouis {
            let v = parse_mac(o)
                .and_then(|v| <[u8; 3]>::try_from(v).ok())
                .ok_or_else(|| bad(format!("network.device_mac_ouis: {o:?} is not an OUI")))?;
            p.ouis.push(v);
        }
        if p.ouis.is_empty() {
            return Err(bad("network.device_mac_ouis is empty".into()));
        }
        for (list, out, v6) in [
            (&n.dns_resolvers_v4, &mut p.resolvers_v4, false),
            (&n.dns_resolvers_v6, &mut p.resolvers_v6, true),
        ] {
            for r in list {
                let a: IpAddr = r
                    .parse()
                    .map_err(|_| bad(format!("network: resolver {r:?} is not an address")))?;
                if a.is_ipv6() != v6 {
                    return Err(bad(format!("network: resolver {r:?} is in the wrong list")));
                }
                out.push(a);
            }
        }
        if p.resolvers_v4.is_empty() {
            return Err(bad("network.dns_resolvers_v4 is empty".into()));
        }
        p.nat_public = Some(n.nat_public_ipv4.parse().map_err(|_| {
            bad(format!(
                "network.nat_public_ipv4 {:?} is not an IPv4 address",
                n.nat_public_ipv4
            ))
        })?);
        c.parsed = p;
        for proto in AppProto::ALL {
            match c.protocols.get(proto.name()) {
                Some(pp) if !pp.standard_ports.is_empty() => {}
                _ => {
                    return Err(bad(format!(
                        "protocols.{} with at least one standard port is missing",
                        proto.name()
                    )))
                }
            }
        }
        for (k, w) in &c.mix {
            if AppProto::from_name(k).is_none() || !(w.is_finite() && *w >= 0.0) {
                return Err(bad(format!("mix.{k}: unknown protocol or negative share")));
            }
        }
        for m in &c.models {
            if m.chip_id.len() != 8 || !m.chip_id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(format!(
                    "model {}: chip_id must be 8 hex digits",
                    m.identifier
                )));
            }
        }
        for (k, prof) in &c.profiles {
            if prof.exchanges[0] == 0
                || prof.exchanges[0] > prof.exchanges[1]
                || prof.request_bytes[0] > prof.request_bytes[1]
                || prof.response_bytes[0] > prof.response_bytes[1]
                || prof.think_ms[0] > prof.think_ms[1]
            {
                return Err(bad(format!(
                    "profiles.{k}: each [min, max] needs min <= max and at least one exchange"
                )));
            }
        }
        for (k, prov) in c.providers.iter_mut() {
            for s in &prov.ipv4 {
                let pf = Prefix::parse(s).filter(|p| p.addr.is_ipv4());
                prov.v4.push(
                    pf.ok_or_else(|| bad(format!("providers.{k}: {s:?} is not an IPv4 prefix")))?,
                );
            }
            for s in &prov.ipv6 {
                let pf = Prefix::parse(s).filter(|p| p.addr.is_ipv6());
                prov.v6.push(
                    pf.ok_or_else(|| bad(format!("providers.{k}: {s:?} is not an IPv6 prefix")))?,
                );
            }
            if prov.v4.is_empty() {
                return Err(bad(format!("providers.{k} has no IPv4 block")));
            }
        }
        if c.os_versions.is_empty()
            || c.models.is_empty()
            || c.roles.is_empty()
            || c.apps.is_empty()
        {
            return Err(bad(
                "os_versions, models, roles and apps must each have an entry".into(),
            ));
        }
        let weights = c
            .os_versions
            .iter()
            .map(|o| o.weight)
            .chain(c.models.iter().map(|m| m.weight))
            .chain(c.roles.iter().map(|r| r.weight))
            .chain(c.apps.iter().map(|a| a.weight))
            .chain(
                c.apps
                    .iter()
                    .flat_map(|a| a.endpoints.iter().map(|e| e.weight)),
            );
        for w in weights {
            if !(w.is_finite() && w >= 0.0) {
                return Err(bad(format!("weight {w} is not a non-negative number")));
            }
        }
        for r in &c.roles {
            for b in &r.apps {
                if !c.apps.iter().any(|a| &a.bundle_id == b) {
                    return Err(bad(format!("role {}: app {b} is not in [[apps]]", r.name)));
                }
            }
        }
        for a in &c.apps {
            for e in &a.endpoints {
                let at = format!("app {} endpoint {}", a.bundle_id, e.host);
                if e.host.is_empty() || e.host.len() > 200 {
                    return Err(bad(format!("{at}: host must be 1..=200 characters")));
                }
                if e.proto == AppProto::Dns {
                    return Err(bad(format!(
                        "{at}: DNS flows go to network.dns_resolvers, not to app endpoints"
                    )));
                }
                if !c.providers.contains_key(&e.provider) {
                    return Err(bad(format!(
                        "{at}: provider {} is not in [providers]",
                        e.provider
                    )));
                }
                if !c.profiles.contains_key(&e.profile) {
                    return Err(bad(format!(
                        "{at}: profile {} is not in [profiles]",
                        e.profile
                    )));
                }
                if let Some(t) = &e.tls {
                    if t != "1.2" && t != "1.3" {
                        return Err(bad(format!("{at}: tls must be \"1.2\" or \"1.3\"")));
                    }
                }
            }
        }
        Ok(c)
    }

    /// Multiplies every profile's request and response size bounds by `factor` (at least 1 byte).
    pub fn scale_sizes(&mut self, factor: f64) {
        let scale = |v: &mut u64| *v = ((*v as f64 * factor).round() as u64).max(1);
        for p in self.profiles.values_mut() {
            p.request_bytes
                .iter_mut()
                .chain(p.response_bytes.iter_mut())
                .for_each(scale);
        }
    }

    /// Ports of `proto` (validated to exist).
    pub fn ports(&self, proto: AppProto) -> &ProtocolPorts {
        static EMPTY: ProtocolPorts = ProtocolPorts {
            standard_ports: Vec::new(),
            nonstandard_ports: Vec::new(),
        };
        self.protocols.get(proto.name()).unwrap_or(&EMPTY)
    }

    /// The provider of `ep` (validated to exist).
    pub fn provider(&self, ep: &Endpoint) -> Option<&Provider> {
        self.providers.get(&ep.provider)
    }

    /// The profile of `ep`.
    pub fn profile(&self, ep: &Endpoint) -> Option<&Profile> {
        self.profiles.get(&ep.profile)
    }
}

/// 64-bit FNV-1a: the stable hash that maps host names to addresses.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The addresses `host` resolves to in `provider`'s blocks: 2–4 IPv4 and (when the provider has
/// IPv6 blocks) 2 IPv6 addresses, always the same for the same host.
pub fn host_addresses(host: &str, provider: &Provider) -> (Vec<IpAddr>, Vec<IpAddr>) {
    let h = fnv1a(&[host.as_bytes()]);
    let n4 = 2 + (h % 3) as usize;
    let mut v4 = Vec::with_capacity(n4);
    for i in 0..n4 {
        let hi = fnv1a(&[host.as_bytes(), &[i as u8, 4]]);
        if let Some(pf) = provider
            .v4
            .get((hi % provider.v4.len().max(1) as u64) as usize)
        {
            // Skip the network and broadcast addresses of small blocks.
            let size = 1u128 << pf.host_bits().min(64);
            let off = if size > 4 {
                1 + (hi >> 8) as u128 % (size - 2)
            } else {
                (hi >> 8) as u128
            };
            let a = pf.nth(off);
            if !v4.contains(&a) {
                v4.push(a);
            }
        }
    }
    let mut v6 = Vec::new();
    for i in 0..2u8 {
        let hi = fnv1a(&[host.as_bytes(), &[i, 6]]);
        if let Some(pf) = provider
            .v6
            .get((hi % provider.v6.len().max(1) as u64) as usize)
        {
            let a = pf.nth(((hi >> 4) as u128 & 0xffff_ffff) | 1);
            if !v6.contains(&a) {
                v6.push(a);
            }
        }
    }
    (v4, v6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalogue_loads() {
        let c = Catalogue::load(None).expect("built-in catalogue is valid");
        assert!(c.apps.iter().any(|a| a.bundle_id == "com.apple.mobilemail"));
        for proto in AppProto::ALL {
            assert!(!c.ports(proto).standard_ports.is_empty());
        }
    }

    #[test]
    fn bad_catalogue_names_the_problem() {
        let text = DEFAULT_CATALOGUE.replace("provider = \"corp\"", "provider = \"nope\"");
        match Catalogue::parse(&text, "x.toml") {
            Err(SynthError::Catalogue(name, why)) => {
                assert_eq!(name, "x.toml");
                assert!(why.contains("provider nope"), "{why}");
            }
            other => panic!("expected a catalogue error, got {other:?}"),
        }
    }

    #[test]
    fn host_addresses_are_stable_and_inside_blocks() {
        let c = Catalogue::load(None).expect("catalogue");
        let p = &c.providers["apple-push"];
        let (a, b) = (
            host_addresses("7-courier.push.apple.com", p),
            host_addresses("7-courier.push.apple.com", p),
        );
        assert_eq!(a, b);
        for ip in &a.0 {
            match ip {
                IpAddr::V4(v) => assert_eq!(v.octets()[..2], [17, 57]),
                IpAddr::V6(_) => panic!("v4 list has a v6 address"),
            }
        }
        assert!(!a.1.is_empty());
        let pf = Prefix::parse("10.20.0.0/16").expect("prefix");
        assert_eq!(pf.nth(0x0105), "10.20.1.5".parse::<IpAddr>().expect("ip"));
    }
}
