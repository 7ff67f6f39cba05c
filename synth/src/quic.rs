//! QUIC v1 packets: protected Initial packets (RFC 9001 §5) and 1-RTT short-header packets.
//!
//! Owns: deriving the Initial secrets from the client's Destination Connection ID with the
//! version's salt (HKDF-SHA256; v1, and for test inputs v2 and drafts 29–32), AES-128-GCM payload protection and AES-ECB header protection, and the
//! long/short header layouts. Must not: pretend to protect Handshake or 1-RTT packets — their
//! keys come from a key exchange that is not performed, so their bodies are random bytes.

use aes_gcm::aead::AeadInOut;
use aes_gcm::aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes_gcm::aes::Aes128;
use aes_gcm::{Aes128Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::rng::SynthRng;
use crate::tls::put_varint;

/// QUIC version 1.
pub const QUIC_V1: u32 = 1;
/// RFC 9001 §5.2 initial salt for QUIC v1.
const INITIAL_SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
/// QUIC version 2 (RFC 9369).
pub const QUIC_V2: u32 = 0x6b33_43cf;
/// RFC 9369 §3.3.1 initial salt for QUIC v2.
const INITIAL_SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];
/// draft-ietf-quic-tls-29 §5.2 initial salt (drafts 29–32, versions `0xff00001d..=0xff000020`).
const INITIAL_SALT_DRAFT29: [u8; 20] = [
    0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0,
    0x43, 0x90, 0xa8, 0x99,
];
/// AEAD tag length (AES-128-GCM).
const TAG_LEN: usize = 16;
/// Packet-number length used in the Initial packets written here.
const PN_LEN: usize = 2;

/// The packet-protection keys of one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketKeys {
    /// AEAD key.
    pub key: [u8; 16],
    /// AEAD IV (XORed with the packet number for the nonce).
    pub iv: [u8; 12],
    /// Header-protection key.
    pub hp: [u8; 16],
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
fn expand_label(secret: &[u8], label: &str, out: &mut [u8]) {
    let mut info = Vec::with_capacity(label.len() + 10);
    info.extend_from_slice(&(out.len() as u16).to_be_bytes());
    info.push((6 + label.len()) as u8);
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label.as_bytes());
    info.push(0);
    // A 32-byte secret is always a valid PRK for SHA-256 and the outputs here are at most 32
    // bytes, so neither step can fail; fall back to zeros rather than panic if that changes.
    match Hkdf::<Sha256>::from_prk(secret) {
        Ok(h) => {
            if h.expand(&info, out).is_err() {
                out.fill(0);
            }
        }
        Err(_) => out.fill(0),
    }
}

/// The key, IV and header-protection keys of `secret`; QUIC v2 labels them `quicv2 ...`
/// (RFC 9369 §3.3.2).
fn keys_from_secret(secret: &[u8], v2_labels: bool) -> PacketKeys {
    let mut k = PacketKeys {
        key: [0; 16],
        iv: [0; 12],
        hp: [0; 16],
    };
    let (key, iv, hp) = if v2_labels {
        ("quicv2 key", "quicv2 iv", "quicv2 hp")
    } else {
        ("quic key", "quic iv", "quic hp")
    };
    expand_label(secret, key, &mut k.key);
    expand_label(secret, iv, &mut k.iv);
    expand_label(secret, hp, &mut k.hp);
    k
}

/// The Initial secret of one side (`client in` or `server in`) under `salt`.
fn initial_secret(salt: &[u8; 20], dcid: &[u8], side: &str) -> [u8; 32] {
    let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), dcid);
    let mut secret = [0u8; 32];
    expand_label(&prk, side, &mut secret);
    secret
}

/// Client and server Initial keys for a connection whose client chose `dcid` (RFC 9001 §5.2).
pub fn initial_keys(dcid: &[u8]) -> (PacketKeys, PacketKeys) {
    (
        keys_from_secret(&initial_secret(&INITIAL_SALT_V1, dcid, "client in"), false),
        keys_from_secret(&initial_secret(&INITIAL_SALT_V1, dcid, "server in"), false),
    )
}

/// The client Initial keys of `version` for `dcid`: v2 (RFC 9369) with its salt and labels,
/// drafts 29–32 with theirs, any other version with v1's.
pub fn client_initial_keys(version: u32, dcid: &[u8]) -> PacketKeys {
    let (salt, v2) = match version {
        QUIC_V2 => (&INITIAL_SALT_V2, true),
        0xff00_001d..=0xff00_0020 => (&INITIAL_SALT_DRAFT29, false),
        _ => (&INITIAL_SALT_V1, false),
    };
    keys_from_secret(&initial_secret(salt, dcid, "client in"), v2)
}

