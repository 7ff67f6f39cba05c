//! DTLS over UDP: confirms a ClientHello, ServerHello or HelloVerifyRequest at the start of
//! the bytes, or a datagram that is exactly a run of protected DTLS records.
//!
//! Owns: checking the 13-byte DTLS record header, gathering the first handshake message from
//! its (in-order) fragments and parsing it with `tls-parser`'s DTLS support; the record-run
//! check for a DTLS session whose handshake was not seen on this 5-tuple (WebRTC moving to
//! another ICE candidate pair after the handshake).
//! Must not: decrypt, keep state between calls, or panic on any input. The signature file has
//! no pattern for record runs: they are only looked at after a decision (metadata) and by the
//! STUN upgrade watch (`upgrades_to`), never as the first evidence of a flow.

use tls_parser::{DTLSMessage, DTLSMessageHandshakeBody};

use crate::probe::{Meta, Probe, ProbeContext, TlsMeta};
use crate::tls_hello::{self, HelloCarrier};

/// Largest handshake message we reassemble.
const MAX_MESSAGE_LEN: usize = 1 << 16;
const RECORD_HEADER_LEN: usize = 13;
const HANDSHAKE_HEADER_LEN: usize = 12;

fn u24(b: &[u8]) -> usize {
    b.iter()
        .take(3)
        .fold(0usize, |acc, &x| (acc << 8) | usize::from(x))
}

/// True for the record-layer versions DTLS hellos use (1.0, 1.2, and 1.3's legacy value).
fn is_dtls_version(major: u8, minor: u8) -> bool {
    major == 0xfe && matches!(minor, 0xff | 0xfd | 0xfc)
}

enum Gathered {
    /// The whole message rebuilt as one unfragmented DTLS handshake.
    Complete(Vec<u8>),
    Incomplete,
    Invalid,
}

/// Walks records at the start of `data` and rebuilds the first handshake message from
/// consecutive in-order fragments.
fn first_message(data: &[u8]) -> Gathered {
    let mut rest = data;
    let mut body: Vec<u8> = Vec::new();
    let mut expected: Option<(u8, usize, [u8; 2])> = None; // (type, length, message_seq)
    loop {
        let Some(head) = rest.get(..RECORD_HEADER_LEN) else {
            // A datagram never cuts a record header: only "nothing more yet" is incomplete.
            return if rest.is_empty() {
                Gathered::Incomplete
            } else {
                Gathered::Invalid
            };
        };
        let epoch = u16::from_be_bytes([head[3], head[4]]);
        if head[0] != 22 || !is_dtls_version(head[1], head[2]) || epoch != 0 {
            return Gathered::Invalid;
        }
        let len = usize::from(u16::from_be_bytes([head[11], head[12]]));
        let Some(fragment) = rest.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len) else {
            return Gathered::Invalid;
        };
        rest = rest.get(RECORD_HEADER_LEN + len..).unwrap_or(&[]);
        let Some(hs) = fragment.get(..HANDSHAKE_HEADER_LEN) else {
            return Gathered::Invalid;
        };
        let msg_type = hs[0];
        let msg_len = u24(&hs[1..4]);
        let seq = [hs[4], hs[5]];
        let frag_off = u24(&hs[6..9]);
        let frag_len = u24(&hs[9..12]);
        let Some(frag) = fragment.get(HANDSHAKE_HEADER_LEN..HANDSHAKE_HEADER_LEN + frag_len) else {
            return Gathered::Invalid;
        };
        if msg_len > MAX_MESSAGE_LEN || frag_off + frag_len > msg_len {
            return Gathered::Invalid;
        }
        match expected {
            None => {
                if !matches!(msg_type, 1..=3) || frag_off != 0 {
                    return Gathered::Invalid;
                }
                expected = Some((msg_type, msg_len, seq));
            }
            Some((t, l, s)) => {
                if t != msg_type || l != msg_len || s != seq {
                    return Gathered::Invalid;
                }
                if frag_off != body.len() {
                    // Out of order or overlapping: only in-order fragments are rebuilt.
                    return Gathered::Invalid;
                }
            }
        }
        body.extend_from_slice(frag);
        if body.len() >= msg_len {
            let mut msg = Vec::with_capacity(HANDSHAKE_HEADER_LEN + msg_len);
            msg.push(msg_type);
            msg.extend_from_slice(&hs[1..4]);
            msg.extend_from_slice(&seq);
            msg.extend_from_slice(&[0, 0, 0]);
            msg.extend_from_slice(&hs[1..4]);
            msg.extend_from_slice(body.get(..msg_len).unwrap_or(&body));
            return Gathered::Complete(msg);
        }
        if rest.is_empty() {
            return Gathered::Incomplete;
        }
    }
}

