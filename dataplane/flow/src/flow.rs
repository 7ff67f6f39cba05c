//! One bidirectional flow: endpoints in client/server roles, per-direction counters, TCP state.
//!
//! Owns: the [`Flow`] record and the per-packet bookkeeping on it (counters, timestamps, TCP
//! flags and the simplified TCP state machine), role inference from the handshake, and
//! [`Flow::swap_roles`]. Must not: look a flow up, allocate, or look at payload bytes — finding
//! the entry and deciding when a flow ends is the table's job ([`crate::FlowTable`]).

use std::net::IpAddr;

use portolan_packet::{tcp_flags, Packet, Transport};

/// Which side sent a packet, relative to the flow's client/server roles (`Side::Client`: the
/// packet travels to the server). Owned by `portolan-model`.
pub use portolan_model::Side;

/// Simplified, Suricata-like TCP connection state (no sequence tracking).
///
/// Transitions, applied per packet after the roles are settled:
///
/// | from | packet | to |
/// | --- | --- | --- |
/// | any | RST (either side) | `Reset` |
/// | `None` | SYN without ACK from the client | `SynSent` |
/// | `None`, `SynSent` | SYN-ACK from the server | `SynRecv` |
/// | `SynRecv` | ACK without SYN from the client | `Established` |
/// | `None` | any non-SYN packet once both sides have sent (mid-stream pick-up) | `Established` |
/// | `None` … `Established` | first FIN from either side | `FinWait` |
/// | `FinWait` | FIN from the other side too | `Closed` |
///
/// Anything else leaves the state as it is. A SYN without ACK arriving on a `Closed` or `Reset`
/// flow is a new connection reusing the 5-tuple: the table finishes the old flow (reason
/// [`FlowEndReason::Reused`]) and starts a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TcpState {
    /// No handshake packet seen (also the state of every UDP flow).
    #[default]
    None,
    /// The client's SYN was seen.
    SynSent,
    /// The server's SYN-ACK was seen.
    SynRecv,
    /// Handshake completed, or traffic seen both ways on a flow picked up mid-stream.
    Established,
    /// One side sent FIN.
    FinWait,
    /// Both sides sent FIN.
    Closed,
    /// A RST was seen.
    Reset,
}

impl TcpState {
    /// Lower-case name (`none`, `syn_sent`, `syn_recv`, `established`, `fin_wait`, `closed`, `reset`).
    pub fn as_str(self) -> &'static str {
        match self {
            TcpState::None => "none",
            TcpState::SynSent => "syn_sent",
            TcpState::SynRecv => "syn_recv",
            TcpState::Established => "established",
            TcpState::FinWait => "fin_wait",
            TcpState::Closed => "closed",
            TcpState::Reset => "reset",
        }
    }

    /// True for `Closed` and `Reset`: the connection is over.
    pub fn is_closed(self) -> bool {
        matches!(self, TcpState::Closed | TcpState::Reset)
    }
}

/// Coarse flow state as Suricata's EVE `flow.state` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowState {
    /// TCP before the handshake completed; UDP seen in one direction only.
    New,
    /// TCP established (or half-closed); UDP seen in both directions.
    Established,
    /// TCP closed by FIN both ways or by RST. Never reported for UDP.
    Closed,
}

/// How the flow's client/server roles were decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoleSource {
    /// The client sent the SYN (without ACK).
    Syn,
    /// A SYN-ACK was seen before any SYN; its receiver is the client.
    SynAck,
    /// No handshake was seen; the sender of the first packet is the client.
    FirstPacket,
    /// [`Flow::swap_roles`] was called (an application-layer parser proved the roles).
    Swapped,
}

/// Why a flow left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowEndReason {
    /// Idle past the timeout for its state (on capture time).
    Timeout,
    /// The table was full and this was the least-recently-active flow.
    Evicted,
    /// A SYN reopened the 5-tuple after the flow closed or was reset.
    Reused,
    /// End of capture or shutdown ([`crate::FlowTable::finish_all`]).
    Shutdown,
}

