//! Fuzz target `decode`: see [`portolan_packet_fuzz::decode`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portolan_packet_fuzz::decode(data));
