//! Fuzz target `reassembly`: see [`portolan_classify_fuzz::reassembly`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portolan_classify_fuzz::reassembly(data));
