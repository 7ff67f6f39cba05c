//! The hardware description: what the appliance runs on, read from TOML and validated.
//!
//! Owns: [`HardwareDescription`] and its sections, their defaults, loading, and validation that
//! names each bad field and says why ([`InvalidDescription`]). Must not: touch DPDK or probe
//! devices (the dataplane does, and [`crate::plan_offloads`] turns its answers into a plan), or
//! check that capture files named in vdev strings exist (EAL reports that when it opens them).
//!
//! Layout (every section but `cores`, `memory` and `ports` may be left out to take its
//! defaults; unknown keys are refused):
//!
//! ```toml
//! [cores]
//! lcores = "0-1"        # EAL -l: every lcore DPDK may use
//! main = 0              # EAL --main-lcore: start-up, replay orchestration; never a worker
//! control = [0]         # CPUs for the control plane threads (default: the main lcore)
//!
//! [memory]
//! hugepages = false     # false: EAL --no-huge, with -m memory_mb
//! memory_mb = 256
//!
//! [mempool]             # one packet mbuf pool shared by the RX queues
//! mbufs = 8191          # best as 2^n - 1
//! cache = 256           # per-lcore cache; at most 512 and at most mbufs / 1.5
//! data_room = 2176      # bytes per mbuf incl. 128 headroom (RTE_MBUF_DEFAULT_BUF_SIZE)
//!
//! [rings]
//! rx_descriptors = 1024 # per RX queue, a power of two
//! rx_burst = 32         # mbufs per rte_eth_rx_burst
//! handoff = 4096        # per-worker queue to the control plane, a power of two
//!
//! [rss]
//! key = "6d5a6d5a…"     # hex, 40+ bytes, must be symmetric (default: 6d5a × 20)
//! queue_mapping = "reta" # or "modulo"
//! reta_size = 128
//!
//! [flow_table]          # per worker; maps onto portolan_flow::FlowTableConfig
//! capacity = 262144
//! tcp_idle_timeout_s = 600
//! tcp_closed_timeout_s = 30
//! udp_idle_timeout_s = 60
//! tcp_unestablished_timeout_s = 60
//!
//! [inspection]          # what the classifier examines per flow direction
//! bytes_per_direction = 4096
//! packets_per_direction = 8
//!
//! [offloads]            # wanted in the NIC; each falls back to software when it cannot be
//! symmetric_rss = true
//! prefilter_managed_subnets = true
//! managed_subnets = ["10.20.0.0/16", "2001:db8:20::/48"]
//! bypass_judged_flows = true
//! nic_bypass = false            # true: rte_flow drop rules for judged flows where the NIC takes them
//! nic_bypass_max_rules = 4096   # per port, two per flow
//!
//! [[ports]]
//! name = "egress"
//! vdev = "net_pcap0,rx_pcap=samples/egress-sample.pcap"   # or pci = "0000:3b:00.0"
//! rx_queues = 1
//! queues = [{ lcore = 1 }]
//! ```

use crate::core_list::CoreList;
use crate::rss::{self, QueueMapping};
use ipnet::IpNet;
use portolan_flow::{FlowTableConfig, FlowTableConfigError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// `RTE_MAX_LCORE` of the system DPDK build: lcore ids are below it.
pub const MAX_LCORE: u32 = 128;
/// `RTE_MAX_ETHPORTS` of the system DPDK build.
pub const MAX_PORTS: usize = 32;
/// `RTE_MAX_QUEUES_PER_PORT` of the system DPDK build.
pub const MAX_QUEUES_PER_PORT: u16 = 1024;
/// `RTE_MEMPOOL_CACHE_MAX_SIZE`: the largest per-lcore mempool cache.
pub const MAX_MEMPOOL_CACHE: u32 = 512;
/// `RTE_PKTMBUF_HEADROOM`: bytes of each mbuf's data room kept before the frame.
pub const MBUF_HEADROOM: u32 = 128;
/// Bytes per mbuf beyond its data room: the `rte_mbuf` structure (two cache lines) and the
/// mempool object header; used to estimate the pool's memory.
pub const MBUF_OVERHEAD: u64 = 192;
/// Memory the EAL, the RX rings and the port structures take beside the mbuf pool, as allowed
/// for when checking `memory.memory_mb` (an estimate, on the generous side).
pub const EAL_OVERHEAD_MB: u64 = 32;
/// Largest `inspection.bytes_per_direction`: the classifier's per-direction buffer bound.
pub const MAX_INSPECTION_BYTES: u32 = 65_536;
/// Largest `inspection.packets_per_direction`.
pub const MAX_INSPECTION_PACKETS: u16 = 64;

/// The appliance's hardware description (see the module documentation for the TOML layout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareDescription {
    /// Which CPU cores do what.
    pub cores: CoreConfig,
    /// Hugepages or plain memory.
    pub memory: MemoryConfig,
    /// The packet mbuf pool.
    #[serde(default)]
    pub mempool: MempoolConfig,
    /// RX descriptor rings, burst size and the control-plane hand-off queues.
    #[serde(default)]
    pub rings: RingConfig,
    /// The RSS key and how a hash picks a queue.
    #[serde(default)]
    pub rss: RssConfig,
    /// Per-worker flow table size and idle timeouts.
    #[serde(default)]
    pub flow_table: FlowTableSection,
    /// How deep the classifier looks into each flow.
    #[serde(default)]
    pub inspection: InspectionDepth,
    /// Offloads wanted in the NIC.
    #[serde(default)]
    pub offloads: OffloadsWanted,
    /// The ports and their RX queues.
    pub ports: Vec<PortConfig>,
}

/// `[cores]`: the lcores EAL may use, the main lcore and the control plane's CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoreConfig {
    /// Every lcore EAL may use (EAL `-l`); the main lcore and every queue's lcore are in it.
    pub lcores: CoreList,
    /// The main lcore (EAL `--main-lcore`): start-up and orchestration, never a worker.
    pub main: u32,
    /// CPUs the control plane's threads are pinned to; empty means the main lcore's CPU.
    /// They must not be worker lcores: a polling worker keeps its core fully busy.
    #[serde(default)]
    pub control: Vec<u32>,
}

/// `[memory]`: hugepages, or ordinary memory of a fixed size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    /// Use hugepages. `false` runs EAL with `--no-huge` (fine for net_pcap; too slow and not
    /// DMA-safe for a physical NIC).
    pub hugepages: bool,
    /// EAL `-m`: megabytes of memory to reserve. Required without hugepages; optional with
    /// them (EAL then takes what the hugepage mount offers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
}

