//! Builders for well-formed first-flight payloads: TLS/DTLS hellos, protected QUIC Initial
//! packets, a Google QUIC server handshake packet and an SSH KEXINIT.
//!
//! Owns: producing real wire bytes for unit tests, the benchmark and fuzz seeds (QUIC Initials
//! are really encrypted with the Initial keys, so the parser's AEAD check is exercised).
//! Must not: be used on the packet path; it allocates freely and panics on impossible specs
//! (lengths that do not fit their fields).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes128Gcm;

use crate::protocols::quic;

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
    let body = client_hello_body(spec, false);
    let mut m = vec![1];
    u24_len(&mut m, body.len());
    m.extend_from_slice(&body);
    m
}

fn tls_record(content_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut r = vec![content_type, 0x03, 0x01];
    u16_len(&mut r, payload.len());
    r.extend_from_slice(payload);
    r
}

/// A ClientHello in one TLS handshake record.
pub fn tls_client_hello_record(spec: &ClientHelloSpec) -> Vec<u8> {
    tls_record(0x16, &client_hello_message(spec))
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
    let mut m = vec![1];
    u24_len(&mut m, body.len());
    m.extend_from_slice(&body);
    tls_record(0x16, &m)
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
    let mut m = vec![2];
    u24_len(&mut m, body.len());
    m.extend_from_slice(&body);
    tls_record(0x16, &m)
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

/// An unencrypted `SSH_MSG_KEXINIT` packet (RFC 4253 sections 6 and 7.1, block size 8) whose
/// `kex_algorithms` name-list is `kex_algorithms`, with OpenSSH-like other lists.
pub fn ssh_kexinit(kex_algorithms: &str) -> Vec<u8> {
    let mut payload = vec![20];
    payload.extend_from_slice(&[0x5a; 16]);
    let lists = [
        kex_algorithms,
        "ssh-ed25519,rsa-sha2-512",
        "chacha20-poly1305@openssh.com,aes128-ctr",
        "chacha20-poly1305@openssh.com,aes128-ctr",
        "hmac-sha2-256-etm@openssh.com",
        "hmac-sha2-256-etm@openssh.com",
        "none,zlib@openssh.com",
        "none,zlib@openssh.com",
        "",
        "",
    ];
    for l in lists {
        payload.extend_from_slice(&u32::try_from(l.len()).expect("fits").to_be_bytes());
        payload.extend_from_slice(l.as_bytes());
    }
    payload.extend_from_slice(&[0, 0, 0, 0, 0]);
    let mut padding = 8 - (4 + 1 + payload.len()) % 8;
    if padding < 4 {
        padding += 8;
    }
    let len = u32::try_from(1 + payload.len() + padding).expect("fits");
    let mut pkt = len.to_be_bytes().to_vec();
    pkt.push(u8::try_from(padding).expect("fits"));
    pkt.extend_from_slice(&payload);
    pkt.resize(pkt.len() + padding, 0x11);
    pkt
}

fn put_varint(v: &mut Vec<u8>, x: u64) {
    if x < 64 {
        v.push(u8::try_from(x).expect("fits"));
    } else if x < 16384 {
        v.extend_from_slice(&(u16::try_from(x).expect("fits") | 0x4000).to_be_bytes());
    } else {
        v.extend_from_slice(&(u32::try_from(x).expect("fits") | 0x8000_0000).to_be_bytes());
    }
}

/// A protected client Initial packet of `version` with DCID `dcid`, carrying CRYPTO frames
/// `(offset, data)`, padded (PADDING frames) to at least `pad_to` bytes.
pub fn quic_initial(
    version: u32,
    dcid: &[u8],
    pn: u32,
    frames: &[(u64, &[u8])],
    pad_to: usize,
) -> Vec<u8> {
    protect(version, dcid, dcid, pn, frames, pad_to)
}

/// Like [`quic_initial`], but protected with the keys of `key_dcid` (the client's first DCID,
/// which keeps protecting Initials after the DCID changed).
pub fn quic_initial_with_keys_of(
    version: u32,
    dcid: &[u8],
    key_dcid: &[u8],
    pn: u32,
    frames: &[(u64, &[u8])],
) -> Vec<u8> {
    protect(version, dcid, key_dcid, pn, frames, 0)
}

fn protect(
    version: u32,
    dcid: &[u8],
    key_dcid: &[u8],
    pn: u32,
    frames: &[(u64, &[u8])],
    pad_to: usize,
) -> Vec<u8> {
    let (salt, v2): (&[u8; 20], bool) = match version {
        quic::VERSION_2 => (&quic::SALT_V2, true),
        0xff00_001d..=0xff00_0020 => (&quic::SALT_DRAFT29, false),
        _ => (&quic::SALT_V1, false),
    };
    let keys = quic::client_initial_keys(salt, v2, key_dcid).expect("keys derive");
    let mut payload = Vec::new();
    for (off, data) in frames {
        payload.push(0x06);
        put_varint(&mut payload, *off);
        put_varint(&mut payload, data.len() as u64);
        payload.extend_from_slice(data);
    }
    let initial_type: u8 = if v2 { 1 } else { 0 };
    let mut header = vec![0xc0 | (initial_type << 4) | 0x03];
    header.extend_from_slice(&version.to_be_bytes());
    header.push(u8::try_from(dcid.len()).expect("fits"));
    header.extend_from_slice(dcid);
    header.push(0); // SCID length
    header.push(0); // token length
    let fixed = header.len() + 2 + 4 + 16;
    if fixed + payload.len() < pad_to {
        payload.resize(pad_to - fixed, 0);
    }
    put_varint_2(&mut header, 4 + payload.len() + 16);
    let pn_offset = header.len();
    header.extend_from_slice(&pn.to_be_bytes());
    let aead = Aes128Gcm::new_from_slice(&keys.key).expect("16-byte key");
    let nonce = quic::nonce(&keys.iv, u64::from(pn));
    let sealed = aead
        .encrypt(
            &nonce.into(),
            Payload {
                msg: &payload,
                aad: &header,
            },
        )
        .expect("encrypts");
    let mut pkt = header;
    pkt.extend_from_slice(&sealed);
    let mask = quic::hp_mask(&keys.hp, &pkt[pn_offset + 4..pn_offset + 20]).expect("mask");
    pkt[0] ^= mask[0] & 0x0f;
    for i in 0..4 {
        pkt[pn_offset + i] ^= mask[1 + i];
    }
    pkt
}

fn put_varint_2(v: &mut Vec<u8>, x: usize) {
    v.extend_from_slice(&(u16::try_from(x).expect("fits") | 0x4000).to_be_bytes());
}

/// A legacy Google QUIC (Q039–Q043) server packet without version (public flags `0x08`:
/// 8-byte connection ID, 1-byte packet number) carrying, after an ACK and a STOP_WAITING
/// frame, a STREAM frame on stream 1 with the handshake message `tag` (`REJ\0`, `SHLO`) and
/// three sorted entries; the 12-byte null-encryption hash is FNV-1a 128 over the public
/// header, the plaintext and `hash_label` (`b"Server"` for a real server packet).
pub fn gquic_server_handshake(tag: &[u8; 4], hash_label: &[u8]) -> Vec<u8> {
    let entries: [(&[u8; 4], &[u8]); 3] = [
        (b"STK\0", &[0x21; 20]),
        (b"SNO\0", &[0x42; 16]),
        (b"SCFG", &[0x63; 40]),
    ];
    let mut msg = tag.to_vec();
    msg.extend_from_slice(&u16::try_from(entries.len()).expect("fits").to_le_bytes());
    msg.extend_from_slice(&[0, 0]);
    let mut end = 0u32;
    for (t, v) in entries {
        end += u32::try_from(v.len()).expect("fits");
        msg.extend_from_slice(t);
        msg.extend_from_slice(&end.to_le_bytes());
    }
    for (_, v) in entries {
        msg.extend_from_slice(v);
    }
    // ACK (largest 1, delay, first block 1, no timestamps), STOP_WAITING, STREAM header.
    let mut plaintext = vec![0x40, 0x01, 0x03, 0xa5, 0x01, 0x00, 0x06, 0x00, 0xa0, 0x01];
    plaintext.extend_from_slice(&u16::try_from(msg.len()).expect("fits").to_be_bytes());
    plaintext.extend_from_slice(&msg);
    plaintext.resize(1000, 0); // PADDING frames
    let mut header = vec![0x08];
    header.extend_from_slice(&[0x25, 0x42, 0xda, 0xab, 0xb0, 0x35, 0x31, 0x7b]);
    header.push(0x01);
    let h = quic::fnv1a_128(&[&header, &plaintext, hash_label]);
    let mut pkt = header;
    pkt.extend_from_slice(&(h as u64).to_le_bytes());
    pkt.extend_from_slice(&((h >> 64) as u32).to_le_bytes());
    pkt.extend_from_slice(&plaintext);
    pkt
}

/// A first flight per protocol this crate's own parsers confirm, for benchmarks and seeds:
/// `(parser name, transport is UDP, payload)`.
pub fn first_flights() -> Vec<(&'static str, bool, Vec<u8>)> {
    let chrome = ClientHelloSpec::chrome_like("www.example.com");
    let hello = client_hello_message(&chrome);
    vec![
        ("tls", false, tls_client_hello_record(&chrome)),
        (
            "http",
            false,
            b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)\r\nAccept: */*\r\n\r\n".to_vec(),
        ),
        ("http2", false, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00".to_vec()),
        (
            "quic",
            true,
            quic_initial(quic::VERSION_1, &[0x5c; 8], 0, &[(0, &hello)], 1200),
        ),
        (
            "dtls",
            true,
            dtls_client_hello_record(&ClientHelloSpec::minimal("webrtc.example"), None),
        ),
    ]
}

/// A unicast DNS response (RD, RA, NOERROR) to one `IN` question for `name`: a CNAME to
/// `cname` first when given, then one A or AAAA record (TTL 300) per address, owned by the
/// last name in the chain; names after the question are compression pointers to it.
pub fn dns_response(
    id: u16,
    name: &str,
    cname: Option<&str>,
    addresses: &[std::net::IpAddr],
) -> Vec<u8> {
    fn encode(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in name.split('.').filter(|l| !l.is_empty()) {
            out.push(u8::try_from(label.len()).expect("label over 255 bytes"));
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }
    let ancount = addresses.len() + usize::from(cname.is_some());
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x8180u16.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(
        &u16::try_from(ancount)
            .expect("too many records")
            .to_be_bytes(),
    );
    m.extend_from_slice(&[0, 0, 0, 0]);
    let qtype: u16 = if addresses.first().is_some_and(|a| a.is_ipv6()) {
        28
    } else {
        1
    };
    m.extend_from_slice(&encode(name));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    // Pointer to the question name (offset 12).
    let mut owner = vec![0xC0, 0x0C];
    if let Some(c) = cname {
        let target = encode(c);
        m.extend_from_slice(&owner);
        m.extend_from_slice(&[0, 5, 0, 1, 0, 0, 1, 44]);
        m.extend_from_slice(
            &u16::try_from(target.len())
                .expect("long name")
                .to_be_bytes(),
        );
        let at = m.len();
        m.extend_from_slice(&target);
        owner = vec![
            0xC0 | u8::try_from(at >> 8).expect("offset"),
            (at & 0xFF) as u8,
        ];
    }
    for a in addresses {
        m.extend_from_slice(&owner);
        match a {
            std::net::IpAddr::V4(v4) => {
                m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 1, 44, 0, 4]);
                m.extend_from_slice(&v4.octets());
            }
            std::net::IpAddr::V6(v6) => {
                m.extend_from_slice(&[0, 28, 0, 1, 0, 0, 1, 44, 0, 16]);
                m.extend_from_slice(&v6.octets());
            }
        }
    }
    m
}

/// A deterministic xorshift64* generator for negative tests ("random bytes never confirm"):
/// the same seed gives the same sequence, so a failure is reproducible.
pub fn xorshift64_star(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
