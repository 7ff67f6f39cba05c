//! Capture files: probing their format and link type, reading their records, writing pcap.
//!
//! Owns: the classic pcap and pcapng container formats. Used off the hot path (start-up checks,
//! sharding, synthetic captures, tests); the dataplane itself receives frames from DPDK's
//! `net_pcap`, which does not report the link type, so [`probe`] tells it.

use crate::LinkType;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// The container format of a capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    /// Classic libpcap format.
    Pcap {
        /// Timestamps are in nanoseconds (magic `a1b23c4d`) rather than microseconds.
        nanos: bool,
        /// The file was written big-endian.
        big_endian: bool,
    },
    /// pcapng (section header block `0a0d0d0a`).
    Pcapng,
}

impl CaptureFormat {
    /// Short name: `pcap` or `pcapng`.
    pub fn name(self) -> &'static str {
        match self {
            CaptureFormat::Pcap { .. } => "pcap",
            CaptureFormat::Pcapng => "pcapng",
        }
    }
}

/// What [`probe`] learned about a capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureInfo {
    /// pcap or pcapng.
    pub format: CaptureFormat,
    /// Link type of every frame in the file.
    pub link_type: LinkType,
    /// Snap length declared by the file (0 when the file does not say).
    pub snaplen: u32,
}

/// Why a capture file cannot be used. Every variant names the file.
#[derive(Debug)]
pub enum CaptureError {
    /// The file does not exist.
    NotFound(PathBuf),
    /// The file exists but could not be read.
    Unreadable(PathBuf, io::Error),
    /// The file is not a pcap or pcapng capture (or is cut short inside a header).
    NotACapture(PathBuf, String),
    /// The link type is not one Portolan decodes.
    UnknownLinkType(PathBuf, u32),
    /// A pcapng file whose interfaces have different link types.
    MixedLinkTypes(PathBuf, u32, u32),
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::NotFound(p) => write!(f, "capture {}: no such file", p.display()),
            CaptureError::Unreadable(p, e) => {
                write!(f, "capture {}: cannot read: {e}", p.display())
            }
            CaptureError::NotACapture(p, why) => {
                write!(
                    f,
                    "capture {}: not a pcap or pcapng file: {why}",
                    p.display()
                )
            }
            CaptureError::UnknownLinkType(p, dlt) => write!(
                f,
                "capture {}: unsupported link type {dlt} (supported: {})",
                p.display(),
                LinkType::supported_names()
            ),
            CaptureError::MixedLinkTypes(p, a, b) => write!(
                f,
                "capture {}: interfaces with different link types ({a} and {b}) in one file",
                p.display()
            ),
        }
    }
}

impl std::error::Error for CaptureError {}

const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_EPB: u32 = 6;
const PCAPNG_SPB: u32 = 3;
const PCAPNG_OBSOLETE_PB: u32 = 2;
/// Largest block or record we accept; anything bigger is a corrupt file, not a frame.
const MAX_RECORD: u32 = 256 * 1024 * 1024;

fn rd_u32(b: &[u8], big: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if big {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

fn rd_u16(b: &[u8], big: bool) -> u16 {
    let a = [b[0], b[1]];
    if big {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

/// Opens a capture file, mapping I/O errors to [`CaptureError`] with the path named.
fn open(path: &Path) -> Result<File, CaptureError> {
    File::open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            CaptureError::NotFound(path.to_path_buf())
        } else {
            CaptureError::Unreadable(path.to_path_buf(), e)
        }
    })
}

/// Reads the file's headers and reports its format, link type and snap length.
///
/// For pcapng every interface description block is read (the file is scanned block by block)
/// so that a file mixing link types is refused rather than decoded wrongly.
pub fn probe(path: &Path) -> Result<CaptureInfo, CaptureError> {
    let reader = CaptureReader::open(path)?;
    let mut info = reader.info();
    if info.format == CaptureFormat::Pcapng {
        let mut reader = reader;
        // Walk all blocks so later IDBs are seen.
        while reader.next_record()?.is_some() {}
        if let Some((a, b)) = reader.mixed_link_types {
            return Err(CaptureError::MixedLinkTypes(path.to_path_buf(), a, b));
        }
        info.snaplen = reader.snaplen;
    }
    Ok(info)
}

/// One frame read from a capture file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRecord {
    /// Capture timestamp, microseconds since the Unix epoch.
    pub ts_us: u64,
    /// Length of the frame on the wire.
    pub orig_len: u32,
    /// The captured bytes (at most the snap length).
    pub data: Vec<u8>,
}

