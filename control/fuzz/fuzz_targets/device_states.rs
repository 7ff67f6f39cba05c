//! Fuzz target `device_states`: see [`portolan_control_fuzz::device_states`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portolan_control_fuzz::device_states(data));
