//! Fuzz target `eve_flow`: see [`portolan_control_fuzz::eve_flow`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portolan_control_fuzz::eve_flow(data));
