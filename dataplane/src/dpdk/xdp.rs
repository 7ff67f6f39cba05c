//! The XDP bypass program of `net_af_xdp` ports and its map of bypassed flow directions.
//!
//! Owns: the compiled program (`xdp/bypass.c`, built by `build.rs` with clang's BPF target and
//! embedded here), writing it where the AF_XDP PMD's `xdp_prog=` devarg can load it, finding
//! its `ptl_bypass` map on the interface once the PMD has attached it, and the three map
//! operations the worker needs: insert a direction, peek at its counters (is an idle-looking
//! flow still sending?), take (read and delete) them. Must not: run per packet (one insert per
//! judged flow, a peek per bypassed flow due to expire, one take per bypassed flow's end), or
//! decide which flows to bypass (the worker and its observer do).

use portolan_dpdk_sys as sys;
use std::ffi::CString;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The compiled XDP program (an eBPF ELF object).
pub const BYPASS_PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ptl_xdp_bypass.o"));

/// Name of the program's map of bypassed directions.
pub const BYPASS_MAP_NAME: &str = "ptl_bypass";

/// Entries the map holds (`max_entries` in `xdp/bypass.c`): two per bypassed flow.
pub const BYPASS_MAP_ENTRIES: usize = 65_536;

/// Bytes of one map entry's key and value (hash-map memory per bypassed flow direction, before
/// the kernel's per-element overhead).
pub const BYPASS_ENTRY_BYTES: usize =
    std::mem::size_of::<BypassKey>() + std::mem::size_of::<BypassCounters>();

/// Writes [`BYPASS_PROGRAM`] to `dir/ptl_xdp_bypass.o` and returns the path (for
/// `xdp_prog=`).
pub fn write_bypass_program(dir: &Path) -> std::io::Result<PathBuf> {
    let path = dir.join("ptl_xdp_bypass.o");
    std::fs::write(&path, BYPASS_PROGRAM)?;
    Ok(path)
}

/// `IPPROTO_TCP`.
pub const PROTO_TCP: u8 = 6;
/// `IPPROTO_UDP`.
pub const PROTO_UDP: u8 = 17;

/// A key of mode `MODE_ALL` drops every packet of its direction (except TCP FIN/RST).
pub const MODE_ALL: u8 = 0;
/// A key of mode `MODE_EMPTY` drops only the direction's packets without payload.
pub const MODE_EMPTY: u8 = 1;

/// One direction of a TCP or UDP flow, laid out as `struct ptl_bypass_key` in `xdp/bypass.c`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BypassKey {
    src: [u8; 16],
    dst: [u8; 16],
    src_port_be: u16,
    dst_port_be: u16,
    family: u8,
    proto: u8,
    mode: u8,
    pad: u8,
}

impl BypassKey {
    /// The same direction with mode `mode` ([`MODE_ALL`], [`MODE_EMPTY`]).
    pub fn with_mode(mut self, mode: u8) -> BypassKey {
        self.mode = mode;
        self
    }

    /// The direction `src:src_port → dst:dst_port` of protocol `proto` ([`PROTO_TCP`],
    /// [`PROTO_UDP`]); `None` when the families differ.
    pub fn new(
        proto: u8,
        src: IpAddr,
        src_port: u16,
        dst: IpAddr,
        dst_port: u16,
    ) -> Option<BypassKey> {
        let mut key = BypassKey {
            src_port_be: src_port.to_be(),
            dst_port_be: dst_port.to_be(),
            proto,
            ..BypassKey::default()
        };
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                key.src[..4].copy_from_slice(&s.octets());
                key.dst[..4].copy_from_slice(&d.octets());
                key.family = 4;
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                key.src = s.octets();
                key.dst = d.octets();
                key.family = 6;
            }
            _ => return None,
        }
        Some(key)
    }
}

/// What the driver dropped for one direction, as `struct ptl_bypass_counters`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BypassCounters {
    /// Packets dropped in the driver.
    pub packets: u64,
    /// Their frame bytes.
    pub bytes: u64,
    /// `CLOCK_MONOTONIC` time of the last one, ns (0: none).
    pub last_ns: u64,
}

/// Why a map operation failed (the negated errno of the bpf call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bpf map call failed: {}", std::io::Error::from_raw_os_error(*.0))]
pub struct BpfError(pub i32);

/// The `ptl_bypass` map of the program attached to one interface.
#[derive(Debug)]
pub struct XdpBypassMap {
    fd: OwnedFd,
    iface: String,
}

