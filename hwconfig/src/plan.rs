//! The offload plan: for each port and each wanted offload, whether the NIC does it or software
//! does, and why.
//!
//! Owns: [`PortCapabilities`] (what the dataplane learned by probing a port: `rte_eth_dev_info`
//! and one `rte_flow_validate` per [`FlowRuleKind`]), the pure decision [`plan_offloads`], and
//! the [`OffloadPlan`] it returns, printable as a table ([`fmt::Display`]) and as JSON (serde).
//! Must not: call DPDK — the dataplane probes and fills [`PortCapabilities`]; this module only
//! decides, so the decision is testable without a NIC.

use crate::config::{to_hex, HardwareDescription, PortConfig};
use crate::rss;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// `RTE_ETH_RSS_*` hash-type bits of DPDK 22.11 (`rte_ethdev.h`), as found in
/// `rte_eth_dev_info.flow_type_rss_offloads` and passed in `rte_eth_rss_conf.rss_hf`.
pub mod rss_types {
    /// IPv4 addresses, any IPv4 packet.
    pub const IPV4: u64 = 1 << 2;
    /// IPv4 fragments (addresses only).
    pub const FRAG_IPV4: u64 = 1 << 3;
    /// Unfragmented IPv4 TCP (4-tuple).
    pub const NONFRAG_IPV4_TCP: u64 = 1 << 4;
    /// Unfragmented IPv4 UDP (4-tuple).
    pub const NONFRAG_IPV4_UDP: u64 = 1 << 5;
    /// Unfragmented IPv4, other protocols (addresses only).
    pub const NONFRAG_IPV4_OTHER: u64 = 1 << 7;
    /// IPv6 addresses, any IPv6 packet.
    pub const IPV6: u64 = 1 << 8;
    /// IPv6 fragments (addresses only).
    pub const FRAG_IPV6: u64 = 1 << 9;
    /// Unfragmented IPv6 TCP (4-tuple).
    pub const NONFRAG_IPV6_TCP: u64 = 1 << 10;
    /// Unfragmented IPv6 UDP (4-tuple).
    pub const NONFRAG_IPV6_UDP: u64 = 1 << 11;
    /// Unfragmented IPv6, other protocols (addresses only).
    pub const NONFRAG_IPV6_OTHER: u64 = 1 << 13;

    /// The 4-tuple types hardware RSS must offer for flows to be spread as `portolan shard`
    /// spreads them.
    pub const REQUIRED: u64 =
        NONFRAG_IPV4_TCP | NONFRAG_IPV4_UDP | NONFRAG_IPV6_TCP | NONFRAG_IPV6_UDP;
    /// Everything Portolan asks for when the device offers it: the 4-tuple types plus the
    /// address-only types for fragments and other protocols (without these, such packets land
    /// on queue 0).
    pub const WANTED: u64 =
        REQUIRED | IPV4 | FRAG_IPV4 | NONFRAG_IPV4_OTHER | IPV6 | FRAG_IPV6 | NONFRAG_IPV6_OTHER;

    /// Names of the bits of [`WANTED`], for messages.
    pub const NAMES: [(u64, &str); 10] = [
        (IPV4, "ipv4"),
        (FRAG_IPV4, "frag_ipv4"),
        (NONFRAG_IPV4_TCP, "nonfrag_ipv4_tcp"),
        (NONFRAG_IPV4_UDP, "nonfrag_ipv4_udp"),
        (NONFRAG_IPV4_OTHER, "nonfrag_ipv4_other"),
        (IPV6, "ipv6"),
        (FRAG_IPV6, "frag_ipv6"),
        (NONFRAG_IPV6_TCP, "nonfrag_ipv6_tcp"),
        (NONFRAG_IPV6_UDP, "nonfrag_ipv6_udp"),
        (NONFRAG_IPV6_OTHER, "nonfrag_ipv6_other"),
    ];

    /// The names of the bits of `bits` among [`NAMES`], comma-separated.
    pub fn names(bits: u64) -> String {
        NAMES
            .iter()
            .filter(|(b, _)| bits & b != 0)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `RTE_ETH_RX_OFFLOAD_RSS_HASH`: the device can deliver the RSS hash in each mbuf.
pub const RX_OFFLOAD_RSS_HASH: u64 = 1 << 19;

/// The rte_flow rules the offloads install, one representative rule per kind. The dataplane
/// builds each with the port's real values and asks `rte_flow_validate` about it.
///
/// Priorities: bypass rules 0, prefilter pass rules 1, the prefilter's drop rule 2 (lower
/// number wins), all in group 0, ingress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowRuleKind {
    /// `ETH / IPV4 src is <subnet> (spec + mask) / END` → `RSS` over the port's queues with the
    /// configured key and types; priority 1. One per IPv4 subnet and direction (src, dst).
    PrefilterIpv4Subnet,
    /// As [`Self::PrefilterIpv4Subnet`] with `IPV6` and a prefix mask.
    PrefilterIpv6Subnet,
    /// `ETH / END` → `DROP`; priority 2: everything no pass rule matched.
    PrefilterDropOther,
    /// `ETH / IPV4 src, dst exact / TCP src, dst port exact / END` → `DROP`; priority 0. Stands
    /// for the UDP rule too.
    BypassDropIpv4,
    /// As [`Self::BypassDropIpv4`] with `IPV6`.
    BypassDropIpv6,
    /// The bypass pattern → `MARK id / RSS`: the NIC tags the mbuf (`RTE_MBUF_F_RX_FDIR_ID`)
    /// and the worker skips it before parsing. Used when `DROP` is refused.
    BypassMarkIpv4,
    /// As [`Self::BypassMarkIpv4`] with `IPV6`.
    BypassMarkIpv6,
}

impl FlowRuleKind {
    /// Every kind, in order.
    pub const ALL: [FlowRuleKind; 7] = [
        FlowRuleKind::PrefilterIpv4Subnet,
        FlowRuleKind::PrefilterIpv6Subnet,
        FlowRuleKind::PrefilterDropOther,
        FlowRuleKind::BypassDropIpv4,
        FlowRuleKind::BypassDropIpv6,
        FlowRuleKind::BypassMarkIpv4,
        FlowRuleKind::BypassMarkIpv6,
    ];

