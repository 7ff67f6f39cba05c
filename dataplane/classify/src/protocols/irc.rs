//! IRC identification (RFC 1459, RFC 2812, IRCv3 capability negotiation): the client's
//! registration lines (`NICK`, `USER` with its four parameters, `CAP LS`/`CAP REQ`, after an
//! optional `PASS`) and the server's first lines (`:server 001 ...`, numerics, `NOTICE AUTH` /
//! `NOTICE *`).
//!
//! Owns: recognising those lines within the first few lines. Must not: accept `PASS` alone or a
//! one-parameter `USER` (FTP and POP3 send `USER name`).

use super::text_line::{first_line, split_word, Line, Lines};
use crate::probe::{Meta, Probe, ProbeContext};

const MAX_LINE: usize = 512;
const MAX_LINES: usize = 8;

/// Probes the first bytes of one direction for IRC registration or server lines.
pub fn probe(_ctx: &ProbeContext, data: &[u8]) -> Probe {
    match first_line(data, MAX_LINE) {
        Line::Invalid => return Probe::NoMatch,
        Line::Partial => {
            return if partial_ok(data) {
                Probe::NeedMore
            } else {
                Probe::NoMatch
            }
        }
        Line::Complete(_) => {}
    }
    for line in Lines::new(data, MAX_LINE, MAX_LINES) {
        match judge(line) {
            Verdict::Irc(indicator) => {
                return Probe::Match {
                    indicator,
                    meta: Meta::None,
                }
            }
            Verdict::Neutral => continue,
            Verdict::Other => return Probe::NoMatch,
        }
    }
    Probe::NoMatch
}

enum Verdict {
    Irc(&'static str),
    /// `PASS x` or an empty line: decide on the next line.
    Neutral,
    Other,
}

fn judge(line: &[u8]) -> Verdict {
    if line.is_empty() {
        return Verdict::Neutral;
    }
    if let Some(rest) = line.strip_prefix(b":") {
        return server_line(rest);
    }
    let (cmd, args) = split_word(line);
    let args = args.unwrap_or_default();
    match cmd {
        b"PASS" if !args.is_empty() => Verdict::Neutral,
        b"NICK" if nick_ok(args.strip_prefix(b":").unwrap_or(args)) => Verdict::Irc("irc.nick"),
        b"USER" if user_ok(args) => Verdict::Irc("irc.user"),
        b"CAP"
            if [&b"LS"[..], b"LS 302", b"REQ", b"END"]
                .iter()
                .any(|a| args == *a || args.starts_with(b"REQ :")) =>
        {
            Verdict::Irc("irc.cap")
        }
        b"NOTICE" if args.starts_with(b"AUTH :") || args.starts_with(b"* :") => {
            Verdict::Irc("irc.notice")
        }
        _ => Verdict::Other,
    }
}

/// `:prefix COMMAND ...` from a server: a numeric reply, `NOTICE` or `CAP`.
fn server_line(rest: &[u8]) -> Verdict {
    let (prefix, tail) = split_word(rest);
    let Some(tail) = tail else {
        return Verdict::Other;
    };
    if prefix.is_empty() || !prefix.iter().all(|&b| b.is_ascii_graphic()) {
        return Verdict::Other;
    }
    let (cmd, args) = split_word(tail);
    let Some(args) = args.filter(|a| !a.is_empty()) else {
        return Verdict::Other;
    };
    let numeric = cmd.len() == 3 && cmd.iter().all(u8::is_ascii_digit);
    if numeric || ((cmd == b"NOTICE" || cmd == b"CAP") && args.contains(&b':')) {
        Verdict::Irc("irc.server")
    } else {
        Verdict::Other
    }
}

/// RFC 2812 nickname: a letter or special first, then letters, digits, specials, `-`.
fn nick_ok(nick: &[u8]) -> bool {
    let special = |b: u8| b"[]\\`_^{|}".contains(&b);
    match nick.split_first() {
        Some((&first, rest)) => {
            nick.len() <= 32
                && (first.is_ascii_alphabetic() || special(first))
                && rest
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || special(b) || b == b'-')
        }
        None => false,
    }
}

/// `USER user mode unused :realname` (the last may lack the colon if it is one word).
fn user_ok(args: &[u8]) -> bool {
    let (head, _real) = match args.iter().position(|&b| b == b':') {
        Some(i) => (args.get(..i).unwrap_or_default(), true),
        None => (args, false),
    };
    let words = head.split(|&b| b == b' ').filter(|w| !w.is_empty()).count();
    let user = split_word(args).0;
    !user.is_empty()
        && user.iter().all(|&b| b.is_ascii_graphic() && b != b'@')
        && (words == 3 || (words == 4 && !args.contains(&b':')))
}

fn partial_ok(data: &[u8]) -> bool {
    [&b"NICK "[..], b"USER ", b"PASS ", b"CAP ", b"NOTICE "]
        .iter()
        .any(|w| data.starts_with(w) || w.starts_with(data))
        || data.starts_with(b":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_packet::Transport;
    use crate::test_support::{assert_match, expect_match};

    const CTX: ProbeContext = ProbeContext::new(Transport::Tcp, 40000, 6667);

    #[test]
    fn client_registration() {
        assert_match(probe(&CTX, b"NICK alice\r\nUSER alice 0 * :Alice Liddell\r\n"), "irc.nick");
        assert_match(probe(&CTX, b"CAP LS 302\r\nNICK bob\r\n"), "irc.cap");
        assert_match(probe(&CTX, b"PASS hunter2\r\nUSER guest 8 * :Guest\r\n"), "irc.user");
        assert_match(probe(&CTX, b"USER guest tolmoon tolsun :Ronnie Reagan\r\n"), "irc.user");
    }

    #[test]
    fn server_lines() {
        assert_match(probe(
                &CTX,
                b":irc.example.net NOTICE * :*** Looking up your hostname...\r\n"
            ), "irc.server");
        expect_match(probe(
                &CTX,
                b":irc.example.net 001 alice :Welcome to the Example IRC Network alice\r\n"
            ));
        expect_match(probe(&CTX, b"NOTICE AUTH :*** Processing connection\r\n"));
    }

    #[test]
    fn rejections() {
        assert_eq!(probe(&CTX, b"NICK al"), Probe::NeedMore);
        for d in [
            &b"PASS secret\r\n"[..],
            b"USER anonymous\r\n",
            b"PASS secret\r\nUSER anonymous\r\n",
            b"NICK 9abc\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"220 ProFTPD\r\n",
            b": bad\r\n",
            b"\x13BitTorrent protocol",
        ] {
            assert_eq!(probe(&CTX, d), Probe::NoMatch, "{d:?}");
        }
    }
}
