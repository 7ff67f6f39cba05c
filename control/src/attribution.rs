//! Attribution: which device sent a flow, and which app (and role) on it.
//!
//! Owns: the index of network identities over time (inventory IPs and DHCP leases joined through
//! Wi-Fi MACs), the cache of DNS answers, and the rules that turn a source address, a server name
//! (TLS SNI, QUIC SNI, HTTP Host, or an earlier DNS answer for the server address) and the device's
//! reported foreground app into a device, a bundle ID and a role — each with the method used and a
//! confidence in 0..=1.
//! Must not: judge baselines or score; it only says who, how sure, and how it knows.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::inventory::kea_leases::Lease;
use crate::inventory::Device;
use crate::observation::{DnsAnswer, FlowObservation, NameSource};
use crate::roles::RoleSet;

/// Attribution tunables. Defaults in parentheses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttributionConfig {
    /// A DNS answer attributes a server address for this long after it was seen (default: 3600 s).
    pub dns_max_age_s: i64,
    /// DNS cache size bound, entries (default: 200 000).
    pub dns_cache_capacity: usize,
    /// Confidence of an app named by TLS SNI (default: 0.9).
    pub tls_sni_confidence: f64,
    /// Confidence of an app named by QUIC SNI (default: 0.9).
    pub quic_sni_confidence: f64,
    /// Confidence of an app named by HTTP Host (default: 0.8).
    pub http_host_confidence: f64,
    /// Confidence of an app named by an earlier DNS answer (default: 0.7).
    pub dns_answer_confidence: f64,
    /// Confidence of an app taken from the device's reported foreground app (default: 0.3).
    pub foreground_app_confidence: f64,
    /// Factor when the role is known but the bundle is not unique or not managed (default: 0.6).
    pub unresolved_bundle_factor: f64,
    /// Confidence of a device found through a DHCP lease covering the time (default: 0.95).
    pub lease_confidence: f64,
    /// Confidence of a device found through its inventory IP at the time (default: 0.85).
    pub inventory_ip_confidence: f64,
    /// Confidence of a device whose inventory reported the IP only after the session (default: 0.6).
    pub inventory_ip_nearest_confidence: f64,
}

impl Default for AttributionConfig {
    fn default() -> Self {
        AttributionConfig {
            dns_max_age_s: 3600,
            dns_cache_capacity: 200_000,
            tls_sni_confidence: 0.9,
            quic_sni_confidence: 0.9,
            http_host_confidence: 0.8,
            dns_answer_confidence: 0.7,
            foreground_app_confidence: 0.3,
            unresolved_bundle_factor: 0.6,
            lease_confidence: 0.95,
            inventory_ip_confidence: 0.85,
            inventory_ip_nearest_confidence: 0.6,
        }
    }
}

/// Where a network identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingSource {
    /// The MDM inventory's IP address.
    Inventory,
    /// A DHCP lease for the device's Wi-Fi MAC.
    DhcpLease,
}

/// A device holding an address over an interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkBinding {
    /// The device.
    pub udid: String,
    /// The address.
    pub ip: IpAddr,
    /// From, µs since the epoch.
    pub valid_from_us: i64,
    /// Until (exclusive), `None` = still held.
    pub valid_until_us: Option<i64>,
    /// Inventory or lease.
    pub source: BindingSource,
}

impl NetworkBinding {
    fn covers(&self, t: i64) -> bool {
        self.valid_from_us <= t && self.valid_until_us.is_none_or(|u| t < u)
    }
}

/// How the device was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceMethod {
    /// A DHCP lease covered the session time.
    DhcpLease,
    /// The inventory IP held at the session time.
    InventoryIp,
    /// The inventory reported this IP only after the session (nearest report).
    InventoryIpNearest,
}

/// The device behind a source address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceAttribution {
    /// Device UDID.
    pub udid: String,
    /// How it was found.
    pub method: DeviceMethod,
    /// 0..=1.
    pub confidence: f64,
}

/// How the app was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppMethod {
    /// TLS SNI matched a role's domain.
    TlsSni,
    /// QUIC SNI matched a role's domain.
    QuicSni,
    /// HTTP Host matched a role's domain.
    HttpHost,
    /// A DNS answer for the server address matched a role's domain.
    DnsAnswer,
    /// The device reported this app in the foreground at the time.
    ForegroundApp,
    /// No app could be named.
    None,
}

