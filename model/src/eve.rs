//! The EVE writer: the header every Suricata-style EVE record starts with, written in one place
//! for flow records, hand-off event records and alerts.
//!
//! Owns: [`EveHeader`] — `timestamp, flow_id, event_type, vlan, src_ip, src_port, dest_ip,
//! dest_port, proto, app_proto` in Suricata's field names, value formats and order — and its
//! forms: a serde struct (flattened first into a record struct, which keeps the order) or a
//! JSON object ([`EveHeader::into_object`]) the writer adds its own keys to.
//! Must not: write anything past the header (each record's body is its writer's), or do I/O.
//! `community_id` is not part of it: flow records place it after their `flow` and `tcp` objects.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::time::format_eve;

/// The common head of an EVE record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EveHeader {
    /// Record time, EVE format (`2024-01-21T10:02:03.123456+0000`): a flow's start, an
    /// alert's time.
    pub timestamp: String,
    /// The flow's id.
    pub flow_id: u64,
    /// `flow`, `alert`, ...
    pub event_type: String,
    /// VLAN IDs, outermost first; present only when the flow was tagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<Vec<u16>>,
    /// Client address.
    pub src_ip: IpAddr,
    /// Client port.
    pub src_port: u16,
    /// Server address.
    pub dest_ip: IpAddr,
    /// Server port.
    pub dest_port: u16,
    /// Transport, upper case (`TCP`, `UDP`).
    pub proto: String,
    /// Identified application protocol (`unknown` when none).
    pub app_proto: String,
}

impl EveHeader {
    /// A header for an `event_type` record of flow `flow_id` at `ts_us` (µs since the epoch)
    /// between `src` (the client) and `dest` (the server), untagged.
    pub fn new(
        event_type: &str,
        ts_us: i64,
        flow_id: u64,
        src: (IpAddr, u16),
        dest: (IpAddr, u16),
        proto: &str,
        app_proto: &str,
    ) -> EveHeader {
        EveHeader {
            timestamp: format_eve(ts_us),
            flow_id,
            event_type: event_type.to_string(),
            vlan: None,
            src_ip: src.0,
            src_port: src.1,
            dest_ip: dest.0,
            dest_port: dest.1,
            proto: proto.to_string(),
            app_proto: app_proto.to_string(),
        }
    }

    /// The same header with the outermost VLAN id, if tagged.
    pub fn with_vlan(mut self, vlan: Option<u16>) -> EveHeader {
        self.vlan = vlan.map(|v| vec![v]);
        self
    }

    /// The header as a JSON object, for writers that add their own keys to it.
    pub fn into_object(self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            // A struct of strings, numbers and addresses always serialises to an object.
            _ => Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_in_suricata_shape() {
        let h = EveHeader::new(
            "flow",
            1_705_831_323_123_456,
            7,
            ("10.0.0.1".parse().unwrap(), 40000),
            ("2001:db8::2".parse().unwrap(), 443),
            "TCP",
            "tls",
        );
        let untagged = h.clone().into_object();
        assert!(!untagged.contains_key("vlan"));
        let m = h.with_vlan(Some(12)).into_object();
        assert_eq!(m["timestamp"], "2024-01-21T10:02:03.123456+0000");
        assert_eq!(m["event_type"], "flow");
        assert_eq!(m["vlan"], serde_json::json!([12]));
        assert_eq!(m["src_ip"], "10.0.0.1");
        assert_eq!(m["dest_ip"], "2001:db8::2");
        assert_eq!(m["proto"], "TCP");
        assert_eq!(m["app_proto"], "tls");
        // Field order as Suricata writes it (the struct form keeps it).
        let text = serde_json::to_string(&EveHeader::new(
            "alert",
            0,
            1,
            ("10.0.0.1".parse().unwrap(), 1),
            ("10.0.0.2".parse().unwrap(), 2),
            "UDP",
            "dns",
        ))
        .unwrap();
        assert!(text.starts_with(r#"{"timestamp":"1970-01-01T00:00:00.000000+0000","flow_id":1,"event_type":"alert","src_ip""#), "{text}");
    }
}
