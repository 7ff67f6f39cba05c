//! Test helpers shared by the classify integration tests.

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