    /// Stable snake_case name (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            FlowRuleKind::PrefilterIpv4Subnet => "prefilter_ipv4_subnet",
            FlowRuleKind::PrefilterIpv6Subnet => "prefilter_ipv6_subnet",
            FlowRuleKind::PrefilterDropOther => "prefilter_drop_other",
            FlowRuleKind::BypassDropIpv4 => "bypass_drop_ipv4",
            FlowRuleKind::BypassDropIpv6 => "bypass_drop_ipv6",
            FlowRuleKind::BypassMarkIpv4 => "bypass_mark_ipv4",
            FlowRuleKind::BypassMarkIpv6 => "bypass_mark_ipv6",
        }
    }
}

impl fmt::Display for FlowRuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal from `rte_flow_validate`: its return value (a negative errno) and the message of
/// the `rte_flow_error` it filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RteFlowError {
    /// Return value, e.g. -38 (`-ENOSYS`) when the driver has no rte_flow support.
    pub code: i32,
    /// `rte_flow_error.message` (or `strerror`), e.g. "Function not implemented".
    pub message: String,
}

impl From<(i32, String)> for RteFlowError {
    fn from((code, message): (i32, String)) -> Self {
        RteFlowError { code, message }
    }
}

impl fmt::Display for RteFlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

/// What the dataplane learned by probing one port (`rte_eth_dev_info_get` and
/// `rte_flow_validate`), in the order of [`HardwareDescription::ports`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortCapabilities {
    /// `driver_name` (e.g. `net_pcap`, `net_i40e`).
    pub driver_name: String,
    /// `max_rx_queues`.
    pub max_rx_queues: u16,
    /// `flow_type_rss_offloads`: the `RTE_ETH_RSS_*` types the device can hash (0: no RSS).
    pub flow_type_rss_offloads: u64,
    /// `hash_key_size` in bytes (0: no programmable key).
    pub hash_key_size: u8,
    /// `reta_size`: RETA entries (0: no RETA).
    pub reta_size: u16,
    /// `rx_offload_capa`.
    pub rx_offload_capa: u64,
    /// `rte_flow_validate`'s answer per rule kind probed; kinds not probed are absent.
    pub rte_flow_validate: BTreeMap<FlowRuleKind, Result<(), RteFlowError>>,
}

/// An offload the hardware description can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Offload {
    /// Spreading flows over RX queues with the symmetric Toeplitz key.
    SymmetricRss,
    /// Dropping traffic with neither address in a managed-device subnet.
    PrefilterManagedSubnets,
    /// Dropping the packets of flows already judged.
    BypassJudgedFlows,
}

impl Offload {
    /// Stable snake_case name, as in the configuration and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Offload::SymmetricRss => "symmetric_rss",
            Offload::PrefilterManagedSubnets => "prefilter_managed_subnets",
            Offload::BypassJudgedFlows => "bypass_judged_flows",
        }
    }
}

/// Where an offload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// In the NIC (RSS; the bypass's rte_flow drop rules when `offloads.nic_bypass = true`).
    Hardware,
    /// The NIC accepts the rules (`rte_flow_validate`), but none are installed: the
    /// configuration does not ask for them (`offloads.nic_bypass`), or this version does not
    /// install that kind (the prefilter's rules, mark rules); the workers do it in software.
    HardwareCapable,
    /// In the driver: on a `net_af_xdp` port the daemon's XDP program drops the packets of
    /// judged TCP and UDP flows (the bypass) and the TCP/UDP packets with neither address in a
    /// managed subnet (the prefilter) before they reach the AF_XDP socket and the worker.
    Driver,
    /// In the workers, because the NIC cannot (the reason says why).
    SoftwareFallback,
    /// Not asked for in `[offloads]`; the software path (if any) still runs.
    NotRequested,
}

impl Placement {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Hardware => "hardware",
            Placement::HardwareCapable => "hardware_capable",
            Placement::Driver => "driver",
            Placement::SoftwareFallback => "software_fallback",
            Placement::NotRequested => "not_requested",
        }
    }
}

