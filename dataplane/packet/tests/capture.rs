//! Capture files: pcap written by `PcapWriter` reads back through `CaptureReader`/`probe`,
//! hand-built pcapng files (both byte orders, nanosecond resolution, simple packet blocks), and
//! every shared nDPI capture probes to the link type and format its `captures.tsv` row names.

use portolan_packet::capture::{
    probe, CaptureError, CaptureFormat, CaptureReader, CaptureRecord, PcapWriter,
};
use portolan_packet::LinkType;
use std::path::{Path, PathBuf};

fn read_all(path: &Path) -> Vec<CaptureRecord> {
    let mut reader = CaptureReader::open(path).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    while let Some(rec) = reader.next_record().unwrap_or_else(|e| panic!("{e}")) {
        out.push(rec);
    }
    out
}

#[test]
fn pcap_writer_round_trips_through_reader_and_probe() {
    let dir = tempfile::tempdir().unwrap();
    for link in LinkType::ALL {
        let path = dir.path().join(format!("{}.pcap", link.name()));
        let records = vec![
            CaptureRecord {
                ts_us: 1_700_000_000_123_456,
                orig_len: 5,
                data: b"hello".to_vec(),
            },
            CaptureRecord {
                ts_us: 1_700_000_001_000_000,
                orig_len: 1500,
                data: vec![0xab; 96],
            },
            CaptureRecord {
                ts_us: 0,
                orig_len: 0,
                data: Vec::new(),
            },
        ];
        let mut w = PcapWriter::create(&path, link, 96).unwrap();
        for r in &records {
            w.write(r.ts_us, r.orig_len, &r.data).unwrap();
        }
        w.finish().unwrap();
        let info = probe(&path).unwrap();
        assert_eq!(
            info.format,
            CaptureFormat::Pcap {
                nanos: false,
                big_endian: false
            }
        );
        assert_eq!((info.link_type, info.snaplen), (link, 96));
        assert_eq!(read_all(&path), records, "{link:?}");
    }
}

#[test]
fn cut_short_file_ends_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.pcap");
    let mut w = PcapWriter::create(&path, LinkType::Ethernet, 65535).unwrap();
    w.write(1, 60, &[1; 60]).unwrap();
    w.write(2, 60, &[2; 60]).unwrap();
    w.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let recs = read_all(&path);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].data, vec![1; 60]);
}

/// How many records a capture holds whole, and what its reader says of the rest.
fn records_and_tail(path: &Path) -> (usize, Option<u64>) {
    let mut reader = CaptureReader::open(path).unwrap_or_else(|e| panic!("{e}"));
    let mut n = 0;
    while reader
        .next_record()
        .unwrap_or_else(|e| panic!("{e}"))
        .is_some()
    {
        n += 1;
    }
    (n, reader.truncated_tail())
}

#[test]
fn the_reader_says_how_much_of_a_cut_short_record_there_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.pcap");
    let mut w = PcapWriter::create(&path, LinkType::Ethernet, 65535).unwrap();
    w.write(1, 60, &[1; 60]).unwrap();
    w.write(2, 60, &[2; 60]).unwrap();
    w.finish().unwrap();
    let whole = std::fs::read(&path).unwrap();
    assert_eq!(records_and_tail(&path), (2, None));
    // Cut inside the second record's data (16-byte header + 50 of 60 bytes) and header.
    std::fs::write(&path, &whole[..whole.len() - 10]).unwrap();
    assert_eq!(records_and_tail(&path), (1, Some(66)));
    std::fs::write(&path, &whole[..whole.len() - 60 - 6]).unwrap();
    assert_eq!(records_and_tail(&path), (1, Some(10)));
    // pcapng: an enhanced packet block cut short.
    let ng = write_pcapng(dir.path(), "cut.pcapng", false, |b| {
        b.idb(1, 0, None);
        b.epb(0, 1, 4, b"abcd");
        b.epb(0, 2, 4, b"efgh");
    });
    assert_eq!(records_and_tail(&ng), (2, None));
    let bytes = std::fs::read(&ng).unwrap();
    std::fs::write(&ng, &bytes[..bytes.len() - 3]).unwrap();
    let (n, tail) = records_and_tail(&ng);
    assert_eq!(n, 1);
    assert!(tail.is_some_and(|t| t > 8), "{tail:?}");
}

#[test]
fn refused_files_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pcap");
    assert!(matches!(probe(&missing), Err(CaptureError::NotFound(p)) if p == missing));
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture file").unwrap();
    let err = probe(&junk).unwrap_err();
    assert!(matches!(err, CaptureError::NotACapture(..)));
    assert!(err.to_string().contains("junk.pcap"), "{err}");
    // A pcap header with link type 105 (802.11), which is not decoded.
    let wifi = dir.path().join("wifi.pcap");
    let mut hdr = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    hdr.extend_from_slice(&[0; 8]);
    hdr.extend_from_slice(&65535u32.to_le_bytes());
    hdr.extend_from_slice(&105u32.to_le_bytes());
    std::fs::write(&wifi, &hdr).unwrap();
    assert!(matches!(
        probe(&wifi),
        Err(CaptureError::UnknownLinkType(_, 105))
    ));
}

/// Serialises pcapng blocks in one byte order.
struct PcapngBuilder {
    big: bool,
    out: Vec<u8>,
}

