//! The fleet and the flow plan: which device runs which app when, talking to which host on
//! which port.
//!
//! Owns: drawing devices (identity, addresses, model, role, installed apps), foreground
//! sessions, and one small [`FlowSpec`] per flow, sorted by start time. Must not: build payloads
//! or frames — a spec is a few dozen bytes, so plans of hundreds of thousands of flows are cheap.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};

use crate::catalogue::{host_addresses, AppProto, Catalogue};
use crate::rng::SynthRng;

/// One managed device.
#[derive(Debug, Clone)]
pub struct Device {
    /// Position in the fleet (0-based).
    pub index: u32,
    /// UDID, `CHIPID-16HEX`.
    pub udid: String,
    /// Serial number.
    pub serial: String,
    /// Wi-Fi MAC address.
    pub mac: [u8; 6],
    /// IPv4 address.
    pub ipv4: IpAddr,
    /// IPv6 address.
    pub ipv6: IpAddr,
    /// Index into `catalogue.models`.
    pub model: usize,
    /// Index into `catalogue.os_versions`.
    pub os: usize,
    /// Index into `catalogue.roles`.
    pub role: usize,
    /// Installed (non-system) apps, indices into `catalogue.apps`.
    pub apps: Vec<usize>,
    /// MDM display name.
    pub name: String,
    /// Assigned user.
    pub username: String,
    /// Supervised (institutional) device.
    pub supervised: bool,
    /// Jamf ownership type.
    pub ownership: &'static str,
}

