//! QUIC: confirms a client Initial by decrypting it, and recognises Google QUIC by version.
//!
//! Owns: long-header parsing, Initial key derivation from the Destination Connection ID
//! (RFC 9001 §5.2, RFC 9369 §3.3.1; HKDF-SHA256), header-protection removal (AES-128-ECB),
//! payload decryption (AES-128-GCM), CRYPTO-frame reassembly across coalesced packets and
//! concatenated datagrams (the engine appends a direction's datagrams when this parser answers
//! `NeedMore`), and the ClientHello inside (SNI, ALPN) through `crate::tls_hello` (no JA3 /
//! JA4: QUIC metadata carries none). Per call it allocates one buffer for all decrypted
//! payloads (decrypted in place), one list of CRYPTO-frame ranges into it and, only when the
//! ClientHello spans several frames, one reassembly buffer; keys are derived once per
//! (salt, DCID).
//! Must not: keep state between calls, decrypt anything but client Initial packets, trust a
//! length field without checking it against the bytes, or panic on any input.
//!
//! IETF versions (v1, v2, drafts 21–34, Facebook mvfst) are only confirmed when an Initial
//! decrypts (the AEAD tag is the evidence). Google QUIC (`Q0xx`, `T05x`) is recognised by its
//! version field plus a cleartext `CHLO` tag or a client-sized (≥ 1200 bytes) datagram. A
//! legacy Google QUIC server packet without a version (Q035–Q043, as seen when only the
//! server's side was captured) is confirmed only when its 12-byte null-encryption hash verifies
//! (FNV-1a 128 over the public header, the plaintext and the label `Server`) and its plaintext
//! carries a well-formed `REJ` or `SHLO` handshake message on stream 1.

use std::borrow::Cow;

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes_gcm::{AeadInOut, Aes128Gcm, Tag};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::probe::{Meta, Probe, ProbeContext, QuicMeta};
use crate::tls_hello;
use portolan_packet::Transport;

/// RFC 9001 §5.2 (v1, also drafts 33–34).
pub(crate) const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
/// RFC 9369 §3.3.1 (v2).
pub(crate) const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];
/// draft-ietf-quic-tls-29 §5.2 (drafts 29–32).
pub(crate) const SALT_DRAFT29: [u8; 20] = [
    0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0,
    0x43, 0x90, 0xa8, 0x99,
];
/// draft-ietf-quic-tls-23 §5.2 (drafts 23–28).
const SALT_DRAFT23: [u8; 20] = [
    0xc3, 0xee, 0xf7, 0x12, 0xc7, 0x2e, 0xbb, 0x5a, 0x11, 0xa7, 0xd2, 0x43, 0x2b, 0xb4, 0x63, 0x65,
    0xbe, 0xf9, 0xf5, 0x02,
];
/// draft-ietf-quic-tls-21 §5.2 (drafts 21–22).
const SALT_DRAFT21: [u8; 20] = [
    0x7f, 0xbc, 0xdb, 0x0e, 0x7c, 0x66, 0xbb, 0xe9, 0x19, 0x3a, 0x96, 0xcd, 0x21, 0x51, 0x9e, 0xbd,
    0x7a, 0x02, 0x64, 0x4a,
];

/// QUIC v1 version number.
pub const VERSION_1: u32 = 0x0000_0001;
/// QUIC v2 version number (RFC 9369).
pub const VERSION_2: u32 = 0x6b33_43cf;

/// Most packets walked in one call (coalesced plus concatenated datagrams).
const MAX_PACKETS: usize = 16;
/// Largest CRYPTO stream rebuilt.
const MAX_CRYPTO: usize = 1 << 16;
/// Google QUIC clients pad their first packets; encrypted gQUIC needs this size as evidence.
const MIN_CLIENT_DATAGRAM: usize = 1200;

/// How a version's Initial packets are protected.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IetfVersion {
    /// Candidate salts, tried in order (the AEAD tag tells which one is right).
    pub(crate) salts: &'static [&'static [u8; 20]],
    /// True for v2 labels (`quicv2 key` ...).
    pub(crate) v2_labels: bool,
    /// Long-header type bits of an Initial packet.
    pub(crate) initial_type: u8,
}

/// What a long header's version field says.
enum VersionKind {
    Ietf(IetfVersion),
    Google,
}

fn version_kind(v: u32) -> Option<VersionKind> {
    const V1: &[&[u8; 20]] = &[&SALT_V1];
    const V2: &[&[u8; 20]] = &[&SALT_V2];
    const D29: &[&[u8; 20]] = &[&SALT_DRAFT29];
    const D23: &[&[u8; 20]] = &[&SALT_DRAFT23];
    const D21: &[&[u8; 20]] = &[&SALT_DRAFT21];
    const MVFST_EXP: &[&[u8; 20]] = &[&SALT_DRAFT23, &SALT_V1];
    let ietf = |salts, v2_labels, initial_type| {
        Some(VersionKind::Ietf(IetfVersion {
            salts,
            v2_labels,
            initial_type,
        }))
    };
    let b = v.to_be_bytes();
    match v {
        VERSION_1 => ietf(V1, false, 0),
        VERSION_2 => ietf(V2, true, 1),
        0xff00_0021..=0xff00_0022 => ietf(V1, false, 0),
        0xff00_001d..=0xff00_0020 => ietf(D29, false, 0),
        0xff00_0017..=0xff00_001c => ietf(D23, false, 0),
        0xff00_0015..=0xff00_0016 => ietf(D21, false, 0),
        0xface_b001 => ietf(D21, false, 0),
        0xface_b002 => ietf(D23, false, 0),
        0xface_b00e => ietf(MVFST_EXP, false, 0),
        _ if (b[0] == b'Q' || b[0] == b'T') && b[1..].iter().all(u8::is_ascii_digit) => {
            Some(VersionKind::Google)
        }
        _ => None,
    }
}

