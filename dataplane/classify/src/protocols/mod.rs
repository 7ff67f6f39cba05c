//! One module per protocol: each exposes `pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe`.
//!
//! Owns: the single registration table mapping a parser name (the `parser` field of a
//! signature file) to its probe function. Adding a protocol is one name in the `parsers!`
//! list below (it declares the module and registers it). Must not: hold any logic of its own.

use crate::probe::{Probe, ProbeContext};

/// A confirming parser's entry point.
pub type ProbeFn = fn(&ProbeContext, &[u8]) -> Probe;

macro_rules! parsers {
    ($($name:ident),+ $(,)?) => {
        $(pub mod $name;)+

        /// Every registered parser, by the name signature files use in `parser = "..."`.
        pub const PARSERS: &[(&str, ProbeFn)] = &[$((stringify!($name), $name::probe as ProbeFn)),+];
    };
}

mod text_line;
pub(crate) mod wire_int;

parsers! {
    tls, dtls, http, http2, quic,
    bittorrent, dhcp, dns, ftp, ike, imap, irc, ldap, llmnr, mdns, mqtt, ntp, openvpn, pop3, rdp,
    rtsp, sip, smb, smtp, socks, ssh, stun, telnet, wireguard, xmpp,
}

/// The probe function registered under `name`.
pub fn parser(name: &str) -> Option<ProbeFn> {
    PARSERS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}
