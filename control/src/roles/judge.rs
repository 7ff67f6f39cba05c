//! Judging one protocol → port pairing: against the attributed app's role baseline, else the
//! device default baseline (pairings approved for unattributed traffic, then the registered ports
//! passed in through [`RegisteredPorts`], then the dataplane's own verdict).
//!
//! Owns: [`RegisteredPorts`] (the seam through which the dataplane's port registry is passed
//! in) and its two implementations, [`PairingQuery`], [`Judgement`], [`BaselineBasis`],
//! [`ViolationKind`], and [`RoleSet::judge`].
//! Must not: match exceptions (an approved pairing needs none; see [`super::exceptions`]) or keep
//! state between verdicts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{PortRule, RoleSet, UnlistedProtocols};

/// The dataplane's port registry as the control plane sees it: is `port` a standard port for
/// `app_proto` over `transport`? Implemented by [`RegisteredPortMap`] and by any
/// `Fn(&str, &str, u16) -> bool` wrapped in [`RegisteredPortsFn`].
pub trait RegisteredPorts: Send + Sync {
    /// True when the registry lists `port` for `app_proto` (lowercase) over `transport` (`TCP`,
    /// `UDP`), or has no opinion about `app_proto`.
    fn is_standard(&self, app_proto: &str, transport: &str, port: u16) -> bool;

    /// The registered ports for `app_proto`, for alert context; empty when unknown.
    fn standard_ports(&self, _app_proto: &str, _transport: &str) -> Vec<u16> {
        Vec::new()
    }

    /// False when the registry has no opinion about `app_proto` (used for the STARTTLS check,
    /// which must not approve a port because an unknown protocol is "standard everywhere").
    fn knows(&self, _app_proto: &str) -> bool {
        true
    }

    /// True when this registry is the one the dataplane judged the flow with (the daemon's and
    /// replay's device default baseline): a flow's own verdict (`port_mismatch` of the observation)
    /// is then its answer, and [`is_standard`](Self::is_standard) is not asked a second time for it.
    /// A registry from a roles file's `[registry]` table says false and is asked, since it may differ
    /// from the dataplane's.
    fn judged_by_dataplane(&self) -> bool {
        false
    }
}

/// Adapts a closure `(app_proto, transport, port) -> is_standard` into a [`RegisteredPorts`].
pub struct RegisteredPortsFn<F>(pub F);

impl<F> RegisteredPorts for RegisteredPortsFn<F>
where
    F: Fn(&str, &str, u16) -> bool + Send + Sync,
{
    fn is_standard(&self, app_proto: &str, transport: &str, port: u16) -> bool {
        (self.0)(app_proto, transport, port)
    }
}

/// A simple registry: protocol → rules. Protocols it does not list are treated as standard on
/// every port (no opinion), so a partial map never flags protocols it was not told about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisteredPortMap {
    rules: BTreeMap<String, Vec<PortRule>>,
}

impl RegisteredPortMap {
    /// Adds ports for a protocol.
    pub fn insert(&mut self, app_proto: &str, transport: Option<&str>, ports: &[u16]) {
        self.rules
            .entry(app_proto.to_ascii_lowercase())
            .or_default()
            .push(PortRule {
                app_proto: app_proto.to_ascii_lowercase(),
                transport: transport.map(str::to_ascii_uppercase),
                ports: ports.to_vec(),
                starttls: false,
            });
    }

    /// Builder form of [`insert`](Self::insert).
    pub fn with(mut self, app_proto: &str, ports: &[u16]) -> Self {
        self.insert(app_proto, None, ports);
        self
    }
}

impl RegisteredPorts for RegisteredPortMap {
    fn is_standard(&self, app_proto: &str, transport: &str, port: u16) -> bool {
        match self.rules.get(app_proto) {
            None => true,
            Some(rules) => rules
                .iter()
                .any(|r| r.transport_matches(transport) && r.ports.contains(&port)),
        }
    }

    fn standard_ports(&self, app_proto: &str, transport: &str) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .rules
            .get(app_proto)
            .into_iter()
            .flatten()
            .filter(|r| r.transport_matches(transport))
            .flat_map(|r| r.ports.iter().copied())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    fn knows(&self, app_proto: &str) -> bool {
        self.rules.contains_key(app_proto)
    }
}

