//! SSH identification: the protocol version exchange line `SSH-<protoversion>-<software>`
//! (RFC 4253 section 4.2) that each side sends first, and the role markers of the first
//! key exchange.
//!
//! Owns: recognising the banner and extracting the software version for the side that sent it;
//! proving which side is the client from the `SSH_MSG_KEXINIT` that follows (the only
//! role-specific thing both sides send in clear): its `kex_algorithms` list carries
//! `ext-info-c` / `ext-info-s` (RFC 8308 section 2.1: a client MUST use the first, a server the
//! second) or OpenSSH's strict-KEX markers `kex-strict-c-v00@openssh.com` /
//! `kex-strict-s-v00@openssh.com`. Must not: look past the first binary packet, treat a
//! message number of the key exchange method (30..=49, whose meaning depends on the method
//! negotiated, RFC 4250 section 4.1.2) as role evidence, or panic on any input.

use super::text_line::{split_line, Line};
use super::wire_int::be32;
use crate::probe::{Meta, Probe, ProbeContext, Side, SshMeta};

/// RFC 4253: the identification line is at most 255 bytes including CR LF.
const MAX_BANNER: usize = 253;
/// RFC 4253 section 6.1: implementations must handle packets of 35000 bytes.
const MAX_PACKET: usize = 35_000;
/// `SSH_MSG_KEXINIT` (RFC 4253 section 12).
const MSG_KEXINIT: u8 = 20;
/// Smallest KEXINIT payload: message number, 16-byte cookie, ten empty name-lists, the
/// `first_kex_packet_follows` boolean and the reserved `uint32`.
const MIN_KEXINIT_PAYLOAD: usize = 1 + 16 + 10 * 4 + 1 + 4;
/// Names only a client puts in `kex_algorithms`.
const CLIENT_MARKERS: [&[u8]; 2] = [b"ext-info-c", b"kex-strict-c-v00@openssh.com"];
/// Names only a server puts in `kex_algorithms`.
const SERVER_MARKERS: [&[u8]; 2] = [b"ext-info-s", b"kex-strict-s-v00@openssh.com"];

/// Probes one packet (or the first bytes of one direction) for an SSH identification line.
pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe {
    if data.len() < 4 {
        return if !data.is_empty() && b"SSH-".starts_with(data) {
            Probe::NeedMore
        } else {
            Probe::NoMatch
        };
    }
    if !data.starts_with(b"SSH-") {
        // After the banners: a KEXINIT that proves its sender's role.
        return match kexinit_sender(data) {
            Some(sender) => Probe::MatchFrom {
                indicator: "ssh.kexinit",
                meta: Meta::None,
                sender,
            },
            None => Probe::NoMatch,
        };
    }
    let (line, after) = split_line(data, MAX_BANNER);
    match line {
        Line::Invalid => Probe::NoMatch,
        Line::Partial => {
            if partial_banner_ok(data) {
                Probe::NeedMore
            } else {
                Probe::NoMatch
            }
        }
        Line::Complete(line) => match parse_banner(line) {
            Some((_proto, software)) => {
                let software = String::from_utf8_lossy(software).into_owned();
                let meta = if ctx.sender.is_client() {
                    SshMeta {
                        client_software: Some(software),
                        server_software: None,
                    }
                } else {
                    SshMeta {
                        client_software: None,
                        server_software: Some(software),
                    }
                };
                match kexinit_sender(after) {
                    // The KEXINIT often rides in the banner's segment.
                    Some(sender) => Probe::MatchFrom {
                        indicator: "ssh.banner",
                        meta: Meta::Ssh(meta),
                        sender,
                    },
                    None => Probe::Match {
                        indicator: "ssh.banner",
                        meta: Meta::Ssh(meta),
                    },
                }
            }
            None => Probe::NoMatch,
        },
    }
}

/// The role proven by an unencrypted `SSH_MSG_KEXINIT` packet at the start of `data`: the
/// packet header is valid (RFC 4253 section 6: length a multiple of 8 with the four length
/// bytes, 4..=255 bytes of padding, at most 35000 bytes), and its first name-list,
/// `kex_algorithms`, is complete, well-formed (RFC 4251 section 5: comma-separated non-empty
/// printable US-ASCII names) and holds markers of exactly one role. `None` otherwise (no
/// marker, markers of both roles, a list cut by the segment end, or not a KEXINIT).
fn kexinit_sender(data: &[u8]) -> Option<Side> {
    let packet_len = usize::try_from(be32(data, 0)?).ok()?;
    let padding = usize::from(*data.get(4)?);
    if packet_len > MAX_PACKET || (packet_len + 4) % 8 != 0 || padding < 4 {
        return None;
    }
    let payload_len = packet_len.checked_sub(padding + 1)?;
    if payload_len < MIN_KEXINIT_PAYLOAD || *data.get(5)? != MSG_KEXINIT {
        return None;
    }
    // Message number (1), cookie (16), then the name-list's uint32 length at offset 5 + 17.
    let list_len = usize::try_from(be32(data, 22)?).ok()?;
    if 1 + 16 + 4 + list_len > payload_len {
        return None;
    }
    let list = data.get(26..26 + list_len)?;
    if list.is_empty() || !list.iter().all(|b| (0x21..0x7f).contains(b)) {
        return None;
    }
    let (mut client, mut server) = (false, false);
    for name in list.split(|&b| b == b',') {
        if name.is_empty() {
            return None;
        }
        client |= CLIENT_MARKERS.contains(&name);
        server |= SERVER_MARKERS.contains(&name);
    }
    match (client, server) {
        (true, false) => Some(Side::Client),
        (false, true) => Some(Side::Server),
        _ => None,
    }
}