impl FlowEndReason {
    /// The EVE `flow.reason` value: `timeout`, `forced` (evicted or reused) or `shutdown`.
    pub fn eve_name(self) -> &'static str {
        match self {
            FlowEndReason::Timeout => "timeout",
            FlowEndReason::Evicted | FlowEndReason::Reused => "forced",
            FlowEndReason::Shutdown => "shutdown",
        }
    }
}

/// A flow that left the table, with the reason; read it from
/// [`crate::FlowTable::drain_finished`].
#[derive(Debug, Clone)]
pub struct FinishedFlow<A> {
    /// The flow as it was when it ended.
    pub flow: Flow<A>,
    /// Why it ended.
    pub reason: FlowEndReason,
}

/// A bidirectional TCP or UDP flow.
///
/// Both directions of a 5-tuple (plus VLAN) meet here. Endpoints and counters are stored in
/// client/server roles; see [`RoleSource`] for how the roles were decided.
#[derive(Debug, Clone)]
pub struct Flow<A> {
    /// Identifier unique within one [`crate::FlowTable`] (allocated 1, 2, 3… in creation order).
    pub id: u64,
    /// Client address.
    pub client_ip: IpAddr,
    /// Client port.
    pub client_port: u16,
    /// Server address.
    pub server_ip: IpAddr,
    /// Server port.
    pub server_port: u16,
    /// TCP or UDP.
    pub transport: Transport,
    /// Outermost 802.1Q VLAN ID, if the flow's packets were tagged (part of the flow key).
    pub vlan: Option<u16>,
    /// Packets from client to server.
    pub pkts_toserver: u64,
    /// Packets from server to client.
    pub pkts_toclient: u64,
    /// Frame bytes from client to server.
    pub bytes_toserver: u64,
    /// Frame bytes from server to client.
    pub bytes_toclient: u64,
    /// Capture time of the first packet, microseconds since the epoch.
    pub start_us: u64,
    /// Capture time of the latest packet (never decreases), microseconds since the epoch.
    pub end_us: u64,
    /// TCP state; always [`TcpState::None`] for UDP.
    pub tcp_state: TcpState,
    /// Union of the TCP flag bytes sent by the client.
    pub tcp_flags_toserver: u8,
    /// Union of the TCP flag bytes sent by the server.
    pub tcp_flags_toclient: u8,
    /// How the client/server roles were decided.
    pub role_source: RoleSource,
    /// The worker has offered this judged TCP flow to a bypass outside it: the driver's map
    /// (XDP; unless the map was full, its later payload packets are dropped and counted there,
    /// and added to the counters above when the flow ends) or the NIC's rte_flow drop rules
    /// (removed when the flow ends). Never offered twice.
    pub driver_bypass: bool,
    /// Per-flow state owned by the classifier.
    pub app: A,
}

impl<A: Default> Flow<A> {
    /// A new flow for the first packet `pkt`, with roles inferred from its TCP flags and
    /// no packets counted yet.
    pub(crate) fn from_first_packet(id: u64, pkt: &Packet<'_>, ts_us: u64) -> Flow<A> {
        let flags = pkt.tcp.map_or(0, |t| t.flags);
        let syn = flags & tcp_flags::SYN != 0;
        let ack = flags & tcp_flags::ACK != 0;
        let (sender_is_client, role_source) = match (syn, ack) {
            (true, false) => (true, RoleSource::Syn),
            (true, true) => (false, RoleSource::SynAck),
            _ => (true, RoleSource::FirstPacket),
        };
        let (client_ip, client_port, server_ip, server_port) = if sender_is_client {
            (pkt.src_ip, pkt.src_port, pkt.dst_ip, pkt.dst_port)
        } else {
            (pkt.dst_ip, pkt.dst_port, pkt.src_ip, pkt.src_port)
        };
        Flow {
            id,
            client_ip,
            client_port,
            server_ip,
            server_port,
            transport: pkt.transport,
            vlan: pkt.vlan,
            pkts_toserver: 0,
            pkts_toclient: 0,
            bytes_toserver: 0,
            bytes_toclient: 0,
            start_us: ts_us,
            end_us: ts_us,
            tcp_state: TcpState::None,
            tcp_flags_toserver: 0,
            tcp_flags_toclient: 0,
            role_source,
            driver_bypass: false,
            app: A::default(),
        }
    }

