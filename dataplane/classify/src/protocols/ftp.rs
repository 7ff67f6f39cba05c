//! FTP control-connection identification (RFC 959, RFC 2228, RFC 4217): the server's `220`
//! greeting naming FTP (or FileZilla, whose banner does not), FTP-only replies (`331 ...
//! password`, `215` system type, `227 Entering Passive Mode`), and client commands only FTP uses
//! (`AUTH TLS`, `FEAT`, `SYST`, `PASV`, ...).
//!
//! Owns: recognising those lines; `AUTH TLS`/`AUTH SSL` is reported as `ftp.auth_tls`. Must not:
//! accept `USER` alone (POP3 sends the identical line), a `220` greeting that does not say FTP,
//! or one that names SMTP.

use super::text_line::{contains_ci, first_line, has_reply_code, split_word, Line, Lines};
use crate::probe::{Meta, Probe, ProbeContext};

const MAX_LINE: usize = 1024;
const MAX_LINES: usize = 32;

/// Client commands (no argument or any argument) that only FTP sends.
const COMMANDS: &[&[u8]] = &[
    b"FEAT", b"SYST", b"PASV", b"EPSV", b"PWD", b"XPWD", b"CDUP", b"PBSZ", b"PROT",
];

/// Probes the first bytes of one direction for an FTP greeting, reply or command.
pub fn probe(_ctx: &ProbeContext, data: &[u8]) -> Probe {
    let line = match first_line(data, MAX_LINE) {
        Line::Complete(line) => line,
        Line::Invalid => return Probe::NoMatch,
        Line::Partial => {
            return if data.starts_with(b"220") || b"220".starts_with(data) {
                Probe::NeedMore
            } else {
                Probe::NoMatch
            };
        }
    };
    if has_reply_code(line, b"220") {
        return greeting(data);
    }
    if has_reply_code(line, b"331") && contains_ci(line, b"password") {
        return Probe::Match {
            indicator: "ftp.reply",
            meta: Meta::None,
        };
    }
    if has_reply_code(line, b"215")
        && (contains_ci(line, b"UNIX") || contains_ci(line, b"Windows_NT"))
    {
        return Probe::Match {
            indicator: "ftp.reply",
            meta: Meta::None,
        };
    }
    if has_reply_code(line, b"227") && contains_ci(line, b"Passive Mode") {
        return Probe::Match {
            indicator: "ftp.reply",
            meta: Meta::None,
        };
    }
    let (verb, arg) = split_word(line);
    if verb.eq_ignore_ascii_case(b"AUTH") {
        let mech = arg.unwrap_or_default();
        if [&b"TLS"[..], b"SSL", b"TLS-C", b"TLS-P"]
            .iter()
            .any(|m| mech.eq_ignore_ascii_case(m))
        {
            return Probe::Match {
                indicator: "ftp.auth_tls",
                meta: Meta::None,
            };
        }
        return Probe::NoMatch;
    }
    if COMMANDS.iter().any(|c| verb.eq_ignore_ascii_case(c)) && arg_ok(verb, arg) {
        return Probe::Match {
            indicator: "ftp.command",
            meta: Meta::None,
        };
    }
    if verb.eq_ignore_ascii_case(b"TYPE") && matches!(arg, Some(b"I" | b"A" | b"A N" | b"L 8")) {
        return Probe::Match {
            indicator: "ftp.command",
            meta: Meta::None,
        };
    }
    if verb.eq_ignore_ascii_case(b"OPTS") && arg.is_some_and(|a| a.eq_ignore_ascii_case(b"UTF8 ON"))
    {
        return Probe::Match {
            indicator: "ftp.command",
            meta: Meta::None,
        };
    }
    Probe::NoMatch
}

/// Arguments allowed for the command verbs in [`COMMANDS`].
fn arg_ok(verb: &[u8], arg: Option<&[u8]>) -> bool {
    if verb.eq_ignore_ascii_case(b"PBSZ") {
        arg.is_some_and(|a| !a.is_empty() && a.iter().all(u8::is_ascii_digit))
    } else if verb.eq_ignore_ascii_case(b"PROT") {
        matches!(arg, Some(b"P" | b"C" | b"S" | b"E"))
    } else {
        arg.is_none()
    }
}

/// A `220` greeting (possibly multi-line) that names FTP and not SMTP.
fn greeting(data: &[u8]) -> Probe {
    let mut ftp = false;
    let mut smtp = false;
    for line in Lines::new(data, MAX_LINE, MAX_LINES) {
        if !has_reply_code(line, b"220") {
            // Continuation lines of a multi-line reply need not repeat the code.
            if line
                .get(..3)
                .is_some_and(|c| c.iter().all(u8::is_ascii_digit))
            {
                break;
            }
        }
        ftp |= contains_ci(line, b"FTP") || contains_ci(line, b"FileZilla");
        smtp |= contains_ci(line, b"SMTP");
        if line.get(..4) == Some(b"220 ".as_slice()) || line == b"220" {
            break;
        }
    }
    if ftp && !smtp {
        Probe::Match {
            indicator: "ftp.greeting",
            meta: Meta::None,
        }
    } else {
        Probe::NoMatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_packet::Transport;
    use crate::probe::Side;
    use crate::test_support::{assert_match, expect_match};

    const CTX: ProbeContext = ProbeContext::new(Transport::Tcp, 40000, 21).sent_by(Side::Server);

    #[test]
    fn greetings() {
        for g in [
            &b"220 (vsFTPd 3.0.3)\r\n"[..],
            b"220 ProFTPD 1.3.5e Server (Debian) [::ffff:10.0.0.2]\r\n",
            b"220 Microsoft FTP Service\r\n",
            b"220-FileZilla Server 0.9.60 beta\r\n220-written by Tim Kosse\r\n220 Please visit https://filezilla-project.org/\r\n",
            b"220---------- Welcome to Pure-FTPd [privsep] [TLS] ----------\r\n220-You are user number 1 of 50 allowed.\r\n",
        ] {
            assert!(matches!(probe(&CTX, g), Probe::Match { indicator: "ftp.greeting", .. }), "{g:?}");
        }
    }

    #[test]
    fn replies_and_commands() {
        assert_match(probe(&CTX, b"331 Please specify the password.\r\n"), "ftp.reply");
        expect_match(probe(&CTX, b"215 UNIX Type: L8\r\n"));
        expect_match(probe(
                &CTX,
                b"227 Entering Passive Mode (192,168,1,2,195,80).\r\n"
            ));
        assert_match(probe(&CTX, b"AUTH TLS\r\n"), "ftp.auth_tls");
        assert_match(probe(&CTX, b"FEAT\r\n"), "ftp.command");
        expect_match(probe(&CTX, b"PBSZ 0\r\n"));
        expect_match(probe(&CTX, b"TYPE I\r\n"));
    }

    #[test]
    fn rejections() {
        assert_eq!(probe(&CTX, b"220 (vsF"), Probe::NeedMore);
        for d in [
            &b"220 mx.example.com ESMTP Postfix\r\n"[..],
            b"220 Welcome\r\n",
            b"USER anonymous\r\n",
            b"AUTH LOGIN\r\n",
            b"AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\n",
            b"FEAT extra\r\n",
            b"+OK ready\r\n",
            b"CAPA\r\n",
            b"\x03\x00\x00\x13\x0e\xe0\x00\x00",
        ] {
            assert_eq!(probe(&CTX, d), Probe::NoMatch, "{d:?}");
        }
    }
}
