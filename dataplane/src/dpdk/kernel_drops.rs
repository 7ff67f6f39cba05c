//! Packets the kernel dropped on a `net_af_packet` or `net_af_xdp` port's sockets (their ring was
//! full) before DPDK saw them, which the PMDs of DPDK 22.11 do not report.
//!
//! - `net_af_packet` never reads its sockets' `PACKET_STATISTICS` (its `imissed` stays 0): when a
//!   worker falls behind and the socket's ring is full, the kernel counts the packet in
//!   `tp_drops` and nobody else does. [`PacketSocketDrops`] finds the sockets (the `AF_PACKET`
//!   descriptors in `/proc/self/fd` bound to the port's interface) and reads the counter itself.
//!   Reading resets the kernel's counters, so this is their only reader and keeps the total;
//!   each read revalidates the descriptors it found and looks again when one no longer matches.
//! - `net_af_xdp` reads its sockets' `XDP_STATISTICS` but reports only `rx_dropped` (as
//!   `imissed`); a packet dropped because the socket's RX ring was full is counted by the
//!   kernel in `rx_ring_full` only. [`XdpSocketDrops`] sums that over the process's `AF_XDP`
//!   descriptors (the counters are cumulative). An XDP socket has no `getsockname`, and the
//!   `xdp_diag` dump that would tie it to its interface is not in every kernel (not in the
//!   test hosts'), so the counter exists only when the appliance has one `net_af_xdp` port.
//!
//! Owns: finding a port's sockets and summing their drops. Must not: run on a worker lcore or
//! the hot path (it makes system calls; the statistics readers call it), or touch a socket in
//! any other way than `getsockopt`/`getsockname`.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::sync::Mutex;

use nix::libc;

/// `SOL_PACKET` (linux/socket.h).
const SOL_PACKET: libc::c_int = 263;
/// `PACKET_STATISTICS` (linux/if_packet.h).
const PACKET_STATISTICS: libc::c_int = 6;
/// `SO_DOMAIN` (asm-generic/socket.h).
const SO_DOMAIN: libc::c_int = 39;
/// `SOL_XDP` (linux/socket.h), `XDP_STATISTICS` (linux/if_xdp.h).
const SOL_XDP: libc::c_int = 283;
const XDP_STATISTICS: libc::c_int = 7;

/// `struct tpacket_stats` (linux/if_packet.h; `tpacket_stats_v3` starts with the same two
/// fields, and the kernel copies no more than asked).
#[repr(C)]
#[derive(Default)]
struct TpacketStats {
    tp_packets: u32,
    tp_drops: u32,
}

/// The kernel's drop counter of one port's sockets.
#[derive(Debug)]
pub enum KernelSocketDrops {
    /// A `net_af_packet` port.
    Packet(PacketSocketDrops),
    /// The one `net_af_xdp` port.
    Xdp(XdpSocketDrops),
}

impl KernelSocketDrops {
    /// The counter of the port with device string `vdev`, when it is a `net_af_packet` port, or
    /// a `net_af_xdp` port and `af_xdp_ports` (the appliance's number of them) is 1.
    pub fn for_vdev(vdev: &str, af_xdp_ports: usize) -> Option<KernelSocketDrops> {
        if let Some(iface) = af_packet_iface(vdev) {
            return PacketSocketDrops::for_iface(iface).map(KernelSocketDrops::Packet);
        }
        let iface = af_xdp_iface(vdev)?;
        (af_xdp_ports == 1).then(|| {
            KernelSocketDrops::Xdp(XdpSocketDrops {
                iface: iface.to_string(),
            })
        })
    }

    /// The port's interface.
    pub fn iface(&self) -> &str {
        match self {
            KernelSocketDrops::Packet(p) => p.iface(),
            KernelSocketDrops::Xdp(x) => &x.iface,
        }
    }

    /// Packets the kernel dropped on the port's sockets because their ring was full; an error
    /// when the port has no socket in this process (yet) or one cannot be read.
    pub fn dropped(&self) -> std::io::Result<u64> {
        match self {
            KernelSocketDrops::Packet(p) => p.dropped(),
            KernelSocketDrops::Xdp(x) => x.dropped(),
        }
    }
}

/// The `iface=` of a device string whose driver name starts with one of `drivers`.
fn vdev_iface<'a>(vdev: &'a str, drivers: &[&str]) -> Option<&'a str> {
    let mut parts = vdev.split(',');
    let driver = parts.next()?.trim();
    if !drivers.iter().any(|d| driver.starts_with(d)) {
        return None;
    }
    parts.find_map(|kv| kv.trim().strip_prefix("iface="))
}

