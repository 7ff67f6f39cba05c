//! SMTP identification (RFC 5321): the server's `220` greeting naming (E)SMTP, the `250` EHLO
//! reply listing service extensions, and the client's `EHLO`/`HELO`, `MAIL FROM:` and
//! `STARTTLS` commands.
//!
//! Owns: recognising those lines and reporting the EHLO/HELO domain. Must not: label a bare `220`
//! greeting that does not say SMTP (FTP servers greet with `220` too), or a greeting that names
//! both SMTP and FTP.

use super::text_line::{
    contains_ci, first_line, has_reply_code, is_prefix_ci_of, split_word, starts_with_ci, Line,
    Lines,
};
use crate::probe::{Meta, Probe, ProbeContext};

/// RFC 5321 4.5.3.1.4/5: command lines at most 512 bytes, reply lines at most 512 bytes.
const MAX_LINE: usize = 1000;
/// Reply lines examined for a multi-line greeting or EHLO reply.
const MAX_LINES: usize = 32;

/// SMTP service extension keywords that identify an EHLO reply.
const EHLO_KEYWORDS: &[&[u8]] = &[
    b"PIPELINING",
    b"8BITMIME",
    b"STARTTLS",
    b"SIZE",
    b"ENHANCEDSTATUSCODES",
    b"CHUNKING",
    b"SMTPUTF8",
    b"DSN",
    b"AUTH",
    b"BINARYMIME",
    b"ETRN",
    b"DELIVERBY",
    b"VRFY",
    b"EXPN",
];

/// Probes the first bytes of one direction for an SMTP greeting, reply or command.
pub fn probe(_ctx: &ProbeContext, data: &[u8]) -> Probe {
    let line = match first_line(data, MAX_LINE) {
        Line::Complete(line) => line,
        Line::Invalid => return Probe::NoMatch,
        Line::Partial => {
            return if could_start(data) {
                Probe::NeedMore
            } else {
                Probe::NoMatch
            };
        }
    };
    if has_reply_code(line, b"220") {
        return greeting(data);
    }
    if has_reply_code(line, b"250") {
        return ehlo_reply(data);
    }
    let (verb, arg) = split_word(line);
    if verb.eq_ignore_ascii_case(b"EHLO") || verb.eq_ignore_ascii_case(b"HELO") {
        let Some(domain) = arg.filter(|a| domain_ok(a)) else {
            return Probe::NoMatch;
        };
        let indicator = if verb.eq_ignore_ascii_case(b"EHLO") {
            "smtp.ehlo"
        } else {
            "smtp.helo"
        };
        return Probe::Match {
            indicator,
            meta: Meta::Name(String::from_utf8_lossy(domain).into_owned()),
        };
    }
    if line.eq_ignore_ascii_case(b"STARTTLS") {
        return Probe::Match {
            indicator: "smtp.starttls",
            meta: Meta::None,
        };
    }
    if starts_with_ci(line, b"MAIL FROM:") && line.contains(&b'<') && line.contains(&b'>') {
        return Probe::Match {
            indicator: "smtp.mail_from",
            meta: Meta::None,
        };
    }
    Probe::NoMatch
}

/// A `220` greeting (possibly multi-line) that names SMTP and not FTP.
fn greeting(data: &[u8]) -> Probe {
    let mut smtp = false;
    let mut ftp = false;
    for line in Lines::new(data, MAX_LINE, MAX_LINES) {
        if !has_reply_code(line, b"220") {
            break;
        }
        smtp |= contains_ci(line, b"SMTP");
        ftp |= contains_ci(line, b"FTP");
        if line.get(3) != Some(&b'-') {
            break;
        }
    }
    if smtp && !ftp {
        Probe::Match {
            indicator: "smtp.greeting",
            meta: Meta::None,
        }
    } else {
        Probe::NoMatch
    }
}

