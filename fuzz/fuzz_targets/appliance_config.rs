//! Fuzz target `appliance_config`: see [`portolan_fuzz::appliance_config`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portolan_fuzz::appliance_config(data));
