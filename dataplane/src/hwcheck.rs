//! `portolan hwcheck`: start the EAL as a hardware description says, probe every port, and
//! print which offloads run in the NIC and which fall back to software, and why.
//!
//! Owns: the probe of each port (`rte_eth_dev_info_get`; configuring its RX queues, with hardware RSS
//! when the device offers it, without starting it; one `rte_flow_validate` per
//! [`FlowRuleKind`], each rule built with the port's real values), and the [`HwcheckReport`]
//! (probe results and the plan, as text or JSON). Must not: decide placements (that is
//! `portolan_hwconfig::plan_offloads`), start ports, install rules, or touch packets.

use crate::dpdk::flow_rule::{self, FlowAction, FlowPattern, FlowRss, FlowRule};
use crate::dpdk::{DpdkError, Eal, PktMbufPool, Port, PortConfig as DpdkPortConfig, RssSetup};
use crate::runtime::eal_args;
use portolan_hwconfig::plan::{rss_types, RteFlowError};
use portolan_hwconfig::rss::key_for_device;
use portolan_hwconfig::{
    plan_offloads, CoreList, FlowRuleKind, HardwareDescription, OffloadPlan, PlanError,
    PortCapabilities, PortConfig,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;

/// How to run a check: the EAL options of a described run (hugepages forced off, log level).
pub use crate::runtime::EalOptions as HwcheckOptions;

/// Why a check could not produce a plan.
#[derive(Debug, thiserror::Error)]
pub enum HwcheckError {
    /// A `net_pcap` port names a capture file that is not there (EAL would only say the vdev
    /// failed to probe).
    #[error("ports[{port}] ({device}): rx_pcap file {} does not exist (relative paths are relative to the working directory)", .path.display())]
    MissingCapture {
        /// Index in `ports`.
        port: usize,
        /// The device name.
        device: String,
        /// The missing file.
        path: PathBuf,
    },
    /// A described port did not appear after EAL start-up.
    #[error("ports[{port}] ({device}): DPDK did not probe this device; check the address or vdev string (and that the driver is installed)")]
    PortNotProbed {
        /// Index in `ports`.
        port: usize,
        /// The device name.
        device: String,
    },
    /// A DPDK call failed.
    #[error("{0}")]
    Dpdk(#[from] DpdkError),
    /// The capabilities did not match the description.
    #[error("{0}")]
    Plan(#[from] PlanError),
}

impl HwcheckError {
    /// True when the description (a file it names) is at fault, not the system.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            HwcheckError::MissingCapture { .. } | HwcheckError::PortNotProbed { .. }
        )
    }
}

/// What was learned about one port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortProbe {
    /// Index in `ports`.
    pub port: usize,
    /// The port's name.
    pub name: String,
    /// DPDK device name.
    pub device: String,
    /// DPDK port id.
    pub port_id: u16,
    /// What `rte_eth_dev_info_get` and `rte_flow_validate` said.
    pub capabilities: PortCapabilities,
    /// How the port was configured before the rules were validated (or why that failed).
    pub configured: String,
}

/// The result of a check: the EAL arguments, each port's probe, and the offload plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HwcheckReport {
    /// Arguments `rte_eal_init` was given.
    pub eal_args: Vec<String>,
    /// Description problems that depend on this machine (lcores not available here).
    pub machine_problems: Vec<String>,
    /// Per port, in description order.
    pub probed: Vec<PortProbe>,
    /// The plan.
    pub plan: OffloadPlan,
}

impl HwcheckReport {
    /// True when the plan can start on this machine.
    pub fn is_startable(&self) -> bool {
        self.plan.is_startable() && self.machine_problems.is_empty()
    }