impl AppMethod {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AppMethod::TlsSni => "tls_sni",
            AppMethod::QuicSni => "quic_sni",
            AppMethod::HttpHost => "http_host",
            AppMethod::DnsAnswer => "dns_answer",
            AppMethod::ForegroundApp => "foreground_app",
            AppMethod::None => "none",
        }
    }
}

/// The app (and role) behind a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppAttribution {
    /// Bundle ID, when one app could be named.
    pub bundle_id: Option<String>,
    /// Role, when known.
    pub role: Option<String>,
    /// The server name used (SNI/Host/DNS), when any.
    pub server_name: Option<String>,
    /// The role domain it matched.
    pub matched_domain: Option<String>,
    /// How.
    pub method: AppMethod,
    /// 0..=1.
    pub confidence: f64,
    /// Whether the MDM lists the app as managed on this device (`None`: unknown).
    pub app_managed: Option<bool>,
}

impl AppAttribution {
    fn none(server_name: Option<String>) -> Self {
        AppAttribution {
            bundle_id: None,
            role: None,
            server_name,
            matched_domain: None,
            method: AppMethod::None,
            confidence: 0.0,
            app_managed: None,
        }
    }
}

#[derive(Debug, Clone)]
struct DnsEntry {
    client: IpAddr,
    name: String,
    ts_us: i64,
}

/// Network identities and DNS answers, indexed by address.
#[derive(Debug, Clone, Default)]
pub struct AttributionIndex {
    by_ip: HashMap<IpAddr, Vec<NetworkBinding>>,
    dns: HashMap<IpAddr, Vec<DnsEntry>>,
    dns_entries: usize,
    dns_latest_us: i64,
}

/// DNS answers kept per server address.
const DNS_ENTRIES_PER_ADDRESS: usize = 8;

impl AttributionIndex {
    /// Replaces the identity index: inventory bindings as given, plus each lease whose hardware
    /// address is a device's Wi-Fi MAC (`mac_to_udid`).
    pub fn rebuild(
        &mut self,
        inventory: Vec<NetworkBinding>,
        leases: &[Lease],
        mac_to_udid: &HashMap<String, String>,
    ) {
        self.by_ip.clear();
        for b in inventory {
            self.by_ip.entry(b.ip).or_default().push(b);
        }
        for l in leases {
            if let Some(udid) = mac_to_udid.get(&l.hwaddr) {
                self.by_ip
                    .entry(l.address)
                    .or_default()
                    .push(NetworkBinding {
                        udid: udid.clone(),
                        ip: l.address,
                        valid_from_us: l.valid_from_us,
                        valid_until_us: Some(l.valid_until_us),
                        source: BindingSource::DhcpLease,
                    });
            }
        }
    }

    /// Number of identities held.
    pub fn binding_count(&self) -> usize {
        self.by_ip.values().map(Vec::len).sum()
    }

    /// The device holding `ip` at `at_us`: a covering lease, else the latest covering inventory
    /// report, else the earliest inventory report after the time (lower confidence).
    pub fn device_at(
        &self,
        ip: IpAddr,
        at_us: i64,
        cfg: &AttributionConfig,
    ) -> Option<DeviceAttribution> {
        let list = self.by_ip.get(&ip)?;
        let covering = |src: BindingSource| {
            list.iter()
                .filter(|b| b.source == src && b.covers(at_us))
                .max_by_key(|b| b.valid_from_us)
        };
        if let Some(b) = covering(BindingSource::DhcpLease) {
            return Some(DeviceAttribution {
                udid: b.udid.clone(),
                method: DeviceMethod::DhcpLease,
                confidence: cfg.lease_confidence,
            });
        }
        if let Some(b) = covering(BindingSource::Inventory) {
            return Some(DeviceAttribution {
                udid: b.udid.clone(),
                method: DeviceMethod::InventoryIp,
                confidence: cfg.inventory_ip_confidence,
            });
        }
        list.iter()
            .filter(|b| b.source == BindingSource::Inventory && b.valid_from_us > at_us)
            .min_by_key(|b| b.valid_from_us)
            .map(|b| DeviceAttribution {
                udid: b.udid.clone(),
                method: DeviceMethod::InventoryIpNearest,
                confidence: cfg.inventory_ip_nearest_confidence,
            })
    }

