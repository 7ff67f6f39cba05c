//! Bursts of received mbufs and read-only views of each packet in them.
//!
//! Owns: the mbufs an RX burst returned, from `rte_eth_rx_burst` until they are freed in bulk
//! (on the next burst or when the [`MbufBurst`] is dropped), and the lookup of the capture
//! timestamp dynamic field. Must not: allocate per packet or copy packet bytes; a packet's bytes
//! are borrowed from its mbuf and cannot outlive the burst.

use super::Eal;
use portolan_dpdk_sys as sys;
use std::ffi::CStr;
use std::marker::PhantomData;

/// Packets received per `rte_eth_rx_burst` call (as in DPDK's l3fwd).
pub const BURST_SIZE: usize = 32;

/// How many packets ahead of the one being processed the iterator prefetches (l3fwd's value).
const PREFETCH_OFFSET: usize = 3;

/// Where the capture timestamp lives in an mbuf: the `rte_dynfield_timestamp` dynamic field,
/// valid when the `rte_dynflag_rx_timestamp` flag is set (`net_pcap` sets both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampField {
    offset: i32,
    flag_mask: u64,
}

impl TimestampField {
    /// Looks the field and flag up. `None` when no driver registered them (register happens at
    /// device probe, so call this after the EAL has started with its devices).
    pub fn lookup(_eal: &Eal) -> Option<TimestampField> {
        let field = CStr::from_bytes_with_nul(sys::RTE_MBUF_DYNFIELD_TIMESTAMP_NAME).ok()?;
        let flag = CStr::from_bytes_with_nul(sys::RTE_MBUF_DYNFLAG_RX_TIMESTAMP_NAME).ok()?;
        // SAFETY: field is a valid C string; a null params pointer is allowed (not wanted).
        let offset = unsafe { sys::rte_mbuf_dynfield_lookup(field.as_ptr(), std::ptr::null_mut()) };
        if offset < 0 {
            return None;
        }
        // SAFETY: as above, for the flag.
        let bit = unsafe { sys::rte_mbuf_dynflag_lookup(flag.as_ptr(), std::ptr::null_mut()) };
        let flag_mask = if (0..64).contains(&bit) {
            1u64 << bit
        } else {
            0
        };
        Some(TimestampField { offset, flag_mask })
    }
}

/// Up to [`BURST_SIZE`] received mbufs, owned until freed in bulk.
pub struct MbufBurst {
    slots: [*mut sys::rte_mbuf; BURST_SIZE],
    len: usize,
    timestamp: Option<TimestampField>,
}

impl std::fmt::Debug for MbufBurst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MbufBurst").field("len", &self.len).finish()
    }
}

// SAFETY: the burst exclusively owns the mbufs in slots[..len]; mbufs may be read and freed from
// any thread (the mempool is thread-safe).
unsafe impl Send for MbufBurst {}

impl MbufBurst {
    /// An empty burst; `timestamp` says where to read capture timestamps (see
    /// [`TimestampField::lookup`]).
    pub fn new(timestamp: Option<TimestampField>) -> MbufBurst {
        MbufBurst {
            slots: [std::ptr::null_mut(); BURST_SIZE],
            len: 0,
            timestamp,
        }
    }