impl Device {
    /// MAC as `aa:bb:cc:dd:ee:ff`.
    pub fn mac_string(&self) -> String {
        self.mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// A foreground period of one app on one device.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    /// Device index.
    pub device: u32,
    /// App index.
    pub app: usize,
    /// Start (µs since epoch).
    pub start_us: u64,
    /// End (µs since epoch).
    pub end_us: u64,
}

/// One planned flow.
#[derive(Debug, Clone)]
pub struct FlowSpec {
    /// Plan order (tie-breaker for equal timestamps).
    pub id: u32,
    /// First packet time (µs since epoch).
    pub start_us: u64,
    /// Device index.
    pub device: u32,
    /// App index (for DNS: the app whose host is looked up).
    pub app: usize,
    /// Endpoint index within the app (for DNS: the endpoint whose host is looked up).
    pub endpoint: usize,
    /// Protocol.
    pub proto: AppProto,
    /// Host name with `{n}` resolved.
    pub host: String,
    /// Server address.
    pub server_ip: IpAddr,
    /// Server port.
    pub server_port: u16,
    /// Device port.
    pub client_port: u16,
    /// Deliberately on a non-standard port.
    pub nonstandard: bool,
    /// Seed of this flow's own random stream.
    pub seed: u64,
}

/// The fleet, its sessions and the flows, sorted by start.
#[derive(Debug)]
pub struct Plan {
    /// Devices.
    pub devices: Vec<Device>,
    /// Foreground sessions, sorted by start.
    pub sessions: Vec<Session>,
    /// Flows, sorted by (start, id).
    pub flows: Vec<FlowSpec>,
}

/// What the planner needs from the options.
#[derive(Debug, Clone)]
pub struct PlanInput {
    /// Seed.
    pub seed: u64,
    /// Stream separating this plan's draws from another plan with the same seed.
    pub stream: u64,
    /// Number of devices.
    pub devices: u32,
    /// Number of flows.
    pub flows: u64,
    /// Relative share of flows per protocol.
    pub mix: BTreeMap<AppProto, f64>,
    /// Share of flows on a non-standard port.
    pub nonstandard_share: f64,
    /// Share of flows over IPv6 (where the server has IPv6).
    pub ipv6_share: f64,
    /// Capture start (µs since epoch).
    pub start_us: u64,
    /// Capture length (µs).
    pub duration_us: u64,
}

const SERIAL_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRTVWXYZ0123456789";

/// Resolves `{n}` in a catalogue host name.
pub fn host_name(pattern: &str, n: u64) -> String {
    pattern.replace("{n}", &n.to_string())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Draws the fleet.
pub fn devices(cat: &Catalogue, seed: u64, n: u32) -> Vec<Device> {
    let mut rng = SynthRng::new(seed, 0x6465_7669);
    let model_w: Vec<f64> = cat.models.iter().map(|m| m.weight).collect();
    let os_w: Vec<f64> = cat.os_versions.iter().map(|o| o.weight).collect();
    let role_w: Vec<f64> = cat.roles.iter().map(|r| r.weight).collect();
    let v4 = cat.parsed.device_v4;
    let v6 = cat.parsed.device_v6;
    let mut per_role: BTreeMap<usize, u32> = BTreeMap::new();
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        // Every role appears once before roles are drawn by weight, so small fleets cover them.
        let role = if (i as usize) < cat.roles.len() {
            i as usize
        } else {
            rng.weighted(&role_w)
        };
        let model = rng.weighted(&model_w);
        let os = rng.weighted(&os_w);
        let chip = cat
            .models
            .get(model)
            .map_or("00008110", |m| m.chip_id.as_str());
        let udid = format!("{}-{:016X}", chip.to_uppercase(), rng.u64() >> 8);
        let serial: String = (0..10)
            .map(|_| SERIAL_ALPHABET[rng.below(SERIAL_ALPHABET.len() as u64) as usize] as char)
            .collect();
        let oui = cat
            .parsed
            .ouis
            .get(rng.below(cat.parsed.ouis.len() as u64) as usize)
            .copied()
            .unwrap_or([0xf0, 0x18, 0x98]);
        let tail: [u8; 3] = rng.bytes();
        let mac = [oui[0], oui[1], oui[2], tail[0], tail[1], tail[2]];
        // 10.20.1.10 .. 10.20.1.209, 10.20.2.10 ..: 200 devices per /24, skipping .0/24.
        let host = 256 + (i as u128 / 200) * 256 + 10 + (i as u128 % 200);
        let ipv4 = v4.map_or(IpAddr::from([10, 20, 0, 0]), |p| p.nth(host));
        let iid: u64 = rng.u64() & !0x0200_0000_0000_0000;
        let ipv6 = match v6.map(|p| p.nth(((i as u128 + 1) << 64) | iid as u128)) {
            Some(a) => a,
            None => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        let role_name = cat.roles.get(role).map_or("user", |r| r.name.as_str());
        let mut apps = Vec::new();
        for (ai, app) in cat.apps.iter().enumerate() {
            if app.system {
                continue;
            }
            let by_role = cat
                .roles
                .get(role)
                .is_some_and(|r| r.apps.iter().any(|b| b == &app.bundle_id));
            if by_role || rng.chance(app.install_share) {
                apps.push(ai);
            }
        }
        let count = per_role.entry(role).or_insert(0);
        *count += 1;
        let kind = cat.models.get(model).map_or("iPhone", |m| m.kind.as_str());
        let ownership_draw = rng.unit();
        let (supervised, ownership) = if role_name == "kiosk" || ownership_draw < 0.9 {
            (true, "Institutional")
        } else {
            (false, "UserEnrollment")
        };
        out.push(Device {
            index: i,
            udid,
            serial,
            mac,
            ipv4,
            ipv6,
            model,
            os,
            role,
            apps,
            name: format!("{} {} {:02}", capitalise(role_name), kind, count),
            username: format!("user{:04}", i + 1),
            supervised,
            ownership,
        });
    }
    out
}

/// One (app, endpoint) a flow can use, with its draw weight and the devices that have the app.
struct Candidate {
    app: usize,
    endpoint: usize,
    weight: f64,
}

/// Plans the flows.
pub fn plan(cat: &Catalogue, input: &PlanInput) -> Plan {
    let devices = devices(cat, input.seed, input.devices.max(1));
    let mut rng = SynthRng::new(input.seed, 0x706c_616e ^ (input.stream << 32));
    // Devices per app.
    let mut app_devices: Vec<Vec<u32>> = vec![Vec::new(); cat.apps.len()];
    for (ai, app) in cat.apps.iter().enumerate() {
        if app.system {
            app_devices[ai] = devices.iter().map(|d| d.index).collect();
        }
    }
    for d in &devices {
        for &ai in &d.apps {
            if let Some(v) = app_devices.get_mut(ai) {
                v.push(d.index);
            }
        }
    }
    // Candidates per protocol (normal and non-standard).
    let mut normal: BTreeMap<AppProto, Vec<Candidate>> = BTreeMap::new();
    let mut alt: BTreeMap<AppProto, Vec<Candidate>> = BTreeMap::new();
    for (ai, app) in cat.apps.iter().enumerate() {
        if app_devices[ai].is_empty() {
            continue;
        }
        for (ei, ep) in app.endpoints.iter().enumerate() {
            let w = app.weight * ep.weight;
            if w <= 0.0 {
                continue;
            }
            normal.entry(ep.proto).or_default().push(Candidate {
                app: ai,
                endpoint: ei,
                weight: w,
            });
            // DNS looks up the hosts of every other protocol.
            normal.entry(AppProto::Dns).or_default().push(Candidate {
                app: ai,
                endpoint: ei,
                weight: w,
            });
            if !ep.alt_ports.is_empty() {
                alt.entry(ep.proto).or_default().push(Candidate {
                    app: ai,
                    endpoint: ei,
                    weight: w,
                });
            }
        }
    }
    let protos: Vec<AppProto> = AppProto::ALL.to_vec();
    let mix_w: Vec<f64> = protos
        .iter()
        .map(|p| {
            if normal.contains_key(p) {
                input.mix.get(p).copied().unwrap_or(0.0)
            } else {
                0.0
            }
        })
        .collect();
    // Non-standard flows: protocols that have a non-standard port to go to.
    let alt_w: Vec<f64> = protos
        .iter()
        .zip(&mix_w)
        .map(|(p, w)| {
            if alt.contains_key(p) || !cat.ports(*p).nonstandard_ports.is_empty() {
                *w
            } else {
                0.0
            }
        })
        .collect();
    let mut sessions: BTreeMap<(u32, usize), Vec<Session>> = BTreeMap::new();
    let mut flows = Vec::with_capacity(input.flows as usize);
    let d = input.duration_us.max(1);
    if mix_w.iter().all(|w| *w <= 0.0) {
        return Plan {
            devices,
            sessions: Vec::new(),
            flows,
        };
    }
    for id in 0..input.flows {
        let mut nonstandard = rng.chance(input.nonstandard_share) && alt_w.iter().any(|w| *w > 0.0);
        let proto = protos[if nonstandard {
            rng.weighted(&alt_w)
        } else {
            rng.weighted(&mix_w)
        }];
        let pool = match (nonstandard, alt.get(&proto)) {
            (true, Some(a)) => a,
            _ => match normal.get(&proto) {
                Some(n) => n,
                None => continue,
            },
        };
        let cw: Vec<f64> = pool.iter().map(|c| c.weight).collect();
        let Some(cand) = pool.get(rng.weighted(&cw)) else {
            continue;
        };
        let (ai, ei) = (cand.app, cand.endpoint);
        let (Some(app), Some(devs)) = (cat.apps.get(ai), app_devices.get(ai)) else {
            continue;
        };
        let Some(ep) = app.endpoints.get(ei) else {
            continue;
        };
        let Some(&dev) = devs.get(rng.below(devs.len() as u64) as usize) else {
            continue;
        };
        // Start time: inside a foreground session of the app, or anywhere for daemons (early
        // for long-lived push connections).
        let start_off = if app.system {
            let span = if cat.profile(ep).is_some_and(|p| p.think_ms[1] >= 60_000) {
                d / 4
            } else {
                d
            };
            rng.below(span.max(1))
        } else {
            let list = sessions.entry((dev, ai)).or_default();
            let s = if !list.is_empty() && rng.chance(0.75) {
                list[rng.below(list.len() as u64) as usize]
            } else {
                let st = input.start_us + rng.below(d);
                let len = rng.log_range(20_000_000, 900_000_000);
                let s = Session {
                    device: dev,
                    app: ai,
                    start_us: st,
                    end_us: (st + len).min(input.start_us + d),
                };
                list.push(s);
                s
            };
            s.start_us - input.start_us + rng.below((s.end_us - s.start_us).max(1))
        };
        let host = host_name(&ep.host, rng.range(1, 50));
        let Some(provider) = cat.provider(ep) else {
            continue;
        };
        let (v4, v6) = host_addresses(&host, provider);
        let want_v6 = rng.chance(input.ipv6_share);
        let ports = cat.ports(proto);
        let (server_ip, server_port) = if proto == AppProto::Dns {
            let r6 = &cat.parsed.resolvers_v6;
            let list = if want_v6 && !r6.is_empty() {
                r6
            } else {
                &cat.parsed.resolvers_v4
            };
            let Some(ip) = rng.pick(list).copied() else {
                continue;
            };
            (ip, ports.standard_ports.first().copied().unwrap_or(53))
        } else {
            let list = if want_v6 && !v6.is_empty() { &v6 } else { &v4 };
            let Some(ip) = rng.pick(list).copied() else {
                continue;
            };
            let port = if nonstandard {
                let choices = if ep.alt_ports.is_empty() {
                    &ports.nonstandard_ports
                } else {
                    &ep.alt_ports
                };
                match rng.pick(choices) {
                    Some(p) => *p,
                    None => {
                        nonstandard = false;
                        ports.standard_ports.first().copied().unwrap_or(443)
                    }
                }
            } else {
                // APNs uses 5223 and falls back to 443.
                let sp = &ports.standard_ports;
                if sp.len() > 1 && rng.chance(0.2) {
                    sp.get(1).copied().unwrap_or(443)
                } else {
                    sp.first().copied().unwrap_or(443)
                }
            };
            (ip, port)
        };
        if proto == AppProto::Dns {
            nonstandard = false;
        }
        flows.push(FlowSpec {
            id: id as u32,
            start_us: input.start_us + start_off,
            device: dev,
            app: ai,
            endpoint: ei,
            proto,
            host,
            server_ip,
            server_port,
            client_port: rng.range(49152, 65535) as u16,
            nonstandard,
            seed: rng.u64(),
        });
    }
    flows.sort_by_key(|f| (f.start_us, f.id));
    let mut all_sessions: Vec<Session> = sessions.into_values().flatten().collect();
    all_sessions.sort_by_key(|s| (s.start_us, s.device, s.app));
    Plan {
        devices,
        sessions: all_sessions,
        flows,
    }
}
