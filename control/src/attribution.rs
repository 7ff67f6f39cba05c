//! Attribution: which device sent a flow, and which app (and role) on it.
//!
//! Owns: the index of network identities over time (inventory IPs and DHCP leases joined through
//! Wi-Fi MACs), the cache of DNS answers, and the evidence fusion that names the app behind a
//! flow — or abstains. A source address gives a device; the app comes from evidence weighed
//! against the [`AppCatalogue`] and the device's own app list:
//!
//! | evidence | says | default confidence when it singles out one app |
//! | --- | --- | --- |
//! | HTTP `User-Agent` (catalogue token, browser marker, or a CFNetwork agent naming an installed app's executable) | this app | 0.97 (0.9 for an executable-name match) |
//! | TLS SNI / QUIC SNI / HTTP Host / earlier DNS answer against the catalogue's domains | one of these apps (plus installed browsers for a `web` name) | 0.95 / 0.95 / 0.9 / 0.85 |
//! | the protocol (`imap`, `smtp`, `ssh`, `ntp` ...) | one of the apps that speak it from a device | 0.9 |
//! | the device's app list (supervised devices list every app) | only apps on the device; iOS system components always are | — (narrows) |
//! | the foreground app at the time | weak: only ranks candidates | 0.3 |
//!
//! A candidate below `app_threshold` (default 0.7) is not named: the alert says "app unknown";
//! when every remaining candidate belongs to one role the role's baseline applies, else the
//! device default baseline. Each attribution carries its candidates and evidence.
//! Must not: judge baselines or score; it only says who, how sure, and how it knows.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::app_catalogue::{AppCatalogue, UserAgentClaim};
use crate::inventory::kea_leases::{network, Lease};
use crate::inventory::{Device, ManagedApp};
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
    /// Confidence of an app singled out by TLS SNI (default: 0.95).
    pub tls_sni_confidence: f64,
    /// Confidence of an app singled out by QUIC SNI (default: 0.95).
    pub quic_sni_confidence: f64,
    /// Confidence of an app singled out by HTTP Host (default: 0.9).
    pub http_host_confidence: f64,
    /// Confidence of an app singled out by an earlier DNS answer (default: 0.85).
    pub dns_answer_confidence: f64,
    /// Confidence of an app singled out by the protocol (default: 0.9).
    pub app_protocol_confidence: f64,
    /// Confidence of an app named by a catalogue User-Agent token or browser marker (default:
    /// 0.97).
    pub user_agent_confidence: f64,
    /// Confidence of an app whose executable name a CFNetwork User-Agent carries (default: 0.9).
    pub user_agent_executable_confidence: f64,
    /// Confidence the device's reported foreground app gives a candidate (default: 0.3: weak
    /// evidence that only ranks candidates and never names an app alone).
    pub foreground_app_confidence: f64,
    /// Factor on the confidence of a role known without its app (default: 0.6).
    pub unresolved_bundle_factor: f64,
    /// An app is named only at or above this confidence; below it the alert says "app unknown"
    /// (default: 0.7).
    pub app_threshold: f64,
    /// App catalogue file replacing the shipped one (default: none, the shipped
    /// `control/data/app_catalogue.toml`).
    pub app_catalogue: Option<std::path::PathBuf>,
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
            tls_sni_confidence: 0.95,
            quic_sni_confidence: 0.95,
            http_host_confidence: 0.9,
            dns_answer_confidence: 0.85,
            app_protocol_confidence: 0.9,
            user_agent_confidence: 0.97,
            user_agent_executable_confidence: 0.9,
            foreground_app_confidence: 0.3,
            unresolved_bundle_factor: 0.6,
            app_threshold: 0.7,
            app_catalogue: None,
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
    /// The HTTP User-Agent named the app.
    UserAgent,
    /// Only the listed apps speak the protocol from a device.
    AppProtocol,
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
            AppMethod::UserAgent => "user_agent",
            AppMethod::AppProtocol => "app_protocol",
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
    /// The apps that may have made the flow, most likely first, with their confidence (the
    /// named app, if any, is the first).
    #[serde(default)]
    pub candidates: Vec<AppCandidate>,
    /// What the attribution saw and what each piece said.
    #[serde(default)]
    pub evidence: Vec<AppEvidence>,
}