/// The name the flow record prints for a version: `v1`, `v2`, `draft-29`, `mvfst-27`,
/// `Q046`, or hex.
pub(crate) fn version_name(v: u32) -> String {
    let b = v.to_be_bytes();
    match v {
        VERSION_1 => "v1".to_string(),
        VERSION_2 => "v2".to_string(),
        0xff00_0000..=0xff00_00ff => format!("draft-{}", v & 0xff),
        0xface_b001 => "mvfst-22".to_string(),
        0xface_b002 => "mvfst-27".to_string(),
        0xface_b00e => "mvfst-exp".to_string(),
        _ if (b[0] == b'Q' || b[0] == b'T') && b[1..].iter().all(u8::is_ascii_digit) => {
            String::from_utf8_lossy(&b).into_owned()
        }
        _ => format!("0x{v:08x}"),
    }
}

/// Client Initial packet protection keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InitialKeys {
    pub(crate) key: [u8; 16],
    pub(crate) iv: [u8; 12],
    pub(crate) hp: [u8; 16],
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context; the `HkdfLabel` is built on the
/// stack (labels here are short constants).
fn expand_label(prk: &Hkdf<Sha256>, label: &str, out: &mut [u8]) -> Option<()> {
    const PREFIX: &[u8] = b"tls13 ";
    let full_len = PREFIX.len() + label.len();
    let mut info = [0u8; 64];
    let info = info.get_mut(..4 + full_len)?;
    let (len, rest) = info.split_at_mut_checked(2)?;
    len.copy_from_slice(&u16::try_from(out.len()).ok()?.to_be_bytes());
    let (label_len, rest) = rest.split_first_mut()?;
    *label_len = u8::try_from(full_len).ok()?;
    let (prefix, rest) = rest.split_at_mut_checked(PREFIX.len())?;
    prefix.copy_from_slice(PREFIX);
    let (name, context_len) = rest.split_at_mut_checked(label.len())?;
    name.copy_from_slice(label.as_bytes());
    *context_len.first_mut()? = 0;
    prk.expand(info, out).ok()
}

/// Derives the client Initial keys for `dcid` with `salt`.
pub(crate) fn client_initial_keys(
    salt: &[u8; 20],
    v2_labels: bool,
    dcid: &[u8],
) -> Option<InitialKeys> {
    let initial = Hkdf::<Sha256>::new(Some(salt), dcid);
    let mut client_secret = [0u8; 32];
    expand_label(&initial, "client in", &mut client_secret)?;
    let client = Hkdf::<Sha256>::from_prk(&client_secret).ok()?;
    let (key_label, iv_label, hp_label) = if v2_labels {
        ("quicv2 key", "quicv2 iv", "quicv2 hp")
    } else {
        ("quic key", "quic iv", "quic hp")
    };
    let mut keys = InitialKeys {
        key: [0; 16],
        iv: [0; 12],
        hp: [0; 16],
    };
    expand_label(&client, key_label, &mut keys.key)?;
    expand_label(&client, iv_label, &mut keys.iv)?;
    expand_label(&client, hp_label, &mut keys.hp)?;
    Some(keys)
}

/// AEAD nonce of packet number `pn`.
pub(crate) fn nonce(iv: &[u8; 12], pn: u64) -> [u8; 12] {
    let mut n = *iv;
    for (dst, src) in n.iter_mut().skip(4).zip(pn.to_be_bytes()) {
        *dst ^= src;
    }
    n
}

/// Reads a QUIC variable-length integer; returns it and the bytes after it.
pub(crate) fn varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let first = *b.first()?;
    let len = 1usize << (first >> 6);
    let raw = b.get(..len)?;
    let mut v = u64::from(first & 0x3f);
    for &x in raw.iter().skip(1) {
        v = (v << 8) | u64::from(x);
    }
    Some((v, b.get(len..)?))
}

/// The fields of a long header up to the (protected) packet number.
struct LongHeader<'a> {
    version: u32,
    packet_type: u8,
    dcid: &'a [u8],
    /// Offset of the packet number from the packet start.
    pn_offset: usize,
    /// Offset one past the packet's last byte (may exceed the bytes present).
    end: usize,
}

fn parse_long_header(pkt: &[u8]) -> Option<LongHeader<'_>> {
    let first = *pkt.first()?;
    if first & 0xc0 != 0xc0 {
        return None;
    }
    let version = u32::from_be_bytes(pkt.get(1..5)?.try_into().ok()?);
    let packet_type = (first >> 4) & 0x03;
    let dcid_len = usize::from(*pkt.get(5)?);
    if dcid_len > 20 {
        return None;
    }
    let dcid = pkt.get(6..6 + dcid_len)?;
    let rest = pkt.get(6 + dcid_len..)?;
    let scid_len = usize::from(*rest.first()?);
    if scid_len > 20 {
        return None;
    }
    let mut rest = rest.get(1 + scid_len..)?;
    let retry_type = if version == VERSION_2 { 0 } else { 3 };
    if packet_type == retry_type {
        return None;
    }
    let initial_type = if version == VERSION_2 { 1 } else { 0 };
    if packet_type == initial_type {
        let (token_len, after) = varint(rest)?;
        rest = after.get(usize::try_from(token_len).ok()?..)?;
    }
    let (length, after) = varint(rest)?;
    let pn_offset = pkt.len() - after.len();
    let end = pn_offset.checked_add(usize::try_from(length).ok()?)?;
    Some(LongHeader {
        version,
        packet_type,
        dcid,
        pn_offset,
        end,
    })
}

