//! rte_flow rules described in plain Rust, and asking a port whether it would accept one
//! (`rte_flow_validate`).
//!
//! Owns: turning a [`FlowRule`] (pattern, action, priority) into the C arrays of
//! `rte_flow_item` / `rte_flow_action` with their spec, mask and conf structs, and reporting the
//! driver's answer as a [`FlowRefusal`] (return code and message). Must not: keep installed
//! rules (`super::flow_table` does) or decide which rules the appliance wants; `crate::hwcheck`
//! and `crate::nic_bypass` pick the rules and `portolan-hwconfig` judges the answers.

use super::{DpdkError, Eal};
use portolan_dpdk_sys as sys;
use std::ffi::{c_void, CStr};
use std::net::{Ipv4Addr, Ipv6Addr};

/// What a rule matches, after `ETH` (every pattern starts with an `ETH` item without spec,
/// which matches any Ethernet frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowPattern {
    /// `ETH / END`: every frame.
    AnyEthernet,
    /// `ETH / IPV4 src is <net>/<prefix> / END` (spec and mask).
    Ipv4Source {
        /// The subnet's address (host bits zero).
        net: Ipv4Addr,
        /// Prefix length, 0–32.
        prefix: u8,
    },
    /// `ETH / IPV6 src is <net>/<prefix> / END` (spec and mask).
    Ipv6Source {
        /// The subnet's address (host bits zero).
        net: Ipv6Addr,
        /// Prefix length, 0–128.
        prefix: u8,
    },
    /// `ETH / IPV4 src, dst exact / TCP src, dst port exact / END`.
    Ipv4Tcp {
        /// Source address.
        src: Ipv4Addr,
        /// Destination address.
        dst: Ipv4Addr,
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// `ETH / IPV6 src, dst exact / TCP src, dst port exact / END`.
    Ipv6Tcp {
        /// Source address.
        src: Ipv6Addr,
        /// Destination address.
        dst: Ipv6Addr,
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
}

/// RSS over some RX queues, as in `rte_flow_action_rss` (Toeplitz).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRss {
    /// Queues `0..queues`.
    pub queues: u16,
    /// The key; empty means the device's default key.
    pub key: Vec<u8>,
    /// `RTE_ETH_RSS_*` hash types; 0 means the device's default.
    pub types: u64,
}

/// What a rule does with what it matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowAction {
    /// `DROP / END`.
    Drop,
    /// `RSS / END`: spread over the queues.
    Rss(FlowRss),
    /// `MARK id / RSS / END`: tag the mbuf with `id` (`RTE_MBUF_F_RX_FDIR_ID`) and spread.
    MarkRss {
        /// The mark.
        id: u32,
        /// The RSS that follows.
        rss: FlowRss,
    },
}

/// One ingress rule of group 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRule {
    /// Priority within group 0 (lower wins).
    pub priority: u32,
    /// What it matches.
    pub pattern: FlowPattern,
    /// What it does.
    pub action: FlowAction,
}

/// The driver refused a rule: `rte_flow_validate`'s return value and the message of the
/// `rte_flow_error` it filled in (or the errno's text when it gave none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRefusal {
    /// Negative errno, e.g. -38 (`ENOSYS`: the driver has no rte_flow).
    pub code: i32,
    /// The driver's message, e.g. "Function not implemented".
    pub message: String,
}

/// `rte_be16_t` / `rte_be32_t` values hold network byte order in memory.
fn be16(v: u16) -> u16 {
    u16::from_ne_bytes(v.to_be_bytes())
}

fn be32_addr(a: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(a.octets())
}

fn v4_mask(prefix: u8) -> Ipv4Addr {
    let p = u32::from(prefix.min(32));
    Ipv4Addr::from(u32::MAX.checked_shl(32 - p).unwrap_or(0))
}

fn v6_mask(prefix: u8) -> Ipv6Addr {
    let p = u32::from(prefix.min(128));
    Ipv6Addr::from(u128::MAX.checked_shl(128 - p).unwrap_or(0))
}

