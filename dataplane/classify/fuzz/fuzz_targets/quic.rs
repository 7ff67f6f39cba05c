//! Fuzz target `quic`: see [`portolan_classify_fuzz::quic`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portolan_classify_fuzz::quic(data));
