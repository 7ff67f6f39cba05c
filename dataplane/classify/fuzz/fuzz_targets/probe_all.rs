//! Fuzz target: every registered confirming parser (`protocols::PARSERS`) over the same input.
//!
//! The first input byte chooses the probe context (transport, direction, packet index); the rest
//! is the payload. A parser must not panic, and must answer the same way twice (parsers are pure).

#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_classify::protocols::PARSERS;
use portolan_classify::ProbeContext;
use portolan_packet::Transport;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    let ctx = ProbeContext {
        transport: if selector & 1 == 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        },
        from_client: selector & 2 == 0,
        client_port: 49152,
        server_port: 443,
        packet_index: u32::from(selector >> 2),
        dst_multicast: false,
    };
    for (name, probe) in PARSERS {
        let first = probe(&ctx, data);
        let again = probe(&ctx, data);
        assert_eq!(first, again, "parser {name} is not deterministic");
    }
});
