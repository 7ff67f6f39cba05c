//! TLS over TCP: confirms a ClientHello or ServerHello at the start of the bytes.
//!
//! Owns: walking TLS records (with `tls-parser`) far enough to cut out the first handshake
//! message, which may span several records and TCP segments, and handing it to
//! `crate::tls_hello`. Must not: buffer bytes itself (it answers `NeedMore` and the engine
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

/// How the bytes of a flow seen from its middle line up with TLS records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecordRun {
    /// Exactly a run of complete records.
    Complete,
    /// Valid records, the last one cut; `headers` complete record headers were checked.
    Cut { headers: usize },
    /// Not a run of TLS records.
    Invalid,
}

/// True for a valid 5-byte record header: content type 20–23, version 3.0–3.4, length
/// 1..=2^14+2048.
fn valid_record_header(h: &[u8]) -> Option<usize> {
    let &[typ, major, minor, hi, lo] = h else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    ((20..=23).contains(&typ) && major == 3 && minor <= 4 && len != 0 && len <= MAX_RECORD_LEN)
        .then_some(len)
}

/// Walks the records at the start of `data`, which must begin with ChangeCipherSpec, Alert or
/// ApplicationData: the middle of a TLS connection whose handshake was not seen. Every record
/// of the run carries the first one's version (after the handshake a connection's records all
/// do).
fn record_run(data: &[u8]) -> RecordRun {
    if !matches!(data.first(), Some(20 | 21 | 23)) {
        return RecordRun::Invalid;
    }
    let version = data.get(1..3);
    let mut rest = data;
    let mut headers = 0;
    while !rest.is_empty() {
        let Some(h) = rest.get(..5) else {
            // A header cut at the end: its bytes so far must be plausible.
            let same_version = rest
                .iter()
                .skip(1)
                .zip(version.unwrap_or_default())
                .all(|(a, b)| a == b);
            let ok = plausible_header_prefix_any(rest) && same_version;
            return if ok {
                RecordRun::Cut { headers }
            } else {
                RecordRun::Invalid
            };
        };
        let Some(len) = valid_record_header(h).filter(|_| h.get(1..3) == version) else {
            return RecordRun::Invalid;
        };
        headers += 1;
        let Some(next) = rest.get(5 + len..) else {
            return RecordRun::Cut { headers };
        };
        rest = next;
    }
    RecordRun::Complete
}

/// True when the (partial, under 5 bytes) record header could start a valid one.
fn plausible_header_prefix_any(head: &[u8]) -> bool {
    let ok_type = head.first().is_none_or(|t| (20..=23).contains(t));
    let ok_major = head.get(1).is_none_or(|&m| m == 3);
    let ok_minor = head.get(2).is_none_or(|&m| m <= 4);
    ok_type && ok_major && ok_minor
}

/// A ClientHello whose record and handshake headers are consistent but whose inner vectors
/// (cipher suites, extensions) are not: record type 22, record version 3.1–3.4, ONE record
/// holding exactly one handshake message of type 1 (record length = handshake length + 4),
/// legacy version 3.0–3.4, room for version, random, session id (at most 32 bytes), cipher
/// suite and compression lengths. Deliberately malformed hellos (fingerprint evasion, fuzzers)
/// are still TLS; their fields are not trusted, so nothing is extracted.
fn consistent_hello_headers(data: &[u8]) -> bool {
    let Some(&[22, 3, minor, rec_hi, rec_lo, 1, l1, l2, l3, v_major, v_minor]) = data.get(..11)
    else {
        return false;
    };
    let rec_len = usize::from(u16::from_be_bytes([rec_hi, rec_lo]));
    let hs_len = (usize::from(l1) << 16) | (usize::from(l2) << 8) | usize::from(l3);
    // version 2, random 32, session id length 1, cipher suites length 2, compression length 1.
    const MIN_BODY: usize = 2 + 32 + 1 + 2 + 1;
    let Some(&sid_len) = data.get(5 + 4 + 2 + 32) else {
        return false;
    };
    (1..=4).contains(&minor)
        && rec_len == hs_len + 4
        && data.len() >= 5 + rec_len
        && v_major == 3
        && v_minor <= 4
        && hs_len >= MIN_BODY + usize::from(sid_len)
        && sid_len <= 32
}

