//! Fuzzes the `tls` parser: any bytes, both directions; it must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_classify::protocols::tls;
use portolan_classify::{ProbeContext, Side};
use portolan_packet::Transport;

fuzz_target!(|data: &[u8]| {
    for sender in [Side::Client, Side::Server] {
        let ctx = ProbeContext::new(Transport::Tcp, 40000, 443).sent_by(sender);
        let _ = tls::probe(&ctx, data);
    }
});
