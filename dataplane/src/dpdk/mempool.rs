//! Packet mbuf pools (`rte_pktmbuf_pool_create`).
//!
//! Owns: one pool's lifetime; the pool is freed when the last port using it is gone. Must not:
//! hand out raw mbufs; mbufs reach Rust code only through `mbuf::MbufBurst`.

use super::{last_error, DpdkError, Eal};
use portolan_dpdk_sys as sys;
use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

/// Default data room of one mbuf: 2048 bytes of frame plus the 128-byte headroom.
pub const DEFAULT_DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

/// A pool of packet mbufs.
#[derive(Debug)]
pub struct PktMbufPool {
    ptr: NonNull<sys::rte_mempool>,
    name: String,
    mbufs: u32,
    _eal: Eal,
}

// SAFETY: rte_mempool is a thread-safe object (its ring is multi-producer/multi-consumer and
// each lcore has its own cache); the pointer is only passed to DPDK calls.
unsafe impl Send for PktMbufPool {}
// SAFETY: see above; no method mutates Rust-side state.
unsafe impl Sync for PktMbufPool {}

impl PktMbufPool {
    /// Creates a pool of `mbufs` mbufs with a per-lcore cache of `cache_size` and a data room of
    /// `data_room` bytes each (headroom included; see [`DEFAULT_DATA_ROOM`]).
    pub fn create(
        eal: &Eal,
        name: &str,
        mbufs: u32,
        cache_size: u32,
        data_room: u16,
    ) -> Result<Arc<PktMbufPool>, DpdkError> {
        let c_name = CString::new(name).map_err(|_| DpdkError::NulInArgument(name.to_string()))?;
        // SAFETY: the EAL is initialised (we hold a handle) and c_name is a valid C string that
        // DPDK copies. socket_id -1 is SOCKET_ID_ANY.
        let ptr = unsafe {
            sys::rte_pktmbuf_pool_create(c_name.as_ptr(), mbufs, cache_size, 0, data_room, -1)
        };
        let ptr = NonNull::new(ptr).ok_or_else(|| DpdkError::Mempool {
            name: name.to_string(),
            mbufs,
            reason: last_error(),
        })?;
        Ok(Arc::new(PktMbufPool {
            ptr,
            name: name.to_string(),
            mbufs,
            _eal: eal.clone(),
        }))
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of mbufs the pool was created with.
    pub fn capacity(&self) -> u32 {
        self.mbufs
    }

    /// Mbufs currently free in the pool (per-lcore caches included).
    pub fn available(&self) -> u32 {
        // SAFETY: ptr is a live pool (we own it until drop).
        unsafe { sys::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// The raw pool, for RX queue setup inside this module.
    pub(super) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.ptr.as_ptr()
    }
}

impl Drop for PktMbufPool {
    fn drop(&mut self) {
        // SAFETY: every port that used this pool holds an Arc to it and stops/closes before
        // dropping that Arc, so no mbuf of this pool is in use by DPDK any more.
        unsafe { sys::rte_mempool_free(self.ptr.as_ptr()) }
    }
}
