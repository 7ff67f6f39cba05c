//! Why [`parse`](crate::parse) did not yield a TCP or UDP packet.
//!
//! Owns: the closed list of drop reasons and their stable snake_case names. The names are JSON
//! keys in run summaries and metric labels, so a name never changes once shipped; add new reasons
//! at the end. Must not: carry data from the frame (a reason is one byte the worker counts).

/// The reason a frame was not decoded to a TCP or UDP packet. Each is counted by the worker.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// The frame is shorter than its link-layer header (Ethernet, a VLAN tag, PPPoE, Linux
    /// SLL/SLL2, BSD/OpenBSD loopback).
    TruncatedLink = 0,
    /// More stacked VLAN tags than the decoder walks (see `MAX_VLAN_TAGS` in the decoder).
    VlanTooDeep,
    /// The frame carries something other than IPv4/IPv6: ARP, LLDP, 802.3 length frames, other
    /// ethertypes, a non-IP PPP protocol, or a loopback address family other than INET/INET6.
    NonIp,
    /// A raw-IP frame that is empty or whose version nibble is neither 4 nor 6.
    UnknownIpVersion,
    /// IPv4 frame shorter than 20 bytes or than the header length its IHL gives.
    Ipv4Truncated,
    /// IPv4 (by ethertype or link type) whose version nibble is not 4.
    Ipv4BadVersion,
    /// IPv4 IHL below 5 (header shorter than 20 bytes).
    Ipv4BadIhl,
    /// IPv4 total length shorter than the header length.
    Ipv4BadTotalLength,
    /// IPv6 frame shorter than the 40-byte header, or an extension header cut off by the capture.
    Ipv6Truncated,
    /// IPv6 (by ethertype or link type) whose version nibble is not 6.
    Ipv6BadVersion,
    /// IPv6 payload length too short for the extension headers it must contain.
    Ipv6BadPayloadLength,
    /// A malformed IPv6 extension header: hop-by-hop options not directly after the fixed header,
    /// or an authentication header shorter than its minimum of 12 bytes.
    Ipv6BadExtHeader,
    /// More IPv6 extension headers than the decoder walks (see `MAX_EXT_HEADERS`).
    Ipv6TooManyExtHeaders,
    /// A non-first IPv4 or IPv6 fragment of a TCP/UDP datagram: there are no ports to key on.
    IpFragment,
    /// An IP protocol other than TCP or UDP (ICMP, ICMPv6, ESP, no-next-header…).
    OtherIpProto,
    /// Fewer bytes than a 20-byte TCP header, or fewer than its data offset says (capture cut).
    TcpTruncated,
    /// TCP data offset below 5, or larger than the segment the IP header delimits.
    TcpBadDataOffset,
    /// Fewer than the 8 bytes of a UDP header.
    UdpTruncated,
    /// UDP length field below 8.
    UdpBadLength,
    /// An encapsulation header (GRE, ERSPAN, VXLAN, GENEVE, an MPLS label stack) cut off before
    /// its end.
    TunnelTruncated,
    /// An encapsulation the decoder does not walk: GRE with the routing bit or a version other
    /// than 0 (PPTP's enhanced GRE), a GRE protocol type other than IP, Ethernet, MPLS or
    /// ERSPAN, an ERSPAN header of an unknown version, or an MPLS payload that is not IP.
    TunnelUnsupported,
    /// More nested encapsulations, or more MPLS labels, than the decoder walks (see
    /// `MAX_TUNNEL_DEPTH` and `MAX_MPLS_LABELS` in the decoder).
    TunnelTooDeep,
    /// A fragment of a datagram the defragmenter dropped because its fragments overlapped
    /// (RFC 5722) or disagreed (two ends, bytes past the end, a non-last fragment whose length
    /// is not a multiple of 8, too many holes): every fragment of it is counted here.
    FragmentOverlap,
    /// A fragment of a datagram still incomplete at its timeout or at the end of input.
    FragmentTimeout,
    /// A fragment of a new datagram that found the worker's defragmentation table full.
    FragmentTableFull,
    /// A fragment of a datagram larger than the defragmenter's bound.
    FragmentTooBig,
}

