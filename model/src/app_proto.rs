//! The application protocols Portolan identifies, with their EVE names.

use serde::{Deserialize, Serialize};

macro_rules! app_protos {
    ($($variant:ident => $name:literal),+ $(,)?) => {
        /// An application protocol, named as Suricata's EVE `app_proto` names it (lowercase).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum AppProto {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )+
            /// No evidence (or conflicting evidence): `unknown`.
            Unknown,
        }

        impl AppProto {
            /// Every identified protocol (not `Unknown`).
            pub const ALL: &'static [AppProto] = &[$(AppProto::$variant),+];

            /// The EVE name, e.g. `tls`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(AppProto::$variant => $name,)+
                    AppProto::Unknown => "unknown",
                }
            }

            /// Parses an EVE name; `None` for names Portolan does not know.
            pub fn from_name(name: &str) -> Option<AppProto> {
                match name {
                    $($name => Some(AppProto::$variant),)+
                    "unknown" => Some(AppProto::Unknown),
                    _ => None,
                }
            }
        }
    };
}

app_protos! {
    Tls => "tls", Http => "http", Http2 => "http2", Quic => "quic", Dtls => "dtls", Ssh => "ssh",
    Dns => "dns", Smtp => "smtp", Imap => "imap", Pop3 => "pop3", Ftp => "ftp", Mqtt => "mqtt",
    Xmpp => "xmpp", Rtsp => "rtsp", Sip => "sip", Stun => "stun", Openvpn => "openvpn",
    Wireguard => "wireguard", Ike => "ike", Socks => "socks", Irc => "irc",
    Bittorrent => "bittorrent", Telnet => "telnet", Rdp => "rdp", Smb => "smb", Ntp => "ntp",
    Dhcp => "dhcp", Ldap => "ldap", Mdns => "mdns", Llmnr => "llmnr",
}

impl std::fmt::Display for AppProto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