/// Sequential reader of pcap and pcapng files (off the hot path: it allocates per record).
pub struct CaptureReader {
    path: PathBuf,
    input: BufReader<File>,
    format: CaptureFormat,
    big_endian: bool,
    link_dlt: Option<u32>,
    snaplen: u32,
    /// Per-interface timestamp resolution for pcapng, as units per second.
    if_tsresol: Vec<u64>,
    mixed_link_types: Option<(u32, u32)>,
    /// Bytes of a record (or pcapng block) the file ended inside, once [`Self::next_record`]
    /// met it.
    truncated_tail: Option<u64>,
}

impl CaptureReader {
    /// Opens `path` and reads the file header (and, for pcapng, blocks up to the first interface).
    pub fn open(path: &Path) -> Result<CaptureReader, CaptureError> {
        let file = open(path)?;
        let mut input = BufReader::with_capacity(1 << 16, file);
        let bad = |why: &str| CaptureError::NotACapture(path.to_path_buf(), why.to_string());
        let mut magic = [0u8; 4];
        read_exact_or(&mut input, &mut magic, path, "file shorter than a header")?;
        let le = u32::from_le_bytes(magic);
        let be = u32::from_be_bytes(magic);
        let mut me = CaptureReader {
            path: path.to_path_buf(),
            input,
            format: CaptureFormat::Pcapng,
            big_endian: false,
            link_dlt: None,
            snaplen: 0,
            if_tsresol: Vec::new(),
            mixed_link_types: None,
            truncated_tail: None,
        };
        if le == PCAP_MAGIC_US || le == PCAP_MAGIC_NS || be == PCAP_MAGIC_US || be == PCAP_MAGIC_NS
        {
            let big = be == PCAP_MAGIC_US || be == PCAP_MAGIC_NS;
            let nanos = if big {
                be == PCAP_MAGIC_NS
            } else {
                le == PCAP_MAGIC_NS
            };
            let mut rest = [0u8; 20];
            read_exact_or(&mut me.input, &mut rest, path, "pcap header cut short")?;
            me.format = CaptureFormat::Pcap {
                nanos,
                big_endian: big,
            };
            me.big_endian = big;
            me.snaplen = rd_u32(&rest[12..16], big);
            // The upper bits of the link-type field carry FCS information; the type is the low 16.
            let dlt = rd_u32(&rest[16..20], big) & 0xffff;
            me.link_dlt = Some(dlt);
        } else if le == PCAPNG_SHB {
            me.read_pcapng_shb_rest()?;
            // Read blocks until the first interface description.
            while me.link_dlt.is_none() {
                match me.read_block()? {
                    Some(_) => {}
                    None => return Err(bad("pcapng file has no interface description block")),
                }
            }
        } else {
            return Err(bad("unknown magic number"));
        }
        let dlt = me.link_dlt.unwrap_or(0);
        if LinkType::from_dlt(dlt).is_none() {
            return Err(CaptureError::UnknownLinkType(path.to_path_buf(), dlt));
        }
        Ok(me)
    }

    /// Format, link type and snap length as read so far.
    pub fn info(&self) -> CaptureInfo {
        let dlt = self.link_dlt.unwrap_or(0);
        CaptureInfo {
            format: self.format,
            link_type: LinkType::from_dlt(dlt).unwrap_or(LinkType::Ethernet),
            snaplen: self.snaplen,
        }
    }

    /// When the file ended inside a record (or pcapng block): the bytes of it that were there.
    /// Known once [`Self::next_record`] has returned `None`; `None` for a file that ends on a
    /// record boundary.
    pub fn truncated_tail(&self) -> Option<u64> {
        self.truncated_tail
    }

    /// Reads `buf` whole: `Ok(true)`; at the end of the file before its first byte: `Ok(false)`;
    /// inside it: `Ok(false)` and [`Self::truncated_tail`] set to `before` plus the bytes read.
    fn read_part(&mut self, buf: &mut [u8], before: u64) -> Result<bool, CaptureError> {
        let got = read_up_to(&mut self.input, buf)
            .map_err(|e| CaptureError::Unreadable(self.path.clone(), e))?;
        if got == buf.len() {
            return Ok(true);
        }
        if before + got as u64 > 0 {
            self.truncated_tail = Some(before + got as u64);
        }
        Ok(false)
    }