impl DropReason {
    /// Number of drop reasons (size of a per-reason counter array).
    pub const COUNT: usize = 26;

    /// Every drop reason, in discriminant order: `ALL[r as usize] == r`.
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::TruncatedLink,
        DropReason::VlanTooDeep,
        DropReason::NonIp,
        DropReason::UnknownIpVersion,
        DropReason::Ipv4Truncated,
        DropReason::Ipv4BadVersion,
        DropReason::Ipv4BadIhl,
        DropReason::Ipv4BadTotalLength,
        DropReason::Ipv6Truncated,
        DropReason::Ipv6BadVersion,
        DropReason::Ipv6BadPayloadLength,
        DropReason::Ipv6BadExtHeader,
        DropReason::Ipv6TooManyExtHeaders,
        DropReason::IpFragment,
        DropReason::OtherIpProto,
        DropReason::TcpTruncated,
        DropReason::TcpBadDataOffset,
        DropReason::UdpTruncated,
        DropReason::UdpBadLength,
        DropReason::TunnelTruncated,
        DropReason::TunnelUnsupported,
        DropReason::TunnelTooDeep,
        DropReason::FragmentOverlap,
        DropReason::FragmentTimeout,
        DropReason::FragmentTableFull,
        DropReason::FragmentTooBig,
    ];

    /// Stable snake_case name, used as a JSON key in summaries and as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::TruncatedLink => "truncated_link",
            DropReason::VlanTooDeep => "vlan_too_deep",
            DropReason::NonIp => "non_ip",
            DropReason::UnknownIpVersion => "unknown_ip_version",
            DropReason::Ipv4Truncated => "ipv4_truncated",
            DropReason::Ipv4BadVersion => "ipv4_bad_version",
            DropReason::Ipv4BadIhl => "ipv4_bad_ihl",
            DropReason::Ipv4BadTotalLength => "ipv4_bad_total_length",
            DropReason::Ipv6Truncated => "ipv6_truncated",
            DropReason::Ipv6BadVersion => "ipv6_bad_version",
            DropReason::Ipv6BadPayloadLength => "ipv6_bad_payload_length",
            DropReason::Ipv6BadExtHeader => "ipv6_bad_ext_header",
            DropReason::Ipv6TooManyExtHeaders => "ipv6_too_many_ext_headers",
            DropReason::IpFragment => "ip_fragment",
            DropReason::OtherIpProto => "other_ip_proto",
            DropReason::TcpTruncated => "tcp_truncated",
            DropReason::TcpBadDataOffset => "tcp_bad_data_offset",
            DropReason::UdpTruncated => "udp_truncated",
            DropReason::UdpBadLength => "udp_bad_length",
            DropReason::TunnelTruncated => "tunnel_truncated",
            DropReason::TunnelUnsupported => "tunnel_unsupported",
            DropReason::TunnelTooDeep => "tunnel_too_deep",
            DropReason::FragmentOverlap => "fragment_overlap",
            DropReason::FragmentTimeout => "fragment_timeout",
            DropReason::FragmentTableFull => "fragment_table_full",
            DropReason::FragmentTooBig => "fragment_too_big",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::DropReason;
    use std::collections::HashSet;

    #[test]
    fn all_is_in_discriminant_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?} out of place in ALL");
        }
    }

    #[test]
    fn names_are_unique_snake_case() {
        let mut seen = HashSet::new();
        for r in DropReason::ALL {
            let name = r.as_str();
            assert!(seen.insert(name), "duplicate name {name}");
            assert!(
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name} is not snake_case"
            );
            assert_eq!(r.to_string(), name);
        }
    }
}
