//! SSH identification: the protocol version exchange line `SSH-<protoversion>-<software>`
//! (RFC 4253 section 4.2) that each side sends first.
//!
//! Owns: recognising the banner and extracting the software version for the side that sent it.
//! Must not: look at anything after the banner (key exchange is binary and not needed here).

use super::text_line::{first_line, Line};
use crate::probe::{Meta, Probe, ProbeContext, SshMeta};

/// RFC 4253: the identification line is at most 255 bytes including CR LF.
const MAX_BANNER: usize = 253;

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
        return Probe::NoMatch;
    }
    match first_line(data, MAX_BANNER) {
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
                let meta = if ctx.from_client {
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
                Probe::Match {
                    indicator: "ssh.banner",
                    meta: Meta::Ssh(meta),
                }
            }
            None => Probe::NoMatch,
        },
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

    fn ctx(from_client: bool) -> ProbeContext {
        ProbeContext {
            transport: Transport::Tcp,
            from_client,
            client_port: 50000,
            server_port: 22,
            packet_index: 0,
        }
    }

    #[test]
    fn client_banner_sets_client_software() {
        let p = probe(&ctx(true), b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n");
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
        } = probe(&ctx(false), &d)
        else {
            panic!()
        };
        assert_eq!(m.server_software.as_deref(), Some("Cisco-1.25"));
    }

    #[test]
    fn bare_lf_and_dropbear() {
        assert!(matches!(
            probe(&ctx(false), b"SSH-2.0-dropbear_2022.83\n"),
            Probe::Match { .. }
        ));
    }

    #[test]
    fn partial_banners_need_more() {
        assert_eq!(probe(&ctx(true), b"SS"), Probe::NeedMore);
        assert_eq!(probe(&ctx(true), b"SSH-2.0-Open"), Probe::NeedMore);
        assert_eq!(probe(&ctx(true), b"SSH-2."), Probe::NeedMore);
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
            assert_eq!(probe(&ctx(true), d), Probe::NoMatch, "{d:?}");
        }
        let long = [b"SSH-2.0-".as_slice(), &[b'a'; 300]].concat();
        assert_eq!(probe(&ctx(true), &long), Probe::NoMatch);
    }
}
