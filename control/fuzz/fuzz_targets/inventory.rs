//! Fuzz target `inventory`: see [`portolan_control_fuzz::inventory`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portolan_control_fuzz::inventory(data));