/// The decision for one offload on one port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffloadDecision {
    /// Which offload.
    pub offload: Offload,
    /// Hardware, software fallback, or not requested.
    pub placement: Placement,
    /// Why: the device's answer (for a fallback, the PMD's refusal, e.g.
    /// `rte_flow_validate(prefilter_ipv4_subnet): -38 Function not implemented`).
    pub reason: String,
    /// What runs in software instead, when the NIC does not do it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_path: Option<String>,
}

/// The plan for one port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortPlan {
    /// Index in `ports`.
    pub port: usize,
    /// The port's name.
    pub name: String,
    /// DPDK device name (PCI address or vdev name).
    pub device: String,
    /// The driver that probed it.
    pub driver: String,
    /// RX queues configured.
    pub rx_queues: u16,
    /// `rss_hf` to configure the port with: [`rss_types::WANTED`] ∩ the device's types when
    /// RSS runs in hardware, else 0.
    pub rss_hf: u64,
    /// The RSS key to program, in hex, sized to the device's `hash_key_size`; `None` without
    /// hardware RSS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_key: Option<String>,
    /// RETA entries filled round-robin over the queues: the device's in hardware, else
    /// `rss.reta_size` of the description (what `portolan shard` uses).
    pub reta_size: u16,
    /// One decision per offload, in [`Offload`] order.
    pub offloads: Vec<OffloadDecision>,
    /// Problems that stop this port from starting as described (e.g. more queues than the
    /// device has). Empty when it can start.
    pub problems: Vec<String>,
}

/// The offload plan of every port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffloadPlan {
    /// Per port, in description order.
    pub ports: Vec<PortPlan>,
}

/// The capabilities given do not match the description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// One [`PortCapabilities`] per described port is needed.
    #[error("{described} port(s) described but capabilities for {probed} given")]
    PortCountMismatch {
        /// `ports.len()` of the description.
        described: usize,
        /// Capabilities given.
        probed: usize,
    },
}

impl OffloadPlan {
    /// True when no port has a problem that stops it from starting.
    pub fn is_startable(&self) -> bool {
        self.ports.iter().all(|p| p.problems.is_empty())
    }

    /// The decision for `offload` on port `port`.
    pub fn decision(&self, port: usize, offload: Offload) -> Option<&OffloadDecision> {
        self.ports
            .get(port)?
            .offloads
            .iter()
            .find(|d| d.offload == offload)
    }

    /// The plan as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain strings, integers and enums cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl fmt::Display for OffloadPlan {
    /// One block per port: a header line, then a table of offload, placement and reason, with
    /// the software path under a fallback.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, port) in self.ports.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(
                f,
                "port {} {} ({}, driver {}): {} RX queue{}",
                port.port,
                port.name,
                port.device,
                port.driver,
                port.rx_queues,
                if port.rx_queues == 1 { "" } else { "s" }
            )?;
            let w_off = port
                .offloads
                .iter()
                .map(|d| d.offload.as_str().len())
                .max()
                .unwrap_or(0)
                .max("offload".len());
            let w_pl = "software_fallback".len();
            writeln!(f, "  {:w_off$}  {:w_pl$}  reason", "offload", "placement")?;
            for d in &port.offloads {
                writeln!(
                    f,
                    "  {:w_off$}  {:w_pl$}  {}",
                    d.offload.as_str(),
                    d.placement.as_str(),
                    d.reason
                )?;
                if let Some(sw) = &d.software_path {
                    writeln!(f, "  {:w_off$}  {:w_pl$}  software: {sw}", "", "")?;
                }
            }
            for p in &port.problems {
                writeln!(f, "  PROBLEM: {p}")?;
            }
        }
        Ok(())
    }
}

/// Decides, for every port of `hw` and every offload, hardware or software, from `caps` (one
/// per port, in order). Pure: the same inputs always give the same plan.
pub fn plan_offloads(
    hw: &HardwareDescription,
    caps: &[PortCapabilities],
) -> Result<OffloadPlan, PlanError> {
    if hw.ports.len() != caps.len() {
        return Err(PlanError::PortCountMismatch {
            described: hw.ports.len(),
            probed: caps.len(),
        });
    }
    let ports = hw
        .ports
        .iter()
        .zip(caps)
        .enumerate()
        .map(|(i, (port, cap))| plan_port(hw, i, port, cap))
        .collect();
    Ok(OffloadPlan { ports })
}

fn plan_port(
    hw: &HardwareDescription,
    index: usize,
    port: &PortConfig,
    cap: &PortCapabilities,
) -> PortPlan {
    let mut problems = Vec::new();
    if port.rx_queues > cap.max_rx_queues {
        problems.push(format!(
            "ports[{index}].rx_queues: {} but driver {} offers at most {}",
            port.rx_queues, cap.driver_name, cap.max_rx_queues
        ));
    }
    let rss = plan_rss(hw, index, port, cap, &mut problems);
    let mut plan = PortPlan {
        port: index,
        name: port.display_name(index),
        device: port.device_name().to_string(),
        driver: cap.driver_name.clone(),
        rx_queues: port.rx_queues,
        rss_hf: 0,
        rss_key: None,
        reta_size: hw.rss.reta_size,
        offloads: Vec::with_capacity(3),
        problems: Vec::new(),
    };
    if let Some(hardware) = &rss.hardware {
        plan.rss_hf = hardware.rss_hf;
        plan.rss_key = Some(to_hex(&hardware.key));
        plan.reta_size = cap.reta_size;
    }
    plan.offloads.push(rss.decision);
    plan.offloads.push(plan_prefilter(hw, cap));
    plan.offloads.push(plan_bypass(hw, cap));
    plan.problems = problems;
    plan
}

