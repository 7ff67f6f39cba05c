//! Decoding gaps against Wireshark: every frame of every shared nDPI capture is decoded with
//! `CaptureReader` + `parse`, grouped into conversations (transport + unordered endpoint pair)
//! with packet counts, and compared with tshark's conversation tables for the same file:
//!
//! ```text
//! tshark -n -r FILE -q -z conv,tcp -z conv,udp
//! ```
//!
//! (`-n`: no name resolution, so endpoints print as addresses and port numbers; tshark rows with
//! the same endpoints — a reused 4-tuple counted as separate TCP streams — are summed.)
//!
//! At least 99 % of all conversations must agree exactly, and every disagreement must be listed,
//! with its reason, in `tests/fixtures/conversation_differences.tsv` (columns `pcap`,
//! `transport`, `endpoint_a`, `endpoint_b`, `ours`, `tshark`, `reason`; endpoints sorted, IPv6
//! in brackets; a count of 0 means that side has no such conversation). The test fails on any
//! unlisted difference and on any listed one that no longer occurs, and prints them.
//!
//! Skips with a message when /work/shared (../shared from the repository root) or tshark is
//! absent. Nothing is cached: tshark runs on every file each time.

use portolan_packet::capture::CaptureReader;
use portolan_packet::{parse, Transport};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// A conversation: transport and its two endpoints, lower one first.
type ConvKey = (Transport, (IpAddr, u16), (IpAddr, u16));

fn conv_key(transport: Transport, a: (IpAddr, u16), b: (IpAddr, u16)) -> ConvKey {
    if a <= b {
        (transport, a, b)
    } else {
        (transport, b, a)
    }
}

fn endpoint_str((ip, port): (IpAddr, u16)) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// Conversations and packet counts from our decoder.
fn ours(path: &Path) -> BTreeMap<ConvKey, u64> {
    let mut reader = CaptureReader::open(path).unwrap_or_else(|e| panic!("{e}"));
    let link = reader.info().link_type;
    let mut convs = BTreeMap::new();
    while let Some(rec) = reader.next_record().unwrap_or_else(|e| panic!("{e}")) {
        if let Ok(p) = parse(link, &rec.data) {
            let key = conv_key(p.transport, (p.src_ip, p.src_port), (p.dst_ip, p.dst_port));
            *convs.entry(key).or_insert(0) += 1;
        }
    }
    convs
}

/// Splits `addr:port` as tshark prints it (IPv6 without brackets) at the last colon.
fn parse_tshark_endpoint(s: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = s.rsplit_once(':')?;
    Some((addr.parse().ok()?, port.parse().ok()?))
}

/// Conversations and packet counts from tshark's `conv,tcp` and `conv,udp` tables.
fn tshark(path: &Path) -> BTreeMap<ConvKey, u64> {
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(path)
        .args(["-q", "-z", "conv,tcp", "-z", "conv,udp"])
        .output()
        .unwrap_or_else(|e| panic!("running tshark on {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut convs = BTreeMap::new();
    let mut transport = None;
    for line in text.lines() {
        if line.starts_with("TCP Conversations") {
            transport = Some(Transport::Tcp);
            continue;
        }
        if line.starts_with("UDP Conversations") {
            transport = Some(Transport::Udp);
            continue;
        }
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.get(1) != Some(&"<->") {
            continue;
        }
        let t = transport
            .unwrap_or_else(|| panic!("{}: conversation row before a table title", path.display()));
        // a <-> b, then (frames, bytes, unit) for b→a, a→b and the total.
        let parsed = (|| {
            let a = parse_tshark_endpoint(tokens.first()?)?;
            let b = parse_tshark_endpoint(tokens.get(2)?)?;
            let total: u64 = tokens.get(9)?.replace(',', "").parse().ok()?;
            Some((a, b, total))
        })();
        let (a, b, total) =
            parsed.unwrap_or_else(|| panic!("{}: unreadable tshark row {line:?}", path.display()));
        *convs.entry(conv_key(t, a, b)).or_insert(0) += total;
    }
    convs
}

/// One disagreement between the two conversation lists.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Difference {
    pcap: String,
    transport: String,
    endpoint_a: String,
    endpoint_b: String,
    ours: u64,
    tshark: u64,
}

impl Difference {
    fn row(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            self.pcap, self.transport, self.endpoint_a, self.endpoint_b, self.ours, self.tshark
        )
    }
}

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conversation_differences.tsv")
}