/// An app that may have made a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppCandidate {
    /// Bundle ID.
    pub bundle_id: String,
    /// 0..=1.
    pub confidence: f64,
}

/// One piece of evidence about the app behind a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppEvidence {
    /// `user_agent`, `tls_sni`, `quic_sni`, `http_host`, `dns_answer`, `app_protocol`,
    /// `device_apps`, `foreground_app` or `role_domain`.
    pub kind: String,
    /// The value seen (a name, an agent, a protocol, a bundle ID).
    pub value: String,
    /// The apps it points to (or, for `device_apps`, the candidates it left).
    pub apps: Vec<String>,
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
            candidates: Vec::new(),
            evidence: Vec::new(),
        }
    }
}

/// An app status under which the app is on the device.
fn installed(app: &ManagedApp) -> bool {
    !matches!(
        app.status.as_str(),
        "managed_but_uninstalled" | "failed" | "not_installed" | "uninstalled" | "removed"
    )
}

/// Whether `bundle_id` may be on `device`: system components always are; an app the device
/// lists is when its status says installed; an app it does not list is not on a supervised
/// device (whose MDM lists every app), and may be on others (User Enrollment and unsupervised
/// devices report managed apps only). Without a device, anything may be.
fn may_be_on(catalogue: &AppCatalogue, device: Option<&Device>, bundle_id: &str) -> bool {
    if catalogue.is_system_app(bundle_id) {
        return true;
    }
    match device {
        None => true,
        Some(d) => match d.app(bundle_id) {
            Some(a) => installed(a),
            None => !d.supervised,
        },
    }
}

/// The one installed app whose executable a CFNetwork agent names: the display name without
/// spaces, or the bundle ID's last component, compared without regard to case.
fn app_by_executable<'a>(device: Option<&'a Device>, executable: &str) -> Option<&'a ManagedApp> {
    let exe = executable.replace("%20", "").to_ascii_lowercase();
    let d = device?;
    let mut hits = d.apps.iter().filter(|a| {
        installed(a)
            && (a
                .name
                .as_deref()
                .is_some_and(|n| n.replace(' ', "").to_ascii_lowercase() == exe)
                || a.bundle_id
                    .rsplit('.')
                    .next()
                    .is_some_and(|last| last.to_ascii_lowercase() == exe))
    });
    let first = hits.next()?;
    hits.next().is_none().then_some(first)
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
    /// Delegated prefixes (DHCPv6 IA_PD), by (length, network address).
    by_prefix: HashMap<(u8, IpAddr), Vec<NetworkBinding>>,
    /// The prefix lengths in `by_prefix`, longest first.
    prefix_lens: Vec<u8>,
    dns: HashMap<IpAddr, Vec<DnsEntry>>,
    dns_entries: usize,
    dns_latest_us: i64,
}

/// DNS answers kept per server address.
const DNS_ENTRIES_PER_ADDRESS: usize = 8;

