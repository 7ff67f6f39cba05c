//! Fuzzes the explicit-proxy watch (`portolan_classify::tunnel`): the input is a list of chunks
//! (a direction bit and a length byte, then the bytes), fed to every wire parser alone and to a
//! `TunnelWatch` started on the first client chunk. Checks: no panic; a parser that reports a
//! whole message used at least one byte and no more than it was given; a watch never reports a
//! step after its last one, and an opened tunnel always has a target with a non-zero port and
//! hands over no more than the bound per direction.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_classify::tunnel::{self, Parse, Step, TunnelWatch, MAX_HANDSHAKE_BYTES};
use portolan_classify::Side;

fn chunks(mut data: &[u8]) -> Vec<(bool, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 2 {
        let from_client = data[0] & 1 == 0;
        let len = usize::from(data[1]);
        let rest = &data[2..];
        let (chunk, next) = rest.split_at(len.min(rest.len()));
        out.push((from_client, chunk));
        data = next;
    }
    out
}

fn used<T>(p: Parse<T>, len: usize) {
    if let Parse::Done(_, n) = p {
        assert!(n >= 1 && n <= len, "used {n} of {len}");
    }
}

fuzz_target!(|data: &[u8]| {
    used(tunnel::http_connect_request(data), data.len());
    used(tunnel::http_reply(data), data.len());
    used(tunnel::socks4_request(data), data.len());
    used(tunnel::socks4_reply(data), data.len());
    used(tunnel::socks5_greeting(data), data.len());
    used(tunnel::socks5_method(data), data.len());
    used(tunnel::socks5_auth(data), data.len());
    used(tunnel::socks5_auth_reply(data), data.len());
    used(tunnel::socks5_request(data), data.len());
    used(tunnel::socks5_reply(data), data.len());

    let chunks = chunks(data);
    let Some(first) = chunks.iter().find(|(c, b)| *c && !b.is_empty()) else {
        return;
    };
    let Some(mut watch) = TunnelWatch::start(first.1) else {
        return;
    };
    for (from_client, bytes) in &chunks {
        match watch.feed(Side::from_client(*from_client), bytes) {
            Step::Watching => continue,
            Step::Open => {
                let ([c, s], target) = watch.take_inner();
                let target = target.expect("an open tunnel has a target");
                assert!(target.port > 0 && target.established);
                assert!(c.len() <= MAX_HANDSHAKE_BYTES && s.len() <= MAX_HANDSHAKE_BYTES);
                return;
            }
            Step::Refused | Step::Malformed | Step::Abandoned => return,
        }
    }
});
