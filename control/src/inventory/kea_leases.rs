//! ISC Kea memfile lease CSV (DHCPv4 and DHCPv6) → [`Lease`]s (address or delegated prefix,
//! hardware address, validity interval), the lease deletions the file records, and the rows
//! left out with their reasons.
//!
//! Owns: reading `kea-leases4.csv` (header `address,hwaddr,client_id,valid_lifetime,expire,
//! subnet_id,fqdn_fwd,fqdn_rev,hostname,state,...`) and `kea-leases6.csv` (header `address,duid,
//! valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len,fqdn_fwd,fqdn_rev,
//! hostname,hwaddr,state,user_context,...`), by column name, as Kea's `CSVLeaseFile4` /
//! `CSVLeaseFile6` write them. A lease is valid from `expire - valid_lifetime` (the client's last
//! transmission time) to `expire` (Unix seconds).
//!
//! - The client's MAC is the `hwaddr` column when present; else, for DHCPv6, the link-layer
//!   address embedded in a DUID-LLT (type 1) or DUID-LL (type 3) of hardware type 1 (Ethernet);
//!   for DHCPv4, a client identifier of type 1 followed by six octets (RFC 2132 §9.14).
//! - `lease_type` 2 (IA_PD) is a delegated prefix: the lease binds `address/prefix_len`.
//! - Kea's memfile appends; a row with `valid_lifetime` 0 records the deletion (release) of the
//!   lease at `expire` ([`LeaseEnd`]): the lease held before ends there.
//! - Rows in a state other than 0 (default) — 1 declined, 2 expired-reclaimed, and any later —
//!   and rows whose client gives no MAC (a DUID-EN or DUID-UUID without `hwaddr`) are skipped,
//!   each with its line and reason in [`LeaseFile::skipped`].
//! - A row that is malformed (an address, number, MAC or DUID that does not parse) fails the
//!   file with an error naming the line and column: Kea never writes one.
//!
//! Must not: join leases to devices (the attribution index does that through Wi-Fi MACs).

use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{normalize_mac, InventoryError};

/// One DHCP lease: an address, or a delegated IPv6 prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Leased address, or the delegated prefix's first address.
    pub address: IpAddr,
    /// The delegated prefix's length (DHCPv6 IA_PD); `None` for an address lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_len: Option<u8>,
    /// Client hardware address, lowercase colon-separated.
    pub hwaddr: String,
    /// Lease start, µs since the epoch.
    pub valid_from_us: i64,
    /// Lease end, µs since the epoch.
    pub valid_until_us: i64,
    /// Client host name, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

impl Lease {
    /// The address as stored and shown: `2001:db8:0:100::/56` for a prefix, else the address.
    pub fn address_text(&self) -> String {
        match self.prefix_len {
            Some(len) => format!("{}/{len}", self.address),
            None => self.address.to_string(),
        }
    }
}

/// A lease deletion recorded by the memfile (a row with `valid_lifetime` 0): the client's lease
/// of `address` ended at `at_us`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseEnd {
    /// The address or prefix, as [`Lease::address_text`] writes it.
    pub address: String,
    /// The client's hardware address.
    pub hwaddr: String,
    /// When it ended, µs since the epoch.
    pub at_us: i64,
}

/// What a lease file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseFile {
    /// Data rows read.
    pub rows: usize,
    /// The leases that bind an address (or prefix) to a hardware address.
    pub leases: Vec<Lease>,
    /// Lease deletions.
    pub ended: Vec<LeaseEnd>,
    /// Rows left out, each `FILE:LINE: ADDRESS: reason`.
    pub skipped: Vec<String>,
}

/// What a lease import changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseImportSummary {
    /// Data rows in the file.
    pub rows: usize,
    /// Leases new to the store.
    pub added: usize,
    /// Leases the store already held (the same address, client and start).
    pub unchanged: usize,
    /// Stored leases ended by the file's deletion rows.
    pub ended: usize,
    /// Rows left out, each with its line and reason.
    pub skipped: Vec<String>,
}

