//! The daemon's view on its running dataplane: the counters of [`LiveDataplane`] (ports,
//! workers, flows received per protocol, hand-off drops) in the admin API's shape.
//!
//! Owns: mapping the runtime's counters to [`DataplaneStats`]. Must not: start, stop or
//! configure anything (the dataplane crate's online runtime, `portolan_dataplane::runtime::
//! online`, does), or run on a worker lcore.

use std::collections::BTreeMap;

use portolan_api::{DataplaneStats, PortCounters, WorkerStats};
use portolan_dataplane::dpdk::xdp_prefilter::{PrefilterCounters, PrefilterReason};
use portolan_dataplane::runtime::online::RunningPort;
pub use portolan_dataplane::runtime::online::{port_link_types, LiveDataplane, OnlineError};

/// One counter of what the port's driver prefilter dropped, per reason (empty without one).
fn driver_prefiltered(
    rp: &RunningPort,
    field: fn(&PrefilterCounters) -> u64,
) -> BTreeMap<String, u64> {
    let Some(p) = rp.driver_prefilter.as_ref() else {
        return BTreeMap::new();
    };
    PrefilterReason::ALL
        .iter()
        .filter_map(|r| match p.drops(*r) {
            Ok(c) => Some((r.as_str().to_string(), field(&c))),
            Err(e) => {
                tracing::debug!(iface = p.iface(), error = %e, "driver prefilter counters unavailable");
                None
            }
        })
        .collect()
}

/// The counters now: the ports' own, each worker's as it last published them (every few
/// bursts while it runs; complete once it has returned), the flows the control plane received
/// per worker and protocol (`live_protocols`, until the worker's own totals are in), and the
/// hand-off drops per worker (`ring_drops`).
pub fn stats(
    dp: &LiveDataplane,
    live_protocols: &[BTreeMap<String, u64>],
    ring_drops: &[u64],
) -> DataplaneStats {
    let mut ports = Vec::with_capacity(dp.ports().len());
    for rp in dp.ports() {
        let id = rp.port.id();
        match rp.port.stats() {
            Ok(s) => ports.push(PortCounters {
                port_id: id,
                name: rp.name.clone(),
                rx_packets: s.ipackets,
                rx_bytes: s.ibytes,
                rx_missed: s.imissed,
                rx_errors: s.ierrors,
                rx_nombuf: s.rx_nombuf,
                rx_kernel_dropped: rp.kernel_drops.as_ref().and_then(|k| {
                    k.dropped()
                        .map_err(|e| {
                            tracing::debug!(port = id, iface = k.iface(), error = %e,
                                "kernel socket drops unavailable");
                        })
                        .ok()
                }),
                driver_prefiltered_packets: driver_prefiltered(rp, |c| c.packets),
                driver_prefiltered_bytes: driver_prefiltered(rp, |c| c.bytes),
            }),
            Err(e) => tracing::debug!(port = id, error = %e, "port statistics unavailable"),
        }
    }
    let workers = dp
        .places()
        .iter()
        .enumerate()
        .map(|(i, place)| {
            let mut w = WorkerStats {
                worker_id: place.worker_id,
                lcore: place.lcore,
                port_id: place.port_id,
                queue: place.queue,
                flows_capacity: place.flows_capacity,
                ..WorkerStats::default()
            };
            if let Some(live) = dp.live_counters().get(i) {
                let snap = live.snapshot();
                w.packets = snap.packets;
                w.bytes = snap.bytes;
                w.drops = snap
                    .drops
                    .iter()
                    .map(|(r, n)| (r.as_str().to_string(), *n))
                    .collect();
                w.encapsulated = snap
                    .encapsulated
                    .iter()
                    .map(|(k, n)| (k.as_str().to_string(), *n))
                    .collect();
                w.driver_bypass_flows = snap.driver_bypass_flows;
                w.driver_bypassed_packets = snap.driver_bypassed_packets;
                w.driver_bypassed_bytes = snap.driver_bypassed_bytes;
                w.flows_active = snap.flows_active;
                w.flows_created = snap.flows_created;
                w.flows_evicted = snap.flows_evicted;
                w.flows_evicted_half_open = snap.flows_evicted_half_open;
                w.flows_evicted_closed = snap.flows_evicted_closed;
                w.prefiltered = snap.prefiltered;
            }
            w.ring_drops = ring_drops.get(i).copied().unwrap_or(0);
            match dp.outcomes().get(i).and_then(Option::as_ref) {
                Some(o) => {
                    let report = o.observer.report();
                    w.ring_drops = report.ring_drops;
                    w.protocols = report
                        .app_protos
                        .iter()
                        .map(|(k, v)| ((*k).to_string(), *v))
                        .collect();
                }
                None => {
                    if let Some(protos) = live_protocols.get(i) {
                        w.protocols = protos.clone();
                    }
                }
            }
            w
        })
        .collect();
    DataplaneStats {
        updated_at: Some(portolan_control::timestamp::format_rfc3339(
            portolan_control::timestamp::now_us(),
        )),
        ports,
        workers,
        outputs: Vec::new(),
        store: None,
    }
}