/// A `250` reply whose continuation lines list SMTP service extensions.
fn ehlo_reply(data: &[u8]) -> Probe {
    for line in Lines::new(data, MAX_LINE, MAX_LINES).skip(1) {
        if !has_reply_code(line, b"250") {
            break;
        }
        let keyword = split_word(line.get(4..).unwrap_or_default()).0;
        if EHLO_KEYWORDS
            .iter()
            .any(|k| keyword.eq_ignore_ascii_case(k))
        {
            return Probe::Match {
                indicator: "smtp.ehlo_reply",
                meta: Meta::None,
            };
        }
        if line.get(3) != Some(&b'-') {
            break;
        }
    }
    Probe::NoMatch
}

/// An EHLO argument: a domain or an address literal, one word.
fn domain_ok(arg: &[u8]) -> bool {
    !arg.is_empty()
        && arg.len() <= 255
        && arg
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
}

/// The unfinished first line could still become one of the recognised lines.
fn could_start(data: &[u8]) -> bool {
    if data.starts_with(b"220") || data.starts_with(b"250") {
        return true;
    }
    for word in [&b"EHLO "[..], b"HELO ", b"STARTTLS", b"MAIL FROM:"] {
        if is_prefix_ci_of(data, word) || (starts_with_ci(data, word) && word.ends_with(b" ")) {
            return true;
        }
    }
    b"220".starts_with(data) || b"250".starts_with(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_packet::Transport;
    use crate::probe::Side;
    use crate::test_support::{assert_match};

    const CTX: ProbeContext = ProbeContext::new(Transport::Tcp, 40000, 25).sent_by(Side::Server);

    #[test]
    fn greetings() {
        for g in [
            &b"220 mx.google.com ESMTP a1si123456qkb.42 - gsmtp\r\n"[..],
            b"220 mail.example.org ESMTP Postfix (Debian/GNU)\r\n",
            b"220-smtp.example.com Microsoft ESMTP MAIL Service ready\r\n220 at Tue, 1 Oct 2024\r\n",
            b"220-mail.example.net\r\n220 Exim SMTP ready\r\n",
        ] {
            assert_eq!(probe(&CTX, g), Probe::Match { indicator: "smtp.greeting", meta: Meta::None }, "{g:?}");
        }
    }

    #[test]
    fn client_commands() {
        assert_eq!(
            probe(&CTX, b"EHLO [192.168.1.5]\r\n"),
            Probe::Match {
                indicator: "smtp.ehlo",
                meta: Meta::Name("[192.168.1.5]".into())
            }
        );
        assert_match(probe(&CTX, b"helo client.example.com\r\n"), "smtp.helo");
        assert_match(probe(&CTX, b"STARTTLS\r\n"), "smtp.starttls");
        assert_match(probe(&CTX, b"MAIL FROM:<alice@example.com> SIZE=1024\r\n"), "smtp.mail_from");
    }

    #[test]
    fn ehlo_reply() {
        let r = b"250-mx.example.com Hello [10.0.0.1]\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n250 STARTTLS\r\n";
        assert_match(probe(&CTX, r), "smtp.ehlo_reply");
        assert_eq!(
            probe(&CTX, b"250 CWD command successful.\r\n"),
            Probe::NoMatch
        );
    }

    #[test]
    fn partial_and_rejections() {
        assert_eq!(probe(&CTX, b"220 mx.example.com ES"), Probe::NeedMore);
        assert_eq!(probe(&CTX, b"EH"), Probe::NeedMore);
        for d in [
            &b"220 (vsFTPd 3.0.3)\r\n"[..],
            b"220 ProFTPD Server (Debian)\r\n",
            b"220 Welcome\r\n",
            b"220 SMTP/FTP gateway\r\n",
            b"EHLO\r\n",
            b"EHLO a b\r\n",
            b"USER anonymous\r\n",
            b"* OK [CAPABILITY IMAP4rev1] ready\r\n",
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"\x16\x03\x01\x00\x10",
        ] {
            assert_eq!(probe(&CTX, d), Probe::NoMatch, "{d:?}");
        }
    }
}
