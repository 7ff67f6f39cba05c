//! A port's rte_flow rule table: the DPDK implementation of
//! [`crate::nic_bypass::RuleTable`] (`rte_flow_validate`, `rte_flow_create`,
//! `rte_flow_destroy`, `rte_flow_flush`).
//!
//! Owns: the `struct rte_flow` handles of the rules it created, by [`RuleHandle`]. Must not:
//! decide which rules to install, or how many (`crate::nic_bypass::NicBypass` does), or be used
//! from two threads at once without a lock (rte_flow calls on one port are not thread-safe
//! unless the PMD says so; `NicBypass` serialises them).

use super::flow_rule::{self, FlowRefusal, FlowRule, RuleStorage};
use super::{DpdkError, Eal};
use crate::nic_bypass::{RuleHandle, RuleTable};
use portolan_dpdk_sys as sys;
use std::collections::HashMap;
use std::ptr::NonNull;

/// A rule the driver created.
struct RteFlow(NonNull<sys::rte_flow>);

// SAFETY: the pointer is an opaque handle owned by the port's driver; it is only passed back to
// rte_flow_destroy for the same port, from whichever thread holds the table (callers serialise
// access), never dereferenced here.
unsafe impl Send for RteFlow {}

/// The rule table of one started DPDK port.
pub struct DpdkRuleTable {
    port_id: u16,
    next: u64,
    rules: HashMap<u64, RteFlow>,
}

impl std::fmt::Debug for DpdkRuleTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkRuleTable")
            .field("port_id", &self.port_id)
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl DpdkRuleTable {
    /// The table of port `port_id` (configured; most drivers want it started before rules are
    /// created). `capacity`: rules to reserve room for.
    pub fn new(_eal: &Eal, port_id: u16, capacity: usize) -> Result<DpdkRuleTable, DpdkError> {
        // SAFETY: the EAL is initialised (we hold a handle); the call only reads the port table.
        if unsafe { sys::rte_eth_dev_is_valid_port(port_id) } != 1 {
            return Err(DpdkError::Port {
                port: port_id,
                call: "rte_flow_create",
                reason: "no such port".to_string(),
            });
        }
        Ok(DpdkRuleTable {
            port_id,
            next: 0,
            rules: HashMap::with_capacity(capacity),
        })
    }

    /// Rules this table created that are still installed.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when no rule of this table is installed.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl RuleTable for DpdkRuleTable {
    fn validate(&mut self, rule: &FlowRule) -> Result<(), FlowRefusal> {
        let storage = RuleStorage::build(rule);
        let attr = flow_rule::ingress_attr(rule);
        let mut error = sys::rte_flow_error::default();
        // SAFETY: as in `flow_rule::validate`: every array and struct the call reads lives in
        // `storage` / this frame until it returns; error is writable.
        let ret = unsafe {
            sys::rte_flow_validate(
                self.port_id,
                &attr,
                storage.items.as_ptr(),
                storage.actions.as_ptr(),
                &mut error,
            )
        };
        if ret == 0 {
            Ok(())
        } else {
            Err(flow_rule::refusal(ret, &error))
        }
    }

    fn create(&mut self, rule: &FlowRule) -> Result<RuleHandle, FlowRefusal> {
        let storage = RuleStorage::build(rule);
        let attr = flow_rule::ingress_attr(rule);
        let mut error = sys::rte_flow_error::default();
        // SAFETY: as in `validate`; the driver copies what it needs of the pattern and actions
        // into its own rule (rte_flow.h: they need not outlive the call).
        let flow = unsafe {
            sys::rte_flow_create(
                self.port_id,
                &attr,
                storage.items.as_ptr(),
                storage.actions.as_ptr(),
                &mut error,
            )
        };
        match NonNull::new(flow) {
            Some(flow) => {
                self.next += 1;
                self.rules.insert(self.next, RteFlow(flow));
                Ok(RuleHandle(self.next))
            }
            None => {
                // SAFETY: reads the calling thread's rte_errno, set by the failed create.
                let errno = unsafe { sys::portolan_errno() };
                Err(flow_rule::refusal(-errno.max(1), &error))
            }
        }
    }

    fn destroy(&mut self, handle: RuleHandle) -> Result<(), FlowRefusal> {
        let Some(flow) = self.rules.remove(&handle.0) else {
            return Err(FlowRefusal {
                code: -2,
                message: format!("no rule {} on port {}", handle.0, self.port_id),
            });
        };
        let mut error = sys::rte_flow_error::default();
        // SAFETY: flow was returned by rte_flow_create on this port and not destroyed since
        // (it was still in the map, and is removed from it now); error is writable.
        let ret = unsafe { sys::rte_flow_destroy(self.port_id, flow.0.as_ptr(), &mut error) };
        if ret == 0 {
            Ok(())
        } else {
            Err(flow_rule::refusal(ret, &error))
        }
    }

    fn flush(&mut self) -> Result<(), FlowRefusal> {
        let mut error = sys::rte_flow_error::default();
        // SAFETY: only the port id and a writable error are passed; the driver frees every rule
        // of the port, so the handles kept here are dropped without being used again.
        let ret = unsafe { sys::rte_flow_flush(self.port_id, &mut error) };
        self.rules.clear();
        if ret == 0 {
            Ok(())
        } else {
            Err(flow_rule::refusal(ret, &error))
        }
    }
}
