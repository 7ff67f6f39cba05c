//! Ethdev ports: configuration of RX/TX queues, start/stop, statistics and device info, and the
//! per-queue [`RxQueue`] handle a worker polls.
//!
//! Owns: a port's lifetime from configure to close, and the rule that each RX queue is polled by
//! at most one thread at a time (a queue handle is handed out once until it is dropped). Must
//! not: interpret packets.

use super::mbuf::MbufBurst;
use super::{neg_errno, DpdkError, Eal, PktMbufPool};
use portolan_dpdk_sys as sys;
use serde::Serialize;
use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// How to configure a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConfig {
    /// Number of RX queues (at least 1).
    pub rx_queues: u16,
    /// Number of TX queues (0 up to the number of RX queues; see [`paired_tx_queues`]).
    pub tx_queues: u16,
    /// RX descriptors per queue (adjusted to the device's limits).
    pub rx_descriptors: u16,
    /// TX descriptors per queue (adjusted to the device's limits).
    pub tx_descriptors: u16,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 0,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
        }
    }
}

/// TX queues a receive-only port of driver `driver` must still set up: `net_af_xdp` (each XDP
/// socket is one RX/TX pair) and `net_tap` refuse a configuration whose RX and TX queue counts
/// differ, so they get one idle TX queue per RX queue; every other driver gets none.
pub fn paired_tx_queues(driver: &str, rx_queues: u16) -> u16 {
    if driver == "net_af_xdp" || driver == "net_tap" {
        rx_queues
    } else {
        0
    }
}

/// Counters from `rte_eth_stats_get` (per-queue counters for the configured RX queues only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Packets dropped by the device because the RX queues were full.
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// Packets received per RX queue.
    pub q_ipackets: Vec<u64>,
    /// Bytes received per RX queue.
    pub q_ibytes: Vec<u64>,
    /// Receive errors per RX queue.
    pub q_errors: Vec<u64>,
}

/// Static facts about a port, from `rte_eth_dev_info_get`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortInfo {
    /// Port id.
    pub port_id: u16,
    /// Device name (for example `net_pcap0`).
    pub name: String,
    /// Driver name (for example `net_pcap`).
    pub driver: String,
    /// Most RX queues the device supports.
    pub max_rx_queues: u16,
    /// Most TX queues the device supports.
    pub max_tx_queues: u16,
    /// RSS hash functions the device offers (0: no RSS).
    pub rss_offloads: u64,
    /// RX offload capabilities.
    pub rx_offload_capa: u64,
    /// Bytes of RSS key the device takes (0: no programmable key).
    pub hash_key_size: u8,
    /// Entries of the RSS redirection table (0: none).
    pub reta_size: u16,
}

/// Hardware RSS for [`Port::configure_with_rss`]: the key to program and the
/// `RTE_ETH_RSS_*` hash types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssSetup {
    /// The key, exactly the device's `hash_key_size` bytes.
    pub key: Vec<u8>,
    /// `rss_hf`: the hash types (a subset of the device's `flow_type_rss_offloads`).
    pub rss_hf: u64,
}

/// A configured ethdev port. Stopped and closed when it and all its queue handles are dropped.
#[derive(Debug)]
pub struct Port {
    inner: Arc<PortInner>,
}

#[derive(Debug)]
struct PortInner {
    id: u16,
    rx_queues: u16,
    tx_queues: u16,
    /// One flag per RX queue: a handle for it is alive.
    rx_claimed: Vec<AtomicBool>,
    /// Serialises start/stop.
    started: Mutex<bool>,
    /// The RSS key ethdev's stored configuration points to (empty without RSS).
    _rss_key: Vec<u8>,
    _pool: Arc<PktMbufPool>,
    _eal: Eal,
}

impl Drop for PortInner {
    fn drop(&mut self) {
        // SAFETY: no RxQueue handle is alive (each holds an Arc to this), so nothing polls the
        // port; stop and close are valid on a configured port whether or not it is started.
        unsafe {
            sys::rte_eth_dev_stop(self.id);
            sys::rte_eth_dev_close(self.id);
        }
    }
}

