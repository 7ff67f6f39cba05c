//! Splitting one capture into one capture per RX queue, as a NIC's symmetric RSS would.
//!
//! Owns: [`RssSharder`] (which queue a frame lands on) and [`shard_capture`] (reading a capture
//! and writing `N` pcap files). Exists because DPDK's net_pcap has no RSS: `portolan shard`
//! writes the captures and `portolan replay` feeds each to its own RX queue (one `rx_pcap` per
//! queue). Must not: run on the hot path (it allocates per record) or choose the key itself —
//! it takes the hardware description's.
//!
//! Which hash, per frame (as a NIC with the types of `plan::rss_types::WANTED` does):
//! - decodes to TCP or UDP (`portolan_packet::parse`): the 4-tuple hash — of the inner packet
//!   for a GRE/ERSPAN/VXLAN/GENEVE/MPLS-carried frame, so both directions of a mirrored flow
//!   stay together however the mirror wraps them (a NIC hashing outer headers would put every
//!   frame of one mirror session on one queue). This includes a first
//!   fragment whose ports are present, so that it goes with the rest of its flow; a NIC hashing
//!   `frag_ipv4` may put such a packet on another queue by its addresses;
//! - other IPv4/IPv6 (non-first fragments, ICMP, ESP, GRE, …): the 2-tuple (addresses) hash;
//! - not IP (ARP, LLDP, truncated link headers): queue 0, as a NIC delivers unhashed packets.
//!
//! With `[rss] fields = "addresses"` every IP frame takes the 2-tuple hash, so a fragmented
//! datagram's pieces and the rest of its flow land in one shard.
//!
//! Both hashes use the symmetric key, so both directions of a flow, and of an address pair,
//! land in the same shard. Every record is written to exactly one shard, in input order, with
//! its timestamp (microsecond precision: nanosecond captures are rounded down) and wire length.

use crate::config::{to_hex, HardwareDescription, RssFields};
use crate::rss::{self, QueueMapping, RssTuple};
use portolan_packet::capture::{CaptureError, CaptureReader, PcapWriter};
use portolan_packet::{ip_addresses, parse, LinkType};
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// Snap length written when the input does not declare one (pcapng): libpcap's maximum.
const DEFAULT_SNAPLEN: u32 = 262_144;

/// Which hash placed a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashedBy {
    /// Addresses and ports of a TCP or UDP packet.
    FourTuple,
    /// Addresses only: IP that is not decodable TCP/UDP.
    TwoTuple,
    /// Not IP: queue 0.
    NotIp,
}

/// Chooses the RX queue of a frame with the symmetric Toeplitz hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssSharder {
    key: Vec<u8>,
    queues: u16,
    mapping: QueueMapping,
    fields: RssFields,
}

/// Why sharding failed. [`ShardError::is_bad_input`] tells the caller's fault from the system's.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// `queues` was 0.
    #[error("the number of queues must be at least 1")]
    NoQueues,
    /// The key is too short or not symmetric.
    #[error("RSS key: {0}")]
    BadKey(String),
    /// The capture could not be opened or read.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// The output directory could not be created.
    #[error("cannot create output directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A shard could not be created or written.
    #[error("cannot write shard {}: {source}", path.display())]
    Write {
        /// The shard file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl ShardError {
    /// True when the input (arguments, key, capture file) is at fault rather than the system.
    pub fn is_bad_input(&self) -> bool {
        match self {
            ShardError::NoQueues | ShardError::BadKey(_) => true,
            ShardError::Capture(CaptureError::Unreadable(..)) => false,
            ShardError::Capture(_) => true,
            ShardError::CreateDir { .. } | ShardError::Write { .. } => false,
        }
    }
}