/// The header-protection mask of `sample` (RFC 9001 §5.4.3: AES-128-ECB under `hp`).
pub fn hp_mask(hp: &[u8; 16], sample: &[u8; 16]) -> [u8; 16] {
    let mut block = aes_gcm::aes::Block::from(*sample);
    if let Ok(cipher) = Aes128::new_from_slice(hp) {
        cipher.encrypt_block(&mut block);
    }
    block.into()
}

/// Appends a protected Initial packet to `out`: long header with `dcid`/`scid`, packet number
/// `pn`, and `frames` as plaintext padded with PADDING frames so the packet is `min_len` bytes
/// long (when `min_len` exceeds its natural size).
pub fn push_initial(
    out: &mut Vec<u8>,
    keys: &PacketKeys,
    dcid: &[u8],
    scid: &[u8],
    pn: u32,
    frames: &[u8],
    min_len: usize,
) {
    let start = out.len();
    out.push(0xc0 | (PN_LEN as u8 - 1)); // long header, fixed bit, type Initial
    out.extend_from_slice(&QUIC_V1.to_be_bytes());
    out.push(dcid.len() as u8);
    out.extend_from_slice(dcid);
    out.push(scid.len() as u8);
    out.extend_from_slice(scid);
    out.push(0); // token length
                 // Length (2-byte varint) covers packet number + payload + tag.
    let header_len = out.len() - start + 2 + PN_LEN;
    let natural = header_len + frames.len() + TAG_LEN;
    let pad = min_len.saturating_sub(natural);
    // Header protection samples 16 bytes starting 4 bytes after the packet number start; with a
    // 16-byte tag, 4 payload bytes always leave room for the sample.
    let payload_len = (frames.len() + pad).max(4);
    let length = PN_LEN + payload_len + TAG_LEN;
    out.extend_from_slice(&((length as u16) | 0x4000).to_be_bytes());
    let pn_at = out.len();
    out.extend_from_slice(&(pn as u16).to_be_bytes());
    let payload_at = out.len();
    out.extend_from_slice(frames);
    out.resize(payload_at + payload_len, 0);
    let mut nonce = keys.iv;
    for (i, b) in (pn as u64).to_be_bytes().iter().enumerate() {
        nonce[4 + i] ^= b;
    }
    let aad = out[start..payload_at].to_vec();
    let tag = match Aes128Gcm::new_from_slice(&keys.key) {
        Ok(aead) => aead
            .encrypt_inout_detached(&Nonce::from(nonce), &aad, (&mut out[payload_at..]).into())
            .map(|t| t.to_vec())
            .unwrap_or_else(|_| vec![0; TAG_LEN]),
        Err(_) => vec![0; TAG_LEN],
    };
    out.extend_from_slice(&tag);
    protect_header(&mut out[start..], pn_at - start, &keys.hp, true);
}

/// Applies header protection (RFC 9001 §5.4) to a packet whose packet number starts at
/// `pn_offset` and is [`PN_LEN`] bytes long.
fn protect_header(pkt: &mut [u8], pn_offset: usize, hp: &[u8; 16], long: bool) {
    let Some(sample) = pkt
        .get(pn_offset + 4..pn_offset + 20)
        .and_then(|s| <&[u8; 16]>::try_from(s).ok())
    else {
        return;
    };
    let block = hp_mask(hp, sample);
    pkt[0] ^= block[0] & if long { 0x0f } else { 0x1f };
    for i in 0..PN_LEN {
        pkt[pn_offset + i] ^= block[1 + i];
    }
}

/// Appends a Handshake long-header packet of exactly `len` bytes whose protected part is random
/// (its keys would come from the key exchange).
pub fn push_handshake_opaque(
    out: &mut Vec<u8>,
    dcid: &[u8],
    scid: &[u8],
    len: usize,
    rng: &mut SynthRng,
) {
    let start = out.len();
    out.push(0xe0 | (rng.u32() as u8 & 0x0f)); // type Handshake; low bits are protected
    out.extend_from_slice(&QUIC_V1.to_be_bytes());
    out.push(dcid.len() as u8);
    out.extend_from_slice(dcid);
    out.push(scid.len() as u8);
    out.extend_from_slice(scid);
    let hdr = out.len() - start + 2;
    let rest = len.saturating_sub(hdr).max(PN_LEN + 1 + TAG_LEN);
    out.extend_from_slice(&((rest as u16) | 0x4000).to_be_bytes());
    let at = out.len();
    out.resize(at + rest, 0);
    rng.fill(&mut out[at..]);
}

