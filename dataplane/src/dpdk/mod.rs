//! Safe layer over DPDK: EAL start-up, mbuf pools, ethdev ports and RX queues, mbuf bursts and
//! worker lcores.
//!
//! Owns: every `unsafe` call into `portolan-dpdk-sys` made by Portolan (each block carries a
//! `// SAFETY:` comment). Must not: parse packets, keep flows, or know about captures; callers get
//! byte slices and counters, never raw pointers.

pub mod eal;
pub mod flow_rule;
pub mod flow_table;
pub mod kernel_drops;
pub mod lcore;
pub mod mbuf;
pub mod mempool;
pub mod port;
pub mod prefetch;
pub mod xdp;
pub mod xdp_prefilter;

pub use eal::{Eal, EalConfig};
pub use lcore::LcoreJob;
pub use mbuf::{MbufBurst, MbufRef, TimestampField, BURST_SIZE};
pub use mempool::PktMbufPool;
pub use port::{paired_tx_queues, Port, PortConfig, PortInfo, PortStats, RssSetup, RxQueue};

use portolan_dpdk_sys as sys;
use std::ffi::CStr;

/// Why a DPDK call failed.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// `rte_eal_init` was already called in this process (it can run only once, even after
    /// cleanup).
    #[error("the DPDK EAL was already initialised in this process (it can start only once)")]
    EalAlreadyInitialised,
    /// `rte_eal_init` failed.
    #[error("DPDK EAL initialisation failed: {0}")]
    EalInit(String),
    /// An argument contained a NUL byte.
    #[error("DPDK argument {0:?} contains a NUL byte")]
    NulInArgument(String),
    /// Creating the mbuf pool failed.
    #[error(
        "cannot create mbuf pool {name:?} of {mbufs} mbufs: {reason} (raise the EAL memory: -m, `--memory-mb`)"
    )]
    Mempool {
        /// Pool name.
        name: String,
        /// Requested number of mbufs.
        mbufs: u32,
        /// DPDK's error string.
        reason: String,
    },
    /// An ethdev call on a port failed.
    #[error("port {port}: {call} failed: {reason}")]
    Port {
        /// Port id.
        port: u16,
        /// The DPDK function that failed.
        call: &'static str,
        /// DPDK's error string.
        reason: String,
    },
    /// No port with that name exists.
    #[error("no DPDK port named {0:?}")]
    NoSuchPort(String),
    /// An RX queue id is out of range or its handle is already in use.
    #[error("port {port}: RX queue {queue} is out of range or already in use")]
    RxQueueUnavailable {
        /// Port id.
        port: u16,
        /// Queue id.
        queue: u16,
    },
    /// The port cannot be stopped while an RX queue handle is alive.
    #[error("port {0}: cannot stop while RX queue handles are in use")]
    PortBusy(u16),
    /// Launching a function on a worker lcore failed.
    #[error("cannot launch on lcore {lcore}: {reason}")]
    Launch {
        /// Lcore id.
        lcore: u32,
        /// DPDK's error string.
        reason: String,
    },
    /// The function running on a worker lcore panicked.
    #[error("the job on lcore {lcore} panicked: {message}")]
    WorkerPanicked {
        /// Lcore id.
        lcore: u32,
        /// Panic payload, if it was a string.
        message: String,
    },
}

/// DPDK's message for a (positive) errno value.
pub(crate) fn strerror(errnum: i32) -> String {
    // SAFETY: rte_strerror accepts any int and returns a pointer to a static or thread-local
    // NUL-terminated string that stays valid until the next call on this thread; we copy it
    // out immediately.
    let p = unsafe { sys::rte_strerror(errnum) };
    if p.is_null() {
        return format!("error {errnum}");
    }
    // SAFETY: p is non-null and points to a NUL-terminated C string (see above).
    let s = unsafe { CStr::from_ptr(p) };
    format!("{} (errno {errnum})", s.to_string_lossy())
}

/// The calling thread's `rte_errno`, as a message.
pub(crate) fn last_error() -> String {
    // SAFETY: reads the per-thread rte_errno variable; no preconditions.
    let errnum = unsafe { sys::portolan_errno() };
    strerror(errnum)
}

/// Message for a negative errno return value of an ethdev call.
pub(crate) fn neg_errno(ret: i32) -> String {
    strerror(ret.saturating_neg())
}
