//! Telnet identification (RFC 854/855): option negotiation at the start of a direction, i.e.
//! `IAC WILL|WONT|DO|DONT option` and `IAC SB option ... IAC SE` sequences.
//!
//! Owns: requiring the bytes to start with negotiation and, unless the payload is nothing but
//! one or more complete sequences, at least two sequences in a row; options must be assigned
//! (0..=49, 138..=140, 255). Must not: accept text-only sessions (a `login:` prompt alone says
//! nothing about the protocol).

use super::wire_int::u8_at;
use crate::probe::{Meta, Probe, ProbeContext};
use portolan_packet::Transport;

const IAC: u8 = 0xff;
const SB: u8 = 0xfa;
const SE: u8 = 0xf0;
/// Bound on one subnegotiation.
const MAX_SB: usize = 512;

/// Probes the first bytes of one TCP direction for Telnet option negotiation.
pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe {
    if ctx.transport != Transport::Tcp || data.first() != Some(&IAC) {
        return Probe::NoMatch;
    }
    let mut off = 0;
    let mut sequences = 0;
    while u8_at(data, off) == Some(IAC) && sequences < 64 {
        match sequence(data, off) {
            Step::Next(next) => {
                off = next;
                sequences += 1;
            }
            Step::Cut => {
                return if sequences >= 2 {
                    matched()
                } else {
                    Probe::NeedMore
                }
            }
            Step::Bad => {
                return if sequences >= 2 {
                    matched()
                } else {
                    Probe::NoMatch
                }
            }
        }
    }
    if sequences >= 2 || (sequences == 1 && off == data.len()) {
        matched()
    } else {
        Probe::NoMatch
    }
}

fn matched() -> Probe {
    Probe::Match {
        indicator: "telnet.negotiation",
        meta: Meta::None,
    }
}

enum Step {
    Next(usize),
    Cut,
    Bad,
}

/// One sequence starting with IAC at `off`.
fn sequence(d: &[u8], off: usize) -> Step {
    let Some(cmd) = u8_at(d, off + 1) else {
        return Step::Cut;
    };
    let Some(opt) = u8_at(d, off + 2) else {
        return if matches!(cmd, 0xfa..=0xfe) {
            Step::Cut
        } else {
            Step::Bad
        };
    };
    if !option_ok(opt) {
        return Step::Bad;
    }
    match cmd {
        0xfb..=0xfe => Step::Next(off + 3),
        SB => {
            let body = d.get(off + 3..).unwrap_or_default();
            for (i, pair) in body.windows(2).take(MAX_SB).enumerate() {
                if pair == [IAC, SE] {
                    return Step::Next(off + 3 + i + 2);
                }
            }
            if body.len() < MAX_SB {
                Step::Cut
            } else {
                Step::Bad
            }
        }
        _ => Step::Bad,
    }
}

/// Options with an IANA assignment ("Telnet Options" registry).
fn option_ok(opt: u8) -> bool {
    matches!(opt, 0..=49 | 138..=140 | 255)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Side;
    use crate::test_support::{expect_match};

    const CTX: ProbeContext = ProbeContext::new(Transport::Tcp, 50000, 23).sent_by(Side::Server);

    #[test]
    fn negotiation() {
        // Server: DO TERMINAL-TYPE, DO TSPEED, DO X-DISPLAY, DO NEW-ENVIRON.
        let d = b"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23\xff\xfd\x27";
        assert_eq!(
            probe(&CTX, d),
            Probe::Match {
                indicator: "telnet.negotiation",
                meta: Meta::None
            }
        );
        // Client: WILL TERMINAL-TYPE then SB TERMINAL-TYPE IS "xterm" SE, then text.
        let d = b"\xff\xfb\x18\xff\xfa\x18\x00xterm\xff\xf0login";
        expect_match(probe(&CTX, d));
        // A single complete sequence as the whole payload.
        expect_match(probe(&CTX, b"\xff\xfb\x01"));
        assert_eq!(probe(&CTX, b"\xff\xfd"), Probe::NeedMore);
    }

    #[test]
    fn rejections() {
        for d in [
            &b"\xff\xfb\x01login: "[..],
            b"\xff\xfb\x99\xff\xfb\x01",
            b"\xff\xf4\xff\xfd\x06",
            b"login: ",
            b"\xff\xd8\xff\xe0\x00\x10JFIF",
            b"\x16\x03\x01\x00\x10",
        ] {
            assert_eq!(probe(&CTX, d), Probe::NoMatch, "{d:?}");
        }
    }
}
