//! Fuzz target `probe_all`: see [`portolan_classify_fuzz::probe_all`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portolan_classify_fuzz::probe_all(data));
