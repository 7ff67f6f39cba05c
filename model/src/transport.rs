//! The transport protocols Portolan follows flows over.
//!
//! Owns: [`Transport`] and its two spellings (IANA number, EVE name).
//! Must not: know anything above the transport (see [`crate::AppProto`]).

use serde::{Deserialize, Serialize};

/// Transport protocol of a packet or flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Transport {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
}

impl Transport {
    /// IANA protocol number (6 or 17), as used by Community ID.
    pub fn ip_proto(self) -> u8 {
        match self {
            Transport::Tcp => 6,
            Transport::Udp => 17,
        }
    }

    /// Upper-case name used in EVE records (`TCP`, `UDP`).
    pub fn eve_name(self) -> &'static str {
        match self {
            Transport::Tcp => "TCP",
            Transport::Udp => "UDP",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.eve_name())
    }
}
