//! TLS 1.2 / 1.3 handshake messages and records as an iOS client and common servers send them.
//!
//! Owns: the byte layout of ClientHello (iOS Safari's cipher and extension order, GREASE,
//! SNI, ALPN, supported_versions, key_share, padding), ServerHello, a DER certificate chain and
//! the TLS 1.2 key-exchange messages, plus the record framing. Must not: do real cryptography —
//! keys, signatures and ciphertext are random bytes of the right length.

use crate::rng::SynthRng;

/// Record content type: change_cipher_spec.
pub const CT_CCS: u8 = 20;
/// Record content type: alert.
pub const CT_ALERT: u8 = 21;
/// Record content type: handshake.
pub const CT_HANDSHAKE: u8 = 22;
/// Record content type: application_data.
pub const CT_APPDATA: u8 = 23;

/// TLS 1.3 cipher suite TLS_AES_128_GCM_SHA256.
pub const TLS_AES_128_GCM_SHA256: u16 = 0x1301;

/// iOS 17 Safari's cipher suites after the leading GREASE value.
const SAFARI_CIPHERS: [u16; 20] = [
    0x1301, 0x1302, 0x1303, 0xc02c, 0xc02b, 0xcca9, 0xc030, 0xc02f, 0xcca8, 0xc00a, 0xc009, 0xc014,
    0xc013, 0x009d, 0x009c, 0x0035, 0x002f, 0xc008, 0xc012, 0x000a,
];

/// iOS signature_algorithms.
const SAFARI_SIGALGS: [u16; 10] = [
    0x0403, 0x0804, 0x0401, 0x0503, 0x0203, 0x0805, 0x0501, 0x0806, 0x0601, 0x0201,
];

/// A random GREASE value (RFC 8701): 0x?a?a.
fn grease(rng: &mut SynthRng) -> u16 {
    let n = (rng.below(16) as u16) << 4 | 0x0a;
    n << 8 | n
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u24(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&(v as u32).to_be_bytes()[1..]);
}

/// Appends a u16 length, runs `f` to write the body, then back-fills the length.
fn with_len16(out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    f(out);
    let n = (out.len() - at - 2) as u16;
    out[at..at + 2].copy_from_slice(&n.to_be_bytes());
}

fn with_len8(out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.push(0);
    f(out);
    out[at] = (out.len() - at - 1) as u8;
}

fn ext(out: &mut Vec<u8>, ty: u16, f: impl FnOnce(&mut Vec<u8>)) {
    put_u16(out, ty);
    with_len16(out, f);
}

