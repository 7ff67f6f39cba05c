//! L2–L4 header views over captured frames.
//!
//! Owns: decoding a frame of a known link type down to its TCP or UDP payload, reading/writing
//! capture file headers, and reassembling IP fragments ([`defrag`]). Must not: allocate, panic,
//! or copy payload bytes on the decode path — every decode function runs per packet on a
//! worker lcore and borrows from the frame it is given; the defragmenter copies fragments into
//! buffers it allocated once per slot.

pub mod capture;
mod decode;
pub mod defrag;
mod drop_reason;
mod encapsulation;
mod link_type;

pub use decode::{ip_addresses, network_offset, parse, parse_counting, MAX_TUNNEL_DEPTH};
pub use drop_reason::DropReason;
pub use encapsulation::{Encapsulation, Encapsulations};
pub use link_type::LinkType;

use std::net::IpAddr;

/// Transport protocol of a decoded packet (owned by `portolan-model`).
pub use portolan_model::Transport;

/// TCP flag bits as they appear in the header's flags byte.
pub mod tcp_flags {
    /// FIN: sender has finished sending.
    pub const FIN: u8 = 0x01;
    /// SYN: synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// RST: reset the connection.
    pub const RST: u8 = 0x04;
    /// PSH: push function.
    pub const PSH: u8 = 0x08;
    /// ACK: acknowledgment field significant.
    pub const ACK: u8 = 0x10;
}

/// The TCP header fields the flow table and reassembly need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpHeader {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags byte (see [`tcp_flags`]).
    pub flags: u8,
    /// Receive window (unscaled).
    pub window: u16,
}

/// A decoded TCP or UDP packet: addresses, ports and a borrowed view of its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Source IP address.
    pub src_ip: IpAddr,
    /// Destination IP address.
    pub dst_ip: IpAddr,
    /// TCP or UDP.
    pub transport: Transport,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// TCP header fields; `None` for UDP.
    pub tcp: Option<TcpHeader>,
    /// Outermost 802.1Q VLAN ID, if the frame was tagged.
    pub vlan: Option<u16>,
    /// L4 payload bytes present in the frame (may be shorter than the IP header claims when
    /// the capture was cut by its snap length; see `payload_truncated`).
    pub payload: &'a [u8],
    /// True when the IP length says there is more payload than the frame holds (snaplen cut).
    pub payload_truncated: bool,
}
