//! Fuzz target `control_config`: see [`portolan_control_fuzz::control_config`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portolan_control_fuzz::control_config(data));