/// Splits a complete identification line into protocol version and software version.
fn parse_banner(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = line.strip_prefix(b"SSH-")?;
    let dash = rest.iter().position(|&b| b == b'-')?;
    let proto = rest.get(..dash)?;
    if !proto_version_ok(proto) {
        return None;
    }
    let after = rest.get(dash + 1..)?;
    // The software version ends at the first space (comments follow it).
    let end = after.iter().position(|&b| b == b' ').unwrap_or(after.len());
    let software = after.get(..end)?;
    if software.is_empty() || !software.iter().all(|b| (0x21..0x7f).contains(b)) {
        return None;
    }
    Some((proto, software))
}

/// `2.0`, `1.99`, `1.5`: digits, one dot, digits.
fn proto_version_ok(proto: &[u8]) -> bool {
    let Some(dot) = proto.iter().position(|&b| b == b'.') else {
        return false;
    };
    let (major, minor) = (
        proto.get(..dot).unwrap_or_default(),
        proto.get(dot + 1..).unwrap_or_default(),
    );
    (1..=2).contains(&major.len())
        && (1..=3).contains(&minor.len())
        && major.iter().chain(minor).all(u8::is_ascii_digit)
}

/// The bytes of an unfinished banner are consistent with `SSH-d.d-software`.
fn partial_banner_ok(data: &[u8]) -> bool {
    let rest = data.get(4..).unwrap_or_default();
    match rest.iter().position(|&b| b == b'-') {
        None => rest.iter().all(|&b| b.is_ascii_digit() || b == b'.') && rest.len() <= 6,
        Some(dash) => {
            let proto = rest.get(..dash).unwrap_or_default();
            proto_version_ok(proto)
                && rest
                    .get(dash + 1..)
                    .unwrap_or_default()
                    .iter()
                    .all(|&b| b == b'\r' || b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_packet::Transport;
    use crate::test_support::{expect_match};

    const CLIENT: ProbeContext = ProbeContext::new(Transport::Tcp, 50000, 22);
    const SERVER: ProbeContext = CLIENT.sent_by(Side::Server);

    #[test]
    fn client_banner_sets_client_software() {
        let p = probe(&CLIENT, b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n");
        let Probe::Match {
            indicator,
            meta: Meta::Ssh(m),
        } = p
        else {
            panic!("{p:?}")
        };
        assert_eq!(indicator, "ssh.banner");
        assert_eq!(m.client_software.as_deref(), Some("OpenSSH_9.6p1"));
        assert_eq!(m.server_software, None);
    }

    #[test]
    fn server_banner_with_kexinit_in_same_segment() {
        let mut d = b"SSH-1.99-Cisco-1.25\r\n".to_vec();
        d.extend_from_slice(&[0, 0, 1, 0x2c, 0x0a, 0x14]);
        let Probe::Match {
            meta: Meta::Ssh(m), ..
        } = probe(&SERVER, &d)
        else {
            panic!()
        };
        assert_eq!(m.server_software.as_deref(), Some("Cisco-1.25"));
    }

    #[test]
    fn bare_lf_and_dropbear() {
        expect_match(probe(&SERVER, b"SSH-2.0-dropbear_2022.83\n"));
    }

    #[test]
    fn partial_banners_need_more() {
        assert_eq!(probe(&CLIENT, b"SS"), Probe::NeedMore);
        assert_eq!(probe(&CLIENT, b"SSH-2.0-Open"), Probe::NeedMore);
        assert_eq!(probe(&CLIENT, b"SSH-2."), Probe::NeedMore);
    }

    #[test]
    fn rejects_non_ssh() {
        for d in [
            &b"SSH-x.0-foo\r\n"[..],
            b"SSH-2.0-\r\n",
            b"SSH-2.0 OpenSSH\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"220 mail.example.com ESMTP Postfix\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"SSH-2.0-abc\x00def\r\n",
            b"",
        ] {
            assert_eq!(probe(&CLIENT, d), Probe::NoMatch, "{d:?}");
        }
        let long = [b"SSH-2.0-".as_slice(), &[b'a'; 300]].concat();
        assert_eq!(probe(&CLIENT, &long), Probe::NoMatch);
    }

    use portolan_testkit::ssh_kexinit as kexinit;

    const CLIENT_KEX: &str = "sntrup761x25519-sha512@openssh.com,curve25519-sha256,\
        ecdh-sha2-nistp256,diffie-hellman-group14-sha256,ext-info-c,kex-strict-c-v00@openssh.com";
    const SERVER_KEX: &str = "sntrup761x25519-sha512@openssh.com,curve25519-sha256,\
        ecdh-sha2-nistp256,diffie-hellman-group14-sha256,kex-strict-s-v00@openssh.com";

    #[test]
    fn kexinit_role_markers_prove_the_sender() {
        for (kex, sender) in [
            (CLIENT_KEX, Side::Client),
            (SERVER_KEX, Side::Server),
            ("curve25519-sha256,ext-info-s", Side::Server),
            ("ext-info-c", Side::Client),
        ] {
            // Whichever side we took it for: the marker decides.
            for from_client in [true, false] {
                assert_eq!(
                    probe(&if from_client { CLIENT } else { SERVER }, &kexinit(kex)),
                    Probe::MatchFrom {
                        indicator: "ssh.kexinit",
                        meta: Meta::None,
                        sender
                    },
                    "{kex}"
                );
            }
        }
        // Banner and KEXINIT in one segment: the banner's metadata plus the proof.
        let mut both = b"SSH-2.0-OpenSSH_9.6\r\n".to_vec();
        both.extend_from_slice(&kexinit(SERVER_KEX));
        let Probe::MatchFrom {
            indicator,
            meta: Meta::Ssh(m),
            sender,
        } = probe(&CLIENT, &both)
        else {
            panic!("{:?}", probe(&CLIENT, &both))
        };
        assert_eq!((indicator, sender), ("ssh.banner", Side::Server));
        assert_eq!(m.client_software.as_deref(), Some("OpenSSH_9.6"));
    }

    #[test]
    fn kexinit_without_a_clear_marker_proves_nothing() {
        // No marker (older implementations), markers of both roles, names that only look
        // like markers.
        for kex in [
            "diffie-hellman-group-exchange-sha256,diffie-hellman-group14-sha1",
            "curve25519-sha256,ext-info-c,ext-info-s",
            "ext-info-cc,xext-info-s,kex-strict-c-v01@openssh.com",
        ] {
            assert_eq!(probe(&CLIENT, &kexinit(kex)), Probe::NoMatch, "{kex}");
            let mut both = b"SSH-2.0-OpenSSH_7.4\r\n".to_vec();
            both.extend_from_slice(&kexinit(kex));
            assert!(
                matches!(probe(&SERVER, &both), Probe::Match { .. }),
                "{kex}"
            );
        }
        let good = kexinit(CLIENT_KEX);
        // Cut inside the name-list, a wrong message number, a bad block multiple, too little
        // padding, an empty name, a space in the list.
        let mut wrong_code = good.clone();
        wrong_code[5] = 21;
        let mut odd_len = good.clone();
        odd_len[3] = odd_len[3].wrapping_add(1);
        let mut short_pad = good.clone();
        short_pad[4] = 3;
        let mut empty_name = good.clone();
        let comma = 26 + CLIENT_KEX.find(',').unwrap();
        empty_name[comma + 1] = b',';
        let mut space = good.clone();
        space[27] = b' ';
        for (what, bytes) in [
            ("cut", good[..60].to_vec()),
            ("code", wrong_code),
            ("length", odd_len),
            ("padding", short_pad),
            ("empty name", empty_name),
            ("space", space),
        ] {
            assert_eq!(probe(&CLIENT, &bytes), Probe::NoMatch, "{what}");
        }
    }

    #[test]
    fn other_bytes_prove_no_role() {
        let mut next = portolan_testkit::xorshift64_star(0x9e37_79b9_7f4a_7c15);
        for i in 0..20_000 {
            let len = 6 + (next() % 1400) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 2 == 0 {
                // A plausible packet header with the KEXINIT number.
                bytes[..4].copy_from_slice(&((len as u32 - 4) & !7 | 4).to_be_bytes());
                bytes[4] = 4 + (next() % 16) as u8;
                bytes[5] = 20;
            }
            assert_eq!(probe(&CLIENT, &bytes), Probe::NoMatch);
        }
        for other in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
            b"\x00\x00\x00\x68\xfeSMB\x40\x00\x00\x00",
            b"\x00\x00\x05\xdc\x0a\x14\x00\x00\x00\x00",
        ] {
            assert_eq!(probe(&SERVER, other), Probe::NoMatch);
        }
    }
}