    /// Remembers a DNS answer.
    pub fn record_dns(&mut self, answer: &DnsAnswer, cfg: &AttributionConfig) {
        self.dns_latest_us = self.dns_latest_us.max(answer.ts_us);
        for addr in &answer.addresses {
            let entries = self.dns.entry(*addr).or_default();
            entries.push(DnsEntry {
                client: answer.client_ip,
                name: answer.name.clone(),
                ts_us: answer.ts_us,
            });
            self.dns_entries += 1;
            if entries.len() > DNS_ENTRIES_PER_ADDRESS {
                entries.remove(0);
                self.dns_entries -= 1;
            }
        }
        if self.dns_entries > cfg.dns_cache_capacity {
            let horizon = self.dns_latest_us - cfg.dns_max_age_s.saturating_mul(1_000_000);
            self.dns.retain(|_, v| {
                v.retain(|e| e.ts_us >= horizon);
                !v.is_empty()
            });
            self.dns_entries = self.dns.values().map(Vec::len).sum();
            // Still too many (a burst within the age window): drop the oldest addresses wholesale.
            if self.dns_entries > cfg.dns_cache_capacity {
                let mut newest: Vec<(IpAddr, i64)> = self
                    .dns
                    .iter()
                    .map(|(k, v)| (*k, v.iter().map(|e| e.ts_us).max().unwrap_or(i64::MIN)))
                    .collect();
                newest.sort_by_key(|(_, t)| *t);
                let drop = newest.len() / 2;
                for (k, _) in newest.into_iter().take(drop) {
                    self.dns.remove(&k);
                }
                self.dns_entries = self.dns.values().map(Vec::len).sum();
            }
        }
    }

    /// The name `client` resolved to `server` most recently at or before `at_us` (within the
    /// configured age); answers to the same client are preferred over answers to others.
    pub fn dns_name_for(
        &self,
        client: IpAddr,
        server: IpAddr,
        at_us: i64,
        cfg: &AttributionConfig,
    ) -> Option<&str> {
        let horizon = at_us - cfg.dns_max_age_s.saturating_mul(1_000_000);
        let entries = self.dns.get(&server)?;
        let fresh = || {
            entries
                .iter()
                .filter(|e| e.ts_us <= at_us && e.ts_us >= horizon)
        };
        fresh()
            .filter(|e| e.client == client)
            .max_by_key(|e| e.ts_us)
            .or_else(|| fresh().max_by_key(|e| e.ts_us))
            .map(|e| e.name.as_str())
    }