/// `[mempool]`: the packet mbuf pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolConfig {
    /// Mbufs in the pool (best as 2^n − 1). Default 8191.
    pub mbufs: u32,
    /// Per-lcore cache of the pool. Default 256.
    pub cache: u32,
    /// Bytes of data room per mbuf, headroom included. Default 2176 (2048 + 128).
    pub data_room: u32,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            mbufs: 8191,
            cache: 256,
            data_room: 2176,
        }
    }
}

/// `[rings]`: ring and burst sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RingConfig {
    /// RX descriptors per queue (a power of two, 64–32768). Default 1024.
    pub rx_descriptors: u32,
    /// Mbufs asked for per `rte_eth_rx_burst` (1–512, at most `rx_descriptors`). Default 32.
    pub rx_burst: u32,
    /// Capacity of each worker's hand-off queue to the control plane (a power of two,
    /// 64–16777216). Default 4096.
    pub handoff: u32,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            rx_descriptors: 1024,
            rx_burst: 32,
            handoff: 4096,
        }
    }
}

/// How a hash selects a queue, as written in TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueMappingKind {
    /// A round-robin RETA of `rss.reta_size` entries, like DPDK drivers.
    Reta,
    /// `hash % queues`.
    Modulo,
}

/// `[rss]`: the Toeplitz key and the hash → queue mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RssConfig {
    /// The Toeplitz key, written in hex (`6d5a6d5a…`; `:`, spaces and a `0x` prefix are
    /// allowed). 40–255 bytes, and symmetric. Default [`rss::SYMMETRIC_KEY`].
    #[serde(serialize_with = "ser_hex", deserialize_with = "de_hex")]
    pub key: Vec<u8>,
    /// RETA (what DPDK drivers do) or modulo. Default `reta`.
    pub queue_mapping: QueueMappingKind,
    /// RETA entries when `queue_mapping = "reta"` (a power of two, 64–4096). Default 128.
    /// A physical NIC uses its own RETA size (the plan says which).
    pub reta_size: u16,
}

impl Default for RssConfig {
    fn default() -> Self {
        RssConfig {
            key: rss::SYMMETRIC_KEY.to_vec(),
            queue_mapping: QueueMappingKind::Reta,
            reta_size: rss::DEFAULT_RETA_SIZE,
        }
    }
}

impl RssConfig {
    /// The mapping of a hash to a queue.
    pub fn mapping(&self) -> QueueMapping {
        match self.queue_mapping {
            QueueMappingKind::Reta => QueueMapping::Reta {
                size: self.reta_size,
            },
            QueueMappingKind::Modulo => QueueMapping::Modulo,
        }
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn ser_hex<S: Serializer>(key: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&to_hex(key))
}

fn de_hex<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s = String::deserialize(d)?;
    parse_hex(&s).map_err(serde::de::Error::custom)
}

/// Parses a hex key: pairs of hex digits, optionally after `0x`, separated by nothing, `:`,
/// `-` or white space.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let body = s.trim();
    let body = body
        .strip_prefix("0x")
        .or_else(|| body.strip_prefix("0X"))
        .unwrap_or(body);
    let digits: Vec<u8> = body
        .bytes()
        .filter(|b| !matches!(b, b':' | b'-' | b' ' | b'\t' | b'\n'))
        .collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!(
            "key `{s}` has an odd number of hex digits ({})",
            digits.len()
        ));
    }
    let nibble = |c: u8| -> Result<u8, String> {
        (c as char)
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| format!("key `{s}` holds `{}`, which is not a hex digit", c as char))
    };
    digits
        .chunks(2)
        .map(|p| match p {
            [hi, lo] => Ok(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => Err(format!("key `{s}` has an odd number of hex digits")),
        })
        .collect()
}

/// `[flow_table]`: per-worker flow table size and idle timeouts in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowTableSection {
    /// Active flows per worker, allocated up front. Default 262144.
    pub capacity: usize,
    /// Idle timeout of established TCP flows. Default 600 s.
    pub tcp_idle_timeout_s: u64,
    /// Idle timeout of TCP flows closed by FIN or RST. Default 30 s.
    pub tcp_closed_timeout_s: u64,
    /// Idle timeout of UDP flows. Default 60 s.
    pub udp_idle_timeout_s: u64,
    /// Idle timeout of TCP flows without a completed handshake. Default 60 s.
    pub tcp_unestablished_timeout_s: u64,
}

const SECOND_US: u64 = 1_000_000;

impl Default for FlowTableSection {
    fn default() -> Self {
        let d = FlowTableConfig::default();
        FlowTableSection {
            capacity: d.capacity,
            tcp_idle_timeout_s: d.tcp_idle_timeout_us / SECOND_US,
            tcp_closed_timeout_s: d.tcp_closed_timeout_us / SECOND_US,
            udp_idle_timeout_s: d.udp_idle_timeout_us / SECOND_US,
            tcp_unestablished_timeout_s: d.tcp_unestablished_timeout_us / SECOND_US,
        }
    }
}

impl FlowTableSection {
    /// The flow table configuration (timeouts in microseconds). Saturates on overflow; a
    /// validated description never overflows.
    pub fn to_flow_table_config(&self) -> FlowTableConfig {
        let us = |s: u64| s.saturating_mul(SECOND_US);
        FlowTableConfig {
            capacity: self.capacity,
            tcp_idle_timeout_us: us(self.tcp_idle_timeout_s),
            tcp_closed_timeout_us: us(self.tcp_closed_timeout_s),
            udp_idle_timeout_us: us(self.udp_idle_timeout_s),
            tcp_unestablished_timeout_us: us(self.tcp_unestablished_timeout_s),
        }
    }
}

/// `[inspection]`: how much of each flow direction the classifier examines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InspectionDepth {
    /// Payload bytes per direction ever scanned (the classifier's `max_bytes`). Default 4096.
    pub bytes_per_direction: u32,
    /// Payload-carrying packets per direction examined (`max_packets`). Default 8.
    pub packets_per_direction: u16,
}

impl Default for InspectionDepth {
    fn default() -> Self {
        InspectionDepth {
            bytes_per_direction: 4096,
            packets_per_direction: 8,
        }
    }
}

