//! Suricata EVE `flow` records for finished flows.
//!
//! Owns: [`FlowRecord`] (field names and value formats as Suricata's EVE JSON `event_type:
//! "flow"`), the conversion from a [`FinishedFlow`], and the EVE timestamp format. Must not:
//! decide app-layer fields — the classifier fills [`FlowRecord::app_proto`] and
//! [`FlowRecord::app`] afterwards — or do I/O.

use std::net::IpAddr;

use portolan_packet::{tcp_flags, Transport};
use serde::{Deserialize, Serialize};

use crate::flow::{FinishedFlow, FlowEndReason, FlowState, TcpState};

/// One EVE flow record (serialise it as one JSON line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowRecord {
    /// Flow start, EVE format (`2024-01-21T10:02:03.123456+0000`).
    pub timestamp: String,
    /// The flow's id ([`crate::Flow::id`]).
    pub flow_id: u64,
    /// Always `"flow"`.
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
    /// `"TCP"` or `"UDP"`.
    pub proto: String,
    /// Identified application protocol; `"unknown"` until the classifier sets it.
    pub app_proto: String,
    /// Counters, times, state and end reason.
    pub flow: FlowSection,
    /// TCP flags and state; absent for UDP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpSection>,
    /// Community ID v1, seed 0.
    pub community_id: String,
    /// App-layer fields added by the classifier (`tls`, `http`, `indicators`, `port_mismatch`, …),
    /// serialised at the top level of the record.
    #[serde(flatten)]
    pub app: serde_json::Map<String, serde_json::Value>,
}

/// The EVE `flow` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowSection {
    /// Packets from client to server.
    pub pkts_toserver: u64,
    /// Packets from server to client.
    pub pkts_toclient: u64,
    /// Frame bytes from client to server.
    pub bytes_toserver: u64,
    /// Frame bytes from server to client.
    pub bytes_toclient: u64,
    /// First packet, EVE timestamp format.
    pub start: String,
    /// Last packet, EVE timestamp format.
    pub end: String,
    /// Whole seconds between start and end (as Suricata: end seconds minus start seconds).
    pub age: u64,
    /// `new`, `established` or `closed`.
    pub state: EveFlowState,
    /// `timeout`, `forced` or `shutdown`.
    pub reason: EveFlowReason,
}

/// EVE `flow.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EveFlowState {
    /// TCP handshake not completed; UDP seen one way only.
    New,
    /// TCP established or half-closed; UDP seen both ways.
    Established,
    /// TCP closed by FIN both ways or by RST.
    Closed,
}

impl From<FlowState> for EveFlowState {
    fn from(s: FlowState) -> Self {
        match s {
            FlowState::New => EveFlowState::New,
            FlowState::Established => EveFlowState::Established,
            FlowState::Closed => EveFlowState::Closed,
        }
    }
}

/// EVE `flow.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EveFlowReason {
    /// Idle past its timeout.
    Timeout,
    /// Ended early: evicted from a full table, or its 5-tuple was reused by a new connection.
    Forced,
    /// End of capture or shutdown.
    Shutdown,
}

