//! Prometheus metrics of the appliance (`GET /metrics`): HTTP request counters and latencies of the admin API,
//! the dataplane's port and worker counters and the alert outputs' counters read from the shared
//! [`DataplaneStatsHandle`] on each scrape, and `portolan_build_info`.
//!
//! Names carry the `portolan_` prefix, base units (`_bytes`, `_seconds`) and `_total` on counters. The
//! registry (prometheus-client) encodes OpenMetrics; [`ApiMetrics::encode_prometheus`] produces the classic
//! Prometheus text format (0.0.4) for scrapers that do not ask for OpenMetrics. This module must not block
//! the dataplane: it only reads published snapshots.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use portolan_control::ControlCore;

use crate::stats::DataplaneStatsHandle;

/// Content type of the classic Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of OpenMetrics text.
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of an HTTP request counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method.
    pub method: String,
    /// Route template (e.g. `/api/v1/devices/{udid}`), `unmatched` for unknown paths.
    pub route: String,
    /// Response status code.
    pub status: u16,
}

/// Labels of a counter with one `reason`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why (e.g. `idle`, `shed`, `total_cap`).
    pub reason: String,
}

/// Labels of an HTTP latency histogram.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    /// HTTP method.
    pub method: String,
    /// Route template.
    pub route: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 4.0, 9))
}

/// The metric registry of the admin API.
#[derive(Debug)]
pub struct ApiMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    auth_failures: Counter,
    auth_failures_delayed: Counter,
    connections_open: Gauge,
    connections_refused: Family<ReasonLabels, Counter>,
    connections_closed: Family<ReasonLabels, Counter>,
}

