//! Dataplane statistics as the admin API shows them (`GET /api/v1/stats`, `/metrics`), and the shared handle
//! through which the daemon publishes a fresh snapshot.
//!
//! The daemon fills [`DataplaneStats`] from the port and worker counters and calls
//! [`DataplaneStatsHandle::publish`]; readers never block the publisher. The alert outputs' counters
//! (files, syslog, Redis) are read live at each snapshot through the source the daemon registers
//! with [`DataplaneStatsHandle::set_output_source`], and the build's identity
//! ([`BuildInfo`]) is set once at start-up. This module must not reach into dataplane state itself.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One snapshot of the dataplane's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DataplaneStats {
    /// When the snapshot was taken (RFC 3339); absent before the dataplane published anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Per-port NIC counters.
    #[serde(default)]
    pub ports: Vec<PortCounters>,
    /// Per-worker counters.
    #[serde(default)]
    pub workers: Vec<WorkerStats>,
    /// Alert and flow outputs (files, syslog, Redis): what each wrote, queued and dropped.
    #[serde(default)]
    pub outputs: Vec<OutputStats>,
    /// The store's health: findings and alerts waiting because commits fail, and what was lost
    /// (filled in by `GET /api/v1/stats` from the control plane).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreStats>,
}

/// Findings and alerts the store has not taken yet, and what failed or was lost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoreStats {
    /// True while findings or alerts wait in memory for a store that refuses commits.
    pub degraded: bool,
    /// Findings judged but not yet committed.
    pub unsaved_findings: u64,
    /// Alerts raised but not yet committed (nor written to the alert files and outputs).
    pub unsaved_alerts: u64,
    /// Commits that failed since start (each is retried).
    pub failed_commits: u64,
    /// Uncommitted alerts dropped because too many waited (their findings are kept).
    pub lost_alerts: u64,
    /// Writes of learning counts that failed (the counts are kept for the next write).
    pub failed_learning_flushes: u64,
}

impl From<&portolan_control::StoreHealthSnapshot> for StoreStats {
    fn from(h: &portolan_control::StoreHealthSnapshot) -> Self {
        StoreStats {
            degraded: h.degraded_reason().is_some(),
            unsaved_findings: h.unsaved_findings,
            unsaved_alerts: h.unsaved_alerts,
            failed_commits: h.failed_commits,
            lost_alerts: h.lost_alerts,
            failed_learning_flushes: h.failed_learning_flushes,
        }
    }
}

/// Counters of one output: an alert or flow-log file, or a network output (syslog, Redis).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutputStats {
    /// Where the configuration names it: `eve`, `ocsf`, `flows`, `syslog[0]`, `redis[1]`.
    pub name: String,
    /// `file`, `syslog-udp`, `syslog-tls`, `redis-list` or `redis-channel`.
    pub kind: String,
    /// The file, or the receiver's `host:port`.
    pub target: String,
    /// Events the receiver took (network outputs) or lines written (files).
    pub sent: u64,
    /// Events lost: the queue was full while the receiver was down or slow (network outputs), or
    /// the write failed (files).
    pub dropped: u64,
    /// Connection, write or reopen failures.
    pub errors: u64,
    /// Events waiting in the queue now (network outputs; files have no queue).
    pub queued: u64,
    /// Events the queue holds at most before new ones are dropped (0 for files).
    pub queue_limit: u64,
    /// Times the file was reopened (SIGHUP, log rotation).
    #[serde(default)]
    pub reopened: u64,
}

/// What this build is, for the `portolan_build_info` metric.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildInfo {
    /// The package version (`0.1.0`).
    pub version: String,
    /// The git revision built, or `unknown` (a tarball without one).
    pub revision: String,
    /// The DPDK version built against.
    pub dpdk: String,
    /// The Hyperscan version built against.
    pub hyperscan: String,
}

/// Reads the outputs' live counters (registered by the daemon).
pub type OutputSource = Arc<dyn Fn() -> Vec<OutputStats> + Send + Sync>;