/// `[offloads]`: what the NIC should do if it can. Each falls back to software otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OffloadsWanted {
    /// Spread flows over the RX queues with the symmetric key in the NIC. Default true.
    pub symmetric_rss: bool,
    /// Drop in the NIC (rte_flow) all traffic with neither address in `managed_subnets`.
    /// Default false.
    pub prefilter_managed_subnets: bool,
    /// The managed devices' subnets (IPv4 and IPv6, host bits zero).
    pub managed_subnets: Vec<IpNet>,
    /// Stop spending work on flows already judged: in the workers (software path), in the
    /// driver (XDP on `net_af_xdp` ports), or in the NIC with `nic_bypass`. Default true.
    pub bypass_judged_flows: bool,
    /// Install per-flow rte_flow drop rules in the NIC for judged flows, on ports whose driver
    /// accepts them (`portolan hwcheck` says so). Only when set explicitly: default false.
    pub nic_bypass: bool,
    /// The most rte_flow bypass rules installed at once per port (two per flow); a judged
    /// flow that would exceed it stays on the software path and is counted as `full`.
    /// Default 4096.
    pub nic_bypass_max_rules: u32,
}

impl Default for OffloadsWanted {
    fn default() -> Self {
        OffloadsWanted {
            symmetric_rss: true,
            prefilter_managed_subnets: false,
            managed_subnets: Vec::new(),
            bypass_judged_flows: true,
            nic_bypass: false,
            nic_bypass_max_rules: 4096,
        }
    }
}

/// `[[ports]]`: one port, by PCI address or vdev string, and its RX queues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// A name for messages and metrics; default `port<i>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// PCI address of a physical port (`0000:3b:00.0`, EAL `-a`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci: Option<String>,
    /// A virtual device (EAL `--vdev`), e.g. `net_pcap0,rx_pcap=capture.pcap`; relative paths
    /// are relative to the working directory, as EAL opens them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vdev: Option<String>,
    /// Number of RX queues; equals the length of `queues`.
    pub rx_queues: u16,
    /// The RX queues, in queue order.
    pub queues: Vec<QueueConfig>,
}

/// One RX queue: the lcore whose worker polls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// The worker lcore polling this queue; one queue per lcore.
    pub lcore: u32,
}

/// How a port is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortDevice<'a> {
    /// A physical port by PCI address.
    Pci(&'a str),
    /// A virtual device string.
    Vdev(&'a str),
}

impl PortConfig {
    /// The port's device; `None` only for an invalid description (neither or both given).
    pub fn device(&self) -> Option<PortDevice<'_>> {
        match (&self.pci, &self.vdev) {
            (Some(p), None) => Some(PortDevice::Pci(p)),
            (None, Some(v)) => Some(PortDevice::Vdev(v)),
            _ => None,
        }
    }

    /// The device as written: the PCI address or the vdev string.
    pub fn device_string(&self) -> &str {
        self.pci.as_deref().or(self.vdev.as_deref()).unwrap_or("")
    }

    /// The DPDK device name: the PCI address, or the vdev's name before its first `,`
    /// (`net_pcap0`).
    pub fn device_name(&self) -> &str {
        match self.device() {
            Some(PortDevice::Pci(p)) => p,
            Some(PortDevice::Vdev(v)) => v.split(',').next().unwrap_or(v),
            None => "",
        }
    }

    /// True for a `net_pcap` vdev (which has no RSS: its queues are fed one capture each).
    pub fn is_net_pcap(&self) -> bool {
        matches!(self.device(), Some(PortDevice::Vdev(_)))
            && (self.device_name().starts_with("net_pcap")
                || self.device_name().starts_with("eth_pcap"))
    }

    /// The port's name, or `port<index>`.
    pub fn display_name(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("port{index}"))
    }
}

/// One bad field: its path (`ports[0].queues[1].lcore`) and why it is bad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// Path of the field, TOML-style.
    pub field: String,
    /// What is wrong and, where it helps, what would be right.
    pub reason: String,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Every problem validation found, in the order of the fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidDescription {
    /// The problems; never empty.
    pub problems: Vec<FieldProblem>,
}

impl fmt::Display for InvalidDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid hardware description ({n} problem{})",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// Why a hardware description could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum HwConfigError {
    /// The file could not be read.
    #[error("hardware description {}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML, a wrong type, or an unknown key (toml's message gives line and key).
    #[error("hardware description {origin}: {message}")]
    Parse {
        /// The file, or `<string>`.
        origin: String,
        /// toml's message.
        message: String,
    },
    /// Parsed, but fields have bad values.
    #[error("hardware description {origin}: {invalid}")]
    Invalid {
        /// The file, or `<string>`.
        origin: String,
        /// The problems.
        invalid: InvalidDescription,
    },
}

impl HardwareDescription {
    /// Reads, parses and validates the description in `path`.
    pub fn load(path: &Path) -> Result<HardwareDescription, HwConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| HwConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates a description held in a string.
    pub fn from_toml_str(text: &str) -> Result<HardwareDescription, HwConfigError> {
        Self::parse(text, "<string>")
    }