impl RssSharder {
    /// A sharder over `queues` queues with `key` (at least 40 bytes, symmetric) and `mapping`.
    pub fn new(key: &[u8], queues: u16, mapping: QueueMapping) -> Result<RssSharder, ShardError> {
        if queues == 0 {
            return Err(ShardError::NoQueues);
        }
        if key.len() < rss::KEY_LEN {
            return Err(ShardError::BadKey(format!(
                "{} bytes; at least {} are needed",
                key.len(),
                rss::KEY_LEN
            )));
        }
        rss::check_symmetric(key).map_err(|e| ShardError::BadKey(e.to_string()))?;
        Ok(RssSharder {
            key: key.to_vec(),
            queues,
            mapping,
            fields: RssFields::AddressesAndPorts,
        })
    }

    /// The same sharder hashing TCP/UDP packets on `fields` (`Addresses`: on their addresses
    /// only, as fragments are).
    pub fn with_fields(mut self, fields: RssFields) -> RssSharder {
        self.fields = fields;
        self
    }

    /// The symmetric default: [`rss::SYMMETRIC_KEY`] and a round-robin RETA of 128 entries.
    pub fn symmetric(queues: u16) -> Result<RssSharder, ShardError> {
        RssSharder::new(&rss::SYMMETRIC_KEY, queues, QueueMapping::default())
    }

    /// The key and mapping of `hw`'s `[rss]` section over `queues` queues.
    pub fn from_description(
        hw: &HardwareDescription,
        queues: u16,
    ) -> Result<RssSharder, ShardError> {
        Ok(RssSharder::new(&hw.rss.key, queues, hw.rss.mapping())?.with_fields(hw.rss.fields))
    }

    /// Number of queues.
    pub fn queues(&self) -> u16 {
        self.queues
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The hash → queue mapping.
    pub fn mapping(&self) -> QueueMapping {
        self.mapping
    }

    /// The queue a frame of link type `link` lands on, and which hash placed it.
    pub fn queue_for_frame(&self, link: LinkType, frame: &[u8]) -> (u16, HashedBy) {
        let tuple = match parse(link, frame) {
            Ok(p) if self.fields == RssFields::Addresses => {
                RssTuple::new(p.src_ip, p.dst_ip, None).map(|t| (t, HashedBy::TwoTuple))
            }
            Ok(p) => RssTuple::new(p.src_ip, p.dst_ip, Some((p.src_port, p.dst_port)))
                .map(|t| (t, HashedBy::FourTuple)),
            Err(_) => ip_addresses(link, frame)
                .and_then(|(src, dst)| RssTuple::new(src, dst, None))
                .map(|t| (t, HashedBy::TwoTuple)),
        };
        match tuple {
            Some((t, by)) => (self.mapping.queue(t.hash(&self.key), self.queues), by),
            None => (0, HashedBy::NotIp),
        }
    }
}

/// One shard written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardOutput {
    /// RX queue it feeds.
    pub queue: u16,
    /// The pcap file.
    pub path: PathBuf,
    /// Records written.
    pub packets: u64,
    /// Captured bytes written (excluding record headers).
    pub bytes: u64,
}

/// What [`shard_capture`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardSummary {
    /// The input capture.
    pub capture: PathBuf,
    /// Its link type (kept in every shard).
    pub link_type: &'static str,
    /// Records read.
    pub packets: u64,
    /// Records placed by the 4-tuple hash.
    pub four_tuple: u64,
    /// Records placed by the address hash.
    pub two_tuple: u64,
    /// Records not IP, sent to queue 0.
    pub not_ip: u64,
    /// When the capture ended inside its last record: the bytes of that record there were. The
    /// record is in no shard (a replay counts it as the drop `truncated_capture_record`).
    pub truncated_tail: Option<u64>,
    /// The key, in hex.
    pub key: String,
    /// The hash → queue mapping.
    pub mapping: QueueMapping,
    /// The shards, in queue order.
    pub shards: Vec<ShardOutput>,
}