/// `BPF_NOEXIST`: insert only.
const BPF_NOEXIST: u64 = 1;

/// The map `name` of the XDP program attached to `iface`.
pub(crate) fn program_map(iface: &str, name: &str) -> Result<OwnedFd, String> {
    let c_iface = CString::new(iface).map_err(|_| format!("interface {iface:?}: NUL byte"))?;
    let c_name = CString::new(name).map_err(|_| format!("map name {name:?}: NUL byte"))?;
    // SAFETY: both pointers are NUL-terminated strings valid for the call; the function
    // returns an fd it opened (owned by the caller) or -errno.
    let fd = unsafe { sys::portolan_xdp_map_fd(c_iface.as_ptr(), c_name.as_ptr()) };
    if fd < 0 {
        return Err(format!(
            "interface {iface}: no `{name}` map of an attached XDP program ({})",
            std::io::Error::from_raw_os_error(-fd)
        ));
    }
    // SAFETY: fd is a fresh descriptor this process owns and nothing else closes.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl XdpBypassMap {
    /// The map of the XDP program attached to `iface` (after the AF_XDP port has started).
    pub fn open(iface: &str) -> Result<XdpBypassMap, String> {
        let fd = program_map(iface, BYPASS_MAP_NAME)?;
        Ok(XdpBypassMap {
            fd,
            iface: iface.to_string(),
        })
    }

    /// The interface whose program owns the map.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Puts `key` in the map with zero counters: the driver drops that direction's payload
    /// packets from now on.
    pub fn insert(&self, key: &BypassKey) -> Result<(), BpfError> {
        let zero = BypassCounters::default();
        // SAFETY: key and value point to #[repr(C)] values of the map's key and value sizes,
        // valid for the call; the fd is open.
        let r = unsafe {
            sys::portolan_bpf_map_update(
                self.fd.as_raw_fd(),
                (key as *const BypassKey).cast(),
                (&zero as *const BypassCounters).cast(),
                BPF_NOEXIST,
            )
        };
        if r < 0 {
            Err(BpfError(-r))
        } else {
            Ok(())
        }
    }

    /// Reads `key`'s counters, leaving them in the map.
    pub fn peek(&self, key: &BypassKey) -> Result<BypassCounters, BpfError> {
        let mut out = BypassCounters::default();
        // SAFETY: as in `insert`; `out` is writable for the value's size.
        let r = unsafe {
            sys::portolan_bpf_map_lookup(
                self.fd.as_raw_fd(),
                (key as *const BypassKey).cast(),
                (&mut out as *mut BypassCounters).cast(),
            )
        };
        if r < 0 {
            Err(BpfError(-r))
        } else {
            Ok(out)
        }
    }

    /// Reads and removes `key`'s counters (one syscall where the kernel has it).
    pub fn take(&self, key: &BypassKey) -> Result<BypassCounters, BpfError> {
        let mut out = BypassCounters::default();
        // SAFETY: as in `insert`; `out` is writable for the value's size.
        let r = unsafe {
            sys::portolan_bpf_map_take(
                self.fd.as_raw_fd(),
                (key as *const BypassKey).cast(),
                (&mut out as *mut BypassCounters).cast(),
            )
        };
        if r < 0 {
            Err(BpfError(-r))
        } else {
            Ok(out)
        }
    }
}

/// `CLOCK_MONOTONIC` now, ns (the clock of [`BypassCounters::last_ns`]).
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_layout_matches_the_c_struct() {
        assert_eq!(std::mem::size_of::<BypassKey>(), 40);
        assert_eq!(std::mem::size_of::<BypassCounters>(), 24);
        let k = BypassKey::new(
            PROTO_UDP,
            "10.0.0.1".parse().unwrap(),
            443,
            "10.0.0.2".parse().unwrap(),
            51000,
        )
        .unwrap();
        assert_eq!(&k.src[..4], &[10, 0, 0, 1]);
        assert_eq!(k.src_port_be.to_ne_bytes(), 443u16.to_be_bytes());
        assert_eq!((k.family, k.proto), (4, 17));
        assert!(BypassKey::new(
            PROTO_TCP,
            "10.0.0.1".parse().unwrap(),
            1,
            "::1".parse().unwrap(),
            2
        )
        .is_none());
        assert!(BYPASS_PROGRAM.starts_with(b"\x7fELF"));
    }
}