/// What one inventory connector (`[inputs.jamf]`, `[inputs.graph]`) did since start; shown in
/// `/metrics` (its error goes to the log).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectorStats {
    /// `jamf` or `graph`.
    pub name: String,
    /// The server it pulls from.
    pub target: String,
    /// Pulls imported.
    pub pulls_ok: u64,
    /// Pulls that failed (the previous inventory stayed).
    pub pulls_failed: u64,
    /// Unix time of the last imported pull.
    pub last_success_unix: Option<u64>,
    /// Unix time of the last failed pull.
    pub last_failure_unix: Option<u64>,
    /// The last failure, until a pull succeeds.
    pub last_error: Option<String>,
    /// Devices the last imported pull listed.
    pub devices: u64,
    /// Import warnings of the last imported pull.
    pub warnings: u64,
}

/// Reads the connectors' statuses (registered by the daemon).
pub type ConnectorSource = Arc<dyn Fn() -> Vec<ConnectorStats> + Send + Sync>;

/// Reads the RADIUS accounting listener's counters (registered by the daemon when
/// `[inputs.radius]` is set).
pub type RadiusSource =
    Arc<dyn Fn() -> portolan_control::radius::listener::RadiusSnapshot + Send + Sync>;

/// Counters of one NIC port (from the device's own statistics).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PortCounters {
    /// DPDK port id.
    pub port_id: u16,
    /// Device name (e.g. `net_pcap0` or a PCI address).
    #[serde(default)]
    pub name: String,
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets dropped by the device because its RX queues were full.
    pub rx_missed: u64,
    /// Erroneous packets received.
    pub rx_errors: u64,
    /// Receive buffer allocation failures.
    pub rx_nombuf: u64,
    /// Packets the kernel dropped on the port's sockets before DPDK saw them because their
    /// ring was full, which the PMDs do not report: for `net_af_packet`, its sockets'
    /// `PACKET_STATISTICS` drops; for `net_af_xdp` (when it is the appliance's only one), its
    /// sockets' `XDP_STATISTICS` `rx_ring_full` (their `rx_dropped` is in `rx_missed`). Absent
    /// for other drivers, and while the sockets cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_kernel_dropped: Option<u64>,
    /// Packets the managed-subnet prefilter in the driver (the XDP program of a `net_af_xdp`
    /// port, `offloads.prefilter_managed_subnets`) dropped before the worker, per reason
    /// (`unmanaged_ipv4`, `unmanaged_ipv6`): TCP/UDP packets with neither address in a managed
    /// subnet. They are not in `rx_packets`. Empty where the prefilter is not in the driver.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_prefiltered_packets: BTreeMap<String, u64>,
    /// Their frame bytes, per reason.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_prefiltered_bytes: BTreeMap<String, u64>,
}

