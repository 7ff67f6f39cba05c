//! Fuzzes the `quic` parser: any bytes, both directions; it must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_classify::protocols::quic;
use portolan_classify::ProbeContext;
use portolan_packet::Transport;

fuzz_target!(|data: &[u8]| {
    for from_client in [true, false] {
        let ctx = ProbeContext {
            transport: Transport::Udp,
            from_client,
            client_port: 40000,
            server_port: 443,
            packet_index: 0,
            dst_multicast: false,
        };
        let _ = quic::probe(&ctx, data);
    }
});
