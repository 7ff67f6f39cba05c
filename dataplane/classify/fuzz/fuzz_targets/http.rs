//! Fuzz target `http`: see [`portolan_classify_fuzz::http`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portolan_classify_fuzz::http(data));