/// Hardware RSS settings when the NIC does it.
struct HardwareRss {
    rss_hf: u64,
    key: Vec<u8>,
}

struct RssOutcome {
    decision: OffloadDecision,
    hardware: Option<HardwareRss>,
}

fn plan_rss(
    hw: &HardwareDescription,
    index: usize,
    port: &PortConfig,
    cap: &PortCapabilities,
    problems: &mut Vec<String>,
) -> RssOutcome {
    let software_path = if port.rx_queues == 1 {
        "none needed: one RX queue, one worker owns every flow".to_string()
    } else if port.is_net_pcap() {
        format!(
            "`portolan shard --queues {}` splits the capture with the same key and {}; one rx_pcap per queue",
            port.rx_queues,
            hw.rss.mapping()
        )
    } else {
        "none: without RSS the device delivers every packet to RX queue 0".to_string()
    };
    let fallback = |placement: Placement, reason: String| RssOutcome {
        decision: OffloadDecision {
            offload: Offload::SymmetricRss,
            placement,
            reason,
            software_path: Some(software_path.clone()),
        },
        hardware: None,
    };
    let no_rss_problem = |problems: &mut Vec<String>| {
        if port.rx_queues > 1 && !port.is_net_pcap() {
            problems.push(format!(
                "ports[{index}].rx_queues: {} queues but no hardware RSS: queues 1.. would receive nothing",
                port.rx_queues
            ));
        }
    };
    if !hw.offloads.symmetric_rss {
        no_rss_problem(problems);
        return fallback(
            Placement::NotRequested,
            "offloads.symmetric_rss = false".to_string(),
        );
    }
    if hw.rss.fields == crate::config::RssFields::Addresses && !port.is_net_pcap() {
        no_rss_problem(problems);
        return fallback(
            Placement::SoftwareFallback,
            "rss.fields = \"addresses\": this version programs no hash types that hash TCP/UDP by addresses only on a device (drivers differ); use one RX queue, or addresses_and_ports".to_string(),
        );
    }
    let offered = cap.flow_type_rss_offloads;
    if offered == 0 {
        no_rss_problem(problems);
        return fallback(
            Placement::SoftwareFallback,
            format!(
                "flow_type_rss_offloads is 0: driver {} offers no RSS",
                cap.driver_name
            ),
        );
    }
    let missing = rss_types::REQUIRED & !offered;
    if missing != 0 {
        no_rss_problem(problems);
        return fallback(
            Placement::SoftwareFallback,
            format!(
                "flow_type_rss_offloads {offered:#x} lacks {}",
                rss_types::names(missing)
            ),
        );
    }
    if cap.reta_size == 0 {
        no_rss_problem(problems);
        return fallback(
            Placement::SoftwareFallback,
            "reta_size is 0: the device has no redirection table".to_string(),
        );
    }
    let key = match rss::key_for_device(&hw.rss.key, usize::from(cap.hash_key_size)) {
        Ok(key) => key,
        Err(e) => {
            no_rss_problem(problems);
            return fallback(Placement::SoftwareFallback, format!("hash_key_size: {e}"));
        }
    };
    let rss_hf = rss_types::WANTED & offered;
    let mut reason = format!(
        "flow_type_rss_offloads {offered:#x} covers {}; symmetric key of {} bytes; RETA of {} entries round-robin over {} queue{}",
        rss_types::names(rss_hf),
        key.len(),
        cap.reta_size,
        port.rx_queues,
        if port.rx_queues == 1 { "" } else { "s" }
    );
    let address_only = rss_types::WANTED & !rss_types::REQUIRED & !offered;
    if address_only != 0 {
        reason.push_str(&format!(
            "; without {} those packets go to queue 0",
            rss_types::names(address_only)
        ));
    }
    if cap.rx_offload_capa & RX_OFFLOAD_RSS_HASH != 0 {
        reason.push_str("; the hash is delivered in each mbuf");
    }
    RssOutcome {
        decision: OffloadDecision {
            offload: Offload::SymmetricRss,
            placement: Placement::Hardware,
            reason,
            software_path: None,
        },
        hardware: Some(HardwareRss { rss_hf, key }),
    }
}

/// The first refusal among `kinds`, as a reason; `None` when all were accepted.
fn first_refusal(cap: &PortCapabilities, kinds: &[FlowRuleKind]) -> Option<String> {
    kinds
        .iter()
        .find_map(|k| match cap.rte_flow_validate.get(k) {
            Some(Ok(())) => None,
            Some(Err(e)) => Some(format!("rte_flow_validate({k}): {e}")),
            None => Some(format!("rte_flow_validate({k}) was not probed")),
        })
}