/// Listed differences from the fixture, each with its reason.
fn listed_differences() -> BTreeMap<Difference, String> {
    let path = fixture_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut listed = BTreeMap::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let bad = || {
            panic!(
                "{}:{}: want 7 tab-separated columns with counts: {line:?}",
                path.display(),
                n + 1
            )
        };
        if f.len() != 7 || f[6].trim().is_empty() {
            bad();
        }
        let count = |s: &str| s.parse::<u64>().unwrap_or_else(|_| bad());
        let d = Difference {
            pcap: f[0].into(),
            transport: f[1].into(),
            endpoint_a: f[2].into(),
            endpoint_b: f[3].into(),
            ours: count(f[4]),
            tshark: count(f[5]),
        };
        listed.insert(d, f[6].to_string());
    }
    listed
}

fn ndpi_captures() -> Option<Vec<PathBuf>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/pcaps/ndpi");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("skipping: shared captures not found at {}", dir.display());
        return None;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    files.sort();
    Some(files)
}

#[test]
fn conversations_match_tshark() {
    let Some(files) = ndpi_captures() else { return };
    if Command::new("tshark").arg("--version").output().is_err() {
        eprintln!("skipping: tshark is not installed");
        return;
    }
    assert!(!files.is_empty(), "no captures in the shared nDPI folder");

    // Two workers: tshark start-up dominates, and the machine is shared.
    let queue = Mutex::new(files.iter());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let Some(path) = queue.lock().unwrap().next() else {
                    break;
                };
                let pair = (path.clone(), ours(path), tshark(path));
                results.lock().unwrap().push(pair);
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by(|a, b| a.0.cmp(&b.0));

    let mut total = 0usize;
    let mut found = BTreeSet::new();
    for (path, ours, theirs) in &results {
        let pcap = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let keys: BTreeSet<&ConvKey> = ours.keys().chain(theirs.keys()).collect();
        total += keys.len();
        for key in keys {
            let (o, t) = (
                ours.get(key).copied().unwrap_or(0),
                theirs.get(key).copied().unwrap_or(0),
            );
            if o != t {
                found.insert(Difference {
                    pcap: pcap.clone(),
                    transport: key.0.eve_name().to_string(),
                    endpoint_a: endpoint_str(key.1),
                    endpoint_b: endpoint_str(key.2),
                    ours: o,
                    tshark: t,
                });
            }
        }
    }

    let listed = listed_differences();
    let unlisted: Vec<&Difference> = found.iter().filter(|d| !listed.contains_key(d)).collect();
    let stale: Vec<&Difference> = listed.keys().filter(|d| !found.contains(d)).collect();
    let agree = total - found.len();
    eprintln!(
        "{} captures, {total} conversations, {agree} agree with tshark ({:.2} %), {} listed differences",
        results.len(),
        100.0 * agree as f64 / total.max(1) as f64,
        listed.len()
    );
    for d in &unlisted {
        eprintln!("UNLISTED\t{}", d.row());
    }
    for d in &stale {
        eprintln!("STALE\t{}", d.row());
    }
    assert!(
        unlisted.is_empty(),
        "{} differences from tshark are not listed in {}",
        unlisted.len(),
        fixture_path().display()
    );
    assert!(
        stale.is_empty(),
        "{} listed differences no longer occur; remove them from {}",
        stale.len(),
        fixture_path().display()
    );
    assert!(
        agree * 100 >= total * 99,
        "only {agree} of {total} conversations agree with tshark (need 99 %)"
    );
}