/// Confirms TLS: a complete ClientHello (`tls.client_hello`) or ServerHello
/// (`tls.server_hello`) at the start of `data` (`NeedMore` when one is cut short); a ClientHello
/// whose inner vectors are inconsistent but whose record and handshake headers are
/// (`tls.client_hello_malformed`, no fingerprints); or, for a flow seen from its middle
/// (`tls.records`), bytes that are exactly a run of complete encrypted records, or records
/// whose second header sits exactly where the first record's length says. A single record cut
/// at the end of a direction's first bytes (`ctx.packet_index == 0`) answers `NeedMore`, so the
/// engine can join the next segments until the record ends.
pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe {
    match record_run(data) {
        RecordRun::Complete | RecordRun::Cut { headers: 2.. } => {
            return Probe::Match {
                indicator: "tls.records",
                meta: Meta::None,
            }
        }
        RecordRun::Cut { .. } if ctx.packet_index == 0 => return Probe::NeedMore,
        RecordRun::Cut { .. } | RecordRun::Invalid => {}
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
            None if consistent_hello_headers(data) => Probe::Match {
                indicator: "tls.client_hello_malformed",
                meta: Meta::None,
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
    use portolan_testkit::{self as testkit, ClientHelloSpec};
    use portolan_packet::Transport;
    use crate::test_support::{expect_match};

    const CTX: ProbeContext = ProbeContext::new(Transport::Tcp, 50000, 443);

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
        let record = testkit::tls_client_hello_record(&chrome_like());
        let m = tls_meta(probe(&CTX, &record));
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
        let record = testkit::tls_client_hello_record(&chrome_like());
        for cut in [1, 3, 5, 9, 60, record.len() - 1] {
            assert_eq!(
                probe(&CTX, &record[..cut]),
                Probe::NeedMore,
                "cut at {cut}"
            );
        }
        expect_match(probe(&CTX, &record));
    }

    #[test]
    fn client_hello_fragmented_over_records() {
        let record = testkit::tls_client_hello_record(&chrome_like());
        let msg = &record[5..];
        let (a, b) = msg.split_at(100);
        let mut two = Vec::new();
        for part in [a, b] {
            two.extend_from_slice(&[0x16, 0x03, 0x01]);
            two.extend_from_slice(&(part.len() as u16).to_be_bytes());
            two.extend_from_slice(part);
        }
        let m = tls_meta(probe(&CTX, &two));
        assert_eq!(m.sni.as_deref(), Some("tls.browserleaks.com"));
        assert_eq!(probe(&CTX, &two[..two.len() - 10]), Probe::NeedMore);
    }

    #[test]
    fn server_hello_tls13_version_and_cipher() {
        let record = testkit::tls_server_hello_record(0x1301, Some(0x0304));
        match probe(&CTX, &record) {
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
        let record = testkit::tls_server_hello_record(0xc02f, None);
        let m = tls_meta(probe(&CTX, &record));
        assert_eq!(m.server_version.as_deref(), Some("TLS 1.2"));
    }


    fn indicator(p: Probe) -> &'static str {
        match p {
            Probe::Match { indicator, .. } => indicator,
            other => panic!("expected a match, got {other:?}"),
        }
    }

    #[test]
    fn mid_stream_record_runs() {
        let mut two = vec![0x17, 0x03, 0x03, 0x00, 0x03, 1, 2, 3];
        two.extend_from_slice(&[0x15, 0x03, 0x03, 0x00, 0x02, 1, 0]);
        assert_eq!(indicator(probe(&CTX, &two)), "tls.records");
        // The second record cut: its header sits exactly where the first record's length
        // says, which is enough.
        assert_eq!(
            indicator(probe(&CTX, &two[..two.len() - 1])),
            "tls.records"
        );
        assert_eq!(indicator(probe(&CTX, &two[..13])), "tls.records");
        // Only part of the second header: wait (at a direction's start) for the rest.
        assert_eq!(probe(&CTX, &two[..10]), Probe::NeedMore);
        // Trailing garbage, or a second header of another version, is not.
        let mut junk = two.clone();
        junk.push(0x42);
        assert_eq!(probe(&CTX, &junk), Probe::NoMatch);
        let mut other_version = two.clone();
        other_version[10] = 0x01;
        assert_eq!(probe(&CTX, &other_version), Probe::NoMatch);
    }

    #[test]
    fn one_cut_record_waits_for_more_only_at_a_direction_start() {
        // A 1467-byte application data record over a 1452-byte segment and a 20-byte one
        // (the client side of `tls-appdata.pcap`).
        let mut record = vec![0x17, 0x03, 0x03, 0x05, 0xbb];
        record.extend((0..1467u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8));
        let (first, _) = record.split_at(1452);
        assert_eq!(probe(&CTX.at_packet(0), first), Probe::NeedMore);
        // Later packets of a direction do not start at a known record boundary.
        assert_eq!(probe(&CTX.at_packet(1), first), Probe::NoMatch);
        // Joined, the record ends exactly at the end of the bytes.
        assert_eq!(indicator(probe(&CTX.at_packet(0), &record)), "tls.records");
        // One byte short or long is not a run.
        assert_eq!(
            probe(&CTX.at_packet(1), &record[..record.len() - 1]),
            Probe::NoMatch
        );
        let mut long = record.clone();
        long.push(0x99);
        assert_eq!(probe(&CTX.at_packet(0), &long), Probe::NoMatch);
        // A cut header prefix after a complete record still waits; a bad one does not.
        let mut cut_header = record.clone();
        cut_header.extend_from_slice(&[0x17, 0x03]);
        assert_eq!(probe(&CTX.at_packet(0), &cut_header), Probe::NeedMore);
        cut_header[record.len() + 1] = 0x07;
        assert_eq!(probe(&CTX.at_packet(0), &cut_header), Probe::NoMatch);
        // Invalid first headers never wait: zero length, version 2.0, too long.
        for bad in [
            [0x17, 0x03, 0x03, 0x00, 0x00],
            [0x17, 0x02, 0x00, 0x00, 0x10],
            [0x17, 0x03, 0x03, 0x48, 0x01],
        ] {
            let mut b = bad.to_vec();
            b.extend_from_slice(&[0u8; 40]);
            assert_eq!(probe(&CTX.at_packet(0), &b), Probe::NoMatch, "{bad:?}");
        }
    }

    /// A ClientHello whose cipher-suites length is wrong (as in `tls_cipher_lens.pcap`: the
    /// vector length says 134 while the record and handshake lengths are consistent).
    fn hello_with_bad_cipher_len() -> Vec<u8> {
        let mut spec = ClientHelloSpec::minimal("www.example.it");
        spec.supported_versions.clear();
        spec.extensions.retain(|&t| t != 43);
        let mut record = testkit::tls_client_hello_record(&spec);
        // record 5 + handshake header 4 + version 2 + random 32 + session id (1 + 32).
        let at = 5 + 4 + 2 + 32 + 1 + 32;
        record[at..at + 2].copy_from_slice(&0x0086u16.to_be_bytes());
        record
    }

    #[test]
    fn malformed_client_hello_with_consistent_headers() {
        let record = hello_with_bad_cipher_len();
        assert_eq!(
            probe(&CTX, &record),
            Probe::Match {
                indicator: "tls.client_hello_malformed",
                meta: Meta::None,
            }
        );
        // Split over segments it waits, then confirms.
        assert_eq!(probe(&CTX, &record[..60]), Probe::NeedMore);
        // Each header rule is needed: record type, record version 3.1-3.4, handshake type,
        // record length = handshake length + 4, hello version 3.x, session id <= 32.
        let edits: [(usize, u8); 7] = [
            (1, 0x02),
            (2, 0x00),
            (2, 0x05),
            (8, record[8].wrapping_add(1)),
            (9, 0x02),
            (10, 0x05),
            (43, 33),
        ];
        for (at, value) in edits {
            let mut bad = record.clone();
            bad[at] = value;
            assert!(
                !probe(&CTX, &bad).is_match(),
                "byte {at} = {value:#04x} still confirms"
            );
        }
        // Record length and handshake length changed together but no longer covering the
        // bytes: not a complete hello.
        let mut longer = record.clone();
        longer[4] = longer[4].wrapping_add(1);
        longer[8] = longer[8].wrapping_add(1);
        assert_eq!(probe(&CTX, &longer), Probe::NeedMore);
        // A well-formed hello still gives fingerprints, not the malformed indicator.
        let good = testkit::tls_client_hello_record(&ClientHelloSpec::minimal("ok.example"));
        assert_eq!(indicator(probe(&CTX, &good)), "tls.client_hello");
    }

    #[test]
    fn pseudo_random_bytes_never_confirm() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        };
        for i in 0..20_000 {
            let len = 6 + (next() % 1500) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Half of them start like a handshake or an application data record.
            if i % 2 == 0 {
                bytes[0] = if i % 4 == 0 { 0x16 } else { 0x17 };
                bytes[1] = 0x03;
                bytes[2] = (next() % 5) as u8;
            }
            let p = probe(&CTX.at_packet(1), &bytes);
            assert!(!p.is_match(), "{:02x?}: {p:?}", &bytes[..16.min(len)]);
        }
    }

    #[test]
    fn rejects_other_bytes() {
        assert_eq!(probe(&CTX, b"GET / HTTP/1.1\r\n\r\n"), Probe::NoMatch);
        assert_eq!(
            probe(&CTX.at_packet(1), &[0x17, 0x03, 0x03, 0x00, 0x10, 0]),
            Probe::NoMatch
        );
        for other in [
            &b"SSH-2.0-OpenSSH_9.6\r\n"[..],
            b"\x16\xfe\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x30\x01",
            b"\x00\x01\x00\x00\x21\x12\xa4\x42\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert!(!probe(&CTX, other).is_match(), "{other:?}");
        }
        // Handshake record with a Certificate message first.
        assert_eq!(
            probe(
                &CTX,
                &[0x16, 0x03, 0x03, 0x00, 0x04, 0x0b, 0x00, 0x00, 0x00]
            ),
            Probe::NoMatch
        );
        assert_eq!(probe(&CTX, &[]), Probe::NeedMore);
    }
}