/// Reads a Kea lease CSV file.
pub fn load_kea_leases(path: &Path) -> Result<LeaseFile, InventoryError> {
    let bytes = crate::input_file::read_bounded(path, crate::input_file::MAX_INPUT_FILE_BYTES)
        .map_err(|source| InventoryError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    parse_kea_leases(&bytes, path)
}

/// The link-layer address a DUID carries, from its text form as Kea writes it (hex octets
/// separated by `:`): DUID-LLT (type 1: type, hardware type, 4-octet time, address) or DUID-LL
/// (type 3: type, hardware type, address) with hardware type 1 (Ethernet) and a 6-octet address.
/// `Ok(None)` for other DUIDs (DUID-EN, DUID-UUID, other hardware types); `Err` when the text
/// is not hex octets.
pub fn mac_from_duid(text: &str) -> Result<Option<String>, String> {
    let octets = hex_octets(text).ok_or_else(|| format!("not a DUID (hex octets): {text:?}"))?;
    let (duid_type, hw_type, rest) = match octets.as_slice() {
        [t0, t1, h0, h1, rest @ ..] => (
            u16::from_be_bytes([*t0, *t1]),
            u16::from_be_bytes([*h0, *h1]),
            rest,
        ),
        _ => return Err(format!("DUID shorter than 4 octets: {text:?}")),
    };
    let lladdr = match (duid_type, rest) {
        (1, [_, _, _, _, addr @ ..]) => addr,
        (3, addr) => addr,
        _ => return Ok(None),
    };
    Ok(mac_of(hw_type, lladdr))
}

/// A MAC from a hardware type and address: Ethernet (1) with 6 octets.
fn mac_of(hw_type: u16, addr: &[u8]) -> Option<String> {
    if hw_type != 1 || addr.len() != 6 {
        return None;
    }
    Some(
        addr.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// `aa:bb:0c` or `aabb0c` → octets; `None` on anything else. Kea's text form may drop a leading
/// zero of an octet (`0:1:0:1`), which is accepted between colons.
fn hex_octets(text: &str) -> Option<Vec<u8>> {
    if text.contains(':') {
        text.split(':')
            .map(|p| {
                (!p.is_empty() && p.len() <= 2)
                    .then(|| u8::from_str_radix(p, 16).ok())
                    .flatten()
            })
            .collect()
    } else {
        if text.is_empty() || !text.len().is_multiple_of(2) {
            return None;
        }
        (0..text.len() / 2)
            .map(|i| {
                text.get(i * 2..i * 2 + 2)
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
            })
            .collect()
    }
}

/// Longest prefix a delegation may have; a DHCPv6 prefix of 128 is an address.
const MAX_PREFIX_LEN: u8 = 128;

/// Parses Kea lease CSV bytes (v4 or v6, told apart by the `duid` column); `path` only names
/// errors and skipped rows.
pub fn parse_kea_leases(bytes: &[u8], path: &Path) -> Result<LeaseFile, InventoryError> {
    let err = |line: u64, message: String| InventoryError::Lease {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| err(1, format!("header: {e}")))?
        .clone();
    let optional = |name: &str| headers.iter().position(|h| h == name);
    let column = |name: &str| -> Result<usize, InventoryError> {
        optional(name).ok_or_else(|| {
            err(
                1,
                format!("missing column `{name}` (is this a Kea lease file?)"),
            )
        })
    };
    let c_address = column("address")?;
    let c_duid = optional("duid");
    let v6 = c_duid.is_some();
    let c_hwaddr = if v6 {
        optional("hwaddr")
    } else {
        Some(column("hwaddr")?)
    };
    let c_client_id = optional("client_id");
    let c_lifetime = column("valid_lifetime")?;
    let c_expire = column("expire")?;
    let c_lease_type = if v6 {
        Some(column("lease_type")?)
    } else {
        None
    };
    let c_prefix_len = if v6 {
        Some(column("prefix_len")?)
    } else {
        None
    };
    let c_hostname = optional("hostname");
    let c_state = optional("state");
    let mut out = LeaseFile::default();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, csv::Position::line);
            err(line, e.to_string())
        })?;
        out.rows += 1;
        let line = record.position().map_or(0, csv::Position::line);
        let field = |idx: usize, name: &str| -> Result<&str, InventoryError> {
            record
                .get(idx)
                .ok_or_else(|| err(line, format!("field `{name}`: missing")))
        };
        let opt = |idx: Option<usize>| idx.and_then(|i| record.get(i)).unwrap_or("");
        let int = |idx: usize, name: &str| -> Result<i64, InventoryError> {
            let raw = field(idx, name)?;
            raw.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
                err(
                    line,
                    format!("field `{name}`: not a non-negative integer: {raw:?}"),
                )
            })
        };
        let addr_raw = field(c_address, "address")?;
        let address: IpAddr = addr_raw.parse().map_err(|_| {
            err(
                line,
                format!("field `address`: not an IP address: {addr_raw:?}"),
            )
        })?;
        let mut skip = |reason: String| {
            out.skipped.push(format!(
                "{}:{line}: {addr_raw}: {reason}; row skipped",
                path.display()
            ));
        };
        let state = opt(c_state);
        if !state.is_empty() && state != "0" {
            let name = match state {
                "1" => "declined",
                "2" => "expired-reclaimed",
                "3" => "released",
                _ => "not default",
            };
            skip(format!("state {state} ({name}): not bound to a client"));
            continue;
        }
        // Lease type and prefix (v6 only).
        let mut prefix_len = None;
        if let (Some(ct), Some(cp)) = (c_lease_type, c_prefix_len) {
            let lease_type = int(ct, "lease_type")?;
            match lease_type {
                0 | 1 => {}
                2 => {
                    let len = int(cp, "prefix_len")?;
                    let len = u8::try_from(len)
                        .ok()
                        .filter(|l| *l <= MAX_PREFIX_LEN && address.is_ipv6())
                        .ok_or_else(|| {
                            err(
                                line,
                                format!(
                                    "field `prefix_len`: not an IPv6 prefix length (0..=128): {len}"
                                ),
                            )
                        })?;
                    if len < MAX_PREFIX_LEN {
                        prefix_len = Some(len);
                    }
                }
                other => {
                    skip(format!(
                        "lease_type {other} is none of 0 (IA_NA), 1 (IA_TA), 2 (IA_PD)"
                    ));
                    continue;
                }
            }
        }
        // The client's MAC: hwaddr, else the DUID's (v6) or the client identifier's (v4).
        let hw_raw = opt(c_hwaddr);
        let hwaddr = if !hw_raw.is_empty() {
            normalize_mac(hw_raw).ok_or_else(|| {
                err(
                    line,
                    format!("field `hwaddr`: not a MAC address: {hw_raw:?}"),
                )
            })?
        } else if let Some(cd) = c_duid {
            let duid = field(cd, "duid")?;
            match mac_from_duid(duid).map_err(|m| err(line, format!("field `duid`: {m}")))? {
                Some(mac) => mac,
                None => {
                    skip(format!(
                        "no hwaddr, and DUID type {} carries no Ethernet MAC (only DUID-LLT and \
                         DUID-LL of hardware type 1 do)",
                        duid_type_name(duid)
                    ));
                    continue;
                }
            }
        } else {
            let client_id = opt(c_client_id);
            let from_id = hex_octets(client_id).and_then(|o| match o.as_slice() {
                [1, addr @ ..] => mac_of(1, addr),
                _ => None,
            });
            match from_id {
                Some(mac) => mac,
                None => {
                    skip("no hwaddr, and no client identifier of type 1 (a MAC)".to_string());
                    continue;
                }
            }
        };
        let lifetime = int(c_lifetime, "valid_lifetime")?;
        let expire = int(c_expire, "expire")?;
        let text = match prefix_len {
            Some(len) => format!("{address}/{len}"),
            None => address.to_string(),
        };
        if lifetime == 0 {
            out.ended.push(LeaseEnd {
                address: text,
                hwaddr,
                at_us: expire.saturating_mul(1_000_000),
            });
            continue;
        }
        out.leases.push(Lease {
            address: prefix_len.map_or(address, |len| network(address, len)),
            prefix_len,
            hwaddr,
            valid_from_us: expire.saturating_sub(lifetime).saturating_mul(1_000_000),
            valid_until_us: expire.saturating_mul(1_000_000),
            hostname: c_hostname
                .and_then(|i| record.get(i))
                .filter(|h| !h.is_empty())
                .map(str::to_string),
        });
    }
    Ok(out)
}

