//! TLS ClientHello / ServerHello field extraction and the JA3 / JA4 client fingerprints.
//!
//! Owns: turning one complete hello (already cut out of its TLS record, DTLS record or QUIC
//! CRYPTO stream) into [`TlsMeta`]: SNI, ALPN, offered and chosen versions, JA3 and JA4. The
//! fingerprint-relevant extension bodies (SNI, ALPN, groups, point formats, signature
//! algorithms, supported versions) are read here without allocating, with exactly the
//! acceptance rules of `tls-parser`'s ClientHello extension parsers; JA3 / JA4 text is written
//! with hand-rolled digit writers and hashed from stack buffers.
//! Must not: walk records or packets (the protocol modules do that), allocate beyond the
//! metadata it returns (a list longer than [`SORT_STACK_ITEMS`] spills to one heap buffer), or
//! panic on any bytes.

use md5::{Digest as _, Md5};
use sha2::Sha256;
use tls_parser::{TlsCipherSuiteID, TlsServerHelloContents};

use crate::probe::TlsMeta;

/// Longest SNI / ALPN string kept (longer values are cut, never rejected).
const MAX_NAME_LEN: usize = 255;
/// Most ALPN values kept per hello.
const MAX_ALPNS: usize = 16;
/// Values sorted on the stack for JA4; longer lists are sorted in one heap buffer instead.
const SORT_STACK_ITEMS: usize = 128;
/// Bytes of JA4 hash input gathered on the stack before they are fed to SHA-256.
const HASH_CHUNK: usize = 320;
/// JA4 `b` / `c` part of an empty list.
const JA4_EMPTY_HASH: &str = "000000000000";

/// What carried the hello: decides the JA4 prefix (`t`, `q`, `d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HelloCarrier {
    /// TLS over TCP.
    Tcp,
    /// TLS inside QUIC CRYPTO frames. QUIC metadata carries no fingerprints today (the QUIC
    /// parser only asks for SNI / ALPN), so only the tests build JA4 with this prefix.
    #[cfg_attr(not(test), allow(dead_code))]
    Quic,
    /// DTLS over UDP.
    Dtls,
}

impl HelloCarrier {
    fn ja4_prefix(self) -> char {
        match self {
            HelloCarrier::Tcp => 't',
            HelloCarrier::Quic => 'q',
            HelloCarrier::Dtls => 'd',
        }
    }
}

/// True for the reserved GREASE values (RFC 8701): `0x?a?a` with both bytes equal.
pub(crate) fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// EVE name of a TLS/DTLS protocol version (as Suricata prints it).
pub(crate) fn version_name(v: u16) -> String {
    match v {
        0x0002 | 0x0200 => "SSLv2".to_string(),
        0x0300 => "SSLv3".to_string(),
        0x0301 => "TLSv1".to_string(),
        0x0302 => "TLS 1.1".to_string(),
        0x0303 => "TLS 1.2".to_string(),
        0x0304 => "TLS 1.3".to_string(),
        0x7f00..=0x7fff => format!("TLS 1.3 draft-{}", v & 0xff),
        0xfeff => "DTLS 1.0".to_string(),
        0xfefd => "DTLS 1.2".to_string(),
        0xfefc => "DTLS 1.3".to_string(),
        _ => format!("0x{v:04x}"),
    }
}

/// Lower-case hex digits.
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex digit of the low nibble of `v`.
fn hex_digit(v: u8) -> u8 {
    HEX_DIGITS[usize::from(v & 0x0f)]
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(hex_digit(b >> 4)));
        s.push(char::from(hex_digit(b)));
    }
    s
}

/// Appends `v` in decimal ASCII, without the `core::fmt` machinery.
fn push_decimal(out: &mut Vec<u8>, v: u16) {
    let v = u32::from(v);
    let mut started = false;
    for div in [10_000u32, 1_000, 100, 10] {
        let d = (v / div) % 10;
        if started || d != 0 {
            started = true;
            out.push(b'0' + d as u8);
        }
    }
    out.push(b'0' + (v % 10) as u8);
}

/// Appends `items` in decimal joined by `-` (the JA3 list form).
fn push_decimal_list(out: &mut Vec<u8>, items: impl Iterator<Item = u16>) {
    for (i, v) in items.enumerate() {
        if i > 0 {
            out.push(b'-');
        }
        push_decimal(out, v);
    }
}

/// Appends `n` as exactly two decimal digits (`n` ≤ 99).
fn push_two_digits(s: &mut String, n: usize) {
    let n = n.min(99) as u8;
    s.push(char::from(b'0' + n / 10));
    s.push(char::from(b'0' + n % 10));
}

/// A byte string as a printable name: lossy UTF-8, cut at [`MAX_NAME_LEN`] bytes.
fn name_string(bytes: &[u8]) -> String {
    let cut = bytes.get(..MAX_NAME_LEN).unwrap_or(bytes);
    String::from_utf8_lossy(cut).into_owned()
}

