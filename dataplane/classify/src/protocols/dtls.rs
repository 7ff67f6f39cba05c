//! DTLS over UDP: confirms a ClientHello, ServerHello or HelloVerifyRequest at the start of
//! the bytes.
//!
//! Owns: checking the 13-byte DTLS record header, gathering the first handshake message from
//! its (in-order) fragments and parsing it with `tls-parser`'s DTLS support.
//! Must not: decrypt, keep state between calls, or panic on any input.

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

/// Confirms DTLS: `dtls.client_hello`, `dtls.server_hello` or `dtls.hello_verify_request`.
pub fn probe(_ctx: &ProbeContext, data: &[u8]) -> Probe {
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
                ch.ciphers.iter().map(|c| c.0).collect(),
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
    use crate::samples::{self, ClientHelloSpec};
    use portolan_packet::Transport;

    fn ctx() -> ProbeContext {
        ProbeContext {
            transport: Transport::Udp,
            from_client: true,
            client_port: 50000,
            server_port: 4433,
            packet_index: 0,
        }
    }

    #[test]
    fn client_hello_with_sni_and_ja4_prefix() {
        let mut spec = ClientHelloSpec::minimal("dtls.example");
        spec.legacy_version = 0xfefd;
        spec.supported_versions.clear();
        spec.extensions.retain(|&t| t != 43);
        let rec = samples::dtls_client_hello_record(&spec, None);
        match probe(&ctx(), &rec) {
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
        let rec = samples::dtls_client_hello_record(&spec, Some(40));
        assert!(matches!(probe(&ctx(), &rec), Probe::Match { .. }));
        // Only the first fragment record: a valid start cut short.
        let first_len = 13 + usize::from(u16::from_be_bytes([rec[11], rec[12]]));
        assert_eq!(probe(&ctx(), &rec[..first_len]), Probe::NeedMore);
    }

    #[test]
    fn rejects_tls_and_garbage() {
        let tls = samples::tls_client_hello_record(&ClientHelloSpec::minimal("x.example"));
        assert_eq!(probe(&ctx(), &tls), Probe::NoMatch);
        assert_eq!(probe(&ctx(), &[22, 0xfe, 0xfd, 0, 0]), Probe::NoMatch);
        assert_eq!(probe(&ctx(), b"\x16\xfe\xfd\x00\x01"), Probe::NoMatch);
    }
}