    /// The next frame, or `None` at the end of the file. A file cut short inside a record ends
    /// the stream (as libpcap does) rather than failing it; [`Self::truncated_tail`] then says
    /// how many bytes of that record there were.
    pub fn next_record(&mut self) -> Result<Option<CaptureRecord>, CaptureError> {
        match self.format {
            CaptureFormat::Pcap { nanos, big_endian } => {
                let mut hdr = [0u8; 16];
                if !self.read_part(&mut hdr, 0)? {
                    return Ok(None);
                }
                let sec = rd_u32(&hdr[0..4], big_endian) as u64;
                let frac = rd_u32(&hdr[4..8], big_endian) as u64;
                let incl = rd_u32(&hdr[8..12], big_endian);
                let orig = rd_u32(&hdr[12..16], big_endian);
                if incl > MAX_RECORD {
                    return Err(CaptureError::NotACapture(
                        self.path.clone(),
                        format!("record of {incl} bytes"),
                    ));
                }
                let mut data = vec![0u8; incl as usize];
                if !self.read_part(&mut data, 16)? {
                    return Ok(None);
                }
                let sub_us = if nanos { frac / 1000 } else { frac };
                Ok(Some(CaptureRecord {
                    ts_us: sec * 1_000_000 + sub_us,
                    orig_len: orig,
                    data,
                }))
            }
            CaptureFormat::Pcapng => loop {
                match self.read_block()? {
                    None => return Ok(None),
                    Some(Some(rec)) => return Ok(Some(rec)),
                    Some(None) => continue,
                }
            },
        }
    }

    fn read_pcapng_shb_rest(&mut self) -> Result<(), CaptureError> {
        let mut hdr = [0u8; 8];
        read_exact_or(
            &mut self.input,
            &mut hdr,
            &self.path,
            "pcapng section header cut short",
        )?;
        let bom_le = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
        let big = if bom_le == PCAPNG_BYTE_ORDER_MAGIC {
            false
        } else if u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) == PCAPNG_BYTE_ORDER_MAGIC {
            true
        } else {
            return Err(CaptureError::NotACapture(
                self.path.clone(),
                "bad pcapng byte-order magic".into(),
            ));
        };
        self.big_endian = big;
        let total = rd_u32(&hdr[0..4], big);
        if !(12..=MAX_RECORD).contains(&total) {
            return Err(CaptureError::NotACapture(
                self.path.clone(),
                "bad pcapng SHB length".into(),
            ));
        }
        let mut rest = vec![0u8; total as usize - 12];
        read_exact_or(
            &mut self.input,
            &mut rest,
            &self.path,
            "pcapng section header cut short",
        )?;
        // A new section resets the interface list.
        self.if_tsresol.clear();
        Ok(())
    }

    /// Reads one pcapng block. `Ok(None)`: end of file; `Ok(Some(None))`: a block that holds no
    /// frame; `Ok(Some(Some(rec)))`: a frame.
    fn read_block(&mut self) -> Result<Option<Option<CaptureRecord>>, CaptureError> {
        let mut hdr = [0u8; 8];
        if !self.read_part(&mut hdr, 0)? {
            return Ok(None);
        }
        let big = self.big_endian;
        let btype = rd_u32(&hdr[0..4], big);
        if btype == PCAPNG_SHB {
            // Re-read the length with the new section's byte order.
            let bom = [hdr[4], hdr[5], hdr[6], hdr[7]];
            let mut lenb = [0u8; 4];
            read_exact_or(
                &mut self.input,
                &mut lenb,
                &self.path,
                "pcapng section cut short",
            )?;
            let big2 = u32::from_be_bytes(lenb) == PCAPNG_BYTE_ORDER_MAGIC;
            self.big_endian = big2;
            let total = rd_u32(&bom, big2);
            if !(16..=MAX_RECORD).contains(&total) {
                return Err(CaptureError::NotACapture(
                    self.path.clone(),
                    "bad SHB length".into(),
                ));
            }
            let mut rest = vec![0u8; total as usize - 12];
            if !self.read_part(&mut rest, 12)? {
                return Ok(None);
            }
            self.if_tsresol.clear();
            return Ok(Some(None));
        }
        let total = rd_u32(&hdr[4..8], big);
        if !(12..=MAX_RECORD).contains(&total) {
            return Err(CaptureError::NotACapture(
                self.path.clone(),
                format!("pcapng block of length {total}"),
            ));
        }
        let mut body = vec![0u8; total as usize - 8];
        if !self.read_part(&mut body, 8)? {
            return Ok(None);
        }
        let body = &body[..body.len() - 4]; // trailing length copy
        match btype {
            PCAPNG_IDB => {
                if body.len() < 8 {
                    return Err(CaptureError::NotACapture(
                        self.path.clone(),
                        "short IDB".into(),
                    ));
                }
                let dlt = rd_u16(&body[0..2], big) as u32;
                let snap = rd_u32(&body[4..8], big);
                match self.link_dlt {
                    None => self.link_dlt = Some(dlt),
                    Some(first) if first != dlt && self.mixed_link_types.is_none() => {
                        self.mixed_link_types = Some((first, dlt))
                    }
                    _ => {}
                }
                self.snaplen = self.snaplen.max(snap);
                self.if_tsresol.push(parse_if_tsresol(&body[8..], big));
                Ok(Some(None))
            }
            PCAPNG_EPB | PCAPNG_OBSOLETE_PB => {
                if body.len() < 20 {
                    return Ok(Some(None));
                }
                let if_id = if btype == PCAPNG_EPB {
                    rd_u32(&body[0..4], big) as usize
                } else {
                    rd_u16(&body[0..2], big) as usize
                };
                let ts =
                    ((rd_u32(&body[4..8], big) as u64) << 32) | rd_u32(&body[8..12], big) as u64;
                let cap = rd_u32(&body[12..16], big) as usize;
                let orig = rd_u32(&body[16..20], big);
                let data = body.get(20..20 + cap).unwrap_or(&body[20..]).to_vec();
                let res = self.if_tsresol.get(if_id).copied().unwrap_or(1_000_000);
                let ts_us = if res == 1_000_000 {
                    ts
                } else {
                    ((ts as u128) * 1_000_000 / res as u128) as u64
                };
                Ok(Some(Some(CaptureRecord {
                    ts_us,
                    orig_len: orig,
                    data,
                })))
            }
            PCAPNG_SPB => {
                if body.len() < 4 {
                    return Ok(Some(None));
                }
                let orig = rd_u32(&body[0..4], big);
                // A snap length of 0 means "no limit" in pcapng.
                let snap = if self.snaplen == 0 {
                    usize::MAX
                } else {
                    self.snaplen as usize
                };
                let cap = (orig as usize).min(body.len() - 4).min(snap);
                let data = body[4..4 + cap].to_vec();
                Ok(Some(Some(CaptureRecord {
                    ts_us: 0,
                    orig_len: orig,
                    data,
                })))
            }
            _ => Ok(Some(None)),
        }
    }
}

