//! Fuzz target: every registered confirming parser (`protocols::PARSERS`) over the same input.
//!
//! The first input byte chooses the probe context (transport, direction, packet index); the rest
//! is the payload. A parser must not panic, and must answer the same way twice (parsers are pure).

#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_classify::protocols::PARSERS;
use portolan_classify::{ProbeContext, Side};
use portolan_packet::Transport;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    let transport = if selector & 1 == 0 {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let sender = if selector & 2 == 0 {
        Side::Client
    } else {
        Side::Server
    };
    let ctx = ProbeContext::new(transport, 49152, 443)
        .sent_by(sender)
        .at_packet(u32::from(selector >> 2));
    for (name, probe) in PARSERS {
        let first = probe(&ctx, data);
        let again = probe(&ctx, data);
        assert_eq!(first, again, "parser {name} is not deterministic");
    }
});