fn plan_prefilter(hw: &HardwareDescription, cap: &PortCapabilities) -> OffloadDecision {
    let o = &hw.offloads;
    if !o.prefilter_managed_subnets {
        return OffloadDecision {
            offload: Offload::PrefilterManagedSubnets,
            placement: Placement::NotRequested,
            reason: "offloads.prefilter_managed_subnets = false".to_string(),
            software_path: Some("none: every packet is parsed".to_string()),
        };
    }
    let mut kinds = Vec::with_capacity(3);
    if o.managed_subnets
        .iter()
        .any(|n| matches!(n, ipnet::IpNet::V4(_)))
    {
        kinds.push(FlowRuleKind::PrefilterIpv4Subnet);
    }
    if o.managed_subnets
        .iter()
        .any(|n| matches!(n, ipnet::IpNet::V6(_)))
    {
        kinds.push(FlowRuleKind::PrefilterIpv6Subnet);
    }
    kinds.push(FlowRuleKind::PrefilterDropOther);
    let software_path = format!(
        "each worker skips packets with neither address in the {} managed subnet(s) before the flow table, counted as prefiltered",
        o.managed_subnets.len()
    );
    if cap.driver_name == "net_af_xdp" {
        return OffloadDecision {
            offload: Offload::PrefilterManagedSubnets,
            placement: Placement::Driver,
            reason: format!(
                "driver net_af_xdp: the daemon loads its XDP program (xdp_prog=) and fills its trie with the {} managed subnet(s); the driver drops TCP/UDP packets with neither address in one before the socket, counted per reason (unmanaged_ipv4, unmanaged_ipv6) as driver_prefiltered",
                o.managed_subnets.len()
            ),
            software_path: Some(format!(
                "for encapsulated and fragmented packets (the inner addresses decide) and until the driver's prefilter is on: {software_path}"
            )),
        };
    }
    match first_refusal(cap, &kinds) {
        Some(reason) => OffloadDecision {
            offload: Offload::PrefilterManagedSubnets,
            placement: Placement::SoftwareFallback,
            reason,
            software_path: Some(software_path),
        },
        None => OffloadDecision {
            offload: Offload::PrefilterManagedSubnets,
            placement: Placement::HardwareCapable,
            reason: format!(
                "rte_flow_validate accepted {}: the NIC could run {} pass rules (source and destination per subnet) and one drop rule; {NOT_INSTALLED}",
                kinds
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                2 * o.managed_subnets.len()
            ),
            software_path: Some(software_path),
        },
    }
}

fn plan_bypass(hw: &HardwareDescription, cap: &PortCapabilities) -> OffloadDecision {
    let software = "each worker's flow table keeps the verdict of a judged flow; its later packets are counted in the flow and skip the Hyperscan prefilter and parsers (counted as bypassed)";
    if !hw.offloads.bypass_judged_flows {
        return OffloadDecision {
            offload: Offload::BypassJudgedFlows,
            placement: Placement::NotRequested,
            reason: "offloads.bypass_judged_flows = false".to_string(),
            software_path: Some(software.to_string()),
        };
    }
    if cap.driver_name == "net_af_xdp" {
        return OffloadDecision {
            offload: Offload::BypassJudgedFlows,
            placement: Placement::Driver,
            reason: "driver net_af_xdp: the daemon loads its XDP program (xdp_prog=) and puts each decided flow's directions in the program's map (payload-free packets at once, a whole direction once no parser wants its payload); the driver drops them, counting them and their last time for the flow record (a flow still sending there does not expire), and TCP FIN/RST still reach the worker".to_string(),
            software_path: Some(format!("for flows not yet judged and flows the full map refused: {software}")),
        };
    }
    let drop = [FlowRuleKind::BypassDropIpv4, FlowRuleKind::BypassDropIpv6];
    let mark = [FlowRuleKind::BypassMarkIpv4, FlowRuleKind::BypassMarkIpv6];
    let software_not_installed = format!("for flows not yet judged, flows refused by the NIC and flows over the rule cap: {software}");
    let Some(drop_refused) = first_refusal(cap, &drop) else {
        if hw.offloads.nic_bypass {
            return OffloadDecision {
                offload: Offload::BypassJudgedFlows,
                placement: Placement::Hardware,
                reason: format!(
                    "rte_flow_validate accepted bypass_drop_ipv4, bypass_drop_ipv6 and offloads.nic_bypass = true: the daemon flushes the port's rules at start and exit, installs one drop rule per direction of each judged TCP flow, at most {} rules (a flow over the cap is counted as full), and removes them when the flow ends",
                    hw.offloads.nic_bypass_max_rules
                ),
                software_path: Some(software_not_installed),
            };
        }
        return OffloadDecision {
            offload: Offload::BypassJudgedFlows,
            placement: Placement::HardwareCapable,
            reason: "rte_flow_validate accepted bypass_drop_ipv4, bypass_drop_ipv6: the NIC could drop judged flows; set offloads.nic_bypass = true to install the rules".to_string(),
            software_path: Some(software.to_string()),
        };
    };
    match first_refusal(cap, &mark) {
        None => OffloadDecision {
            offload: Offload::BypassJudgedFlows,
            placement: Placement::HardwareCapable,
            reason: format!(
                "{drop_refused}; rte_flow_validate accepted bypass_mark_ipv4, bypass_mark_ipv6: the NIC could mark judged flows for the workers to skip; this version installs drop rules only, so the workers do it in software"
            ),
            software_path: Some(software.to_string()),
        },
        Some(mark_refused) => OffloadDecision {
            offload: Offload::BypassJudgedFlows,
            placement: Placement::SoftwareFallback,
            reason: format!("{drop_refused}; {mark_refused}"),
            software_path: Some(software.to_string()),
        },
    }
}