    /// Number of mbufs held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no mbuf is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// View of packet `i`, if held.
    #[inline]
    pub fn get(&self, i: usize) -> Option<MbufRef<'_>> {
        let m = *self.slots.get(..self.len)?.get(i)?;
        Some(self.view(m))
    }

    /// Views of the held packets in order; prefetches the data of packets a few places ahead.
    #[inline]
    pub fn iter(&self) -> MbufIter<'_> {
        for i in 0..PREFETCH_OFFSET.min(self.len) {
            self.prefetch(i);
        }
        MbufIter {
            burst: self,
            next: 0,
            prefetch: true,
        }
    }

    /// Views of the held packets in order, without prefetching: for a second pass over a
    /// burst whose data [`MbufBurst::iter`] already brought in.
    #[inline]
    pub fn views(&self) -> MbufIter<'_> {
        MbufIter {
            burst: self,
            next: 0,
            prefetch: false,
        }
    }

    /// Frees every held mbuf (one bulk call) and empties the burst.
    #[inline]
    pub fn free_all(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: slots[..len] hold mbufs this burst owns (received by rx_burst and not freed
        // since); after the call len is 0, so none is freed twice or read again.
        unsafe { sys::portolan_pktmbuf_free_bulk(self.slots.as_mut_ptr(), self.len as u32) };
        self.len = 0;
    }

    /// The slot array and its capacity, for `rx_burst` (the burst must be empty).
    #[inline]
    pub(super) fn raw_slots(&mut self) -> (*mut *mut sys::rte_mbuf, u16) {
        debug_assert_eq!(self.len, 0);
        (self.slots.as_mut_ptr(), BURST_SIZE as u16)
    }

    /// Records that `rx_burst` filled the first `n` slots (`n` <= [`BURST_SIZE`]).
    #[inline]
    pub(super) fn set_len(&mut self, n: usize) {
        self.len = n.min(BURST_SIZE);
    }

    #[inline]
    fn prefetch(&self, i: usize) {
        if let Some(&m) = self.slots.get(..self.len).and_then(|s| s.get(i)) {
            // SAFETY: m is a live mbuf owned by this burst, its header written by the driver;
            // the fields are read through raw place expressions (no reference is made).
            let (buf, off) = unsafe {
                (
                    std::ptr::addr_of!((*m).buf_addr).read(),
                    std::ptr::addr_of!((*m).data_off).read(),
                )
            };
            // rte_pktmbuf_mtod; a prefetch never faults, so no check of the address is needed.
            super::prefetch::prefetch0(buf.cast::<u8>().wrapping_add(usize::from(off)));
        }
    }

    /// The packet view of `m`, read from the mbuf header in Rust (`rte_pktmbuf_mtod` and the
    /// plain header fields): no call into the C shim per packet.
    #[inline]
    fn view(&self, m: *mut sys::rte_mbuf) -> MbufRef<'_> {
        // SAFETY: m is a live mbuf owned by this burst; its header fields were written by the
        // driver before rx_burst returned it and nothing writes them while the burst holds it.
        // Raw place reads, no reference to the C struct is created.
        let (buf, off, pkt_len, data_len, nb_segs, ol_flags) = unsafe {
            (
                std::ptr::addr_of!((*m).buf_addr).read(),
                std::ptr::addr_of!((*m).data_off).read(),
                std::ptr::addr_of!((*m).pkt_len).read(),
                std::ptr::addr_of!((*m).data_len).read(),
                std::ptr::addr_of!((*m).nb_segs).read(),
                std::ptr::addr_of!((*m).ol_flags).read(),
            )
        };
        let data: &[u8] = if buf.is_null() || data_len == 0 {
            &[]
        } else {
            // SAFETY: the first segment holds data_len initialised bytes starting at
            // buf_addr + data_off (rte_pktmbuf_mtod); they stay valid and unmodified while the
            // burst owns the mbuf, and the returned slice borrows the burst, so it cannot
            // outlive the free in free_all/drop.
            unsafe {
                std::slice::from_raw_parts(
                    buf.cast::<u8>().add(usize::from(off)),
                    usize::from(data_len),
                )
            }
        };
        let timestamp_us = match self.timestamp {
            Some(t) if ol_flags & t.flag_mask != 0 && t.offset >= 0 => {
                // SAFETY: offset is the offset, inside the mbuf, of the registered 8-byte
                // timestamp dynamic field (rte_mbuf_dynfield_lookup), which the driver wrote
                // when it set the flag; read unaligned as RTE_MBUF_DYNFIELD does not promise
                // more than the field's own alignment.
                Some(unsafe {
                    m.cast::<u8>()
                        .add(t.offset as usize)
                        .cast::<u64>()
                        .read_unaligned()
                })
            }
            _ => None,
        };
        MbufRef {
            data,
            pkt_len,
            nb_segs,
            timestamp_us,
            _burst: PhantomData,
        }
    }
}

impl Drop for MbufBurst {
    fn drop(&mut self) {
        self.free_all();
    }
}

/// Iterator over a burst's packets (see [`MbufBurst::iter`]).
pub struct MbufIter<'a> {
    burst: &'a MbufBurst,
    next: usize,
    prefetch: bool,
}

impl<'a> Iterator for MbufIter<'a> {
    type Item = MbufRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<MbufRef<'a>> {
        let i = self.next;
        let m = *self.burst.slots.get(..self.burst.len)?.get(i)?;
        if self.prefetch {
            self.burst.prefetch(i + PREFETCH_OFFSET);
        }
        self.next = i + 1;
        Some(self.burst.view(m))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.burst.len.saturating_sub(self.next);
        (left, Some(left))
    }
}

/// A read-only view of one received packet, borrowed from its burst.
#[derive(Debug, Clone, Copy)]
pub struct MbufRef<'a> {
    data: &'a [u8],
    pkt_len: u32,
    nb_segs: u16,
    timestamp_us: Option<u64>,
    _burst: PhantomData<&'a MbufBurst>,
}

impl<'a> MbufRef<'a> {
    /// Bytes of the first segment (the whole frame unless it spans several segments).
    #[inline]
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Frame length over all segments (for `net_pcap`: the captured length).
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.pkt_len
    }

    /// Number of segments (1 unless the frame was larger than one mbuf's data room).
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.nb_segs
    }

    /// Capture timestamp in microseconds since the epoch, when the driver provided one.
    #[inline]
    pub fn timestamp_us(&self) -> Option<u64> {
        self.timestamp_us
    }
}
