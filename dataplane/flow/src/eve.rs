//! Suricata EVE `flow` records for finished flows.
//!
//! Owns: [`FlowRecord`] (field names and value formats as Suricata's EVE JSON `event_type:
//! "flow"`; its header is `portolan_model`'s [`EveHeader`]), the conversion from a
//! [`FinishedFlow`]. Must not:
//! decide app-layer fields — the classifier fills [`EveHeader::app_proto`] and
//! [`FlowRecord::app`] afterwards — do I/O, or format time itself (`portolan_model::time`).

use portolan_model::time::format_eve_unsigned;
use portolan_model::EveHeader;
use portolan_packet::{tcp_flags, Transport};
use serde::{Deserialize, Serialize};

use crate::flow::{FinishedFlow, FlowEndReason, FlowState, TcpState};

/// One EVE flow record (serialise it as one JSON line). Its header fields (`timestamp`,
/// `flow_id`, `event_type`, `vlan`, `src_ip`, ..., `app_proto`) are the shared
/// [`EveHeader`], reached through the record itself (`record.app_proto`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowRecord {
    /// `timestamp` (flow start) to `app_proto`, written by the one EVE header writer;
    /// `event_type` is always `"flow"`, `app_proto` is `"unknown"` until the classifier sets it.
    #[serde(flatten)]
    pub header: EveHeader,
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

impl std::ops::Deref for FlowRecord {
    type Target = EveHeader;

    fn deref(&self) -> &EveHeader {
        &self.header
    }
}

impl std::ops::DerefMut for FlowRecord {
    fn deref_mut(&mut self) -> &mut EveHeader {
        &mut self.header
    }
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
            header: EveHeader::new(
                "flow",
                i64::try_from(f.start_us).unwrap_or(i64::MAX),
                f.id,
                (f.client_ip, f.client_port),
                (f.server_ip, f.server_port),
                f.transport.eve_name(),
                "unknown",
            )
            .with_vlan(f.vlan),
            flow: FlowSection {
                pkts_toserver: f.pkts_toserver,
                pkts_toclient: f.pkts_toclient,
                bytes_toserver: f.bytes_toserver,
                bytes_toclient: f.bytes_toclient,
                start: format_eve_unsigned(f.start_us),
                end: format_eve_unsigned(f.end_us),
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
