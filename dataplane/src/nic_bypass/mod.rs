//! Bypass of judged flows in the NIC: one rte_flow drop rule per direction of each judged TCP
//! flow, through one interface ([`RuleTable`]) with two implementations — the port's real
//! rule table ([`crate::dpdk::flow_table::DpdkRuleTable`]: `rte_flow_validate`, `create`,
//! `destroy`, `flush`) and a software model of a NIC's table ([`model::ModelNic`]), so
//! install, capacity, removal and flush are tested without a NIC that has one.
//!
//! Owns: [`NicBypass`], a port's installed bypass rules: the configured cap on their number
//! (a flow refused because the cap is reached is counted as `full`), the flow → rules map
//! (reserved up front, nothing allocated per flow), removal when the flow ends, and the flush
//! of every rule on the port at start and at exit. Must not: decide which flows are judged (the
//! worker asks its observer), touch packets, or call DPDK itself (the [`RuleTable`] does).

pub mod model;

use crate::dpdk::flow_rule::{FlowAction, FlowPattern, FlowRefusal, FlowRule};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// An installed rule, as the table that created it names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleHandle(pub u64);

/// A NIC's rule table: what [`NicBypass`] needs of rte_flow. Implemented by the DPDK port
/// ([`crate::dpdk::flow_table::DpdkRuleTable`]) and by the model ([`model::ModelNic`]).
pub trait RuleTable: Send {
    /// Would the table accept `rule` (nothing installed)? `rte_flow_validate`.
    fn validate(&mut self, rule: &FlowRule) -> Result<(), FlowRefusal>;
    /// Installs `rule`. `rte_flow_create`.
    fn create(&mut self, rule: &FlowRule) -> Result<RuleHandle, FlowRefusal>;
    /// Removes one rule. `rte_flow_destroy`.
    fn destroy(&mut self, handle: RuleHandle) -> Result<(), FlowRefusal>;
    /// Removes every rule of the port, including rules this process did not create (a
    /// previous run's). `rte_flow_flush`.
    fn flush(&mut self) -> Result<(), FlowRefusal>;
}

/// The drop rule of one flow direction `src:src_port → dst:dst_port` (TCP, priority 0, as
/// `portolan hwcheck` validates it: `bypass_drop_ipv4` / `bypass_drop_ipv6`); `None` when the
/// families differ.
pub fn bypass_rule(src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16) -> Option<FlowRule> {
    let pattern = match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => FlowPattern::Ipv4Tcp {
            src,
            dst,
            src_port,
            dst_port,
        },
        (IpAddr::V6(src), IpAddr::V6(dst)) => FlowPattern::Ipv6Tcp {
            src,
            dst,
            src_port,
            dst_port,
        },
        _ => return None,
    };
    Some(FlowRule {
        priority: 0,
        pattern,
        action: FlowAction::Drop,
    })
}

/// A TCP flow by its client and server ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BypassedFlow {
    /// The client's address.
    pub client_ip: IpAddr,
    /// The client's port.
    pub client_port: u16,
    /// The server's address.
    pub server_ip: IpAddr,
    /// The server's port.
    pub server_port: u16,
}

impl BypassedFlow {
    /// The two drop rules (client → server, server → client).
    fn rules(&self) -> Option<[FlowRule; 2]> {
        Some([
            bypass_rule(
                self.client_ip,
                self.client_port,
                self.server_ip,
                self.server_port,
            )?,
            bypass_rule(
                self.server_ip,
                self.server_port,
                self.client_ip,
                self.client_port,
            )?,
        ])
    }
}

/// What [`NicBypass::install`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// Both directions' rules are in the NIC.
    Yes,
    /// Not installed: the configured rule count is reached (`nic_bypass_max_rules`).
    Full,
    /// Not installed: the NIC refused a rule (its answer), or the flow mixes families.
    Refused(FlowRefusal),
    /// Already installed.
    Already,
}

/// Counters of one port's NIC bypass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NicBypassStats {
    /// Flows whose two rules were installed.
    pub flows_installed: u64,
    /// Flows not installed because the rule cap was reached.
    pub full: u64,
    /// Flows not installed because the NIC refused a rule.
    pub refused: u64,
    /// Flows whose rules were removed when the flow ended.
    pub flows_removed: u64,
    /// Rules `destroy` failed on (left to the flush at exit).
    pub destroy_failed: u64,
    /// Rules in the NIC now.
    pub rules: u64,
    /// The most rules in the NIC at once.
    pub rules_peak: u64,
    /// Flushes of the port's rules (start, exit).
    pub flushes: u64,
}

struct Inner {
    table: Box<dyn RuleTable>,
    installed: HashMap<BypassedFlow, [RuleHandle; 2]>,
    stats: NicBypassStats,
}

/// One port's bypass rules: installed when a worker judges a flow, removed when it ends,
/// capped at `max_rules`, all flushed at start ([`NicBypass::start`]) and at exit
/// ([`NicBypass::shutdown`], or on drop). Shared by the port's workers (one lock, taken once
/// per judged flow and once per bypassed flow's end, never per packet).
pub struct NicBypass {
    inner: Mutex<Inner>,
    max_rules: usize,
    port: String,
}

