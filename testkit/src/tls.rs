//! TLS and DTLS hellos with every field a test names: cipher and extension order, GREASE,
//! SNI, ALPN, groups, signature algorithms, supported versions, a post-quantum key share.
//!
//! Owns: ClientHello/ServerHello bodies for the parsers' tests and the JA3/JA4 vectors
//! (`synth`'s `tls` frames the handshake messages and records). Must not: imitate one client's
//! fingerprint (that is `synth`'s iOS ClientHello) or do cryptography.

use portolan_synth::tls::{handshake, record, CT_HANDSHAKE};

/// The fields of a ClientHello to build. Extension bodies are generated from the type list.
#[derive(Debug, Clone)]
pub struct ClientHelloSpec {
    /// `legacy_version` (0x0303 for TLS 1.2/1.3, 0xfefd for DTLS 1.2).
    pub legacy_version: u16,
    /// Cipher suites in wire order (GREASE allowed).
    pub ciphers: Vec<u16>,
    /// Extension types in wire order (GREASE allowed); bodies come from the fields below.
    pub extensions: Vec<u16>,
    /// Server name for extension 0.
    pub sni: String,
    /// ALPN protocols for extension 16.
    pub alpns: Vec<String>,
    /// Supported groups for extension 10.
    pub groups: Vec<u16>,
    /// EC point formats for extension 11.
    pub point_formats: Vec<u8>,
    /// Signature algorithms for extension 13.
    pub sig_algs: Vec<u16>,
    /// Versions for extension 43.
    pub supported_versions: Vec<u16>,
}

impl ClientHelloSpec {
    /// A Chrome-like hello (with GREASE) whose fingerprints are published:
    /// JA3 `98487aa16281980e7d1120d399efb6a4`, JA4 `t13d1516h2_8daaf6152771_d8a2da3f94cd`.
    pub fn chrome_like(sni: &str) -> ClientHelloSpec {
        ClientHelloSpec {
            legacy_version: 0x0303,
            ciphers: vec![
                0x0a0a, 4865, 4866, 4867, 49195, 49199, 49196, 49200, 52393, 52392, 49171, 49172,
                156, 157, 47, 53,
            ],
            extensions: vec![
                0x1a1a, 45, 51, 16, 65037, 23, 17613, 0, 11, 10, 43, 65281, 35, 18, 5, 13, 27,
                0x2a2a,
            ],
            sni: sni.to_string(),
            alpns: vec!["h2".to_string(), "http/1.1".to_string()],
            groups: vec![0x3a3a, 4588, 29, 23, 24],
            point_formats: vec![0],
            sig_algs: vec![
                0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
            ],
            supported_versions: vec![0x4a4a, 0x0304, 0x0303],
        }
    }

    /// A small TLS 1.3 hello with SNI and ALPN `h2`.
    pub fn minimal(sni: &str) -> ClientHelloSpec {
        ClientHelloSpec {
            legacy_version: 0x0303,
            ciphers: vec![0x1301, 0xc02f],
            extensions: vec![0, 10, 11, 13, 16, 43],
            sni: sni.to_string(),
            alpns: vec!["h2".to_string()],
            groups: vec![29],
            point_formats: vec![0],
            sig_algs: vec![0x0403],
            supported_versions: vec![0x0304, 0x0303],
        }
    }
}

fn u16_len(v: &mut Vec<u8>, len: usize) {
    v.extend_from_slice(&u16::try_from(len).expect("length fits u16").to_be_bytes());
}

fn u24_len(v: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).expect("length fits u24");
    v.extend_from_slice(&len.to_be_bytes()[1..]);
}