/// The ciphers of one set of client Initial keys, set up once and reused for every packet
/// protected with them.
struct InitialCipher {
    hp: aes::Aes128,
    aead: Aes128Gcm,
    iv: [u8; 12],
}

impl InitialCipher {
    fn new(keys: &InitialKeys) -> Option<Self> {
        Some(InitialCipher {
            hp: aes::Aes128::new_from_slice(&keys.hp).ok()?,
            aead: Aes128Gcm::new_from_slice(&keys.key).ok()?,
            iv: keys.iv,
        })
    }
}

/// Removes header protection and decrypts one Initial packet in place at the end of `buf`
/// (which keeps all earlier plaintexts); returns the range of the plaintext in `buf`. `None`
/// (with `buf` unchanged) when the tag fails.
fn decrypt_initial(
    pkt: &[u8],
    h: &LongHeader<'_>,
    cipher: &InitialCipher,
    buf: &mut Vec<u8>,
) -> Option<std::ops::Range<usize>> {
    let packet = pkt.get(..h.end)?;
    let sample: [u8; 16] = packet
        .get(h.pn_offset + 4..h.pn_offset + 20)?
        .try_into()
        .ok()?;
    let mut mask = aes::Block::from(sample);
    cipher.hp.encrypt_block(&mut mask);
    let first = packet.first()? ^ (mask.first()? & 0x0f);
    let pn_len = usize::from(first & 0x03) + 1;
    let header_len = h.pn_offset + pn_len;
    let ct_len = packet.len().checked_sub(header_len)?.checked_sub(16)?;
    let base = buf.len();
    buf.extend_from_slice(packet);
    let result = (|| {
        let own = buf.get_mut(base..)?;
        let (header, rest) = own.split_at_mut_checked(header_len)?;
        *header.first_mut()? = first;
        let mut pn = 0u64;
        for (i, m) in mask.iter().skip(1).take(pn_len).enumerate() {
            let byte = header.get_mut(h.pn_offset + i)?;
            *byte ^= m;
            pn = (pn << 8) | u64::from(*byte);
        }
        let (ciphertext, tag) = rest.split_at_mut_checked(ct_len)?;
        let tag = Tag::try_from(&*tag).ok()?;
        let n = nonce(&cipher.iv, pn);
        cipher
            .aead
            .decrypt_inout_detached(&n.into(), header, ciphertext.into(), &tag)
            .ok()
    })();
    match result {
        Some(()) => Some(base + header_len..base + header_len + ct_len),
        None => {
            buf.truncate(base);
            None
        }
    }
}

/// A CRYPTO frame: its stream offset and where its data sits in the plaintext buffer.
#[derive(Debug, Clone, Copy)]
struct CryptoFrame {
    offset: u64,
    start: usize,
    len: usize,
}

/// Collects the CRYPTO frames of a decrypted Initial payload that starts at `base` in the
/// plaintext buffer. Stops at the first frame type an Initial may not carry.
fn collect_crypto_frames(payload: &[u8], base: usize, out: &mut Vec<CryptoFrame>) {
    let mut p = payload;
    while let Some(&frame_type) = p.first() {
        let body = p.get(1..).unwrap_or(&[]);
        p = match frame_type {
            // A run of PADDING frames is skipped at once.
            0x00 => {
                let zeros = body.iter().position(|&b| b != 0).unwrap_or(body.len());
                body.get(zeros..).unwrap_or(&[])
            }
            0x01 => body,
            0x02 | 0x03 => {
                let Some(rest) = skip_ack(body, frame_type == 0x03) else {
                    return;
                };
                rest
            }
            0x06 => {
                let Some((offset, rest)) = varint(body) else {
                    return;
                };
                let Some((len, rest)) = varint(rest) else {
                    return;
                };
                let Ok(len) = usize::try_from(len) else {
                    return;
                };
                if rest.len() < len {
                    return;
                }
                out.push(CryptoFrame {
                    offset,
                    start: base + (payload.len() - rest.len()),
                    len,
                });
                rest.get(len..).unwrap_or(&[])
            }
            _ => return,
        };
    }
}

fn skip_ack(b: &[u8], ecn: bool) -> Option<&[u8]> {
    let (_largest, b) = varint(b)?;
    let (_delay, b) = varint(b)?;
    let (count, b) = varint(b)?;
    let (_first, mut b) = varint(b)?;
    if count > 256 {
        return None;
    }
    for _ in 0..count {
        b = varint(b)?.1;
        b = varint(b)?.1;
    }
    if ecn {
        for _ in 0..3 {
            b = varint(b)?.1;
        }
    }
    Some(b)
}