    /// The report as pretty-printed JSON: `{eal_args, machine_problems, probed, plan}`.
    pub fn to_json(&self) -> String {
        // Plain strings, integers, maps with string keys and enums: cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl fmt::Display for HwcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "EAL: {}", self.eal_args.join(" "))?;
        for p in &self.machine_problems {
            writeln!(f, "PROBLEM: {p}")?;
        }
        for p in &self.probed {
            let c = &p.capabilities;
            writeln!(
                f,
                "probed port {} {} ({}, port id {}, driver {}): max_rx_queues {}, flow_type_rss_offloads {:#x}, hash_key_size {}, reta_size {}, rx_offload_capa {:#x}",
                p.port,
                p.name,
                p.device,
                p.port_id,
                c.driver_name,
                c.max_rx_queues,
                c.flow_type_rss_offloads,
                c.hash_key_size,
                c.reta_size,
                c.rx_offload_capa
            )?;
            writeln!(f, "  configured: {}", p.configured)?;
            for (kind, answer) in &c.rte_flow_validate {
                match answer {
                    Ok(()) => writeln!(f, "  rte_flow_validate({kind}): accepted")?,
                    Err(e) => writeln!(f, "  rte_flow_validate({kind}): {e}")?,
                }
            }
        }
        writeln!(f)?;
        writeln!(f, "offload plan:")?;
        write!(f, "{}", self.plan)
    }
}

/// The `rx_pcap=` / `rx_iface=`-free capture paths of a `net_pcap` vdev string.
fn net_pcap_files(port: &PortConfig) -> Vec<PathBuf> {
    if !port.is_net_pcap() {
        return Vec::new();
    }
    port.device_string()
        .split(',')
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "rx_pcap")
        .map(|(_, v)| PathBuf::from(v))
        .collect()
}

/// The hardware RSS a port gets while it is probed: the description's key sized to the
/// device, and the wanted hash types the device offers. `None` without usable RSS.
fn rss_setup(hw: &HardwareDescription, info: &crate::dpdk::PortInfo) -> Option<RssSetup> {
    if !hw.offloads.symmetric_rss || info.rss_offloads & rss_types::REQUIRED != rss_types::REQUIRED
    {
        return None;
    }
    let key = key_for_device(&hw.rss.key, usize::from(info.hash_key_size)).ok()?;
    Some(RssSetup {
        key,
        rss_hf: rss_types::WANTED & info.rss_offloads,
    })
}

/// Documentation addresses (RFC 5737 / RFC 3849) stand in when the description has no
/// managed subnet of a family; the rule's shape, not its address, is what the driver judges.
fn first_subnet_v4(hw: &HardwareDescription) -> (Ipv4Addr, u8) {
    hw.offloads
        .managed_subnets
        .iter()
        .find_map(|n| match n.network() {
            IpAddr::V4(a) => Some((a, n.prefix_len())),
            IpAddr::V6(_) => None,
        })
        .unwrap_or((Ipv4Addr::new(192, 0, 2, 0), 24))
}

fn first_subnet_v6(hw: &HardwareDescription) -> (Ipv6Addr, u8) {
    hw.offloads
        .managed_subnets
        .iter()
        .find_map(|n| match n.network() {
            IpAddr::V6(a) => Some((a, n.prefix_len())),
            IpAddr::V4(_) => None,
        })
        .unwrap_or((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32))
}