/// Largest DTLS record payload (2^14 plus the allowed expansion).
const MAX_RECORD_LEN: usize = (1 << 14) + 2048;

/// True when the datagram is exactly a run of complete DTLS records (RFC 6347 section 4.1:
/// content types 20–23, one DTLS version throughout, lengths adding up to the datagram),
/// starting with ChangeCipherSpec, Alert or ApplicationData, where ApplicationData is never in
/// epoch 0 (it is only sent under negotiated keys).
fn is_record_run(data: &[u8]) -> bool {
    if !matches!(data.first(), Some(20 | 21 | 23)) {
        return false;
    }
    let version = data.get(1..3);
    let mut rest = data;
    while !rest.is_empty() {
        let Some(head) = rest.get(..RECORD_HEADER_LEN) else {
            return false;
        };
        let epoch = u16::from_be_bytes([head[3], head[4]]);
        let len = usize::from(u16::from_be_bytes([head[11], head[12]]));
        if !(20..=23).contains(&head[0])
            || !is_dtls_version(head[1], head[2])
            || head.get(1..3) != version
            || (head[0] == 23 && epoch == 0)
            || len == 0
            || len > MAX_RECORD_LEN
        {
            return false;
        }
        let Some(next) = rest.get(RECORD_HEADER_LEN + len..) else {
            return false;
        };
        rest = next;
    }
    true
}