/// Why a rule-based offload the NIC accepts still runs in software.
const NOT_INSTALLED: &str =
    "this version installs no rte_flow rules yet, so the workers do it in software";

#[cfg(test)]
mod tests {
    use super::*;

    fn description(extra: &str) -> HardwareDescription {
        let text = format!(
            r#"
            [cores]
            lcores = "0-2"
            main = 0
            [memory]
            hugepages = true
            {extra}
            "#
        );
        HardwareDescription::from_toml_str(&text).unwrap()
    }

    const OFFLOADS: &str = r#"
        [offloads]
        symmetric_rss = true
        prefilter_managed_subnets = true
        managed_subnets = ["10.20.0.0/16", "2001:db8:20::/48"]
        bypass_judged_flows = true
    "#;

    const PCAP_PORT: &str = r#"
        [[ports]]
        vdev = "net_pcap0,rx_pcap=a.pcap,rx_pcap=b.pcap"
        rx_queues = 2
        queues = [{ lcore = 1 }, { lcore = 2 }]
    "#;

    const X710_PORT: &str = r#"
        [[ports]]
        name = "egress"
        pci = "0000:3b:00.0"
        rx_queues = 2
        queues = [{ lcore = 1 }, { lcore = 2 }]
    "#;

    /// What DPDK 22.11 reports for a net_pcap port: no RSS, no RETA, no key, and no rte_flow
    /// (rte_flow_validate fails with -ENOSYS for every rule).
    fn net_pcap_caps() -> PortCapabilities {
        PortCapabilities {
            driver_name: "net_pcap".to_string(),
            max_rx_queues: 16,
            flow_type_rss_offloads: 0,
            hash_key_size: 0,
            reta_size: 0,
            rx_offload_capa: 0,
            rte_flow_validate: FlowRuleKind::ALL
                .iter()
                .map(|&k| (k, Err((-38, "Function not implemented".to_string()).into())))
                .collect(),
        }
    }

    /// A NIC with full RSS (i40e-like: 52-byte key, 512-entry RETA) accepting every rule.
    fn x710_caps() -> PortCapabilities {
        PortCapabilities {
            driver_name: "net_i40e".to_string(),
            max_rx_queues: 192,
            flow_type_rss_offloads: rss_types::WANTED | (1 << 6) | (1 << 12) | (1 << 14),
            hash_key_size: 52,
            reta_size: 512,
            rx_offload_capa: RX_OFFLOAD_RSS_HASH,
            rte_flow_validate: FlowRuleKind::ALL.iter().map(|&k| (k, Ok(()))).collect(),
        }
    }

    #[test]
    fn an_af_xdp_port_bypasses_judged_flows_in_the_driver() {
        let hw = description(&format!("{OFFLOADS}{PCAP_PORT}"));
        let caps = PortCapabilities {
            driver_name: "net_af_xdp".to_string(),
            max_rx_queues: 1,
            ..net_pcap_caps()
        };
        let plan = plan_offloads(&hw, std::slice::from_ref(&caps)).unwrap();
        let by = plan.decision(0, Offload::BypassJudgedFlows).unwrap();
        assert_eq!(by.placement, Placement::Driver);
        assert!(by.reason.contains("XDP program"), "{}", by.reason);
        // Not asked for: not placed anywhere.
        let off = description(&format!(
            "{}{PCAP_PORT}",
            OFFLOADS.replace("bypass_judged_flows = true", "bypass_judged_flows = false")
        ));
        let plan = plan_offloads(&off, &[caps]).unwrap();
        let by = plan.decision(0, Offload::BypassJudgedFlows).unwrap();
        assert_eq!(by.placement, Placement::NotRequested);
    }

    #[test]
    fn net_pcap_has_no_rss_so_sharding_is_the_software_fallback() {
        let hw = description(&format!("{OFFLOADS}{PCAP_PORT}"));
        let plan = plan_offloads(&hw, &[net_pcap_caps()]).unwrap();
        let rss = plan.decision(0, Offload::SymmetricRss).unwrap();
        assert_eq!(rss.placement, Placement::SoftwareFallback);
        assert_eq!(
            rss.reason,
            "flow_type_rss_offloads is 0: driver net_pcap offers no RSS"
        );
        assert!(rss
            .software_path
            .as_deref()
            .unwrap()
            .contains("portolan shard --queues 2"));
        let pre = plan.decision(0, Offload::PrefilterManagedSubnets).unwrap();
        assert_eq!(pre.placement, Placement::SoftwareFallback);
        assert_eq!(
            pre.reason,
            "rte_flow_validate(prefilter_ipv4_subnet): -38 Function not implemented"
        );
        let by = plan.decision(0, Offload::BypassJudgedFlows).unwrap();
        assert_eq!(by.placement, Placement::SoftwareFallback);
        assert!(by
            .reason
            .contains("rte_flow_validate(bypass_drop_ipv4): -38"));
        assert!(by
            .reason
            .contains("rte_flow_validate(bypass_mark_ipv4): -38"));
        let port = &plan.ports[0];
        assert_eq!((port.rss_hf, port.rss_key.as_deref()), (0, None));
        assert_eq!(port.reta_size, 128);
        // net_pcap's queues are fed one capture each: no problem starting it.
        assert!(plan.is_startable(), "{plan}");
    }