impl std::fmt::Debug for NicBypass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NicBypass")
            .field("port", &self.port)
            .field("max_rules", &self.max_rules)
            .field("stats", &self.stats())
            .finish()
    }
}

impl NicBypass {
    /// Flushes every rule of `table`'s port (a previous run may have left some), then returns
    /// a bypass that installs at most `max_rules` rules (two per flow). The flow map is
    /// allocated now for `max_rules / 2` flows. Fails with the NIC's answer when the flush
    /// fails.
    pub fn start(
        port: &str,
        mut table: Box<dyn RuleTable>,
        max_rules: usize,
    ) -> Result<NicBypass, FlowRefusal> {
        table.flush()?;
        let stats = NicBypassStats {
            flushes: 1,
            ..NicBypassStats::default()
        };
        Ok(NicBypass {
            inner: Mutex::new(Inner {
                table,
                installed: HashMap::with_capacity(max_rules / 2),
                stats,
            }),
            max_rules,
            port: port.to_string(),
        })
    }

    /// The port's name (for messages).
    pub fn port(&self) -> &str {
        &self.port
    }

    /// The cap on installed rules.
    pub fn max_rules(&self) -> usize {
        self.max_rules
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock left the map consistent (every step below leaves it
        // so), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Installs the drop rules of both directions of `flow`, unless the cap is reached or the
    /// NIC refuses (then nothing of it stays installed).
    pub fn install(&self, flow: &BypassedFlow) -> Installed {
        let Some([up, down]) = flow.rules() else {
            let mut g = self.lock();
            g.stats.refused += 1;
            return Installed::Refused(FlowRefusal {
                code: -22,
                message: "the flow's addresses are of two families".to_string(),
            });
        };
        let mut g = self.lock();
        let inner = &mut *g;
        if inner.installed.contains_key(flow) {
            return Installed::Already;
        }
        if inner.installed.len() * 2 + 2 > self.max_rules {
            inner.stats.full += 1;
            return Installed::Full;
        }
        let first = match inner.table.create(&up) {
            Ok(h) => h,
            Err(e) => {
                inner.stats.refused += 1;
                return Installed::Refused(e);
            }
        };
        let second = match inner.table.create(&down) {
            Ok(h) => h,
            Err(e) => {
                if inner.table.destroy(first).is_err() {
                    inner.stats.destroy_failed += 1;
                }
                inner.stats.refused += 1;
                return Installed::Refused(e);
            }
        };
        inner.installed.insert(*flow, [first, second]);
        inner.stats.flows_installed += 1;
        inner.stats.rules = inner.installed.len() as u64 * 2;
        inner.stats.rules_peak = inner.stats.rules_peak.max(inner.stats.rules);
        Installed::Yes
    }

    /// Removes `flow`'s rules (its end was seen); false when it had none.
    pub fn remove(&self, flow: &BypassedFlow) -> bool {
        let mut g = self.lock();
        let inner = &mut *g;
        let Some(handles) = inner.installed.remove(flow) else {
            return false;
        };
        for h in handles {
            if inner.table.destroy(h).is_err() {
                inner.stats.destroy_failed += 1;
            }
        }
        inner.stats.flows_removed += 1;
        inner.stats.rules = inner.installed.len() as u64 * 2;
        true
    }

    /// True when `flow`'s rules are installed.
    pub fn contains(&self, flow: &BypassedFlow) -> bool {
        self.lock().installed.contains_key(flow)
    }

    /// Removes every rule of the port (at exit) and forgets the installed flows.
    pub fn shutdown(&self) -> Result<(), FlowRefusal> {
        let mut g = self.lock();
        let inner = &mut *g;
        inner.installed.clear();
        inner.stats.rules = 0;
        inner.stats.flushes += 1;
        inner.table.flush()
    }

    /// The counters so far.
    pub fn stats(&self) -> NicBypassStats {
        self.lock().stats
    }
}

impl Drop for NicBypass {
    /// Leaves no rule behind: flushes unless [`NicBypass::shutdown`] already did and nothing
    /// was installed since.
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
        if !inner.installed.is_empty() {
            inner.installed.clear();
            inner.stats.flushes += 1;
            if let Err(e) = inner.table.flush() {
                tracing::warn!(port = %self.port, error = %e.message, "rte_flow_flush at exit failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::model::ModelNic;
    use super::*;

    fn flow(i: u16) -> BypassedFlow {
        BypassedFlow {
            client_ip: "10.20.0.5".parse().unwrap(),
            client_port: 40000 + i,
            server_ip: "198.51.100.7".parse().unwrap(),
            server_port: 443,
        }
    }

    #[test]
    fn start_flushes_what_a_previous_run_left() {
        let nic = ModelNic::new(64);
        let mut left = nic.clone();
        left.create(
            &bypass_rule(
                "10.0.0.1".parse().unwrap(),
                1,
                "10.0.0.2".parse().unwrap(),
                2,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(nic.rule_count(), 1);
        let bypass = NicBypass::start("p0", Box::new(nic.clone()), 16).unwrap();
        assert_eq!(nic.rule_count(), 0);
        assert_eq!(bypass.stats().flushes, 1);
    }

    #[test]
    fn install_puts_both_directions_in_the_nic_and_remove_takes_them_out() {
        let nic = ModelNic::new(64);
        let bypass = NicBypass::start("p0", Box::new(nic.clone()), 16).unwrap();
        let f = flow(1);
        assert_eq!(bypass.install(&f), Installed::Yes);
        assert_eq!(bypass.install(&f), Installed::Already);
        assert_eq!(nic.rule_count(), 2);
        let c: IpAddr = "10.20.0.5".parse().unwrap();
        let s: IpAddr = "198.51.100.7".parse().unwrap();
        assert!(nic.drops_tcp(c, 40001, s, 443));
        assert!(nic.drops_tcp(s, 443, c, 40001));
        assert!(!nic.drops_tcp(c, 40002, s, 443));
        assert!(bypass.remove(&f));
        assert!(!bypass.remove(&f));
        assert_eq!(nic.rule_count(), 0);
        assert!(!nic.drops_tcp(c, 40001, s, 443));
        let st = bypass.stats();
        assert_eq!(
            (
                st.flows_installed,
                st.flows_removed,
                st.rules,
                st.rules_peak
            ),
            (1, 1, 0, 2)
        );
    }

    #[test]
    fn the_configured_cap_is_kept_and_refusals_are_counted_as_full() {
        let nic = ModelNic::new(1024);
        // 5 rules allowed: two flows (4 rules); the third would need 6.
        let bypass = NicBypass::start("p0", Box::new(nic.clone()), 5).unwrap();
        assert_eq!(bypass.install(&flow(1)), Installed::Yes);
        assert_eq!(bypass.install(&flow(2)), Installed::Yes);
        assert_eq!(bypass.install(&flow(3)), Installed::Full);
        assert_eq!(bypass.install(&flow(4)), Installed::Full);
        assert_eq!(nic.rule_count(), 4);
        assert_eq!(bypass.stats().full, 2);
        // A flow's end frees room for the next.
        assert!(bypass.remove(&flow(1)));
        assert_eq!(bypass.install(&flow(3)), Installed::Yes);
        assert_eq!(bypass.stats().rules_peak, 4);
    }

    #[test]
    fn a_nic_table_smaller_than_the_cap_refuses_with_its_answer_and_nothing_half_installed() {
        // The NIC holds 3 rules: the second flow's first rule fits, its second does not.
        let nic = ModelNic::new(3);
        let bypass = NicBypass::start("p0", Box::new(nic.clone()), 100).unwrap();
        assert_eq!(bypass.install(&flow(1)), Installed::Yes);
        match bypass.install(&flow(2)) {
            Installed::Refused(e) => assert_eq!(e.code, -28, "{e:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            nic.rule_count(),
            2,
            "the first rule of the refused flow was destroyed"
        );
        assert!(!bypass.contains(&flow(2)));
        assert_eq!(bypass.stats().refused, 1);
    }

    #[test]
    fn a_nic_that_refuses_the_rule_kind_is_refused_and_mixed_families_too() {
        let nic = ModelNic::new(64).without_ipv6();
        let bypass = NicBypass::start("p0", Box::new(nic.clone()), 100).unwrap();
        let v6 = BypassedFlow {
            client_ip: "2001:db8::5".parse().unwrap(),
            client_port: 50000,
            server_ip: "2001:db8:ffff::1".parse().unwrap(),
            server_port: 443,
        };
        assert!(matches!(bypass.install(&v6), Installed::Refused(e) if e.code == -95));
        let mixed = BypassedFlow {
            server_ip: "198.51.100.1".parse().unwrap(),
            ..v6
        };
        assert!(matches!(bypass.install(&mixed), Installed::Refused(_)));
        assert_eq!(bypass.stats().refused, 2);
        assert_eq!(nic.rule_count(), 0);
    }

    #[test]
    fn shutdown_and_drop_flush_the_port() {
        let nic = ModelNic::new(64);
        let bypass = NicBypass::start("p0", Box::new(nic.clone()), 100).unwrap();
        for i in 0..5 {
            assert_eq!(bypass.install(&flow(i)), Installed::Yes);
        }
        assert_eq!(nic.rule_count(), 10);
        bypass.shutdown().unwrap();
        assert_eq!(nic.rule_count(), 0);
        assert_eq!(nic.flushes(), 2);
        assert!(!bypass.remove(&flow(0)), "forgotten by the flush");

        let bypass = NicBypass::start("p0", Box::new(nic.clone()), 100).unwrap();
        assert_eq!(bypass.install(&flow(9)), Installed::Yes);
        drop(bypass);
        assert_eq!(nic.rule_count(), 0);
        assert_eq!(nic.flushes(), 4);
    }
}