/// Reads `if_tsresol` (option 9) from IDB options; default is microseconds.
fn parse_if_tsresol(mut opts: &[u8], big: bool) -> u64 {
    while opts.len() >= 4 {
        let code = rd_u16(&opts[0..2], big);
        let len = rd_u16(&opts[2..4], big) as usize;
        let padded = (len + 3) & !3;
        if code == 0 {
            break;
        }
        if code == 9 && len >= 1 && opts.len() >= 5 {
            let v = opts[4];
            let exp = (v & 0x7f) as u32;
            return if v & 0x80 != 0 {
                2u64.checked_pow(exp).unwrap_or(1_000_000)
            } else {
                10u64.checked_pow(exp).unwrap_or(1_000_000)
            };
        }
        if opts.len() < 4 + padded {
            break;
        }
        opts = &opts[4 + padded..];
    }
    1_000_000
}

/// Like `read_exact`, but `Ok(false)` on a clean or partial end of file.
/// Fills `buf` or reads to the end of the input; returns the bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    Ok(read_up_to(r, buf)? == buf.len())
}

fn read_exact_or(
    r: &mut impl Read,
    buf: &mut [u8],
    path: &Path,
    why: &str,
) -> Result<(), CaptureError> {
    match read_full(r, buf) {
        Ok(true) => Ok(()),
        Ok(false) => Err(CaptureError::NotACapture(
            path.to_path_buf(),
            why.to_string(),
        )),
        Err(e) => Err(CaptureError::Unreadable(path.to_path_buf(), e)),
    }
}

/// Writes a classic little-endian, microsecond pcap file.
pub struct PcapWriter<W: Write> {
    out: W,
}

impl PcapWriter<BufWriter<File>> {
    /// Creates (truncates) `path` and writes the pcap file header.
    pub fn create(path: &Path, link_type: LinkType, snaplen: u32) -> io::Result<Self> {
        let f = File::create(path)?;
        PcapWriter::new(BufWriter::with_capacity(1 << 16, f), link_type, snaplen)
    }
}

impl<W: Write> PcapWriter<W> {
    /// Wraps `out` and writes the pcap file header to it.
    pub fn new(mut out: W, link_type: LinkType, snaplen: u32) -> io::Result<Self> {
        let mut hdr = [0u8; 24];
        hdr[0..4].copy_from_slice(&PCAP_MAGIC_US.to_le_bytes());
        hdr[4..6].copy_from_slice(&2u16.to_le_bytes());
        hdr[6..8].copy_from_slice(&4u16.to_le_bytes());
        hdr[16..20].copy_from_slice(&snaplen.to_le_bytes());
        hdr[20..24].copy_from_slice(&link_type.dlt().to_le_bytes());
        out.write_all(&hdr)?;
        Ok(PcapWriter { out })
    }

    /// Appends one frame captured at `ts_us` (microseconds since the epoch) with its wire length.
    pub fn write(&mut self, ts_us: u64, orig_len: u32, data: &[u8]) -> io::Result<()> {
        let mut hdr = [0u8; 16];
        hdr[0..4].copy_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        hdr[4..8].copy_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        hdr[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        hdr[12..16].copy_from_slice(&orig_len.max(data.len() as u32).to_le_bytes());
        self.out.write_all(&hdr)?;
        self.out.write_all(data)
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}
