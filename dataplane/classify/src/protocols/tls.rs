//! TLS over TCP: confirms a ClientHello or ServerHello at the start of the bytes.
//!
//! Owns: walking TLS records (with `tls-parser`) far enough to cut out the first handshake
//! message, which may span several records and TCP segments, and handing it to
//! [`crate::tls_hello`]. Must not: buffer bytes itself (it answers `NeedMore` and the engine
//! keeps the direction's bytes), decrypt, or panic on any input.

use std::borrow::Cow;

use tls_parser::{TlsMessage, TlsMessageHandshake, TlsRecordType};

use crate::probe::{Meta, Probe, ProbeContext};
use crate::tls_hello::{self, HelloCarrier};

/// Largest handshake message accepted for a hello (real ones are below 8 KiB; post-quantum
/// key shares included).
const MAX_HELLO_LEN: usize = 1 << 16;
/// Largest TLS record payload (2^14 plus the allowed expansion).
const MAX_RECORD_LEN: usize = (1 << 14) + 2048;

/// Result of cutting the first handshake message out of a run of records.
enum FirstMessage<'a> {
    /// The whole message (4-byte header and body).
    Complete(Cow<'a, [u8]>),
    /// A valid start, cut short.
    Incomplete,
    /// Not a TLS handshake start.
    Invalid,
}

/// True when the (possibly partial) 5-byte record header is a plausible handshake record.
fn plausible_header_prefix(head: &[u8]) -> bool {
    let ok_type = head.first().is_none_or(|&t| t == 0x16);
    let ok_major = head.get(1).is_none_or(|&m| m == 3);
    let ok_minor = head.get(2).is_none_or(|&m| m <= 4);
    ok_type && ok_major && ok_minor
}

/// Cuts the first handshake message out of consecutive handshake records at the start of
/// `data`, copying only when the message spans records.
fn first_handshake_message(data: &[u8]) -> FirstMessage<'_> {
    let mut rest = data;
    let mut joined: Option<Vec<u8>> = None;
    let mut first_fragment: &[u8] = &[];
    loop {
        if rest.len() < 5 {
            return if plausible_header_prefix(rest) {
                FirstMessage::Incomplete
            } else {
                FirstMessage::Invalid
            };
        }
        let Ok((body, header)) = tls_parser::parse_tls_record_header(rest) else {
            return FirstMessage::Invalid;
        };
        let len = usize::from(header.len);
        if header.record_type != TlsRecordType::Handshake
            || header.version.0 >> 8 != 3
            || header.version.0 & 0xff > 4
            || len == 0
            || len > MAX_RECORD_LEN
        {
            return FirstMessage::Invalid;
        }
        let fragment = body.get(..len).unwrap_or(body);
        let truncated = body.len() < len;
        let collected: &[u8] = match joined.as_mut() {
            Some(buf) => {
                buf.extend_from_slice(fragment);
                buf
            }
            None if first_fragment.is_empty() => {
                first_fragment = fragment;
                first_fragment
            }
            None => {
                let mut buf = Vec::with_capacity(first_fragment.len() + fragment.len());
                buf.extend_from_slice(first_fragment);
                buf.extend_from_slice(fragment);
                joined = Some(buf);
                joined.as_deref().unwrap_or(&[])
            }
        };
        if let Some(&msg_type) = collected.first() {
            if msg_type != 1 && msg_type != 2 {
                return FirstMessage::Invalid;
            }
        }
        if collected.len() >= 4 {
            let msg_len = (usize::from(collected[1]) << 16)
                | (usize::from(collected[2]) << 8)
                | usize::from(collected[3]);
            if msg_len > MAX_HELLO_LEN {
                return FirstMessage::Invalid;
            }
            if collected.len() >= 4 + msg_len {
                return match joined {
                    Some(mut buf) => {
                        buf.truncate(4 + msg_len);
                        FirstMessage::Complete(Cow::Owned(buf))
                    }
                    None => FirstMessage::Complete(Cow::Borrowed(
                        first_fragment.get(..4 + msg_len).unwrap_or(first_fragment),
                    )),
                };
            }
        }
        if truncated {
            return FirstMessage::Incomplete;
        }
        rest = body.get(len..).unwrap_or(&[]);
    }
}

/// True when `data` is exactly a run of complete TLS records (content types 20–23, versions
/// 3.0–3.4) starting with ChangeCipherSpec, Alert or ApplicationData: the middle of a TLS
/// connection whose handshake was not seen. A record cut at the end does not count.
fn is_record_run(data: &[u8]) -> bool {
    if !matches!(data.first(), Some(20 | 21 | 23)) {
        return false;
    }
    let mut rest = data;
    while !rest.is_empty() {
        let Some(h) = rest.get(..5) else {
            return false;
        };
        let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
        if !(20..=23).contains(&h[0]) || h[1] != 3 || h[2] > 4 || len == 0 || len > MAX_RECORD_LEN {
            return false;
        }
        let Some(next) = rest.get(5 + len..) else {
            return false;
        };
        rest = next;
    }
    true
}