/// The C structs one rule points into; kept together so every pointer in `items` and
/// `actions` refers to this value's own fields (it is boxed and never moved afterwards).
pub(super) struct RuleStorage {
    ipv4_spec: sys::rte_flow_item_ipv4,
    ipv4_mask: sys::rte_flow_item_ipv4,
    ipv6_spec: sys::rte_flow_item_ipv6,
    ipv6_mask: sys::rte_flow_item_ipv6,
    tcp_spec: sys::rte_flow_item_tcp,
    tcp_mask: sys::rte_flow_item_tcp,
    mark: sys::rte_flow_action_mark,
    rss: sys::rte_flow_action_rss,
    rss_key: Vec<u8>,
    rss_queues: Vec<u16>,
    pub(super) items: Vec<sys::rte_flow_item>,
    pub(super) actions: Vec<sys::rte_flow_action>,
}

impl RuleStorage {
    /// Builds the arrays for `rule`. Boxed first, then filled, so the pointers stay valid.
    pub(super) fn build(rule: &FlowRule) -> Box<RuleStorage> {
        let mut st = Box::new(RuleStorage {
            ipv4_spec: Default::default(),
            ipv4_mask: Default::default(),
            ipv6_spec: Default::default(),
            ipv6_mask: Default::default(),
            tcp_spec: Default::default(),
            tcp_mask: Default::default(),
            mark: Default::default(),
            rss: Default::default(),
            rss_key: Vec::new(),
            rss_queues: Vec::new(),
            items: Vec::with_capacity(4),
            actions: Vec::with_capacity(3),
        });
        let item = |type_: sys::rte_flow_item_type, spec: *const c_void, mask: *const c_void| {
            sys::rte_flow_item {
                type_,
                spec,
                last: std::ptr::null(),
                mask,
            }
        };
        let eth = item(
            sys::rte_flow_item_type::RTE_FLOW_ITEM_TYPE_ETH,
            std::ptr::null(),
            std::ptr::null(),
        );
        st.items.push(eth);
        match rule.pattern {
            FlowPattern::AnyEthernet => {}
            FlowPattern::Ipv4Source { net, prefix } => {
                st.ipv4_spec.hdr.src_addr = be32_addr(net);
                st.ipv4_mask.hdr.src_addr = be32_addr(v4_mask(prefix));
                let it = item(
                    sys::rte_flow_item_type::RTE_FLOW_ITEM_TYPE_IPV4,
                    (&st.ipv4_spec as *const sys::rte_flow_item_ipv4).cast(),
                    (&st.ipv4_mask as *const sys::rte_flow_item_ipv4).cast(),
                );
                st.items.push(it);
            }
            FlowPattern::Ipv6Source { net, prefix } => {
                st.ipv6_spec.hdr.src_addr = net.octets();
                st.ipv6_mask.hdr.src_addr = v6_mask(prefix).octets();
                let it = item(
                    sys::rte_flow_item_type::RTE_FLOW_ITEM_TYPE_IPV6,
                    (&st.ipv6_spec as *const sys::rte_flow_item_ipv6).cast(),
                    (&st.ipv6_mask as *const sys::rte_flow_item_ipv6).cast(),
                );
                st.items.push(it);
            }
            FlowPattern::Ipv4Tcp {
                src,
                dst,
                src_port,
                dst_port,
            } => {
                st.ipv4_spec.hdr.src_addr = be32_addr(src);
                st.ipv4_spec.hdr.dst_addr = be32_addr(dst);
                st.ipv4_mask.hdr.src_addr = u32::MAX;
                st.ipv4_mask.hdr.dst_addr = u32::MAX;
                let it = item(
                    sys::rte_flow_item_type::RTE_FLOW_ITEM_TYPE_IPV4,
                    (&st.ipv4_spec as *const sys::rte_flow_item_ipv4).cast(),
                    (&st.ipv4_mask as *const sys::rte_flow_item_ipv4).cast(),
                );
                st.items.push(it);
                st.fill_tcp(src_port, dst_port);
            }
            FlowPattern::Ipv6Tcp {
                src,
                dst,
                src_port,
                dst_port,
            } => {
                st.ipv6_spec.hdr.src_addr = src.octets();
                st.ipv6_spec.hdr.dst_addr = dst.octets();
                st.ipv6_mask.hdr.src_addr = [0xff; 16];
                st.ipv6_mask.hdr.dst_addr = [0xff; 16];
                let it = item(
                    sys::rte_flow_item_type::RTE_FLOW_ITEM_TYPE_IPV6,
                    (&st.ipv6_spec as *const sys::rte_flow_item_ipv6).cast(),
                    (&st.ipv6_mask as *const sys::rte_flow_item_ipv6).cast(),
                );
                st.items.push(it);
                st.fill_tcp(src_port, dst_port);
            }
        }
        st.items.push(item(
            sys::rte_flow_item_type::RTE_FLOW_ITEM_TYPE_END,
            std::ptr::null(),
            std::ptr::null(),
        ));

        let action = |type_: sys::rte_flow_action_type, conf: *const c_void| sys::rte_flow_action {
            type_,
            conf,
        };
        match &rule.action {
            FlowAction::Drop => st.actions.push(action(
                sys::rte_flow_action_type::RTE_FLOW_ACTION_TYPE_DROP,
                std::ptr::null(),
            )),
            FlowAction::Rss(rss) => {
                st.fill_rss(rss);
                let a = action(
                    sys::rte_flow_action_type::RTE_FLOW_ACTION_TYPE_RSS,
                    (&st.rss as *const sys::rte_flow_action_rss).cast(),
                );
                st.actions.push(a);
            }
            FlowAction::MarkRss { id, rss } => {
                st.mark.id = *id;
                let m = action(
                    sys::rte_flow_action_type::RTE_FLOW_ACTION_TYPE_MARK,
                    (&st.mark as *const sys::rte_flow_action_mark).cast(),
                );
                st.actions.push(m);
                st.fill_rss(rss);
                let a = action(
                    sys::rte_flow_action_type::RTE_FLOW_ACTION_TYPE_RSS,
                    (&st.rss as *const sys::rte_flow_action_rss).cast(),
                );
                st.actions.push(a);
            }
        }
        st.actions.push(action(
            sys::rte_flow_action_type::RTE_FLOW_ACTION_TYPE_END,
            std::ptr::null(),
        ));
        st
    }