impl AttributionIndex {
    /// Replaces the identity index: inventory bindings as given, plus each lease (address or
    /// delegated prefix) whose hardware address is a device's Wi-Fi MAC (`mac_to_udid`).
    pub fn rebuild(
        &mut self,
        inventory: Vec<NetworkBinding>,
        leases: &[Lease],
        mac_to_udid: &HashMap<String, String>,
    ) {
        self.by_ip.clear();
        self.by_prefix.clear();
        for b in inventory {
            self.by_ip.entry(b.ip).or_default().push(b);
        }
        for l in leases {
            if let Some(udid) = mac_to_udid.get(&l.hwaddr) {
                let binding = NetworkBinding {
                    udid: udid.clone(),
                    ip: l.address,
                    valid_from_us: l.valid_from_us,
                    valid_until_us: Some(l.valid_until_us),
                    source: BindingSource::DhcpLease,
                };
                match l.prefix_len {
                    Some(len) => self
                        .by_prefix
                        .entry((len, network(l.address, len)))
                        .or_default()
                        .push(binding),
                    None => self.by_ip.entry(l.address).or_default().push(binding),
                }
            }
        }
        let mut lens: Vec<u8> = self.by_prefix.keys().map(|(len, _)| *len).collect();
        lens.sort_unstable_by(|a, b| b.cmp(a));
        lens.dedup();
        self.prefix_lens = lens;
    }

    /// Number of identities held.
    pub fn binding_count(&self) -> usize {
        self.by_ip.values().map(Vec::len).sum::<usize>()
            + self.by_prefix.values().map(Vec::len).sum::<usize>()
    }

