//! A software model of a NIC's rte_flow rule table, for tests and for showing what the
//! hardware tier would do: a bounded table of exact 5-tuple TCP drop rules that answers as a
//! driver does (`-ENOSPC` when full, `-EEXIST` for a second rule with the same pattern,
//! `-ENOTSUP` for a pattern or action it does not offer, `-ENOENT` for an unknown handle), and
//! that can stand in front of a worker as the NIC ([`ModelNic::drops_tcp`]) to count and drop
//! the packets its rules match.
//!
//! Owns: the model's rules and counters. Must not: call DPDK.

use super::{RuleHandle, RuleTable};
use crate::dpdk::flow_rule::{FlowAction, FlowPattern, FlowRefusal, FlowRule};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct State {
    capacity: usize,
    ipv6: bool,
    next: u64,
    rules: BTreeMap<u64, FlowRule>,
    dropped: u64,
    flushes: u64,
    created: u64,
    destroyed: u64,
}

/// The model NIC. Clones share one table: a test keeps one as "the NIC" in front of the
/// worker and gives another to [`super::NicBypass`].
#[derive(Debug, Clone)]
pub struct ModelNic {
    state: Arc<Mutex<State>>,
}

fn refusal(code: i32, message: &str) -> FlowRefusal {
    FlowRefusal {
        code,
        message: message.to_string(),
    }
}

impl ModelNic {
    /// A NIC whose table holds `capacity` rules, IPv4 and IPv6.
    pub fn new(capacity: usize) -> ModelNic {
        ModelNic {
            state: Arc::new(Mutex::new(State {
                capacity,
                ipv6: true,
                ..State::default()
            })),
        }
    }

    /// The same NIC without IPv6 patterns (as some NICs' flow directors).
    pub fn without_ipv6(self) -> ModelNic {
        self.lock().ipv6 = false;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rules in the table now.
    pub fn rule_count(&self) -> usize {
        self.lock().rules.len()
    }

    /// Flushes so far.
    pub fn flushes(&self) -> u64 {
        self.lock().flushes
    }

    /// Rules created and destroyed so far.
    pub fn created_destroyed(&self) -> (u64, u64) {
        let s = self.lock();
        (s.created, s.destroyed)
    }

    /// Packets the rules dropped so far.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// The NIC receiving a TCP packet `src:src_port → dst:dst_port`: true (and counted) when a
    /// drop rule matches it, so it never reaches the host.
    pub fn drops_tcp(&self, src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16) -> bool {
        let mut s = self.lock();
        let hit = s.rules.values().any(|r| {
            matches!(r.action, FlowAction::Drop)
                && pattern_matches(&r.pattern, src, src_port, dst, dst_port)
        });
        if hit {
            s.dropped += 1;
        }
        hit
    }

    fn check(s: &State, rule: &FlowRule) -> Result<(), FlowRefusal> {
        if !matches!(rule.action, FlowAction::Drop) {
            return Err(refusal(-95, "action not supported: the model drops only"));
        }
        match rule.pattern {
            FlowPattern::Ipv4Tcp { .. } => Ok(()),
            FlowPattern::Ipv6Tcp { .. } if s.ipv6 => Ok(()),
            FlowPattern::Ipv6Tcp { .. } => Err(refusal(-95, "item not supported: IPv6")),
            _ => Err(refusal(-95, "item not supported: exact TCP 4-tuples only")),
        }
    }
}

fn pattern_matches(p: &FlowPattern, src: IpAddr, sp: u16, dst: IpAddr, dp: u16) -> bool {
    match (*p, src, dst) {
        (
            FlowPattern::Ipv4Tcp {
                src: a,
                dst: b,
                src_port,
                dst_port,
            },
            IpAddr::V4(s),
            IpAddr::V4(d),
        ) => a == s && b == d && src_port == sp && dst_port == dp,
        (
            FlowPattern::Ipv6Tcp {
                src: a,
                dst: b,
                src_port,
                dst_port,
            },
            IpAddr::V6(s),
            IpAddr::V6(d),
        ) => a == s && b == d && src_port == sp && dst_port == dp,
        _ => false,
    }
}

impl RuleTable for ModelNic {
    fn validate(&mut self, rule: &FlowRule) -> Result<(), FlowRefusal> {
        Self::check(&self.lock(), rule)
    }

    fn create(&mut self, rule: &FlowRule) -> Result<RuleHandle, FlowRefusal> {
        let mut s = self.lock();
        Self::check(&s, rule)?;
        if s.rules.values().any(|r| r.pattern == rule.pattern) {
            return Err(refusal(-17, "a rule with this pattern exists"));
        }
        if s.rules.len() >= s.capacity {
            return Err(refusal(-28, "flow table full"));
        }
        s.next += 1;
        let id = s.next;
        s.rules.insert(id, rule.clone());
        s.created += 1;
        Ok(RuleHandle(id))
    }

    fn destroy(&mut self, handle: RuleHandle) -> Result<(), FlowRefusal> {
        let mut s = self.lock();
        match s.rules.remove(&handle.0) {
            Some(_) => {
                s.destroyed += 1;
                Ok(())
            }
            None => Err(refusal(-2, "no such rule")),
        }
    }

    fn flush(&mut self) -> Result<(), FlowRefusal> {
        let mut s = self.lock();
        s.rules.clear();
        s.flushes += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nic_bypass::bypass_rule;

    #[test]
    fn answers_as_a_driver_does() {
        let mut nic = ModelNic::new(1);
        let a = bypass_rule(
            "10.0.0.1".parse().unwrap(),
            1,
            "10.0.0.2".parse().unwrap(),
            2,
        )
        .unwrap();
        let b = bypass_rule(
            "10.0.0.1".parse().unwrap(),
            3,
            "10.0.0.2".parse().unwrap(),
            2,
        )
        .unwrap();
        assert_eq!(nic.validate(&a), Ok(()));
        let h = nic.create(&a).unwrap();
        assert_eq!(nic.create(&a).unwrap_err().code, -17);
        assert_eq!(nic.create(&b).unwrap_err().code, -28);
        let mark = FlowRule {
            action: FlowAction::Rss(crate::dpdk::flow_rule::FlowRss {
                queues: 1,
                key: Vec::new(),
                types: 0,
            }),
            ..a.clone()
        };
        assert_eq!(nic.validate(&mark).unwrap_err().code, -95);
        nic.destroy(h).unwrap();
        assert_eq!(nic.destroy(h).unwrap_err().code, -2);
        assert_eq!(nic.created_destroyed(), (1, 1));
    }
}
