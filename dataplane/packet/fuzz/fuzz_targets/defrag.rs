//! Fuzz target `defrag`: see [`portolan_packet_fuzz::defrag`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portolan_packet_fuzz::defrag(data));