impl ApiMetrics {
    /// A registry with the HTTP metrics, a collector over the dataplane `stats` and, when given, one over
    /// the control-plane engine's counters.
    pub fn new(stats: DataplaneStatsHandle, engine: Option<Arc<ControlCore>>) -> Self {
        let mut registry = Registry::with_prefix("portolan");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Admin API requests answered, by method, route and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register_with_unit(
            "http_request_duration",
            "Admin API request handling time",
            Unit::Seconds,
            latency.clone(),
        );
        let auth_failures = Counter::default();
        registry.register(
            "http_auth_failures",
            "Admin API requests refused for a missing or unknown token",
            auth_failures.clone(),
        );
        let auth_failures_delayed = Counter::default();
        registry.register(
            "http_auth_failures_delayed",
            "Failed authentications answered late because their client address failed often",
            auth_failures_delayed.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "http_connections_open",
            "Admin API connections open now",
            connections_open.clone(),
        );
        let connections_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "http_connections_refused",
            "Admin API connections refused at accept because every connection was busy, by cap",
            connections_refused.clone(),
        );
        let connections_closed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "http_connections_closed",
            "Admin API connections closed by the server: idle past the timeout, shed for a newer one \
             at a cap, or at shutdown",
            connections_closed.clone(),
        );
        registry.register_collector(Box::new(DataplaneCollector { stats }));
        if let Some(engine) = engine {
            registry.register_collector(Box::new(ControlCollector { engine }));
        }
        Self {
            registry,
            requests,
            latency,
            auth_failures,
            auth_failures_delayed,
            connections_open,
            connections_refused,
            connections_closed,
        }
    }

    /// Counts one failed authentication answered late.
    pub fn observe_auth_failure_delayed(&self) {
        self.auth_failures_delayed.inc();
    }

    /// Sets the number of open connections.
    pub fn set_connections_open(&self, open: usize) {
        self.connections_open
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    /// Counts one connection refused at accept (`reason`: which cap).
    pub fn observe_connection_refused(&self, reason: &str) {
        self.connections_refused
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts one connection closed by the server (`reason`: `idle`, `shed`, `shutdown`).
    pub fn observe_connection_closed(&self, reason: &str) {
        self.connections_closed
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts one answered request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                method: method.to_string(),
                route: route.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one request refused for a missing or unknown token.
    pub fn observe_auth_failure(&self) {
        self.auth_failures.inc();
    }

    /// Encodes every metric as OpenMetrics text.
    pub fn encode_openmetrics(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// Encodes every metric in the classic Prometheus text format (0.0.4).
    pub fn encode_prometheus(&self) -> Result<String, std::fmt::Error> {
        Ok(openmetrics_to_prometheus(&self.encode_openmetrics()?))
    }
}

/// Rewrites OpenMetrics text into Prometheus text 0.0.4: counter families are named with their `_total`
/// sample name, `# UNIT` and `# EOF` lines are dropped.
pub fn openmetrics_to_prometheus(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .filter(|(_, kind)| *kind == "counter")
        .map(|(name, _)| name)
        .collect();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (*p, rest)));
        match meta {
            Some((p, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) && !name.ends_with("_total") {
                    let _ = writeln!(out, "{p}{name}_total {tail}");
                } else {
                    let _ = writeln!(out, "{line}");
                }
            }
            None => {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    out
}

/// Encodes the dataplane snapshot on each scrape.
#[derive(Debug)]
struct DataplaneCollector {
    stats: DataplaneStatsHandle,
}

fn counter_family<'a, L: EncodeLabelSet + 'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl Iterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (labels, value) in samples {
        let family = metric.encode_family(&labels)?;
        ConstCounter::new(value).encode(family)?;
    }
    Ok(())
}

fn gauge_family<'a, L: EncodeLabelSet + 'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl Iterator<Item = (L, i64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        let family = metric.encode_family(&labels)?;
        ConstGauge::new(value).encode(family)?;
    }
    Ok(())
}

type Labels = Vec<(&'static str, String)>;

impl Collector for DataplaneCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap: Arc<_> = self.stats.snapshot();
        let port = |p: &crate::stats::PortCounters| -> Labels {
            vec![("port", p.port_id.to_string()), ("device", p.name.clone())]
        };
        let e = &mut encoder;
        counter_family(
            e,
            "port_rx_packets",
            "Packets received by the NIC port",
            None,
            snap.ports.iter().map(|p| (port(p), p.rx_packets)),
        )?;
        counter_family(
            e,
            "port_rx",
            "Bytes received by the NIC port",
            Some(&Unit::Bytes),
            snap.ports.iter().map(|p| (port(p), p.rx_bytes)),
        )?;
        counter_family(
            e,
            "port_rx_missed_packets",
            "Packets dropped by the NIC because its RX queues were full",
            None,
            snap.ports.iter().map(|p| (port(p), p.rx_missed)),
        )?;
        counter_family(
            e,
            "port_rx_kernel_dropped_packets",
            "Packets the kernel dropped on the port's sockets (net_af_packet, net_af_xdp) because their ring was full",
            None,
            snap.ports
                .iter()
                .filter_map(|p| p.rx_kernel_dropped.map(|n| (port(p), n))),
        )?;
        counter_family(
            e,
            "port_rx_errors",
            "Erroneous packets received by the NIC port",
            None,
            snap.ports.iter().map(|p| (port(p), p.rx_errors)),
        )?;
        counter_family(
            e,
            "port_rx_nombuf",
            "Receive buffer allocation failures of the NIC port",
            None,
            snap.ports.iter().map(|p| (port(p), p.rx_nombuf)),
        )?;

        let worker = |w: &crate::stats::WorkerStats| -> Labels {
            vec![
                ("worker", w.worker_id.to_string()),
                ("lcore", w.lcore.to_string()),
            ]
        };
        counter_family(
            e,
            "worker_packets",
            "Frames received by the worker",
            None,
            snap.workers.iter().map(|w| (worker(w), w.packets)),
        )?;
        counter_family(
            e,
            "worker_rx",
            "Bytes received by the worker",
            Some(&Unit::Bytes),
            snap.workers.iter().map(|w| (worker(w), w.bytes)),
        )?;
        counter_family(
            e,
            "worker_decode_drops",
            "Frames the worker could not decode, by reason",
            None,
            snap.workers.iter().flat_map(|w| {
                w.drops.iter().map(move |(reason, n)| {
                    let mut l = worker(w);
                    l.push(("reason", reason.clone()));
                    (l, *n)
                })
            }),
        )?;
        counter_family(
            e,
            "worker_encapsulated_packets",
            "Frames carried in an encapsulation the worker walked to the inner packet, by kind",
            None,
            snap.workers.iter().flat_map(|w| {
                w.encapsulated.iter().map(move |(kind, n)| {
                    let mut l = worker(w);
                    l.push(("encapsulation", kind.clone()));
                    (l, *n)
                })
            }),
        )?;
        counter_family(
            e,
            "worker_driver_bypassed_packets",
            "Packets of judged flows the driver dropped (XDP bypass), counted as their flows ended",
            None,
            snap.workers
                .iter()
                .map(|w| (worker(w), w.driver_bypassed_packets)),
        )?;
        counter_family(
            e,
            "worker_prefiltered_packets",
            "Frames skipped because neither address is in a managed subnet (software prefilter)",
            None,
            snap.workers.iter().map(|w| (worker(w), w.prefiltered)),
        )?;
        counter_family(
            e,
            "worker_ring_drops",
            "Events dropped because the ring to the control plane was full",
            None,
            snap.workers.iter().map(|w| (worker(w), w.ring_drops)),
        )?;
        counter_family(
            e,
            "worker_flows_created",
            "Flows created by the worker",
            None,
            snap.workers.iter().map(|w| (worker(w), w.flows_created)),
        )?;
        counter_family(
            e,
            "worker_flows_evicted",
            "Flows finished early because the worker's flow table was full, by kind: half_open (SYN or SYN-ACK only, evicted first), closed (FIN or RST seen), active (the least recently active of the rest)",
            None,
            snap.workers.iter().flat_map(|w| {
                let active = w
                    .flows_evicted
                    .saturating_sub(w.flows_evicted_half_open)
                    .saturating_sub(w.flows_evicted_closed);
                [
                    ("half_open", w.flows_evicted_half_open),
                    ("closed", w.flows_evicted_closed),
                    ("active", active),
                ]
                .into_iter()
                .map(move |(kind, n)| {
                    let mut l = worker(w);
                    l.push(("kind", kind.to_string()));
                    (l, n)
                })
            }),
        )?;
        gauge_family(
            e,
            "worker_flows_active",
            "Flows in the worker's flow table",
            snap.workers
                .iter()
                .map(|w| (worker(w), i64::try_from(w.flows_active).unwrap_or(i64::MAX))),
        )?;
        counter_family(
            e,
            "worker_protocol_flows",
            "Flows classified by the worker, by application protocol",
            None,
            snap.workers.iter().flat_map(|w| {
                w.protocols.iter().map(move |(proto, n)| {
                    let mut l = worker(w);
                    l.push(("app_proto", proto.clone()));
                    (l, *n)
                })
            }),
        )?;

        let output = |o: &crate::stats::OutputStats| -> Labels {
            vec![("output", o.name.clone()), ("kind", o.kind.clone())]
        };
        counter_family(
            e,
            "output_events_sent",
            "Events an output delivered: lines written to a file, messages a syslog or Redis receiver took",
            None,
            snap.outputs.iter().map(|o| (output(o), o.sent)),
        )?;
        counter_family(
            e,
            "output_events_dropped",
            "Events an output lost: its queue was full while the receiver was down or slow, or a file write failed",
            None,
            snap.outputs.iter().map(|o| (output(o), o.dropped)),
        )?;
        counter_family(
            e,
            "output_errors",
            "Connection, write or reopen failures of an output",
            None,
            snap.outputs.iter().map(|o| (output(o), o.errors)),
        )?;
        counter_family(
            e,
            "output_reopens",
            "Times an output file was reopened (SIGHUP, log rotation)",
            None,
            snap.outputs.iter().map(|o| (output(o), o.reopened)),
        )?;
        gauge_family(
            e,
            "output_events_queued",
            "Events waiting in an output's queue",
            snap.outputs
                .iter()
                .map(|o| (output(o), i64::try_from(o.queued).unwrap_or(i64::MAX))),
        )?;
        gauge_family(
            e,
            "output_queue_limit",
            "Events an output's queue holds before new ones are dropped (0: a file, no queue)",
            snap.outputs
                .iter()
                .map(|o| (output(o), i64::try_from(o.queue_limit).unwrap_or(i64::MAX))),
        )?;
        let connectors = self.stats.connectors();
        let connector =
            |c: &crate::stats::ConnectorStats| -> Labels { vec![("connector", c.name.clone())] };
        counter_family(
            e,
            "connector_pulls",
            "Inventory pulls of a connector ([inputs.jamf], [inputs.graph]) by result: ok (imported) or failed (the previous inventory stays; the log says why)",
            None,
            connectors.iter().flat_map(|c| {
                [("ok", c.pulls_ok), ("failed", c.pulls_failed)]
                    .into_iter()
                    .map(move |(result, n)| {
                        let mut l = connector(c);
                        l.push(("result", result.to_string()));
                        (l, n)
                    })
            }),
        )?;
        gauge_family(
            e,
            "connector_last_success_timestamp_seconds",
            "Unix time of the connector's last imported pull (0: none yet)",
            connectors.iter().map(|c| {
                (
                    connector(c),
                    i64::try_from(c.last_success_unix.unwrap_or(0)).unwrap_or(i64::MAX),
                )
            }),
        )?;
        gauge_family(
            e,
            "connector_last_pull_failed",
            "1 while the connector's last pull failed (the inventory is the one pulled before)",
            connectors
                .iter()
                .map(|c| (connector(c), i64::from(c.last_error.is_some()))),
        )?;
        gauge_family(
            e,
            "connector_devices",
            "Devices the connector's last imported pull listed",
            connectors
                .iter()
                .map(|c| (connector(c), i64::try_from(c.devices).unwrap_or(i64::MAX))),
        )?;
        if let Some(r) = self.stats.radius() {
            counter_family(
                e,
                "radius_packets",
                "RADIUS accounting datagrams ([inputs.radius]) by result: accepted (recorded and answered), bad_authenticator (wrong shared secret or altered), malformed, unknown_client (source outside clients), error (not recorded, not answered)",
                None,
                [
                    ("accepted", r.accepted),
                    ("bad_authenticator", r.bad_authenticator),
                    ("malformed", r.malformed),
                    ("unknown_client", r.unknown_client),
                    ("error", r.errors),
                ]
                .into_iter()
                .map(|(result, n)| (vec![("result", result.to_string())], n)),
            )?;
            counter_family(
                e,
                "radius_ignored",
                "Accepted RADIUS accounting requests that bound nothing (no Acct-Session-Id, a Calling-Station-Id that is not a MAC, a status that binds nothing)",
                None,
                std::iter::once((Labels::new(), r.ignored)),
            )?;
            counter_family(
                e,
                "radius_bindings",
                "Address-to-MAC bindings RADIUS accounting opened (Start, Interim-Update) and closed (Stop, reuse, Accounting-On/Off)",
                None,
                [("opened", r.bindings_opened), ("closed", r.bindings_closed)]
                    .into_iter()
                    .map(|(change, n)| (vec![("change", change.to_string())], n)),
            )?;
        }
        if let Some(b) = self.stats.build_info() {
            let labels: Labels = vec![
                ("version", b.version.clone()),
                ("revision", b.revision.clone()),
                ("dpdk", b.dpdk.clone()),
                ("hyperscan", b.hyperscan.clone()),
            ];
            gauge_family(
                e,
                "build_info",
                "Always 1; the labels say which build runs: version, git revision, DPDK and Hyperscan versions",
                std::iter::once((labels, 1)),
            )?;
        }
        Ok(())
    }
}