    fn parse(text: &str, origin: &str) -> Result<HardwareDescription, HwConfigError> {
        let hw: HardwareDescription = toml::from_str(text).map_err(|e| HwConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        hw.validate().map_err(|invalid| HwConfigError::Invalid {
            origin: origin.to_string(),
            invalid,
        })?;
        Ok(hw)
    }

    /// The flow table configuration of every worker.
    pub fn flow_table_config(&self) -> FlowTableConfig {
        self.flow_table.to_flow_table_config()
    }

    /// Total RX queues over all ports, which is the number of workers.
    pub fn worker_count(&self) -> usize {
        self.ports.iter().map(|p| p.queues.len()).sum()
    }

    /// The worker lcores, in port then queue order.
    pub fn worker_lcores(&self) -> Vec<u32> {
        self.ports
            .iter()
            .flat_map(|p| p.queues.iter().map(|q| q.lcore))
            .collect()
    }

    /// The control plane's CPUs: `cores.control`, or the main lcore when it is empty.
    pub fn control_cores(&self) -> Vec<u32> {
        if self.cores.control.is_empty() {
            vec![self.cores.main]
        } else {
            self.cores.control.clone()
        }
    }

    /// Estimated bytes of the mbuf pool: mbufs × (data room + mbuf and mempool headers).
    pub fn mempool_bytes(&self) -> u64 {
        u64::from(self.mempool.mbufs)
            * (u64::from(self.mempool.data_room).saturating_add(MBUF_OVERHEAD))
    }

    /// Mbufs the RX path can hold at once: every RX descriptor filled, every lcore's cache
    /// full (workers and the main lcore), and one burst in flight per worker.
    pub fn mbufs_needed(&self) -> u64 {
        let queues = self.worker_count() as u64;
        queues * u64::from(self.rings.rx_descriptors)
            + (queues + 1) * u64::from(self.mempool.cache)
            + queues * u64::from(self.rings.rx_burst)
    }

    /// The EAL arguments this description implies: `-l`, `--main-lcore`, memory (`--no-huge
    /// -m N` or `-m N` with hugepages), `-a` per PCI port (or `--no-pci` when there is none)
    /// and `--vdev` per virtual port. Process-specific options (file prefix, log levels) are the
    /// dataplane's to add.
    pub fn eal_args(&self) -> Vec<String> {
        let mut args = vec![
            "-l".to_string(),
            self.cores.lcores.to_string(),
            "--main-lcore".to_string(),
            self.cores.main.to_string(),
        ];
        if !self.memory.hugepages {
            args.push("--no-huge".to_string());
        }
        if let Some(mb) = self.memory.memory_mb {
            args.push("-m".to_string());
            args.push(mb.to_string());
        }
        let mut any_pci = false;
        for port in &self.ports {
            match port.device() {
                Some(PortDevice::Pci(p)) => {
                    any_pci = true;
                    args.push("-a".to_string());
                    args.push(p.to_string());
                }
                Some(PortDevice::Vdev(v)) => {
                    args.push("--vdev".to_string());
                    args.push(v.to_string());
                }
                None => {}
            }
        }
        if !any_pci {
            args.push("--no-pci".to_string());
        }
        args
    }

    /// Checks every field; the error lists each bad field with the reason.
    pub fn validate(&self) -> Result<(), InvalidDescription> {
        let mut v = Problems::default();
        self.validate_cores(&mut v);
        self.validate_ports(&mut v);
        self.validate_memory(&mut v);
        self.validate_rings(&mut v);
        self.validate_rss(&mut v);
        self.validate_flow_table(&mut v);
        self.validate_inspection(&mut v);
        self.validate_offloads(&mut v);
        v.finish()
    }

    /// Checks that every lcore and control core is a CPU in `available` (for instance
    /// [`CoreList::allowed_for_this_process`]); separate from [`Self::validate`] because it
    /// depends on the machine, not the file.
    pub fn validate_cpus(&self, available: &CoreList) -> Result<(), InvalidDescription> {
        let mut v = Problems::default();
        for core in self.cores.lcores.iter() {
            if !available.contains(core) {
                v.add(
                    "cores.lcores",
                    format!("CPU {core} is not available to this process (available: {available})"),
                );
            }
        }
        for (i, core) in self.cores.control.iter().enumerate() {
            if !available.contains(*core) {
                v.add(
                    format!("cores.control[{i}]"),
                    format!("CPU {core} is not available to this process (available: {available})"),
                );
            }
        }
        v.finish()
    }

    fn validate_cores(&self, v: &mut Problems) {
        let c = &self.cores;
        if c.lcores.is_empty() {
            v.add("cores.lcores", "no lcore given");
        }
        if let Some(max) = c.lcores.max() {
            if max >= MAX_LCORE {
                v.add(
                    "cores.lcores",
                    format!("lcore {max} is not below RTE_MAX_LCORE ({MAX_LCORE})"),
                );
            }
        }
        if !c.lcores.contains(c.main) {
            v.add(
                "cores.main",
                format!("{} is not in the allowed cores {}", c.main, c.lcores),
            );
        }
        let workers: BTreeMap<u32, String> = self
            .ports
            .iter()
            .enumerate()
            .flat_map(|(p, port)| {
                port.queues
                    .iter()
                    .enumerate()
                    .map(move |(q, queue)| (queue.lcore, format!("ports[{p}].queues[{q}]")))
            })
            .collect();
        for (i, core) in c.control.iter().enumerate() {
            if let Some(queue) = workers.get(core) {
                v.add(
                    format!("cores.control[{i}]"),
                    format!(
                        "{core} is the lcore of {queue}; a polling worker keeps its core busy, so the control plane needs another"
                    ),
                );
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, core) in c.control.iter().enumerate() {
            if !seen.insert(core) {
                v.add(
                    format!("cores.control[{i}]"),
                    format!("{core} is listed twice"),
                );
            }
        }
    }

    fn validate_ports(&self, v: &mut Problems) {
        if self.ports.is_empty() {
            v.add("ports", "at least one port is needed");
        }
        if self.ports.len() > MAX_PORTS {
            v.add(
                "ports",
                format!(
                    "{} ports, more than RTE_MAX_ETHPORTS ({MAX_PORTS})",
                    self.ports.len()
                ),
            );
        }
        let mut devices: BTreeMap<&str, usize> = BTreeMap::new();
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let mut lcores: BTreeMap<u32, String> = BTreeMap::new();
        let allowed = &self.cores.lcores;
        for (p, port) in self.ports.iter().enumerate() {
            let at = |f: &str| format!("ports[{p}].{f}");
            match (&port.pci, &port.vdev) {
                (None, None) => v.add(
                    format!("ports[{p}]"),
                    "give either `pci` (a PCI address) or `vdev` (a virtual device string)",
                ),
                (Some(_), Some(_)) => v.add(
                    format!("ports[{p}]"),
                    "give either `pci` or `vdev`, not both",
                ),
                (Some(pci), None) => {
                    if let Err(why) = check_pci_address(pci) {
                        v.add(at("pci"), why);
                    }
                }
                (None, Some(vdev)) => {
                    if let Err(why) = check_vdev(vdev) {
                        v.add(at("vdev"), why);
                    }
                }
            }
            let name = port.display_name(p);
            if let Some(first) = names.insert(name.clone(), p) {
                v.add(
                    at("name"),
                    format!("`{name}` is already the name of ports[{first}]"),
                );
            }
            if port.device().is_some() {
                if let Some(first) = devices.insert(port.device_name(), p) {
                    v.add(
                        format!("ports[{p}]"),
                        format!("device `{}` is already ports[{first}]", port.device_name()),
                    );
                }
            }
            if port.rx_queues == 0 {
                v.add(at("rx_queues"), "at least one RX queue is needed");
            } else if port.rx_queues > MAX_QUEUES_PER_PORT {
                v.add(
                    at("rx_queues"),
                    format!(
                        "{} is more than RTE_MAX_QUEUES_PER_PORT ({MAX_QUEUES_PER_PORT})",
                        port.rx_queues
                    ),
                );
            }
            if usize::from(port.rx_queues) != port.queues.len() {
                v.add(
                    at("rx_queues"),
                    format!(
                        "{} but ports[{p}].queues lists {} queue{}; give one `{{ lcore = N }}` per RX queue",
                        port.rx_queues,
                        port.queues.len(),
                        if port.queues.len() == 1 { "" } else { "s" }
                    ),
                );
            }
            if port.is_net_pcap() {
                let rx_args = port
                    .vdev
                    .as_deref()
                    .unwrap_or("")
                    .split(',')
                    .skip(1)
                    .filter(|a| {
                        let key = a.split('=').next().unwrap_or("").trim();
                        matches!(key, "rx_pcap" | "rx_iface" | "rx_iface_in")
                    })
                    .count();
                if rx_args != 0 && rx_args != usize::from(port.rx_queues) {
                    v.add(
                        at("vdev"),
                        format!(
                            "net_pcap opens one RX queue per rx_pcap/rx_iface argument: {rx_args} given for {} RX queues",
                            port.rx_queues
                        ),
                    );
                }
            }
            for (q, queue) in port.queues.iter().enumerate() {
                let field = format!("ports[{p}].queues[{q}].lcore");
                let lcore = queue.lcore;
                if !allowed.contains(lcore) {
                    v.add(
                        &field,
                        format!("{lcore} is not in the allowed cores {allowed}"),
                    );
                }
                if lcore == self.cores.main {
                    v.add(
                        &field,
                        format!(
                            "{lcore} is the main lcore (cores.main); workers need their own lcores"
                        ),
                    );
                }
                if let Some(first) = lcores.insert(lcore, format!("ports[{p}].queues[{q}]")) {
                    v.add(
                        &field,
                        format!("{lcore} is already the lcore of {first}; one RX queue per worker lcore"),
                    );
                    // Keep the first owner in the message of any third use.
                    lcores.insert(lcore, first);
                }
            }
        }
    }

    fn validate_memory(&self, v: &mut Problems) {
        let m = &self.mempool;
        if m.mbufs == 0 {
            v.add("mempool.mbufs", "must be greater than 0");
        }
        if m.cache > MAX_MEMPOOL_CACHE {
            v.add(
                "mempool.cache",
                format!(
                    "{} is above RTE_MEMPOOL_CACHE_MAX_SIZE ({MAX_MEMPOOL_CACHE})",
                    m.cache
                ),
            );
        }
        // rte_mempool_create refuses a cache whose flush threshold (1.5 × cache) exceeds n.
        if u64::from(m.cache) * 3 > u64::from(m.mbufs) * 2 {
            v.add(
                "mempool.cache",
                format!(
                    "{} is more than mempool.mbufs / 1.5 ({}); DPDK refuses such a pool",
                    m.cache,
                    u64::from(m.mbufs) * 2 / 3
                ),
            );
        }
        let needed = self.mbufs_needed();
        if m.mbufs > 0 && u64::from(m.mbufs) < needed && !self.ports.is_empty() {
            let queues = self.worker_count();
            v.add(
                "mempool.mbufs",
                format!(
                    "{} is fewer than the {needed} the RX path holds at once: {queues} queue(s) × {} descriptors + {} lcore cache(s) × {} + {queues} burst(s) × {}",
                    m.mbufs,
                    self.rings.rx_descriptors,
                    queues + 1,
                    m.cache,
                    self.rings.rx_burst
                ),
            );
        }
        let min_room = MBUF_HEADROOM + 128;
        if m.data_room < min_room || m.data_room > u32::from(u16::MAX) {
            v.add(
                "mempool.data_room",
                format!(
                    "{} is outside {min_room}–{} bytes (headroom {MBUF_HEADROOM} plus frame)",
                    m.data_room,
                    u16::MAX
                ),
            );
        }
        match (self.memory.hugepages, self.memory.memory_mb) {
            (false, None) => v.add(
                "memory.memory_mb",
                "required when memory.hugepages = false (it is EAL's -m with --no-huge)",
            ),
            (_, Some(0)) => v.add("memory.memory_mb", "must be greater than 0"),
            (_, Some(mb)) => {
                let pool_mb = self.mempool_bytes().div_ceil(1 << 20);
                let need = pool_mb + EAL_OVERHEAD_MB;
                if u64::from(mb) < need {
                    v.add(
                        "memory.memory_mb",
                        format!(
                            "{mb} MB cannot hold the mbuf pool (≈{pool_mb} MB: {} mbufs × {} bytes) plus ≈{EAL_OVERHEAD_MB} MB for EAL and rings; give at least {need}",
                            m.mbufs,
                            u64::from(m.data_room) + MBUF_OVERHEAD
                        ),
                    );
                }
            }
            (true, None) => {}
        }
    }

    fn validate_rings(&self, v: &mut Problems) {
        let r = &self.rings;
        if !r.rx_descriptors.is_power_of_two() || !(64..=32_768).contains(&r.rx_descriptors) {
            v.add(
                "rings.rx_descriptors",
                format!(
                    "{} is not a power of two between 64 and 32768",
                    r.rx_descriptors
                ),
            );
        }
        if r.rx_burst == 0 || r.rx_burst > 512 {
            v.add("rings.rx_burst", format!("{} is outside 1–512", r.rx_burst));
        } else if r.rx_burst > r.rx_descriptors {
            v.add(
                "rings.rx_burst",
                format!(
                    "{} is more than rings.rx_descriptors ({})",
                    r.rx_burst, r.rx_descriptors
                ),
            );
        }
        if !r.handoff.is_power_of_two() || !(64..=(1 << 24)).contains(&r.handoff) {
            v.add(
                "rings.handoff",
                format!(
                    "{} is not a power of two between 64 and 16777216 (rte_ring sizes are powers of two)",
                    r.handoff
                ),
            );
        }
    }

    fn validate_rss(&self, v: &mut Problems) {
        let r = &self.rss;
        if r.key.len() < rss::KEY_LEN || r.key.len() > 255 {
            v.add(
                "rss.key",
                format!(
                    "{} bytes; a key of {}–255 bytes is needed (IPv6 4-tuples read 40)",
                    r.key.len(),
                    rss::KEY_LEN
                ),
            );
        } else if let Err(e) = rss::check_symmetric(&r.key) {
            v.add("rss.key", format!("{e}; use `6d5a` repeated (the default)"));
        }
        if r.queue_mapping == QueueMappingKind::Reta {
            if !r.reta_size.is_power_of_two() || !(64..=4096).contains(&r.reta_size) {
                v.add(
                    "rss.reta_size",
                    format!("{} is not a power of two between 64 and 4096", r.reta_size),
                );
            } else if let Some(most) = self.ports.iter().map(|p| p.rx_queues).max() {
                if most > r.reta_size {
                    v.add(
                        "rss.reta_size",
                        format!(
                            "{} entries cannot spread {most} RX queues; queues past entry {} would get nothing",
                            r.reta_size, r.reta_size
                        ),
                    );
                }
            }
        }
    }

    fn validate_flow_table(&self, v: &mut Problems) {
        let f = &self.flow_table;
        for (field, secs) in [
            ("tcp_idle_timeout_s", f.tcp_idle_timeout_s),
            ("tcp_closed_timeout_s", f.tcp_closed_timeout_s),
            ("udp_idle_timeout_s", f.udp_idle_timeout_s),
            ("tcp_unestablished_timeout_s", f.tcp_unestablished_timeout_s),
        ] {
            if secs.checked_mul(SECOND_US).is_none() {
                v.add(
                    format!("flow_table.{field}"),
                    format!("{secs} s does not fit in microseconds"),
                );
            }
        }
        match self.flow_table_config().validate() {
            Ok(()) => {}
            Err(FlowTableConfigError::Zero { field }) => {
                let field = field
                    .strip_suffix("_us")
                    .map_or_else(|| field.to_string(), |stem| format!("{stem}_s"));
                v.add(format!("flow_table.{field}"), "must be greater than 0");
            }
            Err(FlowTableConfigError::CapacityTooLarge { value, max }) => v.add(
                "flow_table.capacity",
                format!("{value} flows is above the flow table's maximum of {max}"),
            ),
        }
    }

    fn validate_inspection(&self, v: &mut Problems) {
        let i = &self.inspection;
        if i.bytes_per_direction == 0 || i.bytes_per_direction > MAX_INSPECTION_BYTES {
            v.add(
                "inspection.bytes_per_direction",
                format!(
                    "{} is outside 1–{MAX_INSPECTION_BYTES}",
                    i.bytes_per_direction
                ),
            );
        }
        if i.packets_per_direction == 0 || i.packets_per_direction > MAX_INSPECTION_PACKETS {
            v.add(
                "inspection.packets_per_direction",
                format!(
                    "{} is outside 1–{MAX_INSPECTION_PACKETS}",
                    i.packets_per_direction
                ),
            );
        }
    }

    fn validate_offloads(&self, v: &mut Problems) {
        let o = &self.offloads;
        if o.nic_bypass && !o.bypass_judged_flows {
            v.add(
                "offloads.nic_bypass",
                "true, but offloads.bypass_judged_flows = false: the NIC bypass installs rules for judged flows only; set both",
            );
        }
        if o.nic_bypass && o.nic_bypass_max_rules < 2 {
            v.add(
                "offloads.nic_bypass_max_rules",
                format!(
                    "{}: a flow needs two rules (one per direction); allow at least 2",
                    o.nic_bypass_max_rules
                ),
            );
        }
        if o.prefilter_managed_subnets && o.managed_subnets.is_empty() {
            v.add(
                "offloads.managed_subnets",
                "empty, but offloads.prefilter_managed_subnets = true would then drop everything; list the managed devices' subnets",
            );
        }
        let mut seen = BTreeMap::new();
        for (i, net) in o.managed_subnets.iter().enumerate() {
            let field = format!("offloads.managed_subnets[{i}]");
            if net.trunc() != *net {
                v.add(
                    &field,
                    format!("{net} has host bits set (did you mean {}?)", net.trunc()),
                );
            }
            if let Some(first) = seen.insert(net.trunc(), i) {
                v.add(
                    &field,
                    format!("{net} repeats offloads.managed_subnets[{first}]"),
                );
            }
        }
    }
}

/// Checks a PCI address: `DDDD:BB:DD.F` (domain optional), hex digits, function 0–7.
fn check_pci_address(s: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "`{s}` is not a PCI address (expected domain:bus:device.function, e.g. 0000:3b:00.0)"
        )
    };
    let (head, function) = s.rsplit_once('.').ok_or_else(bad)?;
    let parts: Vec<&str> = head.split(':').collect();
    let widths: &[usize] = match parts.len() {
        3 => &[4, 2, 2],
        2 => &[2, 2],
        _ => return Err(bad()),
    };
    for (part, width) in parts.iter().zip(widths) {
        if part.len() != *width || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
    }
    match function.parse::<u8>() {
        Ok(f) if f <= 7 && function.len() == 1 => {}
        _ => return Err(bad()),
    }
    if let Some(dev) = parts.last().and_then(|d| u8::from_str_radix(d, 16).ok()) {
        if dev > 0x1f {
            return Err(format!("`{s}`: device number {dev:#x} is above 0x1f"));
        }
    }
    Ok(())
}