/// Big-endian `u16` values of `bytes` (a trailing odd byte is ignored).
fn be_u16s(bytes: &[u8]) -> impl Iterator<Item = u16> + Clone + '_ {
    bytes.chunks_exact(2).map(|c| match c {
        [hi, lo] => u16::from_be_bytes([*hi, *lo]),
        _ => 0,
    })
}

/// `u16`-length-prefixed data at the start of `b`.
fn u16_len_data(b: &[u8]) -> Option<&[u8]> {
    let len = usize::from(u16::from_be_bytes([*b.first()?, *b.get(1)?]));
    b.get(2..2 + len)
}

/// `u8`-length-prefixed data at the start of `b`, and the bytes after it.
fn u8_len_data(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = usize::from(*b.first()?);
    Some((b.get(1..1 + len)?, b.get(1 + len..)?))
}

/// `(type, body)` of each extension of a raw extension block; stops at the first extension
/// whose lengths do not add up (see [`extension_block_valid`]).
#[derive(Clone)]
struct Extensions<'a>(&'a [u8]);

impl<'a> Iterator for Extensions<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.0;
        let typ = u16::from_be_bytes([*b.first()?, *b.get(1)?]);
        let len = usize::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?]));
        let body = b.get(4..4 + len)?;
        self.0 = b.get(4 + len..)?;
        Some((typ, body))
    }
}

/// True when the extension lengths of `block` add up to exactly its size.
fn extension_block_valid(block: &[u8]) -> bool {
    let mut it = Extensions(block);
    while it.next().is_some() {}
    it.0.is_empty()
}

/// The `host_name` of an SNI extension body: `None` when the body is malformed (the
/// extension then yields nothing), `Some(None)` when it names no host. Follows tls-parser:
/// an empty body is an empty list, entries are read while complete.
fn sni_host_name(body: &[u8]) -> Option<Option<&[u8]>> {
    if body.is_empty() {
        return Some(None);
    }
    let mut list = u16_len_data(body)?;
    while let Some(&typ) = list.first() {
        let Some(len) = list.get(1..3) else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([*len.first()?, *len.get(1)?]));
        let Some(name) = list.get(3..3 + len) else {
            break;
        };
        if typ == 0 {
            return Some(Some(name));
        }
        list = list.get(3 + len..).unwrap_or(&[]);
    }
    Some(None)
}

/// Protocol names of an ALPN extension body (read while complete); `None` when malformed.
fn alpn_names(body: &[u8]) -> Option<impl Iterator<Item = &[u8]>> {
    let mut list = u16_len_data(body)?;
    Some(std::iter::from_fn(move || {
        let (name, rest) = u8_len_data(list)?;
        list = rest;
        Some(name)
    }))
}

/// A `u16` list with a `u16` length (supported groups): `None` when malformed or odd.
fn even_u16_list(body: &[u8]) -> Option<&[u8]> {
    let list = u16_len_data(body)?;
    (list.len() % 2 == 0).then_some(list)
}

/// The version list of a ClientHello `supported_versions` body (tls-parser rules: a 2-byte
/// body is one version, otherwise one length byte then an even-sized list).
fn supported_versions_list(body: &[u8]) -> Option<&[u8]> {
    if body.len() == 2 {
        return Some(body);
    }
    let list = body.get(1..)?;
    (list.len() % 2 == 0).then_some(list)
}

/// The fields of a ClientHello that JA3, JA4 and the flow record need, borrowed from the
/// message.
#[derive(Debug, Default)]
struct ClientHelloFields<'a> {
    legacy_version: u16,
    ciphers: &'a [TlsCipherSuiteID],
    /// The whole (valid) extension block: extension types in wire order, GREASE included.
    extensions: &'a [u8],
    /// Supported groups, big-endian `u16` pairs.
    groups: &'a [u8],
    point_formats: &'a [u8],
    /// Signature algorithms, big-endian `u16` pairs.
    sig_algs: &'a [u8],
    /// Supported versions, big-endian `u16` pairs.
    supported_versions: &'a [u8],
    sni: Option<&'a [u8]>,
    alpns: Vec<String>,
    first_alpn_raw: Option<&'a [u8]>,
}

