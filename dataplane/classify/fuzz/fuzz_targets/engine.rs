//! Fuzz target `engine`: see [`portolan_classify_fuzz::engine`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portolan_classify_fuzz::engine(data));