impl From<FlowEndReason> for EveFlowReason {
    fn from(r: FlowEndReason) -> Self {
        match r {
            FlowEndReason::Timeout => EveFlowReason::Timeout,
            FlowEndReason::Evicted | FlowEndReason::Reused => EveFlowReason::Forced,
            FlowEndReason::Shutdown => EveFlowReason::Shutdown,
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The EVE `tcp` object. Flag booleans are present only when set, as in Suricata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpSection {
    /// Union of the flags seen both ways, two lower-case hex digits.
    pub tcp_flags: String,
    /// Union of the flags sent by the client (to server).
    pub tcp_flags_ts: String,
    /// Union of the flags sent by the server (to client).
    pub tcp_flags_tc: String,
    /// A SYN was seen.
    #[serde(default, skip_serializing_if = "is_false")]
    pub syn: bool,
    /// A FIN was seen.
    #[serde(default, skip_serializing_if = "is_false")]
    pub fin: bool,
    /// A RST was seen.
    #[serde(default, skip_serializing_if = "is_false")]
    pub rst: bool,
    /// A PSH was seen.
    #[serde(default, skip_serializing_if = "is_false")]
    pub psh: bool,
    /// An ACK was seen.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ack: bool,
    /// TCP state at the end (`syn_sent`, `syn_recv`, `established`, `fin_wait`, `closed`; a reset
    /// connection reports `closed` like Suricata, with `rst: true`). Absent when no handshake
    /// or two-way traffic was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl FlowRecord {
    /// The EVE record of a finished flow, with `app_proto: "unknown"` and no app-layer fields.
    pub fn from_flow<A>(finished: &FinishedFlow<A>) -> FlowRecord {
        let f = &finished.flow;
        let tcp = match f.transport {
            Transport::Udp => None,
            Transport::Tcp => {
                let all = f.tcp_flags_toserver | f.tcp_flags_toclient;
                let state = match f.tcp_state {
                    TcpState::None => None,
                    TcpState::Reset => Some(TcpState::Closed.as_str().to_string()),
                    s => Some(s.as_str().to_string()),
                };
                Some(TcpSection {
                    tcp_flags: format!("{all:02x}"),
                    tcp_flags_ts: format!("{:02x}", f.tcp_flags_toserver),
                    tcp_flags_tc: format!("{:02x}", f.tcp_flags_toclient),
                    syn: all & tcp_flags::SYN != 0,
                    fin: all & tcp_flags::FIN != 0,
                    rst: all & tcp_flags::RST != 0,
                    psh: all & tcp_flags::PSH != 0,
                    ack: all & tcp_flags::ACK != 0,
                    state,
                })
            }
        };
        FlowRecord {
            timestamp: format_eve_timestamp(f.start_us),
            flow_id: f.id,
            event_type: "flow".to_string(),
            vlan: f.vlan.map(|v| vec![v]),
            src_ip: f.client_ip,
            src_port: f.client_port,
            dest_ip: f.server_ip,
            dest_port: f.server_port,
            proto: f.transport.eve_name().to_string(),
            app_proto: "unknown".to_string(),
            flow: FlowSection {
                pkts_toserver: f.pkts_toserver,
                pkts_toclient: f.pkts_toclient,
                bytes_toserver: f.bytes_toserver,
                bytes_toclient: f.bytes_toclient,
                start: format_eve_timestamp(f.start_us),
                end: format_eve_timestamp(f.end_us),
                age: (f.end_us / 1_000_000).saturating_sub(f.start_us / 1_000_000),
                state: f.state().into(),
                reason: finished.reason.into(),
            },
            tcp,
            community_id: f.community_id(),
            app: serde_json::Map::new(),
        }
    }
}

/// Formats microseconds since the Unix epoch as Suricata's EVE timestamp, in UTC:
/// `2024-01-21T10:02:03.123456+0000`.
pub fn format_eve_timestamp(ts_us: u64) -> String {
    let micros = ts_us % 1_000_000;
    let secs = ts_us / 1_000_000;
    let days = secs / 86_400;
    let sod = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}+0000",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_suricata_format() {
        assert_eq!(format_eve_timestamp(0), "1970-01-01T00:00:00.000000+0000");
        assert_eq!(
            format_eve_timestamp(1_705_831_323_123_456),
            "2024-01-21T10:02:03.123456+0000"
        );
        // Leap days and the turn of a century that is a leap year.
        assert_eq!(
            format_eve_timestamp(951_782_400_000_001),
            "2000-02-29T00:00:00.000001+0000"
        );
        assert_eq!(
            format_eve_timestamp(1_709_251_199_999_999),
            "2024-02-29T23:59:59.999999+0000"
        );
        assert_eq!(
            format_eve_timestamp(4_107_542_400_000_000),
            "2100-03-01T00:00:00.000000+0000"
        );
    }
}
