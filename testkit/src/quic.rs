//! Protected QUIC Initial packets (v1, v2, drafts 29–32) carrying CRYPTO frames, and a legacy
//! Google QUIC server handshake packet.
//!
//! Owns: the long-header layout, padding and payload/header protection of client Initials with
//! a 4-byte packet number and no SCID or token (keys from `synth`'s `quic`, so the parser's
//! own derivation is checked, not reused). Must not: build anything after the Initial.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes128Gcm;
use portolan_synth::quic::{client_initial_keys, hp_mask, QUIC_V2};

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
    let v2 = version == QUIC_V2;
    let keys = client_initial_keys(version, key_dcid);
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
    let mut nonce = keys.iv;
    for (n, p) in nonce.iter_mut().skip(4).zip(u64::from(pn).to_be_bytes()) {
        *n ^= p;
    }
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
    let sample: &[u8; 16] = pkt[pn_offset + 4..pn_offset + 20]
        .try_into()
        .expect("16-byte sample");
    let mask = hp_mask(&keys.hp, sample);
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
    let h = fnv1a_128(&[&header, &plaintext, hash_label]);
    let mut pkt = header;
    pkt.extend_from_slice(&(h as u64).to_le_bytes());
    pkt.extend_from_slice(&((h >> 64) as u32).to_le_bytes());
    pkt.extend_from_slice(&plaintext);
    pkt
}

/// FNV-1a 128 over the concatenation of `parts` (gQUIC's null-encryption hash).
fn fnv1a_128(parts: &[&[u8]]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    parts
        .iter()
        .flat_map(|p| p.iter())
        .fold(OFFSET, |h, &b| (h ^ u128::from(b)).wrapping_mul(PRIME))
}
