//! ISC Kea memfile lease CSV → [`Lease`] (address, hardware address, validity interval).
//!
//! Owns: reading `kea-leases4.csv` / `kea-leases6.csv` (header `address,hwaddr,client_id,
//! valid_lifetime,expire,subnet_id,...,state,...`), by column name. A lease is valid from
//! `expire - valid_lifetime` to `expire` (Unix seconds). Rows in state 1 (declined) or 2
//! (expired-reclaimed) are skipped; rows without a hardware address are skipped.
//! Must not: join leases to devices (the attribution index does that through Wi-Fi MACs).

use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{normalize_mac, InventoryError};

/// One DHCP lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Leased address.
    pub address: IpAddr,
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

/// Reads a Kea lease CSV file.
pub fn load_kea_leases(path: &Path) -> Result<Vec<Lease>, InventoryError> {
    let bytes = crate::input_file::read_bounded(path, crate::input_file::MAX_INPUT_FILE_BYTES)
        .map_err(|source| InventoryError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    parse_kea_leases(&bytes, path)
}

/// Parses Kea lease CSV bytes; `path` only names errors.
pub fn parse_kea_leases(bytes: &[u8], path: &Path) -> Result<Vec<Lease>, InventoryError> {
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
    let column = |name: &str| -> Result<usize, InventoryError> {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            err(
                1,
                format!("missing column `{name}` (is this a Kea lease file?)"),
            )
        })
    };
    let c_address = column("address")?;
    let c_hwaddr = column("hwaddr")?;
    let c_lifetime = column("valid_lifetime")?;
    let c_expire = column("expire")?;
    let c_hostname = headers.iter().position(|h| h == "hostname");
    let c_state = headers.iter().position(|h| h == "state");
    let mut leases = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, csv::Position::line);
            err(line, e.to_string())
        })?;
        let line = record.position().map_or(0, csv::Position::line);
        let field = |idx: usize, name: &str| -> Result<&str, InventoryError> {
            record
                .get(idx)
                .ok_or_else(|| err(line, format!("field `{name}`: missing")))
        };
        if let Some(idx) = c_state {
            let state = record.get(idx).unwrap_or("0");
            if !state.is_empty() && state != "0" {
                continue;
            }
        }
        let hw_raw = field(c_hwaddr, "hwaddr")?;
        if hw_raw.is_empty() {
            continue;
        }
        let hwaddr = normalize_mac(hw_raw).ok_or_else(|| {
            err(
                line,
                format!("field `hwaddr`: not a MAC address: {hw_raw:?}"),
            )
        })?;
        let addr_raw = field(c_address, "address")?;
        let address: IpAddr = addr_raw.parse().map_err(|_| {
            err(
                line,
                format!("field `address`: not an IP address: {addr_raw:?}"),
            )
        })?;
        let int = |idx: usize, name: &str| -> Result<i64, InventoryError> {
            let raw = field(idx, name)?;
            raw.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
                err(
                    line,
                    format!("field `{name}`: not a non-negative integer: {raw:?}"),
                )
            })
        };
        let lifetime = int(c_lifetime, "valid_lifetime")?;
        let expire = int(c_expire, "expire")?;
        let valid_until_us = expire.saturating_mul(1_000_000);
        let valid_from_us = expire.saturating_sub(lifetime).saturating_mul(1_000_000);
        leases.push(Lease {
            address,
            hwaddr,
            valid_from_us,
            valid_until_us,
            hostname: c_hostname
                .and_then(|i| record.get(i))
                .filter(|h| !h.is_empty())
                .map(str::to_string),
        });
    }
    Ok(leases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_bad_rows() {
        let csv = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n\
                   10.1.0.20,a4:5e:60:00:00:01,01:a4,3600,1714561200,1,0,0,iphone-1,0,\n\
                   10.1.0.21,a4:5e:60:00:00:02,,3600,1714561200,1,0,0,,2,\n";
        let leases = parse_kea_leases(csv.as_bytes(), Path::new("l.csv")).unwrap();
        assert_eq!(leases.len(), 1);
        assert_eq!(leases[0].valid_from_us, (1_714_561_200 - 3600) * 1_000_000);
        assert_eq!(leases[0].hostname.as_deref(), Some("iphone-1"));
        let bad = "address,hwaddr,valid_lifetime,expire\n10.1.0.20,a4:5e:60:00:00:01,3600,soon\n";
        let e = parse_kea_leases(bad.as_bytes(), Path::new("l.csv")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "l.csv:2: field `expire`: not a non-negative integer: \"soon\""
        );
        let e = parse_kea_leases(b"ip,mac\n", Path::new("l.csv")).unwrap_err();
        assert!(e.to_string().contains("missing column `address`"));
    }
}
