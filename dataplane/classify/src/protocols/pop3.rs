//! POP3 identification (RFC 1939, RFC 2449, RFC 2595): the server's `+OK text` greeting and
//! `CAPA` listing, and the client's `CAPA`, `STLS` and `APOP` commands.
//!
//! Owns: recognising those lines; `STLS` is reported as `pop3.stls`. Must not: accept `USER`
//! alone (FTP sends the identical line; the greeting decides those flows) or a bare `+OK` line
//! (Redis replies with it).

use super::text_line::{first_line, is_prefix_ci_of, split_word, Line, Lines};
use crate::probe::{Meta, Probe, ProbeContext};

const MAX_LINE: usize = 512;

/// CAPA tags (RFC 2449 and registry) that identify a capability listing after a bare `+OK`.
const CAPA_TAGS: &[&[u8]] = &[
    b"CAPA",
    b"TOP",
    b"USER",
    b"UIDL",
    b"SASL",
    b"STLS",
    b"RESP-CODES",
    b"PIPELINING",
    b"EXPIRE",
    b"LOGIN-DELAY",
    b"IMPLEMENTATION",
    b"AUTH-RESP-CODE",
    b"UTF8",
    b"LANG",
];

/// Probes the first bytes of one direction for a POP3 greeting, listing or command.
pub fn probe(_ctx: &ProbeContext, data: &[u8]) -> Probe {
    let line = match first_line(data, MAX_LINE) {
        Line::Complete(line) => line,
        Line::Invalid => return Probe::NoMatch,
        Line::Partial => {
            let maybe = data.starts_with(b"+OK ")
                || b"+OK ".starts_with(data)
                || [&b"CAPA"[..], b"STLS", b"APOP "]
                    .iter()
                    .any(|w| is_prefix_ci_of(data, w));
            return if maybe {
                Probe::NeedMore
            } else {
                Probe::NoMatch
            };
        }
    };
    if let Some(text) = line.strip_prefix(b"+OK") {
        if text.first() == Some(&b' ') && text.iter().any(|&b| b != b' ') {
            return Probe::Match {
                indicator: "pop3.greeting",
                meta: Meta::None,
            };
        }
        if text.is_empty() {
            let next = Lines::new(data, MAX_LINE, 2).nth(1).unwrap_or_default();
            let tag = split_word(next).0;
            if CAPA_TAGS.iter().any(|t| tag.eq_ignore_ascii_case(t)) {
                return Probe::Match {
                    indicator: "pop3.capa",
                    meta: Meta::None,
                };
            }
        }
        return Probe::NoMatch;
    }
    if line.eq_ignore_ascii_case(b"CAPA") {
        return Probe::Match {
            indicator: "pop3.command",
            meta: Meta::None,
        };
    }
    if line.eq_ignore_ascii_case(b"STLS") {
        return Probe::Match {
            indicator: "pop3.stls",
            meta: Meta::None,
        };
    }
    let (verb, rest) = split_word(line);
    if verb.eq_ignore_ascii_case(b"APOP") {
        // APOP name digest, digest = 32 lowercase hex digits (MD5).
        if let Some((name, Some(digest))) = rest.map(split_word) {
            if !name.is_empty() && digest.len() == 32 && digest.iter().all(u8::is_ascii_hexdigit) {
                return Probe::Match {
                    indicator: "pop3.command",
                    meta: Meta::None,
                };
            }
        }
    }
    Probe::NoMatch
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_packet::Transport;
    use crate::probe::Side;
    use crate::test_support::{assert_match};

    const CTX: ProbeContext = ProbeContext::new(Transport::Tcp, 40000, 110).sent_by(Side::Server);

    #[test]
    fn server_lines() {
        assert_match(probe(&CTX, b"+OK Dovecot ready.\r\n"), "pop3.greeting");
        assert_match(probe(
                &CTX,
                b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"
            ), "pop3.greeting");
        assert_match(probe(&CTX, b"+OK\r\nCAPA\r\nTOP\r\nUIDL\r\n.\r\n"), "pop3.capa");
    }

    #[test]
    fn client_lines() {
        assert_match(probe(&CTX, b"CAPA\r\n"), "pop3.command");
        assert_match(probe(&CTX, b"STLS\r\n"), "pop3.stls");
        assert_match(probe(&CTX, b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"), "pop3.command");
    }

    #[test]
    fn rejections() {
        assert_eq!(probe(&CTX, b"+OK Dove"), Probe::NeedMore);
        for d in [
            &b"+OK\r\n"[..],
            b"+OK\r\n+OK\r\n",
            b"+PONG\r\n",
            b"USER alice\r\n",
            b"-ERR unknown command 'foo'\r\n",
            b"APOP mrose short\r\n",
            b"* OK IMAP4rev1\r\n",
            b"220 (vsFTPd 3.0.3)\r\n",
            b"\x05\x01\x00",
        ] {
            assert_eq!(probe(&CTX, d), Probe::NoMatch, "{d:?}");
        }
    }
}