/// Confirms DTLS: `dtls.client_hello`, `dtls.server_hello` or `dtls.hello_verify_request`; or
/// `dtls.records` for a datagram that is exactly a run of protected records.
pub fn probe(_ctx: &ProbeContext, data: &[u8]) -> Probe {
    if is_record_run(data) {
        return Probe::Match {
            indicator: "dtls.records",
            meta: Meta::None,
        };
    }
    let msg = match first_message(data) {
        Gathered::Complete(msg) => msg,
        Gathered::Incomplete => return Probe::NeedMore,
        Gathered::Invalid => return Probe::NoMatch,
    };
    let Ok((_, DTLSMessage::Handshake(hs))) = tls_parser::parse_dtls_message_handshake(&msg) else {
        return Probe::NoMatch;
    };
    match hs.body {
        DTLSMessageHandshakeBody::ClientHello(ch) => {
            match tls_hello::client_hello_meta(
                HelloCarrier::Dtls,
                ch.version.0,
                &ch.ciphers,
                ch.ext,
            ) {
                Some(meta) => Probe::Match {
                    indicator: "dtls.client_hello",
                    meta: Meta::Tls(meta),
                },
                None => Probe::NoMatch,
            }
        }
        DTLSMessageHandshakeBody::ServerHello(sh) => Probe::Match {
            indicator: "dtls.server_hello",
            meta: Meta::Tls(tls_hello::server_hello_meta(&sh)),
        },
        DTLSMessageHandshakeBody::HelloVerifyRequest(hvr) => {
            if is_dtls_version(
                (hvr.server_version.0 >> 8) as u8,
                hvr.server_version.0 as u8,
            ) {
                Probe::Match {
                    indicator: "dtls.hello_verify_request",
                    meta: Meta::Tls(TlsMeta {
                        server_version: Some(tls_hello::version_name(hvr.server_version.0)),
                        ..Default::default()
                    }),
                }
            } else {
                Probe::NoMatch
            }
        }
        _ => Probe::NoMatch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_testkit::{self as testkit, ClientHelloSpec};
    use portolan_packet::Transport;
    use crate::test_support::{expect_match};

    const CTX: ProbeContext = ProbeContext::new(Transport::Udp, 50000, 4433);

    #[test]
    fn client_hello_with_sni_and_ja4_prefix() {
        let mut spec = ClientHelloSpec::minimal("dtls.example");
        spec.legacy_version = 0xfefd;
        spec.supported_versions.clear();
        spec.extensions.retain(|&t| t != 43);
        let rec = testkit::dtls_client_hello_record(&spec, None);
        match probe(&CTX, &rec) {
            Probe::Match {
                indicator,
                meta: Meta::Tls(m),
            } => {
                assert_eq!(indicator, "dtls.client_hello");
                assert_eq!(m.sni.as_deref(), Some("dtls.example"));
                assert!(
                    m.ja4.as_deref().is_some_and(|j| j.starts_with("dd2d")),
                    "{m:?}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn client_hello_fragmented_over_two_records() {
        let spec = ClientHelloSpec::minimal("frag.example");
        let rec = testkit::dtls_client_hello_record(&spec, Some(40));
        expect_match(probe(&CTX, &rec));
        // Only the first fragment record: a valid start cut short.
        let first_len = 13 + usize::from(u16::from_be_bytes([rec[11], rec[12]]));
        assert_eq!(probe(&CTX, &rec[..first_len]), Probe::NeedMore);
    }

    /// A protected record: type, DTLS 1.2, epoch, sequence number, `len` bytes of ciphertext.
    fn record(typ: u8, epoch: u16, len: usize) -> Vec<u8> {
        let mut r = vec![typ, 0xfe, 0xfd];
        r.extend_from_slice(&epoch.to_be_bytes());
        r.extend_from_slice(&[0, 0, 0, 0, 0, 9]);
        r.extend_from_slice(&(len as u16).to_be_bytes());
        r.extend((0..len as u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8));
        r
    }

    #[test]
    fn protected_record_runs() {
        // ApplicationData as WebRTC sends it after moving to another candidate pair.
        let app = record(23, 1, 524);
        assert_eq!(
            probe(&CTX, &app),
            Probe::Match {
                indicator: "dtls.records",
                meta: Meta::None
            }
        );
        let two = [record(20, 0, 1), record(22, 1, 40)].concat();
        assert!(probe(&CTX, &two).is_match());
        // ApplicationData in epoch 0, a length one short or long, a record of another
        // version in the run, TLS records, SRTP, STUN.
        let mut short = app.clone();
        short.pop();
        let mut long = app.clone();
        long.push(0);
        let mut mixed = two.clone();
        mixed[15] = 0xff;
        for (what, bytes) in [
            ("epoch 0", record(23, 0, 524)),
            ("short", short),
            ("long", long),
            ("mixed versions", mixed),
            ("tls", vec![0x17, 0x03, 0x03, 0x00, 0x02, 1, 2]),
            (
                "srtp",
                [&[0x90u8, 0x6f, 0x23, 0x60][..], &[0x42; 60]].concat(),
            ),
            (
                "stun",
                vec![
                    0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                ],
            ),
        ] {
            assert_eq!(probe(&CTX, &bytes), Probe::NoMatch, "{what}");
        }
    }

    #[test]
    fn pseudo_random_datagrams_are_not_dtls() {
        let mut next = portolan_testkit::xorshift64_star(0x0bad_cafe_f00d_d00d);
        for i in 0..20_000 {
            let len = 13 + (next() % 1200) as usize;
            let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 2 == 0 {
                // Start like a DTLS 1.2 record.
                d[0] = [20, 21, 22, 23][(next() % 4) as usize];
                d[1] = 0xfe;
                d[2] = 0xfd;
            }
            assert!(!probe(&CTX, &d).is_match(), "{:02x?}", &d[..13]);
        }
    }

    #[test]
    fn rejects_tls_and_garbage() {
        let tls = testkit::tls_client_hello_record(&ClientHelloSpec::minimal("x.example"));
        assert_eq!(probe(&CTX, &tls), Probe::NoMatch);
        assert_eq!(probe(&CTX, &[22, 0xfe, 0xfd, 0, 0]), Probe::NoMatch);
        assert_eq!(probe(&CTX, b"\x16\xfe\xfd\x00\x01"), Probe::NoMatch);
    }
}