/// Rebuilds the CRYPTO stream from offset 0 as far as it is contiguous (borrowed from
/// `plain` when one frame holds it all).
fn assemble<'a>(frames: &mut [CryptoFrame], plain: &'a [u8]) -> Cow<'a, [u8]> {
    frames.sort_by_key(|f| f.offset);
    let data_of = |f: &CryptoFrame| plain.get(f.start..f.start + f.len).unwrap_or(&[]);
    if let [only] = frames {
        if only.offset != 0 {
            return Cow::Borrowed(&[]);
        }
        let data = data_of(only);
        return Cow::Borrowed(data.get(..MAX_CRYPTO).unwrap_or(data));
    }
    let mut stream: Vec<u8> = Vec::new();
    for f in frames.iter() {
        let data = data_of(f);
        let Ok(off) = usize::try_from(f.offset) else {
            break;
        };
        if off > stream.len() || stream.len() >= MAX_CRYPTO {
            break;
        }
        let skip = stream.len() - off;
        if let Some(new) = data.get(skip..) {
            let room = MAX_CRYPTO - stream.len();
            stream.extend_from_slice(new.get(..room.min(new.len())).unwrap_or(new));
        }
    }
    Cow::Owned(stream)
}

/// The last keys derived in one call, so coalesced packets with the same DCID derive once.
struct DerivedKeys<'a> {
    salt: &'static [u8; 20],
    /// `None` when the derivation failed.
    v2_labels: bool,
    dcid: &'a [u8],
    cipher: Option<InitialCipher>,
}

/// IETF QUIC: walk coalesced / concatenated packets, decrypt client Initials, parse the
/// ClientHello.
fn probe_ietf(data: &[u8]) -> Probe {
    let mut pos = 0usize;
    let mut frames: Vec<CryptoFrame> = Vec::new();
    let mut plain_buf: Vec<u8> = Vec::new();
    let mut decrypted_version: Option<u32> = None;
    // Keys of the first decrypted Initial, and the last ones derived (a cache for coalesced
    // packets with the same DCID).
    let mut first_keys: Option<DerivedKeys<'_>> = None;
    let mut derived: Option<DerivedKeys<'_>> = None;
    let mut packets = 0;
    while pos < data.len() && packets < MAX_PACKETS {
        let pkt = data.get(pos..).unwrap_or(&[]);
        // Datagram padding after the last packet (zeros) ends one datagram of a concatenation.
        if pkt.first() == Some(&0) {
            let zeros = pkt.iter().take_while(|&&b| b == 0).count();
            pos += zeros;
            continue;
        }
        let Some(h) = parse_long_header(pkt) else {
            break;
        };
        let Some(VersionKind::Ietf(v)) = version_kind(h.version) else {
            break;
        };
        if h.end > pkt.len() {
            break;
        }
        packets += 1;
        if h.packet_type == v.initial_type {
            let mut plain = None;
            let mut tried_first = false;
            for &salt in v.salts {
                let is = |d: &Option<DerivedKeys<'_>>| {
                    d.as_ref().is_some_and(|d| {
                        d.salt == salt && d.v2_labels == v.v2_labels && d.dcid == h.dcid
                    })
                };
                let from_first = is(&first_keys);
                if !from_first && !is(&derived) {
                    derived = Some(DerivedKeys {
                        salt,
                        v2_labels: v.v2_labels,
                        dcid: h.dcid,
                        cipher: client_initial_keys(salt, v.v2_labels, h.dcid)
                            .and_then(|k| InitialCipher::new(&k)),
                    });
                }
                tried_first |= from_first;
                let slot = if from_first { &first_keys } else { &derived };
                let Some(cipher) = slot.as_ref().and_then(|d| d.cipher.as_ref()) else {
                    continue;
                };
                if let Some(range) = decrypt_initial(pkt, &h, cipher, &mut plain_buf) {
                    if first_keys.is_none() {
                        first_keys = derived.take();
                    }
                    plain = Some(range);
                    break;
                }
            }
            // Later client Initials keep the keys of the first one even when their DCID
            // changed (RFC 9001 §5.2).
            if plain.is_none() && !tried_first {
                if let Some(cipher) = first_keys.as_ref().and_then(|d| d.cipher.as_ref()) {
                    plain = decrypt_initial(pkt, &h, cipher, &mut plain_buf);
                }
            }
            if let Some(range) = plain {
                decrypted_version.get_or_insert(h.version);
                let start = range.start;
                if let Some(p) = plain_buf.get(range) {
                    collect_crypto_frames(p, start, &mut frames);
                }
            }
        }
        pos += h.end;
    }
    let Some(version) = decrypted_version else {
        return Probe::NoMatch;
    };
    let stream = assemble(&mut frames, &plain_buf);
    let Some(header) = stream.get(..4) else {
        return Probe::NeedMore;
    };
    if header[0] != 1 {
        return Probe::NoMatch;
    }
    let msg_len =
        (usize::from(header[1]) << 16) | (usize::from(header[2]) << 8) | usize::from(header[3]);
    let Some(msg) = stream.get(..4 + msg_len) else {
        return if msg_len <= MAX_CRYPTO {
            Probe::NeedMore
        } else {
            Probe::NoMatch
        };
    };
    match tls_hello::parse_client_hello_names(msg) {
        Some(names) => Probe::Match {
            indicator: "quic.initial",
            meta: Meta::Quic(QuicMeta {
                version: Some(version_name(version)),
                sni: names.sni,
                client_alpns: names.alpns,
            }),
        },
        None => Probe::NoMatch,
    }
}

fn contains_chlo(data: &[u8]) -> bool {
    data.windows(4).any(|w| w == b"CHLO")
}

fn gquic_match(version: u32) -> Probe {
    Probe::Match {
        indicator: "quic.gquic",
        meta: Meta::Quic(QuicMeta {
            version: Some(version_name(version)),
            ..Default::default()
        }),
    }
}