/// The representative rule of each kind for port `port`, as `portolan_hwconfig::plan`
/// documents them: the first managed subnet of each family, the configured queues, key and
/// hash types, and for bypass rules a judged TCP flow from the first host of that subnet to
/// a documentation address on port 443.
pub fn representative_rules(
    hw: &HardwareDescription,
    port: &PortConfig,
    rss: Option<&RssSetup>,
) -> Vec<(FlowRuleKind, FlowRule)> {
    let flow_rss = FlowRss {
        queues: port.rx_queues,
        key: rss.map(|r| r.key.clone()).unwrap_or_default(),
        types: rss.map_or(0, |r| r.rss_hf),
    };
    let (v4net, v4len) = first_subnet_v4(hw);
    let (v6net, v6len) = first_subnet_v6(hw);
    let v4host = Ipv4Addr::from(u32::from(v4net).wrapping_add(1));
    let v6host = Ipv6Addr::from(u128::from(v6net).wrapping_add(1));
    let v4tcp = FlowPattern::Ipv4Tcp {
        src: v4host,
        dst: Ipv4Addr::new(198, 51, 100, 1),
        src_port: 49152,
        dst_port: 443,
    };
    let v6tcp = FlowPattern::Ipv6Tcp {
        src: v6host,
        dst: Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1),
        src_port: 49152,
        dst_port: 443,
    };
    FlowRuleKind::ALL
        .iter()
        .map(|&kind| {
            let rule = match kind {
                FlowRuleKind::PrefilterIpv4Subnet => FlowRule {
                    priority: 1,
                    pattern: FlowPattern::Ipv4Source {
                        net: v4net,
                        prefix: v4len,
                    },
                    action: FlowAction::Rss(flow_rss.clone()),
                },
                FlowRuleKind::PrefilterIpv6Subnet => FlowRule {
                    priority: 1,
                    pattern: FlowPattern::Ipv6Source {
                        net: v6net,
                        prefix: v6len,
                    },
                    action: FlowAction::Rss(flow_rss.clone()),
                },
                FlowRuleKind::PrefilterDropOther => FlowRule {
                    priority: 2,
                    pattern: FlowPattern::AnyEthernet,
                    action: FlowAction::Drop,
                },
                FlowRuleKind::BypassDropIpv4 => FlowRule {
                    priority: 0,
                    pattern: v4tcp,
                    action: FlowAction::Drop,
                },
                FlowRuleKind::BypassDropIpv6 => FlowRule {
                    priority: 0,
                    pattern: v6tcp,
                    action: FlowAction::Drop,
                },
                FlowRuleKind::BypassMarkIpv4 => FlowRule {
                    priority: 0,
                    pattern: v4tcp,
                    action: FlowAction::MarkRss {
                        id: 1,
                        rss: flow_rss.clone(),
                    },
                },
                FlowRuleKind::BypassMarkIpv6 => FlowRule {
                    priority: 0,
                    pattern: v6tcp,
                    action: FlowAction::MarkRss {
                        id: 1,
                        rss: flow_rss.clone(),
                    },
                },
            };
            (kind, rule)
        })
        .collect()
}

/// Runs the check: starts the EAL (once per process), probes every port of `hw`, and plans.
pub fn hwcheck(
    hw: &HardwareDescription,
    options: &HwcheckOptions,
) -> Result<HwcheckReport, HwcheckError> {
    for (i, port) in hw.ports.iter().enumerate() {
        for path in net_pcap_files(port) {
            if !path.exists() {
                return Err(HwcheckError::MissingCapture {
                    port: i,
                    device: port.device_name().to_string(),
                    path,
                });
            }
        }
    }
    let mut machine_problems = Vec::new();
    let available = CoreList::allowed_for_this_process().ok();
    if let Some(cpus) = &available {
        if let Err(invalid) = hw.validate_cpus(cpus) {
            machine_problems.push(invalid.to_string());
        }
    }
    let args = eal_args(hw, options, available.as_ref());
    let eal = Eal::init_with_args(args.clone())?;
    let mut ids = Vec::with_capacity(hw.ports.len());
    for (i, port) in hw.ports.iter().enumerate() {
        let id = Port::id_by_name(&eal, port.device_name()).map_err(|_| {
            HwcheckError::PortNotProbed {
                port: i,
                device: port.device_name().to_string(),
            }
        })?;
        ids.push(id);
    }
    let data_room = u16::try_from(hw.mempool.data_room).unwrap_or(u16::MAX);
    let pool = PktMbufPool::create(
        &eal,
        "hwcheck",
        hw.mempool.mbufs,
        hw.mempool.cache,
        data_room,
    )?;
    let mut probed = Vec::with_capacity(hw.ports.len());
    for ((i, port), &id) in hw.ports.iter().enumerate().zip(&ids) {
        probed.push(probe_port(&eal, &pool, hw, i, port, id)?);
    }
    let caps: Vec<PortCapabilities> = probed.iter().map(|p| p.capabilities.clone()).collect();
    let plan = plan_offloads(hw, &caps)?;
    drop(pool);
    Ok(HwcheckReport {
        eal_args: args,
        machine_problems,
        probed,
        plan,
    })
}

