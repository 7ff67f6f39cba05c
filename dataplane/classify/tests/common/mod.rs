//! Test helpers shared by the classify integration tests: the probe context they use and the
//! parsers they cover. Each test binary uses a subset, hence the allow.
#![allow(dead_code)]

use portolan_classify::{ProbeContext, Side};
use portolan_packet::Transport;

/// The context of bytes on a `transport` flow from port 49152 to port 40000 (no parser reads
/// the ports), sent by the client when `from_client`, else by the server, in the direction's
/// first packet.
pub fn ctx(transport: Transport, from_client: bool) -> ProbeContext {
    let sender = if from_client {
        Side::Client
    } else {
        Side::Server
    };
    ProbeContext::new(transport, 49152, 40000).sent_by(sender)
}

/// The confirming parsers of the line, mail, VPN, naming and file-sharing protocols that
/// `parsers_cross.rs` and `parsers_on_ndpi.rs` cover (names as registered in
/// `protocols::PARSERS`).
pub const COVERED: &[&str] = &[
    "ssh",
    "dns",
    "mdns",
    "llmnr",
    "smtp",
    "imap",
    "pop3",
    "ftp",
    "mqtt",
    "xmpp",
    "rtsp",
    "sip",
    "stun",
    "openvpn",
    "wireguard",
    "ike",
    "socks",
    "irc",
    "bittorrent",
    "telnet",
    "rdp",
    "smb",
    "ntp",
    "dhcp",
    "ldap",
];