/// Counters of one worker lcore.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerStats {
    /// Worker index.
    pub worker_id: u32,
    /// The lcore it runs on.
    pub lcore: u32,
    /// Port it polls.
    pub port_id: u16,
    /// RX queue it polls.
    pub queue: u16,
    /// Frames received.
    pub packets: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Frames not decoded, by reason.
    #[serde(default)]
    pub drops: BTreeMap<String, u64>,
    /// Frames carried in each encapsulation (GRE, ERSPAN, VXLAN, GENEVE, MPLS, IP in IP) that
    /// the decoder walked to reach the inner packet, decoded or not.
    #[serde(default)]
    pub encapsulated: BTreeMap<String, u64>,
    /// Judged TCP flows whose later payload packets the driver drops (XDP bypass on
    /// `net_af_xdp` ports).
    #[serde(default)]
    pub driver_bypass_flows: u64,
    /// Packets the driver dropped for bypassed flows that have ended (added back to those
    /// flows' records); with `packets`, what the port received.
    #[serde(default)]
    pub driver_bypassed_packets: u64,
    /// Bytes of `driver_bypassed_packets`.
    #[serde(default)]
    pub driver_bypassed_bytes: u64,
    /// Frames skipped by the managed-subnet prefilter (neither address in a managed subnet).
    #[serde(default)]
    pub prefiltered: u64,
    /// Events dropped because the ring to the control plane was full.
    pub ring_drops: u64,
    /// Flows in the worker's table now.
    pub flows_active: u64,
    /// Flows the worker's table holds at most (`hardware.flow_table`; all allocated at start).
    #[serde(default)]
    pub flows_capacity: u64,
    /// Flows created since start.
    pub flows_created: u64,
    /// Flows finished early because the table was full: half-open TCP flows first, then
    /// closed ones, then the least recently active (each such flow is still handed over).
    #[serde(default)]
    pub flows_evicted: u64,
    /// Of `flows_evicted`: half-open TCP flows (SYN or SYN-ACK only; a SYN flood's entries).
    #[serde(default)]
    pub flows_evicted_half_open: u64,
    /// Of `flows_evicted`: TCP flows already closed by FIN or RST.
    #[serde(default)]
    pub flows_evicted_closed: u64,
    /// Flows classified, by application protocol.
    #[serde(default)]
    pub protocols: BTreeMap<String, u64>,
}

/// Shared, lock-free handle to the latest [`DataplaneStats`]; cheap to clone.
#[derive(Clone, Default)]
pub struct DataplaneStatsHandle {
    inner: Arc<ArcSwap<DataplaneStats>>,
    outputs: Arc<OnceLock<OutputSource>>,
    connectors: Arc<OnceLock<ConnectorSource>>,
    radius: Arc<OnceLock<RadiusSource>>,
    build: Arc<OnceLock<BuildInfo>>,
}

impl std::fmt::Debug for DataplaneStatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataplaneStatsHandle")
            .field("inner", &self.inner)
            .field("outputs", &self.outputs.get().is_some())
            .field("build", &self.build.get())
            .finish()
    }
}

impl DataplaneStatsHandle {
    /// A handle holding an empty snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the snapshot (called by the daemon).
    pub fn publish(&self, stats: DataplaneStats) {
        self.inner.store(Arc::new(stats));
    }

    /// Registers where the outputs' counters are read (once; a second call is ignored and
    /// returns `false`).
    pub fn set_output_source(&self, source: OutputSource) -> bool {
        self.outputs.set(source).is_ok()
    }

    /// Registers where the inventory connectors' statuses are read (once; a second call is
    /// ignored and returns `false`).
    pub fn set_connector_source(&self, source: ConnectorSource) -> bool {
        self.connectors.set(source).is_ok()
    }

    /// The inventory connectors' statuses now (none when no source is registered).
    pub fn connectors(&self) -> Vec<ConnectorStats> {
        self.connectors.get().map(|s| s()).unwrap_or_default()
    }

    /// Registers where the RADIUS listener's counters are read (once; a second call is ignored
    /// and returns `false`).
    pub fn set_radius_source(&self, source: RadiusSource) -> bool {
        self.radius.set(source).is_ok()
    }

    /// The RADIUS listener's counters now (`None` when no listener runs).
    pub fn radius(&self) -> Option<portolan_control::radius::listener::RadiusSnapshot> {
        self.radius.get().map(|s| s())
    }

    /// Sets what this build is (once; a second call is ignored and returns `false`).
    pub fn set_build_info(&self, info: BuildInfo) -> bool {
        self.build.set(info).is_ok()
    }

    /// What this build is, when the daemon said.
    pub fn build_info(&self) -> Option<&BuildInfo> {
        self.build.get()
    }

    /// The latest snapshot, with the outputs' counters as they are now.
    pub fn snapshot(&self) -> Arc<DataplaneStats> {
        let snap = self.inner.load_full();
        match self.outputs.get() {
            Some(source) => {
                let mut s = snap.as_ref().clone();
                s.outputs = source();
                Arc::new(s)
            }
            None => snap,
        }
    }
}