    #[test]
    fn address_hashing_is_refused_for_a_device_with_several_queues() {
        let hw = description(&format!(
            "{OFFLOADS}{X710_PORT}\n[rss]\nfields = \"addresses\"\n"
        ));
        let plan = plan_offloads(&hw, &[x710_caps()]).unwrap();
        let rss = plan.decision(0, Offload::SymmetricRss).unwrap();
        assert_eq!(rss.placement, Placement::SoftwareFallback);
        assert!(
            rss.reason.starts_with("rss.fields = \"addresses\""),
            "{}",
            rss.reason
        );
        assert_eq!(plan.ports[0].rss_key, None);
        assert!(!plan.is_startable(), "{plan}");
    }

    #[test]
    fn nic_with_rss_and_rte_flow_runs_rss_in_hardware_and_says_rules_are_not_installed() {
        let hw = description(&format!("{OFFLOADS}{X710_PORT}"));
        let plan = plan_offloads(&hw, &[x710_caps()]).unwrap();
        let rss = plan.decision(0, Offload::SymmetricRss).unwrap();
        assert_eq!(rss.placement, Placement::Hardware, "{}", rss.reason);
        assert_eq!(rss.software_path, None);
        let d = plan.decision(0, Offload::PrefilterManagedSubnets).unwrap();
        assert_eq!(d.placement, Placement::HardwareCapable, "{}", d.reason);
        assert!(d.reason.ends_with(NOT_INSTALLED), "{}", d.reason);
        // The bypass rules are accepted, but installed only when asked for explicitly.
        let d = plan.decision(0, Offload::BypassJudgedFlows).unwrap();
        assert_eq!(d.placement, Placement::HardwareCapable, "{}", d.reason);
        assert!(
            d.reason
                .ends_with("set offloads.nic_bypass = true to install the rules"),
            "{}",
            d.reason
        );
        assert!(d.software_path.is_some());
        let port = &plan.ports[0];
        assert_eq!(port.rss_hf, rss_types::WANTED);
        let key = port.rss_key.as_deref().unwrap();
        assert_eq!(key.len(), 104, "52 bytes in hex");
        assert!(key.starts_with("6d5a6d5a"));
        assert_eq!(port.reta_size, 512);
        assert!(plan.is_startable());
        let rss = plan.decision(0, Offload::SymmetricRss).unwrap();
        assert!(rss.reason.contains("RETA of 512 entries"), "{}", rss.reason);
    }

    #[test]
    fn nic_bypass_asked_for_on_a_nic_that_accepts_drop_rules_is_placed_in_hardware() {
        let offloads = format!("{OFFLOADS}nic_bypass = true\nnic_bypass_max_rules = 1000\n");
        let hw = description(&format!("{offloads}{X710_PORT}"));
        let plan = plan_offloads(&hw, &[x710_caps()]).unwrap();
        let d = plan.decision(0, Offload::BypassJudgedFlows).unwrap();
        assert_eq!(d.placement, Placement::Hardware, "{}", d.reason);
        assert!(d.reason.contains("at most 1000 rules"), "{}", d.reason);
        assert!(
            d.reason
                .contains("flushes the port's rules at start and exit"),
            "{}",
            d.reason
        );
        // The same NIC refusing drop rules: mark rules are not installed by this version.
        let mut caps = x710_caps();
        caps.rte_flow_validate.insert(
            FlowRuleKind::BypassDropIpv4,
            Err((-95, "action not supported".to_string()).into()),
        );
        let plan = plan_offloads(&hw, &[caps]).unwrap();
        let d = plan.decision(0, Offload::BypassJudgedFlows).unwrap();
        assert_eq!(d.placement, Placement::HardwareCapable, "{}", d.reason);
        assert!(d.reason.contains("drop rules only"), "{}", d.reason);
        // net_pcap refuses everything: software, whatever the configuration says; an AF_XDP
        // port keeps its driver placement.
        let pcap = description(&format!("{offloads}{PCAP_PORT}"));
        let plan = plan_offloads(&pcap, &[net_pcap_caps()]).unwrap();
        let d = plan.decision(0, Offload::BypassJudgedFlows).unwrap();
        assert_eq!(d.placement, Placement::SoftwareFallback, "{}", d.reason);
        let xdp = PortCapabilities {
            driver_name: "net_af_xdp".to_string(),
            ..net_pcap_caps()
        };
        let plan = plan_offloads(&pcap, &[xdp]).unwrap();
        let d = plan.decision(0, Offload::BypassJudgedFlows).unwrap();
        assert_eq!(d.placement, Placement::Driver, "{}", d.reason);
        // The managed-subnet prefilter runs in the same program.
        let p = plan.decision(0, Offload::PrefilterManagedSubnets).unwrap();
        assert_eq!(p.placement, Placement::Driver, "{}", p.reason);
        assert!(p.reason.contains("2 managed subnet(s)"), "{}", p.reason);
    }