/// A handshake message: type, 24-bit length, body.
pub fn handshake(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(msg_type);
    put_u24(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

/// One TLS record of `content_type` with legacy version `version` around `body`.
pub fn record(content_type: u8, version: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(content_type);
    put_u16(&mut out, version);
    put_u16(&mut out, body.len() as u16);
    out.extend_from_slice(body);
    out
}

/// A record whose body is `len` random bytes (ciphertext).
pub fn opaque_record(content_type: u8, len: usize, rng: &mut SynthRng) -> Vec<u8> {
    let mut body = vec![0u8; len];
    rng.fill(&mut body);
    record(content_type, 0x0303, &body)
}

/// What a ClientHello carries beyond the fixed iOS fingerprint.
pub struct ClientHelloSpec<'a> {
    /// server_name; empty for none.
    pub sni: &'a str,
    /// ALPN protocol IDs in preference order; empty for no ALPN extension.
    pub alpn: &'a [String],
    /// QUIC: the client's source connection ID for the transport parameters. `Some` builds the
    /// TLS-1.3-only hello QUIC uses (no legacy session ID, no padding extension).
    pub quic_scid: Option<&'a [u8]>,
}

/// A ClientHello handshake message (no record header), in iOS Safari's layout.
pub fn client_hello(spec: &ClientHelloSpec<'_>, rng: &mut SynthRng) -> Vec<u8> {
    let quic = spec.quic_scid.is_some();
    let mut b = Vec::with_capacity(600);
    put_u16(&mut b, 0x0303);
    b.extend_from_slice(&rng.bytes::<32>());
    if quic {
        b.push(0);
    } else {
        b.push(32);
        b.extend_from_slice(&rng.bytes::<32>());
    }
    with_len16(&mut b, |b| {
        if quic {
            for c in [0x1301u16, 0x1302, 0x1303] {
                put_u16(b, c);
            }
        } else {
            put_u16(b, grease(rng));
            for c in SAFARI_CIPHERS {
                put_u16(b, c);
            }
        }
    });
    b.extend_from_slice(&[1, 0]); // compression: null only
    let ext_at = b.len();
    with_len16(&mut b, |e| {
        let g_ext1 = grease(rng);
        let mut g_ext2 = grease(rng);
        if g_ext2 == g_ext1 {
            g_ext2 ^= 0x1010;
        }
        if !quic {
            ext(e, g_ext1, |_| {});
        }
        if !spec.sni.is_empty() {
            ext(e, 0x0000, |e| {
                with_len16(e, |e| {
                    e.push(0);
                    with_len16(e, |e| e.extend_from_slice(spec.sni.as_bytes()));
                })
            });
        }
        if !quic {
            ext(e, 0x0017, |_| {}); // extended_master_secret
            ext(e, 0xff01, |e| e.push(0)); // renegotiation_info
        }
        let g_group = grease(rng);
        ext(e, 0x000a, |e| {
            with_len16(e, |e| {
                if !quic {
                    put_u16(e, g_group);
                }
                for g in [0x001du16, 0x0017, 0x0018, 0x0019] {
                    put_u16(e, g);
                }
            })
        });
        if !quic {
            ext(e, 0x000b, |e| e.extend_from_slice(&[1, 0])); // ec_point_formats
        }
        if !spec.alpn.is_empty() {
            ext(e, 0x0010, |e| {
                with_len16(e, |e| {
                    for p in spec.alpn {
                        with_len8(e, |e| e.extend_from_slice(p.as_bytes()));
                    }
                })
            });
        }
        if !quic {
            ext(e, 0x0005, |e| e.extend_from_slice(&[1, 0, 0, 0, 0])); // status_request
        }
        ext(e, 0x000d, |e| {
            with_len16(e, |e| {
                for s in SAFARI_SIGALGS {
                    put_u16(e, s);
                }
            })
        });
        if !quic {
            ext(e, 0x0012, |_| {}); // signed_certificate_timestamp
        }
        ext(e, 0x0033, |e| {
            with_len16(e, |e| {
                if !quic {
                    put_u16(e, g_group);
                    e.extend_from_slice(&[0, 1, 0]);
                }
                put_u16(e, 0x001d);
                put_u16(e, 32);
                e.extend_from_slice(&rng.bytes::<32>());
            })
        });
        ext(e, 0x002d, |e| e.extend_from_slice(&[1, 1])); // psk_key_exchange_modes: psk_dhe_ke
        ext(e, 0x002b, |e| {
            with_len8(e, |e| {
                if quic {
                    put_u16(e, 0x0304);
                } else {
                    put_u16(e, grease(rng));
                    for v in [0x0304u16, 0x0303, 0x0302, 0x0301] {
                        put_u16(e, v);
                    }
                }
            })
        });
        if let Some(scid) = spec.quic_scid {
            ext(e, 0x0039, |e| quic_transport_parameters(e, scid));
        } else {
            ext(e, 0x001b, |e| e.extend_from_slice(&[2, 0, 1])); // compress_certificate: zlib
            ext(e, g_ext2, |e| e.push(0));
        }
    });
    // BoringSSL pads a ClientHello of 256..=511 bytes (with its 4-byte header) to 512.
    if !quic {
        let hello_len = b.len() + 4;
        if (256..512).contains(&hello_len) {
            let pad = (512 - hello_len).saturating_sub(4).max(1);
            let mut p = Vec::with_capacity(pad + 4);
            ext(&mut p, 0x0015, |e| e.extend(std::iter::repeat_n(0u8, pad)));
            b.extend_from_slice(&p);
            let total = (b.len() - ext_at - 2) as u16;
            b[ext_at..ext_at + 2].copy_from_slice(&total.to_be_bytes());
        }
    }
    handshake(1, &b)
}

/// QUIC variable-length integer (RFC 9000 §16).
pub fn put_varint(out: &mut Vec<u8>, v: u64) {
    if v < 1 << 6 {
        out.push(v as u8);
    } else if v < 1 << 14 {
        out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes());
    } else if v < 1 << 30 {
        out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes());
    } else {
        out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes());
    }
}

