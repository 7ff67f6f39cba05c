//! Fuzz target `leases`: see [`portolan_control_fuzz::leases`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portolan_control_fuzz::leases(data));