/// `1 (DUID-LLT)`, `2 (DUID-EN)`, ... for a skipped row's reason.
fn duid_type_name(duid: &str) -> String {
    let t = hex_octets(duid)
        .and_then(|o| Some(u16::from_be_bytes([*o.first()?, *o.get(1)?])))
        .unwrap_or(0);
    let name = match t {
        1 => "DUID-LLT",
        2 => "DUID-EN",
        3 => "DUID-LL",
        4 => "DUID-UUID",
        _ => "unknown",
    };
    format!("{t} ({name})")
}

/// The first address of `addr`'s `/len` network.
pub fn network(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            IpAddr::V6((bits & mask).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_bad_rows() {
        let csv = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n\
                   10.1.0.20,a4:5e:60:00:00:01,01:a4,3600,1714561200,1,0,0,iphone-1,0,\n\
                   10.1.0.21,a4:5e:60:00:00:02,,3600,1714561200,1,0,0,,2,\n\
                   10.1.0.22,,01:a4:5e:60:00:00:03,3600,1714561200,1,0,0,,0,\n\
                   10.1.0.23,,ff:00:01,3600,1714561200,1,0,0,,0,\n";
        let file = parse_kea_leases(csv.as_bytes(), Path::new("l.csv")).unwrap();
        assert_eq!(file.rows, 4);
        assert_eq!(file.leases.len(), 2);
        assert_eq!(
            file.leases[0].valid_from_us,
            (1_714_561_200 - 3600) * 1_000_000
        );
        assert_eq!(file.leases[0].hostname.as_deref(), Some("iphone-1"));
        assert_eq!(file.leases[1].hwaddr, "a4:5e:60:00:00:03", "from client_id");
        assert_eq!(
            file.skipped,
            [
                "l.csv:3: 10.1.0.21: state 2 (expired-reclaimed): not bound to a client; row skipped",
                "l.csv:5: 10.1.0.23: no hwaddr, and no client identifier of type 1 (a MAC); row skipped"
            ]
        );
        let bad = "address,hwaddr,valid_lifetime,expire\n10.1.0.20,a4:5e:60:00:00:01,3600,soon\n";
        let e = parse_kea_leases(bad.as_bytes(), Path::new("l.csv")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "l.csv:2: field `expire`: not a non-negative integer: \"soon\""
        );
        let e = parse_kea_leases(b"ip,mac\n", Path::new("l.csv")).unwrap_err();
        assert!(e.to_string().contains("missing column `address`"));
    }

    #[test]
    fn duid_macs() {
        // DUID-LLT, Ethernet, time 0x2a1b3c4d.
        assert_eq!(
            mac_from_duid("00:01:00:01:2a:1b:3c:4d:a4:5e:60:c1:00:61").unwrap(),
            Some("a4:5e:60:c1:00:61".into())
        );
        // DUID-LL, Ethernet, Kea's short octets.
        assert_eq!(
            mac_from_duid("0:3:0:1:a4:5e:60:c1:0:62").unwrap(),
            Some("a4:5e:60:c1:00:62".into())
        );
        // DUID-EN, DUID-UUID, DUID-LL of another hardware type (6, IEEE 802).
        assert_eq!(
            mac_from_duid("00:02:00:00:01:37:01:02:03:04").unwrap(),
            None
        );
        assert_eq!(
            mac_from_duid("00:04:6f:1c:1e:2b:74:84:4c:35:a5:e3:2c:50:4d:6b:51:02").unwrap(),
            None
        );
        assert_eq!(
            mac_from_duid("00:03:00:06:a4:5e:60:c1:00:62").unwrap(),
            None
        );
        // DUID-LLT cut short, and not hex.
        assert_eq!(mac_from_duid("00:01:00:01:2a:1b").unwrap(), None);
        assert!(mac_from_duid("00:01").is_err());
        assert!(mac_from_duid("zz:01:00:01").is_err());
        assert!(mac_from_duid("").is_err());
    }

    #[test]
    fn v6_rows() {
        let csv = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source,pool_id\n\
            2001:db8:1::10,00:01:00:01:2a:1b:3c:4d:a4:5e:60:c1:00:61,4000,1714554000,1,3000,0,1,128,0,0,,,0,,,,0\n\
            2001:db8:1::11,00:02:00:00:01:37:01:02:03:04,4000,1714554000,1,3000,0,1,128,0,0,,a4:5e:60:c1:00:71,0,,1,4,0\n\
            2001:db8:1::12,00:02:00:00:01:37:01:02:03:05,4000,1714554000,1,3000,0,1,128,0,0,,,0,,,,0\n\
            2001:db8:ff:100::,00:03:00:01:a4:5e:60:c1:00:81,4000,1714554000,1,3000,2,7,56,0,0,,,0,,,,0\n\
            2001:db8:1::10,00:01:00:01:2a:1b:3c:4d:a4:5e:60:c1:00:61,0,1714552000,1,3000,0,1,128,0,0,,,0,,,,0\n\
            2001:db8:1::13,00,0,1714552000,1,0,0,0,128,0,0,,,1,,,,0\n";
        let file = parse_kea_leases(csv.as_bytes(), Path::new("l6.csv")).unwrap();
        assert_eq!(file.rows, 6);
        let got: Vec<(String, &str)> = file
            .leases
            .iter()
            .map(|l| (l.address_text(), l.hwaddr.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("2001:db8:1::10".to_string(), "a4:5e:60:c1:00:61"),
                ("2001:db8:1::11".to_string(), "a4:5e:60:c1:00:71"),
                ("2001:db8:ff:100::/56".to_string(), "a4:5e:60:c1:00:81"),
            ]
        );
        assert_eq!(
            file.ended,
            [LeaseEnd {
                address: "2001:db8:1::10".into(),
                hwaddr: "a4:5e:60:c1:00:61".into(),
                at_us: 1_714_552_000_000_000,
            }]
        );
        assert_eq!(file.skipped.len(), 2, "{:?}", file.skipped);
        assert!(file.skipped[0]
            .starts_with("l6.csv:4: 2001:db8:1::12: no hwaddr, and DUID type 2 (DUID-EN)"));
        assert!(file.skipped[1].contains("state 1 (declined)"));
        let bad = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len\n\
                   2001:db8::1,00:01:zz,4000,1714554000,1,3000,0,1,128\n";
        let e = parse_kea_leases(bad.as_bytes(), Path::new("l6.csv")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("l6.csv:2: field `duid`: not a DUID"),
            "{e}"
        );
        let bad = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len\n\
                   10.0.0.1,00:03:00:01:a4:5e:60:c1:00:81,4000,1714554000,1,3000,2,1,56\n";
        let e = parse_kea_leases(bad.as_bytes(), Path::new("l6.csv")).unwrap_err();
        assert!(e.to_string().contains("field `prefix_len`"), "{e}");
    }

    #[test]
    fn networks() {
        let n = |a: &str, l| network(a.parse().unwrap(), l).to_string();
        assert_eq!(n("2001:db8:ff:1ab::9", 56), "2001:db8:ff:100::");
        assert_eq!(n("2001:db8:ff:1ab::9", 0), "::");
        assert_eq!(n("2001:db8:ff:1ab::9", 128), "2001:db8:ff:1ab::9");
        assert_eq!(n("10.1.2.3", 24), "10.1.2.0");
    }
}