    /// The device holding `ip` at `at_us`: a lease of the address covering the time, else a lease
    /// of the longest delegated prefix holding it, else the latest covering inventory report,
    /// else the earliest inventory report after the time (lower confidence). Among covering
    /// leases the one that started last wins, so a reused address goes to its latest holder.
    pub fn device_at(
        &self,
        ip: IpAddr,
        at_us: i64,
        cfg: &AttributionConfig,
    ) -> Option<DeviceAttribution> {
        let empty = Vec::new();
        let list = self.by_ip.get(&ip).unwrap_or(&empty);
        let covering = |list: &'_ [NetworkBinding], src: BindingSource| {
            list.iter()
                .filter(|b| b.source == src && b.covers(at_us))
                .max_by_key(|b| b.valid_from_us)
                .map(|b| b.udid.clone())
        };
        let lease = covering(list, BindingSource::DhcpLease).or_else(|| {
            self.prefix_lens.iter().find_map(|len| {
                let held = self.by_prefix.get(&(*len, network(ip, *len)))?;
                covering(held, BindingSource::DhcpLease)
            })
        });
        if let Some(udid) = lease {
            return Some(DeviceAttribution {
                udid,
                method: DeviceMethod::DhcpLease,
                confidence: cfg.lease_confidence,
            });
        }
        if let Some(udid) = covering(list, BindingSource::Inventory) {
            return Some(DeviceAttribution {
                udid,
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

    /// Names the app and role behind `obs` on `device` (if known), or abstains: see the module
    /// documentation for the evidence and how it is weighed. `foreground_bundle` is the app the
    /// device reported in the foreground at the time (only passed while unlocked).
    pub fn attribute_app(
        &self,
        roles: &RoleSet,
        catalogue: &AppCatalogue,
        obs: &FlowObservation,
        device: Option<&Device>,
        foreground_bundle: Option<&str>,
        cfg: &AttributionConfig,
    ) -> AppAttribution {
        let mut evidence: Vec<AppEvidence> = Vec::new();
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
        let server_name = named.as_ref().map(|(n, _, _)| n.clone());
        let app_managed = |b: &str| device.map(|d| d.app(b).is_some_and(ManagedApp::is_managed));
        let finish = |bundle: String,
                      method: AppMethod,
                      confidence: f64,
                      matched_domain: Option<String>,
                      mut candidates: Vec<AppCandidate>,
                      evidence: Vec<AppEvidence>| {
            candidates.retain(|c| c.bundle_id != bundle);
            candidates.insert(
                0,
                AppCandidate {
                    bundle_id: bundle.clone(),
                    confidence,
                },
            );
            AppAttribution {
                role: roles.role_for_bundle(&bundle).map(|r| r.name.clone()),
                app_managed: app_managed(&bundle),
                bundle_id: Some(bundle),
                server_name: server_name.clone(),
                matched_domain,
                method,
                confidence,
                candidates,
                evidence,
            }
        };

        // 1. The User-Agent names the app outright.
        if let Some(ua) = obs.user_agent() {
            let claim = catalogue.user_agent_claim(ua);
            let hit = match &claim {
                Some(UserAgentClaim::Listed(b)) | Some(UserAgentClaim::Browser(b)) => {
                    Some((b.clone(), cfg.user_agent_confidence))
                }
                Some(UserAgentClaim::Executable(exe)) => app_by_executable(device, exe)
                    .map(|a| (a.bundle_id.clone(), cfg.user_agent_executable_confidence)),
                None => None,
            };
            evidence.push(AppEvidence {
                kind: "user_agent".into(),
                value: ua.chars().take(256).collect(),
                apps: hit.iter().map(|(b, _)| b.clone()).collect(),
            });
            if let Some((bundle, conf)) = hit {
                if may_be_on(catalogue, device, &bundle) && conf >= cfg.app_threshold {
                    return finish(
                        bundle,
                        AppMethod::UserAgent,
                        conf,
                        None,
                        Vec::new(),
                        evidence,
                    );
                }
            }
        }

        // 2. The server name and the protocol give a candidate set.
        let mut candidates: Vec<String> = Vec::new();
        let mut method = AppMethod::None;
        let mut base = 0.0;
        let mut matched_domain = None;
        let mut from_catalogue = false;
        if let Some((name, m, conf)) = &named {
            if let Some(entry) = catalogue.domain(name) {
                candidates = entry.apps.clone();
                if entry.web {
                    candidates.extend(catalogue.browser_ids().map(str::to_string));
                }
                evidence.push(AppEvidence {
                    kind: m.as_str().into(),
                    value: name.clone(),
                    apps: candidates.clone(),
                });
                method = *m;
                base = *conf;
                matched_domain = Some(entry.suffix.clone());
                from_catalogue = true;
            }
        }
        if let Some(entry) = catalogue.protocol(&obs.app_proto) {
            evidence.push(AppEvidence {
                kind: "app_protocol".into(),
                value: entry.app_proto.clone(),
                apps: entry.apps.clone(),
            });
            if !from_catalogue {
                candidates = entry.apps.clone();
                method = AppMethod::AppProtocol;
                base = cfg.app_protocol_confidence;
                from_catalogue = true;
            } else {
                let both: Vec<String> = candidates
                    .iter()
                    .filter(|c| entry.apps.contains(c))
                    .cloned()
                    .collect();
                if !both.is_empty() {
                    candidates = both;
                }
            }
        }
        let mut seen = Vec::new();
        candidates.retain(|c| {
            let keep = !seen.contains(c) && may_be_on(catalogue, device, c);
            seen.push(c.clone());
            keep
        });
        if from_catalogue && device.is_some() {
            evidence.push(AppEvidence {
                kind: "device_apps".into(),
                value: device.map_or_else(String::new, |d| d.udid.clone()),
                apps: candidates.clone(),
            });
        }
        if let Some(fg) = foreground_bundle {
            evidence.push(AppEvidence {
                kind: "foreground_app".into(),
                value: fg.to_string(),
                apps: vec![fg.to_string()],
            });
        }
        let ranked = |cands: &[String]| -> Vec<AppCandidate> {
            let share = if cands.is_empty() {
                0.0
            } else {
                base / cands.len() as f64
            };
            let mut out: Vec<AppCandidate> = cands
                .iter()
                .map(|b| AppCandidate {
                    bundle_id: b.clone(),
                    confidence: if Some(b.as_str()) == foreground_bundle {
                        share.max(cfg.foreground_app_confidence)
                    } else {
                        share
                    },
                })
                .collect();
            out.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
            out
        };
        if from_catalogue {
            if let [only] = candidates.as_slice() {
                if base >= cfg.app_threshold {
                    return finish(
                        only.clone(),
                        method,
                        base,
                        matched_domain,
                        Vec::new(),
                        evidence,
                    );
                }
            }
            // Several apps (or none) fit: no app is named. When they all share one role, its
            // baseline still applies.
            let shared_role = {
                let mut role_names = candidates
                    .iter()
                    .map(|b| roles.role_for_bundle(b).map(|r| r.name.clone()));
                match role_names.next() {
                    Some(Some(first)) if role_names.all(|r| r.as_deref() == Some(&first)) => {
                        Some(first)
                    }
                    _ => None,
                }
            };
            return AppAttribution {
                bundle_id: None,
                confidence: if shared_role.is_some() {
                    base * cfg.unresolved_bundle_factor
                } else {
                    0.0
                },
                role: shared_role,
                server_name,
                matched_domain,
                method: if candidates.is_empty() {
                    AppMethod::None
                } else {
                    method
                },
                app_managed: None,
                candidates: ranked(&candidates),
                evidence,
            };
        }

        // 3. Not in the catalogue: the roles file's domains name a role, never an app.
        if let Some((name, m, conf)) = &named {
            if let Some((role, domain)) = roles.role_for_domain(name) {
                evidence.push(AppEvidence {
                    kind: "role_domain".into(),
                    value: name.clone(),
                    apps: Vec::new(),
                });
                return AppAttribution {
                    bundle_id: None,
                    role: Some(role.name.clone()),
                    server_name,
                    matched_domain: Some(domain.to_string()),
                    method: *m,
                    confidence: conf * cfg.unresolved_bundle_factor,
                    app_managed: None,
                    candidates: Vec::new(),
                    evidence,
                };
            }
        }

        // 4. Only the foreground app is left: weak evidence, named only if the threshold
        //    allows it (by default it does not).
        let mut out = AppAttribution::none(server_name.clone());
        if let Some(fg) = foreground_bundle {
            if may_be_on(catalogue, device, fg) {
                if cfg.foreground_app_confidence >= cfg.app_threshold {
                    return finish(
                        fg.to_string(),
                        AppMethod::ForegroundApp,
                        cfg.foreground_app_confidence,
                        None,
                        Vec::new(),
                        evidence,
                    );
                }
                out.candidates.push(AppCandidate {
                    bundle_id: fg.to_string(),
                    confidence: cfg.foreground_app_confidence,
                });
            }
        }
        out.evidence = evidence;
        out
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
                prefix_len: None,
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
    fn delegated_prefix_holds_its_addresses_longest_first() {
        let cfg = AttributionConfig::default();
        let mut idx = AttributionIndex::default();
        let mut macs = HashMap::new();
        macs.insert("a4:5e:60:00:00:0a".to_string(), "PD56".to_string());
        macs.insert("a4:5e:60:00:00:0b".to_string(), "PD64".to_string());
        macs.insert("a4:5e:60:00:00:0c".to_string(), "NA".to_string());
        let lease = |a: &str, len, mac: &str, from, until| Lease {
            address: a.parse().unwrap(),
            prefix_len: len,
            hwaddr: mac.into(),
            valid_from_us: from,
            valid_until_us: until,
            hostname: None,
        };
        idx.rebuild(
            vec![],
            &[
                lease("2001:db8:ff:100::", Some(56), "a4:5e:60:00:00:0a", 100, 200),
                lease("2001:db8:ff:1ab::", Some(64), "a4:5e:60:00:00:0b", 100, 150),
                lease("2001:db8:ff:1ab::9", None, "a4:5e:60:00:00:0c", 100, 120),
                lease("2001:db8:ff:200::", Some(56), "ff:ff:ff:ff:ff:ff", 100, 200),
            ],
            &macs,
        );
        assert_eq!(
            idx.binding_count(),
            3,
            "a lease of an unknown MAC binds nothing"
        );
        let at = |a: &str, t| {
            idx.device_at(a.parse().unwrap(), t, &cfg)
                .map(|d| (d.udid, d.method))
        };
        let lease_of = |u: &str| Some((u.to_string(), DeviceMethod::DhcpLease));
        assert_eq!(
            at("2001:db8:ff:1ab::9", 110),
            lease_of("NA"),
            "the address first"
        );
        assert_eq!(
            at("2001:db8:ff:1ab::9", 130),
            lease_of("PD64"),
            "then the longest prefix"
        );
        assert_eq!(at("2001:db8:ff:1ab::9", 160), lease_of("PD56"));
        assert_eq!(at("2001:db8:ff:1ff:1:2:3:4", 110), lease_of("PD56"));
        assert_eq!(at("2001:db8:ff:1ff::1", 200), None, "ended");
        assert_eq!(at("2001:db8:ff:200::1", 110), None);
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

#[cfg(test)]
mod fusion_tests {
    use super::*;
    use crate::inventory::{InventorySource, Ownership};

    fn app(bundle: &str, name: &str, status: &str) -> ManagedApp {
        ManagedApp {
            bundle_id: bundle.into(),
            name: Some(name.into()),
            version: None,
            status: status.into(),
        }
    }

    fn device(supervised: bool, apps: Vec<ManagedApp>) -> Device {
        Device {
            udid: "U1".into(),
            serial_number: None,
            name: None,
            model: None,
            model_identifier: None,
            os_name: None,
            os_version: None,
            supervised,
            managed: true,
            ownership: Ownership::Institutional,
            wifi_mac: None,
            ip_address: None,
            ipv6_addresses: Vec::new(),
            user: None,
            reported_at_us: None,
            source: InventorySource::JamfPro,
            apps,
            unreported: Vec::new(),
        }
    }

    fn obs(app_proto: &str, sni: Option<&str>, ua: Option<&str>) -> FlowObservation {
        FlowObservation {
            flow_id: 1,
            community_id: None,
            start_us: 1_000_000,
            end_us: 2_000_000,
            src_ip: "10.0.0.5".parse().unwrap(),
            src_port: 50_000,
            dest_ip: "198.51.100.9".parse().unwrap(),
            dest_port: 8443,
            transport: "TCP".into(),
            app_proto: app_proto.into(),
            indicators: Vec::new(),
            sni: sni.map(str::to_string),
            http_host: None,
            quic_sni: None,
            tls: None,
            http: ua.map(|u| serde_json::json!({ "http_user_agent": u })),
            pkts_toserver: 1,
            pkts_toclient: 1,
            bytes_toserver: 1,
            bytes_toclient: 1,
            port_mismatch: None,
            starttls: false,
            proxy: None,
        }
    }

    fn attribute(o: &FlowObservation, d: Option<&Device>, fg: Option<&str>) -> AppAttribution {
        AttributionIndex::default().attribute_app(
            &RoleSet::shipped_defaults().unwrap(),
            &AppCatalogue::shipped().unwrap(),
            o,
            d,
            fg,
            &AttributionConfig::default(),
        )
    }

    const MAIL: &str = "com.apple.mobilemail";
    const OUTLOOK: &str = "com.microsoft.Office.Outlook";

    #[test]
    fn a_shared_name_with_both_apps_installed_abstains_but_keeps_the_shared_role() {
        let d = device(
            true,
            vec![
                app(MAIL, "Mail", "unmanaged"),
                app(OUTLOOK, "Microsoft Outlook", "managed"),
            ],
        );
        let a = attribute(
            &obs("tls", Some("outlook.office365.com"), None),
            Some(&d),
            Some(OUTLOOK),
        );
        assert_eq!(
            a.bundle_id, None,
            "the managed app is not picked by default"
        );
        assert_eq!(a.role.as_deref(), Some("mail"), "both are mail clients");
        assert_eq!(a.candidates.len(), 2);
        assert_eq!(
            a.candidates[0].bundle_id, OUTLOOK,
            "the foreground app ranks first, below the threshold"
        );
        assert!(a.candidates[0].confidence < AttributionConfig::default().app_threshold);
        // Outlook removed from the device: the same name now singles out Mail.
        let d = device(true, vec![app(MAIL, "Mail", "unmanaged")]);
        let a = attribute(
            &obs("tls", Some("outlook.office365.com"), None),
            Some(&d),
            None,
        );
        assert_eq!(a.bundle_id.as_deref(), Some(MAIL));
        assert_eq!(a.method, AppMethod::TlsSni);
        assert!(a.evidence.iter().any(|e| e.kind == "device_apps"));
    }

    #[test]
    fn the_protocol_separates_apps_sharing_a_mail_server() {
        let d = device(
            true,
            vec![
                app(MAIL, "Mail", "unmanaged"),
                app(OUTLOOK, "Microsoft Outlook", "managed"),
            ],
        );
        let a = attribute(
            &obs("imap", Some("imap.mail.example.com"), None),
            Some(&d),
            Some(OUTLOOK),
        );
        assert_eq!(a.bundle_id.as_deref(), Some(MAIL), "{a:?}");
        assert_eq!(a.role.as_deref(), Some("mail"));
    }

    #[test]
    fn the_user_agent_names_the_app_and_the_device_list_is_a_constraint() {
        let d = device(
            true,
            vec![app("com.example.notes", "Acme Notes", "managed")],
        );
        let a = attribute(
            &obs(
                "http",
                None,
                Some("AcmeNotes/3.1 CFNetwork/1490.0.4 Darwin/23.2.0"),
            ),
            Some(&d),
            None,
        );
        assert_eq!(a.bundle_id.as_deref(), Some("com.example.notes"));
        assert_eq!(a.method, AppMethod::UserAgent);
        // Outlook's token, but Outlook is not on this supervised device: not named.
        let a = attribute(
            &obs("http", None, Some("Outlook-iOS/723.4 (4.2350.0)")),
            Some(&d),
            None,
        );
        assert_eq!(a.bundle_id, None);
        // On an unsupervised (User Enrollment) device the MDM lists managed apps only, so an
        // unlisted app may still be there.
        let byod = device(false, Vec::new());
        let a = attribute(
            &obs("http", None, Some("Outlook-iOS/723.4 (4.2350.0)")),
            Some(&byod),
            None,
        );
        assert_eq!(a.bundle_id.as_deref(), Some(OUTLOOK));
    }

    #[test]
    fn the_foreground_app_alone_never_names_an_app() {
        let d = device(
            true,
            vec![app("com.apple.mobilesafari", "Safari", "unmanaged")],
        );
        let a = attribute(
            &obs("tls", Some("unknown.example.net"), None),
            Some(&d),
            Some("com.apple.mobilesafari"),
        );
        assert_eq!(a.bundle_id, None);
        assert_eq!(a.role, None);
        assert_eq!(a.method, AppMethod::None);
        assert_eq!(a.candidates.len(), 1, "kept as a weak candidate");
    }

    #[test]
    fn a_web_name_with_two_browsers_abstains_and_one_browser_is_named() {
        let two = device(
            true,
            vec![
                app("com.apple.mobilesafari", "Safari", "unmanaged"),
                app("com.google.chrome.ios", "Google Chrome", "unmanaged"),
            ],
        );
        let o = obs("tls", Some("portal.example-crm.com"), None);
        let a = attribute(&o, Some(&two), None);
        assert_eq!(a.bundle_id, None);
        assert_eq!(a.role.as_deref(), Some("browser"), "both are browsers");
        let one = device(
            true,
            vec![app("com.apple.mobilesafari", "Safari", "unmanaged")],
        );
        assert_eq!(
            attribute(&o, Some(&one), None).bundle_id.as_deref(),
            Some("com.apple.mobilesafari")
        );
    }
}