/// Appends the header of a 1-RTT short-header packet to `dcid`: fixed bit, spin bit, and the
/// five header-protected bits (`protected`, random-looking on the wire). The protected packet
/// number and payload follow.
pub fn push_short_header(out: &mut Vec<u8>, dcid: &[u8], spin: bool, protected: u8) {
    out.push(0x40 | if spin { 0x20 } else { 0 } | (protected & 0x1f));
    out.extend_from_slice(dcid);
}

/// Smallest 1-RTT packet body after the header: 1-byte packet number, 1-byte frame, AEAD tag.
pub const SHORT_MIN_BODY: usize = 1 + 1 + TAG_LEN;

/// A CRYPTO frame carrying `data` at stream offset `offset`.
pub fn crypto_frame(offset: u64, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0x06];
    put_varint(&mut f, offset);
    put_varint(&mut f, data.len() as u64);
    f.extend_from_slice(data);
    f
}

/// An ACK frame acknowledging packet numbers `0..=largest`.
pub fn ack_frame(largest: u64, delay: u64) -> Vec<u8> {
    let mut f = vec![0x02];
    put_varint(&mut f, largest);
    put_varint(&mut f, delay);
    put_varint(&mut f, 0);
    put_varint(&mut f, largest);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
            .collect()
    }

    /// RFC 9001 Appendix A.1 key derivation vectors.
    #[test]
    fn rfc9001_initial_keys() {
        let (c, s) = initial_keys(&hex("8394c8f03e515708"));
        assert_eq!(c.key.to_vec(), hex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(c.iv.to_vec(), hex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(c.hp.to_vec(), hex("9f50449e04a0e810283a1e9933adedd2"));
        assert_eq!(s.key.to_vec(), hex("cf3a5331653c364c88f0f379b6067e37"));
        assert_eq!(s.iv.to_vec(), hex("0ac1493ca1905853b0bba03e"));
        assert_eq!(s.hp.to_vec(), hex("c206b8d9b9f0f37644430b490eeaa314"));
        assert_eq!(client_initial_keys(QUIC_V1, &hex("8394c8f03e515708")), c);
    }

    /// RFC 9369 Appendix A.1: the v2 client Initial keys.
    #[test]
    fn rfc9369_v2_client_initial_keys() {
        let c = client_initial_keys(QUIC_V2, &hex("8394c8f03e515708"));
        assert_eq!(c.key.to_vec(), hex("8b1a0bc121284290a29e0971b5cd045d"));
        assert_eq!(c.iv.to_vec(), hex("91f73e2351d8fa91660e909f"));
        assert_eq!(c.hp.to_vec(), hex("45b95e15235d6f45a6b19cbcb0294ba9"));
    }

    /// RFC 9001 Appendix A.3: the server Initial (packet number 1, 2-byte PN) protects to the
    /// published bytes.
    #[test]
    fn rfc9001_server_initial_protects_to_vector() {
        let (_, s) = initial_keys(&hex("8394c8f03e515708"));
        let frames = hex(
            "02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf73988cfc79825df566dc5430b9a04\
             5a1200130100002e00330024001d00209d3c940d89690b84d08a60993c144eca684d1081287c834d5311bcf3\
             2bb9da1a002b00020304",
        );
        let mut out = Vec::new();
        push_initial(&mut out, &s, &[], &hex("f067a5502a4262b5"), 1, &frames, 0);
        let want = hex(
            "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a5816b6394100f37a1c69797554\
             780bb38cc5a99f5ede4cf73c3ec2493a1839b3dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded7\
             4b562bfb19fb84022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc42158407dd07\
             4ee",
        );
        assert_eq!(out, want);
    }

    #[test]
    fn padded_initial_has_requested_length() {
        let (c, _) = initial_keys(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut out = Vec::new();
        push_initial(
            &mut out,
            &c,
            &[1, 2, 3, 4, 5, 6, 7, 8],
            &[9; 8],
            0,
            &crypto_frame(0, &[1; 300]),
            1252,
        );
        assert_eq!(out.len(), 1252);
        assert_eq!(out[0] & 0xf0, 0xc0);
    }
}
