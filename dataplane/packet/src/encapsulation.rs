//! The encapsulations the decoder walks through to reach the inner flow of a mirrored or
//! tunnelled frame, and the set of them one frame was carried in.
//!
//! Owns: the closed list of encapsulation kinds and their stable snake_case names (JSON keys
//! in summaries and the API, metric labels: a name never changes once shipped; add new kinds at
//! the end). Must not: carry data from the frame (a set is one byte the worker counts).

/// One kind of encapsulation around an inner IP packet.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Encapsulation {
    /// Plain GRE (RFC 2784/2890) carrying IP, Ethernet (transparent bridging) or MPLS.
    Gre = 0,
    /// ERSPAN type I or II in GRE (protocol 0x88BE): a switch's remote mirror.
    ErspanII,
    /// ERSPAN type III in GRE (protocol 0x22EB).
    ErspanIII,
    /// VXLAN (RFC 7348, UDP port 4789): cloud traffic mirroring.
    Vxlan,
    /// GENEVE (RFC 8926, UDP port 6081).
    Geneve,
    /// An MPLS label stack (ethertype 0x8847/0x8848, or in GRE) over IPv4 or IPv6.
    Mpls,
    /// IP in IP: IPv4 or IPv6 directly inside IPv4 or IPv6 (protocols 4 and 41).
    IpInIp,
}

impl Encapsulation {
    /// Number of kinds (size of a per-kind counter array).
    pub const COUNT: usize = 7;

    /// Every kind, in discriminant order: `ALL[k as usize] == k`.
    pub const ALL: [Encapsulation; Encapsulation::COUNT] = [
        Encapsulation::Gre,
        Encapsulation::ErspanII,
        Encapsulation::ErspanIII,
        Encapsulation::Vxlan,
        Encapsulation::Geneve,
        Encapsulation::Mpls,
        Encapsulation::IpInIp,
    ];

    /// Stable snake_case name, used as a JSON key and a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Encapsulation::Gre => "gre",
            Encapsulation::ErspanII => "erspan_ii",
            Encapsulation::ErspanIII => "erspan_iii",
            Encapsulation::Vxlan => "vxlan",
            Encapsulation::Geneve => "geneve",
            Encapsulation::Mpls => "mpls",
            Encapsulation::IpInIp => "ip_in_ip",
        }
    }
}

impl std::fmt::Display for Encapsulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// One bit per kind in `Encapsulations`.
const _: () = assert!(Encapsulation::COUNT <= 8);

/// The encapsulations one frame was carried in (each kind at most once, whatever the nesting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Encapsulations(u8);

impl Encapsulations {
    /// No encapsulation: a plain frame.
    pub const NONE: Encapsulations = Encapsulations(0);

    /// True for a plain frame.
    #[inline(always)]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when the frame was carried in `kind`.
    pub fn contains(self, kind: Encapsulation) -> bool {
        self.0 & (1 << kind as u8) != 0
    }

    /// Records that the frame was carried in `kind`.
    pub fn insert(&mut self, kind: Encapsulation) {
        self.0 |= 1 << kind as u8;
    }

    /// The kinds in the set, in [`Encapsulation::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Encapsulation> {
        Encapsulation::ALL
            .into_iter()
            .filter(move |k| self.contains(*k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn all_is_in_discriminant_order() {
        for (i, k) in Encapsulation::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
    }

    #[test]
    fn names_are_unique_and_the_set_round_trips() {
        let names: HashSet<_> = Encapsulation::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), Encapsulation::COUNT);
        let mut set = Encapsulations::NONE;
        assert!(set.is_empty());
        set.insert(Encapsulation::Vxlan);
        set.insert(Encapsulation::Gre);
        set.insert(Encapsulation::Vxlan);
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![Encapsulation::Gre, Encapsulation::Vxlan]
        );
        assert!(!set.contains(Encapsulation::Mpls));
    }
}
