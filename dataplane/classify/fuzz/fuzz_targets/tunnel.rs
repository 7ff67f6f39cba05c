//! Fuzz target `tunnel`: see [`portolan_classify_fuzz::tunnel`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portolan_classify_fuzz::tunnel(data));