    fn fill_tcp(&mut self, src_port: u16, dst_port: u16) {
        self.tcp_spec.hdr.src_port = be16(src_port);
        self.tcp_spec.hdr.dst_port = be16(dst_port);
        self.tcp_mask.hdr.src_port = u16::MAX;
        self.tcp_mask.hdr.dst_port = u16::MAX;
        let it = sys::rte_flow_item {
            type_: sys::rte_flow_item_type::RTE_FLOW_ITEM_TYPE_TCP,
            spec: (&self.tcp_spec as *const sys::rte_flow_item_tcp).cast(),
            last: std::ptr::null(),
            mask: (&self.tcp_mask as *const sys::rte_flow_item_tcp).cast(),
        };
        self.items.push(it);
    }

    fn fill_rss(&mut self, rss: &FlowRss) {
        self.rss_key = rss.key.clone();
        self.rss_queues = (0..rss.queues.max(1)).collect();
        self.rss.func = sys::rte_eth_hash_function::RTE_ETH_HASH_FUNCTION_TOEPLITZ;
        self.rss.level = 0;
        self.rss.types = rss.types;
        self.rss.key_len = u32::try_from(self.rss_key.len()).unwrap_or(0);
        self.rss.key = if self.rss_key.is_empty() {
            std::ptr::null()
        } else {
            self.rss_key.as_ptr()
        };
        self.rss.queue_num = u32::try_from(self.rss_queues.len()).unwrap_or(0);
        self.rss.queue = self.rss_queues.as_ptr();
    }
}

/// Asks the driver of port `port_id` whether it would accept `rule` as an ingress rule of
/// group 0 (`rte_flow_validate`; nothing is installed). `Ok(Ok(()))`: accepted;
/// `Ok(Err(refusal))`: refused, with the driver's code and message. `Err` only for a port id
/// that is not a probed port.
pub fn validate(
    _eal: &Eal,
    port_id: u16,
    rule: &FlowRule,
) -> Result<Result<(), FlowRefusal>, DpdkError> {
    // SAFETY: the EAL is initialised (we hold a handle); the call only reads the port table.
    if unsafe { sys::rte_eth_dev_is_valid_port(port_id) } != 1 {
        return Err(DpdkError::Port {
            port: port_id,
            call: "rte_flow_validate",
            reason: "no such port".to_string(),
        });
    }
    let storage = RuleStorage::build(rule);
    let attr = ingress_attr(rule);
    let mut error = sys::rte_flow_error::default();
    // SAFETY: attr, the END-terminated item and action arrays, and every spec/mask/conf struct
    // (and the RSS key and queue arrays) they point to live in `storage` / on this stack frame
    // until after the call, which only reads them; error is a valid, writable rte_flow_error.
    let ret = unsafe {
        sys::rte_flow_validate(
            port_id,
            &attr,
            storage.items.as_ptr(),
            storage.actions.as_ptr(),
            &mut error,
        )
    };
    if ret == 0 {
        return Ok(Ok(()));
    }
    Ok(Err(refusal(ret, &error)))
}