/// Google QUIC with an IETF-style long header (Q046, Q050, T050, T051, ...).
fn probe_google_long(data: &[u8], version: u32) -> Probe {
    if contains_chlo(data) || data.len() >= MIN_CLIENT_DATAGRAM {
        gquic_match(version)
    } else {
        Probe::NoMatch
    }
}

/// Google QUIC with the legacy public header (Q039 .. Q043): flags, optional 8-byte
/// connection ID, then the version when the version flag is set.
fn probe_google_legacy(data: &[u8]) -> Probe {
    let Some(&flags) = data.first() else {
        return Probe::NoMatch;
    };
    if flags & 0x01 == 0 || flags & 0xc0 != 0 {
        return Probe::NoMatch;
    }
    let cid_len = if flags & 0x08 != 0 { 8 } else { 0 };
    let Some(v) = data.get(1 + cid_len..5 + cid_len) else {
        return Probe::NoMatch;
    };
    if v[0] != b'Q' || !v[1..].iter().all(u8::is_ascii_digit) {
        return Probe::NoMatch;
    }
    if !contains_chlo(data) {
        return Probe::NoMatch;
    }
    gquic_match(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
}

/// FNV-1a 128-bit offset basis and prime (the gQUIC null encryption's message hash).
const FNV128_OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
const FNV128_PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
/// Bytes of the truncated hash in an unencrypted gQUIC packet.
const GQUIC_HASH_LEN: usize = 12;
/// Most tag/value entries in a gQUIC handshake message (Chromium's `kMaxEntries`).
const GQUIC_MAX_ENTRIES: usize = 128;
/// The server handshake message tags confirmed: `REJ\0` and `SHLO`.
const GQUIC_SERVER_TAGS: [(&[u8; 4], &str); 2] =
    [(b"REJ\0", "quic.gquic_rej"), (b"SHLO", "quic.gquic_shlo")];
/// How far into the plaintext the first STREAM frame may start (after ACK / STOP_WAITING /
/// PADDING frames).
const GQUIC_MAX_FRAME_OFFSET: usize = 96;

/// FNV-1a 128 over the concatenation of `parts`.
pub(crate) fn fnv1a_128(parts: &[&[u8]]) -> u128 {
    let mut h = FNV128_OFFSET;
    for part in parts {
        for &b in *part {
            h ^= u128::from(b);
            h = h.wrapping_mul(FNV128_PRIME);
        }
    }
    h
}

/// The length of a well-formed gQUIC handshake message at the start of `msg` (tag, entry
/// count, zero padding, then entries of tag and end offset, tags strictly ascending, offsets
/// non-decreasing), if its values fit in `msg`.
fn gquic_message_len(msg: &[u8]) -> Option<usize> {
    let n = usize::from(u16::from_le_bytes([*msg.get(4)?, *msg.get(5)?]));
    if n == 0 || n > GQUIC_MAX_ENTRIES || msg.get(6..8)? != [0, 0] {
        return None;
    }
    let table = msg.get(8..8 + 8 * n)?;
    let mut last_tag = None;
    let mut last_end = 0u32;
    for e in table.chunks_exact(8) {
        let tag = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let end = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        if last_tag.is_some_and(|t| tag <= t) || end < last_end {
            return None;
        }
        last_tag = Some(tag);
        last_end = end;
    }
    let len = 8 + 8 * n + usize::try_from(last_end).ok()?;
    (len <= msg.len()).then_some(len)
}

/// Finds a server handshake message (`REJ`, `SHLO`) that starts a STREAM frame on stream 1 at
/// offset 0 with an explicit data length equal to the message's length (frame type `0xa0`:
/// no FIN, data length present, no offset, 1-byte stream id; big-endian length, Q039+).
fn gquic_server_message(plaintext: &[u8]) -> Option<&'static str> {
    let window = plaintext
        .get(..GQUIC_MAX_FRAME_OFFSET + 8)
        .unwrap_or(plaintext);
    (4..window.len().saturating_sub(3)).find_map(|p| {
        let tag = window.get(p..p + 4)?;
        let (_, indicator) = GQUIC_SERVER_TAGS
            .iter()
            .find(|(t, _)| t.as_slice() == tag)?;
        let frame = plaintext.get(p - 4..p)?;
        let data_len = usize::from(u16::from_be_bytes([frame[2], frame[3]]));
        let msg = plaintext.get(p..)?;
        (frame[0] == 0xa0 && frame[1] == 1 && gquic_message_len(msg) == Some(data_len))
            .then_some(*indicator)
    })
}

/// A legacy Google QUIC server packet without a version (public flags: no version, no reset,
/// bits 6–7 clear): its null-encryption hash must verify and it must carry a server
/// handshake message (`quic.gquic_rej`, `quic.gquic_shlo`).
fn probe_google_server_handshake(data: &[u8]) -> Probe {
    let Some(&flags) = data.first() else {
        return Probe::NoMatch;
    };
    if flags & 0xc3 != 0 {
        return Probe::NoMatch;
    }
    let cid = if flags & 0x08 != 0 { 8 } else { 0 };
    let nonce = if flags & 0x04 != 0 { 32 } else { 0 };
    let pn = match (flags >> 4) & 0x03 {
        0 => 1,
        1 => 2,
        2 => 4,
        _ => 6,
    };
    let header = 1 + cid + nonce + pn;
    let (Some(public_header), Some(hash), Some(plaintext)) = (
        data.get(..header),
        data.get(header..header + GQUIC_HASH_LEN),
        data.get(header + GQUIC_HASH_LEN..),
    ) else {
        return Probe::NoMatch;
    };
    // The cheap structural check first: decided gQUIC flows are probed for a few packets.
    let Some(indicator) = gquic_server_message(plaintext) else {
        return Probe::NoMatch;
    };
    let h = fnv1a_128(&[public_header, plaintext, b"Server"]);
    let low = (h as u64).to_le_bytes();
    let high = ((h >> 64) as u32).to_le_bytes();
    if hash.get(..8) != Some(&low[..]) || hash.get(8..) != Some(&high[..]) {
        return Probe::NoMatch;
    }
    Probe::Match {
        indicator,
        meta: Meta::Quic(QuicMeta::default()),
    }
}

