//! Link types Portolan decodes, by their pcap `LINKTYPE_*` / DLT numbers.

/// The link-layer framing of the frames in a capture (net_pcap passes frames on without it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// Ethernet II / 802.3 (LINKTYPE_ETHERNET = 1).
    Ethernet,
    /// Linux cooked capture v1 (LINKTYPE_LINUX_SLL = 113).
    LinuxSll,
    /// Linux cooked capture v2 (LINKTYPE_LINUX_SLL2 = 276).
    LinuxSll2,
    /// Raw IPv4 or IPv6, version from the first nibble (LINKTYPE_RAW = 101; DLT_RAW 12 and 14).
    RawIp,
    /// Raw IPv4 only (LINKTYPE_IPV4 = 228).
    Ipv4,
    /// Raw IPv6 only (LINKTYPE_IPV6 = 229).
    Ipv6,
    /// BSD loopback: 4-byte address family in the capturing host's byte order (LINKTYPE_NULL = 0).
    Null,
    /// OpenBSD loopback: 4-byte address family in network byte order (LINKTYPE_LOOP = 108).
    Loop,
}

impl LinkType {
    /// Every link type Portolan decodes, in declaration order.
    pub const ALL: [LinkType; 8] = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::RawIp,
        LinkType::Ipv4,
        LinkType::Ipv6,
        LinkType::Null,
        LinkType::Loop,
    ];

    /// Maps a pcap link-type number to a link type Portolan decodes.
    pub fn from_dlt(dlt: u32) -> Option<LinkType> {
        Some(match dlt {
            1 => LinkType::Ethernet,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            101 | 12 | 14 => LinkType::RawIp,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            _ => return None,
        })
    }

    /// The pcap link-type number written to files.
    pub fn dlt(self) -> u32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
            LinkType::RawIp => 101,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::Null => 0,
            LinkType::Loop => 108,
        }
    }

    /// Short name for messages and summaries.
    pub fn name(self) -> &'static str {
        match self {
            LinkType::Ethernet => "ethernet",
            LinkType::LinuxSll => "linux_sll",
            LinkType::LinuxSll2 => "linux_sll2",
            LinkType::RawIp => "raw_ip",
            LinkType::Ipv4 => "ipv4",
            LinkType::Ipv6 => "ipv6",
            LinkType::Null => "bsd_loopback",
            LinkType::Loop => "openbsd_loopback",
        }
    }

    /// Comma-separated list of supported link types with their numbers, for error messages.
    pub fn supported_names() -> &'static str {
        "ethernet (1), linux_sll (113), linux_sll2 (276), raw_ip (101/12/14), ipv4 (228), ipv6 (229), bsd_loopback (0), openbsd_loopback (108)"
    }
}