    /// A placeholder left in a free table slot.
    pub(crate) fn vacant() -> Flow<A> {
        Flow {
            id: 0,
            client_ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            client_port: 0,
            server_ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            server_port: 0,
            transport: Transport::Udp,
            vlan: None,
            pkts_toserver: 0,
            pkts_toclient: 0,
            bytes_toserver: 0,
            bytes_toclient: 0,
            start_us: 0,
            end_us: 0,
            tcp_state: TcpState::None,
            tcp_flags_toserver: 0,
            tcp_flags_toclient: 0,
            role_source: RoleSource::FirstPacket,
            driver_bypass: false,
            app: A::default(),
        }
    }
}

impl<A> Flow<A> {
    /// Side of a packet sent from `src_ip:src_port` on this flow.
    ///
    /// A packet whose source is the client endpoint goes to the server; anything else goes to
    /// the client (the table only hands packets of this flow's 5-tuple to it).
    pub fn direction_of(&self, src_ip: IpAddr, src_port: u16) -> Side {
        if src_ip == self.client_ip && src_port == self.client_port {
            Side::Client
        } else {
            Side::Server
        }
    }

    /// Swaps the client and server roles: endpoints, per-direction counters and TCP flags.
    ///
    /// Call it when an application-layer parser proves the roles the other way round; later
    /// [`crate::FlowTable::update`] calls return directions relative to the new roles.
    pub fn swap_roles(&mut self) {
        self.swap_endpoints();
        self.role_source = RoleSource::Swapped;
    }

    fn swap_endpoints(&mut self) {
        std::mem::swap(&mut self.client_ip, &mut self.server_ip);
        std::mem::swap(&mut self.client_port, &mut self.server_port);
        std::mem::swap(&mut self.pkts_toserver, &mut self.pkts_toclient);
        std::mem::swap(&mut self.bytes_toserver, &mut self.bytes_toclient);
        std::mem::swap(&mut self.tcp_flags_toserver, &mut self.tcp_flags_toclient);
    }

    /// Coarse EVE state: see [`FlowState`].
    pub fn state(&self) -> FlowState {
        match self.transport {
            Transport::Tcp => match self.tcp_state {
                TcpState::None | TcpState::SynSent | TcpState::SynRecv => FlowState::New,
                TcpState::Established | TcpState::FinWait => FlowState::Established,
                TcpState::Closed | TcpState::Reset => FlowState::Closed,
            },
            Transport::Udp => {
                if self.pkts_toserver > 0 && self.pkts_toclient > 0 {
                    FlowState::Established
                } else {
                    FlowState::New
                }
            }
        }
    }

    /// Total packets both ways.
    pub fn pkts(&self) -> u64 {
        self.pkts_toserver + self.pkts_toclient
    }

    /// Total frame bytes both ways.
    pub fn bytes(&self) -> u64 {
        self.bytes_toserver + self.bytes_toclient
    }

    /// Community ID v1 (seed 0) of this flow's 5-tuple.
    pub fn community_id(&self) -> String {
        crate::community_id_v1(
            0,
            self.client_ip,
            self.server_ip,
            self.transport.ip_proto(),
            self.client_port,
            self.server_port,
        )
    }