impl<'a> ClientHelloFields<'a> {
    /// Reads the fields; `None` when the extension block lengths do not add up. A malformed
    /// extension body keeps its type (for the fingerprints) but yields no fields:
    /// fingerprints must not depend on whether we understood the contents.
    fn extract(
        legacy_version: u16,
        ciphers: &'a [TlsCipherSuiteID],
        ext_block: Option<&'a [u8]>,
    ) -> Option<Self> {
        let block = ext_block.unwrap_or(&[]);
        if !extension_block_valid(block) {
            return None;
        }
        let mut f = ClientHelloFields {
            legacy_version,
            ciphers,
            extensions: block,
            ..Default::default()
        };
        for (typ, body) in Extensions(block) {
            match typ {
                0x0000 if f.sni.is_none() => {
                    if let Some(host) = sni_host_name(body) {
                        f.sni = host;
                    }
                }
                0x0010 => {
                    if let Some(names) = alpn_names(body) {
                        for (i, name) in names.take(MAX_ALPNS).enumerate() {
                            if i == 0 && f.first_alpn_raw.is_none() {
                                f.first_alpn_raw = Some(name);
                            }
                            f.alpns.push(name_string(name));
                        }
                    }
                }
                0x000a => {
                    if let Some(list) = even_u16_list(body) {
                        f.groups = list;
                    }
                }
                0x000b => {
                    if let Some((formats, _)) = u8_len_data(body) {
                        f.point_formats = formats;
                    }
                }
                0x000d => {
                    if let Some(list) = u16_len_data(body) {
                        f.sig_algs = list.get(..list.len() & !1).unwrap_or(&[]);
                    }
                }
                0x002b => {
                    if let Some(list) = supported_versions_list(body) {
                        f.supported_versions = list;
                    }
                }
                _ => {}
            }
        }
        Some(f)
    }

    fn extension_types(&self) -> impl Iterator<Item = u16> + Clone + 'a {
        Extensions(self.extensions).map(|(t, _)| t)
    }

    fn cipher_values(&self) -> impl Iterator<Item = u16> + Clone + 'a {
        self.ciphers.iter().map(|c| c.0)
    }

    /// Highest offered version: from `supported_versions` when present, else the legacy one.
    fn offered_version(&self) -> u16 {
        be_u16s(self.supported_versions)
            .filter(|v| !is_grease(*v))
            .max()
            .unwrap_or(self.legacy_version)
    }

    fn ja3_string(&self) -> String {
        let ext_count = self.extensions.len() / 4;
        let mut out = Vec::with_capacity(
            16 + 6 * (self.ciphers.len() + ext_count + self.groups.len() / 2)
                + 4 * self.point_formats.len(),
        );
        push_decimal(&mut out, self.legacy_version);
        out.push(b',');
        push_decimal_list(&mut out, self.cipher_values().filter(|c| !is_grease(*c)));
        out.push(b',');
        push_decimal_list(&mut out, self.extension_types().filter(|e| !is_grease(*e)));
        out.push(b',');
        push_decimal_list(&mut out, be_u16s(self.groups).filter(|g| !is_grease(*g)));
        out.push(b',');
        push_decimal_list(&mut out, self.point_formats.iter().map(|&p| u16::from(p)));
        // Digits, `-` and `,` only: always UTF-8.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    fn ja4(&self, carrier: HelloCarrier) -> String {
        let version = match self.offered_version() {
            0x0304 => "13",
            0x0303 => "12",
            0x0302 => "11",
            0x0301 => "10",
            0x0300 => "s3",
            0x0002 | 0x0200 => "s2",
            0x0100 => "s1",
            0xfeff => "d1",
            0xfefd => "d2",
            0xfefc => "d3",
            _ => "00",
        };
        let sni = if self.extension_types().any(|t| t == 0x0000) {
            'd'
        } else {
            'i'
        };
        let ciphers = self.cipher_values().filter(|c| !is_grease(*c));
        let exts = self.extension_types().filter(|e| !is_grease(*e));
        let mut s = String::with_capacity(36);
        s.push(carrier.ja4_prefix());
        s.push_str(version);
        s.push(sni);
        push_two_digits(&mut s, ciphers.clone().count());
        push_two_digits(&mut s, exts.clone().count());
        push_ja4_alpn(&mut s, self.first_alpn_raw);
        s.push('_');

        with_sorted(ciphers, |sorted| {
            let mut h = HexListHash::default();
            h.list(sorted.iter().copied());
            h.finish_into(&mut s);
        });
        s.push('_');

        with_sorted(exts.filter(|e| *e != 0x0000 && *e != 0x0010), |sorted| {
            if sorted.is_empty() {
                s.push_str(JA4_EMPTY_HASH);
                return;
            }
            let mut h = HexListHash::default();
            h.list(sorted.iter().copied());
            let mut sig_algs = be_u16s(self.sig_algs).filter(|v| !is_grease(*v)).peekable();
            if sig_algs.peek().is_some() {
                h.push(b"_");
                h.list(sig_algs);
            }
            h.finish_into(&mut s);
        });
        s
    }
}

/// Collects `items` and hands them to `f` sorted: on the stack for up to
/// [`SORT_STACK_ITEMS`] values, in one heap buffer beyond (never truncated).
fn with_sorted<R>(items: impl Iterator<Item = u16>, f: impl FnOnce(&[u16]) -> R) -> R {
    let mut stack = [0u16; SORT_STACK_ITEMS];
    let mut n = 0usize;
    let mut spill: Vec<u16> = Vec::new();
    for v in items {
        if spill.is_empty() {
            if let Some(slot) = stack.get_mut(n) {
                *slot = v;
                n += 1;
                continue;
            }
            spill.reserve(2 * SORT_STACK_ITEMS);
            spill.extend_from_slice(&stack);
        }
        spill.push(v);
    }
    let sorted: &mut [u16] = if spill.is_empty() {
        stack.get_mut(..n).unwrap_or_default()
    } else {
        &mut spill
    };
    sorted.sort_unstable();
    f(sorted)
}