    #[test]
    fn partial_capabilities_fall_back_one_offload_at_a_time() {
        let hw = description(&format!("{OFFLOADS}{X710_PORT}"));
        let mut caps = x710_caps();
        caps.flow_type_rss_offloads &= !rss_types::NONFRAG_IPV6_UDP;
        caps.rte_flow_validate.insert(
            FlowRuleKind::PrefilterIpv6Subnet,
            Err((-95, "Not supported: IPv6 mask".to_string()).into()),
        );
        caps.rte_flow_validate.insert(
            FlowRuleKind::BypassDropIpv6,
            Err((-22, "Invalid argument".to_string()).into()),
        );
        let plan = plan_offloads(&hw, &[caps]).unwrap();
        let rss = plan.decision(0, Offload::SymmetricRss).unwrap();
        assert_eq!(rss.placement, Placement::SoftwareFallback);
        assert!(
            rss.reason.ends_with("lacks nonfrag_ipv6_udp"),
            "{}",
            rss.reason
        );
        assert_eq!(
            plan.decision(0, Offload::PrefilterManagedSubnets)
                .unwrap()
                .reason,
            "rte_flow_validate(prefilter_ipv6_subnet): -95 Not supported: IPv6 mask"
        );
        let by = plan.decision(0, Offload::BypassJudgedFlows).unwrap();
        assert_eq!(by.placement, Placement::HardwareCapable);
        assert!(by
            .reason
            .starts_with("rte_flow_validate(bypass_drop_ipv6): -22"));
        // Two queues on a NIC without usable RSS: queue 1 would stay empty.
        assert!(!plan.is_startable());
        assert!(plan.ports[0].problems[0].contains("no hardware RSS"));
    }

    #[test]
    fn unprobed_rules_and_unrequested_offloads_are_said_so() {
        let hw = description(&format!(
            "[offloads]\nsymmetric_rss = false\nbypass_judged_flows = true\n{PCAP_PORT}"
        ));
        let mut caps = net_pcap_caps();
        caps.rte_flow_validate.clear();
        let plan = plan_offloads(&hw, &[caps]).unwrap();
        assert_eq!(
            plan.decision(0, Offload::SymmetricRss).unwrap().placement,
            Placement::NotRequested
        );
        assert_eq!(
            plan.decision(0, Offload::PrefilterManagedSubnets)
                .unwrap()
                .placement,
            Placement::NotRequested
        );
        assert!(plan
            .decision(0, Offload::BypassJudgedFlows)
            .unwrap()
            .reason
            .contains("rte_flow_validate(bypass_drop_ipv4) was not probed"));
    }

    #[test]
    fn too_many_queues_and_wrong_caps_count() {
        let hw = description(&format!("{OFFLOADS}{X710_PORT}"));
        let mut caps = x710_caps();
        caps.max_rx_queues = 1;
        let plan = plan_offloads(&hw, &[caps]).unwrap();
        assert_eq!(
            plan.ports[0].problems,
            vec!["ports[0].rx_queues: 2 but driver net_i40e offers at most 1".to_string()]
        );
        assert_eq!(
            plan_offloads(&hw, &[]),
            Err(PlanError::PortCountMismatch {
                described: 1,
                probed: 0
            })
        );
    }

    #[test]
    fn plan_prints_as_a_table_and_as_json() {
        let hw = description(&format!("{OFFLOADS}{PCAP_PORT}"));
        let plan = plan_offloads(&hw, &[net_pcap_caps()]).unwrap();
        let table = plan.to_string();
        assert!(table.starts_with("port 0 port0 (net_pcap0, driver net_pcap): 2 RX queues\n"));
        assert!(
            table.contains(
                "  symmetric_rss              software_fallback  flow_type_rss_offloads is 0"
            ),
            "{table}"
        );
        assert!(
            table.contains("software: `portolan shard --queues 2`"),
            "{table}"
        );

        let json: serde_json::Value = serde_json::from_str(&plan.to_json()).unwrap();
        let d = &json["ports"][0]["offloads"][1];
        assert_eq!(d["offload"], "prefilter_managed_subnets");
        assert_eq!(d["placement"], "software_fallback");
        assert_eq!(
            d["reason"],
            "rte_flow_validate(prefilter_ipv4_subnet): -38 Function not implemented"
        );
        let back: OffloadPlan = serde_json::from_str(&plan.to_json()).unwrap();
        assert_eq!(back, plan);
    }

    #[test]
    fn capabilities_round_trip_through_json() {
        let caps = net_pcap_caps();
        let text = serde_json::to_string(&caps).unwrap();
        assert!(
            text.contains("\"prefilter_ipv4_subnet\":{\"Err\":{\"code\":-38"),
            "{text}"
        );
        let back: PortCapabilities = serde_json::from_str(&text).unwrap();
        assert_eq!(back, caps);
    }
}