/// The attributes of every rule: ingress, group 0, the rule's priority.
pub(super) fn ingress_attr(rule: &FlowRule) -> sys::rte_flow_attr {
    let mut attr = sys::rte_flow_attr {
        group: 0,
        priority: rule.priority,
        ..Default::default()
    };
    attr.set_ingress(1);
    attr
}

/// The driver's answer: `ret` (a negative errno) and the message it left in `error` (or the
/// errno's text when it gave none).
pub(super) fn refusal(ret: i32, error: &sys::rte_flow_error) -> FlowRefusal {
    let message = if error.message.is_null() {
        None
    } else {
        // SAFETY: a non-null rte_flow_error.message points to a NUL-terminated string the
        // driver keeps valid at least until the next rte_flow call on this thread; copied now.
        Some(
            unsafe { CStr::from_ptr(error.message) }
                .to_string_lossy()
                .into_owned(),
        )
    };
    let message = message
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| std::io::Error::from_raw_os_error(ret.saturating_neg()).to_string());
    FlowRefusal { code: ret, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_byte_order() {
        assert_eq!(v4_mask(16), Ipv4Addr::new(255, 255, 0, 0));
        assert_eq!(v4_mask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(v4_mask(32), Ipv4Addr::new(255, 255, 255, 255));
        assert_eq!(v6_mask(48), "ffff:ffff:ffff::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(v6_mask(0), Ipv6Addr::UNSPECIFIED);
        assert_eq!(be16(443).to_ne_bytes(), [0x01, 0xbb]);
        assert_eq!(
            be32_addr(Ipv4Addr::new(10, 20, 0, 0)).to_ne_bytes(),
            [10, 20, 0, 0]
        );
    }

    #[test]
    fn arrays_are_end_terminated_and_point_into_storage() {
        let rule = FlowRule {
            priority: 0,
            pattern: FlowPattern::Ipv4Tcp {
                src: Ipv4Addr::new(10, 20, 0, 1),
                dst: Ipv4Addr::new(198, 51, 100, 1),
                src_port: 49152,
                dst_port: 443,
            },
            action: FlowAction::MarkRss {
                id: 7,
                rss: FlowRss {
                    queues: 2,
                    key: vec![0x6d, 0x5a],
                    types: 1 << 4,
                },
            },
        };
        let st = RuleStorage::build(&rule);
        let types: Vec<u32> = st.items.iter().map(|i| i.type_.0).collect();
        assert_eq!(
            types,
            vec![
                sys::rte_flow_item_type::RTE_FLOW_ITEM_TYPE_ETH.0,
                sys::rte_flow_item_type::RTE_FLOW_ITEM_TYPE_IPV4.0,
                sys::rte_flow_item_type::RTE_FLOW_ITEM_TYPE_TCP.0,
                sys::rte_flow_item_type::RTE_FLOW_ITEM_TYPE_END.0,
            ]
        );
        assert_eq!(
            st.items[1].spec,
            (&st.ipv4_spec as *const _ as *const c_void)
        );
        assert_eq!(st.tcp_spec.hdr.dst_port.to_ne_bytes(), [0x01, 0xbb]);
        let acts: Vec<u32> = st.actions.iter().map(|a| a.type_.0).collect();
        assert_eq!(
            acts,
            vec![
                sys::rte_flow_action_type::RTE_FLOW_ACTION_TYPE_MARK.0,
                sys::rte_flow_action_type::RTE_FLOW_ACTION_TYPE_RSS.0,
                sys::rte_flow_action_type::RTE_FLOW_ACTION_TYPE_END.0,
            ]
        );
        assert_eq!(st.mark.id, 7);
        assert_eq!((st.rss.queue_num, st.rss.key_len), (2, 2));
        assert_eq!(st.rss.queue, st.rss_queues.as_ptr());
    }
}
