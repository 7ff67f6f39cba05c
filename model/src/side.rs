//! Which side of a flow: the one type for "who sent this" and "which direction".
//!
//! Owns: [`Side`]. A packet's direction is named by its sender: `Side::Client` travels to the
//! server, `Side::Server` to the client.
//! Must not: carry a role guess of its own; the flow's roles (and their corrections) decide
//! which endpoint is the client.

use serde::{Deserialize, Serialize};

/// One side of a flow (and the direction of the bytes it sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The initiator (e.g. the TLS or SSH client); its bytes travel to the server.
    Client,
    /// The responder; its bytes travel to the client.
    Server,
}

impl Side {
    /// `Side::Client` when `from_client`, else `Side::Server`.
    #[inline]
    pub fn from_client(from_client: bool) -> Side {
        if from_client {
            Side::Client
        } else {
            Side::Server
        }
    }

    /// True for [`Side::Client`].
    #[inline]
    pub fn is_client(self) -> bool {
        self == Side::Client
    }

    /// The other side.
    #[inline]
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }

    /// `0` for the client, `1` for the server: the index of per-side arrays.
    #[inline]
    pub fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }

    /// `client` or `server`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_flip_and_index() {
        assert_eq!(Side::from_client(true), Side::Client);
        assert_eq!(Side::from_client(false).other(), Side::Client);
        assert_eq!((Side::Client.index(), Side::Server.index()), (0, 1));
        assert_eq!(serde_json::to_string(&Side::Server).unwrap(), "\"server\"");
    }
}