impl fmt::Display for ShardSummary {
    /// A line for the whole run, then one per shard.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "shard: {} packets ({} link) from {} into {} captures by symmetric Toeplitz RSS ({}): {} by 4-tuple, {} by addresses, {} not IP (queue 0)",
            self.packets,
            self.link_type,
            self.capture.display(),
            self.shards.len(),
            self.mapping,
            self.four_tuple,
            self.two_tuple,
            self.not_ip
        )?;
        if let Some(bytes) = self.truncated_tail {
            writeln!(
                f,
                "the capture ends in a record cut short ({bytes} bytes after the last whole record): it is in no shard"
            )?;
        }
        for s in &self.shards {
            let share = if self.packets == 0 {
                0.0
            } else {
                100.0 * s.packets as f64 / self.packets as f64
            };
            writeln!(
                f,
                "queue {}: {} packets ({share:.1}%), {} bytes -> {}",
                s.queue,
                s.packets,
                s.bytes,
                s.path.display()
            )?;
        }
        Ok(())
    }
}

/// The file of shard `queue` of `capture` in `out_dir`: `<capture stem>.q<queue>.pcap`.
pub fn shard_file_path(out_dir: &Path, capture: &Path, queue: u16) -> PathBuf {
    let stem = capture
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "capture".to_string());
    out_dir.join(format!("{stem}.q{queue}.pcap"))
}

/// Reads `capture` (pcap or pcapng) and writes one pcap per queue of `sharder` into `out_dir`
/// (created if missing; existing shard files are overwritten), named by [`shard_file_path`].
///
/// A capture cut short inside its last record is sharded up to the last whole record and the
/// cut is reported in [`ShardSummary::truncated_tail`] (as libpcap, and DPDK's net_pcap, stop
/// there too). A failure part-way leaves the shards written so far; the error names the file at
/// fault.
pub fn shard_capture(
    capture: &Path,
    out_dir: &Path,
    sharder: &RssSharder,
) -> Result<ShardSummary, ShardError> {
    let mut reader = CaptureReader::open(capture)?;
    let info = reader.info();
    let snaplen = if info.snaplen == 0 {
        DEFAULT_SNAPLEN
    } else {
        info.snaplen
    };
    std::fs::create_dir_all(out_dir).map_err(|source| ShardError::CreateDir {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let mut shards = Vec::with_capacity(usize::from(sharder.queues()));
    let mut writers = Vec::with_capacity(usize::from(sharder.queues()));
    for queue in 0..sharder.queues() {
        let path = shard_file_path(out_dir, capture, queue);
        let writer = PcapWriter::create(&path, info.link_type, snaplen).map_err(|source| {
            ShardError::Write {
                path: path.clone(),
                source,
            }
        })?;
        writers.push(writer);
        shards.push(ShardOutput {
            queue,
            path,
            packets: 0,
            bytes: 0,
        });
    }
    let mut summary = ShardSummary {
        capture: capture.to_path_buf(),
        link_type: info.link_type.name(),
        packets: 0,
        four_tuple: 0,
        two_tuple: 0,
        not_ip: 0,
        truncated_tail: None,
        key: to_hex(sharder.key()),
        mapping: sharder.mapping(),
        shards: Vec::new(),
    };
    while let Some(rec) = reader.next_record()? {
        let (queue, by) = sharder.queue_for_frame(info.link_type, &rec.data);
        let (Some(writer), Some(out)) = (
            writers.get_mut(usize::from(queue)),
            shards.get_mut(usize::from(queue)),
        ) else {
            // queue_for_frame returns a queue below `queues`; nothing else can reach here.
            continue;
        };
        writer
            .write(rec.ts_us, rec.orig_len, &rec.data)
            .map_err(|source| ShardError::Write {
                path: out.path.clone(),
                source,
            })?;
        out.packets += 1;
        out.bytes += rec.data.len() as u64;
        summary.packets += 1;
        match by {
            HashedBy::FourTuple => summary.four_tuple += 1,
            HashedBy::TwoTuple => summary.two_tuple += 1,
            HashedBy::NotIp => summary.not_ip += 1,
        }
    }
    summary.truncated_tail = reader.truncated_tail();
    for (writer, out) in writers.into_iter().zip(&shards) {
        writer.finish().map_err(|source| ShardError::Write {
            path: out.path.clone(),
            source,
        })?;
    }
    summary.shards = shards;
    Ok(summary)
}