/// Encodes the control-plane engine's counters on each scrape (scrapes run on the blocking pool: this
/// takes the engine lock briefly).
struct ControlCollector {
    engine: Arc<ControlCore>,
}

impl std::fmt::Debug for ControlCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlCollector").finish_non_exhaustive()
    }
}

impl Collector for ControlCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (stats, devices) = match self.engine.lock() {
            Ok(core) => (core.stats(), core.device_count()),
            // A poisoned engine is reported by the routes that use it; metrics stay quiet.
            Err(_) => return Ok(()),
        };
        let e = &mut encoder;
        for (name, help, value) in [
            (
                "control_flows",
                "Flow observations received by the control plane",
                stats.flows,
            ),
            (
                "control_unclassified_flows",
                "Flows without an identified protocol (not judged)",
                stats.unclassified,
            ),
            (
                "control_approved_flows",
                "Flows whose protocol/port pairing was approved",
                stats.approved,
            ),
            (
                "control_violations",
                "Flows that broke a baseline",
                stats.violations,
            ),
            (
                "control_excepted_violations",
                "Violations covered by an exception",
                stats.excepted,
            ),
            ("control_alerts", "Alerts raised", stats.alerts),
            (
                "control_dns_answers",
                "DNS answers remembered for attribution",
                stats.dns_answers,
            ),
            (
                "control_device_states",
                "Device state events stored",
                stats.device_states,
            ),
        ] {
            let metric = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(metric)?;
        }
        let h = self.engine.store_health();
        for (name, help, value) in [
            (
                "control_store_failed_commits",
                "Commits of findings and alerts the store refused (full disk, read-only or locked file); each is retried",
                h.failed_commits,
            ),
            (
                "control_store_lost_alerts",
                "Uncommitted alerts dropped because too many waited for the store (their findings are kept)",
                h.lost_alerts,
            ),
            (
                "control_store_failed_learning_flushes",
                "Writes of learning counts the store refused (the counts are kept for the next write)",
                h.failed_learning_flushes,
            ),
        ] {
            let metric = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(metric)?;
        }
        for (name, help, value) in [
            (
                "control_store_degraded",
                "1 while findings or alerts wait in memory because the store refuses commits, else 0",
                u64::from(h.degraded_reason().is_some()),
            ),
            (
                "control_store_unsaved_findings",
                "Findings judged but not yet committed to the store",
                h.unsaved_findings,
            ),
            (
                "control_store_unsaved_alerts",
                "Alerts raised but not yet committed to the store (nor written to the outputs)",
                h.unsaved_alerts,
            ),
        ] {
            let metric = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(metric)?;
        }
        let metric = e.encode_descriptor(
            "control_devices",
            "Devices in the inventory",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(devices).unwrap_or(i64::MAX)).encode(metric)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_renamed_with_total_and_openmetrics_markers_dropped() {
        let om = "# HELP x_requests Requests.\n# TYPE x_requests counter\nx_requests_total{a=\"b\"} 3\n\
                  # HELP x_rx_bytes Bytes.\n# TYPE x_rx_bytes counter\n# UNIT x_rx_bytes bytes\nx_rx_bytes_total 1\n# EOF\n";
        let p = openmetrics_to_prometheus(om);
        assert!(p.contains("# TYPE x_requests_total counter\n"), "{p}");
        assert!(p.contains("# HELP x_requests_total Requests.\n"), "{p}");
        assert!(!p.contains("# UNIT") && !p.contains("# EOF"), "{p}");
        assert!(p.contains("x_rx_bytes_total 1\n"), "{p}");
    }
}