/// SHA-256 of a JA4 `0a0b,0c0d,...` text, written in chunks from a stack buffer.
struct HexListHash {
    hasher: Sha256,
    buf: [u8; HASH_CHUNK],
    len: usize,
    /// Nothing was written yet (the JA4 hash of an empty text is [`JA4_EMPTY_HASH`]).
    empty: bool,
}

impl Default for HexListHash {
    fn default() -> Self {
        HexListHash {
            hasher: Sha256::new(),
            buf: [0; HASH_CHUNK],
            len: 0,
            empty: true,
        }
    }
}

impl HexListHash {
    fn flush(&mut self) {
        self.hasher
            .update(self.buf.get(..self.len).unwrap_or_default());
        self.len = 0;
    }

    /// Appends `bytes` (at most a few bytes at a time) to the hashed text.
    fn push(&mut self, bytes: &[u8]) {
        self.empty = false;
        if self.len + bytes.len() > HASH_CHUNK {
            self.flush();
        }
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => self.hasher.update(bytes),
        }
    }

    /// Appends `values` as 4-digit lower-case hex, comma separated.
    fn list(&mut self, values: impl Iterator<Item = u16>) {
        for (i, v) in values.enumerate() {
            let [hi, lo] = v.to_be_bytes();
            let digits = [
                b',',
                hex_digit(hi >> 4),
                hex_digit(hi),
                hex_digit(lo >> 4),
                hex_digit(lo),
            ];
            self.push(if i == 0 { &digits[1..] } else { &digits[..] });
        }
    }

    /// Appends the first 12 hex digits of the hash (or [`JA4_EMPTY_HASH`] for an empty text).
    fn finish_into(mut self, s: &mut String) {
        if self.empty {
            s.push_str(JA4_EMPTY_HASH);
            return;
        }
        self.flush();
        let digest = self.hasher.finalize();
        for &b in digest.iter().take(6) {
            s.push(char::from(hex_digit(b >> 4)));
            s.push(char::from(hex_digit(b)));
        }
    }
}

/// Appends the JA4 ALPN field: first and last character of the first ALPN value, `00`
/// without one, and the first and last hex digit of the value when either end byte is not
/// alphanumeric.
fn push_ja4_alpn(s: &mut String, first: Option<&[u8]>) {
    let (Some(&f), Some(&l)) = (first.and_then(|v| v.first()), first.and_then(|v| v.last())) else {
        s.push_str("00");
        return;
    };
    if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
        s.push(char::from(f));
        s.push(char::from(l));
    } else {
        s.push(char::from(hex_digit(f >> 4)));
        s.push(char::from(hex_digit(l)));
    }
}

/// Builds the flow metadata of a ClientHello from its parsed top-level fields.
///
/// `ext_block` is the raw extensions block (without its 2-byte length). `None` when the
/// extension block is malformed.
pub(crate) fn client_hello_meta(
    carrier: HelloCarrier,
    legacy_version: u16,
    ciphers: &[TlsCipherSuiteID],
    ext_block: Option<&[u8]>,
) -> Option<TlsMeta> {
    let f = ClientHelloFields::extract(legacy_version, ciphers, ext_block)?;
    let ja3_string = f.ja3_string();
    let ja3 = hex(&Md5::digest(ja3_string.as_bytes()));
    let ja4 = f.ja4(carrier);
    let version = version_name(f.offered_version());
    let supported_versions = be_u16s(f.supported_versions)
        .filter(|v| !is_grease(*v))
        .map(version_name)
        .collect();
    Some(TlsMeta {
        sni: f.sni.map(name_string),
        version: Some(version),
        client_alpns: f.alpns,
        supported_versions,
        ja3: Some(ja3),
        ja3_string: Some(ja3_string),
        ja4: Some(ja4),
        server_cipher: None,
        server_version: None,
    })
}

/// Parses a complete TLS ClientHello handshake message (type byte, 3-byte length, body) the way
/// TLS and QUIC carry it. `None` when it is not a well-formed ClientHello.
pub(crate) fn parse_client_hello_message(msg: &[u8], carrier: HelloCarrier) -> Option<TlsMeta> {
    let (_, parsed) = tls_parser::parse_tls_message_handshake(msg).ok()?;
    match parsed {
        tls_parser::TlsMessage::Handshake(tls_parser::TlsMessageHandshake::ClientHello(ch)) => {
            client_hello_meta(carrier, ch.version.0, &ch.ciphers, ch.ext)
        }
        _ => None,
    }
}

/// SNI and ALPN of a ClientHello, for carriers that report no fingerprints (QUIC).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ClientHelloNames {
    /// Server Name Indication.
    pub(crate) sni: Option<String>,
    /// ALPN protocols offered.
    pub(crate) alpns: Vec<String>,
}