    /// True when a packet with these TCP flags would open a new connection on this 5-tuple
    /// (a SYN without ACK after the flow closed or was reset).
    pub(crate) fn is_reused_by(&self, flags: Option<u8>) -> bool {
        match flags {
            Some(f) => {
                f & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN
                    && self.tcp_state.is_closed()
            }
            None => false,
        }
    }

    /// Accounts one packet of `frame_len` bytes sent from `src_ip:src_port` at `ts_us`, and
    /// returns its direction (after any role change the packet itself proves).
    pub(crate) fn account(
        &mut self,
        src_ip: IpAddr,
        src_port: u16,
        tcp_flags: Option<u8>,
        ts_us: u64,
        frame_len: u32,
    ) -> Side {
        let mut dir = self.direction_of(src_ip, src_port);
        if let Some(flags) = tcp_flags {
            dir = self.infer_roles(dir, flags);
        }
        match dir {
            Side::Client => {
                self.pkts_toserver += 1;
                self.bytes_toserver += u64::from(frame_len);
            }
            Side::Server => {
                self.pkts_toclient += 1;
                self.bytes_toclient += u64::from(frame_len);
            }
        }
        if ts_us > self.end_us {
            self.end_us = ts_us;
        }
        if let Some(flags) = tcp_flags {
            match dir {
                Side::Client => self.tcp_flags_toserver |= flags,
                Side::Server => self.tcp_flags_toclient |= flags,
            }
            self.advance_tcp(dir, flags);
        }
        dir
    }

    /// Lets a handshake packet overrule roles that were only guessed from the first packet.
    fn infer_roles(&mut self, dir: Side, flags: u8) -> Side {
        if self.role_source != RoleSource::FirstPacket || self.tcp_state != TcpState::None {
            return dir;
        }
        let syn = flags & tcp_flags::SYN != 0;
        let ack = flags & tcp_flags::ACK != 0;
        match (syn, ack, dir) {
            (true, false, Side::Server) => {
                self.swap_endpoints();
                self.role_source = RoleSource::Syn;
                Side::Client
            }
            (true, false, Side::Client) => {
                self.role_source = RoleSource::Syn;
                dir
            }
            (true, true, Side::Client) => {
                self.swap_endpoints();
                self.role_source = RoleSource::SynAck;
                Side::Server
            }
            (true, true, Side::Server) => {
                self.role_source = RoleSource::SynAck;
                dir
            }
            _ => dir,
        }
    }

    /// The TCP state machine documented on [`TcpState`].
    fn advance_tcp(&mut self, dir: Side, flags: u8) {
        let syn = flags & tcp_flags::SYN != 0;
        let ack = flags & tcp_flags::ACK != 0;
        let fin = flags & tcp_flags::FIN != 0;
        if flags & tcp_flags::RST != 0 {
            self.tcp_state = TcpState::Reset;
            return;
        }
        if self.tcp_state == TcpState::Reset {
            return;
        }
        match (self.tcp_state, syn, ack, dir) {
            (TcpState::None, true, false, Side::Client) => {
                self.tcp_state = TcpState::SynSent;
            }
            (TcpState::None | TcpState::SynSent, true, true, Side::Server) => {
                self.tcp_state = TcpState::SynRecv;
            }
            (TcpState::SynRecv, false, true, Side::Client) => {
                self.tcp_state = TcpState::Established;
            }
            (TcpState::None, false, _, _) if self.pkts_toserver > 0 && self.pkts_toclient > 0 => {
                self.tcp_state = TcpState::Established;
            }
            _ => {}
        }
        if fin {
            let client_fin = self.tcp_flags_toserver & tcp_flags::FIN != 0;
            let server_fin = self.tcp_flags_toclient & tcp_flags::FIN != 0;
            match self.tcp_state {
                TcpState::Closed | TcpState::Reset => {}
                _ if client_fin && server_fin => self.tcp_state = TcpState::Closed,
                _ => self.tcp_state = TcpState::FinWait,
            }
        }
    }
}