fn quic_transport_parameters(e: &mut Vec<u8>, scid: &[u8]) {
    let mut tp = |id: u64, v: u64| {
        put_varint(e, id);
        let mut tmp = Vec::new();
        put_varint(&mut tmp, v);
        put_varint(e, tmp.len() as u64);
        e.extend_from_slice(&tmp);
    };
    tp(0x01, 30_000); // max_idle_timeout
    tp(0x03, 1472); // max_udp_payload_size
    tp(0x04, 2_097_152); // initial_max_data
    tp(0x05, 2_097_152); // initial_max_stream_data_bidi_local
    tp(0x06, 2_097_152); // initial_max_stream_data_bidi_remote
    tp(0x07, 2_097_152); // initial_max_stream_data_uni
    tp(0x08, 100); // initial_max_streams_bidi
    tp(0x09, 100); // initial_max_streams_uni
    tp(0x0e, 8); // active_connection_id_limit
    put_varint(e, 0x0f); // initial_source_connection_id
    put_varint(e, scid.len() as u64);
    e.extend_from_slice(scid);
}

/// A ServerHello handshake message. `tls13` adds supported_versions and key_share; otherwise a
/// TLS 1.2 ECDHE-RSA-AES128-GCM hello, echoing `alpn` when given.
pub fn server_hello(
    tls13: bool,
    session_id: &[u8],
    alpn: Option<&str>,
    rng: &mut SynthRng,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(128);
    put_u16(&mut b, 0x0303);
    b.extend_from_slice(&rng.bytes::<32>());
    with_len8(&mut b, |b| b.extend_from_slice(session_id));
    put_u16(
        &mut b,
        if tls13 {
            TLS_AES_128_GCM_SHA256
        } else {
            0xc02f
        },
    );
    b.push(0);
    with_len16(&mut b, |e| {
        if tls13 {
            ext(e, 0x0033, |e| {
                put_u16(e, 0x001d);
                put_u16(e, 32);
                e.extend_from_slice(&rng.bytes::<32>());
            });
            ext(e, 0x002b, |e| put_u16(e, 0x0304));
        } else {
            ext(e, 0xff01, |e| e.push(0));
            ext(e, 0x0017, |_| {});
            ext(e, 0x000b, |e| e.extend_from_slice(&[1, 0]));
            if let Some(p) = alpn {
                ext(e, 0x0010, |e| {
                    with_len16(e, |e| with_len8(e, |e| e.extend_from_slice(p.as_bytes())))
                });
            }
        }
    });
    handshake(2, &b)
}

/// Names and dates for a synthetic certificate chain.
pub struct CertSpec<'a> {
    /// Leaf subject CN and subjectAltName.
    pub host: &'a str,
    /// Issuing CA common name.
    pub issuer_cn: &'a str,
    /// Issuing CA organisation.
    pub issuer_o: &'a str,
    /// notBefore as UTCTime `YYMMDDHHMMSSZ`.
    pub not_before: &'a str,
    /// notAfter as UTCTime `YYMMDDHHMMSSZ`.
    pub not_after: &'a str,
}

/// A TLS 1.2 Certificate handshake message carrying leaf + intermediate DER certificates.
pub fn certificate_message(spec: &CertSpec<'_>, rng: &mut SynthRng) -> Vec<u8> {
    let leaf = der_certificate(spec.host, spec.issuer_cn, spec.issuer_o, spec, rng);
    let inter = der_certificate("", spec.issuer_cn, spec.issuer_o, spec, rng);
    let mut b = Vec::with_capacity(leaf.len() + inter.len() + 9);
    put_u24(&mut b, leaf.len() + inter.len() + 6);
    put_u24(&mut b, leaf.len());
    b.extend_from_slice(&leaf);
    put_u24(&mut b, inter.len());
    b.extend_from_slice(&inter);
    handshake(11, &b)
}

