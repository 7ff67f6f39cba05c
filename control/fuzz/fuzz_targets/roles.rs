//! Fuzz target `roles`: see [`portolan_control_fuzz::roles`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portolan_control_fuzz::roles(data));