impl PcapngBuilder {
    fn u16(&self, v: u16) -> [u8; 2] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    fn u32(&self, v: u32) -> [u8; 4] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    fn block(&mut self, btype: u32, body: &[u8]) {
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let total = (body.len() + 12) as u32;
        let (t, l) = (self.u32(btype), self.u32(total));
        self.out.extend_from_slice(&t);
        self.out.extend_from_slice(&l);
        self.out.extend_from_slice(&body);
        self.out.extend_from_slice(&l);
    }

    fn shb(&mut self) {
        let mut body = self.u32(0x1a2b_3c4d).to_vec();
        body.extend_from_slice(&self.u16(1));
        body.extend_from_slice(&self.u16(0));
        body.extend_from_slice(&u64::MAX.to_le_bytes());
        self.block(0x0a0d_0d0a, &body);
    }

    fn idb(&mut self, dlt: u16, snaplen: u32, tsresol: Option<u8>) {
        let mut body = self.u16(dlt).to_vec();
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&self.u32(snaplen));
        if let Some(r) = tsresol {
            body.extend_from_slice(&self.u16(9));
            body.extend_from_slice(&self.u16(1));
            body.extend_from_slice(&[r, 0, 0, 0]);
            body.extend_from_slice(&[0, 0, 0, 0]);
        }
        self.block(1, &body);
    }

    fn epb(&mut self, if_id: u32, ts: u64, orig: u32, data: &[u8]) {
        let mut body = self.u32(if_id).to_vec();
        body.extend_from_slice(&self.u32((ts >> 32) as u32));
        body.extend_from_slice(&self.u32(ts as u32));
        body.extend_from_slice(&self.u32(data.len() as u32));
        body.extend_from_slice(&self.u32(orig));
        body.extend_from_slice(data);
        self.block(6, &body);
    }

    fn spb(&mut self, orig: u32, data: &[u8]) {
        let mut body = self.u32(orig).to_vec();
        body.extend_from_slice(data);
        self.block(3, &body);
    }
}

fn write_pcapng(
    dir: &Path,
    name: &str,
    big: bool,
    build: impl FnOnce(&mut PcapngBuilder),
) -> PathBuf {
    let mut b = PcapngBuilder {
        big,
        out: Vec::new(),
    };
    b.shb();
    build(&mut b);
    let path = dir.join(name);
    std::fs::write(&path, &b.out).unwrap();
    path
}

#[test]
fn pcapng_blocks_in_both_byte_orders() {
    let dir = tempfile::tempdir().unwrap();
    for big in [false, true] {
        let path = write_pcapng(dir.path(), &format!("t{big}.pcapng"), big, |b| {
            // Interface 0: nanosecond timestamps, snap length 0 (no limit).
            b.idb(113, 0, Some(9));
            b.block(5, &[0; 8]); // an interface statistics block holds no frame
            b.epb(0, 1_700_000_000_123_456_789, 70, b"sll frame");
            b.spb(7, b"seven!!");
        });
        let info = probe(&path).unwrap();
        assert_eq!(
            (info.format, info.link_type, info.snaplen),
            (CaptureFormat::Pcapng, LinkType::LinuxSll, 0)
        );
        let recs = read_all(&path);
        assert_eq!(
            recs,
            vec![
                CaptureRecord {
                    ts_us: 1_700_000_000_123_456,
                    orig_len: 70,
                    data: b"sll frame".to_vec()
                },
                CaptureRecord {
                    ts_us: 0,
                    orig_len: 7,
                    data: b"seven!!".to_vec()
                },
            ],
            "big-endian {big}"
        );
    }
}

#[test]
fn pcapng_mixed_link_types_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_pcapng(dir.path(), "mixed.pcapng", false, |b| {
        b.idb(1, 65535, None);
        b.epb(0, 1, 60, &[0; 60]);
        b.idb(101, 65535, None);
    });
    assert!(matches!(
        probe(&path),
        Err(CaptureError::MixedLinkTypes(_, 1, 101))
    ));
}

/// The shared nDPI captures, or `None` (with a message) when /work/shared is not mounted.
fn ndpi_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/pcaps/ndpi");
    if dir.join("captures.tsv").is_file() {
        Some(dir)
    } else {
        eprintln!("skipping: shared captures not found at {}", dir.display());
        None
    }
}

#[test]
fn ndpi_captures_probe_to_their_listed_link_type() {
    let Some(dir) = ndpi_dir() else { return };
    let table = std::fs::read_to_string(dir.join("captures.tsv")).unwrap();
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no {name} column"))
    };
    let (c_pcap, c_format, c_link) = (col("pcap"), col("file_format"), col("link_type"));
    let mut checked = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let want_link = match f[c_link] {
            "ether" => LinkType::Ethernet,
            "linux-sll" => LinkType::LinuxSll,
            "linux-sll2" => LinkType::LinuxSll2,
            "rawip" => LinkType::RawIp,
            "null" => LinkType::Null,
            other => panic!("{}: unmapped link_type {other}", f[c_pcap]),
        };
        let info = probe(&dir.join(f[c_pcap])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(info.link_type, want_link, "{}", f[c_pcap]);
        assert_eq!(info.format.name(), f[c_format], "{}", f[c_pcap]);
        checked += 1;
    }
    assert!(checked >= 100, "only {checked} captures listed");
}