/// Like [`parse_client_hello_message`] (same `None` cases) but only the SNI and ALPN, without
/// computing JA3 / JA4.
pub(crate) fn parse_client_hello_names(msg: &[u8]) -> Option<ClientHelloNames> {
    let (_, parsed) = tls_parser::parse_tls_message_handshake(msg).ok()?;
    match parsed {
        tls_parser::TlsMessage::Handshake(tls_parser::TlsMessageHandshake::ClientHello(ch)) => {
            let f = ClientHelloFields::extract(ch.version.0, &ch.ciphers, ch.ext)?;
            Some(ClientHelloNames {
                sni: f.sni.map(name_string),
                alpns: f.alpns,
            })
        }
        _ => None,
    }
}

/// Builds the flow metadata of a ServerHello: chosen cipher and chosen version (from the
/// `supported_versions` extension when present, as TLS 1.3 servers send it).
pub(crate) fn server_hello_meta(sh: &TlsServerHelloContents<'_>) -> TlsMeta {
    let mut chosen = sh.version.0;
    if let Some(block) = sh.ext.filter(|b| extension_block_valid(b)) {
        for (typ, body) in Extensions(block) {
            if typ == 0x002b {
                if let Some(v) = body.get(..2) {
                    chosen = u16::from_be_bytes([v[0], v[1]]);
                }
            }
        }
    }
    let name = version_name(chosen);
    TlsMeta {
        version: Some(name.clone()),
        server_version: Some(name),
        server_cipher: Some(sh.cipher.0),
        ..Default::default()
    }
}

/// The straightforward implementation this module replaced (tls-parser extension parsing,
/// `format!`, Vec collects), kept as the oracle the fast builders are compared against.
#[cfg(test)]
mod reference {
    use super::{is_grease, name_string, version_name, HelloCarrier, MAX_ALPNS};
    use crate::probe::TlsMeta;
    use md5::{Digest as _, Md5};
    use sha2::Sha256;
    use tls_parser::TlsExtension;

    #[derive(Debug, Default)]
    struct Fields {
        legacy_version: u16,
        ciphers: Vec<u16>,
        extensions: Vec<u16>,
        groups: Vec<u16>,
        point_formats: Vec<u8>,
        sig_algs: Vec<u16>,
        supported_versions: Vec<u16>,
        sni: Option<String>,
        alpns: Vec<String>,
        first_alpn_raw: Option<Vec<u8>>,
    }

    fn split_extensions(mut block: &[u8]) -> Option<Vec<(u16, &[u8])>> {
        let mut out = Vec::new();
        while !block.is_empty() {
            let head = block.get(..4)?;
            let typ = u16::from_be_bytes([head[0], head[1]]);
            let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let whole = block.get(..4 + len)?;
            out.push((typ, whole));
            block = block.get(4 + len..)?;
        }
        Some(out)
    }

    impl Fields {
        fn extract(
            legacy_version: u16,
            ciphers: Vec<u16>,
            ext_block: Option<&[u8]>,
        ) -> Option<Self> {
            let mut f = Fields {
                legacy_version,
                ciphers,
                ..Default::default()
            };
            let exts = match ext_block {
                Some(block) => split_extensions(block)?,
                None => Vec::new(),
            };
            for (typ, raw) in exts {
                f.extensions.push(typ);
                let Ok((_, ext)) = tls_parser::parse_tls_client_hello_extension(raw) else {
                    continue;
                };
                match ext {
                    TlsExtension::SNI(names) if f.sni.is_none() => {
                        f.sni = names
                            .iter()
                            .find(|(t, _)| t.0 == 0)
                            .map(|(_, name)| name_string(name));
                    }
                    TlsExtension::ALPN(protos) => {
                        if f.first_alpn_raw.is_none() {
                            f.first_alpn_raw = protos.first().map(|p| p.to_vec());
                        }
                        for p in protos.iter().take(MAX_ALPNS) {
                            f.alpns.push(name_string(p));
                        }
                    }
                    TlsExtension::EllipticCurves(groups) => {
                        f.groups = groups.iter().map(|g| g.0).collect();
                    }
                    TlsExtension::EcPointFormats(formats) => f.point_formats = formats.to_vec(),
                    TlsExtension::SignatureAlgorithms(algs) => f.sig_algs = algs,
                    TlsExtension::SupportedVersions(versions) => {
                        f.supported_versions = versions.iter().map(|v| v.0).collect();
                    }
                    _ => {}
                }
            }
            Some(f)
        }

        fn offered_version(&self) -> u16 {
            self.supported_versions
                .iter()
                .copied()
                .filter(|v| !is_grease(*v))
                .max()
                .unwrap_or(self.legacy_version)
        }