/// The `iface=` of a `net_af_xdp` device string (`net_af_xdp0,iface=eth1,queue_count=2`).
pub fn af_xdp_iface(vdev: &str) -> Option<&str> {
    vdev_iface(vdev, &["net_af_xdp", "eth_af_xdp"])
}

fn no_socket(iface: &str, kind: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("no {kind} socket of this process is bound to {iface}"),
    )
}

/// The address family of descriptor `fd` when it is a socket.
fn socket_domain(fd: RawFd) -> Option<libc::c_int> {
    let mut domain: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `domain` is a writable c_int of `len` bytes. On a descriptor that is not a socket
    // the call fails (ENOTSOCK) without side effects.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_DOMAIN,
            (&mut domain as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (ret == 0).then_some(domain)
}

/// This process's open descriptors.
fn own_descriptors() -> std::io::Result<Vec<RawFd>> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        if let Some(fd) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        {
            fds.push(fd);
        }
    }
    Ok(fds)
}

/// The ring-full drop counter of the process's XDP sockets (see the module's doc).
#[derive(Debug)]
pub struct XdpSocketDrops {
    iface: String,
}

impl XdpSocketDrops {
    /// `rx_ring_full` summed over the process's `AF_XDP` sockets (cumulative counters).
    fn dropped(&self) -> std::io::Result<u64> {
        let mut found = false;
        let mut full = 0u64;
        for fd in own_descriptors()? {
            if socket_domain(fd) != Some(libc::AF_XDP) {
                continue;
            }
            let mut stats: libc::xdp_statistics =
                // SAFETY: an all-zero xdp_statistics is a valid value of this plain C struct.
                unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::xdp_statistics>() as libc::socklen_t;
            // SAFETY: `stats` is a writable buffer of `len` bytes; the kernel writes at most
            // `len` bytes (fewer on a kernel without `rx_ring_full`, which leaves it 0).
            let ret = unsafe {
                libc::getsockopt(
                    fd,
                    SOL_XDP,
                    XDP_STATISTICS,
                    (&mut stats as *mut libc::xdp_statistics).cast(),
                    &mut len,
                )
            };
            if ret != 0 {
                return Err(std::io::Error::last_os_error());
            }
            found = true;
            full += stats.rx_ring_full;
        }
        if !found {
            return Err(no_socket(&self.iface, "AF_XDP"));
        }
        Ok(full)
    }
}

/// The kernel's drop counter of the packet sockets bound to one interface.
#[derive(Debug)]
pub struct PacketSocketDrops {
    iface: String,
    ifindex: u32,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    fds: Vec<RawFd>,
    dropped: u64,
}

/// The `iface=` of a `net_af_packet` device string (`net_af_packet0,iface=eth1,qpairs=2`).
pub fn af_packet_iface(vdev: &str) -> Option<&str> {
    vdev_iface(vdev, &["net_af_packet", "eth_af_packet"])
}

