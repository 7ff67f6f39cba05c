//! Packets the kernel dropped on a `net_af_packet` port's sockets before DPDK saw them.
//!
//! DPDK 22.11's `net_af_packet` PMD never reads its sockets' `PACKET_STATISTICS` (its
//! `imissed` stays 0): when a worker falls behind and the socket's ring is full, the kernel
//! counts the packet in `tp_drops` and nobody else does. Those sockets live in this process, so
//! [`PacketSocketDrops`] finds them (the `AF_PACKET` sockets in `/proc/self/fd` bound to the
//! port's interface) and reads the counter itself. (`net_af_xdp` reads its own sockets'
//! `XDP_STATISTICS` and reports their `rx_dropped` as `imissed`.)
//!
//! Owns: finding a port's packet sockets and summing their drops. Must not: run on a worker
//! lcore or the hot path (it makes system calls; the statistics readers call it), or touch a
//! socket in any other way than `getsockopt`/`getsockname`.
//!
//! Reading `PACKET_STATISTICS` resets the kernel's counters, so this is their only reader and
//! keeps the running total; each read revalidates the descriptors it found (domain and
//! interface) and looks again when one no longer matches.

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

/// `struct tpacket_stats` (linux/if_packet.h; `tpacket_stats_v3` starts with the same two
/// fields, and the kernel copies no more than asked).
#[repr(C)]
#[derive(Default)]
struct TpacketStats {
    tp_packets: u32,
    tp_drops: u32,
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
    let mut parts = vdev.split(',');
    let driver = parts.next()?.trim();
    if !driver.starts_with("net_af_packet") && !driver.starts_with("eth_af_packet") {
        return None;
    }
    parts.find_map(|kv| kv.trim().strip_prefix("iface="))
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
    /// made (the sum over every read), or the error that stopped a descriptor from being read.
    pub fn dropped(&self) -> std::io::Result<u64> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| std::io::Error::other("packet socket counter lock poisoned"))?;
        if state.fds.is_empty() || !state.fds.iter().all(|&fd| self.is_ours(fd)) {
            state.fds = self.find_sockets()?;
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
        let mut fds = Vec::new();
        for entry in std::fs::read_dir("/proc/self/fd")? {
            let Some(fd) = entry?
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<RawFd>().ok())
            else {
                continue;
            };
            if self.is_ours(fd) {
                fds.push(fd);
            }
        }
        Ok(fds)
    }

    /// True when `fd` is an `AF_PACKET` socket bound to the interface.
    fn is_ours(&self, fd: RawFd) -> bool {
        let mut domain: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `domain` is a writable c_int of `len` bytes. On a descriptor that is not a
        // socket the call fails (ENOTSOCK) without side effects.
        let ret = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                SO_DOMAIN,
                (&mut domain as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if ret != 0 || domain != libc::AF_PACKET {
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