impl Port {
    /// Ids of all ports that probed successfully, in id order.
    pub fn available(_eal: &Eal) -> Vec<u16> {
        (0..sys::RTE_MAX_ETHPORTS as u16)
            // SAFETY: the EAL is initialised; the call only reads the port table.
            .filter(|&id| unsafe { sys::rte_eth_dev_is_valid_port(id) } == 1)
            .collect()
    }

    /// The id of the port with device name `name` (for example `net_pcap0`).
    pub fn id_by_name(_eal: &Eal, name: &str) -> Result<u16, DpdkError> {
        let c_name = CString::new(name).map_err(|_| DpdkError::NulInArgument(name.to_string()))?;
        let mut id = 0u16;
        // SAFETY: c_name is a valid C string and id a valid out-pointer for the call's duration.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(c_name.as_ptr(), &mut id) };
        if ret == 0 {
            Ok(id)
        } else {
            Err(DpdkError::NoSuchPort(name.to_string()))
        }
    }

    /// Device info of port `port_id`.
    pub fn info_of(_eal: &Eal, port_id: u16) -> Result<PortInfo, DpdkError> {
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: info is a valid, writable rte_eth_dev_info; the EAL is initialised.
        let ret = unsafe { sys::rte_eth_dev_info_get(port_id, &mut info) };
        if ret != 0 {
            return Err(port_err(port_id, "rte_eth_dev_info_get", ret));
        }
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name points to the driver's static NUL-terminated name.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        let mut name_buf = [0 as std::ffi::c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
        // SAFETY: name_buf has RTE_ETH_NAME_MAX_LEN bytes, the size the call requires.
        let ret = unsafe { sys::rte_eth_dev_get_name_by_port(port_id, name_buf.as_mut_ptr()) };
        let name = if ret == 0 {
            // SAFETY: on success the buffer holds a NUL-terminated name.
            unsafe { CStr::from_ptr(name_buf.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        } else {
            String::new()
        };
        Ok(PortInfo {
            port_id,
            name,
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            rss_offloads: info.flow_type_rss_offloads,
            rx_offload_capa: info.rx_offload_capa,
            hash_key_size: info.hash_key_size,
            reta_size: info.reta_size,
        })
    }

    /// Configures port `port_id` with `config` (no RSS, no offloads), sets up its queues with
    /// mbufs from `pool`, and leaves it stopped.
    pub fn configure(
        eal: &Eal,
        port_id: u16,
        config: &PortConfig,
        pool: &Arc<PktMbufPool>,
    ) -> Result<Port, DpdkError> {
        Port::configure_with_rss(eal, port_id, config, pool, None)
    }

    /// As [`Port::configure`], with hardware RSS over the RX queues when `rss` is given
    /// (`RTE_ETH_MQ_RX_RSS` with its key and hash types; the device fills its RETA
    /// round-robin).
    pub fn configure_with_rss(
        eal: &Eal,
        port_id: u16,
        config: &PortConfig,
        pool: &Arc<PktMbufPool>,
        rss: Option<&RssSetup>,
    ) -> Result<Port, DpdkError> {
        if config.rx_queues == 0 || config.tx_queues > config.rx_queues {
            return Err(DpdkError::Port {
                port: port_id,
                call: "configure",
                reason: format!(
                    "need at least 1 RX queue and at most as many TX queues (asked {} RX, {} TX)",
                    config.rx_queues, config.tx_queues
                ),
            });
        }
        let mut conf = sys::rte_eth_conf::default();
        // ethdev keeps the conf (and so the key pointer) and drivers read the key when the port
        // starts: the key's heap buffer lives in the port, for as long as the port.
        let mut key = rss.map(|r| r.key.clone()).unwrap_or_default();
        if let Some(r) = rss {
            let key_len = u8::try_from(key.len()).map_err(|_| DpdkError::Port {
                port: port_id,
                call: "configure",
                reason: format!("RSS key of {} bytes is longer than 255", key.len()),
            })?;
            conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = if key.is_empty() {
                std::ptr::null_mut()
            } else {
                key.as_mut_ptr()
            };
            conf.rx_adv_conf.rss_conf.rss_key_len = key_len;
            conf.rx_adv_conf.rss_conf.rss_hf = r.rss_hf;
        }
        // SAFETY: conf is a zeroed rte_eth_conf (all-zero is valid: newtype enums, no offloads)
        // with at most the RSS fields set; its key pointer is null or points to `key`, which
        // holds rss_key_len bytes and is moved (buffer unchanged) into the port, which outlives
        // every use of the device; the EAL is initialised.
        let ret = unsafe {
            sys::rte_eth_dev_configure(port_id, config.rx_queues, config.tx_queues, &conf)
        };
        if ret != 0 {
            return Err(port_err(port_id, "rte_eth_dev_configure", ret));
        }
        let mut nb_rx = config.rx_descriptors;
        let mut nb_tx = config.tx_descriptors;
        // SAFETY: both out-pointers are valid for the call.
        let ret = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &mut nb_rx, &mut nb_tx) };
        if ret != 0 {
            return Err(port_err(port_id, "rte_eth_dev_adjust_nb_rx_tx_desc", ret));
        }
        // SAFETY: plain query on a valid port id.
        let socket = unsafe { sys::rte_eth_dev_socket_id(port_id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..config.rx_queues {
            // SAFETY: the port is configured with rx_queues queues and q is in range; a null
            // rxconf means the device defaults; the pool outlives the port (the port keeps an
            // Arc to it).
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(
                    port_id,
                    q,
                    nb_rx,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            if ret != 0 {
                return Err(port_err(port_id, "rte_eth_rx_queue_setup", ret));
            }
        }
        for q in 0..config.tx_queues {
            // SAFETY: as above for TX; null txconf means the device defaults.
            let ret =
                unsafe { sys::rte_eth_tx_queue_setup(port_id, q, nb_tx, socket, std::ptr::null()) };
            if ret != 0 {
                return Err(port_err(port_id, "rte_eth_tx_queue_setup", ret));
            }
        }
        Ok(Port {
            inner: Arc::new(PortInner {
                id: port_id,
                rx_queues: config.rx_queues,
                tx_queues: config.tx_queues,
                rx_claimed: (0..config.rx_queues)
                    .map(|_| AtomicBool::new(false))
                    .collect(),
                started: Mutex::new(false),
                _rss_key: key,
                _pool: Arc::clone(pool),
                _eal: eal.clone(),
            }),
        })
    }

    /// Port id.
    pub fn id(&self) -> u16 {
        self.inner.id
    }

    /// Number of configured RX queues.
    pub fn rx_queue_count(&self) -> u16 {
        self.inner.rx_queues
    }

    /// Number of configured TX queues.
    pub fn tx_queue_count(&self) -> u16 {
        self.inner.tx_queues
    }

    /// Starts the port (for `net_pcap`, this opens the capture files from their beginning).
    pub fn start(&self) -> Result<(), DpdkError> {
        let mut started = self.inner.started.lock().unwrap_or_else(|p| p.into_inner());
        if *started {
            return Ok(());
        }
        // SAFETY: the port is configured and its queues are set up.
        let ret = unsafe { sys::rte_eth_dev_start(self.inner.id) };
        if ret != 0 {
            return Err(port_err(self.inner.id, "rte_eth_dev_start", ret));
        }
        *started = true;
        Ok(())
    }

    /// Stops the port. Refused while any RX queue handle is alive (a worker may be polling it).
    pub fn stop(&self) -> Result<(), DpdkError> {
        let mut started = self.inner.started.lock().unwrap_or_else(|p| p.into_inner());
        if self
            .inner
            .rx_claimed
            .iter()
            .any(|c| c.load(Ordering::Acquire))
        {
            return Err(DpdkError::PortBusy(self.inner.id));
        }
        if !*started {
            return Ok(());
        }
        // SAFETY: no queue handle exists, so no thread polls the port while it stops.
        let ret = unsafe { sys::rte_eth_dev_stop(self.inner.id) };
        if ret != 0 {
            return Err(port_err(self.inner.id, "rte_eth_dev_stop", ret));
        }
        *started = false;
        Ok(())
    }

    /// Current counters.
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: s is a valid, writable rte_eth_stats; reading stats concurrently with RX
        // polling is allowed by ethdev.
        let ret = unsafe { sys::rte_eth_stats_get(self.inner.id, &mut s) };
        if ret != 0 {
            return Err(port_err(self.inner.id, "rte_eth_stats_get", ret));
        }
        let n = (self.inner.rx_queues as usize).min(sys::RTE_ETHDEV_QUEUE_STAT_CNTRS as usize);
        Ok(PortStats {
            ipackets: s.ipackets,
            ibytes: s.ibytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            rx_nombuf: s.rx_nombuf,
            opackets: s.opackets,
            obytes: s.obytes,
            oerrors: s.oerrors,
            q_ipackets: s.q_ipackets.iter().take(n).copied().collect(),
            q_ibytes: s.q_ibytes.iter().take(n).copied().collect(),
            q_errors: s.q_errors.iter().take(n).copied().collect(),
        })
    }

    /// Device info.
    pub fn info(&self) -> Result<PortInfo, DpdkError> {
        Port::info_of(&self.inner._eal, self.inner.id)
    }

    /// The handle for RX queue `queue`. Each queue has at most one live handle; it is released
    /// when the handle is dropped.
    pub fn rx_queue(&self, queue: u16) -> Result<RxQueue, DpdkError> {
        let unavailable = || DpdkError::RxQueueUnavailable {
            port: self.inner.id,
            queue,
        };
        let flag = self
            .inner
            .rx_claimed
            .get(queue as usize)
            .ok_or_else(unavailable)?;
        if flag.swap(true, Ordering::AcqRel) {
            return Err(unavailable());
        }
        Ok(RxQueue {
            port: Arc::clone(&self.inner),
            queue,
            _not_sync: PhantomData,
        })
    }
}

/// The only handle through which one RX queue of a port is polled. It can move to a worker lcore
/// (`Send`) but not be shared (`!Sync`): DPDK RX queues are single-consumer.
#[derive(Debug)]
pub struct RxQueue {
    port: Arc<PortInner>,
    queue: u16,
    _not_sync: PhantomData<Cell<()>>,
}

impl RxQueue {
    /// Port id.
    pub fn port_id(&self) -> u16 {
        self.port.id
    }

    /// Queue id.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Counters that grow when the queue returns fewer packets than it has for reasons other
    /// than running dry: `(rx_nombuf, ierrors, errors of this queue)`. Reads port statistics, so
    /// call it on empty bursts only.
    pub fn loss_counters(&self) -> (u64, u64, u64) {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: s is a valid, writable rte_eth_stats; reading stats while polling is allowed.
        let ret = unsafe { sys::rte_eth_stats_get(self.port.id, &mut s) };
        if ret != 0 {
            return (0, 0, 0);
        }
        let q = s.q_errors.get(self.queue as usize).copied().unwrap_or(0);
        (s.rx_nombuf, s.ierrors, q)
    }

    /// Frees what `burst` still holds, then receives up to [`super::BURST_SIZE`] packets into
    /// it. Returns the number received (0: nothing now; for a file-backed queue, the end).
    #[inline]
    pub fn rx_burst(&mut self, burst: &mut MbufBurst) -> usize {
        burst.free_all();
        let (ptr, cap) = burst.raw_slots();
        // SAFETY: this handle is the only one for (port, queue) and is !Sync, so no other thread
        // polls the queue; ptr points to cap writable mbuf pointer slots owned by `burst`, which
        // is empty (all freed) so nothing is overwritten; the port outlives the handle.
        let n = unsafe { sys::portolan_eth_rx_burst(self.port.id, self.queue, ptr, cap) };
        let n = (n as usize).min(cap as usize);
        burst.set_len(n);
        n
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        if let Some(flag) = self.port.rx_claimed.get(self.queue as usize) {
            flag.store(false, Ordering::Release);
        }
    }
}

fn port_err(port: u16, call: &'static str, ret: i32) -> DpdkError {
    DpdkError::Port {
        port,
        call,
        reason: neg_errno(ret),
    }
}