impl PacketSocketDrops {
    /// The counter of `iface`'s packet sockets in this process; `None` when no interface has
    /// that name.
    pub fn for_iface(iface: &str) -> Option<PacketSocketDrops> {
        let name = CString::new(iface).ok()?;
        // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        (ifindex != 0).then(|| PacketSocketDrops {
            iface: iface.to_string(),
            ifindex,
            state: Mutex::new(State::default()),
        })
    }

    /// The interface.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Packets the kernel dropped on the interface's packet sockets since this counter was
    /// made (the sum over every read); an error when there is no such socket or one cannot be
    /// read.
    pub fn dropped(&self) -> std::io::Result<u64> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| std::io::Error::other("packet socket counter lock poisoned"))?;
        if state.fds.is_empty() || !state.fds.iter().all(|&fd| self.is_ours(fd)) {
            state.fds = self.find_sockets()?;
        }
        if state.fds.is_empty() {
            return Err(no_socket(&self.iface, "packet"));
        }
        let fds = state.fds.clone();
        for fd in fds {
            let mut stats = TpacketStats::default();
            let mut len = std::mem::size_of::<TpacketStats>() as libc::socklen_t;
            // SAFETY: `stats` is a writable buffer of `len` bytes; the kernel writes at most
            // `len` bytes and updates `len`. `fd` was just checked to be a packet socket.
            let ret = unsafe {
                libc::getsockopt(
                    fd,
                    SOL_PACKET,
                    PACKET_STATISTICS,
                    (&mut stats as *mut TpacketStats).cast(),
                    &mut len,
                )
            };
            if ret != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Added at once: the read has reset the kernel's counter.
            state.dropped += u64::from(stats.tp_drops);
        }
        Ok(state.dropped)
    }

    /// The packet sockets of this process bound to the interface.
    fn find_sockets(&self) -> std::io::Result<Vec<RawFd>> {
        Ok(own_descriptors()?
            .into_iter()
            .filter(|&fd| self.is_ours(fd))
            .collect())
    }

    /// True when `fd` is an `AF_PACKET` socket bound to the interface.
    fn is_ours(&self, fd: RawFd) -> bool {
        if socket_domain(fd) != Some(libc::AF_PACKET) {
            return false;
        }
        // SAFETY: an all-zero sockaddr_ll is a valid value of this plain C struct.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `addr` is a writable sockaddr_ll of `len` bytes, the address of a packet
        // socket; the kernel writes at most `len` bytes.
        let ret = unsafe {
            libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_ll).cast(), &mut len)
        };
        ret == 0 && u32::try_from(addr.sll_ifindex).is_ok_and(|i| i == self.ifindex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_iface_of_an_af_packet_device_only() {
        assert_eq!(
            af_packet_iface("net_af_packet0,iface=veth1,qpairs=2"),
            Some("veth1")
        );
        assert_eq!(
            af_packet_iface("net_af_packet1, qpairs=1, iface=eth0"),
            Some("eth0")
        );
        assert_eq!(af_packet_iface("net_af_xdp0,iface=veth1"), None);
        assert_eq!(af_packet_iface("net_pcap0,rx_pcap=x.pcap"), None);
        assert_eq!(af_packet_iface("net_af_packet0"), None);
        assert_eq!(
            af_xdp_iface("net_af_xdp0,iface=veth1,queue_count=1"),
            Some("veth1")
        );
        assert_eq!(af_xdp_iface("net_af_packet0,iface=veth1"), None);
    }

    #[test]
    fn an_af_xdp_port_has_a_counter_only_when_it_is_the_only_one() {
        let vdev = "net_af_xdp0,iface=lo";
        assert!(matches!(
            KernelSocketDrops::for_vdev(vdev, 1),
            Some(KernelSocketDrops::Xdp(_))
        ));
        assert!(KernelSocketDrops::for_vdev(vdev, 2).is_none());
        assert!(matches!(
            KernelSocketDrops::for_vdev("net_af_packet0,iface=lo", 2),
            Some(KernelSocketDrops::Packet(_))
        ));
        assert!(KernelSocketDrops::for_vdev("net_pcap0,rx_pcap=x.pcap", 0).is_none());
        assert!(KernelSocketDrops::for_vdev("net_af_packet0,iface=no-such-if", 0).is_none());
        // No XDP socket in this process: an error naming the interface, not a zero.
        let err = KernelSocketDrops::for_vdev(vdev, 1)
            .unwrap()
            .dropped()
            .unwrap_err();
        assert!(err.to_string().contains("bound to lo"), "{err}");
    }

    /// A packet socket on `lo` that is never read fills its receive buffer: the datagrams past
    /// it are the kernel's `tp_drops`, and the counter finds the socket and sums them (reads
    /// reset the kernel's counter; the total keeps growing). Needs CAP_NET_RAW; skipped
    /// (printed) without it.
    #[test]
    fn drops_on_a_full_packet_socket_are_counted() {
        // SAFETY: plain socket(2) call; the descriptor is closed below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                i32::from((libc::ETH_P_ALL as u16).to_be()),
            )
        };
        if fd < 0 {
            eprintln!(
                "SKIPPED: no packet socket: {}",
                std::io::Error::last_os_error()
            );
            return;
        }
        let counter = PacketSocketDrops::for_iface("lo").expect("lo exists");
        // SAFETY: an all-zero sockaddr_ll is valid; bind reads `len` bytes of it.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = counter.ifindex as i32;
        let small: libc::c_int = 4096;
        // SAFETY: valid pointers and lengths for setsockopt and bind on our own socket.
        unsafe {
            assert_eq!(
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    (&small as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                ),
                0
            );
            assert_eq!(
                libc::bind(
                    fd,
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                ),
                0
            );
        }
        let before = counter.dropped().expect("read");
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..400 {
            let _ = udp.send_to(&[0u8; 512], sink.local_addr().unwrap());
        }
        let first = counter.dropped().expect("read");
        assert!(
            first - before >= 100,
            "400 datagrams into a 4 KiB buffer: {} counted",
            first - before
        );
        for _ in 0..400 {
            let _ = udp.send_to(&[0u8; 512], sink.local_addr().unwrap());
        }
        let second = counter.dropped().expect("read");
        assert!(second - first >= 100, "{first} then {second}");
        // SAFETY: closing the descriptor this test opened.
        unsafe { libc::close(fd) };
    }
}