fn extension_body(spec: &ClientHelloSpec, typ: u16) -> Vec<u8> {
    let mut b = Vec::new();
    match typ {
        0 => {
            u16_len(&mut b, spec.sni.len() + 3);
            b.push(0);
            u16_len(&mut b, spec.sni.len());
            b.extend_from_slice(spec.sni.as_bytes());
        }
        5 => b.extend_from_slice(&[1, 0, 0, 0, 0]),
        10 => {
            u16_len(&mut b, spec.groups.len() * 2);
            spec.groups
                .iter()
                .for_each(|g| b.extend_from_slice(&g.to_be_bytes()));
        }
        11 => {
            b.push(u8::try_from(spec.point_formats.len()).expect("fits"));
            b.extend_from_slice(&spec.point_formats);
        }
        13 => {
            u16_len(&mut b, spec.sig_algs.len() * 2);
            spec.sig_algs
                .iter()
                .for_each(|s| b.extend_from_slice(&s.to_be_bytes()));
        }
        16 => {
            let list: usize = spec.alpns.iter().map(|a| a.len() + 1).sum();
            u16_len(&mut b, list);
            for a in &spec.alpns {
                b.push(u8::try_from(a.len()).expect("fits"));
                b.extend_from_slice(a.as_bytes());
            }
        }
        27 => b.extend_from_slice(&[2, 0, 2]),
        43 => {
            b.push(u8::try_from(spec.supported_versions.len() * 2).expect("fits"));
            spec.supported_versions
                .iter()
                .for_each(|v| b.extend_from_slice(&v.to_be_bytes()));
        }
        45 => b.extend_from_slice(&[1, 1]),
        51 => {
            u16_len(&mut b, 36);
            b.extend_from_slice(&[0x00, 0x1d, 0x00, 0x20]);
            b.extend_from_slice(&[0x42; 32]);
        }
        17613 => b.extend_from_slice(&[0, 3, 2, b'h', b'2']),
        65037 => b.extend_from_slice(&[0, 0, 1, 0, 1, 0x55, 0, 0x20, 0x11, 0x22]),
        65281 => b.push(0),
        t if t & 0x0f0f == 0x0a0a => b.push(0),
        _ => {}
    }
    b
}

/// The ClientHello body (after the handshake header); DTLS adds an empty cookie.
fn client_hello_body(spec: &ClientHelloSpec, dtls: bool) -> Vec<u8> {
    client_hello_body_with(spec, dtls, None)
}

/// [`client_hello_body`], with `key_share` (the `key_share` extension's body) when given.
fn client_hello_body_with(spec: &ClientHelloSpec, dtls: bool, key_share: Option<&[u8]>) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&spec.legacy_version.to_be_bytes());
    b.extend_from_slice(&[0x5a; 32]);
    b.push(32);
    b.extend_from_slice(&[0x33; 32]);
    if dtls {
        b.push(0);
    }
    u16_len(&mut b, spec.ciphers.len() * 2);
    spec.ciphers
        .iter()
        .for_each(|c| b.extend_from_slice(&c.to_be_bytes()));
    b.extend_from_slice(&[1, 0]);
    let mut exts = Vec::new();
    for &t in &spec.extensions {
        let body = match (t, key_share) {
            (51, Some(ks)) => ks.to_vec(),
            _ => extension_body(spec, t),
        };
        exts.extend_from_slice(&t.to_be_bytes());
        u16_len(&mut exts, body.len());
        exts.extend_from_slice(&body);
    }
    u16_len(&mut b, exts.len());
    b.extend_from_slice(&exts);
    b
}

/// A ClientHello handshake message: type 1, 3-byte length, body (as TLS and QUIC carry it).
pub fn client_hello_message(spec: &ClientHelloSpec) -> Vec<u8> {
    handshake(1, &client_hello_body(spec, false))
}

/// One handshake record (legacy version TLS 1.0, as clients send their first record).
fn tls_record(content_type: u8, payload: &[u8]) -> Vec<u8> {
    record(content_type, 0x0301, payload)
}