        fn ja3_string(&self) -> String {
            fn join<T: Copy + Into<u32>>(items: impl Iterator<Item = T>) -> String {
                let mut s = String::new();
                for (i, v) in items.enumerate() {
                    if i > 0 {
                        s.push('-');
                    }
                    s.push_str(&v.into().to_string());
                }
                s
            }
            format!(
                "{},{},{},{},{}",
                self.legacy_version,
                join(self.ciphers.iter().copied().filter(|c| !is_grease(*c))),
                join(self.extensions.iter().copied().filter(|e| !is_grease(*e))),
                join(self.groups.iter().copied().filter(|g| !is_grease(*g))),
                join(self.point_formats.iter().copied()),
            )
        }

        fn ja4(&self, carrier: HelloCarrier) -> String {
            let version = match self.offered_version() {
                0x0304 => "13",
                0x0303 => "12",
                0x0302 => "11",
                0x0301 => "10",
                0x0300 => "s3",
                0x0002 | 0x0200 => "s2",
                0x0100 => "s1",
                0xfeff => "d1",
                0xfefd => "d2",
                0xfefc => "d3",
                _ => "00",
            };
            let sni = if self.extensions.contains(&0x0000) {
                'd'
            } else {
                'i'
            };
            let ciphers: Vec<u16> = self
                .ciphers
                .iter()
                .copied()
                .filter(|c| !is_grease(*c))
                .collect();
            let exts: Vec<u16> = self
                .extensions
                .iter()
                .copied()
                .filter(|e| !is_grease(*e))
                .collect();
            let alpn = ja4_alpn(self.first_alpn_raw.as_deref());
            let a = format!(
                "{}{}{}{:02}{:02}{}",
                carrier.ja4_prefix(),
                version,
                sni,
                ciphers.len().min(99),
                exts.len().min(99),
                alpn
            );
            let mut sorted_ciphers = ciphers;
            sorted_ciphers.sort_unstable();
            let b = truncated_sha256(&hex_list(&sorted_ciphers));
            let mut sorted_exts: Vec<u16> = exts
                .into_iter()
                .filter(|e| *e != 0x0000 && *e != 0x0010)
                .collect();
            sorted_exts.sort_unstable();
            let c = if sorted_exts.is_empty() {
                "000000000000".to_string()
            } else {
                let mut text = hex_list(&sorted_exts);
                let sig_algs: Vec<u16> = self
                    .sig_algs
                    .iter()
                    .copied()
                    .filter(|s| !is_grease(*s))
                    .collect();
                if !sig_algs.is_empty() {
                    text.push('_');
                    text.push_str(&hex_list(&sig_algs));
                }
                truncated_sha256(&text)
            };
            format!("{a}_{b}_{c}")
        }
    }