fn probe_port(
    eal: &Eal,
    pool: &Arc<PktMbufPool>,
    hw: &HardwareDescription,
    index: usize,
    port: &PortConfig,
    id: u16,
) -> Result<PortProbe, HwcheckError> {
    let info = Port::info_of(eal, id)?;
    let rss = rss_setup(hw, &info);
    let dpdk_config = DpdkPortConfig {
        rx_queues: port.rx_queues,
        tx_queues: crate::dpdk::paired_tx_queues(&info.driver, port.rx_queues),
        rx_descriptors: u16::try_from(hw.rings.rx_descriptors).unwrap_or(u16::MAX),
        ..DpdkPortConfig::default()
    };
    // Rules are judged against a port configured as the dataplane would configure it (some
    // drivers check RSS queues and types against the configuration); it is never started.
    let (configured, configured_port) =
        match Port::configure_with_rss(eal, id, &dpdk_config, pool, rss.as_ref()) {
            Ok(p) => {
                let how = match &rss {
                    Some(r) => format!(
                        "{} RX queue(s), RSS with a {}-byte key over {}",
                        port.rx_queues,
                        r.key.len(),
                        rss_types::names(r.rss_hf)
                    ),
                    None => format!("{} RX queue(s), no RSS", port.rx_queues),
                };
                (how, Some(p))
            }
            Err(e) => (
                format!("failed ({e}); rules validated on the unconfigured port"),
                None,
            ),
        };
    let mut validate = BTreeMap::new();
    for (kind, rule) in representative_rules(hw, port, rss.as_ref()) {
        let answer = flow_rule::validate(eal, id, &rule)?
            .map_err(|refusal| RteFlowError::from((refusal.code, refusal.message)));
        validate.insert(kind, answer);
    }
    drop(configured_port);
    Ok(PortProbe {
        port: index,
        name: port.display_name(index),
        device: port.device_name().to_string(),
        port_id: id,
        capabilities: PortCapabilities {
            driver_name: info.driver,
            max_rx_queues: info.max_rx_queues,
            flow_type_rss_offloads: info.rss_offloads,
            hash_key_size: info.hash_key_size,
            reta_size: info.reta_size,
            rx_offload_capa: info.rx_offload_capa,
            rte_flow_validate: validate,
        },
        configured,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn description() -> HardwareDescription {
        HardwareDescription::from_toml_str(
            r#"
            [cores]
            lcores = "0-2"
            main = 0
            [memory]
            hugepages = true
            memory_mb = 256
            [offloads]
            prefilter_managed_subnets = true
            managed_subnets = ["10.20.0.0/16", "2001:db8:20::/48"]
            [[ports]]
            vdev = "net_pcap0,rx_pcap=a.pcap,rx_pcap=b.pcap"
            rx_queues = 2
            queues = [{ lcore = 1 }, { lcore = 2 }]
            "#,
        )
        .expect("valid description")
    }

    #[test]
    fn capture_files_of_net_pcap_ports() {
        let hw = description();
        assert_eq!(
            net_pcap_files(&hw.ports[0]),
            vec![PathBuf::from("a.pcap"), PathBuf::from("b.pcap")]
        );
    }

    #[test]
    fn one_rule_per_kind_with_the_description_values() {
        let hw = description();
        let rules = representative_rules(&hw, &hw.ports[0], None);
        let kinds: Vec<FlowRuleKind> = rules.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, FlowRuleKind::ALL.to_vec());
        let (_, pre4) = &rules[0];
        assert_eq!(
            pre4.pattern,
            FlowPattern::Ipv4Source {
                net: Ipv4Addr::new(10, 20, 0, 0),
                prefix: 16
            }
        );
        assert_eq!(pre4.priority, 1);
        let (_, drop_other) = &rules[2];
        assert_eq!(
            (drop_other.priority, &drop_other.action),
            (2, &FlowAction::Drop)
        );
        let (_, by6) = &rules[4];
        match by6.pattern {
            FlowPattern::Ipv6Tcp { src, dst_port, .. } => {
                assert_eq!(src, "2001:db8:20::1".parse::<Ipv6Addr>().unwrap());
                assert_eq!(dst_port, 443);
            }
            other => panic!("unexpected pattern {other:?}"),
        }
    }
}