    /// Names the app and role behind `obs` on `device` (if known). `foreground_bundle` is the
    /// app the device reported in the foreground at the time (only passed while unlocked).
    pub fn attribute_app(
        &self,
        roles: &RoleSet,
        obs: &FlowObservation,
        device: Option<&Device>,
        foreground_bundle: Option<&str>,
        cfg: &AttributionConfig,
    ) -> AppAttribution {
        let named = obs
            .server_name()
            .map(|(name, src)| {
                let (method, conf) = match src {
                    NameSource::TlsSni => (AppMethod::TlsSni, cfg.tls_sni_confidence),
                    NameSource::QuicSni => (AppMethod::QuicSni, cfg.quic_sni_confidence),
                    NameSource::HttpHost => (AppMethod::HttpHost, cfg.http_host_confidence),
                };
                (name, method, conf)
            })
            .or_else(|| {
                self.dns_name_for(obs.src_ip, obs.dest_ip, obs.start_us, cfg)
                    .map(|n| {
                        (
                            n.to_string(),
                            AppMethod::DnsAnswer,
                            cfg.dns_answer_confidence,
                        )
                    })
            });
        if let Some((name, method, conf)) = &named {
            if let Some((role, domain)) = roles.role_for_domain(name) {
                let (bundle_id, app_managed, factor) = match device {
                    Some(d) => {
                        let in_role: Vec<_> = d
                            .apps
                            .iter()
                            .filter(|a| role.has_bundle(&a.bundle_id))
                            .collect();
                        let managed: Vec<_> = in_role.iter().filter(|a| a.is_managed()).collect();
                        match (managed.as_slice(), in_role.as_slice()) {
                            ([one], _) => (Some(one.bundle_id.clone()), Some(true), 1.0),
                            (many, _) if many.len() > 1 => {
                                match many
                                    .iter()
                                    .find(|a| Some(a.bundle_id.as_str()) == foreground_bundle)
                                {
                                    Some(fg) => (Some(fg.bundle_id.clone()), Some(true), 1.0),
                                    None => (None, Some(true), cfg.unresolved_bundle_factor),
                                }
                            }
                            (_, [first, ..]) => (
                                Some(first.bundle_id.clone()),
                                Some(false),
                                cfg.unresolved_bundle_factor,
                            ),
                            _ => (None, Some(false), cfg.unresolved_bundle_factor),
                        }
                    }
                    None => {
                        let single = match role.bundle_ids.as_slice() {
                            [one] if !one.ends_with('*') => Some(one.clone()),
                            _ => None,
                        };
                        (single, None, cfg.unresolved_bundle_factor)
                    }
                };
                return AppAttribution {
                    bundle_id,
                    role: Some(role.name.clone()),
                    server_name: Some(name.clone()),
                    matched_domain: Some(domain.to_string()),
                    method: *method,
                    confidence: conf * factor,
                    app_managed,
                };
            }
        }
        let server_name = named.map(|(n, _, _)| n);
        if let Some(fg) = foreground_bundle {
            if let Some(role) = roles.role_for_bundle(fg) {
                return AppAttribution {
                    bundle_id: Some(fg.to_string()),
                    role: Some(role.name.clone()),
                    server_name,
                    matched_domain: None,
                    method: AppMethod::ForegroundApp,
                    confidence: cfg.foreground_app_confidence,
                    app_managed: device.map(|d| d.app(fg).is_some_and(|a| a.is_managed())),
                };
            }
        }
        AppAttribution::none(server_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(
        udid: &str,
        ip: &str,
        from: i64,
        until: Option<i64>,
        source: BindingSource,
    ) -> NetworkBinding {
        NetworkBinding {
            udid: udid.into(),
            ip: ip.parse().unwrap(),
            valid_from_us: from,
            valid_until_us: until,
            source,
        }
    }

    #[test]
    fn device_lookup_prefers_lease_then_inventory_then_nearest() {
        let cfg = AttributionConfig::default();
        let mut idx = AttributionIndex::default();
        let mut macs = HashMap::new();
        macs.insert("a4:5e:60:00:00:02".to_string(), "B".to_string());
        idx.rebuild(
            vec![
                binding("A", "10.0.0.5", 100, Some(200), BindingSource::Inventory),
                binding("C", "10.0.0.5", 200, None, BindingSource::Inventory),
            ],
            &[Lease {
                address: "10.0.0.5".parse().unwrap(),
                hwaddr: "a4:5e:60:00:00:02".into(),
                valid_from_us: 150,
                valid_until_us: 160,
                hostname: None,
            }],
            &macs,
        );
        let ip = "10.0.0.5".parse().unwrap();
        let at = |t| idx.device_at(ip, t, &cfg).map(|d| (d.udid, d.method));
        assert_eq!(at(120), Some(("A".into(), DeviceMethod::InventoryIp)));
        assert_eq!(at(155), Some(("B".into(), DeviceMethod::DhcpLease)));
        assert_eq!(at(250), Some(("C".into(), DeviceMethod::InventoryIp)));
        assert_eq!(at(50), Some(("A".into(), DeviceMethod::InventoryIpNearest)));
        assert_eq!(idx.device_at("10.0.0.6".parse().unwrap(), 120, &cfg), None);
    }

    #[test]
    fn dns_cache_respects_time_and_client() {
        let cfg = AttributionConfig::default();
        let mut idx = AttributionIndex::default();
        let server: IpAddr = "198.51.100.7".parse().unwrap();
        let me: IpAddr = "10.0.0.5".parse().unwrap();
        let other: IpAddr = "10.0.0.6".parse().unwrap();
        idx.record_dns(
            &DnsAnswer {
                ts_us: 1_000_000,
                client_ip: other,
                name: "a.example".into(),
                addresses: vec![server],
                ttl_s: None,
            },
            &cfg,
        );
        idx.record_dns(
            &DnsAnswer {
                ts_us: 2_000_000,
                client_ip: me,
                name: "b.example".into(),
                addresses: vec![server],
                ttl_s: None,
            },
            &cfg,
        );
        assert_eq!(
            idx.dns_name_for(me, server, 500_000, &cfg),
            None,
            "not before the answer"
        );
        assert_eq!(
            idx.dns_name_for(me, server, 1_500_000, &cfg),
            Some("a.example")
        );
        assert_eq!(
            idx.dns_name_for(me, server, 3_000_000, &cfg),
            Some("b.example")
        );
        assert_eq!(
            idx.dns_name_for(other, server, 3_000_000, &cfg),
            Some("a.example")
        );
        let late = 2_000_000 + (cfg.dns_max_age_s + 1) * 1_000_000;
        assert_eq!(idx.dns_name_for(me, server, late, &cfg), None, "too old");
    }
}