/// Which baseline judged a pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineBasis {
    /// The attributed app's role.
    Role,
    /// The port registry passed in (device default baseline).
    Registry,
    /// The dataplane's own `port_mismatch` verdict (device default baseline).
    Dataplane,
    /// Pairings approved for unattributed traffic through learning.
    DeviceDefaultApproved,
    /// Nothing could judge it: treated as approved.
    NoVerdict,
}

/// Which baseline a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// Protocol on a port outside the device default baseline (port registry).
    DeviceBaseline,
    /// Pairing outside the approved mapping for the app's role.
    RoleBaseline,
}

/// The verdict on one pairing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// No violation.
    pub approved: bool,
    /// Which baseline was broken (meaningful when not approved).
    pub kind: ViolationKind,
    /// Which baseline judged.
    pub basis: BaselineBasis,
    /// The role whose baseline applied (`None` = device default).
    pub baseline_role: Option<String>,
    /// The approved ports for the protocol under that baseline.
    pub approved_ports: Vec<u16>,
    /// Human-readable explanation.
    pub explanation: String,
}

/// One pairing to judge.
#[derive(Debug, Clone, Copy)]
pub struct PairingQuery<'a> {
    /// The attributed role, if any.
    pub role: Option<&'a str>,
    /// Lowercase protocol.
    pub app_proto: &'a str,
    /// `TCP`/`UDP`.
    pub transport: &'a str,
    /// Server port.
    pub port: u16,
    /// STARTTLS upgrade seen.
    pub starttls: bool,
    /// The dataplane's verdict (`Some(true)` = mismatch).
    pub dataplane_mismatch: Option<bool>,
}

impl RoleSet {
    /// Approved ports for `app_proto` in `role` (`None` when the role does not list it).
    pub fn role_ports(&self, role: &str, app_proto: &str, transport: &str) -> Option<Vec<u16>> {
        let r = self.role(role)?;
        let mut ports: Vec<u16> = r
            .rules
            .iter()
            .filter(|x| x.app_proto == app_proto && x.transport_matches(transport))
            .flat_map(|x| x.ports.iter().copied())
            .collect();
        if ports.is_empty() {
            return None;
        }
        ports.sort_unstable();
        ports.dedup();
        Some(ports)
    }

    /// Judges one pairing. Order: the attributed role's rules for the protocol; else (role does
    /// not list it and is not `deny`, or no role) the device default baseline: pairings approved
    /// for [`DEVICE_DEFAULT`](super::DEVICE_DEFAULT), then `registry`, then the dataplane's verdict; with none of these the
    /// pairing is approved (no evidence against it).
    pub fn judge(&self, q: &PairingQuery<'_>, registry: Option<&dyn RegisteredPorts>) -> Judgement {
        let upgraded_tls = q.starttls && q.app_proto == "tls";
        if let Some(role) = q.role.and_then(|r| self.role(r)) {
            let listed: Vec<&PortRule> = role
                .rules
                .iter()
                .filter(|r| r.app_proto == q.app_proto && r.transport_matches(q.transport))
                .collect();
            let starttls_ok = upgraded_tls
                && role.rules.iter().any(|r| {
                    r.starttls && r.transport_matches(q.transport) && r.ports.contains(&q.port)
                });
            if !listed.is_empty() || starttls_ok {
                let mut ports: Vec<u16> = listed
                    .iter()
                    .flat_map(|r| r.ports.iter().copied())
                    .collect();
                ports.sort_unstable();
                ports.dedup();
                let approved = starttls_ok || ports.contains(&q.port);
                let explanation = if starttls_ok {
                    format!(
                        "TLS via STARTTLS on {}/{} is approved for role `{}`",
                        q.transport, q.port, role.name
                    )
                } else if approved {
                    format!(
                        "{} on {}/{} is approved for role `{}`",
                        q.app_proto, q.transport, q.port, role.name
                    )
                } else {
                    format!(
                        "{} on {}/{} is outside role `{}` approved ports {:?}",
                        q.app_proto, q.transport, q.port, role.name, ports
                    )
                };
                return Judgement {
                    approved,
                    kind: ViolationKind::RoleBaseline,
                    basis: BaselineBasis::Role,
                    baseline_role: Some(role.name.clone()),
                    approved_ports: ports,
                    explanation,
                };
            }
            if role.unlisted == UnlistedProtocols::Deny {
                return Judgement {
                    approved: false,
                    kind: ViolationKind::RoleBaseline,
                    basis: BaselineBasis::Role,
                    baseline_role: Some(role.name.clone()),
                    approved_ports: Vec::new(),
                    explanation: format!(
                        "role `{}` does not approve {} at all",
                        role.name, q.app_proto
                    ),
                };
            }
        }
        self.judge_device_default(q, registry)
    }