/// Confirms TLS: a complete ClientHello (`tls.client_hello`) or ServerHello
/// (`tls.server_hello`) at the start of `data` (`NeedMore` when one is cut short), or, for a
/// flow seen from its middle, bytes that are exactly a run of complete encrypted records
/// (`tls.records`).
pub fn probe(_ctx: &ProbeContext, data: &[u8]) -> Probe {
    if is_record_run(data) {
        return Probe::Match {
            indicator: "tls.records",
            meta: Meta::None,
        };
    }
    let msg = match first_handshake_message(data) {
        FirstMessage::Complete(msg) => msg,
        FirstMessage::Incomplete => return Probe::NeedMore,
        FirstMessage::Invalid => return Probe::NoMatch,
    };
    match msg.first() {
        Some(1) => match tls_hello::parse_client_hello_message(&msg, HelloCarrier::Tcp) {
            Some(meta) => Probe::Match {
                indicator: "tls.client_hello",
                meta: Meta::Tls(meta),
            },
            None => Probe::NoMatch,
        },
        Some(2) => match tls_parser::parse_tls_message_handshake(&msg) {
            Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ServerHello(sh)))) => Probe::Match {
                indicator: "tls.server_hello",
                meta: Meta::Tls(tls_hello::server_hello_meta(&sh)),
            },
            _ => Probe::NoMatch,
        },
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
            transport: Transport::Tcp,
            from_client: true,
            client_port: 50000,
            server_port: 443,
            packet_index: 0,
        }
    }

    fn tls_meta(p: Probe) -> crate::probe::TlsMeta {
        match p {
            Probe::Match {
                meta: Meta::Tls(m), ..
            } => m,
            other => panic!("expected a TLS match, got {other:?}"),
        }
    }

    /// A Chrome-like ClientHello whose JA3/JA4 were published together with its field lists:
    /// JA4 `t13d1516h2_8daaf6152771_d8a2da3f94cd`, JA3 `98487aa16281980e7d1120d399efb6a4`.
    fn chrome_like() -> ClientHelloSpec {
        ClientHelloSpec::chrome_like("tls.browserleaks.com")
    }

    #[test]
    fn chrome_client_hello_fingerprints() {
        let record = samples::tls_client_hello_record(&chrome_like());
        let m = tls_meta(probe(&ctx(), &record));
        assert_eq!(m.sni.as_deref(), Some("tls.browserleaks.com"));
        assert_eq!(
            m.client_alpns,
            vec!["h2".to_string(), "http/1.1".to_string()]
        );
        assert_eq!(m.version.as_deref(), Some("TLS 1.3"));
        assert_eq!(
            m.ja3_string.as_deref(),
            Some(
                "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,\
                 45-51-16-65037-23-17613-0-11-10-43-65281-35-18-5-13-27,4588-29-23-24,0"
            )
        );
        assert_eq!(m.ja3.as_deref(), Some("98487aa16281980e7d1120d399efb6a4"));
        assert_eq!(
            m.ja4.as_deref(),
            Some("t13d1516h2_8daaf6152771_d8a2da3f94cd")
        );
    }

    #[test]
    fn client_hello_split_over_segments_needs_more() {
        let record = samples::tls_client_hello_record(&chrome_like());
        for cut in [1, 3, 5, 9, 60, record.len() - 1] {
            assert_eq!(
                probe(&ctx(), &record[..cut]),
                Probe::NeedMore,
                "cut at {cut}"
            );
        }
        assert!(matches!(probe(&ctx(), &record), Probe::Match { .. }));
    }

    #[test]
    fn client_hello_fragmented_over_records() {
        let record = samples::tls_client_hello_record(&chrome_like());
        let msg = &record[5..];
        let (a, b) = msg.split_at(100);
        let mut two = Vec::new();
        for part in [a, b] {
            two.extend_from_slice(&[0x16, 0x03, 0x01]);
            two.extend_from_slice(&(part.len() as u16).to_be_bytes());
            two.extend_from_slice(part);
        }
        let m = tls_meta(probe(&ctx(), &two));
        assert_eq!(m.sni.as_deref(), Some("tls.browserleaks.com"));
        assert_eq!(probe(&ctx(), &two[..two.len() - 10]), Probe::NeedMore);
    }

    #[test]
    fn server_hello_tls13_version_and_cipher() {
        let record = samples::tls_server_hello_record(0x1301, Some(0x0304));
        match probe(&ctx(), &record) {
            Probe::Match {
                indicator,
                meta: Meta::Tls(m),
            } => {
                assert_eq!(indicator, "tls.server_hello");
                assert_eq!(m.server_version.as_deref(), Some("TLS 1.3"));
                assert_eq!(m.server_cipher, Some(0x1301));
            }
            other => panic!("{other:?}"),
        }
        let record = samples::tls_server_hello_record(0xc02f, None);
        let m = tls_meta(probe(&ctx(), &record));
        assert_eq!(m.server_version.as_deref(), Some("TLS 1.2"));
    }

    #[test]
    fn mid_stream_record_runs() {
        let mut two = vec![0x17, 0x03, 0x03, 0x00, 0x03, 1, 2, 3];
        two.extend_from_slice(&[0x15, 0x03, 0x03, 0x00, 0x02, 1, 0]);
        assert!(matches!(
            probe(&ctx(), &two),
            Probe::Match {
                indicator: "tls.records",
                ..
            }
        ));
        // A record cut at the end, or trailing garbage, is not enough.
        assert_eq!(probe(&ctx(), &two[..two.len() - 1]), Probe::NoMatch);
        let mut junk = two.clone();
        junk.push(0x42);
        assert_eq!(probe(&ctx(), &junk), Probe::NoMatch);
    }

    #[test]
    fn rejects_other_bytes() {
        assert_eq!(probe(&ctx(), b"GET / HTTP/1.1\r\n\r\n"), Probe::NoMatch);
        assert_eq!(
            probe(&ctx(), &[0x17, 0x03, 0x03, 0x00, 0x10, 0]),
            Probe::NoMatch
        );
        // Handshake record with a Certificate message first.
        assert_eq!(
            probe(
                &ctx(),
                &[0x16, 0x03, 0x03, 0x00, 0x04, 0x0b, 0x00, 0x00, 0x00]
            ),
            Probe::NoMatch
        );
        assert_eq!(probe(&ctx(), &[]), Probe::NeedMore);
    }
}