/// A server's Version Negotiation packet (RFC 9000 §17.2.1): version 0, the client's
/// connection IDs echoed, then a non-empty list of 4-byte versions that names at least one
/// QUIC version this module knows.
fn probe_version_negotiation(data: &[u8]) -> Probe {
    let Some(&dcid_len) = data.get(5) else {
        return Probe::NoMatch;
    };
    let dcid_len = usize::from(dcid_len);
    let Some(&scid_len) = data.get(6 + dcid_len) else {
        return Probe::NoMatch;
    };
    let scid_len = usize::from(scid_len);
    if dcid_len > 20 || scid_len > 20 {
        return Probe::NoMatch;
    }
    let Some(list) = data.get(7 + dcid_len + scid_len..) else {
        return Probe::NoMatch;
    };
    if list.is_empty() || list.len() % 4 != 0 || list.len() > 1024 {
        return Probe::NoMatch;
    }
    let known = list
        .chunks_exact(4)
        .any(|c| version_kind(u32::from_be_bytes([c[0], c[1], c[2], c[3]])).is_some());
    if known {
        Probe::Match {
            indicator: "quic.version_negotiation",
            meta: Meta::Quic(QuicMeta::default()),
        }
    } else {
        Probe::NoMatch
    }
}

/// A client packet with a reserved version (`0x?a?a?a?a`, RFC 9000 §15), sent to force
/// version negotiation: long header with the fixed bit, an 8..=20-byte DCID, a SCID of at most
/// 20 bytes, in a client-sized (≥ 1200 bytes) datagram.
fn probe_reserved_version(data: &[u8], first: u8) -> Probe {
    if first & 0xc0 != 0xc0 || data.len() < MIN_CLIENT_DATAGRAM {
        return Probe::NoMatch;
    }
    let Some(&dcid_len) = data.get(5) else {
        return Probe::NoMatch;
    };
    let Some(&scid_len) = data.get(6 + usize::from(dcid_len)) else {
        return Probe::NoMatch;
    };
    if !(8..=20).contains(&dcid_len) || scid_len > 20 {
        return Probe::NoMatch;
    }
    Probe::Match {
        indicator: "quic.reserved_version",
        meta: Meta::Quic(QuicMeta::default()),
    }
}