/// A ClientHello in one TLS handshake record.
pub fn tls_client_hello_record(spec: &ClientHelloSpec) -> Vec<u8> {
    tls_record(CT_HANDSHAKE, &client_hello_message(spec))
}

/// A post-quantum ClientHello in one TLS record, as current iOS and Chrome send it: `spec`'s
/// extensions with a `key_share` carrying an X25519MLKEM768 share (group 0x11ec, 1,216 bytes)
/// and an X25519 share (32 bytes); about 1.5 KB with [`ClientHelloSpec::chrome_like`], more than
/// one TCP segment.
pub fn tls_pq_client_hello_record(spec: &ClientHelloSpec) -> Vec<u8> {
    let mut shares = Vec::new();
    shares.extend_from_slice(&[0x11, 0xec]);
    u16_len(&mut shares, 1216);
    shares.extend((0..1216u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8));
    shares.extend_from_slice(&[0x00, 0x1d, 0x00, 0x20]);
    shares.extend_from_slice(&[0x42; 32]);
    let mut ks = Vec::new();
    u16_len(&mut ks, shares.len());
    ks.extend_from_slice(&shares);
    let body = client_hello_body_with(spec, false, Some(&ks));
    tls_record(CT_HANDSHAKE, &handshake(1, &body))
}

/// A ServerHello in one TLS handshake record; with `supported_version`, a TLS 1.3-style
/// `supported_versions` extension carries it.
pub fn tls_server_hello_record(cipher: u16, supported_version: Option<u16>) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x77; 32]);
    body.push(0);
    body.extend_from_slice(&cipher.to_be_bytes());
    body.push(0);
    let mut exts = Vec::new();
    if let Some(v) = supported_version {
        exts.extend_from_slice(&[0x00, 0x2b, 0x00, 0x02]);
        exts.extend_from_slice(&v.to_be_bytes());
    }
    exts.extend_from_slice(&[0xff, 0x01, 0x00, 0x01, 0x00]);
    u16_len(&mut body, exts.len());
    body.extend_from_slice(&exts);
    tls_record(CT_HANDSHAKE, &handshake(2, &body))
}

/// A DTLS ClientHello, in one record or (with `fragment_at`) fragmented into two records.
pub fn dtls_client_hello_record(spec: &ClientHelloSpec, fragment_at: Option<usize>) -> Vec<u8> {
    let body = client_hello_body(spec, true);
    let cut = fragment_at.unwrap_or(body.len()).min(body.len());
    let mut out = Vec::new();
    let mut seq = 0u64;
    for (off, part) in [(0, &body[..cut]), (cut, &body[cut..])] {
        if part.is_empty() && off != 0 {
            continue;
        }
        let mut hs = vec![1];
        u24_len(&mut hs, body.len());
        hs.extend_from_slice(&[0, 0]);
        u24_len(&mut hs, off);
        u24_len(&mut hs, part.len());
        hs.extend_from_slice(part);
        out.extend_from_slice(&[22, 0xfe, 0xfd, 0, 0]);
        out.extend_from_slice(&seq.to_be_bytes()[2..]);
        u16_len(&mut out, hs.len());
        out.extend_from_slice(&hs);
        seq += 1;
    }
    out
}

/// A DTLS 1.2 ServerHello (no extensions) in one record, epoch 0, sequence 0.
pub fn dtls_server_hello_record(cipher: u16) -> Vec<u8> {
    let mut body = vec![0xfe, 0xfd];
    body.extend_from_slice(&[0x66; 32]);
    body.push(0);
    body.extend_from_slice(&cipher.to_be_bytes());
    body.push(0);
    let mut hs = vec![2];
    u24_len(&mut hs, body.len());
    hs.extend_from_slice(&[0, 0]);
    u24_len(&mut hs, 0);
    u24_len(&mut hs, body.len());
    hs.extend_from_slice(&body);
    let mut out = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0];
    u16_len(&mut out, hs.len());
    out.extend_from_slice(&hs);
    out
}