/// Checks a vdev string: a driver-and-instance name (`net_pcap0`), then `,key=value` options.
fn check_vdev(s: &str) -> Result<(), String> {
    let name = s.split(',').next().unwrap_or("");
    if name.is_empty() {
        return Err("empty device name (expected e.g. `net_pcap0,rx_pcap=file.pcap`)".to_string());
    }
    if s.chars().any(char::is_whitespace) {
        return Err(format!("`{s}` contains white space, which EAL would split"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "device name `{name}` may hold only letters, digits, `_` and `-`"
        ));
    }
    for opt in s.split(',').skip(1) {
        if !opt.contains('=') || opt.starts_with('=') {
            return Err(format!("option `{opt}` is not key=value"));
        }
    }
    Ok(())
}

/// Collects problems during validation.
#[derive(Default)]
struct Problems {
    list: Vec<FieldProblem>,
}

impl Problems {
    fn add(&mut self, field: impl AsRef<str>, reason: impl Into<String>) {
        self.list.push(FieldProblem {
            field: field.as_ref().to_string(),
            reason: reason.into(),
        });
    }

    fn finish(self) -> Result<(), InvalidDescription> {
        if self.list.is_empty() {
            Ok(())
        } else {
            Err(InvalidDescription {
                problems: self.list,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [cores]
        lcores = "0-1"
        main = 0
        [memory]
        hugepages = false
        memory_mb = 128
        [[ports]]
        vdev = "net_pcap0,rx_pcap=a.pcap"
        rx_queues = 1
        queues = [{ lcore = 1 }]
    "#;

    /// Problems of `text` as `field: reason` strings.
    fn problems(text: &str) -> Vec<String> {
        match HardwareDescription::from_toml_str(text) {
            Err(HwConfigError::Invalid { invalid, .. }) => {
                invalid.problems.iter().map(|p| p.to_string()).collect()
            }
            Ok(_) => Vec::new(),
            Err(e) => panic!("expected validation problems, got {e}"),
        }
    }

    fn has(problems: &[String], needle: &str) -> bool {
        problems.iter().any(|p| p.contains(needle))
    }

    #[test]
    fn minimal_description_takes_the_defaults() {
        let hw = HardwareDescription::from_toml_str(MINIMAL).unwrap();
        assert_eq!(hw.rss.key, rss::SYMMETRIC_KEY.to_vec());
        assert_eq!(hw.rss.mapping(), QueueMapping::Reta { size: 128 });
        assert_eq!(hw.flow_table_config(), FlowTableConfig::default());
        assert_eq!(hw.inspection, InspectionDepth::default());
        assert!(hw.offloads.symmetric_rss && hw.offloads.bypass_judged_flows);
        assert_eq!(hw.control_cores(), vec![0]);
        assert_eq!(hw.worker_lcores(), vec![1]);
        assert_eq!(hw.ports[0].device_name(), "net_pcap0");
        assert!(hw.ports[0].is_net_pcap());
        assert_eq!(
            hw.eal_args().join(" "),
            "-l 0-1 --main-lcore 0 --no-huge -m 128 --vdev net_pcap0,rx_pcap=a.pcap --no-pci"
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let text = MINIMAL.replace("main = 0", "main = 0\nmian_lcore = 3");
        let err = HardwareDescription::from_toml_str(&text).unwrap_err();
        assert!(matches!(err, HwConfigError::Parse { .. }));
        assert!(err.to_string().contains("mian_lcore"), "{err}");
        let text = MINIMAL.replace("{ lcore = 1 }", "{ lcore = 1, core = 2 }");
        let err = HardwareDescription::from_toml_str(&text).unwrap_err();
        assert!(err.to_string().contains("core"), "{err}");
    }

    #[test]
    fn lcore_outside_the_allowed_cores_is_named() {
        let text = MINIMAL
            .replace("rx_queues = 1", "rx_queues = 2")
            .replace("rx_pcap=a.pcap", "rx_pcap=a.pcap,rx_pcap=b.pcap")
            .replace("[{ lcore = 1 }]", "[{ lcore = 1 }, { lcore = 7 }]");
        let p = problems(&text);
        assert_eq!(
            p,
            vec!["ports[0].queues[1].lcore: 7 is not in the allowed cores 0-1".to_string()]
        );
    }

    #[test]
    fn duplicate_and_main_lcores_are_refused() {
        let text = MINIMAL
            .replace("lcores = \"0-1\"", "lcores = \"0-3\"")
            .replace("rx_queues = 1", "rx_queues = 3")
            .replace("rx_pcap=a.pcap", "rx_pcap=a,rx_pcap=b,rx_pcap=c")
            .replace(
                "[{ lcore = 1 }]",
                "[{ lcore = 1 }, { lcore = 1 }, { lcore = 0 }]",
            );
        let p = problems(&text);
        assert!(
            has(
                &p,
                "ports[0].queues[1].lcore: 1 is already the lcore of ports[0].queues[0]"
            ),
            "{p:?}"
        );
        assert!(
            has(&p, "ports[0].queues[2].lcore: 0 is the main lcore"),
            "{p:?}"
        );
    }

    #[test]
    fn queue_count_must_match_the_lcores() {
        let text = MINIMAL.replace("rx_queues = 1", "rx_queues = 2");
        let p = problems(&text);
        assert!(
            has(
                &p,
                "ports[0].rx_queues: 2 but ports[0].queues lists 1 queue"
            ),
            "{p:?}"
        );
        assert!(
            has(&p, "ports[0].vdev: net_pcap opens one RX queue per rx_pcap"),
            "{p:?}"
        );
    }

    #[test]
    fn control_cores_may_not_be_worker_lcores() {
        let text = MINIMAL.replace("main = 0", "main = 0\ncontrol = [1]");
        let p = problems(&text);
        assert!(
            has(&p, "cores.control[0]: 1 is the lcore of ports[0].queues[0]"),
            "{p:?}"
        );
    }

    #[test]
    fn memory_and_pool_capacity_limits() {
        let no_mb = MINIMAL.replace("memory_mb = 128", "");
        assert!(has(
            &problems(&no_mb),
            "memory.memory_mb: required when memory.hugepages = false"
        ));

        let small = MINIMAL.replace("memory_mb = 128", "memory_mb = 16");
        assert!(has(
            &problems(&small),
            "memory.memory_mb: 16 MB cannot hold the mbuf pool"
        ));

        let pool = format!("{MINIMAL}\n[mempool]\nmbufs = 600\ncache = 512\n");
        let p = problems(&pool);
        assert!(
            has(
                &p,
                "mempool.cache: 512 is more than mempool.mbufs / 1.5 (400)"
            ),
            "{p:?}"
        );
        assert!(
            has(
                &p,
                "mempool.mbufs: 600 is fewer than the 2080 the RX path holds"
            ),
            "{p:?}"
        );

        let rings = format!("{MINIMAL}\n[rings]\nrx_descriptors = 1000\nhandoff = 100\n");
        let p = problems(&rings);
        assert!(
            has(&p, "rings.rx_descriptors: 1000 is not a power of two"),
            "{p:?}"
        );
        assert!(has(&p, "rings.handoff: 100 is not a power of two"), "{p:?}");
    }

    #[test]
    fn rss_key_must_be_long_enough_and_symmetric() {
        let short = format!("{MINIMAL}\n[rss]\nkey = \"6d5a6d5a\"\n");
        assert!(has(&problems(&short), "rss.key: 4 bytes"));

        let microsoft = format!(
            "{MINIMAL}\n[rss]\nkey = \"{}\"\n",
            to_hex(&rss::MICROSOFT_KEY)
        );
        assert!(has(
            &problems(&microsoft),
            "rss.key: the key is not symmetric"
        ));

        let colons = rss::SYMMETRIC_KEY
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let ok = format!("{MINIMAL}\n[rss]\nkey = \"0x{colons}\"\n");
        let hw = HardwareDescription::from_toml_str(&ok).unwrap();
        assert_eq!(hw.rss.key, rss::SYMMETRIC_KEY.to_vec());

        let bad_hex = format!("{MINIMAL}\n[rss]\nkey = \"6g\"\n");
        let err = HardwareDescription::from_toml_str(&bad_hex).unwrap_err();
        assert!(err.to_string().contains("not a hex digit"), "{err}");
    }

    #[test]
    fn flow_table_maps_onto_flow_table_config() {
        let text = format!("{MINIMAL}\n[flow_table]\ncapacity = 1024\nudp_idle_timeout_s = 5\n");
        let hw = HardwareDescription::from_toml_str(&text).unwrap();
        let cfg = hw.flow_table_config();
        assert_eq!(cfg.capacity, 1024);
        assert_eq!(cfg.udp_idle_timeout_us, 5_000_000);
        assert_eq!(
            cfg.tcp_idle_timeout_us,
            FlowTableConfig::default().tcp_idle_timeout_us
        );

        let zero = format!("{MINIMAL}\n[flow_table]\ntcp_closed_timeout_s = 0\n");
        assert!(has(
            &problems(&zero),
            "flow_table.tcp_closed_timeout_s: must be greater than 0"
        ));
        let huge = format!("{MINIMAL}\n[flow_table]\ncapacity = 2000000000\n");
        assert!(has(
            &problems(&huge),
            "flow_table.capacity: 2000000000 flows is above"
        ));
    }

    #[test]
    fn inspection_and_offload_limits() {
        let text = format!(
            "{MINIMAL}\n[inspection]\nbytes_per_direction = 0\npackets_per_direction = 200\n\
             [offloads]\nprefilter_managed_subnets = true\nmanaged_subnets = [\"10.20.0.1/16\", \"10.20.0.0/16\"]\n"
        );
        let p = problems(&text);
        assert!(
            has(&p, "inspection.bytes_per_direction: 0 is outside"),
            "{p:?}"
        );
        assert!(
            has(&p, "inspection.packets_per_direction: 200 is outside"),
            "{p:?}"
        );
        assert!(
            has(&p, "offloads.managed_subnets[0]: 10.20.0.1/16 has host bits set (did you mean 10.20.0.0/16?)"),
            "{p:?}"
        );
        assert!(
            has(&p, "offloads.managed_subnets[1]: 10.20.0.0/16 repeats"),
            "{p:?}"
        );

        let nic = format!(
            "{MINIMAL}\n[offloads]\nbypass_judged_flows = false\nnic_bypass = true\nnic_bypass_max_rules = 1\n"
        );
        let p = problems(&nic);
        assert!(
            has(
                &p,
                "offloads.nic_bypass: true, but offloads.bypass_judged_flows = false"
            ),
            "{p:?}"
        );
        assert!(
            has(
                &p,
                "offloads.nic_bypass_max_rules: 1: a flow needs two rules"
            ),
            "{p:?}"
        );
        let empty = format!("{MINIMAL}\n[offloads]\nprefilter_managed_subnets = true\n");
        assert!(has(&problems(&empty), "offloads.managed_subnets: empty"));

        let bad_net = format!("{MINIMAL}\n[offloads]\nmanaged_subnets = [\"10.0.0.0/33\"]\n");
        assert!(matches!(
            HardwareDescription::from_toml_str(&bad_net),
            Err(HwConfigError::Parse { .. })
        ));
    }

    #[test]
    fn port_devices_are_checked() {
        let both = MINIMAL.replace("vdev =", "pci = \"0000:3b:00.0\"\nvdev =");
        assert!(has(
            &problems(&both),
            "ports[0]: give either `pci` or `vdev`, not both"
        ));
        let bad_pci = MINIMAL.replace("vdev = \"net_pcap0,rx_pcap=a.pcap\"", "pci = \"3b:00\"");
        assert!(has(
            &problems(&bad_pci),
            "ports[0].pci: `3b:00` is not a PCI address"
        ));
        let good_pci = MINIMAL.replace(
            "vdev = \"net_pcap0,rx_pcap=a.pcap\"",
            "pci = \"0000:3b:00.1\"",
        );
        let hw = HardwareDescription::from_toml_str(&good_pci).unwrap();
        assert!(!hw.eal_args().contains(&"--no-pci".to_string()));
        let spaced = MINIMAL.replace("rx_pcap=a.pcap", "rx_pcap=a b.pcap");
        assert!(has(&problems(&spaced), "contains white space"));
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let text = MINIMAL
            .replace("main = 0", "main = 5")
            .replace("memory_mb = 128", "memory_mb = 0");
        let err = HardwareDescription::from_toml_str(&text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("2 problems"), "{msg}");
        assert!(
            msg.contains("cores.main: 5 is not in the allowed cores 0-1"),
            "{msg}"
        );
        assert!(
            msg.contains("memory.memory_mb: must be greater than 0"),
            "{msg}"
        );
    }

    #[test]
    fn validate_cpus_checks_the_machine() {
        let hw = HardwareDescription::from_toml_str(MINIMAL).unwrap();
        let only_zero: CoreList = "0".parse().unwrap();
        let err = hw.validate_cpus(&only_zero).unwrap_err();
        assert_eq!(
            err.problems[0].to_string(),
            "cores.lcores: CPU 1 is not available to this process (available: 0)"
        );
        assert!(hw.validate_cpus(&"0-1".parse().unwrap()).is_ok());
    }

    #[test]
    fn round_trips_through_toml() {
        let hw = HardwareDescription::from_toml_str(MINIMAL).unwrap();
        let text = toml::to_string(&hw).unwrap();
        assert_eq!(HardwareDescription::from_toml_str(&text).unwrap(), hw);
    }
}
