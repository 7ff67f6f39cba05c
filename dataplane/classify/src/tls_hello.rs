//! TLS ClientHello / ServerHello field extraction and the JA3 / JA4 client fingerprints.
//!
//! Owns: turning one complete hello (already cut out of its TLS record, DTLS record or QUIC
//! CRYPTO stream) into [`TlsMeta`]: SNI, ALPN, offered and chosen versions, JA3 and JA4.
//! Must not: walk records or packets (the protocol modules do that), allocate beyond the
//! metadata it returns, or panic on any bytes.

use md5::{Digest as _, Md5};
use sha2::Sha256;
use tls_parser::{TlsExtension, TlsServerHelloContents};

use crate::probe::TlsMeta;

/// Longest SNI / ALPN string kept (longer values are cut, never rejected).
const MAX_NAME_LEN: usize = 255;
/// Most ALPN values kept per hello.
const MAX_ALPNS: usize = 16;

/// What carried the hello: decides the JA4 prefix (`t`, `q`, `d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HelloCarrier {
    /// TLS over TCP.
    Tcp,
    /// TLS inside QUIC CRYPTO frames.
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

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// A byte string as a printable name: lossy UTF-8, cut at [`MAX_NAME_LEN`] bytes.
fn name_string(bytes: &[u8]) -> String {
    let cut = bytes.get(..MAX_NAME_LEN).unwrap_or(bytes);
    String::from_utf8_lossy(cut).into_owned()
}

/// The fields of a ClientHello that JA3, JA4 and the flow record need.
#[derive(Debug, Default)]
struct ClientHelloFields {
    legacy_version: u16,
    ciphers: Vec<u16>,
    /// Extension types in wire order, GREASE included.
    extensions: Vec<u16>,
    groups: Vec<u16>,
    point_formats: Vec<u8>,
    sig_algs: Vec<u16>,
    supported_versions: Vec<u16>,
    sni: Option<String>,
    alpns: Vec<String>,
    first_alpn_raw: Option<Vec<u8>>,
}

/// Splits a raw extension block into `(type, whole extension bytes)`; `None` when the lengths
/// do not add up.
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

impl ClientHelloFields {
    fn extract(legacy_version: u16, ciphers: Vec<u16>, ext_block: Option<&[u8]>) -> Option<Self> {
        let mut f = ClientHelloFields {
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
            // A malformed extension body keeps its type (for the fingerprints) but yields no
            // fields: fingerprints must not depend on whether we understood the contents.
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

    /// Highest offered version: from `supported_versions` when present, else the legacy one.
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

/// `0a0b,0c0d,...` (4-digit lower-case hex, comma separated).
fn hex_list(values: &[u16]) -> String {
    let mut s = String::with_capacity(values.len() * 5);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{v:04x}"));
    }
    s
}

/// First 12 hex digits of SHA-256(text); `000000000000` for an empty list.
fn truncated_sha256(text: &str) -> String {
    if text.is_empty() {
        return "000000000000".to_string();
    }
    let digest = Sha256::digest(text.as_bytes());
    let mut h = hex(&digest);
    h.truncate(12);
    h
}

/// JA4 ALPN field: first and last character of the first ALPN value, `00` without one, and the
/// first and last hex digit of the value when either end byte is not alphanumeric.
fn ja4_alpn(first: Option<&[u8]>) -> String {
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
        let h = hex(value);
        let mut s = String::with_capacity(2);
        s.extend(h.chars().next());
        s.extend(h.chars().last());
        s
    }
}

/// Builds the flow metadata of a ClientHello from its parsed top-level fields.
///
/// `ext_block` is the raw extensions block (without its 2-byte length). `None` when the
/// extension block is malformed.
pub(crate) fn client_hello_meta(
    carrier: HelloCarrier,
    legacy_version: u16,
    ciphers: Vec<u16>,
    ext_block: Option<&[u8]>,
) -> Option<TlsMeta> {
    let f = ClientHelloFields::extract(legacy_version, ciphers, ext_block)?;
    let ja3_string = f.ja3_string();
    let ja3 = hex(&Md5::digest(ja3_string.as_bytes()));
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

/// Parses a complete TLS ClientHello handshake message (type byte, 3-byte length, body) the way
/// TLS and QUIC carry it. `None` when it is not a well-formed ClientHello.
pub(crate) fn parse_client_hello_message(msg: &[u8], carrier: HelloCarrier) -> Option<TlsMeta> {
    let (_, parsed) = tls_parser::parse_tls_message_handshake(msg).ok()?;
    match parsed {
        tls_parser::TlsMessage::Handshake(tls_parser::TlsMessageHandshake::ClientHello(ch)) => {
            client_hello_meta(
                carrier,
                ch.version.0,
                ch.ciphers.iter().map(|c| c.0).collect(),
                ch.ext,
            )
        }
        _ => None,
    }
}

/// Builds the flow metadata of a ServerHello: chosen cipher and chosen version (from the
/// `supported_versions` extension when present, as TLS 1.3 servers send it).
pub(crate) fn server_hello_meta(sh: &TlsServerHelloContents<'_>) -> TlsMeta {
    let mut chosen = sh.version.0;
    if let Some(exts) = sh.ext.and_then(split_extensions) {
        for (typ, raw) in exts {
            if typ == 0x002b {
                if let Some(v) = raw.get(4..6) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grease_values() {
        assert!(is_grease(0x0a0a));
        assert!(is_grease(0xfafa));
        assert!(!is_grease(0x0a1a));
        assert!(!is_grease(0x1301));
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
        assert_eq!(truncated_sha256(&hex_list(&ciphers)), "8daaf6152771");
        let exts = [
            0x0005, 0x000a, 0x000b, 0x000d, 0x0012, 0x0015, 0x0017, 0x001b, 0x0023, 0x002b, 0x002d,
            0x0033, 0x4469, 0xff01,
        ];
        let sigs = [
            0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
        ];
        let text = format!("{}_{}", hex_list(&exts), hex_list(&sigs));
        assert_eq!(truncated_sha256(&text), "e5627efa2ab1");
        assert_eq!(truncated_sha256(&hex_list(&exts)), "6d807ffa2a79");
    }

    #[test]
    fn version_names() {
        assert_eq!(version_name(0x0303), "TLS 1.2");
        assert_eq!(version_name(0x0301), "TLSv1");
        assert_eq!(version_name(0xfefd), "DTLS 1.2");
        assert_eq!(version_name(0x1234), "0x1234");
    }
}