    pub(super) fn hex_list(values: &[u16]) -> String {
        let mut s = String::with_capacity(values.len() * 5);
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!("{v:04x}"));
        }
        s
    }

    pub(super) fn truncated_sha256(text: &str) -> String {
        if text.is_empty() {
            return "000000000000".to_string();
        }
        let digest = Sha256::digest(text.as_bytes());
        let mut h = super::hex(&digest);
        h.truncate(12);
        h
    }

    pub(super) fn ja4_alpn(first: Option<&[u8]>) -> String {
        let Some(value) = first else {
            return "00".to_string();
        };
        let (Some(&f), Some(&l)) = (value.first(), value.last()) else {
            return "00".to_string();
        };
        if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
            let mut s = String::with_capacity(2);
            s.push(char::from(f));
            s.push(char::from(l));
            s
        } else {
            let h = super::hex(value);
            let mut s = String::with_capacity(2);
            s.extend(h.chars().next());
            s.extend(h.chars().last());
            s
        }
    }

    pub(super) fn client_hello_meta(
        carrier: HelloCarrier,
        legacy_version: u16,
        ciphers: Vec<u16>,
        ext_block: Option<&[u8]>,
    ) -> Option<TlsMeta> {
        let f = Fields::extract(legacy_version, ciphers, ext_block)?;
        let ja3_string = f.ja3_string();
        let ja3 = super::hex(&Md5::digest(ja3_string.as_bytes()));
        Some(TlsMeta {
            sni: f.sni.clone(),
            version: Some(version_name(f.offered_version())),
            client_alpns: f.alpns.clone(),
            supported_versions: f
                .supported_versions
                .iter()
                .copied()
                .filter(|v| !is_grease(*v))
                .map(version_name)
                .collect(),
            ja3: Some(ja3),
            ja3_string: Some(ja3_string),
            ja4: Some(f.ja4(carrier)),
            server_cipher: None,
            server_version: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::reference::{hex_list, truncated_sha256};
    use super::*;
    use proptest::prelude::*;

    fn ja4_alpn(first: Option<&[u8]>) -> String {
        let mut s = String::new();
        push_ja4_alpn(&mut s, first);
        assert_eq!(s, reference::ja4_alpn(first));
        s
    }

    fn hashed_hex_list(values: &[u16]) -> String {
        let mut h = HexListHash::default();
        h.list(values.iter().copied());
        let mut s = String::new();
        h.finish_into(&mut s);
        assert_eq!(s, truncated_sha256(&hex_list(values)));
        s
    }

    #[test]
    fn grease_values() {
        assert!(is_grease(0x0a0a));
        assert!(is_grease(0xfafa));
        assert!(!is_grease(0x0a1a));
        assert!(!is_grease(0x1301));
    }

    #[test]
    fn decimal_writer_matches_display() {
        for v in (0..=u16::MAX).step_by(7).chain([0, 9, 10, 99, 100, 65535]) {
            let mut s = Vec::new();
            push_decimal(&mut s, v);
            assert_eq!(s, v.to_string().into_bytes());
        }
    }

    #[test]
    fn ja4_alpn_rules_from_spec() {
        assert_eq!(ja4_alpn(None), "00");
        assert_eq!(ja4_alpn(Some(b"")), "00");
        assert_eq!(ja4_alpn(Some(b"h2")), "h2");
        assert_eq!(ja4_alpn(Some(b"http/1.1")), "h1");
        assert_eq!(ja4_alpn(Some(b"x")), "xx");
        assert_eq!(ja4_alpn(Some(&[0xab])), "ab");
        assert_eq!(ja4_alpn(Some(&[0xab, 0xcd])), "ad");
        assert_eq!(ja4_alpn(Some(&[0x30, 0xab])), "3b");
        assert_eq!(ja4_alpn(Some(&[0x30, 0x31, 0xab, 0xcd])), "3d");
        assert_eq!(ja4_alpn(Some(&[0x30, 0xab, 0xcd, 0x31])), "01");
    }

    #[test]
    fn ja4_hash_examples_from_spec() {
        let ciphers = [
            0x002f, 0x0035, 0x009c, 0x009d, 0x1301, 0x1302, 0x1303, 0xc013, 0xc014, 0xc02b, 0xc02c,
            0xc02f, 0xc030, 0xcca8, 0xcca9,
        ];
        assert_eq!(hashed_hex_list(&ciphers), "8daaf6152771");
        let exts = [
            0x0005, 0x000a, 0x000b, 0x000d, 0x0012, 0x0015, 0x0017, 0x001b, 0x0023, 0x002b, 0x002d,
            0x0033, 0x4469, 0xff01,
        ];
        let sigs = [
            0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
        ];
        let text = format!("{}_{}", hex_list(&exts), hex_list(&sigs));
        assert_eq!(truncated_sha256(&text), "e5627efa2ab1");
        let mut h = HexListHash::default();
        h.list(exts.iter().copied());
        h.push(b"_");
        h.list(sigs.iter().copied());
        let mut s = String::new();
        h.finish_into(&mut s);
        assert_eq!(s, "e5627efa2ab1");
        assert_eq!(hashed_hex_list(&exts), "6d807ffa2a79");
        assert_eq!(hashed_hex_list(&[]), "000000000000");
        // Longer than one stack chunk of hash input.
        let long: Vec<u16> = (0..1000).collect();
        hashed_hex_list(&long);
    }

    #[test]
    fn sorting_spills_without_truncating() {
        for n in [
            0usize,
            1,
            SORT_STACK_ITEMS - 1,
            SORT_STACK_ITEMS,
            SORT_STACK_ITEMS + 1,
            5000,
        ] {
            let values: Vec<u16> = (0..n).map(|i| (i as u16).wrapping_mul(40_503)).collect();
            let mut expected = values.clone();
            expected.sort_unstable();
            with_sorted(values.iter().copied(), |sorted| {
                assert_eq!(sorted, &expected[..])
            });
        }
    }

    #[test]
    fn version_names() {
        assert_eq!(version_name(0x0303), "TLS 1.2");
        assert_eq!(version_name(0x0301), "TLSv1");
        assert_eq!(version_name(0xfefd), "DTLS 1.2");
        assert_eq!(version_name(0x1234), "0x1234");
    }

    /// A `u16` that is often GREASE, a fingerprint-relevant extension type, or near-GREASE.
    fn wire_u16() -> impl Strategy<Value = u16> {
        prop_oneof![
            4 => any::<u16>(),
            2 => (0u16..16).prop_map(|n| n * 0x1010 + 0x0a0a),
            2 => prop::sample::select(vec![
                0x0000u16, 0x000a, 0x000b, 0x000d, 0x0010, 0x002b, 0x0a1a, 0x1a0a, 0x0303, 0x0304,
                0x7f1c, 0xfefd,
            ]),
        ]
    }

    fn u16_list(max: usize) -> impl Strategy<Value = Vec<u16>> {
        prop::collection::vec(wire_u16(), 0..max)
    }

    fn be(values: &[u16]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    fn with_u16_len(body: Vec<u8>) -> Vec<u8> {
        let mut out = (body.len() as u16).to_be_bytes().to_vec();
        out.extend(body);
        out
    }

    fn names(max: usize) -> impl Strategy<Value = Vec<Vec<u8>>> {
        let name = prop_oneof![
            prop::collection::vec(b'a'..=b'z', 0..8),
            prop::collection::vec(any::<u8>(), 0..8),
        ];
        prop::collection::vec(name, 0..max)
    }

    /// An extension body shaped like one of the fingerprint-relevant extensions (or random),
    /// optionally cut or extended by a byte.
    fn ext_body() -> impl Strategy<Value = Vec<u8>> {
        let shaped = prop_oneof![
            // u16 length + u16 list (groups, signature algorithms).
            u16_list(300).prop_map(|v| with_u16_len(be(&v))),
            // u8 length + u8 list (point formats).
            prop::collection::vec(any::<u8>(), 0..20).prop_map(|v| {
                let mut out = vec![v.len() as u8];
                out.extend(v);
                out
            }),
            // supported_versions: u8 length + u16 list, or a single version.
            u16_list(20).prop_map(|v| {
                let mut out = vec![(v.len() * 2) as u8];
                out.extend(be(&v));
                out
            }),
            wire_u16().prop_map(|v| v.to_be_bytes().to_vec()),
            // ALPN: u16 length + u8-length names.
            names(24).prop_map(|ns| {
                let mut body = Vec::new();
                for n in ns {
                    body.push(n.len() as u8);
                    body.extend(n);
                }
                with_u16_len(body)
            }),
            // SNI: u16 length + (u8 type, u16 length, name) entries.
            (names(4), prop::collection::vec(0u8..3, 4)).prop_map(|(ns, types)| {
                let mut body = Vec::new();
                for (n, t) in ns.into_iter().zip(types) {
                    body.push(t);
                    body.extend((n.len() as u16).to_be_bytes());
                    body.extend(n);
                }
                with_u16_len(body)
            }),
            prop::collection::vec(any::<u8>(), 0..12),
        ];
        (shaped, 0u8..6, any::<u8>()).prop_map(|(mut body, edit, byte)| {
            match edit {
                0 if !body.is_empty() => {
                    let cut = usize::from(byte) % body.len();
                    body.truncate(cut);
                }
                1 => body.push(byte),
                _ => {}
            }
            body
        })
    }

    fn ext_type() -> impl Strategy<Value = u16> {
        prop_oneof![
            6 => prop::sample::select(vec![0x0000u16, 0x000a, 0x000b, 0x000d, 0x0010, 0x002b]),
            2 => (0u16..16).prop_map(|n| n * 0x1010 + 0x0a0a),
            2 => any::<u16>(),
        ]
    }

    /// A ClientHello extension block; sometimes with lengths that do not add up.
    fn ext_block() -> impl Strategy<Value = Option<Vec<u8>>> {
        let exts = prop::collection::vec((ext_type(), ext_body()), 0..40);
        (exts, 0u8..8, any::<u8>()).prop_map(|(exts, edit, byte)| {
            let mut block = Vec::new();
            for (t, body) in exts {
                block.extend(t.to_be_bytes());
                block.extend((body.len() as u16).to_be_bytes());
                block.extend(body);
            }
            match edit {
                0 => None,
                1 if !block.is_empty() => {
                    let cut = usize::from(byte) % block.len();
                    block.truncate(cut);
                    Some(block)
                }
                2 => {
                    block.push(byte);
                    Some(block)
                }
                _ => Some(block),
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// The allocation-free builders give exactly the reference JA3 / JA4 / metadata,
        /// including GREASE values, malformed extension bodies and lists longer than the stack
        /// buffers.
        #[test]
        fn fast_builders_match_reference(
            legacy in wire_u16(),
            ciphers in prop_oneof![u16_list(40), u16_list(400)],
            block in ext_block(),
        ) {
            let ids: Vec<TlsCipherSuiteID> = ciphers.iter().map(|&c| TlsCipherSuiteID(c)).collect();
            for carrier in [HelloCarrier::Tcp, HelloCarrier::Quic, HelloCarrier::Dtls] {
                let fast = client_hello_meta(carrier, legacy, &ids, block.as_deref());
                let slow = reference::client_hello_meta(carrier, legacy, ciphers.clone(), block.as_deref());
                prop_assert_eq!(&fast, &slow);
                let names = ClientHelloFields::extract(legacy, &ids, block.as_deref())
                    .map(|f| ClientHelloNames { sni: f.sni.map(name_string), alpns: f.alpns });
                prop_assert_eq!(
                    names,
                    slow.map(|m| ClientHelloNames { sni: m.sni, alpns: m.client_alpns })
                );
            }
        }

        /// Raw random extension blocks (mostly malformed) never panic and agree too.
        #[test]
        fn random_extension_blocks_match_reference(
            block in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let fast = client_hello_meta(HelloCarrier::Tcp, 0x0303, &[], Some(&block));
            let slow = reference::client_hello_meta(HelloCarrier::Tcp, 0x0303, Vec::new(), Some(&block));
            prop_assert_eq!(fast, slow);
        }
    }
}
