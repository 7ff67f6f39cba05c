//! Fuzz target `app_catalogue`: see [`portolan_control_fuzz::app_catalogue`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portolan_control_fuzz::app_catalogue(data));
