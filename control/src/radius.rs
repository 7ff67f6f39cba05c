//! RADIUS accounting (RFC 2866) as a source of address-to-device bindings: the way enterprise
//! Wi-Fi already knows which MAC holds which address.
//!
//! Owns: turning a checked Accounting-Request ([`packet`]) into an [`AccountingEvent`] (who: the
//! Calling-Station-Id's MAC; what: the framed IPv4/IPv6 addresses and IPv6 prefixes; when: the
//! Event-Timestamp, else the arrival less Acct-Delay-Time; which session: NAS + Acct-Session-Id),
//! and the rules that turn events into bindings with a time range ([`RadiusBinding`]):
//!
//! | Acct-Status-Type | effect |
//! | --- | --- |
//! | Start, Interim-Update | each framed address is bound to the MAC from the event on (an open binding of the same session and address goes on); an address now bound elsewhere ends its other open bindings there, so a reused address never points at two devices; an address the session no longer lists ends |
//! | Stop | the session's open bindings end at the event; a Stop for a session never seen binds its addresses over `Acct-Session-Time` before it, where no other binding of the address overlaps that time |
//! | Accounting-On / Accounting-Off | every open binding of the NAS ends (it restarted or goes down) |
//!
//! The SQL lives in `store/radius.rs`; the listener in the binary (`src/daemon/radius.rs`).
//! Must not: act on a packet whose authenticator was not verified, or join MACs to devices (the
//! attribution index does, through the inventory's Wi-Fi MACs).

pub mod listener;
pub mod packet;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::inventory::normalize_mac;
pub use packet::{AccountingRequest, Framed, PacketError, StatusType};

/// One accounting record, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountingEvent {
    /// Acct-Status-Type (a request without one is [`StatusType::Other`]`(0)`).
    pub status: StatusType,
    /// The NAS: NAS-Identifier, else NAS-IP-Address / NAS-IPv6-Address, else the sender's
    /// address.
    pub nas: String,
    /// Acct-Session-Id.
    pub session_id: Option<String>,
    /// The Calling-Station-Id as a MAC (lowercase, colon-separated), when it is one.
    pub hwaddr: Option<String>,
    /// The Calling-Station-Id as sent, when it is not a MAC (for the reason an event is ignored).
    pub calling_station_id: Option<String>,
    /// Framed addresses and prefixes.
    pub framed: Vec<Framed>,
    /// When the event happened, µs since the epoch.
    pub at_us: i64,
    /// Acct-Session-Time, seconds.
    pub session_time_s: Option<u32>,
}

impl AccountingEvent {
    /// The event of `req`, received from `source` at `received_us`.
    pub fn from_request(req: &AccountingRequest, source: IpAddr, received_us: i64) -> Self {
        let at_us = match req.event_timestamp {
            Some(t) => i64::from(t) * 1_000_000,
            None => received_us - i64::from(req.delay_s.unwrap_or(0)) * 1_000_000,
        };
        let hwaddr = req.calling_station_id.as_deref().and_then(normalize_mac);
        AccountingEvent {
            status: req.status.unwrap_or(StatusType::Other(0)),
            nas: req
                .nas_identifier
                .clone()
                .or_else(|| req.nas_address.map(|a| a.to_string()))
                .unwrap_or_else(|| source.to_string()),
            session_id: req.session_id.clone(),
            calling_station_id: if hwaddr.is_none() {
                req.calling_station_id.clone()
            } else {
                None
            },
            hwaddr,
            framed: req.framed.clone(),
            at_us,
            session_time_s: req.session_time_s,
        }
    }

    /// Each framed address as stored: `address` or `prefix/len`.
    pub fn address_texts(&self) -> Vec<String> {
        self.framed.iter().map(framed_text).collect()
    }
}

/// `address` or `prefix/len`.
pub fn framed_text(f: &Framed) -> String {
    match f.prefix_len {
        Some(len) => format!("{}/{len}", f.address),
        None => f.address.to_string(),
    }
}

/// An address (or IPv6 prefix) held by a MAC over a time range, from RADIUS accounting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RadiusBinding {
    /// The address, or the prefix's first address.
    pub address: IpAddr,
    /// The prefix length of a Framed-IPv6-Prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_len: Option<u8>,
    /// The Calling-Station-Id's MAC.
    pub hwaddr: String,
    /// From, µs since the epoch.
    pub valid_from_us: i64,
    /// Until (exclusive); `None` while the session goes on.
    pub valid_until_us: Option<i64>,
}

/// What one accounting record did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountingOutcome {
    /// Bindings that began.
    pub opened: usize,
    /// Bindings that ended.
    pub closed: usize,
    /// Why the record bound nothing, when it could not (no session id, no MAC, ...).
    pub ignored: Option<String>,
    /// The addresses (as stored) whose bindings changed.
    pub touched: Vec<String>,
}

/// Why an event of `status` cannot bind, if it cannot.
pub(crate) fn unusable(ev: &AccountingEvent) -> Option<String> {
    match ev.status {
        StatusType::AccountingOn | StatusType::AccountingOff => None,
        StatusType::Other(v) => Some(format!("Acct-Status-Type {v} binds nothing")),
        StatusType::Start | StatusType::InterimUpdate | StatusType::Stop => {
            if ev.session_id.is_none() {
                Some("no Acct-Session-Id".into())
            } else if ev.hwaddr.is_none() && ev.status != StatusType::Stop {
                Some(match &ev.calling_station_id {
                    Some(id) => format!("Calling-Station-Id {id:?} is not a MAC"),
                    None => "no Calling-Station-Id".into(),
                })
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_time_nas_and_mac_spellings() {
        let mut req = AccountingRequest {
            identifier: 1,
            authenticator: [0; 16],
            status: Some(StatusType::Start),
            session_id: Some("s1".into()),
            calling_station_id: Some("a45e.60c1.0061".into()),
            nas_address: None,
            nas_identifier: None,
            framed: vec![],
            event_timestamp: None,
            delay_s: Some(3),
            session_time_s: None,
        };
        let src: IpAddr = "192.0.2.1".parse().unwrap();
        let ev = AccountingEvent::from_request(&req, src, 10_000_000);
        assert_eq!(ev.at_us, 7_000_000, "arrival less Acct-Delay-Time");
        assert_eq!(ev.nas, "192.0.2.1");
        assert_eq!(ev.hwaddr.as_deref(), Some("a4:5e:60:c1:00:61"));
        for spelling in ["A4-5E-60-C1-00-61", "a4:5e:60:c1:00:61", "A45E60C10061"] {
            req.calling_station_id = Some(spelling.into());
            let ev = AccountingEvent::from_request(&req, src, 0);
            assert_eq!(
                ev.hwaddr.as_deref(),
                Some("a4:5e:60:c1:00:61"),
                "{spelling}"
            );
        }
        req.event_timestamp = Some(1_714_471_200);
        req.nas_identifier = Some("wlc-1".into());
        req.calling_station_id = Some("jonas@example.com".into());
        let ev = AccountingEvent::from_request(&req, src, 0);
        assert_eq!(ev.at_us, 1_714_471_200_000_000);
        assert_eq!(ev.nas, "wlc-1");
        assert_eq!(
            unusable(&ev).as_deref(),
            Some("Calling-Station-Id \"jonas@example.com\" is not a MAC")
        );
    }
}
