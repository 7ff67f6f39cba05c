//! Packet builders shared by the flow table tests.
#![allow(dead_code)]

use std::net::IpAddr;

use portolan_packet::{Packet, TcpHeader, Transport};

/// Flags shorthands.
pub const SYN: u8 = portolan_packet::tcp_flags::SYN;
pub const ACK: u8 = portolan_packet::tcp_flags::ACK;
pub const FIN: u8 = portolan_packet::tcp_flags::FIN;
pub const RST: u8 = portolan_packet::tcp_flags::RST;
pub const PSH: u8 = portolan_packet::tcp_flags::PSH;

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A UDP packet `src:sp -> dst:dp`.
pub fn udp(src: &str, sp: u16, dst: &str, dp: u16) -> Packet<'static> {
    Packet {
        src_ip: ip(src),
        dst_ip: ip(dst),
        transport: Transport::Udp,
        src_port: sp,
        dst_port: dp,
        tcp: None,
        vlan: None,
        payload: &[],
        payload_truncated: false,
    }
}

/// A TCP packet `src:sp -> dst:dp` with `flags`.
pub fn tcp(src: &str, sp: u16, dst: &str, dp: u16, flags: u8) -> Packet<'static> {
    Packet {
        src_ip: ip(src),
        dst_ip: ip(dst),
        transport: Transport::Tcp,
        src_port: sp,
        dst_port: dp,
        tcp: Some(TcpHeader {
            seq: 1000,
            ack: 2000,
            flags,
            window: 65535,
        }),
        vlan: None,
        payload: &[],
        payload_truncated: false,
    }
}