    fn judge_device_default(
        &self,
        q: &PairingQuery<'_>,
        registry: Option<&dyn RegisteredPorts>,
    ) -> Judgement {
        let upgraded_tls = q.starttls && q.app_proto == "tls";
        let extra = self.device_default_rules.iter().any(|r| {
            r.transport_matches(q.transport)
                && r.ports.contains(&q.port)
                && (r.app_proto == q.app_proto || (upgraded_tls && r.starttls))
        });
        let verdict = |approved: bool,
                       basis: BaselineBasis,
                       ports: Vec<u16>,
                       explanation: String| Judgement {
            approved,
            kind: ViolationKind::DeviceBaseline,
            basis,
            baseline_role: None,
            approved_ports: ports,
            explanation,
        };
        if extra {
            return verdict(
                true,
                BaselineBasis::DeviceDefaultApproved,
                Vec::new(),
                format!(
                    "{} on {}/{} approved for unattributed traffic",
                    q.app_proto, q.transport, q.port
                ),
            );
        }
        if let Some(reg) = registry {
            let direct = match q.dataplane_mismatch {
                Some(mismatch) if reg.judged_by_dataplane() => !mismatch,
                _ => reg.is_standard(q.app_proto, q.transport, q.port),
            };
            let via_starttls = upgraded_tls
                && self
                    .starttls_protocols
                    .iter()
                    .any(|p| reg.knows(p) && reg.is_standard(p, q.transport, q.port));
            let ports = reg.standard_ports(q.app_proto, q.transport);
            let approved = direct || via_starttls;
            let explanation = if via_starttls && !direct {
                format!(
                    "TLS via STARTTLS on {}/{} (a registered STARTTLS port)",
                    q.transport, q.port
                )
            } else if approved {
                format!(
                    "{} on {}/{} is a registered port",
                    q.app_proto, q.transport, q.port
                )
            } else {
                format!(
                    "{} on {}/{} is not a registered port for {} (registered: {:?})",
                    q.app_proto, q.transport, q.port, q.app_proto, ports
                )
            };
            return verdict(approved, BaselineBasis::Registry, ports, explanation);
        }
        match q.dataplane_mismatch {
            Some(mismatch) => {
                let approved = !mismatch || upgraded_tls;
                let explanation = if approved && mismatch {
                    format!("TLS via STARTTLS on {}/{}", q.transport, q.port)
                } else if approved {
                    format!(
                        "{} on {}/{} matches the dataplane registry",
                        q.app_proto, q.transport, q.port
                    )
                } else {
                    format!(
                        "{} on {}/{} is not a registered port for {} (dataplane registry)",
                        q.app_proto, q.transport, q.port, q.app_proto
                    )
                };
                verdict(approved, BaselineBasis::Dataplane, Vec::new(), explanation)
            }
            None => verdict(
                true,
                BaselineBasis::NoVerdict,
                Vec::new(),
                "no baseline verdict available".to_string(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_defaults_parse_and_judge() {
        let roles = RoleSet::shipped_defaults().unwrap();
        let mail = roles.role("mail").expect("mail role");
        assert!(mail.has_bundle("com.apple.mobilemail"));
        let q = |port, proto, starttls| PairingQuery {
            role: Some("mail"),
            app_proto: proto,
            transport: "TCP",
            port,
            starttls,
            dataplane_mismatch: None,
        };
        assert!(roles.judge(&q(993, "tls", false), None).approved);
        let j = roles.judge(&q(8443, "tls", false), None);
        assert!(!j.approved);
        assert_eq!(j.kind, ViolationKind::RoleBaseline);
        assert_eq!(j.approved_ports, vec![443, 465, 993]);
        assert!(roles.judge(&q(143, "imap", false), None).approved);
        assert!(
            roles.judge(&q(143, "tls", true), None).approved,
            "STARTTLS on 143"
        );
        assert!(
            roles.judge(&q(587, "tls", true), None).approved,
            "STARTTLS on 587"
        );
        assert!(!roles.judge(&q(9000, "tls", true), None).approved);
    }

    /// The dataplane's own registry: its `is_standard` must not be asked again for a flow the
    /// workers judged; it still gives the registered ports and answers for flows without a verdict.
    struct DataplaneLike {
        asked: std::sync::atomic::AtomicUsize,
    }

    impl RegisteredPorts for DataplaneLike {
        fn is_standard(&self, app_proto: &str, _transport: &str, port: u16) -> bool {
            self.asked
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            app_proto != "http" || port == 80
        }
        fn standard_ports(&self, _app_proto: &str, _transport: &str) -> Vec<u16> {
            vec![80]
        }
        fn judged_by_dataplane(&self) -> bool {
            true
        }
    }

    #[test]
    fn the_dataplanes_registry_is_not_asked_again_for_a_judged_flow() {
        let roles = RoleSet::shipped_defaults().unwrap();
        let reg = DataplaneLike {
            asked: Default::default(),
        };
        let asked = || reg.asked.load(std::sync::atomic::Ordering::Relaxed);
        let q = PairingQuery {
            role: None,
            app_proto: "http",
            transport: "TCP",
            port: 8080,
            starttls: false,
            dataplane_mismatch: Some(true),
        };
        let j = roles.judge(&q, Some(&reg));
        assert!(!j.approved);
        assert_eq!(j.basis, BaselineBasis::Registry);
        assert_eq!(
            j.approved_ports,
            vec![80],
            "context still from the registry"
        );
        assert_eq!(asked(), 0, "the verdict came with the flow");
        // The flow's verdict is the answer, whatever a second lookup would say.
        let j = roles.judge(
            &PairingQuery {
                dataplane_mismatch: Some(false),
                ..q
            },
            Some(&reg),
        );
        assert!(j.approved);
        assert_eq!(asked(), 0);
        // A flow without a verdict (EVE input that carries none) asks the registry.
        let j = roles.judge(
            &PairingQuery {
                dataplane_mismatch: None,
                ..q
            },
            Some(&reg),
        );
        assert!(!j.approved);
        assert_eq!(asked(), 1);
    }

    #[test]
    fn registry_and_dataplane_fallbacks() {
        let roles = RoleSet::shipped_defaults().unwrap();
        let reg = RegisteredPortMap::default()
            .with("http", &[80])
            .with("imap", &[143]);
        let q = PairingQuery {
            role: None,
            app_proto: "http",
            transport: "TCP",
            port: 8080,
            starttls: false,
            dataplane_mismatch: Some(false),
        };
        let j = roles.judge(&q, Some(&reg));
        assert!(!j.approved, "registry beats the dataplane's verdict");
        assert_eq!(j.basis, BaselineBasis::Registry);
        assert!(
            !roles
                .judge(
                    &PairingQuery {
                        dataplane_mismatch: Some(true),
                        ..q
                    },
                    None
                )
                .approved
        );
        assert!(
            roles
                .judge(
                    &PairingQuery {
                        dataplane_mismatch: None,
                        ..q
                    },
                    None
                )
                .approved
        );
        let tls143 = PairingQuery {
            app_proto: "tls",
            port: 143,
            starttls: true,
            ..q
        };
        assert!(roles.judge(&tls143, Some(&reg)).approved);
        let f = RegisteredPortsFn(|p: &str, _t: &str, port: u16| p != "http" || port == 80);
        assert!(!roles.judge(&q, Some(&f)).approved);
    }
}