/// DER TLV.
fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(tag);
    let n = body.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(body);
    out
}

fn der_seq(parts: &[Vec<u8>]) -> Vec<u8> {
    der(0x30, &parts.concat())
}

const OID_SHA256_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
const OID_EC_PUBKEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_C: &[u8] = &[0x55, 0x04, 0x06];
const OID_O: &[u8] = &[0x55, 0x04, 0x0a];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

fn rdn(oid: &[u8], tag: u8, value: &str) -> Vec<u8> {
    der(
        0x31,
        &der_seq(&[der(0x06, oid), der(tag, value.as_bytes())]),
    )
}

fn ca_name(cn: &str, o: &str) -> Vec<u8> {
    der_seq(&[
        rdn(OID_C, 0x13, "US"),
        rdn(OID_O, 0x0c, o),
        rdn(OID_CN, 0x0c, cn),
    ])
}

/// An X.509 v3 certificate: a leaf for `host` issued by the CA, or (empty `host`) the CA's own
/// certificate issued by a root of the same organisation. The key and signature are random.
fn der_certificate(
    host: &str,
    issuer_cn: &str,
    issuer_o: &str,
    spec: &CertSpec<'_>,
    rng: &mut SynthRng,
) -> Vec<u8> {
    let sig_alg = der_seq(&[der(0x06, OID_SHA256_RSA), der(0x05, &[])]);
    let mut serial = rng.bytes::<16>();
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    let (issuer, subject) = if host.is_empty() {
        (
            ca_name(&format!("{issuer_o} Root CA"), issuer_o),
            ca_name(issuer_cn, issuer_o),
        )
    } else {
        (
            ca_name(issuer_cn, issuer_o),
            der_seq(&[rdn(OID_CN, 0x0c, host)]),
        )
    };
    let validity = der_seq(&[
        der(0x17, spec.not_before.as_bytes()),
        der(0x17, spec.not_after.as_bytes()),
    ]);
    let mut point = vec![0x00, 0x04];
    point.extend_from_slice(&rng.bytes::<64>());
    let spki = der_seq(&[
        der_seq(&[der(0x06, OID_EC_PUBKEY), der(0x06, OID_P256)]),
        der(0x03, &point),
    ]);
    let mut tbs = vec![
        der(0xa0, &der(0x02, &[2])),
        der(0x02, &serial),
        sig_alg.clone(),
        issuer,
        validity,
        subject,
        spki,
    ];
    if !host.is_empty() {
        let san = der_seq(&[der(0x82, host.as_bytes())]);
        let exts = der_seq(&[der_seq(&[der(0x06, OID_SAN), der(0x04, &san)])]);
        tbs.push(der(0xa3, &exts));
    }
    let mut sig = vec![0u8; 257];
    rng.fill(&mut sig[1..]);
    sig[0] = 0;
    der_seq(&[der_seq(&tbs), sig_alg, der(0x03, &sig)])
}

/// TLS 1.2 ServerKeyExchange (ECDHE x25519, RSA-PSS signature).
pub fn server_key_exchange(rng: &mut SynthRng) -> Vec<u8> {
    let mut b = vec![3, 0x00, 0x1d, 32];
    b.extend_from_slice(&rng.bytes::<32>());
    put_u16(&mut b, 0x0804);
    put_u16(&mut b, 256);
    let mut sig = [0u8; 256];
    rng.fill(&mut sig);
    b.extend_from_slice(&sig);
    handshake(12, &b)
}

/// TLS 1.2 ServerHelloDone.
pub fn server_hello_done() -> Vec<u8> {
    handshake(14, &[])
}

/// TLS 1.2 ClientKeyExchange (ECDHE x25519 public key).
pub fn client_key_exchange(rng: &mut SynthRng) -> Vec<u8> {
    let mut b = vec![32];
    b.extend_from_slice(&rng.bytes::<32>());
    handshake(16, &b)
}

