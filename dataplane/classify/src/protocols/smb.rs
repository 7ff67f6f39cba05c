//! SMB identification over TCP: a NetBIOS session message header (type `0x00`, 24-bit length;
//! also the framing of direct SMB on TCP) followed by an SMB2/3 header (`\xFESMB`), an SMB1
//! header (`\xFFSMB`, reported as `smb` too), or an SMB3 transform/compression header
//! (`\xFDSMB`, `\xFCSMB`).
//!
//! Owns: checking the framing length against the header, the SMB2 structure size and command,
//! the SMB1 command, and the transform header fields. Must not: accept NetBIOS session requests
//! (`0x81`) or name service datagrams; those are NetBIOS, not SMB.

use super::wire_int::{le16, u8_at};
use crate::probe::{Meta, Probe, ProbeContext};
use portolan_packet::Transport;

/// SMB1 commands ([MS-CIFS] 2.2.2.1) that occur in practice.
const SMB1_COMMANDS: &[u8] = &[
    0x04, 0x06, 0x08, 0x24, 0x25, 0x26, 0x2b, 0x2d, 0x2e, 0x2f, 0x32, 0x34, 0x71, 0x72, 0x73, 0x74,
    0x75, 0xa0, 0xa2, 0xa4,
];

/// Probes the first bytes of one TCP direction for an SMB message.
pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe {
    if ctx.transport != Transport::Tcp || data.first().is_some_and(|&b| b != 0) {
        return Probe::NoMatch;
    }
    let (Some(l0), Some(l1), Some(l2)) = (u8_at(data, 1), u8_at(data, 2), u8_at(data, 3)) else {
        return if data.is_empty() {
            Probe::NoMatch
        } else {
            Probe::NeedMore
        };
    };
    let len = (usize::from(l0) << 16) | (usize::from(l1) << 8) | usize::from(l2);
    let Some(magic) = data.get(4..8) else {
        let seen = data.get(4..).unwrap_or_default();
        let may = [&b"\xfeSMB"[..], b"\xffSMB", b"\xfdSMB", b"\xfcSMB"]
            .iter()
            .any(|m| m.starts_with(seen));
        return if may && len >= 32 {
            Probe::NeedMore
        } else {
            Probe::NoMatch
        };
    };
    let hdr = data.get(4..).unwrap_or_default();
    match magic {
        b"\xfeSMB" if len >= 64 => smb2(hdr),
        b"\xffSMB" if len >= 32 => smb1(hdr),
        b"\xfdSMB" if len > 52 => transform(hdr),
        b"\xfcSMB" if len > 16 => compression(hdr),
        _ => Probe::NoMatch,
    }
}

/// SMB2/3 sync or async header: StructureSize 64, command 0..=0x12.
fn smb2(h: &[u8]) -> Probe {
    match (le16(h, 4), le16(h, 12)) {
        (Some(64), Some(cmd)) if cmd <= 0x12 => Probe::Match {
            indicator: "smb.smb2",
            meta: Meta::None,
        },
        (Some(64), None) | (None, None) if h.len() < 14 => Probe::NeedMore,
        _ => Probe::NoMatch,
    }
}

/// SMB1 header: a known command.
fn smb1(h: &[u8]) -> Probe {
    match u8_at(h, 4) {
        Some(cmd) if SMB1_COMMANDS.contains(&cmd) => Probe::Match {
            indicator: "smb.smb1",
            meta: Meta::None,
        },
        Some(_) => Probe::NoMatch,
        None => Probe::NeedMore,
    }
}

/// SMB3 TRANSFORM_HEADER: Flags/EncryptionAlgorithm 0x0001 at offset 42.
fn transform(h: &[u8]) -> Probe {
    match le16(h, 42) {
        Some(1) => Probe::Match {
            indicator: "smb.encrypted",
            meta: Meta::None,
        },
        Some(_) => Probe::NoMatch,
        None => Probe::NeedMore,
    }
}

/// SMB2 COMPRESSION_TRANSFORM_HEADER: algorithm 0..=4, flags 0 or 1.
fn compression(h: &[u8]) -> Probe {
    match (le16(h, 8), le16(h, 10)) {
        (Some(alg), Some(flags)) if alg <= 4 && flags <= 1 => Probe::Match {
            indicator: "smb.compressed",
            meta: Meta::None,
        },
        (Some(_), Some(_)) => Probe::NoMatch,
        _ => Probe::NeedMore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_match};

    const CTX: ProbeContext = ProbeContext::new(Transport::Tcp, 50000, 445);

    fn smb2_negotiate() -> Vec<u8> {
        let mut h = vec![0x00, 0x00, 0x00, 0x66];
        h.extend_from_slice(b"\xfeSMB");
        h.extend_from_slice(&[0x40, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0x00, 0x00, 0x01, 0x00]);
        h.resize(4 + 0x66, 0);
        h
    }

    #[test]
    fn smb2_and_smb1() {
        assert_eq!(
            probe(&CTX, &smb2_negotiate()),
            Probe::Match {
                indicator: "smb.smb2",
                meta: Meta::None
            }
        );
        let mut s1 = vec![0x00, 0x00, 0x00, 0x54];
        s1.extend_from_slice(b"\xffSMB\x72\x00\x00\x00\x00\x18\x53\xc8");
        s1.resize(4 + 0x54, 0);
        assert_eq!(
            probe(&CTX, &s1),
            Probe::Match {
                indicator: "smb.smb1",
                meta: Meta::None
            }
        );
        assert_eq!(probe(&CTX, &smb2_negotiate()[..6]), Probe::NeedMore);
    }

    #[test]
    fn transform_header() {
        let mut t = vec![0x00, 0x00, 0x01, 0x00];
        t.extend_from_slice(b"\xfdSMB");
        t.resize(4 + 42, 0x5c);
        t.extend_from_slice(&[0x01, 0x00]);
        t.resize(4 + 0x100, 0x11);
        assert_match(probe(&CTX, &t), "smb.encrypted");
    }

    #[test]
    fn rejections() {
        let mut bad_size = smb2_negotiate();
        bad_size[8] = 0x41;
        let mut bad_cmd = smb2_negotiate();
        bad_cmd[16] = 0x40;
        let mut short_len = smb2_negotiate();
        short_len[3] = 0x20;
        // NetBIOS session request.
        let nb = b"\x81\x00\x00\x44\x20CKFDENECFDEFFCFGEFFCCACACACACACA\x00";
        for d in [
            &bad_size[..],
            &bad_cmd,
            &short_len,
            nb,
            b"\x00\x00\x00\x10GARBAGEGARBAGE!!",
            b"\x16\x03\x01\x00\x10",
        ] {
            assert_eq!(probe(&CTX, d), Probe::NoMatch);
        }
        let udp = ProbeContext::new(Transport::Udp, 50000, 445);
        assert_eq!(probe(&udp, &smb2_negotiate()), Probe::NoMatch);
    }
}
