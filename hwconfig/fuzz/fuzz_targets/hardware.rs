//! Fuzz target `hardware`: see [`portolan_hwconfig_fuzz::hardware`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portolan_hwconfig_fuzz::hardware(data));
