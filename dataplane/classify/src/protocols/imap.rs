//! IMAP identification (RFC 9051 / RFC 3501): the server's untagged `* OK` / `* PREAUTH`
//! greeting and `* CAPABILITY IMAP4...` response, and the client's tagged commands.
//!
//! Owns: recognising those lines; `a STARTTLS` is reported as `imap.starttls`. Must not: accept
//! an untagged command line (FTP, POP3, IRC commands have no tag) or a tag that is another text
//! protocol's command word.

use super::text_line::{contains_ci, first_line, is_prefix_ci_of, split_word, Line};
use crate::probe::{Meta, Probe, ProbeContext};

const MAX_LINE: usize = 8192;

/// Client commands accepted after a tag (those a session starts with, plus common ones).
const COMMANDS: &[&[u8]] = &[
    b"CAPABILITY",
    b"LOGIN",
    b"AUTHENTICATE",
    b"STARTTLS",
    b"ID",
    b"NOOP",
    b"LOGOUT",
    b"SELECT",
    b"EXAMINE",
    b"LIST",
    b"LSUB",
    b"STATUS",
    b"NAMESPACE",
    b"ENABLE",
    b"IDLE",
    b"UID",
    b"FETCH",
    b"SEARCH",
    b"APPEND",
    b"CREATE",
    b"COMPRESS",
    b"XLIST",
    b"GETQUOTAROOT",
];

/// Words that are commands of other line protocols; never taken as an IMAP tag.
const NOT_TAGS: &[&[u8]] = &[
    b"USER", b"PASS", b"NICK", b"AUTH", b"APOP", b"HELO", b"EHLO", b"MAIL", b"RCPT", b"TYPE",
    b"STOR", b"RETR", b"CAP", b"OPTS", b"SITE",
];

/// Probes the first bytes of one direction for an IMAP greeting, response or tagged command.
pub fn probe(_ctx: &ProbeContext, data: &[u8]) -> Probe {
    let line = match first_line(data, MAX_LINE) {
        Line::Complete(line) => line,
        Line::Invalid => return Probe::NoMatch,
        Line::Partial => {
            let starts: [&[u8]; 3] = [b"* OK ", b"* PREAUTH ", b"* CAPABILITY "];
            return if starts
                .iter()
                .any(|s| data.starts_with(s) || is_prefix_ci_of(data, s))
            {
                Probe::NeedMore
            } else {
                Probe::NoMatch
            };
        }
    };
    if let Some(rest) = line.strip_prefix(b"* ") {
        let (word, tail) = split_word(rest);
        if (word.eq_ignore_ascii_case(b"OK") || word.eq_ignore_ascii_case(b"PREAUTH"))
            && tail.is_some_and(|t| !t.is_empty())
        {
            return Probe::Match {
                indicator: "imap.greeting",
                meta: Meta::None,
            };
        }
        if word.eq_ignore_ascii_case(b"CAPABILITY")
            && tail.is_some_and(|t| contains_ci(t, b"IMAP4"))
        {
            return Probe::Match {
                indicator: "imap.capability",
                meta: Meta::None,
            };
        }
        return Probe::NoMatch;
    }
    let (tag, rest) = split_word(line);
    let Some(rest) = rest else {
        return Probe::NoMatch;
    };
    if !tag_ok(tag) {
        return Probe::NoMatch;
    }
    let (command, _args) = split_word(rest);
    // Clients send commands in one case ("LOGIN", Thunderbird "login"); mixed case is reply
    // text such as FTP's "230 Login successful."
    let one_case = command.iter().all(|b| !b.is_ascii_lowercase())
        || command.iter().all(|b| !b.is_ascii_uppercase());
    if !one_case {
        return Probe::NoMatch;
    }
    if command.eq_ignore_ascii_case(b"STARTTLS") {
        return Probe::Match {
            indicator: "imap.starttls",
            meta: Meta::None,
        };
    }
    if COMMANDS.iter().any(|c| command.eq_ignore_ascii_case(c)) {
        return Probe::Match {
            indicator: "imap.command",
            meta: Meta::None,
        };
    }
    Probe::NoMatch
}

/// RFC 9051 `tag`: ASTRING-CHAR except `+`, 1..=32 bytes here; not another protocol's verb.
fn tag_ok(tag: &[u8]) -> bool {
    (1..=32).contains(&tag.len())
        && tag
            .iter()
            .all(|&b| (0x21..0x7f).contains(&b) && !b"(){%*\"\\]+".contains(&b))
        && !NOT_TAGS.iter().any(|w| tag.eq_ignore_ascii_case(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_packet::Transport;
    use crate::probe::Side;
    use crate::test_support::{assert_match};

    const CTX: ProbeContext = ProbeContext::new(Transport::Tcp, 40000, 143).sent_by(Side::Server);

    #[test]
    fn greetings_and_capability() {
        for g in [
            &b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready.\r\n"[..],
            b"* OK Gimap ready for requests from 198.51.100.4 a1mb123\r\n",
            b"* PREAUTH IMAP4rev1 server logged in as Smith\r\n",
        ] {
            assert!(matches!(probe(&CTX, g), Probe::Match { indicator: "imap.greeting", .. }), "{g:?}");
        }
        assert_match(probe(
                &CTX,
                b"* CAPABILITY IMAP4rev1 STARTTLS AUTH=GSSAPI LOGINDISABLED\r\na001 OK done\r\n"
            ), "imap.capability");
    }

    #[test]
    fn tagged_commands() {
        assert_match(probe(&CTX, b"a001 CAPABILITY\r\n"), "imap.command");
        assert_match(probe(&CTX, b"A1 login alice secret\r\n"), "imap.command");
        assert_match(probe(&CTX, b"1 STARTTLS\r\n"), "imap.starttls");
    }

    #[test]
    fn rejections() {
        assert_eq!(probe(&CTX, b"* OK [CAP"), Probe::NeedMore);
        for d in [
            &b"CAPABILITY\r\n"[..],
            b"USER login\r\n",
            b"PASS id\r\n",
            b"+OK POP3 ready\r\n",
            b"* OK\r\n",
            b"a001 FROB\r\n",
            b"230 Login successful.\r\n",
            b"220 mail ESMTP\r\n",
            b"NICK alice\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"\x00\x00\x00\x2c\xfeSMB",
        ] {
            assert_eq!(probe(&CTX, d), Probe::NoMatch, "{d:?}");
        }
    }
}
