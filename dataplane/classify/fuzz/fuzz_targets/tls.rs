//! Fuzz target `tls`: see [`portolan_classify_fuzz::tls`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portolan_classify_fuzz::tls(data));