/// Confirms QUIC on UDP: a decrypted client Initial with its ClientHello (`quic.initial`), or
/// a Google QUIC client packet (`quic.gquic`), or a legacy Google QUIC server packet whose
/// hash verifies carrying `REJ` / `SHLO` (`quic.gquic_rej`, `quic.gquic_shlo`), or a server's
/// Version Negotiation listing known versions (`quic.version_negotiation`), or a client's
/// reserved-version probe (`quic.reserved_version`). `NeedMore` when the Initial decrypted but the
/// ClientHello continues in a later datagram.
pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe {
    if ctx.transport != Transport::Udp {
        return Probe::NoMatch;
    }
    let Some(&first) = data.first() else {
        return Probe::NoMatch;
    };
    if first & 0x80 == 0 {
        return if first & 0x01 != 0 {
            probe_google_legacy(data)
        } else {
            probe_google_server_handshake(data)
        };
    }
    let Some(v) = data.get(1..5) else {
        return Probe::NoMatch;
    };
    let version = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
    if version == 0 {
        return probe_version_negotiation(data);
    }
    if version & 0x0f0f_0f0f == 0x0a0a_0a0a {
        return probe_reserved_version(data, first);
    }
    match version_kind(version) {
        Some(VersionKind::Ietf(_)) => probe_ietf(data),
        Some(VersionKind::Google) => probe_google_long(data, version),
        None => Probe::NoMatch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_testkit as testkit;
    use crate::test_support::{assert_match, expect_match};

    const CTX: ProbeContext = ProbeContext::new(Transport::Udp, 50000, 443);

    const RFC_DCID: [u8; 8] = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];

    fn unhex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    fn vector(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
        unhex(&std::fs::read_to_string(path).unwrap())
    }

    fn quic(p: Probe) -> QuicMeta {
        match p {
            Probe::Match {
                indicator: "quic.initial",
                meta: Meta::Quic(m),
            } => m,
            other => panic!("expected a QUIC Initial, got {other:?}"),
        }
    }

    #[test]
    fn rfc9001_a1_keys() {
        let k = client_initial_keys(&SALT_V1, false, &RFC_DCID).unwrap();
        assert_eq!(k.key.to_vec(), unhex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(k.iv.to_vec(), unhex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(k.hp.to_vec(), unhex("9f50449e04a0e810283a1e9933adedd2"));
    }

    #[test]
    fn rfc9369_a1_keys() {
        let k = client_initial_keys(&SALT_V2, true, &RFC_DCID).unwrap();
        assert_eq!(k.key.to_vec(), unhex("8b1a0bc121284290a29e0971b5cd045d"));
        assert_eq!(k.iv.to_vec(), unhex("91f73e2351d8fa91660e909f"));
        assert_eq!(k.hp.to_vec(), unhex("45b95e15235d6f45a6b19cbcb0294ba9"));
    }

    #[test]
    fn rfc9001_a2_client_initial() {
        let pkt = vector("rfc9001_client_initial.hex");
        assert_eq!(pkt.len(), 1200);
        let m = quic(probe(&CTX, &pkt));
        assert_eq!(m.version.as_deref(), Some("v1"));
        assert_eq!(m.sni.as_deref(), Some("example.com"));
        assert_eq!(m.client_alpns, vec!["alpn".to_string()]);
    }

    #[test]
    fn rfc9369_a2_client_initial() {
        let pkt = vector("rfc9369_client_initial.hex");
        let m = quic(probe(&CTX, &pkt));
        assert_eq!(m.version.as_deref(), Some("v2"));
        assert_eq!(m.sni.as_deref(), Some("example.com"));
    }

    #[test]
    fn corrupted_initial_is_not_quic() {
        let mut pkt = vector("rfc9001_client_initial.hex");
        let last = pkt.len() - 1;
        pkt[last] ^= 1;
        assert_eq!(probe(&CTX, &pkt), Probe::NoMatch);
        // Unknown version.
        let mut pkt = vector("rfc9001_client_initial.hex");
        pkt[4] = 0x02;
        assert_eq!(probe(&CTX, &pkt), Probe::NoMatch);
    }

    #[test]
    fn client_hello_split_across_two_initials() {
        let hello =
            testkit::client_hello_message(&testkit::ClientHelloSpec::chrome_like("split.example"));
        let mid = hello.len() / 2;
        let (a, b) = hello.split_at(mid);
        let dcid = [7u8; 8];
        // Same datagram (coalesced), second part first.
        let mut dgram = testkit::quic_initial(VERSION_1, &dcid, 1, &[(mid as u64, b)], 0);
        dgram.extend(testkit::quic_initial(VERSION_1, &dcid, 0, &[(0, a)], 1200));
        let m = quic(probe(&CTX, &dgram));
        assert_eq!(m.sni.as_deref(), Some("split.example"));

        // Consecutive datagrams: first alone needs more, both (as the engine buffers them)
        // match.
        let d1 = testkit::quic_initial(VERSION_1, &dcid, 0, &[(0, a)], 1200);
        let d2 = testkit::quic_initial(VERSION_1, &dcid, 1, &[(mid as u64, b)], 1200);
        assert_eq!(probe(&CTX, &d1), Probe::NeedMore);
        let mut both = d1.clone();
        both.extend_from_slice(&d2);
        assert_eq!(
            quic(probe(&CTX, &both)).sni.as_deref(),
            Some("split.example")
        );
    }

    #[test]
    fn v2_and_draft29_and_changed_dcid() {
        let hello = testkit::client_hello_message(&testkit::ClientHelloSpec::minimal("v2.example"));
        let pkt = testkit::quic_initial(VERSION_2, &[1, 2, 3, 4], 0, &[(0, &hello)], 1200);
        assert_eq!(quic(probe(&CTX, &pkt)).version.as_deref(), Some("v2"));
        let pkt = testkit::quic_initial(0xff00_001d, &[9; 20], 0, &[(0, &hello)], 1200);
        assert_eq!(
            quic(probe(&CTX, &pkt)).version.as_deref(),
            Some("draft-29")
        );

        let (a, b) = hello.split_at(50);
        let d1 = testkit::quic_initial(VERSION_1, &[1; 8], 0, &[(0, a)], 1200);
        let d2 = testkit::quic_initial_with_keys_of(VERSION_1, &[2; 8], &[1; 8], 1, &[(50, b)]);
        let mut both = d1;
        both.extend_from_slice(&d2);
        assert_eq!(
            quic(probe(&CTX, &both)).sni.as_deref(),
            Some("v2.example")
        );
    }

    #[test]
    fn google_quic_versions() {
        let mut q043 = vec![0x0d];
        q043.extend_from_slice(&[0x11; 8]);
        q043.extend_from_slice(b"Q043");
        q043.extend_from_slice(&[0x01, 0, 0, 0]);
        q043.extend_from_slice(b"CHLO\x00\x00");
        q043.resize(1350, 0);
        match probe(&CTX, &q043) {
            Probe::Match {
                indicator: "quic.gquic",
                meta: Meta::Quic(m),
            } => assert_eq!(m.version.as_deref(), Some("Q043")),
            other => panic!("{other:?}"),
        }
        let mut t051 = vec![0xc3];
        t051.extend_from_slice(b"T051");
        t051.resize(1350, 0x55);
        expect_match(probe(&CTX, &t051));
        t051.truncate(100);
        assert_eq!(probe(&CTX, &t051), Probe::NoMatch);
    }

    #[test]
    fn fnv1a_128_vectors() {
        // Published FNV test vectors (the empty string is the offset basis).
        assert_eq!(fnv1a_128(&[b""]), FNV128_OFFSET);
        assert_eq!(
            fnv1a_128(&[b"a"]),
            0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964
        );
        assert_eq!(fnv1a_128(&[b"foo", b"bar"]), fnv1a_128(&[b"foobar"]));
    }

    #[test]
    fn gquic_server_rej_and_shlo_without_version() {
        for (tag, indicator) in [(b"REJ\0", "quic.gquic_rej"), (b"SHLO", "quic.gquic_shlo")] {
            let pkt = testkit::gquic_server_handshake(tag, b"Server");
            assert_eq!(
                probe(&CTX, &pkt),
                Probe::Match {
                    indicator,
                    meta: Meta::Quic(QuicMeta::default()),
                }
            );
        }
        // A client's message, or a hash with the client's label, is not a server handshake.
        assert_eq!(
            probe(&CTX, &testkit::gquic_server_handshake(b"CHLO", b"Server")),
            Probe::NoMatch
        );
        assert_eq!(
            probe(
                &CTX,
                &testkit::gquic_server_handshake(b"REJ\0", b"Client")
            ),
            Probe::NoMatch
        );
        let good = testkit::gquic_server_handshake(b"REJ\0", b"Server");
        // Every byte of the packet is covered by the hash: flip any and it no longer verifies
        // (or the structure breaks first).
        for at in [0usize, 3, 9, 10, 21, 25, 40, 80, 500, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            assert_eq!(probe(&CTX, &bad), Probe::NoMatch, "byte {at}");
        }
        // Reserved, version or reset flags.
        for flags in [0x09, 0x0a, 0x48, 0x88] {
            let mut bad = good.clone();
            bad[0] = flags;
            assert_eq!(probe(&CTX, &bad), Probe::NoMatch, "flags {flags:#04x}");
        }
        assert_eq!(probe(&CTX, &good[..40]), Probe::NoMatch);
        // Over TCP nothing is QUIC.
        let tcp = ProbeContext::new(Transport::Tcp, 50000, 443);
        assert_eq!(probe(&tcp, &good), Probe::NoMatch);
    }

    #[test]
    fn gquic_message_structure_is_checked() {
        let entry = |tag: &[u8; 4], end: u32| [&tag[..], &end.to_le_bytes()[..]].concat();
        let msg = |n: u16, pad: [u8; 2], entries: &[Vec<u8>], values: usize| {
            let mut m = b"REJ\0".to_vec();
            m.extend_from_slice(&n.to_le_bytes());
            m.extend_from_slice(&pad);
            entries.iter().for_each(|e| m.extend_from_slice(e));
            m.resize(m.len() + values, 0x77);
            m
        };
        let sorted = [entry(b"STK\0", 4), entry(b"SNO\0", 8)];
        assert_eq!(
            gquic_message_len(&msg(2, [0, 0], &sorted, 8)),
            Some(8 + 16 + 8)
        );
        // Values cut short, padding not zero, no entries, too many, unsorted tags,
        // decreasing offsets.
        assert_eq!(gquic_message_len(&msg(2, [0, 0], &sorted, 7)), None);
        assert_eq!(gquic_message_len(&msg(2, [0, 1], &sorted, 8)), None);
        assert_eq!(gquic_message_len(&msg(0, [0, 0], &[], 0)), None);
        assert_eq!(gquic_message_len(&msg(129, [0, 0], &sorted, 8)), None);
        let unsorted = [entry(b"SNO\0", 4), entry(b"STK\0", 8)];
        assert_eq!(gquic_message_len(&msg(2, [0, 0], &unsorted, 8)), None);
        let backwards = [entry(b"STK\0", 8), entry(b"SNO\0", 4)];
        assert_eq!(gquic_message_len(&msg(2, [0, 0], &backwards, 8)), None);
    }

    #[test]
    fn random_bytes_with_a_rej_tag_are_not_gquic() {
        let mut next = portolan_testkit::xorshift64_star(0x1234_5678_9abc_def1);
        for _ in 0..5_000 {
            let len = 40 + (next() % 1300) as usize;
            let mut pkt: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            pkt[0] = [0x00, 0x04, 0x08, 0x0c, 0x30][(next() % 5) as usize];
            let at = 18 + (next() % 20) as usize;
            pkt[at..at + 4].copy_from_slice(b"REJ\0");
            pkt[at - 4] = 0xa0;
            pkt[at - 3] = 0x01;
            assert_eq!(probe(&CTX, &pkt), Probe::NoMatch);
        }
    }

    #[test]
    fn version_negotiation_from_server() {
        let mut vn = vec![0x80, 0, 0, 0, 0, 4, 1, 2, 3, 4, 8];
        vn.extend_from_slice(&[9; 8]);
        vn.extend_from_slice(&[0x0a, 0x1a, 0x2a, 0x3a, 0, 0, 0, 1, 0x6b, 0x33, 0x43, 0xcf]);
        assert_match(probe(&CTX, &vn), "quic.version_negotiation");
        vn.truncate(vn.len() - 2);
        assert_eq!(probe(&CTX, &vn), Probe::NoMatch);
        let unknown_only = [0x80, 0, 0, 0, 0, 0, 0, 0x1a, 0x2a, 0x3a, 0x4a];
        assert_eq!(probe(&CTX, &unknown_only), Probe::NoMatch);
    }

    #[test]
    fn reserved_version_probe() {
        let mut p = vec![0xc3, 0x1a, 0x2a, 0x3a, 0x4a, 8];
        p.extend_from_slice(&[1; 8]);
        p.push(0);
        p.resize(1250, 0x33);
        assert_match(probe(&CTX, &p), "quic.reserved_version");
        assert_eq!(probe(&CTX, &p[..600]), Probe::NoMatch);
        p[2] = 0x2b;
        assert_eq!(probe(&CTX, &p), Probe::NoMatch);
    }

    #[test]
    fn tcp_is_never_quic() {
        let pkt = vector("rfc9001_client_initial.hex");
        let mut c = CTX;
        c.transport = Transport::Tcp;
        assert_eq!(probe(&c, &pkt), Probe::NoMatch);
    }
}