/// A ChangeCipherSpec record.
pub fn ccs_record() -> Vec<u8> {
    record(CT_CCS, 0x0303, &[1])
}

/// The ClientHello as the legacy record layer carries it (record version TLS 1.0).
pub fn client_hello_record(hello: &[u8]) -> Vec<u8> {
    record(CT_HANDSHAKE, 0x0301, hello)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks the extension block of a ClientHello message and returns (type, body) pairs.
    fn extensions(hello: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let b = &hello[4..];
        let mut i = 2 + 32;
        i += 1 + b[i] as usize;
        let cl = u16::from_be_bytes([b[i], b[i + 1]]) as usize;
        i += 2 + cl;
        i += 1 + b[i] as usize;
        let el = u16::from_be_bytes([b[i], b[i + 1]]) as usize;
        i += 2;
        assert_eq!(i + el, b.len(), "extensions fill the hello");
        let mut out = Vec::new();
        while i < b.len() {
            let t = u16::from_be_bytes([b[i], b[i + 1]]);
            let l = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
            out.push((t, b[i + 4..i + 4 + l].to_vec()));
            i += 4 + l;
        }
        out
    }

    #[test]
    fn client_hello_carries_sni_alpn_and_is_padded() {
        let mut rng = SynthRng::new(1, 1);
        let alpn = vec!["h2".to_string(), "http/1.1".to_string()];
        let h = client_hello(
            &ClientHelloSpec {
                sni: "api.example-crm.com",
                alpn: &alpn,
                quic_scid: None,
            },
            &mut rng,
        );
        assert_eq!(h[0], 1);
        assert_eq!(
            h.len(),
            4 + u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize
        );
        let exts = extensions(&h);
        let sni = exts
            .iter()
            .find(|(t, _)| *t == 0)
            .map(|(_, b)| b.clone())
            .unwrap_or_default();
        assert!(sni.ends_with(b"api.example-crm.com"));
        let alpn_body = exts
            .iter()
            .find(|(t, _)| *t == 16)
            .map(|(_, b)| b.clone())
            .unwrap_or_default();
        assert_eq!(&alpn_body[2..], b"\x02h2\x08http/1.1");
        assert!(exts.iter().any(|(t, _)| *t == 0x2b));
        assert!(
            h.len() >= 512,
            "padded to at least 512 bytes, got {}",
            h.len()
        );
        // First extension is GREASE.
        assert_eq!(exts[0].0 & 0x0f0f, 0x0a0a);
    }

    #[test]
    fn quic_hello_has_transport_parameters_and_no_session_id() {
        let mut rng = SynthRng::new(1, 2);
        let alpn = vec!["h3".to_string()];
        let h = client_hello(
            &ClientHelloSpec {
                sni: "www.google.com",
                alpn: &alpn,
                quic_scid: Some(&[1, 2, 3, 4]),
            },
            &mut rng,
        );
        assert_eq!(h[4 + 34], 0, "empty legacy_session_id");
        let exts = extensions(&h);
        assert!(exts.iter().any(|(t, _)| *t == 0x39));
        assert!(!exts.iter().any(|(t, _)| *t == 0x15));
    }

    #[test]
    fn certificate_lengths_are_consistent() {
        let mut rng = SynthRng::new(2, 2);
        let spec = CertSpec {
            host: "api.example-crm.com",
            issuer_cn: "Example TLS CA",
            issuer_o: "Example Trust",
            not_before: "240101000000Z",
            not_after: "250101000000Z",
        };
        let m = certificate_message(&spec, &mut rng);
        assert_eq!(m[0], 11);
        let body_len = u32::from_be_bytes([0, m[1], m[2], m[3]]) as usize;
        assert_eq!(m.len(), body_len + 4);
        let list = u32::from_be_bytes([0, m[4], m[5], m[6]]) as usize;
        assert_eq!(list + 3, body_len);
        let leaf = u32::from_be_bytes([0, m[7], m[8], m[9]]) as usize;
        assert_eq!(m[10], 0x30);
        assert!(leaf > 300 && leaf < list);
    }
}
