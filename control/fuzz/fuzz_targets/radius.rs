//! Fuzz target `radius`: see [`portolan_control_fuzz::radius`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portolan_control_fuzz::radius(data));
