//! Software prefetch, as DPDK's `rte_prefetch0`: a hint that a cache line will be read soon.
//!
//! Owns: the one `unsafe` prefetch instruction the worker's burst loop uses to warm flow-table
//! memory a few packets ahead (addresses come from `portolan_flow::FlowTable::prefetch_index`
//! and `prefetch_slot`). Must not: read or write through the address.

/// Prefetches the cache line holding `addr` into all cache levels (`PREFETCHT0`). Any address
/// is allowed: a prefetch never faults.
#[inline(always)]
pub fn prefetch0(addr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is only a hint to the cache: it never faults, whatever the address
    // (valid, dangling or null), and changes no architectural state; SSE, which it needs, is
    // part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_of_any_address_is_harmless() {
        let v = [1u8; 256];
        prefetch0(v.as_ptr());
        prefetch0(std::ptr::null());
        prefetch0(usize::MAX as *const u8);
        assert_eq!(v.iter().map(|&b| u32::from(b)).sum::<u32>(), 256);
    }
}
